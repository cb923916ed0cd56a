/* promtext: strict parser for Prometheus text 0.0.4 and OpenMetrics 1.0
 * expositions (see promtext.h). One pass over the lines, no recursion, no
 * copy of the input: samples are checked and counted, families are kept
 * with a hash index so a large exposition stays linear. It must not
 * accept what Prometheus would refuse to scrape, and must never read past
 * the buffer it was given.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/prom/promtext.h"
#include "lib/spec/spec_yaml.h"
#include "lib/util/util.h"

static const char *const type_names[_PROMTEXT_TYPE_MAX] = {
        [PROMTEXT_UNTYPED] = "untyped",   [PROMTEXT_COUNTER] = "counter",
        [PROMTEXT_GAUGE] = "gauge",       [PROMTEXT_HISTOGRAM] = "histogram",
        [PROMTEXT_SUMMARY] = "summary",   [PROMTEXT_INFO] = "info",
        [PROMTEXT_STATESET] = "stateset", [PROMTEXT_GAUGEHISTOGRAM] = "gaugehistogram",
};

const char *promtext_type_to_string(enum promtext_type t)
{
	return t < _PROMTEXT_TYPE_MAX ? type_names[t] : "?";
}

int promtext_type_from_string(const char *s, enum promtext_type *ret)
{
	if (strcmp(s, "unknown") == 0) {
		*ret = PROMTEXT_UNTYPED;
		return 0;
	}
	for (size_t i = 0; i < _PROMTEXT_TYPE_MAX; i++)
		if (strcmp(s, type_names[i]) == 0) {
			*ret = (enum promtext_type)i;
			return 0;
		}
	return -EINVAL;
}

enum promtext_format promtext_format_from_content_type(const char *ct)
{
	static const char om[] = "application/openmetrics-text";

	if (ct && strncasecmp(ct, om, sizeof(om) - 1) == 0)
		return PROMTEXT_OPENMETRICS;
	return PROMTEXT_TEXT;
}

/* ---- name -> family index (open addressing, FNV-1a) ---- */

struct index {
	size_t *slots; /* family index + 1; 0 = empty */
	size_t cap;    /* power of two */
	bool *closed;  /* OpenMetrics: family finished, must not come back */
	size_t closed_cap;
};

static uint64_t hash(const char *s, size_t n)
{
	uint64_t h = 1469598103934665603ULL;

	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 1099511628211ULL;
	}
	return h;
}

static struct promtext_family *lookup_n(const struct promtext *pt, const char *name, size_t n)
{
	const struct index *ix = pt->index;
	size_t mask = ix->cap - 1;

	for (size_t i = hash(name, n) & mask;; i = (i + 1) & mask) {
		struct promtext_family *f;

		if (ix->slots[i] == 0)
			return NULL;
		f = &pt->families[ix->slots[i] - 1];
		if (strlen(f->name) == n && memcmp(f->name, name, n) == 0)
			return f;
	}
}

static void index_put(struct index *ix, const struct promtext *pt, size_t fi)
{
	const char *name = pt->families[fi].name;
	size_t mask = ix->cap - 1;
	size_t i = hash(name, strlen(name)) & mask;

	while (ix->slots[i] != 0)
		i = (i + 1) & mask;
	ix->slots[i] = fi + 1;
}

/* Keeps the table at most half full. */
static int index_grow(struct promtext *pt)
{
	struct index *ix = pt->index;
	size_t *old = ix->slots;

	if ((pt->n_families + 1) * 2 <= ix->cap)
		return 0;
	ix->slots = calloc(ix->cap * 2, sizeof(*ix->slots));
	if (!ix->slots) {
		ix->slots = old;
		return -ENOMEM;
	}
	ix->cap *= 2;
	for (size_t i = 0; i < pt->n_families; i++)
		index_put(ix, pt, i);
	free(old);
	return 0;
}

/* ---- parser ---- */

struct parser {
	const char *buf;
	size_t len, pos, line;
	enum promtext_format fmt;
	struct promtext *pt;
	struct promtext_error *err;
	size_t cur; /* family of the previous line; SIZE_MAX: none */
	size_t cap_families;
	bool eof_seen;
};

/* A cursor over one line. */
struct cur {
	const char *s;
	size_t n, i;
};

__attribute__((format(printf, 3, 4))) static int fail(struct parser *ps, int code, const char *fmt,
                                                      ...)
{
	va_list ap;

	ps->err->line = ps->line;
	va_start(ap, fmt);
	vsnprintf(ps->err->message, sizeof(ps->err->message), fmt, ap);
	va_end(ap);
	return code;
}

static bool om(const struct parser *ps)
{
	return ps->fmt == PROMTEXT_OPENMETRICS;
}

static bool at_end(const struct cur *c)
{
	return c->i >= c->n;
}

static char peek(const struct cur *c)
{
	return at_end(c) ? '\0' : c->s[c->i];
}

static bool is_blank(char ch)
{
	return ch == ' ' || ch == '\t';
}

/* Text format: any run of blanks. OpenMetrics: exactly one space. Returns
 * false if the separator is missing (or malformed in OpenMetrics). */
static bool skip_sep(const struct parser *ps, struct cur *c)
{
	if (om(ps)) {
		if (peek(c) != ' ')
			return false;
		c->i++;
		return peek(c) != ' ';
	}
	if (!is_blank(peek(c)))
		return false;
	while (is_blank(peek(c)))
		c->i++;
	return true;
}

static void skip_blanks_text(const struct parser *ps, struct cur *c)
{
	if (!om(ps))
		while (is_blank(peek(c)))
			c->i++;
}

static bool name_start(char ch, bool colon)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_' ||
	       (colon && ch == ':');
}

static bool name_char(char ch, bool colon)
{
	return name_start(ch, colon) || (ch >= '0' && ch <= '9');
}

/* Reads a metric name (colon true) or label name; returns its length, 0
 * when there is none. */
static size_t read_name(struct cur *c, bool colon, const char **ret)
{
	size_t start = c->i;

	if (!name_start(peek(c), colon))
		return 0;
	while (!at_end(c) && name_char(c->s[c->i], colon))
		c->i++;
	*ret = c->s + start;
	return c->i - start;
}

/* A token up to the next blank. */
static size_t read_token(struct cur *c, const char **ret)
{
	size_t start = c->i;

	while (!at_end(c) && !is_blank(c->s[c->i]))
		c->i++;
	*ret = c->s + start;
	return c->i - start;
}

/* Strict float: the forms Prometheus accepts (decimal, exponent, NaN,
 * [+-]Inf), never hex or C's nan(...) extensions. */
static int parse_float(const char *s, size_t n, double *ret)
{
	char tmp[64];
	char *end;
	double v;

	if (n == 0 || n >= sizeof(tmp) || memchr(s, 'x', n) || memchr(s, 'X', n) ||
	    memchr(s, '(', n))
		return -EINVAL;
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	if (strcasecmp(tmp, "nan") == 0) {
		*ret = NAN;
		return 0;
	}
	errno = 0;
	v = strtod(tmp, &end);
	if (end != tmp + n || is_blank(tmp[0]))
		return -EINVAL;
	if (errno == ERANGE && isfinite(v) && v != 0)
		return -EINVAL;
	*ret = v;
	return 0;
}

static int parse_int(const char *s, size_t n, int64_t *ret)
{
	char tmp[32];

	if (n == 0 || n >= sizeof(tmp))
		return -EINVAL;
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	return rd_parse_int64(tmp, INT64_MIN, INT64_MAX, ret);
}

/* Unescapes \\, \n and (quoted=true) \" from s[0..n) into a new string;
 * any other escape is an error. */
static int unescape(const char *s, size_t n, bool quoted, char **ret)
{
	char *out = malloc(n + 1);
	size_t o = 0;

	if (!out)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];

		if (ch == '\\') {
			char e = i + 1 < n ? s[++i] : '\0';

			if (e == 'n')
				ch = '\n';
			else if (e == '\\' || (quoted && e == '"'))
				ch = e;
			else {
				free(out);
				return -EINVAL;
			}
		}
		out[o++] = ch;
	}
	out[o] = '\0';
	*ret = out;
	return 0;
}

/* ---- families ---- */

static int family_add(struct parser *ps, const char *name, size_t n, struct promtext_family **ret)
{
	struct promtext *pt = ps->pt;
	struct index *ix = pt->index;
	struct promtext_family *f;
	int r;

	if (pt->n_families >= PROMTEXT_MAX_FAMILIES)
		return fail(ps, -E2BIG, "more than %d metric families", PROMTEXT_MAX_FAMILIES);
	if (pt->n_families == ps->cap_families) {
		size_t cap = ps->cap_families ? ps->cap_families * 2 : 16;
		void *fam = realloc(pt->families, cap * sizeof(*pt->families));
		void *closed;

		if (!fam)
			return -ENOMEM;
		pt->families = fam;
		closed = realloc(ix->closed, cap * sizeof(*ix->closed));
		if (!closed)
			return -ENOMEM;
		ix->closed = closed;
		ps->cap_families = cap;
	}
	r = index_grow(pt);
	if (r < 0)
		return r;
	f = &pt->families[pt->n_families];
	memset(f, 0, sizeof(*f));
	/* Not strndup: the input need not be NUL-terminated anywhere, and
	 * strndup may look past n bytes for a terminator. */
	f->name = malloc(n + 1);
	if (!f->name)
		return -ENOMEM;
	memcpy(f->name, name, n);
	f->name[n] = '\0';
	ix->closed[pt->n_families] = false;
	pt->n_families++;
	index_put(ix, pt, pt->n_families - 1);
	*ret = f;
	return 0;
}

/* Suffixes a family's samples may carry, by type. Both formats accept
 * OpenMetrics' _created; a text-format counter is named with its _total. */
static bool suffix_allowed(const struct parser *ps, enum promtext_type t, const char *sfx)
{
	switch (t) {
	case PROMTEXT_COUNTER:
		return strcmp(sfx, "_total") == 0 || strcmp(sfx, "_created") == 0 ||
		       (!om(ps) && sfx[0] == '\0');
	case PROMTEXT_HISTOGRAM:
		return strcmp(sfx, "_bucket") == 0 || strcmp(sfx, "_sum") == 0 ||
		       strcmp(sfx, "_count") == 0 || strcmp(sfx, "_created") == 0;
	case PROMTEXT_GAUGEHISTOGRAM:
		return strcmp(sfx, "_bucket") == 0 || strcmp(sfx, "_gsum") == 0 ||
		       strcmp(sfx, "_gcount") == 0;
	case PROMTEXT_SUMMARY:
		return sfx[0] == '\0' || strcmp(sfx, "_sum") == 0 || strcmp(sfx, "_count") == 0 ||
		       strcmp(sfx, "_created") == 0;
	case PROMTEXT_INFO:
		return strcmp(sfx, "_info") == 0;
	default:
		return sfx[0] == '\0';
	}
}

static const char *const suffixes[] = {"_total", "_created", "_bucket", "_sum",
                                       "_count", "_gsum",    "_gcount", "_info"};

/* The family a sample name belongs to, by its declared name and type, or
 * NULL. *ret_sfx is the suffix that matched ("" for the bare name). */
static struct promtext_family *family_of(const struct parser *ps, const char *name, size_t n,
                                         const char **ret_sfx)
{
	struct promtext_family *f = lookup_n(ps->pt, name, n);

	*ret_sfx = "";
	if (f && (!f->typed || suffix_allowed(ps, f->type, "")))
		return f;
	for (size_t i = 0; i < RD_ARRAY_SIZE(suffixes); i++) {
		size_t sl = strlen(suffixes[i]);
		struct promtext_family *b;

		if (n <= sl || memcmp(name + n - sl, suffixes[i], sl) != 0)
			continue;
		b = lookup_n(ps->pt, name, n - sl);
		if (b && b->typed && suffix_allowed(ps, b->type, suffixes[i])) {
			*ret_sfx = suffixes[i];
			return b;
		}
	}
	return f; /* a bare name its own type does not allow: caught later */
}

const struct promtext_family *promtext_find(const struct promtext *pt, const char *name)
{
	struct parser ps = {.pt = (struct promtext *)pt, .fmt = pt->format};
	struct promtext_family *f;
	const char *sfx;
	char buf[PROMTEXT_MAX_NAME + 8];

	/* A family's own name always finds it, whatever its type allows. */
	f = lookup_n(pt, name, strlen(name));
	if (!f)
		f = family_of(&ps, name, strlen(name), &sfx);
	if (f)
		return f;
	/* "foo" for a text-format counter exposed as "foo_total". */
	if (snprintf(buf, sizeof(buf), "%s_total", name) >= (int)sizeof(buf))
		return NULL;
	f = lookup_n(pt, buf, strlen(buf));
	return f && f->type == PROMTEXT_COUNTER ? f : NULL;
}

/* OpenMetrics: a family's lines are contiguous. Called whenever a line
 * belongs to family f. */
static int enter_family(struct parser *ps, struct promtext_family *f)
{
	struct index *ix = ps->pt->index;
	size_t fi = (size_t)(f - ps->pt->families);

	if (ps->cur == fi)
		return 0;
	if (om(ps)) {
		if (ix->closed[fi])
			return fail(ps, -EINVAL, "lines of family '%s' are interleaved with others",
			            f->name);
		if (ps->cur != SIZE_MAX)
			ix->closed[ps->cur] = true;
	}
	ps->cur = fi;
	return 0;
}

/* ---- metadata lines ---- */

/* The family a metadata line names; created (untyped) when new. */
static int meta_family(struct parser *ps, const char *name, size_t n, struct promtext_family **ret)
{
	struct promtext_family *f = lookup_n(ps->pt, name, n);
	int r;

	if (!f) {
		r = family_add(ps, name, n, &f);
		if (r < 0)
			return r;
	} else if (f->samples > 0) {
		return fail(ps, -EINVAL, "metadata for '%s' after its samples", f->name);
	}
	r = enter_family(ps, f);
	if (r < 0)
		return r;
	*ret = f;
	return 0;
}

static int meta_type(struct parser *ps, struct promtext_family *f, const char *s, size_t n)
{
	char word[32];
	enum promtext_type t;

	if (f->typed)
		return fail(ps, -EINVAL, "second TYPE line for '%s'", f->name);
	if (n == 0 || n >= sizeof(word))
		return fail(ps, -EINVAL, "TYPE line for '%s' without a valid type", f->name);
	memcpy(word, s, n);
	word[n] = '\0';
	if (promtext_type_from_string(word, &t) < 0 || (om(ps) && strcmp(word, "untyped") == 0) ||
	    (!om(ps) && (strcmp(word, "unknown") == 0 || t >= PROMTEXT_INFO)))
		return fail(ps, -EINVAL, "unknown type '%s' for '%s' in this format", word,
		            f->name);
	f->type = t;
	f->typed = true;
	return 0;
}

static int meta_text(struct parser *ps, struct promtext_family *f, const char *kw, const char *s,
                     size_t n)
{
	char **dst = strcmp(kw, "HELP") == 0 ? &f->help : &f->unit;
	int r;

	if (*dst)
		return fail(ps, -EINVAL, "second %s line for '%s'", kw, f->name);
	r = unescape(s, n, om(ps), dst);
	if (r == -EINVAL)
		return fail(ps, r, "bad escape sequence in %s of '%s'", kw, f->name);
	if (r == 0 && dst == &f->unit && om(ps)) {
		size_t nl = strlen(f->name), ul = strlen(f->unit);

		/* OpenMetrics: a family with a unit has it as its name's suffix. */
		if (ul && (nl <= ul || strcmp(f->name + nl - ul, f->unit) != 0))
			return fail(ps, -EINVAL, "family '%s' does not end with its unit '%s'",
			            f->name, f->unit);
	}
	return r;
}

/* "# KW name rest": KW is HELP, TYPE or UNIT (UNIT: OpenMetrics only). */
static int meta_line(struct parser *ps, struct cur *c, const char *kw)
{
	struct promtext_family *f = NULL;
	const char *name, *rest;
	size_t n, rn;
	int r;

	n = read_name(c, true, &name);
	if (n == 0 || n > PROMTEXT_MAX_NAME)
		return fail(ps, -EINVAL, "%s line without a valid metric name", kw);
	if (!at_end(c) && !skip_sep(ps, c))
		return fail(ps, -EINVAL, "%s line: bad character after the name", kw);
	rest = c->s + c->i;
	rn = c->n - c->i;
	if (strcmp(kw, "TYPE") == 0 && !om(ps))
		while (rn > 0 && is_blank(rest[rn - 1]))
			rn--;
	r = meta_family(ps, name, n, &f);
	if (r < 0)
		return r;
	if (strcmp(kw, "TYPE") == 0)
		return meta_type(ps, f, rest, rn);
	return meta_text(ps, f, kw, rest, rn);
}

static bool starts_word(const struct cur *c, const char *w)
{
	size_t n = strlen(w);

	return c->n - c->i > n && memcmp(c->s + c->i, w, n) == 0 && c->s[c->i + n] == ' ';
}

static int comment_line(struct parser *ps, struct cur *c)
{
	static const char *const kws[] = {"HELP", "TYPE", "UNIT"};

	c->i = 1;
	if (om(ps) && c->n == 5 && memcmp(c->s, "# EOF", 5) == 0) {
		ps->eof_seen = true;
		return 0;
	}
	if (!om(ps)) {
		while (is_blank(peek(c)))
			c->i++;
		if (c->i == 1)
			return 0; /* "#foo": a comment */
	} else if (peek(c) != ' ') {
		return fail(ps, -EINVAL, "a comment other than HELP, TYPE, UNIT or EOF");
	} else {
		c->i++;
	}
	for (size_t k = 0; k < RD_ARRAY_SIZE(kws); k++) {
		if (k == 2 && !om(ps))
			break;
		if (starts_word(c, kws[k]) ||
		    (!om(ps) && c->n - c->i > 4 && memcmp(c->s + c->i, kws[k], 4) == 0 &&
		     c->s[c->i + 4] == '\t')) {
			c->i += 5;
			skip_blanks_text(ps, c);
			return meta_line(ps, c, kws[k]);
		}
	}
	if (om(ps))
		return fail(ps, -EINVAL, "a comment other than HELP, TYPE, UNIT or EOF");
	return 0;
}

/* ---- sample lines ---- */

struct span {
	const char *s;
	size_t n;
};

struct labels {
	struct span names[PROMTEXT_MAX_LABELS];
	struct span values[PROMTEXT_MAX_LABELS]; /* raw, still escaped */
	size_t n;
};

static bool span_is(const struct span *sp, const char *w)
{
	return sp->n == strlen(w) && memcmp(sp->s, w, sp->n) == 0;
}

/* A quoted label value; c is at the opening quote. */
static int label_value(struct parser *ps, struct cur *c, struct span *ret)
{
	size_t start;

	if (peek(c) != '"')
		return fail(ps, -EINVAL, "label value must be quoted");
	start = ++c->i;
	while (!at_end(c) && c->s[c->i] != '"') {
		if (c->s[c->i] == '\\') {
			char e = c->i + 1 < c->n ? c->s[c->i + 1] : '\0';

			if (e != '\\' && e != '"' && e != 'n')
				return fail(ps, -EINVAL, "bad escape sequence in a label value");
			c->i++;
		}
		c->i++;
	}
	if (at_end(c))
		return fail(ps, -EINVAL, "unterminated label value");
	ret->s = c->s + start;
	ret->n = c->i - start;
	c->i++;
	return 0;
}

static int label_pair(struct parser *ps, struct cur *c, struct labels *ls)
{
	struct span name;
	int r;

	if (ls->n >= PROMTEXT_MAX_LABELS)
		return fail(ps, -E2BIG, "more than %d labels", PROMTEXT_MAX_LABELS);
	name.n = read_name(c, false, &name.s);
	if (name.n == 0)
		return fail(ps, -EINVAL, "bad label name");
	for (size_t i = 0; i < ls->n; i++)
		if (ls->names[i].n == name.n && memcmp(ls->names[i].s, name.s, name.n) == 0)
			return fail(ps, -EINVAL, "duplicate label '%.*s'", (int)name.n, name.s);
	skip_blanks_text(ps, c);
	if (peek(c) != '=')
		return fail(ps, -EINVAL, "expected '=' after label '%.*s'", (int)name.n, name.s);
	c->i++;
	skip_blanks_text(ps, c);
	r = label_value(ps, c, &ls->values[ls->n]);
	if (r < 0)
		return r;
	ls->names[ls->n++] = name;
	return 0;
}

/* "{a="1",b="2"}"; c is at '{'. The text format allows blanks and a
 * trailing comma, OpenMetrics neither. */
static int label_set(struct parser *ps, struct cur *c, struct labels *ls)
{
	int r;

	ls->n = 0;
	c->i++;
	skip_blanks_text(ps, c);
	while (peek(c) != '}') {
		r = label_pair(ps, c, ls);
		if (r < 0)
			return r;
		skip_blanks_text(ps, c);
		if (peek(c) == ',') {
			c->i++;
			skip_blanks_text(ps, c);
			if (om(ps) && peek(c) == '}')
				return fail(ps, -EINVAL, "trailing comma in a label set");
		} else if (peek(c) != '}') {
			return fail(ps, -EINVAL, "expected ',' or '}' in a label set");
		}
	}
	c->i++;
	return 0;
}

/* Histogram buckets need a numeric `le`, summary quantiles `quantile`. */
static int check_type_labels(struct parser *ps, const struct promtext_family *f, const char *sfx,
                             const struct labels *ls)
{
	const char *want = NULL;
	double v;

	if ((f->type == PROMTEXT_HISTOGRAM || f->type == PROMTEXT_GAUGEHISTOGRAM) &&
	    strcmp(sfx, "_bucket") == 0)
		want = "le";
	else if (f->type == PROMTEXT_SUMMARY && sfx[0] == '\0')
		want = "quantile";
	if (!want)
		return 0;
	for (size_t i = 0; i < ls->n; i++)
		if (span_is(&ls->names[i], want)) {
			if (parse_float(ls->values[i].s, ls->values[i].n, &v) < 0)
				return fail(ps, -EINVAL,
				            "label %s=\"%.*s\" of '%s' is not a number", want,
				            (int)ls->values[i].n, ls->values[i].s, f->name);
			return 0;
		}
	return fail(ps, -EINVAL, "a sample of %s '%s' lacks the '%s' label",
	            promtext_type_to_string(f->type), f->name, want);
}

/* Value and optional timestamp: text ms as an integer, OpenMetrics
 * seconds as a float. */
static int value_and_time(struct parser *ps, struct cur *c)
{
	const char *tok;
	size_t n;
	double v;
	int64_t ts;

	if (!skip_sep(ps, c))
		return fail(ps, -EINVAL, "expected a blank before the value");
	n = read_token(c, &tok);
	if (parse_float(tok, n, &v) < 0)
		return fail(ps, -EINVAL, "bad value '%.*s'", (int)(n > 40 ? 40 : n), tok);
	skip_blanks_text(ps, c);
	if (at_end(c) || peek(c) == '#')
		return 0;
	if (om(ps) && !skip_sep(ps, c))
		return fail(ps, -EINVAL, "expected a blank before the timestamp");
	if (om(ps) && peek(c) == '#')
		return 0;
	n = read_token(c, &tok);
	if (om(ps) ? parse_float(tok, n, &v) < 0 || !isfinite(v) : parse_int(tok, n, &ts) < 0)
		return fail(ps, -EINVAL, "bad timestamp '%.*s'", (int)(n > 40 ? 40 : n), tok);
	skip_blanks_text(ps, c);
	if (om(ps) && !at_end(c) && !skip_sep(ps, c))
		return fail(ps, -EINVAL, "unexpected text after the timestamp");
	return 0;
}

/* OpenMetrics exemplar: "# {labels} value [timestamp]". */
static int exemplar(struct parser *ps, struct cur *c)
{
	struct labels ls;
	int r;

	if (!om(ps))
		return fail(ps, -EINVAL, "unexpected text after the value");
	if (c->n - c->i < 3 || memcmp(c->s + c->i, "# {", 3) != 0)
		return fail(ps, -EINVAL, "bad exemplar");
	c->i += 2;
	r = label_set(ps, c, &ls);
	if (r < 0)
		return r;
	r = value_and_time(ps, c);
	if (r < 0)
		return r;
	if (!at_end(c))
		return fail(ps, -EINVAL, "unexpected text after the exemplar");
	return 0;
}

static int sample_family(struct parser *ps, const char *name, size_t n,
                         struct promtext_family **ret, const char **ret_sfx)
{
	struct promtext_family *f = family_of(ps, name, n, ret_sfx);
	int r;

	if (!f) {
		r = family_add(ps, name, n, &f);
		if (r < 0)
			return r;
	} else if (f->typed && !suffix_allowed(ps, f->type, *ret_sfx)) {
		return fail(ps, -EINVAL, "sample '%.*s' does not fit %s '%s'", (int)n, name,
		            promtext_type_to_string(f->type), f->name);
	}
	r = enter_family(ps, f);
	if (r < 0)
		return r;
	*ret = f;
	return 0;
}

static int sample_line(struct parser *ps, struct cur *c)
{
	struct promtext_family *f = NULL;
	struct labels *ls = NULL;
	const char *name, *sfx;
	size_t n;
	int r;

	skip_blanks_text(ps, c);
	n = read_name(c, true, &name);
	if (n == 0 || n > PROMTEXT_MAX_NAME)
		return fail(ps, -EINVAL, "expected a metric name");
	if (ps->pt->n_samples >= PROMTEXT_MAX_SAMPLES)
		return fail(ps, -E2BIG, "more than %d samples", PROMTEXT_MAX_SAMPLES);
	r = sample_family(ps, name, n, &f, &sfx);
	if (r < 0)
		return r;
	ls = calloc(1, sizeof(*ls));
	if (!ls)
		return -ENOMEM;
	n = c->i;
	skip_blanks_text(ps, c);
	if (peek(c) != '{')
		c->i = n; /* the blank before the value */
	else
		r = label_set(ps, c, ls);
	if (r == 0)
		r = check_type_labels(ps, f, sfx, ls);
	if (r == 0)
		r = value_and_time(ps, c);
	if (r == 0 && !at_end(c))
		r = exemplar(ps, c);
	free(ls);
	if (r < 0)
		return r;
	f->samples++;
	ps->pt->n_samples++;
	return 0;
}

/* ---- driver ---- */

static int parse_line(struct parser *ps, const char *s, size_t n)
{
	struct cur c = {.s = s, .n = n};
	size_t i = 0;

	if (ps->eof_seen)
		return fail(ps, -EINVAL, "content after '# EOF'");
	if (memchr(s, '\0', n))
		return fail(ps, -EINVAL, "NUL byte");
	if (!om(ps))
		while (i < n && is_blank(s[i]))
			i++;
	if (i == n) {
		if (om(ps))
			return fail(ps, -EINVAL, "empty line");
		return 0;
	}
	if (s[i] == '#') {
		c.s += i;
		c.n -= i;
		return comment_line(ps, &c);
	}
	return sample_line(ps, &c);
}

static int parse_all(struct parser *ps)
{
	while (ps->pos < ps->len) {
		const char *s = ps->buf + ps->pos;
		const char *nl = memchr(s, '\n', ps->len - ps->pos);
		size_t n = nl ? (size_t)(nl - s) : ps->len - ps->pos;
		int r;

		ps->line++;
		if (n > PROMTEXT_MAX_LINE)
			return fail(ps, -E2BIG, "line longer than %d bytes", PROMTEXT_MAX_LINE);
		r = parse_line(ps, s, n);
		if (r < 0)
			return r;
		ps->pos += n + (nl ? 1 : 0);
	}
	if (om(ps) && !ps->eof_seen)
		return fail(ps, -EINVAL, "OpenMetrics exposition does not end with '# EOF'");
	return 0;
}

static int promtext_new(enum promtext_format fmt, struct promtext **ret)
{
	struct promtext *pt = calloc(1, sizeof(*pt));
	struct index *ix = calloc(1, sizeof(*ix));

	if (!pt || !ix)
		goto fail;
	ix->cap = 64;
	ix->slots = calloc(ix->cap, sizeof(*ix->slots));
	if (!ix->slots)
		goto fail;
	pt->index = ix;
	pt->format = fmt;
	*ret = pt;
	return 0;
fail:
	free(ix);
	free(pt);
	return -ENOMEM;
}

int promtext_parse(const char *buf, size_t len, enum promtext_format fmt, struct promtext **ret,
                   struct promtext_error *err)
{
	struct parser ps = {.buf = buf, .len = len, .fmt = fmt, .err = err, .cur = SIZE_MAX};
	size_t bad;
	int r;

	memset(err, 0, sizeof(*err));
	if (len > PROMTEXT_MAX_BYTES)
		return fail(&ps, -E2BIG, "exposition larger than %d bytes", PROMTEXT_MAX_BYTES);
	if (!spec_utf8_valid(buf, len, &bad))
		return fail(&ps, -EINVAL, "invalid UTF-8 at byte %zu", bad);
	r = promtext_new(fmt, &ps.pt);
	if (r < 0)
		return r;
	r = parse_all(&ps);
	if (r < 0) {
		promtext_free(ps.pt);
		return r;
	}
	*ret = ps.pt;
	return 0;
}

void promtext_free(struct promtext *pt)
{
	struct index *ix;

	if (!pt)
		return;
	for (size_t i = 0; i < pt->n_families; i++) {
		free(pt->families[i].name);
		free(pt->families[i].help);
		free(pt->families[i].unit);
	}
	free(pt->families);
	ix = pt->index;
	if (ix) {
		free(ix->slots);
		free(ix->closed);
		free(ix);
	}
	free(pt);
}
