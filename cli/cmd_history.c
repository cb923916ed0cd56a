/* cmd_history: the commands about decisions and history: `gates` (latest
 * verdict per service and environment), `history SVC`, `trends SVC
 * METRIC [--step D]` (a table, and a sparkline when stdout is a
 * terminal), `rejudge ID GATE...`, `invalidate ID --reason`, `waive SVC
 * EXPR --reason --approver --expires`, `waivers SVC` and `unwaive SVC
 * ID`. One request each; with --json the server's body is printed as is.
 *
 * They must not retry, and must not put anything unchecked from the
 * command line into a URL (service and metric names are validated here;
 * free text goes in JSON bodies).
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "lib/gate/gate.h"
#include "lib/util/util.h"
#include "lib/util/json_text.h"

#define NAME_MAX_LEN 128
#define PATH_LEN     1024

enum {
	OPT_ENV = CTL_OPT_FIRST_LOCAL,
	OPT_VERDICT,
	OPT_LIMIT,
	OPT_CURSOR,
	OPT_SINCE,
	OPT_UNTIL,
	OPT_REASON,
	OPT_APPROVER,
	OPT_EXPIRES,
	OPT_STEP,
};

static const char gates_help[] =
        "Usage: readyctl gates\n\n"
        "Shows the latest verdict of every service and environment (invalidated\n"
        "runs do not count).\n";
static const char history_help[] =
        "Usage: readyctl history [--environment ENV] [--verdict PASS|FAIL|ERROR]\n"
        "                        [--limit N] [--cursor C] SERVICE\n\n"
        "Shows a service's decided runs, newest first.\n";
static const char trends_help[] =
        "Usage: readyctl trends [--environment ENV] [--since T] [--until T]\n"
        "                       [--step D] [--limit N] SERVICE PROBE.METRIC\n\n"
        "Shows one metric across runs, oldest first, with a sparkline on a\n"
        "terminal. T is an RFC 3339 time or a duration before now (30d).\n"
        "--step D (1h, 1d) aggregates the runs of each D-long bucket (aligned\n"
        "to the Unix epoch, so 1d is a UTC day): runs, min, avg, max and the\n"
        "last run's value; the sparkline then shows the averages.\n";
static const char rejudge_help[] =
        "Usage: readyctl rejudge ID GATE...\n\n"
        "Re-decides stored run ID with new gates (spec syntax, e.g.\n"
        "'latency.p95_ms < 120') from its stored measurements. The run keeps its\n"
        "verdict; the new decision is stored beside it. Exit status is that of\n"
        "the new verdict.\n";
static const char invalidate_help[] =
        "Usage: readyctl invalidate --reason TEXT ID\n\n"
        "Marks run ID invalid: it leaves baselines, trends and gates, and stays\n"
        "readable.\n";
static const char waive_help[] =
        "Usage: readyctl waive --reason TEXT --approver NAME --expires T\n"
        "                      [--environment ENV] SERVICE EXPR\n\n"
        "Waives failing gate EXPR of SERVICE until T (RFC 3339 or a duration\n"
        "such as 7d). Needs an admin token.\n";
static const char waivers_help[] =
        "Usage: readyctl waivers SERVICE\n\n"
        "Lists SERVICE's waivers, newest first, with their state: active,\n"
        "expired or revoked.\n";
static const char unwaive_help[] =
        "Usage: readyctl unwaive SERVICE ID\n\n"
        "Revokes waiver ID of SERVICE at once (it stays listed, revoked). Needs\n"
        "an admin token.\n";

static const struct {
	const char *cmd, *text;
} pages[] = {
        {"gates", gates_help},     {"history", history_help},       {"trends", trends_help},
        {"rejudge", rejudge_help}, {"invalidate", invalidate_help}, {"waive", waive_help},
        {"waivers", waivers_help}, {"unwaive", unwaive_help},
};

int history_help_print(FILE *f, const char *cmd)
{
	for (size_t i = 0; i < RD_ARRAY_SIZE(pages); i++) {
		if (!strcmp(cmd, pages[i].cmd)) {
			fputs(pages[i].text, f);
			return 0;
		}
	}
	return -ENOENT;
}

static bool name_ok(const char *s, const char *extra)
{
	size_t n = strlen(s);
	static const char base[] =
	        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-";

	if (n == 0 || n > NAME_MAX_LEN)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!strchr(base, s[i]) && !strchr(extra, s[i]))
			return false;
	return true;
}

/* Sends req. --json: prints the body, returns NULL with *code 0; else the
 * parsed object, or NULL with *code CTL_EXIT_USAGE after printing why. */
static json_t *fetch(struct ctl *ctl, const struct request *req, int *code)
{
	struct response r;
	json_t *doc = NULL;

	*code = ctl_connect(ctl);
	if (*code != 0)
		return NULL;
	if (client_send(&ctl->client, req, &r) < 0) {
		ctl_errorf("%s\n", ctl->client.message);
		*code = CTL_EXIT_USAGE;
		return NULL;
	}
	if (!response_ok(&r)) {
		client_print_http_error(&ctl->client, &r);
		*code = CTL_EXIT_USAGE;
	} else if (ctl->json) {
		fwrite(r.body, 1, r.len, stdout);
		if (r.len == 0 || r.body[r.len - 1] != '\n')
			fputc('\n', stdout);
	} else if (!(doc = response_json(&ctl->client, &r))) {
		*code = CTL_EXIT_USAGE;
	}
	response_free(&r);
	return doc;
}

/* Appends "&key=value" (value checked against extra-allowed characters). */
static int add_param(const char *cmd, char *path, size_t len, const char *key, const char *v,
                     const char *extra)
{
	size_t used = strlen(path);

	if (!v)
		return 0;
	if (!name_ok(v, extra)) {
		ctl_usage_error(cmd, "--%s: '%s' has characters that are not allowed", key, v);
		return -EINVAL;
	}
	if ((size_t)snprintf(path + used, len - used, "%c%s=%s", strchr(path, '?') ? '&' : '?', key,
	                     v) >= len - used)
		return -EINVAL;
	return 0;
}

/* Rows of items as a table: cols are JSON keys, heads their titles. */
static void print_items(const json_t *items, const char *const *cols, const char *const *heads,
                        size_t n, size_t status_col, bool color)
{
	struct table *t = table_new(n, heads);
	char cells[8][160];
	const char *row[8];
	const json_t *it;
	size_t i;

	if (!t || n > 8) {
		table_free(t);
		return;
	}
	json_array_foreach (items, i, it) {
		for (size_t c = 0; c < n; c++) {
			render_value(json_object_get(it, cols[c]), cells[c], sizeof(cells[c]));
			row[c] = cells[c];
		}
		table_add_row(t, row);
	}
	table_set_status_column(t, status_col);
	table_print(t, stdout, color);
	table_free(t);
}

static int parse_opts(struct ctl *ctl, const char *cmd, int argc, char **argv,
                      const char **vals /* indexed by OPT_* - OPT_ENV */)
{
	static const struct option opts[] = {
	        CTL_GLOBAL_LONG_OPTIONS,
	        {"environment", required_argument, NULL, OPT_ENV},
	        {"verdict", required_argument, NULL, OPT_VERDICT},
	        {"limit", required_argument, NULL, OPT_LIMIT},
	        {"cursor", required_argument, NULL, OPT_CURSOR},
	        {"since", required_argument, NULL, OPT_SINCE},
	        {"until", required_argument, NULL, OPT_UNTIL},
	        {"reason", required_argument, NULL, OPT_REASON},
	        {"approver", required_argument, NULL, OPT_APPROVER},
	        {"expires", required_argument, NULL, OPT_EXPIRES},
	        {"step", required_argument, NULL, OPT_STEP},
	        {0},
	};
	int opt;

	optind = 0; /* a fresh getopt scan (glibc keeps state otherwise) */
	while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		if (opt == 'h') {
			history_help_print(stdout, cmd);
			return CTL_EXIT_PASS;
		}
		if (opt >= OPT_ENV && opt <= OPT_STEP) {
			vals[opt - OPT_ENV] = optarg;
			continue;
		}
		if (!ctl_global_option(ctl, opt, optarg)) {
			ctl_bad_option(cmd, opt, argv);
			return CTL_EXIT_USAGE;
		}
	}
	return -1;
}

#define V(o) vals[(o)-OPT_ENV]

int cmd_gates(struct ctl *ctl, int argc, char **argv)
{
	static const char *const cols[] = {"service", "environment", "verdict",
	                                   "version", "run_id",      "finished_at"};
	static const char *const heads[] = {"SERVICE", "ENVIRONMENT", "VERDICT",
	                                    "VERSION", "RUN",         "FINISHED"};
	const char *vals[OPT_STEP - OPT_ENV + 1] = {0};
	struct request req = {.method = "GET", .path = "/v1/gates"};
	json_t *doc;
	int code = parse_opts(ctl, "gates", argc, argv, vals);

	if (code >= 0)
		return code;
	if (argc != optind) {
		ctl_usage_error("gates", "takes no arguments");
		return CTL_EXIT_USAGE;
	}
	doc = fetch(ctl, &req, &code);
	if (doc)
		print_items(json_object_get(doc, "items"), cols, heads, 6, 2, ctl->color);
	json_decref(doc);
	return code;
}

int cmd_history(struct ctl *ctl, int argc, char **argv)
{
	static const char *const cols[] = {"run_id",        "version", "environment",
	                                   "spec_version",  "verdict", "finished_at",
	                                   "invalidated_at"};
	static const char *const heads[] = {"RUN",     "VERSION",  "ENVIRONMENT", "SPEC",
	                                    "VERDICT", "FINISHED", "INVALIDATED"};
	const char *vals[OPT_STEP - OPT_ENV + 1] = {0};
	struct request req = {.method = "GET"};
	char path[PATH_LEN];
	json_t *doc;
	int code = parse_opts(ctl, "history", argc, argv, vals);

	if (code >= 0)
		return code;
	if (argc - optind != 1 || !name_ok(argv[optind], ".")) {
		ctl_usage_error("history", "expected one SERVICE name");
		return CTL_EXIT_USAGE;
	}
	snprintf(path, sizeof(path), "/v1/services/%s/history", argv[optind]);
	if (add_param("history", path, sizeof(path), "environment", V(OPT_ENV), ".") < 0 ||
	    add_param("history", path, sizeof(path), "verdict", V(OPT_VERDICT), "") < 0 ||
	    add_param("history", path, sizeof(path), "limit", V(OPT_LIMIT), "") < 0 ||
	    add_param("history", path, sizeof(path), "cursor", V(OPT_CURSOR), "") < 0)
		return CTL_EXIT_USAGE;
	req.path = path;
	doc = fetch(ctl, &req, &code);
	if (doc) {
		print_items(json_object_get(doc, "items"), cols, heads, 7, 4, ctl->color);
		if (json_is_string(json_object_get(doc, "next_cursor")))
			fprintf(stderr, "readyctl: more: repeat with --cursor %s\n",
			        json_string_value(json_object_get(doc, "next_cursor")));
	}
	json_decref(doc);
	return code;
}

/* One line of block characters scaled between the min and max of each
 * point's key. */
static void print_sparkline(const json_t *points, const char *key)
{
	static const char *const bars[] = {"▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"};
	double lo = INFINITY, hi = -INFINITY, v;
	const json_t *p;
	size_t i;

	json_array_foreach (points, i, p) {
		v = json_number_value(json_object_get(p, key));
		if (json_is_number(json_object_get(p, key))) {
			lo = fmin(lo, v);
			hi = fmax(hi, v);
		}
	}
	json_array_foreach (points, i, p) {
		if (!json_is_number(json_object_get(p, key))) {
			fputs(" ", stdout);
			continue;
		}
		v = json_number_value(json_object_get(p, key));
		fputs(bars[hi > lo ? (size_t)((v - lo) / (hi - lo) * 7.0 + 0.5) : 0], stdout);
	}
	if (json_array_size(points))
		printf("  min %g  max %g\n", lo, hi);
}

/* The trend as a table: one row per run, or per bucket with --step. */
static void print_trend(const json_t *doc, bool color)
{
	static const char *const cols[] = {"time", "run_id", "version", "value", "verdict"};
	static const char *const heads[] = {"TIME", "RUN", "VERSION", "VALUE", "VERDICT"};
	static const char *const bcols[] = {"t",   "runs", "min",         "avg",
	                                    "max", "last", "last_run_id", "last_version"};
	static const char *const bheads[] = {"BUCKET", "RUNS", "MIN",      "AVG",
	                                     "MAX",    "LAST", "LAST RUN", "LAST VERSION"};
	const json_t *points = json_object_get(doc, "points");
	bool buckets = json_is_string(json_object_get(doc, "step"));

	if (buckets)
		print_items(points, bcols, bheads, 8, 8, color);
	else
		print_items(points, cols, heads, 5, 4, color);
	if (isatty(STDOUT_FILENO))
		print_sparkline(points, buckets ? "avg" : "value");
	if (json_is_true(json_object_get(doc, "truncated")))
		fprintf(stderr, "readyctl: older %s left out: raise --limit or narrow --since\n",
		        buckets ? "buckets" : "points");
}

int cmd_trends(struct ctl *ctl, int argc, char **argv)
{
	const char *vals[OPT_STEP - OPT_ENV + 1] = {0};
	struct request req = {.method = "GET"};
	char path[PATH_LEN];
	json_t *doc;
	int code = parse_opts(ctl, "trends", argc, argv, vals);

	if (code >= 0)
		return code;
	if (argc - optind != 2 || !name_ok(argv[optind], ".") || !strchr(argv[optind + 1], '.')) {
		ctl_usage_error("trends", "expected SERVICE and PROBE.METRIC");
		return CTL_EXIT_USAGE;
	}
	snprintf(path, sizeof(path), "/v1/services/%s/trends", argv[optind]);
	if (add_param("trends", path, sizeof(path), "metric", argv[optind + 1], ".") < 0 ||
	    add_param("trends", path, sizeof(path), "environment", V(OPT_ENV), ".") < 0 ||
	    add_param("trends", path, sizeof(path), "since", V(OPT_SINCE), ":.+") < 0 ||
	    add_param("trends", path, sizeof(path), "until", V(OPT_UNTIL), ":.+") < 0 ||
	    add_param("trends", path, sizeof(path), "limit", V(OPT_LIMIT), "") < 0 ||
	    add_param("trends", path, sizeof(path), "step", V(OPT_STEP), ".") < 0)
		return CTL_EXIT_USAGE;
	req.path = path;
	doc = fetch(ctl, &req, &code);
	if (doc)
		print_trend(doc, ctl->color);
	json_decref(doc);
	return code;
}

/* POSTs body (stolen) to path; returns the response object or NULL. */
static json_t *post_json(struct ctl *ctl, const char *path, json_t *body, int *code)
{
	char *text = body ? rd_json_dumps(body, JSON_COMPACT) : NULL;
	struct request req = {.method = "POST",
	                      .path = path,
	                      .body = text,
	                      .body_len = text ? strlen(text) : 0,
	                      .content_type = "application/json"};
	json_t *doc = NULL;

	json_decref(body);
	if (!text) {
		ctl_errorf("out of memory\n");
		*code = CTL_EXIT_USAGE;
		return NULL;
	}
	doc = fetch(ctl, &req, code);
	free(text);
	return doc;
}

int cmd_rejudge(struct ctl *ctl, int argc, char **argv)
{
	const char *vals[OPT_STEP - OPT_ENV + 1] = {0};
	char path[64], verdict[16], original[16];
	enum verdict v;
	json_t *gates, *doc;
	int64_t id;
	int code = parse_opts(ctl, "rejudge", argc, argv, vals);

	if (code >= 0)
		return code;
	if (argc - optind < 2) {
		ctl_usage_error("rejudge", "expected a run ID and at least one gate");
		return CTL_EXIT_USAGE;
	}
	if (ctl_parse_id("rejudge", argv[optind], &id) < 0)
		return CTL_EXIT_USAGE;
	gates = json_array();
	for (int i = optind + 1; gates && i < argc; i++)
		json_array_append_new(gates, json_string(argv[i]));
	snprintf(path, sizeof(path), "/v1/runs/%lld/rejudge", (long long)id);
	doc = post_json(ctl, path, json_pack("{s:o}", "gates", gates), &code);
	if (!doc)
		return code;
	render_value(json_object_get(doc, "verdict"), verdict, sizeof(verdict));
	render_value(json_object_get(doc, "original_verdict"), original, sizeof(original));
	printf("run %lld rejudged (#%lld): %s (original verdict %s)\n", (long long)id,
	       (long long)json_integer_value(json_object_get(doc, "seq")), verdict, original);
	render_gates(stdout, json_object_get(doc, "gates"), ctl->color);
	code = gate_verdict_from_string(verdict, &v) < 0 ? CTL_EXIT_ERROR
	       : v == VERDICT_PASS                       ? CTL_EXIT_PASS
	       : v == VERDICT_FAIL                       ? CTL_EXIT_FAIL
	                                                 : CTL_EXIT_ERROR;
	json_decref(doc);
	return code;
}

int cmd_invalidate(struct ctl *ctl, int argc, char **argv)
{
	const char *vals[OPT_STEP - OPT_ENV + 1] = {0};
	char path[64];
	json_t *doc;
	int64_t id;
	int code = parse_opts(ctl, "invalidate", argc, argv, vals);

	if (code >= 0)
		return code;
	if (!V(OPT_REASON) || argc - optind != 1) {
		ctl_usage_error("invalidate", "expected --reason TEXT and one run ID");
		return CTL_EXIT_USAGE;
	}
	if (ctl_parse_id("invalidate", argv[optind], &id) < 0)
		return CTL_EXIT_USAGE;
	snprintf(path, sizeof(path), "/v1/runs/%lld/invalidate", (long long)id);
	doc = post_json(ctl, path, json_pack("{s:s}", "reason", V(OPT_REASON)), &code);
	if (doc)
		printf("run %lld invalidated\n", (long long)id);
	json_decref(doc);
	return code;
}

int cmd_waive(struct ctl *ctl, int argc, char **argv)
{
	const char *vals[OPT_STEP - OPT_ENV + 1] = {0};
	char path[256];
	json_t *doc;
	int code = parse_opts(ctl, "waive", argc, argv, vals);

	if (code >= 0)
		return code;
	if (argc - optind != 2 || !name_ok(argv[optind], ".") || !V(OPT_REASON) ||
	    !V(OPT_APPROVER) || !V(OPT_EXPIRES)) {
		ctl_usage_error("waive",
		                "expected --reason, --approver, --expires, SERVICE and EXPR");
		return CTL_EXIT_USAGE;
	}
	snprintf(path, sizeof(path), "/v1/services/%s/waivers", argv[optind]);
	doc = post_json(ctl, path,
	                json_pack("{s:s, s:s, s:s, s:s, s:s?}", "expr", argv[optind + 1], "reason",
	                          V(OPT_REASON), "approver", V(OPT_APPROVER), "expires",
	                          V(OPT_EXPIRES), "environment", V(OPT_ENV)),
	                &code);
	if (doc) {
		char expr[256], until[64];

		render_value(json_object_get(doc, "expr"), expr, sizeof(expr));
		render_value(json_object_get(doc, "expires_at"), until, sizeof(until));
		printf("waiver %lld: %s until %s\n",
		       (long long)json_integer_value(json_object_get(doc, "id")), expr, until);
	}
	json_decref(doc);
	return code;
}

/* A waiver's state in one word, for the table. */
static const char *waiver_state(const json_t *w)
{
	if (json_is_true(json_object_get(w, "active")))
		return "active";
	return json_is_true(json_object_get(w, "expired")) ? "expired" : "revoked";
}

int cmd_waivers(struct ctl *ctl, int argc, char **argv)
{
	static const char *const cols[] = {"id",       "environment", "expr",
	                                   "approver", "expires_at",  "state"};
	static const char *const heads[] = {"ID",       "ENVIRONMENT", "EXPR",
	                                    "APPROVER", "EXPIRES",     "STATE"};
	const char *vals[OPT_STEP - OPT_ENV + 1] = {0};
	struct request req = {.method = "GET"};
	char path[PATH_LEN];
	json_t *doc, *w;
	size_t i;
	int code = parse_opts(ctl, "waivers", argc, argv, vals);

	if (code >= 0)
		return code;
	if (argc - optind != 1 || !name_ok(argv[optind], ".")) {
		ctl_usage_error("waivers", "expected one SERVICE name");
		return CTL_EXIT_USAGE;
	}
	snprintf(path, sizeof(path), "/v1/services/%s/waivers", argv[optind]);
	req.path = path;
	doc = fetch(ctl, &req, &code);
	if (doc) {
		json_array_foreach (json_object_get(doc, "items"), i, w)
			json_object_set_new(w, "state", json_string(waiver_state(w)));
		print_items(json_object_get(doc, "items"), cols, heads, 6, 5, ctl->color);
	}
	json_decref(doc);
	return code;
}

int cmd_unwaive(struct ctl *ctl, int argc, char **argv)
{
	const char *vals[OPT_STEP - OPT_ENV + 1] = {0};
	struct request req = {.method = "DELETE"};
	char path[PATH_LEN];
	json_t *doc;
	int64_t id;
	int code = parse_opts(ctl, "unwaive", argc, argv, vals);

	if (code >= 0)
		return code;
	if (argc - optind != 2 || !name_ok(argv[optind], ".")) {
		ctl_usage_error("unwaive", "expected SERVICE and a waiver ID");
		return CTL_EXIT_USAGE;
	}
	if (ctl_parse_id("unwaive", argv[optind + 1], &id) < 0)
		return CTL_EXIT_USAGE;
	snprintf(path, sizeof(path), "/v1/services/%s/waivers/%lld", argv[optind], (long long)id);
	req.path = path;
	doc = fetch(ctl, &req, &code);
	if (doc) {
		char expr[256];

		render_value(json_object_get(doc, "expr"), expr, sizeof(expr));
		printf("waiver %lld revoked: %s\n", (long long)id, expr);
	}
	json_decref(doc);
	return code;
}
