/* Unit tests for lib/probe/cmpstat: the seeded PRNG, the normal and
 * Student t quantiles, the expanded percentile tail, and the paired
 * bootstrap interval's behaviour on synthetic segments: its false-alarm
 * rate on identical endpoints and its power against a 20 % slower one.
 * Every sample comes from the seeded PRNG, so every count is exact and
 * the same on every run. */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "lib/loadgen/hist.h"
#include "lib/probe/cmpstat.h"

static double uniform01(uint64_t *rng)
{
	return ((double)(cmpstat_rng_next(rng) >> 11) + 0.5) / 9007199254740992.0;
}

static double gauss(uint64_t *rng)
{
	double u = uniform01(rng), v = uniform01(rng);

	return sqrt(-2 * log(u)) * cos(2 * M_PI * v);
}

START_TEST(test_rng)
{
	uint64_t a = 42, b = 42, c = 43;
	int seen[7] = {0};

	for (int i = 0; i < 100; i++)
		ck_assert_uint_eq(cmpstat_rng_next(&a), cmpstat_rng_next(&b));
	ck_assert_uint_ne(cmpstat_rng_next(&a), cmpstat_rng_next(&c));
	for (int i = 0; i < 7000; i++) {
		uint64_t v = cmpstat_rng_below(&a, 7);

		ck_assert_uint_lt(v, 7);
		seen[v]++;
	}
	for (int i = 0; i < 7; i++)
		ck_assert_int_gt(seen[i], 800);
}
END_TEST

START_TEST(test_quantiles)
{
	/* Reference values from the standard tables. */
	ck_assert_double_eq_tol(cmpstat_normal_quantile(0.975), 1.959964, 1e-5);
	ck_assert_double_eq_tol(cmpstat_normal_quantile(0.5), 0, 1e-9);
	ck_assert_double_eq_tol(cmpstat_t_quantile(0.975, 1), 12.7062, 1e-3);
	ck_assert_double_eq_tol(cmpstat_t_quantile(0.975, 2), 4.3027, 1e-3);
	ck_assert_double_eq_tol(cmpstat_t_quantile(0.975, 9), 2.2622, 1e-3);
	ck_assert_double_eq_tol(cmpstat_t_quantile(0.995, 30), 2.7500, 1e-3);
	ck_assert_double_eq_tol(cmpstat_t_quantile(0.025, 9), -2.2622, 1e-3);
	ck_assert(isnan(cmpstat_t_quantile(1.0, 9)));
	ck_assert(isnan(cmpstat_t_quantile(0.9, 0)));
	/* Ten pairs at 95 %: Phi(-sqrt(10/9) * 2.2622) = 0.00855. */
	ck_assert_double_eq_tol(cmpstat_expanded_tail(10, 0.95), 0.00855, 1e-4);
	ck_assert(isnan(cmpstat_expanded_tail(1, 0.95)));
	/* Many pairs: back to the plain percentile interval. */
	ck_assert_double_eq_tol(cmpstat_expanded_tail(10000, 0.95), 0.025, 1e-3);
}
END_TEST

START_TEST(test_edges)
{
	double base[] = {10, NAN, 10, 0, 10}, cand[] = {11, 11, -1, 11, 11};
	struct cmpstat_ci ci;

	ck_assert_int_eq(cmpstat_ci_pairs(base, cand, 5, 0.4, 0, 1, &ci), -EINVAL);
	ck_assert_int_eq(cmpstat_ci_pairs(base, cand, 5, 1.0, 0, 1, &ci), -EINVAL);
	/* Only pairs 0 and 4 are usable: a ratio, no interval. */
	ck_assert_int_eq(cmpstat_ci_pairs(base, cand, 5, 0.95, 0, 1, &ci), 0);
	ck_assert_int_eq(ci.n, 2);
	ck_assert_double_eq_tol(ci.ratio, 1.1, 1e-12);
	ck_assert(isnan(ci.low) && isnan(ci.high));
	ck_assert_int_eq(ci.significant, -1);
	ck_assert_int_eq(cmpstat_ci_pairs(base, cand, 0, 0.95, 0, 1, &ci), 0);
	ck_assert_int_eq(ci.n, 0);
	ck_assert(isnan(ci.ratio));
}
END_TEST

START_TEST(test_same_seed_same_interval)
{
	double base[] = {10, 10.2, 9.9, 10.1, 10, 10.1}, cand[] = {10.1, 10, 10.3, 9.8, 10.2, 10};
	struct cmpstat_ci a, b;

	ck_assert_int_eq(cmpstat_ci_pairs(base, cand, 6, 0.95, 0, 7, &a), 0);
	ck_assert_int_eq(cmpstat_ci_pairs(base, cand, 6, 0.95, 0, 7, &b), 0);
	ck_assert(a.low == b.low && a.high == b.high);
	ck_assert(a.low < a.ratio && a.ratio < a.high);
	ck_assert_int_eq(a.significant, 0);
}
END_TEST

/* Precise segments tell apart endpoints 0.5 % apart: significant with
 * min_effect 0, not with the default 0.02; 20 % apart is either way. */
START_TEST(test_min_effect)
{
	double base[8], cand[8], slow[8];
	struct cmpstat_ci ci;

	for (int i = 0; i < 8; i++) {
		base[i] = 10 + 0.01 * i;
		cand[i] = base[i] * (1.005 + 0.0005 * (i % 2));
		slow[i] = base[i] * 1.2;
	}
	ck_assert_int_eq(cmpstat_ci_pairs(base, cand, 8, 0.95, 0, 1, &ci), 0);
	ck_assert_int_eq(ci.significant, 1);
	ck_assert_int_eq(cmpstat_ci_pairs(base, cand, 8, 0.95, 0.02, 1, &ci), 0);
	ck_assert_int_eq(ci.significant, 0);
	ck_assert_double_gt(ci.low, 1); /* the interval is the same */
	ck_assert_int_eq(cmpstat_ci_pairs(base, slow, 8, 0.95, 0.02, 1, &ci), 0);
	ck_assert_int_eq(ci.significant, 1);
	/* Faster by 20 %: 1 / 1.2 is below 1 / 1.02. */
	ck_assert_int_eq(cmpstat_ci_pairs(slow, base, 8, 0.95, 0.02, 1, &ci), 0);
	ck_assert_int_eq(ci.significant, 1);
	ck_assert_int_eq(cmpstat_ci_pairs(base, slow, 8, 0.95, 1.5, 1, &ci), -EINVAL);
}
END_TEST

/* Identical endpoints, log ratios iid normal: the interval must exclude 1
 * about 5 % of the time at 95 %, for few pairs as for many. */
START_TEST(test_false_alarm_rate_iid)
{
	static const int pairs[] = {6, 8, 10, 20};
	int n = pairs[_i], alarms = 0, trials = 1000;
	uint64_t rng = 1000 + (uint64_t)n;

	for (int t = 0; t < trials; t++) {
		double base[20], cand[20];
		struct cmpstat_ci ci;

		for (int i = 0; i < n; i++) {
			base[i] = 10;
			cand[i] = 10 * exp(0.05 * gauss(&rng));
		}
		ck_assert_int_eq(cmpstat_ci_pairs(base, cand, (size_t)n, 0.95, 0, (uint64_t)t, &ci),
		                 0);
		alarms += ci.significant == 1;
	}
	fprintf(stderr, "cmpstat: %d pairs: %d false alarms in %d trials (95 %%)\n", n, alarms,
	        trials);
	/* 5 % of 1000 is 50 (binomial sd 7). Below 6 pairs no interval is
	 * given: with 4, every resample lies between the smallest and the
	 * largest log ratio, and all 4 share a sign 12.5 % of the time. */
	ck_assert_int_ge(alarms, 25);
	ck_assert_int_le(alarms, 75);
}
END_TEST

/* One synthetic compare as the probe makes it: per segment, requests with
 * a skewed latency (lognormal around base_ms, p99 1.4 times p50), host drift shared by
 * both halves of a pair, the segment's quantile from a real histogram. */
static void synthetic_compare(uint64_t *rng, double base_ms, double cand_ms, int pairs,
                              int per_segment, double q, struct cmpstat_ci *ret)
{
	double base[32], cand[32];

	ck_assert_int_le(pairs, 32);
	for (int i = 0; i < pairs; i++) {
		double drift = exp(0.1 * gauss(rng)); /* the host, both halves */

		for (int side = 0; side < 2; side++) {
			struct hist *h;
			double ms = side ? cand_ms : base_ms;

			ck_assert_int_eq(hist_new(HIST_HIGHEST_DEFAULT, 3, &h), 0);
			for (int r = 0; r < per_segment; r++) {
				double v = ms * drift * exp(0.15 * gauss(rng));

				hist_record(h, (int64_t)(v * 1000));
			}
			(side ? cand : base)[i] = hist_percentile(h, q) / 1000;
			hist_free(h);
		}
	}
	ck_assert_int_eq(cmpstat_ci_pairs(base, cand, (size_t)pairs, 0.95, 0, 1, ret), 0);
}

START_TEST(test_twenty_identical_compares)
{
	uint64_t rng = 20;
	int alarms[3] = {0};
	static const double qs[] = {50, 95, 99};

	for (int run = 0; run < 20; run++) {
		for (int k = 0; k < 3; k++) {
			struct cmpstat_ci ci;

			synthetic_compare(&rng, 10, 10, 8, 200, qs[k], &ci);
			alarms[k] += ci.significant == 1;
			ck_assert_double_lt(fabs(ci.ratio - 1), 0.05);
		}
	}
	fprintf(stderr, "cmpstat: 20 identical compares: false alarms p50 %d, p95 %d, p99 %d\n",
	        alarms[0], alarms[1], alarms[2]);
	/* At 5 % each, 4 or more in 20 has probability 1.6 %. */
	for (int k = 0; k < 3; k++)
		ck_assert_int_le(alarms[k], 3);
}
END_TEST

START_TEST(test_twenty_slower_candidates)
{
	uint64_t rng = 12;

	for (int run = 0; run < 20; run++) {
		struct cmpstat_ci ci50, ci95;

		synthetic_compare(&rng, 10, 12, 8, 200, 50, &ci50);
		synthetic_compare(&rng, 10, 12, 8, 200, 95, &ci95);
		ck_assert_int_eq(ci50.significant, 1);
		ck_assert_int_eq(ci95.significant, 1);
		ck_assert_double_lt(fabs(ci50.ratio / 1.2 - 1), 0.05);
		ck_assert_double_gt(ci95.low, 1);
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("cmpstat");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_rng);
	tcase_add_test(tc, test_quantiles);
	tcase_add_test(tc, test_edges);
	tcase_add_test(tc, test_same_seed_same_interval);
	tcase_add_test(tc, test_min_effect);
	tcase_add_loop_test(tc, test_false_alarm_rate_iid, 0, 4);
	tcase_add_test(tc, test_twenty_identical_compares);
	tcase_add_test(tc, test_twenty_slower_candidates);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
