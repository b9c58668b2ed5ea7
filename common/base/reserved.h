/*
 * reserved: names on Gen2 that belong to dualpipe itself, never to the data it mirrors or serves.
 *
 * DP_FLEET_DIR is the fleet's directory at the root of a mapped Gen2 filesystem (proxy/fleet.c: the phase
 * record and the members' reports). Users must not see or touch it: the tree walker's users skip it on
 * the Gen2 side (walk_gen2.skip), the applier never copies onto it or sweeps it away, and the Gen1 API
 * served on Gen2 (gen2-only, gen2-primary) hides it from listings of the root and refuses every op on it.
 * Every side names it through this header, so a later config key changes it in one place.
 */
#ifndef DP_RESERVED_H
#define DP_RESERVED_H

#include <stdbool.h>
#include <string.h>

#define DP_FLEET_DIR ".dualpipe"
/* What a refusal says about it (after the path). */
#define DP_RESERVED_WHY "is reserved for dualpipe's phase record (the fleet directory " DP_FLEET_DIR " on Gen2)"

/**
 * True when path (inside a Gen2 filesystem, with or without a leading '/'; "" or "/" is the root) is
 * the relative directory dir at the filesystem's root or lies below it.
 */
static inline bool dp_reserved_under(const char *path, const char *dir)
{
    while (*path == '/') path++;
    size_t n = strlen(dir);
    return n > 0 && strncmp(path, dir, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

/** dp_reserved_under(path, DP_FLEET_DIR). */
static inline bool dp_reserved_g2(const char *path)
{
    return dp_reserved_under(path, DP_FLEET_DIR);
}

#endif
