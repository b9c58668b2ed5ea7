/* Unit tests of the bench's pure modules: bn_hist (bucket layout, quantiles within the promised 1/64
 * relative error, merge) and bn_data (ranges are position-independent, digests match the bytes). */
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

TESTS(T(hist_buckets_tile_the_range), T(hist_quantiles), T(hist_merge), T(data_ranges_are_position_independent))
