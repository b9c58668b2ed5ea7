/* bn_rep: the results of a run, as a human table on stdout and as a JSON file (--json). Throughput is in
 * MB/s (10^6 bytes) and ops/s over the measured window; latencies are in milliseconds in the table and
 * microseconds in the JSON, from the histograms (p50, p90, p99, p99.9, max). */
#ifndef DP_BENCH_REPORT_H
#define DP_BENCH_REPORT_H

#include "bench.h"
#include "driver.h"
#include "verify.h"

struct bn_rep {
    const struct bn_cfg *cfg;
    const struct bn_stats *st;
    const struct bn_vres *verify;
    uint64_t files_written;
    uint64_t read_bad;      /* read workload: responses that did not match */
    bool ok;                /* the run's verdict (exit 0) */
};

/** Prints the human table to stdout. */
void bn_rep_print(const struct bn_rep *r);
/** Writes the JSON report to path. 0, or -1 with a message on stderr. */
int bn_rep_json(const struct bn_rep *r, const char *path);

#endif
