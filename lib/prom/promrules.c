/* promrules: Prometheus rule-file validation (see promrules.h). Walks the
 * JSON tree the spec module's YAML converter builds and collects every
 * problem with its path and line instead of stopping at the first, so one
 * run shows the whole list. Must not parse PromQL or touch the network.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/prom/promrules.h"
#include "lib/spec/spec_yaml.h"
#include "lib/util/util.h"

int promrules_parse_duration(const char *s, int64_t *ret_ms)
{
	static const struct {
		const char *unit;
		int64_t ms;
	} units[] = {
	        {"y", 365LL * 86400000},
	        {"w", 7LL * 86400000},
	        {"d", 86400000},
	        {"h", 3600000},
	        {"m", 60000},
	        {"s", 1000},
	        {"ms", 1},
	};
	size_t next = 0;
	int64_t total = 0;

	if (strcmp(s, "0") == 0) {
		*ret_ms = 0;
		return 0;
	}
	if (!*s)
		return -EINVAL;
	while (*s) {
		int64_t v = 0;
		size_t u;

		if (*s < '0' || *s > '9')
			return -EINVAL;
		while (*s >= '0' && *s <= '9') {
			if (v > (INT64_MAX - 9) / 10)
				return -EINVAL;
			v = v * 10 + (*s++ - '0');
		}
		/* "ms" is the one two-letter unit; "m" alone is minutes. */
		for (u = next; u < RD_ARRAY_SIZE(units); u++) {
			size_t ul = strlen(units[u].unit);

			if (strncmp(s, units[u].unit, ul) == 0 &&
			    !(ul == 1 && s[0] == 'm' && s[1] == 's'))
				break;
		}
		if (u >= RD_ARRAY_SIZE(units))
			return -EINVAL;
		if (v > INT64_MAX / units[u].ms || total > INT64_MAX - v * units[u].ms)
			return -EINVAL;
		total += v * units[u].ms;
		s += strlen(units[u].unit);
		next = u + 1;
	}
	*ret_ms = total;
	return 0;
}

/* ---- error collection ---- */

struct walk {
	json_t *errors;
	struct spec_srcmap *map;
	struct promrules_stats stats;
	int oom;
};

__attribute__((format(printf, 4, 5))) static void
add_error(struct walk *w, const char *path, const json_t *node, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	json_t *e;
	int line = spec_srcmap_line(w->map, node);

	w->stats.errors++;
	if (json_array_size(w->errors) >= PROMRULES_MAX_ERRORS)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	e = json_pack("{s:s, s:s}", "path", path, "message", msg);
	if (e && line > 0)
		json_object_set_new(e, "line", json_integer(line));
	if (!e || json_array_append_new(w->errors, e) < 0)
		w->oom = 1;
}

/* Reports keys of obj not in allowed (NULL-terminated): at the mapping's
 * path and the value's line, never the key itself (the file's text). */
static void unknown_keys(struct walk *w, const char *path, json_t *obj, const char *const *allowed)
{
	char list[128] = "";
	size_t o = 0;
	const char *k;
	json_t *v;

	for (size_t i = 0; allowed[i] && o < sizeof(list); i++)
		o += (size_t)snprintf(list + o, sizeof(list) - o, "%s%s", i ? ", " : "",
		                      allowed[i]);
	json_object_foreach (obj, k, v) {
		size_t i = 0;

		while (allowed[i] && strcmp(allowed[i], k) != 0)
			i++;
		if (!allowed[i])
			add_error(w, path, spec_srcmap_line(w->map, v) ? v : obj,
			          "unknown field (allowed here: %s)", list);
	}
}

static bool valid_name(const char *s, bool colon)
{
	if (!*s)
		return false;
	for (size_t i = 0; s[i]; i++) {
		char c = s[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
		          (colon && c == ':') || (i > 0 && c >= '0' && c <= '9');

		if (!ok)
			return false;
	}
	return true;
}

/* A duration field: absent is fine; present must parse. */
static void check_duration(struct walk *w, const char *path, json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);
	char p[256];
	int64_t ms;

	if (!v)
		return;
	spec_path_key(p, sizeof(p), path, key);
	if (!json_is_string(v) || promrules_parse_duration(json_string_value(v), &ms) < 0)
		add_error(w, p, v, "'%s' is not a duration (like 30s, 5m, 1h30m)", key);
}

/* labels/annotations: a map of names to strings (numbers are taken as
 * their text, as Prometheus' YAML decoding does). */
static void check_string_map(struct walk *w, const char *path, json_t *obj, const char *key)
{
	json_t *m = json_object_get(obj, key), *v;
	const char *k;
	char p[256];

	if (!m)
		return;
	spec_path_key(p, sizeof(p), path, key);
	if (!json_is_object(m)) {
		add_error(w, p, m, "'%s' must be a map of names to strings", key);
		return;
	}
	json_object_foreach (m, k, v) {
		const json_t *at = spec_srcmap_line(w->map, v) ? v : m;

		if (!valid_name(k, false))
			add_error(w, p, at, "invalid %s name (must match [a-zA-Z_][a-zA-Z0-9_]*)",
			          key);
		if (!json_is_string(v) && !json_is_number(v))
			add_error(w, p, at, "a value in '%s' must be a string", key);
	}
}

static const char *string_field(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	return json_is_string(v) ? json_string_value(v) : NULL;
}

/* Fields that must be a string when present. */
static void check_string_type(struct walk *w, const char *path, json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);
	char p[256];

	if (v && !json_is_string(v) && !(strcmp(key, "expr") == 0 && json_is_number(v))) {
		spec_path_key(p, sizeof(p), path, key);
		add_error(w, p, v, "'%s' must be a string", key);
	}
}

static void check_kind(struct walk *w, const char *path, json_t *rule, const char *alert,
                       const char *record)
{
	char p[256];

	if (alert && record) {
		add_error(w, path, rule, "only one of 'alert' or 'record' may be set");
	} else if (!alert && !record) {
		add_error(w, path, rule, "one of 'alert' or 'record' must be set");
	} else if (alert && !*alert) {
		spec_path_key(p, sizeof(p), path, "alert");
		add_error(w, p, rule, "'alert' must not be empty");
	} else if (record && !valid_name(record, true)) {
		spec_path_key(p, sizeof(p), path, "record");
		add_error(w, p, rule, "'record' is not a valid metric name");
	}
	if (record) {
		static const char *const alert_only[] = {"for", "keep_firing_for", "annotations"};

		for (size_t i = 0; i < RD_ARRAY_SIZE(alert_only); i++)
			if (json_object_get(rule, alert_only[i])) {
				spec_path_key(p, sizeof(p), path, alert_only[i]);
				add_error(w, p, rule, "'%s' is not allowed in a recording rule",
				          alert_only[i]);
			}
	}
}

static void check_rule(struct walk *w, const char *path, json_t *rule)
{
	static const char *const keys[] = {"alert",           "record", "expr",        "for",
	                                   "keep_firing_for", "labels", "annotations", NULL};
	const char *alert = string_field(rule, "alert"), *record = string_field(rule, "record");
	json_t *expr = json_object_get(rule, "expr");
	char p[256];

	if (!json_is_object(rule)) {
		add_error(w, path, rule, "a rule must be a map");
		return;
	}
	unknown_keys(w, path, rule, keys);
	check_string_type(w, path, rule, "alert");
	check_string_type(w, path, rule, "record");
	check_string_type(w, path, rule, "expr");
	check_kind(w, path, rule, alert, record);
	if (!expr || (json_is_string(expr) && !*json_string_value(expr))) {
		spec_path_key(p, sizeof(p), path, "expr");
		add_error(w, p, rule, "'expr' must be set");
	}
	check_duration(w, path, rule, "for");
	check_duration(w, path, rule, "keep_firing_for");
	check_string_map(w, path, rule, "labels");
	check_string_map(w, path, rule, "annotations");
	if (alert)
		w->stats.alerts++;
	else if (record)
		w->stats.records++;
}

static void check_group(struct walk *w, const char *path, json_t *g, json_t *seen)
{
	static const char *const keys[] = {"name", "interval", "limit", "rules", NULL};
	const char *name = string_field(g, "name");
	json_t *rules = json_object_get(g, "rules"), *lim = json_object_get(g, "limit"), *r;
	char p[256], q[256];
	size_t i;

	if (!json_is_object(g)) {
		add_error(w, path, g, "a group must be a map");
		return;
	}
	unknown_keys(w, path, g, keys);
	spec_path_key(p, sizeof(p), path, "name");
	if (!name || !*name)
		add_error(w, p, g, "a group needs a non-empty 'name'");
	else if (json_object_get(seen, name))
		add_error(w, p, g, "this group name is used twice in this file");
	else if (json_object_set_new(seen, name, json_true()) < 0)
		w->oom = 1;
	check_duration(w, path, g, "interval");
	spec_path_key(p, sizeof(p), path, "limit");
	if (lim && (!json_is_integer(lim) || json_integer_value(lim) < 0))
		add_error(w, p, lim, "'limit' must be a non-negative integer");
	spec_path_key(p, sizeof(p), path, "rules");
	if (rules && !json_is_array(rules))
		add_error(w, p, rules, "'rules' must be a list");
	json_array_foreach (rules, i, r) {
		spec_path_index(q, sizeof(q), p, i);
		check_rule(w, q, r);
	}
	w->stats.groups++;
}

static void check_doc(struct walk *w, json_t *doc)
{
	static const char *const keys[] = {"groups", NULL};
	json_t *groups, *g, *seen;
	char p[256];
	size_t i;

	if (json_is_null(doc))
		return; /* an empty file: Prometheus loads it as no groups */
	if (!json_is_object(doc)) {
		add_error(w, "", doc, "a rule file is a map with a 'groups' list");
		return;
	}
	unknown_keys(w, "", doc, keys);
	groups = json_object_get(doc, "groups");
	if (groups && !json_is_array(groups)) {
		add_error(w, "groups", groups, "'groups' must be a list");
		return;
	}
	seen = json_object();
	if (!seen) {
		w->oom = 1;
		return;
	}
	json_array_foreach (groups, i, g) {
		spec_path_index(p, sizeof(p), "groups", i);
		check_group(w, p, g, seen);
	}
	json_decref(seen);
}

/* A YAML converter message without the file's text: libyaml's syntax
 * errors and the converter's fixed sentences are kept; one that quotes a
 * value or key ('...', "number ...") becomes its kind. */
static const char *yaml_reason(const char *msg)
{
	if (strncmp(msg, "YAML syntax error", 17) == 0 && !strchr(msg, '\''))
		return msg;
	if (strstr(msg, "mapping key"))
		return "a mapping key is not a string (quote it)";
	if (strstr(msg, "YAML tag"))
		return "a YAML tag is not supported";
	if (strchr(msg, '\'') || strncmp(msg, "number ", 7) == 0)
		return "a value is not a valid number";
	return msg;
}

/* Input the YAML converter must not see (it expects a checked buffer). */
static bool precheck(struct walk *w, const char *buf, size_t len)
{
	size_t bad;

	if (len > PROMRULES_MAX_BYTES) {
		add_error(w, "", NULL, "file larger than %d bytes", PROMRULES_MAX_BYTES);
		return false;
	}
	if (memchr(buf, '\0', len)) {
		add_error(w, "", NULL, "file contains a NUL byte");
		return false;
	}
	if (!spec_utf8_valid(buf, len, &bad)) {
		add_error(w, "", NULL, "invalid UTF-8 at byte %zu", bad);
		return false;
	}
	return true;
}

int promrules_check(const char *buf, size_t len, json_t **ret_errors,
                    struct promrules_stats *ret_stats)
{
	struct walk w = {.errors = json_array()};
	struct spec_error err = {0};
	json_t *doc = NULL;
	int r = 0;

	if (!w.errors)
		return -ENOMEM;
	if (precheck(&w, buf, len)) {
		r = spec_yaml_parse(buf, len, &doc, &w.map, &err);
		if (r == -EINVAL) {
			/* The converter's path and some of its messages quote the
			 * file: only the line and a text-free reason are kept. */
			add_error(&w, "", NULL, "%s%s%.0d", yaml_reason(err.message),
			          err.line > 0 ? " at line " : "", err.line);
			r = 0;
		} else if (r == 0) {
			check_doc(&w, doc);
		}
	}
	json_decref(doc);
	spec_srcmap_free(w.map);
	if (r == 0 && w.oom)
		r = -ENOMEM;
	if (r < 0) {
		json_decref(w.errors);
		return r;
	}
	*ret_errors = w.errors;
	*ret_stats = w.stats;
	return 0;
}

int promrules_check_file(const char *path, json_t **ret_errors, struct promrules_stats *ret_stats)
{
	char *buf = malloc(PROMRULES_MAX_BYTES + 1);
	size_t len = 0;
	ssize_t n = 1;
	int fd, r = 0;

	if (!buf)
		return -ENOMEM;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		r = -errno;
		goto out;
	}
	while (len <= PROMRULES_MAX_BYTES && n > 0) {
		n = read(fd, buf + len, PROMRULES_MAX_BYTES + 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			r = -errno;
		else
			len += (size_t)n;
		if (len == PROMRULES_MAX_BYTES + 1)
			break;
	}
	close(fd);
	if (r == 0 && len > PROMRULES_MAX_BYTES)
		r = -EFBIG;
	if (r == 0)
		r = promrules_check(buf, len, ret_errors, ret_stats);
out:
	free(buf);
	return r;
}
