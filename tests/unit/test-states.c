/* test-states: the run-state, verdict and gate-outcome vocabulary and the
 * moves a run may make. */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lib/gate/gate.h"
#include "lib/util/run_state.h"

static const char *const words[] = {
        "queued", "running", "passed", "failed", "error", "cancelled", "interrupted",
};

START_TEST(test_state_words)
{
	enum run_state st;

	ck_assert_int_eq(RUN_STATE_COUNT, sizeof(words) / sizeof(words[0]));
	for (int i = 0; i < RUN_STATE_COUNT; i++) {
		ck_assert_str_eq(run_state_to_string((enum run_state)i), words[i]);
		ck_assert_int_eq(run_state_from_string(words[i], &st), 0);
		ck_assert_int_eq(st, i);
	}
	ck_assert_str_eq(run_state_to_string(RUN_STATE_COUNT), "?");
	ck_assert_int_eq(run_state_from_string("PASSED", &st), -EINVAL);
	ck_assert_int_eq(run_state_from_string("", &st), -EINVAL);
	ck_assert_int_eq(run_state_from_string(NULL, &st), -EINVAL);
}
END_TEST

START_TEST(test_state_final)
{
	ck_assert(!run_state_is_final(RUN_QUEUED));
	ck_assert(!run_state_is_final(RUN_RUNNING));
	for (int i = RUN_PASSED; i < RUN_STATE_COUNT; i++)
		ck_assert(run_state_is_final((enum run_state)i));
	ck_assert(!run_state_is_final(RUN_STATE_COUNT));
	ck_assert(run_state_string_is_final("interrupted"));
	ck_assert(!run_state_string_is_final("running"));
	ck_assert(!run_state_string_is_final("finished"));
	ck_assert(!run_state_string_is_final(NULL));
}
END_TEST

/* The whole table, spelled out: every pair of states. */
START_TEST(test_state_moves)
{
	for (int from = 0; from < RUN_STATE_COUNT; from++) {
		for (int to = 0; to < RUN_STATE_COUNT; to++) {
			bool want = (from == RUN_QUEUED && to != RUN_QUEUED) ||
			            (from == RUN_RUNNING && to >= RUN_PASSED);

			ck_assert_msg(run_state_can_move(from, to) == want, "%s -> %s", words[from],
			              words[to]);
		}
	}
	ck_assert(!run_state_can_move(RUN_STATE_COUNT, RUN_PASSED));
	ck_assert(!run_state_can_move(RUN_RUNNING, RUN_STATE_COUNT));
}
END_TEST

START_TEST(test_verdict_words)
{
	static const char *const v[] = {"PASS", "FAIL", "ERROR"};
	enum verdict got;

	for (int i = VERDICT_PASS; i <= VERDICT_ERROR; i++) {
		ck_assert_str_eq(gate_verdict_to_string((enum verdict)i), v[i]);
		ck_assert_int_eq(gate_verdict_from_string(v[i], &got), 0);
		ck_assert_int_eq(got, i);
	}
	ck_assert_int_eq(gate_verdict_from_string("pass", &got), -EINVAL);
	ck_assert_int_eq(gate_verdict_from_string(NULL, &got), -EINVAL);
}
END_TEST

START_TEST(test_outcome_words)
{
	static const char *const o[] = {"pass", "fail", "error", "waived", "no-baseline"};
	enum gate_outcome got;

	for (int i = GATE_PASS; i <= GATE_NO_BASELINE; i++) {
		ck_assert_str_eq(gate_outcome_to_string((enum gate_outcome)i), o[i]);
		ck_assert_int_eq(gate_outcome_from_string(o[i], &got), 0);
		ck_assert_int_eq(got, i);
	}
	ck_assert_int_eq(gate_outcome_from_string("PASS", &got), -EINVAL);
	ck_assert_int_eq(gate_outcome_from_string(NULL, &got), -EINVAL);
}
END_TEST

static Suite *states_suite(void)
{
	Suite *s = suite_create("states");
	TCase *tc = tcase_create("vocabulary");

	tcase_add_test(tc, test_state_words);
	tcase_add_test(tc, test_state_final);
	tcase_add_test(tc, test_state_moves);
	tcase_add_test(tc, test_verdict_words);
	tcase_add_test(tc, test_outcome_words);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(states_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
