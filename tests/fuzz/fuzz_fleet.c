/*
 * fuzz_fleet: the phase record and the member reports the fleet reads back from Gen2's path properties
 * (proxy/fleet.c). Properties: nothing crashes; a record that parses formats back to text that parses to
 * the same record (epoch, phase, state, target phase); a switching record never targets its own phase;
 * a member report round-trips the same way; the local backend's record file (ETag line and record)
 * round-trips with its ETag.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fleet.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 4096) return 0;
    char *s = malloc(size);
    if (!s) return 0;
    memcpy(s, data + 1, size - 1);
    s[size - 1] = '\0';
    if ((data[0] & 3) == 2) {
        fleet_rec r, back;
        char etag[128], etag2[128];
        if (fleet_local_parse(s, &r, etag, sizeof etag) == 0) {
            CHECK(etag[0] != '\0' && !strpbrk(etag, "\r\n"));
            char out[FLEET_REC_MAX + 256];
            CHECK(fleet_local_format(&r, etag, out, sizeof out) == 0);
            CHECK(fleet_local_parse(out, &back, etag2, sizeof etag2) == 0);
            CHECK(strcmp(etag, etag2) == 0);
            CHECK(back.epoch == r.epoch && back.phase == r.phase && back.state == r.state && back.to == r.to);
        }
    } else if (data[0] & 1) {
        fleet_member m, back;
        if (fleet_member_parse(s, &m) == 0) {
            char out[256];
            CHECK(fleet_member_format(&m, out, sizeof out) == 0);
            CHECK(fleet_member_parse(out, &back) == 0);
            CHECK(back.epoch == m.epoch && back.state == m.state && back.pending == m.pending);
        }
    } else {
        fleet_rec r, back;
        if (fleet_rec_parse(s, &r) == 0) {
            CHECK(r.state != FLEET_SWITCHING || r.to != r.phase);
            char out[FLEET_REC_MAX];
            CHECK(fleet_rec_format(&r, out, sizeof out) == 0);
            CHECK(fleet_rec_parse(out, &back) == 0);
            CHECK(back.epoch == r.epoch && back.phase == r.phase && back.state == r.state && back.to == r.to);
            CHECK(strcmp(back.by, r.by) == 0);
        }
    }
    free(s);
    return 0;
}
