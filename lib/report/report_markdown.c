/* report_markdown: the run as a readiness_report.md (see
 * report.h): verdict first, then one section per concern with its probes
 * and gates, then the checklist and the waivers used. Also home of the
 * probe-type -> section lookup (each type declares its section in
 * lib/probe/probe_<type>.c) the HTML and JUnit reports share.
 *
 * Pure: reads only the run JSON. Every string that came from a spec, a
 * target or an error goes through md_text(), so markup in it is shown,
 * never interpreted.
 */
#include <math.h>
#include <string.h>

#include "lib/gate/gate.h"
#include "lib/probe/probe.h"
#include "lib/report/report.h"
#include "lib/report/svg.h"
#include "lib/util/util.h"
#include "lib/util/json_text.h"

static const char *const sections[] = {"Performance", "Monitoring", "Incident response", "Rollback",
                                       "Security"};

const char *report_section_of_type(const char *t)
{
	enum probe_type pt;

	if (t && probe_type_from_string(t, &pt) == 0 && probe_type_get(pt)->section)
		return probe_type_get(pt)->section;
	return "Monitoring"; /* a generic check of something that runs */
}

/* Is section one of the fixed ones, or of a type before type n? */
static bool section_listed(const char *section, size_t n)
{
	for (size_t i = 0; i < sizeof(sections) / sizeof(sections[0]); i++)
		if (strcmp(sections[i], section) == 0)
			return true;
	for (size_t t = 0; t < n; t++)
		if (strcmp(report_section_of_type(probe_type_to_string((enum probe_type)t)),
		           section) == 0)
			return true;
	return false;
}

const char *report_gate_section(json_t *run, json_t *gate)
{
	const char *metric = json_string_value(json_object_get(gate, "metric"));
	const char *dot = metric ? strchr(metric, '.') : NULL;
	size_t i;
	json_t *p;

	if (!dot)
		return "Performance";
	json_array_foreach (json_object_get(run, "probes"), i, p) {
		const char *name = json_string_value(json_object_get(p, "name"));

		if (name && strlen(name) == (size_t)(dot - metric) &&
		    strncmp(name, metric, (size_t)(dot - metric)) == 0)
			return report_section_of_type(
			        json_string_value(json_object_get(p, "type")));
	}
	return "Performance";
}

/* Checklist items that belong to a concern's section as well. */
static const char *checklist_section(const char *item)
{
	if (!item)
		return NULL;
	if (strstr(item, "incident") || strstr(item, "runbook") || strstr(item, "on_call"))
		return "Incident response";
	if (strstr(item, "rollback"))
		return "Rollback";
	if (strstr(item, "security") || strstr(item, "pentest"))
		return "Security";
	if (strstr(item, "monitoring") || strstr(item, "dashboard") || strstr(item, "alert"))
		return "Monitoring";
	return NULL;
}

/* Text safe inside a Markdown line: HTML-significant characters become
 * entities, Markdown punctuation is backslash-escaped, line breaks become
 * spaces (one item stays one line), other control characters vanish.
 * Our text never starts a line, so line-start markers (# - + 1.) are
 * harmless and left alone: versions and URLs stay readable. */
static void md_text(struct svg_buf *b, const char *s)
{
	for (; s && *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '<')
			svg_buf_puts(b, "&lt;");
		else if (c == '>')
			svg_buf_puts(b, "&gt;");
		else if (c == '&')
			svg_buf_puts(b, "&amp;");
		else if (c == '\n' || c == '\r' || c == '\t')
			svg_buf_puts(b, " ");
		else if (c < 0x20 || c == 0x7f)
			continue;
		else if (strchr("\\`*_[]|~", c))
			svg_buf_printf(b, "\\%c", c);
		else
			svg_buf_put(b, s, 1);
	}
}

static void md_number(struct svg_buf *b, json_t *v)
{
	if (json_is_number(v)) {
		char buf[RD_DOUBLE_LEN];

		rd_fmt_double(json_number_value(v), buf, sizeof(buf));
		svg_buf_puts(b, buf);
	} else {
		svg_buf_puts(b, "n/a");
	}
}

static const char *upper_outcome(const char *o)
{
	/* The outcome words in capitals, in enum gate_outcome order. */
	static const char *const upper[] = {"PASS", "FAIL", "ERROR", "WAIVED", "NO BASELINE"};
	enum gate_outcome oc;

	if (gate_outcome_from_string(o, &oc) < 0 || (size_t)oc >= RD_ARRAY_SIZE(upper))
		return "UNKNOWN";
	return upper[oc];
}

static void md_gate(struct svg_buf *b, json_t *g)
{
	svg_buf_printf(b, "- **%s**%s ",
	               upper_outcome(json_string_value(json_object_get(g, "outcome"))),
	               json_is_true(json_object_get(g, "advisory")) ? " (advisory)" : "");
	md_text(b, json_string_value(json_object_get(g, "expr")));
	svg_buf_puts(b, ": value ");
	md_number(b, json_object_get(g, "value"));
	svg_buf_puts(b, " vs ");
	md_text(b, json_string_value(json_object_get(g, "op")));
	svg_buf_puts(b, " ");
	md_number(b, json_object_get(g, "threshold"));
	if (json_is_number(json_object_get(g, "baseline"))) {
		svg_buf_puts(b, " (baseline ");
		md_number(b, json_object_get(g, "baseline"));
		svg_buf_printf(b, " from run %lld)",
		               (long long)json_integer_value(json_object_get(g, "baseline_run")));
	}
	if (json_integer_value(json_object_get(g, "samples")) > 0)
		svg_buf_printf(b, ", %lld samples",
		               (long long)json_integer_value(json_object_get(g, "samples")));
	svg_buf_puts(b, " — ");
	md_text(b, json_string_value(json_object_get(g, "reason")));
	svg_buf_puts(b, "\n");
}

/* A capacity search, step by step, as a table under its probe line. */
static void md_capacity_steps(struct svg_buf *b, json_t *p)
{
	json_t *pts = json_object_get(json_object_get(p, "details"), "points"), *pt;
	const char *t = json_string_value(json_object_get(p, "type"));
	size_t i;

	if (!t || strcmp(t, "capacity") != 0 || !json_array_size(pts))
		return;
	svg_buf_puts(b, "\n  | step | offered req/s | delivered req/s | p95 ms | errors | pass |\n"
	                "  |---:|---:|---:|---:|---:|---|\n");
	json_array_foreach (pts, i, pt) {
		svg_buf_printf(b, "  | %zu | ", i + 1);
		md_number(b, json_object_get(pt, "rate"));
		svg_buf_puts(b, " | ");
		md_number(b, json_object_get(pt, "delivered_rps"));
		svg_buf_puts(b, " | ");
		md_number(b, json_object_get(pt, "p95_ms"));
		svg_buf_puts(b, " | ");
		md_number(b, json_object_get(pt, "errors"));
		svg_buf_puts(b, json_is_true(json_object_get(pt, "pass")) ? " | yes |\n"
		                                                          : " | no |\n");
	}
	svg_buf_puts(b, "\n");
}

static void md_probe(struct svg_buf *b, json_t *p)
{
	const char *key;
	json_t *v;
	bool first = true;

	svg_buf_puts(b, "- probe ");
	md_text(b, json_string_value(json_object_get(p, "name")));
	svg_buf_puts(b, " (");
	md_text(b, json_string_value(json_object_get(p, "type")));
	svg_buf_puts(b, "): ");
	md_text(b, json_string_value(json_object_get(p, "state")));
	json_object_foreach (json_object_get(p, "metrics"), key, v) {
		svg_buf_puts(b, first ? "; " : ", ");
		first = false;
		md_text(b, key);
		svg_buf_puts(b, " ");
		md_number(b, v);
	}
	if (json_is_string(json_object_get(p, "error"))) {
		svg_buf_puts(b, "; error: ");
		md_text(b, json_string_value(json_object_get(p, "error")));
	}
	svg_buf_puts(b, "\n");
	/* A measurement's own caveat ("could not keep the requested rate"). */
	if (json_is_string(json_object_get(json_object_get(p, "details"), "warning"))) {
		svg_buf_puts(b, "  - **Warning:** ");
		md_text(b, json_string_value(
		                   json_object_get(json_object_get(p, "details"), "warning")));
		svg_buf_puts(b, "\n");
	}
	md_capacity_steps(b, p);
}

static void md_check_item(struct svg_buf *b, json_t *c)
{
	const char *o = json_string_value(json_object_get(c, "outcome"));

	svg_buf_printf(b, "- [%c] ",
	               o && strcmp(o, gate_outcome_to_string(GATE_PASS)) == 0 ? 'x' : ' ');
	md_text(b, json_string_value(json_object_get(c, "item")));
	svg_buf_printf(b, " (%s, **%s**)",
	               json_is_true(json_object_get(c, "required")) ? "required" : "optional",
	               upper_outcome(o));
	if (json_is_string(json_object_get(c, "evidence"))) {
		svg_buf_puts(b, ": evidence ");
		md_text(b, json_string_value(json_object_get(c, "evidence")));
	}
	svg_buf_puts(b, " — ");
	md_text(b, json_string_value(json_object_get(c, "reason")));
	svg_buf_puts(b, "\n");
}

static void md_section(struct svg_buf *b, json_t *run, const char *section)
{
	size_t i, shown = 0;
	json_t *x;

	svg_buf_printf(b, "\n## %s\n\n", section);
	json_array_foreach (json_object_get(run, "probes"), i, x) {
		if (strcmp(report_section_of_type(json_string_value(json_object_get(x, "type"))),
		           section) == 0)
			md_probe(b, x), shown++;
	}
	json_array_foreach (json_object_get(run, "gates"), i, x) {
		if (strcmp(report_gate_section(run, x), section) == 0)
			md_gate(b, x), shown++;
	}
	json_array_foreach (json_object_get(run, "checklist"), i, x) {
		const char *s = checklist_section(json_string_value(json_object_get(x, "item")));

		if (s && strcmp(s, section) == 0)
			md_check_item(b, x), shown++;
	}
	if (shown == 0)
		svg_buf_puts(b, "_Nothing in this run covers this section._\n");
}

json_t *report_waivers_used(json_t *run)
{
	json_t *out = json_array(), *g;
	size_t i;

	json_array_foreach (json_object_get(run, "gates"), i, g) {
		json_t *w = json_object_get(g, "waiver"), *copy;

		if (!out || !json_is_object(w))
			continue;
		copy = json_copy(w);
		if (!copy || json_object_set(copy, "expr", json_object_get(g, "expr")) ||
		    json_array_append_new(out, copy)) {
			json_decref(copy);
			json_decref(out);
			return NULL;
		}
	}
	return out;
}

static void md_waivers(struct svg_buf *b, json_t *run)
{
	json_t *waivers = report_waivers_used(run), *w;
	size_t i;

	if (!waivers)
		b->oom = true;
	if (json_array_size(waivers) == 0) {
		json_decref(waivers);
		return;
	}
	svg_buf_puts(b, "\n## Waivers\n\n");
	json_array_foreach (waivers, i, w) {
		svg_buf_puts(b, "- ");
		md_text(b, json_string_value(json_object_get(w, "expr")));
		svg_buf_puts(b, ": ");
		md_text(b, json_string_value(json_object_get(w, "reason")));
		svg_buf_puts(b, " (approved by ");
		md_text(b, json_string_value(json_object_get(w, "approver")));
		svg_buf_puts(b, ", expires ");
		md_text(b, json_string_value(json_object_get(w, "expires_at")));
		svg_buf_puts(b, ")\n");
	}
	json_decref(waivers);
}

/* Who changed the run after it was submitted (cancel, invalidate,
 * rejudge), from the run's audit trail. */
static void md_changes(struct svg_buf *b, json_t *run)
{
	json_t *changes = json_object_get(run, "changes"), *c;
	size_t i;

	if (json_array_size(changes) == 0)
		return;
	svg_buf_puts(b, "\n## Changes\n\n");
	json_array_foreach (changes, i, c) {
		const char *reason = json_string_value(json_object_get(c, "reason"));

		svg_buf_puts(b, "- ");
		md_text(b, json_string_value(json_object_get(c, "at")));
		svg_buf_puts(b, ": ");
		md_text(b, json_string_value(json_object_get(c, "action")));
		svg_buf_puts(b, " by ");
		md_text(b, json_string_value(json_object_get(c, "by")));
		if (reason) {
			svg_buf_puts(b, ": ");
			md_text(b, reason);
		}
		svg_buf_puts(b, "\n");
	}
}

/* An invalidated run says so where its verdict is read. */
static void md_invalidated(struct svg_buf *b, json_t *run)
{
	json_t *inv = json_object_get(run, "invalidated");

	if (!json_is_object(inv))
		return;
	svg_buf_puts(b, "- **Invalidated** at ");
	md_text(b, json_string_value(json_object_get(inv, "at")));
	svg_buf_puts(b, ": ");
	md_text(b, json_string_value(json_object_get(inv, "reason")));
	svg_buf_puts(b, " (excluded from baselines and trends)\n");
}

static void md_header(struct svg_buf *b, json_t *run)
{
	const char *verdict = json_string_value(json_object_get(run, "verdict"));
	const char *err = json_string_value(json_object_get(run, "error"));

	svg_buf_puts(b, "# Readiness report: ");
	md_text(b, json_string_value(json_object_get(run, "service")));
	svg_buf_puts(b, " ");
	md_text(b, json_string_value(json_object_get(run, "version")));
	svg_buf_puts(b, " (");
	md_text(b, json_string_value(json_object_get(run, "environment")));
	svg_buf_puts(b, ")\n\n**Verdict: ");
	md_text(b, verdict ? verdict : "not decided");
	svg_buf_printf(b, "** (run %lld, state ",
	               (long long)json_integer_value(json_object_get(run, "id")));
	md_text(b, json_string_value(json_object_get(run, "state")));
	svg_buf_puts(b, ")\n\n");
	svg_buf_puts(b, "A partial pass is a failure: PASS needs every blocking gate to hold, "
	                "every required checklist item to have valid evidence and no probe in "
	                "error.\n\n");
	svg_buf_puts(b, "- Created: ");
	md_text(b, json_string_value(json_object_get(run, "created_at")));
	svg_buf_puts(b, "\n- Finished: ");
	md_text(b, json_string_value(json_object_get(run, "finished_at")));
	svg_buf_puts(b, "\n- Submitted by: ");
	md_text(b, json_string_value(json_object_get(run, "submitted_by")));
	svg_buf_puts(b, "\n");
	if (err) {
		svg_buf_puts(b, "- Error: ");
		md_text(b, err);
		svg_buf_puts(b, "\n");
	}
	md_invalidated(b, run);
}

/* Client and server latency side by side, when the run compared them. */
static void md_reconciliation(struct svg_buf *b, json_t *run)
{
	json_t *rec = report_reconciliation(run), *e;
	char line[1024];
	size_t i;

	if (json_array_size(rec) > 0)
		svg_buf_puts(b, "\n## Client and server latency\n\n");
	json_array_foreach (rec, i, e) {
		report_reconcile_text(e, line, sizeof(line));
		svg_buf_puts(b,
		             json_is_true(json_object_get(e, "flagged")) ? "- **FLAGGED** " : "- ");
		md_text(b, line);
		svg_buf_puts(b, "\n");
	}
	json_decref(rec);
}

char *report_markdown(json_t *run, json_t *spec, size_t *ret_len)
{
	struct svg_buf b;
	size_t i;
	json_t *c;

	(void)spec; /* the run carries every result; the spec adds nothing here */
	svg_buf_init(&b);
	md_header(&b, run);
	for (i = 0; i < sizeof(sections) / sizeof(sections[0]); i++)
		md_section(&b, run, sections[i]);
	/* Sections only a registered type has, in the order of the types. */
	for (i = 0; i < probe_type_count(); i++) {
		const char *sec = report_section_of_type(probe_type_to_string((enum probe_type)i));

		if (!section_listed(sec, i))
			md_section(&b, run, sec);
	}
	md_reconciliation(&b, run);
	svg_buf_puts(&b, "\n## Checklist\n\n");
	json_array_foreach (json_object_get(run, "checklist"), i, c)
		md_check_item(&b, c);
	if (json_array_size(json_object_get(run, "checklist")) == 0)
		svg_buf_puts(&b, "_No checklist items in the spec._\n");
	md_waivers(&b, run);
	md_changes(&b, run);
	return svg_buf_steal(&b, ret_len);
}
