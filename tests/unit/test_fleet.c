/*
 * Tests for proxy/fleet.c: the record and member codecs, and the record's compare-and-swap and the
 * members' reports against the real Gen2 emulator over loopback, including several threads racing to
 * change the record (no change may be lost: every won replace bumps the epoch exactly once); and the same
 * on the local backend (files on this host), with racers in two processes.
 */
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "fleet.h"
#include "gen2client.h"
#include "temu.h"
#include "tharness.h"

static void base_cfg(dp_config *c, const char *url)
{
    memset(c, 0, sizeof *c);
    snprintf(c->gen2_endpoint, sizeof c->gen2_endpoint, "%s", url);
    c->gen2_path_style = true;
    snprintf(c->gen2_account, sizeof c->gen2_account, "%s", TEMU_ACCOUNT);
    snprintf(c->gen2_version, sizeof c->gen2_version, "2021-06-08");
    c->gen2_connect_timeout_ms = 2000;
    c->gen2_timeout_ms = 15000;
    c->gen2_auth = CFG_AUTH_SHARED_KEY;
    c->gen2_account_key.value = (char *)TEMU_KEY;
    c->nmappings = 1;
    snprintf(c->mappings[0].gen1_prefix, sizeof c->mappings[0].gen1_prefix, "/");
    snprintf(c->mappings[0].filesystem, sizeof c->mappings[0].filesystem, "lake");
}

typedef struct env {
    temu e;
    dp_config cfg;
    httpc *http;
    gen2c *c;
} env;

static void env_open(env *v)
{
    char err[256];
    temu_start(&v->e, "gen2", NULL, NULL);
    base_cfg(&v->cfg, v->e.url);
    if (httpc_start(0, &v->http, err, sizeof err) != 0) TH_FAIL_AT("httpc_start: %s", err);
    if (gen2c_new(&v->cfg, v->http, &v->c, err, sizeof err) != 0) TH_FAIL_AT("gen2c_new: %s", err);
    httpc_sync s;
    httpc_sync_init(&s);
    gen2c_call call = {.method = "PUT", .fs = "lake", .path = "", .query = "resource=filesystem",
                       .out = HTTPC_BODY_MEMORY, .out_max = 1 << 20, .done = httpc_sync_done, .ud = &s};
    ASSERT_EQ_INT(gen2c_send(v->c, &call), 0);
    httpc_resp *r = httpc_sync_wait(&s);
    ASSERT_EQ_INT(r->status, 201);
    httpc_resp_free(r);
    free(r);
}

static void env_close(env *v)
{
    gen2c_stop(v->c);
    httpc_stop(v->http);
    gen2c_free(v->c);
    temu_stop(&v->e);
}

static fleet *open_member(env *v, const char *id)
{
    fleet_opts o = {.fs = "lake", .dir = ".dualpipe", .member = id, .retries = 2};
    fleet *f = NULL;
    char err[256];
    if (fleet_new(v->c, &o, &f, err, sizeof err) != 0) TH_FAIL_AT("fleet_new: %s", err);
    return f;
}

/* ---------- codecs ---------- */

TEST(record_roundtrip_and_refusals)
{
    fleet_rec r = {.epoch = 41, .phase = CFG_PHASE_GEN1_PRIMARY, .state = FLEET_SWITCHING,
                   .to = CFG_PHASE_GEN2_PRIMARY, .since_ms = 1796600000000, .deadline_ms = 30000};
    snprintf(r.by, sizeof r.by, "proxy-a");
    snprintf(r.reason, sizeof r.reason, "operator; asked\nfor it");
    char text[FLEET_REC_MAX];
    ASSERT_EQ_INT(fleet_rec_format(&r, text, sizeof text), 0);
    ASSERT_TRUE(strstr(text, "state=switching") && strstr(text, "to=gen2-primary"));
    ASSERT_TRUE(!strchr(strstr(text, "reason=") + 7, ';') && !strchr(text, '\n')); /* text kept to one field */
    fleet_rec back;
    ASSERT_EQ_INT(fleet_rec_parse(text, &back), 0);
    ASSERT_EQ_INT(back.epoch, 41);
    ASSERT_EQ_INT(back.phase, CFG_PHASE_GEN1_PRIMARY);
    ASSERT_EQ_INT(back.state, FLEET_SWITCHING);
    ASSERT_EQ_INT(back.to, CFG_PHASE_GEN2_PRIMARY);
    ASSERT_EQ_STR(back.by, "proxy-a");
    ASSERT_EQ_INT(back.deadline_ms, 30000);
    ASSERT_EQ_STR(back.reason, "operator_ asked_for it");
    /* stable: to is the phase itself; unknown fields (a newer writer) are ignored */
    ASSERT_EQ_INT(fleet_rec_parse("v=1;epoch=2;phase=gen2-only;state=stable;newfield=x", &back), 0);
    ASSERT_EQ_INT(back.to, CFG_PHASE_GEN2_ONLY);
    /* refused: another version, missing or bad required fields, a switch to the same phase */
    const char *bad[] = {"", "v=2;epoch=1;phase=gen1-primary;state=stable", "v=1;phase=gen1-primary;state=stable",
                         "v=1;epoch=1;state=stable", "v=1;epoch=1;phase=gen1-primary",
                         "v=1;epoch=x;phase=gen1-primary;state=stable", "v=1;epoch=1;phase=gen3;state=stable",
                         "v=1;epoch=1;phase=gen1-primary;state=odd", "v=1;epoch=1;phase=gen1-primary;state=switching",
                         "v=1;epoch=1;phase=gen1-primary;state=switching;to=gen1-primary",
                         "v=1;epoch=99999999999999999999;phase=gen1-primary;state=stable",
                         "v=1;epoch=1;phase=gen1-primary;state=stable;noequals", "=1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (fleet_rec_parse(bad[i], &back) == 0) TH_FAIL_AT("accepted: %s", bad[i]);
    }
}

TEST(member_roundtrip_and_ids)
{
    fleet_member m = {.epoch = 7, .state = FLEET_M_DRAINED, .heartbeat_ms = 123456, .pending = 0};
    char text[256];
    ASSERT_EQ_INT(fleet_member_format(&m, text, sizeof text), 0);
    fleet_member back;
    ASSERT_EQ_INT(fleet_member_parse(text, &back), 0);
    ASSERT_EQ_INT(back.epoch, 7);
    ASSERT_EQ_INT(back.state, FLEET_M_DRAINED);
    ASSERT_EQ_INT(back.heartbeat_ms, 123456);
    ASSERT_TRUE(fleet_member_parse("v=1;epoch=1;state=sleeping", &back) != 0);
    ASSERT_TRUE(fleet_member_parse("v=1;state=writing", &back) != 0);
    ASSERT_TRUE(fleet_id_ok("pod-7.ns_a") && !fleet_id_ok("") && !fleet_id_ok("..") && !fleet_id_ok("a/b") &&
                !fleet_id_ok("a b"));
    char longid[80];
    memset(longid, 'a', 64);
    longid[64] = '\0';
    ASSERT_TRUE(!fleet_id_ok(longid));
}

TEST(options_are_checked)
{
    char err[256];
    fleet *f = NULL;
    fleet_opts o = {.fs = "lake", .member = "bad id"};
    ASSERT_EQ_INT(fleet_new(NULL, &o, &f, err, sizeof err), -1);
    ASSERT_TRUE(strstr(err, "phase.member_id") != NULL);
    o = (fleet_opts){.fs = "", .member = "a"};
    ASSERT_EQ_INT(fleet_new(NULL, &o, &f, err, sizeof err), -1);
    ASSERT_TRUE(strstr(err, "phase.fleet_filesystem") != NULL);
    o = (fleet_opts){.fs = "lake", .dir = "/abs", .member = "a"};
    ASSERT_EQ_INT(fleet_new(NULL, &o, &f, err, sizeof err), -1);
    ASSERT_TRUE(strstr(err, "phase.fleet_dir") != NULL);
}

/* ---------- on the emulator ---------- */

TEST(record_create_read_replace)
{
    env v;
    env_open(&v);
    fleet *a = open_member(&v, "a"), *b = open_member(&v, "b");
    char err[256], etag[128], etag_b[128];
    fleet_rec r;
    ASSERT_EQ_INT(fleet_read(a, &r, etag, sizeof etag, err, sizeof err), 1); /* none yet */
    fleet_rec init = {.epoch = 1, .phase = CFG_PHASE_GEN1_PRIMARY, .state = FLEET_STABLE};
    snprintf(init.by, sizeof init.by, "a");
    ASSERT_EQ_INT(fleet_create(a, &init, etag, sizeof etag, err, sizeof err), 0);
    ASSERT_TRUE(etag[0] != '\0');
    init.epoch = 5;
    ASSERT_EQ_INT(fleet_create(b, &init, etag_b, sizeof etag_b, err, sizeof err), 1); /* a won */
    ASSERT_EQ_INT(fleet_read(b, &r, etag_b, sizeof etag_b, err, sizeof err), 0);
    ASSERT_EQ_INT(r.epoch, 1);
    ASSERT_EQ_STR(etag_b, etag);
    /* b changes it; a's change, made on the ETag it read before, loses */
    fleet_rec sw = {.epoch = 2, .phase = CFG_PHASE_GEN1_PRIMARY, .state = FLEET_SWITCHING,
                    .to = CFG_PHASE_GEN2_PRIMARY, .deadline_ms = 1000};
    snprintf(sw.by, sizeof sw.by, "b");
    ASSERT_EQ_INT(fleet_replace(b, &sw, etag_b, sizeof etag_b, err, sizeof err), 0);
    ASSERT_TRUE(strcmp(etag_b, etag) != 0);
    fleet_rec other = {.epoch = 2, .phase = CFG_PHASE_GEN2_ONLY, .state = FLEET_STABLE};
    ASSERT_EQ_INT(fleet_replace(a, &other, etag, sizeof etag, err, sizeof err), 1);
    ASSERT_EQ_INT(fleet_read(a, &r, etag, sizeof etag, err, sizeof err), 0);
    ASSERT_EQ_INT(r.epoch, 2);
    ASSERT_EQ_INT(r.state, FLEET_SWITCHING);
    ASSERT_EQ_STR(r.by, "b");
    /* a record that is not ours is reported, not taken for one */
    httpc_sync s;
    httpc_sync_init(&s);
    gen2c_call call = {.method = "PATCH", .fs = "lake", .path = ".dualpipe/phase", .query = "action=setProperties",
                       .headers = {"x-ms-properties: dualpipe_phase=Z2FyYmFnZQ=="}, .out = HTTPC_BODY_MEMORY,
                       .out_max = 1 << 20, .done = httpc_sync_done, .ud = &s};
    ASSERT_EQ_INT(gen2c_send(v.c, &call), 0);
    httpc_resp *resp = httpc_sync_wait(&s);
    ASSERT_EQ_INT(resp->status, 200);
    httpc_resp_free(resp);
    free(resp);
    ASSERT_EQ_INT(fleet_read(a, &r, etag, sizeof etag, err, sizeof err), -1);
    ASSERT_TRUE(strstr(err, "damaged") != NULL);
    fleet_free(a);
    fleet_free(b);
    env_close(&v);
}

typedef struct racer {
    env *v;
    char id[16];
    int won, rounds;
    char err[256];
} racer;

static void *race(void *arg)
{
    racer *x = arg;
    fleet *f = open_member(x->v, x->id);
    for (int i = 0; i < x->rounds; i++) {
        for (;;) {
            fleet_rec r;
            char etag[128];
            if (fleet_read(f, &r, etag, sizeof etag, x->err, sizeof x->err) != 0) goto out;
            r.epoch++;
            snprintf(r.by, sizeof r.by, "%s", x->id);
            int rc = fleet_replace(f, &r, etag, sizeof etag, x->err, sizeof x->err);
            if (rc < 0) goto out;
            if (rc == 0) {
                x->won++;
                break;
            }
        }
    }
    x->err[0] = '\0';
out:
    fleet_free(f);
    return NULL;
}

TEST(racing_replaces_lose_no_change)
{
    env v;
    env_open(&v);
    fleet *f = open_member(&v, "init");
    char err[256], etag[128];
    fleet_rec init = {.epoch = 0, .phase = CFG_PHASE_GEN1_PRIMARY, .state = FLEET_STABLE};
    ASSERT_EQ_INT(fleet_create(f, &init, etag, sizeof etag, err, sizeof err), 0);
    enum { N = 3, ROUNDS = 20 };
    racer rs[N];
    pthread_t th[N];
    for (int i = 0; i < N; i++) {
        rs[i] = (racer){.v = &v, .rounds = ROUNDS};
        snprintf(rs[i].id, sizeof rs[i].id, "m%d", i);
        pthread_create(&th[i], NULL, race, &rs[i]);
    }
    for (int i = 0; i < N; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < N; i++) {
        if (rs[i].err[0]) TH_FAIL_AT("racer %d: %s", i, rs[i].err);
        ASSERT_EQ_INT(rs[i].won, ROUNDS);
    }
    fleet_rec r;
    ASSERT_EQ_INT(fleet_read(f, &r, etag, sizeof etag, err, sizeof err), 0);
    ASSERT_EQ_INT(r.epoch, N * ROUNDS); /* every won change counted once: none overwrote another */
    fleet_free(f);
    env_close(&v);
}

TEST(members_report_list_and_remove)
{
    env v;
    env_open(&v);
    char err[256];
    fleet *f = open_member(&v, "x");
    fleet_member *ms = NULL;
    size_t n = 0, bad = 0;
    ASSERT_EQ_INT(fleet_member_list(f, &ms, &n, &bad, err, sizeof err), 0); /* nobody yet */
    ASSERT_EQ_INT(n, 0);
    enum { M = 12 };
    for (int i = M - 1; i >= 0; i--) {
        char id[16];
        snprintf(id, sizeof id, "pod-%02d", i);
        fleet *m = open_member(&v, id);
        fleet_member rep = {.epoch = 3, .state = FLEET_M_WRITING, .heartbeat_ms = 1000 + i};
        ASSERT_EQ_INT(fleet_member_put(m, &rep, err, sizeof err), 0);
        rep.state = i % 2 ? FLEET_M_DRAINED : FLEET_M_HOLDING; /* the second report replaces the first */
        rep.pending = (uint64_t)i;
        ASSERT_EQ_INT(fleet_member_put(m, &rep, err, sizeof err), 0);
        fleet_free(m);
    }
    ASSERT_EQ_INT(fleet_member_list(f, &ms, &n, &bad, err, sizeof err), 0);
    ASSERT_EQ_INT(n, M);
    ASSERT_EQ_INT(bad, 0);
    for (int i = 0; i < M; i++) {
        char id[16];
        snprintf(id, sizeof id, "pod-%02d", i);
        ASSERT_EQ_STR(ms[i].id, id); /* sorted */
        ASSERT_EQ_INT(ms[i].state, i % 2 ? FLEET_M_DRAINED : FLEET_M_HOLDING);
        ASSERT_EQ_INT(ms[i].pending, i);
        ASSERT_EQ_INT(ms[i].epoch, 3);
    }
    free(ms);
    ASSERT_EQ_INT(fleet_member_remove(f, "pod-03", err, sizeof err), 0);
    ASSERT_EQ_INT(fleet_member_remove(f, "pod-03", err, sizeof err), 0); /* already gone: fine */
    ASSERT_EQ_INT(fleet_member_remove(f, "../phase", err, sizeof err), -1);
    ASSERT_EQ_INT(fleet_member_list(f, &ms, &n, &bad, err, sizeof err), 0);
    ASSERT_EQ_INT(n, M - 1);
    free(ms);
    fleet_free(f);
    env_close(&v);
}

TEST(gen2_down_is_an_error_not_a_state)
{
    env v;
    env_open(&v);
    fleet *f = open_member(&v, "a");
    temu_stop(&v.e);
    char err[256], etag[128];
    fleet_rec r;
    ASSERT_EQ_INT(fleet_read(f, &r, etag, sizeof etag, err, sizeof err), -1);
    ASSERT_TRUE(strstr(err, "did not answer") != NULL);
    fleet_member m = {.epoch = 1};
    ASSERT_EQ_INT(fleet_member_put(f, &m, err, sizeof err), -1);
    fleet_free(f);
    gen2c_stop(v.c);
    httpc_stop(v.http);
    gen2c_free(v.c);
}

/* ---------- the local backend (a record on this host's disk) ---------- */

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(p);
}

static char g_tmp[256]; /* removed at exit too, so a failed test leaves nothing behind */

static void tmpdir_remove(const char *d) { nftw(d, rm_cb, 16, FTW_DEPTH | FTW_PHYS); }

static void tmpdir_atexit(void)
{
    if (g_tmp[0]) tmpdir_remove(g_tmp);
}

static void tmpdir_make(char *d, size_t cap)
{
    snprintf(d, cap, "%s/dp-fleet-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(d)) TH_FAIL_AT("mkdtemp: %s", strerror(errno));
    snprintf(g_tmp, sizeof g_tmp, "%s", d);
    atexit(tmpdir_atexit);
}

static fleet *open_local(const char *dir, const char *id)
{
    fleet *f = NULL;
    char err[256];
    if (fleet_new_local(dir, id, &f, err, sizeof err) != 0) TH_FAIL_AT("fleet_new_local: %s", err);
    ASSERT_TRUE(fleet_is_local(f));
    return f;
}

/* Entries of dir whose name holds '~' (temporary files a write left behind). */
static int leftovers(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) n += strchr(de->d_name, '~') != NULL;
    closedir(d);
    return n;
}

TEST(local_record_codec)
{
    fleet_rec r = {.epoch = 9, .phase = CFG_PHASE_GEN2_PRIMARY, .state = FLEET_STABLE, .to = CFG_PHASE_GEN2_PRIMARY};
    char text[FLEET_REC_MAX + 256], etag[128];
    ASSERT_EQ_INT(fleet_local_format(&r, "\"9-00ff00ff\"", text, sizeof text), 0);
    ASSERT_TRUE(strncmp(text, "etag=\"9-00ff00ff\"\nv=1;epoch=9;", 29) == 0);
    fleet_rec back;
    ASSERT_EQ_INT(fleet_local_parse(text, &back, etag, sizeof etag), 0);
    ASSERT_EQ_STR(etag, "\"9-00ff00ff\"");
    ASSERT_EQ_INT(back.epoch, 9);
    ASSERT_EQ_INT(back.phase, CFG_PHASE_GEN2_PRIMARY);
    ASSERT_EQ_INT(fleet_local_format(&r, "", text, sizeof text), -1);
    ASSERT_EQ_INT(fleet_local_format(&r, "a\nb", text, sizeof text), -1);
    ASSERT_EQ_INT(fleet_local_format(&r, "x", text, 20), -1);
    const char *bad[] = {"", "etag=x", "etag=\nv=1;epoch=1;phase=gen1-primary;state=stable\n",
                         "tag=x\nv=1;epoch=1;phase=gen1-primary;state=stable\n",
                         "etag=x\nv=1;epoch=1;phase=gen1-primary;state=stable", /* torn: no final newline */
                         "etag=x\nv=1;epoch=1;phase=gen1-primary;state=stable\nmore\n",
                         "etag=x\r\nv=1;epoch=1;phase=gen1-primary;state=stable\n", "etag=x\ngarbage\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (fleet_local_parse(bad[i], &back, etag, sizeof etag) == 0) TH_FAIL_AT("accepted: %s", bad[i]);
}

TEST(local_options_are_checked)
{
    char dir[256], err[256], file[300];
    tmpdir_make(dir, sizeof dir);
    fleet *f = NULL;
    ASSERT_EQ_INT(fleet_new_local(dir, "bad id", &f, err, sizeof err), -1);
    ASSERT_TRUE(strstr(err, "phase.member_id") != NULL);
    ASSERT_EQ_INT(fleet_new_local("", "a", &f, err, sizeof err), -1);
    snprintf(file, sizeof file, "%s/plain", dir);
    FILE *fp = fopen(file, "w");
    ASSERT_TRUE(fp != NULL);
    fclose(fp);
    ASSERT_EQ_INT(fleet_new_local(file, "a", &f, err, sizeof err), -1); /* a file, not a directory */
    ASSERT_TRUE(strstr(err, "cannot make the directory") != NULL);
    /* a missing directory is made (0700), with fleet/ and fleet/members/ in it */
    snprintf(file, sizeof file, "%s/journal", dir);
    f = open_local(file, "a");
    struct stat st;
    snprintf(file, sizeof file, "%s/journal/fleet/members", dir);
    ASSERT_EQ_INT(stat(file, &st), 0);
    ASSERT_TRUE(S_ISDIR(st.st_mode) && (st.st_mode & 0777) == 0700);
    fleet_free(f);
    tmpdir_remove(dir);
}

TEST(local_record_create_read_replace)
{
    char dir[256], err[256], etag[128], etag_b[128], path[400];
    tmpdir_make(dir, sizeof dir);
    fleet *a = open_local(dir, "a"), *b = open_local(dir, "b");
    fleet_rec r;
    ASSERT_EQ_INT(fleet_read(a, &r, etag, sizeof etag, err, sizeof err), 1); /* none yet */
    fleet_rec init = {.epoch = 1, .phase = CFG_PHASE_GEN1_PRIMARY, .state = FLEET_STABLE};
    snprintf(init.by, sizeof init.by, "a");
    ASSERT_EQ_INT(fleet_create(a, &init, etag, sizeof etag, err, sizeof err), 0);
    ASSERT_TRUE(etag[0] == '"');
    init.epoch = 5;
    ASSERT_EQ_INT(fleet_create(b, &init, etag_b, sizeof etag_b, err, sizeof err), 1); /* a won */
    ASSERT_EQ_INT(fleet_read(b, &r, etag_b, sizeof etag_b, err, sizeof err), 0);
    ASSERT_EQ_INT(r.epoch, 1);
    ASSERT_EQ_STR(r.by, "a");
    ASSERT_EQ_STR(etag_b, etag);
    /* b changes it; a's change, made on the ETag it read before, loses */
    fleet_rec sw = {.epoch = 2, .phase = CFG_PHASE_GEN1_PRIMARY, .state = FLEET_SWITCHING,
                    .to = CFG_PHASE_GEN2_PRIMARY, .deadline_ms = 1000};
    snprintf(sw.by, sizeof sw.by, "b");
    ASSERT_EQ_INT(fleet_replace(b, &sw, etag_b, sizeof etag_b, err, sizeof err), 0);
    ASSERT_TRUE(strcmp(etag_b, etag) != 0);
    fleet_rec other = {.epoch = 2, .phase = CFG_PHASE_GEN2_ONLY, .state = FLEET_STABLE};
    char stale[128];
    snprintf(stale, sizeof stale, "%s", etag);
    ASSERT_EQ_INT(fleet_replace(a, &other, etag, sizeof etag, err, sizeof err), 1);
    ASSERT_EQ_INT(fleet_read(a, &r, etag, sizeof etag, err, sizeof err), 0);
    ASSERT_EQ_INT(r.epoch, 2);
    ASSERT_EQ_INT(r.state, FLEET_SWITCHING);
    ASSERT_EQ_INT(r.to, CFG_PHASE_GEN2_PRIMARY);
    ASSERT_EQ_STR(etag, etag_b);
    /* the same content written again still gets a new ETag: a replace on the old one loses */
    ASSERT_EQ_INT(fleet_replace(a, &r, etag, sizeof etag, err, sizeof err), 0);
    ASSERT_TRUE(strcmp(etag, etag_b) != 0);
    ASSERT_EQ_INT(fleet_replace(b, &r, etag_b, sizeof etag_b, err, sizeof err), 1);
    ASSERT_EQ_INT(fleet_replace(b, &r, stale, sizeof stale, err, sizeof err), 1);
    /* a handle opened later (a restart) reads what was kept */
    fleet_free(b);
    b = open_local(dir, "b");
    ASSERT_EQ_INT(fleet_read(b, &r, etag_b, sizeof etag_b, err, sizeof err), 0);
    ASSERT_EQ_STR(etag_b, etag);
    ASSERT_EQ_INT(r.epoch, 2);
    snprintf(path, sizeof path, "%s/fleet", dir);
    ASSERT_EQ_INT(leftovers(path), 0);
    /* a record that is not ours is reported, and never written over */
    snprintf(path, sizeof path, "%s/fleet/phase", dir);
    FILE *fp = fopen(path, "w");
    ASSERT_TRUE(fp != NULL);
    fputs("etag=\"1-0\"\ngarbage\n", fp);
    fclose(fp);
    ASSERT_EQ_INT(fleet_read(a, &r, etag, sizeof etag, err, sizeof err), -1);
    ASSERT_TRUE(strstr(err, "damaged") != NULL);
    ASSERT_EQ_INT(fleet_replace(a, &other, stale, sizeof stale, err, sizeof err), -1);
    ASSERT_EQ_INT(fleet_create(a, &other, etag, sizeof etag, err, sizeof err), -1);
    fp = fopen(path, "r");
    char line[64] = "";
    ASSERT_TRUE(fp && fgets(line, sizeof line, fp) && fgets(line, sizeof line, fp));
    fclose(fp);
    ASSERT_EQ_STR(line, "garbage\n");
    fleet_free(a);
    fleet_free(b);
    tmpdir_remove(dir);
}

typedef struct lracer {
    const char *dir;
    char id[16];
    int won, rounds;
    char err[256];
} lracer;

static void *lrace(void *arg)
{
    lracer *x = arg;
    fleet *f = open_local(x->dir, x->id);
    for (int i = 0; i < x->rounds; i++) {
        for (;;) {
            fleet_rec r;
            char etag[128];
            if (fleet_read(f, &r, etag, sizeof etag, x->err, sizeof x->err) != 0) goto out;
            r.epoch++;
            snprintf(r.by, sizeof r.by, "%s", x->id);
            int rc = fleet_replace(f, &r, etag, sizeof etag, x->err, sizeof x->err);
            if (rc < 0) goto out;
            if (rc == 0) {
                x->won++;
                break;
            }
        }
    }
    x->err[0] = '\0';
out:
    fleet_free(f);
    return NULL;
}

/* Racers in two processes, each with threads and a handle per thread: every won change counted once. */
static int lrace_all(const char *dir, const char *tag)
{
    enum { N = 3, ROUNDS = 15 };
    lracer rs[N];
    pthread_t th[N];
    for (int i = 0; i < N; i++) {
        rs[i] = (lracer){.dir = dir, .rounds = ROUNDS};
        snprintf(rs[i].id, sizeof rs[i].id, "%s%d", tag, i);
        pthread_create(&th[i], NULL, lrace, &rs[i]);
    }
    for (int i = 0; i < N; i++) pthread_join(th[i], NULL);
    int won = 0;
    for (int i = 0; i < N; i++) {
        if (rs[i].err[0]) fprintf(stderr, "racer %s: %s\n", rs[i].id, rs[i].err);
        won += rs[i].err[0] ? 0 : rs[i].won;
    }
    return won;
}

TEST(local_racing_replaces_across_processes_lose_no_change)
{
    char dir[256], err[256], etag[128];
    tmpdir_make(dir, sizeof dir);
    fleet *f = open_local(dir, "init");
    fleet_rec init = {.epoch = 0, .phase = CFG_PHASE_GEN1_PRIMARY, .state = FLEET_STABLE};
    ASSERT_EQ_INT(fleet_create(f, &init, etag, sizeof etag, err, sizeof err), 0);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) _exit(lrace_all(dir, "c") == 45 ? 0 : 1);
    ASSERT_TRUE(pid > 0);
    int won = lrace_all(dir, "p");
    int st = 0;
    waitpid(pid, &st, 0);
    ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    ASSERT_EQ_INT(won, 45);
    fleet_rec r;
    ASSERT_EQ_INT(fleet_read(f, &r, etag, sizeof etag, err, sizeof err), 0);
    ASSERT_EQ_INT(r.epoch, 90); /* none overwrote another */
    char path[300];
    snprintf(path, sizeof path, "%s/fleet", dir);
    ASSERT_EQ_INT(leftovers(path), 0);
    fleet_free(f);
    tmpdir_remove(dir);
}

TEST(local_members_report_list_and_remove)
{
    char dir[256], err[256], path[400];
    tmpdir_make(dir, sizeof dir);
    fleet *f = open_local(dir, "x");
    fleet_member *ms = NULL;
    size_t n = 0, bad = 0;
    ASSERT_EQ_INT(fleet_member_list(f, &ms, &n, &bad, err, sizeof err), 0); /* nobody yet */
    ASSERT_EQ_INT(n, 0);
    enum { M = 5 };
    for (int i = M - 1; i >= 0; i--) {
        char id[16];
        snprintf(id, sizeof id, "pod-%02d", i);
        fleet *m = open_local(dir, id);
        fleet_member rep = {.epoch = 3, .state = FLEET_M_WRITING, .heartbeat_ms = 1000 + i};
        ASSERT_EQ_INT(fleet_member_put(m, &rep, err, sizeof err), 0);
        rep.state = i % 2 ? FLEET_M_DRAINED : FLEET_M_HOLDING; /* the second report replaces the first */
        rep.pending = (uint64_t)i;
        ASSERT_EQ_INT(fleet_member_put(m, &rep, err, sizeof err), 0);
        fleet_free(m);
    }
    /* what is not a report: a temporary file left by a crash (skipped), a damaged one (counted) */
    snprintf(path, sizeof path, "%s/fleet/members/pod-00~abc123", dir);
    FILE *fp = fopen(path, "w");
    ASSERT_TRUE(fp != NULL);
    fclose(fp);
    snprintf(path, sizeof path, "%s/fleet/members/zz", dir);
    fp = fopen(path, "w");
    ASSERT_TRUE(fp != NULL);
    fputs("v=1;state=what\n", fp);
    fclose(fp);
    ASSERT_EQ_INT(fleet_member_list(f, &ms, &n, &bad, err, sizeof err), 0);
    ASSERT_EQ_INT(n, M);
    ASSERT_EQ_INT(bad, 1);
    for (int i = 0; i < M; i++) {
        char id[16];
        snprintf(id, sizeof id, "pod-%02d", i);
        ASSERT_EQ_STR(ms[i].id, id); /* sorted */
        ASSERT_EQ_INT(ms[i].state, i % 2 ? FLEET_M_DRAINED : FLEET_M_HOLDING);
        ASSERT_EQ_INT(ms[i].pending, i);
        ASSERT_EQ_INT(ms[i].heartbeat_ms, 1000 + i);
    }
    free(ms);
    ASSERT_EQ_INT(fleet_member_remove(f, "pod-03", err, sizeof err), 0);
    ASSERT_EQ_INT(fleet_member_remove(f, "pod-03", err, sizeof err), 0); /* already gone: fine */
    ASSERT_EQ_INT(fleet_member_remove(f, "../phase", err, sizeof err), -1);
    ASSERT_EQ_INT(fleet_member_list(f, &ms, &n, &bad, err, sizeof err), 0);
    ASSERT_EQ_INT(n, M - 1);
    free(ms);
    fleet_free(f);
    tmpdir_remove(dir);
}

TESTS(T(record_roundtrip_and_refusals), T(member_roundtrip_and_ids), T(options_are_checked),
      T(record_create_read_replace), T(racing_replaces_lose_no_change), T(members_report_list_and_remove),
      T(gen2_down_is_an_error_not_a_state), T(local_record_codec), T(local_options_are_checked),
      T(local_record_create_read_replace), T(local_racing_replaces_across_processes_lose_no_change),
      T(local_members_report_list_and_remove))
