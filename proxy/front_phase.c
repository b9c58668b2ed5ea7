/*
 * front_phase: the phase the front dispatches requests in, and what a phase switch asks of it.
 *
 * A switch (proxy/phase.c) holds new writes while the journal drains toward the new primary: a write
 * that arrives then is suspended on the held list (no thread held, the writer just waits) and runs in
 * the new phase once the switch ends, or in the old one when it aborts. front_hold(on) returns only once
 * no write admitted before it is still between its admission and its journal record, so the journal's
 * count of what is owed to each store (pipe_owed) covers every write that will ever run in the old
 * phase. Reads are never held: the store they go to has every write a writer was told about, because a
 * switch changes the phase only after the journal drained toward the new primary.
 *
 * A fence (a proxy of a fleet that does not know the fleet's phase yet) refuses new writes with 503 and
 * the reason, as a RetriableException so Hadoop clients retry.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "front_int.h"
#include "log.h"

static double since_s(const struct timespec *t0)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t0->tv_sec) + (double)(now.tv_nsec - t0->tv_nsec) / 1e9;
}

void front__phase_init(front *f)
{
    atomic_init(&f->phase, (int)f->cfg->phase);
    pthread_mutex_init(&f->ph_mu, NULL);
    pthread_cond_init(&f->ph_cond, NULL);
}

void front__phase_destroy(front *f)
{
    pthread_cond_destroy(&f->ph_cond);
    pthread_mutex_destroy(&f->ph_mu);
}

void front__phase_metrics(front *f)
{
    static const double bounds[] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
    f->mx_held = metrics_gauge_get(f->m, "dualpipe_phase_held_writes",
                                   "Writes waiting now for a phase switch to end.", NULL);
    f->mx_hold_wait = metrics_histogram_get(f->m, "dualpipe_phase_hold_seconds",
                                            "How long held writes waited for a phase switch (the writer-visible pause).",
                                            NULL, bounds, (int)(sizeof bounds / sizeof bounds[0]));
    f->mx_fenced = metrics_counter_get(f->m, "dualpipe_phase_fenced_writes_total",
                                       "Writes refused (503) because this proxy does not know the fleet's phase.",
                                       NULL);
}

fr_admit front__admit(fr_req *r, char *why, size_t cap)
{
    front *f = r->f;
    pthread_mutex_lock(&f->ph_mu);
    if (f->fence[0]) {
        snprintf(why, cap, "%s", f->fence);
        pthread_mutex_unlock(&f->ph_mu);
        metrics_inc(f->mx_fenced);
        return FR_ADMIT_FENCED;
    }
    if (f->hold) {
        clock_gettime(CLOCK_MONOTONIC, &r->held_t0);
        r->held_next = NULL;
        if (f->held_tail) f->held_tail->held_next = r;
        else f->held_head = r;
        f->held_tail = r;
        f->nheld++;
        metrics_gauge_set(f->mx_held, (int64_t)f->nheld);
        pthread_mutex_unlock(&f->ph_mu);
        return FR_ADMIT_HELD;
    }
    f->admitting++;
    r->ph = (cfg_phase)atomic_load(&f->phase);
    pthread_mutex_unlock(&f->ph_mu);
    return FR_ADMIT_GO;
}

void front__admitted(front *f)
{
    pthread_mutex_lock(&f->ph_mu);
    if (--f->admitting == 0) pthread_cond_broadcast(&f->ph_cond);
    pthread_mutex_unlock(&f->ph_mu);
}

/* Take the held list (ph_mu held). */
static fr_req *take_held(front *f)
{
    fr_req *h = f->held_head;
    f->held_head = f->held_tail = NULL;
    f->nheld = 0;
    metrics_gauge_set(f->mx_held, 0);
    return h;
}

void front_set_phase(front *f, cfg_phase p)
{
    int old = atomic_exchange(&f->phase, (int)p);
    if (old != (int)p) LOGI("msg=\"front now dispatches in a new phase\" from=%s to=%s", cfg_phase_name((cfg_phase)old),
                            cfg_phase_name(p));
}

cfg_phase front_phase(const front *f) { return (cfg_phase)atomic_load(&((front *)f)->phase); }

void front_hold(front *f, bool on)
{
    pthread_mutex_lock(&f->ph_mu);
    if (on) {
        f->hold = true;
        while (f->admitting > 0) pthread_cond_wait(&f->ph_cond, &f->ph_mu);
        pthread_mutex_unlock(&f->ph_mu);
        return;
    }
    f->hold = false;
    fr_req *h = take_held(f);
    char fence[sizeof f->fence];
    snprintf(fence, sizeof fence, "%s", f->fence);
    cfg_phase ph = (cfg_phase)atomic_load(&f->phase);
    /* counted as admitting until each one is journaled: a hold that follows at once waits for them */
    unsigned n = 0;
    for (fr_req *r = h; r; r = r->held_next) n++;
    f->admitting += n;
    pthread_mutex_unlock(&f->ph_mu);
    unsigned released = 0;
    double max_wait = 0;
    while (h) {
        fr_req *r = h;
        h = r->held_next;
        r->held_next = NULL;
        double w = since_s(&r->held_t0);
        if (w > max_wait) max_wait = w;
        metrics_observe(f->mx_hold_wait, w);
        int rc;
        if (fence[0]) {
            r->local_msg = strdup(fence);
            metrics_inc(f->mx_fenced);
            rc = -EAGAIN;
        } else {
            r->ph = ph;
            rc = front__run(r);
        }
        front__admitted(f);
        if (rc != 0) front__finish_local(r, rc);
        released++;
    }
    if (released)
        LOGI("msg=\"held writes released\" count=%u phase=%s max_wait_ms=%.0f", released, cfg_phase_name(ph),
             max_wait * 1000.0);
}

void front_fence(front *f, const char *reason)
{
    pthread_mutex_lock(&f->ph_mu);
    bool was = f->fence[0] != '\0';
    snprintf(f->fence, sizeof f->fence, "%s", reason ? reason : "");
    pthread_mutex_unlock(&f->ph_mu);
    if (reason && !was) LOGW("msg=\"writes fenced\" reason=\"%s\"", reason);
    else if (!reason && was) LOGI("msg=\"writes no longer fenced\"");
}

void front__release_held_stopping(front *f)
{
    pthread_mutex_lock(&f->ph_mu);
    f->hold = false;
    fr_req *h = take_held(f);
    pthread_mutex_unlock(&f->ph_mu);
    while (h) {
        fr_req *r = h;
        h = r->held_next;
        front__finish_local(r, -ESHUTDOWN);
    }
}
