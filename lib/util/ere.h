/* ere: POSIX extended regular expressions from specs (expect_body_regex),
 * made safe to accept from strangers. glibc's regcomp() expands counted
 * repetition by copying the repeated part, so "(((a{0,30}){0,30}){0,30})"
 * costs seconds and gigabytes to compile, and regexec() grows faster than
 * linearly with the text. So a pattern is checked before it is compiled
 * (length, repetition counts, nesting, the size its repetitions expand to,
 * no back-references), and matching runs on libuv's threadpool against at
 * most ERE_MATCH_MAX bytes, never on the loop.
 */
#pragma once

#include <stddef.h>
#include <uv.h>

#define ERE_MAX_PATTERN 512         /* bytes */
#define ERE_MAX_COUNT   100         /* the n and m of {n,m} */
#define ERE_MAX_DEPTH   8           /* nested groups */
#define ERE_MAX_NODES   1000        /* pattern size once repetitions are expanded */
#define ERE_MATCH_MAX   (64 * 1024) /* bytes of text a pattern is matched against */

/* Checks pattern against the caps above, then compiles it once to see
 * that it is a valid ERE (fast once the caps hold). Returns 0, or -EINVAL
 * with a sentence in why ("repetition count 1000 is over 100"). Any
 * thread. */
int ere_check(const char *pattern, char *why, size_t len);

struct ere_match;

/* result: 1 matched, 0 did not, -EINVAL the pattern does not compile,
 * -ENOMEM. */
typedef void (*ere_match_cb)(void *userdata, int result);

/* Matches pattern (checked with ere_check) against the first
 * ERE_MATCH_MAX bytes of text (up to a NUL) on the loop's threadpool; cb
 * runs on the loop once, unless cancelled first. pattern and text are
 * copied. *ret_match (optional) is for ere_match_cancel until cb runs.
 * Returns 0 or -ENOMEM/-errno. Loop thread only. */
int ere_match_async(uv_loop_t *loop, const char *pattern, const char *text, size_t len,
                    ere_match_cb cb, void *userdata, struct ere_match **ret_match);

/* Stops waiting for a match: cb will not run; memory is released once
 * the worker returns (run the loop). */
void ere_match_cancel(struct ere_match *m);
