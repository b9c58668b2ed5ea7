/*
 * emu_auth: authentication for the Gen2 emulator (protocols.md §3). It verifies the three ways a
 * caller proves who it is to the DFS service: Shared Key (both canonicalizations, via common/skey),
 * a service or account SAS in the query, and a bearer token; and it issues the bearer tokens itself,
 * through a local OAuth2 client-credentials endpoint (AAD v1 and v2 shapes) and an IMDS-style
 * managed-identity endpoint, so the proxy's token code can be tested on loopback.
 *
 * Tokens are self-contained and signed (JWT layout, HS256 with a key derived from the account key),
 * so the emulator keeps no token table and tokens stay valid across restarts until they expire.
 * Errors carry no secret: never the key, the client secret or a token.
 */
#ifndef DP_EMU_AUTH_H
#define DP_EMU_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dbuf.h"
#include "emu_http.h"
#include "skey.h"

typedef struct emu_auth emu_auth;

typedef struct emu_auth_opts {
    const skey_key *key;        /* account name + key (Shared Key, SAS, token signing) */
    const char *client_id;      /* accepted client id; NULL = any */
    const char *client_secret;  /* accepted client secret; NULL = any */
    unsigned token_ttl_s;       /* lifetime of issued tokens; 0 = 3600 */
    const char *audience;       /* the one audience tokens must name (e.g. https://datalake.azure.net/);
                                   NULL = the storage audiences of the account */
} emu_auth_opts;

/** Create the authenticator (copies the options). Returns 0 or -ENOMEM. */
int emu_auth_new(const emu_auth_opts *o, emu_auth **out);
void emu_auth_free(emu_auth *a);

/* ---- token endpoints ---- */

/**
 * AAD client-credentials endpoint: POST /{tenant}/oauth2/token (v2=false: resource=) or
 * /{tenant}/oauth2/v2.0/token (v2=true: scope=). form is the x-www-form-urlencoded body. The JSON
 * answer (token or AAD-style {"error":...}) is written to out; returns the HTTP status.
 */
int emu_auth_token_endpoint(emu_auth *a, bool v2, const char *tenant, const char *form, dbuf *out);

/**
 * IMDS managed-identity endpoint: GET /metadata/identity/oauth2/token?api-version=..&resource=..
 * query is the raw query string; metadata is the value of the Metadata header (NULL if absent).
 * Writes the JSON answer to out; returns the HTTP status.
 */
int emu_auth_imds(emu_auth *a, const char *query, const char *metadata, dbuf *out);

/* ---- request verification ---- */

typedef enum emu_auth_kind {
    EMU_AUTH_NONE = 0,
    EMU_AUTH_SHAREDKEY,
    EMU_AUTH_SAS,          /* service SAS (sr=c|b|d) */
    EMU_AUTH_ACCOUNT_SAS,  /* account SAS (ss/srt) */
    EMU_AUTH_BEARER,
} emu_auth_kind;

/** Who the caller is, once authenticated. */
typedef struct emu_auth_caller {
    emu_auth_kind kind;
    char principal[64];     /* "$superuser" (Shared Key, SAS) or the token's object id */
    char sp[32];            /* SAS: granted permission letters */
    char sr[8];             /* service SAS: c, b or d */
    int sdd;                /* service SAS sr=d: depth of the signed directory */
} emu_auth_caller;

/** Why a request was refused: the Gen2 error to send. */
typedef struct emu_auth_fail {
    int status;
    const char *code;
    bool www_authenticate;  /* add a WWW-Authenticate: Bearer challenge */
    char www_error[96];     /* error_description for the challenge ("" = none) */
    char message[16384];    /* error message (truncated if longer) */
} emu_auth_fail;

/**
 * Authenticate a DFS request: the Authorization header (SharedKey or Bearer) or, without one, a
 * SAS in the query. fs is the decoded filesystem name (NULL for account-level requests) and path
 * the decoded path inside it ("" for the filesystem itself): a service SAS is verified against the
 * resource it names. Returns 0 and fills caller, or -1 and fills fail.
 */
int emu_auth_check(emu_auth *a, emu_req *r, const char *fs, const char *path, emu_auth_caller *caller,
                   emu_auth_fail *fail);

/**
 * Verify a SAS given as a raw query string (the source SAS inside x-ms-rename-source) for
 * fs/path. Same results as emu_auth_check.
 */
int emu_auth_check_sas(emu_auth *a, const char *query, const char *fs, const char *path,
                       emu_auth_caller *caller, emu_auth_fail *fail);

/**
 * Authorization of a SAS caller for one operation: perm is the permission letter the operation
 * needs (protocols.md §3.2). Non-SAS callers always pass (every authenticated caller acts as
 * super-user in this emulator). Returns 0, or -1 with a 403 in fail.
 */
int emu_auth_permits(const emu_auth_caller *c, char perm, emu_auth_fail *fail);

/** Validate a bearer token this emulator issued (signature, lifetime, audience). Returns 0 with the
 *  token's object id, or -1 with why (static text for a WWW-Authenticate error_description). */
int emu_auth_verify_token(emu_auth *a, const char *tok, char oid[64], const char **why);

/** Object id the emulator derives for a client id (the `oid` of its tokens). Writes 37 bytes. */
void emu_auth_object_id(const char *client_id, char out[37]);

#endif
