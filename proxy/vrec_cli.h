/*
 * vrec_cli: the verify command's side of the verify record (vrec.h). `dualpipe verify` tells the daemon
 * (its admin port, when the daemon holds the journal) that it begins and how it ended; with no daemon
 * it reads the journal's last seq offline and writes the record file itself. `dualpipe verify --last`
 * shows the record and whether it allows a cutover to gen2-only.
 *
 * Nothing here fails a verify: a record that cannot be written is reported on stderr, and the verify's
 * own result and exit status stand.
 */
#ifndef DP_VREC_CLI_H
#define DP_VREC_CLI_H

#include <stdbool.h>
#include <stdint.h>

#include "cfg.h"
#include "vrec.h"

/** What a verify learned when it began. */
typedef struct vrec_ticket {
    bool online;                  /* begun with the daemon (token valid) */
    char token[VREC_TOKEN_LEN + 1];
    bool seq_known;
    uint64_t seq;                 /* the journal's last appended seq when it began */
    int64_t started_ms;
    char root[1024];
} vrec_ticket;

/** Tell the daemon (or note offline) that a verify of root begins. Problems go to stderr. */
void vrec_cli_begin(const dp_config *cfg, const char *admin, const char *root, vrec_ticket *t);

/**
 * Record the result (r->root, begin fields and times are filled from t here). Prints one line saying
 * whether the record now allows a cutover, and why not. 0, or -1 (not recorded: stderr says why).
 */
int vrec_cli_end(const dp_config *cfg, const char *admin, const vrec_ticket *t, vrec_result *r);

/** `dualpipe verify --last`: print the record (json: as JSON). Exit status 0, or 1 (cannot read it). */
int vrec_cli_last(const dp_config *cfg, const char *admin, bool json);

#endif
