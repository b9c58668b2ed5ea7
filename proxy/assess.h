/*
 * assess: the `dualpipe assess [PATH]` command (README "Assess"): walks Gen1 and reports what moving
 * the tree to Gen2 involves, as a text summary, JSON and a self-contained HTML report.
 */
#ifndef DP_ASSESS_H
#define DP_ASSESS_H

/** Run `dualpipe assess ...`: argv[0] is "assess". Returns the exit status (0, 1, 2, 3: see --help). */
int assess_main(int argc, char **argv);

#endif
