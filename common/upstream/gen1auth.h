/*
 * gen1auth: the proxy's own identity toward Gen1, for the requests no writer is waiting on (the
 * applier's look-ups: resyncs, re-copies, metadata copies, recovery and in-doubt checks, operator
 * retry/resync; the readiness probe). One mode per config (gen1.auth.mode):
 *  - none: no identity of its own; the caller's (a writer's Authorization and user.name/doas/
 *    delegation, where one is at hand) is used as before;
 *  - bearer: "Authorization: Bearer <token>", the token inline, from an environment variable, or
 *    from a file that is read again whenever its inode, size or modification time changes (a sidecar
 *    that rotates the file needs no restart). If a re-read fails (the file is briefly missing
 *    during a rotation), the last token read is kept;
 *  - client_credentials: an OAuth2 token from AUTHORITY/TENANT/oauth2/token (v1, resource=) or
 *    .../oauth2/v2.0/token (v2, scope=), fetched and refreshed by gen2auth's token code;
 *  - hadoop: the query pieces user.name=USER (simple auth) and, when set, doas=USER.
 *
 * Logs nothing. Tokens and secrets never appear in errors.
 */
#ifndef DP_GEN1AUTH_H
#define DP_GEN1AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cfg.h"
#include "dbuf.h"
#include "gen2auth.h"
#include "httpc.h"

#define G1A_AGAIN 1 /* g1a_identity: no usable token yet, see g1a_wait */

typedef struct g1a g1a;

/**
 * Create the identity for cfg->gen1_auth (cfg is only read during the call). client_credentials
 * starts its first token fetch at once through http (which must be running). Returns 0, or -1 with
 * a message naming the key (never a secret value).
 */
int g1a_new(const dp_config *cfg, httpc *http, g1a **out, char *err, size_t errlen);
/** Stop the token refresher (before httpc_stop of its engine); idempotent. */
void g1a_stop(g1a *a);
/** g1a_stop and free; secrets are wiped. NULL is fine. */
void g1a_free(g1a *a);

/**
 * SIGHUP (proxy/reload): check (true) whether nc's gen1.auth.token can be taken live, or take it
 * (false). Only the bearer token changes live: from the same kind of source (a file is read again
 * at once, even when its size and time look unchanged; an inline or env value is replaced). A token
 * now from another file or kind of source needs a restart: -1 with a message naming the key. Other
 * modes, or a new mode (which the reload reports as needing a restart): 0 and nothing changes.
 * Never a secret in err.
 */
int g1a_reload(g1a *a, const dp_config *nc, bool check, char *err, size_t errlen);

/** The configured mode. */
cfg_g1auth_mode g1a_mode(const g1a *a);
/** True when the proxy has an identity of its own (mode is not none). */
bool g1a_active(const g1a *a);

/**
 * The identity for one request. authz gets the Authorization header value ("Bearer ...") or stays
 * empty; query gets URL-encoded query pieces ("user.name=U&doas=D") or stays empty (both cleared
 * first). *gen gets the token's generation (pass it to g1a_wait after a 401). Returns 0, G1A_AGAIN
 * (client_credentials: no valid token yet), or -1 with a message in err (bearer: the token file
 * cannot be read and no earlier token is known).
 */
int g1a_identity(g1a *a, dbuf *authz, dbuf *query, uint64_t *gen, char *err, size_t errlen);

/** True when a 401 may be cured by a newer token (client_credentials). */
bool g1a_refreshable(const g1a *a);

/**
 * client_credentials: wait for a token newer than stale_gen, as g2auth_wait (1: ready now, fn not
 * called; 0: fn runs later on the token engine's thread; -1: not possible). Other modes: -1.
 */
int g1a_wait(g1a *a, uint64_t stale_gen, g2auth_ready_fn fn, void *ud);

/** Blocking: wait up to timeout_ms for a usable identity (start-up check). 0 or -1 with err. */
int g1a_wait_ready(g1a *a, unsigned timeout_ms, char *err, size_t errlen);

typedef struct g1a_stats {
    uint64_t file_reads;    /* bearer: times the token file was (re-)read successfully */
    uint64_t file_errors;   /* bearer: re-reads that failed */
    g2auth_stats token;     /* client_credentials: fetches */
} g1a_stats;

void g1a_get_stats(g1a *a, g1a_stats *st);

#endif
