/* probe: the contract between the scheduler and the probe types, and the
 * registry of types. A probe runs as an async job on the main loop (or
 * hands work to its own thread, as the load engine does) and ends by
 * calling probe_finish() exactly once. Each type lives in its own
 * probe_<type>.c and publishes named metrics (docs/spec.md lists them).
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
typedef void (*probe_done_cb)(struct probe *p);

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

	/* Owned by the type's implementation. */
	const struct probe_ops *ops;
	void *impl;
	bool finishing;
	bool background; /* set by the scheduler: running beside later probes */
};

struct probe_ops {
	enum probe_type type;
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

/* The ops for a type, or NULL when the type is not implemented yet. */
const struct probe_ops *probe_ops_find(enum probe_type t);

/* Sets a numeric metric (replacing a previous value). -ENOMEM only. */
int probe_set_metric(struct probe *p, const char *name, double value);

/* Ends the probe: state must be final. For PROBE_STATE_ERRORED/PROBE_STATE_FAILED a
 * reason (printf format) is kept in p->error. Calls p->done. Once only;
 * later calls are ignored. */
void probe_finish(struct probe *p, enum probe_state state, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* JSON of the probe in the shape store_probe_save() takes. New ref. */
json_t *probe_to_json(const struct probe *p);

/* Probe type implementations, one per probe_<type>.c. A type whose ops
 * have no start function is not implemented yet. */
extern const struct probe_ops probe_http_ops;
extern const struct probe_ops probe_load_ops;
extern const struct probe_ops probe_capacity_ops;
extern const struct probe_ops probe_prom_scrape_ops;
extern const struct probe_ops probe_prom_rules_ops;
extern const struct probe_ops probe_prom_query_ops;
extern const struct probe_ops probe_alert_drill_ops;
extern const struct probe_ops probe_tls_ops;
extern const struct probe_ops probe_auth_ops;
extern const struct probe_ops probe_rate_limit_ops;
extern const struct probe_ops probe_resources_ops;
extern const struct probe_ops probe_rollback_drill_ops;
