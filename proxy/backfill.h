/*
 * backfill: the `dualpipe backfill [PATH]` command (README "Backfill"): copies what Gen1 holds under
 * PATH and Gen2 lacks (or holds differently) through the running daemon, so that no copy ever
 * replaces a newer write made through the proxy.
 */
#ifndef DP_BACKFILL_H
#define DP_BACKFILL_H

/** Run `dualpipe backfill ...`: argv[0] is "backfill". Returns the exit status (0, 1, 2, 3: see --help). */
int backfill_main(int argc, char **argv);

#endif
