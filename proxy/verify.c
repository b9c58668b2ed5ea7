/*
 * verify: `dualpipe verify [PATH]` (README "Verify"). Compares Gen1 and Gen2 under PATH with the shared
 * walker (common/upstream/walk): the walker pages Gen1; for each Gen1 directory page the visitor pages
 * the same directory on Gen2 (walk_gen2_lister, x-ms-continuation) and merges the two name-ordered
 * listings, so memory stays at about one Gen2 page per directory being listed, whatever the tree.
 *
 * Per entry present on both sides: type, length (files), permission bits (sticky included; with an ACL
 * the group bits are the mask on both sides), owner and group (Gen1's names through gen2.identity_map,
 * as the applier maps them; a name the map does not know is compared as it is), the full ACL when either
 * side has one (both sides normalised by xlate_meta_from_aclstatus, Gen1's names mapped, entries
 * compared as sets), and for files the modification time Gen2 keeps as the dualpipe_times property
 * (only when the property was written for Gen2's current length: a later append makes it stale, and a
 * file without it counts as "mtime not recorded", not as a difference). Content: with --digest, Gen2's
 * bytes of a file whose digest the proxy recorded (the SHA-256 of a CREATE's body, xlate.h
 * XLATE_DIGEST_KEY, and the CRC-32C that follows appends and copies, XLATE_CRC_KEY; each only when
 * current for Gen2's length) and whose Gen1 time is still the recorded one are read and checked
 * against every current digest; with
 * --deep both sides are read (chunks of 4 MiB, in parallel over the walker's threads, --mb-per-sec) and
 * compared byte for byte (CRC-32C of each side, and against a recorded digest: which side diverged);
 * any other file whose length, metadata and time agree is counted "size-only", never "verified".
 *
 * Live writes: a difference seen during the walk is not reported at once. At the end each difference
 * is rechecked on its own (Gen1 GETFILESTATUS, Gen2 HEAD) once the journal holds no pending record of a
 * related path (an ancestor, the path, or a descendant), waiting up to --settle-timeout: still
 * different then is a difference; equal then is counted as settled; still pending is reported as in
 * flight (exit 3: not proven equal). Parked records are not "pending": a parked path is a difference.
 *
 * --repair: each difference (the topmost of nested ones) becomes a journaled resync (the daemon's admin
 * port, or the journal offline: `dualpipe journal resync`), then, once those resyncs settled, the whole
 * PATH is verified again; the exit status is the second pass's.
 *
 * Resumable: the walker's cursor (--cursor) holds the visitor's state too (counters, the differences
 * found so far, each open directory's Gen2 continuation and unread Gen2 entries), so a run stopped by
 * a signal or a failure of either side resumes where it stopped.
 *
 * Exit status: 0 equal; 3 differences or paths in flight; 1 failed or interrupted (resumable with
 * --cursor); 2 usage error.
 */
#include "verify.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cfg.h"
#include "crc32c.h"
#include "gen1auth.h"
#include "gen1client.h"
#include "gen2client.h"
#include "httpc.h"
#include "idmap.h"
#include "jcli.h"
#include "mcmd.h"
#include "reserved.h"
#include "vrec_cli.h"
#include "walk.h"
#include "whreq.h"
#include "xlate.h"

enum { VF_OK = 0, VF_FAILED = 1, VF_USAGE = 2, VF_DIFF = 3 };

#define VF_CHUNK (4u << 20)      /* --deep reads this much of each side at a time */
#define VF_ACL_MAX (4u << 20)
#define VF_STATUS_MAX 65536

typedef enum dkind {
    D_MISSING, D_EXTRA, D_TYPE, D_LENGTH, D_PERMISSION, D_OWNER, D_GROUP, D_ACL, D_MTIME, D_CONTENT, D_NAME, D_NKINDS
} dkind;
static const char *dkind_name[D_NKINDS] = {"missing", "extra", "type",  "length",  "permission",  "owner",
                                           "group",   "acl",   "mtime", "content", "invalid_name"};

typedef struct diff {
    char *path;      /* Gen1 path */
    dkind k;
    char *detail;
} diff;

typedef struct dlist {
    diff *v;
    size_t n, cap;
} dlist;

/* Counters of one pass (saved in the cursor). */
typedef struct vcount {
    uint64_t compared, files, dirs, size_only, content_ok, mtime_ok, mtime_unrecorded, acl_checked, under_diff,
        not_mapped, bytes_read, digest_recorded, digest_ok;
} vcount;

/* The Gen2 side of one Gen1 directory being listed: continuation and the entries read but not merged. */
typedef struct dstate {
    char *dir;             /* Gen1 directory */
    char *token;           /* Gen2 continuation of the next page ("" before the first) */
    bool started, exhausted;
    xlate_entry *b;
    size_t n, cap, pos;
} dstate;

typedef struct verify {
    const dp_config *cfg;
    gen1c *g1;
    gen2c *g2;
    idm_map *idm;
    bool hadoop, deep, digest;
    unsigned g2page, retries;
    double g2ops, bps;
    size_t max_diffs;
    pthread_mutex_t mu;    /* everything below */
    dstate **ds;
    size_t nds, capds;
    char **bad;            /* Gen1 directories known different (missing on Gen2, or a file there) */
    size_t nbad, capbad;
    dlist diffs;
    uint64_t ndiff;        /* all differences found (diffs holds the first max_diffs) */
    vcount c;
    pthread_mutex_t rl;    /* rate limits */
    double ops_next, bytes_next;
} verify;

/* Wait for n units of a limit of rate per second (0: none). */
static void rate_take(verify *v, double *next, double rate, double n)
{
    if (rate <= 0) return;
    pthread_mutex_lock(&v->rl);
    double t = mcmd_mono_s();
    double at = *next > t ? *next : t;
    *next = at + n / rate;
    pthread_mutex_unlock(&v->rl);
    mcmd_sleep_s(at - t);
}

static char *child_path(const char *dir, const char *name)
{
    char *p = NULL;
    if (asprintf(&p, "%s%s%s", dir, strcmp(dir, "/") ? "/" : "", name) < 0) return NULL;
    return p;
}

/* ---------------------------------------------------------------- differences */

static int dlist_add(dlist *l, const char *path, dkind k, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int dlist_add(dlist *l, const char *path, dkind k, const char *fmt, ...)
{
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 16;
        diff *nv = realloc(l->v, nc * sizeof *nv);
        if (!nv) return -1;
        l->v = nv, l->cap = nc;
    }
    char buf[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    diff *d = &l->v[l->n];
    d->path = strdup(path);
    d->detail = strdup(buf);
    d->k = k;
    if (!d->path || !d->detail) {
        free(d->path);
        free(d->detail);
        return -1;
    }
    l->n++;
    return 0;
}

static void dlist_free(dlist *l)
{
    for (size_t i = 0; i < l->n; i++) free(l->v[i].path), free(l->v[i].detail);
    free(l->v);
    memset(l, 0, sizeof *l);
}

/* Under mu: take the local list's differences (moved). */
static void diffs_commit(verify *v, dlist *l)
{
    for (size_t i = 0; i < l->n; i++) {
        v->ndiff++;
        if (v->diffs.n < v->max_diffs && v->diffs.n == v->diffs.cap) {
            size_t nc = v->diffs.cap ? v->diffs.cap * 2 : 64;
            diff *nv = realloc(v->diffs.v, nc * sizeof *nv);
            if (nv) v->diffs.v = nv, v->diffs.cap = nc;
        }
        if (v->diffs.n < v->max_diffs && v->diffs.n < v->diffs.cap) {
            v->diffs.v[v->diffs.n++] = l->v[i];
        } else {
            free(l->v[i].path);
            free(l->v[i].detail);
        }
    }
    free(l->v);
    memset(l, 0, sizeof *l);
}

/* Under mu. */
static bool is_bad(verify *v, const char *dir)
{
    for (size_t i = 0; i < v->nbad; i++) {
        size_t n = strlen(v->bad[i]);
        if (strncmp(dir, v->bad[i], n) == 0 && (dir[n] == 0 || dir[n] == '/' || n == 1)) return true;
    }
    return false;
}

static void bad_add(verify *v, const char *dir)
{
    if (v->nbad == v->capbad) {
        size_t nc = v->capbad ? v->capbad * 2 : 16;
        char **nb = realloc(v->bad, nc * sizeof *nb);
        if (!nb) return;
        v->bad = nb, v->capbad = nc;
    }
    char *d = strdup(dir);
    if (d) v->bad[v->nbad++] = d;
}

/* ---------------------------------------------------------------- upstream calls */

static void resp_drop(httpc_resp *r)
{
    if (!r) return;
    httpc_resp_free(r);
    free(r);
}

/* One Gen2 request with retries: WALK_OK (*out: a 2xx answer, caller frees with resp_drop), WALK_GONE
 * (404) or WALK_FATAL (err). */
static int g2_req(verify *v, const char *method, const char *fs, const char *path, const char *query,
                  const char *hdr, size_t out_max, httpc_resp **out, char *err, size_t errlen)
{
    *out = NULL;
    unsigned backoff = 200;
    for (unsigned attempt = 0;; attempt++) {
        rate_take(v, &v->ops_next, v->g2ops, 1);
        httpc_sync s;
        httpc_sync_init(&s);
        gen2c_call call = {.method = method, .fs = fs, .path = path, .query = query ? query : "",
                           .out = HTTPC_BODY_MEMORY, .out_max = out_max, .done = httpc_sync_done, .ud = &s};
        if (hdr) call.headers[0] = hdr;
        int sent = gen2c_send(v->g2, &call);
        if (sent == 0)
            (void)httpc_sync_wait(&s);
        else
            httpc_sync_drop(&s);
        if (sent != 0) {
            snprintf(err, errlen, "cannot send %s %s/%s to Gen2", method, fs, path);
            return WALK_FATAL;
        }
        httpc_resp *r = s.resp;
        bool retry = false;
        if (r->result != HTTPC_OK) {
            snprintf(err, errlen, "Gen2 did not answer %s of %s/%s: %s%s%s", method, fs, path,
                     httpc_result_str(r->result), r->error[0] ? ": " : "", r->error);
            retry = r->result != HTTPC_E_AUTH;
        } else if (r->status == 404) {
            resp_drop(r);
            return WALK_GONE;
        } else if (r->status >= 200 && r->status < 300) {
            *out = r;
            return WALK_OK;
        } else {
            char code[128];
            snprintf(err, errlen, "Gen2 answered %ld (%s) to %s of %s/%s", r->status,
                     gen2c_error_code(r, code, sizeof code), method, fs, path);
            retry = r->status == 429 || r->status >= 500;
        }
        resp_drop(r);
        if (!retry || attempt >= v->retries || mcmd_stopping()) return WALK_FATAL;
        mcmd_sleep_s(backoff / 1000.0);
        backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
    }
}

/* One Gen1 GET: through the walker (rate limit, retries) when w is set, else retried here. */
static int g1_get(verify *v, walk *w, const char *path, const char *q, size_t max, dbuf *out, char *err, size_t errlen)
{
    if (w) return walk_get(w, path, q, max, out, err, errlen);
    unsigned backoff = 200;
    for (unsigned attempt = 0;; attempt++) {
        dbuf_reset(out);
        long st = walk_gen1_get(v->g1, path, q, max, out, err, errlen);
        if (st >= 200 && st < 300) return WALK_OK;
        if (st == 404) return WALK_GONE;
        if (!(st == 0 || st == 429 || st >= 500) || attempt >= v->retries || mcmd_stopping()) return WALK_FATAL;
        mcmd_sleep_s(backoff / 1000.0);
        backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
    }
}

/* The next Gen2 page of st's directory (gen2 dir "/" + g2dir) appended to st. */
/* gen2c_map, with a Gen1 path landing on dualpipe's own directory on Gen2 (reserved.h) answered as a name
 * Gen2 cannot hold for the data: it is reported, never compared with (or repaired onto) the fleet's record. */
static gen2c_map_result vmap(verify *v, const char *path, char fs[64], char *g2, size_t cap, char *why, size_t wl)
{
    gen2c_map_result mr = gen2c_map(v->g2, path, fs, g2, cap, why, wl);
    if (mr == GEN2C_MAPPED && dp_reserved_g2(g2)) {
        snprintf(why, wl, "the Gen2 path /%s " DP_RESERVED_WHY, g2);
        return GEN2C_INVALID_NAME;
    }
    return mr;
}

static int g2_more(verify *v, dstate *st, const char *fs, const char *g2dir, char *err, size_t errlen)
{
    char *wdir = NULL;
    if (asprintf(&wdir, "/%s", g2dir) < 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    static const char *const skip[] = {"/" DP_FLEET_DIR, NULL}; /* dualpipe's own: never "extra on Gen2" */
    walk_gen2 lg = {.g2 = v->g2, .fs = fs, .page = v->g2page, .skip = skip};
    xlate_listing page;
    int rc;
    unsigned backoff = 200;
    for (unsigned attempt = 0;; attempt++) {
        memset(&page, 0, sizeof page);
        rate_take(v, &v->ops_next, v->g2ops, 1);
        rc = walk_gen2_lister(&lg, wdir, st->token ? st->token : "", &page, err, errlen);
        if (rc != WALK_RETRY || attempt >= v->retries || mcmd_stopping()) break;
        xlate_listing_free(&page);
        mcmd_sleep_s(backoff / 1000.0);
        backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
    }
    free(wdir);
    st->started = true;
    if (rc == WALK_GONE) {
        xlate_listing_free(&page);
        st->exhausted = true;
        return 0;
    }
    if (rc != WALK_OK) {
        xlate_listing_free(&page);
        return -1;
    }
    if (st->n + (size_t)page.n > st->cap) {
        size_t nc = st->cap ? st->cap : 64;
        while (nc < st->n + (size_t)page.n) nc *= 2;
        xlate_entry *nb = realloc(st->b, nc * sizeof *nb);
        if (!nb) {
            xlate_listing_free(&page);
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        st->b = nb, st->cap = nc;
    }
    for (int i = 0; i < page.n; i++) {
        st->b[st->n++] = page.v[i];
        page.v[i] = (xlate_entry){0};
    }
    free(st->token);
    st->token = page.token;
    page.token = NULL;
    if (!st->token) st->exhausted = true;
    xlate_listing_free(&page);
    return 0;
}

/* ---------------------------------------------------------------- comparing one path */

static const char *map_name(verify *v, idm_kind k, const char *name)
{
    if (!v->idm || !name[0]) return name;
    idm_result res;
    memset(&res, 0, sizeof res);
    const char *m = idm_name(v->idm, IDM_KEEP, k, name, &res);
    return m ? m : name;
}

/* An ACL as a sorted, comma-joined set of entries (malloc'd). */
static char *acl_sorted(const char *acl)
{
    char *dup = strdup(acl ? acl : ""), *save = NULL;
    char *parts[256];
    int n = 0;
    for (char *e = dup ? strtok_r(dup, ",", &save) : NULL; e && n < 256; e = strtok_r(NULL, ",", &save)) parts[n++] = e;
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && strcmp(parts[j - 1], parts[j]) > 0; j--) {
            char *t = parts[j];
            parts[j] = parts[j - 1];
            parts[j - 1] = t;
        }
    dbuf b;
    dbuf_init(&b, 1u << 20);
    for (int i = 0; i < n; i++)
        if ((i && dbuf_adds(&b, ",") != 0) || dbuf_adds(&b, parts[i]) != 0) break;
    free(dup);
    char *r = b.data ? dbuf_take(&b) : strdup("");
    dbuf_free(&b);
    return r;
}

/* The full ACL of the Gen2 node, normalised like Gen1's (m gets acl and mode). WALK_OK/GONE/FATAL. */
static int g2_acl(verify *v, const char *fs, const char *g2path, xlate_meta *m, char *err, size_t errlen)
{
    httpc_resp *r = NULL;
    int rc = g2_req(v, "HEAD", fs, g2path, "action=getAccessControl&upn=false", NULL, 0, &r, err, errlen);
    if (rc != WALK_OK) return rc;
    dbuf b;
    dbuf_init(&b, VF_ACL_MAX);
    xlate_err xe;
    rc = WALK_FATAL;
    if (xlate_aclstatus_json(httpc_resp_header(r, "x-ms-acl"), httpc_resp_header(r, "x-ms-permissions"),
                             httpc_resp_header(r, "x-ms-owner"), httpc_resp_header(r, "x-ms-group"), &b, &xe) != 0 ||
        xlate_meta_from_aclstatus(b.data, b.len, m, &xe) != 0)
        snprintf(err, errlen, "Gen2's ACL of %s/%s cannot be read: %s", fs, g2path, xe.message);
    else rc = WALK_OK;
    dbuf_free(&b);
    resp_drop(r);
    return rc;
}

/* What reading a file's content found. */
typedef struct content {
    bool same;             /* both sides read: byte for byte equal */
    uint64_t at;           /* the first differing offset */
    uint32_t c1, c2;       /* CRC-32C of each side */
    char h1[65], h2[65];   /* SHA-256 of each side (hex; "" when that side was not read or not hashed) */
} content;

static void hex_of(EVP_MD_CTX *x, char out[65])
{
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    out[0] = 0;
    if (!x || EVP_DigestFinal_ex(x, d, &n) != 1 || n != 32) return;
    for (unsigned i = 0; i < n; i++) snprintf(out + 2 * i, 3, "%02x", d[i]);
}

/* Read len bytes of the file from Gen2 and, when both, from Gen1 too, in VF_CHUNK pieces (Gen2's chunk is
 * fetched while Gen1's is). CRC-32C of each side always (cheap); SHA-256 only with sha (the one digest
 * recorded is a SHA-256: it costs more CPU than the reading). WALK_OK (*ct), WALK_GONE or WALK_FATAL (err). */
static int read_content(verify *v, walk *w, const char *path, const char *fs, const char *g2path, uint64_t len,
                        bool both, bool sha, content *ct, uint64_t *read, char *err, size_t errlen)
{
    dbuf a;
    dbuf_init(&a, VF_CHUNK + 1);
    int rc = WALK_OK;
    memset(ct, 0, sizeof *ct);
    ct->same = true;
    EVP_MD_CTX *x1 = both && sha ? EVP_MD_CTX_new() : NULL, *x2 = sha ? EVP_MD_CTX_new() : NULL;
    if (sha && ((both && (!x1 || EVP_DigestInit_ex(x1, EVP_sha256(), NULL) != 1)) || !x2 ||
                EVP_DigestInit_ex(x2, EVP_sha256(), NULL) != 1)) {
        snprintf(err, errlen, "SHA-256 is not available");
        rc = WALK_FATAL;
    }
    for (uint64_t off = 0; off < len && rc == WALK_OK; off += VF_CHUNK) {
        uint64_t n = len - off < VF_CHUNK ? len - off : VF_CHUNK;
        rate_take(v, &v->bytes_next, v->bps, (double)((both ? 2 : 1) * n));
        char q[160], range[96];
        snprintf(q, sizeof q, "op=OPEN&offset=%" PRIu64 "&length=%" PRIu64 "%s", off, n, v->hadoop ? "" : "&read=true");
        snprintf(range, sizeof range, "Range: bytes=%" PRIu64 "-%" PRIu64, off, off + n - 1);
        /* Gen2's chunk is sent first and read while Gen1's is fetched; a failed first try goes through
         * g2_req's retries */
        rate_take(v, &v->ops_next, v->g2ops, 1);
        httpc_sync s;
        httpc_sync_init(&s);
        gen2c_call call = {.method = "GET", .fs = fs, .path = g2path, .query = "", .out = HTTPC_BODY_MEMORY,
                           .out_max = VF_CHUNK + 1, .done = httpc_sync_done, .ud = &s};
        call.headers[0] = range;
        bool sent = gen2c_send(v->g2, &call) == 0;
        dbuf_reset(&a);
        if (both) rc = g1_get(v, w, path, q, VF_CHUNK + 1, &a, err, errlen);
        httpc_resp *r = NULL;
        if (sent) {
            r = httpc_sync_wait(&s);
        } else {
            httpc_sync_drop(&s);
        }
        if (r && !(r->result == HTTPC_OK && r->status >= 200 && r->status < 300)) {
            resp_drop(r);
            r = NULL;
        }
        if (rc != WALK_OK) {
            resp_drop(r);
            break;
        }
        if (!r && (rc = g2_req(v, "GET", fs, g2path, NULL, range, VF_CHUNK + 1, &r, err, errlen)) != WALK_OK) break;
        size_t la = a.len, lb = r->body.len;
        const char *pa = a.data ? a.data : "", *pb = r->body.data ? r->body.data : "";
        ct->c2 = crc32c_extend(ct->c2, pb, lb);
        if (x2) EVP_DigestUpdate(x2, pb, lb);
        *read += lb;
        if (both) {
            ct->c1 = crc32c_extend(ct->c1, pa, la);
            if (x1) EVP_DigestUpdate(x1, pa, la);
            *read += la;
            if (ct->same && (la != n || lb != n || memcmp(pa, pb, n) != 0)) {
                ct->same = false;
                size_t k = 0;
                while (k < la && k < lb && pa[k] == pb[k]) k++;
                ct->at = off + k;
            }
        } else if (lb != n) {
            ct->same = false;
            ct->at = off + lb;
        }
        resp_drop(r);
    }
    if (rc == WALK_OK && sha) {
        if (both) hex_of(x1, ct->h1);
        hex_of(x2, ct->h2);
    }
    EVP_MD_CTX_free(x1);
    EVP_MD_CTX_free(x2);
    dbuf_free(&a);
    return rc;
}

/* After a failed read: true when either side no longer has the file at the length the listing gave. */
static bool changed_meanwhile(verify *v, walk *w, const char *path, const char *fs, const char *g2path, int64_t len)
{
    char e[256];
    dbuf b;
    dbuf_init(&b, VF_STATUS_MAX);
    xlate_meta m;
    memset(&m, 0, sizeof m);
    xlate_err xe;
    int g = g1_get(v, w, path, "op=GETFILESTATUS", VF_STATUS_MAX, &b, e, sizeof e);
    bool changed = g == WALK_GONE ||
                   (g == WALK_OK && (xlate_meta_from_filestatus(b.data, b.len, &m, &xe) != 0 || m.length != len));
    xlate_meta_free(&m);
    dbuf_free(&b);
    if (changed) return true;
    httpc_resp *r = NULL;
    g = g2_req(v, "HEAD", fs, g2path, NULL, NULL, 0, &r, e, sizeof e);
    const char *cl = r ? httpc_resp_header(r, "content-length") : NULL;
    changed = g == WALK_GONE || (g == WALK_OK && (!cl || strtoll(cl, NULL, 10) != len));
    resp_drop(r);
    return changed;
}

/* Compare one path present on both sides: m1 (Gen1's FileStatus), m2 (Gen2's). Differences into l,
 * counts into c. 0, or -1 (err: a request failed). */
static int compare_pair(verify *v, walk *w, const char *path, const char *fs, const char *g2path, xlate_meta *m1,
                        xlate_meta *m2, httpc_resp *pre, dlist *l, vcount *c, bool *bad_dir, char *err, size_t errlen)
{
    c->compared++;
    if (m1->is_dir) c->dirs++;
    else c->files++;
    if (m1->is_dir != m2->is_dir) {
        *bad_dir = m1->is_dir;
        return dlist_add(l, path, D_TYPE, "Gen1 %s, Gen2 %s", m1->is_dir ? "directory" : "file",
                         m2->is_dir ? "directory" : "file");
    }
    int rc = 0;
    if (!m1->is_dir && m1->length != m2->length)
        rc |= dlist_add(l, path, D_LENGTH, "Gen1 %" PRId64 " bytes, Gen2 %" PRId64, m1->length, m2->length);
    const char *o1 = map_name(v, IDM_USER, m1->owner), *g1 = map_name(v, IDM_GROUP, m1->group);
    if (strcmp(o1, m2->owner) != 0) rc |= dlist_add(l, path, D_OWNER, "Gen1 %s (Gen2: %s), Gen2 %s", m1->owner, o1, m2->owner);
    if (strcmp(g1, m2->group) != 0) rc |= dlist_add(l, path, D_GROUP, "Gen1 %s (Gen2: %s), Gen2 %s", m1->group, g1, m2->group);
    if (m1->acl_bit || m2->acl_bit) {
        dbuf b;
        dbuf_init(&b, VF_ACL_MAX);
        int g = g1_get(v, w, path, "op=GETACLSTATUS", VF_ACL_MAX, &b, err, errlen);
        xlate_err xe;
        if (g == WALK_OK && xlate_meta_from_aclstatus(b.data, b.len, m1, &xe) != 0) {
            snprintf(err, errlen, "Gen1's ACL of %s cannot be read: %s", path, xe.message);
            g = WALK_FATAL;
        }
        dbuf_free(&b);
        if (g == WALK_OK) g = g2_acl(v, fs, g2path, m2, err, errlen);
        if (g == WALK_FATAL) return -1;
        if (g == WALK_OK && !m1->acl_over) {
            c->acl_checked++;
            char *a1 = NULL;
            if (m1->acl && v->idm) {
                dbuf mb;
                dbuf_init(&mb, VF_ACL_MAX);
                bool empty = false;
                idm_result res;
                memset(&res, 0, sizeof res);
                idm_err ie;
                if (idm_acl(v->idm, IDM_KEEP, m1->acl, true, &mb, &empty, &res, &ie) == 0 && mb.data)
                    a1 = acl_sorted(mb.data);
                dbuf_free(&mb);
            }
            if (!a1) a1 = acl_sorted(m1->acl);
            char *a2 = acl_sorted(m2->acl);
            if (a1 && a2 && strcmp(a1, a2) != 0) rc |= dlist_add(l, path, D_ACL, "Gen1 %s, Gen2 %s", a1, a2);
            free(a1);
            free(a2);
        }
    }
    if ((m1->mode & 07777) != (m2->mode & 07777))
        rc |= dlist_add(l, path, D_PERMISSION, "Gen1 %04o, Gen2 %04o", m1->mode & 07777u, m2->mode & 07777u);
    if (m1->is_dir || m1->length != m2->length) return rc ? -1 : 0;
    /* the stored modification time and the digest the proxy recorded (the HEAD prefetched for the page,
     * when it was and got an answer) */
    httpc_resp *r = NULL;
    int g;
    if (pre && pre->result == HTTPC_OK && pre->status == 200) r = pre, g = WALK_OK;
    else if (pre && pre->result == HTTPC_OK && pre->status == 404) g = WALK_GONE;
    else g = g2_req(v, "HEAD", fs, g2path, NULL, NULL, 0, &r, err, errlen);
    if (g == WALK_FATAL) return -1;
    bool g1_unchanged = false; /* Gen1's time is the one recorded when the proxy wrote the file */
    char dig[65] = "";
    bool crc_cur = false;      /* a CRC-32C recorded for Gen2's length (dualpipe_crc32c) */
    uint32_t crc = 0;
    if (g == WALK_OK) {
        const char *props = httpc_resp_header(r, "x-ms-properties");
        char val[256];
        int64_t mt = -1, at = -1, ln = -1, dl = -1;
        if (props && xlate_props_get(props, XLATE_TIMES_KEY, val, sizeof val) == 1 &&
            xlate_times_parse(val, &mt, &at, &ln) == 0 && mt >= 0 && ln == m2->length && m1->has_times) {
            if (mt != m1->mtime_ms)
                rc |= dlist_add(l, path, D_MTIME, "Gen1 %" PRId64 " ms, Gen2 (dualpipe_times) %" PRId64 " ms",
                                m1->mtime_ms, mt);
            else c->mtime_ok++, g1_unchanged = true;
        } else {
            c->mtime_unrecorded++;
        }
        if (!(props && xlate_props_get(props, XLATE_DIGEST_KEY, val, sizeof val) == 1 &&
              xlate_digest_parse(val, dig, &dl) == 0 && dl == m2->length))
            dig[0] = 0; /* none, or stale (appended to since) */
        int64_t cl = -1;
        crc_cur = props && xlate_props_get(props, XLATE_CRC_KEY, val, sizeof val) == 1 &&
                  xlate_crc_parse(val, &crc, &cl) == 0 && cl == m2->length;
        if (dig[0] || crc_cur) c->digest_recorded++;
        if (r != pre) resp_drop(r);
    }
    bool recorded = dig[0] || crc_cur;
    bool by_digest = v->digest && recorded && g1_unchanged;
    if (!v->deep && !by_digest) {
        c->size_only++;
        return rc ? -1 : 0;
    }
    content ct;
    /* the CRC-32C, when current, decides which side holds what the proxy wrote; a SHA-256 is computed
     * only when it is the one digest recorded for this length */
    bool sha = dig[0] && !crc_cur;
    g = read_content(v, w, path, fs, g2path, (uint64_t)m1->length, v->deep, sha, &ct, &c->bytes_read, err, errlen);
    if (g == WALK_FATAL && !changed_meanwhile(v, w, path, fs, g2path, m1->length)) return -1;
    if (g != WALK_OK) /* written to or removed while being read (a 416, a short file): the recheck decides */
        return dlist_add(l, path, D_CONTENT, "changed while being read") != 0 || rc ? -1 : 0;
    /* a side holds what the proxy wrote when it matches every digest recorded for this length */
    bool w1 = recorded && (!sha || strcmp(ct.h1, dig) == 0) && (!crc_cur || ct.c1 == crc);
    bool w2 = recorded && (!sha || strcmp(ct.h2, dig) == 0) && (!crc_cur || ct.c2 == crc);
    char rec[128];
    if (dig[0] && crc_cur) snprintf(rec, sizeof rec, "SHA-256 %.16s..., CRC-32C %08x", dig, crc);
    else if (dig[0]) snprintf(rec, sizeof rec, "SHA-256 %s", dig);
    else snprintf(rec, sizeof rec, "CRC-32C %08x", crc);
    if (!v->deep) { /* Gen2 read, against the digest; Gen1 unchanged since it got the same bytes */
        if (ct.same && w2) c->digest_ok++;
        else if (sha)
            rc |= dlist_add(l, path, D_CONTENT, "Gen2's bytes are not the ones the proxy wrote: SHA-256 %s, CRC-32C %08x; "
                            "recorded %s", ct.h2, ct.c2, rec);
        else
            rc |= dlist_add(l, path, D_CONTENT, "Gen2's bytes are not the ones the proxy wrote: CRC-32C %08x, recorded %s",
                            ct.c2, rec);
        return rc ? -1 : 0;
    }
    if (ct.same && (!recorded || w1)) {
        c->content_ok++;
        if (recorded) c->digest_ok++;
    } else if (ct.same) {
        rc |= dlist_add(l, path, D_CONTENT, "both sides hold the same bytes, not the ones the proxy wrote (%s%s%sCRC-32C "
                        "%08x; recorded %s)", sha ? "SHA-256 " : "", sha ? ct.h1 : "", sha ? ", " : "", ct.c1, rec);
    } else {
        const char *who = !recorded ? "" : w1 ? "; Gen1 holds what the proxy wrote, Gen2 does not"
                                       : w2 ? "; Gen2 holds what the proxy wrote, Gen1 does not"
                                            : "; neither holds what the proxy wrote";
        rc |= dlist_add(l, path, D_CONTENT, "first different byte at offset %" PRIu64 "; CRC-32C Gen1 %08x, Gen2 %08x%s",
                        ct.at, ct.c1, ct.c2, who);
    }
    return rc ? -1 : 0;
}

/* Gen2's node at g2path as a FileStatus (HEAD, getAccessControl). WALK_OK/GONE/FATAL. */
static int g2_stat(verify *v, const char *fs, const char *g2path, xlate_meta *m, char *err, size_t errlen)
{
    httpc_resp *h = NULL, *a = NULL;
    int rc = g2_req(v, "HEAD", fs, g2path, NULL, NULL, 0, &h, err, errlen);
    if (rc == WALK_OK) rc = g2_req(v, "HEAD", fs, g2path, "action=getAccessControl&upn=false", NULL, 0, &a, err, errlen);
    if (rc == WALK_OK) {
        xlate_filestatus st;
        xlate_err xe;
        dbuf b;
        dbuf_init(&b, VF_STATUS_MAX);
        rc = WALK_FATAL;
        if (xlate_filestatus_from_head(httpc_resp_header(h, "content-length"), httpc_resp_header(h, "x-ms-resource-type"),
                                       httpc_resp_header(h, "last-modified"), httpc_resp_header(a, "x-ms-owner"),
                                       httpc_resp_header(a, "x-ms-group"), httpc_resp_header(a, "x-ms-permissions"),
                                       &st, &xe) != 0 ||
            dbuf_adds(&b, "{\"FileStatus\":") != 0 || xlate_filestatus_json(&st, "", &b) != 0 ||
            dbuf_adds(&b, "}") != 0 || xlate_meta_from_filestatus(b.data, b.len, m, &xe) != 0)
            snprintf(err, errlen, "Gen2's status of %s/%s cannot be read", fs, g2path);
        else rc = WALK_OK;
        dbuf_free(&b);
    }
    resp_drop(h);
    resp_drop(a);
    return rc;
}

/* Compare one path on its own (the root, a path in another mapping, a recheck). 0 or -1 (err). */
static int check_one(verify *v, walk *w, const char *path, dlist *l, vcount *c, bool *bad_dir, char *err,
                     size_t errlen)
{
    *bad_dir = false;
    char fs[64], why[256];
    char *g2path = malloc(4096);
    xlate_meta m1, m2;
    memset(&m1, 0, sizeof m1);
    memset(&m2, 0, sizeof m2);
    dbuf b;
    dbuf_init(&b, VF_STATUS_MAX);
    int rc = -1;
    if (!g2path) goto out;
    int g1 = g1_get(v, w, path, "op=GETFILESTATUS", VF_STATUS_MAX, &b, err, errlen);
    if (g1 == WALK_FATAL) goto out;
    xlate_err xe;
    if (g1 == WALK_OK && xlate_meta_from_filestatus(b.data, b.len, &m1, &xe) != 0) {
        snprintf(err, errlen, "Gen1's FileStatus of %s cannot be read: %s", path, xe.message);
        goto out;
    }
    gen2c_map_result mr = vmap(v, path, fs, g2path, 4096, why, sizeof why);
    if (mr == GEN2C_UNMAPPED) {
        c->not_mapped++;
        rc = 0;
        goto out;
    }
    if (mr == GEN2C_INVALID_NAME) {
        if (g1 == WALK_OK) rc = dlist_add(l, path, D_NAME, "%s", why);
        else rc = 0;
        *bad_dir = g1 == WALK_OK && m1.is_dir;
        goto out;
    }
    int g2 = g2path[0] == 0 ? WALK_OK : g2_stat(v, fs, g2path, &m2, err, errlen);
    if (g2 == WALK_FATAL) goto out;
    if (g2path[0] == 0) {
        rc = 0; /* a filesystem's root: there, nothing to compare */
        goto out;
    }
    if (g1 == WALK_GONE && g2 == WALK_GONE) rc = 0;
    else if (g1 == WALK_GONE) rc = dlist_add(l, path, D_EXTRA, "only on Gen2 (%s)", m2.is_dir ? "directory" : "file");
    else if (g2 == WALK_GONE) {
        *bad_dir = m1.is_dir;
        rc = dlist_add(l, path, D_MISSING, "only on Gen1 (%s)", m1.is_dir ? "directory" : "file");
    } else rc = compare_pair(v, w, path, fs, g2path, &m1, &m2, NULL, l, c, bad_dir, err, errlen);
out:
    xlate_meta_free(&m1);
    xlate_meta_free(&m2);
    dbuf_free(&b);
    free(g2path);
    return rc;
}

/* ---------------------------------------------------------------- the visitor */

static void vcount_add(vcount *a, const vcount *b)
{
    a->compared += b->compared, a->files += b->files, a->dirs += b->dirs, a->size_only += b->size_only;
    a->content_ok += b->content_ok, a->mtime_ok += b->mtime_ok, a->mtime_unrecorded += b->mtime_unrecorded;
    a->acl_checked += b->acl_checked, a->under_diff += b->under_diff, a->not_mapped += b->not_mapped;
    a->bytes_read += b->bytes_read;
    a->digest_recorded += b->digest_recorded, a->digest_ok += b->digest_ok;
}

static void dstate_free(dstate *s)
{
    if (!s) return;
    for (size_t i = 0; i < s->n; i++) free(s->b[i].name), free(s->b[i].status);
    free(s->b);
    free(s->dir);
    free(s->token);
    free(s);
}

/* Under mu: the state of dir, created when absent. */
static dstate *dstate_get(verify *v, const char *dir)
{
    for (size_t i = 0; i < v->nds; i++)
        if (strcmp(v->ds[i]->dir, dir) == 0) return v->ds[i];
    if (v->nds == v->capds) {
        size_t nc = v->capds ? v->capds * 2 : 16;
        dstate **n = realloc(v->ds, nc * sizeof *n);
        if (!n) return NULL;
        v->ds = n, v->capds = nc;
    }
    dstate *s = calloc(1, sizeof *s);
    if (!s || !(s->dir = strdup(dir)) || !(s->token = strdup(""))) {
        dstate_free(s);
        return NULL;
    }
    v->ds[v->nds++] = s;
    return s;
}

/* Under mu. */
static void dstate_drop(verify *v, dstate *s)
{
    for (size_t i = 0; i < v->nds; i++)
        if (v->ds[i] == s) {
            v->ds[i] = v->ds[--v->nds];
            break;
        }
    dstate_free(s);
}

/* Under mu: forget the first k buffered entries. */
static void dstate_consume(dstate *s, size_t k)
{
    for (size_t i = 0; i < k; i++) free(s->b[i].name), free(s->b[i].status);
    memmove(s->b, s->b + k, (s->n - k) * sizeof *s->b);
    s->n -= k;
    s->pos = 0;
}

static int meta_of(const xlate_entry *e, xlate_meta *m, const char *side, const char *path, char *err, size_t errlen)
{
    xlate_err xe;
    memset(m, 0, sizeof *m);
    if (xlate_meta_from_filestatus(e->status, strlen(e->status), m, &xe) == 0) return 0;
    snprintf(err, errlen, "%s's FileStatus of %s cannot be read: %s", side, path, xe.message);
    return -1;
}

typedef struct pagework {
    dlist l;
    vcount c;
    char **bad;
    size_t nbad;
} pagework;

static void pw_bad(pagework *pw, const char *path)
{
    char **n = realloc(pw->bad, (pw->nbad + 1) * sizeof *n);
    if (!n) return;
    pw->bad = n;
    if ((pw->bad[pw->nbad] = strdup(path))) pw->nbad++;
}

static void pw_free(pagework *pw)
{
    dlist_free(&pw->l);
    for (size_t i = 0; i < pw->nbad; i++) free(pw->bad[i]);
    free(pw->bad);
}

/* A Gen1 entry (e1, may be NULL) against a Gen2 entry (e2, may be NULL) of the same name. */
static int merge_one(verify *v, walk *w, const char *dir, const char *fs, const char *g2dir, const xlate_entry *e1,
                     const xlate_entry *e2, httpc_resp *pre, pagework *pw, char *err, size_t errlen)
{
    const char *name = e1 ? e1->name : e2->name;
    char *path = child_path(dir, name);
    char *g2path = NULL;
    if (!path || asprintf(&g2path, "%s%s%s", g2dir, g2dir[0] ? "/" : "", name) < 0) {
        free(path);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int rc = 0;
    xlate_meta m1, m2;
    memset(&m1, 0, sizeof m1);
    memset(&m2, 0, sizeof m2);
    if (e1 && meta_of(e1, &m1, "Gen1", path, err, errlen) != 0) rc = -1;
    else if (e2 && meta_of(e2, &m2, "Gen2", path, err, errlen) != 0) rc = -1;
    else if (!e2) {
        pw->c.compared++;
        if (m1.is_dir) pw_bad(pw, path);
        rc = dlist_add(&pw->l, path, D_MISSING, "only on Gen1 (%s)", m1.is_dir ? "directory" : "file");
    } else if (!e1) {
        rc = dlist_add(&pw->l, path, D_EXTRA, "only on Gen2 (%s)", m2.is_dir ? "directory" : "file");
    } else {
        bool bad = false;
        rc = compare_pair(v, w, path, fs, g2path, &m1, &m2, pre, &pw->l, &pw->c, &bad, err, errlen);
        if (bad) pw_bad(pw, path);
    }
    if (rc != 0 && !err[0]) snprintf(err, errlen, "out of memory");
    xlate_meta_free(&m1);
    xlate_meta_free(&m2);
    free(path);
    free(g2path);
    return rc;
}

/* The merged entries of one page, compared after their HEADs were prefetched. */
typedef struct item {
    int i1;            /* Gen1 page index, or -1 */
    long i2;           /* index in the directory's Gen2 buffer, or -1 */
    httpc_resp *pre;   /* the prefetched HEAD of a pair of files (or NULL) */
} item;

typedef struct items {
    item *v;
    size_t n, cap;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned inflight;
    bool sync_init;
} items;

static int items_add(items *t, int i1, long i2)
{
    if (t->n == t->cap) {
        size_t nc = t->cap ? t->cap * 2 : 64;
        item *nv = realloc(t->v, nc * sizeof *nv);
        if (!nv) return -1;
        t->v = nv, t->cap = nc;
    }
    t->v[t->n++] = (item){i1, i2, NULL};
    return 0;
}

static void items_free(items *t)
{
    for (size_t i = 0; i < t->n; i++) resp_drop(t->v[i].pre);
    free(t->v);
    if (t->sync_init) {
        pthread_mutex_destroy(&t->mu);
        pthread_cond_destroy(&t->cv);
    }
    memset(t, 0, sizeof *t);
}

typedef struct pf_slot {
    items *t;
    size_t i;
} pf_slot;

static void pf_done(void *ud, httpc_resp *r)
{
    pf_slot *s = ud;
    pthread_mutex_lock(&s->t->mu);
    s->t->v[s->i].pre = r;
    s->t->inflight--;
    pthread_cond_broadcast(&s->t->cv);
    pthread_mutex_unlock(&s->t->mu);
}

#define VF_PREFETCH 32 /* HEADs in flight per page */

/* Send the HEAD of every pair of files of t at once (at most VF_PREFETCH in flight) and wait for the
 * answers. A HEAD that could not be sent is left NULL (compare_pair sends it itself). 0 or -1 (memory). */
static int prefetch(verify *v, const dstate *st, const xlate_listing *page, items *t, const char *fs, const char *g2dir)
{
    size_t want = 0;
    for (size_t i = 0; i < t->n; i++)
        want += t->v[i].i1 >= 0 && t->v[i].i2 >= 0 && !page->v[t->v[i].i1].is_dir && !st->b[t->v[i].i2].is_dir;
    if (want == 0) return 0;
    pf_slot *slots = calloc(t->n, sizeof *slots);
    char **paths = calloc(t->n, sizeof *paths);
    if (!slots || !paths) {
        free(slots);
        free(paths);
        return -1;
    }
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, NULL);
    t->sync_init = true;
    int rc = 0;
    for (size_t i = 0; i < t->n; i++) {
        const item *x = &t->v[i];
        if (x->i1 < 0 || x->i2 < 0 || page->v[x->i1].is_dir || st->b[x->i2].is_dir) continue;
        if (asprintf(&paths[i], "%s%s%s", g2dir, g2dir[0] ? "/" : "", page->v[x->i1].name) < 0) {
            paths[i] = NULL;
            rc = -1;
            break;
        }
        rate_take(v, &v->ops_next, v->g2ops, 1);
        pthread_mutex_lock(&t->mu);
        while (t->inflight >= VF_PREFETCH) pthread_cond_wait(&t->cv, &t->mu);
        t->inflight++;
        pthread_mutex_unlock(&t->mu);
        slots[i] = (pf_slot){t, i};
        gen2c_call call = {.method = "HEAD", .fs = fs, .path = paths[i], .query = "", .out = HTTPC_BODY_MEMORY,
                           .done = pf_done, .ud = &slots[i]};
        if (gen2c_send(v->g2, &call) != 0) {
            pthread_mutex_lock(&t->mu);
            t->inflight--;
            pthread_mutex_unlock(&t->mu);
        }
    }
    pthread_mutex_lock(&t->mu);
    while (t->inflight > 0) pthread_cond_wait(&t->cv, &t->mu);
    pthread_mutex_unlock(&t->mu);
    for (size_t i = 0; i < t->n; i++) free(paths[i]);
    free(paths);
    free(slots);
    return rc;
}

static int vf_page(void *ud, walk *w, const walk_dir *d, const xlate_listing *page, bool last, char *err,
                   size_t errlen)
{
    verify *v = ud;
    pagework pw;
    memset(&pw, 0, sizeof pw);
    items it = {0};
    err[0] = 0;
    pthread_mutex_lock(&v->mu);
    bool bad = is_bad(v, d->path);
    if (bad) v->c.under_diff += (uint64_t)page->n;
    pthread_mutex_unlock(&v->mu);
    if (bad) return 0; /* the directory itself is reported: its repair covers what is under it */
    int dm = cfg_mapping_of(v->cfg, d->path, NULL);
    char fs[64], why[256];
    char *g2dir = malloc(4096);
    dstate *st = NULL;
    size_t k = 0;
    int rc = -1;
    if (!g2dir) goto oom;
    bool mapped = dm >= 0 && vmap(v, d->path, fs, g2dir, 4096, why, sizeof why) == GEN2C_MAPPED;
    if (mapped) {
        pthread_mutex_lock(&v->mu);
        st = dstate_get(v, d->path);
        pthread_mutex_unlock(&v->mu);
        if (!st) goto oom;
        k = st->pos;
    }
    for (int i = 0; i <= page->n; i++) {
        const xlate_entry *e1 = i < page->n ? &page->v[i] : NULL;
        char *cp = e1 ? child_path(d->path, e1->name) : NULL;
        if (e1 && !cp) goto oom;
        int cm = cp ? cfg_mapping_of(v->cfg, cp, NULL) : dm;
        if (e1 && (!mapped || cm != dm)) {
            /* unmapped, or the root of another mapping: compared on its own */
            bool b = false;
            int r = cm < 0 ? (pw.c.not_mapped++, 0) : check_one(v, w, cp, &pw.l, &pw.c, &b, err, errlen);
            if (b) pw_bad(&pw, cp);
            free(cp);
            if (r != 0) goto fail;
            /* a Gen2 entry of the same name in this directory is that mapping's business */
            while (mapped) {
                if (k == st->n && !st->exhausted && g2_more(v, st, fs, g2dir, err, errlen) != 0) goto fail;
                if (k < st->n && strcmp(st->b[k].name, e1->name) < 0) {
                    if (items_add(&it, -1, (long)k) != 0) goto oom;
                    k++;
                    continue;
                }
                if (k < st->n && strcmp(st->b[k].name, e1->name) == 0) k++;
                break;
            }
            continue;
        }
        if (e1) {
            char why2[256], f2[64];
            char *g2c = malloc(4096);
            gen2c_map_result mr = g2c ? vmap(v, cp, f2, g2c, 4096, why2, sizeof why2) : GEN2C_MAPPED;
            free(g2c);
            if (mr == GEN2C_INVALID_NAME) {
                int r = dlist_add(&pw.l, cp, D_NAME, "%s", why2);
                if (e1->is_dir) pw_bad(&pw, cp);
                pw.c.compared++;
                free(cp);
                if (r != 0) goto oom;
                continue;
            }
        }
        free(cp);
        if (!mapped) continue;
        /* merge: Gen2 entries before e1 are extra; the same name is a pair; after e1, e1 is missing */
        for (;;) {
            if (k == st->n && !st->exhausted) {
                if (!e1 && !last) break; /* the rest belongs to the next Gen1 page */
                if (g2_more(v, st, fs, g2dir, err, errlen) != 0) goto fail;
                continue;
            }
            const xlate_entry *e2 = k < st->n ? &st->b[k] : NULL;
            int cmp = !e1 ? (e2 ? 1 : 0) : !e2 ? -1 : strcmp(e1->name, e2->name);
            if (!e1 && !e2) break;
            if (!e1 && !last) break;
            if (cmp > 0) {
                if (items_add(&it, -1, (long)k) != 0) goto oom;
                k++;
                continue;
            }
            if (items_add(&it, i, cmp == 0 ? (long)k : -1) != 0) goto oom;
            if (cmp == 0) k++;
            break;
        }
    }
    /* the pairs of files: their Gen2 HEADs (stored time, digest) all at once, then the comparisons */
    if (mapped && prefetch(v, st, page, &it, fs, g2dir) != 0) goto oom;
    for (size_t q = 0; q < it.n; q++) {
        const xlate_entry *e1 = it.v[q].i1 >= 0 ? &page->v[it.v[q].i1] : NULL;
        const xlate_entry *e2 = it.v[q].i2 >= 0 ? &st->b[it.v[q].i2] : NULL;
        if (merge_one(v, w, d->path, fs, g2dir, e1, e2, it.v[q].pre, &pw, err, errlen) != 0) goto fail;
    }
    pthread_mutex_lock(&v->mu);
    if (st) {
        if (last) dstate_drop(v, st);
        else dstate_consume(st, k);
    }
    diffs_commit(v, &pw.l);
    vcount_add(&v->c, &pw.c);
    for (size_t i = 0; i < pw.nbad; i++) bad_add(v, pw.bad[i]);
    pthread_mutex_unlock(&v->mu);
    rc = 0;
    goto out;
oom:
    snprintf(err, errlen, "out of memory");
fail:
    if (!err[0]) snprintf(err, errlen, "out of memory");
out:
    items_free(&it);
    pw_free(&pw);
    free(g2dir);
    return rc;
}

/* ---------------------------------------------------------------- cursor state */

static json_t *vcount_json(const vcount *c)
{
    json_t *j = json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "compared", (json_int_t)c->compared,
                          "files", (json_int_t)c->files, "dirs", (json_int_t)c->dirs, "size_only",
                          (json_int_t)c->size_only, "content_verified", (json_int_t)c->content_ok, "mtime_verified",
                          (json_int_t)c->mtime_ok, "mtime_not_recorded", (json_int_t)c->mtime_unrecorded,
                          "acl_compared", (json_int_t)c->acl_checked, "under_a_difference", (json_int_t)c->under_diff,
                          "not_mapped", (json_int_t)c->not_mapped, "bytes_read", (json_int_t)c->bytes_read);
    if (j) {
        json_object_set_new(j, "digest_recorded", json_integer((json_int_t)c->digest_recorded));
        json_object_set_new(j, "digest_verified", json_integer((json_int_t)c->digest_ok));
    }
    return j;
}

static void vcount_load(vcount *c, const json_t *j)
{
#define L(f, k) c->f = (uint64_t)json_integer_value(json_object_get(j, k))
    L(compared, "compared"); L(files, "files"); L(dirs, "dirs"); L(size_only, "size_only");
    L(content_ok, "content_verified"); L(mtime_ok, "mtime_verified"); L(mtime_unrecorded, "mtime_not_recorded");
    L(acl_checked, "acl_compared"); L(under_diff, "under_a_difference"); L(not_mapped, "not_mapped");
    L(bytes_read, "bytes_read"); L(digest_recorded, "digest_recorded"); L(digest_ok, "digest_verified");
#undef L
}

static json_t *diffs_json(const dlist *l)
{
    json_t *a = json_array();
    for (size_t i = 0; i < l->n; i++)
        json_array_append_new(a, json_pack("{s:s,s:s,s:s}", "path", l->v[i].path, "kind", dkind_name[l->v[i].k],
                                           "detail", l->v[i].detail));
    return a;
}

static int diffs_load(dlist *l, const json_t *a)
{
    size_t i;
    json_t *d;
    json_array_foreach(a, i, d) {
        const char *p = json_string_value(json_object_get(d, "path"));
        const char *k = json_string_value(json_object_get(d, "kind"));
        const char *t = json_string_value(json_object_get(d, "detail"));
        int kk = -1;
        for (int q = 0; k && q < D_NKINDS; q++)
            if (strcmp(k, dkind_name[q]) == 0) kk = q;
        if (!p || kk < 0 || dlist_add(l, p, (dkind)kk, "%s", t ? t : "") != 0) return -1;
    }
    return 0;
}

static json_t *vf_save(void *ud)
{
    verify *v = ud;
    pthread_mutex_lock(&v->mu);
    json_t *ds = json_array(), *bad = json_array();
    for (size_t i = 0; i < v->nds; i++) {
        const dstate *s = v->ds[i];
        json_t *b = json_array();
        for (size_t q = s->pos; q < s->n; q++)
            json_array_append_new(b, json_pack("[s,b,s]", s->b[q].name, s->b[q].is_dir, s->b[q].status));
        json_array_append_new(ds, json_pack("{s:s,s:s,s:b,s:b,s:o}", "dir", s->dir, "token", s->token ? s->token : "",
                                            "started", s->started, "exhausted", s->exhausted, "entries", b));
    }
    for (size_t i = 0; i < v->nbad; i++) json_array_append_new(bad, json_string(v->bad[i]));
    json_t *r = json_pack("{s:o,s:o,s:o,s:o,s:I}", "counts", vcount_json(&v->c), "differences", diffs_json(&v->diffs),
                          "dirs", ds, "bad", bad, "differences_total", (json_int_t)v->ndiff);
    pthread_mutex_unlock(&v->mu);
    return r;
}

static int vf_load(void *ud, const json_t *st)
{
    verify *v = ud;
    vcount_load(&v->c, json_object_get(st, "counts"));
    v->ndiff = (uint64_t)json_integer_value(json_object_get(st, "differences_total"));
    if (diffs_load(&v->diffs, json_object_get(st, "differences")) != 0) return -1;
    size_t i;
    json_t *x;
    json_array_foreach(json_object_get(st, "bad"), i, x) {
        if (!json_is_string(x)) return -1;
        bad_add(v, json_string_value(x));
    }
    json_array_foreach(json_object_get(st, "dirs"), i, x) {
        const char *dir = json_string_value(json_object_get(x, "dir"));
        const char *tok = json_string_value(json_object_get(x, "token"));
        json_t *b = json_object_get(x, "entries");
        if (!dir || !tok || !json_is_array(b)) return -1;
        dstate *s = dstate_get(v, dir);
        if (!s) return -1;
        free(s->token);
        s->token = strdup(tok);
        s->started = json_is_true(json_object_get(x, "started"));
        s->exhausted = json_is_true(json_object_get(x, "exhausted"));
        s->cap = json_array_size(b) + 1;
        s->b = calloc(s->cap, sizeof *s->b);
        if (!s->token || !s->b) return -1;
        size_t q;
        json_t *e;
        json_array_foreach(b, q, e) {
            const char *n = json_string_value(json_array_get(e, 0));
            const char *stt = json_string_value(json_array_get(e, 2));
            if (!n || !stt) return -1;
            s->b[s->n] = (xlate_entry){strdup(n), json_is_true(json_array_get(e, 1)), strdup(stt)};
            if (!s->b[s->n].name || !s->b[s->n].status) return -1;
            s->n++;
        }
    }
    return 0;
}

/* ---------------------------------------------------------------- live writes */

typedef struct pending {
    char **v;
    size_t n, cap;
} pending;

static void pending_rec(void *ud, const json_t *rec)
{
    pending *p = ud;
    const char *path = json_string_value(json_object_get(rec, "path"));
    const char *state = json_string_value(json_object_get(rec, "state"));
    if (!path || (state && strcmp(state, "PARKED") == 0)) return; /* parked: a difference, not in flight */
    if (p->n == p->cap) {
        size_t nc = p->cap ? p->cap * 2 : 64;
        char **nv = realloc(p->v, nc * sizeof *nv);
        if (!nv) return;
        p->v = nv, p->cap = nc;
    }
    char *d = strdup(path);
    if (d) p->v[p->n++] = d;
}

static void pending_free(pending *p)
{
    for (size_t i = 0; i < p->n; i++) free(p->v[i]);
    free(p->v);
    memset(p, 0, sizeof *p);
}

/* The journal's pending (not parked) records' paths. 0, 1 (no journal: nothing pending), -1 (err). */
static int pending_load(const dp_config *cfg, const char *admin, pending *p, char *err, size_t errlen)
{
    pending_free(p);
    struct stat jst;
    if (stat(cfg->journal_dir, &jst) != 0 && errno == ENOENT) return 1;
    bool online = false;
    return jcli_records(cfg, admin, pending_rec, p, &online, err, errlen) == 0 ? 0 : -1;
}

static bool pending_has(const pending *p, const char *path)
{
    for (size_t i = 0; i < p->n; i++)
        if (xlate_path_related(p->v[i], path)) return true;
    return false;
}

/*
 * The differences of a pass, rechecked once the journal settled on them: those still different
 * stay in v->diffs; settled counts those now equal, inflight gets those still pending after the
 * timeout. 0 or -1 (err).
 */
static int recheck(verify *v, const char *admin, double timeout, uint64_t *settled, dlist *inflight, char *err,
                   size_t errlen)
{
    if (v->diffs.n == 0) return 0;
    pending p = {0};
    double until = mcmd_mono_s() + timeout;
    for (;;) {
        int pr = pending_load(v->cfg, admin, &p, err, errlen);
        if (pr < 0) {
            pending_free(&p);
            return -1;
        }
        bool any = false;
        for (size_t i = 0; i < v->diffs.n && !any; i++) any = pending_has(&p, v->diffs.v[i].path);
        if (!any || mcmd_mono_s() >= until || mcmd_stopping()) break;
        mcmd_sleep_s(0.2);
    }
    /* One recheck per path (a path can have several differences), in rounds: check every path of the
     * round, then look at the journal once. A write is journaled before Gen1 sees it, so a difference a
     * check saw is in flight only if a record of the path is pending after that check; not pending then,
     * the write may have been applied meanwhile, and one more check (next round) decides. */
    dlist keep = {0};
    vcount scratch;
    memset(&scratch, 0, sizeof scratch);
    int rc = 0;
    size_t n = 0;
    char **todo = calloc(v->diffs.n, sizeof *todo);
    bool *once = calloc(v->diffs.n, sizeof *once);
    dlist *now = calloc(v->diffs.n, sizeof *now);
    if (!todo || !once || !now) {
        snprintf(err, errlen, "out of memory");
        rc = -1;
    }
    for (size_t i = 0; rc == 0 && i < v->diffs.n; i++) {
        /* a path's differences are next to each other (one page's are committed together) */
        if (n == 0 || strcmp(todo[n - 1], v->diffs.v[i].path) != 0) todo[n++] = v->diffs.v[i].path;
    }
    while (rc == 0 && n > 0) {
        for (size_t i = 0; i < n && rc == 0; i++) {
            bool bad = false;
            dlist_free(&now[i]);
            if (check_one(v, NULL, todo[i], &now[i], &scratch, &bad, err, errlen) != 0) {
                if (!err[0]) snprintf(err, errlen, "out of memory");
                rc = -1;
            }
        }
        if (rc != 0 || pending_load(v->cfg, admin, &p, err, errlen) < 0) {
            rc = -1;
            break;
        }
        bool late = mcmd_mono_s() >= until || mcmd_stopping(), wait = false;
        size_t m = 0;
        for (size_t i = 0; i < n; i++) {
            if (now[i].n == 0) {
                (*settled)++;
                continue;
            }
            bool pend = pending_has(&p, todo[i]);
            if ((pend && late) || (!pend && once[i])) {
                dlist *to = pend ? inflight : &keep;
                for (size_t q = 0; q < now[i].n; q++)
                    dlist_add(to, now[i].v[q].path, now[i].v[q].k, "%s", now[i].v[q].detail);
                continue;
            }
            wait |= pend;
            todo[m] = todo[i];
            once[m] = !pend;
            m++;
        }
        n = m;
        if (wait) mcmd_sleep_s(0.2);
    }
    for (size_t i = 0; now && i < v->diffs.n; i++) dlist_free(&now[i]);
    free(now);
    free(once);
    free(todo);
    pending_free(&p);
    if (rc == 0) {
        /* differences past the listed ones (max_differences) cannot be rechecked: they stay counted */
        uint64_t unlisted = v->ndiff > v->diffs.n ? v->ndiff - v->diffs.n : 0;
        dlist_free(&v->diffs);
        v->diffs = keep;
        v->ndiff = keep.n + unlisted;
        v->c.bytes_read += scratch.bytes_read; /* the other counters count the walk's comparisons only */
    } else {
        dlist_free(&keep);
    }
    return rc;
}

/* ---------------------------------------------------------------- repair */

static int cmp_diff_path(const void *a, const void *b)
{
    return strcmp(((const diff *)a)->path, ((const diff *)b)->path);
}

/* Differences a copy of the node alone repairs: its metadata, not what is under it. */
static bool dkind_node_only(dkind k)
{
    return k == D_PERMISSION || k == D_OWNER || k == D_GROUP || k == D_ACL;
}

/* Add path to the list (an entry as pending_rec would make). */
static void pending_add_path(pending *l, const char *path)
{
    json_t *fake = json_pack("{s:s,s:s}", "path", path, "state", "PENDING");
    pending_rec(l, fake);
    json_decref(fake);
}

/*
 * A journaled resync of each difference (the topmost of nested ones); then wait until they settled.
 * A path whose differences are all metadata (permission, owner, group, ACL) gets a node-only resync:
 * a directory is updated without copying what is under it (a permission fixed on a top directory
 * must not re-copy the tree), and covers nothing below it. The number queued in *queued. 0 or -1 (err).
 */
static int repair(verify *v, const char *config, const char *admin, double timeout, uint64_t *queued, char *err,
                  size_t errlen)
{
    qsort(v->diffs.v, v->diffs.n, sizeof *v->diffs.v, cmp_diff_path);
    pending roots = {0}; /* every path resynced: the wait below */
    pending cover = {0}; /* the whole-tree resyncs among them: they repair what is under them */
    int rc = 0;
    for (size_t i = 0; i < v->diffs.n;) {
        const char *path = v->diffs.v[i].path;
        bool node_only = true, any = false;
        size_t j = i;
        for (; j < v->diffs.n && strcmp(v->diffs.v[j].path, path) == 0; j++) {
            if (v->diffs.v[j].k == D_NAME) continue; /* Gen2 cannot hold the name: nothing to resync */
            any = true;
            if (!dkind_node_only(v->diffs.v[j].k)) node_only = false;
        }
        i = j;
        if (!any) continue;
        bool covered = false;
        for (size_t q = 0; q < cover.n && !covered; q++) covered = xlate_path_related(cover.v[q], path);
        if (covered) continue;
        char *argv[] = {"journal", "resync", (char *)path, "--config", (char *)config, NULL, NULL, NULL, NULL};
        int argc = 5;
        if (node_only) argv[argc++] = "--node";
        if (admin) argv[argc++] = "--admin", argv[argc++] = (char *)admin;
        fflush(stdout);
        if (jcli_main(argc, argv) != 0) {
            snprintf(err, errlen, "the resync of %s was refused (see above)", path);
            rc = -1;
            break;
        }
        pending_add_path(&roots, path);
        if (!node_only) pending_add_path(&cover, path);
        (*queued)++;
    }
    pending_free(&cover);
    if (rc == 0) {
        pending p = {0};
        double until = mcmd_mono_s() + timeout;
        for (;;) {
            if (pending_load(v->cfg, admin, &p, err, errlen) < 0) {
                rc = -1;
                break;
            }
            bool any = false;
            for (size_t i = 0; i < roots.n && !any; i++) any = pending_has(&p, roots.v[i]);
            if (!any) break;
            if (mcmd_mono_s() >= until || mcmd_stopping()) {
                snprintf(err, errlen, "the resyncs did not settle within %.0f s (--settle-timeout); run verify again",
                         timeout);
                rc = -1;
                break;
            }
            mcmd_sleep_s(0.2);
        }
        pending_free(&p);
    }
    pending_free(&roots);
    return rc;
}

/* ---------------------------------------------------------------- command line */

typedef struct vf_args {
    const char *config, *path, *json, *cursor, *admin;
    unsigned threads, page, retries;
    double ops, mbps, settle;
    unsigned long max_diffs;
    bool deep, digest, repair, no_progress, last;
} vf_args;

static void usage(FILE *out)
{
    fprintf(out,
            "usage: dualpipe verify [PATH] --config FILE [options]\n"
            "Compares Gen1 and Gen2 under PATH (default: / when a mapping covers it, else the only mapping's\n"
            "gen1_prefix): missing and extra paths, types, lengths, permissions, owners, groups and ACLs\n"
            "(through gen2.identity_map), the stored modification time, and with --deep the content.\n"
            "Differences seen while the proxy still applies writes there are rechecked once they settle.\n"
            "  --digest             read Gen2's bytes of each file with a digest the proxy recorded when it\n"
            "                       wrote the file (and Gen1 unchanged since) and check them against it\n"
            "  --deep               read both sides and compare the bytes (and each with a recorded digest)\n"
            "                       (without --digest or --deep files are size-only: lengths compared)\n"
            "  --repair             journal a resync of every difference, wait for it, verify again\n"
            "  --json FILE          the full report as JSON (- for stdout)\n"
            "  --cursor FILE        resume file: an interrupted run (Ctrl-C, kill, Gen1 or Gen2 down) resumes\n"
            "  --threads N          parallel listings and comparisons (default 4)\n"
            "  --ops-per-sec N      at most N Gen1 and N Gen2 requests per second (default: no limit)\n"
            "  --mb-per-sec N       --deep reads at most N MiB/s over both sides (default: no limit)\n"
            "  --page-size N        entries per listing page (Gen1 adls dialect and Gen2; default 1000)\n"
            "  --retries N          tries again after a failed request, with backoff (default 5)\n"
            "  --settle-timeout S   how long differences wait for pending journal records (default 60)\n"
            "  --max-differences N  differences listed and rechecked (default 100000; all are counted)\n"
            "  --admin HOST:PORT    the running daemon's admin address (when admin.listen has port 0)\n"
            "  --no-progress        no progress line (there is none anyway when stderr is not a terminal)\n"
            "  --last               show the verify record instead (the last result per verified PATH, kept by\n"
            "                       the daemon in journal.dir) and whether it allows a cutover to gen2-only;\n"
            "                       --json - prints it as JSON\n"
            "Every verify that ends is recorded there (with the daemon when it runs, else in the file itself).\n"
            "Exit status: 0 equal, 3 differences or paths still in flight, 1 failed or interrupted\n"
            "(resumable with --cursor), 2 usage error.\n");
}

static const mcmd CMD = {"verify", usage};
/* the options that take a value */
static const char *const value_opts[] = {"--config",   "--json",      "--cursor",         "--admin",
                                    "--threads",  "--ops-per-sec", "--mb-per-sec",   "--page-size",
                                    "--retries",  "--settle-timeout", "--max-differences", NULL};

static int parse_args(int argc, char **argv, vf_args *a)
{
    memset(a, 0, sizeof *a);
    a->threads = 4;
    a->page = 1000;
    a->retries = 5;
    a->settle = 60;
    a->max_diffs = 100000;
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        double d = 0;
        if (strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0) {
            usage(stdout);
            return -1;
        } else if (strcmp(s, "--deep") == 0) a->deep = true;
        else if (strcmp(s, "--digest") == 0) a->digest = true;
        else if (strcmp(s, "--repair") == 0) a->repair = true;
        else if (strcmp(s, "--no-progress") == 0) a->no_progress = true;
        else if (strcmp(s, "--last") == 0) a->last = true;
        else if (mcmd_takes_value(s, value_opts) && i + 1 >= argc) {
            mcmd_usage_error(&CMD, "%s needs a value\n", s);
            return VF_USAGE;
        } else if (strcmp(s, "--config") == 0) a->config = argv[++i];
        else if (strcmp(s, "--json") == 0) a->json = argv[++i];
        else if (strcmp(s, "--cursor") == 0) a->cursor = argv[++i];
        else if (strcmp(s, "--admin") == 0) a->admin = argv[++i];
        else if (mcmd_takes_value(s, value_opts)) {
            const char *val = argv[++i];
            if (strcmp(s, "--threads") == 0) {
                if (mcmd_num(&CMD, s, val, 1, 64, &d) != 0) return VF_USAGE;
                a->threads = (unsigned)d;
            } else if (strcmp(s, "--ops-per-sec") == 0) {
                if (mcmd_num(&CMD, s, val, 0, 1e6, &d) != 0) return VF_USAGE;
                a->ops = d;
            } else if (strcmp(s, "--mb-per-sec") == 0) {
                if (mcmd_num(&CMD, s, val, 0, 1e6, &d) != 0) return VF_USAGE;
                a->mbps = d;
            } else if (strcmp(s, "--page-size") == 0) {
                if (mcmd_num(&CMD, s, val, 1, 5000, &d) != 0) return VF_USAGE;
                a->page = (unsigned)d;
            } else if (strcmp(s, "--retries") == 0) {
                if (mcmd_num(&CMD, s, val, 0, 100, &d) != 0) return VF_USAGE;
                a->retries = (unsigned)d;
            } else if (strcmp(s, "--settle-timeout") == 0) {
                if (mcmd_num(&CMD, s, val, 0, 86400, &d) != 0) return VF_USAGE;
                a->settle = d;
            } else {
                if (mcmd_num(&CMD, s, val, 1, 1e8, &d) != 0) return VF_USAGE;
                a->max_diffs = (unsigned long)d;
            }
        } else if (s[0] == '-') {
            mcmd_usage_error(&CMD, "unknown option %s (dualpipe verify --help)\n", s);
            return VF_USAGE;
        } else if (!a->path) a->path = s;
        else {
            mcmd_usage_error(&CMD, "one PATH only\n");
            return VF_USAGE;
        }
    }
    if (!a->config) {
        mcmd_usage_error(&CMD, "--config FILE is required (dualpipe verify --help)\n");
        return VF_USAGE;
    }
    if (a->last && (a->path || a->repair || a->cursor || (a->json && strcmp(a->json, "-") != 0))) {
        mcmd_usage_error(&CMD, "--last takes no PATH, --repair or --cursor, and --json - only\n");
        return VF_USAGE;
    }
    return 0;
}

/* ---------------------------------------------------------------- one pass */

static void pass_reset(verify *v)
{
    for (size_t i = 0; i < v->nds; i++) dstate_free(v->ds[i]);
    v->nds = 0;
    for (size_t i = 0; i < v->nbad; i++) free(v->bad[i]);
    v->nbad = 0;
    dlist_free(&v->diffs);
    v->ndiff = 0;
    memset(&v->c, 0, sizeof v->c);
}

/* Walk root, then recheck. VF_OK (done) or VF_FAILED (err). */
static int run_pass(verify *v, const vf_args *ar, const char *root, walk_stats *ws, uint64_t *settled,
                    dlist *inflight, char *err, size_t errlen)
{
    pass_reset(v);
    struct stat cst;
    bool resuming = ar->cursor && stat(ar->cursor, &cst) == 0;
    /* the root itself (a resumed run did it before its cursor was written) */
    bool root_dir = true;
    if (!resuming) {
        dlist l = {0};
        bool bad = false;
        vcount c;
        memset(&c, 0, sizeof c);
        if (check_one(v, NULL, root, &l, &c, &bad, err, errlen) != 0) {
            dlist_free(&l);
            return VF_FAILED;
        }
        dbuf b;
        dbuf_init(&b, VF_STATUS_MAX);
        char e2[256];
        if (walk_gen1_get(v->g1, root, "op=GETFILESTATUS", VF_STATUS_MAX, &b, e2, sizeof e2) == 200) {
            xlate_meta m;
            memset(&m, 0, sizeof m);
            xlate_err xe;
            if (xlate_meta_from_filestatus(b.data, b.len, &m, &xe) == 0) root_dir = m.is_dir;
            xlate_meta_free(&m);
        } else {
            root_dir = false; /* not on Gen1: check_one reported it (extra) or both lack it */
        }
        dbuf_free(&b);
        pthread_mutex_lock(&v->mu);
        if (bad) bad_add(v, root);
        diffs_commit(v, &l);
        vcount_add(&v->c, &c);
        pthread_mutex_unlock(&v->mu);
    }
    memset(ws, 0, sizeof *ws);
    if (root_dir) {
        walk_gen1 lg = {.g1 = v->g1, .hadoop = v->hadoop, .page = ar->page};
        walk_opts wo = {.root = root, .list = walk_gen1_lister, .lud = &lg, .g1 = v->g1, .threads = ar->threads,
                        .ops_per_s = ar->ops, .retries = ar->retries, .cursor = ar->cursor,
                        .progress = !ar->no_progress, .stop = &mcmd_stop, .on_page = vf_page, .save = vf_save,
                        .load = vf_load, .ud = v};
        if (walk_run(&wo, ws, err, errlen) != WALK_DONE) return VF_FAILED;
    }
    if (recheck(v, ar->admin, ar->settle, settled, inflight, err, errlen) != 0) return VF_FAILED;
    return VF_OK;
}

/* ---------------------------------------------------------------- report */

static json_t *pass_json(const verify *v, const walk_stats *ws, uint64_t settled, const dlist *inflight)
{
    json_t *kinds = json_object();
    for (int k = 0; k < D_NKINDS; k++) {
        uint64_t n = 0;
        for (size_t i = 0; i < v->diffs.n; i++) n += v->diffs.v[i].k == (dkind)k;
        json_object_set_new(kinds, dkind_name[k], json_integer((json_int_t)n));
    }
    return json_pack("{s:b,s:o,s:I,s:I,s:o,s:o,s:I,s:o,s:{s:I,s:I,s:I,s:f,s:f,s:b}}", "equal",
                     v->ndiff == 0 && inflight->n == 0, "counts", vcount_json(&v->c), "differences_total",
                     (json_int_t)v->ndiff, "differences_listed", (json_int_t)v->diffs.n, "by_kind", kinds,
                     "differences", diffs_json(&v->diffs), "settled_on_recheck", (json_int_t)settled, "in_flight",
                     diffs_json(inflight), "walk", "entries", (json_int_t)ws->entries, "requests",
                     (json_int_t)ws->requests, "retries", (json_int_t)ws->retries, "seconds", ws->seconds,
                     "entries_per_s", ws->seconds > 0 ? (double)ws->entries / ws->seconds : 0.0, "resumed",
                     ws->resumed);
}

static void print_pass(const json_t *p, const char *title, FILE *out)
{
    const json_t *c = json_object_get(p, "counts"), *w = json_object_get(p, "walk");
#define N(o, k) ((int64_t)json_integer_value(json_object_get(o, k)))
    fprintf(out, "%s\n", title);
    fprintf(out, "  compared %" PRId64 " (files %" PRId64 ", directories %" PRId64 ")\n", N(c, "compared"),
            N(c, "files"), N(c, "dirs"));
    fprintf(out, "  content: verified %" PRId64 " (both sides read), by digest %" PRId64 " (Gen2 read), size-only %"
            PRId64 "%s\n", N(c, "content_verified"), N(c, "digest_verified"), N(c, "size_only"),
            N(c, "size_only") ? " (lengths compared, bytes not read: --digest or --deep reads them)" : "");
    fprintf(out, "  digests recorded by the proxy (current): %" PRId64 "\n", N(c, "digest_recorded"));
    fprintf(out, "  modification time: verified %" PRId64 ", not recorded on Gen2 %" PRId64 "\n",
            N(c, "mtime_verified"), N(c, "mtime_not_recorded"));
    fprintf(out, "  ACLs compared %" PRId64 ", not compared (under a difference %" PRId64 ", unmapped %" PRId64 ")\n",
            N(c, "acl_compared"), N(c, "under_a_difference"), N(c, "not_mapped"));
    fprintf(out, "  walk: %" PRId64 " entries in %.1fs (%.0f entries/s)\n", N(w, "entries"),
            json_real_value(json_object_get(w, "seconds")), json_real_value(json_object_get(w, "entries_per_s")));
    fprintf(out, "  settled on recheck %" PRId64 ", in flight %zu, differences %" PRId64 "\n",
            N(p, "settled_on_recheck"), json_array_size(json_object_get(p, "in_flight")), N(p, "differences_total"));
    const char *lists[] = {"differences", "in_flight"};
    for (int q = 0; q < 2; q++) {
        size_t i;
        json_t *d;
        json_array_foreach(json_object_get(p, lists[q]), i, d) {
            if (i >= 20) {
                fprintf(out, "    ... (all %zu in --json)\n", json_array_size(json_object_get(p, lists[q])));
                break;
            }
            fprintf(out, "    %-10s %-12s ", q ? "in-flight" : "DIFFERENT", json_string_value(json_object_get(d, "kind")));
            mcmd_put_safe(out, json_string_value(json_object_get(d, "path")));
            fputs(": ", out);
            mcmd_put_safe(out, json_string_value(json_object_get(d, "detail")));
            fputc('\n', out);
        }
    }
#undef N
}

int verify_main(int argc, char **argv)
{
    vf_args ar;
    int pr = parse_args(argc, argv, &ar);
    if (pr < 0) return VF_OK;
    if (pr) return VF_USAGE;
    /* --deep and --digest read in 4 MiB chunks, each into a fresh buffer: glibc would map and unmap every
     * one (its mmap threshold), and the page faults and unmaps cost more CPU than comparing the bytes.
     * Served from the heap instead, the buffers are reused. */
    if (ar.deep || ar.digest) {
        (void)mallopt(M_MMAP_THRESHOLD, 64 << 20);
        (void)mallopt(M_TRIM_THRESHOLD, 256 << 20);
    }
    dp_config cfg;
    cfg_err ce;
    if (cfg_load_file(ar.config, &cfg, &ce) != 0) {
        fprintf(stderr, "dualpipe verify: %s: %s%s%s\n", ar.config, ce.path, ce.path[0] ? ": " : "", ce.message);
        return VF_FAILED;
    }
    if (ar.last) {
        bool on = curl_global_init(CURL_GLOBAL_DEFAULT) == 0;
        int lrc = on ? vrec_cli_last(&cfg, ar.admin, ar.json != NULL) : VF_FAILED;
        if (on) curl_global_cleanup();
        cfg_free(&cfg);
        return lrc;
    }
    int rc = VF_FAILED;
    verify v;
    memset(&v, 0, sizeof v);
    v.cfg = &cfg;
    v.deep = ar.deep;
    v.digest = ar.digest;
    v.g2page = ar.page;
    v.retries = ar.retries;
    v.g2ops = ar.ops;
    v.bps = ar.mbps * 1048576.0;
    v.max_diffs = ar.max_diffs;
    v.hadoop = cfg.gen1_dialect == CFG_DIALECT_HADOOP;
    pthread_mutex_init(&v.mu, NULL);
    pthread_mutex_init(&v.rl, NULL);
    httpc *http = NULL;
    g1a *ident = NULL;
    json_t *rep = NULL, *first = NULL, *second = NULL;
    dlist infl = {0};
    char *path = NULL, err[1024] = "";
    bool curl_on = curl_global_init(CURL_GLOBAL_DEFAULT) == 0;
    int root_rc = mcmd_root(&CMD, &cfg, ar.path, &path);
    if (root_rc != 0) {
        rc = root_rc == 2 ? VF_USAGE : rc;
        goto out;
    }
    if (cfg.identity_map[0]) {
        idm_err ie;
        if (idm_load(cfg.identity_map, &v.idm, &ie) != 0) {
            fprintf(stderr, "dualpipe verify: gen2.identity_map: %s\n", ie.message);
            goto out;
        }
    }
    if (!curl_on || httpc_start(0, &http, err, sizeof err) != 0 || gen1c_new(&cfg, http, &v.g1, err, sizeof err) != 0 ||
        gen2c_new(&cfg, http, &v.g2, err, sizeof err) != 0 || g1a_new(&cfg, http, &ident, err, sizeof err) != 0) {
        fprintf(stderr, "dualpipe verify: %s\n", err[0] ? err : "cannot start the HTTP engine");
        goto out;
    }
    gen1c_set_identity(v.g1, ident);
    mcmd_catch_signals();

    /* the verify record (vrec.h): the journal's position now; a resumed run's first part began earlier,
     * at a position this run cannot know, so it is recorded as such */
    vrec_ticket tk;
    struct stat cst;
    bool resumed = ar.cursor && stat(ar.cursor, &cst) == 0;
    vrec_cli_begin(&cfg, ar.admin, path, &tk);
    if (resumed) {
        tk.online = tk.seq_known = false;
        fprintf(stderr, "dualpipe verify: a resumed verify is recorded without its journal position: it cannot count "
                        "for a cutover to gen2-only\n");
    }
    walk_stats ws;
    uint64_t settled = 0, queued = 0;
    if (run_pass(&v, &ar, path, &ws, &settled, &infl, err, sizeof err) != VF_OK) {
        fprintf(stderr, "dualpipe verify: %s%s\n", err, ar.cursor ? " (run the same command again to resume)" : "");
        goto out;
    }
    first = pass_json(&v, &ws, settled, &infl);
    bool equal = v.ndiff == 0 && infl.n == 0;
    if (ar.repair && v.ndiff > 0) {
        print_pass(first, "dualpipe verify: before repair", stdout);
        if (repair(&v, ar.config, ar.admin, ar.settle, &queued, err, sizeof err) != 0) {
            fprintf(stderr, "dualpipe verify: repair: %s\n", err);
            goto out;
        }
        printf("repair: %" PRIu64 " resync(s) journaled and applied; verifying again\n", queued);
        dlist_free(&infl);
        settled = 0;
        if (run_pass(&v, &ar, path, &ws, &settled, &infl, err, sizeof err) != VF_OK) {
            fprintf(stderr, "dualpipe verify: after repair: %s\n", err);
            goto out;
        }
        second = pass_json(&v, &ws, settled, &infl);
        equal = v.ndiff == 0 && infl.n == 0;
    }
    const json_t *fin = second ? second : first;
    print_pass(fin, second ? "dualpipe verify: after repair" : "dualpipe verify", stdout);
    printf("%s: %s\n", path, equal ? "EQUAL" : "NOT EQUAL");
    rep = json_pack("{s:s,s:s,s:b,s:b,s:b,s:b,s:O,s:O*,s:I}", "root", path, "gen1_dialect",
                    v.hadoop ? "hadoop" : "adls", "digest", ar.digest, "deep", ar.deep, "equal", equal, "repair", ar.repair, "result", fin, "before_repair", second ? first : NULL,
                    "resyncs_queued", (json_int_t)queued);
    if (ar.json) {
        char *js = rep ? json_dumps(rep, JSON_INDENT(1) | JSON_SORT_KEYS) : NULL;
        if (!js || mcmd_write_line(ar.json, js) != 0) {
            fprintf(stderr, "dualpipe verify: cannot write %s\n", ar.json);
            free(js);
            goto out;
        }
        free(js);
    }
    vrec_result vr;
    memset(&vr, 0, sizeof vr);
    vr.equal = equal;
    vr.differences = v.ndiff;
    vr.size_only = v.c.size_only;
    vr.in_flight = infl.n;
    snprintf(vr.mode, sizeof vr.mode, "%s", ar.deep ? "deep" : ar.digest ? "digest" : "size");
    vr.by_kind = json_object_get(fin, "by_kind");
    (void)vrec_cli_end(&cfg, ar.admin, &tk, &vr); /* (a result not recorded is said on stderr; the verify stands) */
    rc = equal ? VF_OK : VF_DIFF;
out:
    json_decref(rep);
    json_decref(first);
    json_decref(second);
    dlist_free(&infl);
    g1a_stop(ident);
    if (v.g2) gen2c_stop(v.g2);
    if (http) httpc_stop(http);
    g1a_free(ident);
    gen1c_free(v.g1);
    if (v.g2) gen2c_free(v.g2);
    pass_reset(&v);
    free(v.ds);
    free(v.bad);
    idm_unref(v.idm);
    pthread_mutex_destroy(&v.mu);
    pthread_mutex_destroy(&v.rl);
    free(path);
    cfg_free(&cfg);
    if (curl_on) curl_global_cleanup();
    return rc;
}
