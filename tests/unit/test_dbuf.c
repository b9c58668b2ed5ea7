/*
 * test_dbuf: the bounded buffer every client-facing parser builds on. Checks the limit is a hard
 * limit (nothing is appended past it, contents survive a refused append), NUL termination after
 * every operation, binary data, printf formatting, and the take/reset ownership rules.
 */
#include <errno.h>
#include <stdint.h>

#include "dbuf.h"
#include "tharness.h"

TEST(empty_take_gives_empty_string)
{
    dbuf b;
    dbuf_init(&b, 16);
    ASSERT_TRUE(b.data == NULL);
    ASSERT_EQ_INT(b.len, 0);
    char *s = dbuf_take(&b);
    ASSERT_TRUE(s != NULL);
    ASSERT_EQ_STR(s, "");
    free(s);
    dbuf_free(&b);
}

TEST(appends_and_terminates)
{
    dbuf b;
    dbuf_init(&b, 1024);
    ASSERT_EQ_INT(dbuf_adds(&b, "hello"), 0);
    ASSERT_EQ_INT(dbuf_add(&b, ", ", 2), 0);
    ASSERT_EQ_INT(dbuf_printf(&b, "%s #%d", "world", 42), 0);
    ASSERT_EQ_STR(b.data, "hello, world #42");
    ASSERT_EQ_INT(b.len, strlen("hello, world #42"));
    ASSERT_TRUE(b.cap > b.len);
    dbuf_free(&b);
    ASSERT_TRUE(b.data == NULL);
    ASSERT_EQ_INT(b.len, 0);
}

TEST(limit_is_hard_and_contents_survive)
{
    dbuf b;
    dbuf_init(&b, 8);
    ASSERT_EQ_INT(dbuf_adds(&b, "12345678"), 0); /* exactly max */
    ASSERT_EQ_INT(dbuf_add(&b, "9", 1), -E2BIG);
    ASSERT_EQ_STR(b.data, "12345678");
    ASSERT_EQ_INT(b.len, 8);
    ASSERT_TRUE(b.cap <= 9); /* never allocates past max + NUL */
    ASSERT_EQ_INT(dbuf_printf(&b, "%d", 1), -E2BIG);
    ASSERT_EQ_STR(b.data, "12345678");
    dbuf_reset(&b);
    ASSERT_EQ_INT(dbuf_printf(&b, "%s", "abcdefghi"), -E2BIG);
    ASSERT_EQ_INT(b.len, 0);
    ASSERT_EQ_STR(b.data, "");
    dbuf_free(&b);
}

TEST(zero_limit_accepts_only_nothing)
{
    dbuf b;
    dbuf_init(&b, 0);
    ASSERT_EQ_INT(dbuf_add(&b, "", 0), 0);
    ASSERT_EQ_STR(b.data, "");
    ASSERT_EQ_INT(dbuf_add(&b, "x", 1), -E2BIG);
    dbuf_free(&b);
}

TEST(huge_sizes_do_not_overflow)
{
    dbuf b;
    dbuf_init(&b, SIZE_MAX);
    ASSERT_EQ_INT(dbuf_adds(&b, "ab"), 0);
    ASSERT_EQ_INT(dbuf_add(&b, "x", SIZE_MAX), -E2BIG);
    ASSERT_EQ_INT(dbuf_add(&b, "x", SIZE_MAX - 2), -E2BIG);
    ASSERT_EQ_STR(b.data, "ab");
    dbuf_free(&b);

    dbuf_init(&b, 100);
    ASSERT_EQ_INT(dbuf_adds(&b, "abc"), 0);
    ASSERT_EQ_INT(dbuf_add(&b, "x", SIZE_MAX - 1), -E2BIG);
    ASSERT_EQ_STR(b.data, "abc");
    dbuf_free(&b);
}

TEST(binary_data_with_nul)
{
    dbuf b;
    dbuf_init(&b, 64);
    const char bin[] = {'a', '\0', 'b', '\0'};
    ASSERT_EQ_INT(dbuf_add(&b, bin, sizeof bin), 0);
    ASSERT_EQ_INT(b.len, 4);
    ASSERT_EQ_MEM(b.data, bin, 4);
    ASSERT_EQ_INT(b.data[4], 0);
    dbuf_free(&b);
}

TEST(grows_across_many_appends)
{
    dbuf b;
    dbuf_init(&b, 1 << 20);
    for (int i = 0; i < 100000; i++)
        ASSERT_EQ_INT(dbuf_add(&b, &"0123456789"[i % 10], 1), 0);
    ASSERT_EQ_INT(b.len, 100000);
    for (int i = 0; i < 100000; i++)
        if (b.data[i] != (char)('0' + i % 10)) TH_FAIL_AT("byte %d wrong", i);
    ASSERT_EQ_INT(b.data[100000], 0);
    dbuf_free(&b);
}

TEST(reset_keeps_allocation)
{
    dbuf b;
    dbuf_init(&b, 100);
    ASSERT_EQ_INT(dbuf_adds(&b, "some text"), 0);
    char *before = b.data;
    size_t cap = b.cap;
    dbuf_reset(&b);
    ASSERT_EQ_INT(b.len, 0);
    ASSERT_TRUE(b.data == before);
    ASSERT_EQ_INT(b.cap, cap);
    ASSERT_EQ_STR(b.data, "");
    ASSERT_EQ_INT(dbuf_adds(&b, "new"), 0);
    ASSERT_EQ_STR(b.data, "new");
    dbuf_free(&b);
}

TEST(take_transfers_ownership)
{
    dbuf b;
    dbuf_init(&b, 100);
    ASSERT_EQ_INT(dbuf_adds(&b, "mine"), 0);
    char *s = dbuf_take(&b);
    ASSERT_EQ_STR(s, "mine");
    ASSERT_TRUE(b.data == NULL);
    ASSERT_EQ_INT(b.len, 0);
    ASSERT_EQ_INT(b.cap, 0);
    ASSERT_EQ_INT(b.max, 100); /* still usable with the same limit */
    ASSERT_EQ_INT(dbuf_adds(&b, "again"), 0);
    ASSERT_EQ_STR(b.data, "again");
    free(s);
    dbuf_free(&b);
}

TEST(printf_long_output)
{
    dbuf b;
    dbuf_init(&b, 10000);
    ASSERT_EQ_INT(dbuf_printf(&b, "%05d|%*s|", 7, 3000, "x"), 0);
    ASSERT_EQ_INT(b.len, 6 + 3000 + 1);
    ASSERT_EQ_MEM(b.data, "00007|", 6);
    ASSERT_EQ_INT(b.data[6 + 2999], 'x');
    dbuf_free(&b);
}

TESTS(T(empty_take_gives_empty_string), T(appends_and_terminates), T(limit_is_hard_and_contents_survive),
      T(zero_limit_accepts_only_nothing), T(huge_sizes_do_not_overflow), T(binary_data_with_nul),
      T(grows_across_many_appends), T(reset_keeps_allocation), T(take_transfers_ownership),
      T(printf_long_output))
