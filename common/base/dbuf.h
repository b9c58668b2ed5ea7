/*
 * dbuf: a bounded, growable byte buffer (after curl's dynbuf). Every buffer that holds data coming
 * from a client has a hard upper bound; appending past it fails with -E2BIG instead of growing.
 * The buffer is always NUL-terminated so text users can treat it as a C string.
 */
#ifndef DP_DBUF_H
#define DP_DBUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct dbuf {
    char *data;    /* NUL-terminated contents, NULL until the first append */
    size_t len;    /* bytes used, excluding the terminating NUL */
    size_t cap;    /* bytes allocated */
    size_t max;    /* hard limit on len */
} dbuf;

/** Initialise an empty buffer that may hold at most max bytes. Allocates nothing. */
void dbuf_init(dbuf *b, size_t max);
/** Free the contents; the buffer is empty and reusable afterwards. */
void dbuf_free(dbuf *b);
/** Forget the contents but keep the allocation. */
void dbuf_reset(dbuf *b);
/** Append n bytes. Returns 0, -E2BIG past the limit, or -ENOMEM. */
__attribute__((warn_unused_result)) int dbuf_add(dbuf *b, const void *p, size_t n);
/** Append a C string. Same results as dbuf_add. */
__attribute__((warn_unused_result)) int dbuf_adds(dbuf *b, const char *s);
/** Append printf-style. Same results as dbuf_add. */
__attribute__((warn_unused_result, format(printf, 2, 3))) int dbuf_printf(dbuf *b, const char *fmt, ...);
__attribute__((warn_unused_result, format(printf, 2, 0))) int dbuf_vprintf(dbuf *b, const char *fmt, va_list ap);
/** Hand the contents to the caller (who frees them with free()); the buffer becomes empty.
 *  Returns an allocated empty string when nothing was appended, NULL only on ENOMEM. */
char *dbuf_take(dbuf *b);

#endif
