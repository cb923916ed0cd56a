/* fuzz-time: rd_parse_duration() and rd_time_parse(), which read query
 * parameters (?wait=, ?since=) and spec fields. Any string must parse or
 * fail with -EINVAL/-ERANGE; a parsed duration is never negative; a
 * parsed time formats and parses back to the same millisecond. */
#include <errno.h>
#include <stdlib.h>

#include "fuzz.h"
#include "lib/util/util.h"

/* rd_time_format() writes four-digit years: beyond, no round trip. */
#define FUZZ_TIME_MIN_MS (-62135596800000LL) /* 0001-01-01 */
#define FUZZ_TIME_MAX_MS (253402300799999LL) /* 9999-12-31T23:59:59.999 */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_strdup(data, size);
	char buf[RD_TIME_LEN];
	int64_t ms = -1, again = -1;
	int r;

	if (!s)
		return 0;
	r = rd_parse_duration(s, &ms);
	if (r == 0)
		fuzz_check(ms >= 0, "a duration is not negative");
	else
		fuzz_check((r == -EINVAL || r == -ERANGE) && ms == -1,
		           "a refused duration leaves the out-param alone");
	ms = 0;
	if (rd_time_parse(s, &ms) == 0 && ms >= FUZZ_TIME_MIN_MS && ms <= FUZZ_TIME_MAX_MS) {
		rd_time_format(ms, buf);
		fuzz_check(rd_time_parse(buf, &again) == 0 && again == ms,
		           "a formatted time parses back to itself");
	}
	free(s);
	return 0;
}
