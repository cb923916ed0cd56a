/* assert: what rd_assert does with a broken invariant (see assert.h). The
 * one place in lib/ that writes to stderr and aborts: a debug build stops
 * at the bug, with the expression and where. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "lib/util/assert.h"

#ifdef NDEBUG
#define DEFAULT_MODE RD_ASSERT_REPORT
#else
#define DEFAULT_MODE RD_ASSERT_ABORT
#endif

static _Atomic int assert_mode = DEFAULT_MODE;
static rd_assert_hook assert_hook;
static atomic_ulong assert_failures;

void rd_assert_set_mode(enum rd_assert_mode mode)
{
	assert_mode = mode;
}

enum rd_assert_mode rd_assert_get_mode(void)
{
	return (enum rd_assert_mode)assert_mode;
}

void rd_assert_set_hook(rd_assert_hook hook)
{
	assert_hook = hook;
}

unsigned long rd_assert_failures(void)
{
	return assert_failures;
}

bool rd_assert_fail(const char *expr, const char *file, int line, const char *func)
{
	char msg[512];
	int n;

	assert_failures++;
	if (assert_mode == RD_ASSERT_REPORT) {
		if (assert_hook)
			assert_hook(expr, file, line, func);
		return false;
	}
	n = snprintf(msg, sizeof(msg), "%s:%d: %s: invariant '%s' broken\n", file, line, func,
	             expr);
	if (n > 0)
		(void)!write(STDERR_FILENO, msg,
		             (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1);
	abort();
}
