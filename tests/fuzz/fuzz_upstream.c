/*
 * fuzz_upstream: libFuzzer driver for the parsers of what the upstreams and writers send that is not
 * a request line: Gen1's JSON answers (FileStatus, AclStatus, LISTSTATUS pages, {"boolean":..}),
 * Retry-After and RFC 1123 dates, Gen2's x-ms-permissions and x-ms-properties (the proxy's times and
 * digests in them), and aclspec strings. The first input byte
 * picks the parser, the rest is its input. Beyond "no crash, no leak, no UB" it checks their
 * promises: an accepted aclspec formats to a spec that parses to the same entries; listing entries
 * have a usable name; a parsed date formats and parses back to itself; permissions come out in
 * WebHDFS's octal form, which parses back; a Retry-After is a delay or -1; a property set into a list
 * reads back as set, and a parsed CRC-32C digest formats and parses back to itself.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "acl.h"
#include "dbuf.h"
#include "g2answer.h"
#include "xlate.h"
#include "fuzz_check.h"

/* Gen2's facts turned into WebHDFS answers (phase gen2-only, g2answer.c): a HEAD's headers (one per line,
 * in g2a_node_from_head's order), a List Paths page's entries, a getAccessControl answer. What comes out
 * must be JSON a client can read. */
static void check_json(const dbuf *d)
{
    json_error_t je;
    json_t *j = json_loadb(d->data ? d->data : "", d->len, JSON_DECODE_ANY, &je);
    CHECK(j != NULL);
    json_decref(j);
}

static void fuzz_g2answer(char *s, size_t n)
{
    const char *f[9] = {NULL};
    char *p = s;
    for (int i = 0; i < 9 && p; i++) {
        f[i] = p;
        p = strchr(p, '\n');
        if (p) *p++ = '\0';
    }
    g2a_node node;
    dbuf d;
    dbuf_init(&d, 1 << 20);
    if (g2a_node_from_head(f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8], NULL, &node) == 0) {
        CHECK(node.length >= 0 || node.is_dir);
        dbuf_reset(&d);
        if (g2a_filestatus_json(&node, "x", true, &d) == 0) check_json(&d);
    }
    dbuf_reset(&d);
    if (g2a_aclstatus_json(f[0], f[1], f[2], f[3], NULL, &d) == 0) check_json(&d);
    /* the same bytes, whole, as a List Paths page */
    for (size_t i = 0; i < n; i++)
        if (s[i] == '\0') s[i] = '\n';
    json_error_t je;
    json_t *page = json_loadb(s, n, 0, &je);
    json_t *paths = page ? json_object_get(page, "paths") : NULL;
    size_t i;
    json_t *e;
    json_array_foreach(paths, i, e) {
        char leaf[1100];
        if (g2a_node_from_list(e, NULL, &node, leaf, sizeof leaf) != 0) continue;
        dbuf_reset(&d);
        if (g2a_filestatus_json(&node, leaf, false, &d) == 0) check_json(&d);
    }
    json_decref(page);
    dbuf_free(&d);
}

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

/* x-ms-properties from Gen2: the proxy's own properties read out of it (times, SHA-256, CRC-32C). */
static void fuzz_props(const char *s)
{
    char v[256], hex[65];
    int64_t a = -1, b = -1, c = -1;
    uint32_t crc = 0;
    if (xlate_props_get(s, XLATE_TIMES_KEY, v, sizeof v) == 1) (void)xlate_times_parse(v, &a, &b, &c);
    if (xlate_props_get(s, XLATE_DIGEST_KEY, v, sizeof v) == 1) (void)xlate_digest_parse(v, hex, &a);
    if (xlate_props_get(s, XLATE_CRC_KEY, v, sizeof v) == 1 && xlate_crc_parse(v, &crc, &c) == 0) {
        char out[64];
        uint32_t crc2 = 0;
        int64_t c2 = -1;
        CHECK(c >= 0);
        CHECK(xlate_crc_format(crc, c, out, sizeof out) == 0);
        CHECK(xlate_crc_parse(out, &crc2, &c2) == 0 && crc2 == crc && c2 == c);
    }
    /* a well-formed list Gen2 gave, with the digest set into it: the digest reads back as set */
    if (xlate_props_get(s, ",", v, sizeof v) < 0) return; /* (a key no entry has: -1 only for a bad list) */
    dbuf d;
    dbuf_init(&d, 1 << 20);
    xlate_err e;
    if (xlate_props_put(s, XLATE_CRC_KEY, "crc32c=0123abcd,len=42", &d, &e) == 0) {
        CHECK(xlate_props_get(d.data ? d.data : "", XLATE_CRC_KEY, v, sizeof v) == 1);
        CHECK(strcmp(v, "crc32c=0123abcd,len=42") == 0);
    }
    dbuf_free(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > (1u << 20)) return 0;
    unsigned sel = data[0] % 10;
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
    case 7: fuzz_props(s); break;
    case 9: fuzz_g2answer(s, n); break;
    default: (void)xlate_gen1_false(s); break;
    }
    xlate_meta_free(&m);
    free(s);
    return 0;
}
