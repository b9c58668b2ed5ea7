/*
 * acl: the HDFS/POSIX ACL model (see acl.h for the storage model). Everything works on fixed-size
 * acl_list values on the stack (at most a few lists, about 17 KB each, per call), so there is no
 * allocation and no failure path other than invalid input. The transformations follow the rules
 * of HDFS's AclTransformation: build the full logical ACL of the node (acl_full), apply the
 * operation per scope (access, default) while tracking which scopes and masks the spec touched,
 * fill missing default base entries from the access entries, recompute or keep the masks, sort
 * and validate, and only then store the result back into the node's mode word and extended list
 * (as HDFS AclStorage does, with the access mask kept in the group bits of the mode).
 */
#include "acl.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Per scope (access, default), as both ADLS Gen1 and Gen2 document: 32 entries incl. base ones. */
#define ACL_MAX_SCOPE_ENTRIES 32
#define ACL_MODE_MASK 01777
#define ACL_STICKY 01000

static const char *const acl_type_names[] = {"user", "group", "mask", "other"};
static const char *const acl_perm_syms[] = {"---", "--x", "-w-", "-wx", "r--", "r-x", "rw-", "rwx"};

__attribute__((format(printf, 2, 3))) static int acl_fail(acl_err *err, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* ---- entries and lists ------------------------------------------------------------------------ */

static void entry_make(acl_entry *e, bool is_default, acl_type type, const char *name, int perm)
{
    memset(e, 0, sizeof *e);
    e->is_default = is_default;
    e->type = type;
    e->perm = perm;
    if (name) {
        size_t len = strnlen(name, ACL_MAX_NAME - 1);
        memcpy(e->name, name, len);
        e->name[len] = '\0';
    }
}

/* The canonical order: access before default; user, group, mask, other; unnamed before named,
 * names in byte order (HDFS sorts names naturally with the unnamed entry first). */
static int entry_cmp(const void *pa, const void *pb)
{
    const acl_entry *a = pa, *b = pb;
    if (a->is_default != b->is_default) return a->is_default ? 1 : -1;
    if (a->type != b->type) return a->type < b->type ? -1 : 1;
    return strcmp(a->name, b->name);
}

static bool entry_same_key(const acl_entry *a, bool is_default, acl_type type, const char *name)
{
    return a->is_default == is_default && a->type == type && strcmp(a->name, name) == 0;
}

static int list_find(const acl_list *l, bool is_default, acl_type type, const char *name)
{
    for (int i = 0; i < l->n; i++)
        if (entry_same_key(&l->e[i], is_default, type, name)) return i;
    return -1;
}

static int list_add(acl_list *l, const acl_entry *e)
{
    if (l->n >= ACL_MAX_ENTRIES) return -1;
    l->e[l->n++] = *e;
    return 0;
}

static void list_sort(acl_list *l)
{
    qsort(l->e, (size_t)l->n, sizeof l->e[0], entry_cmp);
}

/* "default:user:alice:rwx", or without the permission when perm < 0. */
static void entry_to_str(const acl_entry *e, char *buf, size_t size)
{
    char perm[4];
    acl_perm_str(e->perm, perm);
    snprintf(buf, size, "%s%s:%s%s%s", e->is_default ? "default:" : "", acl_type_names[e->type], e->name,
             e->perm >= 0 ? ":" : "", e->perm >= 0 ? perm : "");
}

/* ---- parsing and formatting -------------------------------------------------------------------- */

void acl_perm_str(int perm, char out[4])
{
    memcpy(out, acl_perm_syms[perm >= 0 && perm <= 7 ? perm : 0], 4);
}

static int perm_from_sym(const char *s, size_t len)
{
    if (len != 3) return -1;
    for (int p = 0; p < 8; p++)
        if (memcmp(s, acl_perm_syms[p], 3) == 0) return p;
    return -1;
}

static bool span_is(const char *s, size_t len, const char *word)
{
    return strlen(word) == len && strncasecmp(s, word, len) == 0;
}

#define ACL_MAX_FIELDS 5

/* Parse one entry [s, s+len) (no commas). HDFS AclEntry.parseAclEntry rules: optional "default"
 * scope, a type (case-insensitive), an optional name, then the permission. */
static int parse_entry(const char *s, size_t len, bool with_perm, acl_entry *e, acl_err *err)
{
    const char *f[ACL_MAX_FIELDS];
    size_t fl[ACL_MAX_FIELDS];
    int nf = 0;
    const char *p = s, *end = s + len;
    int shown = len > 120 ? 120 : (int)len; /* keep the message bounded */

    for (;;) {
        const char *c = memchr(p, ':', (size_t)(end - p));
        if (nf == ACL_MAX_FIELDS) return acl_fail(err, "Invalid <aclSpec> : %.*s", shown, s);
        f[nf] = p;
        fl[nf] = (size_t)((c ? c : end) - p);
        nf++;
        if (!c) break;
        p = c + 1;
    }
    int i = 0;
    bool is_default = false;
    if (fl[0] == 7 && memcmp(f[0], "default", 7) == 0) {
        is_default = true;
        i++;
    }
    if (i >= nf) return acl_fail(err, "Invalid <aclSpec> : %.*s", shown, s);
    int type = -1;
    for (int t = 0; t < 4; t++)
        if (span_is(f[i], fl[i], acl_type_names[t])) type = t;
    if (type < 0) return acl_fail(err, "Invalid type of acl in <aclSpec> :%.*s", shown, s);
    i++;
    const char *name = "";
    size_t name_len = 0;
    if (i < nf) {
        name = f[i];
        name_len = fl[i];
        i++;
    }
    if (name_len >= ACL_MAX_NAME)
        return acl_fail(err, "Invalid <aclSpec> : name longer than %d bytes", ACL_MAX_NAME - 1);
    for (size_t k = 0; k < name_len; k++) {
        unsigned char ch = (unsigned char)name[k];
        if (ch < 0x20 || ch == 0x7f)
            return acl_fail(err, "Invalid <aclSpec> : control character in a name");
    }
    if (name_len > 0 && (type == ACL_MASK || type == ACL_OTHER))
        return acl_fail(err, "Invalid ACL: this entry type must not have a name: %.*s.", shown, s);
    int perm = -1;
    if (i < nf) {
        perm = perm_from_sym(f[i], fl[i]);
        /* A removal spec may carry a permission (ignored); an empty one is tolerated too. */
        if (perm < 0 && (with_perm || fl[i] != 0))
            return acl_fail(err, "Invalid permission in <aclSpec> : %.*s", shown, s);
        i++;
        if (!with_perm) perm = -1;
    } else if (with_perm) {
        return acl_fail(err, "Invalid <aclSpec> : %.*s", shown, s);
    }
    if (i < nf) return acl_fail(err, "Invalid <aclSpec> : %.*s", shown, s);

    memset(e, 0, sizeof *e);
    e->is_default = is_default;
    e->type = (acl_type)type;
    e->perm = perm;
    memcpy(e->name, name, name_len);
    e->name[name_len] = '\0';
    return 0;
}

int acl_parse(const char *spec, bool with_perm, acl_list *out, acl_err *err)
{
    out->n = 0;
    if (!spec || !*spec) return acl_fail(err, "Invalid <aclSpec> : empty ACL spec");
    const char *p = spec;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        acl_entry e = {0};
        if (len == 0) {
            out->n = 0;
            return acl_fail(err, "Invalid <aclSpec> : empty entry");
        }
        if (out->n >= ACL_MAX_ENTRIES) {
            out->n = 0;
            return acl_fail(err, "Invalid ACL: ACL spec has more than %d entries", ACL_MAX_ENTRIES);
        }
        if (parse_entry(p, len, with_perm, &e, err) != 0) {
            out->n = 0;
            return -1;
        }
        if (list_find(out, e.is_default, e.type, e.name) >= 0) {
            out->n = 0;
            return acl_fail(err, "Invalid ACL: multiple entries with same scope, type and name.");
        }
        out->e[out->n++] = e;
        if (!comma) break;
        p = comma + 1;
    }
    return 0;
}

int acl_format(const acl_list *list, dbuf *out)
{
    char buf[ACL_MAX_NAME + 32];
    for (int i = 0; i < list->n; i++) {
        entry_to_str(&list->e[i], buf, sizeof buf);
        int rc = dbuf_adds(out, i ? "," : "");
        if (rc == 0) rc = dbuf_adds(out, buf);
        if (rc != 0) return rc;
    }
    return 0;
}

/* ---- permission words -------------------------------------------------------------------------- */

static bool all_octal(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] < '0' || s[i] > '7') return false;
    return true;
}

static uint16_t octal_value(const char *s, size_t len)
{
    unsigned v = 0;
    for (size_t i = 0; i < len; i++) v = v * 8 + (unsigned)(s[i] - '0');
    return (uint16_t)v;
}

int acl_parse_octal(const char *s, uint16_t *mode, acl_err *err)
{
    size_t len = s ? strnlen(s, 5) : 0;
    if (len < 1 || len > 4 || !all_octal(s, len))
        return acl_fail(err, "Invalid permission: expected 1 to 4 octal digits");
    uint16_t v = octal_value(s, len);
    if (v > ACL_MODE_MASK) return acl_fail(err, "Invalid permission: %o is larger than 1777", v);
    *mode = v;
    return 0;
}

int acl_parse_perm_any(const char *s, uint16_t *mode, acl_err *err)
{
    size_t len = s ? strnlen(s, 10) : 0;
    if (len == 4 && all_octal(s, 4)) {
        uint16_t v = octal_value(s, 4);
        if (v > ACL_MODE_MASK) return acl_fail(err, "Invalid permission: %o is larger than 1777", v);
        *mode = v;
        return 0;
    }
    if (len != 9) return acl_fail(err, "Invalid permission: expected 4 octal digits or 9 rwx characters");
    static const char bits[3] = {'r', 'w', 'x'};
    uint16_t v = 0;
    for (int i = 0; i < 9; i++) {
        char c = s[i];
        v = (uint16_t)(v << 1);
        if (i == 8 && (c == 't' || c == 'T')) {
            v |= ACL_STICKY | (c == 't' ? 1 : 0);
        } else if (c == bits[i % 3]) {
            v |= 1;
        } else if (c != '-') {
            return acl_fail(err, "Invalid permission: unexpected character in symbolic form");
        }
    }
    *mode = v;
    return 0;
}

void acl_mode_octal(uint16_t mode, char out[8])
{
    snprintf(out, 8, "%o", (unsigned)(mode & ACL_MODE_MASK));
}

void acl_mode_symbolic(uint16_t mode, bool has_acl, char out[12])
{
    static const char bits[3] = {'r', 'w', 'x'};
    for (int i = 0; i < 9; i++) out[i] = (mode & (0400 >> i)) ? bits[i % 3] : '-';
    if (mode & ACL_STICKY) out[8] = (mode & 1) ? 't' : 'T';
    int n = 9;
    if (has_acl) out[n++] = '+';
    out[n] = '\0';
}

/* ---- the node: reading ------------------------------------------------------------------------- */

/* An access ACL exists when ext holds an access user/group entry (group:: or a named one). */
static bool has_access_acl(const acl_node *n)
{
    for (int i = 0; i < n->ext.n; i++) {
        const acl_entry *e = &n->ext.e[i];
        if (!e->is_default && (e->type == ACL_USER || e->type == ACL_GROUP)) return true;
    }
    return false;
}

bool acl_has_extended(const acl_node *n)
{
    return n->ext.n > 0;
}

void acl_full(const acl_node *n, acl_list *out)
{
    acl_entry e;
    out->n = 0;
    entry_make(&e, false, ACL_USER, "", (n->mode >> 6) & 7);
    list_add(out, &e);
    if (has_access_acl(n)) {
        for (int i = 0; i < n->ext.n; i++) {
            const acl_entry *x = &n->ext.e[i];
            if (x->is_default || (x->type != ACL_USER && x->type != ACL_GROUP)) continue;
            if (x->type == ACL_USER && !x->name[0]) continue;
            list_add(out, x);
        }
        /* The owning group's entry should always be there; never emit an ACL without one. */
        if (list_find(out, false, ACL_GROUP, "") < 0) {
            entry_make(&e, false, ACL_GROUP, "", (n->mode >> 3) & 7);
            list_add(out, &e);
        }
        entry_make(&e, false, ACL_MASK, "", (n->mode >> 3) & 7);
        list_add(out, &e);
    } else {
        entry_make(&e, false, ACL_GROUP, "", (n->mode >> 3) & 7);
        list_add(out, &e);
    }
    entry_make(&e, false, ACL_OTHER, "", n->mode & 7);
    list_add(out, &e);
    for (int i = 0; i < n->ext.n; i++)
        if (n->ext.e[i].is_default) list_add(out, &n->ext.e[i]);
    list_sort(out);
}

void acl_status_entries(const acl_node *n, acl_list *out)
{
    out->n = 0;
    for (int i = 0; i < n->ext.n; i++) {
        const acl_entry *e = &n->ext.e[i];
        if (!e->is_default && (e->type == ACL_MASK || e->type == ACL_OTHER)) continue;
        if (!e->is_default && e->type == ACL_USER && !e->name[0]) continue;
        list_add(out, e);
    }
    list_sort(out);
}

/* ---- the node: storing ------------------------------------------------------------------------- */

static int perm_of(const acl_list *l, bool is_default, acl_type type, int fallback)
{
    int i = list_find(l, is_default, type, "");
    return i >= 0 && l->e[i].perm >= 0 ? l->e[i].perm : fallback;
}

/* Store a full, sorted, validated ACL into n (AclStorage.updateINodeAcl): the owner, mask (or
 * group when the access ACL is minimal) and other permissions go to the mode word, keeping the
 * sticky bit; named entries, group:: and a mirror of the mask plus all defaults go to ext. */
static int store_full(acl_node *n, const acl_list *full, bool is_dir, acl_err *err)
{
    int access = 0, defaults = 0;
    for (int i = 0; i < full->n; i++) {
        if (full->e[i].is_default)
            defaults++;
        else
            access++;
    }
    if (defaults > 0 && !is_dir) return acl_fail(err, "Invalid ACL: only directories may have a default ACL.");
    int u = perm_of(full, false, ACL_USER, 0);
    int g = perm_of(full, false, ACL_GROUP, 0);
    int o = perm_of(full, false, ACL_OTHER, 0);
    acl_list ext;
    ext.n = 0;
    if (access > 3) {
        g = perm_of(full, false, ACL_MASK, g);
        for (int i = 0; i < full->n; i++) {
            const acl_entry *e = &full->e[i];
            if (e->is_default || e->type == ACL_OTHER || (e->type == ACL_USER && !e->name[0])) continue;
            list_add(&ext, e);
        }
        if (list_find(&ext, false, ACL_MASK, "") < 0) {
            acl_entry m;
            entry_make(&m, false, ACL_MASK, "", g);
            list_add(&ext, &m);
        }
    }
    for (int i = 0; i < full->n; i++)
        if (full->e[i].is_default) list_add(&ext, &full->e[i]);
    list_sort(&ext);
    n->mode = (uint16_t)((n->mode & ACL_STICKY) | (u << 6) | (g << 3) | o);
    n->ext = ext;
    return 0;
}

/* ---- transformations --------------------------------------------------------------------------- */

typedef enum { XF_REPLACE, XF_MERGE, XF_FILTER } xform_op;

/* Per-scope bookkeeping (index 0 access, 1 default), as in AclTransformation. */
typedef struct xf_state {
    bool mask_given[2]; /* a mask to keep or use was provided (by spec or existing ACL) */
    int mask_perm[2];
    bool mask_dirty[2]; /* the spec added, changed or removed the mask */
    bool scope_dirty[2]; /* the spec touched an entry of this scope */
} xf_state;

static int too_many(acl_err *err)
{
    return acl_fail(err, "Invalid ACL: ACL has more than %d entries.", ACL_MAX_ENTRIES);
}

/* Add each missing default user::/group::/other:: by copying the access entry's permission. */
static int copy_defaults_if_needed(acl_list *b, acl_err *err)
{
    bool any_default = false;
    for (int i = 0; i < b->n; i++) any_default = any_default || b->e[i].is_default;
    if (!any_default) return 0;
    static const acl_type base[3] = {ACL_USER, ACL_GROUP, ACL_OTHER};
    for (int t = 0; t < 3; t++) {
        if (list_find(b, true, base[t], "") >= 0) continue;
        int a = list_find(b, false, base[t], "");
        if (a < 0) continue;
        acl_entry e;
        entry_make(&e, true, base[t], "", b->e[a].perm);
        if (list_add(b, &e) != 0) return too_many(err);
    }
    return 0;
}

/* Mask per scope: an explicit/kept mask when valid, else the union of group:: and all named
 * entries when the scope has named entries; an error when the spec removed a required mask. */
static int calculate_masks(acl_list *b, const xf_state *st, acl_err *err)
{
    bool found[2] = {false, false}, needed[2] = {false, false};
    int uni[2] = {0, 0};
    for (int i = 0; i < b->n; i++) {
        const acl_entry *e = &b->e[i];
        int s = e->is_default ? 1 : 0;
        found[s] = true;
        if (e->type == ACL_GROUP || e->name[0]) uni[s] |= e->perm;
        if (e->name[0]) needed[s] = true;
    }
    for (int s = 0; s < 2; s++) {
        if (!found[s]) continue;
        int perm = -1;
        if (!st->mask_given[s] && needed[s] && st->mask_dirty[s])
            return acl_fail(err, "Invalid ACL: mask is required, but it was deleted.");
        if (st->mask_given[s] && (!st->scope_dirty[s] || st->mask_dirty[s]))
            perm = st->mask_perm[s];
        else if (needed[s])
            perm = uni[s];
        if (perm < 0) continue;
        acl_entry m;
        entry_make(&m, s == 1, ACL_MASK, "", perm);
        if (list_add(b, &m) != 0) return too_many(err);
    }
    return 0;
}

/* Sort and check the result (AclTransformation.buildAndValidateAcl). */
static int build_and_validate(acl_list *b, acl_err *err)
{
    int count[2] = {0, 0};
    list_sort(b);
    for (int i = 0; i < b->n; i++) {
        const acl_entry *e = &b->e[i];
        count[e->is_default ? 1 : 0]++;
        if (i > 0 && entry_cmp(&b->e[i - 1], e) == 0)
            return acl_fail(err, "Invalid ACL: multiple entries with same scope, type and name.");
        if (e->name[0] && (e->type == ACL_MASK || e->type == ACL_OTHER)) {
            char buf[ACL_MAX_NAME + 32];
            entry_to_str(e, buf, sizeof buf);
            return acl_fail(err, "Invalid ACL: this entry type must not have a name: %.150s.", buf);
        }
        if (e->perm < 0 || e->perm > 7) return acl_fail(err, "Invalid ACL: entry without a valid permission.");
    }
    for (int s = 0; s < 2; s++)
        if (count[s] > ACL_MAX_SCOPE_ENTRIES)
            return acl_fail(err, "Invalid ACL: ACL has %d entries, which exceeds maximum of %d.", count[s],
                            ACL_MAX_SCOPE_ENTRIES);
    static const acl_type base[3] = {ACL_USER, ACL_GROUP, ACL_OTHER};
    for (int t = 0; t < 3; t++) {
        if (list_find(b, false, base[t], "") < 0)
            return acl_fail(err, "Invalid ACL: the user, group and other entries are required.");
        if (count[1] > 0 && list_find(b, true, base[t], "") < 0)
            return acl_fail(err, "Invalid default ACL: the user, group and other entries are required.");
    }
    return 0;
}

/* Put an entry into the builder, or record it as the scope's mask. */
static int builder_take(acl_list *b, xf_state *st, const acl_entry *e, bool from_spec, acl_err *err)
{
    int s = e->is_default ? 1 : 0;
    if (e->type == ACL_MASK) {
        st->mask_given[s] = true;
        st->mask_perm[s] = e->perm;
        if (from_spec) st->mask_dirty[s] = true;
        return 0;
    }
    return list_add(b, e) == 0 ? 0 : too_many(err);
}

static int check_spec(const acl_list *spec, bool need_perm, acl_err *err)
{
    if (spec->n < 0 || spec->n > ACL_MAX_ENTRIES)
        return acl_fail(err, "Invalid ACL: ACL spec has more than %d entries", ACL_MAX_ENTRIES);
    for (int i = 0; i < spec->n; i++) {
        const acl_entry *e = &spec->e[i];
        if ((int)e->type < ACL_USER || (int)e->type > ACL_OTHER || memchr(e->name, '\0', ACL_MAX_NAME) == NULL)
            return acl_fail(err, "Invalid ACL: malformed entry");
        if (need_perm && (e->perm < 0 || e->perm > 7))
            return acl_fail(err, "Invalid ACL: entry without a valid permission.");
        if (list_find(spec, e->is_default, e->type, e->name) != i)
            return acl_fail(err, "Invalid ACL: multiple entries with same scope, type and name.");
    }
    return 0;
}

static int transform(acl_node *n, const acl_list *spec, xform_op op, bool is_dir, acl_err *err)
{
    acl_list cur, b;
    xf_state st;
    bool used[ACL_MAX_ENTRIES] = {false};
    memset(&st, 0, sizeof st);
    b.n = 0;
    if (check_spec(spec, op != XF_FILTER, err) != 0) return -1;
    acl_full(n, &cur);

    if (op == XF_REPLACE) {
        for (int i = 0; i < spec->n; i++) {
            st.scope_dirty[spec->e[i].is_default ? 1 : 0] = true;
            if (builder_take(&b, &st, &spec->e[i], true, err) != 0) return -1;
        }
        for (int i = 0; i < cur.n; i++)
            if (!st.scope_dirty[cur.e[i].is_default ? 1 : 0] && builder_take(&b, &st, &cur.e[i], false, err) != 0)
                return -1;
    } else {
        for (int i = 0; i < cur.n; i++) {
            const acl_entry *e = &cur.e[i];
            int k = list_find(spec, e->is_default, e->type, e->name);
            if (k < 0) {
                if (builder_take(&b, &st, e, false, err) != 0) return -1;
                continue;
            }
            used[k] = true;
            st.scope_dirty[e->is_default ? 1 : 0] = true;
            if (op == XF_MERGE) {
                if (builder_take(&b, &st, &spec->e[k], true, err) != 0) return -1;
            } else if (e->type == ACL_MASK) {
                st.mask_dirty[e->is_default ? 1 : 0] = true;
            }
        }
        for (int i = 0; op == XF_MERGE && i < spec->n; i++) {
            if (used[i]) continue;
            st.scope_dirty[spec->e[i].is_default ? 1 : 0] = true;
            if (builder_take(&b, &st, &spec->e[i], true, err) != 0) return -1;
        }
    }
    if (copy_defaults_if_needed(&b, err) != 0) return -1;
    if (calculate_masks(&b, &st, err) != 0) return -1;
    if (build_and_validate(&b, err) != 0) return -1;
    return store_full(n, &b, is_dir, err);
}

int acl_set(acl_node *n, const acl_list *spec, bool is_dir, acl_err *err)
{
    return transform(n, spec, XF_REPLACE, is_dir, err);
}

int acl_modify(acl_node *n, const acl_list *spec, bool is_dir, acl_err *err)
{
    return transform(n, spec, XF_MERGE, is_dir, err);
}

int acl_remove_entries(acl_node *n, const acl_list *spec, acl_err *err)
{
    /* A file never holds default entries, so removal cannot create any: is_dir does not matter. */
    return transform(n, spec, XF_FILTER, true, err);
}

void acl_remove_all(acl_node *n)
{
    if (has_access_acl(n)) {
        int g = perm_of(&n->ext, false, ACL_GROUP, (n->mode >> 3) & 7);
        n->mode = (uint16_t)((n->mode & ~070) | (g << 3));
    }
    n->ext.n = 0;
}

void acl_remove_default(acl_node *n)
{
    int k = 0;
    for (int i = 0; i < n->ext.n; i++)
        if (!n->ext.e[i].is_default) n->ext.e[k++] = n->ext.e[i];
    n->ext.n = k;
    /* An access ACL left with only group:: and the mask stays extended (HDFS keeps a provided
     * mask), so nothing else changes: the mode already holds the mask. */
}

void acl_chmod(acl_node *n, uint16_t mode)
{
    n->mode = (uint16_t)(mode & ACL_MODE_MASK);
    int m = list_find(&n->ext, false, ACL_MASK, "");
    if (m >= 0) n->ext.e[m].perm = (mode >> 3) & 7;
}

/* ---- creation ---------------------------------------------------------------------------------- */

void acl_inherit(const acl_node *parent, uint16_t requested, uint16_t umask, bool child_is_dir, acl_node *child)
{
    acl_list defs, full;
    defs.n = 0;
    full.n = 0;
    memset(child, 0, sizeof *child);
    for (int i = 0; i < parent->ext.n; i++)
        if (parent->ext.e[i].is_default) list_add(&defs, &parent->ext.e[i]);
    if (defs.n == 0) {
        child->mode = (uint16_t)(requested & ~umask & ACL_MODE_MASK);
        return;
    }
    list_sort(&defs);
    bool minimal = defs.n == 3;
    int ru = (requested >> 6) & 7, rg = (requested >> 3) & 7, ro = requested & 7;
    for (int i = 0; i < defs.n; i++) {
        acl_entry e = defs.e[i];
        e.is_default = false;
        if (e.type == ACL_USER && !e.name[0])
            e.perm &= ru;
        else if (e.type == ACL_MASK || (e.type == ACL_GROUP && minimal))
            e.perm &= rg;
        else if (e.type == ACL_OTHER)
            e.perm &= ro;
        list_add(&full, &e);
    }
    for (int i = 0; child_is_dir && i < defs.n; i++) list_add(&full, &defs.e[i]);
    list_sort(&full);
    child->mode = (uint16_t)(requested & ACL_STICKY);
    /* The parent's default ACL was valid for a directory, so storing cannot fail. */
    (void)store_full(child, &full, child_is_dir, NULL);
}

/* ---- access checks ----------------------------------------------------------------------------- */

static bool in_groups(const char *const *groups, const char *g)
{
    for (size_t i = 0; groups && g && groups[i]; i++)
        if (strcmp(groups[i], g) == 0) return true;
    return false;
}

bool acl_check(const acl_node *n, const char *owner, const char *group, const char *user,
               const char *const *groups, int want)
{
    want &= 7;
    bool is_owner = user && owner && strcmp(user, owner) == 0;
    if (!has_access_acl(n)) {
        int bits = is_owner ? (n->mode >> 6) & 7 : in_groups(groups, group) ? (n->mode >> 3) & 7 : n->mode & 7;
        return (bits & want) == want;
    }
    if (is_owner) return (((n->mode >> 6) & 7) & want) == want;
    int mask = (n->mode >> 3) & 7;
    for (int i = 0; user && i < n->ext.n; i++) {
        const acl_entry *e = &n->ext.e[i];
        if (!e->is_default && e->type == ACL_USER && e->name[0] && strcmp(e->name, user) == 0)
            return ((e->perm & mask) & want) == want;
    }
    bool matched = false;
    for (int i = 0; i < n->ext.n; i++) {
        const acl_entry *e = &n->ext.e[i];
        if (e->is_default || e->type != ACL_GROUP) continue;
        if (!in_groups(groups, e->name[0] ? e->name : group)) continue;
        matched = true;
        if (((e->perm & mask) & want) == want) return true;
    }
    if (matched) return false;
    return ((n->mode & 7) & want) == want;
}
