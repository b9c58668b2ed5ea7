/*
 * applier_acct: account-level Gen2 problems (see applier_send.c for how they hold operations): one
 * breaker per mapped filesystem, the check of every mapped filesystem (get properties) at start and
 * again while a problem lasts, the creation of missing filesystems (gen2.create_filesystems), and the
 * reports: one log line when a problem starts and one when it clears, the text /readyz shows, the
 * admin status and the dualpipe_gen2_account_problem gauges.
 *
 * Scope: a filesystem that does not exist and a role missing on it concern that filesystem only
 * (another mapping's filesystem keeps draining); a credential Gen2 refuses, an account that does not
 * exist and a host name that does not resolve concern the whole account (the Gen2 breaker).
 *
 * The checks and creates are requests of their own (not operations): a->calls_out counts them so
 * that the applier is freed only after the last one ended (ap_call_done).
 */
#include "applier_int.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* One dualpipe_gen2_account_problem series: filesystem fsi has problem p (itself or the account). */
struct ap_probgauge {
    applier *a;
    int fsi;
    gen2c_problem p;
};

int ap_acct_init(applier *a)
{
    const dp_config *cfg = a->cfg;
    a->fsbrk = calloc(cfg->nmappings > 0 ? (size_t)cfg->nmappings : 1, sizeof *a->fsbrk);
    if (!a->fsbrk) return -1;
    for (int i = 0; i < cfg->nmappings; i++) {
        if (ap_acct_fsbrk(a, cfg->mappings[i].filesystem)) continue; /* two mappings, one filesystem */
        ap_breaker *b = &a->fsbrk[a->nfsbrk++];
        b->a = a;
        snprintf(b->fs, sizeof b->fs, "%s", cfg->mappings[i].filesystem);
    }
    return 0;
}

void ap_acct_free(applier *a)
{
    free(a->fsbrk);
    free(a->pgauges);
}

ap_breaker *ap_acct_fsbrk(applier *a, const char *fs)
{
    for (int i = 0; fs && i < a->nfsbrk; i++)
        if (strcmp(a->fsbrk[i].fs, fs) == 0) return &a->fsbrk[i];
    return NULL;
}

/* What is wrong and how to fix it, in one sentence (log, /readyz, status). */
static void problem_text(const applier *a, const char *fs, gen2c_problem p, const char *detail, char *buf,
                         size_t cap)
{
    const char *acct = a->cfg->gen2_account;
    switch (p) {
    case GEN2C_PROB_FS_NOT_FOUND:
        if (a->cfg->gen2_create_filesystems)
            snprintf(buf, cap, "gen2 filesystem '%s' not found on account '%s' (gen2.create_filesystems is on: the "
                               "log says whether creating it worked): create it, or let the proxy's credential create "
                               "filesystems", fs, acct);
        else
            snprintf(buf, cap, "gen2 filesystem '%s' not found on account '%s': create it, or set "
                               "gen2.create_filesystems to true", fs, acct);
        break;
    case GEN2C_PROB_AUTHENTICATION:
        snprintf(buf, cap, "gen2 account '%s' rejects the proxy's credential (%s): fix gen2.auth (account key, SAS or "
                           "client secret) and restart the proxy", acct, detail);
        break;
    case GEN2C_PROB_AUTHORIZATION:
        snprintf(buf, cap, "the proxy's gen2 identity may not write to filesystem '%s' on account '%s' (%s): grant it "
                           "Storage Blob Data Contributor (or Owner) on the filesystem or the account, or use a SAS "
                           "that allows racwdl", fs, acct, detail);
        break;
    case GEN2C_PROB_ACCOUNT_NOT_FOUND:
        snprintf(buf, cap, "gen2 account '%s' does not exist or is disabled (%s): check gen2.account and "
                           "gen2.endpoint", acct, detail);
        break;
    case GEN2C_PROB_UNREACHABLE:
        snprintf(buf, cap, "the gen2 endpoint of account '%s' does not resolve (%s): check gen2.endpoint and "
                           "gen2.account (an account that does not exist has no DNS name) and this host's DNS",
                 acct, detail);
        break;
    default: snprintf(buf, cap, "no problem"); break;
    }
}

void ap_acct_log_start(applier *a, const char *fs, gen2c_problem p, const char *detail)
{
    char text[700];
    problem_text(a, fs, p, detail, text, sizeof text);
    LOGW("msg=\"gen2 account problem: writes to gen2 held pending\" kind=%s filesystem=\"%s\" problem=\"%s\"",
         gen2c_problem_name(p), fs, text);
}

void ap_acct_log_clear(const char *fs, gen2c_problem p, int64_t since_ms, unsigned held)
{
    LOGI("msg=\"gen2 account problem cleared: held writes resume\" kind=%s filesystem=\"%s\" lasted_s=%" PRId64
         " released=%u",
         gen2c_problem_name(p), fs, (ap_real_ms() - since_ms) / 1000, held);
}

void ap_acct_release(applier *a)
{
    for (int i = 0; i < a->nfsbrk; i++) {
        aop *w;
        while ((w = ap_fifo_pop(&a->fsbrk[i].wait_head, &a->fsbrk[i].wait_tail)))
            ap_fifo_push(&a->ready, &a->ready_tail, w);
    }
}

/* ---------------------------------------------------------------- checks and creates */

typedef struct acall {
    applier *a;
    int fsi;
    bool create;                    /* PUT ?resource=filesystem, else HEAD (get properties) */
    bool report;                    /* the start-up check: log the result whatever it is */
} acall;

static void what_of(const httpc_resp *r, char *buf, size_t cap)
{
    char code[64];
    if (r->result != HTTPC_OK)
        snprintf(buf, cap, "Gen2 %s: %s%s%.150s", r->result == HTTPC_E_AUTH ? "not authenticated" : "unreachable",
                 httpc_result_str(r->result), r->error[0] ? ": " : "", r->error);
    else
        snprintf(buf, cap, "Gen2 %ld%s%s", r->status, gen2c_error_code(r, code, sizeof code)[0] ? " " : "", code);
}

static void call_answer(void *ud, httpc_resp *r)
{
    acall *c = ud;
    applier *a = c->a;
    ap_breaker *b = &a->fsbrk[c->fsi];
    pthread_mutex_lock(&a->mu);
    bool stopping = a->stopping;
    pthread_mutex_unlock(&a->mu);
    gen2c_problem p = gen2c_problem_of(r);
    char what[200], code[64];
    what_of(r, what, sizeof what);
    gen2c_error_code(r, code, sizeof code);
    bool answered = r->result == HTTPC_OK && !xlate_retryable(false, r->status);
    if (stopping || r->result == HTTPC_E_CANCELLED) {
        /* shutting down: report nothing */
    } else if (c->create) {
        if (answered && (r->status == 201 || (r->status == 409 && (strcmp(code, "FilesystemAlreadyExists") == 0 ||
                                                                   strcmp(code, "ContainerAlreadyExists") == 0)))) {
            LOGI("msg=\"gen2 filesystem created (gen2.create_filesystems)\" filesystem=\"%s\" status=%ld", b->fs,
                 r->status);
            ap_acct_fine(a, b->fs, false);
        } else {
            LOGW("msg=\"gen2 filesystem could not be created (gen2.create_filesystems)\" filesystem=\"%s\" detail=\"%s\"",
                 b->fs, what);
            if (p != GEN2C_PROB_NONE && !gen2c_problem_per_fs(p)) ap_acct_problem(a, b->fs, p, what);
        }
    } else if (p != GEN2C_PROB_NONE) {
        ap_acct_problem(a, b->fs, p, what);
        if (c->report)
            LOGI("msg=\"gen2 filesystem check\" filesystem=\"%s\" result=%s detail=\"%s\"", b->fs, gen2c_problem_name(p),
                 what);
    } else if (answered && r->status / 100 == 2) {
        if (c->report) LOGI("msg=\"gen2 filesystem check\" filesystem=\"%s\" result=ok status=%ld", b->fs, r->status);
        /* A read proves the filesystem and the credential, not the right to write: an authorization
         * problem stays until a held write goes through. */
        ap_acct_fine(a, b->fs, false);
    } else if (c->report) {
        LOGW("msg=\"gen2 filesystem check\" filesystem=\"%s\" result=unknown detail=\"%s\"", b->fs, what);
    }
    httpc_resp_free(r);
    free(r);
    pthread_mutex_lock(&a->mu);
    if (c->create) b->creating = false;
    else b->checking = false;
    pthread_mutex_unlock(&a->mu);
    free(c);
    ap_call_done(a);
}

/* Send a check or a create for filesystem fsi unless one is out. Returns 0 or -1. */
static int call_fs(applier *a, int fsi, bool create, bool report)
{
    ap_breaker *b = &a->fsbrk[fsi];
    acall *c = calloc(1, sizeof *c);
    if (!c) return -1;
    c->a = a;
    c->fsi = fsi;
    c->create = create;
    c->report = report;
    pthread_mutex_lock(&a->mu);
    bool *flag = create ? &b->creating : &b->checking;
    if (a->stopping || *flag) {
        pthread_mutex_unlock(&a->mu);
        free(c);
        return -1;
    }
    *flag = true;
    a->calls_out++;
    pthread_mutex_unlock(&a->mu);
    gen2c_call call;
    memset(&call, 0, sizeof call);
    call.method = create ? "PUT" : "HEAD";
    call.fs = b->fs;
    call.path = "";
    call.query = "resource=filesystem";
    call.in = HTTPC_IN_NONE;
    call.in_fd = -1;
    call.out = HTTPC_BODY_MEMORY;
    call.out_max = 64 * 1024;
    call.done = call_answer;
    call.ud = c;
    if (gen2c_send(a->g2, &call) == 0) return 0;
    pthread_mutex_lock(&a->mu);
    *flag = false;
    pthread_mutex_unlock(&a->mu);
    free(c);
    ap_call_done(a);
    return -1;
}

void ap_acct_maybe_create(applier *a, const char *fs)
{
    ap_breaker *b = ap_acct_fsbrk(a, fs);
    if (!a->cfg->gen2_create_filesystems || !b) return;
    LOGI("msg=\"gen2 filesystem not found: creating it (gen2.create_filesystems)\" filesystem=\"%s\"", fs);
    call_fs(a, (int)(b - a->fsbrk), true, true);
}

void applier_gen2_check(applier *a)
{
    pthread_mutex_lock(&a->mu);
    bool first = !a->checked;
    a->checked = true;
    bool account = a->brk[1].problem != GEN2C_PROB_NONE;
    pthread_mutex_unlock(&a->mu);
    for (int i = 0; i < a->nfsbrk; i++) {
        pthread_mutex_lock(&a->mu);
        const ap_breaker *b = &a->fsbrk[i];
        /* Later rounds ask only what a read can settle (not whether writes are allowed). */
        bool want = first || (b->open && b->problem != GEN2C_PROB_AUTHORIZATION) || (account && i == 0);
        pthread_mutex_unlock(&a->mu);
        if (want) call_fs(a, i, false, first);
    }
}

/* ---------------------------------------------------------------- reports */

/* Call fn for each problem (a->mu held): the account's first, then each filesystem's. */
typedef void (*prob_fn)(void *ud, const char *fs, const ap_breaker *b);

static void each_problem(applier *a, prob_fn fn, void *ud)
{
    if (a->brk[1].problem != GEN2C_PROB_NONE) fn(ud, "", &a->brk[1]);
    for (int i = 0; i < a->nfsbrk; i++)
        if (a->fsbrk[i].problem != GEN2C_PROB_NONE) fn(ud, a->fsbrk[i].fs, &a->fsbrk[i]);
}

typedef struct text_ctx {
    applier *a;
    dbuf *out;
    int n, rc;
} text_ctx;

static void add_text(void *ud, const char *fs, const ap_breaker *b)
{
    text_ctx *t = ud;
    char text[700];
    problem_text(t->a, fs, b->problem, b->problem_detail, text, sizeof text);
    if (!t->rc) t->rc = dbuf_printf(t->out, "%s; writes to it are held pending and go out once it is fixed\n", text);
    t->n++;
}

int applier_gen2_problems(applier *a, dbuf *out)
{
    text_ctx t = {a, out, 0, 0};
    pthread_mutex_lock(&a->mu);
    each_problem(a, add_text, &t);
    pthread_mutex_unlock(&a->mu);
    return t.rc ? -1 : t.n;
}

typedef struct json_ctx {
    applier *a;
    json_t *arr;
} json_ctx;

static void add_json(void *ud, const char *fs, const ap_breaker *b)
{
    json_ctx *j = ud;
    char text[700];
    problem_text(j->a, fs, b->problem, b->problem_detail, text, sizeof text);
    json_int_t waiting = 0; /* behind the probe */
    for (const aop *w = b->wait_head; w; w = w->qnext) waiting++;
    json_array_append_new(j->arr, json_pack("{s:s,s:s,s:I,s:I,s:s,s:s}", "kind", gen2c_problem_name(b->problem),
                                            "filesystem", fs, "since_ms", (json_int_t)b->problem_since_ms, "waiting",
                                            waiting, "detail", b->problem_detail, "message", text));
}

json_t *ap_acct_status_json(applier *a)
{
    json_ctx j = {a, json_array()};
    if (j.arr) each_problem(a, add_json, &j);
    return j.arr;
}

static int64_t problem_gauge(void *ud)
{
    const struct ap_probgauge *g = ud;
    applier *a = g->a;
    pthread_mutex_lock(&a->mu);
    int64_t v = a->fsbrk[g->fsi].problem == g->p || a->brk[1].problem == g->p;
    pthread_mutex_unlock(&a->mu);
    return v;
}

int ap_acct_register_metrics(applier *a, metrics *m)
{
    int n = a->nfsbrk * (GEN2C_PROB__COUNT - 1);
    a->pgauges = calloc(n > 0 ? (size_t)n : 1, sizeof *a->pgauges);
    if (!a->pgauges) return -1;
    int k = 0, bad = 0;
    for (int i = 0; i < a->nfsbrk; i++) {
        for (int p = 1; p < GEN2C_PROB__COUNT; p++, k++) {
            struct ap_probgauge *g = &a->pgauges[k];
            g->a = a;
            g->fsi = i;
            g->p = (gen2c_problem)p;
            char labels[160];
            snprintf(labels, sizeof labels, "kind=\"%s\",filesystem=\"%s\"", gen2c_problem_name(g->p), a->fsbrk[i].fs);
            bad |= metrics_gauge_fn(m, "dualpipe_gen2_account_problem",
                                    "1 while an account-level Gen2 problem holds this filesystem's writes pending "
                                    "(see /readyz for what is wrong and how to fix it).",
                                    labels, problem_gauge, g) != 0;
        }
    }
    return bad ? -1 : 0;
}
