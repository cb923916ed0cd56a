/* report_junit: the run as JUnit XML for CI test tabs (see report.h). One
 * <testsuite>, one <testcase> per gate (classname "gates.<section>") and
 * per checklist item (classname "checklist"). A failing blocking gate is a
 * <failure>, an erroring one an <error>; advisory failures, waivers and
 * "no baseline" pass but say so in <system-out>, so nothing is silent.
 *
 * Pure. Every string goes through svg_buf_esc(), which also drops the
 * control characters XML 1.0 forbids, so the output always parses.
 */
#include <string.h>

#include "report.h"
#include "svg.h"

struct counts {
	size_t tests, failures, errors;
};

static bool is(const char *a, const char *b)
{
	return a && strcmp(a, b) == 0;
}

static void number(struct svg_buf *b, json_t *v)
{
	if (json_is_number(v))
		svg_buf_printf(b, "%.6g", json_number_value(v));
	else
		svg_buf_puts(b, "n/a");
}

/* "value 250 vs < 100 (baseline 90 from run 3): reason" */
static void gate_message(struct svg_buf *b, json_t *g)
{
	svg_buf_puts(b, "value ");
	number(b, json_object_get(g, "value"));
	svg_buf_puts(b, " vs ");
	svg_buf_esc(b, json_string_value(json_object_get(g, "op")));
	svg_buf_puts(b, " ");
	number(b, json_object_get(g, "threshold"));
	if (json_is_number(json_object_get(g, "baseline"))) {
		svg_buf_puts(b, " (baseline ");
		number(b, json_object_get(g, "baseline"));
		svg_buf_printf(b, " from run %lld)",
		               (long long)json_integer_value(json_object_get(g, "baseline_run")));
	}
	svg_buf_puts(b, ": ");
	svg_buf_esc(b, json_string_value(json_object_get(g, "reason")));
}

static void gate_case(struct svg_buf *b, json_t *run, json_t *g)
{
	const char *o = json_string_value(json_object_get(g, "outcome"));
	bool advisory = json_is_true(json_object_get(g, "advisory"));
	const char *tag = NULL;

	if (!advisory && is(o, "fail"))
		tag = "failure";
	else if (!advisory && (is(o, "error") || !o))
		tag = "error";
	svg_buf_puts(b, "  <testcase classname=\"gates.");
	svg_buf_esc(b, report_gate_section(run, g));
	svg_buf_puts(b, "\" name=\"");
	svg_buf_esc(b, json_string_value(json_object_get(g, "expr")));
	svg_buf_puts(b, "\">\n");
	if (tag) {
		svg_buf_printf(b, "    <%s type=\"%s\" message=\"", tag, o ? o : "unknown");
		gate_message(b, g);
		svg_buf_puts(b, "\">");
		gate_message(b, g);
		svg_buf_printf(b, "</%s>\n", tag);
	} else {
		svg_buf_printf(b, "    <system-out>%s%s: ", advisory ? "advisory, " : "",
		               o ? o : "unknown");
		gate_message(b, g);
		svg_buf_puts(b, "</system-out>\n");
	}
	svg_buf_puts(b, "  </testcase>\n");
}

static void checklist_case(struct svg_buf *b, json_t *c)
{
	bool failed = !is(json_string_value(json_object_get(c, "outcome")), "pass");
	bool required = json_is_true(json_object_get(c, "required"));

	svg_buf_puts(b, "  <testcase classname=\"checklist\" name=\"");
	svg_buf_esc(b, json_string_value(json_object_get(c, "item")));
	svg_buf_puts(b, "\">\n");
	svg_buf_puts(b, failed && required ? "    <failure type=\"fail\" message=\""
	                                   : "    <system-out>");
	svg_buf_esc(b, json_string_value(json_object_get(c, "reason")));
	if (json_is_string(json_object_get(c, "evidence"))) {
		svg_buf_puts(b, " (evidence: ");
		svg_buf_esc(b, json_string_value(json_object_get(c, "evidence")));
		svg_buf_puts(b, ")");
	}
	svg_buf_puts(b, failed && required ? "\"/>\n" : "</system-out>\n");
	svg_buf_puts(b, "  </testcase>\n");
}

static struct counts count(json_t *run)
{
	struct counts n = {0};
	size_t i;
	json_t *x;

	json_array_foreach (json_object_get(run, "gates"), i, x) {
		const char *o = json_string_value(json_object_get(x, "outcome"));

		n.tests++;
		if (json_is_true(json_object_get(x, "advisory")))
			continue;
		if (is(o, "fail"))
			n.failures++;
		else if (is(o, "error") || !o)
			n.errors++;
	}
	json_array_foreach (json_object_get(run, "checklist"), i, x) {
		n.tests++;
		if (!is(json_string_value(json_object_get(x, "outcome")), "pass") &&
		    json_is_true(json_object_get(x, "required")))
			n.failures++;
	}
	return n;
}

static void suite_open(struct svg_buf *b, json_t *run)
{
	struct counts n = count(run);
	const char *ts = json_string_value(json_object_get(run, "finished_at"));

	svg_buf_puts(b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuite name=\"readyd ");
	svg_buf_esc(b, json_string_value(json_object_get(run, "service")));
	svg_buf_puts(b, " ");
	svg_buf_esc(b, json_string_value(json_object_get(run, "version")));
	svg_buf_puts(b, " ");
	svg_buf_esc(b, json_string_value(json_object_get(run, "environment")));
	svg_buf_printf(b, "\" tests=\"%zu\" failures=\"%zu\" errors=\"%zu\" skipped=\"0\"", n.tests,
	               n.failures, n.errors);
	if (ts) {
		/* JUnit's timestamp has no zone and no fraction; ours is UTC. */
		svg_buf_puts(b, " timestamp=\"");
		svg_buf_put(b, ts, strlen(ts) >= 19 ? 19 : strlen(ts));
		svg_buf_puts(b, "\"");
	}
	svg_buf_puts(b, ">\n  <properties>\n");
	svg_buf_printf(b, "    <property name=\"run_id\" value=\"%lld\"/>\n",
	               (long long)json_integer_value(json_object_get(run, "id")));
	svg_buf_puts(b, "    <property name=\"verdict\" value=\"");
	svg_buf_esc(b, json_string_value(json_object_get(run, "verdict")));
	svg_buf_puts(b, "\"/>\n    <property name=\"state\" value=\"");
	svg_buf_esc(b, json_string_value(json_object_get(run, "state")));
	svg_buf_puts(b, "\"/>\n  </properties>\n");
}

/* Probe errors and the run's error: not testcases (one per gate and item),
 * but CI shows system-err, so the reason is not lost. */
static void suite_errors(struct svg_buf *b, json_t *run)
{
	bool open = false;
	size_t i;
	json_t *p;

	json_array_foreach (json_object_get(run, "probes"), i, p) {
		if (!json_is_string(json_object_get(p, "error")))
			continue;
		svg_buf_puts(b, open ? "\n" : "  <system-err>");
		open = true;
		svg_buf_puts(b, "probe ");
		svg_buf_esc(b, json_string_value(json_object_get(p, "name")));
		svg_buf_puts(b, ": ");
		svg_buf_esc(b, json_string_value(json_object_get(p, "error")));
	}
	if (json_is_string(json_object_get(run, "error"))) {
		svg_buf_puts(b, open ? "\n" : "  <system-err>");
		open = true;
		svg_buf_puts(b, "run: ");
		svg_buf_esc(b, json_string_value(json_object_get(run, "error")));
	}
	if (open)
		svg_buf_puts(b, "</system-err>\n");
}

char *report_junit(json_t *run, json_t *spec, size_t *ret_len)
{
	struct svg_buf b;
	size_t i;
	json_t *x;

	(void)spec;
	svg_buf_init(&b);
	suite_open(&b, run);
	json_array_foreach (json_object_get(run, "gates"), i, x)
		gate_case(&b, run, x);
	json_array_foreach (json_object_get(run, "checklist"), i, x)
		checklist_case(&b, x);
	suite_errors(&b, run);
	svg_buf_puts(&b, "</testsuite>\n");
	return svg_buf_steal(&b, ret_len);
}
