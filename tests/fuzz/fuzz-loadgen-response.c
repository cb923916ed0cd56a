/* fuzz-loadgen-response: the load engine's response path, fed bytes as a
 * server would send them. lg_conn_parse() needs a live connection and
 * thread (uv handles, histograms), so this target repeats its few lines
 * around the engine's own parser callbacks (lg_parser_settings, whose
 * callbacks read the connection and the engine's HEAD flag) and
 * http_parser: bytes arrive in reads of varying size; a complete answer
 * pauses the parser; bytes after it, or no keep-alive, close the
 * connection; otherwise the next request re-arms the parser; EOF ends an
 * answer delimited by close. Any bytes must end in an answer or an error,
 * never a crash, a read out of bounds or a status outside 100..999.
 *
 * Input: byte 0 bit 0 = the engine sends HEAD; byte 1 = the read size
 * (1..256); the rest is the stream. If loadgen_conn.c's parse logic
 * changes, change this copy with it. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "lib/loadgen/loadgen_int.h"

struct fake {
	struct loadgen lg;
	struct lg_thread t;
	struct lg_conn c;
};

static void arm(struct lg_conn *c)
{
	c->status = 0;
	c->got_byte = false;
	http_parser_init(&c->parser, HTTP_RESPONSE);
	c->parser.data = c;
}

/* As lg_conn_parse(): returns 1 to go on, 0 when the connection closes. */
static int feed(struct lg_conn *c, const char *buf, size_t len)
{
	size_t n;
	enum http_errno e;

	c->got_byte = true;
	n = http_parser_execute(&c->parser, &lg_parser_settings, buf, len);
	e = HTTP_PARSER_ERRNO(&c->parser);
	if (e == HPE_PAUSED) {
		fuzz_check(c->status >= 100 && c->status <= 999, "a complete answer has a status");
		if (n < len || !c->keep_alive)
			return 0;
		arm(c); /* lg_conn_send() for the next request */
		return 1;
	}
	if (e != HPE_OK || n != len)
		return 0; /* LOADGEN_ERR_PROTOCOL */
	fuzz_check(n == len, "the parser consumed the read");
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fake *f;
	size_t chunk, off = 2;
	int open = 1;

	if (size < 2)
		return 0;
	f = calloc(1, sizeof(*f));
	if (!f)
		return 0;
	f->c.head = data[0] & 1;
	f->t.lg = &f->lg;
	f->c.t = &f->t;
	chunk = (size_t)data[1] + 1;
	arm(&f->c);
	while (open && off < size) {
		size_t len = size - off < chunk ? size - off : chunk;

		open = feed(&f->c, (const char *)data + off, len);
		off += len;
	}
	if (open && f->c.got_byte) /* on_eof() */
		(void)http_parser_execute(&f->c.parser, &lg_parser_settings, NULL, 0);
	free(f);
	return 0;
}
