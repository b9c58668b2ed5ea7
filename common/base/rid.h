/*
 * rid: request ids, the one value that ties a write's lines in the proxy log to the requests Gen1
 * and Gen2 saw (x-ms-client-request-id). A writer's own id is kept when it is well formed — a GUID,
 * or the Java ADLS SDK's "<uuid>.<retry>", or any short token of characters that need no quoting
 * in a header, a log line or a URL — otherwise the proxy makes a random UUID (version 4).
 */
#ifndef DP_RID_H
#define DP_RID_H

#include <stdbool.h>

#define RID_MAX 64 /* bytes of an id (without the NUL); Gen2 allows 1024, logs want short ones */

/** True when s is 1..RID_MAX bytes of [A-Za-z0-9._:-] (no quoting needed anywhere it goes). */
bool rid_valid(const char *s);
/** A fresh random UUID (lower-case, 36 bytes + NUL) into out. */
void rid_new(char out[RID_MAX + 1]);

#endif
