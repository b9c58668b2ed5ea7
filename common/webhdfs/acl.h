/*
 * acl: the POSIX/HDFS permission and ACL model shared by Gen1 (WebHDFS aclspec) and Gen2 (x-ms-acl),
 * which use the same text form: "[default:]user|group|mask|other:[name][:rwx]" joined by ','.
 *
 * It parses and formats ACL specs and permissions (octal "750"/"1750" and symbolic "rwxr-x---",
 * "rwxr-x--T", "rwxr-x---+"), and implements the HDFS AclTransformation rules the services apply:
 * SETACL (replace), MODIFYACLENTRIES (merge), REMOVEACLENTRIES, REMOVEACL, REMOVEDEFAULTACL, with the
 * mask recomputed as HDFS does, and default-ACL inheritance when a child is created.
 *
 * Storage model (as in HDFS): a node has a permission word (with the sticky bit) and an ACL holding
 * only the *extended* entries: named user/group entries of the access ACL, the access mask, and all
 * default entries. When an access ACL is present the permission's group bits hold the mask (as HDFS
 * does), and the owning group's own bits live in an unnamed "group::" entry kept in the extended list.
 * acl_full() renders the complete entry list (user::, named, group::, mask::, other::, defaults).
 *
 * Pure functions, no I/O, no logging.
 */
#ifndef DP_ACL_H
#define DP_ACL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dbuf.h"

#define ACL_MAX_ENTRIES 64        /* per node, access + default; Gen2 allows 32 + 32 */
#define ACL_MAX_NAME 256

typedef enum acl_type { ACL_USER = 0, ACL_GROUP = 1, ACL_MASK = 2, ACL_OTHER = 3 } acl_type;

typedef struct acl_entry {
    bool is_default;         /* "default:" scope */
    acl_type type;
    char name[ACL_MAX_NAME]; /* "" for the owning user/group, mask and other */
    int perm;                /* 0..7 (r=4 w=2 x=1), or -1 when the spec had no permission part */
} acl_entry;

typedef struct acl_list {
    acl_entry e[ACL_MAX_ENTRIES];
    int n;
} acl_list;

/** A parse/validation failure: message says what was wrong (no secrets, no paths). */
typedef struct acl_err {
    char message[200];
} acl_err;

/**
 * Parse an aclspec. with_perm: entries must carry a permission (SETACL, MODIFYACLENTRIES, x-ms-acl);
 * otherwise (REMOVEACLENTRIES, Gen2 remove mode) they must not... except that Gen1 tolerates a
 * permission on removal specs, so a permission is accepted and ignored when !with_perm.
 * Rejects: unknown type or scope, a name on mask/other, a bad permission string, too many entries,
 * empty entries, duplicate entries. Returns 0 or -1 with err.
 * Details: the type is matched case-insensitively and "default" case-sensitively (as Hadoop's
 * AclEntry.parseAclEntry does); an empty spec is an error; names are at most ACL_MAX_NAME - 1
 * bytes and may not contain control characters; a permission is exactly one of "---".."rwx".
 * Entries keep the spec's order (acl_format then reproduces the spec); out->n is 0 on error.
 */
int acl_parse(const char *spec, bool with_perm, acl_list *out, acl_err *err);

/** Append the spec form of list (comma-joined, permissions as "rwx"/"r-x"...) to out. */
int acl_format(const acl_list *list, dbuf *out);
/** Format one permission (0..7) as three characters plus NUL. */
void acl_perm_str(int perm, char out[4]);

/**
 * Parse a permission as Gen1 sends it: 1-4 octal digits, value <= 01777 (e.g. "755", "0755",
 * "1777"). Returns 0 and *mode, or -1 with err.
 */
int acl_parse_octal(const char *s, uint16_t *mode, acl_err *err);
/**
 * Parse a Gen2 x-ms-permissions value: 4-digit octal ("0750", "1777") or 9-character symbolic
 * ("rwxr-x---", sticky as t/T in the last place). Returns 0 or -1 with err.
 */
int acl_parse_perm_any(const char *s, uint16_t *mode, acl_err *err);
/** Octal form without leading zeros beyond 3 digits ("755", "1777"), as WebHDFS reports it. */
void acl_mode_octal(uint16_t mode, char out[8]);
/** Symbolic form (9 characters, sticky as t/T), plus "+" when has_acl, as Gen2 reports it. */
void acl_mode_symbolic(uint16_t mode, bool has_acl, char out[12]);

/** The ACL state of one node (see the storage model above). The access mask:: entry in ext is a
 *  mirror kept by these functions; mode's group bits are authoritative for it. A node with only
 *  default entries has no access ACL: its mode's group bits are the owning group's. ext is kept
 *  sorted in canonical order. A zeroed acl_node with a mode is a node without an ACL. */
typedef struct acl_node {
    uint16_t mode;    /* permission bits incl. sticky (01000) */
    acl_list ext;     /* extended entries: named access entries, group::, mask::, all defaults */
} acl_node;

/** True when the node has extended access entries or any default entry (WebHDFS aclBit). */
bool acl_has_extended(const acl_node *n);

/** Full entry list in canonical order (access: user::, named users, group::, named groups, mask::,
 *  other::; then default entries in the same order). */
void acl_full(const acl_node *n, acl_list *out);
/** The entries WebHDFS GETACLSTATUS lists: everything except user::, group:: (when there is no
 *  extended access ACL), mask:: and other:: of the access ACL — i.e. HDFS's getAclStatus entries:
 *  named users, group::, named groups of the access ACL (when it is extended), then every default
 *  entry including default:user::, default:mask:: and default:other::, in canonical order. Empty
 *  for a node without an ACL. The AclStatus "permission" is the node's mode (group bits = mask). */
void acl_status_entries(const acl_node *n, acl_list *out);

/**
 * The transformations, applied to n in place. On error n is unchanged and err says why (HDFS
 * messages: "Invalid ACL: the user, group and other entries are required.", "Invalid ACL: mask is
 * required, but it was deleted.", "Invalid ACL: only directories may have a default ACL.", ...).
 *  - acl_set:            SETACL (spec replaces the access ACL; default entries in spec replace the
 *                        default ACL, which is kept when spec has none)
 *  - acl_modify:         MODIFYACLENTRIES (merge by scope/type/name)
 *  - acl_remove_entries: REMOVEACLENTRIES (spec without permissions)
 *  - acl_remove_all:     REMOVEACL (drop all extended and default entries; group bits restored from
 *                        the group:: entry)
 *  - acl_remove_default: REMOVEDEFAULTACL
 * The mask is recomputed (union of group:: and named entries) when the spec does not give one and
 * the transformation touched entries it covers, as HDFS AclTransformation does.
 * is_dir: default entries are only allowed on directories.
 */
int acl_set(acl_node *n, const acl_list *spec, bool is_dir, acl_err *err);
int acl_modify(acl_node *n, const acl_list *spec, bool is_dir, acl_err *err);
int acl_remove_entries(acl_node *n, const acl_list *spec, acl_err *err);
/* Limits: each scope (access, default) may hold at most 32 entries including the base entries
 * and the mask (the ADLS Gen1 and Gen2 limit); more is "Invalid ACL: ACL has N entries, which
 * exceeds maximum of 32.". Removing a required mask is "Invalid ACL: mask is required, but it
 * was deleted." A missing default user::/group::/other:: is copied from the access entry when the
 * result has default entries. */
void acl_remove_all(acl_node *n);
void acl_remove_default(acl_node *n);

/**
 * Set the permission bits (SETPERMISSION / x-ms-permissions). With an access ACL, the group bits
 * of mode become the mask (HDFS chmod on a node with an ACL), the owning group's entry is kept.
 */
void acl_chmod(acl_node *n, uint16_t mode);

/**
 * Initial ACL state of a new child of parent (HDFS create / mkdirs rules):
 *  - parent has no default ACL: mode = requested & ~umask, no extended entries;
 *  - parent has a default ACL: the child's access ACL is the parent's default ACL, with user::,
 *    group-or-mask and other:: bits masked by the requested mode (umask not applied); a directory
 *    child also receives the default ACL as its own default ACL.
 * requested: the mode asked for (0666/0777 defaults when the client gave none).
 */
void acl_inherit(const acl_node *parent, uint16_t requested, uint16_t umask, bool child_is_dir, acl_node *child);

/** Check whether user (with groups, NULL-terminated) may access with want (r=4 w=2 x=1), following
 *  POSIX ACL evaluation as HDFS FSPermissionChecker does: user equal to owner gets the owner bits
 *  (and nothing else); else a matching named user entry decides, masked; else every owning/named
 *  group entry whose group is in groups is tried, masked, and any match that allows grants while
 *  matches that all fall short deny; else the other bits. Without an access ACL: owner bits,
 *  group bits when group is in groups, else other bits. want 0 is always allowed. The superuser
 *  check is the caller's business (this function knows no superuser). */
bool acl_check(const acl_node *n, const char *owner, const char *group, const char *user,
               const char *const *groups, int want);

#endif
