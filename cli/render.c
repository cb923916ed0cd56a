/* render: run JSON (the run resource of docs/openapi.yaml) into what a human reads:
 * the verdict with its gate table, the status summary, the runs listing
 * and the one-line progress. Unknown or missing fields print as "-" rather
 * than failing, because the server may add fields and old runs may lack
 * some; nothing here ever turns a missing verdict into a pass.
 *
 * It must not talk to the network or decide exit codes (run_exit_code only
 * maps a finished run to one, for the commands to use).
 */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "lib/gate/gate.h"
#include "lib/util/run_state.h"
#include "lib/util/json_text.h"

#define CELL 512

/* Colours of the words: gate outcomes, verdicts (bold) and the states a
 * run ends in without a verdict. */
static const char *const outcome_sgr[] = {
        [GATE_PASS] = "\033[32m",   [GATE_FAIL] = "\033[31m",        [GATE_ERROR] = "\033[33m",
        [GATE_WAIVED] = "\033[36m", [GATE_NO_BASELINE] = "\033[36m",
};
static const char *const verdict_sgr[] = {
        [VERDICT_PASS] = "\033[1;32m",
        [VERDICT_FAIL] = "\033[1;31m",
        [VERDICT_ERROR] = "\033[1;33m",
};
static const enum run_state state_sgr_states[] = {RUN_CANCELLED, RUN_INTERRUPTED};
#define STATE_SGR "\033[33m"

/* A bounded string builder: appends until full, then silently truncates,
 * which is right for display lines. */
struct sbuf {
	char *p;
	size_t len;
	size_t n;
};

__attribute__((format(printf, 2, 3))) static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	int r;

	if (b->n + 1 >= b->len)
		return;
	va_start(ap, fmt);
	r = vsnprintf(b->p + b->n, b->len - b->n, fmt, ap);
	va_end(ap);
	if (r > 0)
		b->n = (size_t)r >= b->len - b->n ? b->len - 1 : b->n + (size_t)r;
}

static const char *jstr(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* When a copy stops at n bytes, drops a multi-byte UTF-8 sequence that
 * was cut short, so the terminal never sees half a character. */
static size_t utf8_cut(const char *buf, size_t n)
{
	size_t start = n, need;
	unsigned char lead;

	while (start > 0 && n - start < 4 && ((unsigned char)buf[start - 1] & 0xc0) == 0x80)
		start--;
	if (start == n) /* a lead byte with nothing after it */
		return n > 0 && (unsigned char)buf[n - 1] >= 0xc0 ? n - 1 : n;
	if (start == 0)
		return n;
	lead = (unsigned char)buf[start - 1];
	if (lead < 0xc0)
		return n;
	need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : 2;
	return n - (start - 1) < need ? start - 1 : n;
}

void render_clean(const char *s, char *buf, size_t len)
{
	size_t i = 0;

	if (len == 0)
		return;
	for (; s && s[i] && i + 1 < len; i++) {
		unsigned char ch = (unsigned char)s[i];
		buf[i] = (ch < 0x20 || ch == 0x7f) ? (ch == '\t' ? ' ' : '?') : (char)ch;
	}
	if (s && s[i])
		i = utf8_cut(buf, i);
	buf[i] = '\0';
}

static void format_number(double v, char *buf, size_t len)
{
	if (fabs(v) < 1e15 && v == floor(v))
		snprintf(buf, len, "%.0f", v);
	else if (fabs(v) >= 1e6 && fabs(v) < 1e15)
		snprintf(buf, len, "%.0f", v);
	else
		snprintf(buf, len, "%.6g", v);
}

void render_value(const json_t *v, char *buf, size_t len)
{
	char *dump;

	if (!v || json_is_null(v))
		snprintf(buf, len, "-");
	else if (json_is_string(v))
		render_clean(json_string_value(v), buf, len);
	else if (json_is_integer(v))
		snprintf(buf, len, "%lld", (long long)json_integer_value(v));
	else if (json_is_real(v))
		format_number(json_real_value(v), buf, len);
	else if (json_is_boolean(v))
		snprintf(buf, len, "%s", json_is_true(v) ? "true" : "false");
	else if ((dump = rd_json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY))) {
		render_clean(dump, buf, len);
		free(dump);
	} else
		snprintf(buf, len, "?");
}

static bool has_prefix(const char *word, const char *prefix)
{
	return strncmp(word, prefix, strlen(prefix)) == 0;
}

/* Prefix match so "fail (advisory)" and "passed" take a colour. */
static const char *sgr_for(const char *word)
{
	if (!word)
		return NULL;
	for (size_t i = 0; i < sizeof(outcome_sgr) / sizeof(outcome_sgr[0]); i++)
		if (has_prefix(word, gate_outcome_to_string((enum gate_outcome)i)))
			return outcome_sgr[i];
	for (size_t i = 0; i < sizeof(verdict_sgr) / sizeof(verdict_sgr[0]); i++)
		if (has_prefix(word, gate_verdict_to_string((enum verdict)i)))
			return verdict_sgr[i];
	for (size_t i = 0; i < sizeof(state_sgr_states) / sizeof(state_sgr_states[0]); i++)
		if (has_prefix(word, run_state_to_string(state_sgr_states[i])))
			return STATE_SGR;
	return NULL;
}

const char *render_color_start(const char *word, bool color)
{
	const char *sgr = color ? sgr_for(word) : NULL;

	return sgr ? sgr : "";
}

const char *render_color_end(const char *word, bool color)
{
	return color && sgr_for(word) ? "\033[0m" : "";
}

bool run_is_finished(const json_t *run)
{
	const char *state = jstr(run, "state");
	enum run_state st;

	if (!state)
		return false;
	if (run_state_from_string(state, &st) == 0)
		return run_state_is_final(st);
	/* A state this client does not know is final only if decided. */
	return json_is_string(json_object_get(run, "verdict"));
}

int run_exit_code(const json_t *run)
{
	const char *verdict = jstr(run, "verdict");
	enum run_state st = RUN_STATE_COUNT; /* unknown */
	enum verdict v;

	if (run_state_from_string(jstr(run, "state"), &st) < 0)
		st = RUN_STATE_COUNT;
	if (st == RUN_ERROR || st == RUN_CANCELLED || st == RUN_INTERRUPTED)
		return CTL_EXIT_ERROR;
	if (verdict)
		return gate_verdict_from_string(verdict, &v) < 0 ? CTL_EXIT_ERROR
		       : v == VERDICT_PASS                       ? CTL_EXIT_PASS
		       : v == VERDICT_FAIL                       ? CTL_EXIT_FAIL
		                                                 : CTL_EXIT_ERROR;
	/* No verdict: only the state can say; anything unclear is an error. */
	if (st == RUN_PASSED)
		return CTL_EXIT_PASS;
	if (st == RUN_FAILED)
		return CTL_EXIT_FAIL;
	return CTL_EXIT_ERROR;
}

int64_t run_id(const json_t *run)
{
	json_t *id = json_object_get(run, "id");

	return json_is_integer(id) && json_integer_value(id) > 0 ? (int64_t)json_integer_value(id)
	                                                         : -1;
}

void render_title(FILE *f, const json_t *run)
{
	char svc[CELL], ver[CELL], env[CELL];

	render_clean(jstr(run, "service"), svc, sizeof(svc));
	render_clean(jstr(run, "version"), ver, sizeof(ver));
	render_clean(jstr(run, "environment"), env, sizeof(env));
	fprintf(f, "run %lld %s %s (%s)", (long long)run_id(run), svc[0] ? svc : "-",
	        ver[0] ? ver : "-", env[0] ? env : "-");
}

void render_gates(FILE *f, const json_t *gates, bool color)
{
	static const char *const headers[] = {"GATE", "VALUE", "THRESHOLD", "OUTCOME", "REASON"};
	char value[CELL], threshold[CELL], outcome[CELL];
	struct table *t;
	size_t i;
	json_t *g;

	if (!json_is_array(gates) || json_array_size(gates) == 0) {
		fprintf(f, "no gates\n");
		return;
	}
	t = table_new(5, headers);
	if (!t)
		goto nomem;
	table_set_status_column(t, 3);
	json_array_foreach (gates, i, g) {
		render_value(json_object_get(g, "value"), value, sizeof(value));
		render_value(json_object_get(g, "threshold"), threshold, sizeof(threshold));
		render_value(json_object_get(g, "outcome"), outcome, sizeof(outcome));
		if (json_is_true(json_object_get(g, "advisory"))) {
			size_t n = strlen(outcome);
			snprintf(outcome + n, sizeof(outcome) - n, " (advisory)");
		}
		const char *row[] = {jstr(g, "expr"), value, threshold, outcome, jstr(g, "reason")};
		if (table_add_row(t, row) < 0)
			goto nomem;
	}
	table_print(t, f, color);
	table_free(t);
	return;
nomem:
	table_free(t);
	fputs("readyctl: out of memory\n", stderr);
}

/* A probe's error may be a string or an object with a message. */
static const char *probe_error(const json_t *p)
{
	const json_t *e = json_object_get(p, "error");

	if (json_is_string(e))
		return json_string_value(e);
	if (json_is_object(e))
		return jstr(e, "message") ? jstr(e, "message") : "error";
	return NULL;
}

static void render_problems(FILE *f, const json_t *run)
{
	char name[CELL], msg[CELL], outcome[CELL];
	const json_t *p, *c;
	size_t i;

	json_array_foreach (json_object_get(run, "probes"), i, p) {
		if (!probe_error(p))
			continue;
		render_clean(jstr(p, "name"), name, sizeof(name));
		render_clean(probe_error(p), msg, sizeof(msg));
		fprintf(f, "probe %s: %s\n", name, msg);
	}
	json_array_foreach (json_object_get(run, "checklist"), i, c) {
		render_value(json_object_get(c, "outcome"), outcome, sizeof(outcome));
		if (strcmp(outcome, gate_outcome_to_string(GATE_PASS)) == 0)
			continue;
		render_clean(jstr(c, "item"), name, sizeof(name));
		render_clean(jstr(c, "reason"), msg, sizeof(msg));
		fprintf(f, "checklist %s: %s%s%s\n", name, outcome, msg[0] ? ": " : "", msg);
	}
}

void render_result(FILE *f, const json_t *run, bool color)
{
	const char *verdict = jstr(run, "verdict");
	char state[CELL], word[CELL];

	render_clean(jstr(run, "state"), state, sizeof(state));
	render_clean(verdict ? verdict : "no verdict", word, sizeof(word));
	render_title(f, run);
	fprintf(f, ": %s%s%s", render_color_start(word, color), word,
	        render_color_end(word, color));
	if (!verdict || strcmp(state, run_state_to_string(RUN_CANCELLED)) == 0 ||
	    strcmp(state, run_state_to_string(RUN_INTERRUPTED)) == 0)
		fprintf(f, " (%s)", state[0] ? state : "unknown state");
	fputc('\n', f);
	render_gates(f, json_object_get(run, "gates"), color);
	render_problems(f, run);
}

static void progress_bar(struct sbuf *b, double frac)
{
	int fill = (int)(frac * 20.0);

	fill = fill < 0 ? 0 : fill > 20 ? 20 : fill;
	sb_printf(b, " [");
	for (int i = 0; i < 20; i++)
		sb_printf(b, "%c", i < fill ? '#' : '.');
	sb_printf(b, "]");
}

/* A running load probe's last second: requests/s, p99 and errors so far,
 * as k6 shows them. */
static void live_detail(struct sbuf *b, const json_t *cur)
{
	const json_t *rps = json_object_get(cur, "rps"), *p99 = json_object_get(cur, "p99_ms");
	const json_t *errors = json_object_get(cur, "errors");

	if (json_is_number(rps))
		sb_printf(b, " %.0f req/s", json_number_value(rps));
	if (json_is_number(p99))
		sb_printf(b, " p99 %.3g ms", json_number_value(p99));
	if (json_is_integer(errors))
		sb_printf(b, " %lld errors", (long long)json_integer_value(errors));
}

/* What a run is doing now. rich (TTY, status) adds requests and the ETA;
 * plain lines stay stable so a CI log gets one line per real change. */
static void progress_detail(struct sbuf *b, const json_t *run, bool rich, bool bar)
{
	const json_t *p = json_object_get(run, "progress");
	const json_t *cur = json_object_get(p, "current");
	long long done = json_integer_value(json_object_get(p, "probes_done"));
	long long total = json_integer_value(json_object_get(p, "probes_total"));
	double pct = json_number_value(json_object_get(cur, "percent"));
	const json_t *req = json_object_get(cur, "requests");
	const json_t *eta = json_object_get(p, "eta_s");
	char name[128];

	pct = pct < 0 ? 0 : pct > 100 ? 100 : pct;
	render_clean(jstr(cur, "probe"), name, sizeof(name));
	if (bar && total > 0)
		progress_bar(b, ((double)done + (json_is_object(cur) ? pct / 100.0 : 0)) /
		                        (double)total);
	if (json_is_object(cur)) {
		sb_printf(b, "%sprobe %lld/%lld %s %.0f%%", rich ? " " : ", ",
		          done + 1 > total ? total : done + 1, total, name[0] ? name : "?", pct);
		if (rich && json_is_integer(req))
			sb_printf(b, " %lld req", (long long)json_integer_value(req));
		if (rich)
			live_detail(b, cur);
	} else if (total > 0) {
		sb_printf(b, "%s%lld/%lld probes done", rich ? " " : ", ", done, total);
	}
	if (rich && json_is_number(eta))
		sb_printf(b, " eta %.0fs", json_number_value(eta));
}

void render_progress(const json_t *run, bool tty, char *buf, size_t len)
{
	struct sbuf b = {buf, len, 0};
	char state[64];

	if (len == 0)
		return;
	buf[0] = '\0';
	render_clean(jstr(run, "state"), state, sizeof(state));
	sb_printf(&b, tty ? "run %lld %s" : "run %lld: %s", (long long)run_id(run),
	          state[0] ? state : "?");
	progress_detail(&b, run, tty, tty);
}

static void probe_detail(const json_t *p, char *buf, size_t len)
{
	struct sbuf b = {buf, len, 0};
	const char *key;
	char value[64];
	json_t *v;
	int shown = 0;

	buf[0] = '\0';
	if (probe_error(p)) {
		render_clean(probe_error(p), buf, len);
		return;
	}
	json_object_foreach ((json_t *)json_object_get(p, "metrics"), key, v) {
		if (shown++ == 6) {
			sb_printf(&b, " ...");
			break;
		}
		render_value(v, value, sizeof(value));
		sb_printf(&b, "%s%s=%s", shown > 1 ? " " : "", key, value);
	}
}

static void render_probes(FILE *f, const json_t *probes, bool color)
{
	static const char *const headers[] = {"PROBE", "TYPE", "STATE", "DETAIL"};
	char detail[CELL];
	struct table *t;
	size_t i;
	json_t *p;

	if (!json_is_array(probes) || json_array_size(probes) == 0)
		return;
	t = table_new(4, headers);
	if (!t)
		goto nomem;
	table_set_status_column(t, 2);
	json_array_foreach (probes, i, p) {
		probe_detail(p, detail, sizeof(detail));
		const char *row[] = {jstr(p, "name"), jstr(p, "type"), jstr(p, "state"), detail};
		if (table_add_row(t, row) < 0)
			goto nomem;
	}
	table_print(t, f, color);
	table_free(t);
	return;
nomem:
	table_free(t);
	fputs("readyctl: out of memory\n", stderr);
}

static void render_checklist(FILE *f, const json_t *items, bool color)
{
	static const char *const headers[] = {"CHECKLIST", "REQUIRED", "OUTCOME", "EVIDENCE"};
	char outcome[CELL];
	struct table *t;
	size_t i;
	json_t *c;

	if (!json_is_array(items) || json_array_size(items) == 0)
		return;
	t = table_new(4, headers);
	if (!t)
		goto nomem;
	table_set_status_column(t, 2);
	json_array_foreach (items, i, c) {
		render_value(json_object_get(c, "outcome"), outcome, sizeof(outcome));
		const char *row[] = {jstr(c, "item"),
		                     json_is_true(json_object_get(c, "required")) ? "yes" : "no",
		                     outcome, jstr(c, "evidence") ? jstr(c, "evidence") : "-"};
		if (table_add_row(t, row) < 0)
			goto nomem;
	}
	table_print(t, f, color);
	table_free(t);
	return;
nomem:
	table_free(t);
	fputs("readyctl: out of memory\n", stderr);
}

static void render_field(FILE *f, const char *label, const json_t *v, bool color)
{
	char buf[CELL];

	render_value(v, buf, sizeof(buf));
	fprintf(f, "  %-10s %s%s%s\n", label, render_color_start(buf, color), buf,
	        render_color_end(buf, color));
}

/* "invalidated 2026-11-27T09:00:00.000Z: load generator was misconfigured" */
static void render_invalidated(FILE *f, const json_t *inv)
{
	char at[CELL], why[CELL];

	if (!json_is_object(inv))
		return;
	render_value(json_object_get(inv, "at"), at, sizeof(at));
	render_value(json_object_get(inv, "reason"), why, sizeof(why));
	fprintf(f, "  %-10s %s: %s (excluded from baselines and trends)\n", "invalidated", at, why);
}

void render_status(FILE *f, const json_t *run, bool color)
{
	char by[CELL], detail[CELL];
	struct sbuf b = {detail, sizeof(detail), 0};

	render_title(f, run);
	fputc('\n', f);
	render_field(f, "state", json_object_get(run, "state"), color);
	render_field(f, "verdict", json_object_get(run, "verdict"), color);
	render_field(f, "created", json_object_get(run, "created_at"), false);
	render_field(f, "started", json_object_get(run, "started_at"), false);
	render_field(f, "finished", json_object_get(run, "finished_at"), false);
	render_value(json_object_get(run, "submitted_by"), by, sizeof(by));
	fprintf(f, "  %-10s %s\n", "by", by);
	render_invalidated(f, json_object_get(run, "invalidated"));
	detail[0] = '\0';
	if (!run_is_finished(run))
		progress_detail(&b, run, true, false);
	if (detail[0])
		fprintf(f, "  %-10s%s\n", "progress", detail);
	fputc('\n', f);
	render_probes(f, json_object_get(run, "probes"), color);
	fputc('\n', f);
	render_gates(f, json_object_get(run, "gates"), color);
	if (json_array_size(json_object_get(run, "checklist")) > 0)
		fputc('\n', f);
	render_checklist(f, json_object_get(run, "checklist"), color);
}

void render_runs(FILE *f, const json_t *items, bool color)
{
	static const char *const headers[] = {"ID",    "SERVICE", "VERSION", "ENV",
	                                      "STATE", "VERDICT", "CREATED"};
	char id[32], verdict[CELL];
	struct table *t;
	size_t i;
	json_t *r;

	t = table_new(7, headers);
	if (!t)
		goto nomem;
	table_set_status_column(t, 5);
	json_array_foreach (items, i, r) {
		snprintf(id, sizeof(id), "%lld", (long long)run_id(r));
		render_value(json_object_get(r, "verdict"), verdict, sizeof(verdict));
		const char *row[] = {id,
		                     jstr(r, "service"),
		                     jstr(r, "version"),
		                     jstr(r, "environment"),
		                     jstr(r, "state"),
		                     verdict,
		                     jstr(r, "created_at")};
		if (table_add_row(t, row) < 0)
			goto nomem;
	}
	if (table_rows(t) == 0)
		fprintf(f, "no runs\n");
	else
		table_print(t, f, color);
	table_free(t);
	return;
nomem:
	table_free(t);
	fputs("readyctl: out of memory\n", stderr);
}
