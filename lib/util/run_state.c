/* run_state: the run-state vocabulary and the moves a run may make (see
 * run_state.h). */
#include <errno.h>
#include <string.h>

#include "lib/util/run_state.h"
#include "lib/util/util.h"

static const char *const run_state_names[RUN_STATE_COUNT] = {
        [RUN_QUEUED] = "queued",           [RUN_RUNNING] = "running", [RUN_PASSED] = "passed",
        [RUN_FAILED] = "failed",           [RUN_ERROR] = "error",     [RUN_CANCELLED] = "cancelled",
        [RUN_INTERRUPTED] = "interrupted",
};

const char *run_state_to_string(enum run_state s)
{
	if ((unsigned)s >= RUN_STATE_COUNT)
		return "?";
	return run_state_names[s];
}

int run_state_from_string(const char *s, enum run_state *ret_state)
{
	for (size_t i = 0; s && i < RD_ARRAY_SIZE(run_state_names); i++)
		if (strcmp(s, run_state_names[i]) == 0) {
			*ret_state = (enum run_state)i;
			return 0;
		}
	return -EINVAL;
}

bool run_state_is_final(enum run_state s)
{
	return (unsigned)s < RUN_STATE_COUNT && s != RUN_QUEUED && s != RUN_RUNNING;
}

bool run_state_string_is_final(const char *s)
{
	enum run_state st;

	return run_state_from_string(s, &st) == 0 && run_state_is_final(st);
}

bool run_state_can_move(enum run_state from, enum run_state to)
{
	if ((unsigned)from >= RUN_STATE_COUNT || (unsigned)to >= RUN_STATE_COUNT)
		return false;
	switch (from) {
	case RUN_QUEUED:
		return to != RUN_QUEUED;
	case RUN_RUNNING:
		return run_state_is_final(to);
	default:
		return false;
	}
}
