/* bn_data: content generator. Each aligned 8-byte word i of a file is splitmix64(seed, file, i) in
 * little-endian order; unaligned ranges take the needed bytes of their first and last words. About 1 ns
 * per word, so generating bodies costs far less than sending them. */
#include "data.h"

#include <openssl/evp.h>
#include <string.h>

static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static uint64_t word(uint64_t key, uint64_t i)
{
    return mix(key ^ (i * 0xd6e8feb86659fd93ull));
}

/* Copies bytes [skip, skip + n) of word w, least significant byte first. */
static void put_word(unsigned char *dst, uint64_t w, size_t skip, size_t n)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    if (skip == 0 && n == 8) {
        memcpy(dst, &w, 8);
        return;
    }
#endif
    for (size_t k = 0; k < n; k++)
        dst[k] = (unsigned char)(w >> (8 * (skip + k)));
}

void bn_data_fill(uint64_t seed, uint64_t file, uint64_t off, unsigned char *buf, size_t len)
{
    uint64_t key = mix(seed ^ mix(file + 0x632be59bd9b4e019ull));
    size_t done = 0;
    while (done < len) {
        uint64_t o = off + done;
        size_t skip = (size_t)(o % 8);
        size_t n = 8 - skip;
        if (n > len - done)
            n = len - done;
        put_word(buf + done, word(key, o / 8), skip, n);
        done += n;
    }
}

int bn_data_digest(uint64_t seed, uint64_t file, uint64_t len, unsigned char out[32])
{
    int rc = -1;
    unsigned char buf[65536];
    unsigned int outlen = 0;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
        goto out;
    for (uint64_t off = 0; off < len;) {
        size_t n = len - off > sizeof(buf) ? sizeof(buf) : (size_t)(len - off);
        bn_data_fill(seed, file, off, buf, n);
        if (EVP_DigestUpdate(md, buf, n) != 1)
            goto out;
        off += n;
    }
    if (EVP_DigestFinal_ex(md, out, &outlen) != 1 || outlen != 32)
        goto out;
    rc = 0;
out:
    EVP_MD_CTX_free(md);
    return rc;
}
