/*
 * emu_fault: fault injection and request counters for dualpipe-emu. Rules match a method and an op
 * label ("*" matches anything) and either fail the request with a status (optionally with
 * Retry-After), add latency, or reset the connection (optionally after some bytes of the request's
 * body, or, for a GET, of the answer's body), or lose the answer (the request is carried out as usual,
 * then the connection is dropped instead of answering: a reply lost on its way back). A rule fires
 * for the next N matching requests (count) or for a fraction of them (drawn from a PRNG seeded by
 * --seed, so a run is repeatable). Rules come from --fault flags or the admin endpoint.
 *
 * Rule text (flags and admin): comma-separated key=value:
 *   method=POST op=APPEND action=fail|latency|reset|lose status=503 retry_after=2 count=3 fraction=0.25
 *   latency_ms=200 after_bytes=65536 code=AuthorizationPermissionMismatch path=/lake/stuck
 * code (fail rules): the service's error code to answer with (Gen2: x-ms-error-code and error.code,
 * Gen1: the RemoteException's exception) instead of the one it picks for the status.
 * path= matches requests whose raw path (before '?') contains the text (e.g. one file on Gen2).
 */
#ifndef DP_EMU_FAULT_H
#define DP_EMU_FAULT_H

#include <stdbool.h>
#include <stdint.h>

#include "dbuf.h"

typedef struct emu_fault emu_fault;

typedef enum emu_fault_action { EMU_FAULT_NONE = 0, EMU_FAULT_FAIL, EMU_FAULT_RESET, EMU_FAULT_LOSE } emu_fault_action;

typedef struct emu_fault_hit {
    emu_fault_action action;
    int status;             /* FAIL */
    int retry_after_s;      /* FAIL: 0 = no Retry-After */
    char code[64];          /* FAIL: the error code to answer with, "" = the service's default */
    uint64_t after_bytes;   /* RESET: bytes of request body to accept first (or of answer body to send) */
    unsigned latency_ms;    /* sum of matching latency rules (applied by the caller) */
} emu_fault_hit;

emu_fault *emu_fault_new(uint64_t seed);
void emu_fault_free(emu_fault *f);
/** Add a rule from its text form. Returns 0, or -1 with a message naming the bad key in err. */
int emu_fault_add(emu_fault *f, const char *rule, char *err, size_t errlen);
void emu_fault_clear(emu_fault *f);
/** Count a request and decide what happens to it. Thread-safe. */
void emu_fault_check(emu_fault *f, const char *method, const char *op, emu_fault_hit *hit);
/** The same for a request target (raw path + optional "?query"), which path= rules look at. */
void emu_fault_check_target(emu_fault *f, const char *method, const char *op, const char *target,
                            emu_fault_hit *hit);
/** Count one request of identity ident (the Gen1 emulator's token name or Hadoop user). Thread-safe. */
void emu_fault_count_identity(emu_fault *f, const char *ident, const char *method, const char *op);
/** Count one more of "method label" without any rule acting (a finer counter, e.g. ranged OPENs). */
void emu_fault_count(emu_fault *f, const char *method, const char *label);
/** Counters as JSON {"requests":{"PUT CREATE":3,...},"faults":{"fail":1,"reset":0,"latency":2,"lost":0},
 *  "in_flight":0,"identities":{"P":{"total":4,"ops":{"GET OPEN":3,"PUT CREATE":1}},...}}; in_flight counts
 *  requests begun and not yet finished (an answer still being sent included), so a test can see that no
 *  exchange is left hanging. */
int emu_fault_counters_json(emu_fault *f, dbuf *out);
/** A request began (+1) or finished (-1). Thread-safe. */
void emu_fault_in_flight(emu_fault *f, int delta);
/** Reset the counters and forget the client request ids. */
void emu_fault_reset_counters(emu_fault *f);
/** Remember a request's x-ms-client-request-id (crid NULL: nothing to note). Thread-safe. */
void emu_fault_note_crid(emu_fault *f, const char *method, const char *op, const char *crid);
/** The last client request ids seen, oldest first:
 *  {"client_request_ids":[{"request":"PUT CREATE","id":"..."},...]}. */
int emu_fault_crids_json(emu_fault *f, dbuf *out);
/** Rules as JSON (for GET /faults). */
int emu_fault_rules_json(emu_fault *f, dbuf *out);

#endif
