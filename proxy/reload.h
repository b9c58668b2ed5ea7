/*
 * reload: what SIGHUP changes in a running proxy. Modules register a hook with the config keys it
 * can apply live (rl_register); on SIGHUP main loads the file again (fully validated: a file with an
 * error changes nothing) and calls rl_reload, which
 *   1. names, one log line per key, every key that differs from the running configuration but that
 *      no hook can apply ("needs a restart": listen addresses, spool and journal directories,
 *      mappings, endpoints, ...);
 *   2. asks every hook to check the new configuration (check=true), and stops there, changing
 *      nothing, when one refuses (the line names the key);
 *   3. lets every hook apply it (check=false) and logs each key that changed since the last load.
 * A hook may also claim no key at all: a module that keeps a file of its own (a token, a map) and
 * re-reads it when it changes registers one to re-read it on SIGHUP too.
 *
 * Hooks run on the thread calling rl_reload (main's signal loop), one reload at a time; a hook
 * makes its new values visible to its own threads (atomics or its own lock). Registration is
 * thread-safe; a module unregisters before it frees what its hook touches.
 */
#ifndef DP_RELOAD_H
#define DP_RELOAD_H

#include <stdbool.h>
#include <stddef.h>

#include "cfg.h"

#define RL_MAX_HOOKS 16

/** A reload hook: check (true) whether nc can be applied, or apply it (false). 0, or -1 with err
 *  ("key: message"; never a secret). Applying after a successful check must not fail. */
typedef int (*rl_fn)(void *arg, const dp_config *nc, bool check, char *err, size_t errlen);

/** Register fn(arg) under name (for logs) for the NULL-terminated list keys it applies (NULL: none;
 *  the list must outlive the registration). 0, or -1 when RL_MAX_HOOKS are registered. */
int rl_register(const char *name, const char *const *keys, rl_fn fn, void *arg);
/** Remove the registration of fn with arg (no-op when absent). */
void rl_unregister(rl_fn fn, void *arg);
/** True when a registered hook applies key live. */
bool rl_key_live(const char *key);
/**
 * Apply nc (loaded and validated) to the running proxy: running is the configuration it started
 * with (restart-only keys are compared against it), prev the last one applied (live keys changed
 * since then are logged). Returns the number of live keys applied, or -1 when a hook refused nc
 * (nothing changed).
 */
int rl_reload(const dp_config *running, const dp_config *prev, const dp_config *nc);

#endif
