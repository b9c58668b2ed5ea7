/* Unit tests for emu_fault: rule parsing, count/fraction semantics, determinism by seed, counters. */
#include <string.h>

#include "emu_fault.h"
#include "tharness.h"

TEST(rule_errors_name_the_key)
{
    emu_fault *f = emu_fault_new(1);
    char err[256];
    ASSERT_EQ_INT(emu_fault_add(f, "status=999", err, sizeof err), -1);
    ASSERT_TRUE(strstr(err, "status") != NULL);
    ASSERT_EQ_INT(emu_fault_add(f, "colour=red", err, sizeof err), -1);
    ASSERT_TRUE(strstr(err, "colour") != NULL);
    ASSERT_EQ_INT(emu_fault_add(f, "fraction=1.5", err, sizeof err), -1);
    ASSERT_EQ_INT(emu_fault_add(f, "action=latency", err, sizeof err), -1);
    ASSERT_EQ_INT(emu_fault_add(f, "nokeyvalue", err, sizeof err), -1);
    emu_fault_free(f);
}

TEST(count_fires_exactly_n_times_on_matching_requests)
{
    emu_fault *f = emu_fault_new(1);
    char err[256];
    emu_fault_hit h;
    ASSERT_EQ_INT(emu_fault_add(f, "method=POST,op=APPEND,status=503,retry_after=2,count=2", err, sizeof err), 0);
    emu_fault_check(f, "PUT", "CREATE", &h);
    ASSERT_EQ_INT(h.action, EMU_FAULT_NONE);
    emu_fault_check(f, "POST", "append", &h); /* op match is case-insensitive */
    ASSERT_EQ_INT(h.action, EMU_FAULT_FAIL);
    ASSERT_EQ_INT(h.status, 503);
    ASSERT_EQ_INT(h.retry_after_s, 2);
    emu_fault_check(f, "POST", "APPEND", &h);
    ASSERT_EQ_INT(h.action, EMU_FAULT_FAIL);
    emu_fault_check(f, "POST", "APPEND", &h);
    ASSERT_EQ_INT(h.action, EMU_FAULT_NONE);
    emu_fault_free(f);
}

TEST(path_rule_matches_only_targets_containing_it)
{
    emu_fault *f = emu_fault_new(1);
    char err[256];
    emu_fault_hit h;
    ASSERT_EQ_INT(emu_fault_add(f, "path=", err, sizeof err), -1);
    ASSERT_TRUE(strstr(err, "path") != NULL);
    ASSERT_EQ_INT(emu_fault_add(f, "path=/lake/stuck/f,status=500", err, sizeof err), 0);
    emu_fault_check_target(f, "PATCH", "append", "/acct/lake/stuck/f?action=append", &h);
    ASSERT_EQ_INT(h.action, EMU_FAULT_FAIL);
    ASSERT_EQ_INT(h.status, 500);
    emu_fault_check_target(f, "PATCH", "append", "/acct/lake/other/f?x=/lake/stuck/f", &h); /* query ignored */
    ASSERT_EQ_INT(h.action, EMU_FAULT_NONE);
    emu_fault_check(f, "PATCH", "append", &h); /* no target: a path rule never matches */
    ASSERT_EQ_INT(h.action, EMU_FAULT_NONE);
    emu_fault_free(f);
}

static int fire_pattern(uint64_t seed, char *out, int n)
{
    emu_fault *f = emu_fault_new(seed);
    char err[256];
    emu_fault_hit h;
    int fired = 0;
    if (emu_fault_add(f, "fraction=0.3,status=500", err, sizeof err) != 0) return -1;
    for (int i = 0; i < n; i++) {
        emu_fault_check(f, "GET", "OPEN", &h);
        out[i] = h.action == EMU_FAULT_FAIL ? '1' : '0';
        fired += h.action == EMU_FAULT_FAIL;
    }
    emu_fault_free(f);
    return fired;
}

TEST(fraction_is_deterministic_per_seed)
{
    char a[1000], b[1000], c[1000];
    int fa = fire_pattern(42, a, 1000), fb = fire_pattern(42, b, 1000), fc = fire_pattern(7, c, 1000);
    ASSERT_EQ_INT(fa, fb);
    ASSERT_EQ_MEM(a, b, sizeof a);
    ASSERT_TRUE(memcmp(a, c, sizeof a) != 0);
    ASSERT_TRUE(fa > 220 && fa < 380); /* about 30% of 1000 */
    ASSERT_TRUE(fc > 220 && fc < 380);
}

TEST(latency_adds_up_and_reset_carries_after_bytes)
{
    emu_fault *f = emu_fault_new(1);
    char err[256];
    emu_fault_hit h;
    ASSERT_EQ_INT(emu_fault_add(f, "latency_ms=20", err, sizeof err), 0);
    ASSERT_EQ_INT(emu_fault_add(f, "op=APPEND,action=latency,latency_ms=30", err, sizeof err), 0);
    ASSERT_EQ_INT(emu_fault_add(f, "op=APPEND,action=reset,after_bytes=4096,count=1", err, sizeof err), 0);
    emu_fault_check(f, "POST", "APPEND", &h);
    ASSERT_EQ_INT(h.latency_ms, 50);
    ASSERT_EQ_INT(h.action, EMU_FAULT_RESET);
    ASSERT_EQ_INT(h.after_bytes, 4096);
    emu_fault_check(f, "GET", "OPEN", &h);
    ASSERT_EQ_INT(h.latency_ms, 20);
    ASSERT_EQ_INT(h.action, EMU_FAULT_NONE);
    emu_fault_free(f);
}

TEST(counters_count_per_method_and_op)
{
    emu_fault *f = emu_fault_new(1);
    emu_fault_hit h;
    dbuf b;
    emu_fault_check(f, "PUT", "CREATE", &h);
    emu_fault_check(f, "PUT", "CREATE", &h);
    emu_fault_check(f, "POST", "APPEND", &h);
    dbuf_init(&b, 1 << 16);
    ASSERT_EQ_INT(emu_fault_counters_json(f, &b), 0);
    ASSERT_TRUE(strstr(b.data, "\"PUT CREATE\":2") != NULL);
    ASSERT_TRUE(strstr(b.data, "\"POST APPEND\":1") != NULL);
    emu_fault_reset_counters(f);
    dbuf_reset(&b);
    ASSERT_EQ_INT(emu_fault_counters_json(f, &b), 0);
    ASSERT_TRUE(strstr(b.data, "CREATE") == NULL);
    dbuf_free(&b);
    emu_fault_free(f);
}

TEST(fail_rule_carries_its_error_code)
{
    emu_fault *f = emu_fault_new(1);
    char err[256];
    emu_fault_hit h;
    ASSERT_EQ_INT(emu_fault_add(f, "code=Bad\"Code", err, sizeof err), -1);
    ASSERT_TRUE(strstr(err, "code") != NULL);
    ASSERT_EQ_INT(emu_fault_add(f, "code=", err, sizeof err), -1);
    ASSERT_EQ_INT(emu_fault_add(f, "method=PUT,status=403,code=AuthorizationPermissionMismatch,count=1", err, sizeof err),
                  0);
    ASSERT_EQ_INT(emu_fault_add(f, "method=PUT,status=503,count=1", err, sizeof err), 0);
    emu_fault_check(f, "PUT", "create-file", &h);
    ASSERT_EQ_INT(h.action, EMU_FAULT_FAIL);
    ASSERT_EQ_INT(h.status, 403);
    ASSERT_EQ_STR(h.code, "AuthorizationPermissionMismatch");
    emu_fault_check(f, "PUT", "create-file", &h); /* the next rule: no code, the service picks one */
    ASSERT_EQ_INT(h.status, 503);
    ASSERT_EQ_STR(h.code, "");
    emu_fault_free(f);
}

TESTS(T(rule_errors_name_the_key), T(count_fires_exactly_n_times_on_matching_requests),
      T(fraction_is_deterministic_per_seed), T(latency_adds_up_and_reset_carries_after_bytes),
      T(counters_count_per_method_and_op), T(fail_rule_carries_its_error_code),
      T(path_rule_matches_only_targets_containing_it))
