/*
 * mcmd: what the migration commands (assess, backfill, verify) share: the stop flag their SIGINT/SIGTERM
 * handler sets, their usage errors and number options, the tree (PATH) they walk, and how they print
 * names and write their reports.
 */
#ifndef DP_MCMD_H
#define DP_MCMD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cfg.h"

/** One command: its name in messages ("dualpipe NAME: ...") and its usage text. */
typedef struct mcmd {
    const char *name;
    void (*usage)(FILE *out);
} mcmd;

/** Set once SIGINT or SIGTERM arrived (after mcmd_catch_signals): the command stops at the next step and
 *  keeps its cursor. The walker takes its address (walk_opts.stop). */
extern atomic_int mcmd_stop;
void mcmd_catch_signals(void);
static inline bool mcmd_stopping(void) { return atomic_load(&mcmd_stop) != 0; }

/** "dualpipe NAME: " and the message on stderr, then the usage. */
__attribute__((format(printf, 2, 3))) void mcmd_usage_error(const mcmd *m, const char *fmt, ...);
/** The number val of option opt within [lo, hi] into *out; 0, or -1 after a usage error naming opt. */
int mcmd_num(const mcmd *m, const char *opt, const char *val, double lo, double hi, double *out);
/** Whether opt is one of the NULL-terminated opts (the options that take a value). */
bool mcmd_takes_value(const char *opt, const char *const *opts);

/** The tree to walk: given (NULL: "/" when a mapping covers it, or the only mapping's prefix), normalised
 *  into *path (malloc'd). 0; 2 usage error (printed with the usage); 1 outside every mapping (printed). */
int mcmd_root(const mcmd *m, const dp_config *cfg, const char *given, char **path);

/** s with control characters escaped (\xNN): names from the stores never move a terminal's cursor. */
void mcmd_put_safe(FILE *out, const char *s);
/** n bytes as "1.5 GiB". */
void mcmd_fmt_bytes(uint64_t n, char *buf, size_t cap);
/** The n parts, one after the other, into path ("-": stdout, flushed). 0, or -1 (errno set). */
int mcmd_write(const char *path, const char *const *parts, size_t n);
/** text and a newline into path, as mcmd_write. */
int mcmd_write_line(const char *path, const char *text);

double mcmd_mono_s(void);
void mcmd_sleep_s(double s);

#endif
