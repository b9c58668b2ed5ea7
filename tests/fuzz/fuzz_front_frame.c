/*
 * fuzz_front_frame: libFuzzer driver for the front end's own header and framing checks
 * (proxy/front_frame.c). The input is a raw header section (the bytes after a request line); its first
 * byte picks the request's version ('0': HTTP/1.0, anything else HTTP/1.1) and the query whose
 * parameters ff_query_params counts is the input's last line.
 *
 * The header section is parsed the way libmicrohttpd 0.9.75 does it, in place: a line ends at LF (a CR
 * right before it is dropped too; a bare CR stays in the value), the colon becomes a NUL, blanks after it
 * are skipped, names and values end at the first NUL (MHD measures them with strlen), and a line
 * starting with a blank is joined onto the previous field's name in a copy elsewhere (obs-fold). Checked
 * beyond "no crash, no leak, no UB":
 *  - ff_in_place accepts every section without a fold or a NUL byte, and refuses every section with a fold;
 *  - whatever ff_check accepts has token names, values without control bytes (HTAB aside), at most one
 *    Host (exactly one in HTTP/1.1), a chunked request has a length of -1 and must be closed after its
 *    answer when it has a Content-Length too, and any other Content-Length equals every such field;
 *  - every refusal is a 400, 431 or 501 that renders as a RemoteException.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "front_frame.h"
#include "fuzz_check.h"
#include "whreq.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_FIELDS (FF_MAX_FIELDS + 8)

static bool tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static bool named(const ff_field *f, const char *n)
{
    return f->name_len == strlen(n) && strncasecmp(f->name, n, f->name_len) == 0;
}

static void check_accepted(const char *version, const ff_field *fs, size_t n, const ff_frame *fr)
{
    size_t nhost = 0, nte = 0, ncl = 0;
    for (size_t i = 0; i < n; i++) {
        CHECK(fs[i].name_len > 0);
        for (size_t k = 0; k < fs[i].name_len; k++) CHECK(tchar((unsigned char)fs[i].name[k]));
        for (size_t k = 0; k < fs[i].value_len; k++) {
            unsigned char c = (unsigned char)fs[i].value[k];
            CHECK(c == '\t' || (c >= 0x20 && c != 0x7f));
        }
        if (named(&fs[i], "Host")) nhost++;
        if (named(&fs[i], "Transfer-Encoding")) nte++;
        if (named(&fs[i], "Content-Length")) {
            ncl++;
            if (!fr->chunked) CHECK(strtoll(fs[i].value, NULL, 10) == fr->content_length);
        }
    }
    CHECK(nhost <= 1);
    if (strcmp(version, "HTTP/1.0") != 0) CHECK(nhost == 1);
    CHECK(nte <= 1);
    CHECK(fr->must_close == (nte && ncl));
    CHECK(fr->chunked == (nte == 1));
    if (fr->chunked) CHECK(fr->content_length == -1);
    if (!ncl) CHECK(fr->content_length == -1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0 || size > 65536) return 0;
    const char *version = data[0] == '0' ? "HTTP/1.0" : "HTTP/1.1";
    size_t len = size - 1;
    /* MHD's read buffer: the section, then room so reads just past the end stay in bounds (MHD's
     * buffer always holds the empty line that ends the section there). */
    char *buf = calloc(1, len + 4);
    char *folded[MAX_FIELDS] = {0};
    ff_field fs[MAX_FIELDS];
    if (!buf) return 0;
    memcpy(buf, data + 1, len);
    bool has_nul = memchr(buf, '\0', len) != NULL, has_fold = false, malformed = false, truncated = false;
    size_t n = 0, pos = 0;
    const char *last_line = "";
    while (pos < len && !malformed) {
        char *line = buf + pos;
        char *lf = memchr(line, '\n', len - pos);
        char *end = lf ? lf : buf + len;
        pos = (size_t)(end - buf) + 1;
        if (lf) *lf = '\0';
        if (end > line && end[-1] == '\r') end[-1] = '\0';
        last_line = line;
        if (line[0] == '\0') break; /* the empty line: end of the section */
        if ((line[0] == ' ' || line[0] == '\t') && n > 0) {
            /* obs-fold: MHD appends the continuation to the previous name, in a new pool block */
            const char *t = line;
            while (*t == ' ' || *t == '\t') t++;
            size_t a = strlen(fs[n - 1].name), b = strlen(t);
            char *j = malloc(a + b + 2);
            if (!j) break;
            memcpy(j, fs[n - 1].name, a);
            memcpy(j + a, t, b + 1);
            j[a + b + 1] = '\0';
            free(folded[n - 1]);
            folded[n - 1] = j;
            fs[n - 1].name = j;
            fs[n - 1].name_len = a + b;
            has_fold = true;
            continue;
        }
        char *colon = strchr(line, ':');
        if (!colon) {
            malformed = true; /* MHD refuses the request itself */
            break;
        }
        *colon = '\0';
        char *v = colon + 1;
        while (*v == ' ' || *v == '\t') v++;
        if (n == MAX_FIELDS) {
            truncated = true; /* more fields than the driver keeps: the list no longer ends the section */
            break;
        }
        fs[n++] = (ff_field){line, strlen(line), v, strlen(v)};
    }
    if (!malformed) {
        bool in_place = ff_in_place(fs, n);
        if (has_fold) CHECK(!in_place);
        else if (!has_nul && !truncated) CHECK(in_place);
        ff_frame fr = {.content_length = -2};
        whreq_err e = {0};
        if (ff_check(version, fs, n, &fr, &e) == 0) {
            check_accepted(version, fs, n, &fr);
        } else {
            CHECK(e.status == 400 || e.status == 431 || e.status == 501);
            CHECK(e.exception != NULL);
            if (e.status == 431) CHECK(n > FF_MAX_FIELDS);
            dbuf j;
            dbuf_init(&j, 1 << 16);
            CHECK(whreq_err_json(&e, &j) == 0);
            dbuf_free(&j);
        }
    }
    size_t np = ff_query_params(last_line);
    CHECK(np <= strlen(last_line) + 1);
    for (size_t i = 0; i < MAX_FIELDS; i++) free(folded[i]);
    free(buf);
    return 0;
}
