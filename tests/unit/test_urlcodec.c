/*
 * test_urlcodec: percent-decoding (path and form modes), the control-byte guard that keeps CR/LF/NUL
 * out of anything decoded, encoding, and the zero-copy query splitter.
 */
#include <errno.h>

#include "tharness.h"
#include "urlcodec.h"

static dbuf dec(const char *s, unsigned flags, int *rc)
{
    dbuf b;
    dbuf_init(&b, 4096);
    *rc = url_decode(s, strlen(s), flags, &b);
    return b;
}

#define ASSERT_DECODES(in, flags, want)                                                            \
    do {                                                                                           \
        int rc_;                                                                                   \
        dbuf b_ = dec((in), (flags), &rc_);                                                        \
        ASSERT_EQ_INT(rc_, 0);                                                                     \
        ASSERT_EQ_STR(b_.data, (want));                                                            \
        dbuf_free(&b_);                                                                            \
    } while (0)

#define ASSERT_DECODE_FAILS(in, flags)                                                             \
    do {                                                                                           \
        int rc_;                                                                                   \
        dbuf b_ = dec((in), (flags), &rc_);                                                        \
        ASSERT_EQ_INT(rc_, -EINVAL);                                                               \
        dbuf_free(&b_);                                                                            \
    } while (0)

TEST(decodes_escapes)
{
    ASSERT_DECODES("a%20b", 0, "a b");
    ASSERT_DECODES("%2Fdir%2ffile", 0, "/dir/file");
    ASSERT_DECODES("%C3%A9t%c3%a9", 0, "\xC3\xA9t\xC3\xA9");
    ASSERT_DECODES("100%25", 0, "100%");
    ASSERT_DECODES("%252F", 0, "%2F"); /* decoded exactly once */
    ASSERT_DECODES("", 0, "");
}

TEST(plus_only_decodes_in_form_mode)
{
    ASSERT_DECODES("a+b", 0, "a+b");
    ASSERT_DECODES("a+b", URL_FORM, "a b");
    ASSERT_DECODES("a%2Bb", URL_FORM, "a+b");
}

TEST(rejects_malformed_escapes)
{
    ASSERT_DECODE_FAILS("%G1", 0);
    ASSERT_DECODE_FAILS("%1G", 0);
    ASSERT_DECODE_FAILS("abc%", 0);
    ASSERT_DECODE_FAILS("abc%2", 0);
    ASSERT_DECODE_FAILS("%%41", 0);
    ASSERT_DECODE_FAILS("% 1", URL_FORM);
}

TEST(no_ctl_rejects_control_bytes)
{
    ASSERT_DECODE_FAILS("a%00b", URL_NO_CTL);
    ASSERT_DECODE_FAILS("a%0D%0Ab", URL_NO_CTL);
    ASSERT_DECODE_FAILS("a%0ab", URL_NO_CTL | URL_FORM);
    ASSERT_DECODE_FAILS("a%7F", URL_NO_CTL);
    ASSERT_DECODE_FAILS("a%1f", URL_NO_CTL);
    ASSERT_DECODE_FAILS("a\r\nb", URL_NO_CTL);
    ASSERT_DECODE_FAILS("tab\there", URL_NO_CTL);
    ASSERT_DECODES("a%20b%7E", URL_NO_CTL, "a b~");
    ASSERT_DECODES("\xC3\xA9", URL_NO_CTL, "\xC3\xA9"); /* high bytes are not controls */
}

TEST(without_no_ctl_nul_decodes_as_a_byte)
{
    dbuf b;
    dbuf_init(&b, 64);
    ASSERT_EQ_INT(url_decode("a%00b", 5, 0, &b), 0);
    ASSERT_EQ_INT(b.len, 3);
    ASSERT_EQ_MEM(b.data, "a\0b", 3);
    dbuf_free(&b);
}

TEST(explicit_length_with_embedded_nul)
{
    dbuf b;
    dbuf_init(&b, 64);
    const char in[] = {'a', '\0', 'b', '%', '4', '1'};
    ASSERT_EQ_INT(url_decode(in, sizeof in, URL_NO_CTL, &b), -EINVAL);
    ASSERT_EQ_INT(url_decode(in, sizeof in, 0, &b), 0);
    ASSERT_EQ_INT(b.len, 4);
    ASSERT_EQ_MEM(b.data, "a\0bA", 4);
    /* A length shorter than the string: only that much is read. An escape cut off is malformed. */
    ASSERT_EQ_INT(url_decode("ab%41", 2, 0, &b), 0);
    ASSERT_EQ_STR(b.data, "ab");
    ASSERT_EQ_INT(url_decode("ab%41", 4, 0, &b), -EINVAL);
    dbuf_free(&b);
}

TEST(decode_clears_output_and_respects_limit)
{
    dbuf b;
    dbuf_init(&b, 4);
    ASSERT_EQ_INT(dbuf_adds(&b, "old"), 0);
    ASSERT_EQ_INT(url_decode("ab", 2, 0, &b), 0);
    ASSERT_EQ_STR(b.data, "ab");
    ASSERT_EQ_INT(url_decode("abcd", 4, 0, &b), 0);
    ASSERT_EQ_INT(url_decode("abcde", 5, 0, &b), -E2BIG);
    ASSERT_EQ_INT(url_decode("%41%42%43%44", 12, 0, &b), 0); /* limit counts decoded bytes */
    ASSERT_EQ_STR(b.data, "ABCD");
    dbuf_free(&b);
}

TEST(encodes)
{
    dbuf b;
    dbuf_init(&b, 1024);
    ASSERT_EQ_INT(url_encode("a b/c+d~e.f_g-h", false, &b), 0);
    ASSERT_EQ_STR(b.data, "a%20b%2Fc%2Bd~e.f_g-h");
    dbuf_reset(&b);
    ASSERT_EQ_INT(url_encode("/dir/file name.txt", true, &b), 0);
    ASSERT_EQ_STR(b.data, "/dir/file%20name.txt");
    dbuf_reset(&b);
    ASSERT_EQ_INT(url_encode("\xC3\xA9?&=%#\r\n", true, &b), 0);
    ASSERT_EQ_STR(b.data, "%C3%A9%3F%26%3D%25%23%0D%0A");
    ASSERT_EQ_INT(url_encode("x", false, &b), 0); /* appends */
    ASSERT_EQ_STR(b.data, "%C3%A9%3F%26%3D%25%23%0D%0Ax");
    dbuf_reset(&b);
    ASSERT_EQ_INT(url_encode("", false, &b), 0);
    ASSERT_TRUE(b.data != NULL);
    ASSERT_EQ_STR(b.data, "");
    dbuf_free(&b);

    dbuf_init(&b, 5);
    ASSERT_EQ_INT(url_encode("ab c", false, &b), -E2BIG);
    dbuf_free(&b);
}

TEST(encode_decode_roundtrip_all_bytes)
{
    char all[256];
    for (int i = 1; i < 256; i++)
        all[i - 1] = (char)i;
    all[255] = '\0';
    for (int ks = 0; ks < 2; ks++) {
        dbuf e, d;
        dbuf_init(&e, 4096);
        dbuf_init(&d, 4096);
        ASSERT_EQ_INT(url_encode(all, ks, &e), 0);
        for (size_t i = 0; i < e.len; i++) {
            unsigned char c = (unsigned char)e.data[i];
            ASSERT_TRUE(c > 0x20 && c < 0x7F && c != '+' && c != '&' && c != '?' && c != '=');
        }
        ASSERT_EQ_INT(url_decode(e.data, e.len, URL_FORM, &d), 0);
        ASSERT_EQ_INT(d.len, 255);
        ASSERT_EQ_MEM(d.data, all, 255);
        dbuf_free(&e);
        dbuf_free(&d);
    }
}

TEST(splits_query)
{
    url_param p[8];
    int n = url_split_query("a=1&b=&c&&d=x=y&", p, 8);
    ASSERT_EQ_INT(n, 4);
    ASSERT_EQ_INT(p[0].name_len, 1);
    ASSERT_EQ_MEM(p[0].name, "a", 1);
    ASSERT_EQ_INT(p[0].value_len, 1);
    ASSERT_EQ_MEM(p[0].value, "1", 1);
    ASSERT_TRUE(p[1].value != NULL);
    ASSERT_EQ_INT(p[1].value_len, 0);
    ASSERT_EQ_MEM(p[2].name, "c", 1);
    ASSERT_EQ_INT(p[2].name_len, 1);
    ASSERT_TRUE(p[2].value == NULL);
    ASSERT_EQ_INT(p[3].value_len, 3);
    ASSERT_EQ_MEM(p[3].value, "x=y", 3);

    ASSERT_EQ_INT(url_split_query("", p, 8), 0);
    ASSERT_EQ_INT(url_split_query(NULL, p, 8), 0);
    ASSERT_EQ_INT(url_split_query("&&&", p, 8), 0);
    n = url_split_query("=v", p, 8);
    ASSERT_EQ_INT(n, 1);
    ASSERT_EQ_INT(p[0].name_len, 0);
    ASSERT_EQ_INT(p[0].value_len, 1);
}

TEST(split_refuses_too_many)
{
    url_param p[3];
    ASSERT_EQ_INT(url_split_query("a&b&c", p, 3), 3);
    ASSERT_EQ_INT(url_split_query("a&b&c&d", p, 3), -E2BIG);
    ASSERT_EQ_INT(url_split_query("a&&b&&c&&", p, 3), 3); /* empty pieces do not count */
}

TESTS(T(decodes_escapes), T(plus_only_decodes_in_form_mode), T(rejects_malformed_escapes),
      T(no_ctl_rejects_control_bytes), T(without_no_ctl_nul_decodes_as_a_byte), T(explicit_length_with_embedded_nul),
      T(decode_clears_output_and_respects_limit), T(encodes), T(encode_decode_roundtrip_all_bytes), T(splits_query),
      T(split_refuses_too_many))
