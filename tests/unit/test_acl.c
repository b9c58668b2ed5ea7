/*
 * test_acl: the ACL model against HDFS behaviour — spec parsing and formatting, permission words,
 * the AclTransformation rules (SETACL, MODIFYACLENTRIES, REMOVEACLENTRIES, REMOVEACL,
 * REMOVEDEFAULTACL), chmod on a node with an ACL, GETACLSTATUS entries, default-ACL inheritance on
 * create, and POSIX access evaluation.
 */
#include "acl.h"
#include "tharness.h"

/* Format a list as a spec string into a static-size buffer owned by the caller. */
static void fmt_list(const acl_list *l, char *out, size_t size)
{
    dbuf b;
    dbuf_init(&b, 1 << 16);
    if (acl_format(l, &b) != 0) TH_FAIL_AT("acl_format failed");
    snprintf(out, size, "%s", b.data ? b.data : "");
    dbuf_free(&b);
}

static const char *full_str(const acl_node *n)
{
    static char buf[8192];
    acl_list l;
    acl_full(n, &l);
    fmt_list(&l, buf, sizeof buf);
    return buf;
}

static const char *status_str(const acl_node *n)
{
    static char buf[8192];
    acl_list l;
    acl_status_entries(n, &l);
    fmt_list(&l, buf, sizeof buf);
    return buf;
}

static void parse_ok(const char *spec, bool with_perm, acl_list *l)
{
    acl_err e;
    if (acl_parse(spec, with_perm, l, &e) != 0) TH_FAIL_AT("parse \"%s\": %s", spec, e.message);
}

/* Apply op(spec) to n and fail the test on error. */
static void set_ok(acl_node *n, const char *spec, bool is_dir)
{
    acl_list l;
    acl_err e;
    parse_ok(spec, true, &l);
    if (acl_set(n, &l, is_dir, &e) != 0) TH_FAIL_AT("setacl \"%s\": %s", spec, e.message);
}

static void modify_ok(acl_node *n, const char *spec, bool is_dir)
{
    acl_list l;
    acl_err e;
    parse_ok(spec, true, &l);
    if (acl_modify(n, &l, is_dir, &e) != 0) TH_FAIL_AT("modify \"%s\": %s", spec, e.message);
}

static acl_node node(uint16_t mode)
{
    acl_node n;
    memset(&n, 0, sizeof n);
    n.mode = mode;
    return n;
}

/* ---- parsing ----------------------------------------------------------------------------------- */

TEST(parse_base_entries)
{
    acl_list l;
    parse_ok("user::rwx,group::r-x,other::---", true, &l);
    ASSERT_EQ_INT(l.n, 3);
    ASSERT_EQ_INT(l.e[0].type, ACL_USER);
    ASSERT_EQ_STR(l.e[0].name, "");
    ASSERT_EQ_INT(l.e[0].perm, 7);
    ASSERT_TRUE(!l.e[0].is_default);
    ASSERT_EQ_INT(l.e[1].type, ACL_GROUP);
    ASSERT_EQ_INT(l.e[1].perm, 5);
    ASSERT_EQ_INT(l.e[2].type, ACL_OTHER);
    ASSERT_EQ_INT(l.e[2].perm, 0);
}

TEST(parse_named_default_and_mask)
{
    acl_list l;
    parse_ok("user:alice:rw-", true, &l);
    ASSERT_EQ_INT(l.n, 1);
    ASSERT_EQ_STR(l.e[0].name, "alice");
    ASSERT_EQ_INT(l.e[0].perm, 6);
    parse_ok("default:user:bob:r-x", true, &l);
    ASSERT_TRUE(l.e[0].is_default);
    ASSERT_EQ_INT(l.e[0].type, ACL_USER);
    ASSERT_EQ_STR(l.e[0].name, "bob");
    ASSERT_EQ_INT(l.e[0].perm, 5);
    parse_ok("mask::r--", true, &l);
    ASSERT_EQ_INT(l.e[0].type, ACL_MASK);
    ASSERT_EQ_INT(l.e[0].perm, 4);
    /* Hadoop upper-cases the type before matching it. */
    parse_ok("GROUP:g1:--x", true, &l);
    ASSERT_EQ_INT(l.e[0].type, ACL_GROUP);
    ASSERT_EQ_INT(l.e[0].perm, 1);
}

TEST(parse_without_permissions)
{
    acl_list l;
    parse_ok("user:alice,default:group:g1", false, &l);
    ASSERT_EQ_INT(l.n, 2);
    ASSERT_EQ_STR(l.e[0].name, "alice");
    ASSERT_EQ_INT(l.e[0].perm, -1);
    ASSERT_TRUE(l.e[1].is_default);
    ASSERT_EQ_INT(l.e[1].type, ACL_GROUP);
    ASSERT_EQ_INT(l.e[1].perm, -1);
    /* Gen1 tolerates a permission on removal specs: accepted and ignored. */
    parse_ok("user:alice:rwx,mask::", false, &l);
    ASSERT_EQ_INT(l.e[0].perm, -1);
    ASSERT_EQ_INT(l.e[1].type, ACL_MASK);
    /* A spec with permissions required but missing is an error. */
    acl_err e;
    ASSERT_EQ_INT(acl_parse("user:alice", true, &l, &e), -1);
}

TEST(parse_errors)
{
    static const char *const bad[] = {
        "bogus::rwx", "user:alice:rwz", "mask:x:rwx", "other:x:rwx", "user::rwx,,group::r-x",
        "user::rwx,", ",user::rwx", "", "user:a:rwx:extra", "default", "default:user:a:RWX",
        "user::rwx,user::r--", "user:alice:rwx,user:alice:r--", "user::rw", "Default:user::rwx",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        acl_list l;
        acl_err e;
        e.message[0] = '\0';
        l.n = 99;
        if (acl_parse(bad[i], true, &l, &e) != -1) TH_FAIL_AT("accepted bad spec \"%s\"", bad[i]);
        ASSERT_TRUE(e.message[0] != '\0');
        ASSERT_EQ_INT(l.n, 0);
    }
    acl_list l;
    acl_err e;
    ASSERT_EQ_INT(acl_parse("bogus::rwx", true, &l, &e), -1);
    ASSERT_TRUE(strstr(e.message, "Invalid type of acl") != NULL);
    ASSERT_EQ_INT(acl_parse("user:alice:rwz", true, &l, &e), -1);
    ASSERT_TRUE(strstr(e.message, "Invalid permission") != NULL);
    ASSERT_EQ_INT(acl_parse("user:a:r--,user:a:rw-", true, &l, &e), -1);
    ASSERT_EQ_STR(e.message, "Invalid ACL: multiple entries with same scope, type and name.");
    /* Duplicates are found in removal specs too; access and default are different keys. */
    ASSERT_EQ_INT(acl_parse("user:a,user:a", false, &l, &e), -1);
    parse_ok("user:a:r--,default:user:a:r--", true, &l);
    ASSERT_EQ_INT(l.n, 2);
}

TEST(parse_entry_limit)
{
    char spec[ACL_MAX_ENTRIES * 16 + 64];
    size_t off = 0;
    acl_list l;
    acl_err e;
    for (int i = 0; i < ACL_MAX_ENTRIES; i++)
        off += (size_t)snprintf(spec + off, sizeof spec - off, "%suser:u%d:r--", i ? "," : "", i);
    parse_ok(spec, true, &l);
    ASSERT_EQ_INT(l.n, ACL_MAX_ENTRIES);
    snprintf(spec + off, sizeof spec - off, ",user:extra:r--");
    ASSERT_EQ_INT(acl_parse(spec, true, &l, &e), -1);
    ASSERT_EQ_INT(l.n, 0);
}

TEST(parse_name_bounds)
{
    char spec[ACL_MAX_NAME + 32];
    char name[ACL_MAX_NAME + 1];
    acl_list l;
    acl_err e;
    memset(name, 'n', ACL_MAX_NAME - 1);
    name[ACL_MAX_NAME - 1] = '\0';
    snprintf(spec, sizeof spec, "user:%s:rwx", name);
    parse_ok(spec, true, &l);
    ASSERT_EQ_INT(strlen(l.e[0].name), ACL_MAX_NAME - 1);
    memset(name, 'n', ACL_MAX_NAME);
    name[ACL_MAX_NAME] = '\0';
    snprintf(spec, sizeof spec, "user:%s:rwx", name);
    ASSERT_EQ_INT(acl_parse(spec, true, &l, &e), -1);
    ASSERT_EQ_INT(acl_parse("user:a\tb:rwx", true, &l, &e), -1);
}

TEST(format_round_trips)
{
    static const char *const specs[] = {
        "user::rwx,group::r-x,other::---",
        "user:alice:rw-,default:user:bob:r-x,mask::r--",
        "default:group:g1:--x,default:mask::-wx,default:other::---",
    };
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
        acl_list l;
        char out[512];
        parse_ok(specs[i], true, &l);
        fmt_list(&l, out, sizeof out);
        ASSERT_EQ_STR(out, specs[i]);
    }
    acl_list l;
    char out[512];
    parse_ok("user:alice,default:group:g1", false, &l);
    fmt_list(&l, out, sizeof out);
    ASSERT_EQ_STR(out, "user:alice,default:group:g1");
    char p[4];
    acl_perm_str(5, p);
    ASSERT_EQ_STR(p, "r-x");
    acl_perm_str(0, p);
    ASSERT_EQ_STR(p, "---");
}

TEST(format_respects_buffer_limit)
{
    acl_list l;
    dbuf b;
    parse_ok("user::rwx,group::r-x,other::---", true, &l);
    dbuf_init(&b, 10);
    ASSERT_TRUE(acl_format(&l, &b) < 0);
    dbuf_free(&b);
}

/* ---- permissions ------------------------------------------------------------------------------- */

TEST(parse_octal)
{
    uint16_t m = 0;
    acl_err e;
    ASSERT_EQ_INT(acl_parse_octal("755", &m, &e), 0);
    ASSERT_EQ_INT(m, 0755);
    ASSERT_EQ_INT(acl_parse_octal("0755", &m, &e), 0);
    ASSERT_EQ_INT(m, 0755);
    ASSERT_EQ_INT(acl_parse_octal("1777", &m, &e), 0);
    ASSERT_EQ_INT(m, 01777);
    ASSERT_EQ_INT(acl_parse_octal("0", &m, &e), 0);
    ASSERT_EQ_INT(m, 0);
    m = 0123;
    static const char *const bad[] = {"8", "", "12345", "abc", "2000", "-1", "+7", " 755", "75 ", "0x1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (acl_parse_octal(bad[i], &m, &e) != -1) TH_FAIL_AT("accepted \"%s\"", bad[i]);
    ASSERT_EQ_INT(m, 0123); /* untouched on error */
    ASSERT_EQ_INT(acl_parse_octal(NULL, &m, &e), -1);
}

TEST(parse_perm_any)
{
    uint16_t m = 0;
    acl_err e;
    ASSERT_EQ_INT(acl_parse_perm_any("rwxr-x---", &m, &e), 0);
    ASSERT_EQ_INT(m, 0750);
    ASSERT_EQ_INT(acl_parse_perm_any("rwxr-x--T", &m, &e), 0);
    ASSERT_EQ_INT(m, 01750);
    ASSERT_EQ_INT(acl_parse_perm_any("rwxr-x--t", &m, &e), 0);
    ASSERT_EQ_INT(m, 01751);
    ASSERT_EQ_INT(acl_parse_perm_any("0750", &m, &e), 0);
    ASSERT_EQ_INT(m, 0750);
    ASSERT_EQ_INT(acl_parse_perm_any("1777", &m, &e), 0);
    ASSERT_EQ_INT(m, 01777);
    ASSERT_EQ_INT(acl_parse_perm_any("---------", &m, &e), 0);
    ASSERT_EQ_INT(m, 0);
    static const char *const bad[] = {"750", "2750", "rwxr-x--", "rwxr-x---+", "rwxr-t---",
                                      "wrxr-x---", "rwxr-x--x-", "", "07500"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (acl_parse_perm_any(bad[i], &m, &e) != -1) TH_FAIL_AT("accepted \"%s\"", bad[i]);
}

TEST(mode_strings)
{
    char o[8], s[12];
    acl_mode_octal(0750, o);
    ASSERT_EQ_STR(o, "750");
    acl_mode_octal(01777, o);
    ASSERT_EQ_STR(o, "1777");
    acl_mode_octal(0, o);
    ASSERT_EQ_STR(o, "0");
    acl_mode_octal(0644, o);
    ASSERT_EQ_STR(o, "644");
    acl_mode_symbolic(0750, false, s);
    ASSERT_EQ_STR(s, "rwxr-x---");
    acl_mode_symbolic(0750, true, s);
    ASSERT_EQ_STR(s, "rwxr-x---+");
    acl_mode_symbolic(01777, false, s);
    ASSERT_EQ_STR(s, "rwxrwxrwt");
    acl_mode_symbolic(01750, true, s);
    ASSERT_EQ_STR(s, "rwxr-x--T+");
    /* symbolic and octal forms agree both ways */
    for (unsigned m = 0; m <= 01777; m++) {
        uint16_t back = 0;
        acl_err e;
        acl_mode_symbolic((uint16_t)m, false, s);
        ASSERT_EQ_INT(acl_parse_perm_any(s, &back, &e), 0);
        ASSERT_EQ_INT(back, m);
        acl_mode_octal((uint16_t)m, o);
        ASSERT_EQ_INT(acl_parse_octal(o, &back, &e), 0);
        ASSERT_EQ_INT(back, m);
    }
}

/* ---- transformations --------------------------------------------------------------------------- */

TEST(setacl_requires_base_entries)
{
    acl_node n = node(0750);
    acl_list l;
    acl_err e;
    parse_ok("user:alice:rwx", true, &l);
    ASSERT_EQ_INT(acl_set(&n, &l, true, &e), -1);
    ASSERT_EQ_STR(e.message, "Invalid ACL: the user, group and other entries are required.");
    parse_ok("user::rwx,group::r-x", true, &l);
    ASSERT_EQ_INT(acl_set(&n, &l, true, &e), -1);
    ASSERT_EQ_STR(e.message, "Invalid ACL: the user, group and other entries are required.");
    /* node unchanged on error */
    ASSERT_EQ_INT(n.mode, 0750);
    ASSERT_EQ_INT(n.ext.n, 0);
}

TEST(setacl_computes_mask)
{
    acl_node n = node(01750);
    set_ok(&n, "user::rwx,user:alice:rw-,group::r--,other::---", false);
    ASSERT_EQ_STR(full_str(&n), "user::rwx,user:alice:rw-,group::r--,mask::rw-,other::---");
    /* the mask (union of named entries and group::) lives in the group bits; sticky kept */
    ASSERT_EQ_INT(n.mode, 01760);
    ASSERT_TRUE(acl_has_extended(&n));
    ASSERT_EQ_STR(status_str(&n), "user:alice:rw-,group::r--");
}

TEST(setacl_keeps_given_mask)
{
    acl_node n = node(0755);
    set_ok(&n, "user::rwx,user:alice:rwx,group::r-x,mask::r--,other::---", true);
    ASSERT_EQ_STR(full_str(&n), "user::rwx,user:alice:rwx,group::r-x,mask::r--,other::---");
    ASSERT_EQ_INT(n.mode, 0740);
}

TEST(setacl_minimal_removes_acl)
{
    acl_node n = node(0755);
    set_ok(&n, "user::rwx,user:alice:rwx,group::r-x,other::---", true);
    ASSERT_TRUE(acl_has_extended(&n));
    set_ok(&n, "user::rw-,group::r--,other::r--", true);
    ASSERT_TRUE(!acl_has_extended(&n));
    ASSERT_EQ_INT(n.mode, 0644);
    ASSERT_EQ_STR(full_str(&n), "user::rw-,group::r--,other::r--");
    ASSERT_EQ_STR(status_str(&n), "");
}

TEST(setacl_spec_order_is_canonicalised)
{
    acl_node n = node(0700);
    set_ok(&n, "other::---,group:zg:r--,user:zed:r--,group::r-x,user:amy:rw-,user::rwx,group:ag:--x", true);
    ASSERT_EQ_STR(full_str(&n),
                  "user::rwx,user:amy:rw-,user:zed:r--,group::r-x,group:ag:--x,group:zg:r--,mask::rwx,other::---");
}

TEST(setacl_default_only_keeps_access)
{
    acl_node n = node(0750);
    set_ok(&n, "user::rwx,user:alice:r-x,group::r-x,other::---", true);
    /* a spec with only default entries keeps the access ACL and fills the default base entries
     * from the access entries; the default mask is computed from the default named entries */
    set_ok(&n, "default:user:bob:rwx", true);
    ASSERT_EQ_STR(full_str(&n), "user::rwx,user:alice:r-x,group::r-x,mask::r-x,other::---,"
                                "default:user::rwx,default:user:bob:rwx,default:group::r-x,"
                                "default:mask::rwx,default:other::---");
    ASSERT_EQ_STR(status_str(&n), "user:alice:r-x,group::r-x,default:user::rwx,default:user:bob:rwx,"
                                  "default:group::r-x,default:mask::rwx,default:other::---");
    /* an access-only spec keeps the default ACL */
    set_ok(&n, "user::rwx,group::---,other::---", true);
    ASSERT_EQ_INT(n.mode, 0700);
    ASSERT_EQ_STR(status_str(&n), "default:user::rwx,default:user:bob:rwx,default:group::r-x,"
                                  "default:mask::rwx,default:other::---");
    ASSERT_TRUE(acl_has_extended(&n));
}

TEST(default_on_file_rejected)
{
    acl_node n = node(0640);
    acl_list l;
    acl_err e;
    parse_ok("user::rw-,group::r--,other::---,default:user:bob:r--", true, &l);
    ASSERT_EQ_INT(acl_set(&n, &l, false, &e), -1);
    ASSERT_EQ_STR(e.message, "Invalid ACL: only directories may have a default ACL.");
    parse_ok("default:user:bob:r--", true, &l);
    ASSERT_EQ_INT(acl_modify(&n, &l, false, &e), -1);
    ASSERT_EQ_STR(e.message, "Invalid ACL: only directories may have a default ACL.");
    ASSERT_EQ_INT(n.mode, 0640);
    ASSERT_EQ_INT(n.ext.n, 0);
    /* the same on a directory is fine */
    ASSERT_EQ_INT(acl_modify(&n, &l, true, &e), 0);
}

TEST(default_base_entries_copied_from_access)
{
    acl_node n = node(0751);
    /* partial default ACL: default user:: and other:: are copied from the access entries */
    set_ok(&n, "user::rwx,group::r-x,other::--x,default:group::r--", true);
    ASSERT_EQ_STR(full_str(&n), "user::rwx,group::r-x,other::--x,"
                                "default:user::rwx,default:group::r--,default:other::--x");
    ASSERT_EQ_INT(n.mode, 0751);
    /* only defaults: GETACLSTATUS lists just them, no access group:: */
    ASSERT_EQ_STR(status_str(&n), "default:user::rwx,default:group::r--,default:other::--x");
}

TEST(modify_merges_and_recomputes_mask)
{
    acl_node n = node(0750);
    modify_ok(&n, "user:alice:r--", false);
    ASSERT_EQ_STR(full_str(&n), "user::rwx,user:alice:r--,group::r-x,mask::r-x,other::---");
    modify_ok(&n, "user:alice:rwx,group:g1:r--", false);
    ASSERT_EQ_STR(full_str(&n), "user::rwx,user:alice:rwx,group::r-x,group:g1:r--,mask::rwx,other::---");
    /* changing a base entry also touches the scope, so the mask is recomputed */
    modify_ok(&n, "user:alice:r--,other::r--", false);
    ASSERT_EQ_STR(full_str(&n), "user::rwx,user:alice:r--,group::r-x,group:g1:r--,mask::r-x,other::r--");
    ASSERT_EQ_INT(n.mode, 0754);
    /* an explicit mask wins */
    modify_ok(&n, "mask::--x", false);
    ASSERT_EQ_STR(full_str(&n), "user::rwx,user:alice:r--,group::r-x,group:g1:r--,mask::--x,other::r--");
    ASSERT_EQ_INT(n.mode, 0714);
}

TEST(modify_default_scope_mask)
{
    acl_node n = node(0750);
    modify_ok(&n, "default:user:bob:rw-", true);
    ASSERT_EQ_STR(full_str(&n), "user::rwx,group::r-x,other::---,default:user::rwx,default:user:bob:rw-,"
                                "default:group::r-x,default:mask::rwx,default:other::---");
    /* the access ACL is untouched: no access mask, mode unchanged */
    ASSERT_EQ_INT(n.mode, 0750);
    modify_ok(&n, "default:user:bob:r--", true);
    ASSERT_EQ_STR(full_str(&n), "user::rwx,group::r-x,other::---,default:user::rwx,default:user:bob:r--,"
                                "default:group::r-x,default:mask::r-x,default:other::---");
}

TEST(remove_entries_recomputes_mask)
{
    acl_node n = node(0750);
    set_ok(&n, "user::rwx,user:alice:rwx,user:bob:r--,group::r--,other::---", true);
    ASSERT_EQ_INT(n.mode, 0770);
    acl_list l;
    acl_err e;
    parse_ok("user:alice", false, &l);
    ASSERT_EQ_INT(acl_remove_entries(&n, &l, &e), 0);
    ASSERT_EQ_STR(full_str(&n), "user::rwx,user:bob:r--,group::r--,mask::r--,other::---");
    ASSERT_EQ_INT(n.mode, 0740);
    /* removing an entry that is not there changes nothing */
    parse_ok("group:nobody", false, &l);
    ASSERT_EQ_INT(acl_remove_entries(&n, &l, &e), 0);
    ASSERT_EQ_STR(full_str(&n), "user::rwx,user:bob:r--,group::r--,mask::r--,other::---");
    /* removing the last named entry leaves a recomputed mask... which HDFS then no longer needs:
     * no named entries, so no mask is computed and the ACL becomes minimal again */
    parse_ok("user:bob", false, &l);
    ASSERT_EQ_INT(acl_remove_entries(&n, &l, &e), 0);
    ASSERT_EQ_STR(full_str(&n), "user::rwx,group::r--,other::---");
    ASSERT_TRUE(!acl_has_extended(&n));
    ASSERT_EQ_INT(n.mode, 0740);
}

TEST(remove_required_mask_or_base_fails)
{
    acl_node n = node(0750);
    set_ok(&n, "user::rwx,user:alice:rwx,group::r--,other::---", true);
    acl_node before = n;
    acl_list l;
    acl_err e;
    parse_ok("mask::", false, &l);
    ASSERT_EQ_INT(acl_remove_entries(&n, &l, &e), -1);
    ASSERT_EQ_STR(e.message, "Invalid ACL: mask is required, but it was deleted.");
    parse_ok("group::", false, &l);
    ASSERT_EQ_INT(acl_remove_entries(&n, &l, &e), -1);
    ASSERT_EQ_STR(e.message, "Invalid ACL: the user, group and other entries are required.");
    ASSERT_EQ_INT(n.mode, before.mode);
    ASSERT_EQ_STR(full_str(&n), "user::rwx,user:alice:rwx,group::r--,mask::rwx,other::---");
    /* removing mask and named entries together is fine */
    parse_ok("mask::,user:alice", false, &l);
    ASSERT_EQ_INT(acl_remove_entries(&n, &l, &e), 0);
    ASSERT_EQ_STR(full_str(&n), "user::rwx,group::r--,other::---");
}

TEST(remove_default_entries)
{
    acl_node n = node(0750);
    set_ok(&n, "user::rwx,group::r-x,other::---,default:user:bob:rwx,default:group:g:r--", true);
    acl_list l;
    acl_err e;
    parse_ok("default:user:bob", false, &l);
    ASSERT_EQ_INT(acl_remove_entries(&n, &l, &e), 0);
    ASSERT_EQ_STR(full_str(&n), "user::rwx,group::r-x,other::---,default:user::rwx,default:group::r-x,"
                                "default:group:g:r--,default:mask::r-x,default:other::---");
}

TEST(removeacl_restores_group_bits)
{
    acl_node n = node(01750);
    set_ok(&n, "user::rwx,user:alice:rwx,group::r--,other::---,default:user::rwx,default:group::r-x,"
               "default:other::---", true);
    ASSERT_EQ_INT(n.mode, 01770);
    acl_remove_all(&n);
    ASSERT_TRUE(!acl_has_extended(&n));
    ASSERT_EQ_INT(n.mode, 01740);
    ASSERT_EQ_STR(full_str(&n), "user::rwx,group::r--,other::---");
    /* a node with only defaults keeps its group bits */
    acl_node d = node(0750);
    set_ok(&d, "default:user:bob:r--", true);
    acl_remove_all(&d);
    ASSERT_EQ_INT(d.mode, 0750);
    ASSERT_EQ_INT(d.ext.n, 0);
}

TEST(removedefaultacl)
{
    acl_node n = node(0750);
    set_ok(&n, "user::rwx,user:alice:r--,group::r-x,other::---,default:user:bob:rwx", true);
    acl_remove_default(&n);
    ASSERT_EQ_STR(full_str(&n), "user::rwx,user:alice:r--,group::r-x,mask::r-x,other::---");
    ASSERT_TRUE(acl_has_extended(&n));
    acl_node d = node(0750);
    set_ok(&d, "default:user:bob:rwx", true);
    acl_remove_default(&d);
    ASSERT_TRUE(!acl_has_extended(&d));
    ASSERT_EQ_INT(d.mode, 0750);
}

TEST(access_scope_limit)
{
    acl_node n = node(0750);
    char spec[2048];
    size_t off = (size_t)snprintf(spec, sizeof spec, "user::rwx,group::r-x,other::---");
    /* 3 base + 28 named + computed mask = 32: allowed */
    for (int i = 0; i < 28; i++) off += (size_t)snprintf(spec + off, sizeof spec - off, ",user:u%d:r--", i);
    set_ok(&n, spec, true);
    snprintf(spec + off, sizeof spec - off, ",user:one-too-many:r--");
    acl_list l;
    acl_err e;
    parse_ok(spec, true, &l);
    ASSERT_EQ_INT(acl_set(&n, &l, true, &e), -1);
    ASSERT_EQ_STR(e.message, "Invalid ACL: ACL has 33 entries, which exceeds maximum of 32.");
}

/* ---- chmod ------------------------------------------------------------------------------------- */

TEST(chmod_changes_mask_not_group_entry)
{
    acl_node n = node(0750);
    set_ok(&n, "user::rwx,user:alice:rwx,group::r-x,other::---", false);
    acl_chmod(&n, 01640);
    ASSERT_EQ_INT(n.mode, 01640);
    ASSERT_EQ_STR(full_str(&n), "user::rw-,user:alice:rwx,group::r-x,mask::r--,other::---");
    /* the mask:: mirror kept in ext follows the mode (header: storage model) */
    int mirrors = 0;
    for (int i = 0; i < n.ext.n; i++)
        if (!n.ext.e[i].is_default && n.ext.e[i].type == ACL_MASK) {
            mirrors++;
            ASSERT_EQ_INT(n.ext.e[i].perm, 4);
        }
    ASSERT_EQ_INT(mirrors, 1);
    /* the mask now limits alice */
    const char *const none[] = {NULL};
    ASSERT_TRUE(acl_check(&n, "o", "g", "alice", none, 4));
    ASSERT_TRUE(!acl_check(&n, "o", "g", "alice", none, 2));
    /* without an ACL chmod is just the mode */
    acl_node p = node(0750);
    acl_chmod(&p, 0604);
    ASSERT_EQ_INT(p.mode, 0604);
    ASSERT_EQ_STR(full_str(&p), "user::rw-,group::---,other::r--");
}

/* ---- inheritance ------------------------------------------------------------------------------- */

TEST(inherit_without_default_applies_umask)
{
    acl_node parent = node(0755), child;
    acl_inherit(&parent, 0777, 0022, true, &child);
    ASSERT_EQ_INT(child.mode, 0755);
    ASSERT_EQ_INT(child.ext.n, 0);
    acl_inherit(&parent, 0666, 0027, false, &child);
    ASSERT_EQ_INT(child.mode, 0640);
    /* an access ACL alone on the parent is not inherited */
    set_ok(&parent, "user::rwx,user:alice:rwx,group::r-x,other::---", true);
    acl_inherit(&parent, 0777, 0027, false, &child);
    ASSERT_EQ_INT(child.mode, 0750);
    ASSERT_EQ_INT(child.ext.n, 0);
}

TEST(inherit_default_acl_to_file)
{
    acl_node parent = node(0755), child;
    set_ok(&parent, "default:user::rwx,default:user:alice:rwx,default:group::r-x,default:other::r-x", true);
    acl_inherit(&parent, 0640, 0077, false, &child);
    /* umask ignored; user:: &= 6, mask (rwx) &= 4, other &= 0; named entries and group:: kept */
    ASSERT_EQ_STR(full_str(&child), "user::rw-,user:alice:rwx,group::r-x,mask::r--,other::---");
    ASSERT_EQ_INT(child.mode, 0640);
    ASSERT_EQ_STR(status_str(&child), "user:alice:rwx,group::r-x");
    const char *const none[] = {NULL};
    ASSERT_TRUE(acl_check(&child, "o", "g", "alice", none, 4));
    ASSERT_TRUE(!acl_check(&child, "o", "g", "alice", none, 2));
}

TEST(inherit_default_acl_to_directory)
{
    acl_node parent = node(0755), child;
    set_ok(&parent, "default:user::rwx,default:group:g1:rwx,default:group::r-x,default:other::r-x", true);
    acl_inherit(&parent, 01755, 0, true, &child);
    ASSERT_EQ_STR(full_str(&child), "user::rwx,group::r-x,group:g1:rwx,mask::r-x,other::r-x,"
                                    "default:user::rwx,default:group::r-x,default:group:g1:rwx,"
                                    "default:mask::rwx,default:other::r-x");
    ASSERT_EQ_INT(child.mode, 01755);
}

TEST(inherit_minimal_default_filters_group)
{
    acl_node parent = node(0700), child;
    set_ok(&parent, "default:user::rwx,default:group::rwx,default:other::rwx", true);
    acl_inherit(&parent, 0750, 0077, false, &child);
    /* a minimal default ACL gives the file a minimal ACL: just the filtered mode */
    ASSERT_EQ_INT(child.mode, 0750);
    ASSERT_TRUE(!acl_has_extended(&child));
    acl_inherit(&parent, 0750, 0077, true, &child);
    ASSERT_EQ_INT(child.mode, 0750);
    ASSERT_EQ_STR(status_str(&child), "default:user::rwx,default:group::rwx,default:other::rwx");
}

/* ---- access checks ----------------------------------------------------------------------------- */

TEST(check_without_acl)
{
    acl_node n = node(0750);
    const char *const in_g[] = {"x", "g", NULL};
    const char *const none[] = {NULL};
    ASSERT_TRUE(acl_check(&n, "o", "g", "o", none, 7));
    ASSERT_TRUE(acl_check(&n, "o", "g", "u", in_g, 5));
    ASSERT_TRUE(!acl_check(&n, "o", "g", "u", in_g, 2));
    ASSERT_TRUE(!acl_check(&n, "o", "g", "u", none, 4));
    ASSERT_TRUE(acl_check(&n, "o", "g", "u", none, 0));
    /* the owner gets only the owner bits even when other bits would allow */
    acl_node m = node(0047);
    ASSERT_TRUE(!acl_check(&m, "o", "g", "o", none, 4));
    ASSERT_TRUE(acl_check(&m, "o", "g", "u", none, 4));
}

TEST(check_posix_order_with_acl)
{
    acl_node n = node(0750);
    set_ok(&n, "user::r--,user:alice:rwx,user:eve:---,group::r-x,group:dev:rw-,mask::rw-,other::--x", true);
    const char *const none[] = {NULL};
    const char *const dev[] = {"dev", NULL};
    const char *const own[] = {"g", NULL};
    const char *const both[] = {"g", "dev", NULL};
    /* owner: owner bits, no fallback to named entries */
    ASSERT_TRUE(acl_check(&n, "alice", "g", "alice", none, 4));
    ASSERT_TRUE(!acl_check(&n, "alice", "g", "alice", none, 2));
    /* named user masked by mask::rw- */
    ASSERT_TRUE(acl_check(&n, "o", "g", "alice", none, 6));
    ASSERT_TRUE(!acl_check(&n, "o", "g", "alice", none, 1));
    /* a named user entry decides, even if a group would allow */
    ASSERT_TRUE(!acl_check(&n, "o", "g", "eve", dev, 4));
    /* groups: owning group r-x & rw- = r--; dev rw- */
    ASSERT_TRUE(acl_check(&n, "o", "g", "u", own, 4));
    ASSERT_TRUE(!acl_check(&n, "o", "g", "u", own, 1));
    ASSERT_TRUE(acl_check(&n, "o", "g", "u", dev, 2));
    /* any matching group that allows grants */
    ASSERT_TRUE(acl_check(&n, "o", "g", "u", both, 6));
    /* a matching group that denies does not fall through to other::--x */
    ASSERT_TRUE(!acl_check(&n, "o", "g", "u", own, 1));
    ASSERT_TRUE(acl_check(&n, "o", "g", "u", none, 1));
    ASSERT_TRUE(!acl_check(&n, "o", "g", "u", none, 4));
    /* default entries play no part */
    acl_node d = node(0700);
    set_ok(&d, "default:user:alice:rwx", true);
    ASSERT_TRUE(!acl_check(&d, "o", "g", "alice", none, 4));
}

TESTS(T(parse_base_entries), T(parse_named_default_and_mask), T(parse_without_permissions), T(parse_errors),
      T(parse_entry_limit), T(parse_name_bounds), T(format_round_trips), T(format_respects_buffer_limit),
      T(parse_octal), T(parse_perm_any), T(mode_strings), T(setacl_requires_base_entries),
      T(setacl_computes_mask), T(setacl_keeps_given_mask), T(setacl_minimal_removes_acl),
      T(setacl_spec_order_is_canonicalised), T(setacl_default_only_keeps_access), T(default_on_file_rejected),
      T(default_base_entries_copied_from_access), T(modify_merges_and_recomputes_mask),
      T(modify_default_scope_mask), T(remove_entries_recomputes_mask), T(remove_required_mask_or_base_fails),
      T(remove_default_entries), T(removeacl_restores_group_bits), T(removedefaultacl), T(access_scope_limit),
      T(chmod_changes_mask_not_group_entry), T(inherit_without_default_applies_umask),
      T(inherit_default_acl_to_file), T(inherit_default_acl_to_directory),
      T(inherit_minimal_default_filters_group), T(check_without_acl), T(check_posix_order_with_acl))
