/*
 * tiox: helpers shared by the unit tests that run on both iox backends (test_spool, test_journal):
 * an engine of the asked backend, skipping the case (exit 77) where this machine cannot set up an
 * io_uring, and removal of a test's scratch directory. Include after tharness.h.
 */
#ifndef DP_TIOX_H
#define DP_TIOX_H

#include <ftw.h>
#include <liburing.h>
#include <stdio.h>
#include <string.h>

#include "iox.h"

static inline int tiox_rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    (void)st, (void)flag, (void)f;
    return remove(p);
}

/* Remove dir and everything below it (best effort). */
static inline void tiox_rm_tree(const char *dir)
{
    nftw(dir, tiox_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* An iox engine of backend b with default sizes; skips the case when io_uring is not available. */
static inline iox *tiox_engine(iox_backend b)
{
    if (b == IOX_URING) {
        struct io_uring r;
        int rc = io_uring_queue_init(4, &r, 0);
        if (rc < 0) TH_SKIP_NOW("io_uring unavailable on this machine (io_uring_setup: %s)", strerror(-rc));
        io_uring_queue_exit(&r);
    }
    iox *x = NULL;
    char err[256] = "";
    if (iox_new(b, 0, 0, &x, err, sizeof err) != 0) TH_FAIL_AT("iox_new: %s", err);
    ASSERT_EQ_INT(iox_in_use(x), b);
    return x;
}

/* Case case_NAME(backend) as two tests: NAME_threads and NAME_uring. */
#define TIOX_BOTH(name)                                                                            \
    TEST(name##_threads) { case_##name(IOX_THREADS); }                                             \
    TEST(name##_uring) { case_##name(IOX_URING); }

#endif
