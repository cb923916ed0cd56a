/* promtext: a strict parser for the Prometheus exposition formats, text
 * 0.0.4 and OpenMetrics 1.0. It groups samples into metric families
 * (histogram and summary _bucket/_sum/_count, counter _total/_created, ...
 * belong to their family), checks names, label syntax and escapes, values,
 * timestamps, exemplars and the OpenMetrics `# EOF`, and counts samples.
 *
 * It exists so the prometheus-scrape probe can tell whether a service's
 * /metrics really holds the families a deployment needs, the way the
 * Prometheus server would read it. It keeps families, not sample values.
 * Input is untrusted (fuzz-safe): every size is capped, nothing is read
 * past len, no recursion. No I/O, any thread.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define PROMTEXT_MAX_BYTES    (16 * 1024 * 1024)
#define PROMTEXT_MAX_LINE     (64 * 1024)
#define PROMTEXT_MAX_NAME     1024
#define PROMTEXT_MAX_LABELS   128 /* per sample */
#define PROMTEXT_MAX_FAMILIES 100000
#define PROMTEXT_MAX_SAMPLES  2000000

enum promtext_format {
	PROMTEXT_TEXT = 0,    /* text/plain; version=0.0.4 */
	PROMTEXT_OPENMETRICS, /* application/openmetrics-text; version=1.0.0 */
};

enum promtext_type {
	PROMTEXT_UNTYPED = 0, /* text: no TYPE line; OpenMetrics: "unknown" */
	PROMTEXT_COUNTER,
	PROMTEXT_GAUGE,
	PROMTEXT_HISTOGRAM,
	PROMTEXT_SUMMARY,
	PROMTEXT_INFO,           /* OpenMetrics only */
	PROMTEXT_STATESET,       /* OpenMetrics only */
	PROMTEXT_GAUGEHISTOGRAM, /* OpenMetrics only */
	_PROMTEXT_TYPE_MAX,
};

struct promtext_family {
	char *name; /* as declared (OpenMetrics counters have no _total here) */
	enum promtext_type type;
	bool typed; /* a TYPE line declared it */
	char *help; /* unescaped, or NULL */
	char *unit; /* OpenMetrics UNIT, or NULL */
	size_t samples;
};

struct promtext {
	enum promtext_format format;
	struct promtext_family *families; /* in order of first appearance */
	size_t n_families;
	size_t n_samples;
	void *index; /* private: name -> family */
};

struct promtext_error {
	size_t line; /* 1-based */
	char message[256];
};

/* "counter", ..., "untyped" (text) / "unknown" is accepted by from_string. */
const char *promtext_type_to_string(enum promtext_type t);
int promtext_type_from_string(const char *s, enum promtext_type *ret);

/* The format a Content-Type header announces: OpenMetrics for
 * application/openmetrics-text, text otherwise (also for NULL). */
enum promtext_format promtext_format_from_content_type(const char *content_type);

/* Parses len bytes (need not be NUL-terminated). On success *ret is a new
 * result the caller frees with promtext_free(). Returns 0; -EINVAL with
 * *err filled (line and a message naming what is wrong) for any input the
 * format does not allow; -E2BIG over PROMTEXT_MAX_BYTES or another cap
 * (err filled too); -ENOMEM. */
int promtext_parse(const char *buf, size_t len, enum promtext_format fmt, struct promtext **ret,
                   struct promtext_error *err);

void promtext_free(struct promtext *pt);

/* The family a required name denotes, or NULL. `name` may be the family
 * name or one of its sample names: "x_bucket" finds histogram "x",
 * "foo_total" finds OpenMetrics counter "foo", and "foo" finds text-format
 * counter "foo_total". Borrowed. */
const struct promtext_family *promtext_find(const struct promtext *pt, const char *name);
