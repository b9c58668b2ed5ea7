/*
 * idmap: the identity map (see idmap.h). A map is two sorted arrays (users, groups) of name →
 * identity pairs, looked up by binary search; it is immutable once parsed and shared by reference
 * count, so idm_watch can swap in a reloaded map while translations still hold the old one.
 */
#include "idmap.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "acl.h"

typedef struct idm_pair {
    char *name;
    char *id;
    unsigned line;            /* where it was defined (duplicate errors) */
} idm_pair;

struct idm_map {
    atomic_int refs;
    idm_pair *v[2];           /* [IDM_USER], [IDM_GROUP], sorted by name */
    size_t n[2], cap[2];
};

__attribute__((format(printf, 2, 3))) static int idm_fail(idm_err *err, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* ---- identities -------------------------------------------------------------------------------- */

bool idm_is_guid(const char *s)
{
    static const int groups[5] = {8, 4, 4, 4, 12};
    if (!s) return false;
    for (int g = 0; g < 5; g++) {
        for (int i = 0; i < groups[g]; i++, s++)
            if (!isxdigit((unsigned char)*s)) return false;
        if (g < 4 && *s++ != '-') return false;
    }
    return *s == '\0';
}

static bool blank_or_ctl(unsigned char c)
{
    return c <= 0x20 || c == 0x7f;
}

bool idm_is_upn(const char *s)
{
    if (!s) return false;
    const char *at = strchr(s, '@');
    if (!at || at == s || strchr(at + 1, '@')) return false;
    const char *dom = at + 1, *dot = strchr(dom, '.');
    if (!dot || dot == dom || dot[1] == '\0' || dom[strlen(dom) - 1] == '.') return false;
    for (const char *p = s; *p; p++)
        if (blank_or_ctl((unsigned char)*p) || *p == ',' || *p == ':') return false;
    return true;
}

bool idm_passes(const char *name)
{
    return !name || !*name || strcmp(name, "$superuser") == 0 || idm_is_guid(name);
}

/* ---- maps -------------------------------------------------------------------------------------- */

idm_map *idm_ref(idm_map *m)
{
    if (m) atomic_fetch_add(&m->refs, 1);
    return m;
}

void idm_unref(idm_map *m)
{
    if (!m || atomic_fetch_sub(&m->refs, 1) != 1) return;
    for (int k = 0; k < 2; k++) {
        for (size_t i = 0; i < m->n[k]; i++) {
            free(m->v[k][i].name);
            free(m->v[k][i].id);
        }
        free(m->v[k]);
    }
    free(m);
}

size_t idm_count(const idm_map *m, idm_kind kind)
{
    return m ? m->n[kind] : 0;
}

static int pair_cmp(const void *a, const void *b)
{
    const idm_pair *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    if (c) return c;
    return x->line < y->line ? -1 : x->line > y->line;
}

static const idm_pair *find(const idm_map *m, idm_kind kind, const char *name)
{
    size_t lo = 0, hi = m->n[kind];
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(name, m->v[kind][mid].name);
        if (c == 0) return &m->v[kind][mid];
        if (c < 0) hi = mid;
        else lo = mid + 1;
    }
    return NULL;
}

const char *idm_lookup(const idm_map *m, idm_kind kind, const char *name)
{
    if (idm_passes(name)) return name ? name : "";
    const idm_pair *p = m ? find(m, kind, name) : NULL;
    return p ? p->id : NULL;
}

const char *idm_reverse(const idm_map *m, idm_kind kind, const char *id)
{
    if (!m || !id || !*id) return NULL;
    for (size_t i = 0; i < m->n[kind]; i++)
        if (strcasecmp(m->v[kind][i].id, id) == 0) return m->v[kind][i].name;
    return NULL;
}

/* ---- parsing ----------------------------------------------------------------------------------- */

/* Split [s, e) into at most 4 blank-separated fields. Returns how many (4 = too many). */
static int split_fields(const char *s, const char *e, const char *f[4], size_t fl[4])
{
    int n = 0;
    while (s < e) {
        while (s < e && (*s == ' ' || *s == '\t' || *s == '\r')) s++;
        if (s == e) break;
        const char *b = s;
        while (s < e && *s != ' ' && *s != '\t' && *s != '\r') s++;
        if (n == 4) return 4;
        f[n] = b;
        fl[n] = (size_t)(s - b);
        n++;
    }
    return n;
}

/* A NUL-terminated copy of n bytes of s. The file's buffer is not NUL-terminated: strndup would
 * be free to look past its end (and ASan's strict string checks say so). NULL on ENOMEM. */
static char *dup_n(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

static int add_pair(idm_map *m, idm_kind k, const char *name, size_t nl, const char *id, size_t il, unsigned line)
{
    if (m->n[k] == m->cap[k]) {
        size_t cap = m->cap[k] ? m->cap[k] * 2 : 64;
        idm_pair *nv = realloc(m->v[k], cap * sizeof *nv);
        if (!nv) return -1;
        m->v[k] = nv;
        m->cap[k] = cap;
    }
    idm_pair *p = &m->v[k][m->n[k]];
    p->name = dup_n(name, nl);
    p->id = dup_n(id, il);
    p->line = line;
    if (!p->name || !p->id) {
        free(p->name);
        free(p->id);
        return -1;
    }
    m->n[k]++;
    return 0;
}

static bool name_ok(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (blank_or_ctl(c) || c == ',' || c == ':') return false;
    }
    return len > 0 && len < IDM_MAX_NAME;
}

/* One non-comment line [s, e): "user|group NAME ID". */
static int parse_line(idm_map *m, const char *s, const char *e, const char *fname, unsigned line, idm_err *err)
{
    const char *f[4];
    size_t fl[4];
    int n = split_fields(s, e, f, fl);
    if (n == 0) return 0;
    if (n != 3)
        return idm_fail(err, "%s:%u: expected \"user NAME ID\" or \"group NAME ID\" (3 fields, got %s%d)", fname,
                        line, n == 4 ? "more than " : "", n == 4 ? 3 : n);
    idm_kind k;
    if (fl[0] == 4 && memcmp(f[0], "user", 4) == 0) k = IDM_USER;
    else if (fl[0] == 5 && memcmp(f[0], "group", 5) == 0) k = IDM_GROUP;
    else return idm_fail(err, "%s:%u: unknown kind \"%.*s\" (user or group)", fname, line, (int)(fl[0] > 40 ? 40 : fl[0]), f[0]);
    if (!name_ok(f[1], fl[1]))
        return idm_fail(err, "%s:%u: bad name: at most %d bytes, no ',' ':' or control characters", fname, line,
                        IDM_MAX_NAME - 1);
    char id[IDM_MAX_NAME];
    if (fl[2] >= sizeof id) return idm_fail(err, "%s:%u: identity longer than %d bytes", fname, line, IDM_MAX_NAME - 1);
    memcpy(id, f[2], fl[2]);
    id[fl[2]] = '\0';
    if (k == IDM_GROUP && !idm_is_guid(id))
        return idm_fail(err, "%s:%u: group %.*s: \"%.60s\" is not an object id (a GUID like "
                             "3f2504e0-4f89-11d3-9a0c-0305e82c3301)", fname, line, (int)(fl[1] > 60 ? 60 : fl[1]), f[1], id);
    if (k == IDM_USER && !idm_is_guid(id) && !idm_is_upn(id))
        return idm_fail(err, "%s:%u: user %.*s: \"%.60s\" is neither an object id (GUID) nor a UPN (name@domain)",
                        fname, line, (int)(fl[1] > 60 ? 60 : fl[1]), f[1], id);
    if (add_pair(m, k, f[1], fl[1], f[2], fl[2], line) != 0) return idm_fail(err, "%s: out of memory", fname);
    return 0;
}

int idm_parse(const char *text, size_t len, const char *fname, idm_map **out, idm_err *err)
{
    idm_map *m = calloc(1, sizeof *m);
    if (!m) return idm_fail(err, "%s: out of memory", fname);
    atomic_init(&m->refs, 1);
    const char *p = text, *end = text + len;
    unsigned line = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *e = nl ? nl : end;
        line++;
        if (memchr(p, '\0', (size_t)(e - p))) {
            idm_fail(err, "%s:%u: NUL byte in the file", fname, line);
            goto fail;
        }
        const char *q = p;
        while (q < e && (*q == ' ' || *q == '\t' || *q == '\r')) q++;
        if (q < e && *q != '#' && parse_line(m, q, e, fname, line, err) != 0) goto fail;
        p = nl ? nl + 1 : end;
    }
    for (int k = 0; k < 2; k++) {
        if (m->n[k]) qsort(m->v[k], m->n[k], sizeof m->v[k][0], pair_cmp);
        for (size_t i = 1; i < m->n[k]; i++) {
            if (strcmp(m->v[k][i - 1].name, m->v[k][i].name) == 0) {
                idm_fail(err, "%s:%u: %s %.60s is already mapped at line %u", fname, m->v[k][i].line,
                         k == IDM_USER ? "user" : "group", m->v[k][i].name, m->v[k][i - 1].line);
                goto fail;
            }
        }
    }
    *out = m;
    return 0;
fail:
    idm_unref(m);
    return -1;
}

int idm_load(const char *path, idm_map **out, idm_err *err)
{
    int rc = -1;
    char *buf = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return idm_fail(err, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        idm_fail(err, "%s: not a regular file", path);
        goto out;
    }
    if ((uint64_t)st.st_size > IDM_MAX_FILE) {
        idm_fail(err, "%s: larger than %u bytes", path, IDM_MAX_FILE);
        goto out;
    }
    size_t cap = (size_t)st.st_size + 1, len = 0;
    buf = malloc(cap);
    if (!buf) {
        idm_fail(err, "%s: out of memory", path);
        goto out;
    }
    for (;;) {
        ssize_t r = read(fd, buf + len, cap - len);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            idm_fail(err, "%s: %s", path, strerror(errno));
            goto out;
        }
        if (r == 0) break;
        len += (size_t)r;
        if (len == cap) { /* grew while we read: take what fits, the next poll sees the new size */
            idm_fail(err, "%s: changed while being read", path);
            goto out;
        }
    }
    rc = idm_parse(buf, len, path, out, err);
out:
    free(buf);
    close(fd);
    return rc;
}

/* ---- translation ------------------------------------------------------------------------------- */

static void note_miss(idm_result *res, idm_kind kind, const char *name)
{
    int shown = res->unmapped < IDM_MISS_MAX ? res->unmapped : IDM_MISS_MAX;
    for (int i = 0; i < shown; i++)
        if (res->kind[i] == kind && strcmp(res->name[i], name) == 0) return;
    if (res->unmapped < IDM_MISS_MAX) {
        res->kind[res->unmapped] = kind;
        snprintf(res->name[res->unmapped], IDM_MAX_NAME, "%s", name);
    }
    res->unmapped++;
}

void idm_result_names(const idm_result *res, char *buf, size_t cap)
{
    size_t off = 0;
    int shown = res->unmapped < IDM_MISS_MAX ? res->unmapped : IDM_MISS_MAX;
    if (cap) buf[0] = '\0';
    for (int i = 0; i < shown && off < cap; i++) {
        int n = snprintf(buf + off, cap - off, "%s%s %s", i ? ", " : "", res->kind[i] == IDM_USER ? "user" : "group",
                         res->name[i]);
        if (n < 0) break;
        off += (size_t)n;
    }
    if (res->unmapped > shown && off < cap) snprintf(buf + off, cap - off, " and %d more", res->unmapped - shown);
}

const char *idm_name(const idm_map *m, idm_policy pol, idm_kind kind, const char *name, idm_result *res)
{
    if (!name || !*name) return NULL;
    const char *id = idm_lookup(m, kind, name);
    if (id) return id;
    note_miss(res, kind, name);
    if (pol == IDM_KEEP) {
        res->kept++;
        return name;
    }
    res->dropped++;
    return NULL;
}

int idm_acl(const idm_map *m, idm_policy pol, const char *acl, bool with_perm, dbuf *out, bool *empty,
            idm_result *res, idm_err *err)
{
    int rc = -1;
    acl_list *in = calloc(1, sizeof *in), *o = calloc(1, sizeof *o);
    acl_err ae;
    *empty = false;
    if (!in || !o) {
        idm_fail(err, "out of memory");
        goto out;
    }
    if (acl_parse(acl, with_perm, in, &ae) != 0) {
        idm_fail(err, "%s", ae.message);
        goto out;
    }
    for (int i = 0; i < in->n; i++) {
        acl_entry e = in->e[i];
        if (e.name[0]) {
            idm_kind k = e.type == ACL_GROUP ? IDM_GROUP : IDM_USER;
            const char *id = idm_name(m, pol, k, e.name, res);
            if (!id) continue;
            if (id != e.name) snprintf(e.name, sizeof e.name, "%s", id); /* keep returns e.name itself */
        }
        bool dup = false;
        for (int j = 0; j < o->n && !dup; j++)
            dup = o->e[j].is_default == e.is_default && o->e[j].type == e.type && strcmp(o->e[j].name, e.name) == 0;
        if (dup) {
            res->merged++;
            continue;
        }
        o->e[o->n++] = e;
    }
    if (o->n == 0) {
        *empty = true;
        rc = 0;
        goto out;
    }
    if (acl_format(o, out) != 0) {
        idm_fail(err, "ACL too long");
        goto out;
    }
    rc = 0;
out:
    free(in);
    free(o);
    return rc;
}

/* ---- watching ---------------------------------------------------------------------------------- */

typedef struct idm_sig {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
    bool ok;                  /* stat worked */
} idm_sig;

struct idm_watch {
    pthread_mutex_t mu;
    char *path;
    idm_map *map;
    idm_sig loaded;           /* the file as the map in use was read ... */
    bool loaded_valid;        /* ... unless it changed while being read (then look again) */
    idm_sig broken;           /* the last version reported broken ... */
    bool have_broken;         /* ... if any */
    int64_t last_ms;
    bool looked;
    uint64_t gen;
};

static idm_sig sig_of(const char *path)
{
    idm_sig s;
    memset(&s, 0, sizeof s);
    struct stat st;
    if (stat(path, &st) != 0) return s;
    s.dev = st.st_dev;
    s.ino = st.st_ino;
    s.size = st.st_size;
    s.mtime = st.st_mtim;
    s.ok = true;
    return s;
}

static bool sig_same(const idm_sig *a, const idm_sig *b)
{
    return a->ok == b->ok && a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec;
}

int idm_watch_new(const char *path, idm_watch **out, idm_err *err)
{
    idm_watch *w = calloc(1, sizeof *w);
    if (!w || !(w->path = strdup(path))) {
        free(w);
        return idm_fail(err, "out of memory");
    }
    w->loaded = sig_of(path);
    w->loaded_valid = true;
    if (idm_load(path, &w->map, err) != 0) {
        free(w->path);
        free(w);
        return -1;
    }
    pthread_mutex_init(&w->mu, NULL);
    *out = w;
    return 0;
}

void idm_watch_free(idm_watch *w)
{
    if (!w) return;
    idm_unref(w->map);
    pthread_mutex_destroy(&w->mu);
    free(w->path);
    free(w);
}

idm_map *idm_watch_get(idm_watch *w)
{
    pthread_mutex_lock(&w->mu);
    idm_map *m = idm_ref(w->map);
    pthread_mutex_unlock(&w->mu);
    return m;
}

uint64_t idm_watch_generation(idm_watch *w)
{
    pthread_mutex_lock(&w->mu);
    uint64_t g = w->gen;
    pthread_mutex_unlock(&w->mu);
    return g;
}

idm_poll idm_watch_poll(idm_watch *w, int64_t now_ms, bool force, idm_err *err)
{
    idm_poll rc = IDM_POLL_SAME;
    pthread_mutex_lock(&w->mu);
    if (!force && w->looked && now_ms - w->last_ms < IDM_POLL_MS) goto out;
    w->looked = true;
    w->last_ms = now_ms;
    idm_sig s = sig_of(w->path);
    if ((w->loaded_valid && sig_same(&s, &w->loaded)) || (w->have_broken && sig_same(&s, &w->broken))) goto out;
    /* Load without the lock: a slow disk must not hold up idm_watch_get. Polls are serialised by
     * the caller (one watcher), and a racing poll only loads the same file twice. */
    pthread_mutex_unlock(&w->mu);
    idm_map *m = NULL;
    int lr = idm_load(w->path, &m, err);
    idm_sig after = sig_of(w->path);
    pthread_mutex_lock(&w->mu);
    if (lr != 0) {
        w->broken = s;
        w->have_broken = true;
        rc = IDM_POLL_BROKEN;
        goto out;
    }
    idm_unref(w->map);
    w->map = m;
    /* A file rewritten while we read it is looked at again on the next poll. */
    w->loaded = s;
    w->loaded_valid = sig_same(&s, &after);
    w->have_broken = false;
    w->gen++;
    rc = IDM_POLL_RELOADED;
out:
    pthread_mutex_unlock(&w->mu);
    return rc;
}
