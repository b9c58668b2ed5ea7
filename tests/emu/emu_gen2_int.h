/*
 * emu_gen2_int: the private interface shared by the files of the Gen2 (DFS) service (not for other
 * modules). emu_gen2.c owns the service object, classifies and routes requests, runs the request
 * life cycle and prepares and sends answers (errors included); emu_gen2_check.c holds the node
 * predicates and the checks every operation makes before it touches a node (lookups that answer
 * 404, conditional headers, leases on writes, SAS permission letters, header values) and the expiry
 * sweep; emu_gen2_fs.c runs the account and filesystem calls (list filesystems, filesystem
 * create/properties/delete, list paths); emu_gen2_path.c runs the path calls that change the
 * namespace or metadata (create, rename, delete, set-properties, ACLs including the recursive form,
 * leases, expiry); emu_gen2_data.c runs the calls that move file bytes or describe a path (append,
 * flush, read, get-properties and the other HEAD actions). Symbols that cross these files carry the
 * g2_ prefix. Every g2_op_* function runs under the store lock and answers by preparing q's answer
 * (g2_ans_*); it returns nothing: an error is an answer too. Functions that "answer" on failure
 * prepare that answer and return NULL, true or -1 as their comment says.
 */
#ifndef DP_EMU_GEN2_INT_H
#define DP_EMU_GEN2_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "dbuf.h"
#include "emu_auth.h"
#include "emu_gen2.h"
#include "emu_http.h"
#include "emu_store.h"

#define G2_MAX_PARAMS 64
#define G2_MAX_SEGS   256
#define G2_MAX_PATH   2048

/* Error messages in the service's words, shared by several files. */
#define G2_MSG_BADQ   "Value for one of the query parameters specified in the request URI is invalid."
#define G2_MSG_BADURI "The requested URI does not represent any resource on the server."
#define G2_MSG_BADHDR "The value for one of the HTTP headers is not in the correct format."
#define G2_MSG_NOQ    "A query parameter that's mandatory for this request is not specified."
#define G2_MSG_NOHDR  "An HTTP header that's mandatory for this request is not specified."
#define G2_MSG_COND   "The condition specified using HTTP conditional header(s) is not met."

struct emu_gen2 {
    emu_store *s;
    skey_key key;
    emu_auth *auth;
    uint64_t max_body;
    uint32_t delete_page;   /* --delete-page: entries per recursive delete call; 0 = one call */
    int64_t next_expiry_ms; /* earliest expiry in the store (store lock); 0 = scan needed */
};

typedef enum g2_op {
    G2_OP_INVALID = 0,
    G2_OP_TOKEN,
    G2_OP_IMDS,
    G2_OP_LIST_FS,
    G2_OP_FS_CREATE,
    G2_OP_FS_PROPS,
    G2_OP_FS_SETPROPS,
    G2_OP_FS_DELETE,
    G2_OP_LIST_PATHS,
    G2_OP_CREATE,
    G2_OP_RENAME,
    G2_OP_APPEND,
    G2_OP_FLUSH,
    G2_OP_SETPROPS,
    G2_OP_SETACL,
    G2_OP_SETACL_REC,
    G2_OP_READ,
    G2_OP_GETPROPS,
    G2_OP_GETSTATUS,
    G2_OP_GETACL,
    G2_OP_CHECKACCESS,
    G2_OP_DELETE,
    G2_OP_LEASE,
    G2_OP_EXPIRY,
} g2_op;

typedef struct g2_qparam {
    char *name;
    char *value; /* decoded; "" when the parameter had no value */
} g2_qparam;

typedef enum g2_ans_kind { G2_ANS_NONE = 0, G2_ANS_EMPTY, G2_ANS_BODY, G2_ANS_HEAD, G2_ANS_FD } g2_ans_kind;

typedef struct g2_req {
    emu_gen2 *g;
    emu_req *r;
    char id[37];
    char version[16];
    const char *method;   /* effective method (X-HTTP-Method-Override applied) */
    bool head;
    bool xml;             /* blob-shaped call: errors as XML */
    bool aad;             /* token endpoints: errors as AAD JSON */
    bool faulted;         /* a fault rule answered or reset this request: stay silent */
    g2_op op;
    const char *label;
    /* classification error, answered after the fault hook */
    int perr_status;
    const char *perr_code;
    const char *perr_msg;
    /* target */
    char *fs;             /* decoded filesystem name; NULL at account level */
    char *rel;            /* decoded path inside fs: "" or "a/b" */
    char *spath;          /* store path "/fs" or "/fs/a/b" */
    char *tenant;         /* token endpoint */
    bool v2;
    g2_qparam params[G2_MAX_PARAMS];
    int nparams;
    emu_auth_caller caller;
    /* deferred answer */
    g2_ans_kind ans;
    int status;
    dbuf body;
    const char *ctype;
    uint64_t head_len;
    int fd;
    uint64_t fd_off, fd_len;
    /* request body: token form or append data */
    dbuf form;
    emu_node *node;       /* append: pinned by busy */
    bool busy_held;
    int wfd;
    int64_t pos;
    uint64_t got;
    int64_t declared;
    int io_err;
    bool too_big;
    EVP_MD_CTX *md5;
    unsigned char want_md5[16];
    bool has_md5;
} g2_req;

/* ---- emu_gen2.c: small helpers ---- */

/** A random (version 4) UUID, lower case, into out. */
void g2_random_uuid(char out[37]);
/** ms since the epoch as an RFC 1123 date ("Tue, 01 Aug 2023 10:00:00 GMT"). */
void g2_fmt_rfc1123(int64_t ms, char out[40]);
/** Parse an RFC 1123 date into seconds since the epoch. 0, or -1 when malformed. */
int g2_parse_rfc1123(const char *s, int64_t *out_s);
/** n's ETag in the service's shape ("0x8DB..."), in double quotes when quoted. */
void g2_fmt_etag(const emu_node *n, char out[24], bool quoted);
/** Decoded value of query parameter name (any case), or NULL when absent. */
const char *g2_param(const g2_req *q, const char *name);
/** Request header value, or NULL when absent. */
const char *g2_hdr(const g2_req *q, const char *name);
/** Request header value, or NULL when absent or empty. */
const char *g2_hdr_ne(const g2_req *q, const char *name);
/** Parse "true"/"false" (any case): 1 or 0; dflt when v is NULL or empty; -1 when malformed. */
int g2_parse_bool(const char *v, int dflt);
/** Parse a whole decimal integer. 0, or -1 when v is NULL, empty, malformed or out of range. */
int g2_parse_i64(const char *v, int64_t *out);
/** A filesystem name the service accepts (3-63 of a-z, 0-9 and single '-'; "$" names too). */
bool g2_fs_name_ok(const char *s);
/** URL-decode s[0..n) into a new string (*out, caller frees). 0 or the url_decode error. */
int g2_decode_dup(const char *s, size_t n, unsigned flags, char **out);
/** Split a decoded path into segments in place (empty segments skipped). Returns the count, -E2BIG
 *  when there are more than max, -EINVAL for "." or ".." segments. */
int g2_split_path(char *p, char **segs, int max);
/** segs joined by '/' as a new string (caller frees); NULL on ENOMEM or when too long. */
char *g2_join_segs(char **segs, int n);

/* ---- emu_gen2.c: answers ---- */

/** Prepare an answer without a body. */
void g2_ans_empty(g2_req *q, int status);
/** Prepare an answer with text as its body (500 without a body when it cannot be copied). */
void g2_ans_text(g2_req *q, int status, const char *ctype, const char *text);
/** Append s to b with XML escapes; *rc holds the first dbuf error (nothing is added after one). */
void g2_xml_escape(dbuf *b, const char *s, int *rc);
/** Prepare an error in the service's format: JSON {"error":{...}} (DFS), XML <Error> (Blob-shaped
 *  calls), no body for HEAD; always with x-ms-error-code. Replaces any answer prepared before. */
__attribute__((format(printf, 4, 5))) void g2_ans_err(g2_req *q, int status, const char *code, const char *fmt, ...);
/** Prepare an authentication or authorization failure (with its WWW-Authenticate challenge). */
void g2_ans_auth_fail(g2_req *q, const emu_auth_fail *f);
/** Send the prepared answer with the common headers (nothing when already answered). */
void g2_ans_send(g2_req *q);
/** ETag and Last-Modified of n on the answer. */
void g2_hdr_node_common(g2_req *q, const emu_node *n);

/* ---- emu_gen2_check.c: node state, checks before an op, expiry ---- */

/** The lease on n holds now (leased, or breaking and not yet broken). */
bool g2_lease_active(const emu_node *n, int64_t now);
/** x-ms-lease-state of n: available, leased, expired, breaking or broken. */
const char *g2_lease_state(const emu_node *n, int64_t now);
/** n is a file past its expiry time (invisible, removed by the next sweep). */
bool g2_is_expired(const emu_node *n, int64_t now);
/** n or a node under it has an append in flight. */
bool g2_subtree_busy(const emu_node *n);
/** Remove files whose expiry time has passed (store lock held). Cheap when nothing is due. */
void g2_expire_sweep(emu_gen2 *g);
/** Note an expiry time just set, so the sweep looks again then. */
void g2_expiry_note(emu_gen2 *g, int64_t when);
/** Conditional headers (prefix "" or "x-ms-source-") against n (NULL = absent). Returns 0, 304 (reads:
 *  not modified), 412, or 409 (If-None-Match: * and n exists). */
int g2_eval_conditions(const g2_req *q, const emu_node *n, const char *prefix, bool read);
/** Answer a result of g2_eval_conditions other than 0 the usual way. Returns true when it answered. */
bool g2_cond_fail(g2_req *q, const emu_node *n, int c);
/** x-ms-lease-id on a write to n. Returns true when it answered (412). */
bool g2_lease_write_fail(g2_req *q, const emu_node *n);
/** The request's filesystem, or NULL after answering 404. */
emu_node *g2_need_fs(g2_req *q);
/** The request's path (its filesystem must exist), or NULL after answering 404. */
emu_node *g2_need_path(g2_req *q);
/** A value for x-ms-owner / x-ms-group. */
bool g2_owner_ok(const char *v);
/** A value for x-ms-properties: "n1=base64,n2=base64" (or empty). */
bool g2_properties_ok(const char *v);
/** Replace n's properties with a copy of v (NULL or "" = none). 0 or -ENOMEM. */
int g2_set_properties(emu_node *n, const char *v);
/** SAS: does the caller hold one of the letters? Other callers always do. Answers 403 when not. */
bool g2_sas_allows(g2_req *q, const char *letters);
/** emu_store_save(n), answering 500 when it fails (check q->ans afterwards). */
void g2_save_or_fail(g2_req *q, emu_node *n);

/* ---- emu_gen2_fs.c: account and filesystem calls ---- */

void g2_op_list_fs(g2_req *q);
void g2_op_fs_create(g2_req *q);
void g2_op_fs_props(g2_req *q);
void g2_op_fs_setprops(g2_req *q);
void g2_op_fs_delete(g2_req *q);
void g2_op_list_paths(g2_req *q);

/* ---- emu_gen2_path.c: namespace and metadata calls on paths ---- */

void g2_op_create(g2_req *q);
void g2_op_rename(g2_req *q);
void g2_op_delete(g2_req *q);
void g2_op_setprops(g2_req *q);
void g2_op_setacl(g2_req *q);
void g2_op_setacl_recursive(g2_req *q);
void g2_op_lease(g2_req *q);
void g2_op_expiry(g2_req *q);

/* ---- emu_gen2_data.c: append, flush, read and the HEAD calls ---- */

void g2_op_flush(g2_req *q);
/** Append, step 1 (begin, lock held): validate, pin the file (q->busy_held), open its object. */
void g2_append_prepare(g2_req *q);
/** Append, step 2 (no lock): write the bytes where they belong in the object. */
void g2_append_body(g2_req *q, const char *data, size_t len);
/** Append, step 3 (end; takes the lock): check, record the staged range, flush when asked, answer. */
void g2_append_end(g2_req *q);
/** Drop an append's pin on its file and wake waiters (lock held). */
void g2_unpin(g2_req *q);
/** Read (GET) or get-properties (HEAD without an action). */
void g2_op_read(g2_req *q, bool head);
/** HEAD with action=getStatus, getAccessControl or checkAccess. */
void g2_op_head_action(g2_req *q);

#endif
