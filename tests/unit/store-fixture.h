/* store-fixture: helpers shared by the store's tests (store-fixture.c).
 * Every helper asserts (check) instead of returning errors.
 */
#pragma once

#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct store;

/* 2026-11-26T13:40:02.114Z */
#define T0 1795700402114LL

/* A fresh temp directory per test (tcase_add_checked_fixture), and the
 * database file path inside it. */
extern char tmp_dir[PATH_MAX];
extern char db_file[PATH_MAX + 16];
void tmp_setup(void);
void tmp_teardown(void);

/* A run of service/env created at T0 with n_probes (at most 3) queued
 * probes "latency", "alert-rules", "tls"; key: idempotency key or NULL. */
int64_t create_run(struct store *st, const char *service, const char *env, const char *key,
                   size_t n_probes, bool *ret_existing);

/* A finished run of svc/env (state "passed", "failed", "error"; or
 * "running"/"queued", left unfinished) whose probe "latency" published
 * p95_ms, created at at. */
int64_t add_run(struct store *st, const char *svc, const char *env, const char *version,
                const char *state, double p95, int64_t at);

/* got equals the JSON text want_text; aborts with both when not. */
void assert_json_eq(json_t *got, const char *want_text);

/* store_run_get that must succeed. New reference. */
json_t *get_run(struct store *st, int64_t id);

/* JSON text (any value) that must parse. New reference. */
json_t *load(const char *text);

/* store_probe_save of the probe object text, which must succeed. */
void save_probe(struct store *st, int64_t run_id, size_t idx, const char *text);
