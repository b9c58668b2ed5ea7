/*
 * gen1auth: the proxy's own Gen1 identity (see gen1auth.h). bearer keeps the token under a mutex
 * together with the file's identity (device, inode, size, mtime); every g1a_identity stats the
 * file and reads it again when any of those changed, which is one cheap syscall per writer-less Gen1
 * request. client_credentials delegates the whole token life cycle (fetch, refresh ahead of expiry,
 * backoff, one shared fetch after 401s) to a gen2auth token authenticator. hadoop builds its query
 * pieces once.
 */
#include "gen1auth.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "urlcodec.h"

#define G1A_MAX_TOKEN 16384

struct g1a {
    cfg_g1auth_mode mode;
    g2auth *tok;                  /* client_credentials */
    char *hadoop_query;           /* hadoop: "user.name=U[&doas=D]" */
    pthread_mutex_t mu;           /* bearer: everything below */
    char *token;                  /* bearer: current token */
    char file[300];               /* bearer from a file: its path ("" = fixed token) */
    struct stat seen;             /* bearer file as last read */
    bool have_seen;
    char last_err[200];
    g1a_stats st;
};

static void wipe_free(char *s)
{
    if (!s) return;
    memset(s, 0, strlen(s));
    free(s);
}

/* Printable ASCII without spaces: what may follow "Bearer ". */
static bool token_ok(const char *s, size_t n)
{
    if (n == 0 || n > G1A_MAX_TOKEN) return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f) return false;
    return true;
}

static bool same_file(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* Read the token file's first line into a fresh string. Returns 0 (*out, *st) or -1 with err. */
static int read_token_file(const char *file, char **out, struct stat *st, char *err, size_t errlen)
{
    char buf[G1A_MAX_TOKEN + 2];
    size_t got = 0;
    int rc = -1;
    int fd = open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        snprintf(err, errlen, "gen1.auth.token_file: cannot read %s: %s", file, strerror(errno));
        return -1;
    }
    if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode)) {
        snprintf(err, errlen, "gen1.auth.token_file: %s is not a regular file", file);
        goto out;
    }
    while (got < sizeof buf) {
        ssize_t r = read(fd, buf + got, sizeof buf - got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            snprintf(err, errlen, "gen1.auth.token_file: cannot read %s: %s", file, strerror(errno));
            goto out;
        }
        if (r == 0) break;
        got += (size_t)r;
        if (memchr(buf, '\n', got)) break;
    }
    char *nl = memchr(buf, '\n', got);
    size_t n = nl ? (size_t)(nl - buf) : got;
    if (n > 0 && buf[n - 1] == '\r') n--;
    if (!token_ok(buf, n)) {
        snprintf(err, errlen, "gen1.auth.token_file: the first line of %s is empty, longer than %d bytes or not a "
                 "token (spaces or control characters)", file, G1A_MAX_TOKEN);
        goto out;
    }
    if (!(*out = strndup(buf, n))) {
        snprintf(err, errlen, "gen1 auth: out of memory");
        goto out;
    }
    rc = 0;
out:
    memset(buf, 0, sizeof buf);
    close(fd);
    return rc;
}

int g1a_new(const dp_config *cfg, httpc *http, g1a **out, char *err, size_t errlen)
{
    *out = NULL;
    g1a *a = calloc(1, sizeof *a);
    if (!a) {
        snprintf(err, errlen, "gen1 auth: out of memory");
        return -1;
    }
    pthread_mutex_init(&a->mu, NULL);
    a->mode = cfg->gen1_auth;
    switch (a->mode) {
    case CFG_G1AUTH_NONE: break;
    case CFG_G1AUTH_BEARER: {
        const cfg_secret *s = &cfg->gen1_token;
        if (!s->value || !token_ok(s->value, strlen(s->value))) {
            snprintf(err, errlen, "gen1.auth.token: required for mode bearer (printable, no spaces)");
            goto fail;
        }
        if (!(a->token = strdup(s->value))) {
            snprintf(err, errlen, "gen1 auth: out of memory");
            goto fail;
        }
        snprintf(a->file, sizeof a->file, "%s", s->file);
        /* The loader read the file a moment ago; remember what it looked like then. */
        if (a->file[0] && stat(a->file, &a->seen) == 0) a->have_seen = true;
        break;
    }
    case CFG_G1AUTH_CLIENT_CREDENTIALS: {
        char scope[320];
        if (cfg->gen1_scope[0]) snprintf(scope, sizeof scope, "%s", cfg->gen1_scope);
        else snprintf(scope, sizeof scope, "%s/.default", cfg->gen1_resource);
        g2auth_token_cfg tc = {
            .key_prefix = "gen1.auth",
            .label = "gen1 auth",
            .v2 = cfg->gen1_token_api == CFG_TOKEN_API_V2,
            .authority = cfg->gen1_authority,
            .tenant = cfg->gen1_tenant,
            .client_id = cfg->gen1_client_id,
            .client_secret = cfg->gen1_client_secret.value,
            .resource = cfg->gen1_resource,
            .scope = scope,
            .refresh_margin_s = cfg->gen1_refresh_margin_s,
            .connect_timeout_ms = cfg->gen1_connect_timeout_ms,
            .timeout_ms = cfg->gen1_timeout_ms,
        };
        if (g2auth_new_token(&tc, http, &a->tok, err, errlen) != 0) goto fail;
        break;
    }
    case CFG_G1AUTH_HADOOP: {
        dbuf q;
        dbuf_init(&q, 1024);
        int rc = cfg->gen1_user[0] ? dbuf_adds(&q, "user.name=") : -EINVAL;
        if (rc == 0) rc = url_encode(cfg->gen1_user, false, &q);
        if (rc == 0 && cfg->gen1_doas[0]) rc = dbuf_adds(&q, "&doas=");
        if (rc == 0 && cfg->gen1_doas[0]) rc = url_encode(cfg->gen1_doas, false, &q);
        if (rc != 0) {
            dbuf_free(&q);
            snprintf(err, errlen, "gen1.auth.user: required for mode hadoop");
            goto fail;
        }
        a->hadoop_query = dbuf_take(&q);
        break;
    }
    default:
        snprintf(err, errlen, "gen1.auth.mode: not supported");
        goto fail;
    }
    *out = a;
    return 0;
fail:
    g1a_free(a);
    return -1;
}

void g1a_stop(g1a *a)
{
    if (a && a->tok) g2auth_stop(a->tok);
}

void g1a_free(g1a *a)
{
    if (!a) return;
    g2auth_free(a->tok);
    wipe_free(a->token);
    free(a->hadoop_query);
    pthread_mutex_destroy(&a->mu);
    free(a);
}

cfg_g1auth_mode g1a_mode(const g1a *a) { return a ? a->mode : CFG_G1AUTH_NONE; }

bool g1a_active(const g1a *a) { return a && a->mode != CFG_G1AUTH_NONE; }

bool g1a_refreshable(const g1a *a) { return a && a->mode == CFG_G1AUTH_CLIENT_CREDENTIALS; }

int g1a_reload(g1a *a, const dp_config *nc, bool check, char *err, size_t errlen)
{
    if (!a || a->mode != CFG_G1AUTH_BEARER) return 0;
    const cfg_secret *s = &nc->gen1_token;
    if (nc->gen1_auth != a->mode) return 0; /* reported as "needs a restart" with gen1.auth.mode */
    if (!s->value || !token_ok(s->value, strlen(s->value))) {
        snprintf(err, errlen, "gen1.auth.token: required for mode bearer (printable, no spaces)");
        return -1;
    }
    pthread_mutex_lock(&a->mu);
    bool same_source = (a->file[0] != 0) == (s->file[0] != 0) && (!a->file[0] || strcmp(a->file, s->file) == 0);
    int rc = 0;
    if (!same_source) {
        snprintf(err, errlen, "gen1.auth.token: a token from another file or source needs a restart");
        rc = -1;
    } else if (!check) {
        char *tok = strdup(s->value);
        if (tok) {
            wipe_free(a->token);
            a->token = tok;
        }
        /* The loader just read the file: remember it as seen (the next request re-reads it only if it
         * changes again). */
        if (a->file[0]) a->have_seen = stat(a->file, &a->seen) == 0;
    }
    pthread_mutex_unlock(&a->mu);
    return rc;
}

/* bearer from a file: read it again if it changed since the last read. Called with mu held. */
static int refresh_file_locked(g1a *a, char *err, size_t errlen)
{
    struct stat now;
    if (stat(a->file, &now) == 0 && a->have_seen && same_file(&now, &a->seen)) return 0;
    char *tok = NULL;
    struct stat st;
    if (read_token_file(a->file, &tok, &st, a->last_err, sizeof a->last_err) != 0) {
        a->st.file_errors++;
        a->have_seen = false; /* try again next time */
        if (a->token) return 0; /* mid-rotation: keep the last token read */
        snprintf(err, errlen, "%s", a->last_err);
        return -1;
    }
    wipe_free(a->token);
    a->token = tok;
    a->seen = st;
    a->have_seen = true;
    a->st.file_reads++;
    return 0;
}

int g1a_identity(g1a *a, dbuf *authz, dbuf *query, uint64_t *gen, char *err, size_t errlen)
{
    dbuf_reset(authz);
    dbuf_reset(query);
    if (gen) *gen = 0;
    int rc = 0;
    switch (a->mode) {
    case CFG_G1AUTH_BEARER:
        pthread_mutex_lock(&a->mu);
        if (a->file[0]) rc = refresh_file_locked(a, err, errlen);
        if (rc == 0 && dbuf_printf(authz, "Bearer %s", a->token) != 0) {
            snprintf(err, errlen, "gen1 auth: out of memory");
            rc = -1;
        }
        pthread_mutex_unlock(&a->mu);
        return rc;
    case CFG_G1AUTH_CLIENT_CREDENTIALS: {
        g2auth_req none = {0};
        rc = g2auth_authorization(a->tok, &none, authz, gen, err, errlen);
        return rc == G2AUTH_AGAIN ? G1A_AGAIN : rc;
    }
    case CFG_G1AUTH_HADOOP:
        if (dbuf_adds(query, a->hadoop_query) != 0) {
            snprintf(err, errlen, "gen1 auth: out of memory");
            return -1;
        }
        return 0;
    default: return 0;
    }
}

int g1a_wait(g1a *a, uint64_t stale_gen, g2auth_ready_fn fn, void *ud)
{
    if (!a || a->mode != CFG_G1AUTH_CLIENT_CREDENTIALS) return -1;
    return g2auth_wait(a->tok, stale_gen, fn, ud);
}

int g1a_wait_ready(g1a *a, unsigned timeout_ms, char *err, size_t errlen)
{
    if (!a) return 0;
    if (a->mode == CFG_G1AUTH_CLIENT_CREDENTIALS) return g2auth_wait_ready(a->tok, timeout_ms, err, errlen);
    if (a->mode != CFG_G1AUTH_BEARER) return 0;
    dbuf z, q;
    dbuf_init(&z, G1A_MAX_TOKEN + 16);
    dbuf_init(&q, 16);
    int rc = g1a_identity(a, &z, &q, NULL, err, errlen);
    if (z.data) memset(z.data, 0, z.len);
    dbuf_free(&z);
    dbuf_free(&q);
    return rc == 0 ? 0 : -1;
}

void g1a_get_stats(g1a *a, g1a_stats *st)
{
    memset(st, 0, sizeof *st);
    if (!a) return;
    pthread_mutex_lock(&a->mu);
    st->file_reads = a->st.file_reads;
    st->file_errors = a->st.file_errors;
    pthread_mutex_unlock(&a->mu);
    if (a->tok) g2auth_get_stats(a->tok, &st->token);
}
