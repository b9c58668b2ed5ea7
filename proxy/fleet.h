/*
 * fleet: the phase record that every proxy of a fleet (sidecars in front of one pair of stores) agrees
 * on, and each proxy's membership, kept on Gen2 where all of them can see it.
 *
 * Layout, on filesystem opts.fs under directory opts.dir (default ".dualpipe"):
 *   DIR/phase            an empty file whose path property `dualpipe_phase` holds the record
 *                        (fleet_rec_format); replaced only with If-Match on the ETag read, created
 *                        only with If-None-Match: *, so two proxies never both win a change;
 *   DIR/members/ID       one empty file per proxy whose property `dualpipe_member` holds what that proxy
 *                        last saw and did (fleet_member_format), rewritten by its owner alone.
 *
 * The record says which phase writes run in and, during a switch, which phase the fleet is going to.
 * The protocol built on it (proxy/phase.c): a switch changes the record from STABLE (epoch E) to
 * SWITCHING (epoch E+1); every member holds new writes, drains its journal toward the new primary and
 * reports DRAINED for E+1; once every registered member has, the record becomes STABLE in the new
 * phase (epoch E+2); on a timeout or a member that cannot drain it becomes STABLE in the old phase
 * (epoch E+2) instead. No step depends on clocks agreeing: a switch completes only with every member's
 * report, and a member that cannot see the record keeps the phase it last saw, which no switch can
 * have left without it.
 *
 * Calls are synchronous (httpc_sync): use them from a thread of their own, never the httpc thread.
 */
#ifndef DP_FLEET_H
#define DP_FLEET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cfg.h"
#include "gen2client.h"

#define FLEET_ID_MAX 64
#define FLEET_REC_MAX 1024

typedef enum fleet_state { FLEET_STABLE = 0, FLEET_SWITCHING } fleet_state;

typedef struct fleet_rec {
    uint64_t epoch;           /* bumped by every change of the record */
    cfg_phase phase;          /* the phase writes run in (while switching: the one being left) */
    fleet_state state;
    cfg_phase to;             /* FLEET_SWITCHING: the phase being entered */
    char by[FLEET_ID_MAX];    /* the member that made this change ("" when none) */
    int64_t since_ms;         /* when this change was made (the maker's clock; informational) */
    uint64_t deadline_ms;     /* FLEET_SWITCHING: the switch's timeout in ms from since_ms */
    char reason[320];         /* why the last switch ended as it did ("" when none) */
} fleet_rec;

/* What a member reports. */
typedef enum fleet_mstate {
    FLEET_M_WRITING = 0,      /* serving writes in the record's phase */
    FLEET_M_HOLDING,          /* saw a switch, holds new writes, drains its journal */
    FLEET_M_DRAINED,          /* holds new writes, journal drained toward the new primary */
    FLEET_M_FAILED,           /* could not drain in time (the switch must abort) */
    FLEET_M_STOPPED           /* stopped cleanly: not waited for by a switch */
} fleet_mstate;

typedef struct fleet_member {
    char id[FLEET_ID_MAX];
    uint64_t epoch;           /* the record's epoch this report is about */
    fleet_mstate state;
    int64_t heartbeat_ms;     /* the member's clock when it wrote this */
    uint64_t pending;         /* journal records it still owes the secondary */
} fleet_member;

typedef struct fleet_opts {
    const char *fs;           /* filesystem holding the record */
    const char *dir;          /* directory inside it ("" or NULL: ".dualpipe") */
    const char *member;       /* this proxy's id: [A-Za-z0-9._-]{1,63} */
    unsigned retries;         /* per call, on no answer / 429 / 5xx (backoff 100 ms doubling to 2 s) */
} fleet_opts;

typedef struct fleet fleet;

/** A fleet handle on g2 (which must outlive it). 0 or -1 with err naming the bad option. */
int fleet_new(gen2c *g2, const fleet_opts *o, fleet **out, char *err, size_t errlen);
/**
 * A handle on a record kept on this host's disk instead of Gen2 (a proxy that alone decides its phase):
 * the same calls and results, with the files under DIR/fleet (made 0700 with DIR when missing):
 *   DIR/fleet/phase        "etag=ETAG" and the record's text (fleet_rec_format), replaced whole;
 *   DIR/fleet/lock         flocked by fleet_create and fleet_replace, so two handles (threads or processes
 *                          of this host) never both win a change: the ETag changes on every change;
 *   DIR/fleet/members/ID   each member's report (fleet_member_format), replaced whole.
 * Every change is fsynced (file and directory) before the call returns. No Gen2, no thread. 0 or -1 err.
 */
int fleet_new_local(const char *dir, const char *member, fleet **out, char *err, size_t errlen);
/** True for a handle made by fleet_new_local. */
bool fleet_is_local(const fleet *f);
void fleet_free(fleet *f);
const char *fleet_member_id(const fleet *f);

/** Read the record: 0 (rec and its ETag in etag), 1 there is none yet, -1 err. */
int fleet_read(fleet *f, fleet_rec *rec, char *etag, size_t etagcap, char *err, size_t errlen);
/** Create the record where none exists: 0 created (its ETag in etag), 1 one exists already, -1 err. */
int fleet_create(fleet *f, const fleet_rec *rec, char *etag, size_t etagcap, char *err, size_t errlen);
/** Replace the record if its ETag is still etag (updated to the new one): 0 done, 1 the record changed
 *  since it was read (read it again), -1 err. */
int fleet_replace(fleet *f, const fleet_rec *rec, char *etag, size_t etagcap, char *err, size_t errlen);

/** Write this member's report (m->id is ignored: the handle's member id is used). 0 or -1 err. */
int fleet_member_put(fleet *f, const fleet_member *m, char *err, size_t errlen);
/** Every member's report, sorted by id (*v freed by the caller; members whose property cannot be read
 *  as a report are skipped and counted in *bad). 0 or -1 err. */
int fleet_member_list(fleet *f, fleet_member **v, size_t *n, size_t *bad, char *err, size_t errlen);
/** Remove a member's report (it is no longer waited for). 0 (also when there was none) or -1 err. */
int fleet_member_remove(fleet *f, const char *id, char *err, size_t errlen);

/* ---- codecs (what the properties hold; they see Gen2's answers, so they are fuzzed) ---- */

/** "v=1;epoch=N;phase=P;state=stable|switching;to=P;by=ID;since=MS;deadline=MS;reason=TEXT". 0 or -1. */
int fleet_rec_format(const fleet_rec *r, char *out, size_t cap);
/** Parse fleet_rec_format's text (fields in any order, unknown ones ignored; v, epoch, phase and state
 *  required; to required while switching). 0 or -1. */
int fleet_rec_parse(const char *s, fleet_rec *r);
/** "v=1;epoch=N;state=writing|holding|drained|failed|stopped;hb=MS;pending=N". 0 or -1. */
int fleet_member_format(const fleet_member *m, char *out, size_t cap);
int fleet_member_parse(const char *s, fleet_member *m);
const char *fleet_mstate_name(fleet_mstate s);
/** The local backend's record file: "etag=ETAG\n" (ETAG: 1 to 127 characters, no CR/LF) and the record's
 *  text on a second line ending in "\n". 0 or -1 (does not fit, bad ETAG). */
int fleet_local_format(const fleet_rec *r, const char *etag, char *out, size_t cap);
/** Parse fleet_local_format's text (nothing after the second line): 0 (rec, and the ETag in etag) or -1. */
int fleet_local_parse(const char *text, fleet_rec *rec, char *etag, size_t etagcap);
/** True when id may name a member ([A-Za-z0-9._-], 1 to 63 characters, not "." or ".."). */
bool fleet_id_ok(const char *id);

#endif
