/* help: the text of `readyctl --help` and `readyctl help CMD`. Kept apart
 * from the code so the commands stay short; docs/readyctl.md says the same
 * at length. It must stay in step with the options each cmd_*.c accepts.
 */
#include <errno.h>
#include <string.h>

#include "cli.h"

static const char overview[] =
        "Usage: readyctl [GLOBAL OPTIONS] COMMAND [OPTIONS] [ARGS]\n"
        "\n"
        "The client of readyd, the deployment-readiness daemon.\n"
        "\n"
        "Commands:\n"
        "  submit [--wait] FILE   submit a readiness spec (FILE '-' reads stdin)\n"
        "  status [--wait] ID     show a run; --wait follows it to its verdict\n"
        "  report ID              fetch a run's report (json, md, html, junit)\n"
        "  cancel ID              cancel a queued or running run\n"
        "  runs                   list runs, newest first\n"
        "  gates                  latest verdict per service and environment\n"
        "  history SERVICE        a service's decisions, newest first\n"
        "  trends SERVICE METRIC  one metric across runs (PROBE.METRIC)\n"
        "  rejudge ID GATE...     re-decide a stored run with new gates\n"
        "  invalidate ID          take a run out of baselines, trends, gates\n"
        "  waive SERVICE EXPR     waive a failing gate until an expiry\n"
        "  waivers SERVICE        list a service's waivers\n"
        "  unwaive SERVICE ID     revoke a waiver\n"
        "  spec put|get|diff      stored specs: SERVICE ENVIRONMENT ...\n"
        "  run SERVICE VERSION    run the stored spec of SERVICE for VERSION\n"
        "  help [COMMAND]         show help\n"
        "\n"
        "Global options (also accepted after the command):\n"
        "  --url URL        server (default $READYD_URL, else " CTL_DEFAULT_URL ")\n"
        "  --token TOKEN    bearer token (default $READYD_TOKEN; prefer the variable,\n"
        "                   flags are visible to other users in ps)\n"
        "  --cacert FILE    CA certificate(s) to verify an https server\n"
        "  --json           print the raw JSON response\n"
        "  -h, --help       show help\n"
        "  -V, --version    show the version\n"
        "\n"
        "Examples:\n"
        "  readyctl submit --wait spec.yaml          run a spec, exit by its verdict\n"
        "  readyctl submit --wait --junit out.xml --report out.html spec.yaml\n"
        "  readyctl status --wait 42                 follow run 42 to its end\n"
        "  readyctl report --format md -o ready.md 42\n"
        "  readyctl runs --service checkout --state failed\n"
        "  readyctl trends checkout load.latency.p99_ms --since 30d\n"
        "  READYD_URL=https://readyd:7411 READYD_TOKEN=... readyctl gates\n"
        "\n"
        "Exit status: 0 PASS or success, 1 FAIL, 2 ERROR (also cancelled or\n"
        "interrupted runs, and --timeout), 3 usage, connection or HTTP error,\n"
        "130 interrupted (Ctrl-C). With --json, errors are JSON lines on stderr.\n"
        "NO_COLOR disables colour.\n";

static const char submit_help[] =
        "Usage: readyctl submit [--wait] [--timeout DURATION] [--idempotency-key KEY]\n"
        "                       [--format yaml|json] [--junit FILE]\n"
        "                       [--report FILE [--format md|html]] FILE\n"
        "\n"
        "Submits the spec in FILE ('-' for stdin) as a new run and prints its id.\n"
        "\n"
        "  --wait                 follow the run: progress on stderr, then the verdict\n"
        "                         and gate table on stdout; exit by verdict\n"
        "  --timeout DURATION     with --wait: stop waiting after DURATION (e.g. 30m)\n"
        "                         and exit 2; the run continues on the server\n"
        "  --idempotency-key KEY  makes a retried submit return the same run\n"
        "  --format yaml|json     body type (default: json for *.json, else yaml)\n"
        "  --junit FILE           with --wait: save the JUnit XML report to FILE\n"
        "  --report FILE          with --wait: save a report to FILE\n"
        "  --format md|html       the --report's format (--report-format also takes\n"
        "                         junit and json; default from FILE's extension)\n"
        "  --json                 with --wait: progress as one JSON event per line on\n"
        "                         stderr, the final run as JSON on stdout\n"
        "\n"
        "While waiting, readyctl follows the run's event stream (/events) and falls\n"
        "back to long-polling; lost connections are retried with backoff for up to 60s.\n"
        "On a terminal, a running load probe shows its requests/s, p99 and errors live.\n"
        "A spec the server refuses is reported as FILE:LINE: path: message.\n"
        "\n"
        "Examples:\n"
        "  readyctl submit spec.yaml                       print the new run's id\n"
        "  readyctl submit --wait --timeout 30m spec.yaml  wait for the verdict\n"
        "  readyctl submit --wait --junit readiness.xml --report readiness.md spec.yaml\n"
        "  render-spec | readyctl submit --wait --format json -\n"
        "  readyctl submit --idempotency-key \"$CI_PIPELINE_ID\" spec.yaml\n";

static const char status_help[] =
        "Usage: readyctl status [--wait [--timeout DURATION]] [--json] ID\n"
        "\n"
        "Shows run ID: state, verdict, progress, probes, gates and checklist.\n"
        "Exits 0 when the run was shown, whatever its verdict.\n"
        "\n"
        "  --wait               follow the run to its end and exit by verdict\n"
        "  --timeout DURATION   with --wait: stop waiting after DURATION (exit 2)\n";

static const char report_help[] =
        "Usage: readyctl report [--format json|md|html|junit] [-o FILE] ID\n"
        "\n"
        "Fetches the report of run ID (default: the server's default format,\n"
        "JSON) to stdout or FILE.\n"
        "FILE is replaced atomically, so a CI never reads half a report.\n"
        "\n"
        "  --format FORMAT   json, md (markdown), html or junit\n"
        "  -o, --output FILE write to FILE instead of stdout\n";

static const char cancel_help[] =
        "Usage: readyctl cancel [--json] ID\n"
        "\n"
        "Cancels run ID. A run that has already finished cannot be cancelled\n"
        "(the server answers 409; exit 3).\n";

static const char runs_help[] =
        "Usage: readyctl runs [--service S] [--state S] [--limit N] [--cursor C]\n"
        "\n"
        "Lists runs, newest first. When more exist, the cursor of the next page is\n"
        "printed on stderr.\n"
        "\n"
        "  --service S   only runs of service S\n"
        "  --state S     queued, running, passed, failed, error, cancelled, interrupted\n"
        "  --limit N     at most N runs (1-1000)\n"
        "  --cursor C    the page after cursor C\n";

static const char spec_help[] =
        "Usage: readyctl spec put [--format yaml|json] SERVICE ENVIRONMENT FILE\n"
        "       readyctl spec get [--version N] SERVICE ENVIRONMENT\n"
        "       readyctl spec diff SERVICE ENVIRONMENT [V1 V2]\n"
        "\n"
        "Stored specs: the spec SERVICE is gated with in ENVIRONMENT, kept by the\n"
        "server in versions 1, 2, 3...\n"
        "\n"
        "  put    store FILE ('-' for stdin) as the next version; prints it. The\n"
        "         spec may leave out service and environment (taken from the\n"
        "         arguments) and its version is ignored (each run names one)\n"
        "  get    print the latest version (or --version N) as it was stored\n"
        "  diff   a unified diff of V1 against V2 (default: the latest against\n"
        "         the one before); nothing when they are equal. Exits 0 either way\n"
        "\n"
        "Reading a stored spec needs a submitter token: it may hold credentials.\n";

static const char run_help[] =
        "Usage: readyctl run [--env ENV] [--target URL] [--wait [--timeout DURATION]]\n"
        "                    [--idempotency-key KEY] [--junit FILE] [--report FILE]\n"
        "                    SERVICE VERSION\n"
        "\n"
        "Starts a run of the latest spec stored for SERVICE in ENV (default\n"
        "'default') judging VERSION, and prints its id, or with --wait follows it\n"
        "to its verdict. Exit status as submit: 0 PASS, 1 FAIL, 2 ERROR, 3 usage,\n"
        "connection or HTTP error (also: no stored spec).\n"
        "\n"
        "  --env ENV              the environment whose stored spec runs\n"
        "  --target URL           replaces the URL of the spec's target\n"
        "  --wait, --timeout, --idempotency-key, --junit, --report: as submit\n";

static const struct {
	const char *cmd;
	const char *text;
} pages[] = {
        {"submit", submit_help}, {"status", status_help}, {"report", report_help},
        {"cancel", cancel_help}, {"runs", runs_help},     {"help", overview},
        {"spec", spec_help},     {"run", run_help},
};

int help_print(FILE *f, const char *cmd)
{
	if (!cmd) {
		fputs(overview, f);
		return 0;
	}
	for (size_t i = 0; i < sizeof(pages) / sizeof(pages[0]); i++) {
		if (strcmp(cmd, pages[i].cmd) == 0) {
			fputs(pages[i].text, f);
			return 0;
		}
	}
	return history_help_print(f, cmd); /* cmd_history.c */
}
