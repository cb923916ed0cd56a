/* spec: parse and validate a readiness spec (apiVersion readyd/v1) from
 * YAML or JSON into one C structure. Validation is strict: unknown keys,
 * duplicate keys, wrong types, bad durations, duplicate probe names and
 * gate expressions that do not parse are errors that carry the path of the
 * offending field ("probes[1].url"). The spec reference is docs/spec.md.
 *
 * This module only reads bytes and builds structures: no I/O, no network,
 * no policy about where probes may go (that is the daemon's allowlist).
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/gate/gate.h"

/* Caps on what a user controls (docs/spec.md "Caps"). */
#define SPEC_MAX_BYTES       (1024 * 1024)
#define SPEC_MAX_PROBES      64
#define SPEC_MAX_GATES       256
#define SPEC_MAX_HEADERS     64
#define SPEC_MAX_LIST        256 /* require: lists, rule_files, checklist items */
#define SPEC_MAX_DEPTH       32  /* nesting of YAML/JSON containers */
#define SPEC_MAX_STRING      (64 * 1024)
#define SPEC_MAX_NAME        64 /* probe names: [A-Za-z0-9_-]{1,64} */
#define SPEC_MAX_CONNECTIONS 10000
#define SPEC_MAX_RATE        1000000.0
#define SPEC_MAX_THREADS     64
#define SPEC_MAX_DURATION_MS (24LL * 3600 * 1000) /* any probe or run duration */

enum spec_format {
	SPEC_FORMAT_YAML, /* YAML 1.1 subset; JSON is valid YAML but see below */
	SPEC_FORMAT_JSON,
};

enum probe_type {
	PROBE_TYPE_LOAD = 0,
	PROBE_TYPE_CAPACITY,
	PROBE_TYPE_HTTP,
	PROBE_TYPE_PROM_SCRAPE,
	PROBE_TYPE_PROM_RULES,
	PROBE_TYPE_PROM_QUERY,
	PROBE_TYPE_ALERT_DRILL,
	PROBE_TYPE_TLS,
	PROBE_TYPE_AUTH,
	PROBE_TYPE_RATE_LIMIT,
	PROBE_TYPE_RESOURCES,
	PROBE_TYPE_ROLLBACK_DRILL,
	PROBE_TYPE_DASHBOARD,
	PROBE_TYPE_SCAN_REPORT,
	PROBE_TYPE_PROM_ALERTS,
	PROBE_TYPE_COMPARE,
	PROBE_TYPE_INFRASTRUCTURE,
	_PROBE_TYPE_MAX,
};

/* "load", "prometheus-scrape", ... <-> enum, through the probe type
 * registry (lib/probe/probe.h), which may hold types beyond these.
 * from_string returns -EINVAL. */
const char *probe_type_to_string(enum probe_type t);
int probe_type_from_string(const char *s, enum probe_type *ret);

enum load_mode {
	LOAD_MODE_CLOSED = 0,
	LOAD_MODE_RATE,
};

struct spec_header {
	char *name;
	char *value;
};

/* alert-drill `labels`: a Prometheus label that must have exactly this
 * value. */
struct spec_label {
	char *name;
	char *value;
};

/* alert-drill `traffic`: rate-mode load against the spec's target for
 * the drill's duration. Absent: rate 0. */
struct spec_traffic {
	double rate;         /* requests per second */
	int64_t connections; /* default 8 */
	char *path;          /* replaces the target's path (and query); NULL: the target's */
};

/* An HTTP request: the spec's target, a trigger/clear/restore hook. */
struct spec_request {
	char *method; /* upper case; default "GET" (target: "GET") */
	char *url;    /* http:// or https:// */
	struct spec_header *headers;
	size_t n_headers;
	char *body; /* NULL: no body */
	size_t body_len;
	int64_t timeout_ms; /* 0: the probe's or a default */
};

/* load, capacity `corpus`: the requests to send instead of one. */
enum corpus_order {
	CORPUS_ORDER_ROUND_ROBIN = 0,
	CORPUS_ORDER_WEIGHTED_RANDOM,
};

struct spec_corpus {
	char *file;    /* JSON Lines, read through allowed_paths */
	json_t *items; /* inline: a JSON array of requests; owned */
	int order;     /* enum corpus_order */
	int64_t seed;  /* weighted-random */
};

/* One probe. Flat on purpose: each type's schema (its fields in
 * lib/probe/probe_<type>.c) names which of these fields it accepts; the
 * rest stay zero/NULL. Fields shared by several types (url, require,
 * trigger, within, ...) mean the same thing everywhere. A field set to
 * 0/NULL was absent unless noted. */
/* capacity `plan`: how many instances carry a target rate. target_rps
 * 0: no plan. */
struct spec_plan {
	double target_rps;
	double target_utilization; /* default 0.7 */
	int64_t min_instances;     /* default 1 */
	int64_t max_instances;     /* 0: no maximum */
};

#define SPEC_NODES_ALL (-1)
#define SPEC_MAX_NODES 64

struct spec_probe {
	char *name;
	enum probe_type type;
	int64_t timeout_ms; /* probe deadline; 0: derived (see docs/spec.md) */

	/* load, capacity */
	enum load_mode mode;
	double rate;         /* rate mode: requests per second */
	int64_t connections; /* default 16 (load), 64 (capacity) */
	int64_t threads;     /* default 1 */
	int64_t duration_ms; /* load default 30s when requests unset */
	int64_t requests;    /* alternative to duration */
	int64_t warmup_ms;
	char *slo;                 /* capacity: "p95_ms < 100 and error_rate < 0.01" */
	double max_rate;           /* capacity upper bound */
	double min_rate;           /* capacity lower bound, default 1 */
	double required_rate;      /* capacity: headroom reference, 0 = unset */
	int64_t step_ms;           /* capacity: duration of each step, default 10s */
	struct spec_corpus corpus; /* load, capacity: file or items set, or neither */
	bool stream;               /* load: measure streamed answers */
	char *token_key;           /* load: JSON key counting an answer's tokens */
	struct spec_plan plan;     /* capacity */
	/* load, capacity, compare: the readyd nodes the load comes from (docs/scale-out.md):
	 * 0 when not given (this node), SPEC_NODES_ALL for `all`, else 1..
	 * SPEC_MAX_NODES. */
	int64_t nodes;

	/* compare: the same load on two endpoints in alternating segments */
	char *baseline;     /* URL of the version in production */
	char *candidate;    /* URL of the version about to ship */
	int64_t segments;   /* per endpoint, default 10 */
	int64_t segment_ms; /* each segment's measured time, default 1s */
	double confidence;  /* of the intervals, default 0.95 */
	double min_effect;  /* smallest ratio change called significant, default 0.02 */
	int64_t seed;       /* of the bootstrap, default 1 */

	/* infrastructure: facts of a host */
	char *source;   /* "local", or a node_exporter /metrics URL */
	char *instance; /* with prometheus: the node_exporter's instance label */
	char **mounts;  /* mount points whose free space to report, default "/" */
	size_t n_mounts;

	/* http-ish: http, prometheus-scrape, tls, auth, rate-limit; load may
	 * override the target's request with `request`. */
	char *url;
	char *method;
	struct spec_header *headers;
	size_t n_headers;
	char *body;
	size_t body_len;
	int64_t expect_status; /* http: default 200 */
	char *expect_body_contains;
	char *expect_body_regex; /* POSIX extended regex */
	json_t *expect_json;     /* http: {"$.path": value, ...}; owned */
	bool insecure;           /* skip TLS verification */
	char *ca_file;
	char *min_version; /* tls: "1.2", "1.3" */
	char *servername;  /* tls: SNI/hostname to check */

	/* prometheus-* and alert-drill */
	char *prometheus; /* base URL of a Prometheus server */
	char **require;   /* families (scrape) or alert names (rules) */
	size_t n_require;
	char **rule_files;
	size_t n_rule_files;
	int can_fire;    /* prometheus-rules: -1 absent (analyse), 0 off, 1 on */
	char **matchers; /* prometheus-alerts: label matchers (`service="x"`) */
	size_t n_matchers;
	char **severities; /* prometheus-alerts: default critical, warning */
	size_t n_severities;
	char *query;
	int64_t range_ms; /* prometheus-query: range window, 0 = instant */
	char *function;   /* min | max | avg | last (range queries) */
	/* prometheus-query `reconcile`: the server side of a load probe's
	 * latency (lib/report/reconcile.c) */
	char *reconcile_with;      /* the load probe's name */
	double reconcile_quantile; /* 0.5, 0.95, 0.99 */
	char *latency_unit;        /* "s" (default) | "ms": the query's unit */
	double tolerance;          /* relative gap before flagging; 0: 0.2 */
	/* load `server_latency`: the target's histogram (its base name) */
	char *server_metric;
	char *server_selector; /* label matchers inside {}, or NULL */
	/* dashboard */
	json_t *dashboard;            /* inline dashboard JSON; owned */
	char *query_type;             /* instant (default) | range */
	struct spec_label *variables; /* template variables */
	size_t n_variables;
	/* scan-report, dashboard: a local file */
	char *file;
	char *format; /* sarif | trivy | auto */
	char *alert;
	struct spec_label *labels; /* alert-drill: which series of the alert */
	size_t n_labels;
	char *alertmanager;       /* alert-drill: follow the alert into this Alertmanager */
	char *receiver;           /* alert-drill: the receiver its route must reach */
	bool notify;              /* alert-drill: wait for delivery to readyd's webhook */
	int64_t notify_within_ms; /* alert-drill: firing -> delivered, default 1m */
	struct spec_traffic traffic;

	/* drills */
	struct spec_request *trigger; /* alert-drill, rollback-drill */
	struct spec_request *clear;   /* alert-drill */
	struct spec_request *restore; /* rollback-drill */
	int64_t within_ms;
	int64_t wait_resolve_ms;  /* alert-drill: 0 = do not wait */
	int64_t poll_interval_ms; /* default 1s */
	char *version_url;
	char *expect_version;

	/* auth, rate-limit */
	int64_t burst;            /* rate-limit: max requests, default 100 */
	int64_t *expect_statuses; /* auth: accepted rejections, default 401,403 */
	size_t n_expect_statuses;

	/* resources */
	int64_t pid;
	char *pid_file;
	char *cgroup;
	int64_t interval_ms; /* sampling, default 1s */
	bool gpu_required;
};

struct spec_gate {
	char *expr;          /* as written */
	struct gate_expr ex; /* parsed */
	bool advisory;
	bool abort_on_fail;
	int64_t min_samples; /* 0: the metric's default */
};

struct spec_check_item {
	char *item;
	char *evidence;     /* NULL: none given */
	int64_t tested_ms;  /* 0: not given */
	int64_t max_age_ms; /* 0: no limit */
	int passed;         /* -1 not given, 0 false, 1 true */
};

struct spec_checklist {
	struct spec_check_item *items;
	size_t n_items;
	char **required;
	size_t n_required;
};

struct spec {
	char *service; /* [A-Za-z0-9._-]{1,128} */
	char *version;
	char *environment;  /* default "default" */
	int64_t timeout_ms; /* run deadline, default 30m */
	struct spec_request target;
	bool has_target;
	struct spec_probe *probes;
	size_t n_probes;
	struct spec_gate *gates;
	size_t n_gates;
	struct spec_checklist checklist;

	json_t *doc; /* the document as parsed (JSON form), owned */
	/* The version of the stored spec (PUT /v1/services/{svc}/specs/{env})
	 * this spec was built from, set by the caller after parsing; 0 when
	 * the whole spec came with the run. The run keeps it. */
	int64_t stored_version;
};

/* Where and why a spec is invalid. path is "" for the whole document. */
struct spec_error {
	char path[256];
	char message[256];
	int line;    /* 1-based line in the input for YAML, 0 if unknown */
	bool syntax; /* the bytes are not YAML/JSON at all, as opposed to an
	              * invalid spec: the API answers 400 rather than 422 */
};

/* Parses and validates buf (len bytes, need not be NUL-terminated).
 * On success *ret_spec is a new spec the caller frees with spec_free().
 * Returns 0; -EINVAL with *err filled for any invalid input; -ENOMEM;
 * -E2BIG when len exceeds SPEC_MAX_BYTES. Any thread. */
int spec_parse(const char *buf, size_t len, enum spec_format fmt, struct spec **ret_spec,
               struct spec_error *err);

/* What the caller fixes in a spec before it is validated: a stored spec
 * (docs/spec.md "Stored specs") takes its service and environment from
 * the request path and its version from each run. service and
 * environment are set when the document leaves them out and must agree
 * when it gives them (else -EINVAL at that path); version is set or
 * replaced; target_url replaces target.url (a target is made when there
 * is none). NULL members leave the document alone. All borrowed. */
struct spec_fill {
	const char *service;
	const char *environment;
	const char *version;
	const char *target_url;
};

/* spec_parse() with fill applied to the document first (fill NULL:
 * exactly spec_parse()). Line numbers stay those of buf. */
int spec_parse_fill(const char *buf, size_t len, enum spec_format fmt, const struct spec_fill *fill,
                    struct spec **ret_spec, struct spec_error *err);

void spec_free(struct spec *s);

/* Finds a probe by name, or NULL. Borrowed. */
const struct spec_probe *spec_find_probe(const struct spec *s, const char *name);

/* The spec as JSON with secrets redacted: header values whose names look
 * like credentials (Authorization, Cookie, *token*, *key*, *secret*,
 * *password*) become "<redacted>", and so do credentials in every field
 * the schema marks as a URL (spec_schema.h). New reference. */
json_t *spec_to_json_redacted(const struct spec *s);

/* True if a header of this name carries a secret (see above). */
bool spec_header_is_secret(const char *name);
