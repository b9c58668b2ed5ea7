/*
 * g2answer: WebHDFS answers made from Gen2 facts (phase gen2-only: the Gen1 API served on Gen2 alone).
 * FileStatus objects from a Gen2 HEAD or List Paths entry (ADLS Gen1 layout: accessTime, aclBit,
 * blockSize, [fileContextID], group, length, modificationTime, msExpirationTime, owner, pathSuffix,
 * permission, replication, type), owners, groups and ACL entry names mapped back through an identity
 * map (idmap.h, idm_reverse), and Gen2 error codes turned into the RemoteException a WebHDFS client
 * expects (protocols.md §1.6, §2.6).
 *
 * Pure functions: no I/O, no logging, no globals; takes no daemon configuration.
 */
#ifndef DP_G2ANSWER_H
#define DP_G2ANSWER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "dbuf.h"
#include "idmap.h"
#include "whreq.h"

/** What a FileStatus says about one Gen2 node. */
typedef struct g2a_node {
    bool is_dir;
    int64_t length;
    int64_t mtime_ms;        /* dualpipe_times' mtime when it belongs to this length, else Last-Modified */
    int64_t atime_ms;        /* dualpipe_times' atime, else 0 (Gen2 keeps no access time) */
    int64_t expiry_ms;       /* 0 = none */
    char permission[8];      /* octal, "1750" with the sticky bit */
    bool acl_bit;
    char owner[256];         /* mapped back through the identity map when it has the identity */
    char group[256];
    char etag[96];           /* without quotes; GETFILESTATUS reports it as fileContextID */
} g2a_node;

/**
 * From a HEAD answer's headers (any may be NULL): Content-Length, x-ms-resource-type, Last-Modified,
 * x-ms-owner, x-ms-group, x-ms-permissions, x-ms-properties (dualpipe_times), x-ms-expiry-time, ETag.
 * m: identity map for the way back (NULL: names as Gen2 gives them). 0, or -1 when a value is malformed.
 */
int g2a_node_from_head(const char *content_length, const char *resource_type, const char *last_modified,
                       const char *owner, const char *group, const char *permissions, const char *properties,
                       const char *expiry, const char *etag, const idm_map *m, g2a_node *out);
/** From one List Paths entry (name, isDirectory, contentLength, lastModified, owner, group, permissions,
 *  expiryTime as Windows FILETIME ticks, etag). leaf gets the last segment of name. 0 or -1. */
int g2a_node_from_list(const json_t *entry, const idm_map *m, g2a_node *out, char *leaf, size_t leafcap);
/** Append the FileStatus object (no wrapper). single: GETFILESTATUS (adds fileContextID for a file). */
int g2a_filestatus_json(const g2a_node *n, const char *path_suffix, bool single, dbuf *out);
/** Append a JSON string literal (escaped; invalid UTF-8 becomes U+FFFD). */
int g2a_json_str(dbuf *out, const char *s);

/**
 * {"AclStatus":{"entries":[...],"group":..,"owner":..,"permission":"750","stickyBit":false}} from a
 * getAccessControl answer, every name (owner, group, entries) mapped back through m. 0 or -1.
 */
int g2a_aclstatus_json(const char *x_ms_acl, const char *x_ms_permissions, const char *owner, const char *group,
                       const idm_map *m, dbuf *out);

/** How a Gen2 failure reads to a WebHDFS client. */
typedef struct g2a_error {
    int status;
    const char *exception;
    bool retry_after;        /* a 503 the client should retry: carries Retry-After */
} g2a_error;

/**
 * The WebHDFS error for a Gen2 answer with status and error code (gen2c_error_code; "" when none):
 * PathNotFound and the other *NotFound codes → 404 FileNotFoundException; PathAlreadyExists → 403
 * FileAlreadyExistsException; DirectoryNotEmpty → 403 PathIsNotEmptyDirectoryException; PathConflict,
 * InvalidSourceOrDestinationResourceType → 403 ParentNotDirectoryException / FileAlreadyExistsException;
 * other 409 and 412 → 403 IOException, except the transient 409s (InternalOperationAbortError, *BeingDeleted)
 * → 503 RetriableException; authentication (401, AuthenticationFailed, InvalidAuthenticationInfo) → 401
 * SecurityException; authorization (403) → 403 AccessControlException; FilesystemNotFound → 503
 * RetriableException (an operator must create it); InvalidFlushPosition → 400 BadOffsetException;
 * InvalidRange → 400 BadOffsetException; 413 → 413 IllegalArgumentException; other 4xx → 400
 * IllegalArgumentException; 429 → 429 ThrottledException; 5xx → 503 RetriableException (501, 505 → 500
 * RuntimeException).
 */
g2a_error g2a_error_of(long status, const char *code);

#endif
