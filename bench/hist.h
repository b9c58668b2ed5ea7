/* bn_hist: a fixed-memory log-linear latency histogram (HDR-like). Values below 128 get exact buckets;
 * above that every power of two is split into 64 linear sub-buckets, so a recorded value is known to
 * within 1/64 (about 1.6 %) of itself, whatever its size, in about 30 KiB per histogram. */
#ifndef DP_BENCH_HIST_H
#define DP_BENCH_HIST_H

#include <stdint.h>

#define BN_HIST_BUCKETS 3776

struct bn_hist {
    uint64_t count;
    uint64_t min;
    uint64_t max;
    long double sum;
    uint64_t b[BN_HIST_BUCKETS];
};

/** Empties h. */
void bn_hist_init(struct bn_hist *h);
/** Records one value (nanoseconds, or any unit). */
void bn_hist_record(struct bn_hist *h, uint64_t v);
/** Adds every value of src to dst. */
void bn_hist_merge(struct bn_hist *dst, const struct bn_hist *src);
/** The value at quantile q (0..1): the highest value of the bucket holding it, clamped to the maximum
 *  recorded (so p100 is exactly max); 0 when empty. */
uint64_t bn_hist_quantile(const struct bn_hist *h, double q);
/** The arithmetic mean; 0 when empty. */
double bn_hist_mean(const struct bn_hist *h);
/** Bucket index of v (exposed for tests). */
unsigned bn_hist_index(uint64_t v);
/** The highest value bucket idx holds (exposed for tests). */
uint64_t bn_hist_bucket_high(unsigned idx);

#endif
