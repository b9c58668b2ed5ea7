/*
 * fence: the paths written through the proxy since a DistCp plan's fence (fence.h).
 */
#include "fence.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "jrnl_fmt.h"
#include "log.h"
#include "urlcodec.h"
#include "wfile.h"
#include "whreq.h"

#define FENCE_KEEP 64                  /* fences remembered (the oldest settled ones go first) */
#define FENCE_DEDUP_BYTES (64u << 20)  /* path bytes the dedup set holds at most */
#define FENCE_READ_CHUNK (256u << 10)
#define FENCE_INST_HEX 24

typedef struct fence {
    uint64_t id, seq, start, end, resynced;
    int64_t created_s, settled_s;
    fence_state state;
    char *root;
    char broken[300];
} fence;

/* The dedup set: paths logged since the newest fence (open addressing; 'T' entries cover 'N'). */
typedef struct dset {
    char **b;                   /* "K/path" strings: K is 'N' or 'T' */
    size_t cap, n, bytes;
    bool full;                  /* past its bounds: every path is logged */
} dset;

struct fence_reg {
    pthread_mutex_t mu;
    journal *j;
    char dir[1100];
    char instance[FENCE_INST_HEX + 1];  /* "" until the first fence */
    uint64_t next_id;
    fence v[FENCE_KEEP];
    int nv;
    int nopen;                  /* fences in state OPEN (logging) */
    int fd;                     /* the log, O_APPEND */
    uint64_t log_size;
    dset seen;
    dbuf line;                  /* the hook's batch of lines */
    char bad[700];              /* fence.json could not be read: every fence call fails with this */
};

static int64_t now_s(void) { return (int64_t)time(NULL); }

static const char *state_name(fence_state s)
{
    return s == FENCE_OPEN ? "open" : s == FENCE_SETTLING ? "settling" : "settled";
}

static bool under(const char *path, const char *root)
{
    size_t n = strlen(root);
    if (n == 1) return true;
    return strncmp(path, root, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

/* ---------------------------------------------------------------- dedup set */

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static void dset_clear(dset *d)
{
    for (size_t i = 0; i < d->cap; i++) free(d->b[i]);
    free(d->b);
    memset(d, 0, sizeof *d);
}

/* true when path was logged with kind k (or 'T') since the set was cleared; else remembers it. */
static bool dset_seen(dset *d, const char *path, char k)
{
    if (d->full) return false;
    if (d->n + 1 > d->cap / 2) {
        size_t nc = d->cap ? d->cap * 2 : 1024;
        char **nb = d->n >= FENCE_DEDUP_MAX ? NULL : calloc(nc, sizeof *nb);
        if (!nb) {
            d->full = true; /* correct without it, only larger */
            return false;
        }
        for (size_t i = 0; i < d->cap; i++) {
            if (!d->b[i]) continue;
            size_t at = hash_str(d->b[i] + 1) & (nc - 1);
            while (nb[at]) at = (at + 1) & (nc - 1);
            nb[at] = d->b[i];
        }
        free(d->b);
        d->b = nb;
        d->cap = nc;
    }
    size_t at = hash_str(path) & (d->cap - 1);
    while (d->b[at]) {
        if (strcmp(d->b[at] + 1, path) == 0) {
            if (d->b[at][0] == 'T' || k == 'N') return true;
            d->b[at][0] = 'T';
            return false;
        }
        at = (at + 1) & (d->cap - 1);
    }
    size_t len = strlen(path);
    if (d->bytes + len > FENCE_DEDUP_BYTES) {
        d->full = true;
        return false;
    }
    char *s = malloc(len + 2);
    if (!s) {
        d->full = true;
        return false;
    }
    s[0] = k;
    memcpy(s + 1, path, len + 1);
    d->b[at] = s;
    d->n++;
    d->bytes += len;
    return false;
}

/* ---------------------------------------------------------------- state file */

/* Write fence.json whole (under mu). 0 or -errno. */
static int save(fence_reg *f)
{
    json_t *arr = json_array();
    for (int i = 0; i < f->nv && arr; i++) {
        const fence *x = &f->v[i];
        json_array_append_new(
            arr, json_pack("{s:I,s:s,s:I,s:I,s:s,s:I,s:I,s:I,s:I,s:s}", "id", (json_int_t)x->id, "root", x->root,
                           "seq", (json_int_t)x->seq, "created", (json_int_t)x->created_s, "state",
                           state_name(x->state), "start", (json_int_t)x->start, "end", (json_int_t)x->end,
                           "settled", (json_int_t)x->settled_s, "resynced", (json_int_t)x->resynced, "broken",
                           x->broken));
    }
    json_t *o = arr ? json_pack("{s:i,s:s,s:I,s:o}", "version", 1, "instance", f->instance, "next",
                                (json_int_t)f->next_id, "fences", arr)
                    : NULL;
    char *txt = o ? json_dumps(o, JSON_INDENT(1)) : NULL;
    json_decref(o);
    if (!txt) return -ENOMEM;
    int rc = wf_replace(f->dir, "fence.json", txt, strlen(txt));
    free(txt);
    return rc;
}

static fence_state state_of(const char *s)
{
    return s && strcmp(s, "settled") == 0 ? FENCE_SETTLED : s && strcmp(s, "settling") == 0 ? FENCE_SETTLING : FENCE_OPEN;
}

/* The fences of a parsed fence.json (what names the file in messages: where). 0 or -1 (err). */
static int parse_file(fence_reg *f, json_t *o, const char *where, char *err, size_t errlen)
{
    const char *inst = json_string_value(json_object_get(o, "instance"));
    json_t *arr = json_object_get(o, "fences");
    if (!inst || strlen(inst) > FENCE_INST_HEX || !json_is_array(arr)) {
        snprintf(err, errlen, "%.300s: not a fence file (instance, fences)", where);
        return -1;
    }
    snprintf(f->instance, sizeof f->instance, "%s", inst);
    f->next_id = (uint64_t)json_integer_value(json_object_get(o, "next"));
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e) {
        const char *root = json_string_value(json_object_get(e, "root"));
        if (!root || f->nv >= FENCE_KEEP) continue;
        fence *x = &f->v[f->nv];
        memset(x, 0, sizeof *x);
        if (!(x->root = strdup(root))) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        x->id = (uint64_t)json_integer_value(json_object_get(e, "id"));
        x->seq = (uint64_t)json_integer_value(json_object_get(e, "seq"));
        x->created_s = json_integer_value(json_object_get(e, "created"));
        x->settled_s = json_integer_value(json_object_get(e, "settled"));
        x->state = state_of(json_string_value(json_object_get(e, "state")));
        x->start = (uint64_t)json_integer_value(json_object_get(e, "start"));
        x->end = (uint64_t)json_integer_value(json_object_get(e, "end"));
        x->resynced = (uint64_t)json_integer_value(json_object_get(e, "resynced"));
        const char *br = json_string_value(json_object_get(e, "broken"));
        snprintf(x->broken, sizeof x->broken, "%s", br ? br : "");
        f->nv++;
    }
    return 0;
}

static int load(fence_reg *f, char *err, size_t errlen)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/fence.json", f->dir);
    json_error_t je;
    json_t *o = json_load_file(path, 0, &je);
    if (!o) {
        if (access(path, F_OK) != 0 && errno == ENOENT) return 0;
        snprintf(err, errlen, "%.300s: %.200s (line %d)", path, je.text, je.line);
        return -1;
    }
    int rc = parse_file(f, o, path, err, errlen);
    json_decref(o);
    return rc;
}

int fence_file_check(const char *text, size_t len, int *nfences, char *err, size_t errlen)
{
    fence_reg *f = calloc(1, sizeof *f);
    if (!f) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    json_error_t je;
    json_t *o = json_loadb(text, len, 0, &je);
    int rc = -1;
    if (!o) snprintf(err, errlen, "fence.json: %.200s (line %d)", je.text, je.line);
    else rc = parse_file(f, o, "fence.json", err, errlen);
    json_decref(o);
    *nfences = f->nv;
    for (int i = 0; i < f->nv; i++) free(f->v[i].root);
    free(f);
    return rc;
}

/* ---------------------------------------------------------------- the log */

/* Every fence still logging is broken: why (under mu). */
static void break_open(fence_reg *f, const char *why)
{
    for (int i = 0; i < f->nv; i++)
        if (f->v[i].state != FENCE_SETTLED && !f->v[i].broken[0])
            snprintf(f->v[i].broken, sizeof f->v[i].broken, "%s", why);
    LOGE("msg=\"fence log broken: the open fences cannot be settled\" cause=\"%s\"", why);
    (void)save(f);
}

/* Append f->line to the log (under mu). true when written. */
static bool log_flush(fence_reg *f)
{
    if (!f->line.len) return false;
    size_t done = 0;
    while (done < f->line.len) {
        ssize_t w = write(f->fd, f->line.data + done, f->line.len - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            char why[200];
            snprintf(why, sizeof why, "the touched-path log could not be written: %s", strerror(w < 0 ? errno : EIO));
            break_open(f, why);
            /* a partial line would be misread: cut it back to the last whole one */
            if (ftruncate(f->fd, (off_t)f->log_size) == 0) done = 0;
            break;
        }
        done += (size_t)w;
    }
    f->log_size += done;
    dbuf_reset(&f->line);
    return done > 0;
}

/* Queue one line for path if an open fence covers it and it is not logged yet (under mu). */
static void log_path(fence_reg *f, const char *path, bool tree)
{
    bool covered = false;
    for (int i = 0; i < f->nv && !covered; i++)
        covered = f->v[i].state == FENCE_OPEN && under(path, f->v[i].root);
    if (!covered || dset_seen(&f->seen, path, tree ? 'T' : 'N')) return;
    size_t at = f->line.len;
    if (dbuf_printf(&f->line, "%c ", tree ? 'T' : 'N') != 0 || url_encode(path, true, &f->line) != 0 ||
        dbuf_adds(&f->line, "\n") != 0) {
        f->line.len = at;
        break_open(f, "out of memory writing the touched-path log");
    }
}

static bool append_hook(void *ud, uint16_t jop, const char *const *touched, int n)
{
    fence_reg *f = ud;
    pthread_mutex_lock(&f->mu);
    bool wrote = false;
    if (f->nopen > 0) {
        bool tree = jop == JFMT_OP_RENAME || jop == JFMT_OP_DELETE;
        for (int i = 0; i < n; i++) log_path(f, touched[i], tree);
        wrote = log_flush(f);
    }
    pthread_mutex_unlock(&f->mu);
    return wrote;
}

static void seed_fn(void *ud, const jnl_entry *e)
{
    fence_reg *f = ud;
    pthread_mutex_lock(&f->mu);
    bool tree = e->jop == JFMT_OP_RENAME || e->jop == JFMT_OP_DELETE;
    for (int i = 0; i < e->ntouched; i++) log_path(f, e->touched[i], tree);
    if (f->line.len > 64 * 1024) (void)log_flush(f);
    pthread_mutex_unlock(&f->mu);
}

/* The log is empty again when nothing logs or reads it (under mu). */
static void maybe_truncate(fence_reg *f)
{
    for (int i = 0; i < f->nv; i++)
        if (f->v[i].state != FENCE_SETTLED) return;
    if (f->log_size && ftruncate(f->fd, 0) == 0) f->log_size = 0;
    dset_clear(&f->seen);
}

/* ---------------------------------------------------------------- tokens */

static void token_of(const fence_reg *f, const fence *x, char *out, size_t cap)
{
    snprintf(out, cap, "dpf1-%s-%" PRIu64 "-%" PRIu64, f->instance, x->id, x->seq);
}

static void info_of(const fence_reg *f, const fence *x, fence_info *o)
{
    memset(o, 0, sizeof *o);
    token_of(f, x, o->token, sizeof o->token);
    snprintf(o->root, sizeof o->root, "%s", x->root);
    o->seq = x->seq;
    o->created_s = x->created_s;
    o->settled_s = x->settled_s;
    o->state = x->state;
    o->start = x->start;
    o->end = x->end;
    o->resynced = x->resynced;
    snprintf(o->broken, sizeof o->broken, "%s", x->broken);
}

/* The fence of token (under mu): NULL with err and *rc. */
/* A decimal u64 at *p (at least one digit, no sign), *p moved past it. */
static int dec_u64(const char **p, uint64_t *out)
{
    const char *s = *p;
    if (*s < '0' || *s > '9') return -1;
    uint64_t v = 0;
    for (; *s >= '0' && *s <= '9'; s++) {
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10) return -1;
        v = v * 10 + d;
    }
    *p = s;
    *out = v;
    return 0;
}

int fence_token_parse(const char *token, char inst[25], uint64_t *id, uint64_t *seq)
{
    if (!token || strncmp(token, "dpf1-", 5) != 0 || strlen(token) >= FENCE_TOKEN_MAX) return -1;
    const char *p = token + 5;
    size_t k = 0;
    while (k < FENCE_INST_HEX && ((p[k] >= '0' && p[k] <= '9') || (p[k] >= 'a' && p[k] <= 'f'))) k++;
    if (k != FENCE_INST_HEX || p[k] != '-') return -1;
    memcpy(inst, p, k);
    inst[k] = '\0';
    p += k + 1;
    if (dec_u64(&p, id) != 0 || *p++ != '-' || dec_u64(&p, seq) != 0 || *p != '\0') return -1;
    return 0;
}

int fence_log_line_parse(const char *ln, size_t len, dbuf *path, bool *tree)
{
    if (len < 3 || (ln[0] != 'N' && ln[0] != 'T') || ln[1] != ' ') return -1;
    dbuf_reset(path);
    if (url_decode(ln + 2, len - 2, URL_NO_CTL, path) != 0 || !path->data || path->data[0] != '/') return -1;
    *tree = ln[0] == 'T';
    return 0;
}

static fence *find(fence_reg *f, const char *token, int *rc, char *err, size_t errlen)
{
    if (f->bad[0]) {
        *rc = -EIO;
        snprintf(err, errlen, "the daemon's fence file cannot be read (%.500s): fix or remove it (its fences are "
                 "lost: copy their trees with `dualpipe backfill`)", f->bad);
        return NULL;
    }
    char inst[FENCE_INST_HEX + 1];
    uint64_t id = 0, seq = 0;
    if (fence_token_parse(token, inst, &id, &seq) != 0) {
        *rc = -EINVAL;
        snprintf(err, errlen, "fence: not a fence token (dpf1-<24 hex>-<number>-<number>, as --plan printed it)");
        return NULL;
    }
    if (strcmp(inst, f->instance) != 0) {
        *rc = -EXDEV;
        snprintf(err, errlen, "fence %s was taken by another dualpipe (instance %s); this daemon's journal is "
                 "instance %s: settle it through the daemon that took it, or take a new plan here",
                 token, inst, f->instance[0] ? f->instance : "(none yet: no fence was ever taken here)");
        return NULL;
    }
    for (int i = 0; i < f->nv; i++) {
        if (f->v[i].id != id) continue;
        if (f->v[i].seq != seq) break;
        return &f->v[i];
    }
    *rc = -ENOENT;
    snprintf(err, errlen, "fence %s is not known to this daemon (dropped, or older than the %d newest)", token,
             FENCE_KEEP);
    return NULL;
}

/* ---------------------------------------------------------------- API */

int fence_open(const char *dir, journal *j, fence_reg **out, char *err, size_t errlen)
{
    fence_reg *f = calloc(1, sizeof *f);
    if (!f) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    pthread_mutex_init(&f->mu, NULL);
    f->j = j;
    f->fd = -1;
    dbuf_init(&f->line, 1u << 20);
    snprintf(f->dir, sizeof f->dir, "%s", dir);
    char path[1200];
    snprintf(path, sizeof path, "%s/fence-touched.log", dir);
    struct stat st;
    if (load(f, f->bad, sizeof f->bad) != 0) {
        /* the proxy still starts (its writes do not depend on this file); fences are refused, saying why */
        LOGE("msg=\"the fence file cannot be read: DistCp fences are refused until it is fixed or removed\" "
             "cause=\"%s\"", f->bad);
        for (int i = 0; i < f->nv; i++) free(f->v[i].root);
        f->nv = 0;
    }
    f->fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (f->fd < 0 || fstat(f->fd, &st) != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        goto fail;
    }
    f->log_size = (uint64_t)st.st_size;
    bool changed = false;
    for (int i = 0; i < f->nv; i++) {
        fence *x = &f->v[i];
        if (x->state == FENCE_OPEN) f->nopen++;
        uint64_t need = x->state == FENCE_SETTLING ? x->end : x->start;
        if (x->state != FENCE_SETTLED && !x->broken[0] && need > f->log_size) {
            snprintf(x->broken, sizeof x->broken, "the touched-path log is shorter than this fence's part of it "
                     "(%" PRIu64 " < %" PRIu64 " bytes): it was truncated or replaced", f->log_size, need);
            changed = true;
        }
    }
    if (changed && save(f) != 0) LOGW("msg=\"cannot save the fence file\" dir=\"%s\"", dir);
    if (f->nopen) LOGI("msg=\"fences open: logging the paths written under them\" open=%d", f->nopen);
    jnl_set_append_hook(j, append_hook, f, f->fd);
    *out = f;
    return 0;
fail:
    fence_close(f);
    return -1;
}

void fence_close(fence_reg *f)
{
    if (!f) return;
    if (f->j) jnl_set_append_hook(f->j, NULL, NULL, -1);
    if (f->fd >= 0) close(f->fd);
    for (int i = 0; i < f->nv; i++) free(f->v[i].root);
    dset_clear(&f->seen);
    dbuf_free(&f->line);
    pthread_mutex_destroy(&f->mu);
    free(f);
}

static int64_t count_state(fence_reg *f, fence_state st)
{
    pthread_mutex_lock(&f->mu);
    int64_t n = 0;
    for (int i = 0; i < f->nv; i++) n += f->v[i].state == st;
    pthread_mutex_unlock(&f->mu);
    return n;
}

static int64_t open_fn(void *ud) { return count_state(ud, FENCE_OPEN); }
static int64_t settling_fn(void *ud) { return count_state(ud, FENCE_SETTLING); }

static int64_t log_bytes_fn(void *ud)
{
    fence_reg *f = ud;
    pthread_mutex_lock(&f->mu);
    int64_t n = (int64_t)f->log_size;
    pthread_mutex_unlock(&f->mu);
    return n;
}

int fence_register_metrics(fence_reg *f, metrics *m)
{
    static const char *help = "DistCp fences: open ones record the paths written under their tree, settling ones "
                              "are being settled.";
    if (metrics_gauge_fn(m, "dualpipe_fences", help, "state=\"open\"", open_fn, f) != 0 ||
        metrics_gauge_fn(m, "dualpipe_fences", help, "state=\"settling\"", settling_fn, f) != 0 ||
        metrics_gauge_fn(m, "dualpipe_fence_log_bytes", "Bytes of the fences' touched-path log (journal.dir).", NULL,
                         log_bytes_fn, f) != 0)
        return -1;
    return 0;
}

int fence_create(fence_reg *f, const char *root, fence_info *out, char *err, size_t errlen)
{
    pthread_mutex_lock(&f->mu);
    int rc = 0;
    if (f->bad[0]) {
        rc = -EIO;
        snprintf(err, errlen, "the daemon's fence file cannot be read (%.500s): fix or remove it", f->bad);
        goto out;
    }
    if (!f->instance[0]) {
        unsigned char r[FENCE_INST_HEX / 2];
        if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) {
            rc = -EIO;
            snprintf(err, errlen, "no random bytes for the instance id");
            goto out;
        }
        for (size_t i = 0; i < sizeof r; i++) snprintf(f->instance + 2 * i, 3, "%02x", r[i]);
    }
    if (f->nv == FENCE_KEEP) { /* forget the oldest settled fence */
        int k = -1;
        for (int i = 0; i < f->nv && k < 0; i++)
            if (f->v[i].state == FENCE_SETTLED) k = i;
        if (k < 0) {
            rc = -EBUSY;
            snprintf(err, errlen, "%d fences are open or settling: settle or drop one first", FENCE_KEEP);
            goto out;
        }
        free(f->v[k].root);
        memmove(&f->v[k], &f->v[k + 1], sizeof f->v[0] * (size_t)(f->nv - k - 1));
        f->nv--;
    }
    fence *x = &f->v[f->nv];
    memset(x, 0, sizeof *x);
    if (!(x->root = strdup(root))) {
        rc = -ENOMEM;
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    x->id = ++f->next_id;
    x->created_s = now_s();
    x->state = FENCE_OPEN;
    x->start = f->log_size;
    f->nv++;
    f->nopen++;
    dset_clear(&f->seen); /* the new fence's stretch of the log must name every path itself */
    uint64_t id = x->id;
    pthread_mutex_unlock(&f->mu);

    /* logging is on for it: every record after this max seq is logged by the hook; the records still
     * live now are logged here (their writes may reach Gen2 after the bulk copy read Gen1) */
    jnl_stats js;
    jnl_get_stats(f->j, &js);
    jnl_foreach(f->j, seed_fn, f);

    pthread_mutex_lock(&f->mu);
    x = NULL;
    for (int i = 0; i < f->nv; i++)
        if (f->v[i].id == id) x = &f->v[i];
    if (!x) { /* dropped meanwhile */
        rc = -ENOENT;
        snprintf(err, errlen, "the fence was dropped while it was taken");
        goto out;
    }
    x->seq = js.max_seq;
    (void)log_flush(f);
    if (fdatasync(f->fd) != 0) rc = -errno;
    if (rc == 0) rc = save(f);
    if (rc != 0) {
        snprintf(err, errlen, "cannot record the fence in %s: %s", f->dir, strerror(-rc));
        free(x->root);
        int k = (int)(x - f->v);
        memmove(&f->v[k], &f->v[k + 1], sizeof f->v[0] * (size_t)(f->nv - k - 1));
        f->nv--;
        f->nopen--;
        goto out;
    }
    info_of(f, x, out);
    LOGI("msg=\"fence taken\" fence=%s root=\"%s\" seq=%" PRIu64, out->token, x->root, x->seq);
out:
    pthread_mutex_unlock(&f->mu);
    return rc;
}

int fence_get(fence_reg *f, const char *token, fence_info *out, char *err, size_t errlen)
{
    int rc = 0;
    pthread_mutex_lock(&f->mu);
    fence *x = find(f, token, &rc, err, errlen);
    if (x) info_of(f, x, out);
    pthread_mutex_unlock(&f->mu);
    return rc;
}

int fence_settle_begin(fence_reg *f, const char *token, fence_info *out, char *err, size_t errlen)
{
    int rc = 0;
    pthread_mutex_lock(&f->mu);
    fence *x = find(f, token, &rc, err, errlen);
    if (!x) goto out;
    if (x->broken[0]) {
        rc = -EIO;
        snprintf(err, errlen, "fence %s cannot be settled: %s; copy the tree with `dualpipe backfill %s` "
                 "instead (it compares every file)", token, x->broken, x->root);
        goto out;
    }
    if (x->state == FENCE_OPEN) {
        (void)log_flush(f);
        if (fdatasync(f->fd) != 0) {
            rc = -errno;
            snprintf(err, errlen, "cannot sync the touched-path log: %s", strerror(errno));
            goto out;
        }
        x->state = FENCE_SETTLING;
        x->end = f->log_size;
        f->nopen--;
        if ((rc = save(f)) != 0) {
            x->state = FENCE_OPEN;
            x->end = 0;
            f->nopen++;
            snprintf(err, errlen, "cannot record the settle in %s: %s", f->dir, strerror(-rc));
            goto out;
        }
        LOGI("msg=\"fence settling\" fence=%s root=\"%s\" log_bytes=%" PRIu64, token, x->root, x->end - x->start);
    }
    info_of(f, x, out);
out:
    pthread_mutex_unlock(&f->mu);
    return rc;
}

int fence_read(fence_reg *f, const char *token, uint64_t after, unsigned limit, dbuf *out, char *err,
               size_t errlen)
{
    int rc = 0;
    pthread_mutex_lock(&f->mu);
    fence *x = find(f, token, &rc, err, errlen);
    uint64_t start = x ? x->start : 0, end = x ? x->end : 0;
    char *root = x ? strdup(x->root) : NULL; /* the log holds the paths of every open fence: keep this one's */
    if (x && !root) {
        rc = -ENOMEM;
        snprintf(err, errlen, "out of memory");
    }
    if (x && x->state != FENCE_SETTLING) {
        rc = -EINVAL;
        snprintf(err, errlen, "fence %s is %s: only a fence being settled has paths to read", token,
                 state_name(x->state));
    }
    pthread_mutex_unlock(&f->mu);
    if (rc) {
        free(root);
        return rc;
    }
    uint64_t at = after > start ? after : start;
    if (at > end) at = end;
    size_t want = end - at < FENCE_READ_CHUNK ? (size_t)(end - at) : FENCE_READ_CHUNK;
    char *buf = malloc(want + 1);
    json_t *paths = json_array();
    dbuf dec;
    dbuf_init(&dec, WHREQ_MAX_PATH + 1);
    if (!buf || !paths) {
        rc = -ENOMEM;
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    /* the log only grows past end while this fence reads it (truncated only once all are settled) */
    ssize_t got = want ? pread(f->fd, buf, want, (off_t)at) : 0;
    if (got < 0 || (size_t)got != want) {
        rc = -EIO;
        snprintf(err, errlen, "cannot read the touched-path log: %s", got < 0 ? strerror(errno) : "short read");
        goto done;
    }
    size_t pos = 0;
    unsigned n = 0;
    while (pos < want && n < limit) {
        char *nl = memchr(buf + pos, '\n', want - pos);
        if (!nl) break; /* the rest of the line is in the next chunk */
        size_t len = (size_t)(nl - (buf + pos));
        const char *ln = buf + pos;
        bool tree = false;
        if (fence_log_line_parse(ln, len, &dec, &tree) != 0) {
            rc = -EIO;
            snprintf(err, errlen, "the touched-path log is damaged at byte %" PRIu64, at + pos);
            goto done;
        }
        if (under(dec.data, root))
            json_array_append_new(paths, json_pack("{s:s%,s:b}", "path", dec.data, dec.len, "tree", tree));
        pos += len + 1;
        n++;
    }
    if (pos == 0 && want > 0 && n < limit) {
        rc = -EIO;
        snprintf(err, errlen, "the touched-path log has a line over %u bytes at byte %" PRIu64, FENCE_READ_CHUNK, at);
        goto done;
    }
    json_t *o = json_pack("{s:O,s:I,s:b}", "paths", paths, "next", (json_int_t)(at + pos), "end", at + pos >= end);
    char *txt = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    dbuf_reset(out);
    if (!txt || dbuf_adds(out, txt) != 0 || dbuf_adds(out, "\n") != 0) {
        rc = -ENOMEM;
        snprintf(err, errlen, "out of memory");
    }
    free(txt);
done:
    free(root);
    dbuf_free(&dec);
    json_decref(paths);
    free(buf);
    return rc;
}

int fence_settled(fence_reg *f, const char *token, uint64_t resynced, char *err, size_t errlen)
{
    int rc = 0;
    pthread_mutex_lock(&f->mu);
    fence *x = find(f, token, &rc, err, errlen);
    if (!x || x->state == FENCE_SETTLED) goto out;
    if (x->state != FENCE_SETTLING) {
        rc = -EINVAL;
        snprintf(err, errlen, "fence %s is open: its settle has not begun", token);
        goto out;
    }
    x->state = FENCE_SETTLED;
    x->settled_s = now_s();
    x->resynced = resynced;
    maybe_truncate(f);
    if ((rc = save(f)) != 0) snprintf(err, errlen, "cannot record the settle in %s: %s", f->dir, strerror(-rc));
    else LOGI("msg=\"fence settled\" fence=%s root=\"%s\" resynced=%" PRIu64, token, x->root, resynced);
out:
    pthread_mutex_unlock(&f->mu);
    return rc;
}

int fence_drop(fence_reg *f, const char *token, char *err, size_t errlen)
{
    int rc = 0;
    pthread_mutex_lock(&f->mu);
    fence *x = find(f, token, &rc, err, errlen);
    if (!x) goto out;
    if (x->state == FENCE_OPEN) f->nopen--;
    LOGI("msg=\"fence dropped\" fence=%s root=\"%s\"", token, x->root);
    free(x->root);
    int k = (int)(x - f->v);
    memmove(&f->v[k], &f->v[k + 1], sizeof f->v[0] * (size_t)(f->nv - k - 1));
    f->nv--;
    maybe_truncate(f);
    if ((rc = save(f)) != 0) snprintf(err, errlen, "cannot record the drop in %s: %s", f->dir, strerror(-rc));
out:
    pthread_mutex_unlock(&f->mu);
    return rc;
}

static json_t *info_json(const fence_info *i)
{
    return json_pack("{s:s,s:s,s:I,s:I,s:s,s:I,s:I,s:I,s:s}", "fence", i->token, "root", i->root, "seq",
                     (json_int_t)i->seq, "created", (json_int_t)i->created_s, "state", state_name(i->state),
                     "settled", (json_int_t)i->settled_s, "resynced", (json_int_t)i->resynced, "log_bytes",
                     (json_int_t)(i->state == FENCE_OPEN ? 0 : i->end - i->start), "broken", i->broken);
}

int fence_info_json(const fence_info *i, dbuf *out)
{
    json_t *o = info_json(i);
    char *txt = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    dbuf_reset(out);
    int rc = txt && dbuf_adds(out, txt) == 0 && dbuf_adds(out, "\n") == 0 ? 0 : -ENOMEM;
    free(txt);
    return rc;
}

int fence_list_json(fence_reg *f, dbuf *out)
{
    json_t *arr = json_array();
    pthread_mutex_lock(&f->mu);
    for (int i = 0; i < f->nv && arr; i++) {
        fence_info fi;
        info_of(f, &f->v[i], &fi);
        json_array_append_new(arr, info_json(&fi));
    }
    json_t *o = arr ? json_pack("{s:s,s:O,s:I}", "instance", f->instance, "fences", arr, "log_bytes",
                                (json_int_t)f->log_size)
                    : NULL;
    pthread_mutex_unlock(&f->mu);
    json_decref(arr);
    char *txt = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    dbuf_reset(out);
    int rc = txt && dbuf_adds(out, txt) == 0 && dbuf_adds(out, "\n") == 0 ? 0 : -ENOMEM;
    free(txt);
    return rc;
}
