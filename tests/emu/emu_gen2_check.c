/*
 * emu_gen2_check: what every Gen2 operation looks at before it touches a node. Node state (lease
 * state as the service reports it, expired files, appends in flight under a directory), the
 * lookups of the request's filesystem and path that answer 404 themselves, conditional headers
 * (If-Match, If-None-Match, If-Modified-Since, If-Unmodified-Since, also in their x-ms-source-
 * form), the lease a write must name, the SAS permission letters, and the values of x-ms-owner,
 * x-ms-group and x-ms-properties. Also the expiry sweep: files past their expiry time are removed
 * at the start of the next request, unless an append pins them. Everything here runs under the
 * store lock.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "b64.h"
#include "emu_gen2_int.h"
#include "log.h"

/* ================================================================ node state */

bool g2_lease_active(const emu_node *n, int64_t now)
{
    if (!n->lease_id[0]) return false;
    if (n->lease_break_ms) return now < n->lease_break_ms;
    return n->lease_expiry_ms == 0 || now < n->lease_expiry_ms;
}

const char *g2_lease_state(const emu_node *n, int64_t now)
{
    if (!n->lease_id[0]) return "available";
    if (n->lease_break_ms) return now < n->lease_break_ms ? "breaking" : "broken";
    if (n->lease_expiry_ms && now >= n->lease_expiry_ms) return "expired";
    return "leased";
}

bool g2_is_expired(const emu_node *n, int64_t now)
{
    return n->type == EMU_FILE && n->expiry_ms > 0 && now >= n->expiry_ms;
}

bool g2_subtree_busy(const emu_node *n)
{
    if (n->busy) return true;
    for (size_t i = 0; i < n->nchildren; i++)
        if (g2_subtree_busy(n->children[i])) return true;
    return false;
}

/* ================================================================ expiry */

typedef struct nodevec {
    emu_node **v;
    size_t n, cap;
} nodevec;

static void collect_expired(emu_node *n, int64_t now, nodevec *out, int64_t *next)
{
    if (n->type == EMU_FILE && n->expiry_ms > 0) {
        if (now >= n->expiry_ms && !n->busy) {
            if (out->n == out->cap) {
                size_t cap = out->cap ? out->cap * 2 : 16;
                emu_node **v = realloc(out->v, cap * sizeof *v);
                if (!v) return;
                out->v = v;
                out->cap = cap;
            }
            out->v[out->n++] = n;
        } else {
            /* Not due yet, or due but pinned by an append: look again then (or at the next request). */
            int64_t when = now >= n->expiry_ms ? now : n->expiry_ms;
            if (*next == 0 || when < *next) *next = when;
        }
    }
    for (size_t i = 0; i < n->nchildren; i++) collect_expired(n->children[i], now, out, next);
}

/* Remove files whose expiry time has passed (store lock held). Cheap when nothing is due. */
void g2_expire_sweep(emu_gen2 *g)
{
    int64_t now = emu_now_ms();
    if (g->next_expiry_ms == INT64_MAX || (g->next_expiry_ms != 0 && now < g->next_expiry_ms)) return;
    nodevec vec = {0};
    int64_t next = 0;
    collect_expired(emu_store_root(g->s), now, &vec, &next);
    for (size_t i = 0; i < vec.n; i++)
        if (emu_store_remove(g->s, vec.v[i])) LOGW("gen2 expiry: could not remove an expired file");
    free(vec.v);
    g->next_expiry_ms = next ? next : INT64_MAX;
}

void g2_expiry_note(emu_gen2 *g, int64_t when)
{
    if (when > 0 && (g->next_expiry_ms == INT64_MAX || g->next_expiry_ms == 0 || when < g->next_expiry_ms))
        g->next_expiry_ms = when;
}

/* ================================================================ conditions, leases, input checks */

static bool etag_list_matches(const char *list, const emu_node *n)
{
    char mine[24];
    g2_fmt_etag(n, mine, false);
    size_t ml = strlen(mine);
    const char *p = list;
    while (*p) {
        while (*p == ' ' || *p == ',') p++;
        if (!*p) break;
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        while (len > 0 && p[len - 1] == ' ') len--;
        const char *v = p;
        if (len >= 2 && v[0] == 'W' && v[1] == '/') {
            v += 2;
            len -= 2;
        }
        if (len >= 2 && v[0] == '"' && v[len - 1] == '"') {
            v++;
            len -= 2;
        }
        if ((len == 1 && v[0] == '*') || (len == ml && strncasecmp(v, mine, ml) == 0)) return true;
        if (!end) break;
        p = end + 1;
    }
    return false;
}

/* Conditional headers (prefix "" or "x-ms-source-") against n (NULL = absent). Returns 0, 304 (reads:
 * not modified), 412, or 409 (If-None-Match: * and n exists). */
int g2_eval_conditions(const g2_req *q, const emu_node *n, const char *prefix, bool read)
{
    char name[64];
    snprintf(name, sizeof name, "%sIf-Match", prefix);
    const char *im = g2_hdr_ne(q, name);
    snprintf(name, sizeof name, "%sIf-None-Match", prefix);
    const char *inm = g2_hdr_ne(q, name);
    snprintf(name, sizeof name, "%sIf-Modified-Since", prefix);
    const char *ims = g2_hdr_ne(q, name);
    snprintf(name, sizeof name, "%sIf-Unmodified-Since", prefix);
    const char *ius = g2_hdr_ne(q, name);
    if (im && (!n || !etag_list_matches(im, n))) return 412;
    if (inm && n) {
        if (strcmp(inm, "*") == 0) return read ? 304 : 409;
        if (etag_list_matches(inm, n)) return read ? 304 : 412;
    }
    int64_t t;
    if (ius && n && g2_parse_rfc1123(ius, &t) == 0 && n->mtime_ms / 1000 > t) return 412;
    if (ims && n && g2_parse_rfc1123(ims, &t) == 0 && n->mtime_ms / 1000 <= t) return read ? 304 : 412;
    return 0;
}


/* Answer a failed condition the usual way. Returns true when it answered. */
bool g2_cond_fail(g2_req *q, const emu_node *n, int c)
{
    if (c == 0) return false;
    if (c == 304) {
        g2_hdr_node_common(q, n);
        g2_ans_empty(q, 304);
    } else if (c == 409) {
        emu_resp_header(q->r, "x-ms-existing-resource-type", n->type == EMU_DIR ? "directory" : "file");
        g2_ans_err(q, 409, "PathAlreadyExists", "The specified path already exists.");
    } else {
        g2_ans_err(q, 412, "ConditionNotMet", "%s", G2_MSG_COND);
    }
    return true;
}

/* x-ms-lease-id on a write to n. Returns true when it answered (412). */
bool g2_lease_write_fail(g2_req *q, const emu_node *n)
{
    const char *id = g2_hdr_ne(q, "x-ms-lease-id");
    bool active = g2_lease_active(n, emu_now_ms());
    if (active && !id) {
        g2_ans_err(q, 412, "LeaseIdMissing",
                   "There is currently a lease on the resource and no lease ID was specified in the request.");
        return true;
    }
    if (active && strcasecmp(id, n->lease_id) != 0) {
        g2_ans_err(q, 412, "LeaseIdMismatch", "The lease ID specified did not match the lease ID for the resource.");
        return true;
    }
    if (!active && id) {
        g2_ans_err(q, 412, "LeaseNotPresent", "There is currently no lease on the resource.");
        return true;
    }
    return false;
}

/* Lookups that answer 404 themselves. */
emu_node *g2_need_fs(g2_req *q)
{
    char p[80];
    snprintf(p, sizeof p, "/%s", q->fs);
    emu_node *n = emu_store_lookup(q->g->s, p);
    if (!n || n->type != EMU_DIR) {
        if (q->xml)
            g2_ans_err(q, 404, "ContainerNotFound", "The specified container does not exist.");
        else
            g2_ans_err(q, 404, "FilesystemNotFound", "The specified filesystem does not exist.");
        return NULL;
    }
    return n;
}

emu_node *g2_need_path(g2_req *q)
{
    if (!g2_need_fs(q)) return NULL;
    emu_node *n = emu_store_lookup(q->g->s, q->spath);
    if (!n || g2_is_expired(n, emu_now_ms())) {
        g2_ans_err(q, 404, "PathNotFound", "The specified path does not exist.");
        return NULL;
    }
    return n;
}

bool g2_owner_ok(const char *v)
{
    size_t n = strlen(v);
    if (n == 0 || n >= EMU_MAX_PRINCIPAL) return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f || v[i] == ',' || v[i] == ':') return false;
    return true;
}

/* x-ms-properties: "n1=base64,n2=base64". */
bool g2_properties_ok(const char *v)
{
    if (!*v) return true;
    const char *p = v;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        if (!eq || eq == p) return false;
        for (const char *c = p; c < eq; c++)
            if (!isalnum((unsigned char)*c) && *c != '_' && *c != '-' && *c != '.') return false;
        const char *val = eq + 1;
        size_t vl = len - (size_t)(val - p);
        if (vl > 0) {
            unsigned char *buf = malloc(vl);
            long d = buf ? b64_decode(val, vl, buf, vl) : -1;
            free(buf);
            if (d < 0) return false;
        }
        if (!comma) return true;
        p = comma + 1;
    }
}

int g2_set_properties(emu_node *n, const char *v)
{
    char *copy = NULL;
    if (v && *v && !(copy = strdup(v))) return -ENOMEM;
    free(n->properties);
    n->properties = copy;
    return 0;
}

/* SAS: does the caller hold one of the letters? (Other callers always do.) */
bool g2_sas_allows(g2_req *q, const char *letters)
{
    if (q->caller.kind != EMU_AUTH_SAS && q->caller.kind != EMU_AUTH_ACCOUNT_SAS) return true;
    for (const char *l = letters; *l; l++)
        if (strchr(q->caller.sp, *l)) return true;
    emu_auth_fail f;
    emu_auth_permits(&q->caller, letters[0], &f);
    g2_ans_auth_fail(q, &f);
    return false;
}

void g2_save_or_fail(g2_req *q, emu_node *n)
{
    if (emu_store_save(q->g->s, n)) g2_ans_err(q, 500, "InternalError", "The metadata could not be written.");
}
