/* state: the settings, counters and delay record that every connection
 * thread shares, behind one mutex. One PRNG stream under that mutex (not one
 * per connection) makes a seeded run reproducible whatever the number of
 * connections: the n-th request admitted always draws the n-th values.
 * Nothing here sleeps while holding the lock, and nothing here knows HTTP.
 */
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "demo-target.h"

/* Sleeping in slices bounds how long SIGTERM waits for a long delay; the
 * last slice still ends at the exact deadline. */
#define SLEEP_SLICE_NS (100 * DT_NS_PER_MS)

struct state {
	pthread_mutex_t lock;
	pthread_cond_t slot_cond;
	atomic_bool stopping;

	struct dist latency;
	double errors;
	bool auth;
	char token[DT_MAX_TOKEN + 1];
	size_t token_len; /* 0: no token configured */
	double rate;      /* req/s, 0: off */
	double tokens;
	int64_t refill_ns;
	bool stall_armed; /* the CLI stall waits for the first request */
	int64_t stall_after_ns, stall_for_ns;
	int64_t stall_start_ns, stall_end_ns; /* [start, end), end 0: none */
	struct prng prng;

	unsigned workers; /* 0: unlimited */
	uint64_t next_ticket, released;

	char version[DT_MAX_VERSION + 1];
	char previous[DT_MAX_VERSION + 1];
	bool rollback;
	int64_t rollback_at_ns;
	unsigned omit_mask;

	uint64_t ok, failed;
	uint64_t buckets[EXPO_N_BUCKETS];
	int64_t sum_us;
	int64_t *rec; /* DT_MAX_RECORD entries, allocated up front */
	size_t rec_len;
	bool truncated;

	struct stream_params stream;
	uint64_t bodies;
	uint64_t *body_set; /* open addressing; 0: empty slot */
	size_t body_cap, body_distinct;
	uint64_t body_digest;
	uint64_t streams, stream_tokens;
};

static void settings_from_config(struct state *st, const struct config *cfg)
{
	st->latency = cfg->latency;
	st->errors = cfg->errors;
	if (cfg->auth_token) {
		st->token_len = strlen(cfg->auth_token);
		memcpy(st->token, cfg->auth_token, st->token_len + 1);
		st->auth = true;
	}
	st->rate = cfg->rate_limit;
	st->tokens = cfg->rate_limit > 1 ? cfg->rate_limit : 1;
	st->refill_ns = dt_now_ns();
	st->stall_armed = cfg->stall_for_ns > 0;
	st->stall_after_ns = cfg->stall_after_ns;
	st->stall_for_ns = cfg->stall_for_ns;
	prng_seed(&st->prng, cfg->seed);
	st->workers = cfg->workers;
	memcpy(st->version, cfg->version, sizeof(st->version));
	memcpy(st->previous, cfg->previous_version, sizeof(st->previous));
	st->omit_mask = cfg->omit_mask;
	st->stream = cfg->stream;
	st->body_digest = DT_FNV_BASIS;
}

int state_new(const struct config *cfg, struct state **ret_value)
{
	struct state *st = calloc(1, sizeof(*st));

	if (!st)
		return -ENOMEM;
	/* Untouched pages of this 16 MiB cost no memory; allocating up front
	 * means no realloc copy under the lock in the middle of a load test. */
	st->rec = malloc(DT_MAX_RECORD * sizeof(*st->rec));
	if (!st->rec) {
		free(st);
		return -ENOMEM;
	}
	pthread_mutex_init(&st->lock, NULL);
	pthread_cond_init(&st->slot_cond, NULL);
	atomic_init(&st->stopping, false);
	settings_from_config(st, cfg);
	*ret_value = st;
	return 0;
}

void state_free(struct state *st)
{
	if (!st)
		return;
	pthread_cond_destroy(&st->slot_cond);
	pthread_mutex_destroy(&st->lock);
	free(st->rec);
	free(st->body_set);
	free(st);
}

static bool token_matches(const struct state *st, const char *tok)
{
	size_t len = strlen(tok);
	unsigned char diff = 0;

	if (len != st->token_len)
		return false;
	/* Constant time in the position of the first difference. */
	for (size_t i = 0; i < len; i++)
		diff |= (unsigned char)(tok[i] ^ st->token[i]);
	return diff == 0;
}

static enum admit_outcome check_auth(const struct state *st, const char *authorization)
{
	const char *p;

	if (!st->auth)
		return ADMIT_OK;
	if (!authorization || authorization[0] == '\0')
		return ADMIT_AUTH_MISSING;
	if (strncasecmp(authorization, "Bearer ", 7) != 0)
		return ADMIT_AUTH_WRONG;
	p = authorization + 7;
	while (*p == ' ')
		p++;
	return token_matches(st, p) ? ADMIT_OK : ADMIT_AUTH_WRONG;
}

/* Token bucket with burst max(R, 1), refilled continuously. */
static bool take_token(struct state *st, int64_t now_ns)
{
	double burst = st->rate > 1 ? st->rate : 1;

	if (st->rate <= 0)
		return true;
	if (now_ns > st->refill_ns) {
		st->tokens += (double)(now_ns - st->refill_ns) * st->rate / (double)DT_NS_PER_S;
		if (st->tokens > burst)
			st->tokens = burst;
		st->refill_ns = now_ns;
	}
	if (st->tokens < 1)
		return false;
	st->tokens -= 1;
	return true;
}

static int64_t stall_hold(struct state *st, int64_t now_ns)
{
	if (st->stall_armed) {
		st->stall_armed = false;
		st->stall_start_ns = now_ns + st->stall_after_ns;
		st->stall_end_ns = st->stall_start_ns + st->stall_for_ns;
	}
	if (st->stall_end_ns && now_ns >= st->stall_start_ns && now_ns < st->stall_end_ns)
		return st->stall_end_ns;
	return 0;
}

void state_admit(struct state *st, int64_t now_ns, const char *authorization,
                 struct admission *ret_value)
{
	struct admission a = {.outcome = ADMIT_OK};
	double u_delay, u_fail;

	pthread_mutex_lock(&st->lock);
	a.hold_until_ns = stall_hold(st, now_ns);
	a.outcome = check_auth(st, authorization);
	if (a.outcome == ADMIT_OK && !take_token(st, now_ns))
		a.outcome = ADMIT_RATE_LIMITED;
	if (a.outcome == ADMIT_OK) {
		/* Both draws always happen, so the latency sequence of a seed
		 * does not depend on the error probability. */
		u_delay = prng_double(&st->prng);
		u_fail = prng_double(&st->prng);
		a.delay_ns = dist_sample(&st->latency, u_delay);
		a.fail = u_fail < st->errors;
	} else {
		a.hold_until_ns = 0;
	}
	pthread_mutex_unlock(&st->lock);
	*ret_value = a;
}

int state_slot_acquire(struct state *st, int64_t *ret_wait_ns)
{
	int64_t start;
	uint64_t ticket;
	bool got;

	if (st->workers == 0) {
		*ret_wait_ns = 0;
		return 0;
	}
	start = dt_now_ns();
	pthread_mutex_lock(&st->lock);
	/* Tickets make the wait first-come first-served: ticket t may run once
	 * fewer than `workers` earlier tickets are still unreleased. */
	ticket = st->next_ticket++;
	while (ticket >= st->released + st->workers && !atomic_load(&st->stopping))
		pthread_cond_wait(&st->slot_cond, &st->lock);
	got = ticket < st->released + st->workers;
	pthread_mutex_unlock(&st->lock);
	if (!got)
		return -ECANCELED;
	*ret_wait_ns = dt_now_ns() - start;
	return 0;
}

void state_slot_release(struct state *st)
{
	if (st->workers == 0)
		return;
	pthread_mutex_lock(&st->lock);
	st->released++;
	pthread_cond_broadcast(&st->slot_cond);
	pthread_mutex_unlock(&st->lock);
}

static struct timespec ns_to_timespec(int64_t ns)
{
	struct timespec ts = {.tv_sec = ns / DT_NS_PER_S, .tv_nsec = ns % DT_NS_PER_S};

	return ts;
}

int state_sleep_until(struct state *st, int64_t deadline_ns)
{
	struct timespec ts;
	int64_t now, next;

	for (;;) {
		if (atomic_load(&st->stopping))
			return -ECANCELED;
		now = dt_now_ns();
		if (now >= deadline_ns)
			return 0;
		next = deadline_ns - now > SLEEP_SLICE_NS ? now + SLEEP_SLICE_NS : deadline_ns;
		ts = ns_to_timespec(next);
		/* EINTR simply loops; the deadline is absolute. */
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
	}
}

void state_record(struct state *st, int64_t applied_us, bool failed)
{
	size_t b = expo_bucket_index(applied_us);

	pthread_mutex_lock(&st->lock);
	if (failed)
		st->failed++;
	else
		st->ok++;
	if (b < EXPO_N_BUCKETS)
		st->buckets[b]++;
	st->sum_us += applied_us;
	if (st->rec_len < DT_MAX_RECORD)
		st->rec[st->rec_len++] = applied_us;
	else
		st->truncated = true;
	pthread_mutex_unlock(&st->lock);
}

void state_stop(struct state *st)
{
	pthread_mutex_lock(&st->lock);
	atomic_store(&st->stopping, true);
	pthread_cond_broadcast(&st->slot_cond);
	pthread_mutex_unlock(&st->lock);
}

bool state_stopping(struct state *st)
{
	return atomic_load(&st->stopping);
}

static const char *reported_version_locked(const struct state *st, int64_t now_ns)
{
	return st->rollback && now_ns >= st->rollback_at_ns ? st->previous : st->version;
}

void state_version(struct state *st, char buf[DT_MAX_VERSION + 1])
{
	int64_t now = dt_now_ns();

	pthread_mutex_lock(&st->lock);
	memcpy(buf, reported_version_locked(st, now), DT_MAX_VERSION + 1);
	pthread_mutex_unlock(&st->lock);
}

void state_previous_version(const struct state *st, char buf[DT_MAX_VERSION + 1])
{
	/* Set once at startup, never written again: no lock needed. */
	memcpy(buf, st->previous, DT_MAX_VERSION + 1);
}

unsigned state_omit_mask(const struct state *st)
{
	return st->omit_mask;
}

void state_expo_snapshot(struct state *st, struct expo_snapshot *ret_value)
{
	int64_t now = dt_now_ns();

	pthread_mutex_lock(&st->lock);
	ret_value->ok = st->ok;
	ret_value->failed = st->failed;
	memcpy(ret_value->buckets, st->buckets, sizeof(ret_value->buckets));
	ret_value->sum_us = st->sum_us;
	memcpy(ret_value->version, reported_version_locked(st, now), sizeof(ret_value->version));
	pthread_mutex_unlock(&st->lock);
}

static void apply_fault_locked(struct state *st, const struct fault_change *c, int64_t now)
{
	if (c->has_latency)
		st->latency = c->latency;
	if (c->has_errors)
		st->errors = c->errors;
	if (c->has_auth)
		st->auth = c->auth;
	if (c->has_rate) {
		st->rate = c->rate;
		st->tokens = c->rate > 1 ? c->rate : 1;
		st->refill_ns = now;
	}
	if (c->has_stream_first)
		st->stream.first_ns = c->stream.first_ns;
	if (c->has_stream_gap)
		st->stream.gap_ns = c->stream.gap_ns;
	if (c->has_stream_tokens)
		st->stream.tokens = c->stream.tokens;
	if (c->has_stall) {
		/* A live stall replaces any other; stall=0 cancels. */
		st->stall_armed = false;
		st->stall_start_ns = now;
		st->stall_end_ns = c->stall_ns > 0 ? now + c->stall_ns : 0;
	}
}

int state_fault(struct state *st, const struct fault_change *c)
{
	int64_t now = dt_now_ns();
	int r = 0;

	pthread_mutex_lock(&st->lock);
	if (c->has_auth && c->auth && st->token_len == 0)
		r = -EPERM;
	else
		apply_fault_locked(st, c, now);
	pthread_mutex_unlock(&st->lock);
	return r;
}

static json_t *stall_json_locked(const struct state *st, int64_t now)
{
	if (st->stall_armed)
		return json_pack("{s:s, s:f, s:f}", "state", "armed", "after_ms",
		                 (double)st->stall_after_ns / DT_NS_PER_MS, "for_ms",
		                 (double)st->stall_for_ns / DT_NS_PER_MS);
	if (st->stall_end_ns && now < st->stall_start_ns)
		return json_pack("{s:s, s:f, s:f}", "state", "scheduled", "starts_in_ms",
		                 (double)(st->stall_start_ns - now) / DT_NS_PER_MS, "for_ms",
		                 (double)st->stall_for_ns / DT_NS_PER_MS);
	if (st->stall_end_ns && now < st->stall_end_ns)
		return json_pack("{s:s, s:f}", "state", "active", "remaining_ms",
		                 (double)(st->stall_end_ns - now) / DT_NS_PER_MS);
	return json_pack("{s:s}", "state", "none");
}

static json_t *settings_json_locked(const struct state *st, int64_t now)
{
	json_t *rate = st->rate > 0 ? json_real(st->rate) : json_string("off");

	return json_pack("{s:s, s:f, s:s, s:o, s:o, s:I, s:s, s:s, s:{s:f, s:f, s:I}}", "latency",
	                 st->latency.text, "errors", st->errors, "auth", st->auth ? "on" : "off",
	                 "rate_limit", rate, "stall", stall_json_locked(st, now), "workers",
	                 (json_int_t)st->workers, "version", reported_version_locked(st, now),
	                 "previous_version", st->previous, "stream", "first_ms",
	                 (double)st->stream.first_ns / DT_NS_PER_MS, "gap_ms",
	                 (double)st->stream.gap_ns / DT_NS_PER_MS, "tokens",
	                 (json_int_t)st->stream.tokens);
}

char *state_settings_json(struct state *st)
{
	int64_t now = dt_now_ns();
	json_t *o;
	char *text;

	pthread_mutex_lock(&st->lock);
	o = settings_json_locked(st, now);
	pthread_mutex_unlock(&st->lock);
	if (!o)
		return NULL;
	/* 15 digits print 0.1 as 0.1, not 0.10000000000000001. */
	text = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(15));
	json_decref(o);
	return text;
}

int state_delays(struct state *st, int64_t **ret_us, size_t *ret_n, uint64_t *ret_errors,
                 bool *ret_truncated)
{
	uint64_t errors;
	bool truncated;
	int64_t *copy;
	size_t n;

	pthread_mutex_lock(&st->lock);
	n = st->rec_len;
	errors = st->failed;
	truncated = st->truncated;
	copy = malloc((n ? n : 1) * sizeof(*copy));
	if (copy)
		memcpy(copy, st->rec, n * sizeof(*copy));
	pthread_mutex_unlock(&st->lock);
	if (!copy)
		return -ENOMEM;
	*ret_us = copy;
	*ret_n = n;
	*ret_errors = errors;
	*ret_truncated = truncated;
	return 0;
}

void state_reset(struct state *st)
{
	pthread_mutex_lock(&st->lock);
	st->ok = 0;
	st->failed = 0;
	memset(st->buckets, 0, sizeof(st->buckets));
	st->sum_us = 0;
	st->rec_len = 0;
	st->truncated = false;
	st->bodies = st->body_distinct = 0;
	if (st->body_set)
		memset(st->body_set, 0, st->body_cap * sizeof(*st->body_set));
	st->body_digest = DT_FNV_BASIS;
	st->streams = st->stream_tokens = 0;
	pthread_mutex_unlock(&st->lock);
}

uint64_t dt_fnv1a(uint64_t h, const void *buf, size_t len)
{
	const unsigned char *p = buf;

	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * UINT64_C(0x100000001b3);
	return h;
}

static bool set_insert(uint64_t *set, size_t cap, uint64_t h)
{
	size_t i = (size_t)(h * UINT64_C(0x9E3779B97F4A7C15) >> 20) & (cap - 1);

	while (set[i] && set[i] != h)
		i = (i + 1) & (cap - 1);
	if (set[i] == h)
		return false;
	set[i] = h;
	return true;
}

/* Keeps the set at most half full. */
static int set_grow_locked(struct state *st)
{
	size_t cap = st->body_cap ? st->body_cap * 2 : 1024;
	uint64_t *n;

	if (st->body_cap && st->body_distinct * 2 < st->body_cap)
		return 0;
	if (st->body_distinct >= DT_MAX_DISTINCT)
		return -ENOSPC;
	n = calloc(cap, sizeof(*n));
	if (!n)
		return -ENOMEM;
	for (size_t i = 0; i < st->body_cap; i++)
		if (st->body_set[i])
			set_insert(n, cap, st->body_set[i]);
	free(st->body_set);
	st->body_set = n;
	st->body_cap = cap;
	return 0;
}

void state_body(struct state *st, uint64_t hash)
{
	uint64_t h = hash ? hash : 1;

	pthread_mutex_lock(&st->lock);
	st->bodies++;
	st->body_digest = dt_fnv1a(st->body_digest, &h, sizeof(h));
	if (set_grow_locked(st) == 0 && set_insert(st->body_set, st->body_cap, h))
		st->body_distinct++;
	pthread_mutex_unlock(&st->lock);
}

void state_streamed(struct state *st, int64_t tokens)
{
	pthread_mutex_lock(&st->lock);
	st->streams++;
	st->stream_tokens += (uint64_t)tokens;
	pthread_mutex_unlock(&st->lock);
}

void state_stream_params(struct state *st, struct stream_params *ret_value)
{
	pthread_mutex_lock(&st->lock);
	*ret_value = st->stream;
	pthread_mutex_unlock(&st->lock);
}

char *state_served_json(struct state *st)
{
	char digest[17];
	json_t *o;
	char *text;

	pthread_mutex_lock(&st->lock);
	snprintf(digest, sizeof(digest), "%016llx", (unsigned long long)st->body_digest);
	o = json_pack("{s:I, s:I, s:s, s:I, s:I}", "bodies", (json_int_t)st->bodies,
	              "distinct_bodies", (json_int_t)st->body_distinct, "body_sequence", digest,
	              "streams", (json_int_t)st->streams, "tokens", (json_int_t)st->stream_tokens);
	pthread_mutex_unlock(&st->lock);
	text = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	return text;
}

void state_rollback(struct state *st, int64_t delay_ns)
{
	int64_t now = dt_now_ns();

	pthread_mutex_lock(&st->lock);
	st->rollback = true;
	st->rollback_at_ns = now + delay_ns;
	pthread_mutex_unlock(&st->lock);
}

void state_rollforward(struct state *st)
{
	pthread_mutex_lock(&st->lock);
	st->rollback = false;
	pthread_mutex_unlock(&st->lock);
}
