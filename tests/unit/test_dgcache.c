/*
 * test_dgcache: the applier's digest cache (proxy/dgcache.c): put/get with and without a property
 * list, least-recently-used eviction at the bound, drops of one path and of a subtree (not of a
 * sibling sharing a prefix), renames of a file and of a directory over an existing subtree, and a
 * cache of size 0 that remembers nothing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dgcache.h"
#include "tharness.h"

static bool has(dgcache *c, const char *p, uint32_t crc, uint64_t len)
{
    dgc_val v;
    return dgc_get(c, p, &v, NULL) && v.crc == crc && v.len == len;
}

static int put(dgcache *c, const char *p, uint32_t crc, uint64_t len, const char *props)
{
    dgc_val v = {.crc = crc, .len = len, .written_ms = 1000 + (int64_t)len, .dirty = (len & 1) != 0};
    return dgc_put(c, p, &v, props);
}

TEST(put_get)
{
    dgcache *c = dgc_new(8);
    ASSERT_TRUE(c != NULL);
    dgc_val v;
    char *props = (char *)"x";
    ASSERT_TRUE(!dgc_get(c, "/a", &v, &props));
    ASSERT_TRUE(props == NULL);
    ASSERT_EQ_INT(put(c, "/a", 0xdeadbeefu, 12, "dualpipe_times=bXRpbWU9MQ=="), 0);
    ASSERT_TRUE(dgc_get(c, "/a", &v, &props));
    ASSERT_EQ_INT(v.crc, 0xdeadbeefu);
    ASSERT_EQ_INT(v.len, 12);
    ASSERT_EQ_INT(v.written_ms, 1012);
    ASSERT_TRUE(!v.dirty);
    ASSERT_EQ_STR(props, "dualpipe_times=bXRpbWU9MQ==");
    free(props);
    ASSERT_EQ_INT(put(c, "/a", 7, 13, NULL), 0); /* replaced, props unknown now */
    ASSERT_TRUE(dgc_get(c, "/a", &v, &props));
    ASSERT_TRUE(props == NULL);
    ASSERT_EQ_INT(v.len, 13);
    ASSERT_TRUE(v.dirty);
    ASSERT_EQ_INT(dgc_count(c), 1);
    dgc_drop(c, "/a");
    dgc_drop(c, "/never");
    ASSERT_TRUE(!has(c, "/a", 7, 13));
    ASSERT_EQ_INT(dgc_count(c), 0);
    dgc_free(c);
}

TEST(lru_bound)
{
    dgcache *c = dgc_new(100);
    char p[32];
    for (int i = 0; i < 100; i++) {
        snprintf(p, sizeof p, "/f%d", i);
        ASSERT_EQ_INT(put(c, p, (uint32_t)i, (uint64_t)i, NULL), 0);
    }
    ASSERT_TRUE(has(c, "/f0", 0, 0)); /* used: /f1 is now the least recently used */
    for (int i = 100; i < 150; i++) {
        snprintf(p, sizeof p, "/f%d", i);
        ASSERT_EQ_INT(put(c, p, (uint32_t)i, (uint64_t)i, NULL), 0);
    }
    ASSERT_EQ_INT(dgc_count(c), 100);
    ASSERT_TRUE(has(c, "/f0", 0, 0));
    for (int i = 1; i <= 50; i++) {
        snprintf(p, sizeof p, "/f%d", i);
        if (has(c, p, (uint32_t)i, (uint64_t)i)) TH_FAIL_AT("%s should have been evicted", p);
    }
    for (int i = 51; i < 150; i++) {
        snprintf(p, sizeof p, "/f%d", i);
        if (!has(c, p, (uint32_t)i, (uint64_t)i)) TH_FAIL_AT("%s missing", p);
    }
    dgc_free(c);
}

TEST(drop_tree)
{
    dgcache *c = dgc_new(64);
    put(c, "/d", 1, 1, NULL);
    put(c, "/d/a", 2, 2, NULL);
    put(c, "/d/e/b", 3, 3, NULL);
    put(c, "/dd/a", 4, 4, NULL); /* a sibling sharing the prefix */
    dgc_drop_tree(c, "/d");
    ASSERT_TRUE(!has(c, "/d", 1, 1));
    ASSERT_TRUE(!has(c, "/d/a", 2, 2));
    ASSERT_TRUE(!has(c, "/d/e/b", 3, 3));
    ASSERT_TRUE(has(c, "/dd/a", 4, 4));
    dgc_drop_tree(c, "/");
    ASSERT_EQ_INT(dgc_count(c), 0);
    dgc_free(c);
}

TEST(move)
{
    dgcache *c = dgc_new(64);
    put(c, "/src/f", 1, 10, "p1");
    put(c, "/src/sub/g", 2, 20, NULL);
    put(c, "/srcx/h", 3, 30, NULL);
    put(c, "/dst/old", 4, 40, NULL); /* what the destination had goes */
    put(c, "/file", 5, 50, NULL);
    dgc_move(c, "/src", "/dst");
    ASSERT_TRUE(!has(c, "/src/f", 1, 10));
    ASSERT_TRUE(!has(c, "/dst/old", 4, 40));
    ASSERT_TRUE(has(c, "/dst/f", 1, 10));
    ASSERT_TRUE(has(c, "/dst/sub/g", 2, 20));
    ASSERT_TRUE(has(c, "/srcx/h", 3, 30));
    char *props = NULL;
    dgc_val v;
    ASSERT_TRUE(dgc_get(c, "/dst/f", &v, &props));
    ASSERT_EQ_INT(v.written_ms, 1010); /* everything moves with the entry */
    ASSERT_EQ_STR(props, "p1");
    free(props);
    dgc_move(c, "/file", "/dst/sub/renamed"); /* a file */
    ASSERT_TRUE(has(c, "/dst/sub/renamed", 5, 50));
    ASSERT_TRUE(!has(c, "/file", 5, 50));
    ASSERT_EQ_INT(dgc_count(c), 4);
    dgc_free(c);
}

TEST(size_zero)
{
    dgcache *c = dgc_new(0);
    ASSERT_TRUE(c != NULL);
    ASSERT_EQ_INT(put(c, "/a", 1, 1, "p"), 0);
    ASSERT_TRUE(!has(c, "/a", 1, 1));
    dgc_move(c, "/a", "/b");
    dgc_drop_tree(c, "/");
    ASSERT_EQ_INT(dgc_count(c), 0);
    dgc_free(c);
    dgc_free(NULL);
}

TESTS(T(put_get), T(lru_bound), T(drop_tree), T(move), T(size_zero));
