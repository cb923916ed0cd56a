/* auth: bearer tokens, roles and per-token rate limits (see auth.h). The
 * presented token is hashed and compared with every configured hash in
 * constant time, so neither a match's position nor a partial match shows
 * in the response time. Never logs or returns token material.
 */
#include <errno.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth.h"
#include "lib/util/util.h"

struct bucket {
	double level;
	uint64_t last_ms;
	bool started;
};

struct auth {
	struct auth_token *tokens;
	struct bucket *buckets;
	size_t n_tokens;
	bool public_metrics;
	double rate, burst;
};

static const char *const role_names[] = {
        [API_ROLE_ANYONE] = "anyone", [API_ROLE_NOTIFIER] = "notifier",
        [API_ROLE_VIEWER] = "viewer", [API_ROLE_SUBMITTER] = "submitter",
        [API_ROLE_ADMIN] = "admin",
};

int auth_role_from_string(const char *s, enum api_role *ret_role)
{
	for (int r = API_ROLE_NOTIFIER; r <= API_ROLE_ADMIN; r++) {
		if (strcmp(s, role_names[r]) == 0) {
			*ret_role = (enum api_role)r;
			return 0;
		}
	}
	return -EINVAL;
}

const char *auth_role_to_string(enum api_role role)
{
	return (unsigned)role < RD_ARRAY_SIZE(role_names) ? role_names[role] : "unknown";
}

int auth_new(const struct auth_config *cfg, struct auth **ret_auth)
{
	struct auth *a = calloc(1, sizeof(*a));

	if (!a)
		return -ENOMEM;
	a->tokens = calloc(cfg->n_tokens + 1, sizeof(*a->tokens));
	a->buckets = calloc(cfg->n_tokens + 1, sizeof(*a->buckets));
	if (!a->tokens || !a->buckets) {
		auth_free(a);
		return -ENOMEM;
	}
	if (cfg->n_tokens)
		memcpy(a->tokens, cfg->tokens, cfg->n_tokens * sizeof(*a->tokens));
	a->n_tokens = cfg->n_tokens;
	a->public_metrics = cfg->public_metrics;
	a->rate = cfg->rate > 0 ? cfg->rate : 0;
	a->burst = cfg->burst > 0 ? cfg->burst : fmax(1.0, a->rate);
	*ret_auth = a;
	return 0;
}

void auth_free(struct auth *a)
{
	if (!a)
		return;
	if (a->tokens)
		memset(a->tokens, 0, a->n_tokens * sizeof(*a->tokens));
	free(a->tokens);
	free(a->buckets);
	free(a);
}

bool auth_enabled(const struct auth *a)
{
	return a && a->n_tokens > 0;
}

bool auth_public_metrics(const struct auth *a)
{
	return !a || a->public_metrics;
}

int auth_hash_hex(const char *token, size_t len, char ret_hex[2 * AUTH_HASH_LEN + 1])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (EVP_Digest(token, len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != AUTH_HASH_LEN)
		return -EIO;
	for (unsigned i = 0; i < mdlen; i++)
		snprintf(ret_hex + 2 * i, 3, "%02x", md[i]);
	return 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int auth_parse_hash(const char *hex, unsigned char ret_hash[AUTH_HASH_LEN])
{
	unsigned char out[AUTH_HASH_LEN];

	if (strlen(hex) != 2 * AUTH_HASH_LEN)
		return -EINVAL;
	for (size_t i = 0; i < AUTH_HASH_LEN; i++) {
		int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -EINVAL;
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	memcpy(ret_hash, out, sizeof(out));
	return 0;
}

/* "Bearer TOKEN" -> the token; NULL if the header is absent or malformed. */
static const char *bearer(const char *authorization, size_t *ret_len)
{
	size_t n;

	if (!authorization || strncasecmp(authorization, "Bearer ", 7) != 0)
		return NULL;
	authorization += 7;
	while (*authorization == ' ')
		authorization++;
	n = strlen(authorization);
	while (n > 0 && authorization[n - 1] == ' ')
		n--;
	if (n == 0 || n > AUTH_TOKEN_MAX)
		return NULL;
	*ret_len = n;
	return authorization;
}

/* Index of the token whose hash matches, or -1. Every hash is compared,
 * whatever matched before. */
static ssize_t find_token(const struct auth *a, const char *token, size_t len)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	ssize_t found = -1;

	if (EVP_Digest(token, len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != AUTH_HASH_LEN)
		return -1;
	for (size_t i = 0; i < a->n_tokens; i++) {
		bool eq = rd_memeq_ct(md, a->tokens[i].hash, AUTH_HASH_LEN);

		found = eq && found < 0 ? (ssize_t)i : found;
	}
	return found;
}

/* Token bucket: refills at rate per second up to burst; one request costs
 * one. Returns 0, or -EAGAIN with the whole seconds until one is there. */
static int take(struct auth *a, struct bucket *b, uint64_t now_ms, int *ret_retry_s)
{
	if (a->rate <= 0)
		return 0;
	if (!b->started) {
		b->level = a->burst;
		b->last_ms = now_ms;
		b->started = true;
	}
	if (now_ms > b->last_ms)
		b->level =
		        fmin(a->burst, b->level + (double)(now_ms - b->last_ms) * a->rate / 1000.0);
	b->last_ms = now_ms;
	if (b->level >= 1.0) {
		b->level -= 1.0;
		return 0;
	}
	*ret_retry_s = (int)ceil((1.0 - b->level) / a->rate);
	if (*ret_retry_s < 1)
		*ret_retry_s = 1;
	return -EAGAIN;
}

/* Roles are ordered, except notifier: its token may only deliver
 * notifications (a token kept in Alertmanager's configuration should not
 * read runs), and of the others only admin may deliver them (a viewer's
 * notification could make a drill pass). */
static bool role_allows(enum api_role have, enum api_role need)
{
	if (need == API_ROLE_NOTIFIER)
		return have == API_ROLE_NOTIFIER || have == API_ROLE_ADMIN;
	return have != API_ROLE_NOTIFIER && have >= need;
}

int auth_lookup_name(const struct auth *a, const char *name, enum api_role *ret_role,
                     const char **ret_scope)
{
	for (size_t i = 0; a && name && i < a->n_tokens; i++) {
		if (strcmp(a->tokens[i].name, name) != 0)
			continue;
		*ret_role = a->tokens[i].role;
		*ret_scope = a->tokens[i].scope;
		return 0;
	}
	return -ENOENT;
}

int auth_check(struct auth *a, const char *authorization, enum api_role need, uint64_t now_ms,
               struct auth_who *ret_who, int *ret_retry_s)
{
	const char *token;
	size_t len = 0;
	ssize_t i;
	int r;

	if (!auth_enabled(a) || need == API_ROLE_ANYONE) {
		*ret_who = (struct auth_who){NULL, ""};
		return 0;
	}
	token = bearer(authorization, &len);
	i = token ? find_token(a, token, len) : -1;
	if (i < 0)
		return -EACCES;
	if (!role_allows(a->tokens[i].role, need))
		return -EPERM;
	r = take(a, &a->buckets[i], now_ms, ret_retry_s);
	if (r < 0)
		return r;
	*ret_who = (struct auth_who){a->tokens[i].name, a->tokens[i].scope};
	return 0;
}
