/*
 * Unit tests of the proxy's ordering decisions that need no I/O: relset (path relations by hash) and
 * feed (the bounded window between the journal and the applier: window limit, per-path cap, a stuck
 * path does not block others, order across the window's edge, ancestor/descendant rules).
 */
#include <errno.h>

#include "feed.h"
#include "relset.h"
#include "tharness.h"
#include "xlate.h"

/* ---- relset ---- */

TEST(relset_matches_xlate_path_related)
{
    static const char *paths[] = {"/", "/a", "/a/b", "/a/b/c", "/a/bc", "/ab", "/b", "/b/a", "/a/b/c/d/e"};
    int n = (int)(sizeof paths / sizeof paths[0]);
    for (int i = 0; i < n; i++) {
        rset s;
        rset_init(&s);
        ASSERT_EQ_INT(rset_add_path(&s, paths[i]), 0);
        for (int k = 0; k < n; k++) {
            bool want = xlate_path_related(paths[i], paths[k]);
            if (rset_hits_path(&s, paths[k]) != want)
                TH_FAIL_AT("member %s, query %s: want %d", paths[i], paths[k], (int)want);
        }
        rset_free(&s);
    }
}

TEST(relset_many_members_and_clear)
{
    rset s;
    rset_init(&s);
    char p[64];
    for (int i = 0; i < 5000; i++) {
        snprintf(p, sizeof p, "/d%d/f%d", i % 50, i);
        ASSERT_EQ_INT(rset_add_path(&s, p), 0);
    }
    ASSERT_TRUE(rset_hits_path(&s, "/d7"));          /* an ancestor of members */
    ASSERT_TRUE(rset_hits_path(&s, "/d7/f57"));      /* a member */
    ASSERT_TRUE(rset_hits_path(&s, "/d7/f57/x"));    /* under a member */
    ASSERT_TRUE(!rset_hits_path(&s, "/d7/f58"));     /* a sibling */
    ASSERT_TRUE(!rset_hits_path(&s, "/e"));
    rset_clear(&s);
    ASSERT_TRUE(!rset_hits_path(&s, "/d7/f57"));
    ASSERT_EQ_INT(rset_add_path(&s, "/"), 0);
    ASSERT_TRUE(rset_hits_path(&s, "/anything/at/all"));
    rset_free(&s);
}

/* ---- feed: a fake journal and applier ---- */

#define FK_MAX 4096

typedef struct fake {
    const char *paths[FK_MAX][3];
    int npaths[FK_MAX];
    bool gone[FK_MAX];
    uint64_t sub[FK_MAX];           /* submission order */
    int nsub;
    bool refuse;
} fake;

static int fk_load(void *ud, uint64_t seq, const char *const **paths, int *n)
{
    fake *f = ud;
    if (seq >= FK_MAX || f->gone[seq]) return -1;
    *paths = f->paths[seq];
    *n = f->npaths[seq];
    return 0;
}

static int fk_submit(void *ud, uint64_t seq)
{
    fake *f = ud;
    if (f->refuse) return -1;
    f->sub[f->nsub++] = seq;
    return 0;
}

static void fk_rec(fake *f, feed *fd, uint64_t seq, const char *p0, const char *p1)
{
    f->paths[seq][0] = p0;
    f->paths[seq][1] = p1;
    f->npaths[seq] = p1 ? 2 : 1;
    ASSERT_EQ_INT(feed_push(fd, seq), 0);
}

static bool submitted(const fake *f, uint64_t seq)
{
    for (int i = 0; i < f->nsub; i++)
        if (f->sub[i] == seq) return true;
    return false;
}

static int pos_of(const fake *f, uint64_t seq)
{
    for (int i = 0; i < f->nsub; i++)
        if (f->sub[i] == seq) return i;
    return -1;
}

TEST(window_limits_what_is_handed_over)
{
    static fake f;
    feed *fd = feed_new(4, 4, 100);
    char names[10][16];
    for (int i = 1; i <= 10; i++) {
        snprintf(names[i - 1], sizeof names[i - 1], "/f%d", i);
        fk_rec(&f, fd, (uint64_t)i, names[i - 1], NULL);
    }
    ASSERT_TRUE(feed_want_pass(fd));
    ASSERT_EQ_INT(feed_pass(fd, fk_load, fk_submit, &f), 4);
    ASSERT_EQ_INT(f.nsub, 4);
    for (int i = 0; i < 4; i++) ASSERT_EQ_INT(f.sub[i], i + 1);
    ASSERT_TRUE(!feed_want_pass(fd)); /* full */
    feed_stats st;
    feed_get_stats(fd, &st);
    ASSERT_EQ_INT(st.in_window, 4);
    ASSERT_EQ_INT(st.queued, 6);
    feed_finish(fd, 2);
    feed_finish(fd, 999); /* unknown: ignored */
    ASSERT_TRUE(feed_want_pass(fd));
    ASSERT_EQ_INT(feed_pass(fd, fk_load, fk_submit, &f), 1);
    ASSERT_EQ_INT(f.sub[4], 5);
    feed_free(fd);
}

TEST(per_path_cap_lets_other_paths_through_in_order)
{
    static fake f;
    feed *fd = feed_new(8, 2, 1000);
    /* seqs 1..100: /stuck; 101..110: other paths */
    for (int i = 1; i <= 100; i++) fk_rec(&f, fd, (uint64_t)i, "/stuck", NULL);
    char names[10][16];
    for (int i = 0; i < 10; i++) {
        snprintf(names[i], sizeof names[i], "/ok/%d", i);
        fk_rec(&f, fd, (uint64_t)(101 + i), names[i], NULL);
    }
    ASSERT_EQ_INT(feed_pass(fd, fk_load, fk_submit, &f), 8);
    /* two of the stuck path, then six others: the stuck path never fills the window */
    ASSERT_EQ_INT(f.sub[0], 1);
    ASSERT_EQ_INT(f.sub[1], 2);
    for (int i = 2; i < 8; i++) ASSERT_EQ_INT(f.sub[i], 101 + (i - 2));
    feed_stats st;
    feed_get_stats(fd, &st);
    ASSERT_EQ_INT(st.held, 98);
    ASSERT_EQ_INT(st.groups, 1); /* 98 held records share one group of paths */
    /* the others finish; the stuck ones do not: the rest of the others still go */
    for (int i = 101; i <= 106; i++) feed_finish(fd, (uint64_t)i);
    ASSERT_EQ_INT(feed_pass(fd, fk_load, fk_submit, &f), 4);
    ASSERT_TRUE(submitted(&f, 110));
    ASSERT_TRUE(!submitted(&f, 3));
    /* the stuck path recovers: its records follow in order, two at a time */
    feed_finish(fd, 1);
    ASSERT_EQ_INT(feed_pass(fd, fk_load, fk_submit, &f), 1);
    ASSERT_EQ_INT(f.sub[f.nsub - 1], 3);
    uint64_t last = 3;
    for (int round = 0; round < 200 && f.nsub < 110; round++) {
        feed_finish(fd, last);
        feed_finish(fd, 2);
        feed_pass(fd, fk_load, fk_submit, &f);
        last = f.sub[f.nsub - 1];
        for (int i = 107; i <= 110; i++) feed_finish(fd, (uint64_t)i);
    }
    ASSERT_EQ_INT(f.nsub, 110);
    for (int s = 1; s < 100; s++) ASSERT_TRUE(pos_of(&f, (uint64_t)s) < pos_of(&f, (uint64_t)s + 1));
    feed_get_stats(fd, &st);
    ASSERT_EQ_INT(st.held, 0);
    ASSERT_EQ_INT(st.groups, 0);
    feed_free(fd);
}

TEST(order_holds_across_the_window_edge)
{
    static fake f;
    feed *fd = feed_new(2, 2, 100);
    fk_rec(&f, fd, 1, "/a/x", NULL);
    fk_rec(&f, fd, 2, "/a/y", NULL);
    fk_rec(&f, fd, 3, "/a/x", NULL); /* waits for room; must go before 4 touches /a */
    fk_rec(&f, fd, 4, "/a", NULL);   /* a DELETE of the directory */
    ASSERT_EQ_INT(feed_pass(fd, fk_load, fk_submit, &f), 2);
    feed_finish(fd, 2);
    ASSERT_EQ_INT(feed_pass(fd, fk_load, fk_submit, &f), 1);
    ASSERT_EQ_INT(f.sub[2], 3);
    feed_finish(fd, 1);
    feed_finish(fd, 3);
    feed_finish(fd, 10);
    ASSERT_EQ_INT(feed_pass(fd, fk_load, fk_submit, &f), 1);
    ASSERT_EQ_INT(f.sub[3], 4);
    feed_free(fd);
}

TEST(held_ancestor_holds_descendants_and_renames)
{
    static fake f;
    feed *fd = feed_new(10, 1, 100);
    fk_rec(&f, fd, 1, "/d/f", NULL);     /* in the window */
    fk_rec(&f, fd, 2, "/d/f", NULL);     /* held: /d/f has its one operation */
    fk_rec(&f, fd, 3, "/d", NULL);       /* an ancestor of a held record: held */
    fk_rec(&f, fd, 4, "/d/g", NULL);     /* under a held record (/d): held */
    fk_rec(&f, fd, 5, "/e", "/d/h");     /* RENAME into a held directory: held */
    fk_rec(&f, fd, 6, "/x", "/y");       /* unrelated RENAME: goes */
    fk_rec(&f, fd, 7, "/e/z", NULL);     /* under 5's source: held */
    ASSERT_EQ_INT(feed_pass(fd, fk_load, fk_submit, &f), 2);
    ASSERT_EQ_INT(f.sub[0], 1);
    ASSERT_EQ_INT(f.sub[1], 6);
    feed_stats st;
    feed_get_stats(fd, &st);
    ASSERT_EQ_INT(st.held, 5);
    feed_finish(fd, 1);
    feed_finish(fd, 6);
    /* 2 goes; then nothing held is left before 3, 4, 5, 7: they go in order (the applier orders what
     * is in its queue by submission order) */
    ASSERT_EQ_INT(feed_pass(fd, fk_load, fk_submit, &f), 5);
    ASSERT_EQ_INT(f.sub[2], 2);
    ASSERT_EQ_INT(f.sub[3], 3);
    ASSERT_EQ_INT(f.sub[4], 4);
    ASSERT_EQ_INT(f.sub[5], 5);
    ASSERT_EQ_INT(f.sub[6], 7);
    feed_free(fd);
}

TEST(gone_and_refused_records_leave_the_feed)
{
    static fake f;
    feed *fd = feed_new(4, 4, 100);
    fk_rec(&f, fd, 1, "/a", NULL);
    fk_rec(&f, fd, 2, "/b", NULL);
    f.gone[1] = true;
    ASSERT_EQ_INT(feed_pass(fd, fk_load, fk_submit, &f), 1);
    ASSERT_EQ_INT(f.sub[0], 2);
    f.refuse = true;
    fk_rec(&f, fd, 3, "/c", NULL);
    ASSERT_EQ_INT(feed_pass(fd, fk_load, fk_submit, &f), 0);
    feed_stats st;
    feed_get_stats(fd, &st);
    ASSERT_EQ_INT(st.queued, 0);
    ASSERT_EQ_INT(st.in_window, 1);
    feed_free(fd);
}

TEST(runs_of_seqs_skip_records_gone_meanwhile)
{
    static fake f;
    feed *fd = feed_new(1000, 1000, 100);
    char names[FK_MAX][16];
    for (int i = 1; i < 3000; i++) {
        snprintf(names[i], sizeof names[i], "/r/%d", i);
        fk_rec(&f, fd, (uint64_t)i, names[i], NULL);
        f.gone[i] = i % 2 == 0; /* applied or dropped before the feeder got to them */
    }
    fk_rec(&f, fd, 3500, "/late", NULL); /* a new run */
    feed_stats st;
    feed_get_stats(fd, &st);
    ASSERT_EQ_INT(st.queued, 3000);
    ASSERT_EQ_INT(feed_pass(fd, fk_load, fk_submit, &f), 1000);
    for (int i = 0; i < 1000; i++) ASSERT_EQ_INT(f.sub[i], 2 * i + 1);
    for (int i = 0; i < 1000; i++) feed_finish(fd, (uint64_t)(2 * i + 1));
    ASSERT_EQ_INT(feed_pass(fd, fk_load, fk_submit, &f), 501); /* the other 500 odd ones and 3500 */
    ASSERT_EQ_INT(f.sub[f.nsub - 1], 3500);
    feed_get_stats(fd, &st);
    ASSERT_EQ_INT(st.queued, 0);
    feed_free(fd);
}

/* The fake journal's cursor: the first record at or after seq that is not gone (records: fk_rec'd). */
static uint64_t fk_next(void *ud, uint64_t seq)
{
    fake *f = ud;
    for (uint64_t s = seq; s < FK_MAX; s++)
        if (f->npaths[s] && !f->gone[s]) return s;
    return UINT64_MAX;
}

TEST(cursor_over_a_recovered_backlog)
{
    static fake f;
    feed *fd = feed_new(100, 100, 100);
    ASSERT_EQ_INT(feed_push_range(fd, 1, 50, 10), -EINVAL); /* gaps need a cursor */
    feed_set_next(fd, fk_next);
    char names[FK_MAX][16];
    /* records every 7th seq from 7 to 700 (100 of them), the others applied before the restart */
    for (int i = 7; i <= 700; i += 7) {
        snprintf(names[i], sizeof names[i], "/c/%d", i);
        f.paths[i][0] = names[i];
        f.npaths[i] = 1;
    }
    ASSERT_EQ_INT(feed_push_range(fd, 7, 350, 50), 0);
    ASSERT_EQ_INT(feed_push_range(fd, 357, 700, 50), 0); /* (a parked record between them) */
    ASSERT_EQ_INT(feed_push_range(fd, 5, 4, 1), -EINVAL);
    fk_rec(&f, fd, 900, "/fresh", NULL); /* a new write behind them */
    f.gone[14] = f.gone[700] = true;    /* finished by others before the feeder got there */
    feed_stats st;
    feed_get_stats(fd, &st);
    ASSERT_EQ_INT(st.queued, 101);
    ASSERT_EQ_INT(feed_pass(fd, fk_load, fk_submit, &f), 99);
    ASSERT_EQ_INT(f.nsub, 99);
    ASSERT_EQ_INT(f.sub[0], 7);
    ASSERT_EQ_INT(f.sub[1], 21);
    for (int i = 1; i < 98; i++) ASSERT_TRUE(f.sub[i] > f.sub[i - 1] && f.sub[i] % 7 == 0);
    ASSERT_EQ_INT(f.sub[97], 693);
    ASSERT_EQ_INT(f.sub[98], 900);
    feed_get_stats(fd, &st);
    ASSERT_EQ_INT(st.queued, 0);
    ASSERT_TRUE(!feed_want_pass(fd));
    /* a range without gaps is a plain run */
    for (int i = 0; i < 99; i++) feed_finish(fd, f.sub[i]);
    for (int i = 1000; i < 1010; i++) {
        snprintf(names[i], sizeof names[i], "/d/%d", i);
        f.paths[i][0] = names[i];
        f.npaths[i] = 1;
    }
    ASSERT_EQ_INT(feed_push_range(fd, 1000, 1009, 10), 0);
    ASSERT_EQ_INT(feed_pass(fd, fk_load, fk_submit, &f), 10);
    feed_free(fd);
}

TEST(held_list_bound_stops_the_pass)
{
    static fake f;
    feed *fd = feed_new(4, 1, 3);
    for (int i = 1; i <= 6; i++) fk_rec(&f, fd, (uint64_t)i, "/one", NULL);
    fk_rec(&f, fd, 7, "/other", NULL);
    ASSERT_EQ_INT(feed_pass(fd, fk_load, fk_submit, &f), 1);
    feed_stats st;
    feed_get_stats(fd, &st);
    ASSERT_EQ_INT(st.held, 3);
    ASSERT_EQ_INT(st.queued, 3); /* 5, 6 and 7 wait in the queue */
    ASSERT_TRUE(!submitted(&f, 7));
    feed_free(fd);
}

TEST(take_now_only_without_anything_waiting_before_it)
{
    static fake f;
    feed *fd = feed_new(3, 1, 100);
    const char *p0[] = {"/0"}, *pa[] = {"/a"}, *pb[] = {"/b"}, *pc[] = {"/c"}, *pd[] = {"/d/x"}, *pdy[] = {"/d/y/z"};
    ASSERT_TRUE(feed_take_now(fd, 1, pa, 1)); /* nothing waits: taken */
    ASSERT_TRUE(feed_take_now(fd, 2, pb, 1));
    ASSERT_TRUE(feed_take_now(fd, 3, pc, 1));
    ASSERT_TRUE(feed_take_now(fd, 10, p0, 1)); /* past the window: writers wait for these */
    feed_stats st;
    feed_get_stats(fd, &st);
    ASSERT_EQ_INT(st.in_window, 4);
    fk_rec(&f, fd, 4, "/d", NULL);
    ASSERT_TRUE(!feed_take_now(fd, 5, pd, 1)); /* something is queued before it */
    ASSERT_EQ_INT(feed_pass(fd, fk_load, fk_submit, &f), 0); /* no room */
    feed_finish(fd, 1);
    feed_finish(fd, 2);
    feed_finish(fd, 3);
    feed_finish(fd, 10);
    ASSERT_EQ_INT(feed_pass(fd, fk_load, fk_submit, &f), 1);
    ASSERT_EQ_INT(f.sub[0], 4);
    fk_rec(&f, fd, 6, "/d/y", NULL);
    fk_rec(&f, fd, 7, "/d/y", NULL);
    ASSERT_EQ_INT(feed_pass(fd, fk_load, fk_submit, &f), 1); /* 6 goes, 7 is held (one op per path) */
    feed_get_stats(fd, &st);
    ASSERT_EQ_INT(st.queued, 0);
    ASSERT_EQ_INT(st.held, 1);
    ASSERT_TRUE(!feed_take_now(fd, 8, pdy, 1)); /* under a held record: must wait behind it */
    ASSERT_TRUE(feed_take_now(fd, 9, pd, 1));   /* a sibling of the held path: taken */
    feed_free(fd);
}

/* A burst of fresh writes to one path (one that keeps failing on Gen2, say) never takes more than its
 * per-path share of the window through feed_take_now: the rest of the window stays for other paths, and
 * what it refused goes through the queue and waits held, behind the path's own. */
TEST(take_now_keeps_a_path_to_its_share_of_the_window)
{
    static fake f;
    feed *fd = feed_new(8, 2, 100);
    const char *ps[] = {"/stuck/f"}, *po[] = {"/ok/f"};
    ASSERT_TRUE(feed_take_now(fd, 1, ps, 1));
    ASSERT_TRUE(feed_take_now(fd, 2, ps, 1));
    ASSERT_TRUE(!feed_take_now(fd, 3, ps, 1)); /* /stuck/f has its 2 */
    fk_rec(&f, fd, 3, "/stuck/f", NULL);
    fk_rec(&f, fd, 4, "/stuck/f", NULL);
    fk_rec(&f, fd, 5, "/ok/f", NULL);
    ASSERT_EQ_INT(feed_pass(fd, fk_load, fk_submit, &f), 1); /* 3 and 4 held, 5 goes */
    ASSERT_EQ_INT(f.sub[0], 5);
    feed_stats st;
    feed_get_stats(fd, &st);
    ASSERT_EQ_INT(st.in_window, 3);
    ASSERT_EQ_INT(st.held, 2);
    ASSERT_TRUE(feed_take_now(fd, 6, po, 1)); /* nothing it relates to waits: taken */
    feed_finish(fd, 1);
    ASSERT_EQ_INT(feed_pass(fd, fk_load, fk_submit, &f), 1); /* room on /stuck/f again: 3, in order */
    ASSERT_EQ_INT(f.sub[1], 3);
    feed_free(fd);
}

TESTS(T(relset_matches_xlate_path_related), T(relset_many_members_and_clear), T(window_limits_what_is_handed_over),
      T(per_path_cap_lets_other_paths_through_in_order), T(order_holds_across_the_window_edge),
      T(held_ancestor_holds_descendants_and_renames), T(gone_and_refused_records_leave_the_feed),
      T(runs_of_seqs_skip_records_gone_meanwhile), T(cursor_over_a_recovered_backlog), T(held_list_bound_stops_the_pass), T(take_now_only_without_anything_waiting_before_it),
      T(take_now_keeps_a_path_to_its_share_of_the_window));
