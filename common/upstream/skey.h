/*
 * skey: Azure Storage Shared Key and service SAS signatures (protocols.md §3.1-3.2), used to sign
 * requests (proxy → Gen2) and to verify them (Gen2 emulator). HMAC-SHA256 via OpenSSL.
 *
 * Two canonicalizations exist in real SDKs and a verifier must accept both (clients.md): query
 * parameters with an empty value are left out of the CanonicalizedResource (JS SDK, ABFS) or kept as
 * "name:" (Python SDK, Go SDK). skey_string_to_sign takes the variant explicitly.
 *
 * No logging; the key never leaves the skey_key struct except as an HMAC.
 */
#ifndef DP_SKEY_H
#define DP_SKEY_H

#include <stdbool.h>
#include <stddef.h>

#include "dbuf.h"

#define SKEY_MAX_KEY 128

typedef struct skey_key {
    char account[256];
    unsigned char key[SKEY_MAX_KEY];  /* decoded account key */
    size_t key_len;
} skey_key;

/** Set account name and base64 key. Returns 0 or -EINVAL (bad base64, empty name, too long). */
int skey_key_init(skey_key *k, const char *account, const char *key_b64);

/** Header lookup for canonicalization: returns the value of header `name` (case-insensitive) or
 *  NULL. For x-ms-* headers, each is visited with skey_each_header. */
typedef const char *(*skey_header_get)(void *ctx, const char *name);
/** Calls fn(ctx, name, value) for every request header (any case); used to collect x-ms-*. */
typedef void (*skey_header_each)(void *ctx, void (*fn)(void *fnctx, const char *name, const char *value),
                                 void *fnctx);

typedef struct skey_request {
    const char *method;       /* as sent */
    const char *raw_path;     /* URL path exactly as on the wire, e.g. "/acct/fs/a%20b" */
    const char *raw_query;    /* raw query string without '?', or NULL */
    skey_header_get get;      /* standard headers (Content-Length, Content-Type, If-Match, ...) */
    skey_header_each each;    /* all headers, to collect x-ms-* */
    void *ctx;
} skey_request;

enum { SKEY_DROP_EMPTY_PARAMS = 0, SKEY_KEEP_EMPTY_PARAMS = 1 };

/**
 * Build the Shared Key string-to-sign for req into out (cleared first): verb, the 11 standard header
 * slots (Content-Length "0" rendered empty; Date empty when x-ms-date is present), canonicalized
 * x-ms-* headers (lower-cased names, sorted, values left-trimmed, repeated headers joined by ','),
 * then "/" + account + raw path and the sorted, lower-cased, URL-decoded query parameters
 * (multiple values sorted and joined by ','). Returns 0, -EINVAL (malformed query escape or a
 * decoded control character), -E2BIG (too many headers or parameters), or a dbuf error.
 */
int skey_string_to_sign(const skey_key *k, const skey_request *req, int variant, dbuf *out);

/** base64(HMAC-SHA256(key, msg)) into out (at least 45 bytes). Returns 0 or -1. */
int skey_hmac_b64(const unsigned char *key, size_t key_len, const char *msg, size_t len, char out[64]);

/** Compute "SharedKey account:signature" for req (DROP_EMPTY variant, what we send). */
int skey_sign(const skey_key *k, const skey_request *req, dbuf *authorization);

/**
 * Verify an Authorization header value against req, trying both canonicalizations.
 * Returns 0 when it matches, -EACCES when it does not (or names another account), -EINVAL when the
 * header is malformed. On mismatch, if sts_out is non-NULL, the DROP_EMPTY string-to-sign is left in
 * it (the service echoes it in its AuthenticationFailed message; it holds no secret).
 */
int skey_verify(const skey_key *k, const skey_request *req, const char *authorization, dbuf *sts_out);

/** The fields of a service SAS, as read from the query (values URL-decoded). */
typedef struct skey_sas {
    const char *sv, *sp, *st, *se, *sr, *sig, *si, *sip, *spr, *sdd;
    const char *rscc, *rscd, *rsce, *rscl, *rsct;
    const char *ses;   /* signed encryption scope; signed only when sv >= 2020-12-06 */
} skey_sas;

/**
 * Service SAS string-to-sign (sv >= 2018-11-09 layout): sp, st, se, canonical resource
 * "/blob/<account>/<filesystem>[/<path>]", si, sip, spr, sv, sr, snapshot-time (empty),
 * [ses, only when sv >= 2020-12-06,] rscc, rscd, rsce, rscl, rsct. NULL fields sign as "".
 * path is decoded ("" or NULL for the filesystem itself; leading '/' optional).
 * Returns 0, -EINVAL (no filesystem) or a dbuf error.
 */
int skey_sas_string_to_sign(const skey_key *k, const skey_sas *sas, const char *filesystem, const char *path,
                            dbuf *out);
/** Sign: returns the base64 signature into sig (64 bytes). */
int skey_sas_sign(const skey_key *k, const skey_sas *sas, const char *filesystem, const char *path, char sig[64]);

/** Constant-time string comparison (0 when equal). */
int skey_ct_strcmp(const char *a, const char *b);

#endif
