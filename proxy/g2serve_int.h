/*
 * g2serve_int: what g2serve.c (workers, queue, per-path locks, Gen2 exchanges, answers) and
 * g2serve_ops.c (one function per WebHDFS op) share. Not for use outside proxy/g2serve*.c.
 */
#ifndef DP_G2SERVE_INT_H
#define DP_G2SERVE_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "dbuf.h"
#include "g2answer.h"
#include "g2serve.h"
#include "idmap.h"
#include "rid.h"
#include "xlate.h"

#define G2S_PATH_MAX 4096
#define G2S_JSON_MAX (1u << 20)         /* Gen2 answers read into memory (listings: 5000 entries fit) */
#define G2S_COPY_CHUNK (4u << 20)       /* CONCAT's copy: bytes per ranged GET + append */
#define G2S_LIST_PAGE 5000u             /* Gen2's maxResults ceiling */
#define G2S_BATCH_PAGE 1000u            /* LISTSTATUS_BATCH page (HDFS dfs.ls.limit's default) */
#define G2S_CURSORS 1024                /* listing cursors remembered (last name -> Gen2 continuation) */
#define G2S_RETRY_AFTER_S 5
#define G2S_LEASE_MS (10 * 60 * 1000) /* a lease nobody renews for this long is stale (Gen1: ~10 min) */
#define G2S_FILE_MODE "644"            /* WebHDFS's default permissions when a request gives none */
#define G2S_DIR_MODE "755"

/* One remembered listing position: after entry `after` of Gen2 directory `dir` (fs/path), Gen2's
 * continuation is `token`. */
typedef struct g2s_cursor {
    char *key;                           /* "fs\n dir\n after" */
    char *token;
} g2s_cursor;

/* A Gen1 write lease (leaseid) held on a path, until the holder's syncFlag=CLOSE or G2S_LEASE_MS of silence. */
typedef struct g2s_lease {
    struct g2s_lease *next;
    char *key;                           /* "fs/path" */
    char id[128];
    int64_t expiry_ms;                   /* monotonic */
} g2s_lease;

/* A path some worker holds for a data write (refs: holders and waiters). */
typedef struct g2s_lock {
    struct g2s_lock *next;
    char *key;                           /* "fs/path" */
    bool held;
    unsigned refs;
    pthread_cond_t cv;
} g2s_lock;

typedef struct g2s_job {
    struct g2s_job *next;
    g2s_request rq;
} g2s_job;

struct g2s {
    const dp_config *cfg;
    gen2c *g2;
    httpc *http;
    idm_watch *ids;                      /* gen2.identity_map, or NULL */
    idm_policy id_pol;
    unsigned list_max;
    /* queue and workers */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    g2s_job *head, *tail;
    bool stopping;
    pthread_t *th;
    unsigned nth;
    /* per-path locks and listing cursors (under mu) */
    g2s_lock *locks;
    g2s_lease *leases;
    g2s_cursor cursors[G2S_CURSORS];
    unsigned cursor_next;
    /* metrics */
    metrics_counter *mx_exchanges, *mx_nothing, *mx_lock_waits;
};

/* One request being served by a worker. */
typedef struct g2s_ctx {
    g2s *s;
    const g2s_request *rq;
    const whreq *wr;
    idm_map *map;                        /* reference held while serving, or NULL */
    char fs[64];
    char path[G2S_PATH_MAX];             /* inside fs, "" for the filesystem root */
    bool answered;
    bool changed, lost;                  /* g2s_answer's: a modifying request succeeded or was lost */
    int64_t offset;                      /* g2s_answer's: where an append's bytes landed, -1 */
    int64_t mtime_ms;                    /* g2s_answer's: a created file's modification time, -1 */
    char fleet_lease[RID_MAX + 1];       /* a Gen2 lease held for a fleet's append: released before the answer */
} g2s_ctx;

/* A Gen2 exchange's answer (httpc_resp owned). */
typedef httpc_resp g2resp;

/** Send one request to fs/path and wait. body: memory (mem, len) or fd range when fd >= 0. out_max: bytes
 *  of answer body kept (0: discarded). Never NULL: a failed submit comes back as an HTTPC_E_CANCELLED
 *  answer. The caller frees with g2s__free. */
g2resp *g2s__call(g2s_ctx *c, const char *method, const char *path, const char *query, const char *const *hdrs,
                  const void *mem, int fd, uint64_t off, uint64_t len, size_t out_max);
/** The same for an xlate_g2req. */
g2resp *g2s__xcall(g2s_ctx *c, const char *path, const xlate_g2req *x);
void g2s__free(g2resp *r);
/** True for an HTTP answer with status 2xx. */
bool g2s__ok(const g2resp *r);
/** Error code of an answer (x-ms-error-code or the JSON body). */
const char *g2s__code(const g2resp *r, char *buf, size_t cap);

/** Release c->fleet_lease if one is held (g2serve_write.c; the answer calls it first). */
void g2s__fleet_release(g2s_ctx *c);
/** Answer (once): status with an optional JSON body. */
void g2s__answer(g2s_ctx *c, int status, const char *json, size_t len);
/** Answer a RemoteException. */
__attribute__((format(printf, 4, 5))) void g2s__fail(g2s_ctx *c, int status, const char *exception,
                                                     const char *fmt, ...);
/** Answer a whreq_err. */
void g2s__fail_err(g2s_ctx *c, const whreq_err *e);
/** Answer the WebHDFS error for a failed Gen2 exchange (what names path in the message). */
void g2s__fail_gen2(g2s_ctx *c, const g2resp *r, const char *what);
/** {"boolean": v} */
void g2s__answer_bool(g2s_ctx *c, bool v);

/** Map a Gen1 path; answers the error and returns -1 when it cannot be served. */
int g2s__map(g2s_ctx *c, const char *gen1_path, char fs[64], char *path, size_t cap);

/** Hold / release the data-write lock of fs/path. */
void g2s__lock(g2s *s, const char *fs, const char *path);
void g2s__unlock(g2s *s, const char *fs, const char *path);
/** Leases: 0 when a write carrying id ("" = none) may go ahead on fs/path, -1 when another writer holds it. */
int g2s__lease_check(g2s *s, const char *fs, const char *path, const char *id);
/** After a write carrying id succeeded: hold (or renew) the lease, or release it (its CLOSE). */
void g2s__lease_after(g2s *s, const char *fs, const char *path, const char *id, bool hold);
/** The path is gone (DELETE) or replaced: its lease goes. */
void g2s__lease_drop(g2s *s, const char *fs, const char *path);
/** Remember / look up a listing cursor (token malloc'd by lookup, or NULL). */
void g2s__cursor_put(g2s *s, const char *fs, const char *dir, const char *after, const char *token);
char *g2s__cursor_get(g2s *s, const char *fs, const char *dir, const char *after);

/* ---- shared by the ops (g2serve_ops.c) ---- */

/** HEAD of fs/path with an optional query ("action=getAccessControl"). */
g2resp *g2s__head(g2s_ctx *c, const char *path, const char *query);
/** True for an HTTP 404 answer. */
bool g2s__is_404(const g2resp *r);
/**
 * Look up fs/path (plain HEAD: properties included). 1 found (*n filled, *keep holds the answer when
 * asked), 0 missing (404), -1 answered (any other failure). The filesystem root is a directory.
 */
int g2s__stat(g2s_ctx *c, const char *path, g2a_node *n, g2resp **keep);
void g2s__parent_of(const char *path, char *out, size_t cap);
const char *g2s__leaf_of(const char *path);
/** The writer (Hadoop user.name, through the identity map) owns a node this request created. */
void g2s__own_created(g2s_ctx *c, const char *path);

/* ---- the writes (g2serve_write.c); each answers c ---- */
void g2s__create(g2s_ctx *c);
void g2s__append(g2s_ctx *c, bool concurrent);
void g2s__concat(g2s_ctx *c);
void g2s__mkdirs(g2s_ctx *c);
void g2s__delete(g2s_ctx *c);
void g2s__rename(g2s_ctx *c);
void g2s__setpermission(g2s_ctx *c);
void g2s__setowner(g2s_ctx *c);
void g2s__acl(g2s_ctx *c);
void g2s__settimes(g2s_ctx *c);
void g2s__setexpiry(g2s_ctx *c);

/** The op's handler (g2serve_ops.c). */
void g2s__serve_op(g2s_ctx *c);

#endif
