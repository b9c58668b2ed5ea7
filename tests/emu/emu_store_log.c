/*
 * emu_store_log: the durable half of emu_store, the append-only JSON-lines metadata log (DIR/meta.log).
 * A node is written as one "put" record (strings that are not valid UTF-8 go as hex under key + "_hex"),
 * a deletion as a "del" record, and a snapshot begins with a "seq" record so ids and ETags never go
 * backwards. Each record is appended with one write(2); on failure the log is cut back to its old end.
 * Compaction writes a snapshot to meta.log.tmp, fsyncs it and renames it over meta.log. Replay at open
 * keeps the final state of every id in a hash map, truncates a torn final line, builds the tree at the
 * end and reconciles the object files with the live files. The tree itself lives in emu_store.c.
 */
#include "emu_store.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "emu_store_int.h"
#include "log.h"

#define COMPACT_MIN_RECORDS 10000
#define COMPACT_FACTOR 4
#define MAX_LOG_LINE (16u << 20) /* a put is at most ~100 KiB; anything longer is corrupt */

/* ---------------------------------------------------------------------------------------------- */
/* small helpers */

typedef struct sbuf {
    char *p;
    size_t len, cap;
} sbuf;

static int sbuf_add(sbuf *b, const char *p, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1) cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q) return -ENOMEM;
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        if (w == 0) return -EIO;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}


/* True when n holds only values the log can represent and read back (checked on both sides, so a
 * caller's out-of-range field is refused at save time instead of making the log unreadable). */
static bool node_valid(const emu_node *n)
{
    if (n->type != EMU_DIR && n->type != EMU_FILE) return false;
    if (n->mode > 07777 || n->nacl < 0 || n->nacl > ACL_MAX_ENTRIES || (n->nacl > 0 && !n->acl)) return false;
    for (int i = 0; i < n->nacl; i++) {
        const acl_entry *e = &n->acl[i];
        if ((unsigned)e->type > ACL_OTHER || e->perm < -1 || e->perm > 7 || !memchr(e->name, 0, sizeof e->name))
            return false;
    }
    if (!n->owner || !n->group || strnlen(n->owner, EMU_MAX_PRINCIPAL) >= EMU_MAX_PRINCIPAL ||
        strnlen(n->group, EMU_MAX_PRINCIPAL) >= EMU_MAX_PRINCIPAL || !memchr(n->lease_id, 0, sizeof n->lease_id))
        return false;
    if (n->lease_duration_s < -1) return false;
    if (n->length < 0 || n->visible_length < 0 || n->nstaged < 0 || n->nstaged > n->cap_staged ||
        n->cap_staged > EMU_MAX_STAGED || (n->cap_staged > 0 && !n->staged))
        return false;
    for (int i = 0; i < n->nstaged; i++)
        if (n->staged[i].off < 0 || n->staged[i].len < 0) return false;
    return true;
}

/* ---------------------------------------------------------------------------------------------- */
/* JSON records */

static const char *const acl_type_names[] = {"user", "group", "mask", "other"};

/* Strings are stored as JSON text when they are valid UTF-8, else as hex under key + "_hex". */
static int jset_str(json_t *o, const char *key, const char *v)
{
    json_t *j = json_string(v);
    if (j) return json_object_set_new(o, key, j);
    size_t len = strlen(v), klen = strlen(key);
    char *hex = malloc(len * 2 + 1), *hkey = malloc(klen + 5);
    int rc = -1;
    if (!hex || !hkey) goto out;
    for (size_t i = 0; i < len; i++) snprintf(hex + 2 * i, 3, "%02x", (unsigned char)v[i]);
    hex[len * 2] = '\0';
    memcpy(hkey, key, klen);
    memcpy(hkey + klen, "_hex", 5);
    rc = json_object_set_new(o, hkey, json_string(hex));
out:
    free(hex);
    free(hkey);
    return rc;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Read a string written by jset_str. Returns 1 and a malloc'd *out, 0 when absent, -1 when bad. */
static int jget_str(json_t *o, const char *key, char **out)
{
    json_t *j = json_object_get(o, key);
    if (j) {
        if (!json_is_string(j)) return -1;
        size_t len = json_string_length(j);
        const char *v = json_string_value(j);
        if (memchr(v, '\0', len)) return -1;
        *out = strdup(v);
        return *out ? 1 : -1;
    }
    char hkey[64];
    snprintf(hkey, sizeof hkey, "%s_hex", key);
    j = json_object_get(o, hkey);
    if (!j) return 0;
    if (!json_is_string(j)) return -1;
    size_t hl = json_string_length(j);
    const char *h = json_string_value(j);
    if (hl % 2) return -1;
    char *s = malloc(hl / 2 + 1);
    if (!s) return -1;
    for (size_t i = 0; i < hl / 2; i++) {
        int a = hexval((unsigned char)h[2 * i]), b = hexval((unsigned char)h[2 * i + 1]);
        if (a < 0 || b < 0 || (a == 0 && b == 0)) {
            free(s);
            return -1;
        }
        s[i] = (char)(a * 16 + b);
    }
    s[hl / 2] = '\0';
    *out = s;
    return 1;
}

/* Copy a string field into a fixed buffer (cap includes the NUL). */
static int jget_fixed(json_t *o, const char *key, char *buf, size_t cap)
{
    char *v = NULL;
    int r = jget_str(o, key, &v);
    if (r < 0) return -1;
    if (r == 0) {
        buf[0] = '\0';
        return 0;
    }
    size_t len = strlen(v);
    if (len >= cap) {
        free(v);
        return -1;
    }
    memcpy(buf, v, len + 1);
    free(v);
    return 0;
}

static int jget_i64(json_t *o, const char *key, int64_t *v)
{
    json_t *j = json_object_get(o, key);
    if (!j) {
        *v = 0;
        return 0;
    }
    if (!json_is_integer(j)) return -1;
    *v = (int64_t)json_integer_value(j);
    return 0;
}

static int jget_bool(json_t *o, const char *key, bool *v)
{
    json_t *j = json_object_get(o, key);
    if (!j) {
        *v = false;
        return 0;
    }
    if (!json_is_boolean(j)) return -1;
    *v = json_is_true(j);
    return 0;
}

static json_t *acl_to_json(const acl_entry *ents, int n)
{
    json_t *a = json_array();
    if (!a) return NULL;
    for (int i = 0; i < n; i++) {
        const acl_entry *e = &ents[i];
        json_t *o = json_object();
        int bad = !o || json_array_append_new(a, o);
        if (!bad && e->is_default) bad |= json_object_set_new(o, "default", json_true());
        if (!bad) bad |= json_object_set_new(o, "type", json_string(acl_type_names[e->type]));
        if (!bad && e->name[0]) bad |= jset_str(o, "name", e->name);
        if (!bad) bad |= json_object_set_new(o, "perm", json_integer(e->perm));
        if (bad) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

/* Read the "acl" array into n's exactly-sized entry array (absent: none). */
static int acl_from_json(json_t *a, emu_node *n)
{
    if (!a) return 0;
    if (!json_is_array(a) || json_array_size(a) > ACL_MAX_ENTRIES) return -1;
    if (json_array_size(a) == 0) return 0;
    n->acl = calloc(json_array_size(a), sizeof *n->acl);
    if (!n->acl) return -1;
    size_t i;
    json_t *o;
    json_array_foreach(a, i, o) {
        acl_entry *e = &n->acl[n->nacl];
        memset(e, 0, sizeof *e);
        if (!json_is_object(o) || jget_bool(o, "default", &e->is_default)) return -1;
        json_t *t = json_object_get(o, "type");
        const char *ts = json_string_value(t);
        int type = -1;
        for (int k = 0; ts && k < 4; k++)
            if (strcmp(ts, acl_type_names[k]) == 0) type = k;
        if (type < 0) return -1;
        e->type = (acl_type)type;
        if (jget_fixed(o, "name", e->name, sizeof e->name)) return -1;
        int64_t perm;
        if (!json_object_get(o, "perm") || jget_i64(o, "perm", &perm) || perm < -1 || perm > 7) return -1;
        e->perm = (int)perm;
        n->nacl++;
    }
    return 0;
}

/* The "put" body for n, as if its parent were parent_id and its name name. NULL on ENOMEM. */
static json_t *node_to_json(const emu_node *n, uint64_t parent_id, const char *name)
{
    json_t *o = json_object();
    if (!o) return NULL;
    int bad = 0;
    bad |= json_object_set_new(o, "id", json_integer((json_int_t)n->id));
    bad |= json_object_set_new(o, "parent", json_integer((json_int_t)parent_id));
    bad |= jset_str(o, "name", name);
    bad |= json_object_set_new(o, "type", json_string(n->type == EMU_DIR ? "dir" : "file"));
    bad |= json_object_set_new(o, "mode", json_integer(n->mode));
    if (n->nacl > 0) {
        json_t *a = acl_to_json(n->acl, n->nacl);
        bad |= !a || json_object_set_new(o, "acl", a);
    }
    bad |= jset_str(o, "owner", n->owner);
    bad |= jset_str(o, "group", n->group);
    bad |= json_object_set_new(o, "ctime", json_integer(n->ctime_ms));
    bad |= json_object_set_new(o, "mtime", json_integer(n->mtime_ms));
    bad |= json_object_set_new(o, "atime", json_integer(n->atime_ms));
    if (n->expiry_ms) bad |= json_object_set_new(o, "expiry", json_integer(n->expiry_ms));
    bad |= json_object_set_new(o, "etag", json_integer((json_int_t)n->etag));
    if (n->type == EMU_FILE) {
        bad |= json_object_set_new(o, "length", json_integer(n->length));
        bad |= json_object_set_new(o, "visible_length", json_integer(n->visible_length));
        if (n->open_for_write) bad |= json_object_set_new(o, "open_for_write", json_true());
        if (n->concurrent) bad |= json_object_set_new(o, "concurrent", json_true());
    }
    if (n->nstaged > 0) {
        json_t *a = json_array();
        bad |= !a || json_object_set_new(o, "staged", a);
        for (int i = 0; !bad && i < n->nstaged; i++)
            bad |= json_array_append_new(a, json_pack("[II]", (json_int_t)n->staged[i].off,
                                                      (json_int_t)n->staged[i].len));
    }
    if (n->lease_id[0]) bad |= jset_str(o, "lease_id", n->lease_id);
    if (n->lease_expiry_ms) bad |= json_object_set_new(o, "lease_expiry", json_integer(n->lease_expiry_ms));
    if (n->lease_break_ms) bad |= json_object_set_new(o, "lease_break", json_integer(n->lease_break_ms));
    if (n->lease_duration_s) bad |= json_object_set_new(o, "lease_duration", json_integer(n->lease_duration_s));
    if (n->properties) bad |= jset_str(o, "properties", n->properties);
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* A principal field: absent is "", longer than a principal field holds is invalid. */
static int jget_principal(emu_store *s, json_t *o, const char *key, const char **out)
{
    char buf[EMU_MAX_PRINCIPAL];
    if (jget_fixed(o, key, buf, sizeof buf)) return -1;
    *out = emu_store__intern(s, buf);
    return *out ? 0 : -1;
}

/* Parse a "put" body into a new free-standing node. Returns NULL when invalid or on ENOMEM. */
static enode *node_from_json(emu_store *s, json_t *o)
{
    enode *e = calloc(1, sizeof *e);
    if (!e || !json_is_object(o)) goto bad;
    emu_node *n = &e->n;
    int64_t id, parent, mode, etag;
    if (jget_i64(o, "id", &id) || id <= 0) goto bad;
    if (jget_i64(o, "parent", &parent) || parent < 0) goto bad;
    n->id = (uint64_t)id;
    e->parent_id = (uint64_t)parent;
    const char *type = json_string_value(json_object_get(o, "type"));
    if (!type) goto bad;
    if (strcmp(type, "dir") == 0)
        n->type = EMU_DIR;
    else if (strcmp(type, "file") == 0)
        n->type = EMU_FILE;
    else
        goto bad;
    if (jget_str(o, "name", &n->name) != 1) goto bad;
    e->namelen = strlen(n->name);
    if (id == ROOT_ID ? (e->namelen != 0 || parent != 0 || n->type != EMU_DIR)
                      : (emu_store__name_check(n->name) != 0 || parent == 0))
        goto bad;
    if (jget_i64(o, "mode", &mode) || mode < 0 || mode > 07777) goto bad;
    n->mode = (uint16_t)mode;
    if (acl_from_json(json_object_get(o, "acl"), n)) goto bad;
    if (jget_principal(s, o, "owner", &n->owner) || jget_principal(s, o, "group", &n->group)) goto bad;
    if (jget_i64(o, "ctime", &n->ctime_ms) || jget_i64(o, "mtime", &n->mtime_ms) ||
        jget_i64(o, "atime", &n->atime_ms) || jget_i64(o, "expiry", &n->expiry_ms))
        goto bad;
    if (jget_i64(o, "etag", &etag) || etag < 0) goto bad;
    n->etag = (uint64_t)etag;
    if (jget_i64(o, "length", &n->length) || jget_i64(o, "visible_length", &n->visible_length)) goto bad;
    if (jget_bool(o, "open_for_write", &n->open_for_write) || jget_bool(o, "concurrent", &n->concurrent))
        goto bad;
    json_t *st = json_object_get(o, "staged");
    if (st) {
        if (!json_is_array(st) || json_array_size(st) > EMU_MAX_STAGED) goto bad;
        if (emu_node_staged_reserve(n, (int)json_array_size(st))) goto bad;
        size_t i;
        json_t *r;
        json_array_foreach(st, i, r) {
            json_int_t off, len;
            if (json_unpack(r, "[II]", &off, &len)) goto bad;
            n->staged[i].off = off;
            n->staged[i].len = len;
        }
        n->nstaged = (int)json_array_size(st);
    }
    if (jget_fixed(o, "lease_id", n->lease_id, sizeof n->lease_id)) goto bad;
    if (jget_i64(o, "lease_expiry", &n->lease_expiry_ms) || jget_i64(o, "lease_break", &n->lease_break_ms))
        goto bad;
    int64_t lease_duration; /* absent in logs written before the field existed: 0 */
    if (jget_i64(o, "lease_duration", &lease_duration) || lease_duration < -1 || lease_duration > INT32_MAX) goto bad;
    n->lease_duration_s = (int32_t)lease_duration;
    if (jget_str(o, "properties", &n->properties) < 0) goto bad;
    if (!node_valid(n)) goto bad;
    e->counted_len = n->type == EMU_FILE ? n->length : 0;
    return e;
bad:
    if (e) emu_store__node_free(&e->n);
    return NULL;
}

/* Serialise a record {key: body} as one line with its newline. Consumes body. */
static char *record_line(const char *key, json_t *body, size_t *len)
{
    if (!body) return NULL;
    json_t *rec = json_object();
    char *line = NULL;
    if (!rec || json_object_set_new(rec, key, body)) {
        if (!rec) json_decref(body);
        goto out;
    }
    line = json_dumps(rec, JSON_COMPACT);
    if (!line) goto out;
    size_t l = strlen(line);
    char *p = realloc(line, l + 2);
    if (!p) {
        free(line);
        line = NULL;
        goto out;
    }
    line = p;
    line[l] = '\n';
    line[l + 1] = '\0';
    *len = l + 1;
out:
    json_decref(rec);
    return line;
}

static char *put_line(const emu_node *n, uint64_t parent_id, const char *name, size_t *len)
{
    return record_line("put", node_to_json(n, parent_id, name), len);
}

static char *seq_line(const emu_store *s, size_t *len)
{
    return record_line("seq", json_pack("{sIsI}", "next_id", (json_int_t)s->next_id, "etag", (json_int_t)s->etag),
                       len);
}

/* ---------------------------------------------------------------------------------------------- */
/* the log */

/* Append one record line with a single write; on failure the log is cut back to its old end. */
int emu_store__log_append(emu_store *s, const char *line, size_t len)
{
    int rc = write_all(s->logfd, line, len);
    if (rc == 0 && s->sync && fdatasync(s->logfd) != 0) rc = -errno;
    if (rc != 0) {
        LOGE("emu_store: appending to %s failed: %s", LOG_NAME, strerror(-rc));
        if (ftruncate(s->logfd, s->log_size) != 0) {
            /* A partial record would be followed by good ones and make the log unreadable: stop
             * writing altogether (every later mutation fails with -EIO). */
            LOGE("emu_store: cannot cut %s back after a failed write (%s); the store is now read-only",
                 LOG_NAME, strerror(errno));
            close(s->logfd);
            s->logfd = -1;
        }
        return -EIO;
    }
    s->log_size += (off_t)len;
    s->records++;
    return 0;
}

int emu_store__log_put(emu_store *s, const emu_node *n, uint64_t parent_id, const char *name)
{
    if (!node_valid(n)) return -EINVAL;
    size_t len = 0;
    char *line = put_line(n, parent_id, name, &len);
    if (!line) return -EIO;
    int rc = emu_store__log_append(s, line, len);
    free(line);
    return rc;
}

/* Write a snapshot of the tree to meta.log.tmp and rename it over meta.log. */
static int compact(emu_store *s)
{
    int rc = -EIO, fd = -1;
    sbuf b = {0};
    pvec stack = {0};
    size_t *idx = NULL, idxcap = 0;
    uint64_t count = 0;
    size_t len = 0;
    char *line = NULL;

    fd = openat(s->dirfd, LOG_TMP_NAME, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) goto out;
    line = seq_line(s, &len);
    if (!line || sbuf_add(&b, line, len)) goto out;
    free(line);
    line = NULL;
    count++;
    /* Pre-order walk, so every parent precedes its children. */
    if (emu_store__pvec_push(&stack, s->root) || !node_valid(s->root)) goto out;
    line = put_line(s->root, 0, "", &len);
    if (!line || sbuf_add(&b, line, len)) goto out;
    free(line);
    line = NULL;
    count++;
    idxcap = 64;
    idx = calloc(idxcap, sizeof *idx);
    if (!idx) goto out;
    while (stack.n > 0) {
        emu_node *d = stack.p[stack.n - 1];
        size_t *i = &idx[stack.n - 1];
        if (*i >= d->nchildren) {
            stack.n--;
            continue;
        }
        emu_node *c = d->children[(*i)++];
        if (!node_valid(c)) goto out; /* changed in memory to something unsaveable: keep the old log */
        line = put_line(c, d->id, c->name, &len);
        if (!line || sbuf_add(&b, line, len)) goto out;
        free(line);
        line = NULL;
        count++;
        if (b.len >= (1u << 20)) {
            if (write_all(fd, b.p, b.len)) goto out;
            b.len = 0;
        }
        if (c->type == EMU_DIR && c->nchildren > 0) {
            if (emu_store__pvec_push(&stack, c)) goto out;
            if (stack.n > idxcap) {
                size_t *q = realloc(idx, stack.cap * sizeof *q);
                if (!q) goto out;
                idx = q;
                idxcap = stack.cap;
            }
            idx[stack.n - 1] = 0;
        }
    }
    if (b.len && write_all(fd, b.p, b.len)) goto out;
    if (fsync(fd) != 0) goto out;
    struct stat st;
    if (fstat(fd, &st) != 0) goto out;
    if (renameat(s->dirfd, LOG_TMP_NAME, s->dirfd, LOG_NAME) != 0) goto out;
    close(fd);
    fd = -1;
    /* From here on meta.log is the snapshot and the old fd points at an unlinked file. */
    if (fsync(s->dirfd) != 0) LOGW("emu_store: fsync of the data directory failed: %s", strerror(errno));
    int nfd = openat(s->dirfd, LOG_NAME, O_WRONLY | O_APPEND | O_CLOEXEC);
    if (nfd < 0) {
        /* Appending through the old fd would lose every later record: refuse writes instead. */
        LOGE("emu_store: cannot reopen %s after compaction (%s); the store is now read-only", LOG_NAME,
             strerror(errno));
        close(s->logfd);
        s->logfd = -1;
        goto out;
    }
    close(s->logfd);
    s->logfd = nfd;
    s->log_size = st.st_size;
    s->records = count;
    rc = 0;
out:
    if (fd >= 0) {
        close(fd);
        unlinkat(s->dirfd, LOG_TMP_NAME, 0);
    }
    free(line);
    free(b.p);
    free(stack.p);
    free(idx);
    return rc;
}

void emu_store__maybe_compact(emu_store *s)
{
    uint64_t live = atomic_load(&s->nnodes);
    if (s->records <= COMPACT_MIN_RECORDS || s->records <= COMPACT_FACTOR * live) return;
    if (s->records < s->compact_after) return;
    if (compact(s) != 0) {
        LOGW("emu_store: compacting %s failed; retrying after %" PRIu64 " records", LOG_NAME, s->records * 2);
        s->compact_after = s->records * 2;
    }
}

/* ---------------------------------------------------------------------------------------------- */
/* replay */

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return x;
}

/* Rehash without tombstones into a table at most a quarter full of live entries. */
static int idmap_grow(idmap *m)
{
    size_t live = 0, ncap = 1024;
    for (size_t i = 0; i < m->cap; i++) live += m->keys[i] && m->vals[i];
    while (ncap < 4 * (live + 1)) ncap *= 2;
    uint64_t *keys = calloc(ncap, sizeof *keys);
    enode **vals = calloc(ncap, sizeof *vals);
    if (!keys || !vals) {
        free(keys);
        free(vals);
        return -ENOMEM;
    }
    size_t used = 0;
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->keys[i] || !m->vals[i]) continue; /* drop tombstones */
        size_t j = mix(m->keys[i]) & (ncap - 1);
        while (keys[j]) j = (j + 1) & (ncap - 1);
        keys[j] = m->keys[i];
        vals[j] = m->vals[i];
        used++;
    }
    free(m->keys);
    free(m->vals);
    m->keys = keys;
    m->vals = vals;
    m->cap = ncap;
    m->used = used;
    return 0;
}

static size_t idmap_slot(const idmap *m, uint64_t id)
{
    size_t j = mix(id) & (m->cap - 1);
    while (m->keys[j] && m->keys[j] != id) j = (j + 1) & (m->cap - 1);
    return j;
}

enode *emu_store__idmap_get(const idmap *m, uint64_t id)
{
    if (!m->cap || id == 0) return NULL;
    return m->vals[idmap_slot(m, id)];
}

/* Insert or replace; the replaced node is freed. */
static int idmap_put(idmap *m, enode *e)
{
    if ((m->used + 1) * 2 > m->cap && idmap_grow(m)) return -ENOMEM;
    size_t j = idmap_slot(m, e->n.id);
    if (!m->keys[j]) {
        m->keys[j] = e->n.id;
        m->used++;
    }
    if (m->vals[j]) emu_store__node_free(&m->vals[j]->n);
    m->vals[j] = e;
    return 0;
}

static void idmap_del(idmap *m, uint64_t id)
{
    if (!m->cap) return;
    size_t j = idmap_slot(m, id);
    if (m->vals[j]) emu_store__node_free(&m->vals[j]->n);
    m->vals[j] = NULL;
}

void emu_store__idmap_free(idmap *m, bool free_nodes)
{
    for (size_t i = 0; free_nodes && i < m->cap; i++)
        if (m->vals[i]) emu_store__node_free(&m->vals[i]->n);
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}


/* Apply one record. Returns 0, -EINVAL when the record is malformed, -ENOMEM. */
static int replay_record(emu_store *s, replay *r, json_t *rec)
{
    if (!json_is_object(rec) || json_object_size(rec) != 1) return -EINVAL;
    json_t *v;
    if ((v = json_object_get(rec, "put"))) {
        enode *e = node_from_json(s, v);
        if (!e) return -EINVAL;
        if (e->n.id > r->max_id) r->max_id = e->n.id;
        if (e->n.etag > r->max_etag) r->max_etag = e->n.etag;
        if (idmap_put(&r->map, e)) {
            emu_store__node_free(&e->n);
            return -ENOMEM;
        }
    } else if ((v = json_object_get(rec, "del"))) {
        if (!json_is_integer(v) || json_integer_value(v) <= ROOT_ID) return -EINVAL;
        idmap_del(&r->map, (uint64_t)json_integer_value(v));
    } else if ((v = json_object_get(rec, "seq"))) {
        json_int_t id, etag;
        if (json_unpack(v, "{sIsI}", "next_id", &id, "etag", &etag) || id < 1 || etag < 0) return -EINVAL;
        if ((uint64_t)id - 1 > r->max_id) r->max_id = (uint64_t)id - 1;
        if ((uint64_t)etag > r->max_etag) r->max_etag = (uint64_t)etag;
    } else {
        return -EINVAL;
    }
    r->records++;
    return 0;
}

/* Read meta.log into r; a torn or unparsable final line is cut off the file. */
int emu_store__replay_log(emu_store *s, replay *r, char *err, size_t errlen)
{
    int rc = -1;
    int fd = openat(s->dirfd, LOG_NAME, O_RDONLY | O_CLOEXEC);
    FILE *f = fd >= 0 ? fdopen(fd, "r") : NULL;
    char *line = NULL;
    size_t cap = 0;
    off_t off = 0, bad_off = -1;
    uint64_t lineno = 0, bad_lineno = 0;
    if (!f) {
        if (fd >= 0) close(fd);
        emu_store__set_err(err, errlen, "cannot read %s: %s", LOG_NAME, strerror(errno));
        return -1;
    }
    for (;;) {
        errno = 0;
        ssize_t n = getline(&line, &cap, f);
        if (n < 0) {
            if (errno) {
                emu_store__set_err(err, errlen, "reading %s: %s", LOG_NAME, strerror(errno));
                goto out;
            }
            break;
        }
        lineno++;
        if (bad_off >= 0) {
            emu_store__set_err(err, errlen, "%s is corrupt at line %" PRIu64 " (not the last line: not a torn write)",
                    LOG_NAME, bad_lineno);
            goto out;
        }
        bool has_nl = line[n - 1] == '\n';
        size_t len = (size_t)n - (has_nl ? 1 : 0);
        int ok = 0;
        if (!has_nl || (size_t)n > MAX_LOG_LINE) {
            ok = -EINVAL;
        } else if (len == 0) {
            ok = 0; /* blank line */
        } else {
            json_error_t jerr;
            json_t *rec = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
            ok = rec ? replay_record(s, r, rec) : -EINVAL;
            json_decref(rec);
        }
        if (ok == -ENOMEM) {
            emu_store__set_err(err, errlen, "out of memory replaying %s", LOG_NAME);
            goto out;
        }
        if (ok != 0) {
            bad_off = off;
            bad_lineno = lineno;
        }
        off += n;
    }
    if (bad_off >= 0)
        LOGW("emu_store: dropping a torn last record of %s (line %" PRIu64 ", %lld bytes)", LOG_NAME, bad_lineno,
             (long long)(off - bad_off));
    if (bad_off >= 0 && ftruncate(s->logfd, bad_off) != 0) {
        emu_store__set_err(err, errlen, "cannot truncate torn %s: %s", LOG_NAME, strerror(errno));
        goto out;
    }
    s->log_size = bad_off >= 0 ? bad_off : off;
    rc = 0;
out:
    free(line);
    fclose(f);
    return rc;
}

static int cmp_child(const void *a, const void *b)
{
    const emu_node *x = *(emu_node *const *)a, *y = *(emu_node *const *)b;
    return emu_store__name_cmp(x, y->name, en(y)->namelen);
}

/* Decide whether e is reachable from the root; marks e and its ancestors. */
static int resolve(idmap *m, enode *e, pvec *chain)
{
    chain->n = 0;
    enode *cur = e;
    int st;
    for (;;) {
        if (cur->state == RS_LIVE || cur->state == RS_DEAD) {
            st = cur->state;
            break;
        }
        if (cur->state == RS_VISITING) { /* a cycle: corrupt, unreachable */
            st = RS_DEAD;
            break;
        }
        cur->state = RS_VISITING;
        if (emu_store__pvec_push(chain, cur)) return -ENOMEM;
        if (cur->n.id == ROOT_ID) {
            st = (cur->parent_id == 0 && cur->n.type == EMU_DIR) ? RS_LIVE : RS_DEAD;
            break;
        }
        enode *p = emu_store__idmap_get(m, cur->parent_id);
        if (!p || p->n.type != EMU_DIR) {
            st = RS_DEAD;
            break;
        }
        cur = p;
    }
    for (size_t i = 0; i < chain->n; i++) ((enode *)chain->p[i])->state = st;
    return 0;
}

/* Build the tree from the replayed map; frees unreachable nodes. Leaves s->root NULL if none. */
int emu_store__build_tree(emu_store *s, replay *r)
{
    idmap *m = &r->map;
    pvec chain = {0};
    int rc = -ENOMEM;
    for (size_t i = 0; i < m->cap; i++)
        if (m->vals[i] && resolve(m, m->vals[i], &chain)) goto out;
    for (size_t i = 0; i < m->cap; i++) {
        enode *e = m->vals[i];
        if (!e || e->state != RS_LIVE || e->n.id == ROOT_ID) continue;
        emu_node *p = &emu_store__idmap_get(m, e->parent_id)->n;
        if (emu_store__children_reserve(p, p->nchildren + 1)) goto out;
        p->children[p->nchildren++] = &e->n;
        e->n.parent = p;
    }
    uint64_t nodes = 0, dropped = 0;
    int64_t bytes = 0;
    for (size_t i = 0; i < m->cap; i++) {
        enode *e = m->vals[i];
        if (!e) continue;
        if (e->state != RS_LIVE) {
            /* Descendants of a deleted directory (expected), or nodes cut off by corruption. */
            dropped++;
            emu_store__node_free(&e->n);
            m->vals[i] = NULL;
            continue;
        }
        nodes++;
        bytes += e->counted_len;
        if (e->n.nchildren > 1) qsort(e->n.children, e->n.nchildren, sizeof *e->n.children, cmp_child);
        if (e->n.id == ROOT_ID) s->root = &e->n;
    }
    atomic_store(&s->nnodes, nodes);
    atomic_store(&s->bytes, bytes);
    LOGD("emu_store: replayed %" PRIu64 " live nodes (%" PRIu64 " under deleted directories)", nodes, dropped);
    rc = 0;
out:
    free(chain.p);
    return rc;
}

/* Delete object files that belong to no live file; create missing ones empty. */
void emu_store__objects_reconcile(emu_store *s, idmap *m)
{
    int fd = dup(s->objfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0) close(fd);
        return;
    }
    struct dirent *de;
    uint64_t orphans = 0;
    while ((de = readdir(d))) {
        const char *nm = de->d_name;
        if (strlen(nm) != 16) continue;
        uint64_t id = 0;
        bool hex = true;
        for (int i = 0; i < 16 && hex; i++) {
            int v = hexval((unsigned char)nm[i]);
            if (v < 0 || isupper((unsigned char)nm[i])) hex = false;
            id = id * 16 + (uint64_t)(v < 0 ? 0 : v);
        }
        if (!hex) continue;
        enode *e = emu_store__idmap_get(m, id);
        if (e && e->n.type == EMU_FILE)
            e->state = RS_VISITING; /* marks "has an object" */
        else if (unlinkat(s->objfd, nm, 0) == 0)
            orphans++;
    }
    closedir(d);
    if (orphans) LOGI("emu_store: removed %" PRIu64 " object files that belong to no file", orphans);
    for (size_t i = 0; i < m->cap; i++) {
        enode *e = m->vals[i];
        if (!e) continue;
        if (e->n.type == EMU_FILE && e->state != RS_VISITING) {
            char name[17];
            emu_store__obj_name(e->n.id, name);
            int ofd = openat(s->objfd, name, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
            if (ofd >= 0) close(ofd);
            LOGW("emu_store: object of file id %" PRIu64 " was missing; recreated empty", e->n.id);
        }
        e->state = RS_LIVE;
    }
}
