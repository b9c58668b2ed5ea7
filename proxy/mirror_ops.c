/*
 * mirror_ops: replaying one journal record onto Gen1 (see mirror.h for the rules). Each op is sent with
 * the writer's parameters (minus the proxy's own, syncFlag and the writer's lease), and every send that
 * may have landed before is preceded by a look at Gen1 that decides whether it did.
 */
#include "mirror_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <jansson.h>

#include "urlcodec.h"

/* ================================================================ queries */

int mr_q_add(dbuf *q, const char *name, const char *value)
{
    int rc = q->len ? dbuf_add(q, "&", 1) : 0;
    if (rc == 0) rc = url_encode(name, false, q);
    if (rc == 0 && value) rc = dbuf_add(q, "=", 1);
    if (rc == 0 && value) rc = url_encode(value, false, q);
    return rc;
}

/* Parameters of the record that do not go to Gen1 (besides "op" and those named in skip). */
static bool dropped(const char *name, const char *const *skip)
{
    /* the writer's identity pieces go on every request (mr_g1_try) */
    if (strcmp(name, "user.name") == 0 || strcmp(name, "doas") == 0 || strcmp(name, "delegation") == 0) return true;
    if (strncmp(name, "dualpipe.", 9) == 0 || strcmp(name, "op") == 0 || strcmp(name, "syncflag") == 0 ||
        strcmp(name, "leaseid") == 0 || strcmp(name, "filesessionid") == 0)
        return true;
    for (int i = 0; skip && skip[i]; i++)
        if (strcmp(name, skip[i]) == 0) return true;
    return false;
}

/* "op=OP" and the record's parameters (but skip), into q. 0 or -1. */
static int record_query(const mop *op, const char *opname, const char *const *skip, dbuf *q)
{
    int rc = mr_q_add(q, "op", opname);
    const apply_req *r = op->req;
    for (int i = 0; rc == 0 && i < r->nparams; i++)
        if (r->params[i].name && !dropped(r->params[i].name, skip))
            rc = mr_q_add(q, r->params[i].name, r->params[i].value ? r->params[i].value : "");
    return rc;
}

static bool ok2xx(const httpc_resp *r) { return r->result == HTTPC_OK && r->status >= 200 && r->status < 300; }

/* Fail op with what r was, on step. Returns 1 (failed). */
static int fail_resp(mop *op, const httpc_resp *r, const char *step)
{
    char what[300];
    mr_resp_what(MR_G1, r, what, sizeof what);
    mr_why(op, "%s on %s", what, step);
    return 1;
}

/* ================================================================ look-ups */

int mr_g1_stat(mop *op, const char *path, mr_stat *st)
{
    memset(st, 0, sizeof *st);
    mr_g1req q = {.method = "GET", .path = path, .query = "op=GETFILESTATUS"};
    httpc_resp *r = mr_g1_retry(op, &q);
    if (!r) return -1;
    if (r->result == HTTPC_OK && r->status == 404) {
        mr_resp_free(r);
        return 0;
    }
    if (!ok2xx(r)) {
        fail_resp(op, r, "GETFILESTATUS");
        mr_resp_free(r);
        return -2;
    }
    json_t *j = json_loadb(r->body.data, r->body.len, 0, NULL);
    json_t *fs = json_object_get(j, "FileStatus");
    int rc = json_is_object(fs) ? 1 : -2;
    if (rc == 1) {
        const char *type = json_string_value(json_object_get(fs, "type"));
        st->is_dir = type && strcmp(type, "DIRECTORY") == 0;
        json_t *len = json_object_get(fs, "length"), *mt = json_object_get(fs, "modificationTime");
        st->length = json_is_integer(len) ? (uint64_t)json_integer_value(len) : 0;
        st->mtime_ms = json_is_integer(mt) ? (int64_t)json_integer_value(mt) : -1;
        const char *ow = json_string_value(json_object_get(fs, "owner"));
        const char *gr = json_string_value(json_object_get(fs, "group"));
        snprintf(st->owner, sizeof st->owner, "%s", ow ? ow : "");
        snprintf(st->group, sizeof st->group, "%s", gr ? gr : "");
    } else {
        mr_why(op, "Gen1 GETFILESTATUS of %.200s: not a FileStatus answer", path);
    }
    json_decref(j);
    mr_resp_free(r);
    return rc;
}

/* Gen1's bytes of path equal len bytes of [fd, foff..]: 1 yes, 0 no, -1 stopped, -2 failed. */
static int same_bytes(mop *op, const char *path, int fd, uint64_t foff, uint64_t len)
{
    mr_g1req q = {.method = "GET", .path = path, .query = "op=OPEN", .out_max = (size_t)len + 1};
    httpc_resp *r = mr_g1_retry(op, &q);
    if (!r) return -1;
    if (!ok2xx(r)) {
        int rc = r->result == HTTPC_OK && r->status == 404 ? 0 : -2;
        if (rc == -2) fail_resp(op, r, "OPEN (checking a replayed CREATE)");
        mr_resp_free(r);
        return rc;
    }
    int rc = r->body.len == len ? 1 : 0;
    char buf[65536];
    for (uint64_t at = 0; rc == 1 && at < len;) {
        size_t want = len - at > sizeof buf ? sizeof buf : (size_t)(len - at);
        ssize_t n = pread(fd, buf, want, (off_t)(foff + at));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            mr_why(op, "cannot read the body from the spool: %s", n < 0 ? strerror(errno) : "short read");
            rc = -2;
            break;
        }
        if (memcmp(buf, r->body.data + at, (size_t)n) != 0) rc = 0;
        at += (uint64_t)n;
    }
    mr_resp_free(r);
    return rc;
}

/* ================================================================ ownership and times */

/* After a CREATE/MKDIRS by the proxy's identity: the owner and group the primary gave, and (CREATE)
 * its modification time. Differences Gen1 refuses to settle become a note. -1 when stopped. */
static int fix_owner_times(mop *op)
{
    const apply_req *q = op->req;
    const char *owner = mr_param(q, MIRROR_PARAM_OWNER), *group = mr_param(q, MIRROR_PARAM_GROUP);
    if ((owner && *owner) || (group && *group)) {
        idm_map *map = mr_ids_get(op->m);
        owner = mr_name_back(map, IDM_USER, owner);
        group = mr_name_back(map, IDM_GROUP, group);
        dbuf qs;
        dbuf_init(&qs, 4096);
        int rc = mr_q_add(&qs, "op", "SETOWNER");
        if (rc == 0 && owner && *owner) rc = mr_q_add(&qs, "owner", owner);
        if (rc == 0 && group && *group) rc = mr_q_add(&qs, "group", group);
        if (rc != 0) {
            dbuf_free(&qs);
            mr_note(op, "owner not set on Gen1: out of memory");
        } else {
            mr_g1req g = {.method = "PUT", .path = q->path, .query = qs.data};
            httpc_resp *r = mr_g1_retry(op, &g);
            dbuf_free(&qs);
            if (!r) {
                idm_unref(map);
                return -1;
            }
            if (!ok2xx(r)) {
                char what[200];
                mr_resp_what(MR_G1, r, what, sizeof what);
                mr_note(op, "owner differs: the primary has %s:%s, Gen1 keeps its creator's (SETOWNER: %s)",
                        owner ? owner : "", group ? group : "", what);
            }
            mr_resp_free(r);
        }
        idm_unref(map);
    }
    uint64_t mt;
    if (q->op == WH_OP_CREATE && mr_param_u64(q, MIRROR_PARAM_MTIME, &mt)) {
        char qs[96];
        snprintf(qs, sizeof qs, "op=SETTIMES&modificationtime=%" PRIu64 "&accesstime=-1", mt);
        mr_g1req g = {.method = "PUT", .path = q->path, .query = qs};
        httpc_resp *r = mr_g1_retry(op, &g);
        if (!r) return -1;
        if (!ok2xx(r)) {
            char what[200];
            mr_resp_what(MR_G1, r, what, sizeof what);
            mr_note(op, "modification time not set on Gen1 (SETTIMES: %s)", what);
        }
        mr_resp_free(r);
    }
    return 0;
}

/* ================================================================ CREATE */

/* Whether the CREATE already landed: 1 yes, 0 no, -1 stopped, -2 failed. */
static int create_landed(mop *op)
{
    const apply_req *q = op->req;
    uint64_t len = q->body ? q->body->len : 0, mt;
    mr_stat st;
    int s = mr_g1_stat(op, q->path, &st);
    if (s <= 0) return s;
    if (st.is_dir || st.length != len) return 0;
    /* the primary's time, set right after the CREATE (a crash in between leaves Gen1's own: the bytes decide) */
    if (mr_param_u64(q, MIRROR_PARAM_MTIME, &mt) && st.mtime_ms == (int64_t)mt) return 1;
    if (len == 0) return 1;
    if (len > MIRROR_VERIFY_MAX) return 0;
    return same_bytes(op, q->path, q->body->fd, q->body->off, len);
}

static int op_create(mop *op)
{
    const apply_req *q = op->req;
    dbuf qs;
    dbuf_init(&qs, 1 << 16);
    if (record_query(op, "CREATE", NULL, &qs) != 0) {
        dbuf_free(&qs);
        mr_why(op, "out of memory");
        return 1;
    }
    bool maybe = q->maybe_sent;
    int rc = 1;
    for (;;) {
        if (maybe) {
            int l = create_landed(op);
            if (l < 0) {
                rc = l == -1 ? -1 : 1;
                break;
            }
            if (l == 1) {
                mr_why(op, "already on Gen1 (a replay)");
                rc = 0;
                break;
            }
        }
        mr_g1req g = {.method = "PUT", .path = q->path, .query = qs.data, .write = true};
        if (q->body && q->body->len) {
            g.fd = q->body->fd;
            g.off = q->body->off;
            g.len = q->body->len;
        }
        bool tr = false;
        httpc_resp *r = mr_g1_try(op, &g, &tr);
        if (!r) {
            rc = -1;
            break;
        }
        if (tr) {
            maybe = maybe || r->sent;
            bool go = mr_backoff(op, MR_G1, r);
            mr_resp_free(r);
            if (!go) {
                rc = -1;
                break;
            }
            continue;
        }
        if (ok2xx(r)) {
            mr_resp_free(r);
            rc = 0;
            break;
        }
        char ex[128];
        mr_g1_exception(r, ex, sizeof ex);
        if (strcmp(ex, "FileAlreadyExistsException") == 0) {
            int l = create_landed(op);
            if (l == 1) {
                mr_why(op, "already on Gen1 (a replay)");
                rc = 0;
            } else if (l == -1) {
                rc = -1;
            } else if (l == 0) {
                fail_resp(op, r, "CREATE (Gen1 holds another file there)");
            }
            mr_resp_free(r);
            break;
        }
        fail_resp(op, r, "CREATE");
        mr_resp_free(r);
        break;
    }
    dbuf_free(&qs);
    if (rc == 0 && fix_owner_times(op) < 0) return -1;
    return rc;
}

/* ================================================================ APPEND, CONCURRENTAPPEND */

int mr_write_at(mop *op, const char *path, uint64_t at, const void *mem, int fd, uint64_t foff, uint64_t len,
                bool concurrent, bool maybe)
{
    mirror *m = op->m;
    /* Without an offset check of Gen1's own (hadoop, CONCURRENTAPPEND) the length is looked at first. */
    bool check_first = maybe || m->o.hadoop || concurrent;
    char offs[32];
    snprintf(offs, sizeof offs, "%" PRIu64, at);
    dbuf qs;
    dbuf_init(&qs, 1 << 16);
    const char *const skip[] = {"offset", NULL};
    int qr = mem ? mr_q_add(&qs, "op", concurrent ? "CONCURRENTAPPEND" : "APPEND")
                 : record_query(op, concurrent ? "CONCURRENTAPPEND" : "APPEND", skip, &qs);
    if (qr == 0 && !concurrent && !m->o.hadoop) qr = mr_q_add(&qs, "offset", offs);
    if (qr != 0) {
        dbuf_free(&qs);
        mr_why(op, "out of memory");
        return 1;
    }
    int rc = 1;
    for (;;) {
        if (check_first) {
            mr_stat st;
            int s = mr_g1_stat(op, path, &st);
            if (s == -1 || s == -2) {
                rc = s == -1 ? -1 : 1;
                break;
            }
            if (s == 0 || st.is_dir) {
                mr_why(op, "Gen1 has no file at %.300s to append to", path);
                break;
            }
            if (st.length == at + len) {
                rc = 0;
                if (maybe && len) mr_why(op, "already on Gen1 (a replay)");
                break;
            }
            if (st.length != at) {
                mr_why(op, "Gen1 holds %" PRIu64 " bytes of %.300s, the write expects %" PRIu64, st.length, path,
                       at);
                break;
            }
        }
        mr_g1req g = {.method = "POST", .prefix = concurrent ? WH_PREFIX_EXT : WH_PREFIX_WEBHDFS, .path = path,
                      .query = qs.data, .mem = mem, .fd = fd, .off = foff, .len = len, .write = true};
        bool tr = false;
        httpc_resp *r = mr_g1_try(op, &g, &tr);
        if (!r) {
            rc = -1;
            break;
        }
        if (tr) {
            maybe = maybe || r->sent;
            check_first = true;
            bool go = mr_backoff(op, MR_G1, r);
            mr_resp_free(r);
            if (!go) {
                rc = -1;
                break;
            }
            continue;
        }
        if (ok2xx(r)) {
            mr_resp_free(r);
            rc = 0;
            break;
        }
        char ex[128];
        mr_g1_exception(r, ex, sizeof ex);
        if (strcmp(ex, "BadOffsetException") == 0 && !check_first) {
            /* adls refused the offset: decide from the length (a landing before, or Gen1 differs) */
            mr_resp_free(r);
            check_first = true;
            maybe = true;
            continue;
        }
        fail_resp(op, r, concurrent ? "CONCURRENTAPPEND" : "APPEND");
        mr_resp_free(r);
        break;
    }
    dbuf_free(&qs);
    return rc;
}

static int op_append(mop *op)
{
    const apply_req *q = op->req;
    bool concurrent = q->op == WH_OP_CONCURRENTAPPEND;
    uint64_t at, len = q->body ? q->body->len : 0;
    int fd = q->body ? q->body->fd : -1;
    uint64_t foff = q->body ? q->body->off : 0;
    if (mr_param_u64(q, MIRROR_PARAM_OFFSET, &at) || (!concurrent && mr_param_u64(q, "offset", &at)))
        return mr_write_at(op, q->path, at, NULL, fd, foff, len, concurrent, q->maybe_sent);
    /* No offset: sent once; what may have landed cannot be decided (resync). */
    if (q->maybe_sent) {
        mr_why(op, "%s without an offset may already be on Gen1", concurrent ? "CONCURRENTAPPEND" : "APPEND");
        return 1;
    }
    dbuf qs;
    dbuf_init(&qs, 1 << 16);
    if (record_query(op, concurrent ? "CONCURRENTAPPEND" : "APPEND", NULL, &qs) != 0) {
        dbuf_free(&qs);
        mr_why(op, "out of memory");
        return 1;
    }
    int rc;
    for (;;) {
        mr_g1req g = {.method = "POST", .prefix = concurrent ? WH_PREFIX_EXT : WH_PREFIX_WEBHDFS, .path = q->path,
                      .query = qs.data, .fd = fd, .off = foff, .len = len, .write = true};
        bool tr = false;
        httpc_resp *r = mr_g1_try(op, &g, &tr);
        if (!r) {
            rc = -1;
            break;
        }
        if (tr && !r->sent) {
            bool go = mr_backoff(op, MR_G1, r);
            mr_resp_free(r);
            if (!go) {
                rc = -1;
                break;
            }
            continue;
        }
        if (tr) {
            char what[200];
            mr_resp_what(MR_G1, r, what, sizeof what);
            mr_why(op, "%s without an offset may have reached Gen1 (%s)", concurrent ? "CONCURRENTAPPEND" : "APPEND",
                   what);
            rc = 1;
        } else {
            rc = ok2xx(r) ? 0 : fail_resp(op, r, concurrent ? "CONCURRENTAPPEND" : "APPEND");
        }
        mr_resp_free(r);
        break;
    }
    dbuf_free(&qs);
    return rc;
}

/* ================================================================ RENAME, CONCAT */

/* RENAME landed: source gone, destination present. 1, 0, -1 stopped, -2 failed. */
static int rename_landed(mop *op)
{
    mr_stat st;
    int s = mr_g1_stat(op, op->req->path, &st);
    if (s != 0) return s == 1 ? 0 : s;
    s = mr_g1_stat(op, op->dst, &st);
    return s;
}

/* CONCAT landed: every source gone, target present. */
static int concat_landed(mop *op)
{
    mr_stat st;
    for (int i = 0; i < op->srcs.n; i++) {
        int s = mr_g1_stat(op, op->srcs.v[i], &st);
        if (s != 0) return s == 1 ? 0 : s;
    }
    return mr_g1_stat(op, op->req->path, &st);
}

/* A namespace op that may land only once: check first when it may have landed, send, decide a
 * refusal (or {"boolean":false}) by landed(). */
static int op_once(mop *op, int (*landed)(mop *op))
{
    const apply_req *q = op->req;
    const whreq_opinfo *info = whreq_opinfo_get(q->op);
    const char *method = info->method, *opname = info->name;
    dbuf qs;
    dbuf_init(&qs, 1 << 16);
    if (record_query(op, opname, NULL, &qs) != 0) {
        dbuf_free(&qs);
        mr_why(op, "out of memory");
        return 1;
    }
    bool maybe = q->maybe_sent;
    int rc = 1;
    for (;;) {
        if (maybe) {
            int l = landed(op);
            if (l == -1 || l == -2) {
                rc = l == -1 ? -1 : 1;
                break;
            }
            if (l == 1) {
                mr_why(op, "already on Gen1 (a replay)");
                rc = 0;
                break;
            }
        }
        mr_g1req g = {.method = method, .prefix = info->prefix, .path = q->path, .query = qs.data, .write = true};
        if (q->op == WH_OP_MSCONCAT && op->concat_body) {
            g.mem = op->concat_body;
            g.len = op->concat_len;
            g.ctype = "application/json";
        }
        bool tr = false;
        httpc_resp *r = mr_g1_try(op, &g, &tr);
        if (!r) {
            rc = -1;
            break;
        }
        if (tr) {
            maybe = maybe || r->sent;
            bool go = mr_backoff(op, MR_G1, r);
            mr_resp_free(r);
            if (!go) {
                rc = -1;
                break;
            }
            continue;
        }
        bool refused = !ok2xx(r) || xlate_gen1_false(r->body.data);
        if (!refused) {
            mr_resp_free(r);
            rc = 0;
            break;
        }
        if (ok2xx(r) && q->gen1_body && xlate_gen1_false(q->gen1_body)) {
            mr_why(op, "{\"boolean\":false} on both sides");
            mr_resp_free(r);
            rc = 0;
            break;
        }
        int l = landed(op);
        if (l == 1) {
            mr_why(op, "already on Gen1 (a replay)");
            rc = 0;
        } else if (l == -1) {
            rc = -1;
        } else if (l == 0) {
            if (ok2xx(r)) mr_why(op, "Gen1 answered {\"boolean\":false} to %s", opname);
            else fail_resp(op, r, opname);
        }
        mr_resp_free(r);
        break;
    }
    dbuf_free(&qs);
    return rc;
}

/* ================================================================ the rest: same result however often */

static int op_idempotent(mop *op)
{
    const apply_req *q = op->req;
    const whreq_opinfo *info = whreq_opinfo_get(q->op);
    dbuf qs;
    dbuf_init(&qs, 1 << 16);
    if (!info || record_query(op, info->name, NULL, &qs) != 0) {
        dbuf_free(&qs);
        mr_why(op, "out of memory");
        return 1;
    }
    mr_g1req g = {.method = info->method, .prefix = info->prefix, .path = q->path, .query = qs.data};
    httpc_resp *r = mr_g1_retry(op, &g);
    dbuf_free(&qs);
    if (!r) return -1;
    int rc = 0;
    if (!ok2xx(r)) {
        rc = fail_resp(op, r, info->name);
    } else if (q->op == WH_OP_MKDIRS && xlate_gen1_false(r->body.data)) {
        mr_why(op, "Gen1 answered {\"boolean\":false} to MKDIRS");
        rc = 1;
    } else if (q->op == WH_OP_DELETE && xlate_gen1_false(r->body.data)) {
        mr_why(op, "nothing to delete on Gen1");
    }
    mr_resp_free(r);
    if (rc == 0 && q->op == WH_OP_MKDIRS && fix_owner_times(op) < 0) return -1;
    return rc;
}

int mr_apply(mop *op)
{
    switch (op->req->op) {
    case WH_OP_CREATE: return op_create(op);
    case WH_OP_APPEND:
    case WH_OP_CONCURRENTAPPEND: return op_append(op);
    case WH_OP_RENAME: return op_once(op, rename_landed);
    case WH_OP_CONCAT:
    case WH_OP_MSCONCAT: return op_once(op, concat_landed);
    case WH_OP_MKDIRS:
    case WH_OP_DELETE:
    case WH_OP_SETPERMISSION:
    case WH_OP_SETOWNER:
    case WH_OP_SETACL:
    case WH_OP_MODIFYACLENTRIES:
    case WH_OP_REMOVEACLENTRIES:
    case WH_OP_REMOVEACL:
    case WH_OP_REMOVEDEFAULTACL:
    case WH_OP_SETTIMES:
    case WH_OP_SETEXPIRY: return op_idempotent(op);
    default: mr_why(op, "%s is not a write the mirror replays", mr_op_name(op->req->op)); return 1;
    }
}
