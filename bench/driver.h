/* bn_drv: runs one phase of the bench on libcurl multi: `concurrency` workers, one easy handle each, all
 * driven from one thread and one multi handle (keep-alive connections are pooled in the multi). A job
 * hands each worker its next request and gets every result back; the driver follows a 307 once (the
 * hadoop two-step flow, or an adls server that redirects), measures latency per operation, and keeps the
 * statistics of a measured phase. */
#ifndef DP_BENCH_DRIVER_H
#define DP_BENCH_DRIVER_H

#include "bench.h"
#include "hist.h"

struct bn_job {
    /* Fills *req with worker w's next request and returns 1, or returns 0 when w has nothing more to do.
     * `stopping` turns true once the phase's --ops or --duration budget is spent: the job then finishes
     * what it must (close open files) and returns 0. */
    int (*next)(void *ctx, unsigned w, bool stopping, struct bn_req *req);
    /* Result of worker w's request; returns true if it counts as a success. */
    bool (*done)(void *ctx, unsigned w, const struct bn_req *req, const struct bn_res *res);
    void *ctx;
};

#define BN_STATUS_MAX 600

struct bn_stats {
    struct bn_hist op[BN_OP_COUNT];
    struct bn_hist all;
    uint64_t ops;           /* operations recorded (after warm-up) */
    uint64_t bytes;         /* body bytes sent plus received by recorded operations */
    uint64_t errors;
    uint64_t err_status[BN_STATUS_MAX]; /* [0] = transport errors; [599] = any status >= 599 */
    double elapsed;         /* seconds of the measured window */
};

/** Initialises st (empty histograms). */
void bn_drv_stats_init(struct bn_stats *st);

/** Runs job to completion. measured: apply warm-up, --ops and --duration, record into st and show the
 *  progress line; otherwise run every worker until it returns 0 (errors are still counted into st when
 *  st is not NULL). label names the phase on the progress line. Returns 0, or -1 if libcurl could not
 *  be set up. */
int bn_drv_run(const struct bn_cfg *cfg, const struct bn_job *job, struct bn_stats *st, bool measured,
               const char *label);

#endif
