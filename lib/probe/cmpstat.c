/* cmpstat: the paired bootstrap behind the `compare` probe's
 * confidence intervals (cmpstat.h says the method; docs/MEASUREMENT.md
 * says why). Pure arithmetic, no I/O; any thread.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>

#include "lib/probe/cmpstat.h"

uint64_t cmpstat_rng_next(uint64_t *state)
{
	uint64_t z = (*state += UINT64_C(0x9e3779b97f4a7c15));

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

uint64_t cmpstat_rng_below(uint64_t *state, uint64_t n)
{
	/* Draws past the largest multiple of n are thrown away. */
	uint64_t limit = UINT64_MAX - UINT64_MAX % n, v;

	do
		v = cmpstat_rng_next(state);
	while (v >= limit);
	return v % n;
}

double cmpstat_normal_cdf(double x)
{
	return 0.5 * erfc(-x / sqrt(2.0));
}

double cmpstat_normal_quantile(double p)
{
	double lo = -40, hi = 40;

	if (!(p > 0 && p < 1))
		return NAN;
	for (int i = 0; i < 200; i++) {
		double mid = (lo + hi) / 2;

		if (cmpstat_normal_cdf(mid) < p)
			lo = mid;
		else
			hi = mid;
	}
	return (lo + hi) / 2;
}

/* P(0 < T < sqrt(df) tan(theta)): with t = sqrt(df) tan(phi) the t density
 * becomes c * cos^(df-1)(phi) on [0, pi/2), smooth and bounded, which
 * Simpson's rule integrates to far better than the digits needed. */
static double t_half_mass(double theta, int df)
{
	const int steps = 400; /* even; the integrand is smooth and bounded */
	double c = exp(lgamma((df + 1) / 2.0) - lgamma(df / 2.0)) / sqrt(M_PI);
	double h = theta / steps, sum = 0;

	for (int i = 0; i <= steps; i++) {
		double w = (i == 0 || i == steps) ? 1 : (i % 2 ? 4 : 2);

		sum += w * pow(cos(i * h), df - 1);
	}
	return c * sum * h / 3;
}

double cmpstat_t_quantile(double p, int df)
{
	double lo = 0, hi = M_PI / 2, target;

	if (!(p > 0 && p < 1) || df < 1)
		return NAN;
	if (p == 0.5)
		return 0;
	target = fabs(p - 0.5);
	for (int i = 0; i < 60; i++) {
		double mid = (lo + hi) / 2;

		if (t_half_mass(mid, df) < target)
			lo = mid;
		else
			hi = mid;
	}
	return (p < 0.5 ? -1 : 1) * sqrt((double)df) * tan((lo + hi) / 2);
}

double cmpstat_expanded_tail(int n, double confidence)
{
	double t;

	if (n < 2 || !(confidence > 0 && confidence < 1))
		return NAN;
	t = cmpstat_t_quantile(1 - (1 - confidence) / 2, n - 1);
	return cmpstat_normal_cdf(-sqrt((double)n / (n - 1)) * t);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* The usable pairs' log ratios into d; their number. */
static int log_ratios(const double *base, const double *cand, size_t n, double *d)
{
	int k = 0;

	for (size_t i = 0; i < n; i++) {
		if (!isfinite(base[i]) || !isfinite(cand[i]) || base[i] <= 0 || cand[i] <= 0)
			continue;
		d[k++] = log(cand[i] / base[i]);
	}
	return k;
}

/* Sorted means of CMPSTAT_RESAMPLES resamples (with replacement) of d. */
static void bootstrap_means(const double *d, int k, uint64_t seed, double *means)
{
	uint64_t rng = seed;

	for (int b = 0; b < CMPSTAT_RESAMPLES; b++) {
		double sum = 0;

		for (int j = 0; j < k; j++)
			sum += d[cmpstat_rng_below(&rng, (uint64_t)k)];
		means[b] = sum / k;
	}
	qsort(means, CMPSTAT_RESAMPLES, sizeof(*means), cmp_double);
}

static double sorted_at(const double *v, int n, double q)
{
	long i = lround(q * (n - 1));

	return v[i < 0 ? 0 : i >= n ? n - 1 : i];
}

int cmpstat_ci_pairs(const double *base, const double *cand, size_t n, double confidence,
                     double min_effect, uint64_t seed, struct cmpstat_ci *ret)
{
	double *d, *means, sum = 0, tail;
	int k;

	if (!(confidence >= 0.5 && confidence <= 0.999) || !(min_effect >= 0 && min_effect <= 1))
		return -EINVAL;
	d = malloc((n ? n : 1) * sizeof(*d));
	means = malloc(CMPSTAT_RESAMPLES * sizeof(*means));
	if (!d || !means) {
		free(d);
		free(means);
		return -ENOMEM;
	}
	k = log_ratios(base, cand, n, d);
	for (int i = 0; i < k; i++)
		sum += d[i];
	*ret = (struct cmpstat_ci){.ratio = k ? exp(sum / k) : NAN,
	                           .low = NAN,
	                           .high = NAN,
	                           .n = k,
	                           .significant = -1};
	if (k >= CMPSTAT_MIN_PAIRS) {
		bootstrap_means(d, k, seed, means);
		tail = cmpstat_expanded_tail(k, confidence);
		ret->low = exp(sorted_at(means, CMPSTAT_RESAMPLES, tail));
		ret->high = exp(sorted_at(means, CMPSTAT_RESAMPLES, 1 - tail));
		ret->significant =
		        (ret->low > 1 || ret->high < 1) &&
		        (ret->ratio >= 1 + min_effect || ret->ratio <= 1 / (1 + min_effect));
	}
	free(d);
	free(means);
	return 0;
}
