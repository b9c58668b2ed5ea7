/*
 * fuzz_upstream: libFuzzer driver for the parsers of what the upstreams and writers send that is not
 * a request line: Gen1's JSON answers (FileStatus, AclStatus, LISTSTATUS pages, {"boolean":..}),
 * Retry-After and RFC 1123 dates, Gen2's x-ms-permissions, and aclspec strings. The first input byte
 * picks the parser, the rest is its input. Beyond "no crash, no leak, no UB" it checks their
 * promises: an accepted aclspec formats to a spec that parses to the same entries; listing entries
 * have a usable name; a parsed date formats and parses back to itself; permissions come out in
 * WebHDFS's octal form, which parses back; a Retry-After is a delay or -1.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acl.h"
#include "dbuf.h"
#include "xlate.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


static void fuzz_acl(const char *s, bool with_perm)
{
    acl_list a, b;
    acl_err e;
    if (acl_parse(s, with_perm, &a, &e) != 0) return;
    dbuf f;
    dbuf_init(&f, 1 << 20);
    CHECK(acl_format(&a, &f) == 0);
    CHECK(acl_parse(f.data, with_perm, &b, &e) == 0);
    CHECK(a.n == b.n);
    dbuf g;
    dbuf_init(&g, 1 << 20);
    CHECK(acl_format(&b, &g) == 0);
    CHECK(f.len == g.len && memcmp(f.data, g.data, f.len) == 0);
    dbuf_free(&f);
    dbuf_free(&g);
}

static void fuzz_listing(const char *s, size_t n)
{
    xlate_listing l;
    xlate_err e;
    memset(&l, 0, sizeof l);
    if (xlate_liststatus_parse(s, n, &l, &e) != 0) return;
    CHECK(l.n >= 0 && l.n <= XLATE_LIST_MAX_ENTRIES);
    for (int i = 0; i < l.n; i++) {
        const char *name = l.v[i].name;
        CHECK(name && name[0] && strchr(name, '/') == NULL);
        CHECK(strcmp(name, ".") != 0 && strcmp(name, "..") != 0);
        CHECK(l.v[i].status != NULL);
        xlate_meta m;
        memset(&m, 0, sizeof m);
        (void)xlate_meta_from_filestatus(l.v[i].status, strlen(l.v[i].status), &m, &e);
        xlate_meta_free(&m);
    }
    CHECK(!l.token || l.token[0]);
    xlate_listing_free(&l);
}

static void fuzz_date(const char *s)
{
    int64_t ms = 0, back = 0;
    if (xlate_rfc1123_parse(s, &ms) != 0) return;
    char out[32];
    xlate_rfc1123_format(ms, out);
    CHECK(xlate_rfc1123_parse(out, &back) == 0);
    CHECK(back == ms - ms % 1000 || back == ms);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > (1u << 20)) return 0;
    unsigned sel = data[0] % 8;
    size_t n = size - 1;
    char *s = malloc(n + 1);
    if (!s) return 0;
    memcpy(s, data + 1, n);
    s[n] = '\0';
    xlate_err e;
    xlate_meta m;
    memset(&m, 0, sizeof m);
    switch (sel) {
    case 0: fuzz_acl(s, true); break;
    case 1: fuzz_acl(s, false); break;
    case 2:
        (void)xlate_meta_from_filestatus(s, n, &m, &e);
        (void)xlate_meta_from_aclstatus(s, n, &m, &e);
        break;
    case 3: fuzz_listing(s, n); break;
    case 4: {
        int64_t d = xlate_retry_after_ms(s, 1700000000000);
        CHECK(d >= -1);
        break;
    }
    case 5: fuzz_date(s); break;
    case 6: {
        char out[8];
        bool acl_bit = false;
        if (xlate_perm_to_octal(s, out, &acl_bit, &e) == 0) {
            /* WebHDFS's form: octal without leading zeros ("75" for 075, as Hadoop prints it) */
            size_t l = strlen(out);
            CHECK(l >= 1 && l <= 4);
            for (size_t i = 0; i < l; i++) CHECK(out[i] >= '0' && out[i] <= '7');
            uint16_t mode = 0;
            acl_err ae;
            CHECK(acl_parse_octal(out, &mode, &ae) == 0);
        }
        break;
    }
    default: (void)xlate_gen1_false(s); break;
    }
    xlate_meta_free(&m);
    free(s);
    return 0;
}
