/*
 * Tests for proxy/phase.c: three phase managers (three proxies of one fleet) on one Gen2 emulator, each
 * with a stand-in for the daemon's write path (hooks: hold, owed, enter, fence) and a writer thread
 * that keeps writing. Throughout every test a checker asserts the fleet's promise: no two proxies ever
 * take writes in different phases at the same moment. Switches forward, rollback, gen2-only, a switch
 * that cannot drain (aborted, nothing changed), a switcher that died mid-switch (ended at its deadline),
 * two switches at once, a stopped member, a restart, and the transitions refused. The same managers with
 * the record on local disk (no Gen2 at all): never fenced at a start, a switch and its rollback, a
 * timeout abort, a restart that keeps the phase, three managers on one directory.
 */
#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>

#include "fleet.h"
#include "gen2client.h"
#include "phase.h"
#include "temu.h"
#include "tharness.h"

#define NM 3

/* ---------- the stand-in write path ---------- */

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;

typedef struct fake {
    int idx;
    cfg_phase phase;          /* entered */
    bool entered, held, fenced;
    uint64_t owed;            /* records still owed to the next primary */
    bool stuck;               /* owed never drains */
    uint64_t writes[3];       /* writes taken per phase */
    phase_mgr *m;
} fake;

static fake g_f[NM];
static atomic_bool g_stop_writers;
static atomic_int g_violations;
static char g_violation[256];

static bool accepting(const fake *f) { return f->m && f->entered && !f->held && !f->fenced; }

static void hk_hold(void *ud, bool on)
{
    fake *f = ud;
    pthread_mutex_lock(&g_mu);
    f->held = on;
    pthread_mutex_unlock(&g_mu);
}

static uint64_t hk_owed(void *ud, cfg_phase to)
{
    (void)to;
    fake *f = ud;
    pthread_mutex_lock(&g_mu);
    if (!f->stuck) f->owed = f->owed > 64 ? f->owed / 4 : 0; /* draining, a few looks to empty */
    uint64_t o = f->owed;
    pthread_mutex_unlock(&g_mu);
    return o;
}

static int hk_enter(void *ud, cfg_phase p)
{
    fake *f = ud;
    pthread_mutex_lock(&g_mu);
    f->phase = p;
    f->entered = true;
    pthread_mutex_unlock(&g_mu);
    return 0;
}

static void hk_fence(void *ud, const char *reason)
{
    fake *f = ud;
    pthread_mutex_lock(&g_mu);
    f->fenced = reason != NULL;
    pthread_mutex_unlock(&g_mu);
}

static void *writer(void *arg)
{
    fake *f = arg;
    while (!atomic_load(&g_stop_writers)) {
        pthread_mutex_lock(&g_mu);
        if (accepting(f)) {
            f->writes[f->phase]++;
            if (f->phase != CFG_PHASE_GEN2_ONLY) f->owed++; /* each write is mirrored: owed until applied */
            for (int i = 0; i < NM; i++) {
                if (i == f->idx || !accepting(&g_f[i]) || g_f[i].phase == f->phase) continue;
                if (atomic_fetch_add(&g_violations, 1) == 0)
                    snprintf(g_violation, sizeof g_violation, "proxy %d writes in %s while proxy %d writes in %s",
                             f->idx, cfg_phase_name(f->phase), i, cfg_phase_name(g_f[i].phase));
            }
        }
        pthread_mutex_unlock(&g_mu);
        struct timespec ts = {0, 1000000L};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

/* ---------- the fleet ---------- */

typedef struct env {
    bool local;               /* the record on local disk (no emulator, no Gen2 client) */
    temu e;
    dp_config cfg;
    httpc *http;
    gen2c *c;
    char dir[200];
    pthread_t writers[NM];
} env;

static void start_member(env *v, int i, const char *id)
{
    phase_hooks h = {.ud = &g_f[i], .hold = hk_hold, .owed = hk_owed, .enter = hk_enter, .fence = hk_fence};
    char file[256], err[320];
    snprintf(file, sizeof file, "%s/phase-%d.json", v->dir, i);
    char local[256];
    snprintf(local, sizeof local, "%s/journal", v->dir);
    phase_opts o = {.fleet_fs = "lake", .member_id = id, .state_file = file, .initial = CFG_PHASE_GEN1_PRIMARY,
                    .poll_ms = 40, .switch_timeout_ms = 2500, .heartbeat_ms = 500};
    if (v->local) o.local_dir = local;
    phase_mgr *m = NULL;
    if (phase_start(v->local ? NULL : v->c, &o, &h, &m, err, sizeof err) != 0)
        TH_FAIL_AT("phase_start %d: %s", i, err);
    pthread_mutex_lock(&g_mu);
    g_f[i].m = m;
    pthread_mutex_unlock(&g_mu);
}

static void stop_member(int i)
{
    pthread_mutex_lock(&g_mu);
    phase_mgr *m = g_f[i].m;
    g_f[i].m = NULL; /* takes no write from now on */
    pthread_mutex_unlock(&g_mu);
    phase_free(m);
}

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(p);
}

static void start_all(env *v)
{
    for (int i = 0; i < NM; i++) {
        g_f[i].idx = i;
        char id[16];
        snprintf(id, sizeof id, "proxy-%d", i);
        start_member(v, i, id);
        pthread_create(&v->writers[i], NULL, writer, &g_f[i]);
    }
}

/* Three managers sharing one local directory, as processes of one host would: no Gen2 anywhere. */
static char g_tmp[256]; /* removed at exit too, so a failed test leaves nothing behind */

static void tmp_atexit(void)
{
    if (g_tmp[0]) nftw(g_tmp, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static void env_prepare_local(env *v)
{
    memset(v, 0, sizeof *v);
    memset(g_f, 0, sizeof g_f);
    atomic_store(&g_stop_writers, false);
    atomic_store(&g_violations, 0);
    v->local = true;
    snprintf(v->dir, sizeof v->dir, "%s/dp-phase-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(v->dir)) TH_FAIL_AT("mkdtemp: %s", strerror(errno));
    snprintf(g_tmp, sizeof g_tmp, "%s", v->dir);
    atexit(tmp_atexit);
}

static void env_open_local(env *v)
{
    env_prepare_local(v);
    start_all(v);
}

static void env_open(env *v)
{
    memset(v, 0, sizeof *v);
    memset(g_f, 0, sizeof g_f);
    atomic_store(&g_stop_writers, false);
    atomic_store(&g_violations, 0);
    char err[256];
    temu_start(&v->e, "gen2", NULL, NULL);
    snprintf(v->dir, sizeof v->dir, "%s/state", v->e.dir);
    mkdir(v->dir, 0700);
    dp_config *c = &v->cfg;
    memset(c, 0, sizeof *c);
    snprintf(c->gen2_endpoint, sizeof c->gen2_endpoint, "%s", v->e.url);
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
    if (httpc_start(0, &v->http, err, sizeof err) != 0) TH_FAIL_AT("httpc_start: %s", err);
    if (gen2c_new(c, v->http, &v->c, err, sizeof err) != 0) TH_FAIL_AT("gen2c_new: %s", err);
    httpc_sync s;
    httpc_sync_init(&s);
    gen2c_call call = {.method = "PUT", .fs = "lake", .path = "", .query = "resource=filesystem",
                       .out = HTTPC_BODY_MEMORY, .out_max = 1 << 20, .done = httpc_sync_done, .ud = &s};
    ASSERT_EQ_INT(gen2c_send(v->c, &call), 0);
    httpc_resp *r = httpc_sync_wait(&s);
    ASSERT_EQ_INT(r->status, 201);
    httpc_resp_free(r);
    free(r);
    start_all(v);
}

static void env_close(env *v)
{
    atomic_store(&g_stop_writers, true);
    for (int i = 0; i < NM; i++) pthread_join(v->writers[i], NULL);
    for (int i = 0; i < NM; i++) stop_member(i);
    if (v->local) {
        nftw(v->dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    } else {
        gen2c_stop(v->c);
        httpc_stop(v->http);
        gen2c_free(v->c);
        temu_stop(&v->e);
    }
    if (atomic_load(&g_violations)) TH_FAIL_AT("%d violation(s); first: %s", atomic_load(&g_violations), g_violation);
}

static uint64_t total_writes(int i, cfg_phase p)
{
    pthread_mutex_lock(&g_mu);
    uint64_t n = g_f[i].writes[p];
    pthread_mutex_unlock(&g_mu);
    return n;
}

/* Wait until every running member accepts writes in phase p (up to 5 s). */
static void wait_all_in(cfg_phase p)
{
    for (int k = 0; k < 500; k++) {
        bool all = true;
        pthread_mutex_lock(&g_mu);
        for (int i = 0; i < NM; i++)
            if (g_f[i].m && !(accepting(&g_f[i]) && g_f[i].phase == p)) all = false;
        pthread_mutex_unlock(&g_mu);
        if (all) return;
        usleep(10000);
    }
    TH_FAIL_AT("members not all writing in %s", cfg_phase_name(p));
}

static phase_set_result set(int i, cfg_phase to, bool force, char *reason, size_t cap)
{
    uint64_t pause = 0;
    return phase_set(g_f[i].m, to, force, reason, cap, &pause);
}

/* ---------- tests ---------- */

TEST(switch_forward_rollback_and_gen2_only_under_writes)
{
    env v;
    env_open(&v);
    char reason[512];
    wait_all_in(CFG_PHASE_GEN1_PRIMARY);
    usleep(100000);
    uint64_t pause = 0;
    ASSERT_EQ_INT(phase_set(g_f[0].m, CFG_PHASE_GEN2_PRIMARY, false, reason, sizeof reason, &pause), PHASE_SET_DONE);
    ASSERT_TRUE(pause > 0 && pause < 2500);
    wait_all_in(CFG_PHASE_GEN2_PRIMARY);
    for (int i = 0; i < NM; i++) ASSERT_EQ_INT(phase_current(g_f[i].m), CFG_PHASE_GEN2_PRIMARY);
    usleep(100000);
    for (int i = 0; i < NM; i++) ASSERT_TRUE(total_writes(i, CFG_PHASE_GEN2_PRIMARY) > 0);
    /* the same again: nothing to do */
    ASSERT_EQ_INT(set(1, CFG_PHASE_GEN2_PRIMARY, false, reason, sizeof reason), PHASE_SET_NOOP);
    /* rollback, started by another member */
    ASSERT_EQ_INT(set(1, CFG_PHASE_GEN1_PRIMARY, false, reason, sizeof reason), PHASE_SET_DONE);
    wait_all_in(CFG_PHASE_GEN1_PRIMARY);
    /* gen2-only only from gen2-primary */
    ASSERT_EQ_INT(set(2, CFG_PHASE_GEN2_ONLY, true, reason, sizeof reason), PHASE_SET_REFUSED);
    ASSERT_TRUE(strstr(reason, "gen2-primary first") != NULL);
    ASSERT_EQ_INT(set(2, CFG_PHASE_GEN2_PRIMARY, false, reason, sizeof reason), PHASE_SET_DONE);
    /* without a verify result (no cutover hook here) only --force enters gen2-only */
    ASSERT_EQ_INT(set(2, CFG_PHASE_GEN2_ONLY, false, reason, sizeof reason), PHASE_SET_REFUSED);
    ASSERT_TRUE(strstr(reason, "--force") != NULL);
    ASSERT_EQ_INT(set(2, CFG_PHASE_GEN2_ONLY, true, reason, sizeof reason), PHASE_SET_DONE);
    wait_all_in(CFG_PHASE_GEN2_ONLY);
    ASSERT_EQ_INT(set(0, CFG_PHASE_GEN1_PRIMARY, true, reason, sizeof reason), PHASE_SET_REFUSED);
    ASSERT_TRUE(strstr(reason, "no way back") != NULL);
    /* every proxy's phase and epoch survive on disk */
    json_t *st = phase_status(g_f[0].m);
    ASSERT_EQ_STR(json_string_value(json_object_get(st, "phase")), "gen2-only");
    ASSERT_EQ_INT(json_array_size(json_object_get(st, "members")), NM);
    json_decref(st);
    env_close(&v);
}

TEST(a_member_that_cannot_drain_aborts_the_switch)
{
    env v;
    env_open(&v);
    char reason[512];
    wait_all_in(CFG_PHASE_GEN1_PRIMARY);
    pthread_mutex_lock(&g_mu);
    g_f[2].stuck = true; /* its secondary is down: its backlog never drains */
    g_f[2].owed += 5;
    pthread_mutex_unlock(&g_mu);
    ASSERT_EQ_INT(set(0, CFG_PHASE_GEN2_PRIMARY, false, reason, sizeof reason), PHASE_SET_ABORTED);
    ASSERT_TRUE(strstr(reason, "timed out") && strstr(reason, "proxy-2"));
    wait_all_in(CFG_PHASE_GEN1_PRIMARY); /* nothing changed; writes flow again */
    for (int i = 0; i < NM; i++) ASSERT_EQ_INT(phase_current(g_f[i].m), CFG_PHASE_GEN1_PRIMARY);
    pthread_mutex_lock(&g_mu);
    g_f[2].stuck = false;
    pthread_mutex_unlock(&g_mu);
    ASSERT_EQ_INT(set(0, CFG_PHASE_GEN2_PRIMARY, false, reason, sizeof reason), PHASE_SET_DONE);
    wait_all_in(CFG_PHASE_GEN2_PRIMARY);
    env_close(&v);
}

TEST(a_switcher_that_died_is_ended_at_its_deadline)
{
    env v;
    env_open(&v);
    wait_all_in(CFG_PHASE_GEN1_PRIMARY);
    /* a proxy outside the test turned the record to SWITCHING and died */
    fleet_opts fo = {.fs = "lake", .member = "dead-switcher", .retries = 2};
    fleet *f = NULL;
    char err[320], etag[128];
    ASSERT_EQ_INT(fleet_new(v.c, &fo, &f, err, sizeof err), 0);
    fleet_rec r;
    ASSERT_EQ_INT(fleet_read(f, &r, etag, sizeof etag, err, sizeof err), 0);
    fleet_rec sw = {.epoch = r.epoch + 1, .phase = r.phase, .state = FLEET_SWITCHING, .to = CFG_PHASE_GEN2_PRIMARY,
                    .deadline_ms = 300};
    snprintf(sw.by, sizeof sw.by, "dead-switcher");
    ASSERT_EQ_INT(fleet_replace(f, &sw, etag, sizeof etag, err, sizeof err), 0);
    /* every member holds, then one of them ends it: back to writing in the old phase */
    usleep(200000);
    pthread_mutex_lock(&g_mu);
    bool held = g_f[0].held || g_f[1].held || g_f[2].held;
    pthread_mutex_unlock(&g_mu);
    ASSERT_TRUE(held);
    wait_all_in(CFG_PHASE_GEN1_PRIMARY);
    ASSERT_EQ_INT(fleet_read(f, &r, etag, sizeof etag, err, sizeof err), 0);
    ASSERT_EQ_INT(r.state, FLEET_STABLE);
    ASSERT_EQ_INT(r.phase, CFG_PHASE_GEN1_PRIMARY);
    ASSERT_TRUE(strstr(r.reason, "did not finish") != NULL);
    fleet_free(f);
    env_close(&v);
}

typedef struct setter {
    int i;
    phase_set_result res;
    char reason[512];
} setter;

static void *set_thread(void *arg)
{
    setter *s = arg;
    s->res = set(s->i, CFG_PHASE_GEN2_PRIMARY, false, s->reason, sizeof s->reason);
    return NULL;
}

TEST(two_switches_at_once_one_wins)
{
    env v;
    env_open(&v);
    wait_all_in(CFG_PHASE_GEN1_PRIMARY);
    setter a = {.i = 0}, b = {.i = 1};
    pthread_t ta, tb;
    pthread_create(&ta, NULL, set_thread, &a);
    pthread_create(&tb, NULL, set_thread, &b);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    int done = (a.res == PHASE_SET_DONE) + (b.res == PHASE_SET_DONE);
    ASSERT_EQ_INT(done, 1);
    phase_set_result other = a.res == PHASE_SET_DONE ? b.res : a.res;
    ASSERT_TRUE(other == PHASE_SET_BUSY || other == PHASE_SET_NOOP);
    wait_all_in(CFG_PHASE_GEN2_PRIMARY);
    env_close(&v);
}

TEST(stopped_members_restart_into_the_fleets_phase)
{
    env v;
    env_open(&v);
    char reason[512];
    wait_all_in(CFG_PHASE_GEN1_PRIMARY);
    /* a member stopped owing records is waited for (its records must reach Gen2 before anyone writes there) */
    atomic_store(&g_stop_writers, true);
    pthread_join(v.writers[2], NULL);
    pthread_mutex_lock(&g_mu);
    g_f[2].stuck = true;
    g_f[2].owed += 3;
    pthread_mutex_unlock(&g_mu);
    stop_member(2);
    ASSERT_EQ_INT(set(0, CFG_PHASE_GEN2_PRIMARY, false, reason, sizeof reason), PHASE_SET_ABORTED);
    ASSERT_TRUE(strstr(reason, "proxy-2 (stopped") != NULL);
    /* restarted, it drains and registers; then it is stopped owing nothing, and not waited for */
    pthread_mutex_lock(&g_mu);
    g_f[2].stuck = false;
    pthread_mutex_unlock(&g_mu);
    start_member(&v, 2, NULL); /* its id comes back from its state file */
    atomic_store(&g_stop_writers, false);
    for (int i = 0; i < 2; i++) pthread_join(v.writers[i], NULL);
    for (int i = 0; i < NM; i++) pthread_create(&v.writers[i], NULL, writer, &g_f[i]);
    wait_all_in(CFG_PHASE_GEN1_PRIMARY);
    json_t *st = phase_status(g_f[2].m);
    ASSERT_EQ_STR(json_string_value(json_object_get(st, "member")), "proxy-2");
    json_decref(st);
    atomic_store(&g_stop_writers, true);
    pthread_join(v.writers[2], NULL);
    pthread_mutex_lock(&g_mu);
    g_f[2].owed = 0;
    pthread_mutex_unlock(&g_mu);
    stop_member(2);
    ASSERT_EQ_INT(set(0, CFG_PHASE_GEN2_PRIMARY, false, reason, sizeof reason), PHASE_SET_DONE);
    /* restarted after the switch it missed: fenced until it has read the record, then in gen2-primary */
    pthread_mutex_lock(&g_mu);
    g_f[2].entered = false;
    pthread_mutex_unlock(&g_mu);
    start_member(&v, 2, NULL);
    pthread_mutex_lock(&g_mu);
    bool fenced_at_start = g_f[2].fenced;
    pthread_mutex_unlock(&g_mu);
    ASSERT_TRUE(fenced_at_start); /* it stopped cleanly: the fleet may have moved on */
    atomic_store(&g_stop_writers, false);
    for (int i = 0; i < 2; i++) pthread_join(v.writers[i], NULL);
    for (int i = 0; i < NM; i++) pthread_create(&v.writers[i], NULL, writer, &g_f[i]);
    wait_all_in(CFG_PHASE_GEN2_PRIMARY);
    ASSERT_EQ_INT(phase_current(g_f[2].m), CFG_PHASE_GEN2_PRIMARY);
    /* a member can be forgotten by another, never by itself */
    char err[320];
    ASSERT_EQ_INT(phase_forget(g_f[0].m, "proxy-0", err, sizeof err), -1);
    env_close(&v);
}

TEST(transition_rules)
{
    ASSERT_TRUE(phase_transition_refused(CFG_PHASE_GEN1_PRIMARY, CFG_PHASE_GEN2_PRIMARY) == NULL);
    ASSERT_TRUE(phase_transition_refused(CFG_PHASE_GEN2_PRIMARY, CFG_PHASE_GEN1_PRIMARY) == NULL);
    ASSERT_TRUE(phase_transition_refused(CFG_PHASE_GEN2_PRIMARY, CFG_PHASE_GEN2_ONLY) == NULL);
    ASSERT_TRUE(phase_transition_refused(CFG_PHASE_GEN1_PRIMARY, CFG_PHASE_GEN2_ONLY) != NULL);
    ASSERT_TRUE(phase_transition_refused(CFG_PHASE_GEN2_ONLY, CFG_PHASE_GEN2_PRIMARY) != NULL);
    ASSERT_TRUE(phase_transition_refused(CFG_PHASE_GEN2_ONLY, CFG_PHASE_GEN1_PRIMARY) != NULL);
}

/* ---------- the record on local disk ---------- */

/* Member i accepts writes in phase p right now (no waiting). */
static bool writing_in(int i, cfg_phase p)
{
    pthread_mutex_lock(&g_mu);
    bool ok = accepting(&g_f[i]) && g_f[i].phase == p;
    pthread_mutex_unlock(&g_mu);
    return ok;
}

TEST(local_record_switch_and_rollback_without_gen2)
{
    env v;
    env_open_local(&v);
    /* phase_start returned with the record read (made by the first) and followed: writes taken at once */
    for (int i = 0; i < NM; i++) ASSERT_TRUE(writing_in(i, CFG_PHASE_GEN1_PRIMARY));
    char reason[512];
    usleep(100000);
    uint64_t pause = 0;
    ASSERT_EQ_INT(phase_set(g_f[0].m, CFG_PHASE_GEN2_PRIMARY, false, reason, sizeof reason, &pause), PHASE_SET_DONE);
    ASSERT_TRUE(pause > 0 && pause < 2500);
    wait_all_in(CFG_PHASE_GEN2_PRIMARY);
    usleep(100000);
    for (int i = 0; i < NM; i++) ASSERT_TRUE(total_writes(i, CFG_PHASE_GEN2_PRIMARY) > 0);
    ASSERT_EQ_INT(set(2, CFG_PHASE_GEN1_PRIMARY, false, reason, sizeof reason), PHASE_SET_DONE);
    wait_all_in(CFG_PHASE_GEN1_PRIMARY);
    for (int i = 0; i < NM; i++) ASSERT_EQ_INT(phase_current(g_f[i].m), CFG_PHASE_GEN1_PRIMARY);
    ASSERT_EQ_INT(set(1, CFG_PHASE_GEN2_ONLY, true, reason, sizeof reason), PHASE_SET_REFUSED);
    json_t *st = phase_status(g_f[1].m);
    ASSERT_EQ_INT(json_array_size(json_object_get(st, "members")), NM);
    ASSERT_EQ_STR(json_string_value(json_object_get(json_object_get(st, "record"), "phase")), "gen1-primary");
    ASSERT_TRUE(!json_is_true(json_object_get(st, "fenced")));
    json_decref(st);
    env_close(&v);
}

TEST(local_record_timeout_aborts_and_nothing_changes)
{
    env v;
    env_open_local(&v);
    char reason[512];
    pthread_mutex_lock(&g_mu);
    g_f[1].stuck = true; /* its secondary is down: its backlog never drains */
    g_f[1].owed += 5;
    pthread_mutex_unlock(&g_mu);
    ASSERT_EQ_INT(set(0, CFG_PHASE_GEN2_PRIMARY, false, reason, sizeof reason), PHASE_SET_ABORTED);
    ASSERT_TRUE(strstr(reason, "timed out") && strstr(reason, "proxy-1"));
    wait_all_in(CFG_PHASE_GEN1_PRIMARY);
    for (int i = 0; i < NM; i++) ASSERT_EQ_INT(phase_current(g_f[i].m), CFG_PHASE_GEN1_PRIMARY);
    env_close(&v);
}

TEST(local_record_restart_keeps_the_phase)
{
    env v;
    env_open_local(&v);
    char reason[512];
    ASSERT_EQ_INT(set(0, CFG_PHASE_GEN2_PRIMARY, false, reason, sizeof reason), PHASE_SET_DONE);
    wait_all_in(CFG_PHASE_GEN2_PRIMARY);
    atomic_store(&g_stop_writers, true);
    for (int i = 0; i < NM; i++) pthread_join(v.writers[i], NULL);
    for (int i = 0; i < NM; i++) stop_member(i);
    /* started again with the configured phase gen1-primary: the record wins, and writes go at once */
    char file[256];
    snprintf(file, sizeof file, "%s/phase-2.json", v.dir);
    ASSERT_EQ_INT(unlink(file), 0); /* one of them even forgot its own state: the record still wins */
    for (int i = 0; i < NM; i++) {
        pthread_mutex_lock(&g_mu);
        g_f[i].entered = false;
        g_f[i].phase = CFG_PHASE_GEN1_PRIMARY;
        pthread_mutex_unlock(&g_mu);
    }
    atomic_store(&g_stop_writers, false);
    start_all(&v);
    for (int i = 0; i < NM; i++) ASSERT_TRUE(writing_in(i, CFG_PHASE_GEN2_PRIMARY));
    for (int i = 0; i < NM; i++) ASSERT_EQ_INT(phase_current(g_f[i].m), CFG_PHASE_GEN2_PRIMARY);
    usleep(100000);
    env_close(&v);
}

TEST(local_start_during_a_switch_holds_writes_never_fences)
{
    env v;
    env_prepare_local(&v);
    /* a switcher on this host turned the record to SWITCHING and died */
    char dir[256], err[320], etag[128];
    snprintf(dir, sizeof dir, "%s/journal", v.dir);
    fleet *f = NULL;
    ASSERT_EQ_INT(fleet_new_local(dir, "dead-switcher", &f, err, sizeof err), 0);
    fleet_rec sw = {.epoch = 1, .phase = CFG_PHASE_GEN1_PRIMARY, .state = FLEET_SWITCHING,
                    .to = CFG_PHASE_GEN2_PRIMARY, .deadline_ms = 300};
    snprintf(sw.by, sizeof sw.by, "dead-switcher");
    ASSERT_EQ_INT(fleet_create(f, &sw, etag, sizeof etag, err, sizeof err), 0);
    start_all(&v);
    for (int i = 0; i < NM; i++) {
        pthread_mutex_lock(&g_mu);
        bool held = g_f[i].held, fenced = g_f[i].fenced;
        pthread_mutex_unlock(&g_mu);
        ASSERT_TRUE(held && !fenced); /* writes wait for the switch; none is refused */
    }
    /* the members end it at its deadline: back to writing in the old phase */
    wait_all_in(CFG_PHASE_GEN1_PRIMARY);
    fleet_rec r;
    ASSERT_EQ_INT(fleet_read(f, &r, etag, sizeof etag, err, sizeof err), 0);
    ASSERT_EQ_INT(r.state, FLEET_STABLE);
    ASSERT_EQ_INT(r.phase, CFG_PHASE_GEN1_PRIMARY);
    ASSERT_TRUE(strstr(r.reason, "did not finish") != NULL);
    fleet_free(f);
    env_close(&v);
}

TESTS(T(switch_forward_rollback_and_gen2_only_under_writes), T(a_member_that_cannot_drain_aborts_the_switch),
      T(a_switcher_that_died_is_ended_at_its_deadline), T(two_switches_at_once_one_wins),
      T(stopped_members_restart_into_the_fleets_phase), T(transition_rules),
      T(local_record_switch_and_rollback_without_gen2), T(local_record_timeout_aborts_and_nothing_changes),
      T(local_record_restart_keeps_the_phase), T(local_start_during_a_switch_holds_writes_never_fences))
