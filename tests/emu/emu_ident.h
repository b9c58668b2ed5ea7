/*
 * emu_ident: who a Gen1 emulator request comes from, by bearer token, so tests can tell the proxy's
 * own identity from a writer's. Identities are named tokens from three sources, all accepted at once:
 *  - --token TOKEN (the single-token mode kept from before): identity "token";
 *  - --identity NAME=TOKEN, repeatable;
 *  - --token-file FILE: one "NAME TOKEN" per line (a line with a lone TOKEN is identity "token"; empty
 *    lines and "#" comments are skipped). The file is read again whenever its size or modification
 *    time changes, so a test rotates a token by rewriting the file: from then on only the new token
 *    is accepted;
 *  - an OAuth2 client-credentials token endpoint (POST /{tenant}/oauth2/token with resource=, or
 *    /{tenant}/oauth2/v2.0/token with scope=, audience https://datalake.azure.net/), on when
 *    --oauth-client-id is given: the tokens it issues (emu_auth, signed, --token-ttl lifetime) are
 *    identity "oauth".
 * With no source configured every request is accepted (no Authorization needed).
 */
#ifndef DP_EMU_IDENT_H
#define DP_EMU_IDENT_H

#include <stdbool.h>
#include <stddef.h>

#include "dbuf.h"

#define EMU_IDENT_NAME 64

typedef struct emu_ident emu_ident;

typedef struct emu_ident_opts {
    const char *token;                 /* identity "token" */
    const char *file;                  /* "NAME TOKEN" lines, re-read on change */
    const char *const *pairs;          /* "NAME=TOKEN" */
    int npairs;
    const char *oauth_client_id;       /* non-NULL: token endpoint on, this client id only */
    const char *oauth_client_secret;   /* NULL: any secret */
    unsigned token_ttl_s;              /* 0 = 3600 */
} emu_ident_opts;

/** Create (copies everything; reads the file once). Returns 0, or -1 with a message in err. */
int emu_ident_new(const emu_ident_opts *o, emu_ident **out, char *err, size_t errlen);
void emu_ident_free(emu_ident *id);

/** True when requests must carry a bearer token. */
bool emu_ident_required(const emu_ident *id);
/** True when the OAuth2 token endpoint is on. */
bool emu_ident_oauth(const emu_ident *id);

/**
 * Who carries this Authorization header value (NULL: none). Returns 0 with the identity's name, or
 * -1 with why (static text: no token, unknown or expired token).
 */
int emu_ident_check(emu_ident *id, const char *authorization, char name[EMU_IDENT_NAME], const char **why);

/** The token endpoint: form is the request body; the JSON answer goes to out. Returns the status. */
int emu_ident_token_endpoint(emu_ident *id, bool v2, const char *tenant, const char *form, dbuf *out);

#endif
