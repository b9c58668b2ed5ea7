/*
 * test_rid: which writer request ids are kept (GUIDs, the ADLS Java SDK's "<uuid>.<retry>", short
 * safe tokens) and which are replaced (empty, too long, characters that would need quoting in a
 * header, a log line or a URL), and that new ids are distinct version-4 UUIDs.
 */
#include <string.h>

#include "rid.h"
#include "tharness.h"

TEST(keeps_well_formed_ids)
{
    ASSERT_TRUE(rid_valid("9b2e4c1a-0f3d-4e5b-8a7c-1d2e3f405162"));
    ASSERT_TRUE(rid_valid("9b2e4c1a-0f3d-4e5b-8a7c-1d2e3f405162.3"));
    ASSERT_TRUE(rid_valid("job_42:task-7.attempt"));
    ASSERT_TRUE(rid_valid("a"));
    char max[RID_MAX + 1];
    memset(max, 'x', RID_MAX);
    max[RID_MAX] = '\0';
    ASSERT_TRUE(rid_valid(max));
}

TEST(replaces_malformed_ids)
{
    ASSERT_TRUE(!rid_valid(""));
    ASSERT_TRUE(!rid_valid("has space"));
    ASSERT_TRUE(!rid_valid("quote\""));
    ASSERT_TRUE(!rid_valid("new\nline"));
    ASSERT_TRUE(!rid_valid("semi;colon"));
    ASSERT_TRUE(!rid_valid("per%cent"));
    ASSERT_TRUE(!rid_valid("caf\xc3\xa9"));
    char over[RID_MAX + 2];
    memset(over, 'x', RID_MAX + 1);
    over[RID_MAX + 1] = '\0';
    ASSERT_TRUE(!rid_valid(over));
}

TEST(new_ids_are_distinct_uuid4)
{
    char a[RID_MAX + 1], b[RID_MAX + 1];
    rid_new(a);
    rid_new(b);
    ASSERT_EQ_INT(strlen(a), 36);
    ASSERT_TRUE(rid_valid(a));
    ASSERT_TRUE(strcmp(a, b) != 0);
    ASSERT_TRUE(a[8] == '-' && a[13] == '-' && a[18] == '-' && a[23] == '-');
    ASSERT_TRUE(a[14] == '4');
    ASSERT_TRUE(strchr("89ab", a[19]) != NULL);
}

/* Ids come from a per-thread pool of random bytes refilled 16 ids at a time: across several refills no id
 * repeats and every one is a version-4 UUID. */
TEST(ids_stay_distinct_across_pool_refills)
{
    enum { N = 100 };
    static char ids[N][RID_MAX + 1];
    for (int i = 0; i < N; i++) {
        rid_new(ids[i]);
        ASSERT_EQ_INT(strlen(ids[i]), 36);
        ASSERT_TRUE(ids[i][14] == '4');
        ASSERT_TRUE(strchr("89ab", ids[i][19]) != NULL);
        for (int k = 0; k < i; k++) ASSERT_TRUE(strcmp(ids[i], ids[k]) != 0);
    }
}

TESTS(T(keeps_well_formed_ids), T(replaces_malformed_ids), T(new_ids_are_distinct_uuid4),
      T(ids_stay_distinct_across_pool_refills))
