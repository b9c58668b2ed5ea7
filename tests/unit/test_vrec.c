/*
 * test_vrec: the verify record's file and its cutover rule (proxy/vrec.c), on a temporary directory:
 * a missing file, a damaged one (opened anyway, cutover refused with the reason, replaced by the next
 * result), results kept across a reopen, subtree verifies, several mappings, differences and paths in
 * flight, drops owed to Gen2 (and those owed to Gen1 ignored), the admin endpoints' parsing.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jrnl_fmt.h"
#include "tharness.h"
#include "vrec.h"

static char g_dir[256];

static void mkdir_tmp(void)
{
    snprintf(g_dir, sizeof g_dir, "/tmp/test_vrec.XXXXXX");
    ASSERT_TRUE(mkdtemp(g_dir) != NULL);
}

static void rm_tmp(void)
{
    char p[400];
    snprintf(p, sizeof p, "%s/%s", g_dir, VREC_FILE);
    unlink(p);
    ASSERT_EQ_INT(rmdir(g_dir), 0);
}

static void cfg_maps(dp_config *c, const char *a, const char *b)
{
    memset(c, 0, sizeof *c);
    snprintf(c->mappings[0].gen1_prefix, sizeof c->mappings[0].gen1_prefix, "%s", a);
    c->nmappings = 1;
    if (b) {
        snprintf(c->mappings[1].gen1_prefix, sizeof c->mappings[1].gen1_prefix, "%s", b);
        c->nmappings = 2;
    }
}

static vrec *open_ok(const dp_config *c)
{
    vrec *v = NULL;
    char err[256];
    ASSERT_EQ_INT(vrec_open(c, g_dir, &v, err, sizeof err), 0);
    return v;
}

static void end(vrec *v, const char *root, uint64_t seq, uint64_t diffs, uint64_t inflight, int64_t at)
{
    vrec_result r;
    memset(&r, 0, sizeof r);
    snprintf(r.root, sizeof r.root, "%s", root);
    r.seq_known = true;
    r.begin_seq = seq;
    r.online = true;
    r.started_ms = at - 1000;
    r.ended_ms = at;
    r.differences = diffs;
    r.in_flight = inflight;
    r.equal = diffs == 0 && inflight == 0;
    snprintf(r.mode, sizeof r.mode, "deep");
    r.by_kind = json_pack("{s:I}", "missing", (json_int_t)diffs);
    char err[256];
    ASSERT_EQ_INT(vrec_end(v, &r, err, sizeof err), 0);
    json_decref(r.by_kind);
}

static void expect(vrec *v, int ok, const char *word)
{
    char why[1024];
    ASSERT_EQ_INT(vrec_cutover_ok(v, why, sizeof why), ok);
    if (word && !strstr(why, word)) TH_FAIL_AT("\"%s\" not in \"%s\"", word, why);
}

static void write_file(const char *text)
{
    char p[400];
    snprintf(p, sizeof p, "%s/%s", g_dir, VREC_FILE);
    FILE *f = fopen(p, "w");
    ASSERT_TRUE(f != NULL);
    fputs(text, f);
    fclose(f);
}

TEST(empty_then_whole_namespace)
{
    mkdir_tmp();
    dp_config c;
    cfg_maps(&c, "/", NULL);
    vrec *v = open_ok(&c);
    expect(v, -1, "no verify of the whole namespace recorded: run dualpipe verify /");
    end(v, "/data", 10, 0, 0, 1796000000000);
    expect(v, -1, "a verify of a subtree does not count");
    end(v, "/", 12, 0, 0, 1796000001000);
    expect(v, 0, "ok");
    /* a later clean subtree changes nothing; a later one with differences refuses */
    end(v, "/data", 14, 0, 0, 1796000002000);
    expect(v, 0, NULL);
    end(v, "/data", 15, 2, 0, 1796000003000);
    expect(v, -1, "a later verify of /data");
    vrec_free(v);
    /* the file holds it: the same answers after a reopen, mode 0600, no temporary left */
    char p[400];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", g_dir, VREC_FILE);
    ASSERT_EQ_INT(stat(p, &st), 0);
    ASSERT_EQ_INT(st.st_mode & 0777, 0600);
    DIR *d = opendir(g_dir);
    ASSERT_TRUE(d != NULL);
    int others = 0;
    for (struct dirent *de; (de = readdir(d)) != NULL;)
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") && strcmp(de->d_name, VREC_FILE)) others++;
    closedir(d);
    ASSERT_EQ_INT(others, 0);
    v = open_ok(&c);
    expect(v, -1, "a later verify of /data");
    end(v, "/", 20, 0, 0, 1796000004000);
    expect(v, 0, NULL);
    vrec_free(v);
    rm_tmp();
}

TEST(differences_in_flight_and_unknown_seq)
{
    mkdir_tmp();
    dp_config c;
    cfg_maps(&c, "/", NULL);
    vrec *v = open_ok(&c);
    end(v, "/", 5, 3, 0, 1796000000000);
    expect(v, -1, "found 3 differences (missing 3): run dualpipe verify / --repair");
    end(v, "/", 6, 0, 2, 1796000001000);
    expect(v, -1, "left 2 paths in flight");
    vrec_result r;
    memset(&r, 0, sizeof r);
    snprintf(r.root, sizeof r.root, "/");
    r.equal = true;
    r.ended_ms = 1796000002000;
    snprintf(r.mode, sizeof r.mode, "size");
    char err[256];
    ASSERT_EQ_INT(vrec_end(v, &r, err, sizeof err), 0);
    expect(v, -1, "without reading the journal's position");
    vrec_free(v);
    rm_tmp();
}

TEST(several_mappings)
{
    mkdir_tmp();
    dp_config c;
    cfg_maps(&c, "/data", "/logs");
    vrec *v = open_ok(&c);
    expect(v, -1, "or each mapping's root");
    end(v, "/data", 5, 0, 0, 1796000000000);
    expect(v, -1, "no verify recorded covers the mapping /logs");
    end(v, "/logs/app", 6, 0, 0, 1796000001000);
    expect(v, -1, "only a subtree of /logs");
    end(v, "/logs", 7, 0, 0, 1796000002000);
    expect(v, 0, NULL);
    vrec_free(v);
    rm_tmp();
}

TEST(drops_after_the_verify_began)
{
    mkdir_tmp();
    dp_config c;
    cfg_maps(&c, "/", NULL);
    vrec *v = open_ok(&c);
    end(v, "/", 100, 0, 0, 1796000000000);
    ASSERT_EQ_INT(vrec_note_divergence(v, 90, false), 0); /* journaled before it began: it saw its effect */
    expect(v, 0, NULL);
    ASSERT_EQ_INT(vrec_note_divergence(v, 120, true), 0); /* owed to Gen1: retired by gen2-only */
    expect(v, 0, NULL);
    ASSERT_EQ_INT(vrec_note_divergence(v, 110, false), 0);
    expect(v, -1, "record 110");
    vrec_free(v);
    v = open_ok(&c); /* persisted */
    expect(v, -1, "Gen2 may lack that write");
    ASSERT_EQ_INT(vrec_note_divergence(v, 111, false), 0);
    expect(v, -1, "2 records owed to Gen2");
    end(v, "/", 130, 0, 0, 1796000001000); /* a verify that began after them */
    expect(v, 0, NULL);
    dbuf b;
    dbuf_init(&b, 1 << 20);
    ASSERT_EQ_INT(vrec_json(v, &b), 0);
    json_t *o = json_loads(b.data, 0, NULL);
    ASSERT_TRUE(o != NULL);
    ASSERT_EQ_INT(json_integer_value(json_object_get(json_object_get(o, "dropped_to_gen2"), "total")), 3);
    ASSERT_TRUE(json_is_true(json_object_get(json_object_get(o, "cutover"), "ok")));
    json_decref(o);
    dbuf_free(&b);
    vrec_free(v);
    rm_tmp();
}

TEST(damaged_file)
{
    static const char *const bad[] = {
        "{\"version\":1,\"results\":[{\"root\":",                      /* torn */
        "[]",                                                          /* not the record */
        "{\"version\":2,\"results\":[]}",                              /* another version */
        "{\"version\":1,\"results\":[{\"root\":\"/\"}]}",              /* a result without its fields */
        "{\"version\":1,\"results\":[],\"drops\":[{\"at_ms\":1}]}",    /* a drop without its seq */
    };
    dp_config c;
    cfg_maps(&c, "/", NULL);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        mkdir_tmp();
        write_file(bad[i]);
        vrec *v = open_ok(&c); /* never fatal */
        expect(v, -1, "cannot be read");
        expect(v, -1, "run dualpipe verify / to record a new one");
        dbuf b;
        dbuf_init(&b, 1 << 20);
        ASSERT_EQ_INT(vrec_json(v, &b), 0);
        ASSERT_TRUE(strstr(b.data, "\"damaged\":\"") != NULL);
        dbuf_free(&b);
        end(v, "/", 3, 0, 0, 1796000000000); /* replaces the file */
        expect(v, 0, NULL);
        vrec_free(v);
        v = open_ok(&c);
        expect(v, 0, NULL);
        vrec_free(v);
        rm_tmp();
    }
}

TEST(admin_endpoints)
{
    mkdir_tmp();
    dp_config c;
    cfg_maps(&c, "/", NULL);
    vrec *v = open_ok(&c);
    dbuf b;
    dbuf_init(&b, 1 << 20);
    const char *allow = NULL;
    ASSERT_EQ_INT(vrec_http(v, 42, "/admin/verify/begin", true, "root=%2F", &b, &allow), 200);
    json_t *o = json_loads(b.data, 0, NULL);
    const char *tok = json_string_value(json_object_get(o, "token"));
    ASSERT_TRUE(tok && strlen(tok) == VREC_TOKEN_LEN);
    ASSERT_EQ_INT(json_integer_value(json_object_get(o, "seq")), 42);
    char q[256];
    snprintf(q, sizeof q, "token=%s&equal=1&differences=0&size_only=7&in_flight=0&mode=digest&kinds=missing%%3A0", tok);
    json_decref(o);
    dbuf_reset(&b);
    ASSERT_EQ_INT(vrec_http(v, 50, "/admin/verify/end", true, q, &b, &allow), 200);
    ASSERT_TRUE(strstr(b.data, "\"ok\":true") != NULL);
    dbuf_reset(&b);
    ASSERT_EQ_INT(vrec_http(v, 50, "/admin/verify", false, "", &b, &allow), 200);
    o = json_loads(b.data, 0, NULL);
    json_t *last = json_object_get(o, "last");
    ASSERT_EQ_INT(json_integer_value(json_object_get(last, "begin_seq")), 42); /* the begin's, not the end's */
    ASSERT_EQ_INT(json_integer_value(json_object_get(last, "size_only")), 7);
    ASSERT_EQ_STR(json_string_value(json_object_get(last, "mode")), "digest");
    json_decref(o);
    /* offline begin: root and begin_seq from the verify; without begin_seq it cannot count */
    dbuf_reset(&b);
    ASSERT_EQ_INT(vrec_http(v, 60, "/admin/verify/end", true, "root=/&equal=1&mode=size", &b, &allow), 200);
    ASSERT_TRUE(strstr(b.data, "without reading the journal") != NULL);
    dbuf_reset(&b);
    ASSERT_EQ_INT(vrec_http(v, 60, "/admin/verify/end", true, "root=/&begin_seq=59&equal=1&mode=size", &b, &allow), 200);
    ASSERT_TRUE(strstr(b.data, "\"ok\":true") != NULL);
    /* refusals */
    static const char *const badq[] = {"root=/&begin_seq=-1&equal=1&mode=size", "root=/&equal=1&mode=fast",
                                       "root=/&equal=1&mode=size&kinds=a:1,", "root=/&mode=size",
                                       "equal=1&mode=size", "root=/&equal=1&mode=size&kinds=A:1"};
    for (size_t i = 0; i < sizeof badq / sizeof badq[0]; i++) {
        dbuf_reset(&b);
        unsigned st = vrec_http(v, 60, "/admin/verify/end", true, badq[i], &b, &allow);
        if (st != 400) TH_FAIL_AT("%s: %u %s", badq[i], st, b.data ? b.data : "");
    }
    dbuf_reset(&b);
    ASSERT_EQ_INT(vrec_http(v, 60, "/admin/verify/end", true, "token=abc&equal=1&mode=size", &b, &allow), 409);
    ASSERT_EQ_INT(vrec_http(v, 60, "/admin/verify", true, "", &b, &allow), 405);
    ASSERT_EQ_STR(allow, "GET, HEAD");
    ASSERT_EQ_INT(vrec_http(v, 60, "/admin/verify/begin", false, "root=/", &b, &allow), 405);
    dbuf_free(&b);
    vrec_free(v);
    rm_tmp();
}

/* A segment file: header (seq floor) and STATE records of the given seqs; len 0 writes an empty file. */
static void segment(uint64_t seg, uint64_t floor, const uint64_t *seqs, size_t n, bool empty)
{
    dbuf b;
    dbuf_init(&b, 1 << 20);
    if (!empty) {
        jfmt_hdr h;
        jfmt_hdr_init(&h, seg, 1);
        h.seq_floor = floor;
        ASSERT_EQ_INT(jfmt_hdr_encode(&b, &h), 0);
        for (size_t i = 0; i < n; i++) {
            jfmt_rec r;
            memset(&r, 0, sizeof r);
            r.type = JFMT_T_STATE;
            r.u.s.seq = seqs[i];
            r.u.s.state = JFMT_S_APPLIED;
            ASSERT_EQ_INT(jfmt_encode(&b, &r), 0);
        }
    }
    char p[400];
    snprintf(p, sizeof p, "%s/jrnl-%016llx.seg", g_dir, (unsigned long long)seg);
    FILE *f = fopen(p, "w");
    ASSERT_TRUE(f != NULL);
    if (b.len) fwrite(b.data, 1, b.len, f);
    fclose(f);
    dbuf_free(&b);
}

TEST(offline_seq)
{
    mkdir_tmp();
    uint64_t seq = 0;
    char err[600];
    ASSERT_EQ_INT(vrec_offline_seq(g_dir, &seq, err, sizeof err), -1);
    ASSERT_TRUE(strstr(err, "no journal segment") != NULL);
    uint64_t a[] = {3, 9, 7};
    segment(1, 0, a, 3, false);
    ASSERT_EQ_INT(vrec_offline_seq(g_dir, &seq, err, sizeof err), 0);
    ASSERT_EQ_INT(seq, 9);
    segment(2, 40, NULL, 0, false); /* the newest: only its floor (older segments all gone: the same) */
    ASSERT_EQ_INT(vrec_offline_seq(g_dir, &seq, err, sizeof err), 0);
    ASSERT_EQ_INT(seq, 40);
    uint64_t c[] = {41, 44};
    segment(2, 40, c, 2, false);
    ASSERT_EQ_INT(vrec_offline_seq(g_dir, &seq, err, sizeof err), 0);
    ASSERT_EQ_INT(seq, 44);
    segment(3, 0, NULL, 0, true); /* a header that never reached the disk: the one before counts */
    ASSERT_EQ_INT(vrec_offline_seq(g_dir, &seq, err, sizeof err), 0);
    ASSERT_EQ_INT(seq, 44);
    char p[400];
    for (int i = 1; i <= 3; i++) {
        snprintf(p, sizeof p, "%s/jrnl-%016llx.seg", g_dir, (unsigned long long)i);
        unlink(p);
    }
    rm_tmp();
}

TESTS(T(empty_then_whole_namespace), T(differences_in_flight_and_unknown_seq), T(several_mappings),
      T(drops_after_the_verify_began), T(damaged_file), T(admin_endpoints), T(offline_seq));
