/*
 * emu_fault: fault rules and request counters for dualpipe-emu (see emu_fault.h for the rule text).
 *
 * Rules are checked in the order they were added. Every matching latency rule adds its delay; the
 * first matching fail/reset rule that fires decides the request's fate. A rule with count=N fires
 * for the next N matching requests and is then spent; a rule with fraction=p fires with probability
 * p, drawn from an xorshift64* generator seeded by --seed, so the same seed and the same request
 * sequence give the same faults. One mutex guards everything: the emulator's request rate is far
 * below the point where it would matter.
 */
#include "emu_fault.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define EMU_FAULT_MAX_RULES 64
#define EMU_FAULT_MAX_COUNTERS 256
#define EMU_FAULT_LABEL 64
#define EMU_FAULT_IDENT 64
#define EMU_FAULT_MAX_ICOUNTERS 512
#define EMU_FAULT_CRIDS 256       /* client request ids remembered (oldest dropped first) */
#define EMU_FAULT_CRID_MAX 128    /* longer ids are kept cut to this (the proxy sends at most 64) */

typedef enum rule_kind { RULE_FAIL, RULE_LATENCY, RULE_RESET, RULE_LOSE } rule_kind;

typedef struct rule {
    char method[16];          /* "*" = any */
    char op[EMU_FAULT_LABEL]; /* "*" = any; case-insensitive */
    char path[256];           /* "" = any; else the raw request path (before '?') must contain it */
    rule_kind kind;
    int status;
    int retry_after_s;
    char code[64];            /* "" = the service's default for the status */
    long count;               /* -1 = unlimited (fraction or always) */
    double fraction;          /* 1.0 = always */
    unsigned latency_ms;
    uint64_t after_bytes;
    unsigned long fired;
} rule;

/* One request's x-ms-client-request-id, for tests that trace a write end to end. */
typedef struct crid_note {
    char key[16 + EMU_FAULT_LABEL + 2]; /* "METHOD op" as in the counters */
    char id[EMU_FAULT_CRID_MAX + 1];
} crid_note;

typedef struct counter {
    char key[16 + EMU_FAULT_LABEL + 2];
    unsigned long n;
} counter;

/* Requests of one identity for one "METHOD OP". */
typedef struct icounter {
    char ident[EMU_FAULT_IDENT];
    char key[16 + EMU_FAULT_LABEL + 2];
    unsigned long n;
} icounter;

struct emu_fault {
    pthread_mutex_t mu;
    uint64_t rng;
    rule rules[EMU_FAULT_MAX_RULES];
    int nrules;
    counter counters[EMU_FAULT_MAX_COUNTERS];
    int ncounters;
    icounter icounters[EMU_FAULT_MAX_ICOUNTERS];
    int nicounters;
    unsigned long fails, resets, delays, losts;
    crid_note crids[EMU_FAULT_CRIDS]; /* ring: the next one goes to crid_next % EMU_FAULT_CRIDS */
    unsigned long crid_next;
    long in_flight;             /* requests begun and not yet done (a gauge: never reset) */
};

emu_fault *emu_fault_new(uint64_t seed)
{
    emu_fault *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    pthread_mutex_init(&f->mu, NULL);
    f->rng = seed ? seed : 0x9e3779b97f4a7c15ULL;
    return f;
}

void emu_fault_free(emu_fault *f)
{
    if (!f) return;
    pthread_mutex_destroy(&f->mu);
    free(f);
}

static double next_unit(emu_fault *f)
{
    f->rng ^= f->rng >> 12;
    f->rng ^= f->rng << 25;
    f->rng ^= f->rng >> 27;
    uint64_t v = f->rng * 0x2545F4914F6CDD1DULL;
    return (double)(v >> 11) / (double)(1ULL << 53);
}

static int parse_long(const char *v, long lo, long hi, long *out)
{
    char *end = NULL;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end != '\0' || x < lo || x > hi) return -1;
    *out = x;
    return 0;
}

static int set_field(rule *r, const char *k, const char *v, char *err, size_t errlen)
{
    long x;
    if (strcmp(k, "method") == 0) {
        if (strlen(v) >= sizeof r->method) goto bad;
        snprintf(r->method, sizeof r->method, "%s", v);
    } else if (strcmp(k, "op") == 0) {
        if (strlen(v) >= sizeof r->op) goto bad;
        snprintf(r->op, sizeof r->op, "%s", v);
    } else if (strcmp(k, "path") == 0) {
        if (!*v || strlen(v) >= sizeof r->path) goto bad;
        snprintf(r->path, sizeof r->path, "%s", v);
    } else if (strcmp(k, "action") == 0) {
        if (strcmp(v, "fail") == 0)
            r->kind = RULE_FAIL;
        else if (strcmp(v, "latency") == 0)
            r->kind = RULE_LATENCY;
        else if (strcmp(v, "reset") == 0)
            r->kind = RULE_RESET;
        else if (strcmp(v, "lose") == 0)
            r->kind = RULE_LOSE;
        else
            goto bad;
    } else if (strcmp(k, "status") == 0) {
        if (parse_long(v, 100, 599, &x)) goto bad;
        r->status = (int)x;
    } else if (strcmp(k, "code") == 0) {
        if (!*v || strlen(v) >= sizeof r->code) goto bad;
        for (const char *c = v; *c; c++)
            if (!((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '.'))
                goto bad;
        snprintf(r->code, sizeof r->code, "%s", v);
    } else if (strcmp(k, "retry_after") == 0) {
        if (parse_long(v, 0, 86400, &x)) goto bad;
        r->retry_after_s = (int)x;
    } else if (strcmp(k, "count") == 0) {
        if (parse_long(v, 1, 1000000000L, &x)) goto bad;
        r->count = x;
    } else if (strcmp(k, "fraction") == 0) {
        char *end = NULL;
        errno = 0;
        double d = strtod(v, &end);
        if (errno || end == v || *end || !(d >= 0.0 && d <= 1.0)) goto bad;
        r->fraction = d;
    } else if (strcmp(k, "latency_ms") == 0) {
        if (parse_long(v, 0, 600000, &x)) goto bad;
        r->latency_ms = (unsigned)x;
    } else if (strcmp(k, "after_bytes") == 0) {
        if (parse_long(v, 0, 1L << 40, &x)) goto bad;
        r->after_bytes = (uint64_t)x;
    } else {
        snprintf(err, errlen, "unknown fault rule key '%s' (expected method, op, path, action, status, "
                              "retry_after, count, fraction, latency_ms, after_bytes, code)", k);
        return -1;
    }
    return 0;
bad:
    snprintf(err, errlen, "bad value for fault rule key '%s'", k);
    return -1;
}

int emu_fault_add(emu_fault *f, const char *text, char *err, size_t errlen)
{
    rule r = {.method = "*", .op = "*", .kind = RULE_FAIL, .status = 503, .count = -1, .fraction = 1.0};
    bool has_action = false, has_latency = false;
    char buf[512];
    if (strlen(text) >= sizeof buf) {
        snprintf(err, errlen, "fault rule too long");
        return -1;
    }
    snprintf(buf, sizeof buf, "%s", text);
    char *save = NULL;
    for (char *tok = strtok_r(buf, ", \t\r\n", &save); tok; tok = strtok_r(NULL, ", \t\r\n", &save)) {
        char *eq = strchr(tok, '=');
        if (!eq) {
            snprintf(err, errlen, "fault rule item '%.40s' is not key=value", tok);
            return -1;
        }
        *eq = '\0';
        if (set_field(&r, tok, eq + 1, err, errlen) != 0) return -1;
        has_action |= strcmp(tok, "action") == 0;
        has_latency |= strcmp(tok, "latency_ms") == 0;
    }
    if (!has_action && has_latency) r.kind = RULE_LATENCY;
    if (r.kind == RULE_LATENCY && r.latency_ms == 0) {
        snprintf(err, errlen, "fault rule with action=latency needs latency_ms");
        return -1;
    }
    pthread_mutex_lock(&f->mu);
    int rc = 0;
    if (f->nrules >= EMU_FAULT_MAX_RULES) {
        snprintf(err, errlen, "too many fault rules (max %d)", EMU_FAULT_MAX_RULES);
        rc = -1;
    } else {
        f->rules[f->nrules++] = r;
    }
    pthread_mutex_unlock(&f->mu);
    return rc;
}

void emu_fault_clear(emu_fault *f)
{
    pthread_mutex_lock(&f->mu);
    f->nrules = 0;
    pthread_mutex_unlock(&f->mu);
}

/* Whether the raw target's path part (up to '?') contains sub. */
static bool path_has(const char *target, const char *sub)
{
    if (!target) return false;
    size_t plen = strcspn(target, "?"), slen = strlen(sub);
    for (size_t i = 0; i + slen <= plen; i++)
        if (memcmp(target + i, sub, slen) == 0) return true;
    return false;
}

static bool matches(const rule *r, const char *method, const char *op, const char *target)
{
    if (strcmp(r->method, "*") != 0 && strcasecmp(r->method, method) != 0) return false;
    if (strcmp(r->op, "*") != 0 && strcasecmp(r->op, op) != 0) return false;
    if (r->path[0] && !path_has(target, r->path)) return false;
    return r->count != 0;
}

static void count_request(emu_fault *f, const char *method, const char *op)
{
    char key[sizeof f->counters[0].key];
    snprintf(key, sizeof key, "%s %s", method, op);
    for (int i = 0; i < f->ncounters; i++) {
        if (strcmp(f->counters[i].key, key) == 0) {
            f->counters[i].n++;
            return;
        }
    }
    if (f->ncounters < EMU_FAULT_MAX_COUNTERS) {
        snprintf(f->counters[f->ncounters].key, sizeof key, "%s", key);
        f->counters[f->ncounters++].n = 1;
    }
}

void emu_fault_count_identity(emu_fault *f, const char *ident, const char *method, const char *op)
{
    char key[sizeof f->icounters[0].key];
    snprintf(key, sizeof key, "%s %s", method, op);
    pthread_mutex_lock(&f->mu);
    int i = 0;
    for (; i < f->nicounters; i++)
        if (strcmp(f->icounters[i].key, key) == 0 && strncmp(f->icounters[i].ident, ident, EMU_FAULT_IDENT - 1) == 0)
            break;
    if (i < f->nicounters) {
        f->icounters[i].n++;
    } else if (f->nicounters < EMU_FAULT_MAX_ICOUNTERS) {
        icounter *c = &f->icounters[f->nicounters++];
        snprintf(c->ident, sizeof c->ident, "%s", ident);
        snprintf(c->key, sizeof c->key, "%s", key);
        c->n = 1;
    }
    pthread_mutex_unlock(&f->mu);
}

void emu_fault_count(emu_fault *f, const char *method, const char *label)
{
    pthread_mutex_lock(&f->mu);
    count_request(f, method, label);
    pthread_mutex_unlock(&f->mu);
}

void emu_fault_check(emu_fault *f, const char *method, const char *op, emu_fault_hit *hit)
{
    emu_fault_check_target(f, method, op, NULL, hit);
}

void emu_fault_check_target(emu_fault *f, const char *method, const char *op, const char *target, emu_fault_hit *hit)
{
    memset(hit, 0, sizeof *hit);
    pthread_mutex_lock(&f->mu);
    count_request(f, method, op);
    for (int i = 0; i < f->nrules; i++) {
        rule *r = &f->rules[i];
        if (!matches(r, method, op, target)) continue;
        if (r->kind != RULE_LATENCY && hit->action != EMU_FAULT_NONE) continue;
        if (r->fraction < 1.0 && next_unit(f) >= r->fraction) continue;
        if (r->count > 0) r->count--;
        r->fired++;
        if (r->kind == RULE_LATENCY) {
            hit->latency_ms += r->latency_ms;
            f->delays++;
        } else if (r->kind == RULE_FAIL) {
            hit->action = EMU_FAULT_FAIL;
            hit->status = r->status;
            hit->retry_after_s = r->retry_after_s;
            snprintf(hit->code, sizeof hit->code, "%s", r->code);
            f->fails++;
        } else if (r->kind == RULE_LOSE) {
            hit->action = EMU_FAULT_LOSE;
            f->losts++;
        } else {
            hit->action = EMU_FAULT_RESET;
            hit->after_bytes = r->after_bytes;
            f->resets++;
        }
    }
    pthread_mutex_unlock(&f->mu);
}

static int json_str(dbuf *out, const char *s)
{
    /* Keys come from method names and op labels; escape anyway so the output is always valid JSON. */
    int rc = dbuf_adds(out, "\"");
    for (; rc == 0 && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            rc = dbuf_printf(out, "\\%c", c);
        else if (c < 0x20)
            rc = dbuf_printf(out, "\\u%04x", c);
        else
            rc = dbuf_add(out, s, 1);
    }
    return rc ? rc : dbuf_adds(out, "\"");
}

int emu_fault_counters_json(emu_fault *f, dbuf *out)
{
    int rc = dbuf_adds(out, "{\"requests\":{");
    pthread_mutex_lock(&f->mu);
    for (int i = 0; rc == 0 && i < f->ncounters; i++) {
        if (i) rc = dbuf_adds(out, ",");
        if (rc == 0) rc = json_str(out, f->counters[i].key);
        if (rc == 0) rc = dbuf_printf(out, ":%lu", f->counters[i].n);
    }
    if (rc == 0)
        rc = dbuf_printf(out, "},\"faults\":{\"fail\":%lu,\"reset\":%lu,\"latency\":%lu,\"lost\":%lu},\"in_flight\":%ld",
                         f->fails, f->resets, f->delays, f->losts, f->in_flight);
    /* "identities":{"NAME":{"total":N,"ops":{"GET OPEN":n,...}},...}, names in order of first request */
    if (rc == 0) rc = dbuf_adds(out, ",\"identities\":{");
    bool first = true;
    for (int i = 0; rc == 0 && i < f->nicounters; i++) {
        bool seen = false;
        for (int k = 0; k < i && !seen; k++) seen = strcmp(f->icounters[k].ident, f->icounters[i].ident) == 0;
        if (seen) continue;
        unsigned long total = 0;
        for (int k = i; k < f->nicounters; k++)
            if (strcmp(f->icounters[k].ident, f->icounters[i].ident) == 0) total += f->icounters[k].n;
        if (!first) rc = dbuf_adds(out, ",");
        first = false;
        if (rc == 0) rc = json_str(out, f->icounters[i].ident);
        if (rc == 0) rc = dbuf_printf(out, ":{\"total\":%lu,\"ops\":{", total);
        bool f2 = true;
        for (int k = i; rc == 0 && k < f->nicounters; k++) {
            if (strcmp(f->icounters[k].ident, f->icounters[i].ident) != 0) continue;
            if (!f2) rc = dbuf_adds(out, ",");
            f2 = false;
            if (rc == 0) rc = json_str(out, f->icounters[k].key);
            if (rc == 0) rc = dbuf_printf(out, ":%lu", f->icounters[k].n);
        }
        if (rc == 0) rc = dbuf_adds(out, "}}");
    }
    if (rc == 0) rc = dbuf_adds(out, "}}");
    pthread_mutex_unlock(&f->mu);
    return rc;
}

void emu_fault_in_flight(emu_fault *f, int delta)
{
    pthread_mutex_lock(&f->mu);
    f->in_flight += delta;
    pthread_mutex_unlock(&f->mu);
}

void emu_fault_reset_counters(emu_fault *f)
{
    pthread_mutex_lock(&f->mu);
    f->ncounters = 0;
    f->nicounters = 0;
    f->fails = f->resets = f->delays = f->losts = 0;
    f->crid_next = 0;
    pthread_mutex_unlock(&f->mu);
}

void emu_fault_note_crid(emu_fault *f, const char *method, const char *op, const char *crid)
{
    if (!crid) return;
    pthread_mutex_lock(&f->mu);
    crid_note *n = &f->crids[f->crid_next % EMU_FAULT_CRIDS];
    snprintf(n->key, sizeof n->key, "%.15s %.*s", method, EMU_FAULT_LABEL, op);
    snprintf(n->id, sizeof n->id, "%s", crid);
    f->crid_next++;
    pthread_mutex_unlock(&f->mu);
}

int emu_fault_crids_json(emu_fault *f, dbuf *out)
{
    int rc = dbuf_adds(out, "{\"client_request_ids\":[");
    pthread_mutex_lock(&f->mu);
    unsigned long first = f->crid_next > EMU_FAULT_CRIDS ? f->crid_next - EMU_FAULT_CRIDS : 0;
    for (unsigned long i = first; rc == 0 && i < f->crid_next; i++) {
        const crid_note *n = &f->crids[i % EMU_FAULT_CRIDS];
        rc = dbuf_adds(out, i > first ? ",{\"request\":" : "{\"request\":");
        if (rc == 0) rc = json_str(out, n->key);
        if (rc == 0) rc = dbuf_adds(out, ",\"id\":");
        if (rc == 0) rc = json_str(out, n->id);
        if (rc == 0) rc = dbuf_adds(out, "}");
    }
    if (rc == 0) rc = dbuf_adds(out, "]}");
    pthread_mutex_unlock(&f->mu);
    return rc;
}

int emu_fault_rules_json(emu_fault *f, dbuf *out)
{
    static const char *const kinds[] = {"fail", "latency", "reset", "lose"};
    int rc = dbuf_adds(out, "{\"rules\":[");
    pthread_mutex_lock(&f->mu);
    for (int i = 0; rc == 0 && i < f->nrules; i++) {
        const rule *r = &f->rules[i];
        rc = dbuf_printf(out, "%s{\"method\":", i ? "," : "");
        if (rc == 0) rc = json_str(out, r->method);
        if (rc == 0) rc = dbuf_adds(out, ",\"op\":");
        if (rc == 0) rc = json_str(out, r->op);
        if (rc == 0 && r->code[0]) rc = dbuf_adds(out, ",\"code\":");
        if (rc == 0 && r->code[0]) rc = json_str(out, r->code);
        if (rc == 0)
            rc = dbuf_printf(out,
                             ",\"action\":\"%s\",\"status\":%d,\"retry_after\":%d,\"remaining\":%ld,"
                             "\"fraction\":%g,\"latency_ms\":%u,\"after_bytes\":%llu,\"fired\":%lu}",
                             kinds[r->kind], r->status, r->retry_after_s, r->count, r->fraction, r->latency_ms,
                             (unsigned long long)r->after_bytes, r->fired);
    }
    if (rc == 0) rc = dbuf_adds(out, "]}");
    pthread_mutex_unlock(&f->mu);
    return rc;
}
