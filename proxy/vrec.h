/*
 * vrec: the verify record. What the last `dualpipe verify` runs found, kept durably in the journal's
 * directory (VREC_FILE, written to a temporary name, fsynced, renamed, the directory fsynced), so the
 * daemon knows after a restart whether a cutover to gen2-only may go ahead (vrec_cutover_ok).
 *
 * A verify tells the daemon when it starts (vrec_begin: the daemon answers with its journal's last
 * appended seq and a token) and when it ends (vrec_end: root, equal or not, differences by kind,
 * size-only count, paths left in flight, content mode). Offline (no daemon holds the journal) the
 * verify reads the journal's last seq from its newest segment (vrec_offline_seq) and records the same
 * in the same file itself.
 *
 * The record keeps the latest result per verified root (VREC_MAX_RESULTS, the oldest forgotten) and
 * the records owed to Gen2 that were given up (vrec_note_divergence: an operator's drop), since a
 * write given up is on Gen1 and not on Gen2 whatever a verify said before it. Writes journaled after
 * a verify began do not spoil it: each is applied to both sides (or shows up as pending, parked or
 * dropped); only one given up does.
 *
 * A damaged file is not fatal: vrec_open succeeds, the record counts as empty, and the cutover is
 * refused with the reason until a verify records a new result (which replaces the file).
 *
 * Threads: every function takes the record's lock; call from any thread.
 */
#ifndef DP_VREC_H
#define DP_VREC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "cfg.h"
#include "dbuf.h"
#include "metrics.h"

#define VREC_FILE "verify-last.json"
#define VREC_MAX_RESULTS 32
#define VREC_MAX_DROPS 256
#define VREC_TOKEN_LEN 32 /* hex characters of a verify's token */

typedef struct vrec vrec;

/** One verify's result, as vrec_end takes it and the record keeps it. */
typedef struct vrec_result {
    char root[1024];          /* the verified PATH (normalised Gen1 path) */
    bool seq_known;           /* begin_seq is the journal's last seq when the verify began */
    uint64_t begin_seq;
    bool online;              /* told by the daemon (false: recorded offline) */
    int64_t started_ms, ended_ms; /* wall clock, ms since the epoch */
    bool equal;               /* no difference and nothing in flight */
    uint64_t differences;     /* all differences found (after a --repair: of the second pass) */
    uint64_t size_only;       /* files compared by length only */
    uint64_t in_flight;       /* paths still pending in the journal when the verify gave up waiting */
    char mode[8];             /* "size", "digest" or "deep" */
    json_t *by_kind;          /* {"missing":N,...}: borrowed by vrec_end (copied), owned by vrec_get */
} vrec_result;

/**
 * Open the record of cfg's mappings in dir (the journal's directory; created files are 0600). A
 * missing file is an empty record; a damaged one is noted (logged, shown, refuses the cutover) and
 * replaced by the next result. Returns 0 and *out, or -1 with err (out of memory, dir unusable).
 */
int vrec_open(const dp_config *cfg, const char *dir, vrec **out, char *err, size_t errlen);
void vrec_free(vrec *v);

/** Gauges dualpipe_verify_last_equal (1, 0, or -1: none recorded), dualpipe_verify_last_end_seconds (unix
 *  time, 0: none) and dualpipe_verify_cutover_ok (1 when vrec_cutover_ok allows gen2-only). 0 or -1. */
int vrec_register_metrics(vrec *v, metrics *m);

/**
 * A verify of root starts now, with the journal's last appended seq: token (VREC_TOKEN_LEN hex + NUL)
 * names it for vrec_end. Kept in memory only (a restart forgets it: that verify's end is refused).
 * 0 or -1 (root not absolute).
 */
int vrec_begin(vrec *v, const char *root, uint64_t seq, char token[VREC_TOKEN_LEN + 1]);
/** The begun verify named by token: its root, seq and start time. 0, or -1 (unknown token). */
int vrec_begun(vrec *v, const char *token, char *root, size_t rootcap, uint64_t *seq, int64_t *started_ms);

/** Record a result (replacing the one of the same root) and persist it. 0 or -1 (err: disk). */
int vrec_end(vrec *v, const vrec_result *r, char *err, size_t errlen);

/**
 * A journal record was given up (dropped by an operator, or otherwise abandoned). to_gen1: it was owed
 * to Gen1 (gen2-primary's mirror), which does not matter for gen2-only; otherwise it is persisted and
 * refuses the cutover until a verify that began after it is recorded. 0 or -1 (could not persist:
 * logged; the note is kept in memory).
 */
int vrec_note_divergence(vrec *v, uint64_t seq, bool to_gen1);

/**
 * 0 when the verify record allows entering gen2-only: a result covers every mapping's root (a verify
 * of a subtree does not count), the covering results found no difference and left nothing in flight,
 * began with a known journal seq, no later verify of a subtree found a difference, and no record owed
 * to Gen2 journaled after the covering verify began was given up. Else -1 and why (a sentence telling
 * the operator what to run).
 */
int vrec_cutover_ok(vrec *v, char *why, size_t cap);

/** {"file":..,"damaged":..,"last":{result}|null,"results":[...],"dropped_to_gen2":{...},
 *   "cutover":{"ok":b,"why":s}} into out. 0 or -1. */
int vrec_json(vrec *v, dbuf *out);

/**
 * The admin endpoints (admin.c routes /admin/verify and /admin/verify/...; journal_seq is the journal's
 * last appended seq now):
 *   GET  /admin/verify                    vrec_json
 *   POST /admin/verify/begin?root=/p      {"token":T,"seq":N,"started_ms":MS}
 *   POST /admin/verify/end?token=T&equal=0|1&differences=N&size_only=N&in_flight=N&mode=M&kinds=k:n,...
 *        (without token: root=/p&begin_seq=N of a verify begun offline, or no begin_seq: seq unknown)
 * The answer's JSON into out; returns the HTTP status (405 with *allow set for a wrong method).
 */
unsigned vrec_http(vrec *v, uint64_t journal_seq, const char *url, bool post, const char *query, dbuf *out,
                   const char **allow);

/**
 * The journal's last appended seq read offline from its newest segment (header's seq floor and its
 * records), without taking the journal's lock. 0, or -1 with err (no segment, unreadable).
 */
int vrec_offline_seq(const char *journal_dir, uint64_t *seq, char *err, size_t errlen);

/** "2026-12-07T10:00:00Z" of ms since the epoch. */
void vrec_time(int64_t ms, char out[32]);

#endif
