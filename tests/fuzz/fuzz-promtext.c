/* fuzz-promtext: promtext_parse() in both exposition formats. A scraped
 * /metrics body is untrusted, so any bytes must parse or fail with a line
 * and a message. Every family parsed must be found by its own name. The
 * first byte picks the format so one corpus covers both. */
#include <errno.h>
#include <string.h>

#include "fuzz.h"
#include "lib/prom/promtext.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	enum promtext_format fmt;
	struct promtext_error err;
	struct promtext *pt = NULL;
	int r;

	if (size < 1)
		return 0;
	fmt = (data[0] & 1) ? PROMTEXT_OPENMETRICS : PROMTEXT_TEXT;
	memset(&err, 0, sizeof(err));
	r = promtext_parse((const char *)data + 1, size - 1, fmt, &pt, &err);
	if (r == -ENOMEM)
		return 0;
	if (r < 0) {
		fuzz_check(r == -EINVAL || r == -E2BIG, "promtext_parse returns -EINVAL or -E2BIG");
		fuzz_check(err.message[0] != '\0', "a refusal has a message");
		return 0;
	}
	for (size_t i = 0; i < pt->n_families; i++)
		fuzz_check(promtext_find(pt, pt->families[i].name) != NULL,
		           "every family is found by its name");
	promtext_free(pt);
	return 0;
}
