/*
 * test_b64: RFC 4648 test vectors both ways, the strict decoder (no whitespace, no URL alphabet,
 * padding only at the end, canonical trailing bits), output bounds, and a round trip.
 */
#include <errno.h>

#include "b64.h"
#include "tharness.h"

static const struct {
    const char *plain, *enc;
} vec[] = {
    {"", ""},         {"f", "Zg=="},         {"fo", "Zm8="},         {"foo", "Zm9v"},
    {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"},
};

TEST(rfc4648_encode)
{
    for (size_t i = 0; i < sizeof vec / sizeof vec[0]; i++) {
        size_t n = strlen(vec[i].plain);
        char out[32];
        ASSERT_EQ_INT(b64_encoded_size(n), strlen(vec[i].enc) + 1);
        ASSERT_EQ_INT(b64_encode((const unsigned char *)vec[i].plain, n, out), strlen(vec[i].enc));
        ASSERT_EQ_STR(out, vec[i].enc);
    }
}

TEST(rfc4648_decode)
{
    for (size_t i = 0; i < sizeof vec / sizeof vec[0]; i++) {
        unsigned char out[32];
        long n = b64_decode(vec[i].enc, strlen(vec[i].enc), out, sizeof out);
        ASSERT_EQ_INT(n, strlen(vec[i].plain));
        ASSERT_EQ_MEM(out, vec[i].plain, (size_t)n);
    }
}

TEST(decodes_account_key)
{
    /* The synthetic Shared Key key of protocols.md §3.1: the bytes 0x00..0x1f. */
    const char *k = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    unsigned char out[64];
    ASSERT_EQ_INT(b64_decode(k, strlen(k), out, sizeof out), 32);
    for (int i = 0; i < 32; i++)
        ASSERT_EQ_INT(out[i], i);
}

TEST(rejects_bad_input)
{
    static const char *bad[] = {
        "Zg",       /* length not a multiple of 4 */
        "Zg=",      "Z===",     "====",     "Zg==Zg==", /* padding in the middle */
        "Zm9v Yg==", "Zm9v\nYg=", "Zm-v",    "Zm_v",     /* whitespace, URL alphabet */
        "Zh==",     /* non-zero trailing bits */
        "Zm9=",     /* non-zero trailing bits */
        "Z=g=",     "=Zg=",     "Zm9\x80",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        unsigned char out[32];
        long n = b64_decode(bad[i], strlen(bad[i]), out, sizeof out);
        if (n != -EINVAL) TH_FAIL_AT("\"%s\" decoded to %ld", bad[i], n);
    }
    /* An embedded NUL inside the given length is a bad character. */
    unsigned char out[8];
    ASSERT_EQ_INT(b64_decode("Zm\0v", 4, out, sizeof out), -EINVAL);
}

TEST(output_bound)
{
    unsigned char out[6];
    ASSERT_EQ_INT(b64_decode("Zm9vYmFy", 8, out, 5), -E2BIG);
    ASSERT_EQ_INT(b64_decode("Zm9vYmE=", 8, out, 5), 5);
    ASSERT_EQ_INT(b64_decode("Zm9vYmFy", 8, out, 6), 6);
    ASSERT_EQ_INT(b64_decode("", 0, NULL, 0), 0);
}

TEST(roundtrip)
{
    unsigned char in[300], back[300];
    char enc[512];
    unsigned seed = 12345;
    for (size_t n = 0; n < sizeof in; n++) {
        for (size_t i = 0; i < n; i++) {
            seed = seed * 1103515245u + 12345u;
            in[i] = (unsigned char)(seed >> 16);
        }
        size_t el = b64_encode(in, n, enc);
        ASSERT_EQ_INT(el + 1, b64_encoded_size(n));
        ASSERT_EQ_INT(strlen(enc), el);
        ASSERT_EQ_INT(b64_decode(enc, el, back, sizeof back), n);
        ASSERT_EQ_MEM(back, in, n);
    }
}

TESTS(T(rfc4648_encode), T(rfc4648_decode), T(decodes_account_key), T(rejects_bad_input), T(output_bound),
      T(roundtrip))
