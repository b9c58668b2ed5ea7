/*
 * emu_store: the namespace and data store behind both emulators. A tree of nodes (directories and
 * files) with HDFS/Gen2 metadata (mode, owner, group, ACL, times, expiry, lease, ETag), kept in memory
 * and made durable by an append-only metadata log, with each file's bytes in a real file
 * DIR/objects/<id> (files as files; a node's id never changes, so renames move no data).
 *
 * On-disk layout under the data directory:
 *   objects/<16 hex digits>   file contents (committed bytes first; for Gen2, staged bytes may sit
 *                             beyond the committed length, see `staged`)
 *   meta.log                  one JSON object per line: {"put":{node...}} or {"del":id}; replayed at
 *                             open; compacted into a snapshot when it grows past 4x the live set
 * Every mutation is appended with write(2) before the call returns, so it survives a kill -9 of the
 * emulator (not a power cut unless opened with sync=true, which adds fdatasync).
 *
 * Concurrency: one store lock. Callers take it with emu_store_lock(), do lookups and mutations, and
 * release it; node pointers are valid only while the lock is held. Data I/O on object files happens
 * outside the lock through fds from emu_store_open_object (ids are stable). emu_store_wait() waits
 * on the store condition (releasing the lock) until emu_store_broadcast(); used for a writer that
 * must wait while another request holds a file busy.
 *
 * Paths are absolute and normalised ("/", "/a/b"), as whreq produces them. The root is a directory
 * with id 1. The Gen2 emulator stores filesystem F at "/F".
 */
#ifndef DP_EMU_STORE_H
#define DP_EMU_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "acl.h"

typedef struct emu_store emu_store;

typedef enum emu_type { EMU_DIR = 1, EMU_FILE = 2 } emu_type;

#define EMU_MAX_NAME 1024
#define EMU_MAX_PRINCIPAL 256
#define EMU_MAX_STAGED 64

typedef struct emu_range {
    int64_t off, len;
} emu_range;

typedef struct emu_node emu_node;
/* A node costs about 250 bytes plus its name when it has no extended ACL, nothing staged and no
 * properties: the ACL entries and staged ranges are heap arrays sized to what the node holds, and
 * owner/group point into the store's string pool (few distinct principals). */
struct emu_node {
    uint64_t id;
    emu_type type;
    char *name;               /* leaf name ("" for the root) */
    emu_node *parent;         /* NULL for the root */
    emu_node **children;      /* directories: sorted by name (strcmp byte order) */
    size_t nchildren, cap_children;

    /* metadata (persisted by emu_store_save) */
    uint16_t mode;            /* permission bits incl. sticky: acl_node.mode */
    int nacl;                 /* extended ACL entries (acl_node.ext): 0..ACL_MAX_ENTRIES */
    acl_entry *acl;           /* exactly nacl entries, NULL when none; change through emu_node_acl_put,
                                 read as an acl_node through emu_node_acl_get */
    const char *owner;        /* in the store's string pool, never NULL ("" = none); set with
                                 emu_store_set_owner / emu_store_set_meta only */
    const char *group;
    int64_t ctime_ms;         /* creation */
    int64_t mtime_ms;
    int64_t atime_ms;
    int64_t expiry_ms;        /* 0 = never */
    uint64_t etag;            /* bumped by emu_store_bump_etag when the node changes */

    /* files */
    int64_t length;           /* committed length: what readers see and where appends go */
    int64_t visible_length;   /* Gen1: length as last published by METADATA/CLOSE (GETFILESTATUS) */
    bool open_for_write;      /* Gen1: a handle is open (syncFlag DATA/METADATA seen, no CLOSE yet) */
    bool concurrent;          /* Gen1: file written by CONCURRENTAPPEND */
    int nstaged, cap_staged;  /* Gen2: uncommitted appends, at their positions in the object: */
    emu_range *staged;        /* cap_staged slots (grown by emu_node_staged_reserve, at most
                                 EMU_MAX_STAGED; given back by emu_store_save when nstaged is 0) */

    /* leases (Gen1 leaseid, at most 63 bytes as the emulator accepts it; Gen2 x-ms-lease-*: GUIDs) */
    char lease_id[64];        /* "" = none */
    int64_t lease_expiry_ms;  /* 0 = infinite (Gen1 leases last until CLOSE) */
    int64_t lease_break_ms;   /* Gen2: breaking until this time; 0 = not breaking */
    int32_t lease_duration_s; /* Gen2: duration the lease was acquired with, which renew extends it
                                 by: -1 = infinite, 0 = none (also what logs written before this
                                 field load as), else seconds; below -1 is refused like any field
                                 out of range (emu_store_save) */

    /* Gen2 filesystems (children of the root) and paths: x-ms-properties text, as given */
    char *properties;         /* NULL = none */

    /* runtime only, not persisted */
    int busy;                 /* requests currently writing this file's data */
    int flushing;             /* of those, appends with flush=true whose data is in, waiting to commit */
};

/* Metadata of a node being created (emu_store_create) or replaced (emu_store_set_meta). Large (it
 * holds a whole acl_node): allocate it, do not keep one per node. */
typedef struct emu_meta {
    acl_node acl;                    /* mode + extended/default ACL */
    char owner[EMU_MAX_PRINCIPAL];   /* "" = none */
    char group[EMU_MAX_PRINCIPAL];
    int64_t ctime_ms, mtime_ms, atime_ms; /* emu_store_create: 0 = now; emu_store_set_meta ignores them */
} emu_meta;

/** n's ACL state (mode and extended entries) into the caller's out. */
void emu_node_acl_get(const emu_node *n, acl_node *out);
/** Make a's ACL state n's (the entries are copied; an empty list frees n's). Returns 0, -EINVAL
 *  (a->ext.n out of range; n unchanged) or -ENOMEM (n unchanged). Does not save. */
int emu_node_acl_put(emu_node *n, const acl_node *a);
/** What acl_has_extended says of n's ACL state (WebHDFS aclBit, Gen2's "+"). */
static inline bool emu_node_has_acl(const emu_node *n)
{
    return n->nacl > 0;
}
/** Room for want staged ranges in n->staged. Returns 0, -E2BIG (want > EMU_MAX_STAGED) or -ENOMEM. */
int emu_node_staged_reserve(emu_node *n, int want);

typedef struct emu_store_opts {
    const char *dir;          /* data directory, created if missing */
    bool sync;                /* fdatasync the log after every mutation */
    const char *root_owner;   /* owner/group/mode of a new root */
    const char *root_group;
    uint16_t root_mode;       /* used as given (0 means mode 000) */
} emu_store_opts;

/** Open (create or recover) a store. Returns 0 or -1 with a message in err. */
int emu_store_open(const emu_store_opts *o, emu_store **out, char *err, size_t errlen);
void emu_store_close(emu_store *s);

void emu_store_lock(emu_store *s);
void emu_store_unlock(emu_store *s);
/** Wait on the store condition; the lock must be held and is held again on return. */
void emu_store_wait(emu_store *s);
void emu_store_broadcast(emu_store *s);

/** Milliseconds since the epoch (wall clock). */
int64_t emu_now_ms(void);

emu_node *emu_store_root(emu_store *s);
/** Node at path, or NULL. */
emu_node *emu_store_lookup(emu_store *s, const char *path);
/** Child of dir called name, or NULL. */
emu_node *emu_store_child(const emu_node *dir, const char *name);
/** Index of the first child whose name sorts strictly after `after` ("" = 0). */
size_t emu_store_child_after(const emu_node *dir, const char *after);
/** Absolute path of node into buf ("/" for the root). Returns 0, or -E2BIG. */
int emu_store_path(const emu_node *n, char *buf, size_t cap);
/** True if a is b or an ancestor of b. */
bool emu_store_is_ancestor(const emu_node *a, const emu_node *b);

/**
 * Create a child called name in dir (a directory) with the given type and metadata taken from
 * meta (acl, owner, group; times set to now unless meta sets them; etag assigned). Files get an
 * empty object file. Returns 0 and *out, -EEXIST, -ENOTDIR, -ENAMETOOLONG, or -EIO.
 * Also -EINVAL: name empty, ".", ".." or containing '/', or a meta field out of range (as for
 * emu_store_save). meta may be NULL (mode 0755/0644, no owner). Set other fields on *out and call
 * emu_store_save.
 */
int emu_store_create(emu_store *s, emu_node *dir, const char *name, emu_type type, const emu_meta *meta,
                     emu_node **out);
/** Give n meta's ACL state, owner and group (an unterminated owner/group is cut at
 *  EMU_MAX_PRINCIPAL - 1 bytes). Returns 0, -EINVAL or -ENOMEM (n unchanged). Does not save. */
int emu_store_set_meta(emu_store *s, emu_node *n, const emu_meta *meta);
/** Set n's owner or group (cut at EMU_MAX_PRINCIPAL - 1 bytes, as a principal field holds at
 *  most that). Returns 0 or -ENOMEM (n unchanged). Does not save. */
int emu_store_set_owner(emu_store *s, emu_node *n, const char *owner);
int emu_store_set_group(emu_store *s, emu_node *n, const char *group);
/** Remove n and everything under it (objects deleted). Not the root (-EINVAL). Returns 0 or -EIO. */
int emu_store_remove(emu_store *s, emu_node *n);
/** Move n into new_parent under new_name. The target name must be free. Not the root, not into
 *  its own subtree (-EINVAL). Returns 0, -EEXIST, -EINVAL. Also -ENOTDIR (new_parent is a file),
 *  -ENAMETOOLONG, -EIO; moving n onto its own current parent and name changes nothing and returns 0. */
int emu_store_move(emu_store *s, emu_node *n, emu_node *new_parent, const char *new_name);
/** Persist n's metadata after the caller changed fields. Returns 0 or -EIO; -EINVAL (nothing
 *  written) when a field is out of range: mode > 07777, an ACL entry's type/perm, nacl or
 *  nstaged out of bounds, a negative length or staged range, an unterminated string field. */
int emu_store_save(emu_store *s, emu_node *n);
/** Give n a new ETag (call when content or metadata visible to readers changed); does not save. */
void emu_store_bump_etag(emu_store *s, emu_node *n);

/** Open n's object file (O_RDONLY or O_RDWR). Returns an fd or -errno. */
int emu_store_open_object(emu_store *s, const emu_node *n, int flags);
/** Truncate n's object file to len bytes. Returns 0 or -errno. */
int emu_store_truncate_object(emu_store *s, const emu_node *n, int64_t len);

/** Counts for tests and /counters: nodes (root included) and bytes stored (sum of the files'
 *  committed lengths as of their last save). Safe with or without the lock. */
void emu_store_stats(emu_store *s, uint64_t *nodes, uint64_t *bytes);

#endif
