/*
 * Unit tests for iox (common/store/iox.h). Every behaviour is checked on both backends: concurrent writes
 * read back byte for byte, callbacks run exactly once and never on the submitting thread, punched
 * holes free blocks and read back as zeros, the fault hook's errors and short writes, the blocking
 * forms, and iox_free with work in flight. The io_uring cases skip (saying why) when this machine
 * cannot set up a ring at all. The fallback case runs this binary under dualpipe-no-uring (the
 * seccomp tool that refuses io_uring like Docker's default profile) in its --child-no-uring mode.
 * Each test's file is opened in a fresh mkdtemp directory under /tmp and both are unlinked at
 * once, so nothing is left behind even when an assertion stops the test.
 */
#include "tharness.h"

#include "iox.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>

/* ---------------------------------------------------------------- helpers */

/* An anonymous read-write file: created in a mkdtemp dir under /tmp, then both are removed. */
static int tmpfile_fd(void)
{
    char dir[] = "/tmp/dp-iox-XXXXXX";
    ASSERT_TRUE(mkdtemp(dir) != NULL);
    char path[64];
    snprintf(path, sizeof path, "%s/f", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    ASSERT_TRUE(fd >= 0);
    ASSERT_EQ_INT(unlink(path), 0);
    ASSERT_EQ_INT(rmdir(dir), 0);
    return fd;
}

/* Whether this kernel lets us set up an io_uring at all (independently of iox). */
static int uring_probe(void)
{
    struct io_uring r;
    int rc = io_uring_queue_init(4, &r, 0);
    if (rc == 0) io_uring_queue_exit(&r);
    return rc;
}

/* Engine on backend b; io_uring cases skip when the machine has no io_uring. */
static iox *engine(iox_backend b, unsigned depth, unsigned threads)
{
    if (b == IOX_URING) {
        int rc = uring_probe();
        if (rc < 0) TH_SKIP_NOW("io_uring unavailable on this machine (io_uring_setup: %s)", strerror(-rc));
    }
    iox *x = NULL;
    char err[256] = "";
    int rc = iox_new(b, depth, threads, &x, err, sizeof err);
    if (rc != 0) TH_FAIL_AT("iox_new(%s): %s", iox_backend_name(b), err);
    ASSERT_EQ_INT(iox_in_use(x), b);
    ASSERT_EQ_STR(iox_reason(x), "");
    return x;
}

static void fill(char *buf, size_t len, unsigned seed)
{
    for (size_t i = 0; i < len; i++) buf[i] = (char)((i * 31u + seed * 7u + (i >> 8)) & 0xff);
}

static void read_all(int fd, char *buf, size_t len, uint64_t off)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = pread(fd, buf + got, len - got, (off_t)(off + got));
        ASSERT_TRUE(n > 0);
        got += (size_t)n;
    }
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Completion bookkeeping: one slot per request, a shared counter to wait on. */
typedef struct ctr {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned done;
} ctr;

typedef struct slot {
    ctr *c;
    pthread_t submitter;
    int calls;
    int64_t res;
    bool on_submitter; /* the callback ran on the submitting thread */
} slot;

static void ctr_init(ctr *c)
{
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    c->done = 0;
}

static void slot_cb(void *ud, int64_t res)
{
    slot *s = ud;
    pthread_mutex_lock(&s->c->mu);
    s->calls++;
    s->res = res;
    if (pthread_equal(pthread_self(), s->submitter)) s->on_submitter = true;
    s->c->done++;
    pthread_cond_broadcast(&s->c->cv);
    pthread_mutex_unlock(&s->c->mu);
}

static void ctr_wait(ctr *c, unsigned n)
{
    pthread_mutex_lock(&c->mu);
    while (c->done < n) pthread_cond_wait(&c->cv, &c->mu);
    pthread_mutex_unlock(&c->mu);
}

static void slot_arm(slot *s, ctr *c)
{
    memset(s, 0, sizeof *s);
    s->c = c;
    s->submitter = pthread_self();
    s->res = INT64_MIN;
}

/* iox_pending drops after the callback returns: give the last callback time to return. */
static void expect_idle(iox *x)
{
    for (int i = 0; i < 5000 && iox_pending(x) != 0; i++) usleep(1000);
    ASSERT_EQ_INT(iox_pending(x), 0);
}

/* ---------------------------------------------------------------- concurrent writes */

#define MW_THREADS 4
#define MW_PER 256
#define MW_BLOCK 4096

typedef struct mw_arg {
    iox *x;
    int fd;
    unsigned t;
    char *data;  /* whole expected file */
    slot *slots; /* MW_THREADS * MW_PER */
    ctr *c;
    int bad_rc;
} mw_arg;

static void *mw_submitter(void *p)
{
    mw_arg *a = p;
    for (unsigned i = 0; i < MW_PER; i++) {
        size_t idx = (size_t)a->t * MW_PER + i;
        /* interleave the threads' blocks so neighbours come from different submitters */
        size_t blk = i * MW_THREADS + a->t;
        slot_arm(&a->slots[idx], a->c);
        int rc = iox_pwrite(a->x, a->fd, a->data + blk * MW_BLOCK, MW_BLOCK, (uint64_t)blk * MW_BLOCK,
                            slot_cb, &a->slots[idx]);
        if (rc != 0) a->bad_rc = rc;
    }
    return NULL;
}

static void many_pwrites(iox_backend b)
{
    /* A small depth on io_uring, so most requests wait in the queue for a free slot. */
    iox *x = engine(b, 16, 4);
    int fd = tmpfile_fd();
    size_t total = (size_t)MW_THREADS * MW_PER * MW_BLOCK;
    char *data = malloc(total), *back = malloc(total);
    slot *slots = calloc(MW_THREADS * MW_PER, sizeof *slots);
    ASSERT_TRUE(data && back && slots);
    fill(data, total, 3);
    ctr c;
    ctr_init(&c);

    double t0 = now_s();
    pthread_t th[MW_THREADS];
    mw_arg args[MW_THREADS];
    for (unsigned t = 0; t < MW_THREADS; t++) {
        args[t] = (mw_arg){.x = x, .fd = fd, .t = t, .data = data, .slots = slots, .c = &c};
        ASSERT_EQ_INT(pthread_create(&th[t], NULL, mw_submitter, &args[t]), 0);
    }
    for (unsigned t = 0; t < MW_THREADS; t++) {
        pthread_join(th[t], NULL);
        ASSERT_EQ_INT(args[t].bad_rc, 0);
    }
    ctr_wait(&c, MW_THREADS * MW_PER);
    ASSERT_EQ_INT(iox_fdatasync_wait(x, fd), 0);
    double dt = now_s() - t0;
    printf("info %s: %d x %d-byte writes + fdatasync in %.3f s (%.0f MiB/s)\n", iox_backend_name(b),
           MW_THREADS * MW_PER, MW_BLOCK, dt, (double)total / (1024.0 * 1024.0) / (dt > 0 ? dt : 1e-9));
    expect_idle(x);
    iox_free(x); /* no callback may arrive after this; the counts below are final */

    for (size_t i = 0; i < (size_t)MW_THREADS * MW_PER; i++) {
        ASSERT_EQ_INT(slots[i].calls, 1);
        ASSERT_EQ_INT(slots[i].res, MW_BLOCK);
        ASSERT_TRUE(!slots[i].on_submitter);
    }
    struct stat st;
    ASSERT_EQ_INT(fstat(fd, &st), 0);
    ASSERT_EQ_INT(st.st_size, total);
    read_all(fd, back, total, 0);
    ASSERT_EQ_MEM(back, data, total);
    close(fd);
    free(data);
    free(back);
    free(slots);
}

TEST(many_pwrites_uring) { many_pwrites(IOX_URING); }
TEST(many_pwrites_threads) { many_pwrites(IOX_THREADS); }

/* ---------------------------------------------------------------- fallocate */

static int64_t fallocate_sync(iox *x, int fd, int mode, uint64_t off, uint64_t len)
{
    ctr c;
    ctr_init(&c);
    slot s;
    slot_arm(&s, &c);
    ASSERT_EQ_INT(iox_fallocate(x, fd, mode, off, len, slot_cb, &s), 0);
    ctr_wait(&c, 1);
    ASSERT_TRUE(!s.on_submitter);
    return s.res;
}

static void punch_hole(iox_backend b)
{
    iox *x = engine(b, 0, 0);
    int fd = tmpfile_fd();
    const size_t mib = 1024 * 1024;
    char *buf = malloc(mib), *back = malloc(mib), *zero = calloc(1, mib);
    ASSERT_TRUE(buf && back && zero);
    memset(buf, 0xab, mib);
    ASSERT_EQ_INT(iox_pwrite_wait(x, fd, buf, mib, 0), mib);
    ASSERT_EQ_INT(iox_fdatasync_wait(x, fd), 0);
    struct stat st;
    ASSERT_EQ_INT(fstat(fd, &st), 0);
    blkcnt_t full = st.st_blocks;
    ASSERT_TRUE(full >= (blkcnt_t)(mib / 512));

    int64_t rc = fallocate_sync(x, fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, mib);
    if (rc == -EOPNOTSUPP) TH_SKIP_NOW("/tmp does not support hole punching");
    ASSERT_EQ_INT(rc, 0);
    ASSERT_EQ_INT(fstat(fd, &st), 0);
    ASSERT_EQ_INT(st.st_size, mib); /* KEEP_SIZE */
    ASSERT_TRUE(st.st_blocks < full);
    ASSERT_TRUE(st.st_blocks <= (blkcnt_t)(full / 8)); /* essentially everything freed */
    read_all(fd, back, mib, 0);
    ASSERT_EQ_MEM(back, zero, mib);

    /* mode 0 preallocates and extends the size */
    blkcnt_t before = st.st_blocks;
    ASSERT_EQ_INT(fallocate_sync(x, fd, 0, mib, mib), 0);
    ASSERT_EQ_INT(fstat(fd, &st), 0);
    ASSERT_EQ_INT(st.st_size, 2 * mib);
    ASSERT_TRUE(st.st_blocks >= before + (blkcnt_t)(mib / 512));
    /* a bad fd reaches the callback as -EBADF */
    ASSERT_EQ_INT(fallocate_sync(x, -1, 0, 0, 4096), -EBADF);

    iox_free(x);
    close(fd);
    free(buf);
    free(back);
    free(zero);
}

TEST(punch_hole_uring) { punch_hole(IOX_URING); }
TEST(punch_hole_threads) { punch_hole(IOX_THREADS); }

/* ---------------------------------------------------------------- fault hook: errors */

typedef struct fault_plan {
    pthread_mutex_t mu;
    uint64_t eio_off, enospc_off; /* writes at these offsets fail */
    bool sync_eio;
    int calls[3];                 /* per iox_kind */
} fault_plan;

static int64_t plan_hook(void *ud, iox_kind kind, int fd, size_t len, uint64_t off)
{
    fault_plan *p = ud;
    pthread_mutex_lock(&p->mu);
    p->calls[kind]++;
    int64_t v = 0;
    if (kind == IOX_OP_PWRITE && off == p->eio_off) v = -EIO;
    if (kind == IOX_OP_PWRITE && off == p->enospc_off) v = -ENOSPC;
    if (kind == IOX_OP_FDATASYNC && p->sync_eio) v = -EIO;
    pthread_mutex_unlock(&p->mu);
    return v;
}

static void fault_errors(iox_backend b)
{
    iox *x = engine(b, 0, 2);
    int fd = tmpfile_fd();
    char a[4096], bb[4096], cc[4096], back[4096];
    memset(a, 'a', sizeof a);
    memset(bb, 'b', sizeof bb);
    memset(cc, 'c', sizeof cc);
    fault_plan p = {.eio_off = 4096, .enospc_off = 8192, .sync_eio = true};
    pthread_mutex_init(&p.mu, NULL);
    iox_set_fault(x, plan_hook, &p);

    ctr c;
    ctr_init(&c);
    slot s[4];
    for (int i = 0; i < 4; i++) slot_arm(&s[i], &c);
    ASSERT_EQ_INT(iox_pwrite(x, fd, a, sizeof a, 0, slot_cb, &s[0]), 0);
    ASSERT_EQ_INT(iox_pwrite(x, fd, bb, sizeof bb, 4096, slot_cb, &s[1]), 0);
    ASSERT_EQ_INT(iox_pwrite(x, fd, cc, sizeof cc, 8192, slot_cb, &s[2]), 0);
    ctr_wait(&c, 3);
    ASSERT_EQ_INT(iox_fdatasync(x, fd, slot_cb, &s[3]), 0);
    ctr_wait(&c, 4);
    ASSERT_EQ_INT(s[0].res, 4096);
    ASSERT_EQ_INT(s[1].res, -EIO);
    ASSERT_EQ_INT(s[2].res, -ENOSPC);
    ASSERT_EQ_INT(s[3].res, -EIO);
    /* the blocking forms see the same */
    ASSERT_EQ_INT(iox_pwrite_wait(x, fd, bb, sizeof bb, 4096), -EIO);
    ASSERT_EQ_INT(iox_fdatasync_wait(x, fd), -EIO);
    pthread_mutex_lock(&p.mu);
    ASSERT_EQ_INT(p.calls[IOX_OP_PWRITE], 4);
    ASSERT_EQ_INT(p.calls[IOX_OP_FDATASYNC], 2);
    pthread_mutex_unlock(&p.mu);

    /* failed requests never reached the file: only the first block exists */
    struct stat st;
    ASSERT_EQ_INT(fstat(fd, &st), 0);
    ASSERT_EQ_INT(st.st_size, 4096);
    read_all(fd, back, sizeof back, 0);
    ASSERT_EQ_MEM(back, a, sizeof a);

    /* without the hook, the same requests succeed */
    iox_set_fault(x, NULL, NULL);
    ASSERT_EQ_INT(iox_pwrite_wait(x, fd, bb, sizeof bb, 4096), 4096);
    ASSERT_EQ_INT(iox_fdatasync_wait(x, fd), 0);
    read_all(fd, back, sizeof back, 4096);
    ASSERT_EQ_MEM(back, bb, sizeof bb);
    expect_idle(x);
    iox_free(x);
    for (int i = 0; i < 4; i++) ASSERT_EQ_INT(s[i].calls, 1);
    close(fd);
}

TEST(fault_errors_uring) { fault_errors(IOX_URING); }
TEST(fault_errors_threads) { fault_errors(IOX_THREADS); }

/* ---------------------------------------------------------------- fault hook: short writes */

#define SW_MAX 128

typedef struct short_plan {
    pthread_mutex_t mu;
    int shorten;      /* shorten this many steps ... */
    int64_t step;     /* ... to this many bytes each */
    int n;
    size_t lens[SW_MAX];
    uint64_t offs[SW_MAX];
} short_plan;

static int64_t short_hook(void *ud, iox_kind kind, int fd, size_t len, uint64_t off)
{
    short_plan *p = ud;
    if (kind != IOX_OP_PWRITE) return 0;
    pthread_mutex_lock(&p->mu);
    int64_t v = 0;
    if (p->n < SW_MAX) {
        p->lens[p->n] = len;
        p->offs[p->n] = off;
    }
    p->n++;
    if (p->shorten != 0) {
        if (p->shorten > 0) p->shorten--;
        v = p->step;
    }
    pthread_mutex_unlock(&p->mu);
    return v;
}

static void short_writes(iox_backend b)
{
    iox *x = engine(b, 0, 0);
    int fd = tmpfile_fd();
    char buf[10000], back[10000];
    fill(buf, sizeof buf, 11);

    /* five short steps of 777 bytes in a row, then the rest in one */
    short_plan p = {.shorten = 5, .step = 777};
    pthread_mutex_init(&p.mu, NULL);
    iox_set_fault(x, short_hook, &p);
    ASSERT_EQ_INT(iox_pwrite_wait(x, fd, buf, sizeof buf, 100), sizeof buf);
    pthread_mutex_lock(&p.mu);
    ASSERT_EQ_INT(p.n, 6);
    for (int i = 0; i < 6; i++) {
        ASSERT_EQ_INT(p.offs[i], 100 + 777 * (uint64_t)i);
        ASSERT_EQ_INT(p.lens[i], sizeof buf - 777 * (size_t)i);
    }
    pthread_mutex_unlock(&p.mu);
    read_all(fd, back, sizeof back, 100);
    ASSERT_EQ_MEM(back, buf, sizeof buf);

    /* one byte at a time, always: 64 steps, callback still sees the whole count exactly once */
    short_plan q = {.shorten = -1, .step = 1};
    pthread_mutex_init(&q.mu, NULL);
    iox_set_fault(x, short_hook, &q);
    char small[64];
    fill(small, sizeof small, 5);
    ctr c;
    ctr_init(&c);
    slot s;
    slot_arm(&s, &c);
    ASSERT_EQ_INT(iox_pwrite(x, fd, small, sizeof small, 20000, slot_cb, &s), 0);
    ctr_wait(&c, 1);
    ASSERT_EQ_INT(s.res, sizeof small);
    pthread_mutex_lock(&q.mu);
    ASSERT_EQ_INT(q.n, 64);
    pthread_mutex_unlock(&q.mu);
    read_all(fd, back, sizeof small, 20000);
    ASSERT_EQ_MEM(back, small, sizeof small);

    /* a hook value >= the remaining length issues the step unchanged */
    short_plan r = {.shorten = -1, .step = 1 << 20};
    pthread_mutex_init(&r.mu, NULL);
    iox_set_fault(x, short_hook, &r);
    ASSERT_EQ_INT(iox_pwrite_wait(x, fd, buf, sizeof buf, 0), sizeof buf);
    ASSERT_EQ_INT(r.n, 1);

    iox_set_fault(x, NULL, NULL);
    iox_free(x);
    ASSERT_EQ_INT(s.calls, 1);
    close(fd);
}

TEST(short_writes_uring) { short_writes(IOX_URING); }
TEST(short_writes_threads) { short_writes(IOX_THREADS); }

/* ---------------------------------------------------------------- on the caller's thread */

/* iox_pwrite_here / iox_fdatasync_here (the journal's group commit): whatever the backend, the same
 * fault hook is asked before each step, short steps are continued, errors come back as they are, and
 * nothing goes through the engine (no request pending, no callback). */
static void here_forms(iox_backend b)
{
    iox *x = engine(b, 0, 1);
    int fd = tmpfile_fd();
    char buf[10000], back[10000];
    fill(buf, sizeof buf, 23);
    short_plan p = {.shorten = 3, .step = 1000};
    pthread_mutex_init(&p.mu, NULL);
    iox_set_fault(x, short_hook, &p);
    ASSERT_EQ_INT(iox_pwrite_here(x, fd, buf, sizeof buf, 50), sizeof buf);
    pthread_mutex_lock(&p.mu);
    ASSERT_EQ_INT(p.n, 4);
    for (int i = 0; i < 4; i++) ASSERT_EQ_INT(p.offs[i], 50 + 1000 * (uint64_t)i);
    pthread_mutex_unlock(&p.mu);
    read_all(fd, back, sizeof back, 50);
    ASSERT_EQ_MEM(back, buf, sizeof buf);
    ASSERT_EQ_INT(iox_fdatasync_here(x, fd), 0);

    fault_plan f = {.eio_off = 4096, .enospc_off = 8192, .sync_eio = true};
    pthread_mutex_init(&f.mu, NULL);
    iox_set_fault(x, plan_hook, &f);
    char other[100];
    memset(other, 'z', sizeof other);
    ASSERT_EQ_INT(iox_pwrite_here(x, fd, other, sizeof other, 4096), -EIO);
    ASSERT_EQ_INT(iox_pwrite_here(x, fd, other, sizeof other, 8192), -ENOSPC);
    ASSERT_EQ_INT(iox_fdatasync_here(x, fd), -EIO);
    pthread_mutex_lock(&f.mu);
    ASSERT_EQ_INT(f.calls[IOX_OP_PWRITE], 2);
    ASSERT_EQ_INT(f.calls[IOX_OP_FDATASYNC], 1);
    pthread_mutex_unlock(&f.mu);
    read_all(fd, back, sizeof other, 4096); /* the refused writes never reached the file */
    ASSERT_EQ_MEM(back, buf + 4096 - 50, sizeof other);
    read_all(fd, back, sizeof other, 8192);
    ASSERT_EQ_MEM(back, buf + 8192 - 50, sizeof other);
    iox_set_fault(x, NULL, NULL);
    ASSERT_EQ_INT(iox_pending(x), 0);
    expect_idle(x);
    iox_free(x);
    close(fd);
}

TEST(here_forms_uring) { here_forms(IOX_URING); }
TEST(here_forms_threads) { here_forms(IOX_THREADS); }

/* ---------------------------------------------------------------- blocking forms */

typedef struct nested {
    iox *x;
    int fd;
    int64_t rc;
    ctr *c;
} nested;

/* A callback that (wrongly) waits on its own engine gets -EDEADLK instead of hanging. */
static void nested_cb(void *ud, int64_t res)
{
    nested *n = ud;
    char b = 'z';
    n->rc = iox_pwrite_wait(n->x, n->fd, &b, 1, 0);
    pthread_mutex_lock(&n->c->mu);
    n->c->done++;
    pthread_cond_broadcast(&n->c->cv);
    pthread_mutex_unlock(&n->c->mu);
}

static void wait_forms(iox_backend b)
{
    iox *x = engine(b, 0, 1);
    int fd = tmpfile_fd();
    char buf[65536], back[65536];
    fill(buf, sizeof buf, 2);
    ASSERT_EQ_INT(iox_pwrite_wait(x, fd, buf, sizeof buf, 0), sizeof buf);
    ASSERT_EQ_INT(iox_pwrite_wait(x, fd, buf, 0, 0), 0); /* empty write completes */
    ASSERT_EQ_INT(iox_fdatasync_wait(x, fd), 0);
    read_all(fd, back, sizeof back, 0);
    ASSERT_EQ_MEM(back, buf, sizeof buf);

    /* kernel errors come back as -errno */
    ASSERT_EQ_INT(iox_pwrite_wait(x, -1, buf, 10, 0), -EBADF);
    ASSERT_EQ_INT(iox_fdatasync_wait(x, -1), -EBADF);
    int ro = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    ASSERT_TRUE(ro >= 0);
    ASSERT_EQ_INT(iox_pwrite_wait(x, ro, buf, 10, 0), -EBADF);
    close(ro);

    ctr c;
    ctr_init(&c);
    nested n = {.x = x, .fd = fd, .rc = 1, .c = &c};
    ASSERT_EQ_INT(iox_fdatasync(x, fd, nested_cb, &n), 0);
    ctr_wait(&c, 1);
    ASSERT_EQ_INT(n.rc, -EDEADLK);
    iox_free(x);
    close(fd);
}

TEST(wait_forms_uring) { wait_forms(IOX_URING); }
TEST(wait_forms_threads) { wait_forms(IOX_THREADS); }

/* ---------------------------------------------------------------- iox_free with work in flight */

typedef struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool open;
    bool entered;
} gate;

/* Holds the write at offset 0 inside the hook until the gate opens. */
static int64_t gate_hook(void *ud, iox_kind kind, int fd, size_t len, uint64_t off)
{
    gate *g = ud;
    if (kind != IOX_OP_PWRITE || off != 0) return 0;
    pthread_mutex_lock(&g->mu);
    g->entered = true;
    pthread_cond_broadcast(&g->cv);
    while (!g->open) pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
    return 0;
}

typedef struct first {
    iox *x;
    int fd;
    int64_t res;
    int calls;
    int resubmit_rc;
} first;

static void noop_cb(void *ud, int64_t res) {}

static void first_cb(void *ud, int64_t res)
{
    first *f = ud;
    f->calls++;
    f->res = res;
    f->resubmit_rc = iox_fdatasync(f->x, f->fd, noop_cb, NULL); /* must be refused: stopping */
}

static void *free_thread(void *p)
{
    iox_free(p);
    return NULL;
}

#define FI_N 200
#define FI_SYNCS 4096

static void free_inflight(iox_backend b)
{
    iox *x = engine(b, 8, 2);
    int fd = tmpfile_fd();
    gate g = {.open = false};
    pthread_mutex_init(&g.mu, NULL);
    pthread_cond_init(&g.cv, NULL);
    iox_set_fault(x, gate_hook, &g);

    static char data[(FI_N + 1) * 512];
    fill(data, sizeof data, 9);
    first f = {.x = x, .fd = fd, .res = 0, .resubmit_rc = 1};
    ASSERT_EQ_INT(iox_pwrite(x, fd, data, 512, 0, first_cb, &f), 0);
    pthread_mutex_lock(&g.mu);
    while (!g.entered) pthread_cond_wait(&g.cv, &g.mu); /* the first write is being issued */
    pthread_mutex_unlock(&g.mu);

    ctr c;
    ctr_init(&c);
    static slot s[FI_N + FI_SYNCS];
    for (int i = 0; i < FI_N; i++) {
        slot_arm(&s[i], &c);
        ASSERT_EQ_INT(iox_pwrite(x, fd, data + (i + 1) * 512, 512, (uint64_t)(i + 1) * 512, slot_cb, &s[i]), 0);
    }
    pthread_t t;
    ASSERT_EQ_INT(pthread_create(&t, NULL, free_thread, x), 0);
    /* Keep submitting until iox_free has started refusing: then everything before must complete. */
    int accepted = 0;
    for (;;) {
        ASSERT_TRUE(accepted < FI_SYNCS);
        slot_arm(&s[FI_N + accepted], &c);
        int rc = iox_fdatasync(x, fd, slot_cb, &s[FI_N + accepted]);
        if (rc == -ESHUTDOWN) break;
        ASSERT_EQ_INT(rc, 0);
        accepted++;
        usleep(200);
    }
    /* x is still alive: its first write is held in the hook. Let it go and wait for iox_free. */
    pthread_mutex_lock(&g.mu);
    g.open = true;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
    ASSERT_EQ_INT(pthread_join(t, NULL), 0);

    printf("info %s: iox_free completed %d writes and %d syncs in flight\n", iox_backend_name(b), FI_N + 1,
           accepted);
    ASSERT_EQ_INT(f.calls, 1);
    ASSERT_EQ_INT(f.res, 512);
    ASSERT_EQ_INT(f.resubmit_rc, -ESHUTDOWN);
    ASSERT_EQ_INT(c.done, FI_N + accepted);
    for (int i = 0; i < FI_N + accepted; i++) {
        ASSERT_EQ_INT(s[i].calls, 1);
        ASSERT_EQ_INT(s[i].res, i < FI_N ? 512 : 0);
    }
    char back[sizeof data];
    read_all(fd, back, sizeof back, 0);
    ASSERT_EQ_MEM(back, data, sizeof data);
    close(fd);
}

TEST(free_inflight_uring) { free_inflight(IOX_URING); }
TEST(free_inflight_threads) { free_inflight(IOX_THREADS); }

TEST(free_null_and_idle)
{
    iox_free(NULL);
    iox *x = engine(IOX_THREADS, 0, 3);
    ASSERT_EQ_INT(iox_pending(x), 0);
    iox_free(x); /* nothing submitted: must not hang */
}

/* ---------------------------------------------------------------- backend choice */

TEST(backend_names)
{
    iox_backend b = IOX_THREADS;
    ASSERT_EQ_INT(iox_backend_parse("auto", &b), 0);
    ASSERT_EQ_INT(b, IOX_AUTO);
    ASSERT_EQ_INT(iox_backend_parse("io_uring", &b), 0);
    ASSERT_EQ_INT(b, IOX_URING);
    ASSERT_EQ_INT(iox_backend_parse("threads", &b), 0);
    ASSERT_EQ_INT(b, IOX_THREADS);
    ASSERT_EQ_INT(iox_backend_parse("uring", &b), -1);
    ASSERT_EQ_INT(iox_backend_parse("", &b), -1);
    ASSERT_EQ_INT(iox_backend_parse(NULL, &b), -1);
    ASSERT_EQ_STR(iox_backend_name(IOX_AUTO), "auto");
    ASSERT_EQ_STR(iox_backend_name(IOX_URING), "io_uring");
    ASSERT_EQ_STR(iox_backend_name(IOX_THREADS), "threads");
}

TEST(auto_prefers_uring)
{
    int rc = uring_probe();
    if (rc < 0) TH_SKIP_NOW("io_uring unavailable on this machine (io_uring_setup: %s)", strerror(-rc));
    iox *x = NULL;
    char err[256];
    ASSERT_EQ_INT(iox_new(IOX_AUTO, 0, 0, &x, err, sizeof err), 0);
    ASSERT_EQ_INT(iox_in_use(x), IOX_URING);
    ASSERT_EQ_STR(iox_reason(x), "");
    iox_free(x);
}

/* Path of dualpipe-no-uring: $DUALPIPE_NO_URING, else next to this binary (CMake puts both in bin/). */
static void tool_path(char *out, size_t outlen)
{
    const char *env = getenv("DUALPIPE_NO_URING");
    if (env && env[0]) {
        snprintf(out, outlen, "%s", env);
        return;
    }
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    ASSERT_TRUE(n > 0);
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    ASSERT_TRUE(slash != NULL);
    *slash = '\0';
    snprintf(out, outlen, "%s/dualpipe-no-uring", self);
}

/* Runs argv (stderr to /dev/null when quiet), returns its exit status (or 128 + signal). */
static int run(char *const argv[], bool quiet)
{
    fflush(NULL);
    pid_t pid = fork();
    ASSERT_TRUE(pid >= 0);
    if (pid == 0) {
        int devnull = quiet ? open("/dev/null", O_WRONLY) : -1;
        if (devnull >= 0) dup2(devnull, 2);
        execv(argv[0], argv);
        _exit(126);
    }
    int st = 0;
    ASSERT_EQ_INT(waitpid(pid, &st, 0), pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

TEST(fallback_under_seccomp)
{
    char tool[PATH_MAX + 32], self[PATH_MAX];
    tool_path(tool, sizeof tool);
    if (access(tool, X_OK) != 0)
        TH_FAIL_AT("%s: %s (build the dualpipe-no-uring target or set DUALPIPE_NO_URING)", tool, strerror(errno));
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    ASSERT_TRUE(n > 0);
    self[n] = '\0';

    /* the tool itself: usage error, and the command's exit status passes through */
    char *usage[] = {tool, NULL};
    ASSERT_EQ_INT(run(usage, true), 2);
    char *sh[] = {tool, "/bin/sh", "-c", "exit 7", NULL};
    ASSERT_EQ_INT(run(sh, false), 7);
    char *tru[] = {tool, "/bin/true", NULL};
    ASSERT_EQ_INT(run(tru, false), 0);

    /* this binary's child mode, under the filter: checks the fallback and exits 0 */
    char *child[] = {tool, self, "--child-no-uring", NULL};
    ASSERT_EQ_INT(run(child, false), 0);
}

/*
 * --child-no-uring: run under dualpipe-no-uring. io_uring_setup must fail with EPERM, IOX_AUTO must
 * fall back to threads and say why, the fallback must work, and IOX_URING must refuse.
 */
static int child_no_uring(void)
{
    char want[128];
    snprintf(want, sizeof want, "io_uring_setup: %s", strerror(EPERM));
    ASSERT_EQ_INT(uring_probe(), -EPERM);
    /* the other two io_uring calls are refused before the kernel looks at their (bad) fd */
    errno = 0;
    ASSERT_EQ_INT(syscall(__NR_io_uring_enter, -1, 0, 0, 0, NULL, 0), -1);
    ASSERT_EQ_INT(errno, EPERM);
    errno = 0;
    ASSERT_EQ_INT(syscall(__NR_io_uring_register, -1, 0, NULL, 0), -1);
    ASSERT_EQ_INT(errno, EPERM);
    /* ... and everything else still works: without the filter this is EBADF */
    errno = 0;
    ASSERT_EQ_INT(syscall(__NR_close, -1), -1);
    ASSERT_EQ_INT(errno, EBADF);

    iox *x = NULL;
    char err[256] = "";
    ASSERT_EQ_INT(iox_new(IOX_AUTO, 0, 2, &x, err, sizeof err), 0);
    ASSERT_EQ_INT(iox_in_use(x), IOX_THREADS);
    ASSERT_EQ_STR(iox_reason(x), want);
    int fd = tmpfile_fd();
    char buf[4096], back[4096];
    fill(buf, sizeof buf, 4);
    ASSERT_EQ_INT(iox_pwrite_wait(x, fd, buf, sizeof buf, 0), sizeof buf);
    ASSERT_EQ_INT(iox_fdatasync_wait(x, fd), 0);
    read_all(fd, back, sizeof back, 0);
    ASSERT_EQ_MEM(back, buf, sizeof buf);
    iox_free(x);
    close(fd);

    x = NULL;
    err[0] = '\0';
    ASSERT_EQ_INT(iox_new(IOX_URING, 0, 0, &x, err, sizeof err), -1);
    ASSERT_TRUE(x == NULL);
    ASSERT_EQ_STR(err, want);
    printf("child: IOX_AUTO fell back to threads (%s); IOX_URING refused\n", want);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--child-no-uring") == 0) return child_no_uring();
    static const th_case cases[] = {
        T(many_pwrites_uring), T(many_pwrites_threads), T(punch_hole_uring), T(punch_hole_threads),
        T(fault_errors_uring), T(fault_errors_threads), T(short_writes_uring), T(short_writes_threads),
        T(wait_forms_uring),   T(wait_forms_threads),   T(here_forms_uring),   T(here_forms_threads),
        T(free_inflight_uring), T(free_inflight_threads),
        T(free_null_and_idle), T(backend_names),        T(auto_prefers_uring), T(fallback_under_seccomp),
    };
    return th_run(cases, sizeof cases / sizeof cases[0], argc, argv);
}
