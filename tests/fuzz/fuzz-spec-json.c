/* fuzz-spec-json: spec_parse() on JSON input. The parser takes untrusted
 * bytes from POST /v1/runs, so any input must give either a spec or
 * -EINVAL/-E2BIG with a message (never a crash, leak or hang). A parsed
 * spec must survive the redacted JSON view the API stores and serves. */
#include <errno.h>
#include <stdlib.h>

#include "fuzz.h"
#include "spec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct spec_error err = {0};
	struct spec *s = NULL;
	json_t *j;
	char *text;
	int r;

	r = spec_parse((const char *)data, size, SPEC_FORMAT_JSON, &s, &err);
	if (r == -ENOMEM)
		return 0;
	if (r < 0) {
		fuzz_check(r == -EINVAL || r == -E2BIG, "spec_parse returns -EINVAL or -E2BIG");
		fuzz_check(s == NULL, "no spec on error");
		fuzz_check(err.message[0] != '\0', "an error has a message");
		return 0;
	}
	fuzz_check(s != NULL, "a spec on success");
	j = spec_to_json_redacted(s);
	if (j) {
		text = json_dumps(j, JSON_COMPACT);
		free(text);
		json_decref(j);
	}
	spec_free(s);
	return 0;
}
