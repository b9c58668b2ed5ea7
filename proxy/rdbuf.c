/*
 * rdbuf: a read's relay buffer and the pool that bounds all of them (see rdbuf.h).
 */
#include "rdbuf.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

void rdbuf_pool_init(rdbuf_pool *p, uint64_t limit, metrics_gauge *gauge)
{
    atomic_init(&p->held, 0);
    p->limit = limit;
    p->gauge = gauge;
}

uint64_t rdbuf_pool_held(rdbuf_pool *p) { return atomic_load_explicit(&p->held, memory_order_relaxed); }

static void pool_add(rdbuf_pool *p, uint64_t n)
{
    atomic_fetch_add_explicit(&p->held, n, memory_order_relaxed);
    if (p->gauge) metrics_gauge_add(p->gauge, (int64_t)n);
}

static void pool_sub(rdbuf_pool *p, uint64_t n)
{
    atomic_fetch_sub_explicit(&p->held, n, memory_order_relaxed);
    if (p->gauge) metrics_gauge_add(p->gauge, -(int64_t)n);
}

/* Take n more bytes from the pool if it stays within its limit. */
static bool pool_try_add(rdbuf_pool *p, uint64_t n)
{
    uint64_t cur = atomic_load_explicit(&p->held, memory_order_relaxed);
    do {
        if (cur > p->limit || n > p->limit - cur) return false;
    } while (!atomic_compare_exchange_weak_explicit(&p->held, &cur, cur + n, memory_order_relaxed,
                                                    memory_order_relaxed));
    if (p->gauge) metrics_gauge_add(p->gauge, (int64_t)n);
    return true;
}

int rdbuf_init(rdbuf *b, rdbuf_pool *p, size_t cap)
{
    memset(b, 0, sizeof *b);
    if (cap < RDBUF_FLOOR) cap = RDBUF_FLOOR;
    b->buf = malloc(RDBUF_FLOOR);
    if (!b->buf) return -ENOMEM;
    b->pool = p;
    b->cap = cap;
    b->alloc = RDBUF_FLOOR;
    pool_add(p, b->alloc);
    return 0;
}

void rdbuf_free(rdbuf *b)
{
    if (!b->buf) return;
    if (b->alloc > RDBUF_FLOOR)
        munmap(b->buf, b->alloc);
    else
        free(b->buf);
    pool_sub(b->pool, b->alloc);
    b->buf = NULL;
    b->alloc = b->rpos = b->wpos = 0;
}

/* Resize to size bytes (more than alloc), the pool already charged for the difference; the unread bytes
 * move to the front. Past the floor a buffer is its own mapping, not heap: freed, its pages go back to
 * the system at once, where buffers grown and freed on the allocator's per-thread arenas stayed resident
 * after the reads ended (measured: 256 slow readers, 30 MiB more peak RSS than the buffers held). */
static bool grow_to(rdbuf *b, size_t size)
{
    size_t used = rdbuf_used(b);
    char *nb;
    if (b->alloc <= RDBUF_FLOOR) {
        nb = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (nb == MAP_FAILED) return false;
        memcpy(nb, b->buf + b->rpos, used);
        free(b->buf);
    } else {
        if (b->rpos > 0) memmove(b->buf, b->buf + b->rpos, used);
        nb = mremap(b->buf, b->alloc, size, MREMAP_MAYMOVE);
        if (nb == MAP_FAILED) {
            b->rpos = 0;
            b->wpos = used;
            return false;
        }
    }
    b->buf = nb;
    b->alloc = size;
    b->rpos = 0;
    b->wpos = used;
    return true;
}

rdbuf_put_result rdbuf_put(rdbuf *b, const void *p, size_t n)
{
    size_t used = rdbuf_used(b);
    if (used + n > b->alloc) {
        /* Does not fit even moved to the front: grow (doubling, to the cap) if the pool has room. */
        size_t want = b->alloc;
        while (want < used + n && want < b->cap) want = want > b->cap / 2 ? b->cap : want * 2;
        bool forced = used == 0; /* a piece larger than the whole buffer: taken whole, once */
        if (want < used + n) {
            if (!forced) return RDBUF_FULL;
            want = n;
        }
        size_t more = want - b->alloc;
        if (forced)
            pool_add(b->pool, more);
        else if (!pool_try_add(b->pool, more))
            return RDBUF_FULL;
        if (!grow_to(b, want)) {
            pool_sub(b->pool, more);
            return forced ? RDBUF_NOMEM : RDBUF_FULL;
        }
    } else if (b->wpos + n > b->alloc) {
        memmove(b->buf, b->buf + b->rpos, used);
        b->rpos = 0;
        b->wpos = used;
    }
    memcpy(b->buf + b->wpos, p, n);
    b->wpos += n;
    return RDBUF_OK;
}

size_t rdbuf_take(rdbuf *b, void *out, size_t max)
{
    size_t used = rdbuf_used(b);
    size_t k = used < max ? used : max;
    memcpy(out, b->buf + b->rpos, k);
    b->rpos += k;
    if (b->rpos == b->wpos) b->rpos = b->wpos = 0;
    return k;
}
