/*
 * phcli: the `dualpipe phase` operator command (README "Cutover").
 *
 *   dualpipe phase status            [--json]          the phase, the fleet record, its members
 *   dualpipe phase set PHASE         [--force] [--json] switch, wait for the outcome, print it
 *   dualpipe phase forget MEMBER --yes                 a proxy gone for good: stop waiting for it
 * with --config FILE (required: admin.listen comes from it) and optionally --admin HOST:PORT.
 * The daemon must run: a switch is its work (proxy/phctl.h).
 *
 * Exit status: 0 done (or already in PHASE), 1 failed, refused or aborted (the reason on stderr),
 * 2 usage error.
 */
#ifndef DP_PHCLI_H
#define DP_PHCLI_H

/** Run `dualpipe phase ...`: argv[0] is "phase". Returns the exit status. */
int phcli_main(int argc, char **argv);

#endif
