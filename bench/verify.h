/* bn_verify: reads back what the bench wrote. For every closed file in the table it asks the target for
 * the file's length (GETFILESTATUS) and reads the content (OPEN, SHA-256 over the bytes) and compares both
 * with what the generator produced, so a fast but wrong target cannot pass as a result. */
#ifndef DP_BENCH_VERIFY_H
#define DP_BENCH_VERIFY_H

#include "workload.h"

struct bn_vres {
    bool ran;
    uint64_t files;         /* files checked */
    uint64_t skipped;       /* files a write error left unverifiable */
    uint64_t bytes;         /* bytes read back */
    uint64_t mismatches;    /* files whose length or digest differ, or that could not be read */
};

/** Verifies every closed file of wl's table against cfg's seed; fills *out. 0, or -1 if libcurl or
 *  memory failed (a mismatch is not an error of this function: see out->mismatches). */
int bn_verify_run(const struct bn_cfg *cfg, struct bn_wl *wl, struct bn_vres *out);

#endif
