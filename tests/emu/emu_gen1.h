/*
 * emu_gen1: the Gen1 / WebHDFS service of dualpipe-emu (protocols.md §1, clients.md). Serves
 * /webhdfs/v1/... and /WebHdfsExt/... in the ADLS dialect (one-step write=true/append=true/read=true,
 * 307 to the same URL plus the flag when it is missing) or the Hadoop dialect (two-step: the namenode
 * listener answers CREATE/APPEND/OPEN with a 307 to the datanode listener, or 200 + {"Location"} with
 * noredirect=true).
 */
#ifndef DP_EMU_GEN1_H
#define DP_EMU_GEN1_H

#include <stdbool.h>
#include <stdint.h>

#include "emu_http.h"
#include "emu_ident.h"
#include "emu_store.h"

typedef struct emu_gen1_opts {
    emu_store *store;
    bool hadoop;                 /* dialect: false = adls, true = hadoop */
    emu_ident *ident;            /* when it requires one, requests must carry a bearer token it knows;
                                    the service owns it from emu_gen1_new on (even on failure) */
    const char *superuser;       /* identity that bypasses permission checks (default "hdfs") */
    const char *default_user;    /* identity when a request names none (default: superuser) */
    uint64_t max_body;           /* bytes per CREATE/APPEND body (default 4 MiB, like ADLS) */
    int64_t lease_ms;            /* a leaseid not renewed for this long goes stale (default 10 min) */
    unsigned ls_limit;           /* hadoop LISTSTATUS_BATCH entries per answer (dfs.ls.limit; default 1000) */
} emu_gen1_opts;

typedef struct emu_gen1 emu_gen1;

/** Create the service. *svc is filled with callbacks whose ctx is the new emu_gen1. */
int emu_gen1_new(const emu_gen1_opts *o, emu_gen1 **out, emu_service *svc);
/** Hadoop dialect: base URL ("http://127.0.0.1:PORT") of the datanode listener; requests arriving
 *  there are the data step of CREATE/APPEND/OPEN. Call once both listeners run. */
void emu_gen1_set_datanode(emu_gen1 *g, const char *datanode_base_url);
void emu_gen1_free(emu_gen1 *g);

#endif
