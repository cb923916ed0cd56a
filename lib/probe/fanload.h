/* fanload: one run of the load engine for a probe that runs several
 * (capacity's steps, compare's segments), from this node alone or, when
 * the probe says `nodes:` and the scheduler lends it a fan-out (probe.h,
 * struct probe_fanout_ops), spread over several nodes as one *round* of
 * the probe: this node runs its share and the other nodes theirs from an
 * agreed start, and the result handed back is the exact merge of what
 * every node measured (docs/scale-out.md "Load from several nodes").
 *
 * A round is what every node needs to know besides the run's spec: the
 * mode, the rate of the whole round, its duration and warmup, and which
 * of the probe's URLs it loads. Each node derives its share from the
 * round the same way (probe_load_share on the probe with the round
 * applied), so no share is ever sent that a node could not recompute.
 *
 * Main loop thread; it never touches the store (the scheduler's fan-out
 * does).
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "lib/loadgen/loadgen.h"
#include "lib/probe/probe.h"
#include "lib/spec/spec_schema.h"

/* What agreeing on one round usually costs besides its load: the other
 * nodes' claims, the start lead and gathering the results (measured
 * about 2 s on one host). Deadlines of probes with many rounds add it
 * per round. */
#define FANLOAD_ROUND_MS 4000

struct fanload_round {
	int index;           /* the round's number in its probe, for the record */
	enum load_mode mode; /* closed or rate */
	double rate;         /* rate mode: of the whole round, every node's together */
	int64_t duration_ms; /* measured */
	int64_t warmup_ms;   /* before it */
	const char *side;    /* NULL: the probe's url; "baseline" or "candidate" */
};

/* The round's JSON, as the other nodes get it in their shards' params.
 * New reference, or NULL (ENOMEM). */
json_t *fanload_round_to_json(const struct fanload_round *rd);

/* round (fanload_round_to_json's) read back; side borrowed from it.
 * 0, or -EINVAL when it is not a round. */
int fanload_round_from_json(const json_t *round, struct fanload_round *ret);

/* Turns sp (a node's own copy of its run's probe) into the load probe
 * that runs a share of round: type load, the round's mode, rate,
 * duration and warmup, and its url (a copy of the side's). 0, or -EINVAL
 * with why when round is not one this probe could have sent. */
int fanload_round_spec(struct spec_probe *sp, const json_t *round, char *why, size_t len);

/* Shard i of n of round rd of probe sp: the share probe_load_share gives
 * for the probe with the round applied. */
void fanload_round_share(const struct spec_probe *sp, const struct fanload_round *rd, int i, int n,
                         struct probe_load_share *ret);

/* A round ended. r is what was measured (this node's, or every node's
 * merged), NULL when nothing was; nodes is details' per-node lines
 * (NULL from this node alone); error says why the round failed (a node
 * lost, the engine not started; NULL: it did not). r and nodes stay
 * valid until fanload_free. The caller knows whether it cancelled. */
typedef void (*fanload_done_cb)(void *userdata, const struct loadgen_result *r, json_t *nodes,
                                const char *error);

struct fanload;

/* Runs cfg (the whole round's engine config, its strings borrowed until
 * fanload_free) as round rd of probe p: from this node when p asks for
 * no other node, else spread. done runs once, never from inside this
 * call. 0, or -errno with why. */
int fanload_start(struct probe *p, const struct loadgen_config *cfg, const struct fanload_round *rd,
                  fanload_done_cb done, void *userdata, struct fanload **ret, char *why,
                  size_t len);

/* Requests so far (every node's) and this node's percent of its share. */
void fanload_progress(const struct fanload *fl, int64_t *ret_requests, int *ret_percent);

/* Ends the round early: every node stops; done still runs. */
void fanload_cancel(struct fanload *fl);

/* Frees fl (NULL is fine); done does not run after it. */
void fanload_free(struct fanload *fl);

/* The merge of a fan-out: adds each shard of shards (probe_fanout_done_cb's
 * array; shard 0 is own) to m and its line to nodes. 0 or -errno. */
int fanload_merge(json_t *shards, const struct loadgen_result *own, struct loadgen_result *m,
                  json_t *nodes);

/* The `nodes` field of load, capacity and compare probes: a count from 1
 * to SPEC_MAX_NODES, or `all`; and its rule (at most one node per
 * connection). */
int fanload_read_nodes(struct spec_vctx *v, json_t *val, const char *path, void *base);
int fanload_check_nodes(struct spec_vctx *v, json_t *obj, const char *path,
                        const struct spec_probe *p);
/* clang-format off */
#define PROBE_F_NODES \
	{.key = "nodes", .kind = FK_CUSTOM, .custom = fanload_read_nodes}
/* clang-format on */

/* True when sp spreads its load over other nodes (nodes: 2.. or all). */
bool fanload_spread(const struct spec_probe *sp);
