/* pg: the PostgreSQL backend of the store (store.h, store_backend.h),
 * on libpq. Opened by store.c for a postgresql:// or postgres:// URL.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "lib/store/store.h"

/* Connects to url (borrowed), applies the migrations of
 * migrations/postgresql/ (one node at a time: an advisory lock) and
 * returns the store. -EPROTONOSUPPORT for a schema newer than this
 * readyd; -ENOTCONN when the server cannot be reached. err gets the
 * reason, without the URL's password. */
int pg_open(const char *url, struct store **ret_store, char *err, size_t errlen);

/* Connects read-only (every transaction READ ONLY); the schema must be
 * this readyd's already. */
int pg_open_readonly(const char *url, struct store **ret_store, char *err, size_t errlen);

/* url with its password (user:PASSWORD@ or password=...) replaced by
 * "***" into buf; for messages and logs. */
void pg_url_redact(const char *url, char *buf, size_t len);

/* Whether s is a libpq key=value connection string ("host=db1
 * dbname=readyd user=readyd"): every key one libpq knows. A file name
 * (even one with '=') is not. */
bool pg_is_conninfo(const char *s);

/* Whether url is a connection URL libpq can use (syntax only: nothing is
 * connected to). 0, or -EINVAL with libpq's reason in err, the password
 * never repeated. */
int pg_url_check(const char *url, char *err, size_t errlen);
