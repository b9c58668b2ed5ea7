/*
 * journal_recover: jnl_open's recovery (journal.h, JOURNAL.md §11). Every segment is mapped and
 * scanned once in seq order with the jrnl_fmt scanner; the scan keeps only a compact row per WRITE
 * (where it is, where its latest STATE is, that state) so that it runs at memory speed, and raises the
 * path epochs. A torn tail is zeroed (the file keeps its preallocated size) and synced; a corrupt
 * stretch is reported with its offsets. Then the rows are folded: a WRITE whose latest state is not
 * terminal becomes a compact row of the index (its body pinned in the spool), or a whole entry decoded
 * from the still-mapped segment when it waits for the primary (bodies checked when asked; a RESYNC
 * record needs none). Segments nothing live depends on are deleted
 * and new records go to a fresh segment.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "journal_int.h"

#define ZERO_CHUNK ((size_t)1 << 16)

typedef struct rseg {
    uint64_t seq;
    int fd;
    uint8_t *map;
    uint64_t size;          /* file size */
    uint64_t mlen;          /* bytes mapped: up to the end of the last data extent (holes read as zero) */
    uint64_t data_end;
    bool usable;            /* header good: its records count */
    bool damaged;           /* header damaged: left alone on disk */
    jseg *g;                /* bookkeeping once the scan is over */
} rseg;

/* One WRITE found by the scan. */
typedef struct rrow {
    uint64_t seq;
    uint32_t off8;          /* frame offset of the WRITE / 8 (frames start on 8-byte boundaries) */
    uint32_t st_off8;       /* frame offset of the latest STATE / 8 */
    uint32_t segi;
    uint32_t st_segi;       /* UINT32_MAX: no STATE */
    uint16_t state;
} rrow;

typedef struct rctx {
    journal *j;
    jnl_recovery *rep;
    rseg *segs;
    size_t nsegs;
    rrow *rows;
    size_t nrows, caprows;
    unsigned findings;
} rctx;

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

__attribute__((format(printf, 2, 3))) static void finding(rctx *c, const char *fmt, ...)
{
    if (c->findings++ > 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->rep->problem, sizeof c->rep->problem, fmt, ap);
    va_end(ap);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int parse_name(const char *name, uint64_t *seq)
{
    if (strncmp(name, "jrnl-", 5) != 0) return -1;
    const char *p = name + 5;
    if (strlen(p) != 16 + 4 || strcmp(p + 16, ".seg") != 0) return -1;
    uint64_t v = 0;
    for (int i = 0; i < 16; i++) {
        char ch = p[i];
        int d = (ch >= '0' && ch <= '9') ? ch - '0' : (ch >= 'a' && ch <= 'f') ? ch - 'a' + 10 : -1;
        if (d < 0) return -1;
        v = (v << 4) | (uint64_t)d;
    }
    *seq = v;
    return 0;
}

static int list_segments(journal *j, uint64_t **out, size_t *n, char *err, size_t errlen)
{
    DIR *d = opendir(j->dir);
    if (!d) {
        snprintf(err, errlen, "journal: cannot list %s: %s", j->dir, strerror(errno));
        return -1;
    }
    uint64_t *v = NULL;
    size_t cnt = 0, cap = 0;
    struct dirent *de;
    int rc = 0;
    while ((de = readdir(d)) != NULL) {
        uint64_t seq;
        if (parse_name(de->d_name, &seq) < 0) continue;
        if (cnt == cap) {
            cap = cap ? cap * 2 : 16;
            uint64_t *nv = realloc(v, cap * sizeof *nv);
            if (!nv) {
                snprintf(err, errlen, "journal: out of memory");
                rc = -1;
                break;
            }
            v = nv;
        }
        v[cnt++] = seq;
    }
    closedir(d);
    if (rc < 0) {
        free(v);
        return -1;
    }
    if (cnt > 1) qsort(v, cnt, sizeof *v, cmp_u64);
    *out = v;
    *n = cnt;
    return 0;
}

/* Row of seq (WRITEs arrive in seq order, so the last rows are the likely ones). */
static rrow *find_row(rctx *c, uint64_t seq)
{
    size_t lo = 0, hi = c->nrows;
    if (hi > 0 && c->rows[hi - 1].seq == seq) return &c->rows[hi - 1];
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->rows[mid].seq < seq) lo = mid + 1;
        else hi = mid;
    }
    return lo < c->nrows && c->rows[lo].seq == seq ? &c->rows[lo] : NULL;
}

static int on_write(rctx *c, const jfmt_write *w, uint32_t segi, uint64_t off)
{
    journal *j = c->j;
    if (w->seq > j->max_seq) j->max_seq = w->seq;
    jnl__epoch_touch(j, w->seq, w->path.p, w->path.len, w->params, w->nparams);
    size_t pos = c->nrows;
    if (pos > 0 && c->rows[pos - 1].seq >= w->seq) {
        /* out of order (never written so by this version): keep the rows sorted, first copy wins */
        if (find_row(c, w->seq)) return 0;
        while (pos > 0 && c->rows[pos - 1].seq > w->seq) pos--;
    }
    if (c->nrows == c->caprows) {
        size_t nc = c->caprows ? c->caprows * 2 : 4096;
        rrow *nr = realloc(c->rows, nc * sizeof *nr);
        if (!nr) return -ENOMEM;
        c->rows = nr;
        c->caprows = nc;
    }
    if (pos < c->nrows) memmove(&c->rows[pos + 1], &c->rows[pos], (c->nrows - pos) * sizeof *c->rows);
    c->rows[pos] = (rrow){.seq = w->seq, .off8 = (uint32_t)(off / 8), .segi = segi, .st_segi = UINT32_MAX, .state = JFMT_S_ACCEPTED};
    c->nrows++;
    return 0;
}

static void on_state(rctx *c, const jfmt_statechg *s, uint32_t segi, uint64_t off)
{
    if (s->seq > c->j->max_seq) c->j->max_seq = s->seq;
    rrow *r = find_row(c, s->seq);
    if (!r) {
        c->rep->orphan_states++;
        return;
    }
    r->state = s->state;
    r->st_segi = segi;
    r->st_off8 = (uint32_t)(off / 8);
}

/* Zero [from, last non-zero byte] of a torn segment and sync it. Returns the bytes zeroed or -errno. */
static int64_t zero_tail(journal *j, rseg *s, uint64_t from)
{
    uint64_t last = s->mlen;
    while (last > from && s->map[last - 1] == 0) last--;
    if (last <= from) return 0;
    uint8_t *z = calloc(1, ZERO_CHUNK);
    if (!z) return -ENOMEM;
    uint64_t off = from;
    int64_t rc = 0;
    while (off < last) {
        size_t n = last - off < ZERO_CHUNK ? (size_t)(last - off) : ZERO_CHUNK;
        int64_t w = iox_pwrite_wait(j->io, s->fd, z, n, off);
        if (w < 0) {
            rc = w;
            break;
        }
        off += n;
    }
    free(z);
    if (rc == 0) rc = iox_fdatasync_wait(j->io, s->fd);
    return rc < 0 ? rc : (int64_t)(last - from);
}

static int scan_one(rctx *c, uint32_t segi, char *err, size_t errlen)
{
    rseg *s = &c->segs[segi];
    jfmt_hdr h;
    jfmt_res hr = jfmt_hdr_decode(s->map, s->mlen, &h);
    if (hr == JFMT_EVERSION) {
        snprintf(err, errlen,
                 "journal: segment jrnl-%016" PRIx64 ".seg was written by an incompatible version (%u.%u); "
                 "refusing to go on",
                 s->seq, (unsigned)h.major, (unsigned)h.minor);
        return -1;
    }
    if (hr == JFMT_END) return 0; /* the header never reached the disk: empty */
    if (hr != JFMT_OK) {
        c->rep->corrupt++;
        s->damaged = true;
        finding(c, "journal segment jrnl-%016" PRIx64 ".seg: damaged header (%s); segment skipped and left in place",
                s->seq, jfmt_res_name(hr));
        return 1; /* not usable, keep the file */
    }
    s->usable = true;
    if (h.seq_floor > c->j->max_seq) c->j->max_seq = h.seq_floor;
    jfmt_scan sc;
    jfmt_scan_init(&sc, s->map, s->mlen, 0, h.hdr_size, true);
    jfmt_rec rec;
    for (;;) {
        jfmt_res r = jfmt_scan_next(&sc, &rec);
        if (r == JFMT_OK) {
            c->rep->records++;
            if (rec.type == JFMT_T_WRITE) {
                if (on_write(c, &rec.u.w, segi, sc.rec_off) < 0) {
                    snprintf(err, errlen, "journal: out of memory during recovery");
                    return -1;
                }
            } else if (rec.type == JFMT_T_STATE) {
                on_state(c, &rec.u.s, segi, sc.rec_off);
            }
            continue;
        }
        if (r == JFMT_CORRUPT) {
            c->rep->corrupt++;
            finding(c,
                    "journal segment jrnl-%016" PRIx64 ".seg: corrupt stretch at offset %" PRIu64 " (%s), good "
                    "records resume at %" PRIu64 "; records in between are lost (resync the affected paths)",
                    s->seq, sc.bad_off, sc.why ? sc.why : "?", sc.off);
            continue;
        }
        s->data_end = sc.off;
        if (r == JFMT_TORN) {
            int64_t z = zero_tail(c->j, s, sc.off);
            if (z < 0) {
                snprintf(err, errlen, "journal: cannot zero the torn tail of jrnl-%016" PRIx64 ".seg: %s", s->seq,
                         strerror((int)-z));
                return -1;
            }
            c->rep->torn++;
            c->rep->torn_bytes += (uint64_t)z;
            finding(c,
                    "journal segment jrnl-%016" PRIx64 ".seg: torn tail at offset %" PRIu64 " (%s), %" PRId64
                    " bytes zeroed",
                    s->seq, sc.off, sc.why ? sc.why : "?", z);
        }
        break;
    }
    c->rep->bytes += s->data_end > h.hdr_size ? s->data_end - h.hdr_size : 0;
    return 0;
}

/*
 * Where the file's last data extent ends. A preallocated segment is mostly unwritten extents, which
 * read as zeros: the scanner need not fault them in to see that the data ended (SEEK_HOLE reports
 * them as holes on ext4/xfs/tmpfs; where it does not, the whole file is scanned, just slower).
 */
static uint64_t data_limit(int fd, uint64_t size)
{
    uint64_t off = 0, last = 0;
    while (off < size) {
        off_t d = lseek(fd, (off_t)off, SEEK_DATA);
        if (d < 0) return errno == ENXIO ? last : size;
        off_t h = lseek(fd, d, SEEK_HOLE);
        if (h < 0) return size;
        last = (uint64_t)h;
        off = (uint64_t)h;
    }
    return last < size ? last : size;
}

static int map_segment(journal *j, rseg *s, char *err, size_t errlen)
{
    char path[JNL_PATH_MAX + 64];
    if (jnl__seg_path(j, s->seq, path, sizeof path) < 0) {
        snprintf(err, errlen, "journal: path too long");
        return -1;
    }
    s->fd = open(path, O_RDWR | O_CLOEXEC);
    if (s->fd < 0) {
        snprintf(err, errlen, "journal: cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(s->fd, &st) < 0) {
        snprintf(err, errlen, "journal: cannot stat %s: %s", path, strerror(errno));
        return -1;
    }
    s->size = (uint64_t)st.st_size;
    s->mlen = data_limit(s->fd, s->size);
    if (s->mlen == 0) return 0;
    if (s->mlen / 8 > UINT32_MAX) { /* rows keep offsets / 8 in 32 bits; dualpipe never writes this much */
        snprintf(err, errlen, "journal: %s holds more than 32 GiB of data", path);
        return -1;
    }
    void *m = mmap(NULL, (size_t)s->mlen, PROT_READ, MAP_SHARED, s->fd, 0);
    if (m == MAP_FAILED) {
        snprintf(err, errlen, "journal: cannot map %s: %s", path, strerror(errno));
        return -1;
    }
    s->map = m;
    return 0;
}

static uint32_t rd32(const uint8_t *f)
{
    return (uint32_t)f[0] | (uint32_t)f[1] << 8 | (uint32_t)f[2] << 16 | (uint32_t)f[3] << 24;
}

/*
 * Rebuild the live record of row r. Records waiting for the primary (ACCEPTED: jnl_path_epoch needs
 * their paths) become resident entries; every other one a compact row whose body is pinned in the
 * spool (JOURNAL.md section 12).
 */
static int rebuild_entry(rctx *c, const rrow *r)
{
    journal *j = c->j;
    rseg *ws = &c->segs[r->segi];
    jfmt_rec rec, srec;
    const uint8_t *f = ws->map + (uint64_t)r->off8 * 8;
    if (jfmt_decode_payload(f + JFMT_FRAME_HDR, rd32(f), &rec, NULL) != 0 || rec.type != JFMT_T_WRITE) return -EIO;
    const jfmt_write *w = &rec.u.w;
    jseg *wg = ws->g;
    wg->live_writes++;
    jseg *sg = NULL;
    if (r->st_segi != UINT32_MAX) {
        sg = c->segs[r->st_segi].g;
        sg->state_refs++;
    }
    uint8_t flags = 0;
    bool has_body = w->body_len > 0 || w->spool_seg != 0;
    spool_sum sum;
    jnl__write_sum(&rec, &sum);
    bool resident = r->state == JFMT_S_ACCEPTED;
    /* the row first: its STATE may be too far from its WRITE for one, and then the entry stays whole */
    bool rowed = jnl__row_add(wg, r->seq, (uint64_t)r->off8 * 8, (uint8_t)r->state, 0) == 0;
    jrow *row = rowed ? &wg->rows[wg->nrows - 1] : NULL;
    if (row && sg && !jnl__row_state(wg, row, sg, (uint64_t)r->st_off8 * 8, (uint8_t)r->state)) resident = true;
    if (!rowed) resident = true;
    if (r->state == JFMT_S_ACCEPTED || r->state == JFMT_S_PRIMARY_UNKNOWN) c->rep->unknown_outcome++;
    c->rep->live++;
    if (!resident) {
        if (has_body && r->state != JFMT_S_RESYNC &&
            spool_pin(j->sp, w->spool_seg, w->spool_off, w->body_len, &sum, j->verify) < 0) {
            flags |= JR_BODY_LOST;
            c->rep->bodies_lost++;
        }
        row->flags |= flags;
        jnl__index_count(j, r->state, w->body_len);
        return 0;
    }
    jent *e = jnl__ent_from_write(w);
    if (!e) return -ENOMEM;
    e->e.state = r->state;
    e->wseg = wg;
    e->woff = (uint64_t)r->off8 * 8;
    e->far = row && (row->flags & JR_FAR);
    if (sg) {
        rseg *ss = &c->segs[r->st_segi];
        const uint8_t *sf = ss->map + (uint64_t)r->st_off8 * 8;
        if (jfmt_decode_payload(sf + JFMT_FRAME_HDR, rd32(sf), &srec, NULL) == 0 && srec.type == JFMT_T_STATE) {
            if (srec.u.s.status) e->e.status = srec.u.s.status;
            e->e.t_state_ns = srec.u.s.t_ns;
            jnl__set_detail(e, srec.u.s.detail.p, srec.u.s.detail.len);
        }
        e->sseg = sg;
        e->st_off = (uint64_t)r->st_off8 * 8;
    }
    if (has_body && r->state != JFMT_S_RESYNC) {
        spool_body *b = NULL;
        if (spool_attach(j->sp, w->spool_seg, w->spool_off, w->body_len, &sum, j->verify, &b) == 0) {
            e->e.body = b;
        } else {
            e->e.body_lost = true;
            if (row) row->flags |= JR_BODY_LOST;
            c->rep->bodies_lost++;
        }
    }
    /* without a row it goes on the fresh list (which walks show), as a WRITE not yet durable would */
    e->durable = rowed;
    int rc = jnl__index_add(j, e);
    e->durable = true;
    return rc;
}

int jnl__recover(journal *j, jnl_recovery *rep, char *err, size_t errlen)
{
    rctx c = {.j = j, .rep = rep};
    uint64_t *seqs = NULL;
    size_t n = 0;
    int rc = -1;
    double t0 = mono_s();
    if (list_segments(j, &seqs, &n, err, errlen) < 0) return -1;
    c.segs = calloc(n ? n : 1, sizeof *c.segs);
    if (!c.segs) {
        snprintf(err, errlen, "journal: out of memory");
        goto out;
    }
    c.nsegs = n;
    for (size_t i = 0; i < n; i++) {
        c.segs[i].seq = seqs[i];
        c.segs[i].fd = -1;
        if (seqs[i] >= j->next_seg_seq) j->next_seg_seq = seqs[i] + 1;
    }
    double ts = mono_s();
    for (size_t i = 0; i < n; i++) {
        if (map_segment(j, &c.segs[i], err, errlen) < 0) goto out;
        rep->segments++;
        if (c.segs[i].map && scan_one(&c, (uint32_t)i, err, errlen) < 0) goto out;
        /* Out of this process's memory until the fold reads it again (the page cache keeps it): a large
         * journal need not be resident all at once. */
        if (c.segs[i].map) (void)madvise(c.segs[i].map, (size_t)c.segs[i].mlen, MADV_DONTNEED);
    }
    rep->scan_seconds = mono_s() - ts;

    /* bookkeeping for every usable or empty segment (damaged ones are left alone on disk) */
    for (size_t i = 0; i < n; i++) {
        rseg *s = &c.segs[i];
        if (s->damaged) continue;
        s->g = jnl__seg_add(j, s->seq, -1, s->size, s->data_end);
        if (!s->g) {
            snprintf(err, errlen, "journal: out of memory");
            goto out;
        }
    }
    /* rows: sized exactly, per segment */
    for (size_t i = 0; i < c.nrows; i++)
        if (!jnl__terminal(c.rows[i].state)) c.segs[c.rows[i].segi].g->caprows++;
    for (size_t i = 0; i < n; i++) {
        jseg *g = c.segs[i].g;
        if (!g || g->caprows == 0) continue;
        g->rows = malloc((size_t)g->caprows * sizeof *g->rows);
        if (!g->rows) {
            snprintf(err, errlen, "journal: out of memory");
            goto out;
        }
    }
    /* fold: latest state per WRITE */
    uint32_t dropped = 0; /* segments before this one are folded: out of memory again */
    for (size_t i = 0; i < c.nrows; i++) {
        const rrow *r = &c.rows[i];
        for (; dropped < r->segi; dropped++)
            if (c.segs[dropped].map) (void)madvise(c.segs[dropped].map, (size_t)c.segs[dropped].mlen, MADV_DONTNEED);
        if (!jnl__terminal(r->state)) {
            int e = rebuild_entry(&c, r);
            if (e < 0) {
                snprintf(err, errlen, "journal: cannot rebuild entry %" PRIu64 ": %s", r->seq, strerror(-e));
                goto out;
            }
        } else if (r->st_segi != UINT32_MAX && r->st_segi != r->segi) {
            jseg *sg = c.segs[r->st_segi].g;
            uint64_t wseq = c.segs[r->segi].seq;
            if (sg && wseq < sg->min_term_ref) sg->min_term_ref = wseq;
        }
    }
    if (c.findings > 1) {
        size_t l = strlen(rep->problem);
        snprintf(rep->problem + l, sizeof rep->problem - l, " (+%u more findings)", c.findings - 1);
    }
    spool_recovery_done(j->sp);
    pthread_mutex_lock(&j->mu);
    j->cur = NULL; /* new records go to a fresh segment */
    jnl__sweep_locked(j);
    pthread_mutex_unlock(&j->mu);
    rep->max_seq = j->max_seq;
    rc = 0;
out:
    for (size_t i = 0; c.segs && i < n; i++) {
        if (c.segs[i].map) munmap(c.segs[i].map, (size_t)c.segs[i].mlen);
        if (c.segs[i].fd >= 0) close(c.segs[i].fd);
    }
    free(c.segs);
    free(c.rows);
    free(seqs);
    rep->seconds = mono_s() - t0;
    return rc;
}
