/* table: left-aligned text tables sized to their contents, for gate, probe
 * and run listings. Cells are copied and sanitised on the way in (server
 * strings must not reach the terminal as escape sequences); widths count
 * UTF-8 code points so names in other scripts still line up. The last
 * column is never padded, so long reasons do not leave trailing blanks.
 *
 * It knows nothing about runs; render.c decides what goes in the cells.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define TABLE_MAX_CELL 1024

struct table {
	size_t n_cols;
	char **cells; /* (n_rows + 1) * n_cols; row 0 holds the headers */
	size_t n_rows;
	size_t cap_rows;
	size_t status_col; /* n_cols: none */
};

static size_t display_width(const char *s)
{
	size_t w = 0;

	for (; *s; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			w++;
	return w;
}

static int grow(struct table *t)
{
	size_t cap = t->cap_rows ? t->cap_rows * 2 : 16;
	char **p;

	if (cap > SIZE_MAX / sizeof(char *) / t->n_cols / 2)
		return -ENOMEM;
	p = realloc(t->cells, (cap + 1) * t->n_cols * sizeof(char *));
	if (!p)
		return -ENOMEM;
	t->cells = p;
	t->cap_rows = cap;
	return 0;
}

static int set_row(struct table *t, size_t row, const char *const *cells)
{
	char buf[TABLE_MAX_CELL];
	char **dst = t->cells + row * t->n_cols;

	for (size_t i = 0; i < t->n_cols; i++) {
		render_clean(cells[i] ? cells[i] : "", buf, sizeof(buf));
		dst[i] = strdup(buf);
		if (!dst[i]) {
			while (i-- > 0)
				free(dst[i]);
			return -ENOMEM;
		}
	}
	return 0;
}

struct table *table_new(size_t n_cols, const char *const *headers)
{
	struct table *t = calloc(1, sizeof(*t));

	if (!t || n_cols == 0)
		goto fail;
	t->n_cols = n_cols;
	t->status_col = n_cols;
	if (grow(t) < 0 || set_row(t, 0, headers) < 0)
		goto fail;
	return t;
fail:
	if (t)
		free(t->cells);
	free(t);
	return NULL;
}

void table_free(struct table *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < (t->n_rows + 1) * t->n_cols; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t);
}

int table_add_row(struct table *t, const char *const *cells)
{
	int ret;

	if (t->n_rows == t->cap_rows && (ret = grow(t)) < 0)
		return ret;
	ret = set_row(t, t->n_rows + 1, cells);
	if (ret < 0)
		return ret;
	t->n_rows++;
	return 0;
}

void table_set_status_column(struct table *t, size_t col)
{
	t->status_col = col < t->n_cols ? col : t->n_cols;
}

size_t table_rows(const struct table *t)
{
	return t->n_rows;
}

static void print_row(const struct table *t, size_t row, const size_t *widths, FILE *f, bool color)
{
	char *const *cells = t->cells + row * t->n_cols;
	bool paint;

	for (size_t i = 0; i < t->n_cols; i++) {
		paint = color && row > 0 && i == t->status_col;
		if (paint)
			fputs(render_color_start(cells[i], true), f);
		fputs(cells[i], f);
		if (paint)
			fputs(render_color_end(cells[i], true), f);
		if (i + 1 == t->n_cols)
			break;
		for (size_t w = display_width(cells[i]); w < widths[i] + 2; w++)
			fputc(' ', f);
	}
	fputc('\n', f);
}

void table_print(const struct table *t, FILE *f, bool color)
{
	size_t *widths = calloc(t->n_cols, sizeof(*widths));
	size_t w;

	if (!widths) {
		fputs("readyctl: out of memory\n", stderr);
		return;
	}
	for (size_t r = 0; r <= t->n_rows; r++)
		for (size_t i = 0; i < t->n_cols; i++) {
			w = display_width(t->cells[r * t->n_cols + i]);
			if (w > widths[i])
				widths[i] = w;
		}
	for (size_t r = 0; r <= t->n_rows; r++)
		print_row(t, r, widths, f, color);
	free(widths);
}
