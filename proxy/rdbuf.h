/*
 * rdbuf: the buffer a read's answer goes through on its way from Gen1 (or Gen2, gen2-only) to the reader
 * (front_up.c "read streams"), and the budget all of them share.
 *
 * Memory. A read's buffer starts at RDBUF_FLOOR bytes (16 KiB, one of libcurl's pieces) and
 * doubles, up to its own cap (limits.stream_buffer_bytes), only when a piece does not fit while the reader
 * is behind and the pool still has room: every buffer's size is counted in the pool, and a buffer grows
 * only while the pool's total stays within its limit (limits.stream_memory_bytes, never less than one cap).
 * A buffer that cannot grow is full: the caller pauses the sender. The floor is always granted (a read
 * must be able to move), so reads together hold at most
 *   limit + reads x RDBUF_FLOOR
 * (a piece larger than the floor, which libcurl never hands over, excepted), and no growth happens at all
 * once the floors alone fill the limit: 256 slow readers hold at most 8 MiB under the default limit (4 MiB),
 * where a fixed 1 MiB per read held 256 MiB (the regression README "Performance" names). A buffer keeps what it
 * grew to until it is freed.
 *
 * Threads. A buffer is guarded by its owner's lock (front_up's fr_stream mutex); the pool is shared
 * through atomics only.
 */
#ifndef DP_RDBUF_H
#define DP_RDBUF_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "metrics.h"

#define RDBUF_FLOOR ((size_t)16 << 10)

typedef struct rdbuf_pool {
    _Atomic uint64_t held;  /* bytes every live buffer holds (their sizes) */
    uint64_t limit;         /* growth past the floor stops here */
    metrics_gauge *gauge;   /* follows held when set (dualpipe_front_read_buffer_bytes) */
} rdbuf_pool;

typedef struct rdbuf {
    rdbuf_pool *pool;
    char *buf;
    size_t cap;             /* the most this buffer may grow to (a single larger piece excepted) */
    size_t alloc;           /* its size now, counted in the pool */
    size_t rpos, wpos;      /* bytes [rpos, wpos) wait for the reader */
} rdbuf;

typedef enum { RDBUF_OK = 0, RDBUF_FULL, RDBUF_NOMEM } rdbuf_put_result;

/** A pool whose buffers grow while they hold at most limit bytes together (0: no growth past the floor). */
void rdbuf_pool_init(rdbuf_pool *p, uint64_t limit, metrics_gauge *gauge);
/** Bytes the pool's buffers hold now. */
uint64_t rdbuf_pool_held(rdbuf_pool *p);

/** A buffer of at most cap bytes (at least RDBUF_FLOOR) in pool p: RDBUF_FLOOR bytes now. 0 or -ENOMEM. */
int rdbuf_init(rdbuf *b, rdbuf_pool *p, size_t cap);
/** Free the buffer's memory and give its bytes back to the pool. */
void rdbuf_free(rdbuf *b);

/** Bytes waiting for the reader. */
static inline size_t rdbuf_used(const rdbuf *b) { return b->wpos - b->rpos; }
/** The buffer's size now (what "full" means for the sender until it grows). */
static inline size_t rdbuf_size(const rdbuf *b) { return b->alloc; }

/**
 * Append n bytes. RDBUF_FULL (nothing taken) when they do not fit and the buffer may not grow (past its
 * cap, or the pool is at its limit): the sender waits until the reader took some. A piece larger than
 * the whole buffer is taken into an empty buffer whatever the pool says (it grows once to the piece).
 * RDBUF_NOMEM when memory for a needed growth was not there and the buffer is empty.
 */
rdbuf_put_result rdbuf_put(rdbuf *b, const void *p, size_t n);
/** Take up to max bytes into out; the number taken. */
size_t rdbuf_take(rdbuf *b, void *out, size_t max);

#endif
