/* probe_docs: checks that docs/spec.md says what a probe type's table
 * declares (probe.h, probe_type_docs_check): the metrics it publishes and
 * its default deadline, in the type's own section. Pure text work on the
 * caller's copy of the document; no I/O.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "lib/probe/probe.h"
#include "lib/util/util.h"

#define METRICS_LABEL  "**Metrics published:**"
#define DEADLINE_TEXT  "Without a probe `timeout`, the probe's deadline is "
#define MAX_METRIC_LEN 64

/* The section "### name" up to the next heading of level 2 or 3. */
static int find_section(const char *md, const char *name, const char **ret_s, size_t *ret_n)
{
	char head[96];
	const char *s, *end;

	snprintf(head, sizeof(head), "\n### %s\n", name);
	s = strstr(md, head);
	if (!s)
		return -ENOENT;
	s += strlen(head);
	end = s;
	while ((end = strstr(end, "\n#")) && strncmp(end, "\n## ", 4) && strncmp(end, "\n### ", 5))
		end++;
	*ret_s = s;
	*ret_n = end ? (size_t)(end - s) : strlen(s);
	return 0;
}

/* The "**Metrics published:**" paragraph: to a blank line or the next
 * bold label ("**Details:**"). */
static int find_metrics(const char *sec, size_t n, const char **ret_s, size_t *ret_n)
{
	const char *s = memmem(sec, n, METRICS_LABEL, strlen(METRICS_LABEL));
	const char *end, *blank, *bold;

	if (!s)
		return -ENOENT;
	s += strlen(METRICS_LABEL);
	end = sec + n;
	blank = memmem(s, (size_t)(end - s), "\n\n", 2);
	bold = memmem(s, (size_t)(end - s), "**", 2);
	if (blank && blank < end)
		end = blank;
	if (bold && bold < end)
		end = bold;
	*ret_s = s;
	*ret_n = (size_t)(end - s);
	return 0;
}

static bool has_quoted(const char *s, size_t n, const char *name)
{
	char q[MAX_METRIC_LEN + 3];

	snprintf(q, sizeof(q), "`%s`", name);
	return memmem(s, n, q, strlen(q)) != NULL;
}

static bool is_metric_word(const char *s, size_t n)
{
	if (n == 0 || n > MAX_METRIC_LEN || !islower((unsigned char)s[0]))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!islower((unsigned char)s[i]) && !isdigit((unsigned char)s[i]) && s[i] != '_')
			return false;
	return true;
}

/* A backquoted word documented as a metric must be one t publishes. */
static int check_word(const struct probe_type_def *t, const char *w, size_t n, char *why,
                      size_t len)
{
	char name[MAX_METRIC_LEN + 1];

	if (!is_metric_word(w, n))
		return 0;
	snprintf(name, sizeof(name), "%.*s", (int)n, w);
	if (probe_type_metric(t, name))
		return 0;
	snprintf(why, len, "%s: docs/spec.md documents `%s`, which it does not publish", t->name,
	         name);
	return -EINVAL;
}

/* Every `word` at parenthesis depth 0, not a link's text, is a metric. */
static int check_documented(const struct probe_type_def *t, const char *s, size_t n, char *why,
                            size_t len)
{
	int depth = 0;

	for (size_t i = 0; i < n; i++) {
		const char *w = s + i + 1, *close;
		bool link;

		if (s[i] == '(')
			depth++;
		else if (s[i] == ')' && depth > 0)
			depth--;
		if (s[i] != '`')
			continue;
		close = memchr(w, '`', n - i - 1);
		if (!close)
			break;
		link = close + 2 < s + n && close[1] == ']' && close[2] == '(';
		if (depth == 0 && !link && check_word(t, w, (size_t)(close - w), why, len) < 0)
			return -EINVAL;
		i = (size_t)(close - s);
	}
	return 0;
}

static int check_deadline(const struct probe_type_def *t, const char *sec, size_t n, char *why,
                          size_t len)
{
	char want[160], d[32];

	if (t->deadline_doc) {
		snprintf(want, sizeof(want), DEADLINE_TEXT "%s", t->deadline_doc);
	} else {
		rd_format_duration(t->deadline_fixed_ms, d, sizeof(d));
		snprintf(want, sizeof(want), DEADLINE_TEXT "`%s`", d);
	}
	if (memmem(sec, n, want, strlen(want)))
		return 0;
	snprintf(why, len, "%s: docs/spec.md does not say \"%s\"", t->name, want);
	return -ENOENT;
}

int probe_type_docs_check(const struct probe_type_def *t, const char *md, char *why, size_t len)
{
	const char *sec, *m;
	size_t n_sec, n_m;

	if (find_section(md, t->name, &sec, &n_sec) < 0) {
		snprintf(why, len, "%s: docs/spec.md has no section '### %s'", t->name, t->name);
		return -ENOENT;
	}
	if (t->n_metrics && find_metrics(sec, n_sec, &m, &n_m) < 0) {
		snprintf(why, len, "%s: its section has no " METRICS_LABEL " paragraph", t->name);
		return -ENOENT;
	}
	for (size_t i = 0; i < t->n_metrics; i++) {
		if (!has_quoted(m, n_m, t->metrics[i].name)) {
			snprintf(why, len, "%s: metric `%s` is not documented in docs/spec.md",
			         t->name, t->metrics[i].name);
			return -ENOENT;
		}
	}
	if (t->n_metrics && check_documented(t, m, n_m, why, len) < 0)
		return -EINVAL;
	return check_deadline(t, sec, n_sec, why, len);
}
