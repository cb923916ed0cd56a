/* loadgen_sse: an incremental, allocation-free reader of Server-Sent
 * Events (text/event-stream) for the load engine's streaming
 * measurements (docs/MEASUREMENT.md, "Streaming responses"). Bytes are
 * fed as they arrive, in reads of any size: an event may span reads and
 * one read may hold several. The reader keeps no event text, only what
 * the engine needs per event: whether it is the end marker `[DONE]` and
 * the token count an event states under a JSON key
 * ("completion_tokens" by default, as OpenAI-style `usage` does).
 *
 * Lines end with CRLF, LF or CR; a line starting with ':' is a comment;
 * a `data` field (with or without a value) makes the event carry data; a
 * blank line dispatches an event that carried data. Other fields (event,
 * id, retry) are read and ignored.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LG_SSE_KEY_MAX 64 /* token count key, bytes (LG_TOKEN_KEY_MAX) */

struct lg_sse_event {
	bool done;      /* the data was exactly "[DONE]" */
	int64_t tokens; /* the last number under the token key; -1: none */
};

/* Called once per dispatched event. */
typedef void (*lg_sse_event_cb)(void *userdata, const struct lg_sse_event *ev);

struct lg_sse {
	uint8_t state;
	bool cr;        /* the last byte was a CR: an LF right after it is part of it */
	bool data_line; /* the current line is a data field */
	bool has_data;  /* the event being read has a data field */
	uint8_t flen;   /* bytes of the field name so far */
	char field[6];
	uint32_t dlen; /* data bytes of the event so far, capped */
	bool maybe_done;
	/* token key matching: the number after "KEY" : */
	uint8_t kstate;
	uint8_t kpos;
	int64_t knum;
	int64_t tokens;
	const char *key; /* borrowed; NULL: "completion_tokens" */
	uint8_t key_len;
};

/* Prepares r for a new response. key: the JSON key whose number counts
 * the tokens (borrowed, 1..LG_SSE_KEY_MAX bytes, no '"'), NULL for
 * "completion_tokens". */
void lg_sse_init(struct lg_sse *r, const char *key);

/* Reads len bytes; cb runs for each event completed in them. */
void lg_sse_feed(struct lg_sse *r, const char *buf, size_t len, lg_sse_event_cb cb, void *userdata);

/* True if a Content-Type value names text/event-stream. */
bool lg_sse_content_type(const char *value, size_t len);
