/* dist: parses durations and latency distributions, draws service times
 * from them, and holds the server's PRNG. Parsing is strict (whole string,
 * no whitespace, no signs, no hex or "inf"), because a test that passes a
 * typo must fail loudly rather than measure an unintended server. This file
 * knows nothing of HTTP, threads or the clock.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "demo-target.h"

int64_t dt_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * DT_NS_PER_S + ts.tv_nsec;
}

static int64_t unit_ns(const char *u)
{
	if (strcmp(u, "us") == 0)
		return DT_NS_PER_US;
	if (strcmp(u, "ms") == 0)
		return DT_NS_PER_MS;
	if (strcmp(u, "s") == 0)
		return DT_NS_PER_S;
	return 0;
}

/* Reads up to max_digits decimal digits; returns how many were read. */
static size_t read_digits(const char *s, size_t max_digits, int64_t *ret_value)
{
	int64_t v = 0;
	size_t n = 0;

	while (s[n] >= '0' && s[n] <= '9' && n < max_digits) {
		v = v * 10 + (s[n] - '0');
		n++;
	}
	*ret_value = v;
	return n;
}

/* Integer and fraction are parsed as integers, not through strtod, so that
 * "10ms" is exactly 10000000 ns and never 9999999. */
int dist_parse_duration(const char *s, int64_t *ret_ns)
{
	int64_t whole, frac = 0, scale = 1, mult, ns;
	size_t n, nf = 0;

	if (strcmp(s, "0") == 0) {
		*ret_ns = 0;
		return 0;
	}
	n = read_digits(s, 12, &whole);
	if (n == 0)
		return -EINVAL;
	if (s[n] == '.') {
		nf = read_digits(s + n + 1, 9, &frac);
		if (nf == 0)
			return -EINVAL;
		n += 1 + nf;
	}
	if (s[n] >= '0' && s[n] <= '9')
		return -ERANGE; /* more digits than any valid value has */
	mult = unit_ns(s + n);
	if (mult == 0)
		return -EINVAL;
	for (size_t i = 0; i < nf; i++)
		scale *= 10;
	if (whole > DT_MAX_DURATION_NS / mult)
		return -ERANGE;
	/* Round to the nearest nanosecond: "1.0000005us" is 1 ns, not 0. */
	ns = whole * mult + (frac * mult + scale / 2) / scale;
	if (ns > DT_MAX_DURATION_NS)
		return -ERANGE;
	*ret_ns = ns;
	return 0;
}

/* Strict finite non-negative decimal: digits, optional fraction, optional
 * exponent. strtod alone would also take "inf", "nan", hex and spaces. */
static int parse_weight(const char *s, double *ret_value)
{
	char *end;
	double v;

	if (s[0] == '\0' || strspn(s, "0123456789.eE+-") != strlen(s) || s[0] == '-' || s[0] == '+')
		return -EINVAL;
	errno = 0;
	v = strtod(s, &end);
	if (*end != '\0' || errno != 0 || !isfinite(v) || v < 0)
		return -EINVAL;
	*ret_value = v;
	return 0;
}

/* Parses "D:W" with D and W in the same buffer (split at the last ':'). */
static int parse_mix_entry(char *item, struct dist_entry *ret_value, double *ret_weight)
{
	char *colon = strrchr(item, ':');
	int r;

	if (!colon)
		return -EINVAL;
	*colon = '\0';
	r = dist_parse_duration(item, &ret_value->ns);
	if (r < 0)
		return r;
	return parse_weight(colon + 1, ret_weight);
}

static int parse_mix(char *text, struct dist *d)
{
	double total = 0, w;
	char *item = text, *comma;
	int r;

	d->kind = DIST_MIX;
	d->n_mix = 0;
	for (;;) {
		comma = strchr(item, ',');
		if (comma)
			*comma = '\0';
		if (d->n_mix == DT_MAX_MIX)
			return -ERANGE;
		r = parse_mix_entry(item, &d->mix[d->n_mix], &w);
		if (r < 0)
			return r;
		total += w;
		if (!isfinite(total))
			return -ERANGE;
		d->mix[d->n_mix++].cum_weight = total;
		if (!comma)
			break;
		item = comma + 1;
	}
	return total > 0 ? 0 : -EINVAL;
}

static int parse_uniform(char *text, struct dist *d)
{
	char *dash = strchr(text, '-');
	int r;

	if (!dash)
		return -EINVAL;
	*dash = '\0';
	d->kind = DIST_UNIFORM;
	r = dist_parse_duration(text, &d->a_ns);
	if (r < 0)
		return r;
	r = dist_parse_duration(dash + 1, &d->b_ns);
	if (r < 0)
		return r;
	return d->a_ns <= d->b_ns ? 0 : -EINVAL;
}

static int parse_into(char *text, struct dist *d)
{
	if (strncmp(text, "uniform:", 8) == 0)
		return parse_uniform(text + 8, d);
	if (strncmp(text, "exp:", 4) == 0) {
		d->kind = DIST_EXP;
		return dist_parse_duration(text + 4, &d->a_ns);
	}
	if (strchr(text, ':'))
		return parse_mix(text, d);
	d->kind = DIST_FIXED;
	return dist_parse_duration(text, &d->a_ns);
}

int dist_parse(const char *s, struct dist *ret_value)
{
	char work[DT_MAX_DIST_TEXT + 1];
	struct dist d;
	size_t len = strlen(s);
	int r;

	if (len == 0)
		return -EINVAL;
	if (len > DT_MAX_DIST_TEXT)
		return -ERANGE;
	memset(&d, 0, sizeof(d));
	memcpy(work, s, len + 1);
	r = parse_into(work, &d);
	if (r < 0)
		return r;
	memcpy(d.text, s, len + 1);
	*ret_value = d;
	return 0;
}

static int64_t sample_mix(const struct dist *d, double u)
{
	double x = u * d->mix[d->n_mix - 1].cum_weight;

	for (size_t i = 0; i < d->n_mix; i++)
		if (x < d->mix[i].cum_weight)
			return d->mix[i].ns;
	return d->mix[d->n_mix - 1].ns; /* u * total rounded up to total */
}

int64_t dist_sample(const struct dist *d, double u)
{
	double v;

	switch (d->kind) {
	case DIST_FIXED:
		return d->a_ns;
	case DIST_MIX:
		return sample_mix(d, u);
	case DIST_UNIFORM:
		return d->a_ns + (int64_t)llround(u * (double)(d->b_ns - d->a_ns));
	case DIST_EXP:
		/* Inverse CDF; u < 1 so log1p(-u) is finite. The tail is cut at
		 * the duration cap so one draw cannot hold a thread for days. */
		v = -(double)d->a_ns * log1p(-u);
		return v < (double)DT_MAX_DURATION_NS ? (int64_t)llround(v) : DT_MAX_DURATION_NS;
	}
	return 0;
}

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += UINT64_C(0x9e3779b97f4a7c15));

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

void prng_seed(struct prng *p, uint64_t seed)
{
	for (size_t i = 0; i < 4; i++)
		p->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

double prng_double(struct prng *p)
{
	uint64_t *s = p->s;
	uint64_t result = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return (double)(result >> 11) * 0x1.0p-53;
}
