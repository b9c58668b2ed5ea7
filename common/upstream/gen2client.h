/*
 * gen2client: requests to the ADLS Gen2 (DFS) upstream on top of httpc, with authentication
 * (common/gen2auth: Shared Key signing, SAS, OAuth client credentials, managed identity), the
 * mandatory headers (x-ms-version, x-ms-date, x-ms-client-request-id) and one retry after a 401 with
 * a refreshed token. Also path mapping from Gen1 paths to Gen2 (filesystem, path) per cfg mappings.
 *
 * URLs: host-style  https://ACCOUNT.dfs.core.windows.net/FS/PATH
 *       path-style  http://127.0.0.1:10004/ACCOUNT/FS/PATH   (gen2.path_style)
 * PATH is percent-encoded except '/', space as %20 (protocols.md §4.1).
 * Logs nothing; secrets never appear in errors.
 */
#ifndef DP_GEN2CLIENT_H
#define DP_GEN2CLIENT_H

#include <stdbool.h>
#include <stdint.h>

#include "cfg.h"
#include "dbuf.h"
#include "gen2auth.h"
#include "httpc.h"

typedef struct gen2c gen2c;

/** Create the client (starts token acquisition for OAuth modes in the background). cfg must outlive
 *  the client. Returns 0 or -1 with a message naming the problem (never a secret). */
int gen2c_new(const dp_config *cfg, httpc *http, gen2c **out, char *err, size_t errlen);
/** Shut-down order: gen2c_stop (while httpc runs: stops the token refresher; calls still waiting for
 *  a token complete with HTTPC_E_AUTH "shutting down" on the calling thread), then httpc_stop
 *  (calls in flight complete with HTTPC_E_CANCELLED), then gen2c_free. Idempotent. */
void gen2c_stop(gen2c *c);
/** SIGHUP: the credential of nc from now on (g2auth_reload: check=true only validates). 0 or -1, err. */
int gen2c_reload(gen2c *c, const dp_config *nc, bool check, char *err, size_t errlen);
/** Free the client (calls gen2c_stop if not done: only safe then if httpc still runs). */
void gen2c_free(gen2c *c);

/** Token modes: block up to timeout_ms until a token is available (start-up check; not on the httpc
 *  thread). Other modes return 0 at once. Returns 0 or -1 with the reason (no secret). */
int gen2c_wait_ready(gen2c *c, unsigned timeout_ms, char *err, size_t errlen);
/** The x-ms-version every request carries (gen2.version, or the default). */
const char *gen2c_version(const gen2c *c);
/** True once the service refused an append with flush=true (gen2c_check_append_flush_refusal): callers then
 *  send the append and the flush as two requests whatever the x-ms-version allows. */
bool gen2c_append_flush_refused(gen2c *c);
/** r answered an append with flush=true: true when it is a refusal of the parameter itself (400
 *  UnsupportedQueryParameter or InvalidQueryParameterValue: nothing was appended), which turns the one-request
 *  form off for this client (logged once). */
bool gen2c_check_append_flush_refusal(gen2c *c, const httpc_resp *r);
/** Token fetch counters (metrics). */
void gen2c_auth_stats(gen2c *c, g2auth_stats *st);

/** The URL path a request for fs/path goes to, as sent and signed: "[/ACCOUNT]/FS[/PATH]" with FS and
 *  PATH percent-encoded (all but unreserved characters and '/'; space as %20). fs NULL or "" gives the
 *  account root "[/ACCOUNT]/". Returns 0 or a dbuf error. */
int gen2c_build_target(const gen2c *c, const char *fs, const char *path, dbuf *raw_path);
/** Value for x-ms-rename-source naming fs/path: "/FS/PATH" encoded as above, followed by "?SAS" in sas
 *  mode. Returns 0 or a dbuf error. */
int gen2c_rename_source(const gen2c *c, const char *fs, const char *path, dbuf *out);

/** Where a Gen1 path lands on Gen2. */
typedef enum gen2c_map_result { GEN2C_MAPPED = 0, GEN2C_UNMAPPED, GEN2C_INVALID_NAME } gen2c_map_result;
/**
 * Map a Gen1 path (normalised) by the longest matching gen1_prefix. On GEN2C_MAPPED, fs gets the
 * filesystem and path the path inside it ("" for the filesystem root, no leading '/').
 * GEN2C_UNMAPPED: no gen1_prefix covers the path (prefixes match whole segments: "/data" covers
 * "/data/x", not "/database"); what to do is the caller's choice (cfg unmapped).
 * GEN2C_INVALID_NAME: mapped (fs and path are filled when path fits), but Gen2 would reject the name:
 * a segment ending in '.', '.'/'..' or empty segments, control characters (C0, DEL, C1), invalid
 * UTF-8, a backslash, over 1024 characters or 254 segments, or path longer than pathcap; why says
 * which rule.
 */
gen2c_map_result gen2c_map(const gen2c *c, const char *gen1_path, char fs[64], char *path, size_t pathcap,
                           char *why, size_t whylen);

typedef struct gen2c_call {
    const char *method;               /* PUT, PATCH, GET, HEAD, DELETE, POST */
    const char *fs;                   /* filesystem */
    const char *path;                 /* path inside fs, not encoded, "" = filesystem itself */
    const char *query;                /* encoded query without '?', e.g. "action=flush&position=10&close=true" */
    const char *headers[24];          /* extra "Name: value" lines (If-Match, x-ms-permissions, ...) */
    const char *client_request_id;    /* x-ms-client-request-id of every send of this call (rid_valid), or
                                         NULL: a fresh UUID; a line in headers overrides both */
    httpc_body_in in;
    const void *in_mem;
    int in_fd;
    uint64_t in_off, in_len;
    httpc_body_out out;
    size_t out_max;
    int out_fd;
    /* HTTPC_BODY_STREAM (httpc.h): on_head/on_body get the final answer as it arrives (a 401 that the
     * token retry answers again is not shown); ctl pauses or cancels it. on_body is required. */
    void (*on_head)(void *ud, const httpc_resp *resp);
    size_t (*on_body)(void *ud, const char *p, size_t n);
    httpc_ctl *ctl;
    void (*done)(void *ud, httpc_resp *resp);  /* on the httpc thread; callee owns resp */
    void *ud;
} gen2c_call;

/**
 * Send one Gen2 request (signed / token-bearing; retried once after a 401 in the token modes).
 * Adds x-ms-version, x-ms-date, x-ms-client-request-id (client_request_id, or a fresh UUID, unless headers
 * carry one) and, when a body is
 * sent without a Content-Type line, "Content-Type: application/octet-stream". headers may not carry
 * Authorization, Date, x-ms-date, x-ms-version or Content-Length, nor control characters; query must
 * be printable ASCII without spaces. In sas mode the SAS is appended to the query.
 * In token modes a call made before any token exists waits for one without blocking. If no token can
 * be obtained, done gets the 401 Gen2 sent, or (nothing was sent) result HTTPC_E_AUTH with the
 * reason in resp->error; in that one case done may run on the token refresher thread or in
 * gen2c_stop instead of the httpc thread.
 * Returns 0 (done will be called once) or -1 (invalid call, or cannot be authenticated; done will
 * not be called). */
int gen2c_send(gen2c *c, const gen2c_call *call);

/** Error code of a Gen2 answer: x-ms-error-code, else error.code from the JSON body, else "". */
const char *gen2c_error_code(const httpc_resp *r, char *buf, size_t cap);

/*
 * Account-level problems: answers that say nothing about the path a request named but that no request
 * to the filesystem (or to the whole account) can succeed until someone fixes the account. Everything
 * else (PathNotFound, 409s, 5xx, timeouts, refused connections) is path-level or transient.
 */
typedef enum gen2c_problem {
    GEN2C_PROB_NONE = 0,
    GEN2C_PROB_FS_NOT_FOUND,      /* 404 FilesystemNotFound / ContainerNotFound (per filesystem) */
    GEN2C_PROB_AUTHENTICATION,    /* 403 AuthenticationFailed, 401 InvalidAuthenticationInfo or
                                     NoAuthenticationInformation (after the token retry), or no token
                                     could be had (HTTPC_E_AUTH) (whole account) */
    GEN2C_PROB_AUTHORIZATION,     /* 403 AuthorizationPermissionMismatch, AuthorizationFailure and the other
                                     Authorization* codes, InsufficientAccountPermissions (per filesystem:
                                     roles can be granted on one container) */
    GEN2C_PROB_ACCOUNT_NOT_FOUND, /* AccountNotFound, AccountIsDisabled (whole account) */
    GEN2C_PROB_UNREACHABLE        /* the endpoint's host name does not resolve (whole account) */
} gen2c_problem;
#define GEN2C_PROB__COUNT 6

/** Classify one exchange: result and unresolved as httpc reports them, status and the error code
 *  (gen2c_error_code) when result is HTTPC_OK. */
gen2c_problem gen2c_classify(httpc_result result, bool unresolved, long status, const char *code);
/** The same for a whole response. */
gen2c_problem gen2c_problem_of(const httpc_resp *r);
/** "filesystem_not_found", "authentication", "authorization", "account_not_found", "unreachable" ("" for NONE). */
const char *gen2c_problem_name(gen2c_problem p);
/** True when the problem concerns one filesystem (FS_NOT_FOUND, AUTHORIZATION), false for the account. */
bool gen2c_problem_per_fs(gen2c_problem p);

#endif
