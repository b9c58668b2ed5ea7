/* Unit tests of the bench's pure modules: bn_hist (bucket layout, quantiles within the promised 1/64
 * relative error, merge, the CDF and the per-second series the comparison plots read) and bn_data (ranges are position-independent, digests match the bytes). */
#include "data.h"
#include "hist.h"

#include "tharness.h"

#include <openssl/sha.h>
#include <stdlib.h>

TEST(hist_buckets_tile_the_range)
{
    /* every value lands in a bucket whose upper bound is >= it and within 1/64 of it, and indexes only grow */
    unsigned prev = 0;
    for (uint64_t v = 0; v < 1u << 20; v++) {
        unsigned i = bn_hist_index(v);
        ASSERT_TRUE(i >= prev && i <= prev + 1);
        prev = i;
        uint64_t hi = bn_hist_bucket_high(i);
        ASSERT_TRUE(hi >= v);
        ASSERT_TRUE(hi - v <= v / 64);
    }
    ASSERT_TRUE(bn_hist_index(UINT64_MAX) == BN_HIST_BUCKETS - 1);
    ASSERT_TRUE(bn_hist_bucket_high(BN_HIST_BUCKETS - 1) == UINT64_MAX);
    for (unsigned s = 7; s < 64; s++) {
        uint64_t v = 1ull << s;
        ASSERT_EQ_INT(bn_hist_index(v), bn_hist_index(v - 1) + 1);
    }
}

TEST(hist_quantiles)
{
    struct bn_hist *h = malloc(sizeof(*h));
    ASSERT_TRUE(h != NULL);
    bn_hist_init(h);
    ASSERT_EQ_INT(bn_hist_quantile(h, 0.99), 0);
    /* 1..100000 microseconds, in ns */
    for (uint64_t v = 1; v <= 100000; v++)
        bn_hist_record(h, v * 1000);
    ASSERT_EQ_INT(h->count, 100000);
    ASSERT_EQ_INT(h->min, 1000);
    ASSERT_EQ_INT(bn_hist_quantile(h, 1.0), 100000000);
    const double qs[] = { 0.5, 0.9, 0.99, 0.999 };
    for (unsigned i = 0; i < 4; i++) {
        double exact = qs[i] * 100000 * 1000;
        double got = (double)bn_hist_quantile(h, qs[i]);
        ASSERT_TRUE(got >= exact && got <= exact * (1 + 1.0 / 64));
    }
    ASSERT_TRUE(bn_hist_mean(h) > 50000.4e3 && bn_hist_mean(h) < 50000.6e3);
    /* one outlier shows as max and p100, not at p99 */
    bn_hist_record(h, 5000000000ull);
    ASSERT_EQ_INT(bn_hist_quantile(h, 1.0), 5000000000ull);
    ASSERT_TRUE(bn_hist_quantile(h, 0.99) < 100000000);
    free(h);
}

TEST(hist_merge)
{
    struct bn_hist *a = malloc(sizeof(*a)), *b = malloc(sizeof(*b));
    ASSERT_TRUE(a != NULL && b != NULL);
    bn_hist_init(a);
    bn_hist_init(b);
    for (unsigned i = 0; i < 99; i++)
        bn_hist_record(a, 10);
    bn_hist_record(b, 1000000);
    bn_hist_merge(a, b);
    ASSERT_EQ_INT(a->count, 100);
    ASSERT_EQ_INT(a->max, 1000000);
    ASSERT_EQ_INT(bn_hist_quantile(a, 0.99), 10);
    ASSERT_EQ_INT(bn_hist_quantile(a, 0.999), 1000000);
    free(a);
    free(b);
}

TEST(hist_cdf_points)
{
    struct bn_hist *h = malloc(sizeof(*h));
    uint64_t val[BN_HIST_BUCKETS];
    double frac[BN_HIST_BUCKETS];
    ASSERT_TRUE(h != NULL);
    bn_hist_init(h);
    ASSERT_EQ_INT(bn_hist_cdf(h, val, frac, BN_HIST_BUCKETS), 0);
    /* 70 values of 5, 20 of 1000, 10 of 1e6: three buckets, fractions 0.7, 0.9, 1 */
    for (unsigned i = 0; i < 70; i++)
        bn_hist_record(h, 5);
    for (unsigned i = 0; i < 20; i++)
        bn_hist_record(h, 1000);
    for (unsigned i = 0; i < 10; i++)
        bn_hist_record(h, 1000000);
    size_t n = bn_hist_cdf(h, val, frac, BN_HIST_BUCKETS);
    ASSERT_EQ_INT(n, 3);
    ASSERT_EQ_INT(val[0], 5);
    ASSERT_TRUE(val[1] >= 1000 && val[1] <= 1000 + 1000 / 64);
    ASSERT_EQ_INT(val[2], 1000000); /* clamped to the maximum */
    ASSERT_TRUE(frac[0] > 0.699 && frac[0] < 0.701);
    ASSERT_TRUE(frac[1] > 0.899 && frac[1] < 0.901);
    ASSERT_TRUE(frac[2] == 1.0);
    /* the points agree with the quantiles */
    ASSERT_EQ_INT(bn_hist_quantile(h, 0.69), val[0]);
    ASSERT_EQ_INT(bn_hist_quantile(h, 0.89), val[1]);
    /* a short buffer gets the first points only */
    ASSERT_EQ_INT(bn_hist_cdf(h, val, frac, 2), 2);
    ASSERT_TRUE(frac[1] < 1.0);
    free(h);
}

TEST(hist_series_per_second)
{
    struct bn_hist_ts *ts = malloc(sizeof(*ts));
    ASSERT_TRUE(ts != NULL);
    bn_hist_ts_init(ts);
    bn_hist_ts_finish(ts);
    ASSERT_EQ_INT(ts->n, 0); /* nothing recorded: no seconds */
    const uint64_t S = 1000000000ull;
    /* second 0: 100 ops of 1 ms (one failed); second 1: nothing; second 2: 10 ops of 50 ms, one of 2 s */
    for (unsigned i = 0; i < 100; i++)
        bn_hist_ts_record(ts, i * (S / 100), 1000000, 4096, i != 42);
    for (unsigned i = 0; i < 10; i++)
        bn_hist_ts_record(ts, 2 * S + i * 1000, 50000000, 1 << 20, true);
    bn_hist_ts_record(ts, 2 * S + S / 2, 2 * S, 0, true);
    bn_hist_ts_finish(ts);
    ASSERT_EQ_INT(ts->n, 3);
    ASSERT_TRUE(!ts->oom);
    ASSERT_EQ_INT(ts->sec[0].ops, 100);
    ASSERT_EQ_INT(ts->sec[0].bytes, 100 * 4096);
    ASSERT_EQ_INT(ts->sec[0].errors, 1);
    ASSERT_TRUE(ts->sec[0].p50 >= 1000000 && ts->sec[0].p50 <= 1000000 + 1000000 / 64);
    ASSERT_EQ_INT(ts->sec[0].max, 1000000);
    ASSERT_EQ_INT(ts->sec[1].ops, 0);
    ASSERT_EQ_INT(ts->sec[1].bytes, 0);
    ASSERT_EQ_INT(ts->sec[1].p99, 0);
    ASSERT_EQ_INT(ts->sec[2].ops, 11);
    ASSERT_EQ_INT(ts->sec[2].bytes, 10u << 20);
    ASSERT_TRUE(ts->sec[2].p50 >= 50000000 && ts->sec[2].p50 <= 50000000 + 50000000 / 64);
    ASSERT_EQ_INT(ts->sec[2].p99, 2 * S); /* the slow one: its own second's p99 and max */
    ASSERT_EQ_INT(ts->sec[2].max, 2 * S);
    /* a first operation late in the window: the seconds before it are there, empty */
    bn_hist_ts_free(ts);
    bn_hist_ts_init(ts);
    bn_hist_ts_record(ts, 3 * S + 5, 7000, 1, true);
    bn_hist_ts_finish(ts);
    ASSERT_EQ_INT(ts->n, 4);
    ASSERT_EQ_INT(ts->sec[0].ops + ts->sec[1].ops + ts->sec[2].ops, 0);
    ASSERT_EQ_INT(ts->sec[3].ops, 1);
    ASSERT_EQ_INT(ts->sec[3].max, 7000);
    /* a long run grows the array past its first allocation */
    bn_hist_ts_free(ts);
    bn_hist_ts_init(ts);
    for (uint64_t sec = 0; sec < 300; sec++)
        bn_hist_ts_record(ts, sec * S, sec + 1, 1, true);
    bn_hist_ts_finish(ts);
    ASSERT_EQ_INT(ts->n, 300);
    ASSERT_EQ_INT(ts->sec[299].max, 300);
    ASSERT_EQ_INT(ts->sec[150].ops, 1);
    bn_hist_ts_free(ts);
    free(ts);
}

TEST(data_ranges_are_position_independent)
{
    enum { N = 10007 };
    unsigned char *whole = malloc(N), *parts = malloc(N);
    ASSERT_TRUE(whole != NULL && parts != NULL);
    bn_data_fill(7, 3, 0, whole, N);
    /* any split into odd-sized pieces gives the same bytes */
    size_t off = 0, step = 1;
    while (off < N) {
        size_t n = step < N - off ? step : N - off;
        bn_data_fill(7, 3, off, parts + off, n);
        off += n;
        step = step * 3 + 1;
    }
    ASSERT_EQ_MEM(whole, parts, N);
    /* another file or seed gives other bytes */
    bn_data_fill(7, 4, 0, parts, N);
    ASSERT_TRUE(memcmp(whole, parts, N) != 0);
    bn_data_fill(8, 3, 0, parts, N);
    ASSERT_TRUE(memcmp(whole, parts, N) != 0);
    /* and the digest is SHA-256 of exactly those bytes */
    unsigned char d[32], want[32];
    ASSERT_EQ_INT(bn_data_digest(7, 3, N, d), 0);
    SHA256(whole, N, want);
    ASSERT_EQ_MEM(d, want, 32);
    ASSERT_EQ_INT(bn_data_digest(7, 3, N - 1, d), 0);
    ASSERT_TRUE(memcmp(d, want, 32) != 0);
    free(whole);
    free(parts);
}

TESTS(T(hist_buckets_tile_the_range), T(hist_quantiles), T(hist_merge), T(hist_cdf_points), T(hist_series_per_second),
      T(data_ranges_are_position_independent))
