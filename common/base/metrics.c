/*
 * metrics: the registry behind /metrics (see metrics.h). Families are kept in a list in creation
 * order, each with its series in creation order, so the rendered text is stable from one scrape to
 * the next. A mutex guards the lists (registration and rendering only); values are atomics updated
 * without it. A histogram's sum is a double kept as its bit pattern in an atomic 64-bit word and
 * updated with a compare-and-swap loop, which is portable C17 and cheap at our observation rates.
 */
#include "metrics.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

typedef enum mtype { MT_COUNTER = 0, MT_GAUGE, MT_GAUGE_FN, MT_HISTOGRAM } mtype;

typedef struct mseries {
    struct mseries *next;
    char *labels;                 /* "" when none */
    union {
        metrics_counter counter;
        metrics_gauge gauge;
        metrics_histogram hist;
        struct {
            int64_t (*fn)(void *);
            void *ud;
        } fn;
    } u;
} mseries;

typedef struct mfamily {
    struct mfamily *next;
    char *name;
    char *help;
    mtype type;                   /* MT_GAUGE_FN families render as "gauge" */
    mseries *first, *last;
} mfamily;

struct metrics {
    pthread_mutex_t mu;
    mfamily *first, *last;
};

metrics *metrics_new(void)
{
    metrics *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    pthread_mutex_init(&m->mu, NULL);
    return m;
}

void metrics_free(metrics *m)
{
    if (!m) return;
    mfamily *f = m->first;
    while (f) {
        mfamily *fn = f->next;
        mseries *s = f->first;
        while (s) {
            mseries *sn = s->next;
            free(s->labels);
            free(s);
            s = sn;
        }
        free(f->name);
        free(f->help);
        free(f);
        f = fn;
    }
    pthread_mutex_destroy(&m->mu);
    free(m);
}

static bool valid_name(const char *name)
{
    if (!name || !*name) return false;
    for (const char *p = name; *p; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
                  (p != name && c >= '0' && c <= '9');
        if (!ok) return false;
    }
    return true;
}

static bool valid_labels(const char *labels)
{
    return strpbrk(labels, "\n\r{}") == NULL;
}

/* Find or create family name of type t and series labels in it; NULL on a type clash, bad input or
 * ENOMEM. *created tells whether the series is new (so the caller initialises it). Lock held. */
static mseries *find_or_add(metrics *m, const char *name, const char *help, const char *labels, mtype t,
                            bool *created)
{
    *created = false;
    if (!labels) labels = "";
    if (!valid_name(name) || !valid_labels(labels)) return NULL;
    mfamily *f = m->first;
    while (f && strcmp(f->name, name) != 0) f = f->next;
    if (f) {
        if (f->type != t) return NULL;
        for (mseries *s = f->first; s; s = s->next)
            if (strcmp(s->labels, labels) == 0) return s;
    }
    mseries *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->labels = strdup(labels);
    if (!s->labels) {
        free(s);
        return NULL;
    }
    if (!f) {
        f = calloc(1, sizeof *f);
        if (f) {
            f->name = strdup(name);
            f->help = strdup(help ? help : "");
        }
        if (!f || !f->name || !f->help) {
            if (f) {
                free(f->name);
                free(f->help);
                free(f);
            }
            free(s->labels);
            free(s);
            return NULL;
        }
        f->type = t;
        if (m->last) m->last->next = f;
        else m->first = f;
        m->last = f;
    }
    if (f->last) f->last->next = s;
    else f->first = s;
    f->last = s;
    *created = true;
    return s;
}

metrics_counter *metrics_counter_get(metrics *m, const char *name, const char *help, const char *labels)
{
    bool created;
    pthread_mutex_lock(&m->mu);
    mseries *s = find_or_add(m, name, help, labels, MT_COUNTER, &created);
    if (s && created) atomic_init(&s->u.counter.v, 0);
    pthread_mutex_unlock(&m->mu);
    return s ? &s->u.counter : NULL;
}

metrics_gauge *metrics_gauge_get(metrics *m, const char *name, const char *help, const char *labels)
{
    bool created;
    pthread_mutex_lock(&m->mu);
    mseries *s = find_or_add(m, name, help, labels, MT_GAUGE, &created);
    if (s && created) atomic_init(&s->u.gauge.v, 0);
    pthread_mutex_unlock(&m->mu);
    return s ? &s->u.gauge : NULL;
}

metrics_histogram *metrics_histogram_get(metrics *m, const char *name, const char *help, const char *labels,
                                         const double *bounds, int nbounds)
{
    if (nbounds < 1 || nbounds > METRICS_MAX_BUCKETS || !bounds) return NULL;
    for (int i = 1; i < nbounds; i++)
        if (!(bounds[i] > bounds[i - 1])) return NULL;
    bool created;
    pthread_mutex_lock(&m->mu);
    mseries *s = find_or_add(m, name, help, labels, MT_HISTOGRAM, &created);
    if (s && created) {
        metrics_histogram *h = &s->u.hist;
        h->nbounds = nbounds;
        for (int i = 0; i < nbounds; i++) h->bounds[i] = bounds[i];
        for (int i = 0; i <= nbounds; i++) atomic_init(&h->buckets[i], 0);
        double zero = 0.0;
        uint64_t bits;
        memcpy(&bits, &zero, sizeof bits);
        atomic_init(&h->sum_bits, bits);
        atomic_init(&h->count, 0);
    }
    pthread_mutex_unlock(&m->mu);
    return s ? &s->u.hist : NULL;
}

int metrics_gauge_fn(metrics *m, const char *name, const char *help, const char *labels, int64_t (*fn)(void *ud),
                     void *ud)
{
    if (!fn) return -1;
    bool created;
    pthread_mutex_lock(&m->mu);
    mseries *s = find_or_add(m, name, help, labels, MT_GAUGE_FN, &created);
    if (s) {
        s->u.fn.fn = fn;
        s->u.fn.ud = ud;
    }
    pthread_mutex_unlock(&m->mu);
    return s ? 0 : -1;
}

void metrics_observe(metrics_histogram *h, double v)
{
    if (!h) return;
    int i = 0;
    while (i < h->nbounds && v > h->bounds[i]) i++;
    atomic_fetch_add_explicit(&h->buckets[i], 1, memory_order_relaxed);
    uint64_t old = atomic_load_explicit(&h->sum_bits, memory_order_relaxed), nbits;
    do {
        double sum;
        memcpy(&sum, &old, sizeof sum);
        sum += v;
        memcpy(&nbits, &sum, sizeof nbits);
    } while (!atomic_compare_exchange_weak_explicit(&h->sum_bits, &old, nbits, memory_order_relaxed,
                                                    memory_order_relaxed));
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
}

/* "# HELP" text escapes backslash and newline (exposition format 0.0.4). */
static int render_help(dbuf *out, const mfamily *f)
{
    int rc = dbuf_printf(out, "# HELP %s ", f->name);
    for (const char *p = f->help; rc == 0 && *p; p++) {
        if (*p == '\\') rc = dbuf_adds(out, "\\\\");
        else if (*p == '\n') rc = dbuf_adds(out, "\\n");
        else rc = dbuf_add(out, p, 1);
    }
    if (rc == 0) rc = dbuf_adds(out, "\n");
    return rc;
}

static const char *type_name(mtype t)
{
    switch (t) {
    case MT_COUNTER: return "counter";
    case MT_HISTOGRAM: return "histogram";
    case MT_GAUGE:
    case MT_GAUGE_FN: break;
    }
    return "gauge";
}

/* name{labels} or plain name when there are none. */
static int render_name(dbuf *out, const char *name, const char *suffix, const char *labels)
{
    if (*labels) return dbuf_printf(out, "%s%s{%s}", name, suffix, labels);
    return dbuf_printf(out, "%s%s", name, suffix);
}

static int render_hist(dbuf *out, const mfamily *f, const mseries *s)
{
    const metrics_histogram *h = &s->u.hist;
    const char *sep = *s->labels ? "," : "";
    uint64_t cum = 0;
    int rc = 0;
    for (int i = 0; rc == 0 && i <= h->nbounds; i++) {
        cum += atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
        if (i < h->nbounds)
            rc = dbuf_printf(out, "%s_bucket{%s%sle=\"%g\"} %" PRIu64 "\n", f->name, s->labels, sep, h->bounds[i],
                             cum);
        else
            rc = dbuf_printf(out, "%s_bucket{%s%sle=\"+Inf\"} %" PRIu64 "\n", f->name, s->labels, sep, cum);
    }
    uint64_t bits = atomic_load_explicit(&h->sum_bits, memory_order_relaxed);
    double sum;
    memcpy(&sum, &bits, sizeof sum);
    if (rc == 0) rc = render_name(out, f->name, "_sum", s->labels);
    if (rc == 0) rc = dbuf_printf(out, " %.9g\n", sum);
    if (rc == 0) rc = render_name(out, f->name, "_count", s->labels);
    /* The count is the bucket total read above, so _count always equals the +Inf bucket. */
    if (rc == 0) rc = dbuf_printf(out, " %" PRIu64 "\n", cum);
    return rc;
}

int metrics_render(metrics *m, dbuf *out)
{
    int rc = 0;
    pthread_mutex_lock(&m->mu);
    for (const mfamily *f = m->first; rc == 0 && f; f = f->next) {
        rc = render_help(out, f);
        if (rc == 0) rc = dbuf_printf(out, "# TYPE %s %s\n", f->name, type_name(f->type));
        for (const mseries *s = f->first; rc == 0 && s; s = s->next) {
            switch (f->type) {
            case MT_COUNTER:
                rc = render_name(out, f->name, "", s->labels);
                if (rc == 0) rc = dbuf_printf(out, " %" PRIu64 "\n", metrics_counter_value(&s->u.counter));
                break;
            case MT_GAUGE:
                rc = render_name(out, f->name, "", s->labels);
                if (rc == 0) rc = dbuf_printf(out, " %" PRId64 "\n", metrics_gauge_value(&s->u.gauge));
                break;
            case MT_GAUGE_FN:
                rc = render_name(out, f->name, "", s->labels);
                if (rc == 0) rc = dbuf_printf(out, " %" PRId64 "\n", s->u.fn.fn(s->u.fn.ud));
                break;
            case MT_HISTOGRAM:
                rc = render_hist(out, f, s);
                break;
            }
        }
    }
    pthread_mutex_unlock(&m->mu);
    return rc;
}
