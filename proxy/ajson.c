/*
 * ajson: the admin endpoints' JSON answers (ajson.h).
 */
#include "ajson.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

unsigned ajson_verror(dbuf *out, unsigned status, const char *fmt, va_list ap)
{
    char msg[800];
    vsnprintf(msg, sizeof msg, fmt, ap);
    json_t *o = json_pack("{s:s}", "error", msg);
    if (!o) o = json_pack("{s:s}", "error", "bad request (a value is not UTF-8)");
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    dbuf_reset(out);
    int rc = dbuf_adds(out, s ? s : "{\"error\":\"out of memory\"}");
    if (rc == 0) rc = dbuf_adds(out, "\n");
    free(s);
    (void)rc; /* an answer that does not fit is sent short: the status says enough */
    return status;
}

unsigned ajson_error(dbuf *out, unsigned status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    unsigned st = ajson_verror(out, status, fmt, ap);
    va_end(ap);
    return st;
}

unsigned ajson_reply(dbuf *out, unsigned status, json_t *o)
{
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!s) return ajson_error(out, 500, "out of memory");
    dbuf_reset(out);
    int rc = dbuf_adds(out, s);
    if (rc == 0) rc = dbuf_adds(out, "\n");
    free(s);
    return rc == 0 ? status : 500;
}
