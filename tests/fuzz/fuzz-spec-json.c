/* fuzz-spec-json: spec_parse() on JSON input; the checks are in fuzz_spec.h. */
#include "fuzz_spec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fuzz_spec_one(data, size, SPEC_FORMAT_JSON);
}
