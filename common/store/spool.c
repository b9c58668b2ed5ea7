/*
 * spool: request bodies in shared, sparse segment files (spool.h). One mutex guards the segment list,
 * the dirty list, the body list and the byte accounting; the bytes themselves are written with
 * pwrite(2) on the caller's thread outside it. A segment is reference counted: the spool holds one
 * reference while the file exists, each live body one, the dirty list one, each spool_take_dirty
 * hand-out one and each hole punch in flight one; the fd is closed when the count reaches zero, so
 * a deleted segment's fd stays valid for whoever still syncs or punches it. Segments found on disk
 * at open are opened lazily by spool_attach and are never deleted before spool_recovery_done (a body
 * of a later journal record may still be attached to them).
 */
#include "spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/falloc.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crc32c.h"

#define SPOOL_DEFAULT_SEGMENT ((uint64_t)64 << 20)
#define SPOOL_VERIFY_CHUNK ((size_t)1 << 20)
#define SPOOL_PATH_MAX 4096
#define SPOOL_ZERO_AHEAD ((uint64_t)1 << 20)   /* zeros written ahead of small bodies */
#define SPOOL_ZERO_BODY_MAX ((uint64_t)64 << 10) /* bodies up to this size get zeroed space */
#define SPOOL_HELD_MAX 64 /* released ranges a segment keeps before it punches them all */
#define SPOOL_WRITEBACK_STEP ((uint64_t)1 << 20) /* a large body's writeback is started every this many bytes */

/* A released region not punched out yet (section "Releasing space" in spool.h). */
typedef struct spool_range {
    uint64_t off, len;
} spool_range;

/* A punch decided under the mutex, issued after it is released. */
typedef struct spool_punch {
    struct spool_seg *g; /* holds a reference until the punch completes */
    uint64_t off, len;
} spool_punch;

struct spool_seg {
    spool *sp;
    uint64_t id;
    int fd;                 /* -1 until opened (segments found at open are opened on attach) */
    int refs;               /* under sp->mu */
    uint64_t live;          /* live bodies in it */
    uint64_t alloc_off;     /* next free region (current segment) */
    uint64_t zeroed;        /* nothing at or past this offset is allocated; [alloc_off, zeroed) is zeros */
    bool current;
    bool preexisting;       /* found on disk at open (kept until spool_recovery_done) */
    bool attached;          /* a body was attached to it during recovery */
    bool dirty;             /* on sp->dirty */
    bool gone;              /* unlinked (no longer in sp->segs) */
    spool_range *held;      /* released, not yet punched: sorted by off, adjacent ranges merged */
    size_t nheld, capheld;
    uint64_t held_bytes;    /* sum of held[].len */
    spool_seg *next;        /* sp->segs */
    spool_seg *dnext;       /* sp->dirty */
};

/* Bodies are kept on a list so that spool_close can free the ones still referenced. */
typedef struct body_node {
    spool_body b;
    struct body_node *prev, *next;
} body_node;

struct spool {
    pthread_mutex_t mu;
    pthread_cond_t idle;    /* punches_inflight reached 0 */
    char dir[SPOOL_PATH_MAX];
    int dirfd;
    uint64_t segment_bytes;
    uint64_t max_bytes;
    iox *io;
    spool_seg *segs;        /* every segment file that exists */
    spool_seg *cur;
    spool_seg *dirty;
    body_node *bodies;
    uint64_t next_id;
    bool recovering;
    uint64_t used_bytes, live_bodies, nsegs, segments_deleted;
    uint64_t punches_inflight;
    uint64_t held_bytes;    /* released, not yet punched, in every segment: counts against max_bytes */
    uint64_t reserved_bytes;/* spool_reserve: staged outside the segments, also in used_bytes */
    spool_punch *topunch;   /* decided under mu, issued by issue_punches without it */
    size_t ntopunch, captopunch;
};

static uint64_t align_up(uint64_t v)
{
    return (v + SPOOL_ALIGN - 1) & ~(uint64_t)(SPOOL_ALIGN - 1);
}

static int seg_path(const spool *s, uint64_t id, char *buf, size_t len)
{
    int n = snprintf(buf, len, "%s/spool-%016" PRIx64 ".seg", s->dir, id);
    return (n < 0 || (size_t)n >= len) ? -ENAMETOOLONG : 0;
}

/* Drop one segment reference (under mu); the last closes the fd and frees. */
static void seg_put_locked(spool_seg *g)
{
    if (--g->refs > 0) return;
    if (g->fd >= 0) close(g->fd);
    free(g->held);
    free(g);
}

/* Forget g's held ranges (under mu): the file is going, and their blocks with it. */
static void held_clear_locked(spool *s, spool_seg *g)
{
    s->held_bytes -= g->held_bytes;
    g->held_bytes = 0;
    g->nheld = 0;
}

/* Unlink a segment and forget it (under mu). Its fd lives on while references remain. */
static void seg_delete_locked(spool *s, spool_seg *g)
{
    char path[SPOOL_PATH_MAX + 64];
    if (seg_path(s, g->id, path, sizeof path) == 0) (void)unlink(path);
    for (spool_seg **pp = &s->segs; *pp; pp = &(*pp)->next) {
        if (*pp == g) {
            *pp = g->next;
            break;
        }
    }
    held_clear_locked(s, g); /* the file's blocks go with it */
    g->gone = true;
    g->next = NULL;
    s->nsegs--;
    s->segments_deleted++;
    seg_put_locked(g);
}

/* May g go now? Not current, no live body, and not a recovery candidate before recovery is over. */
static bool seg_deletable(const spool *s, const spool_seg *g)
{
    return !g->gone && !g->current && g->live == 0 && !(s->recovering && g->preexisting);
}

static spool_seg *seg_alloc(spool *s, uint64_t id, int fd)
{
    spool_seg *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    g->sp = s;
    g->id = id;
    g->fd = fd;
    g->refs = 1; /* the spool's */
    g->next = s->segs;
    s->segs = g;
    s->nsegs++;
    return g;
}

static void issue_punches(spool *s);

/* Queue a punch of [off, off+len) of g (under mu); false on ENOMEM (the range is then not punched). */
static bool punch_queue_locked(spool *s, spool_seg *g, uint64_t off, uint64_t len)
{
    if (s->ntopunch == s->captopunch) {
        size_t nc = s->captopunch ? s->captopunch * 2 : 16;
        spool_punch *np = realloc(s->topunch, nc * sizeof *np);
        if (!np) return false;
        s->topunch = np;
        s->captopunch = nc;
    }
    g->refs++; /* held until the punch completes */
    s->punches_inflight++;
    s->topunch[s->ntopunch++] = (spool_punch){g, off, len};
    return true;
}

/* Punch every held range of g (under mu). A range that cannot be queued stays held. */
static void punch_all_locked(spool *s, spool_seg *g)
{
    size_t keep = 0;
    for (size_t i = 0; i < g->nheld; i++) {
        spool_range r = g->held[i];
        if (punch_queue_locked(s, g, r.off, r.len)) {
            g->held_bytes -= r.len;
            s->held_bytes -= r.len;
        } else {
            g->held[keep++] = r;
        }
    }
    g->nheld = keep;
}

/* Punch the held ranges of every segment (under mu): the spool is over its cap. */
static void punch_everything_locked(spool *s)
{
    for (spool_seg *g = s->segs; g; g = g->next)
        if (g->nheld) punch_all_locked(s, g);
}

/*
 * Add the released region [off, off+len) to g's held ranges (under mu), merged with its neighbours.
 * Returns the index of the range that now holds it, or -1 on ENOMEM (the caller punches it at once).
 */
static long held_add_locked(spool *s, spool_seg *g, uint64_t off, uint64_t len)
{
    size_t lo = 0, hi = g->nheld; /* first range with off > the new one */
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (g->held[mid].off < off) lo = mid + 1;
        else hi = mid;
    }
    size_t i = lo;
    bool prev = i > 0 && g->held[i - 1].off + g->held[i - 1].len == off;
    bool next = i < g->nheld && off + len == g->held[i].off;
    if (prev && next) {
        g->held[i - 1].len += len + g->held[i].len;
        memmove(&g->held[i], &g->held[i + 1], (g->nheld - i - 1) * sizeof *g->held);
        g->nheld--;
        i--;
    } else if (prev) {
        g->held[--i].len += len;
    } else if (next) {
        g->held[i].off = off;
        g->held[i].len += len;
    } else {
        if (g->nheld == g->capheld) {
            size_t nc = g->capheld ? g->capheld * 2 : 8;
            spool_range *nh = realloc(g->held, nc * sizeof *nh);
            if (!nh) return -1;
            g->held = nh;
            g->capheld = nc;
        }
        memmove(&g->held[i + 1], &g->held[i], (g->nheld - i) * sizeof *g->held);
        g->held[i] = (spool_range){off, len};
        g->nheld++;
    }
    g->held_bytes += len;
    s->held_bytes += len;
    return (long)i;
}

/* Start a new current segment (under mu). The directory is synced so the file survives a crash. */
static int seg_new_locked(spool *s)
{
    char path[SPOOL_PATH_MAX + 64];
    uint64_t id = s->next_id;
    int rc = seg_path(s, id, path, sizeof path);
    if (rc < 0) return rc;
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) return -errno;
    if (fsync(s->dirfd) < 0) {
        rc = -errno;
        close(fd);
        (void)unlink(path);
        return rc;
    }
    spool_seg *g = seg_alloc(s, id, fd);
    if (!g) {
        close(fd);
        (void)unlink(path);
        return -ENOMEM;
    }
    s->next_id = id + 1;
    spool_seg *old = s->cur;
    g->current = true;
    s->cur = g;
    if (old) {
        old->current = false;
        if (seg_deletable(s, old)) seg_delete_locked(s, old);
        else punch_all_locked(s, old); /* no more writes go to it: its gaps can be punched now */
    }
    return 0;
}

static int parse_seg_name(const char *name, uint64_t *id)
{
    if (strncmp(name, "spool-", 6) != 0) return -1;
    const char *p = name + 6;
    if (strlen(p) != 16 + 4 || strcmp(p + 16, ".seg") != 0) return -1;
    uint64_t v = 0;
    for (int i = 0; i < 16; i++) {
        char c = p[i];
        int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
        if (d < 0) return -1;
        v = (v << 4) | (uint64_t)d;
    }
    *id = v;
    return 0;
}

/** Open (create) the spool directory; existing segments are listed for spool_attach. */
int spool_open(const spool_opts *o, spool **out, char *err, size_t errlen)
{
    spool *s = NULL;
    DIR *d = NULL;
    int rc = -1;
    if (!o || !o->dir || !o->dir[0] || !o->io) {
        snprintf(err, errlen, "spool: dir and io are required");
        return -1;
    }
    if (strlen(o->dir) >= SPOOL_PATH_MAX) {
        snprintf(err, errlen, "spool: directory name too long");
        return -1;
    }
    if (mkdir(o->dir, 0700) < 0 && errno != EEXIST) {
        snprintf(err, errlen, "spool: cannot create %s: %s", o->dir, strerror(errno));
        return -1;
    }
    s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "spool: out of memory");
        return -1;
    }
    s->dirfd = -1;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->idle, NULL);
    snprintf(s->dir, sizeof s->dir, "%s", o->dir);
    s->segment_bytes = o->segment_bytes ? o->segment_bytes : SPOOL_DEFAULT_SEGMENT;
    s->max_bytes = o->max_bytes;
    s->io = o->io;
    s->next_id = 1;
    s->recovering = true;
    s->dirfd = open(o->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (s->dirfd < 0) {
        snprintf(err, errlen, "spool: cannot open %s: %s", o->dir, strerror(errno));
        goto out;
    }
    d = opendir(o->dir);
    if (!d) {
        snprintf(err, errlen, "spool: cannot list %s: %s", o->dir, strerror(errno));
        goto out;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        uint64_t id;
        if (parse_seg_name(de->d_name, &id) < 0) continue;
        spool_seg *g = seg_alloc(s, id, -1);
        if (!g) {
            snprintf(err, errlen, "spool: out of memory");
            goto out;
        }
        g->preexisting = true;
        if (id >= s->next_id) s->next_id = id + 1;
    }
    rc = 0;
out:
    if (d) closedir(d);
    if (rc < 0) {
        spool_close(s);
        return -1;
    }
    *out = s;
    return 0;
}

static void body_free_fields(spool_body *b)
{
    (void)b; /* a body owns nothing besides its node */
}

uint32_t spool_sum_crc(const spool_sum *sum)
{
    const uint8_t *p = sum->bytes;
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void sum_set_crc(spool_sum *sum, uint32_t crc)
{
    memset(sum, 0, sizeof *sum);
    sum->kind = SPOOL_SUM_CRC32C;
    for (int i = 0; i < 4; i++) sum->bytes[i] = (uint8_t)(crc >> (8 * i));
}

/** Close every fd and free everything, bodies still referenced included. */
void spool_close(spool *s)
{
    if (!s) return;
    pthread_mutex_lock(&s->mu);
    while (s->punches_inflight > 0) pthread_cond_wait(&s->idle, &s->mu);
    while (s->bodies) {
        body_node *n = s->bodies;
        s->bodies = n->next;
        body_free_fields(&n->b);
        free(n);
    }
    /* Dirty-list references and segments still referenced by bodies or hand-outs go with the spool. */
    spool_seg *all = NULL;
    for (spool_seg *g = s->dirty; g;) {
        spool_seg *n = g->dnext;
        if (g->gone) { /* only the dirty list still knew it */
            g->next = all;
            all = g;
        }
        g = n;
    }
    for (spool_seg *g = s->segs; g;) {
        spool_seg *n = g->next;
        if (g->fd >= 0) close(g->fd);
        free(g->held);
        free(g);
        g = n;
    }
    for (spool_seg *g = all; g;) {
        spool_seg *n = g->next;
        if (g->fd >= 0) close(g->fd);
        free(g->held);
        free(g);
        g = n;
    }
    pthread_mutex_unlock(&s->mu);
    free(s->topunch);
    if (s->dirfd >= 0) close(s->dirfd);
    pthread_cond_destroy(&s->idle);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

/** True when a new body of len bytes would take the bytes in use past max_bytes (held space is punched first). */
bool spool_would_exceed(spool *s, uint64_t len)
{
    pthread_mutex_lock(&s->mu);
    uint64_t used = s->used_bytes + s->held_bytes;
    bool r = s->max_bytes && (used > s->max_bytes || len > s->max_bytes - used);
    bool punch = r && s->held_bytes > 0;
    if (punch) {
        /* the room is there once released space is punched out: do that now rather than refuse */
        punch_everything_locked(s);
        used = s->used_bytes + s->held_bytes;
        r = used > s->max_bytes || len > s->max_bytes - used;
    }
    pthread_mutex_unlock(&s->mu);
    if (punch) issue_punches(s);
    return r;
}

int spool_reserve(spool *s, uint64_t n)
{
    pthread_mutex_lock(&s->mu);
    uint64_t used = s->used_bytes + s->held_bytes;
    bool over = s->max_bytes && (used > s->max_bytes || n > s->max_bytes - used);
    bool punch = over && s->held_bytes > 0;
    if (punch) { /* released space counts until it is punched out: make the room real first */
        punch_everything_locked(s);
        used = s->used_bytes + s->held_bytes;
        over = used > s->max_bytes || n > s->max_bytes - used;
    }
    if (!over) {
        s->used_bytes += n;
        s->reserved_bytes += n;
    }
    pthread_mutex_unlock(&s->mu);
    if (punch) issue_punches(s);
    return over ? -EAGAIN : 0;
}

void spool_release(spool *s, uint64_t n)
{
    pthread_mutex_lock(&s->mu);
    if (n > s->reserved_bytes) n = s->reserved_bytes; /* (a caller bug must not wrap the counters) */
    s->reserved_bytes -= n;
    s->used_bytes -= n;
    pthread_mutex_unlock(&s->mu);
}

/* Never written: the source of the zeros written ahead of small bodies. */
static uint8_t spool_zeros[SPOOL_ZERO_AHEAD];

/*
 * Write zeros past the last allocated region of g (under mu, so no body can be given that space
 * while they are written). A small body written into space that was never written allocates blocks
 * and grows the file, metadata that makes the journal's fdatasync of this segment a file system
 * journal commit each time; into written space it is a plain overwrite (measured here: 0.24 ms per
 * 4 KiB write + fdatasync at the end of a growing file, 0.15 ms into written space). A failure only
 * loses the optimisation.
 */
static void zero_ahead_locked(spool *s, spool_seg *g)
{
    uint64_t ahead = SPOOL_ZERO_AHEAD; /* at most a sixteenth of the cap: disk use stays near it */
    if (s->max_bytes && ahead > s->max_bytes / 16) ahead = s->max_bytes / 16 & ~(uint64_t)(SPOOL_ALIGN - 1);
    if (ahead == 0 || g->zeroed >= g->alloc_off + ahead / 2 || g->zeroed >= s->segment_bytes) return;
    uint64_t to = g->alloc_off + ahead;
    if (to > s->segment_bytes) to = s->segment_bytes;
    while (g->zeroed < to) {
        ssize_t w = pwrite(g->fd, spool_zeros, (size_t)(to - g->zeroed), (off_t)g->zeroed);
        if (w <= 0) return;
        g->zeroed += (uint64_t)w;
    }
}

static body_node *body_new_locked(spool *s, spool_seg *g, uint64_t off, uint64_t cap)
{
    body_node *n = calloc(1, sizeof *n);
    if (!n) return NULL;
    spool_body *b = &n->b;
    b->fd = g->fd;
    b->seg = g->id;
    b->off = off;
    b->cap = cap;
    atomic_init(&b->refs, 1);
    b->sp = s;
    b->sg = g;
    g->refs++;
    g->live++;
    n->next = s->bodies;
    if (s->bodies) s->bodies->prev = n;
    s->bodies = n;
    s->live_bodies++;
    return n;
}

/** Reserve a region for a new body in the current segment (a new one when it would not fit). */
int spool_begin(spool *s, uint64_t expect_len, uint64_t max_len, spool_body **out)
{
    uint64_t cap = expect_len != UINT64_MAX ? expect_len : max_len;
    int rc = 0;
    pthread_mutex_lock(&s->mu);
    if (!s->cur || (s->cur->alloc_off > 0 && (cap > s->segment_bytes || s->cur->alloc_off > s->segment_bytes - cap))) {
        rc = seg_new_locked(s);
        if (rc < 0) goto out;
    }
    spool_seg *g = s->cur;
    uint64_t off = g->alloc_off;
    body_node *n = body_new_locked(s, g, off, cap);
    if (!n) {
        rc = -ENOMEM;
        goto out;
    }
    g->alloc_off = align_up(off + cap);
    if (g->zeroed < g->alloc_off) g->zeroed = g->alloc_off;
    if (cap <= SPOOL_ZERO_BODY_MAX) zero_ahead_locked(s, g);
    s->used_bytes += cap;
    *out = &n->b;
out:
    pthread_mutex_unlock(&s->mu);
    issue_punches(s); /* a segment that stopped being current has its gaps punched */
    return rc;
}

static void mark_dirty(spool *s, spool_seg *g)
{
    pthread_mutex_lock(&s->mu);
    if (!g->dirty) {
        g->dirty = true;
        g->refs++;
        g->dnext = s->dirty;
        s->dirty = g;
    }
    pthread_mutex_unlock(&s->mu);
}

/*
 * Start the writeback of a large body's bytes while the rest of it is still arriving: every
 * SPOOL_WRITEBACK_STEP bytes, sync_file_range(SYNC_FILE_RANGE_WRITE) queues the pages written since
 * (it does not wait for them), so the fdatasync that makes the body durable finds most of them on
 * disk or on their way instead of writing the whole body after its last byte. Whole pages only; a
 * failure only loses the overlap (the fdatasync still writes everything).
 */
static void writeback_start(spool_body *b)
{
    uint64_t end = (b->off + b->len) & ~(uint64_t)4095, from = b->off + b->wb;
    if (end < from + SPOOL_WRITEBACK_STEP) return;
    (void)sync_file_range(b->fd, (off_t)from, (off_t)(end - from), SYNC_FILE_RANGE_WRITE);
    b->wb = end - b->off;
}

/** Append n bytes to the body: pwrite at off + len, CRC extended. */
int spool_write(spool_body *b, const void *data, size_t n)
{
    if (b->finished) return -EINVAL;
    if (n > b->cap - b->len) return -EFBIG;
    const uint8_t *p = data;
    size_t done = 0;
    while (done < n) {
        ssize_t w = pwrite(b->fd, p + done, n - done, (off_t)(b->off + b->len + done));
        if (w < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        if (w == 0) return -EIO;
        done += (size_t)w;
    }
    b->crc = crc32c_extend(b->crc, data, n);
    b->len += n;
    if (n > 0) mark_dirty(b->sp, b->sg);
    writeback_start(b);
    return 0;
}

/** The body is complete: its sum set, the unused reservation given back. */
int spool_finish(spool_body *b)
{
    if (b->finished) return 0;
    sum_set_crc(&b->sum, b->crc);
    spool *s = b->sp;
    pthread_mutex_lock(&s->mu);
    s->used_bytes -= b->cap - b->len;
    spool_seg *g = b->sg;
    if (g->current && g->alloc_off == align_up(b->off + b->cap)) g->alloc_off = align_up(b->off + b->len);
    b->cap = b->len;
    b->finished = true;
    pthread_mutex_unlock(&s->mu);
    return 0;
}

spool_body *spool_ref(spool_body *b)
{
    if (b) atomic_fetch_add(&b->refs, 1);
    return b;
}

static void punch_done(void *ud, int64_t res)
{
    (void)res; /* a filesystem without hole punching keeps the bytes until the segment goes */
    spool_seg *g = ud;
    spool *s = g->sp;
    pthread_mutex_lock(&s->mu);
    seg_put_locked(g);
    if (--s->punches_inflight == 0) pthread_cond_broadcast(&s->idle);
    pthread_mutex_unlock(&s->mu);
}

/* Issue the punches queued under mu (called without it: a failing submission calls punch_done). */
static void issue_punches(spool *s)
{
    for (;;) {
        pthread_mutex_lock(&s->mu);
        if (s->ntopunch == 0) {
            pthread_mutex_unlock(&s->mu);
            return;
        }
        spool_punch pu = s->topunch[--s->ntopunch];
        int fd = pu.g->fd;
        pthread_mutex_unlock(&s->mu);
        if (iox_fallocate(s->io, fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, pu.off, pu.len, punch_done, pu.g) < 0)
            punch_done(pu.g, -ESHUTDOWN);
    }
}

/*
 * A live region of g is released (under mu): the last reference of its body went, or a pin was
 * dropped. The region joins g's held ranges (or g goes). Returns with issue_punches due.
 */
static void region_release_locked(spool *s, spool_seg *g, uint64_t poff, uint64_t plen, uint64_t used)
{
    s->used_bytes -= used;
    s->live_bodies--;
    g->live--;
    if (seg_deletable(s, g)) {
        seg_delete_locked(s, g);
    } else if (plen > 0) {
        /* Small regions are punched in batches, not one by one: on file systems mounted with discard
         * each punch holds the inode lock through a synchronous discard and stalls the writes and
         * fdatasyncs of the current segment (measured: 18% of the proxy's time at 4 KiB appends). */
        long i = held_add_locked(s, g, poff, plen);
        if (i < 0) {
            (void)punch_queue_locked(s, g, poff, plen);
        } else if (g->held[i].len >= SPOOL_PUNCH_MIN) {
            spool_range r = g->held[i];
            if (punch_queue_locked(s, g, r.off, r.len)) {
                memmove(&g->held[i], &g->held[i + 1], (g->nheld - (size_t)i - 1) * sizeof *g->held);
                g->nheld--;
                g->held_bytes -= r.len;
                s->held_bytes -= r.len;
            }
        } else if (!g->current || g->nheld > SPOOL_HELD_MAX) {
            punch_all_locked(s, g);
        }
        if (s->max_bytes && s->used_bytes + s->held_bytes > s->max_bytes) punch_everything_locked(s);
    }
}

static void body_unlink_locked(spool *s, body_node *n)
{
    if (n->prev) n->prev->next = n->next;
    else s->bodies = n->next;
    if (n->next) n->next->prev = n->prev;
}

/** Drop a reference; the last releases the region (spool.h) or deletes the segment. */
void spool_unref(spool_body *b)
{
    if (!b) return;
    if (atomic_fetch_sub(&b->refs, 1) != 1) return;
    spool *s = b->sp;
    spool_seg *g = b->sg;
    body_node *n = (body_node *)b;
    pthread_mutex_lock(&s->mu);
    body_unlink_locked(s, n);
    region_release_locked(s, g, b->off, align_up(b->len), b->finished ? b->len : b->cap);
    seg_put_locked(g); /* the body's */
    pthread_mutex_unlock(&s->mu);
    body_free_fields(b);
    free(n);
    issue_punches(s);
}

/** Segments written since the previous call, each with a reference (give back with spool_seg_put). */
int spool_take_dirty(spool *s, spool_seg **out, int max)
{
    int n = 0;
    pthread_mutex_lock(&s->mu);
    while (s->dirty && n < max) {
        spool_seg *g = s->dirty;
        s->dirty = g->dnext;
        g->dnext = NULL;
        g->dirty = false;
        out[n++] = g; /* the dirty list's reference moves to the caller */
    }
    pthread_mutex_unlock(&s->mu);
    return n;
}

int spool_seg_fd(const spool_seg *g)
{
    return g->fd;
}

void spool_seg_put(spool_seg *g)
{
    if (!g) return;
    spool *s = g->sp;
    pthread_mutex_lock(&s->mu);
    seg_put_locked(g);
    pthread_mutex_unlock(&s->mu);
}

/* Read [off, off + len) of fd back and compare its checksum of sum's kind with sum: 0, -EBADMSG
 * (different, or a kind this build does not know), -ENOENT (short) or -errno. A CRC-32C needs no
 * library context; the SHA-256 is only ever checked for bodies journaled by an older version. */
static int verify_sum(int fd, uint64_t off, uint64_t len, const spool_sum *sum)
{
    int rc = 0;
    uint32_t crc = 0;
    EVP_MD_CTX *sha = NULL;
    if (sum->kind != SPOOL_SUM_CRC32C && sum->kind != SPOOL_SUM_SHA256) return -EBADMSG;
    uint8_t *buf = malloc(SPOOL_VERIFY_CHUNK);
    if (!buf) return -ENOMEM;
    if (sum->kind == SPOOL_SUM_SHA256 &&
        (!(sha = EVP_MD_CTX_new()) || EVP_DigestInit_ex(sha, EVP_sha256(), NULL) != 1)) {
        rc = -ENOMEM;
        goto out;
    }
    uint64_t done = 0;
    while (done < len) {
        size_t want = len - done < SPOOL_VERIFY_CHUNK ? (size_t)(len - done) : SPOOL_VERIFY_CHUNK;
        ssize_t r = pread(fd, buf, want, (off_t)(off + done));
        if (r < 0) {
            if (errno == EINTR) continue;
            rc = -errno;
            goto out;
        }
        if (r == 0) {
            rc = -ENOENT;
            goto out;
        }
        if (sha) {
            if (EVP_DigestUpdate(sha, buf, (size_t)r) != 1) {
                rc = -ENOMEM;
                goto out;
            }
        } else {
            crc = crc32c_extend(crc, buf, (size_t)r);
        }
        done += (uint64_t)r;
    }
    if (sha) {
        uint8_t got[SPOOL_DIGEST_LEN];
        unsigned int dl = 0;
        if (EVP_DigestFinal_ex(sha, got, &dl) != 1 || dl != SPOOL_DIGEST_LEN) {
            rc = -EIO;
            goto out;
        }
        if (memcmp(got, sum->bytes, SPOOL_DIGEST_LEN) != 0) rc = -EBADMSG;
    } else if (crc != spool_sum_crc(sum)) {
        rc = -EBADMSG;
    }
out:
    EVP_MD_CTX_free(sha);
    free(buf);
    return rc;
}

/* The segment of id with its fd open (under mu), or NULL and *rc. */
static spool_seg *seg_open_locked(spool *s, uint64_t id, int *rc)
{
    spool_seg *g = s->segs;
    while (g && g->id != id) g = g->next;
    if (!g) {
        *rc = -ENOENT;
        return NULL;
    }
    if (g->fd < 0) {
        char path[SPOOL_PATH_MAX + 64];
        *rc = seg_path(s, g->id, path, sizeof path);
        if (*rc < 0) return NULL;
        g->fd = open(path, O_RDWR | O_CLOEXEC);
        if (g->fd < 0) {
            *rc = errno == ENOENT ? -ENOENT : -errno;
            return NULL;
        }
    }
    return g;
}

/*
 * Recovery: count the body at (seg, off, len) as live, as spool_attach does. With out, a body object
 * holds it (one reference); without, it is a pin (spool.h).
 */
static int attach_or_pin(spool *s, uint64_t seg, uint64_t off, uint64_t len, const spool_sum *sum, bool verify,
                         spool_body **out)
{
    int rc = 0;
    pthread_mutex_lock(&s->mu);
    spool_seg *g = seg_open_locked(s, seg, &rc);
    if (!g) goto out;
    struct stat st;
    if (fstat(g->fd, &st) < 0) {
        rc = -errno;
        goto out;
    }
    if (off % SPOOL_ALIGN != 0 || (uint64_t)st.st_size < off || (uint64_t)st.st_size - off < len) {
        rc = -ENOENT;
        goto out;
    }
    if (verify) {
        g->refs++; /* keep the fd while reading without the lock */
        int fd = g->fd;
        pthread_mutex_unlock(&s->mu);
        rc = verify_sum(fd, off, len, sum);
        pthread_mutex_lock(&s->mu);
        g->refs--;
        if (rc < 0) goto out;
    }
    if (out) {
        body_node *n = body_new_locked(s, g, off, len);
        if (!n) {
            rc = -ENOMEM;
            goto out;
        }
        n->b.len = len;
        n->b.finished = true;
        n->b.sum = *sum;
        *out = &n->b;
    } else {
        g->live++;
        s->live_bodies++;
    }
    g->attached = true;
    s->used_bytes += len;
out:
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/** Recovery: a body back from (seg, off, len), optionally checked against its sum. */
int spool_attach(spool *s, uint64_t seg, uint64_t off, uint64_t len, const spool_sum *sum, bool verify,
                 spool_body **out)
{
    return attach_or_pin(s, seg, off, len, sum, verify, out);
}

int spool_pin(spool *s, uint64_t seg, uint64_t off, uint64_t len, const spool_sum *sum, bool verify)
{
    return attach_or_pin(s, seg, off, len, sum, verify, NULL);
}

int spool_pin_take(spool *s, uint64_t seg, uint64_t off, uint64_t len, const spool_sum *sum, spool_body **out)
{
    int rc = 0;
    pthread_mutex_lock(&s->mu);
    spool_seg *g = seg_open_locked(s, seg, &rc);
    if (g) {
        /* the pin becomes the object's: live, used_bytes and live_bodies stay as they are */
        body_node *n = body_new_locked(s, g, off, len);
        if (n) {
            g->live--;
            s->live_bodies--;
            n->b.len = len;
            n->b.finished = true;
            n->b.sum = *sum;
            *out = &n->b;
        } else {
            rc = -ENOMEM;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

bool spool_body_to_pin(spool_body *b)
{
    if (!b || !b->finished || atomic_load(&b->refs) != 1) return false;
    spool *s = b->sp;
    body_node *n = (body_node *)b;
    pthread_mutex_lock(&s->mu);
    body_unlink_locked(s, n);
    seg_put_locked(b->sg); /* the body's reference; g->live and the bytes stay counted as the pin */
    pthread_mutex_unlock(&s->mu);
    body_free_fields(b);
    free(n);
    return true;
}

void spool_unpin(spool *s, uint64_t seg, uint64_t off, uint64_t len)
{
    pthread_mutex_lock(&s->mu);
    spool_seg *g = s->segs;
    while (g && g->id != seg) g = g->next;
    if (g && g->live > 0) region_release_locked(s, g, off, align_up(len), len);
    pthread_mutex_unlock(&s->mu);
    issue_punches(s);
}

/** Recovery is over: segments without an attached live body go. Idempotent. */
void spool_recovery_done(spool *s)
{
    pthread_mutex_lock(&s->mu);
    if (s->recovering) {
        s->recovering = false;
        for (spool_seg *g = s->segs; g;) {
            spool_seg *n = g->next;
            if (seg_deletable(s, g)) seg_delete_locked(s, g);
            g = n;
        }
    }
    pthread_mutex_unlock(&s->mu);
}

void spool_get_stats(spool *s, spool_stats *st)
{
    pthread_mutex_lock(&s->mu);
    st->used_bytes = s->used_bytes;
    st->held_bytes = s->held_bytes;
    st->reserved_bytes = s->reserved_bytes;
    st->max_bytes = s->max_bytes;
    st->live_bodies = s->live_bodies;
    st->segments = s->nsegs;
    st->segments_deleted = s->segments_deleted;
    pthread_mutex_unlock(&s->mu);
}
