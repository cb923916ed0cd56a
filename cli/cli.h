/* cli: the internal contract between readyctl's files. readyctl.c parses
 * global flags and dispatches; client.c speaks HTTP (libcurl easy API) and
 * turns transport and problem+json errors into one clear line; table.c and
 * render.c turn run JSON into tables and progress lines; follow.c waits for
 * a run to finish; cmd_*.c are the commands.
 *
 * Only this program decides exit codes and prints; nothing here is shared
 * with the daemon, and nothing here may exit() outside main().
 */
#pragma once

#include <curl/curl.h>
#include <signal.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Exit codes: the contract with pipelines (docs/readyctl.md). */
enum {
	CTL_EXIT_PASS = 0, /* PASS, or the command succeeded */
	CTL_EXIT_FAIL = 1,
	CTL_EXIT_ERROR = 2, /* ERROR verdict, cancelled/interrupted run, wait timeout */
	CTL_EXIT_USAGE = 3, /* usage, connection, HTTP or protocol errors */
	CTL_EXIT_SIGINT = 130,
};

#define CTL_DEFAULT_URL         "http://127.0.0.1:7411"
#define CTL_MAX_BODY            (64u * 1024 * 1024) /* a response larger than this is refused */
#define CTL_MAX_URL             2048
#define CTL_MAX_TOKEN           4096
#define CTL_MAX_IDEMPOTENCY_KEY 255
#define CTL_CONNECT_TIMEOUT_S   10L
#define CTL_REQUEST_TIMEOUT_S   120L /* reports of big runs render server-side */

struct client {
	CURL *curl;
	char *base_url;    /* no trailing slash */
	char *auth_header; /* "Authorization: Bearer ...", or NULL */
	char *cacert;
	char errbuf[CURL_ERROR_SIZE];
	char message[512]; /* last transport error, for the caller to print */
	bool retryable;    /* last transport error may go away by itself */
	/* When set and non-zero, the transfer in progress is aborted (-EINTR):
	 * lets Ctrl-C end a 30 s long poll promptly. Borrowed. */
	const volatile sig_atomic_t *abort_flag;
};

struct request {
	const char *method; /* "GET", "POST" */
	const char *path;   /* "/v1/runs/42?wait=30s", already escaped */
	const char *body;   /* NULL: no body */
	size_t body_len;
	const char *content_type;    /* of body */
	const char *accept;          /* NULL: application/json */
	const char *idempotency_key; /* NULL: none */
	long timeout_s;              /* 0: CTL_REQUEST_TIMEOUT_S */
};

struct response {
	long status;
	char *body; /* NUL-terminated, len bytes before the NUL */
	size_t len;
	char *content_type; /* NULL if absent */
	char *location;     /* NULL if absent */
};

/* Global state of one invocation, filled from flags and environment. */
struct ctl {
	const char *url;    /* borrowed from argv/environ; NULL: default */
	const char *token;  /* borrowed; NULL: none */
	const char *cacert; /* borrowed; NULL: system store */
	bool json;          /* print raw JSON responses */
	bool color;         /* colour on stdout (TTY and no NO_COLOR) */
	bool tty_err;       /* stderr is a terminal: redraw progress in place */
	struct client client;
	bool connected; /* client initialised */
};

/* errors.c: every error readyctl reports goes through here. With --json
 * (ctl_json_errors) each is one JSON object on a line of stderr,
 * {"error": "...", ...}; else `readyctl: message`. fmt ends with \n. */
extern bool ctl_json_errors;
void ctl_errorf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints err (stolen) as one JSON line on stderr. */
void ctl_error_json(json_t *err);

/* readyctl.c */
void ctl_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Initialises ctl->client from flags/env. Returns 0 or a CTL_EXIT_* code
 * after printing why. */
int ctl_connect(struct ctl *ctl);
/* Strict positive run id; prints a usage error and returns -EINVAL. */
int ctl_parse_id(const char *cmd, const char *s, int64_t *ret_id);
/* Prints a usage error for what getopt_long returned ('?' or ':'). */
void ctl_bad_option(const char *cmd, int opt, char **argv);
/* Handles one of the global long options shared by every command
 * (getopt values CTL_OPT_*); returns true if it was one. */
bool ctl_global_option(struct ctl *ctl, int opt, const char *arg);

/* Option values for getopt_long shared by every command. */
enum {
	CTL_OPT_URL = 0x100,
	CTL_OPT_TOKEN,
	CTL_OPT_CACERT,
	CTL_OPT_JSON,
	CTL_OPT_FIRST_LOCAL, /* commands number their own options from here */
};

/* clang-format off */
#define CTL_GLOBAL_LONG_OPTIONS                                 \
	{"url", required_argument, NULL, CTL_OPT_URL},          \
	{"token", required_argument, NULL, CTL_OPT_TOKEN},      \
	{"cacert", required_argument, NULL, CTL_OPT_CACERT},    \
	{"json", no_argument, NULL, CTL_OPT_JSON},              \
	{"help", no_argument, NULL, 'h'}
/* clang-format on */

/* help.c: prints the help of cmd (NULL: the overview) to f. Returns 0, or
 * -ENOENT for an unknown command. */
int help_print(FILE *f, const char *cmd);

/* client.c. client_init copies its strings; returns 0 or -EINVAL (bad URL
 * or token, message printed) or -ENOMEM. */
int client_init(struct client *c, const char *url, const char *token, const char *cacert);
void client_deinit(struct client *c);
/* Performs req. Returns 0 when an HTTP response arrived (any status), with
 * *ret_resp filled (free with response_free); -errno on a transport error
 * with c->message and c->retryable set. Blocks; main thread only. */
int client_send(struct client *c, const struct request *req, struct response *ret_resp);
void response_free(struct response *r);
/* True for 2xx. */
bool response_ok(const struct response *r);
/* Prints why r is not a success: problem+json as `readyctl: title: detail`
 * plus one line per errors[] entry, otherwise status and a body excerpt. */
void client_print_http_error(const struct client *c, const struct response *r);
/* The same for the answer to a submitted spec: each errors[] entry once
 * as `FILE:LINE: path: message` (file is the spec's name). */
void client_print_spec_error(const struct client *c, const struct response *r, const char *file);
/* Parses r's body as a JSON object. New reference; NULL after printing why. */
json_t *response_json(const struct client *c, const struct response *r);
/* Send + success check + JSON parse in one: returns a new reference to the
 * response object, or NULL after printing the error. */
json_t *client_get_json(struct client *c, const struct request *req);

/* table.c: a text table sized to its contents. Cells are copied with
 * control characters replaced, so server strings cannot drive the
 * terminal. */
struct table;
struct table *table_new(size_t n_cols, const char *const *headers);
void table_free(struct table *t);
int table_add_row(struct table *t, const char *const *cells);
/* Colours column col by the words in it (pass/fail/error ...). */
void table_set_status_column(struct table *t, size_t col);
void table_print(const struct table *t, FILE *f, bool color);
size_t table_rows(const struct table *t);

/* render.c */
/* Copies s into buf with control characters replaced by '?'. */
void render_clean(const char *s, char *buf, size_t len);
/* Formats a JSON scalar for a table cell ("-" for null/absent). */
void render_value(const json_t *v, char *buf, size_t len);
/* A coloured word if color, else the word. */
const char *render_color_start(const char *word, bool color);
const char *render_color_end(const char *word, bool color);
/* The final result of a run: verdict line, gate table, errored probes and
 * checklist items that did not pass. */
void render_result(FILE *f, const json_t *run, bool color);
/* "run 42 sentiment-api 2.4.0 (staging)", no newline. */
void render_title(FILE *f, const json_t *run);
/* The gate table (expr, value, threshold, outcome, reason). */
void render_gates(FILE *f, const json_t *gates, bool color);
/* The human summary of `status`. */
void render_status(FILE *f, const json_t *run, bool color);
/* The `runs` table. */
void render_runs(FILE *f, const json_t *items, bool color);
/* One progress line for run; tty adds the bar, requests and ETA. */
void render_progress(const json_t *run, bool tty, char *buf, size_t len);
/* The run's state and whether it is final; exit code for a final run. */
bool run_is_finished(const json_t *run);
int run_exit_code(const json_t *run);
int64_t run_id(const json_t *run);

/* follow.c: waits for run id to finish (long-polling), showing progress on
 * stderr, then prints the result (or the JSON) on stdout. run is the last
 * known state (borrowed, may be NULL). timeout_ms 0: no limit. Returns the
 * exit code. */
int follow_run(struct ctl *ctl, int64_t id, const json_t *run, int64_t timeout_ms);

/* linediff.c: prints the unified diff (3 lines of context) of a_text and
 * b_text (NUL-terminated; a missing last newline is not a difference)
 * to f, headed by the two names; nothing when they are equal.
 * *ret_differ says which. 0 or -ENOMEM. */
int linediff_print(FILE *f, const char *name_a, const char *a_text, const char *name_b,
                   const char *b_text, bool *ret_differ);

/* cmd_submit.c: what to do with a created run (the answer r of POST
 * /v1/runs or /v1/services/{svc}/runs): print its id, or follow it to
 * its verdict and save the artifacts asked for. Returns the exit code. */
struct submit_args {
	bool wait;
	int64_t timeout_ms;
	const char *key;
	const char *content_type; /* NULL: from the file name */
	const char *file;
	const char *junit;         /* --junit FILE */
	const char *report;        /* --report FILE */
	const char *report_format; /* md, html, junit, json; NULL: from the name */
};
int submit_created(struct ctl *ctl, const struct submit_args *a, const struct response *r);
/* Reads a spec FILE ('-': stdin) up to the server's cap; prints why not
 * and returns -errno. *ret_buf is malloc'd. */
int submit_read_spec(const char *file, char **ret_buf, size_t *ret_len);
/* application/json for *.json, else application/yaml. */
const char *submit_content_type(const char *file);

/* cmd_*.c: each returns the process exit code. argv[0] is the command. */
int cmd_submit(struct ctl *ctl, int argc, char **argv);
int cmd_status(struct ctl *ctl, int argc, char **argv);
int cmd_report(struct ctl *ctl, int argc, char **argv);
int cmd_cancel(struct ctl *ctl, int argc, char **argv);
int cmd_runs(struct ctl *ctl, int argc, char **argv);
/* cmd_spec.c: stored specs and runs of them. */
int cmd_spec(struct ctl *ctl, int argc, char **argv);
int cmd_run(struct ctl *ctl, int argc, char **argv);
/* cmd_history.c: decisions and history (docs/spec.md "Gates"). */
int cmd_gates(struct ctl *ctl, int argc, char **argv);
int cmd_history(struct ctl *ctl, int argc, char **argv);
int cmd_trends(struct ctl *ctl, int argc, char **argv);
int cmd_rejudge(struct ctl *ctl, int argc, char **argv);
int cmd_invalidate(struct ctl *ctl, int argc, char **argv);
int cmd_waive(struct ctl *ctl, int argc, char **argv);
int cmd_waivers(struct ctl *ctl, int argc, char **argv);
int cmd_unwaive(struct ctl *ctl, int argc, char **argv);
/* Help of those commands; -ENOENT for another command. */
int history_help_print(FILE *f, const char *cmd);
