/* test-policy: the allowlist (entries, address checks, URL parsing), the
 * spec limits, and the asynchronous spec check on a private loop. Names
 * resolved here are "localhost" only; nothing connects anywhere. */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "lib/policy/policy.h"
#include "lib/spec/spec.h"

static struct policy *make(const char *json)
{
	json_t *entries = json ? json_loads(json, 0, NULL) : NULL;
	struct policy *p = NULL;
	char err[256];

	ck_assert_int_eq(policy_new(entries, &p, err, sizeof(err)), 0);
	json_decref(entries);
	return p;
}

static const struct {
	const char *entry;
	bool ok;
} entry_cases[] = {
        {"127.0.0.1", true},
        {"10.0.0.0/8", true},
        {"10.0.0.0/8:80", true},
        {"models.internal", true},
        {"*.svc.local:8000-8100", true},
        {"[::1]", true},
        {"[fd00::/8]:443", true},
        {"::1", true},
        {"fe80::/10", true},
        {"10.0.0.0/33", false},
        {"host:0", false},
        {"host:90-80", false},
        {"host:70000", false},
        {"", false},
        {"bad host", false},
        {"*.", false},
        {"[::1", false},
        {"[::1]x", false},
        {"-lead.example", false},
};

START_TEST(test_entries)
{
	char json[128], err[256] = "";
	struct policy *p = NULL;
	json_t *e;
	int r;

	snprintf(json, sizeof(json), "[\"%s\"]", entry_cases[_i].entry);
	e = json_loads(json, 0, NULL);
	r = policy_new(e, &p, err, sizeof(err));
	json_decref(e);
	ck_assert_msg((r == 0) == entry_cases[_i].ok, "%s: %d %s", entry_cases[_i].entry, r, err);
	if (r < 0)
		ck_assert_ptr_nonnull(strstr(err, "allowed_targets[0]"));
	policy_unref(p);
}
END_TEST

START_TEST(test_not_a_list)
{
	json_t *e = json_loads("{\"a\": 1}", 0, NULL);
	struct policy *p = NULL;
	char err[256];

	ck_assert_int_eq(policy_new(e, &p, err, sizeof(err)), -EINVAL);
	json_decref(e);
	e = json_loads("[1]", 0, NULL);
	ck_assert_int_eq(policy_new(e, &p, err, sizeof(err)), -EINVAL);
	json_decref(e);
	ck_assert_ptr_null(p);
}
END_TEST

static void sockaddr_for(const char *addr, int port, struct sockaddr_storage *ss)
{
	struct sockaddr_in *in = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, addr, &in->sin_addr) == 1) {
		in->sin_family = AF_INET;
		in->sin_port = htons((uint16_t)port);
		return;
	}
	ck_assert_int_eq(inet_pton(AF_INET6, addr, &in6->sin6_addr), 1);
	in6->sin6_family = AF_INET6;
	in6->sin6_port = htons((uint16_t)port);
}

static const struct {
	const char *entries; /* JSON or NULL */
	const char *addr;
	int port;
	const char *host;
	int want;
} addr_cases[] = {
        /* no entries: all but link-local, metadata and unspecified */
        {NULL, "10.1.2.3", 80, NULL, 0},
        {NULL, "169.254.169.254", 80, NULL, -EPERM},
        {NULL, "::ffff:169.254.169.254", 80, NULL, -EPERM},
        {NULL, "fe80::1", 80, NULL, -EPERM},
        {NULL, "fd00:ec2::254", 80, NULL, -EPERM},
        {NULL, "100.100.100.200", 80, NULL, -EPERM},
        {NULL, "0.0.0.0", 80, NULL, -EPERM},
        {"[]", "127.0.0.1", 80, NULL, 0},
        /* IPv6 forms that embed a refused IPv4 address */
        {NULL, "::a9fe:a9fe", 80, NULL, -EPERM},
        {NULL, "::169.254.169.254", 80, NULL, -EPERM},
        {NULL, "64:ff9b::169.254.169.254", 80, NULL, -EPERM},
        {NULL, "64:ff9b::a9fe:a9fe", 80, NULL, -EPERM},
        {NULL, "64:ff9b:1::a9fe:a9fe", 80, NULL, -EPERM},
        {NULL, "64:ff9b:1:a9fe:a9:fe00::", 80, NULL, -EPERM},
        {NULL, "2002:a9fe:a9fe::1", 80, NULL, -EPERM},
        {NULL, "2001:0:1:2:3:4:5601:5601", 80, NULL, -EPERM},
        {NULL, "::100.100.100.200", 80, NULL, -EPERM},
        {NULL, "64:ff9b::0.0.0.0", 80, NULL, -EPERM},
        {NULL, "::1", 80, NULL, 0},
        {NULL, "64:ff9b::10.1.2.3", 80, NULL, 0},
        {NULL, "2002:a01:203::1", 80, NULL, 0},
        {"[\"127.0.0.1\"]", "::127.0.0.1", 80, NULL, 0},
        {"[\"127.0.0.1\"]", "64:ff9b::127.0.0.1", 80, NULL, 0},
        {"[\"127.0.0.1\"]", "64:ff9b::127.0.0.2", 80, NULL, -EPERM},
        {"[\"169.254.169.254/32\"]", "64:ff9b::169.254.169.254", 80, NULL, 0},
        /* only 127.0.0.1 */
        {"[\"127.0.0.1\"]", "127.0.0.1", 8080, "127.0.0.1", 0},
        {"[\"127.0.0.1\"]", "127.0.0.2", 8080, "127.0.0.2", -EPERM},
        {"[\"127.0.0.1\"]", "::ffff:127.0.0.1", 80, NULL, 0},
        {"[\"127.0.0.1\"]", "::1", 80, NULL, -EPERM},
        /* CIDRs and ports */
        {"[\"10.0.0.0/8:8000-8100\"]", "10.9.9.9", 8000, NULL, 0},
        {"[\"10.0.0.0/8:8000-8100\"]", "10.9.9.9", 8101, NULL, -EPERM},
        {"[\"10.0.0.0/8\"]", "11.0.0.1", 80, NULL, -EPERM},
        {"[\"192.168.1.128/25\"]", "192.168.1.200", 80, NULL, 0},
        {"[\"192.168.1.128/25\"]", "192.168.1.100", 80, NULL, -EPERM},
        {"[\"[fd00::/8]:443\"]", "fd12::1", 443, NULL, 0},
        {"[\"[fd00::/8]:443\"]", "fd12::1", 80, NULL, -EPERM},
        /* names: by the URL's host; never unlock link-local */
        {"[\"models.internal\"]", "10.0.0.5", 80, "models.internal", 0},
        {"[\"models.internal\"]", "10.0.0.5", 80, "MODELS.internal", 0},
        {"[\"models.internal\"]", "10.0.0.5", 80, "other.internal", -EPERM},
        {"[\"models.internal\"]", "169.254.169.254", 80, "models.internal", -EPERM},
        {"[\"*.svc.local\"]", "10.0.0.5", 80, "a.b.svc.local", 0},
        {"[\"*.svc.local\"]", "10.0.0.5", 80, "svc.local", -EPERM},
        {"[\"*.svc.local\"]", "10.0.0.5", 80, "evilsvc.local", -EPERM},
        /* listed explicitly: allowed */
        {"[\"169.254.169.254/32\"]", "169.254.169.254", 80, NULL, 0},
};

START_TEST(test_check_addr)
{
	struct policy *p = make(addr_cases[_i].entries);
	struct sockaddr_storage ss;

	sockaddr_for(addr_cases[_i].addr, addr_cases[_i].port, &ss);
	ck_assert_int_eq(policy_check_addr(p, (struct sockaddr *)&ss, addr_cases[_i].host),
	                 addr_cases[_i].want);
	policy_unref(p);
}
END_TEST

static const struct {
	const char *url;
	int want;
	const char *host;
	int port;
} url_cases[] = {
        {"http://127.0.0.1:8080/x", 0, "127.0.0.1", 8080},
        {"https://example.com/", 0, "example.com", 443},
        {"http://example.com", 0, "example.com", 80},
        {"http://[::1]:9/", 0, "[::1]", 9},
        {"file:///etc/passwd", -EPROTO, NULL, 0},
        {"gopher://x/", -EPROTO, NULL, 0},
        {"not a url", -EINVAL, NULL, 0},
};

START_TEST(test_url)
{
	char host[256];
	int port = -1;

	ck_assert_int_eq(policy_url_host_port(url_cases[_i].url, host, sizeof(host), &port),
	                 url_cases[_i].want);
	if (url_cases[_i].want == 0) {
		ck_assert_str_eq(host, url_cases[_i].host);
		ck_assert_int_eq(port, url_cases[_i].port);
	}
}
END_TEST

static struct spec *parse(const char *yaml)
{
	struct spec_error err = {0};
	struct spec *s = NULL;

	ck_assert_msg(spec_parse(yaml, strlen(yaml), SPEC_FORMAT_YAML, &s, &err) == 0, "%s: %s",
	              err.path, err.message);
	return s;
}

#define SPEC_HEAD "apiVersion: readyd/v1\nservice: s\nversion: '1'\ntimeout: %s\n%s%s%sprobes:\n"

/* target NULL: the spec has none (load probes need one). */
static struct spec *spec_with(const char *timeout, const char *target, const char *probes)
{
	char buf[2048];

	snprintf(buf, sizeof(buf), SPEC_HEAD "%sgates:\n  - a.ok == 1\n", timeout,
	         target ? "target: {url: '" : "", target ? target : "", target ? "'}\n" : "",
	         probes);
	return parse(buf);
}

#define DRILL                                                                                      \
	"  - {name: a, type: alert-drill, prometheus: 'http://127.0.0.1/', alert: A, trigger: "    \
	"{url: 'http://127.0.0.1/t'}, "
static const struct {
	const char *timeout;
	const char *probes;
	const char *want_path; /* NULL: within limits */
} limit_cases[] = {
        {"5m", "  - {name: a, type: http, url: 'http://127.0.0.1/'}\n", NULL},
        {"3h", "  - {name: a, type: http, url: 'http://127.0.0.1/'}\n", "timeout"},
        {"5m",
         "  - {name: a, type: http, url: 'http://127.0.0.1/'}\n"
         "  - {name: b, type: http, url: 'http://127.0.0.1/'}\n"
         "  - {name: c, type: http, url: 'http://127.0.0.1/'}\n",
         "probes"},
        {"5m", "  - {name: a, type: load, mode: closed, connections: 9, duration: 1s}\n",
         "probes[0].connections"},
        {"5m", "  - {name: a, type: load, mode: rate, rate: 101, connections: 4, duration: 1s}\n",
         "probes[0].rate"},
        {"5m", "  - {name: a, type: load, mode: closed, connections: 4, duration: 2m}\n",
         "probes[0].duration"},
        /* An alert drill's traffic is load under the same caps. */
        {"5m", DRILL "traffic: {rate: 101}}\n", "probes[0].traffic.rate"},
        {"5m", DRILL "traffic: {rate: 10, connections: 9}}\n", "probes[0].traffic.connections"},
        {"5m", DRILL "traffic: {rate: 100, connections: 8}}\n", NULL},
        /* compare: 2 x 10 x 3s = 60s fits, 2 x 11 x 3s does not */
        {"5m",
         "  - {name: a, type: compare, baseline: 'http://127.0.0.1/', candidate: "
         "'http://127.0.0.1/', mode: closed, connections: 4, segments: 10, segment_duration: 3s}\n",
         NULL},
        {"5m",
         "  - {name: a, type: compare, baseline: 'http://127.0.0.1/', candidate: "
         "'http://127.0.0.1/', mode: closed, connections: 4, segments: 11, segment_duration: 3s}\n",
         "probes[0].segments"},
        {"5m",
         "  - {name: a, type: compare, baseline: 'http://127.0.0.1/', candidate: "
         "'http://127.0.0.1/', mode: closed, connections: 9}\n",
         "probes[0].connections"},
};

#undef DRILL

START_TEST(test_limits)
{
	struct policy_limits l = {
	        .max_probes = 2,
	        .max_run_duration_ms = 3600 * 1000,
	        .max_load_connections = 8,
	        .max_load_rate = 100,
	        .max_probe_duration_ms = 60 * 1000,
	};
	struct spec *s =
	        spec_with(limit_cases[_i].timeout, "http://127.0.0.1/", limit_cases[_i].probes);
	struct spec_error err = {0};
	int r = policy_check_limits(&l, s, &err);

	if (limit_cases[_i].want_path) {
		ck_assert_int_eq(r, -EPERM);
		ck_assert_str_eq(err.path, limit_cases[_i].want_path);
		ck_assert_ptr_nonnull(strstr(err.message, "limit"));
	} else {
		ck_assert_int_eq(r, 0);
	}
	spec_free(s);
}
END_TEST

struct outcome {
	int calls, err;
	char path[64], message[256];
};

static void on_checked(void *userdata, int err, const char *path, const char *message)
{
	struct outcome *o = userdata;

	o->calls++;
	o->err = err;
	snprintf(o->path, sizeof(o->path), "%s", path);
	snprintf(o->message, sizeof(o->message), "%s", message);
}

static const struct {
	const char *entries;
	const char *probes;
	int want;
	const char *want_path;
	const char *target; /* NULL: none */
} spec_cases[] = {
        {"[\"127.0.0.1\"]", "  - {name: a, type: http, url: 'http://127.0.0.1:9/'}\n", 0, ""},
        {"[\"127.0.0.1\"]", "  - {name: a, type: http, url: 'http://127.0.0.2:9/'}\n", -EPERM,
         "probes[0].url"},
        {NULL, "  - {name: a, type: http, url: 'http://169.254.169.254/latest/'}\n", -EPERM,
         "probes[0].url"},
        {"[\"127.0.0.1\"]", "  - {name: a, type: http, url: 'http://localhost:9/'}\n", 0, ""},
        {"[\"127.0.0.1\"]",
         "  - {name: a, type: load, mode: closed, "
         "server_latency: {prometheus: "
         "'http://127.0.0.4:9/', metric: m}}\n",
         -EPERM, "probes[0].server_latency.prometheus", "http://127.0.0.1:9/"},
        {"[\"127.0.0.1\"]",
         "  - {name: a, type: dashboard, prometheus: 'http://127.0.0.1:9/', url: "
         "'http://127.0.0.5:3000/api/dashboards/uid/x'}\n",
         -EPERM, "probes[0].url"},
        {"[\"127.0.0.1\"]", "  - {name: a, type: scan-report, url: 'http://127.0.0.6:9/r'}\n",
         -EPERM, "probes[0].url"},
        {"[\"127.0.0.1\"]",
         "  - {name: a, type: compare, baseline: 'http://127.0.0.1:9/', candidate: "
         "'http://127.0.0.4:9/', mode: closed}\n",
         -EPERM, "probes[0].candidate"},
        {"[\"127.0.0.1\"]", "  - {name: a, type: infrastructure, source: 'http://127.0.0.5:9/m'}\n",
         -EPERM, "probes[0].source"},
        {"[\"127.0.0.1\"]", "  - {name: a, type: infrastructure}\n", 0, ""},
        {"[\"10.0.0.0/8\"]", "  - {name: a, type: http, url: 'http://localhost:9/'}\n", -EPERM,
         "probes[0].url"},
        {"[\"127.0.0.1\"]",
         "  - {name: a, type: http, url: 'http://127.0.0.1:9/'}\n"
         "  - {name: b, type: rollback-drill, trigger: {url: 'http://127.0.0.1:9/t'},"
         " version_url: 'http://127.0.0.3:9/v', expect_version: '1', within: 1s}\n",
         -EPERM, "probes[1].version_url"},
};

START_TEST(test_check_spec)
{
	uv_loop_t loop;
	struct policy *p = make(spec_cases[_i].entries);
	struct spec *s = spec_with("5m", spec_cases[_i].target, spec_cases[_i].probes);
	struct outcome o = {0};

	ck_assert_int_eq(uv_loop_init(&loop), 0);
	ck_assert_int_eq(policy_check_spec(&loop, p, s, on_checked, &o, NULL), 0);
	policy_unref(p); /* the check holds its own reference */
	ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
	ck_assert_int_eq(o.calls, 1);
	ck_assert_msg(o.err == spec_cases[_i].want, "%d: %s", o.err, o.message);
	ck_assert_str_eq(o.path, spec_cases[_i].want_path);
	spec_free(s);
	ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

/* Cancelled while a name is being resolved: no callback, no leak. */
START_TEST(test_cancel_while_resolving)
{
	uv_loop_t loop;
	struct policy *p = make("[\"127.0.0.1\"]");
	struct spec *s =
	        spec_with("5m", NULL, "  - {name: a, type: http, url: 'http://localhost:9/'}\n");
	struct outcome o = {0};
	struct policy_check *c = NULL;

	ck_assert_int_eq(uv_loop_init(&loop), 0);
	ck_assert_int_eq(policy_check_spec(&loop, p, s, on_checked, &o, &c), 0);
	ck_assert_ptr_nonnull(c);
	policy_check_cancel(c);
	spec_free(s);
	policy_unref(p);
	ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
	ck_assert_int_eq(o.calls, 0);
	ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

static Suite *policy_suite(void)
{
	Suite *s = suite_create("policy");
	TCase *tc = tcase_create("policy");

	tcase_add_loop_test(tc, test_entries, 0, sizeof(entry_cases) / sizeof(entry_cases[0]));
	tcase_add_test(tc, test_not_a_list);
	tcase_add_loop_test(tc, test_check_addr, 0, sizeof(addr_cases) / sizeof(addr_cases[0]));
	tcase_add_loop_test(tc, test_url, 0, sizeof(url_cases) / sizeof(url_cases[0]));
	tcase_add_loop_test(tc, test_limits, 0, sizeof(limit_cases) / sizeof(limit_cases[0]));
	tcase_add_loop_test(tc, test_check_spec, 0, sizeof(spec_cases) / sizeof(spec_cases[0]));
	tcase_add_test(tc, test_cancel_while_resolving);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(policy_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
