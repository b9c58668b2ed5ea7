/*
 * assess: `dualpipe assess [PATH]` (README "Assess"). Walks Gen1 under PATH with the shared walker
 * (common/upstream/walk) and reports, per mapping: counts and bytes, a size histogram (small-file
 * share), depth, the largest directories; every problem Gen2 will have with the tree (names Gen2
 * refuses, ACLs over Gen2's limit, identities the identity map cannot map, default ACLs, files with
 * an expiry) and, from the journal (offline or through the running daemon's admin port), the ops
 * Gen2 cannot express; an estimate of the backfill time from the measured rates. Output: a text
 * summary on stdout, --json FILE, --html FILE (self-contained: assess_html.h).
 *
 * Exit status: 0 assessed, nothing found; 3 assessed, problems found; 1 failed or interrupted (the
 * cursor lets the same command resume); 2 usage error.
 */
#include "assess.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "assess_html.h"
#include "cfg.h"
#include "gen1auth.h"
#include "gen1client.h"
#include "gen2client.h"
#include "httpc.h"
#include "idmap.h"
#include "jcli.h"
#include "mcmd.h"
#include "reserved.h"
#include "walk.h"
#include "whreq.h"
#include "xlate.h"

enum { AS_OK = 0, AS_FAILED = 1, AS_USAGE = 2, AS_PROBLEMS = 3 };

#define AS_NBUCKETS 8
#define AS_TOP 10
#define AS_SAMPLES 200      /* problems listed per kind and mapping (all are counted) */
#define AS_MAXDEPTH 64
#define AS_SMALL (1u << 20) /* a "small" file: under 1 MiB */
#define AS_ACL_MAX (4u << 20)

static const uint64_t bucket_lim[AS_NBUCKETS - 1] = {1, 4096, 65536, 1u << 20, 16u << 20, 128u << 20, 1u << 30};
static const char *bucket_name[AS_NBUCKETS] = {"0 B", "< 4 KiB", "4-64 KiB", "64 KiB-1 MiB", "1-16 MiB",
                                                "16-128 MiB", "128 MiB-1 GiB", ">= 1 GiB"};

typedef enum pkind { P_NAME, P_ACL_LIMIT, P_IDENTITY, P_DEFAULT_ACL, P_EXPIRY, P_JOURNAL_OP, P_NKINDS } pkind;
static const char *pkind_name[P_NKINDS] = {"name", "acl_over_limit", "unmapped_identity", "default_acl", "expiry",
                                           "journal_op"};

typedef struct topdir {
    char *path;
    uint64_t entries, bytes;
} topdir;

typedef struct mstat {
    uint64_t files, dirs, bytes, small, hist[AS_NBUCKETS], hist_bytes[AS_NBUCKETS], depth[AS_MAXDEPTH + 1];
    int maxdepth;
    topdir top[AS_TOP];        /* by direct entries */
    uint64_t pcount[P_NKINDS];
    json_t *samples[P_NKINDS]; /* arrays of {"path","rule"} */
} mstat;

typedef struct assess {
    const dp_config *cfg;
    gen2c *g2;
    idm_map *idm;
    pthread_mutex_t mu;
    mstat m[CFG_MAX_MAPPINGS];
    char largest[4096];        /* the largest file seen (the read-rate sample) */
    uint64_t largest_len;
} assess;

/* ---------------------------------------------------------------- state */

/* Record a problem (under mu). */
static void problem(mstat *s, pkind k, const char *path, const char *rule)
{
    s->pcount[k]++;
    if (!s->samples[k]) s->samples[k] = json_array();
    if (s->samples[k] && json_array_size(s->samples[k]) < AS_SAMPLES)
        json_array_append_new(s->samples[k], json_pack("{s:s,s:s}", "path", path, "rule", rule));
}

static void top_offer(mstat *s, const char *path, uint64_t entries, uint64_t bytes)
{
    int at = AS_TOP;
    while (at > 0 && (!s->top[at - 1].path || s->top[at - 1].entries < entries)) at--;
    if (at >= AS_TOP) return;
    free(s->top[AS_TOP - 1].path);
    memmove(&s->top[at + 1], &s->top[at], (AS_TOP - 1 - at) * sizeof s->top[0]);
    s->top[at] = (topdir){strdup(path), entries, bytes};
}

static json_t *u64a(const uint64_t *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) json_array_append_new(a, json_integer((json_int_t)v[i]));
    return a;
}

static void u64a_load(const json_t *a, uint64_t *v, size_t n)
{
    for (size_t i = 0; i < n && i < json_array_size(a); i++) v[i] = (uint64_t)json_integer_value(json_array_get(a, i));
}

static json_t *mstat_json(const mstat *s)
{
    json_t *top = json_array(), *pc = json_object(), *ps = json_object();
    for (int i = 0; i < AS_TOP && s->top[i].path; i++)
        json_array_append_new(top, json_pack("{s:s,s:I,s:I}", "path", s->top[i].path, "entries",
                                             (json_int_t)s->top[i].entries, "bytes", (json_int_t)s->top[i].bytes));
    for (int k = 0; k < P_NKINDS; k++) {
        json_object_set_new(pc, pkind_name[k], json_integer((json_int_t)s->pcount[k]));
        json_object_set_new(ps, pkind_name[k], s->samples[k] ? json_incref(s->samples[k]) : json_array());
    }
    return json_pack("{s:I,s:I,s:I,s:I,s:o,s:o,s:o,s:i,s:o,s:o,s:o}", "files", (json_int_t)s->files, "dirs",
                     (json_int_t)s->dirs, "bytes", (json_int_t)s->bytes, "small_files", (json_int_t)s->small, "hist",
                     u64a(s->hist, AS_NBUCKETS), "hist_bytes", u64a(s->hist_bytes, AS_NBUCKETS), "depth",
                     u64a(s->depth, AS_MAXDEPTH + 1), "max_depth", s->maxdepth, "largest_dirs", top, "problem_counts",
                     pc, "problems", ps);
}

static void mstat_load(mstat *s, const json_t *j)
{
    json_int_t f = 0, d = 0, b = 0, sm = 0;
    int md = 0;
    json_unpack((json_t *)j, "{s:I,s:I,s:I,s:I,s:i}", "files", &f, "dirs", &d, "bytes", &b, "small_files", &sm,
                "max_depth", &md);
    s->files = (uint64_t)f, s->dirs = (uint64_t)d, s->bytes = (uint64_t)b, s->small = (uint64_t)sm, s->maxdepth = md;
    u64a_load(json_object_get(j, "hist"), s->hist, AS_NBUCKETS);
    u64a_load(json_object_get(j, "hist_bytes"), s->hist_bytes, AS_NBUCKETS);
    u64a_load(json_object_get(j, "depth"), s->depth, AS_MAXDEPTH + 1);
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(j, "largest_dirs"), i, t) {
        if (i >= AS_TOP) break;
        s->top[i] = (topdir){strdup(json_string_value(json_object_get(t, "path")) ?: "?"),
                             (uint64_t)json_integer_value(json_object_get(t, "entries")),
                             (uint64_t)json_integer_value(json_object_get(t, "bytes"))};
    }
    for (int k = 0; k < P_NKINDS; k++) {
        s->pcount[k] = (uint64_t)json_integer_value(json_object_get(json_object_get(j, "problem_counts"), pkind_name[k]));
        json_t *a = json_object_get(json_object_get(j, "problems"), pkind_name[k]);
        s->samples[k] = json_is_array(a) ? json_deep_copy(a) : NULL;
    }
}

static void mstat_free(mstat *s)
{
    for (int i = 0; i < AS_TOP; i++) free(s->top[i].path);
    for (int k = 0; k < P_NKINDS; k++) json_decref(s->samples[k]);
}

static json_t *as_save(void *ud)
{
    assess *a = ud;
    json_t *m = json_array();
    pthread_mutex_lock(&a->mu);
    for (int i = 0; i < a->cfg->nmappings; i++) json_array_append_new(m, mstat_json(&a->m[i]));
    json_t *r = json_pack("{s:o,s:s,s:I}", "mappings", m, "largest", a->largest, "largest_len",
                          (json_int_t)a->largest_len);
    pthread_mutex_unlock(&a->mu);
    return r;
}

static int as_load(void *ud, const json_t *st)
{
    assess *a = ud;
    json_t *m = json_object_get(st, "mappings");
    if (!json_is_array(m) || json_array_size(m) != (size_t)a->cfg->nmappings) return -1;
    for (int i = 0; i < a->cfg->nmappings; i++) mstat_load(&a->m[i], json_array_get(m, (size_t)i));
    snprintf(a->largest, sizeof a->largest, "%s", json_string_value(json_object_get(st, "largest")) ?: "");
    a->largest_len = (uint64_t)json_integer_value(json_object_get(st, "largest_len"));
    return 0;
}

/* ---------------------------------------------------------------- checks of one entry */

/* One identity: a problem when Gen2 would not get an identity it accepts. */
static void check_name(assess *a, mstat *s, const char *path, idm_kind kind, const char *name, const char *role)
{
    if (!name || !name[0]) return;
    if (idm_lookup(a->idm, kind, name) || (kind == IDM_USER && idm_is_upn(name))) return;
    char rule[600];
    if (a->idm)
        snprintf(rule, sizeof rule, "%s %s %s is not in the identity map (gen2.unmapped_identity decides what the "
                 "proxy does with it)", role, kind == IDM_USER ? "user" : "group", name);
    else
        snprintf(rule, sizeof rule, "%s %s %s is not a Gen2 identity (object id%s) and no gen2.identity_map maps it",
                 role, kind == IDM_USER ? "user" : "group", name, kind == IDM_USER ? " or UPN" : "");
    problem(s, P_IDENTITY, path, rule);
}

/* The named entries of a full ACL "user::rwx,user:bob:r-x,default:group:g:r-x,..." */
static void check_acl_names(assess *a, mstat *s, const char *path, const char *acl)
{
    char *dup = strdup(acl), *save = NULL;
    for (char *e = dup ? strtok_r(dup, ",", &save) : NULL; e; e = strtok_r(NULL, ",", &save)) {
        if (strncmp(e, "default:", 8) == 0) e += 8;
        char *c1 = strchr(e, ':');
        char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c1 || !c2 || c2 == c1 + 1) continue;
        *c2 = 0;
        if (strncmp(e, "user:", 5) == 0) check_name(a, s, path, IDM_USER, c1 + 1, "ACL entry of");
        else if (strncmp(e, "group:", 6) == 0) check_name(a, s, path, IDM_GROUP, c1 + 1, "ACL entry of");
    }
    free(dup);
}

/* What one entry needs from Gen1 beyond the listing, fetched before any state changes (so a failed
 * page changes nothing and is visited again on resume). */
typedef struct fetched {
    char *aclstatus;   /* GETACLSTATUS answer or NULL */
} fetched;

static int as_page(void *ud, walk *w, const walk_dir *d, const xlate_listing *page, bool last, char *err,
                   size_t errlen)
{
    assess *a = ud;
    int rc = -1;
    fetched *f = calloc((size_t)page->n + 1, sizeof *f);
    xlate_meta *meta = calloc((size_t)page->n + 1, sizeof *meta);
    char **paths = calloc((size_t)page->n + 1, sizeof *paths);
    int64_t *expiry = calloc((size_t)page->n + 1, sizeof *expiry);
    dbuf b;
    dbuf_init(&b, AS_ACL_MAX);
    if (!f || !meta || !paths || !expiry) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    size_t dl = strlen(d->path);
    for (int i = 0; i < page->n; i++) {
        const xlate_entry *e = &page->v[i];
        if (asprintf(&paths[i], "%s%s%s", d->path, dl > 1 ? "/" : "", e->name) < 0) {
            paths[i] = NULL;
            snprintf(err, errlen, "out of memory");
            goto out;
        }
        xlate_err xe;
        if (xlate_meta_from_filestatus(e->status, strlen(e->status), &meta[i], &xe) != 0) {
            snprintf(err, errlen, "Gen1's FileStatus of %s cannot be read: %s", paths[i], xe.message);
            goto out;
        }
        json_error_t je;
        json_t *js = json_loads(e->status, 0, &je);
        json_t *fs = js ? json_object_get(js, "FileStatus") : NULL;
        json_t *ex = fs ? json_object_get(fs, "msExpirationTime") : NULL;
        expiry[i] = json_is_integer(ex) ? (int64_t)json_integer_value(ex) : 0;
        json_decref(js);
        if (meta[i].acl_bit) {
            int g = walk_get(w, paths[i], "op=GETACLSTATUS", AS_ACL_MAX, &b, err, errlen);
            if (g == WALK_FATAL) goto out;
            if (g == WALK_OK && !(f[i].aclstatus = strdup(b.data ? b.data : ""))) {
                snprintf(err, errlen, "out of memory");
                goto out;
            }
        }
    }
    pthread_mutex_lock(&a->mu);
    for (int i = 0; i < page->n; i++) {
        const xlate_entry *e = &page->v[i];
        int mi = cfg_mapping_of(a->cfg, paths[i], NULL);
        if (mi < 0) continue; /* the root is mapped, so everything under it is */
        mstat *s = &a->m[mi];
        int depth = d->depth + 1;
        if (depth > s->maxdepth) s->maxdepth = depth;
        s->depth[depth > AS_MAXDEPTH ? AS_MAXDEPTH : depth]++;
        if (e->is_dir) {
            s->dirs++;
        } else {
            uint64_t len = meta[i].length > 0 ? (uint64_t)meta[i].length : 0;
            int bk = 0;
            while (bk < AS_NBUCKETS - 1 && len >= bucket_lim[bk]) bk++;
            s->files++;
            s->bytes += len;
            s->hist[bk]++;
            s->hist_bytes[bk] += len;
            if (len < AS_SMALL) s->small++;
            if (len > a->largest_len || !a->largest[0]) {
                a->largest_len = len;
                snprintf(a->largest, sizeof a->largest, "%s", paths[i]);
            }
            if (expiry[i] > 0) {
                char rule[160];
                snprintf(rule, sizeof rule, "expires at %" PRId64 " ms since the epoch on Gen1; Gen2 keeps no expiry, "
                         "the file stays", expiry[i]);
                problem(s, P_EXPIRY, paths[i], rule);
            }
        }
        char fsn[64], g2path[4096], why[256];
        gen2c_map_result mr = gen2c_map(a->g2, paths[i], fsn, g2path, sizeof g2path, why, sizeof why);
        if (mr == GEN2C_INVALID_NAME) {
            problem(s, P_NAME, paths[i], why);
        } else if (mr == GEN2C_MAPPED && dp_reserved_g2(g2path)) {
            snprintf(why, sizeof why, "the Gen2 path /%.60s " DP_RESERVED_WHY, g2path);
            problem(s, P_NAME, paths[i], why);
        }
        check_name(a, s, paths[i], IDM_USER, meta[i].owner, "owner");
        check_name(a, s, paths[i], IDM_GROUP, meta[i].group, "group");
        if (f[i].aclstatus) {
            xlate_err xe;
            if (xlate_meta_from_aclstatus(f[i].aclstatus, strlen(f[i].aclstatus), &meta[i], &xe) == 0) {
                if (meta[i].acl_over) {
                    char rule[200];
                    snprintf(rule, sizeof rule, "%d entries in one ACL scope; Gen2 holds at most %d (base entries and "
                             "mask included): only the permission bits are copied", meta[i].acl_over,
                             XLATE_ACL_SCOPE_MAX);
                    problem(s, P_ACL_LIMIT, paths[i], rule);
                }
                if (meta[i].acl) {
                    check_acl_names(a, s, paths[i], meta[i].acl);
                    if (strstr(meta[i].acl, "default:"))
                        problem(s, P_DEFAULT_ACL, paths[i],
                                meta[i].base_added
                                    ? "default ACL without its base entries: HDFS implies them from the access ACL, "
                                      "Gen2 needs them written (the proxy adds them); children created on Gen2 "
                                      "directly inherit with Gen2's rules (the creating client's umask, no HDFS mask "
                                      "recalculation)"
                                    : "default ACL: children created on Gen2 directly inherit it with Gen2's rules "
                                      "(the creating client's umask, no HDFS mask recalculation), so their "
                                      "permissions can differ from Gen1's");
                }
            }
        }
    }
    int dm = cfg_mapping_of(a->cfg, d->path, NULL);
    if (last && dm >= 0) top_offer(&a->m[dm], d->path, d->entries, d->file_bytes);
    pthread_mutex_unlock(&a->mu);
    rc = 0;
out:
    for (int i = 0; page && i < page->n; i++) {
        if (f) free(f[i].aclstatus);
        if (meta) xlate_meta_free(&meta[i]);
        if (paths) free(paths[i]);
    }
    free(f);
    free(meta);
    free(paths);
    free(expiry);
    dbuf_free(&b);
    return rc;
}

/* ---------------------------------------------------------------- the journal */

static void as_record(void *ud, const json_t *rec)
{
    assess *a = ud;
    const char *op = json_string_value(json_object_get(rec, "op"));
    const char *path = json_string_value(json_object_get(rec, "path"));
    if (!op || !path) return;
    static const char *const bad[] = {"CONCAT", "MSCONCAT", "CONCURRENTAPPEND", "SETTIMES", "SETEXPIRY"};
    static const char *const why[] = {
        "CONCAT: Gen2 has no concatenation; the proxy re-copies the whole target from Gen1",
        "MSCONCAT: Gen2 has no concatenation; the proxy re-copies the whole target from Gen1",
        "CONCURRENTAPPEND: Gen2 has no concurrent append; the proxy re-copies the whole file from Gen1",
        "SETTIMES: Gen2 cannot set times; the proxy keeps them as the dualpipe_times property",
        "SETEXPIRY: Gen2 keeps no expiry; the write is recorded as a divergence"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (strcmp(op, bad[i]) != 0) continue;
        int mi = cfg_mapping_of(a->cfg, path, NULL);
        problem(&a->m[mi < 0 ? 0 : mi], P_JOURNAL_OP, path, why[i]);
    }
}

/* ---------------------------------------------------------------- output */

static void fmt_dur(double s, char *buf, size_t cap)
{
    if (s < 60) snprintf(buf, cap, "%.0fs", s);
    else if (s < 3600) snprintf(buf, cap, "%dm%02ds", (int)(s / 60), (int)s % 60);
    else snprintf(buf, cap, "%dh%02dm", (int)(s / 3600), ((int)s % 3600) / 60);
}

static void print_text(const json_t *rep, FILE *out)
{
    char b1[32], b2[32];
    const json_t *walkj = json_object_get(rep, "walk");
    fprintf(out, "dualpipe assess of %s\n", json_string_value(json_object_get(rep, "root")));
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(rep, "mappings"), i, m) {
        uint64_t files = (uint64_t)json_integer_value(json_object_get(m, "files"));
        uint64_t small = (uint64_t)json_integer_value(json_object_get(m, "small_files"));
        mcmd_fmt_bytes((uint64_t)json_integer_value(json_object_get(m, "bytes")), b1, sizeof b1);
        fprintf(out, "\nmapping %s -> %s/%s\n", json_string_value(json_object_get(m, "gen1_prefix")),
                json_string_value(json_object_get(m, "filesystem")), json_string_value(json_object_get(m, "prefix")));
        fprintf(out, "  files %" PRIu64 "  directories %" PRId64 "  bytes %s  max depth %" PRId64 "\n", files,
                (int64_t)json_integer_value(json_object_get(m, "dirs")), b1,
                (int64_t)json_integer_value(json_object_get(m, "max_depth")));
        fprintf(out, "  small files (< 1 MiB): %" PRIu64 " (%.1f%%)\n", small,
                files ? 100.0 * (double)small / (double)files : 0.0);
        fprintf(out, "  sizes:");
        for (size_t k = 0; k < AS_NBUCKETS; k++)
            fprintf(out, "%s %s: %" PRId64, k ? "," : "", bucket_name[k],
                    (int64_t)json_integer_value(json_array_get(json_object_get(m, "hist"), k)));
        fputc('\n', out);
        size_t j;
        json_t *t;
        json_array_foreach(json_object_get(m, "largest_dirs"), j, t) {
            if (j == 0) fprintf(out, "  largest directories (direct entries):\n");
            if (j >= 5) break;
            mcmd_fmt_bytes((uint64_t)json_integer_value(json_object_get(t, "bytes")), b2, sizeof b2);
            fprintf(out, "    %8" PRId64 "  %10s  ", (int64_t)json_integer_value(json_object_get(t, "entries")), b2);
            mcmd_put_safe(out, json_string_value(json_object_get(t, "path")));
            fputc('\n', out);
        }
        for (int k = 0; k < P_NKINDS; k++) {
            int64_t n = json_integer_value(json_object_get(json_object_get(m, "problem_counts"), pkind_name[k]));
            if (!n) continue;
            fprintf(out, "  problem %-18s %" PRId64 "\n", pkind_name[k], n);
            json_t *s = json_object_get(json_object_get(m, "problems"), pkind_name[k]);
            for (size_t q = 0; q < json_array_size(s) && q < 5; q++) {
                fputs("      ", out);
                mcmd_put_safe(out, json_string_value(json_object_get(json_array_get(s, q), "path")));
                fputs(": ", out);
                mcmd_put_safe(out, json_string_value(json_object_get(json_array_get(s, q), "rule")));
                fputc('\n', out);
            }
            if (json_array_size(s) > 5) fprintf(out, "      ... (all in --json / --html)\n");
        }
    }
    const json_t *est = json_object_get(rep, "estimate");
    fmt_dur(json_real_value(json_object_get(walkj, "seconds")), b1, sizeof b1);
    fprintf(out, "\nwalk: %" PRId64 " entries in %s (%.0f entries/s, %" PRId64 " requests)\n",
            (int64_t)json_integer_value(json_object_get(walkj, "entries")), b1,
            json_real_value(json_object_get(walkj, "entries_per_s")),
            (int64_t)json_integer_value(json_object_get(walkj, "requests")));
    fmt_dur(json_real_value(json_object_get(est, "backfill_seconds")), b2, sizeof b2);
    fprintf(out, "estimated backfill: %s (%s)\n", b2, json_string_value(json_object_get(est, "basis")));
    fprintf(out, "journal: %s\n", json_string_value(json_object_get(rep, "journal")));
    fprintf(out, "problems: %" PRId64 "\n", (int64_t)json_integer_value(json_object_get(rep, "problems_total")));
}

/* ---------------------------------------------------------------- command line */

typedef struct as_args {
    const char *config, *path, *json, *html, *cursor, *admin;
    unsigned threads, page, retries;
    double ops;
    bool no_journal, no_progress;
} as_args;

static void usage(FILE *out)
{
    fprintf(out,
            "usage: dualpipe assess [PATH] --config FILE [options]\n"
            "Walks Gen1 under PATH (default: / when a mapping covers it, else the only mapping's gen1_prefix)\n"
            "and reports what moving it to Gen2 involves: counts, bytes, sizes, depth, largest directories,\n"
            "and every problem Gen2 will have (names, ACLs, identities, default ACLs, expiry, journal ops).\n"
            "  --json FILE          the full report as JSON (- for stdout)\n"
            "  --html FILE          a self-contained HTML report with charts (no network needed)\n"
            "  --cursor FILE        resume file: an interrupted run (Ctrl-C, kill, Gen1 down) resumes from it\n"
            "  --threads N          parallel listings (default 4)\n"
            "  --ops-per-sec N      at most N Gen1 requests per second (default: no limit)\n"
            "  --page-size N        entries per listing page on the adls dialect (default 1000; a NameNode\n"
            "                       decides its own: dfs.ls.limit)\n"
            "  --retries N          tries again after a failed Gen1 request, with backoff (default 5)\n"
            "  --admin HOST:PORT    the running daemon's admin address (when admin.listen has port 0)\n"
            "  --no-journal         do not read the journal\n"
            "  --no-progress        no progress line (there is none anyway when stderr is not a terminal)\n"
            "Exit status: 0 nothing found, 3 problems found, 1 failed or interrupted (resumable with\n"
            "--cursor), 2 usage error.\n");
}

static const mcmd CMD = {"assess", usage};
/* the options that take a value */
static const char *const value_opts[] = {"--config", "--json",      "--html",    "--cursor",   "--admin",
                                    "--threads", "--ops-per-sec", "--page-size", "--retries", NULL};

static int parse_args(int argc, char **argv, as_args *a)
{
    memset(a, 0, sizeof *a);
    a->threads = 4;
    a->page = 1000;
    a->retries = 5;
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        bool has = i + 1 < argc;
        if (strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0) {
            usage(stdout);
            return -1;
        } else if (strcmp(s, "--no-journal") == 0) a->no_journal = true;
        else if (strcmp(s, "--no-progress") == 0) a->no_progress = true;
        else if (!has && mcmd_takes_value(s, value_opts)) {
            mcmd_usage_error(&CMD, "%s needs a value\n", s);
            return AS_USAGE;
        } else if (strcmp(s, "--config") == 0) a->config = argv[++i];
        else if (strcmp(s, "--json") == 0) a->json = argv[++i];
        else if (strcmp(s, "--html") == 0) a->html = argv[++i];
        else if (strcmp(s, "--cursor") == 0) a->cursor = argv[++i];
        else if (strcmp(s, "--admin") == 0) a->admin = argv[++i];
        else if (strcmp(s, "--page-size") == 0 || strcmp(s, "--retries") == 0) {
            char *end = NULL;
            unsigned long v = strtoul(argv[++i], &end, 10);
            bool page = s[2] == 'p';
            if (!end || *end || argv[i][0] == '-' || !argv[i][0] || (page ? v < 1 || v > 5000 : v > 100)) {
                mcmd_usage_error(&CMD, "%s: %s\n", s, page ? "must be 1 to 5000" : "must be 0 to 100");
                return AS_USAGE;
            }
            if (page) a->page = (unsigned)v;
            else a->retries = (unsigned)v;
        } else if (strcmp(s, "--threads") == 0 || strcmp(s, "--ops-per-sec") == 0) {
            char *end = NULL;
            double v = strtod(argv[++i], &end);
            if (!end || *end || v < (s[2] == 't' ? 1 : 0) || v > (s[2] == 't' ? 64 : 1e6)) {
                mcmd_usage_error(&CMD, "%s: %s\n", s,
                        s[2] == 't' ? "must be 1 to 64" : "must be a number of requests per second (0: no limit)");
                return AS_USAGE;
            }
            if (s[2] == 't') a->threads = (unsigned)v;
            else a->ops = v;
        } else if (s[0] == '-') {
            mcmd_usage_error(&CMD, "unknown option %s (dualpipe assess --help)\n", s);
            return AS_USAGE;
        } else if (!a->path) a->path = s;
        else {
            mcmd_usage_error(&CMD, "one PATH only\n");
            return AS_USAGE;
        }
    }
    if (!a->config) {
        mcmd_usage_error(&CMD, "--config FILE is required (dualpipe assess --help)\n");
        return AS_USAGE;
    }
    return 0;
}

/* The read rate of Gen1: one OPEN of up to 16 MiB of the largest file. Bytes/s or 0. */
static double read_rate(gen1c *g1, const char *path, uint64_t len, bool hadoop)
{
    if (!path[0] || len == 0) return 0;
    uint64_t n = len < (16u << 20) ? len : (16u << 20);
    char q[128];
    snprintf(q, sizeof q, "op=OPEN&offset=0&length=%" PRIu64 "%s", n, hadoop ? "" : "&read=true");
    dbuf b;
    dbuf_init(&b, n + 1);
    char err[256];
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    long st = walk_gen1_get(g1, path, q, n + 1, &b, err, sizeof err);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    double r = st == 200 && b.len > 0 && secs > 0 ? (double)b.len / secs : 0;
    dbuf_free(&b);
    return r;
}

int assess_main(int argc, char **argv)
{
    as_args ar;
    int pr = parse_args(argc, argv, &ar);
    if (pr < 0) return AS_OK;
    if (pr) return AS_USAGE;
    dp_config cfg;
    cfg_err ce;
    if (cfg_load_file(ar.config, &cfg, &ce) != 0) {
        fprintf(stderr, "dualpipe assess: %s: %s%s%s\n", ar.config, ce.path, ce.path[0] ? ": " : "", ce.message);
        return AS_FAILED;
    }
    int rc = AS_FAILED;
    assess a;
    memset(&a, 0, sizeof a);
    a.cfg = &cfg;
    pthread_mutex_init(&a.mu, NULL);
    httpc *http = NULL;
    gen1c *g1 = NULL;
    g1a *ident = NULL;
    json_t *rep = NULL;
    char *path = NULL, err[1024] = "";
    bool curl_on = curl_global_init(CURL_GLOBAL_DEFAULT) == 0;
    /* the root: normalised, mapped */
    int root_rc = mcmd_root(&CMD, &cfg, ar.path, &path);
    if (root_rc != 0) {
        rc = root_rc == 2 ? AS_USAGE : rc;
        goto out;
    }
    if (cfg.identity_map[0]) {
        idm_err ie;
        if (idm_load(cfg.identity_map, &a.idm, &ie) != 0) {
            fprintf(stderr, "dualpipe assess: gen2.identity_map: %s\n", ie.message);
            goto out;
        }
    }
    if (!curl_on || httpc_start(0, &http, err, sizeof err) != 0 || gen1c_new(&cfg, http, &g1, err, sizeof err) != 0 ||
        gen2c_new(&cfg, http, &a.g2, err, sizeof err) != 0 || g1a_new(&cfg, http, &ident, err, sizeof err) != 0) {
        fprintf(stderr, "dualpipe assess: %s\n", err[0] ? err : "cannot start the HTTP engine");
        goto out;
    }
    gen1c_set_identity(g1, ident);
    mcmd_catch_signals();

    bool hadoop = cfg.gen1_dialect == CFG_DIALECT_HADOOP;
    /* the ETA: Gen1's own count of the tree (one request), when it answers */
    uint64_t hint = 0;
    if (!ar.no_progress && isatty(2)) {
        dbuf cs;
        dbuf_init(&cs, 65536);
        if (walk_gen1_get(g1, path, "op=GETCONTENTSUMMARY", 65536, &cs, err, sizeof err) == 200) {
            json_t *j = json_loads(cs.data, 0, NULL);
            json_t *s = json_object_get(j, "ContentSummary");
            hint = (uint64_t)(json_integer_value(json_object_get(s, "directoryCount")) +
                              json_integer_value(json_object_get(s, "fileCount")));
            json_decref(j);
        }
        dbuf_free(&cs);
    }
    walk_gen1 lg = {.g1 = g1, .hadoop = hadoop, .page = ar.page};
    walk_opts wo = {.root = path, .list = walk_gen1_lister, .lud = &lg, .g1 = g1, .threads = ar.threads,
                    .ops_per_s = ar.ops, .retries = ar.retries, .cursor = ar.cursor, .progress = !ar.no_progress,
                    .total_hint = hint, .stop = &mcmd_stop, .on_page = as_page, .save = as_save,
                    .load = as_load, .ud = &a};
    walk_stats ws;
    err[0] = 0;
    walk_result wr = walk_run(&wo, &ws, err, sizeof err);
    if (wr != WALK_DONE) {
        fprintf(stderr, "dualpipe assess: %s\n", err);
        goto out;
    }
    /* the journal */
    char jmsg[1200];
    struct stat jst;
    if (ar.no_journal) {
        snprintf(jmsg, sizeof jmsg, "not read (--no-journal)");
    } else if (stat(cfg.journal_dir, &jst) != 0 && errno == ENOENT) {
        /* assessing before the proxy ever ran: nothing to read, and nothing wrong */
        snprintf(jmsg, sizeof jmsg, "none at %s (the proxy has not run with this config)", cfg.journal_dir);
    } else {
        bool online = false;
        char jerr[600] = "";
        if (jcli_records(&cfg, ar.admin, as_record, &a, &online, jerr, sizeof jerr) != 0)
            snprintf(jmsg, sizeof jmsg, "not read: %s", jerr);
        else
            snprintf(jmsg, sizeof jmsg, "%s (%s): the records it still holds", cfg.journal_dir,
                     online ? "through the running daemon's admin port" : "read offline");
    }
    /* the estimate */
    double rr = read_rate(g1, a.largest, a.largest_len, hadoop);
    double lat = ws.requests ? ws.request_seconds / (double)ws.requests : 0;
    uint64_t files = 0, bytes = 0, total_problems = 0;
    json_t *maps = json_array();
    for (int i = 0; i < cfg.nmappings; i++) {
        json_t *m = mstat_json(&a.m[i]);
        json_object_set_new(m, "gen1_prefix", json_string(cfg.mappings[i].gen1_prefix));
        json_object_set_new(m, "filesystem", json_string(cfg.mappings[i].filesystem));
        json_object_set_new(m, "prefix", json_string(cfg.mappings[i].prefix));
        json_object_set_new(m, "small_file_share",
                            json_real(a.m[i].files ? (double)a.m[i].small / (double)a.m[i].files : 0));
        files += a.m[i].files;
        bytes += a.m[i].bytes;
        for (int k = 0; k < P_NKINDS; k++) total_problems += a.m[i].pcount[k];
        /* only mappings the walk touched */
        if (a.m[i].files || a.m[i].dirs || cfg_mapping_of(&cfg, path, NULL) == i) json_array_append_new(maps, m);
        else json_decref(m);
    }
    double est = (double)files * lat * 4 / (double)ar.threads + (rr > 0 ? (double)bytes / rr : 0);
    char basis[400];
    snprintf(basis, sizeof basis, "%" PRIu64 " files x 4 requests x %.1f ms mean Gen1 request time / %u threads + %"
             PRIu64 " bytes at the measured Gen1 read rate %.1f MiB/s%s", files, lat * 1000, ar.threads, bytes,
             rr / 1048576.0, rr > 0 ? "" : " (no file to measure it on)");
    json_t *hb = json_array();
    for (int k = 0; k < AS_NBUCKETS; k++) json_array_append_new(hb, json_string(bucket_name[k]));
    rep = json_pack("{s:s,s:s,s:o,s:o,s:{s:I,s:I,s:I,s:I,s:I,s:I,s:f,s:f,s:b},s:{s:f,s:f,s:f,s:s},s:s,s:I}",
                    "root", path, "gen1_dialect", hadoop ? "hadoop" : "adls", "size_buckets", hb, "mappings", maps,
                    "walk", "entries", (json_int_t)ws.entries, "files", (json_int_t)ws.files, "dirs",
                    (json_int_t)ws.dirs, "bytes", (json_int_t)ws.bytes, "requests", (json_int_t)ws.requests,
                    "retries", (json_int_t)ws.retries, "seconds", ws.seconds, "entries_per_s",
                    ws.seconds > 0 ? (double)ws.entries / ws.seconds : 0.0, "resumed", ws.resumed, "estimate",
                    "backfill_seconds", est, "gen1_read_bytes_per_s", rr, "gen1_request_seconds", lat, "basis",
                    basis, "journal", jmsg, "problems_total", (json_int_t)total_problems);
    if (!rep) {
        fprintf(stderr, "dualpipe assess: out of memory building the report\n");
        goto out;
    }
    print_text(rep, stdout);
    char *js = json_dumps(rep, JSON_INDENT(1) | JSON_SORT_KEYS);
    char *js_html = json_dumps(rep, JSON_COMPACT | JSON_ESCAPE_SLASH); /* "</script>" cannot end the data early */
    int werr = 0;
    if (ar.json && (!js || mcmd_write_line(ar.json, js) != 0)) {
        fprintf(stderr, "dualpipe assess: cannot write %s\n", ar.json);
        werr = 1;
    }
    if (ar.html && (!js_html || mcmd_write(ar.html, (const char *const[]){assess_html_head, js_html, assess_html_tail}, 3) != 0)) {
        fprintf(stderr, "dualpipe assess: cannot write %s\n", ar.html);
        werr = 1;
    }
    free(js);
    free(js_html);
    rc = werr ? AS_FAILED : total_problems ? AS_PROBLEMS : AS_OK;
out:
    json_decref(rep);
    g1a_stop(ident);
    if (a.g2) gen2c_stop(a.g2);
    if (http) httpc_stop(http);
    g1a_free(ident);
    gen1c_free(g1);
    if (a.g2) gen2c_free(a.g2);
    for (int i = 0; i < CFG_MAX_MAPPINGS; i++) mstat_free(&a.m[i]);
    idm_unref(a.idm);
    pthread_mutex_destroy(&a.mu);
    free(path);
    cfg_free(&cfg);
    if (curl_on) curl_global_cleanup();
    return rc;
}
