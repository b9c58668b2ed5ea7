/*
 * verify: the `dualpipe verify [PATH]` command (README "Verify"): compares Gen1 and Gen2 under PATH
 * (namespace, length, permission, owner/group and ACL through the identity map, the stored
 * modification time, and with --deep the content), live-aware, and with --repair journals a resync
 * of every difference and verifies again.
 */
#ifndef DP_VERIFY_H
#define DP_VERIFY_H

/** Run `dualpipe verify ...`: argv[0] is "verify". Returns the exit status (0, 1, 2, 3: see --help). */
int verify_main(int argc, char **argv);

#endif
