/*
 * test_crc32c: CRC-32C against published check values (RFC 3720 appendix B.4 and the "123456789"
 * check value of the CRC catalogue), the table path and the SSE4.2 path against each other on
 * every length and alignment that exercises their head, 8-byte body and tail loops (the three-stream
 * blocks of the SSE4.2 path too), and the extend
 * rule that lets a caller checksum data in pieces.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"
#include "tharness.h"

TEST(check_values)
{
    uint8_t b[32];
    ASSERT_EQ_INT(crc32c("123456789", 9), 0xE3069283u);
    ASSERT_EQ_INT(crc32c_extend_sw(0, "123456789", 9), 0xE3069283u);
    ASSERT_EQ_INT(crc32c(NULL, 0), 0);
    memset(b, 0, sizeof b);
    ASSERT_EQ_INT(crc32c(b, 32), 0x8A9136AAu);
    memset(b, 0xff, sizeof b);
    ASSERT_EQ_INT(crc32c(b, 32), 0x62A8AB43u);
    for (int i = 0; i < 32; i++) b[i] = (uint8_t)i;
    ASSERT_EQ_INT(crc32c(b, 32), 0x46DD794Eu);
    for (int i = 0; i < 32; i++) b[i] = (uint8_t)(31 - i);
    ASSERT_EQ_INT(crc32c_extend_sw(0, b, 32), 0x113FDB5Cu);
}

TEST(hw_equals_sw)
{
    if (!crc32c_hw_available()) TH_SKIP_NOW("no SSE4.2 on this CPU");
    static uint8_t buf[4096 + 16];
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; i < sizeof buf; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        buf[i] = (uint8_t)x;
    }
    ASSERT_EQ_INT(crc32c_extend_hw(0, "123456789", 9), 0xE3069283u);
    for (size_t align = 0; align < 8; align++)
        for (size_t n = 0; n <= 1100; n++) {
            uint32_t seed = (uint32_t)(n * 2654435761u);
            uint32_t a = crc32c_extend_sw(seed, buf + align, n), b = crc32c_extend_hw(seed, buf + align, n);
            if (a != b) TH_FAIL_AT("align %zu len %zu: sw %08x hw %08x", align, n, a, b);
        }
    ASSERT_EQ_INT(crc32c_extend_sw(7, buf, sizeof buf), crc32c_extend_hw(7, buf, sizeof buf));
}

/* The three-stream path (inputs of 3 x 8 KiB and more): every alignment, lengths around one and two whole
 * blocks, and its lane shift constant recomputed with crc32c_combine. */
TEST(hw_three_streams)
{
    ASSERT_EQ_INT(crc32c_combine(0x80000000u, 0, 8192), 0x28461564u); /* CRC32C_LANE_SHIFT: x^(8*8192) */
    if (!crc32c_hw_available()) TH_SKIP_NOW("no SSE4.2 on this CPU");
    size_t cap = 3 * 3 * 8192 + 64;
    uint8_t *buf = malloc(cap);
    ASSERT_TRUE(buf != NULL);
    uint64_t x = 0x2545F4914F6CDD1Dull;
    for (size_t i = 0; i < cap; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        buf[i] = (uint8_t)x;
    }
    static const size_t lens[] = {3 * 8192 - 1, 3 * 8192, 3 * 8192 + 1, 3 * 8192 + 7, 3 * 8192 + 8, 4 * 8192 + 13,
                                  6 * 8192 - 8, 6 * 8192, 6 * 8192 + 9, 9 * 8192};
    for (size_t align = 0; align < 8; align++)
        for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++) {
            uint32_t seed = (uint32_t)(lens[k] * 40503u + align);
            uint32_t a = crc32c_extend_sw(seed, buf + align, lens[k]), b = crc32c_extend_hw(seed, buf + align, lens[k]);
            if (a != b) TH_FAIL_AT("align %zu len %zu: sw %08x hw %08x", align, lens[k], a, b);
        }
    /* and in pieces that cut blocks anywhere */
    uint32_t whole = crc32c_extend_sw(0, buf, cap), c = 0;
    for (size_t off = 0, step = 5000; off < cap; off += step, step = step * 3 % 40000 + 1)
        c = crc32c_extend_hw(c, buf + off, off + step <= cap ? step : cap - off);
    ASSERT_EQ_INT(c, whole);
    free(buf);
}

TEST(extend_composes)
{
    static const char text[] = "the quick brown fox jumps over the lazy dog, twice over";
    size_t n = sizeof text - 1;
    uint32_t whole = crc32c(text, n);
    for (size_t cut = 0; cut <= n; cut++) {
        ASSERT_EQ_INT(crc32c_extend(crc32c(text, cut), text + cut, n - cut), whole);
        ASSERT_EQ_INT(crc32c_extend_sw(crc32c_extend_sw(0, text, cut), text + cut, n - cut), whole);
    }
    /* A changed byte changes the CRC (single-bit errors are always detected). */
    char copy[sizeof text];
    memcpy(copy, text, sizeof text);
    for (size_t i = 0; i < n; i++) {
        copy[i] ^= 0x10;
        ASSERT_TRUE(crc32c(copy, n) != whole);
        copy[i] ^= 0x10;
    }
}

/* crc32c_combine against the CRC of the concatenation: every cut of a text, empty sides. */
TEST(combine_cuts)
{
    static const char text[] = "appended in bursts: each burst's CRC is combined with the file's so far";
    size_t n = sizeof text - 1;
    uint32_t whole = crc32c(text, n);
    for (size_t cut = 0; cut <= n; cut++)
        ASSERT_EQ_INT(crc32c_combine(crc32c(text, cut), crc32c(text + cut, n - cut), n - cut), whole);
    ASSERT_EQ_INT(crc32c_combine(whole, crc32c(NULL, 0), 0), whole);
    ASSERT_EQ_INT(crc32c_combine(0, whole, n), whole); /* nothing before */
    ASSERT_EQ_INT(crc32c_combine(0, 0, 0), 0);
    /* three pieces, combined left to right and right to left */
    for (size_t i = 0; i <= n; i += 7)
        for (size_t j = i; j <= n; j += 5) {
            uint32_t a = crc32c(text, i), b = crc32c(text + i, j - i), c = crc32c(text + j, n - j);
            ASSERT_EQ_INT(crc32c_combine(crc32c_combine(a, b, j - i), c, n - j), whole);
            ASSERT_EQ_INT(crc32c_combine(a, crc32c_combine(b, c, n - j), n - i), whole);
        }
}

/* Random pieces of random lengths (up to 64 KiB): combine equals extend, every length's bits used. */
TEST(combine_random)
{
    static uint8_t buf[1 << 17];
    uint64_t x = 0x243F6A8885A308D3ull;
    for (size_t i = 0; i < sizeof buf; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        buf[i] = (uint8_t)x;
    }
    for (int k = 0; k < 2000; k++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        size_t la = (size_t)(x % 65536), lb = (size_t)((x >> 20) % 65536);
        if (k < 17) lb = (size_t)1 << k; /* every power of two up to 64 KiB */
        uint32_t a = crc32c(buf, la), b = crc32c(buf + la, lb);
        uint32_t want = crc32c_extend(a, buf + la, lb);
        if (crc32c_combine(a, b, lb) != want) TH_FAIL_AT("la %zu lb %zu", la, lb);
    }
}

/* Large lengths: 64 MiB of zeros built by doubling equals the direct CRC; past 4 GiB (2^32 and more,
 * beyond any size_t piece a caller checksums at once) the combine stays associative. */
TEST(combine_large)
{
    size_t mb = 64u << 20;
    uint8_t *z = calloc(1, mb);
    ASSERT_TRUE(z != NULL);
    uint32_t direct = crc32c(z, mb);
    uint32_t zc = crc32c(z, 1);
    for (uint64_t len = 1; len < mb; len *= 2) zc = crc32c_combine(zc, zc, len); /* zeros(2 len) */
    ASSERT_EQ_INT(zc, direct);
    /* 1 MiB + 1 of data after 64 MiB of zeros */
    memset(z, 0x5a, (1u << 20) + 1);
    ASSERT_EQ_INT(crc32c_combine(direct, crc32c(z, (1u << 20) + 1), (1u << 20) + 1),
                  crc32c_extend(direct, z, (1u << 20) + 1));
    free(z);
    uint32_t a = 0x12345678u, b = 0x9abcdef0u, c = 0x0f1e2d3cu;
    uint64_t big[] = {(uint64_t)1 << 32, ((uint64_t)1 << 32) + 1, (uint64_t)5 << 33, (uint64_t)1 << 40,
                      UINT64_MAX / 3};
    for (size_t i = 0; i < sizeof big / sizeof big[0]; i++)
        for (size_t j = 0; j < sizeof big / sizeof big[0]; j++) {
            uint64_t lb = big[i], lc = big[j] / 7;
            ASSERT_EQ_INT(crc32c_combine(crc32c_combine(a, b, lb), c, lc),
                          crc32c_combine(a, crc32c_combine(b, c, lc), lb + lc));
        }
    /* the shift is a multiplication: shifting by m then n is shifting by m + n */
    uint64_t m = ((uint64_t)3 << 32) + 12345, n = ((uint64_t)1 << 35) + 7;
    ASSERT_EQ_INT(crc32c_combine(crc32c_combine(a, 0, m), 0, n), crc32c_combine(a, 0, m + n));
}

TESTS(T(check_values), T(hw_equals_sw), T(hw_three_streams), T(extend_composes), T(combine_cuts), T(combine_random), T(combine_large));
