/* offload: reads that may take a while (a trend over a year of hourly
 * buckets, a long history, the report of a run with long load probes) run
 * on libuv's worker threads, so the loop keeps answering everything else
 * meanwhile. Each worker thread opens its own read-only store connection
 * once (store_reader_open) and keeps it; the request is parked
 * (api_req_suspend) while the read runs and answered from the loop when
 * it is done. A client that went away, or a server that stopped,
 * meanwhile only loses the answer: the read still completes and its
 * result is freed.
 *
 * A read does one of three things, whichever function it was given:
 * answers a JSON tree, serialised on the worker too (fn); writes its
 * answer's JSON text itself, no tree at all for a trend of thousands of
 * points (text_fn); or makes a body that is not JSON, a report (body_fn),
 * which the caller may finish on the loop itself (done).
 *
 * An answer that will be kept is read once per generation: a request for
 * the same key and token scope at the same generation while the read is
 * under way waits for it and gets the same bytes, so clients polling one
 * big report at once cost one render, not one each.
 *
 * A store without a second connection (":memory:") is read on the loop.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "lib/util/json_text.h"
#include "lib/util/log.h"
#include "lib/util/util.h"
#include "respcache.h"

#define OFFLOAD_WHAT_MAX 96

struct offload;

/* A request waiting for the same read as another (coalesced). */
struct waiter {
	struct waiter *next;
	struct offload *o; /* NULL once answered or detached */
	struct api_req *req;
};

struct offload {
	uv_work_t work;
	struct offload *next_inflight; /* kept reads under way, loop only */
	struct waiter *waiters;        /* requests coalesced onto this read */
	char *scope;                   /* the caller's token scope, "" for every service */
	struct api_req *req;           /* NULL once the request ended without us */
	struct store *store;           /* the main connection: reader_open reads its location */
	api_read_fn fn;                /* a JSON tree, serialised here, or */
	api_read_text_fn text_fn;      /* the answer's JSON text written by the caller, or */
	api_body_fn body_fn;           /* a body made by the caller (exactly one is set) */
	api_body_done_fn done;         /* NULL: answered and kept under key */
	void *arg;
	void (*free_arg)(void *arg);
	uint64_t generation;
	struct api_body *result; /* serialised where it was read */
	int r;
	bool no_reader;
	bool reader_failed; /* none could be opened, for a reason of this moment */
	char what[OFFLOAD_WHAT_MAX];
	char err[256];
	char key[];
};

/* This worker thread's read-only connection, opened on first use. */
static _Thread_local struct store *thread_reader;

/* Set once a store turned out to have no second connection. */
static bool no_readers;

/* Reads of kept answers under way (with a key and no done callback). */
static struct offload *inflight;

/* Runs text_fn on st: the answer's bytes and the newline api_reply_json
 * ends with. */
static void read_text(struct offload *o, struct store *st)
{
	struct rd_jtext t = {0};

	o->r = o->text_fn(st, o->arg, &t, o->err, sizeof(o->err));
	rd_jtext_raw(&t, "\n", 1);
	if (o->r == 0 && t.err)
		o->r = t.err == -EINVAL ? -EIO : t.err; /* not the caller's fault */
	if (o->r == 0) {
		o->result = api_body_new(t.buf, t.len);
		if (!o->result)
			o->r = -ENOMEM;
	}
	free(t.buf);
}

/* Runs body_fn on st: the body as the caller made it, none after an
 * error; 0 without a body is a failed allocation. */
static void read_body(struct offload *o, struct store *st)
{
	o->r = o->body_fn(st, o->arg, &o->result, o->err, sizeof(o->err));
	if (o->r < 0 && o->result) {
		api_body_unref(o->result);
		o->result = NULL;
	} else if (o->r == 0 && !o->result) {
		o->r = -ENOMEM;
	}
}

/* Runs fn on st and serialises its answer there too: a big history's
 * JSON text is built off the loop as well. */
static void read_json(struct offload *o, struct store *st)
{
	json_t *json = NULL;

	o->r = o->fn(st, o->arg, &json, o->err, sizeof(o->err));
	if (o->r == 0) {
		o->result = api_body_of_json(json);
		if (!o->result)
			o->r = -ENOMEM;
	}
}

/* The read itself, on st, with whichever function the caller gave. */
static void read_and_serialise(struct offload *o, struct store *st)
{
	if (o->text_fn)
		read_text(o, st);
	else if (o->body_fn)
		read_body(o, st);
	else
		read_json(o, st);
}

/* A reader whose database server went away (restarted, failed over, or
 * silent past the deadline) stays unusable: it is closed, and a read that
 * found the connection gone is tried once more on a new one, so reads
 * come back with the server rather than with a restart of readyd. */
static void offload_work(uv_work_t *w)
{
	struct offload *o = rd_container_of(w, struct offload, work);
	int r;

	for (int attempt = 0; attempt < 2; attempt++) {
		if (!thread_reader) {
			r = store_reader_open(o->store, &thread_reader, o->err, sizeof(o->err));
			if (r < 0) {
				thread_reader = NULL;
				o->no_reader = r == -ENOTSUP;
				o->reader_failed =
				        r != -ENOTSUP && r != -ENOTCONN && r != -ETIMEDOUT;
				o->r = r;
				return;
			}
		}
		read_and_serialise(o, thread_reader);
		if (o->r != -ENOTCONN && o->r != -ETIMEDOUT)
			return;
		store_free(thread_reader);
		thread_reader = NULL;
		if (o->r == -ETIMEDOUT)
			return; /* a server that hangs would only make it wait again */
		o->err[0] = '\0';
	}
}

static void offload_free(struct offload *o)
{
	free(o->scope);
	api_body_unref(o->result);
	if (o->free_arg)
		o->free_arg(o->arg);
	free(o);
}

/* The answer of a finished read, on the loop. */
static void answer(struct api_req *req, struct offload *o)
{
	if (o->done) {
		struct api_body *b = o->result;

		o->result = NULL;
		o->done(req, o->arg, o->generation, o->r, o->err, b);
	} else if (o->r == -EINVAL) {
		api_problem(req, 400, NULL, "%s", o->err);
	} else if (o->r < 0) {
		api_problem_errno(req, o->r, o->what);
	} else {
		api_reply_body_kept(req, o->key, o->generation, o->result);
		o->result = NULL;
	}
}

static void inflight_remove(struct offload *o)
{
	for (struct offload **p = &inflight; *p; p = &(*p)->next_inflight)
		if (*p == o) {
			*p = o->next_inflight;
			return;
		}
}

/* Each waiter gets the same answer as the request that started the read
 * (the bytes shared, and kept again under its scope: the same one),
 * whatever made them (fn, text_fn or body_fn). */
static void answer_waiters(struct offload *o)
{
	struct waiter *w;
	struct api_req *req;
	unsigned n = 0;

	while ((w = o->waiters)) {
		o->waiters = w->next;
		w->o = NULL;
		req = w->req;
		if (o->r == -EINVAL)
			api_problem(req, 400, NULL, "%s", o->err);
		else if (o->r < 0)
			api_problem_errno(req, o->r, o->what);
		else
			api_reply_body_kept(req, o->key, o->generation, api_body_ref(o->result));
		/* w was freed by the reply's cleanup (waiter_cleanup) */
		n++;
	}
	if (n)
		rd_log(RD_LOG_DEBUG, NULL,
		       "One read answered %u more requests that waited for it: %s", n, o->key);
}

static void offload_done(uv_work_t *w, int status)
{
	struct offload *o = rd_container_of(w, struct offload, work);
	struct api_req *req = o->req;

	if (req && o->no_reader) {
		no_readers = true;
		o->err[0] = '\0';
		read_and_serialise(o, api_req_app(req)->store);
	} else if (req && o->reader_failed) {
		/* A database file deleted or renamed under readyd: a new
		 * connection cannot open it, the loop's own still reads it
		 * (until an operator puts it back or restarts). Not for a
		 * server that does not answer: that would only wait here. */
		o->r = 0;
		o->err[0] = '\0';
		read_and_serialise(o, api_req_app(req)->store);
	} else if (status < 0 && req) {
		o->r = status == UV_ECANCELED ? -ECANCELED : -EIO;
	}
	if (req && o->r < 0 && o->r != -EINVAL)
		rd_log(RD_LOG_DEBUG, NULL, "Failed to answer '%s' off the loop: %s", o->what,
		       o->err[0] ? o->err : strerror(-o->r));
	inflight_remove(o);
	answer_waiters(o);
	if (req)
		answer(req, o); /* its cleanup clears o->req */
	offload_free(o);
}

static void waiter_cleanup(struct api_req *req, void *userdata)
{
	struct waiter *w = userdata;

	(void)req;
	if (w->o) {
		for (struct waiter **p = &w->o->waiters; *p; p = &(*p)->next)
			if (*p == w) {
				*p = w->next;
				break;
			}
	}
	free(w);
}

/* The read under way for the same kept answer as req would start, if
 * any: same key, same token scope, same generation. */
static struct offload *inflight_find(struct api_req *req, const char *key, uint64_t generation)
{
	const char *scope = api_req_scope(req);

	for (struct offload *o = inflight; o; o = o->next_inflight)
		if (o->generation == generation && strcmp(o->key, key) == 0 &&
		    strcmp(o->scope, scope ? scope : "") == 0)
			return o;
	return NULL;
}

/* Parks req until the read o is done; false on ENOMEM (read it anew). */
static bool wait_for(struct api_req *req, struct offload *o)
{
	struct waiter *w = calloc(1, sizeof(*w));

	if (!w)
		return false;
	w->o = o;
	w->req = req;
	w->next = o->waiters;
	o->waiters = w;
	api_req_suspend(req, waiter_cleanup, w);
	return true;
}

static void offload_cleanup(struct api_req *req, void *userdata)
{
	struct offload *o = userdata;

	(void)req;
	o->req = NULL;
}

static void off_loop(struct offload *o, struct api_req *req)
{
	const char *scope = api_req_scope(req);
	bool kept = o->key[0] && !o->done;
	struct offload *same;
	int r;

	o->req = req;
	o->store = api_req_app(req)->store;
	o->generation = api_req_generation(req);
	if (kept && !no_readers && (same = inflight_find(req, o->key, o->generation)) &&
	    wait_for(req, same)) {
		offload_free(o);
		return;
	}
	if (no_readers) {
		read_and_serialise(o, o->store);
		answer(req, o);
		offload_free(o);
		return;
	}
	r = uv_queue_work(api_req_loop(req), &o->work, offload_work, offload_done);
	if (r < 0) {
		o->req = NULL;
		api_problem_errno(req, -EAGAIN, o->what);
		offload_free(o);
		return;
	}
	api_req_suspend(req, offload_cleanup, o);
	if (kept && (o->scope = strdup(scope ? scope : ""))) {
		o->next_inflight = inflight;
		inflight = o;
	}
}

static struct offload *offload_new(struct api_req *req, const char *key, const char *what,
                                   void *arg, void (*free_arg)(void *arg))
{
	size_t klen = strlen(key);
	struct offload *o = calloc(1, sizeof(*o) + klen + 1);

	if (!o) {
		if (free_arg)
			free_arg(arg);
		api_problem_errno(req, -ENOMEM, what);
		return NULL;
	}
	memcpy(o->key, key, klen + 1);
	snprintf(o->what, sizeof(o->what), "%s", what);
	o->arg = arg;
	o->free_arg = free_arg;
	return o;
}

void api_read_off_loop(struct api_req *req, const char *key, const char *what, api_read_fn fn,
                       void *arg, void (*free_arg)(void *arg))
{
	struct offload *o = offload_new(req, key, what, arg, free_arg);

	if (!o)
		return;
	o->fn = fn;
	off_loop(o, req);
}

void api_read_text_off_loop(struct api_req *req, const char *key, const char *what,
                            api_read_text_fn fn, void *arg, void (*free_arg)(void *arg))
{
	struct offload *o = offload_new(req, key, what, arg, free_arg);

	if (!o)
		return;
	o->text_fn = fn;
	off_loop(o, req);
}

void api_body_off_loop(struct api_req *req, const char *key, const char *what, api_body_fn fn,
                       api_body_done_fn done, void *arg, void (*free_arg)(void *arg))
{
	struct offload *o = offload_new(req, key, what, arg, free_arg);

	if (!o)
		return;
	o->body_fn = fn;
	o->done = done;
	off_loop(o, req);
}
