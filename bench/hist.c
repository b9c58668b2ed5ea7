/* bn_hist: log-linear histogram. Index layout: values 0..127 map to themselves; a larger value with its
 * highest set bit at position m (m >= 7) keeps its top 7 bits, giving shift = m - 6 and index
 * (shift + 1) * 64 + (v >> shift) - 64. The bucket ranges tile the 64-bit range without gaps. */
#include "hist.h"

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
