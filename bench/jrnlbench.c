/*
 * dualpipe-jrnlbench: the journal's two numbers on the real code (common/journal, common/spool,
 * common/iox). Phase 1: T writer threads append N WRITE records in all (each with a spooled body of
 * --body bytes when asked), every writer waiting for its record to be durable before the next one, as
 * the proxy's writers do; reported: records/s, fdatasyncs per record, commits. Phase 2: the journal is
 * closed and opened again, which runs recovery over everything just written; reported: the scan rate
 * (records / scan_seconds, the "recovery rate") and the whole recovery time (bodies attached
 * and, unless --no-verify, their checksum checked: the CRC-32C of journal format 1.1). Prints a table,
 * or one JSON object with --json.
 *
 * Nothing applies the records, so every one stays live. By default they stay ACCEPTED (waiting for the
 * primary: the journal keeps each one whole in memory, JOURNAL.md section 12). With --primary-ok each
 * writer records PRIMARY_OK (lazily, as the proxy does once the primary answered) after its WRITE is
 * durable: the backlog of a Gen2 outage, held as compact rows past --max-resident (default: the
 * journal's 65,536; the proxy uses 17,408).
 *
 *   dualpipe-jrnlbench --dir D --records N [--io auto|io_uring|threads] [--threads T] [--body BYTES]
 *                      [--segment-bytes B] [--primary-ok] [--max-resident N] [--no-verify] [--keep]
 *                      [--json]
 *
 * D/data (spool) and D/journal are created; they must not hold an earlier run (use a fresh D), and are
 * removed at the end unless --keep.
 */
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "iox.h"
#include "journal.h"
#include "spool.h"

typedef struct bench_opts {
    const char *dir;
    uint64_t records;
    iox_backend io;
    unsigned threads;
    uint64_t body;
    uint64_t segment_bytes;
    uint64_t max_resident;
    bool verify, keep, json, primary_ok;
} bench_opts;

typedef struct shared {
    journal *j;
    spool *sp;
    const bench_opts *o;
    _Atomic uint64_t next;   /* records handed out */
    _Atomic uint64_t errors;
    const uint8_t *payload;
} shared;

typedef struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    int err;
} waiter;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void on_durable(void *ud, uint64_t seq, int err)
{
    (void)seq;
    waiter *w = ud;
    pthread_mutex_lock(&w->mu);
    w->done = true;
    w->err = err;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static void *writer(void *arg)
{
    shared *s = arg;
    waiter w = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    whreq_param ps[2] = {{"overwrite", "true"}, {"permission", "644"}};
    for (;;) {
        uint64_t i = atomic_fetch_add(&s->next, 1);
        if (i >= s->o->records) break;
        char path[96];
        snprintf(path, sizeof path, "/bench/dir%02" PRIu64 "/file-%08" PRIu64 ".dat", i % 64, i);
        spool_body *b = NULL;
        if (s->o->body > 0) {
            if (spool_begin(s->sp, s->o->body, s->o->body, &b) != 0 || spool_write(b, s->payload, s->o->body) != 0 ||
                spool_finish(b) != 0) {
                spool_unref(b);
                atomic_fetch_add(&s->errors, 1);
                continue;
            }
        }
        jnl_write_in in = {.jop = JFMT_OP_CREATE, .path = path, .params = ps, .nparams = 2, .body = b};
        uint64_t seq;
        w.done = false;
        int rc = jnl_append(s->j, &in, on_durable, &w, &seq);
        spool_unref(b);
        if (rc != 0) {
            atomic_fetch_add(&s->errors, 1);
            continue;
        }
        pthread_mutex_lock(&w.mu);
        while (!w.done) pthread_cond_wait(&w.cv, &w.mu);
        int err = w.err;
        pthread_mutex_unlock(&w.mu);
        if (err) atomic_fetch_add(&s->errors, 1);
        else if (s->o->primary_ok && jnl_state(s->j, seq, JFMT_S_PRIMARY_OK, 201, NULL, NULL, NULL) != 0)
            atomic_fetch_add(&s->errors, 1);
    }
    return NULL;
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

static void usage(void)
{
    fprintf(stderr, "usage: dualpipe-jrnlbench --dir D --records N [--io auto|io_uring|threads] [--threads T]\n"
                    "                          [--body BYTES] [--segment-bytes B] [--primary-ok] [--max-resident N]\n"
                    "                          [--no-verify] [--keep] [--json]\n");
}

static int parse_args(int argc, char **argv, bench_opts *o)
{
    *o = (bench_opts){.io = IOX_AUTO, .threads = 64, .verify = true};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        uint64_t n = 0;
        if (strcmp(a, "--json") == 0) o->json = true;
        else if (strcmp(a, "--keep") == 0) o->keep = true;
        else if (strcmp(a, "--no-verify") == 0) o->verify = false;
        else if (strcmp(a, "--primary-ok") == 0) o->primary_ok = true;
        else if (!v) return -1;
        else if (strcmp(a, "--dir") == 0) o->dir = argv[++i];
        else if (strcmp(a, "--records") == 0 && parse_u64(v, &o->records) == 0) i++;
        else if (strcmp(a, "--body") == 0 && parse_u64(v, &o->body) == 0) i++;
        else if (strcmp(a, "--segment-bytes") == 0 && parse_u64(v, &o->segment_bytes) == 0) i++;
        else if (strcmp(a, "--max-resident") == 0 && parse_u64(v, &o->max_resident) == 0) i++;
        else if (strcmp(a, "--threads") == 0 && parse_u64(v, &n) == 0 && n > 0 && n <= 4096) {
            o->threads = (unsigned)n;
            i++;
        } else if (strcmp(a, "--io") == 0 && iox_backend_parse(v, &o->io) == 0) i++;
        else return -1;
    }
    return o->dir && o->records > 0 ? 0 : -1;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    (void)st, (void)flag, (void)f;
    return remove(p);
}

typedef struct handles {
    spool *sp;
    journal *j;
} handles;

static int open_all(const bench_opts *o, iox *io, const char *sdir, const char *jdir, handles *h, jnl_recovery *rep)
{
    char err[512] = "";
    spool_opts so = {.dir = sdir, .io = io};
    if (spool_open(&so, &h->sp, err, sizeof err) != 0) {
        fprintf(stderr, "jrnlbench: %s\n", err);
        return -1;
    }
    jnl_opts jo = {.dir = jdir, .segment_bytes = o->segment_bytes, .io = io, .sp = h->sp, .verify_bodies = o->verify,
                   .max_resident = o->max_resident};
    if (jnl_open(&jo, &h->j, rep, err, sizeof err) != 0) {
        fprintf(stderr, "jrnlbench: %s\n", err);
        spool_close(h->sp);
        return -1;
    }
    return 0;
}

static void close_all(iox *io, handles *h)
{
    jnl_close(h->j);
    for (int i = 0; i < 10000 && iox_pending(io) > 0; i++) usleep(1000);
    spool_close(h->sp);
}

int main(int argc, char **argv)
{
    bench_opts o;
    int rc = 1;
    if (parse_args(argc, argv, &o) != 0) {
        usage();
        return 2;
    }
    char sdir[4096], jdir[4096];
    if ((size_t)snprintf(sdir, sizeof sdir, "%s/data", o.dir) >= sizeof sdir ||
        (size_t)snprintf(jdir, sizeof jdir, "%s/journal", o.dir) >= sizeof jdir) {
        fprintf(stderr, "jrnlbench: --dir too long\n");
        return 2;
    }
    if (mkdir(o.dir, 0750) < 0 && errno != EEXIST) {
        fprintf(stderr, "jrnlbench: cannot create %s: %s\n", o.dir, strerror(errno));
        return 1;
    }
    iox *io = NULL;
    char err[512] = "";
    if (iox_new(o.io, 0, 0, &io, err, sizeof err) != 0) {
        fprintf(stderr, "jrnlbench: %s\n", err);
        return 1;
    }
    uint8_t *payload = malloc(o.body ? o.body : 1);
    if (!payload) goto out_io;
    for (uint64_t i = 0; i < o.body; i++) payload[i] = (uint8_t)(i * 131 + 7);

    handles h;
    jnl_recovery rep0;
    if (open_all(&o, io, sdir, jdir, &h, &rep0) != 0) goto out_io;
    if (rep0.records > 0) {
        fprintf(stderr, "jrnlbench: %s already holds a journal; use a fresh --dir\n", jdir);
        close_all(io, &h);
        goto out_io;
    }
    shared s = {.j = h.j, .sp = h.sp, .o = &o, .payload = payload};
    pthread_t *t = calloc(o.threads, sizeof *t);
    if (!t) goto out_io;
    double t0 = now_s();
    unsigned started = 0;
    for (; started < o.threads; started++)
        if (pthread_create(&t[started], NULL, writer, &s) != 0) break;
    for (unsigned i = 0; i < started; i++) pthread_join(t[i], NULL);
    double write_s = now_s() - t0;
    free(t);
    jnl_stats st;
    jnl_get_stats(h.j, &st);
    close_all(io, &h);

    jnl_recovery rep;
    double r0 = now_s();
    if (open_all(&o, io, sdir, jdir, &h, &rep) != 0) goto out_io;
    double reopen_s = now_s() - r0;
    close_all(io, &h);

    uint64_t ok = st.appended - atomic_load(&s.errors);
    double rps = write_s > 0 ? (double)ok / write_s : 0;
    double fpr = st.appended ? (double)st.fdatasyncs / (double)st.appended : 0;
    double scan_rate = rep.scan_seconds > 0 ? (double)rep.records / rep.scan_seconds : 0;
    double fs_ms = st.fdatasyncs ? st.fdatasync_seconds * 1e3 / (double)st.fdatasyncs : 0;
    if (o.json) {
        printf("{\"backend\":\"%s\",\"records\":%" PRIu64 ",\"threads\":%u,\"body_bytes\":%" PRIu64
               ",\"errors\":%" PRIu64 ",\"write_seconds\":%.3f,\"records_per_s\":%.0f,\"commits\":%" PRIu64
               ",\"fdatasyncs\":%" PRIu64 ",\"fdatasyncs_per_record\":%.4f,\"records_per_commit\":%.1f"
               ",\"fdatasync_ms_avg\":%.3f,\"journal_bytes\":%" PRIu64 ",\"primary_ok\":%s,\"resident\":%" PRIu64
               ",\"evictions\":%" PRIu64 ",\"evict_scans\":%" PRIu64 ",\"recovery\":{\"segments\":%" PRIu64
               ",\"records\":%" PRIu64 ",\"live\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"scan_seconds\":%.4f"
               ",\"scan_records_per_s\":%.0f,\"seconds\":%.4f,\"open_seconds\":%.4f,\"verify\":%s"
               ",\"bodies_lost\":%" PRIu64 ",\"problem\":\"%s\"}}\n",
               iox_backend_name(iox_in_use(io)), o.records, o.threads, o.body, atomic_load(&s.errors), write_s, rps,
               st.commits, st.fdatasyncs, fpr, st.commits ? (double)st.records_written / (double)st.commits : 0,
               fs_ms, st.bytes_written, o.primary_ok ? "true" : "false", st.resident, st.evictions, st.evict_scans,
               rep.segments, rep.records, rep.live, rep.bytes, rep.scan_seconds,
               scan_rate, rep.seconds, reopen_s, o.verify ? "true" : "false", rep.bodies_lost,
               rep.problem[0] ? "see stderr" : "");
    } else {
        printf("backend %s%s%s, %u writer threads, %" PRIu64 "-byte bodies\n", iox_backend_name(iox_in_use(io)),
               iox_reason(io)[0] ? " (fallback: " : "", iox_reason(io)[0] ? iox_reason(io) : "", o.threads, o.body);
        if (iox_reason(io)[0]) printf(")\n");
        printf("%-34s %14s\n", "metric", "value");
        printf("%-34s %14" PRIu64 "\n", "records acknowledged", ok);
        printf("%-34s %14" PRIu64 "\n", "errors", atomic_load(&s.errors));
        printf("%-34s %14.3f\n", "write seconds", write_s);
        printf("%-34s %14.0f\n", "records/s (durable)", rps);
        printf("%-34s %14" PRIu64 "\n", "commits", st.commits);
        printf("%-34s %14" PRIu64 "\n", "fdatasyncs (journal + spool)", st.fdatasyncs);
        printf("%-34s %14.4f\n", "fdatasyncs per record", fpr);
        printf("%-34s %14.3f\n", "fdatasync ms (mean)", fs_ms);
        printf("%-34s %14s\n", "records left", o.primary_ok ? "PRIMARY_OK" : "ACCEPTED");
        printf("%-34s %14" PRIu64 "\n", "resident entries after the fill", st.resident);
        printf("%-34s %14" PRIu64 "\n", "evictions", st.evictions);
        printf("%-34s %14" PRIu64 "\n", "entries the eviction looked at", st.evict_scans);
        printf("%-34s %14" PRIu64 "\n", "recovery: records scanned", rep.records);
        printf("%-34s %14" PRIu64 "\n", "recovery: live entries", rep.live);
        printf("%-34s %14.4f\n", "recovery: scan seconds", rep.scan_seconds);
        printf("%-34s %14.0f\n", "recovery: scan records/s", scan_rate);
        printf("%-34s %14.4f\n", o.verify ? "recovery: total s (bodies checked)" : "recovery: total seconds",
               rep.seconds);
        printf("%-34s %14" PRIu64 "\n", "recovery: bodies lost", rep.bodies_lost);
    }
    if (rep.problem[0]) fprintf(stderr, "jrnlbench: recovery reported: %s\n", rep.problem);
    rc = atomic_load(&s.errors) == 0 && rep.live == ok && rep.bodies_lost == 0 ? 0 : 1;
out_io:
    free(payload);
    iox_free(io);
    if (!o.keep) {
        nftw(sdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
        nftw(jdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    }
    return rc;
}
