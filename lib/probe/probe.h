/* probe: the contract between the scheduler and the probe types, and the
 * registry of types. A probe runs as an async job on the main loop (or
 * hands work to its own thread, as the load engine does) and ends by
 * calling probe_finish() exactly once. Each type is one
 * probe_<type>.c that declares everything about it in one struct
 * probe_type_def: its name, its spec fields, its default deadline, its
 * report section, the metrics it publishes and its ops. The spec parser,
 * the URL and file policies, the scheduler, the reports and the docs
 * check (docs/spec.md lists every metric) all read that table.
 *
 * Probes must not touch the store or the API: they fill p->metrics and
 * p->details and report progress; the scheduler persists and announces.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "lib/net/http.h"
#include "lib/spec/spec.h"
#include "lib/spec/spec_schema.h"

enum probe_state {
	PROBE_STATE_QUEUED = 0,
	PROBE_STATE_RUNNING,
	PROBE_STATE_PASSED,
	PROBE_STATE_FAILED,
	PROBE_STATE_ERRORED,
	PROBE_STATE_CANCELLED,
	PROBE_STATE_INTERRUPTED,
};

const char *probe_state_to_string(enum probe_state s); /* "queued" ... */

struct probe;
struct aminbox;
typedef void (*probe_done_cb)(struct probe *p);

/* ---- Load from several nodes (`nodes:`, docs/scale-out.md) ----
 *
 * The scheduler of a cluster (lib/sched/sched_shard.c) lends a load,
 * capacity or compare probe these operations; the probe splits its load
 * into shards (shard 0 runs here) and merges what the other nodes
 * measured. Main loop thread. */
struct probe_fanout_job;
/* Every shard is claimed and the start agreed: nodes in all (1: this
 * one only), start_ms on this node's clock. */
typedef void (*probe_fanout_go_cb)(void *userdata, int nodes, int64_t start_ms);
/* The fan-out cannot go on (a shard was not claimed in time, failed, or
 * its node went silent): why names the node. At most once; the job has
 * asked the other shards to end. */
typedef void (*probe_fanout_fail_cb)(void *userdata, const char *why);
/* Every other shard has ended or been given up: shards (borrowed, for
 * the call) is [{shard, node, offset_ms, skew_ms, requests, result (the
 * node's loadgen_result_to_json, or null), error}] with shard 0 (this
 * node, no result) first; error (NULL: none) says what failed. */
typedef void (*probe_fanout_done_cb)(void *userdata, json_t *shards, const char *error);

struct probe_fanout_ops {
	/* Queues the shards of p (p->sp->nodes nodes, this one included) for
	 * other nodes: of the whole probe (a load probe: round NULL), or of
	 * one round of it (lib/probe/fanload.h: a capacity step, a compare
	 * segment; borrowed for the call), replacing an earlier round's. go
	 * runs once, or fail. *ret_job is freed with end(). 0 or -errno (then
	 * neither runs). */
	int (*begin)(struct probe *p, json_t *round, probe_fanout_go_cb go,
	             probe_fanout_fail_cb fail, void *userdata, struct probe_fanout_job **ret_job);
	/* This node's shard ended (it started at started_ms, this node's
	 * clock): done runs once the others have. After go only. */
	void (*collect)(struct probe_fanout_job *job, int64_t started_ms,
	                probe_fanout_done_cb done);
	/* Asks the other shards to end now (this node's ended early: an
	 * abort_on_fail gate); what they measured still comes to collect. */
	void (*stop)(struct probe_fanout_job *job);
	/* What the other nodes last reported measuring, for live progress. */
	int64_t (*others_requests)(const struct probe_fanout_job *job);
	/* Asks shards still running to end and frees job; NULL is fine. No
	 * callback runs after it. */
	void (*end)(struct probe_fanout_job *job);
};

struct probe_fanout {
	const struct probe_fanout_ops *ops; /* NULL: no cluster, this node only */
	void *ctx;                          /* the scheduler's */
	int64_t run_id;
	size_t idx; /* the probe's index in its run */
};

/* Shard i of n of load probe sp: its share of connections, threads,
 * rate and requests (the remainders go to the first shards), and in rate
 * mode how long after the agreed start it begins (stagger_ms: i / rate,
 * so the nodes' schedules interleave into the spec's rate instead of
 * sending in bursts of n). */
struct probe_load_share {
	int64_t connections, threads, requests;
	double rate;
	int64_t stagger_ms;
};
void probe_load_share(const struct spec_probe *sp, int i, int n, struct probe_load_share *ret);

/* What a probe knows of the world. Embedded in the scheduler's run. */
struct probe {
	uv_loop_t *loop;
	struct http_client *http;
	const struct spec *spec;     /* borrowed for the probe's life */
	const struct spec_probe *sp; /* borrowed */

	enum probe_state state;
	int64_t started_at, finished_at; /* ms since epoch */
	json_t *metrics;                 /* object name -> number; owned; set by the probe */
	json_t *details;                 /* any JSON or NULL; owned */
	char *error;                     /* owned; set by probe_finish() for errors */

	/* Live progress, read by the scheduler for GET /v1/runs/{id}. */
	int percent;      /* -1: unknown */
	int64_t requests; /* -1: not a request-counting probe */
	/* A running load probe's live reading, once a second: requests in
	 * its last complete second (live_rps, -1: none yet), the p99 of its
	 * last seconds (NaN: none) and errors so far (live_errors, -1: not a
	 * load probe). */
	double live_rps, live_p99_ms;
	int64_t live_errors;

	/* Set by the scheduler. */
	/* The run's earlier load probes ran in [start, end] (ms since the
	 * epoch); 0: none ran. For {{window}} in prometheus-query. */
	int64_t window_start_ms, window_end_ms;
	/* The probe is cancelled this many ms after it started (0: unknown);
	 * for probes that wait on a peer and must stop waiting in time to say
	 * why. */
	int64_t deadline_ms;
	probe_done_cb done;
	void *userdata;
	/* Notifications Alertmanager delivered to readyd (lib/prom/aminbox.h);
	 * borrowed, NULL when the daemon has none. */
	struct aminbox *inbox;

	/* Set by the scheduler: how a load probe with `nodes` fans out. */
	struct probe_fanout fanout;
	/* A shard of another node's load probe (lib/sched/sched_shard.c):
	 * shard (1..shards-1) of shards, to start at shard_start_ms (this
	 * node's clock); the result goes to details.shard_result, for the
	 * probe's node to merge. shards 0: an ordinary probe. */
	int shard, shards;
	int64_t shard_start_ms;

	/* Owned by the type's implementation. */
	const struct probe_ops *ops;
	void *impl;
	bool finishing;
	bool background; /* set by the scheduler: running beside later probes */
};

struct probe_ops {
	/* Starts the probe. Returns 0, or -errno (then the probe is an error
	 * with that reason, and done is not called). */
	int (*start)(struct probe *p);
	/* Asks the probe to stop; it must still call probe_finish(), possibly
	 * later (from a close callback). */
	void (*cancel)(struct probe *p);
	/* Releases p->impl once the probe has finished (after done ran). */
	void (*free)(struct probe *p);
	/* Background types only (resources), NULL for the others: the
	 * scheduler starts such a probe and moves on to the next without
	 * waiting; once every later probe of the run has ended it calls stop,
	 * and the probe finishes with what it measured (possibly later). The
	 * run is final only after it finished. */
	void (*stop)(struct probe *p);
};

/* Sets a numeric metric (replacing a previous value). -ENOMEM only. */
int probe_set_metric(struct probe *p, const char *name, double value);

/* Ends the probe: state must be final. For PROBE_STATE_ERRORED/PROBE_STATE_FAILED a
 * reason (printf format) is kept in p->error. Calls p->done. Once only;
 * later calls are ignored. */
void probe_finish(struct probe *p, enum probe_state state, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* JSON of the probe in the shape store_probe_save() takes. New ref. */
json_t *probe_to_json(const struct probe *p);

/* Default deadlines (docs/spec.md gives each type's): a fixed one for
 * probes that wait on one peer, and the margin for connecting and
 * draining added to a probe's own durations. */
#define PROBE_DEFAULT_DEADLINE_MS (2 * 60 * 1000)
#define PROBE_DEADLINE_MARGIN_MS  (60 * 1000)

/* What a metric's sample count is (a gate's `samples`, compared with
 * its min_samples, lib/gate/judge.c). */
enum probe_samples {
	PROBE_SAMPLES_NONE = 0,  /* not a count of anything: no min_samples */
	PROBE_SAMPLES_REQUESTS,  /* the probe's `requests` metric */
	PROBE_SAMPLES_SUCCESSES, /* `requests` minus `errors`: latency of answers */
};

struct probe_metric_def {
	const char *name; /* as published and gated on: "p99_ms" */
	const char *unit; /* "ms", "requests", "1" (a ratio or a flag), ... */
	enum probe_samples samples;
};

/* Everything about one probe type, declared once in its
 * probe_<type>.c. */
struct probe_type_def {
	const char *name;    /* the spec's `type`, and its docs/spec.md section */
	const char *section; /* the report section its probes appear in */
	/* Its spec fields besides the common ones (SPEC_F_COMMON first). */
	const struct spec_field *fields;
	size_t n_fields;
	spec_finish_cb finish; /* rules across its fields, or NULL */
	/* Its deadline without a probe `timeout`: deadline_ms(), or else
	 * the fixed deadline_fixed_ms. deadline_doc says deadline_ms() the way
	 * docs/spec.md does ("`warmup + duration + 60s`"). */
	int64_t (*deadline_ms)(const struct spec *s, const struct spec_probe *sp);
	int64_t deadline_fixed_ms;
	const char *deadline_doc;
	bool load; /* drives load: one at a time per server (max_concurrent_load) */
	/* Or drives load only as some of its probes are written (NULL: as
	 * `load` says). */
	bool (*load_when)(const struct spec_probe *sp);
	const struct probe_metric_def *metrics;
	size_t n_metrics;
	struct probe_ops ops;
};

/* True when probe sp drives load (its type's `load` or `load_when`). */
bool probe_drives_load(const struct spec_probe *sp);

/* The type, or NULL for a value no type has. */
const struct probe_type_def *probe_type_get(enum probe_type t);
/* Number of types: they are 0..probe_type_count()-1. */
size_t probe_type_count(void);
/* Registers a type beyond the built-in ones (tests, extensions): *ret
 * is its enum value. Before any loop runs; not thread-safe. 0, -EEXIST
 * (the name is taken), -ENOSPC, -EINVAL (no name, ops or fields). def is
 * borrowed for the process's life. */
int probe_type_register(const struct probe_type_def *def, enum probe_type *ret);
/* The type's metric of this name, or NULL. */
const struct probe_metric_def *probe_type_metric(const struct probe_type_def *t, const char *name);
/* The probe's deadline when its spec gives no `timeout` (ms). */
int64_t probe_type_deadline_ms(const struct spec *s, const struct spec_probe *sp);

/* Checks that md (the text of docs/spec.md) documents type t: its
 * section "### NAME" lists every metric t publishes in its "**Metrics
 * published:**" paragraph, names no metric t does not publish there
 * (backquoted names outside parentheses and links), and says its default
 * deadline ("Without a probe `timeout`, the probe's deadline is ...").
 * 0; -ENOENT when something is missing, -EINVAL for a documented metric
 * that does not exist; why says which. */
int probe_type_docs_check(const struct probe_type_def *t, const char *md, char *why, size_t len);

/* The built-in types, one per probe_<type>.c. */
extern const struct probe_type_def probe_type_load;
extern const struct probe_type_def probe_type_capacity;
extern const struct probe_type_def probe_type_http;
extern const struct probe_type_def probe_type_prom_scrape;
extern const struct probe_type_def probe_type_prom_rules;
extern const struct probe_type_def probe_type_prom_query;
extern const struct probe_type_def probe_type_alert_drill;
extern const struct probe_type_def probe_type_tls;
extern const struct probe_type_def probe_type_auth;
extern const struct probe_type_def probe_type_rate_limit;
extern const struct probe_type_def probe_type_resources;
extern const struct probe_type_def probe_type_rollback_drill;
extern const struct probe_type_def probe_type_dashboard;
extern const struct probe_type_def probe_type_scan_report;
extern const struct probe_type_def probe_type_prom_alerts;
extern const struct probe_type_def probe_type_compare;
extern const struct probe_type_def probe_type_infrastructure;
