/* cmpstat: the statistics of the `compare` probe, kept apart from
 * the probe so they can be tested on synthetic segments. The probe runs
 * baseline and candidate in alternating segments (A B A B ...); segment i
 * of each forms pair i, and what is compared is the per-pair log ratio of
 * a latency quantile, d_i = ln(candidate_i / baseline_i). Drift on the
 * host moves both halves of a pair alike, so it cancels in d_i.
 *
 * The confidence interval for the ratio exp(mean d) is a bootstrap over
 * pairs (resampled with a seeded PRNG, so the same segments always give
 * the same interval), widened by Hesterberg's "expanded percentile"
 * correction: the percentile bootstrap of a mean is too narrow for few
 * pairs (it covers about 90 % where 95 % is asked with 10 pairs); the
 * expansion takes the tail probability that makes it as wide as a
 * Student t interval on n - 1 degrees of freedom. docs/MEASUREMENT.md
 * says why this method and not a rank test on the requests.
 *
 * At least CMPSTAT_MIN_PAIRS usable pairs are needed: with n pairs every
 * resampled mean lies between the smallest and the largest log ratio, so
 * an interval can never exclude 1 less often than all n ratios share a
 * sign, 2^(1-n) of the time: 12.5 % for 4 pairs, 3.1 % for 6.
 *
 * Pure arithmetic: no I/O, no allocation beyond the caller's buffers and
 * one array per call; any thread.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CMPSTAT_RESAMPLES 4000 /* bootstrap resamples per interval */
#define CMPSTAT_MIN_PAIRS 6    /* fewer usable pairs: no interval (see below) */

/* A small, seeded PRNG (splitmix64): the same seed, the same sequence on
 * every platform. */
uint64_t cmpstat_rng_next(uint64_t *state);
/* Uniform in [0, n), n >= 1, without modulo bias. */
uint64_t cmpstat_rng_below(uint64_t *state, uint64_t n);

/* Standard normal CDF and quantile (0 < p < 1). */
double cmpstat_normal_cdf(double x);
double cmpstat_normal_quantile(double p);
/* Student t quantile with df >= 1 degrees of freedom, 0 < p < 1. */
double cmpstat_t_quantile(double p, int df);

/* The tail probability (per side) the expanded percentile interval uses
 * for n pairs at this confidence: Phi(-sqrt(n / (n - 1)) * t(1 - a/2, n - 1))
 * with a = 1 - confidence. NaN for n < 2. */
double cmpstat_expanded_tail(int n, double confidence);

/* One ratio's interval. */
struct cmpstat_ci {
	double ratio;     /* exp(mean of the pairs' log ratios) */
	double low, high; /* the interval for it; NaN when n < CMPSTAT_MIN_PAIRS */
	int n;            /* usable pairs: both quantiles finite and > 0 */
	/* 1: the interval excludes 1 and the ratio differs from 1 by at least
	 * min_effect (above 1 + min_effect or below 1 / (1 + min_effect));
	 * 0: not; -1: no interval. */
	int significant;
};

/* The interval of the ratio of cand[i] / base[i] over n pairs (a pair
 * with a value that is NaN, infinite or <= 0 on either side is left out),
 * at confidence (0.5..0.999), with CMPSTAT_RESAMPLES resamples drawn from
 * seed; min_effect (0..1) as above: with many precise segments, two
 * endpoints that differ by a fraction of a percent (two processes, two
 * caches) are told apart, and such a difference is not a regression.
 * Returns 0, -EINVAL for a bad confidence or min_effect, -ENOMEM. */
int cmpstat_ci_pairs(const double *base, const double *cand, size_t n, double confidence,
                     double min_effect, uint64_t seed, struct cmpstat_ci *ret);
