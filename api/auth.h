/* auth: who is calling the API. Bearer tokens from readyd.yaml, stored
 * only as SHA-256 hashes with a name and a role (viewer < submitter <
 * admin); a per-token request rate limit (token bucket). The server asks
 * auth_check() before every handler; routes carry the role they need
 * (api.h). With no tokens configured every request is allowed: the
 * daemon refuses that on a non-loopback address unless told otherwise.
 *
 * This module knows nothing of HTTP responses: it answers with a code and
 * the server turns it into 401/403/429. It never logs a token or a hash.
 * Main loop thread only.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api.h"

#define AUTH_HASH_LEN   32
#define AUTH_NAME_MAX   64
#define AUTH_MAX_TOKENS 1024
#define AUTH_TOKEN_MAX  4096 /* longest token accepted in a header */

struct auth;

#define AUTH_SCOPE_MAX 1024 /* bytes of a token's service patterns */

struct auth_token {
	char name[AUTH_NAME_MAX + 1];
	unsigned char hash[AUTH_HASH_LEN];
	enum api_role role;
	/* The services the token may see and change: fnmatch(3) patterns
	 * separated by '\n' (lib/policy/scope.h); "" for every service. */
	char scope[AUTH_SCOPE_MAX];
};

/* Who a request acts as once auth_check() let it in: the token's name
 * (NULL without one) and its scope ("" for every service). */
struct auth_who {
	const char *name;
	const char *scope;
};

struct auth_config {
	const struct auth_token *tokens; /* borrowed; copied by auth_new */
	size_t n_tokens;
	bool public_metrics; /* GET /metrics needs no token */
	double rate;         /* requests per second per token; 0: unlimited */
	double burst;        /* bucket size; 0: max(1, rate) */
};

int auth_new(const struct auth_config *cfg, struct auth **ret_auth);
void auth_free(struct auth *a); /* NULL is fine */

/* True once at least one token is configured. */
bool auth_enabled(const struct auth *a);
bool auth_public_metrics(const struct auth *a);

/* Decides a request needing role need, given its Authorization header
 * (NULL if absent). Returns 0 with *ret_who (strings borrowed until
 * auth_free; name NULL and scope "" when no token was needed or none is
 * configured), -EACCES for a
 * missing or unknown token (401), -EPERM for a token whose role is too
 * low (403), -EAGAIN when the token is over its rate (429; *ret_retry_s
 * is the seconds to wait). Tokens are compared in constant time against
 * every configured hash. now_ms is a monotonic clock (uv_now). */
int auth_check(struct auth *a, const char *authorization, enum api_role need, uint64_t now_ms,
               struct auth_who *ret_who, int *ret_retry_s);

/* The current role and scope of the token called name (a console
 * session names its token, so a token removed or changed by a reload
 * takes effect at once). 0, or -ENOENT when no token has that name. */
int auth_lookup_name(const struct auth *a, const char *name, enum api_role *ret_role,
                     const char **ret_scope);

/* SHA-256 of token as 64 lower-case hex digits plus NUL. 0 or -EIO. */
int auth_hash_hex(const char *token, size_t len, char ret_hex[2 * AUTH_HASH_LEN + 1]);

/* 64 hex digits -> 32 bytes. 0 or -EINVAL. */
int auth_parse_hash(const char *hex, unsigned char ret_hash[AUTH_HASH_LEN]);

/* "viewer", "submitter", "admin" <-> role. from_string: 0 or -EINVAL. */
int auth_role_from_string(const char *s, enum api_role *ret_role);
const char *auth_role_to_string(enum api_role role);
