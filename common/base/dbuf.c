/*
 * dbuf: a bounded, growable, always NUL-terminated byte buffer (after curl's dynbuf). Capacity grows
 * geometrically from a small minimum but never beyond max + 1 (the NUL), so a client cannot make
 * one buffer hold more than its owner allowed. Every size computation is checked for overflow
 * before it is used.
 */
#include "dbuf.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DBUF_MIN_CAP 64

void dbuf_init(dbuf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

void dbuf_free(dbuf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void dbuf_reset(dbuf *b)
{
    b->len = 0;
    if (b->data) b->data[0] = '\0';
}

/* Make room for n more bytes plus the NUL. */
static int dbuf_reserve(dbuf *b, size_t n)
{
    if (n > b->max || b->len > b->max - n || b->len + n > SIZE_MAX - 1) return -E2BIG;
    size_t need = b->len + n + 1; /* cannot overflow: checked just above */
    if (need <= b->cap) return 0;
    size_t ncap = b->cap ? b->cap : DBUF_MIN_CAP;
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2) {
            ncap = need;
            break;
        }
        ncap *= 2;
    }
    /* Never allocate more than the limit allows (max + 1 for the NUL), unless max is huge. */
    if (b->max < SIZE_MAX && ncap > b->max + 1) ncap = b->max + 1;
    if (ncap < need) ncap = need;
    char *p = realloc(b->data, ncap);
    if (!p) return -ENOMEM;
    b->data = p;
    b->cap = ncap;
    return 0;
}

int dbuf_add(dbuf *b, const void *p, size_t n)
{
    int rc = dbuf_reserve(b, n);
    if (rc) return rc;
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int dbuf_adds(dbuf *b, const char *s)
{
    return dbuf_add(b, s, strlen(s));
}

int dbuf_vprintf(dbuf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0) return -EINVAL;
    int rc = dbuf_reserve(b, (size_t)n);
    if (rc) return rc;
    int m = vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    if (m != n) {
        b->data[b->len] = '\0';
        return -EINVAL;
    }
    b->len += (size_t)n;
    return 0;
}

int dbuf_printf(dbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = dbuf_vprintf(b, fmt, ap);
    va_end(ap);
    return rc;
}

char *dbuf_take(dbuf *b)
{
    char *p = b->data;
    if (!p) {
        p = malloc(1);
        if (!p) return NULL;
        p[0] = '\0';
    }
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    return p;
}
