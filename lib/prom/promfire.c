/* promfire: the can-fire analysis of alerting rules (see promfire.h).
 * Every rule becomes a list of checks, queried one after another: its
 * selectors, then its vector matches, inner ones first. A rule found
 * unable to fire skips its remaining vector matches (their sides are
 * empty anyway) but still has every selector checked, so each missing
 * series is named.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "lib/prom/promapi.h"
#include "lib/prom/promfire.h"
#include "lib/prom/promql.h"

enum check_kind { CHECK_SELECTOR, CHECK_MATCH };

struct check {
	enum check_kind kind;
	size_t rule;      /* index into rules */
	char *text;       /* the selector or operation, for the details */
	char *query[3];   /* selector: itself, its name alone; match: left, right, whole */
	const char *name; /* selector: its metric name (in the tree) or NULL */
	const struct promql_node *op; /* match: the operation (in the rule's tree) */
};

struct promfire {
	struct http_client *http;
	const struct spec_probe *sp;
	json_t *rules;
	struct promql_node **trees;
	bool *cannot; /* per rule */
	struct check *checks;
	size_t n_checks, cap_checks, next;
	int phase;            /* of a match check: 0 left, 1 right, 2 whole */
	json_t *left, *right; /* a match check's side results */
	size_t queries;
	struct promapi_call *call;
	uv_idle_t *kick; /* the first query is sent from the loop, not from start */
	json_t *findings, *unanalysed;
	size_t analysed;
	promfire_cb cb;
	void *userdata;
};

static const char *rule_str(struct promfire *f, size_t i, const char *key)
{
	return json_string_value(json_object_get(json_array_get(f->rules, i), key)) ?: "?";
}

static int add_check(struct promfire *f, struct check c)
{
	if (f->n_checks == f->cap_checks) {
		size_t cap = f->cap_checks ? f->cap_checks * 2 : 16;
		struct check *v = realloc(f->checks, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		f->checks = v;
		f->cap_checks = cap;
	}
	f->checks[f->n_checks++] = c;
	return 0;
}

static void check_clear(struct check *c)
{
	free(c->text);
	for (int i = 0; i < 3; i++)
		free(c->query[i]);
}

struct planner {
	struct promfire *f;
	size_t rule;
	size_t first; /* the rule's first check */
};

/* Each check writes a side of the rule out again: without a bound, a
 * long chain of operations costs the square of its length. */
static bool rule_full(const struct planner *pl)
{
	return pl->f->n_checks - pl->first >= PROMFIRE_MAX_CHECKS;
}

static int plan_selector(void *userdata, const struct promql_node *n)
{
	struct planner *pl = userdata;
	struct check c = {.kind = CHECK_SELECTOR, .rule = pl->rule};
	char *q = NULL;

	if (rule_full(pl))
		return -E2BIG;
	c.text = promql_format_selector(n);
	if (!c.text)
		return -ENOMEM;
	/* The same selector twice in a rule is checked once. */
	for (size_t i = pl->first; i < pl->f->n_checks; i++)
		if (pl->f->checks[i].kind == CHECK_SELECTOR &&
		    strcmp(pl->f->checks[i].text, c.text) == 0) {
			free(c.text);
			return 0;
		}
	if (asprintf(&q, "count(last_over_time(%s[%s]%s%s))", c.text, PROMFIRE_LOOKBACK,
	             n->offset ? " offset " : "", n->offset ? n->offset : "") < 0)
		q = NULL;
	c.query[0] = q;
	c.name = n->text;
	if (q && n->text && n->n_matchers > 0 &&
	    asprintf(&c.query[1], "count(last_over_time(%s[%s]%s%s))", n->text, PROMFIRE_LOOKBACK,
	             n->offset ? " offset " : "", n->offset ? n->offset : "") < 0) {
		c.query[1] = NULL;
		q = NULL;
	}
	if (q && n->offset) { /* the details name the offset the rule looks at */
		char *t = NULL;

		if (asprintf(&t, "%s offset %s", c.text, n->offset) < 0)
			t = NULL;
		free(c.text);
		c.text = t;
	}
	if (!q || !c.text || add_check(pl->f, c) < 0) {
		check_clear(&c);
		return -ENOMEM;
	}
	return 0;
}

static int plan_match(void *userdata, const struct promql_node *n)
{
	struct planner *pl = userdata;
	struct check c = {.kind = CHECK_MATCH, .rule = pl->rule, .op = n};

	if (rule_full(pl))
		return -E2BIG;
	c.text = promql_format(n, PROMQL_FMT_NO_FILTERS);
	c.query[0] = promql_format(n->a, PROMQL_FMT_NO_FILTERS);
	c.query[1] = promql_format(n->b, PROMQL_FMT_NO_FILTERS);
	c.query[2] = promql_format(n, PROMQL_FMT_NO_FILTERS | PROMQL_FMT_TOP_BOOL);
	if (!c.text || !c.query[0] || !c.query[1] || !c.query[2] || add_check(pl->f, c) < 0) {
		check_clear(&c);
		return -ENOMEM;
	}
	return 0;
}

static int not_analysed(struct promfire *f, size_t i, const char *reason)
{
	json_t *o = json_pack("{s:s, s:s, s:s}", "rule", rule_str(f, i, "rule"), "group",
	                      rule_str(f, i, "group"), "reason", reason);

	return o && json_array_append_new(f->unanalysed, o) == 0 ? 0 : -ENOMEM;
}

/* Parses rule i and appends its checks. */
static int plan_rule(struct promfire *f, size_t i)
{
	const char *expr = rule_str(f, i, "expr");
	struct planner pl = {.f = f, .rule = i, .first = f->n_checks};
	struct promql_error err;
	char why[256];
	int r = promql_parse(expr, strlen(expr), &f->trees[i], &err);

	if (r == -ENOMEM)
		return r;
	if (r < 0) {
		snprintf(why, sizeof(why), "readyd cannot parse its expr at byte %zu: %s", err.pos,
		         err.message);
		return not_analysed(f, i, why);
	}
	r = promql_each_selector(f->trees[i], plan_selector, &pl);
	if (r == 0)
		r = promql_each_vector_match(f->trees[i], plan_match, &pl);
	if (r != -E2BIG)
		return r;
	while (f->n_checks > pl.first)
		check_clear(&f->checks[--f->n_checks]);
	promql_free(f->trees[i]);
	f->trees[i] = NULL;
	snprintf(why, sizeof(why), "its expr has more than %d selectors and vector operations",
	         PROMFIRE_MAX_CHECKS);
	return not_analysed(f, i, why);
}

static void next_query(struct promfire *f);

static void finish(struct promfire *f, int err, const char *message)
{
	if (err == 0)
		for (size_t i = 0; i < json_array_size(f->rules); i++)
			if (f->trees[i])
				f->analysed++;
	f->cb(f->userdata, err, message);
}

static int add_finding(struct promfire *f, const struct check *c, const char *reason)
{
	json_t *o = json_pack("{s:s, s:s, s:s, s:s}", "rule", rule_str(f, c->rule, "rule"), "group",
	                      rule_str(f, c->rule, "group"), "reason", reason,
	                      c->kind == CHECK_SELECTOR ? "selector" : "expression", c->text);

	f->cannot[c->rule] = true;
	return o && json_array_append_new(f->findings, o) == 0 ? 0 : -ENOMEM;
}

/* An instant vector's series, or NULL when the answer is not a vector
 * (a scalar side says nothing about matching). */
static json_t *vector_of(json_t *data)
{
	const char *type = json_string_value(json_object_get(data, "resultType"));
	json_t *result = json_object_get(data, "result");

	return type && strcmp(type, "vector") == 0 && json_is_array(result) ? result : NULL;
}

/* A selector without series; with a name and matchers, a second answer
 * says whether the name alone has series (then a matcher excludes them,
 * a typo in a label value more often than not). */
static bool on_selector(struct promfire *f, struct check *c, json_t *v, int *err)
{
	char why[1024];
	int o;

	if (f->phase == 0 && (!v || json_array_size(v) > 0))
		return true;
	if (f->phase == 0 && c->query[1]) {
		f->phase = 1;
		return false;
	}
	o = snprintf(why, sizeof(why), "no series matches %s now or in the last %s", c->text,
	             PROMFIRE_LOOKBACK);
	if (f->phase == 1 && o > 0 && (size_t)o < sizeof(why))
		snprintf(why + o, sizeof(why) - (size_t)o,
		         v && json_array_size(v) > 0
		                 ? "; %s has series, but none with these label values"
		                 : "; no %s series at all",
		         c->name);
	*err = add_finding(f, c, why);
	return true;
}

/* What one answer means for the current check; true when the check is
 * done (the next one may start). */
static bool on_answer(struct promfire *f, struct check *c, json_t *data, int *err)
{
	json_t *v = vector_of(data);
	char why[1024];

	if (c->kind == CHECK_SELECTOR)
		return on_selector(f, c, v, err);
	if (f->phase < 2) {
		json_t **side = f->phase == 0 ? &f->left : &f->right;

		*side = v ? json_incref(v) : NULL;
		f->phase++;
		/* An empty side is not a matching problem (its selectors say
		 * why); a scalar one cannot mismatch. */
		return !*side || json_array_size(*side) == 0;
	}
	/* Only different label names are a rule that can never fire: equal
	 * names with values that differ today may match tomorrow. */
	if (v && json_array_size(v) == 0 &&
	    promql_explain_mismatch(c->op, f->left, f->right, why, sizeof(why)))
		*err = add_finding(f, c, why);
	return true;
}

static void next_check(struct promfire *f)
{
	json_decref(f->left);
	json_decref(f->right);
	f->left = f->right = NULL;
	f->phase = 0;
	f->next++;
}

static void on_query(void *userdata, int err, json_t *data, const char *message)
{
	struct promfire *f = userdata;
	struct check *c = &f->checks[f->next];

	f->call = NULL;
	if (err < 0)
		return finish(f, err, message);
	if (on_answer(f, c, data, &err))
		next_check(f);
	if (err < 0)
		return finish(f, err, "out of memory");
	next_query(f);
}

/* Rules left when the query budget ran out are not analysed. */
static int over_budget(struct promfire *f)
{
	char why[128];

	snprintf(why, sizeof(why), "the analysis stopped after %d queries", PROMFIRE_MAX_QUERIES);
	for (size_t i = f->checks[f->next].rule; i < json_array_size(f->rules); i++) {
		if (!f->trees[i])
			continue;
		promql_free(f->trees[i]);
		f->trees[i] = NULL;
		if (not_analysed(f, i, why) < 0)
			return -ENOMEM;
	}
	f->next = f->n_checks;
	return 0;
}

static void next_query(struct promfire *f)
{
	const char *params[] = {"query", NULL, NULL};
	struct check *c;
	int r;

	/* Once a rule cannot fire, its vector matches are moot. */
	while (f->next < f->n_checks && f->checks[f->next].kind == CHECK_MATCH &&
	       f->cannot[f->checks[f->next].rule])
		f->next++;
	if (f->next < f->n_checks && f->queries >= PROMFIRE_MAX_QUERIES && over_budget(f) < 0)
		return finish(f, -ENOMEM, "out of memory");
	if (f->next >= f->n_checks)
		return finish(f, 0, NULL);
	c = &f->checks[f->next];
	params[1] = c->query[f->phase];
	f->queries++;
	r = promapi_get(f->http, f->sp, "/api/v1/query", params, f->sp->timeout_ms, on_query, f,
	                &f->call);
	if (r < 0)
		finish(f, r, "cannot send a query to Prometheus");
}

static void on_kick(uv_idle_t *h)
{
	struct promfire *f = h->data;

	uv_idle_stop(h);
	next_query(f);
}

static int plan(struct promfire *f)
{
	size_t n = json_array_size(f->rules);
	int r = 0;

	f->trees = calloc(n + 1, sizeof(*f->trees));
	f->cannot = calloc(n + 1, sizeof(*f->cannot));
	f->findings = json_array();
	f->unanalysed = json_array();
	if (!f->trees || !f->cannot || !f->findings || !f->unanalysed)
		return -ENOMEM;
	for (size_t i = 0; r == 0 && i < n; i++)
		r = plan_rule(f, i);
	return r;
}

int promfire_start(uv_loop_t *loop, struct http_client *c, const struct spec_probe *sp,
                   json_t *rules, promfire_cb cb, void *userdata, struct promfire **ret)
{
	struct promfire *f = calloc(1, sizeof(*f));
	int r;

	if (!f)
		return -ENOMEM;
	f->http = c;
	f->sp = sp;
	f->rules = json_incref(rules);
	f->cb = cb;
	f->userdata = userdata;
	f->kick = malloc(sizeof(*f->kick));
	r = f->kick ? plan(f) : -ENOMEM;
	if (r == 0)
		r = uv_idle_init(loop, f->kick);
	if (r < 0) {
		free(f->kick);
		f->kick = NULL;
		promfire_free(f);
		return r;
	}
	f->kick->data = f;
	uv_idle_start(f->kick, on_kick);
	*ret = f;
	return 0;
}

size_t promfire_cannot_fire(const struct promfire *f)
{
	size_t n = 0;

	for (size_t i = 0; i < json_array_size(f->rules); i++)
		n += f->cannot[i];
	return n;
}

size_t promfire_analysed(const struct promfire *f)
{
	return f->analysed;
}

json_t *promfire_findings(const struct promfire *f)
{
	return f->findings;
}

json_t *promfire_unanalysed(const struct promfire *f)
{
	return f->unanalysed;
}

static void free_handle(uv_handle_t *h)
{
	free(h);
}

void promfire_free(struct promfire *f)
{
	if (!f)
		return;
	promapi_cancel(f->call);
	if (f->kick)
		uv_close((uv_handle_t *)f->kick, free_handle);
	for (size_t i = 0; f->trees && i < json_array_size(f->rules); i++)
		promql_free(f->trees[i]);
	for (size_t i = 0; i < f->n_checks; i++)
		check_clear(&f->checks[i]);
	free(f->checks);
	free(f->trees);
	free(f->cannot);
	json_decref(f->left);
	json_decref(f->right);
	json_decref(f->findings);
	json_decref(f->unanalysed);
	json_decref(f->rules);
	free(f);
}
