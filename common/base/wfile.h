/*
 * wfile: replacing a small file whole and durably (state files, records kept beside the journal).
 */
#ifndef DP_WFILE_H
#define DP_WFILE_H

#include <stddef.h>

/**
 * Replace dir/leaf with len bytes of data: written to a new dir/leaf~XXXXXX (mode 0600), fsynced,
 * renamed over dir/leaf, and dir fsynced, so after a crash the file is the old one or the new one,
 * never a mix. A temporary name ends in '~' plus six characters (skip such names when listing dir).
 * 0, or -errno (the temporary file is removed).
 */
int wf_replace(const char *dir, const char *leaf, const void *data, size_t len);

/** fsync a directory (after a rename in it). 0 or -errno. */
int wf_fsync_dir(const char *dir);

#endif
