/*
 * jrnl_fmt: the on-disk format of journal segments and its codec (the format itself is specified in
 * JOURNAL.md beside this file; this header and that document change together). A segment is a
 * fixed header followed by 8-byte-aligned frames [u32 length][u32 crc32c(payload)][payload][pad],
 * little-endian. Payloads are WRITE records (a write accepted into the journal, with its spool
 * reference and body digest), STATE records (a write's later state changes) or types a newer
 * writer added, which a reader skips by length.
 *
 * No I/O here: the encoder appends to a caller's dbuf, the decoder walks a caller's byte buffer
 * (a whole segment, or a window of one) and hands back views into that buffer, so scanning
 * allocates nothing. The scanner tells a clean end (including a zero-filled, preallocated tail)
 * from a torn tail (recovery truncates it) and from corruption in the middle (reported with the
 * offset of the damage and of the next good frame). Logs nothing; thread-safe (no shared state).
 */
#ifndef DP_JRNL_FMT_H
#define DP_JRNL_FMT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dbuf.h"
#include "whreq.h"

/* ---- Format constants (JOURNAL.md §2, §3) ---- */
#define JFMT_MAGIC "DPJRNL\r\n"      /* 8 bytes, no NUL */
#define JFMT_VERSION_MAJOR 1
#define JFMT_VERSION_MINOR 1          /* 1.1: WRITE records may carry a CRC-32C (JFMT_WF_CRC32C) */
#define JFMT_HDR_SIZE 64             /* header size written by this version */
#define JFMT_HDR_MAX 4096            /* largest header size a reader accepts */
#define JFMT_FRAME_HDR 8             /* u32 length + u32 crc */
#define JFMT_ALIGN 8                 /* every frame starts at a multiple of 8 */
#define JFMT_MAX_FRAME 65536         /* whole frame: header + payload + padding */
#define JFMT_MIN_PAYLOAD 4           /* the payload's common header (u16 type, u16 flags) */
#define JFMT_MAX_PAYLOAD (JFMT_MAX_FRAME - JFMT_FRAME_HDR)
#define JFMT_MAX_PATH 4096
#define JFMT_MAX_PARAMS 64
#define JFMT_MAX_KEY 256
#define JFMT_MAX_DETAIL 256
#define JFMT_DIGEST_LEN 32           /* the WRITE's digest field: a SHA-256, or a CRC-32C and 28 zeros */

/*
 * WRITE record flags (the payload's u16 flags, JOURNAL.md section 4). JFMT_WF_CRC32C (1.1): the digest
 * field holds the CRC-32C of the body as a little-endian u32 in its first 4 bytes, the other 28 bytes
 * zero; without it (every 1.0 record) the field is the body's SHA-256.
 */
#define JFMT_WF_CRC32C 0x0001u

/* Header flags: the low 16 bits are "compatible" (a reader ignores bits it does not know), the
 * high 16 bits "incompatible" (a reader refuses a segment with a bit it does not know). */
#define JFMT_HF_COMPAT_MASK 0x0000ffffu
#define JFMT_HF_INCOMPAT_KNOWN 0x00000000u /* no incompatible feature exists yet */

/** Record types (u16 on disk). 0 is never valid, so zero-filled space never decodes as a record. */
typedef enum jfmt_type {
    JFMT_T_WRITE = 1,
    JFMT_T_STATE = 2,
} jfmt_type;

/** Write states carried by STATE records (u16 on disk; values are fixed forever). */
typedef enum jfmt_state {
    JFMT_S_ACCEPTED = 1,        /* journaled, primary not yet answered */
    JFMT_S_PRIMARY_OK = 2,      /* primary accepted it; the secondary owes it */
    JFMT_S_PRIMARY_REFUSED = 3, /* primary refused it: aborted, the secondary never sees it */
    JFMT_S_APPLIED = 4,         /* secondary has it */
    JFMT_S_RESYNC = 5,          /* cannot be replayed; the path is copied from the primary */
    JFMT_S_PARKED = 6,          /* even a resync failed; waits for an operator */
    JFMT_S_DROPPED = 7,         /* an operator dropped it */
    JFMT_S_PRIMARY_UNKNOWN = 8, /* primary outcome unknown (timeout, crash); recovery asks */
} jfmt_state;

/**
 * On-disk op codes (u16). A fixed table, independent of the order of whreq_op: appending to or
 * reordering whreq_op never changes what an old journal means. Only write ops have codes.
 */
typedef enum jfmt_op {
    JFMT_OP_NONE = 0,
    JFMT_OP_CREATE = 1, JFMT_OP_APPEND = 2, JFMT_OP_CONCURRENTAPPEND = 3, JFMT_OP_MKDIRS = 4,
    JFMT_OP_RENAME = 5, JFMT_OP_DELETE = 6, JFMT_OP_CONCAT = 7, JFMT_OP_MSCONCAT = 8,
    JFMT_OP_SETPERMISSION = 9, JFMT_OP_SETOWNER = 10, JFMT_OP_SETACL = 11,
    JFMT_OP_MODIFYACLENTRIES = 12, JFMT_OP_REMOVEACLENTRIES = 13, JFMT_OP_REMOVEACL = 14,
    JFMT_OP_REMOVEDEFAULTACL = 15, JFMT_OP_SETTIMES = 16, JFMT_OP_SETEXPIRY = 17,
    JFMT_OP_RESYNC = 18, /* not a WebHDFS op: copy the path from the primary (operator or dirty mark) */
} jfmt_op;

/** On-disk code of a write op; JFMT_OP_NONE for read ops, WH_OP_UNKNOWN and out-of-range values. */
uint16_t jfmt_op_from_whreq(whreq_op op);
/** whreq_op of an on-disk code; WH_OP_UNKNOWN for a code this build does not know. */
whreq_op jfmt_op_to_whreq(uint16_t code);
/** Name of a state ("ACCEPTED", ...), "UNKNOWN" for values this build does not know. */
const char *jfmt_state_name(uint16_t state);

/** Results of header decoding and scanning. */
typedef enum jfmt_res {
    JFMT_OK = 0,      /* a record (or header) was decoded */
    JFMT_END = 1,     /* clean end of data: nothing left, or only zero bytes */
    JFMT_AGAIN = 2,   /* window mode only: supply more bytes from jfmt_scan.off on */
    JFMT_TORN = 3,    /* unusable bytes at the tail and no good frame after them: truncate at off */
    JFMT_CORRUPT = 4, /* damage at bad_off, good frames resume at off (the scanner moved there) */
    JFMT_EVERSION = 5 /* header: another major version or an unknown incompatible flag */
} jfmt_res;

/** Name of a result ("OK", "END", ...). */
const char *jfmt_res_name(jfmt_res r);

/** A length-counted view of bytes (not NUL-terminated; points into the decoded buffer). */
typedef struct jfmt_str {
    const char *p;
    size_t len;
} jfmt_str;

/* Reserved WRITE parameter: the write's request id (JOURNAL.md section 4). Its upper-case letters keep
 * it apart from the writer's parameters, whose names the front end stores lower-cased. */
#define JFMT_KEY_REQUEST_ID "X-Request-Id"

typedef struct jfmt_kv {
    jfmt_str key; /* 1..JFMT_MAX_KEY bytes, no NUL */
    jfmt_str val; /* 0..65535 bytes, no NUL */
} jfmt_kv;

/** WRITE: one write accepted into the journal. */
typedef struct jfmt_write {
    uint64_t seq;          /* journal sequence number, unique and increasing */
    uint16_t op;           /* jfmt_op code */
    uint16_t primary_status; /* HTTP status the primary answered, 0 = not known when written */
    uint64_t t_accept_ns;  /* when accepted (Unix epoch ns) */
    uint64_t t_primary_ns; /* when the primary answered, 0 = not yet */
    uint64_t spool_seg;    /* body reference: spool segment id ... */
    uint64_t spool_off;    /* ... byte offset in it ... */
    uint64_t body_len;     /* ... and length (0 and 0 for ops without a body) */
    uint8_t digest[JFMT_DIGEST_LEN]; /* the body's checksum: CRC-32C (record flag JFMT_WF_CRC32C) or
                                        SHA-256 (1.0 records); all zero without a body in 1.0 */
    jfmt_str path;         /* absolute path, 1..JFMT_MAX_PATH bytes, starts with '/', no NUL */
    uint16_t nparams;      /* 0..JFMT_MAX_PARAMS */
    jfmt_kv params[JFMT_MAX_PARAMS];
} jfmt_write;

/** STATE: a later state of the write with sequence number seq. */
typedef struct jfmt_statechg {
    uint64_t seq;
    uint16_t state;  /* jfmt_state (unknown values are kept as they are) */
    uint16_t status; /* an HTTP status that goes with it (primary's or secondary's), 0 = none */
    uint64_t t_ns;
    jfmt_str detail; /* 0..JFMT_MAX_DETAIL bytes of operator text, no NUL */
} jfmt_statechg;

/**
 * A decoded record. All views point into the buffer that was decoded (or, for encoding, at the
 * caller's data). ext is whatever follows the fields this version knows (a newer minor version's
 * additions): kept so that re-encoding a record reproduces it byte for byte. For a type this
 * build does not know, raw is the payload after the 4-byte common header.
 */
typedef struct jfmt_rec {
    uint16_t type;  /* jfmt_type, or another non-zero value for unknown types */
    uint16_t flags; /* record flags (WRITE: JFMT_WF_CRC32C since 1.1); unknown bits are kept */
    union {
        jfmt_write w;
        jfmt_statechg s;
        jfmt_str raw;
    } u;
    jfmt_str ext;
} jfmt_rec;

/** The CRC-32C in a WRITE's digest field (meaningful when the record has JFMT_WF_CRC32C). */
uint32_t jfmt_digest_crc(const uint8_t digest[JFMT_DIGEST_LEN]);
/** Write crc into a WRITE's digest field as JFMT_WF_CRC32C says (LE u32, then 28 zero bytes). */
void jfmt_digest_set_crc(uint8_t digest[JFMT_DIGEST_LEN], uint32_t crc);

/** The segment header. */
typedef struct jfmt_hdr {
    uint16_t major, minor;
    uint32_t hdr_size;   /* bytes before the first frame; a multiple of 8, 64..JFMT_HDR_MAX */
    uint64_t seg_seq;    /* segment sequence number */
    uint64_t created_ns; /* creation time, Unix epoch ns */
    uint32_t flags;
    uint64_t seq_floor;  /* highest record seq assigned when the segment was created: seqs never
                            go back below it, even after every older segment was deleted */
} jfmt_hdr;

/** Fill h with this version's header for segment seg_seq created at created_ns, flags 0, seq_floor 0. */
void jfmt_hdr_init(jfmt_hdr *h, uint64_t seg_seq, uint64_t created_ns);

/**
 * Append the JFMT_HDR_SIZE-byte header (h->major, h->minor, h->hdr_size are ignored; this
 * version's values are written). Returns 0, -E2BIG or -ENOMEM (out unchanged on failure).
 */
__attribute__((warn_unused_result)) int jfmt_hdr_encode(dbuf *out, const jfmt_hdr *h);

/**
 * Decode a header from the first len bytes of a segment. Returns JFMT_OK (h filled), JFMT_END
 * (len is 0 or the bytes are all zero: a segment whose header never reached the disk), JFMT_TORN
 * (fewer bytes than the header needs), JFMT_CORRUPT (bad magic, size or CRC) or JFMT_EVERSION
 * (another major version or an unknown incompatible flag: the reader must not go on).
 */
jfmt_res jfmt_hdr_decode(const void *buf, size_t len, jfmt_hdr *h);

/** Bytes the frame of rec takes (header, payload, padding), or 0 if rec breaks a limit. */
size_t jfmt_frame_size(const jfmt_rec *rec);

/**
 * Append rec as one frame to out. Checks every limit first (path, params, key/value/detail sizes,
 * no NUL in text, the total frame size). Returns 0, -EINVAL (rec breaks a format rule), -E2BIG
 * (out's limit) or -ENOMEM; out is unchanged on failure.
 */
__attribute__((warn_unused_result)) int jfmt_encode(dbuf *out, const jfmt_rec *rec);

/**
 * Decode one payload (the bytes a frame's CRC covers) into rec; views point into payload.
 * Returns 0, or -1 when the payload is malformed (why set to a static reason if not NULL).
 */
int jfmt_decode_payload(const void *payload, size_t len, jfmt_rec *rec, const char **why);

/**
 * A scanner over a buffer holding segment bytes [base, base + len). Caller-owned; plain data, so
 * it may be copied. Offsets are absolute segment offsets.
 */
typedef struct jfmt_scan {
    const uint8_t *buf;
    size_t len;
    uint64_t base;    /* segment offset of buf[0] */
    bool final;       /* buf reaches the end of the segment's data */
    uint64_t off;     /* next frame to read; after END/TORN: where the good data ends */
    uint64_t rec_off; /* after OK: offset of the returned record's frame */
    uint64_t bad_off; /* after TORN/CORRUPT: where the damage starts */
    const char *why;  /* after TORN/CORRUPT: static reason, e.g. "crc mismatch" */
} jfmt_scan;

/**
 * Start scanning buf (segment bytes from offset base; start is the absolute offset of the first
 * frame, normally the header size, and must lie in [base, base + len]). final says whether buf
 * reaches the end of the segment. A whole segment read into memory is one final window.
 */
void jfmt_scan_init(jfmt_scan *s, const void *buf, size_t len, uint64_t base, uint64_t start, bool final);

/**
 * Return the next record. OK: rec filled (views into the buffer), s->rec_off its offset, s->off
 * moved past it. END: no more records (the rest is empty or zero); s->off is where data ends.
 * TORN: the bytes from s->bad_off (== s->off) on are an incomplete or damaged tail with no good
 * frame after it; recovery truncates there. CORRUPT: damage at s->bad_off and a good frame at
 * s->off, where scanning continues on the next call. AGAIN (only when !final): the answer depends
 * on bytes beyond the window; call jfmt_scan_init again with a window that starts at s->off and
 * holds more bytes (or reaches the end, final). Results are the same whatever the windows were.
 * END and TORN repeat on further calls. Never reads outside the window.
 */
jfmt_res jfmt_scan_next(jfmt_scan *s, jfmt_rec *rec);

/** What jfmt_scan_segment found. */
typedef struct jfmt_seg_stats {
    jfmt_hdr hdr;
    jfmt_res hdr_res;  /* result of jfmt_hdr_decode */
    jfmt_res end_res;  /* END, TORN or the header's failure */
    uint64_t records, writes, states, unknown;
    uint64_t corrupt;  /* CORRUPT results (damaged stretches skipped) */
    uint64_t first_bad_off; /* offset of the first TORN/CORRUPT damage (0 = none) */
    uint64_t data_end; /* where the good data ends (truncate a torn tail here) */
    uint64_t max_seq;  /* largest WRITE/STATE seq seen */
} jfmt_seg_stats;

/** Called for each good record; a non-zero return stops the scan and is returned. */
typedef int (*jfmt_rec_cb)(void *ctx, const jfmt_rec *rec, uint64_t off);

/**
 * Scan a whole segment held in memory: header, then every frame, calling cb (may be NULL) for
 * each good record. Fills st. Returns 0, or cb's non-zero value.
 */
int jfmt_scan_segment(const void *buf, size_t len, jfmt_rec_cb cb, void *ctx, jfmt_seg_stats *st);

#endif
