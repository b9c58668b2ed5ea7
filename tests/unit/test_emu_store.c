/*
 * Unit tests for emu_store: the emulators' namespace and its durability. Each test works on real
 * files in a fresh mkdtemp directory: tree operations and child ordering, moves, removal of subtrees
 * with their objects, every metadata field surviving a reopen, replay after a torn final log line,
 * compaction, ids and ETags that never go backwards, orphan objects, the directory lock, and
 * concurrent writers.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../emu/emu_store.h"
#include "tharness.h"

typedef struct fixture {
    char dir[64];
    emu_store *s;
} fixture;

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static void fx_open(fixture *f)
{
    char err[256] = "";
    emu_store_opts o = {.dir = f->dir, .root_owner = "hdfs", .root_group = "supergroup", .root_mode = 0755};
    if (emu_store_open(&o, &f->s, err, sizeof err) != 0) TH_FAIL_AT("emu_store_open: %s", err);
}

/* Each test runs in its own process; its directories (a test may make several) are removed when it
 * exits, failed or not. */
#define FX_MAX_DIRS 8
static char cleanup_dirs[FX_MAX_DIRS][64];
static int ncleanup;

static void cleanup(void)
{
    for (int i = 0; i < ncleanup; i++) nftw(cleanup_dirs[i], rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void fx_mkdir(fixture *f)
{
    snprintf(f->dir, sizeof f->dir, "/tmp/emustore.XXXXXX");
    if (!mkdtemp(f->dir)) TH_FAIL_AT("mkdtemp: %s", strerror(errno));
    if (ncleanup == FX_MAX_DIRS) TH_FAIL_AT("more than %d fixture directories in one test", FX_MAX_DIRS);
    memcpy(cleanup_dirs[ncleanup++], f->dir, sizeof cleanup_dirs[0]);
    if (ncleanup == 1) atexit(cleanup);
}

static void fx_init(fixture *f)
{
    fx_mkdir(f);
    fx_open(f);
}

static void fx_reopen(fixture *f)
{
    emu_store_close(f->s);
    f->s = NULL;
    fx_open(f);
}

static void fx_done(fixture *f)
{
    emu_store_close(f->s);
    f->s = NULL;
}

static emu_node *mk(fixture *f, const char *parent, const char *name, emu_type t)
{
    emu_node *dir = emu_store_lookup(f->s, parent), *out = NULL;
    if (!dir) TH_FAIL_AT("no parent %s", parent);
    int rc = emu_store_create(f->s, dir, name, t, NULL, &out);
    if (rc != 0) TH_FAIL_AT("create %s/%s: %d", parent, name, rc);
    return out;
}

static bool obj_exists(fixture *f, uint64_t id)
{
    char p[128];
    snprintf(p, sizeof p, "%s/objects/%016" PRIx64, f->dir, id);
    return access(p, F_OK) == 0;
}

static int count_objects(fixture *f)
{
    char cmd[160];
    snprintf(cmd, sizeof cmd, "ls -1 %s/objects | wc -l", f->dir);
    FILE *p = popen(cmd, "r");
    int n = -1;
    if (!p || fscanf(p, "%d", &n) != 1) TH_FAIL_AT("counting objects failed");
    pclose(p);
    return n;
}

static off_t log_size(fixture *f)
{
    char p[128];
    struct stat st;
    snprintf(p, sizeof p, "%s/meta.log", f->dir);
    if (stat(p, &st) != 0) TH_FAIL_AT("stat meta.log: %s", strerror(errno));
    return st.st_size;
}

static long log_lines(fixture *f)
{
    char p[128];
    snprintf(p, sizeof p, "%s/meta.log", f->dir);
    FILE *fp = fopen(p, "r");
    if (!fp) TH_FAIL_AT("open meta.log");
    long n = 0;
    int c;
    while ((c = fgetc(fp)) != EOF) n += c == '\n';
    fclose(fp);
    return n;
}

static void append_raw(fixture *f, const char *text)
{
    char p[128];
    snprintf(p, sizeof p, "%s/meta.log", f->dir);
    int fd = open(p, O_WRONLY | O_APPEND);
    if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text)) TH_FAIL_AT("append to meta.log");
    close(fd);
}

static void write_object(fixture *f, emu_node *n, const char *data)
{
    int fd = emu_store_open_object(f->s, n, O_RDWR);
    ASSERT_TRUE(fd >= 0);
    ASSERT_EQ_INT(pwrite(fd, data, strlen(data), 0), (long long)strlen(data));
    close(fd);
    n->length = (int64_t)strlen(data);
    ASSERT_EQ_INT(emu_store_save(f->s, n), 0);
}

TEST(root_is_created_with_options)
{
    fixture f;
    fx_init(&f);
    emu_node *r = emu_store_root(f.s);
    ASSERT_EQ_INT(r->id, 1);
    ASSERT_EQ_INT(r->type, EMU_DIR);
    ASSERT_EQ_STR(r->owner, "hdfs");
    ASSERT_EQ_STR(r->group, "supergroup");
    ASSERT_EQ_INT(r->mode, 0755);
    ASSERT_TRUE(emu_store_lookup(f.s, "/") == r);
    fx_reopen(&f);
    r = emu_store_root(f.s);
    ASSERT_EQ_INT(r->id, 1);
    ASSERT_EQ_STR(r->owner, "hdfs");
    uint64_t nodes = 0;
    emu_store_stats(f.s, &nodes, NULL);
    ASSERT_EQ_INT(nodes, 1);
    fx_done(&f);
}

TEST(create_and_lookup)
{
    fixture f;
    fx_init(&f);
    emu_node *a = mk(&f, "/", "a", EMU_DIR);
    emu_node *b = mk(&f, "/a", "b", EMU_DIR);
    emu_node *c = mk(&f, "/a/b", "c.txt", EMU_FILE);
    ASSERT_TRUE(emu_store_lookup(f.s, "/a") == a);
    ASSERT_TRUE(emu_store_lookup(f.s, "/a/b") == b);
    ASSERT_TRUE(emu_store_lookup(f.s, "/a/b/c.txt") == c);
    ASSERT_TRUE(emu_store_lookup(f.s, "/a/b/") == b);
    ASSERT_TRUE(emu_store_lookup(f.s, "//a//b") == b);
    ASSERT_TRUE(emu_store_lookup(f.s, "/a/b/c.txt/x") == NULL);
    ASSERT_TRUE(emu_store_lookup(f.s, "/a/bb") == NULL);
    ASSERT_TRUE(emu_store_lookup(f.s, "/a/") == a);
    ASSERT_TRUE(emu_store_lookup(f.s, "a") == NULL);
    ASSERT_TRUE(emu_store_child(a, "b") == b);
    ASSERT_TRUE(emu_store_child(a, "c") == NULL);
    ASSERT_TRUE(c->parent == b && b->parent == a && a->parent == emu_store_root(f.s));
    ASSERT_EQ_INT(c->type, EMU_FILE);
    ASSERT_EQ_INT(c->length, 0);
    ASSERT_TRUE(c->id > b->id && b->id > a->id && a->id > 1);
    ASSERT_TRUE(c->mtime_ms > 0 && c->ctime_ms > 0 && c->atime_ms > 0);
    ASSERT_TRUE(c->etag > b->etag);
    /* files get an empty object, directories none */
    ASSERT_TRUE(obj_exists(&f, c->id));
    ASSERT_TRUE(!obj_exists(&f, b->id));
    struct stat st;
    int fd = emu_store_open_object(f.s, c, O_RDONLY);
    ASSERT_TRUE(fd >= 0);
    ASSERT_EQ_INT(fstat(fd, &st), 0);
    ASSERT_EQ_INT(st.st_size, 0);
    close(fd);

    emu_node *out = NULL;
    ASSERT_EQ_INT(emu_store_create(f.s, a, "b", EMU_FILE, NULL, &out), -EEXIST);
    ASSERT_EQ_INT(emu_store_create(f.s, c, "x", EMU_FILE, NULL, &out), -ENOTDIR);
    ASSERT_EQ_INT(emu_store_create(f.s, a, "x/y", EMU_FILE, NULL, &out), -EINVAL);
    ASSERT_EQ_INT(emu_store_create(f.s, a, "", EMU_FILE, NULL, &out), -EINVAL);
    char longname[EMU_MAX_NAME + 2];
    memset(longname, 'n', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    ASSERT_EQ_INT(emu_store_create(f.s, a, longname, EMU_FILE, NULL, &out), -ENAMETOOLONG);
    longname[EMU_MAX_NAME] = '\0';
    ASSERT_EQ_INT(emu_store_create(f.s, a, longname, EMU_FILE, NULL, &out), 0);
    ASSERT_EQ_INT(a->nchildren, 2);
    fx_done(&f);
}

TEST(create_takes_template_metadata)
{
    fixture f;
    fx_init(&f);
    emu_meta t;
    memset(&t, 0, sizeof t);
    t.acl.mode = 01750;
    t.acl.ext.n = 1;
    t.acl.ext.e[0] = (acl_entry){.is_default = true, .type = ACL_USER, .name = "carol", .perm = 5};
    snprintf(t.owner, sizeof t.owner, "alice");
    snprintf(t.group, sizeof t.group, "staff");
    t.mtime_ms = 1234;
    emu_node *n = NULL;
    ASSERT_EQ_INT(emu_store_create(f.s, emu_store_root(f.s), "d", EMU_DIR, &t, &n), 0);
    ASSERT_EQ_INT(n->mode, 01750);
    ASSERT_EQ_INT(n->nacl, 1);
    ASSERT_EQ_STR(n->acl[0].name, "carol");
    ASSERT_EQ_STR(n->owner, "alice");
    ASSERT_EQ_STR(n->group, "staff");
    ASSERT_EQ_INT(n->mtime_ms, 1234);
    ASSERT_TRUE(n->ctime_ms > 1234); /* not set in the template: now */
    fx_reopen(&f);
    n = emu_store_lookup(f.s, "/d");
    ASSERT_TRUE(n != NULL);
    ASSERT_EQ_INT(n->mode, 01750);
    ASSERT_EQ_INT(n->nacl, 1);
    ASSERT_EQ_STR(n->owner, "alice");
    ASSERT_EQ_INT(n->mtime_ms, 1234);
    fx_done(&f);
}

static void check_sorted(const emu_node *d, const char *const *want, size_t n)
{
    ASSERT_EQ_INT(d->nchildren, n);
    for (size_t i = 0; i < n; i++) ASSERT_EQ_STR(d->children[i]->name, want[i]);
}

TEST(children_sorted_and_child_after)
{
    fixture f;
    fx_init(&f);
    const char *names[] = {"b", "a", "c", "aa", "B", "a b", "\xc3\xa9t\xc3\xa9", "a-", "0"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) mk(&f, "/", names[i], EMU_FILE);
    /* strcmp byte order */
    const char *want[] = {"0", "B", "a", "a b", "a-", "aa", "b", "c", "\xc3\xa9t\xc3\xa9"};
    emu_node *r = emu_store_root(f.s);
    check_sorted(r, want, 9);
    ASSERT_EQ_INT(emu_store_child_after(r, ""), 0);
    ASSERT_EQ_INT(emu_store_child_after(r, "0"), 1);
    ASSERT_EQ_INT(emu_store_child_after(r, "a"), 3);
    ASSERT_EQ_INT(emu_store_child_after(r, "a0"), 5); /* not a child: first name after it is "aa" */
    ASSERT_EQ_INT(emu_store_child_after(r, "\xc3\xa9t\xc3\xa9"), 9);
    ASSERT_EQ_INT(emu_store_child_after(r, "zzz"), 8);
    ASSERT_EQ_INT(emu_store_child_after(r, "A"), 1); /* "A" sorts before "B" */
    for (size_t i = 0; i < 9; i++) ASSERT_TRUE(emu_store_child(r, want[i]) == r->children[i]);
    fx_reopen(&f);
    check_sorted(emu_store_root(f.s), want, 9);
    fx_done(&f);
}

TEST(many_children_stay_sorted)
{
    fixture f;
    fx_init(&f);
    char name[32];
    /* insert in a scrambled order */
    for (unsigned i = 0; i < 2000; i++) {
        snprintf(name, sizeof name, "f%05u", (i * 7919u) % 2000u);
        mk(&f, "/", name, EMU_DIR); /* directories: no object files to create on a slow disk */
    }
    emu_node *r = emu_store_root(f.s);
    ASSERT_EQ_INT(r->nchildren, 2000);
    for (size_t i = 1; i < r->nchildren; i++) ASSERT_TRUE(strcmp(r->children[i - 1]->name, r->children[i]->name) < 0);
    ASSERT_EQ_INT(emu_store_child_after(r, "f00999"), 1000);
    fx_reopen(&f);
    r = emu_store_root(f.s);
    ASSERT_EQ_INT(r->nchildren, 2000);
    for (size_t i = 1; i < r->nchildren; i++) ASSERT_TRUE(strcmp(r->children[i - 1]->name, r->children[i]->name) < 0);
    ASSERT_TRUE(emu_store_lookup(f.s, "/f01234") != NULL);
    fx_done(&f);
}

TEST(move_rename_and_reparent)
{
    fixture f;
    fx_init(&f);
    emu_node *a = mk(&f, "/", "a", EMU_DIR);
    emu_node *b = mk(&f, "/", "b", EMU_DIR);
    emu_node *x = mk(&f, "/a", "x", EMU_FILE);
    mk(&f, "/a", "m", EMU_FILE);
    emu_node *sub = mk(&f, "/a", "sub", EMU_DIR);
    mk(&f, "/a/sub", "deep", EMU_FILE);
    write_object(&f, x, "hello");
    uint64_t xid = x->id;

    /* rename inside the same directory: order follows the new name */
    ASSERT_EQ_INT(emu_store_move(f.s, x, a, "z"), 0);
    const char *w1[] = {"m", "sub", "z"};
    check_sorted(a, w1, 3);
    ASSERT_TRUE(emu_store_lookup(f.s, "/a/x") == NULL);
    ASSERT_TRUE(emu_store_lookup(f.s, "/a/z") == x);
    ASSERT_EQ_INT(emu_store_move(f.s, x, a, "a"), 0);
    const char *w2[] = {"a", "m", "sub"};
    check_sorted(a, w2, 3);

    /* into another directory, with a subtree */
    ASSERT_EQ_INT(emu_store_move(f.s, sub, b, "moved"), 0);
    ASSERT_TRUE(emu_store_lookup(f.s, "/b/moved/deep") != NULL);
    ASSERT_TRUE(emu_store_lookup(f.s, "/a/sub") == NULL);
    ASSERT_TRUE(sub->parent == b);
    ASSERT_EQ_INT(a->nchildren, 2);

    /* refusals */
    ASSERT_EQ_INT(emu_store_move(f.s, b, emu_store_lookup(f.s, "/b/moved"), "loop"), -EINVAL);
    ASSERT_EQ_INT(emu_store_move(f.s, b, b, "self"), -EINVAL);
    ASSERT_EQ_INT(emu_store_move(f.s, emu_store_root(f.s), a, "r"), -EINVAL);
    ASSERT_EQ_INT(emu_store_move(f.s, x, a, "m"), -EEXIST);
    ASSERT_EQ_INT(emu_store_move(f.s, x, emu_store_lookup(f.s, "/a/m"), "q"), -ENOTDIR);
    ASSERT_EQ_INT(emu_store_move(f.s, x, a, "a"), 0); /* onto itself: nothing to do */
    ASSERT_TRUE(emu_store_lookup(f.s, "/b/moved/deep") != NULL);

    /* the data did not move: same id, same object */
    ASSERT_EQ_INT(emu_store_move(f.s, x, emu_store_lookup(f.s, "/b/moved"), "x2"), 0);
    fx_reopen(&f);
    emu_node *x2 = emu_store_lookup(f.s, "/b/moved/x2");
    ASSERT_TRUE(x2 != NULL);
    ASSERT_EQ_INT(x2->id, xid);
    ASSERT_EQ_INT(x2->length, 5);
    char buf[8] = "";
    int fd = emu_store_open_object(f.s, x2, O_RDONLY);
    ASSERT_EQ_INT(read(fd, buf, sizeof buf), 5);
    ASSERT_EQ_MEM(buf, "hello", 5);
    close(fd);
    ASSERT_TRUE(emu_store_lookup(f.s, "/b/moved/deep") != NULL);
    ASSERT_TRUE(emu_store_lookup(f.s, "/a/m") != NULL);
    ASSERT_EQ_INT(emu_store_lookup(f.s, "/a")->nchildren, 1);
    fx_done(&f);
}

TEST(remove_subtree_deletes_objects)
{
    fixture f;
    fx_init(&f);
    mk(&f, "/", "keep", EMU_FILE);
    emu_node *d = mk(&f, "/", "d", EMU_DIR);
    mk(&f, "/d", "e", EMU_DIR);
    emu_node *f1 = mk(&f, "/d", "f1", EMU_FILE);
    emu_node *f2 = mk(&f, "/d/e", "f2", EMU_FILE);
    write_object(&f, f1, "0123456789");
    write_object(&f, f2, "abc");
    uint64_t id1 = f1->id, id2 = f2->id, nodes = 0, bytes = 0;
    emu_store_stats(f.s, &nodes, &bytes);
    ASSERT_EQ_INT(nodes, 6);
    ASSERT_EQ_INT(bytes, 13);
    ASSERT_EQ_INT(count_objects(&f), 3);

    /* one file leaves the directory before it is removed, one arrives */
    emu_node *out = mk(&f, "/d/e", "out", EMU_FILE);
    ASSERT_EQ_INT(emu_store_move(f.s, out, emu_store_root(f.s), "rescued"), 0);
    emu_node *in = mk(&f, "/", "in", EMU_FILE);
    uint64_t in_id = in->id;
    ASSERT_EQ_INT(emu_store_move(f.s, in, emu_store_lookup(f.s, "/d/e"), "in"), 0);

    ASSERT_EQ_INT(emu_store_remove(f.s, emu_store_root(f.s)), -EINVAL);
    ASSERT_EQ_INT(emu_store_remove(f.s, d), 0);
    ASSERT_TRUE(!obj_exists(&f, in_id));
    ASSERT_TRUE(emu_store_lookup(f.s, "/d") == NULL);
    ASSERT_TRUE(!obj_exists(&f, id1) && !obj_exists(&f, id2));
    ASSERT_EQ_INT(count_objects(&f), 2);
    emu_store_stats(f.s, &nodes, &bytes);
    ASSERT_EQ_INT(nodes, 3);
    ASSERT_EQ_INT(bytes, 0);
    ASSERT_EQ_INT(emu_store_root(f.s)->nchildren, 2);

    fx_reopen(&f);
    ASSERT_TRUE(emu_store_lookup(f.s, "/d") == NULL);
    ASSERT_TRUE(emu_store_lookup(f.s, "/d/e/f2") == NULL);
    ASSERT_TRUE(emu_store_lookup(f.s, "/keep") != NULL);
    ASSERT_TRUE(emu_store_lookup(f.s, "/rescued") != NULL);
    ASSERT_TRUE(emu_store_lookup(f.s, "/in") == NULL);
    emu_store_stats(f.s, &nodes, &bytes);
    ASSERT_EQ_INT(nodes, 3);
    ASSERT_EQ_INT(count_objects(&f), 2);
    /* the name is free again */
    mk(&f, "/", "d", EMU_FILE);
    fx_done(&f);
}

/* Fill every persisted field with a distinctive value. */
static void fill_all(emu_store *s, emu_node *n, int k)
{
    acl_node *a = calloc(1, sizeof *a);
    ASSERT_TRUE(a != NULL);
    a->mode = (uint16_t)(01640 + k);
    a->ext.n = 4;
    a->ext.e[0] = (acl_entry){.is_default = false, .type = ACL_USER, .name = "bob", .perm = 6};
    a->ext.e[1] = (acl_entry){.is_default = false, .type = ACL_GROUP, .name = "", .perm = 5};
    a->ext.e[2] = (acl_entry){.is_default = false, .type = ACL_MASK, .name = "", .perm = 7};
    a->ext.e[3] = (acl_entry){.is_default = true, .type = ACL_OTHER, .name = "", .perm = -1};
    ASSERT_EQ_INT(emu_node_acl_put(n, a), 0);
    free(a);
    char buf[64];
    snprintf(buf, sizeof buf, "owner\"%d\\\xff", k);
    ASSERT_EQ_INT(emu_store_set_owner(s, n, buf), 0);
    snprintf(buf, sizeof buf, "gr\xc3\xbcp%d", k);
    ASSERT_EQ_INT(emu_store_set_group(s, n, buf), 0);
    n->ctime_ms = 1000 + k;
    n->mtime_ms = 2000 + k;
    n->atime_ms = 3000 + k;
    n->expiry_ms = 4000 + k;
    n->length = 10 + k;
    n->visible_length = 5 + k;
    n->open_for_write = true;
    n->concurrent = true;
    ASSERT_EQ_INT(emu_node_staged_reserve(n, 2), 0);
    n->nstaged = 2;
    n->staged[0] = (emu_range){10 + k, 3};
    n->staged[1] = (emu_range){(int64_t)1 << 40, 7};
    snprintf(n->lease_id, sizeof n->lease_id, "lease-%d", k);
    n->lease_expiry_ms = 5000 + k;
    n->lease_break_ms = 6000 + k;
    n->lease_duration_s = 20 + k;
    free(n->properties);
    n->properties = strdup("k1=dmFs,k2=\xe2\x82\xac");
}

static void check_all(const emu_node *n, int k, emu_type type)
{
    ASSERT_EQ_INT(n->type, type);
    ASSERT_EQ_INT(n->mode, 01640 + k);
    ASSERT_EQ_INT(n->nacl, 4);
    ASSERT_EQ_INT(n->acl[0].is_default, 0);
    ASSERT_EQ_INT(n->acl[0].type, ACL_USER);
    ASSERT_EQ_STR(n->acl[0].name, "bob");
    ASSERT_EQ_INT(n->acl[0].perm, 6);
    ASSERT_EQ_INT(n->acl[1].type, ACL_GROUP);
    ASSERT_EQ_STR(n->acl[1].name, "");
    ASSERT_EQ_INT(n->acl[1].perm, 5);
    ASSERT_EQ_INT(n->acl[2].type, ACL_MASK);
    ASSERT_EQ_INT(n->acl[3].is_default, 1);
    ASSERT_EQ_INT(n->acl[3].type, ACL_OTHER);
    ASSERT_EQ_INT(n->acl[3].perm, -1);
    acl_node *a = malloc(sizeof *a); /* the accessor gives the same state back */
    ASSERT_TRUE(a != NULL);
    emu_node_acl_get(n, a);
    ASSERT_EQ_INT(a->mode, 01640 + k);
    ASSERT_EQ_INT(a->ext.n, 4);
    ASSERT_EQ_STR(a->ext.e[0].name, "bob");
    ASSERT_TRUE(acl_has_extended(a) && emu_node_has_acl(n));
    free(a);
    char want[64];
    snprintf(want, sizeof want, "owner\"%d\\\xff", k);
    ASSERT_EQ_STR(n->owner, want);
    snprintf(want, sizeof want, "gr\xc3\xbcp%d", k);
    ASSERT_EQ_STR(n->group, want);
    ASSERT_EQ_INT(n->ctime_ms, 1000 + k);
    ASSERT_EQ_INT(n->mtime_ms, 2000 + k);
    ASSERT_EQ_INT(n->atime_ms, 3000 + k);
    ASSERT_EQ_INT(n->expiry_ms, 4000 + k);
    if (type == EMU_FILE) {
        ASSERT_EQ_INT(n->length, 10 + k);
        ASSERT_EQ_INT(n->visible_length, 5 + k);
        ASSERT_TRUE(n->open_for_write);
        ASSERT_TRUE(n->concurrent);
    }
    ASSERT_EQ_INT(n->nstaged, 2);
    ASSERT_EQ_INT(n->staged[0].off, 10 + k);
    ASSERT_EQ_INT(n->staged[0].len, 3);
    ASSERT_EQ_INT(n->staged[1].off, (int64_t)1 << 40);
    ASSERT_EQ_INT(n->staged[1].len, 7);
    snprintf(want, sizeof want, "lease-%d", k);
    ASSERT_EQ_STR(n->lease_id, want);
    ASSERT_EQ_INT(n->lease_expiry_ms, 5000 + k);
    ASSERT_EQ_INT(n->lease_break_ms, 6000 + k);
    ASSERT_EQ_INT(n->lease_duration_s, 20 + k);
    ASSERT_EQ_STR(n->properties, "k1=dmFs,k2=\xe2\x82\xac");
    ASSERT_EQ_INT(n->busy, 0);
}

TEST(save_and_reopen_restores_every_field)
{
    fixture f;
    fx_init(&f);
    emu_node *d = mk(&f, "/", "dir", EMU_DIR);
    emu_node *fl = mk(&f, "/dir", "fi\xffle \"q\"\\\n", EMU_FILE); /* not UTF-8, JSON specials */
    emu_node *plain = mk(&f, "/dir", "plain", EMU_FILE);
    fill_all(f.s, d, 1);
    fill_all(f.s, fl, 2);
    emu_store_bump_etag(f.s, fl);
    uint64_t etag = fl->etag, id = fl->id;
    fl->busy = 3; /* runtime only */
    ASSERT_EQ_INT(emu_store_save(f.s, d), 0);
    ASSERT_EQ_INT(emu_store_save(f.s, fl), 0);
    emu_node *inf = mk(&f, "/dir", "infinite-lease", EMU_FILE);
    snprintf(inf->lease_id, sizeof inf->lease_id, "%s", "lease-inf");
    inf->lease_duration_s = -1; /* infinite: the one negative value allowed */
    ASSERT_EQ_INT(emu_store_save(f.s, inf), 0);
    fx_reopen(&f);
    d = emu_store_lookup(f.s, "/dir");
    fl = emu_store_lookup(f.s, "/dir/fi\xffle \"q\"\\\n");
    plain = emu_store_lookup(f.s, "/dir/plain");
    ASSERT_TRUE(d && fl && plain);
    check_all(d, 1, EMU_DIR);
    check_all(fl, 2, EMU_FILE);
    ASSERT_EQ_INT(fl->etag, etag);
    ASSERT_EQ_INT(fl->id, id);
    ASSERT_EQ_INT(plain->nacl, 0);
    ASSERT_TRUE(plain->acl == NULL && !emu_node_has_acl(plain));
    ASSERT_TRUE(plain->staged == NULL);
    ASSERT_EQ_INT(plain->nstaged, 0);
    ASSERT_TRUE(plain->properties == NULL);
    ASSERT_EQ_STR(plain->lease_id, "");
    ASSERT_EQ_INT(plain->lease_duration_s, 0);
    inf = emu_store_lookup(f.s, "/dir/infinite-lease");
    ASSERT_TRUE(inf != NULL);
    ASSERT_EQ_STR(inf->lease_id, "lease-inf");
    ASSERT_EQ_INT(inf->lease_duration_s, -1);
    ASSERT_EQ_INT(inf->lease_expiry_ms, 0);
    ASSERT_TRUE(!plain->open_for_write && !plain->concurrent);
    ASSERT_EQ_INT(plain->expiry_ms, 0);
    uint64_t bytes = 0;
    emu_store_stats(f.s, NULL, &bytes);
    ASSERT_EQ_INT(bytes, 12);

    /* clearing fields is persisted too */
    fl->properties = (free(fl->properties), NULL);
    fl->nstaged = 0;
    fl->lease_id[0] = '\0';
    fl->lease_duration_s = 0;
    acl_node *none = calloc(1, sizeof *none);
    ASSERT_TRUE(none != NULL);
    none->mode = 0640;
    ASSERT_EQ_INT(emu_node_acl_put(fl, none), 0);
    free(none);
    ASSERT_TRUE(fl->acl == NULL);
    fl->open_for_write = false;
    ASSERT_EQ_INT(emu_store_save(f.s, fl), 0);
    fx_reopen(&f);
    fl = emu_store_lookup(f.s, "/dir/fi\xffle \"q\"\\\n");
    ASSERT_TRUE(fl != NULL);
    ASSERT_TRUE(fl->properties == NULL);
    ASSERT_EQ_INT(fl->nstaged, 0);
    ASSERT_EQ_STR(fl->lease_id, "");
    ASSERT_EQ_INT(fl->lease_duration_s, 0);
    ASSERT_EQ_INT(fl->nacl, 0);
    ASSERT_EQ_INT(fl->mode, 0640);
    ASSERT_TRUE(fl->staged == NULL);
    ASSERT_TRUE(!fl->open_for_write);
    ASSERT_TRUE(fl->concurrent);
    fx_done(&f);
}

TEST(torn_final_line_is_dropped)
{
    fixture f;
    fx_init(&f);
    mk(&f, "/", "a", EMU_DIR);
    emu_node *x = mk(&f, "/a", "x", EMU_FILE);
    x->mtime_ms = 777;
    ASSERT_EQ_INT(emu_store_save(f.s, x), 0);
    emu_store_close(f.s);
    f.s = NULL;
    off_t good = log_size(&f);
    append_raw(&f, "{\"put\":{\"id\":99,\"parent\":1,\"name\":\"tor");
    fx_open(&f);
    ASSERT_EQ_INT(log_size(&f), good); /* cut back to the last whole record */
    ASSERT_TRUE(emu_store_lookup(f.s, "/a/x") != NULL);
    ASSERT_EQ_INT(emu_store_lookup(f.s, "/a/x")->mtime_ms, 777);
    ASSERT_TRUE(emu_store_child(emu_store_root(f.s), "tor") == NULL);
    /* appends after the repair are readable */
    mk(&f, "/a", "y", EMU_FILE);
    fx_reopen(&f);
    ASSERT_TRUE(emu_store_lookup(f.s, "/a/y") != NULL);

    /* a complete-looking but unterminated last record is torn too (its call never returned) */
    emu_store_close(f.s);
    f.s = NULL;
    good = log_size(&f);
    append_raw(&f, "{\"del\":2}");
    fx_open(&f);
    ASSERT_EQ_INT(log_size(&f), good);
    ASSERT_TRUE(emu_store_lookup(f.s, "/a/x") != NULL);

    /* garbage with a newline as the last line is dropped as well */
    emu_store_close(f.s);
    f.s = NULL;
    append_raw(&f, "\x01\x02garbage\n");
    fx_open(&f);
    ASSERT_EQ_INT(log_size(&f), good);
    ASSERT_TRUE(emu_store_lookup(f.s, "/a/y") != NULL);
    fx_done(&f);
}

TEST(corruption_before_the_last_line_fails_open)
{
    fixture f;
    fx_init(&f);
    mk(&f, "/", "a", EMU_DIR);
    emu_store_close(f.s);
    f.s = NULL;
    append_raw(&f, "not json\n{\"del\":2}\n");
    char err[256] = "";
    emu_store_opts o = {.dir = f.dir};
    emu_store *s = NULL;
    ASSERT_EQ_INT(emu_store_open(&o, &s, err, sizeof err), -1);
    ASSERT_TRUE(strstr(err, "corrupt") != NULL);
    ASSERT_TRUE(strstr(err, "line 3") != NULL);
}

/* A lease duration the node cannot hold (below -1, or past int32 even where it would wrap to -1)
 * makes its record corrupt. */
TEST(out_of_range_lease_duration_in_the_log_fails_open)
{
    static const char *const bad[] = {"-2", "4294967295"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        fixture f;
        fx_init(&f);
        mk(&f, "/", "a", EMU_FILE);
        emu_store_close(f.s);
        f.s = NULL;
        char line[256];
        snprintf(line, sizeof line,
                 "{\"put\":{\"id\":2,\"parent\":1,\"name\":\"a\",\"type\":\"file\",\"mode\":420,\"etag\":5,"
                 "\"lease_id\":\"L\",\"lease_duration\":%s}}\n{\"del\":2}\n",
                 bad[i]);
        append_raw(&f, line);
        char err[256] = "";
        emu_store_opts o = {.dir = f.dir};
        emu_store *s = NULL;
        ASSERT_EQ_INT(emu_store_open(&o, &s, err, sizeof err), -1);
        ASSERT_TRUE(strstr(err, "corrupt") != NULL);
    }
}

/* The log format as documented: puts (a rename is a put with a new parent/name), a del of a
 * directory that drops its subtree, and ids/ETags resuming past the highest seen. */
TEST(replays_a_handwritten_log)
{
    fixture f;
    fx_mkdir(&f);
    char p[128];
    snprintf(p, sizeof p, "%s/meta.log", f.dir);
    FILE *fp = fopen(p, "w");
    ASSERT_TRUE(fp != NULL);
    fputs("{\"put\":{\"id\":1,\"parent\":0,\"name\":\"\",\"type\":\"dir\",\"mode\":493,\"owner\":\"o\","
          "\"group\":\"g\",\"ctime\":1,\"mtime\":1,\"atime\":1,\"etag\":1}}\n"
          "{\"put\":{\"id\":2,\"parent\":1,\"name\":\"a\",\"type\":\"dir\",\"mode\":493,\"etag\":2}}\n"
          "{\"put\":{\"id\":3,\"parent\":2,\"name\":\"f\",\"type\":\"file\",\"mode\":420,\"length\":5,\"etag\":3}}\n"
          "{\"put\":{\"id\":4,\"parent\":1,\"name\":\"b\",\"type\":\"dir\",\"mode\":493,\"etag\":4,"
          "\"lease_id\":\"L\",\"lease_duration\":-1}}\n"
          "\n"
          "{\"put\":{\"id\":3,\"parent\":4,\"name\":\"g\",\"type\":\"file\",\"mode\":420,\"length\":7,\"etag\":9}}\n"
          "{\"put\":{\"id\":5,\"parent\":2,\"name\":\"h\",\"type\":\"file\",\"mode\":420,\"etag\":5}}\n"
          "{\"put\":{\"id\":6,\"parent\":5,\"name\":\"under-a-file\",\"type\":\"file\",\"mode\":420,\"etag\":6}}\n"
          "{\"del\":2}\n",
          fp);
    fclose(fp);
    fx_open(&f);
    ASSERT_TRUE(emu_store_lookup(f.s, "/a") == NULL);
    emu_node *g = emu_store_lookup(f.s, "/b/g");
    ASSERT_TRUE(g != NULL);
    ASSERT_EQ_INT(g->id, 3);
    ASSERT_EQ_INT(g->length, 7);
    ASSERT_EQ_INT(g->etag, 9);
    ASSERT_EQ_INT(g->lease_duration_s, 0); /* records without the field load as "no lease duration" */
    ASSERT_EQ_INT(emu_store_lookup(f.s, "/b")->lease_duration_s, -1);
    ASSERT_EQ_STR(emu_store_lookup(f.s, "/b")->lease_id, "L");
    ASSERT_EQ_STR(emu_store_root(f.s)->owner, "o");
    ASSERT_TRUE(obj_exists(&f, 3)); /* a missing object is recreated (empty) */
    uint64_t nodes = 0, bytes = 0;
    emu_store_stats(f.s, &nodes, &bytes);
    ASSERT_EQ_INT(nodes, 3);
    ASSERT_EQ_INT(bytes, 7);
    emu_node *n = mk(&f, "/", "next", EMU_FILE);
    ASSERT_EQ_INT(n->id, 7);
    ASSERT_EQ_INT(n->etag, 10);
    fx_done(&f);
}

TEST(a_log_without_its_root_is_refused)
{
    fixture f;
    fx_mkdir(&f);
    char p[128], err[256] = "";
    snprintf(p, sizeof p, "%s/meta.log", f.dir);
    FILE *fp = fopen(p, "w");
    ASSERT_TRUE(fp != NULL);
    fputs("{\"put\":{\"id\":2,\"parent\":1,\"name\":\"a\",\"type\":\"dir\",\"mode\":493,\"etag\":2}}\n", fp);
    fclose(fp);
    emu_store_opts o = {.dir = f.dir};
    ASSERT_EQ_INT(emu_store_open(&o, &f.s, err, sizeof err), -1);
    ASSERT_TRUE(strstr(err, "no root") != NULL);
    f.s = NULL;
    fx_done(&f);
}

TEST(ids_and_etags_increase_across_reopen)
{
    fixture f;
    fx_init(&f);
    mk(&f, "/", "a", EMU_FILE);
    emu_node *b = mk(&f, "/", "b", EMU_FILE);
    emu_store_bump_etag(f.s, b);
    emu_store_bump_etag(f.s, b);
    ASSERT_EQ_INT(emu_store_save(f.s, b), 0);
    uint64_t maxid = b->id, maxetag = b->etag;
    ASSERT_EQ_INT(emu_store_remove(f.s, b), 0); /* the highest id and etag are gone from the tree */
    fx_reopen(&f);
    emu_node *c = mk(&f, "/", "c", EMU_FILE);
    ASSERT_TRUE(c->id > maxid);
    ASSERT_TRUE(c->etag > maxetag);
    uint64_t prev = c->etag;
    emu_store_bump_etag(f.s, c);
    ASSERT_TRUE(c->etag > prev);
    fx_done(&f);
}

/* Node i of the mixed tree: a quarter plain, a quarter with an ACL of 1..8 entries, a quarter with
 * 1..EMU_MAX_STAGED staged ranges, a quarter with a lease; owners from a set of three. */
static void mixed_fill(emu_store *s, emu_node *n, int i)
{
    static const char *const owners[] = {"alice", "bob", "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"};
    ASSERT_EQ_INT(emu_store_set_owner(s, n, owners[i % 3]), 0);
    ASSERT_EQ_INT(emu_store_set_group(s, n, owners[(i + 1) % 3]), 0);
    if (i % 4 == 1) {
        acl_node *a = calloc(1, sizeof *a);
        ASSERT_TRUE(a != NULL);
        a->mode = (uint16_t)(0750 + i % 8);
        a->ext.n = 1 + i % 8;
        for (int j = 0; j < a->ext.n; j++) {
            a->ext.e[j] = (acl_entry){.is_default = j % 2, .type = j % 2 ? ACL_GROUP : ACL_USER, .perm = j % 8};
            snprintf(a->ext.e[j].name, sizeof a->ext.e[j].name, "p%d-%d", i, j);
        }
        ASSERT_EQ_INT(emu_node_acl_put(n, a), 0);
        free(a);
    } else if (i % 4 == 2) {
        int k = i % 3 == 0 ? EMU_MAX_STAGED : 1 + i % 9;
        ASSERT_EQ_INT(emu_node_staged_reserve(n, k), 0);
        for (int j = 0; j < k; j++) n->staged[j] = (emu_range){100 * j + i, 10 + j};
        n->nstaged = k;
    } else if (i % 4 == 3) {
        snprintf(n->lease_id, sizeof n->lease_id, "%08x-0000-4000-8000-%012d", i, i);
        n->lease_expiry_ms = 7000 + i;
        n->lease_duration_s = i % 2 ? -1 : 15 + i % 45;
    }
    ASSERT_EQ_INT(emu_store_save(s, n), 0);
}

static void mixed_check(const emu_node *n, int i)
{
    static const char *const owners[] = {"alice", "bob", "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"};
    ASSERT_EQ_STR(n->owner, owners[i % 3]);
    ASSERT_EQ_STR(n->group, owners[(i + 1) % 3]);
    if (i % 4 == 1) {
        ASSERT_EQ_INT(n->mode, 0750 + i % 8);
        ASSERT_EQ_INT(n->nacl, 1 + i % 8);
        for (int j = 0; j < n->nacl; j++) {
            char want[32];
            snprintf(want, sizeof want, "p%d-%d", i, j);
            ASSERT_EQ_STR(n->acl[j].name, want);
            ASSERT_EQ_INT(n->acl[j].is_default, j % 2);
            ASSERT_EQ_INT(n->acl[j].type, j % 2 ? ACL_GROUP : ACL_USER);
            ASSERT_EQ_INT(n->acl[j].perm, j % 8);
        }
    } else {
        ASSERT_EQ_INT(n->mode, 0644);
        ASSERT_TRUE(n->nacl == 0 && n->acl == NULL);
    }
    if (i % 4 == 2) {
        int k = i % 3 == 0 ? EMU_MAX_STAGED : 1 + i % 9;
        ASSERT_EQ_INT(n->nstaged, k);
        ASSERT_TRUE(n->cap_staged >= k && n->cap_staged <= EMU_MAX_STAGED);
        for (int j = 0; j < k; j++) {
            ASSERT_EQ_INT(n->staged[j].off, 100 * j + i);
            ASSERT_EQ_INT(n->staged[j].len, 10 + j);
        }
    } else {
        ASSERT_TRUE(n->nstaged == 0 && n->staged == NULL);
    }
    if (i % 4 == 3) {
        char want[64];
        snprintf(want, sizeof want, "%08x-0000-4000-8000-%012d", i, i);
        ASSERT_EQ_STR(n->lease_id, want);
        ASSERT_EQ_INT(n->lease_expiry_ms, 7000 + i);
        ASSERT_EQ_INT(n->lease_duration_s, i % 2 ? -1 : 15 + i % 45);
    } else {
        ASSERT_EQ_STR(n->lease_id, "");
        ASSERT_EQ_INT(n->lease_duration_s, 0);
    }
}

/* The compact node (ACL entries and staged ranges out of line, pooled owner/group): nodes with and
 * without each part come back unchanged from a replay of the log and from a compacted snapshot, and
 * equal principals share one pooled string. */
TEST(mixed_nodes_survive_replay_and_compaction)
{
    enum { N = 96 };
    fixture f;
    fx_init(&f);
    mk(&f, "/", "m", EMU_DIR);
    for (int i = 0; i < N; i++) {
        char name[16];
        snprintf(name, sizeof name, "f%03d", i);
        mixed_fill(f.s, mk(&f, "/m", name, EMU_FILE), i);
    }
    for (int round = 0; round < 2; round++) {
        fx_reopen(&f); /* round 0: replay of the appended records; round 1: of the snapshot */
        emu_node *m = emu_store_lookup(f.s, "/m");
        ASSERT_TRUE(m != NULL);
        ASSERT_EQ_INT(m->nchildren, N);
        for (int i = 0; i < N; i++) {
            mixed_check(m->children[i], i);
            ASSERT_TRUE(m->children[i]->owner == m->children[i % 3]->owner); /* one copy per principal */
        }
        if (round == 0) {
            /* churn a plain node until the log compacts */
            emu_node *p = m->children[0];
            for (int k = 0; k < 12000; k++) ASSERT_EQ_INT(emu_store_save(f.s, p), 0);
            ASSERT_TRUE(log_lines(&f) < 2500);
        }
    }

    /* emptying gives the arrays back; a principal is cut where a 256-byte field cut it */
    emu_node *m = emu_store_lookup(f.s, "/m");
    emu_node *a = m->children[1], *st = m->children[2];
    emu_meta *meta = calloc(1, sizeof *meta);
    ASSERT_TRUE(meta != NULL);
    meta->acl.mode = 0600;
    memset(meta->owner, 'o', sizeof meta->owner); /* unterminated: cut at EMU_MAX_PRINCIPAL - 1 */
    snprintf(meta->group, sizeof meta->group, "bob");
    ASSERT_EQ_INT(emu_store_set_meta(f.s, a, meta), 0);
    ASSERT_TRUE(a->acl == NULL && a->nacl == 0 && a->mode == 0600);
    ASSERT_EQ_INT(strlen(a->owner), EMU_MAX_PRINCIPAL - 1);
    ASSERT_EQ_STR(a->group, "bob");
    ASSERT_TRUE(a->group == m->children[4]->owner); /* the pooled "bob" */
    free(meta);
    st->nstaged = 0;
    ASSERT_EQ_INT(emu_store_save(f.s, a), 0);
    ASSERT_EQ_INT(emu_store_save(f.s, st), 0);
    ASSERT_TRUE(st->staged == NULL && st->cap_staged == 0);
    fx_reopen(&f);
    m = emu_store_lookup(f.s, "/m");
    a = m->children[1];
    ASSERT_TRUE(a->acl == NULL && a->mode == 0600);
    ASSERT_EQ_INT(strlen(a->owner), EMU_MAX_PRINCIPAL - 1);
    ASSERT_EQ_STR(a->group, "bob");
    ASSERT_TRUE(m->children[2]->staged == NULL);
    fx_done(&f);
}

TEST(compaction_keeps_everything)
{
    fixture f;
    fx_init(&f);
    emu_node *d = mk(&f, "/", "d", EMU_DIR);
    emu_node *x = mk(&f, "/d", "x", EMU_FILE);
    fill_all(f.s, x, 3);
    mk(&f, "/d", "y", EMU_DIR);
    mk(&f, "/d/y", "z", EMU_FILE);
    emu_node *gone = mk(&f, "/", "gone", EMU_FILE);
    emu_store_bump_etag(f.s, gone);
    ASSERT_EQ_INT(emu_store_save(f.s, gone), 0);
    uint64_t gone_id = gone->id, gone_etag = gone->etag;
    ASSERT_EQ_INT(emu_store_remove(f.s, gone), 0);
    /* churn: many records, few live nodes */
    for (int i = 0; i < 12000; i++) {
        x->atime_ms = 3003;
        ASSERT_EQ_INT(emu_store_save(f.s, x), 0);
    }
    ASSERT_TRUE(log_lines(&f) < 2500); /* compacted once, past 10000 records */
    char tmp[128];
    snprintf(tmp, sizeof tmp, "%s/meta.log.tmp", f.dir);
    ASSERT_TRUE(access(tmp, F_OK) != 0);
    ASSERT_TRUE(d->nchildren == 2);
    fx_reopen(&f);
    x = emu_store_lookup(f.s, "/d/x");
    ASSERT_TRUE(x != NULL);
    check_all(x, 3, EMU_FILE);
    ASSERT_TRUE(emu_store_lookup(f.s, "/d/y/z") != NULL);
    ASSERT_TRUE(emu_store_lookup(f.s, "/gone") == NULL);
    uint64_t nodes = 0;
    emu_store_stats(f.s, &nodes, NULL);
    ASSERT_EQ_INT(nodes, 5);
    emu_node *n = mk(&f, "/", "new", EMU_FILE);
    ASSERT_TRUE(n->id > gone_id);
    ASSERT_TRUE(n->etag > gone_etag);
    fx_done(&f);
}

TEST(churn_of_creates_and_removes_compacts)
{
    fixture f;
    fx_init(&f);
    char name[32];
    for (int i = 0; i < 6000; i++) {
        snprintf(name, sizeof name, "t%d", i);
        /* the kept ones are files (checked against the objects); the churn is cheap directories */
        emu_node *n = mk(&f, "/", name, i % 100 ? EMU_DIR : EMU_FILE);
        if (i % 100 != 0) ASSERT_EQ_INT(emu_store_remove(f.s, n), 0);
    }
    ASSERT_TRUE(log_lines(&f) < 3000);
    ASSERT_EQ_INT(count_objects(&f), 60);
    fx_reopen(&f);
    ASSERT_EQ_INT(emu_store_root(f.s)->nchildren, 60);
    ASSERT_TRUE(emu_store_lookup(f.s, "/t5900") != NULL);
    ASSERT_TRUE(emu_store_lookup(f.s, "/t5901") == NULL);
    fx_done(&f);
}

TEST(path_of_nodes)
{
    fixture f;
    fx_init(&f);
    mk(&f, "/", "alpha", EMU_DIR);
    mk(&f, "/alpha", "beta", EMU_DIR);
    emu_node *g = mk(&f, "/alpha/beta", "gamma.txt", EMU_FILE);
    char buf[64];
    ASSERT_EQ_INT(emu_store_path(emu_store_root(f.s), buf, sizeof buf), 0);
    ASSERT_EQ_STR(buf, "/");
    ASSERT_EQ_INT(emu_store_path(g, buf, sizeof buf), 0);
    ASSERT_EQ_STR(buf, "/alpha/beta/gamma.txt");
    ASSERT_EQ_INT(emu_store_path(g, buf, 22), 0);
    ASSERT_EQ_STR(buf, "/alpha/beta/gamma.txt");
    ASSERT_EQ_INT(emu_store_path(g, buf, 21), -E2BIG);
    ASSERT_EQ_INT(emu_store_path(emu_store_root(f.s), buf, 1), -E2BIG);
    ASSERT_TRUE(emu_store_is_ancestor(emu_store_root(f.s), g));
    ASSERT_TRUE(emu_store_is_ancestor(g, g));
    ASSERT_TRUE(!emu_store_is_ancestor(g, emu_store_lookup(f.s, "/alpha")));
    fx_done(&f);
}

TEST(orphan_objects_removed_at_open)
{
    fixture f;
    fx_init(&f);
    emu_node *x = mk(&f, "/", "x", EMU_FILE);
    write_object(&f, x, "data");
    uint64_t xid = x->id;
    emu_store_close(f.s);
    f.s = NULL;
    char p[128];
    snprintf(p, sizeof p, "%s/objects/%016x", f.dir, 0x1234);
    int fd = open(p, O_WRONLY | O_CREAT, 0644);
    ASSERT_TRUE(fd >= 0);
    close(fd);
    snprintf(p, sizeof p, "%s/objects/%016" PRIx64, f.dir, xid);
    ASSERT_EQ_INT(access(p, F_OK), 0);
    fx_open(&f);
    ASSERT_TRUE(!obj_exists(&f, 0x1234));
    ASSERT_TRUE(obj_exists(&f, xid));
    ASSERT_EQ_INT(count_objects(&f), 1);
    fx_done(&f);
}

TEST(truncate_object)
{
    fixture f;
    fx_init(&f);
    emu_node *x = mk(&f, "/", "x", EMU_FILE);
    write_object(&f, x, "0123456789");
    ASSERT_EQ_INT(emu_store_truncate_object(f.s, x, 4), 0);
    struct stat st;
    int fd = emu_store_open_object(f.s, x, O_RDONLY);
    ASSERT_TRUE(fd >= 0);
    ASSERT_EQ_INT(fstat(fd, &st), 0);
    ASSERT_EQ_INT(st.st_size, 4);
    close(fd);
    ASSERT_EQ_INT(emu_store_open_object(f.s, emu_store_root(f.s), O_RDONLY), -ENOENT);
    fx_done(&f);
}

TEST(directory_in_use_is_refused)
{
    fixture f;
    fx_init(&f);
    char err[256] = "";
    emu_store_opts o = {.dir = f.dir};
    emu_store *s2 = NULL;
    ASSERT_EQ_INT(emu_store_open(&o, &s2, err, sizeof err), -1);
    ASSERT_TRUE(strstr(err, "in use") != NULL);
    fx_done(&f);
}

TEST(open_creates_missing_directories)
{
    fixture f;
    fx_init(&f);
    char deep[128], err[256] = "";
    snprintf(deep, sizeof deep, "%s/x/y/data", f.dir);
    emu_store_opts o = {.dir = deep, .sync = true};
    emu_store *s2 = NULL;
    ASSERT_EQ_INT(emu_store_open(&o, &s2, err, sizeof err), 0);
    emu_node *n = NULL;
    ASSERT_EQ_INT(emu_store_create(s2, emu_store_root(s2), "f", EMU_FILE, NULL, &n), 0);
    emu_store_close(s2);
    ASSERT_EQ_INT(emu_store_open(&o, &s2, err, sizeof err), 0);
    ASSERT_TRUE(emu_store_lookup(s2, "/f") != NULL);
    emu_store_close(s2);
    fx_done(&f);
}

TEST(out_of_range_fields_are_refused)
{
    fixture f;
    fx_init(&f);
    emu_node *x = mk(&f, "/", "x", EMU_FILE);
    x->mtime_ms = 42;
    ASSERT_EQ_INT(emu_store_save(f.s, x), 0);
    x->mode = 0170000; /* not a permission */
    ASSERT_EQ_INT(emu_store_save(f.s, x), -EINVAL);
    x->mode = 0644;
    ASSERT_EQ_INT(emu_node_staged_reserve(x, EMU_MAX_STAGED + 1), -E2BIG);
    ASSERT_EQ_INT(emu_node_staged_reserve(x, 2), 0);
    x->nstaged = x->cap_staged + 1; /* more ranges than the array holds */
    ASSERT_EQ_INT(emu_store_save(f.s, x), -EINVAL);
    x->nstaged = 0;
    acl_node *a = calloc(1, sizeof *a);
    ASSERT_TRUE(a != NULL);
    a->mode = 0644;
    a->ext.n = ACL_MAX_ENTRIES + 1;
    ASSERT_EQ_INT(emu_node_acl_put(x, a), -EINVAL);
    ASSERT_EQ_INT(x->nacl, 0);
    a->ext.n = 1;
    a->ext.e[0] = (acl_entry){.type = ACL_USER, .name = "u", .perm = 9};
    ASSERT_EQ_INT(emu_node_acl_put(x, a), 0);
    ASSERT_EQ_INT(emu_store_save(f.s, x), -EINVAL);
    a->ext.n = 0;
    ASSERT_EQ_INT(emu_node_acl_put(x, a), 0);
    free(a);
    x->length = -1;
    ASSERT_EQ_INT(emu_store_save(f.s, x), -EINVAL);
    ASSERT_EQ_INT(emu_store_move(f.s, x, emu_store_root(f.s), "y"), -EINVAL);
    x->length = 0;
    x->lease_duration_s = -2; /* only -1 (infinite) is negative */
    ASSERT_EQ_INT(emu_store_save(f.s, x), -EINVAL);
    x->lease_duration_s = 0;
    emu_meta t;
    memset(&t, 0, sizeof t);
    t.acl.mode = 0644;
    t.acl.ext.n = -3;
    emu_node *n = NULL;
    ASSERT_EQ_INT(emu_store_create(f.s, emu_store_root(f.s), "bad", EMU_FILE, &t, &n), -EINVAL);
    ASSERT_TRUE(emu_store_lookup(f.s, "/bad") == NULL);
    ASSERT_EQ_INT(count_objects(&f), 1); /* the refused file left no object behind */
    /* nothing bad reached the log: it reopens with the last good state */
    fx_reopen(&f);
    x = emu_store_lookup(f.s, "/x");
    ASSERT_TRUE(x != NULL);
    ASSERT_EQ_INT(x->mtime_ms, 42);
    ASSERT_EQ_INT(x->mode, 0644);
    fx_done(&f);
}

/* A child process writes as fast as it can and is killed with SIGKILL at a random moment. */
TEST(survives_kill_9_mid_write)
{
    fixture f;
    fx_init(&f);
    mk(&f, "/", "d", EMU_DIR);
    emu_store_close(f.s);
    f.s = NULL;
    for (int round = 0; round < 5; round++) {
        pid_t pid = fork();
        if (pid == 0) {
            fx_open(&f);
            char name[32];
            emu_node *d = emu_store_lookup(f.s, "/d");
            for (unsigned i = 0;; i++) {
                snprintf(name, sizeof name, "r%d-%u", round, i);
                emu_node *n = NULL;
                if (emu_store_create(f.s, d, name, EMU_FILE, NULL, &n) != 0) _exit(3);
                n->length = 1;
                if (emu_store_save(f.s, n) != 0) _exit(4);
                if (i % 3 == 0 && emu_store_remove(f.s, n) != 0) _exit(5);
            }
        }
        ASSERT_TRUE(pid > 0);
        usleep(50000 + 15000 * round);
        kill(pid, SIGKILL);
        int st = 0;
        waitpid(pid, &st, 0);
        ASSERT_TRUE(WIFSIGNALED(st));
        fx_open(&f);
        emu_node *d = emu_store_lookup(f.s, "/d");
        ASSERT_TRUE(d != NULL);
        /* every file that survived has its object; no stray objects remain */
        for (size_t i = 0; i < d->nchildren; i++) ASSERT_TRUE(obj_exists(&f, d->children[i]->id));
        ASSERT_EQ_INT(count_objects(&f), d->nchildren);
        ASSERT_TRUE(d->nchildren > 0);
        emu_store_close(f.s);
        f.s = NULL;
    }
    fx_open(&f);
    fx_done(&f);
}

typedef struct worker {
    emu_store *s;
    int k;
} worker;

static void *work(void *arg)
{
    worker *w = arg;
    char name[32];
    for (int i = 0; i < 300; i++) {
        snprintf(name, sizeof name, "w%d-%d", w->k, i);
        emu_store_lock(w->s);
        emu_node *d = emu_store_root(w->s)->children[w->k], *n = NULL;
        if (emu_store_create(w->s, d, name, EMU_FILE, NULL, &n) == 0) {
            n->length = i;
            emu_store_bump_etag(w->s, n);
            if (emu_store_save(w->s, n) != 0) n = NULL;
        }
        emu_store_unlock(w->s);
        if (!n) return (void *)1;
    }
    return NULL;
}

TEST(concurrent_writers_do_not_interleave)
{
    fixture f;
    fx_init(&f);
    mk(&f, "/", "0", EMU_DIR);
    mk(&f, "/", "1", EMU_DIR);
    mk(&f, "/", "2", EMU_DIR);
    mk(&f, "/", "3", EMU_DIR);
    pthread_t th[4];
    worker w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (worker){f.s, i};
        ASSERT_EQ_INT(pthread_create(&th[i], NULL, work, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        void *rv = NULL;
        pthread_join(th[i], &rv);
        ASSERT_TRUE(rv == NULL);
    }
    fx_reopen(&f);
    for (int i = 0; i < 4; i++) {
        char p[32];
        snprintf(p, sizeof p, "/%d", i);
        emu_node *d = emu_store_lookup(f.s, p);
        ASSERT_EQ_INT(d->nchildren, 300);
        snprintf(p, sizeof p, "/%d/w%d-299", i, i);
        ASSERT_EQ_INT(emu_store_lookup(f.s, p)->length, 299);
    }
    uint64_t nodes = 0;
    emu_store_stats(f.s, &nodes, NULL);
    ASSERT_EQ_INT(nodes, 1 + 4 + 1200);
    fx_done(&f);
}

typedef struct waiter {
    emu_store *s;
    emu_node *n;
} waiter;

static void *wait_idle(void *arg)
{
    waiter *w = arg;
    emu_store_lock(w->s);
    while (w->n->busy) emu_store_wait(w->s);
    w->n->busy = -1;
    emu_store_unlock(w->s);
    return NULL;
}

TEST(wait_and_broadcast)
{
    fixture f;
    fx_init(&f);
    emu_node *n = mk(&f, "/", "x", EMU_FILE);
    n->busy = 1;
    waiter w = {f.s, n};
    pthread_t th;
    ASSERT_EQ_INT(pthread_create(&th, NULL, wait_idle, &w), 0);
    usleep(50000);
    emu_store_lock(f.s);
    ASSERT_EQ_INT(n->busy, 1); /* still waiting */
    n->busy = 0;
    emu_store_broadcast(f.s);
    emu_store_unlock(f.s);
    pthread_join(th, NULL);
    ASSERT_EQ_INT(n->busy, -1);
    fx_done(&f);
}

TESTS(T(root_is_created_with_options), T(create_and_lookup), T(create_takes_template_metadata),
      T(children_sorted_and_child_after), T(many_children_stay_sorted), T(move_rename_and_reparent),
      T(remove_subtree_deletes_objects), T(save_and_reopen_restores_every_field), T(torn_final_line_is_dropped),
      T(corruption_before_the_last_line_fails_open),
      T(out_of_range_lease_duration_in_the_log_fails_open), T(replays_a_handwritten_log),
      T(a_log_without_its_root_is_refused), T(ids_and_etags_increase_across_reopen),
      T(mixed_nodes_survive_replay_and_compaction), T(compaction_keeps_everything), T(churn_of_creates_and_removes_compacts), T(path_of_nodes),
      T(orphan_objects_removed_at_open), T(truncate_object), T(directory_in_use_is_refused),
      T(out_of_range_fields_are_refused), T(survives_kill_9_mid_write),
      T(open_creates_missing_directories), T(concurrent_writers_do_not_interleave), T(wait_and_broadcast))
