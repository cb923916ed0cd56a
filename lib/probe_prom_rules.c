/* probe_prom_rules: the `prometheus-rules` probe. Asks a Prometheus server
 * for its loaded rules (GET /api/v1/rules) and checks that every
 * `require`d alert exists and that no rule or group reports a health other
 * than "ok" or a lastError; optionally validates local `rule_files` with
 * lib/promrules. Publishes rules, alerts, missing, unhealthy and
 * rule_file_errors; any of the last three above zero fails the probe with
 * the names. An answer it cannot read is an error, never a pass.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "probe.h"
#include "promapi.h"
#include "promrules.h"

struct rules_probe {
	struct probe *p;
	struct promapi_call *call;
	json_t *file_reports; /* array of {file, errors, ...} */
	size_t file_errors;
	char first_file_error[256];
};

/* Validates every rule_files entry; read failures count as errors too. */
static int check_files(struct rules_probe *rp)
{
	const struct spec_probe *sp = rp->p->sp;

	rp->file_reports = json_array();
	if (!rp->file_reports)
		return -ENOMEM;
	for (size_t i = 0; i < sp->n_rule_files; i++) {
		const char *path = sp->rule_files[i];
		struct promrules_stats st = {0};
		json_t *errs = NULL, *rep;
		int r = promrules_check_file(path, &errs, &st);

		if (r == -ENOMEM)
			return r;
		if (r < 0) {
			errs = json_pack("[{s:s}]", "message", "cannot read the file");
			json_object_set_new(json_array_get(errs, 0), "message",
			                    json_string(strerror(-r)));
			st.errors = 1;
		}
		if (st.errors > 0 && !rp->first_file_error[0])
			snprintf(rp->first_file_error, sizeof(rp->first_file_error), "%s: %s", path,
			         json_string_value(
			                 json_object_get(json_array_get(errs, 0), "message"))
			                 ?: "?");
		rp->file_errors += st.errors;
		rep = json_pack("{s:s, s:I, s:I, s:I, s:I, s:o}", "file", path, "groups",
		                (json_int_t)st.groups, "alerts", (json_int_t)st.alerts, "records",
		                (json_int_t)st.records, "error_count", (json_int_t)st.errors,
		                "errors", errs ? errs : json_array());
		if (!rep || json_array_append_new(rp->file_reports, rep) < 0)
			return -ENOMEM;
	}
	return 0;
}

/* health != "ok" or a non-empty lastError (groups or rules). */
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

/* Walks data.groups; fills alerts (name -> true) and the unhealthy list.
 * Returns the number of rules, or -EPROTO when the shape is wrong. */
static int walk_groups(json_t *data, json_t *alerts, json_t *bad)
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
		if (unhealthy(g, &health, &err))
			add_unhealthy(bad, gname, NULL, health, err);
		json_array_foreach (rules, k, rule) {
			const char *name = json_string_value(json_object_get(rule, "name")) ?: "?";
			const char *type = json_string_value(json_object_get(rule, "type")) ?: "";

			n++;
			if (strcmp(type, "alerting") == 0)
				json_object_set_new(alerts, name, json_true());
			if (unhealthy(rule, &health, &err))
				add_unhealthy(bad, gname, name, health, err);
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

/* One sentence naming everything that is wrong. */
static void describe(const struct rules_probe *rp, json_t *missing, json_t *bad, char *buf,
                     size_t len)
{
	size_t o = 0, i;
	json_t *v;

	buf[0] = '\0';
	json_array_foreach (missing, i, v)
		if (o < len)
			o += (size_t)snprintf(buf + o, len - o, "%s%s",
			                      i ? ", " : "missing alerts: ", json_string_value(v));
	json_array_foreach (bad, i, v)
		if (o < len)
			o += (size_t)snprintf(
			        buf + o, len - o, "%sunhealthy rule %s in group %s (health %s): %s",
			        o ? "; " : "",
			        json_string_value(json_object_get(v, "rule")) ?: "(group)",
			        json_string_value(json_object_get(v, "group")),
			        json_string_value(json_object_get(v, "health")),
			        json_string_value(json_object_get(v, "error")));
	if (rp->file_errors > 0 && o < len)
		snprintf(buf + o, len - o, "%s%zu rule file error(s), first: %s", o ? "; " : "",
		         rp->file_errors, rp->first_file_error);
}

static void judge(struct rules_probe *rp, json_t *data)
{
	struct probe *p = rp->p;
	json_t *alerts = json_object(), *bad = json_array(), *missing = NULL;
	char why[1024];
	int n = alerts && bad ? walk_groups(data, alerts, bad) : -ENOMEM;

	if (n >= 0)
		missing = find_missing(p->sp, alerts);
	if (n < 0 || !missing) {
		probe_finish(p, PROBE_ERRORED,
		             n == -EPROTO ? "%s/api/v1/rules: the answer has no groups/rules "
		                            "lists; is this a Prometheus server?"
		                          : "%s: out of memory",
		             p->sp->prometheus);
		goto out;
	}
	probe_set_metric(p, "rules", n);
	probe_set_metric(p, "alerts", (double)json_object_size(alerts));
	probe_set_metric(p, "missing", (double)json_array_size(missing));
	probe_set_metric(p, "unhealthy", (double)json_array_size(bad));
	probe_set_metric(p, "rule_file_errors", (double)rp->file_errors);
	p->details = json_pack("{s:O, s:O, s:O}", "missing", missing, "unhealthy", bad,
	                       "rule_files", rp->file_reports);
	describe(rp, missing, bad, why, sizeof(why));
	if (why[0])
		probe_finish(p, PROBE_FAILED, "%s", why);
	else
		probe_finish(p, PROBE_PASSED, NULL);
out:
	json_decref(alerts);
	json_decref(bad);
	json_decref(missing);
}

static void on_rules(void *userdata, int err, json_t *data, const char *message)
{
	struct rules_probe *rp = userdata;

	rp->call = NULL;
	if (err < 0)
		probe_finish(rp->p, PROBE_ERRORED, "%s", message);
	else
		judge(rp, data);
}

static int rules_start(struct probe *p)
{
	struct rules_probe *rp = calloc(1, sizeof(*rp));
	int r;

	if (!rp)
		return -ENOMEM;
	rp->p = p;
	p->impl = rp;
	r = check_files(rp);
	if (r == 0)
		r = promapi_get(p->http, p->sp, "/api/v1/rules", NULL, p->sp->timeout_ms, on_rules,
		                rp, &rp->call);
	if (r < 0) {
		json_decref(rp->file_reports);
		p->impl = NULL;
		free(rp);
	}
	return r;
}

static void rules_cancel(struct probe *p)
{
	struct rules_probe *rp = p->impl;

	if (rp) {
		promapi_cancel(rp->call);
		rp->call = NULL;
	}
	probe_finish(p, PROBE_CANCELLED, NULL);
}

static void rules_free(struct probe *p)
{
	struct rules_probe *rp = p->impl;

	if (rp)
		json_decref(rp->file_reports);
	free(rp);
	p->impl = NULL;
}

const struct probe_ops probe_prom_rules_ops = {
        .type = PROBE_PROM_RULES,
        .start = rules_start,
        .cancel = rules_cancel,
        .free = rules_free,
};
