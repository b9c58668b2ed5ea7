/*
 * vrec: the verify record (vrec.h). The file is one JSON object:
 *   {"version":1,"results":[{result}...],"drops":[{"seq":N,"at_ms":MS}...],"drops_total":N,"drop_max_seq":N}
 * results: the latest result per verified root, newest last; drops: records owed to Gen2 given up (the
 * newest VREC_MAX_DROPS; drop_max_seq keeps the highest ever, which is all the cutover rule needs: a
 * drop journaled after a verify began is one with seq above that verify's begin seq).
 *
 * Every change rewrites the whole file (it is small: at most VREC_MAX_RESULTS results and
 * VREC_MAX_DROPS drops): temporary name, fsync, rename, fsync of the directory.
 */
#include "vrec.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "jrnl_fmt.h"
#include "ajson.h"
#include "log.h"
#include "urlcodec.h"
#include "wfile.h"

#define VREC_FILE_MAX (4u << 20)
#define VREC_BEGUN_MAX 16

typedef struct vdrop {
    uint64_t seq;
    int64_t at_ms;
} vdrop;

typedef struct vbegun {
    char token[VREC_TOKEN_LEN + 1];
    char root[1024];
    uint64_t seq;
    int64_t started_ms;
} vbegun;

struct vrec {
    pthread_mutex_t mu;
    char file[1200], dir[1100];
    char **roots;                 /* every mapping's gen1_prefix, distinct */
    size_t nroots;
    vrec_result res[VREC_MAX_RESULTS]; /* oldest first; by_kind owned */
    size_t nres;
    vdrop drops[VREC_MAX_DROPS];  /* oldest first */
    size_t ndrops;
    uint64_t drops_total, drop_max_seq;
    int64_t drop_max_ms;
    char damaged[300];            /* why the file could not be read ("" when fine) */
    vbegun begun[VREC_BEGUN_MAX];
    size_t nbegun;
};

static int64_t wall_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

void vrec_time(int64_t ms, char out[32])
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    if (ms <= 0 || !gmtime_r(&s, &tm) || strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) snprintf(out, 32, "never");
}

/* root covers p: equal, "/", or p below root (whole segments). */
static bool covers(const char *root, const char *p)
{
    size_t n = strlen(root);
    if (strcmp(root, "/") == 0) return true;
    return strncmp(p, root, n) == 0 && (p[n] == '\0' || p[n] == '/');
}

/* ---------------------------------------------------------------- file */

static json_t *result_json(const vrec_result *r)
{
    char s[32], e[32];
    vrec_time(r->started_ms, s);
    vrec_time(r->ended_ms, e);
    json_t *bk = r->by_kind ? json_incref(r->by_kind) : json_object();
    return json_pack("{s:s,s:b,s:I,s:b,s:I,s:I,s:s,s:s,s:b,s:I,s:I,s:I,s:s,s:o}", "root", r->root, "seq_known",
                     r->seq_known, "begin_seq", (json_int_t)r->begin_seq, "online", r->online, "started_ms",
                     (json_int_t)r->started_ms, "ended_ms", (json_int_t)r->ended_ms, "started", s, "ended", e, "equal",
                     r->equal, "differences", (json_int_t)r->differences, "size_only", (json_int_t)r->size_only,
                     "in_flight", (json_int_t)r->in_flight, "mode", r->mode, "by_kind", bk);
}

static json_int_t jint(const json_t *o, const char *k)
{
    return json_integer_value(json_object_get(o, k));
}

/* A result from the file: 0, or -1 (why). */
static int result_load(const json_t *o, vrec_result *r, const char **why)
{
    memset(r, 0, sizeof *r);
    const char *root = json_string_value(json_object_get(o, "root"));
    const char *mode = json_string_value(json_object_get(o, "mode"));
    json_t *bk = json_object_get(o, "by_kind");
    if (!json_is_object(o) || !root || root[0] != '/' || strlen(root) >= sizeof r->root || !mode ||
        strlen(mode) >= sizeof r->mode || !json_is_boolean(json_object_get(o, "equal")) ||
        !json_is_integer(json_object_get(o, "begin_seq")) || !json_is_integer(json_object_get(o, "ended_ms")) ||
        (bk && !json_is_object(bk))) {
        *why = "a result lacks root, mode, equal, begin_seq or ended_ms";
        return -1;
    }
    snprintf(r->root, sizeof r->root, "%s", root);
    snprintf(r->mode, sizeof r->mode, "%s", mode);
    r->seq_known = json_is_true(json_object_get(o, "seq_known"));
    r->online = json_is_true(json_object_get(o, "online"));
    r->equal = json_is_true(json_object_get(o, "equal"));
    r->begin_seq = (uint64_t)jint(o, "begin_seq");
    r->started_ms = jint(o, "started_ms");
    r->ended_ms = jint(o, "ended_ms");
    r->differences = (uint64_t)jint(o, "differences");
    r->size_only = (uint64_t)jint(o, "size_only");
    r->in_flight = (uint64_t)jint(o, "in_flight");
    r->by_kind = bk ? json_deep_copy(bk) : json_object();
    return 0;
}

static void results_clear(vrec *v)
{
    for (size_t i = 0; i < v->nres; i++) json_decref(v->res[i].by_kind);
    v->nres = 0;
}

/* Read the file into v (under no lock: at open). A problem is noted in v->damaged. */
static void load_file(vrec *v)
{
    int fd = open(v->file, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno != ENOENT) snprintf(v->damaged, sizeof v->damaged, "cannot open it: %s", strerror(errno));
        return;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size > (off_t)VREC_FILE_MAX) {
        snprintf(v->damaged, sizeof v->damaged, "it is larger than %u bytes", VREC_FILE_MAX);
        close(fd);
        return;
    }
    json_error_t je;
    json_t *root = json_loadfd(fd, JSON_REJECT_DUPLICATES, &je);
    close(fd);
    if (!root) {
        snprintf(v->damaged, sizeof v->damaged, "not JSON (line %d: %s)", je.line, je.text);
        return;
    }
    const char *why = NULL;
    json_t *rs = json_object_get(root, "results"), *ds = json_object_get(root, "drops");
    if (jint(root, "version") != 1 || !json_is_array(rs) || (ds && !json_is_array(ds))) why = "not a version 1 record";
    size_t i;
    json_t *e;
    if (!why) json_array_foreach(rs, i, e) {
            if (v->nres == VREC_MAX_RESULTS) break;
            if (result_load(e, &v->res[v->nres], &why) != 0) break;
            v->nres++;
        }
    if (!why) json_array_foreach(ds, i, e) {
            if (!json_is_integer(json_object_get(e, "seq"))) {
                why = "a drop lacks its seq";
                break;
            }
            if (v->ndrops == VREC_MAX_DROPS) break;
            v->drops[v->ndrops++] = (vdrop){(uint64_t)jint(e, "seq"), jint(e, "at_ms")};
        }
    if (!why) {
        v->drops_total = (uint64_t)jint(root, "drops_total");
        v->drop_max_seq = (uint64_t)jint(root, "drop_max_seq");
        v->drop_max_ms = jint(root, "drop_max_ms");
        for (size_t k = 0; k < v->ndrops; k++)
            if (v->drops[k].seq > v->drop_max_seq) v->drop_max_seq = v->drops[k].seq;
    } else {
        snprintf(v->damaged, sizeof v->damaged, "%s", why);
        results_clear(v);
        v->ndrops = 0;
    }
    json_decref(root);
}

/* Write the record (under the lock). 0 or -1 (err). */
static int save(vrec *v, char *err, size_t errlen)
{
    json_t *rs = json_array(), *ds = json_array();
    for (size_t i = 0; i < v->nres; i++) json_array_append_new(rs, result_json(&v->res[i]));
    for (size_t i = 0; i < v->ndrops; i++)
        json_array_append_new(ds, json_pack("{s:I,s:I}", "seq", (json_int_t)v->drops[i].seq, "at_ms",
                                            (json_int_t)v->drops[i].at_ms));
    json_t *root = json_pack("{s:i,s:o,s:o,s:I,s:I,s:I}", "version", 1, "results", rs, "drops", ds, "drops_total",
                             (json_int_t)v->drops_total, "drop_max_seq", (json_int_t)v->drop_max_seq, "drop_max_ms",
                             (json_int_t)v->drop_max_ms);
    char *text = root ? json_dumps(root, JSON_INDENT(1) | JSON_SORT_KEYS) : NULL;
    json_decref(root);
    if (!text) {
        snprintf(err, errlen, "out of memory writing the verify record");
        return -1;
    }
    int rc = -1;
    size_t len = strlen(text);
    char *nl = realloc(text, len + 2);
    if (!nl) {
        snprintf(err, errlen, "out of memory writing the verify record");
        goto out;
    }
    text = nl;
    memcpy(text + len, "\n", 2);
    int wr = wf_replace(v->dir, VREC_FILE, text, len + 1);
    if (wr != 0) {
        snprintf(err, errlen, "cannot write %s: %s", v->file, strerror(-wr));
        goto out;
    }
    v->damaged[0] = '\0';
    rc = 0;
out:
    free(text);
    return rc;
}

/* ---------------------------------------------------------------- life cycle */

int vrec_open(const dp_config *cfg, const char *dir, vrec **out, char *err, size_t errlen)
{
    vrec *v = calloc(1, sizeof *v);
    if (!v) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    pthread_mutex_init(&v->mu, NULL);
    if (snprintf(v->dir, sizeof v->dir, "%s", dir) >= (int)sizeof v->dir ||
        snprintf(v->file, sizeof v->file, "%s/%s", dir, VREC_FILE) >= (int)sizeof v->file) {
        snprintf(err, errlen, "journal.dir too long for the verify record");
        goto fail;
    }
    v->roots = calloc((size_t)(cfg->nmappings > 0 ? cfg->nmappings : 1), sizeof *v->roots);
    if (!v->roots) goto oom;
    for (int i = 0; i < cfg->nmappings; i++) {
        const char *p = cfg->mappings[i].gen1_prefix;
        bool seen = false;
        for (size_t k = 0; k < v->nroots && !seen; k++) seen = strcmp(v->roots[k], p) == 0;
        if (seen) continue;
        if (!(v->roots[v->nroots] = strdup(p))) goto oom;
        v->nroots++;
    }
    load_file(v);
    if (v->damaged[0])
        LOGW("msg=\"the verify record cannot be read: a cutover to gen2-only is refused until a verify records a new "
             "one\" file=\"%s\" cause=\"%s\"",
             v->file, v->damaged);
    *out = v;
    return 0;
oom:
    snprintf(err, errlen, "out of memory");
fail:
    vrec_free(v);
    return -1;
}

void vrec_free(vrec *v)
{
    if (!v) return;
    results_clear(v);
    for (size_t i = 0; i < v->nroots; i++) free(v->roots[i]);
    free(v->roots);
    pthread_mutex_destroy(&v->mu);
    free(v);
}

/* ---------------------------------------------------------------- begin, end, drops */

int vrec_begin(vrec *v, const char *root, uint64_t seq, char token[VREC_TOKEN_LEN + 1])
{
    if (!root || root[0] != '/' || strlen(root) >= sizeof v->begun[0].root) return -1;
    unsigned char rnd[VREC_TOKEN_LEN / 2];
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
        /* no entropy source: the token only pairs a begin with its end, so the clock will do */
        uint64_t t = (uint64_t)wall_ms() ^ ((uint64_t)getpid() << 32);
        for (size_t i = 0; i < sizeof rnd; i++) rnd[i] = (unsigned char)(t >> ((i % 8) * 8)) ^ (unsigned char)i;
    }
    for (size_t i = 0; i < sizeof rnd; i++) snprintf(token + 2 * i, 3, "%02x", rnd[i]);
    pthread_mutex_lock(&v->mu);
    if (v->nbegun == VREC_BEGUN_MAX) { /* the oldest is forgotten: its end will be refused */
        memmove(&v->begun[0], &v->begun[1], (VREC_BEGUN_MAX - 1) * sizeof v->begun[0]);
        v->nbegun--;
    }
    vbegun *b = &v->begun[v->nbegun++];
    snprintf(b->token, sizeof b->token, "%s", token);
    snprintf(b->root, sizeof b->root, "%s", root);
    b->seq = seq;
    b->started_ms = wall_ms();
    pthread_mutex_unlock(&v->mu);
    return 0;
}

int vrec_begun(vrec *v, const char *token, char *root, size_t rootcap, uint64_t *seq, int64_t *started_ms)
{
    int rc = -1;
    pthread_mutex_lock(&v->mu);
    for (size_t i = 0; i < v->nbegun; i++) {
        if (strcmp(v->begun[i].token, token) != 0) continue;
        snprintf(root, rootcap, "%s", v->begun[i].root);
        *seq = v->begun[i].seq;
        *started_ms = v->begun[i].started_ms;
        rc = 0;
        break;
    }
    pthread_mutex_unlock(&v->mu);
    return rc;
}

int vrec_end(vrec *v, const vrec_result *r, char *err, size_t errlen)
{
    pthread_mutex_lock(&v->mu);
    size_t at = v->nres;
    for (size_t i = 0; i < v->nres; i++)
        if (strcmp(v->res[i].root, r->root) == 0) at = i;
    if (at < v->nres) { /* the same root's older result goes */
        json_decref(v->res[at].by_kind);
        memmove(&v->res[at], &v->res[at + 1], (v->nres - at - 1) * sizeof v->res[0]);
        v->nres--;
    } else if (v->nres == VREC_MAX_RESULTS) {
        json_decref(v->res[0].by_kind);
        memmove(&v->res[0], &v->res[1], (VREC_MAX_RESULTS - 1) * sizeof v->res[0]);
        v->nres--;
    }
    vrec_result *n = &v->res[v->nres++];
    *n = *r;
    n->by_kind = r->by_kind ? json_deep_copy(r->by_kind) : json_object();
    /* drops before every result's begin no longer matter to any: forget them */
    uint64_t floor = UINT64_MAX;
    for (size_t i = 0; i < v->nres; i++)
        if (v->res[i].begin_seq < floor) floor = v->res[i].begin_seq;
    size_t k = 0;
    for (size_t i = 0; i < v->ndrops; i++)
        if (v->drops[i].seq > floor) v->drops[k++] = v->drops[i];
    v->ndrops = k;
    int rc = save(v, err, errlen);
    pthread_mutex_unlock(&v->mu);
    char t[32];
    vrec_time(r->ended_ms, t);
    LOGI("msg=\"verify recorded\" root=\"%s\" equal=%d differences=%" PRIu64 " in_flight=%" PRIu64
         " begin_seq=%" PRIu64 " online=%d ended=%s persisted=%d",
         r->root, r->equal, r->differences, r->in_flight, r->begin_seq, r->online, t, rc == 0);
    return rc;
}

int vrec_note_divergence(vrec *v, uint64_t seq, bool to_gen1)
{
    if (to_gen1) return 0; /* Gen1 is retired by gen2-only: what it lacks does not matter there */
    pthread_mutex_lock(&v->mu);
    if (v->ndrops == VREC_MAX_DROPS) {
        memmove(&v->drops[0], &v->drops[1], (VREC_MAX_DROPS - 1) * sizeof v->drops[0]);
        v->ndrops--;
    }
    int64_t now = wall_ms();
    v->drops[v->ndrops++] = (vdrop){seq, now};
    v->drops_total++;
    if (seq > v->drop_max_seq) {
        v->drop_max_seq = seq;
        v->drop_max_ms = now;
    }
    char err[400];
    int rc = save(v, err, sizeof err);
    pthread_mutex_unlock(&v->mu);
    if (rc != 0) LOGE("msg=\"cannot persist a dropped record in the verify record\" seq=%" PRIu64 " cause=\"%s\"", seq, err);
    return rc;
}

/* ---------------------------------------------------------------- the cutover rule */

/* " (missing 2, extra 1)" of a result's by_kind. */
static void kinds_text(const json_t *bk, char *out, size_t cap)
{
    size_t o = 0;
    out[0] = '\0';
    const char *k;
    json_t *n;
    json_object_foreach((json_t *)bk, k, n) {
        json_int_t c = json_integer_value(n);
        if (c <= 0) continue;
        int w = snprintf(out + o, cap - o, "%s%s %" JSON_INTEGER_FORMAT, o ? ", " : " (", k, c);
        if (w < 0 || (size_t)w >= cap - o) break;
        o += (size_t)w;
    }
    if (o && o + 2 <= cap) snprintf(out + o, cap - o, ")");
}

/* The newest result whose root covers p (NULL: none); *sub gets the newest one strictly below p. */
static const vrec_result *covering(const vrec *v, const char *p, const vrec_result **sub)
{
    const vrec_result *best = NULL;
    *sub = NULL;
    for (size_t i = 0; i < v->nres; i++) {
        const vrec_result *r = &v->res[i];
        if (covers(r->root, p)) {
            if (!best || r->ended_ms >= best->ended_ms) best = r;
        } else if (covers(p, r->root)) {
            if (!*sub || r->ended_ms >= (*sub)->ended_ms) *sub = r;
        }
    }
    return best;
}

static int cutover_locked(const vrec *v, char *why, size_t cap)
{
    const char *all = v->nroots == 1 ? v->roots[0] : "/";
    if (v->damaged[0] && v->nres == 0) {
        snprintf(why, cap, "the verify record %s cannot be read (%s): run dualpipe verify %s to record a new one",
                 v->file, v->damaged, all);
        return -1;
    }
    for (size_t m = 0; m < v->nroots; m++) {
        const char *p = v->roots[m];
        const vrec_result *sub = NULL, *r = covering(v, p, &sub);
        char ts[32], kinds[256];
        if (!r) {
            if (sub)
                snprintf(why, cap,
                         "only a subtree of %s was verified (the last: %s): a verify of a subtree does not count for "
                         "a cutover; run dualpipe verify %s",
                         p, sub->root, p);
            else if (v->nres == 0)
                snprintf(why, cap, "no verify of the whole namespace recorded: run dualpipe verify %s%s", all,
                         v->nroots > 1 ? " (or each mapping's root)" : "");
            else
                snprintf(why, cap, "no verify recorded covers the mapping %s: run dualpipe verify %s", p, p);
            return -1;
        }
        vrec_time(r->ended_ms, ts);
        if (!r->seq_known) {
            snprintf(why, cap,
                     "the last verify of %s (%s) ran offline without reading the journal's position, so the writes "
                     "after it cannot be accounted for: run dualpipe verify %s again",
                     r->root, ts, r->root);
            return -1;
        }
        if (r->differences > 0) {
            kinds_text(r->by_kind, kinds, sizeof kinds);
            snprintf(why, cap,
                     "the last verify of %s (%s, seq %" PRIu64 ") found %" PRIu64 " difference%s%s: run dualpipe "
                     "verify %s --repair",
                     r->root, ts, r->begin_seq, r->differences, r->differences == 1 ? "" : "s", kinds, r->root);
            return -1;
        }
        if (r->in_flight > 0 || !r->equal) {
            snprintf(why, cap,
                     "the last verify of %s (%s, seq %" PRIu64 ") left %" PRIu64 " path%s in flight (still pending in "
                     "the journal when it stopped waiting): run dualpipe verify %s again once the journal drained",
                     r->root, ts, r->begin_seq, r->in_flight, r->in_flight == 1 ? "" : "s", r->root);
            return -1;
        }
        if (sub && sub->ended_ms > r->ended_ms && (sub->differences > 0 || sub->in_flight > 0 || !sub->equal)) {
            char ts2[32];
            vrec_time(sub->ended_ms, ts2);
            snprintf(why, cap,
                     "a later verify of %s (%s) found %" PRIu64 " difference%s and %" PRIu64 " path%s in flight: "
                     "run dualpipe verify %s --repair",
                     sub->root, ts2, sub->differences, sub->differences == 1 ? "" : "s", sub->in_flight,
                     sub->in_flight == 1 ? "" : "s", p);
            return -1;
        }
        if (v->drop_max_seq > r->begin_seq) {
            uint64_t n = 0;
            for (size_t i = 0; i < v->ndrops; i++) n += v->drops[i].seq > r->begin_seq;
            char td[32];
            vrec_time(v->drop_max_ms, td);
            snprintf(why, cap,
                     "%" PRIu64 " record%s owed to Gen2 and journaled after the last verify of %s began (%s, seq %" PRIu64
                     ") %s given up since (the last: record %" PRIu64 ", %s), so Gen2 may lack %s: run dualpipe "
                     "verify %s --repair",
                     n ? n : 1, n > 1 ? "s" : "", r->root, ts, r->begin_seq, n > 1 ? "were" : "was", v->drop_max_seq,
                     td, n > 1 ? "those writes" : "that write", r->root);
            return -1;
        }
    }
    if (v->nroots == 0) {
        snprintf(why, cap, "no mapping is configured");
        return -1;
    }
    snprintf(why, cap, "ok");
    return 0;
}

int vrec_cutover_ok(vrec *v, char *why, size_t cap)
{
    pthread_mutex_lock(&v->mu);
    int rc = cutover_locked(v, why, cap);
    pthread_mutex_unlock(&v->mu);
    return rc;
}

/* ---------------------------------------------------------------- JSON, metrics */

int vrec_json(vrec *v, dbuf *out)
{
    pthread_mutex_lock(&v->mu);
    char why[1024];
    int ok = cutover_locked(v, why, sizeof why);
    json_t *rs = json_array(), *ds = json_array(), *roots = json_array();
    const vrec_result *last = NULL;
    for (size_t i = 0; i < v->nres; i++) {
        json_array_append_new(rs, result_json(&v->res[i]));
        if (!last || v->res[i].ended_ms >= last->ended_ms) last = &v->res[i];
    }
    for (size_t i = 0; i < v->ndrops; i++)
        json_array_append_new(ds, json_pack("{s:I,s:I}", "seq", (json_int_t)v->drops[i].seq, "at_ms",
                                            (json_int_t)v->drops[i].at_ms));
    for (size_t i = 0; i < v->nroots; i++) json_array_append_new(roots, json_string(v->roots[i]));
    json_t *root = json_pack("{s:s,s:s?,s:o,s:o,s:o,s:{s:I,s:I,s:o},s:{s:b,s:s}}", "file", v->file, "damaged",
                             v->damaged[0] ? v->damaged : NULL, "namespace", roots, "last",
                             last ? result_json(last) : json_null(), "results", rs, "dropped_to_gen2", "total",
                             (json_int_t)v->drops_total, "max_seq", (json_int_t)v->drop_max_seq, "recent", ds,
                             "cutover", "ok", ok == 0, "why", why);
    pthread_mutex_unlock(&v->mu);
    char *s = root ? json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(root);
    int rc = s && dbuf_adds(out, s) == 0 && dbuf_adds(out, "\n") == 0 ? 0 : -1;
    free(s);
    return rc;
}

static const vrec_result *last_locked(const vrec *v)
{
    const vrec_result *last = NULL;
    for (size_t i = 0; i < v->nres; i++)
        if (!last || v->res[i].ended_ms >= last->ended_ms) last = &v->res[i];
    return last;
}

static int64_t g_equal(void *ud)
{
    vrec *v = ud;
    pthread_mutex_lock(&v->mu);
    const vrec_result *l = last_locked(v);
    int64_t r = l ? l->equal : -1;
    pthread_mutex_unlock(&v->mu);
    return r;
}

static int64_t g_end(void *ud)
{
    vrec *v = ud;
    pthread_mutex_lock(&v->mu);
    const vrec_result *l = last_locked(v);
    int64_t r = l ? l->ended_ms / 1000 : 0;
    pthread_mutex_unlock(&v->mu);
    return r;
}

static int64_t g_cutover(void *ud)
{
    char why[512];
    return vrec_cutover_ok(ud, why, sizeof why) == 0;
}

int vrec_register_metrics(vrec *v, metrics *m)
{
    if (metrics_gauge_fn(m, "dualpipe_verify_last_equal",
                         "1 when the last recorded verify found both sides equal, 0 when not, -1 when none is recorded.",
                         NULL, g_equal, v) != 0 ||
        metrics_gauge_fn(m, "dualpipe_verify_last_end_seconds",
                         "Unix time the last recorded verify ended (0: none recorded).", NULL, g_end, v) != 0 ||
        metrics_gauge_fn(m, "dualpipe_verify_cutover_ok",
                         "1 when the verify record allows entering gen2-only (GET /admin/verify says why not).", NULL,
                         g_cutover, v) != 0)
        return -1;
    return 0;
}

/* ---------------------------------------------------------------- admin endpoints */

/* A decimal parameter: 1 found (*v), 0 absent, -1 malformed. */
static int qnum(const char *query, const char *name, uint64_t *v)
{
    dbuf b;
    dbuf_init(&b, 64);
    int rc = url_query_get(query, name, &b);
    if (rc == 1) {
        char *end = NULL;
        errno = 0;
        unsigned long long x = strtoull(b.data, &end, 10);
        if (!b.data[0] || *end || errno || b.data[0] == '-') rc = -1;
        else *v = x;
    }
    dbuf_free(&b);
    return rc;
}

/* "kind:n,kind:n" into a JSON object. NULL when malformed. */
static json_t *kinds_parse(const char *s)
{
    json_t *o = json_object();
    while (o && *s) {
        const char *c = strchr(s, ':'), *e = strchr(s, ',');
        if (!e) e = s + strlen(s);
        if (!c || c > e || c == s || c - s > 32) goto bad;
        char name[40], num[24];
        snprintf(name, sizeof name, "%.*s", (int)(c - s), s);
        if (e - c - 1 <= 0 || e - c - 1 >= (long)sizeof num) goto bad;
        snprintf(num, sizeof num, "%.*s", (int)(e - c - 1), c + 1);
        for (const char *p = name; *p; p++)
            if (!((*p >= 'a' && *p <= 'z') || *p == '_')) goto bad;
        char *end = NULL;
        unsigned long long n = strtoull(num, &end, 10);
        if (*end || num[0] == '-') goto bad;
        json_object_set_new(o, name, json_integer((json_int_t)n));
        s = *e ? e + 1 : e;
        if (*e && !*s) goto bad; /* a trailing comma */
    }
    return o;
bad:
    json_decref(o);
    return NULL;
}

static unsigned http_begin(vrec *v, uint64_t jseq, const char *query, dbuf *out)
{
    dbuf b;
    dbuf_init(&b, 1100);
    int rc = url_query_get(query, "root", &b);
    if (rc != 1 || b.data[0] != '/') {
        dbuf_free(&b);
        return ajson_error(out, 400, "root: required, the verified absolute path");
    }
    char tok[VREC_TOKEN_LEN + 1];
    rc = vrec_begin(v, b.data, jseq, tok);
    dbuf_free(&b);
    if (rc != 0) return ajson_error(out, 400, "root: too long");
    if (dbuf_printf(out, "{\"token\":\"%s\",\"seq\":%" PRIu64 ",\"started_ms\":%" PRId64 "}\n", tok, jseq, wall_ms()) != 0)
        return 500;
    return 200;
}

static unsigned http_end(vrec *v, const char *query, dbuf *out)
{
    vrec_result r;
    memset(&r, 0, sizeof r);
    dbuf b;
    dbuf_init(&b, 4096);
    unsigned st = 400;
    const char *bad = NULL;
    int rc = url_query_get(query, "token", &b);
    if (rc < 0) bad = "token: malformed";
    else if (rc == 1) {
        if (vrec_begun(v, b.data, r.root, sizeof r.root, &r.begin_seq, &r.started_ms) != 0) {
            st = 409;
            bad = "no verify with that token began here (the daemon restarted since it began?): its result is not "
                  "recorded; run the verify again";
        }
        r.seq_known = true;
        r.online = true;
    } else { /* begun offline: root and (when it was read) the journal's seq come from the verify */
        if (url_query_get(query, "root", &b) != 1 || b.data[0] != '/' || b.len >= sizeof r.root) bad = "root: required without token";
        else snprintf(r.root, sizeof r.root, "%s", b.data);
        rc = qnum(query, "begin_seq", &r.begin_seq);
        if (rc < 0) bad = "begin_seq: a decimal number";
        r.seq_known = rc == 1;
        uint64_t sm = 0;
        if (qnum(query, "started_ms", &sm) == 1) r.started_ms = (int64_t)sm;
    }
    uint64_t eq = 0;
    if (!bad && qnum(query, "equal", &eq) != 1) bad = "equal: required, 0 or 1";
    if (!bad && (qnum(query, "differences", &r.differences) < 0 || qnum(query, "size_only", &r.size_only) < 0 ||
                 qnum(query, "in_flight", &r.in_flight) < 0))
        bad = "differences, size_only and in_flight: decimal numbers";
    if (!bad) {
        rc = url_query_get(query, "mode", &b);
        if (rc != 1 || (strcmp(b.data, "size") != 0 && strcmp(b.data, "digest") != 0 && strcmp(b.data, "deep") != 0))
            bad = "mode: size, digest or deep";
        else snprintf(r.mode, sizeof r.mode, "%s", b.data);
    }
    if (!bad) {
        rc = url_query_get(query, "kinds", &b);
        if (rc < 0 || !(r.by_kind = kinds_parse(rc == 1 ? b.data : ""))) bad = "kinds: kind:count pairs separated by commas";
    }
    dbuf_free(&b);
    if (bad) {
        json_decref(r.by_kind);
        return ajson_error(out, st, "%s", bad);
    }
    r.equal = eq == 1 && r.differences == 0 && r.in_flight == 0;
    r.ended_ms = wall_ms();
    if (!r.started_ms) r.started_ms = r.ended_ms;
    char err[400];
    rc = vrec_end(v, &r, err, sizeof err);
    json_decref(r.by_kind);
    if (rc != 0) return ajson_error(out, 503, "%s", err);
    char why[1024];
    int ok = vrec_cutover_ok(v, why, sizeof why);
    json_t *o = json_pack("{s:b,s:{s:b,s:s}}", "recorded", 1, "cutover", "ok", ok == 0, "why", why);
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    unsigned ret = s && dbuf_adds(out, s) == 0 && dbuf_adds(out, "\n") == 0 ? 200 : 500;
    free(s);
    return ret;
}

unsigned vrec_http(vrec *v, uint64_t journal_seq, const char *url, bool post, const char *query, dbuf *out,
                   const char **allow)
{
    if (strcmp(url, "/admin/verify") == 0) {
        if (post) {
            *allow = "GET, HEAD";
            return 405;
        }
        return vrec_json(v, out) == 0 ? 200 : 500;
    }
    bool begin = strcmp(url, "/admin/verify/begin") == 0, end = strcmp(url, "/admin/verify/end") == 0;
    if (!begin && !end) return ajson_error(out, 404, "no such verify endpoint");
    if (!post) {
        *allow = "POST";
        return 405;
    }
    return begin ? http_begin(v, journal_seq, query, out) : http_end(v, query, out);
}

/* ---------------------------------------------------------------- offline */

static int seg_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)b, *(char *const *)a); /* newest (largest hex) first */
}

int vrec_offline_seq(const char *journal_dir, uint64_t *seq, char *err, size_t errlen)
{
    DIR *d = opendir(journal_dir);
    if (!d) {
        snprintf(err, errlen, "cannot open %s: %s", journal_dir, strerror(errno));
        return -1;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l != 25 || strncmp(e->d_name, "jrnl-", 5) != 0 || strcmp(e->d_name + 21, ".seg") != 0) continue;
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 16;
            char **nv = realloc(names, nc * sizeof *nv);
            if (!nv) break;
            names = nv, cap = nc;
        }
        if ((names[n] = strdup(e->d_name))) n++;
    }
    closedir(d);
    if (n > 1) qsort(names, n, sizeof *names, seg_cmp);
    int rc = -1;
    snprintf(err, errlen, "no journal segment in %s", journal_dir);
    /* the newest segment with a header: its floor is the highest seq assigned before it, its records the rest */
    for (size_t i = 0; i < n && rc != 0; i++) {
        char path[1400];
        snprintf(path, sizeof path, "%s/%s", journal_dir, names[i]);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) != 0) {
            snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
            if (fd >= 0) close(fd);
            break;
        }
        if (st.st_size == 0) {
            close(fd);
            continue;
        }
        void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        close(fd);
        if (m == MAP_FAILED) {
            snprintf(err, errlen, "cannot map %s: %s", path, strerror(errno));
            break;
        }
        jfmt_seg_stats ss;
        jfmt_scan_segment(m, (size_t)st.st_size, NULL, NULL, &ss);
        munmap(m, (size_t)st.st_size);
        if (ss.hdr_res == JFMT_END) continue; /* its header never reached the disk: the one before counts */
        if (ss.hdr_res != JFMT_OK) {
            snprintf(err, errlen, "%s: %s header", path, jfmt_res_name(ss.hdr_res));
            break;
        }
        *seq = ss.max_seq > ss.hdr.seq_floor ? ss.max_seq : ss.hdr.seq_floor;
        rc = 0;
    }
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    return rc;
}
