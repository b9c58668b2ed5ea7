/*
 * jrnl_fmt: encoder and scanner for journal segments (format: JOURNAL.md). Integers are read and
 * written byte-order independently through memcpy plus a swap on big-endian hosts. The decoder
 * checks every length against the bytes that are really there before it looks at them, so no input
 * can make it read outside its window; decoded records are views into the window, so the scanner's
 * hot path is: read 8 bytes, CRC the payload (SSE4.2 when available), decode fixed fields, one
 * memchr per text field. Classification of bad bytes follows one rule (JOURNAL.md §6): damage that
 * a good frame follows is CORRUPT, damage that no good frame follows is a TORN tail, and a region
 * of zero bytes that runs to the end is the clean END of a preallocated segment. Deciding that may
 * need every byte up to the segment's end, which is why a window scanner answers AGAIN instead of
 * guessing; with the whole segment in one window it never does.
 */
#include "jrnl_fmt.h"

#include <errno.h>
#include <string.h>

#include "crc32c.h"

/* Fixed parts of the payloads (JOURNAL.md §4, §5). */
#define JFMT_W_FIXED 92
#define JFMT_S_FIXED 26
#define JFMT_HDR_CRC_OFF(hs) ((hs) - 4u)

/* ---- little-endian helpers ---- */

static inline uint16_t rd16(const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, sizeof v);
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
    v = __builtin_bswap16(v);
#endif
    return v;
}

static inline uint32_t rd32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
    v = __builtin_bswap32(v);
#endif
    return v;
}

static inline uint64_t rd64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof v);
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

static inline void wr16(uint8_t *p, uint16_t v)
{
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
    v = __builtin_bswap16(v);
#endif
    memcpy(p, &v, sizeof v);
}

static inline void wr32(uint8_t *p, uint32_t v)
{
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
    v = __builtin_bswap32(v);
#endif
    memcpy(p, &v, sizeof v);
}

static inline void wr64(uint8_t *p, uint64_t v)
{
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    memcpy(p, &v, sizeof v);
}

static inline size_t align8(size_t n)
{
    return (n + (JFMT_ALIGN - 1)) & ~(size_t)(JFMT_ALIGN - 1);
}

static bool all_zero(const uint8_t *p, size_t n)
{
    /* 8 bytes at a time: the zero tail of a preallocated segment can be megabytes long. */
    while (n >= 8) {
        if (rd64(p)) return false;
        p += 8;
        n -= 8;
    }
    while (n--)
        if (*p++) return false;
    return true;
}

/* ---- op codes, names ---- */

static const struct {
    uint16_t code;
    whreq_op op;
} jfmt_ops[] = {
    {JFMT_OP_CREATE, WH_OP_CREATE},
    {JFMT_OP_APPEND, WH_OP_APPEND},
    {JFMT_OP_CONCURRENTAPPEND, WH_OP_CONCURRENTAPPEND},
    {JFMT_OP_MKDIRS, WH_OP_MKDIRS},
    {JFMT_OP_RENAME, WH_OP_RENAME},
    {JFMT_OP_DELETE, WH_OP_DELETE},
    {JFMT_OP_CONCAT, WH_OP_CONCAT},
    {JFMT_OP_MSCONCAT, WH_OP_MSCONCAT},
    {JFMT_OP_SETPERMISSION, WH_OP_SETPERMISSION},
    {JFMT_OP_SETOWNER, WH_OP_SETOWNER},
    {JFMT_OP_SETACL, WH_OP_SETACL},
    {JFMT_OP_MODIFYACLENTRIES, WH_OP_MODIFYACLENTRIES},
    {JFMT_OP_REMOVEACLENTRIES, WH_OP_REMOVEACLENTRIES},
    {JFMT_OP_REMOVEACL, WH_OP_REMOVEACL},
    {JFMT_OP_REMOVEDEFAULTACL, WH_OP_REMOVEDEFAULTACL},
    {JFMT_OP_SETTIMES, WH_OP_SETTIMES},
    {JFMT_OP_SETEXPIRY, WH_OP_SETEXPIRY},
};

uint16_t jfmt_op_from_whreq(whreq_op op)
{
    for (size_t i = 0; i < sizeof jfmt_ops / sizeof jfmt_ops[0]; i++)
        if (jfmt_ops[i].op == op) return jfmt_ops[i].code;
    return JFMT_OP_NONE;
}

whreq_op jfmt_op_to_whreq(uint16_t code)
{
    for (size_t i = 0; i < sizeof jfmt_ops / sizeof jfmt_ops[0]; i++)
        if (jfmt_ops[i].code == code) return jfmt_ops[i].op;
    return WH_OP_UNKNOWN;
}

const char *jfmt_state_name(uint16_t state)
{
    switch (state) {
    case JFMT_S_ACCEPTED: return "ACCEPTED";
    case JFMT_S_PRIMARY_OK: return "PRIMARY_OK";
    case JFMT_S_PRIMARY_REFUSED: return "PRIMARY_REFUSED";
    case JFMT_S_APPLIED: return "APPLIED";
    case JFMT_S_RESYNC: return "RESYNC";
    case JFMT_S_PARKED: return "PARKED";
    case JFMT_S_DROPPED: return "DROPPED";
    case JFMT_S_PRIMARY_UNKNOWN: return "PRIMARY_UNKNOWN";
    default: return "UNKNOWN";
    }
}

const char *jfmt_res_name(jfmt_res r)
{
    switch (r) {
    case JFMT_OK: return "OK";
    case JFMT_END: return "END";
    case JFMT_AGAIN: return "AGAIN";
    case JFMT_TORN: return "TORN";
    case JFMT_CORRUPT: return "CORRUPT";
    case JFMT_EVERSION: return "EVERSION";
    }
    return "UNKNOWN";
}

/* ---- the WRITE digest field ---- */

uint32_t jfmt_digest_crc(const uint8_t digest[JFMT_DIGEST_LEN])
{
    return rd32(digest);
}

void jfmt_digest_set_crc(uint8_t digest[JFMT_DIGEST_LEN], uint32_t crc)
{
    memset(digest, 0, JFMT_DIGEST_LEN);
    wr32(digest, crc);
}

/* ---- header ---- */

void jfmt_hdr_init(jfmt_hdr *h, uint64_t seg_seq, uint64_t created_ns)
{
    memset(h, 0, sizeof *h);
    h->major = JFMT_VERSION_MAJOR;
    h->minor = JFMT_VERSION_MINOR;
    h->hdr_size = JFMT_HDR_SIZE;
    h->seg_seq = seg_seq;
    h->created_ns = created_ns;
}

int jfmt_hdr_encode(dbuf *out, const jfmt_hdr *h)
{
    uint8_t b[JFMT_HDR_SIZE] = {0};
    memcpy(b, JFMT_MAGIC, 8);
    wr16(b + 8, JFMT_VERSION_MAJOR);
    wr16(b + 10, JFMT_VERSION_MINOR);
    wr32(b + 12, JFMT_HDR_SIZE);
    wr64(b + 16, h->seg_seq);
    wr64(b + 24, h->created_ns);
    wr32(b + 32, h->flags);
    wr64(b + 36, h->seq_floor);
    /* 44..59 reserved, zero */
    wr32(b + JFMT_HDR_CRC_OFF(JFMT_HDR_SIZE), crc32c(b, JFMT_HDR_CRC_OFF(JFMT_HDR_SIZE)));
    return dbuf_add(out, b, sizeof b);
}

jfmt_res jfmt_hdr_decode(const void *buf, size_t len, jfmt_hdr *h)
{
    const uint8_t *b = buf;
    if (all_zero(b, len < JFMT_HDR_SIZE ? len : JFMT_HDR_SIZE)) return JFMT_END;
    if (len < 12) return JFMT_TORN;
    if (memcmp(b, JFMT_MAGIC, 8) != 0) return JFMT_CORRUPT;
    /* The magic and the major version keep their places in every version of the format. */
    if (rd16(b + 8) != JFMT_VERSION_MAJOR) return JFMT_EVERSION;
    if (len < 16) return JFMT_TORN;
    uint32_t hs = rd32(b + 12);
    if (hs < JFMT_HDR_SIZE || hs > JFMT_HDR_MAX || hs % JFMT_ALIGN) return JFMT_CORRUPT;
    if (len < hs) return JFMT_TORN;
    if (rd32(b + JFMT_HDR_CRC_OFF(hs)) != crc32c(b, JFMT_HDR_CRC_OFF(hs))) return JFMT_CORRUPT;
    uint32_t flags = rd32(b + 32);
    if ((flags & ~JFMT_HF_COMPAT_MASK) & ~JFMT_HF_INCOMPAT_KNOWN) return JFMT_EVERSION;
    h->major = JFMT_VERSION_MAJOR;
    h->minor = rd16(b + 10);
    h->hdr_size = hs;
    h->seg_seq = rd64(b + 16);
    h->created_ns = rd64(b + 24);
    h->flags = flags;
    h->seq_floor = rd64(b + 36);
    return JFMT_OK;
}

/* ---- payload decoding ---- */

static inline bool has_nul(const uint8_t *p, size_t n)
{
    return n && memchr(p, 0, n) != NULL;
}

#define JFMT_MALFORMED(reason)                                                                     \
    do {                                                                                           \
        if (why) *why = (reason);                                                                  \
        return -1;                                                                                 \
    } while (0)

static int decode_write(const uint8_t *p, size_t len, jfmt_write *w, size_t *used, const char **why)
{
    if (len < JFMT_W_FIXED) JFMT_MALFORMED("WRITE record too short");
    w->op = rd16(p + 4);
    w->primary_status = rd16(p + 6);
    w->seq = rd64(p + 8);
    w->t_accept_ns = rd64(p + 16);
    w->t_primary_ns = rd64(p + 24);
    w->spool_seg = rd64(p + 32);
    w->spool_off = rd64(p + 40);
    w->body_len = rd64(p + 48);
    memcpy(w->digest, p + 56, JFMT_DIGEST_LEN);
    size_t plen = rd16(p + 88);
    uint16_t np = rd16(p + 90);
    size_t i = JFMT_W_FIXED;
    if (plen < 1 || plen > JFMT_MAX_PATH) JFMT_MALFORMED("WRITE path length out of range");
    if (np > JFMT_MAX_PARAMS) JFMT_MALFORMED("WRITE has too many params");
    if (plen > len - i) JFMT_MALFORMED("WRITE path overruns the record");
    if (p[i] != '/' || has_nul(p + i, plen)) JFMT_MALFORMED("WRITE path is not absolute text");
    w->path.p = (const char *)p + i;
    w->path.len = plen;
    i += plen;
    w->nparams = np;
    for (uint16_t k = 0; k < np; k++) {
        if (len - i < 4) JFMT_MALFORMED("WRITE param header overruns the record");
        size_t kl = rd16(p + i), vl = rd16(p + i + 2);
        i += 4;
        if (kl < 1 || kl > JFMT_MAX_KEY) JFMT_MALFORMED("WRITE param name length out of range");
        if (kl > len - i || vl > len - i - kl) JFMT_MALFORMED("WRITE param overruns the record");
        if (has_nul(p + i, kl) || has_nul(p + i + kl, vl)) JFMT_MALFORMED("WRITE param contains NUL");
        w->params[k].key.p = (const char *)p + i;
        w->params[k].key.len = kl;
        w->params[k].val.p = (const char *)p + i + kl;
        w->params[k].val.len = vl;
        i += kl + vl;
    }
    *used = i;
    return 0;
}

static int decode_state(const uint8_t *p, size_t len, jfmt_statechg *s, size_t *used, const char **why)
{
    if (len < JFMT_S_FIXED) JFMT_MALFORMED("STATE record too short");
    s->state = rd16(p + 4);
    s->status = rd16(p + 6);
    s->seq = rd64(p + 8);
    s->t_ns = rd64(p + 16);
    size_t dl = rd16(p + 24);
    if (dl > JFMT_MAX_DETAIL) JFMT_MALFORMED("STATE detail too long");
    if (dl > len - JFMT_S_FIXED) JFMT_MALFORMED("STATE detail overruns the record");
    if (has_nul(p + JFMT_S_FIXED, dl)) JFMT_MALFORMED("STATE detail contains NUL");
    s->detail.p = (const char *)p + JFMT_S_FIXED;
    s->detail.len = dl;
    *used = JFMT_S_FIXED + dl;
    return 0;
}

int jfmt_decode_payload(const void *payload, size_t len, jfmt_rec *rec, const char **why)
{
    const uint8_t *p = payload;
    size_t used = 0;
    if (len < JFMT_MIN_PAYLOAD) JFMT_MALFORMED("payload shorter than its header");
    if (len > JFMT_MAX_PAYLOAD) JFMT_MALFORMED("payload too long");
    rec->type = rd16(p);
    rec->flags = rd16(p + 2);
    switch (rec->type) {
    case 0: JFMT_MALFORMED("record type 0");
    case JFMT_T_WRITE:
        if (decode_write(p, len, &rec->u.w, &used, why)) return -1;
        break;
    case JFMT_T_STATE:
        if (decode_state(p, len, &rec->u.s, &used, why)) return -1;
        break;
    default:
        /* A type from a newer writer: skipped by length, kept whole. */
        rec->u.raw.p = (const char *)p + JFMT_MIN_PAYLOAD;
        rec->u.raw.len = len - JFMT_MIN_PAYLOAD;
        used = len;
        break;
    }
    rec->ext.p = (const char *)p + used;
    rec->ext.len = len - used;
    return 0;
}

/* ---- encoding ---- */

static bool text_ok(const jfmt_str *s, size_t min, size_t max)
{
    if (s->len < min || s->len > max) return false;
    if (s->len && !s->p) return false;
    return !has_nul((const uint8_t *)s->p, s->len);
}

/* Payload size of rec, or 0 if rec breaks a rule of the format. */
static size_t payload_size(const jfmt_rec *rec)
{
    size_t n;
    if (rec->ext.len && !rec->ext.p) return 0;
    switch (rec->type) {
    case 0: return 0;
    case JFMT_T_WRITE: {
        const jfmt_write *w = &rec->u.w;
        if (!text_ok(&w->path, 1, JFMT_MAX_PATH) || w->path.p[0] != '/') return 0;
        if (w->nparams > JFMT_MAX_PARAMS) return 0;
        n = JFMT_W_FIXED + w->path.len;
        for (uint16_t k = 0; k < w->nparams; k++) {
            if (!text_ok(&w->params[k].key, 1, JFMT_MAX_KEY)) return 0;
            if (!text_ok(&w->params[k].val, 0, UINT16_MAX)) return 0;
            n += 4 + w->params[k].key.len + w->params[k].val.len;
            if (n > JFMT_MAX_PAYLOAD) return 0;
        }
        break;
    }
    case JFMT_T_STATE:
        if (!text_ok(&rec->u.s.detail, 0, JFMT_MAX_DETAIL)) return 0;
        n = JFMT_S_FIXED + rec->u.s.detail.len;
        break;
    default:
        /* Unknown types carry everything in raw; ext belongs to known types. */
        if (rec->ext.len || (rec->u.raw.len && !rec->u.raw.p) || rec->u.raw.len > JFMT_MAX_PAYLOAD) return 0;
        n = JFMT_MIN_PAYLOAD + rec->u.raw.len;
        break;
    }
    if (rec->ext.len > JFMT_MAX_PAYLOAD || n + rec->ext.len > JFMT_MAX_PAYLOAD) return 0;
    return n + rec->ext.len;
}

size_t jfmt_frame_size(const jfmt_rec *rec)
{
    size_t n = payload_size(rec);
    return n ? align8(JFMT_FRAME_HDR + n) : 0;
}

static int add_str(dbuf *out, const jfmt_str *s)
{
    return s->len ? dbuf_add(out, s->p, s->len) : 0;
}

static int encode_body(dbuf *out, const jfmt_rec *rec)
{
    uint8_t f[JFMT_W_FIXED] = {0};
    int rc;
    wr16(f, rec->type);
    wr16(f + 2, rec->flags);
    switch (rec->type) {
    case JFMT_T_WRITE: {
        const jfmt_write *w = &rec->u.w;
        wr16(f + 4, w->op);
        wr16(f + 6, w->primary_status);
        wr64(f + 8, w->seq);
        wr64(f + 16, w->t_accept_ns);
        wr64(f + 24, w->t_primary_ns);
        wr64(f + 32, w->spool_seg);
        wr64(f + 40, w->spool_off);
        wr64(f + 48, w->body_len);
        memcpy(f + 56, w->digest, JFMT_DIGEST_LEN);
        wr16(f + 88, (uint16_t)w->path.len);
        wr16(f + 90, w->nparams);
        if ((rc = dbuf_add(out, f, JFMT_W_FIXED)) || (rc = add_str(out, &w->path))) return rc;
        for (uint16_t k = 0; k < w->nparams; k++) {
            uint8_t kv[4];
            wr16(kv, (uint16_t)w->params[k].key.len);
            wr16(kv + 2, (uint16_t)w->params[k].val.len);
            if ((rc = dbuf_add(out, kv, 4)) || (rc = add_str(out, &w->params[k].key)) ||
                (rc = add_str(out, &w->params[k].val)))
                return rc;
        }
        break;
    }
    case JFMT_T_STATE: {
        const jfmt_statechg *s = &rec->u.s;
        wr16(f + 4, s->state);
        wr16(f + 6, s->status);
        wr64(f + 8, s->seq);
        wr64(f + 16, s->t_ns);
        wr16(f + 24, (uint16_t)s->detail.len);
        if ((rc = dbuf_add(out, f, JFMT_S_FIXED)) || (rc = add_str(out, &s->detail))) return rc;
        break;
    }
    default:
        if ((rc = dbuf_add(out, f, JFMT_MIN_PAYLOAD)) || (rc = add_str(out, &rec->u.raw))) return rc;
        break;
    }
    return add_str(out, &rec->ext);
}

int jfmt_encode(dbuf *out, const jfmt_rec *rec)
{
    static const uint8_t zeros[JFMT_ALIGN] = {0};
    size_t plen = payload_size(rec);
    if (!plen) return -EINVAL;
    size_t fsz = align8(JFMT_FRAME_HDR + plen);
    if (out->len > out->max || fsz > out->max - out->len) return -E2BIG;
    size_t start = out->len;
    int rc = dbuf_add(out, zeros, JFMT_FRAME_HDR);
    if (rc) goto out;
    if ((rc = encode_body(out, rec))) goto out;
    if ((rc = dbuf_add(out, zeros, fsz - JFMT_FRAME_HDR - plen))) goto out;
    uint8_t *f = (uint8_t *)out->data + start;
    wr32(f, (uint32_t)plen);
    wr32(f + 4, crc32c(f + JFMT_FRAME_HDR, plen));
out:
    if (rc) {
        out->len = start;
        if (out->data) out->data[start] = '\0';
    }
    return rc;
}

/* ---- scanning ---- */

typedef enum { FR_OK, FR_SHORT, FR_BAD } fr_res;

/* Judge the frame at index i of the window: complete and good, cut off by the window's end, or
 * bad whatever follows. On FR_OK *fsz is its size and rec is filled. */
static fr_res frame_at(const uint8_t *buf, size_t len, size_t i, jfmt_rec *rec, size_t *fsz, const char **why)
{
    size_t rem = len - i;
    if (rem < JFMT_FRAME_HDR) {
        *why = "frame header cut short";
        return FR_SHORT;
    }
    const uint8_t *f = buf + i;
    uint32_t plen = rd32(f);
    if (plen < JFMT_MIN_PAYLOAD || plen > JFMT_MAX_PAYLOAD) {
        *why = plen ? "frame length out of range" : "zero frame header before non-zero bytes";
        return FR_BAD;
    }
    size_t n = align8(JFMT_FRAME_HDR + (size_t)plen);
    if (n > rem) {
        *why = "frame cut short";
        return FR_SHORT;
    }
    if (crc32c(f + JFMT_FRAME_HDR, plen) != rd32(f + 4)) {
        *why = "crc mismatch";
        return FR_BAD;
    }
    if (!all_zero(f + JFMT_FRAME_HDR + plen, n - JFMT_FRAME_HDR - plen)) {
        *why = "non-zero frame padding";
        return FR_BAD;
    }
    if (jfmt_decode_payload(f + JFMT_FRAME_HDR, plen, rec, why)) return FR_BAD;
    *fsz = n;
    return FR_OK;
}

typedef enum { FN_FOUND, FN_NONE, FN_MORE } fn_res;

/* The first good frame after the bad one at index i, on 8-byte boundaries. In a window that does
 * not reach the end, a candidate cut by the window's end means the answer needs more bytes. */
static fn_res find_next(const jfmt_scan *s, size_t i, size_t *next)
{
    jfmt_rec tmp;
    const char *why = NULL;
    size_t fsz;
    for (size_t j = i + JFMT_ALIGN; j < s->len; j += JFMT_ALIGN) {
        fr_res r = frame_at(s->buf, s->len, j, &tmp, &fsz, &why);
        if (r == FR_OK) {
            *next = j;
            return FN_FOUND;
        }
        if (r == FR_SHORT && !s->final) return FN_MORE;
    }
    return s->final ? FN_NONE : FN_MORE;
}

void jfmt_scan_init(jfmt_scan *s, const void *buf, size_t len, uint64_t base, uint64_t start, bool final)
{
    s->buf = buf;
    s->len = len;
    s->base = base;
    s->final = final;
    s->off = start;
    s->rec_off = start;
    s->bad_off = 0;
    s->why = NULL;
}

jfmt_res jfmt_scan_next(jfmt_scan *s, jfmt_rec *rec)
{
    if (s->off < s->base || s->off - s->base > s->len) return s->final ? JFMT_END : JFMT_AGAIN;
    size_t i = (size_t)(s->off - s->base);
    size_t rem = s->len - i, fsz = 0, next = 0;
    const char *why = NULL;

    /* Zero bytes up to the end of the data: the clean end of a preallocated segment. */
    if ((rem < JFMT_FRAME_HDR || rd64(s->buf + i) == 0) && all_zero(s->buf + i, rem))
        return s->final ? JFMT_END : JFMT_AGAIN;

    fr_res r = frame_at(s->buf, s->len, i, rec, &fsz, &why);
    if (r == FR_OK) {
        s->rec_off = s->off;
        s->off += fsz;
        return JFMT_OK;
    }
    if (r == FR_SHORT && !s->final) return JFMT_AGAIN;
    switch (find_next(s, i, &next)) {
    case FN_MORE: return JFMT_AGAIN;
    case FN_FOUND:
        s->bad_off = s->off;
        s->why = why;
        s->off = s->base + next;
        return JFMT_CORRUPT;
    case FN_NONE: break;
    }
    s->bad_off = s->off;
    s->why = why;
    return JFMT_TORN;
}

int jfmt_scan_segment(const void *buf, size_t len, jfmt_rec_cb cb, void *ctx, jfmt_seg_stats *st)
{
    jfmt_scan s;
    jfmt_rec rec;
    memset(st, 0, sizeof *st);
    st->hdr_res = jfmt_hdr_decode(buf, len, &st->hdr);
    if (st->hdr_res != JFMT_OK) {
        st->end_res = st->hdr_res;
        return 0;
    }
    jfmt_scan_init(&s, buf, len, 0, st->hdr.hdr_size, true);
    for (;;) {
        jfmt_res r = jfmt_scan_next(&s, &rec);
        if (r == JFMT_OK) {
            st->records++;
            uint64_t seq = 0;
            if (rec.type == JFMT_T_WRITE) {
                st->writes++;
                seq = rec.u.w.seq;
            } else if (rec.type == JFMT_T_STATE) {
                st->states++;
                seq = rec.u.s.seq;
            } else {
                st->unknown++;
            }
            if (seq > st->max_seq) st->max_seq = seq;
            if (cb) {
                int rc = cb(ctx, &rec, s.rec_off);
                if (rc) {
                    st->data_end = s.off;
                    return rc;
                }
            }
            continue;
        }
        if (r == JFMT_CORRUPT) {
            st->corrupt++;
            if (!st->first_bad_off) st->first_bad_off = s.bad_off;
            continue;
        }
        if (r == JFMT_TORN && !st->first_bad_off) st->first_bad_off = s.bad_off;
        st->end_res = r; /* END or TORN: a final window never answers AGAIN */
        st->data_end = s.off;
        return 0;
    }
}
