/*
 * test_xlate: the Gen1 → Gen2 translation. Exact method, query and headers of every Gen2 request the
 * applier sends (create, append, flush, mkdirs, rename, delete, setpermission, setowner, ACL
 * read-modify-write, expiry, metadata copy), the flush policy per syncFlag, the HDFS rename-into-
 * directory target, ACL merges starting from x-ms-acl strings as Gen2 returns them (mask handling
 * included), the expiry option and date mapping, Gen1 listing pages (entries, continuation token,
 * names that are refused) and their paging query, concat source lists, retry classification, and the
 * Gen2 → Gen1 conversions (permissions, AclStatus, FileStatus from list entries and HEAD answers).
 */
#include <jansson.h>

#include "tharness.h"
#include "xlate.h"

/* All headers of r joined with '|', for exact comparisons. */
static const char *hdrs(const xlate_g2req *r)
{
    static char buf[16384];
    size_t off = 0;
    buf[0] = '\0';
    for (int i = 0; i < r->nheaders; i++)
        off += (size_t)snprintf(buf + off, sizeof buf - off, "%s%s", i ? "|" : "", r->headers[i]);
    if (r->headers[r->nheaders] != NULL) TH_FAIL_AT("headers not NULL-terminated");
    return buf;
}

#define ASSERT_REQ(r, m, q, h)                                                                     \
    do {                                                                                           \
        ASSERT_EQ_STR((r)->method, (m));                                                           \
        ASSERT_EQ_STR((r)->query, (q));                                                            \
        ASSERT_EQ_STR(hdrs(r), (h));                                                               \
    } while (0)

TEST(create_requests)
{
    xlate_g2req r = {0};
    xlate_err e;
    ASSERT_EQ_INT(xlate_create(false, "750", &r, &e), 0);
    ASSERT_REQ(&r, "PUT", "resource=file", "If-None-Match: *|x-ms-permissions: 0750|x-ms-umask: 0000");
    ASSERT_EQ_INT(xlate_create(true, NULL, &r, &e), 0);
    ASSERT_REQ(&r, "PUT", "resource=file", "");
    ASSERT_EQ_INT(xlate_create(true, "", &r, &e), 0);
    ASSERT_REQ(&r, "PUT", "resource=file", "");
    ASSERT_EQ_INT(xlate_create(false, NULL, &r, &e), 0);
    ASSERT_REQ(&r, "PUT", "resource=file", "If-None-Match: *");
    ASSERT_EQ_INT(xlate_create(true, "1777", &r, &e), 0);
    ASSERT_REQ(&r, "PUT", "resource=file", "x-ms-permissions: 1777|x-ms-umask: 0000");
    ASSERT_EQ_INT(xlate_create(true, "0644", &r, &e), 0);
    ASSERT_REQ(&r, "PUT", "resource=file", "x-ms-permissions: 0644|x-ms-umask: 0000");
    ASSERT_EQ_INT(xlate_create(true, "5", &r, &e), 0);
    ASSERT_REQ(&r, "PUT", "resource=file", "x-ms-permissions: 0005|x-ms-umask: 0000");
    ASSERT_EQ_INT(xlate_create(true, "999", &r, &e), -1);
    ASSERT_EQ_INT(xlate_create(true, "2777", &r, &e), -1);
    xlate_g2req_free(&r);
}

TEST(append_and_flush_requests)
{
    xlate_g2req r = {0};
    xlate_err e;
    ASSERT_EQ_INT(xlate_append(0, &r, &e), 0);
    ASSERT_REQ(&r, "PATCH", "action=append&position=0", "");
    ASSERT_EQ_INT(xlate_append(18446744073709551615ull, &r, &e), 0);
    ASSERT_REQ(&r, "PATCH", "action=append&position=18446744073709551615", "");
    ASSERT_EQ_INT(xlate_flush_req(11, true, &r, &e), 0);
    ASSERT_REQ(&r, "PATCH", "action=flush&position=11&retainUncommittedData=false&close=true", "");
    ASSERT_EQ_INT(xlate_flush_req(4194304, false, &r, &e), 0);
    ASSERT_REQ(&r, "PATCH", "action=flush&position=4194304&retainUncommittedData=false&close=false", "");
    xlate_g2req_free(&r);
}

TEST(append_with_flush_request_and_version)
{
    xlate_g2req r = {0};
    xlate_err e;
    ASSERT_EQ_INT(xlate_append_flush(4096, false, &r, &e), 0);
    ASSERT_REQ(&r, "PATCH", "action=append&position=4096&flush=true&close=false", "");
    ASSERT_EQ_INT(xlate_append_flush(0, true, &r, &e), 0);
    ASSERT_REQ(&r, "PATCH", "action=append&position=0&flush=true&close=true", "");
    xlate_g2req_free(&r);
    /* the parameter is in the REST specification from 2021-06-08 on */
    ASSERT_TRUE(xlate_append_flush_ok("2021-06-08"));
    ASSERT_TRUE(xlate_append_flush_ok("2021-10-04"));
    ASSERT_TRUE(xlate_append_flush_ok("2025-01-05"));
    ASSERT_TRUE(!xlate_append_flush_ok("2021-04-10"));
    ASSERT_TRUE(!xlate_append_flush_ok("2019-12-12"));
    ASSERT_TRUE(!xlate_append_flush_ok(""));
    ASSERT_TRUE(!xlate_append_flush_ok(NULL));
}

TEST(flush_policy_per_syncflag)
{
    ASSERT_EQ_INT(xlate_flush_policy(WH_SYNC_CLOSE, 10), XLATE_FLUSH_CLOSE);
    ASSERT_EQ_INT(xlate_flush_policy(WH_SYNC_CLOSE, 0), XLATE_FLUSH_CLOSE);       /* SDK's closing append */
    ASSERT_EQ_INT(xlate_flush_policy(WH_SYNC_METADATA, 10), XLATE_FLUSH_OPEN);
    ASSERT_EQ_INT(xlate_flush_policy(WH_SYNC_METADATA, 0), XLATE_FLUSH_OPEN);
    ASSERT_EQ_INT(xlate_flush_policy(WH_SYNC_DATA, 10), XLATE_FLUSH_OPEN);        /* Gen2 readers see it too */
    ASSERT_EQ_INT(xlate_flush_policy(WH_SYNC_DATA, 0), XLATE_FLUSH_NONE);         /* nothing to do */
}

TEST(mkdirs_requests_and_answers)
{
    xlate_g2req r = {0};
    xlate_err e;
    ASSERT_EQ_INT(xlate_mkdirs("755", &r, &e), 0);
    ASSERT_REQ(&r, "PUT", "resource=directory", "If-None-Match: *|x-ms-permissions: 0755|x-ms-umask: 0000");
    ASSERT_EQ_INT(xlate_mkdirs(NULL, &r, &e), 0);
    ASSERT_REQ(&r, "PUT", "resource=directory", "If-None-Match: *");
    ASSERT_TRUE(xlate_mkdirs_ok(201, NULL));
    ASSERT_TRUE(xlate_mkdirs_ok(409, "directory"));
    ASSERT_TRUE(!xlate_mkdirs_ok(409, "file"));
    ASSERT_TRUE(!xlate_mkdirs_ok(409, NULL));
    ASSERT_TRUE(!xlate_mkdirs_ok(403, "directory"));
    ASSERT_TRUE(xlate_already_exists(409, "PathAlreadyExists"));
    ASSERT_TRUE(!xlate_already_exists(409, "PathConflict"));
    ASSERT_TRUE(!xlate_already_exists(412, "PathAlreadyExists"));
    xlate_g2req_free(&r);
}

TEST(rename_options_and_target)
{
    bool r2, ow;
    xlate_err e;
    ASSERT_EQ_INT(xlate_rename_options(NULL, &r2, &ow, &e), 0);
    ASSERT_TRUE(!r2 && !ow);
    ASSERT_EQ_INT(xlate_rename_options("OVERWRITE", &r2, &ow, &e), 0);
    ASSERT_TRUE(r2 && ow);
    ASSERT_EQ_INT(xlate_rename_options("none", &r2, &ow, &e), 0);
    ASSERT_TRUE(r2 && !ow);
    ASSERT_EQ_INT(xlate_rename_options("NONE,overwrite", &r2, &ow, &e), 0);
    ASSERT_TRUE(r2 && ow);
    ASSERT_EQ_INT(xlate_rename_options("SOMETIMES", &r2, &ow, &e), -1);

    char t[64];
    /* HDFS rename into an existing directory: dst/basename(src). */
    ASSERT_EQ_INT(xlate_rename_target("in/a/b.txt", "out/dir", true, false, t, sizeof t), 0);
    ASSERT_EQ_STR(t, "out/dir/b.txt");
    ASSERT_EQ_INT(xlate_rename_target("in/a", "", true, false, t, sizeof t), 0);   /* into the fs root */
    ASSERT_EQ_STR(t, "a");
    ASSERT_EQ_INT(xlate_rename_target("top", "out", true, false, t, sizeof t), 0);
    ASSERT_EQ_STR(t, "out/top");
    /* Not a directory, or rename2 (renameoptions given): exactly dst. */
    ASSERT_EQ_INT(xlate_rename_target("in/a/b.txt", "out/c.txt", false, false, t, sizeof t), 0);
    ASSERT_EQ_STR(t, "out/c.txt");
    ASSERT_EQ_INT(xlate_rename_target("in/a/b.txt", "out/dir", true, true, t, sizeof t), 0);
    ASSERT_EQ_STR(t, "out/dir");
    ASSERT_EQ_INT(xlate_rename_target("in/a/b.txt", "out/a-very-long-directory-name", true, false, t, 20), -1);
}

TEST(rename_requests)
{
    xlate_g2req r = {0};
    xlate_err e;
    ASSERT_EQ_INT(xlate_rename("/lake/in/a%20b/c%25d", false, NULL, &r, &e), 0);
    ASSERT_REQ(&r, "PUT", "", "x-ms-rename-source: /lake/in/a%20b/c%25d|If-None-Match: *");
    ASSERT_EQ_INT(xlate_rename("/lake/x", true, NULL, &r, &e), 0);
    ASSERT_REQ(&r, "PUT", "", "x-ms-rename-source: /lake/x");
    ASSERT_EQ_INT(xlate_rename("/lake/x?sv=2020&sig=a%2Bb", true, "tok/+=", &r, &e), 0);
    ASSERT_REQ(&r, "PUT", "continuation=tok%2F%2B%3D", "x-ms-rename-source: /lake/x?sv=2020&sig=a%2Bb");
    ASSERT_EQ_INT(xlate_rename("lake/x", true, NULL, &r, &e), -1);
    ASSERT_EQ_INT(xlate_rename("/lake/x\r\nx-ms-owner: me", true, NULL, &r, &e), -1);
    xlate_g2req_free(&r);
}

TEST(delete_and_metadata_requests)
{
    xlate_g2req r = {0};
    xlate_err e;
    ASSERT_EQ_INT(xlate_delete(true, NULL, &r, &e), 0);
    ASSERT_REQ(&r, "DELETE", "recursive=true", "");
    ASSERT_EQ_INT(xlate_delete(false, "", &r, &e), 0);
    ASSERT_REQ(&r, "DELETE", "recursive=false", "");
    ASSERT_EQ_INT(xlate_delete(true, "a b", &r, &e), 0);
    ASSERT_REQ(&r, "DELETE", "recursive=true&continuation=a%20b", "");

    ASSERT_EQ_INT(xlate_setpermission("755", &r, &e), 0);
    ASSERT_REQ(&r, "PATCH", "action=setAccessControl", "x-ms-permissions: 0755");
    ASSERT_EQ_INT(xlate_setpermission("1777", &r, &e), 0);
    ASSERT_REQ(&r, "PATCH", "action=setAccessControl", "x-ms-permissions: 1777");
    ASSERT_EQ_INT(xlate_setpermission(NULL, &r, &e), -1);
    ASSERT_EQ_INT(xlate_setpermission("rwx", &r, &e), -1);

    ASSERT_EQ_INT(xlate_setowner("alice", "staff", &r, &e), 0);
    ASSERT_REQ(&r, "PATCH", "action=setAccessControl", "x-ms-owner: alice|x-ms-group: staff");
    ASSERT_EQ_INT(xlate_setowner(NULL, "staff", &r, &e), 0);
    ASSERT_REQ(&r, "PATCH", "action=setAccessControl", "x-ms-group: staff");
    ASSERT_EQ_INT(xlate_setowner("bob", "", &r, &e), 0);
    ASSERT_REQ(&r, "PATCH", "action=setAccessControl", "x-ms-owner: bob");
    ASSERT_EQ_INT(xlate_setowner(NULL, NULL, &r, &e), -1);
    /* Nothing can be smuggled into a header line. */
    ASSERT_EQ_INT(xlate_setowner("a\r\nx-ms-acl: user::rwx", NULL, &r, &e), -1);

    ASSERT_EQ_INT(xlate_getacl(&r, &e), 0);
    ASSERT_REQ(&r, "HEAD", "action=getAccessControl", "");
    ASSERT_EQ_INT(xlate_getstatus(&r, &e), 0);
    ASSERT_REQ(&r, "HEAD", "action=getStatus", "");
    ASSERT_EQ_INT(xlate_setacl("user::rwx,group::r-x,other::---", "\"0x8D777A06C017D8E\"", &r, &e), 0);
    ASSERT_REQ(&r, "PATCH", "action=setAccessControl",
               "x-ms-acl: user::rwx,group::r-x,other::---|If-Match: \"0x8D777A06C017D8E\"");
    ASSERT_EQ_INT(xlate_setacl("user::rwx,group::r-x,other::---", NULL, &r, &e), 0);
    ASSERT_REQ(&r, "PATCH", "action=setAccessControl", "x-ms-acl: user::rwx,group::r-x,other::---");
    xlate_g2req_free(&r);
}

/* Run one read-modify-write merge and return the new x-ms-acl (static buffer). */
static const char *merge(whreq_op op, const char *spec, const char *acl, const char *perm, bool dir, int want_rc)
{
    static char buf[8192];
    dbuf b;
    dbuf_init(&b, 1 << 16);
    xlate_err e = {{0}};
    int rc = xlate_acl_apply(op, spec, acl, perm, dir, &b, &e);
    if (rc != want_rc) TH_FAIL_AT("xlate_acl_apply rc %d (%s)", rc, e.message);
    snprintf(buf, sizeof buf, "%s", rc == 0 && b.data ? b.data : e.message);
    dbuf_free(&b);
    return buf;
}

TEST(acl_merge_modify)
{
    /* Adding a named entry to a minimal ACL creates the mask (union of group:: and named). */
    ASSERT_EQ_STR(merge(WH_OP_MODIFYACLENTRIES, "user:alice:rw-", "user::rwx,group::r-x,other::---", "rwxr-x---",
                        false, 0),
                  "user::rwx,user:alice:rw-,group::r-x,mask::rwx,other::---");
    /* Changing a named entry recomputes the mask when the spec gives none. */
    ASSERT_EQ_STR(merge(WH_OP_MODIFYACLENTRIES, "user:bob:rwx",
                        "user::rwx,user:bob:r--,group::r-x,mask::r-x,other::---", "rwxr-x---+", false, 0),
                  "user::rwx,user:bob:rwx,group::r-x,mask::rwx,other::---");
    /* An explicit mask in the spec is kept. */
    ASSERT_EQ_STR(merge(WH_OP_MODIFYACLENTRIES, "user:bob:rwx,mask::r--",
                        "user::rwx,user:bob:r--,group::r-x,mask::r-x,other::---", "rwxr-x---+", false, 0),
                  "user::rwx,user:bob:rwx,group::r-x,mask::r--,other::---");
    /* HDFS recomputes the mask whenever the spec touched the access scope without giving a mask,
     * even if only other:: changed (AclTransformation.calculateMasks). */
    ASSERT_EQ_STR(merge(WH_OP_MODIFYACLENTRIES, "other::r--",
                        "user::rwx,user:bob:r--,group::r-x,mask::r--,other::---", "rwxr-----+", false, 0),
                  "user::rwx,user:bob:r--,group::r-x,mask::r-x,other::r--");
    /* A default-scope change leaves the access mask as it was; the missing default base entries
     * are copied from the access ones (named entries are not). */
    ASSERT_EQ_STR(merge(WH_OP_MODIFYACLENTRIES, "default:other::r--",
                        "user::rwx,user:bob:r--,group::r-x,mask::r--,other::---", "rwxr-----+", true, 0),
                  "user::rwx,user:bob:r--,group::r-x,mask::r--,other::---,default:user::rwx,default:group::r-x,"
                  "default:other::r--");
    /* Default entries on a directory: the missing default base entries are copied from access. */
    ASSERT_EQ_STR(merge(WH_OP_MODIFYACLENTRIES, "default:user:alice:r-x", "user::rwx,group::r-x,other::--x",
                        "rwxr-x--x", true, 0),
                  "user::rwx,group::r-x,other::--x,default:user::rwx,default:user:alice:r-x,default:group::r-x,"
                  "default:mask::r-x,default:other::--x");
    /* ... and are refused on a file, as Gen1 refuses them. */
    merge(WH_OP_MODIFYACLENTRIES, "default:user:alice:r-x", "user::rwx,group::r-x,other::--x", "rwxr-x--x", false, -1);
    /* A malformed spec is refused. */
    merge(WH_OP_MODIFYACLENTRIES, "user:alice", "user::rwx,group::r-x,other::---", "rwxr-x---", false, -1);
}

TEST(acl_merge_set_and_remove)
{
    const char *dir_acl = "user::rwx,user:bob:rwx,group::r--,mask::rwx,other::---,"
                          "default:user::rwx,default:group::r-x,default:other::---";
    /* SETACL without default entries keeps the directory's default ACL (Gen2 x-ms-acl replaces all,
     * so the full list must carry it). */
    ASSERT_EQ_STR(merge(WH_OP_SETACL, "user::rw-,group::r--,other::---", dir_acl, "rwxrwx---+", true, 0),
                  "user::rw-,group::r--,other::---,default:user::rwx,default:group::r-x,default:other::---");
    /* SETACL with a named entry and no mask: the mask is computed. */
    ASSERT_EQ_STR(merge(WH_OP_SETACL, "user::rwx,user:carol:r-x,group::---,other::---",
                        "user::rwx,group::r-x,other::---", "rwxr-x---", false, 0),
                  "user::rwx,user:carol:r-x,group::---,mask::r-x,other::---");
    /* SETACL missing a base entry is invalid. */
    merge(WH_OP_SETACL, "user::rwx,other::---", "user::rwx,group::r-x,other::---", "rwxr-x---", false, -1);
    /* REMOVEACLENTRIES of the last named entry: the mask goes too. */
    ASSERT_EQ_STR(merge(WH_OP_REMOVEACLENTRIES, "user:bob", "user::rwx,user:bob:rwx,group::r--,mask::rwx,other::---",
                        "rwxrwx---+", false, 0),
                  "user::rwx,group::r--,other::---");
    /* REMOVEACLENTRIES of one of two: mask recomputed from what remains. */
    ASSERT_EQ_STR(merge(WH_OP_REMOVEACLENTRIES, "user:bob",
                        "user::rwx,user:bob:rwx,user:dan:r--,group::---,mask::rwx,other::---", "rwxrwx---+", false, 0),
                  "user::rwx,user:dan:r--,group::---,mask::r--,other::---");
    /* REMOVEACL: only the base entries remain, group bits from group:: (not the mask). */
    ASSERT_EQ_STR(merge(WH_OP_REMOVEACL, NULL, dir_acl, "rwxrwx---+", true, 0), "user::rwx,group::r--,other::---");
    /* REMOVEDEFAULTACL keeps the access ACL. */
    ASSERT_EQ_STR(merge(WH_OP_REMOVEDEFAULTACL, NULL, dir_acl, "rwxrwx---+", true, 0),
                  "user::rwx,user:bob:rwx,group::r--,mask::rwx,other::---");
    /* Without an x-ms-acl (not returned), the permissions alone describe the node. */
    ASSERT_EQ_STR(merge(WH_OP_MODIFYACLENTRIES, "group:eng:r-x", NULL, "rwxr-x---", false, 0),
                  "user::rwx,group::r-x,group:eng:r-x,mask::r-x,other::---");
    /* Not an ACL op. */
    merge(WH_OP_SETPERMISSION, "user::rwx", NULL, "rwxr-x---", false, -1);
}

TEST(expiry_mapping)
{
    xlate_g2req r = {0};
    xlate_err e;
    ASSERT_EQ_INT(xlate_expiry("NeverExpire", NULL, &r, &e), 0);
    ASSERT_REQ(&r, "PUT", "comp=expiry", "x-ms-expiry-option: NeverExpire");
    ASSERT_EQ_INT(xlate_expiry("RelativeToNow", "5000", &r, &e), 0);
    ASSERT_REQ(&r, "PUT", "comp=expiry", "x-ms-expiry-option: RelativeToNow|x-ms-expiry-time: 5000");
    ASSERT_EQ_INT(xlate_expiry("relativetocreationdate", "86400000", &r, &e), 0);
    ASSERT_REQ(&r, "PUT", "comp=expiry", "x-ms-expiry-option: RelativeToCreation|x-ms-expiry-time: 86400000");
    ASSERT_EQ_INT(xlate_expiry("Absolute", "1677033688000", &r, &e), 0);
    ASSERT_REQ(&r, "PUT", "comp=expiry", "x-ms-expiry-option: Absolute|x-ms-expiry-time: Wed, 22 Feb 2023 02:41:28 GMT");
    ASSERT_EQ_INT(xlate_expiry("Absolute", NULL, &r, &e), -1);
    ASSERT_EQ_INT(xlate_expiry("RelativeToNow", "-5", &r, &e), -1);
    ASSERT_EQ_INT(xlate_expiry("RelativeToNow", "5s", &r, &e), -1);
    ASSERT_EQ_INT(xlate_expiry("RelativeToNow", " 5", &r, &e), -1);
    ASSERT_EQ_INT(xlate_expiry("Tomorrow", "5", &r, &e), -1);
    xlate_g2req_free(&r);
}

TEST(rfc1123_dates)
{
    char t[32];
    xlate_rfc1123_format(0, t);
    ASSERT_EQ_STR(t, "Thu, 01 Jan 1970 00:00:00 GMT");
    xlate_rfc1123_format(951782400999, t); /* leap day 2000, ms truncated */
    ASSERT_EQ_STR(t, "Tue, 29 Feb 2000 00:00:00 GMT");
    xlate_rfc1123_format(4102444799000, t);
    ASSERT_EQ_STR(t, "Thu, 31 Dec 2099 23:59:59 GMT");
    int64_t ms = 0;
    ASSERT_EQ_INT(xlate_rfc1123_parse("Wed, 22 Feb 2023 02:41:28 GMT", &ms), 0);
    ASSERT_EQ_INT(ms, 1677033688000);
    ASSERT_EQ_INT(xlate_rfc1123_parse("Tue, 29 Feb 2000 00:00:00 GMT", &ms), 0);
    ASSERT_EQ_INT(ms, 951782400000);
    ASSERT_EQ_INT(xlate_rfc1123_parse("Wed, 22 Feb 2023 02:41:28 UTC", &ms), -1);
    ASSERT_EQ_INT(xlate_rfc1123_parse("Wed, 22 Foo 2023 02:41:28 GMT", &ms), -1);
    ASSERT_EQ_INT(xlate_rfc1123_parse("Wed, 2x Feb 2023 02:41:28 GMT", &ms), -1);
    ASSERT_EQ_INT(xlate_rfc1123_parse("", &ms), -1);
}

TEST(gen1_answers_and_lookups)
{
    ASSERT_TRUE(xlate_gen1_false("{\"boolean\":false}"));
    ASSERT_TRUE(xlate_gen1_false("{ \"boolean\" : false }\n"));
    ASSERT_TRUE(!xlate_gen1_false("{\"boolean\":true}"));
    ASSERT_TRUE(!xlate_gen1_false(""));   /* rename2 in the hadoop dialect: 200, empty body */
    ASSERT_TRUE(!xlate_gen1_false(NULL));
    ASSERT_TRUE(!xlate_gen1_false("not json"));

    whreq_param ps[] = {{"op", "CREATE"}, {"doas", "bob"}, {"user.name", "al ice&x=1"}, {"overwrite", "true"},
                        {"delegation", "TOK+/="}};
    dbuf b;
    dbuf_init(&b, 4096);
    ASSERT_EQ_INT(xlate_gen1_query("GETFILESTATUS", ps, 5, NULL, &b), 0);
    ASSERT_EQ_STR(b.data, "op=GETFILESTATUS&user.name=al%20ice%26x%3D1&doas=bob&delegation=TOK%2B%2F%3D");
    dbuf_reset(&b);
    ASSERT_EQ_INT(xlate_gen1_query("OPEN", ps + 3, 1, "offset=0", &b), 0);
    ASSERT_EQ_STR(b.data, "op=OPEN&offset=0");
    dbuf_free(&b);
}

TEST(liststatus_batch_pages)
{
    xlate_listing l;
    xlate_err e;
    /* Hadoop LISTSTATUS_BATCH: more entries remain, so the next page starts after the last name. */
    const char *page = "{\"DirectoryListing\":{\"partialListing\":{\"FileStatuses\":{\"FileStatus\":["
                       "{\"pathSuffix\":\"a\",\"type\":\"DIRECTORY\"},{\"pathSuffix\":\"b c\",\"type\":\"FILE\","
                       "\"length\":5}]}},\"remainingEntries\":7}}";
    ASSERT_EQ_INT(xlate_liststatus_parse(page, strlen(page), &l, &e), 0);
    ASSERT_EQ_INT(l.n, 2);
    ASSERT_TRUE(l.v[0].is_dir && !l.v[1].is_dir);
    ASSERT_EQ_STR(l.token, "b c");
    xlate_listing_free(&l);
    /* The last page: nothing remains. */
    const char *last = "{\"DirectoryListing\":{\"partialListing\":{\"FileStatuses\":{\"FileStatus\":["
                       "{\"pathSuffix\":\"z\",\"type\":\"FILE\"}]}},\"remainingEntries\":0}}";
    ASSERT_EQ_INT(xlate_liststatus_parse(last, strlen(last), &l, &e), 0);
    ASSERT_TRUE(l.n == 1 && l.token == NULL);
    xlate_listing_free(&l);
    /* A DirectoryListing without its parts is refused. */
    const char *bad[] = {
        "{\"DirectoryListing\":{\"remainingEntries\":0}}",
        "{\"DirectoryListing\":{\"partialListing\":{\"FileStatuses\":{\"FileStatus\":[]}}}}",
        "{\"DirectoryListing\":{\"partialListing\":{},\"remainingEntries\":0}}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ASSERT_EQ_INT(xlate_liststatus_parse(bad[i], strlen(bad[i]), &l, &e), -1);
    dbuf q;
    dbuf_init(&q, 4096);
    ASSERT_EQ_INT(xlate_liststatus_batch_query(NULL, &q), 0);
    ASSERT_TRUE(q.len == 0);
    ASSERT_EQ_INT(xlate_liststatus_batch_query("a b&c", &q), 0);
    ASSERT_EQ_STR(q.data, "startAfter=a%20b%26c");
    dbuf_free(&q);
}

TEST(liststatus_pages)
{
    xlate_listing l;
    xlate_err e;
    /* Token after the array (emulator, ADLS), mixed key case, an entry with an ACL. */
    const char *page = "{\"fileStatuses\":{\"FileStatus\":[{\"pathSuffix\":\"a b\",\"type\":\"DIRECTORY\","
                       "\"owner\":\"alice\",\"group\":\"eng\",\"permission\":\"1750\",\"aclBit\":true},"
                       "{\"pathSuffix\":\"f\",\"type\":\"FILE\",\"length\":3,\"permission\":\"640\"}],"
                       "\"continuationToken\":\"f\"}}";
    ASSERT_EQ_INT(xlate_liststatus_parse(page, strlen(page), &l, &e), 0);
    ASSERT_EQ_INT(l.n, 2);
    ASSERT_EQ_STR(l.v[0].name, "a b");
    ASSERT_TRUE(l.v[0].is_dir);
    ASSERT_EQ_STR(l.v[1].name, "f");
    ASSERT_TRUE(!l.v[1].is_dir);
    ASSERT_EQ_STR(l.token, "f");
    /* Each entry's status reads as a FileStatus for the metadata copy. */
    xlate_meta m = {0};
    ASSERT_EQ_INT(xlate_meta_from_filestatus(l.v[0].status, strlen(l.v[0].status), &m, &e), 0);
    ASSERT_EQ_STR(m.owner, "alice");
    ASSERT_EQ_STR(m.group, "eng");
    ASSERT_EQ_INT(m.mode, 01750);
    ASSERT_TRUE(m.is_dir && m.acl_bit);
    xlate_meta_free(&m);
    xlate_listing_free(&l);
    ASSERT_TRUE(l.v == NULL && l.n == 0 && l.token == NULL);

    /* Token first, empty: the listing is complete; an empty directory. */
    const char *last = "{\"FileStatuses\":{\"continuationToken\":\"\",\"FileStatus\":[]}}";
    ASSERT_EQ_INT(xlate_liststatus_parse(last, strlen(last), &l, &e), 0);
    ASSERT_EQ_INT(l.n, 0);
    ASSERT_TRUE(l.token == NULL);
    xlate_listing_free(&l);
    const char *notoken = "{\"FileStatuses\":{\"FileStatus\":[{\"pathSuffix\":\"x\",\"type\":\"FILE\"}]}}";
    ASSERT_EQ_INT(xlate_liststatus_parse(notoken, strlen(notoken), &l, &e), 0);
    ASSERT_TRUE(l.n == 1 && l.token == NULL);
    xlate_listing_free(&l);

    /* Names that would walk out of the directory, missing types, other answers: refused. */
    const char *bad[] = {
        "{\"FileStatuses\":{\"FileStatus\":[{\"pathSuffix\":\"..\",\"type\":\"FILE\"}]}}",
        "{\"FileStatuses\":{\"FileStatus\":[{\"pathSuffix\":\"a/b\",\"type\":\"FILE\"}]}}",
        "{\"FileStatuses\":{\"FileStatus\":[{\"pathSuffix\":\"\",\"type\":\"FILE\"}]}}",
        "{\"FileStatuses\":{\"FileStatus\":[{\"pathSuffix\":\"x\",\"type\":\"SYMLINK\"}]}}",
        "{\"FileStatuses\":{\"FileStatus\":[{\"pathSuffix\":\"x\"}]}}",
        "{\"FileStatuses\":{\"FileStatus\":[\"x\"]}}",
        "{\"FileStatus\":{\"pathSuffix\":\"\",\"type\":\"FILE\"}}",
        "not json",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ASSERT_EQ_INT(xlate_liststatus_parse(bad[i], strlen(bad[i]), &l, &e), -1);
        ASSERT_TRUE(l.v == NULL && l.n == 0);
    }

    dbuf q;
    dbuf_init(&q, 4096);
    ASSERT_EQ_INT(xlate_liststatus_query(256, NULL, &q), 0);
    ASSERT_EQ_STR(q.data, "listSize=256");
    dbuf_reset(&q);
    ASSERT_EQ_INT(xlate_liststatus_query(100, "", &q), 0);
    ASSERT_EQ_STR(q.data, "listSize=100");
    dbuf_reset(&q);
    ASSERT_EQ_INT(xlate_liststatus_query(10, "a b&c=d/e", &q), 0);
    ASSERT_EQ_STR(q.data, "listSize=10&listAfter=a%20b%26c%3Dd%2Fe");
    dbuf_free(&q);
}

TEST(meta_from_gen1)
{
    xlate_meta m = {0};
    xlate_err e;
    const char *fs = "{\"FileStatus\":{\"accessTime\":1,\"aclBit\":\"true\",\"blockSize\":268435456,\"group\":\"eng\","
                     "\"length\":0,\"modificationTime\":2,\"owner\":\"alice\",\"pathSuffix\":\"\","
                     "\"permission\":\"1770\",\"replication\":0,\"type\":\"DIRECTORY\"}}";
    ASSERT_EQ_INT(xlate_meta_from_filestatus(fs, strlen(fs), &m, &e), 0);
    ASSERT_EQ_STR(m.owner, "alice");
    ASSERT_EQ_STR(m.group, "eng");
    ASSERT_EQ_INT(m.mode, 01770);
    ASSERT_TRUE(m.is_dir && m.acl_bit);
    const char *as = "{\"AclStatus\":{\"entries\":[\"user:bob:r-x\",\"group::r--\",\"default:user::rwx\","
                     "\"default:group::r-x\",\"default:mask::r-x\",\"default:other::---\",\"default:user:bob:rwx\"],"
                     "\"group\":\"eng\",\"owner\":\"alice\",\"permission\":\"770\",\"stickyBit\":true}}";
    ASSERT_EQ_INT(xlate_meta_from_aclstatus(as, strlen(as), &m, &e), 0);
    ASSERT_EQ_STR(m.acl, "user::rwx,user:bob:r-x,group::r--,mask::rwx,other::---,default:user::rwx,"
                         "default:user:bob:rwx,default:group::r-x,default:mask::r-x,default:other::---");
    ASSERT_EQ_INT(m.mode, 01770);
    xlate_g2req r[XLATE_META_REQS] = {{0}};
    int n = 0;
    ASSERT_EQ_INT(xlate_meta_requests(&m, r, &n, &e), 0);
    ASSERT_EQ_INT(n, 2);
    ASSERT_REQ(&r[0], "PATCH", "action=setAccessControl",
               "x-ms-owner: alice|x-ms-group: eng|x-ms-acl: user::rwx,user:bob:r-x,group::r--,mask::rwx,other::---,"
               "default:user::rwx,default:user:bob:rwx,default:group::r-x,default:mask::r-x,default:other::---");
    ASSERT_REQ(&r[1], "PATCH", "action=setAccessControl", "x-ms-permissions: 1770");

    /* No ACL: the minimal x-ms-acl from the mode (clears whatever Gen2 inherited), one request. */
    const char *fs2 = "{\"FileStatus\":{\"aclBit\":false,\"group\":\"g\",\"owner\":\"o\",\"permission\":\"640\","
                      "\"type\":\"FILE\"}}";
    ASSERT_EQ_INT(xlate_meta_from_filestatus(fs2, strlen(fs2), &m, &e), 0);
    ASSERT_TRUE(!m.acl && !m.acl_bit && !m.is_dir);
    ASSERT_EQ_INT(xlate_meta_requests(&m, r, &n, &e), 0);
    ASSERT_EQ_INT(n, 1);
    ASSERT_REQ(&r[0], "PATCH", "action=setAccessControl",
               "x-ms-owner: o|x-ms-group: g|x-ms-acl: user::rw-,group::r--,other::---");

    /* Only default entries (a directory): group:: comes from the mode, no access mask. */
    const char *fs3 = "{\"FileStatus\":{\"aclBit\":true,\"group\":\"g\",\"owner\":\"o\",\"permission\":\"750\","
                      "\"type\":\"DIRECTORY\"}}";
    const char *as3 = "{\"AclStatus\":{\"entries\":[\"default:user::rwx\",\"default:group::r-x\","
                      "\"default:other::---\"],\"group\":\"g\",\"owner\":\"o\",\"permission\":\"750\","
                      "\"stickyBit\":false}}";
    ASSERT_EQ_INT(xlate_meta_from_filestatus(fs3, strlen(fs3), &m, &e), 0);
    ASSERT_EQ_INT(xlate_meta_from_aclstatus(as3, strlen(as3), &m, &e), 0);
    ASSERT_EQ_STR(m.acl, "user::rwx,group::r-x,other::---,default:user::rwx,default:group::r-x,default:other::---");

    ASSERT_EQ_INT(xlate_meta_from_filestatus("{\"RemoteException\":{}}", 22, &m, &e), -1);
    ASSERT_EQ_INT(xlate_meta_from_filestatus("{\"FileStatus\":{\"permission\":\"rwx\"}}", 35, &m, &e), -1);
    xlate_g2req_free(&r[0]);
    xlate_g2req_free(&r[1]);
    xlate_meta_free(&m);
}

TEST(concat_sources)
{
    xlate_paths p;
    xlate_err e;
    ASSERT_EQ_INT(xlate_concat_sources(WH_OP_CONCAT, "/a/x,a/y//", NULL, 0, &p, &e), 0);
    ASSERT_EQ_INT(p.n, 2);
    ASSERT_EQ_STR(p.v[0], "/a/x");
    ASSERT_EQ_STR(p.v[1], "/a/y");
    char *d = xlate_concat_source_dir(&p, "/t/target");
    ASSERT_EQ_STR(d, "/a");
    free(d);
    ASSERT_TRUE(xlate_concat_source_dir(&p, "/a/target") == NULL); /* holds the target */
    xlate_paths_free(&p);

    const char *body = " {\"sources\":[\"/s/1\",\"/s/2\",\"/s/3\"]}";
    ASSERT_EQ_INT(xlate_concat_sources(WH_OP_MSCONCAT, NULL, body, strlen(body), &p, &e), 0);
    ASSERT_EQ_INT(p.n, 3);
    ASSERT_EQ_STR(p.v[2], "/s/3");
    xlate_paths_free(&p);
    const char *form = "sources=%2Fs%2F1,/t/2\r\n";
    ASSERT_EQ_INT(xlate_concat_sources(WH_OP_MSCONCAT, NULL, form, strlen(form), &p, &e), 0);
    ASSERT_EQ_INT(p.n, 2);
    ASSERT_EQ_STR(p.v[0], "/s/1");
    ASSERT_TRUE(xlate_concat_source_dir(&p, "/x") == NULL); /* spread over two directories */
    xlate_paths_free(&p);
    ASSERT_EQ_INT(xlate_concat_sources(WH_OP_MSCONCAT, "/p/1", NULL, 0, &p, &e), 0); /* param form */
    ASSERT_EQ_INT(p.n, 1);
    d = xlate_concat_source_dir(&p, "/x");
    ASSERT_EQ_STR(d, "/p");
    free(d);
    xlate_paths_free(&p);
    ASSERT_EQ_INT(xlate_concat_sources(WH_OP_CONCAT, "/top1,/top2", NULL, 0, &p, &e), 0);
    ASSERT_TRUE(xlate_concat_source_dir(&p, "/x") == NULL); /* never the root */
    xlate_paths_free(&p);
    ASSERT_EQ_INT(xlate_concat_sources(WH_OP_CONCAT, "/a/../b", NULL, 0, &p, &e), -1);
    ASSERT_EQ_INT(xlate_concat_sources(WH_OP_CONCAT, "/a,,/b", NULL, 0, &p, &e), -1);
    ASSERT_EQ_INT(xlate_concat_sources(WH_OP_CONCAT, NULL, NULL, 0, &p, &e), -1);
    ASSERT_EQ_INT(xlate_concat_sources(WH_OP_MSCONCAT, NULL, "{\"sources\":[1]}", 15, &p, &e), -1);
    ASSERT_EQ_INT(xlate_concat_sources(WH_OP_MSCONCAT, NULL, "{}", 2, &p, &e), -1);
}

TEST(path_relations)
{
    ASSERT_TRUE(xlate_path_related("/a", "/a"));
    ASSERT_TRUE(xlate_path_related("/a", "/a/b/c"));
    ASSERT_TRUE(xlate_path_related("/a/b/c", "/a"));
    ASSERT_TRUE(xlate_path_related("/", "/x"));
    ASSERT_TRUE(xlate_path_related("/x", "/"));
    ASSERT_TRUE(!xlate_path_related("/a", "/ab"));
    ASSERT_TRUE(!xlate_path_related("/ab/c", "/a"));
    ASSERT_TRUE(!xlate_path_related("/a/b", "/a/c"));
}

TEST(retry_classification)
{
    ASSERT_TRUE(xlate_retryable(true, 0));
    ASSERT_TRUE(xlate_retryable(false, 408));
    ASSERT_TRUE(xlate_retryable(false, 429));
    ASSERT_TRUE(xlate_retryable(false, 500));
    ASSERT_TRUE(xlate_retryable(false, 503));
    ASSERT_TRUE(!xlate_retryable(false, 501));
    ASSERT_TRUE(!xlate_retryable(false, 505));
    ASSERT_TRUE(!xlate_retryable(false, 404));
    ASSERT_TRUE(!xlate_retryable(false, 409));
    ASSERT_TRUE(!xlate_retryable(false, 412));
    ASSERT_TRUE(!xlate_retryable(false, 200));
    ASSERT_EQ_INT(xlate_retry_after_ms("5", 0), 5000);
    ASSERT_EQ_INT(xlate_retry_after_ms("0", 0), 0);
    ASSERT_EQ_INT(xlate_retry_after_ms("Wed, 22 Feb 2023 02:41:28 GMT", 1677033685000), 3000);
    ASSERT_EQ_INT(xlate_retry_after_ms("Wed, 22 Feb 2023 02:41:28 GMT", 1677033699000), 0);
    ASSERT_EQ_INT(xlate_retry_after_ms("soon", 0), -1);
    ASSERT_EQ_INT(xlate_retry_after_ms("-3", 0), -1);
    ASSERT_EQ_INT(xlate_retry_after_ms(" 3", 0), -1);
    ASSERT_EQ_INT(xlate_retry_after_ms("+3", 0), -1);
    ASSERT_EQ_INT(xlate_retry_after_ms(NULL, 0), -1);
}

TEST(permission_conversions)
{
    char o[8];
    bool acl = true;
    xlate_err e;
    ASSERT_EQ_INT(xlate_perm_to_octal("rwxr-x---", o, &acl, &e), 0);
    ASSERT_EQ_STR(o, "750");
    ASSERT_TRUE(!acl);
    ASSERT_EQ_INT(xlate_perm_to_octal("rwxr-x--T+", o, &acl, &e), 0);
    ASSERT_EQ_STR(o, "1750");
    ASSERT_TRUE(acl);
    ASSERT_EQ_INT(xlate_perm_to_octal("rwxrwxrwt", o, &acl, &e), 0);
    ASSERT_EQ_STR(o, "1777");
    ASSERT_EQ_INT(xlate_perm_to_octal("---------", o, &acl, &e), 0);
    ASSERT_EQ_STR(o, "0");
    ASSERT_EQ_INT(xlate_perm_to_octal("0640", o, &acl, &e), 0);
    ASSERT_EQ_STR(o, "640");
    ASSERT_EQ_INT(xlate_perm_to_octal("rwxr-x-", o, &acl, &e), -1);
    ASSERT_EQ_INT(xlate_perm_to_octal("rwxr-x--q", o, &acl, &e), -1);
    ASSERT_EQ_INT(xlate_perm_to_octal("", o, &acl, &e), -1);
    /* Round trip: Gen1 octal → Gen2 header → Gen1 octal. */
    xlate_g2req r = {0};
    ASSERT_EQ_INT(xlate_setpermission("1751", &r, &e), 0);
    ASSERT_EQ_INT(xlate_perm_to_octal(r.headers[0] + strlen("x-ms-permissions: "), o, &acl, &e), 0);
    ASSERT_EQ_STR(o, "1751");
    xlate_g2req_free(&r);
}

TEST(aclstatus_from_gen2)
{
    dbuf b;
    dbuf_init(&b, 1 << 16);
    xlate_err e;
    ASSERT_EQ_INT(xlate_aclstatus_json("user::rwx,user:bob:r-x,group::r--,mask::r-x,other::---,default:user::rwx,"
                                       "default:group::r-x,default:other::---",
                                       "rwxr-x---+", "alice", "eng", &b, &e),
                  0);
    ASSERT_EQ_STR(b.data, "{\"AclStatus\":{\"entries\":[\"user:bob:r-x\",\"group::r--\",\"default:user::rwx\","
                          "\"default:group::r-x\",\"default:other::---\"],\"group\":\"eng\",\"owner\":\"alice\","
                          "\"permission\":\"750\",\"stickyBit\":false}}");
    dbuf_reset(&b);
    ASSERT_EQ_INT(xlate_aclstatus_json("user::rwx,group::r-x,other::---", "rwxr-x--T", "$superuser", "$superuser",
                                       &b, &e),
                  0);
    ASSERT_EQ_STR(b.data, "{\"AclStatus\":{\"entries\":[],\"group\":\"$superuser\",\"owner\":\"$superuser\","
                          "\"permission\":\"1750\",\"stickyBit\":true}}");
    dbuf_reset(&b);
    ASSERT_EQ_INT(xlate_aclstatus_json("user::rwx,bogus", "rwxr-x---", "a", "b", &b, &e), -1);
    dbuf_free(&b);
}

TEST(filestatus_from_gen2)
{
    const char *live = "{\"contentLength\":\"0\",\"creationTime\":\"133215072889667419\",\"etag\":\"0x8DB147E4CC7FF5B\","
                       "\"expiryTime\":\"0\",\"group\":\"$superuser\",\"isDirectory\":\"true\","
                       "\"lastModified\":\"Wed, 22 Feb 2023 02:41:28 GMT\",\"name\":\"dir/sub\",\"owner\":\"$superuser\","
                       "\"permissions\":\"rwxr-x---\"}";
    json_error_t je;
    json_t *j = json_loads(live, 0, &je);
    ASSERT_TRUE(j != NULL);
    xlate_filestatus fs;
    xlate_err e;
    ASSERT_EQ_INT(xlate_filestatus_from_list(j, &fs, &e), 0);
    json_decref(j);
    ASSERT_EQ_STR(fs.name, "dir/sub");
    ASSERT_TRUE(fs.is_dir && !fs.acl_bit);
    ASSERT_EQ_INT(fs.mtime_ms, 1677033688000);
    ASSERT_EQ_STR(fs.permission, "750");
    dbuf b;
    dbuf_init(&b, 1 << 16);
    ASSERT_EQ_INT(xlate_filestatus_json(&fs, "sub", &b), 0);
    ASSERT_EQ_STR(b.data, "{\"accessTime\":0,\"aclBit\":false,\"blockSize\":0,\"group\":\"$superuser\",\"length\":0,"
                          "\"modificationTime\":1677033688000,\"owner\":\"$superuser\",\"pathSuffix\":\"sub\","
                          "\"permission\":\"750\",\"replication\":0,\"type\":\"DIRECTORY\"}");
    /* A file: no isDirectory, contentLength as a number, ACL marker. */
    j = json_loads("{\"name\":\"f\",\"contentLength\":42,\"permissions\":\"rw-r-----+\",\"owner\":\"o\",\"group\":\"g\"}",
                   0, &je);
    ASSERT_EQ_INT(xlate_filestatus_from_list(j, &fs, &e), 0);
    json_decref(j);
    ASSERT_TRUE(!fs.is_dir && fs.acl_bit);
    ASSERT_EQ_INT(fs.length, 42);
    ASSERT_EQ_STR(fs.permission, "640");
    j = json_loads("{\"name\":\"f\",\"contentLength\":\"4x\"}", 0, &je);
    ASSERT_EQ_INT(xlate_filestatus_from_list(j, &fs, &e), -1);
    json_decref(j);

    ASSERT_EQ_INT(xlate_filestatus_from_head("11", "file", "Thu, 01 Jan 1970 00:00:01 GMT", "alice", "eng",
                                             "rw-r--r--", &fs, &e),
                  0);
    dbuf_reset(&b);
    ASSERT_EQ_INT(xlate_filestatus_json(&fs, "", &b), 0);
    ASSERT_EQ_STR(b.data, "{\"accessTime\":0,\"aclBit\":false,\"blockSize\":268435456,\"group\":\"eng\",\"length\":11,"
                          "\"modificationTime\":1000,\"owner\":\"alice\",\"pathSuffix\":\"\",\"permission\":\"644\","
                          "\"replication\":1,\"type\":\"FILE\"}");
    ASSERT_EQ_INT(xlate_filestatus_from_head("x", "file", NULL, NULL, NULL, NULL, &fs, &e), -1);
    dbuf_free(&b);
}

TEST(times_property)
{
    char v[96];
    int64_t mt, at, len;
    ASSERT_EQ_INT(xlate_times_format(1700000000123, 1700000000000, 42, v, sizeof v), 0);
    ASSERT_EQ_STR(v, "mtime=1700000000123,atime=1700000000000,len=42");
    ASSERT_EQ_INT(xlate_times_format(-1, 5, -1, v, sizeof v), 0);
    ASSERT_EQ_STR(v, "atime=5");
    ASSERT_EQ_INT(xlate_times_format(1, 2, 3, v, 8), -1);
    ASSERT_EQ_INT(xlate_times_parse("mtime=7,len=3", &mt, &at, &len), 0);
    ASSERT_TRUE(mt == 7 && at == -1 && len == 3);
    ASSERT_EQ_INT(xlate_times_parse("mtime=x", &mt, &at, &len), -1);
    ASSERT_EQ_INT(xlate_times_parse("ctime=1", &mt, &at, &len), -1);

    /* properties: other keys kept as they are, ours replaced or added, values base64 */
    dbuf b;
    xlate_err e;
    dbuf_init(&b, 4096);
    ASSERT_EQ_INT(xlate_props_put("a=eA==,dualpipe_times=b2xk,z=", XLATE_TIMES_KEY, "mtime=1", &b, &e), 0);
    ASSERT_EQ_STR(b.data, "a=eA==,z=,dualpipe_times=bXRpbWU9MQ==");
    char out[64];
    ASSERT_EQ_INT(xlate_props_get(b.data, XLATE_TIMES_KEY, out, sizeof out), 1);
    ASSERT_EQ_STR(out, "mtime=1");
    ASSERT_EQ_INT(xlate_props_get(b.data, "missing", out, sizeof out), 0);
    ASSERT_EQ_INT(xlate_props_get("broken", "a", out, sizeof out), -1);
    dbuf_free(&b);

    /* SETTIMES: -1 keeps the recorded value, the length is Gen2's now */
    dbuf_init(&b, 4096);
    ASSERT_EQ_INT(xlate_settimes_props("x=eQ==,dualpipe_times=bXRpbWU9MTAsYXRpbWU9MjAsbGVuPTE=", "5", "-1", "99", &b, &e),
                  0);
    ASSERT_EQ_INT(xlate_props_get(b.data, XLATE_TIMES_KEY, out, sizeof out), 1);
    ASSERT_EQ_STR(out, "mtime=10,atime=99,len=5");
    ASSERT_TRUE(strncmp(b.data, "x=eQ==,", 7) == 0);
    dbuf_free(&b);
    dbuf_init(&b, 4096);
    ASSERT_EQ_INT(xlate_settimes_props(NULL, NULL, "1000", NULL, &b, &e), 0);
    ASSERT_EQ_INT(xlate_props_get(b.data, XLATE_TIMES_KEY, out, sizeof out), 1);
    ASSERT_EQ_STR(out, "mtime=1000");
    ASSERT_EQ_INT(xlate_settimes_props(NULL, NULL, "-1", "-1", &b, &e), -1);
    ASSERT_EQ_INT(xlate_settimes_props(NULL, NULL, "abc", NULL, &b, &e), -1);
    dbuf_free(&b);

    xlate_g2req r = {0};
    ASSERT_EQ_INT(xlate_setprops("k=dg==", "\"0x1\"", &r, &e), 0);
    ASSERT_REQ(&r, "PATCH", "action=setProperties", "x-ms-properties: k=dg==|If-Match: \"0x1\"");
    ASSERT_EQ_INT(xlate_getprops(&r, &e), 0);
    ASSERT_REQ(&r, "HEAD", "", "");
    xlate_g2req_free(&r);
}

/* A Gen1 AclStatus with group:: and n named users (access scope: n + 4 entries on Gen2), into b. */
static void aclstatus_named(dbuf *b, int n)
{
    dbuf_init(b, 1 << 16);
    ASSERT_EQ_INT(dbuf_adds(b, "{\"AclStatus\":{\"entries\":[\"group::r--\""), 0);
    for (int i = 0; i < n; i++) ASSERT_EQ_INT(dbuf_printf(b, ",\"user:u%02d:r--\"", i), 0);
    ASSERT_EQ_INT(dbuf_adds(b, "],\"permission\":\"750\",\"stickyBit\":false}}"), 0);
}

TEST(meta_times_and_acl_limits)
{
    xlate_meta m = {0};
    xlate_err e;
    xlate_g2req r[XLATE_META_REQS] = {{0}};
    int n = 0;
    /* a file's times go into a setProperties after the access control */
    const char *fs = "{\"FileStatus\":{\"accessTime\":11,\"aclBit\":false,\"group\":\"g\",\"length\":3,"
                     "\"modificationTime\":22,\"owner\":\"o\",\"permission\":\"1640\",\"type\":\"FILE\"}}";
    ASSERT_EQ_INT(xlate_meta_from_filestatus(fs, strlen(fs), &m, &e), 0);
    ASSERT_TRUE(m.has_times && m.mtime_ms == 22 && m.atime_ms == 11 && m.length == 3);
    ASSERT_EQ_INT(xlate_meta_requests(&m, r, &n, &e), 0);
    ASSERT_EQ_INT(n, 3);
    ASSERT_REQ(&r[1], "PATCH", "action=setAccessControl", "x-ms-permissions: 1640");
    /* "mtime=22,atime=11,len=3" */
    ASSERT_REQ(&r[2], "PATCH", "action=setProperties", "x-ms-properties: dualpipe_times=bXRpbWU9MjIsYXRpbWU9MTEsbGVuPTM=");

    /* over 32 access entries: no x-ms-acl, the permission bits (group bits: the mask) instead */
    dbuf as;
    aclstatus_named(&as, 29);
    ASSERT_EQ_INT(xlate_meta_from_aclstatus(as.data, as.len, &m, &e), 0);
    ASSERT_EQ_INT(m.acl_over, 33);
    ASSERT_TRUE(m.acl == NULL);
    ASSERT_EQ_INT(xlate_meta_requests(&m, r, &n, &e), 0);
    ASSERT_EQ_INT(n, 2);
    ASSERT_REQ(&r[0], "PATCH", "action=setAccessControl", "x-ms-owner: o|x-ms-group: g|x-ms-permissions: 0750");
    dbuf_free(&as);
    /* 28 named entries fit exactly (28 + user::, group::, mask::, other:: = 32) */
    aclstatus_named(&as, 28);
    ASSERT_EQ_INT(xlate_meta_from_aclstatus(as.data, as.len, &m, &e), 0);
    ASSERT_EQ_INT(m.acl_over, 0);
    ASSERT_TRUE(m.acl != NULL);
    dbuf_free(&as);

    /* default entries without their base entries: filled in from the access entries (HDFS) */
    const char *fsd = "{\"FileStatus\":{\"aclBit\":true,\"group\":\"g\",\"owner\":\"o\",\"permission\":\"750\","
                      "\"type\":\"DIRECTORY\"}}";
    const char *asd = "{\"AclStatus\":{\"entries\":[\"default:user:bob:r-x\"],\"permission\":\"750\"}}";
    ASSERT_EQ_INT(xlate_meta_from_filestatus(fsd, strlen(fsd), &m, &e), 0);
    ASSERT_EQ_INT(xlate_meta_from_aclstatus(asd, strlen(asd), &m, &e), 0);
    ASSERT_TRUE(m.base_added);
    ASSERT_EQ_STR(m.acl, "user::rwx,group::r-x,other::---,default:user::rwx,default:user:bob:r-x,default:group::r-x,"
                         "default:mask::r-x,default:other::---");
    ASSERT_EQ_INT(xlate_meta_requests(&m, r, &n, &e), 0);
    ASSERT_EQ_INT(n, 1); /* a directory: no times property */
    for (int i = 0; i < XLATE_META_REQS; i++) xlate_g2req_free(&r[i]);
    xlate_meta_free(&m);
}

TEST(digest_property)
{
    const char *h = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"; /* SHA-256 of "abc" */
    char v[128], small[40], hex[65];
    int64_t len;
    ASSERT_EQ_INT(xlate_digest_format(h, 3, v, sizeof v), 0);
    ASSERT_EQ_STR(v, "sha256=ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad,len=3");
    ASSERT_EQ_INT(xlate_digest_format("abc", 3, v, sizeof v), -1);       /* not 64 hex digits */
    ASSERT_EQ_INT(xlate_digest_format(h, 3, small, sizeof small), -1);   /* too small */
    ASSERT_EQ_INT(xlate_digest_parse(v, hex, &len), 0);
    ASSERT_EQ_STR(hex, h);
    ASSERT_TRUE(len == 3);
    ASSERT_EQ_INT(xlate_digest_parse("sha256=BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD,len=0",
                                     hex, &len), 0);
    ASSERT_EQ_STR(hex, h); /* lower case */
    ASSERT_EQ_INT(xlate_digest_parse("sha256=ba78,len=3", hex, &len), -1);
    ASSERT_EQ_INT(xlate_digest_parse("md5=x,len=3", hex, &len), -1);
    ASSERT_EQ_INT(xlate_digest_parse("sha256=ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad,len=-1",
                                     hex, &len), -1);

    /* the metadata copy after a CREATE writes the digest next to the times, in one setProperties */
    xlate_meta m = {0};
    xlate_err e;
    xlate_g2req r[XLATE_META_REQS] = {{0}};
    int n = 0;
    const char *fs = "{\"FileStatus\":{\"accessTime\":11,\"aclBit\":false,\"group\":\"g\",\"length\":3,"
                     "\"modificationTime\":22,\"owner\":\"o\",\"permission\":\"640\",\"type\":\"FILE\"}}";
    ASSERT_EQ_INT(xlate_meta_from_filestatus(fs, strlen(fs), &m, &e), 0);
    snprintf(m.sha256, sizeof m.sha256, "%s", h);
    m.sha256_len = 3;
    ASSERT_EQ_INT(xlate_meta_requests(&m, r, &n, &e), 0);
    ASSERT_EQ_INT(n, 2);
    ASSERT_REQ(&r[1], "PATCH", "action=setProperties", "x-ms-properties: dualpipe_times=bXRpbWU9MjIsYXRpbWU9MTEsbGVuPTM=,dualpipe_sha256=c2hhMjU2PWJhNzgxNmJmOGYwMWNmZWE0MTQxNDBkZTVkYWUyMjIzYjAwMzYxYTM5NjE3N2E5Y2I0MTBmZjYxZjIwMDE1YWQsbGVuPTM=");
    for (int i = 0; i < XLATE_META_REQS; i++) xlate_g2req_free(&r[i]);
    xlate_meta_free(&m);
}

TEST(crc_property)
{
    char v[64], small[16];
    uint32_t crc = 0;
    int64_t len = -1;
    ASSERT_EQ_INT(xlate_crc_format(0x364b3fb7u, 3, v, sizeof v), 0); /* CRC-32C of "abc" */
    ASSERT_EQ_STR(v, "crc32c=364b3fb7,len=3");
    ASSERT_EQ_INT(xlate_crc_format(1, 3, small, sizeof small), -1);   /* too small */
    ASSERT_EQ_INT(xlate_crc_format(1, -1, v, sizeof v), -1);
    ASSERT_EQ_INT(xlate_crc_parse("crc32c=364B3FB7,len=3", &crc, &len), 0);
    ASSERT_EQ_INT(crc, 0x364b3fb7u);
    ASSERT_TRUE(len == 3);
    ASSERT_EQ_INT(xlate_crc_parse("crc32c=00000000,len=0", &crc, &len), 0);
    ASSERT_TRUE(crc == 0 && len == 0);
    crc = 5;
    len = 6;
    ASSERT_EQ_INT(xlate_crc_parse("crc32c=364b3fb,len=3", &crc, &len), -1);   /* 7 digits */
    ASSERT_EQ_INT(xlate_crc_parse("crc32c=364b3fb7x,len=3", &crc, &len), -1); /* 9 characters */
    ASSERT_EQ_INT(xlate_crc_parse("crc32c=364b3fb7,len=-3", &crc, &len), -1);
    ASSERT_EQ_INT(xlate_crc_parse("crc32c=364b3fb7,len=3x", &crc, &len), -1);
    ASSERT_EQ_INT(xlate_crc_parse("crc32c=364b3fb7", &crc, &len), -1);
    ASSERT_EQ_INT(xlate_crc_parse("sha256=364b3fb7,len=3", &crc, &len), -1);
    ASSERT_EQ_INT(xlate_crc_parse(NULL, &crc, &len), -1);
    ASSERT_TRUE(crc == 5 && len == 6); /* untouched on failure */

    /* the metadata copy writes the CRC-32C with the times and the SHA-256, in one setProperties */
    xlate_meta m = {0};
    xlate_err e;
    xlate_g2req r[XLATE_META_REQS] = {{0}};
    int n = 0;
    const char *fs = "{\"FileStatus\":{\"accessTime\":11,\"aclBit\":false,\"group\":\"g\",\"length\":3,"
                     "\"modificationTime\":22,\"owner\":\"o\",\"permission\":\"640\",\"type\":\"FILE\"}}";
    ASSERT_EQ_INT(xlate_meta_from_filestatus(fs, strlen(fs), &m, &e), 0);
    snprintf(m.sha256, sizeof m.sha256, "%s", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    m.sha256_len = 3;
    m.has_crc = true;
    m.crc32c = 0x364b3fb7u;
    m.crc_len = 3;
    ASSERT_EQ_INT(xlate_meta_requests(&m, r, &n, &e), 0);
    ASSERT_EQ_INT(n, 2);
    ASSERT_REQ(&r[1], "PATCH", "action=setProperties", "x-ms-properties: dualpipe_times=bXRpbWU9MjIsYXRpbWU9MTEsbGVuPTM=,dualpipe_crc32c=Y3JjMzJjPTM2NGIzZmI3LGxlbj0z,dualpipe_sha256=c2hhMjU2PWJhNzgxNmJmOGYwMWNmZWE0MTQxNDBkZTVkYWUyMjIzYjAwMzYxYTM5NjE3N2E5Y2I0MTBmZjYxZjIwMDE1YWQsbGVuPTM=");
    char got[128];
    ASSERT_EQ_INT(xlate_props_get(strchr(r[1].headers[0], ' ') + 1, XLATE_CRC_KEY, got, sizeof got), 1);
    ASSERT_EQ_STR(got, "crc32c=364b3fb7,len=3");
    for (int i = 0; i < XLATE_META_REQS; i++) xlate_g2req_free(&r[i]);
    xlate_meta_free(&m);
    /* a CRC alone (a whole-file copy of a file Gen1 gave no times for) still gets its setProperties */
    memset(&m, 0, sizeof m);
    m.has_crc = true;
    m.crc_len = 0;
    ASSERT_EQ_INT(xlate_meta_requests(&m, r, &n, &e), 0);
    ASSERT_EQ_INT(n, 2);
    for (int i = 0; i < XLATE_META_REQS; i++) xlate_g2req_free(&r[i]);
    xlate_meta_free(&m);
}

TESTS(T(times_property), T(digest_property), T(crc_property), T(meta_times_and_acl_limits), T(create_requests), T(append_and_flush_requests), T(append_with_flush_request_and_version), T(flush_policy_per_syncflag), T(mkdirs_requests_and_answers),
      T(rename_options_and_target), T(rename_requests), T(delete_and_metadata_requests), T(acl_merge_modify),
      T(acl_merge_set_and_remove), T(expiry_mapping), T(rfc1123_dates), T(gen1_answers_and_lookups),
      T(liststatus_pages), T(liststatus_batch_pages), T(meta_from_gen1), T(concat_sources), T(path_relations), T(retry_classification),
      T(permission_conversions), T(aclstatus_from_gen2), T(filestatus_from_gen2))
