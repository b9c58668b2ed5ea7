/*
 * log: one line per call on stderr, "2026-11-25T02:30:00.123Z level=info comp=emu-gen1 <message>".
 * The whole line is formatted into a stack buffer and written with a single fwrite, so lines from
 * different threads never interleave. Control characters in the message (a client's path may end up
 * in one) are escaped, so nobody can forge a log line with an embedded CR/LF. Lines longer than
 * LOG_LINE_MAX are cut and marked.
 *
 * State: log_current_level is the one mutable global the project allows (the LOG macros read it
 * without a call; atomic, relaxed: a level change on SIGHUP needs no ordering, only no torn read); the component name is a second, write-once-at-start-up pointer kept atomic so a
 * late log_set_component from another thread is still well defined.
 */
#include "log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define LOG_LINE_MAX 4096

_Atomic log_level log_current_level = LOG_INFO;

static _Atomic(const char *) log_component = "dualpipe";

static const char *const log_names[] = {"error", "warn", "info", "debug"};

int log_parse_level(const char *s, log_level *out)
{
    if (!s) return -1;
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(s, log_names[i]) == 0) {
            *out = (log_level)i;
            return 0;
        }
    }
    if (strcasecmp(s, "warning") == 0) {
        *out = LOG_WARN;
        return 0;
    }
    return -1;
}

void log_set_level(log_level lvl)
{
    if (lvl < LOG_ERROR) lvl = LOG_ERROR;
    if (lvl > LOG_DEBUG) lvl = LOG_DEBUG;
    atomic_store_explicit(&log_current_level, lvl, memory_order_relaxed);
}

void log_set_component(const char *name)
{
    atomic_store(&log_component, name ? name : "dualpipe");
}

/* Copy src into dst[*pos..cap-1), escaping control characters; returns false when it did not fit. */
static bool log_append_escaped(char *dst, size_t cap, size_t *pos, const char *src)
{
    size_t o = *pos;
    for (const unsigned char *p = (const unsigned char *)src; *p; p++) {
        char esc[5];
        size_t n = 1;
        esc[0] = (char)*p;
        if (*p == '\n') {
            esc[0] = '\\', esc[1] = 'n', n = 2;
        } else if (*p == '\r') {
            esc[0] = '\\', esc[1] = 'r', n = 2;
        } else if (*p == '\t') {
            esc[0] = '\\', esc[1] = 't', n = 2;
        } else if (*p < 0x20 || *p == 0x7F) {
            static const char hex[] = "0123456789abcdef";
            esc[0] = '\\', esc[1] = 'x', esc[2] = hex[*p >> 4], esc[3] = hex[*p & 15], n = 4;
        }
        if (o + n >= cap) {
            *pos = o;
            return false;
        }
        memcpy(dst + o, esc, n);
        o += n;
    }
    *pos = o;
    return true;
}

void log_write(log_level lvl, const char *fmt, ...)
{
    char msg[LOG_LINE_MAX];
    char line[LOG_LINE_MAX + 64];
    va_list ap;
    va_start(ap, fmt);
    int mn = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (mn < 0) {
        msg[0] = '\0';
        mn = 0;
    }

    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    unsigned l = (unsigned)lvl;
    const char *lname = l < 4 ? log_names[l] : "debug";
    const char *comp = atomic_load(&log_component);
    int hn = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ level=%s comp=%s ", tm.tm_year + 1900,
                      tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ts.tv_nsec / 1000000),
                      lname, comp);
    if (hn < 0) return;
    size_t pos = (size_t)hn < sizeof line ? (size_t)hn : sizeof line - 1;
    static const char cut[] = " [truncated]";
    size_t room = sizeof line - sizeof cut - 1; /* keep space for the mark and the newline */
    if (pos > room) pos = room;
    bool whole = log_append_escaped(line, room, &pos, msg) && (size_t)mn < sizeof msg;
    if (!whole) {
        memcpy(line + pos, cut, sizeof cut - 1);
        pos += sizeof cut - 1;
    }
    line[pos++] = '\n';
    fwrite(line, 1, pos, stderr);
}
