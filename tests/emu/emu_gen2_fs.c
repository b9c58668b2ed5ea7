/*
 * emu_gen2_fs: the Gen2 account and filesystem calls: list filesystems (DFS JSON and the Blob
 * List Containers XML), filesystem create, get/set properties and delete (in both the DFS and the
 * Blob container form), and list paths (protocols.md §2.5), a GET on the filesystem that walks the
 * tree in byte order with an opaque continuation naming the last entry returned. Each runs under
 * the store lock and prepares the request's answer.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "acl.h"
#include "b64.h"
#include "emu_gen2_int.h"

#define G2_LIST_MAX 5000
#define FILETIME_EPOCH_MS INT64_C(11644473600000)

/* ================================================================ filesystems */

void g2_op_fs_create(g2_req *q)
{
    emu_store *s = q->g->s;
    const char *props = q->xml ? NULL : g2_hdr(q, "x-ms-properties");
    if (props && !g2_properties_ok(props)) {
        g2_ans_err(q, 400, "InvalidHeaderValue", "%s", G2_MSG_BADHDR);
        return;
    }
    if (!g2_sas_allows(q, "cw")) return;
    emu_node *root = emu_store_root(s);
    if (emu_store_child(root, q->fs)) {
        if (q->xml)
            g2_ans_err(q, 409, "ContainerAlreadyExists", "The specified container already exists.");
        else
            g2_ans_err(q, 409, "FilesystemAlreadyExists", "The specified filesystem already exists.");
        return;
    }
    emu_meta *tmpl = calloc(1, sizeof *tmpl);
    if (!tmpl) {
        g2_ans_err(q, 500, "InternalError", "Out of memory.");
        return;
    }
    tmpl->acl.mode = 0750;
    snprintf(tmpl->owner, sizeof tmpl->owner, "%s", q->caller.principal);
    snprintf(tmpl->group, sizeof tmpl->group, "%s", q->caller.principal);
    emu_node *n = NULL;
    int rc = emu_store_create(s, root, q->fs, EMU_DIR, tmpl, &n);
    free(tmpl);
    if (rc) {
        g2_ans_err(q, 500, "InternalError", "The filesystem could not be created.");
        return;
    }
    if (props && *props) {
        if (g2_set_properties(n, props) || emu_store_save(s, n)) {
            g2_ans_err(q, 500, "InternalError", "The filesystem properties could not be written.");
            return;
        }
    }
    g2_hdr_node_common(q, n);
    if (!q->xml) emu_resp_header(q->r, "x-ms-namespace-enabled", "true");
    g2_ans_empty(q, 201);
}

void g2_op_fs_props(g2_req *q)
{
    if (!g2_sas_allows(q, "r")) return;
    emu_node *n = g2_need_fs(q);
    if (!n) return;
    g2_hdr_node_common(q, n);
    emu_resp_header(q->r, "x-ms-namespace-enabled", "true");
    if (q->xml) {
        emu_resp_header(q->r, "x-ms-lease-status", "unlocked");
        emu_resp_header(q->r, "x-ms-lease-state", "available");
        emu_resp_header(q->r, "x-ms-has-immutability-policy", "false");
        emu_resp_header(q->r, "x-ms-has-legal-hold", "false");
        emu_resp_header(q->r, "x-ms-default-encryption-scope", "$account-encryption-key");
        emu_resp_header(q->r, "x-ms-deny-encryption-scope-override", "false");
    } else if (n->properties) {
        emu_resp_header(q->r, "x-ms-properties", n->properties);
    }
    g2_ans_empty(q, 200);
}

void g2_op_fs_setprops(g2_req *q)
{
    const char *props = g2_hdr(q, "x-ms-properties");
    if (props && !g2_properties_ok(props)) {
        g2_ans_err(q, 400, "InvalidHeaderValue", "%s", G2_MSG_BADHDR);
        return;
    }
    if (!g2_sas_allows(q, "w")) return;
    emu_node *n = g2_need_fs(q);
    if (!n) return;
    int c = g2_eval_conditions(q, n, "", false);
    if (c) {
        g2_ans_err(q, 412, "ConditionNotMet", "%s", G2_MSG_COND);
        return;
    }
    if (g2_set_properties(n, props)) {
        g2_ans_err(q, 500, "InternalError", "Out of memory.");
        return;
    }
    n->mtime_ms = emu_now_ms();
    emu_store_bump_etag(q->g->s, n);
    g2_save_or_fail(q, n);
    if (q->ans) return;
    g2_hdr_node_common(q, n);
    g2_ans_empty(q, 200);
}

void g2_op_fs_delete(g2_req *q)
{
    if (!g2_sas_allows(q, "d")) return;
    emu_store *s = q->g->s;
    emu_node *n;
    for (;;) {
        n = g2_need_fs(q);
        if (!n) return;
        if (!g2_subtree_busy(n)) break;
        emu_store_wait(s);
    }
    int c = g2_eval_conditions(q, n, "", false);
    if (c) {
        g2_ans_err(q, 412, "ConditionNotMet", "%s", G2_MSG_COND);
        return;
    }
    if (emu_store_remove(s, n)) {
        g2_ans_err(q, 500, "InternalError", "The filesystem could not be deleted.");
        return;
    }
    g2_ans_empty(q, 202);
}

static bool fs_listed(const emu_node *n)
{
    return n->type == EMU_DIR && g2_fs_name_ok(n->name);
}

void g2_op_list_fs(g2_req *q)
{
    if (!g2_sas_allows(q, "l")) return;
    emu_node *root = emu_store_root(q->g->s);
    const char *prefix = g2_param(q, "prefix");
    const char *marker = g2_param(q, q->xml ? "marker" : "continuation");
    const char *mr = g2_param(q, q->xml ? "maxresults" : "maxResults");
    const char *include = g2_param(q, "include");
    bool with_meta = include && strstr(include, "metadata");
    int64_t max = G2_LIST_MAX;
    if (mr && (g2_parse_i64(mr, &max) || max < 1)) {
        g2_ans_err(q, 400, "InvalidQueryParameterValue", "%s", G2_MSG_BADQ);
        return;
    }
    if (max > G2_LIST_MAX) max = G2_LIST_MAX;
    if (!prefix) prefix = "";
    size_t i = marker && *marker ? emu_store_child_after(root, marker) : 0;
    /* A marker names the next entry to return, so step back onto it when it still exists. */
    if (marker && *marker && i > 0 && strcmp(root->children[i - 1]->name, marker) == 0) i--;
    dbuf *b = &q->body;
    dbuf_reset(b);
    int rc = 0;
    json_t *arr = q->xml ? NULL : json_array();
    if (q->xml) {
        rc = dbuf_printf(b, "\xEF\xBB\xBF<?xml version=\"1.0\" encoding=\"utf-8\"?><EnumerationResults "
                            "ServiceEndpoint=\"%s/%s/\">", emu_req_base_url(q->r), q->g->key.account);
        if (!rc && *prefix) {
            rc = dbuf_adds(b, "<Prefix>");
            g2_xml_escape(b, prefix, &rc);
            if (!rc) rc = dbuf_adds(b, "</Prefix>");
        }
        if (!rc && mr) rc = dbuf_printf(b, "<MaxResults>%" PRId64 "</MaxResults>", max);
        if (!rc) rc = dbuf_adds(b, "<Containers>");
    }
    int64_t count = 0;
    const char *next = NULL;
    for (; i < root->nchildren && !rc; i++) {
        emu_node *c = root->children[i];
        if (!fs_listed(c) || strncmp(c->name, prefix, strlen(prefix)) != 0) continue;
        if (count == max) {
            next = c->name;
            break;
        }
        count++;
        char etag[24], lm[40];
        g2_fmt_rfc1123(c->mtime_ms, lm);
        if (q->xml) {
            g2_fmt_etag(c, etag, true);
            rc = dbuf_printf(b,
                             "<Container><Name>%s</Name><Properties><Last-Modified>%s</Last-Modified><Etag>%s</Etag>"
                             "<LeaseStatus>unlocked</LeaseStatus><LeaseState>available</LeaseState>"
                             "<DefaultEncryptionScope>$account-encryption-key</DefaultEncryptionScope>"
                             "<DenyEncryptionScopeOverride>false</DenyEncryptionScopeOverride>"
                             "<HasImmutabilityPolicy>false</HasImmutabilityPolicy><HasLegalHold>false</HasLegalHold>"
                             "</Properties>%s</Container>",
                             c->name, lm, etag, with_meta ? "<Metadata />" : "");
        } else {
            g2_fmt_etag(c, etag, false);
            json_t *o = json_pack("{s:s,s:s,s:s}", "etag", etag, "lastModified", lm, "name", c->name);
            if (!o || json_array_append_new(arr, o)) rc = -ENOMEM;
        }
    }
    if (q->xml) {
        if (!rc) rc = next ? dbuf_printf(b, "</Containers><NextMarker>%s</NextMarker></EnumerationResults>", next)
                           : dbuf_adds(b, "</Containers><NextMarker /></EnumerationResults>");
        if (rc) {
            g2_ans_err(q, 500, "InternalError", "The listing could not be built.");
            return;
        }
        q->ans = G2_ANS_BODY;
        q->status = 200;
        q->ctype = "application/xml";
        return;
    }
    json_t *top = rc ? NULL : json_pack("{s:o}", "filesystems", arr);
    if (!top) json_decref(arr);
    char *text = top ? json_dumps(top, JSON_COMPACT) : NULL;
    json_decref(top);
    if (!text) {
        g2_ans_err(q, 500, "InternalError", "The listing could not be built.");
        return;
    }
    if (next) emu_resp_header(q->r, "x-ms-continuation", next);
    g2_ans_text(q, 200, "application/json;charset=utf-8", text);
    free(text);
}

/* ================================================================ list paths (§2.5) */

typedef struct lister {
    g2_req *q;
    json_t *arr;
    int64_t left;
    bool recursive, more, oom;
    dbuf path;              /* path of the node being visited, relative to the filesystem */
    char *last;             /* path of the last entry emitted */
} lister;

static void list_emit(lister *L, const emu_node *n)
{
    char etag[24], lm[40], perm[12], len[24], ct[24], exp[24];
    g2_fmt_etag(n, etag, false);
    g2_fmt_rfc1123(n->mtime_ms, lm);
    acl_mode_symbolic(n->mode, emu_node_has_acl(n), perm);
    snprintf(len, sizeof len, "%" PRId64, n->type == EMU_FILE ? n->length : 0);
    snprintf(ct, sizeof ct, "%" PRId64, (n->ctime_ms + FILETIME_EPOCH_MS) * 10000);
    if (n->expiry_ms) snprintf(exp, sizeof exp, "%" PRId64, (n->expiry_ms + FILETIME_EPOCH_MS) * 10000);
    else snprintf(exp, sizeof exp, "0");
    json_t *o = json_object();
    if (!o) {
        L->oom = true;
        return;
    }
    json_object_set_new(o, "contentLength", json_string(len));
    json_object_set_new(o, "creationTime", json_string(ct));
    json_object_set_new(o, "etag", json_string(etag));
    json_object_set_new(o, "expiryTime", json_string(exp));
    json_object_set_new(o, "group", json_string(n->group));
    if (n->type == EMU_DIR) json_object_set_new(o, "isDirectory", json_string("true"));
    json_object_set_new(o, "lastModified", json_string(lm));
    json_object_set_new(o, "name", json_stringn(L->path.data ? L->path.data : "", L->path.len));
    json_object_set_new(o, "owner", json_string(n->owner));
    json_object_set_new(o, "permissions", json_string(perm));
    if (json_array_append_new(L->arr, o)) L->oom = true;
    free(L->last);
    L->last = strndup(L->path.data ? L->path.data : "", L->path.len);
    if (!L->last) L->oom = true;
}

static bool path_push(lister *L, const char *name, size_t *keep)
{
    *keep = L->path.len;
    int rc = L->path.len ? dbuf_add(&L->path, "/", 1) : 0;
    if (!rc) rc = dbuf_adds(&L->path, name);
    if (rc) L->oom = true;
    return rc == 0;
}

static void path_pop(lister *L, size_t keep)
{
    L->path.len = keep;
    if (L->path.data) L->path.data[keep] = 0;
}

/* Pre-order walk over dir's subtree with children in byte order (the order of component tuples),
 * emitting entries after the position named by after[0..nafter). */
static void list_walk(lister *L, const emu_node *dir, char **after, int nafter)
{
    int64_t now = emu_now_ms();
    size_t i = 0, keep;
    if (nafter > 0) {
        const emu_node *c = emu_store_child(dir, after[0]);
        if (c && c->type == EMU_DIR && L->recursive) {
            if (!path_push(L, c->name, &keep)) return;
            list_walk(L, c, after + 1, nafter - 1);
            path_pop(L, keep);
            if (L->more || L->oom) return;
        }
        i = emu_store_child_after(dir, after[0]);
    }
    for (; i < dir->nchildren; i++) {
        const emu_node *c = dir->children[i];
        if (g2_is_expired(c, now)) continue;
        if (L->left == 0) {
            L->more = true;
            return;
        }
        if (!path_push(L, c->name, &keep)) return;
        list_emit(L, c);
        L->left--;
        if (L->recursive && c->type == EMU_DIR && !L->oom) list_walk(L, c, NULL, 0);
        path_pop(L, keep);
        if (L->more || L->oom) return;
    }
}

void g2_op_list_paths(g2_req *q)
{
    const char *rec = g2_param(q, "recursive"), *dir = g2_param(q, "directory"), *mr = g2_param(q, "maxResults");
    const char *cont = g2_param(q, "continuation");
    int r = g2_parse_bool(rec, -2);
    int64_t max = G2_LIST_MAX;
    char *dirdup = NULL, *after = NULL;
    char *dsegs[G2_MAX_SEGS], *asegs[G2_MAX_SEGS];
    int nd = 0, na = 0;
    lister L = {.q = q};
    dbuf_init(&L.path, G2_MAX_PATH);
    if (r == -2) {
        g2_ans_err(q, 400, "MissingRequiredQueryParameter", "%s", G2_MSG_NOQ);
        goto out;
    }
    if (r < 0 || (mr && (g2_parse_i64(mr, &max) || max < 1)) || g2_parse_bool(g2_param(q, "upn"), 0) < 0) {
        g2_ans_err(q, 400, "InvalidQueryParameterValue", "%s", G2_MSG_BADQ);
        goto out;
    }
    if (max > G2_LIST_MAX) max = G2_LIST_MAX;
    dirdup = strdup(dir ? dir : "");
    if (!dirdup || (nd = g2_split_path(dirdup, dsegs, G2_MAX_SEGS)) < 0) {
        g2_ans_err(q, 400, "InvalidQueryParameterValue", "%s", G2_MSG_BADQ);
        goto out;
    }
    if (cont && *cont) {
        size_t cl = strlen(cont);
        after = malloc(cl + 1);
        long d = after ? b64_decode(cont, cl, (unsigned char *)after, cl) : -1;
        if (d >= 0) after[d] = 0;
        if (d < 5 || memcmp(after, "path:", 5) != 0 || memchr(after, 0, (size_t)d) ||
            (na = g2_split_path(after + 5, asegs, G2_MAX_SEGS)) <= nd) {
            g2_ans_err(q, 400, "InvalidQueryParameterValue", "%s", G2_MSG_BADQ);
            goto out;
        }
        for (int i = 0; i < nd; i++) {
            if (strcmp(asegs[i], dsegs[i]) != 0) {
                g2_ans_err(q, 400, "InvalidQueryParameterValue", "%s", G2_MSG_BADQ);
                goto out;
            }
        }
    }
    /* SAS: list needs 'l'; a directory SAS is checked against the directory parameter. */
    if (!g2_sas_allows(q, "l")) goto out;
    emu_node *base = g2_need_fs(q);
    if (!base) goto out;
    for (int i = 0; i < nd && base; i++) {
        base = emu_store_child(base, dsegs[i]);
        if (base && g2_is_expired(base, emu_now_ms())) base = NULL;
    }
    if (!base) {
        g2_ans_err(q, 404, "PathNotFound", "The specified path does not exist.");
        goto out;
    }
    L.arr = json_array();
    L.left = max;
    L.recursive = r == 1;
    for (int i = 0; i < nd && !L.oom; i++) {
        size_t keep;
        path_push(&L, dsegs[i], &keep);
    }
    if (L.oom || !L.arr) {
        g2_ans_err(q, 500, "InternalError", "Out of memory.");
        goto out;
    }
    if (base->type == EMU_FILE) {
        if (!after) list_emit(&L, base);
    } else {
        list_walk(&L, base, after ? asegs + nd : NULL, after ? na - nd : 0);
    }
    json_t *top = L.oom ? NULL : json_pack("{s:O}", "paths", L.arr);
    char *text = top ? json_dumps(top, JSON_COMPACT) : NULL;
    json_decref(top);
    if (!text) {
        g2_ans_err(q, 500, "InternalError", "The listing could not be built.");
        goto out;
    }
    if (L.more && L.last) {
        dbuf raw;
        dbuf_init(&raw, G2_MAX_PATH + 8);
        size_t ll = strlen(L.last);
        char *enc = malloc(b64_encoded_size(ll + 5));
        if (enc && dbuf_printf(&raw, "path:%s", L.last) == 0) {
            b64_encode((const unsigned char *)raw.data, raw.len, enc);
            emu_resp_header(q->r, "x-ms-continuation", enc);
        }
        free(enc);
        dbuf_free(&raw);
    }
    g2_ans_text(q, 200, "application/json;charset=utf-8", text);
    free(text);
out:
    json_decref(L.arr);
    free(L.last);
    dbuf_free(&L.path);
    free(dirdup);
    free(after);
}
