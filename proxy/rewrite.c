/*
 * rewrite: `dualpipe rewrite DIR` (README "Rewrite"). Walks DIR (sorted, never following a symbolic
 * link, skipping .git and similar directories), reads each file of a known kind whole up to
 * --max-file-size (so memory is bounded by that size, about three times over: the text, the
 * rewritten text and the diff's line index), scans it with rwscan, prints a unified diff of what the
 * mappings can rewrite, and with --apply replaces the file atomically (a temporary file in the same
 * directory, the same mode and, when allowed, owner; fsync; rename) after writing its backup.
 *
 * JSON files (.json, .ipynb) are rewritten on their text like any other file (a URI never holds a
 * backslash, so JSON escapes are never touched and the formatting stays byte for byte), then both
 * versions are parsed with jansson and compared: same structure, same key order, no duplicate key,
 * and only strings that named ADL changed. A file that fails that check is not rewritten (reported).
 * Files of Delta (_delta_log/) and Iceberg (metadata/ vN.metadata.json, .avro, version-hint.text)
 * tables are scanned, binary or not, and everything Gen1 in them is reported, never rewritten.
 *
 * Exit status: 0 nothing left to do (or every rewrite applied and nothing needs a human); 3 a dry
 * run with rewrites pending, or references that need a human; 1 an error (a file that cannot be
 * read or written, a bad config); 2 usage.
 */
#include "rewrite.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cfg.h"
#include "rwscan.h"

enum { RW_OK = 0, RW_FAILED = 1, RW_USAGE = 2, RW_HUMAN = 3 };

#define RW_MAX_LIST 10000      /* items of each list kept for the report (all are counted) */
#define RW_MAX_DEPTH 128
#define RW_BINARY_PROBE 8192
#define RW_CONTEXT 3           /* diff context lines */
#define RW_TEXT_MAX 300        /* characters of a reference quoted in the report */

/* File-level reasons, after rwscan's. */
enum { RWX_INVALID_JSON = RWS_NWHY, RWX_JSON_CHECK, RWX_NWHY };

typedef struct rw_args {
    const char *dir, *config, *json, *backup_dir, *gen1_host, *gen2_host;
    bool apply;
    uint64_t max_size;
    const char **incl, **excl;
    size_t nincl, nexcl;
} rw_args;

typedef struct rw_item {
    char *file;
    unsigned line;
    int why; /* rws_why or RWX_* */
    char *text, *detail;
} rw_item;

typedef struct rw_change {
    char *file;
    unsigned line;
    rws_kind kind;
    char *from, *to;
} rw_change;

typedef struct rw_note {
    char *file;
    char *msg;
} rw_note;

typedef struct rw_run {
    const rw_args *a;
    const dp_config *cfg;
    rws_opts o;
    char root[PATH_MAX];       /* realpath of DIR */
    char backup_real[PATH_MAX]; /* realpath of --backup-dir, "" = none */
    uint64_t scanned, changed, pending, kinds[RWS_NKINDS], whys[RWX_NWHY], nitems, nchanges;
    uint64_t skip_binary, skip_large, skip_symlink, nerrors;
    rw_item *items;
    size_t nit, capit;
    rw_change *ch;
    size_t nch, capch;
    rw_note *skips, *errs;
    size_t nskips, capskips, nerrs, caperrs;
} rw_run;

/* ------------------------------------------------------------------ small helpers */

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n);
    if (!q) {
        fputs("dualpipe rewrite: out of memory\n", stderr);
        exit(RW_FAILED);
    }
    return q;
}

static char *xstrndup(const char *s, size_t n)
{
    char *d = strndup(s, n);
    if (!d) {
        fputs("dualpipe rewrite: out of memory\n", stderr);
        exit(RW_FAILED);
    }
    return d;
}

static char *xstrdup(const char *s)
{
    return xstrndup(s, strlen(s));
}

static bool ends_with(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

static void note(rw_note **v, size_t *n, size_t *cap, const char *file, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void note(rw_note **v, size_t *n, size_t *cap, const char *file, const char *fmt, ...)
{
    if (*n >= RW_MAX_LIST) return;
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        *v = xrealloc(*v, *cap * sizeof **v);
    }
    va_list ap;
    va_start(ap, fmt);
    char *m = NULL;
    if (vasprintf(&m, fmt, ap) < 0) m = NULL;
    va_end(ap);
    (*v)[(*n)++] = (rw_note){.file = xstrdup(file), .msg = m ? m : xstrdup("?")};
}

#define RW_ERROR(w, file, ...)                                                                                         \
    do {                                                                                                               \
        (w)->nerrors++;                                                                                                \
        note(&(w)->errs, &(w)->nerrs, &(w)->caperrs, file, __VA_ARGS__);                                              \
    } while (0)

static const char *why_name(int w)
{
    if (w == RWX_INVALID_JSON) return "invalid_json";
    if (w == RWX_JSON_CHECK) return "json_check_failed";
    return rws_why_name((rws_why)w);
}

static const char *why_text(int w)
{
    if (w == RWX_INVALID_JSON) return "not valid JSON: nothing in it is rewritten";
    if (w == RWX_JSON_CHECK)
        return "rewriting would change more than ADL strings (or duplicate a key): nothing in it is rewritten";
    return rws_why_text((rws_why)w);
}

static bool why_front(int w)
{
    return w < RWS_NWHY && rws_why_front((rws_why)w);
}

/* Printable copy of t[0, n): at most RW_TEXT_MAX bytes, control characters as '?'. */
static char *quote_text(const char *t, size_t n)
{
    if (n > RW_TEXT_MAX) n = RW_TEXT_MAX;
    char *s = xstrndup(t, n);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) s[i] = '?';
    return s;
}

static void add_item(rw_run *w, const char *rel, unsigned line, int why, const char *t, size_t n, const char *detail)
{
    w->nitems++;
    w->whys[why]++;
    if (w->nit >= RW_MAX_LIST) return;
    if (w->nit == w->capit) {
        w->capit = w->capit ? w->capit * 2 : 64;
        w->items = xrealloc(w->items, w->capit * sizeof *w->items);
    }
    w->items[w->nit++] = (rw_item){.file = xstrdup(rel), .line = line, .why = why, .text = quote_text(t, n),
                                   .detail = detail ? xstrdup(detail) : NULL};
}

static void add_change(rw_run *w, const char *rel, unsigned line, rws_kind k, const char *from, size_t fn,
                       const char *to)
{
    w->nchanges++;
    w->kinds[k]++;
    if (w->nch >= RW_MAX_LIST) return;
    if (w->nch == w->capch) {
        w->capch = w->capch ? w->capch * 2 : 64;
        w->ch = xrealloc(w->ch, w->capch * sizeof *w->ch);
    }
    w->ch[w->nch++] = (rw_change){.file = xstrdup(rel), .line = line, .kind = k, .from = quote_text(from, fn),
                                  .to = quote_text(to, strlen(to))};
}

/* ------------------------------------------------------------------ usage */

static void usage(FILE *out)
{
    fprintf(out,
            "usage: dualpipe rewrite DIR --config FILE [options]\n"
            "Finds adl:// URIs, *.azuredatalakestore.net endpoints and Hadoop ADL settings (fs.adl.*, dfs.adls.*)\n"
            "in the code, notebooks and configuration under DIR (.py .scala .java .sql .hql .ipynb .json .xml\n"
            ".conf .properties .yaml .yml .sh) and rewrites them to abfss://FILESYSTEM@ACCOUNT.dfs.core.windows.net/\n"
            "by the config's gen2.mappings, and the ADL keys to their ABFS counterparts. A dry run by default:\n"
            "a unified diff on stdout, a summary on stderr. Reports what it cannot rewrite and why (paths built\n"
            "at run time, Delta/Iceberg table metadata, adl://home, other accounts, unmapped paths).\n"
            "  --apply              write the changes (atomically, mode kept), each file's original to a backup\n"
            "  --backup-dir D       backups go to D/RELATIVE-PATH (default: FILE.dualpipe-bak beside the file)\n"
            "  --json FILE          the full report as JSON (- for stdout)\n"
            "  --gen1-host HOST     the Gen1 account the mappings describe (default: gen1.endpoint's host when\n"
            "                       it is a name, not an address; else any *.azuredatalakestore.net account)\n"
            "  --gen2-host HOST     the abfss:// host (default: gen2.endpoint's host when it is ACCOUNT.dfs.*,\n"
            "                       else gen2.account.dfs.core.windows.net)\n"
            "  --max-file-size N    larger files are skipped and listed (bytes, or with K, M, G; default 16M)\n"
            "  --include GLOB       also scan files matching GLOB (relative path or name; repeatable)\n"
            "  --exclude GLOB       skip files and directories matching GLOB (repeatable)\n"
            "Exit status: 0 nothing left to do (or all rewrites applied), 3 rewrites pending (dry run) or\n"
            "references that need a human, 1 an error, 2 usage error.\n");
}

static void usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("dualpipe rewrite: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    usage(stderr);
}

static int parse_size(const char *s, uint64_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (!s[0] || !end || end == s || errno || s[0] == '-') return -1;
    uint64_t mul = 1;
    if (*end == 'K' || *end == 'k') mul = 1024, end++;
    else if (*end == 'M' || *end == 'm') mul = 1024 * 1024, end++;
    else if (*end == 'G' || *end == 'g') mul = 1024ull * 1024 * 1024, end++;
    if (*end || v == 0 || v > (1ull << 40) / mul) return -1;
    *out = v * mul;
    return 0;
}

static int parse_args(int argc, char **argv, rw_args *a)
{
    memset(a, 0, sizeof *a);
    a->max_size = 16u << 20;
    a->incl = xrealloc(NULL, (size_t)argc * sizeof *a->incl);
    a->excl = xrealloc(NULL, (size_t)argc * sizeof *a->excl);
    static const char *const with_value[] = {"--config", "--json", "--backup-dir", "--gen1-host", "--gen2-host",
                                             "--max-file-size", "--include", "--exclude"};
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        bool tv = false;
        for (size_t k = 0; k < sizeof with_value / sizeof with_value[0]; k++)
            if (strcmp(s, with_value[k]) == 0) tv = true;
        if (strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0) {
            usage(stdout);
            return -1;
        } else if (strcmp(s, "--apply") == 0) a->apply = true;
        else if (tv && i + 1 >= argc) {
            usage_error("%s needs a value\n", s);
            return RW_USAGE;
        } else if (tv) {
            const char *v = argv[++i];
            if (strcmp(s, "--config") == 0) a->config = v;
            else if (strcmp(s, "--json") == 0) a->json = v;
            else if (strcmp(s, "--backup-dir") == 0) a->backup_dir = v;
            else if (strcmp(s, "--gen1-host") == 0) a->gen1_host = v;
            else if (strcmp(s, "--gen2-host") == 0) a->gen2_host = v;
            else if (strcmp(s, "--include") == 0) a->incl[a->nincl++] = v;
            else if (strcmp(s, "--exclude") == 0) a->excl[a->nexcl++] = v;
            else if (parse_size(v, &a->max_size) != 0) {
                usage_error("--max-file-size: a size from 1 byte to 1T (bytes, or with K, M, G)\n");
                return RW_USAGE;
            }
        } else if (s[0] == '-' && s[1]) {
            usage_error("unknown option %s (dualpipe rewrite --help)\n", s);
            return RW_USAGE;
        } else if (!a->dir) a->dir = s;
        else {
            usage_error("one DIR only\n");
            return RW_USAGE;
        }
    }
    if (!a->dir) {
        usage_error("DIR is required (dualpipe rewrite --help)\n");
        return RW_USAGE;
    }
    if (!a->config) {
        usage_error("--config FILE is required (dualpipe rewrite --help)\n");
        return RW_USAGE;
    }
    return 0;
}

/* ------------------------------------------------------------------ hosts */

/* The host of scheme://host[:port][/...], lower case, into out; "" when it is an address or localhost. */
static void url_name(const char *url, char *out, size_t n)
{
    out[0] = '\0';
    const char *h = strstr(url, "://");
    if (!h) return;
    h += 3;
    if (*h == '[') return; /* IPv6 */
    size_t l = strcspn(h, ":/?#");
    if (l == 0 || l >= n) return;
    memcpy(out, h, l);
    out[l] = '\0';
    for (char *p = out; *p; p++) *p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
    bool digits = strspn(out, "0123456789.") == l;
    if (digits || strcmp(out, "localhost") == 0 || !strchr(out, '.')) out[0] = '\0';
}

static bool valid_host(const char *h)
{
    if (!h[0] || strlen(h) > 253) return false;
    for (const char *p = h; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '.' || *p == '-')) return false;
    return true;
}

/* ------------------------------------------------------------------ files */

/* Read path whole, at most max bytes: 0, -EFBIG when it holds more, or -errno. *st is its fstat as read. */
static int read_file(const char *path, uint64_t max, char **out, size_t *outlen, struct stat *st)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return -errno;
    int rc = 0;
    char *b = NULL;
    size_t got = 0, cap = 0;
    if (fstat(fd, st) != 0) {
        rc = -errno;
        goto out;
    }
    cap = (size_t)st->st_size + 1;
    b = malloc(cap + 1);
    if (!b) {
        rc = -ENOMEM;
        goto out;
    }
    for (;;) {
        if (got == cap) { /* the file grew since it was listed */
            if (got > max) break;
            char *nb = realloc(b, cap * 2 + 1);
            if (!nb) {
                rc = -ENOMEM;
                goto out;
            }
            b = nb;
            cap *= 2;
        }
        ssize_t r = read(fd, b + got, cap - got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            rc = -errno;
            goto out;
        }
        if (r == 0) break;
        got += (size_t)r;
    }
    if (got > max) rc = -EFBIG;
out:
    close(fd);
    if (rc != 0) {
        free(b);
        return rc;
    }
    b[got] = '\0';
    *out = b;
    *outlen = got;
    return 0;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return -errno;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static void fsync_dir_of(const char *path)
{
    char d[PATH_MAX];
    snprintf(d, sizeof d, "%s", path);
    char *sl = strrchr(d, '/');
    if (sl == d) sl[1] = '\0';
    else if (sl) *sl = '\0';
    else snprintf(d, sizeof d, ".");
    int fd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

/* Write data to path atomically (temporary file beside it, rename), with st's mode and owner. */
static int atomic_write(const char *path, const char *data, size_t n, const struct stat *st)
{
    char tmp[PATH_MAX];
    const char *sl = strrchr(path, '/');
    int dl = sl ? (int)(sl - path + 1) : 0;
    if (snprintf(tmp, sizeof tmp, "%.*s.%s.dualpipe-tmp.XXXXXX", dl, path, sl ? sl + 1 : path) >= (int)sizeof tmp)
        return -ENAMETOOLONG;
    int fd = mkstemp(tmp);
    if (fd < 0) return -errno;
    int rc = write_all(fd, data, n);
    if (rc == 0 && fchmod(fd, st->st_mode & 07777) != 0) rc = -errno;
    if (rc == 0 && (st->st_uid != geteuid() || st->st_gid != getegid()))
        (void)!fchown(fd, st->st_uid, st->st_gid); /* best effort: keeping the owner needs privileges */
    if (rc == 0 && fsync(fd) != 0) rc = -errno;
    if (close(fd) != 0 && rc == 0) rc = -errno;
    if (rc == 0 && rename(tmp, path) != 0) rc = -errno;
    if (rc != 0) unlink(tmp);
    else fsync_dir_of(path);
    return rc;
}

static int mkdir_parents(const char *path)
{
    char d[PATH_MAX];
    snprintf(d, sizeof d, "%s", path);
    for (char *p = d + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(d, 0755) != 0 && errno != EEXIST) return -errno;
        *p = '/';
    }
    return 0;
}

/* ------------------------------------------------------------------ JSON check */

static bool adl_string(const char *s)
{
    static const char *const prov[] = {"ClientCredential", "RefreshToken", "Msi"};
    for (size_t i = 0; i < sizeof prov / sizeof prov[0]; i++)
        if (strcasecmp(s, prov[i]) == 0) return true;
    for (const char *p = s; *p; p++)
        if (strncasecmp(p, "adl", 3) == 0) return true;
    return false;
}

/* Same structure, key order and scalars; strings differ only where the old one named ADL. */
static bool json_same_shape(json_t *a, json_t *b, int depth)
{
    if (depth > 512 || json_typeof(a) != json_typeof(b)) return false;
    switch (json_typeof(a)) {
    case JSON_OBJECT: {
        if (json_object_size(a) != json_object_size(b)) return false;
        void *ia = json_object_iter(a), *ib = json_object_iter(b);
        while (ia && ib) {
            const char *ka = json_object_iter_key(ia), *kb = json_object_iter_key(ib);
            if (strcmp(ka, kb) != 0 && !adl_string(ka)) return false;
            if (!json_same_shape(json_object_iter_value(ia), json_object_iter_value(ib), depth + 1)) return false;
            ia = json_object_iter_next(a, ia);
            ib = json_object_iter_next(b, ib);
        }
        return !ia && !ib;
    }
    case JSON_ARRAY:
        if (json_array_size(a) != json_array_size(b)) return false;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!json_same_shape(json_array_get(a, i), json_array_get(b, i), depth + 1)) return false;
        return true;
    case JSON_STRING:
        return strcmp(json_string_value(a), json_string_value(b)) == 0 || adl_string(json_string_value(a));
    default:
        return json_equal(a, b) != 0;
    }
}

/* ------------------------------------------------------------------ diff */

typedef struct lines {
    const char *t;
    size_t n;     /* lines */
    size_t *at;   /* start offsets, n + 1 entries (the last = text length) */
    bool final_nl;
} lines;

static void lines_index(lines *l, const char *t, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        if (t[i] == '\n') n++;
    l->final_nl = len == 0 || t[len - 1] == '\n';
    if (!l->final_nl) n++;
    l->t = t;
    l->n = n;
    l->at = xrealloc(NULL, (n + 1) * sizeof *l->at);
    size_t k = 0;
    l->at[k++] = 0;
    for (size_t i = 0; i < len && k <= n; i++)
        if (t[i] == '\n' && k <= n) l->at[k++] = i + 1;
    l->at[n] = len;
}

static bool line_eq(const lines *a, const lines *b, size_t i)
{
    size_t la = a->at[i + 1] - a->at[i], lb = b->at[i + 1] - b->at[i];
    return la == lb && memcmp(a->t + a->at[i], b->t + b->at[i], la) == 0;
}

static void put_line(FILE *out, char mark, const lines *l, size_t i)
{
    size_t s = l->at[i], e = l->at[i + 1];
    fputc(mark, out);
    fwrite(l->t + s, 1, e - s, out);
    if (i + 1 == l->n && !l->final_nl) fputs("\n\\ No newline at end of file\n", out);
}

/* A unified diff of two texts with the same number of lines (the rewrites never add or remove a
 * line break), RW_CONTEXT lines of context. */
static void print_diff(FILE *out, const char *rel, const char *o, size_t ol, const char *n, size_t nl)
{
    lines a, b;
    lines_index(&a, o, ol);
    lines_index(&b, n, nl);
    fprintf(out, "--- a/%s\n+++ b/%s\n", rel, rel);
    if (a.n != b.n) { /* cannot happen with rwscan's edits; a whole-file hunk keeps the diff correct */
        fprintf(out, "@@ -1,%zu +1,%zu @@\n", a.n, b.n);
        for (size_t i = 0; i < a.n; i++) put_line(out, '-', &a, i);
        for (size_t i = 0; i < b.n; i++) put_line(out, '+', &b, i);
        goto out;
    }
    size_t i = 0;
    while (i < a.n) {
        if (line_eq(&a, &b, i)) {
            i++;
            continue;
        }
        /* a hunk from the first change, extended while the next change is within 2 * context */
        size_t start = i > RW_CONTEXT ? i - RW_CONTEXT : 0, last = i;
        for (size_t j = i + 1; j < a.n && j <= last + 2 * RW_CONTEXT; j++)
            if (!line_eq(&a, &b, j)) last = j;
        size_t end = last + RW_CONTEXT + 1 < a.n ? last + RW_CONTEXT + 1 : a.n;
        fprintf(out, "@@ -%zu,%zu +%zu,%zu @@\n", start + 1, end - start, start + 1, end - start);
        size_t k = start;
        while (k < end) {
            if (line_eq(&a, &b, k)) {
                put_line(out, ' ', &a, k++);
                continue;
            }
            size_t r = k;
            while (r < end && !line_eq(&a, &b, r)) r++;
            for (size_t x = k; x < r; x++) put_line(out, '-', &a, x);
            for (size_t x = k; x < r; x++) put_line(out, '+', &b, x);
            k = r;
        }
        i = end;
    }
out:
    free(a.at);
    free(b.at);
}

/* ------------------------------------------------------------------ one file */

static const char *const scan_ext[] = {".py",   ".scala", ".java",       ".sql",  ".hql", ".ipynb", ".json",
                                       ".xml",  ".conf",  ".properties", ".yaml", ".yml", ".sh"};

static bool is_table_meta(const char *rel)
{
    const char *name = strrchr(rel, '/');
    name = name ? name + 1 : rel;
    /* any file under a _delta_log directory */
    for (const char *p = rel; (p = strstr(p, "_delta_log/")) != NULL; p++)
        if (p == rel || p[-1] == '/') return true;
    /* Iceberg: DIR/metadata/{vN.metadata.json, *.avro, version-hint.text} */
    size_t nl = (size_t)(name - rel);
    bool in_meta = nl >= 9 && memcmp(name - 9, "metadata/", 9) == 0 && (nl == 9 || name[-10] == '/');
    return in_meta && (ends_with(name, ".metadata.json") || ends_with(name, ".avro") ||
                       strcmp(name, "version-hint.text") == 0);
}

static bool glob_match(const char *const *g, size_t n, const char *rel)
{
    const char *name = strrchr(rel, '/');
    name = name ? name + 1 : rel;
    for (size_t i = 0; i < n; i++)
        if (fnmatch(g[i], rel, 0) == 0 || fnmatch(g[i], name, 0) == 0) return true;
    return false;
}

static unsigned line_at(const char *t, size_t off, size_t *cur, unsigned *line)
{
    for (; *cur < off; (*cur)++)
        if (t[*cur] == '\n') (*line)++;
    return *line;
}

static int apply_file(rw_run *w, const char *path, const char *rel, const char *orig, size_t ol, const char *nt,
                      size_t nl, const struct stat *st)
{
    /* a file written to since it was read keeps its new content: nothing is lost, run again */
    struct stat now;
    if (lstat(path, &now) != 0 || !S_ISREG(now.st_mode) || now.st_size != st->st_size || now.st_ino != st->st_ino ||
        now.st_mtim.tv_sec != st->st_mtim.tv_sec || now.st_mtim.tv_nsec != st->st_mtim.tv_nsec) {
        RW_ERROR(w, rel, "changed while being rewritten: left as it is (run again)");
        return -EAGAIN;
    }
    char bak[PATH_MAX];
    if (w->a->backup_dir) {
        if (snprintf(bak, sizeof bak, "%s/%s", w->a->backup_dir, rel) >= (int)sizeof bak) return -ENAMETOOLONG;
        int rc = mkdir_parents(bak);
        if (rc != 0) return rc;
    } else if (snprintf(bak, sizeof bak, "%s.dualpipe-bak", path) >= (int)sizeof bak) return -ENAMETOOLONG;
    int rc = atomic_write(bak, orig, ol, st);
    if (rc != 0) {
        RW_ERROR(w, rel, "cannot write the backup %s: %s", bak, strerror(-rc));
        return rc;
    }
    rc = atomic_write(path, nt, nl, st);
    if (rc != 0) RW_ERROR(w, rel, "cannot write: %s (unchanged; backup in %s)", strerror(-rc), bak);
    return rc;
}

static void do_file(rw_run *w, const char *path, const char *rel, const struct stat *st)
{
    const char *name = strrchr(rel, '/');
    name = name ? name + 1 : rel;
    if (ends_with(name, ".dualpipe-bak") || strstr(name, ".dualpipe-tmp.")) return;
    if (w->a->nexcl && glob_match(w->a->excl, w->a->nexcl, rel)) return;
    bool meta = is_table_meta(rel), typed = false;
    for (size_t i = 0; i < sizeof scan_ext / sizeof scan_ext[0]; i++)
        if (ends_with(name, scan_ext[i])) typed = true;
    if (!meta && !typed && !(w->a->nincl && glob_match(w->a->incl, w->a->nincl, rel))) return;
    if ((uint64_t)st->st_size > w->a->max_size) {
        w->skip_large++;
        note(&w->skips, &w->nskips, &w->capskips, rel, "larger than --max-file-size (%" PRIu64 " bytes)",
             (uint64_t)st->st_size);
        return;
    }
    char *t = NULL;
    size_t len = 0;
    struct stat rst;
    int rc = read_file(path, w->a->max_size, &t, &len, &rst);
    if (rc == -EFBIG) {
        w->skip_large++;
        note(&w->skips, &w->nskips, &w->capskips, rel, "larger than --max-file-size (grew while being read)");
        return;
    }
    if (rc != 0) {
        RW_ERROR(w, rel, "cannot read: %s", strerror(-rc));
        return;
    }
    st = &rst;
    if (!meta && memchr(t, '\0', len < RW_BINARY_PROBE ? len : RW_BINARY_PROBE)) {
        w->skip_binary++;
        note(&w->skips, &w->nskips, &w->capskips, rel, "binary");
        free(t);
        return;
    }
    w->scanned++;
    bool json = !meta && (ends_with(name, ".json") || ends_with(name, ".ipynb"));
    json_t *jo = NULL;
    bool json_bad = false;
    if (json) {
        json_error_t je;
        jo = json_loadb(t, len, JSON_ALLOW_NUL, &je);
        if (!jo) {
            json_bad = true;
            char d[300];
            snprintf(d, sizeof d, "line %d: %s", je.line, je.text);
            add_item(w, rel, (unsigned)(je.line > 0 ? je.line : 1), RWX_INVALID_JSON, "", 0, d);
        }
    }
    rws_opts o = w->o;
    o.json = json;
    o.table_meta = meta;
    rws_result r;
    memset(&r, 0, sizeof r);
    char *nt = NULL;
    size_t nl = 0;
    if (rws_scan(&o, t, len, &r) != 0 || rws_apply(t, len, &r, &nt, &nl) != 0) {
        RW_ERROR(w, rel, "out of memory");
        goto out;
    }
    if (json_bad && r.nedits) {
        /* nothing rewritten in a file that is not JSON to begin with */
        for (size_t i = 0; i < r.nedits; i++) free(r.edits[i].to);
        r.nedits = 0;
    }
    if (json && jo && r.nedits) {
        json_error_t je;
        json_t *jn = json_loadb(nt, nl, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
        bool ok = jn && json_same_shape(jo, jn, 0);
        json_decref(jn);
        if (!ok) {
            char d[300];
            snprintf(d, sizeof d, "%s", jn ? "the rewritten document differs in more than ADL strings"
                                           : je.text);
            add_item(w, rel, 1, RWX_JSON_CHECK, "", 0, d);
            for (size_t i = 0; i < r.nedits; i++) free(r.edits[i].to);
            r.nedits = 0;
        }
    }
    size_t cur = 0;
    unsigned line = 1;
    for (size_t i = 0; i < r.nfinds; i++) {
        const rws_find *f = &r.finds[i];
        add_item(w, rel, line_at(t, f->off, &cur, &line), (int)f->why, t + f->off, f->len, f->detail);
    }
    if (r.nedits == 0) goto out;
    cur = 0;
    line = 1;
    for (size_t i = 0; i < r.nedits; i++) {
        const rws_edit *e = &r.edits[i];
        add_change(w, rel, line_at(t, e->off, &cur, &line), e->kind, t + e->off, e->len, e->to);
    }
    print_diff(stdout, rel, t, len, nt, nl);
    if (w->a->apply) {
        if (apply_file(w, path, rel, t, len, nt, nl, st) == 0) w->changed++;
    } else {
        w->pending++;
    }
out:
    json_decref(jo);
    rws_result_free(&r);
    free(nt);
    free(t);
}

/* ------------------------------------------------------------------ walk */

static bool skip_dir(const char *name)
{
    static const char *const skip[] = {".git", ".hg", ".svn", ".bzr", "node_modules", "__pycache__",
                                       ".ipynb_checkpoints", ".venv", ".tox", ".mypy_cache", ".idea"};
    for (size_t i = 0; i < sizeof skip / sizeof skip[0]; i++)
        if (strcmp(name, skip[i]) == 0) return true;
    return false;
}

static bool under_root(const rw_run *w, const char *real)
{
    size_t n = strlen(w->root);
    return strncmp(real, w->root, n) == 0 && (real[n] == '\0' || real[n] == '/' || strcmp(w->root, "/") == 0);
}

static void walk(rw_run *w, const char *abs, const char *rel, int depth)
{
    if (depth > RW_MAX_DEPTH) {
        RW_ERROR(w, rel[0] ? rel : ".", "deeper than %d directories: not scanned", RW_MAX_DEPTH);
        return;
    }
    struct dirent **ents = NULL;
    int n = scandir(abs, &ents, NULL, alphasort);
    if (n < 0) {
        RW_ERROR(w, rel[0] ? rel : ".", "cannot list: %s", strerror(errno));
        return;
    }
    for (int i = 0; i < n; i++) {
        const char *name = ents[i]->d_name;
        char cabs[PATH_MAX], crel[PATH_MAX];
        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) goto next;
        if (snprintf(cabs, sizeof cabs, "%s/%s", abs, name) >= (int)sizeof cabs ||
            snprintf(crel, sizeof crel, "%s%s%s", rel, rel[0] ? "/" : "", name) >= (int)sizeof crel) {
            RW_ERROR(w, rel[0] ? rel : ".", "a name in it is too long: %s", name);
            goto next;
        }
        struct stat st;
        if (lstat(cabs, &st) != 0) {
            RW_ERROR(w, crel, "cannot stat: %s", strerror(errno));
            goto next;
        }
        if (S_ISLNK(st.st_mode)) {
            char real[PATH_MAX];
            if (!realpath(cabs, real) || !under_root(w, real)) {
                w->skip_symlink++;
                note(&w->skips, &w->nskips, &w->capskips, crel, "symbolic link out of DIR (or dangling): not followed");
            }
            /* a link inside DIR: its target is scanned where it is */
            goto next;
        }
        if (S_ISDIR(st.st_mode)) {
            if (skip_dir(name)) goto next;
            if (w->a->nexcl && glob_match(w->a->excl, w->a->nexcl, crel)) goto next;
            char real[PATH_MAX];
            if (w->backup_real[0] && realpath(cabs, real) && strcmp(real, w->backup_real) == 0) goto next;
            walk(w, cabs, crel, depth + 1);
        } else if (S_ISREG(st.st_mode)) {
            do_file(w, cabs, crel, &st);
        }
    next:
        free(ents[i]);
    }
    free(ents);
}

/* ------------------------------------------------------------------ report */

static char *front_hint(const dp_config *c)
{
    char *s = NULL;
    const char *base = c->public_url[0] ? c->public_url : NULL;
    int rc;
    if (base)
        rc = asprintf(&s, "point those jobs at the proxy's WebHDFS front instead (%s/webhdfs/v1, or webhdfs:// "
                          "in Hadoop); in the gen2-only phase it serves the same Gen1 paths from Gen2 alone", base);
    else
        rc = asprintf(&s, "point those jobs at the proxy's WebHDFS front instead (webhdfs://%s:%d/PATH in Hadoop, or "
                          "adl:// with the account's name resolving to the proxy); in the gen2-only phase it serves "
                          "the same Gen1 paths from Gen2 alone", c->listen.host, c->listen.port);
    return rc < 0 ? NULL : s;
}

static void print_summary(const rw_run *w, FILE *out, int status)
{
    fprintf(out, "dualpipe rewrite %s (%s)\n", w->a->dir, w->a->apply ? "applied" : "dry run");
    fprintf(out, "  mappings of %s -> abfss://FILESYSTEM@%s\n", w->o.gen1_host[0] ? w->o.gen1_host : "any Gen1 account",
            w->o.gen2_host);
    fprintf(out, "  files scanned %" PRIu64 ", %s %" PRIu64 "\n", w->scanned, w->a->apply ? "changed" : "to change",
            w->a->apply ? w->changed : w->pending);
    fprintf(out, "  rewrites %" PRIu64 ": uri %" PRIu64 ", config_key %" PRIu64 ", config_value %" PRIu64 "\n",
            w->nchanges, w->kinds[RWS_URI], w->kinds[RWS_KEY], w->kinds[RWS_VALUE]);
    fprintf(out, "  skipped: binary %" PRIu64 ", too large %" PRIu64 ", symbolic links out of DIR %" PRIu64 "\n",
            w->skip_binary, w->skip_large, w->skip_symlink);
    for (size_t i = 0; i < w->nskips; i++) fprintf(out, "    SKIPPED  %s: %s\n", w->skips[i].file, w->skips[i].msg);
    fprintf(out, "  needs a human: %" PRIu64 "\n", w->nitems);
    for (size_t i = 0; i < w->nit; i++) {
        const rw_item *it = &w->items[i];
        fprintf(out, "    %-20s %s:%u  %s%s%s\n", why_name(it->why), it->file, it->line, it->text,
                it->detail ? (it->text[0] ? "  -- " : "") : "", it->detail ? it->detail : "");
    }
    if (w->nit < w->nitems) fprintf(out, "    (%" PRIu64 " more in the counts only)\n", w->nitems - w->nit);
    bool front = false;
    for (int k = 0; k < RWX_NWHY; k++) {
        if (!w->whys[k]) continue;
        fprintf(out, "  %s (%" PRIu64 "): %s\n", why_name(k), w->whys[k], why_text(k));
        if (why_front(k)) front = true;
    }
    if (front) {
        char *h = front_hint(w->cfg);
        if (h) fprintf(out, "  for the references marked above as known only at run time, table metadata, endpoints, "
                            "other accounts or unmapped paths: %s\n", h);
        free(h);
    }
    for (size_t i = 0; i < w->nerrs; i++) fprintf(out, "    ERROR  %s: %s\n", w->errs[i].file, w->errs[i].msg);
    if (!w->a->apply && w->pending) fprintf(out, "  dry run: run again with --apply to write these changes\n");
    fprintf(out, "  exit status %d\n", status);
}

static int write_json(const rw_run *w, const char *file, int status)
{
    json_t *r = json_object();
    json_object_set_new(r, "dir", json_string(w->a->dir));
    json_object_set_new(r, "applied", json_boolean(w->a->apply));
    json_object_set_new(r, "gen1_host", json_string(w->o.gen1_host));
    json_object_set_new(r, "gen2_host", json_string(w->o.gen2_host));
    json_object_set_new(r, "files_scanned", json_integer((json_int_t)w->scanned));
    json_object_set_new(r, "files_changed", json_integer((json_int_t)w->changed));
    json_object_set_new(r, "files_pending", json_integer((json_int_t)w->pending));
    json_t *k = json_object();
    json_object_set_new(k, "total", json_integer((json_int_t)w->nchanges));
    for (int i = 0; i < RWS_NKINDS; i++)
        json_object_set_new(k, rws_kind_name((rws_kind)i), json_integer((json_int_t)w->kinds[i]));
    json_object_set_new(r, "rewrites", k);
    json_t *ch = json_array();
    for (size_t i = 0; i < w->nch; i++) {
        const rw_change *c = &w->ch[i];
        json_array_append_new(ch, json_pack("{s:s, s:i, s:s, s:s, s:s}", "file", c->file, "line", (json_int_t)c->line,
                                            "kind", rws_kind_name(c->kind), "from", c->from, "to", c->to));
    }
    json_object_set_new(r, "changes", ch);
    json_t *un = json_array(), *by = json_object();
    for (size_t i = 0; i < w->nit; i++) {
        const rw_item *it = &w->items[i];
        json_t *o = json_pack("{s:s, s:i, s:s, s:s, s:s, s:b}", "file", it->file, "line", (json_int_t)it->line,
                              "reason", why_name(it->why), "text", it->text, "explanation", why_text(it->why),
                              "gen2_only_front", why_front(it->why));
        if (it->detail) json_object_set_new(o, "detail", json_string(it->detail));
        json_array_append_new(un, o);
    }
    for (int i = 0; i < RWX_NWHY; i++)
        if (w->whys[i]) json_object_set_new(by, why_name(i), json_integer((json_int_t)w->whys[i]));
    json_object_set_new(r, "unrewritable", un);
    json_object_set_new(r, "unrewritable_total", json_integer((json_int_t)w->nitems));
    json_object_set_new(r, "unrewritable_by_reason", by);
    json_t *sk = json_array(), *er = json_array();
    for (size_t i = 0; i < w->nskips; i++)
        json_array_append_new(sk, json_pack("{s:s, s:s}", "file", w->skips[i].file, "why", w->skips[i].msg));
    for (size_t i = 0; i < w->nerrs; i++)
        json_array_append_new(er, json_pack("{s:s, s:s}", "file", w->errs[i].file, "message", w->errs[i].msg));
    json_object_set_new(r, "skipped", sk);
    json_object_set_new(r, "skipped_binary", json_integer((json_int_t)w->skip_binary));
    json_object_set_new(r, "errors", er);
    char *h = front_hint(w->cfg);
    json_object_set_new(r, "gen2_only_front", json_string(h ? h : ""));
    free(h);
    json_object_set_new(r, "exit_status", json_integer(status));
    int rc;
    if (strcmp(file, "-") == 0) {
        rc = json_dumpf(r, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        fputc('\n', stdout);
    } else {
        rc = json_dump_file(r, file, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    }
    json_decref(r);
    return rc;
}

static void run_free(rw_run *w)
{
    for (size_t i = 0; i < w->nit; i++) {
        free(w->items[i].file);
        free(w->items[i].text);
        free(w->items[i].detail);
    }
    for (size_t i = 0; i < w->nch; i++) {
        free(w->ch[i].file);
        free(w->ch[i].from);
        free(w->ch[i].to);
    }
    for (size_t i = 0; i < w->nskips; i++) {
        free(w->skips[i].file);
        free(w->skips[i].msg);
    }
    for (size_t i = 0; i < w->nerrs; i++) {
        free(w->errs[i].file);
        free(w->errs[i].msg);
    }
    free(w->items);
    free(w->ch);
    free(w->skips);
    free(w->errs);
}

int rewrite_main(int argc, char **argv)
{
    rw_args a;
    int pr = parse_args(argc, argv, &a);
    int status = RW_FAILED;
    dp_config *cfg = NULL;
    rw_run w;
    memset(&w, 0, sizeof w);
    if (pr != 0) {
        status = pr < 0 ? RW_OK : pr;
        goto done;
    }
    cfg = calloc(1, sizeof *cfg);
    if (!cfg) goto done;
    cfg_err ce;
    if (cfg_load_file(a.config, cfg, &ce) != 0) {
        fprintf(stderr, "dualpipe rewrite: %s: %s%s%s\n", a.config, ce.path, ce.path[0] ? ": " : "", ce.message);
        goto done;
    }
    struct stat dst;
    if (stat(a.dir, &dst) != 0) {
        fprintf(stderr, "dualpipe rewrite: %s: %s\n", a.dir, strerror(errno));
        goto done;
    }
    if (!S_ISDIR(dst.st_mode)) {
        fprintf(stderr, "dualpipe rewrite: %s: not a directory\n", a.dir);
        goto done;
    }
    if (!realpath(a.dir, w.root)) {
        fprintf(stderr, "dualpipe rewrite: %s: %s\n", a.dir, strerror(errno));
        goto done;
    }
    if (a.backup_dir) {
        if (mkdir(a.backup_dir, 0755) != 0 && errno != EEXIST) {
            fprintf(stderr, "dualpipe rewrite: --backup-dir %s: %s\n", a.backup_dir, strerror(errno));
            goto done;
        }
        if (!realpath(a.backup_dir, w.backup_real)) {
            fprintf(stderr, "dualpipe rewrite: --backup-dir %s: %s\n", a.backup_dir, strerror(errno));
            goto done;
        }
    }
    char g1[256] = "", g2[300] = "";
    if (a.gen1_host) snprintf(g1, sizeof g1, "%s", a.gen1_host);
    else url_name(cfg->gen1_endpoint, g1, sizeof g1);
    for (char *p = g1; *p; p++) *p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
    if (a.gen1_host && !valid_host(g1)) {
        usage_error("--gen1-host: not a host name: %s\n", a.gen1_host);
        status = RW_USAGE;
        goto done;
    }
    if (a.gen2_host) snprintf(g2, sizeof g2, "%s", a.gen2_host);
    else {
        url_name(cfg->gen2_endpoint, g2, sizeof g2);
        if (!strstr(g2, ".dfs.")) snprintf(g2, sizeof g2, "%s.dfs.core.windows.net", cfg->gen2_account);
    }
    for (char *p = g2; *p; p++) *p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
    if (!valid_host(g2)) {
        usage_error("--gen2-host: not a host name: %s\n", g2);
        status = RW_USAGE;
        goto done;
    }
    w.a = &a;
    w.cfg = cfg;
    w.o = (rws_opts){.cfg = cfg, .gen1_host = g1, .gen2_host = g2};
    walk(&w, a.dir, "", 0);
    fflush(stdout);
    if (w.nerrors) status = RW_FAILED;
    else if (w.nitems || w.pending) status = RW_HUMAN;
    else status = RW_OK;
    if (a.json && write_json(&w, a.json, status) != 0) {
        fprintf(stderr, "dualpipe rewrite: cannot write %s\n", a.json);
        status = RW_FAILED;
    }
    print_summary(&w, stderr, status);
done:
    run_free(&w);
    if (cfg) {
        cfg_free(cfg);
        free(cfg);
    }
    free(a.incl);
    free(a.excl);
    return status;
}
