/*
 * vrec_cli: the verify command's side of the verify record (vrec_cli.h). Online when the journal's LOCK
 * is held (the daemon runs): POST /admin/verify/begin and /admin/verify/end on its admin port (the
 * address from --admin or admin.listen, as `dualpipe journal` finds it). Offline: the journal's seq from
 * its newest segment (vrec_offline_seq) and the record file written directly (vrec_open, vrec_end).
 */
#include "vrec_cli.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "acli.h"
#include "dbuf.h"
#include "urlcodec.h"

#define VC_ANSWER_MAX (1u << 20)
#define VC_TIMEOUT_S 30L

static int64_t wall_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* 1 the daemon holds the journal (its LOCK is taken), 0 not, -1 no journal directory. */
static int daemon_holds(const char *dir)
{
    char lock[1100];
    if (snprintf(lock, sizeof lock, "%s/LOCK", dir) >= (int)sizeof lock) return -1;
    int fd = open(lock, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) return errno == ENOENT ? 0 : -1;
    int held = 0;
    if (flock(fd, LOCK_SH | LOCK_NB) != 0) held = errno == EWOULDBLOCK;
    else flock(fd, LOCK_UN);
    close(fd);
    return held;
}

#define VC_WHO "dualpipe verify"

/* "http://HOST:PORT" of the admin listener (acli.h). 0 or -1 (printed). */
static int admin_base(const dp_config *c, const char *admin, char *base, size_t cap)
{
    return acli_base(VC_WHO, admin, c, base, cap);
}

/* One admin request; the body in out. The HTTP status, or -1 (no answer: printed). */
static long call(const char *base, bool post, const char *target, dbuf *out)
{
    return acli_call(VC_WHO, base, post ? "POST" : "GET", target, VC_TIMEOUT_S, VC_ANSWER_MAX, out);
}

void vrec_cli_begin(const dp_config *cfg, const char *admin, const char *root, vrec_ticket *t)
{
    memset(t, 0, sizeof *t);
    snprintf(t->root, sizeof t->root, "%s", root);
    t->started_ms = wall_ms();
    int held = daemon_holds(cfg->journal_dir);
    if (held == 1) {
        char base[400];
        if (admin_base(cfg, admin, base, sizeof base) != 0) return;
        dbuf q, out;
        dbuf_init(&q, 8192);
        dbuf_init(&out, VC_ANSWER_MAX);
        long st = -1;
        if (dbuf_adds(&q, "/admin/verify/begin?root=") == 0 && url_encode(root, true, &q) == 0)
            st = call(base, true, q.data, &out);
        json_t *o = st == 200 ? json_loadb(out.data ? out.data : "", out.len, 0, NULL) : NULL;
        const char *tok = json_string_value(json_object_get(o, "token"));
        if (tok && strlen(tok) == VREC_TOKEN_LEN && json_is_integer(json_object_get(o, "seq"))) {
            snprintf(t->token, sizeof t->token, "%s", tok);
            t->seq = (uint64_t)json_integer_value(json_object_get(o, "seq"));
            t->seq_known = t->online = true;
        } else if (st >= 0) {
            fprintf(stderr, "dualpipe verify: the daemon did not note the start of this verify (status %ld): its result "
                            "will not be recorded\n", st);
        }
        json_decref(o);
        dbuf_free(&q);
        dbuf_free(&out);
        return;
    }
    char err[1400];
    if (held < 0 || vrec_offline_seq(cfg->journal_dir, &t->seq, err, sizeof err) != 0) {
        if (held < 0) snprintf(err, sizeof err, "no journal directory at %s", cfg->journal_dir);
        fprintf(stderr, "dualpipe verify: the journal's position cannot be read (%s): this verify's result is recorded "
                        "but cannot count for a cutover to gen2-only\n", err);
        return;
    }
    t->seq_known = true;
}

static void print_cutover(bool ok, const char *why)
{
    if (ok) printf("verify record: allows a cutover to gen2-only\n");
    else printf("verify record: a cutover to gen2-only is refused: %s\n", why);
}

/* "missing:1,extra:2" of by_kind into q. */
static int kinds_query(const json_t *bk, dbuf *q)
{
    const char *k;
    json_t *n;
    bool first = true;
    int rc = dbuf_adds(q, "&kinds=");
    json_object_foreach((json_t *)bk, k, n) {
        if (rc == 0) rc = dbuf_printf(q, "%s%s%%3A%" JSON_INTEGER_FORMAT, first ? "" : "%2C", k, json_integer_value(n));
        first = false;
    }
    return rc;
}

int vrec_cli_end(const dp_config *cfg, const char *admin, const vrec_ticket *t, vrec_result *r)
{
    snprintf(r->root, sizeof r->root, "%s", t->root);
    r->seq_known = t->seq_known;
    r->begin_seq = t->seq;
    r->started_ms = t->started_ms;
    r->ended_ms = wall_ms();
    r->online = t->online;
    int held = daemon_holds(cfg->journal_dir);
    if (t->online || held == 1) {
        /* (begun offline and the daemon started since: it records the offline begin's seq, if read) */
        char base[400];
        if (admin_base(cfg, admin, base, sizeof base) != 0) return -1;
        dbuf q, out;
        dbuf_init(&q, 16384);
        dbuf_init(&out, VC_ANSWER_MAX);
        int rc = 0;
        if (t->online) rc = dbuf_printf(&q, "/admin/verify/end?token=%s", t->token);
        else {
            rc = dbuf_adds(&q, "/admin/verify/end?root=");
            if (rc == 0) rc = url_encode(t->root, true, &q);
            if (rc == 0 && t->seq_known) rc = dbuf_printf(&q, "&begin_seq=%" PRIu64, t->seq);
            if (rc == 0) rc = dbuf_printf(&q, "&started_ms=%" PRId64, t->started_ms);
        }
        if (rc == 0)
            rc = dbuf_printf(&q, "&equal=%d&differences=%" PRIu64 "&size_only=%" PRIu64 "&in_flight=%" PRIu64 "&mode=%s",
                             r->equal, r->differences, r->size_only, r->in_flight, r->mode);
        if (rc == 0 && r->by_kind) rc = kinds_query(r->by_kind, &q);
        long st = rc == 0 ? call(base, true, q.data, &out) : -1;
        json_t *o = st >= 0 ? json_loadb(out.data ? out.data : "", out.len, 0, NULL) : NULL;
        int ret = -1;
        if (st == 200) {
            json_t *c = json_object_get(o, "cutover");
            print_cutover(json_is_true(json_object_get(c, "ok")), json_string_value(json_object_get(c, "why")) ?: "");
            ret = 0;
        } else if (st >= 0) {
            const char *e = json_string_value(json_object_get(o, "error"));
            fprintf(stderr, "dualpipe verify: the daemon did not record this verify (status %ld): %s\n", st, e ? e : "");
        }
        json_decref(o);
        dbuf_free(&q);
        dbuf_free(&out);
        return ret;
    }
    vrec *v = NULL;
    char err[1400];
    if (vrec_open(cfg, cfg->journal_dir, &v, err, sizeof err) != 0 || vrec_end(v, r, err, sizeof err) != 0) {
        fprintf(stderr, "dualpipe verify: cannot record this verify: %s\n", err);
        vrec_free(v);
        return -1;
    }
    char why[1024];
    print_cutover(vrec_cutover_ok(v, why, sizeof why) == 0, why);
    vrec_free(v);
    return 0;
}

static void print_result(const json_t *r)
{
    const char *root = json_string_value(json_object_get(r, "root"));
    printf("  %s: %s, ended %s (began %s, journal seq %s%" JSON_INTEGER_FORMAT "), %s\n", root ? root : "?",
           json_is_true(json_object_get(r, "equal")) ? "EQUAL" : "NOT EQUAL",
           json_string_value(json_object_get(r, "ended")) ?: "?", json_string_value(json_object_get(r, "started")) ?: "?",
           json_is_true(json_object_get(r, "seq_known")) ? "" : "unknown, ",
           json_integer_value(json_object_get(r, "begin_seq")),
           json_is_true(json_object_get(r, "online")) ? "with the daemon" : "offline");
    printf("    differences %" JSON_INTEGER_FORMAT ", in flight %" JSON_INTEGER_FORMAT ", size-only %" JSON_INTEGER_FORMAT
           ", content mode %s\n",
           json_integer_value(json_object_get(r, "differences")), json_integer_value(json_object_get(r, "in_flight")),
           json_integer_value(json_object_get(r, "size_only")), json_string_value(json_object_get(r, "mode")) ?: "?");
}

int vrec_cli_last(const dp_config *cfg, const char *admin, bool json)
{
    dbuf out;
    dbuf_init(&out, VC_ANSWER_MAX);
    int rc = 1;
    int held = daemon_holds(cfg->journal_dir);
    if (held == 1) {
        char base[400];
        long st = admin_base(cfg, admin, base, sizeof base) == 0 ? call(base, false, "/admin/verify", &out) : -1;
        if (st != 200) {
            if (st > 0) fprintf(stderr, "dualpipe verify: the daemon's /admin/verify answered %ld\n", st);
            goto out;
        }
    } else {
        vrec *v = NULL;
        char err[1400];
        if (vrec_open(cfg, cfg->journal_dir, &v, err, sizeof err) != 0 || vrec_json(v, &out) != 0) {
            fprintf(stderr, "dualpipe verify: cannot read the verify record: %s\n", err);
            vrec_free(v);
            goto out;
        }
        vrec_free(v);
    }
    json_t *o = json_loadb(out.data ? out.data : "", out.len, 0, NULL);
    if (!o) {
        fprintf(stderr, "dualpipe verify: the verify record's answer is not JSON\n");
        goto out;
    }
    if (json) {
        fwrite(out.data, 1, out.len, stdout);
    } else {
        const json_t *rs = json_object_get(o, "results");
        const char *dmg = json_string_value(json_object_get(o, "damaged"));
        printf("verify record %s%s\n", json_string_value(json_object_get(o, "file")) ?: "",
               held == 1 ? " (from the running daemon)" : "");
        if (dmg) printf("  damaged: %s\n", dmg);
        if (json_array_size(rs) == 0) printf("  no verify recorded\n");
        size_t i;
        json_t *r;
        json_array_foreach(rs, i, r) print_result(r);
        const json_t *d = json_object_get(o, "dropped_to_gen2");
        printf("  records owed to Gen2 given up (dropped): %" JSON_INTEGER_FORMAT " (highest seq %" JSON_INTEGER_FORMAT ")\n",
               json_integer_value(json_object_get(d, "total")), json_integer_value(json_object_get(d, "max_seq")));
        const json_t *c = json_object_get(o, "cutover");
        print_cutover(json_is_true(json_object_get(c, "ok")), json_string_value(json_object_get(c, "why")) ?: "");
    }
    json_decref(o);
    rc = 0;
out:
    dbuf_free(&out);
    return rc;
}
