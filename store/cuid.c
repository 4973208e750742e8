/*
 * cuid.c: store_cuid(), ids for rows the gateway inserts into the
 * application's tables.
 *
 * The application (Prisma `@default(cuid())`) uses cuid v1 ids: 'c' then 24
 * characters of [a-z0-9]. Ours have the same shape, so both kinds of id sit
 * side by side in the same TEXT columns:
 *
 *   c  TTTTTTTT  RRRRRRRRRRRRRRRR
 *      8 chars   16 chars
 *
 *  - T: the wall clock in milliseconds since the Unix epoch, base 36,
 *    zero-padded (the same timestamp field cuid v1 starts with), so ids sort
 *    roughly by creation time. It wraps modulo 36^8 ms, in the year 2059;
 *  - R: 16 characters drawn uniformly from [0-9a-z] (libsodium's
 *    randombytes_buf(), bytes below 252 = 7 * 36 taken modulo 36;
 *    log2(36^16) = 82 bits), so ids made in the same millisecond, in any
 *    process, do not collide in practice.
 * No state is kept: any thread may call it at any time.
 */
#include <stdint.h>
#include <time.h>

#include <sodium.h>

#include "store.h"

#define CUID_TIME_CHARS   8
#define CUID_RANDOM_CHARS (STORE_CUID_LEN - 1 - CUID_TIME_CHARS)

static const char base36[] = "0123456789abcdefghijklmnopqrstuvwxyz";

_Static_assert(sizeof base36 - 1 == 36, "36 digits");
_Static_assert(CUID_RANDOM_CHARS == 16, "c + 8 time + 16 random = 25");

static uint64_t wall_clock_ms(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0 || ts.tv_sec < 0) {
        return 0; /* cannot happen with CLOCK_REALTIME; ids stay random */
    }
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void store_cuid(char out[STORE_CUID_LEN + 1])
{
    uint64_t t = wall_clock_ms();

    out[0] = 'c';
    for (int i = CUID_TIME_CHARS; i >= 1; i--) {
        out[i] = base36[t % 36u];
        t /= 36u;
    }
    /* One read of the system's randomness per id (not one per character:
     * a system call each, at thousands of messages a second); bytes of
     * 252 and above are dropped so that each character stays uniform. */
    unsigned char rnd[48];
    size_t used = sizeof rnd;
    for (int i = 1 + CUID_TIME_CHARS; i < STORE_CUID_LEN;) {
        if (used == sizeof rnd) {
            randombytes_buf(rnd, sizeof rnd);
            used = 0;
        }
        unsigned char b = rnd[used++];
        if (b < 252u) {
            out[i++] = base36[b % 36u];
        }
    }
    sodium_memzero(rnd, sizeof rnd);
    out[STORE_CUID_LEN] = '\0';
}
