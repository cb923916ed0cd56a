/* readyd-load: runs readyd's load engine (lib/loadgen) once, without the
 * daemon, and prints what it measured: for benchmarks (bench/) and for a
 * one-off measurement. The numbers mean exactly what the `load` probe's
 * metrics mean (docs/MEASUREMENT.md).
 *
 * It only parses flags, runs the engine on a private loop and prints; it
 * stores nothing. SIGINT cancels the run and still prints the result.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/loadgen/loadgen.h"
#include "lib/util/util.h"

#define MAX_CLI_HEADERS 64

struct cli {
	struct loadgen_config cfg;
	struct spec_header headers[MAX_CLI_HEADERS];
	bool json, timeline;
	const char *corpus_file;
	struct loadgen_corpus *corpus;
	uv_signal_t sig;
	struct loadgen *lg;
	int exit_code;
};

static void usage(FILE *f)
{
	fprintf(f, "Usage: readyd-load [OPTIONS] URL\n"
	           "  -c, --connections N   connections (default 16)\n"
	           "  -t, --threads N       engine threads (default 1)\n"
	           "  -d, --duration D      measured duration, e.g. 10s (default 10s)\n"
	           "  -n, --requests N      measure N requests instead of a duration\n"
	           "  -R, --rate R          rate mode: R requests/s (default: closed mode)\n"
	           "  -w, --warmup D        warm-up, excluded from the numbers\n"
	           "      --timeout D       connect/response timeout (default 10s)\n"
	           "  -m, --method M        request method (default GET)\n"
	           "  -H, --header 'N: V'   request header (repeatable)\n"
	           "  -b, --body TEXT       request body\n"
	           "  -k, --insecure        do not verify TLS certificates\n"
	           "      --ca-file FILE    CA bundle for https\n"
	           "      --corpus FILE     send the requests of a JSON Lines file\n"
	           "      --order O         round-robin (default) or weighted-random\n"
	           "      --seed N          weighted-random seed (default 0)\n"
	           "      --stream          measure streamed answers (ttfb, ttft, itl, tokens)\n"
	           "      --token-key K     JSON key counting tokens (default completion_tokens)\n"
	           "      --json            print the result as one JSON object\n"
	           "      --timeline        print the per-second timeline too\n");
}

static int parse_dur(const char *s, int64_t *ret)
{
	return rd_parse_duration(s, ret);
}

static int add_header(struct cli *c, char *arg)
{
	char *colon = strchr(arg, ':');

	if (!colon || c->cfg.n_headers >= MAX_CLI_HEADERS)
		return -EINVAL;
	*colon = '\0';
	c->headers[c->cfg.n_headers].name = arg;
	c->headers[c->cfg.n_headers].value = colon + 1 + strspn(colon + 1, " \t");
	c->cfg.n_headers++;
	return 0;
}

static int parse_int_arg(const char *s, int max, int *ret)
{
	int64_t v;

	if (rd_parse_int64(s, 1, max, &v) < 0)
		return -EINVAL;
	*ret = (int)v;
	return 0;
}

static int parse_opt(struct cli *c, int o, char *arg)
{
	int64_t n;

	switch (o) {
	case 'c':
		return parse_int_arg(arg, LOADGEN_MAX_CONNECTIONS, &c->cfg.connections);
	case 't':
		return parse_int_arg(arg, LOADGEN_MAX_THREADS, &c->cfg.threads);
	case 'd':
		return parse_dur(arg, &c->cfg.duration_ms);
	case 'n':
		if (rd_parse_int64(arg, 1, 1000000000, &n) < 0)
			return -EINVAL;
		c->cfg.requests = n;
		c->cfg.duration_ms = 0;
		return 0;
	case 'R':
		c->cfg.mode = LOAD_MODE_RATE;
		return rd_parse_double(arg, &c->cfg.rate);
	case 'w':
		return parse_dur(arg, &c->cfg.warmup_ms);
	case 'T':
		return parse_dur(arg, &c->cfg.timeout_ms);
	case 'm':
		c->cfg.method = arg;
		return 0;
	case 'H':
		return add_header(c, arg);
	case 'b':
		c->cfg.body = arg;
		c->cfg.body_len = strlen(arg);
		return 0;
	case 'k':
		c->cfg.insecure = true;
		return 0;
	case 'A':
		c->cfg.ca_file = arg;
		return 0;
	case 'J':
		c->json = true;
		return 0;
	case 'L':
		c->timeline = true;
		return 0;
	case 'C':
		c->corpus_file = arg;
		return 0;
	case 'O':
		if (strcmp(arg, "round-robin") == 0)
			c->cfg.order = LOADGEN_ORDER_ROUND_ROBIN;
		else if (strcmp(arg, "weighted-random") == 0)
			c->cfg.order = LOADGEN_ORDER_WEIGHTED_RANDOM;
		else
			return -EINVAL;
		return 0;
	case 'S':
		if (rd_parse_int64(arg, 0, INT64_MAX, &n) < 0)
			return -EINVAL;
		c->cfg.seed = (uint64_t)n;
		return 0;
	case 's':
		c->cfg.stream = true;
		return 0;
	case 'K':
		c->cfg.token_key = arg;
		return 0;
	default:
		return -EINVAL;
	}
}

static int parse_args(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
	        {"connections", required_argument, NULL, 'c'},
	        {"threads", required_argument, NULL, 't'},
	        {"duration", required_argument, NULL, 'd'},
	        {"requests", required_argument, NULL, 'n'},
	        {"rate", required_argument, NULL, 'R'},
	        {"warmup", required_argument, NULL, 'w'},
	        {"timeout", required_argument, NULL, 'T'},
	        {"method", required_argument, NULL, 'm'},
	        {"header", required_argument, NULL, 'H'},
	        {"body", required_argument, NULL, 'b'},
	        {"insecure", no_argument, NULL, 'k'},
	        {"ca-file", required_argument, NULL, 'A'},
	        {"json", no_argument, NULL, 'J'},
	        {"timeline", no_argument, NULL, 'L'},
	        {"corpus", required_argument, NULL, 'C'},
	        {"order", required_argument, NULL, 'O'},
	        {"seed", required_argument, NULL, 'S'},
	        {"stream", no_argument, NULL, 's'},
	        {"token-key", required_argument, NULL, 'K'},
	        {"help", no_argument, NULL, 'h'},
	        {0},
	};
	bool by_requests = false;
	int o;

	while ((o = getopt_long(argc, argv, "c:t:d:n:R:w:m:H:b:kh", opts, NULL)) != -1) {
		if (o == 'h') {
			usage(stdout);
			exit(0);
		}
		if (o == 'n')
			by_requests = true;
		if (parse_opt(c, o, optarg) < 0) {
			fprintf(stderr, "readyd-load: bad value for -%c: '%s'\n", o,
			        optarg ? optarg : "");
			return -EINVAL;
		}
	}
	if (by_requests)
		c->cfg.duration_ms = 0;
	if (optind != argc - 1) {
		usage(stderr);
		return -EINVAL;
	}
	c->cfg.url = argv[optind];
	c->cfg.headers = c->headers;
	return 0;
}

static double ms(double us)
{
	return us / 1000.0;
}

static uint64_t successes(const struct loadgen_result *r)
{
	return r->requests - (r->errors < r->requests ? r->errors : r->requests);
}

static double per_s(uint64_t n, double seconds)
{
	return seconds > 0 ? (double)n / seconds : 0;
}

static void print_hist_json(const char *suffix, const struct hist *h)
{
	static const struct {
		const char *name;
		double p;
	} pcts[] = {{"p50", 50}, {"p90", 90}, {"p95", 95}, {"p99", 99}, {"p999", 99.9}};

	for (size_t i = 0; i < RD_ARRAY_SIZE(pcts); i++)
		printf(", \"%s_ms%s\": %.3f", pcts[i].name, suffix,
		       ms(hist_percentile(h, pcts[i].p)));
	printf(", \"max_ms%s\": %.3f, \"mean_ms%s\": %.3f", suffix,
	       hist_count(h) ? ms((double)hist_max(h)) : NAN, suffix, ms(hist_mean(h)));
}

/* The stream figures as the load probe publishes them. */
static void print_stream_json(const struct loadgen_result *r)
{
	json_t *m = NULL;
	const char *k;
	json_t *v;

	if (loadgen_result_metrics(r, &m) < 0)
		return;
	json_object_foreach (m, k, v) {
		if (strncmp(k, "ttf", 3) && strncmp(k, "itl_", 4) && strncmp(k, "events_", 7) &&
		    strncmp(k, "output_", 7))
			continue;
		if (json_is_number(v))
			printf(", \"%s\": %.3f", k, json_number_value(v));
		else
			printf(", \"%s\": null", k);
	}
	json_decref(m);
}

static void print_json(const struct cli *c, const struct loadgen_result *r)
{
	/* As the load probe's metrics: throughput_rps counts successful
	 * requests, requests_rps every measured one. */
	printf("{\"requests\": %llu, \"errors\": %llu, \"error_rate\": %.6f, "
	       "\"throughput_rps\": %.2f, \"requests_rps\": %.2f, \"elapsed_s\": %.3f, "
	       "\"warmup_requests\": %llu",
	       (unsigned long long)r->requests, (unsigned long long)r->errors,
	       r->requests ? (double)r->errors / (double)r->requests : 0.0,
	       per_s(successes(r), r->elapsed_s), per_s(r->requests, r->elapsed_s), r->elapsed_s,
	       (unsigned long long)r->warmup_requests);
	for (int i = 0; i < _LOADGEN_ERR_MAX; i++)
		printf(", \"errors_%s\": %llu", loadgen_error_to_string(i),
		       (unsigned long long)r->errors_by[i]);
	print_hist_json("", r->latency);
	if (r->latency_uncorrected) {
		print_hist_json("_uncorrected", r->latency_uncorrected);
		printf(", \"schedule_lag_mean_ms\": %.3f, \"schedule_lag_max_ms\": %.3f, "
		       "\"unsent\": %llu, \"rate_kept\": %s",
		       r->schedule_lag_mean_ms, r->schedule_lag_max_ms,
		       (unsigned long long)r->unsent, r->rate_kept ? "true" : "false");
	}
	printf(", \"distinct_requests\": %llu", (unsigned long long)r->distinct_requests);
	if (r->ttft)
		print_stream_json(r);
	printf(", \"cancelled\": %s}\n", r->cancelled ? "true" : "false");
}

static void print_text(const struct cli *c, const struct loadgen_result *r)
{
	const struct hist *h = r->latency;

	printf("%s %s mode, %d connections, %d threads%s\n", c->cfg.url,
	       c->cfg.mode == LOAD_MODE_RATE ? "rate" : "closed", c->cfg.connections,
	       c->cfg.threads, r->cancelled ? " (cancelled)" : "");
	printf("  requests %llu in %.3f s, errors %llu, warmup %llu\n",
	       (unsigned long long)r->requests, r->elapsed_s, (unsigned long long)r->errors,
	       (unsigned long long)r->warmup_requests);
	printf("  requests/s: %.2f (every answer), successful/s: %.2f (throughput)\n",
	       per_s(r->requests, r->elapsed_s), per_s(successes(r), r->elapsed_s));
	printf("  latency ms: p50 %.3f  p90 %.3f  p95 %.3f  p99 %.3f  p99.9 %.3f  max %.3f  "
	       "mean %.3f\n",
	       ms(hist_percentile(h, 50)), ms(hist_percentile(h, 90)), ms(hist_percentile(h, 95)),
	       ms(hist_percentile(h, 99)), ms(hist_percentile(h, 99.9)),
	       ms(hist_percentile(h, 100)), ms(hist_mean(h)));
	if (r->latency_uncorrected) {
		h = r->latency_uncorrected;
		printf("  uncorrected: p50 %.3f  p99 %.3f  max %.3f\n", ms(hist_percentile(h, 50)),
		       ms(hist_percentile(h, 99)), ms(hist_percentile(h, 100)));
		printf("  schedule lag ms: mean %.3f  max %.3f, unsent %llu%s\n",
		       r->schedule_lag_mean_ms, r->schedule_lag_max_ms,
		       (unsigned long long)r->unsent,
		       r->rate_kept ? "" : "  (the rate could NOT be kept)");
	}
	for (int i = 0; i < _LOADGEN_ERR_MAX; i++)
		if (r->errors_by[i])
			printf("  errors %s: %llu\n", loadgen_error_to_string(i),
			       (unsigned long long)r->errors_by[i]);
	if (r->errors_by[LOADGEN_ERR_CONNECT] && r->connect_error[0])
		printf("  last connect error: %s\n", r->connect_error);
}

static void print_timeline(const struct loadgen_result *r)
{
	for (size_t i = 0; i < r->n_seconds; i++)
		printf("  second %zu: requests %llu errors %llu p50 %.3f p99 %.3f\n", i,
		       (unsigned long long)r->timeline[i].requests,
		       (unsigned long long)r->timeline[i].errors, r->timeline[i].p50_ms,
		       r->timeline[i].p99_ms);
}

static void on_done(struct loadgen *lg, void *userdata)
{
	struct cli *c = userdata;
	const struct loadgen_result *r = loadgen_result(lg);

	if (c->json)
		print_json(c, r);
	else
		print_text(c, r);
	if (c->timeline)
		print_timeline(r);
	c->exit_code = r->cancelled ? 130 : 0;
	uv_close((uv_handle_t *)&c->sig, NULL);
}

static void on_sigint(uv_signal_t *s, int signum)
{
	struct cli *c = s->data;

	loadgen_cancel(c->lg);
}

#define MAX_CORPUS_FILE (64 * 1024 * 1024)

static int read_all(const char *path, char **ret_buf, size_t *ret_len)
{
	FILE *f = fopen(path, "rb");
	char *buf = malloc(MAX_CORPUS_FILE + 1);
	size_t n = 0;
	int r = 0;

	if (!f || !buf)
		r = !f ? -errno : -ENOMEM;
	else
		n = fread(buf, 1, MAX_CORPUS_FILE + 1, f);
	if (r == 0 && ferror(f))
		r = -EIO;
	if (r == 0 && n > MAX_CORPUS_FILE)
		r = -EFBIG;
	if (f)
		fclose(f);
	if (r < 0) {
		free(buf);
		return r;
	}
	*ret_buf = buf;
	*ret_len = n;
	return 0;
}

/* readyd-load reads its corpus itself: it is the operator's own tool,
 * not the daemon (which reads through allowed_paths). */
static int load_corpus(struct cli *c)
{
	char err[300] = "";
	char *buf = NULL;
	size_t len = 0;
	int r;

	r = read_all(c->corpus_file, &buf, &len);
	if (r < 0) {
		fprintf(stderr, "readyd-load: %s: %s\n", c->corpus_file, strerror(-r));
		return r;
	}
	r = loadgen_corpus_parse_jsonl(buf, len, &c->corpus, err, sizeof(err));
	free(buf);
	if (r < 0) {
		fprintf(stderr, "readyd-load: %s:%s\n", c->corpus_file,
		        err[0] ? err : strerror(-r));
		return r;
	}
	c->cfg.corpus = c->corpus->items;
	c->cfg.n_corpus = c->corpus->n;
	return 0;
}

int main(int argc, char **argv)
{
	struct cli c = {.cfg = {.connections = 16, .threads = 1, .duration_ms = 10000},
	                .exit_code = 1};
	uv_loop_t loop;
	char err[256] = "";
	int r;

	if (parse_args(&c, argc, argv) < 0)
		return 2;
	if (c.corpus_file && load_corpus(&c) < 0)
		return 2;
	if (uv_loop_init(&loop) < 0)
		return 1;
	r = loadgen_new(&c.cfg, &loop, on_done, &c, &c.lg, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "readyd-load: %s\n", err[0] ? err : strerror(-r));
		(void)uv_loop_close(&loop);
		return 2;
	}
	uv_signal_init(&loop, &c.sig);
	c.sig.data = &c;
	uv_signal_start(&c.sig, on_sigint, SIGINT);
	r = loadgen_start(c.lg);
	if (r < 0) {
		fprintf(stderr, "readyd-load: cannot start: %s\n", strerror(-r));
		uv_close((uv_handle_t *)&c.sig, NULL);
	}
	uv_run(&loop, UV_RUN_DEFAULT);
	loadgen_free(c.lg);
	loadgen_corpus_free(c.corpus);
	if (uv_loop_close(&loop) != 0)
		return 1;
	return c.exit_code;
}
