/* loadgen_stream: the engine's stream mode (loadgen_config.stream): the
 * parser callbacks that see a streamed answer arrive (its Content-Type,
 * its body reads, its Server-Sent Events) and the per-answer figures
 * docs/MEASUREMENT.md defines: time to first byte, time to the first
 * event, the gaps between events, events and tokens. Times are those of
 * the reads that carried the bytes (one uv_hrtime() per read), so every
 * event completed in one read has that read's time.
 *
 * Without stream mode none of this runs: the engine uses the plain
 * lg_parser_settings and the hot path is unchanged.
 */
#include <errno.h>
#include <string.h>

#include "lib/loadgen/loadgen_int.h"

#define CT_NAME     "content-type"
#define CT_NAME_LEN 12
#define NO_MATCH    0xff

void lg_stream_reset(struct lg_conn *c)
{
	memset(&c->s, 0, offsetof(struct lg_stream, sse_r));
	c->s.tokens = -1;
}

void lg_stream_read(struct lg_conn *c, uint64_t now)
{
	c->s.now = now;
	c->s.reads++;
	if (!c->s.t_first_byte)
		c->s.t_first_byte = now;
}

static int64_t us_of(uint64_t ns)
{
	return (int64_t)((ns + 500) / 1000);
}

/* One event (an SSE event, or a read with body bytes) at the read's time. */
static void event(struct lg_conn *c)
{
	struct lg_stream *s = &c->s;

	if (s->events == 0)
		s->t_first = s->now;
	else if (!c->warm)
		(void)hist_record(c->t->st.itl, us_of(s->now - s->t_last));
	s->t_last = s->now;
	s->events++;
}

static void on_sse_event(void *userdata, const struct lg_sse_event *ev)
{
	struct lg_conn *c = userdata;

	if (ev->done)
		return; /* the end marker is not a token */
	event(c);
	if (ev->tokens >= 0)
		c->s.tokens = ev->tokens;
}

static int on_header_field(http_parser *hp, const char *at, size_t len)
{
	struct lg_stream *s = &((struct lg_conn *)hp->data)->s;

	if (s->in_value) {
		s->in_value = false;
		s->hmatch = 0;
	}
	for (size_t i = 0; i < len && s->hmatch != NO_MATCH; i++) {
		char ch = at[i] >= 'A' && at[i] <= 'Z' ? (char)(at[i] + 32) : at[i];

		s->hmatch = s->hmatch < CT_NAME_LEN && CT_NAME[s->hmatch] == ch
		                    ? (uint8_t)(s->hmatch + 1)
		                    : NO_MATCH;
	}
	return 0;
}

static int on_header_value(http_parser *hp, const char *at, size_t len)
{
	struct lg_stream *s = &((struct lg_conn *)hp->data)->s;
	size_t room = sizeof(s->ct) - s->ctlen;

	s->in_value = true;
	if (s->hmatch != CT_NAME_LEN)
		return 0;
	if (len > room)
		len = room;
	memcpy(s->ct + s->ctlen, at, len);
	s->ctlen = (uint8_t)(s->ctlen + len);
	return 0;
}

static int on_headers_complete(http_parser *hp)
{
	struct lg_conn *c = hp->data;

	c->s.sse = lg_sse_content_type(c->s.ct, c->s.ctlen);
	if (c->s.sse)
		lg_sse_init(&c->s.sse_r, c->t->lg->token_key);
	return lg_on_headers_complete(hp);
}

static int on_body(http_parser *hp, const char *at, size_t len)
{
	struct lg_conn *c = hp->data;

	if (c->s.sse) {
		lg_sse_feed(&c->s.sse_r, at, len, on_sse_event, c);
	} else if (c->s.body_read != c->s.reads) {
		c->s.body_read = c->s.reads;
		event(c);
	}
	return 0;
}

const http_parser_settings lg_stream_parser_settings = {
        .on_header_field = on_header_field,
        .on_header_value = on_header_value,
        .on_headers_complete = on_headers_complete,
        .on_body = on_body,
        .on_message_complete = lg_on_message_complete,
};

void lg_stream_record(struct lg_stats *st, const struct lg_conn *c, bool rate)
{
	const struct lg_stream *s = &c->s;
	uint64_t tokens;

	if (s->t_first_byte)
		(void)hist_record(st->ttfb, us_of(s->t_first_byte - c->t_sent));
	if (s->events == 0)
		return;
	(void)hist_record(st->ttft, us_of(s->t_first - c->t_intended));
	if (rate)
		(void)hist_record(st->ttft_unc, us_of(s->t_first - c->t_sent));
	tokens = s->tokens >= 0 ? (uint64_t)s->tokens : s->events;
	st->streamed++;
	st->events += s->events;
	st->tokens += tokens;
	if (s->events >= 2 && tokens >= 1) {
		st->decode_tokens += tokens - 1;
		st->decode_ns += s->t_last - s->t_first;
	}
}

int lg_stream_stats_new(struct lg_stats *st, bool rate)
{
	if (hist_new(HIST_HIGHEST_DEFAULT, HIST_DIGITS_DEFAULT, &st->ttfb) < 0 ||
	    hist_new(HIST_HIGHEST_DEFAULT, HIST_DIGITS_DEFAULT, &st->ttft) < 0 ||
	    hist_new(HIST_HIGHEST_DEFAULT, HIST_DIGITS_DEFAULT, &st->itl) < 0)
		return -ENOMEM;
	if (rate && hist_new(HIST_HIGHEST_DEFAULT, HIST_DIGITS_DEFAULT, &st->ttft_unc) < 0)
		return -ENOMEM;
	return 0;
}

void lg_stream_stats_free(struct lg_stats *st)
{
	hist_free(st->ttfb);
	hist_free(st->ttft);
	hist_free(st->ttft_unc);
	hist_free(st->itl);
}
