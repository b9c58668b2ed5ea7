/*
 * front_frame: RFC 9112 header and framing checks of the front end (see front_frame.h).
 */
#include "front_frame.h"

#include <string.h>
#include <strings.h>

#define FF_EXC_ARG "IllegalArgumentException"

/* RFC 9110 tchar. */
static bool is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool name_is(const ff_field *f, const char *name)
{
    size_t n = strlen(name);
    return f->name_len == n && strncasecmp(f->name, name, n) == 0;
}

/* Content-Length = 1*DIGIT, at most INT64_MAX. */
static bool parse_length(const char *v, size_t n, int64_t *out)
{
    if (n == 0 || n > 19) return false;
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9') return false;
        x = x * 10 + (uint64_t)(v[i] - '0');
    }
    if (x > (uint64_t)INT64_MAX) return false;
    *out = (int64_t)x;
    return true;
}

/* Transfer-Encoding's coding list: 0 when it is exactly "chunked" (blanks around it allowed), else the
 * status to refuse it with: 400 when chunked is not the last coding (the body's end cannot be found),
 * 501 when chunked is last but other codings come before it. */
static int check_codings(const char *v, size_t n, whreq_err *e)
{
    size_t nchunked = 0, ncodings = 0;
    bool last_chunked = false;
    size_t i = 0;
    while (i <= n) {
        size_t end = i;
        while (end < n && v[end] != ',') end++;
        size_t a = i, b = end;
        while (a < b && (v[a] == ' ' || v[a] == '\t')) a++;
        while (b > a && (v[b - 1] == ' ' || v[b - 1] == '\t')) b--;
        if (b > a) {
            ncodings++;
            last_chunked = b - a == 7 && strncasecmp(v + a, "chunked", 7) == 0;
            if (last_chunked) nchunked++;
        }
        i = end + 1;
    }
    if (ncodings == 0 || !last_chunked || nchunked > 1)
        return whreq_fail(e, 400, FF_EXC_ARG, "Transfer-Encoding must end with chunked, once");
    if (ncodings > 1)
        return whreq_fail(e, 501, "UnsupportedOperationException",
                          "Transfer-Encoding other than chunked is not implemented");
    return 0;
}

int ff_check(const char *version, const ff_field *fields, size_t n, ff_frame *out, whreq_err *e)
{
    if (n > FF_MAX_FIELDS)
        return whreq_fail(e, 431, FF_EXC_ARG, "Too many header fields (at most %d)", FF_MAX_FIELDS);
    bool http10 = version && strcmp(version, "HTTP/1.0") == 0;
    size_t nhost = 0, nte = 0, ncl = 0;
    int64_t cl = -1;
    const ff_field *te = NULL;
    for (size_t i = 0; i < n; i++) {
        const ff_field *f = &fields[i];
        if (f->name_len == 0) return whreq_fail(e, 400, FF_EXC_ARG, "Empty header field name");
        for (size_t k = 0; k < f->name_len; k++)
            if (!is_tchar((unsigned char)f->name[k]))
                return whreq_fail(e, 400, FF_EXC_ARG,
                                  "Invalid header field name (whitespace before the colon or a byte outside a "
                                  "token)");
        for (size_t k = 0; k < f->value_len; k++) {
            unsigned char c = (unsigned char)f->value[k];
            if ((c < 0x20 && c != '\t') || c == 0x7f)
                return whreq_fail(e, 400, FF_EXC_ARG, "Control character in the value of header %.*s",
                                  (int)(f->name_len > 64 ? 64 : f->name_len), f->name);
        }
        if (name_is(f, "Host")) {
            nhost++;
        } else if (name_is(f, "Transfer-Encoding")) {
            nte++;
            te = f;
        } else if (name_is(f, "Content-Length")) {
            int64_t v;
            if (!parse_length(f->value, f->value_len, &v))
                return whreq_fail(e, 400, FF_EXC_ARG, "Invalid Content-Length");
            if (ncl > 0 && v != cl) return whreq_fail(e, 400, FF_EXC_ARG, "Content-Length headers differ");
            cl = v;
            ncl++;
        }
    }
    if (nhost > 1) return whreq_fail(e, 400, FF_EXC_ARG, "More than one Host header");
    if (nhost == 0 && !http10) return whreq_fail(e, 400, FF_EXC_ARG, "HTTP/1.1 request without a Host header");
    out->content_length = cl;
    out->chunked = false;
    out->must_close = false;
    if (nte > 0) {
        if (http10) return whreq_fail(e, 400, FF_EXC_ARG, "Transfer-Encoding in an HTTP/1.0 request");
        if (nte > 1) return whreq_fail(e, 400, FF_EXC_ARG, "More than one Transfer-Encoding header");
        if (check_codings(te->value, te->value_len, e) != 0) return -1;
        out->chunked = true;
        out->content_length = -1;
        out->must_close = ncl > 0; /* served by the transfer coding alone, then closed (RFC 9112 6.3) */
    }
    return 0;
}

size_t ff_query_params(const char *query)
{
    if (!query || !*query) return 0;
    size_t n = 1;
    for (const char *p = query; *p; p++) n += *p == '&';
    return n;
}

bool ff_in_place(const ff_field *fields, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const ff_field *f = &fields[i];
        if (f->name[f->name_len] != '\0' || f->value[f->value_len] != '\0') return false;
        /* The value starts after the NUL that replaced the colon and optional blanks. */
        const char *p = f->value;
        while (p > f->name + f->name_len + 1 && (p[-1] == ' ' || p[-1] == '\t')) p--;
        if (p != f->name + f->name_len + 1) return false;
        /* The line ends right after the value: LF (one NUL) or CRLF (two), then the next name, or the
         * empty line ending the section (another NUL). */
        const char *end = f->value + f->value_len; /* the NUL of LF or of CR */
        if (i + 1 < n) {
            const char *next = fields[i + 1].name;
            if (!(next == end + 1 || (next == end + 2 && end[1] == '\0'))) return false;
        } else if (end[1] != '\0') {
            return false;
        }
    }
    return true;
}
