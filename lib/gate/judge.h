/* judge: decide a run. Gathers each gate's inputs from the probes'
 * published metrics (and a baseline from the caller), judges the gates
 * (lib/gate), checks the checklist evidence, and combines everything into
 * the verdict. Used when a run ends and when a stored run is re-judged.
 *
 * No store access of its own: baselines come through a callback. Any
 * thread (it touches only what it is given).
 */
#pragma once

#include <jansson.h>
#include <stdint.h>

#include "lib/gate/gate.h"
#include "lib/spec/spec.h"

/* A probe's outcome as the judge sees it. Borrowed. */
struct judge_probe {
	const char *name;
	const char *state; /* "passed", "failed", "error", "cancelled", ... */
	const char *error; /* or NULL */
	json_t *metrics;   /* object name -> number|null, or NULL */
};

/* A baseline found, and the newer candidates passed over. */
struct judge_baseline {
	double value;
	int64_t run;            /* the run it came from */
	int64_t skipped;        /* newer passed runs whose metric had too few samples */
	int64_t skipped_newest; /* the newest of them, 0 if none */
};

/* Finds the baseline of probe.metric: the same metric of the newest
 * passed, non-invalidated run of the same service and environment that
 * itself rests on at least min_samples samples (0: no floor), counted as
 * the gate counts them (successes: requests - errors). Returns 0 with
 * ret filled, -ENOENT if there is none (ret->skipped and skipped_newest
 * still say which were passed over), other -errno on failure. */
typedef int (*judge_baseline_cb)(void *userdata, const char *probe, const char *metric,
                                 int64_t min_samples, bool successes, struct judge_baseline *ret);

/* Finds an active waiver for a failing gate by its canonical expression
 * (gate_format()). Returns 0 and a new object {id, reason, approver,
 * expires_at} that the gate result keeps as "waiver", -ENOENT if none. */
typedef int (*judge_waiver_cb)(void *userdata, const char *expr, json_t **ret_waiver);

/* The judge's view of history: either callback may be NULL. */
struct judge_lookup {
	judge_baseline_cb baseline;
	judge_waiver_cb waiver;
	void *userdata;
};

/* judge_run() with waivers: a failing (not erroring) gate with an active
 * waiver becomes "waived", keeps its value and threshold, records the
 * waiver, and no longer blocks. Every gate result has "waiver" (null when
 * none was used). lk may be NULL. */
int judge_run_with(const struct spec *spec, const struct judge_probe *probes, size_t n,
                   const struct judge_lookup *lk, int64_t now_ms, json_t **ret_gates,
                   json_t **ret_checklist, enum verdict *ret_verdict);

/* Judges spec's gates and checklist against probes (n of them) at time
 * now_ms. ret_gates and ret_checklist are new arrays shaped like the run
 * resource's gates[] and checklist[]. baseline may be NULL (no baselines).
 * Returns 0 or -ENOMEM. */
int judge_run(const struct spec *spec, const struct judge_probe *probes, size_t n,
              judge_baseline_cb baseline, void *userdata, int64_t now_ms, json_t **ret_gates,
              json_t **ret_checklist, enum verdict *ret_verdict);
