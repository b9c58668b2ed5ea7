/*
 * acli: the operator commands' client of the daemon's admin API (`dualpipe phase`; HTTP on loopback
 * by default, libcurl's easy interface, never through an http_proxy from the environment).
 */
#ifndef DP_ACLI_H
#define DP_ACLI_H

#include <stddef.h>

#include "cfg.h"
#include "dbuf.h"

/**
 * "http://HOST:PORT" of the daemon's admin listener into base: from admin (HOST:PORT, given with
 * --admin) or else admin.listen (a wildcard is reached on loopback; port 0 needs --admin). who names
 * the command in messages. 0, or -1 with a message printed on stderr.
 */
int acli_base(const char *who, const char *admin, const dp_config *c, char *base, size_t cap);

/**
 * One request (GET or POST with an empty body) to base + target, timeout_s at most; the answer's body
 * in out (at most max bytes). Returns the HTTP status, or -1 with a message printed on stderr.
 */
long acli_call(const char *who, const char *base, const char *method, const char *target, long timeout_s,
               size_t max, dbuf *out);

#endif
