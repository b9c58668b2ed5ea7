/*
 * metrics: a small, thread-safe registry of counters, gauges and histograms rendered in the
 * Prometheus text exposition format (version 0.0.4) with one "# HELP" and one "# TYPE" line per
 * metric family. Registration (get-or-create by name and label text) takes a mutex and is meant for
 * start-up or for caching the returned pointer; updates are lock-free atomics and may come from any
 * thread. Series live as long as the registry: the pointers it returns stay valid until metrics_free.
 *
 * Labels are kept simple: the caller passes the label text already formatted, e.g.
 * `op="CREATE",code="2xx"` (NULL or "" for none). Label values must come from a fixed set chosen by
 * the program (op names, status classes), never from client input; text containing '\n', '{' or
 * '}' is refused. Logs nothing.
 */
#ifndef DP_METRICS_H
#define DP_METRICS_H

#include <stdatomic.h>
#include <stdint.h>

#include "dbuf.h"

#define METRICS_MAX_BUCKETS 24

typedef struct metrics metrics;

/** A monotonically increasing count. */
typedef struct metrics_counter {
    _Atomic uint64_t v;
} metrics_counter;

/** A value that goes up and down. */
typedef struct metrics_gauge {
    _Atomic int64_t v;
} metrics_gauge;

/** Observations sorted into fixed buckets (upper bounds, ascending), plus their sum and count. */
typedef struct metrics_histogram {
    int nbounds;
    double bounds[METRICS_MAX_BUCKETS];
    _Atomic uint64_t buckets[METRICS_MAX_BUCKETS + 1]; /* per bucket (not cumulative); last = +Inf */
    _Atomic uint64_t sum_bits;                         /* double sum, as bits (CAS updated) */
    _Atomic uint64_t count;
} metrics_histogram;

/** Create an empty registry. Returns NULL when out of memory. */
metrics *metrics_new(void);
/** Free the registry and every series it holds (pointers handed out become invalid). */
void metrics_free(metrics *m);

/**
 * Get or create the counter series name{labels}. help is used when the family is created.
 * Returns NULL when out of memory, when name or labels are malformed, or when the family already
 * exists with another type.
 */
metrics_counter *metrics_counter_get(metrics *m, const char *name, const char *help, const char *labels);
/** Same for a gauge. */
metrics_gauge *metrics_gauge_get(metrics *m, const char *name, const char *help, const char *labels);
/**
 * Same for a histogram with nbounds upper bounds (1..METRICS_MAX_BUCKETS, strictly ascending);
 * an existing series keeps its own bounds.
 */
metrics_histogram *metrics_histogram_get(metrics *m, const char *name, const char *help, const char *labels,
                                         const double *bounds, int nbounds);
/**
 * Register a gauge whose value is read by calling fn(ud) at render time (e.g. a queue length owned by
 * another module). fn runs under the registry lock, on the rendering thread; it must be thread-safe
 * and must not call back into the registry. Returns 0, or -1 as metrics_counter_get would fail.
 */
int metrics_gauge_fn(metrics *m, const char *name, const char *help, const char *labels, int64_t (*fn)(void *ud),
                     void *ud);

static inline void metrics_inc(metrics_counter *c)
{
    if (c) atomic_fetch_add_explicit(&c->v, 1, memory_order_relaxed);
}
static inline void metrics_add(metrics_counter *c, uint64_t n)
{
    if (c) atomic_fetch_add_explicit(&c->v, n, memory_order_relaxed);
}
static inline uint64_t metrics_counter_value(const metrics_counter *c)
{
    return c ? atomic_load_explicit(&c->v, memory_order_relaxed) : 0;
}
static inline void metrics_gauge_set(metrics_gauge *g, int64_t v)
{
    if (g) atomic_store_explicit(&g->v, v, memory_order_relaxed);
}
static inline void metrics_gauge_add(metrics_gauge *g, int64_t d)
{
    if (g) atomic_fetch_add_explicit(&g->v, d, memory_order_relaxed);
}
static inline int64_t metrics_gauge_value(const metrics_gauge *g)
{
    return g ? atomic_load_explicit(&g->v, memory_order_relaxed) : 0;
}
/** Record one observation (thread-safe). */
void metrics_observe(metrics_histogram *h, double v);

/** Append the whole registry in Prometheus text format to out. Returns 0 or a dbuf error. */
__attribute__((warn_unused_result)) int metrics_render(metrics *m, dbuf *out);

/** The Content-Type of metrics_render's output. */
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

#endif
