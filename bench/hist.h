/* bn_hist: a fixed-memory log-linear latency histogram (HDR-like). Values below 128 get exact buckets;
 * above that every power of two is split into 64 linear sub-buckets, so a recorded value is known to
 * within 1/64 (about 1.6 %) of itself, whatever its size, in about 30 KiB per histogram. Also the two
 * views the comparison plots need: the cumulative distribution (one point per non-empty bucket) and a
 * per-second series (bn_hist_ts: operations, bytes, errors and p50/p99/max of each second, kept as
 * small summaries, so an hour-long run costs about 200 KiB, not a histogram per second). */
#ifndef DP_BENCH_HIST_H
#define DP_BENCH_HIST_H

#include <stdbool.h>
#include <stddef.h>
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
/** The cumulative distribution: for each non-empty bucket in increasing order, val[i] = its highest value
 *  (clamped to [min, max]) and frac[i] = fraction of all values <= val[i]; the last point is (max, 1).
 *  Writes at most cap points and returns how many (0 when empty); cap = BN_HIST_BUCKETS always fits. */
size_t bn_hist_cdf(const struct bn_hist *h, uint64_t *val, double *frac, size_t cap);
/** Bucket index of v (exposed for tests). */
unsigned bn_hist_index(uint64_t v);
/** The highest value bucket idx holds (exposed for tests). */
uint64_t bn_hist_bucket_high(unsigned idx);

/* One second of a series: what completed in [t, t + 1 s) of the measured window. */
struct bn_hist_sec {
    uint64_t ops;
    uint64_t bytes;
    uint64_t errors;
    uint64_t p50, p99, max; /* latency of those operations (0 when none) */
};

struct bn_hist_ts {
    struct bn_hist cur;     /* the second being filled */
    uint64_t cur_sec;
    uint64_t cur_bytes, cur_errors;
    struct bn_hist_sec *sec; /* seconds 0..n-1, completed */
    size_t n, cap;
    bool oom;               /* a second could not be stored (the series is cut there) */
};

/** Empties ts. */
void bn_hist_ts_init(struct bn_hist_ts *ts);
/** Records one operation that completed t_ns after the window start, took lat_ns, carried bytes and
 *  succeeded or not. Completion times must not go backwards by more than the current second (an earlier
 *  one is counted in the current second). Seconds without operations get zero summaries. */
void bn_hist_ts_record(struct bn_hist_ts *ts, uint64_t t_ns, uint64_t lat_ns, uint64_t bytes, bool ok);
/** Closes the second being filled (call once, at the end of the window; nothing is added when the
 *  current second is empty and nothing came before). */
void bn_hist_ts_finish(struct bn_hist_ts *ts);
/** Frees the stored seconds. */
void bn_hist_ts_free(struct bn_hist_ts *ts);

#endif
