/*
 * fuzz_rewrite: the scanner of `dualpipe rewrite` (proxy/rwscan.c), which reads users' files. The
 * first byte picks the mode (bit 0: JSON, bit 1: table metadata), the rest is the file. Properties:
 * edits are in order, do not overlap and stay inside the text; a URI edit turns an adl:// span into
 * an abfss:// one; no edit holds a line break (the diff relies on equal line counts); table metadata
 * is never edited; and the rewritten text has nothing more to rewrite (a second run is a no-op).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fuzz_check.h"
#include "rwscan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char CFG[] =
    "{\"gen1\":{\"endpoint\":\"https://contosolake.azuredatalakestore.net\"},"
    "\"gen2\":{\"endpoint\":\"https://contosogen2.dfs.core.windows.net\",\"account\":\"contosogen2\","
    "\"auth\":{\"mode\":\"shared_key\",\"account_key\":\"AAAA\"},\"mappings\":["
    "{\"gen1_prefix\":\"/warehouse\",\"filesystem\":\"warehouse\",\"prefix\":\"\"},"
    "{\"gen1_prefix\":\"/landing\",\"filesystem\":\"raw\",\"prefix\":\"landing\"},"
    "{\"gen1_prefix\":\"/landing/partners\",\"filesystem\":\"partners\",\"prefix\":\"in/p q\"}]}}";

static dp_config *config(void)
{
    static dp_config *c;
    if (!c) {
        c = calloc(1, sizeof *c);
        cfg_err e;
        CHECK(c && cfg_load_text(CFG, sizeof CFG - 1, c, &e) == 0);
    }
    return c;
}

static size_t lines(const char *t, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += t[i] == '\n';
    return k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    rws_opts o = {.cfg = config(), .gen1_host = (data[0] & 4) ? "" : "contosolake.azuredatalakestore.net",
                  .gen2_host = "contosogen2.dfs.core.windows.net", .json = data[0] & 1, .table_meta = data[0] & 2};
    const char *t = (const char *)data + 1;
    size_t n = size - 1;
    rws_result r;
    memset(&r, 0, sizeof r);
    CHECK(rws_scan(&o, t, n, &r) == 0);
    size_t at = 0;
    for (size_t i = 0; i < r.nedits; i++) {
        const rws_edit *e = &r.edits[i];
        CHECK(e->off >= at && e->off + e->len <= n && e->len > 0);
        at = e->off + e->len;
        CHECK(e->to[0] && !strchr(e->to, '\n'));
        CHECK(!memchr(t + e->off, '\n', e->len));
        if (e->kind == RWS_URI) {
            CHECK(strncasecmp(t + e->off, "adl://", 6) == 0);
            CHECK(strncmp(e->to, "abfss://", 8) == 0);
        }
    }
    for (size_t i = 0; i < r.nfinds; i++) CHECK(r.finds[i].off + r.finds[i].len <= n && r.finds[i].why < RWS_NWHY);
    if (o.table_meta) CHECK(r.nedits == 0);
    char *out = NULL;
    size_t on = 0;
    CHECK(rws_apply(t, n, &r, &out, &on) == 0);
    CHECK(lines(out, on) == lines(t, n));
    rws_result r2;
    memset(&r2, 0, sizeof r2);
    CHECK(rws_scan(&o, out, on, &r2) == 0);
    CHECK(r2.nedits == 0);
    rws_result_free(&r2);
    free(out);
    rws_result_free(&r);
    return 0;
}
