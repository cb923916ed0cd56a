/* sched_cluster: the scheduler's side of several readyd nodes sharing one
 * database (docs/scale-out.md). A run submitted on any node waits in the
 * shared queue; a tick on each node claims what fits in its free slots and
 * hands each claimed run to sched.c, which executes it exactly as a run
 * submitted here. The same tick renews this node's leases (a beat every
 * lease/3), ends the runs of nodes that stopped beating, picks up cancels
 * asked on other nodes, and follows runs other nodes execute for this
 * node's watchers (long-polls, event streams), re-reading them only when
 * the store's generation moved. Load probes take their target host's
 * load slots, shared by every node, here; and every write of a run this
 * node executes is fenced (store_fence): it lands only while the run is
 * still this node's.
 *
 * Every step is one bounded store call on the loop (the store's deadline);
 * nothing here waits. A store error skips a step until the next tick. With
 * a store only this process uses, none of this runs.
 *
 * Main loop thread only.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/gate/judge.h"
#include "lib/sched/sched_internal.h"
#include "lib/util/json_text.h"
#include "lib/util/log.h"
#include "lib/util/run_state.h"
#include "lib/util/util.h"

/* How often the tick looks at notifications (no round trip: what the
 * server already sent), so a run queued on another node is claimed
 * within it; and how often it claims without having heard of one. */
#define TICK_MS         100
#define CLAIM_PERIOD_MS 1000
#define BEAT_MIN_MS     250
/* Runs of other nodes are read again when the generation moved, at most
 * every REMOTE_MIN_MS, and at least every REMOTE_MAX_MS in case a
 * notification was missed (a reconnect). */
#define REMOTE_MIN_MS 250
#define REMOTE_MAX_MS 2000
/* How often a load probe tries again for a slot other nodes hold all of. */
#define LOAD_RETRY_MS 200

bool sched_cluster_on(const struct sched *s)
{
	return s->cl.on;
}

static void on_tick(uv_timer_t *t);

/* At the next turn of the loop, not from inside the caller: a run that
 * ends calls this from deep in the state machine. */
void sched_cluster_kick(struct sched *s)
{
	if (!s->cl.on || s->cl.tick_closed)
		return;
	s->cl.claim_soon = true;
	uv_timer_start(&s->cl.tick, on_tick, 0, TICK_MS);
}

/* ---- Claims --------------------------------------------------------- */

/* A claimed run this node cannot execute (its spec does not parse here:
 * an older readyd than the one that accepted it) ends as an error that
 * says so, rather than going back to the queue for ever. */
static void claim_refuse(struct sched *s, int64_t id, const char *why)
{
	char msg[600];

	snprintf(msg, sizeof(msg), "node '%s' cannot execute this run: %s", s->cl.node, why);
	if (store_run_update(s->store, id, run_state_to_string(RUN_ERROR),
	                     gate_verdict_to_string(VERDICT_ERROR), 0, rd_now_ms(), msg) < 0)
		rd_log(RD_LOG_DEBUG, NULL, "Failed to end run %lld: %s", (long long)id,
		       store_errmsg(s->store));
	sched_report(s, 0, "run %lld: %s", (long long)id, msg);
}

static void claim_one(struct sched *s, json_t *item)
{
	int64_t id = json_integer_value(json_object_get(item, "id"));
	const char *text = json_string_value(json_object_get(item, "exec_spec"));
	struct spec_error se = {0};
	struct spec *spec = NULL;
	struct run *r;
	char why[560];
	int e;

	e = text ? spec_parse(text, strlen(text), SPEC_FORMAT_JSON, &spec, &se) : -EINVAL;
	if (e < 0) {
		snprintf(why, sizeof(why), "%s%s%s", se.path, se.path[0] ? ": " : "",
		         se.message[0] ? se.message : strerror(-e));
		claim_refuse(s, id, why);
		return;
	}
	spec->stored_version = json_integer_value(json_object_get(item, "spec_version"));
	e = sched_enqueue(s, id, spec, &r);
	if (e < 0) {
		spec_free(spec);
		claim_refuse(s, id, "out of memory");
		return;
	}
	r->claimed = true;
}

/* As many queued runs as this node has free slots for; none while it
 * stops or while the store refuses its writes. */
static void claim(struct sched *s, int64_t now)
{
	int room = s->cfg.max_concurrent_runs - s->n_running - s->n_queued;
	json_t *runs = NULL, *item;
	size_t i;

	if (room <= 0 || s->shutdown_cb || s->n_unsaved > 0)
		return;
	if (store_run_claim(s->store, s->cl.node, now + s->cl.lease_ms, room, &runs) < 0) {
		rd_log(RD_LOG_DEBUG, NULL, "Failed to claim runs: %s", store_errmsg(s->store));
		return;
	}
	json_array_foreach (runs, i, item)
		claim_one(s, item);
	if (json_array_size(runs) > 0)
		sched_pump(s);
	json_decref(runs);
}

/* ---- Leases ----------------------------------------------------------- */

static json_t *held_find(json_t *held, int64_t id)
{
	size_t i;
	json_t *item;

	json_array_foreach (held, i, item)
		if (json_integer_value(json_object_get(item, "id")) == id)
			return item;
	return NULL;
}

/* A run this node executes that the store no longer lists as its own was
 * ended by another node (this node's lease passed: the loop or the
 * database was away too long): it stops here and writes nothing more. */
static void lease_lost(struct sched *s, struct run *r)
{
	r->lost = true;
	sched_report(s, 0,
	             "run %lld: this node's lease on it passed and another node ended it; "
	             "stopping it here without recording more",
	             (long long)r->id);
	if (!r->decided)
		sched_cancel(s, r->id);
}

static void beat(struct sched *s, int64_t now)
{
	json_t *held = NULL, *item;
	struct run *r, *next;

	if (store_node_beat(s->store, s->cl.node, s->cl.version, now, s->cl.lease_ms, &held) < 0) {
		rd_log(RD_LOG_DEBUG, NULL, "Failed to renew the leases of node '%s': %s",
		       s->cl.node, store_errmsg(s->store));
		return;
	}
	for (r = s->head; r; r = next) {
		next = r->next;
		if (!r->claimed || r->lost || (r->decided && !r->unsaved))
			continue;
		item = held_find(held, r->id);
		if (!item)
			lease_lost(s, r);
		else if (json_is_true(json_object_get(item, "cancel")) && !r->cancel_requested)
			sched_cancel(s, r->id);
	}
	json_decref(held);
}

/* A node silent past its lease whose database session lives on (stopped,
 * cut off, its host gone without a word) would hold its load slots until
 * the server gave up on the session: that session is ended. If the node
 * comes back it reconnects, and the fence keeps it from writing to the
 * runs it lost. */
static void evict(struct sched *s)
{
	json_t *gone = NULL, *item;
	size_t i;

	if (store_nodes_evict(s->store, s->cl.node, &gone) < 0) {
		rd_log(RD_LOG_DEBUG, NULL, "Failed to end the sessions of stopped nodes: %s",
		       store_errmsg(s->store));
		return;
	}
	json_array_foreach (gone, i, item)
		sched_report(s, 0,
		             "node '%s' stopped renewing its lease: its database session (pid "
		             "%lld) was ended, freeing the load slots it held",
		             json_string_value(json_object_get(item, "node")),
		             (long long)json_integer_value(json_object_get(item, "pid")));
	json_decref(gone);
}

static void expire(struct sched *s, int64_t now)
{
	json_t *runs = NULL, *item;
	size_t i;

	if (store_leases_expire(s->store, now, NULL, &runs) < 0) {
		rd_log(RD_LOG_DEBUG, NULL, "Failed to end runs of stopped nodes: %s",
		       store_errmsg(s->store));
		return;
	}
	json_array_foreach (runs, i, item)
		sched_report(s, 0,
		             "run %lld of node '%s' is %s: that node stopped renewing its lease",
		             (long long)json_integer_value(json_object_get(item, "id")),
		             json_string_value(json_object_get(item, "node")),
		             json_string_value(json_object_get(item, "state")));
	json_decref(runs);
	evict(s);
}

/* ---- Runs other nodes execute, for watchers here ------------------------ */

/* What a watcher hears about: the run's state and each probe's. New
 * string, or NULL. */
static char *run_digest(json_t *run)
{
	json_t *probes = json_object_get(run, "probes"), *p;
	size_t i, size = 32 + 16 * json_array_size(probes), len;
	char *d = malloc(size);

	if (!d)
		return NULL;
	snprintf(d, size, "%.20s", json_string_value(json_object_get(run, "state")));
	json_array_foreach (probes, i, p) {
		len = strlen(d);
		snprintf(d + len, size - len, ",%.12s",
		         json_string_value(json_object_get(p, "state")));
	}
	return d;
}

static struct remote *remote_find(struct sched *s, int64_t id)
{
	for (struct remote *rem = s->cl.remotes; rem; rem = rem->next)
		if (rem->id == id)
			return rem;
	return NULL;
}

static void remote_free(struct remote *rem)
{
	while (rem->watches) {
		struct sched_watch *w = rem->watches;

		rem->watches = w->next;
		free(w);
	}
	free(rem->digest);
	free(rem);
}

/* Reads the run once, so the watch starts from what the caller just saw
 * and a run that has ended (or is unknown) is -ENOENT as for local runs. */
static int remote_get(struct sched *s, int64_t id, struct remote **ret_rem)
{
	struct remote *rem = remote_find(s, id);
	json_t *run = NULL;
	int e;

	if (rem) {
		*ret_rem = rem;
		return 0;
	}
	e = store_run_get(s->store, id, &run);
	if (e == 0 && run_state_string_is_final(json_string_value(json_object_get(run, "state"))))
		e = -ENOENT;
	rem = e == 0 ? calloc(1, sizeof(*rem)) : NULL;
	if (e == 0 && (!rem || !(rem->digest = run_digest(run)))) {
		free(rem);
		e = -ENOMEM;
	}
	json_decref(run);
	if (e < 0)
		return e;
	rem->id = id;
	rem->next = s->cl.remotes;
	s->cl.remotes = rem;
	*ret_rem = rem;
	return 0;
}

int sched_cluster_watch(struct sched *s, int64_t run_id, sched_watch_cb cb, void *userdata,
                        struct sched_watch **ret_watch)
{
	struct remote *rem;
	struct sched_watch *w;
	int e = remote_get(s, run_id, &rem);

	if (e < 0)
		return e == -ENOENT ? -ENOENT : e;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->remote = rem;
	w->cb = cb;
	w->userdata = userdata;
	w->next = rem->watches;
	if (rem->watches)
		rem->watches->prev = w;
	rem->watches = w;
	*ret_watch = w;
	return 0;
}

/* The remote itself goes at the next refresh once it has no watch. */
void sched_cluster_unwatch(struct sched_watch *w)
{
	if (w->prev)
		w->prev->next = w->next;
	else
		w->remote->watches = w->next;
	if (w->next)
		w->next->prev = w->prev;
	free(w);
}

/* Tells the watchers of rem what changed; true when the run has ended
 * (its watches are freed after their last call, as for local runs). */
static bool remote_update(struct remote *rem, json_t *run, int err)
{
	const char *state = run ? json_string_value(json_object_get(run, "state")) : NULL;
	bool final = err == -ENOENT || run_state_string_is_final(state);
	char *digest = run ? run_digest(run) : NULL;
	struct sched_watch *w, *next;

	if (!final && (!digest || strcmp(digest, rem->digest) == 0)) {
		free(digest);
		return false;
	}
	if (digest) {
		free(rem->digest);
		rem->digest = digest;
	}
	for (w = rem->watches; w; w = next) {
		next = w->next;
		sched_notify_watch(w, rem->id, state ? state : "unknown", final);
	}
	return final;
}

static void remote_refresh(struct sched *s, int64_t now)
{
	uint64_t gen = store_generation(s->store);
	struct remote **pp = &s->cl.remotes, *rem;
	bool all_read = true;

	if (!s->cl.remotes || now < s->cl.remote_last + REMOTE_MIN_MS ||
	    (gen == s->cl.remote_gen && now < s->cl.remote_last + REMOTE_MAX_MS))
		return;
	s->cl.remote_last = now;
	while ((rem = *pp)) {
		json_t *run = NULL;
		int e = rem->watches ? store_run_get(s->store, rem->id, &run) : -ENOENT;

		if (e < 0 && e != -ENOENT) {
			all_read = false;
			pp = &rem->next;
			continue;
		}
		if (!rem->watches || remote_update(rem, run, e)) {
			*pp = rem->next;
			remote_free(rem);
		} else {
			pp = &rem->next;
		}
		json_decref(run);
	}
	if (all_read)
		s->cl.remote_gen = gen;
}

/* ---- Stopping ---------------------------------------------------------- */

bool sched_cluster_release(struct sched *s, struct run *r)
{
	if (!r->claimed || r->lost || r->decided || r->cur > 0 || r->n_background > 0 ||
	    r->n_probes == 0 || r->probes[0].state != PROBE_STATE_QUEUED)
		return false;
	if (store_run_release(s->store, r->id, s->cl.node) < 0) {
		rd_log(RD_LOG_DEBUG, NULL, "Failed to hand run %lld back: %s", (long long)r->id,
		       store_errmsg(s->store));
		return false;
	}
	r->lost = true; /* another node's to execute now: nothing more is written */
	sched_report(s, 0, "run %lld: handed back to the queue, this node is stopping",
	             (long long)r->id);
	return true;
}

/* ---- Load slots shared by every node --------------------------------- */

/* The host a load probe drives: its own url's, else the spec's target's,
 * lower case and without user, port or path ("" when there is none). */
static void load_host(const struct probe *p, char *buf, size_t len)
{
	const char *url = p->sp->url ? p->sp->url : p->spec->target.url;
	const char *h = url ? strstr(url, "://") : NULL, *at;
	size_t n = 0, end;

	buf[0] = '\0';
	if (!h)
		return;
	h += 3;
	end = strcspn(h, "/?#");
	at = memchr(h, '@', end);
	if (at) {
		end -= (size_t)(at + 1 - h);
		h = at + 1;
	}
	if (h[0] == '[') {
		const char *close = memchr(h, ']', end);

		end = close ? (size_t)(close + 1 - h) : end;
	} else {
		end = strcspn(h, ":/?#") < end ? strcspn(h, ":/?#") : end;
	}
	for (; n < end && n + 1 < len; n++)
		buf[n] = (char)(h[n] >= 'A' && h[n] <= 'Z' ? h[n] - 'A' + 'a' : h[n]);
	buf[n] = '\0';
}

/* A session takes a lock it holds again: a slot another run of this node
 * holds must not be taken twice. */
static bool slot_held_here(const struct sched *s, const char *host, int slot)
{
	for (const struct run *r = s->head; r; r = r->next)
		if (r->load_slot == slot && strcmp(r->load_host, host) == 0)
			return true;
	return false;
}

bool sched_cluster_load_take(struct sched *s, struct run *r)
{
	char host[SCHED_LOAD_HOST_MAX];
	int e = 0;

	if (!s->cl.on)
		return true;
	load_host(&r->probes[r->cur], host, sizeof(host));
	for (int slot = 0; slot < s->cfg.max_concurrent_load; slot++) {
		if (slot_held_here(s, host, slot))
			continue;
		e = store_load_slot_take(s->store, host, slot);
		if (e == 1) {
			r->load_slot = slot;
			memcpy(r->load_host, host, sizeof(host));
			r->load_retry_at = 0;
			return true;
		}
		if (e < 0) {
			rd_log(RD_LOG_DEBUG, NULL, "Failed to take a load slot of '%s': %s", host,
			       store_errmsg(s->store));
			break;
		}
	}
	/* A free slot is not announced: look again soon. A store that failed
	 * is looked at again just as well: the probe waits rather than
	 * driving load unaccounted for. */
	memcpy(r->load_host, host, sizeof(host));
	r->load_retry_at = rd_now_ms() + LOAD_RETRY_MS;
	return false;
}

void sched_cluster_load_release(struct sched *s, struct run *r)
{
	if (r->load_slot < 0)
		return;
	/* A failure means the session is gone, and its locks with it. */
	if (store_load_slot_release(s->store, r->load_host, r->load_slot) < 0)
		rd_log(RD_LOG_DEBUG, NULL, "Failed to release load slot %d of '%s': %s, ignoring",
		       r->load_slot, r->load_host, store_errmsg(s->store));
	r->load_slot = -1;
}

/* Runs whose load probe waits for another node's slot try again. */
static void load_retry(struct sched *s, int64_t now)
{
	for (struct run *r = s->head; r; r = r->next)
		if (r->waiting_load && r->load_retry_at > 0 && now >= r->load_retry_at) {
			sched_pump(s);
			return;
		}
}

/* ---- Cancels of runs executed elsewhere ------------------------------ */

/* A queued run is cancelled in the store at once; a running one when its
 * node next beats. */
int sched_cluster_cancel(struct sched *s, int64_t id)
{
	int e = store_run_cancel_request(s->store, id, rd_now_ms());

	if (e >= 0)
		return 0;
	return e == -EALREADY ? -ENOENT : e;
}

/* ---- The tick --------------------------------------------------------- */

static void on_tick(uv_timer_t *t)
{
	struct sched *s = t->data;
	int64_t now = rd_now_ms(), period = s->cl.lease_ms / 3;

	if (period < BEAT_MIN_MS)
		period = BEAT_MIN_MS;
	if (now >= s->cl.next_beat) {
		beat(s, now);
		s->cl.next_beat = now + period;
	}
	if (now >= s->cl.next_expire) {
		expire(s, now);
		s->cl.next_expire = now + period;
	}
	if (store_queued_hint(s->store) || s->cl.claim_soon || now >= s->cl.next_claim) {
		s->cl.claim_soon = false;
		s->cl.next_claim = now + CLAIM_PERIOD_MS;
		claim(s, now);
	}
	remote_refresh(s, now);
	load_retry(s, now);
	sched_shard_tick(s, now);
}

int sched_set_node(struct sched *s, const char *node, int64_t lease_ms, const char *version)
{
	char *n = strdup(node), *v = strdup(version);
	int e;

	if (!n || !v || lease_ms <= 0) {
		free(n);
		free(v);
		return !n || !v ? -ENOMEM : -EINVAL;
	}
	free(s->cl.node);
	free(s->cl.version);
	s->cl.node = n;
	s->cl.version = v;
	s->cl.lease_ms = lease_ms;
	if (!store_shared(s->store))
		return 0;
	e = store_fence(s->store, node);
	if (e < 0 || s->cl.on)
		return e;
	s->cl.on = true;
	uv_timer_init(s->loop, &s->cl.tick);
	s->cl.tick.data = s;
	s->cl.tick_init = true;
	uv_timer_start(&s->cl.tick, on_tick, 0, TICK_MS);
	return 0;
}

void sched_cluster_close(struct sched *s)
{
	sched_shard_close(s);
	if (s->cl.tick_init && !s->cl.tick_closed)
		uv_close((uv_handle_t *)&s->cl.tick, NULL);
	s->cl.tick_closed = true;
}

void sched_cluster_free(struct sched *s)
{
	while (s->cl.remotes) {
		struct remote *rem = s->cl.remotes;

		s->cl.remotes = rem->next;
		remote_free(rem);
	}
	sched_shard_free(s);
	free(s->cl.node);
	free(s->cl.version);
}
