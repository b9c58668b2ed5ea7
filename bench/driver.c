/* bn_drv: the libcurl multi loop. Each worker owns one easy handle, reused for every request (connections
 * stay in the multi's pool, so keep-alive works across requests and across the two steps of a hadoop
 * write). Bodies are generated straight into libcurl's upload buffer by the read callback (default buffer
 * size, see proxy/ARCHITECTURE.md); responses are always read to their end, hashed when asked and their first bytes
 * kept for the job to parse. One thread, curl_multi_poll with a 100 ms tick for the clock and progress. */
#include "driver.h"

#include "data.h"

#include <curl/curl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct drv;

struct wk {
    struct drv *d;
    unsigned id;
    CURL *easy;
    EVP_MD_CTX *md;
    struct bn_req req;
    struct bn_res res;
    int hop;
    bool body;              /* this hop sends the body */
    uint64_t sent;
    uint64_t t0;
    char url[BN_TARGET_MAX + 1024];
};

struct drv {
    const struct bn_cfg *cfg;
    const struct bn_job *job;
    struct bn_stats *st;
    bool measured;
    CURLM *multi;
    struct curl_slist *hdr_body;
    struct curl_slist *hdr_plain;
    struct wk *w;
    unsigned active;
    uint64_t t_start, t_warm, t_end, t_last;
    uint64_t issued;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void bn_drv_stats_init(struct bn_stats *st)
{
    memset(st, 0, sizeof(*st));
    for (unsigned i = 0; i < BN_OP_COUNT; i++)
        bn_hist_init(&st->op[i]);
    bn_hist_init(&st->all);
    bn_hist_ts_init(&st->ts);
    for (unsigned i = 0; i < BN_PHASE_MAX; i++)
        bn_hist_init(&st->phase[i]);
}

void bn_drv_stats_free(struct bn_stats *st)
{
    bn_hist_ts_free(&st->ts);
}

static size_t on_read(char *buf, size_t size, size_t nitems, void *userp)
{
    struct wk *k = userp;
    if (!k->body)
        return 0;
    uint64_t left = k->req.len - k->sent;
    size_t n = size * nitems;
    if (n > left)
        n = (size_t)left;
    bn_data_fill(k->d->cfg->seed, k->req.file, k->req.off + k->sent, (unsigned char *)buf, n);
    k->sent += n;
    return n;
}

static int on_seek(void *userp, curl_off_t offset, int origin)
{
    struct wk *k = userp;
    if (origin != SEEK_SET || offset < 0 || (uint64_t)offset > k->req.len)
        return CURL_SEEKFUNC_FAIL;
    k->sent = (uint64_t)offset;
    return CURL_SEEKFUNC_OK;
}

static size_t on_write(char *ptr, size_t size, size_t nmemb, void *userp)
{
    struct wk *k = userp;
    size_t n = size * nmemb;
    k->res.body_bytes += n;
    if (k->req.hash && EVP_DigestUpdate(k->md, ptr, n) != 1)
        return 0;
    if (k->res.body_len < BN_BODY_KEEP) {
        size_t c = BN_BODY_KEEP - k->res.body_len;
        if (c > n)
            c = n;
        memcpy(k->res.body + k->res.body_len, ptr, c);
        k->res.body_len += c;
        k->res.body[k->res.body_len] = '\0';
    }
    return n;
}

/* Starts hop k->hop of k->req: hop 0 goes to the base URL, hop 1 to the Location already in k->url. */
static int start_hop(struct wk *k)
{
    const struct bn_cfg *cfg = k->d->cfg;
    const struct bn_req *rq = &k->req;
    bool flagged = rq->flag != NULL && rq->flag[0] != '\0';
    if (k->hop == 0) {
        bool add = flagged && cfg->flow == BN_FLOW_ADLS;
        int n = snprintf(k->url, sizeof(k->url), "%s%s%s%s", cfg->url, rq->target, add ? "&" : "",
                         add ? rq->flag : "");
        if (n < 0 || (size_t)n >= sizeof(k->url))
            return -1;
        /* hadoop two-step: the namenode step carries no body */
        k->body = rq->upload && !(flagged && cfg->flow == BN_FLOW_HADOOP);
    } else {
        k->body = rq->upload;
    }
    k->sent = 0;
    k->res.body_bytes = 0;
    k->res.body_len = 0;
    k->res.body[0] = '\0';
    if (EVP_DigestInit_ex(k->md, EVP_sha256(), NULL) != 1)
        return -1;

    CURL *e = k->easy;
    curl_easy_reset(e);
    curl_easy_setopt(e, CURLOPT_URL, k->url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, k);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT, 600L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, k);
    curl_off_t len = k->body ? (curl_off_t)rq->len : 0;
    switch (rq->method) {
    case BN_GET:
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, k->d->hdr_plain);
        break;
    case BN_PUT:
        curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, len);
        break;
    case BN_POST:
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, len);
        break;
    case BN_PATCH:
        curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, len);
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, "PATCH");
        break;
    }
    if (rq->method != BN_GET) {
        curl_easy_setopt(e, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(e, CURLOPT_READDATA, k);
        curl_easy_setopt(e, CURLOPT_SEEKFUNCTION, on_seek);
        curl_easy_setopt(e, CURLOPT_SEEKDATA, k);
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, k->d->hdr_body);
    }
    if (curl_multi_add_handle(k->d->multi, e) != CURLM_OK)
        return -1;
    return 0;
}

static bool stopping(struct drv *d, uint64_t t)
{
    if (!d->measured)
        return false;
    if (d->t_end != 0 && t >= d->t_end)
        return true;
    return d->cfg->ops != 0 && d->issued >= d->cfg->ops;
}

/* Asks the job for worker k's next request and starts it; a worker with nothing left goes idle. */
static void launch(struct drv *d, struct wk *k)
{
    for (;;) {
        uint64_t t = now_ns();
        memset(&k->req, 0, sizeof(k->req));
        if (d->job->next(d->job->ctx, k->id, stopping(d, t), &k->req) != 1)
            return;
        if (d->measured && t >= d->t_warm)
            d->issued++;
        k->hop = 0;
        k->t0 = t;
        if (start_hop(k) == 0) {
            d->active++;
            return;
        }
        /* could not even start it (URL too long): report as a transport error and move on */
        memset(&k->res, 0, sizeof(k->res));
        k->res.curl_code = CURLE_URL_MALFORMAT;
        if (!d->job->done(d->job->ctx, k->id, &k->req, &k->res) && d->st != NULL) {
            d->st->errors++;
            d->st->err_status[0]++;
        }
    }
}

static void record(struct drv *d, struct wk *k, bool ok, uint64_t t)
{
    struct bn_stats *st = d->st;
    if (st == NULL)
        return;
    uint64_t bytes = 0;
    if (k->req.upload)
        bytes += k->req.len;
    if (k->req.op == BN_OP_OPEN)
        bytes += k->res.body_bytes;
    if (!ok) {
        long s = k->res.status;
        st->errors++;
        st->err_status[s < 0 ? 0 : s >= BN_STATUS_MAX ? BN_STATUS_MAX - 1 : s]++;
    } else {
        st->acked++;
        st->acked_bytes += bytes;
    }
    if (!d->measured || k->t0 < d->t_warm)
        return;
    bn_hist_record(&st->op[k->req.op], k->res.ns);
    bn_hist_record(&st->all, k->res.ns);
    bn_hist_ts_record(&st->ts, t - d->t_warm, k->res.ns, bytes, ok);
    unsigned ph = 0;
    double at = (double)(t - d->t_warm) / 1e9;
    while (ph < d->cfg->nphase_at && at >= d->cfg->phase_at[ph])
        ph++;
    bn_hist_record(&st->phase[ph], k->res.ns);
    st->phase_bytes[ph] += bytes;
    st->phase_errors[ph] += ok ? 0 : 1;
    st->ops++;
    st->bytes += bytes;
}

static void finish(struct drv *d, struct wk *k, CURLcode cc)
{
    long status = 0;
    curl_multi_remove_handle(d->multi, k->easy);
    d->active--;
    if (cc == CURLE_OK)
        curl_easy_getinfo(k->easy, CURLINFO_RESPONSE_CODE, &status);
    if (cc == CURLE_OK && status == 307 && k->hop == 0) {
        char *loc = NULL;
        curl_easy_getinfo(k->easy, CURLINFO_REDIRECT_URL, &loc);
        if (loc != NULL && strlen(loc) < sizeof(k->url)) {
            memcpy(k->url, loc, strlen(loc) + 1);
            k->hop = 1;
            if (start_hop(k) == 0) {
                d->active++;
                return;
            }
        }
    }
    uint64_t t = now_ns();
    k->res.ns = t - k->t0;
    k->res.status = cc == CURLE_OK ? status : 0;
    k->res.curl_code = (int)cc;
    unsigned int dl = 0;
    if (EVP_DigestFinal_ex(k->md, k->res.digest, &dl) != 1)
        memset(k->res.digest, 0, sizeof(k->res.digest));
    bool ok = d->job->done(d->job->ctx, k->id, &k->req, &k->res);
    record(d, k, ok, t);
    d->t_last = t;
    launch(d, k);
}

static void progress(struct drv *d, const char *label, bool final)
{
    uint64_t t = now_ns();
    const struct bn_stats *st = d->st;
    if (t < d->t_warm) {
        printf("\r%s: warm-up %.0f s left      ", label, (double)(d->t_warm - t) / 1e9);
    } else {
        double el = (double)(t - d->t_warm) / 1e9;
        double eta = -1;
        if (d->t_end != 0)
            eta = d->t_end > t ? (double)(d->t_end - t) / 1e9 : 0;
        else if (d->cfg->ops != 0 && st->ops > 0 && el > 0)
            eta = d->cfg->ops > st->ops ? (double)(d->cfg->ops - st->ops) / ((double)st->ops / el) : 0;
        printf("\r%s: %llu ops  %.0f ops/s  %.1f MB/s  errors %llu", label, (unsigned long long)st->ops,
               el > 0 ? (double)st->ops / el : 0.0, el > 0 ? (double)st->bytes / el / 1e6 : 0.0,
               (unsigned long long)st->errors);
        if (eta >= 0)
            printf("  ETA %.0f s", eta);
        printf("      ");
    }
    if (final)
        printf("\n");
    fflush(stdout);
}

/* Appends header h (nothing when NULL) to *list; -1 when out of memory (*list is kept for freeing). */
static int add_header(struct curl_slist **list, const char *h)
{
    if (h == NULL)
        return 0;
    struct curl_slist *l = curl_slist_append(*list, h);
    if (l == NULL)
        return -1;
    *list = l;
    return 0;
}

int bn_drv_run(const struct bn_cfg *cfg, const struct bn_job *job, struct bn_stats *st, bool measured,
               const char *label)
{
    int rc = -1;
    struct drv d = { .cfg = cfg, .job = job, .st = st, .measured = measured && st != NULL };
    d.w = calloc(cfg->concurrency, sizeof(*d.w));
    d.multi = curl_multi_init();
    const char *ver = cfg->api == BN_API_DFS ? "x-ms-version: " BN_DFS_VERSION : NULL;
    if (d.w == NULL || d.multi == NULL || add_header(&d.hdr_plain, "Expect:") != 0 ||
        add_header(&d.hdr_plain, ver) != 0 || add_header(&d.hdr_body, "Expect:") != 0 ||
        add_header(&d.hdr_body, "Content-Type: application/octet-stream") != 0 || add_header(&d.hdr_body, ver) != 0)
        goto out;
    curl_multi_setopt(d.multi, CURLMOPT_MAXCONNECTS, (long)cfg->concurrency * 2 + 4);
    for (unsigned i = 0; i < cfg->concurrency; i++) {
        d.w[i].d = &d;
        d.w[i].id = i;
        d.w[i].easy = curl_easy_init();
        d.w[i].md = EVP_MD_CTX_new();
        if (d.w[i].easy == NULL || d.w[i].md == NULL)
            goto out;
    }
    d.t_start = now_ns();
    struct timespec rt;
    clock_gettime(CLOCK_REALTIME, &rt);
    if (d.measured)
        st->start_unix = (double)rt.tv_sec + (double)rt.tv_nsec / 1e9 + cfg->warmup;
    d.t_warm = d.t_start + (d.measured ? (uint64_t)(cfg->warmup * 1e9) : 0);
    d.t_end = d.measured && cfg->duration > 0 ? d.t_warm + (uint64_t)(cfg->duration * 1e9) : 0;
    d.t_last = d.t_start;
    bool show = d.measured && cfg->progress;
    uint64_t next_tick = d.t_start + 1000000000ull;
    for (unsigned i = 0; i < cfg->concurrency; i++)
        launch(&d, &d.w[i]);
    while (d.active > 0) {
        int running = 0;
        if (curl_multi_perform(d.multi, &running) != CURLM_OK)
            goto out;
        CURLMsg *m;
        int left = 0;
        while ((m = curl_multi_info_read(d.multi, &left)) != NULL) {
            if (m->msg != CURLMSG_DONE)
                continue;
            struct wk *k = NULL;
            CURLcode cc = m->data.result;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&k);
            finish(&d, k, cc);
        }
        if (d.active == 0)
            break;
        curl_multi_poll(d.multi, NULL, 0, 100, NULL);
        if (show && now_ns() >= next_tick) {
            progress(&d, label, false);
            next_tick += 1000000000ull;
        }
    }
    if (show)
        progress(&d, label, true);
    if (d.measured) {
        st->elapsed = d.t_last > d.t_warm ? (double)(d.t_last - d.t_warm) / 1e9 : 0.0;
        bn_hist_ts_finish(&st->ts);
    }
    rc = 0;
out:
    if (d.w != NULL) {
        for (unsigned i = 0; i < cfg->concurrency; i++) {
            if (d.w[i].easy != NULL) {
                if (d.multi != NULL)
                    curl_multi_remove_handle(d.multi, d.w[i].easy);
                curl_easy_cleanup(d.w[i].easy);
            }
            EVP_MD_CTX_free(d.w[i].md);
        }
    }
    free(d.w);
    if (d.multi != NULL)
        curl_multi_cleanup(d.multi);
    curl_slist_free_all(d.hdr_plain);
    curl_slist_free_all(d.hdr_body);
    return rc;
}
