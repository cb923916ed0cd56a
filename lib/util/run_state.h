/* run_state: the words of a run's life (queued, running, passed, failed,
 * error, cancelled, interrupted) as one enum, shared by the scheduler,
 * the store, the reports, the API and readyctl so no layer spells them on
 * its own. A probe's state is written with the same words.
 *
 * It lives in util/ because the store and the reports sit below the
 * scheduler and read the same words from the database.
 */
#pragma once

#include <stdbool.h>

enum run_state {
	RUN_QUEUED = 0,
	RUN_RUNNING,
	RUN_PASSED,
	RUN_FAILED,
	RUN_ERROR,
	RUN_CANCELLED,
	RUN_INTERRUPTED,
	RUN_STATE_COUNT,
};

/* "queued" ... "interrupted"; "?" for a value out of range. */
const char *run_state_to_string(enum run_state s);

/* The word -> the state. Returns 0 or -EINVAL (s NULL or not a state). */
int run_state_from_string(const char *s, enum run_state *ret_state);

/* A run in a final state never moves again: passed, failed, error,
 * cancelled, interrupted. */
bool run_state_is_final(enum run_state s);

/* True when the word names a final state (false for NULL or an unknown
 * word: a state nobody can read is not a finished run). */
bool run_state_string_is_final(const char *s);

/* May a run move from `from` to `to`? queued -> running or any final
 * state (cancelled before it started, interrupted by a shutdown, error
 * when it could not start); running -> any final state; a final state
 * never moves. Staying in the same state is not a move. */
bool run_state_can_move(enum run_state from, enum run_state to);
