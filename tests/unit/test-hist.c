/* test-hist: the histogram against exact answers. Every sample set is
 * generated with a fixed-seed PRNG, kept and sorted, so each percentile
 * is checked against the true nearest-rank sample and mean/stddev against
 * the true moments, within the 10^-digits relative error the histogram
 * promises. The serialized format is pinned by golden bytes and its
 * decoder is fed every truncation, a table of corrupt buffers and random
 * mutations.
 *
 * This file must not test timing: no wall-clock thresholds.
 */
#include "lib/loadgen/hist.h"

#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util/util.h"

#define N_SAMPLES   20000
#define N_MUTATIONS 1000

/* For assertions inside large loops: check's ck_assert_* reports every
 * passing assertion through a write(), which would dominate the run. */
#define EXPECT(cond, ...)                                                                          \
	do {                                                                                       \
		if (!(cond))                                                                       \
			ck_abort_msg(__VA_ARGS__);                                                 \
	} while (0)

#define HOUR_US INT64_C(3600000000)

/* splitmix64: tiny, fixed-seed, good enough to spread samples. */
static uint64_t rng_next(uint64_t *s)
{
	uint64_t z = (*s += UINT64_C(0x9E3779B97F4A7C15));

	z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
	return z ^ (z >> 31);
}

/* Uniform in [0, 1). */
static double rng_unit(uint64_t *s)
{
	return (double)(rng_next(s) >> 11) / 9007199254740992.0;
}

static int64_t rng_range(uint64_t *s, int64_t lo, int64_t hi)
{
	return lo + (int64_t)(rng_next(s) % (uint64_t)(hi - lo + 1));
}

typedef void (*gen_fn)(int64_t *v, size_t n, uint64_t *s);

static void gen_constant(int64_t *v, size_t n, uint64_t *s)
{
	for (size_t i = 0; i < n; i++)
		v[i] = 10000;
}

static void gen_uniform(int64_t *v, size_t n, uint64_t *s)
{
	for (size_t i = 0; i < n; i++)
		v[i] = rng_range(s, 0, 1000000);
}

/* Below 2 * 10^3: one-unit buckets from 3 digits up, so exact moments. */
static void gen_small(int64_t *v, size_t n, uint64_t *s)
{
	for (size_t i = 0; i < n; i++)
		v[i] = rng_range(s, 0, 1999);
}

/* A typical model server: 90% 10 ms, 8% 40 ms, 2% 150 ms, +-0.5 ms jitter. */
static void gen_mix(int64_t *v, size_t n, uint64_t *s)
{
	for (size_t i = 0; i < n; i++) {
		int64_t pick = rng_range(s, 0, 99);
		int64_t base = pick < 90 ? 10000 : pick < 98 ? 40000 : 150000;

		v[i] = base + rng_range(s, -500, 500);
	}
}

static void gen_exponential(int64_t *v, size_t n, uint64_t *s)
{
	for (size_t i = 0; i < n; i++)
		v[i] = (int64_t)(-20000.0 * log(1.0 - rng_unit(s)));
}

/* Log-uniform over 1 us .. 1 h, with both ends present. */
static void gen_wide(int64_t *v, size_t n, uint64_t *s)
{
	for (size_t i = 0; i < n; i++)
		v[i] = (int64_t)exp(rng_unit(s) * log((double)HOUR_US));
	v[0] = 1;
	v[n / 2] = HOUR_US;
}

static const struct sample_set {
	const char *name;
	gen_fn gen;
} sets[] = {
        {"constant", gen_constant}, {"uniform", gen_uniform},         {"small", gen_small},
        {"mix", gen_mix},           {"exponential", gen_exponential}, {"wide", gen_wide},
};

static const struct config {
	int64_t highest;
	int digits;
} configs[] = {
        {HIST_HIGHEST_DEFAULT, 3}, {HOUR_US, 1}, {HIST_HIGHEST_DEFAULT, 2}, {HOUR_US, 4},
        {HIST_HIGHEST_DEFAULT, 5},
};

#define N_CASES (RD_ARRAY_SIZE(configs) * RD_ARRAY_SIZE(sets))

/* Percentiles in hundredths of a percent, so the expected rank is exact
 * integer arithmetic independent of the code under test. */
static const int64_t percentiles_x100[] = {0,    100,  2500, 5000, 7500, 9000,
                                           9500, 9900, 9990, 9999, 10000};

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/* A case: its config, its samples (unsorted) and a sorted copy. */
struct fixture {
	const struct config *cfg;
	const struct sample_set *set;
	int64_t *samples;
	int64_t *sorted;
	size_t n;
	double bound; /* 10^-digits */
};

static void fixture_load(struct fixture *f, int i)
{
	uint64_t seed = UINT64_C(0x5EED0000) + (uint64_t)i;

	f->cfg = &configs[(size_t)i / RD_ARRAY_SIZE(sets)];
	f->set = &sets[(size_t)i % RD_ARRAY_SIZE(sets)];
	f->n = N_SAMPLES;
	f->samples = malloc(f->n * sizeof(int64_t));
	f->sorted = malloc(f->n * sizeof(int64_t));
	ck_assert_ptr_nonnull(f->samples);
	ck_assert_ptr_nonnull(f->sorted);
	f->set->gen(f->samples, f->n, &seed);
	memcpy(f->sorted, f->samples, f->n * sizeof(int64_t));
	qsort(f->sorted, f->n, sizeof(int64_t), cmp_i64);
	f->bound = pow(10.0, -f->cfg->digits);
}

static void fixture_unload(struct fixture *f)
{
	free(f->samples);
	free(f->sorted);
}

static struct hist *new_hist(const struct config *cfg)
{
	struct hist *h = NULL;

	ck_assert_int_eq(hist_new(cfg->highest, cfg->digits, &h), 0);
	ck_assert_ptr_nonnull(h);
	return h;
}

static struct hist *record_range(const struct fixture *f, size_t from, size_t to)
{
	struct hist *h = new_hist(f->cfg);

	for (size_t i = from; i < to; i++)
		EXPECT(hist_record(h, f->samples[i]) == 0, "record %zu failed", i);
	return h;
}

/* Equal histograms serialize to equal bytes (the encoding is canonical). */
static void assert_hist_equal(const struct hist *a, const struct hist *b)
{
	uint8_t *ba, *bb;
	size_t la, lb;

	ck_assert_int_eq(hist_serialize(a, &ba, &la), 0);
	ck_assert_int_eq(hist_serialize(b, &bb, &lb), 0);
	ck_assert_uint_eq(la, lb);
	ck_assert_int_eq(memcmp(ba, bb, la), 0);
	free(ba);
	free(bb);
}

static void check_percentiles(const struct fixture *f, const struct hist *h)
{
	for (size_t k = 0; k < RD_ARRAY_SIZE(percentiles_x100); k++) {
		int64_t px = percentiles_x100[k];
		uint64_t rank = ((uint64_t)px * f->n + 9999) / 10000;
		double exact, got;

		if (rank < 1)
			rank = 1;
		exact = (double)f->sorted[rank - 1];
		got = hist_percentile(h, (double)px / 100.0);
		ck_assert_msg(fabs(got - exact) <= exact * f->bound,
		              "%s digits=%d p%.2f: got %.3f, exact %.0f (rank %llu)", f->set->name,
		              f->cfg->digits, (double)px / 100.0, got, exact,
		              (unsigned long long)rank);
	}
	ck_assert_double_eq(hist_percentile(h, 0), (double)f->sorted[0]);
	ck_assert_double_eq(hist_percentile(h, 100), (double)f->sorted[f->n - 1]);
}

static void check_moments(const struct fixture *f, const struct hist *h)
{
	double sum = 0, sq = 0, acc = 0, mean, sd, rms;

	for (size_t i = 0; i < f->n; i++) {
		sum += (double)f->samples[i];
		sq += (double)f->samples[i] * (double)f->samples[i];
	}
	mean = sum / (double)f->n;
	for (size_t i = 0; i < f->n; i++)
		acc += ((double)f->samples[i] - mean) * ((double)f->samples[i] - mean);
	sd = sqrt(acc / (double)f->n);
	rms = sqrt(sq / (double)f->n);

	/* Each value moves by at most bound * value, so the mean by at most
	 * bound * mean and the stddev by at most bound * rms; 1e-9 covers
	 * floating-point summation order. */
	ck_assert_msg(fabs(hist_mean(h) - mean) <= mean * f->bound + mean * 1e-9 + 1e-9,
	              "%s digits=%d mean %.6f exact %.6f", f->set->name, f->cfg->digits,
	              hist_mean(h), mean);
	ck_assert_msg(fabs(hist_stddev(h) - sd) <= rms * f->bound + rms * 1e-9 + 1e-9,
	              "%s digits=%d stddev %.6f exact %.6f", f->set->name, f->cfg->digits,
	              hist_stddev(h), sd);
	if (f->sorted[f->n - 1] < 2 * (int64_t)lround(pow(10, f->cfg->digits))) {
		ck_assert_double_eq_tol(hist_mean(h), mean, mean * 1e-12 + 1e-12);
		ck_assert_double_eq_tol(hist_stddev(h), sd, sd * 1e-9 + 1e-9);
	}
}

START_TEST(test_exact_answers)
{
	struct fixture f;
	struct hist *h;

	fixture_load(&f, _i);
	h = record_range(&f, 0, f.n);
	ck_assert_uint_eq(hist_count(h), f.n);
	ck_assert_uint_eq(hist_overflow(h), 0);
	ck_assert_int_eq(hist_min(h), f.sorted[0]);
	ck_assert_int_eq(hist_max(h), f.sorted[f.n - 1]);
	check_percentiles(&f, h);
	check_moments(&f, h);
	hist_free(h);
	fixture_unload(&f);
}
END_TEST

START_TEST(test_merge_halves)
{
	struct fixture f;
	struct hist *whole, *a, *b;

	fixture_load(&f, _i);
	whole = record_range(&f, 0, f.n);
	a = record_range(&f, 0, f.n / 3);
	b = record_range(&f, f.n / 3, f.n);
	ck_assert_int_eq(hist_merge(a, b), 0);
	assert_hist_equal(a, whole);
	ck_assert_uint_eq(hist_count(a), f.n);
	ck_assert_int_eq(hist_min(a), f.sorted[0]);
	ck_assert_int_eq(hist_max(a), f.sorted[f.n - 1]);
	check_percentiles(&f, a);
	hist_free(whole);
	hist_free(a);
	hist_free(b);
	fixture_unload(&f);
}
END_TEST

START_TEST(test_roundtrip)
{
	struct fixture f;
	struct hist *h, *back = NULL;
	uint8_t *buf;
	size_t len;

	fixture_load(&f, _i);
	h = record_range(&f, 0, f.n);
	ck_assert_int_eq(hist_serialize(h, &buf, &len), 0);
	ck_assert_int_eq(hist_deserialize(buf, len, &back), 0);
	ck_assert_uint_eq(hist_count(back), hist_count(h));
	ck_assert_int_eq(hist_min(back), hist_min(h));
	ck_assert_int_eq(hist_max(back), hist_max(h));
	ck_assert_int_eq(hist_highest(back), f.cfg->highest);
	ck_assert_int_eq(hist_digits(back), f.cfg->digits);
	ck_assert_double_eq(hist_mean(back), hist_mean(h));
	ck_assert_double_eq(hist_stddev(back), hist_stddev(h));
	for (size_t k = 0; k < RD_ARRAY_SIZE(percentiles_x100); k++) {
		double p = (double)percentiles_x100[k] / 100.0;

		ck_assert_double_eq(hist_percentile(back, p), hist_percentile(h, p));
	}
	assert_hist_equal(back, h);
	check_percentiles(&f, back);
	free(buf);
	hist_free(back);
	hist_free(h);
	fixture_unload(&f);
}
END_TEST

/* Values 1..1000 at 3 digits are stored exactly, so the nearest-rank
 * definition is visible directly, including p whose decimal value is not
 * representable in binary (99.9, 99.99). */
START_TEST(test_percentile_definition)
{
	static const struct {
		double p;
		double want;
	} rows[] = {
	        {0, 1},      {0.05, 1},     {0.1, 1},      {0.11, 2},   {1, 10},
	        {25, 250},   {50, 500},     {50.01, 501},  {90, 900},   {99, 990},
	        {99.9, 999}, {99.91, 1000}, {99.99, 1000}, {100, 1000},
	};
	struct hist *h = NULL;

	ck_assert_int_eq(hist_new(HIST_HIGHEST_DEFAULT, 3, &h), 0);
	for (int64_t v = 1000; v >= 1; v--)
		EXPECT(hist_record(h, v) == 0, "record %lld failed", (long long)v);
	for (size_t i = 0; i < RD_ARRAY_SIZE(rows); i++)
		ck_assert_msg(hist_percentile(h, rows[i].p) == rows[i].want, "p%g: got %g, want %g",
		              rows[i].p, hist_percentile(h, rows[i].p), rows[i].want);
	ck_assert(isnan(hist_percentile(h, -0.001)));
	ck_assert(isnan(hist_percentile(h, 100.001)));
	ck_assert(isnan(hist_percentile(h, NAN)));
	ck_assert_double_eq(hist_mean(h), 500.5);
	hist_free(h);
}
END_TEST

/* A bucket wider than one unit answers with its midpoint, clamped to the
 * exact min and max. */
START_TEST(test_percentile_midpoint)
{
	struct hist *h = NULL;
	int64_t lo, hi;

	ck_assert_int_eq(hist_new(HIST_HIGHEST_DEFAULT, 2, &h), 0);
	lo = hist_lowest_equivalent(h, 100000);
	hi = hist_highest_equivalent(h, 100000);
	ck_assert_int_gt(hi, lo + 2);
	ck_assert_int_eq(hist_record(h, lo), 0);
	ck_assert_int_eq(hist_record(h, lo + 1), 0);
	ck_assert_int_eq(hist_record(h, hi), 0);
	ck_assert_int_eq(hist_record(h, hi), 0);
	ck_assert_double_eq(hist_percentile(h, 50), ((double)lo + (double)hi) / 2);
	ck_assert_double_eq(hist_percentile(h, 0), (double)lo);
	ck_assert_double_eq(hist_percentile(h, 100), (double)hi);
	hist_reset(h);
	ck_assert_int_eq(hist_record_n(h, lo + 1, 7), 0);
	ck_assert_double_eq(hist_percentile(h, 50), (double)(lo + 1));
	ck_assert_double_eq(hist_mean(h), (double)(lo + 1));
	ck_assert_double_eq(hist_stddev(h), 0);
	hist_free(h);
}
END_TEST

START_TEST(test_empty)
{
	struct hist *h = NULL, *back = NULL;
	uint8_t *buf;
	size_t len;

	ck_assert_int_eq(hist_new(HIST_HIGHEST_DEFAULT, HIST_DIGITS_DEFAULT, &h), 0);
	ck_assert_uint_eq(hist_count(h), 0);
	ck_assert_uint_eq(hist_overflow(h), 0);
	ck_assert_int_eq(hist_min(h), 0);
	ck_assert_int_eq(hist_max(h), 0);
	ck_assert(isnan(hist_mean(h)));
	ck_assert(isnan(hist_stddev(h)));
	ck_assert(isnan(hist_percentile(h, 50)));
	ck_assert(isnan(hist_percentile(h, 0)));
	ck_assert_int_eq(hist_serialize(h, &buf, &len), 0);
	ck_assert_int_eq(hist_deserialize(buf, len, &back), 0);
	ck_assert_uint_eq(hist_count(back), 0);
	assert_hist_equal(back, h);
	free(buf);
	hist_free(back);
	hist_free(h);
	hist_free(NULL);
}
END_TEST

START_TEST(test_new_rejects_bad_config)
{
	static const struct config bad[] = {
	        {HIST_HIGHEST_DEFAULT, 0},
	        {HIST_HIGHEST_DEFAULT, 6},
	        {HIST_HIGHEST_DEFAULT, -3},
	        {0, 3},
	        {-1, 3},
	        {HIST_HIGHEST_MAX + 1, 3},
	        {INT64_MAX, 1},
	};
	struct hist *sentinel = (struct hist *)&sentinel;

	for (size_t i = 0; i < RD_ARRAY_SIZE(bad); i++) {
		struct hist *h = sentinel;

		ck_assert_int_eq(hist_new(bad[i].highest, bad[i].digits, &h), -EINVAL);
		ck_assert_ptr_eq(h, sentinel);
	}
}
END_TEST

/* The extreme legal configs work end to end. */
START_TEST(test_config_extremes)
{
	static const struct config good[] = {
	        {1, 1}, {1, 5}, {HIST_HIGHEST_MAX, 1}, {HIST_HIGHEST_MAX, 5}, {HOUR_US, 3},
	};

	for (size_t i = 0; i < RD_ARRAY_SIZE(good); i++) {
		struct hist *h = new_hist(&good[i]);

		ck_assert_int_eq(hist_record(h, good[i].highest), 0);
		ck_assert_int_eq(hist_record(h, 0), 0);
		ck_assert_int_eq(hist_record(h, INT64_MAX), 0);
		ck_assert_uint_eq(hist_overflow(h), 1);
		ck_assert_int_eq(hist_max(h), good[i].highest);
		ck_assert_double_eq(hist_percentile(h, 100), (double)good[i].highest);
		ck_assert_double_eq(hist_percentile(h, 0), 0);
		hist_free(h);
	}
}
END_TEST

START_TEST(test_overflow_clamping)
{
	struct hist *h = NULL;

	ck_assert_int_eq(hist_new(1000000, 3, &h), 0);
	ck_assert_int_eq(hist_record(h, 2000000), 0);
	ck_assert_int_eq(hist_record(h, 500), 0);
	ck_assert_int_eq(hist_record(h, -7), 0);
	ck_assert_int_eq(hist_record(h, INT64_MIN), 0);
	ck_assert_int_eq(hist_record_n(h, INT64_MAX, 5), 0);
	ck_assert_int_eq(hist_record(h, 1000000), 0);
	ck_assert_uint_eq(hist_count(h), 10);
	ck_assert_uint_eq(hist_overflow(h), 6);
	ck_assert_int_eq(hist_min(h), 0);
	ck_assert_int_eq(hist_max(h), 1000000);
	ck_assert_double_eq(hist_percentile(h, 0), 0);
	ck_assert_double_eq(hist_percentile(h, 20), 0);
	ck_assert_double_eq(hist_percentile(h, 25), 500);
	ck_assert_double_eq(hist_percentile(h, 100), 1000000);
	ck_assert_double_eq(hist_percentile(h, 50), 1000000);
	ck_assert_int_eq(hist_lowest_equivalent(h, -5), 0);
	ck_assert_int_eq(hist_highest_equivalent(h, 5000000), hist_highest_equivalent(h, 1000000));
	hist_free(h);
}
END_TEST

START_TEST(test_record_n)
{
	struct hist *a = NULL, *b = NULL;

	ck_assert_int_eq(hist_new(HIST_HIGHEST_DEFAULT, 3, &a), 0);
	ck_assert_int_eq(hist_new(HIST_HIGHEST_DEFAULT, 3, &b), 0);
	ck_assert_int_eq(hist_record_n(a, 123456, 1000), 0);
	ck_assert_int_eq(hist_record_n(a, 7, 3), 0);
	ck_assert_int_eq(hist_record_n(a, 999999999, 0), 0);
	for (int i = 0; i < 1000; i++)
		EXPECT(hist_record(b, 123456) == 0, "record failed");
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(hist_record(b, 7), 0);
	ck_assert_uint_eq(hist_count(a), 1003);
	ck_assert_int_eq(hist_max(a), 123456);
	assert_hist_equal(a, b);

	/* The total is capped at HIST_COUNT_MAX and nothing is recorded past it. */
	ck_assert_int_eq(hist_record_n(a, 5, HIST_COUNT_MAX), -ERANGE);
	ck_assert_uint_eq(hist_count(a), 1003);
	ck_assert_int_eq(hist_record_n(a, 5, HIST_COUNT_MAX - 1003), 0);
	ck_assert_uint_eq(hist_count(a), HIST_COUNT_MAX);
	ck_assert_int_eq(hist_record(a, 5), -ERANGE);
	ck_assert_int_eq(hist_min(a), 5);
	ck_assert_double_eq(hist_percentile(a, 50), 5);
	ck_assert_int_eq(hist_merge(a, b), -ERANGE);
	ck_assert_uint_eq(hist_count(a), HIST_COUNT_MAX);
	hist_free(a);
	hist_free(b);
}
END_TEST

START_TEST(test_merge_rules)
{
	struct hist *a = NULL, *b = NULL, *c = NULL, *e = NULL;

	ck_assert_int_eq(hist_new(HIST_HIGHEST_DEFAULT, 3, &a), 0);
	ck_assert_int_eq(hist_new(HIST_HIGHEST_DEFAULT, 2, &b), 0);
	ck_assert_int_eq(hist_new(HOUR_US, 3, &c), 0);
	ck_assert_int_eq(hist_new(HIST_HIGHEST_DEFAULT, 3, &e), 0);
	ck_assert_int_eq(hist_record(a, 42), 0);
	ck_assert_int_eq(hist_record(b, 42), 0);
	ck_assert_int_eq(hist_record(c, 42), 0);
	ck_assert_int_eq(hist_merge(a, b), -EINVAL);
	ck_assert_int_eq(hist_merge(a, c), -EINVAL);
	ck_assert_uint_eq(hist_count(a), 1);

	/* Merging an empty histogram changes nothing, into one copies. */
	ck_assert_int_eq(hist_merge(a, e), 0);
	ck_assert_uint_eq(hist_count(a), 1);
	ck_assert_int_eq(hist_merge(e, a), 0);
	assert_hist_equal(a, e);

	/* Self-merge doubles every count. */
	ck_assert_int_eq(hist_record(a, 4000000), 0);
	ck_assert_int_eq(hist_merge(a, a), 0);
	ck_assert_uint_eq(hist_count(a), 4);
	ck_assert_int_eq(hist_record_n(e, 42, 1), 0);
	ck_assert_int_eq(hist_record_n(e, 4000000, 2), 0);
	assert_hist_equal(a, e);
	hist_free(a);
	hist_free(b);
	hist_free(c);
	hist_free(e);
}
END_TEST

START_TEST(test_reset)
{
	struct hist *h = NULL, *fresh = NULL;

	ck_assert_int_eq(hist_new(100000, 3, &h), 0);
	ck_assert_int_eq(hist_new(100000, 3, &fresh), 0);
	ck_assert_int_eq(hist_record(h, 5), 0);
	ck_assert_int_eq(hist_record(h, 1000000), 0);
	hist_reset(h);
	ck_assert_uint_eq(hist_count(h), 0);
	ck_assert_uint_eq(hist_overflow(h), 0);
	assert_hist_equal(h, fresh);
	ck_assert_int_eq(hist_record(h, 77), 0);
	ck_assert_int_eq(hist_min(h), 77);
	ck_assert_int_eq(hist_max(h), 77);
	hist_free(h);
	hist_free(fresh);
}
END_TEST

/* Equivalent ranges: contain the value, are narrower than 10^-digits of
 * it, are one unit wide below 2 * 10^digits, and tile the line. */
START_TEST(test_equivalent_ranges)
{
	int digits = _i + 1;
	struct config cfg = {HIST_HIGHEST_DEFAULT, digits};
	struct hist *h = new_hist(&cfg);
	double bound = pow(10.0, -digits);
	int64_t unit_below = 2 * (int64_t)lround(pow(10, digits));
	uint64_t seed = 99;

	for (int i = 0; i < 20000; i++) {
		int64_t v = i < 3000 ? i : (int64_t)exp(rng_unit(&seed) * log(6.0e10));
		int64_t lo = hist_lowest_equivalent(h, v), hi = hist_highest_equivalent(h, v);

		EXPECT(lo <= v && v <= hi, "v=%lld outside [%lld, %lld]", (long long)v,
		       (long long)lo, (long long)hi);
		EXPECT((double)(hi - lo) < (double)lo * bound || hi == lo,
		       "digits=%d v=%lld: [%lld, %lld] too wide", digits, (long long)v,
		       (long long)lo, (long long)hi);
		EXPECT(v >= unit_below || hi == lo, "v=%lld: bucket not one unit wide",
		       (long long)v);
		EXPECT(hist_lowest_equivalent(h, hi + 1) == hi + 1, "gap after %lld",
		       (long long)hi);
		EXPECT(lo == 0 || hist_highest_equivalent(h, lo - 1) == lo - 1, "gap before %lld",
		       (long long)lo);
	}
	hist_free(h);
}
END_TEST

struct iter_acc {
	int64_t lo[8], hi[8];
	uint64_t count[8];
	int n, stop_after;
};

static int collect(int64_t lowest_us, int64_t highest_us, uint64_t count, void *userdata)
{
	struct iter_acc *acc = userdata;

	ck_assert_int_lt(acc->n, 8);
	acc->lo[acc->n] = lowest_us;
	acc->hi[acc->n] = highest_us;
	acc->count[acc->n] = count;
	acc->n++;
	return acc->n == acc->stop_after ? 42 : 0;
}

START_TEST(test_iter)
{
	struct hist *h = NULL;
	struct iter_acc acc = {0};

	ck_assert_int_eq(hist_new(HIST_HIGHEST_DEFAULT, 3, &h), 0);
	ck_assert_int_eq(hist_iter(h, collect, &acc), 0);
	ck_assert_int_eq(acc.n, 0);
	ck_assert_int_eq(hist_record_n(h, 5, 2), 0);
	ck_assert_int_eq(hist_record(h, 3000), 0);
	ck_assert_int_eq(hist_record(h, 3001), 0);
	ck_assert_int_eq(hist_record(h, 10000000), 0);
	ck_assert_int_eq(hist_iter(h, collect, &acc), 0);
	ck_assert_int_eq(acc.n, 3);
	ck_assert_int_eq(acc.lo[0], 5);
	ck_assert_int_eq(acc.hi[0], 5);
	ck_assert_uint_eq(acc.count[0], 2);
	ck_assert_int_eq(acc.lo[1], 3000);
	ck_assert_int_eq(acc.hi[1], 3001);
	ck_assert_uint_eq(acc.count[1], 2);
	ck_assert_int_le(acc.lo[2], 10000000);
	ck_assert_int_ge(acc.hi[2], 10000000);
	ck_assert_int_eq(acc.lo[2], hist_lowest_equivalent(h, 10000000));
	ck_assert_uint_eq(acc.count[2], 1);

	memset(&acc, 0, sizeof(acc));
	acc.stop_after = 2;
	ck_assert_int_eq(hist_iter(h, collect, &acc), 42);
	ck_assert_int_eq(acc.n, 2);
	hist_free(h);
}
END_TEST

/* The format is a stored contract: these bytes must keep decoding. 3
 * digits, highest 2^36, 5 us three times and 3000 us once (3000 is in
 * counter 2524, two units wide). */
static const uint8_t golden[] = {
        'R',  'D',  'H',  'G',  1,    3,    /* magic, version, digits */
        0x80, 0x80, 0x80, 0x80, 0x80, 0x02, /* highest 2^36 */
        0x04, 0x00, 0x05, 0xB8, 0x17,       /* total, overflow, min, max */
        0x05, 0x01, 0x03,                   /* gap 5, run 1: 3 */
        0xD6, 0x13, 0x01, 0x01,             /* gap 2518, run 1: 1 */
};

START_TEST(test_golden_bytes)
{
	struct hist *h = NULL, *back = NULL;
	uint8_t *buf;
	size_t len;

	ck_assert_int_eq(hist_new(HIST_HIGHEST_DEFAULT, 3, &h), 0);
	ck_assert_int_eq(hist_record_n(h, 5, 3), 0);
	ck_assert_int_eq(hist_record(h, 3000), 0);
	ck_assert_int_eq(hist_serialize(h, &buf, &len), 0);
	ck_assert_uint_eq(len, sizeof(golden));
	ck_assert_int_eq(memcmp(buf, golden, len), 0);
	ck_assert_int_eq(hist_deserialize(golden, sizeof(golden), &back), 0);
	assert_hist_equal(back, h);
	ck_assert_double_eq(hist_percentile(back, 100), 3000);
	free(buf);
	hist_free(back);
	hist_free(h);
}
END_TEST

/* Every proper prefix of a valid buffer is rejected, and the out-param
 * is left alone. */
static void assert_truncations_rejected(const struct hist *h)
{
	struct hist *sentinel = (struct hist *)&sentinel;
	uint8_t *buf;
	size_t len;

	ck_assert_int_eq(hist_serialize(h, &buf, &len), 0);
	for (size_t cut = 0; cut < len; cut++) {
		struct hist *back = sentinel;
		/* A copy of exactly cut bytes, so valgrind/ASan see any overread. */
		uint8_t *part = malloc(cut ? cut : 1);

		EXPECT(part != NULL, "out of memory");
		memcpy(part, buf, cut);
		EXPECT(hist_deserialize(part, cut, &back) == -EINVAL, "prefix %zu of %zu accepted",
		       cut, len);
		EXPECT(back == sentinel, "out-param written on error");
		free(part);
	}
	free(buf);
}

START_TEST(test_truncations)
{
	struct fixture f;
	struct hist *h, *empty = NULL;

	fixture_load(&f, _i);
	h = record_range(&f, 0, 300);
	assert_truncations_rejected(h);
	ck_assert_int_eq(hist_new(f.cfg->highest, f.cfg->digits, &empty), 0);
	assert_truncations_rejected(empty);
	hist_free(empty);
	hist_free(h);
	fixture_unload(&f);
}
END_TEST

/* A buffer assembled field by field; each row differs from a valid one
 * in one respect. */
struct corrupt_row {
	const char *name;
	const char *magic;
	int version, digits;
	uint64_t highest, total, overflow, min, max;
	uint64_t body[8]; /* varints after the header, n_body of them */
	int n_body;
	int expect;
};

#define H36 ((uint64_t)1 << 36)
#define BIG ((uint64_t)INT64_MAX)

static const struct corrupt_row corrupt_rows[] = {
        {"valid", "RDHG", 1, 3, H36, 4, 0, 5, 3000, {5, 1, 3, 2518, 1, 1}, 6, 0},
        {"valid empty", "RDHG", 1, 3, H36, 0, 0, 0, 0, {0}, 0, 0},
        {"valid single", "RDHG", 1, 3, H36, 1, 0, 3000, 3000, {2524, 1, 1}, 3, 0},
        {"valid huge count", "RDHG", 1, 3, H36, BIG, 0, 5, 5, {5, 1, BIG}, 3, 0},
        {"valid overflow", "RDHG", 1, 3, 3000, 4, 1, 5, 3000, {5, 1, 3, 2518, 1, 1}, 6, 0},
        {"bad magic", "RDHX", 1, 3, H36, 4, 0, 5, 3000, {5, 1, 3, 2518, 1, 1}, 6, -EINVAL},
        {"version 0", "RDHG", 0, 3, H36, 4, 0, 5, 3000, {5, 1, 3, 2518, 1, 1}, 6, -EINVAL},
        {"version 2", "RDHG", 2, 3, H36, 4, 0, 5, 3000, {5, 1, 3, 2518, 1, 1}, 6, -EINVAL},
        {"digits 0", "RDHG", 1, 0, H36, 0, 0, 0, 0, {0}, 0, -EINVAL},
        {"digits 6", "RDHG", 1, 6, H36, 0, 0, 0, 0, {0}, 0, -EINVAL},
        {"digits 255", "RDHG", 1, 255, H36, 0, 0, 0, 0, {0}, 0, -EINVAL},
        {"highest 0", "RDHG", 1, 3, 0, 0, 0, 0, 0, {0}, 0, -EINVAL},
        {"highest over cap", "RDHG", 1, 5, ((uint64_t)1 << 40) + 1, 0, 0, 0, 0, {0}, 0, -EINVAL},
        {"highest 2^64-1", "RDHG", 1, 5, UINT64_MAX, 0, 0, 0, 0, {0}, 0, -EINVAL},
        {"total over cap", "RDHG", 1, 3, H36, BIG + 1, 0, 5, 5, {5, 1, BIG + 1}, 3, -EINVAL},
        {"count over total", "RDHG", 1, 3, H36, BIG, 0, 5, 5, {5, 1, BIG + 1}, 3, -EINVAL},
        {"counts sum over total",
         "RDHG",
         1,
         3,
         H36,
         3,
         0,
         5,
         3000,
         {5, 1, 3, 2518, 1, 1},
         6,
         -EINVAL},
        {"counts sum under total",
         "RDHG",
         1,
         3,
         H36,
         5,
         0,
         5,
         3000,
         {5, 1, 3, 2518, 1, 1},
         6,
         -EINVAL},
        {"overflow over total",
         "RDHG",
         1,
         3,
         3000,
         4,
         5,
         5,
         3000,
         {5, 1, 3, 2518, 1, 1},
         6,
         -EINVAL},
        {"overflow without max at highest",
         "RDHG",
         1,
         3,
         H36,
         4,
         1,
         5,
         3000,
         {5, 1, 3, 2518, 1, 1},
         6,
         -EINVAL},
        {"overflow over last count",
         "RDHG",
         1,
         3,
         3000,
         4,
         2,
         5,
         3000,
         {5, 1, 3, 2518, 1, 1},
         6,
         -EINVAL},
        {"empty with min", "RDHG", 1, 3, H36, 0, 0, 5, 5, {0}, 0, -EINVAL},
        {"empty with max", "RDHG", 1, 3, H36, 0, 0, 0, 5, {0}, 0, -EINVAL},
        {"min over max", "RDHG", 1, 3, H36, 4, 0, 3000, 5, {5, 1, 3, 2518, 1, 1}, 6, -EINVAL},
        {"max over highest", "RDHG", 1, 3, 2999, 4, 0, 5, 3000, {5, 1, 3, 2518, 1, 1}, 6, -EINVAL},
        {"min outside first counter",
         "RDHG",
         1,
         3,
         H36,
         4,
         0,
         4,
         3000,
         {5, 1, 3, 2518, 1, 1},
         6,
         -EINVAL},
        {"max outside last counter",
         "RDHG",
         1,
         3,
         H36,
         4,
         0,
         5,
         3002,
         {5, 1, 3, 2518, 1, 1},
         6,
         -EINVAL},
        {"one sample, min != max", "RDHG", 1, 3, H36, 1, 0, 3000, 3001, {2524, 1, 1}, 3, -EINVAL},
        {"zero count in run",
         "RDHG",
         1,
         3,
         H36,
         4,
         0,
         5,
         3000,
         {5, 2, 3, 0, 2517, 1, 1},
         7,
         -EINVAL},
        {"zero-length run",
         "RDHG",
         1,
         3,
         H36,
         4,
         0,
         5,
         3000,
         {5, 0, 5, 1, 3, 2518, 1, 1},
         8,
         -EINVAL},
        {"adjacent runs", "RDHG", 1, 3, H36, 4, 0, 5, 6, {5, 1, 3, 0, 1, 1}, 6, -EINVAL},
        {"gap past the end", "RDHG", 1, 3, H36, 4, 0, 5, 3000, {5, 1, 3, H36, 1, 1}, 6, -EINVAL},
        {"run past the end",
         "RDHG",
         1,
         3,
         3000,
         4,
         0,
         5,
         3000,
         {5, 1, 3, 2518, 2, 1, 1},
         7,
         -EINVAL},
        {"trailing byte", "RDHG", 1, 3, H36, 4, 0, 5, 3000, {5, 1, 3, 2518, 1, 1, 0}, 7, -EINVAL},
        {"trailing byte after empty", "RDHG", 1, 3, H36, 0, 0, 0, 0, {0}, 1, -EINVAL},
};

static size_t build_row(const struct corrupt_row *row, uint8_t *out)
{
	uint64_t fields[5] = {row->highest, row->total, row->overflow, row->min, row->max};
	size_t len = 0;

	memcpy(out, row->magic, 4);
	len = 4;
	out[len++] = (uint8_t)row->version;
	out[len++] = (uint8_t)row->digits;
	for (int i = 0; i < 5 + row->n_body; i++) {
		uint64_t v = i < 5 ? fields[i] : row->body[i - 5];

		while (v >= 0x80) {
			out[len++] = (uint8_t)(v | 0x80);
			v >>= 7;
		}
		out[len++] = (uint8_t)v;
	}
	return len;
}

START_TEST(test_corrupt_table)
{
	const struct corrupt_row *row = &corrupt_rows[_i];
	struct hist *sentinel = (struct hist *)&sentinel, *h = sentinel;
	uint8_t buf[256];
	size_t len = build_row(row, buf);
	int ret = hist_deserialize(buf, len, &h);

	ck_assert_msg(ret == row->expect, "%s: got %d, want %d", row->name, ret, row->expect);
	if (ret == 0) {
		uint8_t *again;
		size_t again_len;

		ck_assert_uint_eq(hist_count(h), row->total);
		ck_assert_int_eq(hist_serialize(h, &again, &again_len), 0);
		ck_assert_uint_eq(again_len, len);
		ck_assert_int_eq(memcmp(again, buf, len), 0);
		free(again);
		hist_free(h);
	} else {
		ck_assert_ptr_eq(h, sentinel);
	}
}
END_TEST

/* Varint encodings the table cannot express. */
START_TEST(test_corrupt_varints)
{
	static const struct {
		const char *name;
		uint8_t bytes[24];
		size_t len;
		int expect;
	} rows[] = {
	        {"valid", {'R', 'D', 'H', 'G', 1, 3, 100, 0, 0, 0, 0}, 11, 0},
	        {"over-long zero",
	         {'R', 'D', 'H', 'G', 1, 3, 100, 0, 0, 0x80, 0x00, 0},
	         12,
	         -EINVAL},
	        {"over-long highest",
	         {'R', 'D', 'H', 'G', 1, 3, 0xE4, 0x80, 0x00, 0, 0, 0, 0},
	         13,
	         -EINVAL},
	        {"eleven-byte varint",
	         {'R',  'D',  'H',  'G',  1,    3,    100,  0xFF, 0xFF, 0xFF, 0xFF,
	          0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x81, 0x01, 0,    0,    0},
	         21,
	         -EINVAL},
	        {"tenth byte over bit 63",
	         {'R',  'D',  'H',  'G',  1,    3,    100,  0xFF, 0xFF, 0xFF,
	          0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02, 0,    0,    0},
	         20,
	         -EINVAL},
	        {"total 2^64-1",
	         {'R',  'D',  'H',  'G',  1,    3,    100,  0xFF, 0xFF, 0xFF,
	          0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01, 0,    0,    0},
	         20,
	         -EINVAL},
	        {"nothing", {0}, 0, -EINVAL},
	        {"magic only", {'R', 'D', 'H', 'G'}, 4, -EINVAL},
	};

	for (size_t i = 0; i < RD_ARRAY_SIZE(rows); i++) {
		struct hist *h = NULL;
		int ret = hist_deserialize(rows[i].bytes, rows[i].len, &h);

		ck_assert_msg(ret == rows[i].expect, "%s: got %d", rows[i].name, ret);
		hist_free(h);
	}
}
END_TEST

/* Random single-byte edits of valid buffers: whatever decodes must be a
 * histogram whose own serialization is the input, byte for byte. */
START_TEST(test_mutations)
{
	struct fixture f;
	struct hist *h;
	uint8_t *buf;
	size_t len;
	uint64_t seed = 7;
	int accepted = 0;

	fixture_load(&f, _i);
	h = record_range(&f, 0, 300);
	ck_assert_int_eq(hist_serialize(h, &buf, &len), 0);
	for (int iter = 0; iter < N_MUTATIONS; iter++) {
		struct hist *back = NULL;
		uint8_t *m = malloc(len);
		size_t at = (size_t)rng_range(&seed, 6, (int64_t)len - 1);
		int ret;

		EXPECT(m != NULL, "out of memory");
		memcpy(m, buf, len);
		m[at] = (uint8_t)rng_next(&seed);
		ret = hist_deserialize(m, len, &back);
		EXPECT(ret == 0 || ret == -EINVAL, "unexpected %d", ret);
		if (ret == 0) {
			uint8_t *again;
			size_t again_len;

			accepted++;
			EXPECT(hist_serialize(back, &again, &again_len) == 0, "serialize failed");
			EXPECT(again_len == len && memcmp(again, m, len) == 0,
			       "edit at %zu decoded to a different histogram", at);
			free(again);
			hist_free(back);
		}
		free(m);
	}
	/* Some edits (a count changed with its total unchanged) must fail. */
	ck_assert_int_lt(accepted, N_MUTATIONS);
	free(buf);
	hist_free(h);
	fixture_unload(&f);
}
END_TEST

static Suite *hist_suite(void)
{
	Suite *s = suite_create("hist");
	TCase *tc = tcase_create("exact");
	TCase *fmt = tcase_create("format");

	tcase_add_loop_test(tc, test_exact_answers, 0, (int)N_CASES);
	tcase_add_loop_test(tc, test_merge_halves, 0, (int)N_CASES);
	tcase_add_test(tc, test_percentile_definition);
	tcase_add_test(tc, test_percentile_midpoint);
	tcase_add_test(tc, test_empty);
	tcase_add_test(tc, test_new_rejects_bad_config);
	tcase_add_test(tc, test_config_extremes);
	tcase_add_test(tc, test_overflow_clamping);
	tcase_add_test(tc, test_record_n);
	tcase_add_test(tc, test_merge_rules);
	tcase_add_test(tc, test_reset);
	tcase_add_loop_test(tc, test_equivalent_ranges, 0, HIST_DIGITS_MAX);
	tcase_add_test(tc, test_iter);
	suite_add_tcase(s, tc);

	tcase_add_loop_test(fmt, test_roundtrip, 0, (int)N_CASES);
	tcase_add_test(fmt, test_golden_bytes);
	tcase_add_loop_test(fmt, test_truncations, 0, (int)N_CASES);
	tcase_add_loop_test(fmt, test_corrupt_table, 0, (int)RD_ARRAY_SIZE(corrupt_rows));
	tcase_add_test(fmt, test_corrupt_varints);
	/* The first three configs (3, 1 and 2 digits) keep this quick under
	 * valgrind, where each accepted edit of a 5-digit buffer costs a
	 * 20 MiB calloc. */
	tcase_add_loop_test(fmt, test_mutations, 0, (int)(3 * RD_ARRAY_SIZE(sets)));
	suite_add_tcase(s, fmt);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(hist_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
