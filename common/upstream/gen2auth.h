/*
 * gen2auth: credentials for the ADLS Gen2 upstream, one mode per config (gen2.auth.mode):
 *  - shared_key: each request is signed with the account key (common/skey); the caller passes the
 *    method, raw path, raw query and the exact header lines the request will carry;
 *  - sas: a fixed SAS query string the caller appends to every request's query;
 *  - client_credentials: an OAuth2 token from POST {authority}/{tenant}/oauth2/token;
 *  - managed_identity: a token from GET {imds_endpoint}?api-version=2018-02-01&resource=..., with
 *    header "Metadata: true" (and client_id for a user-assigned identity).
 *
 * Token modes keep one cached token. A refresher thread fetches the first one at start and the next
 * one refresh_margin_s before expiry (expires_on / expires_in, numbers or strings); a fetch that fails
 * with a connection error, 408, 429 or 5xx is retried with exponential backoff. After a 401 the caller
 * asks for a token newer than the one it used (g2auth_wait): concurrent requests for the same stale
 * token share one fetch. The token HTTP exchange runs asynchronously through httpc, so waiters are
 * resumed on the httpc engine thread and the engine thread never blocks.
 *
 * Logs nothing. Tokens and secrets never appear in errors; errors say which mode, which step and
 * what the token service answered (status, AAD error name and code).
 */
#ifndef DP_GEN2AUTH_H
#define DP_GEN2AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cfg.h"
#include "dbuf.h"
#include "httpc.h"

#define G2AUTH_AGAIN 1            /* g2auth_authorization: no usable token yet, see g2auth_wait */
#define G2AUTH_MAX_TOKEN 16384    /* longest access token accepted from a token service */

typedef struct g2auth g2auth;

/**
 * Create the authenticator for cfg->gen2_auth (cfg is only read during the call). For token modes the first token
 * fetch starts at once in the background (through http, which must be running). Returns 0, or -1
 * with a message naming the missing or malformed setting (never a secret value).
 */
int g2auth_new(const dp_config *cfg, httpc *http, g2auth **out, char *err, size_t errlen);

/**
 * Stop: join the refresher, wait for a token request in flight (at most its timeout), and call the
 * waiters still queued with ok=false on the calling thread. Afterwards g2auth_wait returns -1 and the
 * token modes hand out only a still-valid token. Must be called while the httpc engine still runs
 * (before httpc_stop), so no fetch is ever submitted to a stopped engine. Idempotent.
 */
void g2auth_stop(g2auth *a);
/** g2auth_stop (if not done) and free everything; secrets are wiped. */
void g2auth_free(g2auth *a);

/** Where a token comes from: the token part shared by gen2auth and gen1auth. */
typedef struct g2auth_token_cfg {
    const char *key_prefix;      /* config key branch for errors: "gen2.auth", "gen1.auth" */
    const char *label;           /* first words of fetch errors: "gen2 auth", "gen1 auth" */
    bool managed_identity;       /* false: OAuth2 client credentials */
    bool v2;                     /* client credentials: AUTHORITY/TENANT/oauth2/v2.0/token with scope=;
                                    false: AUTHORITY/TENANT/oauth2/token with resource= */
    const char *authority, *tenant, *client_id, *client_secret;
    const char *resource;        /* v1 and managed identity */
    const char *scope;           /* v2 */
    const char *imds_endpoint;   /* managed identity */
    unsigned refresh_margin_s, connect_timeout_ms, timeout_ms;
} g2auth_token_cfg;

/**
 * A token-mode authenticator for any upstream (copies everything in tc; the secret is wiped on free).
 * Same behaviour as g2auth_new in a token mode: first fetch at once, refreshed refresh_margin_s
 * before expiry, g2auth_authorization / g2auth_wait / g2auth_wait_ready. Returns 0, or -1 with an
 * error naming the key (never a secret).
 */
int g2auth_new_token(const g2auth_token_cfg *tc, httpc *http, g2auth **out, char *err, size_t errlen);

/**
 * SIGHUP: take the credential of nc (a newly loaded config of the same mode; another mode needs a
 * restart and is ignored here): the account key (shared_key), the SAS (sas) or the client secret
 * (client_credentials, used from the next token fetch on; the current token stays until it is due).
 * check=true only validates. Thread-safe against requests being signed. 0, or -1 with err naming the
 * key (never the secret).
 */
int g2auth_reload(g2auth *a, const dp_config *nc, bool check, char *err, size_t errlen);

/** The configured mode. */
cfg_auth_mode g2auth_mode(const g2auth *a);
/** True for the OAuth modes (client_credentials, managed_identity). */
bool g2auth_uses_token(const g2auth *a);
/** sas mode: the SAS query string (without '?') to append to every request; NULL otherwise. */
const char *g2auth_sas(const g2auth *a);

/** A request as it will go on the wire (for Shared Key signing). */
typedef struct g2auth_req {
    const char *method;              /* "PUT", "PATCH", ... as sent */
    const char *raw_path;            /* URL path exactly as sent, e.g. "/acct/fs/a%20b" */
    const char *raw_query;           /* query without '?' exactly as sent, or NULL */
    const char *const *headers;      /* "Name: value" lines exactly as sent, including Content-Length
                                        when the body is not empty and Content-Type if any */
    int nheaders;
} g2auth_req;

/**
 * The Authorization header value for req, into value (cleared first):
 *  - shared_key: "SharedKey account:signature" (x-ms-date must be among the headers);
 *  - token modes: "Bearer <token>" when a cached token is valid, *gen getting its generation (pass
 *    it to g2auth_wait after a 401); G2AUTH_AGAIN when there is none yet;
 *  - sas: 0 with value empty (no header; the SAS goes in the query).
 * Returns 0, G2AUTH_AGAIN, or -1 with a message in err.
 */
int g2auth_authorization(g2auth *a, const g2auth_req *req, dbuf *value, uint64_t *gen, char *err, size_t errlen);

/** Called once a wait ends: ok=true when a token newer than the stale one is ready (call
 *  g2auth_authorization again), ok=false with err (no secret) when it could not be obtained. */
typedef void (*g2auth_ready_fn)(void *ud, bool ok, const char *err);

/**
 * Token modes: wait for a valid token whose generation is greater than stale_gen (0 = any valid
 * token; after a 401 pass the generation the refused request used). If one is ready, returns 1 and
 * fn is not called. Otherwise queues fn, makes sure a fetch is under way (one fetch serves every
 * waiter: concurrent 401s cause a single refresh), and returns 0; fn then runs on the httpc engine
 * thread (or in g2auth_stop, or on the refresher thread if the engine refuses new requests). fn is
 * called with ok=false after the fetch failed for good (non-retryable answer, or retries exhausted).
 * Returns -1 on allocation failure, after g2auth_stop, or in a non-token mode.
 */
int g2auth_wait(g2auth *a, uint64_t stale_gen, g2auth_ready_fn fn, void *ud);

/**
 * Blocking: wait up to timeout_ms for a valid token (not on the httpc engine thread). Useful at
 * start-up to report a credentials problem early. Non-token modes return 0 at once. Returns 0, or -1
 * with the last fetch error (or "timed out") in err.
 */
int g2auth_wait_ready(g2auth *a, unsigned timeout_ms, char *err, size_t errlen);

typedef struct g2auth_stats {
    uint64_t fetches_ok;      /* token responses that yielded a token */
    uint64_t fetches_failed;  /* token attempts that failed (each retry counts) */
    uint64_t generation;      /* generation of the current token (0: none yet) */
} g2auth_stats;

/** Counters (for metrics and tests). */
void g2auth_get_stats(g2auth *a, g2auth_stats *st);

#endif
