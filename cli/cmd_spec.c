/* cmd_spec: stored specs and runs of them. `spec put SVC ENV FILE` stores
 * a new version of the spec a service is gated with in an environment,
 * `spec get` prints one back as it was sent, `spec diff` shows what
 * changed between two versions (the latest and the one before by
 * default), and `run SVC VERSION` starts a run of the latest stored spec
 * with the same --wait, --junit and exit codes as `submit`.
 *
 * The server validates; this file only builds requests and prints.
 */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "lib/util/json_text.h"
#include "lib/util/util.h"

#define NAME_MAX_LEN 128
#define PATH_LEN     (3 * NAME_MAX_LEN + 96)

enum {
	OPT_VERSION = CTL_OPT_FIRST_LOCAL,
	OPT_FORMAT,
	OPT_ENV,
	OPT_TARGET,
	OPT_WAIT,
	OPT_TIMEOUT,
	OPT_KEY,
	OPT_JUNIT,
	OPT_REPORT,
};

/* Service and environment names: what the server's paths accept. */
static bool name_ok(const char *s)
{
	size_t n = strlen(s);

	return n > 0 && n <= NAME_MAX_LEN &&
	       strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

static int check_names(const char *cmd, const char *svc, const char *env)
{
	if (name_ok(svc) && name_ok(env))
		return 0;
	ctl_usage_error(cmd, "SERVICE and ENVIRONMENT are names of [A-Za-z0-9._-], 1-128 long");
	return -EINVAL;
}

/* Sends req; the parsed answer, or NULL with *code set after printing why
 * (a printed --json answer is NULL with *code 0 when print_json). file:
 * the spec file sent, whose refusal is told as FILE:LINE: path: message;
 * NULL for other requests. */
static json_t *send_json(struct ctl *ctl, const struct request *req, bool print_json,
                         const char *file, int *code)
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
		if (file)
			client_print_spec_error(&ctl->client, &r, file);
		else
			client_print_http_error(&ctl->client, &r);
		*code = CTL_EXIT_USAGE;
	} else if (print_json && ctl->json) {
		printf("%s%s", r.body, r.len && r.body[r.len - 1] == '\n' ? "" : "\n");
	} else if (!(doc = response_json(&ctl->client, &r))) {
		*code = CTL_EXIT_USAGE;
	}
	response_free(&r);
	return doc;
}

/* Options of the spec subcommands; -1 to go on, else an exit code. */
static int spec_opts(struct ctl *ctl, const char *cmd, int argc, char **argv, int64_t *ret_version,
                     const char **ret_type)
{
	static const struct option opts[] = {
	        CTL_GLOBAL_LONG_OPTIONS,
	        {"version", required_argument, NULL, OPT_VERSION},
	        {"format", required_argument, NULL, OPT_FORMAT},
	        {0},
	};
	int c;

	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		if (ctl_global_option(ctl, c, optarg))
			continue;
		if (c == 'h')
			return help_print(stdout, "spec") < 0 ? CTL_EXIT_USAGE : CTL_EXIT_PASS;
		if (c == OPT_VERSION && rd_parse_int64(optarg, 1, INT64_MAX, ret_version) == 0)
			continue;
		if (c == OPT_FORMAT && (!strcmp(optarg, "yaml") || !strcmp(optarg, "json"))) {
			*ret_type =
			        !strcmp(optarg, "json") ? "application/json" : "application/yaml";
			continue;
		}
		if (c == OPT_VERSION || c == OPT_FORMAT)
			ctl_usage_error(cmd, "invalid value '%s' for %s", optarg,
			                c == OPT_VERSION ? "--version (a positive integer)"
			                                 : "--format (yaml or json)");
		else
			ctl_bad_option(cmd, c, argv);
		return CTL_EXIT_USAGE;
	}
	return -1;
}

static int spec_put(struct ctl *ctl, int argc, char **argv)
{
	struct request req = {.method = "PUT"};
	const char *type = NULL;
	char path[PATH_LEN], *body = NULL;
	int64_t unused = 0;
	json_t *doc;
	int code = spec_opts(ctl, "spec", argc, argv, &unused, &type);

	if (code >= 0)
		return code;
	if (argc - optind != 3) {
		ctl_usage_error("spec", "spec put takes SERVICE ENVIRONMENT FILE");
		return CTL_EXIT_USAGE;
	}
	if (check_names("spec", argv[optind], argv[optind + 1]) < 0)
		return CTL_EXIT_USAGE;
	if (submit_read_spec(argv[optind + 2], &body, &req.body_len) < 0)
		return CTL_EXIT_USAGE;
	snprintf(path, sizeof(path), "/v1/services/%s/specs/%s", argv[optind], argv[optind + 1]);
	req.path = path;
	req.body = body;
	req.content_type = type ? type : submit_content_type(argv[optind + 2]);
	doc = send_json(ctl, &req, true,
	                strcmp(argv[optind + 2], "-") == 0 ? "<stdin>" : argv[optind + 2], &code);
	if (doc)
		printf("stored %s %s version %lld\n", argv[optind], argv[optind + 1],
		       (long long)json_integer_value(json_object_get(doc, "version")));
	json_decref(doc);
	free(body);
	return code;
}

/* GET one stored spec (version 0: the latest). NULL after printing why. */
static json_t *fetch_spec(struct ctl *ctl, const char *svc, const char *env, int64_t version,
                          bool print_json, int *code)
{
	struct request req = {.method = "GET"};
	char path[PATH_LEN];

	if (version)
		snprintf(path, sizeof(path), "/v1/services/%s/specs/%s?version=%lld", svc, env,
		         (long long)version);
	else
		snprintf(path, sizeof(path), "/v1/services/%s/specs/%s", svc, env);
	req.path = path;
	return send_json(ctl, &req, print_json, NULL, code);
}

static int spec_get(struct ctl *ctl, int argc, char **argv)
{
	const char *type = NULL, *text;
	int64_t version = 0;
	json_t *doc;
	int code = spec_opts(ctl, "spec", argc, argv, &version, &type);

	if (code >= 0)
		return code;
	if (argc - optind != 2 || check_names("spec", argv[optind], argv[optind + 1]) < 0) {
		if (argc - optind != 2)
			ctl_usage_error("spec", "spec get takes SERVICE ENVIRONMENT [--version N]");
		return CTL_EXIT_USAGE;
	}
	doc = fetch_spec(ctl, argv[optind], argv[optind + 1], version, true, &code);
	text = json_string_value(json_object_get(doc, "text"));
	if (doc && text)
		fputs(text, stdout);
	else if (doc)
		code = CTL_EXIT_USAGE;
	json_decref(doc);
	return code;
}

/* The two versions to compare: given, or the latest and the one before. */
static int diff_versions(struct ctl *ctl, int argc, char **argv, int64_t v[2])
{
	json_t *latest;
	int code;

	if (argc - optind == 4) {
		if (rd_parse_int64(argv[optind + 2], 1, INT64_MAX, &v[0]) == 0 &&
		    rd_parse_int64(argv[optind + 3], 1, INT64_MAX, &v[1]) == 0)
			return -1;
		ctl_usage_error("spec", "versions are positive integers");
		return CTL_EXIT_USAGE;
	}
	latest = fetch_spec(ctl, argv[optind], argv[optind + 1], 0, false, &code);
	if (!latest)
		return code ? code : CTL_EXIT_USAGE;
	v[1] = json_integer_value(json_object_get(latest, "version"));
	v[0] = v[1] - 1;
	json_decref(latest);
	if (v[0] >= 1)
		return -1;
	fprintf(stderr, "readyctl: %s %s has one version only; nothing to compare\n", argv[optind],
	        argv[optind + 1]);
	return CTL_EXIT_PASS;
}

static int spec_diff(struct ctl *ctl, int argc, char **argv)
{
	const char *type = NULL, *svc, *env;
	char names[2][PATH_LEN];
	int64_t unused = 0, v[2];
	json_t *doc[2] = {NULL, NULL};
	bool differ;
	int code = spec_opts(ctl, "spec", argc, argv, &unused, &type);

	if (code >= 0)
		return code;
	if ((argc - optind != 2 && argc - optind != 4) ||
	    check_names("spec", argv[optind], argv[optind + 1]) < 0) {
		if (argc - optind != 2 && argc - optind != 4)
			ctl_usage_error("spec", "spec diff takes SERVICE ENVIRONMENT [V1 V2]");
		return CTL_EXIT_USAGE;
	}
	svc = argv[optind];
	env = argv[optind + 1];
	code = diff_versions(ctl, argc, argv, v);
	if (code >= 0)
		return code;
	code = 0;
	for (int i = 0; i < 2 && code == 0; i++) {
		doc[i] = fetch_spec(ctl, svc, env, v[i], false, &code);
		snprintf(names[i], sizeof(names[i]), "%s/%s version %lld", svc, env,
		         (long long)v[i]);
	}
	if (code == 0 &&
	    linediff_print(stdout, names[0], json_string_value(json_object_get(doc[0], "text")),
	                   names[1], json_string_value(json_object_get(doc[1], "text")),
	                   &differ) < 0) {
		ctl_errorf("out of memory\n");
		code = CTL_EXIT_USAGE;
	}
	json_decref(doc[0]);
	json_decref(doc[1]);
	return code;
}

int cmd_spec(struct ctl *ctl, int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*run)(struct ctl *ctl, int argc, char **argv);
	} subs[] = {{"put", spec_put}, {"get", spec_get}, {"diff", spec_diff}};

	if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")))
		return help_print(stdout, "spec") < 0 ? CTL_EXIT_USAGE : CTL_EXIT_PASS;
	for (size_t i = 0; argc >= 2 && i < RD_ARRAY_SIZE(subs); i++) {
		if (strcmp(argv[1], subs[i].name) == 0) {
			optind = 0;
			return subs[i].run(ctl, argc - 1, argv + 1);
		}
	}
	ctl_usage_error("spec", "expected put, get or diff");
	return CTL_EXIT_USAGE;
}

/* ---- run ---- */

struct run_args {
	struct submit_args sub;
	const char *env, *target;
};

static int run_local(struct run_args *a, int opt, const char *arg)
{
	switch (opt) {
	case OPT_ENV:
		a->env = arg;
		return 0;
	case OPT_TARGET:
		a->target = arg;
		return 0;
	case OPT_WAIT:
		a->sub.wait = true;
		return 0;
	case OPT_TIMEOUT:
		if (rd_parse_duration(arg, &a->sub.timeout_ms) == 0 && a->sub.timeout_ms > 0)
			return 0;
		ctl_usage_error("run", "invalid --timeout '%s': expected a duration such as 30m",
		                arg);
		return -EINVAL;
	case OPT_KEY:
		a->sub.key = arg;
		return 0;
	case OPT_JUNIT:
		a->sub.junit = arg;
		return 0;
	case OPT_REPORT:
		a->sub.report = arg;
		return 0;
	default:
		return -ENOENT;
	}
}

/* -1 to go on, else an exit code. */
static int run_opts(struct ctl *ctl, struct run_args *a, int argc, char **argv)
{
	static const struct option opts[] = {
	        CTL_GLOBAL_LONG_OPTIONS,
	        {"env", required_argument, NULL, OPT_ENV},
	        {"target", required_argument, NULL, OPT_TARGET},
	        {"wait", no_argument, NULL, OPT_WAIT},
	        {"timeout", required_argument, NULL, OPT_TIMEOUT},
	        {"idempotency-key", required_argument, NULL, OPT_KEY},
	        {"junit", required_argument, NULL, OPT_JUNIT},
	        {"report", required_argument, NULL, OPT_REPORT},
	        {0},
	};
	int c, r;

	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		if (ctl_global_option(ctl, c, optarg))
			continue;
		if (c == 'h')
			return help_print(stdout, "run") < 0 ? CTL_EXIT_USAGE : CTL_EXIT_PASS;
		r = run_local(a, c, optarg);
		if (r == -ENOENT)
			ctl_bad_option("run", c, argv);
		if (r < 0)
			return CTL_EXIT_USAGE;
	}
	if (argc - optind != 2) {
		ctl_usage_error("run", "expected SERVICE VERSION");
		return CTL_EXIT_USAGE;
	}
	if ((a->sub.junit || a->sub.report || a->sub.timeout_ms) && !a->sub.wait) {
		ctl_usage_error("run", "--junit, --report and --timeout need --wait");
		return CTL_EXIT_USAGE;
	}
	return check_names("run", argv[optind], a->env) < 0 ? CTL_EXIT_USAGE : -1;
}

int cmd_run(struct ctl *ctl, int argc, char **argv)
{
	struct run_args a = {.env = "default"};
	struct request req = {.method = "POST", .content_type = "application/json"};
	char path[PATH_LEN], *body = NULL;
	struct response r;
	json_t *doc;
	int code = run_opts(ctl, &a, argc, argv);

	if (code >= 0)
		return code;
	doc = json_pack("{s:s, s:s, s:s*}", "version", argv[optind + 1], "environment", a.env,
	                "target", a.target);
	body = doc ? rd_json_dumps(doc, JSON_COMPACT) : NULL;
	json_decref(doc);
	code = body ? ctl_connect(ctl) : CTL_EXIT_USAGE;
	if (code != 0)
		goto out;
	snprintf(path, sizeof(path), "/v1/services/%s/runs", argv[optind]);
	req.path = path;
	req.body = body;
	req.body_len = strlen(body);
	req.idempotency_key = a.sub.key;
	if (client_send(&ctl->client, &req, &r) < 0) {
		ctl_errorf("%s\n", ctl->client.message);
		code = CTL_EXIT_USAGE;
		goto out;
	}
	if (response_ok(&r)) {
		code = submit_created(ctl, &a.sub, &r);
	} else {
		client_print_http_error(&ctl->client, &r);
		code = CTL_EXIT_USAGE;
	}
	response_free(&r);
out:
	free(body);
	return code;
}
