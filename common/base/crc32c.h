/*
 * crc32c: CRC-32C (Castagnoli, reflected polynomial 0x82F63B78, initial value and final XOR
 * 0xFFFFFFFF), the checksum of the journal format (JOURNAL.md) and of iSCSI, ext4 and btrfs. Two
 * implementations give identical results: a portable table-driven one (slicing-by-8) and one using
 * the SSE4.2 CRC32 instruction (8 bytes per instruction, three independent streams over long inputs),
 * picked per call at run time with
 * __builtin_cpu_supports("sse4.2"), so one binary runs on any x86-64 and on other architectures.
 * Pure functions: no state, no allocation, thread-safe.
 */
#ifndef DP_CRC32C_H
#define DP_CRC32C_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/** CRC-32C of n bytes at p (p may be NULL when n is 0). crc32c("123456789", 9) == 0xE3069283. */
uint32_t crc32c(const void *p, size_t n);

/**
 * Continue a CRC: crc32c_extend(crc32c(a), b) == crc32c(a followed by b). crc is a finished CRC
 * value as returned by crc32c (0 for "nothing yet").
 */
uint32_t crc32c_extend(uint32_t crc, const void *p, size_t n);

/**
 * Combine two CRCs: crc32c_combine(crc32c(a), crc32c(b), len_b) == crc32c(a followed by b), without
 * the bytes (len_b is b's length in bytes; any value, 0 gives crc_a back). Shifting crc_a over len_b
 * zero bytes is a multiplication by x^(8 * len_b) modulo the polynomial, done by repeated squaring:
 * about 2 * log2(len_b) carry-less products of 32 steps each, so under a microsecond for any length.
 */
uint32_t crc32c_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b);

/** The portable table-driven path, whatever the CPU (exported so tests can compare both paths). */
uint32_t crc32c_extend_sw(uint32_t crc, const void *p, size_t n);

/** True when the SSE4.2 path is usable on this CPU (false on non-x86 builds). */
bool crc32c_hw_available(void);

/**
 * The SSE4.2 path. Only call it when crc32c_hw_available() is true; on builds without it, it
 * falls back to the table path.
 */
uint32_t crc32c_extend_hw(uint32_t crc, const void *p, size_t n);

#endif
