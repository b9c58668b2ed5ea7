/*
 * fuzz_check: the property check shared by the libFuzzer drivers. A failed CHECK prints the
 * expression with its file and line and aborts, which libFuzzer reports as a crash and saves the
 * input for.
 */
#ifndef DP_FUZZ_CHECK_H
#define DP_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c);                  \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#endif
