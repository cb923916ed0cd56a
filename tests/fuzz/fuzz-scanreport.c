/* fuzz-scanreport: scanreport_parse() on any bytes. A scanner's report
 * comes from a build step or a URL, so anything must be counted or
 * refused with a message, never crash. The first byte picks the format
 * (auto, sarif, trivy). Counts add up to the total, and the top list is
 * bounded and ordered most severe first. */
#include <errno.h>
#include <string.h>

#include "fuzz.h"
#include "lib/probe/scanreport.h"

static int rank(json_t *finding)
{
	const char *s = json_string_value(json_object_get(finding, "severity"));

	for (int i = 0; i < _SCANREPORT_SEV_MAX; i++)
		if (s && !strcmp(s, scanreport_severity_name((enum scanreport_severity)i)))
			return i;
	return -1;
}

static void check_summary(json_t *o)
{
	json_int_t sum = 0;
	json_t *top = json_object_get(o, "top"), *f;
	size_t i;
	int last = 0;

	for (int s = 0; s < _SCANREPORT_SEV_MAX; s++)
		sum += json_integer_value(
		        json_object_get(o, scanreport_severity_name((enum scanreport_severity)s)));
	fuzz_check(sum == json_integer_value(json_object_get(o, "total")),
	           "the counts add up to the total");
	fuzz_check(json_array_size(top) <= SCANREPORT_MAX_TOP, "top is bounded");
	json_array_foreach (top, i, f) {
		fuzz_check(rank(f) >= last, "top is ordered most severe first");
		last = rank(f);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const enum scanreport_format fmts[] = {SCANREPORT_AUTO, SCANREPORT_SARIF,
	                                              SCANREPORT_TRIVY};
	char why[256] = "";
	json_t *o = NULL;
	int r;

	if (size < 1)
		return 0;
	r = scanreport_parse((const char *)data + 1, size - 1, fmts[data[0] % 3], &o, why,
	                     sizeof(why));
	if (r == -ENOMEM)
		return 0;
	if (r < 0) {
		fuzz_check(r == -EINVAL || r == -EFBIG,
		           "scanreport_parse returns -EINVAL or -EFBIG");
		fuzz_check(why[0] != '\0', "a refusal has a message");
		fuzz_check(o == NULL, "a refusal returns nothing");
		return 0;
	}
	check_summary(o);
	json_decref(o);
	return 0;
}
