/*
 * ajson: the JSON answers of the admin endpoints served by modules that are not tied to libmicrohttpd
 * (bfadmin, phctl, vrec): they fill a dbuf and return the HTTP status, admin.c sends them.
 */
#ifndef DP_AJSON_H
#define DP_AJSON_H

#include <jansson.h>
#include <stdarg.h>

#include "dbuf.h"

/** {"error": the formatted message} and a newline into out (what it held is dropped); returns status. An
 *  answer that does not fit is sent short: the status says enough. */
__attribute__((format(printf, 3, 4))) unsigned ajson_error(dbuf *out, unsigned status, const char *fmt, ...);
/** ajson_error with a va_list. A message that is not UTF-8 (it may quote a value a client sent) becomes
 *  "bad request (a value is not UTF-8)". */
unsigned ajson_verror(dbuf *out, unsigned status, const char *fmt, va_list ap);
/** o (consumed; NULL: out of memory) as compact JSON and a newline into out; returns status, or 500 with an
 *  error when it cannot be rendered. */
unsigned ajson_reply(dbuf *out, unsigned status, json_t *o);

#endif
