/*
 * rewrite: the `dualpipe rewrite DIR` command (README "Rewrite"): finds the Gen1 references
 * (adl:// URIs, *.azuredatalakestore.net endpoints, Hadoop ADL keys) in the code, notebooks and
 * configuration under DIR, rewrites what the proxy's mappings cover to abfss:// and the ABFS keys
 * (a unified diff; --apply writes, with backups) and reports what it cannot rewrite and why.
 */
#ifndef DP_REWRITE_H
#define DP_REWRITE_H

/** Run `dualpipe rewrite ...`: argv[0] is "rewrite". Returns the exit status (0, 1, 2, 3: see --help). */
int rewrite_main(int argc, char **argv);

#endif
