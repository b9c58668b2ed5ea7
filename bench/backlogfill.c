/*
 * dualpipe-backlogfill: fills a proxy's spool and journal with N records that Gen1 accepted and Gen2
 * still owes (state PRIMARY_OK), written through the journal library offline as the proxy would have
 * journaled them, so that bench/backlog.py can start the proxy on a large backlog in seconds instead of
 * sending N writes through it.
 *
 *   dualpipe-backlogfill --spool DIR --records N [--dirs D] [--body-every K] [--body BYTES]
 *                        [--io auto|io_uring|threads]
 *
 * The mix, per record i (i from 0): every K-th record (default 20) a CREATE of DIR/d<i%D>/f<i> with a
 * BYTES-byte body (default 100); otherwise by i%10: 0-4 a CREATE without a body (overwrite=true), 5-7 a
 * SETPERMISSION of the file created by the record 5 before it, 8-9 a MKDIRS of /bench/d<i%D>/s<i>.
 * Spool bodies take a 4 KiB region each, so the spool holds about N/K * 4 KiB. The journal is at
 * DIR/journal and the spool at DIR/data (the proxy's layout for spool.dir DIR with no journal.dir).
 * Prints one JSON line: records, seconds, journal bytes.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "iox.h"
#include "journal.h"
#include "spool.h"

#define FILL_BATCH 20000 /* appends in flight before the filler waits for them to be durable */

typedef struct fill {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t inflight, errors;
} fill;

static void on_durable(void *ud, uint64_t seq, int err)
{
    (void)seq;
    fill *f = ud;
    pthread_mutex_lock(&f->mu);
    f->inflight--;
    if (err) f->errors++;
    if (f->inflight == 0) pthread_cond_signal(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

static int parse_u64(const char *s, uint64_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-') return -1;
    *out = v;
    return 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    const char *dir = NULL;
    uint64_t n = 0, dirs = 1000, every = 20, body = 100;
    iox_backend be = IOX_AUTO;
    for (int i = 1; i < argc; i += 2) { /* every option takes a value */
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = !v;
        if (!bad && strcmp(a, "--spool") == 0) dir = v;
        else if (!bad && strcmp(a, "--records") == 0) bad = parse_u64(v, &n);
        else if (!bad && strcmp(a, "--dirs") == 0) bad = parse_u64(v, &dirs) || dirs == 0;
        else if (!bad && strcmp(a, "--body-every") == 0) bad = parse_u64(v, &every) || every == 0;
        else if (!bad && strcmp(a, "--body") == 0) bad = parse_u64(v, &body) || body == 0 || body > (1u << 20);
        else if (!bad && strcmp(a, "--io") == 0) bad = iox_backend_parse(v, &be);
        else bad = 1;
        if (bad) {
            fprintf(stderr, "usage: dualpipe-backlogfill --spool DIR --records N [--dirs D] [--body-every K] "
                            "[--body BYTES] [--io auto|io_uring|threads]\n");
            return 2;
        }
    }
    if (!dir || n == 0) {
        fprintf(stderr, "backlogfill: --spool and --records are required\n");
        return 2;
    }
    char sdir[4096], jdir[4096], err[512] = "";
    snprintf(sdir, sizeof sdir, "%s/data", dir);
    snprintf(jdir, sizeof jdir, "%s/journal", dir);
    if (mkdir(dir, 0750) < 0 && errno != EEXIST) {
        fprintf(stderr, "backlogfill: cannot create %s: %s\n", dir, strerror(errno));
        return 1;
    }
    iox *io = NULL;
    spool *sp = NULL;
    journal *j = NULL;
    int rc = 1;
    uint8_t *payload = malloc(body);
    if (!payload) return 1;
    for (uint64_t i = 0; i < body; i++) payload[i] = (uint8_t)('a' + i % 26);
    if (iox_new(be, 0, 0, &io, err, sizeof err) != 0) goto out;
    spool_opts so = {.dir = sdir, .io = io};
    if (spool_open(&so, &sp, err, sizeof err) != 0) goto out;
    jnl_opts jo = {.dir = jdir, .io = io, .sp = sp, .verify_bodies = false};
    jnl_recovery rep;
    if (jnl_open(&jo, &j, &rep, err, sizeof err) != 0) goto out;
    if (rep.records > 0) {
        snprintf(err, sizeof err, "the journal in --spool already holds records: use a fresh directory");
        goto out;
    }
    fill f = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    double t0 = now_s();
    whreq_param pcreate[1] = {{"overwrite", "true"}}, pperm[1] = {{"permission", "640"}};
    for (uint64_t i = 0; i < n; i++) {
        char path[128];
        jnl_write_in in = {0};
        spool_body *b = NULL;
        uint64_t k = i % 10;
        if (i % every == 0 || k <= 4) {
            snprintf(path, sizeof path, "/bench/d%03" PRIu64 "/f%09" PRIu64, i % dirs, i);
            in = (jnl_write_in){.jop = JFMT_OP_CREATE, .path = path, .params = pcreate, .nparams = 1};
            if (i % every == 0) {
                if (spool_begin(sp, body, body, &b) != 0 || spool_write(b, payload, body) != 0 || spool_finish(b) != 0) {
                    snprintf(err, sizeof err, "spool write failed at record %" PRIu64, i);
                    spool_unref(b);
                    goto out;
                }
                in.body = b;
            }
        } else if (k <= 7) {
            uint64_t t = i - 5; /* k-5 in 0..2: a CREATE (of either kind) */
            snprintf(path, sizeof path, "/bench/d%03" PRIu64 "/f%09" PRIu64, t % dirs, t);
            in = (jnl_write_in){.jop = JFMT_OP_SETPERMISSION, .path = path, .params = pperm, .nparams = 1};
        } else {
            snprintf(path, sizeof path, "/bench/d%03" PRIu64 "/s%09" PRIu64, i % dirs, i);
            in = (jnl_write_in){.jop = JFMT_OP_MKDIRS, .path = path};
        }
        pthread_mutex_lock(&f.mu);
        f.inflight++;
        pthread_mutex_unlock(&f.mu);
        uint64_t seq = 0;
        int arc = jnl_append(j, &in, on_durable, &f, &seq);
        spool_unref(b);
        if (arc != 0) {
            snprintf(err, sizeof err, "append failed at record %" PRIu64 ": %s", i, strerror(-arc));
            goto out;
        }
        if (jnl_state(j, seq, JFMT_S_PRIMARY_OK, 200, NULL, NULL, NULL) != 0) {
            snprintf(err, sizeof err, "state failed at record %" PRIu64, i);
            goto out;
        }
        if ((i + 1) % FILL_BATCH == 0 || i + 1 == n) {
            pthread_mutex_lock(&f.mu);
            while (f.inflight > 0) pthread_cond_wait(&f.cv, &f.mu);
            pthread_mutex_unlock(&f.mu);
        }
    }
    jnl_stats st;
    jnl_get_stats(j, &st);
    printf("{\"records\":%" PRIu64 ",\"errors\":%" PRIu64 ",\"seconds\":%.2f,\"journal_bytes\":%" PRIu64 "}\n", n,
           f.errors, now_s() - t0, st.bytes_written);
    rc = f.errors ? 1 : 0;
out:
    if (err[0]) fprintf(stderr, "backlogfill: %s\n", err);
    jnl_close(j);
    for (int i = 0; io && i < 10000 && iox_pending(io) > 0; i++) usleep(1000);
    spool_close(sp);
    iox_free(io);
    free(payload);
    return rc;
}
