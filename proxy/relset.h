/*
 * relset: a set of Gen1 paths that answers "does path p relate to a member" (p equals a member, is an
 * ancestor of one, or lies under one: the conflict rule of the applier's and the feeder's ordering,
 * xlate_path_related) in time proportional to p's depth, not to the number of members.
 *
 * A path is kept as its chain of prefix hashes ("/", "/a", "/a/b" for "/a/b"; FNV-1a, 64 bits): each
 * node of the chain is marked UNDER (some member lies at or under it), the last one also EXACT. A path
 * relates to a member when its own node is UNDER or one of its proper ancestors is EXACT. Hash
 * collisions can only report a relation that is not there (an extra wait), never miss one.
 *
 * Paths are normalised absolute paths (whreq_norm_path: no trailing slash, no empty components).
 * Not thread-safe.
 */
#ifndef DP_RELSET_H
#define DP_RELSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rset {
    uint64_t *key;      /* 0: empty slot (a hash of 0 is stored as 1) */
    uint8_t *flag;      /* RSET_UNDER | RSET_EXACT */
    size_t mask, n;
} rset;

/** A path's chain of prefix hashes, root first, the path itself last. */
typedef struct rset_chain {
    uint64_t *h;
    int n;
} rset_chain;

/** Compute p's chain (malloc'd into c->h). 0 or -ENOMEM. */
int rset_chain_of(const char *p, rset_chain *c);
void rset_chain_free(rset_chain *c);

void rset_init(rset *s);
void rset_free(rset *s);
/** Empty the set (keeps its memory). */
void rset_clear(rset *s);
/** Add a path by its chain. 0 or -ENOMEM (the set is then unchanged enough to stay conservative: the
 *  caller treats the failure as "everything conflicts"). */
int rset_add(rset *s, const rset_chain *c);
/** Whether the path of chain c relates to a member. */
bool rset_hits(const rset *s, const rset_chain *c);
/** The same by path (computes the chain on the stack for paths up to 64 levels; deeper: true). */
bool rset_hits_path(const rset *s, const char *p);
/** Add a path by name. 0 or -ENOMEM. */
int rset_add_path(rset *s, const char *p);

#endif
