/* cmd_run: the commands about runs that already exist: `status`, `cancel`
 * and `runs`. Each is one request and one rendering; `status --wait`
 * hands over to follow.c. With --json they print the server's body as is,
 * so scripts see exactly what the API returned.
 *
 * None of them changes a run except `cancel`, and none retries.
 */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "lib/util/util.h"

#define RUNS_MAX_LIMIT  1000
#define RUNS_MAX_FILTER 512

enum {
	OPT_WAIT = CTL_OPT_FIRST_LOCAL,
	OPT_TIMEOUT,
	OPT_SERVICE,
	OPT_STATE,
	OPT_LIMIT,
	OPT_CURSOR,
};

static void print_raw(const struct response *r)
{
	fwrite(r->body, 1, r->len, stdout);
	if (r->len == 0 || r->body[r->len - 1] != '\n')
		fputc('\n', stdout);
}

/* Sends req; on success either prints the raw body (--json, returns NULL
 * with *ret_code 0) or returns the parsed object. On failure prints why and
 * returns NULL with *ret_code CTL_EXIT_USAGE. */
static json_t *fetch(struct ctl *ctl, const struct request *req, int *ret_code)
{
	struct response r;
	json_t *doc = NULL;

	*ret_code = ctl_connect(ctl);
	if (*ret_code != 0)
		return NULL;
	if (client_send(&ctl->client, req, &r) < 0) {
		ctl_errorf("%s\n", ctl->client.message);
		*ret_code = CTL_EXIT_USAGE;
		return NULL;
	}
	if (!response_ok(&r)) {
		client_print_http_error(&ctl->client, &r);
		*ret_code = CTL_EXIT_USAGE;
	} else if (ctl->json) {
		print_raw(&r);
	} else if (!(doc = response_json(&ctl->client, &r))) {
		*ret_code = CTL_EXIT_USAGE;
	}
	response_free(&r);
	return doc;
}

/* Common tail of the option loop of commands taking exactly one ID. */
static int one_id(const char *cmd, int argc, char **argv, int64_t *ret_id)
{
	if (argc - optind != 1) {
		ctl_usage_error(cmd, "expected exactly one run ID");
		return CTL_EXIT_USAGE;
	}
	return ctl_parse_id(cmd, argv[optind], ret_id) < 0 ? CTL_EXIT_USAGE : -1;
}

static int parse_status(struct ctl *ctl, int argc, char **argv, bool *wait, int64_t *timeout_ms,
                        int64_t *ret_id)
{
	static const struct option opts[] = {
	        CTL_GLOBAL_LONG_OPTIONS,
	        {"wait", no_argument, NULL, OPT_WAIT},
	        {"timeout", required_argument, NULL, OPT_TIMEOUT},
	        {0},
	};
	int c;

	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		if (ctl_global_option(ctl, c, optarg))
			continue;
		if (c == 'h')
			return help_print(stdout, "status"), CTL_EXIT_PASS;
		if (c == OPT_WAIT) {
			*wait = true;
		} else if (c == OPT_TIMEOUT) {
			if (rd_parse_duration(optarg, timeout_ms) < 0 || *timeout_ms <= 0) {
				ctl_usage_error(
				        "status",
				        "invalid --timeout '%s': expected a duration such as 90s or 30m",
				        optarg);
				return CTL_EXIT_USAGE;
			}
		} else {
			ctl_bad_option("status", c, argv);
			return CTL_EXIT_USAGE;
		}
	}
	if (*timeout_ms && !*wait) {
		ctl_usage_error("status", "--timeout needs --wait");
		return CTL_EXIT_USAGE;
	}
	return one_id("status", argc, argv, ret_id);
}

int cmd_status(struct ctl *ctl, int argc, char **argv)
{
	struct request req = {.method = "GET"};
	int64_t id = 0, timeout_ms = 0;
	bool wait = false;
	char path[64];
	json_t *run;
	int code;

	code = parse_status(ctl, argc, argv, &wait, &timeout_ms, &id);
	if (code >= 0)
		return code;
	snprintf(path, sizeof(path), "/v1/runs/%lld", (long long)id);
	req.path = path;
	if (wait) {
		/* The first request is not retried: a wrong URL or id should fail
		 * at once, not after the retry window. */
		code = ctl_connect(ctl);
		run = code == 0 ? client_get_json(&ctl->client, &req) : NULL;
		if (run)
			code = follow_run(ctl, id, run, timeout_ms);
		else if (code == 0)
			code = CTL_EXIT_USAGE;
		json_decref(run);
		return code;
	}
	run = fetch(ctl, &req, &code);
	if (run)
		render_status(stdout, run, ctl->color);
	json_decref(run);
	return code;
}

int cmd_cancel(struct ctl *ctl, int argc, char **argv)
{
	static const struct option opts[] = {CTL_GLOBAL_LONG_OPTIONS, {0}};
	struct request req = {.method = "POST"};
	char path[64], state[64];
	int64_t id = 0;
	json_t *run;
	int c, code;

	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		if (ctl_global_option(ctl, c, optarg))
			continue;
		if (c == 'h')
			return help_print(stdout, "cancel"), CTL_EXIT_PASS;
		ctl_bad_option("cancel", c, argv);
		return CTL_EXIT_USAGE;
	}
	code = one_id("cancel", argc, argv, &id);
	if (code >= 0)
		return code;
	snprintf(path, sizeof(path), "/v1/runs/%lld/cancel", (long long)id);
	req.path = path;
	run = fetch(ctl, &req, &code);
	if (run) {
		render_value(json_object_get(run, "state"), state, sizeof(state));
		printf("run %lld: %s\n", (long long)id, state);
	}
	json_decref(run);
	return code;
}

struct runs_args {
	const char *service;
	const char *state;
	const char *cursor;
	int64_t limit;
};

static int parse_runs_option(struct runs_args *a, int c, const char *arg)
{
	if (c == OPT_LIMIT) {
		if (rd_parse_int64(arg, 1, RUNS_MAX_LIMIT, &a->limit) < 0) {
			ctl_usage_error("runs", "invalid --limit '%s': expected 1-%d", arg,
			                RUNS_MAX_LIMIT);
			return CTL_EXIT_USAGE;
		}
		return -1;
	}
	if (strlen(arg) > RUNS_MAX_FILTER || !*arg) {
		ctl_usage_error("runs", "filter values must be 1-%d characters", RUNS_MAX_FILTER);
		return CTL_EXIT_USAGE;
	}
	if (c == OPT_SERVICE)
		a->service = arg;
	else if (c == OPT_STATE)
		a->state = arg;
	else
		a->cursor = arg;
	return -1;
}

static int parse_runs(struct ctl *ctl, struct runs_args *a, int argc, char **argv)
{
	static const struct option opts[] = {
	        CTL_GLOBAL_LONG_OPTIONS,
	        {"service", required_argument, NULL, OPT_SERVICE},
	        {"state", required_argument, NULL, OPT_STATE},
	        {"limit", required_argument, NULL, OPT_LIMIT},
	        {"cursor", required_argument, NULL, OPT_CURSOR},
	        {0},
	};
	int c, code;

	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		if (ctl_global_option(ctl, c, optarg))
			continue;
		if (c == 'h')
			return help_print(stdout, "runs"), CTL_EXIT_PASS;
		if (c < OPT_SERVICE || c > OPT_CURSOR) {
			ctl_bad_option("runs", c, argv);
			return CTL_EXIT_USAGE;
		}
		code = parse_runs_option(a, c, optarg);
		if (code >= 0)
			return code;
	}
	if (optind != argc) {
		ctl_usage_error("runs", "unexpected argument '%s'", argv[optind]);
		return CTL_EXIT_USAGE;
	}
	return -1;
}

/* Appends "&name=escaped(value)" to path; returns -ENOMEM or -E2BIG. */
static int add_query(struct client *c, char *path, size_t len, const char *name, const char *value)
{
	size_t n = strlen(path);
	char *esc;
	int w;

	if (!value)
		return 0;
	esc = curl_easy_escape(c->curl, value, 0);
	if (!esc)
		return -ENOMEM;
	w = snprintf(path + n, len - n, "%c%s=%s", strchr(path, '?') ? '&' : '?', name, esc);
	curl_free(esc);
	return w < 0 || (size_t)w >= len - n ? -E2BIG : 0;
}

static int build_runs_path(struct ctl *ctl, const struct runs_args *a, char *path, size_t len)
{
	char limit[24];
	int ret = 0;

	snprintf(path, len, "/v1/runs");
	snprintf(limit, sizeof(limit), "%lld", (long long)a->limit);
	ret = ret ? ret : add_query(&ctl->client, path, len, "service", a->service);
	ret = ret ? ret : add_query(&ctl->client, path, len, "state", a->state);
	ret = ret ? ret : add_query(&ctl->client, path, len, "limit", a->limit ? limit : NULL);
	ret = ret ? ret : add_query(&ctl->client, path, len, "cursor", a->cursor);
	if (ret < 0)
		ctl_errorf("cannot build the query: %s\n", strerror(-ret));
	return ret;
}

int cmd_runs(struct ctl *ctl, int argc, char **argv)
{
	struct runs_args a = {0};
	struct request req = {.method = "GET"};
	char path[8 * RUNS_MAX_FILTER], cursor[RUNS_MAX_FILTER + 1];
	const json_t *next;
	json_t *list;
	int code;

	code = parse_runs(ctl, &a, argc, argv);
	if (code >= 0)
		return code;
	code = ctl_connect(ctl);
	if (code != 0)
		return code;
	if (build_runs_path(ctl, &a, path, sizeof(path)) < 0)
		return CTL_EXIT_USAGE;
	req.path = path;
	list = fetch(ctl, &req, &code);
	if (!list)
		return code;
	if (!json_is_array(json_object_get(list, "items"))) {
		ctl_errorf("unexpected JSON from %s: no items[]\n", ctl->client.base_url);
		json_decref(list);
		return CTL_EXIT_USAGE;
	}
	render_runs(stdout, json_object_get(list, "items"), ctl->color);
	next = json_object_get(list, "next_cursor");
	if (json_is_string(next)) {
		render_clean(json_string_value(next), cursor, sizeof(cursor));
		fprintf(stderr, "readyctl: more runs: repeat with --cursor '%s'\n", cursor);
	}
	json_decref(list);
	return code;
}
