/*
 * emu_admin: request handling for the emulator's admin listener (see emu_admin.h). Bodies are small
 * (rule text), buffered up to 64 KiB. Answers are JSON.
 */
#include "emu_admin.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "urlcodec.h"

#define ADMIN_MAX_BODY (64u << 10)

static void answer_dbuf(emu_req *r, int status, dbuf *b, int rc)
{
    if (rc != 0)
        emu_resp_json(r, 500, "{\"error\":\"out of memory\"}");
    else
        emu_resp_json(r, status, b->data ? b->data : "{}");
    dbuf_free(b);
}

static void error(emu_req *r, int status, const char *msg)
{
    dbuf b;
    dbuf_init(&b, 1024);
    int rc = dbuf_adds(&b, "{\"error\":\"");
    for (const char *p = msg; rc == 0 && *p; p++) {
        if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20)
            rc = dbuf_adds(&b, " ");
        else
            rc = dbuf_add(&b, p, 1);
    }
    if (rc == 0) rc = dbuf_adds(&b, "\"}");
    answer_dbuf(r, status, &b, rc);
}

static long query_ms(const char *query)
{
    url_param ps[8];
    int n = url_split_query(query, ps, 8);
    for (int i = 0; i < n; i++) {
        if (ps[i].name_len == 2 && memcmp(ps[i].name, "ms", 2) == 0 && ps[i].value) {
            char buf[32];
            if (ps[i].value_len >= sizeof buf) return -1;
            memcpy(buf, ps[i].value, ps[i].value_len);
            buf[ps[i].value_len] = '\0';
            char *end = NULL;
            errno = 0;
            long v = strtol(buf, &end, 10);
            if (errno || end == buf || *end || v < 0 || v > 3600000) return -1;
            return v;
        }
    }
    return 0;
}

static void admin_begin(void *ctx, emu_req *r)
{
    if (emu_req_content_length(r) > (int64_t)ADMIN_MAX_BODY) {
        error(r, 413, "admin request body too large");
        return;
    }
    dbuf *b = malloc(sizeof *b);
    if (!b) {
        error(r, 500, "out of memory");
        return;
    }
    dbuf_init(b, ADMIN_MAX_BODY);
    emu_req_set_data(r, b);
}

static void admin_body(void *ctx, emu_req *r, const char *data, size_t n)
{
    dbuf *b = emu_req_get_data(r);
    if (dbuf_add(b, data, n) != 0) error(r, 413, "admin request body too large");
}

static void add_rules(emu_admin *a, emu_req *r, dbuf *body)
{
    char err[256];
    char *text = body->data ? body->data : (char *)"";
    char *save = NULL;
    int added = 0;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        while (*line == ' ' || *line == '\t' || *line == '\r') line++;
        if (*line == '\0' || *line == '#') continue;
        if (emu_fault_add(a->faults, line, err, sizeof err) != 0) {
            error(r, 400, err);
            return;
        }
        added++;
    }
    if (added == 0) {
        error(r, 400, "no fault rule in request body");
        return;
    }
    LOGI("msg=\"fault rules added\" count=%d", added);
    dbuf out;
    dbuf_init(&out, 1 << 20);
    answer_dbuf(r, 200, &out, emu_fault_rules_json(a->faults, &out));
}

static void admin_end(void *ctx, emu_req *r)
{
    emu_admin *a = ctx;
    const char *m = emu_req_method(r), *p = emu_req_path(r);
    dbuf out;
    dbuf_init(&out, 1 << 20);
    if (strcmp(p, "/healthz") == 0 && strcmp(m, "GET") == 0) {
        emu_resp_buf(r, 200, "text/plain", "ok\n", 3);
    } else if (strcmp(p, "/counters") == 0 && strcmp(m, "GET") == 0) {
        answer_dbuf(r, 200, &out, emu_fault_counters_json(a->faults, &out));
    } else if (strcmp(p, "/client-request-ids") == 0 && strcmp(m, "GET") == 0) {
        answer_dbuf(r, 200, &out, emu_fault_crids_json(a->faults, &out));
    } else if (strcmp(p, "/counters") == 0 && strcmp(m, "DELETE") == 0) {
        emu_fault_reset_counters(a->faults);
        emu_resp_json(r, 200, "{}");
    } else if (strcmp(p, "/faults") == 0 && strcmp(m, "GET") == 0) {
        answer_dbuf(r, 200, &out, emu_fault_rules_json(a->faults, &out));
    } else if (strcmp(p, "/faults") == 0 && strcmp(m, "POST") == 0) {
        add_rules(a, r, emu_req_get_data(r));
    } else if (strcmp(p, "/faults") == 0 && strcmp(m, "DELETE") == 0) {
        emu_fault_clear(a->faults);
        emu_resp_json(r, 200, "{\"rules\":[]}");
    } else if (strcmp(p, "/down") == 0 && strcmp(m, "POST") == 0) {
        long ms = query_ms(emu_req_query(r));
        if (ms < 0) {
            error(r, 400, "ms must be an integer between 0 and 3600000");
        } else {
            for (int i = 0; i < a->ntargets; i++) emu_http_down(a->targets[i], (unsigned)ms);
            emu_resp_json(r, 200, "{\"down\":true}");
        }
    } else if (strcmp(p, "/up") == 0 && strcmp(m, "POST") == 0) {
        int rc = 0;
        for (int i = 0; i < a->ntargets; i++) rc |= emu_http_up(a->targets[i]);
        if (rc)
            error(r, 500, "listener could not come back (port taken?)");
        else
            emu_resp_json(r, 200, "{\"down\":false}");
    } else if (strcmp(p, "/stats") == 0 && strcmp(m, "GET") == 0) {
        uint64_t nodes = 0, bytes = 0;
        emu_store_stats(a->store, &nodes, &bytes);
        int rc = dbuf_printf(&out, "{\"nodes\":%llu,\"bytes\":%llu}", (unsigned long long)nodes,
                             (unsigned long long)bytes);
        answer_dbuf(r, 200, &out, rc);
    } else {
        error(r, 404, "unknown admin endpoint");
    }
    dbuf_free(&out);
}

static void admin_done(void *ctx, emu_req *r, bool completed)
{
    dbuf *b = emu_req_get_data(r);
    if (b) {
        dbuf_free(b);
        free(b);
    }
}

static void admin_fault(void *ctx, emu_req *r, int status, int retry_after_s, const char *code)
{
    error(r, status, "request refused");
}

void emu_admin_service(emu_admin *a, emu_service *svc)
{
    *svc = (emu_service){.ctx = a,
                         .begin = admin_begin,
                         .body = admin_body,
                         .end = admin_end,
                         .done = admin_done,
                         .fault = admin_fault};
}
