/*
 * urlcodec: percent-decoding and -encoding for URL paths and query strings, and a zero-copy split of
 * a raw query string into name/value pieces. The decoder is strict (RFC 3986 escapes only, upper or
 * lower case hex) and can refuse control bytes, so a decoded value can never carry CR, LF or NUL
 * into a header, a log line or a file name. Inputs are taken with an explicit length and may hold
 * NUL bytes; nothing here reads past in[len-1].
 */
#include "urlcodec.h"

#include <errno.h>
#include <string.h>

static int url_hexval(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static bool url_is_ctl(unsigned char c)
{
    return c < 0x20 || c == 0x7F;
}

int url_decode(const char *in, size_t len, unsigned flags, dbuf *out)
{
    dbuf_reset(out);
    size_t i = 0;
    while (i < len) {
        /* Copy the longest run that needs no translation in one go. */
        size_t j = i;
        while (j < len && in[j] != '%' && !((flags & URL_FORM) && in[j] == '+') &&
               !((flags & URL_NO_CTL) && url_is_ctl((unsigned char)in[j])))
            j++;
        if (j > i) {
            int rc = dbuf_add(out, in + i, j - i);
            if (rc) return rc;
            i = j;
            continue;
        }
        unsigned char c = (unsigned char)in[i];
        if (c == '%') {
            if (len - i < 3) return -EINVAL;
            int hi = url_hexval((unsigned char)in[i + 1]), lo = url_hexval((unsigned char)in[i + 2]);
            if (hi < 0 || lo < 0) return -EINVAL;
            c = (unsigned char)(hi << 4 | lo);
            i += 3;
        } else if (c == '+') {
            c = ' ';
            i++;
        } else {
            i++; /* a literal control byte, refused below */
        }
        if ((flags & URL_NO_CTL) && url_is_ctl(c)) return -EINVAL;
        int rc = dbuf_add(out, &c, 1);
        if (rc) return rc;
    }
    if (!out->data) return dbuf_add(out, "", 0); /* always leave a valid empty string */
    return 0;
}

static bool url_is_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

int url_encode(const char *s, bool keep_slash, dbuf *out)
{
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        const unsigned char *q = p;
        while (*q && (url_is_unreserved(*q) || (keep_slash && *q == '/')))
            q++;
        if (q > p) {
            int rc = dbuf_add(out, p, (size_t)(q - p));
            if (rc) return rc;
            p = q;
            continue;
        }
        char esc[3] = {'%', hex[*p >> 4], hex[*p & 15]};
        int rc = dbuf_add(out, esc, 3);
        if (rc) return rc;
        p++;
    }
    if (!out->data) return dbuf_add(out, "", 0);
    return 0;
}

int url_split_query(const char *query, url_param *params, int max)
{
    int n = 0;
    if (!query) return 0;
    const char *p = query;
    while (*p) {
        const char *amp = strchr(p, '&');
        size_t plen = amp ? (size_t)(amp - p) : strlen(p);
        if (plen > 0) {
            if (n >= max) return -E2BIG;
            const char *eq = memchr(p, '=', plen);
            url_param *u = &params[n++];
            u->name = p;
            if (eq) {
                u->name_len = (size_t)(eq - p);
                u->value = eq + 1;
                u->value_len = plen - u->name_len - 1;
            } else {
                u->name_len = plen;
                u->value = NULL;
                u->value_len = 0;
            }
        }
        if (!amp) break;
        p = amp + 1;
    }
    return n;
}

int url_query_get(const char *query, const char *name, dbuf *out)
{
    url_param ps[32];
    int n = url_split_query(query, ps, (int)(sizeof ps / sizeof ps[0]));
    if (n < 0) return -1;
    for (int i = 0; i < n; i++) {
        dbuf nm;
        dbuf_init(&nm, 256);
        int rc = url_decode(ps[i].name, ps[i].name_len, URL_FORM | URL_NO_CTL, &nm);
        bool match = rc == 0 && nm.data && strcmp(nm.data, name) == 0;
        dbuf_free(&nm);
        if (rc != 0) return -1;
        if (!match) continue;
        dbuf_reset(out);
        if (!ps[i].value) return dbuf_adds(out, "") == 0 ? 1 : -1;
        if (url_decode(ps[i].value, ps[i].value_len, URL_FORM | URL_NO_CTL, out) != 0) return -1;
        if (!out->data && dbuf_adds(out, "") != 0) return -1;
        return 1;
    }
    return 0;
}
