/*
 * spool: request bodies on disk, in shared segment files instead of one file per body.
 *
 * A spool directory holds segment files named "spool-%016" PRIx64 ".seg" (the segment id in hex). A
 * body gets a region of the current segment when its request begins (spool_begin): its exact length
 * when the writer sent Content-Length, else up to max_len (the file is sparse, so unwritten space
 * costs nothing on disk). Regions start on 4 KiB boundaries. Bytes are written with pwrite(2) as they
 * arrive, on the caller's thread (MHD hands data in a buffer that is only valid during its callback;
 * writing into the page cache is a memcpy), and a CRC-32C of them is kept (the SSE4.2 instruction where
 * the CPU has it: a fraction of the cost of the SHA-256 earlier versions kept); durability is the group
 * commit's job: spool_take_dirty hands the journal the segments written since its last commit, and
 * it fdatasyncs them (through iox) in the same cycle as the journal records that point at them.
 *
 * Releasing space. A body is reference counted. When the last reference goes, its region is "held":
 * merged with adjacent held regions of its segment and counted in held_bytes, which counts against
 * max_bytes like live bodies do. Held space is punched out (fallocate PUNCH_HOLE through iox, so a
 * long-lived neighbour does not pin it) in batches: a merged range once it reaches SPOOL_PUNCH_MIN,
 * all of a segment's ranges when it stops being current (or holds more than 64 ranges), and every
 * segment's ranges when live plus held bytes pass max_bytes or when spool_would_exceed needs the room. Punching each small body on its own would
 * cost a synchronous discard per body on file systems mounted with discard. A segment that is no
 * longer current and holds no live body is deleted, held ranges and all.
 *
 * Disk use is bounded by the caller: spool_would_exceed says whether a new body of a given length
 * would take the bytes in use past spool.max_bytes; the policy (reject or degrade) is the proxy's.
 *
 * After a crash, spool_attach gives the journal's recovered records their bodies back (optionally
 * checking the checksum the journal kept: a CRC-32C, or the SHA-256 of a record written by an older
 * version), and spool_recovery_done deletes the segments nobody attached to.
 *
 * Logs nothing. Thread-safe.
 */
#ifndef DP_SPOOL_H
#define DP_SPOOL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "iox.h"

#define SPOOL_ALIGN 4096u
#define SPOOL_PUNCH_MIN (1u << 20) /* released regions from this size on are punched out at once */
#define SPOOL_DIGEST_LEN 32

/** Which checksum a spool_sum holds. */
typedef enum spool_sum_kind {
    SPOOL_SUM_SHA256 = 1, /* bytes: the SHA-256 (bodies journaled by versions before format 1.1) */
    SPOOL_SUM_CRC32C = 2, /* bytes[0..3]: the CRC-32C, little-endian; the other 28 bytes zero */
} spool_sum_kind;

/** A body's checksum as the journal keeps it (the WRITE record's digest field and flag). */
typedef struct spool_sum {
    uint8_t kind; /* spool_sum_kind */
    uint8_t bytes[SPOOL_DIGEST_LEN];
} spool_sum;

/** The CRC-32C of a SPOOL_SUM_CRC32C sum. */
uint32_t spool_sum_crc(const spool_sum *sum);

typedef struct spool spool;
typedef struct spool_seg spool_seg;

/**
 * A body in the spool. fd, seg and off are fixed at spool_begin; len grows with spool_write and is
 * final after spool_finish, when sum becomes valid. Readers (Gen1 send, Gen2 apply) pread
 * [off, off + len) of fd. Fields are read-only outside spool.c.
 */
typedef struct spool_body {
    int fd;                 /* the segment's fd (owned by the segment, open while the body lives) */
    uint64_t seg;           /* segment id */
    uint64_t off;           /* where the body starts in the segment (multiple of SPOOL_ALIGN) */
    uint64_t len;           /* bytes written */
    uint64_t cap;           /* bytes reserved */
    spool_sum sum;          /* the bytes' checksum, valid once finished: a CRC-32C for bodies written
                               here, whatever the journal kept for a recovered one */
    bool finished;
    _Atomic int refs;
    spool *sp;              /* private */
    spool_seg *sg;          /* private */
    uint32_t crc;           /* private: the CRC-32C of the bytes written so far */
    uint64_t wb;            /* private: bytes [0, wb) have had their writeback started */
} spool_body;

typedef struct spool_opts {
    const char *dir;        /* created if missing (not its parents) */
    uint64_t segment_bytes; /* a new segment is started when the current one would pass this (0 = 64 MiB) */
    uint64_t max_bytes;     /* spool.max_bytes: what spool_would_exceed checks against (0 = no limit) */
    iox *io;                /* hole punching; must outlive the spool */
} spool_opts;

/** Open (create) the spool directory. Existing segments are kept for spool_attach. 0 or -1 + err. */
int spool_open(const spool_opts *o, spool **out, char *err, size_t errlen);
/** Close every fd and free. Bodies still referenced must not be used afterwards. Segments stay on disk. */
void spool_close(spool *s);

/** True when a new body of len bytes would take the bytes in use past max_bytes. */
bool spool_would_exceed(spool *s, uint64_t len);

/**
 * Count n bytes staged outside the spool's segments (a re-copy's part read from Gen1) against
 * max_bytes, when they fit: 0, or -EAGAIN when they would take the bytes in use past max_bytes (the
 * caller waits and asks again; nothing is counted). Give them back with spool_release.
 */
int spool_reserve(spool *s, uint64_t n) __attribute__((warn_unused_result));
/** Stop counting n bytes a spool_reserve counted. */
void spool_release(spool *s, uint64_t n);

/**
 * Reserve a region for a new body: exactly expect_len bytes when known, else max_len (expect_len =
 * UINT64_MAX). Returns 0 and *out (one reference, owned by the caller) or -errno (creating a segment
 * failed: -ENOSPC, -EIO ...).
 */
int spool_begin(spool *s, uint64_t expect_len, uint64_t max_len, spool_body **out);
/** Append n bytes to the body (pwrite at off + len; the CRC is extended). 0, -EFBIG (past the
 *  reservation) or -errno from pwrite (a short write is continued; ENOSPC and EIO are returned). */
int spool_write(spool_body *b, const void *data, size_t n);
/** The body is complete: sum set, the unused part of the reservation given back. 0 or -errno. */
int spool_finish(spool_body *b);

spool_body *spool_ref(spool_body *b);
/** Drop a reference; the last one frees the region (and maybe the segment). NULL is fine. */
void spool_unref(spool_body *b);

/**
 * Segments written since the previous call (at most max), each with a reference that keeps its fd
 * open: the journal fdatasyncs them, then gives each back with spool_seg_put. Returns the count.
 */
int spool_take_dirty(spool *s, spool_seg **out, int max);
int spool_seg_fd(const spool_seg *g);
void spool_seg_put(spool_seg *g);

/**
 * Recovery: the body of a journal record at (seg, off, len). With verify, its bytes are read and their
 * checksum (sum->kind: CRC-32C, or SHA-256) compared with sum. Returns 0 and *out (one reference),
 * -ENOENT (segment gone or too short), -EBADMSG (mismatch: the bytes on disk are not the writer's, or
 * a kind this build does not know).
 */
int spool_attach(spool *s, uint64_t seg, uint64_t off, uint64_t len, const spool_sum *sum, bool verify,
                 spool_body **out);
/**
 * Pins: a live body without an object (the journal's compact index keeps one per evicted record
 * instead of a spool_body). A pin counts like a body: in live_bodies, in the bytes in use, and it
 * keeps its segment. spool_pin is spool_attach without the object (recovery); spool_pin_take turns a
 * pin into a body object (one reference; its last spool_unref releases the region as usual), and
 * spool_body_to_pin the reverse when b holds its last reference (false, and nothing changes,
 * otherwise). spool_unpin releases a pinned region as the last reference of its body would.
 */
int spool_pin(spool *s, uint64_t seg, uint64_t off, uint64_t len, const spool_sum *sum, bool verify);
int spool_pin_take(spool *s, uint64_t seg, uint64_t off, uint64_t len, const spool_sum *sum, spool_body **out);
bool spool_body_to_pin(spool_body *b);
void spool_unpin(spool *s, uint64_t seg, uint64_t off, uint64_t len);

/** Recovery is over: delete segments no attached body lives in; new bodies go to a new segment. */
void spool_recovery_done(spool *s);

typedef struct spool_stats {
    uint64_t used_bytes;    /* bytes of live bodies (reserved for bodies still being written) */
    uint64_t held_bytes;    /* released, not punched out yet; used + held is what max_bytes caps */
    uint64_t reserved_bytes;/* staged outside the segments (spool_reserve), included in used_bytes */
    uint64_t max_bytes;
    uint64_t live_bodies;   /* body objects and pins */
    uint64_t segments;      /* segment files open */
    uint64_t segments_deleted;
} spool_stats;
void spool_get_stats(spool *s, spool_stats *st);

#endif
