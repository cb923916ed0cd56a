/* store-fixture: helpers shared by the store's tests (the conformance
 * suite every backend passes, the SQLite backend's own tests and the
 * judge's tests on a real store): a temp directory per test, and runs,
 * probes and JSON built and checked through store.h alone.
 */
#include <check.h>
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/store/store.h"
#include "tests/unit/store-fixture.h"

char tmp_dir[PATH_MAX];
char db_file[PATH_MAX + 16];

void tmp_setup(void)
{
	const char *base = getenv("TMPDIR");

	int n = snprintf(tmp_dir, sizeof(tmp_dir), "%s/test-store-XXXXXX",
	                 base && *base ? base : "/tmp");

	ck_assert(n > 0 && (size_t)n < sizeof(tmp_dir));
	ck_assert_ptr_nonnull(mkdtemp(tmp_dir));
	snprintf(db_file, sizeof(db_file), "%s/readyd.db", tmp_dir);
}

void tmp_teardown(void)
{
	char path[PATH_MAX + 256];
	struct dirent *de;
	DIR *d = opendir(tmp_dir);

	if (!d)
		return;
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", tmp_dir, de->d_name);
		unlink(path);
	}
	closedir(d);
	rmdir(tmp_dir);
}

static const char *const probe_names[] = {"latency", "alert-rules", "tls"};
static const char *const probe_types[] = {"load", "prometheus-rules", "tls"};

int64_t create_run(struct store *st, const char *service, const char *env, const char *key,
                   size_t n_probes, bool *ret_existing)
{
	struct store_run_new rn = {
	        .service = service,
	        .version = "2.4.0",
	        .environment = env,
	        .submitted_by = "ci-pipeline",
	        .idempotency_key = key,
	        .spec_json = "{\"apiVersion\":\"readyd/v1\",\"service\":\"x\"}",
	        .probe_names = probe_names,
	        .probe_types = probe_types,
	        .n_probes = n_probes,
	        .created_at = T0,
	};
	bool existing = true;
	int64_t id = 0;
	int r = store_run_create(st, &rn, &id, &existing);

	ck_assert_msg(r == 0, "store_run_create = %d: %s", r, store_errmsg(st));
	ck_assert_int_gt(id, 0);
	if (ret_existing)
		*ret_existing = existing;
	return id;
}

void assert_json_eq(json_t *got, const char *want_text)
{
	json_error_t jerr;
	json_t *want = json_loads(want_text, 0, &jerr);
	char *g, *w;

	ck_assert_msg(want != NULL, "bad expected JSON: %s", jerr.text);
	if (!json_equal(got, want)) {
		g = json_dumps(got, JSON_SORT_KEYS | JSON_INDENT(1));
		w = json_dumps(want, JSON_SORT_KEYS | JSON_INDENT(1));
		ck_abort_msg("JSON differs.\ngot:\n%s\nwant:\n%s", g, w);
	}
	json_decref(want);
}

json_t *get_run(struct store *st, int64_t id)
{
	json_t *run = NULL;
	int r = store_run_get(st, id, &run);

	ck_assert_msg(r == 0, "store_run_get(%lld) = %d: %s", (long long)id, r, store_errmsg(st));
	return run;
}

json_t *load(const char *text)
{
	json_error_t jerr;
	json_t *j = json_loads(text, JSON_DECODE_ANY, &jerr);

	ck_assert_msg(j != NULL, "bad test JSON: %s", jerr.text);
	return j;
}

void save_probe(struct store *st, int64_t run_id, size_t idx, const char *text)
{
	json_t *p = load(text);
	int r = store_probe_save(st, run_id, idx, p);

	ck_assert_msg(r == 0, "store_probe_save = %d: %s", r, store_errmsg(st));
	json_decref(p);
}

/* A finished run of svc/env whose probe "latency" published p95_ms. */
int64_t add_run(struct store *st, const char *svc, const char *env, const char *version,
                const char *state, double p95, int64_t at)
{
	static const char *const names[] = {"latency"}, *const types[] = {"http"};
	struct store_run_new rn = {svc, version, env, NULL, NULL, "{}", names, types, 1, at};
	const char *verdict = !strcmp(state, "passed")   ? "PASS"
	                      : !strcmp(state, "failed") ? "FAIL"
	                      : !strcmp(state, "error")  ? "ERROR"
	                                                 : NULL;
	json_t *p;
	int64_t id;

	ck_assert_int_eq(store_run_create(st, &rn, &id, NULL), 0);
	if (!strcmp(state, "running") || !strcmp(state, "queued")) {
		ck_assert_int_eq(store_run_update(st, id, state, NULL, at, 0, NULL), 0);
		return id;
	}
	p = json_pack("{s:s, s:s, s:s, s:I, s:I, s:{s:f, s:i}}", "name", "latency", "type", "http",
	              "state", "passed", "started_at", (json_int_t)at, "finished_at",
	              (json_int_t)(at + 1000), "metrics", "p95_ms", p95, "requests", 5000);
	ck_assert_int_eq(store_probe_save(st, id, 0, p), 0);
	json_decref(p);
	ck_assert_int_eq(store_run_update(st, id, state, verdict, at, at + 1000, NULL), 0);
	return id;
}

/* Baselines through the judge, as the scheduler wires them. */
