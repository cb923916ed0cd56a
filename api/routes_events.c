/* routes_events: GET /v1/runs/{id}/events, a run's progress as
 * Server-Sent Events (text/event-stream) until it ends:
 *
 *   event: state     {id, state}            the run's state changed
 *   event: probe     {index, probe}         a probe started or ended
 *   event: progress  sched_progress()       every second while a load
 *                                           (or capacity) probe runs
 *   event: end       the run resource       last event; the stream closes
 *   : ping                                  every 15 s, so proxies keep the
 *                                           connection and we notice a
 *                                           client that went away
 *
 * Transitions come from a scheduler watch; what changed is found by
 * comparing the stored run with the one last sent (every transition is
 * stored before it is announced). A run that has ended gets one `end` at
 * once. It must not hold the connection open after the run ended, nor
 * poll: the stream is suspended between events (api_stream_*).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "lib/util/run_state.h"
#include "lib/util/json_text.h"

#define TICK_MS         1000
#define HEARTBEAT_TICKS 15

struct events {
	struct api_stream *stream;
	struct sched_watch *watch;
	uv_timer_t *timer;
	struct store *store;
	struct sched *sched;
	int64_t id;
	json_t *last; /* the run as last sent; owned */
	unsigned ticks;
	uint64_t seq; /* SSE id: */
	bool ended;
};

/* One event; a failed write (client gone or too slow) ends the stream. */
static void send_event(struct events *ev, const char *name, json_t *data)
{
	char *text = data ? rd_json_dumps(data, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
	char head[96];
	int n, r;

	json_decref(data);
	if (!text || ev->ended) {
		free(text);
		return;
	}
	/* JSON_COMPACT output has no newline, so one data: line suffices. */
	n = snprintf(head, sizeof(head),
	             "id: %llu\nevent: %s\ndata: ", (unsigned long long)++ev->seq, name);
	r = api_stream_write(ev->stream, head, (size_t)n);
	if (r == 0)
		r = api_stream_write(ev->stream, text, strlen(text));
	if (r == 0)
		r = api_stream_write(ev->stream, "\n\n", 2);
	free(text);
	if (r < 0) {
		ev->ended = true;
		api_stream_end(ev->stream);
	}
}

static void send_end(struct events *ev, json_t *run)
{
	send_event(ev, "end", json_incref(run));
	ev->ended = true;
	api_stream_end(ev->stream);
}

/* Probe and state events for what differs between ev->last and run. */
static void send_changes(struct events *ev, json_t *run)
{
	json_t *probes = json_object_get(run, "probes"), *p;
	json_t *old = json_object_get(ev->last, "probes");
	const char *state = json_string_value(json_object_get(run, "state"));
	size_t i;

	json_array_foreach (probes, i, p) {
		json_t *was = json_array_get(old, i);

		if (was && json_equal(json_object_get(was, "state"), json_object_get(p, "state")))
			continue;
		send_event(ev, "probe",
		           json_pack("{s:I, s:O}", "index", (json_int_t)i, "probe", p));
	}
	if (!json_equal(json_object_get(ev->last, "state"), json_object_get(run, "state")))
		send_event(ev, "state",
		           json_pack("{s:I, s:s?}", "id", (json_int_t)ev->id, "state", state));
	json_decref(ev->last);
	ev->last = json_incref(run);
}

static void refresh(struct events *ev)
{
	json_t *run;

	if (ev->ended || store_run_get(ev->store, ev->id, &run) < 0)
		return;
	send_changes(ev, run);
	if (run_state_string_is_final(json_string_value(json_object_get(run, "state"))))
		send_end(ev, run);
	json_decref(run);
}

static void on_changed(void *userdata, int64_t run_id, const char *state, bool final)
{
	struct events *ev = userdata;

	if (final)
		ev->watch = NULL; /* the scheduler frees it after we return */
	refresh(ev);
}

/* The running probe's type, from the run as last sent. */
static bool load_running(struct events *ev, json_t *progress)
{
	const char *name =
	        json_string_value(json_object_get(json_object_get(progress, "current"), "probe"));
	size_t i;
	json_t *p;

	json_array_foreach (json_object_get(ev->last, "probes"), i, p) {
		const char *t = json_string_value(json_object_get(p, "type"));

		if (name && json_is_string(json_object_get(p, "name")) &&
		    strcmp(json_string_value(json_object_get(p, "name")), name) == 0)
			return t && (strcmp(t, "load") == 0 || strcmp(t, "capacity") == 0);
	}
	return false;
}

static void on_tick(uv_timer_t *t)
{
	struct events *ev = t->data;
	json_t *progress;

	if (ev->ended)
		return;
	if (sched_progress(ev->sched, ev->id, &progress) == 0) {
		if (load_running(ev, progress))
			send_event(ev, "progress", progress);
		else
			json_decref(progress);
	}
	if (++ev->ticks % HEARTBEAT_TICKS == 0 && !ev->ended &&
	    api_stream_write(ev->stream, ": ping\n\n", 8) < 0) {
		ev->ended = true;
		api_stream_end(ev->stream);
	}
}

static void on_timer_closed(uv_handle_t *h)
{
	free(h);
}

static void events_free(struct events *ev)
{
	if (ev->watch)
		sched_unwatch(ev->watch);
	if (ev->timer) {
		uv_timer_stop(ev->timer);
		uv_close((uv_handle_t *)ev->timer, on_timer_closed);
	}
	json_decref(ev->last);
	free(ev);
}

static void events_cleanup(struct api_req *req, void *userdata)
{
	events_free(userdata);
}

/* Watch and tick for a run that is still active. -ENOENT if it is not. */
static int follow(struct events *ev, uv_loop_t *loop)
{
	int r = sched_watch(ev->sched, ev->id, on_changed, ev, &ev->watch);

	if (r < 0)
		return r;
	ev->timer = malloc(sizeof(*ev->timer));
	if (!ev->timer)
		return -ENOMEM;
	uv_timer_init(loop, ev->timer);
	ev->timer->data = ev;
	uv_timer_start(ev->timer, on_tick, TICK_MS, TICK_MS);
	return 0;
}

void api_events_serve(struct api_req *req)
{
	struct api_app *app = api_req_app(req);
	struct events *ev;
	json_t *run;
	int r = store_run_get(app->store, api_req_id(req), &run);

	if (r < 0) {
		api_problem_errno(req, r, "run");
		return;
	}
	ev = calloc(1, sizeof(*ev));
	if (ev)
		ev->stream = api_stream_start(req, "text/event-stream", events_cleanup, ev);
	if (!ev || !ev->stream) {
		free(ev);
		json_decref(run);
		api_problem_errno(req, -ENOMEM, "event stream");
		return;
	}
	ev->store = app->store;
	ev->sched = app->sched;
	ev->id = api_req_id(req);
	/* A run that has ended gets its `end` alone; an active one first
	 * what happened so far, then live changes. */
	if (run_state_string_is_final(json_string_value(json_object_get(run, "state"))))
		ev->last = json_incref(run);
	else
		send_changes(ev, run);
	if (run_state_string_is_final(json_string_value(json_object_get(run, "state"))) ||
	    follow(ev, api_req_loop(req)) < 0) {
		refresh(ev); /* ended meanwhile (or out of memory): end now */
		if (!ev->ended) {
			ev->ended = true;
			api_stream_end(ev->stream);
		}
	}
	json_decref(run);
}

const struct api_route api_routes_events[] = {
        {"GET", "/v1/runs/{id}/events", api_events_serve, API_ROLE_VIEWER},
        {NULL, NULL, NULL},
};
