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
#include "spec_yaml.h"
#include "util.h"

#define CONFIG_MAX_BYTES (256 * 1024)

void config_init(struct rd_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->listen = strdup(RD_DEFAULT_LISTEN);
	cfg->database = strdup(RD_DEFAULT_DB);
	cfg->log_level = RD_LOG_INFO;
	cfg->max_body = 1024 * 1024;
	cfg->max_connections = 1024;
	cfg->sched.max_concurrent_runs = 4;
	cfg->sched.max_concurrent_load = 1;
	cfg->sched.max_queued = 100;
	cfg->shutdown_timeout_ms = 10000;
}

void config_deinit(struct rd_config *cfg)
{
	free(cfg->listen);
	free(cfg->database);
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
		snprintf(err, errlen, "%s: must be a mapping", path[0] ? path : "config");
		return -EINVAL;
	}
	json_object_foreach(obj, key, v)
	{
		bool ok = false;

		for (const char *const *a = allowed; *a; a++)
			ok = ok || strcmp(*a, key) == 0;
		if (!ok) {
			snprintf(err, errlen, "%s%s: unknown setting", path, key);
			return -EINVAL;
		}
	}
	return 0;
}

static int load_scheduler(struct rd_config *cfg, json_t *o, char *err, size_t errlen)
{
	static const char *const keys[] = {"max_concurrent_runs", "max_concurrent_load",
	                                   "max_queued", NULL};
	int64_t runs = cfg->sched.max_concurrent_runs, load = cfg->sched.max_concurrent_load,
	        queued = cfg->sched.max_queued;

	if (!o)
		return 0;
	if (check_keys(o, "scheduler.", keys, err, errlen) < 0 ||
	    get_int(o, "max_concurrent_runs", "scheduler.", 1, 64, &runs, err, errlen) < 0 ||
	    get_int(o, "max_concurrent_load", "scheduler.", 1, 16, &load, err, errlen) < 0 ||
	    get_int(o, "max_queued", "scheduler.", 1, 100000, &queued, err, errlen) < 0)
		return -EINVAL;
	cfg->sched.max_concurrent_runs = (int)runs;
	cfg->sched.max_concurrent_load = (int)load;
	cfg->sched.max_queued = (int)queued;
	return 0;
}

static int load_api(struct rd_config *cfg, json_t *o, char *err, size_t errlen)
{
	static const char *const keys[] = {"max_body", "max_connections", NULL};
	int64_t body = (int64_t)cfg->max_body, conns = cfg->max_connections;

	if (!o)
		return 0;
	if (check_keys(o, "api.", keys, err, errlen) < 0 ||
	    get_int(o, "max_body", "api.", 1024, 64 * 1024 * 1024, &body, err, errlen) < 0 ||
	    get_int(o, "max_connections", "api.", 1, 65536, &conns, err, errlen) < 0)
		return -EINVAL;
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
			snprintf(err, errlen, "database: must be a file path");
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

static int load_doc(struct rd_config *cfg, json_t *doc, char *err, size_t errlen)
{
	static const char *const keys[] = {"listen", "database",         "log_level", "scheduler",
	                                   "api",    "shutdown_timeout", NULL};
	json_t *v;
	int64_t ms;

	if (json_is_null(doc))
		return 0; /* an empty file: all defaults */
	if (check_keys(doc, "", keys, err, errlen) < 0 || load_strings(cfg, doc, err, errlen) < 0 ||
	    load_scheduler(cfg, json_object_get(doc, "scheduler"), err, errlen) < 0 ||
	    load_api(cfg, json_object_get(doc, "api"), err, errlen) < 0)
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
	r = spec_yaml_parse(buf, len, &doc, &map, &se);
	free(buf);
	if (r < 0) {
		snprintf(err, errlen, "%s:%d: %s%s%s", path, se.line, se.path,
		         se.path[0] ? ": " : "", se.message);
		return r;
	}
	r = load_doc(cfg, doc, msg, sizeof(msg));
	if (r < 0)
		snprintf(err, errlen, "%s: %s", path, msg);
	json_decref(doc);
	spec_srcmap_free(map);
	return r;
}
