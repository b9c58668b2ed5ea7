/*
 * jcli: the `dualpipe journal` operator command (README "Operator commands").
 *
 *   dualpipe journal status                          [--json]
 *   dualpipe journal list [--parked] [--after N] [--limit N] [--json]
 *   dualpipe journal retry ID | retry --all          parked record(s) become resyncs again
 *   dualpipe journal drop ID --yes                   give up a parked record (recorded as DROPPED)
 *   dualpipe journal resync PATH                     journal a resync of PATH from Gen1
 * with --config FILE (required: admin.listen and the journal directory come from it) and optionally
 * --admin HOST:PORT (the daemon's admin address when admin.listen does not say it, e.g. port 0).
 *
 * Online or offline: when the journal directory's LOCK is held (the daemon runs), the command goes to
 * the daemon's admin API (/admin/journal...); otherwise it opens the journal itself (recovering it,
 * problems reported on stderr), does the same thing, and closes it again.
 *
 * Exit status: 0 done, 1 the operation failed (a message on stderr), 2 usage error (including drop
 * without --yes). Never prints a secret from the configuration.
 */
#ifndef DP_JCLI_H
#define DP_JCLI_H

#include <jansson.h>

#include "cfg.h"

/** Run `dualpipe journal ...`: argv[0] is "journal". Returns the exit status. */
int jcli_main(int argc, char **argv);

/**
 * Every record the journal still holds (pending or parked), oldest first, as the admin API's list
 * documents them ({"seq","op","path","state",...}): from the running daemon's admin port (admin
 * HOST:PORT, or admin.listen) when it holds the journal, else read offline. fn gets each record.
 * *online says which. 0, or -1 with the reason in err (printed problems of an offline recovery go to
 * stderr, as for `dualpipe journal`).
 */
int jcli_records(const dp_config *c, const char *admin, void (*fn)(void *ud, const json_t *rec), void *ud,
                 bool *online, char *err, size_t errlen);

#endif
