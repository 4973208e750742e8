/*
 * lg_hist.h: an HDR-style latency histogram for coach-loadgen.
 *
 * Log-linear buckets: exact below 64, then 32 sub-buckets per power of two
 * (a relative error under 3.2%), up to LG_HIST_MAX_VALUE; larger values are
 * clamped to it. Fixed size, no allocation, so it embeds anywhere. Values
 * are unitless (coach-loadgen records microseconds). Pure: no I/O, no clock.
 * Not thread-safe: one owner.
 */
#ifndef COACH_LG_HIST_H
#define COACH_LG_HIST_H

#include <stdint.h>

#define LG_HIST_SUB_BITS  5
#define LG_HIST_SUB       (1u << LG_HIST_SUB_BITS)
#define LG_HIST_MAX_SHIFT 36 /* values up to 2^42 - 1 */
#define LG_HIST_BUCKETS   ((LG_HIST_MAX_SHIFT + 2) * LG_HIST_SUB)
#define LG_HIST_MAX_VALUE ((UINT64_C(1) << (LG_HIST_MAX_SHIFT + LG_HIST_SUB_BITS + 1)) - 1)

struct lg_hist {
    uint64_t counts[LG_HIST_BUCKETS];
    uint64_t count;
    uint64_t min; /* UINT64_MAX while empty */
    uint64_t max;
    double sum;
};

/* Empty h. */
void lg_hist_init(struct lg_hist *h);

/* Count one value v (clamped to LG_HIST_MAX_VALUE). */
void lg_hist_record(struct lg_hist *h, uint64_t v);

/* Add every count of src to dst. */
void lg_hist_merge(struct lg_hist *dst, const struct lg_hist *src);

/* The value at percentile p (0..100): the highest value equivalent to the
 * bucket holding the ceil(p% of count)-th smallest value, never above max.
 * 0 when h is empty. */
uint64_t lg_hist_percentile(const struct lg_hist *h, double p);

/* The mean, 0 when empty. */
double lg_hist_mean(const struct lg_hist *h);

/* Bucket arithmetic, exposed for the tests. */
unsigned lg_hist_index(uint64_t v);
uint64_t lg_hist_bucket_low(unsigned idx);
uint64_t lg_hist_bucket_high(unsigned idx);

#endif
