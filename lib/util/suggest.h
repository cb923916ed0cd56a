/* suggest: "did you mean" for a misspelt word, shared by the spec
 * validator, the daemon's config and readyctl's commands. */
#ifndef READYD_UTIL_SUGGEST_H
#define READYD_UTIL_SUGGEST_H

#include <stddef.h>

/* The closest candidate to a misspelt word so far. Start with
 * {.word = w}, offer candidates with rd_suggest_try. */
struct rd_suggest {
	const char *word;
	const char *best;
	int best_d;
};

/* Keeps cand when it is within 1 edit of word (2 for words longer than
 * 4; case-insensitive, a swap of neighbours is one edit) and closer than
 * the best so far. Words longer than 64 bytes are never close. */
void rd_suggest_try(struct rd_suggest *sg, const char *cand);

/* " (did you mean 'x'?)" or "" into buf. */
void rd_suggest_text(const struct rd_suggest *sg, char *buf, size_t len);

#endif
