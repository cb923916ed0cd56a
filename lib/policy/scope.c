/* scope: service patterns of a token (see scope.h). fnmatch(3) without
 * flags: `*` and `?` match any character, so "team-a-*" covers
 * "team-a-api"; brackets as in the shell. */
#include <fnmatch.h>
#include <string.h>

#include "lib/policy/scope.h"

#define SCOPE_PATTERN_MAX 256

bool scope_limited(const char *scope)
{
	return scope && *scope;
}

bool scope_allows(const char *scope, const char *service)
{
	char pat[SCOPE_PATTERN_MAX + 1];

	if (!scope_limited(scope))
		return true;
	if (!service)
		return false;
	while (*scope) {
		size_t n = strcspn(scope, "\n");

		if (n <= SCOPE_PATTERN_MAX) {
			memcpy(pat, scope, n);
			pat[n] = '\0';
			if (fnmatch(pat, service, 0) == 0)
				return true;
		}
		scope += n;
		if (*scope == '\n')
			scope++;
	}
	return false;
}
