/* report_junit: the run as JUnit XML for CI test tabs (see report.h).
 * The file must show exactly the verdict: a PASS has no failure and no
 * error, a FAIL at least one failure, an ERROR (or a cancelled,
 * interrupted or unfinished run) at least one error.
 *
 * Shape (docs/spec.md "JUnit"): <testsuites> holding one <testsuite>
 * with every attribute the strict Ant schema requires (name, package, id,
 * timestamp, hostname, tests, failures, errors, time), then <properties>,
 * the testcases, <system-out> and <system-err> in that order. Testcases:
 * one per probe (classname "probes.<section>"), per gate ("gates.<section>")
 * and per checklist item ("checklist"), and one for the run itself
 * ("run") when the run did not end with a verdict its other cases show.
 * The strict schema allows only <failure> or <error> in a testcase, so
 * what passes but must not be silent (advisory failures, waivers, stale
 * optional evidence, invalidation) is a <property> and a line of
 * <system-out>.
 *
 * Pure apart from gethostname(). Every string goes through svg_buf_esc(),
 * which also drops the control characters XML 1.0 forbids, so the output
 * always parses.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/gate/gate.h"
#include "lib/report/report.h"
#include "lib/report/svg.h"
#include "lib/util/run_state.h"
#include "lib/util/util.h"
#include "lib/util/json_text.h"

struct junit {
	struct svg_buf cases; /* the testcases, written before the header */
	struct svg_buf props; /* extra <property> lines */
	struct svg_buf out;   /* <system-out> text */
	size_t tests, failures, errors;
};

static bool is(const char *a, const char *b)
{
	return a && strcmp(a, b) == 0;
}

static bool state_is(const char *a, enum run_state st)
{
	return is(a, run_state_to_string(st));
}

static bool outcome_is(const char *a, enum gate_outcome o)
{
	return is(a, gate_outcome_to_string(o));
}

static bool verdict_is(const char *a, enum verdict v)
{
	return is(a, gate_verdict_to_string(v));
}

static const char *str(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

static void number(struct svg_buf *b, json_t *v)
{
	if (json_is_number(v)) {
		char buf[RD_DOUBLE_LEN];

		rd_fmt_double(json_number_value(v), buf, sizeof(buf));
		svg_buf_puts(b, buf);
	} else {
		svg_buf_puts(b, "n/a");
	}
}

/* Seconds between two RFC 3339 fields of o, 0 when either is missing. */
static double seconds_between(json_t *o, const char *from, const char *to)
{
	int64_t a, b;

	if (!str(o, from) || !str(o, to) || rd_time_parse(str(o, from), &a) < 0 ||
	    rd_time_parse(str(o, to), &b) < 0 || b < a)
		return 0;
	return (double)(b - a) / 1000.0;
}

/* "value 250 vs < 100 (baseline 90 from run 3): reason" */
static void gate_message(struct svg_buf *b, json_t *g)
{
	svg_buf_puts(b, "value ");
	number(b, json_object_get(g, "value"));
	svg_buf_puts(b, " vs ");
	svg_buf_esc(b, str(g, "op"));
	svg_buf_puts(b, " ");
	number(b, json_object_get(g, "threshold"));
	if (json_is_number(json_object_get(g, "baseline"))) {
		svg_buf_puts(b, " (baseline ");
		number(b, json_object_get(g, "baseline"));
		svg_buf_printf(b, " from run %lld)",
		               (long long)json_integer_value(json_object_get(g, "baseline_run")));
	}
	svg_buf_puts(b, ": ");
	svg_buf_esc(b, str(g, "reason"));
}

/* Opens a testcase; the caller writes its child (or none) and closes. */
static void case_open(struct junit *j, const char *classname, const char *section, const char *name,
                      double time)
{
	j->tests++;
	svg_buf_puts(&j->cases, "    <testcase classname=\"");
	svg_buf_esc(&j->cases, classname);
	if (section) {
		svg_buf_puts(&j->cases, ".");
		svg_buf_esc(&j->cases, section);
	}
	svg_buf_puts(&j->cases, "\" name=\"");
	svg_buf_esc(&j->cases, name && *name ? name : "(unnamed)");
	svg_buf_printf(&j->cases, "\" time=\"%.3f\"", time);
}

/* Closes the testcase with a <failure> or <error> child (tag NULL: none);
 * message is escaped text, already in msg. */
static void case_close(struct junit *j, const char *tag, const char *type, const char *msg)
{
	if (!tag) {
		svg_buf_puts(&j->cases, "/>\n");
		return;
	}
	if (is(tag, "failure"))
		j->failures++;
	else
		j->errors++;
	svg_buf_printf(&j->cases, ">\n      <%s type=\"", tag);
	svg_buf_esc(&j->cases, type);
	svg_buf_printf(&j->cases, "\" message=\"%s\">%s</%s>\n    </testcase>\n", msg, msg, tag);
}

static void property(struct junit *j, const char *name, const char *escaped_value)
{
	svg_buf_puts(&j->props, "      <property name=\"");
	svg_buf_esc(&j->props, name);
	svg_buf_printf(&j->props, "\" value=\"%s\"/>\n", escaped_value);
}

static void probe_case(struct junit *j, json_t *p)
{
	const char *state = str(p, "state"), *tag = NULL;
	struct svg_buf msg, name;
	char *m, *n;

	svg_buf_init(&msg);
	svg_buf_init(&name);
	svg_buf_printf(&name, "%s (%s)", str(p, "name") ? str(p, "name") : "?",
	               str(p, "type") ? str(p, "type") : "?");
	n = svg_buf_steal(&name, NULL);
	if (state_is(state, RUN_FAILED))
		tag = "failure";
	else if (state_is(state, RUN_ERROR) || state_is(state, RUN_CANCELLED) ||
	         state_is(state, RUN_INTERRUPTED))
		tag = "error";
	svg_buf_puts(&msg, "probe ");
	svg_buf_esc(&msg, state ? state : "unknown");
	svg_buf_puts(&msg, str(p, "error") ? ": " : "");
	svg_buf_esc(&msg, str(p, "error"));
	m = svg_buf_steal(&msg, NULL);
	case_open(j, "probes", report_section_of_type(str(p, "type")), n,
	          seconds_between(p, "started_at", "finished_at"));
	case_close(j, tag, state ? state : "unknown", m ? m : "");
	free(m);
	free(n);
}

/* A gate that does not block but must be seen: a property and a line. */
static void gate_notice(struct junit *j, json_t *g, const char *o, bool advisory, const char *msg)
{
	struct svg_buf v;
	char *text;

	svg_buf_puts(&j->out, "gate ");
	svg_buf_esc(&j->out, str(g, "expr"));
	svg_buf_printf(&j->out, ": %s%s: %s\n", advisory ? "advisory, " : "", o, msg);
	if (!(advisory && !outcome_is(o, GATE_PASS) && !outcome_is(o, GATE_NO_BASELINE)) &&
	    !outcome_is(o, GATE_WAIVED))
		return;
	svg_buf_init(&v);
	svg_buf_esc(&v, str(g, "expr"));
	svg_buf_printf(&v, ": %s: %s", o, msg);
	text = svg_buf_steal(&v, NULL);
	property(j, outcome_is(o, GATE_WAIVED) ? "waived" : "advisory", text ? text : "");
	free(text);
}

static void gate_case(struct junit *j, json_t *run, json_t *g)
{
	const char *o = str(g, "outcome");
	bool advisory = json_is_true(json_object_get(g, "advisory"));
	const char *tag = NULL;
	struct svg_buf msg;
	char *m;

	if (!advisory && outcome_is(o, GATE_FAIL))
		tag = "failure";
	else if (!advisory && (outcome_is(o, GATE_ERROR) || !o))
		tag = "error";
	svg_buf_init(&msg);
	gate_message(&msg, g);
	m = svg_buf_steal(&msg, NULL);
	case_open(j, "gates", report_gate_section(run, g), str(g, "expr"), 0);
	case_close(j, tag, o ? o : "unknown", m ? m : "");
	if (!tag)
		gate_notice(j, g, o ? o : "unknown", advisory, m ? m : "");
	free(m);
}

static void checklist_case(struct junit *j, json_t *c)
{
	bool failed = !outcome_is(str(c, "outcome"), GATE_PASS);
	bool required = json_is_true(json_object_get(c, "required"));
	struct svg_buf msg;
	char *m;

	svg_buf_init(&msg);
	svg_buf_esc(&msg, str(c, "reason"));
	if (str(c, "evidence")) {
		svg_buf_puts(&msg, " (evidence: ");
		svg_buf_esc(&msg, str(c, "evidence"));
		svg_buf_puts(&msg, ")");
	}
	m = svg_buf_steal(&msg, NULL);
	case_open(j, "checklist", NULL, str(c, "item"), 0);
	case_close(j, failed && required ? "failure" : NULL, gate_outcome_to_string(GATE_FAIL),
	           m ? m : "");
	svg_buf_puts(&j->out, "checklist ");
	svg_buf_esc(&j->out, str(c, "item"));
	svg_buf_printf(&j->out, ": %s%s: %s\n", required ? "" : "optional, ",
	               gate_outcome_to_string(failed ? GATE_FAIL : GATE_PASS), m ? m : "");
	free(m);
	if (failed && !required) {
		svg_buf_init(&msg);
		svg_buf_esc(&msg, str(c, "item"));
		svg_buf_puts(&msg, ": ");
		svg_buf_esc(&msg, str(c, "reason"));
		m = svg_buf_steal(&msg, NULL);
		property(j, "optional checklist item failed", m ? m : "");
		free(m);
	}
}

/* The run itself, when its other cases would not show its verdict: a
 * cancelled, interrupted or unfinished run, a run error (its deadline),
 * or a verdict no other case carries. */
static void run_case(struct junit *j, json_t *run)
{
	const char *state = str(run, "state"), *verdict = str(run, "verdict");
	const char *tag = NULL;
	struct svg_buf msg;
	char *m;

	if (verdict_is(verdict, VERDICT_ERROR) || (!verdict && !state_is(state, RUN_PASSED)))
		tag = j->errors == 0 || str(run, "error") || !verdict ? "error" : NULL;
	else if (verdict_is(verdict, VERDICT_FAIL) && j->failures == 0)
		tag = "failure";
	if (!tag)
		return;
	svg_buf_init(&msg);
	svg_buf_puts(&msg, "run ");
	svg_buf_esc(&msg, state ? state : "unknown");
	if (str(run, "error")) {
		svg_buf_puts(&msg, ": ");
		svg_buf_esc(&msg, str(run, "error"));
	} else if (!verdict) {
		svg_buf_puts(&msg, ": no verdict");
	}
	m = svg_buf_steal(&msg, NULL);
	case_open(j, "run", NULL, "verdict", seconds_between(run, "started_at", "finished_at"));
	case_close(j, tag, state ? state : "unknown", m ? m : "");
	free(m);
}

static void suite_header(struct svg_buf *b, json_t *run, const struct junit *j)
{
	const char *ts = str(run, "started_at") ? str(run, "started_at") : str(run, "created_at");
	char host[256] = "";

	if (gethostname(host, sizeof(host) - 1) < 0 || !host[0])
		snprintf(host, sizeof(host), "localhost");
	svg_buf_puts(b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n"
	                "  <testsuite name=\"readyd ");
	svg_buf_esc(b, str(run, "service"));
	svg_buf_puts(b, " ");
	svg_buf_esc(b, str(run, "version"));
	svg_buf_puts(b, " ");
	svg_buf_esc(b, str(run, "environment"));
	svg_buf_puts(b, "\" package=\"readyd.");
	svg_buf_esc(b, str(run, "service"));
	svg_buf_printf(b, "\" id=\"0\" tests=\"%zu\" failures=\"%zu\" errors=\"%zu\" time=\"%.3f\"",
	               j->tests, j->failures, j->errors,
	               seconds_between(run, "started_at", "finished_at"));
	/* JUnit's timestamp has no zone and no fraction; ours is UTC. */
	svg_buf_puts(b, " timestamp=\"");
	if (ts && strlen(ts) >= 19)
		svg_buf_put(b, ts, 19);
	else
		svg_buf_puts(b, "1970-01-01T00:00:00");
	svg_buf_puts(b, "\" hostname=\"");
	svg_buf_esc(b, host);
	svg_buf_puts(b, "\">\n");
}

static void suite_properties(struct svg_buf *b, json_t *run, struct junit *j)
{
	json_t *inv = json_object_get(run, "invalidated");

	svg_buf_printf(b, "    <properties>\n      <property name=\"run_id\" value=\"%lld\"/>\n",
	               (long long)json_integer_value(json_object_get(run, "id")));
	svg_buf_puts(b, "      <property name=\"verdict\" value=\"");
	svg_buf_esc(b, str(run, "verdict") ? str(run, "verdict") : "none");
	svg_buf_puts(b, "\"/>\n      <property name=\"state\" value=\"");
	svg_buf_esc(b, str(run, "state"));
	svg_buf_puts(b, "\"/>\n");
	if (json_is_object(inv)) {
		svg_buf_puts(b, "      <property name=\"invalidated\" value=\"");
		svg_buf_esc(b, str(inv, "at"));
		svg_buf_puts(b, ": ");
		svg_buf_esc(b, str(inv, "reason"));
		svg_buf_puts(b, "\"/>\n");
		svg_buf_puts(&j->out, "invalidated at ");
		svg_buf_esc(&j->out, str(inv, "at"));
		svg_buf_puts(&j->out, ": ");
		svg_buf_esc(&j->out, str(inv, "reason"));
		svg_buf_puts(&j->out, " (excluded from baselines and trends)\n");
	}
	svg_buf_put(b, j->props.data ? j->props.data : "", j->props.len);
	svg_buf_puts(b, "    </properties>\n");
}

/* Probe errors and the run's error, as text too. */
static void suite_errors(struct svg_buf *b, json_t *run)
{
	size_t i;
	json_t *p;

	svg_buf_puts(b, "    <system-err>");
	json_array_foreach (json_object_get(run, "probes"), i, p) {
		if (!str(p, "error"))
			continue;
		svg_buf_puts(b, "probe ");
		svg_buf_esc(b, str(p, "name"));
		svg_buf_puts(b, ": ");
		svg_buf_esc(b, str(p, "error"));
		svg_buf_puts(b, "\n");
	}
	if (str(run, "error")) {
		svg_buf_puts(b, "run: ");
		svg_buf_esc(b, str(run, "error"));
		svg_buf_puts(b, "\n");
	}
	svg_buf_puts(b, "</system-err>\n");
}

/* Client and server latency: a property per comparison and a line of
 * system-out. Not a testcase: a gap fails the run only through a gate
 * (gap_ratio), and the suite's counts must show the verdict. */
static void reconcile_props(struct junit *j, json_t *run)
{
	json_t *rec = report_reconciliation(run), *e;
	struct svg_buf v, name;
	char line[1024];
	size_t i;

	json_array_foreach (rec, i, e) {
		char *vs, *ns;

		report_reconcile_text(e, line, sizeof(line));
		svg_buf_init(&v);
		svg_buf_init(&name);
		svg_buf_esc(&v, line);
		svg_buf_printf(&name, "reconciliation.%s.%s", str(e, "client_probe") ?: "?",
		               str(e, "server_query") ?: "?");
		vs = svg_buf_steal(&v, NULL);
		ns = svg_buf_steal(&name, NULL);
		if (vs && ns) {
			property(j, ns, vs);
			svg_buf_puts(&j->out, vs);
			svg_buf_puts(&j->out, "\n");
		}
		free(vs);
		free(ns);
	}
	json_decref(rec);
}

char *report_junit(json_t *run, json_t *spec, size_t *ret_len)
{
	struct junit j = {0};
	struct svg_buf b;
	size_t i;
	json_t *x;

	(void)spec;
	svg_buf_init(&j.cases);
	svg_buf_init(&j.props);
	svg_buf_init(&j.out);
	svg_buf_init(&b);
	svg_buf_puts(&j.out, "verdict ");
	svg_buf_esc(&j.out, str(run, "verdict") ? str(run, "verdict") : "none");
	svg_buf_puts(&j.out, ", state ");
	svg_buf_esc(&j.out, str(run, "state"));
	svg_buf_puts(&j.out, "\n");
	json_array_foreach (json_object_get(run, "probes"), i, x)
		probe_case(&j, x);
	json_array_foreach (json_object_get(run, "gates"), i, x)
		gate_case(&j, run, x);
	json_array_foreach (json_object_get(run, "checklist"), i, x)
		checklist_case(&j, x);
	run_case(&j, run);
	reconcile_props(&j, run);
	suite_header(&b, run, &j);
	suite_properties(&b, run, &j);
	svg_buf_put(&b, j.cases.data ? j.cases.data : "", j.cases.len);
	svg_buf_puts(&b, "    <system-out>");
	svg_buf_put(&b, j.out.data ? j.out.data : "", j.out.len);
	svg_buf_puts(&b, "</system-out>\n");
	suite_errors(&b, run);
	svg_buf_puts(&b, "  </testsuite>\n</testsuites>\n");
	if (j.cases.oom || j.props.oom || j.out.oom)
		b.oom = true;
	svg_buf_deinit(&j.cases);
	svg_buf_deinit(&j.props);
	svg_buf_deinit(&j.out);
	return svg_buf_steal(&b, ret_len);
}
