/*
 * cfg_int: internal to the cfg module, shared by cfg.c (option table, document walk, cross-key rules,
 * cfg_explain) and cfg_syntax.c (value syntax: host:port, http(s) endpoints, byte sizes, relative
 * paths, account/filesystem/version/path-prefix checks, environment variable names, "did you mean"
 * suggestions). Not part of the public interface: include cfg.h elsewhere. The cfg__ functions are
 * pure: they read their arguments, write their outputs and report a problem as text in msg, which
 * quotes none of the input (it may be a secret); none touches the loader's state or logs.
 */
#ifndef DP_CFG_INT_H
#define DP_CFG_INT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cfg.h"

#define KIB 1024ull
#define MIB (1024ull * KIB)
#define GIB (1024ull * MIB)
#define TIB (1024ull * GIB)

/* ---------------------------------------------------------------- "did you mean" */

/** The closest candidate so far: start with {"", 99}; best stays "" when nothing is close. */
typedef struct cfg__suggest {
    char best[64];
    size_t dist;
} cfg__suggest;

/** Offer the first CANDLEN bytes of CAND as a suggestion for the unknown key NAME: kept when it is
 *  closer than the best so far, at most 2 edits away and less than half its own length in edits. */
void cfg__suggest_try(cfg__suggest *s, const char *name, const char *cand, size_t candlen);

/* ---------------------------------------------------------------- value syntax */

/** A parsed http(s) endpoint. */
typedef struct cfg__url_parts {
    bool https;
    bool has_port;
    cfg_hostport hp;  /* host lower-cased, without IPv6 brackets; port 80/443 when not given */
    const char *path; /* after the authority, in the input */
} cfg__url_parts;

/** Parse "host:port" or "[v6]:port" with the port in [minport, maxport] into *out (host without
 *  brackets). Returns 0, or -1 with the reason in msg. */
__attribute__((warn_unused_result)) int cfg__hostport_parse(const char *s, long minport, long maxport,
                                                            cfg_hostport *out, char *msg, size_t msglen);
/** Parse http(s)://host[:port][/path] (a path only when allow_path; never user information, a
 *  query or a fragment) into *u, which points into s. Returns 0, or -1 with the reason in msg. */
__attribute__((warn_unused_result)) int cfg__url_parse(const char *s, bool allow_path, cfg__url_parts *u,
                                                       char *msg, size_t msglen);
/** Write the normalised text of *u into dst: lower-case scheme and host, the port only when given,
 *  no trailing '/'. Returns 0, or -1 when it does not fit in cap. */
__attribute__((warn_unused_result)) int cfg__url_format(const cfg__url_parts *u, char *dst, size_t cap);
/** True for an IPv4 or IPv6 address literal or "localhost" (any case). */
bool cfg__is_ip_or_localhost(const char *host);
/* True for "localhost", 127.0.0.0/8 and ::1 (with or without brackets). */
bool cfg__is_loopback(const char *host);
/** A byte count: a non-negative JSON integer or a string "N", "N B", "N KiB|MiB|GiB|TiB".
 *  Returns 0 with *out set, or -1 (wrong type, bad unit, overflow). */
__attribute__((warn_unused_result)) int cfg__size_parse(const json_t *v, uint64_t *out);
/** rel made absolute against basedir (a realpath), leading "./" and "../" folded; rel unchanged when
 *  absolute or basedir is NULL. Returns 0, or -1 when the result does not fit in cap. */
__attribute__((warn_unused_result)) int cfg__path_resolve(const char *basedir, const char *rel, char *dst,
                                                          size_t cap);
/** True for a usable environment variable name: [A-Za-z_][A-Za-z0-9_]*, at most 255 bytes. */
bool cfg__env_name_ok(const char *s);

/* ---------------------------------------------------------------- check hooks (cfg_opt.check) */

/* Each returns 0, or -1 with the reason in msg. */

/** Storage account name: 3 to 24 lower-case letters and digits. */
__attribute__((warn_unused_result)) int cfg__check_account(const char *v, char *msg, size_t msglen);
/** x-ms-version: YYYY-MM-DD. */
__attribute__((warn_unused_result)) int cfg__check_version(const char *v, char *msg, size_t msglen);
/** Any non-empty text. */
__attribute__((warn_unused_result)) int cfg__check_nonempty(const char *v, char *msg, size_t msglen);
/** Azure filesystem (container) name. */
__attribute__((warn_unused_result)) int cfg__check_filesystem(const char *v, char *msg, size_t msglen);
/** gen2.mappings[].gen1_prefix: "/" or a normalised absolute path. */
__attribute__((warn_unused_result)) int cfg__check_gen1_prefix(const char *v, char *msg, size_t msglen);
/** gen2.mappings[].prefix: "" or a relative path without leading/trailing '/' or '.'/'..' segments. */
__attribute__((warn_unused_result)) int cfg__check_prefix(const char *v, char *msg, size_t msglen);

/** phase.fleet_dir: a non-empty relative path of letters, digits, '.', '_', '-' and '/' without empty,
 *  '.' or '..' segments, at most 199 bytes. */
__attribute__((warn_unused_result)) int cfg__check_rel_dir(const char *v, char *msg, size_t msglen);
/** phase.member_id: "" (generated) or 1 to 63 characters of A-Z, a-z, 0-9, '.', '_', '-', not "." or "..". */
__attribute__((warn_unused_result)) int cfg__check_member_id(const char *v, char *msg, size_t msglen);

#endif
