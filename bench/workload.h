/* bn_wl: the workloads as jobs for the driver, and the table of files the bench wrote. Every worker owns
 * the files whose number is congruent to its id modulo --concurrency and sends their requests in order, so
 * each file's appends carry explicit, increasing offsets. The file table records how many bytes of each
 * file were acknowledged, which is what verification later expects to read back. */
#ifndef DP_BENCH_WORKLOAD_H
#define DP_BENCH_WORKLOAD_H

#include "bench.h"
#include "driver.h"

enum bn_fstate { BN_F_UNUSED, BN_F_OPEN, BN_F_CLOSED, BN_F_BROKEN };

struct bn_files {
    uint64_t n;             /* files 0..n-1 have an entry */
    uint64_t cap;
    uint64_t *len;          /* acknowledged bytes */
    unsigned char *state;   /* enum bn_fstate */
};

struct bn_wl_worker;

struct bn_wl {
    const struct bn_cfg *cfg;
    struct bn_files files;
    struct bn_wl_worker *w;
    unsigned char (*digest)[32]; /* read workload: expected SHA-256 per file */
    char run_id[32];        /* meta workload: per-run directory name */
    uint64_t read_bad;      /* read workload: responses whose length or digest did not match */
    bool oom;
};

/** Prepares wl for cfg (per-worker state, empty file table). 0 or -1 (out of memory). */
int bn_wl_init(struct bn_wl *wl, const struct bn_cfg *cfg);
/** Frees what bn_wl_init and the jobs allocated. */
void bn_wl_free(struct bn_wl *wl);
/** Job writing files: CREATE, K APPENDs of S bytes at explicit offsets, zero-length APPEND syncFlag=CLOSE. */
void bn_wl_job_write(struct bn_wl *wl, struct bn_job *job);
/** Job reading (OPEN) the files already in the table, checking length and SHA-256 of each response. */
int bn_wl_job_read(struct bn_wl *wl, struct bn_job *job);
/** Job cycling MKDIRS, SETACL, RENAME and LISTSTATUS under PREFIX/meta/RUN/wN. */
void bn_wl_job_meta(struct bn_wl *wl, struct bn_job *job);
/** Marks files 0..n-1 as closed with `len` bytes each (the verify workload's expectation). */
int bn_wl_assume_files(struct bn_wl *wl, uint64_t n, uint64_t len);
/** Writes the WebHDFS target "/webhdfs/v1PATH?op=OP" for file f, OP and extra query included. */
int bn_wl_target(const struct bn_cfg *cfg, uint64_t f, const char *query, char *out, size_t outsz);
/** The file's path (PREFIX/fNNNNNN) for messages. */
int bn_wl_path(const struct bn_cfg *cfg, uint64_t f, char *out, size_t outsz);
/** Lower-case name of an operation kind, as used in the report. */
const char *bn_wl_op_name(enum bn_op op);

#endif
