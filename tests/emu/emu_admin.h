/*
 * emu_admin: the emulator's loopback admin endpoint, used by tests to steer faults and outages:
 *   GET    /healthz              200 "ok"
 *   GET    /counters             requests per "METHOD op", faults fired, in_flight (emu_fault_counters_json)
 *   DELETE /counters             reset the counters (and forget the client request ids)
 *   GET    /client-request-ids   the last 256 x-ms-client-request-id values the service saw, oldest
 *                                first, each with its "METHOD op" (tests trace a write end to end)
 *   GET    /faults               the active rules
 *   POST   /faults               add rules: body holds one rule per line (emu_fault.h syntax)
 *   DELETE /faults               remove every rule
 *   POST   /down[?ms=N]          stop the service listeners (connections refused) for N ms, or until
 *   POST   /up                   brings them back on the same ports
 *   GET    /stats                nodes and bytes in the store
 */
#ifndef DP_EMU_ADMIN_H
#define DP_EMU_ADMIN_H

#include "emu_fault.h"
#include "emu_http.h"
#include "emu_store.h"

#define EMU_ADMIN_MAX_TARGETS 2

typedef struct emu_admin {
    emu_fault *faults;
    emu_store *store;
    emu_http *targets[EMU_ADMIN_MAX_TARGETS]; /* listeners that /down and /up act on */
    int ntargets;
} emu_admin;

/** Fill svc with the admin callbacks; ctx is a. */
void emu_admin_service(emu_admin *a, emu_service *svc);

#endif
