/*
 * fleet: the phase record and the members' reports on Gen2 (see fleet.h for the layout and the
 * protocol). Each call is one or a few Gen2 requests made synchronously, retried on no answer, 429 and
 * 5xx; conditional ones (If-Match, If-None-Match) report a lost race as 1, never as an error.
 *
 * The local backend (fleet_new_local) keeps the same record and reports as files on this host: each
 * file is replaced whole (a temporary file, fsync, rename, fsync of the directory), so a reader sees
 * the old or the new one, never a mix; the record's create and replace run under an flock of a lock
 * file taken on a descriptor opened for that call alone, which serialises them between processes and
 * between threads of one process (two descriptors conflict even in one process).
 */
#include "fleet.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dbuf.h"
#include "httpc.h"
#include "reserved.h"
#include "urlcodec.h"
#include "wfile.h"
#include "xlate.h"

#define FLEET_REC_KEY "dualpipe_phase"
#define FLEET_MEMBER_KEY "dualpipe_member"
#define FLEET_LIST_MAX (4u << 20)

#define FLEET_LOCAL_PATH_MAX 1024

struct fleet {
    gen2c *g2;             /* NULL: the local backend */
    char fs[64];
    char dir[256];
    char ldir[FLEET_LOCAL_PATH_MAX]; /* local: DIR/fleet, holding phase, lock and members/ */
    char member[FLEET_ID_MAX];
    unsigned retries;
};

static int local_read(fleet *f, fleet_rec *rec, char *etag, size_t etagcap, char *err, size_t errlen);
static int local_rec_write(fleet *f, const fleet_rec *rec, const char *if_match, char *etag, size_t etagcap,
                           char *err, size_t errlen);
static int local_member_put(fleet *f, const fleet_member *m, char *err, size_t errlen);
static int local_member_list(fleet *f, fleet_member **v, size_t *n, size_t *bad, char *err, size_t errlen);
static int local_member_remove(fleet *f, const char *id, char *err, size_t errlen);

/* ---------------------------------------------------------------- codecs */

static const char *const mstate_names[] = {"writing", "holding", "drained", "failed", "stopped"};

const char *fleet_mstate_name(fleet_mstate s)
{
    return (s >= FLEET_M_WRITING && s <= FLEET_M_STOPPED) ? mstate_names[s] : "unknown";
}

bool fleet_id_ok(const char *id)
{
    size_t n = id ? strlen(id) : 0;
    if (n == 0 || n >= FLEET_ID_MAX || strcmp(id, ".") == 0 || strcmp(id, "..") == 0) return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)id[i]) && id[i] != '.' && id[i] != '_' && id[i] != '-') return false;
    return true;
}

static int phase_of(const char *s, size_t n, cfg_phase *out)
{
    for (cfg_phase p = CFG_PHASE_GEN1_PRIMARY; p <= CFG_PHASE_GEN2_ONLY; p++) {
        const char *name = cfg_phase_name(p);
        if (strlen(name) == n && memcmp(name, s, n) == 0) {
            *out = p;
            return 0;
        }
    }
    return -1;
}

/* A decimal u64 of exactly n characters. */
static int u64_of(const char *s, size_t n, uint64_t *out)
{
    if (n == 0 || n > 20) return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10) return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

/* Text values (by, reason) hold printable ASCII without ';' (format replaces what is not). */
static void put_text(char *dst, size_t cap, const char *s, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n && k + 1 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        dst[k++] = (c < 0x20 || c > 0x7e || c == ';') ? '_' : (char)c;
    }
    dst[k] = '\0';
}

/* Calls fn(key, klen, value, vlen, ud) for each "k=v" of a ';'-separated list; -1 on a field without
 * '=' or fn's -1. */
static int fields(const char *s, int (*fn)(const char *, size_t, const char *, size_t, void *), void *ud)
{
    if (!s) return -1;
    while (*s) {
        const char *end = strchr(s, ';');
        size_t n = end ? (size_t)(end - s) : strlen(s);
        const char *eq = memchr(s, '=', n);
        if (!eq || eq == s) return -1;
        if (fn(s, (size_t)(eq - s), eq + 1, n - (size_t)(eq - s) - 1, ud) != 0) return -1;
        s += n;
        if (*s == ';') s++;
    }
    return 0;
}

static bool key_is(const char *k, size_t kn, const char *want)
{
    return strlen(want) == kn && memcmp(k, want, kn) == 0;
}

typedef struct rec_parse {
    fleet_rec *r;
    bool v, epoch, phase, state, to;
} rec_parse;

static int rec_field(const char *k, size_t kn, const char *v, size_t vn, void *ud)
{
    rec_parse *p = ud;
    fleet_rec *r = p->r;
    uint64_t u;
    if (key_is(k, kn, "v")) {
        if (u64_of(v, vn, &u) != 0 || u != 1) return -1;
        p->v = true;
    } else if (key_is(k, kn, "epoch")) {
        if (u64_of(v, vn, &r->epoch) != 0) return -1;
        p->epoch = true;
    } else if (key_is(k, kn, "phase")) {
        if (phase_of(v, vn, &r->phase) != 0) return -1;
        p->phase = true;
    } else if (key_is(k, kn, "state")) {
        if (vn == 6 && memcmp(v, "stable", 6) == 0) r->state = FLEET_STABLE;
        else if (vn == 9 && memcmp(v, "switching", 9) == 0) r->state = FLEET_SWITCHING;
        else return -1;
        p->state = true;
    } else if (key_is(k, kn, "to")) {
        if (vn == 0) return 0;
        if (phase_of(v, vn, &r->to) != 0) return -1;
        p->to = true;
    } else if (key_is(k, kn, "by")) {
        if (vn >= sizeof r->by) return -1;
        put_text(r->by, sizeof r->by, v, vn);
    } else if (key_is(k, kn, "since")) {
        if (u64_of(v, vn, &u) != 0 || u > INT64_MAX) return -1;
        r->since_ms = (int64_t)u;
    } else if (key_is(k, kn, "deadline")) {
        if (u64_of(v, vn, &r->deadline_ms) != 0) return -1;
    } else if (key_is(k, kn, "reason")) {
        put_text(r->reason, sizeof r->reason, v, vn < sizeof r->reason ? vn : sizeof r->reason - 1);
    }
    return 0; /* unknown fields: written by a newer version, ignored */
}

int fleet_rec_parse(const char *s, fleet_rec *r)
{
    memset(r, 0, sizeof *r);
    rec_parse p = {.r = r};
    if (fields(s, rec_field, &p) != 0) return -1;
    if (!p.v || !p.epoch || !p.phase || !p.state) return -1;
    if (r->state == FLEET_SWITCHING && (!p.to || r->to == r->phase)) return -1;
    if (r->state == FLEET_STABLE) r->to = r->phase;
    return 0;
}

int fleet_rec_format(const fleet_rec *r, char *out, size_t cap)
{
    char by[FLEET_ID_MAX], reason[sizeof r->reason];
    put_text(by, sizeof by, r->by, strnlen(r->by, sizeof r->by));
    put_text(reason, sizeof reason, r->reason, strnlen(r->reason, sizeof r->reason));
    int n = snprintf(out, cap, "v=1;epoch=%" PRIu64 ";phase=%s;state=%s;to=%s;by=%s;since=%" PRId64
                               ";deadline=%" PRIu64 ";reason=%s",
                     r->epoch, cfg_phase_name(r->phase), r->state == FLEET_SWITCHING ? "switching" : "stable",
                     r->state == FLEET_SWITCHING ? cfg_phase_name(r->to) : "", by, r->since_ms < 0 ? 0 : r->since_ms,
                     r->deadline_ms, reason);
    return (n < 0 || (size_t)n >= cap) ? -1 : 0;
}

typedef struct mem_parse {
    fleet_member *m;
    bool v, epoch, state;
} mem_parse;

static int mem_field(const char *k, size_t kn, const char *v, size_t vn, void *ud)
{
    mem_parse *p = ud;
    fleet_member *m = p->m;
    uint64_t u;
    if (key_is(k, kn, "v")) {
        if (u64_of(v, vn, &u) != 0 || u != 1) return -1;
        p->v = true;
    } else if (key_is(k, kn, "epoch")) {
        if (u64_of(v, vn, &m->epoch) != 0) return -1;
        p->epoch = true;
    } else if (key_is(k, kn, "state")) {
        fleet_mstate s = FLEET_M_WRITING;
        while (s <= FLEET_M_STOPPED && !(strlen(mstate_names[s]) == vn && memcmp(mstate_names[s], v, vn) == 0)) s++;
        if (s > FLEET_M_STOPPED) return -1;
        m->state = s;
        p->state = true;
    } else if (key_is(k, kn, "hb")) {
        if (u64_of(v, vn, &u) != 0 || u > INT64_MAX) return -1;
        m->heartbeat_ms = (int64_t)u;
    } else if (key_is(k, kn, "pending")) {
        if (u64_of(v, vn, &m->pending) != 0) return -1;
    }
    return 0;
}

int fleet_member_parse(const char *s, fleet_member *m)
{
    memset(m, 0, sizeof *m);
    mem_parse p = {.m = m};
    if (fields(s, mem_field, &p) != 0) return -1;
    return (p.v && p.epoch && p.state) ? 0 : -1;
}

int fleet_member_format(const fleet_member *m, char *out, size_t cap)
{
    int n = snprintf(out, cap, "v=1;epoch=%" PRIu64 ";state=%s;hb=%" PRId64 ";pending=%" PRIu64, m->epoch,
                     fleet_mstate_name(m->state), m->heartbeat_ms < 0 ? 0 : m->heartbeat_ms, m->pending);
    return (n < 0 || (size_t)n >= cap) ? -1 : 0;
}

/* ---------------------------------------------------------------- handle */

int fleet_new(gen2c *g2, const fleet_opts *o, fleet **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!o->fs || !o->fs[0] || strlen(o->fs) >= 64) {
        snprintf(err, errlen, "phase.fleet_filesystem: a Gen2 filesystem name is required");
        return -1;
    }
    const char *dir = (o->dir && o->dir[0]) ? o->dir : DP_FLEET_DIR; /* hidden from users: reserved.h */
    if (dir[0] == '/' || strlen(dir) >= 200 || strstr(dir, "//") || dir[strlen(dir) - 1] == '/') {
        snprintf(err, errlen, "phase.fleet_dir: a relative directory without empty segments, such as .dualpipe");
        return -1;
    }
    if (!fleet_id_ok(o->member)) {
        snprintf(err, errlen, "phase.member_id: 1 to 63 characters of A-Z, a-z, 0-9, '.', '_' or '-'");
        return -1;
    }
    fleet *f = calloc(1, sizeof *f);
    if (!f) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    f->g2 = g2;
    snprintf(f->fs, sizeof f->fs, "%s", o->fs);
    snprintf(f->dir, sizeof f->dir, "%s", dir);
    snprintf(f->member, sizeof f->member, "%s", o->member);
    f->retries = o->retries;
    *out = f;
    return 0;
}

/* mkdir that accepts an existing directory. 0 or -errno. */
static int mkdir_ok(const char *path)
{
    if (mkdir(path, 0700) == 0) return 0;
    int e = errno;
    struct stat st;
    if (e == EEXIST && stat(path, &st) == 0 && S_ISDIR(st.st_mode)) return 0;
    return e == EEXIST ? -ENOTDIR : -e;
}

int fleet_new_local(const char *dir, const char *member, fleet **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!dir || !dir[0] || strlen(dir) >= FLEET_LOCAL_PATH_MAX - 64) {
        snprintf(err, errlen, "phase: the local record's directory must be a path of at most %d bytes",
                 FLEET_LOCAL_PATH_MAX - 65);
        return -1;
    }
    if (!fleet_id_ok(member)) {
        snprintf(err, errlen, "phase.member_id: 1 to 63 characters of A-Z, a-z, 0-9, '.', '_' or '-'");
        return -1;
    }
    fleet *f = calloc(1, sizeof *f);
    if (!f) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    snprintf(f->ldir, sizeof f->ldir, "%s/fleet", dir);
    snprintf(f->member, sizeof f->member, "%s", member);
    char members[FLEET_LOCAL_PATH_MAX + 16];
    snprintf(members, sizeof members, "%s/members", f->ldir);
    const char *at = dir;
    int rc = mkdir_ok(dir);
    if (rc == 0) rc = mkdir_ok(at = f->ldir);
    if (rc == 0) rc = mkdir_ok(at = members);
    if (rc != 0) {
        snprintf(err, errlen, "phase: cannot make the directory %s for the phase record: %s", at, strerror(-rc));
        free(f);
        return -1;
    }
    *out = f;
    return 0;
}

bool fleet_is_local(const fleet *f) { return f->g2 == NULL; }

void fleet_free(fleet *f) { free(f); }

const char *fleet_member_id(const fleet *f) { return f->member; }

/* ---------------------------------------------------------------- requests */

static void resp_drop(httpc_resp *r)
{
    if (!r) return;
    httpc_resp_free(r);
    free(r);
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/*
 * One Gen2 request, retried on no answer, 429 and 5xx. Returns the answer (any status: the caller
 * decides) or NULL with err. h1, h2: extra header lines or NULL.
 */
static httpc_resp *g2_call(fleet *f, const char *method, const char *path, const char *query, const char *h1,
                           const char *h2, char *err, size_t errlen)
{
    unsigned backoff = 100;
    for (unsigned attempt = 0;; attempt++) {
        httpc_sync s;
        httpc_sync_init(&s);
        gen2c_call call = {.method = method, .fs = f->fs, .path = path, .query = query ? query : "",
                           .out = HTTPC_BODY_MEMORY, .out_max = FLEET_LIST_MAX, .done = httpc_sync_done, .ud = &s};
        int nh = 0;
        if (h1) call.headers[nh++] = h1;
        if (h2) call.headers[nh++] = h2;
        if (gen2c_send(f->g2, &call) != 0) {
            httpc_sync_drop(&s);
            snprintf(err, errlen, "cannot send %s %s/%s to Gen2", method, f->fs, path);
            return NULL;
        }
        httpc_resp *r = httpc_sync_wait(&s);
        bool retry;
        if (r->result != HTTPC_OK) {
            snprintf(err, errlen, "Gen2 did not answer %s of %s/%s: %s%s%s", method, f->fs, path,
                     httpc_result_str(r->result), r->error[0] ? ": " : "", r->error);
            retry = r->result != HTTPC_E_AUTH;
        } else if (r->status == 429 || r->status >= 500) {
            char code[128];
            snprintf(err, errlen, "Gen2 answered %ld (%s) to %s of %s/%s", r->status,
                     gen2c_error_code(r, code, sizeof code), method, f->fs, path);
            retry = true;
        } else {
            return r;
        }
        resp_drop(r);
        if (!retry || attempt >= f->retries) return NULL;
        sleep_ms(backoff);
        backoff = backoff * 2 > 2000 ? 2000 : backoff * 2;
    }
}

static void status_err(const httpc_resp *r, const char *what, char *err, size_t errlen)
{
    char code[128];
    snprintf(err, errlen, "Gen2 answered %ld (%s) to %s", r->status, gen2c_error_code(r, code, sizeof code), what);
}

static int path_of(const fleet *f, const char *leaf, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s/%s", f->dir, leaf);
    return (n < 0 || (size_t)n >= cap) ? -1 : 0;
}

static void copy_etag(const httpc_resp *r, char *etag, size_t cap)
{
    const char *e = httpc_resp_header(r, "ETag");
    if (etag && cap) snprintf(etag, cap, "%s", e ? e : "");
}

/* The x-ms-properties line holding key=value (value base64-encoded). */
static int props_line(const char *key, const char *value, dbuf *line)
{
    xlate_err xe;
    dbuf props;
    dbuf_init(&props, 1024);
    int rc = xlate_props_put(NULL, key, value, &props, &xe);
    if (rc == 0) rc = dbuf_printf(line, "x-ms-properties: %s", props.data);
    dbuf_free(&props);
    return rc;
}

int fleet_read(fleet *f, fleet_rec *rec, char *etag, size_t etagcap, char *err, size_t errlen)
{
    if (!f->g2) return local_read(f, rec, etag, etagcap, err, errlen);
    char path[300];
    if (path_of(f, "phase", path, sizeof path) != 0) {
        snprintf(err, errlen, "phase.fleet_dir too long");
        return -1;
    }
    httpc_resp *r = g2_call(f, "HEAD", path, "", NULL, NULL, err, errlen);
    if (!r) return -1;
    int rc = -1;
    if (r->status == 404) {
        rc = 1;
    } else if (r->status != 200) {
        status_err(r, "reading the fleet's phase record", err, errlen);
    } else {
        char text[FLEET_REC_MAX];
        int g = xlate_props_get(httpc_resp_header(r, "x-ms-properties"), FLEET_REC_KEY, text, sizeof text);
        if (g != 1 || fleet_rec_parse(text, rec) != 0) {
            snprintf(err, errlen, "the fleet's phase record %s/%s has no readable %s property (written by another "
                                  "tool, or damaged)", f->fs, path, FLEET_REC_KEY);
        } else {
            copy_etag(r, etag, etagcap);
            rc = 0;
        }
    }
    resp_drop(r);
    return rc;
}

/* Create or replace the record file: cond is the If-Match / If-None-Match line. */
static int rec_write(fleet *f, const fleet_rec *rec, const char *cond, bool create, char *etag, size_t etagcap,
                     char *err, size_t errlen)
{
    char path[300], text[FLEET_REC_MAX];
    if (path_of(f, "phase", path, sizeof path) != 0 || fleet_rec_format(rec, text, sizeof text) != 0) {
        snprintf(err, errlen, "the fleet's phase record does not fit");
        return -1;
    }
    dbuf line;
    dbuf_init(&line, 2048);
    if (props_line(FLEET_REC_KEY, text, &line) != 0) {
        dbuf_free(&line);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    httpc_resp *r = create ? g2_call(f, "PUT", path, "resource=file", cond, line.data, err, errlen)
                           : g2_call(f, "PATCH", path, "action=setProperties", cond, line.data, err, errlen);
    dbuf_free(&line);
    if (!r) return -1;
    int rc = -1;
    if (r->status == 200 || r->status == 201) {
        copy_etag(r, etag, etagcap);
        rc = 0;
    } else if (r->status == 412 || (create && r->status == 409) || (!create && r->status == 404)) {
        rc = 1; /* lost the race: another member changed (or removed) the record first */
    } else {
        status_err(r, create ? "creating the fleet's phase record" : "changing the fleet's phase record", err,
                   errlen);
    }
    resp_drop(r);
    return rc;
}

int fleet_create(fleet *f, const fleet_rec *rec, char *etag, size_t etagcap, char *err, size_t errlen)
{
    if (!f->g2) return local_rec_write(f, rec, NULL, etag, etagcap, err, errlen);
    return rec_write(f, rec, "If-None-Match: *", true, etag, etagcap, err, errlen);
}

int fleet_replace(fleet *f, const fleet_rec *rec, char *etag, size_t etagcap, char *err, size_t errlen)
{
    if (!etag || !etag[0] || strpbrk(etag, "\r\n")) {
        snprintf(err, errlen, "changing the fleet's phase record needs the ETag it was read with");
        return -1;
    }
    if (!f->g2) return local_rec_write(f, rec, etag, etag, etagcap, err, errlen);
    char cond[320];
    snprintf(cond, sizeof cond, "If-Match: %s", etag);
    return rec_write(f, rec, cond, false, etag, etagcap, err, errlen);
}

int fleet_member_put(fleet *f, const fleet_member *m, char *err, size_t errlen)
{
    if (!f->g2) return local_member_put(f, m, err, errlen);
    char leaf[FLEET_ID_MAX + 16], path[300], text[256];
    snprintf(leaf, sizeof leaf, "members/%s", f->member);
    if (path_of(f, leaf, path, sizeof path) != 0 || fleet_member_format(m, text, sizeof text) != 0) {
        snprintf(err, errlen, "the member report does not fit");
        return -1;
    }
    dbuf line;
    dbuf_init(&line, 1024);
    if (props_line(FLEET_MEMBER_KEY, text, &line) != 0) {
        dbuf_free(&line);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    /* setProperties first (the usual case: the file exists); create it when it does not */
    httpc_resp *r = g2_call(f, "PATCH", path, "action=setProperties", line.data, NULL, err, errlen);
    if (r && r->status == 404) {
        resp_drop(r);
        r = g2_call(f, "PUT", path, "resource=file", line.data, NULL, err, errlen);
    }
    dbuf_free(&line);
    if (!r) return -1;
    int rc = 0;
    if (r->status != 200 && r->status != 201) {
        status_err(r, "writing this member's report", err, errlen);
        rc = -1;
    }
    resp_drop(r);
    return rc;
}

int fleet_member_remove(fleet *f, const char *id, char *err, size_t errlen)
{
    if (!fleet_id_ok(id)) {
        snprintf(err, errlen, "not a member id: 1 to 63 characters of A-Z, a-z, 0-9, '.', '_' or '-'");
        return -1;
    }
    if (!f->g2) return local_member_remove(f, id, err, errlen);
    char leaf[FLEET_ID_MAX + 16], path[300];
    snprintf(leaf, sizeof leaf, "members/%s", id);
    if (path_of(f, leaf, path, sizeof path) != 0) {
        snprintf(err, errlen, "phase.fleet_dir too long");
        return -1;
    }
    httpc_resp *r = g2_call(f, "DELETE", path, "", NULL, NULL, err, errlen);
    if (!r) return -1;
    int rc = 0;
    if (r->status != 200 && r->status != 404) {
        status_err(r, "removing a member's report", err, errlen);
        rc = -1;
    }
    resp_drop(r);
    return rc;
}

static int cmp_member(const void *a, const void *b)
{
    return strcmp(((const fleet_member *)a)->id, ((const fleet_member *)b)->id);
}

/* The member ids one List Paths page names (appended to ids), and its continuation token. */
static int list_page(fleet *f, const char *members_dir, const httpc_resp *r, char ***ids, size_t *n, size_t *cap,
                     char *token, size_t tokcap, char *err, size_t errlen)
{
    json_error_t je;
    json_t *root = json_loadb(r->body.data ? r->body.data : "", r->body.len, 0, &je);
    json_t *paths = root ? json_object_get(root, "paths") : NULL;
    if (!json_is_array(paths)) {
        json_decref(root);
        snprintf(err, errlen, "Gen2's listing of %s/%s is not a List Paths answer", f->fs, members_dir);
        return -1;
    }
    size_t i;
    json_t *e;
    size_t dl = strlen(members_dir);
    json_array_foreach(paths, i, e) {
        const char *name = json_string_value(json_object_get(e, "name"));
        if (!name || strncmp(name, members_dir, dl) != 0 || name[dl] != '/') continue;
        const char *id = name + dl + 1;
        if (!fleet_id_ok(id)) continue; /* not ours */
        if (*n == *cap) {
            size_t nc = *cap ? *cap * 2 : 16;
            char **nv = realloc(*ids, nc * sizeof *nv);
            if (!nv) goto oom;
            *ids = nv, *cap = nc;
        }
        if (!((*ids)[*n] = strdup(id))) goto oom;
        (*n)++;
    }
    json_decref(root);
    const char *c = httpc_resp_header(r, "x-ms-continuation");
    snprintf(token, tokcap, "%s", c ? c : "");
    if (c && strlen(c) >= tokcap) {
        snprintf(err, errlen, "Gen2's continuation token is too long");
        return -1;
    }
    return 0;
oom:
    json_decref(root);
    snprintf(err, errlen, "out of memory");
    return -1;
}

int fleet_member_list(fleet *f, fleet_member **v, size_t *n, size_t *bad, char *err, size_t errlen)
{
    *v = NULL, *n = 0, *bad = 0;
    if (!f->g2) return local_member_list(f, v, n, bad, err, errlen);
    char mdir[300];
    if (path_of(f, "members", mdir, sizeof mdir) != 0) {
        snprintf(err, errlen, "phase.fleet_dir too long");
        return -1;
    }
    char **ids = NULL;
    size_t nid = 0, cap = 0;
    char token[2048] = "";
    int rc = 0;
    do {
        dbuf q;
        dbuf_init(&q, 4096);
        int qr = dbuf_adds(&q, "resource=filesystem&recursive=false&directory=");
        if (qr == 0) qr = url_encode(mdir, false, &q);
        if (qr == 0 && token[0]) {
            qr = dbuf_adds(&q, "&continuation=");
            if (qr == 0) qr = url_encode(token, false, &q);
        }
        httpc_resp *r = qr == 0 ? g2_call(f, "GET", "", q.data, NULL, NULL, err, errlen) : NULL;
        if (qr != 0) snprintf(err, errlen, "out of memory");
        dbuf_free(&q);
        if (!r) {
            rc = -1;
            break;
        }
        if (r->status == 404) { /* no member has reported yet */
            resp_drop(r);
            break;
        }
        if (r->status != 200) {
            status_err(r, "listing the fleet's members", err, errlen);
            resp_drop(r);
            rc = -1;
            break;
        }
        rc = list_page(f, mdir, r, &ids, &nid, &cap, token, sizeof token, err, errlen);
        resp_drop(r);
    } while (rc == 0 && token[0]);
    fleet_member *out = NULL;
    size_t nout = 0;
    if (rc == 0 && nid > 0 && !(out = calloc(nid, sizeof *out))) {
        snprintf(err, errlen, "out of memory");
        rc = -1;
    }
    for (size_t i = 0; rc == 0 && i < nid; i++) {
        char path[300];
        snprintf(path, sizeof path, "%s/%s", mdir, ids[i]);
        httpc_resp *r = g2_call(f, "HEAD", path, "", NULL, NULL, err, errlen);
        if (!r) {
            rc = -1;
            break;
        }
        char text[256];
        if (r->status == 404) {
            /* removed since the listing */
        } else if (r->status != 200) {
            status_err(r, "reading a member's report", err, errlen);
            rc = -1;
        } else if (xlate_props_get(httpc_resp_header(r, "x-ms-properties"), FLEET_MEMBER_KEY, text, sizeof text) != 1 ||
                   fleet_member_parse(text, &out[nout]) != 0) {
            (*bad)++;
        } else {
            snprintf(out[nout].id, sizeof out[nout].id, "%s", ids[i]);
            nout++;
        }
        resp_drop(r);
    }
    for (size_t i = 0; i < nid; i++) free(ids[i]);
    free(ids);
    if (rc != 0) {
        free(out);
        return -1;
    }
    if (nout) qsort(out, nout, sizeof *out, cmp_member);
    *v = out, *n = nout;
    return 0;
}

/* ---------------------------------------------------------------- the local backend */

/* Files are replaced whole with wf_replace: a temporary DIR/LEAF~XXXXXX ('~' is never in a member id, so a
 * listing skips what a crash leaves). */


/* Read a small file whole into buf (NUL-terminated): its length, or -errno (-EFBIG when it does not fit). */
static ssize_t get_whole(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return -errno;
    size_t got = 0;
    ssize_t rc = 0;
    for (;;) {
        ssize_t r = read(fd, buf + got, cap - 1 - got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            rc = -errno;
            break;
        }
        if (r == 0) break;
        got += (size_t)r;
        if (got == cap - 1) {
            rc = -EFBIG;
            break;
        }
    }
    close(fd);
    buf[got] = '\0';
    return rc < 0 ? rc : (ssize_t)got;
}

int fleet_local_parse(const char *text, fleet_rec *rec, char *etag, size_t etagcap)
{
    if (strncmp(text, "etag=", 5) != 0) return -1;
    const char *nl = strchr(text, '\n');
    size_t en = nl ? (size_t)(nl - text - 5) : 0;
    if (!nl || en == 0 || en >= 128 || en >= etagcap || memchr(text + 5, '\r', en)) return -1;
    const char *body = nl + 1, *end = strchr(body, '\n');
    if (!end || end[1] != '\0') return -1;
    size_t bn = (size_t)(end - body);
    if (bn >= FLEET_REC_MAX) return -1;
    char line[FLEET_REC_MAX];
    memcpy(line, body, bn);
    line[bn] = '\0';
    if (fleet_rec_parse(line, rec) != 0) return -1;
    memcpy(etag, text + 5, en);
    etag[en] = '\0';
    return 0;
}

int fleet_local_format(const fleet_rec *r, const char *etag, char *out, size_t cap)
{
    char body[FLEET_REC_MAX];
    if (!etag[0] || strlen(etag) >= 128 || strpbrk(etag, "\r\n") || fleet_rec_format(r, body, sizeof body) != 0)
        return -1;
    int n = snprintf(out, cap, "etag=%s\n%s\n", etag, body);
    return (n < 0 || (size_t)n >= cap) ? -1 : 0;
}

/* The record file: fleet_local_format's text. */
static int local_read(fleet *f, fleet_rec *rec, char *etag, size_t etagcap, char *err, size_t errlen)
{
    char path[FLEET_LOCAL_PATH_MAX + 16], buf[FLEET_REC_MAX + 256];
    snprintf(path, sizeof path, "%s/phase", f->ldir);
    ssize_t n = get_whole(path, buf, sizeof buf);
    if (n == -ENOENT) return 1;
    if (n < 0) {
        snprintf(err, errlen, "cannot read the phase record %s: %s", path, strerror((int)-n));
        return -1;
    }
    char tag[128];
    if (fleet_local_parse(buf, rec, tag, sizeof tag) != 0) {
        snprintf(err, errlen, "the phase record %s is not one this version wrote (damaged?): move it away to "
                              "start again from the configured phase", path);
        return -1;
    }
    if (etag && etagcap) snprintf(etag, etagcap, "%s", tag);
    return 0;
}

/* A new ETag: the previous one's generation plus one, and random digits (so that a record removed and
 * made again never repeats one). */
static void local_etag(const char *prev, char *out, size_t cap)
{
    uint64_t gen = 0;
    if (prev && prev[0] == '"') {
        const char *dash = strchr(prev + 1, '-');
        if (!dash || u64_of(prev + 1, (size_t)(dash - prev - 1), &gen) != 0) gen = 0;
    }
    uint32_t r = 0;
    if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        r = (uint32_t)ts.tv_nsec ^ (uint32_t)getpid();
    }
    snprintf(out, cap, "\"%" PRIu64 "-%08x\"", gen + 1, (unsigned)r);
}

/* Create (if_match NULL) or replace (if the record's ETag is still if_match) the record, under the lock
 * file's flock: 0 done (the new ETag in etag), 1 lost (it exists / it changed or is gone), -1 err. */
static int local_rec_write(fleet *f, const fleet_rec *rec, const char *if_match, char *etag, size_t etagcap,
                           char *err, size_t errlen)
{
    char lock[FLEET_LOCAL_PATH_MAX + 16], text[FLEET_REC_MAX + 256], body[FLEET_REC_MAX];
    if (fleet_rec_format(rec, body, sizeof body) != 0) { /* checked before the lock is taken */
        snprintf(err, errlen, "the fleet's phase record does not fit");
        return -1;
    }
    snprintf(lock, sizeof lock, "%s/lock", f->ldir);
    int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open the phase record's lock %s: %s", lock, strerror(errno));
        return -1;
    }
    while (flock(fd, LOCK_EX) != 0) {
        if (errno == EINTR) continue;
        snprintf(err, errlen, "cannot lock %s: %s", lock, strerror(errno));
        close(fd);
        return -1;
    }
    fleet_rec cur;
    char cur_etag[128] = "";
    int rc = local_read(f, &cur, cur_etag, sizeof cur_etag, err, errlen);
    if (rc < 0) goto out; /* damaged: never written over */
    if (if_match ? (rc == 1 || strcmp(cur_etag, if_match) != 0) : rc == 0) {
        rc = 1; /* lost the race: another member changed (or made) the record first */
        goto out;
    }
    char next[128];
    local_etag(rc == 0 ? cur_etag : NULL, next, sizeof next);
    int wr = fleet_local_format(rec, next, text, sizeof text) == 0 ? wf_replace(f->ldir, "phase", text, strlen(text))
                                                                   : -E2BIG;
    if (wr != 0) {
        snprintf(err, errlen, "cannot write the phase record %s/phase: %s", f->ldir, strerror(-wr));
        rc = -1;
        goto out;
    }
    if (etag && etagcap) snprintf(etag, etagcap, "%s", next);
    rc = 0;
out:
    close(fd); /* releases the flock */
    return rc;
}

static int local_member_put(fleet *f, const fleet_member *m, char *err, size_t errlen)
{
    char dir[FLEET_LOCAL_PATH_MAX + 16], text[256];
    snprintf(dir, sizeof dir, "%s/members", f->ldir);
    if (fleet_member_format(m, text, sizeof text - 1) != 0) {
        snprintf(err, errlen, "the member report does not fit");
        return -1;
    }
    size_t n = strlen(text);
    text[n++] = '\n';
    int rc = wf_replace(dir, f->member, text, n);
    if (rc != 0) {
        snprintf(err, errlen, "cannot write this member's report %s/%s: %s", dir, f->member, strerror(-rc));
        return -1;
    }
    return 0;
}

static int local_member_remove(fleet *f, const char *id, char *err, size_t errlen)
{
    char dir[FLEET_LOCAL_PATH_MAX + 16], path[FLEET_LOCAL_PATH_MAX + 96];
    snprintf(dir, sizeof dir, "%s/members", f->ldir);
    snprintf(path, sizeof path, "%s/%s", dir, id);
    if (unlink(path) != 0) {
        if (errno == ENOENT) return 0;
        snprintf(err, errlen, "cannot remove the member report %s: %s", path, strerror(errno));
        return -1;
    }
    int rc = wf_fsync_dir(dir);
    if (rc != 0) {
        snprintf(err, errlen, "cannot sync %s: %s", dir, strerror(-rc));
        return -1;
    }
    return 0;
}

static int local_member_list(fleet *f, fleet_member **v, size_t *n, size_t *bad, char *err, size_t errlen)
{
    char dir[FLEET_LOCAL_PATH_MAX + 16];
    snprintf(dir, sizeof dir, "%s/members", f->ldir);
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(err, errlen, "cannot list the members' reports in %s: %s", dir, strerror(errno));
        return -1;
    }
    fleet_member *out = NULL;
    size_t nout = 0, cap = 0;
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!fleet_id_ok(de->d_name)) continue; /* ".", "..", a temporary file */
        char id[FLEET_ID_MAX], path[FLEET_LOCAL_PATH_MAX + 96], text[256];
        memcpy(id, de->d_name, strlen(de->d_name) + 1); /* fleet_id_ok: shorter than FLEET_ID_MAX */
        snprintf(path, sizeof path, "%s/%s", dir, id);
        ssize_t len = get_whole(path, text, sizeof text);
        if (len == -ENOENT) continue; /* removed since the listing */
        if (nout == cap) {
            size_t nc = cap ? cap * 2 : 16;
            fleet_member *nv = realloc(out, nc * sizeof *nv);
            if (!nv) {
                snprintf(err, errlen, "out of memory");
                rc = -1;
                break;
            }
            out = nv, cap = nc;
        }
        if (len > 0 && text[len - 1] == '\n') text[len - 1] = '\0';
        if (len < 0 || fleet_member_parse(text, &out[nout]) != 0) {
            (*bad)++;
            continue;
        }
        memcpy(out[nout].id, id, sizeof id);
        nout++;
    }
    closedir(d);
    if (rc != 0) {
        free(out);
        return -1;
    }
    if (nout) qsort(out, nout, sizeof *out, cmp_member);
    else {
        free(out);
        out = NULL;
    }
    *v = out, *n = nout;
    return 0;
}
