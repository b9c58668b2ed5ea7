/*
 * iox: asynchronous file I/O for the journal and the spool, behind one interface with two backends.
 *
 *  - io_uring (liburing): one completion thread owns the ring. Submissions from any thread go onto
 *    a locked queue and wake that thread (eventfd registered with the ring); it turns them into SQEs,
 *    submits, reaps CQEs and runs the callbacks.
 *  - threads: a small pool of worker threads doing plain pwrite(2)/fdatasync(2)/fallocate(2).
 *
 * IOX_AUTO tries io_uring first and falls back to threads when ring setup fails (ENOSYS, EPERM,
 * ENOMEM: default Docker/podman seccomp profiles block io_uring_setup); iox_reason() says why, and
 * the caller logs the choice. Both backends give the same guarantees: a write completes whole or
 * fails (a short write is continued from where it stopped, so callbacks never see a partial count),
 * callbacks run exactly once on an iox thread (never inside the submitting call), and requests on
 * one fd are not reordered with respect to each other only when the caller waits for one before
 * submitting the next (there is no implicit ordering: sync after the writes it must cover completed).
 *
 * The fault hook is the test shim: it sees every request before it reaches the kernel and may make
 * it fail with an errno or turn a write into a short one (the backend then continues the rest, as it
 * does for a real short write). Production code never sets it.
 *
 * Logs nothing. Thread-safe: every function may be called from any thread, including from callbacks.
 */
#ifndef DP_IOX_H
#define DP_IOX_H

#include <stddef.h>
#include <stdint.h>

typedef struct iox iox;

typedef enum iox_backend { IOX_AUTO = 0, IOX_URING, IOX_THREADS } iox_backend;

typedef enum iox_kind { IOX_OP_PWRITE = 0, IOX_OP_FDATASYNC, IOX_OP_FALLOCATE } iox_kind;

/** Completion: res is the byte count of a whole write (== len), 0 for fdatasync/fallocate, or -errno. */
typedef void (*iox_cb)(void *ud, int64_t res);

/**
 * Test shim. Called on the iox thread for every request, and for every continuation of a short write,
 * before it is issued: return 0 to issue it unchanged, a negative errno to fail the request with it
 * without issuing anything (-EIO, -ENOSPC ...), or for a write a positive n < len to issue only the
 * first n bytes (a short write the backend must continue).
 */
typedef int64_t (*iox_fault_fn)(void *ud, iox_kind kind, int fd, size_t len, uint64_t off);

/** Name of a backend: "auto", "io_uring", "threads". */
const char *iox_backend_name(iox_backend b);
/** Parse "auto" | "io_uring" | "threads". Returns 0 or -1. */
int iox_backend_parse(const char *s, iox_backend *out);

/**
 * Create an I/O engine. want: IOX_AUTO (io_uring, else threads), IOX_URING (fail if the ring cannot be
 * set up) or IOX_THREADS. depth: ring entries / requests in flight (0 = 256). threads: pool size for
 * the thread backend (0 = 4). Returns 0 and *out, or -1 with a message in err.
 */
int iox_new(iox_backend want, unsigned depth, unsigned threads, iox **out, char *err, size_t errlen);
/** The backend actually in use (IOX_URING or IOX_THREADS). */
iox_backend iox_in_use(const iox *x);
/** Why IOX_AUTO fell back to threads ("io_uring_setup: Operation not permitted"), or "" when it did not. */
const char *iox_reason(const iox *x);

/**
 * Write len bytes of buf at off of fd. buf must stay valid and unchanged until cb runs. Returns 0
 * (cb will run) or -ESHUTDOWN (the engine is stopping; cb will not run) or -ENOMEM.
 */
int iox_pwrite(iox *x, int fd, const void *buf, size_t len, uint64_t off, iox_cb cb, void *ud);
/** fdatasync(fd). Same returns. */
int iox_fdatasync(iox *x, int fd, iox_cb cb, void *ud);
/** fallocate(fd, mode, off, len) (mode 0 preallocates, FALLOC_FL_PUNCH_HOLE|KEEP_SIZE frees). Same returns. */
int iox_fallocate(iox *x, int fd, int mode, uint64_t off, uint64_t len, iox_cb cb, void *ud);

/** Blocking forms for threads other than an iox thread: submit and wait. Return the completion's res. */
int64_t iox_pwrite_wait(iox *x, int fd, const void *buf, size_t len, uint64_t off);
int64_t iox_fdatasync_wait(iox *x, int fd);

/**
 * The same steps run on the calling thread with plain syscalls (the thread backend's loop: short
 * writes continued, EINTR/EAGAIN retried, the fault hook consulted before each step), whatever the
 * backend: for a thread that would only sit waiting for the engine's answer, without two thread
 * hand-offs. Return the final result (bytes written or 0, or -errno).
 */
int64_t iox_pwrite_here(iox *x, int fd, const void *buf, size_t len, uint64_t off);
int64_t iox_fdatasync_here(iox *x, int fd);

/** Install (or with fn NULL remove) the fault hook. Tests only. */
void iox_set_fault(iox *x, iox_fault_fn fn, void *ud);

/** Requests submitted and not completed. */
uint64_t iox_pending(iox *x);

/**
 * Stop: wait for every submitted request to complete (their callbacks run), join the threads, free.
 * Must not be called from an iox callback. NULL is fine.
 */
void iox_free(iox *x);

#endif
