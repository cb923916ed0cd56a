/* store_cols: how a JSON field maps to a column, shared by the backends
 * (lib/store/sqlite/, lib/store/pg/): the kinds of column, the
 * check of a value handed in for one, and the JSON made of what a column
 * holds. Pure; any thread. Backends only: nothing else includes this.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/store/store.h"

enum store_col_kind {
	COL_INT = 0,
	COL_REAL, /* NaN and infinities come back as null */
	COL_BOOL, /* absent or null is false */
	COL_TEXT,
	COL_TIME, /* ms in SQL, RFC 3339 string in JSON */
	COL_JSON, /* serialized JSON text in SQL */
};

struct store_col {
	const char *key;
	enum store_col_kind kind;
	bool required; /* on input: must be present and not null */
};

/* Whether v (borrowed; NULL when absent) may be stored in column c. */
bool store_col_valid(const struct store_col *c, json_t *v);

/* A JSON string of the n bytes at s; invalid UTF-8 bytes (a target's
 * bytes quoted in an error) become '?' rather than make the whole run
 * unreadable. New reference, NULL only when out of memory. */
json_t *store_json_string_lossy(const char *s, size_t n);

/* ms since the epoch as an RFC 3339 string. New reference. */
json_t *store_json_time(int64_t ms);

/* The checks both backends make of what they are handed: a new run
 * (every name given, a creation time), a probe's time field (absent, null
 * or 0 is "not set"; else ms >= 0, into *ret), a probe's metrics (an
 * object of numbers or nulls). All borrowed. */
bool store_run_new_valid(const struct store_run_new *rn);
bool store_probe_time(json_t *probe, const char *key, int64_t *ret);
bool store_probe_metrics_valid(json_t *metrics);
