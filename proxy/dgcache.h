/*
 * dgcache: what the applier remembers of each file's recorded digest between its writes: the CRC-32C
 * of the file's first len bytes as the proxy wrote them to Gen2, and the file's property list
 * (x-ms-properties) as Gen2 holds it after the proxy's last write of it (or unknown), when that write
 * was (the caller's clock) and whether the digest is newer than what Gen2's property says (dirty: the
 * applier writes it later, once per burst or interval). Keyed by Gen1
 * path, bounded (least recently used entries go first), thread-safe (its own mutex). An entry is a
 * promise the applier keeps: it is dropped (or moved) by every operation that changes the file in a
 * way the applier does not follow byte for byte, so what it says is never wrong, only sometimes
 * missing (then the applier reads the property from Gen2).
 */
#ifndef DP_DGCACHE_H
#define DP_DGCACHE_H

#include <stdbool.h>
#include <stdint.h>

typedef struct dgcache dgcache;

/** A cache of at most max entries (0: it remembers nothing; every look-up misses). NULL on OOM. */
dgcache *dgc_new(unsigned max);
/** Free it and every entry (NULL is fine). */
void dgc_free(dgcache *c);

/** An entry: the digest, when the property was last written (ms, the caller's clock), whether the digest
 *  is newer than the property. */
typedef struct dgc_val {
    uint32_t crc;
    uint64_t len;
    int64_t written_ms;
    bool dirty;
} dgc_val;

/**
 * The entry of path: true with *v (and, when props is not NULL, *props: a malloc'd copy of the
 * property list, or NULL when it is unknown; the caller frees it); false when there is none (or the
 * copy could not be made). A hit makes the entry the most recently used.
 */
bool dgc_get(dgcache *c, const char *path, dgc_val *v, char **props);
/** Set path's entry (props copied; NULL: unknown), dropping the least recently used one when full.
 *  Returns 0, or -1 (out of memory: path then has no entry). */
int dgc_put(dgcache *c, const char *path, const dgc_val *v, const char *props);
/** Forget path (no-op when unknown). */
void dgc_drop(dgcache *c, const char *path);
/** Forget path and every path under it (path + "/..."): a walk of every entry (dgc_drop is constant time). */
void dgc_drop_tree(dgcache *c, const char *root);
/** A rename: the entries of src and under it are now those of dst (and under it); what dst and its
 *  subtree had is forgotten first. Entries that cannot be moved (out of memory) are dropped. */
void dgc_move(dgcache *c, const char *src, const char *dst);
/** The bound given to dgc_new (0: the cache remembers nothing). */
unsigned dgc_max(const dgcache *c);
/** Entries held now. */
unsigned dgc_count(dgcache *c);

#endif
