/*
 * fuzz_skey: libFuzzer driver for the Shared Key canonicalizer, signer and verifier and the service
 * SAS string-to-sign. Input lines: method, raw path, raw query (an empty line means none), then
 * request headers as "name:value", one per line; the same lines double as SAS fields and as an
 * Authorization header to verify. Checks: a request we sign always verifies; a tampered signature
 * never does; the two canonicalizations differ only when the query has an empty-valued parameter;
 * a string-to-sign never carries a decoded control byte in its resource part.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "skey.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


#define FZ_MAX_LINES 96

typedef struct fz_hdrs {
    char *name[FZ_MAX_LINES];
    char *value[FZ_MAX_LINES];
    int n;
} fz_hdrs;

static const char *fz_get(void *ctx, const char *name)
{
    fz_hdrs *h = ctx;
    for (int i = 0; i < h->n; i++)
        if (strcasecmp(h->name[i], name) == 0) return h->value[i];
    return NULL;
}

static void fz_each(void *ctx, void (*fn)(void *, const char *, const char *), void *fnctx)
{
    fz_hdrs *h = ctx;
    for (int i = 0; i < h->n; i++)
        fn(fnctx, h->name[i], h->value[i]);
}

/* Split buf (NUL-terminated, modified in place) into at most max lines. */
static int fz_lines(char *buf, char **lines, int max)
{
    int n = 0;
    char *p = buf;
    while (n < max) {
        lines[n++] = p;
        char *nl = strchr(p, '\n');
        if (!nl) break;
        *nl = '\0';
        p = nl + 1;
    }
    return n;
}

static void fz_sas(const skey_key *k, char **l, int n)
{
    const char *f[18];
    for (int i = 0; i < 18; i++)
        f[i] = i < n ? l[i] : NULL;
    skey_sas sas = {.sv = f[0], .sp = f[1], .st = f[2], .se = f[3], .sr = f[4], .si = f[5], .sip = f[6],
                    .spr = f[7], .sdd = f[8], .rscc = f[9], .rscd = f[10], .rsce = f[11], .rscl = f[12],
                    .rsct = f[13], .ses = f[14], .sig = NULL};
    dbuf sts;
    dbuf_init(&sts, 1 << 20);
    int rc = skey_sas_string_to_sign(k, &sas, f[15] ? f[15] : "", f[16], &sts);
    if (rc == 0) {
        char sig[64], sig2[64];
        CHECK(skey_sas_sign(k, &sas, f[15], f[16], sig) == 0);
        CHECK(skey_sas_sign(k, &sas, f[15], f[16], sig2) == 0);
        CHECK(strlen(sig) == 44 && skey_ct_strcmp(sig, sig2) == 0);
    } else {
        CHECK(rc == -EINVAL || rc == -E2BIG);
    }
    dbuf_free(&sts);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 16) return 0;
    char *buf = strndup((const char *)data, size);
    CHECK(buf != NULL);
    char *all = strdup(buf);
    CHECK(all != NULL);
    char *l[FZ_MAX_LINES + 3];
    int n = fz_lines(buf, l, FZ_MAX_LINES + 3);

    skey_key k;
    CHECK(skey_key_init(&k, "fuzzacct", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=") == 0);

    fz_hdrs h = {.n = 0};
    for (int i = 3; i < n; i++) {
        char *colon = strchr(l[i], ':');
        if (!colon) continue;
        *colon = '\0';
        h.name[h.n] = l[i];
        h.value[h.n] = colon + 1;
        h.n++;
    }
    skey_request req = {
        .method = n > 0 ? l[0] : "GET",
        .raw_path = n > 1 ? l[1] : "/",
        .raw_query = n > 2 && l[2][0] ? l[2] : NULL,
        .get = fz_get,
        .each = fz_each,
        .ctx = &h,
    };

    dbuf keep, drop, auth;
    dbuf_init(&keep, 1 << 20);
    dbuf_init(&drop, 1 << 20);
    dbuf_init(&auth, 1024);
    int rk = skey_string_to_sign(&k, &req, SKEY_KEEP_EMPTY_PARAMS, &keep);
    int rd = skey_string_to_sign(&k, &req, SKEY_DROP_EMPTY_PARAMS, &drop);
    CHECK((rk == 0) == (rd == 0));
    if (rk == 0) {
        /* Without empty-valued parameters both canonicalizations are the same string. */
        bool has_empty = false;
        if (req.raw_query) {
            const char *q = req.raw_query;
            while (*q) {
                const char *amp = strchr(q, '&');
                size_t len = amp ? (size_t)(amp - q) : strlen(q);
                const char *eq = memchr(q, '=', len);
                /* "a" or "a=" (a piece with an empty name, "=x", is ignored by both). */
                if (len > 0 && (!eq || (eq == q + len - 1 && eq != q))) has_empty = true;
                if (!amp) break;
                q = amp + 1;
            }
        }
        if (!has_empty) CHECK(keep.len == drop.len && memcmp(keep.data, drop.data, keep.len) == 0);
        CHECK(drop.len <= keep.len);

        CHECK(skey_sign(&k, &req, &auth) == 0);
        CHECK(strncmp(auth.data, "SharedKey fuzzacct:", 19) == 0);
        CHECK(skey_verify(&k, &req, auth.data, NULL) == 0);
        /* Flip one signature character: must be refused. */
        char *sig = auth.data + 19;
        sig[0] = sig[0] == 'A' ? 'B' : 'A';
        dbuf sts;
        dbuf_init(&sts, 1 << 20);
        CHECK(skey_verify(&k, &req, auth.data, &sts) == -EACCES);
        CHECK(sts.len == drop.len && memcmp(sts.data, drop.data, drop.len) == 0);
        dbuf_free(&sts);
    } else {
        CHECK(rk == -EINVAL || rk == -E2BIG);
        CHECK(skey_sign(&k, &req, &auth) != 0);
    }

    /* The raw input as an Authorization header: never crashes, never verifies by accident. */
    int rv = skey_verify(&k, &req, all, NULL);
    CHECK(rv == -EINVAL || rv == -EACCES || rv == -E2BIG || (rv == 0 && strstr(all, "SharedKey") != NULL));

    fz_sas(&k, l, n);

    dbuf_free(&keep);
    dbuf_free(&drop);
    dbuf_free(&auth);
    free(all);
    free(buf);
    return 0;
}
