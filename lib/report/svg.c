/* svg: text buffer, XML escaping and inline SVG charts (see svg.h).
 * Layout is fixed-size and computed here; numbers are printed with %g so
 * NaN or infinities never reach an attribute (they are filtered first).
 */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/report/svg.h"

void svg_buf_init(struct svg_buf *b)
{
	memset(b, 0, sizeof(*b));
}

void svg_buf_deinit(struct svg_buf *b)
{
	free(b->data);
	svg_buf_init(b);
}

static bool reserve(struct svg_buf *b, size_t more)
{
	size_t cap;
	char *d;

	if (b->oom)
		return false;
	if (more < b->cap - b->len)
		return true;
	if (more > SVG_BUF_MAX - b->len) {
		b->oom = true;
		return false;
	}
	cap = b->cap ? b->cap : 1024;
	while (cap - b->len <= more)
		cap *= 2;
	d = realloc(b->data, cap);
	if (!d) {
		b->oom = true;
		return false;
	}
	b->data = d;
	b->cap = cap;
	return true;
}

void svg_buf_put(struct svg_buf *b, const char *s, size_t len)
{
	if (!reserve(b, len))
		return;
	memcpy(b->data + b->len, s, len);
	b->len += len;
	b->data[b->len] = '\0';
}

void svg_buf_puts(struct svg_buf *b, const char *s)
{
	svg_buf_put(b, s, strlen(s));
}

void svg_buf_printf(struct svg_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || !reserve(b, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if invalid. */
static size_t utf8_len(const unsigned char *s)
{
	size_t n, i;
	uint32_t cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2, cp = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3, cp = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4, cp = s[0] & 0x07;
	else
		return 0;
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	/* Overlongs, surrogates and the noncharacters XML forbids. */
	if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp == 0xfffe || cp == 0xffff)
		return 0;
	return n;
}

void svg_buf_esc(struct svg_buf *b, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	if (!s)
		return;
	while (*p) {
		size_t n = utf8_len(p);

		switch (*p) {
		case '&':
			svg_buf_puts(b, "&amp;");
			break;
		case '<':
			svg_buf_puts(b, "&lt;");
			break;
		case '>':
			svg_buf_puts(b, "&gt;");
			break;
		case '"':
			svg_buf_puts(b, "&quot;");
			break;
		case '\'':
			svg_buf_puts(b, "&#39;");
			break;
		case '\t':
		case '\n':
		case '\r':
			svg_buf_put(b, (const char *)p, 1);
			break;
		default:
			if (n == 0)
				svg_buf_puts(b, "\xef\xbf\xbd");
			else if (*p >= 0x20 && *p != 0x7f)
				svg_buf_put(b, (const char *)p, n);
			/* other C0 controls and DEL: dropped */
			break;
		}
		p += n ? n : 1;
	}
}

char *svg_buf_steal(struct svg_buf *b, size_t *ret_len)
{
	char *d = b->data;
	size_t len = b->len;

	if (b->oom || !d) {
		if (!b->oom)
			d = strdup(""), len = 0;
		else
			free(d), d = NULL;
	}
	svg_buf_init(b);
	if (d && ret_len)
		*ret_len = len;
	return d;
}

/* --- charts --- */

#define CHART_W   720
#define CHART_H   260
#define PAD_LEFT  60
#define PAD_RIGHT 60
#define PAD_TOP   34
#define PAD_BOT   40

static double finite_max(const double *v, size_t n)
{
	double m = 0;

	for (size_t i = 0; v && i < n; i++)
		if (isfinite(v[i]) && v[i] > m)
			m = v[i];
	return m > 0 ? m : 1;
}

/* A "nice" axis top: 1, 2 or 5 times a power of ten at or above m. */
static double nice_top(double m)
{
	double p = pow(10, floor(log10(m)));

	if (m <= p)
		return p;
	if (m <= 2 * p)
		return 2 * p;
	if (m <= 5 * p)
		return 5 * p;
	return 10 * p;
}

static void chart_open(struct svg_buf *b, const char *title)
{
	svg_buf_printf(b,
	               "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" width=\"%d\" "
	               "height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"",
	               CHART_W, CHART_H, CHART_W, CHART_H);
	svg_buf_esc(b, title);
	svg_buf_puts(b, "\"><title>");
	svg_buf_esc(b, title);
	svg_buf_printf(b,
	               "</title><rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"#ffffff\" "
	               "stroke=\"#d0d7de\"/><text x=\"%d\" y=\"20\" font-family=\"sans-serif\" "
	               "font-size=\"14\" font-weight=\"bold\" fill=\"#24292f\">",
	               CHART_W, CHART_H, PAD_LEFT);
	svg_buf_esc(b, title);
	svg_buf_puts(b, "</text>");
}

/* Horizontal grid lines with the axis labels on the left (and right). */
static void chart_axes(struct svg_buf *b, double top_left, double top_right, const char *unit)
{
	int ph = CHART_H - PAD_TOP - PAD_BOT;

	for (int i = 0; i <= 4; i++) {
		int y = PAD_TOP + ph - ph * i / 4;

		svg_buf_printf(
		        b,
		        "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#eaeef2\"/>"
		        "<text x=\"%d\" y=\"%d\" font-family=\"sans-serif\" font-size=\"10\" "
		        "text-anchor=\"end\" fill=\"#57606a\">%g",
		        PAD_LEFT, y, CHART_W - PAD_RIGHT, y, PAD_LEFT - 4, y + 3, top_left * i / 4);
		svg_buf_esc(b, unit);
		svg_buf_puts(b, "</text>");
		if (top_right > 0)
			svg_buf_printf(b,
			               "<text x=\"%d\" y=\"%d\" font-family=\"sans-serif\" "
			               "font-size=\"10\" fill=\"#cf222e\">%g</text>",
			               CHART_W - PAD_RIGHT + 4, y + 3, top_right * i / 4);
	}
}

void svg_bar_chart(struct svg_buf *b, const char *title, const char *const *labels,
                   const double *values, size_t n, const char *unit)
{
	int pw = CHART_W - PAD_LEFT - PAD_RIGHT, ph = CHART_H - PAD_TOP - PAD_BOT;
	double top;

	if (n > SVG_MAX_POINTS)
		n = SVG_MAX_POINTS;
	top = nice_top(finite_max(values, n));
	chart_open(b, title);
	chart_axes(b, top, 0, unit);
	for (size_t i = 0; i < n; i++) {
		double slot = (double)pw / (double)n, bw = slot * 0.6;
		double x = PAD_LEFT + slot * (double)i + (slot - bw) / 2;
		double h = isfinite(values[i]) && values[i] > 0 ? ph * values[i] / top : 0;

		svg_buf_printf(b,
		               "<rect class=\"bar\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" "
		               "height=\"%.1f\" fill=\"#0969da\"/>",
		               x, PAD_TOP + ph - h, bw, h);
		svg_buf_printf(
		        b,
		        "<text x=\"%.1f\" y=\"%.1f\" font-family=\"sans-serif\" font-size=\"10\" "
		        "text-anchor=\"middle\" fill=\"#24292f\">",
		        x + bw / 2, PAD_TOP + ph - h - 3);
		if (isfinite(values[i]))
			svg_buf_printf(b, "%.4g", values[i]);
		else
			svg_buf_puts(b, "n/a");
		svg_buf_printf(b,
		               "</text><text x=\"%.1f\" y=\"%d\" font-family=\"sans-serif\" "
		               "font-size=\"11\" text-anchor=\"middle\" fill=\"#24292f\">",
		               x + bw / 2, CHART_H - PAD_BOT + 16);
		svg_buf_esc(b, labels[i]);
		svg_buf_puts(b, "</text>");
	}
	svg_buf_puts(b, "</svg>");
}

/* A polyline over the plot area; NaN points break the line. */
static void polyline(struct svg_buf *b, const double *v, size_t n, double top, int x0, int y0,
                     int w, int h, const char *cls, const char *color)
{
	bool open = false;

	for (size_t i = 0; i < n; i++) {
		double x = x0 + (n > 1 ? (double)w * (double)i / (double)(n - 1) : w / 2.0);

		if (!isfinite(v[i])) {
			if (open)
				svg_buf_puts(b, "\"/>");
			open = false;
			continue;
		}
		if (!open)
			svg_buf_printf(b,
			               "<polyline class=\"%s\" fill=\"none\" stroke=\"%s\" "
			               "stroke-width=\"1.5\" points=\"",
			               cls, color);
		open = true;
		svg_buf_printf(b, "%.1f,%.1f ", x, y0 + h - h * (v[i] > 0 ? v[i] : 0) / top);
	}
	if (open)
		svg_buf_puts(b, "\"/>");
}

static void legend(struct svg_buf *b, int x, const char *color, const char *label)
{
	svg_buf_printf(b,
	               "<rect x=\"%d\" y=\"%d\" width=\"10\" height=\"10\" fill=\"%s\"/>"
	               "<text x=\"%d\" y=\"%d\" font-family=\"sans-serif\" font-size=\"11\" "
	               "fill=\"#24292f\">",
	               x, CHART_H - 16, color, x + 14, CHART_H - 7);
	svg_buf_esc(b, label);
	svg_buf_puts(b, "</text>");
}

void svg_timeline_chart(struct svg_buf *b, const char *title, const double *bars,
                        const char *bars_label, const double *line, const char *line_label,
                        size_t n)
{
	int pw = CHART_W - PAD_LEFT - PAD_RIGHT, ph = CHART_H - PAD_TOP - PAD_BOT;
	double top_bars, top_line;

	if (n > SVG_MAX_POINTS)
		n = SVG_MAX_POINTS;
	top_bars = nice_top(finite_max(bars, n));
	top_line = nice_top(finite_max(line, n));
	chart_open(b, title);
	chart_axes(b, bars ? top_bars : top_line, bars && line ? top_line : 0, "");
	for (size_t i = 0; bars && i < n; i++) {
		double slot = (double)pw / (double)(n ? n : 1);
		double h = isfinite(bars[i]) && bars[i] > 0 ? ph * bars[i] / top_bars : 0;

		svg_buf_printf(b,
		               "<rect class=\"bar\" x=\"%.2f\" y=\"%.1f\" width=\"%.2f\" "
		               "height=\"%.1f\" fill=\"#8fbcf0\"/>",
		               PAD_LEFT + slot * (double)i, PAD_TOP + ph - h, slot * 0.9, h);
	}
	if (line)
		polyline(b, line, n, top_line, PAD_LEFT, PAD_TOP, pw, ph, "line", "#cf222e");
	if (bars)
		legend(b, PAD_LEFT, "#8fbcf0", bars_label);
	if (line)
		legend(b, PAD_LEFT + 260, "#cf222e", line_label);
	svg_buf_puts(b, "</svg>");
}

void svg_sparkline(struct svg_buf *b, const double *values, size_t n, int width, int height)
{
	double lo = INFINITY, hi = -INFINITY;
	size_t last = n;

	if (n > SVG_MAX_POINTS)
		n = SVG_MAX_POINTS;
	for (size_t i = 0; i < n; i++) {
		if (!isfinite(values[i]))
			continue;
		lo = fmin(lo, values[i]);
		hi = fmax(hi, values[i]);
		last = i;
	}
	svg_buf_printf(b,
	               "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"sparkline\" width=\"%d\" "
	               "height=\"%d\" viewBox=\"0 0 %d %d\">",
	               width, height, width, height);
	if (last < n) {
		double span = hi > lo ? hi - lo : 1, *shifted = malloc(n * sizeof(*shifted));

		if (!shifted) {
			b->oom = true;
			return;
		}
		/* Scale into the box with a 2 px margin; a flat series sits mid-height. */
		for (size_t i = 0; i < n; i++)
			shifted[i] = hi > lo ? values[i] - lo : span / 2;
		polyline(b, shifted, n, span, 2, 2, width - 4, height - 4, "spark", "#0969da");
		svg_buf_printf(b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2\" fill=\"#0969da\"/>",
		               2 + (n > 1 ? (double)(width - 4) * (double)last / (double)(n - 1)
		                          : (width - 4) / 2.0),
		               2 + (height - 4) - (height - 4) * shifted[last] / span);
		free(shifted);
	}
	svg_buf_puts(b, "</svg>");
}

/* A labelled horizontal reference line at value v (NaN: none). */
static void ref_line(struct svg_buf *b, double v, double top, const char *cls, const char *color,
                     const char *label, bool left)
{
	int ph = CHART_H - PAD_TOP - PAD_BOT;
	double y;

	if (!isfinite(v))
		return;
	y = PAD_TOP + ph - ph * (v > 0 ? (v < top ? v : top) : 0) / top;
	svg_buf_printf(b,
	               "<line class=\"%s\" x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" "
	               "stroke=\"%s\" stroke-width=\"1.5\" stroke-dasharray=\"6 4\"/>"
	               "<text class=\"%s-label\" x=\"%d\" y=\"%.1f\" font-family=\"sans-serif\" "
	               "font-size=\"10\" text-anchor=\"%s\" fill=\"%s\">%s %.4g</text>",
	               cls, PAD_LEFT, y, CHART_W - PAD_RIGHT, y, color, cls,
	               left ? PAD_LEFT + 4 : CHART_W - PAD_RIGHT, y - 4, left ? "start" : "end",
	               color, label, v);
}

void svg_trend_chart(struct svg_buf *b, const char *title, const struct svg_point *pts, size_t n,
                     double threshold, double baseline, const char *unit)
{
	int pw = CHART_W - PAD_LEFT - PAD_RIGHT, ph = CHART_H - PAD_TOP - PAD_BOT;
	double top, m = 0;

	if (n > SVG_MAX_POINTS)
		n = SVG_MAX_POINTS;
	for (size_t i = 0; i < n; i++)
		if (isfinite(pts[i].value) && pts[i].value > m)
			m = pts[i].value;
	if (isfinite(threshold) && threshold > m)
		m = threshold;
	if (isfinite(baseline) && baseline > m)
		m = baseline;
	top = nice_top(m > 0 ? m : 1);
	chart_open(b, title);
	chart_axes(b, top, 0, unit);
	ref_line(b, threshold, top, "threshold", "#cf222e", "threshold", false);
	ref_line(b, baseline, top, "baseline", "#57606a", "baseline", true);
	for (size_t i = 0; i < n; i++) {
		double x = PAD_LEFT + (n > 1 ? (double)pw * (double)i / (double)(n - 1) : pw / 2.0);
		double v = isfinite(pts[i].value) && pts[i].value > 0 ? pts[i].value : 0;
		double y = PAD_TOP + ph - ph * v / top;

		if (i > 0) {
			double px = PAD_LEFT + (double)pw * (double)(i - 1) / (double)(n - 1);
			double pv = isfinite(pts[i - 1].value) && pts[i - 1].value > 0
			                    ? pts[i - 1].value
			                    : 0;

			svg_buf_printf(b,
			               "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
			               "stroke=\"#0969da\" stroke-width=\"1.5\"/>",
			               px, PAD_TOP + ph - ph * pv / top, x, y);
		}
		svg_buf_puts(b, "<a class=\"point\" href=\"");
		svg_buf_esc(b, pts[i].href);
		svg_buf_printf(b, "\"><circle cx=\"%.1f\" cy=\"%.1f\" r=\"5\" fill=\"%s\"/><title>",
		               x, y, pts[i].ok ? "#0969da" : "#cf222e");
		svg_buf_esc(b, pts[i].label);
		svg_buf_printf(b, ": %.4g", pts[i].value);
		svg_buf_esc(b, unit);
		svg_buf_puts(b, "</title></a>");
	}
	svg_buf_puts(b, "</svg>");
}

void svg_lines_chart(struct svg_buf *b, const char *title, const char *const *labels, size_t n,
                     const double *a, const char *a_label, const double *c, const char *c_label,
                     const char *unit)
{
	int pw = CHART_W - PAD_LEFT - PAD_RIGHT, ph = CHART_H - PAD_TOP - PAD_BOT;
	double ma = finite_max(a, n), mc = finite_max(c, n);
	double top = nice_top(ma > mc ? ma : mc);

	if (n > SVG_MAX_POINTS)
		n = SVG_MAX_POINTS;
	chart_open(b, title);
	chart_axes(b, top, 0, unit);
	polyline(b, a, n, top, PAD_LEFT, PAD_TOP, pw, ph, "series-a", "#0969da");
	polyline(b, c, n, top, PAD_LEFT, PAD_TOP, pw, ph, "series-b", "#bf3989");
	for (size_t i = 0; i < n; i++) {
		svg_buf_printf(
		        b,
		        "<text x=\"%.1f\" y=\"%d\" font-family=\"sans-serif\" font-size=\"11\" "
		        "text-anchor=\"middle\" fill=\"#24292f\">",
		        PAD_LEFT + (n > 1 ? (double)pw * (double)i / (double)(n - 1) : pw / 2.0),
		        CHART_H - PAD_BOT + 16);
		svg_buf_esc(b, labels[i]);
		svg_buf_puts(b, "</text>");
	}
	svg_buf_printf(b,
	               "<text x=\"%d\" y=\"%d\" font-family=\"sans-serif\" font-size=\"11\" "
	               "fill=\"#0969da\">&#9473; ",
	               CHART_W - 250, 20);
	svg_buf_esc(b, a_label);
	svg_buf_printf(b,
	               "</text><text x=\"%d\" y=\"%d\" font-family=\"sans-serif\" font-size=\"11\" "
	               "fill=\"#bf3989\">&#9476; ",
	               CHART_W - 120, 20);
	svg_buf_esc(b, c_label);
	svg_buf_puts(b, "</text></svg>");
}
