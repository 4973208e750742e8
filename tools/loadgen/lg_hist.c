/*
 * lg_hist.c: the log-linear latency histogram (see lg_hist.h).
 *
 * Index of v: below 2 * LG_HIST_SUB, v itself; above, with shift = the
 * position of v's highest bit minus LG_HIST_SUB_BITS, the bucket is
 * shift * SUB + (v >> shift), where v >> shift lies in [SUB, 2 * SUB).
 * Every bucket of one shift is 2^shift wide.
 */
#include "lg_hist.h"

#include <math.h>
#include <string.h>

void lg_hist_init(struct lg_hist *h)
{
    memset(h, 0, sizeof *h);
    h->min = UINT64_MAX;
}

static unsigned highest_bit(uint64_t v)
{
    unsigned b = 0;
    while (v >>= 1) {
        b++;
    }
    return b;
}

unsigned lg_hist_index(uint64_t v)
{
    if (v > LG_HIST_MAX_VALUE) {
        v = LG_HIST_MAX_VALUE;
    }
    if (v < (uint64_t)2 * LG_HIST_SUB) {
        return (unsigned)v;
    }
    unsigned shift = highest_bit(v) - LG_HIST_SUB_BITS;
    return shift * LG_HIST_SUB + (unsigned)(v >> shift);
}

uint64_t lg_hist_bucket_low(unsigned idx)
{
    if (idx < 2 * LG_HIST_SUB) {
        return idx;
    }
    unsigned shift = idx / LG_HIST_SUB - 1;
    uint64_t sub = idx % LG_HIST_SUB + LG_HIST_SUB;
    return sub << shift;
}

uint64_t lg_hist_bucket_high(unsigned idx)
{
    if (idx < 2 * LG_HIST_SUB) {
        return idx;
    }
    unsigned shift = idx / LG_HIST_SUB - 1;
    return lg_hist_bucket_low(idx) + (UINT64_C(1) << shift) - 1;
}

void lg_hist_record(struct lg_hist *h, uint64_t v)
{
    if (v > LG_HIST_MAX_VALUE) {
        v = LG_HIST_MAX_VALUE;
    }
    h->counts[lg_hist_index(v)]++;
    h->count++;
    h->sum += (double)v;
    if (v < h->min) {
        h->min = v;
    }
    if (v > h->max) {
        h->max = v;
    }
}

void lg_hist_merge(struct lg_hist *dst, const struct lg_hist *src)
{
    for (unsigned i = 0; i < LG_HIST_BUCKETS; i++) {
        dst->counts[i] += src->counts[i];
    }
    dst->count += src->count;
    dst->sum += src->sum;
    if (src->min < dst->min) {
        dst->min = src->min;
    }
    if (src->max > dst->max) {
        dst->max = src->max;
    }
}

uint64_t lg_hist_percentile(const struct lg_hist *h, double p)
{
    if (h->count == 0) {
        return 0;
    }
    if (p < 0) {
        p = 0;
    }
    if (p > 100) {
        p = 100;
    }
    /* the epsilon keeps 99.9% of 1000 at rank 999 despite rounding */
    uint64_t rank = (uint64_t)ceil(p / 100.0 * (double)h->count - 1e-9);
    if (rank == 0) {
        rank = 1;
    }
    uint64_t seen = 0;
    for (unsigned i = 0; i < LG_HIST_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            uint64_t v = lg_hist_bucket_high(i);
            return v > h->max ? h->max : v;
        }
    }
    return h->max;
}

double lg_hist_mean(const struct lg_hist *h)
{
    return h->count == 0 ? 0.0 : h->sum / (double)h->count;
}
