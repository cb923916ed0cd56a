/* hist: the latency histogram behind every percentile readyd reports
 * (docs/MEASUREMENT.md). HDR-style log-linear buckets over integer
 * microseconds: values below 2^k (k = bits for 2 * 10^digits) each get a
 * bucket of their own; above, every power-of-two range is split into
 * 2^(k-1) equal buckets, so any recorded value is known to a relative
 * error below 10^-digits. Recording is constant time (no search), merging
 * is exact, and the serialized form is canonical (equal histograms give
 * equal bytes) so stored runs can be re-judged later with the same answer.
 *
 * This module does no I/O and no locking; it must stay cheap enough for
 * the load engine's hot path. Not thread-safe: use one histogram per
 * thread and hist_merge() them at the end. Functions taking a const
 * histogram may run concurrently with each other, never with a writer.
 *
 * Memory: 8 bytes per bucket, about (log2(highest) - k + 2) * 2^(k-1)
 * buckets: 216 KiB at 3 digits and the default range, 20 MiB at 5.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

struct hist;

/* 2^36 us is about 19 hours, far above any latency worth measuring. */
#define HIST_HIGHEST_DEFAULT (INT64_C(1) << 36)
/* About 12.7 days; the cap bounds the memory a (deserialized) config may ask for. */
#define HIST_HIGHEST_MAX    (INT64_C(1) << 40)
#define HIST_DIGITS_DEFAULT 3
#define HIST_DIGITS_MIN     1
#define HIST_DIGITS_MAX     5
/* Total count cap, so counts fit SQLite's and JSON's signed 64-bit integers. */
#define HIST_COUNT_MAX ((uint64_t)INT64_MAX)

/* Creates an empty histogram tracking 0..highest_us (1..HIST_HIGHEST_MAX)
 * with digits (HIST_DIGITS_MIN..HIST_DIGITS_MAX) significant decimal
 * digits. *ret_hist is a new object the caller frees with hist_free().
 * Returns 0, -EINVAL for a bad config, -ENOMEM. */
int hist_new(int64_t highest_us, int digits, struct hist **ret_hist);

/* Frees h; NULL is fine. */
void hist_free(struct hist *h);

/* Empties h, keeping its config. */
void hist_reset(struct hist *h);

/* Records value_us once / n times. A negative value is recorded as 0; a
 * value above highest is recorded as highest and counted in
 * hist_overflow(). n = 0 records nothing. Constant time. Returns 0, or
 * -ERANGE (nothing recorded) if the total count would pass HIST_COUNT_MAX. */
int hist_record(struct hist *h, int64_t value_us);
int hist_record_n(struct hist *h, int64_t value_us, uint64_t n);

/* Adds every count of src (borrowed, unchanged; may be dst) to dst, as if
 * dst had recorded src's values too. Returns 0, -EINVAL if the two differ
 * in highest or digits, -ERANGE if the total count would pass
 * HIST_COUNT_MAX; on error dst is unchanged. */
int hist_merge(struct hist *dst, const struct hist *src);

/* The config h was created with. */
int64_t hist_highest(const struct hist *h);
int hist_digits(const struct hist *h);

/* Number of recorded values, overflowed ones included. */
uint64_t hist_count(const struct hist *h);

/* How many values were above highest (and recorded as highest). */
uint64_t hist_overflow(const struct hist *h);

/* Exact smallest / largest recorded value (after the clamping described
 * at hist_record()); 0 when h is empty: check hist_count() first. */
int64_t hist_min(const struct hist *h);
int64_t hist_max(const struct hist *h);

/* Mean and population standard deviation, computed by giving every value
 * its bucket's representative value (see hist_percentile()); exact when
 * every value is below 2 * 10^digits, where buckets are one unit wide,
 * and otherwise within 10^-digits relative error of the exact mean and of
 * the exact standard deviation plus 10^-digits times the values' root
 * mean square. NaN when h is empty, so no data never reads as a number. */
double hist_mean(const struct hist *h);
double hist_stddev(const struct hist *h);

/* The p-th percentile, p in [0, 100], by nearest rank: the value of the
 * sample of rank ceil(p / 100 * count) in ascending order (rank 1 for
 * p = 0). p is taken to 6 decimal places, so representation error cannot
 * move a rank (99.9 of 1000 samples is rank 999, not 1000). What is
 * returned is the midpoint of that sample's bucket, (lowest + highest
 * equivalent value) / 2, clamped to [hist_min(), hist_max()], except for
 * ranks 1 and count, whose samples are known exactly: hist_min() and
 * hist_max(). Thus p = 0 gives the minimum and p = 100 the maximum
 * exactly, and every answer is within 10^-digits relative error of the
 * exact nearest-rank sample.
 * NaN when h is empty or p is NaN or outside [0, 100]. Linear in the
 * number of buckets. */
double hist_percentile(const struct hist *h, double p);

/* The smallest / largest value that shares value_us's bucket, i.e. that
 * the histogram cannot tell apart from it. value_us is first clamped as
 * hist_record() would. */
int64_t hist_lowest_equivalent(const struct hist *h, int64_t value_us);
int64_t hist_highest_equivalent(const struct hist *h, int64_t value_us);

/* Called for each non-empty bucket in ascending order with the bucket's
 * lowest and highest equivalent values and its count. A non-zero return
 * stops the iteration. */
typedef int (*hist_iter_cb)(int64_t lowest_us, int64_t highest_us, uint64_t count, void *userdata);

/* Runs cb over the non-empty buckets of h. Returns 0, or the first
 * non-zero value cb returned. userdata is passed through, borrowed. */
int hist_iter(const struct hist *h, hist_iter_cb cb, void *userdata);

/* Serializes h: magic "RDHG", format version, config, count, overflow, min,
 * max, then the non-empty buckets as varint-encoded runs. Equal
 * histograms (same config and counts) give equal bytes. *ret_buf is a new
 * malloc'd buffer of *ret_len bytes the caller frees with free().
 * Returns 0 or -ENOMEM. */
int hist_serialize(const struct hist *h, uint8_t **ret_buf, size_t *ret_len);

/* Rebuilds a histogram from hist_serialize()'s output. buf (borrowed) is
 * untrusted: any buffer that is not exactly a canonical serialization
 * (truncated, trailing bytes, bad magic, version or config, counts that
 * disagree with the total, min or max, over-long varints) gives -EINVAL.
 * The whole buffer is checked before anything is allocated; a valid one
 * costs one hist_new() of its config (at most 24 MiB, by the caps).
 * *ret_hist is a new object the caller frees with hist_free().
 * Returns 0, -EINVAL, -ENOMEM. */
int hist_deserialize(const uint8_t *buf, size_t len, struct hist **ret_hist);
