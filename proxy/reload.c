/*
 * reload: the SIGHUP hook registry and the reload sequence (reload.h). The registry is a small fixed
 * array under a mutex; rl_reload copies it before calling anything, so a hook may (un)register
 * without deadlocking and no hook runs under the lock.
 */
#include "reload.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "log.h"

typedef struct rl_hook {
    const char *name;
    const char *const *keys;
    rl_fn fn;
    void *arg;
} rl_hook;

static pthread_mutex_t rl_mu = PTHREAD_MUTEX_INITIALIZER;
static rl_hook rl_hooks[RL_MAX_HOOKS];
static int rl_nhooks;

int rl_register(const char *name, const char *const *keys, rl_fn fn, void *arg)
{
    int rc = -1;
    pthread_mutex_lock(&rl_mu);
    if (rl_nhooks < RL_MAX_HOOKS) {
        rl_hooks[rl_nhooks++] = (rl_hook){.name = name, .keys = keys, .fn = fn, .arg = arg};
        rc = 0;
    }
    pthread_mutex_unlock(&rl_mu);
    return rc;
}

void rl_unregister(rl_fn fn, void *arg)
{
    pthread_mutex_lock(&rl_mu);
    for (int i = 0; i < rl_nhooks; i++) {
        if (rl_hooks[i].fn != fn || rl_hooks[i].arg != arg) continue;
        memmove(&rl_hooks[i], &rl_hooks[i + 1], (size_t)(rl_nhooks - i - 1) * sizeof rl_hooks[0]);
        rl_nhooks--;
        break;
    }
    pthread_mutex_unlock(&rl_mu);
}

static bool claims(const rl_hook *h, const char *key)
{
    for (int k = 0; h->keys && h->keys[k]; k++)
        if (strcmp(h->keys[k], key) == 0) return true;
    return false;
}

bool rl_key_live(const char *key)
{
    bool live = false;
    pthread_mutex_lock(&rl_mu);
    for (int i = 0; i < rl_nhooks && !live; i++) live = claims(&rl_hooks[i], key);
    pthread_mutex_unlock(&rl_mu);
    return live;
}

static void report_restart(void *ud, const char *key)
{
    (void)ud;
    if (!rl_key_live(key)) LOGW("msg=\"reload: key not changed, it needs a restart\" key=%s", key);
}

static void report_applied(void *ud, const char *key)
{
    if (!rl_key_live(key)) return;
    LOGI("msg=\"reload: key changed\" key=%s", key);
    (*(int *)ud)++;
}

int rl_reload(const dp_config *running, const dp_config *prev, const dp_config *nc)
{
    rl_hook hooks[RL_MAX_HOOKS];
    pthread_mutex_lock(&rl_mu);
    int n = rl_nhooks;
    memcpy(hooks, rl_hooks, (size_t)n * sizeof hooks[0]);
    pthread_mutex_unlock(&rl_mu);

    char err[512];
    for (int i = 0; i < n; i++) {
        err[0] = '\0';
        if (hooks[i].fn(hooks[i].arg, nc, true, err, sizeof err) != 0) {
            LOGE("msg=\"reload refused: nothing changed\" module=%s error=\"%s\"", hooks[i].name, err);
            return -1;
        }
    }
    cfg_diff(running, nc, report_restart, NULL);
    int applied = 0;
    cfg_diff(prev, nc, report_applied, &applied);
    for (int i = 0; i < n; i++) {
        err[0] = '\0';
        if (hooks[i].fn(hooks[i].arg, nc, false, err, sizeof err) != 0)
            LOGE("msg=\"reload: module could not apply its keys\" module=%s error=\"%s\"", hooks[i].name, err);
    }
    return applied;
}
