/*
 * cfg: loads the dualpipe configuration. One static const table (cfg_opts[]) lists every option: its
 * dotted JSON key, kind, bounds, default (as a JSON literal, parsed by the same code as the file's
 * values), the dp_config field it fills and an optional check hook. Loading applies every default,
 * walks the jansson document against the table (objects in between are branches of the key paths;
 * members named "//..." are comments), then checks required keys and the rules that span several
 * keys (auth mode, path-style default, listen addresses). The first error stops the load and names
 * the full key path. Secrets are never copied into a message; jansson's "near '...'" snippets are cut
 * from syntax errors because they may quote one; the file buffer and every string of the document
 * are wiped before they are freed. The syntax of single values (host:port, endpoints, sizes, paths,
 * names, "did you mean") is in cfg_syntax.c, behind the internal header cfg_int.h.
 */
#include "cfg.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "b64.h"
#include "cfg_int.h"

#define CFG_MAX_FILE (1u << 20)   /* a config file is small; refuse anything bigger */
#define CFG_MAX_SECRET 8192       /* SAS tokens are the longest secrets, a few hundred bytes */

typedef enum opt_kind {
    K_HOSTPORT, /* cfg_hostport from "host:port"; min/max bound the port */
    K_STRING,   /* char[size]: text without control characters */
    K_URL,      /* char[size]: http(s)://host[:port], normalised */
    K_PATH,     /* char[size]: file system path, relative to the config file's directory */
    K_UINT,     /* unsigned */
    K_SIZE,     /* uint64_t bytes: an integer or a string such as "16 MiB" */
    K_BOOL,     /* bool */
    K_ENUM,     /* an int-sized enum: index into names */
    K_SECRET,   /* cfg_secret: "<key>", "<key>_env" or "<key>_file" */
    K_MAPPINGS, /* gen2.mappings: array of objects */
    K_REWRITES, /* gen1.datanode_rewrite: object "host:port": "host:port" */
} opt_kind;

enum {
    F_REQUIRED = 1,  /* no default: the file must set it */
    F_URL_PATH = 2,  /* K_URL: a path after the authority is allowed */
    F_EMPTY_OK = 4,  /* K_URL, K_PATH: "" is allowed (means "not set"; journal.dir: finish() derives it) */
    F_DERIVED = 8,   /* default computed from other keys (gen2.path_style) */
    F_SHORTHAND = 16, /* its branch may be given as this option's value instead of an object ("phase":
                         "gen2-primary" is {"phase": {"initial": "gen2-primary"}}) */
};

typedef struct cfg_opt {
    const char *key;
    opt_kind kind;
    size_t off;               /* offsetof(dp_config, field) */
    size_t size;              /* sizeof the field (string buffers) */
    uint64_t min, max;        /* numbers: bounds; K_HOSTPORT: port bounds */
    const char *def;          /* JSON literal of the default; NULL: none */
    unsigned flags;
    const char *const *names; /* K_ENUM: names in value order, NULL-terminated */
    int (*check)(const char *value, char *msg, size_t msglen); /* strings: extra validation */
} cfg_opt;

typedef struct pctx {
    dp_config *c;
    cfg_err *err;
    const char *basedir; /* directory of the config file, NULL for cfg_load_text */
    bool phase_short;    /* "phase" was given as a string: errors about it name "phase" */
} pctx;

static const char *const phase_names[] = {"gen1-primary", "gen2-primary", "gen2-only", NULL};
static const char *const dialect_names[] = {"adls", "hadoop", NULL};
static const char *const auth_names[] = {"shared_key", "sas", "client_credentials", "managed_identity", NULL};
static const char *const g1auth_names[] = {"none", "bearer", "client_credentials", "hadoop", "kerberos", NULL};
static const char *const token_api_names[] = {"v1", "v2", NULL};
static const char *const unmapped_names[] = {"skip", "reject", NULL};
static const char *const unmapped_id_names[] = {"keep", "drop", "resync-later", NULL};
static const char *const level_names[] = {"error", "warn", "info", "debug", NULL};
static const char *const policy_names[] = {"degrade", "reject", NULL};
static const char *const io_names[] = {"auto", "io_uring", "threads", NULL}; /* iox_backend's order */
static const char *const ack_names[] = {"durable", "both", NULL};
static const char *const mapping_keys[] = {"gen1_prefix", "filesystem", "prefix", NULL};

#define FLD(f) offsetof(dp_config, f), sizeof(((dp_config *)0)->f)

/* phase.fleet_filesystem: "" (with phase.fleet true, the first mapping's: finish_phase fills it in) or
 * a filesystem name. */
static int check_fs_or_empty(const char *v, char *msg, size_t msglen)
{
    return v[0] ? cfg__check_filesystem(v, msg, msglen) : 0;
}

/* The options, in the order cfg_explain prints them. Defaults are JSON literals. */
static const cfg_opt cfg_opts[] = {
    {"listen", K_HOSTPORT, FLD(listen), 0, 65535, "\"127.0.0.1:14000\"", 0, NULL, NULL},
    {"public_url", K_URL, FLD(public_url), 0, 0, "\"\"", F_EMPTY_OK, NULL, NULL},
    {"limits.max_connections", K_UINT, FLD(max_connections), 1, 1048576, "1024", 0, NULL, NULL},
    {"limits.max_connections_per_client", K_UINT, FLD(max_connections_per_client), 0, 1048576, "0", 0, NULL, NULL},
    {"limits.max_header_bytes", K_UINT, FLD(max_header_bytes), 1024, 1048576, "32768", 0, NULL, NULL},
    {"limits.read_buffer_bytes", K_UINT, FLD(read_buffer_bytes), 16384, 16777216, "65536", 0, NULL, NULL},
    {"limits.max_body_bytes", K_SIZE, FLD(max_body_bytes), 1, TIB, "16777216", 0, NULL, NULL},
    {"limits.stream_buffer_bytes", K_SIZE, FLD(stream_buffer_bytes), 65536, GIB, "1048576", 0, NULL, NULL},
    {"limits.stream_memory_bytes", K_SIZE, FLD(stream_memory_bytes), 0, 64 * GIB, "4194304", 0, NULL, NULL},
    {"limits.idle_timeout_s", K_UINT, FLD(idle_timeout_s), 1, 86400, "60", 0, NULL, NULL},
    {"limits.request_timeout_s", K_UINT, FLD(request_timeout_s), 1, 86400, "300", 0, NULL, NULL},
    {"limits.threads", K_UINT, FLD(threads), 0, 1024, "0", 0, NULL, NULL},
    {"tls.cert_file", K_PATH, FLD(tls_cert_file), 0, 0, "\"\"", F_EMPTY_OK, NULL, NULL},
    {"tls.key_file", K_PATH, FLD(tls_key_file), 0, 0, "\"\"", F_EMPTY_OK, NULL, NULL},
    {"tls.client_ca_file", K_PATH, FLD(tls_client_ca_file), 0, 0, "\"\"", F_EMPTY_OK, NULL, NULL},
    {"admin.listen", K_HOSTPORT, FLD(admin_listen), 0, 65535, "\"127.0.0.1:14080\"", 0, NULL, NULL},
    {"phase.initial", K_ENUM, FLD(phase), 0, 0, "\"gen1-primary\"", F_SHORTHAND, phase_names, NULL},
    {"phase.fleet", K_BOOL, FLD(phase_fleet), 0, 0, "false", 0, NULL, NULL},
    {"phase.fleet_filesystem", K_STRING, FLD(phase_fleet_fs), 0, 0, "\"\"", 0, NULL, check_fs_or_empty},
    {"phase.fleet_dir", K_STRING, FLD(phase_fleet_dir), 0, 0, "\".dualpipe\"", 0, NULL, cfg__check_rel_dir},
    {"phase.member_id", K_STRING, FLD(phase_member_id), 0, 0, "\"\"", 0, NULL, cfg__check_member_id},
    {"phase.switch_timeout_ms", K_UINT, FLD(phase_switch_timeout_ms), 1000, 3600000, "30000", 0, NULL, NULL},
    {"phase.poll_ms", K_UINT, FLD(phase_poll_ms), 10, 60000, "250", 0, NULL, NULL},
    {"phase.heartbeat_ms", K_UINT, FLD(phase_heartbeat_ms), 100, 3600000, "10000", 0, NULL, NULL},
    {"gen2_only.workers", K_UINT, FLD(g2only_workers), 1, 1024, "32", 0, NULL, NULL},
    {"gen2_only.list_max_entries", K_UINT, FLD(g2only_list_max), 1000, 10000000, "100000", 0, NULL, NULL},
    {"gen2_only.trust_network", K_BOOL, FLD(g2only_trust_network), 0, 0, "false", 0, NULL, NULL},
    {"spool.dir", K_PATH, FLD(spool_dir), 0, 0, "\"/var/lib/dualpipe/spool\"", 0, NULL, NULL},
    {"spool.max_bytes", K_SIZE, FLD(spool_max_bytes), MIB, 1024 * TIB, "8589934592", 0, NULL, NULL},
    {"spool.policy", K_ENUM, FLD(spool_policy), 0, 0, "\"degrade\"", 0, policy_names, NULL},
    {"spool.segment_bytes", K_SIZE, FLD(spool_segment_bytes), MIB, TIB, "67108864", 0, NULL, NULL},
    {"journal.dir", K_PATH, FLD(journal_dir), 0, 0, "\"\"", F_EMPTY_OK, NULL, NULL},
    {"journal.io", K_ENUM, FLD(journal_io), 0, 0, "\"auto\"", 0, io_names, NULL},
    {"journal.segment_bytes", K_SIZE, FLD(journal_segment_bytes), MIB, 4 * GIB, "67108864", 0, NULL, NULL},
    {"journal.lazy_commit_ms", K_UINT, FLD(journal_lazy_ms), 1, 10000, "100", 0, NULL, NULL},
    {"journal.commit_wait_us", K_UINT, FLD(journal_commit_wait_us), 0, 100000, "4000", 0, NULL, NULL},
    {"journal.commit_batch", K_UINT, FLD(journal_commit_batch), 2, 65536, "32", 0, NULL, NULL},
    {"journal.verify_bodies", K_BOOL, FLD(journal_verify_bodies), 0, 0, "true", 0, NULL, NULL},
    {"ack", K_ENUM, FLD(ack), 0, 0, "\"durable\"", 0, ack_names, NULL},
    {"applier.concurrency", K_UINT, FLD(applier_concurrency), 1, 1024, "64", 0, NULL, NULL},
    {"applier.backoff_base_ms", K_UINT, FLD(applier_backoff_base_ms), 1, 600000, "500", 0, NULL, NULL},
    {"applier.backoff_cap_ms", K_UINT, FLD(applier_backoff_cap_ms), 1, 3600000, "30000", 0, NULL, NULL},
    {"applier.breaker_failures", K_UINT, FLD(applier_breaker_failures), 1, 1000, "5", 0, NULL, NULL},
    {"applier.breaker_probe_ms", K_UINT, FLD(applier_breaker_probe_ms), 100, 600000, "500", 0, NULL, NULL},
    {"applier.resync_attempts", K_UINT, FLD(applier_resync_attempts), 1, 100, "3", 0, NULL, NULL},
    {"applier.copy_part_bytes", K_SIZE, FLD(applier_copy_part_bytes), MIB, 4 * GIB, "67108864", 0, NULL, NULL},
    {"applier.max_in_memory", K_UINT, FLD(applier_max_in_memory), 16, 1000000, "8192", 0, NULL, NULL},
    {"applier.max_per_path", K_UINT, FLD(applier_max_per_path), 1, 1000000, "1024", 0, NULL, NULL},
    {"applier.digest_cache_entries", K_UINT, FLD(applier_digest_cache_entries), 0, 16777216, "65536", 0, NULL, NULL},
    {"applier.digest_interval_ms", K_UINT, FLD(applier_digest_interval_ms), 0, 86400000, "5000", 0, NULL, NULL},
    {"log.level", K_ENUM, FLD(log_level), 0, 0, "\"info\"", 0, level_names, NULL},
    {"shutdown.drain_ms", K_UINT, FLD(shutdown_drain_ms), 0, 600000, "5000", 0, NULL, NULL},
    {"gen1.endpoint", K_URL, FLD(gen1_endpoint), 0, 0, NULL, F_REQUIRED, NULL, NULL},
    {"gen1.dialect", K_ENUM, FLD(gen1_dialect), 0, 0, "\"adls\"", 0, dialect_names, NULL},
    {"gen1.datanode_rewrite", K_REWRITES, 0, 0, 0, 0, "{}", 0, NULL, NULL},
    {"gen1.connect_timeout_ms", K_UINT, FLD(gen1_connect_timeout_ms), 1, 600000, "5000", 0, NULL, NULL},
    {"gen1.timeout_ms", K_UINT, FLD(gen1_timeout_ms), 1, 86400000, "60000", 0, NULL, NULL},
    {"gen1.settle_ms", K_UINT, FLD(gen1_settle_ms), 0, 3600000, "10000", 0, NULL, NULL},
    {"gen1.auth.mode", K_ENUM, FLD(gen1_auth), 0, 0, "\"none\"", 0, g1auth_names, NULL},
    {"gen1.auth.token", K_SECRET, FLD(gen1_token), 0, 0, NULL, 0, NULL, NULL},
    {"gen1.auth.authority", K_URL, FLD(gen1_authority), 0, 0, "\"https://login.microsoftonline.com\"", F_URL_PATH,
     NULL, NULL},
    {"gen1.auth.token_api", K_ENUM, FLD(gen1_token_api), 0, 0, "\"v1\"", 0, token_api_names, NULL},
    {"gen1.auth.tenant_id", K_STRING, FLD(gen1_tenant), 0, 0, "\"\"", 0, NULL, NULL},
    {"gen1.auth.client_id", K_STRING, FLD(gen1_client_id), 0, 0, "\"\"", 0, NULL, NULL},
    {"gen1.auth.client_secret", K_SECRET, FLD(gen1_client_secret), 0, 0, NULL, 0, NULL, NULL},
    {"gen1.auth.resource", K_STRING, FLD(gen1_resource), 0, 0, "\"https://datalake.azure.net/\"", 0, NULL,
     cfg__check_nonempty},
    {"gen1.auth.scope", K_STRING, FLD(gen1_scope), 0, 0, "\"\"", 0, NULL, NULL},
    {"gen1.auth.refresh_margin_s", K_UINT, FLD(gen1_refresh_margin_s), 0, 3600, "300", 0, NULL, NULL},
    {"gen1.auth.user", K_STRING, FLD(gen1_user), 0, 0, "\"\"", 0, NULL, NULL},
    {"gen1.auth.doas", K_STRING, FLD(gen1_doas), 0, 0, "\"\"", 0, NULL, NULL},
    {"gen1.tls.ca_file", K_PATH, FLD(gen1_tls.ca_file), 0, 0, "\"\"", F_EMPTY_OK, NULL, NULL},
    {"gen1.tls.ca_path", K_PATH, FLD(gen1_tls.ca_path), 0, 0, "\"\"", F_EMPTY_OK, NULL, NULL},
    {"gen1.tls.cert_file", K_PATH, FLD(gen1_tls.cert_file), 0, 0, "\"\"", F_EMPTY_OK, NULL, NULL},
    {"gen1.tls.key_file", K_PATH, FLD(gen1_tls.key_file), 0, 0, "\"\"", F_EMPTY_OK, NULL, NULL},
    {"gen1.tls.insecure_skip_verify", K_BOOL, FLD(gen1_tls.insecure_skip_verify), 0, 0, "false", 0, NULL, NULL},
    {"gen2.endpoint", K_URL, FLD(gen2_endpoint), 0, 0, NULL, F_REQUIRED, NULL, NULL},
    {"gen2.path_style", K_BOOL, FLD(gen2_path_style), 0, 0, NULL, F_DERIVED, NULL, NULL},
    {"gen2.account", K_STRING, FLD(gen2_account), 0, 0, NULL, F_REQUIRED, NULL, cfg__check_account},
    {"gen2.version", K_STRING, FLD(gen2_version), 0, 0, "\"2021-06-08\"", 0, NULL, cfg__check_version},
    {"gen2.connect_timeout_ms", K_UINT, FLD(gen2_connect_timeout_ms), 1, 600000, "5000", 0, NULL, NULL},
    {"gen2.timeout_ms", K_UINT, FLD(gen2_timeout_ms), 1, 86400000, "60000", 0, NULL, NULL},
    {"gen2.unmapped", K_ENUM, FLD(unmapped), 0, 0, "\"skip\"", 0, unmapped_names, NULL},
    {"gen2.create_filesystems", K_BOOL, FLD(gen2_create_filesystems), 0, 0, "false", 0, NULL, NULL},
    {"gen2.identity_map", K_PATH, FLD(identity_map), 0, 0, "\"\"", F_EMPTY_OK, NULL, NULL},
    {"gen2.unmapped_identity", K_ENUM, FLD(unmapped_identity), 0, 0, "\"resync-later\"", 0, unmapped_id_names, NULL},
    {"gen2.mappings", K_MAPPINGS, 0, 0, 0, 0, NULL, F_REQUIRED, NULL, NULL},
    {"gen2.auth.mode", K_ENUM, FLD(gen2_auth), 0, 0, "\"shared_key\"", 0, auth_names, NULL},
    {"gen2.auth.account_key", K_SECRET, FLD(gen2_account_key), 0, 0, NULL, 0, NULL, NULL},
    {"gen2.auth.sas", K_SECRET, FLD(gen2_sas), 0, 0, NULL, 0, NULL, NULL},
    {"gen2.auth.tenant_id", K_STRING, FLD(oauth_tenant), 0, 0, "\"\"", 0, NULL, NULL},
    {"gen2.auth.client_id", K_STRING, FLD(oauth_client_id), 0, 0, "\"\"", 0, NULL, NULL},
    {"gen2.auth.client_secret", K_SECRET, FLD(oauth_client_secret), 0, 0, NULL, 0, NULL, NULL},
    {"gen2.auth.authority", K_URL, FLD(oauth_authority), 0, 0, "\"https://login.microsoftonline.com\"",
     F_URL_PATH, NULL, NULL},
    {"gen2.auth.resource", K_STRING, FLD(oauth_resource), 0, 0, "\"https://storage.azure.com/\"", 0, NULL,
     cfg__check_nonempty},
    {"gen2.auth.imds_endpoint", K_URL, FLD(imds_endpoint), 0, 0,
     "\"http://169.254.169.254/metadata/identity/oauth2/token\"", F_URL_PATH, NULL, NULL},
    {"gen2.auth.refresh_margin_s", K_UINT, FLD(token_refresh_margin_s), 0, 3600, "300", 0, NULL, NULL},
    {"gen2.tls.ca_file", K_PATH, FLD(gen2_tls.ca_file), 0, 0, "\"\"", F_EMPTY_OK, NULL, NULL},
    {"gen2.tls.ca_path", K_PATH, FLD(gen2_tls.ca_path), 0, 0, "\"\"", F_EMPTY_OK, NULL, NULL},
    {"gen2.tls.insecure_skip_verify", K_BOOL, FLD(gen2_tls.insecure_skip_verify), 0, 0, "false", 0, NULL, NULL},
};
#define NOPTS (sizeof cfg_opts / sizeof cfg_opts[0])
_Static_assert(NOPTS <= CFG_MAX_OPTIONS, "dp_config.cfg_given is too small for cfg_opts");
_Static_assert(sizeof(cfg_phase) == sizeof(int) && sizeof(cfg_dialect) == sizeof(int) &&
                   sizeof(cfg_auth_mode) == sizeof(int) && sizeof(cfg_unmapped) == sizeof(int) && sizeof(cfg_unmapped_id) == sizeof(int) &&
                   sizeof(cfg_spool_policy) == sizeof(int) && sizeof(cfg_io) == sizeof(int) &&
                   sizeof(cfg_ack) == sizeof(int) && sizeof(cfg_g1auth_mode) == sizeof(int) &&
                   sizeof(cfg_token_api) == sizeof(int),
               "K_ENUM fields are stored as int");

static const char *const secret_suffix[] = {"", "_env", "_file"};

/* ---------------------------------------------------------------- errors and small helpers */

static int fail(pctx *p, const char *path, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fail(pctx *p, const char *path, const char *fmt, ...)
{
    snprintf(p->err->path, sizeof p->err->path, "%s", path);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err->message, sizeof p->err->message, fmt, ap);
    va_end(ap);
    return -1;
}

/* Copy user text for a message or key path: printable ASCII kept, anything else '?', bounded. */
static void safe_text(char *dst, size_t cap, const char *src, size_t max)
{
    size_t n = 0;
    for (; src[n] && n < max && n + 4 < cap; n++) {
        unsigned char ch = (unsigned char)src[n];
        dst[n] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
    }
    if (src[n] && n + 4 <= cap) {
        memcpy(dst + n, "...", 3);
        n += 3;
    }
    dst[n] = '\0';
}

/* "prefix.name" (or "name" at the top), names made printable. */
static void join_path(char *dst, size_t cap, const char *prefix, const char *name)
{
    char nm[128];
    safe_text(nm, sizeof nm, name, 100);
    snprintf(dst, cap, "%.150s%s%s", prefix, prefix[0] ? "." : "", nm);
}

static bool has_ctl(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) return true;
    return false;
}

static bool is_comment(const char *name) { return strncmp(name, "//", 2) == 0; }

static void *field(dp_config *c, const cfg_opt *o) { return (char *)c + o->off; }
static const void *cfield(const dp_config *c, const cfg_opt *o) { return (const char *)c + o->off; }

static const char *leaf(const char *key)
{
    const char *d = strrchr(key, '.');
    return d ? d + 1 : key;
}

static int fail_unknown(pctx *p, const char *path, const char *name, cfg__suggest *s)
{
    if (s->best[0]) return fail(p, path, "unknown key (did you mean %s?)", s->best);
    return fail(p, path, "unknown key");
}

/* Unknown member NAME of the table branch PREFIX: suggest the closest child key. */
static int unknown_key(pctx *p, const char *path, const char *prefix, const char *name)
{
    cfg__suggest s = {"", 99};
    size_t pl = strlen(prefix);
    for (size_t i = 0; i < NOPTS; i++) {
        const char *k = cfg_opts[i].key;
        if (pl) {
            if (strncmp(k, prefix, pl) != 0 || k[pl] != '.') continue;
            k += pl + 1;
        }
        size_t seg = strcspn(k, ".");
        cfg__suggest_try(&s, name, k, seg);
        if (cfg_opts[i].kind == K_SECRET && k[seg] == '\0') {
            for (int v = 1; v < 3; v++) {
                char buf[64];
                snprintf(buf, sizeof buf, "%s%s", k, secret_suffix[v]);
                cfg__suggest_try(&s, name, buf, strlen(buf));
            }
        }
    }
    return fail_unknown(p, path, name, &s);
}

/* ---------------------------------------------------------------- kinds */

static int get_string(pctx *p, const char *path, const json_t *v, size_t cap, const char **out)
{
    if (!json_is_string(v)) return fail(p, path, "must be a string");
    size_t n = json_string_length(v);
    if (n >= cap) return fail(p, path, "too long (at most %zu bytes)", cap - 1);
    if (has_ctl(json_string_value(v), n)) return fail(p, path, "must not contain control characters");
    *out = json_string_value(v);
    return 0;
}

static int set_string(pctx *p, const char *path, const json_t *v, char *dst, size_t cap,
                      int (*check)(const char *, char *, size_t))
{
    const char *s = NULL;
    if (get_string(p, path, v, cap, &s) < 0) return -1;
    char msg[256];
    if (check && check(s, msg, sizeof msg) < 0) return fail(p, path, "%s", msg);
    memcpy(dst, s, strlen(s) + 1);
    return 0;
}

static int set_url(pctx *p, const cfg_opt *o, const char *path, const json_t *v)
{
    const char *s;
    if (get_string(p, path, v, o->size, &s) < 0) return -1;
    char *dst = field(p->c, o);
    if (s[0] == '\0' && (o->flags & F_EMPTY_OK)) {
        dst[0] = '\0';
        return 0;
    }
    cfg__url_parts u;
    char msg[256];
    if (cfg__url_parse(s, o->flags & F_URL_PATH, &u, msg, sizeof msg) < 0) return fail(p, path, "%s", msg);
    if (cfg__url_format(&u, dst, o->size) < 0) return fail(p, path, "too long (at most %zu bytes)", o->size - 1);
    return 0;
}

static int set_enum(pctx *p, const cfg_opt *o, const char *path, const json_t *v)
{
    char list[200] = "";
    size_t ll = 0;
    for (int i = 0; o->names[i]; i++) {
        if (json_is_string(v) && strcmp(json_string_value(v), o->names[i]) == 0) {
            *(int *)field(p->c, o) = i;
            return 0;
        }
        int n = snprintf(list + ll, sizeof list - ll, "%s%s", i ? ", " : "", o->names[i]);
        if (n > 0 && (size_t)n < sizeof list - ll) ll += (size_t)n;
    }
    if (!json_is_string(v)) return fail(p, path, "must be a string, one of %s", list);
    char got[80];
    safe_text(got, sizeof got, json_string_value(v), 64);
    return fail(p, path, "must be one of %s (got \"%s\")", list, got);
}

static int set_number(pctx *p, const cfg_opt *o, const char *path, const json_t *v)
{
    uint64_t n;
    if (o->kind == K_SIZE) {
        if (cfg__size_parse(v, &n) < 0)
            return fail(p, path, "must be a byte count: an integer or a string like \"16 MiB\" (KiB, MiB, GiB, TiB)");
    } else {
        if (!json_is_integer(v)) return fail(p, path, "must be an integer");
        json_int_t i = json_integer_value(v);
        n = i < 0 ? UINT64_MAX : (uint64_t)i;
        if (i < 0) goto bounds;
    }
    if (n < o->min || n > o->max) goto bounds;
    if (o->kind == K_SIZE) *(uint64_t *)field(p->c, o) = n;
    else *(unsigned *)field(p->c, o) = (unsigned)n;
    return 0;
bounds:
    return fail(p, path, "must be from %llu to %llu", (unsigned long long)o->min, (unsigned long long)o->max);
}

static int set_path(pctx *p, const cfg_opt *o, const char *path, const json_t *v)
{
    const char *s;
    if (get_string(p, path, v, o->size, &s) < 0) return -1;
    if (!s[0] && (o->flags & F_EMPTY_OK)) {
        ((char *)field(p->c, o))[0] = '\0';
        return 0;
    }
    if (!s[0]) return fail(p, path, "must not be empty");
    if (cfg__path_resolve(p->basedir, s, field(p->c, o), o->size) < 0)
        return fail(p, path, "too long once resolved (at most %zu bytes)", o->size - 1);
    return 0;
}

/* Read the first line of a secret file: a regular file, at most CFG_MAX_SECRET bytes on that line. */
static int read_secret_file(pctx *p, const char *path, const char *file, char **out)
{
    char buf[CFG_MAX_SECRET + 2];
    int rc = -1;
    ssize_t got = 0;
    int fd = open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) return fail(p, path, "cannot read %s: %s", file, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        fail(p, path, "%s is not a regular file", file);
        goto out;
    }
    while ((size_t)got < sizeof buf) {
        ssize_t r = read(fd, buf + got, sizeof buf - (size_t)got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            fail(p, path, "cannot read %s: %s", file, strerror(errno));
            goto out;
        }
        if (r == 0) break;
        got += r;
        if (memchr(buf, '\n', (size_t)got)) break;
    }
    char *nl = memchr(buf, '\n', (size_t)got);
    size_t n = nl ? (size_t)(nl - buf) : (size_t)got;
    if (n > 0 && buf[n - 1] == '\r') n--;
    if (n > CFG_MAX_SECRET) {
        fail(p, path, "the first line of %s is longer than %d bytes", file, CFG_MAX_SECRET);
        goto out;
    }
    if (n == 0) {
        fail(p, path, "the first line of %s is empty", file);
        goto out;
    }
    if (has_ctl(buf, n)) {
        fail(p, path, "the first line of %s contains control characters", file);
        goto out;
    }
    *out = strndup(buf, n);
    if (!*out) {
        fail(p, path, "out of memory");
        goto out;
    }
    rc = 0;
out:
    explicit_bzero(buf, sizeof buf);
    close(fd);
    return rc;
}

/* variant 0: inline value, 1: "_env" names a variable, 2: "_file" names a file. */
static int set_secret(pctx *p, const cfg_opt *o, int variant, const char *path, const json_t *v)
{
    cfg_secret *s = field(p->c, o);
    const char *lf = leaf(o->key);
    if (s->source[0])
        return fail(p, path, "give only one of %s, %s_env and %s_file", lf, lf, lf);
    if (!json_is_string(v)) return fail(p, path, "must be a string");
    const char *str = json_string_value(v);
    size_t n = json_string_length(v);
    if (variant == 0) {
        if (n == 0) return fail(p, path, "must not be empty");
        if (n > CFG_MAX_SECRET) return fail(p, path, "too long (at most %d bytes)", CFG_MAX_SECRET);
        if (has_ctl(str, n)) return fail(p, path, "must not contain control characters");
        s->value = strndup(str, n);
        if (!s->value) return fail(p, path, "out of memory");
        snprintf(s->source, sizeof s->source, "inline");
        return 0;
    }
    if (variant == 1) {
        if (!cfg__env_name_ok(str)) return fail(p, path, "must be an environment variable name ([A-Za-z_][A-Za-z0-9_]*)");
        const char *e = getenv(str);
        if (!e) return fail(p, path, "environment variable %s is not set", str);
        size_t el = strlen(e);
        if (el == 0) return fail(p, path, "environment variable %s is empty", str);
        if (el > CFG_MAX_SECRET)
            return fail(p, path, "environment variable %s is longer than %d bytes", str, CFG_MAX_SECRET);
        if (has_ctl(e, el)) return fail(p, path, "environment variable %s contains control characters", str);
        s->value = strndup(e, el);
        if (!s->value) return fail(p, path, "out of memory");
        snprintf(s->source, sizeof s->source, "env %s", str);
        return 0;
    }
    char file[300];
    if (n == 0) return fail(p, path, "must not be empty");
    if (has_ctl(str, n)) return fail(p, path, "must not contain control characters");
    if (cfg__path_resolve(p->basedir, str, file, sizeof file) < 0)
        return fail(p, path, "file name too long (at most %zu bytes)", sizeof file - 1);
    if (read_secret_file(p, path, file, &s->value) < 0) return -1;
    snprintf(s->source, sizeof s->source, "file %s", file);
    snprintf(s->file, sizeof s->file, "%s", file);
    return 0;
}

static int set_rewrites(pctx *p, const char *path, const json_t *v)
{
    if (!json_is_object(v)) return fail(p, path, "must be an object of \"host:port\": \"host:port\"");
    dp_config *c = p->c;
    c->gen1_nrewrites = 0;
    const char *k;
    json_t *to;
    json_object_foreach((json_t *)v, k, to) {
        if (is_comment(k)) continue;
        char ep[300], ks[128], msg[256];
        safe_text(ks, sizeof ks, k, 100);
        snprintf(ep, sizeof ep, "%s[\"%s\"]", path, ks);
        if (c->gen1_nrewrites >= CFG_MAX_REWRITES) return fail(p, path, "at most %d rewrites", CFG_MAX_REWRITES);
        cfg_rewrite *rw = &c->gen1_rewrites[c->gen1_nrewrites];
        cfg_hostport hp;
        if (strlen(k) >= sizeof rw->from || cfg__hostport_parse(k, 1, 65535, &hp, msg, sizeof msg) < 0)
            return fail(p, ep, "the key must be the data node's host:port (port 1 to 65535)");
        const char *ts;
        if (get_string(p, ep, to, sizeof rw->to, &ts) < 0) return -1;
        if (cfg__hostport_parse(ts, 1, 65535, &hp, msg, sizeof msg) < 0) return fail(p, ep, "%s", msg);
        memcpy(rw->from, k, strlen(k) + 1);
        memcpy(rw->to, ts, strlen(ts) + 1);
        c->gen1_nrewrites++;
    }
    return 0;
}

static int set_mapping(pctx *p, const char *path, const json_t *v, cfg_mapping *m)
{
    if (!json_is_object(v)) return fail(p, path, "must be an object {\"gen1_prefix\", \"filesystem\", \"prefix\"}");
    bool have[3] = {false, false, false};
    const char *k;
    json_t *mv;
    json_object_foreach((json_t *)v, k, mv) {
        if (is_comment(k)) continue;
        char ep[300];
        join_path(ep, sizeof ep, path, k);
        int rc;
        if (strcmp(k, "gen1_prefix") == 0) {
            rc = set_string(p, ep, mv, m->gen1_prefix, sizeof m->gen1_prefix, cfg__check_gen1_prefix);
            have[0] = true;
        } else if (strcmp(k, "filesystem") == 0) {
            rc = set_string(p, ep, mv, m->filesystem, sizeof m->filesystem, cfg__check_filesystem);
            have[1] = true;
        } else if (strcmp(k, "prefix") == 0) {
            rc = set_string(p, ep, mv, m->prefix, sizeof m->prefix, cfg__check_prefix);
            have[2] = true;
        } else {
            cfg__suggest s = {"", 99};
            for (int i = 0; mapping_keys[i]; i++) cfg__suggest_try(&s, k, mapping_keys[i], strlen(mapping_keys[i]));
            rc = fail_unknown(p, ep, k, &s);
        }
        if (rc < 0) return -1;
    }
    for (int i = 0; i < 2; i++) {
        if (!have[i]) {
            char ep[300];
            join_path(ep, sizeof ep, path, mapping_keys[i]);
            return fail(p, ep, "required key is missing");
        }
    }
    return 0;
}

static int set_mappings(pctx *p, const char *path, const json_t *v)
{
    if (!json_is_array(v)) return fail(p, path, "must be an array of mappings");
    dp_config *c = p->c;
    size_t n = json_array_size(v);
    if (n == 0) return fail(p, path, "needs at least one mapping");
    if (n > CFG_MAX_MAPPINGS) return fail(p, path, "at most %d mappings", CFG_MAX_MAPPINGS);
    memset(c->mappings, 0, sizeof c->mappings);
    for (size_t i = 0; i < n; i++) {
        char ep[300];
        snprintf(ep, sizeof ep, "%s[%zu]", path, i);
        if (set_mapping(p, ep, json_array_get(v, i), &c->mappings[i]) < 0) return -1;
        for (size_t j = 0; j < i; j++) {
            if (strcmp(c->mappings[j].gen1_prefix, c->mappings[i].gen1_prefix) == 0) {
                char ep2[320];
                snprintf(ep2, sizeof ep2, "%s.gen1_prefix", ep);
                return fail(p, ep2, "duplicate: %s[%zu] already maps this prefix", path, j);
            }
        }
    }
    c->nmappings = (int)n;
    return 0;
}

static int apply(pctx *p, const cfg_opt *o, int variant, const char *path, const json_t *v)
{
    dp_config *c = p->c;
    switch (o->kind) {
    case K_HOSTPORT: {
        const char *s;
        char msg[256];
        if (get_string(p, path, v, 300, &s) < 0) return -1;
        if (cfg__hostport_parse(s, (long)o->min, (long)o->max, field(c, o), msg, sizeof msg) < 0)
            return fail(p, path, "%s", msg);
        return 0;
    }
    case K_STRING: return set_string(p, path, v, field(c, o), o->size, o->check);
    case K_URL: return set_url(p, o, path, v);
    case K_PATH: return set_path(p, o, path, v);
    case K_UINT:
    case K_SIZE: return set_number(p, o, path, v);
    case K_BOOL:
        if (!json_is_boolean(v)) return fail(p, path, "must be true or false");
        *(bool *)field(c, o) = json_is_true(v);
        return 0;
    case K_ENUM: return set_enum(p, o, path, v);
    case K_SECRET: return set_secret(p, o, variant, path, v);
    case K_MAPPINGS: return set_mappings(p, path, v);
    case K_REWRITES: return set_rewrites(p, path, v);
    }
    return fail(p, path, "internal: unknown option kind");
}

/* ---------------------------------------------------------------- the walk */

static int find_opt(const char *key, int *variant)
{
    for (size_t i = 0; i < NOPTS; i++) {
        if (strcmp(cfg_opts[i].key, key) == 0) {
            *variant = 0;
            return (int)i;
        }
    }
    size_t kl = strlen(key);
    for (int v = 1; v < 3; v++) {
        size_t sl = strlen(secret_suffix[v]);
        if (kl <= sl || strcmp(key + kl - sl, secret_suffix[v]) != 0) continue;
        for (size_t i = 0; i < NOPTS; i++) {
            if (cfg_opts[i].kind == K_SECRET && strlen(cfg_opts[i].key) == kl - sl &&
                strncmp(cfg_opts[i].key, key, kl - sl) == 0) {
                *variant = v;
                return (int)i;
            }
        }
    }
    return -1;
}

static bool is_branch(const char *key)
{
    size_t kl = strlen(key);
    for (size_t i = 0; i < NOPTS; i++)
        if (strncmp(cfg_opts[i].key, key, kl) == 0 && cfg_opts[i].key[kl] == '.') return true;
    return false;
}

/* The option a branch given as a plain value stands for (F_SHORTHAND, a direct child), or -1. */
static int shorthand_of(const char *branch)
{
    size_t bl = strlen(branch);
    for (size_t i = 0; i < NOPTS; i++) {
        const char *k = cfg_opts[i].key;
        if ((cfg_opts[i].flags & F_SHORTHAND) && strncmp(k, branch, bl) == 0 && k[bl] == '.' &&
            !strchr(k + bl + 1, '.'))
            return (int)i;
    }
    return -1;
}

static int walk(pctx *p, const json_t *obj, const char *prefix)
{
    const char *name;
    json_t *v;
    json_object_foreach((json_t *)obj, name, v) {
        if (is_comment(name)) continue;
        char path[300], key[256];
        join_path(path, sizeof path, prefix, name);
        int n = snprintf(key, sizeof key, "%s%s%s", prefix, prefix[0] ? "." : "", name);
        int variant = 0, idx = -1;
        if (n > 0 && (size_t)n < sizeof key) idx = find_opt(key, &variant);
        if (idx >= 0) {
            p->c->cfg_given[idx] = 1;
            if (apply(p, &cfg_opts[idx], variant, path, v) < 0) return -1;
        } else if (n > 0 && (size_t)n < sizeof key && is_branch(key)) {
            if (!json_is_object(v)) {
                int s = shorthand_of(key);
                if (s < 0) return fail(p, path, "must be an object");
                if (!json_is_string(v))
                    return fail(p, path, "must be a string (the same as %s) or an object", cfg_opts[s].key);
                p->c->cfg_given[s] = 1;
                if (strcmp(key, "phase") == 0) p->phase_short = true;
                if (apply(p, &cfg_opts[s], 0, path, v) < 0) return -1;
                continue;
            }
            if (walk(p, v, key) < 0) return -1;
        } else {
            return unknown_key(p, path, prefix, name);
        }
    }
    return 0;
}

/* ---------------------------------------------------------------- rules across keys */

/* A secret key of an auth branch and the modes (bit set of mode values) that use it. */
typedef struct mode_secret {
    const char *key;
    size_t off;
    unsigned used_by;
} mode_secret;

/* Each secret the mode (value mode, spelled name, of key mode_key) uses must be given; any other is an
 * error. Returns 0 or -1 (fail). */
static int check_mode_secrets(pctx *p, const mode_secret *secrets, size_t n, int mode, const char *mode_key,
                              const char *name)
{
    for (size_t i = 0; i < n; i++) {
        const cfg_secret *s = (const cfg_secret *)((const char *)p->c + secrets[i].off);
        bool used = secrets[i].used_by & (1u << mode);
        const char *lf = leaf(secrets[i].key);
        if (used && !s->value)
            return fail(p, secrets[i].key, "required with %s %s (give %s, %s_env or %s_file)", mode_key, name, lf, lf,
                        lf);
        if (!used && s->value) return fail(p, secrets[i].key, "not used with %s %s; remove it", mode_key, name);
    }
    return 0;
}

/* gen1.auth: each mode's required keys; secrets and settings of another mode are errors (a key that
 * would silently do nothing is a mistake the operator wants to hear about). */
static int finish_gen1_auth(pctx *p)
{
    dp_config *c = p->c;
    const char *mode = g1auth_names[c->gen1_auth];
    if (c->gen1_auth == CFG_G1AUTH_KERBEROS)
        return fail(p, "gen1.auth.mode", "kerberos (SPNEGO) is not supported yet; use bearer, client_credentials, "
                                         "hadoop or none");
    static const mode_secret secrets[] = {
        {"gen1.auth.token", offsetof(dp_config, gen1_token), 1u << CFG_G1AUTH_BEARER},
        {"gen1.auth.client_secret", offsetof(dp_config, gen1_client_secret), 1u << CFG_G1AUTH_CLIENT_CREDENTIALS},
    };
    if (check_mode_secrets(p, secrets, sizeof secrets / sizeof secrets[0], (int)c->gen1_auth, "gen1.auth.mode", mode))
        return -1;
    if (c->gen1_auth == CFG_G1AUTH_CLIENT_CREDENTIALS) {
        if (!c->gen1_tenant[0]) return fail(p, "gen1.auth.tenant_id", "required with gen1.auth.mode client_credentials");
        if (!c->gen1_client_id[0])
            return fail(p, "gen1.auth.client_id", "required with gen1.auth.mode client_credentials");
    }
    if (c->gen1_auth == CFG_G1AUTH_HADOOP && !c->gen1_user[0])
        return fail(p, "gen1.auth.user", "required with gen1.auth.mode hadoop (the user.name the proxy sends)");
    if (c->gen1_auth != CFG_G1AUTH_HADOOP && (c->gen1_user[0] || c->gen1_doas[0]))
        return fail(p, c->gen1_user[0] ? "gen1.auth.user" : "gen1.auth.doas",
                    "only used with gen1.auth.mode hadoop (mode is %s); remove it", mode);
    return 0;
}

/* phase.*: the fleet's keys are used only with phase.fleet true (a non-default value otherwise would
 * silently do nothing), the fleet's filesystem defaults to the first mapping's, and the intervals
 * must leave a switch time to be seen by every member. */
static int finish_phase(pctx *p)
{
    dp_config *c = p->c;
    if (!c->phase_fleet && c->phase_fleet_fs[0])
        return fail(p, "phase.fleet_filesystem", "only used with phase.fleet true (the record is kept on Gen2); "
                                                 "remove it, or set phase.fleet");
    if (!c->phase_fleet && strcmp(c->phase_fleet_dir, ".dualpipe") != 0)
        return fail(p, "phase.fleet_dir", "only used with phase.fleet true (the record is kept on Gen2); remove it, "
                                          "or set phase.fleet");
    /* the fleet's directory is one dualpipe hides from listings and keeps writers out of (common/base/reserved.h) */
    if (strncmp(c->phase_fleet_dir, ".dualpipe", 9) != 0 || (c->phase_fleet_dir[9] && c->phase_fleet_dir[9] != '/'))
        return fail(p, "phase.fleet_dir", "must be .dualpipe or a directory under it (e.g. .dualpipe/fleet-a): that "
                                          "name is hidden from listings and refused to writers, the record's is not");
    if (c->phase_fleet && !c->phase_fleet_fs[0] && c->nmappings > 0)
        memcpy(c->phase_fleet_fs, c->mappings[0].filesystem, sizeof c->phase_fleet_fs);
    if (c->phase_heartbeat_ms < c->phase_poll_ms)
        return fail(p, "phase.heartbeat_ms", "must be at least phase.poll_ms (%u)", c->phase_poll_ms);
    if ((uint64_t)c->phase_switch_timeout_ms < 4ull * c->phase_poll_ms)
        return fail(p, "phase.switch_timeout_ms",
                    "must be at least 4 times phase.poll_ms (%u): every member must see the switch and report",
                    c->phase_poll_ms);
    return 0;
}

static int finish(pctx *p)
{
    dp_config *c = p->c;
    /* Phase gen2-only serves the Gen1 API on Gen2 alone: Gen1 may be gone from the configuration too. */
    bool no_gen1 = c->phase == CFG_PHASE_GEN2_ONLY && !c->gen1_endpoint[0];
    for (size_t i = 0; i < NOPTS; i++)
        if ((cfg_opts[i].flags & F_REQUIRED) && !c->cfg_given[i] &&
            !(no_gen1 && strcmp(cfg_opts[i].key, "gen1.endpoint") == 0))
            return fail(p, cfg_opts[i].key, "required key is missing");

    cfg__url_parts u;
    char msg[256];
    if (!no_gen1) {
        if (cfg__url_parse(c->gen1_endpoint, false, &u, msg, sizeof msg) < 0)
            return fail(p, "gen1.endpoint", "%s", msg);
        c->gen1_addr = u.hp;
        c->gen1_https = u.https;
    }
    if (cfg__url_parse(c->gen2_endpoint, false, &u, msg, sizeof msg) < 0) return fail(p, "gen2.endpoint", "%s", msg);
    c->gen2_addr = u.hp;
    c->gen2_https = u.https;

    int ps = -1;
    for (size_t i = 0; i < NOPTS; i++)
        if (cfg_opts[i].flags & F_DERIVED) ps = (int)i;
    if (ps >= 0 && !c->cfg_given[ps]) c->gen2_path_style = cfg__is_ip_or_localhost(c->gen2_addr.host);

    /* journal.dir "" (the default): the journal lives beside the bodies, under spool.dir. */
    if (!c->journal_dir[0]) {
        int n = snprintf(c->journal_dir, sizeof c->journal_dir, "%s/journal", c->spool_dir);
        if (n < 0 || (size_t)n >= sizeof c->journal_dir)
            return fail(p, "journal.dir", "the default (spool.dir + \"/journal\") is too long; set journal.dir");
    }
    if (c->applier_backoff_cap_ms < c->applier_backoff_base_ms)
        return fail(p, "applier.backoff_cap_ms", "must be at least applier.backoff_base_ms (%u)",
                    c->applier_backoff_base_ms);

    if (!c->tls_cert_file[0] != !c->tls_key_file[0])
        return fail(p, c->tls_cert_file[0] ? "tls.key_file" : "tls.cert_file",
                    "tls.cert_file and tls.key_file go together (both set: HTTPS front; neither: plain HTTP)");
    if (c->tls_client_ca_file[0] && !c->tls_cert_file[0])
        return fail(p, "tls.client_ca_file", "needs an HTTPS front (tls.cert_file and tls.key_file)");
    if (!c->gen1_tls.cert_file[0] != !c->gen1_tls.key_file[0])
        return fail(p, c->gen1_tls.cert_file[0] ? "gen1.tls.key_file" : "gen1.tls.cert_file",
                    "gen1.tls.cert_file and gen1.tls.key_file go together");

    /* In gen2-only and gen2-primary no Gen1 checks who the writer is: every request acts with the
     * proxy's own Gen2 identity (gen2-primary mirrors to Gen1 with the proxy's Gen1 identity too). Only
     * a sidecar's loopback, client certificates or an explicit word let writers in. */
    if ((c->phase == CFG_PHASE_GEN2_ONLY || c->phase == CFG_PHASE_GEN2_PRIMARY) && !cfg__is_loopback(c->listen.host) &&
        !c->tls_client_ca_file[0] && !c->g2only_trust_network)
        return fail(p, p->phase_short ? "phase" : "phase.initial",
                    "%s serves every writer with the proxy's own Gen2 identity and no Gen1 to check who "
                    "they are: listen on a loopback address (a sidecar), require client certificates "
                    "(tls.client_ca_file), or set gen2_only.trust_network to true when the network in front of "
                    "the proxy decides who may write (listen is %s)",
                    cfg_phase_name(c->phase), c->listen.host);

    if (finish_phase(p) < 0) return -1;

    if (c->admin_listen.port != 0 && c->admin_listen.port == c->listen.port &&
        strcmp(c->admin_listen.host, c->listen.host) == 0)
        return fail(p, "admin.listen", "must differ from listen");

    /* Auth: the mode's required keys, and no secret the mode does not use. */
    static const mode_secret secrets[] = {
        {"gen2.auth.account_key", offsetof(dp_config, gen2_account_key), 1u << CFG_AUTH_SHARED_KEY},
        {"gen2.auth.sas", offsetof(dp_config, gen2_sas), 1u << CFG_AUTH_SAS},
        {"gen2.auth.client_secret", offsetof(dp_config, oauth_client_secret), 1u << CFG_AUTH_CLIENT_CREDENTIALS},
    };
    if (check_mode_secrets(p, secrets, sizeof secrets / sizeof secrets[0], (int)c->gen2_auth, "gen2.auth.mode",
                           auth_names[c->gen2_auth]))
        return -1;
    if (c->gen2_auth == CFG_AUTH_SHARED_KEY) {
        unsigned char key[CFG_MAX_SECRET];
        long kl = b64_decode(c->gen2_account_key.value, strlen(c->gen2_account_key.value), key, sizeof key);
        explicit_bzero(key, sizeof key);
        if (kl <= 0)
            return fail(p, "gen2.auth.account_key", "is not valid base64 (secret from %s)", c->gen2_account_key.source);
    }
    if (c->gen2_auth == CFG_AUTH_SAS) {
        char *v = c->gen2_sas.value;
        if (v[0] == '?') memmove(v, v + 1, strlen(v));
        if (!(strncmp(v, "sig=", 4) == 0 || strstr(v, "&sig=")))
            return fail(p, "gen2.auth.sas", "does not look like a SAS token: no sig= parameter (secret from %s)",
                        c->gen2_sas.source);
    }
    if (finish_gen1_auth(p) < 0) return -1;
    if (c->gen2_auth == CFG_AUTH_CLIENT_CREDENTIALS) {
        if (!c->oauth_tenant[0])
            return fail(p, "gen2.auth.tenant_id", "required with gen2.auth.mode client_credentials");
        if (!c->oauth_client_id[0])
            return fail(p, "gen2.auth.client_id", "required with gen2.auth.mode client_credentials");
    }
    return 0;
}

/* ---------------------------------------------------------------- loading */

/* Overwrite every string of the document before it is freed: inline secrets live there. The depth
 * is bounded by jansson's parser (JSON_PARSER_MAX_DEPTH). */
static void wipe_json(json_t *j)
{
    if (json_is_string(j)) {
        explicit_bzero((char *)json_string_value(j), json_string_length(j));
    } else if (json_is_object(j)) {
        const char *k;
        json_t *v;
        json_object_foreach(j, k, v) wipe_json(v);
    } else if (json_is_array(j)) {
        size_t i;
        json_t *v;
        json_array_foreach(j, i, v) wipe_json(v);
    }
}

static int load(const char *text, size_t len, const char *basedir, dp_config *out, cfg_err *err)
{
    memset(out, 0, sizeof *out);
    memset(err, 0, sizeof *err);
    pctx p = {out, err, basedir, false};
    int rc = -1;
    json_error_t je;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        /* jansson appends "near '<token>'": the token may be (part of) an inline secret. Key names in
         * duplicate-key errors are not secret and are the useful part, so those keep it. */
        char t[JSON_ERROR_TEXT_LENGTH + 8];
        safe_text(t, sizeof t, je.text, JSON_ERROR_TEXT_LENGTH);
        char *near = strstr(t, " near ");
        if (near && strncmp(t, "duplicate object key", 20) != 0) *near = '\0';
        fail(&p, "", "line %d, column %d: %s", je.line, je.column, t);
        return -1;
    }
    if (!json_is_object(root)) {
        fail(&p, "", "the configuration must be a JSON object");
        goto out;
    }
    for (size_t i = 0; i < NOPTS; i++) {
        if (!cfg_opts[i].def) continue;
        json_t *d = json_loads(cfg_opts[i].def, JSON_DECODE_ANY, NULL);
        int drc = d ? apply(&p, &cfg_opts[i], 0, cfg_opts[i].key, d) : -1;
        json_decref(d);
        if (drc < 0) {
            fail(&p, cfg_opts[i].key, "internal: bad default");
            goto out;
        }
    }
    if (walk(&p, root, "") < 0) goto out;
    if (finish(&p) < 0) goto out;
    rc = 0;
out:
    wipe_json(root);
    json_decref(root);
    if (rc < 0) cfg_free(out);
    return rc;
}

int cfg_load_text(const char *json, size_t len, dp_config *out, cfg_err *err)
{
    return load(json, len, NULL, out, err);
}

int cfg_load_file(const char *file, dp_config *out, cfg_err *err)
{
    memset(out, 0, sizeof *out);
    memset(err, 0, sizeof *err);
    pctx p = {out, err, NULL, false};
    int rc = -1;
    char *buf = NULL;
    size_t len = 0;
    char dir[PATH_MAX], *real = NULL;
    FILE *f = fopen(file, "re");
    if (!f) return fail(&p, "", "cannot open: %s", strerror(errno));
    buf = malloc(CFG_MAX_FILE + 1);
    if (!buf) {
        fail(&p, "", "out of memory");
        goto out;
    }
    len = fread(buf, 1, CFG_MAX_FILE + 1, f);
    if (ferror(f)) {
        fail(&p, "", "cannot read: %s", strerror(errno));
        goto out;
    }
    if (len > CFG_MAX_FILE) {
        fail(&p, "", "larger than %u bytes", CFG_MAX_FILE);
        goto out;
    }
    /* Relative paths in the file are relative to the file's own directory. */
    const char *slash = strrchr(file, '/');
    int dn = slash ? snprintf(dir, sizeof dir, "%.*s", (int)(slash == file ? 1 : slash - file), file)
                   : snprintf(dir, sizeof dir, ".");
    if (dn < 0 || (size_t)dn >= sizeof dir || !(real = realpath(dir, NULL))) {
        fail(&p, "", "cannot resolve the directory of the file");
        goto out;
    }
    rc = load(buf, len, real, out, err);
out:
    if (buf) {
        explicit_bzero(buf, len);
        free(buf);
    }
    free(real);
    fclose(f);
    return rc;
}

void cfg_free(dp_config *c)
{
    cfg_secret *s[] = {&c->gen2_account_key, &c->gen2_sas, &c->oauth_client_secret, &c->gen1_token,
                       &c->gen1_client_secret};
    for (size_t i = 0; i < sizeof s / sizeof s[0]; i++) {
        if (s[i]->value) {
            explicit_bzero(s[i]->value, strlen(s[i]->value));
            free(s[i]->value);
            s[i]->value = NULL;
        }
    }
}

/* ---------------------------------------------------------------- explain */

static int put_quoted(dbuf *b, const char *s)
{
    int rc = dbuf_adds(b, "\"");
    for (; rc == 0 && *s; s++) {
        if (*s == '"' || *s == '\\') rc = dbuf_printf(b, "\\%c", *s);
        else rc = dbuf_add(b, s, 1);
    }
    return rc ? rc : dbuf_adds(b, "\"");
}

static int explain_opt(const dp_config *c, const cfg_opt *o, bool given, dbuf *b)
{
    const char *dflt = given ? "" : " (default)";
    const void *f = cfield(c, o);
    int rc;
    switch (o->kind) {
    case K_HOSTPORT: {
        const cfg_hostport *hp = f;
        bool v6 = strchr(hp->host, ':') != NULL;
        return dbuf_printf(b, "%s = %s%s%s:%d%s\n", o->key, v6 ? "[" : "", hp->host, v6 ? "]" : "", hp->port, dflt);
    }
    case K_STRING:
    case K_URL:
    case K_PATH:
        /* journal.dir's default is derived in finish(): say from what */
        if (o->kind == K_PATH && (o->flags & F_EMPTY_OK) && !given && strcmp(o->key, "journal.dir") == 0)
            dflt = " (default: <spool.dir>/journal)";
        if (!given && strcmp(o->key, "phase.fleet_filesystem") == 0)
            dflt = " (default: the filesystem of gen2.mappings[0])";
        if ((rc = dbuf_printf(b, "%s = ", o->key)) || (rc = put_quoted(b, f))) return rc;
        return dbuf_printf(b, "%s\n", dflt);
    case K_UINT: return dbuf_printf(b, "%s = %u%s\n", o->key, *(const unsigned *)f, dflt);
    case K_SIZE: {
        uint64_t v = *(const uint64_t *)f;
        static const struct { const char *unit; uint64_t mult; } u[] = {{"TiB", TIB}, {"GiB", GIB}, {"MiB", MIB}, {"KiB", KIB}};
        for (size_t i = 0; i < sizeof u / sizeof u[0]; i++)
            if (v >= u[i].mult && v % u[i].mult == 0)
                return dbuf_printf(b, "%s = %llu (%llu %s)%s\n", o->key, (unsigned long long)v,
                                   (unsigned long long)(v / u[i].mult), u[i].unit, dflt);
        return dbuf_printf(b, "%s = %llu%s\n", o->key, (unsigned long long)v, dflt);
    }
    case K_BOOL:
        if (o->flags & F_DERIVED && !given)
            return dbuf_printf(b, "%s = %s (default: %s)\n", o->key, *(const bool *)f ? "true" : "false",
                               *(const bool *)f ? "the endpoint host is an IP address or localhost"
                                                : "the endpoint host is a name");
        return dbuf_printf(b, "%s = %s%s\n", o->key, *(const bool *)f ? "true" : "false", dflt);
    case K_ENUM: return dbuf_printf(b, "%s = %s%s\n", o->key, o->names[*(const int *)f], dflt);
    case K_SECRET: {
        const cfg_secret *s = f;
        if (!s->value) return dbuf_printf(b, "%s = (not set)\n", o->key);
        return dbuf_printf(b, "%s = (secret, %s)\n", o->key, s->source);
    }
    case K_MAPPINGS:
        for (int i = 0; i < c->nmappings; i++) {
            const cfg_mapping *m = &c->mappings[i];
            if ((rc = dbuf_printf(b, "%s[%d].gen1_prefix = ", o->key, i)) || (rc = put_quoted(b, m->gen1_prefix)) ||
                (rc = dbuf_printf(b, "\n%s[%d].filesystem = ", o->key, i)) || (rc = put_quoted(b, m->filesystem)) ||
                (rc = dbuf_printf(b, "\n%s[%d].prefix = ", o->key, i)) || (rc = put_quoted(b, m->prefix)) ||
                (rc = dbuf_adds(b, "\n")))
                return rc;
        }
        return 0;
    case K_REWRITES:
        if (c->gen1_nrewrites == 0) return dbuf_printf(b, "%s = {}%s\n", o->key, dflt);
        for (int i = 0; i < c->gen1_nrewrites; i++)
            if ((rc = dbuf_printf(b, "%s[\"%s\"] = \"%s\"\n", o->key, c->gen1_rewrites[i].from, c->gen1_rewrites[i].to)))
                return rc;
        return 0;
    }
    return -EINVAL;
}

int cfg_explain(const dp_config *c, dbuf *out)
{
    int rc = dbuf_adds(out, "# effective configuration; \"(default)\" marks keys the file does not set\n");
    for (size_t i = 0; rc == 0 && i < NOPTS; i++) rc = explain_opt(c, &cfg_opts[i], c->cfg_given[i], out);
    return rc;
}

const char *cfg_g1auth_name(cfg_g1auth_mode m)
{
    return (m >= CFG_G1AUTH_NONE && m <= CFG_G1AUTH_KERBEROS) ? g1auth_names[m] : "unknown";
}

/* Whether option o holds the same value in a and b (secrets: the same value from the same source). */
static bool opt_same(const dp_config *a, const dp_config *b, const cfg_opt *o)
{
    switch (o->kind) {
    case K_SECRET: {
        const cfg_secret *x = cfield(a, o), *y = cfield(b, o);
        if (strcmp(x->source, y->source) != 0 || !x->value != !y->value) return false;
        return !x->value || strcmp(x->value, y->value) == 0;
    }
    case K_MAPPINGS:
        if (a->nmappings != b->nmappings) return false;
        for (int i = 0; i < a->nmappings; i++) {
            const cfg_mapping *x = &a->mappings[i], *y = &b->mappings[i];
            if (strcmp(x->gen1_prefix, y->gen1_prefix) || strcmp(x->filesystem, y->filesystem) ||
                strcmp(x->prefix, y->prefix))
                return false;
        }
        return true;
    case K_REWRITES:
        if (a->gen1_nrewrites != b->gen1_nrewrites) return false;
        for (int i = 0; i < a->gen1_nrewrites; i++)
            if (strcmp(a->gen1_rewrites[i].from, b->gen1_rewrites[i].from) ||
                strcmp(a->gen1_rewrites[i].to, b->gen1_rewrites[i].to))
                return false;
        return true;
    case K_HOSTPORT: {
        const cfg_hostport *x = cfield(a, o), *y = cfield(b, o);
        return x->port == y->port && strcmp(x->host, y->host) == 0;
    }
    case K_STRING:
    case K_URL:
    case K_PATH: return strcmp(cfield(a, o), cfield(b, o)) == 0;
    case K_UINT:
    case K_SIZE:
    case K_BOOL:
    case K_ENUM: return memcmp(cfield(a, o), cfield(b, o), o->size) == 0;
    }
    return false;
}

void cfg_diff(const dp_config *a, const dp_config *b, void (*fn)(void *ud, const char *key), void *ud)
{
    for (size_t i = 0; i < NOPTS; i++)
        if (!opt_same(a, b, &cfg_opts[i])) fn(ud, cfg_opts[i].key);
}

int cfg_mapping_of(const dp_config *c, const char *gen1_path, size_t *prefix_len)
{
    int best = -1;
    size_t bestlen = 0;
    for (int i = 0; i < c->nmappings; i++) {
        const char *pre = c->mappings[i].gen1_prefix;
        size_t n = strlen(pre);
        while (n > 0 && pre[n - 1] == '/') n--;
        bool match = n == 0 || (strncmp(gen1_path, pre, n) == 0 && (gen1_path[n] == 0 || gen1_path[n] == '/'));
        if (match && (best < 0 || n > bestlen)) {
            best = i;
            bestlen = n;
        }
    }
    if (prefix_len) *prefix_len = bestlen;
    return best;
}

const char *cfg_phase_name(cfg_phase p)
{
    return (p >= CFG_PHASE_GEN1_PRIMARY && p <= CFG_PHASE_GEN2_ONLY) ? phase_names[p] : "unknown";
}
