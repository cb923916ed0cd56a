/* fuzz: what every fuzz target in tests/fuzz/ shares. Each fuzz-<name>.c
 * defines LLVMFuzzerTestOneInput(); built with -Dfuzzing=true it links
 * libFuzzer's main, otherwise replay.c's main() feeds it every file of
 * its seed corpus so the corpora run in the ordinary test suite.
 *
 * A target must not print, keep state between inputs, or leak: a finding
 * is a sanitizer report or an abort() from fuzz_check() when an invariant
 * of the code under test does not hold.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Aborts (a finding in both modes) when cond is false; what names the
 * invariant for the report on stderr. */
#define fuzz_check(cond, what) fuzz_check_at((cond), (what), __FILE__, __LINE__)
void fuzz_check_at(int cond, const char *what, const char *file, int line);

/* A NUL-terminated copy of data (malloc), or NULL on ENOMEM. The C-string
 * APIs under test see the bytes up to the first NUL, as they would from a
 * parsed request or spec. */
char *fuzz_strdup(const uint8_t *data, size_t size);
