/* follow: waits for a run to finish by long-polling GET /v1/runs/{id}?wait=,
 * shows progress on stderr (one line redrawn in place on a terminal, one
 * plain line per change otherwise, for CI logs) and ends with the verdict
 * and gate table on stdout. Connection failures while waiting are retried
 * with exponential backoff for up to CTL_RETRY_WINDOW_MS, because a daemon
 * restart must not fail a pipeline whose run survives it.
 *
 * It must never report a run as passed unless the server said PASS; on
 * timeout, interruption or lost connection it says the run continues on
 * the server, since leaving this process does not cancel it.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "util.h"

#define CTL_RETRY_WINDOW_MS      60000
#define CTL_BACKOFF_FIRST_MS     500
#define CTL_BACKOFF_MAX_MS       8000
#define CTL_POLL_WAIT_S          30
#define CTL_POLL_MIN_INTERVAL_MS 1000
#define CTL_LINE_MAX             512

struct follow {
	struct ctl *ctl;
	int64_t id;
	int64_t deadline;      /* monotonic ms; 0: none */
	int64_t failing_since; /* monotonic ms of the first failure in a row; -1: none */
	int64_t backoff_ms;
	int64_t timeout_ms;
	char last_line[CTL_LINE_MAX];
	bool line_on_screen;
};

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
	(void)sig;
	interrupted = 1;
}

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sleeps ms unless SIGINT arrives first. */
static void sleep_ms(int64_t ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};

	while (!interrupted && nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static size_t terminal_columns(void)
{
	struct winsize ws;

	if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 10)
		return ws.ws_col;
	return 80;
}

static void clear_line(struct follow *fw)
{
	if (fw->line_on_screen)
		fputs("\r\033[K", stderr);
	fw->line_on_screen = false;
	fw->last_line[0] = '\0';
}

static void show_progress(struct follow *fw, const json_t *run)
{
	char line[CTL_LINE_MAX];
	size_t cols;

	render_progress(run, fw->ctl->tty_err, line, sizeof(line));
	if (strcmp(line, fw->last_line) == 0)
		return;
	memcpy(fw->last_line, line, sizeof(line));
	if (!fw->ctl->tty_err) {
		fprintf(stderr, "%s\n", line);
		return;
	}
	/* A line that wraps cannot be redrawn with \r. */
	cols = terminal_columns();
	if (strlen(line) >= cols)
		render_clean(fw->last_line, line, cols);
	fprintf(stderr, "\r\033[K%s", line);
	fflush(stderr);
	fw->line_on_screen = true;
}

/* Note: message is the sentence after "readyctl: ". */
static void notice(struct follow *fw, const char *message)
{
	clear_line(fw);
	fprintf(stderr, "readyctl: %s\n", message);
}

static int64_t backoff_step(struct follow *fw)
{
	int64_t wait = fw->backoff_ms;

	fw->backoff_ms = wait * 2 > CTL_BACKOFF_MAX_MS ? CTL_BACKOFF_MAX_MS : wait * 2;
	/* Never sleep past --timeout or the retry window: one last attempt at
	 * the window's end beats giving up early. */
	if (fw->deadline && fw->deadline - mono_ms() < wait)
		wait = fw->deadline - mono_ms();
	if (fw->failing_since + CTL_RETRY_WINDOW_MS - mono_ms() < wait)
		wait = fw->failing_since + CTL_RETRY_WINDOW_MS - mono_ms();
	return wait > 0 ? wait : 0;
}

/* A failure that may heal: returns 0 to try again, -ETIMEDOUT when the
 * retry window is spent (after saying so). */
static int retry_or_give_up(struct follow *fw, const char *why)
{
	char msg[CTL_LINE_MAX + 128];
	int64_t now = mono_ms(), wait;

	if (fw->failing_since < 0) {
		fw->failing_since = now;
		fw->backoff_ms = CTL_BACKOFF_FIRST_MS;
	}
	if (now - fw->failing_since >= CTL_RETRY_WINDOW_MS) {
		snprintf(
		        msg, sizeof(msg),
		        "%s; gave up after %ds of retries. Run %lld continues on the server: readyctl status %lld",
		        why, CTL_RETRY_WINDOW_MS / 1000, (long long)fw->id, (long long)fw->id);
		notice(fw, msg);
		return -ETIMEDOUT;
	}
	wait = backoff_step(fw);
	snprintf(msg, sizeof(msg), "%s; retrying in %.1fs", why, (double)wait / 1000.0);
	notice(fw, msg);
	sleep_ms(wait);
	return 0;
}

static long poll_wait_s(const struct follow *fw)
{
	int64_t remain;

	if (!fw->deadline)
		return CTL_POLL_WAIT_S;
	remain = (fw->deadline - mono_ms() + 999) / 1000;
	return remain < 1 ? 1 : remain > CTL_POLL_WAIT_S ? CTL_POLL_WAIT_S : (long)remain;
}

/* One long poll. Returns 0 with *ret_run, -EAGAIN after a retryable
 * failure (already waited), or another -errno after printing why. */
static int poll_once(struct follow *fw, json_t **ret_run)
{
	struct client *c = &fw->ctl->client;
	long wait_s = poll_wait_s(fw);
	char path[96], why[CTL_LINE_MAX];
	struct request req = {.method = "GET", .path = path, .timeout_s = wait_s + 30};
	struct response r;
	json_t *run;
	int ret;

	snprintf(path, sizeof(path), "/v1/runs/%lld?wait=%lds", (long long)fw->id, wait_s);
	ret = client_send(c, &req, &r);
	if (ret == -EINTR)
		return ret;
	if (ret < 0 && !c->retryable) {
		notice(fw, c->message);
		return ret;
	}
	if (ret < 0 || r.status == 502 || r.status == 503 || r.status == 504) {
		if (ret < 0)
			snprintf(why, sizeof(why), "%s", c->message);
		else
			snprintf(why, sizeof(why), "HTTP %ld from %s", r.status, c->base_url);
		if (ret == 0)
			response_free(&r);
		return retry_or_give_up(fw, why) < 0 ? -ETIMEDOUT : -EAGAIN;
	}
	fw->failing_since = -1;
	if (!response_ok(&r)) {
		clear_line(fw);
		client_print_http_error(c, &r);
		response_free(&r);
		return -EPROTO;
	}
	run = response_json(c, &r);
	response_free(&r);
	if (!run)
		return -EPROTO;
	*ret_run = run;
	return 0;
}

static int finish(struct follow *fw, const json_t *run)
{
	char *dump;

	clear_line(fw);
	if (fw->ctl->json) {
		dump = json_dumps(run, JSON_INDENT(2));
		if (!dump) {
			fputs("readyctl: out of memory\n", stderr);
			return CTL_EXIT_USAGE;
		}
		printf("%s\n", dump);
		free(dump);
	} else {
		render_result(stdout, run, fw->ctl->color);
	}
	return run_exit_code(run);
}

static int stop_waiting(struct follow *fw, int why)
{
	char msg[256], limit[32];

	if (why == -EINTR) {
		snprintf(
		        msg, sizeof(msg),
		        "interrupted; run %lld continues on the server (readyctl cancel %lld stops it)",
		        (long long)fw->id, (long long)fw->id);
		notice(fw, msg);
		return CTL_EXIT_SIGINT;
	}
	rd_format_duration(fw->timeout_ms, limit, sizeof(limit));
	snprintf(
	        msg, sizeof(msg),
	        "gave up waiting for run %lld after %s (--timeout); the run continues on the server: readyctl status %lld",
	        (long long)fw->id, limit, (long long)fw->id);
	notice(fw, msg);
	return CTL_EXIT_ERROR;
}

/* Polls until the run is final. Returns the final run (new reference) or
 * NULL with *ret_code set. */
static json_t *wait_loop(struct follow *fw, json_t *run, int *ret_code)
{
	json_t *next = NULL;
	int64_t started;
	int ret;

	while (!run || !run_is_finished(run)) {
		if (interrupted || (fw->deadline && mono_ms() >= fw->deadline)) {
			*ret_code = stop_waiting(fw, interrupted ? -EINTR : -ETIMEDOUT);
			break;
		}
		started = mono_ms();
		ret = poll_once(fw, &next);
		if (ret == -EAGAIN)
			continue;
		if (ret < 0) {
			*ret_code = ret == -EINTR ? stop_waiting(fw, ret) : CTL_EXIT_USAGE;
			break;
		}
		/* A server (or proxy) that answers at once without a change must
		 * not turn this loop into a flood. */
		if (run && json_equal(run, next) && mono_ms() - started < CTL_POLL_MIN_INTERVAL_MS)
			sleep_ms(CTL_POLL_MIN_INTERVAL_MS - (mono_ms() - started));
		json_decref(run);
		run = next;
		show_progress(fw, run);
	}
	if (run && run_is_finished(run))
		return run;
	json_decref(run);
	return NULL;
}

int follow_run(struct ctl *ctl, int64_t id, const json_t *run, int64_t timeout_ms)
{
	struct follow fw = {.ctl = ctl, .id = id, .failing_since = -1, .timeout_ms = timeout_ms};
	struct sigaction sa = {.sa_handler = on_sigint}, old;
	json_t *final;
	int code = CTL_EXIT_ERROR;

	if (timeout_ms > 0)
		fw.deadline = mono_ms() + timeout_ms;
	interrupted = 0;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &old);
	ctl->client.abort_flag = &interrupted;
	if (run)
		show_progress(&fw, run);
	final = wait_loop(&fw, json_incref((json_t *)run), &code);
	ctl->client.abort_flag = NULL;
	sigaction(SIGINT, &old, NULL);
	if (!final)
		return code;
	code = finish(&fw, final);
	json_decref(final);
	return code;
}
