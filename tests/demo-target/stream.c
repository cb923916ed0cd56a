/* stream: /v1/completions, a model answer streamed as OpenAI-style
 * Server-Sent Events. The headers go out at once; the content reader then
 * sleeps (MHD runs one thread per connection) until each token's time:
 * the first `first` after the answer was queued, then one every `gap`.
 * Each token is one event `data: {"choices":[{"text":"tokN","index":0}]}`,
 * the last also carries `"usage":{"completion_tokens":N}`, and `data:
 * [DONE]` ends the stream. MHD sends it chunked (the size is unknown).
 * With format=text the same tokens go out as plain text/plain chunks
 * ("tokN "), one per token, as a server that streams without SSE does.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "demo-target.h"

#define EVENT_MAX 160 /* longer than any event */

struct stream_ctx {
	struct state *st;
	struct stream_params p;
	int64_t start_ns;
	int64_t next; /* the next token to send; tokens: [DONE] */
	bool ended;
};

/* "50", "0.5": milliseconds, 0..3600000. */
static int parse_ms(const char *s, int64_t *ret_ns)
{
	char *end;
	double ms;

	errno = 0;
	ms = strtod(s, &end);
	if (errno || end == s || *end || !(ms >= 0 && ms <= 3600000.0))
		return -EINVAL;
	*ret_ns = (int64_t)(ms * (double)DT_NS_PER_MS);
	return 0;
}

int stream_params_from_query(struct MHD_Connection *c, struct stream_params *p, char *err,
                             size_t errlen)
{
	const char *first = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "first_ms");
	const char *gap = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "gap_ms");
	const char *tokens = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "tokens");
	const char *format = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "format");

	if (first && parse_ms(first, &p->first_ns) < 0) {
		snprintf(err, errlen, "invalid first_ms: expected milliseconds 0..3600000");
		return -EINVAL;
	}
	if (gap && parse_ms(gap, &p->gap_ns) < 0) {
		snprintf(err, errlen, "invalid gap_ms: expected milliseconds 0..3600000");
		return -EINVAL;
	}
	if (tokens && cli_parse_tokens(tokens, &p->tokens) < 0) {
		snprintf(err, errlen, "invalid tokens: expected an integer from 0 to 100000");
		return -EINVAL;
	}
	if (format && strcmp(format, "sse") != 0 && strcmp(format, "text") != 0) {
		snprintf(err, errlen, "invalid format: expected sse or text");
		return -EINVAL;
	}
	if (format)
		p->text = strcmp(format, "text") == 0;
	return 0;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct stream_ctx *x = cls;
	int64_t k = x->next;
	int n;

	if (x->ended)
		return MHD_CONTENT_READER_END_OF_STREAM;
	if (max < EVENT_MAX)
		return 0; /* called again with room */
	if (k == x->p.tokens) {
		x->ended = true;
		state_streamed(x->st, x->p.tokens);
		if (x->p.text)
			return MHD_CONTENT_READER_END_OF_STREAM;
		return snprintf(buf, max, "data: [DONE]\n\n");
	}
	if (state_sleep_until(x->st, x->start_ns + x->p.first_ns + k * x->p.gap_ns) < 0)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	if (x->p.text)
		n = snprintf(buf, max, "tok%lld ", (long long)k);
	else if (k + 1 < x->p.tokens)
		n = snprintf(buf, max,
		             "data: {\"choices\":[{\"text\":\"tok%lld\",\"index\":0}]}\n\n",
		             (long long)k);
	else
		n = snprintf(buf, max,
		             "data: {\"choices\":[{\"text\":\"tok%lld\",\"index\":0}],"
		             "\"usage\":{\"completion_tokens\":%lld}}\n\n",
		             (long long)k, (long long)x->p.tokens);
	x->next++;
	return n;
}

enum MHD_Result stream_serve(struct state *st, struct MHD_Connection *c,
                             const struct stream_params *p)
{
	struct stream_ctx *x = calloc(1, sizeof(*x));
	struct MHD_Response *resp;
	enum MHD_Result r;

	if (!x)
		return MHD_NO;
	x->st = st;
	x->p = *p;
	x->start_ns = dt_now_ns();
	resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 1024, stream_read, x, free);
	if (!resp) {
		free(x);
		return MHD_NO;
	}
	if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
	                            p->text ? "text/plain; charset=utf-8" : "text/event-stream") !=
	            MHD_YES ||
	    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache") != MHD_YES) {
		MHD_destroy_response(resp);
		return MHD_NO;
	}
	r = MHD_queue_response(c, MHD_HTTP_OK, resp);
	MHD_destroy_response(resp);
	return r;
}
