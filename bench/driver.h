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
    double start_unix;      /* wall-clock time (Unix seconds) when the measured window began */
    uint64_t acked;         /* successful operations, warm-up and unmeasured phases included */
    uint64_t acked_bytes;   /* their body bytes (sent, plus read for OPEN) */
    struct bn_hist phase[BN_PHASE_MAX]; /* --phases: operations by the phase they completed in */
    uint64_t phase_bytes[BN_PHASE_MAX];
    uint64_t phase_errors[BN_PHASE_MAX];
    struct bn_hist_ts ts;   /* per second of the measured window, by completion time */
};

/** Initialises st (empty histograms and series). */
void bn_drv_stats_init(struct bn_stats *st);
/** Frees what the per-second series of st allocated. */
void bn_drv_stats_free(struct bn_stats *st);

/** Runs job to completion. measured: apply warm-up, --ops and --duration, record into st and show the
 *  progress line; otherwise run every worker until it returns 0 (errors are still counted into st when
 *  st is not NULL). label names the phase on the progress line. Returns 0, or -1 if libcurl could not
 *  be set up. */
int bn_drv_run(const struct bn_cfg *cfg, const struct bn_job *job, struct bn_stats *st, bool measured,
               const char *label);

#endif
