/*
 * rid: request ids (rid.h). The UUID comes from getrandom; should the kernel refuse (it only can
 * before its pool is initialised, long before a proxy runs) the clock stands in: an id must be
 * unique enough to trace a write, it is never a secret. Each thread takes its random bytes from the
 * kernel RID_POOL_BYTES at a time (one getrandom per 16 ids instead of one per request; the process
 * never forks, so no two processes share a pool).
 */
#include "rid.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

bool rid_valid(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                  c == '_' || c == ':' || c == '-';
        if (!ok || n >= RID_MAX) return false;
    }
    return n > 0;
}

#define RID_POOL_BYTES 256 /* getrandom never returns short for up to 256 bytes */

static _Thread_local unsigned char rid_pool[RID_POOL_BYTES];
static _Thread_local size_t rid_pool_pos = RID_POOL_BYTES;

void rid_new(char out[RID_MAX + 1])
{
    unsigned char b[16];
    if (rid_pool_pos + sizeof b > sizeof rid_pool &&
        getrandom(rid_pool, sizeof rid_pool, GRND_NONBLOCK) == (ssize_t)sizeof rid_pool)
        rid_pool_pos = 0;
    if (rid_pool_pos + sizeof b <= sizeof rid_pool) {
        memcpy(b, rid_pool + rid_pool_pos, sizeof b);
        memset(rid_pool + rid_pool_pos, 0, sizeof b); /* each byte is used once */
        rid_pool_pos += sizeof b;
    } else {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        memset(b, 0, sizeof b);
        memcpy(b, &ts, sizeof b < sizeof ts ? sizeof b : sizeof ts);
    }
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    snprintf(out, RID_MAX + 1, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
             b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}
