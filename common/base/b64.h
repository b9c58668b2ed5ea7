/*
 * b64: standard base64 (RFC 4648, with padding), used for Shared Key keys and signatures and for
 * x-ms-properties values.
 */
#ifndef DP_B64_H
#define DP_B64_H

#include <stddef.h>

/** Bytes needed to encode n bytes, including the NUL. */
size_t b64_encoded_size(size_t n);
/** Encode n bytes into out (b64_encoded_size(n) bytes). Returns the string length. */
size_t b64_encode(const unsigned char *in, size_t n, char *out);
/**
 * Decode a base64 string of length len into out (room for at most outcap bytes). Whitespace is not
 * allowed. Returns the decoded length, or -EINVAL for bad input, -E2BIG when out is too small.
 */
long b64_decode(const char *in, size_t len, unsigned char *out, size_t outcap);

#endif
