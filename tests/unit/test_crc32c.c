/*
 * test_crc32c: CRC-32C against published check values (RFC 3720 appendix B.4 and the "123456789"
 * check value of the CRC catalogue), the table path and the SSE4.2 path against each other on
 * every length and alignment that exercises their head, 8-byte body and tail loops, and the extend
 * rule that lets a caller checksum data in pieces.
 */
#include <stdint.h>

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

TESTS(T(check_values), T(hw_equals_sw), T(extend_composes));
