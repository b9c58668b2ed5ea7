/*
 * skey: Azure Storage Shared Key and service SAS signing and verification (protocols.md §3.1-3.2).
 *
 * The Shared Key string-to-sign is: the verb, eleven standard header slots, the canonicalized x-ms-*
 * headers (one "name:value\n" line each, names lower-cased and byte-sorted, values left-trimmed and
 * unfolded, repeated headers joined with ','), then the canonicalized resource "/" + account + raw
 * path followed by one "\nname:value" line per query parameter (names lower-cased, values
 * form-decoded, several values sorted and joined with ','). Real SDKs disagree about query parameters whose value is empty (JS and
 * ABFS leave them out, Python and Go keep "name:"), so the canonicalization takes the variant as an
 * argument and the verifier tries both. Decoded query bytes may not be control characters: a
 * decoded "\n" could otherwise forge an extra canonical line.
 *
 * All inputs come from clients when verifying, so every collection is bounded (SKEY_MAX_XMS headers,
 * SKEY_MAX_QPARAMS parameters, SKEY_MAX_STS bytes of string-to-sign). No logging; the key is only
 * ever used as an HMAC key.
 */
#include "skey.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "b64.h"
#include "urlcodec.h"

#define SKEY_MAX_XMS 64         /* distinct x-ms-* headers in one request */
#define SKEY_MAX_QPARAMS 128    /* query parameters in one request */
#define SKEY_MAX_HDRVAL 16384   /* bytes of one canonicalized header value (joined) */
#define SKEY_MAX_STS (1u << 20) /* bytes of one string-to-sign */

int skey_key_init(skey_key *k, const char *account, const char *key_b64)
{
    memset(k, 0, sizeof *k);
    if (!account || !key_b64) return -EINVAL;
    size_t al = strlen(account);
    if (al == 0 || al >= sizeof k->account) return -EINVAL;
    for (size_t i = 0; i < al; i++) {
        unsigned char c = (unsigned char)account[i];
        if (c <= 0x20 || c == 0x7F || c == ':' || c == '/') return -EINVAL;
    }
    long n = b64_decode(key_b64, strlen(key_b64), k->key, sizeof k->key);
    if (n <= 0) {
        OPENSSL_cleanse(k, sizeof *k);
        return -EINVAL;
    }
    memcpy(k->account, account, al + 1);
    k->key_len = (size_t)n;
    return 0;
}

/* ---- canonicalized headers ---- */

typedef struct skey_hdr {
    char name[64];
    dbuf value;
} skey_hdr;

typedef struct skey_hdrs {
    skey_hdr h[SKEY_MAX_XMS];
    int n;
    int err;
} skey_hdrs;

static void skey_collect(void *ctx, const char *name, const char *value)
{
    skey_hdrs *hs = ctx;
    if (hs->err || !name) return;
    if (strncasecmp(name, "x-ms-", 5) != 0) return;
    size_t nl = strlen(name);
    if (nl >= sizeof hs->h[0].name) {
        hs->err = -E2BIG;
        return;
    }
    char lname[sizeof hs->h[0].name];
    for (size_t i = 0; i <= nl; i++) {
        char c = name[i];
        lname[i] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    }
    if (!value) value = "";
    while (*value == ' ' || *value == '\t')
        value++;
    skey_hdr *slot = NULL;
    for (int i = 0; i < hs->n; i++) {
        if (strcmp(hs->h[i].name, lname) == 0) {
            slot = &hs->h[i];
            break;
        }
    }
    int rc = 0;
    if (slot) {
        rc = dbuf_add(&slot->value, ",", 1);
    } else {
        if (hs->n >= SKEY_MAX_XMS) {
            hs->err = -E2BIG;
            return;
        }
        slot = &hs->h[hs->n++];
        memcpy(slot->name, lname, nl + 1);
        dbuf_init(&slot->value, SKEY_MAX_HDRVAL);
    }
    /* Unfold: a line break and the white space after it become one space. */
    const char *v = value;
    while (!rc && *v) {
        size_t run = strcspn(v, "\r\n");
        rc = dbuf_add(&slot->value, v, run);
        v += run;
        if (!rc && *v) {
            while (*v == '\r' || *v == '\n' || *v == ' ' || *v == '\t')
                v++;
            rc = dbuf_add(&slot->value, " ", 1);
        }
    }
    if (rc) hs->err = rc;
}

static int skey_hdr_cmp(const void *a, const void *b)
{
    return strcmp(((const skey_hdr *)a)->name, ((const skey_hdr *)b)->name);
}

/* ---- canonicalized query ---- */

typedef struct skey_qp {
    char *name;
    char *value;
} skey_qp;

static int skey_qp_cmp(const void *a, const void *b)
{
    const skey_qp *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->value, y->value);
}

/* Decode, sort and emit the query of req as "\nname:v1,v2" lines into out. */
static int skey_canon_query(const char *raw_query, int variant, dbuf *out)
{
    url_param raw[SKEY_MAX_QPARAMS];
    skey_qp qp[SKEY_MAX_QPARAMS];
    int nq = 0, rc = 0;
    int n = url_split_query(raw_query, raw, SKEY_MAX_QPARAMS);
    if (n < 0) return n;
    dbuf d;
    dbuf_init(&d, SKEY_MAX_STS);
    for (int i = 0; i < n; i++) {
        rc = url_decode(raw[i].name, raw[i].name_len, URL_FORM | URL_NO_CTL, &d);
        if (rc) goto out;
        if (d.len == 0) continue; /* "=x" names nothing */
        for (size_t k = 0; k < d.len; k++) {
            char c = d.data[k];
            if (c >= 'A' && c <= 'Z') d.data[k] = (char)(c - 'A' + 'a');
        }
        char *name = dbuf_take(&d);
        if (!name) {
            rc = -ENOMEM;
            goto out;
        }
        rc = url_decode(raw[i].value ? raw[i].value : "", raw[i].value_len, URL_FORM | URL_NO_CTL, &d);
        if (rc) {
            free(name);
            goto out;
        }
        if (d.len == 0 && variant == SKEY_DROP_EMPTY_PARAMS) {
            free(name);
            continue;
        }
        char *value = dbuf_take(&d);
        if (!value) {
            free(name);
            rc = -ENOMEM;
            goto out;
        }
        qp[nq].name = name;
        qp[nq].value = value;
        nq++;
    }
    qsort(qp, (size_t)nq, sizeof qp[0], skey_qp_cmp);
    for (int i = 0; i < nq && !rc; i++) {
        bool same = i > 0 && strcmp(qp[i - 1].name, qp[i].name) == 0;
        if (same) {
            rc = dbuf_add(out, ",", 1);
        } else {
            rc = dbuf_add(out, "\n", 1);
            if (!rc) rc = dbuf_adds(out, qp[i].name);
            if (!rc) rc = dbuf_add(out, ":", 1);
        }
        if (!rc) rc = dbuf_adds(out, qp[i].value);
    }
out:
    for (int i = 0; i < nq; i++) {
        free(qp[i].name);
        free(qp[i].value);
    }
    dbuf_free(&d);
    return rc;
}

static const char *skey_get(const skey_request *req, const char *name)
{
    if (!req->get) return NULL;
    return req->get(req->ctx, name);
}

int skey_string_to_sign(const skey_key *k, const skey_request *req, int variant, dbuf *out)
{
    static const char *const slots[] = {"Content-Encoding", "Content-Language", "Content-Length", "Content-MD5",
                                        "Content-Type",     "Date",             "If-Modified-Since", "If-Match",
                                        "If-None-Match",    "If-Unmodified-Since", "Range"};
    skey_hdrs *hs = calloc(1, sizeof *hs);
    if (!hs) return -ENOMEM;
    int rc = 0;
    dbuf_reset(out);
    if (!req->method || !*req->method) {
        rc = -EINVAL;
        goto out;
    }
    if (req->each) req->each(req->ctx, skey_collect, hs);
    if (hs->err) {
        rc = hs->err;
        goto out;
    }
    qsort(hs->h, (size_t)hs->n, sizeof hs->h[0], skey_hdr_cmp);
    bool has_xms_date = false;
    for (int i = 0; i < hs->n; i++)
        if (strcmp(hs->h[i].name, "x-ms-date") == 0) has_xms_date = true;

    rc = dbuf_adds(out, req->method);
    for (size_t i = 0; i < sizeof slots / sizeof slots[0] && !rc; i++) {
        const char *v = skey_get(req, slots[i]);
        if (!v) v = "";
        if (i == 2 && strcmp(v, "0") == 0) v = "";
        if (i == 5 && has_xms_date) v = "";
        rc = dbuf_add(out, "\n", 1);
        if (!rc) rc = dbuf_adds(out, v);
    }
    if (!rc) rc = dbuf_add(out, "\n", 1);
    for (int i = 0; i < hs->n && !rc; i++) {
        rc = dbuf_adds(out, hs->h[i].name);
        if (!rc) rc = dbuf_add(out, ":", 1);
        if (!rc && hs->h[i].value.len) rc = dbuf_add(out, hs->h[i].value.data, hs->h[i].value.len);
        if (!rc) rc = dbuf_add(out, "\n", 1);
    }
    if (!rc) rc = dbuf_add(out, "/", 1);
    if (!rc) rc = dbuf_adds(out, k->account);
    const char *path = req->raw_path && *req->raw_path ? req->raw_path : "/";
    if (!rc) rc = dbuf_adds(out, path);
    if (!rc && req->raw_query) rc = skey_canon_query(req->raw_query, variant, out);
out:
    for (int i = 0; i < hs->n; i++)
        dbuf_free(&hs->h[i].value);
    free(hs);
    if (rc) dbuf_reset(out);
    return rc;
}

int skey_hmac_b64(const unsigned char *key, size_t key_len, const char *msg, size_t len, char out[64])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (key_len > INT32_MAX) return -1;
    if (!HMAC(EVP_sha256(), key, (int)key_len, (const unsigned char *)msg, len, md, &mdlen)) return -1;
    if (b64_encoded_size(mdlen) > 64) return -1;
    b64_encode(md, mdlen, out);
    OPENSSL_cleanse(md, sizeof md);
    return 0;
}

static int skey_sign_variant(const skey_key *k, const skey_request *req, int variant, dbuf *sts, char sig[64])
{
    int rc = skey_string_to_sign(k, req, variant, sts);
    if (rc) return rc;
    if (skey_hmac_b64(k->key, k->key_len, sts->data, sts->len, sig)) return -EINVAL;
    return 0;
}

int skey_sign(const skey_key *k, const skey_request *req, dbuf *authorization)
{
    dbuf sts;
    dbuf_init(&sts, SKEY_MAX_STS);
    char sig[64];
    int rc = skey_sign_variant(k, req, SKEY_DROP_EMPTY_PARAMS, &sts, sig);
    dbuf_free(&sts);
    if (rc) return rc;
    dbuf_reset(authorization);
    return dbuf_printf(authorization, "SharedKey %s:%s", k->account, sig);
}

int skey_verify(const skey_key *k, const skey_request *req, const char *authorization, dbuf *sts_out)
{
    if (!authorization) return -EINVAL;
    const char *p = authorization;
    while (*p == ' ')
        p++;
    if (strncasecmp(p, "SharedKey ", 10) != 0) return -EINVAL;
    p += 10;
    while (*p == ' ')
        p++;
    const char *colon = strchr(p, ':');
    if (!colon || colon == p) return -EINVAL;
    const char *given = colon + 1;
    size_t glen = strlen(given);
    while (glen > 0 && given[glen - 1] == ' ')
        glen--;
    if (glen == 0 || glen >= 64) return -EINVAL;
    char gsig[64];
    memcpy(gsig, given, glen);
    gsig[glen] = '\0';
    size_t alen = (size_t)(colon - p);
    if (alen != strlen(k->account) || memcmp(p, k->account, alen) != 0) {
        if (sts_out) dbuf_reset(sts_out);
        return -EACCES;
    }

    dbuf sts;
    dbuf_init(&sts, SKEY_MAX_STS);
    char sig[64];
    int rc = skey_sign_variant(k, req, SKEY_KEEP_EMPTY_PARAMS, &sts, sig);
    if (rc) goto out;
    if (skey_ct_strcmp(sig, gsig) == 0) goto out;
    rc = skey_sign_variant(k, req, SKEY_DROP_EMPTY_PARAMS, &sts, sig);
    if (rc) goto out;
    if (skey_ct_strcmp(sig, gsig) == 0) goto out;
    rc = -EACCES;
    if (sts_out) {
        dbuf_reset(sts_out);
        if (dbuf_add(sts_out, sts.data, sts.len)) dbuf_reset(sts_out);
    }
out:
    dbuf_free(&sts);
    return rc;
}

/* ---- service SAS ---- */

static int skey_line(dbuf *out, const char *v, bool last)
{
    int rc = v ? dbuf_adds(out, v) : 0;
    if (!rc && !last) rc = dbuf_add(out, "\n", 1);
    return rc;
}

int skey_sas_string_to_sign(const skey_key *k, const skey_sas *sas, const char *filesystem, const char *path,
                            dbuf *out)
{
    dbuf_reset(out);
    if (!filesystem || !*filesystem) return -EINVAL;
    int rc = skey_line(out, sas->sp, false);
    if (!rc) rc = skey_line(out, sas->st, false);
    if (!rc) rc = skey_line(out, sas->se, false);
    if (!rc) rc = dbuf_printf(out, "/blob/%s/%s", k->account, filesystem);
    if (path) {
        while (*path == '/')
            path++;
        if (!rc && *path) rc = dbuf_printf(out, "/%s", path);
    }
    if (!rc) rc = dbuf_add(out, "\n", 1);
    if (!rc) rc = skey_line(out, sas->si, false);
    if (!rc) rc = skey_line(out, sas->sip, false);
    if (!rc) rc = skey_line(out, sas->spr, false);
    if (!rc) rc = skey_line(out, sas->sv, false);
    if (!rc) rc = skey_line(out, sas->sr, false);
    if (!rc) rc = skey_line(out, NULL, false); /* snapshot time */
    /* sv 2020-12-06 and later sign the encryption scope after the snapshot time. */
    if (!rc && sas->sv && strcmp(sas->sv, "2020-12-06") >= 0) rc = skey_line(out, sas->ses, false);
    if (!rc) rc = skey_line(out, sas->rscc, false);
    if (!rc) rc = skey_line(out, sas->rscd, false);
    if (!rc) rc = skey_line(out, sas->rsce, false);
    if (!rc) rc = skey_line(out, sas->rscl, false);
    if (!rc) rc = skey_line(out, sas->rsct, true);
    if (rc) dbuf_reset(out);
    return rc;
}

int skey_sas_sign(const skey_key *k, const skey_sas *sas, const char *filesystem, const char *path, char sig[64])
{
    dbuf sts;
    dbuf_init(&sts, SKEY_MAX_STS);
    int rc = skey_sas_string_to_sign(k, sas, filesystem, path, &sts);
    if (!rc && skey_hmac_b64(k->key, k->key_len, sts.data, sts.len, sig)) rc = -EINVAL;
    dbuf_free(&sts);
    return rc;
}

int skey_ct_strcmp(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    size_t n = la > lb ? la : lb;
    unsigned char diff = (unsigned char)(la != lb);
    for (size_t i = 0; i < n; i++) {
        unsigned char ca = i < la ? (unsigned char)a[i] : 0;
        unsigned char cb = i < lb ? (unsigned char)b[i] : 0;
        diff |= (unsigned char)(ca ^ cb);
    }
    return diff != 0;
}
