/*
 * test_g2answer: WebHDFS answers made from Gen2 facts (phase gen2-only): FileStatus from a HEAD and from
 * a List Paths entry (permissions to octal and aclBit, dualpipe_times only while its length is the
 * file's, expiry, ETag as fileContextID), names mapped back through the identity map (idm_reverse),
 * AclStatus with mapped-back entries, and Gen2 error codes to RemoteException names and statuses.
 */
#include <jansson.h>

#include "g2answer.h"
#include "tharness.h"
#include "xlate.h"

#define U1 "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
#define G1 "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"

static idm_map *map(void)
{
    static const char text[] = "user alice " U1 "\nuser alias " U1 "\ngroup staff " G1 "\n";
    idm_map *m = NULL;
    idm_err e;
    if (idm_parse(text, sizeof text - 1, "map", &m, &e) != 0) TH_FAIL_AT("parse: %s", e.message);
    return m;
}

TEST(reverse_lookup)
{
    idm_map *m = map();
    ASSERT_EQ_STR(idm_reverse(m, IDM_USER, U1), "alias"); /* the first in name order */
    ASSERT_EQ_STR(idm_reverse(m, IDM_USER, "3F2504E0-4F89-11D3-9A0C-0305E82C3301"), "alias");
    ASSERT_EQ_STR(idm_reverse(m, IDM_GROUP, G1), "staff");
    ASSERT_TRUE(idm_reverse(m, IDM_GROUP, U1) == NULL);
    ASSERT_TRUE(idm_reverse(NULL, IDM_USER, U1) == NULL);
    idm_unref(m);
}

TEST(filestatus_from_head)
{
    idm_map *m = map();
    char props[256], v[128];
    dbuf p;
    dbuf_init(&p, 4096);
    xlate_err xe;
    ASSERT_EQ_INT(xlate_times_format(1600000000000LL, 1600000001000LL, 12, v, sizeof v), 0);
    ASSERT_EQ_INT(xlate_props_put(NULL, XLATE_TIMES_KEY, v, &p, &xe), 0);
    snprintf(props, sizeof props, "%s", p.data);
    dbuf_free(&p);
    g2a_node n;
    ASSERT_EQ_INT(g2a_node_from_head("12", "file", "Wed, 22 Feb 2023 02:41:28 GMT", U1, G1, "rw-r-----+", props,
                                     NULL, "\"0x8DB147E4CC7FF5B\"", m, &n),
                  0);
    ASSERT_EQ_STR(n.owner, "alias");
    ASSERT_EQ_STR(n.group, "staff");
    ASSERT_EQ_STR(n.permission, "640");
    ASSERT_TRUE(n.acl_bit);
    ASSERT_TRUE(n.mtime_ms == 1600000000000LL && n.atime_ms == 1600000001000LL);
    ASSERT_EQ_STR(n.etag, "0x8DB147E4CC7FF5B");
    dbuf b;
    dbuf_init(&b, 4096);
    ASSERT_EQ_INT(g2a_filestatus_json(&n, "", true, &b), 0);
    json_t *j = json_loads(b.data, 0, NULL);
    ASSERT_TRUE(j != NULL);
    ASSERT_EQ_STR(json_string_value(json_object_get(j, "fileContextID")), "0x8DB147E4CC7FF5B");
    ASSERT_EQ_STR(json_string_value(json_object_get(j, "type")), "FILE");
    ASSERT_TRUE(json_integer_value(json_object_get(j, "length")) == 12);
    ASSERT_TRUE(json_integer_value(json_object_get(j, "replication")) == 1);
    ASSERT_TRUE(json_is_true(json_object_get(j, "aclBit")));
    json_decref(j);
    dbuf_free(&b);
    /* an APPEND since SETTIMES: the property's length is not the file's, Gen2's time is newer */
    ASSERT_EQ_INT(g2a_node_from_head("20", "file", "Wed, 22 Feb 2023 02:41:28 GMT", U1, G1, "rwxr-x--T", props,
                                     "Thu, 23 Feb 2023 00:00:00 GMT", NULL, NULL, &n),
                  0);
    ASSERT_TRUE(n.mtime_ms == 1677033688000LL && n.atime_ms == 0);
    ASSERT_EQ_STR(n.owner, U1); /* no map: as Gen2 gives it */
    ASSERT_EQ_STR(n.permission, "1750");
    ASSERT_TRUE(n.expiry_ms == 1677110400000LL);
    ASSERT_EQ_INT(g2a_node_from_head("x", "file", NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, &n), -1);
    /* a negative Content-Length is no Gen2 answer (found by fuzz_upstream) */
    ASSERT_EQ_INT(g2a_node_from_head("-2", "file", NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, &n), -1);
    idm_unref(m);
}

TEST(filestatus_from_list)
{
    json_t *e = json_loads("{\"contentLength\":\"0\",\"etag\":\"0x1\",\"expiryTime\":\"0\",\"group\":\"$superuser\","
                           "\"isDirectory\":\"true\",\"lastModified\":\"Wed, 22 Feb 2023 02:41:28 GMT\","
                           "\"name\":\"dir/sub\",\"owner\":\"$superuser\",\"permissions\":\"rwxr-x---\"}",
                           0, NULL);
    g2a_node n;
    char leaf[64];
    ASSERT_EQ_INT(g2a_node_from_list(e, NULL, &n, leaf, sizeof leaf), 0);
    ASSERT_EQ_STR(leaf, "sub");
    ASSERT_TRUE(n.is_dir && n.length == 0);
    ASSERT_EQ_STR(n.permission, "750");
    json_decref(e);
    e = json_loads("{\"contentLength\":17,\"name\":\"f\",\"lastModified\":\"Wed, 22 Feb 2023 02:41:28 GMT\","
                   "\"permissions\":\"rw-r--r--\",\"expiryTime\":\"133215072889667419\"}",
                   0, NULL);
    ASSERT_EQ_INT(g2a_node_from_list(e, NULL, &n, leaf, sizeof leaf), 0);
    ASSERT_TRUE(!n.is_dir && n.length == 17 && n.expiry_ms > 0);
    json_decref(e);
}

TEST(aclstatus_names_back)
{
    idm_map *m = map();
    dbuf b;
    dbuf_init(&b, 65536);
    ASSERT_EQ_INT(g2a_aclstatus_json("user::rw-,user:" U1 ":r--,group::r--,mask::r--,other::---", "rw-r-----+", U1,
                                     G1, m, &b),
                  0);
    json_t *j = json_loads(b.data, 0, NULL);
    json_t *a = json_object_get(j, "AclStatus");
    ASSERT_EQ_STR(json_string_value(json_object_get(a, "owner")), "alias");
    ASSERT_EQ_STR(json_string_value(json_object_get(a, "group")), "staff");
    ASSERT_TRUE(strstr(b.data, "user:alias:r--") != NULL);
    ASSERT_TRUE(strstr(b.data, U1) == NULL);
    json_decref(j);
    dbuf_free(&b);
    idm_unref(m);
}

TEST(errors)
{
    g2a_error e = g2a_error_of(404, "PathNotFound");
    ASSERT_TRUE(e.status == 404 && strcmp(e.exception, "FileNotFoundException") == 0);
    e = g2a_error_of(409, "PathAlreadyExists");
    ASSERT_TRUE(e.status == 403 && strcmp(e.exception, "FileAlreadyExistsException") == 0);
    e = g2a_error_of(409, "DirectoryNotEmpty");
    ASSERT_TRUE(e.status == 403 && strcmp(e.exception, "PathIsNotEmptyDirectoryException") == 0);
    e = g2a_error_of(404, "FilesystemNotFound");
    ASSERT_TRUE(e.status == 503 && e.retry_after && strcmp(e.exception, "RetriableException") == 0);
    e = g2a_error_of(403, "AuthenticationFailed");
    ASSERT_TRUE(e.status == 401 && strcmp(e.exception, "SecurityException") == 0);
    e = g2a_error_of(403, "AuthorizationPermissionMismatch");
    ASSERT_TRUE(e.status == 403 && strcmp(e.exception, "AccessControlException") == 0);
    e = g2a_error_of(412, "ConditionNotMet");
    ASSERT_TRUE(e.status == 403 && strcmp(e.exception, "IOException") == 0);
    e = g2a_error_of(409, "InternalOperationAbortError");
    ASSERT_TRUE(e.status == 503 && e.retry_after);
    e = g2a_error_of(400, "InvalidFlushPosition");
    ASSERT_TRUE(e.status == 400 && strcmp(e.exception, "BadOffsetException") == 0);
    e = g2a_error_of(503, "ServerBusy");
    ASSERT_TRUE(e.status == 503 && e.retry_after && strcmp(e.exception, "RetriableException") == 0);
    e = g2a_error_of(500, "");
    ASSERT_TRUE(e.status == 503 && e.retry_after);
    e = g2a_error_of(501, "");
    ASSERT_TRUE(e.status == 500 && strcmp(e.exception, "RuntimeException") == 0);
    e = g2a_error_of(429, "");
    ASSERT_TRUE(e.status == 429 && strcmp(e.exception, "ThrottledException") == 0);
    e = g2a_error_of(400, "InvalidQueryParameterValue");
    ASSERT_TRUE(e.status == 400 && strcmp(e.exception, "IllegalArgumentException") == 0);
}

TESTS(T(reverse_lookup), T(filestatus_from_head), T(filestatus_from_list), T(aclstatus_names_back), T(errors))
