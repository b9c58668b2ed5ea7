/*
 * fuzz_jrnl: libFuzzer driver for the journal segment decoder. The input is taken as the bytes of
 * a segment after its header (frames from offset 0) and, separately, as a whole segment (header
 * first). Beyond "no crash, no out-of-bounds read, no UB" it checks the codec's promises: every
 * record the scanner accepts re-encodes to exactly the bytes it was read from; offsets are 8-byte
 * aligned and only move forward; CORRUPT points at a good frame after the damage; and scanning the
 * same bytes through small windows (AGAIN, refill) gives exactly the answers of one whole window.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jrnl_fmt.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


#define MAX_EVENTS 4096

typedef struct ev {
    jfmt_res r;
    uint64_t at, off;
} ev;

/* Scan data through windows growing by step bytes (step >= size: one final window). */
static size_t scan(const uint8_t *data, size_t size, size_t step, ev *evs, dbuf *re)
{
    size_t n = 0;
    uint64_t off = 0;
    size_t end = step < size ? step : size;
    jfmt_rec rec;
    for (;;) {
        jfmt_scan s;
        jfmt_scan_init(&s, data + off, end - off, off, off, end == size);
        for (;;) {
            jfmt_res r = jfmt_scan_next(&s, &rec);
            if (r == JFMT_AGAIN) {
                CHECK(end < size);
                break;
            }
            CHECK(n < MAX_EVENTS);
            evs[n].r = r;
            evs[n].at = r == JFMT_OK ? s.rec_off : r == JFMT_END ? s.off : s.bad_off;
            evs[n].off = s.off;
            n++;
            CHECK(s.off % JFMT_ALIGN == 0 && s.off <= size);
            if (r == JFMT_OK) {
                CHECK(s.rec_off % JFMT_ALIGN == 0 && s.rec_off < s.off);
                if (re) {
                    dbuf_reset(re);
                    CHECK(jfmt_encode(re, &rec) == 0);
                    CHECK(re->len == s.off - s.rec_off);
                    CHECK(memcmp(re->data, data + s.rec_off, re->len) == 0);
                    CHECK(jfmt_frame_size(&rec) == re->len);
                }
                continue;
            }
            if (r == JFMT_CORRUPT) {
                CHECK(s.bad_off < s.off && s.why != NULL);
                continue;
            }
            CHECK(r == JFMT_END || r == JFMT_TORN);
            if (r == JFMT_TORN) CHECK(s.bad_off == s.off && s.why != NULL);
            /* END and TORN repeat. */
            jfmt_scan again = s;
            CHECK(jfmt_scan_next(&again, &rec) == r && again.off == s.off);
            return n;
        }
        off = s.off;
        end = end + step < size ? end + step : size;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static ev whole[MAX_EVENTS], win[MAX_EVENTS];
    if (size > 1 << 16) return 0;
    dbuf re;
    dbuf_init(&re, JFMT_MAX_FRAME);
    size_t n = scan(data, size, size, whole, &re);
    dbuf_free(&re);

    /* Window sizes that are not multiples of 8 hit every "cut by the window" branch. */
    if (size > 8192) return 0; /* window rescans are quadratic in the damaged case */
    size_t step = size ? 1 + data[size - 1] % 61 : 1;
    size_t m = scan(data, size, step, win, NULL);
    CHECK(m == n);
    for (size_t i = 0; i < n; i++)
        CHECK(whole[i].r == win[i].r && whole[i].at == win[i].at && whole[i].off == win[i].off);

    /* As a whole segment: the header decoder and the segment scanner. */
    jfmt_seg_stats st;
    CHECK(jfmt_scan_segment(data, size, NULL, NULL, &st) == 0);
    if (st.hdr_res == JFMT_OK) {
        CHECK(st.hdr.hdr_size >= JFMT_HDR_SIZE && st.hdr.hdr_size <= size);
        CHECK(st.end_res == JFMT_END || st.end_res == JFMT_TORN);
        CHECK(st.data_end >= st.hdr.hdr_size && st.data_end <= size);
        CHECK(st.records == st.writes + st.states + st.unknown);
    } else {
        CHECK(st.end_res == st.hdr_res && st.records == 0);
    }
    return 0;
}
