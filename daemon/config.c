/* config: parse readyd.yaml (see config.h). YAML goes through the spec
 * module's converter, which already refuses aliases, duplicate keys and
 * bombs; this file only knows the config's schema. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "lib/loadgen/loadgen.h"
#include "lib/spec/spec_yaml.h"
#include "lib/util/suggest.h"
#include "lib/util/util.h"

#define CONFIG_MAX_BYTES   (256 * 1024)
#define CONFIG_NODE_ID_MAX 128

void config_init(struct rd_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->listen = strdup(RD_DEFAULT_LISTEN);
	cfg->database = strdup(RD_DEFAULT_DB);
	cfg->log_level = RD_LOG_INFO;
	cfg->max_body = 1024 * 1024;
	cfg->max_connections = 1024;
	cfg->cache_memory = 64 * 1024 * 1024;
	cfg->per_ip_connections = 64;
	cfg->idle_timeout_s = 10;
	cfg->sched.max_concurrent_runs = 4;
	cfg->sched.max_concurrent_load = 1;
	cfg->load_nice = LOADGEN_NICE_DEFAULT;
	cfg->sched.max_queued = 100;
	cfg->shutdown_timeout_ms = 10000;
	cfg->lease_ms = 30 * 1000;
	cfg->limits = (struct policy_limits){
	        .max_spec_bytes = 256 * 1024,
	        .max_probes = 32,
	        .max_run_duration_ms = 2 * 3600 * 1000,
	        .max_load_connections = 1000,
	        .max_load_rate = 10000,
	        .max_probe_duration_ms = 30 * 60 * 1000,
	};
}

void config_deinit(struct rd_config *cfg)
{
	free(cfg->listen);
	free(cfg->database);
	free(cfg->node_id);
	free(cfg->tls_cert);
	free(cfg->tls_key);
	json_decref(cfg->allowed_targets);
	json_decref(cfg->allowed_paths);
	if (cfg->tokens)
		memset(cfg->tokens, 0, cfg->n_tokens * sizeof(*cfg->tokens));
	free(cfg->tokens);
	memset(cfg, 0, sizeof(*cfg));
}

int config_set_string(char **field, const char *value)
{
	char *copy = strdup(value);

	if (!copy)
		return -ENOMEM;
	free(*field);
	*field = copy;
	return 0;
}

static int read_file(const char *path, char **ret_buf, size_t *ret_len, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	char *buf = NULL;
	size_t len = 0;
	ssize_t n;

	if (fd < 0) {
		snprintf(err, errlen, "cannot open config %s: %s", path, strerror(errno));
		return -errno;
	}
	buf = malloc(CONFIG_MAX_BYTES + 1);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	while ((n = read(fd, buf + len, CONFIG_MAX_BYTES + 1 - len)) > 0)
		len += (size_t)n;
	close(fd);
	if (n < 0 || len > CONFIG_MAX_BYTES) {
		snprintf(err, errlen, "cannot read config %s: %s", path,
		         n < 0 ? strerror(errno) : "larger than 256 KiB");
		free(buf);
		return n < 0 ? -EIO : -E2BIG;
	}
	*ret_buf = buf;
	*ret_len = len;
	return 0;
}

/* An integer field within bounds, if present. */
static int get_int(json_t *obj, const char *key, const char *path, int64_t min, int64_t max,
                   int64_t *ret, char *err, size_t errlen)
{
	json_t *v = json_object_get(obj, key);

	if (!v)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
		snprintf(err, errlen, "%s%s: must be an integer from %lld to %lld", path, key,
		         (long long)min, (long long)max);
		return -EINVAL;
	}
	*ret = json_integer_value(v);
	return 0;
}

static int check_keys(json_t *obj, const char *path, const char *const *allowed, char *err,
                      size_t errlen)
{
	const char *key;
	json_t *v;

	if (!json_is_object(obj)) {
		size_t n = strlen(path);

		if (n > 0 && path[n - 1] == '.')
			n--; /* "scheduler." is the path of the mapping "scheduler" */
		snprintf(err, errlen, "%.*s: must be a mapping", n ? (int)n : 6,
		         n ? path : "config");
		return -EINVAL;
	}
	json_object_foreach (obj, key, v) {
		bool ok = false;

		for (const char *const *a = allowed; *a; a++)
			ok = ok || strcmp(*a, key) == 0;
		if (!ok) {
			struct rd_suggest sg = {.word = key};
			char hint[96];

			for (const char *const *a = allowed; *a; a++)
				rd_suggest_try(&sg, *a);
			rd_suggest_text(&sg, hint, sizeof(hint));
			snprintf(err, errlen, "%s%s: unknown setting%s", path, key, hint);
			return -EINVAL;
		}
	}
	return 0;
}

static int load_scheduler(struct rd_config *cfg, json_t *o, char *err, size_t errlen)
{
	static const char *const keys[] = {"max_concurrent_runs", "max_concurrent_load",
	                                   "max_queued", "load_nice", NULL};
	int64_t runs = cfg->sched.max_concurrent_runs, load = cfg->sched.max_concurrent_load,
	        queued = cfg->sched.max_queued, nice = cfg->load_nice;

	if (!o)
		return 0;
	if (check_keys(o, "scheduler.", keys, err, errlen) < 0 ||
	    get_int(o, "max_concurrent_runs", "scheduler.", 1, 64, &runs, err, errlen) < 0 ||
	    get_int(o, "max_concurrent_load", "scheduler.", 1, 16, &load, err, errlen) < 0 ||
	    get_int(o, "max_queued", "scheduler.", 1, 100000, &queued, err, errlen) < 0 ||
	    get_int(o, "load_nice", "scheduler.", 0, 19, &nice, err, errlen) < 0)
		return -EINVAL;
	cfg->load_nice = (int)nice;
	cfg->sched.max_concurrent_runs = (int)runs;
	cfg->sched.max_concurrent_load = (int)load;
	cfg->sched.max_queued = (int)queued;
	return 0;
}

static int get_duration(json_t *obj, const char *key, const char *path, int64_t max_ms,
                        int64_t *ret, char *err, size_t errlen);

/* What one client may hold: connections per address, and how long a
 * connection may sit without a request in flight. */
static int load_api_clients(struct rd_config *cfg, json_t *o, char *err, size_t errlen)
{
	int64_t per_ip = cfg->per_ip_connections, idle_ms = (int64_t)cfg->idle_timeout_s * 1000;

	if (get_int(o, "max_connections_per_ip", "api.", 1, 65536, &per_ip, err, errlen) < 0 ||
	    get_duration(o, "idle_timeout", "api.", 3600 * 1000, &idle_ms, err, errlen) < 0)
		return -EINVAL;
	if (idle_ms < 1000 || idle_ms % 1000 != 0) {
		snprintf(err, errlen, "api.idle_timeout: must be whole seconds, at least 1s");
		return -EINVAL;
	}
	cfg->per_ip_connections = (unsigned)per_ip;
	cfg->idle_timeout_s = (unsigned)(idle_ms / 1000);
	return 0;
}

static int load_api(struct rd_config *cfg, json_t *o, char *err, size_t errlen)
{
	static const char *const keys[] = {"max_body",
	                                   "max_connections",
	                                   "connection_memory",
	                                   "max_connections_per_ip",
	                                   "idle_timeout",
	                                   "cache_memory",
	                                   NULL};
	int64_t body = (int64_t)cfg->max_body, conns = cfg->max_connections,
	        mem = (int64_t)cfg->connection_memory, cache = (int64_t)cfg->cache_memory;

	if (!o)
		return 0;
	if (check_keys(o, "api.", keys, err, errlen) < 0 ||
	    get_int(o, "max_body", "api.", 1024, 64 * 1024 * 1024, &body, err, errlen) < 0 ||
	    get_int(o, "max_connections", "api.", 1, 65536, &conns, err, errlen) < 0 ||
	    get_int(o, "connection_memory", "api.", 8192, 16 * 1024 * 1024, &mem, err, errlen) <
	            0 ||
	    get_int(o, "cache_memory", "api.", 1024 * 1024, 4LL * 1024 * 1024 * 1024, &cache, err,
	            errlen) < 0 ||
	    load_api_clients(cfg, o, err, errlen) < 0)
		return -EINVAL;
	cfg->connection_memory = (size_t)mem;
	cfg->cache_memory = (size_t)cache;
	cfg->max_body = (size_t)body;
	cfg->max_connections = (unsigned)conns;
	return 0;
}

static int load_strings(struct rd_config *cfg, json_t *doc, char *err, size_t errlen)
{
	json_t *v;

	if ((v = json_object_get(doc, "listen"))) {
		if (!json_is_string(v) || config_set_string(&cfg->listen, json_string_value(v)) < 0)
			goto bad_listen;
	}
	if ((v = json_object_get(doc, "database"))) {
		if (!json_is_string(v) || !*json_string_value(v) ||
		    config_set_string(&cfg->database, json_string_value(v)) < 0) {
			snprintf(err, errlen,
			         "database: must be a file path or a postgresql:// URL");
			return -EINVAL;
		}
	}
	if ((v = json_object_get(doc, "log_level"))) {
		if (!json_is_string(v) ||
		    rd_log_level_parse(json_string_value(v), &cfg->log_level) < 0) {
			snprintf(err, errlen, "log_level: must be error, warn, info or debug");
			return -EINVAL;
		}
	}
	return 0;
bad_listen:
	snprintf(err, errlen, "listen: must be HOST:PORT, e.g. 127.0.0.1:7411");
	return -EINVAL;
}

static int get_bool(json_t *obj, const char *key, bool *ret, char *err, size_t errlen)
{
	json_t *v = json_object_get(obj, key);

	if (!v)
		return 0;
	if (!json_is_boolean(v)) {
		snprintf(err, errlen, "%s: must be true or false", key);
		return -EINVAL;
	}
	*ret = json_is_true(v);
	return 0;
}

static int get_duration(json_t *obj, const char *key, const char *path, int64_t max_ms,
                        int64_t *ret, char *err, size_t errlen)
{
	json_t *v = json_object_get(obj, key);
	int64_t ms;

	if (!v)
		return 0;
	if (!json_is_string(v) || rd_parse_duration(json_string_value(v), &ms) < 0 || ms > max_ms) {
		snprintf(err, errlen, "%s%s: must be a duration like 30s, at most %lld s", path,
		         key, (long long)(max_ms / 1000));
		return -EINVAL;
	}
	*ret = ms;
	return 0;
}

/* tokens[i].services: fnmatch patterns of the services the token may see
 * and change, joined with '\n' into t->scope (lib/policy/scope.h). Absent: all. */
static int load_token_services(json_t *list, const char *path, struct auth_token *t, char *err,
                               size_t errlen)
{
	size_t i, used = 0;
	json_t *v;

	if (!list)
		return 0;
	if (!json_is_array(list) || json_array_size(list) == 0)
		goto bad;
	json_array_foreach (list, i, v) {
		const char *p = json_string_value(v);
		size_t n = p ? strlen(p) : 0;

		if (n == 0 || n > 256 || strcspn(p, "\n\r\t") != n ||
		    used + n + 2 > sizeof(t->scope))
			goto bad;
		if (used)
			t->scope[used++] = '\n';
		memcpy(t->scope + used, p, n);
		used += n;
		t->scope[used] = '\0';
	}
	return 0;
bad:
	snprintf(err, errlen,
	         "%sservices: must be a non-empty list of service name patterns "
	         "(e.g. team-a-*), at most %d bytes in all",
	         path, AUTH_SCOPE_MAX - 1);
	return -EINVAL;
}

/* One tokens[] entry: {name, hash (sha256 hex), role, services?}. */
static int load_token(json_t *o, size_t i, struct auth_token *t, char *err, size_t errlen)
{
	static const char *const keys[] = {"name", "hash", "role", "services", NULL};
	const char *name = json_string_value(json_object_get(o, "name"));
	const char *hash = json_string_value(json_object_get(o, "hash"));
	const char *role = json_string_value(json_object_get(o, "role"));
	char path[32];

	snprintf(path, sizeof(path), "tokens[%zu].", i);
	if (check_keys(o, path, keys, err, errlen) < 0)
		return -EINVAL;
	if (!name || !*name || strlen(name) > AUTH_NAME_MAX ||
	    strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") !=
	            strlen(name)) {
		snprintf(err, errlen, "%sname: must be 1-%d of [A-Za-z0-9._-]", path,
		         AUTH_NAME_MAX);
		return -EINVAL;
	}
	if (!hash || auth_parse_hash(hash, t->hash) < 0) {
		snprintf(err, errlen,
		         "%shash: must be the 64 hex digits `readyd hash-token` prints", path);
		return -EINVAL;
	}
	if (!role || auth_role_from_string(role, &t->role) < 0) {
		snprintf(err, errlen, "%srole: must be notifier, viewer, submitter or admin", path);
		return -EINVAL;
	}
	if (load_token_services(json_object_get(o, "services"), path, t, err, errlen) < 0)
		return -EINVAL;
	snprintf(t->name, sizeof(t->name), "%s", name);
	return 0;
}

static int load_tokens(struct rd_config *cfg, json_t *list, char *err, size_t errlen)
{
	size_t i, n = json_array_size(list);
	json_t *o;

	if (!list)
		return 0;
	if (!json_is_array(list) || n > AUTH_MAX_TOKENS) {
		snprintf(err, errlen, "tokens: must be a list of at most %d {name, hash, role}",
		         AUTH_MAX_TOKENS);
		return -EINVAL;
	}
	cfg->tokens = calloc(n + 1, sizeof(*cfg->tokens));
	if (!cfg->tokens)
		return -ENOMEM;
	json_array_foreach (list, i, o) {
		if (load_token(o, i, &cfg->tokens[i], err, errlen) < 0)
			return -EINVAL;
		for (size_t j = 0; j < i; j++)
			if (strcmp(cfg->tokens[j].name, cfg->tokens[i].name) == 0) {
				snprintf(err, errlen, "tokens[%zu].name: '%s' is used twice", i,
				         cfg->tokens[i].name);
				return -EINVAL;
			}
		cfg->n_tokens = i + 1;
	}
	return 0;
}

static int load_limits(struct rd_config *cfg, json_t *o, char *err, size_t errlen)
{
	static const char *const keys[] = {"max_spec_bytes",
	                                   "max_probes",
	                                   "max_run_duration",
	                                   "max_load_connections",
	                                   "max_load_rate",
	                                   "max_load_duration",
	                                   NULL};
	struct policy_limits *l = &cfg->limits;
	int64_t rate = (int64_t)l->max_load_rate;

	if (!o)
		return 0;
	if (check_keys(o, "limits.", keys, err, errlen) < 0 ||
	    get_int(o, "max_spec_bytes", "limits.", 1024, SPEC_MAX_BYTES, &l->max_spec_bytes, err,
	            errlen) < 0 ||
	    get_int(o, "max_probes", "limits.", 1, SPEC_MAX_PROBES, &l->max_probes, err, errlen) <
	            0 ||
	    get_duration(o, "max_run_duration", "limits.", SPEC_MAX_DURATION_MS,
	                 &l->max_run_duration_ms, err, errlen) < 0 ||
	    get_int(o, "max_load_connections", "limits.", 1, SPEC_MAX_CONNECTIONS,
	            &l->max_load_connections, err, errlen) < 0 ||
	    get_int(o, "max_load_rate", "limits.", 1, (int64_t)SPEC_MAX_RATE, &rate, err, errlen) <
	            0 ||
	    get_duration(o, "max_load_duration", "limits.", SPEC_MAX_DURATION_MS,
	                 &l->max_probe_duration_ms, err, errlen) < 0)
		return -EINVAL;
	l->max_load_rate = (double)rate;
	return 0;
}

static int load_tls(struct rd_config *cfg, json_t *o, char *err, size_t errlen)
{
	static const char *const keys[] = {"cert", "key", NULL};
	json_t *cert = json_object_get(o, "cert"), *key = json_object_get(o, "key");

	if (!o)
		return 0;
	if (check_keys(o, "tls.", keys, err, errlen) < 0)
		return -EINVAL;
	if (!json_is_string(cert) || !json_is_string(key)) {
		snprintf(err, errlen, "tls: needs cert and key, both PEM file paths");
		return -EINVAL;
	}
	if (config_set_string(&cfg->tls_cert, json_string_value(cert)) < 0 ||
	    config_set_string(&cfg->tls_key, json_string_value(key)) < 0)
		return -ENOMEM;
	return 0;
}

static int load_shutdown(struct rd_config *cfg, json_t *o, char *err, size_t errlen)
{
	static const char *const keys[] = {"runs", "timeout", NULL};
	json_t *runs = json_object_get(o, "runs");

	if (!o)
		return 0;
	if (check_keys(o, "shutdown.", keys, err, errlen) < 0 ||
	    get_duration(o, "timeout", "shutdown.", 3600 * 1000, &cfg->shutdown_timeout_ms, err,
	                 errlen) < 0)
		return -EINVAL;
	if (runs &&
	    (!json_is_string(runs) || (strcmp(json_string_value(runs), "finish") != 0 &&
	                               strcmp(json_string_value(runs), "interrupt") != 0))) {
		snprintf(err, errlen, "shutdown.runs: must be interrupt or finish");
		return -EINVAL;
	}
	if (runs)
		cfg->shutdown_finish = strcmp(json_string_value(runs), "finish") == 0;
	return 0;
}

static int load_rate_limit(struct rd_config *cfg, json_t *o, char *err, size_t errlen)
{
	static const char *const keys[] = {"requests_per_second", "burst", NULL};
	int64_t rate = 0, burst = 0;

	if (!o)
		return 0;
	if (check_keys(o, "rate_limit.", keys, err, errlen) < 0 ||
	    get_int(o, "requests_per_second", "rate_limit.", 1, 1000000, &rate, err, errlen) < 0 ||
	    get_int(o, "burst", "rate_limit.", 1, 1000000, &burst, err, errlen) < 0)
		return -EINVAL;
	cfg->rate_limit = (double)rate;
	cfg->rate_burst = (double)burst;
	return 0;
}

/* The operations settings (docs/security.md): who may call, where probes may go, caps. */
static int load_ops(struct rd_config *cfg, json_t *doc, char *err, size_t errlen)
{
	json_t *retention = json_object_get(doc, "retention");
	static const char *const rkeys[] = {"raw_days", NULL};
	json_t *targets = json_object_get(doc, "allowed_targets");
	struct policy *p;

	if (load_tokens(cfg, json_object_get(doc, "tokens"), err, errlen) < 0 ||
	    get_bool(doc, "allow_unauthenticated", &cfg->allow_unauthenticated, err, errlen) < 0 ||
	    get_bool(doc, "public_metrics", &cfg->public_metrics, err, errlen) < 0 ||
	    load_rate_limit(cfg, json_object_get(doc, "rate_limit"), err, errlen) < 0 ||
	    load_limits(cfg, json_object_get(doc, "limits"), err, errlen) < 0 ||
	    load_tls(cfg, json_object_get(doc, "tls"), err, errlen) < 0 ||
	    load_shutdown(cfg, json_object_get(doc, "shutdown"), err, errlen) < 0)
		return -EINVAL;
	if (retention && (check_keys(retention, "retention.", rkeys, err, errlen) < 0 ||
	                  get_int(retention, "raw_days", "retention.", 0, 36500,
	                          &cfg->retention_raw_days, err, errlen) < 0))
		return -EINVAL;
	if (targets) {
		/* Validated now, so a bad list fails the load (and a reload). */
		if (policy_new(targets, &p, err, errlen) < 0)
			return -EINVAL;
		policy_unref(p);
		cfg->allowed_targets = json_incref(targets);
	}
	return 0;
}

/* allowed_paths: the directories a spec's local files (ca_file, pid_file,
 * rule_files) may be in; none by default, so no file field is accepted. */
static int load_allowed_paths(struct rd_config *cfg, json_t *doc, char *err, size_t errlen)
{
	json_t *dirs = json_object_get(doc, "allowed_paths");
	struct policy *p;
	int r;

	if (!dirs)
		return 0;
	/* Validated now, so a bad list fails the load (and a reload). */
	r = policy_new(NULL, &p, err, errlen);
	if (r == 0) {
		r = policy_set_paths(p, dirs, err, errlen);
		policy_unref(p);
	}
	if (r < 0)
		return r;
	cfg->allowed_paths = json_incref(dirs);
	return 0;
}

/* node_id names this readyd among the nodes sharing one database (and
 * in every run it executes); lease is how long a node that stopped
 * beating keeps its runs (docs/scale-out.md). */
static int load_node(struct rd_config *cfg, json_t *doc, char *err, size_t errlen)
{
	json_t *v = json_object_get(doc, "node_id");
	const char *id = json_string_value(v);

	if (v &&
	    (!id || !*id || strlen(id) > CONFIG_NODE_ID_MAX ||
	     strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-") !=
	             strlen(id))) {
		snprintf(err, errlen, "node_id: must be 1-%d of [A-Za-z0-9._:-]",
		         CONFIG_NODE_ID_MAX);
		return -EINVAL;
	}
	if (id && config_set_string(&cfg->node_id, id) < 0)
		return -ENOMEM;
	if (get_duration(doc, "lease", "", 3600 * 1000, &cfg->lease_ms, err, errlen) < 0)
		return -EINVAL;
	if (cfg->lease_ms < 1000) {
		snprintf(err, errlen, "lease: must be a duration from 1s to 3600 s, like 30s");
		return -EINVAL;
	}
	return 0;
}

static int load_doc(struct rd_config *cfg, json_t *doc, char *err, size_t errlen)
{
	static const char *const keys[] = {"listen",
	                                   "database",
	                                   "log_level",
	                                   "scheduler",
	                                   "api",
	                                   "shutdown_timeout",
	                                   "tokens",
	                                   "allow_unauthenticated",
	                                   "public_metrics",
	                                   "rate_limit",
	                                   "allowed_targets",
	                                   "allowed_paths",
	                                   "tls",
	                                   "limits",
	                                   "shutdown",
	                                   "retention",
	                                   "node_id",
	                                   "lease",
	                                   NULL};
	json_t *v;
	int64_t ms;

	if (json_is_null(doc))
		return 0; /* an empty file: all defaults */
	if (check_keys(doc, "", keys, err, errlen) < 0 || load_strings(cfg, doc, err, errlen) < 0 ||
	    load_scheduler(cfg, json_object_get(doc, "scheduler"), err, errlen) < 0 ||
	    load_api(cfg, json_object_get(doc, "api"), err, errlen) < 0 ||
	    load_ops(cfg, doc, err, errlen) < 0 || load_allowed_paths(cfg, doc, err, errlen) < 0 ||
	    load_node(cfg, doc, err, errlen) < 0)
		return -EINVAL;
	if ((v = json_object_get(doc, "shutdown_timeout"))) {
		if (!json_is_string(v) || rd_parse_duration(json_string_value(v), &ms) < 0 ||
		    ms > 3600 * 1000) {
			snprintf(err, errlen, "shutdown_timeout: must be a duration up to 1h");
			return -EINVAL;
		}
		cfg->shutdown_timeout_ms = ms;
	}
	return 0;
}

/* Only blank lines and comments: YAML has no document there, which the
 * spec's converter refuses, but an empty config means all defaults. */
static bool yaml_is_blank(const char *buf, size_t len)
{
	bool comment = false;

	for (size_t i = 0; i < len; i++) {
		if (buf[i] == '\n')
			comment = false;
		else if (buf[i] == '#' && !comment)
			comment = true;
		else if (!comment && buf[i] != ' ' && buf[i] != '\t' && buf[i] != '\r')
			return false;
	}
	return true;
}

/* One step of an error's path ("tokens[2].name"): a key up to '.', '['
 * or ':', or an index. Moves *p past it; false at the end of the path. */
static bool path_step(const char **p, char *key, size_t keylen, long *index)
{
	const char *s = *p;
	size_t n;

	if (*s == '.')
		s++;
	if (*s == '[') {
		char *end;

		*index = strtol(s + 1, &end, 10);
		if (*end != ']')
			return false;
		key[0] = '\0';
		*p = end + 1;
		return true;
	}
	n = strcspn(s, ".[:");
	if (n == 0 || n >= keylen)
		return false;
	memcpy(key, s, n);
	key[n] = '\0';
	*index = -1;
	*p = s + n;
	return true;
}

/* The line of the config an error is about: its message starts with
 * the path of the bad setting ("api.max_body: must be ..."). The line
 * of the deepest part of that path the file has; 1 when none. */
static int error_line(json_t *doc, const struct spec_srcmap *map, const char *msg)
{
	const char *p = msg;
	char key[128];
	long index;
	int line = 1, l;

	while (doc && *p != ':' && path_step(&p, key, sizeof(key), &index)) {
		json_t *next =
		        index >= 0 ? json_array_get(doc, (size_t)index) : json_object_get(doc, key);

		l = index >= 0 ? spec_srcmap_line(map, next) : spec_srcmap_key_line(map, doc, key);
		if (l > 0)
			line = l;
		doc = next;
	}
	return line;
}

int config_load(struct rd_config *cfg, const char *path, char *err, size_t errlen)
{
	struct spec_error se = {0};
	struct spec_srcmap *map = NULL;
	json_t *doc = NULL;
	char *buf = NULL, msg[400];
	size_t len = 0;
	int r = read_file(path, &buf, &len, err, errlen);

	if (r < 0)
		return r;
	if (yaml_is_blank(buf, len)) {
		free(buf);
		return 0; /* all defaults */
	}
	r = spec_yaml_parse(buf, len, &doc, &map, &se);
	free(buf);
	if (r < 0) {
		snprintf(err, errlen, "%s:%d: %s%s%s", path, se.line, se.path,
		         se.path[0] ? ": " : "", se.message);
		return r;
	}
	r = load_doc(cfg, doc, msg, sizeof(msg));
	if (r < 0)
		snprintf(err, errlen, "%s:%d: %s", path, error_line(doc, map, msg), msg);
	json_decref(doc);
	spec_srcmap_free(map);
	return r;
}
