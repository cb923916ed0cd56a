/* dashboard: a Grafana dashboard's panels, variables and queries
 * (dashboard.h). Pure; the probe does the I/O.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/probe/dashboard.h"
#include "lib/util/util.h"

json_t *dashboard_model(json_t *doc)
{
	json_t *inner = json_object_get(doc, "dashboard");

	if (json_is_object(inner))
		doc = inner;
	if (!json_is_object(doc))
		return NULL;
	if (!json_is_array(json_object_get(doc, "panels")) &&
	    !json_is_array(json_object_get(doc, "rows")))
		return NULL;
	return doc;
}

/* A target Prometheus answers: see dashboard.h. */
static bool prometheus_target(json_t *t, json_t *panel_ds)
{
	json_t *ds = json_object_get(t, "datasource");
	const char *expr = json_string_value(json_object_get(t, "expr"));
	const char *type;

	if (!expr || !expr[0] || json_is_true(json_object_get(t, "hide")))
		return false;
	if (!ds || json_is_null(ds))
		ds = panel_ds;
	type = json_string_value(json_object_get(ds, "type"));
	return !json_is_object(ds) || !type || !strcmp(type, "prometheus");
}

struct walk {
	json_t *out;
	size_t queries;
};

static int add_panel(struct walk *w, json_t *panel)
{
	json_t *targets = json_object_get(panel, "targets"), *t, *list, *o;
	json_t *ds = json_object_get(panel, "datasource");
	size_t i;

	list = json_array();
	if (!list)
		return -ENOMEM;
	json_array_foreach (targets, i, t) {
		if (!prometheus_target(t, ds))
			continue;
		if (++w->queries > DASHBOARD_MAX_QUERIES) {
			json_decref(list);
			return -E2BIG;
		}
		json_array_append_new(list,
		                      json_pack("{s:O?, s:O}", "refId", json_object_get(t, "refId"),
		                                "expr", json_object_get(t, "expr")));
	}
	if (json_array_size(list) == 0) {
		json_decref(list);
		return 0;
	}
	if (json_array_size(w->out) >= DASHBOARD_MAX_PANELS) {
		json_decref(list);
		return -E2BIG;
	}
	o = json_pack("{s:s, s:O?, s:o}", "title",
	              json_string_value(json_object_get(panel, "title"))
	                      ? json_string_value(json_object_get(panel, "title"))
	                      : "(untitled)",
	              "id", json_object_get(panel, "id"), "targets", list);
	return json_array_append_new(w->out, o) < 0 ? -ENOMEM : 0;
}

static int walk_panels(struct walk *w, json_t *panels, int depth)
{
	json_t *panel;
	size_t i;
	int r;

	if (depth > 4)
		return 0; /* rows hold panels; nothing legitimate nests deeper */
	json_array_foreach (panels, i, panel) {
		if (!json_is_object(panel))
			continue;
		r = add_panel(w, panel);
		if (r == 0 && json_is_array(json_object_get(panel, "panels")))
			r = walk_panels(w, json_object_get(panel, "panels"), depth + 1);
		if (r < 0)
			return r;
	}
	return 0;
}

int dashboard_panels(json_t *dash, json_t **ret)
{
	struct walk w = {.out = json_array()};
	json_t *row;
	size_t i;
	int r;

	if (!w.out)
		return -ENOMEM;
	r = walk_panels(&w, json_object_get(dash, "panels"), 0);
	json_array_foreach (json_object_get(dash, "rows"), i, row) {
		if (r == 0)
			r = walk_panels(&w, json_object_get(row, "panels"), 1);
	}
	if (r < 0) {
		json_decref(w.out);
		return r;
	}
	*ret = w.out;
	return 0;
}

#define ALL_VALUE "$__all"

static bool is_all(json_t *it)
{
	return json_is_string(it) && strcmp(json_string_value(it), ALL_VALUE) == 0;
}

/* Strings of list (or list[].value when key) joined as a|b, leaving out
 * "All"; NULL when none or too long. */
static json_t *joined(json_t *list, const char *key)
{
	json_t *it;
	char buf[4096];
	size_t i, n = 0;

	buf[0] = '\0';
	json_array_foreach (list, i, it) {
		json_t *s = key ? json_object_get(it, key) : it;
		int k;

		if (!json_is_string(s) || is_all(s))
			continue;
		k = snprintf(buf + n, sizeof(buf) - n, "%s%s", n ? "|" : "", json_string_value(s));
		if (k < 0 || (size_t)k >= sizeof(buf) - n)
			return NULL;
		n += (size_t)k;
	}
	return n ? json_string(buf) : NULL;
}

/* Grafana's "All": the variable's allValue, else its options, else any
 * value. Sent as the literal $__all it would match nothing. */
static json_t *all_value(json_t *v)
{
	json_t *all = json_object_get(v, "allValue"), *opts;

	if (json_is_string(all) && json_string_length(all) > 0)
		return json_string(json_string_value(all));
	opts = joined(json_object_get(v, "options"), "value");
	return opts ? opts : json_string(".*");
}

/* current.value of a templating entry: a string, or an array as a|b. */
static json_t *current_value(json_t *v)
{
	json_t *cur = json_object_get(json_object_get(v, "current"), "value");

	if (is_all(cur) || (json_is_array(cur) && is_all(json_array_get(cur, 0))))
		return all_value(v);
	if (json_is_string(cur))
		return json_string(json_string_value(cur));
	if (!json_is_array(cur) || json_array_size(cur) == 0)
		return NULL;
	return joined(cur, NULL);
}

json_t *dashboard_variables(json_t *dash, const struct spec_label *vars, size_t n_vars)
{
	json_t *out = json_object(), *v;
	size_t i;

	if (!out)
		return NULL;
	json_array_foreach (json_object_get(json_object_get(dash, "templating"), "list"), i, v) {
		const char *name = json_string_value(json_object_get(v, "name"));
		json_t *val = current_value(v);

		if (name && val)
			json_object_set_new(out, name, val);
		else
			json_decref(val);
	}
	for (i = 0; i < n_vars; i++)
		json_object_set_new(out, vars[i].name, json_string(vars[i].value));
	return out;
}

int64_t dashboard_interval_ms(const struct dashboard_builtins *b)
{
	int64_t i = b->range_ms / DASHBOARD_STEPS;

	return i > b->scrape_ms ? i : b->scrape_ms;
}

/* The value of a built-in, or NULL when name is not one. */
static const char *builtin(const char *name, const struct dashboard_builtins *b, char *buf,
                           size_t len)
{
	int64_t iv = dashboard_interval_ms(b), rate = iv + b->scrape_ms;

	if (rate < 4 * b->scrape_ms)
		rate = 4 * b->scrape_ms;
	if (!strcmp(name, "__interval"))
		snprintf(buf, len, "%" PRId64 "ms", iv);
	else if (!strcmp(name, "__interval_ms"))
		snprintf(buf, len, "%" PRId64, iv);
	else if (!strcmp(name, "__rate_interval"))
		snprintf(buf, len, "%" PRId64 "ms", rate);
	else if (!strcmp(name, "__range"))
		snprintf(buf, len, "%" PRId64 "ms", b->range_ms);
	else if (!strcmp(name, "__range_s"))
		snprintf(buf, len, "%" PRId64, (b->range_ms + 999) / 1000);
	else if (!strcmp(name, "__range_ms"))
		snprintf(buf, len, "%" PRId64, b->range_ms);
	else
		return NULL;
	return buf;
}

/* The variable reference at s: its name in name, its length returned (0:
 * no reference here). $name, ${name} or ${name:format}, [[name]]. */
static size_t reference(const char *s, char *name, size_t len)
{
	const char *open = s[0] == '$' && s[1] == '{'   ? "}"
	                   : s[0] == '[' && s[1] == '[' ? "]]"
	                                                : "";
	size_t skip = open[0] ? 2 : s[0] == '$' ? 1 : 0, n = 0;
	const char *p = s + skip;

	if (!skip)
		return 0;
	while (isalnum((unsigned char)p[n]) || p[n] == '_')
		n++;
	if (n == 0 || n >= len)
		return 0;
	memcpy(name, p, n);
	name[n] = '\0';
	p += n;
	if (open[0] == '}' && *p == ':') /* ${var:format}: the format is ignored */
		while (*p && *p != '}')
			p++;
	if (open[0] && strncmp(p, open, strlen(open)) != 0)
		return 0;
	return (size_t)(p - s) + strlen(open);
}

int dashboard_substitute(const char *expr, json_t *vals, const struct dashboard_builtins *b,
                         char **ret, char *why, size_t whylen)
{
	char *out = malloc(DASHBOARD_MAX_EXPR + 1), name[128], bbuf[32];
	size_t o = 0;

	if (!out)
		return -ENOMEM;
	while (*expr) {
		size_t ref = reference(expr, name, sizeof(name));
		const char *val = ref ? builtin(name, b, bbuf, sizeof(bbuf)) : NULL;
		size_t add;

		if (ref && !val)
			val = json_string_value(json_object_get(vals, name));
		if (ref && !val && isdigit((unsigned char)name[0]))
			ref = 0; /* $1 of label_replace: not a variable */
		if (ref && !val) {
			snprintf(why, whylen, "variable $%s has no value (give it in variables)",
			         name);
			free(out);
			return -ENOENT;
		}
		add = ref ? strlen(val) : 1;
		if (o + add > DASHBOARD_MAX_EXPR) {
			snprintf(why, whylen, "the query is longer than %d bytes",
			         DASHBOARD_MAX_EXPR);
			free(out);
			return -E2BIG;
		}
		memcpy(out + o, ref ? val : expr, add);
		o += add;
		expr += ref ? ref : 1;
	}
	out[o] = '\0';
	*ret = out;
	return 0;
}

/* A sample's value as Prometheus sends it: [time, "1.5"]; NaN is no data
 * (histogram_quantile of no traffic), as Grafana draws nothing for it. */
static bool sample_is_data(json_t *sample)
{
	const char *v = json_string_value(json_array_get(sample, 1));

	return v && strcmp(v, "NaN") != 0;
}

bool dashboard_has_data(json_t *data)
{
	const char *type = json_string_value(json_object_get(data, "resultType"));
	json_t *result = json_object_get(data, "result"), *s, *pt;
	size_t i, k;

	if (!type)
		return false;
	if (!strcmp(type, "scalar"))
		return sample_is_data(result);
	if (!strcmp(type, "string"))
		return true;
	json_array_foreach (result, i, s) {
		if (!strcmp(type, "vector") && sample_is_data(json_object_get(s, "value")))
			return true;
		json_array_foreach (json_object_get(s, "values"), k, pt) {
			if (sample_is_data(pt))
				return true;
		}
	}
	return false;
}
