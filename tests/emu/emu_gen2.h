/*
 * emu_gen2: the ADLS Gen2 service of dualpipe-emu (protocols.md §2-3, clients.md). Path-style URLs
 * /{account}/{filesystem}/{path}, the DFS operations plus the Blob-shaped calls SDKs mix in, Shared
 * Key (both canonicalizations), service SAS and bearer-token authentication, and a local OAuth2
 * client-credentials endpoint and IMDS-style managed-identity endpoint that issue those tokens.
 */
#ifndef DP_EMU_GEN2_H
#define DP_EMU_GEN2_H

#include <stdint.h>

#include "emu_http.h"
#include "emu_store.h"
#include "skey.h"

typedef struct emu_gen2_opts {
    emu_store *store;
    const skey_key *key;             /* account name + key */
    const char *oauth_client_id;     /* client credentials accepted by the token endpoint; NULL = any */
    const char *oauth_client_secret; /* NULL = any */
    unsigned token_ttl_s;            /* lifetime of issued tokens (default 3600) */
    uint64_t max_body;               /* bytes per append (default 100 MiB) */
    uint32_t delete_page;            /* recursive deletes remove at most this many entries per call,
                                        answering x-ms-continuation until done; 0 = one call */
} emu_gen2_opts;

typedef struct emu_gen2 emu_gen2;

/**
 * Create the service. *svc is filled with callbacks whose ctx is the new emu_gen2; the store and
 * the key must outlive it (the key is copied, the store is not). Returns 0, or -ENOMEM.
 */
int emu_gen2_new(const emu_gen2_opts *o, emu_gen2 **out, emu_service *svc);
/** Free the service (after the HTTP listener that uses it has stopped). NULL is allowed. */
void emu_gen2_free(emu_gen2 *g);

#endif
