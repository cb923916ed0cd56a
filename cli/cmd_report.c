/* cmd_report: `readyctl report ID [--format json|md|html|junit] [-o FILE]`.
 * Fetches the rendered report and writes its bytes unchanged to stdout or
 * to FILE. FILE is written through a temporary file in the same directory
 * and renamed into place, so a CI that picks up junit.xml never reads a
 * half-written one, and a failed request leaves an older FILE untouched.
 *
 * It does not render anything itself: the server owns report formats.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

enum {
	OPT_FORMAT = CTL_OPT_FIRST_LOCAL,
};

static const struct {
	const char *flag;
	const char *query; /* ?format= */
	const char *accept;
} formats[] = {
        {"json", "json", "application/json, application/problem+json"},
        {"md", "markdown", "text/markdown, application/problem+json"},
        {"markdown", "markdown", "text/markdown, application/problem+json"},
        {"html", "html", "text/html, application/problem+json"},
        {"junit", "junit", "application/xml, application/problem+json"},
};

struct report_args {
	int format; /* index into formats, -1: not given */
	const char *output;
	int64_t id;
};

static int find_format(const char *s)
{
	for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++)
		if (strcmp(s, formats[i].flag) == 0)
			return (int)i;
	return -1;
}

/* --json asks for the JSON report unless --format chose another one.
 * Without either, the server's default format is fetched (no ?format=),
 * so this client works with servers that render fewer formats. */
static int settle_format(const struct ctl *ctl, struct report_args *a)
{
	if (a->format < 0 && ctl->json)
		a->format = 0;
	else if (ctl->json && a->format != 0) {
		ctl_usage_error("report", "--json conflicts with --format %s",
		                formats[a->format].flag);
		return CTL_EXIT_USAGE;
	}
	return -1;
}

static int parse_args(struct ctl *ctl, struct report_args *a, int argc, char **argv)
{
	static const struct option opts[] = {
	        CTL_GLOBAL_LONG_OPTIONS,
	        {"format", required_argument, NULL, OPT_FORMAT},
	        {"output", required_argument, NULL, 'o'},
	        {0},
	};
	int c;

	while ((c = getopt_long(argc, argv, ":ho:", opts, NULL)) != -1) {
		if (ctl_global_option(ctl, c, optarg))
			continue;
		if (c == 'h')
			return help_print(stdout, "report"), CTL_EXIT_PASS;
		if (c == 'o') {
			a->output = optarg;
		} else if (c == OPT_FORMAT) {
			a->format = find_format(optarg);
			if (a->format < 0) {
				ctl_usage_error(
				        "report",
				        "invalid --format '%s': expected json, md, html or junit",
				        optarg);
				return CTL_EXIT_USAGE;
			}
		} else {
			ctl_bad_option("report", c, argv);
			return CTL_EXIT_USAGE;
		}
	}
	if (argc - optind != 1) {
		ctl_usage_error("report", "expected exactly one run ID");
		return CTL_EXIT_USAGE;
	}
	if (ctl_parse_id("report", argv[optind], &a->id) < 0)
		return CTL_EXIT_USAGE;
	return settle_format(ctl, a);
}

static int write_all(int fd, const char *buf, size_t len)
{
	ssize_t n;

	while (len > 0) {
		n = write(fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Writes buf to path via a temporary file and rename(2). Returns 0 or
 * -errno; the temporary file never outlives a failure. */
static int write_file_atomic(const char *path, const char *buf, size_t len)
{
	char tmp[4096];
	mode_t mask;
	int fd, ret;

	if (snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	fd = mkstemp(tmp);
	if (fd < 0)
		return -errno;
	/* mkstemp creates 0600; a report is as readable as any new file. */
	mask = umask(0);
	umask(mask);
	ret = fchmod(fd, 0666 & ~mask) < 0 ? -errno : 0;
	if (ret == 0)
		ret = write_all(fd, buf, len);
	if (close(fd) < 0 && ret == 0)
		ret = -errno;
	if (ret == 0 && rename(tmp, path) < 0)
		ret = -errno;
	if (ret < 0)
		unlink(tmp);
	return ret;
}

static int emit(const struct report_args *a, const struct response *r)
{
	int ret;

	if (!a->output || strcmp(a->output, "-") == 0) {
		fwrite(r->body, 1, r->len, stdout);
		return CTL_EXIT_PASS;
	}
	ret = write_file_atomic(a->output, r->body, r->len);
	if (ret < 0) {
		ctl_errorf("cannot write '%s': %s\n", a->output, strerror(-ret));
		return CTL_EXIT_USAGE;
	}
	return CTL_EXIT_PASS;
}

int cmd_report(struct ctl *ctl, int argc, char **argv)
{
	struct report_args a = {.format = -1};
	struct request req = {.method = "GET"};
	struct response r;
	char path[96];
	int code;

	code = parse_args(ctl, &a, argc, argv);
	if (code >= 0)
		return code;
	code = ctl_connect(ctl);
	if (code != 0)
		return code;
	if (a.format >= 0) {
		snprintf(path, sizeof(path), "/v1/runs/%lld/report?format=%s", (long long)a.id,
		         formats[a.format].query);
		req.accept = formats[a.format].accept;
	} else {
		snprintf(path, sizeof(path), "/v1/runs/%lld/report", (long long)a.id);
		req.accept = "*/*";
	}
	req.path = path;
	if (client_send(&ctl->client, &req, &r) < 0) {
		ctl_errorf("%s\n", ctl->client.message);
		return CTL_EXIT_USAGE;
	}
	if (response_ok(&r))
		code = emit(&a, &r);
	else {
		client_print_http_error(&ctl->client, &r);
		code = CTL_EXIT_USAGE;
	}
	response_free(&r);
	return code;
}
