/*
 * log: level-gated, structured (key=value) logging to stderr for the daemons. Arguments are not
 * evaluated when the level is off. Library code in common/ does not log; it returns errors.
 */
#ifndef DP_LOG_H
#define DP_LOG_H

#include <stdatomic.h>

typedef enum log_level { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 } log_level;

/* Atomic: SIGHUP changes it on one thread while every other thread's LOG reads it. */
extern _Atomic log_level log_current_level;

/** Parse "error|warn|info|debug". Returns 0 or -1. */
int log_parse_level(const char *s, log_level *out);
void log_set_level(log_level lvl);
/** Set the component name printed in every line (e.g. "emu-gen1"). Not copied. */
void log_set_component(const char *name);

__attribute__((format(printf, 2, 3))) void log_write(log_level lvl, const char *fmt, ...);

#define LOG(lvl, ...)                                                                              \
    do {                                                                                           \
        if ((lvl) <= atomic_load_explicit(&log_current_level, memory_order_relaxed))               \
            log_write((lvl), __VA_ARGS__);                                                         \
    } while (0)
#define LOGE(...) LOG(LOG_ERROR, __VA_ARGS__)
#define LOGW(...) LOG(LOG_WARN, __VA_ARGS__)
#define LOGI(...) LOG(LOG_INFO, __VA_ARGS__)
#define LOGD(...) LOG(LOG_DEBUG, __VA_ARGS__)

#endif
