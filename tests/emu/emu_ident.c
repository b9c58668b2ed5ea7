/*
 * emu_ident: named bearer tokens for the Gen1 emulator (see emu_ident.h). One mutex guards the
 * table; the file's size and mtime are checked on every request (an emulator's request rate makes
 * that free) and the table's file part is rebuilt when they change. Tokens are compared in constant
 * time. OAuth tokens are issued and verified by emu_auth with a random per-process signing key.
 */
#include "emu_ident.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>

#include "b64.h"
#include "emu_auth.h"
#include "skey.h"

#define IDENT_MAX 64
#define IDENT_TOKEN_MAX 8192

typedef struct ident_ent {
    char name[EMU_IDENT_NAME];
    char *token;
    bool from_file;
} ident_ent;

struct emu_ident {
    pthread_mutex_t mu;
    ident_ent ents[IDENT_MAX];
    int n;
    char *file;
    struct stat seen;
    bool have_seen;
    emu_auth *oauth;
};

static void ent_clear(ident_ent *e)
{
    if (e->token) {
        memset(e->token, 0, strlen(e->token));
        free(e->token);
    }
    memset(e, 0, sizeof *e);
}

static int add_ent(emu_ident *id, const char *name, size_t nl, const char *tok, size_t tl, bool from_file)
{
    if (nl == 0 || nl >= EMU_IDENT_NAME || tl == 0 || tl > IDENT_TOKEN_MAX || id->n >= IDENT_MAX) return -1;
    ident_ent *e = &id->ents[id->n];
    memcpy(e->name, name, nl);
    e->name[nl] = 0;
    if (!(e->token = strndup(tok, tl))) return -1;
    e->from_file = from_file;
    id->n++;
    return 0;
}

/* Drop the file's entries and read it again. Called with mu held (or before the object is shared). */
static int load_file_locked(emu_ident *id, char *err, size_t errlen)
{
    int keep = 0;
    for (int i = 0; i < id->n; i++) {
        if (id->ents[i].from_file) {
            ent_clear(&id->ents[i]);
        } else {
            if (keep != i) {
                id->ents[keep] = id->ents[i];
                memset(&id->ents[i], 0, sizeof id->ents[i]);
            }
            keep++;
        }
    }
    id->n = keep;
    FILE *f = fopen(id->file, "r");
    if (!f) {
        snprintf(err, errlen, "--token-file: cannot open %s: %s", id->file, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fileno(f), &st) == 0) {
        id->seen = st;
        id->have_seen = true;
    }
    char line[IDENT_TOKEN_MAX + EMU_IDENT_NAME + 4];
    int rc = 0;
    while (fgets(line, sizeof line, f)) {
        size_t n = strcspn(line, "\r\n");
        line[n] = 0;
        char *p = line;
        while (*p == ' ' || *p == '\t') p++;
        if (!*p || *p == '#') continue;
        char *sp = strpbrk(p, " \t");
        if (!sp) {
            rc |= add_ent(id, "token", 5, p, strlen(p), true);
            continue;
        }
        char *tok = sp;
        while (*tok == ' ' || *tok == '\t') tok++;
        rc |= add_ent(id, p, (size_t)(sp - p), tok, strcspn(tok, " \t"), true);
    }
    memset(line, 0, sizeof line);
    fclose(f);
    if (rc) snprintf(err, errlen, "--token-file: a line is malformed (NAME TOKEN), too long, or over %d", IDENT_MAX);
    return rc ? -1 : 0;
}

int emu_ident_new(const emu_ident_opts *o, emu_ident **out, char *err, size_t errlen)
{
    *out = NULL;
    emu_ident *id = calloc(1, sizeof *id);
    if (!id) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    pthread_mutex_init(&id->mu, NULL);
    if (o->token && *o->token && add_ent(id, "token", 5, o->token, strlen(o->token), false) != 0) {
        snprintf(err, errlen, "--token: empty or too long");
        goto fail;
    }
    for (int i = 0; i < o->npairs; i++) {
        const char *eq = strchr(o->pairs[i], '=');
        if (!eq || add_ent(id, o->pairs[i], (size_t)(eq - o->pairs[i]), eq + 1, strlen(eq + 1), false) != 0) {
            snprintf(err, errlen, "--identity: must be NAME=TOKEN (name 1-%d bytes, token not empty)",
                     EMU_IDENT_NAME - 1);
            goto fail;
        }
    }
    if (o->file) {
        if (!(id->file = strdup(o->file))) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
        if (load_file_locked(id, err, errlen) != 0) goto fail;
    }
    if (o->oauth_client_id) {
        /* A random signing key: the tokens are good for this process only, which is all a test needs. */
        unsigned char raw[32];
        char b64[64];
        if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw) {
            snprintf(err, errlen, "no randomness for the token signing key");
            goto fail;
        }
        b64[b64_encode(raw, sizeof raw, b64)] = 0;
        skey_key key;
        int krc = skey_key_init(&key, "gen1", b64);
        memset(raw, 0, sizeof raw);
        memset(b64, 0, sizeof b64);
        emu_auth_opts ao = {.key = &key, .client_id = o->oauth_client_id, .client_secret = o->oauth_client_secret,
                            .token_ttl_s = o->token_ttl_s, .audience = "https://datalake.azure.net/"};
        if (krc != 0 || emu_auth_new(&ao, &id->oauth) != 0) {
            memset(&key, 0, sizeof key);
            snprintf(err, errlen, "cannot set up the token endpoint");
            goto fail;
        }
        memset(&key, 0, sizeof key);
    }
    *out = id;
    return 0;
fail:
    emu_ident_free(id);
    return -1;
}

void emu_ident_free(emu_ident *id)
{
    if (!id) return;
    for (int i = 0; i < id->n; i++) ent_clear(&id->ents[i]);
    free(id->file);
    emu_auth_free(id->oauth);
    pthread_mutex_destroy(&id->mu);
    free(id);
}

bool emu_ident_required(const emu_ident *id) { return id && (id->n > 0 || id->file || id->oauth); }

bool emu_ident_oauth(const emu_ident *id) { return id && id->oauth; }

int emu_ident_check(emu_ident *id, const char *authorization, char name[EMU_IDENT_NAME], const char **why)
{
    name[0] = 0;
    if (!authorization || strncasecmp(authorization, "Bearer ", 7) != 0) {
        *why = "Authentication required: no bearer token";
        return -1;
    }
    const char *tok = authorization + 7;
    while (*tok == ' ') tok++;
    *why = "Authentication failed: the bearer token is not valid";
    int rc = -1;
    pthread_mutex_lock(&id->mu);
    if (id->file) {
        struct stat st;
        bool changed = stat(id->file, &st) != 0 || !id->have_seen || st.st_size != id->seen.st_size ||
                       st.st_ino != id->seen.st_ino || st.st_mtim.tv_sec != id->seen.st_mtim.tv_sec ||
                       st.st_mtim.tv_nsec != id->seen.st_mtim.tv_nsec;
        char err[160];
        if (changed) (void)load_file_locked(id, err, sizeof err); /* a broken file simply names nobody */
    }
    for (int i = 0; i < id->n && rc != 0; i++) {
        if (skey_ct_strcmp(id->ents[i].token, tok) == 0) {
            snprintf(name, EMU_IDENT_NAME, "%s", id->ents[i].name);
            rc = 0;
        }
    }
    pthread_mutex_unlock(&id->mu);
    if (rc != 0 && id->oauth && strchr(tok, '.')) {
        char oid[64];
        const char *w = NULL;
        if (emu_auth_verify_token(id->oauth, tok, oid, &w) == 0) {
            snprintf(name, EMU_IDENT_NAME, "oauth");
            rc = 0;
        } else if (w) {
            *why = w;
        }
    }
    return rc;
}

int emu_ident_token_endpoint(emu_ident *id, bool v2, const char *tenant, const char *form, dbuf *out)
{
    if (!id->oauth) return 404;
    return emu_auth_token_endpoint(id->oauth, v2, tenant, form, out);
}
