/* follow: waits for a run to finish by following its event stream (GET
 * /v1/runs/{id}/events), or by long-polling GET /v1/runs/{id}?wait= when
 * the stream is not available or breaks, shows progress on stderr (one line redrawn in place on a
 * terminal, one plain line per change otherwise, for CI logs) and ends with the verdict and gate
 * table on stdout. Connection failures while waiting are retried with exponential backoff for up to
 * CTL_RETRY_WINDOW_MS, because a daemon restart must not fail a pipeline whose run survives it.
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
#include "lib/util/run_state.h"
#include "lib/util/util.h"
#include "lib/util/json_text.h"

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

static void sse_print_json(const char *event, json_t *data);

/* Note: message is the sentence after "readyctl: ". With --json, a
 * `notice` event among the run's events (a retry is not an error). */
static void notice(struct follow *fw, const char *message)
{
	json_t *data;

	clear_line(fw);
	if (!fw->ctl->json) {
		fprintf(stderr, "readyctl: %s\n", message);
		return;
	}
	data = json_pack("{s:s}", "message", message);
	sse_print_json("notice", data);
	json_decref(data);
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

/* --- Server-Sent Events (GET /v1/runs/{id}/events) ---
 *
 * The preferred way to wait: the server pushes state, probe and progress
 * events and ends with the final run, so progress is live and nothing
 * polls. Anything short of an `end` event (an older server without
 * /events, a proxy that buffers, a dropped connection) falls back to the
 * long-poll loop, which has the retries and the final say.
 */
#define SSE_LINE_MAX  (CTL_MAX_BODY)
#define SSE_STALL_S   45L /* the server pings every 15 s */
#define SSE_EVENT_MAX 32

struct sse {
	struct follow *fw;
	CURL *curl;
	char *buf; /* the line (or data) being collected */
	size_t len, cap;
	char *data; /* data: lines of the current event */
	size_t data_len, data_cap;
	char event[SSE_EVENT_MAX];
	json_t *run;   /* the run as the events describe it; owned */
	json_t *final; /* the `end` event's run; owned */
	bool checked;  /* status and content type looked at */
	bool refused;  /* not an event stream: fall back */
};

static int sse_append(char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
	if (n > SSE_LINE_MAX - *len)
		return -E2BIG;
	if (*len + n + 1 > *cap) {
		size_t c = *cap ? *cap : 1024;
		char *b;

		while (c < *len + n + 1)
			c *= 2;
		b = realloc(*buf, c);
		if (!b)
			return -ENOMEM;
		*buf = b;
		*cap = c;
	}
	memcpy(*buf + *len, s, n);
	*len += n;
	(*buf)[*len] = '\0';
	return 0;
}

/* With --json, every event is one JSON line on stderr; stdout stays the
 * final run, as with long-polling. */
static void sse_print_json(const char *event, json_t *data)
{
	json_t *line = json_pack("{s:s, s:O}", "event", event, "data", data);
	char *text = line ? rd_json_dumps(line, JSON_COMPACT) : NULL;

	if (text) {
		fprintf(stderr, "%s\n", text);
		fflush(stderr);
	}
	free(text);
	json_decref(line);
}

/* Folds one event into the run view and shows it. */
static void sse_apply(struct sse *s, const char *event, json_t *data)
{
	json_t *probes = json_object_get(s->run, "probes");

	if (s->fw->ctl->json)
		sse_print_json(event, data);
	if (strcmp(event, "end") == 0) {
		json_decref(s->final);
		s->final = json_incref(data);
		return;
	}
	if (strcmp(event, "state") == 0)
		json_object_set(s->run, "state", json_object_get(data, "state"));
	else if (strcmp(event, "progress") == 0)
		json_object_set(s->run, "progress", data);
	else if (strcmp(event, "probe") == 0 && json_is_array(probes)) {
		size_t i = (size_t)json_integer_value(json_object_get(data, "index"));
		json_t *p = json_object_get(data, "probe");

		if (p && i < json_array_size(probes))
			json_array_set(probes, i, p);
		else if (p && i == json_array_size(probes))
			json_array_append(probes, p);
	} else {
		return; /* an event type from a newer server */
	}
	if (!s->fw->ctl->json)
		show_progress(s->fw, s->run);
}

static void sse_dispatch(struct sse *s)
{
	json_t *data;

	if (s->data_len > 0 && s->event[0]) {
		data = json_loadb(s->data, s->data_len, 0, NULL);
		if (data)
			sse_apply(s, s->event, data);
		json_decref(data);
	}
	s->data_len = 0;
	s->event[0] = '\0';
}

static int sse_line(struct sse *s, const char *line, size_t n)
{
	if (n == 0) {
		sse_dispatch(s);
		return 0;
	}
	if (line[0] == ':') /* a comment: the server's heartbeat */
		return 0;
	if (n > 7 && strncmp(line, "event: ", 7) == 0) {
		snprintf(s->event, sizeof(s->event), "%.*s", (int)(n - 7), line + 7);
		return 0;
	}
	if (n >= 5 && strncmp(line, "data:", 5) == 0) {
		size_t skip = n > 5 && line[5] == ' ' ? 6 : 5;

		if (s->data_len > 0 &&
		    sse_append(&s->data, &s->data_len, &s->data_cap, "\n", 1) < 0)
			return -ENOMEM;
		return sse_append(&s->data, &s->data_len, &s->data_cap, line + skip, n - skip);
	}
	return 0; /* id:, retry: and unknown fields */
}

static bool sse_accepted(struct sse *s)
{
	long status = 0;
	char *ct = NULL;

	s->checked = true;
	curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_getinfo(s->curl, CURLINFO_CONTENT_TYPE, &ct);
	s->refused = status != 200 || !ct || strncmp(ct, "text/event-stream", 17) != 0;
	return !s->refused;
}

static size_t sse_on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct sse *s = userdata;
	size_t n = size * nmemb;

	if (!s->checked && !sse_accepted(s))
		return 0; /* abort: long-poll instead */
	for (size_t i = 0; i < n; i++) {
		if (ptr[i] == '\n') {
			size_t l = s->len;

			if (l > 0 && s->buf[l - 1] == '\r')
				l--;
			if (sse_line(s, s->buf ? s->buf : "", l) < 0)
				return 0;
			s->len = 0;
		} else if (sse_append(&s->buf, &s->len, &s->cap, ptr + i, 1) < 0) {
			return 0;
		}
	}
	return n;
}

static int sse_on_xfer(void *userdata, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
	struct sse *s = userdata;

	return interrupted || s->final || (s->fw->deadline && mono_ms() >= s->fw->deadline);
}

static int sse_setup(struct sse *s, struct curl_slist **ret_headers)
{
	struct client *c = &s->fw->ctl->client;
	struct curl_slist *h = curl_slist_append(NULL, "Accept: text/event-stream"), *t;
	char url[CTL_MAX_URL + 64];
	CURLcode rc = CURLE_OK;

	if (h && c->auth_header && (t = curl_slist_append(h, c->auth_header)))
		h = t;
	else if (h && c->auth_header) {
		curl_slist_free_all(h);
		h = NULL;
	}
	s->curl = curl_easy_init();
	if (!h || !s->curl) {
		curl_slist_free_all(h);
		return -ENOMEM;
	}
	snprintf(url, sizeof(url), "%s/v1/runs/%lld/events", c->base_url, (long long)s->fw->id);
	rc |= curl_easy_setopt(s->curl, CURLOPT_URL, url);
	rc |= curl_easy_setopt(s->curl, CURLOPT_PROTOCOLS_STR, "http,https");
	rc |= curl_easy_setopt(s->curl, CURLOPT_NOSIGNAL, 1L);
	rc |= curl_easy_setopt(s->curl, CURLOPT_USERAGENT, "readyctl/" READYD_VERSION);
	rc |= curl_easy_setopt(s->curl, CURLOPT_HTTPHEADER, h);
	rc |= curl_easy_setopt(s->curl, CURLOPT_CONNECTTIMEOUT, CTL_CONNECT_TIMEOUT_S);
	rc |= curl_easy_setopt(s->curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
	rc |= curl_easy_setopt(s->curl, CURLOPT_LOW_SPEED_TIME, SSE_STALL_S);
	rc |= curl_easy_setopt(s->curl, CURLOPT_WRITEFUNCTION, sse_on_body);
	rc |= curl_easy_setopt(s->curl, CURLOPT_WRITEDATA, s);
	rc |= curl_easy_setopt(s->curl, CURLOPT_XFERINFOFUNCTION, sse_on_xfer);
	rc |= curl_easy_setopt(s->curl, CURLOPT_XFERINFODATA, s);
	rc |= curl_easy_setopt(s->curl, CURLOPT_NOPROGRESS, 0L);
	if (c->cacert)
		rc |= curl_easy_setopt(s->curl, CURLOPT_CAINFO, c->cacert);
	*ret_headers = h;
	return rc == CURLE_OK ? 0 : -EINVAL;
}

/* Follows the event stream. Returns the final run (new reference) when
 * an `end` arrived, else NULL: the caller long-polls (or stops, if
 * interrupted or past the deadline). run is the last known state. */
static json_t *sse_follow(struct follow *fw, const json_t *run)
{
	struct sse s = {.fw = fw};
	struct curl_slist *h = NULL;

	s.run = run ? json_deep_copy(run)
	            : json_pack("{s:s, s:[]}", "state", run_state_to_string(RUN_QUEUED), "probes");
	if (s.run && sse_setup(&s, &h) == 0)
		curl_easy_perform(s.curl);
	curl_easy_cleanup(s.curl);
	curl_slist_free_all(h);
	free(s.buf);
	free(s.data);
	json_decref(s.run);
	return s.final;
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
		dump = rd_json_dumps(run, JSON_INDENT(2));
		if (!dump) {
			ctl_errorf("out of memory\n");
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
	if (run && !ctl->json)
		show_progress(&fw, run);
	final = sse_follow(&fw, run);
	if (!final && interrupted)
		code = stop_waiting(&fw, -EINTR);
	else if (!final && fw.deadline && mono_ms() >= fw.deadline)
		code = stop_waiting(&fw, -ETIMEDOUT);
	else if (!final)
		final = wait_loop(&fw, json_incref((json_t *)run), &code);
	ctl->client.abort_flag = NULL;
	sigaction(SIGINT, &old, NULL);
	if (!final)
		return code;
	code = finish(&fw, final);
	json_decref(final);
	return code;
}
