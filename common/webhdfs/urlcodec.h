/*
 * urlcodec: percent-decoding and -encoding for URL paths and query strings, and splitting a raw
 * query string into parameters. Path decoding never turns '+' into a space; query (form) decoding
 * does. Decoding rejects malformed escapes ("%G1", a trailing "%") and, when asked, decoded NUL and
 * control characters, so nothing a client sends can inject CR/LF into a later request.
 */
#ifndef DP_URLCODEC_H
#define DP_URLCODEC_H

#include <stdbool.h>
#include <stddef.h>

#include "dbuf.h"

enum {
    URL_FORM = 1 << 0,      /* '+' decodes to a space (query strings) */
    URL_NO_CTL = 1 << 1,    /* reject decoded bytes 0x00-0x1F and 0x7F */
};

/**
 * Decode in[0..len) into out (cleared first). flags: URL_FORM, URL_NO_CTL.
 * Returns 0, -EINVAL for a malformed escape or a forbidden byte, -E2BIG/-ENOMEM from out.
 */
__attribute__((warn_unused_result)) int url_decode(const char *in, size_t len, unsigned flags, dbuf *out);

/**
 * Append s percent-encoded to out. Unreserved characters (A-Z a-z 0-9 - . _ ~) are kept; keep_slash
 * also keeps '/'. Space becomes %20. Returns 0 or a dbuf error.
 */
__attribute__((warn_unused_result)) int url_encode(const char *s, bool keep_slash, dbuf *out);

/** One query parameter: name and value as they appear on the wire (not decoded). */
typedef struct url_param {
    const char *name;
    size_t name_len;
    const char *value;   /* points after '='; NULL when the parameter had no '=' */
    size_t value_len;
} url_param;

/**
 * Split a raw query string (without the leading '?') on '&' into at most max params.
 * Empty pieces ("a&&b") are skipped. Returns the number of params, or -E2BIG when there are more
 * than max. Pointers refer into query.
 */
int url_split_query(const char *query, url_param *params, int max);

/**
 * Find parameter name in a raw query (names compared after decoding, exactly; the first occurrence
 * wins; at most 32 parameters) and decode its value into out (form style, control characters
 * refused; "" for a parameter without '='). Returns 1 found, 0 absent, -1 malformed.
 */
int url_query_get(const char *query, const char *name, dbuf *out);

#endif
