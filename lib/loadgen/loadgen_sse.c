/* loadgen_sse: the Server-Sent Events reader of lib/loadgen/loadgen_sse.h.
 * A byte-at-a-time state machine over fixed state, so it runs on the
 * engine's hot path without allocating and never depends on where reads
 * split the stream. Pure: no I/O, no clocks.
 */
#include <string.h>
#include <strings.h>

#include "lib/loadgen/loadgen_sse.h"

#define DEFAULT_KEY "completion_tokens"
#define DONE        "[DONE]"
#define DONE_LEN    6
#define MAX_TOKENS  INT64_C(1000000000000)

enum {
	S_LINE = 0, /* at the start of a line */
	S_FIELD,    /* in the field name */
	S_SPACE,    /* after the colon: one space is skipped */
	S_VALUE,    /* in the value */
	S_COMMENT,  /* a ':' line, up to its end */
};

enum {
	K_MATCH = 0, /* matching "KEY" */
	K_COLON,     /* after it: blanks, then ':' */
	K_NUMBER,    /* after the colon: blanks, then digits */
	K_DIGITS,    /* in the digits */
};

void lg_sse_init(struct lg_sse *r, const char *key)
{
	memset(r, 0, sizeof(*r));
	r->key = key && *key ? key : DEFAULT_KEY;
	r->key_len = (uint8_t)strnlen(r->key, LG_SSE_KEY_MAX);
	r->tokens = -1;
}

static bool blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static void key_restart(struct lg_sse *r, char c)
{
	r->kstate = K_MATCH;
	r->kpos = c == '"' ? 1 : 0;
}

/* The token key's pattern is '"' KEY '"': its first byte occurs nowhere
 * else but at its end, so a mismatch restarts at 0, or at 1 on a quote. */
static void key_byte(struct lg_sse *r, char c)
{
	switch (r->kstate) {
	case K_MATCH:
		if (r->kpos == 0 || r->kpos == r->key_len + 1)
			r->kpos = c == '"' ? r->kpos + 1 : 0;
		else if (r->key[r->kpos - 1] == c)
			r->kpos++;
		else
			key_restart(r, c);
		if (r->kpos == r->key_len + 2)
			r->kstate = K_COLON;
		return;
	case K_COLON:
		if (c == ':')
			r->kstate = K_NUMBER;
		else if (!blank(c))
			key_restart(r, c);
		return;
	case K_NUMBER:
		if (c >= '0' && c <= '9') {
			r->kstate = K_DIGITS;
			r->knum = c - '0';
		} else if (!blank(c)) {
			key_restart(r, c);
		}
		return;
	default:
		if (c >= '0' && c <= '9') {
			if (r->knum < MAX_TOKENS)
				r->knum = r->knum * 10 + (c - '0');
			return;
		}
		r->tokens = r->knum;
		key_restart(r, c);
	}
}

static void data_byte(struct lg_sse *r, char c)
{
	if (r->dlen < DONE_LEN)
		r->maybe_done = r->maybe_done && DONE[r->dlen] == c;
	if (r->dlen <= DONE_LEN)
		r->dlen++;
	key_byte(r, c);
}

static void dispatch(struct lg_sse *r, lg_sse_event_cb cb, void *userdata)
{
	struct lg_sse_event ev;

	if (r->has_data) {
		if (r->kstate == K_DIGITS)
			r->tokens = r->knum;
		ev.done = r->maybe_done && r->dlen == DONE_LEN;
		ev.tokens = r->tokens;
		cb(userdata, &ev);
	}
	r->has_data = false;
	r->dlen = 0;
	r->tokens = -1;
	r->kstate = K_MATCH;
	r->kpos = 0;
}

/* A field name is complete (at ':' or the end of its line). */
static void field_end(struct lg_sse *r)
{
	r->data_line = r->flen == 4 && memcmp(r->field, "data", 4) == 0;
	if (!r->data_line)
		return;
	if (r->has_data)
		data_byte(r, '\n'); /* data lines join with a line feed */
	else
		r->maybe_done = true;
	r->has_data = true;
}

static void line_end(struct lg_sse *r, lg_sse_event_cb cb, void *userdata)
{
	if (r->state == S_LINE)
		dispatch(r, cb, userdata);
	else if (r->state == S_FIELD)
		field_end(r);
	r->state = S_LINE;
	r->data_line = false;
}

static void field_byte(struct lg_sse *r, char c)
{
	if (c == ':') {
		field_end(r);
		r->state = S_SPACE;
		return;
	}
	if (r->flen < sizeof(r->field))
		r->field[r->flen] = c;
	if (r->flen < sizeof(r->field))
		r->flen++;
}

static void byte(struct lg_sse *r, char c)
{
	switch (r->state) {
	case S_LINE:
		r->flen = 0;
		r->state = c == ':' ? S_COMMENT : S_FIELD;
		if (c != ':')
			field_byte(r, c);
		return;
	case S_FIELD:
		field_byte(r, c);
		return;
	case S_SPACE:
		r->state = S_VALUE;
		if (c == ' ')
			return;
		/* fall through */
	case S_VALUE:
		if (r->data_line)
			data_byte(r, c);
		return;
	default:
		return; /* a comment */
	}
}

void lg_sse_feed(struct lg_sse *r, const char *buf, size_t len, lg_sse_event_cb cb, void *userdata)
{
	for (size_t i = 0; i < len; i++) {
		char c = buf[i];

		if (c == '\n' && r->cr) {
			r->cr = false;
			continue; /* the LF of a CRLF */
		}
		r->cr = c == '\r';
		if (c == '\r' || c == '\n')
			line_end(r, cb, userdata);
		else
			byte(r, c);
	}
}

bool lg_sse_content_type(const char *value, size_t len)
{
	static const char want[] = "text/event-stream";
	size_t n = sizeof(want) - 1;

	while (len > 0 && (*value == ' ' || *value == '\t')) {
		value++;
		len--;
	}
	if (len < n || strncasecmp(value, want, n) != 0)
		return false;
	return len == n || value[n] == ';' || value[n] == ' ' || value[n] == '\t';
}
