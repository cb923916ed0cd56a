/* fuzz_util: the helpers of fuzz.h, linked into every target in both
 * modes (libFuzzer and replay). No state. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

void fuzz_check_at(int cond, const char *what, const char *file, int line)
{
	if (cond)
		return;
	/* A finding: say which invariant broke, then crash so both libFuzzer
	 * and the replay test see it. */
	fprintf(stderr, "%s:%d: invariant violated: %s\n", file, line, what);
	abort();
}

char *fuzz_strdup(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	if (!s)
		return NULL;
	memcpy(s, data, size);
	s[size] = '\0';
	return s;
}
