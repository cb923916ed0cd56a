/* assert: rd_assert(expr), an invariant the code relies on. It is an
 * expression with expr's truth value, so the caller decides what a broken
 * invariant costs:
 *
 *     if (!rd_assert(p->state == PROBE_STATE_RUNNING)) {
 *             fail the run; return;
 *     }
 *
 * In abort mode (the default unless NDEBUG: debug and test builds) a
 * false expr writes `file:line: func: invariant 'expr' broken` to stderr
 * and aborts, so the bug is found where it happens. In report mode (the
 * default with NDEBUG: release builds) it calls the hook the daemon set
 * (which logs at error), counts the failure and returns false; lib/
 * itself never logs above debug, so without a hook only the count says.
 */
#pragma once

#include <stdbool.h>

enum rd_assert_mode {
	RD_ASSERT_ABORT = 0,
	RD_ASSERT_REPORT,
};

typedef void (*rd_assert_hook)(const char *expr, const char *file, int line, const char *func);

/* Process-wide; set once at start-up, before any thread starts. */
void rd_assert_set_mode(enum rd_assert_mode mode);
enum rd_assert_mode rd_assert_get_mode(void);
void rd_assert_set_hook(rd_assert_hook hook);

/* How many invariants broke in report mode since the process started. */
unsigned long rd_assert_failures(void);

/* Called by rd_assert on a false expression; returns false (report mode)
 * or does not return (abort mode). */
bool rd_assert_fail(const char *expr, const char *file, int line, const char *func);

#define rd_assert(expr) ((expr) ? true : rd_assert_fail(#expr, __FILE__, __LINE__, __func__))
