/* ere: the caps on spec regexes and matching off the loop (see ere.h).
 * The check is a small recursive-descent walk of the ERE grammar that
 * only measures: how deep groups nest and how many pattern elements
 * glibc would build once every {n,m} is expanded. regcomp() still decides
 * what is valid; the walk only refuses what would be too costly.
 */
#include <errno.h>
#include <regex.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util/ere.h"

struct scan {
	const char *s;
	size_t i;
	int depth;
	char *why;
	size_t len;
};

static int refuse(struct scan *sc, const char *what)
{
	snprintf(sc->why, sc->len, "%s", what);
	return -EINVAL;
}

static long parse_alt(struct scan *sc);

/* [...]: one element whatever it lists. */
static void skip_bracket(struct scan *sc)
{
	const char *s = sc->s;

	sc->i++;
	if (s[sc->i] == '^')
		sc->i++;
	if (s[sc->i] == ']')
		sc->i++;
	while (s[sc->i] && s[sc->i] != ']') {
		if (s[sc->i] == '[' &&
		    (s[sc->i + 1] == ':' || s[sc->i + 1] == '=' || s[sc->i + 1] == '.')) {
			char close = s[sc->i + 1];
			const char *end = strchr(s + sc->i + 2, close);

			if (end && end[1] == ']') {
				sc->i = (size_t)(end - s) + 2;
				continue;
			}
		}
		sc->i++;
	}
	if (s[sc->i])
		sc->i++;
}

static long atom(struct scan *sc)
{
	const char *s = sc->s;
	long n;

	switch (s[sc->i]) {
	case '(':
		if (++sc->depth > ERE_MAX_DEPTH)
			return refuse(sc, "groups nest more than 8 deep");
		sc->i++;
		n = parse_alt(sc);
		if (n < 0)
			return n;
		if (s[sc->i] == ')')
			sc->i++;
		sc->depth--;
		return n + 1;
	case '[':
		skip_bracket(sc);
		return 1;
	case '\\':
		if (s[sc->i + 1] >= '1' && s[sc->i + 1] <= '9')
			return refuse(sc, "back-references (\\1 to \\9) are not supported");
		sc->i += s[sc->i + 1] ? 2 : 1;
		return 1;
	default:
		sc->i++;
		return 1;
	}
}

/* Reads a repetition count of {n,m}. */
static int count(struct scan *sc, long *ret)
{
	long v = 0;
	bool any = false;

	while (sc->s[sc->i] >= '0' && sc->s[sc->i] <= '9') {
		v = v * 10 + (sc->s[sc->i++] - '0');
		any = true;
		if (v > ERE_MAX_COUNT)
			return refuse(sc, "a repetition count is over 100");
	}
	*ret = any ? v : -1;
	return 0;
}

/* The factor a {n}, {n,} or {n,m} multiplies the repeated part by (glibc
 * copies it max(n, m) times, or n + 1 for an open range). 0 when the
 * brace is not a repetition (regcomp decides what it is). */
static long braces(struct scan *sc)
{
	size_t start = sc->i;
	long lo, hi = -1;

	sc->i++;
	if (count(sc, &lo) < 0)
		return -EINVAL;
	if (sc->s[sc->i] == ',') {
		sc->i++;
		if (count(sc, &hi) < 0)
			return -EINVAL;
	}
	if (sc->s[sc->i] != '}' || lo < 0) {
		sc->i = start + 1;
		return 0;
	}
	sc->i++;
	if (hi < 0)
		return lo + 1;
	if (hi < lo)
		hi = lo;
	return hi > 0 ? hi : 1;
}

static long piece(struct scan *sc)
{
	long n = atom(sc), f;

	while (n >= 0) {
		char c = sc->s[sc->i];

		if (c == '*' || c == '+' || c == '?') {
			sc->i++;
			n += 1;
		} else if (c == '{') {
			f = braces(sc);
			if (f < 0)
				return f;
			if (f == 0)
				break;
			n = n * f + 1;
		} else {
			break;
		}
		if (n > ERE_MAX_NODES)
			return refuse(sc, "its repetitions expand to more than 1000 elements "
			                  "(nested or large {n,m} counts)");
	}
	return n;
}

/* branch ('|' branch)* up to ')' or the end. */
static long parse_alt(struct scan *sc)
{
	long total = 0, n;

	while (sc->s[sc->i] && sc->s[sc->i] != ')') {
		if (sc->s[sc->i] == '|') {
			sc->i++;
			total++;
			continue;
		}
		n = piece(sc);
		if (n < 0)
			return n;
		total += n;
		if (total > ERE_MAX_NODES)
			return refuse(sc, "its repetitions expand to more than 1000 elements "
			                  "(nested or large {n,m} counts)");
	}
	return total;
}

int ere_check(const char *pattern, char *why, size_t len)
{
	struct scan sc = {.s = pattern, .why = why, .len = len};
	char msg[128];
	regex_t re;
	int r;

	if (strlen(pattern) > ERE_MAX_PATTERN) {
		snprintf(why, len, "is longer than %d bytes", ERE_MAX_PATTERN);
		return -EINVAL;
	}
	while (pattern[sc.i]) {
		if (parse_alt(&sc) < 0)
			return -EINVAL;
		if (pattern[sc.i] == ')')
			sc.i++; /* unbalanced: regcomp says so below */
	}
	r = regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB);
	if (r != 0) {
		regerror(r, &re, msg, sizeof(msg));
		snprintf(why, len, "is not a valid POSIX extended regex: %s", msg);
		return -EINVAL;
	}
	regfree(&re);
	return 0;
}

/* ---- matching on the threadpool ---- */

struct ere_match {
	uv_work_t work;
	ere_match_cb cb;
	void *userdata;
	char *pattern;
	char *text;
	int result;
	bool cancelled;
};

static void match_work(uv_work_t *w)
{
	struct ere_match *m = w->data;
	regex_t re;

	if (regcomp(&re, m->pattern, REG_EXTENDED | REG_NOSUB) != 0) {
		m->result = -EINVAL;
		return;
	}
	m->result = regexec(&re, m->text, 0, NULL, 0) == 0 ? 1 : 0;
	regfree(&re);
}

static void match_free(struct ere_match *m)
{
	free(m->pattern);
	free(m->text);
	free(m);
}

static void match_done(uv_work_t *w, int status)
{
	struct ere_match *m = w->data;

	if (!m->cancelled)
		m->cb(m->userdata, status < 0 ? status : m->result);
	match_free(m);
}

int ere_match_async(uv_loop_t *loop, const char *pattern, const char *text, size_t len,
                    ere_match_cb cb, void *userdata, struct ere_match **ret_match)
{
	struct ere_match *m = calloc(1, sizeof(*m));
	int r;

	if (!m)
		return -ENOMEM;
	if (len > ERE_MATCH_MAX)
		len = ERE_MATCH_MAX;
	m->pattern = strdup(pattern);
	m->text = strndup(text, len);
	if (!m->pattern || !m->text) {
		match_free(m);
		return -ENOMEM;
	}
	m->cb = cb;
	m->userdata = userdata;
	m->work.data = m;
	r = uv_queue_work(loop, &m->work, match_work, match_done);
	if (r < 0) {
		match_free(m);
		return r;
	}
	if (ret_match)
		*ret_match = m;
	return 0;
}

void ere_match_cancel(struct ere_match *m)
{
	if (m)
		m->cancelled = true;
}
