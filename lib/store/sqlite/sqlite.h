/* sqlite: the SQLite backend of the store (store_backend.h). Its openers
 * are what store_open() and store_open_readonly() call for a file path;
 * the SQL of the two hot history queries is exported for the backend's
 * own tests (EXPLAIN QUERY PLAN). Nothing outside lib/store/ and the
 * SQLite backend's tests includes this file.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

struct store;

/* store_open() / store_open_readonly() for a file path or ":memory:". */
int sqlite_open(const char *path, struct store **ret_store, char *err, size_t errlen);
int sqlite_open_readonly(const char *path, struct store **ret_store, char *err, size_t errlen);

/* The SQL of store_trend (plain and bucketed) and store_gates_latest. */
const char *sqlite_trend_sql(bool with_environment);
const char *sqlite_trend_bucket_sql(bool with_environment);
const char *sqlite_gates_latest_sql(void);
