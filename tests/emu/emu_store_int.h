/*
 * emu_store_int: private to emu_store.c and emu_store_log.c. The store's internal node wrapper (enode),
 * the replay id map, struct emu_store itself, and the emu_store__ functions one file calls in the other:
 * emu_store.c owns the tree, locking, objects and public API; emu_store_log.c owns the metadata log
 * (JSON records, appends, compaction, replay at open). Nothing outside these two files includes this.
 */
#ifndef EMU_STORE_INT_H
#define EMU_STORE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "emu_store.h"

#define ROOT_ID 1
#define LOG_NAME "meta.log"
#define LOG_TMP_NAME "meta.log.tmp"

/* The store allocates every node, so it wraps the public struct with private bookkeeping. */
typedef struct enode {
    emu_node n;          /* first member: an emu_node * of the store is an enode * */
    size_t namelen;      /* strlen(n.name), used by the bisection */
    int64_t counted_len; /* this file's committed length as counted in s->bytes */
    uint64_t parent_id;  /* replay only */
    int state;           /* replay only: RS_* */
} enode;

enum { RS_UNKNOWN = 0, RS_LIVE = 1, RS_DEAD = 2, RS_VISITING = 3 };

static inline enode *en(const emu_node *n)
{
    return (enode *)(void *)n;
}

/* id -> node map for replay: open addressing, linear probing; a NULL value is a tombstone. */
typedef struct idmap {
    uint64_t *keys; /* 0 = empty slot */
    enode **vals;
    size_t cap, used;
} idmap;

/* The pool owner and group strings point into: each distinct string once, freed with the store
 * (principals are few: a user, a group, a few service identities). Open addressing. */
typedef struct strpool {
    char **slots;
    size_t cap, used;
} strpool;

struct emu_store {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int dirfd, objfd, logfd, lockfd;
    bool sync;
    emu_node *root;
    uint64_t next_id;
    uint64_t etag;          /* last ETag handed out */
    uint64_t records;       /* records in meta.log */
    uint64_t compact_after; /* do not retry a failed compaction before this many records */
    off_t log_size;
    _Atomic uint64_t nnodes;
    _Atomic int64_t bytes;
    strpool pool;           /* owner/group strings (under mu, or before the store is shared) */
};

typedef struct pvec {
    void **p;
    size_t n, cap;
} pvec;

typedef struct replay {
    idmap map;
    uint64_t max_id, max_etag, records;
} replay;

/* emu_store.c */
__attribute__((format(printf, 3, 4))) void emu_store__set_err(char *err, size_t errlen, const char *fmt, ...);
int emu_store__pvec_push(pvec *v, void *x);
void emu_store__obj_name(uint64_t id, char out[17]);
void emu_store__node_free(emu_node *n);
int emu_store__name_cmp(const emu_node *c, const char *s, size_t len);
int emu_store__children_reserve(emu_node *dir, size_t want);
int emu_store__name_check(const char *name);
const char *emu_store__intern(emu_store *s, const char *v);

/* emu_store_log.c */
int emu_store__log_append(emu_store *s, const char *line, size_t len);
int emu_store__log_put(emu_store *s, const emu_node *n, uint64_t parent_id, const char *name);
void emu_store__maybe_compact(emu_store *s);
enode *emu_store__idmap_get(const idmap *m, uint64_t id);
void emu_store__idmap_free(idmap *m, bool free_nodes);
int emu_store__replay_log(emu_store *s, replay *r, char *err, size_t errlen);
int emu_store__build_tree(emu_store *s, replay *r);
void emu_store__objects_reconcile(emu_store *s, idmap *m);

#endif
