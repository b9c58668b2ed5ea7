/*
 * backfill: `dualpipe backfill [PATH]` (README "Backfill"). Walks Gen1 under PATH with the shared
 * walker (common/upstream/walk), looks at each entry's counterpart on Gen2 (one getProperties each)
 * and has the running daemon copy what differs, through its admin port (bfadmin.h): every copy is a
 * journal RESYNC record of that path, so it is ordered with the live writes of the path, reads Gen1's
 * newest state, and is started again when a write lands while it reads (the resync gate). A file is:
 *
 *   skipped-equal  Gen2 has a file of Gen1's length whose recorded Gen1 times (XLATE_TIMES_KEY) carry
 *                  Gen1's modification time and that length;
 *   skipped-newer  Gen2's recorded modification time is later than the one the walk saw on Gen1: a
 *                  write through the proxy reached the path after the listing, and its own journal
 *                  records carry the path to Gen2;
 *   copied         anything else (missing, another type, another length or time, no recorded times):
 *                  a RESYNC of the file. A directory missing on Gen2 gets a node-only RESYNC (created
 *                  with its metadata, without its entries: pipe_resync_node); the walk then copies its
 *                  entries one by one, so a copy never spans a subtree that live writes keep changing.
 *   failed         the daemon parked the copy (its reason is the record's detail) or Gen2 refuses
 *                  the name.
 *
 * The run holds a lease on PATH in the daemon (a second run over an overlapping tree is refused). At
 * most --max-pending copies are outstanding; a poller thread asks the daemon what became of them.
 * The walker's cursor carries this file's state (run id, counts, outstanding copies), so a killed
 * run resumes with the same lease and without copying finished files again (they are equal by then).
 *
 * Exit status: 0 done, nothing failed; 3 done, some copies failed (see the report); 1 failed or
 * interrupted (resumable with --cursor); 2 usage error.
 */
#include "backfill.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cfg.h"
#include "gen1auth.h"
#include "gen1client.h"
#include "gen2client.h"
#include "httpc.h"
#include "mcmd.h"
#include "reserved.h"
#include "urlcodec.h"
#include "walk.h"
#include "whreq.h"
#include "xlate.h"

enum { BF_OK = 0, BF_FAILED = 1, BF_USAGE = 2, BF_SOME_FAILED = 3 };

#define BF_SAMPLES 200          /* failures listed in the report (all are counted) */
#define BF_POLL_MS 200
#define BF_STATE_BATCH 300      /* seqs per state request (the admin target is at most 8 KiB) */
#define BF_HTTP_TIMEOUT_S 30L
#define BF_CURL_POOL 80
#define BF_SETTLE_SEEN_MAX 1000000 /* paths a settle remembers having asked for (to ask once) */
#define BF_HEARTBEAT_S 5.0      /* the lease lasts BF_LEASE_S (30 s) after the run's last call */

typedef struct bf_args {
    const char *config, *cursor, *json, *admin, *path;
    const char *plan, *plan_file, *plan_prefix, *plan_target; /* --plan distcp */
    const char *settle, *drop;      /* --settle FENCE, --drop-fence FENCE */
    unsigned threads, page, retries, max_pending;
    double ops, bytes_ps;
    bool no_progress;
} bf_args;

typedef struct outst {
    uint64_t seq;
    char *path;
    uint64_t len;
    bool dir;
} outst;

typedef struct backfill {
    const dp_config *cfg;
    const bf_args *ar;
    gen2c *g2;
    const char *root;
    char base[300];                 /* http://HOST:PORT of the admin listener */
    char owner[40];
    pthread_mutex_t mu;
    pthread_cond_t cv;              /* outstanding shrank, or the poller failed */
    outst *o;
    size_t no, co;
    bool root_done;
    uint64_t copied_files, copied_dirs, copied_bytes;
    uint64_t equal_files, equal_bytes, newer_files, failed, present_dirs, requested, retries;
    double prev_seconds;            /* of the runs before a resume */
    double t0;                      /* mcmd_mono_s() at this run's start */
    json_t *failures;               /* [{"path","reason"}], at most BF_SAMPLES */
    double tb_next;                 /* bytes/s limiter: when the next copy may be requested */
    double g2_next;                 /* --ops-per-sec on Gen2: when the next getProperties may go out */
    bool began;
    double last_call;               /* mcmd_mono_s() of the last lease-keeping call */
    char fatal[1000];               /* the poller's or a worker's reason to give up */
    /* --plan distcp: the list of PATH's entries (sources for `hadoop distcp -f`) */
    FILE *plan_list;
    const char *plan_prefix;
    uint64_t plan_lines, plan_skipped;
    /* curl handles for the admin calls (keep-alive) */
    pthread_mutex_t cmu;
    CURL *pool[BF_CURL_POOL];
    int npool;
} backfill;

/* s as valid UTF-8 into out: bytes of a broken sequence (a reason cut short mid-character, a Gen1
 * name in another encoding) become '?'. */
static void utf8_clean(const char *s, char *out, size_t cap)
{
    size_t o = 0;
    const unsigned char *p = (const unsigned char *)s;
    while (*p && o + 1 < cap) {
        int n = *p < 0x80 ? 1 : (*p & 0xe0) == 0xc0 ? 2 : (*p & 0xf0) == 0xe0 ? 3 : (*p & 0xf8) == 0xf0 ? 4 : 0;
        bool ok = n > 0 && o + (size_t)n < cap;
        for (int k = 1; ok && k < n; k++) ok = (p[k] & 0xc0) == 0x80;
        if (!ok) {
            out[o++] = '?';
            p++;
            continue;
        }
        memcpy(out + o, p, (size_t)n);
        o += (size_t)n;
        p += n;
    }
    out[o] = '\0';
}

/* A failure for the report (under mu). */
static void failure(backfill *b, const char *path, const char *reason)
{
    b->failed++;
    if (!b->failures || json_array_size(b->failures) >= BF_SAMPLES) return;
    char p[WHREQ_MAX_PATH + 1], r[1024];
    utf8_clean(path, p, sizeof p);
    utf8_clean(reason, r, sizeof r);
    json_array_append_new(b->failures, json_pack("{s:s,s:s}", "path", p, "reason", r));
}

/* Set the fatal reason once and wake everyone (under mu). */
static void set_fatal(backfill *b, const char *msg)
{
    if (!b->fatal[0]) snprintf(b->fatal, sizeof b->fatal, "%s", msg);
    pthread_cond_broadcast(&b->cv);
}

/* ---------------------------------------------------------------- the admin API */

static size_t curl_sink(char *data, size_t size, size_t n, void *ud)
{
    dbuf *b = ud;
    size_t len = size * n;
    return dbuf_add(b, data, len) == 0 ? len : 0;
}

/* One admin request, retried (no answer, 503) with backoff; the body in out. The HTTP status, or 0
 * when the daemon never answered (reason in err). */
static long admin_call(backfill *b, const char *method, const char *target, dbuf *out, char *err, size_t errlen)
{
    char url[9000];
    int n = snprintf(url, sizeof url, "%s%s", b->base, target);
    if (n < 0 || (size_t)n >= sizeof url) {
        snprintf(err, errlen, "admin request too long");
        return 0;
    }
    pthread_mutex_lock(&b->cmu);
    CURL *h = b->npool ? b->pool[--b->npool] : curl_easy_init();
    pthread_mutex_unlock(&b->cmu);
    if (!h) {
        snprintf(err, errlen, "cannot initialise libcurl");
        return 0;
    }
    long status = 0;
    unsigned wait_ms = 200;
    for (unsigned attempt = 0;; attempt++) {
        char cerr[CURL_ERROR_SIZE] = "";
        dbuf_reset(out);
        curl_easy_reset(h);
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_PROXY, ""); /* never through an http_proxy from the environment */
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_TIMEOUT, BF_HTTP_TIMEOUT_S);
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 5L);
        curl_easy_setopt(h, CURLOPT_ERRORBUFFER, cerr);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, curl_sink);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, out);
        if (strcmp(method, "POST") == 0) {
            curl_easy_setopt(h, CURLOPT_POST, 1L);
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, 0L);
        }
        CURLcode rc = curl_easy_perform(h);
        status = 0;
        if (rc == CURLE_OK) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        else snprintf(err, errlen, "the daemon's admin port at %s does not answer: %s", b->base,
                      cerr[0] ? cerr : curl_easy_strerror(rc));
        if ((status != 0 && status != 503) || attempt >= b->ar->retries || mcmd_stopping()) break;
        if (status == 503) snprintf(err, errlen, "the daemon answered 503: %s", out->data ? out->data : "");
        mcmd_sleep_s(wait_ms / 1000.0);
        wait_ms = wait_ms * 2 > 5000 ? 5000 : wait_ms * 2;
    }
    pthread_mutex_lock(&b->cmu);
    if (b->npool < BF_CURL_POOL) b->pool[b->npool++] = h;
    else curl_easy_cleanup(h);
    pthread_mutex_unlock(&b->cmu);
    return status;
}

/* The "error" of an admin answer, or the body. */
static void admin_error(const dbuf *body, char *out, size_t cap)
{
    json_t *j = body->data ? json_loads(body->data, 0, NULL) : NULL;
    const char *e = json_string_value(json_object_get(j, "error"));
    snprintf(out, cap, "%s", e ? e : body->data ? body->data : "(no answer body)");
    json_decref(j);
}

static int lease_begin(backfill *b, char *err, size_t errlen)
{
    dbuf q, out;
    dbuf_init(&q, 16384);
    dbuf_init(&out, 65536);
    int rc = -1;
    if (dbuf_printf(&q, "/admin/backfill/begin?owner=%s&root=", b->owner) != 0 || url_encode(b->root, false, &q) != 0) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    long st = admin_call(b, "POST", q.data, &out, err, errlen);
    if (st == 200) {
        pthread_mutex_lock(&b->mu);
        b->began = true;
        b->last_call = mcmd_mono_s();
        pthread_mutex_unlock(&b->mu);
        rc = 0;
    } else if (st != 0) {
        char e[700];
        admin_error(&out, e, sizeof e);
        snprintf(err, errlen, "the daemon refused the backfill (%ld): %s", st, e);
    }
out:
    dbuf_free(&q);
    dbuf_free(&out);
    return rc;
}

static void lease_end(backfill *b)
{
    pthread_mutex_lock(&b->mu);
    bool began = b->began;
    pthread_mutex_unlock(&b->mu);
    if (!began) return;
    dbuf out;
    dbuf_init(&out, 4096);
    char q[200], err[400];
    snprintf(q, sizeof q, "/admin/backfill/end?owner=%s", b->owner);
    (void)admin_call(b, "POST", q, &out, err, sizeof err); /* a lease not ended lapses by itself */
    dbuf_free(&out);
    pthread_mutex_lock(&b->mu);
    b->began = false;
    pthread_mutex_unlock(&b->mu);
}

/* ---------------------------------------------------------------- outstanding copies */

/* Ask the daemon about up to BF_STATE_BATCH outstanding copies; settle the finished ones. 0 or -1 (fatal set). */
static int poll_once(backfill *b)
{
    dbuf q, out;
    dbuf_init(&q, 16384);
    dbuf_init(&out, 8u << 20);
    int rc = 0;
    pthread_mutex_lock(&b->mu);
    size_t n = b->no < BF_STATE_BATCH ? b->no : BF_STATE_BATCH;
    bool began = b->began; /* a resumed run takes its lease before it asks */
    /* with nothing out, an empty question every BF_HEARTBEAT_S keeps the lease (a run waiting in its
     * --bytes-per-sec limit makes no other call) */
    double now = mcmd_mono_s();
    bool ask = began && (n > 0 || now - b->last_call >= BF_HEARTBEAT_S);
    int qr = dbuf_printf(&q, "/admin/backfill/state?owner=%s&seqs=", b->owner);
    for (size_t i = 0; i < n && qr == 0; i++) qr = dbuf_printf(&q, "%s%" PRIu64, i ? "," : "", b->o[i].seq);
    if (ask) b->last_call = now;
    pthread_mutex_unlock(&b->mu);
    if (!ask || qr != 0) goto out;
    char err[700] = "";
    long st = admin_call(b, "GET", q.data, &out, err, sizeof err);
    if (st == 409 && lease_begin(b, err, sizeof err) == 0) /* the lease lapsed and nobody took the tree */
        st = admin_call(b, "GET", q.data, &out, err, sizeof err);
    json_t *j = st == 200 && out.data ? json_loads(out.data, 0, NULL) : NULL;
    json_t *arr = json_object_get(j, "states");
    pthread_mutex_lock(&b->mu);
    if (!json_is_array(arr)) {
        if (st != 0 && st != 200) admin_error(&out, err, sizeof err);
        char msg[900];
        snprintf(msg, sizeof msg, "cannot learn what became of the copies: %s", err[0] ? err : "bad answer");
        set_fatal(b, msg);
        rc = -1;
    } else {
        size_t idx;
        json_t *s;
        json_array_foreach(arr, idx, s) {
            uint64_t seq = (uint64_t)json_integer_value(json_object_get(s, "seq"));
            const char *state = json_string_value(json_object_get(s, "state"));
            if (!state || strcmp(state, "pending") == 0 || strcmp(state, "unknown") == 0) continue;
            for (size_t i = 0; i < b->no; i++) {
                if (b->o[i].seq != seq) continue;
                outst o = b->o[i];
                b->o[i] = b->o[--b->no];
                if (strcmp(state, "done") == 0) {
                    if (o.dir) b->copied_dirs++;
                    else b->copied_files++, b->copied_bytes += o.len;
                } else {
                    const char *d = json_string_value(json_object_get(s, "detail"));
                    char why[800];
                    snprintf(why, sizeof why, "the daemon parked its copy (journal record %" PRIu64 "): %s", seq,
                             d && d[0] ? d : "no detail");
                    failure(b, o.path, why);
                }
                free(o.path);
                break;
            }
        }
        pthread_cond_broadcast(&b->cv);
    }
    pthread_mutex_unlock(&b->mu);
    json_decref(j);
out:
    dbuf_free(&q);
    dbuf_free(&out);
    return rc;
}

typedef struct poller {
    backfill *b;
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool quit;
} poller;

static void *poll_main(void *arg)
{
    poller *p = arg;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        struct timespec dl;
        clock_gettime(CLOCK_MONOTONIC, &dl);
        dl.tv_nsec += BF_POLL_MS * 1000000L;
        if (dl.tv_nsec >= 1000000000L) dl.tv_sec++, dl.tv_nsec -= 1000000000L;
        while (!p->quit && pthread_cond_timedwait(&p->cv, &p->mu, &dl) == 0) {
        }
        bool quit = p->quit;
        pthread_mutex_unlock(&p->mu);
        if (quit) break;
        if (poll_once(p->b) != 0) break;
    }
    return NULL;
}

/* Record a copy request for path: wait for the byte rate and a free slot, journal it. 0, or -1 with err
 * (fatal: the walk stops). A copy the daemon refuses for this path alone is a failure, not fatal. */
static int request_copy(backfill *b, const char *path, uint64_t len, bool dir, char *err, size_t errlen)
{
    pthread_mutex_lock(&b->mu);
    if (b->ar->bytes_ps > 0 && !dir) {
        double now = mcmd_mono_s(), at = b->tb_next > now ? b->tb_next : now;
        b->tb_next = at + (double)len / b->ar->bytes_ps;
        pthread_mutex_unlock(&b->mu);
        mcmd_sleep_s(at - now);
        pthread_mutex_lock(&b->mu);
    }
    while (b->no >= b->ar->max_pending && !b->fatal[0] && !mcmd_stopping()) {
        struct timespec dl;
        clock_gettime(CLOCK_MONOTONIC, &dl);
        dl.tv_sec += 1;
        pthread_cond_timedwait(&b->cv, &b->mu, &dl);
    }
    if (b->fatal[0] || mcmd_stopping()) {
        snprintf(err, errlen, "%s", b->fatal[0] ? b->fatal : "interrupted");
        pthread_mutex_unlock(&b->mu);
        return -1;
    }
    pthread_mutex_unlock(&b->mu);
    dbuf q, out;
    dbuf_init(&q, 16384);
    dbuf_init(&out, 65536);
    int rc = -1;
    if (dbuf_printf(&q, "/admin/backfill/copy?owner=%s%s&path=", b->owner, dir ? "&node=1" : "") != 0 ||
        url_encode(path, false, &q) != 0) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    long st = admin_call(b, "POST", q.data, &out, err, errlen);
    if (st == 409 && lease_begin(b, err, errlen) == 0) /* the lease lapsed and nobody took the tree */
        st = admin_call(b, "POST", q.data, &out, err, errlen);
    pthread_mutex_lock(&b->mu);
    b->last_call = mcmd_mono_s();
    pthread_mutex_unlock(&b->mu);
    json_t *j = st == 200 && out.data ? json_loads(out.data, 0, NULL) : NULL;
    json_int_t seq = json_integer_value(json_object_get(j, "seq"));
    json_decref(j);
    if (st == 200 && seq > 0) {
        char *p = strdup(path);
        pthread_mutex_lock(&b->mu);
        if (p && b->no == b->co) {
            size_t nc = b->co ? b->co * 2 : 64;
            outst *no = realloc(b->o, nc * sizeof *no);
            if (no) b->o = no, b->co = nc;
        }
        if (p && b->no < b->co) {
            b->o[b->no++] = (outst){.seq = (uint64_t)seq, .path = p, .len = len, .dir = dir};
            b->requested++;
            rc = 0;
        } else {
            free(p);
            snprintf(err, errlen, "out of memory");
        }
        pthread_mutex_unlock(&b->mu);
    } else if (st == 400) {
        char e[700];
        admin_error(&out, e, sizeof e);
        pthread_mutex_lock(&b->mu);
        failure(b, path, e);
        pthread_mutex_unlock(&b->mu);
        rc = 0;
    } else if (st != 0) {
        char e[700];
        admin_error(&out, e, sizeof e);
        snprintf(err, errlen, "the daemon refused the copy of %s (%ld): %s", path, st, e);
    }
out:
    dbuf_free(&q);
    dbuf_free(&out);
    return rc;
}

/* ---------------------------------------------------------------- Gen2 */

/* What Gen2 has at a path. */
typedef struct g2node {
    bool exists, dir, has_times;
    int64_t length, t_mtime, t_len;
} g2node;

/* getProperties of Gen1 path g1 on Gen2, retried. 0, 1 (Gen2 refuses the name: reason in err) or -1 (err). */
static int g2_head(backfill *b, const char *g1, g2node *n, char *err, size_t errlen)
{
    char fs[64], why[256];
    char *p = malloc(WHREQ_MAX_PATH + 1);
    if (!p) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    memset(n, 0, sizeof *n);
    gen2c_map_result mr = gen2c_map(b->g2, g1, fs, p, WHREQ_MAX_PATH + 1, why, sizeof why);
    if (mr == GEN2C_MAPPED && dp_reserved_g2(p)) { /* dualpipe's own directory on Gen2: never copied onto */
        snprintf(err, errlen, "the Gen2 path /%s " DP_RESERVED_WHY, p);
        free(p);
        return 1;
    }
    if (mr != GEN2C_MAPPED) {
        snprintf(err, errlen, "%s", mr == GEN2C_UNMAPPED ? "no mapping covers it" : why);
        free(p);
        return 1;
    }
    if (!p[0]) { /* a filesystem's root: always there, a directory */
        n->exists = n->dir = true;
        free(p);
        return 0;
    }
    int rc = -1;
    unsigned wait_ms = 200;
    for (unsigned attempt = 0;; attempt++) {
        if (b->ar->ops > 0) { /* --ops-per-sec caps Gen2's requests as it caps Gen1's listings */
            pthread_mutex_lock(&b->mu);
            double now = mcmd_mono_s(), at = b->g2_next > now ? b->g2_next : now;
            b->g2_next = at + 1.0 / b->ar->ops;
            pthread_mutex_unlock(&b->mu);
            mcmd_sleep_s(at - now);
        }
        httpc_sync s;
        httpc_sync_init(&s);
        gen2c_call call = {.method = "HEAD", .fs = fs, .path = p, .out = HTTPC_BODY_DISCARD, .done = httpc_sync_done,
                           .ud = &s};
        bool sent = gen2c_send(b->g2, &call) == 0;
        if (sent)
            (void)httpc_sync_wait(&s);
        else
            httpc_sync_drop(&s);
        bool retry = false;
        if (!sent) {
            snprintf(err, errlen, "cannot send Gen2's getProperties of %s", g1);
        } else {
            const httpc_resp *r = s.resp;
            if (r->result != HTTPC_OK) {
                snprintf(err, errlen, "Gen2 did not answer the getProperties of %s: %s%s%s", g1,
                         httpc_result_str(r->result), r->error[0] ? ": " : "", r->error);
                retry = r->result != HTTPC_E_AUTH;
            } else if (r->status == 404) {
                rc = 0;
            } else if (r->status == 200) {
                const char *rt = httpc_resp_header(r, "x-ms-resource-type");
                const char *cl = httpc_resp_header(r, "Content-Length");
                const char *props = httpc_resp_header(r, "x-ms-properties");
                n->exists = true;
                n->dir = rt && strcmp(rt, "directory") == 0;
                n->length = cl ? strtoll(cl, NULL, 10) : -1;
                char tv[256];
                int64_t at;
                if (props && xlate_props_get(props, XLATE_TIMES_KEY, tv, sizeof tv) == 1 &&
                    xlate_times_parse(tv, &n->t_mtime, &at, &n->t_len) == 0)
                    n->has_times = true;
                rc = 0;
            } else {
                snprintf(err, errlen, "Gen2 answered %ld to the getProperties of %s", r->status, g1);
                retry = r->status == 429 || r->status >= 500;
            }
            httpc_resp_free(s.resp);
            free(s.resp);
        }
        if (rc == 0 || !retry || attempt >= b->ar->retries || mcmd_stopping()) break;
        pthread_mutex_lock(&b->mu);
        b->retries++;
        pthread_mutex_unlock(&b->mu);
        mcmd_sleep_s(wait_ms / 1000.0);
        wait_ms = wait_ms * 2 > 5000 ? 5000 : wait_ms * 2;
    }
    free(p);
    return rc;
}

/* ---------------------------------------------------------------- the visitor */

/* Decide one entry (a directory or a file of length len, Gen1 mtime mtime). 0 or -1 (err: fatal). */
static int visit(backfill *b, const char *path, bool dir, uint64_t len, int64_t mtime, char *err, size_t errlen)
{
    g2node n;
    char why[700] = "";
    int h = g2_head(b, path, &n, why, sizeof why);
    if (h < 0) {
        snprintf(err, errlen, "%s", why);
        return -1;
    }
    if (h == 1) {
        char r[800];
        snprintf(r, sizeof r, "Gen2 cannot hold this name: %s", why);
        pthread_mutex_lock(&b->mu);
        failure(b, path, r);
        pthread_mutex_unlock(&b->mu);
        return 0;
    }
    if (dir) {
        if (n.exists && n.dir) {
            pthread_mutex_lock(&b->mu);
            b->present_dirs++;
            pthread_mutex_unlock(&b->mu);
            return 0;
        }
        /* the directory alone: the walk lists its entries next and copies them one by one */
        return request_copy(b, path, 0, true, err, errlen);
    }
    if (n.exists && !n.dir && n.has_times && n.length == (int64_t)len) {
        /* the times recorded for this very length; or for a shorter one: appends reached Gen2 since, and
         * appends only reach Gen2 through the proxy, which journals each one */
        if ((n.t_mtime == mtime && n.t_len == (int64_t)len) || (n.t_len >= 0 && n.t_len < (int64_t)len)) {
            pthread_mutex_lock(&b->mu);
            b->equal_files++;
            b->equal_bytes += len;
            pthread_mutex_unlock(&b->mu);
            return 0;
        }
    }
    if (n.exists && !n.dir && n.has_times && mtime >= 0 && n.t_mtime > mtime) {
        pthread_mutex_lock(&b->mu);
        b->newer_files++;
        pthread_mutex_unlock(&b->mu);
        return 0;
    }
    return request_copy(b, path, len, false, err, errlen);
}

static int bf_page(void *ud, walk *w, const walk_dir *d, const xlate_listing *page, bool last, char *err,
                   size_t errlen)
{
    (void)w;
    (void)last;
    backfill *b = ud;
    pthread_mutex_lock(&b->mu);
    bool root_done = b->root_done;
    pthread_mutex_unlock(&b->mu);
    if (!root_done) {
        /* the root's own page comes first and alone: a root missing on Gen2 is made first */
        g2node n;
        char why[700] = "";
        int h = g2_head(b, b->root, &n, why, sizeof why);
        if (h != 0) {
            snprintf(err, errlen, "%s", why);
            return -1;
        }
        if ((!n.exists || !n.dir) && request_copy(b, b->root, 0, true, err, errlen) != 0) return -1;
        pthread_mutex_lock(&b->mu);
        b->root_done = true;
        pthread_mutex_unlock(&b->mu);
    }
    size_t dl = strlen(d->path);
    for (int i = 0; i < page->n; i++) {
        const xlate_entry *e = &page->v[i];
        char *path = NULL;
        if (asprintf(&path, "%s%s%s", d->path, dl > 1 ? "/" : "", e->name) < 0) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        xlate_meta m;
        memset(&m, 0, sizeof m);
        xlate_err xe;
        int rc = -1;
        if (xlate_meta_from_filestatus(e->status, strlen(e->status), &m, &xe) != 0) {
            snprintf(err, errlen, "Gen1's FileStatus of %s cannot be read: %s", path, xe.message);
        } else {
            uint64_t len = m.length > 0 ? (uint64_t)m.length : 0;
            rc = visit(b, path, e->is_dir, len, m.has_times ? m.mtime_ms : -1, err, errlen);
        }
        xlate_meta_free(&m);
        free(path);
        if (rc != 0) return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- cursor state */

static json_t *bf_save(void *ud)
{
    backfill *b = ud;
    pthread_mutex_lock(&b->mu);
    json_t *o = json_array();
    for (size_t i = 0; i < b->no && o; i++)
        json_array_append_new(o, json_pack("{s:I,s:s,s:I,s:b}", "seq", (json_int_t)b->o[i].seq, "path", b->o[i].path,
                                           "len", (json_int_t)b->o[i].len, "dir", b->o[i].dir));
    json_t *s = json_pack("{s:s,s:b,s:o,s:O,s:[IIIIIIIIII],s:f}", "owner", b->owner, "root_done",
                          b->root_done, "outstanding", o, "failures", b->failures, "counts",
                          (json_int_t)b->copied_files, (json_int_t)b->copied_dirs, (json_int_t)b->copied_bytes,
                          (json_int_t)b->equal_files, (json_int_t)b->equal_bytes, (json_int_t)b->newer_files,
                          (json_int_t)b->failed, (json_int_t)b->present_dirs, (json_int_t)b->requested,
                          (json_int_t)b->retries, "seconds", b->prev_seconds + (mcmd_mono_s() - b->t0));
    pthread_mutex_unlock(&b->mu);
    return s;
}

static int bf_load(void *ud, const json_t *st)
{
    backfill *b = ud;
    const char *owner = json_string_value(json_object_get(st, "owner"));
    json_t *o = json_object_get(st, "outstanding");
    json_t *f = json_object_get(st, "failures"), *n = json_object_get(st, "counts");
    if (!owner || strlen(owner) >= sizeof b->owner || !json_is_array(o) || !json_is_array(f) ||
        json_array_size(n) != 10)
        return -1;
    /* the poller runs already (it waits for the lease): every field under mu */
    pthread_mutex_lock(&b->mu);
    snprintf(b->owner, sizeof b->owner, "%s", owner);
    pthread_mutex_unlock(&b->mu);
    /* the same run again: its lease (a killed run's may still hold the tree for a while) */
    char err[800];
    if (lease_begin(b, err, sizeof err) != 0) {
        fprintf(stderr, "dualpipe backfill: %s\n", err);
        return -1;
    }
    int rc = 0;
    pthread_mutex_lock(&b->mu);
    b->root_done = json_is_true(json_object_get(st, "root_done"));
    b->prev_seconds = json_real_value(json_object_get(st, "seconds"));
    uint64_t *v[10] = {&b->copied_files, &b->copied_dirs, &b->copied_bytes, &b->equal_files, &b->equal_bytes,
                       &b->newer_files,  &b->failed,      &b->present_dirs, &b->requested,   &b->retries};
    for (size_t i = 0; i < 10; i++) *v[i] = (uint64_t)json_integer_value(json_array_get(n, i));
    json_decref(b->failures);
    b->failures = json_deep_copy(f);
    size_t i;
    json_t *e;
    json_array_foreach(o, i, e) {
        const char *p = json_string_value(json_object_get(e, "path"));
        char *pd = p ? strdup(p) : NULL;
        outst *no = NULL;
        if (pd && b->no == b->co) {
            size_t nc = b->co ? b->co * 2 : 64;
            if ((no = realloc(b->o, nc * sizeof *no))) b->o = no, b->co = nc;
        }
        if (!pd || b->no == b->co) {
            free(pd);
            rc = -1;
            break;
        }
        b->o[b->no++] = (outst){.seq = (uint64_t)json_integer_value(json_object_get(e, "seq")), .path = pd,
                                .len = (uint64_t)json_integer_value(json_object_get(e, "len")),
                                .dir = json_is_true(json_object_get(e, "dir"))};
    }
    pthread_mutex_unlock(&b->mu);
    return rc;
}

/* ---------------------------------------------------------------- report */

static void print_text(const json_t *rep, FILE *out)
{
    char b1[64];
    json_t *cp = json_object_get(rep, "copied"), *eq = json_object_get(rep, "skipped_equal");
    fprintf(out, "dualpipe backfill of ");
    mcmd_put_safe(out, json_string_value(json_object_get(rep, "root")));
    fprintf(out, " (run %s)\n\n", json_string_value(json_object_get(rep, "run")));
    mcmd_fmt_bytes((uint64_t)json_integer_value(json_object_get(cp, "bytes")), b1, sizeof b1);
    fprintf(out, "  copied          %" JSON_INTEGER_FORMAT " files (%s), %" JSON_INTEGER_FORMAT " directories\n",
            json_integer_value(json_object_get(cp, "files")), b1, json_integer_value(json_object_get(cp, "dirs")));
    mcmd_fmt_bytes((uint64_t)json_integer_value(json_object_get(eq, "bytes")), b1, sizeof b1);
    fprintf(out, "  skipped-equal   %" JSON_INTEGER_FORMAT " files (%s); %" JSON_INTEGER_FORMAT
            " directories already there\n",
            json_integer_value(json_object_get(eq, "files")), b1,
            json_integer_value(json_object_get(rep, "dirs_present")));
    fprintf(out, "  skipped-newer   %" JSON_INTEGER_FORMAT " files (written through the proxy after the walk saw "
            "them)\n", json_integer_value(json_object_get(json_object_get(rep, "skipped_newer"), "files")));
    json_t *fl = json_object_get(rep, "failed");
    fprintf(out, "  failed          %" JSON_INTEGER_FORMAT "\n", json_integer_value(json_object_get(fl, "count")));
    size_t i;
    json_t *f;
    json_array_foreach(json_object_get(fl, "items"), i, f) {
        fputs("      ", out);
        mcmd_put_safe(out, json_string_value(json_object_get(f, "path")));
        fputs(": ", out);
        mcmd_put_safe(out, json_string_value(json_object_get(f, "reason")));
        fputc('\n', out);
    }
    mcmd_fmt_bytes((uint64_t)json_integer_value(json_object_get(rep, "bytes")), b1, sizeof b1);
    json_t *wk = json_object_get(rep, "walk");
    fprintf(out, "\n%s copied in %.1fs: %.1f files/s, %.1f MiB/s\n", b1,
            json_real_value(json_object_get(rep, "seconds")), json_real_value(json_object_get(rep, "files_per_s")),
            json_real_value(json_object_get(rep, "bytes_per_s")) / 1048576.0);
    fprintf(out, "walk: %" JSON_INTEGER_FORMAT " entries, %" JSON_INTEGER_FORMAT " Gen1 requests%s\n",
            json_integer_value(json_object_get(wk, "entries")), json_integer_value(json_object_get(wk, "requests")),
            json_is_true(json_object_get(wk, "resumed")) ? " (resumed)" : "");
}

/* ---------------------------------------------------------------- arguments */

static void usage(FILE *out)
{
    fprintf(out,
            "usage: dualpipe backfill [PATH] --config FILE [options]\n"
            "Copies what Gen1 holds under PATH (default: / when a mapping covers it, else the only mapping's\n"
            "gen1_prefix) and Gen2 lacks or holds differently, through the running daemon: each copy is\n"
            "journaled and ordered with the writes made through the proxy, so none replaces a newer one.\n"
            "  --json FILE          the report as JSON (- for stdout)\n"
            "  --cursor FILE        resume file: an interrupted run (Ctrl-C, kill, Gen1 or Gen2 down) resumes\n"
            "  --threads N          parallel listings and Gen2 look-ups (default 4)\n"
            "  --ops-per-sec N      at most N Gen1 listing requests and N Gen2 look-ups per second (default: no limit)\n"
            "  --bytes-per-sec N    at most N bytes of files per second handed to the daemon to copy\n"
            "                       (default: no limit)\n"
            "  --max-pending N      copies handed to the daemon and not finished, at most (default 64)\n"
            "  --page-size N        entries per Gen1 listing page on the adls dialect (default 1000)\n"
            "  --retries N          tries again after a failed request, with backoff (default 5)\n"
            "  --admin HOST:PORT    the running daemon's admin address (when admin.listen has port 0)\n"
            "  --no-progress        no progress line (there is none anyway when stderr is not a terminal)\n"
            "A bulk copy with DistCp, for trees too large for one machine (README \"Backfill\"):\n"
            "  --plan distcp        take a fence in the daemon (from now on it records every path written\n"
            "                       through the proxy under PATH) and write the list of PATH's entries for\n"
            "                       `hadoop distcp -f LIST TARGET`; prints the FENCE token and the command\n"
            "  --plan-file FILE     the list (required with --plan); the plan as JSON goes to FILE.json\n"
            "  --plan-source-prefix URI  scheme://authority of the list's sources (default: adl://ACCOUNT.\n"
            "                       azuredatalakestore.net for an ADLS Gen1 endpoint, else webhdfs://HOST:PORT\n"
            "                       of gen1.endpoint, swebhdfs:// over https)\n"
            "  --plan-target URI    the target printed for distcp (default: abfss://FS@ACCOUNT.dfs.core.windows.net/\n"
            "                       path, from the mapping of PATH)\n"
            "  --settle FENCE       once the bulk copy is over: resync every path written through the proxy\n"
            "                       since the fence (PATH defaults to the fence's); a second run is a no-op\n"
            "  --drop-fence FENCE   forget the fence of an abandoned plan (the daemon stops recording for it)\n"
            "Exit status: 0 done, 3 done but some copies failed (listed), 1 failed or interrupted (resumable\n"
            "with --cursor), 2 usage error.\n");
}

static const mcmd CMD = {"backfill", usage};

static bool token_ok(const char *t);

static int parse_args(int argc, char **argv, bf_args *a)
{
    memset(a, 0, sizeof *a);
    a->threads = 4;
    a->page = 1000;
    a->retries = 5;
    a->max_pending = 64;
    static const char *const valued[] = {"--config",      "--json",          "--cursor",       "--admin",
                                         "--threads",     "--ops-per-sec",   "--bytes-per-sec", "--max-pending",
                                         "--page-size",   "--retries",       "--plan",         "--plan-file",
                                         "--plan-source-prefix", "--plan-target", "--settle",   "--drop-fence"};
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        bool takes = false;
        for (size_t k = 0; k < sizeof valued / sizeof valued[0]; k++) takes |= strcmp(s, valued[k]) == 0;
        if (strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0) {
            usage(stdout);
            return -1;
        }
        if (strcmp(s, "--no-progress") == 0) {
            a->no_progress = true;
            continue;
        }
        if (takes && i + 1 >= argc) {
            mcmd_usage_error(&CMD, "%s needs a value\n", s);
            return BF_USAGE;
        }
        double v = 0;
        const char *val = takes ? argv[++i] : NULL;
        if (strcmp(s, "--config") == 0) a->config = val;
        else if (strcmp(s, "--json") == 0) a->json = val;
        else if (strcmp(s, "--cursor") == 0) a->cursor = val;
        else if (strcmp(s, "--admin") == 0) a->admin = val;
        else if (strcmp(s, "--plan") == 0) a->plan = val;
        else if (strcmp(s, "--plan-file") == 0) a->plan_file = val;
        else if (strcmp(s, "--plan-source-prefix") == 0) a->plan_prefix = val;
        else if (strcmp(s, "--plan-target") == 0) a->plan_target = val;
        else if (strcmp(s, "--settle") == 0) a->settle = val;
        else if (strcmp(s, "--drop-fence") == 0) a->drop = val;
        else if (strcmp(s, "--threads") == 0) {
            if (mcmd_num(&CMD, s, val, 1, 64, &v) != 0) return BF_USAGE;
            a->threads = (unsigned)v;
        } else if (strcmp(s, "--ops-per-sec") == 0) {
            if (mcmd_num(&CMD, s, val, 0, 1e6, &v) != 0) return BF_USAGE;
            a->ops = v;
        } else if (strcmp(s, "--bytes-per-sec") == 0) {
            if (mcmd_num(&CMD, s, val, 0, 1e12, &v) != 0) return BF_USAGE;
            a->bytes_ps = v;
        } else if (strcmp(s, "--max-pending") == 0) {
            if (mcmd_num(&CMD, s, val, 1, 10000, &v) != 0) return BF_USAGE;
            a->max_pending = (unsigned)v;
        } else if (strcmp(s, "--page-size") == 0) {
            if (mcmd_num(&CMD, s, val, 1, 5000, &v) != 0) return BF_USAGE;
            a->page = (unsigned)v;
        } else if (strcmp(s, "--retries") == 0) {
            if (mcmd_num(&CMD, s, val, 0, 100, &v) != 0) return BF_USAGE;
            a->retries = (unsigned)v;
        } else if (s[0] == '-') {
            mcmd_usage_error(&CMD, "unknown option %s (dualpipe backfill --help)\n", s);
            return BF_USAGE;
        } else if (!a->path) a->path = s;
        else {
            mcmd_usage_error(&CMD, "one PATH only\n");
            return BF_USAGE;
        }
    }
    if (!a->config) {
        mcmd_usage_error(&CMD, "--config FILE is required (dualpipe backfill --help)\n");
        return BF_USAGE;
    }
    if ((a->plan != NULL) + (a->settle != NULL) + (a->drop != NULL) > 1) {
        mcmd_usage_error(&CMD, "--plan, --settle and --drop-fence are separate steps: one at a time\n");
        return BF_USAGE;
    }
    if (a->plan && strcmp(a->plan, "distcp") != 0) {
        mcmd_usage_error(&CMD, "--plan: the only plan is distcp\n");
        return BF_USAGE;
    }
    if (a->plan && !a->plan_file) {
        mcmd_usage_error(&CMD, "--plan distcp needs --plan-file FILE (the list for hadoop distcp -f)\n");
        return BF_USAGE;
    }
    if (!a->plan && (a->plan_file || a->plan_prefix || a->plan_target)) {
        mcmd_usage_error(&CMD, "--plan-file, --plan-source-prefix and --plan-target go with --plan distcp\n");
        return BF_USAGE;
    }
    if ((a->plan || a->settle || a->drop) && a->cursor) {
        mcmd_usage_error(&CMD, "--cursor goes with a copy run: a plan is taken again (a new fence), a settle or a drop is run "
                    "again as it is\n");
        return BF_USAGE;
    }
    if (a->plan_prefix && (!strstr(a->plan_prefix, "://") || a->plan_prefix[strlen(a->plan_prefix) - 1] == '/' ||
                           strpbrk(a->plan_prefix, " \t\r\n"))) {
        mcmd_usage_error(&CMD, "--plan-source-prefix must be scheme://authority without a trailing / (e.g. "
                    "adl://account.azuredatalakestore.net)\n");
        return BF_USAGE;
    }
    const char *tok = a->settle ? a->settle : a->drop;
    if (tok && !token_ok(tok)) {
        mcmd_usage_error(&CMD, "%s: %s is not a fence token (dpf1-<24 hex>-<number>-<number>, as --plan printed it)\n",
                    a->settle ? "--settle" : "--drop-fence", tok);
        return BF_USAGE;
    }
    return 0;
}

/* "http://HOST:PORT" of the daemon's admin listener. 0 or -1 (message printed). */
static int admin_base(const bf_args *a, const dp_config *c, char *base, size_t cap)
{
    if (a->admin) {
        const char *colon = strrchr(a->admin, ':');
        char *end = NULL;
        long port = colon ? strtol(colon + 1, &end, 10) : 0;
        if (!colon || colon == a->admin || strpbrk(a->admin, "/@?# \t") || !end || *end || port < 1 || port > 65535) {
            mcmd_usage_error(&CMD, "--admin must be HOST:PORT (e.g. 127.0.0.1:14080)\n");
            return -1;
        }
        snprintf(base, cap, "http://%s", a->admin);
        return 0;
    }
    if (c->admin_listen.port == 0) {
        mcmd_usage_error(&CMD, "admin.listen has port 0 (picked at start); give --admin HOST:PORT (the daemon's ready line "
                    "names it)\n");
        return -1;
    }
    const char *h = c->admin_listen.host;
    if (strcmp(h, "0.0.0.0") == 0) h = "127.0.0.1";
    else if (strcmp(h, "::") == 0) h = "::1";
    bool v6 = strchr(h, ':') != NULL;
    snprintf(base, cap, "http://%s%s%s:%d", v6 ? "[" : "", h, v6 ? "]" : "", c->admin_listen.port);
    return 0;
}

static json_t *report(backfill *b, const walk_stats *ws, double secs)
{
    uint64_t files = b->copied_files, bytes = b->copied_bytes;
    return json_pack("{s:s,s:s,s:{s:I,s:I,s:I},s:{s:I,s:I},s:{s:I},s:{s:I,s:O},s:I,s:I,s:I,s:f,s:f,"
                     "s:f,s:{s:I,s:I,s:I,s:I,s:b}}",
                     "root", b->root, "run", b->owner, "copied", "files", (json_int_t)b->copied_files, "bytes",
                     (json_int_t)b->copied_bytes, "dirs", (json_int_t)b->copied_dirs, "skipped_equal", "files",
                     (json_int_t)b->equal_files, "bytes",
                     (json_int_t)b->equal_bytes, "skipped_newer", "files", (json_int_t)b->newer_files, "failed",
                     "count", (json_int_t)b->failed, "items", b->failures, "dirs_present",
                     (json_int_t)b->present_dirs, "bytes", (json_int_t)bytes, "copies_requested",
                     (json_int_t)b->requested, "seconds", secs, "files_per_s", secs > 0 ? (double)files / secs : 0.0,
                     "bytes_per_s", secs > 0 ? (double)bytes / secs : 0.0, "walk", "entries",
                     (json_int_t)ws->entries, "requests", (json_int_t)ws->requests, "retries",
                     (json_int_t)(ws->retries + b->retries), "gone", (json_int_t)ws->gone, "resumed", ws->resumed);
}

/* ---------------------------------------------------------------- --plan distcp, --settle FENCE */

/* host (and :port) of a scheme://host[:port][/...] endpoint into out. */
static void endpoint_host(const char *ep, char *out, size_t cap)
{
    const char *hp = strstr(ep, "://");
    snprintf(out, cap, "%s", hp ? hp + 3 : ep);
    char *slash = strchr(out, '/');
    if (slash) *slash = '\0';
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcasecmp(s + n - k, suffix) == 0;
}

/* The default scheme://authority of the list's source URIs: adl://ACCOUNT.azuredatalakestore.net for
 * an ADLS Gen1 endpoint, else webhdfs://HOST:PORT (swebhdfs:// over https), the endpoint dualpipe's
 * own WebHDFS client talks to. */
static void plan_default_prefix(const dp_config *c, char *out, size_t cap)
{
    char host[512], bare[512];
    endpoint_host(c->gen1_endpoint, host, sizeof host);
    snprintf(bare, sizeof bare, "%s", host);
    char *colon = strrchr(bare, ':');
    if (colon && !strchr(colon, ']')) *colon = '\0';
    if (ends_with(bare, ".azuredatalakestore.net")) snprintf(out, cap, "adl://%s", bare);
    else snprintf(out, cap, "%swebhdfs://%s", strncmp(c->gen1_endpoint, "https://", 8) == 0 ? "s" : "", host);
}

/* The abfss:// URI of Gen1 path root on Gen2 (the mapping's filesystem and path). 0 or -1 (err). */
static int plan_target_uri(backfill *b, char *out, size_t cap, char *err, size_t errlen)
{
    char fs[64], why[256], host[512];
    char *p = malloc(WHREQ_MAX_PATH + 1);
    if (!p) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    gen2c_map_result mr = gen2c_map(b->g2, b->root, fs, p, WHREQ_MAX_PATH + 1, why, sizeof why);
    if (mr != GEN2C_MAPPED) {
        snprintf(err, errlen, "%s: %s", b->root, mr == GEN2C_UNMAPPED ? "no mapping covers it" : why);
        free(p);
        return -1;
    }
    endpoint_host(b->cfg->gen2_endpoint, host, sizeof host);
    char *colon = strrchr(host, ':');
    if (colon) *colon = '\0';
    if (!strstr(host, ".dfs.")) snprintf(host, sizeof host, "%s.dfs.core.windows.net", b->cfg->gen2_account);
    snprintf(out, cap, "abfss://%s@%s/%s", fs, host, p);
    free(p);
    return 0;
}

/* The walk's visitor for --plan: PATH's own entries become the list (DistCp copies each one whole,
 * to TARGET/<name>); the walk's counters size the copy. */
static int plan_page(void *ud, walk *w, const walk_dir *d, const xlate_listing *page, bool last, char *err,
                     size_t errlen)
{
    (void)w;
    (void)last;
    backfill *b = ud;
    if (strcmp(d->path, b->root) != 0) return 0;
    size_t rl = strlen(b->root);
    int rc = 0;
    pthread_mutex_lock(&b->mu);
    for (int i = 0; i < page->n && rc == 0; i++) {
        const char *name = page->v[i].name;
        if (strpbrk(name, "\r\n")) {
            char path[WHREQ_MAX_PATH + 2];
            snprintf(path, sizeof path, "%s%s%s", b->root, rl > 1 ? "/" : "", name);
            failure(b, path, "a name with a line break cannot be a line of the list: copy it with `dualpipe "
                    "backfill` (settle does not cover it unless it is written through the proxy)");
            b->plan_skipped++;
            continue;
        }
        if (fprintf(b->plan_list, "%s%s%s%s\n", b->plan_prefix, b->root, rl > 1 ? "/" : "", name) < 0) {
            snprintf(err, errlen, "cannot write the list: %s", strerror(errno));
            rc = -1;
        }
        b->plan_lines++;
    }
    pthread_mutex_unlock(&b->mu);
    return rc;
}

/* Wait until no copy is out (the poller settles them). 0, or -1 (err). */
static int drain(backfill *b, char *err, size_t errlen)
{
    pthread_mutex_lock(&b->mu);
    while (b->no > 0 && !b->fatal[0] && !mcmd_stopping()) {
        struct timespec dl;
        clock_gettime(CLOCK_MONOTONIC, &dl);
        dl.tv_sec += 1;
        pthread_cond_timedwait(&b->cv, &b->mu, &dl);
    }
    int rc = b->no == 0 ? 0 : -1;
    if (rc) {
        int n = snprintf(err, errlen, "%.600s while %zu copies were still out (the daemon finishes them)",
                         b->fatal[0] ? b->fatal : "interrupted", b->no);
        (void)n; /* a long reason is cut short */
    }
    pthread_mutex_unlock(&b->mu);
    return rc;
}

/* An admin call whose answer must be 200 with a JSON object: the object, or NULL (err). */
static json_t *admin_json(backfill *b, const char *method, const char *target, char *err, size_t errlen)
{
    dbuf out;
    dbuf_init(&out, 8u << 20);
    long st = admin_call(b, method, target, &out, err, errlen);
    json_t *j = NULL;
    if (st == 200) {
        j = out.data ? json_loads(out.data, 0, NULL) : NULL;
        if (!json_is_object(j)) {
            json_decref(j);
            j = NULL;
            snprintf(err, errlen, "the daemon's answer to %s is not JSON", target);
        }
    } else if (st != 0) {
        char e[900];
        admin_error(&out, e, sizeof e);
        snprintf(err, errlen, "%s", e);
    }
    dbuf_free(&out);
    return j;
}

/* target = prefix + "&fence=" + the encoded token. 0 or -1. */
static int fence_target(dbuf *q, const char *prefix, const char *owner, const char *token)
{
    dbuf_reset(q);
    if (dbuf_printf(q, "%s", prefix) != 0) return -1;
    if (owner && dbuf_printf(q, "owner=%s&", owner) != 0) return -1;
    return dbuf_adds(q, "fence=") == 0 && url_encode(token, false, q) == 0 ? 0 : -1;
}

/* A token as --plan prints it: dpf1-<24 hex>-<digits>-<digits>. */
static bool token_ok(const char *t)
{
    if (strncmp(t, "dpf1-", 5) != 0) return false;
    t += 5;
    for (int i = 0; i < 24; i++, t++)
        if (!((*t >= '0' && *t <= '9') || (*t >= 'a' && *t <= 'f'))) return false;
    for (int part = 0; part < 2; part++) {
        if (*t++ != '-' || !(*t >= '0' && *t <= '9')) return false;
        while (*t >= '0' && *t <= '9') t++;
    }
    return *t == '\0';
}

static void iso_time(int64_t s, char *out, size_t cap)
{
    time_t t = (time_t)s;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* --plan distcp after the walk: the list in place, the plan file, the summary. */
static int plan_finish(backfill *b, const walk_stats *ws, const char *token, uint64_t seq, const char *target,
                       const char *list_tmp)
{
    const bf_args *ar = b->ar;
    if (fflush(b->plan_list) != 0 || fsync(fileno(b->plan_list)) != 0 || fclose(b->plan_list) != 0) {
        b->plan_list = NULL;
        fprintf(stderr, "dualpipe backfill: cannot write %s: %s\n", list_tmp, strerror(errno));
        return BF_FAILED;
    }
    b->plan_list = NULL;
    if (rename(list_tmp, ar->plan_file) != 0) {
        fprintf(stderr, "dualpipe backfill: cannot rename %s to %s: %s\n", list_tmp, ar->plan_file, strerror(errno));
        return BF_FAILED;
    }
    char created[40], cmd[9000];
    iso_time((int64_t)time(NULL), created, sizeof created);
    snprintf(cmd, sizeof cmd, "hadoop distcp -pugp -i -f <URI of %s where the cluster reads it> %s", ar->plan_file,
             target);
    json_t *plan = json_pack("{s:s,s:I,s:s,s:s,s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:s,s:s,s:{s:I,s:O}}", "fence", token,
                             "seq", (json_int_t)seq, "root", b->root, "list", ar->plan_file, "source_prefix",
                             b->plan_prefix, "target", target, "entries", (json_int_t)b->plan_lines, "files",
                             (json_int_t)ws->files, "dirs", (json_int_t)ws->dirs, "bytes", (json_int_t)ws->bytes,
                             "gen1_requests", (json_int_t)ws->requests, "created", created, "distcp", cmd,
                             "unlisted", "count", (json_int_t)b->plan_skipped, "items", b->failures);
    char *js = plan ? json_dumps(plan, JSON_INDENT(1) | JSON_SORT_KEYS) : NULL;
    json_decref(plan);
    char pj[4200];
    snprintf(pj, sizeof pj, "%s.json", ar->plan_file);
    int werr = !js || mcmd_write_line(pj, js) != 0;
    if (!werr && ar->json) werr = mcmd_write_line(ar->json, js) != 0;
    free(js);
    if (werr) {
        fprintf(stderr, "dualpipe backfill: cannot write %s\n", pj);
        return BF_FAILED;
    }
    char sz[64];
    mcmd_fmt_bytes(ws->bytes, sz, sizeof sz);
    printf("dualpipe backfill --plan distcp of ");
    mcmd_put_safe(stdout, b->root);
    printf("\n\n  fence     %s (journal seq %" PRIu64 ")\n", token, seq);
    printf("  list      %s: %" PRIu64 " entries of ", ar->plan_file, b->plan_lines);
    mcmd_put_safe(stdout, b->root);
    printf(" (files and directories; DistCp copies each whole)\n");
    printf("  tree      %" PRIu64 " files (%s), %" PRIu64 " directories\n", ws->files, sz, ws->dirs);
    printf("  target    ");
    mcmd_put_safe(stdout, target);
    printf("\n  plan      %s\n", pj);
    if (b->plan_skipped) printf("  unlisted  %" PRIu64 " entries (names with a line break: see the plan file)\n",
                                b->plan_skipped);
    printf("\nPut the list where the cluster reads it (hdfs dfs -put %s /tmp/), then run:\n", ar->plan_file);
    printf("  hadoop distcp -pugp -i -f hdfs:///tmp/%s ", strrchr(ar->plan_file, '/') ? strrchr(ar->plan_file, '/') + 1
                                                                                    : ar->plan_file);
    mcmd_put_safe(stdout, target);
    printf("\nand once it is over (after every run of it, if it must run again):\n");
    printf("  dualpipe backfill --settle %s --config %s\n", token, ar->config);
    return b->plan_skipped ? BF_SOME_FAILED : BF_OK;
}

/* The paths a settle has asked for: path -> 'T' (whole subtree) or 'N' (the node). */
static int settle_one(backfill *b, json_t *seen, const char *path, bool tree, uint64_t *subtrees, uint64_t *nodes,
                      char *err, size_t errlen)
{
    json_t *have = json_object_get(seen, path);
    if (have && (json_is_true(have) || !tree)) return 0;
    if (!have && json_object_size(seen) >= BF_SETTLE_SEEN_MAX)
        json_object_clear(seen); /* a bound on memory: a path met again after this is only resynced again */
    if (json_object_set_new(seen, path, json_boolean(tree)) != 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (tree) (*subtrees)++;
    else (*nodes)++;
    return request_copy(b, path, 0, !tree, err, errlen);
}

/* --settle FENCE: resync every path written through the proxy since the fence (and the directories
 * between PATH and each, node only: a write may have created them). */
static int settle_run(backfill *b, const char *token, json_t **rep_out, char *err, size_t errlen)
{
    dbuf q;
    dbuf_init(&q, 16384);
    json_t *seen = json_object(), *info = NULL;
    uint64_t paths = 0, subtrees = 0, nodes = 0, parents = 0;
    int rc = -1;
    if (!seen || fence_target(&q, "/admin/backfill/settle?", b->owner, token) != 0) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    if (!(info = admin_json(b, "POST", q.data, err, errlen))) goto out;
    uint64_t after = 0;
    size_t rl = strlen(b->root);
    bool settled = strcmp(json_string_value(json_object_get(info, "state")) ?: "", "settled") == 0;
    while (!settled) {
        if (fence_target(&q, "/admin/backfill/touched?", b->owner, token) != 0 ||
            dbuf_printf(&q, "&after=%" PRIu64, after) != 0) {
            snprintf(err, errlen, "out of memory");
            goto out;
        }
        json_t *pg = admin_json(b, "GET", q.data, err, errlen);
        if (!pg) goto out;
        size_t i;
        json_t *e;
        int prc = 0;
        json_array_foreach(json_object_get(pg, "paths"), i, e) {
            const char *p = json_string_value(json_object_get(e, "path"));
            if (!p || prc) continue;
            paths++;
            prc = settle_one(b, seen, p, json_is_true(json_object_get(e, "tree")), &subtrees, &nodes, err, errlen);
            /* the directories between PATH and p: a write may have created them (MKDIRS, CREATE make parents) */
            char anc[WHREQ_MAX_PATH + 1];
            snprintf(anc, sizeof anc, "%s", p);
            for (char *s = strrchr(anc, '/'); prc == 0 && s && (size_t)(s - anc) > rl; s = strrchr(anc, '/')) {
                *s = '\0';
                if (json_object_get(seen, anc)) break; /* it and its own ancestors are asked for already */
                uint64_t before = nodes;
                prc = settle_one(b, seen, anc, false, &subtrees, &nodes, err, errlen);
                parents += nodes - before;
                nodes = before;
            }
        }
        bool end = json_is_true(json_object_get(pg, "end"));
        after = (uint64_t)json_integer_value(json_object_get(pg, "next"));
        json_decref(pg);
        if (prc) goto out;
        if (end) break;
    }
    if (!settled && drain(b, err, errlen) != 0) goto out;
    pthread_mutex_lock(&b->mu);
    uint64_t resynced = b->copied_files + b->copied_dirs, failed = b->failed;
    pthread_mutex_unlock(&b->mu);
    if (!settled && failed == 0) {
        json_decref(info);
        info = NULL;
        if (fence_target(&q, "/admin/backfill/settled?", b->owner, token) != 0 ||
            dbuf_printf(&q, "&resynced=%" PRIu64, resynced) != 0) {
            snprintf(err, errlen, "out of memory");
            goto out;
        }
        if (!(info = admin_json(b, "POST", q.data, err, errlen))) goto out;
    }
    *rep_out = json_pack("{s:s,s:s,s:b,s:O,s:I,s:I,s:I,s:I,s:I,s:{s:I,s:O},s:f}", "fence", token, "root", b->root,
                         "already_settled", settled, "fence_state", info, "paths", (json_int_t)paths, "subtrees",
                         (json_int_t)subtrees, "nodes", (json_int_t)nodes, "parents", (json_int_t)parents,
                         "resynced", (json_int_t)resynced, "failed", "count", (json_int_t)failed, "items",
                         b->failures, "seconds", mcmd_mono_s() - b->t0);
    if (!*rep_out) snprintf(err, errlen, "out of memory");
    else rc = 0;
out:
    json_decref(info);
    json_decref(seen);
    dbuf_free(&q);
    return rc;
}

static void settle_print(const json_t *rep, const char *config, FILE *out)
{
    json_t *fi = json_object_get(rep, "fence_state");
    char when[40];
    iso_time(json_integer_value(json_object_get(fi, "created")), when, sizeof when);
    fprintf(out, "dualpipe backfill --settle %s of ", json_string_value(json_object_get(rep, "fence")));
    mcmd_put_safe(out, json_string_value(json_object_get(rep, "root")));
    fprintf(out, "\n\n  fence taken   %s at journal seq %" JSON_INTEGER_FORMAT "\n", when,
            json_integer_value(json_object_get(fi, "seq")));
    if (json_is_true(json_object_get(rep, "already_settled"))) {
        iso_time(json_integer_value(json_object_get(fi, "settled")), when, sizeof when);
        fprintf(out, "  settled       already, at %s (%" JSON_INTEGER_FORMAT " paths resynced then): nothing to do\n",
                when, json_integer_value(json_object_get(fi, "resynced")));
        return;
    }
    json_t *fl = json_object_get(rep, "failed");
    fprintf(out, "  written since %" JSON_INTEGER_FORMAT " paths through the proxy (%" JSON_INTEGER_FORMAT
            " whole subtrees: rename and delete; %" JSON_INTEGER_FORMAT " single nodes), %" JSON_INTEGER_FORMAT
            " parent directories\n",
            json_integer_value(json_object_get(rep, "paths")), json_integer_value(json_object_get(rep, "subtrees")),
            json_integer_value(json_object_get(rep, "nodes")), json_integer_value(json_object_get(rep, "parents")));
    fprintf(out, "  resynced      %" JSON_INTEGER_FORMAT " (journaled, in order with the live writes)\n",
            json_integer_value(json_object_get(rep, "resynced")));
    fprintf(out, "  failed        %" JSON_INTEGER_FORMAT "\n", json_integer_value(json_object_get(fl, "count")));
    size_t i;
    json_t *f;
    json_array_foreach(json_object_get(fl, "items"), i, f) {
        fputs("      ", out);
        mcmd_put_safe(out, json_string_value(json_object_get(f, "path")));
        fputs(": ", out);
        mcmd_put_safe(out, json_string_value(json_object_get(f, "reason")));
        fputc('\n', out);
    }
    if (json_integer_value(json_object_get(fl, "count")) == 0) {
        fprintf(out, "\nSettled: every path written through the proxy since the fence now has Gen1's state on Gen2.\n"
                "The rest is as the bulk copy left it: owners, groups and ACL entries under Gen1's names (with a\n"
                "gen2.identity_map that renames them, verify reports them and --repair copies those paths again),\n"
                "no dualpipe_times (verify counts those mtimes as not recorded). Check with:\n  dualpipe verify ");
        mcmd_put_safe(out, json_string_value(json_object_get(rep, "root")));
        fprintf(out, " --config %s\n", config);
    } else {
        fprintf(out, "\nNot settled: fix the cause, then run the same command again (it resyncs the fence's paths "
                "again).\n");
    }
}

int backfill_main(int argc, char **argv)
{
    bf_args ar;
    int pr = parse_args(argc, argv, &ar);
    if (pr < 0) return BF_OK;
    if (pr) return BF_USAGE;
    dp_config cfg;
    cfg_err ce;
    if (cfg_load_file(ar.config, &cfg, &ce) != 0) {
        fprintf(stderr, "dualpipe backfill: %s: %s%s%s\n", ar.config, ce.path, ce.path[0] ? ": " : "", ce.message);
        return BF_FAILED;
    }
    int rc = BF_FAILED;
    backfill b;
    memset(&b, 0, sizeof b);
    b.cfg = &cfg;
    b.ar = &ar;
    b.failures = json_array();
    pthread_mutex_init(&b.mu, NULL);
    pthread_mutex_init(&b.cmu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&b.cv, &ca);
    pthread_condattr_destroy(&ca);
    poller pl = {.b = &b};
    pthread_mutex_init(&pl.mu, NULL);
    pthread_cond_init(&pl.cv, NULL);
    bool poller_on = false;
    httpc *http = NULL;
    gen1c *g1 = NULL;
    g1a *ident = NULL;
    json_t *rep = NULL;
    char *path = NULL, err[1024] = "";
    b.t0 = mcmd_mono_s();
    bool curl_on = curl_global_init(CURL_GLOBAL_DEFAULT) == 0;
    const char *want = ar.path;
    char fence_root[WHREQ_MAX_PATH + 1] = "", plan_tmp[4200] = "", target[9000] = "", token[100] = "";
    uint64_t fence_seq = 0;
    char plan_prefix[600] = "";
    if (ar.settle || ar.drop) {
        /* the fence decides the tree: ask the daemon about it first */
        if (admin_base(&ar, &cfg, b.base, sizeof b.base) != 0) {
            rc = BF_USAGE;
            goto out;
        }
        dbuf q;
        dbuf_init(&q, 1024);
        json_t *fi = NULL;
        if (fence_target(&q, ar.drop ? "/admin/backfill/unfence?" : "/admin/backfill/fences?", NULL,
                         ar.drop ? ar.drop : ar.settle) == 0)
            fi = admin_json(&b, ar.drop ? "POST" : "GET", q.data, err, sizeof err);
        dbuf_free(&q);
        const char *r = json_string_value(json_object_get(fi, "root"));
        if (fi && r) snprintf(fence_root, sizeof fence_root, "%s", r);
        json_decref(fi);
        if (!fi) {
            fprintf(stderr, "dualpipe backfill: %s\n", err[0] ? err : "out of memory");
            goto out;
        }
        if (ar.drop) {
            printf("fence %s dropped: the daemon no longer records paths for it\n", ar.drop);
            rc = BF_OK;
            goto out;
        }
        if (!want) want = fence_root;
    }
    int root_rc = mcmd_root(&CMD, &cfg, want, &path);
    if (root_rc != 0) {
        rc = root_rc == 2 ? BF_USAGE : rc;
        goto out;
    }
    b.root = path;
    if (ar.settle && strcmp(path, fence_root) != 0) {
        fprintf(stderr, "dualpipe backfill: fence %s was taken on %s, not %s: settle it without PATH (or with that "
                "one)\n", ar.settle, fence_root, path);
        rc = BF_USAGE;
        goto out;
    }
    if (admin_base(&ar, &cfg, b.base, sizeof b.base) != 0) {
        rc = BF_USAGE;
        goto out;
    }
    if (!curl_on || httpc_start(0, &http, err, sizeof err) != 0 || gen1c_new(&cfg, http, &g1, err, sizeof err) != 0 ||
        gen2c_new(&cfg, http, &b.g2, err, sizeof err) != 0 || g1a_new(&cfg, http, &ident, err, sizeof err) != 0) {
        fprintf(stderr, "dualpipe backfill: %s\n", err[0] ? err : "cannot start the HTTP engine");
        goto out;
    }
    gen1c_set_identity(g1, ident);
    mcmd_catch_signals();
    /* a new run takes its lease now; a resumed one in bf_load, with the id its cursor keeps */
    struct stat cst;
    if (!ar.cursor || stat(ar.cursor, &cst) != 0) {
        unsigned char rnd[12];
        if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
            fprintf(stderr, "dualpipe backfill: no random bytes for the run id\n");
            goto out;
        }
        for (size_t i = 0; i < sizeof rnd; i++) snprintf(b.owner + 2 * i, 3, "%02x", rnd[i]);
        if (lease_begin(&b, err, sizeof err) != 0) {
            fprintf(stderr, "dualpipe backfill: %s\n", err);
            goto out;
        }
    }
    if (pthread_create(&pl.th, NULL, poll_main, &pl) != 0) {
        fprintf(stderr, "dualpipe backfill: cannot start a thread\n");
        goto out;
    }
    poller_on = true;
    if (ar.settle) {
        err[0] = 0;
        if (settle_run(&b, ar.settle, &rep, err, sizeof err) != 0) {
            fprintf(stderr, "dualpipe backfill: %s; the same command settles it again\n", err);
            goto out;
        }
        settle_print(rep, ar.config, stdout);
        char *js = json_dumps(rep, JSON_INDENT(1) | JSON_SORT_KEYS);
        int werr = ar.json && (!js || mcmd_write_line(ar.json, js) != 0);
        free(js);
        if (werr) fprintf(stderr, "dualpipe backfill: cannot write %s\n", ar.json);
        rc = werr ? BF_FAILED : b.failed ? BF_SOME_FAILED : BF_OK;
        goto out;
    }
    if (ar.plan) {
        /* the target directory first (DistCp puts each listed entry under it), then the fence: every write
         * the walk or the copy may miss from here on is recorded by the daemon */
        if (ar.plan_prefix) snprintf(plan_prefix, sizeof plan_prefix, "%s", ar.plan_prefix);
        else plan_default_prefix(&cfg, plan_prefix, sizeof plan_prefix);
        b.plan_prefix = plan_prefix;
        if (ar.plan_target) snprintf(target, sizeof target, "%s", ar.plan_target);
        else if (plan_target_uri(&b, target, sizeof target, err, sizeof err) != 0) {
            fprintf(stderr, "dualpipe backfill: %s\n", err);
            goto out;
        }
        g2node n;
        int h = g2_head(&b, path, &n, err, sizeof err);
        if (h != 0 || ((!n.exists || !n.dir) && (request_copy(&b, path, 0, true, err, sizeof err) != 0 ||
                                                  drain(&b, err, sizeof err) != 0))) {
            fprintf(stderr, "dualpipe backfill: the target directory %s on Gen2: %s\n", path, err);
            goto out;
        }
        if (b.failed) {
            const char *why = json_string_value(json_object_get(json_array_get(b.failures, 0), "reason"));
            fprintf(stderr, "dualpipe backfill: the daemon could not make the target directory %s on Gen2: %s\n", path,
                    why ? why : "no reason given");
            goto out;
        }
        dbuf q;
        dbuf_init(&q, 256);
        json_t *fi = dbuf_printf(&q, "/admin/backfill/fence?owner=%s", b.owner) == 0
                         ? admin_json(&b, "POST", q.data, err, sizeof err)
                         : NULL;
        dbuf_free(&q);
        const char *t = json_string_value(json_object_get(fi, "fence"));
        if (t) snprintf(token, sizeof token, "%s", t);
        fence_seq = (uint64_t)json_integer_value(json_object_get(fi, "seq"));
        json_decref(fi);
        if (!token[0]) {
            fprintf(stderr, "dualpipe backfill: the daemon took no fence: %s\n", err[0] ? err : "bad answer");
            goto out;
        }
        snprintf(plan_tmp, sizeof plan_tmp, "%s.tmp", ar.plan_file);
        if (!(b.plan_list = fopen(plan_tmp, "w"))) {
            fprintf(stderr, "dualpipe backfill: cannot write %s: %s (fence %s is taken: drop it with --drop-fence, "
                    "or plan again)\n", plan_tmp, strerror(errno), token);
            plan_tmp[0] = '\0';
            goto out;
        }
    }
    bool hadoop = cfg.gen1_dialect == CFG_DIALECT_HADOOP;
    walk_gen1 lg = {.g1 = g1, .hadoop = hadoop, .page = ar.page};
    walk_opts wo = {.root = path, .list = walk_gen1_lister, .lud = &lg, .g1 = g1, .threads = ar.threads,
                    .ops_per_s = ar.ops, .retries = ar.retries, .cursor = ar.cursor, .progress = !ar.no_progress,
                    .stop = &mcmd_stop, .on_page = ar.plan ? plan_page : bf_page, .save = ar.plan ? NULL : bf_save,
                    .load = ar.plan ? NULL : bf_load, .ud = &b};
    walk_stats ws;
    memset(&ws, 0, sizeof ws);
    err[0] = 0;
    walk_result wr = walk_run(&wo, &ws, err, sizeof err);
    if (wr == WALK_DONE && ar.plan) {
        rc = plan_finish(&b, &ws, token, fence_seq, target, plan_tmp);
        if (rc != BF_FAILED) plan_tmp[0] = '\0';
        goto out;
    }
    if (wr != WALK_DONE && ar.plan) {
        fprintf(stderr, "dualpipe backfill: %s; no list written (fence %s is taken: plan again, and drop it with "
                "--drop-fence)\n", err[0] ? err : "interrupted", token);
        goto out;
    }
    if (wr != WALK_DONE) {
        /* a cursor the walker refused is not one to resume from (its message says what to do) */
        bool resumable = ar.cursor && !strstr(err, "cursor file");
        fprintf(stderr, "dualpipe backfill: %s%s\n", err[0] ? err : "interrupted",
                resumable ? "; the same command resumes from the cursor" : "");
        goto out;
    }
    /* the walk is over: wait for the copies still out */
    pthread_mutex_lock(&b.mu);
    while (b.no > 0 && !b.fatal[0] && !mcmd_stopping()) {
        struct timespec dl;
        clock_gettime(CLOCK_MONOTONIC, &dl);
        dl.tv_sec += 1;
        pthread_cond_timedwait(&b.cv, &b.mu, &dl);
    }
    bool drained = b.no == 0;
    pthread_mutex_unlock(&b.mu);
    if (!drained) {
        fprintf(stderr, "dualpipe backfill: %s while %zu copies were still out; the daemon finishes them (they are "
                "journaled), and running the command again checks them\n",
                b.fatal[0] ? b.fatal : "interrupted", b.no);
        goto out;
    }
    double secs = b.prev_seconds + (mcmd_mono_s() - b.t0);
    rep = report(&b, &ws, secs);
    if (!rep) {
        fprintf(stderr, "dualpipe backfill: out of memory building the report\n");
        goto out;
    }
    print_text(rep, stdout);
    char *js = json_dumps(rep, JSON_INDENT(1) | JSON_SORT_KEYS);
    int werr = 0;
    if (ar.json && (!js || mcmd_write_line(ar.json, js) != 0)) {
        fprintf(stderr, "dualpipe backfill: cannot write %s\n", ar.json);
        werr = 1;
    }
    free(js);
    rc = werr ? BF_FAILED : b.failed ? BF_SOME_FAILED : BF_OK;
out:
    if (poller_on) {
        pthread_mutex_lock(&pl.mu);
        pl.quit = true;
        pthread_cond_signal(&pl.cv);
        pthread_mutex_unlock(&pl.mu);
        pthread_join(pl.th, NULL);
    }
    if (b.g2 || http) lease_end(&b);
    json_decref(rep);
    g1a_stop(ident);
    if (b.g2) gen2c_stop(b.g2);
    if (http) httpc_stop(http);
    g1a_free(ident);
    gen1c_free(g1);
    if (b.g2) gen2c_free(b.g2);
    for (size_t i = 0; i < b.no; i++) free(b.o[i].path);
    free(b.o);
    for (int i = 0; i < b.npool; i++) curl_easy_cleanup(b.pool[i]);
    if (b.plan_list) fclose(b.plan_list);
    if (plan_tmp[0]) unlink(plan_tmp);
    json_decref(b.failures);
    pthread_cond_destroy(&pl.cv);
    pthread_mutex_destroy(&pl.mu);
    pthread_cond_destroy(&b.cv);
    pthread_mutex_destroy(&b.cmu);
    pthread_mutex_destroy(&b.mu);
    free(path);
    cfg_free(&cfg);
    if (curl_on) curl_global_cleanup();
    return rc;
}
