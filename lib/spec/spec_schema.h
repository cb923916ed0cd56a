/* spec_schema: the field descriptors the spec validator (spec.c) reads.
 * A schema is a table of fields: each says its key, its kind, its bounds
 * and default, and where its value lands in the C structure. The top
 * level, gates and requests have their tables in spec.c; each probe type
 * declares its own in its lib/probe/probe_<type>.c (struct
 * probe_type_def), built from the shared SPEC_F_* entries below so a
 * field that several types accept means the same in each.
 *
 * Fields that name somewhere readyd will connect to carry SPEC_FIELD_URL,
 * fields that name a local file SPEC_FIELD_FILE: the SSRF policy and the
 * allowed_paths policy walk the schema for them (spec_probe_walk), so a
 * new type's URL cannot be missed by the policy.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/spec/spec.h"

#define SPEC_MAX_URL  8192
#define SPEC_MAX_TEXT 8192 /* queries, evidence, paths, list entries */

enum spec_field_kind {
	FK_SKIP = 0,    /* accepted, read elsewhere (a probe's type) */
	FK_STRING,      /* char *; non-empty; optional check/choices */
	FK_BODY,        /* char * + size_t length; may be empty */
	FK_DURATION,    /* int64_t ms, bounds min..max */
	FK_DATE,        /* int64_t ms since the epoch */
	FK_INT,         /* int64_t, bounds min..max */
	FK_NUMBER,      /* double, bounds dmin..dmax */
	FK_BOOL,        /* bool */
	FK_TRISTATE,    /* int: -1 absent, 0, 1 */
	FK_MODE,        /* enum stored as int: index into choices */
	FK_STRING_LIST, /* char ** + size_t count */
	FK_STATUS_LIST, /* int64_t * + size_t count */
	FK_HEADERS,     /* struct spec_header * + size_t count */
	FK_LABELS,      /* struct spec_label * + size_t count */
	FK_REQUEST,     /* struct spec_request *, parsed with sub */
	FK_OBJECT,      /* a nested mapping parsed with sub into base + off;
	                 * off 0: its fields are the parent's own (`request`) */
	FK_JSON,        /* json_t * (expect_json) */
	FK_CUSTOM,      /* custom(): lists of probes, gates, the checklist */
};

/* What a string (or string list) field names, for the policies. */
#define SPEC_FIELD_URL  0x1u /* a URL readyd connects to */
#define SPEC_FIELD_FILE 0x2u /* a local file readyd reads */
/* An FK_OBJECT at offset 0 whose fields the walk names under its key
 * ("server_latency.prometheus"), though they land in the probe's own. */
#define SPEC_FIELD_NESTED 0x4u
/* A list of request objects (FK_CUSTOM) whose `headers` may carry
 * credentials: redacted as every header map is. */
#define SPEC_FIELD_REQUESTS 0x8u
/* With SPEC_FIELD_URL: the value may instead be a plain word (no "://",
 * as infrastructure's `source: local`), which names no place. */
#define SPEC_FIELD_WORD 0x10u

struct spec_vctx; /* the validator's state, for finish and custom callbacks */
struct spec_schema;
typedef int (*spec_check_cb)(char *s, char *msg, size_t len);
typedef int (*spec_custom_cb)(struct spec_vctx *v, json_t *val, const char *path, void *base);
/* A probe type's rules across its fields, run after they are read. obj
 * is the probe's mapping, path its path ("probes[1]"). 0 or -EINVAL with
 * the error recorded (spec_fail_at), -ENOMEM. */
typedef int (*spec_finish_cb)(struct spec_vctx *v, json_t *obj, const char *path,
                              struct spec_probe *p);

struct spec_field {
	const char *key;
	enum spec_field_kind kind;
	bool required;
	unsigned flags;   /* SPEC_FIELD_URL, SPEC_FIELD_FILE, SPEC_FIELD_REQUESTS */
	size_t off;       /* where the value goes in the target struct */
	size_t count_off; /* lists, headers, body: where the count/length goes */
	int64_t min, max; /* ints, durations (ms); strings: max bytes (0: default) */
	double dmin, dmax;
	bool gt_min; /* numbers: strictly greater than dmin */
	int64_t def; /* ints, durations: default when absent (0: none) */
	double ddef;
	const char *sdef;
	spec_check_cb check;
	const char *const *choices; /* NULL-terminated */
	const struct spec_schema *sub;
	spec_custom_cb custom;
};

struct spec_schema {
	const char *what; /* for messages: "'load' probes", "the target" */
	const struct spec_field *fields;
	size_t n;
	bool probe;
};

/* String checks for fields (they may normalise s in place). */
int spec_check_probe_name(char *s, char *msg, size_t len);
int spec_check_method(char *s, char *msg, size_t len);
int spec_check_url(char *s, char *msg, size_t len);
int spec_check_hostname(char *s, char *msg, size_t len);
int spec_check_abs_path(char *s, char *msg, size_t len);
int spec_check_cgroup(char *s, char *msg, size_t len);
int spec_check_regex(char *s, char *msg, size_t len);
int spec_check_slo(char *s, char *msg, size_t len);
int spec_check_version(char *s, char *msg, size_t len);

/* A hook request ({method, url, headers, body, timeout}) and the
 * `request` override of load and capacity (into the probe's own fields). */
extern const struct spec_schema spec_request_schema;
extern const struct spec_schema spec_override_schema;

/* For finish callbacks. */
const struct spec *spec_vctx_spec(const struct spec_vctx *v);
/* Records an error at path (the node's line) and returns -EINVAL. */
int spec_fail(struct spec_vctx *v, const json_t *node, const char *path, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
/* Records an error at field key of the mapping obj at path; -EINVAL. */
int spec_fail_at(struct spec_vctx *v, const json_t *obj, const char *path, const char *key,
                 const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* *slot = strdup(src) unless *slot is set or src NULL. 0 or -ENOMEM. */
int spec_str_default(char **slot, const char *src);
/* The probe's request is the target's unless it has a url of its own
 * (docs/spec.md, "Requests"); src is the mapping with the probe's
 * request fields, or NULL. */
int spec_inherit_target(struct spec_vctx *v, const json_t *src, const char *path,
                        struct spec_probe *p);
/* load and capacity: threads within connections; the target's request
 * as `request` changes it; no credentials in the URL (the load engine
 * would drop them). */
int spec_load_request(struct spec_vctx *v, json_t *obj, const char *path, struct spec_probe *p);

/* Calls cb for every set field of sp whose flags include one of flags:
 * path is the field's ("url", "trigger.url", "rule_files[1]"), value the
 * text. Fields of an FK_OBJECT at offset 0 are reported as the probe's
 * own. Stops at and returns the first nonzero cb result; 0 otherwise. */
typedef int (*spec_walk_cb)(void *userdata, const char *path, const char *value);
int spec_probe_walk(const struct spec_probe *sp, unsigned flags, spec_walk_cb cb, void *userdata);

/* Shared probe fields: one definition each, so they mean the same in
 * every type that lists them. */
#define SPEC_P(m) offsetof(struct spec_probe, m)
#define SPEC_MAXD SPEC_MAX_DURATION_MS
/* clang-format off */
#define SPEC_F_COMMON \
	{.key = "name", .kind = FK_STRING, .required = true, .off = SPEC_P(name), \
	 .check = spec_check_probe_name}, \
	{.key = "type", .kind = FK_SKIP}, \
	{.key = "timeout", .kind = FK_DURATION, .off = SPEC_P(timeout_ms), .min = 1, \
	 .max = SPEC_MAXD}
#define SPEC_F_URL(req) \
	{.key = "url", .kind = FK_STRING, .required = req, .flags = SPEC_FIELD_URL, \
	 .off = SPEC_P(url), .max = SPEC_MAX_URL, .check = spec_check_url}
#define SPEC_F_METHOD \
	{.key = "method", .kind = FK_STRING, .off = SPEC_P(method), .check = spec_check_method}
#define SPEC_F_HEADERS \
	{.key = "headers", .kind = FK_HEADERS, .off = SPEC_P(headers), \
	 .count_off = SPEC_P(n_headers)}
#define SPEC_F_BODY \
	{.key = "body", .kind = FK_BODY, .off = SPEC_P(body), .count_off = SPEC_P(body_len)}
#define SPEC_F_CA_FILE \
	{.key = "ca_file", .kind = FK_STRING, .flags = SPEC_FIELD_FILE, .off = SPEC_P(ca_file), \
	 .max = SPEC_MAX_TEXT, .check = spec_check_abs_path}
#define SPEC_F_TLS_CLIENT \
	{.key = "insecure", .kind = FK_BOOL, .off = SPEC_P(insecure)}, \
	SPEC_F_CA_FILE
#define SPEC_F_CONNECTIONS(d) \
	{.key = "connections", .kind = FK_INT, .off = SPEC_P(connections), .min = 1, \
	 .max = SPEC_MAX_CONNECTIONS, .def = d}
#define SPEC_F_THREADS \
	{.key = "threads", .kind = FK_INT, .off = SPEC_P(threads), .min = 1, \
	 .max = SPEC_MAX_THREADS, .def = 1}
#define SPEC_F_REQUEST \
	{.key = "request", .kind = FK_OBJECT, .off = 0, .sub = &spec_override_schema}
#define SPEC_F_PROMETHEUS \
	{.key = "prometheus", .kind = FK_STRING, .required = true, .flags = SPEC_FIELD_URL, \
	 .off = SPEC_P(prometheus), .max = SPEC_MAX_URL, .check = spec_check_url}
#define SPEC_F_REQUIRE \
	{.key = "require", .kind = FK_STRING_LIST, .off = SPEC_P(require), \
	 .count_off = SPEC_P(n_require), .max = SPEC_MAX_LIST}
#define SPEC_F_WITHIN(req) \
	{.key = "within", .kind = FK_DURATION, .required = req, .off = SPEC_P(within_ms), \
	 .min = 1, .max = SPEC_MAXD}
#define SPEC_F_POLL \
	{.key = "poll_interval", .kind = FK_DURATION, .off = SPEC_P(poll_interval_ms), .min = 1, \
	 .max = SPEC_MAXD, .def = 1000}
#define SPEC_F_HOOK(k, m, req) \
	{.key = k, .kind = FK_REQUEST, .required = req, .off = SPEC_P(m), \
	 .sub = &spec_request_schema}
/* clang-format on */
