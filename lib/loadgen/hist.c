/* hist: HDR-style log-linear latency histogram (contract in hist.h).
 *
 * Layout: with k = sub_bits, bucket 0 holds the values 0 .. 2^k - 1 one
 * per counter; bucket b >= 1 holds 2^(b+k-1) .. 2^(b+k) - 1 in 2^(k-1)
 * counters of width 2^b. A value's counter is found with one
 * count-leading-zeros and a shift, so recording never loops. Since
 * 2^(k-1) >= 10^digits, a counter's width is below 10^-digits of any value
 * in it.
 *
 * This file must not allocate anywhere but hist_new(), hist_deserialize()
 * and hist_serialize(), and must not log: the load engine calls
 * hist_record() for every request.
 */
#include "lib/loadgen/hist.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define HIST_MAGIC          "RDHG"
#define HIST_MAGIC_LEN      4
#define HIST_FORMAT_VERSION 1

/* Percentiles are ranked on p scaled to an integer (6 decimal places), so
 * the rank is exact integer arithmetic and 99.9 means 99.9, not
 * 99.900000000000006. */
#define P_SCALE UINT64_C(1000000)
#define P_DENOM (100 * P_SCALE)

struct hist {
	int64_t highest;
	int digits;
	unsigned sub_bits;  /* values below 2^sub_bits have a counter each */
	unsigned half_bits; /* sub_bits - 1: log2 of counters per bucket >= 1 */
	uint64_t sub_mask;  /* 2^sub_bits - 1 */
	uint64_t total;
	uint64_t overflow;
	int64_t min; /* INT64_MAX while empty */
	int64_t max; /* 0 while empty */
	size_t len;  /* number of counters */
	uint64_t counts[];
};

/* Smallest k with 2^k >= 2 * 10^digits: the widest range where every
 * counter can be one unit wide and still keep 2^(k-1) >= 10^digits. */
static unsigned sub_bits_for(int digits)
{
	uint64_t need = 2;
	unsigned bits = 0;

	for (int i = 0; i < digits; i++)
		need *= 10;
	while ((UINT64_C(1) << bits) < need)
		bits++;
	return bits;
}

static inline unsigned bucket_of(const struct hist *h, uint64_t v)
{
	/* OR-ing the mask in keeps clz defined for 0 and puts every value
	 * below 2^sub_bits in bucket 0. */
	return (unsigned)(64 - __builtin_clzll(v | h->sub_mask)) - h->sub_bits;
}

static inline size_t index_of(const struct hist *h, uint64_t v)
{
	unsigned b = bucket_of(h, v);

	return ((size_t)b << h->half_bits) + (size_t)(v >> b);
}

/* The value range of counter i: the inverse of index_of(). */
static void counter_range(const struct hist *h, size_t i, int64_t *ret_lo, int64_t *ret_hi)
{
	size_t top = i >> h->half_bits;
	unsigned b = top > 0 ? (unsigned)(top - 1) : 0;
	uint64_t sub = (uint64_t)(i - ((size_t)b << h->half_bits));
	int64_t lo = (int64_t)(sub << b);

	*ret_lo = lo;
	*ret_hi = lo + (int64_t)(UINT64_C(1) << b) - 1;
}

static int64_t clamp_value(const struct hist *h, int64_t v)
{
	if (v < 0)
		return 0;
	if (v > h->highest)
		return h->highest;
	return v;
}

static bool config_valid(int64_t highest, int digits)
{
	return highest >= 1 && highest <= HIST_HIGHEST_MAX && digits >= HIST_DIGITS_MIN &&
	       digits <= HIST_DIGITS_MAX;
}

/* Fills cfg's config fields and counter count for a valid config. */
static void config_init(struct hist *cfg, int64_t highest, int digits)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->highest = highest;
	cfg->digits = digits;
	cfg->sub_bits = sub_bits_for(digits);
	cfg->half_bits = cfg->sub_bits - 1;
	cfg->sub_mask = (UINT64_C(1) << cfg->sub_bits) - 1;
	cfg->min = INT64_MAX;
	cfg->len = index_of(cfg, (uint64_t)highest) + 1;
}

/* Only counters from min's to max's can be non-zero; every scan is
 * limited to them. Call only on a non-empty histogram. */
static size_t first_index(const struct hist *h)
{
	return index_of(h, (uint64_t)h->min);
}

static size_t last_index(const struct hist *h)
{
	return index_of(h, (uint64_t)h->max);
}

int hist_new(int64_t highest_us, int digits, struct hist **ret_hist)
{
	struct hist cfg;
	struct hist *h;

	if (!config_valid(highest_us, digits))
		return -EINVAL;
	config_init(&cfg, highest_us, digits);
	/* The caps on highest and digits bound this to 24 MiB. */
	h = calloc(1, sizeof(*h) + cfg.len * sizeof(h->counts[0]));
	if (!h)
		return -ENOMEM;
	memcpy(h, &cfg, sizeof(cfg));
	*ret_hist = h;
	return 0;
}

void hist_free(struct hist *h)
{
	free(h);
}

void hist_reset(struct hist *h)
{
	/* Only min's to max's counters can be set: a per-second histogram
	 * reset every second should not cost a sweep of all of them. */
	if (h->total > 0) {
		size_t first = first_index(h);

		memset(&h->counts[first], 0, (last_index(h) - first + 1) * sizeof(h->counts[0]));
	}
	h->total = 0;
	h->overflow = 0;
	h->min = INT64_MAX;
	h->max = 0;
}

int hist_record_n(struct hist *h, int64_t value_us, uint64_t n)
{
	if (n == 0)
		return 0;
	if (n > HIST_COUNT_MAX - h->total)
		return -ERANGE;
	if (value_us < 0) {
		value_us = 0;
	} else if (value_us > h->highest) {
		value_us = h->highest;
		h->overflow += n;
	}
	h->counts[index_of(h, (uint64_t)value_us)] += n;
	h->total += n;
	if (value_us < h->min)
		h->min = value_us;
	if (value_us > h->max)
		h->max = value_us;
	return 0;
}

int hist_record(struct hist *h, int64_t value_us)
{
	return hist_record_n(h, value_us, 1);
}

int hist_merge(struct hist *dst, const struct hist *src)
{
	if (dst->highest != src->highest || dst->digits != src->digits)
		return -EINVAL;
	if (src->total > HIST_COUNT_MAX - dst->total)
		return -ERANGE;
	if (src->total == 0)
		return 0;
	/* No per-counter overflow check is needed: each counter is at most
	 * its histogram's total, and the totals' sum was checked above. */
	for (size_t i = first_index(src), end = last_index(src); i <= end; i++)
		dst->counts[i] += src->counts[i];
	dst->total += src->total;
	dst->overflow += src->overflow;
	if (src->min < dst->min)
		dst->min = src->min;
	if (src->max > dst->max)
		dst->max = src->max;
	return 0;
}

int64_t hist_highest(const struct hist *h)
{
	return h->highest;
}

int hist_digits(const struct hist *h)
{
	return h->digits;
}

uint64_t hist_count(const struct hist *h)
{
	return h->total;
}

uint64_t hist_overflow(const struct hist *h)
{
	return h->overflow;
}

int64_t hist_min(const struct hist *h)
{
	return h->total > 0 ? h->min : 0;
}

int64_t hist_max(const struct hist *h)
{
	return h->total > 0 ? h->max : 0;
}

/* What every value in counter i stands for: the counter's midpoint,
 * clamped to [min, max] so that a counter holding the extremes cannot
 * report past them. */
static double representative(const struct hist *h, size_t i)
{
	int64_t lo, hi;
	double mid;

	counter_range(h, i, &lo, &hi);
	mid = ((double)lo + (double)hi) / 2.0;
	if (mid < (double)h->min)
		return (double)h->min;
	if (mid > (double)h->max)
		return (double)h->max;
	return mid;
}

double hist_mean(const struct hist *h)
{
	double sum = 0.0;

	if (h->total == 0)
		return NAN;
	for (size_t i = first_index(h), end = last_index(h); i <= end; i++) {
		if (h->counts[i] > 0)
			sum += (double)h->counts[i] * representative(h, i);
	}
	return sum / (double)h->total;
}

double hist_stddev(const struct hist *h)
{
	double mean = hist_mean(h);
	double acc = 0.0;

	if (isnan(mean))
		return NAN;
	/* Two passes rather than sum of squares: no cancellation when the
	 * spread is small next to the mean. */
	for (size_t i = first_index(h), end = last_index(h); i <= end; i++) {
		if (h->counts[i] > 0) {
			double d = representative(h, i) - mean;

			acc += (double)h->counts[i] * d * d;
		}
	}
	return sqrt(acc / (double)h->total);
}

/* Nearest rank ceil(p / 100 * total) in exact integer arithmetic: with
 * total = q * D + r, p' = p * P_SCALE and D = 100 * P_SCALE, the rank is
 * p' * q + ceil(p' * r / D), where p' * r < 10^16 and p' * q <= total. */
static uint64_t rank_of(double p, uint64_t total)
{
	uint64_t pq = (uint64_t)llround(p * (double)P_SCALE);
	uint64_t q = total / P_DENOM;
	uint64_t r = total % P_DENOM;
	uint64_t rank;

	if (pq > P_DENOM)
		pq = P_DENOM;
	rank = pq * q + (pq * r + P_DENOM - 1) / P_DENOM;
	if (rank < 1)
		return 1;
	return rank > total ? total : rank;
}

double hist_percentile(const struct hist *h, double p)
{
	uint64_t rank, seen = 0;
	size_t end;

	if (h->total == 0 || !(p >= 0.0 && p <= 100.0))
		return NAN;
	rank = rank_of(p, h->total);
	/* The smallest and largest samples are known exactly. */
	if (rank == 1)
		return (double)h->min;
	if (rank == h->total)
		return (double)h->max;
	end = last_index(h);
	for (size_t i = first_index(h); i <= end; i++) {
		seen += h->counts[i];
		if (seen >= rank)
			return representative(h, i);
	}
	/* Unreachable while the counters sum to total. */
	return (double)h->max;
}

int64_t hist_lowest_equivalent(const struct hist *h, int64_t value_us)
{
	int64_t lo, hi;

	counter_range(h, index_of(h, (uint64_t)clamp_value(h, value_us)), &lo, &hi);
	return lo;
}

int64_t hist_highest_equivalent(const struct hist *h, int64_t value_us)
{
	int64_t lo, hi;

	counter_range(h, index_of(h, (uint64_t)clamp_value(h, value_us)), &lo, &hi);
	return hi;
}

int hist_iter(const struct hist *h, hist_iter_cb cb, void *userdata)
{
	if (h->total == 0)
		return 0;
	for (size_t i = first_index(h), end = last_index(h); i <= end; i++) {
		int64_t lo, hi;
		int r;

		if (h->counts[i] == 0)
			continue;
		counter_range(h, i, &lo, &hi);
		r = cb(lo, hi, h->counts[i], userdata);
		if (r != 0)
			return r;
	}
	return 0;
}

/* Serialization. Layout, every integer an unsigned LEB128 varint of
 * minimal length:
 *
 *   "RDHG" version(1 byte) digits(1 byte) highest total overflow min max
 *   then, until the counts add up to total, runs of non-empty counters:
 *   gap (empty counters skipped since the previous run; >= 1 after the
 *   first run) length (>= 1) count * length (each >= 1)
 *
 * min and max are 0 for an empty histogram, which has no runs. Runs are
 * maximal, so the encoding of a histogram is unique. */

/* With buf NULL the writer only counts bytes, so serializing measures
 * first and allocates exactly once. */
struct writer {
	uint8_t *buf;
	size_t len;
};

static void put_byte(struct writer *w, uint8_t b)
{
	if (w->buf)
		w->buf[w->len] = b;
	w->len++;
}

static void put_varint(struct writer *w, uint64_t v)
{
	while (v >= 0x80) {
		put_byte(w, (uint8_t)(v | 0x80));
		v >>= 7;
	}
	put_byte(w, (uint8_t)v);
}

static void write_runs(const struct hist *h, struct writer *w)
{
	size_t i = first_index(h), end = last_index(h), prev_end = 0;

	while (i <= end) {
		size_t start = i;

		if (h->counts[i] == 0) {
			i++;
			continue;
		}
		while (i <= end && h->counts[i] > 0)
			i++;
		put_varint(w, start - prev_end);
		put_varint(w, i - start);
		for (size_t j = start; j < i; j++)
			put_varint(w, h->counts[j]);
		prev_end = i;
	}
}

static void write_all(const struct hist *h, struct writer *w)
{
	for (size_t i = 0; i < HIST_MAGIC_LEN; i++)
		put_byte(w, (uint8_t)HIST_MAGIC[i]);
	put_byte(w, HIST_FORMAT_VERSION);
	put_byte(w, (uint8_t)h->digits);
	put_varint(w, (uint64_t)h->highest);
	put_varint(w, h->total);
	put_varint(w, h->overflow);
	put_varint(w, (uint64_t)hist_min(h));
	put_varint(w, (uint64_t)hist_max(h));
	if (h->total > 0)
		write_runs(h, w);
}

int hist_serialize(const struct hist *h, uint8_t **ret_buf, size_t *ret_len)
{
	struct writer w = {0};

	write_all(h, &w);
	w.buf = malloc(w.len);
	if (!w.buf)
		return -ENOMEM;
	w.len = 0;
	write_all(h, &w);
	*ret_buf = w.buf;
	*ret_len = w.len;
	return 0;
}

struct reader {
	const uint8_t *buf;
	size_t len;
	size_t pos;
};

static int get_varint(struct reader *r, uint64_t *ret)
{
	uint64_t v = 0;

	for (unsigned shift = 0; shift < 64; shift += 7) {
		uint8_t b;

		if (r->pos >= r->len)
			return -EINVAL;
		b = r->buf[r->pos++];
		/* The tenth byte may only carry bit 63. */
		if (shift == 63 && b > 1)
			return -EINVAL;
		v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			/* A zero last byte after others is an over-long encoding. */
			if (b == 0 && shift > 0)
				return -EINVAL;
			*ret = v;
			return 0;
		}
	}
	return -EINVAL;
}

struct header {
	int digits;
	uint64_t highest, total, overflow, min, max;
};

/* Reads and checks everything before the runs, so that nothing is
 * allocated for a buffer whose config or totals are already wrong. */
static int read_header(struct reader *r, struct header *ret)
{
	struct header hd = {0};

	if (r->len < HIST_MAGIC_LEN + 2 || memcmp(r->buf, HIST_MAGIC, HIST_MAGIC_LEN) != 0)
		return -EINVAL;
	r->pos = HIST_MAGIC_LEN;
	if (r->buf[r->pos++] != HIST_FORMAT_VERSION)
		return -EINVAL;
	hd.digits = r->buf[r->pos++];
	if (get_varint(r, &hd.highest) < 0 || get_varint(r, &hd.total) < 0 ||
	    get_varint(r, &hd.overflow) < 0 || get_varint(r, &hd.min) < 0 ||
	    get_varint(r, &hd.max) < 0)
		return -EINVAL;
	if (hd.highest > (uint64_t)HIST_HIGHEST_MAX ||
	    !config_valid((int64_t)hd.highest, hd.digits))
		return -EINVAL;
	if (hd.total > HIST_COUNT_MAX || hd.overflow > hd.total)
		return -EINVAL;
	if (hd.total == 0 && (hd.min != 0 || hd.max != 0))
		return -EINVAL;
	if (hd.min > hd.max || hd.max > hd.highest)
		return -EINVAL;
	/* Overflowed values are recorded as highest, so they make it the max. */
	if (hd.overflow > 0 && hd.max != hd.highest)
		return -EINVAL;
	*ret = hd;
	return 0;
}

/* What the runs say about the extremes, gathered while checking them. */
struct runs_summary {
	size_t first, last; /* first and last non-empty counters */
	uint64_t first_count, last_count;
};

/* Checks the runs against cfg's counter range and the header's total,
 * writing each count into counts unless it is NULL: a first pass checks
 * without memory to write to, so a bad buffer never costs an
 * allocation. Call only with total > 0. */
static int read_runs(struct reader *r, const struct hist *cfg, uint64_t total, uint64_t *counts,
                     struct runs_summary *ret)
{
	struct runs_summary sum = {0};
	size_t at = 0;
	uint64_t seen = 0, c = 0;
	bool first_run = true;

	while (seen < total) {
		uint64_t gap, run;

		if (get_varint(r, &gap) < 0 || get_varint(r, &run) < 0)
			return -EINVAL;
		if ((!first_run && gap == 0) || run == 0 || gap > cfg->len - at ||
		    run > cfg->len - at - gap)
			return -EINVAL;
		at += (size_t)gap;
		for (uint64_t j = 0; j < run; j++, at++) {
			if (get_varint(r, &c) < 0 || c == 0 || c > total - seen)
				return -EINVAL;
			if (counts)
				counts[at] = c;
			if (first_run && j == 0) {
				sum.first = at;
				sum.first_count = c;
			}
			seen += c;
		}
		first_run = false;
	}
	sum.last = at - 1;
	sum.last_count = c;
	*ret = sum;
	return 0;
}

/* The header's min, max and overflow must agree with the counters: min
 * in the first non-empty counter, max in the last, overflowed values in
 * highest's counter, and min == max when nothing else is possible. */
static bool extremes_consistent(const struct hist *cfg, const struct header *hd,
                                const struct runs_summary *sum)
{
	if (sum->first != index_of(cfg, hd->min) || sum->last != index_of(cfg, hd->max))
		return false;
	if (hd->overflow > sum->last_count)
		return false;
	if (sum->first == sum->last && hd->min != hd->max &&
	    (sum->first_count == 1 || sum->first_count == hd->overflow))
		return false;
	return true;
}

/* Checks the whole buffer; on success *ret_runs_at is where the runs
 * start. No allocation. */
static int validate(struct reader *r, struct header *ret_hd, size_t *ret_runs_at)
{
	struct header hd;
	struct hist cfg;
	struct runs_summary sum;
	size_t runs_at;

	if (read_header(r, &hd) < 0)
		return -EINVAL;
	config_init(&cfg, (int64_t)hd.highest, hd.digits);
	runs_at = r->pos;
	if (hd.total > 0) {
		if (read_runs(r, &cfg, hd.total, NULL, &sum) < 0)
			return -EINVAL;
		if (!extremes_consistent(&cfg, &hd, &sum))
			return -EINVAL;
	}
	if (r->pos != r->len)
		return -EINVAL;
	*ret_hd = hd;
	*ret_runs_at = runs_at;
	return 0;
}

int hist_deserialize(const uint8_t *buf, size_t len, struct hist **ret_hist)
{
	struct reader r = {.buf = buf, .len = len};
	struct runs_summary sum;
	struct header hd;
	struct hist *h;
	size_t runs_at;
	int ret;

	ret = validate(&r, &hd, &runs_at);
	if (ret < 0)
		return ret;
	ret = hist_new((int64_t)hd.highest, hd.digits, &h);
	if (ret < 0)
		return ret;
	if (hd.total > 0) {
		/* Cannot fail: the same bytes passed validate(). */
		r.pos = runs_at;
		(void)read_runs(&r, h, hd.total, h->counts, &sum);
		h->min = (int64_t)hd.min;
		h->max = (int64_t)hd.max;
	}
	h->total = hd.total;
	h->overflow = hd.overflow;
	*ret_hist = h;
	return 0;
}
