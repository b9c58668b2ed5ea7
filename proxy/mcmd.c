/*
 * mcmd: what the migration commands share (see mcmd.h).
 */
#include "mcmd.h"

#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "whreq.h"

atomic_int mcmd_stop; /* lock-free: set from the signal handler */

static void on_signal(int sig)
{
    (void)sig;
    atomic_store(&mcmd_stop, 1);
}

void mcmd_catch_signals(void)
{
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

void mcmd_usage_error(const mcmd *m, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "dualpipe %s: ", m->name);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    m->usage(stderr);
}

int mcmd_num(const mcmd *m, const char *opt, const char *val, double lo, double hi, double *out)
{
    char *end = NULL;
    double d = strtod(val, &end);
    if (!val[0] || !end || *end || !(d >= lo && d <= hi)) {
        mcmd_usage_error(m, "%s: must be a number from %g to %g\n", opt, lo, hi);
        return -1;
    }
    *out = d;
    return 0;
}

bool mcmd_takes_value(const char *opt, const char *const *opts)
{
    for (; *opts; opts++)
        if (strcmp(opt, *opts) == 0) return true;
    return false;
}

int mcmd_root(const mcmd *m, const dp_config *cfg, const char *given, char **path)
{
    *path = NULL;
    if (!given) {
        if (cfg_mapping_of(cfg, "/", NULL) >= 0) given = "/";
        else if (cfg->nmappings == 1) given = cfg->mappings[0].gen1_prefix;
        else {
            mcmd_usage_error(m, "the mappings cover several trees and none covers /: give PATH\n");
            return 2;
        }
    }
    whreq_err we;
    if (given[0] != '/' || whreq_norm_path(given, path, &we) != 0) {
        mcmd_usage_error(m, "PATH must be an absolute path without . or .. segments: %s\n", given);
        return 2;
    }
    if (cfg_mapping_of(cfg, *path, NULL) < 0) {
        fprintf(stderr, "dualpipe %s: %s is outside every mapping (gen2.mappings): nothing there goes to Gen2\n",
                m->name, *path);
        return 1;
    }
    return 0;
}

void mcmd_put_safe(FILE *out, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < 0x20 || *p == 0x7f) fprintf(out, "\\x%02x", *p);
        else fputc(*p, out);
    }
}

void mcmd_fmt_bytes(uint64_t n, char *buf, size_t cap)
{
    static const char *const u[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    double v = (double)n;
    int i = 0;
    while (v >= 1024 && i < 5) v /= 1024, i++;
    if (i == 0) snprintf(buf, cap, "%llu B", (unsigned long long)n);
    else snprintf(buf, cap, "%.1f %s", v, u[i]);
}

int mcmd_write(const char *path, const char *const *parts, size_t n)
{
    FILE *f = strcmp(path, "-") == 0 ? stdout : fopen(path, "we");
    if (!f) return -1;
    bool bad = false;
    for (size_t i = 0; i < n && !bad; i++) bad = fputs(parts[i], f) == EOF;
    if (f != stdout) bad |= fclose(f) != 0;
    else bad |= fflush(f) != 0;
    return bad ? -1 : 0;
}

int mcmd_write_line(const char *path, const char *text)
{
    return mcmd_write(path, (const char *const[]){text, "\n"}, 2);
}

double mcmd_mono_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

void mcmd_sleep_s(double s)
{
    if (s <= 0) return;
    struct timespec t = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&t, NULL);
}
