/*
 * test_rdbuf: a read's relay buffer and the pool all of them share (proxy/rdbuf.c). Bytes come out in
 * the order they went in across growth and wrap-around; a lone buffer grows to its cap and no further;
 * many buffers together hold at most the pool's limit plus RDBUF_FLOOR each (the bound that keeps the
 * proxy's RSS flat under many slow readers, README "Performance"); a full buffer refuses without taking
 * anything; a piece larger than an empty buffer is taken whole; freed buffers give their bytes back so
 * another may grow.
 */
#include "rdbuf.h"
#include "tharness.h"

#define KiB ((size_t)1024)
#define MiB (1024 * KiB)

/* Byte i of a stream: a pattern that does not repeat within a buffer. */
static char pat(size_t i) { return (char)((i * 131u + (i >> 9)) & 0xff); }

/* Put pieces of n bytes until the buffer refuses one; the bytes taken. */
static size_t fill(rdbuf *b, size_t n, size_t *next)
{
    char piece[64 * 1024];
    size_t took = 0;
    for (;;) {
        for (size_t i = 0; i < n; i++) piece[i] = pat(*next + i);
        rdbuf_put_result r = rdbuf_put(b, piece, n);
        if (r == RDBUF_FULL) return took;
        ASSERT_EQ_INT(r, RDBUF_OK);
        *next += n;
        took += n;
    }
}

/* Take up to max bytes and check them against the pattern from *expect on. */
static size_t drain(rdbuf *b, size_t max, size_t *expect)
{
    static char out[2 * 1024 * 1024];
    size_t k = rdbuf_take(b, out, max < sizeof out ? max : sizeof out);
    for (size_t i = 0; i < k; i++)
        if (out[i] != pat(*expect + i)) TH_FAIL_AT("byte %zu of the stream differs", *expect + i);
    *expect += k;
    return k;
}

TEST(a_lone_buffer_grows_to_its_cap_and_keeps_the_order)
{
    rdbuf_pool p;
    rdbuf_pool_init(&p, 8 * MiB, NULL);
    rdbuf b;
    ASSERT_EQ_INT(rdbuf_init(&b, &p, 1 * MiB), 0);
    ASSERT_EQ_INT(rdbuf_size(&b), RDBUF_FLOOR);
    ASSERT_EQ_INT(rdbuf_pool_held(&p), RDBUF_FLOOR);
    size_t next = 0, expect = 0;
    ASSERT_EQ_INT(fill(&b, 16 * KiB, &next), 1 * MiB);
    ASSERT_EQ_INT(rdbuf_size(&b), 1 * MiB);
    ASSERT_EQ_INT(rdbuf_pool_held(&p), 1 * MiB);
    /* half out, refill: the unread bytes move to the front, the order holds, no growth past the cap */
    ASSERT_EQ_INT(drain(&b, 512 * KiB + 100, &expect), 512 * KiB + 100);
    fill(&b, 16 * KiB, &next);
    ASSERT_EQ_INT(rdbuf_size(&b), 1 * MiB);
    while (drain(&b, 300 * KiB, &expect) > 0) {}
    ASSERT_EQ_INT(expect, next);
    rdbuf_free(&b);
    ASSERT_EQ_INT(rdbuf_pool_held(&p), 0);
}

TEST(many_buffers_stay_within_the_limit_plus_a_floor_each)
{
    enum { N = 64 };
    rdbuf_pool p;
    rdbuf_pool_init(&p, 2 * MiB, NULL);
    static rdbuf b[N];
    size_t next[N] = {0}, expect[N] = {0};
    for (int i = 0; i < N; i++) ASSERT_EQ_INT(rdbuf_init(&b[i], &p, 1 * MiB), 0);
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < N; i++) {
            fill(&b[i], 16 * KiB, &next[i]);
            if (rdbuf_pool_held(&p) > 2 * MiB + N * RDBUF_FLOOR)
                TH_FAIL_AT("pool holds %" PRIu64 " bytes", rdbuf_pool_held(&p));
        }
    uint64_t sum = 0;
    for (int i = 0; i < N; i++) {
        ASSERT_TRUE(rdbuf_used(&b[i]) >= 16 * KiB); /* every read can move */
        sum += rdbuf_size(&b[i]);
    }
    ASSERT_EQ_INT(sum, rdbuf_pool_held(&p));
    /* one read ends: its bytes go back and a stalled one may grow again */
    size_t before = rdbuf_size(&b[1]);
    while (drain(&b[0], 1 * MiB, &expect[0]) > 0) {}
    ASSERT_EQ_INT(expect[0], next[0]);
    rdbuf_free(&b[0]);
    fill(&b[1], 16 * KiB, &next[1]);
    ASSERT_TRUE(rdbuf_size(&b[1]) > before);
    for (int i = 1; i < N; i++) {
        while (drain(&b[i], 1 * MiB, &expect[i]) > 0) {}
        ASSERT_EQ_INT(expect[i], next[i]);
        rdbuf_free(&b[i]);
    }
    ASSERT_EQ_INT(rdbuf_pool_held(&p), 0);
}

TEST(a_full_buffer_takes_nothing_and_a_large_piece_fits_an_empty_one)
{
    rdbuf_pool p;
    rdbuf_pool_init(&p, 0, NULL); /* no growth past the floor */
    rdbuf b;
    ASSERT_EQ_INT(rdbuf_init(&b, &p, 1 * MiB), 0);
    size_t next = 0, expect = 0;
    ASSERT_EQ_INT(fill(&b, 5000, &next), (RDBUF_FLOOR / 5000) * 5000);
    size_t used = rdbuf_used(&b);
    char x[5000] = {0};
    ASSERT_EQ_INT(rdbuf_put(&b, x, sizeof x), RDBUF_FULL);
    ASSERT_EQ_INT(rdbuf_used(&b), used);
    while (drain(&b, 7000, &expect) > 0) {}
    ASSERT_EQ_INT(expect, next);
    /* empty: a piece larger than the whole buffer is taken whatever the pool says */
    static char big[40 * 1024];
    for (size_t i = 0; i < sizeof big; i++) big[i] = pat(next + i);
    ASSERT_EQ_INT(rdbuf_put(&b, big, sizeof big), RDBUF_OK);
    next += sizeof big;
    ASSERT_EQ_INT(rdbuf_pool_held(&p), rdbuf_size(&b));
    while (drain(&b, 4096, &expect) > 0) {}
    ASSERT_EQ_INT(expect, next);
    rdbuf_free(&b);
    ASSERT_EQ_INT(rdbuf_pool_held(&p), 0);
}

TESTS(T(a_lone_buffer_grows_to_its_cap_and_keeps_the_order), T(many_buffers_stay_within_the_limit_plus_a_floor_each),
      T(a_full_buffer_takes_nothing_and_a_large_piece_fits_an_empty_one))
