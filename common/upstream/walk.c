/*
 * walk: parallel paged tree walker with a spilling work stack, a resumable cursor, a rate limit and a
 * progress line (walk.h says what each part promises).
 *
 * Cursor file format (one JSON document per line, so names with any character survive):
 *   line 1: {"walk_cursor":1,"root":R,"stats":{...},"state":VISITOR}
 *   then one line per pending unit: [dir, after, depth, entries_so_far, bytes_so_far]
 * The spill file holds blocks of unit lines; the in-memory stack spills its older half as one block.
 */
#include "walk.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "urlcodec.h"

#define WALK_LIST_MAX (256u << 20) /* one listing page answer */

typedef struct unit {
    char *dir;
    char *after;               /* "" for the first page */
    int depth;
    uint64_t entries, bytes;   /* of dir, over the pages before this one */
} unit;

typedef struct block {
    off_t off;
    size_t n;
} block;

struct walk {
    const walk_opts *o;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unit *stack;               /* in-memory part, top at n-1 */
    size_t n, cap;
    FILE *spill;               /* blocks of unit lines */
    char *spill_path;          /* named spill file (removed at the end) or NULL (unnamed) */
    block *blocks;
    size_t nblocks, capblocks;
    unsigned inflight;
    bool quiesce, failed, finished;
    char err[512];
    walk_stats st;
    double t0, base_seconds;   /* this run's start; seconds of earlier runs */
    double next_ckpt;
    /* rate limit */
    pthread_mutex_t rmu;
    double next_slot;
    /* progress */
    bool draw;
    pthread_t prog;
    bool prog_on;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_s(double s)
{
    if (s <= 0) return;
    time_t whole = (time_t)s; /* s > 0: truncation is the floor */
    struct timespec ts = {.tv_sec = whole, .tv_nsec = (long)((s - (double)whole) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static void unit_free(unit *u)
{
    free(u->dir);
    free(u->after);
}

/* ---------------------------------------------------------------- unit (de)serialisation */

static int unit_write(FILE *f, const unit *u)
{
    json_t *a = json_pack("[s,s,i,I,I]", u->dir, u->after, u->depth, (json_int_t)u->entries, (json_int_t)u->bytes);
    if (!a) return -1;
    int rc = json_dumpf(a, f, JSON_COMPACT) == 0 && fputc('\n', f) != EOF ? 0 : -1;
    json_decref(a);
    return rc;
}

/* One unit from a line; 0 or -1 (malformed). */
static int unit_parse(const char *line, unit *u)
{
    json_error_t je;
    json_t *a = json_loads(line, 0, &je);
    const char *dir, *after;
    int depth;
    json_int_t e, b;
    int rc = -1;
    if (a && json_unpack(a, "[s,s,i,I,I]", &dir, &after, &depth, &e, &b) == 0 && dir[0] == '/' && depth >= 0 &&
        e >= 0 && b >= 0) {
        u->dir = strdup(dir);
        u->after = strdup(after);
        u->depth = depth;
        u->entries = (uint64_t)e;
        u->bytes = (uint64_t)b;
        rc = u->dir && u->after ? 0 : -1;
        if (rc) unit_free(u);
    }
    json_decref(a);
    return rc;
}

/* ---------------------------------------------------------------- the spilling stack (under mu) */

static int spill_open(walk *w)
{
    if (w->spill) return 0;
    if (w->spill_path) {
        w->spill = fopen(w->spill_path, "w+e");
    } else {
        const char *tmp = getenv("TMPDIR");
        int fd = open(tmp && tmp[0] ? tmp : "/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
        if (fd >= 0 && !(w->spill = fdopen(fd, "w+"))) close(fd);
    }
    return w->spill ? 0 : -1;
}

/* Move the older half of the in-memory stack to the spill file as one block. */
static int spill_half(walk *w)
{
    if (spill_open(w) != 0) return -1;
    size_t k = w->n / 2;
    if (fseeko(w->spill, 0, SEEK_END) != 0) return -1;
    off_t off = ftello(w->spill);
    for (size_t i = 0; i < k; i++)
        if (unit_write(w->spill, &w->stack[i]) != 0) return -1;
    if (fflush(w->spill) != 0) return -1;
    if (w->nblocks == w->capblocks) {
        size_t nc = w->capblocks ? w->capblocks * 2 : 16;
        block *nb = realloc(w->blocks, nc * sizeof *nb);
        if (!nb) return -1;
        w->blocks = nb;
        w->capblocks = nc;
    }
    w->blocks[w->nblocks++] = (block){off, k};
    for (size_t i = 0; i < k; i++) unit_free(&w->stack[i]);
    memmove(w->stack, w->stack + k, (w->n - k) * sizeof *w->stack);
    w->n -= k;
    return 0;
}

/* Read the newest spilled block back into the (empty) in-memory stack. */
static int unspill(walk *w)
{
    block b = w->blocks[w->nblocks - 1];
    if (fseeko(w->spill, b.off, SEEK_SET) != 0) return -1;
    char *line = NULL;
    size_t lcap = 0;
    int rc = 0;
    for (size_t i = 0; i < b.n; i++) {
        if (getline(&line, &lcap, w->spill) < 0 || unit_parse(line, &w->stack[w->n]) != 0) {
            rc = -1;
            break;
        }
        w->n++;
    }
    free(line);
    if (rc == 0) {
        w->nblocks--;
        if (ftruncate(fileno(w->spill), b.off) != 0) rc = -1;
    }
    return rc;
}

/* Push (takes u's strings). -1 out of memory or spill failure (u freed). */
static int push(walk *w, unit *u)
{
    if (w->n == w->cap && spill_half(w) != 0) {
        unit_free(u);
        return -1;
    }
    w->stack[w->n++] = *u;
    return 0;
}

/* 1 popped, 0 empty, -1 spill failure. */
static int pop(walk *w, unit *u)
{
    if (w->n == 0 && w->nblocks > 0 && unspill(w) != 0) return -1;
    if (w->n == 0) return 0;
    *u = w->stack[--w->n];
    return 1;
}

/* ---------------------------------------------------------------- the cursor */

static json_t *stats_json(const walk *w)
{
    const walk_stats *s = &w->st;
    return json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:f,s:f}", "entries", (json_int_t)s->entries, "files",
                     (json_int_t)s->files, "dirs", (json_int_t)s->dirs, "bytes", (json_int_t)s->bytes, "requests",
                     (json_int_t)s->requests, "retries", (json_int_t)s->retries, "gone", (json_int_t)s->gone,
                     "seconds", w->base_seconds + (now_s() - w->t0), "request_seconds", s->request_seconds);
}

/* Write the cursor (every worker is between pages). 0 or -1 with w->err. */
static int cursor_write(walk *w)
{
    const walk_opts *o = w->o;
    if (!o->cursor) return 0;
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", o->cursor);
    FILE *f = fopen(tmp, "we");
    if (!f) goto fail;
    json_t *state = o->save ? o->save(o->ud) : json_null();
    json_t *head = json_pack("{s:i,s:s,s:o,s:o}", "walk_cursor", 1, "root", o->root, "stats", stats_json(w),
                             "state", state ? state : json_null());
    int bad = !head || json_dumpf(head, f, JSON_COMPACT) != 0 || fputc('\n', f) == EOF;
    json_decref(head);
    /* the spilled blocks (oldest first) then the in-memory part: popping order is kept on reload */
    if (!bad && w->spill) {
        if (fflush(w->spill) != 0 || fseeko(w->spill, 0, SEEK_SET) != 0) bad = 1;
        char buf[65536];
        size_t r;
        while (!bad && (r = fread(buf, 1, sizeof buf, w->spill)) > 0)
            if (fwrite(buf, 1, r, f) != r) bad = 1;
        if (ferror(w->spill)) bad = 1;
        clearerr(w->spill);
    }
    for (size_t i = 0; !bad && i < w->n; i++)
        if (unit_write(f, &w->stack[i]) != 0) bad = 1;
    if (bad || fflush(f) != 0 || fdatasync(fileno(f)) != 0) {
        fclose(f);
        unlink(tmp);
        goto fail;
    }
    if (fclose(f) != 0 || rename(tmp, o->cursor) != 0) {
        unlink(tmp);
        goto fail;
    }
    return 0;
fail:
    snprintf(w->err, sizeof w->err, "cannot write the cursor file %s: %s", o->cursor, strerror(errno));
    return -1;
}

static void stats_load(walk *w, const json_t *s)
{
    json_int_t v[7] = {0};
    double secs = 0, rsecs = 0;
    json_unpack((json_t *)s, "{s?I,s?I,s?I,s?I,s?I,s?I,s?I,s?F,s?F}", "entries", &v[0], "files", &v[1], "dirs", &v[2],
                "bytes", &v[3], "requests", &v[4], "retries", &v[5], "gone", &v[6], "seconds", &secs,
                "request_seconds", &rsecs);
    w->st.entries = (uint64_t)v[0];
    w->st.files = (uint64_t)v[1];
    w->st.dirs = (uint64_t)v[2];
    w->st.bytes = (uint64_t)v[3];
    w->st.requests = (uint64_t)v[4];
    w->st.retries = (uint64_t)v[5];
    w->st.gone = (uint64_t)v[6];
    w->base_seconds = secs;
    w->st.request_seconds = rsecs;
}

/* 1 resumed, 0 no cursor, -1 unusable cursor (w->err). */
static int cursor_load(walk *w)
{
    const walk_opts *o = w->o;
    if (!o->cursor) return 0;
    FILE *f = fopen(o->cursor, "re");
    if (!f) {
        if (errno == ENOENT) return 0;
        snprintf(w->err, sizeof w->err, "cannot read the cursor file %s: %s", o->cursor, strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t lcap = 0;
    int rc = -1;
    json_t *head = NULL;
    if (getline(&line, &lcap, f) < 0) {
        snprintf(w->err, sizeof w->err, "cannot read the cursor file %s: %s", o->cursor,
                 ferror(f) ? strerror(errno) : "empty");
        goto out;
    }
    json_error_t je;
    head = json_loads(line, 0, &je);
    json_int_t ver = 0;
    const char *root = NULL;
    json_t *stats = NULL, *state = NULL;
    if (!head || json_unpack(head, "{s:I,s:s,s:o,s:o}", "walk_cursor", &ver, "root", &root, "stats", &stats, "state",
                             &state) != 0 || ver != 1) {
        snprintf(w->err, sizeof w->err, "the cursor file %s is not a dualpipe walk cursor (or is damaged); remove it "
                 "to start over", o->cursor);
        goto out;
    }
    if (strcmp(root, o->root) != 0) {
        snprintf(w->err, sizeof w->err, "the cursor file %s belongs to a walk of %s, not %s; remove it or give that "
                 "path", o->cursor, root, o->root);
        goto out;
    }
    if (o->load && o->load(o->ud, state) != 0) {
        snprintf(w->err, sizeof w->err, "the cursor file %s holds a state this command cannot use; remove it to "
                 "start over", o->cursor);
        goto out;
    }
    stats_load(w, stats);
    ssize_t len;
    while ((len = getline(&line, &lcap, f)) > 0) {
        unit u;
        if (unit_parse(line, &u) != 0) {
            snprintf(w->err, sizeof w->err, "the cursor file %s is damaged (a bad unit line); remove it to start "
                     "over", o->cursor);
            goto out;
        }
        if (push(w, &u) != 0) {
            snprintf(w->err, sizeof w->err, "out of memory or spill failure reading the cursor file");
            goto out;
        }
    }
    rc = 1;
out:
    json_decref(head);
    free(line);
    fclose(f);
    return rc;
}

/* ---------------------------------------------------------------- requests: rate limit, retries */

static void rate_wait(walk *w)
{
    if (w->o->ops_per_s <= 0) return;
    pthread_mutex_lock(&w->rmu);
    double t = now_s();
    double slot = w->next_slot > t ? w->next_slot : t;
    w->next_slot = slot + 1.0 / w->o->ops_per_s;
    pthread_mutex_unlock(&w->rmu);
    sleep_s(slot - t);
}

static void count_request(walk *w, double secs, bool retry)
{
    pthread_mutex_lock(&w->mu);
    w->st.requests++;
    w->st.request_seconds += secs;
    if (retry) w->st.retries++;
    pthread_mutex_unlock(&w->mu);
}

static bool stopping(walk *w)
{
    if (w->o->stop && atomic_load(w->o->stop)) return true;
    pthread_mutex_lock(&w->mu);
    bool failed = w->failed;
    pthread_mutex_unlock(&w->mu);
    return failed;
}

/* The lister with retries: WALK_OK, WALK_GONE or WALK_FATAL (err). */
static int list_retry(walk *w, const char *dir, const char *after, xlate_listing *out, char *err, size_t errlen)
{
    unsigned delay = w->o->retry_base_ms ? w->o->retry_base_ms : 200;
    for (unsigned attempt = 0;; attempt++) {
        rate_wait(w);
        double t = now_s();
        memset(out, 0, sizeof *out);
        int rc = w->o->list(w->o->lud, dir, after, out, err, errlen);
        count_request(w, now_s() - t, attempt > 0);
        if (rc != WALK_RETRY) return rc;
        xlate_listing_free(out); /* a lister may have filled part of a page it then gave up on */
        if (attempt >= w->o->retries || stopping(w)) return WALK_FATAL;
        sleep_s(delay / 1000.0);
        delay = delay * 2 > 5000 ? 5000 : delay * 2;
    }
}

int walk_get(walk *w, const char *path, const char *op_and_params, size_t max, dbuf *out, char *err, size_t errlen)
{
    unsigned delay = w->o->retry_base_ms ? w->o->retry_base_ms : 200;
    for (unsigned attempt = 0;; attempt++) {
        rate_wait(w);
        double t = now_s();
        dbuf_reset(out);
        long st = walk_gen1_get(w->o->g1, path, op_and_params, max, out, err, errlen);
        count_request(w, now_s() - t, attempt > 0);
        if (st >= 200 && st < 300) return WALK_OK;
        if (st == 404) return WALK_GONE;
        if (st != 0 && st != 429 && st < 500) {
            snprintf(err, errlen, "Gen1 answered %ld to %s of %s", st, op_and_params, path);
            return WALK_FATAL;
        }
        if (attempt >= w->o->retries || stopping(w)) return WALK_FATAL;
        sleep_s(delay / 1000.0);
        delay = delay * 2 > 5000 ? 5000 : delay * 2;
    }
}

/* ---------------------------------------------------------------- Gen1 lister */

long walk_gen1_get(gen1c *g1, const char *path, const char *op_and_params, size_t max, dbuf *out, char *err,
                   size_t errlen)
{
    httpc_sync s;
    httpc_sync_init(&s);
    long status = 0;
    if (gen1c_get(g1, path, op_and_params, NULL, HTTPC_BODY_MEMORY, max, -1, httpc_sync_done, &s) != 0) {
        snprintf(err, errlen, "cannot send %s of %s to Gen1", op_and_params, path);
        httpc_sync_drop(&s);
        goto out;
    }
    (void)httpc_sync_wait(&s);
    if (s.resp->result != HTTPC_OK) {
        snprintf(err, errlen, "Gen1 did not answer %s of %s: %s%s%s", op_and_params, path,
                 httpc_result_str(s.resp->result), s.resp->error[0] ? ": " : "", s.resp->error);
    } else {
        status = s.resp->status;
        if (status < 200 || status >= 300) snprintf(err, errlen, "Gen1 answered %ld to %s of %s", status,
                                                     op_and_params, path);
        if (dbuf_add(out, s.resp->body.data ? s.resp->body.data : "", s.resp->body.len) != 0) {
            snprintf(err, errlen, "out of memory reading Gen1's answer");
            status = 0;
        }
    }
    httpc_resp_free(s.resp);
    free(s.resp);
out:
    return status;
}

int walk_gen1_lister(void *lud, const char *dir, const char *after, xlate_listing *out, char *err, size_t errlen)
{
    walk_gen1 *g = lud;
    dbuf q, body;
    dbuf_init(&q, 8192);
    dbuf_init(&body, WALK_LIST_MAX);
    int rc = WALK_FATAL;
    int qr = g->hadoop ? dbuf_adds(&q, "op=LISTSTATUS_BATCH") : dbuf_adds(&q, "op=LISTSTATUS&");
    if (qr == 0 && g->hadoop && after[0]) qr = dbuf_adds(&q, "&");
    if (qr == 0) qr = g->hadoop ? xlate_liststatus_batch_query(after, &q)
                                : xlate_liststatus_query(g->page ? g->page : 1000, after, &q);
    if (qr != 0) {
        snprintf(err, errlen, "listing continuation of %s too long", dir);
        goto out;
    }
    long st = walk_gen1_get(g->g1, dir, q.data, WALK_LIST_MAX, &body, err, errlen);
    if (st == 404) {
        rc = WALK_GONE;
    } else if (st == 0 || st == 429 || st >= 500) {
        rc = WALK_RETRY;
    } else if (st >= 200 && st < 300) {
        xlate_err xe;
        if (xlate_liststatus_parse(body.data, body.len, out, &xe) != 0)
            snprintf(err, errlen, "Gen1's listing of %s cannot be read: %s", dir, xe.message);
        else rc = WALK_OK;
    }
out:
    dbuf_free(&q);
    dbuf_free(&body);
    return rc;
}

/* ---------------------------------------------------------------- Gen2 lister */

/* One page of a List Paths answer into out. WALK_OK or WALK_FATAL (err). */
static bool g2_skipped(const char *const *skip, const char *name)
{
    for (; skip && *skip; skip++) {
        const char *k = *skip;
        while (*k == '/') k++;
        if (strcmp(k, name) == 0) return true;
    }
    return false;
}

static int g2_page(const httpc_resp *r, const char *const *skip, xlate_listing *out, char *err, size_t errlen)
{
    json_error_t je;
    json_t *root = json_loadb(r->body.data ? r->body.data : "", r->body.len, 0, &je);
    json_t *paths = root ? json_object_get(root, "paths") : NULL;
    int rc = WALK_FATAL;
    dbuf st;
    dbuf_init(&st, 1u << 20);
    if (!json_is_array(paths)) {
        snprintf(err, errlen, "Gen2's listing is not a List Paths answer");
        goto out;
    }
    size_t n = json_array_size(paths);
    out->v = calloc(n ? n : 1, sizeof *out->v);
    if (!out->v) goto oom;
    size_t i;
    json_t *e;
    json_array_foreach(paths, i, e) {
        xlate_filestatus fs;
        xlate_err xe;
        if (xlate_filestatus_from_list(e, &fs, &xe) != 0) {
            snprintf(err, errlen, "Gen2's listing has an entry that cannot be read: %s", xe.message);
            goto out;
        }
        const char *base = strrchr(fs.name, '/');
        base = base ? base + 1 : fs.name;
        if (!base[0] || g2_skipped(skip, fs.name)) continue;
        dbuf_reset(&st);
        if (dbuf_adds(&st, "{\"FileStatus\":") != 0 || xlate_filestatus_json(&fs, base, &st) != 0 ||
            dbuf_adds(&st, "}") != 0)
            goto oom;
        xlate_entry *x = &out->v[out->n];
        x->is_dir = fs.is_dir;
        x->name = strdup(base);
        x->status = dbuf_take(&st);
        out->n++;
        if (!x->name || !x->status) goto oom;
    }
    const char *c = httpc_resp_header(r, "x-ms-continuation");
    if (c && *c && !(out->token = strdup(c))) goto oom;
    rc = WALK_OK;
    goto out;
oom:
    snprintf(err, errlen, "out of memory reading Gen2's listing");
out:
    dbuf_free(&st);
    json_decref(root);
    return rc;
}

int walk_gen2_lister(void *lud, const char *dir, const char *after, xlate_listing *out, char *err, size_t errlen)
{
    walk_gen2 *g = lud;
    dbuf q;
    dbuf_init(&q, 16384);
    int rc = WALK_FATAL;
    int qr = dbuf_printf(&q, "resource=filesystem&recursive=false&maxResults=%u", g->page ? g->page : 1000);
    if (qr == 0 && strcmp(dir, "/") != 0) {
        qr = dbuf_adds(&q, "&directory=");
        if (qr == 0) qr = url_encode(dir + 1, true, &q);
    }
    if (qr == 0 && after[0]) {
        qr = dbuf_adds(&q, "&continuation=");
        if (qr == 0) qr = url_encode(after, false, &q);
    }
    if (qr != 0) {
        snprintf(err, errlen, "listing query of %s too long", dir);
        dbuf_free(&q);
        return WALK_FATAL;
    }
    httpc_sync s;
    httpc_sync_init(&s);
    gen2c_call call = {.method = "GET", .fs = g->fs, .path = "", .query = q.data, .out = HTTPC_BODY_MEMORY,
                       .out_max = WALK_LIST_MAX, .done = httpc_sync_done, .ud = &s};
    if (gen2c_send(g->g2, &call) != 0) {
        snprintf(err, errlen, "cannot send the listing of %s to Gen2", dir);
        httpc_sync_drop(&s);
        goto out;
    }
    (void)httpc_sync_wait(&s);
    const httpc_resp *r = s.resp;
    if (r->result != HTTPC_OK) {
        snprintf(err, errlen, "Gen2 did not answer the listing of %s: %s%s%s", dir, httpc_result_str(r->result),
                 r->error[0] ? ": " : "", r->error);
        rc = r->result == HTTPC_E_AUTH ? WALK_FATAL : WALK_RETRY;
    } else if (r->status == 404) {
        rc = WALK_GONE;
    } else if (r->status == 429 || r->status >= 500) {
        snprintf(err, errlen, "Gen2 answered %ld to the listing of %s", r->status, dir);
        rc = WALK_RETRY;
    } else if (r->status != 200) {
        char code[128];
        snprintf(err, errlen, "Gen2 answered %ld (%s) to the listing of %s", r->status,
                 gen2c_error_code(r, code, sizeof code), dir);
    } else {
        rc = g2_page(r, g->skip, out, err, errlen);
    }
    httpc_resp_free(s.resp);
    free(s.resp);
out:
    dbuf_free(&q);
    return rc;
}

/* ---------------------------------------------------------------- progress line */

static void human_bytes(uint64_t n, char *buf, size_t cap)
{
    const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    double v = (double)n;
    int i = 0;
    while (v >= 1024 && i < 5) {
        v /= 1024;
        i++;
    }
    snprintf(buf, cap, i ? "%.1f %s" : "%.0f %s", v, u[i]);
}

static void *progress_main(void *arg)
{
    walk *w = arg;
    for (;;) {
        pthread_mutex_lock(&w->mu);
        bool end = w->finished;
        walk_stats s = w->st;
        double secs = now_s() - w->t0;
        pthread_mutex_unlock(&w->mu);
        if (end) break;
        char b[32], eta[32] = "";
        human_bytes(s.bytes, b, sizeof b);
        double rate = secs > 0 ? (double)s.entries / (w->base_seconds + secs) : 0;  /* over resumed runs too */
        if (w->o->total_hint > s.entries && rate > 0) {
            double left = (double)(w->o->total_hint - s.entries) / rate;
            snprintf(eta, sizeof eta, "  ETA %dm%02ds", (int)(left / 60), (int)left % 60);
        }
        fprintf(stderr, "\r\033[K%" PRIu64 " entries  %s  %.0f entries/s%s", s.entries, b, rate, eta);
        fflush(stderr);
        sleep_s(0.5);
    }
    fputs("\r\033[K", stderr);
    fflush(stderr);
    return NULL;
}

/* ---------------------------------------------------------------- workers */

/* Visit one page of u and push what follows. Called without mu. 0 (u consumed), -1 (w->failed set; u
 * intact when the page was not visited, so it goes back on the stack for the cursor), -2 (u consumed). */
static int do_unit(walk *w, unit *u)
{
    const walk_opts *o = w->o;
    char err[512] = "";
    xlate_listing page;
    int rc = list_retry(w, u->dir, u->after, &page, err, sizeof err);
    if (rc == WALK_GONE) {
        pthread_mutex_lock(&w->mu);
        if (u->depth == 0 && !u->after[0]) {
            w->failed = true;
            snprintf(w->err, sizeof w->err, "%s: no such directory on Gen1", u->dir);
        } else {
            w->st.gone++;
        }
        pthread_mutex_unlock(&w->mu);
        unit_free(u);
        return 0;
    }
    if (rc != WALK_OK) {
        xlate_listing_free(&page);
        pthread_mutex_lock(&w->mu);
        if (!w->failed) snprintf(w->err, sizeof w->err, "%s", err[0] ? err : "listing failed");
        w->failed = true;
        pthread_mutex_unlock(&w->mu);
        return -1;
    }
    uint64_t pbytes = 0, pfiles = 0, pdirs = 0;
    for (int i = 0; i < page.n; i++) {
        if (page.v[i].is_dir) {
            pdirs++;
            continue;
        }
        pfiles++;
        xlate_meta m;
        memset(&m, 0, sizeof m);
        xlate_err xe;
        if (xlate_meta_from_filestatus(page.v[i].status, strlen(page.v[i].status), &m, &xe) == 0 && m.length > 0)
            pbytes += (uint64_t)m.length;
        xlate_meta_free(&m);
    }
    bool last = page.token == NULL;
    walk_dir d = {.path = u->dir, .depth = u->depth, .entries = u->entries + (uint64_t)page.n,
                  .file_bytes = u->bytes + pbytes};
    if (o->on_page && o->on_page(o->ud, w, &d, &page, last, err, sizeof err) != 0) {
        xlate_listing_free(&page);
        pthread_mutex_lock(&w->mu);
        w->failed = true;
        snprintf(w->err, sizeof w->err, "%s", err);
        pthread_mutex_unlock(&w->mu);
        return -1;
    }
    /* from here the page is visited: the unit is consumed whatever happens */
    pthread_mutex_lock(&w->mu);
    int bad = 0;
    if (!last) {
        unit c = {.dir = strdup(u->dir), .after = strdup(page.token), .depth = u->depth, .entries = d.entries,
                  .bytes = d.file_bytes};
        if (!c.dir || !c.after) unit_free(&c), bad = 1;
        else if (push(w, &c) != 0) bad = 1;
    }
    /* subdirectories pushed last: popped first (depth first keeps the stack small) */
    for (int i = page.n - 1; i >= 0 && !bad; i--) {
        if (!page.v[i].is_dir) continue;
        size_t dl = strlen(u->dir);
        unit c = {.after = strdup(""), .depth = u->depth + 1};
        if (asprintf(&c.dir, "%s%s%s", u->dir, dl > 1 ? "/" : "", page.v[i].name) < 0) c.dir = NULL;
        if (!c.dir || !c.after) unit_free(&c), bad = 1;
        else if (push(w, &c) != 0) bad = 1;
    }
    if (bad) {
        w->failed = true;
        snprintf(w->err, sizeof w->err, "out of memory, or the spill file cannot be written");
    } else {
        w->st.entries += (uint64_t)page.n;
        w->st.files += pfiles;
        w->st.dirs += pdirs;
        w->st.bytes += pbytes;
    }
    pthread_mutex_unlock(&w->mu);
    xlate_listing_free(&page);
    unit_free(u);
    return bad ? -2 : 0;
}

static void *worker_main(void *arg)
{
    walk *w = arg;
    const walk_opts *o = w->o;
    unsigned ck = o->checkpoint_ms ? o->checkpoint_ms : 2000;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        if (w->failed || w->finished || (o->stop && atomic_load(o->stop))) break;
        if (o->cursor && !w->quiesce && now_s() >= w->next_ckpt) w->quiesce = true;
        if (w->quiesce) {
            if (w->inflight == 0) {
                if (cursor_write(w) != 0) {
                    w->failed = true;
                    break;
                }
                w->quiesce = false;
                w->next_ckpt = now_s() + ck / 1000.0;
                pthread_cond_broadcast(&w->cv);
            } else {
                pthread_cond_wait(&w->cv, &w->mu);
            }
            continue;
        }
        unit u;
        int p = pop(w, &u);
        if (p < 0) {
            w->failed = true;
            snprintf(w->err, sizeof w->err, "the spill file cannot be read back");
            break;
        }
        if (p == 0) {
            if (w->inflight == 0) {
                w->finished = true;
                break;
            }
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 200 * 1000000L;
            if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
            pthread_cond_timedwait(&w->cv, &w->mu, &ts);
            continue;
        }
        w->inflight++;
        pthread_mutex_unlock(&w->mu);
        int rc = do_unit(w, &u);
        pthread_mutex_lock(&w->mu);
        w->inflight--;
        if (rc == -1 && push(w, &u) != 0) snprintf(w->err, sizeof w->err, "out of memory");
        if (rc != 0) w->failed = true;
        pthread_cond_broadcast(&w->cv);
    }
    w->finished = w->finished || w->failed || (o->stop && atomic_load(o->stop));
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

walk_result walk_run(const walk_opts *o, walk_stats *st, char *err, size_t errlen)
{
    walk w;
    memset(&w, 0, sizeof w);
    memset(st, 0, sizeof *st);
    w.o = o;
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    pthread_mutex_init(&w.rmu, NULL);
    w.cap = o->mem_units >= 2 ? o->mem_units : 65536;
    walk_result res = WALK_FAILED;
    w.stack = calloc(w.cap, sizeof *w.stack);
    if (!w.stack) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    if (o->cursor && asprintf(&w.spill_path, "%s.spill", o->cursor) < 0) {
        w.spill_path = NULL;
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    w.t0 = now_s();
    int lr = cursor_load(&w);
    if (lr < 0) {
        snprintf(err, errlen, "%s", w.err);
        goto out;
    }
    w.st.resumed = lr == 1;
    if (lr == 0) {
        unit r = {.dir = strdup(o->root), .after = strdup(""), .depth = 0};
        if (!r.dir || !r.after || push(&w, &r) != 0) {
            snprintf(err, errlen, "out of memory");
            goto out;
        }
    }
    w.next_ckpt = now_s() + (o->checkpoint_ms ? o->checkpoint_ms : 2000) / 1000.0;
    if (o->cursor && cursor_write(&w) != 0) { /* an unwritable cursor fails before any work */
        snprintf(err, errlen, "%s", w.err);
        goto out;
    }
    w.draw = o->progress && isatty(2);
    if (w.draw && pthread_create(&w.prog, NULL, progress_main, &w) == 0) w.prog_on = true;
    unsigned nt = o->threads ? o->threads : 4;
    pthread_t *th = calloc(nt, sizeof *th);
    unsigned started = 0;
    for (unsigned i = 0; th && i < nt; i++, started++)
        if (pthread_create(&th[i], NULL, worker_main, &w) != 0) break;
    if (started == 0) {
        pthread_mutex_lock(&w.mu);
        w.failed = true;
        snprintf(w.err, sizeof w.err, "cannot start the walker's threads");
        pthread_mutex_unlock(&w.mu);
    }
    for (unsigned i = 0; i < started; i++) pthread_join(th[i], NULL);
    free(th);
    pthread_mutex_lock(&w.mu);
    w.finished = true;
    pthread_mutex_unlock(&w.mu);
    if (w.prog_on) pthread_join(w.prog, NULL);
    bool complete = !w.failed && w.n == 0 && w.nblocks == 0;
    if (complete) {
        res = WALK_DONE;
        if (o->cursor) unlink(o->cursor);
    } else {
        char first[512];
        snprintf(first, sizeof first, "%s", w.err);
        bool saved = o->cursor && cursor_write(&w) == 0;
        res = w.failed ? WALK_FAILED : WALK_STOPPED;
        if (w.failed)
            snprintf(err, errlen, "%s%s%s", first, saved ? "; run the same command again to resume from " : "",
                     saved ? o->cursor : "");
        else snprintf(err, errlen, "stopped%s%s", saved ? "; run the same command again to resume from " : "",
                      saved ? o->cursor : "");
    }
out:
    w.st.seconds = w.base_seconds + (now_s() - w.t0);
    *st = w.st;
    for (size_t i = 0; i < w.n; i++) unit_free(&w.stack[i]);
    free(w.stack);
    free(w.blocks);
    if (w.spill) fclose(w.spill);
    if (w.spill_path) unlink(w.spill_path);
    free(w.spill_path);
    pthread_mutex_destroy(&w.mu);
    pthread_cond_destroy(&w.cv);
    pthread_mutex_destroy(&w.rmu);
    return res;
}
