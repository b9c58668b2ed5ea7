/*
 * whreq: the WebHDFS request model and its parser. It turns a method and the raw request target
 * ("/webhdfs/v1/a%20b?op=CREATE&overwrite=true") into an operation, a normalised absolute path and
 * decoded parameters, accepting every form real clients send (protocols.md §1, clients.md):
 * case-insensitive parameter names and op values, "%2F" inside one segment, "//", "/WebHdfsExt/"
 * in any case, form-encoded query values. Anything it cannot accept becomes a whreq_err carrying the
 * WebHDFS status and exception name (IllegalArgumentException, UnsupportedOperationException, ...),
 * ready to be rendered as a RemoteException by whoever answers the client.
 *
 * Used by the Gen1 emulator and by the proxy's front end. Logs nothing; allocates only in whreq_parse
 * (freed by whreq_free).
 */
#ifndef DP_WHREQ_H
#define DP_WHREQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dbuf.h"

/* Limits on what one request may carry; exceeding them is a 400, not a crash. */
#define WHREQ_MAX_PARAMS 64
#define WHREQ_MAX_PATH 4096       /* bytes of the decoded path */
#define WHREQ_MAX_SEGMENT 1024    /* bytes of one decoded path segment */
#define WHREQ_MAX_NAME 256        /* bytes of one decoded parameter name */
#define WHREQ_MAX_VALUE 65536     /* bytes of one decoded parameter value */

typedef enum whreq_op {
    WH_OP_UNKNOWN = 0,
    /* write side */
    WH_OP_CREATE, WH_OP_APPEND, WH_OP_CONCURRENTAPPEND, WH_OP_MKDIRS, WH_OP_RENAME, WH_OP_DELETE,
    WH_OP_CONCAT, WH_OP_MSCONCAT, WH_OP_SETPERMISSION, WH_OP_SETOWNER, WH_OP_SETACL,
    WH_OP_MODIFYACLENTRIES, WH_OP_REMOVEACLENTRIES, WH_OP_REMOVEACL, WH_OP_REMOVEDEFAULTACL,
    WH_OP_SETTIMES, WH_OP_SETEXPIRY,
    /* read side */
    WH_OP_OPEN, WH_OP_GETFILESTATUS, WH_OP_MSGETFILESTATUS, WH_OP_LISTSTATUS, WH_OP_MSLISTSTATUS,
    WH_OP_GETCONTENTSUMMARY, WH_OP_GETACLSTATUS, WH_OP_MSGETACLSTATUS, WH_OP_CHECKACCESS,
    WH_OP_GETFILECHECKSUM, WH_OP_GETHOMEDIRECTORY, WH_OP_LISTSTATUS_BATCH,
    WH_OP__COUNT
} whreq_op;

typedef enum whreq_prefix { WH_PREFIX_WEBHDFS = 0, WH_PREFIX_EXT = 1 } whreq_prefix;

/** Static facts about one op: its canonical name, the HTTP method and URL prefix it uses. */
typedef struct whreq_opinfo {
    whreq_op op;
    const char *name;     /* canonical upper-case name, e.g. "CREATE" */
    const char *method;   /* "PUT", "POST", "GET" or "DELETE" */
    whreq_prefix prefix;  /* /webhdfs/v1 or /WebHdfsExt */
    bool is_write;        /* changes the namespace or data */
    bool has_body;        /* request may carry data (CREATE, APPEND, CONCURRENTAPPEND, MSCONCAT) */
} whreq_opinfo;

/** Facts about op (never NULL for a valid op; NULL for WH_OP_UNKNOWN or out of range). */
const whreq_opinfo *whreq_opinfo_get(whreq_op op);
/** Look an op up by name, case-insensitively. WH_OP_UNKNOWN if there is none. */
whreq_op whreq_op_from_name(const char *name, size_t len);

/** A parse or validation failure, in WebHDFS terms. */
typedef struct whreq_err {
    int status;              /* HTTP status, e.g. 400 */
    const char *exception;   /* e.g. "IllegalArgumentException" (static string) */
    char message[256];       /* human-readable, never contains local file paths or secrets */
} whreq_err;

/** Fill err (a printf-style message). Always returns -1 so callers can `return whreq_fail(...)`. */
__attribute__((format(printf, 4, 5))) int whreq_fail(whreq_err *err, int status, const char *exception,
                                                     const char *fmt, ...);

typedef struct whreq_param {
    char *name;    /* lower-cased */
    char *value;   /* form-decoded; "" when the parameter had no '=' */
} whreq_param;

typedef struct whreq {
    const char *method;       /* as given to whreq_parse (not copied) */
    whreq_prefix prefix;      /* which prefix the URL used */
    whreq_op op;
    const whreq_opinfo *info; /* whreq_opinfo_get(op) */
    char *path;               /* decoded, normalised absolute path: "/" or "/a/b" (no trailing '/') */
    whreq_param params[WHREQ_MAX_PARAMS];
    int nparams;
} whreq;

/**
 * Parse a request. raw_target is the request target exactly as received (path plus optional
 * "?query"). The path must start with /webhdfs/v1 or /WebHdfsExt (any case), followed by '/' or
 * nothing; anything else is a 404 FileNotFoundException (not a WebHDFS URL). Rules:
 *  - the path is percent-decoded once ('+' stays '+'), "%2F" is a separator, "//" collapses,
 *    a trailing '/' is dropped; "." or ".." segments, NUL or control characters, a segment over
 *    WHREQ_MAX_SEGMENT or a path over WHREQ_MAX_PATH are rejected (400 IllegalArgumentException);
 *  - parameter names are matched case-insensitively (stored lower-cased), values are form-decoded
 *    and must not contain control characters; a repeated parameter keeps its first value;
 *  - `op` is required and matched case-insensitively; an unknown op gives 400
 *    IllegalArgumentException "Invalid value for webhdfs parameter \"op\"" as Hadoop does;
 *  - the method must be the op's method (else 400 IllegalArgumentException);
 *  - an op used under the wrong prefix is accepted (ADLS serves both), the prefix is recorded.
 * Unknown parameters are kept (servers ignore them). Returns 0, or -1 with err filled.
 * On success the caller must call whreq_free.
 */
__attribute__((warn_unused_result)) int whreq_parse(const char *method, const char *raw_target, whreq *out,
                                                    whreq_err *err);
void whreq_free(whreq *r);

/** Value of parameter lname (lower-case name), or NULL if absent. */
const char *whreq_param_get(const whreq *r, const char *lname);

/**
 * Typed parameter readers. Each returns 0 and sets *out (to def when the parameter is absent or
 * empty), or -1 with err filled (400 IllegalArgumentException naming the parameter) when the value
 * is malformed. Booleans accept true/false in any case.
 */
int whreq_get_bool(const whreq *r, const char *lname, bool def, bool *out, whreq_err *err);
int whreq_get_i64(const whreq *r, const char *lname, int64_t def, int64_t *out, whreq_err *err);

/**
 * Normalise a path given as a parameter value (already form-decoded), e.g. RENAME's destination or
 * one of CONCAT's sources: a missing leading '/' is added, "//" collapses, a trailing '/' goes,
 * "." / ".." / control characters are rejected. On success *out is a malloc'd string.
 */
int whreq_norm_path(const char *in, char **out, whreq_err *err);

/** syncFlag values (protocols.md §1.4). */
typedef enum whreq_sync { WH_SYNC_DATA = 0, WH_SYNC_METADATA, WH_SYNC_CLOSE } whreq_sync;
/** Read syncFlag (absent means def). 400 for other values. */
int whreq_get_sync(const whreq *r, whreq_sync def, whreq_sync *out, whreq_err *err);

/** Append the RemoteException JSON for err to out: {"RemoteException":{"exception":..,
 *  "javaClassName":..,"message":..}}. javaClassName is derived from the exception name. */
__attribute__((warn_unused_result)) int whreq_err_json(const whreq_err *err, dbuf *out);

#endif
