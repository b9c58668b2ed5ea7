/*
 * iox: asynchronous file I/O with two backends behind iox.h. Every request is a heap-allocated
 * iox_req put on one locked FIFO. The io_uring backend has a single thread that owns the ring: it
 * keeps a read of an eventfd in flight so that a submitter's eventfd write wakes it, moves up to
 * `depth` requests from the FIFO into SQEs, submits them in one io_uring_enter together with any
 * continuations, and reaps completions in a batch (a short write is re-issued for the remainder,
 * -EINTR/-EAGAIN re-issue the same step). The thread backend has a pool of workers that pop the
 * FIFO and loop over pwrite(2)/fdatasync(2)/fallocate(2) with the same rules. The fault hook is
 * consulted at the same point in both: right before each step is issued (first attempt, short-write
 * continuation, or retry after -EINTR/-EAGAIN). A request leaves the
 * pending count only after its callback returned, so iox_free, which lets the threads drain the
 * FIFO and in-flight work before it joins them, has run every callback when it returns. The _here
 * forms run the thread backend's loop on the caller's thread (same retries, same fault hook).
 */
#include "iox.h"

#include <errno.h>
#include <liburing.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define IOX_DEFAULT_DEPTH 256u
#define IOX_MAX_DEPTH 4096u
#define IOX_DEFAULT_THREADS 4u
#define IOX_MAX_THREADS 256u
/* One write step never asks the kernel for more than this; the rest is a continuation. */
#define IOX_MAX_STEP ((size_t)1 << 30)
/* user_data of the eventfd read SQE (requests use their address, never 0). */
#define IOX_UD_WAKE 0u

typedef struct iox_req {
    struct iox_req *next;
    iox_kind kind;
    int fd;
    int mode;           /* fallocate */
    const char *buf;    /* pwrite */
    size_t len;         /* pwrite: total bytes */
    size_t done;        /* pwrite: bytes written so far */
    uint64_t off;
    uint64_t flen;      /* fallocate length */
    int64_t res;        /* final result once complete */
    iox_cb cb;
    void *ud;
} iox_req;

struct iox {
    iox_backend backend;
    char reason[128];

    pthread_mutex_t mu;
    pthread_cond_t cv;      /* thread backend: work queued or stopping */
    iox_req *qhead, *qtail; /* submitted, not yet taken by an iox thread */
    uint64_t pending;       /* submitted, callback not yet returned */
    bool stopping;
    bool kicked;            /* io_uring: eventfd written since the ring thread last looked */
    iox_fault_fn fault;
    void *fault_ud;

    pthread_t *workers;     /* thread backend */
    unsigned nworkers;

    struct io_uring ring;   /* io_uring backend */
    bool ring_ok;
    int efd;
    uint64_t efd_val;       /* target of the eventfd read SQE; only the kernel writes it */
    unsigned depth;
    pthread_t uthread;
    bool uthread_ok;
};

/* Hook snapshot used by an iox thread while it issues steps. */
typedef struct iox_hook {
    iox_fault_fn fn;
    void *ud;
} iox_hook;

const char *iox_backend_name(iox_backend b)
{
    switch (b) {
    case IOX_AUTO: return "auto";
    case IOX_URING: return "io_uring";
    case IOX_THREADS: return "threads";
    }
    return "?";
}

int iox_backend_parse(const char *s, iox_backend *out)
{
    if (!s) return -1;
    if (strcmp(s, "auto") == 0) *out = IOX_AUTO;
    else if (strcmp(s, "io_uring") == 0) *out = IOX_URING;
    else if (strcmp(s, "threads") == 0) *out = IOX_THREADS;
    else return -1;
    return 0;
}

static iox_hook hook_get(iox *x)
{
    pthread_mutex_lock(&x->mu);
    iox_hook h = {x->fault, x->fault_ud};
    pthread_mutex_unlock(&x->mu);
    return h;
}

/*
 * Consult the fault hook for the next step of r. Returns 0 and the byte count to issue in *n (writes;
 * 0 for other kinds), or a negative errno the request must fail with, without issuing anything.
 */
static int64_t step_check(const iox_hook *h, const iox_req *r, size_t *n)
{
    size_t rest = r->kind == IOX_OP_PWRITE ? r->len - r->done : 0;
    if (rest > IOX_MAX_STEP) rest = IOX_MAX_STEP;
    *n = rest;
    if (!h->fn) return 0;
    size_t hlen = r->kind == IOX_OP_PWRITE ? r->len - r->done
                  : r->kind == IOX_OP_FALLOCATE ? (size_t)r->flen : 0;
    uint64_t hoff = r->kind == IOX_OP_PWRITE ? r->off + r->done
                    : r->kind == IOX_OP_FALLOCATE ? r->off : 0;
    int64_t v = h->fn(h->ud, r->kind, r->fd, hlen, hoff);
    if (v < 0) return v;
    if (v > 0 && r->kind == IOX_OP_PWRITE && (uint64_t)v < rest) *n = (size_t)v;
    return 0;
}

/* ---------------------------------------------------------------- request queue */

static int enqueue(iox *x, iox_req *r)
{
    bool wake = false;
    pthread_mutex_lock(&x->mu);
    if (x->stopping) {
        pthread_mutex_unlock(&x->mu);
        free(r);
        return -ESHUTDOWN;
    }
    r->next = NULL;
    if (x->qtail) x->qtail->next = r;
    else x->qhead = r;
    x->qtail = r;
    x->pending++;
    if (x->backend == IOX_THREADS) {
        pthread_cond_signal(&x->cv);
    } else if (!x->kicked) {
        x->kicked = true;
        wake = true;
    }
    pthread_mutex_unlock(&x->mu);
    if (wake) {
        uint64_t one = 1;
        /* Cannot fail short of a bug: the counter would have to reach 2^64-1. */
        while (write(x->efd, &one, sizeof one) < 0 && errno == EINTR) {
        }
    }
    return 0;
}

/* Caller holds x->mu. Takes up to max requests off the FIFO, oldest first. */
static iox_req *dequeue_locked(iox *x, unsigned max)
{
    iox_req *head = x->qhead, *last = NULL, *r = head;
    unsigned n = 0;
    while (r && n < max) {
        last = r;
        r = r->next;
        n++;
    }
    if (!last) return NULL;
    x->qhead = r;
    if (!r) x->qtail = NULL;
    last->next = NULL;
    return head;
}

/* Runs the callbacks of a list of completed requests, frees them, then drops them from pending. */
static void complete_list(iox *x, iox_req *list)
{
    uint64_t n = 0;
    while (list) {
        iox_req *r = list;
        list = r->next;
        r->cb(r->ud, r->res);
        free(r);
        n++;
    }
    if (n) {
        pthread_mutex_lock(&x->mu);
        x->pending -= n;
        pthread_mutex_unlock(&x->mu);
    }
}

static iox_req *req_new(iox_kind kind, int fd, iox_cb cb, void *ud)
{
    iox_req *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->kind = kind;
    r->fd = fd;
    r->cb = cb;
    r->ud = ud;
    return r;
}

/* ---------------------------------------------------------------- thread backend */

static void th_pause(void)
{
    struct timespec ts = {0, 1000 * 1000};
    nanosleep(&ts, NULL);
}

/* Executes r to completion with plain syscalls; returns the final result. */
static int64_t th_exec(iox *x, iox_req *r)
{
    for (;;) {
        iox_hook h = hook_get(x);
        size_t n;
        int64_t v = step_check(&h, r, &n);
        if (v < 0) return v;
        if (r->kind == IOX_OP_PWRITE) {
            if (r->done == r->len) return (int64_t)r->len;
            ssize_t w = pwrite(r->fd, r->buf + r->done, n, (off_t)(r->off + r->done));
            if (w < 0) {
                if (errno == EINTR) continue;
                if (errno == EAGAIN) {
                    th_pause();
                    continue;
                }
                return -errno;
            }
            if (w == 0) return -EIO; /* no progress on a regular file: do not loop forever */
            r->done += (size_t)w;
            if (r->done == r->len) return (int64_t)r->len;
            continue;
        }
        int rc = r->kind == IOX_OP_FDATASYNC
                     ? fdatasync(r->fd)
                     : fallocate(r->fd, r->mode, (off_t)r->off, (off_t)r->flen);
        if (rc == 0) return 0;
        if (errno == EINTR) continue;
        if (errno == EAGAIN) {
            th_pause();
            continue;
        }
        return -errno;
    }
}

static void *th_main(void *arg)
{
    iox *x = arg;
    pthread_mutex_lock(&x->mu);
    for (;;) {
        while (!x->qhead && !x->stopping) pthread_cond_wait(&x->cv, &x->mu);
        iox_req *r = dequeue_locked(x, 1);
        if (!r) break; /* stopping and drained */
        pthread_mutex_unlock(&x->mu);
        r->res = th_exec(x, r);
        complete_list(x, r);
        pthread_mutex_lock(&x->mu);
    }
    pthread_mutex_unlock(&x->mu);
    return NULL;
}

/* ---------------------------------------------------------------- io_uring backend */

/* The ring thread's private state for one loop. */
typedef struct ur_loop {
    iox *x;
    iox_hook hook;
    unsigned inflight;  /* requests the ring thread owns (SQE prepared or in the kernel) */
    bool wake_armed;    /* the eventfd read is in flight */
    iox_req *done;      /* completed, callbacks not yet run */
} ur_loop;

static struct io_uring_sqe *ur_sqe(ur_loop *l)
{
    struct io_uring_sqe *sqe;
    while (!(sqe = io_uring_get_sqe(&l->x->ring))) {
        /* The SQ is full (cannot happen with the ring sized depth + 1, but be safe): flush it. */
        int rc = io_uring_submit(&l->x->ring);
        if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) th_pause();
    }
    return sqe;
}

static void ur_finish(ur_loop *l, iox_req *r, int64_t res)
{
    r->res = res;
    r->next = l->done;
    l->done = r;
    l->inflight--;
}

/* Issues the next step of r (first attempt, retry or continuation) or completes it on a fault. */
static void ur_issue(ur_loop *l, iox_req *r)
{
    size_t n;
    int64_t v = step_check(&l->hook, r, &n);
    if (v < 0) {
        ur_finish(l, r, v);
        return;
    }
    if (r->kind == IOX_OP_PWRITE && r->done == r->len) { /* zero-length write */
        ur_finish(l, r, (int64_t)r->len);
        return;
    }
    struct io_uring_sqe *sqe = ur_sqe(l);
    switch (r->kind) {
    case IOX_OP_PWRITE:
        io_uring_prep_write(sqe, r->fd, r->buf + r->done, (unsigned)n, r->off + r->done);
        break;
    case IOX_OP_FDATASYNC:
        io_uring_prep_fsync(sqe, r->fd, IORING_FSYNC_DATASYNC);
        break;
    case IOX_OP_FALLOCATE:
        io_uring_prep_fallocate(sqe, r->fd, r->mode, (off_t)r->off, (off_t)r->flen);
        break;
    }
    io_uring_sqe_set_data(sqe, r);
}

static void ur_cqe(ur_loop *l, iox_req *r, int res)
{
    if (res == -EINTR || res == -EAGAIN) {
        ur_issue(l, r);
        return;
    }
    if (res < 0) {
        ur_finish(l, r, res);
        return;
    }
    if (r->kind != IOX_OP_PWRITE) {
        ur_finish(l, r, 0);
        return;
    }
    if (res == 0) {
        ur_finish(l, r, -EIO); /* no progress: do not loop forever */
        return;
    }
    r->done += (size_t)res;
    if (r->done >= r->len) ur_finish(l, r, (int64_t)r->len);
    else ur_issue(l, r); /* short write: continue with the remainder */
}

static void ur_arm_wake(ur_loop *l)
{
    struct io_uring_sqe *sqe = ur_sqe(l);
    io_uring_prep_read(sqe, l->x->efd, &l->x->efd_val, sizeof l->x->efd_val, 0);
    io_uring_sqe_set_data64(sqe, IOX_UD_WAKE);
    l->wake_armed = true;
}

static void ur_reap(ur_loop *l)
{
    struct io_uring_cqe *cqe;
    unsigned head, n = 0;
    io_uring_for_each_cqe(&l->x->ring, head, cqe) {
        n++;
        if (cqe->user_data == IOX_UD_WAKE) l->wake_armed = false;
        else ur_cqe(l, (iox_req *)(uintptr_t)cqe->user_data, cqe->res);
    }
    io_uring_cq_advance(&l->x->ring, n);
}

static void *ur_main(void *arg)
{
    ur_loop l = {.x = arg};
    iox *x = l.x;
    for (;;) {
        pthread_mutex_lock(&x->mu);
        x->kicked = false;
        iox_req *take = dequeue_locked(x, x->depth - l.inflight);
        bool stopping = x->stopping, qempty = x->qhead == NULL;
        l.hook.fn = x->fault;
        l.hook.ud = x->fault_ud;
        pthread_mutex_unlock(&x->mu);

        while (take) {
            iox_req *r = take;
            take = r->next;
            r->next = NULL;
            l.inflight++;
            ur_issue(&l, r);
        }
        if (!stopping && !l.wake_armed) ur_arm_wake(&l);
        if (l.done) {
            /* Some finished without reaching the kernel: run them, then look at the FIFO again. */
            io_uring_submit(&x->ring);
            iox_req *d = l.done;
            l.done = NULL;
            complete_list(x, d);
            continue;
        }
        if (stopping && qempty && l.inflight == 0 && !l.wake_armed) break;

        int rc = io_uring_submit_and_wait(&x->ring, 1);
        if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY && rc != -ETIME) th_pause();
        ur_reap(&l);
        iox_req *d = l.done;
        l.done = NULL;
        io_uring_submit(&x->ring); /* continuations prepared while reaping go out before callbacks */
        complete_list(x, d);
    }
    return NULL;
}

/* Sets up the ring and its eventfd. Returns 0 or -errno with what failed in err. */
static int ur_setup(iox *x, char *err, size_t errlen)
{
    x->efd = eventfd(0, EFD_CLOEXEC);
    if (x->efd < 0) {
        int e = errno;
        snprintf(err, errlen, "eventfd: %s", strerror(e));
        return -e;
    }
    int rc = io_uring_queue_init(x->depth + 1, &x->ring, 0);
    if (rc < 0) {
        snprintf(err, errlen, "io_uring_setup: %s", strerror(-rc));
        return rc;
    }
    x->ring_ok = true;
    struct io_uring_probe *p = io_uring_get_probe_ring(&x->ring);
    if (!p) {
        snprintf(err, errlen, "io_uring_register(PROBE): cannot probe the ring's operations");
        return -ENOSYS;
    }
    static const struct {
        int op;
        const char *name;
    } need[] = {{IORING_OP_WRITE, "IORING_OP_WRITE"}, {IORING_OP_READ, "IORING_OP_READ"},
                {IORING_OP_FSYNC, "IORING_OP_FSYNC"}, {IORING_OP_FALLOCATE, "IORING_OP_FALLOCATE"}};
    rc = 0;
    for (size_t i = 0; i < sizeof need / sizeof need[0]; i++) {
        if (!io_uring_opcode_supported(p, need[i].op)) {
            snprintf(err, errlen, "io_uring: the kernel lacks %s", need[i].name);
            rc = -ENOSYS;
            break;
        }
    }
    io_uring_free_probe(p);
    return rc;
}

static void ur_teardown(iox *x)
{
    if (x->ring_ok) io_uring_queue_exit(&x->ring);
    x->ring_ok = false;
    if (x->efd >= 0) close(x->efd);
    x->efd = -1;
}

/* ---------------------------------------------------------------- engine */

/* Starts fn on a new thread with every signal blocked, so signals go to the application's threads. */
static int spawn(pthread_t *t, void *(*fn)(void *), void *arg)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(t, NULL, fn, arg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

/* Stops and joins whatever threads run, then frees everything. Callers have nothing queued anew. */
static void engine_destroy(iox *x)
{
    pthread_mutex_lock(&x->mu);
    x->stopping = true;
    pthread_cond_broadcast(&x->cv);
    pthread_mutex_unlock(&x->mu);
    if (x->uthread_ok) {
        uint64_t one = 1;
        while (write(x->efd, &one, sizeof one) < 0 && errno == EINTR) {
        }
        pthread_join(x->uthread, NULL);
    }
    for (unsigned i = 0; i < x->nworkers; i++) pthread_join(x->workers[i], NULL);
    ur_teardown(x);
    free(x->workers);
    pthread_cond_destroy(&x->cv);
    pthread_mutex_destroy(&x->mu);
    free(x);
}

int iox_new(iox_backend want, unsigned depth, unsigned threads, iox **out, char *err, size_t errlen)
{
    char why[sizeof ((iox *)0)->reason] = "";
    int ret = -1;
    iox *x = calloc(1, sizeof *x);
    if (!x) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    x->efd = -1;
    x->depth = depth == 0 ? IOX_DEFAULT_DEPTH : depth > IOX_MAX_DEPTH ? IOX_MAX_DEPTH : depth;
    if (threads == 0) threads = IOX_DEFAULT_THREADS;
    if (threads > IOX_MAX_THREADS) threads = IOX_MAX_THREADS;
    pthread_mutex_init(&x->mu, NULL);
    pthread_cond_init(&x->cv, NULL);

    if (want == IOX_AUTO || want == IOX_URING) {
        if (ur_setup(x, why, sizeof why) == 0) {
            x->backend = IOX_URING;
            int rc = spawn(&x->uthread, ur_main, x);
            if (rc != 0) {
                snprintf(err, errlen, "pthread_create: %s", strerror(rc));
                goto out;
            }
            (void)pthread_setname_np(x->uthread, "dp-iox-uring");
            x->uthread_ok = true;
            ret = 0;
            goto out;
        }
        ur_teardown(x);
        if (want == IOX_URING) {
            snprintf(err, errlen, "%s", why);
            goto out;
        }
        snprintf(x->reason, sizeof x->reason, "%s", why);
    } else if (want != IOX_THREADS) {
        snprintf(err, errlen, "unknown I/O backend %d", (int)want);
        goto out;
    }

    x->backend = IOX_THREADS;
    x->workers = calloc(threads, sizeof *x->workers);
    if (!x->workers) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    for (unsigned i = 0; i < threads; i++) {
        int rc = spawn(&x->workers[i], th_main, x);
        if (rc != 0) {
            snprintf(err, errlen, "pthread_create: %s", strerror(rc));
            goto out;
        }
        (void)pthread_setname_np(x->workers[i], "dp-iox");
        x->nworkers++;
    }
    ret = 0;
out:
    if (ret != 0) {
        engine_destroy(x);
        return -1;
    }
    *out = x;
    return 0;
}

iox_backend iox_in_use(const iox *x)
{
    return x->backend;
}

const char *iox_reason(const iox *x)
{
    return x->reason;
}

int iox_pwrite(iox *x, int fd, const void *buf, size_t len, uint64_t off, iox_cb cb, void *ud)
{
    iox_req *r = req_new(IOX_OP_PWRITE, fd, cb, ud);
    if (!r) return -ENOMEM;
    r->buf = buf;
    r->len = len;
    r->off = off;
    return enqueue(x, r);
}

int iox_fdatasync(iox *x, int fd, iox_cb cb, void *ud)
{
    iox_req *r = req_new(IOX_OP_FDATASYNC, fd, cb, ud);
    if (!r) return -ENOMEM;
    return enqueue(x, r);
}

int iox_fallocate(iox *x, int fd, int mode, uint64_t off, uint64_t len, iox_cb cb, void *ud)
{
    iox_req *r = req_new(IOX_OP_FALLOCATE, fd, cb, ud);
    if (!r) return -ENOMEM;
    r->mode = mode;
    r->off = off;
    r->flen = len;
    return enqueue(x, r);
}

/* ---------------------------------------------------------------- blocking forms */

typedef struct iox_waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    int64_t res;
} iox_waiter;

static void waiter_cb(void *ud, int64_t res)
{
    iox_waiter *w = ud;
    pthread_mutex_lock(&w->mu);
    w->res = res;
    w->done = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* True on an iox thread, where waiting for a completion would wait for ourselves. */
static bool on_iox_thread(iox *x)
{
    pthread_t me = pthread_self();
    if (x->uthread_ok && pthread_equal(me, x->uthread)) return true;
    for (unsigned i = 0; i < x->nworkers; i++)
        if (pthread_equal(me, x->workers[i])) return true;
    return false;
}

/* Submits one request and waits for its callback; -EDEADLK instead of a hang on an iox thread. */
static int64_t wait_for(iox *x, iox_kind kind, int fd, const void *buf, size_t len, uint64_t off)
{
    if (on_iox_thread(x)) return -EDEADLK;
    iox_waiter w = {.done = false, .res = 0};
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    int rc = kind == IOX_OP_PWRITE ? iox_pwrite(x, fd, buf, len, off, waiter_cb, &w)
                                   : iox_fdatasync(x, fd, waiter_cb, &w);
    int64_t res = rc;
    if (rc == 0) {
        pthread_mutex_lock(&w.mu);
        while (!w.done) pthread_cond_wait(&w.cv, &w.mu);
        res = w.res;
        pthread_mutex_unlock(&w.mu);
    }
    pthread_cond_destroy(&w.cv);
    pthread_mutex_destroy(&w.mu);
    return res;
}

int64_t iox_pwrite_wait(iox *x, int fd, const void *buf, size_t len, uint64_t off)
{
    return wait_for(x, IOX_OP_PWRITE, fd, buf, len, off);
}

int64_t iox_fdatasync_wait(iox *x, int fd)
{
    return wait_for(x, IOX_OP_FDATASYNC, fd, NULL, 0, 0);
}

int64_t iox_pwrite_here(iox *x, int fd, const void *buf, size_t len, uint64_t off)
{
    iox_req r = {.kind = IOX_OP_PWRITE, .fd = fd, .buf = buf, .len = len, .off = off};
    return th_exec(x, &r);
}

int64_t iox_fdatasync_here(iox *x, int fd)
{
    iox_req r = {.kind = IOX_OP_FDATASYNC, .fd = fd};
    return th_exec(x, &r);
}

void iox_set_fault(iox *x, iox_fault_fn fn, void *ud)
{
    pthread_mutex_lock(&x->mu);
    x->fault = fn;
    x->fault_ud = ud;
    pthread_mutex_unlock(&x->mu);
}

uint64_t iox_pending(iox *x)
{
    pthread_mutex_lock(&x->mu);
    uint64_t n = x->pending;
    pthread_mutex_unlock(&x->mu);
    return n;
}

void iox_free(iox *x)
{
    if (!x) return;
    engine_destroy(x);
}
