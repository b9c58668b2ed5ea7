/*
 * test_jrnl_fmt: the journal segment format and its codec. Pins the on-disk bytes (header and a
 * STATE frame byte for byte, the op code table), round-trips WRITE and STATE records, refuses
 * records that break a limit, skips unknown types and keeps a newer minor version's extra fields,
 * and checks the scanner's classification that recovery relies on: a zero-filled tail is a clean
 * end, every possible cut of the last frame is a torn tail at that frame, damage in the middle is
 * corruption reported at its offset with scanning resumed at the next good frame, and scanning in
 * windows gives exactly the answers of scanning the whole segment. Ends with 100,000 records.
 */
#include <errno.h>
#include <stdint.h>

#include "crc32c.h"
#include "jrnl_fmt.h"
#include "tharness.h"

#define SEG_MAX (64u << 20)

static jfmt_str S(const char *s)
{
    jfmt_str v = {s, strlen(s)};
    return v;
}

static void make_write(jfmt_rec *r, uint64_t seq, const char *path)
{
    memset(r, 0, sizeof *r);
    r->type = JFMT_T_WRITE;
    r->u.w.seq = seq;
    r->u.w.op = JFMT_OP_APPEND;
    r->u.w.primary_status = 200;
    r->u.w.t_accept_ns = 1700000000000000000ull + seq;
    r->u.w.t_primary_ns = 1700000000000000500ull + seq;
    r->u.w.spool_seg = 3;
    r->u.w.spool_off = seq * 4096;
    r->u.w.body_len = 100 + seq % 7;
    for (int i = 0; i < JFMT_DIGEST_LEN; i++) r->u.w.digest[i] = (uint8_t)(i * 7 + seq);
    r->u.w.path = S(path);
    r->u.w.nparams = 2;
    r->u.w.params[0].key = S("op");
    r->u.w.params[0].val = S("APPEND");
    r->u.w.params[1].key = S("buffersize");
    r->u.w.params[1].val = S("");
}

static void make_state(jfmt_rec *r, uint64_t seq, uint16_t state, const char *detail)
{
    memset(r, 0, sizeof *r);
    r->type = JFMT_T_STATE;
    r->u.s.seq = seq;
    r->u.s.state = state;
    r->u.s.status = 201;
    r->u.s.t_ns = 1;
    r->u.s.detail = S(detail);
}

static bool str_eq(jfmt_str a, jfmt_str b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

/* A segment: header, then records with seq 1..n alternating WRITE and STATE; offs gets each frame's offset. */
static void build_segment(dbuf *seg, int n, uint64_t *offs)
{
    jfmt_hdr h;
    jfmt_rec r;
    dbuf_init(seg, SEG_MAX);
    jfmt_hdr_init(&h, 42, 1700000000000000000ull);
    ASSERT_EQ_INT(jfmt_hdr_encode(seg, &h), 0);
    for (int i = 0; i < n; i++) {
        if (offs) offs[i] = seg->len;
        if (i % 2 == 0) make_write(&r, (uint64_t)i + 1, "/data/part-00000.csv");
        else make_state(&r, (uint64_t)i, JFMT_S_APPLIED, "applied");
        ASSERT_EQ_INT(jfmt_encode(seg, &r), 0);
    }
}

TEST(header_bytes_and_roundtrip)
{
    dbuf b;
    jfmt_hdr h, d;
    dbuf_init(&b, 4096);
    jfmt_hdr_init(&h, 0x0102030405060708ull, 0x1122334455667788ull);
    ASSERT_EQ_INT(jfmt_hdr_encode(&b, &h), 0);
    ASSERT_EQ_INT(b.len, JFMT_HDR_SIZE);
    static const uint8_t want[36] = {'D', 'P', 'J', 'R', 'N', 'L', '\r', '\n', 1, 0, 1, 0, 64, 0, 0, 0,
                                     8, 7, 6, 5, 4, 3, 2, 1, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11,
                                     0, 0, 0, 0};
    ASSERT_EQ_MEM(b.data, want, sizeof want);
    uint8_t *p = (uint8_t *)b.data;
    uint32_t crc = (uint32_t)p[60] | (uint32_t)p[61] << 8 | (uint32_t)p[62] << 16 | (uint32_t)p[63] << 24;
    ASSERT_EQ_INT(crc, crc32c(p, 60));
    ASSERT_EQ_INT(jfmt_hdr_decode(p, b.len, &d), JFMT_OK);
    ASSERT_EQ_INT(d.seg_seq, h.seg_seq);
    ASSERT_EQ_INT(d.created_ns, h.created_ns);
    ASSERT_EQ_INT(d.hdr_size, 64);
    ASSERT_EQ_INT(d.major, 1);
    ASSERT_EQ_INT(d.minor, 1);
    dbuf_free(&b);
}

/* Rewrite the header CRC after editing header bytes (simulates another writer version). */
static void reseal(uint8_t *p, uint32_t hs)
{
    uint32_t c = crc32c(p, hs - 4);
    for (int i = 0; i < 4; i++) p[hs - 4 + i] = (uint8_t)(c >> (8 * i));
}

TEST(header_failures_and_versions)
{
    uint8_t p[128] = {0};
    jfmt_hdr h, d;
    dbuf b;
    dbuf_init(&b, 4096);
    jfmt_hdr_init(&h, 1, 2);
    ASSERT_EQ_INT(jfmt_hdr_encode(&b, &h), 0);
    memcpy(p, b.data, 64);
    dbuf_free(&b);

    ASSERT_EQ_INT(jfmt_hdr_decode(p, 0, &d), JFMT_END);
    uint8_t zeros[64] = {0};
    ASSERT_EQ_INT(jfmt_hdr_decode(zeros, 64, &d), JFMT_END);
    for (size_t n = 1; n < 64; n++) ASSERT_EQ_INT(jfmt_hdr_decode(p, n, &d), JFMT_TORN);

    p[20] ^= 1; /* a flipped bit in seg_seq */
    ASSERT_EQ_INT(jfmt_hdr_decode(p, 64, &d), JFMT_CORRUPT);
    p[20] ^= 1;
    p[0] = 'X';
    ASSERT_EQ_INT(jfmt_hdr_decode(p, 64, &d), JFMT_CORRUPT);
    p[0] = 'D';

    p[8] = 2; /* major 2: refuse, whatever else */
    ASSERT_EQ_INT(jfmt_hdr_decode(p, 64, &d), JFMT_EVERSION);
    p[8] = 1;

    p[32] = 0x01; /* unknown compatible flag: ignored */
    reseal(p, 64);
    ASSERT_EQ_INT(jfmt_hdr_decode(p, 64, &d), JFMT_OK);
    ASSERT_EQ_INT(d.flags, 1);
    p[32] = 0;
    p[34] = 0x01; /* unknown incompatible flag (bit 16): refuse */
    reseal(p, 64);
    ASSERT_EQ_INT(jfmt_hdr_decode(p, 64, &d), JFMT_EVERSION);
    p[34] = 0;

    /* A newer minor version with a 72-byte header: accepted, records start at 72. */
    p[10] = 3;
    p[12] = 72;
    memset(p + 60, 0xAB, 8);
    reseal(p, 72);
    ASSERT_EQ_INT(jfmt_hdr_decode(p, 72, &d), JFMT_OK);
    ASSERT_EQ_INT(d.minor, 3);
    ASSERT_EQ_INT(d.hdr_size, 72);
    ASSERT_EQ_INT(jfmt_hdr_decode(p, 71, &d), JFMT_TORN);
    p[12] = 68; /* not a multiple of 8 */
    ASSERT_EQ_INT(jfmt_hdr_decode(p, 72, &d), JFMT_CORRUPT);
}

TEST(state_frame_bytes)
{
    jfmt_rec r, d;
    dbuf b;
    dbuf_init(&b, 4096);
    make_state(&r, 7, JFMT_S_APPLIED, "ok");
    ASSERT_EQ_INT(jfmt_frame_size(&r), 40);
    ASSERT_EQ_INT(jfmt_encode(&b, &r), 0);
    ASSERT_EQ_INT(b.len, 40);
    static const uint8_t payload[28] = {2, 0, 0, 0, 4, 0, 201, 0, 7, 0, 0, 0, 0, 0, 0, 0,
                                        1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 'o', 'k'};
    const uint8_t *p = (const uint8_t *)b.data;
    ASSERT_EQ_INT(p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24, 28);
    ASSERT_EQ_INT(p[4] | p[5] << 8 | p[6] << 16 | (uint32_t)p[7] << 24, crc32c(payload, 28));
    ASSERT_EQ_MEM(p + 8, payload, 28);
    ASSERT_EQ_MEM(p + 36, "\0\0\0\0", 4);
    ASSERT_EQ_INT(jfmt_decode_payload(p + 8, 28, &d, NULL), 0);
    ASSERT_EQ_INT(d.type, JFMT_T_STATE);
    ASSERT_EQ_INT(d.u.s.seq, 7);
    ASSERT_EQ_INT(d.u.s.state, JFMT_S_APPLIED);
    ASSERT_EQ_INT(d.u.s.status, 201);
    ASSERT_TRUE(str_eq(d.u.s.detail, S("ok")));
    ASSERT_EQ_INT(d.ext.len, 0);
    ASSERT_EQ_STR(jfmt_state_name(d.u.s.state), "APPLIED");
    ASSERT_EQ_STR(jfmt_state_name(99), "UNKNOWN");
    dbuf_free(&b);
}

TEST(write_roundtrip_exact)
{
    jfmt_rec r, d;
    dbuf b, b2;
    dbuf_init(&b, 1 << 20);
    dbuf_init(&b2, 1 << 20);
    make_write(&r, 123456789, "/a/b c/\xc3\xa9t\xc3\xa9.parquet");
    r.u.w.op = JFMT_OP_RENAME;
    r.u.w.params[1].key = S("destination");
    r.u.w.params[1].val = S("/x/y");
    ASSERT_EQ_INT(jfmt_encode(&b, &r), 0);
    ASSERT_EQ_INT(b.len % 8, 0);
    ASSERT_EQ_INT(b.len, jfmt_frame_size(&r));

    jfmt_scan s;
    jfmt_scan_init(&s, b.data, b.len, 0, 0, true);
    ASSERT_EQ_INT(jfmt_scan_next(&s, &d), JFMT_OK);
    ASSERT_EQ_INT(s.rec_off, 0);
    ASSERT_EQ_INT(s.off, b.len);
    ASSERT_EQ_INT(d.type, JFMT_T_WRITE);
    ASSERT_EQ_INT(d.u.w.seq, 123456789);
    ASSERT_EQ_INT(d.u.w.op, JFMT_OP_RENAME);
    ASSERT_EQ_INT(jfmt_op_to_whreq(d.u.w.op), WH_OP_RENAME);
    ASSERT_EQ_INT(d.u.w.primary_status, 200);
    ASSERT_EQ_INT(d.u.w.t_accept_ns, r.u.w.t_accept_ns);
    ASSERT_EQ_INT(d.u.w.t_primary_ns, r.u.w.t_primary_ns);
    ASSERT_EQ_INT(d.u.w.spool_seg, 3);
    ASSERT_EQ_INT(d.u.w.spool_off, r.u.w.spool_off);
    ASSERT_EQ_INT(d.u.w.body_len, r.u.w.body_len);
    ASSERT_EQ_MEM(d.u.w.digest, r.u.w.digest, JFMT_DIGEST_LEN);
    ASSERT_TRUE(str_eq(d.u.w.path, r.u.w.path));
    ASSERT_EQ_INT(d.u.w.nparams, 2);
    ASSERT_TRUE(str_eq(d.u.w.params[0].key, S("op")));
    ASSERT_TRUE(str_eq(d.u.w.params[1].key, S("destination")));
    ASSERT_TRUE(str_eq(d.u.w.params[1].val, S("/x/y")));
    /* Views point into the scanned buffer, not copies. */
    ASSERT_TRUE(d.u.w.path.p > b.data && d.u.w.path.p < b.data + b.len);
    ASSERT_EQ_INT(jfmt_scan_next(&s, &d), JFMT_END);

    jfmt_scan_init(&s, b.data, b.len, 0, 0, true);
    ASSERT_EQ_INT(jfmt_scan_next(&s, &d), JFMT_OK);
    ASSERT_EQ_INT(jfmt_encode(&b2, &d), 0);
    ASSERT_EQ_INT(b2.len, b.len);
    ASSERT_EQ_MEM(b2.data, b.data, b.len);
    dbuf_free(&b);
    dbuf_free(&b2);
}

/* 1.1: a WRITE flagged JFMT_WF_CRC32C carries the body's CRC-32C in the first 4 bytes of the digest field
 * (little-endian), 28 zero bytes after it; the fixed layout is 1.0's, so the frame has the same size. */
TEST(write_crc32c_flag_bytes)
{
    jfmt_rec r, d;
    dbuf b, b2;
    dbuf_init(&b, 1 << 16);
    dbuf_init(&b2, 1 << 16);
    make_write(&r, 77, "/f");
    size_t sha_size = jfmt_frame_size(&r);
    r.flags = JFMT_WF_CRC32C;
    jfmt_digest_set_crc(r.u.w.digest, 0xE3069283u);
    ASSERT_EQ_INT(jfmt_frame_size(&r), sha_size);
    ASSERT_EQ_INT(jfmt_encode(&b, &r), 0);
    const uint8_t *pl = (const uint8_t *)b.data + JFMT_FRAME_HDR;
    static const uint8_t head[4] = {1, 0, 1, 0}; /* type WRITE, flags 0x0001 */
    ASSERT_EQ_MEM(pl, head, 4);
    static const uint8_t dig[JFMT_DIGEST_LEN] = {0x83, 0x92, 0x06, 0xE3};
    ASSERT_EQ_MEM(pl + 56, dig, JFMT_DIGEST_LEN);
    jfmt_scan s;
    jfmt_scan_init(&s, b.data, b.len, 0, 0, true);
    ASSERT_EQ_INT(jfmt_scan_next(&s, &d), JFMT_OK);
    ASSERT_EQ_INT(d.flags, JFMT_WF_CRC32C);
    ASSERT_EQ_INT(jfmt_digest_crc(d.u.w.digest), 0xE3069283u);
    ASSERT_EQ_INT(d.u.w.seq, 77);
    ASSERT_EQ_INT(jfmt_encode(&b2, &d), 0);
    ASSERT_EQ_INT(b2.len, b.len);
    ASSERT_EQ_MEM(b2.data, b.data, b.len);
    dbuf_free(&b);
    dbuf_free(&b2);
}

TEST(op_table_is_fixed_and_complete)
{
    /* On-disk codes are part of the format: these values never change. */
    ASSERT_EQ_INT(jfmt_op_from_whreq(WH_OP_CREATE), 1);
    ASSERT_EQ_INT(jfmt_op_from_whreq(WH_OP_APPEND), 2);
    ASSERT_EQ_INT(jfmt_op_from_whreq(WH_OP_RENAME), 5);
    ASSERT_EQ_INT(jfmt_op_from_whreq(WH_OP_DELETE), 6);
    ASSERT_EQ_INT(jfmt_op_from_whreq(WH_OP_MSCONCAT), 8);
    ASSERT_EQ_INT(jfmt_op_from_whreq(WH_OP_SETEXPIRY), 17);
    /* Every write op whreq knows has a code that maps back; read ops have none. */
    int codes = 0;
    for (int op = WH_OP_UNKNOWN + 1; op < WH_OP__COUNT; op++) {
        const whreq_opinfo *info = whreq_opinfo_get((whreq_op)op);
        uint16_t c = jfmt_op_from_whreq((whreq_op)op);
        if (info->is_write) {
            if (c == JFMT_OP_NONE) TH_FAIL_AT("write op %s has no on-disk code", info->name);
            ASSERT_EQ_INT(jfmt_op_to_whreq(c), op);
            codes++;
        } else {
            ASSERT_EQ_INT(c, JFMT_OP_NONE);
        }
    }
    ASSERT_EQ_INT(codes, 17);
    ASSERT_EQ_INT(jfmt_op_from_whreq(WH_OP_UNKNOWN), JFMT_OP_NONE);
    ASSERT_EQ_INT(jfmt_op_to_whreq(0), WH_OP_UNKNOWN);
    ASSERT_EQ_INT(jfmt_op_to_whreq(999), WH_OP_UNKNOWN);
}

TEST(encode_enforces_limits)
{
    jfmt_rec r;
    dbuf b;
    dbuf_init(&b, 1 << 20);
    ASSERT_EQ_INT(dbuf_adds(&b, "keep"), 0);
    static char big[70000];
    memset(big, 'a', sizeof big);
    big[0] = '/';

    make_write(&r, 1, "relative/path");
    ASSERT_EQ_INT(jfmt_encode(&b, &r), -EINVAL);
    make_write(&r, 1, "/");
    r.u.w.path.len = 0;
    ASSERT_EQ_INT(jfmt_encode(&b, &r), -EINVAL);
    r.u.w.path.p = big;
    r.u.w.path.len = JFMT_MAX_PATH + 1;
    ASSERT_EQ_INT(jfmt_encode(&b, &r), -EINVAL);
    r.u.w.path.len = JFMT_MAX_PATH;
    ASSERT_EQ_INT(jfmt_frame_size(&r) > 0, 1);
    r.u.w.path.p = "/a\0b";
    r.u.w.path.len = 4;
    ASSERT_EQ_INT(jfmt_encode(&b, &r), -EINVAL);
    make_write(&r, 1, "/p");
    r.u.w.nparams = JFMT_MAX_PARAMS + 1;
    ASSERT_EQ_INT(jfmt_encode(&b, &r), -EINVAL);
    make_write(&r, 1, "/p");
    r.u.w.params[0].key.p = big;
    r.u.w.params[0].key.len = JFMT_MAX_KEY + 1;
    ASSERT_EQ_INT(jfmt_encode(&b, &r), -EINVAL);
    make_write(&r, 1, "/p");
    r.u.w.params[1].val.p = big; /* 65535 bytes: fits the field, not the 64 KiB record */
    r.u.w.params[1].val.len = 65535;
    ASSERT_EQ_INT(jfmt_encode(&b, &r), -EINVAL);
    r.u.w.params[1].val.len = JFMT_MAX_PAYLOAD - (92 + 2 + (4 + 2 + 6) + (4 + 10));
    ASSERT_EQ_INT(jfmt_encode(&b, &r), 0);
    ASSERT_EQ_INT(b.len, 4 + JFMT_MAX_FRAME);
    b.len = 4;
    make_state(&r, 1, JFMT_S_PARKED, "");
    r.u.s.detail.p = big;
    r.u.s.detail.len = JFMT_MAX_DETAIL + 1;
    ASSERT_EQ_INT(jfmt_encode(&b, &r), -EINVAL);
    r.type = 0;
    ASSERT_EQ_INT(jfmt_encode(&b, &r), -EINVAL);
    ASSERT_EQ_INT(b.len, 4);
    ASSERT_EQ_MEM(b.data, "keep", 4);

    /* The caller's buffer limit is respected and leaves it unchanged. */
    dbuf small;
    dbuf_init(&small, 50);
    make_write(&r, 1, "/p");
    ASSERT_EQ_INT(jfmt_encode(&small, &r), -E2BIG);
    ASSERT_EQ_INT(small.len, 0);
    dbuf_free(&small);
    dbuf_free(&b);
}

TEST(unknown_types_and_newer_fields)
{
    jfmt_rec r, d;
    dbuf b, b2;
    jfmt_scan s;
    dbuf_init(&b, 1 << 20);
    dbuf_init(&b2, 1 << 20);
    /* A type this build does not know, then a STATE with 5 bytes of newer fields after its own. */
    memset(&r, 0, sizeof r);
    r.type = 77;
    r.flags = 0x8001;
    r.u.raw = S("future payload");
    ASSERT_EQ_INT(jfmt_encode(&b, &r), 0);
    make_state(&r, 9, JFMT_S_RESYNC, "gen2 refused: 400");
    r.ext.p = "\x01\x02\x03\x04\x05";
    r.ext.len = 5;
    ASSERT_EQ_INT(jfmt_encode(&b, &r), 0);

    jfmt_scan_init(&s, b.data, b.len, 0, 0, true);
    ASSERT_EQ_INT(jfmt_scan_next(&s, &d), JFMT_OK);
    ASSERT_EQ_INT(d.type, 77);
    ASSERT_EQ_INT(d.flags, 0x8001);
    ASSERT_TRUE(str_eq(d.u.raw, S("future payload")));
    ASSERT_EQ_INT(jfmt_encode(&b2, &d), 0);
    ASSERT_EQ_INT(jfmt_scan_next(&s, &d), JFMT_OK);
    ASSERT_EQ_INT(d.type, JFMT_T_STATE);
    ASSERT_EQ_INT(d.u.s.state, JFMT_S_RESYNC);
    ASSERT_TRUE(str_eq(d.u.s.detail, S("gen2 refused: 400")));
    ASSERT_EQ_INT(d.ext.len, 5);
    ASSERT_EQ_INT(jfmt_encode(&b2, &d), 0);
    ASSERT_EQ_INT(jfmt_scan_next(&s, &d), JFMT_END);
    ASSERT_EQ_INT(b2.len, b.len);
    ASSERT_EQ_MEM(b2.data, b.data, b.len);
    dbuf_free(&b);
    dbuf_free(&b2);
}

TEST(zero_filled_tail_is_clean_end)
{
    dbuf seg;
    jfmt_seg_stats st;
    build_segment(&seg, 5, NULL);
    size_t data = seg.len;
    static const uint8_t zeros[8192];
    ASSERT_EQ_INT(dbuf_add(&seg, zeros, sizeof zeros), 0); /* preallocated space */
    ASSERT_EQ_INT(jfmt_scan_segment(seg.data, seg.len, NULL, NULL, &st), 0);
    ASSERT_EQ_INT(st.hdr_res, JFMT_OK);
    ASSERT_EQ_INT(st.hdr.seg_seq, 42);
    ASSERT_EQ_INT(st.end_res, JFMT_END);
    ASSERT_EQ_INT(st.records, 5);
    ASSERT_EQ_INT(st.writes, 3);
    ASSERT_EQ_INT(st.states, 2);
    ASSERT_EQ_INT(st.data_end, data);
    ASSERT_EQ_INT(st.first_bad_off, 0);
    /* A header alone is an empty, clean segment. */
    ASSERT_EQ_INT(jfmt_scan_segment(seg.data, JFMT_HDR_SIZE, NULL, NULL, &st), 0);
    ASSERT_EQ_INT(st.end_res, JFMT_END);
    ASSERT_EQ_INT(st.records, 0);
    dbuf_free(&seg);
}

TEST(every_cut_of_the_last_frame_is_torn)
{
    dbuf seg;
    uint64_t offs[6];
    jfmt_seg_stats st;
    build_segment(&seg, 6, offs);
    size_t last = offs[5];
    const uint8_t *lf = (const uint8_t *)seg.data + last;
    size_t payload_end = last + 8 + (lf[0] | (size_t)lf[1] << 8); /* padding follows */
    ASSERT_TRUE(payload_end < seg.len);
    /* Cut short (the file ends inside the frame) or zero-filled after the cut (preallocated). */
    for (size_t cut = last + 1; cut < seg.len; cut++) {
        ASSERT_EQ_INT(jfmt_scan_segment(seg.data, cut, NULL, NULL, &st), 0);
        if (st.end_res != JFMT_TORN) TH_FAIL_AT("cut at %zu: %s", cut, jfmt_res_name(st.end_res));
        ASSERT_EQ_INT(st.records, 5);
        ASSERT_EQ_INT(st.data_end, last);
        ASSERT_EQ_INT(st.first_bad_off, last);

        char *copy = malloc(seg.len + 4096);
        ASSERT_TRUE(copy != NULL);
        memcpy(copy, seg.data, cut);
        memset(copy + cut, 0, seg.len + 4096 - cut);
        ASSERT_EQ_INT(jfmt_scan_segment(copy, seg.len + 4096, NULL, NULL, &st), 0);
        if (cut < payload_end) {
            ASSERT_EQ_INT(st.end_res, JFMT_TORN);
            ASSERT_EQ_INT(st.data_end, last);
        } else { /* only zero padding was missing: the frame is whole */
            ASSERT_EQ_INT(st.end_res, JFMT_END);
            ASSERT_EQ_INT(st.records, 6);
        }
        free(copy);
    }
    /* Garbage after the last good frame is a torn tail too. */
    ASSERT_EQ_INT(dbuf_add(&seg, "\x01garbage", 8), 0);
    ASSERT_EQ_INT(jfmt_scan_segment(seg.data, seg.len, NULL, NULL, &st), 0);
    ASSERT_EQ_INT(st.end_res, JFMT_TORN);
    ASSERT_EQ_INT(st.records, 6);
    ASSERT_EQ_INT(st.data_end, seg.len - 8);
    dbuf_free(&seg);
}

TEST(damage_in_the_middle_is_corrupt_with_offset)
{
    dbuf seg;
    uint64_t offs[10];
    jfmt_rec d;
    build_segment(&seg, 10, offs);
    /* Each kind of damage to frame 4: payload byte, length field, CRC field, zeroed frame. */
    for (int kind = 0; kind < 4; kind++) {
        uint8_t *f = (uint8_t *)seg.data + offs[4];
        uint8_t save[64];
        memcpy(save, f, sizeof save);
        if (kind == 0) f[20] ^= 0x40;
        if (kind == 1) f[1] ^= 0x01;
        if (kind == 2) f[5] ^= 0x80;
        if (kind == 3) memset(f, 0, 16);
        jfmt_scan s;
        jfmt_scan_init(&s, seg.data, seg.len, 0, JFMT_HDR_SIZE, true);
        for (int i = 0; i < 4; i++) {
            ASSERT_EQ_INT(jfmt_scan_next(&s, &d), JFMT_OK);
            ASSERT_EQ_INT(s.rec_off, offs[i]);
        }
        jfmt_res r = jfmt_scan_next(&s, &d);
        if (r != JFMT_CORRUPT) TH_FAIL_AT("kind %d: %s", kind, jfmt_res_name(r));
        ASSERT_EQ_INT(s.bad_off, offs[4]);
        ASSERT_EQ_INT(s.off, offs[5]);
        ASSERT_TRUE(s.why != NULL);
        for (int i = 5; i < 10; i++) {
            ASSERT_EQ_INT(jfmt_scan_next(&s, &d), JFMT_OK);
            ASSERT_EQ_INT(s.rec_off, offs[i]);
        }
        ASSERT_EQ_INT(jfmt_scan_next(&s, &d), JFMT_END);
        jfmt_seg_stats st;
        ASSERT_EQ_INT(jfmt_scan_segment(seg.data, seg.len, NULL, NULL, &st), 0);
        ASSERT_EQ_INT(st.records, 9);
        ASSERT_EQ_INT(st.corrupt, 1);
        ASSERT_EQ_INT(st.first_bad_off, offs[4]);
        ASSERT_EQ_INT(st.end_res, JFMT_END);
        memcpy(f, save, sizeof save);
    }
    dbuf_free(&seg);
}

/* Scan [start, len) through windows that grow by step bytes; record every answer as a string. */
static void scan_windows(const char *buf, size_t len, size_t step, dbuf *log)
{
    uint64_t off = JFMT_HDR_SIZE;
    size_t end = off + step;
    jfmt_rec d;
    for (int guard = 0; guard < 1000000; guard++) {
        if (end > len) end = len;
        jfmt_scan s;
        jfmt_scan_init(&s, buf + off, end - off, off, off, end == len);
        for (;;) {
            jfmt_res r = jfmt_scan_next(&s, &d);
            if (r == JFMT_AGAIN) break;
            ASSERT_EQ_INT(dbuf_printf(log, "%s@%llu/%llu ", jfmt_res_name(r),
                                      (unsigned long long)(r == JFMT_OK ? s.rec_off : r == JFMT_END ? s.off : s.bad_off),
                                      (unsigned long long)s.off), 0);
            if (r == JFMT_END || r == JFMT_TORN) return;
        }
        off = s.off;
        end += step;
    }
    TH_FAIL_AT("window scan did not finish");
}

TEST(windows_give_the_same_answers)
{
    dbuf seg;
    uint64_t offs[12];
    build_segment(&seg, 12, offs);
    ((uint8_t *)seg.data)[offs[3] + 30] ^= 1;  /* corrupt frame 3 */
    memset(seg.data + offs[7], 0, 8);          /* zero frame 7's header */
    seg.len = offs[11] + 20;                   /* and tear the last one */
    dbuf whole, win;
    dbuf_init(&whole, 1 << 20);
    dbuf_init(&win, 1 << 20);
    scan_windows(seg.data, seg.len, seg.len, &whole);
    ASSERT_TRUE(strstr(whole.data, "CORRUPT") != NULL);
    ASSERT_TRUE(strstr(whole.data, "TORN") != NULL);
    for (size_t step = 1; step < 300; step += 7) {
        dbuf_reset(&win);
        scan_windows(seg.data, seg.len, step, &win);
        if (strcmp(win.data, whole.data) != 0) TH_FAIL_AT("step %zu:\n%s\n!=\n%s", step, win.data, whole.data);
    }
    dbuf_free(&whole);
    dbuf_free(&win);
    dbuf_free(&seg);
}

typedef struct {
    uint64_t n, last_seq, last_off;
    bool ok;
} count_ctx;

static int count_cb(void *ctx, const jfmt_rec *rec, uint64_t off)
{
    count_ctx *c = ctx;
    if (rec->type != JFMT_T_WRITE || rec->u.w.seq != c->last_seq + 1 || (c->n && off <= c->last_off) ||
        rec->u.w.body_len != rec->u.w.seq % 4096)
        c->ok = false;
    c->n++;
    c->last_seq = rec->u.w.seq;
    c->last_off = off;
    return 0;
}

TEST(hundred_thousand_records)
{
    dbuf seg;
    jfmt_hdr h;
    jfmt_rec r;
    dbuf_init(&seg, SEG_MAX);
    jfmt_hdr_init(&h, 1, 2);
    ASSERT_EQ_INT(jfmt_hdr_encode(&seg, &h), 0);
    make_write(&r, 0, "/warehouse/events/2024/01/01/part-0001.json");
    for (uint64_t i = 1; i <= 100000; i++) {
        r.u.w.seq = i;
        r.u.w.body_len = i % 4096;
        ASSERT_EQ_INT(jfmt_encode(&seg, &r), 0);
    }
    count_ctx c = {0, 0, 0, true};
    jfmt_seg_stats st;
    ASSERT_EQ_INT(jfmt_scan_segment(seg.data, seg.len, count_cb, &c, &st), 0);
    ASSERT_TRUE(c.ok);
    ASSERT_EQ_INT(c.n, 100000);
    ASSERT_EQ_INT(st.records, 100000);
    ASSERT_EQ_INT(st.max_seq, 100000);
    ASSERT_EQ_INT(st.end_res, JFMT_END);
    ASSERT_EQ_INT(st.data_end, seg.len);
    dbuf_free(&seg);
}

TESTS(T(header_bytes_and_roundtrip), T(header_failures_and_versions), T(state_frame_bytes),
      T(write_roundtrip_exact), T(write_crc32c_flag_bytes), T(op_table_is_fixed_and_complete), T(encode_enforces_limits),
      T(unknown_types_and_newer_fields), T(zero_filled_tail_is_clean_end), T(every_cut_of_the_last_frame_is_torn),
      T(damage_in_the_middle_is_corrupt_with_offset), T(windows_give_the_same_answers), T(hundred_thousand_records));
