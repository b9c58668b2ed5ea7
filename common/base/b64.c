/*
 * b64: standard base64 (RFC 4648 section 4) with '=' padding. The decoder is strict: the length must
 * be a multiple of four, padding may only appear at the end (at most two '='), whitespace and the
 * URL-safe alphabet are rejected, and the unused low bits of the last symbol must be zero, so one
 * encoded form maps to exactly one byte string.
 */
#include "b64.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

static const char b64_alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t b64_encoded_size(size_t n)
{
    return (n + 2) / 3 * 4 + 1;
}

size_t b64_encode(const unsigned char *in, size_t n, char *out)
{
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = b64_alpha[(v >> 18) & 63];
        out[o++] = b64_alpha[(v >> 12) & 63];
        out[o++] = b64_alpha[(v >> 6) & 63];
        out[o++] = b64_alpha[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = b64_alpha[(v >> 18) & 63];
        out[o++] = b64_alpha[(v >> 12) & 63];
        out[o++] = '=';
        out[o++] = '=';
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = b64_alpha[(v >> 18) & 63];
        out[o++] = b64_alpha[(v >> 12) & 63];
        out[o++] = b64_alpha[(v >> 6) & 63];
        out[o++] = '=';
    }
    out[o] = '\0';
    return o;
}

/* Value of one base64 symbol, or -1. */
static int b64_val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

long b64_decode(const char *in, size_t len, unsigned char *out, size_t outcap)
{
    if (len % 4 != 0) return -EINVAL;
    if (len / 4 > (size_t)(LONG_MAX / 3)) return -E2BIG;
    size_t pad = 0;
    if (len >= 4 && in[len - 1] == '=') {
        pad = 1;
        if (in[len - 2] == '=') pad = 2;
    }
    size_t outlen = len / 4 * 3 - pad;
    if (outlen > outcap) return -E2BIG;
    size_t o = 0;
    for (size_t i = 0; i < len; i += 4) {
        bool last = (i + 4 == len);
        int v[4];
        for (int j = 0; j < 4; j++) {
            unsigned char c = (unsigned char)in[i + (size_t)j];
            if (c == '=' && last && j >= 4 - (int)pad) {
                v[j] = 0;
                continue;
            }
            v[j] = b64_val(c);
            if (v[j] < 0) return -EINVAL;
        }
        uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        if (last && pad == 2) {
            if (w & 0xFFFF) return -EINVAL; /* non-canonical trailing bits */
            out[o++] = (unsigned char)(w >> 16);
        } else if (last && pad == 1) {
            if (w & 0xFF) return -EINVAL;
            out[o++] = (unsigned char)(w >> 16);
            out[o++] = (unsigned char)(w >> 8);
        } else {
            out[o++] = (unsigned char)(w >> 16);
            out[o++] = (unsigned char)(w >> 8);
            out[o++] = (unsigned char)w;
        }
    }
    return (long)o;
}
