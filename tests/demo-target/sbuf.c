/* sbuf: a growable text buffer for answers whose size is not known in
 * advance (/metrics, a delay record of up to two million numbers). Errors
 * are sticky so a renderer can append freely and check once at the end.
 * It must not be used for anything user-controlled without a cap upstream.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "demo-target.h"

void sbuf_init(struct sbuf *b)
{
	memset(b, 0, sizeof(*b));
}

void sbuf_deinit(struct sbuf *b)
{
	free(b->buf);
	sbuf_init(b);
}

static int sbuf_reserve(struct sbuf *b, size_t extra)
{
	size_t want = b->len + extra + 1, cap = b->cap ? b->cap : 256;
	char *p;

	if (want <= b->cap)
		return 0;
	while (cap < want)
		cap *= 2;
	p = realloc(b->buf, cap);
	if (!p)
		return -ENOMEM;
	b->buf = p;
	b->cap = cap;
	return 0;
}

/* Formats straight into the free space first, so appending many short
 * items (the delay record) costs one vsnprintf each, not two. */
void sbuf_printf(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	size_t room;
	int n;

	if (b->err)
		return;
	room = b->cap - b->len;
	va_start(ap, fmt);
	n = vsnprintf(b->buf ? b->buf + b->len : NULL, room, fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n < room) {
		b->len += (size_t)n;
		return;
	}
	if (n < 0 || sbuf_reserve(b, (size_t)n) < 0) {
		b->err = -ENOMEM;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(b->buf + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

int sbuf_steal(struct sbuf *b, char **ret_buf, size_t *ret_len)
{
	int r = b->err;

	if (r == 0 && sbuf_reserve(b, 0) < 0)
		r = -ENOMEM; /* an empty buffer still owes the caller a "" */
	if (r < 0) {
		sbuf_deinit(b);
		return r;
	}
	*ret_buf = b->buf;
	*ret_len = b->len;
	sbuf_init(b);
	return 0;
}
