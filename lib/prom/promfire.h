/* promfire: can these alerting rules fire at all? For the
 * prometheus-rules probe. Each rule's `expr` is parsed (lib/prom/promql.h)
 * and checked against the live Prometheus through its query API:
 *
 *  - every vector selector (except under absent()) must match a series
 *    now or within the lookback (PROMFIRE_LOOKBACK), asked as
 *    count(last_over_time(SELECTOR[1h] offset ...)), one number whatever
 *    the number of series;
 *  - every vector-vector operation (arithmetic, comparison, and) whose two
 *    sides both return series must return a series itself: each side and
 *    the whole operation are queried without the comparisons to a scalar
 *    (an alert's threshold filters, which legitimately leave nothing when
 *    all is well), a comparison of two vectors with bool. When it returns
 *    nothing, the labels that differ are named.
 *
 * Queries run one at a time on the loop; the owner is called back once.
 */
#pragma once

#include <jansson.h>
#include <uv.h>

#include "lib/net/http.h"
#include "lib/spec/spec.h"

#define PROMFIRE_LOOKBACK    "1h"
#define PROMFIRE_MAX_QUERIES 400 /* per analysis; later rules are not analysed */
#define PROMFIRE_MAX_CHECKS  64  /* selectors and operations of one rule; past it, not analysed */

struct promfire;

/* err 0: the analysis is complete (read it with the accessors below);
 * err < 0: message says which query failed (borrowed). Then free it. */
typedef void (*promfire_cb)(void *userdata, int err, const char *message);

/* Analyses rules, an array of {"rule", "group", "expr"} (referenced).
 * sp (prometheus, headers, TLS) must outlive the analysis. cb is called
 * from the loop, never from within this call. Returns 0 or -errno. */
int promfire_start(uv_loop_t *loop, struct http_client *c, const struct spec_probe *sp,
                   json_t *rules, promfire_cb cb, void *userdata, struct promfire **ret);

/* Distinct rules that cannot fire. */
size_t promfire_cannot_fire(const struct promfire *f);
/* Rules analysed (parsed and checked to the end). */
size_t promfire_analysed(const struct promfire *f);
/* [{rule, group, reason, selector | expression}], one per finding;
 * borrowed. */
json_t *promfire_findings(const struct promfire *f);
/* [{rule, group, reason}] for rules not analysed; borrowed. */
json_t *promfire_unanalysed(const struct promfire *f);

/* Stops a running analysis (cb will not run) and frees it. NULL is fine. */
void promfire_free(struct promfire *f);
