/*
 * phase: the phase manager (see phase.h). One thread per proxy follows the fleet's record; phase_set
 * runs a switch from the admin API's thread. Rules that keep two proxies from ever writing with
 * different primaries:
 *   - a member registers (writes its report) before it takes writes, then reads the record again, so
 *     a switch that starts after that read lists it and waits for it;
 *   - a switch completes only when every member reports DRAINED for the switch's epoch, except members
 *     that stopped cleanly owing nothing (a stopped member that still owes records is waited for: its
 *     records would otherwise reach the new primary after newer writes);
 *   - a member that finds the record in a phase it has not entered holds writes until it owes the new
 *     primary nothing, then enters it.
 */
#include "phase.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "wfile.h"

#define PHASE_FAST_MS 50u
#define PHASE_STATE_MAX 4096

struct phase_mgr {
    gen2c *g2;
    fleet *f;
    phase_hooks h;
    char state_file[1024];
    cfg_phase initial;
    unsigned poll_ms, switch_timeout_ms, heartbeat_ms;
    char id[FLEET_ID_MAX];

    pthread_t th;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop, kick;

    /* followed state (mu) */
    cfg_phase cur;
    uint64_t epoch;
    bool have_epoch;      /* read once, or an epoch from the state file */
    bool registered;      /* this run's report is written */
    bool holding;
    int64_t hold_t0;      /* monotonic ms */
    uint64_t last_pause_ms, holds;
    uint64_t sw_epoch;    /* the switch being seen, and since when (monotonic ms) */
    int64_t sw_seen;
    fleet_mstate rep_state;
    fleet_mstate disk_state; /* the report state kept in state_file (see report) */
    uint64_t rep_epoch, rep_pending;
    int64_t rep_at;       /* monotonic ms of the last report, 0 = none */
    bool fenced;
    char fence_reason[320];
    bool have_rec;
    fleet_rec rec;
    char last_error[320];
    bool switching_here;  /* phase_set running on this proxy */
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *phase_transition_refused(cfg_phase from, cfg_phase to)
{
    if (from == to) return NULL;
    if (from == CFG_PHASE_GEN1_PRIMARY && to == CFG_PHASE_GEN2_PRIMARY) return NULL;
    if (from == CFG_PHASE_GEN2_PRIMARY && to == CFG_PHASE_GEN1_PRIMARY) return NULL; /* rollback */
    if (from == CFG_PHASE_GEN2_PRIMARY && to == CFG_PHASE_GEN2_ONLY) return NULL;
    if (from == CFG_PHASE_GEN1_PRIMARY && to == CFG_PHASE_GEN2_ONLY)
        return "gen2-only is entered from gen2-primary only: switch to gen2-primary first, so that Gen2 serves "
               "the reads and writes while Gen1 is kept in step for a rollback";
    return "there is no way back from gen2-only: Gen1 has missed every write since the fleet entered it";
}

/* ---------------------------------------------------------------- local state */

static int state_save(phase_mgr *m)
{
    char text[512], dir[1024];
    int n = snprintf(text, sizeof text,
                     "{\"v\":1,\"member\":\"%s\",\"phase\":\"%s\",\"epoch\":%" PRIu64 ",\"state\":\"%s\"}\n", m->id,
                     cfg_phase_name(m->cur), m->epoch, fleet_mstate_name(m->disk_state));
    if (n < 0 || (size_t)n >= sizeof text || snprintf(dir, sizeof dir, "%s", m->state_file) >= (int)sizeof dir)
        return -ENAMETOOLONG;
    char *slash = strrchr(dir, '/');
    const char *leaf = slash ? m->state_file + (slash - dir) + 1 : m->state_file;
    if (slash == dir) dir[1] = '\0';
    else if (slash) *slash = '\0';
    else snprintf(dir, sizeof dir, ".");
    return wf_replace(dir, leaf, text, (size_t)n);
}

/* Read the state file: 1 read (id, phase, epoch; *writing: the last report was WRITING), 0 none, -1
 * unreadable (err). */
static int state_load(const char *file, char *id, size_t idcap, cfg_phase *ph, uint64_t *epoch, bool *writing,
                      char *err, size_t errlen)
{
    json_error_t je;
    json_t *root = json_load_file(file, 0, &je);
    if (!root) {
        if (access(file, F_OK) != 0 && errno == ENOENT) return 0;
        snprintf(err, errlen, "phase state file %s cannot be read (%s at line %d): remove it to start again as a "
                              "new member", file, je.text, je.line);
        return -1;
    }
    const char *mid = json_string_value(json_object_get(root, "member"));
    const char *pn = json_string_value(json_object_get(root, "phase"));
    json_t *ep = json_object_get(root, "epoch");
    int rc = -1;
    cfg_phase p = CFG_PHASE_GEN1_PRIMARY;
    while (pn && p <= CFG_PHASE_GEN2_ONLY && strcmp(cfg_phase_name(p), pn) != 0) p++;
    if (json_integer_value(json_object_get(root, "v")) != 1 || !mid || !fleet_id_ok(mid) || !pn ||
        p > CFG_PHASE_GEN2_ONLY || !json_is_integer(ep) || json_integer_value(ep) < 0) {
        snprintf(err, errlen, "phase state file %s is not one this version wrote: remove it to start again as a "
                              "new member", file);
    } else {
        snprintf(id, idcap, "%s", mid);
        *ph = p;
        *epoch = (uint64_t)json_integer_value(ep);
        const char *st = json_string_value(json_object_get(root, "state"));
        *writing = st && strcmp(st, fleet_mstate_name(FLEET_M_WRITING)) == 0;
        rc = 1;
    }
    json_decref(root);
    return rc;
}

int phase_recorded(const char *state_file, cfg_phase *ph, char *err, size_t errlen)
{
    char id[FLEET_ID_MAX];
    uint64_t epoch;
    bool writing;
    return state_load(state_file, id, sizeof id, ph, &epoch, &writing, err, errlen);
}

/* A new member id: the host name (cut to what ids allow) and 8 random hex digits. */
static void new_member_id(char *out, size_t cap)
{
    char host[64] = "proxy";
    if (gethostname(host, sizeof host) != 0) snprintf(host, sizeof host, "proxy");
    host[sizeof host - 1] = '\0';
    for (char *c = host; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '-' ||
              *c == '_' || *c == '.'))
            *c = '-';
    host[40] = '\0';
    unsigned char r[4] = {0};
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        if (read(fd, r, sizeof r) != (ssize_t)sizeof r) memset(r, 0, sizeof r);
        close(fd);
    }
    snprintf(out, cap, "%s-%02x%02x%02x%02x", host[0] ? host : "proxy", r[0], r[1], r[2], r[3]);
}

/* ---------------------------------------------------------------- following the record */

static void set_fence(phase_mgr *m, const char *reason)
{
    pthread_mutex_lock(&m->mu);
    bool change = reason ? (!m->fenced || strcmp(m->fence_reason, reason) != 0) : m->fenced;
    m->fenced = reason != NULL;
    if (reason) snprintf(m->fence_reason, sizeof m->fence_reason, "%s", reason);
    else m->fence_reason[0] = '\0';
    pthread_mutex_unlock(&m->mu);
    if (!change) return;
    if (reason) LOGW("msg=\"writes refused until the fleet's phase is known\" reason=\"%s\"", reason);
    else LOGI("msg=\"fleet phase known: writes accepted\"");
    if (m->h.fence) m->h.fence(m->h.ud, reason);
}

static void set_hold(phase_mgr *m, bool on)
{
    pthread_mutex_lock(&m->mu);
    if (m->holding == on) {
        pthread_mutex_unlock(&m->mu);
        return;
    }
    m->holding = on;
    int64_t now = mono_ms();
    if (on) {
        m->hold_t0 = now;
        m->holds++;
    } else {
        m->last_pause_ms = (uint64_t)(now - m->hold_t0);
    }
    uint64_t pause = m->last_pause_ms;
    pthread_mutex_unlock(&m->mu);
    if (m->h.hold) m->h.hold(m->h.ud, on);
    if (on) LOGI("msg=\"phase switch: new writes held\"");
    else LOGI("msg=\"phase switch: held writes released\" pause_ms=%" PRIu64, pause);
}

/*
 * Write this member's report when it changed or the heartbeat is due. The state file keeps the report's
 * state so that a restart knows whether the fleet may have moved on without this proxy: a state other
 * than WRITING (holding or drained for a switch, stopped) is kept on disk before the fleet sees it, and
 * WRITING only once the fleet has it. A restart trusts the phase on disk before reading the record
 * only when that state is WRITING (a member reporting WRITING is waited for by every switch).
 */
static int report(phase_mgr *m, fleet_mstate st, uint64_t epoch, uint64_t pending, bool force)
{
    pthread_mutex_lock(&m->mu);
    int64_t now = mono_ms();
    bool due = force || m->rep_at == 0 || m->rep_state != st || m->rep_epoch != epoch ||
               (st != FLEET_M_WRITING && m->rep_pending != pending) ||
               now - m->rep_at >= (int64_t)m->heartbeat_ms;
    int src = 0;
    if (due && st != FLEET_M_WRITING && m->disk_state != st) {
        m->disk_state = st;
        src = state_save(m);
    }
    pthread_mutex_unlock(&m->mu);
    if (!due) return 0;
    if (src != 0) {
        LOGE("msg=\"cannot keep the phase on disk\" file=\"%s\" err=\"%s\"", m->state_file, strerror(-src));
        return -1;
    }
    fleet_member r = {.epoch = epoch, .state = st, .heartbeat_ms = wall_ms(), .pending = pending};
    char err[320];
    if (fleet_member_put(m->f, &r, err, sizeof err) != 0) {
        pthread_mutex_lock(&m->mu);
        snprintf(m->last_error, sizeof m->last_error, "%s", err);
        pthread_mutex_unlock(&m->mu);
        LOGW("msg=\"cannot write this member's report to the fleet\" err=\"%s\"", err);
        return -1;
    }
    pthread_mutex_lock(&m->mu);
    m->rep_state = st, m->rep_epoch = epoch, m->rep_pending = pending, m->rep_at = now;
    m->registered = true;
    if (st == FLEET_M_WRITING && m->disk_state != st) {
        m->disk_state = st;
        src = state_save(m);
    }
    pthread_mutex_unlock(&m->mu);
    if (src != 0) LOGE("msg=\"cannot keep the phase on disk\" file=\"%s\" err=\"%s\"", m->state_file, strerror(-src));
    return 0;
}

static uint64_t owed(phase_mgr *m, cfg_phase to) { return m->h.owed ? m->h.owed(m->h.ud, to) : 0; }

/* Enter phase p (writes are held or none was taken yet). 0 or -1. */
static int enter(phase_mgr *m, cfg_phase p, uint64_t epoch)
{
    if (m->h.enter && m->h.enter(m->h.ud, p) != 0) return -1;
    pthread_mutex_lock(&m->mu);
    cfg_phase was = m->cur;
    m->cur = p;
    m->epoch = epoch;
    int rc = state_save(m);
    pthread_mutex_unlock(&m->mu);
    if (rc != 0) LOGE("msg=\"cannot keep the phase on disk\" file=\"%s\" err=\"%s\"", m->state_file, strerror(-rc));
    LOGI("msg=\"phase entered\" from=%s phase=%s epoch=%" PRIu64, cfg_phase_name(was), cfg_phase_name(p), epoch);
    return 0;
}

/* A switch older than its deadline on this proxy's clock: end it, back in the old phase. */
static void end_stale_switch(phase_mgr *m, const fleet_rec *rec, char *etag)
{
    fleet_rec back = {.epoch = rec->epoch + 1, .phase = rec->phase, .state = FLEET_STABLE, .to = rec->phase,
                      .since_ms = wall_ms()};
    snprintf(back.by, sizeof back.by, "%s", m->id);
    snprintf(back.reason, sizeof back.reason, "the switch to %s started by %s did not finish within %" PRIu64
                                              " ms; ended by %s, still %s",
             cfg_phase_name(rec->to), rec->by, rec->deadline_ms, m->id, cfg_phase_name(rec->phase));
    char err[320];
    int rc = fleet_replace(m->f, &back, etag, 128, err, sizeof err);
    if (rc == 0) LOGW("msg=\"ended a phase switch that outlived its deadline\" reason=\"%s\"", back.reason);
    else if (rc < 0) LOGW("msg=\"cannot end a stale phase switch\" err=\"%s\"", err);
}

/* One look at the record. Returns true when the next look should come soon (a switch is under way). */
static bool step(phase_mgr *m)
{
    fleet_rec rec;
    char etag[128], err[320];
    int rc = fleet_read(m->f, &rec, etag, sizeof etag, err, sizeof err);
    pthread_mutex_lock(&m->mu);
    bool have_epoch = m->have_epoch, registered = m->registered, holding = m->holding;
    cfg_phase cur = m->cur;
    if (rc < 0) snprintf(m->last_error, sizeof m->last_error, "%s", err);
    pthread_mutex_unlock(&m->mu);
    if (rc < 0) {
        if (!have_epoch) {
            char why[400];
            snprintf(why, sizeof why, "this proxy has not yet read the fleet's phase record: %s", err);
            set_fence(m, why);
        }
        return holding;
    }
    if (rc == 1) {
        pthread_mutex_lock(&m->mu);
        fleet_rec first = {.epoch = m->epoch + 1, .phase = m->cur, .state = FLEET_STABLE, .to = m->cur,
                           .since_ms = wall_ms()};
        pthread_mutex_unlock(&m->mu);
        snprintf(first.by, sizeof first.by, "%s", m->id);
        snprintf(first.reason, sizeof first.reason, "fleet record created by %s", m->id);
        if (fleet_create(m->f, &first, etag, sizeof etag, err, sizeof err) < 0) {
            LOGW("msg=\"cannot create the fleet's phase record\" err=\"%s\"", err);
            pthread_mutex_lock(&m->mu);
            snprintf(m->last_error, sizeof m->last_error, "%s", err);
            pthread_mutex_unlock(&m->mu);
        }
        return true; /* read it back at once */
    }
    pthread_mutex_lock(&m->mu);
    m->rec = rec;
    m->have_rec = true;
    m->last_error[0] = '\0';
    pthread_mutex_unlock(&m->mu);

    if (!registered) {
        /* register, then look again: a switch that starts after that look will wait for this member */
        if (report(m, rec.state == FLEET_STABLE && rec.phase == cur ? FLEET_M_WRITING : FLEET_M_HOLDING, rec.epoch,
                   0, true) != 0) {
            if (!have_epoch) set_fence(m, "this proxy cannot register with the fleet (see the log)");
            return true;
        }
        return true;
    }

    if (rec.state == FLEET_SWITCHING || rec.phase != cur) {
        set_hold(m, true);
        int64_t now = mono_ms();
        pthread_mutex_lock(&m->mu);
        if (rec.state == FLEET_SWITCHING && m->sw_epoch != rec.epoch) m->sw_epoch = rec.epoch, m->sw_seen = now;
        int64_t seen = m->sw_seen;
        pthread_mutex_unlock(&m->mu);
        if (rec.phase != cur) {
            /* a switch finished without this member (it was stopped owing nothing, or started since):
             * whatever it still owes the new primary goes there first, then it enters the phase */
            uint64_t o = owed(m, rec.phase);
            if (o > 0) {
                (void)report(m, FLEET_M_HOLDING, rec.epoch, o, false);
                return true;
            }
            if (enter(m, rec.phase, rec.epoch) != 0) {
                (void)report(m, FLEET_M_FAILED, rec.epoch, 0, false);
                return true;
            }
            cur = rec.phase;
        }
        if (rec.state == FLEET_SWITCHING) {
            uint64_t o = owed(m, rec.to);
            (void)report(m, o == 0 ? FLEET_M_DRAINED : FLEET_M_HOLDING, rec.epoch, o, false);
            if (now - seen > (int64_t)rec.deadline_ms + 2 * (int64_t)m->poll_ms + 2000) end_stale_switch(m, &rec, etag);
            set_fence(m, NULL);
            return true;
        }
    }
    /* stable in the phase this proxy runs in */
    pthread_mutex_lock(&m->mu);
    bool save = !m->have_epoch || m->epoch != rec.epoch;
    m->epoch = rec.epoch;
    m->have_epoch = true;
    int src = save ? state_save(m) : 0;
    pthread_mutex_unlock(&m->mu);
    if (src != 0) LOGE("msg=\"cannot keep the phase on disk\" file=\"%s\" err=\"%s\"", m->state_file, strerror(-src));
    set_hold(m, false);
    set_fence(m, NULL);
    (void)report(m, FLEET_M_WRITING, rec.epoch, 0, false);
    return false;
}

static void *run(void *arg)
{
    phase_mgr *m = arg;
    for (;;) {
        bool fast = step(m);
        pthread_mutex_lock(&m->mu);
        if (!m->stop && !m->kick) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            unsigned ms = fast ? PHASE_FAST_MS : m->poll_ms;
            ts.tv_sec += ms / 1000;
            ts.tv_nsec += (long)(ms % 1000) * 1000000L;
            if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
            pthread_cond_timedwait(&m->cv, &m->mu, &ts);
        }
        m->kick = false;
        bool stop = m->stop;
        pthread_mutex_unlock(&m->mu);
        if (stop) break;
    }
    return NULL;
}

static void kick(phase_mgr *m)
{
    pthread_mutex_lock(&m->mu);
    m->kick = true;
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
}

/* ---------------------------------------------------------------- life cycle */

int phase_start(gen2c *g2, const phase_opts *o, const phase_hooks *h, phase_mgr **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!o->state_file || !o->state_file[0] || strlen(o->state_file) >= 1000) {
        snprintf(err, errlen, "phase: a state file path is required (under spool.dir)");
        return -1;
    }
    phase_mgr *m = calloc(1, sizeof *m);
    if (!m) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    m->g2 = g2;
    m->h = *h;
    snprintf(m->state_file, sizeof m->state_file, "%s", o->state_file);
    m->initial = o->initial;
    m->poll_ms = o->poll_ms ? o->poll_ms : 250;
    m->switch_timeout_ms = o->switch_timeout_ms ? o->switch_timeout_ms : 30000;
    m->heartbeat_ms = o->heartbeat_ms ? o->heartbeat_ms : 10000;
    pthread_mutex_init(&m->mu, NULL);
    pthread_cond_init(&m->cv, NULL);

    char kept[FLEET_ID_MAX] = "";
    cfg_phase ph = o->initial;
    uint64_t epoch = 0;
    bool writing = false;
    int lr = state_load(o->state_file, kept, sizeof kept, &ph, &epoch, &writing, err, errlen);
    if (lr < 0) goto fail;
    if (o->member_id && o->member_id[0]) snprintf(m->id, sizeof m->id, "%s", o->member_id);
    else if (lr == 1) snprintf(m->id, sizeof m->id, "%s", kept);
    else new_member_id(m->id, sizeof m->id);
    m->cur = ph;
    m->epoch = epoch;
    /* the phase on disk is trusted before the record is read only when this proxy's last report said
     * WRITING: every switch since then has waited for it (it crashed while writing), so none completed */
    m->have_epoch = lr == 1 && epoch > 0 && writing;
    m->disk_state = writing ? FLEET_M_WRITING : FLEET_M_STOPPED;
    bool local = o->local_dir && o->local_dir[0];
    if (local) {
        if (fleet_new_local(o->local_dir, m->id, &m->f, err, errlen) != 0) goto fail;
    } else {
        if (!g2) {
            snprintf(err, errlen, "phase: a fleet's record is kept on Gen2, and no Gen2 client was given");
            goto fail;
        }
        fleet_opts fo = {.fs = o->fleet_fs, .dir = o->fleet_dir, .member = m->id, .retries = 2};
        if (fleet_new(g2, &fo, &m->f, err, errlen) != 0) goto fail;
    }
    int src = state_save(m);
    if (src != 0) {
        snprintf(err, errlen, "phase state file %s cannot be written: %s", m->state_file, strerror(-src));
        goto fail;
    }
    /* before the first look: the phase on disk (or the config's), and no write until it is known */
    if (m->h.enter && m->h.enter(m->h.ud, m->cur) != 0) {
        snprintf(err, errlen, "cannot enter phase %s", cfg_phase_name(m->cur));
        goto fail;
    }
    if (local) {
        /* the record is on this host's disk: read it (made at once when there is none), register and
         * follow it now, so a lone proxy's writes never wait for it (three looks when all is well, a few
         * more to drain toward a phase the record moved to); a switch under way holds them instead */
        bool known = false, held = false;
        for (int i = 0; i < 8 && !known; i++) {
            (void)step(m);
            pthread_mutex_lock(&m->mu);
            known = m->have_epoch && m->registered;
            held = m->holding;
            pthread_mutex_unlock(&m->mu);
        }
        if (!known && !held) {
            pthread_mutex_lock(&m->mu);
            snprintf(err, errlen, "phase: the local phase record cannot be used: %s",
                     m->last_error[0] ? m->last_error : "it could not be read, made or followed (see the log)");
            pthread_mutex_unlock(&m->mu);
            goto fail;
        }
    } else if (!m->have_epoch) {
        set_fence(m, "this proxy has not yet read the fleet's phase record");
    }
    if (pthread_create(&m->th, NULL, run, m) != 0) {
        snprintf(err, errlen, "cannot start the phase thread");
        goto fail;
    }
    m->started = true;
    *out = m;
    return 0;
fail:
    fleet_free(m->f);
    pthread_mutex_destroy(&m->mu);
    pthread_cond_destroy(&m->cv);
    free(m);
    return -1;
}

void phase_stop(phase_mgr *m)
{
    if (!m || !m->started) return;
    pthread_mutex_lock(&m->mu);
    m->stop = true;
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
    pthread_join(m->th, NULL);
    m->started = false;
    pthread_mutex_lock(&m->mu);
    uint64_t epoch = m->epoch;
    bool registered = m->registered;
    pthread_mutex_unlock(&m->mu);
    /* stopped, with what it still owes: a switch waits for a stopped member only while it owes records */
    if (registered) (void)report(m, FLEET_M_STOPPED, epoch, owed(m, m->cur == CFG_PHASE_GEN1_PRIMARY
                                                                         ? CFG_PHASE_GEN2_PRIMARY
                                                                         : CFG_PHASE_GEN1_PRIMARY),
                                 true);
}

void phase_free(phase_mgr *m)
{
    if (!m) return;
    phase_stop(m);
    fleet_free(m->f);
    pthread_mutex_destroy(&m->mu);
    pthread_cond_destroy(&m->cv);
    free(m);
}

cfg_phase phase_current(phase_mgr *m)
{
    pthread_mutex_lock(&m->mu);
    cfg_phase p = m->cur;
    pthread_mutex_unlock(&m->mu);
    return p;
}

int phase_forget(phase_mgr *m, const char *id, char *err, size_t errlen)
{
    if (id && strcmp(id, m->id) == 0) {
        snprintf(err, errlen, "%s is this proxy: stop it instead", id);
        return -1;
    }
    return fleet_member_remove(m->f, id, err, errlen);
}

/* ---------------------------------------------------------------- switching */

/* The members a switch waits for: all but those stopped owing nothing. */
static bool waits_for(const fleet_member *x) { return !(x->state == FLEET_M_STOPPED && x->pending == 0); }

/* Turn the record from our SWITCHING one to STABLE in phase p. 0 done, 1 someone changed it, -1 err. */
static int finish(phase_mgr *m, const fleet_rec *sw, char *etag, cfg_phase p, const char *reason, char *err,
                  size_t errlen)
{
    fleet_rec fin = {.epoch = sw->epoch + 1, .phase = p, .state = FLEET_STABLE, .to = p, .since_ms = wall_ms()};
    snprintf(fin.by, sizeof fin.by, "%s", m->id);
    snprintf(fin.reason, sizeof fin.reason, "%s", reason);
    for (int attempt = 0;; attempt++) {
        int rc = fleet_replace(m->f, &fin, etag, 128, err, errlen);
        if (rc >= 0 || attempt >= 20) return rc;
        struct timespec ts = {0, 100 * 1000000L}; /* Gen2 not answering: the switch must still end */
        nanosleep(&ts, NULL);
    }
}

phase_set_result phase_set(phase_mgr *m, cfg_phase to, bool force, char *reason, size_t cap, uint64_t *pause_ms)
{
    *pause_ms = 0;
    reason[0] = '\0';
    pthread_mutex_lock(&m->mu);
    if (m->switching_here) {
        pthread_mutex_unlock(&m->mu);
        snprintf(reason, cap, "a switch started on this proxy is under way");
        return PHASE_SET_BUSY;
    }
    m->switching_here = true;
    uint64_t holds0 = m->holds;
    pthread_mutex_unlock(&m->mu);

    phase_set_result res = PHASE_SET_ERROR;
    fleet_rec rec;
    char etag[128], err[320];
    int rc = fleet_read(m->f, &rec, etag, sizeof etag, err, sizeof err);
    if (rc != 0) {
        snprintf(reason, cap, "%s", rc < 0 ? err : "the fleet has no phase record yet (is Gen2 reachable?)");
        goto out;
    }
    if (rec.state == FLEET_SWITCHING) {
        snprintf(reason, cap, "another switch is under way: %s -> %s, started by %s (epoch %" PRIu64 ")",
                 cfg_phase_name(rec.phase), cfg_phase_name(rec.to), rec.by, rec.epoch);
        res = PHASE_SET_BUSY;
        goto out;
    }
    if (rec.phase == to) {
        snprintf(reason, cap, "the fleet is in phase %s already", cfg_phase_name(to));
        res = PHASE_SET_NOOP;
        goto out;
    }
    const char *why = phase_transition_refused(rec.phase, to);
    if (why) {
        snprintf(reason, cap, "%s", why);
        res = PHASE_SET_REFUSED;
        goto out;
    }
    if (to == CFG_PHASE_GEN2_ONLY && !force) {
        char cw[256] = "no verify result is known to this proxy";
        if (!m->h.cutover_ok || m->h.cutover_ok(m->h.ud, cw, sizeof cw) != 0) {
            snprintf(reason, cap, "gen2-only refused: %s (run `dualpipe verify`, or --force to switch anyway)", cw);
            res = PHASE_SET_REFUSED;
            goto out;
        }
    }
    fleet_rec sw = {.epoch = rec.epoch + 1, .phase = rec.phase, .state = FLEET_SWITCHING, .to = to,
                    .since_ms = wall_ms(), .deadline_ms = m->switch_timeout_ms};
    snprintf(sw.by, sizeof sw.by, "%s", m->id);
    rc = fleet_replace(m->f, &sw, etag, sizeof etag, err, sizeof err);
    if (rc != 0) {
        snprintf(reason, cap, "%s", rc < 0 ? err : "the record changed while the switch began (another switch?)");
        res = rc < 0 ? PHASE_SET_ERROR : PHASE_SET_BUSY;
        goto out;
    }
    LOGI("msg=\"phase switch started\" from=%s to=%s epoch=%" PRIu64, cfg_phase_name(rec.phase), cfg_phase_name(to),
         sw.epoch);
    kick(m);
    int64_t t_end = mono_ms() + m->switch_timeout_ms;
    char waiting[512] = "";
    bool ok = false, failed = false;
    for (;;) {
        struct timespec ts = {0, PHASE_FAST_MS * 1000000L};
        nanosleep(&ts, NULL);
        fleet_rec now;
        char etag_now[128];
        int r2 = fleet_read(m->f, &now, etag_now, sizeof etag_now, err, sizeof err);
        if (r2 == 0 && now.epoch != sw.epoch) {
            snprintf(reason, cap, "the switch was ended by %s: %s", now.by, now.reason);
            res = PHASE_SET_ABORTED;
            kick(m);
            goto wait_release;
        }
        fleet_member *ms = NULL;
        size_t n = 0, bad = 0;
        if (r2 == 0 && fleet_member_list(m->f, &ms, &n, &bad, err, sizeof err) == 0) {
            bool all = true;
            size_t w = 0;
            waiting[0] = '\0';
            for (size_t i = 0; i < n; i++) {
                if (!waits_for(&ms[i])) continue;
                bool drained = ms[i].epoch == sw.epoch && ms[i].state == FLEET_M_DRAINED;
                if (ms[i].epoch == sw.epoch && ms[i].state == FLEET_M_FAILED) failed = true;
                if (drained) continue;
                all = false;
                if (w < sizeof waiting - 1) {
                    int k = snprintf(waiting + w, sizeof waiting - w, "%s%s (%s, epoch %" PRIu64 ", %" PRIu64 " owed)",
                                     w ? ", " : "", ms[i].id, fleet_mstate_name(ms[i].state), ms[i].epoch,
                                     ms[i].pending);
                    w = k > 0 ? w + (size_t)k : w;
                }
            }
            free(ms);
            if (all && !failed) {
                ok = true;
                break;
            }
            if (failed) break;
        }
        if (mono_ms() >= t_end) break;
    }
    char fr[160];
    if (ok)
        snprintf(fr, sizeof fr, "switched from %s by %s", cfg_phase_name(rec.phase), m->id);
    else
        snprintf(fr, sizeof fr, "switch to %s by %s %s; still %s", cfg_phase_name(to), m->id,
                 failed ? "failed: a member could not drain" : "timed out", cfg_phase_name(rec.phase));
    rc = finish(m, &sw, etag, ok ? to : rec.phase, fr, err, sizeof err);
    kick(m);
    if (rc == 0 && ok) {
        res = PHASE_SET_DONE;
        snprintf(reason, cap, "%s -> %s", cfg_phase_name(rec.phase), cfg_phase_name(to));
        LOGI("msg=\"phase switch done\" from=%s to=%s epoch=%" PRIu64, cfg_phase_name(rec.phase), cfg_phase_name(to),
             sw.epoch + 1);
    } else if (rc == 0) {
        res = PHASE_SET_ABORTED;
        snprintf(reason, cap, "%s; waiting for: %s", fr, waiting[0] ? waiting : "(no member report could be read)");
        LOGW("msg=\"phase switch aborted\" reason=\"%s\"", reason);
    } else if (rc == 1) {
        res = PHASE_SET_ABORTED;
        snprintf(reason, cap, "the switch was ended by another member before it completed (deadline)");
    } else {
        res = PHASE_SET_ERROR;
        snprintf(reason, cap, "the switch could not be ended: %s (the members end it at its deadline)", err);
    }
wait_release:
    /* the pause this proxy's writers saw: wait (briefly) for its own thread to release them */
    for (int i = 0; i < 200; i++) {
        pthread_mutex_lock(&m->mu);
        bool released = !m->holding && m->holds > holds0;
        bool never = m->holds == holds0 && !m->holding;
        uint64_t p = m->last_pause_ms;
        pthread_mutex_unlock(&m->mu);
        if (released) {
            *pause_ms = p;
            break;
        }
        if (never && i > 20) break;
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
out:
    pthread_mutex_lock(&m->mu);
    m->switching_here = false;
    pthread_mutex_unlock(&m->mu);
    return res;
}

json_t *phase_status(phase_mgr *m)
{
    pthread_mutex_lock(&m->mu);
    json_t *o = json_pack("{s:s,s:I,s:s,s:b,s:b,s:b,s:s,s:I,s:I,s:s}", "phase", cfg_phase_name(m->cur), "epoch",
                          (json_int_t)m->epoch, "member", m->id, "holding", m->holding, "fenced", m->fenced,
                          "registered", m->registered, "fence_reason", m->fence_reason, "last_pause_ms",
                          (json_int_t)m->last_pause_ms, "holds", (json_int_t)m->holds, "last_error", m->last_error);
    if (o && m->have_rec) {
        json_t *r = json_pack("{s:I,s:s,s:s,s:s,s:s,s:I,s:s}", "epoch", (json_int_t)m->rec.epoch, "phase",
                              cfg_phase_name(m->rec.phase), "state",
                              m->rec.state == FLEET_SWITCHING ? "switching" : "stable", "to", cfg_phase_name(m->rec.to),
                              "by", m->rec.by, "since_ms", (json_int_t)m->rec.since_ms, "reason", m->rec.reason);
        if (r) json_object_set_new(o, "record", r);
    }
    pthread_mutex_unlock(&m->mu);
    if (!o) return NULL;
    fleet_member *ms = NULL;
    size_t n = 0, bad = 0;
    char err[320];
    json_t *arr = json_array();
    if (arr && fleet_member_list(m->f, &ms, &n, &bad, err, sizeof err) == 0) {
        for (size_t i = 0; i < n; i++)
            json_array_append_new(arr, json_pack("{s:s,s:I,s:s,s:I,s:I}", "id", ms[i].id, "epoch",
                                                 (json_int_t)ms[i].epoch, "state", fleet_mstate_name(ms[i].state),
                                                 "heartbeat_ms", (json_int_t)ms[i].heartbeat_ms, "pending",
                                                 (json_int_t)ms[i].pending));
        free(ms);
        json_object_set_new(o, "members", arr);
        json_object_set_new(o, "members_unreadable", json_integer((json_int_t)bad));
    } else {
        json_decref(arr);
        json_object_set_new(o, "members_error", json_string(err));
    }
    return o;
}
