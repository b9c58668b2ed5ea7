/*
 * dualpipe-emu: the Gen1 (WebHDFS) and Gen2 (DFS) emulators used as test doubles by every dualpipe
 * test, the local stack and the bench harness.
 *
 *   dualpipe-emu gen1 --listen 127.0.0.1:PORT --data DIR [--dialect adls|hadoop] [--token TOKEN] ...
 *   dualpipe-emu gen2 --listen 127.0.0.1:PORT --data DIR --account NAME --key BASE64KEY ...
 *
 * Once every listener is up it prints one line on stdout that tests wait for:
 *   dualpipe-emu ready service=gen1 listen=127.0.0.1:P admin=127.0.0.1:P [datanode=127.0.0.1:P]
 * and then serves until SIGINT or SIGTERM.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "emu_admin.h"
#include "emu_fault.h"
#include "emu_gen1.h"
#include "emu_ident.h"
#include "emu_gen2.h"
#include "emu_http.h"
#include "emu_store.h"
#include "log.h"
#include "skey.h"

#define MAX_FAULT_FLAGS 32
#define MAX_IDENTITY_FLAGS 32

typedef struct emu_args {
    const char *service;
    const char *listen, *admin, *datanode;
    const char *data;
    const char *dialect;
    const char *token, *token_file;
    const char *account, *key, *key_file;
    const char *oauth_client_id;
    const char *superuser, *user;
    const char *log_level;
    const char *faults[MAX_FAULT_FLAGS];
    int nfaults;
    const char *identities[MAX_IDENTITY_FLAGS];
    int nidentities;
    unsigned long long seed;
    unsigned long long max_body;
    unsigned long max_header, max_connections, token_ttl, idle_timeout;
    unsigned long long lease_ms;
    unsigned long ls_limit;
    unsigned long delete_page;
    int sync;
    const char *tls_cert, *tls_key;
} emu_args;

static void usage(FILE *f)
{
    fputs("usage:\n"
          "  dualpipe-emu gen1 --listen 127.0.0.1:PORT --data DIR [--dialect adls|hadoop]\n"
          "                    [--token TOKEN] [--token-file FILE (lines NAME TOKEN, re-read on change)]\n"
          "                    [--identity NAME=TOKEN (repeatable)] [--datanode-listen 127.0.0.1:PORT]\n"
          "                    [--oauth-client-id ID [--token-ttl SECONDS]: token endpoint, identity \"oauth\"]\n"
          "                    [--superuser NAME] [--user NAME] [--lease-ms MS (stale lease expiry, default 600000)]\n"
          "                    [--ls-limit N (hadoop LISTSTATUS_BATCH entries per answer, dfs.ls.limit; default 1000)]\n"
          "  dualpipe-emu gen2 --listen 127.0.0.1:PORT --data DIR --account NAME\n"
          "                    (--key BASE64KEY | --key-file FILE | env DUALPIPE_EMU_KEY)\n"
          "                    [--oauth-client-id ID] [--token-ttl SECONDS]   (secret: env DUALPIPE_EMU_CLIENT_SECRET)\n"
          "                    [--delete-page N (recursive deletes remove at most N entries per call; 0 = off)]\n"
          "common options:\n"
          "  --admin 127.0.0.1:PORT     admin endpoint (faults, counters, down/up); default 127.0.0.1:0\n"
          "  --fault RULE               fault rule, repeatable (e.g. method=POST,op=APPEND,status=503,count=2)\n"
          "  --seed N                   seed for fraction= fault rules (default 1)\n"
          "  --max-body BYTES           largest request body (default gen1 4194304, gen2 104857600)\n"
          "  --max-header BYTES         memory for one request's headers (default 65536)\n"
          "  --max-connections N        (default 1024)   --idle-timeout SECONDS (default 120)\n"
          "  --sync                     fdatasync the metadata log after every change\n"
          "  --tls-cert FILE --tls-key FILE   serve HTTPS on --listen with this PEM chain and key (the admin\n"
          "                             endpoint and a hadoop --datanode-listen stay plain HTTP)\n"
          "  --log-level error|warn|info|debug   (default info)\n"
          "PORT 0 picks a free port; the ready line on stdout tells which.\n",
          f);
}

static int parse_ull(const char *name, const char *v, unsigned long long max, unsigned long long *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (errno || end == v || *end || v[0] == '-' || x > max) {
        fprintf(stderr, "dualpipe-emu: %s: '%s' is not a number between 0 and %llu\n", name, v, max);
        return -1;
    }
    *out = x;
    return 0;
}

static int parse_args(int argc, char **argv, emu_args *a)
{
    if (argc < 2) return -1;
    a->service = argv[1];
    for (int i = 2; i < argc; i++) {
        const char *f = argv[i];
        if (strcmp(f, "--sync") == 0) {
            a->sync = 1;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "dualpipe-emu: %s needs a value\n", f);
            return -1;
        }
        const char *v = argv[++i];
        unsigned long long x;
        if (strcmp(f, "--listen") == 0) a->listen = v;
        else if (strcmp(f, "--admin") == 0) a->admin = v;
        else if (strcmp(f, "--datanode-listen") == 0) a->datanode = v;
        else if (strcmp(f, "--data") == 0) a->data = v;
        else if (strcmp(f, "--dialect") == 0) a->dialect = v;
        else if (strcmp(f, "--token") == 0) a->token = v;
        else if (strcmp(f, "--token-file") == 0) a->token_file = v;
        else if (strcmp(f, "--account") == 0) a->account = v;
        else if (strcmp(f, "--key") == 0) a->key = v;
        else if (strcmp(f, "--key-file") == 0) a->key_file = v;
        else if (strcmp(f, "--oauth-client-id") == 0) a->oauth_client_id = v;
        else if (strcmp(f, "--superuser") == 0) a->superuser = v;
        else if (strcmp(f, "--user") == 0) a->user = v;
        else if (strcmp(f, "--log-level") == 0) a->log_level = v;
        else if (strcmp(f, "--tls-cert") == 0) a->tls_cert = v;
        else if (strcmp(f, "--tls-key") == 0) a->tls_key = v;
        else if (strcmp(f, "--fault") == 0) {
            if (a->nfaults >= MAX_FAULT_FLAGS) {
                fprintf(stderr, "dualpipe-emu: at most %d --fault flags\n", MAX_FAULT_FLAGS);
                return -1;
            }
            a->faults[a->nfaults++] = v;
        } else if (strcmp(f, "--identity") == 0) {
            if (a->nidentities >= MAX_IDENTITY_FLAGS) {
                fprintf(stderr, "dualpipe-emu: at most %d --identity flags\n", MAX_IDENTITY_FLAGS);
                return -1;
            }
            a->identities[a->nidentities++] = v;
        } else if (strcmp(f, "--seed") == 0) {
            if (parse_ull(f, v, ~0ULL, &a->seed)) return -1;
        } else if (strcmp(f, "--max-body") == 0) {
            if (parse_ull(f, v, 1ULL << 40, &a->max_body)) return -1;
        } else if (strcmp(f, "--max-header") == 0) {
            if (parse_ull(f, v, 16u << 20, &x)) return -1;
            a->max_header = (unsigned long)x;
        } else if (strcmp(f, "--max-connections") == 0) {
            if (parse_ull(f, v, 100000, &x)) return -1;
            a->max_connections = (unsigned long)x;
        } else if (strcmp(f, "--idle-timeout") == 0) {
            if (parse_ull(f, v, 86400, &x)) return -1;
            a->idle_timeout = (unsigned long)x;
        } else if (strcmp(f, "--lease-ms") == 0) {
            if (parse_ull(f, v, 86400000ULL, &a->lease_ms)) return -1;
        } else if (strcmp(f, "--token-ttl") == 0) {
            if (parse_ull(f, v, 86400 * 365, &x)) return -1;
            a->token_ttl = (unsigned long)x;
        } else if (strcmp(f, "--ls-limit") == 0) {
            if (parse_ull(f, v, 1000000, &x) || x == 0) return -1;
            a->ls_limit = (unsigned long)x;
        } else if (strcmp(f, "--delete-page") == 0) {
            if (parse_ull(f, v, 1000000, &x)) return -1;
            a->delete_page = (unsigned long)x;
        } else {
            fprintf(stderr, "dualpipe-emu: unknown option %s\n", f);
            return -1;
        }
    }
    return 0;
}

/* "HOST:PORT" into host (static buffer in the caller) and port. */
static int split_hostport(const char *name, const char *v, char *host, size_t cap, int *port)
{
    const char *c = v ? strrchr(v, ':') : NULL;
    unsigned long long p;
    if (!c || (size_t)(c - v) >= cap || c == v) {
        fprintf(stderr, "dualpipe-emu: %s must be HOST:PORT, got '%s'\n", name, v ? v : "");
        return -1;
    }
    memcpy(host, v, (size_t)(c - v));
    host[c - v] = '\0';
    if (parse_ull(name, c + 1, 65535, &p)) return -1;
    *port = (int)p;
    return 0;
}

/* Read a secret from a file (first line, trailing newline stripped) into a malloc'd string. */
static char *read_secret_file(const char *flag, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "dualpipe-emu: %s: cannot open the file given: %s\n", flag, strerror(errno));
        return NULL;
    }
    char buf[4096];
    char *s = NULL;
    if (fgets(buf, sizeof buf, f)) {
        buf[strcspn(buf, "\r\n")] = '\0';
        s = strdup(buf);
    } else {
        fprintf(stderr, "dualpipe-emu: %s: the file is empty\n", flag);
    }
    fclose(f);
    return s;
}

/* A whole PEM file (at most 1 MiB) as a malloc'd string, or NULL (message printed). */
static char *read_whole_file(const char *flag, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "dualpipe-emu: %s: cannot open %s: %s\n", flag, path, strerror(errno));
        return NULL;
    }
    char *buf = malloc((1u << 20) + 1);
    size_t n = buf ? fread(buf, 1, 1u << 20, f) : 0;
    fclose(f);
    if (!buf || n == 0) {
        fprintf(stderr, "dualpipe-emu: %s: %s is empty or unreadable\n", flag, path);
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

int main(int argc, char **argv)
{
    emu_args a = {.seed = 1};
    int rc = 1;
    char err[512];
    emu_store *store = NULL;
    emu_fault *faults = NULL;
    emu_gen1 *g1 = NULL;
    emu_gen2 *g2 = NULL;
    emu_http *http = NULL, *dn = NULL, *admin_http = NULL;
    char *secret = NULL, *tls_cert = NULL, *tls_key = NULL;
    emu_admin admin = {0};
    emu_service svc, admin_svc;
    skey_key key;

    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        }
    if (argc < 2) {
        fprintf(stderr, "dualpipe-emu: a service is required (gen1 or gen2)\n");
        usage(stderr);
        return 2;
    }
    if (parse_args(argc, argv, &a) != 0) {
        usage(stderr);
        return 2;
    }
    bool gen1 = strcmp(a.service, "gen1") == 0;
    if (!gen1 && strcmp(a.service, "gen2") != 0) {
        fprintf(stderr, "dualpipe-emu: service must be gen1 or gen2, got '%s'\n", a.service);
        usage(stderr);
        return 2;
    }
    log_set_component(gen1 ? "emu-gen1" : "emu-gen2");
    if (a.log_level) {
        log_level lvl;
        if (log_parse_level(a.log_level, &lvl) != 0) {
            fprintf(stderr, "dualpipe-emu: --log-level must be error, warn, info or debug\n");
            return 2;
        }
        log_set_level(lvl);
    }
    if (!a.listen || !a.data) {
        fprintf(stderr, "dualpipe-emu: --listen and --data are required\n");
        return 2;
    }
    char host[64], admin_host[64], dn_host[64];
    int port, admin_port = 0, dn_port = 0;
    if (split_hostport("--listen", a.listen, host, sizeof host, &port)) return 2;
    if (split_hostport("--admin", a.admin ? a.admin : "127.0.0.1:0", admin_host, sizeof admin_host, &admin_port))
        return 2;
    bool hadoop = false;
    if (gen1 && a.dialect) {
        if (strcmp(a.dialect, "hadoop") == 0)
            hadoop = true;
        else if (strcmp(a.dialect, "adls") != 0) {
            fprintf(stderr, "dualpipe-emu: --dialect must be adls or hadoop\n");
            return 2;
        }
    }
    if (hadoop && split_hostport("--datanode-listen", a.datanode ? a.datanode : "127.0.0.1:0", dn_host,
                                 sizeof dn_host, &dn_port))
        return 2;

    /* SIGINT/SIGTERM are waited for with sigwait; block them before any thread starts. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    emu_store_opts so = {.dir = a.data, .sync = a.sync, .root_owner = gen1 ? "hdfs" : "$superuser",
                         .root_group = gen1 ? "supergroup" : "$superuser", .root_mode = gen1 ? 0755 : 0750};
    if (gen1 && a.superuser) so.root_owner = a.superuser;
    if (emu_store_open(&so, &store, err, sizeof err) != 0) {
        fprintf(stderr, "dualpipe-emu: data directory: %s\n", err);
        goto out;
    }
    faults = emu_fault_new(a.seed);
    if (!faults) goto out;
    for (int i = 0; i < a.nfaults; i++) {
        if (emu_fault_add(faults, a.faults[i], err, sizeof err) != 0) {
            fprintf(stderr, "dualpipe-emu: --fault: %s\n", err);
            goto out;
        }
    }

    if (gen1) {
        const char *token = a.token;
        if (!token && !a.token_file && !a.nidentities) token = getenv("DUALPIPE_EMU_TOKEN");
        const char *csecret = getenv("DUALPIPE_EMU_CLIENT_SECRET");
        emu_ident_opts io = {.token = token, .file = a.token_file, .pairs = a.identities, .npairs = a.nidentities,
                             .oauth_client_id = a.oauth_client_id,
                             .oauth_client_secret = (csecret && *csecret) ? csecret : NULL,
                             .token_ttl_s = a.token_ttl ? (unsigned)a.token_ttl : 3600};
        emu_ident *ident = NULL;
        if (emu_ident_new(&io, &ident, err, sizeof err) != 0) {
            fprintf(stderr, "dualpipe-emu: %s\n", err);
            goto out;
        }
        emu_gen1_opts o = {.store = store, .hadoop = hadoop, .ident = ident,
                           .superuser = a.superuser ? a.superuser : "hdfs", .default_user = a.user,
                           .max_body = a.max_body ? a.max_body : (4u << 20), .lease_ms = (int64_t)a.lease_ms,
                           .ls_limit = (unsigned)a.ls_limit};
        if (emu_gen1_new(&o, &g1, &svc) != 0) {
            fprintf(stderr, "dualpipe-emu: cannot create the gen1 service\n");
            goto out;
        }
    } else {
        const char *k = a.key;
        if (!k && a.key_file) k = secret = read_secret_file("--key-file", a.key_file);
        if (!k && !a.key_file) k = getenv("DUALPIPE_EMU_KEY");
        if (!a.account || !k) {
            fprintf(stderr, "dualpipe-emu: gen2 needs --account and a key (--key, --key-file or env "
                            "DUALPIPE_EMU_KEY)\n");
            goto out;
        }
        if (skey_key_init(&key, a.account, k) != 0) {
            fprintf(stderr, "dualpipe-emu: --account/--key: the key must be base64 and the account name "
                            "non-empty\n");
            goto out;
        }
        const char *csecret = getenv("DUALPIPE_EMU_CLIENT_SECRET");
        emu_gen2_opts o = {.store = store, .key = &key, .oauth_client_id = a.oauth_client_id,
                           .oauth_client_secret = (csecret && *csecret) ? csecret : NULL,
                           .token_ttl_s = a.token_ttl ? (unsigned)a.token_ttl : 3600,
                           .max_body = a.max_body ? a.max_body : (100u << 20),
                           .delete_page = (uint32_t)a.delete_page};
        if (emu_gen2_new(&o, &g2, &svc) != 0) {
            fprintf(stderr, "dualpipe-emu: cannot create the gen2 service\n");
            goto out;
        }
    }

    if (!a.tls_cert != !a.tls_key) {
        fprintf(stderr, "dualpipe-emu: --tls-cert and --tls-key go together\n");
        goto out;
    }
    if (a.tls_cert) {
        tls_cert = read_whole_file("--tls-cert", a.tls_cert);
        tls_key = read_whole_file("--tls-key", a.tls_key);
        if (!tls_cert || !tls_key) goto out;
    }
    emu_http_opts ho = {.host = host, .port = port, .tls_cert_pem = tls_cert, .tls_key_pem = tls_key,
                        .max_body = a.max_body ? a.max_body : (gen1 ? (4u << 20) : (100u << 20)),
                        .max_header = a.max_header, .max_connections = (unsigned)a.max_connections,
                        .idle_timeout_s = (unsigned)a.idle_timeout};
    if (emu_http_start(&ho, &svc, faults, &http, err, sizeof err) != 0) {
        fprintf(stderr, "dualpipe-emu: --listen: %s\n", err);
        goto out;
    }
    admin.faults = faults;
    admin.store = store;
    admin.targets[admin.ntargets++] = http;
    if (hadoop) {
        emu_http_opts dno = ho;
        dno.tls_cert_pem = dno.tls_key_pem = NULL;
        dno.host = dn_host;
        dno.port = dn_port;
        if (emu_http_start(&dno, &svc, faults, &dn, err, sizeof err) != 0) {
            fprintf(stderr, "dualpipe-emu: --datanode-listen: %s\n", err);
            goto out;
        }
        char url[96];
        snprintf(url, sizeof url, "http://%s:%d", dn_host, emu_http_port(dn));
        emu_gen1_set_datanode(g1, url);
        admin.targets[admin.ntargets++] = dn;
    }
    emu_admin_service(&admin, &admin_svc);
    emu_http_opts ao = {.host = admin_host, .port = admin_port, .max_body = 64u << 10, .max_connections = 64};
    if (emu_http_start(&ao, &admin_svc, NULL, &admin_http, err, sizeof err) != 0) {
        fprintf(stderr, "dualpipe-emu: --admin: %s\n", err);
        goto out;
    }

    LOGI("msg=started service=%s listen=%s:%d admin=%s:%d dialect=%s", a.service, host, emu_http_port(http),
         admin_host, emu_http_port(admin_http), gen1 ? (hadoop ? "hadoop" : "adls") : "dfs");
    if (dn)
        printf("dualpipe-emu ready service=%s listen=%s:%d admin=%s:%d datanode=%s:%d\n", a.service, host,
               emu_http_port(http), admin_host, emu_http_port(admin_http), dn_host, emu_http_port(dn));
    else
        printf("dualpipe-emu ready service=%s listen=%s:%d admin=%s:%d\n", a.service, host, emu_http_port(http),
               admin_host, emu_http_port(admin_http));
    fflush(stdout);

    int sig = 0;
    sigwait(&sigs, &sig);
    LOGI("msg=stopping signal=%d", sig);
    rc = 0;
out:
    emu_http_stop(admin_http);
    emu_http_stop(dn);
    emu_http_stop(http);
    if (g1) emu_gen1_free(g1);
    if (g2) emu_gen2_free(g2);
    emu_fault_free(faults);
    if (store) emu_store_close(store);
    free(secret);
    free(tls_cert);
    free(tls_key);
    return rc;
}
