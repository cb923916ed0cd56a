/* cmd_submit: `readyctl submit [--wait] FILE`, the pipeline's one command.
 * Reads the spec (capped at the server's SPEC_MAX_BYTES, so an oversized
 * file fails here with a clear message instead of a 413), POSTs it to
 * /v1/runs with its content type and optional Idempotency-Key, and prints
 * the run id or follows the run to its verdict. After --wait it can save
 * the JUnit XML (--junit FILE) and a report (--report FILE, --format
 * md|html) through `readyctl report`, so a pipeline needs one command.
 *
 * It does not validate the spec: the server is the authority and answers
 * with every invalid path at once. The POST itself is not retried: without
 * an idempotency key a retry could start the run twice.
 */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli.h"
#include "lib/spec/spec.h"
#include "lib/util/util.h"

enum {
	OPT_WAIT = CTL_OPT_FIRST_LOCAL,
	OPT_TIMEOUT,
	OPT_KEY,
	OPT_FORMAT,
	OPT_JUNIT,
	OPT_REPORT,
	OPT_REPORT_FORMAT,
};

/* --format names a report format when it is not a spec format: md and
 * html cannot be specs, and json stays the spec's for compatibility. */
static bool is_report_format(const char *s)
{
	return strcmp(s, "md") == 0 || strcmp(s, "markdown") == 0 || strcmp(s, "html") == 0 ||
	       strcmp(s, "junit") == 0;
}

/* The report format a file name suggests; markdown when it says nothing. */
static const char *report_format_for(const char *file)
{
	static const char *const ext[][2] = {
	        {".html", "html"}, {".htm", "html"}, {".xml", "junit"}, {".json", "json"}};
	size_t n = strlen(file);

	for (size_t i = 0; i < sizeof(ext) / sizeof(ext[0]); i++) {
		size_t e = strlen(ext[i][0]);

		if (n > e && strcasecmp(file + n - e, ext[i][0]) == 0)
			return ext[i][1];
	}
	return "md";
}

static int parse_format(const char *s, const char **ret_type)
{
	if (strcmp(s, "yaml") == 0 || strcmp(s, "yml") == 0)
		*ret_type = "application/yaml";
	else if (strcmp(s, "json") == 0)
		*ret_type = "application/json";
	else
		return -EINVAL;
	return 0;
}

static int parse_local(struct submit_args *a, int opt, const char *arg)
{
	switch (opt) {
	case OPT_WAIT:
		a->wait = true;
		return 0;
	case OPT_TIMEOUT:
		if (rd_parse_duration(arg, &a->timeout_ms) < 0 || a->timeout_ms <= 0) {
			ctl_usage_error(
			        "submit",
			        "invalid --timeout '%s': expected a duration such as 90s or 30m",
			        arg);
			return -EINVAL;
		}
		return 0;
	case OPT_KEY:
		if (!*arg || strlen(arg) > CTL_MAX_IDEMPOTENCY_KEY || strpbrk(arg, "\r\n")) {
			ctl_usage_error("submit",
			                "invalid --idempotency-key: 1-%d characters, one line",
			                CTL_MAX_IDEMPOTENCY_KEY);
			return -EINVAL;
		}
		a->key = arg;
		return 0;
	case OPT_FORMAT:
		if (is_report_format(arg)) {
			a->report_format = arg;
			return 0;
		}
		if (parse_format(arg, &a->content_type) < 0) {
			ctl_usage_error("submit",
			                "invalid --format '%s': expected yaml or json (the spec), "
			                "or md or html (the --report)",
			                arg);
			return -EINVAL;
		}
		return 0;
	case OPT_REPORT_FORMAT:
		if (!is_report_format(arg) && strcmp(arg, "json") != 0) {
			ctl_usage_error("submit",
			                "invalid --report-format '%s': expected md, html, junit or "
			                "json",
			                arg);
			return -EINVAL;
		}
		a->report_format = arg;
		return 0;
	case OPT_JUNIT:
		a->junit = arg;
		return 0;
	case OPT_REPORT:
		a->report = arg;
		return 0;
	default:
		return -ENOENT;
	}
}

/* Returns -1 to go on, else an exit code. */
static int parse_args(struct ctl *ctl, struct submit_args *a, int argc, char **argv)
{
	static const struct option opts[] = {
	        CTL_GLOBAL_LONG_OPTIONS,
	        {"wait", no_argument, NULL, OPT_WAIT},
	        {"timeout", required_argument, NULL, OPT_TIMEOUT},
	        {"idempotency-key", required_argument, NULL, OPT_KEY},
	        {"format", required_argument, NULL, OPT_FORMAT},
	        {"junit", required_argument, NULL, OPT_JUNIT},
	        {"report", required_argument, NULL, OPT_REPORT},
	        {"report-format", required_argument, NULL, OPT_REPORT_FORMAT},
	        {0},
	};
	int c, r;

	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		if (ctl_global_option(ctl, c, optarg))
			continue;
		if (c == 'h')
			return help_print(stdout, "submit") < 0 ? CTL_EXIT_USAGE : CTL_EXIT_PASS;
		r = parse_local(a, c, optarg);
		if (r == -ENOENT)
			ctl_bad_option("submit", c, argv);
		if (r < 0)
			return CTL_EXIT_USAGE;
	}
	if (argc - optind != 1) {
		ctl_usage_error("submit", "expected exactly one spec FILE (or '-' for stdin)");
		return CTL_EXIT_USAGE;
	}
	if (a->timeout_ms && !a->wait) {
		ctl_usage_error("submit", "--timeout needs --wait");
		return CTL_EXIT_USAGE;
	}
	if ((a->junit || a->report) && !a->wait) {
		ctl_usage_error("submit", "--junit and --report need --wait");
		return CTL_EXIT_USAGE;
	}
	if (a->report_format && !a->report) {
		ctl_usage_error("submit", "--format %s needs --report FILE", a->report_format);
		return CTL_EXIT_USAGE;
	}
	a->file = argv[optind];
	return -1;
}

static int read_stream(FILE *f, char **ret_buf, size_t *ret_len)
{
	size_t cap = SPEC_MAX_BYTES + 1, len = 0, n;
	char *buf = malloc(cap);

	if (!buf)
		return -ENOMEM;
	while (len < cap && (n = fread(buf + len, 1, cap - len, f)) > 0)
		len += n;
	if (ferror(f)) {
		free(buf);
		return -EIO;
	}
	if (len > SPEC_MAX_BYTES) {
		free(buf);
		return -E2BIG;
	}
	*ret_buf = buf;
	*ret_len = len;
	return 0;
}

/* Reads the spec; prints why not and returns -errno on failure. */
int submit_read_spec(const char *file, char **ret_buf, size_t *ret_len)
{
	bool is_stdin = strcmp(file, "-") == 0;
	FILE *f = is_stdin ? stdin : fopen(file, "rb");
	const char *name = is_stdin ? "standard input" : file;
	int ret, saved;

	if (!f) {
		saved = errno;
		ctl_errorf("cannot open '%s': %s\n", file, strerror(saved));
		return -saved;
	}
	ret = read_stream(f, ret_buf, ret_len);
	saved = errno;
	if (!is_stdin)
		fclose(f);
	if (ret == -E2BIG)
		ctl_errorf("%s: spec larger than %d KiB, the server's limit\n", name,
		           SPEC_MAX_BYTES / 1024);
	else if (ret == -EIO)
		ctl_errorf("cannot read %s: %s\n", name, strerror(saved));
	else if (ret < 0)
		ctl_errorf("out of memory\n");
	else if (*ret_len == 0) {
		ctl_errorf("%s: the spec is empty\n", name);
		free(*ret_buf);
		ret = -ENODATA;
	}
	return ret;
}

const char *submit_content_type(const char *file)
{
	size_t n = strlen(file);

	if (n > 5 && strcasecmp(file + n - 5, ".json") == 0)
		return "application/json";
	return "application/yaml";
}

/* The run id from the body, else from the Location header. */
static int64_t created_id(const json_t *run, const struct response *r)
{
	int64_t id = run_id(run);
	const char *slash;

	if (id > 0 || !r->location || !(slash = strrchr(r->location, '/')))
		return id;
	if (rd_parse_int64(slash + 1, 1, INT64_MAX, &id) < 0)
		return -1;
	return id;
}

/* `readyctl report --format FMT -o FILE ID`: the same atomic write and
 * error messages as the command. */
static int save_report(struct ctl *ctl, int64_t id, const char *fmt, const char *file)
{
	char idbuf[24], fmtbuf[16], out[4096];
	char *argv[] = {"report", "--format", fmtbuf, "-o", out, idbuf, NULL};
	bool json = ctl->json;
	int code;

	snprintf(idbuf, sizeof(idbuf), "%lld", (long long)id);
	snprintf(fmtbuf, sizeof(fmtbuf), "%s", fmt);
	if (snprintf(out, sizeof(out), "%s", file) >= (int)sizeof(out)) {
		ctl_errorf("'%s': file name too long\n", file);
		return CTL_EXIT_USAGE;
	}
	ctl->json = false; /* --json shapes stdout; the artifact has its own format */
	optind = 0;        /* a fresh getopt scan */
	code = cmd_report(ctl, 6, argv);
	ctl->json = json;
	return code;
}

/* Saves what --junit/--report asked for once waiting ended with a verdict
 * (or a timeout: the report then shows where the run was). The verdict's
 * exit code wins; a failed save turns a PASS into a usage error, because
 * a pipeline that expects the artifact must not go green without it. */
static int save_artifacts(struct ctl *ctl, const struct submit_args *a, int64_t id, int code)
{
	int saved = CTL_EXIT_PASS;

	if (code != CTL_EXIT_PASS && code != CTL_EXIT_FAIL && code != CTL_EXIT_ERROR)
		return code;
	if (a->junit && save_report(ctl, id, "junit", a->junit) != CTL_EXIT_PASS)
		saved = CTL_EXIT_USAGE;
	if (a->report &&
	    save_report(ctl, id, a->report_format ? a->report_format : report_format_for(a->report),
	                a->report) != CTL_EXIT_PASS)
		saved = CTL_EXIT_USAGE;
	return code != CTL_EXIT_PASS ? code : saved;
}

int submit_created(struct ctl *ctl, const struct submit_args *a, const struct response *r)
{
	json_t *run = response_json(&ctl->client, r);
	int64_t id = run ? created_id(run, r) : -1;
	int code;

	if (id <= 0) {
		if (run)
			fprintf(stderr,
			        "readyctl: the server accepted the spec but sent no run id\n");
		json_decref(run);
		return CTL_EXIT_USAGE;
	}
	if (r->status == 200 && a->key)
		fprintf(stderr,
		        "readyctl: run %lld was already submitted with this idempotency key\n",
		        (long long)id);
	if (!a->wait) {
		if (ctl->json)
			printf("%s%s", r->body, r->len && r->body[r->len - 1] == '\n' ? "" : "\n");
		else
			printf("%lld\n", (long long)id);
		json_decref(run);
		return CTL_EXIT_PASS;
	}
	code = follow_run(ctl, id, run, a->timeout_ms);
	json_decref(run);
	return save_artifacts(ctl, a, id, code);
}

int cmd_submit(struct ctl *ctl, int argc, char **argv)
{
	struct submit_args a = {0};
	struct request req = {.method = "POST", .path = "/v1/runs"};
	struct response r;
	char *body = NULL;
	int code;

	code = parse_args(ctl, &a, argc, argv);
	if (code >= 0)
		return code;
	if (submit_read_spec(a.file, &body, &req.body_len) < 0)
		return CTL_EXIT_USAGE;
	req.body = body;
	req.content_type = a.content_type ? a.content_type : submit_content_type(a.file);
	req.idempotency_key = a.key;
	code = ctl_connect(ctl);
	if (code != 0)
		goto out;
	if (client_send(&ctl->client, &req, &r) < 0) {
		ctl_errorf("%s\n", ctl->client.message);
		code = CTL_EXIT_USAGE;
		goto out;
	}
	if (response_ok(&r))
		code = submit_created(ctl, &a, &r);
	else {
		client_print_spec_error(&ctl->client, &r,
		                        strcmp(a.file, "-") == 0 ? "<stdin>" : a.file);
		code = CTL_EXIT_USAGE;
	}
	response_free(&r);
out:
	free(body);
	return code;
}
