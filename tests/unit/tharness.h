/*
 * tharness: the tiny unit-test harness. A test file defines test functions with TEST(name) and lists
 * them in a TESTS table; main() runs each in a forked child under an alarm, so a crash or a hang in
 * one test is reported and the others still run. Assertions print both operands. Exit status: 0 all
 * passed, 1 some failed, 77 all skipped (CTest SKIP_RETURN_CODE).
 *
 *   TEST(parses_octal) { ASSERT_EQ_INT(acl_parse_octal("755", &m, &e), 0); }
 *   TESTS(T(parses_octal), T(...));
 */
#ifndef DP_THARNESS_H
#define DP_THARNESS_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define TEST(name) static void test_##name(void)
#define T(name) { #name, test_##name }
#define TH_SKIP 77

typedef struct th_case {
    const char *name;
    void (*fn)(void);
} th_case;

#define TH_FAIL_AT(...)                                                                            \
    do {                                                                                           \
        fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                                            \
        fprintf(stderr, __VA_ARGS__);                                                              \
        fputc('\n', stderr);                                                                       \
        exit(1);                                                                                   \
    } while (0)

#define ASSERT_TRUE(c)                                                                             \
    do {                                                                                           \
        if (!(c)) TH_FAIL_AT("assertion failed: %s", #c);                                          \
    } while (0)
#define ASSERT_EQ_INT(a, b)                                                                        \
    do {                                                                                           \
        long long th_a = (long long)(a), th_b = (long long)(b);                                    \
        if (th_a != th_b) TH_FAIL_AT("%s == %s: %lld != %lld", #a, #b, th_a, th_b);                \
    } while (0)
#define ASSERT_EQ_STR(a, b)                                                                        \
    do {                                                                                           \
        const char *th_a = (a), *th_b = (b);                                                       \
        if (!th_a || !th_b || strcmp(th_a, th_b) != 0)                                             \
            TH_FAIL_AT("%s == %s: \"%s\" != \"%s\"", #a, #b, th_a ? th_a : "(null)",               \
                       th_b ? th_b : "(null)");                                                    \
    } while (0)
#define ASSERT_EQ_MEM(a, b, n)                                                                     \
    do {                                                                                           \
        if (memcmp((a), (b), (n)) != 0) TH_FAIL_AT("%s == %s (%zu bytes) differ", #a, #b, (size_t)(n)); \
    } while (0)
/* A test calls TH_SKIP_NOW("reason") when its precondition is missing (e.g. no io_uring). */
#define TH_SKIP_NOW(...)                                                                           \
    do {                                                                                           \
        fprintf(stderr, "skip: " __VA_ARGS__);                                                     \
        fputc('\n', stderr);                                                                       \
        exit(TH_SKIP);                                                                             \
    } while (0)

static inline int th_run(const th_case *cases, size_t n, int argc, char **argv)
{
    int failed = 0, skipped = 0, ran = 0;
    for (size_t i = 0; i < n; i++) {
        if (argc > 1 && strcmp(argv[1], cases[i].name) != 0) continue;
        ran++;
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0) {
            alarm(60);
            cases[i].fn();
            exit(0);
        }
        int st = 0;
        waitpid(pid, &st, 0);
        if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
            printf("ok   %s\n", cases[i].name);
        } else if (WIFEXITED(st) && WEXITSTATUS(st) == TH_SKIP) {
            printf("skip %s\n", cases[i].name);
            skipped++;
        } else {
            printf("FAIL %s (%s %d)\n", cases[i].name, WIFSIGNALED(st) ? "signal" : "exit",
                   WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
            failed++;
        }
    }
    printf("%d passed, %d failed, %d skipped\n", ran - failed - skipped, failed, skipped);
    if (failed) return 1;
    return (ran > 0 && skipped == ran) ? TH_SKIP : 0;
}

#define TESTS(...)                                                                                 \
    int main(int argc, char **argv)                                                                \
    {                                                                                              \
        static const th_case th_cases[] = {__VA_ARGS__};                                           \
        return th_run(th_cases, sizeof th_cases / sizeof th_cases[0], argc, argv);                 \
    }

#endif
