/* fuzz_spec: the property both spec targets check (fuzz-spec-json.c,
 * fuzz-spec-yaml.c): spec_parse() takes untrusted bytes from POST
 * /v1/runs, so any input gives either a spec or -EINVAL/-E2BIG with a
 * message (never a crash, leak or hang), and a parsed spec survives the
 * redacted JSON view the API stores and serves. */
#pragma once

#include <errno.h>
#include <stdlib.h>

#include "fuzz.h"
#include "lib/spec/spec.h"

static inline int fuzz_spec_one(const uint8_t *data, size_t size, enum spec_format fmt)
{
	struct spec_error err = {0};
	struct spec *s = NULL;
	json_t *j;
	char *text;
	int r;

	r = spec_parse((const char *)data, size, fmt, &s, &err);
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
