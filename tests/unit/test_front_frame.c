/*
 * test_front_frame: the front end's header and framing checks (proxy/front_frame.c), case by case: what
 * RFC 9112 lets through (Content-Length, chunked, Content-Length beside chunked served as chunked and
 * closed, HTAB and obs-text in values, HTTP/1.0 without Host) and what it refuses with which status
 * (differing or malformed lengths, transfer codings, Host count, names that are not tokens, control bytes,
 * too many fields); ff_in_place on a header section laid out the way libmicrohttpd 0.9.75 leaves it, with
 * and without a folded line or a NUL; ff_query_params.
 */
#include <string.h>

#include "front_frame.h"
#include "tharness.h"

/* "Name: value" lines separated by '|' into fields (the value starts after ": "). */
static size_t fields(const char *spec, ff_field *out, size_t cap, char *store, size_t storelen)
{
    size_t n = 0, len = strlen(spec);
    if (len == 0) return 0;
    memcpy(store, spec, len + 1 < storelen ? len + 1 : storelen);
    char *p = store;
    while (p && *p && n < cap) {
        char *bar = strchr(p, '|');
        if (bar) *bar = '\0';
        char *colon = strstr(p, ": ");
        out[n].name = p;
        out[n].name_len = colon ? (size_t)(colon - p) : strlen(p);
        out[n].value = colon ? colon + 2 : "";
        out[n].value_len = strlen(out[n].value);
        n++;
        p = bar ? bar + 1 : NULL;
    }
    return n;
}

/* ff_check of spec under version: the status (0 when accepted) and the framing in *fr. */
static int check(const char *version, const char *spec, ff_frame *fr)
{
    ff_field f[FF_MAX_FIELDS + 2];
    char store[8192];
    size_t n = fields(spec, f, sizeof f / sizeof f[0], store, sizeof store);
    whreq_err e = {0};
    ff_frame tmp;
    return ff_check(version, f, n, fr ? fr : &tmp, &e) == 0 ? 0 : e.status;
}

TEST(accepts_well_formed_framing)
{
    ff_frame fr;
    ASSERT_EQ_INT(check("HTTP/1.1", "Host: x|Content-Length: 5", &fr), 0);
    ASSERT_TRUE(fr.content_length == 5 && !fr.chunked && !fr.must_close);
    ASSERT_EQ_INT(check("HTTP/1.1", "host: x|transfer-encoding: CHUNKED", &fr), 0);
    ASSERT_TRUE(fr.content_length == -1 && fr.chunked && !fr.must_close);
    ASSERT_EQ_INT(check("HTTP/1.1", "Host: x|Transfer-Encoding:  chunked \t", &fr), 0);
    ASSERT_EQ_INT(check("HTTP/1.1", "Host: x", &fr), 0);
    ASSERT_TRUE(fr.content_length == -1 && !fr.chunked);
    ASSERT_EQ_INT(check("HTTP/1.0", "", &fr), 0);
    ASSERT_EQ_INT(check("HTTP/1.1", "Host: x|Content-Length: 7|Content-Length: 007", &fr), 0);
    ASSERT_TRUE(fr.content_length == 7);
    ASSERT_EQ_INT(check("HTTP/1.1", "Host: x|X-Tab: a\tb|X-Obs: caf\xc3\xa9|X-Empty: ", NULL), 0);
    ASSERT_EQ_INT(check("HTTP/1.1", "Host: x|x_odd.name~!#$%&'*+^`: v", NULL), 0);
}

TEST(length_beside_chunked_is_served_as_chunked_then_closed)
{
    ff_frame fr;
    ASSERT_EQ_INT(check("HTTP/1.1", "Host: x|Content-Length: 5|Transfer-Encoding: chunked", &fr), 0);
    ASSERT_TRUE(fr.chunked && fr.must_close && fr.content_length == -1);
    ASSERT_EQ_INT(check("HTTP/1.1", "Host: x|Transfer-Encoding: chunked|Content-Length: 0", &fr), 0);
    ASSERT_TRUE(fr.chunked && fr.must_close);
    ASSERT_EQ_INT(check("HTTP/1.1", "Host: x|Content-Length: 5x|Transfer-Encoding: chunked", NULL), 400);
    ASSERT_EQ_INT(check("HTTP/1.1", "Host: x|Content-Length: 5|Transfer-Encoding: gzip, chunked", NULL), 501);
    ASSERT_EQ_INT(check("HTTP/1.0", "Content-Length: 5|Transfer-Encoding: chunked", NULL), 400);
}

TEST(refuses_ambiguous_or_malformed_framing)
{
    ASSERT_EQ_INT(check("HTTP/1.1", "Host: x|Content-Length: 0|Content-Length: 5", NULL), 400);
    ASSERT_EQ_INT(check("HTTP/1.1", "Host: x|Content-Length: ", NULL), 400);
    ASSERT_EQ_INT(check("HTTP/1.1", "Host: x|Content-Length: -1", NULL), 400);
    ASSERT_EQ_INT(check("HTTP/1.1", "Host: x|Content-Length: +1", NULL), 400);
    ASSERT_EQ_INT(check("HTTP/1.1", "Host: x|Content-Length: 1 ", NULL), 400);
    ASSERT_EQ_INT(check("HTTP/1.1", "Host: x|Content-Length: 5, 5", NULL), 400);
    ASSERT_EQ_INT(check("HTTP/1.1", "Host: x|Content-Length: 99999999999999999999", NULL), 400);
    ASSERT_EQ_INT(check("HTTP/1.1", "Host: x|Content-Length: 9223372036854775808", NULL), 400);
    ASSERT_EQ_INT(check("HTTP/1.1", "Host: x|Transfer-Encoding: gzip, chunked", NULL), 501);
    ASSERT_EQ_INT(check("HTTP/1.1", "Host: x|Transfer-Encoding: chunked, gzip", NULL), 400);
    ASSERT_EQ_INT(check("HTTP/1.1", "Host: x|Transfer-Encoding: gzip", NULL), 400);
    ASSERT_EQ_INT(check("HTTP/1.1", "Host: x|Transfer-Encoding: chunked, chunked", NULL), 400);
    ASSERT_EQ_INT(check("HTTP/1.1", "Host: x|Transfer-Encoding: ", NULL), 400);
    ASSERT_EQ_INT(check("HTTP/1.1", "Host: x|Transfer-Encoding: chunked|Transfer-Encoding: chunked", NULL), 400);
    ASSERT_EQ_INT(check("HTTP/1.0", "Transfer-Encoding: chunked", NULL), 400);
}

TEST(refuses_bad_fields)
{
    ASSERT_EQ_INT(check("HTTP/1.1", "Content-Length: 0", NULL), 400);                  /* no Host */
    ASSERT_EQ_INT(check("HTTP/1.1", "Host: x|Host: y", NULL), 400);
    ASSERT_EQ_INT(check("HTTP/1.0", "Host: x|Host: x", NULL), 400);
    ASSERT_EQ_INT(check("HTTP/1.1", "Host: x|Content-Length : 0", NULL), 400);         /* space before colon */
    ASSERT_EQ_INT(check("HTTP/1.1", "Host: x|X\tY: 0", NULL), 400);
    ASSERT_EQ_INT(check("HTTP/1.1", "Host: x|: empty name", NULL), 400);
    ASSERT_EQ_INT(check("HTTP/1.1", "Host: x|X(Y): 0", NULL), 400);
    ASSERT_EQ_INT(check("HTTP/1.1", "Host: x|Authorization: Bearer a\rb", NULL), 400);
    ASSERT_EQ_INT(check("HTTP/1.1", "Host: x|X: a\nb", NULL), 400);
    ASSERT_EQ_INT(check("HTTP/1.1", "Host: x|X: a\x01", NULL), 400);
    ASSERT_EQ_INT(check("HTTP/1.1", "Host: x|X: a\x7f", NULL), 400);
    ASSERT_EQ_INT(check("HTTP/1.1", "Host: x\x1b", NULL), 400);
}

TEST(too_many_fields_is_431)
{
    char spec[8192] = "Host: x";
    for (int i = 0; i < FF_MAX_FIELDS - 1; i++) strcat(spec, "|a: b");
    ASSERT_EQ_INT(check("HTTP/1.1", spec, NULL), 0);
    strcat(spec, "|a: b");
    ASSERT_EQ_INT(check("HTTP/1.1", spec, NULL), 431);
}

/* MHD's in-place layout of "Host: x\r\nX-A:  v\nX-B:\r\n\r\n". */
TEST(in_place_layout)
{
    static const char buf[] = "Host\0x\0\0X-A\0  v\0X-B\0\0\0\0\0";
    ff_field f[3] = {
        {buf, 4, buf + 5, 1},
        {buf + 8, 3, buf + 14, 1},
        {buf + 16, 3, buf + 20, 0},
    };
    ASSERT_TRUE(ff_in_place(f, 3));
    ASSERT_TRUE(ff_in_place(f, 0));
    /* a folded line: MHD moved the joined name elsewhere */
    static const char joined[] = "X-Acontinued";
    ff_field g[3] = {f[0], {joined, 12, buf + 14, 1}, f[2]};
    ASSERT_TRUE(!ff_in_place(g, 3));
    /* "X-A: v\0junk\r\n": the value stops at the NUL and the next name is not right after it */
    static const char nul[] = "Host\0x\0\0X-A\0v\0junk\0\0X-B\0y\0\0\0\0";
    ff_field h[3] = {
        {nul, 4, nul + 5, 1},
        {nul + 8, 3, nul + 12, 1},
        {nul + 20, 3, nul + 24, 1},
    };
    ASSERT_TRUE(!ff_in_place(h, 3));
    /* the same NUL in the last field: what follows the value is not the end of the section */
    ASSERT_TRUE(!ff_in_place(h, 2));
}

TEST(query_parameters)
{
    ASSERT_TRUE(ff_query_params("") == 0);
    ASSERT_TRUE(ff_query_params(NULL) == 0);
    ASSERT_TRUE(ff_query_params("op=MKDIRS") == 1);
    ASSERT_TRUE(ff_query_params("op=CREATE&write=true&&x") == 4);
}

TESTS(T(accepts_well_formed_framing), T(length_beside_chunked_is_served_as_chunked_then_closed),
      T(refuses_ambiguous_or_malformed_framing), T(refuses_bad_fields), T(too_many_fields_is_431),
      T(in_place_layout), T(query_parameters))
