/* bn_data: the deterministic content the bench writes. Byte o of file f under seed s is a pure function
 * of (s, f, o), so any range can be produced independently (an append at any offset, a retried upload)
 * and the expected SHA-256 of a whole file can be recomputed at verification time without storing it. */
#ifndef DP_BENCH_DATA_H
#define DP_BENCH_DATA_H

#include <stddef.h>
#include <stdint.h>

/** Fills buf with bytes [off, off + len) of file `file` under `seed`. */
void bn_data_fill(uint64_t seed, uint64_t file, uint64_t off, unsigned char *buf, size_t len);
/** SHA-256 of bytes [0, len) of file `file` under `seed`; 0 on success, -1 if OpenSSL fails. */
int bn_data_digest(uint64_t seed, uint64_t file, uint64_t len, unsigned char out[32]);

#endif
