/*
 * mirror_resync: making Gen1 equal to Gen2 for an operation's paths (see mirror.h, "Resync"). Per root:
 * ask the gate, copy the subtree Gen2 → Gen1 depth first, ask the gate again (copy again when a record
 * touched the root meanwhile), remember the cover. A copy that fails is tried again after a backoff, up
 * to resync_attempts times in all; then the operation is parked.
 *
 * A node's copy: Gen2's getProperties (type, length, owner, group, permissions, x-ms-properties) and
 * getAccessControl (x-ms-acl), Gen1's GETFILESTATUS; a node of the other type on Gen1 is deleted first.
 * A file's bytes are read from Gen2 in ranged parts and written to Gen1 in place (CREATE overwrite with
 * the first part, APPENDs at their offsets). A directory is created (MKDIRS), Gen1's children Gen2 does
 * not list are deleted, and Gen2's children are copied. Then the metadata: an extended ACL as Gen2 has
 * it (SETACL) or none (REMOVEACL), the permission, owner and group (Gen2's names as they are; an owner
 * Gen1 refuses to set is a divergence noted in the detail, not a failure), and Gen1's times from the
 * `dualpipe_times` property when it belongs to the file's current length.
 */
#include "mirror_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "log.h"
#include "urlcodec.h"

typedef struct rs_sum {
    unsigned files, dirs, deleted;
    unsigned kept;                  /* Gen1 children no mapping covers (or names Gen2 cannot hold): left */
} rs_sum;

static bool ok2xx(const httpc_resp *r) { return r->result == HTTPC_OK && r->status >= 200 && r->status < 300; }

static int fail_resp(mop *op, int side, const httpc_resp *r, const char *step, const char *path)
{
    char what[300];
    mr_resp_what(side, r, what, sizeof what);
    mr_why(op, "resync: %s on %s of %.300s", what, step, path);
    return 1;
}

/* One idempotent Gen1 request of a copy: 0 done, 1 failed (detail), -1 stopped. ok404: a 404 is fine. */
static int g1_do(mop *op, const char *method, const char *path, const char *query, const char *step, bool ok404)
{
    mr_g1req g = {.method = method, .path = path, .query = query};
    httpc_resp *r = mr_g1_retry(op, &g);
    if (!r) return -1;
    int rc = ok2xx(r) || (ok404 && r->result == HTTPC_OK && r->status == 404) ? 0 : fail_resp(op, MR_G1, r, step, path);
    mr_resp_free(r);
    return rc;
}

static int g1_delete(mop *op, const char *path, rs_sum *sum)
{
    int rc = g1_do(op, "DELETE", path, "op=DELETE&recursive=true", "DELETE", true);
    if (rc == 0) sum->deleted++;
    return rc;
}

/* ================================================================ Gen2 reads */

typedef struct g2node {
    bool exists, is_dir;
    uint64_t len;
    char etag[128];                 /* a file's ETag when it was read ("" when Gen2 gave none) */
    char owner[256], group[256], perm[16];
    char *props;                    /* x-ms-properties or NULL */
    char *acl;                      /* x-ms-acl or NULL */
} g2node;

static void g2node_free(g2node *n)
{
    free(n->props);
    free(n->acl);
}

static char *dup_hdr(const httpc_resp *r, const char *name)
{
    const char *v = httpc_resp_header(r, name);
    return v ? strdup(v) : NULL;
}

/* getProperties and getAccessControl of fs/p2 ("" = the filesystem root: a directory). */
static int g2_node(mop *op, const char *fs, const char *p2, const char *g1path, g2node *n)
{
    memset(n, 0, sizeof *n);
    if (!*p2) {
        n->exists = n->is_dir = true;
    } else {
        gen2c_call c = {.method = "HEAD", .fs = fs, .path = p2, .out = HTTPC_BODY_DISCARD};
        httpc_resp *r = mr_g2_retry(op, &c);
        if (!r) return -1;
        if (r->result == HTTPC_OK && r->status == 404) {
            mr_resp_free(r);
            return 0;
        }
        if (!ok2xx(r)) {
            fail_resp(op, MR_G2, r, "getProperties", g1path);
            mr_resp_free(r);
            return 1;
        }
        n->exists = true;
        const char *t = httpc_resp_header(r, "x-ms-resource-type");
        n->is_dir = t && strcasecmp(t, "directory") == 0;
        const char *cl = httpc_resp_header(r, "Content-Length");
        if (!n->is_dir && !mr_parse_u64(cl, &n->len)) {
            mr_resp_free(r);
            mr_why(op, "resync: Gen2 getProperties of %.300s without a length", g1path);
            return 1;
        }
        n->props = dup_hdr(r, "x-ms-properties");
        const char *et = httpc_resp_header(r, "ETag");
        snprintf(n->etag, sizeof n->etag, "%s", et ? et : "");
        mr_resp_free(r);
    }
    gen2c_call c = {.method = "HEAD", .fs = fs, .path = p2, .query = "action=getAccessControl&upn=false",
                    .out = HTTPC_BODY_DISCARD};
    httpc_resp *r = mr_g2_retry(op, &c);
    if (!r) return -1;
    if (r->result == HTTPC_OK && r->status == 404) {
        mr_resp_free(r);
        n->exists = false;
        return 0;
    }
    if (!ok2xx(r)) {
        fail_resp(op, MR_G2, r, "getAccessControl", g1path);
        mr_resp_free(r);
        return 1;
    }
    const char *o = httpc_resp_header(r, "x-ms-owner"), *g = httpc_resp_header(r, "x-ms-group");
    const char *p = httpc_resp_header(r, "x-ms-permissions");
    snprintf(n->owner, sizeof n->owner, "%s", o ? o : "");
    snprintf(n->group, sizeof n->group, "%s", g ? g : "");
    snprintf(n->perm, sizeof n->perm, "%s", p ? p : "");
    n->acl = dup_hdr(r, "x-ms-acl");
    mr_resp_free(r);
    return 0;
}

/* The names (last segments) of fs/p2's children on Gen2, and which are directories. */
typedef struct namelist {
    char **v;
    bool *dir;
    int n;
} namelist;

static void namelist_free(namelist *l)
{
    for (int i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
    free(l->dir);
    memset(l, 0, sizeof *l);
}

static int namelist_add(namelist *l, const char *name, bool dir)
{
    bool *nd = realloc(l->dir, sizeof *nd * (size_t)(l->n + 1));
    if (!nd) return -1;
    l->dir = nd;
    l->dir[l->n] = dir;
    return mr_list_add(&l->v, &l->n, name);
}

static bool namelist_has(const namelist *l, const char *name)
{
    for (int i = 0; i < l->n; i++)
        if (strcmp(l->v[i], name) == 0) return true;
    return false;
}

static int g2_children(mop *op, const char *fs, const char *p2, const char *g1path, namelist *out)
{
    char *cont = NULL;
    int rc = 0;
    do {
        dbuf q;
        dbuf_init(&q, 1 << 16);
        int qr = dbuf_adds(&q, "resource=filesystem&recursive=false&maxResults=5000");
        if (qr == 0 && *p2) qr = dbuf_adds(&q, "&directory=");
        if (qr == 0 && *p2) qr = url_encode(p2, false, &q);
        if (qr == 0 && cont) qr = dbuf_adds(&q, "&continuation=");
        if (qr == 0 && cont) qr = url_encode(cont, false, &q);
        free(cont);
        cont = NULL;
        if (qr != 0) {
            dbuf_free(&q);
            mr_why(op, "out of memory");
            return 1;
        }
        gen2c_call c = {.method = "GET", .fs = fs, .path = "", .query = q.data, .out = HTTPC_BODY_MEMORY,
                        .out_max = MR_JSON_MAX};
        httpc_resp *r = mr_g2_retry(op, &c);
        dbuf_free(&q);
        if (!r) return -1;
        if (!ok2xx(r)) {
            rc = fail_resp(op, MR_G2, r, "list", g1path);
            mr_resp_free(r);
            break;
        }
        const char *ct = httpc_resp_header(r, "x-ms-continuation");
        if (ct && *ct && !(cont = strdup(ct))) rc = 1;
        json_t *j = json_loadb(r->body.data ? r->body.data : "", r->body.len, 0, NULL);
        json_t *paths = json_object_get(j, "paths");
        size_t i;
        json_t *e;
        if (!json_is_array(paths)) rc = 1;
        json_array_foreach(paths, i, e) {
            xlate_filestatus fsx;
            xlate_err xe;
            if (rc != 0 || xlate_filestatus_from_list(e, &fsx, &xe) != 0) {
                rc = 1;
                break;
            }
            const char *slash = strrchr(fsx.name, '/');
            if (namelist_add(out, slash ? slash + 1 : fsx.name, fsx.is_dir) != 0) rc = 1;
        }
        json_decref(j);
        mr_resp_free(r);
        if (rc != 0) mr_why(op, "resync: Gen2's listing of %.300s could not be read", g1path);
    } while (rc == 0 && cont);
    free(cont);
    return rc;
}

/* Gen1's children of path (names), all pages. */
static int g1_children(mop *op, const char *path, namelist *out)
{
    char *after = NULL;
    int rc = 0;
    for (;;) {
        dbuf q;
        dbuf_init(&q, 1 << 16);
        /* paged: LISTSTATUS with listSize/listAfter (adls), LISTSTATUS_BATCH with startAfter (hadoop) */
        bool hadoop = op->m->o.hadoop;
        int qr = dbuf_adds(&q, hadoop ? "op=LISTSTATUS_BATCH" : "op=LISTSTATUS&");
        if (qr == 0 && hadoop && after) {
            qr = dbuf_adds(&q, "&");
            if (qr == 0) qr = xlate_liststatus_batch_query(after, &q);
        } else if (qr == 0 && !hadoop) {
            qr = xlate_liststatus_query(1000, after ? after : "", &q);
        }
        if (qr != 0) {
            dbuf_free(&q);
            free(after);
            mr_why(op, "out of memory");
            return 1;
        }
        mr_g1req g = {.method = "GET", .path = path, .query = q.data};
        httpc_resp *r = mr_g1_retry(op, &g);
        dbuf_free(&q);
        if (!r) {
            free(after);
            return -1;
        }
        if (r->result == HTTPC_OK && r->status == 404) {
            mr_resp_free(r);
            break;
        }
        if (!ok2xx(r)) {
            rc = fail_resp(op, MR_G1, r, "LISTSTATUS", path);
            mr_resp_free(r);
            break;
        }
        xlate_listing l = {0};
        xlate_err xe;
        if (xlate_liststatus_parse(r->body.data, r->body.len, &l, &xe) != 0) {
            mr_why(op, "resync: Gen1's LISTSTATUS of %.300s: %s", path, xe.message);
            mr_resp_free(r);
            rc = 1;
            break;
        }
        mr_resp_free(r);
        for (int i = 0; i < l.n && rc == 0; i++)
            if (namelist_add(out, l.v[i].name, l.v[i].is_dir) != 0) rc = 1;
        free(after);
        after = l.token ? strdup(l.token) : NULL;
        bool more = l.token && l.n > 0;
        xlate_listing_free(&l);
        if (rc != 0 || !more || !after) break;
    }
    free(after);
    return rc;
}

/* ================================================================ copying one node */

static char *child_path(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s%s%s", dir, strcmp(dir, "/") == 0 ? "" : "/", name);
    return p;
}

/* Whether an x-ms-acl holds entries beyond the base ones (named, mask or default entries). */
static bool acl_extended(const char *acl)
{
    if (!acl) return false;
    const char *p = acl;
    while (*p) {
        size_t n = strcspn(p, ",");
        bool base = (n >= 6 && strncmp(p, "user::", 6) == 0) || (n >= 7 && strncmp(p, "group::", 7) == 0) ||
                    (n >= 7 && strncmp(p, "other::", 7) == 0) || (n >= 6 && strncmp(p, "mask::", 6) == 0);
        if (!base && n > 0) return true;
        p += n;
        if (*p == ',') p++;
    }
    return false;
}

/* An x-ms-acl with the names of its named entries mapped back (mr_name_back) into out. 0 or -1. */
static int acl_back(const idm_map *map, const char *acl, dbuf *out)
{
    const char *p = acl;
    int rc = 0;
    while (*p && rc == 0) {
        size_t n = strcspn(p, ",");
        char e[3 * IDM_MAX_NAME];
        if (n >= sizeof e) return -1;
        memcpy(e, p, n);
        e[n] = 0;
        p += n;
        if (*p == ',') p++;
        char *t = strncmp(e, "default:", 8) == 0 ? e + 8 : e; /* type:qualifier:perm */
        char *q1 = strchr(t, ':'), *q2 = q1 ? strchr(q1 + 1, ':') : NULL;
        if (out->len) rc = dbuf_add(out, ",", 1);
        if (rc != 0) break;
        if (!q1 || !q2 || q2 == q1 + 1) {
            rc = dbuf_adds(out, e);
            continue;
        }
        *q2 = 0;
        idm_kind k = strncmp(t, "group:", 6) == 0 ? IDM_GROUP : IDM_USER;
        rc = dbuf_add(out, e, (size_t)(q1 + 1 - e));
        if (rc == 0) rc = dbuf_adds(out, mr_name_back(map, k, q1 + 1));
        if (rc == 0) rc = dbuf_add(out, ":", 1);
        if (rc == 0) rc = dbuf_adds(out, q2 + 1);
    }
    return rc;
}

/* Gen2's metadata onto Gen1's node path. Refusals of SETOWNER are noted; other failures fail. */
static int copy_meta(mop *op, const char *path, const g2node *n)
{
    idm_map *map = mr_ids_get(op->m);
    dbuf q;
    dbuf_init(&q, 1 << 16);
    int rc = 0;
    bool ext = acl_extended(n->acl);
    if (ext) {
        dbuf acl;
        dbuf_init(&acl, 1 << 16);
        rc = acl_back(map, n->acl, &acl);
        if (rc == 0) rc = mr_q_add(&q, "op", "SETACL");
        if (rc == 0) rc = mr_q_add(&q, "aclspec", acl.data ? acl.data : "");
        dbuf_free(&acl);
        rc = rc == 0 ? g1_do(op, "PUT", path, q.data, "SETACL", false) : 1;
    } else {
        rc = g1_do(op, "PUT", path, "op=REMOVEACL", "REMOVEACL", false);
    }
    char oct[8];
    bool aclbit;
    xlate_err xe;
    if (rc == 0 && n->perm[0] && xlate_perm_to_octal(n->perm, oct, &aclbit, &xe) == 0) {
        char qs[64];
        snprintf(qs, sizeof qs, "op=SETPERMISSION&permission=%s", oct);
        rc = g1_do(op, "PUT", path, qs, "SETPERMISSION", false);
    }
    bool owner = n->owner[0] && strcmp(n->owner, "$superuser") != 0;
    bool group = n->group[0] && strcmp(n->group, "$superuser") != 0;
    if (rc == 0 && (owner || group)) {
        dbuf_reset(&q);
        int qr = mr_q_add(&q, "op", "SETOWNER");
        if (qr == 0 && owner) qr = mr_q_add(&q, "owner", mr_name_back(map, IDM_USER, n->owner));
        if (qr == 0 && group) qr = mr_q_add(&q, "group", mr_name_back(map, IDM_GROUP, n->group));
        mr_g1req g = {.method = "PUT", .path = path, .query = q.data};
        httpc_resp *r = qr == 0 ? mr_g1_retry(op, &g) : NULL;
        if (!r) {
            rc = qr == 0 ? -1 : 1;
        } else {
            if (!ok2xx(r)) {
                char what[200];
                mr_resp_what(MR_G1, r, what, sizeof what);
                mr_note(op, "owner of %.200s differs: Gen2 has %s:%s, Gen1 refused SETOWNER (%s)", path, n->owner,
                        n->group, what);
            }
            mr_resp_free(r);
        }
    }
    char tv[128];
    int64_t mt = -1, at = -1, len = -1;
    if (rc == 0 && n->props && xlate_props_get(n->props, XLATE_TIMES_KEY, tv, sizeof tv) == 1 &&
        xlate_times_parse(tv, &mt, &at, &len) == 0 && (len < 0 || n->is_dir || (uint64_t)len == n->len) &&
        (mt >= 0 || at >= 0)) {
        char qs[128];
        snprintf(qs, sizeof qs, "op=SETTIMES&modificationtime=%" PRId64 "&accesstime=%" PRId64, mt, at);
        rc = g1_do(op, "PUT", path, qs, "SETTIMES", false);
    }
    dbuf_free(&q);
    idm_unref(map);
    return rc;
}

/* The file's bytes Gen2 → Gen1 in parts, in place. */
static int copy_bytes(mop *op, const char *fs, const char *p2, const char *path, uint64_t len)
{
    uint64_t off = 0;
    do {
        uint64_t n = len - off > MIRROR_PART_BYTES ? MIRROR_PART_BYTES : len - off;
        httpc_resp *r = NULL;
        if (n) {
            char range[80];
            snprintf(range, sizeof range, "Range: bytes=%" PRIu64 "-%" PRIu64, off, off + n - 1);
            gen2c_call c = {.method = "GET", .fs = fs, .path = p2, .headers = {range}, .out = HTTPC_BODY_MEMORY,
                            .out_max = (size_t)n + 1};
            r = mr_g2_retry(op, &c);
            if (!r) return -1;
            if (!ok2xx(r) || r->body.len != n) {
                int rc = ok2xx(r) ? (mr_why(op, "resync: Gen2 returned %zu bytes of %.300s at %" PRIu64
                                                ", expected %" PRIu64 " (the file changed: copied again)",
                                            r->body.len, path, off, n),
                                     1)
                                  : fail_resp(op, MR_G2, r, "read", path);
                mr_resp_free(r);
                return rc;
            }
        }
        int rc;
        if (off == 0) {
            mr_g1req g = {.method = "PUT", .path = path, .query = "op=CREATE&overwrite=true",
                          .mem = r ? r->body.data : NULL, .len = n};
            httpc_resp *a = mr_g1_retry(op, &g); /* overwrite: the same result however often */
            rc = !a ? -1 : ok2xx(a) ? 0 : fail_resp(op, MR_G1, a, "CREATE", path);
            mr_resp_free(a);
        } else {
            rc = mr_write_at(op, path, off, r->body.data, -1, 0, n, false, false);
        }
        mr_resp_free(r);
        if (rc != 0) return rc;
        off += n;
    } while (off < len);
    return 0;
}

static int copy_node(mop *op, const char *path, int depth, rs_sum *sum);

/* A child c of Gen1's directory that Gen2's listing of fs/p2 lacks: deleted when it maps next to its
 * parent; copied by its own mapping when a nested mapping puts it elsewhere on Gen2; left alone (and
 * counted) when it maps nowhere or has a name Gen2 cannot hold, since the primary never had it. */
static int gone_child(mop *op, const char *fs, const char *p2, const char *c, int depth, rs_sum *sum)
{
    char cfs[64], why[128];
    char *cp2 = malloc(MR_PATH_CAP);
    if (!cp2) return 1;
    int rc;
    gen2c_map_result mres = gen2c_map(op->m->o.g2, c, cfs, cp2, MR_PATH_CAP, why, sizeof why);
    const char *base = strrchr(c, '/');
    size_t pl = strlen(p2);
    bool beside = mres == GEN2C_MAPPED && strcmp(cfs, fs) == 0 && base &&
                  (pl ? strncmp(cp2, p2, pl) == 0 && cp2[pl] == '/' && strcmp(cp2 + pl + 1, base + 1) == 0
                      : strcmp(cp2, base + 1) == 0);
    if (mres != GEN2C_MAPPED) {
        sum->kept++;
        rc = 0;
    } else if (beside) {
        rc = g1_delete(op, c, sum);
    } else {
        rc = copy_node(op, c, depth + 1, sum);
    }
    free(cp2);
    return rc;
}

static int copy_node(mop *op, const char *path, int depth, rs_sum *sum)
{
    mirror *m = op->m;
    if (depth > MR_DEPTH_MAX) {
        mr_why(op, "resync: %.300s is deeper than %d levels", path, MR_DEPTH_MAX);
        return 1;
    }
    char fs[64], why[128];
    char *p2 = malloc(MR_PATH_CAP);
    if (!p2) return 1;
    gen2c_map_result mres = gen2c_map(m->o.g2, path, fs, p2, MR_PATH_CAP, why, sizeof why);
    if (mres != GEN2C_MAPPED) {
        mr_why(op, "resync: %.300s is %s on Gen2%s%s", path,
               mres == GEN2C_UNMAPPED ? "not mapped" : "a name Gen2 cannot hold", why[0] ? ": " : "", why);
        free(p2);
        return 1;
    }
    g2node n;
    int rc = g2_node(op, fs, p2, path, &n);
    if (rc != 0) goto out;
    mr_stat st;
    int s = mr_g1_stat(op, path, &st);
    if (s == -1 || s == -2) {
        rc = s == -1 ? -1 : 1;
        goto out;
    }
    if (!n.exists) {
        rc = s == 1 ? g1_delete(op, path, sum) : 0;
        goto out;
    }
    if (s == 1 && st.is_dir != n.is_dir && (rc = g1_delete(op, path, sum)) != 0) goto out;
    if (n.is_dir) {
        if ((rc = g1_do(op, "PUT", path, "op=MKDIRS", "MKDIRS", false)) != 0) goto out;
        namelist g2l = {0}, g1l = {0};
        rc = g2_children(op, fs, p2, path, &g2l);
        if (rc == 0) rc = g1_children(op, path, &g1l);
        for (int i = 0; rc == 0 && i < g1l.n; i++) {
            if (namelist_has(&g2l, g1l.v[i])) continue;
            char *c = child_path(path, g1l.v[i]);
            rc = c ? gone_child(op, fs, p2, c, depth, sum) : 1;
            free(c);
        }
        for (int i = 0; rc == 0 && i < g2l.n; i++) {
            char *c = child_path(path, g2l.v[i]);
            rc = c ? copy_node(op, c, depth + 1, sum) : 1;
            free(c);
        }
        namelist_free(&g2l);
        namelist_free(&g1l);
        if (rc == 0) rc = copy_meta(op, path, &n);
        if (rc == 0) sum->dirs++;
    } else {
        /* Gen2 may change while the bytes are copied: a write journaled by another proxy of a fleet is not
         * held back by this proxy's gate, and another proxy's mirror may append it to Gen1 before this
         * copy's CREATE overwrites the file. So the copy is over only when Gen2's file is still the one it
         * read (same ETag and length); otherwise it is made again from the new one. */
        for (int redo = 0;; redo++) {
            rc = copy_bytes(op, fs, p2, path, n.len);
            if (rc != 0) break;
            g2node now;
            rc = g2_node(op, fs, p2, path, &now);
            bool same = rc == 0 && now.exists && !now.is_dir && now.len == n.len && strcmp(now.etag, n.etag) == 0;
            if (rc != 0 || same) {
                g2node_free(&now);
                break;
            }
            if (!now.exists || now.is_dir || redo + 1 >= MR_COPY_REDO) {
                g2node_free(&now);
                mr_why(op, "resync: %.300s kept changing on Gen2 during its copy (%d copies)", path, redo + 1);
                rc = 1;
                break;
            }
            LOGI("msg=\"file changed on gen2 during its copy to gen1: copied again\" seq=%" PRIu64 " path=\"%s\" redo=%d",
                 op->req->seq, path, redo + 1);
            g2node_free(&n);
            n = now;
        }
        if (rc == 0) rc = copy_meta(op, path, &n);
        if (rc == 0) sum->files++;
    }
out:
    g2node_free(&n);
    free(p2);
    return rc;
}

/* ================================================================ gate, roots, attempts */

/* Copy one root under the gate. 0 done (*epoch: what it covers), 1 failed, -1 stopped. */
static int resync_root(mop *op, const char *root, rs_sum *sum, uint64_t *epoch)
{
    mirror *m = op->m;
    for (int redo = 0;; redo++) {
        uint64_t e1 = 0;
        if (m->o.gate) {
            int64_t wait = MR_GATE_WAIT_MS;
            for (;;) {
                bool busy = false;
                e1 = m->o.gate(m->o.gate_ud, root, &busy);
                if (!busy) break;
                if (!mr_sleep(m, wait)) return -1;
                wait = wait * 2 > MR_GATE_WAIT_MAX_MS ? MR_GATE_WAIT_MAX_MS : wait * 2;
            }
        }
        int rc = copy_node(op, root, 0, sum);
        if (rc != 0) return rc;
        if (!m->o.gate) {
            *epoch = op->req->seq;
            return 0;
        }
        bool busy = false;
        uint64_t e2 = m->o.gate(m->o.gate_ud, root, &busy);
        if (!busy && e2 == e1) {
            *epoch = e2 > op->req->seq ? e2 : op->req->seq;
            return 0;
        }
        if (redo + 1 >= MR_RESYNC_REDOS) {
            /* Records keep arriving: what was copied is not known to cover them; they replay. */
            *epoch = op->req->seq;
            return 0;
        }
    }
}

void mr_resync(mop *op, const char *why)
{
    mirror *m = op->m;
    const apply_req *q = op->req;
    char reason[300];
    snprintf(reason, sizeof reason, "%s", why);
    int64_t nb = q->not_before_ms - mr_mono_ms();
    if (q->not_before_ms && nb > 0 && !mr_sleep(m, nb)) {
        op->outcome = APPLY_STOPPED;
        return;
    }
    for (unsigned attempt = 1;; attempt++) {
        rs_sum sum = {0};
        op->note[0] = 0;
        int rc = 0;
        for (int i = 0; rc == 0 && i < op->ntouch; i++) {
            /* a root under an earlier one is in its copy already */
            bool inside = false;
            for (int k = 0; k < i && !inside; k++) inside = mr_under(op->touch[i], op->touch[k]);
            if (inside) continue;
            uint64_t epoch = 0;
            rc = resync_root(op, op->touch[i], &sum, &epoch);
            if (rc == 0) mr_cover_add(m, op->touch[i], epoch);
        }
        if (rc < 0) {
            op->outcome = APPLY_STOPPED;
            return;
        }
        if (rc == 0) {
            op->outcome = APPLY_RESYNCED;
            char kept[96] = "";
            if (sum.kept)
                snprintf(kept, sizeof kept, ", %u left on Gen1 (not mapped to Gen2 or a name Gen2 cannot hold)",
                         sum.kept);
            mr_why(op, "%s; resynced from Gen2: %u files, %u directories copied, %u deleted%s%s%s", reason, sum.files,
                   sum.dirs, sum.deleted, kept, op->note[0] ? "; " : "", op->note);
            op->note[0] = 0;
            return;
        }
        char last[512];
        snprintf(last, sizeof last, "%s", op->detail);
        if (attempt >= m->o.resync_attempts) {
            op->outcome = APPLY_PARKED;
            mr_why(op, "%.200s; resync failed %u times, last: %.280s", reason, attempt, last);
            return;
        }
        LOGW("msg=\"gen1 resync failed, trying again\" seq=%" PRIu64 " path=\"%s\" attempt=%u detail=\"%s\"", q->seq,
             q->path, attempt, last);
        if (!mr_backoff(op, MR_G1, NULL)) {
            op->outcome = APPLY_STOPPED;
            return;
        }
    }
}
