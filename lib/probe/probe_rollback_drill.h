/* probe_rollback_drill.h: how the rollback-drill probe reads a version_url
 * answer and compares it with expect_version, apart from the HTTP polling
 * so it can be tested on bodies alone. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* Whether the answer body reports expect: the "version" string of a JSON
 * object when there is one, else the whole body without surrounding white
 * space; compared exactly, case and length included. The version seen is
 * written to seen (truncated to fit, for messages). A NULL body is empty. */
bool probe_rollback_drill_matches(const char *body, size_t body_len, const char *expect, char *seen,
                                  size_t len);
