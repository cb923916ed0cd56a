/* respcache: serialised answers kept per query under the store's
 * generation, with a strong ETag each (respcache.c). Main loop thread. */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* The default cap (api.cache_memory): about 250 trends of 2000 hourly
 * buckets (260 KB each), or thousands of smaller answers. */
#define API_CACHE_DEFAULT_BYTES (64u * 1024 * 1024)

/* An immutable body, reference counted (not thread-safe: loop only; a
 * worker thread may make one and hand it over). */
struct api_body {
	unsigned refs;
	size_t len;
	const char *content_type; /* static; NULL for application/json */
	char etag[48];            /* quoted, strong */
	char data[];              /* len bytes and a NUL */
};

/* A body of a copy of len bytes of data, one reference; NULL on ENOMEM. */
struct api_body *api_body_new(const char *data, size_t len);
struct api_body *api_body_ref(struct api_body *b);
void api_body_unref(struct api_body *b); /* NULL is fine */

struct api_cache;

int api_cache_new(size_t max_bytes, struct api_cache **ret);
void api_cache_free(struct api_cache *c); /* NULL is fine */

/* The body kept under key at generation (borrowed), or NULL. */
struct api_body *api_cache_get(struct api_cache *c, const char *key, uint64_t generation);

/* Keeps b (a new reference) under key at generation, replacing what key
 * held, evicting the least recently used past the cap. -E2BIG for a body
 * too large to keep (over a quarter of the cap), -ENOMEM. */
int api_cache_put(struct api_cache *c, const char *key, uint64_t generation, struct api_body *b);

struct api_cache_stats {
	unsigned entries;
	size_t bytes, max_bytes;
	uint64_t hits, misses;
};
void api_cache_stats(const struct api_cache *c, struct api_cache_stats *ret);
