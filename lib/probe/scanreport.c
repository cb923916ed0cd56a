/* scanreport: SARIF 2.1.0 and Trivy JSON into counts by severity, by rule
 * and the most severe findings (scanreport.h). Pure functions of the
 * bytes; nothing here reads a file or the network. A part of the report
 * that is there but of the wrong shape is an error naming its path: a
 * count built on a report the parser half understood would read as a
 * clean scan.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/probe/scanreport.h"
#include "lib/util/util.h"

static const char *const sev_names[_SCANREPORT_SEV_MAX] = {"critical", "high", "medium", "low",
                                                           "unknown"};

const char *scanreport_severity_name(enum scanreport_severity s)
{
	return (unsigned)s < _SCANREPORT_SEV_MAX ? sev_names[s] : "unknown";
}

int scanreport_format_from_string(const char *s, enum scanreport_format *ret)
{
	if (!s || !strcmp(s, "auto"))
		*ret = SCANREPORT_AUTO;
	else if (!strcmp(s, "sarif"))
		*ret = SCANREPORT_SARIF;
	else if (!strcmp(s, "trivy"))
		*ret = SCANREPORT_TRIVY;
	else
		return -EINVAL;
	return 0;
}

enum scanreport_severity scanreport_severity_of_score(double score)
{
	if (!(score > 0))
		return SCANREPORT_UNKNOWN;
	if (score >= 9)
		return SCANREPORT_CRITICAL;
	if (score >= 7)
		return SCANREPORT_HIGH;
	if (score >= 4)
		return SCANREPORT_MEDIUM;
	return SCANREPORT_LOW;
}

/* One finding, its strings borrowed from the document. */
struct finding {
	enum scanreport_severity sev;
	const char *id, *kind, *package, *location, *message;
	long line;
};

struct acc {
	long counts[_SCANREPORT_SEV_MAX];
	long total;
	json_t *by_rule;
	bool rules_truncated;
	struct finding top[SCANREPORT_MAX_TOP];
	size_t n_top;
	char *why;
	size_t whylen;
};

static int bad(struct acc *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int bad(struct acc *a, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(a->why, a->whylen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* Keeps the SCANREPORT_MAX_TOP most severe, earlier first among equals. */
static void keep_top(struct acc *a, const struct finding *f)
{
	size_t at = a->n_top;

	while (at > 0 && a->top[at - 1].sev > f->sev)
		at--;
	if (at >= SCANREPORT_MAX_TOP)
		return;
	if (a->n_top < SCANREPORT_MAX_TOP)
		a->n_top++;
	memmove(&a->top[at + 1], &a->top[at], (a->n_top - 1 - at) * sizeof(a->top[0]));
	a->top[at] = *f;
}

static int count_rule(struct acc *a, const struct finding *f)
{
	const char *id = f->id ? f->id : "(no rule)";
	json_t *r = json_object_get(a->by_rule, id);
	enum scanreport_severity worst = f->sev;

	if (!r && json_object_size(a->by_rule) >= SCANREPORT_MAX_RULES) {
		a->rules_truncated = true;
		return 0;
	}
	if (r) {
		const char *was = json_string_value(json_object_get(r, "severity"));

		for (int s = 0; s < _SCANREPORT_SEV_MAX; s++)
			if (was && !strcmp(was, sev_names[s]) &&
			    (enum scanreport_severity)s < worst)
				worst = (enum scanreport_severity)s;
		return json_object_set_new(
		               r, "count",
		               json_integer(json_integer_value(json_object_get(r, "count")) + 1)) <
		                               0 ||
		                       json_object_set_new(r, "severity",
		                                           json_string(sev_names[worst])) < 0
		               ? -ENOMEM
		               : 0;
	}
	r = json_pack("{s:s, s:i}", "severity", sev_names[worst], "count", 1);
	return json_object_set_new(a->by_rule, id, r) < 0 ? -ENOMEM : 0;
}

static int add_finding(struct acc *a, const struct finding *f)
{
	a->counts[f->sev]++;
	a->total++;
	keep_top(a, f);
	return count_rule(a, f);
}

/* A member that must be a string when present: 0 (*ret NULL if absent). */
static int opt_string(struct acc *a, json_t *obj, const char *key, const char *path,
                      const char **ret)
{
	json_t *v = json_object_get(obj, key);

	*ret = NULL;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v))
		return bad(a, "%s.%s must be a string", path, key);
	*ret = json_string_value(v);
	return 0;
}

/* A member that must be an array when present (null or absent: none). */
static int opt_array(struct acc *a, json_t *obj, const char *key, const char *path, json_t **ret)
{
	json_t *v = json_object_get(obj, key);

	*ret = NULL;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_array(v))
		return bad(a, "%s.%s must be an array", path, key);
	*ret = v;
	return 0;
}

/* ---- SARIF 2.1.0 ---- */

static int sarif_level(struct acc *a, const char *level, const char *path,
                       enum scanreport_severity *ret)
{
	static const char *const levels[] = {"error", "warning", "note", "none"};
	static const enum scanreport_severity sev[] = {SCANREPORT_HIGH, SCANREPORT_MEDIUM,
	                                               SCANREPORT_LOW, SCANREPORT_UNKNOWN};

	for (size_t i = 0; i < RD_ARRAY_SIZE(levels); i++) {
		if (!strcmp(level, levels[i])) {
			*ret = sev[i];
			return 0;
		}
	}
	return bad(a, "%s is not one of error, warning, note, none", path);
}

/* The rule's properties.security-severity (a number or a numeric string)
 * as a severity; 1 when the rule has one, 0 when not. */
static int rule_score(struct acc *a, json_t *rule, const char *path, enum scanreport_severity *ret)
{
	json_t *v = json_object_get(json_object_get(rule, "properties"), "security-severity");
	double score;

	if (!v)
		return 0;
	if (json_is_number(v)) {
		score = json_number_value(v);
	} else if (!json_is_string(v) || rd_parse_double(json_string_value(v), &score) < 0) {
		return bad(a, "%s.properties.security-severity must be a number such as \"7.5\"",
		           path);
	}
	if (!isfinite(score) || score < 0 || score > 10)
		return bad(a, "%s.properties.security-severity must be between 0 and 10", path);
	*ret = scanreport_severity_of_score(score);
	return 1;
}

/* The rule a result refers to (ruleIndex, else ruleId among the
 * driver's rules), or NULL; *ret_path its path for messages. */
static json_t *sarif_rule(json_t *rules, json_t *result, const char *rule_id, size_t run,
                          char *rpath, size_t len)
{
	json_t *idx = json_object_get(result, "ruleIndex"), *r;
	size_t i;

	if (json_is_integer(idx) && json_integer_value(idx) >= 0 &&
	    (size_t)json_integer_value(idx) < json_array_size(rules)) {
		i = (size_t)json_integer_value(idx);
		snprintf(rpath, len, "runs[%zu].tool.driver.rules[%zu]", run, i);
		return json_array_get(rules, i);
	}
	json_array_foreach (rules, i, r) {
		const char *id = json_string_value(json_object_get(r, "id"));

		if (rule_id && id && !strcmp(id, rule_id)) {
			snprintf(rpath, len, "runs[%zu].tool.driver.rules[%zu]", run, i);
			return r;
		}
	}
	return NULL;
}

static void sarif_location(json_t *result, struct finding *f)
{
	json_t *pl = json_object_get(json_array_get(json_object_get(result, "locations"), 0),
	                             "physicalLocation");
	json_t *line = json_object_get(json_object_get(pl, "region"), "startLine");

	f->location =
	        json_string_value(json_object_get(json_object_get(pl, "artifactLocation"), "uri"));
	f->line = json_is_integer(line) ? (long)json_integer_value(line) : 0;
}

/* The severity of one result: the rule's security-severity, else the
 * result's level, else the rule's defaultConfiguration.level, else
 * "warning" (SARIF's default). */
static int sarif_severity(struct acc *a, json_t *rule, const char *rpath, json_t *result,
                          const char *path, enum scanreport_severity *ret)
{
	const char *level = NULL;
	char lpath[160];
	int r = rule ? rule_score(a, rule, rpath, ret) : 0;

	if (r != 0)
		return r < 0 ? r : 0;
	snprintf(lpath, sizeof(lpath), "%s.level", path);
	if (json_object_get(result, "level")) {
		if (!json_is_string(json_object_get(result, "level")))
			return bad(a, "%s must be a string", lpath);
		level = json_string_value(json_object_get(result, "level"));
	} else if (rule) {
		level = json_string_value(
		        json_object_get(json_object_get(rule, "defaultConfiguration"), "level"));
		snprintf(lpath, sizeof(lpath), "%s.defaultConfiguration.level", rpath);
	}
	return sarif_level(a, level ? level : "warning", lpath, ret);
}

static int sarif_result(struct acc *a, json_t *rules, json_t *result, size_t run, size_t i)
{
	char path[96], rpath[96] = "";
	struct finding f = {.kind = "result"};
	const char *kind = NULL;
	json_t *rule;
	int r;

	snprintf(path, sizeof(path), "runs[%zu].results[%zu]", run, i);
	if (!json_is_object(result))
		return bad(a, "%s must be an object", path);
	if ((r = opt_string(a, result, "ruleId", path, &f.id)) < 0 ||
	    (r = opt_string(a, result, "kind", path, &kind)) < 0)
		return r;
	/* kind "pass" and "notApplicable" are checks that found nothing. */
	if (kind && (!strcmp(kind, "pass") || !strcmp(kind, "notApplicable")))
		return 0;
	rule = sarif_rule(rules, result, f.id, run, rpath, sizeof(rpath));
	if (!f.id && rule)
		f.id = json_string_value(json_object_get(rule, "id"));
	r = sarif_severity(a, rule, rpath, result, path, &f.sev);
	if (r < 0)
		return r;
	f.message = json_string_value(json_object_get(json_object_get(result, "message"), "text"));
	sarif_location(result, &f);
	return add_finding(a, &f);
}

/* A run whose invocation says it failed is no report of a clean target. */
static int sarif_run_succeeded(struct acc *a, json_t *run, const char *path)
{
	json_t *invocations = json_object_get(run, "invocations"), *inv;
	size_t i;

	json_array_foreach (invocations, i, inv) {
		if (json_is_false(json_object_get(inv, "executionSuccessful")))
			return bad(
			        a,
			        "%s.invocations[%zu].executionSuccessful is false: the tool failed",
			        path, i);
	}
	return 0;
}

static int sarif_run(struct acc *a, json_t *run, size_t k, const char **tool)
{
	json_t *driver = json_object_get(json_object_get(run, "tool"), "driver");
	json_t *rules, *results, *res;
	char path[64];
	size_t i;
	int r;

	snprintf(path, sizeof(path), "runs[%zu]", k);
	if (!json_is_object(run))
		return bad(a, "%s must be an object", path);
	if (!json_is_object(driver))
		return bad(a, "%s.tool.driver is missing (SARIF names the tool of every run)",
		           path);
	if (!*tool)
		*tool = json_string_value(json_object_get(driver, "name"));
	snprintf(path, sizeof(path), "runs[%zu].tool.driver", k);
	if ((r = opt_array(a, driver, "rules", path, &rules)) < 0)
		return r;
	snprintf(path, sizeof(path), "runs[%zu]", k);
	if ((r = sarif_run_succeeded(a, run, path)) < 0)
		return r;
	if ((r = opt_array(a, run, "results", path, &results)) < 0)
		return r;
	/* SARIF: results absent or null mean the tool did not produce any
	 * (it failed); [] means it ran and found nothing. */
	if (!results)
		return bad(a, "%s.results is missing or null: the tool produced no results", path);
	json_array_foreach (results, i, res) {
		r = sarif_result(a, rules, res, k, i);
		if (r < 0)
			return r;
	}
	return 0;
}

static int parse_sarif(struct acc *a, json_t *doc, const char **tool)
{
	json_t *runs = json_object_get(doc, "runs"), *run;
	const char *version = json_string_value(json_object_get(doc, "version"));
	size_t i;
	int r;

	if (version && strcmp(version, "2.1.0") != 0)
		return bad(a, "version is not 2.1.0, the SARIF version read");
	if (!json_is_array(runs))
		return bad(a, "runs is missing or not an array: not a SARIF log");
	if (json_array_size(runs) == 0)
		return bad(a, "runs is empty: the log holds no analysis");
	json_array_foreach (runs, i, run) {
		r = sarif_run(a, run, i, tool);
		if (r < 0)
			return r;
	}
	return 0;
}

/* ---- Trivy ---- */

static int trivy_severity(struct acc *a, json_t *item, const char *path,
                          enum scanreport_severity *ret)
{
	static const char *const names[] = {"CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN"};
	const char *s = json_string_value(json_object_get(item, "Severity"));

	for (size_t i = 0; s && i < RD_ARRAY_SIZE(names); i++) {
		if (!strcmp(s, names[i])) {
			*ret = (enum scanreport_severity)i;
			return 0;
		}
	}
	if (!s)
		return bad(a, "%s.Severity is missing or not a string", path);
	return bad(a, "%s.Severity is not one of CRITICAL, HIGH, MEDIUM, LOW, UNKNOWN", path);
}

/* Which members name a finding of each list Trivy writes. */
struct trivy_list {
	const char *key, *kind, *id, *id2, *package, *message;
};

static const struct trivy_list trivy_lists[] = {
        {"Vulnerabilities", "vulnerability", "VulnerabilityID", NULL, "PkgName", "Title"},
        {"Misconfigurations", "misconfiguration", "ID", "AVDID", NULL, "Title"},
        {"Secrets", "secret", "RuleID", NULL, NULL, "Title"},
};

static int trivy_item(struct acc *a, const struct trivy_list *l, json_t *item, const char *target,
                      const char *path)
{
	struct finding f = {.kind = l->kind, .location = target};
	const char *status = json_string_value(json_object_get(item, "Status"));
	json_t *line = json_object_get(item, "StartLine");
	int r;

	if (!json_is_object(item))
		return bad(a, "%s must be an object", path);
	/* A misconfiguration check that passed is not a finding. */
	if (status && !strcmp(status, "PASS"))
		return 0;
	if ((r = opt_string(a, item, l->id, path, &f.id)) < 0)
		return r;
	if (!f.id && l->id2 && (r = opt_string(a, item, l->id2, path, &f.id)) < 0)
		return r;
	if (!f.id)
		return bad(a, "%s.%s is missing", path, l->id);
	if (l->package && (r = opt_string(a, item, l->package, path, &f.package)) < 0)
		return r;
	if ((r = opt_string(a, item, l->message, path, &f.message)) < 0)
		return r;
	f.line = json_is_integer(line) ? (long)json_integer_value(line) : 0;
	r = trivy_severity(a, item, path, &f.sev);
	return r < 0 ? r : add_finding(a, &f);
}

static int trivy_result(struct acc *a, json_t *res, size_t k)
{
	char path[64], ipath[128];
	const char *target = NULL;
	json_t *list, *item;
	size_t i;
	int r;

	snprintf(path, sizeof(path), "Results[%zu]", k);
	if (!json_is_object(res))
		return bad(a, "%s must be an object", path);
	if ((r = opt_string(a, res, "Target", path, &target)) < 0)
		return r;
	for (size_t l = 0; l < RD_ARRAY_SIZE(trivy_lists); l++) {
		if ((r = opt_array(a, res, trivy_lists[l].key, path, &list)) < 0)
			return r;
		json_array_foreach (list, i, item) {
			snprintf(ipath, sizeof(ipath), "%s.%s[%zu]", path, trivy_lists[l].key, i);
			r = trivy_item(a, &trivy_lists[l], item, target, ipath);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

static int parse_trivy(struct acc *a, json_t *doc)
{
	json_t *results, *res;
	size_t i;
	int r;

	if (!json_object_get(doc, "Results") && !json_object_get(doc, "SchemaVersion"))
		return bad(a, "Results is missing: not a Trivy JSON report");
	if ((r = opt_array(a, doc, "Results", "", &results)) < 0)
		return bad(a, "Results must be an array");
	json_array_foreach (results, i, res) {
		r = trivy_result(a, res, i);
		if (r < 0)
			return r;
	}
	return 0;
}

/* ---- the summary ---- */

static json_t *finding_json(const struct finding *f)
{
	json_t *o = json_pack("{s:s?, s:s, s:s}", "id", f->id, "severity", sev_names[f->sev],
	                      "kind", f->kind);
	char msg[512];

	if (!o)
		return NULL;
	if (f->package)
		json_object_set_new(o, "package", json_string(f->package));
	if (f->location)
		json_object_set_new(o, "location", json_string(f->location));
	if (f->line > 0)
		json_object_set_new(o, "line", json_integer(f->line));
	if (f->message) {
		/* Messages can be long; details are for people. */
		snprintf(msg, sizeof(msg), "%s", f->message);
		json_object_set_new(o, "message", json_string(msg));
	}
	return o;
}

static json_t *summary(struct acc *a, const char *format, const char *tool)
{
	json_t *top = json_array(), *o;

	o = json_pack("{s:s, s:s?, s:I, s:b, s:o}", "format", format, "tool", tool, "total",
	              (json_int_t)a->total, "rules_truncated", a->rules_truncated, "by_rule",
	              json_incref(a->by_rule));
	if (!o || !top) {
		json_decref(o);
		json_decref(top);
		return NULL;
	}
	for (int s = 0; s < _SCANREPORT_SEV_MAX; s++)
		json_object_set_new(o, sev_names[s], json_integer(a->counts[s]));
	for (size_t i = 0; i < a->n_top; i++)
		json_array_append_new(top, finding_json(&a->top[i]));
	json_object_set_new(o, "top", top);
	return o;
}

static int detect(json_t *doc, enum scanreport_format *fmt)
{
	if (*fmt != SCANREPORT_AUTO)
		return 0;
	if (json_object_get(doc, "runs") && json_object_get(doc, "Results"))
		return -EINVAL; /* which one is the report is not for readyd to guess */
	if (json_object_get(doc, "runs"))
		*fmt = SCANREPORT_SARIF;
	else if (json_object_get(doc, "Results") || json_object_get(doc, "SchemaVersion"))
		*fmt = SCANREPORT_TRIVY;
	else
		return -EINVAL;
	return 0;
}

int scanreport_parse(const char *buf, size_t len, enum scanreport_format fmt, json_t **ret,
                     char *why, size_t whylen)
{
	struct acc a = {.why = why, .whylen = whylen};
	const char *tool = NULL;
	json_error_t jerr;
	json_t *doc, *o;
	int r;

	if (len > SCANREPORT_MAX_BYTES) {
		snprintf(why, whylen, "the report has %zu bytes, more than the %d read", len,
		         SCANREPORT_MAX_BYTES);
		return -EFBIG;
	}
	/* A repeated key would let a later, empty member hide findings. */
	doc = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!doc) {
		/* The position only: jansson's text quotes the bytes it met, and a
		 * file's content never appears in a message. */
		snprintf(why, whylen, "not JSON (line %d, column %d)", jerr.line, jerr.column);
		return -EINVAL;
	}
	r = json_is_object(doc) ? detect(doc, &fmt) : -EINVAL;
	if (r < 0) {
		snprintf(why, whylen,
		         "neither SARIF (runs) nor a Trivy JSON report (Results), or both");
		goto out;
	}
	a.by_rule = json_object();
	if (!a.by_rule) {
		r = -ENOMEM;
		goto out;
	}
	r = fmt == SCANREPORT_SARIF ? parse_sarif(&a, doc, &tool) : parse_trivy(&a, doc);
	if (r == 0) {
		o = summary(&a, fmt == SCANREPORT_SARIF ? "sarif" : "trivy",
		            fmt == SCANREPORT_SARIF ? tool : "Trivy");
		if (o)
			*ret = o;
		else
			r = -ENOMEM;
	}
out:
	json_decref(a.by_rule);
	json_decref(doc);
	return r;
}
