/* linediff: a line diff of two texts in the unified format (`---`/`+++`
 * headers, `@@ -a,b +c,d @@` hunks with 3 lines of context), for
 * `readyctl spec diff`. The common head and tail are cut off first (a
 * spec edit is usually local); the middle is aligned by a longest common
 * subsequence table, and when that table would be too large the middle is
 * shown as removed then added, which is still a correct diff. Pure: text
 * in, text out.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define CONTEXT       3
#define LCS_MAX_CELLS (4u * 1024 * 1024) /* 16 MiB of table */

struct lines {
	const char **at; /* start of each line */
	size_t *len;     /* its length without the newline */
	size_t n;
};

/* One step of the edit script: ' ' both, '-' only in a, '+' only in b. */
struct op {
	char kind;
	size_t a, b; /* line indexes (a for ' ' and '-', b for ' ' and '+') */
};

static int split(const char *text, struct lines *ret)
{
	size_t n = 0, cap = 16;
	const char *p = text;

	ret->at = malloc(cap * sizeof(*ret->at));
	ret->len = malloc(cap * sizeof(*ret->len));
	while (ret->at && ret->len && *p) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);

		if (n == cap) {
			cap *= 2;
			const char **at = realloc(ret->at, cap * sizeof(*at));
			if (at)
				ret->at = at;
			size_t *l = at ? realloc(ret->len, cap * sizeof(*l)) : NULL;
			if (!l)
				break;
			ret->len = l;
		}
		ret->at[n] = p;
		ret->len[n++] = len;
		p += len + (nl != NULL);
	}
	ret->n = n;
	return ret->at && ret->len && !*p ? 0 : -ENOMEM;
}

static bool same(const struct lines *a, size_t i, const struct lines *b, size_t j)
{
	return a->len[i] == b->len[j] && memcmp(a->at[i], b->at[j], a->len[i]) == 0;
}

static void push(struct op *ops, size_t *n, char kind, size_t a, size_t b)
{
	ops[*n].kind = kind;
	ops[*n].a = a;
	ops[*n].b = b;
	(*n)++;
}

/* The middle a[lo_a, hi_a) against b[lo_b, hi_b), aligned by LCS when
 * the table fits, appended to ops. */
static int diff_middle(const struct lines *a, size_t lo_a, size_t hi_a, const struct lines *b,
                       size_t lo_b, size_t hi_b, struct op *ops, size_t *n)
{
	size_t na = hi_a - lo_a, nb = hi_b - lo_b, i, j;
	uint32_t *t;

	if ((na + 1) * (nb + 1) > LCS_MAX_CELLS) {
		for (i = lo_a; i < hi_a; i++)
			push(ops, n, '-', i, 0);
		for (j = lo_b; j < hi_b; j++)
			push(ops, n, '+', 0, j);
		return 0;
	}
	t = calloc((na + 1) * (nb + 1), sizeof(*t));
	if (!t)
		return -ENOMEM;
#define T(x, y) t[(x) * (nb + 1) + (y)]
	for (i = na; i-- > 0;)
		for (j = nb; j-- > 0;)
			T(i, j) = same(a, lo_a + i, b, lo_b + j) ? T(i + 1, j + 1) + 1
			          : T(i + 1, j) >= T(i, j + 1)   ? T(i + 1, j)
			                                         : T(i, j + 1);
	for (i = 0, j = 0; i < na || j < nb;) {
		if (i < na && j < nb && same(a, lo_a + i, b, lo_b + j))
			push(ops, n, ' ', lo_a + i++, lo_b + j++);
		else if (i < na && (j == nb || T(i + 1, j) >= T(i, j + 1)))
			push(ops, n, '-', lo_a + i++, 0); /* removals first, as diff -u */
		else
			push(ops, n, '+', 0, lo_b + j++);
	}
#undef T
	free(t);
	return 0;
}

static int edit_script(const struct lines *a, const struct lines *b, struct op **ret_ops,
                       size_t *ret_n)
{
	size_t head = 0, tail = 0, n = 0;
	struct op *ops = malloc((a->n + b->n + 1) * sizeof(*ops));
	int r;

	if (!ops)
		return -ENOMEM;
	while (head < a->n && head < b->n && same(a, head, b, head))
		head++;
	while (tail < a->n - head && tail < b->n - head &&
	       same(a, a->n - 1 - tail, b, b->n - 1 - tail))
		tail++;
	for (size_t i = 0; i < head; i++)
		push(ops, &n, ' ', i, i);
	r = diff_middle(a, head, a->n - tail, b, head, b->n - tail, ops, &n);
	for (size_t i = tail; i > 0; i--)
		push(ops, &n, ' ', a->n - i, b->n - i);
	if (r < 0) {
		free(ops);
		return r;
	}
	*ret_ops = ops;
	*ret_n = n;
	return 0;
}

static void print_range(FILE *f, size_t first, size_t count)
{
	if (count == 1)
		fprintf(f, "%zu", first + 1);
	else
		fprintf(f, "%zu,%zu", count ? first + 1 : first, count);
}

/* Prints ops[from, to) as one hunk. */
static void print_hunk(FILE *f, const struct lines *a, const struct lines *b, const struct op *ops,
                       size_t from, size_t to)
{
	size_t a0 = 0, b0 = 0, na = 0, nb = 0;
	bool a_set = false, b_set = false;

	for (size_t k = from; k < to; k++) {
		if (ops[k].kind != '+' && !a_set)
			a0 = ops[k].a, a_set = true;
		if (ops[k].kind != '-' && !b_set)
			b0 = ops[k].b, b_set = true;
		na += ops[k].kind != '+';
		nb += ops[k].kind != '-';
	}
	/* As diff -u: an empty side is numbered by the line before it, and a
	 * count of 1 is left out. */
	fputs("@@ -", f);
	print_range(f, a0, na);
	fputs(" +", f);
	print_range(f, b0, nb);
	fputs(" @@\n", f);
	for (size_t k = from; k < to; k++) {
		const struct lines *l = ops[k].kind == '+' ? b : a;
		size_t i = ops[k].kind == '+' ? ops[k].b : ops[k].a;

		fprintf(f, "%c%.*s\n", ops[k].kind, (int)l->len[i], l->at[i]);
	}
}

static void print_hunks(FILE *f, const struct lines *a, const struct lines *b, const struct op *ops,
                        size_t n)
{
	size_t k = 0;

	while (k < n) {
		size_t start, end, last;

		while (k < n && ops[k].kind == ' ')
			k++;
		if (k == n)
			break;
		start = k > CONTEXT ? k - CONTEXT : 0;
		last = k;
		/* Extend while the next change is within 2 * CONTEXT lines. */
		for (end = k; end < n; end++) {
			if (ops[end].kind != ' ')
				last = end;
			else if (end - last > 2 * CONTEXT)
				break;
		}
		end = last + 1 + CONTEXT < n ? last + 1 + CONTEXT : n;
		print_hunk(f, a, b, ops, start, end);
		k = end;
	}
}

int linediff_print(FILE *f, const char *name_a, const char *a_text, const char *name_b,
                   const char *b_text, bool *ret_differ)
{
	struct lines a = {0}, b = {0};
	struct op *ops = NULL;
	size_t n = 0;
	bool differ = false;
	int r = split(a_text, &a);

	if (r == 0)
		r = split(b_text, &b);
	if (r == 0)
		r = edit_script(&a, &b, &ops, &n);
	for (size_t k = 0; r == 0 && k < n; k++)
		differ |= ops[k].kind != ' ';
	if (r == 0 && differ) {
		fprintf(f, "--- %s\n+++ %s\n", name_a, name_b);
		print_hunks(f, &a, &b, ops, n);
	}
	if (r == 0)
		*ret_differ = differ;
	free(ops);
	free(a.at);
	free(a.len);
	free(b.at);
	free(b.len);
	return r;
}
