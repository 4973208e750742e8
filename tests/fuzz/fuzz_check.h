/*
 * fuzz_check.h: the invariant check shared by the libFuzzer targets.
 *
 * FUZZ_CHECK(cond) prints the failed condition and aborts, so libFuzzer
 * records the input as a crash (assert() would vanish under NDEBUG). Like
 * assert, the condition must have no side effects.
 */
#ifndef COACH_FUZZ_CHECK_H
#define COACH_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

static inline void fuzz_fail(const char *file, int line, const char *what)
{
    fprintf(stderr, "%s:%d: fuzz invariant failed: %s\n", file, line, what);
    abort();
}

#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fuzz_fail(__FILE__, __LINE__, #cond);                                                  \
        }                                                                                          \
    } while (0)

#endif
