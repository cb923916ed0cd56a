/* test-states: the run-state, verdict and gate-outcome vocabulary, the
 * moves a run may make, and rd_assert in both of its modes. */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/gate/gate.h"
#include "lib/probe/probe.h"
#include "lib/util/assert.h"
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

static struct {
	int calls;
	char expr[64], file[256], func[64];
	int line;
} hooked;

static void record_hook(const char *expr, const char *file, int line, const char *func)
{
	hooked.calls++;
	snprintf(hooked.expr, sizeof(hooked.expr), "%s", expr);
	snprintf(hooked.file, sizeof(hooked.file), "%s", file);
	snprintf(hooked.func, sizeof(hooked.func), "%s", func);
	hooked.line = line;
}

static void report_mode(void)
{
	memset(&hooked, 0, sizeof(hooked));
	rd_assert_set_mode(RD_ASSERT_REPORT);
	rd_assert_set_hook(record_hook);
}

static void abort_mode(void)
{
	rd_assert_set_hook(NULL);
	rd_assert_set_mode(RD_ASSERT_ABORT);
}

static bool ends_with(const char *s, const char *tail)
{
	size_t n = strlen(s), k = strlen(tail);

	return n >= k && strcmp(s + n - k, tail) == 0;
}

START_TEST(test_assert_default_mode)
{
#ifdef NDEBUG
	ck_assert_int_eq(rd_assert_get_mode(), RD_ASSERT_REPORT);
#else
	ck_assert_int_eq(rd_assert_get_mode(), RD_ASSERT_ABORT);
#endif
}
END_TEST

/* Report mode: false comes back to the caller, the hook hears where. */
START_TEST(test_assert_report)
{
	unsigned long before = rd_assert_failures();
	int two = 2, line;
	bool ok;

	report_mode();
	ck_assert(rd_assert(two == 2));
	ck_assert_int_eq(hooked.calls, 0);
	line = __LINE__ + 1;
	ok = rd_assert(two == 3);
	abort_mode();
	ck_assert(!ok);
	ck_assert_int_eq(hooked.calls, 1);
	ck_assert_str_eq(hooked.expr, "two == 3");
	ck_assert_msg(ends_with(hooked.file, "test-states.c"), "file %s", hooked.file);
	ck_assert_int_eq(hooked.line, line);
	ck_assert_str_eq(hooked.func, "test_assert_report_fn");
	ck_assert_uint_eq(rd_assert_failures(), before + 1);
}
END_TEST

/* Runs fn in a child with stderr captured; returns how the child ended. */
static int in_child(void (*fn)(void), char *err, size_t len)
{
	int fds[2], status = 0;
	ssize_t n, got = 0;
	pid_t pid;

	ck_assert_int_eq(pipe(fds), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		dup2(fds[1], STDERR_FILENO);
		close(fds[0]);
		fn();
		_exit(0);
	}
	close(fds[1]);
	while ((size_t)got < len - 1 && (n = read(fds[0], err + got, len - 1 - (size_t)got)) > 0)
		got += n;
	err[got] = '\0';
	close(fds[0]);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	return status;
}

static void broken_invariant(void)
{
	int one = 1;

	abort_mode();
	(void)rd_assert(one > 1);
}
static const int broken_line = __LINE__ - 2; /* the rd_assert above */

/* Abort mode: the process stops, saying which expression broke where. */
START_TEST(test_assert_abort)
{
	char err[1024], want[128];
	int status;

	status = in_child(broken_invariant, err, sizeof(err));
	ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT, "status %d", status);
	ck_assert_msg(strstr(err, "invariant 'one > 1' broken"), "stderr: %s", err);
	snprintf(want, sizeof(want), "test-states.c:%d: broken_invariant:", broken_line);
	ck_assert_msg(strstr(err, want), "want %s in: %s", want, err);
}
END_TEST

static int done_calls;

static void count_done(struct probe *p)
{
	done_calls++;
}

static void finish_twice(void)
{
	struct probe p = {.state = PROBE_STATE_RUNNING, .done = count_done};

	abort_mode();
	probe_finish(&p, PROBE_STATE_PASSED, NULL);
	probe_finish(&p, PROBE_STATE_FAILED, NULL);
}

/* A probe that ends twice is a bug in its type: caught in abort mode... */
START_TEST(test_probe_finish_twice_aborts)
{
	char err[1024];
	int status = in_child(finish_twice, err, sizeof(err));

	ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT, "status %d: %s", status,
	              err);
	ck_assert_msg(strstr(err, "probe_finish"), "stderr: %s", err);
}
END_TEST

/* ...and in report mode the first end stands and is reported once. */
START_TEST(test_probe_finish_twice_reported)
{
	struct probe p = {.state = PROBE_STATE_RUNNING, .done = count_done};

	report_mode();
	done_calls = 0;
	probe_finish(&p, PROBE_STATE_PASSED, NULL);
	probe_finish(&p, PROBE_STATE_FAILED, "too late");
	abort_mode();
	ck_assert_int_eq(done_calls, 1);
	ck_assert_int_eq(p.state, PROBE_STATE_PASSED);
	ck_assert_ptr_null(p.error);
	ck_assert_int_eq(hooked.calls, 1);
	ck_assert_str_eq(hooked.func, "probe_finish");
}
END_TEST

static Suite *states_suite(void)
{
	Suite *s = suite_create("states");
	TCase *tc = tcase_create("vocabulary");
	TCase *ta = tcase_create("assert");

	tcase_add_test(tc, test_state_words);
	tcase_add_test(tc, test_state_final);
	tcase_add_test(tc, test_state_moves);
	tcase_add_test(tc, test_verdict_words);
	tcase_add_test(tc, test_outcome_words);
	suite_add_tcase(s, tc);
	tcase_add_test(ta, test_assert_default_mode);
	tcase_add_test(ta, test_assert_report);
	tcase_add_test(ta, test_assert_abort);
	tcase_add_test(ta, test_probe_finish_twice_aborts);
	tcase_add_test(ta, test_probe_finish_twice_reported);
	suite_add_tcase(s, ta);
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
