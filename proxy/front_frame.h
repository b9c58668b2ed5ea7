/*
 * front_frame: the front end's own checks of a request's header section and message framing (RFC 9112),
 * made on top of what libmicrohttpd 0.9.75 lets through. Pure functions over the header fields MHD parsed:
 * no daemon, no allocation, no logging (the fuzz target fuzz_front_frame drives them directly).
 *
 * What is refused, and why here: MHD frames a body by the first Transfer-Encoding or, failing that, the
 * first Content-Length it finds, and forwards everything else as it came. So a request with two different
 * lengths, with a transfer coding other than chunked, or with a field name that is not a token (whitespace
 * before the colon turns "Content-Length " into a harmless-looking unknown field) could be read one way
 * here and another way by the next hop, and a value holding CR, NUL or other control bytes would be relayed
 * to Gen1 as it is. Every such request is answered 400 (501 for a transfer coding we do not implement) and
 * its connection closed, before any of it reaches an upstream.
 *
 * Content-Length beside "Transfer-Encoding: chunked" is the one ambiguity RFC 9112 (section 6.3) lets a
 * server either refuse or serve by the transfer coding alone, provided it closes the connection after
 * answering. The front serves it (the Azure Node SDK, azure-arm-datalake-store, sends both on every
 * upload): the body is read as chunked, the length is ignored (Gen1 is sent a request of the proxy's own
 * making), and the connection is closed after the answer, so nothing after the chunked body is ever read
 * as a next request.
 */
#ifndef DP_FRONT_FRAME_H
#define DP_FRONT_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "whreq.h"

#define FF_MAX_FIELDS 128 /* header fields in one request; more is a 431 */

/** One header field as MHD parsed it (name without the colon, value without leading whitespace). */
typedef struct ff_field {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
} ff_field;

/** How the request's body is framed, once ff_check accepted it. */
typedef struct ff_frame {
    int64_t content_length; /* -1 when absent or chunked */
    bool chunked;           /* Transfer-Encoding: chunked */
    bool must_close;        /* close the connection after the answer (Content-Length beside chunked) */
} ff_frame;

/**
 * Check the header section of one request. version is the request line's protocol ("HTTP/1.1",
 * "HTTP/1.0"); fields are all n header fields in the order received. Returns 0 and the framing in *out, or
 * -1 with e set (400 IllegalArgumentException, 431 for more than FF_MAX_FIELDS fields, 501
 * UnsupportedOperationException for a transfer coding other than chunked). Refused:
 *  - a field name that is not an RFC 9110 token (empty, whitespace before the colon, control bytes);
 *  - a value holding a control byte other than HTAB (CR, LF, NUL, 0x01-0x1f, DEL);
 *  - an HTTP/1.1 request without exactly one Host, an HTTP/1.0 one with more than one;
 *  - Content-Length that is not 1*DIGIT (or overflows), or several that differ;
 *  - Transfer-Encoding in an HTTP/1.0 request, or more than once (with Content-Length beside a valid
 *    chunked one the request is accepted as chunked with must_close set);
 *  - a transfer-coding list whose last coding is not chunked (400), or any coding besides chunked (501).
 */
int ff_check(const char *version, const ff_field *fields, size_t n, ff_frame *out, whreq_err *e);

/** Query parameters in a raw query (the '&'-separated pieces MHD will parse; "" has none). */
size_t ff_query_params(const char *query);

/**
 * True when fields lie in one buffer exactly as libmicrohttpd 0.9.75 leaves a header section it parsed
 * in place: each name NUL-terminated where its colon was, the value after optional blanks, each value
 * ending at its line's end (one NUL for LF, two for CRLF) and the next name right after. MHD joins an
 * obs-folded line onto the name in a copy elsewhere in its pool, and stops a value at a NUL byte without
 * saying so; both break this layout, so this is how the front sees obs-fold and NUL in a value. Reads at
 * most two bytes past each value and the blanks before it (all inside MHD's read buffer).
 */
bool ff_in_place(const ff_field *fields, size_t n);

#endif
