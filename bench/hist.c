/* bn_hist: log-linear histogram. Index layout: values 0..127 map to themselves; a larger value with its
 * highest set bit at position m (m >= 7) keeps its top 7 bits, giving shift = m - 6 and index
 * (shift + 1) * 64 + (v >> shift) - 64. The bucket ranges tile the 64-bit range without gaps. */
#include "hist.h"

#include <stdlib.h>
#include <string.h>

void bn_hist_init(struct bn_hist *h)
{
    memset(h, 0, sizeof(*h));
    h->min = UINT64_MAX;
}

unsigned bn_hist_index(uint64_t v)
{
    if (v < 128)
        return (unsigned)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    unsigned shift = msb - 6u;
    return (shift + 1u) * 64u + (unsigned)(v >> shift) - 64u;
}

uint64_t bn_hist_bucket_high(unsigned idx)
{
    if (idx < 128)
        return idx;
    unsigned shift = idx / 64u - 1u;
    uint64_t m = (uint64_t)(idx % 64u) + 64u;
    if (shift >= 57u && m == 127u)
        return UINT64_MAX;
    return ((m + 1u) << shift) - 1u;
}

void bn_hist_record(struct bn_hist *h, uint64_t v)
{
    h->b[bn_hist_index(v)]++;
    h->count++;
    h->sum += (long double)v;
    if (v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
}

void bn_hist_merge(struct bn_hist *dst, const struct bn_hist *src)
{
    if (src->count == 0)
        return;
    for (unsigned i = 0; i < BN_HIST_BUCKETS; i++)
        dst->b[i] += src->b[i];
    dst->count += src->count;
    dst->sum += src->sum;
    if (src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
}

uint64_t bn_hist_quantile(const struct bn_hist *h, double q)
{
    if (h->count == 0)
        return 0;
    if (q <= 0)
        return h->min;
    /* rank of the wanted value, 1-based: ceil(q * count) */
    long double want = (long double)q * (long double)h->count;
    uint64_t rank = (uint64_t)want;
    if ((long double)rank < want)
        rank++;
    if (rank < 1)
        rank = 1;
    if (rank > h->count)
        rank = h->count;
    uint64_t seen = 0;
    for (unsigned i = 0; i < BN_HIST_BUCKETS; i++) {
        seen += h->b[i];
        if (seen >= rank) {
            uint64_t hi = bn_hist_bucket_high(i);
            return hi > h->max ? h->max : hi < h->min ? h->min : hi;
        }
    }
    return h->max;
}

double bn_hist_mean(const struct bn_hist *h)
{
    return h->count ? (double)(h->sum / (long double)h->count) : 0.0;
}

size_t bn_hist_cdf(const struct bn_hist *h, uint64_t *val, double *frac, size_t cap)
{
    size_t n = 0;
    uint64_t seen = 0;
    if (h->count == 0)
        return 0;
    for (unsigned i = 0; i < BN_HIST_BUCKETS && n < cap; i++) {
        if (h->b[i] == 0)
            continue;
        seen += h->b[i];
        uint64_t hi = bn_hist_bucket_high(i);
        val[n] = hi > h->max ? h->max : hi < h->min ? h->min : hi;
        frac[n] = (double)seen / (double)h->count;
        n++;
    }
    return n;
}

/* ---- per-second series ---- */

void bn_hist_ts_init(struct bn_hist_ts *ts)
{
    memset(ts, 0, sizeof(*ts));
    bn_hist_init(&ts->cur);
}

/* Stores the current second's summary at index cur_sec (zero summaries for any seconds skipped before
 * it) and empties the current second. */
static void ts_flush(struct bn_hist_ts *ts)
{
    if (ts->oom)
        return;
    size_t need = (size_t)ts->cur_sec + 1;
    if (need > ts->cap) {
        size_t cap = ts->cap ? ts->cap : 64;
        while (cap < need)
            cap *= 2;
        struct bn_hist_sec *s = realloc(ts->sec, cap * sizeof(*s));
        if (s == NULL) {
            ts->oom = true;
            return;
        }
        ts->sec = s;
        ts->cap = cap;
    }
    while (ts->n < (size_t)ts->cur_sec)
        memset(&ts->sec[ts->n++], 0, sizeof(ts->sec[0]));
    struct bn_hist_sec *s = &ts->sec[ts->n++];
    s->ops = ts->cur.count;
    s->bytes = ts->cur_bytes;
    s->errors = ts->cur_errors;
    s->p50 = bn_hist_quantile(&ts->cur, 0.5);
    s->p99 = bn_hist_quantile(&ts->cur, 0.99);
    s->max = ts->cur.count ? ts->cur.max : 0;
    bn_hist_init(&ts->cur);
    ts->cur_bytes = 0;
    ts->cur_errors = 0;
}

void bn_hist_ts_record(struct bn_hist_ts *ts, uint64_t t_ns, uint64_t lat_ns, uint64_t bytes, bool ok)
{
    uint64_t sec = t_ns / 1000000000ull;
    if (sec > ts->cur_sec) {
        if (ts->cur.count > 0 || ts->n > 0 || ts->cur_sec > 0)
            ts_flush(ts);
        ts->cur_sec = sec;
    }
    bn_hist_record(&ts->cur, lat_ns);
    ts->cur_bytes += bytes;
    ts->cur_errors += ok ? 0 : 1;
}

void bn_hist_ts_finish(struct bn_hist_ts *ts)
{
    if (ts->cur.count > 0 || ts->n > 0)
        ts_flush(ts);
}

void bn_hist_ts_free(struct bn_hist_ts *ts)
{
    free(ts->sec);
    ts->sec = NULL;
    ts->n = ts->cap = 0;
}
