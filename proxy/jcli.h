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

/** Run `dualpipe journal ...`: argv[0] is "journal". Returns the exit status. */
int jcli_main(int argc, char **argv);

#endif
