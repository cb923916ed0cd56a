/* Unit tests of the pure parts of two probe types, in one executable:
 *
 * - lib/probe/cmpstat (compare): the seeded PRNG, the normal and Student t
 *   quantiles, the expanded percentile tail, and the paired bootstrap
 *   interval's behaviour on synthetic segments: its false-alarm rate on
 *   identical endpoints and its power against a 20 % slower one. Every
 *   sample comes from the seeded PRNG, so every count is exact and the
 *   same on every run.
 * - lib/probe/infra_facts (infrastructure): /proc/meminfo, nvidia-smi's
 *   csv, node_exporter samples from exposition text and from a Prometheus
 *   vector, and the facts as metrics and details: unknown stays null, no
 *   GPU publishes no GPU metric.
 */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/loadgen/hist.h"
#include "lib/probe/cmpstat.h"
#include "lib/probe/infra_facts.h"

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

static char *const two_mounts[] = {"/", "/var/lib/my \"data\""};

START_TEST(test_meminfo)
{
	double t = 0, a = 0;

	ck_assert_int_eq(infra_facts_parse_meminfo("MemTotal:       24683904 kB\n"
	                                           "MemFree:         1000000 kB\n"
	                                           "MemAvailable:   23950000 kB\n",
	                                           &t, &a),
	                 0);
	ck_assert_double_eq(t, 24683904.0 * 1024);
	ck_assert_double_eq(a, 23950000.0 * 1024);
	ck_assert_int_eq(infra_facts_parse_meminfo("MemTotal: 1 kB\n", &t, &a), -EINVAL);
	ck_assert_int_eq(infra_facts_parse_meminfo("MemTotal: x kB\nMemAvailable: 1 kB\n", &t, &a),
	                 -EINVAL);
	/* MemTotalX is another key. */
	ck_assert_int_eq(infra_facts_parse_meminfo("MemTotalX: 1 kB\nMemAvailable: 1 kB\n", &t, &a),
	                 -EINVAL);
}
END_TEST

START_TEST(test_nvidia_smi)
{
	struct infra_facts f;

	infra_facts_init(&f, two_mounts, 2);
	ck_assert_int_eq(f.n_gpus, -1);
	ck_assert_int_eq(infra_facts_parse_nvidia_smi("NVIDIA A100-SXM4-80GB, 81920, 81000\r\n"
	                                              "NVIDIA A100-SXM4-80GB, 81920, 1024\n",
	                                              &f),
	                 0);
	ck_assert_int_eq(f.n_gpus, 2);
	ck_assert_str_eq(f.gpus[0].name, "NVIDIA A100-SXM4-80GB");
	ck_assert_double_eq(f.gpus[0].memory_bytes, 81920.0 * 1048576);
	ck_assert_double_eq(f.gpus[1].free_bytes, 1024.0 * 1048576);
	ck_assert_int_eq(infra_facts_parse_nvidia_smi("", &f), 0);
	ck_assert_int_eq(f.n_gpus, 0);
	ck_assert_int_eq(infra_facts_parse_nvidia_smi("No devices were found\n", &f), -EINVAL);
	ck_assert_int_eq(f.n_gpus, -1);
	ck_assert_ptr_nonnull(strstr(f.gpu_error, "No devices were found"));
	ck_assert_int_eq(infra_facts_parse_nvidia_smi("GPU, [N/A], 5\n", &f), -EINVAL);
}
END_TEST

static const char node_text[] =
        "# HELP node_cpu_seconds_total x\n"
        "# TYPE node_cpu_seconds_total counter\n"
        "node_cpu_seconds_total{cpu=\"0\",mode=\"idle\"} 10\n"
        "node_cpu_seconds_total{cpu=\"0\",mode=\"user\"} 10\n"
        "node_cpu_seconds_total{cpu=\"1\",mode=\"idle\"} 10\n"
        "node_cpu_seconds_total{cpu=\"1\",mode=\"idle\"} 10\n" /* counted once */
        "node_cpu_seconds_total{mode=\"idle\",cpu=\"7\"} 1e3\n"
        "node_memory_MemTotal_bytes 1.073741824e+10\n"
        "node_memory_MemAvailable_bytes 5368709120\n"
        "node_filesystem_avail_bytes{device=\"a\",mountpoint=\"/\"} 2147483648\n"
        "node_filesystem_size_bytes{device=\"a\",mountpoint=\"/\"} 4294967296\n"
        "node_filesystem_avail_bytes{mountpoint=\"/var/lib/my \\\"data\\\"\"} 1073741824\n"
        "node_filesystem_avail_bytes{mountpoint=\"/other\"} 1\n"
        "node_load1 3\n";

START_TEST(test_exposition)
{
	struct infra_facts f;
	json_t *m, *d;

	infra_facts_init(&f, two_mounts, 2);
	ck_assert_int_eq(infra_facts_parse_exposition(node_text, strlen(node_text), &f), 0);
	ck_assert_double_eq(f.cpu_cores, 3);
	ck_assert_int_eq(infra_facts_json(&f, &m, &d), 0);
	ck_assert_double_eq(json_number_value(json_object_get(m, "memory_gib")), 10);
	ck_assert_double_eq(json_number_value(json_object_get(m, "memory_available_gib")), 5);
	ck_assert_double_eq(json_number_value(json_object_get(m, "disk_free_gib")), 2);
	ck_assert_double_eq(json_number_value(json_object_get(m, "disk_free_gib_min")), 1);
	ck_assert_double_eq(json_number_value(json_object_get(
	                            json_array_get(json_object_get(d, "mounts"), 0), "total_gib")),
	                    4);
	/* The escaped mount point was matched; its size is unknown. */
	ck_assert(json_is_null(
	        json_object_get(json_array_get(json_object_get(d, "mounts"), 1), "total_gib")));
	/* No GPU: said so, and no GPU metric at all. */
	ck_assert_str_eq(json_string_value(json_object_get(d, "gpu")), "unavailable");
	ck_assert_ptr_null(json_object_get(m, "gpu_memory_gib"));
	ck_assert_ptr_null(json_object_get(m, "gpu_count"));
	json_decref(m);
	json_decref(d);
}
END_TEST

START_TEST(test_unknown_mount_makes_min_null)
{
	static char *const mounts[] = {"/", "/nope"};
	struct infra_facts f;
	json_t *m, *d;

	infra_facts_init(&f, mounts, 2);
	ck_assert_int_eq(infra_facts_parse_exposition(node_text, strlen(node_text), &f), 0);
	ck_assert_int_eq(infra_facts_json(&f, &m, &d), 0);
	ck_assert_double_eq(json_number_value(json_object_get(m, "disk_free_gib")), 2);
	ck_assert(json_is_null(json_object_get(m, "disk_free_gib_min")));
	ck_assert_str_eq(json_string_value(json_object_get(
	                         json_array_get(json_object_get(d, "mounts"), 1), "error")),
	                 "not reported");
	json_decref(m);
	json_decref(d);
}
END_TEST

START_TEST(test_vector_and_gpus)
{
	json_error_t e;
	json_t *data = json_loads(
	        "{\"resultType\": \"vector\", \"result\": ["
	        "{\"metric\": {\"__name__\": \"node_cpu_seconds_total\", \"cpu\": \"0\", \"mode\": "
	        "\"idle\"}, \"value\": [1, \"5\"]},"
	        "{\"metric\": {\"__name__\": \"node_cpu_seconds_total\", \"cpu\": \"1\", \"mode\": "
	        "\"idle\"}, \"value\": [1, \"5\"]},"
	        "{\"metric\": {\"__name__\": \"node_memory_MemTotal_bytes\"}, \"value\": [1, "
	        "\"2147483648\"]}]}",
	        0, &e);
	struct infra_facts f;
	json_t *m, *d;

	ck_assert_ptr_nonnull(data);
	infra_facts_init(&f, two_mounts, 1);
	ck_assert_int_eq(infra_facts_parse_vector(data, &f), 0);
	ck_assert_double_eq(f.cpu_cores, 2);
	ck_assert_double_eq(f.memory_bytes, 2147483648.0);
	ck_assert_int_eq(infra_facts_parse_nvidia_smi("H100, 81559, 40960\nL4, 23034, 23000\n", &f),
	                 0);
	ck_assert_int_eq(infra_facts_json(&f, &m, &d), 0);
	ck_assert(json_is_null(json_object_get(m, "memory_available_gib")));
	ck_assert_int_eq(json_integer_value(json_object_get(m, "gpu_count")), 2);
	/* The smallest GPU, the least free. */
	ck_assert_double_eq_tol(json_number_value(json_object_get(m, "gpu_memory_gib")),
	                        23034 / 1024.0, 1e-12);
	ck_assert_double_eq_tol(json_number_value(json_object_get(m, "gpu_memory_free_gib")),
	                        22460 / 1024.0 + 540 / 1024.0, 1e-12);
	ck_assert_str_eq(json_string_value(json_object_get(
	                         json_array_get(json_object_get(d, "gpu"), 0), "model")),
	                 "H100");
	json_decref(m);
	json_decref(d);
	json_decref(data);
	data = json_loads("{\"resultType\": \"matrix\", \"result\": []}", 0, &e);
	ck_assert_int_eq(infra_facts_parse_vector(data, &f), -EPROTO);
	json_decref(data);
}
END_TEST

static Suite *cmpstat_suite(void)
{
	Suite *s = suite_create("cmpstat");
	TCase *tc = tcase_create("core");

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
	return s;
}

static Suite *infra_facts_suite(void)
{
	Suite *s = suite_create("infra-facts");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_meminfo);
	tcase_add_test(tc, test_nvidia_smi);
	tcase_add_test(tc, test_exposition);
	tcase_add_test(tc, test_unknown_mount_makes_min_null);
	tcase_add_test(tc, test_vector_and_gpus);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(cmpstat_suite());
	int failed;

	srunner_add_suite(sr, infra_facts_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
