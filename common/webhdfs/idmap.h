/*
 * idmap: the identity map from HDFS/Gen1 names (owners, groups, ACL entry names) to the identities
 * Gen2 accepts (Azure AD object ids; users may also be UPNs), read from the file `gen2.identity_map`
 * names, and the translation of owners, groups and x-ms-acl lists through it.
 *
 * File format (one mapping per line, whitespace-separated fields, '#' starts a comment line, blank
 * lines allowed):
 *
 *     user  NAME  OBJECT_ID_OR_UPN     e.g.  user  alice  3f2504e0-4f89-11d3-9a0c-0305e82c3301
 *     group NAME  OBJECT_ID                  user  bob    bob@contoso.com
 *
 * An object id is a GUID (8-4-4-4-12 hex digits); a UPN is local@domain with a dot in the domain.
 * NAME may not hold whitespace, ',' or ':' (they separate ACL entries and fields). A name mapped twice
 * for the same kind is an error. Errors name "file:line: what".
 *
 * Names with a fixed meaning pass through without a mapping: "" (the owning user/group, mask and
 * other base entries of an ACL), "$superuser" (Gen2's own owner of Shared Key items), and names that
 * already are GUIDs (ADLS Gen1 in the same tenant reports object ids, which Gen2 shares).
 *
 * idm_watch re-reads the file when its inode, size or mtime changed (checked at most once per
 * IDM_POLL_MS); a file that no longer parses keeps the last good map. Maps are reference-counted and
 * immutable, so a reader holding one is never disturbed by a reload.
 *
 * Pure but for reading the file: no logging, no globals. Thread-safe: idm_watch has its own lock.
 */
#ifndef DP_IDMAP_H
#define DP_IDMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dbuf.h"

#define IDM_MAX_NAME 256           /* bytes of a name or identity, NUL included */
#define IDM_MAX_FILE (16u << 20)   /* bytes of a map file */
#define IDM_POLL_MS 1000           /* idm_watch_poll looks at the file at most this often */
#define IDM_MISS_MAX 72            /* unmapped names kept per translation: an ACL (64) plus owner and group */

typedef enum idm_kind { IDM_USER = 0, IDM_GROUP = 1 } idm_kind;

/** What happens to a name the map lacks (gen2.unmapped_identity). */
typedef enum idm_policy {
    IDM_KEEP = 0,         /* send the name as it is */
    IDM_DROP,             /* leave that owner/group/entry out, apply the rest */
    IDM_RESYNC_LATER      /* like drop for now; the caller keeps the metadata owed */
} idm_policy;

typedef struct idm_err {
    char message[320];
} idm_err;

typedef struct idm_map idm_map;

/**
 * Parse a map file's text (len bytes; NUL bytes are an error). fname names the file in errors.
 * Returns 0 and *out (reference count 1), or -1 with err "fname:line: message".
 */
int idm_parse(const char *text, size_t len, const char *fname, idm_map **out, idm_err *err);
/** Read and parse the file at path (at most IDM_MAX_FILE bytes). 0 or -1 with err. */
int idm_load(const char *path, idm_map **out, idm_err *err);
/** Take another reference / drop one (the last frees the map). NULL is fine. */
idm_map *idm_ref(idm_map *m);
void idm_unref(idm_map *m);
/** Mappings held, per kind. */
size_t idm_count(const idm_map *m, idm_kind kind);

/** True for a GUID "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" (hex digits, either case). */
bool idm_is_guid(const char *s);
/** True for local@domain (one '@', both parts non-empty, a dot inside the domain, no blanks). */
bool idm_is_upn(const char *s);
/** True for names that pass without a mapping (see the file comment). */
bool idm_passes(const char *name);

/**
 * The Gen2 identity of name: name itself when it passes, else the mapping, else NULL (unmapped).
 * m may be NULL (no map: only passing names resolve). The result lives as long as m (or name).
 */
const char *idm_lookup(const idm_map *m, idm_kind kind, const char *name);
/**
 * The other way (answers served from Gen2 in phase gen2-only): the name whose mapping is the Gen2
 * identity id (object ids compared case-insensitively; the first in name order when several
 * names map to one identity), or NULL when no line maps to it. m may be NULL (NULL).
 */
const char *idm_reverse(const idm_map *m, idm_kind kind, const char *id);

/** Names one translation could not map, and what it left out. */
typedef struct idm_result {
    int unmapped;                         /* distinct unmapped names met (all, even past IDM_MISS_MAX) */
    idm_kind kind[IDM_MISS_MAX];
    char name[IDM_MISS_MAX][IDM_MAX_NAME];
    int kept;                             /* names sent as they are (keep) */
    int dropped;                          /* owners, groups or entries left out (drop, resync-later) */
    int merged;                           /* entries that mapped onto an identity another entry had */
} idm_result;

/** "user alice, group staff" for the first unmapped names of res (into buf). */
void idm_result_names(const idm_result *res, char *buf, size_t cap);

/**
 * The Gen2 identity to send for an owner (IDM_USER) or group (IDM_GROUP) name under pol, recording
 * an unmapped name in res: the mapped identity, the name itself (passing, or keep), or NULL (leave it
 * out). An empty name gives NULL without counting.
 */
const char *idm_name(const idm_map *m, idm_policy pol, idm_kind kind, const char *name, idm_result *res);

/**
 * Translate the names of an ACL list (x-ms-acl or aclspec text; with_perm as acl_parse takes it) and
 * append the result to out. Unnamed entries stay; a named entry whose name is unmapped is kept as is
 * (keep) or left out (drop, resync-later); an entry whose translated key repeats an earlier one is
 * merged into it (the earlier entry kept, counted in res->merged), since Gen2 refuses duplicates.
 * *empty is set when every entry was left out (out then unchanged). Returns 0, or -1 with err for
 * a list that does not parse.
 */
int idm_acl(const idm_map *m, idm_policy pol, const char *acl, bool with_perm, dbuf *out, bool *empty,
            idm_result *res, idm_err *err);

/* ---- watching the file ------------------------------------------------------------------------ */

typedef struct idm_watch idm_watch;

typedef enum idm_poll {
    IDM_POLL_SAME = 0,     /* not looked at (too soon) or unchanged */
    IDM_POLL_RELOADED,     /* a new map is in use */
    IDM_POLL_BROKEN,       /* the file changed and does not load: err says why, the last good map stays
                              (reported once per broken version of the file) */
} idm_poll;

/** Load path (must succeed) and watch it. Returns 0 or -1 with err. */
int idm_watch_new(const char *path, idm_watch **out, idm_err *err);
void idm_watch_free(idm_watch *w);
/** The map in use (a reference: idm_unref it). */
idm_map *idm_watch_get(idm_watch *w);
/**
 * Look at the file if IDM_POLL_MS passed since the last look (now_ms: a monotonic clock; force looks
 * at once) and reload it when its inode, size or mtime changed.
 */
idm_poll idm_watch_poll(idm_watch *w, int64_t now_ms, bool force, idm_err *err);
/** Reloads that took effect so far (0 after idm_watch_new). */
uint64_t idm_watch_generation(idm_watch *w);

#endif
