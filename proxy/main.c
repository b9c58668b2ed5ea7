/*
 * main: the `dualpipe` command line. `--config FILE` runs the proxy: it loads the configuration,
 * starts the modules in a visible order (httpc engine, Gen1 client, pipeline — I/O engine, spool,
 * journal with its recovery, applier, the recovered records resubmitted — then the front and the
 * admin), prints one "dualpipe ready listen=H:P admin=H:P" line on stdout once both listeners are
 * up, then waits for signals with sigwait (they are blocked in every thread, so no handler runs in
 * the middle of anything). SIGHUP reloads the file (reload.h: what can change live does, what needs
 * a restart is named; a file with an error changes nothing). SIGINT/SIGTERM stop in reverse: the
 * front takes no new requests and lets the suspended ones finish (journal, Gen1, ack) for up to
 * shutdown.drain_ms, the admin closes, the pipeline refuses new records and drains the applier for up
 * to shutdown.drain_ms again (what is left stays in the journal for the next start), the httpc engine
 * stops (cancelling whatever is left), the front closes its connections (releasing their spool
 * bodies), and the pipeline commits what is queued and closes the journal.
 * `dualpipe journal ...` is the operator command (jcli.h). `--check-config FILE` validates and
 * explains the configuration; `--version` and `--help` do the obvious. Secrets never come from the
 * command line.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <curl/curl.h>

#include "admin.h"
#include "cfg.h"
#include "front.h"
#include "g2serve.h"
#include "gen2client.h"
#include "gen1auth.h"
#include "gen1client.h"
#include "httpc.h"
#include "idmap.h"
#include "assess.h"
#include "backfill.h"
#include "verify.h"
#include "phcli.h"
#include "phctl.h"
#include "rewrite.h"
#include "jcli.h"
#include "log.h"
#include "metrics.h"
#include "pipeline.h"
#include "reload.h"

#ifndef DP_VERSION
#define DP_VERSION "0.0.0"
#endif

#define MAIN_IDENT_WAIT_MS 2000 /* at start, how long to wait for the first Gen1 token before going on */

static void usage(FILE *out)
{
    fprintf(out, "usage: dualpipe --config FILE        run the proxy\n"
                 "       dualpipe --check-config FILE  validate FILE and explain the effective configuration\n"
                 "       dualpipe journal status|list|retry|drop|resync ... --config FILE\n"
                 "                                     operate on the journal (dualpipe journal --help)\n"
                 "       dualpipe assess [PATH] --config FILE [--json FILE] [--html FILE] [--cursor FILE]\n"
                 "                                     what moving PATH to Gen2 involves (dualpipe assess --help)\n"
                 "       dualpipe backfill [PATH] --config FILE [--json FILE] [--cursor FILE]\n"
                 "                                     copy what Gen2 lacks, ordered with live writes\n"
                 "                                     (dualpipe backfill --help)\n"
                 "       dualpipe verify [PATH] --config FILE [--deep] [--repair] [--json FILE] [--cursor FILE]\n"
                 "                                     compare Gen1 and Gen2 under PATH (dualpipe verify --help)\n"
                 "       dualpipe verify --last --config FILE [--json -]\n"
                 "                                     the verify record: may the proxy enter gen2-only?\n"
                 "       dualpipe phase status|set PHASE|forget MEMBER --config FILE [--force]\n"
                 "                                     which store is primary, switched at run time\n"
                 "                                     (dualpipe phase --help)\n"
                 "       dualpipe rewrite DIR --config FILE [--apply] [--json FILE]\n"
                 "                                     adl:// and ADL settings in code and configuration to\n"
                 "                                     abfss:// by the mappings (dualpipe rewrite --help)\n"
                 "       dualpipe --version\n"
                 "       dualpipe --help\n"
                 "Secrets (Gen2 account key, SAS, client secret) come from the config file, or from the\n"
                 "environment variables or files it names (<key>_env, <key>_file), never from the command line.\n");
}

static int load(const char *file, dp_config *cfg)
{
    cfg_err e;
    memset(&e, 0, sizeof e);
    if (cfg_load_file(file, cfg, &e) != 0) {
        if (e.path[0]) fprintf(stderr, "%s: %s: %s\n", file, e.path, e.message);
        else fprintf(stderr, "%s: %s\n", file, e.message);
        return -1;
    }
    return 0;
}

static int check_config(const char *file)
{
    dp_config cfg;
    if (load(file, &cfg) != 0) return 1;
    if (cfg.identity_map[0]) { /* the file the key names must parse too (the start needs it) */
        idm_map *m = NULL;
        idm_err ie;
        if (idm_load(cfg.identity_map, &m, &ie) != 0) {
            fprintf(stderr, "gen2.identity_map: %s\n", ie.message);
            cfg_free(&cfg);
            return 1;
        }
        idm_unref(m);
    }
    dbuf b;
    dbuf_init(&b, 1u << 20);
    int rc = cfg_explain(&cfg, &b);
    if (rc == 0) fputs(b.data ? b.data : "", stdout);
    else fprintf(stderr, "%s: cannot explain the configuration\n", file);
    dbuf_free(&b);
    cfg_free(&cfg);
    return rc == 0 ? 0 : 1;
}

/* Create spool.dir (and its parents) when missing; the pipeline and the front then use it. */
static int ensure_dir(const char *dir, char *err, size_t errlen)
{
    char path[1024];
    snprintf(path, sizeof path, "%s", dir);
    size_t n = strlen(path);
    for (size_t i = 1; i <= n; i++) {
        if (path[i] != '/' && path[i] != '\0') continue;
        char c = path[i];
        path[i] = '\0';
        if (mkdir(path, 0700) != 0 && errno != EEXIST) {
            snprintf(err, errlen, "spool.dir: cannot create %s: %s", path, strerror(errno));
            return -1;
        }
        path[i] = c;
    }
    return 0;
}

/* One upstream TLS rule for url's host and port (as libcurl reads them). 0 or -1 with err. */
static int tls_rule_for(httpc *e, const char *key, const char *url, const httpc_tls *t, char *err, size_t errlen)
{
    CURLU *u = curl_url();
    char *host = NULL, *port = NULL;
    int rc = -1;
    if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK) {
        size_t hl = strlen(host);
        if (hl >= 2 && host[0] == '[') { /* IPv6 literal: httpc compares without brackets */
            memmove(host, host + 1, hl - 2);
            host[hl - 2] = '\0';
        }
        rc = httpc_set_tls(e, host, atoi(port), t);
    }
    if (rc != 0) snprintf(err, errlen, "%s: cannot set up TLS for %s", key, url);
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
    return rc;
}

/* TLS toward the upstreams, for one engine: Gen2's endpoint gets gen2.tls, Gen1's endpoint gen1.tls,
 * the token services (Entra ID authorities, IMDS) the system CAs, and any other host gen1.tls (the
 * hadoop dialect's datanodes, which Gen1's redirects name). */
static int setup_upstream_tls(httpc *e, const dp_config *c, char *err, size_t errlen)
{
    httpc_tls g1 = {.ca_file = c->gen1_tls.ca_file, .ca_path = c->gen1_tls.ca_path,
                    .cert_file = c->gen1_tls.cert_file, .key_file = c->gen1_tls.key_file,
                    .insecure_skip_verify = c->gen1_tls.insecure_skip_verify};
    httpc_tls g2 = {.ca_file = c->gen2_tls.ca_file, .ca_path = c->gen2_tls.ca_path,
                    .insecure_skip_verify = c->gen2_tls.insecure_skip_verify};
    httpc_tls sys = {0};
    if (tls_rule_for(e, "gen2.endpoint", c->gen2_endpoint, &g2, err, errlen) != 0 ||
        (c->gen1_endpoint[0] && tls_rule_for(e, "gen1.endpoint", c->gen1_endpoint, &g1, err, errlen) != 0) ||
        tls_rule_for(e, "gen1.auth.authority", c->gen1_authority, &sys, err, errlen) != 0 ||
        tls_rule_for(e, "gen2.auth.authority", c->oauth_authority, &sys, err, errlen) != 0 ||
        tls_rule_for(e, "gen2.auth.imds_endpoint", c->imds_endpoint, &sys, err, errlen) != 0)
        return -1;
    if (httpc_set_tls(e, NULL, 0, &g1) != 0) {
        snprintf(err, errlen, "gen1.tls: out of memory");
        return -1;
    }
    return 0;
}

static void warn_insecure_tls(const dp_config *c)
{
    if (c->gen1_tls.insecure_skip_verify)
        LOGE("msg=\"gen1.tls.insecure_skip_verify is true: Gen1's TLS certificate is NOT verified; anyone on the "
             "network path can read and change the traffic, writers' tokens included. For tests only.\"");
    if (c->gen2_tls.insecure_skip_verify)
        LOGE("msg=\"gen2.tls.insecure_skip_verify is true: Gen2's TLS certificate is NOT verified; anyone on the "
             "network path can read and change the data and steal the signed requests. For tests only.\"");
}

/* What main itself applies on SIGHUP: the log level, and the drain of the next stop. */
static const char *const main_live_keys[] = {"log.level", "shutdown.drain_ms", NULL};

static int main_reload(void *arg, const dp_config *nc, bool check, char *err, size_t errlen)
{
    if (check) return 0;
    log_set_level((log_level)nc->log_level);
    *(unsigned *)arg = nc->shutdown_drain_ms;
    return 0;
}

/* The proxy's own Gen1 token (gen1.auth mode bearer) is taken live: a token file is read again at
 * once (it is also re-read by itself whenever it changes), an inline or env value replaced. */
static const char *const ident_live_keys[] = {"gen1.auth.token", NULL};

static int ident_reload(void *arg, const dp_config *nc, bool check, char *err, size_t errlen)
{
    return g1a_reload(arg, nc, check, err, errlen);
}

/* gen2.identity_map: its watcher notices a changed file within a second; SIGHUP makes it read now. */
static int idmap_reload(void *arg, const dp_config *nc, bool check, char *err, size_t errlen)
{
    if (!check) applier_reread_identity_map(arg);
    return 0;
}

/* SIGHUP: load the file again; apply it (reload.h) only when it is valid. prev becomes the new one. */
static void reload(const char *file, const dp_config *running, dp_config *prev)
{
    dp_config nc;
    cfg_err e;
    memset(&e, 0, sizeof e);
    LOGI("msg=\"reloading the configuration\" config=\"%s\"", file);
    if (cfg_load_file(file, &nc, &e) != 0) {
        LOGE("msg=\"reload refused: the file has an error, nothing changed\" key=%s error=\"%s\"",
             e.path[0] ? e.path : "-", e.message);
        return;
    }
    int n = rl_reload(running, prev, &nc);
    if (n < 0) {
        cfg_free(&nc);
        return;
    }
    LOGI("msg=\"configuration reloaded\" keys_changed=%d", n);
    cfg_free(prev);
    *prev = nc;
}

/* One stop phase's drain: what it waited, and whether it settled early or used the whole budget. */
static void log_drain(const char *phase, const struct timespec *t0, unsigned drain_ms)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    int64_t ms = (int64_t)(t1.tv_sec - t0->tv_sec) * 1000 + (t1.tv_nsec - t0->tv_nsec) / 1000000;
    if (ms < (int64_t)drain_ms)
        LOGI("msg=\"drain ended early: nothing left to wait for\" phase=%s waited_ms=%" PRId64 " drain_ms=%u", phase, ms,
             drain_ms);
    else
        LOGW("msg=\"drain ran out: shutdown.drain_ms reached\" phase=%s waited_ms=%" PRId64 " drain_ms=%u", phase, ms,
             drain_ms);
}

/*
 * Writers' data lives in spool.dir/data and journal.dir: the proxy creates its files 0600 and its
 * directories 0700. Files and directories left by an older version (0640/0750) or made by hand are
 * tightened at start, not just reported: nobody but the proxy's user has a reason to read them, and
 * a warning alone would leave them readable. One line per directory says what was changed; what
 * cannot be changed (another owner) is reported and left. spool.dir itself is tightened but not its
 * other contents (they are not the proxy's), nor when it is a shared sticky directory such as /tmp.
 */
static void tighten_dir(const char *dir, bool contents)
{
    struct stat st;
    if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) return; /* not there yet: created 0700 */
    unsigned fixed = 0, failed = 0;
    if ((st.st_mode & 077) != 0 && !(st.st_mode & S_ISVTX)) {
        if (chmod(dir, 0700) == 0) fixed++;
        else failed++;
    }
    DIR *d = contents ? opendir(dir) : NULL;
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.' && (!de->d_name[1] || (de->d_name[1] == '.' && !de->d_name[2]))) continue;
        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
        if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) continue;
        if ((st.st_mode & 077) == 0) continue;
        if (fchmodat(dirfd(d), de->d_name, S_ISDIR(st.st_mode) ? 0700 : 0600, 0) == 0) fixed++;
        else failed++;
    }
    if (d) closedir(d);
    if (fixed)
        LOGW("msg=\"tightened permissions: group/other could read writers' data\" dir=\"%s\" entries=%u "
             "now=\"files 0600, directories 0700\"",
             dir, fixed);
    if (failed) LOGW("msg=\"cannot tighten permissions (not the owner?)\" dir=\"%s\" entries=%u", dir, failed);
}

static void tighten_store(const dp_config *cfg)
{
    char path[1200];
    tighten_dir(cfg->spool_dir, false);
    snprintf(path, sizeof path, "%s/data", cfg->spool_dir);
    tighten_dir(path, true);
    if (cfg->journal_dir[0]) snprintf(path, sizeof path, "%s", cfg->journal_dir);
    else snprintf(path, sizeof path, "%s/journal", cfg->spool_dir);
    tighten_dir(path, true);
}

/* The DistCp fences (fence.h), kept in the journal's directory. 0 or -1 with err. */
static int open_fences(const dp_config *cfg, pipeline *pl, metrics *m, fence_reg **out, char *err, size_t errlen)
{
    char dir[1200], e[400];
    if (cfg->journal_dir[0]) snprintf(dir, sizeof dir, "%s", cfg->journal_dir);
    else snprintf(dir, sizeof dir, "%s/journal", cfg->spool_dir);
    if (fence_open(dir, pipe_journal(pl), out, e, sizeof e) != 0) {
        snprintf(err, errlen, "journal.dir: fences: %s", e);
        return -1;
    }
    if (fence_register_metrics(*out, m) != 0) {
        snprintf(err, errlen, "out of memory registering the fence metrics");
        return -1;
    }
    return 0;
}

/* Hostnames print as they are; an IPv6 literal gets brackets so "H:P" stays unambiguous. */
static void print_hostport(FILE *out, const char *host, int port)
{
    if (strchr(host, ':')) fprintf(out, "[%s]:%d", host, port);
    else fprintf(out, "%s:%d", host, port);
}

static int run(const char *file)
{
    int status = 1;
    char err[512] = "";
    dp_config cfg, cur; /* cfg: what the modules started with; cur: the last file applied (SIGHUP) */
    bool have_cur = false;
    httpc *http = NULL, *http_ap = NULL;
    gen1c *g1 = NULL, *g1_ap = NULL;
    g1a *ident = NULL;
    pipeline *pl = NULL;
    metrics *m = NULL;
    front *f = NULL;
    admin *adm = NULL;
    gen2c *g2 = NULL; /* the front's Gen2 client, on the writers' engine (gen2-primary, gen2-only, the fleet) */
    g2s *gs = NULL;
    phctl *phc = NULL;
    fence_reg *fences = NULL;
    vrec *vr = NULL; /* the verify record (vrec.h): the gen2-only cutover's gate */

    if (load(file, &cfg) != 0) return 1;
    log_set_component("dualpipe");
    log_set_level((log_level)cfg.log_level);
    unsigned drain_ms = cfg.shutdown_drain_ms;

    /* Block the stop signals before any thread exists: every thread inherits the mask and only
     * sigwait below ever sees them. A writer that goes away must not kill us with SIGPIPE. */
    sigset_t stopset;
    sigemptyset(&stopset);
    sigaddset(&stopset, SIGINT);
    sigaddset(&stopset, SIGTERM);
    sigaddset(&stopset, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &stopset, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (ensure_dir(cfg.spool_dir, err, sizeof err) != 0) goto out;
    tighten_store(&cfg);
    m = metrics_new();
    if (!m) {
        snprintf(err, sizeof err, "out of memory");
        goto out;
    }
    metrics_gauge_set(metrics_gauge_get(m, "dualpipe_build_info", "Always 1; labels name the build.",
                                        "version=\"" DP_VERSION "\""),
                      1);
    /* Two upstream engines, one thread each: the writers' Gen1 requests, and the applier's (Gen2 writes,
     * Gen1 reads for resyncs). A backlog being drained then does not queue the writers' requests behind
     * its bodies, and each side has a core's worth of sending. */
    warn_insecure_tls(&cfg);
    if (httpc_start(0, &http, err, sizeof err) != 0) goto out;
    httpc_set_name(http, "dp-httpc-front");
    if (setup_upstream_tls(http, &cfg, err, sizeof err) != 0) goto out;
    if (gen1c_new(&cfg, http, &g1, err, sizeof err) != 0) goto out;
    if (httpc_start(0, &http_ap, err, sizeof err) != 0) goto out;
    httpc_set_name(http_ap, "dp-httpc-apply");
    if (setup_upstream_tls(http_ap, &cfg, err, sizeof err) != 0) goto out;
    if (gen1c_new(&cfg, http_ap, &g1_ap, err, sizeof err) != 0) goto out;
    /* The proxy's own Gen1 identity, for the applier's look-ups and the readiness probe (writers'
     * requests keep theirs). A credential that cannot be had now is not fatal: the work that needs it
     * waits (Gen1 breaker, retries) and the applier says why once. */
    if (g1a_new(&cfg, http_ap, &ident, err, sizeof err) != 0) goto out;
    gen1c_set_identity(g1, ident);
    gen1c_set_identity(g1_ap, ident);
    if (g1a_active(ident)) {
        char why[256] = "";
        if (g1a_wait_ready(ident, MAIN_IDENT_WAIT_MS, why, sizeof why) != 0)
            LOGW("msg=\"gen1 identity not usable yet; writer-less Gen1 work waits for it\" mode=%s cause=\"%s\"",
                 cfg_g1auth_name(cfg.gen1_auth), why);
        else
            LOGI("msg=\"gen1 identity ready\" mode=%s", cfg_g1auth_name(cfg.gen1_auth));
    }
    /* Recovery runs here, before the front takes a request. */
    if (pipe_open(&cfg, http_ap, g1_ap, m, &pl, err, sizeof err) != 0) goto out;
    {
        char vdir[1200];
        if (cfg.journal_dir[0]) snprintf(vdir, sizeof vdir, "%s", cfg.journal_dir);
        else snprintf(vdir, sizeof vdir, "%s/journal", cfg.spool_dir);
        if (vrec_open(&cfg, vdir, &vr, err, sizeof err) != 0 || vrec_register_metrics(vr, m) != 0) {
            if (vr) snprintf(err, sizeof err, "out of memory registering the verify record's metrics");
            goto out;
        }
    }
    /* The Gen1 API served on Gen2, in whichever phase a switch brings: in gen2-only no write is journaled
     * and Gen1 is never asked; in gen2-primary writes are journaled, answered by Gen2 and mirrored to
     * Gen1 (the pipeline's mirror). */
    if (gen2c_new(&cfg, http, &g2, err, sizeof err) != 0) goto out;
    if (g2s_new(&cfg, g2, http, m, &gs, err, sizeof err) != 0) goto out;
    /* the DistCp fences log the paths of new records from the first one the front journals */
    if (open_fences(&cfg, pl, m, &fences, err, sizeof err) != 0) goto out;
    if (front_start(&cfg, g1, pl, gs, m, &f, err, sizeof err) != 0) goto out;
    /* the front takes writes once the phase is settled (the phase manager lifts its starting fence) */
    if (phctl_start(&cfg, g2, pl, f, vr, m, &phc, err, sizeof err) != 0) goto out;
    if (admin_start(&cfg, m, pl, g1, f, fences, &adm, err, sizeof err) != 0) goto out;
    admin_set_vrec(adm, vr);
    admin_set_phctl(adm, phc);

    printf("dualpipe ready listen=");
    print_hostport(stdout, cfg.listen.host, front_port(f));
    printf(" admin=");
    print_hostport(stdout, cfg.admin_listen.host, admin_port(adm));
    printf("\n");
    fflush(stdout);
    LOGI("msg=started version=%s phase=%s config=\"%s\"", DP_VERSION, cfg_phase_name(cfg.phase), file);

    /* cur starts as a second load of the same file: SIGHUP compares against what was last applied. */
    if (load(file, &cur) != 0) {
        snprintf(err, sizeof err, "the configuration changed while starting; not started");
        goto out;
    }
    have_cur = true;
    if (rl_register("gen1-identity", ident_live_keys, ident_reload, ident) != 0 ||
        rl_register("identity-map", NULL, idmap_reload, pipe_applier(pl)) != 0 ||
        rl_register("main", main_live_keys, main_reload, &drain_ms) != 0) {
        snprintf(err, sizeof err, "cannot register the SIGHUP reload");
        goto out;
    }
    int sig = 0;
    for (;;) {
        if (sigwait(&stopset, &sig) != 0) continue;
        if (sig != SIGHUP) break;
        reload(file, &cfg, &cur);
    }
    LOGI("msg=\"stopping\" signal=%s", sig == SIGINT ? "SIGINT" : "SIGTERM");
    status = 0;

out:
    if (status != 0 && err[0]) fprintf(stderr, "dualpipe: %s\n", err);
    /* Reverse order; each step tolerates the later modules never having started. No callback reaches
     * freed state: after pipe_stop every journal callback for the front has run, after httpc_stop no
     * Gen1 or applier callback is left, so no connection is suspended when front_free closes them
     * (their spool bodies go back while the spool is open), and the journal closes last. */
    rl_unregister(main_reload, &drain_ms);
    rl_unregister(idmap_reload, pl ? pipe_applier(pl) : NULL);
    rl_unregister(ident_reload, ident);
    /* no switch starts or ends from now on (one under way ends first, within phase.switch_timeout_ms) */
    phctl_stop(phc);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (f) {
        front_stop(f, drain_ms);
        if (status == 0) log_drain("front", &t0, drain_ms);
    }
    if (adm) admin_stop(adm);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (pl) {
        pipe_stop(pl, drain_ms);
        if (status == 0) log_drain("applier", &t0, drain_ms);
    }
    g2s_stop(gs); /* its workers end what they hold (Gen2 still answers) */
    if (g2) gen2c_stop(g2);
    g1a_stop(ident);
    if (http) httpc_stop(http);
    if (http_ap) httpc_stop(http_ap);
    admin_free(adm);
    phctl_free(phc);
    vrec_free(vr); /* (after the admin, which serves it) */
    front_free(f);
    g2s_free(gs);
    gen2c_free(g2);
    fence_close(fences);
    pipe_free(pl);
    if (g1) gen1c_free(g1);
    if (g1_ap) gen1c_free(g1_ap);
    g1a_free(ident);
    metrics_free(m);
    if (have_cur) cfg_free(&cur);
    cfg_free(&cfg);
    if (status == 0) LOGI("msg=stopped");
    return status;
}

int main(int argc, char **argv)
{
    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        usage(stdout);
        return 0;
    }
    if (argc == 2 && strcmp(argv[1], "--version") == 0) {
        printf("dualpipe %s\n", DP_VERSION);
        return 0;
    }
    if (argc == 3 && strcmp(argv[1], "--config") == 0) return run(argv[2]);
    if (argc == 3 && strcmp(argv[1], "--check-config") == 0) return check_config(argv[2]);
    if (argc >= 2 && strcmp(argv[1], "journal") == 0) return jcli_main(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "assess") == 0) return assess_main(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "backfill") == 0) return backfill_main(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "verify") == 0) return verify_main(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "rewrite") == 0) return rewrite_main(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "phase") == 0) return phcli_main(argc - 1, argv + 1);
    if (argc < 2)
        fprintf(stderr, "dualpipe: a command is required\n");
    else if (strcmp(argv[1], "--config") == 0 || strcmp(argv[1], "--check-config") == 0)
        fprintf(stderr, "dualpipe: %s takes exactly one FILE\n", argv[1]);
    else if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "--version") == 0)
        fprintf(stderr, "dualpipe: %s takes no argument\n", argv[1]);
    else
        fprintf(stderr, "dualpipe: unknown %s %s\n", argv[1][0] == '-' ? "option" : "command", argv[1]);
    usage(stderr);
    return 2;
}
