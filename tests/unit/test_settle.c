/*
 * test_settle: how a write whose Gen1 answer was lost is judged (proxy/settle.c), op by op, against a
 * scripted Gen1: this file's gen1c_get stands in for the real client (the static library's one is not
 * linked) and answers each GETFILESTATUS from a script, one entry per look, the last one repeating.
 * Checked: the verdict, how many looks it took (an effect already visible is final at the first look;
 * "not applied" only after the settle time; a state matching neither is looked at a third time), that
 * the second look waits gen1.settle_ms, and that stopping ends a waiting settle as unknown at once.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "settle.h"
#include "tharness.h"

#define SETTLE_MS 60
#define MAXS 8

/* ---- the scripted Gen1 ---- */

typedef struct answer {
    const char *path;   /* NULL: any path */
    int status;         /* 200 (body: a FileStatus), 404, 500; 0 = end of script */
    const char *body;
} answer;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static answer script[MAXS];
static int looks;                /* GETFILESTATUS calls of the source path */
static int dst_looks;
static const char *dst_path;     /* RENAME's destination, answered from dst_answer */
static answer dst_answer;
static stl_verdict verdict;
static bool have_verdict;

int gen1c_get(gen1c *c, const char *path, const char *op_and_params, const char *authorization, httpc_body_out out,
              size_t out_max, int out_fd, void (*done)(void *ud, httpc_resp *resp), void *ud)
{
    (void)c, (void)authorization, (void)out, (void)out_fd;
    if (strncmp(op_and_params, "op=GETFILESTATUS", 16) != 0) TH_FAIL_AT("unexpected look-up %s", op_and_params);
    httpc_resp *r = calloc(1, sizeof *r);
    dbuf_init(&r->body, out_max);
    answer a;
    pthread_mutex_lock(&mu);
    if (dst_path && strcmp(path, dst_path) == 0) {
        a = dst_answer;
        dst_looks++;
    } else {
        int last = 0;
        while (last + 1 < MAXS && script[last + 1].status) last++;
        a = script[looks < last ? looks : last];
        looks++;
    }
    pthread_mutex_unlock(&mu);
    r->result = HTTPC_OK;
    r->sent = true;
    r->status = a.status;
    if ((a.body ? dbuf_adds(&r->body, a.body) : dbuf_add(&r->body, "", 0)) != 0) TH_FAIL_AT("dbuf");
    done(ud, r); /* synchronously: settle never touches the entry after a look-up was handed over */
    return 0;
}

static void on_verdict(void *ud, stl_verdict v)
{
    (void)ud;
    pthread_mutex_lock(&mu);
    verdict = v;
    have_verdict = true;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *fs_file(char *buf, size_t cap, unsigned long long len, const char *perm)
{
    snprintf(buf, cap,
             "{\"FileStatus\":{\"type\":\"FILE\",\"length\":%llu,\"permission\":\"%s\",\"owner\":\"alice\","
             "\"group\":\"hadoop\",\"modificationTime\":1700000000000,\"accessTime\":1700000000001}}",
             len, perm);
    return buf;
}

#define DIR_FS "{\"FileStatus\":{\"type\":\"DIRECTORY\",\"length\":0,\"permission\":\"755\"}}"

/* Settle method target (body of body_len bytes) against the script; the verdict, *nlooks, *secs. */
static stl_verdict settle(const char *method, const char *target, uint64_t body_len, int *nlooks, double *secs)
{
    whreq wr;
    whreq_err e;
    if (whreq_parse(method, target, &wr, &e) != 0) TH_FAIL_AT("cannot parse %s %s: %s", method, target, e.message);
    stl *s = NULL;
    ASSERT_EQ_INT(stl_new(NULL, SETTLE_MS, &s), 0);
    pthread_mutex_lock(&mu);
    looks = dst_looks = 0;
    have_verdict = false;
    pthread_mutex_unlock(&mu);
    double t0 = now_s();
    ASSERT_EQ_INT(stl_start(s, &wr, body_len, NULL, on_verdict, NULL), 0);
    whreq_free(&wr);
    pthread_mutex_lock(&mu);
    while (!have_verdict) pthread_cond_wait(&cv, &mu);
    stl_verdict v = verdict;
    if (nlooks) *nlooks = looks;
    pthread_mutex_unlock(&mu);
    if (secs) *secs = now_s() - t0;
    ASSERT_EQ_INT(stl_pending(s), 0);
    stl_free(s);
    return v;
}

static void set_script(answer a0, answer a1, answer a2)
{
    pthread_mutex_lock(&mu);
    memset(script, 0, sizeof script);
    script[0] = a0;
    script[1] = a1;
    script[2] = a2;
    dst_path = NULL;
    pthread_mutex_unlock(&mu);
}

static const answer END = {0};
static const answer ABSENT = {NULL, 404, "{\"RemoteException\":{\"exception\":\"FileNotFoundException\"}}"};

TEST(append_with_offset)
{
    char b1[512], b2[512];
    int n;
    double secs;
    /* the bytes are there at the first look: applied, final at once */
    set_script((answer){NULL, 200, fs_file(b1, sizeof b1, 1500, "644")}, END, END);
    ASSERT_EQ_INT(settle("POST", "/webhdfs/v1/f?op=APPEND&offset=1000", 500, &n, &secs), STL_APPLIED);
    ASSERT_EQ_INT(n, 1);
    /* not there, and still not after the settle time: not applied */
    set_script((answer){NULL, 200, fs_file(b1, sizeof b1, 1000, "644")}, END, END);
    ASSERT_EQ_INT(settle("POST", "/webhdfs/v1/f?op=APPEND&offset=1000", 500, &n, &secs), STL_NOT_APPLIED);
    ASSERT_EQ_INT(n, 2);
    ASSERT_TRUE(secs >= SETTLE_MS / 1000.0);
    /* not there at first, there after the settle time (Gen1 applied it late) */
    set_script((answer){NULL, 200, fs_file(b1, sizeof b1, 1000, "644")},
               (answer){NULL, 200, fs_file(b2, sizeof b2, 1500, "644")}, END);
    ASSERT_EQ_INT(settle("POST", "/webhdfs/v1/f?op=APPEND&offset=1000", 500, &n, &secs), STL_APPLIED);
    ASSERT_EQ_INT(n, 2);
    /* a length that is neither: looked at three times, then unknown */
    set_script((answer){NULL, 200, fs_file(b1, sizeof b1, 1200, "644")}, END, END);
    ASSERT_EQ_INT(settle("POST", "/webhdfs/v1/f?op=APPEND&offset=1000", 500, &n, &secs), STL_UNKNOWN);
    ASSERT_EQ_INT(n, 3);
    ASSERT_TRUE(secs >= 2 * SETTLE_MS / 1000.0);
}

TEST(append_without_offset)
{
    char b1[512], b2[512];
    int n;
    /* grew by exactly the body after the first look: applied late */
    set_script((answer){NULL, 200, fs_file(b1, sizeof b1, 1000, "644")},
               (answer){NULL, 200, fs_file(b2, sizeof b2, 1500, "644")}, END);
    ASSERT_EQ_INT(settle("POST", "/webhdfs/v1/f?op=APPEND", 500, &n, NULL), STL_APPLIED);
    ASSERT_EQ_INT(n, 2);
    /* unchanged: it may have landed before the first look; it cannot be told */
    set_script((answer){NULL, 200, fs_file(b1, sizeof b1, 1500, "644")}, END, END);
    ASSERT_EQ_INT(settle("POST", "/webhdfs/v1/f?op=APPEND", 500, &n, NULL), STL_UNKNOWN);
    ASSERT_EQ_INT(n, 2);
}

TEST(create_mkdirs_delete)
{
    char b1[512];
    int n;
    set_script((answer){NULL, 200, fs_file(b1, sizeof b1, 3000, "644")}, END, END);
    ASSERT_EQ_INT(settle("PUT", "/webhdfs/v1/c?op=CREATE&overwrite=true", 3000, &n, NULL), STL_APPLIED);
    ASSERT_EQ_INT(n, 1);
    set_script(ABSENT, END, END);
    ASSERT_EQ_INT(settle("PUT", "/webhdfs/v1/c?op=CREATE", 3000, &n, NULL), STL_NOT_APPLIED);
    ASSERT_EQ_INT(n, 2);
    set_script((answer){NULL, 200, fs_file(b1, sizeof b1, 10, "644")}, END, END); /* another file there */
    ASSERT_EQ_INT(settle("PUT", "/webhdfs/v1/c?op=CREATE", 3000, &n, NULL), STL_UNKNOWN);
    ASSERT_EQ_INT(n, 3);
    set_script((answer){NULL, 200, DIR_FS}, END, END);
    ASSERT_EQ_INT(settle("PUT", "/webhdfs/v1/d?op=MKDIRS", 0, &n, NULL), STL_APPLIED);
    set_script((answer){NULL, 200, fs_file(b1, sizeof b1, 10, "644")}, END, END); /* a file in the way */
    ASSERT_EQ_INT(settle("PUT", "/webhdfs/v1/d?op=MKDIRS", 0, &n, NULL), STL_NOT_APPLIED);
    set_script(ABSENT, END, END);
    ASSERT_EQ_INT(settle("DELETE", "/webhdfs/v1/d?op=DELETE", 0, &n, NULL), STL_APPLIED);
    ASSERT_EQ_INT(n, 1);
    set_script((answer){NULL, 200, DIR_FS}, END, END);
    ASSERT_EQ_INT(settle("DELETE", "/webhdfs/v1/d?op=DELETE&recursive=true", 0, &n, NULL), STL_NOT_APPLIED);
}

TEST(rename)
{
    char b1[512];
    int n;
    /* the source gone and the destination there: applied (never "false" for a rename Gen1 did) */
    set_script(ABSENT, END, END);
    pthread_mutex_lock(&mu);
    dst_path = "/b";
    dst_answer = (answer){NULL, 200, fs_file(b1, sizeof b1, 10, "644")};
    pthread_mutex_unlock(&mu);
    ASSERT_EQ_INT(settle("PUT", "/webhdfs/v1/a?op=RENAME&destination=/b", 0, &n, NULL), STL_APPLIED);
    ASSERT_EQ_INT(dst_looks, 1);
    /* both gone: neither outcome, then unknown */
    pthread_mutex_lock(&mu);
    dst_answer = ABSENT;
    pthread_mutex_unlock(&mu);
    ASSERT_EQ_INT(settle("PUT", "/webhdfs/v1/a?op=RENAME&destination=/b", 0, &n, NULL), STL_UNKNOWN);
    ASSERT_EQ_INT(n, 3);
    /* the source still there: not applied (the destination is not even asked) */
    set_script((answer){NULL, 200, fs_file(b1, sizeof b1, 10, "644")}, END, END);
    pthread_mutex_lock(&mu);
    dst_path = "/b";
    pthread_mutex_unlock(&mu);
    ASSERT_EQ_INT(settle("PUT", "/webhdfs/v1/a?op=RENAME&destination=/b", 0, &n, NULL), STL_NOT_APPLIED);
    ASSERT_EQ_INT(dst_looks, 0);
}

TEST(metadata)
{
    char b1[512];
    set_script((answer){NULL, 200, fs_file(b1, sizeof b1, 10, "600")}, END, END);
    ASSERT_EQ_INT(settle("PUT", "/webhdfs/v1/m?op=SETPERMISSION&permission=0600", 0, NULL, NULL), STL_APPLIED);
    ASSERT_EQ_INT(settle("PUT", "/webhdfs/v1/m?op=SETPERMISSION&permission=644", 0, NULL, NULL), STL_NOT_APPLIED);
    ASSERT_EQ_INT(settle("PUT", "/webhdfs/v1/m?op=SETOWNER&owner=alice", 0, NULL, NULL), STL_APPLIED);
    ASSERT_EQ_INT(settle("PUT", "/webhdfs/v1/m?op=SETOWNER&owner=alice&group=staff", 0, NULL, NULL), STL_NOT_APPLIED);
    ASSERT_EQ_INT(settle("PUT", "/webhdfs/v1/m?op=SETTIMES&modificationtime=1700000000000&accesstime=-1", 0, NULL,
                         NULL),
                  STL_APPLIED);
    ASSERT_EQ_INT(settle("PUT", "/webhdfs/v1/m?op=SETTIMES&modificationtime=5", 0, NULL, NULL), STL_NOT_APPLIED);
    /* an ACL change cannot be told from a FileStatus: unknown once the fence passed */
    int n;
    ASSERT_EQ_INT(settle("PUT", "/webhdfs/v1/m?op=SETACL&aclspec=user::rwx,group::r-x,other::---", 0, &n, NULL),
                  STL_UNKNOWN);
    ASSERT_EQ_INT(n, 2);
}

TEST(gen1_not_answering_the_checks)
{
    int n;
    set_script((answer){NULL, 500, "{}"}, END, END);
    ASSERT_EQ_INT(settle("DELETE", "/webhdfs/v1/d?op=DELETE", 0, &n, NULL), STL_UNKNOWN);
    ASSERT_EQ_INT(n, 3);
}

TEST(stop_ends_waiting_settles)
{
    char b1[512];
    set_script((answer){NULL, 200, fs_file(b1, sizeof b1, 1000, "644")}, END, END);
    whreq wr;
    whreq_err e;
    ASSERT_EQ_INT(whreq_parse("POST", "/webhdfs/v1/f?op=APPEND&offset=1000", &wr, &e), 0);
    stl *s = NULL;
    ASSERT_EQ_INT(stl_new(NULL, 600000, &s), 0); /* the second look would come in ten minutes */
    pthread_mutex_lock(&mu);
    looks = 0;
    have_verdict = false;
    pthread_mutex_unlock(&mu);
    ASSERT_EQ_INT(stl_start(s, &wr, 500, "Bearer x", on_verdict, NULL), 0);
    for (int i = 0; i < 200 && stl_pending(s) == 1; i++) {
        pthread_mutex_lock(&mu);
        int l = looks;
        pthread_mutex_unlock(&mu);
        if (l >= 1) break;
        struct timespec ts = {0, 5 * 1000000L};
        nanosleep(&ts, NULL);
    }
    double t0 = now_s();
    stl_stop(s);
    ASSERT_TRUE(now_s() - t0 < 5);
    pthread_mutex_lock(&mu);
    ASSERT_TRUE(have_verdict);
    ASSERT_EQ_INT(verdict, STL_UNKNOWN);
    pthread_mutex_unlock(&mu);
    ASSERT_EQ_INT(stl_start(s, &wr, 500, NULL, on_verdict, NULL), -ESHUTDOWN);
    whreq_free(&wr);
    stl_free(s);
}

TESTS(T(append_with_offset), T(append_without_offset), T(create_mkdirs_delete), T(rename), T(metadata),
      T(gen1_not_answering_the_checks), T(stop_ends_waiting_settles))
