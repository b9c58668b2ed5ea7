/*
 * emu_gen1_int: the private interface shared by the files of the Gen1 service (not for other
 * modules). emu_gen1.c owns the service object and the request life cycle and answers errors;
 * emu_gen1_path.c resolves paths, checks permissions and creates nodes; emu_gen1_ns.c runs the
 * namespace and metadata ops; emu_gen1_data.c runs the ops that move file bytes (OPEN, CREATE,
 * APPEND, CONCURRENTAPPEND, CONCAT, MSCONCAT). Symbols that cross these files carry the g1_ prefix.
 * Every g1_ function that takes a g1_ctx runs under the store lock unless its comment says
 * otherwise; those returning int give 0 on success, -1 with c->err filled in (the caller answers
 * it), or G1_AGAIN when a file is busy (the caller waits on the store and runs the handler again).
 */
#ifndef DP_EMU_GEN1_INT_H
#define DP_EMU_GEN1_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dbuf.h"
#include "emu_gen1.h"
#include "emu_http.h"
#include "emu_ident.h"
#include "emu_store.h"
#include "whreq.h"

/* Hidden directory (child of the root) holding CREATE bodies in flight; removed at start-up. */
#define G1_STAGING  "\x01gen1-staging"
#define G1_AGAIN    1 /* handler result: a file is busy, wait on the store and run again */
#define G1_PATH_CAP (WHREQ_MAX_PATH + EMU_MAX_NAME + 2)

enum { P_X = 1, P_W = 2, P_R = 4 };

struct emu_gen1 {
    emu_store *store;
    bool hadoop;
    emu_ident *ident;   /* named bearer tokens and the token endpoint; NULL: no token needed */
    char *superuser;
    char *default_user;
    uint64_t max_body;
    int64_t lease_ms;
    unsigned ls_limit;
    uint64_t seq; /* staging names; under the store lock */
    pthread_mutex_t dn_mu;
    char datanode[160]; /* "http://127.0.0.1:PORT" or "" */
};

typedef enum g1_kind { G1_K_NONE = 0, G1_K_CREATE, G1_K_APPEND, G1_K_CAPPEND, G1_K_MSCONCAT, G1_K_TOKEN } g1_kind;

typedef struct g1_req {
    whreq w;
    bool parsed;
    bool skip; /* the fault hook answered or resets the connection */
    char user[EMU_MAX_PRINCIPAL];
    bool super;
    g1_kind kind;
    /* data ops */
    int fd;
    uint64_t node_id; /* APPEND/CONCURRENTAPPEND: the file; CREATE: the staging node */
    char stage_name[40];
    int64_t base; /* object offset where this body starts */
    uint64_t got; /* body bytes written */
    bool busy_held;
    bool published;
    bool autocreated;
    whreq_sync sync;
    char lease[64];
    int64_t offset; /* APPEND: -1 = not given */
    bool overwrite;
    bool create_parent;
    bool has_mode;
    uint16_t mode;
    bool delete_dir; /* MSCONCAT deleteSourceDirectory */
    dbuf body;       /* MSCONCAT body; the token endpoint's form */
    bool token_v2;   /* token endpoint: /oauth2/v2.0/token */
    char tenant[129];
} g1_req;

typedef struct g1_ctx {
    emu_gen1 *g;
    emu_req *r;
    g1_req *q;
    whreq_err err;
} g1_ctx;

typedef struct g1_res {
    emu_node *node;    /* the path's node, or NULL */
    emu_node *parent;  /* directory holding (or that would hold) the leaf; NULL if missing */
    emu_node *deepest; /* deepest existing node on the path */
    bool under_file;   /* a non-final component is a file */
    const char *leaf;  /* last component (points into the path) */
} g1_res;

/* ---- emu_gen1.c: errors and replies ---- */

/** Fill c->err (status, RemoteException class, message); always returns -1. */
__attribute__((format(printf, 4, 5))) int g1_fail(g1_ctx *c, int status, const char *exc, const char *fmt, ...);
/** 400 IllegalArgumentException for a bad parameter value; returns -1. */
int g1_fail_arg(g1_ctx *c, const char *what, const char *value);
/** Append s to b as a JSON string literal. Returns 0 or the dbuf error. */
int g1_jstr(dbuf *b, const char *s);
/** Answer 200 {"boolean":v}. */
void g1_reply_bool(emu_req *r, bool v);
/** Answer 200 with the JSON in b (rc == 0) or fail with 500 (rc != 0); frees b either way. */
int g1_reply_dbuf(g1_ctx *c, int rc, dbuf *b);
/** A user or group name a client may set: 1..EMU_MAX_PRINCIPAL-1 bytes, no control chars, ',' or ':'. */
bool g1_principal_ok(const char *s);

/* ---- emu_gen1_path.c: nodes, permissions, path resolution, node creation ---- */

/** The absolute path of n into buf ("..." when it does not fit). */
void g1_node_path(const emu_node *n, char *buf, size_t cap);
/** True for entries a client never sees: the staging directory and files past their expiry. */
bool g1_hidden(const emu_node *n, int64_t now);
/** The node being written: by path when it has not moved, else by id; NULL when it is gone. */
emu_node *g1_find_node(emu_gen1 *g, const char *path, uint64_t id);
/** Permission checks (HDFS rules): 0 when allowed, else -1 with a 403 AccessControlException. */
int g1_need(g1_ctx *c, const emu_node *n, int want);
int g1_need_owner(g1_ctx *c, const emu_node *n);
int g1_need_sticky(g1_ctx *c, const emu_node *dir, const emu_node *child);
int g1_need_subtree(g1_ctx *c, const emu_node *n);
/** The last component of path (points into path). */
const char *g1_leaf_of(const char *path);
/** Parent directory of path into out ("/" for top-level entries). */
void g1_parent_path(const char *path, char *out, size_t cap);
/** Walk path checking traverse permission; fills *out. 0 or -1 (c->err). */
int g1_resolve(g1_ctx *c, const char *path, g1_res *out);
/** Owner, group and mode/ACL of a new child of dir into dst (no umask, as WebHDFS applies none). */
void g1_fill_meta(const g1_ctx *c, const emu_node *dir, emu_type t, bool has_mode, uint16_t mode, emu_meta *dst);
/** Map a -errno from emu_store to a RemoteException; returns -1. */
int g1_store_fail(g1_ctx *c, int rc, const char *what);
/** Set a directory's mtime after an entry was added, removed or renamed in it. */
void g1_touch_dir(g1_ctx *c, emu_node *dir);
/** Create one child of dir (metadata from g1_fill_meta). 0 or -1 (c->err). */
int g1_new_child(g1_ctx *c, emu_node *dir, const char *name, emu_type t, bool has_mode, uint16_t mode, emu_node **out);
/** Create the missing directories of path (the last component too when include_last). */
int g1_make_dirs(g1_ctx *c, const char *path, bool include_last, bool has_mode, uint16_t mode, emu_node **out);
/** The hidden staging directory (created when asked); NULL when missing or not creatable. */
emu_node *g1_staging_dir(g1_ctx *c, bool create);
/** Persist n's metadata. 0 or -1 (c->err). */
int g1_save(g1_ctx *c, emu_node *n);
/** 404 FileNotFoundException for path; returns -1. */
int g1_not_found(g1_ctx *c, const char *path);
/** Parse the "permission" parameter (octal); *has is false when it is absent. 0 or -1 (c->err). */
int g1_get_mode(g1_ctx *c, bool *has, uint16_t *mode);

/* ---- emu_gen1_ns.c: namespace and metadata ops (each answers the request on success) ---- */

int g1_op_getfilestatus(g1_ctx *c);
int g1_op_liststatus(g1_ctx *c);
int g1_op_liststatus_batch(g1_ctx *c);
int g1_op_contentsummary(g1_ctx *c);
int g1_op_aclstatus(g1_ctx *c);
int g1_op_checkaccess(g1_ctx *c);
int g1_op_homedir(g1_ctx *c);
int g1_op_mkdirs(g1_ctx *c);
int g1_op_rename(g1_ctx *c);
int g1_op_delete(g1_ctx *c);
int g1_op_setpermission(g1_ctx *c);
int g1_op_setowner(g1_ctx *c);
/** SETACL, MODIFYACLENTRIES, REMOVEACLENTRIES, REMOVEACL, REMOVEDEFAULTACL. */
int g1_op_acl(g1_ctx *c);
int g1_op_settimes(g1_ctx *c);
int g1_op_setexpiry(g1_ctx *c);

/* ---- emu_gen1_data.c: data ops ---- */

int g1_op_open(g1_ctx *c);
/** CONCAT, and MSCONCAT with its sources in the query. */
int g1_op_concat(g1_ctx *c);
/** MSCONCAT with its sources in the buffered body (run from end()). */
int g1_op_msconcat_body(g1_ctx *c);
/** begin() of CREATE / APPEND / CONCURRENTAPPEND: answer at once (no body) or set up c->q to
 *  stream the body (c->q->kind, fd, base). */
int g1_create_begin(g1_ctx *c);
int g1_append_begin(g1_ctx *c);
int g1_cappend_begin(g1_ctx *c);
/** end() of a streamed body: publish it and answer. */
int g1_create_finish(g1_ctx *c);
int g1_append_finish(g1_ctx *c);
/** Read the parameters of a body op into c->q, before any lock is taken. 0 or -1 (c->err). */
int g1_data_params(g1_ctx *c);
/** Undo an unpublished body (takes the store lock itself). */
void g1_rollback(emu_gen1 *g, g1_req *q);

#endif
