/*
 * fuzz_whreq: libFuzzer driver for the WebHDFS request parser. The input's first line is the HTTP
 * method and the rest the raw request target (no newline: method GET, the whole input is the
 * target). Beyond "no crash, no leak, no UB" it checks the parser's promises: an accepted path is
 * absolute, normalised, bounded and free of control bytes; parameter names are lower case and values
 * free of control bytes; re-encoding the path and parsing it again gives the same path; every getter
 * either succeeds or fills a 400; every error renders as JSON without raw control bytes.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "urlcodec.h"
#include "whreq.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


static void check_json(const whreq_err *err)
{
    CHECK(err->exception != NULL);
    CHECK(err->status >= 400 && err->status <= 599);
    dbuf j;
    dbuf_init(&j, 1 << 16);
    CHECK(whreq_err_json(err, &j) == 0);
    CHECK(strncmp(j.data, "{\"RemoteException\":{\"exception\":\"", 33) == 0);
    for (size_t i = 0; i < j.len; i++)
        CHECK((unsigned char)j.data[i] >= 0x20);
    dbuf_free(&j);
}

static void check_path(const char *p)
{
    size_t n = strlen(p);
    CHECK(n >= 1 && n <= WHREQ_MAX_PATH);
    CHECK(p[0] == '/');
    CHECK(n == 1 || p[n - 1] != '/');
    CHECK(strstr(p, "//") == NULL);
    CHECK(strstr(p, "/../") == NULL && strstr(p, "/./") == NULL);
    CHECK(!(n >= 3 && strcmp(p + n - 3, "/..") == 0) && !(n >= 2 && strcmp(p + n - 2, "/.") == 0));
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        CHECK(c >= 0x20 && c != 0x7F);
    }
}

/* Encoding the accepted path and parsing it again must give the same path and op. */
static void check_reparse(const whreq *r)
{
    dbuf t;
    dbuf_init(&t, 4 * WHREQ_MAX_PATH + 256);
    int rc = dbuf_adds(&t, r->prefix == WH_PREFIX_EXT ? "/WebHdfsExt" : "/webhdfs/v1");
    if (!rc) rc = url_encode(r->path, true, &t);
    if (!rc) rc = dbuf_printf(&t, "?op=%s", r->info->name);
    CHECK(rc == 0);
    whreq r2;
    whreq_err e2;
    CHECK(whreq_parse(r->method, t.data, &r2, &e2) == 0);
    CHECK(strcmp(r2.path, r->path) == 0);
    CHECK(r2.op == r->op && r2.prefix == r->prefix);
    whreq_free(&r2);
    dbuf_free(&t);
}

static void exercise(const whreq *r)
{
    CHECK(r->info != NULL && r->info == whreq_opinfo_get(r->op));
    CHECK(strcmp(r->info->method, r->method) == 0);
    check_path(r->path);
    CHECK(r->nparams >= 1 && r->nparams <= WHREQ_MAX_PARAMS);
    for (int i = 0; i < r->nparams; i++) {
        const whreq_param *p = &r->params[i];
        CHECK(p->name[0] != '\0');
        for (const char *c = p->name; *c; c++)
            CHECK(!(*c >= 'A' && *c <= 'Z') && (unsigned char)*c >= 0x20 && *c != 0x7F);
        for (const char *c = p->value; *c; c++)
            CHECK((unsigned char)*c >= 0x20 && *c != 0x7F);
        CHECK(whreq_param_get(r, p->name) == p->value); /* names are unique */

        whreq_err e = {0};
        bool b;
        if (whreq_get_bool(r, p->name, false, &b, &e) != 0) {
            CHECK(e.status == 400);
            check_json(&e);
        }
        int64_t v;
        if (whreq_get_i64(r, p->name, 0, &v, &e) != 0) {
            CHECK(e.status == 400);
            check_json(&e);
        } else if (p->value[0]) {
            /* The accepted text is exactly the canonical decimal, up to a sign and leading zeros. */
            const char *d = p->value;
            bool neg = false;
            if (*d == '+' || *d == '-') neg = (*d++ == '-');
            while (*d == '0' && d[1])
                d++;
            char want[48], back[32];
            snprintf(want, sizeof want, "%s%.40s", neg && strcmp(d, "0") != 0 ? "-" : "", d);
            snprintf(back, sizeof back, "%lld", (long long)v);
            CHECK(strcmp(want, back) == 0);
        }
        char *np = NULL;
        if (whreq_norm_path(p->value, &np, &e) == 0) {
            check_path(np);
            free(np);
        } else {
            CHECK(np == NULL && e.status == 400);
            check_json(&e);
        }
    }
    whreq_sync s;
    whreq_err e = {0};
    if (whreq_get_sync(r, WH_SYNC_CLOSE, &s, &e) != 0) check_json(&e);
    check_reparse(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 17) return 0;
    const uint8_t *nl = memchr(data, '\n', size);
    char *method, *target;
    if (nl) {
        method = strndup((const char *)data, (size_t)(nl - data));
        target = strndup((const char *)nl + 1, size - (size_t)(nl - data) - 1);
    } else {
        method = strdup("GET");
        target = strndup((const char *)data, size);
    }
    CHECK(method && target);

    whreq r;
    whreq_err err = {0};
    if (whreq_parse(method, target, &r, &err) == 0) {
        exercise(&r);
        whreq_free(&r);
        CHECK(r.path == NULL && r.nparams == 0);
    } else {
        CHECK(r.path == NULL && r.nparams == 0);
        check_json(&err);
    }
    free(method);
    free(target);
    return 0;
}
