/* test-config: readyd.yaml through daemon/config.c as readyd loads it.
 * A full config lands in every field; an empty file and an absent key
 * keep the defaults; every key with a bad value, an unknown key at every
 * level and broken YAML fail with the file, the path of the key (or the
 * line) and what is expected; examples/readyd.yaml, the commented example
 * operators start from, loads. Files are written to a private temporary
 * directory. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "lib/loadgen/loadgen.h"
#include "lib/policy/scope.h"

/* sha256("abc"), a valid token hash. */
#define HASH_ABC "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"

static char dir[64];
static char path[96];
static struct rd_config cfg;
static char err[512];

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/test-config-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/readyd.yaml", dir);
	config_init(&cfg);
	err[0] = '\0';
}

static void teardown(void)
{
	config_deinit(&cfg);
	unlink(path);
	rmdir(dir);
}

/* Writes text as the config file and loads it over the defaults. */
static int load(const char *text)
{
	FILE *f = fopen(path, "w");

	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fputs(text, f) >= 0, 1);
	ck_assert_int_eq(fclose(f), 0);
	return config_load(&cfg, path, err, sizeof(err));
}

static const char full_yaml[] = "listen: 0.0.0.0:8080\n"
                                "database: /var/lib/readyd/x.db\n"
                                "log_level: debug\n"
                                "scheduler:\n"
                                "  max_concurrent_runs: 8\n"
                                "  max_concurrent_load: 2\n"
                                "  max_queued: 500\n"
                                "  load_nice: 7\n"
                                "api:\n"
                                "  max_body: 2048\n"
                                "  max_connections: 10\n"
                                "  connection_memory: 65536\n"
                                "  cache_memory: 8388608\n"
                                "  max_connections_per_ip: 3\n"
                                "  idle_timeout: 30s\n"
                                "tokens:\n"
                                "  - name: ci\n"
                                "    hash: " HASH_ABC "\n"
                                "    role: submitter\n"
                                "    services: [team-a-*, billing]\n"
                                "  - { name: boss, hash: " HASH_ABC ", role: admin }\n"
                                "allow_unauthenticated: true\n"
                                "public_metrics: true\n"
                                "rate_limit: { requests_per_second: 50, burst: 100 }\n"
                                "allowed_targets: [127.0.0.1, 10.0.0.0/8]\n"
                                "allowed_paths: [/etc/readyd]\n"
                                "tls: { cert: /etc/readyd/c.pem, key: /etc/readyd/k.pem }\n"
                                "limits:\n"
                                "  max_spec_bytes: 4096\n"
                                "  max_probes: 5\n"
                                "  max_run_duration: 1h\n"
                                "  max_load_connections: 50\n"
                                "  max_load_rate: 200\n"
                                "  max_load_duration: 10m\n"
                                "shutdown: { runs: finish, timeout: 45s }\n"
                                "retention: { raw_days: 30 }\n"
                                "node_id: web-3.example:7411\n"
                                "lease: 12s\n";

static void check_full_top(void)
{
	ck_assert_str_eq(cfg.listen, "0.0.0.0:8080");
	ck_assert_str_eq(cfg.database, "/var/lib/readyd/x.db");
	ck_assert_int_eq(cfg.log_level, RD_LOG_DEBUG);
	ck_assert_int_eq(cfg.sched.max_concurrent_runs, 8);
	ck_assert_int_eq(cfg.sched.max_concurrent_load, 2);
	ck_assert_int_eq(cfg.sched.max_queued, 500);
	ck_assert_int_eq(cfg.load_nice, 7);
	ck_assert_uint_eq(cfg.max_body, 2048);
	ck_assert_uint_eq(cfg.max_connections, 10);
	ck_assert_uint_eq(cfg.connection_memory, 65536);
	ck_assert_uint_eq(cfg.cache_memory, 8388608);
	ck_assert_uint_eq(cfg.per_ip_connections, 3);
	ck_assert_uint_eq(cfg.idle_timeout_s, 30);
	ck_assert_int_eq(cfg.shutdown_timeout_ms, 45000);
	ck_assert(cfg.shutdown_finish);
	ck_assert(cfg.allow_unauthenticated);
	ck_assert(cfg.public_metrics);
	ck_assert(cfg.rate_limit == 50.0 && cfg.rate_burst == 100.0);
	ck_assert_str_eq(cfg.tls_cert, "/etc/readyd/c.pem");
	ck_assert_str_eq(cfg.tls_key, "/etc/readyd/k.pem");
	ck_assert_int_eq(cfg.retention_raw_days, 30);
	ck_assert_str_eq(cfg.node_id, "web-3.example:7411");
	ck_assert_int_eq(cfg.lease_ms, 12000);
}

static void check_full_lists(void)
{
	static const unsigned char abc[4] = {0xba, 0x78, 0x16, 0xbf};

	ck_assert_uint_eq(cfg.n_tokens, 2);
	ck_assert_str_eq(cfg.tokens[0].name, "ci");
	ck_assert_int_eq(cfg.tokens[0].role, API_ROLE_SUBMITTER);
	ck_assert_int_eq(memcmp(cfg.tokens[0].hash, abc, sizeof(abc)), 0);
	ck_assert_str_eq(cfg.tokens[0].scope, "team-a-*\nbilling");
	ck_assert_str_eq(cfg.tokens[1].name, "boss");
	ck_assert_int_eq(cfg.tokens[1].role, API_ROLE_ADMIN);
	ck_assert_str_eq(cfg.tokens[1].scope, "");
	ck_assert_uint_eq(json_array_size(cfg.allowed_targets), 2);
	ck_assert_uint_eq(json_array_size(cfg.allowed_paths), 1);
	ck_assert_str_eq(json_string_value(json_array_get(cfg.allowed_paths, 0)), "/etc/readyd");
	ck_assert_int_eq(cfg.limits.max_spec_bytes, 4096);
	ck_assert_int_eq(cfg.limits.max_probes, 5);
	ck_assert_int_eq(cfg.limits.max_run_duration_ms, 3600 * 1000);
	ck_assert_int_eq(cfg.limits.max_load_connections, 50);
	ck_assert(cfg.limits.max_load_rate == 200.0);
	ck_assert_int_eq(cfg.limits.max_probe_duration_ms, 600 * 1000);
}

START_TEST(test_full)
{
	ck_assert_msg(load(full_yaml) == 0, "%s", err);
	check_full_top();
	check_full_lists();
}
END_TEST

/* A token's services are fnmatch patterns: the scope the config builds
 * is the one the API checks. */
START_TEST(test_token_services_globs)
{
	ck_assert_msg(load(full_yaml) == 0, "%s", err);
	ck_assert(scope_limited(cfg.tokens[0].scope));
	ck_assert(scope_allows(cfg.tokens[0].scope, "team-a-search"));
	ck_assert(scope_allows(cfg.tokens[0].scope, "billing"));
	ck_assert(!scope_allows(cfg.tokens[0].scope, "team-b-search"));
	ck_assert(!scope_allows(cfg.tokens[0].scope, "billing-v2"));
	ck_assert(!scope_limited(cfg.tokens[1].scope));
	ck_assert(scope_allows(cfg.tokens[1].scope, "anything"));
}
END_TEST

static void check_defaults(void)
{
	ck_assert_str_eq(cfg.listen, RD_DEFAULT_LISTEN);
	ck_assert_str_eq(cfg.database, RD_DEFAULT_DB);
	ck_assert_int_eq(cfg.log_level, RD_LOG_INFO);
	ck_assert_uint_eq(cfg.max_body, 1024 * 1024);
	ck_assert_uint_eq(cfg.max_connections, 1024);
	ck_assert_uint_eq(cfg.per_ip_connections, 64);
	ck_assert_uint_eq(cfg.idle_timeout_s, 10);
	ck_assert_int_eq(cfg.sched.max_concurrent_runs, 4);
	ck_assert_int_eq(cfg.sched.max_concurrent_load, 1);
	ck_assert_int_eq(cfg.sched.max_queued, 100);
	ck_assert_int_eq(cfg.load_nice, LOADGEN_NICE_DEFAULT);
	ck_assert_int_eq(cfg.shutdown_timeout_ms, 10000);
	ck_assert(!cfg.shutdown_finish);
	ck_assert_uint_eq(cfg.n_tokens, 0);
	ck_assert(!cfg.allow_unauthenticated && !cfg.public_metrics);
	ck_assert(cfg.rate_limit == 0.0);
	ck_assert_ptr_null(cfg.allowed_targets);
	ck_assert_ptr_null(cfg.allowed_paths);
	ck_assert_ptr_null(cfg.tls_cert);
	ck_assert_int_eq(cfg.limits.max_spec_bytes, 256 * 1024);
	ck_assert_int_eq(cfg.limits.max_probes, 32);
	ck_assert_int_eq(cfg.retention_raw_days, 0);
	ck_assert_ptr_null(cfg.node_id);
	ck_assert_int_eq(cfg.lease_ms, 30000);
}

START_TEST(test_defaults_empty_file)
{
	ck_assert_msg(load("") == 0, "%s", err);
	check_defaults();
}
END_TEST

START_TEST(test_defaults_comments_only)
{
	ck_assert_msg(load("# nothing set\n\n  # indented: 1\r\n\t\n") == 0, "%s", err);
	check_defaults();
}
END_TEST

/* A key absent from its mapping keeps its default beside one that is set. */
START_TEST(test_defaults_partial)
{
	ck_assert_msg(load("scheduler: { max_queued: 7 }\napi: { max_body: 4096 }\n") == 0, "%s",
	              err);
	ck_assert_int_eq(cfg.sched.max_queued, 7);
	ck_assert_int_eq(cfg.sched.max_concurrent_runs, 4);
	ck_assert_uint_eq(cfg.max_body, 4096);
	ck_assert_uint_eq(cfg.max_connections, 1024);
}
END_TEST

/* The older top-level spelling of shutdown.timeout. */
START_TEST(test_shutdown_timeout_top_level)
{
	ck_assert_msg(load("shutdown_timeout: 20s\n") == 0, "%s", err);
	ck_assert_int_eq(cfg.shutdown_timeout_ms, 20000);
}
END_TEST

/* A database URL is kept as given (password included: only messages
 * redact it). */
START_TEST(test_database_url)
{
	const char *url = "postgresql://readyd:pw@db.internal:5432/readyd?sslmode=verify-full";
	char yaml[256];

	snprintf(yaml, sizeof(yaml), "database: %s\n", url);
	ck_assert_msg(load(yaml) == 0, "%s", err);
	ck_assert_str_eq(cfg.database, url);
}
END_TEST

START_TEST(test_example_file)
{
	const char *root = getenv("READYD_SOURCE_ROOT");
	char example[4096];

	ck_assert_ptr_nonnull(root);
	snprintf(example, sizeof(example), "%s/examples/readyd.yaml", root);
	ck_assert_msg(config_load(&cfg, example, err, sizeof(err)) == 0, "%s", err);
	ck_assert_str_eq(cfg.database, "/var/lib/readyd/readyd.db");
}
END_TEST

/* One bad value per key: the error names the key's path and what it must
 * be. */
static const struct {
	const char *yaml, *want;
	int line; /* of the error; 0 is 1 */
} bad[] = {
        {"listen: 5\n", "listen: must be HOST:PORT"},
        {"database: ''\n", "database: must be a file path or a postgresql:// URL"},
        {"log_level: loud\n", "log_level: must be error, warn, info or debug"},
        {"scheduler: 5\n", "scheduler: must be a mapping"},
        {"scheduler: { max_concurrent_runs: 0 }\n",
         "scheduler.max_concurrent_runs: must be an integer from 1 to 64"},
        {"scheduler: { max_concurrent_load: 17 }\n",
         "scheduler.max_concurrent_load: must be an integer from 1 to 16"},
        {"scheduler: { max_queued: x }\n", "scheduler.max_queued: must be an integer"},
        {"scheduler: { load_nice: 20 }\n", "scheduler.load_nice: must be an integer from 0 to 19"},
        {"api: { max_body: 10 }\n", "api.max_body: must be an integer from 1024"},
        {"api: { max_connections: 0 }\n", "api.max_connections: must be an integer"},
        {"api: { connection_memory: 100 }\n", "api.connection_memory: must be an integer"},
        {"api: { cache_memory: 1000 }\n", "api.cache_memory: must be an integer"},
        {"api: { max_connections_per_ip: 0 }\n", "api.max_connections_per_ip: must be an integer"},
        {"api: { idle_timeout: soon }\n", "api.idle_timeout: must be a duration"},
        {"api: { idle_timeout: 1500ms }\n", "api.idle_timeout: must be whole seconds"},
        {"shutdown_timeout: 2h\n", "shutdown_timeout: must be a duration up to 1h"},
        {"tokens: 5\n", "tokens: must be a list"},
        {"tokens: [5]\n", "tokens[0]: must be a mapping"},
        {"tokens: [{ name: 'a b', hash: " HASH_ABC ", role: admin }]\n",
         "tokens[0].name: must be 1-64 of [A-Za-z0-9._-]"},
        {"tokens: [{ name: a, hash: abc, role: admin }]\n",
         "tokens[0].hash: must be the 64 hex digits"},
        {"tokens: [{ name: a, hash: " HASH_ABC ", role: root }]\n",
         "tokens[0].role: must be notifier, viewer, submitter or admin"},
        {"tokens: [{ name: a, hash: " HASH_ABC ", role: admin, services: [] }]\n",
         "tokens[0].services: must be a non-empty list"},
        {"tokens: [{ name: a, hash: " HASH_ABC ", role: admin, services: [\"a\\tb\"] }]\n",
         "tokens[0].services: must be a non-empty list"},
        {"tokens:\n  - { name: a, hash: " HASH_ABC ", role: admin }\n"
         "  - { name: a, hash: " HASH_ABC ", role: viewer }\n",
         "tokens[1].name: 'a' is used twice", 3},
        {"allow_unauthenticated: 1\n", "allow_unauthenticated: must be true or false"},
        {"public_metrics: yes-please\n", "public_metrics: must be true or false"},
        {"rate_limit: { requests_per_second: 0 }\n",
         "rate_limit.requests_per_second: must be an integer"},
        {"rate_limit: { burst: 0 }\n", "rate_limit.burst: must be an integer"},
        {"allowed_targets: ['bad target!']\n", "allowed_targets[0]: must be HOST"},
        {"allowed_paths: 5\n", "allowed_paths: must be a list"},
        {"allowed_paths: [/etc, relative/dir]\n",
         "allowed_paths[1]: must be an absolute directory path"},
        {"tls: { cert: /c.pem }\n", "tls: needs cert and key"},
        {"limits: { max_spec_bytes: 10 }\n", "limits.max_spec_bytes: must be an integer"},
        {"limits: { max_probes: 0 }\n", "limits.max_probes: must be an integer"},
        {"limits: { max_run_duration: 30d }\n", "limits.max_run_duration: must be a duration"},
        {"limits: { max_load_connections: 0 }\n",
         "limits.max_load_connections: must be an integer"},
        {"limits: { max_load_rate: 0 }\n", "limits.max_load_rate: must be an integer"},
        {"limits: { max_load_duration: x }\n", "limits.max_load_duration: must be a duration"},
        {"shutdown: { runs: later }\n", "shutdown.runs: must be interrupt or finish"},
        {"shutdown: { timeout: 2h }\n", "shutdown.timeout: must be a duration"},
        {"retention: { raw_days: -1 }\n", "retention.raw_days: must be an integer from 0"},
        {"node_id: ''\n", "node_id: must be 1-128 of [A-Za-z0-9._:-]"},
        {"node_id: 'a b'\n", "node_id: must be 1-128 of [A-Za-z0-9._:-]"},
        {"node_id: 7\n", "node_id: must be 1-128 of [A-Za-z0-9._:-]"},
        {"lease: 500ms\n", "lease: must be a duration from 1s"},
        {"lease: 2h\n", "lease: must be a duration like 30s, at most 3600 s"},
        {"- a\n- b\n", "config: must be a mapping"},
};

START_TEST(test_bad_value)
{
	char want[600];

	ck_assert_int_eq(load(bad[_i].yaml), -EINVAL);
	snprintf(want, sizeof(want), "%s:%d: %s", path, bad[_i].line ? bad[_i].line : 1,
	         bad[_i].want);
	ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "case %d: got '%s', want '%s...'", _i,
	              err, want);
}
END_TEST

/* Unknown keys are errors at every level, named with their path. */
static const struct {
	const char *yaml, *want;
	int line; /* of the error; 0 is 1 */
} unknown[] = {
        {"colour: red\n", "colour: unknown setting"},
        {"scheduler: { max_runs: 1 }\n", "scheduler.max_runs: unknown setting"},
        {"api: { body: 1 }\n", "api.body: unknown setting"},
        {"tokens: [{ name: a, hash: " HASH_ABC ", role: admin, scope: x }]\n",
         "tokens[0].scope: unknown setting"},
        {"rate_limit: { rps: 1 }\n", "rate_limit.rps: unknown setting"},
        {"tls: { cert: a, key: b, ca: c }\n", "tls.ca: unknown setting"},
        {"limits: { max_gates: 1 }\n", "limits.max_gates: unknown setting"},
        {"shutdown: { signal: TERM }\n", "shutdown.signal: unknown setting"},
        {"retention: { keep: 1 }\n", "retention.keep: unknown setting"},
        /* A key one or two edits from a known one is suggested, at its line. */
        {"listen: 127.0.0.1:1\nscheduler:\n  max_concurent_runs: 2\n",
         "scheduler.max_concurent_runs: unknown setting (did you mean 'max_concurrent_runs'?)", 3},
        {"# readyd\n\nlog_levle: debug\n", "log_levle: unknown setting (did you mean 'log_level'?)",
         3},
        {"api:\n  max_body: 2048\n  idle_timeuot: 5s\n",
         "api.idle_timeuot: unknown setting (did you mean 'idle_timeout'?)", 3},
};

START_TEST(test_unknown_key)
{
	char want[600];

	ck_assert_int_eq(load(unknown[_i].yaml), -EINVAL);
	snprintf(want, sizeof(want), "%s:%d: %s", path, unknown[_i].line ? unknown[_i].line : 1,
	         unknown[_i].want);
	ck_assert_msg(strcmp(err, want) == 0, "case %d: got '%s', want '%s'", _i, err, want);
}
END_TEST

/* Broken YAML names the file and the line. */
START_TEST(test_yaml_error_line)
{
	char want[128];

	ck_assert_int_eq(load("listen: 127.0.0.1:1\nlog_level: info\napi: [1,\n") < 0, 1);
	snprintf(want, sizeof(want), "%s:4:", path);
	ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "got '%s', want '%s'", err, want);
}
END_TEST

START_TEST(test_yaml_duplicate_key_line)
{
	char want[128];

	ck_assert_int_eq(load("log_level: info\nlisten: a:1\nlog_level: debug\n"), -EINVAL);
	snprintf(want, sizeof(want), "%s:3: log_level", path);
	ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "got '%s', want '%s'", err, want);
}
END_TEST

START_TEST(test_missing_file)
{
	char missing[128];

	snprintf(missing, sizeof(missing), "%s/absent.yaml", dir);
	ck_assert_int_eq(config_load(&cfg, missing, err, sizeof(err)), -ENOENT);
	ck_assert_ptr_nonnull(strstr(err, "absent.yaml"));
	check_defaults();
}
END_TEST

static Suite *config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("load");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_full);
	tcase_add_test(tc, test_token_services_globs);
	tcase_add_test(tc, test_defaults_empty_file);
	tcase_add_test(tc, test_defaults_comments_only);
	tcase_add_test(tc, test_defaults_partial);
	tcase_add_test(tc, test_shutdown_timeout_top_level);
	tcase_add_test(tc, test_database_url);
	tcase_add_test(tc, test_example_file);
	tcase_add_loop_test(tc, test_bad_value, 0, (int)(sizeof(bad) / sizeof(bad[0])));
	tcase_add_loop_test(tc, test_unknown_key, 0, (int)(sizeof(unknown) / sizeof(unknown[0])));
	tcase_add_test(tc, test_yaml_error_line);
	tcase_add_test(tc, test_yaml_duplicate_key_line);
	tcase_add_test(tc, test_missing_file);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(config_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
