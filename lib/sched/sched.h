/* sched: the run/probe state machine and job queue on the libuv loop.
 * Runs move queued -> running -> passed | failed | error | cancelled |
 * interrupted; each run's probes execute as async jobs, one after the
 * other in spec order (docs/ARCHITECTURE.md says why), with a deadline per
 * probe and per run. Load probes are exclusive per daemon
 * (max_concurrent_load). Every transition is written to the store before
 * it is announced to watchers; a write the store refuses is kept in
 * memory and retried with backoff (1 s doubling to 30 s), and nothing of
 * that run is announced, no queued run starts and submits fail until the
 * store has taken it (sched_store_status).
 *
 * Main loop thread only.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "lib/net/http.h"
#include "lib/spec/spec.h"
#include "lib/store/store.h"

struct sched;
struct sched_watch;

struct sched_config {
	int max_concurrent_runs; /* default 4 */
	int max_concurrent_load; /* default 1 */
	int max_queued;          /* default 100; submit beyond it is -EAGAIN */
};

int sched_new(uv_loop_t *loop, struct store *st, struct http_client *http,
              const struct sched_config *cfg, struct sched **ret_sched);

/* Frees the scheduler; there must be no active run and its retry timer
 * must be closed: call sched_shutdown and run the loop first. NULL is
 * fine. */
void sched_free(struct sched *s);

void sched_set_config(struct sched *s, const struct sched_config *cfg);

/* The notifications Alertmanager delivered to readyd's webhook
 * (lib/prom/aminbox.h), for the alert drills of runs submitted from now
 * on. Borrowed for the scheduler's life; NULL: none. */
struct aminbox;
void sched_set_inbox(struct sched *s, struct aminbox *inbox);

/* Names this node (node, version: borrowed, copied) and sets the lease of
 * the runs it claims. Every run it stores records node. With a shared
 * store (store_shared: several nodes on one database, docs/scale-out.md)
 * it also turns cluster mode on: runs are submitted to the shared queue
 * and claimed by whichever node has a free slot (this one included),
 * this node beats every lease/3 to keep its runs, ends the runs of nodes
 * whose lease passed, and sched_cancel/sched_watch work on runs other
 * nodes execute. Call once, after sched_new. -ENOMEM, -EINVAL. */
int sched_set_node(struct sched *s, const char *node, int64_t lease_ms, const char *version);

/* Stores and queues a new run. Steals spec (also on error). With an
 * idempotency key the spec's service has seen before with the same spec,
 * returns that run's id with *ret_existing set and queues nothing; with
 * a different spec, -EEXIST. -EAGAIN when the queue is full. */
int sched_submit(struct sched *s, struct spec *spec, const char *submitted_by,
                 const char *idempotency_key, int64_t *ret_id, bool *ret_existing);

/* Cancels a queued or running run. In cluster mode a run another node
 * executes is cancelled through the store: at once when still queued,
 * at that node's next beat when running (0 in both cases). -ENOENT: no active run with that id
 * (it may exist finished: callers check the store); -EALREADY: the run
 * has ended and its end waits for the store (nothing to cancel). */
int sched_cancel(struct sched *s, int64_t id);

/* Live progress of an active run: {probes_done, probes_total, current:
 * {probe, percent, requests, rps?, p99_ms?, errors?} | null, eta_s | null};
 * rps, p99_ms and errors: a load probe's live reading (probe.live_*), once
 * it has one. -ENOENT if not active. New reference. */
int sched_progress(struct sched *s, int64_t id, json_t **ret_progress);

/* Number of active runs: queued, running, or ended but not yet stored. */
int sched_active(struct sched *s);

/* How many runs the queue holds (scheduler.max_queued). */
int sched_queue_limit(struct sched *s);

/* Called when the store refuses a write of a run (err is its -errno; the
 * sentence has the form "Failed to store 'run N': REASON; ..."), once per
 * spell of refusals, and with err 0 when the pending writes have landed.
 * A write that retrying cannot fix (-EINVAL, -ENOENT, -EEXIST) is also
 * reported (ending ", ignoring") and skipped. In cluster mode, err 0 also
 * tells of runs ended because their node stopped renewing its lease,
 * and of claimed runs this node could not execute. lib/ logs at debug only: the
 * daemon decides what to log. */
typedef void (*sched_store_cb)(void *userdata, int err, const char *sentence);
void sched_set_store_cb(struct sched *s, sched_store_cb cb, void *userdata);

/* 0 while every transition is stored; else the last refusal's -errno
 * (-ENOSPC for a full disk) and, in buf, "cannot write run N: REASON; K
 * write(s) pending". Submits fail with that -errno meanwhile. */
int sched_store_status(struct sched *s, char *buf, size_t len);

/* The store answers again (a database server that was unreachable): the
 * pending writes are retried now rather than at the end of their backoff.
 * Nothing happens while nothing is pending. */
void sched_store_retry(struct sched *s);

/* Called after every stored transition of run id (state, probe start or
 * end). The last call has final set: the run has ended and the watch is
 * freed right after the callback returns (do not unwatch it then).
 * A watch may unwatch itself from its callback, but no other watch. */
typedef void (*sched_watch_cb)(void *userdata, int64_t run_id, const char *state, bool final);
/* -ENOENT if the run is not active (it is unknown or has ended). In
 * cluster mode a run another node executes is followed through the
 * store (read again whenever its generation moved, every 250 ms at
 * most); its callbacks carry the stored state. */
int sched_watch(struct sched *s, int64_t run_id, sched_watch_cb cb, void *userdata,
                struct sched_watch **ret_watch);
void sched_unwatch(struct sched_watch *w);

/* Cancels every active run (recording them as cancelled, or as
 * interrupted with interrupt=true; in cluster mode a run claimed from
 * the shared queue that has not started a probe is handed back to it)
 * and calls cb once none is active. Runs
 * whose end the store still refuses get one last try and are then given
 * up (reported through the store callback): they keep their last stored
 * state. */
void sched_shutdown(struct sched *s, bool interrupt, void (*cb)(void *userdata), void *userdata);

/* Drains for a graceful stop (shutdown.runs: finish): submits fail with
 * -ESHUTDOWN, queued runs are recorded as interrupted (in cluster mode
 * handed back to the shared queue), running runs go
 * on; cb is called once none is active. A later sched_shutdown() (the
 * drain timeout) cancels what is still running. */
void sched_drain(struct sched *s, void (*cb)(void *userdata), void *userdata);
