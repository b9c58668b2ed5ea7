/*
 * emu_gen2_path: the Gen2 path calls that change the namespace or metadata. Create (files and
 * directories, missing parents included, with permissions, umask, ACL, owner, group and properties
 * checked before anything is made, and overwrite of a file in place), rename (with or without the
 * account segment in x-ms-rename-source, a source SAS, source conditions and lease), delete (in
 * rounds of --delete-page entries, deepest first, with a continuation, when that option is set),
 * set-properties, set-access-control and its recursive form (with maxRecords pages and a
 * continuation), leases (acquire, renew, change, release, break) and set-expiry. Each runs under
 * the store lock, waits while an append is in flight on a file it would rewrite or free, and
 * prepares the request's answer.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "acl.h"
#include "b64.h"
#include "emu_auth.h"
#include "emu_gen2_int.h"
#include "log.h"
#include "urlcodec.h"

#define G2_ACLREC_MAX 2000

/* ================================================================ create */

/* 4-digit octal umask ("0027"). */
static int parse_umask(const char *v, uint16_t *out)
{
    if (strlen(v) != 4) return -1;
    unsigned m = 0;
    for (int i = 0; i < 4; i++) {
        if (v[i] < '0' || v[i] > '7') return -1;
        m = m * 8 + (unsigned)(v[i] - '0');
    }
    if (m > 0777) return -1;
    *out = (uint16_t)m;
    return 0;
}

typedef struct create_in {
    bool dir;
    bool has_perm;
    uint16_t perm;
    uint16_t umask;
    acl_list *acl;          /* x-ms-acl, or NULL */
    const char *owner, *group, *props;
} create_in;

/* Validate the create headers; answers 400 and returns -1 on bad input. */
static int create_parse(g2_req *q, create_in *in, acl_list *aclbuf)
{
    acl_err err;
    const char *perm = g2_hdr_ne(q, "x-ms-permissions"), *umask = g2_hdr_ne(q, "x-ms-umask");
    const char *acl = g2_hdr_ne(q, "x-ms-acl");
    in->dir = strcmp(g2_param(q, "resource"), "directory") == 0;
    in->umask = 0027;
    if (perm && acl) {
        g2_ans_err(q, 400, "InvalidInput", "One of the request inputs is not valid: x-ms-permissions and x-ms-acl "
                                           "cannot be used together.");
        return -1;
    }
    if (perm) {
        if (acl_parse_perm_any(perm, &in->perm, &err)) {
            g2_ans_err(q, 400, "InvalidHeaderValue", "%s %s", G2_MSG_BADHDR, err.message);
            return -1;
        }
        in->has_perm = true;
    }
    if (umask && parse_umask(umask, &in->umask)) {
        g2_ans_err(q, 400, "InvalidHeaderValue", "%s", G2_MSG_BADHDR);
        return -1;
    }
    if (acl) {
        if (acl_parse(acl, true, aclbuf, &err)) {
            g2_ans_err(q, 400, "InvalidHeaderValue", "%s %s", G2_MSG_BADHDR, err.message);
            return -1;
        }
        in->acl = aclbuf;
    }
    in->owner = g2_hdr_ne(q, "x-ms-owner");
    in->group = g2_hdr_ne(q, "x-ms-group");
    in->props = g2_hdr(q, "x-ms-properties");
    if ((in->owner && !g2_owner_ok(in->owner)) || (in->group && !g2_owner_ok(in->group)) ||
        (in->props && !g2_properties_ok(in->props))) {
        g2_ans_err(q, 400, "InvalidHeaderValue", "%s", G2_MSG_BADHDR);
        return -1;
    }
    return 0;
}

/* Metadata of a new node under a parent whose ACL state is pacl and group pgroup. */
static int create_meta(g2_req *q, const create_in *in, const acl_node *pacl, const char *pgroup, bool dir, bool leaf,
                       emu_meta *out)
{
    memset(out, 0, sizeof *out);
    uint16_t req = leaf && in->has_perm ? in->perm : (dir ? 0777 : 0666);
    acl_inherit(pacl, req, in->umask, dir, &out->acl);
    if (leaf && in->acl) {
        acl_err err;
        acl_remove_default(&out->acl);
        if (acl_set(&out->acl, in->acl, dir, &err)) {
            g2_ans_err(q, 400, "InvalidInput", "One of the request inputs is not valid. %s", err.message);
            return -1;
        }
    }
    snprintf(out->owner, sizeof out->owner, "%s", leaf && in->owner ? in->owner : q->caller.principal);
    snprintf(out->group, sizeof out->group, "%s", leaf && in->group ? in->group : pgroup);
    return 0;
}

typedef struct walk {
    emu_node *parent;       /* deepest existing ancestor */
    int missing_from;       /* index of the first missing component (== ncomp - 1 when only the leaf is new) */
    emu_node *node;         /* the target, when every component exists */
} walk;

/* Walk comps from fsn. Answers 409 PathConflict when a component is a file. */
static int walk_path(g2_req *q, emu_node *fsn, char **comps, int ncomp, walk *w)
{
    int64_t now = emu_now_ms();
    emu_node *cur = fsn;
    w->node = ncomp == 0 ? fsn : NULL;
    w->missing_from = ncomp;
    for (int i = 0; i < ncomp; i++) {
        emu_node *c = emu_store_child(cur, comps[i]);
        if (c && g2_is_expired(c, now)) c = NULL;
        if (!c) {
            w->parent = cur;
            w->missing_from = i;
            return 0;
        }
        if (i < ncomp - 1 && c->type != EMU_DIR) {
            g2_ans_err(q, 409, "PathConflict",
                       "The specified path, or an element of the path, exists and its resource type is invalid for "
                       "this operation.");
            return -1;
        }
        if (i == ncomp - 1) w->node = c;
        cur = c;
    }
    w->parent = ncomp ? w->node->parent : NULL;
    return 0;
}

void g2_op_create(g2_req *q)
{
    emu_gen2 *g = q->g;
    emu_store *s = g->s;
    acl_list *aclbuf = calloc(1, sizeof *aclbuf);
    emu_meta *meta = calloc(2, sizeof *meta);
    char *relcopy = strdup(q->rel);
    char *comps[G2_MAX_SEGS];
    create_in in = {0};
    if (!aclbuf || !meta || !relcopy) {
        g2_ans_err(q, 500, "InternalError", "Out of memory.");
        goto out;
    }
    if (create_parse(q, &in, aclbuf) || !g2_sas_allows(q, "wc")) goto out;
    int ncomp = g2_split_path(relcopy, comps, G2_MAX_SEGS);
    if (ncomp < 0) {
        g2_ans_err(q, 400, "InvalidUri", "%s", G2_MSG_BADURI);
        goto out;
    }
    for (;;) {
        emu_node *fsn = g2_need_fs(q);
        walk w;
        if (!fsn || walk_path(q, fsn, comps, ncomp, &w)) goto out;
        emu_node *n = w.node;
        int c = g2_eval_conditions(q, n, "", false);
        if (c == 0 && !n && g2_hdr_ne(q, "If-Match")) c = 412;
        if (g2_cond_fail(q, n, c)) goto out;
        if (n && (n->type == EMU_DIR) != in.dir) {
            emu_resp_header(q->r, "x-ms-existing-resource-type", n->type == EMU_DIR ? "directory" : "file");
            g2_ans_err(q, 409, "PathConflict",
                       "The specified path, or an element of the path, exists and its resource type is invalid for "
                       "this operation.");
            goto out;
        }
        if (n && in.dir) {
            /* Unconditional create of an existing directory: succeeds and changes nothing. */
            g2_hdr_node_common(q, n);
            g2_ans_empty(q, 201);
            goto out;
        }
        if (n) {
            /* Overwrite: a new, empty file in place of the old one (same node id). */
            if (n == fsn || g2_lease_write_fail(q, n)) {
                if (!q->ans) g2_ans_err(q, 409, "PathConflict", "The specified path exists as a filesystem root.");
                goto out;
            }
            if (n->busy) {
                emu_store_wait(s);
                continue;
            }
            acl_node pa;
            emu_node_acl_get(n->parent, &pa);
            if (create_meta(q, &in, &pa, n->parent->group, false, true, &meta[0])) goto out;
            if (emu_store_truncate_object(s, n, 0)) {
                g2_ans_err(q, 500, "InternalError", "The file could not be truncated.");
                goto out;
            }
            if (emu_store_set_meta(s, n, &meta[0])) {
                g2_ans_err(q, 500, "InternalError", "Out of memory.");
                goto out;
            }
            n->length = n->visible_length = 0;
            n->nstaged = 0;
            n->expiry_ms = 0;
            n->ctime_ms = n->mtime_ms = n->atime_ms = emu_now_ms();
            if (g2_set_properties(n, in.props)) {
                g2_ans_err(q, 500, "InternalError", "Out of memory.");
                goto out;
            }
            emu_store_bump_etag(s, n);
            g2_save_or_fail(q, n);
            if (q->ans) goto out;
            g2_hdr_node_common(q, n);
            emu_resp_header(q->r, "x-ms-request-server-encrypted", "true");
            g2_ans_empty(q, 201);
            goto out;
        }
        /* New: check the leaf's metadata first (an invalid x-ms-acl must leave nothing behind). */
        acl_node pacl;
        emu_node_acl_get(w.parent, &pacl);
        const char *pgroup = w.parent->group;
        for (int i = w.missing_from; i < ncomp - 1; i++) {
            if (create_meta(q, &in, &pacl, pgroup, true, false, &meta[1])) goto out;
            pacl = meta[1].acl;
        }
        if (create_meta(q, &in, &pacl, pgroup, in.dir, true, &meta[0])) goto out;
        emu_node *cur = w.parent;
        for (int i = w.missing_from; i < ncomp; i++) {
            bool leaf = i == ncomp - 1;
            emu_node *child = NULL;
            if (!leaf) emu_node_acl_get(cur, &pacl);
            if (!leaf && create_meta(q, &in, &pacl, cur->group, true, false, &meta[1])) goto out;
            int rc = emu_store_create(s, cur, comps[i], leaf ? (in.dir ? EMU_DIR : EMU_FILE) : EMU_DIR,
                                      leaf ? &meta[0] : &meta[1], &child);
            if (rc) {
                if (rc == -ENAMETOOLONG)
                    g2_ans_err(q, 400, "InvalidResourceName",
                               "The specified resource name length is not within the permissible limits.");
                else
                    g2_ans_err(q, 500, "InternalError", "The path could not be created.");
                goto out;
            }
            cur = child;
        }
        if (in.props && *in.props) {
            if (g2_set_properties(cur, in.props) || emu_store_save(s, cur)) {
                g2_ans_err(q, 500, "InternalError", "The path properties could not be written.");
                goto out;
            }
        }
        g2_hdr_node_common(q, cur);
        emu_resp_header(q->r, "x-ms-request-server-encrypted", "true");
        g2_ans_empty(q, 201);
        goto out;
    }
out:
    free(aclbuf);
    free(meta);
    free(relcopy);
}

/* ================================================================ rename */

typedef struct rename_src {
    char *dec;              /* decoded source path (owns the segment strings) */
    char *segs[G2_MAX_SEGS];
    int nseg;
    char *sas;              /* raw query after '?', or NULL */
} rename_src;

static int rename_src_parse(const char *v, rename_src *rs)
{
    memset(rs, 0, sizeof *rs);
    const char *qm = strchr(v, '?');
    if (g2_decode_dup(v, qm ? (size_t)(qm - v) : strlen(v), URL_NO_CTL, &rs->dec)) return -1;
    if (qm && qm[1] && !(rs->sas = strdup(qm + 1))) return -1;
    rs->nseg = g2_split_path(rs->dec, rs->segs, G2_MAX_SEGS);
    return rs->nseg < 1 ? -1 : 0;
}

/* Does the caller's SAS (verified for the destination) also cover fs/path? */
static bool sas_covers(const g2_req *q, const char *fs, const char *path)
{
    const emu_auth_caller *c = &q->caller;
    if (c->kind == EMU_AUTH_ACCOUNT_SAS) return true;
    if (c->kind != EMU_AUTH_SAS) return true;
    if (strcmp(fs, q->fs) != 0) return false;
    if (strcmp(c->sr, "c") == 0) return true;
    if (strcmp(c->sr, "d") != 0) return false;
    /* Same first sdd segments. */
    const char *a = q->rel, *b = path;
    for (int i = 0; i < c->sdd; i++) {
        size_t la = strcspn(a, "/"), lb = strcspn(b, "/");
        if (la == 0 || la != lb || strncmp(a, b, la) != 0) return false;
        a += la + (a[la] == '/');
        b += lb + (b[lb] == '/');
    }
    return true;
}

void g2_op_rename(g2_req *q)
{
    emu_store *s = q->g->s;
    rename_src rs;
    char *relcopy = strdup(q->rel);
    char *comps[G2_MAX_SEGS];
    char *srcpath = NULL, *srcrel = NULL;
    const char *mode = g2_param(q, "mode");
    if (mode && strcmp(mode, "legacy") != 0 && strcmp(mode, "posix") != 0) {
        g2_ans_err(q, 400, "InvalidQueryParameterValue", "%s", G2_MSG_BADQ);
        memset(&rs, 0, sizeof rs);
        goto out;
    }
    if (rename_src_parse(g2_hdr(q, "x-ms-rename-source"), &rs) || !relcopy) {
        g2_ans_err(q, 400, "InvalidSourceUri", "The source URI is invalid.");
        goto out;
    }
    int ncomp = g2_split_path(relcopy, comps, G2_MAX_SEGS);
    if (ncomp <= 0) {
        g2_ans_err(q, 400, "InvalidDestinationPath", "The specified destination path is not valid.");
        goto out;
    }
    if (!g2_sas_allows(q, "m")) goto out;
    /* With or without the account segment: strip it when it names the account and what follows is a
     * filesystem (a filesystem may be called like the account). */
    int first = 0;
    if (rs.nseg >= 2 && strcmp(rs.segs[0], q->g->key.account) == 0) {
        char p[300];
        snprintf(p, sizeof p, "/%s", rs.segs[1]);
        snprintf(p + 150, 150, "/%s", rs.segs[0]);
        if (emu_store_lookup(s, p) || !emu_store_lookup(s, p + 150)) first = 1;
    }
    const char *srcfs = rs.segs[first];
    srcrel = g2_join_segs(rs.segs + first + 1, rs.nseg - first - 1);
    dbuf sp;
    dbuf_init(&sp, G2_MAX_PATH + 80);
    if (!srcrel || dbuf_printf(&sp, "/%s%s%s", srcfs, *srcrel ? "/" : "", srcrel)) {
        dbuf_free(&sp);
        g2_ans_err(q, 400, "InvalidSourceUri", "The source URI is invalid.");
        goto out;
    }
    srcpath = dbuf_take(&sp);
    if (q->caller.kind == EMU_AUTH_SAS || q->caller.kind == EMU_AUTH_ACCOUNT_SAS) {
        if (rs.sas) {
            emu_auth_caller sc;
            emu_auth_fail *f = malloc(sizeof *f);
            if (!f || emu_auth_check_sas(q->g->auth, rs.sas, srcfs, srcrel, &sc, f) || emu_auth_permits(&sc, 'm', f)) {
                if (f) g2_ans_auth_fail(q, f);
                else g2_ans_err(q, 500, "InternalError", "Out of memory.");
                free(f);
                goto out;
            }
            free(f);
        } else if (!sas_covers(q, srcfs, srcrel)) {
            g2_ans_err(q, 403, "AuthorizationFailure", "This request is not authorized to perform this operation.");
            goto out;
        }
    }
    for (;;) {
        emu_node *dfs = g2_need_fs(q);
        if (!dfs) goto out;
        emu_node *src = emu_store_lookup(s, srcpath);
        if (!src || !src->parent || g2_is_expired(src, emu_now_ms())) {
            g2_ans_err(q, 404, "SourcePathNotFound", "The source path for a rename operation does not exist.");
            goto out;
        }
        if (src->parent == emu_store_root(s)) {
            g2_ans_err(q, 400, "InvalidSourceUri", "The source URI is invalid: a filesystem cannot be renamed.");
            goto out;
        }
        int c = g2_eval_conditions(q, src, "x-ms-source-", false);
        if (c) {
            g2_ans_err(q, 412, "SourceConditionNotMet", "The source condition specified using HTTP conditional "
                                                        "header(s) is not met.");
            goto out;
        }
        const char *slease = g2_hdr_ne(q, "x-ms-source-lease-id");
        bool sactive = g2_lease_active(src, emu_now_ms());
        if (sactive && !slease) {
            g2_ans_err(q, 412, "LeaseIdMissing",
                       "There is currently a lease on the resource and no lease ID was specified in the request.");
            goto out;
        }
        if (slease && (!sactive || strcasecmp(slease, src->lease_id) != 0)) {
            g2_ans_err(q, 412, sactive ? "LeaseIdMismatch" : "LeaseNotPresent",
                       sactive ? "The lease ID specified did not match the lease ID for the resource."
                               : "There is currently no lease on the resource.");
            goto out;
        }
        walk w;
        if (walk_path(q, dfs, comps, ncomp, &w)) goto out;
        if (w.missing_from < ncomp - 1) {
            g2_ans_err(q, 404, "RenameDestinationParentPathNotFound",
                       "The parent directory of the destination path does not exist.");
            goto out;
        }
        emu_node *dparent = w.parent, *dst = w.node;
        c = g2_eval_conditions(q, dst, "", false);
        if (c == 0 && !dst && g2_hdr_ne(q, "If-Match")) c = 412;
        if (g2_cond_fail(q, dst, c)) goto out;
        if (dst == src || emu_store_is_ancestor(src, dparent)) {
            g2_ans_err(q, 409, "InvalidRenameSourcePath",
                       "The source path for a rename operation is invalid: the destination is the source or "
                       "inside it.");
            goto out;
        }
        if (dst) {
            if (dst->type != src->type) {
                g2_ans_err(q, 409, "InvalidSourceOrDestinationResourceType",
                           "The source and destination resource type must be identical.");
                goto out;
            }
            if (dst->type == EMU_DIR && dst->nchildren > 0) {
                g2_ans_err(q, 409, "DirectoryNotEmpty", "The recursive query parameter value must be true to delete "
                                                        "a non-empty directory.");
                goto out;
            }
            /* An existing lease on the destination is broken, unless the caller names one. */
            if (g2_hdr_ne(q, "x-ms-lease-id") && g2_lease_write_fail(q, dst)) goto out;
            if (g2_subtree_busy(dst)) {
                emu_store_wait(s);
                continue;
            }
            if (emu_store_remove(s, dst)) {
                g2_ans_err(q, 500, "InternalError", "The destination could not be replaced.");
                goto out;
            }
        }
        int rc = emu_store_move(s, src, dparent, comps[ncomp - 1]);
        if (rc) {
            g2_ans_err(q, rc == -EINVAL ? 409 : 500, rc == -EINVAL ? "InvalidRenameSourcePath" : "InternalError",
                       "The rename could not be completed.");
            goto out;
        }
        emu_store_broadcast(s);
        g2_ans_empty(q, 201);
        goto out;
    }
out:
    free(relcopy);
    free(srcpath);
    free(srcrel);
    free(rs.dec);
    free(rs.sas);
}

/* ================================================================ properties and access control */

void g2_op_setprops(g2_req *q)
{
    const char *props = g2_hdr(q, "x-ms-properties");
    if (props && !g2_properties_ok(props)) {
        g2_ans_err(q, 400, "InvalidHeaderValue", "%s", G2_MSG_BADHDR);
        return;
    }
    if (!g2_sas_allows(q, "w")) return;
    emu_node *n = g2_need_path(q);
    if (!n || g2_lease_write_fail(q, n)) return;
    int c = g2_eval_conditions(q, n, "", false);
    if (g2_cond_fail(q, n, c == 409 ? 412 : c)) return;
    if (g2_set_properties(n, props)) {
        g2_ans_err(q, 500, "InternalError", "Out of memory.");
        return;
    }
    emu_store_bump_etag(q->g->s, n);
    g2_save_or_fail(q, n);
    if (q->ans) return;
    g2_hdr_node_common(q, n);
    g2_ans_empty(q, 200);
}

/* Gen2 x-ms-acl replaces the whole ACL, default entries included (ABFS keeps defaults client-side
 * for exactly this reason, protocols.md §2.7). */
static int acl_replace(acl_node *a, const acl_list *spec, bool is_dir, acl_err *err)
{
    acl_node tmp = *a;
    acl_remove_default(&tmp);
    if (acl_set(&tmp, spec, is_dir, err)) return -1;
    *a = tmp;
    return 0;
}

void g2_op_setacl(g2_req *q)
{
    const char *owner = g2_hdr_ne(q, "x-ms-owner"), *group = g2_hdr_ne(q, "x-ms-group");
    const char *perm = g2_hdr_ne(q, "x-ms-permissions"), *acl = g2_hdr_ne(q, "x-ms-acl");
    acl_err err;
    uint16_t mode = 0;
    acl_list *spec = NULL;
    if (!owner && !group && !perm && !acl) {
        g2_ans_err(q, 400, "MissingRequiredHeader", "%s", G2_MSG_NOHDR);
        return;
    }
    if (perm && acl) {
        g2_ans_err(q, 400, "InvalidInput", "One of the request inputs is not valid: x-ms-permissions and x-ms-acl "
                                           "cannot be used together.");
        return;
    }
    if ((owner && !g2_owner_ok(owner)) || (group && !g2_owner_ok(group))) {
        g2_ans_err(q, 400, "InvalidHeaderValue", "%s", G2_MSG_BADHDR);
        return;
    }
    if (perm && acl_parse_perm_any(perm, &mode, &err)) {
        g2_ans_err(q, 400, "InvalidHeaderValue", "%s %s", G2_MSG_BADHDR, err.message);
        return;
    }
    if (acl) {
        spec = malloc(sizeof *spec);
        if (!spec) {
            g2_ans_err(q, 500, "InternalError", "Out of memory.");
            return;
        }
        if (acl_parse(acl, true, spec, &err)) {
            g2_ans_err(q, 400, "InvalidHeaderValue", "%s %s", G2_MSG_BADHDR, err.message);
            goto out;
        }
    }
    if (!g2_sas_allows(q, owner || group ? "o" : "p")) goto out;
    if ((owner || group) && (perm || acl) && !g2_sas_allows(q, "p")) goto out;
    emu_node *n = g2_need_path(q);
    if (!n || g2_lease_write_fail(q, n)) goto out;
    int c = g2_eval_conditions(q, n, "", false);
    if (g2_cond_fail(q, n, c == 409 ? 412 : c)) goto out;
    acl_node next;
    emu_node_acl_get(n, &next);
    if (spec && acl_replace(&next, spec, n->type == EMU_DIR, &err)) {
        g2_ans_err(q, 400, "InvalidInput", "One of the request inputs is not valid. %s", err.message);
        goto out;
    }
    if (perm) acl_chmod(&next, mode);
    if (emu_node_acl_put(n, &next) || (owner && emu_store_set_owner(q->g->s, n, owner)) ||
        (group && emu_store_set_group(q->g->s, n, group))) {
        g2_ans_err(q, 500, "InternalError", "Out of memory.");
        goto out;
    }
    emu_store_bump_etag(q->g->s, n);
    g2_save_or_fail(q, n);
    if (q->ans) goto out;
    g2_hdr_node_common(q, n);
    g2_ans_empty(q, 200);
out:
    free(spec);
}

typedef struct aclrec {
    g2_req *q;
    int mode;               /* 0 set, 1 modify, 2 remove */
    const acl_list *spec, *fspec; /* fspec: spec without default entries (for files) */
    int64_t skip, budget;   /* entries to skip (continuation), entries to process */
    int64_t seen, resume;   /* nodes visited; where the next call starts */
    int64_t dirs, files, failures;
    bool force, stop, more;
    json_t *failed;
    dbuf path;
} aclrec;

/* One entry of a recursive ACL change. Kept out of line so the recursion in aclrec_visit does not
 * carry an acl_node (tens of KiB) per level. */
static __attribute__((noinline)) void aclrec_apply(aclrec *R, emu_node *n)
{
    bool dir = n->type == EMU_DIR;
    const acl_list *spec = dir ? R->spec : R->fspec;
    acl_node next;
    emu_node_acl_get(n, &next);
    acl_err err;
    int rc = 0;
    if (R->mode == 0) rc = acl_replace(&next, spec, dir, &err);
    else if (R->mode == 1) rc = acl_modify(&next, spec, dir, &err);
    else rc = acl_remove_entries(&next, spec, &err);
    if (rc) {
        R->failures++;
        json_t *e = json_pack("{s:s,s:s,s:s}", "errorMessage", err.message, "name", R->path.data ? R->path.data : "",
                              "type", dir ? "DIRECTORY" : "FILE");
        if (e) json_array_append_new(R->failed, e);
        if (!R->force) {
            R->stop = true;
            R->more = true;
            R->resume = R->seen;
        }
        return;
    }
    if (emu_node_acl_put(n, &next)) {
        R->failures++;
        json_t *e = json_pack("{s:s,s:s,s:s}", "errorMessage", "Out of memory.", "name",
                              R->path.data ? R->path.data : "", "type", dir ? "DIRECTORY" : "FILE");
        if (e) json_array_append_new(R->failed, e);
        return;
    }
    emu_store_bump_etag(R->q->g->s, n);
    if (emu_store_save(R->q->g->s, n)) LOGW("gen2 acl: metadata write failed");
    if (dir) R->dirs++;
    else R->files++;
}

static void aclrec_visit(aclrec *R, emu_node *n)
{
    if (R->stop) return;
    if (R->seen++ >= R->skip) {
        if (R->budget == 0) {
            R->more = true;
            R->stop = true;
            R->resume = R->seen - 1;
            return;
        }
        R->budget--;
        aclrec_apply(R, n);
    }
    for (size_t i = 0; i < n->nchildren && !R->stop; i++) {
        size_t keep = R->path.len;
        int rc = (R->path.len ? dbuf_add(&R->path, "/", 1) : 0);
        if (!rc) rc = dbuf_adds(&R->path, n->children[i]->name);
        if (!rc) aclrec_visit(R, n->children[i]);
        R->path.len = keep;
        if (R->path.data) R->path.data[keep] = 0;
    }
}

void g2_op_setacl_recursive(g2_req *q)
{
    const char *mode = g2_param(q, "mode"), *acl = g2_hdr_ne(q, "x-ms-acl");
    const char *mr = g2_param(q, "maxRecords"), *cont = g2_param(q, "continuation");
    int m = -1;
    if (!mode) {
        g2_ans_err(q, 400, "MissingRequiredQueryParameter", "%s", G2_MSG_NOQ);
        return;
    }
    if (strcmp(mode, "set") == 0) m = 0;
    else if (strcmp(mode, "modify") == 0) m = 1;
    else if (strcmp(mode, "remove") == 0) m = 2;
    int force = g2_parse_bool(g2_param(q, "forceFlag"), 0);
    int64_t max = G2_ACLREC_MAX, skip = 0;
    if (m < 0 || force < 0 || (mr && (g2_parse_i64(mr, &max) || max < 1))) {
        g2_ans_err(q, 400, "InvalidQueryParameterValue", "%s", G2_MSG_BADQ);
        return;
    }
    if (max > G2_ACLREC_MAX) max = G2_ACLREC_MAX;
    if (cont && *cont) {
        unsigned char raw[64];
        long d = b64_decode(cont, strlen(cont), raw, sizeof raw - 1);
        if (d > 0) raw[d] = 0;
        if (d < 4 || memcmp(raw, "acl:", 4) != 0 || g2_parse_i64((char *)raw + 4, &skip) || skip < 0) {
            g2_ans_err(q, 400, "InvalidQueryParameterValue", "%s", G2_MSG_BADQ);
            return;
        }
    }
    if (!acl) {
        g2_ans_err(q, 400, "MissingRequiredHeader", "%s", G2_MSG_NOHDR);
        return;
    }
    acl_list *spec = calloc(2, sizeof *spec);
    aclrec R = {.q = q, .mode = m, .skip = skip, .budget = max, .force = force == 1};
    dbuf_init(&R.path, G2_MAX_PATH);
    acl_err err;
    if (!spec) {
        g2_ans_err(q, 500, "InternalError", "Out of memory.");
        goto out;
    }
    if (acl_parse(acl, m != 2, &spec[0], &err)) {
        g2_ans_err(q, 400, "InvalidHeaderValue", "%s %s", G2_MSG_BADHDR, err.message);
        goto out;
    }
    for (int i = 0; i < spec[0].n; i++)
        if (!spec[0].e[i].is_default) spec[1].e[spec[1].n++] = spec[0].e[i];
    R.spec = &spec[0];
    R.fspec = &spec[1];
    if (!g2_sas_allows(q, "p")) goto out;
    emu_node *n = g2_need_path(q);
    if (!n) goto out;
    if (dbuf_adds(&R.path, q->rel)) {
        g2_ans_err(q, 500, "InternalError", "Out of memory.");
        goto out;
    }
    R.failed = json_array();
    aclrec_visit(&R, n);
    json_t *j = json_pack("{s:I,s:I,s:I,s:o}", "directoriesSuccessful", (json_int_t)R.dirs, "filesSuccessful",
                          (json_int_t)R.files, "failureCount", (json_int_t)R.failures, "failedEntries", R.failed);
    if (!j) json_decref(R.failed);
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!text) {
        g2_ans_err(q, 500, "InternalError", "The result could not be built.");
        goto out;
    }
    if (R.more) {
        char tok[48], enc[80];
        snprintf(tok, sizeof tok, "acl:%" PRId64, R.resume);
        b64_encode((const unsigned char *)tok, strlen(tok), enc);
        emu_resp_header(q->r, "x-ms-continuation", enc);
    }
    g2_ans_text(q, 200, "application/json;charset=utf-8", text);
    free(text);
out:
    free(spec);
    dbuf_free(&R.path);
}

/* ================================================================ delete, lease, expiry */

/* Entries under dir (dir itself not counted), counting no further than cap + 1. */
static size_t subtree_count(const emu_node *dir, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < dir->nchildren && n <= cap; i++) {
        const emu_node *c = dir->children[i];
        n++;
        if (c->type == EMU_DIR && n <= cap) n += subtree_count(c, cap - n);
    }
    return n;
}

/* Up to max entries under dir, deepest first (a directory only after everything under it), into
 * out[*n...]: removing them in that order keeps the tree consistent after every step. */
static void collect_deepest(emu_node *dir, emu_node **out, size_t max, size_t *n)
{
    for (size_t i = 0; i < dir->nchildren && *n < max; i++) {
        emu_node *c = dir->children[i];
        if (c->type == EMU_DIR) collect_deepest(c, out, max, n);
        if (*n < max) out[(*n)++] = c;
    }
}

/* The continuation of a paged delete of q's path: base64("del:" + store path), a new string (NULL
 * on ENOMEM). The state is the tree itself, so a re-sent round with the same token is harmless. */
static char *delete_token(const g2_req *q)
{
    size_t plen = strlen(q->spath), rlen = 4 + plen;
    char *raw = malloc(rlen + 1), *enc = malloc(b64_encoded_size(rlen) + 1);
    if (!raw || !enc) {
        free(raw);
        free(enc);
        return NULL;
    }
    memcpy(raw, "del:", 4);
    memcpy(raw + 4, q->spath, plen + 1);
    b64_encode((const unsigned char *)raw, rlen, enc);
    free(raw);
    return enc;
}

/* One round of a paged recursive delete of directory n (--delete-page, lock held, checks done):
 * remove up to page entries under n deepest first and answer 200 with x-ms-continuation, or, when
 * no more than page entries remain under it, remove n and all of them and answer 200 alone. */
static void delete_round(g2_req *q, emu_node *n, size_t page)
{
    emu_store *s = q->g->s;
    emu_node **batch = NULL;
    char *tok = NULL;
    if (subtree_count(n, page) <= page) {
        if (emu_store_remove(s, n)) g2_ans_err(q, 500, "InternalError", "The path could not be deleted.");
        else g2_ans_empty(q, 200);
        goto out;
    }
    batch = malloc(page * sizeof *batch);
    tok = delete_token(q);
    if (!batch || !tok) {
        g2_ans_err(q, 500, "InternalError", "Out of memory.");
        goto out;
    }
    size_t nb = 0;
    collect_deepest(n, batch, page, &nb);
    for (size_t i = 0; i < nb; i++) {
        if (emu_store_remove(s, batch[i])) {
            g2_ans_err(q, 500, "InternalError", "The path could not be deleted.");
            goto out;
        }
    }
    emu_resp_header(q->r, "x-ms-continuation", tok);
    g2_ans_empty(q, 200);
out:
    free(batch);
    free(tok);
}

void g2_op_delete(g2_req *q)
{
    emu_store *s = q->g->s;
    int rec = g2_parse_bool(g2_param(q, "recursive"), 0);
    if (rec < 0 || g2_parse_bool(g2_param(q, "paginated"), 0) < 0) {
        g2_ans_err(q, 400, "InvalidQueryParameterValue", "%s", G2_MSG_BADQ);
        return;
    }
    size_t page = q->g->delete_page;
    const char *cont = g2_param(q, "continuation");
    if (page > 0 && cont && *cont) {
        /* Paging on: a continuation must be the one this path's earlier round gave out. */
        char *want = delete_token(q);
        bool match = want && strcmp(want, cont) == 0;
        free(want);
        if (!match) {
            g2_ans_err(q, 400, "InvalidQueryParameterValue", "%s", G2_MSG_BADQ);
            return;
        }
    }
    if (!g2_sas_allows(q, "d")) return;
    for (;;) {
        emu_node *n = g2_need_path(q);
        if (!n) return;
        if (!q->rel[0]) {
            g2_ans_err(q, 400, "InvalidUri", "The root directory of a filesystem cannot be deleted; delete the "
                                             "filesystem instead.");
            return;
        }
        if (n->type == EMU_DIR && n->nchildren > 0 && rec != 1) {
            g2_ans_err(q, 409, "DirectoryNotEmpty",
                       "The recursive query parameter value must be true to delete a non-empty directory.");
            return;
        }
        if (g2_lease_write_fail(q, n)) return;
        int c = g2_eval_conditions(q, n, "", false);
        if (g2_cond_fail(q, n, c == 409 ? 412 : c)) return;
        if (g2_subtree_busy(n)) {
            emu_store_wait(s);
            continue;
        }
        if (page > 0 && n->type == EMU_DIR) {
            delete_round(q, n, page);
            return;
        }
        if (emu_store_remove(s, n)) {
            g2_ans_err(q, 500, "InternalError", "The path could not be deleted.");
            return;
        }
        g2_ans_empty(q, 200);
        return;
    }
}

/* x-ms-lease-duration of an acquire: -1 (infinite) or 15..60 seconds. */
static int lease_duration(const char *v, int32_t *secs)
{
    int64_t d;
    if (!v || g2_parse_i64(v, &d)) return -1;
    if (d != -1 && (d < 15 || d > 60)) return -1;
    *secs = (int32_t)d;
    return 0;
}

/* When a lease of secs seconds taken or renewed at now ends; 0 = never (infinite). */
static int64_t lease_end(int32_t secs, int64_t now)
{
    return secs > 0 ? now + (int64_t)secs * 1000 : 0;
}

static bool guid_ok(const char *v)
{
    if (strlen(v) != 36) return false;
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (v[i] != '-') return false;
        } else if (!isxdigit((unsigned char)v[i])) {
            return false;
        }
    }
    return true;
}

void g2_op_lease(g2_req *q)
{
    const char *act = g2_hdr_ne(q, "x-ms-lease-action"), *id = g2_hdr_ne(q, "x-ms-lease-id");
    const char *prop = g2_hdr_ne(q, "x-ms-proposed-lease-id");
    int64_t now = emu_now_ms();
    int32_t dur = 0;
    int status = 200;
    if (prop && !guid_ok(prop)) {
        g2_ans_err(q, 400, "InvalidHeaderValue", "%s", G2_MSG_BADHDR);
        return;
    }
    if (!g2_sas_allows(q, "w")) return;
    bool acquire = strcasecmp(act, "acquire") == 0, renew = strcasecmp(act, "renew") == 0;
    bool change = strcasecmp(act, "change") == 0, release = strcasecmp(act, "release") == 0;
    bool brk = strcasecmp(act, "break") == 0;
    if (!acquire && !renew && !change && !release && !brk) {
        g2_ans_err(q, 400, "InvalidHeaderValue", "%s", G2_MSG_BADHDR);
        return;
    }
    if (acquire && lease_duration(g2_hdr_ne(q, "x-ms-lease-duration"), &dur)) {
        g2_ans_err(q, 400, "InvalidHeaderValue", "%s", G2_MSG_BADHDR);
        return;
    }
    if ((renew || change || release) && !id) {
        g2_ans_err(q, 400, "MissingRequiredHeader", "%s", G2_MSG_NOHDR);
        return;
    }
    if (change && !prop) {
        g2_ans_err(q, 400, "MissingRequiredHeader", "%s", G2_MSG_NOHDR);
        return;
    }
    emu_node *n = g2_need_path(q);
    if (!n) return;
    int c = g2_eval_conditions(q, n, "", false);
    if (g2_cond_fail(q, n, c == 409 ? 412 : c)) return;
    const char *st = g2_lease_state(n, now);
    bool same = id && n->lease_id[0] && strcasecmp(id, n->lease_id) == 0;
    if (acquire) {
        if (strcmp(st, "breaking") == 0) {
            g2_ans_err(q, 409, "LeaseIsBreakingAndCannotBeAcquired", "There is already a breaking lease.");
            return;
        }
        if (strcmp(st, "leased") == 0 && !(prop && strcasecmp(prop, n->lease_id) == 0)) {
            g2_ans_err(q, 409, "LeaseAlreadyPresent", "There is already a lease present.");
            return;
        }
        if (prop) snprintf(n->lease_id, sizeof n->lease_id, "%s", prop);
        else g2_random_uuid(n->lease_id);
        n->lease_duration_s = dur;
        n->lease_expiry_ms = lease_end(dur, now);
        n->lease_break_ms = 0;
        status = 201;
    } else if (renew) {
        if (!same) {
            g2_ans_err(q, 409, "LeaseIdMismatchWithLeaseOperation",
                       "The lease ID specified did not match the lease ID for the resource with the specified lease "
                       "operation.");
            return;
        }
        if (strcmp(st, "broken") == 0 || strcmp(st, "breaking") == 0) {
            g2_ans_err(q, 409, "LeaseIsBrokenAndCannotBeRenewed", "The lease ID matched, but the lease has been broken "
                                                                  "explicitly and cannot be renewed.");
            return;
        }
        /* A lease renews for the duration it was acquired with (renew takes no x-ms-lease-duration).
         * A fixed lease recorded before the store kept durations (0) renews for the longest, 60 s. */
        if (n->lease_duration_s != 0)
            n->lease_expiry_ms = lease_end(n->lease_duration_s, now);
        else if (n->lease_expiry_ms)
            n->lease_expiry_ms = now + 60000;
    } else if (change) {
        if (!same && !(n->lease_id[0] && strcasecmp(prop, n->lease_id) == 0)) {
            g2_ans_err(q, 409, "LeaseIdMismatchWithLeaseOperation",
                       "The lease ID specified did not match the lease ID for the resource with the specified lease "
                       "operation.");
            return;
        }
        if (strcmp(st, "breaking") == 0 || strcmp(st, "broken") == 0 || strcmp(st, "expired") == 0) {
            g2_ans_err(q, 409, "LeaseIsBreakingAndCannotBeChanged", "The lease ID matched, but the lease is currently "
                                                                    "in breaking state and cannot be changed.");
            return;
        }
        snprintf(n->lease_id, sizeof n->lease_id, "%s", prop);
    } else if (release) {
        if (!same) {
            g2_ans_err(q, 409,
                       n->lease_id[0] ? "LeaseIdMismatchWithLeaseOperation" : "LeaseNotPresentWithLeaseOperation",
                       "The lease ID specified did not match the lease ID for the resource with the specified lease "
                       "operation.");
            return;
        }
        n->lease_id[0] = 0;
        n->lease_expiry_ms = n->lease_break_ms = 0;
        n->lease_duration_s = 0;
    } else {
        int64_t period = -1;
        const char *bp = g2_hdr_ne(q, "x-ms-lease-break-period");
        if (bp && (g2_parse_i64(bp, &period) || period < 0 || period > 60)) {
            g2_ans_err(q, 400, "InvalidHeaderValue", "%s", G2_MSG_BADHDR);
            return;
        }
        if (strcmp(st, "available") == 0 || strcmp(st, "expired") == 0) {
            g2_ans_err(q, 409, "LeaseNotPresentWithLeaseOperation", "There is currently no lease on the resource.");
            return;
        }
        if (g2_lease_active(n, now)) {
            /* Breaking ends at the earlier of the break period and what the lease had left; an
             * infinite lease without a period breaks at once. */
            int64_t at = n->lease_break_ms ? n->lease_break_ms : n->lease_expiry_ms ? n->lease_expiry_ms : INT64_MAX;
            if (period >= 0 && now + period * 1000 < at) at = now + period * 1000;
            if (at == INT64_MAX) at = now;
            n->lease_break_ms = at > now ? at : now;
        }
        char t[24];
        int64_t rem = n->lease_break_ms > now ? (n->lease_break_ms - now + 999) / 1000 : 0;
        snprintf(t, sizeof t, "%" PRId64, rem);
        emu_resp_header(q->r, "x-ms-lease-time", t);
        status = 202;
    }
    if (emu_store_save(q->g->s, n)) {
        g2_ans_err(q, 500, "InternalError", "The lease could not be recorded.");
        return;
    }
    g2_hdr_node_common(q, n);
    if (!brk && n->lease_id[0]) emu_resp_header(q->r, "x-ms-lease-id", n->lease_id);
    g2_ans_empty(q, status);
}

void g2_op_expiry(g2_req *q)
{
    const char *opt = g2_hdr_ne(q, "x-ms-expiry-option"), *tv = g2_hdr_ne(q, "x-ms-expiry-time");
    if (!opt) {
        g2_ans_err(q, 400, "MissingRequiredHeader", "%s", G2_MSG_NOHDR);
        return;
    }
    bool never = strcasecmp(opt, "NeverExpire") == 0, abs = strcasecmp(opt, "Absolute") == 0;
    bool rel_now = strcasecmp(opt, "RelativeToNow") == 0, rel_create = strcasecmp(opt, "RelativeToCreation") == 0;
    int64_t v = 0;
    if (!never && !abs && !rel_now && !rel_create) {
        g2_ans_err(q, 400, "InvalidHeaderValue", "%s", G2_MSG_BADHDR);
        return;
    }
    if (!never && (!tv || (abs ? g2_parse_rfc1123(tv, &v) : (g2_parse_i64(tv, &v) || v < 0)))) {
        g2_ans_err(q, 400, tv ? "InvalidHeaderValue" : "MissingRequiredHeader", "%s",
                   tv ? G2_MSG_BADHDR : G2_MSG_NOHDR);
        return;
    }
    if (!g2_sas_allows(q, "w")) return;
    emu_node *n = g2_need_path(q);
    if (!n) return;
    if (n->type != EMU_FILE) {
        g2_ans_err(q, 400, "InvalidInput", "One of the request inputs is not valid: expiry can only be set on files.");
        return;
    }
    if (g2_lease_write_fail(q, n)) return;
    n->expiry_ms = never ? 0 : abs ? v * 1000 : rel_now ? emu_now_ms() + v : n->ctime_ms + v;
    if (!never && n->expiry_ms <= 0) n->expiry_ms = 1;
    g2_expiry_note(q->g, n->expiry_ms);
    g2_save_or_fail(q, n);
    if (q->ans) return;
    g2_hdr_node_common(q, n);
    g2_ans_empty(q, 200);
}
