/*
 * applier_ids: identities on Gen2 (applier_int.h). HDFS/Gen1 owners, groups and ACL entries are names;
 * Gen2 wants Azure AD object ids (or UPNs for users). Every path that sets them on Gen2 — metadata
 * copies after CREATE/MKDIRS/re-copies/resyncs, SETOWNER, and the ACL operations — goes through here:
 * names are translated with the identity map (common/webhdfs/idmap), and what the map lacks follows
 * gen2.unmapped_identity. Nothing unmapped is silently applied as done: each name is counted
 * (dualpipe_identity_unmapped_total{kind}) and the last distinct ones are listed in the status with the
 * path where they were met; `drop` turns the operation into a divergence naming them; `resync-later`
 * parks the record (APPLY_IDS_OWED) once its data applied, and a new version of the map file makes the
 * pipeline resync such records from Gen1 (applier_on_identity_change).
 *
 * Also the ACL limits of Gen2 on metadata copies: a Gen1 ACL over 32 entries in a scope is not copied
 * (a divergence; owner, group and permission bits still are), and default base entries that HDFS
 * implies are filled in (counted).
 *
 * A watcher thread looks at the map file once a second (cheap: one stat) and logs each reload, or one
 * line for a new version that does not parse (the last good map stays).
 */
#include "applier_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "idmap.h"
#include "log.h"

#define AP_IDS_SEEN 32              /* distinct unmapped names listed in the status */

typedef struct ap_ids_seen {
    idm_kind kind;
    char name[IDM_MAX_NAME];
    char path[512];                 /* where it was met last */
    uint64_t count;
    int64_t time_ms;
} ap_ids_seen;

struct ap_ids {
    applier *a;
    idm_watch *w;                   /* NULL: no map, names go to Gen2 as they are */
    idm_policy pol;
    char file[1024];
    pthread_t th;
    bool th_started, quit;
    bool force;                     /* SIGHUP: read the file now, even if it looks unchanged */
    pthread_mutex_t mu;             /* the fields below, and quit */
    pthread_cond_t cv;
    ap_ids_seen seen[AP_IDS_SEEN];  /* most recently met last */
    int nseen;
    uint64_t unmapped[2], over_limit, base_added, merged;
    void (*on_change)(void *ud);
    void *on_change_ud;
    metrics_counter *mx_unmapped[2], *mx_acl[2], *mx_reload[2];
};

static const char *const kind_name[2] = {"user", "group"};
static const char *const pol_name[3] = {"keep", "drop", "resync-later"};

/* ================================================================ watcher */

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void *watch_main(void *arg)
{
    ap_ids *ids = arg;
    pthread_mutex_lock(&ids->mu);
    while (!ids->quit) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += IDM_POLL_MS / 1000;
        pthread_cond_timedwait(&ids->cv, &ids->mu, &ts);
        if (ids->quit) break;
        bool force = ids->force;
        ids->force = false;
        pthread_mutex_unlock(&ids->mu);
        idm_err e;
        idm_poll r = idm_watch_poll(ids->w, mono_ms(), force, &e);
        if (r == IDM_POLL_RELOADED) {
            idm_map *m = idm_watch_get(ids->w);
            LOGI("msg=\"identity map reloaded\" file=\"%s\" users=%zu groups=%zu generation=%" PRIu64, ids->file,
                 idm_count(m, IDM_USER), idm_count(m, IDM_GROUP), idm_watch_generation(ids->w));
            idm_unref(m);
            metrics_inc(ids->mx_reload[0]);
        } else if (r == IDM_POLL_BROKEN) {
            LOGW("msg=\"identity map not reloaded: the new version is broken; the last good map stays\" err=\"%s\"",
                 e.message);
            metrics_inc(ids->mx_reload[1]);
        }
        pthread_mutex_lock(&ids->mu);
        if (r == IDM_POLL_RELOADED && ids->on_change) {
            void (*fn)(void *) = ids->on_change;
            void *ud = ids->on_change_ud;
            pthread_mutex_unlock(&ids->mu);
            fn(ud);
            pthread_mutex_lock(&ids->mu);
        }
    }
    pthread_mutex_unlock(&ids->mu);
    return NULL;
}

void ap_ids_reread(ap_ids *ids)
{
    if (!ids || !ids->w) return;
    pthread_mutex_lock(&ids->mu);
    ids->force = true;
    pthread_cond_signal(&ids->cv);
    pthread_mutex_unlock(&ids->mu);
}

int ap_ids_new(applier *a, const dp_config *cfg, ap_ids **out, char *err, size_t errlen)
{
    *out = NULL;
    ap_ids *ids = calloc(1, sizeof *ids);
    if (!ids) {
        snprintf(err, errlen, "applier: out of memory");
        return -1;
    }
    ids->a = a;
    ids->pol = (idm_policy)cfg->unmapped_identity;
    snprintf(ids->file, sizeof ids->file, "%s", cfg->identity_map);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&ids->mu, NULL);
    pthread_cond_init(&ids->cv, &ca);
    pthread_condattr_destroy(&ca);
    *out = ids;
    if (!ids->file[0]) return 0;
    idm_err e;
    if (idm_watch_new(ids->file, &ids->w, &e) != 0) {
        snprintf(err, errlen, "gen2.identity_map: %s", e.message);
        return -1;
    }
    idm_map *m = idm_watch_get(ids->w);
    LOGI("msg=\"identity map loaded\" file=\"%s\" users=%zu groups=%zu unmapped_identity=%s", ids->file,
         idm_count(m, IDM_USER), idm_count(m, IDM_GROUP), pol_name[ids->pol]);
    idm_unref(m);
    if (pthread_create(&ids->th, NULL, watch_main, ids) != 0) {
        snprintf(err, errlen, "applier: cannot start the identity map watcher");
        return -1;
    }
    ids->th_started = true;
    return 0;
}

void ap_ids_stop(ap_ids *ids)
{
    if (!ids || !ids->th_started) return;
    pthread_mutex_lock(&ids->mu);
    ids->quit = true;
    pthread_cond_signal(&ids->cv);
    pthread_mutex_unlock(&ids->mu);
    pthread_join(ids->th, NULL);
    ids->th_started = false;
}

void ap_ids_free(ap_ids *ids)
{
    if (!ids) return;
    ap_ids_stop(ids);
    idm_watch_free(ids->w);
    pthread_mutex_destroy(&ids->mu);
    pthread_cond_destroy(&ids->cv);
    free(ids);
}

void ap_ids_on_change(ap_ids *ids, void (*fn)(void *ud), void *ud)
{
    pthread_mutex_lock(&ids->mu);
    ids->on_change = fn;
    ids->on_change_ud = ud;
    pthread_mutex_unlock(&ids->mu);
}

int ap_ids_register_metrics(ap_ids *ids, metrics *m)
{
    for (int k = 0; k < 2; k++) {
        char l[32];
        snprintf(l, sizeof l, "kind=\"%s\"", kind_name[k]);
        ids->mx_unmapped[k] = metrics_counter_get(m, "dualpipe_identity_unmapped_total",
                                                  "Owners, groups and ACL entry names the identity map lacked", l);
    }
    ids->mx_acl[0] = metrics_counter_get(m, "dualpipe_acl_limit_total",
                                         "Gen1 ACLs Gen2 cannot hold as they are (over_limit: not copied; "
                                         "base_added: default base entries filled in)", "reason=\"over_limit\"");
    ids->mx_acl[1] = metrics_counter_get(m, "dualpipe_acl_limit_total",
                                         "Gen1 ACLs Gen2 cannot hold as they are (over_limit: not copied; "
                                         "base_added: default base entries filled in)", "reason=\"base_added\"");
    ids->mx_reload[0] = metrics_counter_get(m, "dualpipe_identity_map_reloads_total",
                                            "New versions of gen2.identity_map (ok: in use; broken: refused)",
                                            "result=\"ok\"");
    ids->mx_reload[1] = metrics_counter_get(m, "dualpipe_identity_map_reloads_total",
                                            "New versions of gen2.identity_map (ok: in use; broken: refused)",
                                            "result=\"broken\"");
    return ids->mx_unmapped[0] && ids->mx_unmapped[1] && ids->mx_acl[0] && ids->mx_acl[1] && ids->mx_reload[0] &&
                   ids->mx_reload[1]
               ? 0
               : -1;
}

json_t *ap_ids_json(ap_ids *ids)
{
    pthread_mutex_lock(&ids->mu);
    json_t *list = json_array();
    for (int i = ids->nseen - 1; list && i >= 0; i--) {
        const ap_ids_seen *s = &ids->seen[i];
        json_array_append_new(list, json_pack("{s:s,s:s,s:s,s:I,s:I}", "kind", kind_name[s->kind], "name", s->name,
                                              "path", s->path, "count", (json_int_t)s->count, "time_ms",
                                              (json_int_t)s->time_ms));
    }
    json_t *o = json_pack("{s:s,s:s,s:I,s:{s:I,s:I},s:I,s:I,s:I,s:o}", "map", ids->file, "policy",
                          ids->w ? pol_name[ids->pol] : "none (no map: names as they are)", "generation",
                          (json_int_t)(ids->w ? idm_watch_generation(ids->w) : 0), "unmapped_total", "user",
                          (json_int_t)ids->unmapped[0], "group", (json_int_t)ids->unmapped[1], "acl_over_limit",
                          (json_int_t)ids->over_limit, "acl_base_added", (json_int_t)ids->base_added,
                          "merged_entries", (json_int_t)ids->merged, "unmapped", list ? list : json_array());
    pthread_mutex_unlock(&ids->mu);
    return o;
}

/* ================================================================ accounting */

/* Remember a name met unmapped at path (most recent last; an old entry moves to the end). */
static void seen_add(ap_ids *ids, idm_kind kind, const char *name, const char *path)
{
    int i;
    for (i = 0; i < ids->nseen; i++)
        if (ids->seen[i].kind == kind && strcmp(ids->seen[i].name, name) == 0) break;
    ap_ids_seen cur;
    if (i < ids->nseen) {
        cur = ids->seen[i];
        memmove(&ids->seen[i], &ids->seen[i + 1], sizeof cur * (size_t)(ids->nseen - i - 1));
        ids->nseen--;
    } else {
        memset(&cur, 0, sizeof cur);
        cur.kind = kind;
        snprintf(cur.name, sizeof cur.name, "%s", name);
        if (ids->nseen == AP_IDS_SEEN) { /* forget the oldest */
            memmove(&ids->seen[0], &ids->seen[1], sizeof cur * (AP_IDS_SEEN - 1));
            ids->nseen--;
        }
    }
    cur.count++;
    cur.time_ms = ap_real_ms();
    snprintf(cur.path, sizeof cur.path, "%s", path);
    ids->seen[ids->nseen++] = cur;
}

/* The operation a result belongs to: a piece of a copy reports to the copy's operation. */
static aop *owner_of(aop *op)
{
    return op->job ? ap_resync_owner(op->job) : op;
}

/* Count and report what res could not map at path, and apply the policy to op. */
static void account(aop *op, const char *path, const idm_result *res)
{
    ap_ids *ids = op->a->ids;
    if (res->unmapped == 0 && res->merged == 0) return;
    char names[160];
    idm_result_names(res, names, sizeof names);
    int shown = res->unmapped < IDM_MISS_MAX ? res->unmapped : IDM_MISS_MAX;
    pthread_mutex_lock(&ids->mu);
    for (int i = 0; i < shown; i++) {
        ids->unmapped[res->kind[i]]++;
        metrics_inc(ids->mx_unmapped[res->kind[i]]);
        seen_add(ids, res->kind[i], res->name[i], path);
    }
    ids->merged += (uint64_t)res->merged;
    if (res->unmapped && ids->pol == IDM_RESYNC_LATER) {
        aop *o = owner_of(op);
        o->ids_owed = true;
        if (!o->ids_what[0]) snprintf(o->ids_what, sizeof o->ids_what, "%.150s at %.40s", names, path);
    }
    pthread_mutex_unlock(&ids->mu);
    if (res->unmapped && ids->pol == IDM_DROP)
        ap_op_note(op, "identities not in gen2.identity_map left out on Gen2 at %s: %s", path, names);
    else if (res->merged)
        ap_op_note(op, "ACL of %s: %d entr%s merged, their names map to one Gen2 identity", path, res->merged,
                   res->merged == 1 ? "y" : "ies");
}

static idm_result *result_new(void)
{
    return calloc(1, sizeof(idm_result));
}

void ap_ids_meta(aop *op, const char *g1, xlate_meta *m)
{
    ap_ids *ids = op->a->ids;
    if (m->acl_over) {
        pthread_mutex_lock(&ids->mu);
        ids->over_limit++;
        pthread_mutex_unlock(&ids->mu);
        metrics_inc(ids->mx_acl[0]);
        ap_op_note(op, "ACL of %s has %d entries in one scope, over Gen2's %d: not copied (owner, group and "
                       "permission bits were)", g1, m->acl_over, XLATE_ACL_SCOPE_MAX);
    } else if (m->base_added && m->acl) {
        pthread_mutex_lock(&ids->mu);
        ids->base_added++;
        pthread_mutex_unlock(&ids->mu);
        metrics_inc(ids->mx_acl[1]);
    }
    if (!ids->w) return;
    idm_result *res = result_new();
    idm_map *map = idm_watch_get(ids->w);
    dbuf acl;
    dbuf_init(&acl, 96 * 1024);
    if (!res) {
        ap_op_note(op, "metadata of %s not translated: out of memory", g1);
        goto out;
    }
    const char *o = idm_name(map, ids->pol, IDM_USER, m->owner, res);
    const char *g = idm_name(map, ids->pol, IDM_GROUP, m->group, res);
    char ob[sizeof m->owner], gb[sizeof m->group];
    snprintf(ob, sizeof ob, "%s", o ? o : "");
    snprintf(gb, sizeof gb, "%s", g ? g : "");
    memcpy(m->owner, ob, sizeof ob);
    memcpy(m->group, gb, sizeof gb);
    if (m->acl) {
        bool empty = false;
        idm_err e;
        if (idm_acl(map, ids->pol, m->acl, true, &acl, &empty, res, &e) != 0 || empty || !acl.data) {
            /* Our own x-ms-acl always parses and keeps its base entries; anything else is a bug. */
            ap_op_note(op, "ACL of %s not translated: %s", g1, empty ? "nothing left" : e.message);
            free(m->acl);
            m->acl = NULL;
        } else {
            free(m->acl);
            m->acl = dbuf_take(&acl);
        }
    }
    account(op, g1, res);
out:
    dbuf_free(&acl);
    idm_unref(map);
    free(res);
}

void ap_ids_owner(aop *op, const char *owner, const char *group, char o[256], char g[256])
{
    ap_ids *ids = op->a->ids;
    snprintf(o, 256, "%s", owner ? owner : "");
    snprintf(g, 256, "%s", group ? group : "");
    if (!ids->w) return;
    idm_result *res = result_new();
    if (!res) { /* cannot tell: send nothing rather than names Gen2 may take for someone else */
        o[0] = g[0] = '\0';
        ap_op_note(op, "owner/group of %s not translated: out of memory", op->req->path);
        return;
    }
    idm_map *map = idm_watch_get(ids->w);
    const char *mo = idm_name(map, ids->pol, IDM_USER, owner, res);
    const char *mg = idm_name(map, ids->pol, IDM_GROUP, group, res);
    snprintf(o, 256, "%s", mo ? mo : "");
    snprintf(g, 256, "%s", mg ? mg : "");
    account(op, op->req->path, res);
    idm_unref(map);
    free(res);
}

int ap_ids_aclspec(aop *op, const char *spec, bool with_perm)
{
    ap_ids *ids = op->a->ids;
    op->ids_spec_done = true;
    op->ids_spec_empty = false;
    if (!ids->w) {
        op->ids_spec = spec ? strdup(spec) : NULL;
        return spec && !op->ids_spec ? -1 : 0;
    }
    if (!spec || !*spec) return 0; /* REMOVEACL / REMOVEDEFAULTACL: nothing named */
    idm_result *res = result_new();
    if (!res) return -1;
    idm_map *map = idm_watch_get(ids->w);
    dbuf out;
    dbuf_init(&out, 96 * 1024);
    idm_err e;
    bool empty = false;
    int rc = idm_acl(map, ids->pol, spec, with_perm, &out, &empty, res, &e);
    if (rc == 0 && !empty) {
        op->ids_spec = dbuf_take(&out);
        if (!op->ids_spec) rc = -1;
    }
    op->ids_spec_empty = rc == 0 && empty;
    if (rc == 0) account(op, op->req->path, res);
    dbuf_free(&out);
    idm_unref(map);
    free(res);
    return rc;
}

void ap_ids_settle(aop *op)
{
    if (!op->ids_owed || op->job) return;
    if (op->outcome != APPLY_OK && op->outcome != APPLY_DIVERGENCE && op->outcome != APPLY_RESYNCED) return;
    char buf[1024];
    snprintf(buf, sizeof buf,
             APPLY_IDS_OWED " (%s); the data and what maps applied, the rest is resynced from Gen1 when "
                            "gen2.identity_map changes%s%s",
             op->ids_what, op->detail[0] ? "; also: " : "", op->detail);
    memcpy(op->detail, buf, sizeof op->detail - 1); /* cut to the detail's size */
    op->detail[sizeof op->detail - 1] = '\0';
    op->outcome = APPLY_PARKED;
}
