/* sched_internal: what sched.c and sched_cluster.c share: the scheduler's
 * and a run's state. Nothing outside lib/sched/ includes it.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "lib/probe/probe.h"
#include "lib/sched/sched.h"
#include "lib/util/run_state.h"

/* A run another node executes, followed for watchers on this one: its
 * state and probes' states as last read, compared at each tick. */
struct remote {
	struct remote *next;
	int64_t id;
	char *digest; /* owned */
	struct sched_watch *watches;
};

/* Cluster mode (sched_cluster.c): the store is shared by several nodes. */
struct sched_cluster {
	bool on;
	char *node;    /* owned; recorded in every run this node executes */
	char *version; /* owned; readyd's, for the nodes table */
	int64_t lease_ms;
	uv_timer_t tick;
	bool tick_init, tick_closed;
	bool claim_soon; /* a slot was freed or a run submitted here */
	int64_t next_beat, next_expire, next_claim;
	struct remote *remotes;
	uint64_t remote_gen;         /* the store's generation when remotes were read */
	int64_t remote_last;         /* when they were last read */
	struct sched_shards *shards; /* sched_shard.c: shards run for other nodes */
};

/* The longest target host name a load slot is keyed on. */
#define SCHED_LOAD_HOST_MAX 256

struct sched_watch {
	struct run *run;       /* a run this node executes, or */
	struct remote *remote; /* one another node executes (cluster mode) */
	sched_watch_cb cb;
	void *userdata;
	struct sched_watch *next, *prev;
};

struct run {
	struct sched *s;
	struct run *next, *prev;
	int64_t id;
	struct spec *spec;
	enum run_state state;
	struct probe *probes;
	size_t n_probes;
	size_t cur;      /* first probe not yet processed */
	bool holds_load; /* the current probe holds a load slot */
	bool cancel_requested;
	bool interrupt; /* cancelled by shutdown: record as interrupted */
	bool deadline_hit;
	bool probe_deadline_hit;
	bool advancing, again;
	bool finalized;
	bool waiting_load; /* the next probe waits for a load slot */
	/* Cluster mode: the load slot the current probe holds on its target
	 * host (-1: none), and when a probe that found every slot of its
	 * host taken by other nodes tries again (0: it waits for one here). */
	int load_slot;
	char load_host[SCHED_LOAD_HOST_MAX];
	int64_t load_retry_at;
	bool unsaved;        /* a write failed: the store lags behind (resync_run) */
	bool broken;         /* an invariant broke (rd_assert): the run is an error */
	bool claimed;        /* taken from the shared queue (cluster mode) */
	bool lost;           /* its lease passed: another node ended it; no more writes */
	bool decided;        /* sched_finalize() decided the final state: */
	const char *verdict; /* static, or NULL */
	char *error;         /* owned, or NULL */
	int64_t finished_at;
	json_t *gates, *checklist; /* the judgement, owned */
	int n_background;          /* background probes still running (probe_ops.stop) */
	bool background_stop;      /* they were asked to stop */
	int64_t started_at;
	uv_timer_t deadline;
	uv_timer_t probe_timer;
	int open_handles;
	struct sched_watch *watches;
};

struct sched {
	uv_loop_t *loop;
	struct store *store;
	struct http_client *http;
	struct aminbox *inbox; /* borrowed; for alert drills */
	struct sched_config cfg;
	struct run *head, *tail;
	int n_queued, n_running, load_running;
	bool pumping, pump_again;
	void (*shutdown_cb)(void *userdata);
	void *shutdown_userdata;
	bool abandon; /* sched_shutdown: stop waiting for the store */
	/* Writes the store refused (see the top of this file). */
	int n_unsaved;   /* runs the store lags behind on */
	int n_unstored;  /* of them, runs that ended */
	int store_err;   /* the last refusal's -errno */
	int64_t err_run; /* and its run */
	char err_cause[256];
	uv_timer_t retry;
	bool retry_init, retry_closed;
	uint64_t backoff_ms;
	sched_store_cb store_cb;
	void *store_userdata;
	struct sched_cluster cl;
};

/* sched.c, for sched_cluster.c. */
struct run *sched_find_run(struct sched *s, int64_t id);
void sched_pump(struct sched *s);
void sched_report(struct sched *s, int err, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
/* A new queued run id of spec (stolen on success) at the tail. */
int sched_enqueue(struct sched *s, int64_t id, struct spec *spec, struct run **ret_run);
void sched_notify_watch(struct sched_watch *w, int64_t id, const char *state, bool final);

/* sched_cluster.c, for sched.c. */
bool sched_cluster_on(const struct sched *s);
/* Claims at the next tick rather than after a second: a slot was freed. */
void sched_cluster_kick(struct sched *s);
/* Closes the cluster's timer (shutdown is complete). */
void sched_cluster_close(struct sched *s);
void sched_cluster_free(struct sched *s);
/* sched_cancel and sched_watch for a run this node does not execute. */
int sched_cluster_cancel(struct sched *s, int64_t id);
int sched_cluster_watch(struct sched *s, int64_t run_id, sched_watch_cb cb, void *userdata,
                        struct sched_watch **ret_watch);
void sched_cluster_unwatch(struct sched_watch *w);
/* This node is stopping: a run it claimed and has not started measuring
 * goes back to the queue (true; the caller then drops it here) rather
 * than ending interrupted. */
bool sched_cluster_release(struct sched *s, struct run *r);
/* The current probe of r, a load probe with a slot of this node, takes
 * one of its target host's max_concurrent_load slots shared by every
 * node: true when it has one (or the store is not shared), false when
 * other nodes hold them all (r retries at r->load_retry_at). Never waits. */
bool sched_cluster_load_take(struct sched *s, struct run *r);
/* Gives back the slot r holds, if any. */
void sched_cluster_load_release(struct sched *s, struct run *r);

/* sched_shard.c: load probes spread over several nodes (`nodes:`). */
/* Lends probe idx of run run_id the fan-out (cluster mode, load probes). */
void sched_shard_attach(struct sched *s, struct probe *p, int64_t run_id, size_t idx);
/* Claims a shard of another node's probe now and then (the cluster tick). */
void sched_shard_tick(struct sched *s, int64_t now);
/* Shutdown: shards running here end; then their memory goes. */
void sched_shard_close(struct sched *s);
void sched_shard_free(struct sched *s);
