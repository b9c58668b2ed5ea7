/*
 * phcli: `dualpipe phase` (phcli.h), a client of the running daemon's /admin/phase endpoints.
 */
#include "phcli.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "acli.h"
#include "cfg.h"
#include "dbuf.h"
#include "urlcodec.h"

#define WHO "dualpipe phase"
#define PHCLI_ANSWER_MAX (4u << 20)
#define PHCLI_POLL_MS 100

enum { PH_OK = 0, PH_FAILED = 1, PH_USAGE = 2 };

static void usage(FILE *o)
{
    fprintf(o,
            "usage: dualpipe phase status --config FILE [--admin HOST:PORT] [--json]\n"
            "       dualpipe phase set PHASE --config FILE [--admin HOST:PORT] [--force] [--json]\n"
            "       dualpipe phase forget MEMBER --yes --config FILE [--admin HOST:PORT]\n"
            "\n"
            "PHASE is gen1-primary, gen2-primary or gen2-only. A switch holds new writes (they wait), drains\n"
            "the journal toward the new primary, switches every proxy of the fleet and releases the writes;\n"
            "if the drain does not end within phase.switch_timeout_ms nothing changes. gen2-only is entered\n"
            "only from gen2-primary and only after a clean `dualpipe verify` of the whole namespace (--force\n"
            "skips that check). `forget` removes a proxy that is gone for good, so switches stop waiting for it.\n"
            "\n"
            "Exit status: 0 switched (or already in PHASE), 1 refused, aborted or failed (the reason is\n"
            "printed), 2 usage error.\n");
}

typedef struct args {
    const char *cmd, *arg, *config, *admin;
    bool json, force, yes;
} args;

static int parse(int argc, char **argv, args *a)
{
    *a = (args){0};
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        bool more = i + 1 < argc;
        if (strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0) {
            usage(stdout);
            exit(PH_OK);
        } else if (strcmp(s, "--config") == 0 && more) a->config = argv[++i];
        else if (strcmp(s, "--admin") == 0 && more) a->admin = argv[++i];
        else if (strcmp(s, "--json") == 0) a->json = true;
        else if (strcmp(s, "--force") == 0) a->force = true;
        else if (strcmp(s, "--yes") == 0) a->yes = true;
        else if (s[0] == '-') {
            fprintf(stderr, WHO ": unknown option %s (or it lacks its value)\n", s);
            return -1;
        } else if (!a->cmd) a->cmd = s;
        else if (!a->arg) a->arg = s;
        else {
            fprintf(stderr, WHO ": unexpected argument %s\n", s);
            return -1;
        }
    }
    if (!a->cmd) {
        fprintf(stderr, WHO ": a command is required: status, set or forget\n");
        return -1;
    }
    bool status = strcmp(a->cmd, "status") == 0, set = strcmp(a->cmd, "set") == 0,
         forget = strcmp(a->cmd, "forget") == 0;
    if (!status && !set && !forget) {
        fprintf(stderr, WHO ": unknown command %s (status, set or forget)\n", a->cmd);
        return -1;
    }
    if (!a->config) {
        fprintf(stderr, WHO ": --config FILE is required\n");
        return -1;
    }
    if (status && a->arg) {
        fprintf(stderr, WHO ": status takes no argument\n");
        return -1;
    }
    if (set && (!a->arg || (strcmp(a->arg, "gen1-primary") && strcmp(a->arg, "gen2-primary") &&
                            strcmp(a->arg, "gen2-only")))) {
        fprintf(stderr, WHO ": set needs a PHASE: gen1-primary, gen2-primary or gen2-only\n");
        return -1;
    }
    if (forget && !a->arg) {
        fprintf(stderr, WHO ": forget needs a MEMBER id (see dualpipe phase status)\n");
        return -1;
    }
    if (forget && !a->yes) {
        fprintf(stderr, WHO ": forget removes a member for good; repeat with --yes\n");
        return -1;
    }
    return 0;
}

/* One call; the parsed answer in *doc (NULL when not JSON). The status, or -1 (printed). */
static long call(const char *base, const char *method, const char *target, json_t **doc)
{
    dbuf out;
    dbuf_init(&out, 4096);
    long st = acli_call(WHO, base, method, target, 60L, PHCLI_ANSWER_MAX, &out);
    *doc = st > 0 && out.data ? json_loadb(out.data, out.len, 0, NULL) : NULL;
    dbuf_free(&out);
    return st;
}

static void print_error(long st, json_t *doc)
{
    const char *e = json_string_value(json_object_get(doc, "error"));
    fprintf(stderr, WHO ": the daemon answered %ld: %s\n", st, e ? e : "(no reason given)");
}

static void print_json(json_t *doc)
{
    char *s = json_dumps(doc, JSON_INDENT(2));
    if (s) printf("%s\n", s);
    free(s);
}

static const char *str(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static void print_status(json_t *doc)
{
    printf("phase      %s (epoch %lld)\n", str(doc, "phase"), (long long)json_integer_value(json_object_get(doc, "epoch")));
    printf("member     %s\n", str(doc, "member"));
    if (json_is_true(json_object_get(doc, "fenced"))) printf("fenced     %s\n", str(doc, "fence_reason"));
    if (json_is_true(json_object_get(doc, "holding"))) printf("holding    new writes wait for a switch\n");
    json_t *rec = json_object_get(doc, "record");
    if (rec) {
        printf("record     %s in %s", str(rec, "state"), str(rec, "phase"));
        if (strcmp(str(rec, "state"), "switching") == 0) printf(" -> %s", str(rec, "to"));
        printf(" (epoch %lld, by %s)\n", (long long)json_integer_value(json_object_get(rec, "epoch")), str(rec, "by"));
        if (str(rec, "reason")[0]) printf("           %s\n", str(rec, "reason"));
    }
    json_t *ms = json_object_get(doc, "members");
    size_t i;
    json_t *m;
    json_array_foreach(ms, i, m)
    {
        printf("member     %-32s %-8s epoch %lld, %lld owed\n", str(m, "id"), str(m, "state"),
               (long long)json_integer_value(json_object_get(m, "epoch")),
               (long long)json_integer_value(json_object_get(m, "pending")));
    }
    if (str(doc, "last_error")[0]) printf("last error %s\n", str(doc, "last_error"));
    json_t *sw = json_object_get(doc, "switch");
    if (json_is_object(sw))
        printf("last switch to %s: %s, %s (writes held %lld ms)\n", str(sw, "to"), str(sw, "state"), str(sw, "reason"),
               (long long)json_integer_value(json_object_get(sw, "pause_ms")));
}

/* POST the switch, then follow GET /admin/phase until it ended. */
static int do_set(const args *a, const char *base)
{
    dbuf t;
    dbuf_init(&t, 128);
    if (dbuf_printf(&t, "/admin/phase/set?to=%s%s", a->arg, a->force ? "&force=1" : "") != 0) {
        dbuf_free(&t);
        fprintf(stderr, WHO ": out of memory\n");
        return PH_FAILED;
    }
    json_t *doc = NULL;
    long st = call(base, "POST", t.data, &doc);
    dbuf_free(&t);
    if (st != 202) {
        if (st > 0) print_error(st, doc);
        json_decref(doc);
        return PH_FAILED;
    }
    json_int_t id = json_integer_value(json_object_get(json_object_get(doc, "switch"), "id"));
    json_decref(doc);
    if (!a->json) fprintf(stderr, WHO ": switching to %s (new writes wait meanwhile)...\n", a->arg);
    for (;;) {
        struct timespec ts = {0, PHCLI_POLL_MS * 1000000L};
        nanosleep(&ts, NULL);
        st = call(base, "GET", "/admin/phase", &doc);
        if (st != 200) {
            if (st > 0) print_error(st, doc);
            json_decref(doc);
            return PH_FAILED;
        }
        json_t *sw = json_object_get(doc, "switch");
        if (json_integer_value(json_object_get(sw, "id")) != id) {
            fprintf(stderr, WHO ": the daemon lost track of the switch (restarted?); see dualpipe phase status\n");
            json_decref(doc);
            return PH_FAILED;
        }
        const char *state = str(sw, "state");
        if (strcmp(state, "running") == 0) {
            json_decref(doc);
            continue;
        }
        int rc = strcmp(state, "done") == 0 || strcmp(state, "noop") == 0 ? PH_OK : PH_FAILED;
        if (a->json) print_json(sw);
        else if (rc == PH_OK)
            printf("%s: %s (writes held %lld ms)\n", state, str(sw, "reason"),
                   (long long)json_integer_value(json_object_get(sw, "pause_ms")));
        else fprintf(stderr, WHO ": %s: %s\n", state, str(sw, "reason"));
        json_decref(doc);
        return rc;
    }
}

int phcli_main(int argc, char **argv)
{
    args a;
    if (parse(argc, argv, &a) != 0) {
        usage(stderr);
        return PH_USAGE;
    }
    dp_config c;
    cfg_err e;
    if (cfg_load_file(a.config, &c, &e) != 0) {
        fprintf(stderr, WHO ": %s: %s%s%s\n", a.config, e.path, e.path[0] ? ": " : "", e.message);
        return PH_FAILED;
    }
    char base[400];
    int rc = acli_base(WHO, a.admin, &c, base, sizeof base);
    cfg_free(&c);
    if (rc != 0) return PH_FAILED;
    if (strcmp(a.cmd, "set") == 0) return do_set(&a, base);
    json_t *doc = NULL;
    long st;
    if (strcmp(a.cmd, "status") == 0) {
        st = call(base, "GET", "/admin/phase", &doc);
    } else {
        dbuf t;
        dbuf_init(&t, 256);
        if (dbuf_adds(&t, "/admin/phase/forget?member=") != 0 || url_encode(a.arg, false, &t) != 0) {
            dbuf_free(&t);
            return PH_FAILED;
        }
        st = call(base, "POST", t.data, &doc);
        dbuf_free(&t);
    }
    if (st != 200) {
        if (st > 0) print_error(st, doc);
        json_decref(doc);
        return PH_FAILED;
    }
    if (a.json || strcmp(a.cmd, "forget") == 0) print_json(doc);
    else print_status(doc);
    json_decref(doc);
    return PH_OK;
}
