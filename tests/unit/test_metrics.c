/*
 * test_metrics: the registry behind the admin port's /metrics. Checks what a Prometheus scraper
 * relies on: one HELP and one TYPE line per family however many series it has, exact values after
 * concurrent updates from several threads, cumulative histogram buckets ending in +Inf with _sum and
 * _count, get-or-create returning the same series, type clashes and malformed names refused, and
 * gauges read through a callback at render time.
 */
#include <pthread.h>
#include <stdint.h>

#include "metrics.h"
#include "tharness.h"

static char *render(metrics *m)
{
    dbuf b;
    dbuf_init(&b, 1 << 20);
    ASSERT_EQ_INT(metrics_render(m, &b), 0);
    return dbuf_take(&b);
}

static int count_occurrences(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle)) n++;
    return n;
}

TEST(counter_renders_help_type_and_value)
{
    metrics *m = metrics_new();
    metrics_counter *c = metrics_counter_get(m, "dp_requests_total", "Requests served.", NULL);
    ASSERT_TRUE(c != NULL);
    metrics_inc(c);
    metrics_add(c, 41);
    char *t = render(m);
    ASSERT_EQ_STR(t, "# HELP dp_requests_total Requests served.\n"
                     "# TYPE dp_requests_total counter\n"
                     "dp_requests_total 42\n");
    free(t);
    metrics_free(m);
}

TEST(labelled_series_share_one_family_header)
{
    metrics *m = metrics_new();
    metrics_counter *a = metrics_counter_get(m, "dp_req_total", "By op.", "op=\"CREATE\",code=\"2xx\"");
    metrics_counter *b = metrics_counter_get(m, "dp_req_total", "By op.", "op=\"OPEN\",code=\"4xx\"");
    ASSERT_TRUE(a && b && a != b);
    /* get-or-create: the same name and labels give the same series */
    ASSERT_TRUE(metrics_counter_get(m, "dp_req_total", "By op.", "op=\"CREATE\",code=\"2xx\"") == a);
    metrics_add(a, 3);
    metrics_inc(b);
    char *t = render(m);
    ASSERT_EQ_INT(count_occurrences(t, "# HELP dp_req_total"), 1);
    ASSERT_EQ_INT(count_occurrences(t, "# TYPE dp_req_total counter"), 1);
    ASSERT_TRUE(strstr(t, "dp_req_total{op=\"CREATE\",code=\"2xx\"} 3\n") != NULL);
    ASSERT_TRUE(strstr(t, "dp_req_total{op=\"OPEN\",code=\"4xx\"} 1\n") != NULL);
    free(t);
    metrics_free(m);
}

TEST(gauge_goes_up_and_down_below_zero)
{
    metrics *m = metrics_new();
    metrics_gauge *g = metrics_gauge_get(m, "dp_conn", "Open connections.", NULL);
    metrics_gauge_add(g, 5);
    metrics_gauge_add(g, -7);
    ASSERT_EQ_INT(metrics_gauge_value(g), -2);
    metrics_gauge_set(g, 9);
    char *t = render(m);
    ASSERT_TRUE(strstr(t, "# TYPE dp_conn gauge\ndp_conn 9\n") != NULL);
    free(t);
    metrics_free(m);
}

TEST(histogram_buckets_are_cumulative)
{
    metrics *m = metrics_new();
    const double bounds[] = {0.01, 0.1, 1};
    metrics_histogram *h = metrics_histogram_get(m, "dp_lat_seconds", "Latency.", "up=\"gen1\"", bounds, 3);
    ASSERT_TRUE(h != NULL);
    metrics_observe(h, 0.005); /* first bucket */
    metrics_observe(h, 0.01);  /* le is inclusive: first bucket */
    metrics_observe(h, 0.5);   /* third */
    metrics_observe(h, 7);     /* +Inf only */
    char *t = render(m);
    ASSERT_TRUE(strstr(t, "# TYPE dp_lat_seconds histogram\n") != NULL);
    ASSERT_TRUE(strstr(t, "dp_lat_seconds_bucket{up=\"gen1\",le=\"0.01\"} 2\n") != NULL);
    ASSERT_TRUE(strstr(t, "dp_lat_seconds_bucket{up=\"gen1\",le=\"0.1\"} 2\n") != NULL);
    ASSERT_TRUE(strstr(t, "dp_lat_seconds_bucket{up=\"gen1\",le=\"1\"} 3\n") != NULL);
    ASSERT_TRUE(strstr(t, "dp_lat_seconds_bucket{up=\"gen1\",le=\"+Inf\"} 4\n") != NULL);
    ASSERT_TRUE(strstr(t, "dp_lat_seconds_sum{up=\"gen1\"} 7.515\n") != NULL);
    ASSERT_TRUE(strstr(t, "dp_lat_seconds_count{up=\"gen1\"} 4\n") != NULL);
    free(t);
    metrics_free(m);
}

TEST(histogram_without_labels_and_bad_bounds)
{
    metrics *m = metrics_new();
    const double bad[] = {1, 1};
    ASSERT_TRUE(metrics_histogram_get(m, "dp_h", "x", NULL, bad, 2) == NULL);
    const double ok[] = {1};
    metrics_histogram *h = metrics_histogram_get(m, "dp_h", "x", NULL, ok, 1);
    metrics_observe(h, 2);
    char *t = render(m);
    ASSERT_TRUE(strstr(t, "dp_h_bucket{le=\"1\"} 0\n") != NULL);
    ASSERT_TRUE(strstr(t, "dp_h_bucket{le=\"+Inf\"} 1\n") != NULL);
    ASSERT_TRUE(strstr(t, "dp_h_count 1\n") != NULL);
    free(t);
    metrics_free(m);
}

TEST(type_clash_and_bad_names_refused)
{
    metrics *m = metrics_new();
    ASSERT_TRUE(metrics_counter_get(m, "dp_x", "x", NULL) != NULL);
    ASSERT_TRUE(metrics_gauge_get(m, "dp_x", "x", NULL) == NULL);
    ASSERT_TRUE(metrics_counter_get(m, "9lives", "x", NULL) == NULL);
    ASSERT_TRUE(metrics_counter_get(m, "dp-y", "x", NULL) == NULL);
    ASSERT_TRUE(metrics_counter_get(m, "", "x", NULL) == NULL);
    ASSERT_TRUE(metrics_counter_get(m, "dp_z", "x", "a=\"1\"}\ninjected 1") == NULL);
    char *t = render(m);
    ASSERT_TRUE(strstr(t, "injected") == NULL);
    ASSERT_TRUE(strstr(t, "dp-y") == NULL);
    free(t);
    metrics_free(m);
}

TEST(help_text_is_escaped)
{
    metrics *m = metrics_new();
    metrics_counter_get(m, "dp_e", "line one\nline \\two", NULL);
    char *t = render(m);
    ASSERT_TRUE(strstr(t, "# HELP dp_e line one\\nline \\\\two\n") != NULL);
    free(t);
    metrics_free(m);
}

static int64_t forty_two(void *ud)
{
    return *(int64_t *)ud;
}

TEST(gauge_fn_is_read_at_render_time)
{
    metrics *m = metrics_new();
    int64_t v = 42;
    ASSERT_EQ_INT(metrics_gauge_fn(m, "dp_pending", "Pending.", NULL, forty_two, &v), 0);
    char *t = render(m);
    ASSERT_TRUE(strstr(t, "dp_pending 42\n") != NULL);
    free(t);
    v = -1;
    t = render(m);
    ASSERT_TRUE(strstr(t, "dp_pending -1\n") != NULL);
    free(t);
    metrics_free(m);
}

struct hammer {
    metrics *m;
    metrics_histogram *h;
};

static void *hammer_main(void *arg)
{
    struct hammer *hm = arg;
    /* Each thread looks the series up itself, racing registration against the others. */
    metrics_counter *c = metrics_counter_get(hm->m, "dp_hits_total", "Hits.", "t=\"all\"");
    metrics_gauge *g = metrics_gauge_get(hm->m, "dp_level", "Level.", NULL);
    for (int i = 0; i < 100000; i++) {
        metrics_inc(c);
        metrics_gauge_add(g, 1);
        metrics_gauge_add(g, -1);
        if (i % 10 == 0) metrics_observe(hm->h, 0.5);
    }
    return NULL;
}

TEST(concurrent_updates_are_exact)
{
    metrics *m = metrics_new();
    const double b[] = {1};
    struct hammer hm = {m, metrics_histogram_get(m, "dp_obs", "Obs.", NULL, b, 1)};
    pthread_t th[4];
    for (int i = 0; i < 4; i++) ASSERT_EQ_INT(pthread_create(&th[i], NULL, hammer_main, &hm), 0);
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    ASSERT_EQ_INT(metrics_counter_value(metrics_counter_get(m, "dp_hits_total", "Hits.", "t=\"all\"")), 400000);
    ASSERT_EQ_INT(metrics_gauge_value(metrics_gauge_get(m, "dp_level", "Level.", NULL)), 0);
    char *t = render(m);
    ASSERT_EQ_INT(count_occurrences(t, "# TYPE dp_hits_total"), 1);
    ASSERT_TRUE(strstr(t, "dp_obs_count 40000\n") != NULL);
    ASSERT_TRUE(strstr(t, "dp_obs_sum 20000\n") != NULL);
    free(t);
    metrics_free(m);
}

TESTS(T(counter_renders_help_type_and_value), T(labelled_series_share_one_family_header),
      T(gauge_goes_up_and_down_below_zero), T(histogram_buckets_are_cumulative),
      T(histogram_without_labels_and_bad_bounds), T(type_clash_and_bad_names_refused), T(help_text_is_escaped),
      T(gauge_fn_is_read_at_render_time), T(concurrent_updates_are_exact))
