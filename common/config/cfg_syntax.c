/*
 * cfg_syntax: the syntax of single configuration values, for cfg.c's option kinds and check hooks:
 * "host:port" and "[v6]:port", http(s) endpoints (parsed and normalised: lower-case scheme and host,
 * no trailing '/'), byte sizes such as "64 MiB", relative paths resolved against the config file's
 * directory, storage account / filesystem / x-ms-version / path-prefix checks, environment variable
 * names for "<key>_env", and the "did you mean" edit distance for unknown keys. Everything here is
 * pure: it knows nothing of the option table or the loader's state, and its messages quote none of
 * the input. Internal to cfg (cfg_int.h); not a public interface.
 */
#include "cfg_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---------------------------------------------------------------- "did you mean" */

/* Optimal string alignment distance (edits and adjacent transpositions), for "did you mean". */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63) return 99;
    unsigned char d[64][64]; /* distances fit: both strings are shorter than 64 */
    for (size_t i = 0; i <= la; i++) d[i][0] = (unsigned char)i;
    for (size_t j = 0; j <= lb; j++) d[0][j] = (unsigned char)j;
    for (size_t i = 1; i <= la; i++) {
        for (size_t j = 1; j <= lb; j++) {
            unsigned cost = a[i - 1] == b[j - 1] ? 0 : 1;
            unsigned best = d[i - 1][j] + 1u;
            if (d[i][j - 1] + 1u < best) best = d[i][j - 1] + 1u;
            if (d[i - 1][j - 1] + cost < best) best = d[i - 1][j - 1] + cost;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1u < best)
                best = d[i - 2][j - 2] + 1u;
            d[i][j] = (unsigned char)best;
        }
    }
    return d[la][lb];
}

void cfg__suggest_try(cfg__suggest *s, const char *name, const char *cand, size_t candlen)
{
    char c[64];
    if (candlen >= sizeof c) return;
    memcpy(c, cand, candlen);
    c[candlen] = '\0';
    size_t d = edit_distance(name, c);
    if (d < s->dist && d <= 2 && d * 2 < candlen) {
        s->dist = d;
        memcpy(s->best, c, candlen + 1);
    }
}

/* ---------------------------------------------------------------- value syntax */

static bool host_ok(const char *h, size_t n)
{
    if (n == 0 || n > 253 || h[0] == '-' || h[0] == '.') return false;
    for (size_t i = 0; i < n; i++) {
        char ch = h[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' ||
              ch == '.' || ch == '_'))
            return false;
    }
    return true;
}

static int port_parse(const char *s, size_t n, long min, long max, int *out)
{
    if (n == 0 || n > 5) return -1;
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v < min || v > max) return -1;
    *out = (int)v;
    return 0;
}

/* "host:port" or "[v6]:port" (the host is stored without brackets). */
int cfg__hostport_parse(const char *s, long minport, long maxport, cfg_hostport *out, char *msg,
                        size_t msglen)
{
    size_t n = strlen(s);
    const char *h, *colon;
    size_t hl;
    if (n > 0 && s[0] == '[') {
        const char *rb = strchr(s, ']');
        if (!rb || rb[1] != ':') goto bad_form;
        h = s + 1;
        hl = (size_t)(rb - h);
        colon = rb + 1;
        char a6[64];
        unsigned char bin[16];
        if (hl == 0 || hl >= sizeof a6) goto bad_host;
        memcpy(a6, h, hl);
        a6[hl] = '\0';
        if (inet_pton(AF_INET6, a6, bin) != 1) goto bad_host;
    } else {
        colon = strrchr(s, ':');
        if (!colon) goto bad_form;
        h = s;
        hl = (size_t)(colon - s);
        if (memchr(h, ':', hl)) {
            snprintf(msg, msglen, "an IPv6 address goes in brackets: [addr]:port");
            return -1;
        }
        if (!host_ok(h, hl)) goto bad_host;
    }
    if (port_parse(colon + 1, strlen(colon + 1), minport, maxport, &out->port) < 0) {
        snprintf(msg, msglen, "port must be a number from %ld to %ld", minport, maxport);
        return -1;
    }
    memcpy(out->host, h, hl);
    out->host[hl] = '\0';
    return 0;
bad_form:
    snprintf(msg, msglen, "must be host:port");
    return -1;
bad_host:
    snprintf(msg, msglen, "invalid host in host:port");
    return -1;
}

/* http(s)://host[:port][/path]: no user information, query or fragment. */
int cfg__url_parse(const char *s, bool allow_path, cfg__url_parts *u, char *msg, size_t msglen)
{
    memset(u, 0, sizeof *u);
    const char *a;
    if (strncasecmp(s, "http://", 7) == 0) {
        a = s + 7;
    } else if (strncasecmp(s, "https://", 8) == 0) {
        a = s + 8;
        u->https = true;
    } else {
        snprintf(msg, msglen, "must be an http:// or https:// URL");
        return -1;
    }
    size_t al = strcspn(a, "/?#");
    if (memchr(a, '@', al)) {
        snprintf(msg, msglen, "must not contain user information");
        return -1;
    }
    if (strpbrk(a, "?#")) {
        snprintf(msg, msglen, "must not have a query or fragment");
        return -1;
    }
    if (strpbrk(s, " \t")) {
        snprintf(msg, msglen, "must not contain spaces");
        return -1;
    }
    const char *hend = a + al, *colon = NULL;
    const char *h = a;
    size_t hl;
    if (al > 0 && a[0] == '[') {
        const char *rb = memchr(a, ']', al);
        if (!rb) goto bad_host;
        h = a + 1;
        hl = (size_t)(rb - h);
        char a6[64];
        unsigned char bin[16];
        if (hl == 0 || hl >= sizeof a6) goto bad_host;
        memcpy(a6, h, hl);
        a6[hl] = '\0';
        if (inet_pton(AF_INET6, a6, bin) != 1) goto bad_host;
        if (rb + 1 < hend) {
            if (rb[1] != ':') goto bad_host;
            colon = rb + 1;
        }
    } else {
        colon = memchr(a, ':', al);
        hl = colon ? (size_t)(colon - a) : al;
        if (!host_ok(h, hl)) goto bad_host;
    }
    if (colon) {
        if (port_parse(colon + 1, (size_t)(hend - colon - 1), 1, 65535, &u->hp.port) < 0) {
            snprintf(msg, msglen, "port must be a number from 1 to 65535");
            return -1;
        }
        u->has_port = true;
    } else {
        u->hp.port = u->https ? 443 : 80;
    }
    for (size_t i = 0; i < hl; i++) {
        char ch = h[i];
        u->hp.host[i] = (ch >= 'A' && ch <= 'Z') ? (char)(ch - 'A' + 'a') : ch;
    }
    u->hp.host[hl] = '\0';
    u->path = hend;
    if (!allow_path && strcmp(hend, "") != 0 && strcmp(hend, "/") != 0) {
        snprintf(msg, msglen, "must not have a path (scheme://host[:port] only)");
        return -1;
    }
    return 0;
bad_host:
    snprintf(msg, msglen, "invalid host");
    return -1;
}

/* Normalised text of a parsed URL: lower-case scheme and host, port as given, no trailing '/'. */
int cfg__url_format(const cfg__url_parts *u, char *dst, size_t cap)
{
    size_t pl = strlen(u->path);
    while (pl > 0 && u->path[pl - 1] == '/') pl--;
    bool v6 = strchr(u->hp.host, ':') != NULL;
    char port[16] = "";
    if (u->has_port) snprintf(port, sizeof port, ":%d", u->hp.port);
    int n = snprintf(dst, cap, "%s://%s%s%s%s%.*s", u->https ? "https" : "http", v6 ? "[" : "", u->hp.host,
                     v6 ? "]" : "", port, (int)pl, u->path);
    return (n < 0 || (size_t)n >= cap) ? -1 : 0;
}

bool cfg__is_ip_or_localhost(const char *host)
{
    unsigned char bin[16];
    return inet_pton(AF_INET, host, bin) == 1 || inet_pton(AF_INET6, host, bin) == 1 ||
           strcasecmp(host, "localhost") == 0;
}

bool cfg__is_loopback(const char *host)
{
    unsigned char bin[16];
    char h[64];
    size_t n = strlen(host);
    if (n >= 2 && host[0] == '[' && host[n - 1] == ']' && n - 2 < sizeof h) {
        memcpy(h, host + 1, n - 2);
        h[n - 2] = '\0';
        host = h;
    }
    if (strcasecmp(host, "localhost") == 0) return true;
    if (inet_pton(AF_INET, host, bin) == 1) return bin[0] == 127;
    static const unsigned char v6_loopback[16] = {[15] = 1};
    return inet_pton(AF_INET6, host, bin) == 1 && memcmp(bin, v6_loopback, 16) == 0;
}

/* Sizes: a non-negative integer, or a string "N", "N B", "N KiB|MiB|GiB|TiB". */
int cfg__size_parse(const json_t *v, uint64_t *out)
{
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        if (i < 0) return -1;
        *out = (uint64_t)i;
        return 0;
    }
    if (!json_is_string(v)) return -1;
    const char *s = json_string_value(v);
    if (*s < '0' || *s > '9') return -1;
    errno = 0;
    char *end = NULL;
    unsigned long long n = strtoull(s, &end, 10);
    if (errno || end == s) return -1;
    while (*end == ' ') end++;
    static const struct { const char *unit; uint64_t mult; } units[] = {
        {"", 1}, {"B", 1}, {"KiB", KIB}, {"MiB", MIB}, {"GiB", GIB}, {"TiB", TIB}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcmp(end, units[i].unit) == 0) {
            if (n > UINT64_MAX / units[i].mult) return -1;
            *out = (uint64_t)n * units[i].mult;
            return 0;
        }
    }
    return -1;
}

/* dir + "/" + rel, with leading "./" and "../" of rel folded into dir (dir is a realpath, so has
 * no symlinks to make ".." lexical folding wrong). */
int cfg__path_resolve(const char *basedir, const char *rel, char *dst, size_t cap)
{
    if (rel[0] == '/' || !basedir) {
        int n = snprintf(dst, cap, "%s", rel);
        return (n < 0 || (size_t)n >= cap) ? -1 : 0;
    }
    char dir[PATH_MAX];
    int n = snprintf(dir, sizeof dir, "%s", basedir);
    if (n < 0 || (size_t)n >= sizeof dir) return -1;
    for (;;) {
        if (strncmp(rel, "./", 2) == 0) {
            rel += 2;
        } else if (strcmp(rel, ".") == 0) {
            rel += 1;
        } else if (strncmp(rel, "../", 3) == 0 || strcmp(rel, "..") == 0) {
            char *slash = strrchr(dir, '/');
            if (slash && slash != dir) {
                *slash = '\0';
            } else {
                dir[0] = '/';
                dir[1] = '\0';
            }
            rel += rel[2] ? 3 : 2;
        } else {
            break;
        }
        while (*rel == '/') rel++;
    }
    bool root = strcmp(dir, "/") == 0;
    if (*rel == '\0') n = snprintf(dst, cap, "%s", dir);
    else n = snprintf(dst, cap, "%s%s%s", dir, root ? "" : "/", rel);
    return (n < 0 || (size_t)n >= cap) ? -1 : 0;
}

/* ---------------------------------------------------------------- check hooks */

int cfg__check_account(const char *v, char *msg, size_t msglen)
{
    size_t n = strlen(v);
    bool ok = n >= 3 && n <= 24;
    for (size_t i = 0; ok && i < n; i++) ok = (v[i] >= 'a' && v[i] <= 'z') || (v[i] >= '0' && v[i] <= '9');
    if (!ok) snprintf(msg, msglen, "must be a storage account name: 3 to 24 lower-case letters and digits");
    return ok ? 0 : -1;
}

int cfg__check_version(const char *v, char *msg, size_t msglen)
{
    static const char pat[] = "dddd-dd-dd";
    bool ok = strlen(v) == sizeof pat - 1;
    for (size_t i = 0; ok && pat[i]; i++) ok = pat[i] == 'd' ? (v[i] >= '0' && v[i] <= '9') : v[i] == pat[i];
    if (!ok) snprintf(msg, msglen, "must be an x-ms-version date, YYYY-MM-DD");
    return ok ? 0 : -1;
}

int cfg__check_nonempty(const char *v, char *msg, size_t msglen)
{
    if (v[0]) return 0;
    snprintf(msg, msglen, "must not be empty");
    return -1;
}

/* Azure filesystem (container) names: 3-63 of [a-z0-9-], alphanumeric at both ends, no "--". */
int cfg__check_filesystem(const char *v, char *msg, size_t msglen)
{
    size_t n = strlen(v);
    bool ok = n >= 3 && n <= 63 && v[0] != '-' && v[n - 1] != '-' && !strstr(v, "--");
    for (size_t i = 0; ok && i < n; i++) ok = (v[i] >= 'a' && v[i] <= 'z') || (v[i] >= '0' && v[i] <= '9') || v[i] == '-';
    if (!ok)
        snprintf(msg, msglen, "must be a filesystem name: 3 to 63 of a-z, 0-9 and '-', starting and ending "
                              "with a letter or digit, no \"--\"");
    return ok ? 0 : -1;
}

/* Segments of a '/'-separated path: none empty, ".", or "..". */
static bool segments_ok(const char *s)
{
    while (*s) {
        size_t n = strcspn(s, "/");
        if (n == 0 || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.')) return false;
        s += n;
        if (*s == '/') {
            s++;
            if (*s == '\0') return false;
        }
    }
    return true;
}

int cfg__check_gen1_prefix(const char *v, char *msg, size_t msglen)
{
    if (v[0] != '/') {
        snprintf(msg, msglen, "must be an absolute path (start with '/')");
        return -1;
    }
    if (strcmp(v, "/") != 0 && !segments_ok(v + 1)) {
        snprintf(msg, msglen, "must be a normalised path: no trailing '/', no empty, '.' or '..' segments");
        return -1;
    }
    return 0;
}

int cfg__check_prefix(const char *v, char *msg, size_t msglen)
{
    if (v[0] == '\0') return 0;
    if (v[0] == '/' || v[strlen(v) - 1] == '/') {
        snprintf(msg, msglen, "must not start or end with '/' (\"\" is the filesystem root)");
        return -1;
    }
    if (!segments_ok(v)) {
        snprintf(msg, msglen, "must not contain empty, '.' or '..' segments");
        return -1;
    }
    return 0;
}

int cfg__check_rel_dir(const char *v, char *msg, size_t msglen)
{
    size_t n = strlen(v);
    if (n == 0 || n > 199) {
        snprintf(msg, msglen, "must be a relative directory of 1 to 199 bytes, such as .dualpipe");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        char ch = v[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' ||
              ch == '_' || ch == '-' || ch == '/')) {
            snprintf(msg, msglen, "may hold only letters, digits, '.', '_', '-' and '/'");
            return -1;
        }
    }
    if (v[0] == '/' || v[n - 1] == '/') {
        snprintf(msg, msglen, "must be relative (to the filesystem's root), without a trailing '/'");
        return -1;
    }
    if (!segments_ok(v)) {
        snprintf(msg, msglen, "must not contain empty, '.' or '..' segments");
        return -1;
    }
    return 0;
}

int cfg__check_member_id(const char *v, char *msg, size_t msglen)
{
    size_t n = strlen(v);
    if (n == 0) return 0;
    bool ok = n < 64 && strcmp(v, ".") != 0 && strcmp(v, "..") != 0;
    for (size_t i = 0; ok && i < n; i++) {
        char ch = v[i];
        ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' ||
             ch == '_' || ch == '-';
    }
    if (!ok) {
        snprintf(msg, msglen, "must be \"\" (generated) or 1 to 63 characters of A-Z, a-z, 0-9, '.', '_' or '-' "
                              "(not \".\" or \"..\")");
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- environment variable names */

bool cfg__env_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 255 || (s[0] >= '0' && s[0] <= '9')) return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_'))
            return false;
    }
    return true;
}
