/* respcache: the serialised bodies of polled answers (GET /v1/gates,
 * /v1/services/{name}/history and /trends, reports of ended runs), kept per distinct query and
 * served again, byte for byte and without a copy, while the store's
 * generation (store_generation) has not moved. Each body carries a strong
 * ETag, a hash of its bytes, so a client that sends it back in
 * If-None-Match gets 304 until the answer really changes (a write that
 * leaves these bytes alike keeps the tag).
 *
 * Bounded: least recently used bodies go first once the total passes
 * the cap (api.cache_memory). A key is found through a hash table, so a
 * cache of many small answers costs no more to ask than one of a few big
 * ones. Bodies are reference counted: one reference for the cache, one
 * per response MHD still sends, freed by the last. Main loop thread only.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "respcache.h"

/* A 64-bit hash of the bytes for the ETag, eight at a time (a body may be
 * a megabyte): each word multiplied in, rotated and mixed; the tail
 * padded with zeros, the length beside it in the tag. */
static uint64_t body_hash(const char *data, size_t len)
{
	uint64_t h = 0x9E3779B97F4A7C15ULL, w;
	size_t i = 0;

	for (; i + 8 <= len; i += 8) {
		memcpy(&w, data + i, 8);
		h ^= w * 0x87C37B91114253D5ULL;
		h = ((h << 31) | (h >> 33)) * 0x4CF5AD432745937FULL;
	}
	w = 0;
	memcpy(&w, data + i, len - i);
	h ^= w * 0x87C37B91114253D5ULL;
	h ^= h >> 33;
	h *= 0xFF51AFD7ED558CCDULL;
	h ^= h >> 33;
	h *= 0xC4CEB9FE1A85EC53ULL;
	return h ^ (h >> 33);
}

struct api_body *api_body_new(const char *data, size_t len)
{
	struct api_body *b = malloc(sizeof(*b) + len + 1);
	uint64_t h;

	if (!b)
		return NULL;
	b->refs = 1;
	b->len = len;
	b->content_type = NULL;
	memcpy(b->data, data, len);
	b->data[len] = '\0';
	h = body_hash(data, len);
	snprintf(b->etag, sizeof(b->etag), "\"%016llx-%zx\"", (unsigned long long)h, len);
	return b;
}

struct api_body *api_body_ref(struct api_body *b)
{
	b->refs++;
	return b;
}

void api_body_unref(struct api_body *b)
{
	if (b && --b->refs == 0)
		free(b);
}

struct entry {
	struct entry *prev, *next; /* most recently used first */
	struct entry *chain;       /* the next entry of its hash slot */
	uint64_t hash;
	uint64_t generation;
	struct api_body *body;
	size_t cost; /* bytes charged: key and body */
	char key[];
};

struct api_cache {
	struct entry *head, *tail;
	struct entry **slots; /* nslots (a power of two) chains by hash */
	size_t nslots;
	size_t bytes, max_bytes;
	unsigned n;
	uint64_t hits, misses;
};

#define CACHE_MIN_SLOTS 64

static uint64_t key_hash(const char *key)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (; *key; key++) {
		h ^= (unsigned char)*key;
		h *= 0x100000001b3ULL;
	}
	return h;
}

int api_cache_new(size_t max_bytes, struct api_cache **ret)
{
	struct api_cache *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	c->slots = calloc(CACHE_MIN_SLOTS, sizeof(*c->slots));
	if (!c->slots) {
		free(c);
		return -ENOMEM;
	}
	c->nslots = CACHE_MIN_SLOTS;
	c->max_bytes = max_bytes;
	*ret = c;
	return 0;
}

static struct entry **slot_of(struct api_cache *c, uint64_t hash)
{
	return &c->slots[hash & (c->nslots - 1)];
}

static void chain_remove(struct api_cache *c, struct entry *e)
{
	struct entry **p = slot_of(c, e->hash);

	while (*p != e)
		p = &(*p)->chain;
	*p = e->chain;
}

/* Twice the slots once entries outnumber them; a failed allocation only
 * leaves the chains longer. */
static void maybe_grow(struct api_cache *c)
{
	size_t n = c->nslots * 2;
	struct entry **slots;

	if (c->n <= c->nslots || !(slots = calloc(n, sizeof(*slots))))
		return;
	for (size_t i = 0; i < c->nslots; i++) {
		for (struct entry *e = c->slots[i], *next; e; e = next) {
			next = e->chain;
			e->chain = slots[e->hash & (n - 1)];
			slots[e->hash & (n - 1)] = e;
		}
	}
	free(c->slots);
	c->slots = slots;
	c->nslots = n;
}

static void unlink_entry(struct api_cache *c, struct entry *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		c->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		c->tail = e->prev;
	e->prev = e->next = NULL;
}

static void push_front(struct api_cache *c, struct entry *e)
{
	e->prev = NULL;
	e->next = c->head;
	if (c->head)
		c->head->prev = e;
	c->head = e;
	if (!c->tail)
		c->tail = e;
}

static void drop(struct api_cache *c, struct entry *e)
{
	unlink_entry(c, e);
	chain_remove(c, e);
	c->bytes -= e->cost;
	c->n--;
	api_body_unref(e->body);
	free(e);
}

void api_cache_free(struct api_cache *c)
{
	if (!c)
		return;
	while (c->head)
		drop(c, c->head);
	free(c->slots);
	free(c);
}

static struct entry *find(struct api_cache *c, const char *key)
{
	uint64_t h = key_hash(key);

	for (struct entry *e = *slot_of(c, h); e; e = e->chain)
		if (e->hash == h && strcmp(e->key, key) == 0)
			return e;
	return NULL;
}

struct api_body *api_cache_get(struct api_cache *c, const char *key, uint64_t generation)
{
	struct entry *e = find(c, key);

	if (!e || e->generation != generation) {
		c->misses++;
		return NULL;
	}
	c->hits++;
	if (e != c->head) {
		unlink_entry(c, e);
		push_front(c, e);
	}
	return e->body;
}

int api_cache_put(struct api_cache *c, const char *key, uint64_t generation, struct api_body *b)
{
	size_t klen = strlen(key), cost = sizeof(struct entry) + klen + 1 + b->len;
	struct entry *e = find(c, key);

	if (e)
		drop(c, e);
	if (cost > c->max_bytes / 4)
		return -E2BIG; /* one answer must not push out all the others */
	e = malloc(sizeof(*e) + klen + 1);
	if (!e)
		return -ENOMEM;
	memcpy(e->key, key, klen + 1);
	e->hash = key_hash(key);
	e->generation = generation;
	e->body = api_body_ref(b);
	e->cost = cost;
	push_front(c, e);
	e->chain = *slot_of(c, e->hash);
	*slot_of(c, e->hash) = e;
	c->bytes += cost;
	c->n++;
	maybe_grow(c);
	while (c->bytes > c->max_bytes && c->tail && c->tail != e)
		drop(c, c->tail);
	return 0;
}

void api_cache_stats(const struct api_cache *c, struct api_cache_stats *ret)
{
	ret->entries = c->n;
	ret->bytes = c->bytes;
	ret->max_bytes = c->max_bytes;
	ret->hits = c->hits;
	ret->misses = c->misses;
}
