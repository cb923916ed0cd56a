/* readyctl: main(), global flags, the command table and the few helpers
 * every command shares (connecting, parsing run ids, usage errors). This
 * is the one place that ends the process: commands return exit codes
 * (0 PASS/success, 1 FAIL, 2 ERROR, 3 usage/connection/HTTP) and main()
 * makes sure stdout really got written before returning one.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "lib/util/suggest.h"
#include "lib/util/util.h"

struct command {
	const char *name;
	int (*run)(struct ctl *ctl, int argc, char **argv);
};

static const struct command commands[] = {
        {"submit", cmd_submit},         {"status", cmd_status}, {"report", cmd_report},
        {"cancel", cmd_cancel},         {"runs", cmd_runs},     {"gates", cmd_gates},
        {"history", cmd_history},       {"trends", cmd_trends}, {"rejudge", cmd_rejudge},
        {"invalidate", cmd_invalidate}, {"waive", cmd_waive},   {"waivers", cmd_waivers},
        {"unwaive", cmd_unwaive},       {"spec", cmd_spec},     {"run", cmd_run},
};

void ctl_usage_error(const char *cmd, const char *fmt, ...)
{
	char msg[1024], help[64];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (ctl_json_errors) {
		snprintf(help, sizeof(help), "readyctl %s%s", cmd ? "help " : "--help",
		         cmd ? cmd : "");
		ctl_error_json(json_pack("{s:s, s:s, s:i}", "error", msg, "help", help, "exit",
		                         CTL_EXIT_USAGE));
		return;
	}
	fprintf(stderr, "readyctl: %s", msg);
	if (cmd)
		fprintf(stderr, "\nTry 'readyctl help %s'.\n", cmd);
	else
		fputs("\nTry 'readyctl --help'.\n", stderr);
}

bool ctl_global_option(struct ctl *ctl, int opt, const char *arg)
{
	switch (opt) {
	case CTL_OPT_URL:
		ctl->url = arg;
		return true;
	case CTL_OPT_TOKEN:
		ctl->token = arg;
		return true;
	case CTL_OPT_CACERT:
		ctl->cacert = arg;
		return true;
	case CTL_OPT_JSON:
		ctl->json = true;
		ctl_json_errors = true;
		return true;
	default:
		return false;
	}
}

void ctl_bad_option(const char *cmd, int opt, char **argv)
{
	const char *word = optind > 0 ? argv[optind - 1] : "?";

	if (opt == ':')
		ctl_usage_error(cmd, "option '%s' needs a value", word);
	else if (optopt > 0 && optopt < 0x80)
		ctl_usage_error(cmd, "unknown option '-%c'", optopt);
	else
		ctl_usage_error(cmd, "unknown option '%s'", word);
}

static const char *env_nonempty(const char *name)
{
	const char *v = getenv(name);

	return v && *v ? v : NULL;
}

int ctl_connect(struct ctl *ctl)
{
	const char *url = ctl->url ? ctl->url : env_nonempty("READYD_URL");
	const char *token = ctl->token ? ctl->token : env_nonempty("READYD_TOKEN");

	if (ctl->connected)
		return 0;
	if (client_init(&ctl->client, url ? url : CTL_DEFAULT_URL, token, ctl->cacert) < 0)
		return CTL_EXIT_USAGE;
	ctl->connected = true;
	return 0;
}

int ctl_parse_id(const char *cmd, const char *s, int64_t *ret_id)
{
	int64_t id;

	if (rd_parse_int64(s, 1, INT64_MAX, &id) < 0) {
		ctl_usage_error(cmd, "invalid run id '%s': expected a positive integer", s);
		return -EINVAL;
	}
	*ret_id = id;
	return 0;
}

static bool want_color(void)
{
	const char *term = getenv("TERM");

	/* https://no-color.org: present and not empty disables colour. */
	if (env_nonempty("NO_COLOR"))
		return false;
	return isatty(STDOUT_FILENO) && term && strcmp(term, "dumb") != 0;
}

/* An unknown command, with the closest one when it is a typo
 * (`sumbit` -> `submit`). */
static void unknown_command(const char *word)
{
	struct rd_suggest sg = {.word = word};

	for (size_t i = 0; i < RD_ARRAY_SIZE(commands); i++)
		rd_suggest_try(&sg, commands[i].name);
	rd_suggest_try(&sg, "help");
	if (sg.best)
		ctl_usage_error(NULL, "unknown command '%s'; did you mean '%s'?", word, sg.best);
	else
		ctl_usage_error(NULL, "unknown command '%s'", word);
}

static int run_help(int argc, char **argv)
{
	if (argc > 2) {
		ctl_usage_error(NULL, "help takes at most one command");
		return CTL_EXIT_USAGE;
	}
	if (help_print(stdout, argc == 2 ? argv[1] : NULL) < 0) {
		unknown_command(argv[1]);
		return CTL_EXIT_USAGE;
	}
	return CTL_EXIT_PASS;
}

static int dispatch(struct ctl *ctl, int argc, char **argv)
{
	if (strcmp(argv[0], "help") == 0)
		return run_help(argc, argv);
	for (size_t i = 0; i < RD_ARRAY_SIZE(commands); i++) {
		if (strcmp(argv[0], commands[i].name) != 0)
			continue;
		optind = 0; /* full re-initialisation of getopt for the command */
		return commands[i].run(ctl, argc, argv);
	}
	unknown_command(argv[0]);
	return CTL_EXIT_USAGE;
}

/* Parses the flags before the command. Returns -1 to go on, else an exit
 * code. */
static int parse_global(struct ctl *ctl, int argc, char **argv)
{
	static const struct option opts[] = {
	        CTL_GLOBAL_LONG_OPTIONS,
	        {"version", no_argument, NULL, 'V'},
	        {0},
	};
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "+:hV", opts, NULL)) != -1) {
		if (ctl_global_option(ctl, c, optarg))
			continue;
		if (c == 'h') {
			help_print(stdout, NULL);
			return CTL_EXIT_PASS;
		}
		if (c == 'V') {
			printf("readyctl %s\n", READYD_VERSION);
			return CTL_EXIT_PASS;
		}
		ctl_bad_option(NULL, c, argv);
		return CTL_EXIT_USAGE;
	}
	if (optind >= argc) {
		help_print(stderr, NULL);
		return CTL_EXIT_USAGE;
	}
	return -1;
}

/* Output that never reached stdout (a full disk) must not look
 * like success. */
static int flush_stdout(int code)
{
	if (fflush(stdout) == 0 && !ferror(stdout))
		return code;
	ctl_errorf("cannot write to standard output: %s\n", strerror(errno));
	return code == CTL_EXIT_PASS ? CTL_EXIT_USAGE : code;
}

int main(int argc, char **argv)
{
	struct ctl ctl = {0};
	int code;

	ctl.color = want_color();
	ctl.tty_err = isatty(STDERR_FILENO);
	code = parse_global(&ctl, argc, argv);
	if (code >= 0)
		return flush_stdout(code);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		ctl_errorf("cannot initialise libcurl\n");
		return CTL_EXIT_USAGE;
	}
	code = dispatch(&ctl, argc - optind, argv + optind);
	if (ctl.connected)
		client_deinit(&ctl.client);
	curl_global_cleanup();
	return flush_stdout(code);
}
