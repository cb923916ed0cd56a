/* cli: the demo target's command line. Every option is "--name VALUE" or
 * "--name=VALUE", matched exactly (no abbreviations: "--port" must not
 * silently mean "--port-file"), and every value is checked in full; a bad
 * one is reported on stderr and the program exits 2 before listening. This
 * is the only file besides main() that prints.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "demo-target.h"

#define USAGE                                                                                      \
	"usage: demo-target [options]\n"                                                           \
	"  --listen HOST:PORT        (default 127.0.0.1:0)   --port-file FILE  --pid-file FILE\n"  \
	"  --tls-listen HOST:PORT --tls-cert FILE --tls-key FILE [--tls-max-version 1.2|1.3]\n"    \
	"  --tls-port-file FILE\n"                                                                 \
	"  --latency DIST   10ms | 10ms:90,40ms:8,150ms:2 | uniform:5ms-15ms | exp:10ms\n"         \
	"  --errors P  --stall-after D  --stall-for D  --workers N  --auth-token TOKEN\n"          \
	"  --rate-limit R  --version V  --previous-version V  --seed N  --omit-metric NAME\n"      \
	"  --stream-first D  --stream-gap D  --stream-tokens N   (/v1/completions)\n"              \
	"See docs/demo-target.md.\n"

typedef int (*opt_cb)(struct config *cfg, const char *value);

/* Strict decimal in [min, max]: digits only, so no sign, space or hex. */
static int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *ret_value)
{
	unsigned long long v;
	char *end;

	if (s[0] < '0' || s[0] > '9' || strspn(s, "0123456789") != strlen(s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno == ERANGE || v < min || v > max)
		return -ERANGE;
	*ret_value = v;
	return 0;
}

/* Strict finite decimal; strtod alone would take "nan", "inf", hex, spaces. */
static int parse_decimal(const char *s, double *ret_value)
{
	char *end;
	double v;

	if (s[0] == '\0' || strspn(s, "0123456789.eE+-") != strlen(s) || s[0] == '+' || s[0] == '-')
		return -EINVAL;
	errno = 0;
	v = strtod(s, &end);
	if (*end != '\0' || errno != 0 || !isfinite(v))
		return -EINVAL;
	*ret_value = v;
	return 0;
}

int cli_parse_probability(const char *s, double *ret_value)
{
	double v;

	if (parse_decimal(s, &v) < 0 || v > 1)
		return -EINVAL;
	*ret_value = v;
	return 0;
}

int cli_parse_rate(const char *s, double *ret_value)
{
	double v;

	if (parse_decimal(s, &v) < 0 || v <= 0 || v > DT_MAX_RATE)
		return -EINVAL;
	*ret_value = v;
	return 0;
}

/* HOST:PORT, HOST may be a bracketed IPv6 literal. */
static int parse_listen(const char *s, struct listen_spec *ret_value)
{
	const char *colon = strrchr(s, ':'), *host = s;
	size_t hlen;
	uint64_t port;

	if (!colon || parse_u64(colon + 1, 0, 65535, &port) < 0)
		return -EINVAL;
	hlen = (size_t)(colon - s);
	if (hlen >= 2 && s[0] == '[' && s[hlen - 1] == ']') {
		host++;
		hlen -= 2;
	} else if (memchr(s, ':', hlen) || memchr(s, '[', hlen)) {
		return -EINVAL; /* IPv6 literals need brackets */
	}
	if (hlen == 0 || hlen >= sizeof(ret_value->host))
		return -EINVAL;
	memcpy(ret_value->host, host, hlen);
	ret_value->host[hlen] = '\0';
	ret_value->port = (uint16_t)port;
	return 0;
}

/* Versions appear in JSON strings and Prometheus labels unescaped. */
static int parse_version(const char *s, char buf[DT_MAX_VERSION + 1])
{
	size_t len = strlen(s);

	if (len == 0 || len > DT_MAX_VERSION ||
	    strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._+~-") != len)
		return -EINVAL;
	memcpy(buf, s, len + 1);
	return 0;
}

static int opt_listen(struct config *cfg, const char *v)
{
	return parse_listen(v, &cfg->listen);
}

static int opt_tls_listen(struct config *cfg, const char *v)
{
	cfg->tls = true;
	return parse_listen(v, &cfg->tls_listen);
}

static int opt_tls_max(struct config *cfg, const char *v)
{
	if (strcmp(v, "1.2") == 0)
		cfg->tls_max_version = 12;
	else if (strcmp(v, "1.3") == 0)
		cfg->tls_max_version = 13;
	else
		return -EINVAL;
	return 0;
}

static int opt_file(const char **dst, const char *v)
{
	if (v[0] == '\0')
		return -EINVAL;
	*dst = v;
	return 0;
}

static int opt_port_file(struct config *cfg, const char *v)
{
	return opt_file(&cfg->port_file, v);
}

static int opt_pid_file(struct config *cfg, const char *v)
{
	return opt_file(&cfg->pid_file, v);
}

static int opt_tls_cert(struct config *cfg, const char *v)
{
	return opt_file(&cfg->tls_cert, v);
}

static int opt_tls_key(struct config *cfg, const char *v)
{
	return opt_file(&cfg->tls_key, v);
}

static int opt_tls_port_file(struct config *cfg, const char *v)
{
	return opt_file(&cfg->tls_port_file, v);
}

static int opt_latency(struct config *cfg, const char *v)
{
	return dist_parse(v, &cfg->latency);
}

static int opt_errors(struct config *cfg, const char *v)
{
	return cli_parse_probability(v, &cfg->errors);
}

static int opt_stall_after(struct config *cfg, const char *v)
{
	return dist_parse_duration(v, &cfg->stall_after_ns);
}

static int opt_stall_for(struct config *cfg, const char *v)
{
	return dist_parse_duration(v, &cfg->stall_for_ns);
}

static int opt_workers(struct config *cfg, const char *v)
{
	uint64_t n;
	int r = parse_u64(v, 1, DT_MAX_WORKERS, &n);

	if (r == 0)
		cfg->workers = (unsigned)n;
	return r;
}

static int opt_auth_token(struct config *cfg, const char *v)
{
	size_t len = strlen(v);

	/* Visible ASCII only: the token travels in a header. */
	if (len == 0 || len > DT_MAX_TOKEN)
		return -EINVAL;
	for (size_t i = 0; i < len; i++)
		if (v[i] < 0x21 || v[i] > 0x7e)
			return -EINVAL;
	cfg->auth_token = v;
	return 0;
}

static int opt_rate_limit(struct config *cfg, const char *v)
{
	return cli_parse_rate(v, &cfg->rate_limit);
}

static int opt_version(struct config *cfg, const char *v)
{
	return parse_version(v, cfg->version);
}

static int opt_previous(struct config *cfg, const char *v)
{
	return parse_version(v, cfg->previous_version);
}

static int opt_seed(struct config *cfg, const char *v)
{
	return parse_u64(v, 0, UINT64_MAX, &cfg->seed);
}

static int opt_stream_first(struct config *cfg, const char *v)
{
	return dist_parse_duration(v, &cfg->stream.first_ns);
}

static int opt_stream_gap(struct config *cfg, const char *v)
{
	return dist_parse_duration(v, &cfg->stream.gap_ns);
}

static int opt_stream_tokens(struct config *cfg, const char *v)
{
	uint64_t n;
	int r = parse_u64(v, 0, DT_MAX_TOKENS, &n);

	if (r == 0)
		cfg->stream.tokens = (int64_t)n;
	return r;
}

int cli_parse_tokens(const char *s, int64_t *ret_value)
{
	uint64_t n;
	int r = parse_u64(s, 0, DT_MAX_TOKENS, &n);

	if (r == 0)
		*ret_value = (int64_t)n;
	return r;
}

static int opt_omit(struct config *cfg, const char *v)
{
	int f = expo_family_lookup(v);

	if (f < 0)
		return f;
	cfg->omit_mask |= 1u << f;
	return 0;
}

static const struct {
	const char *name;
	opt_cb cb;
	const char *expect; /* for the error message */
} options[] = {
        {"listen", opt_listen, "HOST:PORT"},
        {"port-file", opt_port_file, "a file name"},
        {"pid-file", opt_pid_file, "a file name"},
        {"tls-listen", opt_tls_listen, "HOST:PORT"},
        {"tls-cert", opt_tls_cert, "a file name"},
        {"tls-key", opt_tls_key, "a file name"},
        {"tls-max-version", opt_tls_max, "1.2 or 1.3"},
        {"tls-port-file", opt_tls_port_file, "a file name"},
        {"latency", opt_latency,
         "a distribution such as 10ms, 10ms:90,40ms:8, uniform:5ms-15ms, exp:10ms"},
        {"errors", opt_errors, "a probability between 0 and 1"},
        {"stall-after", opt_stall_after, "a duration (us, ms, s) up to 3600s"},
        {"stall-for", opt_stall_for, "a duration (us, ms, s) up to 3600s"},
        {"workers", opt_workers, "an integer from 1 to 4096"},
        {"auth-token", opt_auth_token, "1 to 256 visible ASCII characters"},
        {"rate-limit", opt_rate_limit, "requests per second, > 0 and <= 1000000"},
        {"version", opt_version, "1 to 64 characters of [A-Za-z0-9._+~-]"},
        {"previous-version", opt_previous, "1 to 64 characters of [A-Za-z0-9._+~-]"},
        {"seed", opt_seed, "an unsigned 64-bit integer"},
        {"omit-metric", opt_omit, "a metric family name"},
        {"stream-first", opt_stream_first, "a duration (us, ms, s) up to 3600s"},
        {"stream-gap", opt_stream_gap, "a duration (us, ms, s) up to 3600s"},
        {"stream-tokens", opt_stream_tokens, "an integer from 0 to 100000"},
};

static void defaults(struct config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	memcpy(cfg->listen.host, "127.0.0.1", sizeof("127.0.0.1"));
	cfg->tls_max_version = 13;
	/* "0" always parses. */
	(void)dist_parse("0", &cfg->latency);
	memcpy(cfg->version, "2.4.0", sizeof("2.4.0"));
	memcpy(cfg->previous_version, "2.3.9", sizeof("2.3.9"));
	cfg->seed = 1;
	cfg->stream = (struct stream_params){
	        .first_ns = 50 * DT_NS_PER_MS, .gap_ns = 10 * DT_NS_PER_MS, .tokens = 20};
}

static int find_option(const char *arg, size_t name_len)
{
	for (size_t i = 0; i < sizeof(options) / sizeof(options[0]); i++)
		if (strlen(options[i].name) == name_len &&
		    strncmp(options[i].name, arg, name_len) == 0)
			return (int)i;
	return -1;
}

/* Handles argv[*i]; advances *i past a separate value. */
static int parse_one(int argc, char **argv, int *i, struct config *cfg)
{
	const char *arg = argv[*i], *eq, *value;
	int o;

	if (strncmp(arg, "--", 2) != 0) {
		fprintf(stderr, "demo-target: unexpected argument '%s'\n%s", arg, USAGE);
		return -EINVAL;
	}
	eq = strchr(arg + 2, '=');
	o = find_option(arg + 2, eq ? (size_t)(eq - arg - 2) : strlen(arg + 2));
	if (o < 0) {
		fprintf(stderr, "demo-target: unknown option '%s'\n%s", arg, USAGE);
		return -EINVAL;
	}
	if (!eq && *i + 1 >= argc) {
		fprintf(stderr, "demo-target: option '--%s' needs a value\n", options[o].name);
		return -EINVAL;
	}
	value = eq ? eq + 1 : argv[++*i];
	if (options[o].cb(cfg, value) < 0) {
		fprintf(stderr, "demo-target: invalid --%s '%s': expected %s\n", options[o].name,
		        value, options[o].expect);
		return -EINVAL;
	}
	return 0;
}

static int check_combinations(const struct config *cfg)
{
	const char *msg = NULL;

	if (cfg->tls && (!cfg->tls_cert || !cfg->tls_key))
		msg = "--tls-listen needs --tls-cert and --tls-key";
	else if (!cfg->tls && (cfg->tls_cert || cfg->tls_key || cfg->tls_port_file))
		msg = "--tls-cert, --tls-key and --tls-port-file need --tls-listen";
	else if (cfg->stall_after_ns > 0 && cfg->stall_for_ns == 0)
		msg = "--stall-after needs a non-zero --stall-for";
	if (!msg)
		return 0;
	fprintf(stderr, "demo-target: %s\n", msg);
	return -EINVAL;
}

int cli_parse(int argc, char **argv, struct config *cfg)
{
	int r;

	defaults(cfg);
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			fputs(USAGE, stdout);
			return 1;
		}
		r = parse_one(argc, argv, &i, cfg);
		if (r < 0)
			return r;
	}
	return check_combinations(cfg);
}
