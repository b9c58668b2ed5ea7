/*
 * xlate: the mapping knowledge between Gen1 (WebHDFS) and Gen2 (DFS), protocols.md §4.2-4.5, in one
 * module so that both directions (Gen1-primary mirroring now, Gen2-primary answers later) share it.
 * For each Gen1 write it says which Gen2 requests to make (method, query, headers; the caller adds
 * the filesystem, path and body) and how to read their answers; it also holds the small conversions
 * the other direction needs (Gen2 permissions and ACLs to WebHDFS AclStatus, list-paths entries and
 * HEAD answers to FileStatus).
 *
 * Pure functions: no I/O, no logging, no globals. Results that need memory are malloc'd and owned by
 * the caller (each struct has its _free). Errors come back as -1 with an xlate_err message that never
 * holds a secret.
 *
 * Choices made here (documented once):
 *  - syncFlag → flush policy: CLOSE (or absent: Gen1's default) flushes with close=true; METADATA
 *    flushes with close=false; DATA also flushes with close=false, so that what Gen2 readers see
 *    matches what Gen1 readers see (Gen1 serves DATA appends to OPEN at once) and no staged data is
 *    left to an unknown service-side lifetime. A zero-length DATA append does nothing.
 *  - ACL writes are read-modify-write on the full x-ms-acl (Gen2 replaces the whole ACL, default
 *    entries included), applying the same HDFS transformation as Gen1 (common/acl).
 *  - Metadata copies (after CREATE, MKDIRS and re-copies) always send the full x-ms-acl, minimal when
 *    Gen1 has no ACL, so stray Gen2 entries never survive; a sticky bit needs a second request with
 *    x-ms-permissions, because Gen2 refuses x-ms-acl and x-ms-permissions together.
 */
#ifndef DP_XLATE_H
#define DP_XLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "dbuf.h"
#include "whreq.h"

#define XLATE_MAX_HEADERS 8
#define XLATE_CHUNK_MAX (64ull * 1024 * 1024)  /* bytes per Gen2 append request */
#define XLATE_ACL_ATTEMPTS 5                   /* read-modify-write rounds before giving up */

typedef struct xlate_err {
    char message[256];
} xlate_err;

/** One Gen2 request, minus filesystem, path and body (the caller supplies those). */
typedef struct xlate_g2req {
    const char *method;                      /* static: "PUT", "PATCH", "HEAD", "DELETE" */
    char *query;                             /* encoded, without '?'; malloc'd, never NULL after success */
    char *headers[XLATE_MAX_HEADERS + 1];    /* "Name: value" lines, malloc'd, NULL-terminated */
    int nheaders;
} xlate_g2req;

/** Free what r holds; r is zeroed and reusable. Safe on a zeroed struct. */
void xlate_g2req_free(xlate_g2req *r);

/* ---- Gen1 write → Gen2 requests (each fills *out, freeing what it held; 0 or -1 with err) ----- */

/**
 * CREATE: PUT ?resource=file. If-None-Match: * unless overwrite. permission: Gen1's octal value or
 * NULL/"" (then no x-ms-permissions and no x-ms-umask); given, it becomes x-ms-permissions as 4-digit
 * octal with x-ms-umask: 0000 (Gen1 applies no umask to an explicit permission).
 */
int xlate_create(bool overwrite, const char *permission, xlate_g2req *out, xlate_err *err);
/** MKDIRS: PUT ?resource=directory, If-None-Match: *, permission as for xlate_create. */
int xlate_mkdirs(const char *permission, xlate_g2req *out, xlate_err *err);
/** True when a MKDIRS answer means "the directory is there": 201, or 409 with
 *  x-ms-existing-resource-type: directory (existing_type may be NULL). */
bool xlate_mkdirs_ok(long status, const char *existing_type);
/** True when a CREATE/MKDIRS answer of 409 says the path already existed (any type). */
bool xlate_already_exists(long status, const char *error_code);

/** APPEND data: PATCH ?action=append&position=P (body: the bytes). */
int xlate_append(uint64_t position, xlate_g2req *out, xlate_err *err);

typedef enum xlate_flush {
    XLATE_FLUSH_NONE = 0,   /* no flush at all */
    XLATE_FLUSH_OPEN,       /* flush close=false */
    XLATE_FLUSH_CLOSE       /* flush close=true */
} xlate_flush;
/** The flush after a CREATE/APPEND carrying nbytes with syncFlag sync (see the file comment). */
xlate_flush xlate_flush_policy(whreq_sync sync, uint64_t nbytes);
/** PATCH ?action=flush&position=P&retainUncommittedData=false&close=true|false. */
int xlate_flush_req(uint64_t position, bool close, xlate_g2req *out, xlate_err *err);

/*
 * Append and flush in one request: Path - Update with action=append and flush=true appends the body at
 * position and then commits the file up to position + body length, as a flush to that position would
 * (the uncommitted data is not retained); close=true marks the commit as the stream's last, as on a
 * flush. Microsoft's REST specification of the DFS API (Azure/azure-rest-api-specs,
 * specification/storage/data-plane/Azure.Storage.Files.DataLake, DataLakeStorage.json; the "flush"
 * query parameter of Path_Update, "If file should be flushed after the append") first lists the
 * parameter in the 2021-06-08 version of that file (2021-04-10 and earlier have none); the REST reference
 * page (learn.microsoft.com/rest/api/storageservices/datalakestoragegen2/path/update) lists it with
 * close, position and retainUncommittedData. An empty body is never sent this way (a flush alone commits
 * without data). Older x-ms-versions keep the two requests, append then flush.
 */
#define XLATE_APPEND_FLUSH_VERSION "2021-06-08"
/** True when x-ms-version (YYYY-MM-DD) is XLATE_APPEND_FLUSH_VERSION or later. */
bool xlate_append_flush_ok(const char *x_ms_version);
/** PATCH ?action=append&position=P&flush=true&close=true|false (body: the bytes, at least one). */
int xlate_append_flush(uint64_t position, bool close, xlate_g2req *out, xlate_err *err);

/** RENAME options (renameoptions=NONE|OVERWRITE|TO_TRASH, comma list). rename2: the parameter was
 *  given (Hadoop rename2: exact destination, no move-into-directory). Returns 0 or -1 for a bad value. */
int xlate_rename_options(const char *renameoptions, bool *rename2, bool *overwrite, xlate_err *err);
/**
 * Where a Gen1 RENAME lands on Gen2 (HDFS rename): when the destination is an existing directory and
 * the rename is not rename2, the source moves into it: dst/basename(src) ("" is the filesystem root).
 * Otherwise dst. Paths are Gen2 paths inside the filesystem (no leading '/'). Returns 0 or -1 (too long).
 */
int xlate_rename_target(const char *src, const char *dst, bool dst_is_dir, bool rename2, char *out, size_t cap);
/**
 * RENAME: PUT on the target with x-ms-rename-source: rename_source (the value gen2c_rename_source
 * builds: "/FS/SRC" percent-encoded except '/', plus "?SAS" in SAS mode) and If-None-Match: * unless
 * overwrite; continuation (or NULL) from a previous answer's x-ms-continuation.
 */
int xlate_rename(const char *rename_source, bool overwrite, const char *continuation, xlate_g2req *out,
                 xlate_err *err);
/** DELETE ?recursive=true|false[&continuation=...]. */
int xlate_delete(bool recursive, const char *continuation, xlate_g2req *out, xlate_err *err);
/** SETPERMISSION: PATCH ?action=setAccessControl, x-ms-permissions: 4-digit octal. */
int xlate_setpermission(const char *permission, xlate_g2req *out, xlate_err *err);
/** SETOWNER: PATCH ?action=setAccessControl with x-ms-owner and/or x-ms-group (at least one). */
int xlate_setowner(const char *owner, const char *group, xlate_g2req *out, xlate_err *err);
/** HEAD ?action=getAccessControl (ACL read of a read-modify-write). */
int xlate_getacl(xlate_g2req *out, xlate_err *err);
/** HEAD ?action=getStatus (existence, type, Content-Length). */
int xlate_getstatus(xlate_g2req *out, xlate_err *err);
/**
 * The "modify" of an ACL read-modify-write: start from Gen2's x-ms-acl and x-ms-permissions (as a
 * getAccessControl HEAD returns them; x_ms_acl may be NULL/"" when Gen2 sent none), apply Gen1 op
 * (SETACL, MODIFYACLENTRIES, REMOVEACLENTRIES, REMOVEACL, REMOVEDEFAULTACL) with the writer's aclspec
 * (ignored for REMOVEACL/REMOVEDEFAULTACL) using the HDFS rules (common/acl, mask recomputed as HDFS
 * does), and append the resulting full ACL (x-ms-acl form) to new_acl. is_dir: the node's type.
 */
int xlate_acl_apply(whreq_op op, const char *aclspec, const char *x_ms_acl, const char *x_ms_permissions,
                    bool is_dir, dbuf *new_acl, xlate_err *err);
/** PATCH ?action=setAccessControl with x-ms-acl and, when etag is non-empty, If-Match: etag. */
int xlate_setacl(const char *acl, const char *etag, xlate_g2req *out, xlate_err *err);
/**
 * SETEXPIRY: PUT ?comp=expiry, x-ms-expiry-option mapped from Gen1's expiryOption
 * (NeverExpire, RelativeToNow, RelativeToCreationDate → RelativeToCreation, Absolute), and
 * x-ms-expiry-time: the milliseconds unchanged for the relative options, an RFC 1123 date for
 * Absolute (Gen1 gives ms since the epoch), none for NeverExpire. Option names are matched
 * case-insensitively. Returns -1 for an unknown option or a bad/missing time.
 */
int xlate_expiry(const char *option, const char *expire_time, xlate_g2req *out, xlate_err *err);

/* ---- Gen1 answers and look-ups -------------------------------------------------------------- */

/** True when Gen1's answer body is {"boolean": false} (RENAME/DELETE/MKDIRS that changed nothing). */
bool xlate_gen1_false(const char *body);
/**
 * The query for a look-up on Gen1 with the writer's identity: "op=OP" followed by the writer's
 * user.name, doas and delegation parameters (percent-encoded), and extra (already encoded, e.g.
 * "tooid=true", or NULL). Appended to out.
 */
int xlate_gen1_query(const char *op, const whreq_param *params, int nparams, const char *extra, dbuf *out);

/** Metadata of one Gen1 node, to be copied to Gen2 (owner, group, permission, ACL, times). */
typedef struct xlate_meta {
    char owner[256];
    char group[256];
    uint16_t mode;         /* incl. sticky; with an access ACL the group bits are the mask */
    bool is_dir;
    bool acl_bit;          /* FileStatus.aclBit: GETACLSTATUS is needed for the entries */
    char *acl;             /* full x-ms-acl (malloc'd) once known; NULL = minimal from mode */
    int acl_over;          /* the Gen1 ACL has this many entries in one scope, over XLATE_ACL_SCOPE_MAX:
                              acl stays NULL and only the permission bits are copied (0: within) */
    bool base_added;       /* default base entries (user::, group::, other::) were filled in from the
                              access entries, as HDFS implies them */
    bool has_times;        /* FileStatus carried modificationTime/accessTime */
    int64_t mtime_ms, atime_ms, length;
    char sha256[65];       /* hex SHA-256 of the file's bytes as the proxy wrote them ("" = none): goes to
                              XLATE_DIGEST_KEY with sha256_len (set by the caller, not from a FileStatus) */
    int64_t sha256_len;
    bool has_crc;          /* crc32c/crc_len go to XLATE_CRC_KEY (set by the caller, like sha256) */
    uint32_t crc32c;
    int64_t crc_len;
} xlate_meta;

#define XLATE_ACL_SCOPE_MAX 32 /* Gen2 entries per scope (access, default), base entries and mask included */
#define XLATE_META_REQS 3      /* requests of one metadata copy at most */
void xlate_meta_free(xlate_meta *m);
/** Read {"FileStatus":{...}} (owner, group, permission, type, aclBit as bool or "true"). */
int xlate_meta_from_filestatus(const char *json, size_t len, xlate_meta *m, xlate_err *err);
/** Read {"AclStatus":{...}} (entries, permission, stickyBit) into m->acl / m->mode. */
int xlate_meta_from_aclstatus(const char *json, size_t len, xlate_meta *m, xlate_err *err);
/**
 * The requests that make a Gen2 node equal to m: out[0] (setAccessControl) carries x-ms-owner,
 * x-ms-group (when known) and the full x-ms-acl — or, when the ACL is over Gen2's limit (acl_over),
 * x-ms-permissions instead; then (only with a sticky bit and an ACL) a setAccessControl with
 * x-ms-permissions; then, for a file with times or a digest (sha256), a setProperties whose x-ms-properties
 * holds only XLATE_TIMES_KEY and XLATE_DIGEST_KEY (the proxy sets no other property on Gen2, and this runs
 * on a node the copy just created). *n gets 1 to XLATE_META_REQS.
 */
int xlate_meta_requests(const xlate_meta *m, xlate_g2req out[XLATE_META_REQS], int *n, xlate_err *err);

/* ---- Gen1 times kept as a Gen2 property --------------------------------------------------------- */

/*
 * Gen2 cannot set a path's modification or access time, so Gen1's are kept as the path property
 * XLATE_TIMES_KEY (x-ms-properties, base64 value), as "mtime=<ms>,atime=<ms>,len=<bytes>": Gen1's
 * times in ms since the epoch and the file length they belong to (a later APPEND changes the length on
 * Gen2 but does not rewrite the property, so a verify knows the times are from before it). A field
 * Gen1 did not give is left out.
 */
#define XLATE_TIMES_KEY "dualpipe_times"
/*
 * The SHA-256 digest of a file the proxy wrote whole, as the path property XLATE_DIGEST_KEY: "sha256=<64
 * hex>,len=<bytes>". Written only for a CREATE journaled by format 1.0 (whose record kept the body's SHA-256;
 * since 1.1 the journal keeps a CRC-32C and the file gets XLATE_CRC_KEY instead); read by verify. Written with the
 * times by the metadata copy after the CREATE; a later APPEND changes Gen2's length and not the property, so
 * a digest whose len differs from the file's length is stale (`dualpipe verify` ignores it). A resync's
 * metadata copy writes no digest (the property is replaced).
 */
#define XLATE_DIGEST_KEY "dualpipe_sha256"
/** Format the value into out. Returns 0 or -1 (too small, or hex not 64 hex digits). */
int xlate_digest_format(const char *hex, int64_t len, char *out, size_t cap);
/** Read a value: hex gets the 64 digits (lower case). Returns 0 or -1 (malformed). */
int xlate_digest_parse(const char *v, char hex[65], int64_t *len);
/*
 * The CRC-32C (crc32c.h) of a file's bytes as the proxy wrote them, as the path property XLATE_CRC_KEY:
 * "crc32c=<8 hex>,len=<bytes>". Unlike the SHA-256 it follows appends: the applier combines the CRC of
 * each burst of APPENDs with the recorded one (crc32c_combine) and writes it when the file is closed or
 * the write interval is over (proxy/applier_digest.c). Valid only while the file's length equals len (a
 * crash between a flush and the property's write leaves an older len).
 */
#define XLATE_CRC_KEY "dualpipe_crc32c"
/** Format the value into out. Returns 0 or -1 (too small, len < 0). */
int xlate_crc_format(uint32_t crc, int64_t len, char *out, size_t cap);
/** Read a value (hex digits in either case). Returns 0, or -1 (malformed: *crc and *len untouched). */
int xlate_crc_parse(const char *v, uint32_t *crc, int64_t *len);
/** Format the value (fields < 0 left out) into out. Returns 0 or -1 (too small). */
int xlate_times_format(int64_t mtime_ms, int64_t atime_ms, int64_t length, char *out, size_t cap);
/** Read a value (any field may be absent: -1). Returns 0 or -1 for a malformed value. */
int xlate_times_parse(const char *v, int64_t *mtime_ms, int64_t *atime_ms, int64_t *length);
/** The decoded value of property key in an x-ms-properties list. Returns 1 found, 0 absent, -1 bad list. */
int xlate_props_get(const char *props, const char *key, char *out, size_t cap);
/** props (NULL/"" = none) with key set to value (base64-encoded; others kept as they are), appended to out. */
int xlate_props_put(const char *props, const char *key, const char *value, dbuf *out, xlate_err *err);
/** HEAD without action (getProperties: x-ms-properties, ETag, Content-Length). */
int xlate_getprops(xlate_g2req *out, xlate_err *err);
/** PATCH ?action=setProperties with x-ms-properties: props and, when etag is non-empty, If-Match. */
int xlate_setprops(const char *props, const char *etag, xlate_g2req *out, xlate_err *err);
/**
 * SETTIMES on Gen2: the new x-ms-properties for a path whose getProperties answer carried props and
 * content_length (either may be NULL), given Gen1's modificationtime/accesstime parameters ("-1" or
 * absent: unchanged, kept from the existing property if there is one). Appended to out. -1 with err
 * for a bad parameter or nothing to set.
 */
int xlate_settimes_props(const char *props, const char *content_length, const char *mtime_param,
                         const char *atime_param, dbuf *out, xlate_err *err);

/* ---- Gen1 listings (walking a subtree on Gen1) ------------------------------------------------ */

#define XLATE_LIST_MAX_ENTRIES 100000  /* entries of one LISTSTATUS answer accepted */

/** One entry of a Gen1 LISTSTATUS page. */
typedef struct xlate_entry {
    char *name;            /* pathSuffix: one path segment (never "", ".", ".." nor containing '/') */
    bool is_dir;
    char *status;          /* {"FileStatus":{...}} of the entry, as xlate_meta_from_filestatus reads it */
} xlate_entry;

/** One LISTSTATUS page (malloc'd; free with xlate_listing_free). */
typedef struct xlate_listing {
    xlate_entry *v;
    int n;
    char *token;           /* continuationToken for the next page; NULL when the listing is complete */
} xlate_listing;
void xlate_listing_free(xlate_listing *l);
/**
 * Read a LISTSTATUS answer {"FileStatuses":{"FileStatus":[...],"continuationToken":".."}} (keys
 * matched case-insensitively; the token may come before or after the array; absent or "" means the
 * listing is complete), or a Hadoop LISTSTATUS_BATCH answer {"DirectoryListing":{"partialListing":
 * {"FileStatuses":{...}},"remainingEntries":N}} (token: the last entry's name while N > 0). Entries of type DIRECTORY or FILE only. Returns 0, or -1 with err for
 * anything else, an entry without a valid pathSuffix, or over XLATE_LIST_MAX_ENTRIES entries.
 */
int xlate_liststatus_parse(const char *json, size_t len, xlate_listing *out, xlate_err *err);
/** The paging parameters of a LISTSTATUS look-up: "listSize=N" and, when after is non-empty,
 *  "&listAfter=<after, percent-encoded>", appended to out (an `extra` for xlate_gen1_query). */
int xlate_liststatus_query(unsigned list_size, const char *after, dbuf *out);
/** The paging parameter of a Hadoop LISTSTATUS_BATCH look-up: "startAfter=<after, percent-encoded>"
 *  when after is non-empty (nothing for the first page; the NameNode decides the page size). */
int xlate_liststatus_batch_query(const char *after, dbuf *out);

/** Paths named by a CONCAT/MSCONCAT (normalised, malloc'd). */
typedef struct xlate_paths {
    char **v;
    int n;
} xlate_paths;
void xlate_paths_free(xlate_paths *p);
/**
 * The sources of a CONCAT (the `sources` parameter, comma list) or MSCONCAT (body JSON
 * {"sources":[...]} or "sources=/a,/b", else the `sources` parameter). At most 4096 sources.
 */
int xlate_concat_sources(whreq_op op, const char *sources_param, const char *body, size_t body_len,
                         xlate_paths *out, xlate_err *err);
/**
 * MSCONCAT deleteSourceDirectory: the one directory holding every source, unless it is the root or
 * holds the target (then the sources are deleted one by one, as Gen1 does). Returns a malloc'd path
 * or NULL.
 */
char *xlate_concat_source_dir(const xlate_paths *sources, const char *target);

/** True when Gen1 paths a and b are the same, or one is an ancestor of the other. */
bool xlate_path_related(const char *a, const char *b);

/* ---- Retry classification --------------------------------------------------------------------- */

/** Transport failures (httpc result != 0 except "too big"/"cancelled"), 408, 429 and 5xx other than
 *  501/505 are worth retrying. transport_failed: the exchange produced no answer. */
bool xlate_retryable(bool transport_failed, long status);
/** Retry-After as delay in ms: delta-seconds or an HTTP date (relative to now_ms). -1 when absent/bad. */
int64_t xlate_retry_after_ms(const char *value, int64_t now_ms);

/* ---- Conversions Gen2 → Gen1 (for answers synthesised from Gen2) ------------------------------ */

/** RFC 1123 ("Wed, 22 Feb 2023 02:41:28 GMT") ↔ ms since the epoch. */
int xlate_rfc1123_parse(const char *s, int64_t *ms);
void xlate_rfc1123_format(int64_t ms, char out[32]);

/** Gen2 permissions ("rwxr-x---", "rwxr-x--T+", "0750") → WebHDFS octal ("750", "1750") and aclBit. */
int xlate_perm_to_octal(const char *gen2, char out[8], bool *acl_bit, xlate_err *err);

/** {"AclStatus":{"entries":[...],"group":..,"owner":..,"permission":"750","stickyBit":false}} from a
 *  getAccessControl answer (x-ms-acl, x-ms-permissions, x-ms-owner, x-ms-group), appended to out. */
int xlate_aclstatus_json(const char *x_ms_acl, const char *x_ms_permissions, const char *owner, const char *group,
                         dbuf *out, xlate_err *err);

/** The WebHDFS FileStatus fields Gen2 can supply (protocols.md §4.5). */
typedef struct xlate_filestatus {
    char name[1024];        /* Gen2 name (list: path from the filesystem root; HEAD: "") */
    bool is_dir;
    int64_t length;
    int64_t mtime_ms;       /* second precision on Gen2 */
    char permission[8];     /* octal */
    bool acl_bit;
    char owner[256];
    char group[256];
} xlate_filestatus;
/** From one List Paths entry (strings or numbers accepted; isDirectory absent = file; etag/eTag). */
int xlate_filestatus_from_list(const json_t *entry, xlate_filestatus *out, xlate_err *err);
/** From a HEAD (getStatus) answer's headers (any may be NULL). */
int xlate_filestatus_from_head(const char *content_length, const char *resource_type, const char *last_modified,
                               const char *owner, const char *group, const char *permissions,
                               xlate_filestatus *out, xlate_err *err);
/** Append the WebHDFS FileStatus object (without the {"FileStatus":...} wrapper) to out, with
 *  pathSuffix, accessTime 0, blockSize 268435456 (files; 0 for directories), replication 1 (files). */
int xlate_filestatus_json(const xlate_filestatus *fs, const char *path_suffix, dbuf *out);

#endif
