/* scope: which services a token may see and change. A scope is a list of
 * fnmatch(3) patterns separated by '\n' ("team-a-*\nshared-db"); the
 * empty scope allows every service. Shared by api/ (single resources,
 * submissions) and the store (lists filtered in SQL). No state.
 */
#pragma once

#include <stdbool.h>

/* True if service matches one of scope's patterns, or scope is NULL or
 * empty. Both borrowed. */
bool scope_allows(const char *scope, const char *service);

/* True for a scope that limits anything (not NULL, not empty). */
bool scope_limited(const char *scope);
