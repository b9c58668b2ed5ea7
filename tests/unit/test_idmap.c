/*
 * test_idmap: the identity map — parsing (comments, blanks, GUID/UPN checks, errors with file:line),
 * look-ups (mapped, passing names, unmapped), owner/group and ACL translation under each policy
 * (keep, drop, resync-later; merged duplicates), and the watcher (reload on change, a broken new file
 * keeps the last good map and is reported once).
 */
#include <fcntl.h>
#include <sys/stat.h>

#include "idmap.h"
#include "tharness.h"

#define U1 "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
#define U2 "11111111-2222-3333-4444-555555555555"
#define G1 "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"

static idm_map *parse_ok(const char *text)
{
    idm_map *m = NULL;
    idm_err e;
    if (idm_parse(text, strlen(text), "map.txt", &m, &e) != 0) TH_FAIL_AT("parse failed: %s", e.message);
    return m;
}

static const char *parse_err(const char *text)
{
    static idm_err e;
    idm_map *m = NULL;
    if (idm_parse(text, strlen(text), "map.txt", &m, &e) == 0) TH_FAIL_AT("parse of \"%s\" should fail", text);
    return e.message;
}

TEST(parses_users_groups_comments)
{
    idm_map *m = parse_ok("# the map\n\nuser alice " U1 "\r\n  user\tbob   bob@contoso.com  \n"
                          "group staff " G1 "\n   # indented comment\nuser carol " U2);
    ASSERT_EQ_INT(idm_count(m, IDM_USER), 3);
    ASSERT_EQ_INT(idm_count(m, IDM_GROUP), 1);
    ASSERT_EQ_STR(idm_lookup(m, IDM_USER, "alice"), U1);
    ASSERT_EQ_STR(idm_lookup(m, IDM_USER, "bob"), "bob@contoso.com");
    ASSERT_EQ_STR(idm_lookup(m, IDM_USER, "carol"), U2);
    ASSERT_EQ_STR(idm_lookup(m, IDM_GROUP, "staff"), G1);
    /* kinds are separate name spaces */
    ASSERT_TRUE(idm_lookup(m, IDM_GROUP, "alice") == NULL);
    ASSERT_TRUE(idm_lookup(m, IDM_USER, "staff") == NULL);
    ASSERT_TRUE(idm_lookup(m, IDM_USER, "dave") == NULL);
    idm_unref(m);
}

TEST(passing_names)
{
    idm_map *m = parse_ok("");
    ASSERT_EQ_STR(idm_lookup(m, IDM_USER, "$superuser"), "$superuser");
    ASSERT_EQ_STR(idm_lookup(m, IDM_GROUP, U1), U1);
    ASSERT_EQ_STR(idm_lookup(NULL, IDM_USER, U2), U2);
    ASSERT_EQ_STR(idm_lookup(m, IDM_USER, ""), "");
    ASSERT_TRUE(idm_lookup(NULL, IDM_USER, "hdfs") == NULL);
    idm_unref(m);
}

TEST(guid_and_upn)
{
    ASSERT_TRUE(idm_is_guid(U1));
    ASSERT_TRUE(idm_is_guid("3F2504E0-4F89-11D3-9A0C-0305E82C3301"));
    ASSERT_TRUE(!idm_is_guid("3f2504e0-4f89-11d3-9a0c-0305e82c330"));
    ASSERT_TRUE(!idm_is_guid("3f2504e0-4f89-11d3-9a0c-0305e82c33011"));
    ASSERT_TRUE(!idm_is_guid("3f2504e04f89-11d3-9a0c-0305e82c3301-"));
    ASSERT_TRUE(!idm_is_guid("gf2504e0-4f89-11d3-9a0c-0305e82c3301"));
    ASSERT_TRUE(idm_is_upn("bob@contoso.com"));
    ASSERT_TRUE(idm_is_upn("b.o-b@sub.contoso.co"));
    ASSERT_TRUE(!idm_is_upn("bob"));
    ASSERT_TRUE(!idm_is_upn("@contoso.com"));
    ASSERT_TRUE(!idm_is_upn("bob@contoso"));
    ASSERT_TRUE(!idm_is_upn("bob@contoso."));
    ASSERT_TRUE(!idm_is_upn("bob@.com"));
    ASSERT_TRUE(!idm_is_upn("bob@a@contoso.com"));
    ASSERT_TRUE(!idm_is_upn("bo b@contoso.com"));
    ASSERT_TRUE(!idm_is_upn("bob:x@contoso.com"));
}

TEST(errors_name_file_and_line)
{
    ASSERT_EQ_STR(parse_err("user alice " U1 "\n\nuser bob\n"),
                  "map.txt:3: expected \"user NAME ID\" or \"group NAME ID\" (3 fields, got 2)");
    ASSERT_EQ_STR(parse_err("# c\nuser a " U1 " extra\n"),
                  "map.txt:2: expected \"user NAME ID\" or \"group NAME ID\" (3 fields, got more than 3)");
    ASSERT_EQ_STR(parse_err("person a " U1), "map.txt:1: unknown kind \"person\" (user or group)");
    ASSERT_EQ_STR(parse_err("group staff staff@contoso.com"),
                  "map.txt:1: group staff: \"staff@contoso.com\" is not an object id (a GUID like "
                  "3f2504e0-4f89-11d3-9a0c-0305e82c3301)");
    ASSERT_EQ_STR(parse_err("\nuser alice alice"),
                  "map.txt:2: user alice: \"alice\" is neither an object id (GUID) nor a UPN (name@domain)");
    ASSERT_EQ_STR(parse_err("user a:b " U1), "map.txt:1: bad name: at most 255 bytes, no ',' ':' or control characters");
    ASSERT_EQ_STR(parse_err("user a " U1 "\ngroup a " G1 "\n#\nuser a " U2),
                  "map.txt:4: user a is already mapped at line 1");
    const char nul[] = "user a " U1 "\nuser b\0 " U2;
    idm_map *m = NULL;
    idm_err e;
    ASSERT_EQ_INT(idm_parse(nul, sizeof nul - 1, "m", &m, &e), -1);
    ASSERT_EQ_STR(e.message, "m:2: NUL byte in the file");
}

TEST(owner_group_under_policies)
{
    idm_map *m = parse_ok("user alice " U1 "\ngroup staff " G1);
    idm_result r;
    memset(&r, 0, sizeof r);
    ASSERT_EQ_STR(idm_name(m, IDM_DROP, IDM_USER, "alice", &r), U1);
    ASSERT_EQ_STR(idm_name(m, IDM_DROP, IDM_USER, "$superuser", &r), "$superuser");
    ASSERT_TRUE(idm_name(m, IDM_DROP, IDM_USER, "", &r) == NULL);
    ASSERT_EQ_INT(r.unmapped, 0);
    ASSERT_EQ_STR(idm_name(m, IDM_KEEP, IDM_USER, "bob", &r), "bob");
    ASSERT_EQ_INT(r.unmapped, 1);
    ASSERT_EQ_INT(r.kept, 1);
    ASSERT_TRUE(idm_name(m, IDM_DROP, IDM_GROUP, "wheel", &r) == NULL);
    ASSERT_TRUE(idm_name(m, IDM_RESYNC_LATER, IDM_USER, "bob", &r) == NULL);
    ASSERT_EQ_INT(r.unmapped, 2); /* bob counted once */
    ASSERT_EQ_INT(r.dropped, 2);
    char names[200];
    idm_result_names(&r, names, sizeof names);
    ASSERT_EQ_STR(names, "user bob, group wheel");
    idm_unref(m);
}

static const char *acl_of(idm_map *m, idm_policy pol, const char *in, bool with_perm, idm_result *r, bool *empty)
{
    static char buf[4096];
    dbuf b;
    idm_err e;
    dbuf_init(&b, 1 << 16);
    memset(r, 0, sizeof *r);
    if (idm_acl(m, pol, in, with_perm, &b, empty, r, &e) != 0) TH_FAIL_AT("idm_acl failed: %s", e.message);
    snprintf(buf, sizeof buf, "%s", b.data ? b.data : "");
    dbuf_free(&b);
    return buf;
}

TEST(acl_translation)
{
    idm_map *m = parse_ok("user alice " U1 "\nuser al " U1 "\ngroup staff " G1);
    idm_result r;
    bool empty;
    const char *in = "user::rwx,user:alice:r-x,user:bob:rw-,group::r-x,group:staff:r--,mask::rwx,other::---,"
                     "default:user:alice:rwx,default:group:wheel:r-x";
    ASSERT_EQ_STR(acl_of(m, IDM_DROP, in, true, &r, &empty),
                  "user::rwx,user:" U1 ":r-x,group::r-x,group:" G1 ":r--,mask::rwx,other::---,default:user:" U1 ":rwx");
    ASSERT_EQ_INT(r.unmapped, 2);
    ASSERT_EQ_INT(r.dropped, 2);
    ASSERT_TRUE(!empty);
    ASSERT_EQ_STR(acl_of(m, IDM_KEEP, in, true, &r, &empty),
                  "user::rwx,user:" U1 ":r-x,user:bob:rw-,group::r-x,group:" G1 ":r--,mask::rwx,other::---,"
                  "default:user:" U1 ":rwx,default:group:wheel:r-x");
    ASSERT_EQ_INT(r.kept, 2);
    ASSERT_EQ_INT(r.unmapped, 2);
    /* resync-later leaves the entries out like drop */
    ASSERT_EQ_STR(acl_of(m, IDM_RESYNC_LATER, "user:bob:r--,other::r--", true, &r, &empty), "other::r--");
    ASSERT_EQ_INT(r.dropped, 1);
    /* two names for one identity: the first entry is kept */
    ASSERT_EQ_STR(acl_of(m, IDM_DROP, "user:alice:r--,user:al:rwx", true, &r, &empty), "user:" U1 ":r--");
    ASSERT_EQ_INT(r.merged, 1);
    ASSERT_EQ_INT(r.unmapped, 0);
    /* removal specs (no permissions) */
    ASSERT_EQ_STR(acl_of(m, IDM_DROP, "user:alice,default:group:staff", false, &r, &empty),
                  "user:" U1 ",default:group:" G1);
    acl_of(m, IDM_DROP, "user:bob", false, &r, &empty);
    ASSERT_TRUE(empty);
    /* a bad list is an error */
    dbuf b;
    dbuf_init(&b, 1024);
    idm_err e;
    ASSERT_EQ_INT(idm_acl(m, IDM_DROP, "bogus:x:rwx", true, &b, &empty, &r, &e), -1);
    dbuf_free(&b);
    idm_unref(m);
}

static char tmpdir[64];

static void write_file(const char *path, const char *text)
{
    char tmp[256];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) TH_FAIL_AT("cannot write %s", tmp);
    fputs(text, f);
    fclose(f);
    if (rename(tmp, path) != 0) TH_FAIL_AT("rename failed");
}

static void rm_dir(const char *path)
{
    char p[256];
    snprintf(p, sizeof p, "%s/map", path);
    unlink(p);
    rmdir(path);
}

TEST(watch_reloads_and_keeps_last_good)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_idmap.XXXXXX");
    if (!mkdtemp(tmpdir)) TH_FAIL_AT("mkdtemp");
    char path[256];
    snprintf(path, sizeof path, "%s/map", tmpdir);
    write_file(path, "user alice " U1 "\n");
    idm_watch *w = NULL;
    idm_err e;
    ASSERT_EQ_INT(idm_watch_new(path, &w, &e), 0);
    idm_map *held = idm_watch_get(w);
    ASSERT_EQ_STR(idm_lookup(held, IDM_USER, "alice"), U1);
    /* unchanged file, and too soon after a look: nothing */
    ASSERT_EQ_INT(idm_watch_poll(w, 10000, false, &e), IDM_POLL_SAME);
    write_file(path, "user alice " U2 "\nuser bob bob@contoso.com\n");
    ASSERT_EQ_INT(idm_watch_poll(w, 10500, false, &e), IDM_POLL_SAME); /* within IDM_POLL_MS */
    ASSERT_EQ_INT(idm_watch_poll(w, 11000, false, &e), IDM_POLL_RELOADED);
    ASSERT_EQ_INT(idm_watch_generation(w), 1);
    idm_map *m = idm_watch_get(w);
    ASSERT_EQ_STR(idm_lookup(m, IDM_USER, "alice"), U2);
    ASSERT_EQ_STR(idm_lookup(m, IDM_USER, "bob"), "bob@contoso.com");
    idm_unref(m);
    /* the map held before the reload is still whole */
    ASSERT_EQ_STR(idm_lookup(held, IDM_USER, "alice"), U1);
    idm_unref(held);
    /* a broken file: reported once, with file:line; the last good map stays */
    write_file(path, "user alice " U2 "\n\ngroup staff notaguid\n");
    ASSERT_EQ_INT(idm_watch_poll(w, 12000, false, &e), IDM_POLL_BROKEN);
    ASSERT_TRUE(strstr(e.message, "/map:3: group staff") != NULL);
    ASSERT_EQ_INT(idm_watch_poll(w, 13000, false, &e), IDM_POLL_SAME);
    m = idm_watch_get(w);
    ASSERT_EQ_STR(idm_lookup(m, IDM_USER, "bob"), "bob@contoso.com");
    idm_unref(m);
    /* a missing file is broken too; fixed, it loads */
    unlink(path);
    ASSERT_EQ_INT(idm_watch_poll(w, 14000, false, &e), IDM_POLL_BROKEN);
    write_file(path, "group staff " G1 "\n");
    ASSERT_EQ_INT(idm_watch_poll(w, 14001, true, &e), IDM_POLL_RELOADED);
    m = idm_watch_get(w);
    ASSERT_EQ_STR(idm_lookup(m, IDM_GROUP, "staff"), G1);
    ASSERT_TRUE(idm_lookup(m, IDM_USER, "bob") == NULL);
    idm_unref(m);
    idm_watch_free(w);
    rm_dir(tmpdir);
}

TEST(watch_needs_a_good_file_at_start)
{
    idm_watch *w = NULL;
    idm_err e;
    ASSERT_EQ_INT(idm_watch_new("/nonexistent/dualpipe-idmap", &w, &e), -1);
    ASSERT_TRUE(strstr(e.message, "/nonexistent/dualpipe-idmap: ") == e.message);
}

TESTS(T(parses_users_groups_comments), T(passing_names), T(guid_and_upn), T(errors_name_file_and_line),
      T(owner_group_under_policies), T(acl_translation), T(watch_reloads_and_keeps_last_good),
      T(watch_needs_a_good_file_at_start))
