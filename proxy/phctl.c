/*
 * phctl: the daemon's phase control (phctl.h): the phase manager's hooks on the front and the
 * pipeline, the admin endpoints, and a thread per switch asked through them (a switch blocks for up
 * to phase.switch_timeout_ms, the admin listener must not).
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ajson.h"
#include "log.h"
#include "phase.h"
#include "phctl.h"
#include "urlcodec.h"

#define PHCTL_SETTLE_MS 5000 /* phctl_start waits this long for a fleet member's first read */
#define PHCTL_STARTING "the proxy is starting: its phase is not settled yet"

typedef struct sw_info {
    uint64_t id;          /* 0: none asked yet */
    cfg_phase to;
    bool force;
    bool running;
    phase_set_result res;
    char reason[600];
    uint64_t pause_ms;
    int64_t started_ms, ended_ms; /* wall clock */
} sw_info;

struct phctl {
    const dp_config *cfg;
    pipeline *p;
    front *f;
    vrec *v;
    phase_mgr *mgr;
    /* the fence the front shows: the manager's, or "starting" until phctl_start ends */
    pthread_mutex_t fmu;
    bool starting;
    char mgr_fence[400];
    bool mgr_fenced;
    /* the last switch asked here, and its thread */
    pthread_mutex_t smu;
    sw_info sw;
    pthread_t th;
    bool th_live;
    bool stopped;         /* phctl_stop ran: no new switch */
    metrics_counter *mx_switch[PHASE_SET_ERROR + 1];
    metrics_gauge *mx_phase[CFG_PHASE_GEN2_ONLY + 1];
};

static const char *const set_names[] = {"done", "noop", "refused", "busy", "aborted", "error"};

static int64_t wall_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static bool phase_parse(const char *s, cfg_phase *out)
{
    for (int i = CFG_PHASE_GEN1_PRIMARY; i <= CFG_PHASE_GEN2_ONLY; i++)
        if (strcmp(s, cfg_phase_name((cfg_phase)i)) == 0) {
            *out = (cfg_phase)i;
            return true;
        }
    return false;
}

/* ---- hooks (the manager's thread, or phctl_start) ---- */

static void apply_fence(phctl *c)
{
    /* fmu held */
    if (c->starting) front_fence(c->f, PHCTL_STARTING);
    else front_fence(c->f, c->mgr_fenced ? c->mgr_fence : NULL);
}

static void hook_fence(void *ud, const char *reason)
{
    phctl *c = ud;
    pthread_mutex_lock(&c->fmu);
    c->mgr_fenced = reason != NULL;
    snprintf(c->mgr_fence, sizeof c->mgr_fence, "%s", reason ? reason : "");
    apply_fence(c);
    pthread_mutex_unlock(&c->fmu);
}

static void hook_hold(void *ud, bool on)
{
    phctl *c = ud;
    front_hold(c->f, on);
}

static uint64_t hook_owed(void *ud, cfg_phase to)
{
    phctl *c = ud;
    return pipe_owed(c->p, to != CFG_PHASE_GEN2_PRIMARY);
}

static int hook_enter(void *ud, cfg_phase ph)
{
    phctl *c = ud;
    int rc = pipe_set_phase(c->p, ph);
    if (rc != 0) {
        LOGE("msg=\"cannot enter phase\" phase=%s err=\"%s\"", cfg_phase_name(ph),
             rc == -ENOTSUP ? "no Gen1 is configured (gen1.endpoint) to mirror to" : strerror(-rc));
        return -1;
    }
    front_set_phase(c->f, ph);
    for (int i = 0; i <= CFG_PHASE_GEN2_ONLY; i++) metrics_gauge_set(c->mx_phase[i], i == (int)ph ? 1 : 0);
    return 0;
}

static int hook_cutover_ok(void *ud, char *why, size_t cap)
{
    phctl *c = ud;
    return vrec_cutover_ok(c->v, why, cap);
}

/* ---- life cycle ---- */

int phctl_start(const dp_config *cfg, gen2c *g2, pipeline *p, front *f, vrec *v, metrics *m, phctl **out,
                char *err, size_t errlen)
{
    *out = NULL;
    phctl *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    c->cfg = cfg;
    c->p = p;
    c->f = f;
    c->v = v;
    c->starting = true;
    pthread_mutex_init(&c->fmu, NULL);
    pthread_mutex_init(&c->smu, NULL);
    for (int i = 0; i <= PHASE_SET_ERROR; i++) {
        char l[48];
        snprintf(l, sizeof l, "result=\"%s\"", set_names[i]);
        c->mx_switch[i] = metrics_counter_get(m, "dualpipe_phase_switches_total",
                                              "Phase switches asked of this proxy, by how they ended.", l);
    }
    for (int i = 0; i <= CFG_PHASE_GEN2_ONLY; i++) {
        char l[48];
        snprintf(l, sizeof l, "phase=\"%s\"", cfg_phase_name((cfg_phase)i));
        c->mx_phase[i] = metrics_gauge_get(m, "dualpipe_phase", "1 for the phase requests run in now.", l);
    }

    char jdir[1100], state[1200];
    if (cfg->journal_dir[0]) snprintf(jdir, sizeof jdir, "%s", cfg->journal_dir);
    else snprintf(jdir, sizeof jdir, "%s/journal", cfg->spool_dir);
    snprintf(state, sizeof state, "%s/phase.json", jdir);
    const char *fs = cfg->phase_fleet_fs[0] ? cfg->phase_fleet_fs : cfg->mappings[0].filesystem;
    phase_opts o = {.fleet_fs = fs, .fleet_dir = cfg->phase_fleet_dir, .member_id = cfg->phase_member_id,
                    .state_file = state, .initial = cfg->phase, .poll_ms = cfg->phase_poll_ms,
                    .switch_timeout_ms = cfg->phase_switch_timeout_ms, .heartbeat_ms = cfg->phase_heartbeat_ms,
                    .local_dir = cfg->phase_fleet ? NULL : jdir};
    phase_hooks h = {.ud = c, .hold = hook_hold, .owed = hook_owed, .enter = hook_enter, .fence = hook_fence,
                     .cutover_ok = v ? hook_cutover_ok : NULL};
    if (phase_start(cfg->phase_fleet ? g2 : NULL, &o, &h, &c->mgr, err, errlen) != 0) {
        phctl_free(c);
        return -1;
    }
    /* a fleet member reads the record on the manager's thread: give it a moment, so a proxy whose Gen2
     * answers does not refuse its first writes (past PHCTL_SETTLE_MS it starts fenced, and says so) */
    for (int i = 0; cfg->phase_fleet && i < PHCTL_SETTLE_MS / 10; i++) {
        pthread_mutex_lock(&c->fmu);
        bool fenced = c->mgr_fenced;
        pthread_mutex_unlock(&c->fmu);
        if (!fenced) break;
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    pthread_mutex_lock(&c->fmu);
    c->starting = false;
    apply_fence(c);
    if (c->mgr_fenced) LOGW("msg=\"started fenced: writes get 503 until the fleet's phase record is read\" reason=\"%s\"",
                            c->mgr_fence);
    pthread_mutex_unlock(&c->fmu);
    LOGI("msg=\"phase control started\" phase=%s fleet=%s", cfg_phase_name(phase_current(c->mgr)),
         cfg->phase_fleet ? "gen2" : "local");
    *out = c;
    return 0;
}

static void join_switch(phctl *c)
{
    pthread_mutex_lock(&c->smu);
    bool live = c->th_live;
    c->th_live = false;
    pthread_mutex_unlock(&c->smu);
    if (live) pthread_join(c->th, NULL);
}

void phctl_stop(phctl *c)
{
    if (!c) return;
    pthread_mutex_lock(&c->smu);
    c->stopped = true;
    pthread_mutex_unlock(&c->smu);
    join_switch(c);
    phase_stop(c->mgr);
}

void phctl_free(phctl *c)
{
    if (!c) return;
    phctl_stop(c);
    phase_free(c->mgr);
    pthread_mutex_destroy(&c->fmu);
    pthread_mutex_destroy(&c->smu);
    free(c);
}

/* ---- admin ---- */

/* smu held */
static json_t *sw_json(const sw_info *s)
{
    if (s->id == 0) return json_null();
    return json_pack("{s:I,s:s,s:b,s:s,s:s,s:I,s:I,s:I}", "id", (json_int_t)s->id, "to", cfg_phase_name(s->to),
                     "force", s->force, "state", s->running ? "running" : set_names[s->res], "reason", s->reason,
                     "pause_ms", (json_int_t)s->pause_ms, "started_ms", (json_int_t)s->started_ms, "ended_ms",
                     (json_int_t)s->ended_ms);
}

static void *switch_main(void *arg)
{
    phctl *c = arg;
    pthread_mutex_lock(&c->smu);
    cfg_phase to = c->sw.to;
    bool force = c->sw.force;
    pthread_mutex_unlock(&c->smu);
    char reason[600];
    uint64_t pause = 0;
    phase_set_result r = phase_set(c->mgr, to, force, reason, sizeof reason, &pause);
    metrics_inc(c->mx_switch[r]);
    LOGI("msg=\"phase switch asked through the admin API ended\" to=%s force=%d result=%s pause_ms=%" PRIu64
         " reason=\"%s\"",
         cfg_phase_name(to), force ? 1 : 0, set_names[r], pause, reason);
    pthread_mutex_lock(&c->smu);
    c->sw.running = false;
    c->sw.res = r;
    snprintf(c->sw.reason, sizeof c->sw.reason, "%s", reason);
    c->sw.pause_ms = pause;
    c->sw.ended_ms = wall_ms();
    pthread_mutex_unlock(&c->smu);
    return NULL;
}

static unsigned do_set(phctl *c, const char *query, dbuf *out)
{
    dbuf v;
    dbuf_init(&v, 256);
    int rc = url_query_get(query, "to", &v);
    cfg_phase to = CFG_PHASE_GEN1_PRIMARY;
    bool ok = rc == 1 && phase_parse(v.data, &to);
    bool force = url_query_get(query, "force", &v) == 1 && strcmp(v.data, "1") == 0;
    dbuf_free(&v);
    if (!ok) return ajson_error(out, 400, "to must be one of gen1-primary, gen2-primary, gen2-only");
    pthread_mutex_lock(&c->smu);
    if (c->stopped) {
        pthread_mutex_unlock(&c->smu);
        return ajson_error(out, 503, "the proxy is stopping");
    }
    if (c->sw.running) {
        json_t *o = json_pack("{s:s,s:o}", "error", "a switch asked of this proxy is still running", "switch",
                              sw_json(&c->sw));
        pthread_mutex_unlock(&c->smu);
        return ajson_reply(out, 409, o);
    }
    bool live = c->th_live;
    c->th_live = false;
    pthread_mutex_unlock(&c->smu);
    if (live) pthread_join(c->th, NULL); /* the previous switch's thread has ended (running was false) */
    pthread_mutex_lock(&c->smu);
    uint64_t id = c->sw.id + 1;
    c->sw = (sw_info){.id = id, .to = to, .force = force, .running = true, .started_ms = wall_ms()};
    if (pthread_create(&c->th, NULL, switch_main, c) != 0) {
        c->sw.running = false;
        c->sw.res = PHASE_SET_ERROR;
        snprintf(c->sw.reason, sizeof c->sw.reason, "cannot start a thread for the switch");
        pthread_mutex_unlock(&c->smu);
        return ajson_error(out, 503, "cannot start a thread for the switch");
    }
    c->th_live = true;
    json_t *o = json_pack("{s:o}", "switch", sw_json(&c->sw));
    pthread_mutex_unlock(&c->smu);
    LOGI("msg=\"phase switch asked through the admin API\" to=%s force=%d id=%" PRIu64, cfg_phase_name(to),
         force ? 1 : 0, id);
    return ajson_reply(out, 202, o);
}

static unsigned do_forget(phctl *c, const char *query, dbuf *out)
{
    dbuf v;
    dbuf_init(&v, 128);
    int rc = url_query_get(query, "member", &v);
    char id[128];
    snprintf(id, sizeof id, "%s", rc == 1 ? v.data : "");
    dbuf_free(&v);
    if (rc != 1 || !id[0]) return ajson_error(out, 400, "member is required (an id from GET /admin/phase)");
    char err[320];
    if (phase_forget(c->mgr, id, err, sizeof err) != 0) return ajson_error(out, 400, "%s", err);
    LOGI("msg=\"fleet member forgotten\" member=\"%s\"", id);
    return ajson_reply(out, 200, json_pack("{s:s}", "forgotten", id));
}

unsigned phctl_handle(phctl *c, const char *url, bool post, const char *query, dbuf *out, const char **allow)
{
    if (strcmp(url, "/admin/phase") == 0) {
        if (post) {
            *allow = "GET, HEAD";
            dbuf_reset(out);
            return 405;
        }
        json_t *o = phase_status(c->mgr);
        if (!o) return ajson_error(out, 500, "out of memory");
        pthread_mutex_lock(&c->smu);
        json_object_set_new(o, "switch", sw_json(&c->sw));
        pthread_mutex_unlock(&c->smu);
        return ajson_reply(out, 200, o);
    }
    bool set = strcmp(url, "/admin/phase/set") == 0, forget = strcmp(url, "/admin/phase/forget") == 0;
    if (!set && !forget) return ajson_error(out, 404, "no such phase endpoint");
    if (!post) {
        *allow = "POST";
        dbuf_reset(out);
        return 405;
    }
    return set ? do_set(c, query, out) : do_forget(c, query, out);
}
