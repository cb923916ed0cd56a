/* promql: PromQL text to a tree and back (see promql.h). A recursive
 * descent over the bytes, precedence climbing for binary operators
 * (lowest first: or; and unless; comparisons; + -; * / % atan2; unary
 * sign; ^, right-associative), bounded in depth, node count and matchers
 * per selector so hostile input ends in an error, never in a stack
 * overflow, a quadratic walk or a large allocation.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/prom/promql.h"

struct parser {
	const char *s;
	size_t len, pos;
	int depth;
	size_t nodes;
	int err; /* first error: -EINVAL or -ENOMEM */
	struct promql_error *e;
};

__attribute__((format(printf, 2, 3))) static void fail(struct parser *p, const char *fmt, ...)
{
	va_list ap;

	if (p->err)
		return;
	p->err = -EINVAL;
	if (!p->e)
		return;
	p->e->pos = p->pos;
	va_start(ap, fmt);
	vsnprintf(p->e->message, sizeof(p->e->message), fmt, ap);
	va_end(ap);
}

static void oom(struct parser *p)
{
	if (!p->err)
		p->err = -ENOMEM;
}

static void skip_ws(struct parser *p)
{
	while (p->pos < p->len) {
		char c = p->s[p->pos];

		if (c == '#') {
			while (p->pos < p->len && p->s[p->pos] != '\n')
				p->pos++;
		} else if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
			p->pos++;
		} else {
			break;
		}
	}
}

static char peek(struct parser *p)
{
	skip_ws(p);
	return p->pos < p->len ? p->s[p->pos] : '\0';
}

static bool accept(struct parser *p, const char *tok)
{
	size_t n = strlen(tok);

	skip_ws(p);
	if (p->len - p->pos < n || memcmp(p->s + p->pos, tok, n) != 0)
		return false;
	p->pos += n;
	return true;
}

static bool expect(struct parser *p, const char *tok, const char *what)
{
	if (accept(p, tok))
		return true;
	fail(p, "expected '%s' %s", tok, what);
	return false;
}

static bool ident_start(char c)
{
	return isalpha((unsigned char)c) || c == '_' || c == ':';
}

static bool ident_char(char c)
{
	return isalnum((unsigned char)c) || c == '_' || c == ':';
}

/* The identifier at pos (not consumed), its length in *n; 0 for none. */
static size_t ident_len(struct parser *p)
{
	size_t n = 0;

	skip_ws(p);
	if (p->pos >= p->len || !ident_start(p->s[p->pos]))
		return 0;
	while (p->pos + n < p->len && ident_char(p->s[p->pos + n]))
		n++;
	return n;
}

/* The identifier at pos equals word (case-insensitive, as PromQL's
 * keywords are). */
static bool at_word(struct parser *p, const char *word)
{
	size_t n = ident_len(p);

	return n == strlen(word) && strncasecmp(p->s + p->pos, word, n) == 0;
}

static bool accept_word(struct parser *p, const char *word)
{
	if (!at_word(p, word))
		return false;
	p->pos += strlen(word);
	return true;
}

static char *dup_n(struct parser *p, const char *s, size_t n)
{
	char *d = strndup(s, n);

	if (!d)
		oom(p);
	return d;
}

/* A label name: [a-zA-Z_][a-zA-Z0-9_]* (keywords are fine). */
static char *label_name(struct parser *p)
{
	size_t n = 0;

	skip_ws(p);
	while (p->pos + n < p->len &&
	       (isalnum((unsigned char)p->s[p->pos + n]) || p->s[p->pos + n] == '_'))
		n++;
	if (n == 0 || isdigit((unsigned char)p->s[p->pos])) {
		fail(p, "expected a label name");
		return NULL;
	}
	p->pos += n;
	return dup_n(p, p->s + p->pos - n, n);
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)tolower((unsigned char)c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Writes code point cp as UTF-8 to out; returns the bytes written. */
static size_t put_utf8(char *out, unsigned long cp)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xc0 | (cp >> 6));
		out[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xe0 | (cp >> 12));
		out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		out[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	out[0] = (char)(0xf0 | (cp >> 18));
	out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	out[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* \xHH, \uHHHH, \UHHHHHHHH or octal \NNN at s (after the backslash and
 * the letter for x/u/U); digits hex or octal. Returns the value or -1. */
static long read_code(const char *s, size_t avail, size_t digits, int base)
{
	long v = 0;

	if (avail < digits)
		return -1;
	for (size_t i = 0; i < digits; i++) {
		int d = base == 16 ? hexval(s[i]) : (s[i] >= '0' && s[i] <= '7' ? s[i] - '0' : -1);

		if (d < 0)
			return -1;
		v = v * base + d;
	}
	return v;
}

/* One escape after a backslash at p->pos; appends its bytes to out. */
static size_t escape(struct parser *p, char quote, char *out)
{
	static const char simple[] = "a\ab\bf\fn\nr\rt\tv\v\\\\";
	char c = p->s[p->pos];
	size_t avail = p->len - p->pos - 1, digits = c == 'x' ? 2 : c == 'u' ? 4 : 8;
	long v;

	for (size_t i = 0; simple[i]; i += 2)
		if (c == simple[i]) {
			p->pos++;
			*out = simple[i + 1];
			return 1;
		}
	if (c == quote) {
		p->pos++;
		*out = c;
		return 1;
	}
	if (c == 'x' || c == 'u' || c == 'U') {
		v = read_code(p->s + p->pos + 1, avail, digits, 16);
		if (v < 0 || v > 0x10ffff || (c != 'x' && v >= 0xd800 && v < 0xe000))
			goto bad;
		p->pos += 1 + digits;
		if (c == 'x') {
			*out = (char)v;
			return 1;
		}
		return put_utf8(out, (unsigned long)v);
	}
	v = read_code(p->s + p->pos, avail + 1, 3, 8);
	if (v >= 0 && v < 256) {
		p->pos += 3;
		*out = (char)v;
		return 1;
	}
bad:
	fail(p, "unknown escape sequence in a string");
	return 0;
}

/* A string in "..." or '...' (escapes) or `...` (raw). */
static char *string_lit(struct parser *p)
{
	char quote = peek(p), *out;
	size_t o = 0;

	if (quote != '"' && quote != '\'' && quote != '`') {
		fail(p, "expected a string");
		return NULL;
	}
	out = malloc(p->len - p->pos + 1); /* escapes never grow the text */
	if (!out) {
		oom(p);
		return NULL;
	}
	for (p->pos++; p->pos < p->len && p->s[p->pos] != quote;) {
		char c = p->s[p->pos];

		if (c == '\n' && quote != '`')
			break;
		if (c == '\\' && quote != '`') {
			p->pos++;
			if (p->pos >= p->len)
				break;
			o += escape(p, quote, out + o);
			if (p->err)
				break;
			continue;
		}
		out[o++] = c;
		p->pos++;
	}
	if (!p->err && (p->pos >= p->len || p->s[p->pos] != quote))
		fail(p, "unterminated string");
	if (p->err) {
		free(out);
		return NULL;
	}
	p->pos++;
	out[o] = '\0';
	return out;
}

/* A duration: one or more <digits><unit>, units ms s m h d w y. */
static char *duration(struct parser *p, bool allow_sign)
{
	size_t start, units = 0;

	skip_ws(p);
	start = p->pos;
	if (allow_sign && p->pos < p->len && p->s[p->pos] == '-')
		p->pos++;
	while (p->pos < p->len && isdigit((unsigned char)p->s[p->pos])) {
		while (p->pos < p->len && isdigit((unsigned char)p->s[p->pos]))
			p->pos++;
		if (p->len - p->pos >= 2 && p->s[p->pos] == 'm' && p->s[p->pos + 1] == 's')
			p->pos += 2;
		else if (p->pos < p->len && strchr("smhdwy", p->s[p->pos]) && p->s[p->pos])
			p->pos++;
		else
			goto bad;
		units++;
	}
	if (units == 0)
		goto bad;
	return dup_n(p, p->s + start, p->pos - start);
bad:
	p->pos = start;
	fail(p, "expected a duration such as 5m or 1h30m");
	return NULL;
}

/* A number at pos: decimal, hex, exponent, Inf or NaN. Returns its
 * length (not consumed), 0 for none. */
static size_t number_len(struct parser *p)
{
	const char *s = p->s + p->pos;
	size_t avail = p->len - p->pos, n = 0;

	if (avail >= 3 && (strncasecmp(s, "inf", 3) == 0 || strncasecmp(s, "nan", 3) == 0))
		return avail == 3 || !ident_char(s[3]) ? 3 : 0;
	if (avail >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		for (n = 2; n < avail && isxdigit((unsigned char)s[n]);)
			n++;
		return n > 2 ? n : 0;
	}
	while (n < avail && isdigit((unsigned char)s[n]))
		n++;
	if (n < avail && s[n] == '.')
		for (n++; n < avail && isdigit((unsigned char)s[n]);)
			n++;
	if (n == 0 || (n == 1 && s[0] == '.'))
		return 0;
	if (n < avail && (s[n] == 'e' || s[n] == 'E')) {
		size_t k = n + 1;

		if (k < avail && (s[k] == '+' || s[k] == '-'))
			k++;
		if (k < avail && isdigit((unsigned char)s[k])) {
			while (k < avail && isdigit((unsigned char)s[k]))
				k++;
			n = k;
		}
	}
	/* "5m" is a duration, not a number followed by a name. */
	return n < avail && ident_char(s[n]) ? 0 : n;
}

static struct promql_node *node_new(struct parser *p, enum promql_kind kind, size_t pos)
{
	struct promql_node *n;

	if (++p->nodes > PROMQL_MAX_NODES) {
		p->pos = pos; /* the error points at the node's first byte */
		fail(p, "the expression has more than %d operators and operands", PROMQL_MAX_NODES);
		return NULL;
	}
	n = calloc(1, sizeof(*n));
	if (!n) {
		oom(p);
		return NULL;
	}
	n->kind = kind;
	n->pos = pos;
	return n;
}

static int push_name(struct parser *p, struct promql_labels *l, char *name)
{
	char **v;

	if (!name)
		return -1;
	v = realloc(l->names, (l->n + 1) * sizeof(*v));
	if (!v) {
		free(name);
		oom(p);
		return -1;
	}
	l->names = v;
	l->names[l->n++] = name;
	return 0;
}

/* (a, b, c) with a trailing comma allowed; () is fine. */
static void label_list(struct parser *p, struct promql_labels *l)
{
	if (!expect(p, "(", "before a list of label names"))
		return;
	while (!p->err && !accept(p, ")")) {
		if (push_name(p, l, label_name(p)) < 0)
			return;
		if (!accept(p, ",") && peek(p) != ')') {
			fail(p, "expected ',' or ')' in a list of label names");
			return;
		}
	}
}

static bool match_op(struct parser *p, enum promql_match_op *op)
{
	if (accept(p, "=~"))
		*op = PQ_RE;
	else if (accept(p, "!~"))
		*op = PQ_NRE;
	else if (accept(p, "!="))
		*op = PQ_NE;
	else if (accept(p, "="))
		*op = PQ_EQ;
	else
		return false;
	return true;
}

static void matcher(struct parser *p, struct promql_matcher *m)
{
	m->name = label_name(p);
	if (p->err)
		return;
	if (!match_op(p, &m->op)) {
		fail(p, "expected one of = != =~ !~ after label %s", m->name);
		return;
	}
	m->value = string_lit(p);
}

static void add_matcher(struct parser *p, struct promql_node *n)
{
	struct promql_matcher *v;

	if (n->n_matchers >= PROMQL_MAX_MATCHERS) {
		fail(p, "a selector has more than %d label matchers", PROMQL_MAX_MATCHERS);
		return;
	}
	v = realloc(n->matchers, (n->n_matchers + 1) * sizeof(*v));
	if (!v) {
		oom(p);
		return;
	}
	n->matchers = v;
	memset(&v[n->n_matchers], 0, sizeof(*v));
	n->n_matchers++;
	matcher(p, &v[n->n_matchers - 1]);
}

/* {a="b", c=~"d"} after an optional name. */
static void matchers(struct parser *p, struct promql_node *n)
{
	if (!accept(p, "{"))
		return;
	while (!p->err && !accept(p, "}")) {
		add_matcher(p, n);
		if (!p->err && !accept(p, ",") && peek(p) != '}')
			fail(p, "expected ',' or '}' in a label matcher list");
	}
	if (!p->err && !n->text && n->n_matchers == 0)
		fail(p, "a vector selector needs a metric name or a matcher");
}

static struct promql_node *expr(struct parser *p, int min_prec);

static int push_arg(struct parser *p, struct promql_node *n, struct promql_node *a)
{
	struct promql_node **v;

	if (!a)
		return -1;
	v = realloc(n->args, (n->n_args + 1) * sizeof(*v));
	if (!v) {
		promql_free(a);
		oom(p);
		return -1;
	}
	n->args = v;
	n->args[n->n_args++] = a;
	return 0;
}

/* (arg, arg, ...) of a call or aggregation. */
static void arguments(struct parser *p, struct promql_node *n)
{
	if (!expect(p, "(", "before the arguments"))
		return;
	while (!p->err && !accept(p, ")")) {
		if (push_arg(p, n, expr(p, 0)) < 0)
			return;
		if (!accept(p, ",") && peek(p) != ')') {
			fail(p, "expected ',' or ')' after an argument");
			return;
		}
	}
}

static const char *const aggregations[] = {
        "sum",     "avg",      "count",        "min",   "max",    "stddev",      "stdvar", "topk",
        "bottomk", "quantile", "count_values", "group", "limitk", "limit_ratio", NULL};

static bool is_aggregation(struct parser *p, size_t n)
{
	for (size_t i = 0; aggregations[i]; i++)
		if (strlen(aggregations[i]) == n &&
		    strncasecmp(p->s + p->pos, aggregations[i], n) == 0)
			return true;
	return false;
}

static bool grouping(struct parser *p, struct promql_node *n)
{
	if (accept_word(p, "by"))
		n->without = false;
	else if (accept_word(p, "without"))
		n->without = true;
	else
		return false;
	n->has_grouping = true;
	label_list(p, &n->grouping);
	return true;
}

/* sum by (a) (x), sum (x) without (a), topk(5, x). */
static void aggregation(struct parser *p, struct promql_node *n)
{
	bool before = grouping(p, n);

	arguments(p, n);
	if (!p->err && n->n_args == 0)
		fail(p, "%s() needs an expression", n->text);
	if (!p->err && !before)
		grouping(p, n);
}

/* A name: an aggregation, a function call or a metric name. */
static struct promql_node *name_expr(struct parser *p)
{
	size_t n = ident_len(p), start = p->pos;
	bool agg = is_aggregation(p, n);
	struct promql_node *node;
	char *name = dup_n(p, p->s + start, n);

	if (!name)
		return NULL;
	p->pos += n;
	if (agg && (peek(p) == '(' || at_word(p, "by") || at_word(p, "without")))
		node = node_new(p, PQ_AGGREGATE, start);
	else if (peek(p) == '(')
		node = node_new(p, PQ_CALL, start);
	else
		node = node_new(p, PQ_SELECTOR, start);
	if (!node) {
		free(name);
		return NULL;
	}
	node->text = name;
	if (node->kind == PQ_AGGREGATE)
		aggregation(p, node);
	else if (node->kind == PQ_CALL)
		arguments(p, node);
	else
		matchers(p, node);
	return node;
}

static struct promql_node *primary(struct parser *p)
{
	struct promql_node *n = NULL;
	size_t start, len;
	char c = peek(p);

	start = p->pos;
	if (c == '(') {
		p->pos++;
		n = node_new(p, PQ_PAREN, start);
		if (n && (n->a = expr(p, 0)) != NULL)
			expect(p, ")", "to close '('");
	} else if (c == '"' || c == '\'' || c == '`') {
		n = node_new(p, PQ_STRING, start);
		if (n)
			n->text = string_lit(p);
	} else if (c == '{') {
		n = node_new(p, PQ_SELECTOR, start);
		if (n)
			matchers(p, n);
	} else if ((len = number_len(p)) > 0) {
		n = node_new(p, PQ_NUMBER, start);
		if (n)
			n->text = dup_n(p, p->s + start, len);
		p->pos += len;
	} else if (ident_len(p) > 0) {
		n = name_expr(p);
	} else {
		if (c)
			fail(p, "unexpected character '%c'", c);
		else
			fail(p, "unexpected end of expression");
	}
	return n;
}

/* [range] or [range:step] after an expression. */
static struct promql_node *range_suffix(struct parser *p, struct promql_node *n)
{
	size_t start = p->pos;
	char *range = duration(p, false), *step = NULL;
	struct promql_node *sq;

	if (!range)
		return n;
	if (!accept(p, ":")) {
		if (n->kind != PQ_SELECTOR || n->range || n->offset || n->at) {
			free(range);
			fail(p, "a range [%s] only follows a vector selector; use [range:step]",
			     "...");
			return n;
		}
		n->range = range;
		expect(p, "]", "to close a range");
		return n;
	}
	step = peek(p) == ']' ? dup_n(p, "", 0) : duration(p, false);
	sq = step ? node_new(p, PQ_SUBQUERY, start) : NULL;
	if (!sq) {
		free(range);
		free(step);
		return n;
	}
	sq->a = n;
	sq->range = range;
	sq->step = step;
	expect(p, "]", "to close a subquery");
	return sq;
}

/* offset d and @ t, in either order, once each. */
static bool modifier(struct parser *p, struct promql_node *n)
{
	bool can = n->kind == PQ_SELECTOR || n->kind == PQ_SUBQUERY;

	if (at_word(p, "offset")) {
		if (!can || n->offset) {
			fail(p, "offset only follows a selector or subquery, once");
			return false;
		}
		p->pos += 6;
		n->offset = duration(p, true);
		return n->offset != NULL;
	}
	if (!accept(p, "@"))
		return false;
	if (!can || n->at) {
		fail(p, "@ only follows a selector or subquery, once");
		return false;
	}
	if (accept_word(p, "start") || accept_word(p, "end")) {
		bool start = p->s[p->pos - 1] == 't';

		if (expect(p, "(", "after start/end") && expect(p, ")", "after start(/end("))
			n->at = dup_n(p, start ? "start()" : "end()", start ? 7 : 5);
		return n->at != NULL;
	}
	size_t len = number_len(p);

	if (len == 0) {
		fail(p, "expected a timestamp, start() or end() after @");
		return false;
	}
	n->at = dup_n(p, p->s + p->pos, len);
	p->pos += len;
	return n->at != NULL;
}

static struct promql_node *postfix(struct parser *p, struct promql_node *n)
{
	while (n && !p->err) {
		if (accept(p, "["))
			n = range_suffix(p, n);
		else if (!modifier(p, n))
			break;
	}
	return n;
}

static struct promql_node *unary(struct parser *p);

struct binop_info {
	const char *tok;
	enum promql_binop op;
	int prec;
	bool word;
};

/* Longest tokens first. */
static const struct binop_info binops[] = {
        {"==", PQ_CMP_EQ, 3, false},  {"!=", PQ_CMP_NE, 3, false}, {">=", PQ_CMP_GE, 3, false},
        {"<=", PQ_CMP_LE, 3, false},  {">", PQ_CMP_GT, 3, false},  {"<", PQ_CMP_LT, 3, false},
        {"+", PQ_ADD, 4, false},      {"-", PQ_SUB, 4, false},     {"*", PQ_MUL, 5, false},
        {"/", PQ_DIV, 5, false},      {"%", PQ_MOD, 5, false},     {"^", PQ_POW, 7, false},
        {"atan2", PQ_ATAN2, 5, true}, {"and", PQ_AND, 2, true},    {"unless", PQ_UNLESS, 2, true},
        {"or", PQ_OR, 1, true},
};
#define PREC_UNARY 6

static const struct binop_info *peek_binop(struct parser *p)
{
	skip_ws(p);
	for (size_t i = 0; i < sizeof(binops) / sizeof(binops[0]); i++) {
		const struct binop_info *b = &binops[i];
		size_t n = strlen(b->tok);

		if (b->word ? at_word(p, b->tok)
		            : (p->len - p->pos >= n && memcmp(p->s + p->pos, b->tok, n) == 0))
			return b;
	}
	return NULL;
}

/* bool, on(...)/ignoring(...), group_left(...)/group_right(...). */
static void binop_modifiers(struct parser *p, struct promql_node *n)
{
	if (accept_word(p, "bool")) {
		if (!promql_binop_is_comparison(n->op)) {
			fail(p, "bool only modifies a comparison");
			return;
		}
		n->bool_mod = true;
	}
	if (accept_word(p, "on"))
		n->matching = PQ_MATCH_ON;
	else if (accept_word(p, "ignoring"))
		n->matching = PQ_MATCH_IGNORING;
	else
		return;
	label_list(p, &n->match_labels);
	if (accept_word(p, "group_left"))
		n->group = PQ_GROUP_LEFT;
	else if (accept_word(p, "group_right"))
		n->group = PQ_GROUP_RIGHT;
	else
		return;
	if (peek(p) == '(')
		label_list(p, &n->include);
}

static struct promql_node *binary(struct parser *p, struct promql_node *lhs,
                                  const struct binop_info *b)
{
	struct promql_node *n = node_new(p, PQ_BINARY, p->pos);

	if (!n) {
		promql_free(lhs);
		return NULL;
	}
	p->pos += strlen(b->tok);
	n->op = b->op;
	n->a = lhs;
	binop_modifiers(p, n);
	if (!p->err)
		n->b = expr(p, b->op == PQ_POW ? b->prec : b->prec + 1);
	return n;
}

static struct promql_node *expr(struct parser *p, int min_prec)
{
	struct promql_node *lhs;
	const struct binop_info *b;

	if (++p->depth > PROMQL_MAX_DEPTH) {
		fail(p, "the expression nests deeper than %d", PROMQL_MAX_DEPTH);
		p->depth--;
		return NULL;
	}
	lhs = unary(p);
	while (lhs && !p->err && (b = peek_binop(p)) != NULL && b->prec >= min_prec)
		lhs = binary(p, lhs, b);
	p->depth--;
	return lhs;
}

static struct promql_node *unary(struct parser *p)
{
	char c = peek(p);
	struct promql_node *n;

	if (c != '-' && c != '+')
		return postfix(p, primary(p));
	n = node_new(p, PQ_UNARY, p->pos);
	if (!n)
		return NULL;
	p->pos++;
	n->op = c == '-' ? PQ_SUB : PQ_ADD;
	n->a = expr(p, PREC_UNARY + 1);
	return n;
}

int promql_parse(const char *s, size_t len, struct promql_node **ret, struct promql_error *err)
{
	struct parser p = {.s = s, .len = len, .e = err};
	struct promql_node *n;

	*ret = NULL;
	if (err)
		memset(err, 0, sizeof(*err));
	if (len > PROMQL_MAX_LEN) {
		fail(&p, "the expression is longer than %d bytes", PROMQL_MAX_LEN);
		return p.err;
	}
	if (memchr(s, '\0', len)) {
		p.pos = (size_t)((const char *)memchr(s, '\0', len) - s);
		fail(&p, "the expression contains a NUL byte");
		return p.err;
	}
	n = expr(&p, 0);
	if (!p.err && peek(&p) != '\0')
		fail(&p, "unexpected '%c' after the expression", p.s[p.pos]);
	if (p.err) {
		promql_free(n);
		return p.err;
	}
	*ret = n;
	return 0;
}

int promql_parse_matcher(const char *s, struct promql_matcher *ret, struct promql_error *err)
{
	struct parser p = {.s = s, .len = strlen(s), .e = err};

	memset(ret, 0, sizeof(*ret));
	if (err)
		memset(err, 0, sizeof(*err));
	if (p.len > PROMQL_MAX_LEN) {
		fail(&p, "the matcher is longer than %d bytes", PROMQL_MAX_LEN);
		return p.err;
	}
	matcher(&p, ret);
	if (!p.err && peek(&p) != '\0')
		fail(&p, "unexpected '%c' after the matcher", p.s[p.pos]);
	if (p.err)
		promql_matcher_clear(ret);
	return p.err;
}

void promql_matcher_clear(struct promql_matcher *m)
{
	free(m->name);
	free(m->value);
	m->name = m->value = NULL;
}

static void labels_clear(struct promql_labels *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->names[i]);
	free(l->names);
}

void promql_free(struct promql_node *n)
{
	if (!n)
		return;
	free(n->text);
	for (size_t i = 0; i < n->n_matchers; i++)
		promql_matcher_clear(&n->matchers[i]);
	free(n->matchers);
	free(n->range);
	free(n->step);
	free(n->offset);
	free(n->at);
	for (size_t i = 0; i < n->n_args; i++)
		promql_free(n->args[i]);
	free(n->args);
	labels_clear(&n->grouping);
	labels_clear(&n->match_labels);
	labels_clear(&n->include);
	promql_free(n->a);
	promql_free(n->b);
	free(n);
}

const char *promql_binop_name(enum promql_binop op)
{
	for (size_t i = 0; i < sizeof(binops) / sizeof(binops[0]); i++)
		if (binops[i].op == op)
			return binops[i].tok;
	return "?";
}

bool promql_binop_is_comparison(enum promql_binop op)
{
	return op >= PQ_CMP_EQ && op <= PQ_CMP_LE;
}

bool promql_is_scalar(const struct promql_node *n)
{
	if (!n)
		return false;
	switch (n->kind) {
	case PQ_NUMBER:
		return true;
	case PQ_PAREN:
	case PQ_UNARY:
		return promql_is_scalar(n->a);
	case PQ_BINARY:
		return promql_is_scalar(n->a) && promql_is_scalar(n->b);
	case PQ_CALL:
		return strcmp(n->text, "time") == 0 || strcmp(n->text, "scalar") == 0 ||
		       strcmp(n->text, "pi") == 0;
	default:
		return false;
	}
}

/* --- writing a tree back as PromQL --- */

struct sbuf {
	char *s;
	size_t len, cap;
	bool oom;
};

static void put(struct sbuf *b, const char *s, size_t n)
{
	char *v;

	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 64;

		while (cap < b->len + n + 1)
			cap *= 2;
		v = realloc(b->s, cap);
		if (!v) {
			b->oom = true;
			return;
		}
		b->s = v;
		b->cap = cap;
	}
	memcpy(b->s + b->len, s, n);
	b->len += n;
	b->s[b->len] = '\0';
}

static void puts_(struct sbuf *b, const char *s)
{
	put(b, s, strlen(s));
}

/* A string in double quotes, escaped so PromQL reads it back the same. */
static void put_quoted(struct sbuf *b, const char *s)
{
	char esc[8];

	puts_(b, "\"");
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			put(b, esc, 2);
		} else if (c == '\n') {
			puts_(b, "\\n");
		} else if (c < 0x20 || c == 0x7f) {
			snprintf(esc, sizeof(esc), "\\x%02x", c);
			puts_(b, esc);
		} else {
			put(b, s, 1);
		}
	}
	puts_(b, "\"");
}

static void put_labels(struct sbuf *b, const struct promql_labels *l)
{
	puts_(b, "(");
	for (size_t i = 0; i < l->n; i++) {
		if (i)
			puts_(b, ", ");
		puts_(b, l->names[i]);
	}
	puts_(b, ")");
}

static const char *const match_ops[] = {"=", "!=", "=~", "!~"};

static void put_selector(struct sbuf *b, const struct promql_node *n)
{
	if (n->text)
		puts_(b, n->text);
	if (n->n_matchers == 0 && n->text)
		return;
	puts_(b, "{");
	for (size_t i = 0; i < n->n_matchers; i++) {
		if (i)
			puts_(b, ", ");
		puts_(b, n->matchers[i].name);
		puts_(b, match_ops[n->matchers[i].op]);
		put_quoted(b, n->matchers[i].value);
	}
	puts_(b, "}");
}

static void put_modifiers(struct sbuf *b, const struct promql_node *n)
{
	if (n->offset) {
		puts_(b, " offset ");
		puts_(b, n->offset);
	}
	if (n->at) {
		puts_(b, " @ ");
		puts_(b, n->at);
	}
}

static void format(struct sbuf *b, const struct promql_node *n, unsigned flags);

static void put_args(struct sbuf *b, const struct promql_node *n, unsigned flags)
{
	puts_(b, "(");
	for (size_t i = 0; i < n->n_args; i++) {
		if (i)
			puts_(b, ", ");
		format(b, n->args[i], flags);
	}
	puts_(b, ")");
}

/* A comparison without bool of a vector and a scalar: a filter. */
static const struct promql_node *filtered_side(const struct promql_node *n)
{
	if (n->kind != PQ_BINARY || !promql_binop_is_comparison(n->op) || n->bool_mod)
		return NULL;
	if (promql_is_scalar(n->b) && !promql_is_scalar(n->a))
		return n->a;
	if (promql_is_scalar(n->a) && !promql_is_scalar(n->b))
		return n->b;
	return NULL;
}

static void put_binary(struct sbuf *b, const struct promql_node *n, unsigned flags)
{
	bool top_bool = (flags & PROMQL_FMT_TOP_BOOL) && promql_binop_is_comparison(n->op) &&
	                !promql_is_scalar(n->a) && !promql_is_scalar(n->b);

	flags &= ~(unsigned)PROMQL_FMT_TOP_BOOL;
	format(b, n->a, flags);
	puts_(b, " ");
	puts_(b, promql_binop_name(n->op));
	if (n->bool_mod || top_bool)
		puts_(b, " bool");
	if (n->matching != PQ_MATCH_DEFAULT) {
		puts_(b, n->matching == PQ_MATCH_ON ? " on" : " ignoring");
		put_labels(b, &n->match_labels);
	}
	if (n->group != PQ_GROUP_NONE) {
		puts_(b, n->group == PQ_GROUP_LEFT ? " group_left" : " group_right");
		put_labels(b, &n->include);
	}
	puts_(b, " ");
	format(b, n->b, flags);
}

static void format(struct sbuf *b, const struct promql_node *n, unsigned flags)
{
	const struct promql_node *side;

	if ((flags & PROMQL_FMT_NO_FILTERS) && (side = filtered_side(n)) != NULL)
		return format(b, side, flags);
	switch (n->kind) {
	case PQ_NUMBER:
		puts_(b, n->text);
		return;
	case PQ_STRING:
		put_quoted(b, n->text);
		return;
	case PQ_SELECTOR:
		put_selector(b, n);
		if (n->range) {
			puts_(b, "[");
			puts_(b, n->range);
			puts_(b, "]");
		}
		put_modifiers(b, n);
		return;
	case PQ_SUBQUERY:
		format(b, n->a, flags & ~(unsigned)PROMQL_FMT_TOP_BOOL);
		puts_(b, "[");
		puts_(b, n->range);
		puts_(b, ":");
		puts_(b, n->step);
		puts_(b, "]");
		put_modifiers(b, n);
		return;
	case PQ_CALL:
		puts_(b, n->text);
		put_args(b, n, flags & ~(unsigned)PROMQL_FMT_TOP_BOOL);
		return;
	case PQ_AGGREGATE:
		puts_(b, n->text);
		if (n->has_grouping) {
			puts_(b, n->without ? " without " : " by ");
			put_labels(b, &n->grouping);
			puts_(b, " ");
		}
		put_args(b, n, flags & ~(unsigned)PROMQL_FMT_TOP_BOOL);
		return;
	case PQ_BINARY:
		put_binary(b, n, flags);
		return;
	case PQ_UNARY:
		puts_(b, n->op == PQ_SUB ? "-" : "+");
		format(b, n->a, flags & ~(unsigned)PROMQL_FMT_TOP_BOOL);
		return;
	case PQ_PAREN:
		puts_(b, "(");
		format(b, n->a, flags);
		puts_(b, ")");
		return;
	}
}

char *promql_format(const struct promql_node *n, unsigned flags)
{
	struct sbuf b = {0};

	format(&b, n, flags);
	if (b.oom || !b.s) {
		free(b.s);
		return NULL;
	}
	return b.s;
}

char *promql_format_selector(const struct promql_node *sel)
{
	struct sbuf b = {0};

	put_selector(&b, sel);
	if (b.oom || !b.s) {
		free(b.s);
		return NULL;
	}
	return b.s;
}

/* --- walking a tree --- */

static int each_child(const struct promql_node *n,
                      int (*walk)(const struct promql_node *, promql_visit_cb, void *),
                      promql_visit_cb cb, void *userdata)
{
	int r = 0;

	for (size_t i = 0; r == 0 && i < n->n_args; i++)
		r = walk(n->args[i], cb, userdata);
	if (r == 0 && n->a)
		r = walk(n->a, cb, userdata);
	if (r == 0 && n->b)
		r = walk(n->b, cb, userdata);
	return r;
}

int promql_each_selector(const struct promql_node *n, promql_visit_cb cb, void *userdata)
{
	if (!n)
		return 0;
	if (n->kind == PQ_SELECTOR)
		return cb(userdata, n);
	if (n->kind == PQ_CALL &&
	    (strcmp(n->text, "absent") == 0 || strcmp(n->text, "absent_over_time") == 0))
		return 0;
	return each_child(n, promql_each_selector, cb, userdata);
}

int promql_each_vector_match(const struct promql_node *n, promql_visit_cb cb, void *userdata)
{
	int r;

	if (!n)
		return 0;
	r = each_child(n, promql_each_vector_match, cb, userdata);
	if (r != 0 || n->kind != PQ_BINARY || n->op == PQ_OR || n->op == PQ_UNLESS)
		return r;
	if (promql_is_scalar(n->a) || promql_is_scalar(n->b))
		return 0;
	return cb(userdata, n);
}

/* --- why two sides matched nothing --- */

/* The label names of a result's series, except __name__ (and, per the
 * operation's matching, those ignored or not in on()), into obj. */
static void collect_names(const struct promql_node *op, json_t *result, json_t *names)
{
	json_t *s, *v;
	const char *k;
	size_t i, j;

	json_array_foreach (result, i, s) {
		json_object_foreach (json_object_get(s, "metric"), k, v) {
			bool listed = false;

			if (strcmp(k, "__name__") == 0)
				continue;
			for (j = 0; j < op->match_labels.n; j++)
				listed = listed || strcmp(op->match_labels.names[j], k) == 0;
			if (op->matching == PQ_MATCH_ON
			            ? !listed
			            : op->matching == PQ_MATCH_IGNORING && listed)
				continue;
			json_object_set_new(names, k, json_true());
		}
	}
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Appends the keys of obj missing from other, sorted, comma-separated. */
static size_t only_in(json_t *obj, json_t *other, char *buf, size_t len)
{
	const char *k, *names[64];
	json_t *v;
	size_t n = 0, o = 0;

	json_object_foreach (obj, k, v)
		if (!json_object_get(other, k) && n < sizeof(names) / sizeof(names[0]))
			names[n++] = k;
	qsort(names, n, sizeof(names[0]), cmp_str);
	buf[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		int w = snprintf(buf + o, len - o, "%s%s", i ? ", " : "", names[i]);

		if (w < 0 || (size_t)w >= len - o)
			break;
		o += (size_t)w;
	}
	return n;
}

/* The names both sides carry, sorted, comma-separated. */
static void common(json_t *l, json_t *r, char *buf, size_t len)
{
	json_t *both = json_object(), *none = json_object(), *v;
	const char *k;

	buf[0] = '\0';
	if (!both || !none)
		goto out;
	json_object_foreach (l, k, v)
		if (json_object_get(r, k))
			json_object_set_new(both, k, json_true());
	only_in(both, none, buf, len); /* every key of both */
out:
	json_decref(both);
	json_decref(none);
}

bool promql_explain_mismatch(const struct promql_node *op, json_t *left, json_t *right, char *buf,
                             size_t len)
{
	json_t *ln = json_object(), *rn = json_object();
	char lonly[256], ronly[256], both[256];
	size_t nl = 0, nr = 0;

	if (!ln || !rn) {
		snprintf(buf, len, "its two sides match no series pair");
		goto out;
	}
	collect_names(op, left, ln);
	collect_names(op, right, rn);
	nl = only_in(ln, rn, lonly, sizeof(lonly));
	nr = only_in(rn, ln, ronly, sizeof(ronly));
	common(ln, rn, both, sizeof(both));
	if (nl + nr > 0)
		snprintf(buf, len,
		         "the sides of '%s' match no series pair: %s%s%s%s%s%s (match them with "
		         "on(%s) or ignoring(%s%s%s), or aggregate both sides with sum by (...))",
		         promql_binop_name(op->op),
		         nl ? "only the left side has the label(s) " : "", lonly,
		         nl && nr ? " and " : "", nr ? "only the right side has the label(s) " : "",
		         ronly, "", both, lonly, nl && nr ? ", " : "", ronly);
	else
		snprintf(
		        buf, len,
		        "the sides of '%s' match no series pair: both carry the labels (%s) but no "
		        "pair has equal values for all of them (match on fewer labels with on(...) "
		        "or ignoring(...))",
		        promql_binop_name(op->op), both);
out:
	json_decref(ln);
	json_decref(rn);
	return nl + nr > 0;
}
