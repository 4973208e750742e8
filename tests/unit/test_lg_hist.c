/*
 * test_lg_hist.c: coach-loadgen's log-linear histogram (tools/loadgen/
 * lg_hist.h): bucket edges, relative error, percentiles, merge, clamping.
 */
#include <criterion/criterion.h>
#include <stdint.h>

#include "lg_hist.h"

Test(lg_hist, exact_below_64)
{
    for (uint64_t v = 0; v < 64; v++) {
        cr_assert_eq(lg_hist_index(v), v);
        cr_assert_eq(lg_hist_bucket_low((unsigned)v), v);
        cr_assert_eq(lg_hist_bucket_high((unsigned)v), v);
    }
}

Test(lg_hist, buckets_cover_values_within_3_percent)
{
    uint64_t samples[] = {64, 65, 127, 128, 1000, 12345, 999999, 1u << 30, 123456789012ull};
    for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
        uint64_t v = samples[i];
        unsigned idx = lg_hist_index(v);
        cr_assert(idx < LG_HIST_BUCKETS);
        cr_assert(lg_hist_bucket_low(idx) <= v && v <= lg_hist_bucket_high(idx), "v=%llu",
                  (unsigned long long)v);
        double width = (double)(lg_hist_bucket_high(idx) - lg_hist_bucket_low(idx) + 1);
        cr_assert(width / (double)v <= 1.0 / 32 + 1e-9, "v=%llu", (unsigned long long)v);
    }
    /* consecutive buckets touch */
    for (unsigned i = 1; i < LG_HIST_BUCKETS; i++) {
        cr_assert_eq(lg_hist_bucket_low(i), lg_hist_bucket_high(i - 1) + 1, "bucket %u", i);
    }
}

Test(lg_hist, clamps_huge_values)
{
    struct lg_hist h;
    lg_hist_init(&h);
    lg_hist_record(&h, UINT64_MAX);
    cr_assert_eq(h.max, LG_HIST_MAX_VALUE);
    cr_assert_eq(lg_hist_index(UINT64_MAX), LG_HIST_BUCKETS - 1);
    cr_assert_eq(lg_hist_percentile(&h, 100), LG_HIST_MAX_VALUE);
}

Test(lg_hist, percentiles_of_1_to_10000)
{
    struct lg_hist h;
    lg_hist_init(&h);
    cr_assert_eq(lg_hist_percentile(&h, 50), 0);
    for (uint64_t v = 1; v <= 10000; v++) {
        lg_hist_record(&h, v);
    }
    cr_assert_eq(h.count, 10000);
    cr_assert_eq(h.min, 1);
    cr_assert_eq(h.max, 10000);
    double want[] = {50, 90, 99, 99.9};
    for (size_t i = 0; i < 4; i++) {
        double exact = want[i] * 100;
        double got = (double)lg_hist_percentile(&h, want[i]);
        cr_assert(got >= exact && got <= exact * 1.032, "p%g = %g", want[i], got);
    }
    cr_assert_eq(lg_hist_percentile(&h, 100), 10000);
    cr_assert_float_eq(lg_hist_mean(&h), 5000.5, 1e-6);
}

Test(lg_hist, one_outlier_is_the_max_not_the_p99)
{
    struct lg_hist h;
    lg_hist_init(&h);
    for (int i = 0; i < 999; i++) {
        lg_hist_record(&h, 10);
    }
    lg_hist_record(&h, 5000000);
    cr_assert_eq(lg_hist_percentile(&h, 99), 10);
    cr_assert_eq(lg_hist_percentile(&h, 99.9), 10);
    cr_assert(lg_hist_percentile(&h, 99.95) >= 5000000);
    cr_assert_eq(lg_hist_percentile(&h, 100), 5000000);
}

Test(lg_hist, merge_adds_counts)
{
    struct lg_hist a, b;
    lg_hist_init(&a);
    lg_hist_init(&b);
    lg_hist_record(&a, 5);
    lg_hist_record(&b, 500);
    lg_hist_record(&b, 7);
    lg_hist_merge(&a, &b);
    cr_assert_eq(a.count, 3);
    cr_assert_eq(a.min, 5);
    cr_assert_eq(a.max, 500);
    cr_assert_eq(lg_hist_percentile(&a, 50), 7);
}
