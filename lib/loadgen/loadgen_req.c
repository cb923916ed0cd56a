/* loadgen_req: the engine's pure parts: URL parsing, the request bytes
 * (built once per run, so the hot path only copies pointers), the rate
 * schedule's arithmetic and a response parser harness for tests. No I/O,
 * no threads, no clocks.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/loadgen/loadgen_int.h"
#include "lib/util/util.h"

static int copy_part(const char *s, size_t n, char *dst, size_t cap)
{
	if (n == 0 || n >= cap)
		return -EINVAL;
	memcpy(dst, s, n);
	dst[n] = '\0';
	return 0;
}

static int parse_port(const char *s, size_t n, struct loadgen_url *u)
{
	char buf[8];
	int64_t v;

	if (copy_part(s, n, buf, sizeof(buf)) < 0 || strspn(buf, "0123456789") != n)
		return -EINVAL;
	if (rd_parse_int64(buf, 1, 65535, &v) < 0)
		return -EINVAL;
	snprintf(u->port, sizeof(u->port), "%lld", (long long)v);
	return 0;
}

/* host[:port] or [v6][:port] in s..s+n. */
static int parse_authority(const char *s, size_t n, struct loadgen_url *u)
{
	const char *colon;
	size_t hl;

	if (n == 0 || memchr(s, '@', n))
		return -EINVAL;
	if (s[0] == '[') {
		const char *rb = memchr(s, ']', n);

		if (!rb || copy_part(s + 1, (size_t)(rb - s - 1), u->host, sizeof(u->host)) < 0)
			return -EINVAL;
		colon = rb + 1 < s + n ? rb + 1 : NULL;
		if (colon && *colon != ':')
			return -EINVAL;
	} else {
		colon = memchr(s, ':', n);
		hl = colon ? (size_t)(colon - s) : n;
		if (copy_part(s, hl, u->host, sizeof(u->host)) < 0)
			return -EINVAL;
	}
	if (colon && parse_port(colon + 1, (size_t)(s + n - colon - 1), u) < 0)
		return -EINVAL;
	if (copy_part(s, n, u->hostport, sizeof(u->hostport)) < 0)
		return -EINVAL;
	return 0;
}

int loadgen_url_parse(const char *url, struct loadgen_url *ret)
{
	struct loadgen_url u = {0};
	const char *rest, *slash;
	size_t alen;

	if (!url)
		return -EINVAL;
	if (strncasecmp(url, "http://", 7) == 0) {
		rest = url + 7;
		snprintf(u.port, sizeof(u.port), "80");
	} else if (strncasecmp(url, "https://", 8) == 0) {
		rest = url + 8;
		u.tls = true;
		snprintf(u.port, sizeof(u.port), "443");
	} else {
		return -EINVAL;
	}
	slash = strpbrk(rest, "/?#");
	alen = slash ? (size_t)(slash - rest) : strlen(rest);
	if (parse_authority(rest, alen, &u) < 0)
		return -EINVAL;
	if (!slash || *slash == '#')
		snprintf(u.path, sizeof(u.path), "/");
	else if (copy_part(slash, strcspn(slash, "#"), u.path, sizeof(u.path)) < 0)
		return -EINVAL;
	if (u.path[0] == '?') {
		/* "http://h?q" means "/?q". */
		if (strlen(u.path) + 2 > sizeof(u.path))
			return -EINVAL;
		memmove(u.path + 1, u.path, strlen(u.path) + 1);
		u.path[0] = '/';
	}
	if (strpbrk(u.path, " \r\n\t"))
		return -EINVAL;
	*ret = u;
	return 0;
}

static bool has_header(const struct spec_header *h, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcasecmp(h[i].name, name) == 0)
			return true;
	return false;
}

static bool wants_length(const char *method, const char *body)
{
	return body || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
	       strcmp(method, "PATCH") == 0;
}

/* Appends with a bound; -E2BIG when it does not fit. */
static int put(char *buf, size_t cap, size_t *len, const char *s, size_t n)
{
	if (n > cap - *len)
		return -E2BIG;
	memcpy(buf + *len, s, n);
	*len += n;
	return 0;
}

static int put_str(char *buf, size_t cap, size_t *len, const char *s)
{
	return put(buf, cap, len, s, strlen(s));
}

static int put_headers(char *buf, size_t cap, size_t *len, const struct spec_header *h, size_t n)
{
	int r = 0;

	for (size_t i = 0; i < n && r == 0; i++) {
		if (strpbrk(h[i].name, "\r\n:") || strpbrk(h[i].value, "\r\n"))
			return -EINVAL;
		r = put_str(buf, cap, len, h[i].name);
		if (r == 0)
			r = put_str(buf, cap, len, ": ");
		if (r == 0)
			r = put_str(buf, cap, len, h[i].value);
		if (r == 0)
			r = put_str(buf, cap, len, "\r\n");
	}
	return r;
}

/* The most bytes the request can take: a corpus of thousands of small
 * requests must not allocate LOADGEN_MAX_REQUEST for each. */
static size_t request_bound(const struct loadgen_url *u, const char *m, const struct spec_header *h,
                            size_t n, size_t body_len)
{
	size_t b = strlen(m) + strlen(u->path) + strlen(u->hostport) + body_len + 128;

	for (size_t i = 0; i < n; i++)
		b += strlen(h[i].name) + strlen(h[i].value) + 4;
	return b < LOADGEN_MAX_REQUEST ? b : LOADGEN_MAX_REQUEST;
}

int loadgen_build_request(const struct loadgen_url *u, const char *method,
                          const struct spec_header *headers, size_t n_headers, const char *body,
                          size_t body_len, char **ret_buf, size_t *ret_len)
{
	const char *m = method ? method : "GET";
	char line[64];
	size_t len = 0, cap;
	char *buf;
	int r;

	if (!*m || strpbrk(m, " \r\n\t") || strlen(m) > 32)
		return -EINVAL;
	if (body_len > LOADGEN_MAX_REQUEST)
		return -E2BIG;
	cap = request_bound(u, m, headers, n_headers, body_len);
	buf = malloc(cap);
	if (!buf)
		return -ENOMEM;
	r = put_str(buf, cap, &len, m);
	if (r == 0)
		r = put_str(buf, cap, &len, " ");
	if (r == 0)
		r = put_str(buf, cap, &len, u->path);
	if (r == 0)
		r = put_str(buf, cap, &len, " HTTP/1.1\r\n");
	if (r == 0 && !has_header(headers, n_headers, "Host")) {
		r = put_str(buf, cap, &len, "Host: ");
		if (r == 0)
			r = put_str(buf, cap, &len, u->hostport);
		if (r == 0)
			r = put_str(buf, cap, &len, "\r\n");
	}
	if (r == 0)
		r = put_headers(buf, cap, &len, headers, n_headers);
	if (r == 0 && wants_length(m, body) && !has_header(headers, n_headers, "Content-Length")) {
		snprintf(line, sizeof(line), "Content-Length: %zu\r\n", body ? body_len : 0);
		r = put_str(buf, cap, &len, line);
	}
	if (r == 0)
		r = put_str(buf, cap, &len, "\r\n");
	if (r == 0 && body)
		r = put(buf, cap, &len, body, body_len);
	if (r < 0) {
		free(buf);
		return r;
	}
	*ret_buf = buf;
	*ret_len = len;
	return 0;
}

uint64_t loadgen_intended_ns(uint64_t idx, double rate)
{
	/* Whole seconds first so a long run keeps nanosecond precision: a
	 * double holds idx / rate's fraction exactly enough, but not
	 * idx * 1e9 for idx past 2^53 / 1e9. */
	double sec = floor((double)idx / rate);
	double rem = (double)idx - sec * rate;

	return (uint64_t)sec * LG_NS_PER_S + (uint64_t)llround(rem * 1e9 / rate);
}

uint64_t loadgen_thread_index(uint64_t k, int j, int n)
{
	return k * (uint64_t)n + (uint64_t)j;
}

uint64_t loadgen_thread_share(uint64_t total, int j, int n)
{
	uint64_t base = total / (uint64_t)n;

	return base + ((uint64_t)j < total % (uint64_t)n ? 1 : 0);
}

struct parse_probe {
	int *statuses;
	int max, n;
	bool head;
};

static int on_test_headers(http_parser *hp)
{
	struct parse_probe *pp = hp->data;

	if (pp->n < pp->max)
		pp->statuses[pp->n] = (int)hp->status_code;
	return pp->head ? 1 : 0;
}

static int on_test_complete(http_parser *hp)
{
	struct parse_probe *pp = hp->data;

	pp->n++;
	return 0;
}

int loadgen_parse_responses(const char *buf, size_t len, bool head, int *statuses, int max)
{
	http_parser_settings s = {
	        .on_headers_complete = on_test_headers,
	        .on_message_complete = on_test_complete,
	};
	struct parse_probe pp = {.statuses = statuses, .max = max, .head = head};
	http_parser hp;
	size_t n;

	http_parser_init(&hp, HTTP_RESPONSE);
	hp.data = &pp;
	n = http_parser_execute(&hp, &s, buf, len);
	if (HTTP_PARSER_ERRNO(&hp) != HPE_OK || n != len)
		return -EPROTO;
	return pp.n;
}

static uint64_t splitmix64(uint64_t x)
{
	x += UINT64_C(0x9E3779B97F4A7C15);
	x = (x ^ (x >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
	x = (x ^ (x >> 27)) * UINT64_C(0x94D049BB133111EB);
	return x ^ (x >> 31);
}

size_t loadgen_pick(enum loadgen_order order, uint64_t seed, const double *cum, size_t n,
                    uint64_t idx)
{
	size_t lo = 0, hi;
	double u;

	if (n <= 1)
		return 0;
	if (order != LOADGEN_ORDER_WEIGHTED_RANDOM || !cum)
		return (size_t)(idx % n);
	/* Counter-based: request idx's draw depends on (seed, idx) only, so
	 * the same seed gives the same sequence whatever the timing. */
	u = (double)(splitmix64(seed ^ splitmix64(idx)) >> 11) * 0x1.0p-53 * cum[n - 1];
	hi = n - 1;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (cum[mid] > u)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}
