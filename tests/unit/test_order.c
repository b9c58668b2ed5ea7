/*
 * test_order: the per-path fence's decisions (proxy/order.c). Which writes wait for which: the same
 * path, a DELETE or RENAME of an ancestor (and the other way round), a RENAME destination, CONCAT
 * and MSCONCAT sources, MSCONCAT's source directory, CONCURRENTAPPENDs among themselves and against
 * other writes; that independent paths never wait; that waiting writes come
 * out in seq order, one at a time on one path; that a write ending before its turn keeps the order;
 * that a cancelled registration leaves nothing behind; and that ended writes free their memory.
 */
#include <errno.h>

#include "order.h"
#include "tharness.h"

/* Register method target as seq (ud = seq, as a pointer-sized tag). */
static void add_body(ord *o, const char *method, const char *target, uint64_t seq, const char *body)
{
    whreq wr;
    whreq_err e;
    if (whreq_parse(method, target, &wr, &e) != 0) TH_FAIL_AT("cannot parse %s %s: %s", method, target, e.message);
    ord_write *w = NULL;
    ASSERT_EQ_INT(ord_add(o, &wr, body, body ? strlen(body) : 0, (void *)(uintptr_t)seq, &w), 0);
    ord_bind(o, w, seq);
    whreq_free(&wr);
}

static void add(ord *o, const char *method, const char *target, uint64_t seq)
{
    add_body(o, method, target, seq, NULL);
}

/* ord_ready: 1 when seq may go now, 0 when it waits (then *wf is the seq it names). */
static int ready(ord *o, uint64_t seq, uint64_t *wf)
{
    uint64_t dummy = 0;
    return ord_ready(o, seq, wf ? wf : &dummy) ? 1 : 0;
}

/* The seqs ord_done(seq) freed, in order, as "a,b,c". */
static const char *done(ord *o, uint64_t seq)
{
    static char buf[256];
    buf[0] = '\0';
    unsigned n = ord_done(o, seq);
    size_t off = 0;
    uint64_t s;
    unsigned got = 0;
    for (void *ud; (ud = ord_next_released(o, &s)) != NULL; got++) {
        ASSERT_EQ_INT((uintptr_t)ud, s);
        off += (size_t)snprintf(buf + off, sizeof buf - off, "%s%" PRIu64, off ? "," : "", s);
    }
    ASSERT_EQ_INT(got, n);
    return buf;
}

static void assert_empty(ord *o)
{
    ord_stats st;
    ord_get_stats(o, &st);
    ASSERT_EQ_INT(st.writes, 0);
    ASSERT_EQ_INT(st.paths, 0);
    ASSERT_EQ_INT(st.waiting, 0);
}

TEST(same_path_waits_and_releases_in_seq_order)
{
    ord *o = ord_new();
    add(o, "PUT", "/webhdfs/v1/p?op=CREATE&overwrite=true", 1);
    add(o, "DELETE", "/webhdfs/v1/p?op=DELETE", 2);
    add(o, "PUT", "/webhdfs/v1/p?op=CREATE&overwrite=true", 3);
    add(o, "POST", "/webhdfs/v1/p?op=APPEND", 4);
    uint64_t wf = 0;
    /* Durability callbacks may come in any order: later ones still wait. */
    ASSERT_EQ_INT(ready(o, 3, &wf), 0);
    ASSERT_EQ_INT(wf, 2);
    ASSERT_EQ_INT(ready(o, 1, NULL), 1);
    ASSERT_EQ_INT(ready(o, 4, &wf), 0);
    ASSERT_EQ_INT(wf, 3);
    ASSERT_EQ_INT(ready(o, 2, &wf), 0);
    ASSERT_EQ_INT(wf, 1);
    ord_stats st;
    ord_get_stats(o, &st);
    ASSERT_EQ_INT(st.writes, 4);
    ASSERT_EQ_INT(st.paths, 1);
    ASSERT_EQ_INT(st.waiting, 3);
    /* One at a time, in seq order. */
    ASSERT_EQ_STR(done(o, 1), "2");
    ASSERT_EQ_STR(done(o, 2), "3");
    ASSERT_EQ_STR(done(o, 3), "4");
    ASSERT_EQ_STR(done(o, 4), "");
    assert_empty(o);
    ord_free(o);
}

TEST(a_later_write_of_a_free_path_goes_at_once)
{
    ord *o = ord_new();
    add(o, "PUT", "/webhdfs/v1/p?op=CREATE", 1);
    ASSERT_EQ_INT(ready(o, 1, NULL), 1);
    ASSERT_EQ_STR(done(o, 1), "");
    /* The path is free again: the next write there waits for nothing. */
    add(o, "PUT", "/webhdfs/v1/p?op=SETPERMISSION&permission=600", 2);
    ASSERT_EQ_INT(ready(o, 2, NULL), 1);
    /* A write registered but not yet ready when its blocker ends goes at once later. */
    add(o, "PUT", "/webhdfs/v1/p?op=SETOWNER&owner=u", 3);
    ASSERT_EQ_STR(done(o, 2), "");
    ASSERT_EQ_INT(ready(o, 3, NULL), 1);
    ASSERT_EQ_STR(done(o, 3), "");
    assert_empty(o);
    ord_free(o);
}

TEST(independent_paths_never_wait)
{
    ord *o = ord_new();
    char t[128];
    for (uint64_t s = 1; s <= 200; s++) {
        snprintf(t, sizeof t, "/webhdfs/v1/burst/f%" PRIu64 "?op=CREATE", s);
        add(o, "PUT", t, s);
    }
    /* Siblings, parents that are not namespace ops, and a DELETE of an unrelated directory. */
    add(o, "PUT", "/webhdfs/v1/burst?op=MKDIRS", 201);
    add(o, "PUT", "/webhdfs/v1/?op=SETPERMISSION&permission=755", 202); /* the root, not deleted */
    add(o, "DELETE", "/webhdfs/v1/bur?op=DELETE", 203);
    add(o, "DELETE", "/webhdfs/v1/burst2?op=DELETE", 204);
    add(o, "PUT", "/webhdfs/v1/other?op=RENAME&destination=/burstx", 205);
    for (uint64_t s = 1; s <= 205; s++) ASSERT_EQ_INT(ready(o, s, NULL), 1);
    ord_stats st;
    ord_get_stats(o, &st);
    ASSERT_EQ_INT(st.writes, 205);
    ASSERT_EQ_INT(st.waiting, 0);
    for (uint64_t s = 205; s >= 1; s--) ASSERT_EQ_STR(done(o, s), "");
    assert_empty(o);
    ord_free(o);
}

TEST(delete_of_a_directory_covers_its_subtree)
{
    ord *o = ord_new();
    add(o, "PUT", "/webhdfs/v1/d/a/f?op=CREATE", 1);
    add(o, "PUT", "/webhdfs/v1/d/g?op=CREATE", 2);
    add(o, "DELETE", "/webhdfs/v1/d?op=DELETE&recursive=true", 3); /* descendants before it */
    add(o, "PUT", "/webhdfs/v1/d/a/h?op=CREATE", 4);                /* ancestor deleted before it */
    add(o, "PUT", "/webhdfs/v1/dx?op=CREATE", 5);                   /* a name prefix, not a child */
    ASSERT_EQ_INT(ready(o, 1, NULL), 1);
    ASSERT_EQ_INT(ready(o, 2, NULL), 1);
    uint64_t wf = 0;
    ASSERT_EQ_INT(ready(o, 3, &wf), 0);
    ASSERT_EQ_INT(wf, 2);
    ASSERT_EQ_INT(ready(o, 4, &wf), 0);
    ASSERT_EQ_INT(wf, 3);
    ASSERT_EQ_INT(ready(o, 5, NULL), 1);
    ASSERT_EQ_STR(done(o, 2), "");   /* the DELETE still waits for 1 */
    ASSERT_EQ_STR(done(o, 1), "3");
    ASSERT_EQ_STR(done(o, 3), "4");
    ASSERT_EQ_STR(done(o, 4), "");
    ASSERT_EQ_STR(done(o, 5), "");
    assert_empty(o);
    ord_free(o);
}

TEST(delete_of_the_root_covers_everything)
{
    ord *o = ord_new();
    add(o, "PUT", "/webhdfs/v1/x?op=CREATE", 1);
    add(o, "DELETE", "/webhdfs/v1/?op=DELETE&recursive=true", 2);
    add(o, "PUT", "/webhdfs/v1/y/z?op=MKDIRS", 3);
    ASSERT_EQ_INT(ready(o, 1, NULL), 1);
    ASSERT_EQ_INT(ready(o, 2, NULL), 0);
    ASSERT_EQ_INT(ready(o, 3, NULL), 0);
    ASSERT_EQ_STR(done(o, 1), "2");
    ASSERT_EQ_STR(done(o, 2), "3");
    ASSERT_EQ_STR(done(o, 3), "");
    assert_empty(o);
    ord_free(o);
}

TEST(rename_covers_source_and_destination_subtrees)
{
    ord *o = ord_new();
    add(o, "PUT", "/webhdfs/v1/src/part-0?op=CREATE", 1);
    add(o, "PUT", "/webhdfs/v1/dst/old?op=CREATE&overwrite=true", 2);
    add(o, "PUT", "/webhdfs/v1/unrelated?op=CREATE", 3);
    add(o, "PUT", "/webhdfs/v1/src?op=RENAME&destination=/dst", 4);
    add(o, "PUT", "/webhdfs/v1/dst/new?op=CREATE", 5); /* under the destination */
    add(o, "PUT", "/webhdfs/v1/src?op=MKDIRS", 6);     /* the source itself */
    ASSERT_EQ_INT(ready(o, 1, NULL), 1);
    ASSERT_EQ_INT(ready(o, 2, NULL), 1);
    ASSERT_EQ_INT(ready(o, 3, NULL), 1);
    ASSERT_EQ_INT(ready(o, 4, NULL), 0);
    ASSERT_EQ_INT(ready(o, 5, NULL), 0);
    ASSERT_EQ_INT(ready(o, 6, NULL), 0);
    ASSERT_EQ_STR(done(o, 3), "");
    ASSERT_EQ_STR(done(o, 1), ""); /* still waits for 2, under its destination */
    ASSERT_EQ_STR(done(o, 2), "4");
    ASSERT_EQ_STR(done(o, 4), "5,6");
    ASSERT_EQ_STR(done(o, 6), "");
    ASSERT_EQ_STR(done(o, 5), "");
    assert_empty(o);
    ord_free(o);
}

TEST(rename_over_an_existing_file_orders_against_its_writers)
{
    ord *o = ord_new();
    add(o, "PUT", "/webhdfs/v1/t?op=CREATE&overwrite=true", 1);
    add(o, "PUT", "/webhdfs/v1/tmp/a?op=RENAME&destination=/t", 2);
    add(o, "POST", "/webhdfs/v1/t?op=APPEND", 3);
    add(o, "POST", "/webhdfs/v1/tmp/a?op=APPEND", 4);
    ASSERT_EQ_INT(ready(o, 1, NULL), 1);
    uint64_t wf = 0;
    ASSERT_EQ_INT(ready(o, 2, &wf), 0);
    ASSERT_EQ_INT(wf, 1);
    ASSERT_EQ_INT(ready(o, 3, &wf), 0);
    ASSERT_EQ_INT(wf, 2);
    ASSERT_EQ_INT(ready(o, 4, &wf), 0);
    ASSERT_EQ_INT(wf, 2);
    ASSERT_EQ_STR(done(o, 1), "2");
    ASSERT_EQ_STR(done(o, 2), "3,4");
    ASSERT_EQ_STR(done(o, 3), "");
    ASSERT_EQ_STR(done(o, 4), "");
    assert_empty(o);
    ord_free(o);
}

TEST(concat_touches_target_and_sources)
{
    ord *o = ord_new();
    add(o, "POST", "/webhdfs/v1/c/s1?op=APPEND", 1);
    add(o, "POST", "/webhdfs/v1/c/t?op=CONCAT&sources=/c/s1,/c/s2", 2);
    add(o, "DELETE", "/webhdfs/v1/c/s2?op=DELETE", 3);
    add(o, "PUT", "/webhdfs/v1/c/s3?op=CREATE", 4); /* not a source */
    ASSERT_EQ_INT(ready(o, 1, NULL), 1);
    ASSERT_EQ_INT(ready(o, 2, NULL), 0);
    ASSERT_EQ_INT(ready(o, 3, NULL), 0);
    ASSERT_EQ_INT(ready(o, 4, NULL), 1);
    ASSERT_EQ_STR(done(o, 1), "2");
    ASSERT_EQ_STR(done(o, 2), "3");
    ASSERT_EQ_STR(done(o, 3), "");
    ASSERT_EQ_STR(done(o, 4), "");
    assert_empty(o);
    ord_free(o);
}

TEST(msconcat_sources_from_the_body_and_source_directory)
{
    ord *o = ord_new();
    add(o, "PUT", "/webhdfs/v1/m/parts/p1?op=CREATE", 1);
    add(o, "PUT", "/webhdfs/v1/m/parts/other?op=CREATE", 2);
    add_body(o, "POST", "/WebHdfsExt/m/out?op=MSCONCAT&deleteSourceDirectory=true", 3,
             "{\"sources\":[\"/m/parts/p1\",\"/m/parts/p2\"]}");
    add(o, "PUT", "/webhdfs/v1/m/parts/p2?op=CREATE", 4);
    add_body(o, "POST", "/WebHdfsExt/n/out?op=MSCONCAT", 5, "sources=/n/a,/n/b");
    add(o, "POST", "/webhdfs/v1/n/b?op=APPEND", 6);
    ASSERT_EQ_INT(ready(o, 1, NULL), 1);
    ASSERT_EQ_INT(ready(o, 2, NULL), 1);
    ASSERT_EQ_INT(ready(o, 3, NULL), 0);
    ASSERT_EQ_INT(ready(o, 4, NULL), 0);
    ASSERT_EQ_INT(ready(o, 5, NULL), 1);
    ASSERT_EQ_INT(ready(o, 6, NULL), 0);
    ASSERT_EQ_STR(done(o, 1), "");  /* the directory's other file (2) still holds the MSCONCAT */
    ASSERT_EQ_STR(done(o, 2), "3");
    ASSERT_EQ_STR(done(o, 3), "4");
    ASSERT_EQ_STR(done(o, 5), "6");
    ASSERT_EQ_STR(done(o, 4), "");
    ASSERT_EQ_STR(done(o, 6), "");
    assert_empty(o);
    ord_free(o);
}

TEST(concurrentappends_do_not_wait_for_each_other)
{
    ord *o = ord_new();
    add(o, "PUT", "/webhdfs/v1/log?op=CREATE", 1);
    add(o, "POST", "/WebHdfsExt/log?op=CONCURRENTAPPEND", 2);
    add(o, "POST", "/WebHdfsExt/log?op=CONCURRENTAPPEND", 3);
    add(o, "POST", "/WebHdfsExt/log?op=CONCURRENTAPPEND", 4);
    add(o, "PUT", "/webhdfs/v1/log?op=SETPERMISSION&permission=600", 5);
    add(o, "POST", "/WebHdfsExt/log?op=CONCURRENTAPPEND", 6);
    ASSERT_EQ_INT(ready(o, 1, NULL), 1);
    for (uint64_t s = 2; s <= 6; s++) ASSERT_EQ_INT(ready(o, s, NULL), 0);
    /* The CREATE frees all three appends together; the SETPERMISSION waits for every one. */
    ASSERT_EQ_STR(done(o, 1), "2,3,4");
    ASSERT_EQ_STR(done(o, 3), "");
    ASSERT_EQ_STR(done(o, 4), "");
    ASSERT_EQ_STR(done(o, 2), "5");
    ASSERT_EQ_STR(done(o, 5), "6");
    ASSERT_EQ_STR(done(o, 6), "");
    /* Appends with nothing else in flight go at once, side by side. */
    add(o, "POST", "/WebHdfsExt/log?op=CONCURRENTAPPEND", 7);
    add(o, "POST", "/WebHdfsExt/log?op=CONCURRENTAPPEND", 8);
    ASSERT_EQ_INT(ready(o, 7, NULL), 1);
    ASSERT_EQ_INT(ready(o, 8, NULL), 1);
    ASSERT_EQ_STR(done(o, 8), "");
    ASSERT_EQ_STR(done(o, 7), "");
    assert_empty(o);
    ord_free(o);
}

TEST(a_write_ending_before_its_turn_keeps_the_order)
{
    ord *o = ord_new();
    add(o, "PUT", "/webhdfs/v1/p?op=CREATE&overwrite=true", 1);
    add(o, "PUT", "/webhdfs/v1/p?op=CREATE&overwrite=true", 2);
    add(o, "PUT", "/webhdfs/v1/p?op=CREATE&overwrite=true", 3);
    ASSERT_EQ_INT(ready(o, 1, NULL), 1);
    /* 2's record could not be made durable: it ends without being sent. 3 waited only for 2 (which
     * waited for 1), so 3 must still wait for 1. */
    ASSERT_EQ_STR(done(o, 2), "");
    ASSERT_EQ_INT(ready(o, 3, NULL), 0);
    ord_stats st;
    ord_get_stats(o, &st);
    ASSERT_EQ_INT(st.writes, 3);
    ASSERT_EQ_STR(done(o, 1), "3");
    ord_get_stats(o, &st);
    ASSERT_EQ_INT(st.writes, 1);
    ASSERT_EQ_STR(done(o, 3), "");
    assert_empty(o);
    ord_free(o);
}

TEST(cancel_takes_back_the_last_registration)
{
    ord *o = ord_new();
    add(o, "PUT", "/webhdfs/v1/p?op=CREATE", 1);
    whreq wr;
    whreq_err e;
    ASSERT_EQ_INT(whreq_parse("DELETE", "/webhdfs/v1/p?op=DELETE", &wr, &e), 0);
    ord_write *w = NULL;
    ASSERT_EQ_INT(ord_add(o, &wr, NULL, 0, NULL, &w), 0);
    whreq_free(&wr);
    ord_cancel(o, w); /* the journal refused it: no seq, no trace */
    add(o, "PUT", "/webhdfs/v1/q?op=CREATE", 2);
    ASSERT_EQ_INT(ready(o, 1, NULL), 1);
    ASSERT_EQ_INT(ready(o, 2, NULL), 1);
    ASSERT_EQ_STR(done(o, 1), "");
    ASSERT_EQ_STR(done(o, 2), "");
    assert_empty(o);
    /* Unknown seqs: free to go, ending them changes nothing. */
    ASSERT_EQ_INT(ready(o, 99, NULL), 1);
    ASSERT_EQ_STR(done(o, 99), "");
    ord_free(o);
}

TEST(memory_follows_the_writes_in_flight)
{
    ord *o = ord_new();
    char t[160];
    /* 20,000 writes over time, never more than 8 in flight: the fence holds at most 8 paths. */
    uint64_t s = 0;
    for (int round = 0; round < 2500; round++) {
        for (int k = 0; k < 8; k++) {
            snprintf(t, sizeof t, "/webhdfs/v1/r%d/f%d?op=CREATE&overwrite=true", round, k % 3);
            add(o, "PUT", t, ++s);
        }
        ord_stats st;
        ord_get_stats(o, &st);
        ASSERT_EQ_INT(st.writes, 8);
        ASSERT_EQ_INT(st.paths, 3);
        for (uint64_t q = s - 7; q <= s; q++) (void)ready(o, q, NULL);
        for (uint64_t q = s - 7; q <= s; q++) {
            ord_done(o, q);
            uint64_t rs;
            while (ord_next_released(o, &rs)) {}
        }
        assert_empty(o);
    }
    ord_free(o);
}

TESTS(T(same_path_waits_and_releases_in_seq_order), T(a_later_write_of_a_free_path_goes_at_once),
      T(independent_paths_never_wait), T(delete_of_a_directory_covers_its_subtree),
      T(delete_of_the_root_covers_everything), T(rename_covers_source_and_destination_subtrees),
      T(rename_over_an_existing_file_orders_against_its_writers), T(concat_touches_target_and_sources),
      T(msconcat_sources_from_the_body_and_source_directory), T(concurrentappends_do_not_wait_for_each_other),
      T(a_write_ending_before_its_turn_keeps_the_order), T(cancel_takes_back_the_last_registration),
      T(memory_follows_the_writes_in_flight))
