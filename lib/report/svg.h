/* svg: the text buffer, XML escaping and inline SVG charts the report
 * renderers share. Charts are plain SVG 1.1 elements (no script, no
 * external references, no CSS beyond presentation attributes) so a report
 * stays self-contained and inert in any viewer. Every piece of text that
 * reaches the output goes through svg_buf_esc(). Pure; any thread.
 *
 * It must not know about runs or probes: callers hand it numbers and
 * labels.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* A growing, NUL-terminated byte buffer. An allocation failure sets oom
 * and turns every later write into a no-op, so renderers check once, at
 * the end (svg_buf_steal). */
struct svg_buf {
	char *data;
	size_t len, cap;
	bool oom;
};

#define SVG_BUF_MAX (64u * 1024u * 1024u) /* a report larger than this is a bug */

void svg_buf_init(struct svg_buf *b);
void svg_buf_deinit(struct svg_buf *b);
void svg_buf_put(struct svg_buf *b, const char *s, size_t len);
void svg_buf_puts(struct svg_buf *b, const char *s);
void svg_buf_printf(struct svg_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s escaped for XML/HTML text and attribute values (& < > " ');
 * control characters XML 1.0 forbids are dropped, invalid UTF-8 bytes
 * become U+FFFD. NULL appends nothing. */
void svg_buf_esc(struct svg_buf *b, const char *s);
/* The contents (caller frees) and the buffer reset; NULL if an
 * allocation failed on the way (the buffer is freed either way). */
char *svg_buf_steal(struct svg_buf *b, size_t *ret_len);

/* One bar per label/value (n <= SVG_MAX_POINTS; NaN values are drawn as
 * "n/a"). unit is appended to value labels ("ms"). Borrowed. */
#define SVG_MAX_POINTS 4096
void svg_bar_chart(struct svg_buf *b, const char *title, const char *const *labels,
                   const double *values, size_t n, const char *unit);

/* A chart over x = 0..n-1 (seconds) with a bar series on the left axis
 * (bars, e.g. requests per second) and a line series on the right axis
 * (line, e.g. p99 latency). Either may be NULL. n is capped at
 * SVG_MAX_POINTS (callers downsample). */
void svg_timeline_chart(struct svg_buf *b, const char *title, const double *bars,
                        const char *bars_label, const double *line, const char *line_label,
                        size_t n);

/* A small line with a dot on the last point; NaNs are gaps. */
void svg_sparkline(struct svg_buf *b, const double *values, size_t n, int width, int height);

/* A trend: one dot per point, each a link (href) titled with its label,
 * red when !ok; joined by a line; dashed reference lines for the gate's
 * threshold and the baseline (NaN: not drawn). Borrowed. */
struct svg_point {
	double value;
	const char *label; /* "run 12, v1.2.3" */
	const char *href;  /* "/runs/12" */
	bool ok;
};
void svg_trend_chart(struct svg_buf *b, const char *title, const struct svg_point *pts, size_t n,
                     double threshold, double baseline, const char *unit);

/* Two series over the same n categories (labels) overlaid as lines, a
 * solid and a second one, with a legend. NaN values break a line. */
void svg_lines_chart(struct svg_buf *b, const char *title, const char *const *labels, size_t n,
                     const double *a, const char *a_label, const double *c, const char *c_label,
                     const char *unit);
