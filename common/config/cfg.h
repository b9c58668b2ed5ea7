/*
 * cfg: the dualpipe configuration, loaded from JSON (jansson) against one static table of options
 * (key path, type, bounds, default, field offset, optional validator). Unknown keys are errors; every
 * error names the full key path ("gen2.auth.mode: must be one of shared_key, sas, ..."). Secrets
 * (Gen2 account key, SAS, OAuth client secret) may be given inline in the file, or — preferred in
 * production — through `<key>_env` (an environment variable name) or `<key>_file` (a file holding
 * it, first line); they are never printed: cfg_explain shows "(secret, env NAME)". Every key and its
 * default is documented in config/dualpipe.example.json.
 *
 * Conventions: object members whose name starts with "//" are comments and ignored (at any level);
 * duplicate keys are errors; relative paths (spool.dir, `<key>_file`) are relative to the directory
 * of the config file (cfg_load_file) and stored absolute; cfg_load_text keeps them relative to the
 * working directory.
 *
 * Logs nothing; the caller prints errors. The loaded config is immutable and owned by the caller.
 */
#ifndef DP_CFG_H
#define DP_CFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dbuf.h"

#define CFG_MAX_MAPPINGS 64
#define CFG_MAX_REWRITES 64
#define CFG_MAX_OPTIONS 128   /* size of dp_config.cfg_given (cfg.c checks its table fits) */

typedef enum cfg_phase { CFG_PHASE_GEN1_PRIMARY = 0, CFG_PHASE_GEN2_PRIMARY, CFG_PHASE_GEN2_ONLY } cfg_phase;
typedef enum cfg_dialect { CFG_DIALECT_ADLS = 0, CFG_DIALECT_HADOOP } cfg_dialect;
typedef enum cfg_auth_mode {
    CFG_AUTH_SHARED_KEY = 0, CFG_AUTH_SAS, CFG_AUTH_CLIENT_CREDENTIALS, CFG_AUTH_MANAGED_IDENTITY
} cfg_auth_mode;
/* gen1.auth.mode: the proxy's own identity toward Gen1 (kerberos is refused by the loader). */
typedef enum cfg_g1auth_mode {
    CFG_G1AUTH_NONE = 0, CFG_G1AUTH_BEARER, CFG_G1AUTH_CLIENT_CREDENTIALS, CFG_G1AUTH_HADOOP, CFG_G1AUTH_KERBEROS
} cfg_g1auth_mode;
typedef enum cfg_token_api { CFG_TOKEN_API_V1 = 0, CFG_TOKEN_API_V2 } cfg_token_api;
typedef enum cfg_unmapped { CFG_UNMAPPED_SKIP = 0, CFG_UNMAPPED_REJECT } cfg_unmapped;
/* Same order as idm_policy (common/webhdfs/idmap.h). */
typedef enum cfg_unmapped_id { CFG_UNMAPPED_ID_KEEP = 0, CFG_UNMAPPED_ID_DROP, CFG_UNMAPPED_ID_RESYNC_LATER } cfg_unmapped_id;
typedef enum cfg_spool_policy { CFG_SPOOL_DEGRADE = 0, CFG_SPOOL_REJECT } cfg_spool_policy;
typedef enum cfg_ack { CFG_ACK_DURABLE = 0, CFG_ACK_BOTH } cfg_ack;
typedef enum cfg_io { CFG_IO_AUTO = 0, CFG_IO_URING, CFG_IO_THREADS } cfg_io; /* same values as iox_backend */

typedef struct cfg_hostport {
    char host[256];           /* name or address; an IPv6 address without its brackets */
    int port;
} cfg_hostport;

typedef struct cfg_mapping {
    char gen1_prefix[1024];   /* normalised absolute path, "/" matches everything */
    char filesystem[64];      /* Gen2 filesystem (container) */
    char prefix[1024];        /* path prefix inside the filesystem, "" = root; no leading/trailing '/' */
} cfg_mapping;

typedef struct cfg_rewrite {
    char from[300];           /* "host:port" as the namenode's Location names the datanode */
    char to[300];             /* "host:port" to connect to instead */
} cfg_rewrite;

typedef struct cfg_secret {
    char *value;              /* resolved secret (malloc'd, wiped by cfg_free), NULL when not set */
    char source[320];         /* "inline", "env NAME" or "file PATH" — for cfg_explain, never the value */
    char file[300];           /* "<key>_file": the resolved path (modules that re-read it); else "" */
} cfg_secret;

/* TLS toward an upstream (libcurl's options). Verification is on unless insecure_skip_verify. */
typedef struct cfg_tls {
    char ca_file[1024];               /* "<side>.tls.ca_file": PEM bundle replacing the system's ("" = system) */
    char ca_path[1024];               /* "<side>.tls.ca_path": OpenSSL hashed directory of CAs ("" = none) */
    char cert_file[1024];             /* "gen1.tls.cert_file": client certificate (PEM), "" = none */
    char key_file[1024];              /* "gen1.tls.key_file": its private key (PEM) */
    bool insecure_skip_verify;        /* "<side>.tls.insecure_skip_verify" (false): logged loudly at start */
} cfg_tls;

typedef struct dp_config {
    /* front */
    cfg_hostport listen;              /* "listen": WebHDFS front, default 127.0.0.1:14000 */
    char public_url[512];             /* "public_url": base of 307 Locations; "" = from the Host header */
    unsigned max_connections;         /* "limits.max_connections" (1024) */
    unsigned max_connections_per_client; /* "limits.max_connections_per_client" (0 = no cap): per client address */
    unsigned max_header_bytes;        /* "limits.max_header_bytes" (32768) */
    unsigned read_buffer_bytes;       /* "limits.read_buffer_bytes" (65536): per-connection buffer */
    uint64_t max_body_bytes;          /* "limits.max_body_bytes" (16 MiB: see the example file) */
    uint64_t stream_buffer_bytes;     /* "limits.stream_buffer_bytes" (1 MiB): Gen1 read answer held per request */
    uint64_t stream_memory_bytes;     /* "limits.stream_memory_bytes" (4 MiB): all reads' buffers grow within it */
    unsigned idle_timeout_s;          /* "limits.idle_timeout_s" (60): slow or idle client */
    unsigned request_timeout_s;       /* "limits.request_timeout_s" (300): to receive a request's headers and body */
    unsigned threads;                 /* "limits.threads" (0 = number of cores): MHD thread pool */
    char tls_cert_file[1024];         /* "tls.cert_file": PEM chain of the HTTPS front ("" = plain HTTP) */
    char tls_key_file[1024];          /* "tls.key_file": its PEM private key (not readable by others) */
    char tls_client_ca_file[1024];    /* "tls.client_ca_file": writers must show a certificate from these CAs
                                         ("" = no client certificate asked for) */
    /* admin */
    cfg_hostport admin_listen;        /* "admin.listen", default 127.0.0.1:14080 */
    /* phase */
    cfg_phase phase;                  /* "phase.initial" (or "phase" given as a string), default gen1-primary:
                                         the phase a new fleet (or a lone proxy) starts in; once a phase
                                         record exists the record wins (proxy/phase.c) */
    bool phase_fleet;                 /* "phase.fleet" (false): the phase record is kept on Gen2 where every
                                         proxy of the fleet sees it; false: on this proxy's disk (journal.dir) */
    char phase_fleet_fs[64];          /* "phase.fleet_filesystem" (""): where the fleet's record is; with
                                         phase.fleet true the loader fills "" with gen2.mappings[0].filesystem */
    char phase_fleet_dir[200];        /* "phase.fleet_dir" (".dualpipe"): the record's directory in it */
    char phase_member_id[64];         /* "phase.member_id" ("": generated, kept in the phase state file) */
    unsigned phase_switch_timeout_ms; /* "phase.switch_timeout_ms" (30000): a switch not drained by then aborts */
    unsigned phase_poll_ms;           /* "phase.poll_ms" (250): how often the record is read */
    unsigned phase_heartbeat_ms;      /* "phase.heartbeat_ms" (10000): a member rewrites its report this often */
    unsigned g2only_workers;          /* "gen2_only.workers" (32): requests served on Gen2 at once (phase
                                         gen2-only); more wait in a queue, their connections suspended */
    unsigned g2only_list_max;         /* "gen2_only.list_max_entries" (100000): entries of one LISTSTATUS answer
                                         without listSize (past it the answer carries a continuationToken) */
    bool g2only_trust_network;        /* "gen2_only.trust_network" (false): in gen2-only, accept writers on a
                                         non-loopback listen address without client certificates */
    /* spool */
    char spool_dir[1024];             /* "spool.dir" (default /var/lib/dualpipe/spool) */
    uint64_t spool_max_bytes;         /* "spool.max_bytes" (default 8 GiB): bodies the secondary still owes
                                         plus bodies being received */
    cfg_spool_policy spool_policy;    /* "spool.policy" degrade|reject (degrade) */
    uint64_t spool_segment_bytes;     /* "spool.segment_bytes" (64 MiB) */
    /* journal */
    char journal_dir[1024];           /* "journal.dir" (default: "<spool.dir>/journal"; bodies go to
                                         "<spool.dir>/data") */
    cfg_io journal_io;                /* "journal.io" auto|io_uring|threads (auto) */
    uint64_t journal_segment_bytes;   /* "journal.segment_bytes" (64 MiB) */
    unsigned journal_lazy_ms;         /* "journal.lazy_commit_ms" (100): state-only batches wait this long */
    unsigned journal_commit_wait_us;  /* "journal.commit_wait_us" (4000): under load, wait for company */
    unsigned journal_commit_batch;    /* "journal.commit_batch" (32): ... until a batch holds this many writes */
    bool journal_verify_bodies;       /* "journal.verify_bodies" (true): recovery checks bodies' checksums */
    cfg_ack ack;                      /* "ack" durable|both (durable) */
    /* applier */
    unsigned applier_concurrency;     /* "applier.concurrency" (64): operations sent to Gen2 at once */
    unsigned applier_backoff_base_ms; /* "applier.backoff_base_ms" (500): full jitter over base * 2^n */
    unsigned applier_backoff_cap_ms;  /* "applier.backoff_cap_ms" (30000) */
    unsigned applier_breaker_failures;/* "applier.breaker_failures" (5): consecutive transient failures
                                         that open the circuit breaker */
    unsigned applier_breaker_probe_ms;/* "applier.breaker_probe_ms" (2000): one probe this often while open */
    unsigned applier_resync_attempts; /* "applier.resync_attempts" (3): failed resyncs before parking */
    uint64_t applier_copy_part_bytes; /* "applier.copy_part_bytes" (64 MiB): one ranged Gen1 read of a re-copy */
    unsigned applier_max_in_memory;   /* "applier.max_in_memory" (8192): journal records handed to the applier
                                         at once; the rest wait in the journal (pipeline's feeder) */
    unsigned applier_max_per_path;    /* "applier.max_per_path" (1024): of those, at most this many touching
                                         one path (capped at max_in_memory) */
    unsigned applier_digest_cache_entries; /* "applier.digest_cache_entries" (65536): files whose CRC-32C digest
                                         the applier remembers between APPENDs (LRU); 0: read it from Gen2 */
    unsigned applier_digest_interval_ms; /* "applier.digest_interval_ms" (5000): a file appended to without
                                         a CLOSE gets its digest property written at most this often */
    /* gen1 */
    char gen1_endpoint[512];          /* "gen1.endpoint": scheme://host[:port] (required), normalised:
                                         lower-case scheme and host, no trailing '/' */
    cfg_hostport gen1_addr;           /* derived from gen1.endpoint; port 80/443 when not given */
    bool gen1_https;                  /* derived: gen1.endpoint is https */
    cfg_dialect gen1_dialect;         /* "gen1.dialect" adls|hadoop (adls) */
    cfg_rewrite gen1_rewrites[CFG_MAX_REWRITES]; /* "gen1.datanode_rewrite": {"from":"to"} */
    int gen1_nrewrites;
    unsigned gen1_connect_timeout_ms; /* "gen1.connect_timeout_ms" (5000) */
    unsigned gen1_timeout_ms;         /* "gen1.timeout_ms" (60000) */
    unsigned gen1_settle_ms;          /* "gen1.settle_ms" (10000): a write whose answer was lost is checked
                                         on Gen1 again this long after its exchange ended */
    cfg_g1auth_mode gen1_auth;        /* "gen1.auth.mode" none|bearer|client_credentials|hadoop (none) */
    cfg_secret gen1_token;            /* "gen1.auth.token" (+_env, _file) — bearer; a _file is re-read on change */
    char gen1_authority[512];         /* "gen1.auth.authority" (https://login.microsoftonline.com) */
    cfg_token_api gen1_token_api;     /* "gen1.auth.token_api" v1|v2 (v1): AAD token URL and form */
    char gen1_tenant[128];            /* "gen1.auth.tenant_id" */
    char gen1_client_id[128];         /* "gen1.auth.client_id" */
    cfg_secret gen1_client_secret;    /* "gen1.auth.client_secret" (+_env, _file) */
    char gen1_resource[256];          /* "gen1.auth.resource" (https://datalake.azure.net/): v1 */
    char gen1_scope[300];             /* "gen1.auth.scope" ("" = resource + "/.default"): v2 */
    unsigned gen1_refresh_margin_s;   /* "gen1.auth.refresh_margin_s" (300) */
    char gen1_user[128];              /* "gen1.auth.user": hadoop user.name */
    char gen1_doas[128];              /* "gen1.auth.doas": hadoop doas ("" = none) */
    cfg_tls gen1_tls;                 /* "gen1.tls.*": toward Gen1 (and its datanodes) */
    /* gen2 */
    char gen2_endpoint[512];          /* "gen2.endpoint": https://ACCOUNT.dfs.core.windows.net or
                                         http://127.0.0.1:10004 (path-style) (required) */
    cfg_hostport gen2_addr;           /* derived from gen2.endpoint; port 80/443 when not given */
    bool gen2_https;                  /* derived: gen2.endpoint is https */
    bool gen2_path_style;             /* "gen2.path_style": default true for IP/localhost endpoints */
    char gen2_account[256];           /* "gen2.account" (required) */
    char gen2_version[32];            /* "gen2.version" x-ms-version (2021-06-08) */
    unsigned gen2_connect_timeout_ms; /* "gen2.connect_timeout_ms" (5000) */
    unsigned gen2_timeout_ms;         /* "gen2.timeout_ms" (60000) */
    cfg_auth_mode gen2_auth;          /* "gen2.auth.mode" */
    cfg_secret gen2_account_key;      /* "gen2.auth.account_key" (+_env, _file) — shared_key */
    cfg_secret gen2_sas;              /* "gen2.auth.sas" (+_env, _file) — sas: query string without '?' */
    char oauth_authority[512];        /* "gen2.auth.authority" (https://login.microsoftonline.com) */
    char oauth_tenant[128];           /* "gen2.auth.tenant_id" */
    char oauth_client_id[128];        /* "gen2.auth.client_id" (also the user-assigned identity for MI) */
    cfg_secret oauth_client_secret;   /* "gen2.auth.client_secret" (+_env, _file) */
    char oauth_resource[256];         /* "gen2.auth.resource" (https://storage.azure.com/) */
    char imds_endpoint[512];          /* "gen2.auth.imds_endpoint"
                                         (http://169.254.169.254/metadata/identity/oauth2/token) */
    unsigned token_refresh_margin_s;  /* "gen2.auth.refresh_margin_s" (300): refresh this long before expiry */
    cfg_tls gen2_tls;                 /* "gen2.tls.*" (no client certificate: Gen2 does not take one) */
    cfg_mapping mappings[CFG_MAX_MAPPINGS]; /* "gen2.mappings" (required, at least one) */
    int nmappings;
    cfg_unmapped unmapped;            /* "gen2.unmapped" skip|reject (skip) */
    bool gen2_create_filesystems;     /* "gen2.create_filesystems" (false): create missing mapped filesystems */
    char identity_map[1024];          /* "gen2.identity_map": name -> object id file ("" = names copied as they are) */
    cfg_unmapped_id unmapped_identity; /* "gen2.unmapped_identity" keep|drop|resync-later (resync-later) */
    /* log */
    int log_level;                    /* "log.level" error|warn|info|debug (info): log.h's values */
    /* shutdown */
    unsigned shutdown_drain_ms;       /* "shutdown.drain_ms" (5000): on SIGTERM, how long the front waits for
                                         requests in progress, and then the applier for its backlog */
    /* internal to cfg: which table options the file set (cfg_explain marks the others "(default)") */
    unsigned char cfg_given[CFG_MAX_OPTIONS];
} dp_config;

/** Error from loading: the key path and what is wrong with it. */
typedef struct cfg_err {
    char path[256];      /* e.g. "gen2.mappings[1].filesystem"; "" for document-level errors */
    char message[512];   /* never contains a secret value */
} cfg_err;

/**
 * Load and validate FILE. On success returns 0 and fills *out (caller frees with cfg_free).
 * On failure returns -1 and err; *out is left freed.
 * env lookup: getenv (tests can set variables).
 */
__attribute__((warn_unused_result)) int cfg_load_file(const char *file, dp_config *out, cfg_err *err);
/** Same from a JSON text (used by tests and the fuzz target); relative paths stay relative. */
__attribute__((warn_unused_result)) int cfg_load_text(const char *json, size_t len, dp_config *out, cfg_err *err);
/** Release secrets (wiped with explicit_bzero) and anything allocated. Safe to call twice and on a
 *  config a failed load left behind. */
void cfg_free(dp_config *c);
/** Human explanation of the effective configuration for `dualpipe --check-config`: one line per key,
 *  "key = value", "(default)" after values the file did not set, secrets as "(secret, inline)",
 *  "(secret, env NAME)" or "(secret, file PATH)", never their value. Appends to out.
 *  Returns 0, or a negative errno from dbuf (-E2BIG, -ENOMEM). */
__attribute__((warn_unused_result)) int cfg_explain(const dp_config *c, dbuf *out);

/** gen1.auth.mode's spelling: "none", "bearer", "client_credentials", "hadoop", "kerberos". */
const char *cfg_g1auth_name(cfg_g1auth_mode m);

/** Call fn with the key of every option whose value differs between a and b, in table order (a
 *  secret differs when its value or its source does; fn never sees a value). SIGHUP's reload uses
 *  it to apply what changed and to name what needs a restart. */
void cfg_diff(const dp_config *a, const dp_config *b, void (*fn)(void *ud, const char *key), void *ud);

/** "gen1-primary", "gen2-primary" or "gen2-only" (the config's spelling). */
const char *cfg_phase_name(cfg_phase p);

/** The mapping that covers gen1_path (normalised, absolute): the longest gen1_prefix matching whole
 *  segments ("/data" covers "/data/x", not "/database"), and in *prefix_len its length without
 *  trailing '/' (may be NULL). -1 when none covers it. */
int cfg_mapping_of(const dp_config *c, const char *gen1_path, size_t *prefix_len);

#endif
