/* Types shared by the dualpipe-bench modules: the run configuration the CLI fills in, the operation kinds
 * the statistics are kept by, and one HTTP request/response as the workloads hand them to the driver. No
 * functions here; each module (bn_hist, bn_data, bn_wl, bn_verify, bn_drv, bn_rep) has its own header. */
#ifndef DP_BENCH_BENCH_H
#define DP_BENCH_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum bn_flow { BN_FLOW_ADLS, BN_FLOW_HADOOP };

enum bn_workload { BN_WL_INGEST, BN_WL_SMALL, BN_WL_LARGE, BN_WL_READ, BN_WL_META, BN_WL_VERIFY };

enum bn_op {
    BN_OP_CREATE,
    BN_OP_APPEND,
    BN_OP_CLOSE,
    BN_OP_OPEN,
    BN_OP_MKDIRS,
    BN_OP_RENAME,
    BN_OP_SETACL,
    BN_OP_LIST,
    BN_OP_STATUS,
    BN_OP_COUNT
};

enum bn_method { BN_GET, BN_PUT, BN_POST, BN_PATCH };

/* The protocol the bench speaks: WebHDFS (the proxy's front, a Gen1 emulator, nginx in front of them) or
 * the Gen2 DFS REST API with a SAS (the Gen2 emulator directly, to measure its own ingest rate). */
enum bn_api { BN_API_WEBHDFS, BN_API_DFS };

#define BN_DFS_VERSION "2021-06-08"

/* --phases: at most this many phases (split points + 1), each with its own latency histogram. */
#define BN_PHASE_MAX 8


struct bn_cfg {
    char url[512];          /* WebHDFS base, no trailing slash */
    char prefix[256];       /* absolute path prefix for everything the bench writes */
    enum bn_workload workload;
    enum bn_flow flow;
    enum bn_api api;
    char sas[1024];         /* dfs: SAS query string (without '?') added to every request */
    char label[128];        /* free text copied to the JSON (which system a comparison run measured) */
    double phase_at[BN_PHASE_MAX - 1]; /* --phases: increasing split points, seconds into the window */
    unsigned nphase_at;
    unsigned concurrency;
    uint64_t files;         /* 0 = unbounded (stop on --ops / --duration) */
    uint64_t appends;       /* K */
    uint64_t size;          /* S, bytes per append */
    double duration;        /* seconds, 0 = none */
    uint64_t ops;           /* 0 = none */
    double warmup;          /* seconds */
    uint64_t seed;
    const char *json_path;
    bool verify;
    bool progress;          /* stdout is a terminal */
};

#define BN_TARGET_MAX 1536
#define BN_BODY_KEEP 8192

/* One logical operation. The driver sends it to cfg->url + target; `flag` (write=true, append=true,
 * read=true, or empty) is added in the adls flow and left out in the hadoop flow, where the data step goes
 * to the 307 Location. A body, when len > 0 or `upload`, is bytes [off, off + len) of `file`. */
struct bn_req {
    enum bn_op op;
    enum bn_method method;
    char target[BN_TARGET_MAX];
    const char *flag;
    bool upload;            /* PUT/POST carries a (possibly empty) generated body */
    uint64_t file;
    uint64_t off;
    uint64_t len;
    bool hash;              /* SHA-256 the response body */
    long expect;            /* status that means success */
};

struct bn_res {
    long status;            /* 0 = transport error */
    int curl_code;
    uint64_t ns;            /* latency of the whole operation, both steps in the two-step flow */
    uint64_t body_bytes;
    unsigned char digest[32];
    char body[BN_BODY_KEEP + 1]; /* first bytes of the body, NUL-terminated */
    size_t body_len;
};

#endif
