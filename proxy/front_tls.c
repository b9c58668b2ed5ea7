/*
 * front_tls: the HTTPS front's certificate, key and client CAs (front_tls.h).
 */
#include "front_tls.h"

#include <errno.h>
#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "log.h"
#include "reload.h"

#define TLS_MAX_CHAIN 16          /* certificates in tls.cert_file (leaf + intermediates) */
#define TLS_MAX_FILE (1u << 20)   /* a PEM file is small; refuse anything bigger */
/* TLS 1.2 and 1.3 only, GnuTLS's usual ciphers otherwise. */
#define TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

/* One loaded certificate + key (+ client CAs). Never freed before front_tls_free: a handshake that
 * started with it may still use it after a reload replaced it. */
typedef struct tls_set {
    struct tls_set *older;
    gnutls_pcert_st pcert[TLS_MAX_CHAIN];
    unsigned npcert;
    gnutls_privkey_t key;
    gnutls_x509_trust_list_t client_ca; /* NULL without tls.client_ca_file */
} tls_set;

struct front_tls {
    pthread_mutex_t mu;
    tls_set *current;             /* guarded by mu; current->older... are the replaced ones */
    tls_set *pending;             /* loaded by the reload check, installed by its apply (reload thread) */
    bool client_auth;             /* tls.client_ca_file was set at start (MHD asks for client certificates) */
    char *client_ca_pem;          /* its text at start, for MHD_OPTION_HTTPS_MEM_TRUST */
    struct MHD_OptionItem opts[4];
};

/* GnuTLS's retrieve callback has no user pointer, and one process has one front: the callback finds
 * it here. Set by front_tls_new, cleared by front_tls_free. */
static _Atomic(front_tls *) tls_owner;

static const char *const tls_live_keys[] = {"tls.cert_file", "tls.key_file", "tls.client_ca_file", NULL};

/* Read a whole (small) file into a GnuTLS datum (free with gnutls_free). 0 or -1 with err. */
static int read_file(const char *key, const char *path, gnutls_datum_t *out, char *err, size_t errlen)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        snprintf(err, errlen, "%s: cannot open %s: %s", key, path, strerror(errno));
        return -1;
    }
    unsigned char *buf = gnutls_malloc(TLS_MAX_FILE + 1);
    size_t n = buf ? fread(buf, 1, TLS_MAX_FILE + 1, fp) : 0;
    int rerr = ferror(fp);
    fclose(fp);
    if (!buf || rerr || n == 0 || n > TLS_MAX_FILE) {
        snprintf(err, errlen, "%s: %s is %s", key, path,
                 !buf ? "not readable (out of memory)" : rerr ? "not readable" : n == 0 ? "empty" : "over 1 MiB");
        gnutls_free(buf);
        return -1;
    }
    buf[n] = '\0';
    out->data = buf;
    out->size = (unsigned)n;
    return 0;
}

static void set_free(tls_set *s)
{
    if (!s) return;
    for (unsigned i = 0; i < s->npcert; i++) gnutls_pcert_deinit(&s->pcert[i]);
    if (s->key) gnutls_privkey_deinit(s->key);
    if (s->client_ca) gnutls_x509_trust_list_deinit(s->client_ca, 1);
    free(s);
}

/* The key id of the public key in pcert, or of the private key's public half. */
static int key_id(gnutls_pubkey_t pk, unsigned char *id, size_t *len)
{
    return gnutls_pubkey_get_key_id(pk, 0, id, len);
}

static int key_matches(tls_set *s)
{
    gnutls_pubkey_t pk = NULL;
    unsigned char a[64], b[64];
    size_t la = sizeof a, lb = sizeof b;
    int ok = gnutls_pubkey_init(&pk) == 0 && gnutls_pubkey_import_privkey(pk, s->key, 0, 0) == 0 &&
             key_id(pk, a, &la) == 0 && key_id(s->pcert[0].pubkey, b, &lb) == 0 && la == lb && memcmp(a, b, la) == 0;
    if (pk) gnutls_pubkey_deinit(pk);
    return ok ? 0 : -1;
}

/* Warn when the leaf certificate is not (or no longer) valid now: clients will refuse it. */
static void warn_validity(const char *path, const gnutls_datum_t *der)
{
    gnutls_x509_crt_t crt;
    if (gnutls_x509_crt_init(&crt) != 0) return;
    if (gnutls_x509_crt_import(crt, der, GNUTLS_X509_FMT_DER) == 0) {
        time_t now = time(NULL);
        time_t nb = gnutls_x509_crt_get_activation_time(crt), na = gnutls_x509_crt_get_expiration_time(crt);
        if (na != (time_t)-1 && na < now)
            LOGE("msg=\"tls.cert_file: the certificate has expired; clients will refuse it\" file=%s expired_s_ago=%lld",
                 path, (long long)(now - na));
        else if (nb != (time_t)-1 && nb > now)
            LOGE("msg=\"tls.cert_file: the certificate is not valid yet; clients will refuse it\" file=%s", path);
    }
    gnutls_x509_crt_deinit(crt);
}

/* Load cfg's three files into a new set. 0 or -1 with err naming the key. */
static int load_set(const dp_config *cfg, tls_set **out, char **client_ca_pem, char *err, size_t errlen)
{
    tls_set *s = calloc(1, sizeof *s);
    gnutls_datum_t d = {NULL, 0};
    int rc;
    if (!s) {
        snprintf(err, errlen, "tls.cert_file: out of memory");
        return -1;
    }
    if (read_file("tls.cert_file", cfg->tls_cert_file, &d, err, errlen) != 0) goto fail;
    s->npcert = TLS_MAX_CHAIN;
    rc = gnutls_pcert_list_import_x509_raw(s->pcert, &s->npcert, &d, GNUTLS_X509_FMT_PEM, 0);
    gnutls_free(d.data);
    d.data = NULL;
    if (rc < 0 || s->npcert == 0) {
        s->npcert = 0;
        snprintf(err, errlen, "tls.cert_file: %s holds no usable PEM certificate chain (at most %d certificates): %s",
                 cfg->tls_cert_file, TLS_MAX_CHAIN, gnutls_strerror(rc));
        goto fail;
    }
    warn_validity(cfg->tls_cert_file, &s->pcert[0].cert);

    struct stat st;
    if (stat(cfg->tls_key_file, &st) != 0) {
        snprintf(err, errlen, "tls.key_file: cannot open %s: %s", cfg->tls_key_file, strerror(errno));
        goto fail;
    }
    if (st.st_mode & (S_IROTH | S_IWOTH)) {
        snprintf(err, errlen, "tls.key_file: %s can be read or written by other users (mode %04o); make it 0600 or 0640",
                 cfg->tls_key_file, (unsigned)(st.st_mode & 07777));
        goto fail;
    }
    if (read_file("tls.key_file", cfg->tls_key_file, &d, err, errlen) != 0) goto fail;
    rc = gnutls_privkey_init(&s->key);
    if (rc == 0) rc = gnutls_privkey_import_x509_raw(s->key, &d, GNUTLS_X509_FMT_PEM, NULL, 0);
    gnutls_memset(d.data, 0, d.size);
    gnutls_free(d.data);
    d.data = NULL;
    if (rc < 0) {
        snprintf(err, errlen, "tls.key_file: %s holds no usable PEM private key (a passphrase-protected key is not "
                 "supported): %s", cfg->tls_key_file, gnutls_strerror(rc));
        goto fail;
    }
    if (key_matches(s) != 0) {
        snprintf(err, errlen, "tls.key_file: %s is not the key of the first certificate in tls.cert_file %s",
                 cfg->tls_key_file, cfg->tls_cert_file);
        goto fail;
    }

    if (cfg->tls_client_ca_file[0]) {
        if (read_file("tls.client_ca_file", cfg->tls_client_ca_file, &d, err, errlen) != 0) goto fail;
        rc = gnutls_x509_trust_list_init(&s->client_ca, 0);
        if (rc == 0) rc = gnutls_x509_trust_list_add_trust_mem(s->client_ca, &d, NULL, GNUTLS_X509_FMT_PEM, 0, 0);
        if (rc <= 0) {
            snprintf(err, errlen, "tls.client_ca_file: %s holds no PEM CA certificate%s%s", cfg->tls_client_ca_file,
                     rc < 0 ? ": " : "", rc < 0 ? gnutls_strerror(rc) : "");
            gnutls_free(d.data);
            goto fail;
        }
        if (client_ca_pem) {
            *client_ca_pem = strdup((const char *)d.data);
            if (!*client_ca_pem) {
                snprintf(err, errlen, "tls.client_ca_file: out of memory");
                gnutls_free(d.data);
                goto fail;
            }
        }
        gnutls_free(d.data);
    }
    *out = s;
    return 0;

fail:
    set_free(s);
    return -1;
}

static int retrieve_cb(gnutls_session_t session, const gnutls_datum_t *req_ca_dn, int nreqs,
                       const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length, gnutls_pcert_st **pcert,
                       unsigned int *pcert_length, gnutls_privkey_t *pkey)
{
    (void)session, (void)req_ca_dn, (void)nreqs, (void)pk_algos, (void)pk_algos_length;
    front_tls *t = atomic_load(&tls_owner);
    if (!t) return -1;
    pthread_mutex_lock(&t->mu);
    tls_set *s = t->current;
    pthread_mutex_unlock(&t->mu);
    *pcert = s->pcert;
    *pcert_length = s->npcert;
    *pkey = s->key;
    return 0;
}

static int tls_reload(void *arg, const dp_config *nc, bool check, char *err, size_t errlen)
{
    front_tls *t = arg;
    if (!check) {
        if (!t->pending) return 0;
        pthread_mutex_lock(&t->mu);
        t->pending->older = t->current;
        t->current = t->pending;
        pthread_mutex_unlock(&t->mu);
        t->pending = NULL;
        LOGI("msg=\"front TLS files reloaded\" cert_file=%s client_ca=%s", nc->tls_cert_file,
             nc->tls_client_ca_file[0] ? nc->tls_client_ca_file : "none");
        return 0;
    }
    set_free(t->pending);
    t->pending = NULL;
    if (!nc->tls_cert_file[0]) {
        snprintf(err, errlen, "tls.cert_file: turning HTTPS off needs a restart");
        return -1;
    }
    if (!nc->tls_client_ca_file[0] != !t->client_auth) {
        snprintf(err, errlen, "tls.client_ca_file: turning client certificates %s needs a restart",
                 t->client_auth ? "off" : "on");
        return -1;
    }
    return load_set(nc, &t->pending, NULL, err, errlen);
}

int front_tls_new(const dp_config *cfg, front_tls **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!cfg->tls_cert_file[0]) return 0;
    if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES ||
        MHD_is_feature_supported(MHD_FEATURE_HTTPS_CERT_CALLBACK) != MHD_YES) {
        snprintf(err, errlen, "tls.cert_file: this libmicrohttpd was built without TLS (GnuTLS) support");
        return -1;
    }
    front_tls *t = calloc(1, sizeof *t);
    if (!t) {
        snprintf(err, errlen, "tls.cert_file: out of memory");
        return -1;
    }
    pthread_mutex_init(&t->mu, NULL);
    if (load_set(cfg, &t->current, &t->client_ca_pem, err, errlen) != 0) {
        pthread_mutex_destroy(&t->mu);
        free(t);
        return -1;
    }
    t->client_auth = cfg->tls_client_ca_file[0] != '\0';
    front_tls *none = NULL;
    if (!atomic_compare_exchange_strong(&tls_owner, &none, t)) {
        snprintf(err, errlen, "tls.cert_file: another HTTPS front runs in this process");
        set_free(t->current);
        free(t->client_ca_pem);
        pthread_mutex_destroy(&t->mu);
        free(t);
        return -1;
    }
    int i = 0;
    /* GnuTLS's callback type goes through MHD's void * option slot, as libmicrohttpd documents. */
    t->opts[i++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_CERT_CALLBACK, 0, (void *)retrieve_cb};
    t->opts[i++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)TLS_PRIORITIES};
    if (t->client_ca_pem) t->opts[i++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_TRUST, 0, t->client_ca_pem};
    t->opts[i] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    if (rl_register("front_tls", tls_live_keys, tls_reload, t) != 0)
        LOGW("msg=\"front TLS files will not follow SIGHUP: too many reload hooks\"");
    *out = t;
    return 0;
}

unsigned front_tls_mhd_flags(const front_tls *t) { return t ? MHD_USE_TLS : 0; }

struct MHD_OptionItem *front_tls_mhd_options(front_tls *t)
{
    static struct MHD_OptionItem none[] = {{MHD_OPTION_END, 0, NULL}};
    return t ? t->opts : none;
}

int front_tls_check_peer(front_tls *t, struct MHD_Connection *c, char *msg, size_t msglen)
{
    if (!t || !t->client_auth) return 0;
    pthread_mutex_lock(&t->mu);
    gnutls_x509_trust_list_t tl = t->current->client_ca;
    pthread_mutex_unlock(&t->mu);
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    gnutls_session_t s = ci ? (gnutls_session_t)ci->tls_session : NULL;
    unsigned n = 0;
    const gnutls_datum_t *peers = s ? gnutls_certificate_get_peers(s, &n) : NULL;
    if (!peers || n == 0) {
        snprintf(msg, msglen, "this proxy requires a client certificate (TLS); none was presented");
        return -1;
    }
    if (n > TLS_MAX_CHAIN) n = TLS_MAX_CHAIN;
    gnutls_x509_crt_t crts[TLS_MAX_CHAIN];
    unsigned ncrt = 0;
    int rc = 0;
    for (; ncrt < n; ncrt++) {
        if ((rc = gnutls_x509_crt_init(&crts[ncrt])) < 0) break;
        if ((rc = gnutls_x509_crt_import(crts[ncrt], &peers[ncrt], GNUTLS_X509_FMT_DER)) < 0) {
            gnutls_x509_crt_deinit(crts[ncrt]);
            break;
        }
    }
    unsigned status = 0;
    if (rc >= 0) rc = gnutls_x509_trust_list_verify_crt(tl, crts, ncrt, 0, &status, NULL);
    for (unsigned i = 0; i < ncrt; i++) gnutls_x509_crt_deinit(crts[i]);
    if (rc < 0) {
        snprintf(msg, msglen, "the client certificate could not be checked: %s", gnutls_strerror(rc));
        return -1;
    }
    if (status == 0) return 0;
    gnutls_datum_t why = {NULL, 0};
    if (gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &why, 0) == 0 && why.data)
        snprintf(msg, msglen, "the client certificate is not accepted: %s", (const char *)why.data);
    else
        snprintf(msg, msglen, "the client certificate is not accepted (status 0x%x)", status);
    gnutls_free(why.data);
    return -1;
}

void front_tls_free(front_tls *t)
{
    if (!t) return;
    rl_unregister(tls_reload, t);
    front_tls *me = t;
    atomic_compare_exchange_strong(&tls_owner, &me, NULL);
    set_free(t->pending);
    for (tls_set *s = t->current, *next; s; s = next) {
        next = s->older;
        set_free(s);
    }
    free(t->client_ca_pem);
    pthread_mutex_destroy(&t->mu);
    free(t);
}
