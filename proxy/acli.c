/*
 * acli: the admin API client of the operator commands (acli.h).
 */
#include "acli.h"

#include <curl/curl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct sink {
    dbuf *out;
    size_t max;
} sink;

static size_t on_data(char *data, size_t size, size_t n, void *ud)
{
    sink *s = ud;
    size_t len = size * n;
    if (s->out->len + len > s->max) return 0; /* more than any answer of the admin API: stop */
    return dbuf_add(s->out, data, len) == 0 ? len : 0;
}

int acli_base(const char *who, const char *admin, const dp_config *c, char *base, size_t cap)
{
    if (admin) {
        /* HOST:PORT or [V6]:PORT: no scheme, path, user information or spaces */
        const char *colon = strrchr(admin, ':');
        char *end = NULL;
        unsigned long port = colon ? strtoul(colon + 1, &end, 10) : 0;
        if (!colon || colon == admin || strpbrk(admin, "/@?# \t") || !end || *end || colon[1] < '0' ||
            colon[1] > '9' || port < 1 || port > 65535) {
            fprintf(stderr, "%s: --admin must be HOST:PORT (e.g. 127.0.0.1:14080)\n", who);
            return -1;
        }
        snprintf(base, cap, "http://%s", admin);
        return 0;
    }
    if (c->admin_listen.port == 0) {
        fprintf(stderr, "%s: admin.listen has port 0 (picked at start); give --admin HOST:PORT (the daemon's ready "
                        "line names it)\n",
                who);
        return -1;
    }
    const char *h = c->admin_listen.host;
    if (strcmp(h, "0.0.0.0") == 0) h = "127.0.0.1";
    else if (strcmp(h, "::") == 0) h = "::1";
    bool v6 = strchr(h, ':') != NULL;
    snprintf(base, cap, "http://%s%s%s:%d", v6 ? "[" : "", h, v6 ? "]" : "", c->admin_listen.port);
    return 0;
}

long acli_call(const char *who, const char *base, const char *method, const char *target, long timeout_s,
               size_t max, dbuf *out)
{
    char url[8192];
    int n = snprintf(url, sizeof url, "%s%s", base, target);
    if (n < 0 || (size_t)n >= sizeof url) {
        fprintf(stderr, "%s: request too long\n", who);
        return -1;
    }
    CURL *h = curl_easy_init();
    if (!h) {
        fprintf(stderr, "%s: cannot initialise libcurl\n", who);
        return -1;
    }
    sink s = {out, max};
    char cerr[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROXY, "");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, timeout_s);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 5L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, cerr);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
    if (strcmp(method, "POST") == 0) {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, 0L);
    }
    long status = -1;
    CURLcode rc = curl_easy_perform(h);
    if (rc != CURLE_OK)
        fprintf(stderr, "%s: the daemon's admin API at %s does not answer: %s\n", who, base,
                cerr[0] ? cerr : curl_easy_strerror(rc));
    else
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(h);
    return status;
}
