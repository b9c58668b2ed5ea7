/*
 * phase: which store is primary, agreed by every proxy of a fleet, and switched at runtime.
 *
 * Each proxy runs one phase manager. Its thread reads the fleet's record (proxy/fleet.c) every
 * poll_ms (every 50 ms while a switch is under way) and follows it through the daemon's hooks:
 *
 *   record STABLE in phase P       writes run in P (hooks.enter once when P is new here), not held;
 *   record SWITCHING P -> Q        new writes are held (hooks.hold: they wait, they are not refused),
 *                                  the member reports HOLDING, and DRAINED once hooks.owed(Q) is 0
 *                                  (nothing left in its journal for the store Q makes primary);
 *   a switch older than its deadline (measured on this proxy's own clock from when it first saw it)
 *                                  is ended by any member: the record goes back to STABLE in P.
 *
 * phase_set (the admin API) runs a switch: it checks the transition, turns the record to SWITCHING,
 * waits until every member that has not reported STOPPED reports DRAINED for that epoch, and turns the
 * record to STABLE in Q; on a member's FAILED report or at switch_timeout_ms it turns it back to
 * STABLE in P ("nothing changed"). A crashed switcher leaves a SWITCHING record that the members end
 * at the deadline. Until a proxy has read the record once (or has its own earlier epoch on disk)
 * hooks.fence refuses its writes with the reason.
 *
 * The phase and epoch this proxy last followed are kept in state_file (written to a temporary file,
 * fsynced, renamed), with the member id and the state of its last report, so a restart keeps them; a
 * restart takes writes before reading the record only when that report said WRITING (after a crash
 * while writing: every switch since has waited for this member), otherwise it waits for the record.
 *
 * Where the record is: on Gen2 (fleet_fs/fleet_dir: a fleet, config phase.fleet true) or, with
 * local_dir, on this host's disk (fleet_new_local: a proxy that alone decides its phase, phase.fleet
 * false). The protocol is the same; with local_dir no Gen2 is needed (g2 may be NULL) and phase_start
 * reads (or makes) the record and registers before it returns, so writes are never fenced at a start
 * and a Gen2 outage never fences them later.
 *
 * Hooks, and the threads that call them (none is called with the manager's lock held; each may be
 * called from a thread other than the last one, never from two at once except cutover_ok):
 *   hold, owed, enter, fence   the manager's thread; and phase_start's caller before phase_start
 *                              returns (enter always, with the phase to start in; fence without
 *                              local_dir; all four with local_dir, while the record is first followed);
 *                              owed also from phase_stop's caller (the report it leaves says what is
 *                              still owed, so call phase_stop before tearing down what owed reads);
 *   cutover_ok                 phase_set's caller (the admin API's thread).
 * hold(true) is undone by hold(false) only when the switch ends: writes held when phase_stop runs stay
 * held (the daemon stopping answers them as it answers any request it did not finish).
 */
#ifndef DP_PHASE_H
#define DP_PHASE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "cfg.h"
#include "fleet.h"
#include "gen2client.h"

typedef struct phase_hooks {
    void *ud;
    /** Hold new writes (on) or release the held ones (off): held writes wait (not refused) until off. */
    void (*hold)(void *ud, bool on);
    /** Journal records this proxy must still apply before phase `to` can begin (0 = drained): those
     *  owed to Gen2 for gen2-primary, to Gen1 for gen1-primary and for gen2-only (the secondary must
     *  be complete when mirroring stops). */
    uint64_t (*owed)(void *ud, cfg_phase to);
    /** Writes run in phase p from now on (called with writes held, or before any write). 0 or -1. */
    int (*enter)(void *ud, cfg_phase p);
    /** reason non-NULL: refuse writes with 503 and this reason; NULL: accept them again. */
    void (*fence)(void *ud, const char *reason);
    /** Before entering gen2-only: 0 when the last verify allows it (the daemon's: vrec_cutover_ok, a verify
     *  of the whole namespace found nothing different and nothing owed to Gen2 was given up since), else
     *  -1 with why. NULL: never known, so only --force enters gen2-only. */
    int (*cutover_ok)(void *ud, char *why, size_t cap);
} phase_hooks;

typedef struct phase_opts {
    const char *local_dir;      /* non-empty: the record is kept on this host under local_dir/fleet (the
                                   daemon passes journal.dir), fleet_fs and fleet_dir are not used and g2
                                   may be NULL; NULL/"": the record is on Gen2 (g2 required) */
    const char *fleet_fs;       /* filesystem holding the fleet's record */
    const char *fleet_dir;      /* its directory (default ".dualpipe") */
    const char *member_id;      /* NULL/"": the id kept in state_file, else a new one (host name + random) */
    const char *state_file;     /* local state (required) */
    cfg_phase initial;          /* the phase a new fleet starts in (the config's `phase`) */
    unsigned poll_ms;           /* default 250 */
    unsigned switch_timeout_ms; /* default 30000 */
    unsigned heartbeat_ms;      /* a member rewrites its report at least this often (default 10000) */
} phase_opts;

typedef struct phase_mgr phase_mgr;

/** Start the manager (reads state_file, starts its thread). On Gen2 the first read of the record
 *  happens on that thread, and until then writes are fenced unless state_file held an epoch. With
 *  local_dir the record is read (made in state_file's phase, else o->initial, when there is none) and
 *  followed before this returns: writes are not fenced (held only when a switch is under way); a local
 *  record that cannot be read or made fails the start. g2 may be NULL with local_dir. 0 or -1 with err. */
int phase_start(gen2c *g2, const phase_opts *o, const phase_hooks *h, phase_mgr **out, char *err, size_t errlen);
/** Stop the thread and report STOPPED (a stopped member is not waited for by switches). */
void phase_stop(phase_mgr *m);
void phase_free(phase_mgr *m);

/** The phase writes run in here now. */
cfg_phase phase_current(phase_mgr *m);

/** What phase_set answers. */
typedef enum phase_set_result {
    PHASE_SET_DONE = 0,    /* switched */
    PHASE_SET_NOOP,        /* already in that phase */
    PHASE_SET_REFUSED,     /* a transition not allowed (reason says why) */
    PHASE_SET_BUSY,        /* another switch is under way */
    PHASE_SET_ABORTED,     /* timed out or a member failed: back in the old phase, nothing changed */
    PHASE_SET_ERROR        /* the record could not be read or changed (Gen2) */
} phase_set_result;

/** Switch the fleet to `to` (blocks up to switch_timeout_ms and a little more). force: skip the
 *  gen2-only checks that can be forced. reason gets a sentence for the operator; *pause_ms the time
 *  writes were held on this proxy. */
phase_set_result phase_set(phase_mgr *m, cfg_phase to, bool force, char *reason, size_t cap, uint64_t *pause_ms);

/** Status as JSON: phase, epoch, state, member id, the record (with its reason), members, the last
 *  switch seen here (pause). */
json_t *phase_status(phase_mgr *m);

/** Forget a member (it is gone for good: switches stop waiting for it). 0 or -1 with err. */
int phase_forget(phase_mgr *m, const char *id, char *err, size_t errlen);

/** The phase a stopped proxy recorded in state_file (what it runs in at its next start): 1 and *ph, 0 no
 *  state file (the config's phase.initial applies), -1 unreadable (err says why). */
int phase_recorded(const char *state_file, cfg_phase *ph, char *err, size_t errlen);

/** The transition rule: NULL when from -> to may be asked for, else why not. */
const char *phase_transition_refused(cfg_phase from, cfg_phase to);

#endif
