/*
 * test_cuid.c: store_cuid() makes cuid-compatible ids: 25 characters, 'c'
 * then [a-z0-9], a base-36 millisecond timestamp first, and no repeats.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "store.h"

#define N_IDS 100000

struct cuid_buf {
    char s[STORE_CUID_LEN + 1];
};

static void init(void)
{
    cr_assert(sodium_init() >= 0);
}

TestSuite(cuid, .init = init);

Test(cuid, shape)
{
    for (int i = 0; i < 1000; i++) {
        char id[STORE_CUID_LEN + 1];
        memset(id, 'X', sizeof id);
        store_cuid(id);
        cr_assert_eq(strlen(id), 25u, "%s", id);
        cr_assert_eq(id[0], 'c');
        for (size_t k = 1; k < STORE_CUID_LEN; k++) {
            char c = id[k];
            cr_assert((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'), "bad char in %s", id);
        }
    }
}

/* The 8 characters after 'c' are the wall clock in ms, base 36. */
Test(cuid, timestamp_prefix)
{
    struct timespec before, after;
    char id[STORE_CUID_LEN + 1];

    clock_gettime(CLOCK_REALTIME, &before);
    store_cuid(id);
    clock_gettime(CLOCK_REALTIME, &after);

    char prefix[9];
    memcpy(prefix, id + 1, 8);
    prefix[8] = '\0';
    char *end = NULL;
    long long ms = strtoll(prefix, &end, 36);
    cr_assert_eq(*end, '\0', "%s", id);
    long long lo = (long long)before.tv_sec * 1000 + before.tv_nsec / 1000000;
    long long hi = (long long)after.tv_sec * 1000 + after.tv_nsec / 1000000;
    cr_assert(ms >= lo && ms <= hi, "prefix %s = %lld not in [%lld, %lld]", prefix, ms, lo, hi);
}

static int cmp_cuid(const void *a, const void *b)
{
    return memcmp(a, b, sizeof(struct cuid_buf));
}

Test(cuid, unique_over_100k)
{
    struct cuid_buf *ids = calloc(N_IDS, sizeof *ids);
    cr_assert_not_null(ids);
    for (size_t i = 0; i < N_IDS; i++) {
        store_cuid(ids[i].s);
    }
    qsort(ids, N_IDS, sizeof *ids, cmp_cuid);
    size_t dups = 0;
    for (size_t i = 1; i < N_IDS; i++) {
        dups += memcmp(ids[i - 1].s, ids[i].s, sizeof ids[i].s) == 0;
    }
    free(ids);
    cr_assert_eq(dups, 0u);
}

/* Every base-36 digit turns up in the random part, and none dominates. */
Test(cuid, random_part_covers_alphabet)
{
    size_t counts[36] = {0};
    const size_t n = 20000;
    for (size_t i = 0; i < n; i++) {
        char id[STORE_CUID_LEN + 1];
        store_cuid(id);
        for (size_t k = 9; k < STORE_CUID_LEN; k++) {
            char c = id[k];
            counts[c <= '9' ? (size_t)(c - '0') : (size_t)(c - 'a' + 10)]++;
        }
    }
    double expect = (double)(n * 16) / 36.0;
    for (size_t d = 0; d < 36; d++) {
        cr_assert(counts[d] > expect * 0.9 && counts[d] < expect * 1.1, "digit %zu seen %zu times",
                  d, counts[d]);
    }
}
