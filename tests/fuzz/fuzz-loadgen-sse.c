/* fuzz-loadgen-sse: the load engine's Server-Sent Events reader
 * (lib/loadgen/loadgen_sse.c) fed any bytes, split into reads of a size
 * the input chooses, and the same bytes in one read: the events seen
 * must be the same either way (where reads split must never matter), a
 * token count is never below -1, and nothing reads out of bounds.
 *
 * Input: byte 0 = the read size (1..256); the rest is the stream.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "lib/loadgen/loadgen_sse.h"

struct tally {
	uint64_t events, done;
	int64_t tokens_sum;
};

static void on_event(void *userdata, const struct lg_sse_event *ev)
{
	struct tally *t = userdata;

	fuzz_check(ev->tokens >= -1, "a token count is -1 or a count");
	t->events++;
	t->done += ev->done;
	t->tokens_sum += ev->tokens;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tally whole = {0}, split = {0};
	struct lg_sse r;
	size_t chunk, off = 1;

	if (size < 1)
		return 0;
	chunk = (size_t)data[0] + 1;
	lg_sse_init(&r, NULL);
	lg_sse_feed(&r, (const char *)data + 1, size - 1, on_event, &whole);
	lg_sse_init(&r, NULL);
	while (off < size) {
		size_t len = size - off < chunk ? size - off : chunk;

		lg_sse_feed(&r, (const char *)data + off, len, on_event, &split);
		off += len;
	}
	fuzz_check(whole.events == split.events && whole.done == split.done &&
	                   whole.tokens_sum == split.tokens_sum,
	           "the events do not depend on where reads split");
	return 0;
}
