/* probe_prom_rules: the `prometheus-rules` probe. Asks a Prometheus server
 * for its loaded rules (GET /api/v1/rules) and checks that every
 * `require`d alert exists and that no rule or group reports a health other
 * than "ok" or a lastError; optionally validates local `rule_files` with
 * lib/promrules. Publishes rules, alerts, missing, unhealthy, unevaluated
 * and rule_file_errors; any of the last four above zero fails the probe
 * with a sentence naming them. An answer it cannot read is an error, never
 * a pass.
 *
 * Then it asks whether the alerting rules concerned (the `require`d ones,
 * or all) can fire at all (lib/prom/promfire.h): a selector that matches
 * no series, or an operation between vectors whose label names differ,
 * makes an alert that can never fire however bad things get. Published as
 * cannot_fire (rules), analysed and not_analysed; cannot_fire above zero
 * fails the probe too.
 *
 * A rule Prometheus has not evaluated yet (health "unknown", right after
 * it started or loaded the rules) says nothing about the rule: the probe
 * asks again until its group's first evaluation (bounded by the group's
 * interval and a margin, within the probe's deadline) and only then
 * judges.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/policy/policy.h"
#include "lib/probe/probe.h"
#include "lib/prom/promapi.h"
#include "lib/prom/promfire.h"
#include "lib/prom/promrules.h"
#include "lib/util/util.h"

/* A group's first evaluation comes within one interval of its start; the
 * margin covers the evaluation itself and the poll that sees it. */
#define RULES_EVAL_MARGIN_MS 5000
#define RULES_POLL_MS        500
/* Kept free at the end of the deadline for the last answer (at most a
 * fifth of the deadline). */
#define RULES_RESERVE_MS 10000

struct rules_probe {
	struct probe *p;
	uv_timer_t timer; /* between polls while waiting for evaluations */
	struct promapi_call *call;
	uint64_t t_start; /* uv_now() at start */
	int64_t waited_ms;
	bool cut_short; /* the deadline, not the interval, bounded the wait */
	json_int_t polls;
	json_t *file_reports; /* array of {file, errors, ...} */
	size_t file_errors;
	char first_file_error[256];
	enum probe_state outcome; /* announced once the timer is closed */
	char *why;
	/* the can-fire analysis, after the rules were judged */
	struct promfire *fire;
	char *base_why;  /* what the rules answer showed wrong ("" for nothing) */
	bool base_error; /* ... and that only makes an error */
	/* rule_files are read and checked on the threadpool (lib/policy/policy.h):
	 * the worker only sees what is copied here. */
	uv_work_t work;
	struct policy *files; /* allowed_paths, referenced */
	char **paths;
	size_t n_paths;
	int work_err;
	bool working, orphaned; /* orphaned: the probe was freed meanwhile */
};

/* One rule file, on a worker thread: read through the policy, then
 * checked. A file that cannot be read is one error; its text is never
 * quoted (promrules reports paths and lines only). */
static int check_file(struct rules_probe *rp, const char *path)
{
	struct promrules_stats st = {0};
	json_t *errs = NULL, *rep;
	char why[256], *buf = NULL;
	size_t len = 0;
	int r = policy_read_file(rp->files, path, PROMRULES_MAX_BYTES, &buf, &len, why,
	                         sizeof(why));

	if (r == -ENOMEM)
		return r;
	if (r == 0)
		r = promrules_check(buf, len, &errs, &st);
	free(buf);
	if (r == -ENOMEM)
		return r;
	if (r < 0) {
		errs = json_pack("[{s:s}]", "message", why);
		st.errors = 1;
	}
	if (st.errors > 0 && !rp->first_file_error[0])
		snprintf(rp->first_file_error, sizeof(rp->first_file_error), "%s: %s", path,
		         json_string_value(json_object_get(json_array_get(errs, 0), "message"))
		                 ?: "?");
	rp->file_errors += st.errors;
	rep = json_pack("{s:s, s:I, s:I, s:I, s:I, s:o}", "file", path, "groups",
	                (json_int_t)st.groups, "alerts", (json_int_t)st.alerts, "records",
	                (json_int_t)st.records, "error_count", (json_int_t)st.errors, "errors",
	                errs ? errs : json_array());
	if (!rep || json_array_append_new(rp->file_reports, rep) < 0)
		return -ENOMEM;
	return 0;
}

static void files_work(uv_work_t *w)
{
	struct rules_probe *rp = w->data;

	for (size_t i = 0; rp->work_err == 0 && i < rp->n_paths; i++)
		rp->work_err = check_file(rp, rp->paths[i]);
}

static void rules_release(struct rules_probe *rp)
{
	for (size_t i = 0; i < rp->n_paths; i++)
		free(rp->paths[i]);
	free(rp->paths);
	policy_unref(rp->files);
	json_decref(rp->file_reports);
	promfire_free(rp->fire);
	free(rp->base_why);
	free(rp->why);
	free(rp);
}

static void poll_rules(struct rules_probe *rp);
__attribute__((format(printf, 3, 4))) static void done(struct rules_probe *rp, enum probe_state s,
                                                       const char *fmt, ...);

static void files_done(uv_work_t *w, int status)
{
	struct rules_probe *rp = w->data;
	struct probe *p = rp->p;
	int r = status < 0 ? status : rp->work_err;

	rp->working = false;
	if (rp->orphaned)
		return rules_release(rp);
	if (p->finishing || uv_is_closing((uv_handle_t *)&rp->timer))
		return; /* cancelled meanwhile */
	if (r < 0) {
		done(rp, PROBE_STATE_ERRORED, "cannot check rule_files: %s", strerror(-r));
		return;
	}
	poll_rules(rp); /* on failure it ends the probe itself */
}

/* Copies what the worker needs: the spec may go before it returns. */
static int check_files(struct rules_probe *rp)
{
	const struct spec_probe *sp = rp->p->sp;
	int r;

	rp->file_reports = json_array();
	rp->paths = calloc(sp->n_rule_files + 1, sizeof(*rp->paths));
	if (!rp->file_reports || !rp->paths)
		return -ENOMEM;
	for (size_t i = 0; i < sp->n_rule_files; i++) {
		rp->paths[i] = strdup(sp->rule_files[i]);
		if (!rp->paths[i])
			return -ENOMEM;
		rp->n_paths = i + 1;
	}
	if (rp->n_paths == 0)
		return 0;
	rp->files = policy_ref(http_client_files(rp->p->http));
	rp->work.data = rp;
	r = uv_queue_work(rp->p->loop, &rp->work, files_work, files_done);
	if (r == 0)
		rp->working = true;
	return r;
}

/* health != "ok" or a non-empty lastError (groups or rules). A rule
 * never evaluated is not judged here: it has no health yet. */
static bool unhealthy(json_t *o, const char **ret_health, const char **ret_error)
{
	const char *health = json_string_value(json_object_get(o, "health"));
	const char *err = json_string_value(json_object_get(o, "lastError"));

	*ret_health = health ? health : "";
	*ret_error = err ? err : "";
	if (json_object_get(o, "health") && (!health || strcmp(health, "ok") != 0))
		return true;
	return err && *err;
}

static void add_unhealthy(json_t *list, const char *group, const char *rule, const char *health,
                          const char *error)
{
	json_array_append_new(list, json_pack("{s:s, s:s?, s:s, s:s}", "group", group, "rule", rule,
	                                      "health", health, "error", error));
}

static void add_unevaluated(json_t *list, const char *group, const char *rule, json_t *g)
{
	json_array_append_new(list, json_pack("{s:s, s:s, s:f}", "group", group, "rule", rule,
	                                      "interval_s",
	                                      (double)promapi_group_interval_ms(g) / 1000.0));
}

/* What walk_groups() collects. */
struct rules_seen {
	const struct spec_probe *sp;
	json_t *alerts;          /* name -> true */
	json_t *analyse;         /* [{rule, group, expr}]: alerting rules to analyse */
	json_t *bad;             /* [{group, rule, health, error}] */
	json_t *unevaluated;     /* [{group, rule, interval_s}] */
	int64_t max_interval_ms; /* longest interval of a group with an unevaluated rule */
};

/* The rules whose ability to fire is checked: the required ones, or
 * every alerting rule when none is required; none with can_fire: false.
 * Rules not evaluated or unhealthy are reported as such instead. */
static bool wants_analysis(const struct spec_probe *sp, const char *name)
{
	if (sp->can_fire == 0)
		return false;
	for (size_t i = 0; i < sp->n_require; i++)
		if (strcmp(sp->require[i], name) == 0)
			return true;
	return sp->n_require == 0;
}

static void walk_rule(struct rules_seen *seen, json_t *g, const char *gname, json_t *rule)
{
	const char *name = json_string_value(json_object_get(rule, "name")) ?: "?";
	const char *type = json_string_value(json_object_get(rule, "type")) ?: "";
	const char *health, *err;

	if (strcmp(type, "alerting") == 0)
		json_object_set_new(seen->alerts, name, json_true());
	if (!promapi_rule_evaluated(rule)) {
		add_unevaluated(seen->unevaluated, gname, name, g);
		if (promapi_group_interval_ms(g) > seen->max_interval_ms)
			seen->max_interval_ms = promapi_group_interval_ms(g);
	} else if (unhealthy(rule, &health, &err)) {
		add_unhealthy(seen->bad, gname, name, health, err);
	} else if (strcmp(type, "alerting") == 0 && wants_analysis(seen->sp, name)) {
		json_array_append_new(
		        seen->analyse,
		        json_pack("{s:s, s:s, s:s}", "rule", name, "group", gname, "expr",
		                  json_string_value(json_object_get(rule, "query")) ?: ""));
	}
}

/* Walks data.groups into seen. Returns the number of rules, or -EPROTO
 * when the shape is wrong. */
static int walk_groups(json_t *data, struct rules_seen *seen)
{
	json_t *groups = json_object_get(data, "groups"), *g, *rule;
	const char *health, *err;
	size_t i, k;
	int n = 0;

	if (!json_is_array(groups))
		return -EPROTO;
	json_array_foreach (groups, i, g) {
		const char *gname = json_string_value(json_object_get(g, "name")) ?: "?";
		json_t *rules = json_object_get(g, "rules");

		if (!json_is_array(rules))
			return -EPROTO;
		if (promapi_rule_evaluated(g) && unhealthy(g, &health, &err))
			add_unhealthy(seen->bad, gname, NULL, health, err);
		json_array_foreach (rules, k, rule) {
			n++;
			walk_rule(seen, g, gname, rule);
		}
	}
	return n;
}

static json_t *find_missing(const struct spec_probe *sp, json_t *alerts)
{
	json_t *missing = json_array();

	for (size_t i = 0; missing && i < sp->n_require; i++)
		if (!json_object_get(alerts, sp->require[i]))
			json_array_append_new(missing, json_string(sp->require[i]));
	return missing;
}

/* Appends "; " (unless first) and a formatted clause to buf. */
__attribute__((format(printf, 4, 5))) static void clause(char *buf, size_t len, size_t *o,
                                                         const char *fmt, ...)
{
	va_list ap;
	int w;

	if (*o >= len)
		return;
	if (*o > 0) {
		w = snprintf(buf + *o, len - *o, "; ");
		*o += w > 0 ? (size_t)w : 0;
		if (*o >= len)
			return;
	}
	va_start(ap, fmt);
	w = vsnprintf(buf + *o, len - *o, fmt, ap);
	va_end(ap);
	*o += w > 0 ? (size_t)w : 0;
}

/* One clause per unhealthy rule or group, always with words: Prometheus
 * may report a bad health with an empty lastError. */
static void describe_bad(json_t *v, char *buf, size_t len, size_t *o)
{
	const char *rule = json_string_value(json_object_get(v, "rule"));
	const char *group = json_string_value(json_object_get(v, "group"));
	const char *health = json_string_value(json_object_get(v, "health"));
	const char *err = json_string_value(json_object_get(v, "error"));
	char what[384];

	if (rule)
		snprintf(what, sizeof(what), "rule %s in group %s", rule, group);
	else
		snprintf(what, sizeof(what), "group %s", group);
	if (err && *err && health && strcmp(health, "err") == 0)
		clause(buf, len, o, "unhealthy %s fails to evaluate: %s", what, err);
	else if (err && *err)
		clause(buf, len, o, "unhealthy %s (health %s) reports an error: %s", what,
		       health && *health ? health : "not given", err);
	else
		clause(buf, len, o, "unhealthy %s reports health '%s' and no error message", what,
		       health ? health : "");
}

/* One sentence naming everything that is wrong; "" when nothing is. */
static void describe(const struct rules_probe *rp, json_t *missing, const struct rules_seen *seen,
                     char *buf, size_t len)
{
	size_t o = 0, i, n = json_array_size(seen->unevaluated);
	json_t *v, *first = json_array_get(seen->unevaluated, 0);
	char iv[32];

	buf[0] = '\0';
	json_array_foreach (missing, i, v)
		clause(buf, len, &o, "required alert %s is not loaded", json_string_value(v));
	json_array_foreach (seen->bad, i, v)
		describe_bad(v, buf, len, &o);
	if (n > 0) {
		rd_format_duration(
		        (int64_t)(json_real_value(json_object_get(first, "interval_s")) * 1000.0),
		        iv, sizeof(iv));
		clause(buf, len, &o,
		       "%zu rule%s not evaluated yet after waiting %.1f s for the first evaluation "
		       "(health unknown; first: %s in group %s, which evaluates every %s)%s",
		       n, n == 1 ? " was" : "s were", (double)rp->waited_ms / 1000.0,
		       json_string_value(json_object_get(first, "rule")),
		       json_string_value(json_object_get(first, "group")), iv,
		       rp->cut_short ? ", all the probe's deadline leaves for waiting: raise its "
		                       "timeout above the group's interval"
		                     : "");
	}
	if (rp->file_errors > 0)
		clause(buf, len, &o, "%zu rule file error(s), first: %s", rp->file_errors,
		       rp->first_file_error);
}

static void publish(struct rules_probe *rp, int n, json_t *missing, const struct rules_seen *seen)
{
	struct probe *p = rp->p;

	probe_set_metric(p, "rules", n);
	probe_set_metric(p, "alerts", (double)json_object_size(seen->alerts));
	probe_set_metric(p, "missing", (double)json_array_size(missing));
	probe_set_metric(p, "unhealthy", (double)json_array_size(seen->bad));
	probe_set_metric(p, "unevaluated", (double)json_array_size(seen->unevaluated));
	probe_set_metric(p, "rule_file_errors", (double)rp->file_errors);
	p->details = json_pack("{s:O, s:O, s:O, s:O, s:f, s:I}", "missing", missing, "unhealthy",
	                       seen->bad, "unevaluated", seen->unevaluated, "rule_files",
	                       rp->file_reports, "waited_s", (double)rp->waited_ms / 1000.0,
	                       "polls", rp->polls);
}

static void on_timer_closed(uv_handle_t *h)
{
	struct rules_probe *rp = h->data;

	/* probe_finish() may free rp (ops->free): nothing of rp after it. */
	if (rp->why)
		probe_finish(rp->p, rp->outcome, "%s", rp->why);
	else
		probe_finish(rp->p, rp->outcome, NULL);
}

/* Ends the probe once the timer is closed. */
__attribute__((format(printf, 3, 4))) static void done(struct rules_probe *rp, enum probe_state s,
                                                       const char *fmt, ...)
{
	va_list ap;

	rp->outcome = s;
	if (fmt) {
		va_start(ap, fmt);
		if (vasprintf(&rp->why, fmt, ap) < 0)
			rp->why = NULL;
		va_end(ap);
	}
	uv_timer_stop(&rp->timer);
	uv_close((uv_handle_t *)&rp->timer, on_timer_closed);
}

/* One clause per finding of the analysis. */
static void describe_fire(json_t *findings, char *buf, size_t len)
{
	size_t o = strlen(buf), i;
	json_t *v;

	json_array_foreach (findings, i, v)
		clause(buf, len, &o, "alert %s (group %s) cannot fire: %s",
		       json_string_value(json_object_get(v, "rule")),
		       json_string_value(json_object_get(v, "group")),
		       json_string_value(json_object_get(v, "reason")));
}

/* Failed when something is wrong with the rules; error when the only
 * thing left is rules not evaluated because the deadline cut the wait
 * short, or an analysis that could not be finished: then readyd could not
 * find out. fire_err: the analysis' failure, or NULL. */
static void conclude(struct rules_probe *rp, const char *fire_err)
{
	struct probe *p = rp->p;
	char why[4096];

	snprintf(why, sizeof(why), "%s", rp->base_why);
	if (rp->fire && !fire_err) {
		probe_set_metric(p, "cannot_fire", (double)promfire_cannot_fire(rp->fire));
		probe_set_metric(p, "analysed", (double)promfire_analysed(rp->fire));
		probe_set_metric(p, "not_analysed",
		                 (double)json_array_size(promfire_unanalysed(rp->fire)));
		json_object_set(p->details, "cannot_fire", promfire_findings(rp->fire));
		json_object_set(p->details, "not_analysed", promfire_unanalysed(rp->fire));
		describe_fire(promfire_findings(rp->fire), why, sizeof(why));
	} else if (!rp->fire && p->sp->can_fire != 0) {
		probe_set_metric(p, "cannot_fire", 0);
		probe_set_metric(p, "analysed", 0);
		probe_set_metric(p, "not_analysed", 0);
	}
	if (fire_err && !why[0])
		done(rp, PROBE_STATE_ERRORED, "cannot tell whether the alerts can fire: %s",
		     fire_err);
	else if (fire_err)
		done(rp, PROBE_STATE_FAILED, "%s; cannot tell whether the alerts can fire: %s", why,
		     fire_err);
	else if (!why[0])
		done(rp, PROBE_STATE_PASSED, NULL);
	else if (rp->base_error && strcmp(why, rp->base_why) == 0)
		done(rp, PROBE_STATE_ERRORED, "%s", why);
	else
		done(rp, PROBE_STATE_FAILED, "%s", why);
}

static void on_fire(void *userdata, int err, const char *message)
{
	struct rules_probe *rp = userdata;

	conclude(rp, err < 0 ? message : NULL);
}

static void judge(struct rules_probe *rp, const struct rules_seen *seen, int n)
{
	json_t *missing = n >= 0 ? find_missing(rp->p->sp, seen->alerts) : NULL;
	char why[2048];
	int r;

	if (n < 0 || !missing) {
		done(rp, PROBE_STATE_ERRORED,
		     n == -EPROTO
		             ? "%s/api/v1/rules: the answer has no groups/rules lists; is this "
		               "a Prometheus server?"
		             : "%s: out of memory",
		     rp->p->sp->prometheus);
		return;
	}
	publish(rp, n, missing, seen);
	describe(rp, missing, seen, why, sizeof(why));
	rp->base_error = json_array_size(missing) == 0 && json_array_size(seen->bad) == 0 &&
	                 rp->file_errors == 0 && rp->cut_short;
	json_decref(missing);
	rp->base_why = strdup(why);
	if (!rp->base_why) {
		done(rp, PROBE_STATE_ERRORED, "out of memory");
		return;
	}
	if (json_array_size(seen->analyse) == 0)
		return conclude(rp, NULL);
	r = promfire_start(rp->p->loop, rp->p->http, rp->p->sp, seen->analyse, on_fire, rp,
	                   &rp->fire);
	if (r < 0)
		done(rp, PROBE_STATE_ERRORED, "cannot analyse the alerting rules: %s",
		     strerror(-r));
}

/* How long to wait for first evaluations: the longest interval among the
 * groups concerned and a margin, within the probe's deadline (keeping
 * time for the last answer). */
static int64_t wait_limit(struct rules_probe *rp, int64_t interval_ms)
{
	int64_t want = interval_ms + RULES_EVAL_MARGIN_MS, dl = rp->p->deadline_ms, room;

	if (dl <= 0)
		return want;
	room = dl - (dl / 5 < RULES_RESERVE_MS ? dl / 5 : RULES_RESERVE_MS);
	rp->cut_short = room < want;
	return room < want ? room : want;
}

static void poll_rules(struct rules_probe *rp);

static void on_tick(uv_timer_t *t)
{
	poll_rules(t->data);
}

/* Rules Prometheus has not evaluated yet are not judged at once: right
 * after it starts, every rule says "unknown" until its group's first
 * evaluation. Polls again until they have been, or the limit passed. */
static bool wait_more(struct rules_probe *rp, const struct rules_seen *seen)
{
	int64_t elapsed = (int64_t)(uv_now(rp->p->loop) - rp->t_start), limit, delay;

	rp->waited_ms = elapsed;
	if (json_array_size(seen->unevaluated) == 0)
		return false;
	limit = wait_limit(rp, seen->max_interval_ms);
	if (elapsed >= limit)
		return false;
	delay = limit - elapsed < RULES_POLL_MS ? limit - elapsed : RULES_POLL_MS;
	uv_timer_start(&rp->timer, on_tick, (uint64_t)delay, 0);
	return true;
}

static void on_rules(void *userdata, int err, json_t *data, const char *message)
{
	struct rules_probe *rp = userdata;
	struct rules_seen seen = {.sp = rp->p->sp,
	                          .alerts = json_object(),
	                          .analyse = json_array(),
	                          .bad = json_array(),
	                          .unevaluated = json_array()};
	int n = -ENOMEM;

	rp->call = NULL;
	rp->polls++;
	if (err < 0) {
		done(rp, PROBE_STATE_ERRORED, "%s", message);
		goto out;
	}
	if (seen.alerts && seen.analyse && seen.bad && seen.unevaluated)
		n = walk_groups(data, &seen);
	if (n >= 0 && wait_more(rp, &seen))
		goto out;
	judge(rp, &seen, n);
out:
	json_decref(seen.alerts);
	json_decref(seen.analyse);
	json_decref(seen.bad);
	json_decref(seen.unevaluated);
}

static void poll_rules(struct rules_probe *rp)
{
	const struct spec_probe *sp = rp->p->sp;
	int r = promapi_get(rp->p->http, sp, "/api/v1/rules", NULL, sp->timeout_ms, on_rules, rp,
	                    &rp->call);

	if (r < 0)
		done(rp, PROBE_STATE_ERRORED, "cannot ask %s for rules: %s", sp->prometheus,
		     strerror(-r));
}

static int rules_start(struct probe *p)
{
	struct rules_probe *rp = calloc(1, sizeof(*rp));
	int r;

	if (!rp)
		return -ENOMEM;
	rp->p = p;
	r = check_files(rp);
	if (r < 0) {
		rules_release(rp); /* nothing was queued */
		return r;
	}
	uv_timer_init(p->loop, &rp->timer);
	rp->timer.data = rp;
	rp->t_start = uv_now(p->loop);
	p->impl = rp;
	if (!rp->working)
		poll_rules(rp); /* on failure it ends the probe itself */
	return 0;
}

static void rules_cancel(struct probe *p)
{
	struct rules_probe *rp = p->impl;

	if (!rp) {
		probe_finish(p, PROBE_STATE_CANCELLED, NULL);
		return;
	}
	if (uv_is_closing((uv_handle_t *)&rp->timer))
		return; /* already ending */
	promapi_cancel(rp->call);
	rp->call = NULL;
	promfire_free(rp->fire);
	rp->fire = NULL;
	done(rp, PROBE_STATE_CANCELLED, NULL);
}

static void rules_free(struct probe *p)
{
	struct rules_probe *rp = p->impl;

	p->impl = NULL;
	if (rp && rp->working)
		rp->orphaned = true; /* files_done releases it */
	else if (rp)
		rules_release(rp);
}

/* --- the type: its spec fields, rules, metrics and ops --- */

/* One field per line, aligned by hand: read as a schema more than as
 * code. */
/* clang-format off */
static const struct spec_field fields[] = {
	SPEC_F_COMMON, SPEC_F_PROMETHEUS, SPEC_F_HEADERS, SPEC_F_REQUIRE,
	{.key = "rule_files", .kind = FK_STRING_LIST, .flags = SPEC_FIELD_FILE,
	 .off = SPEC_P(rule_files), .count_off = SPEC_P(n_rule_files), .max = SPEC_MAX_LIST,
	 .check = spec_check_abs_path},
	{.key = "can_fire", .kind = FK_TRISTATE, .off = SPEC_P(can_fire)},
	SPEC_F_TLS_CLIENT,
};
/* clang-format on */

static const struct probe_metric_def metrics[] = {
        {"rules", "rules", PROBE_SAMPLES_NONE},
        {"alerts", "rules", PROBE_SAMPLES_NONE},
        {"missing", "alerts", PROBE_SAMPLES_NONE},
        {"unhealthy", "rules", PROBE_SAMPLES_NONE},
        {"unevaluated", "rules", PROBE_SAMPLES_NONE},
        {"rule_file_errors", "errors", PROBE_SAMPLES_NONE},
        {"cannot_fire", "rules", PROBE_SAMPLES_NONE},
        {"analysed", "rules", PROBE_SAMPLES_NONE},
        {"not_analysed", "rules", PROBE_SAMPLES_NONE},
};

const struct probe_type_def probe_type_prom_rules = {
        .name = "prometheus-rules",
        .section = "Monitoring",
        .fields = fields,
        .n_fields = RD_ARRAY_SIZE(fields),
        .deadline_fixed_ms = PROBE_DEFAULT_DEADLINE_MS,
        .metrics = metrics,
        .n_metrics = RD_ARRAY_SIZE(metrics),
        .ops =
                {
                        .start = rules_start,
                        .cancel = rules_cancel,
                        .free = rules_free,
                },
};
