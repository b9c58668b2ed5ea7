/*
 * fuzz_idmap: the identity map file parser (gen2.identity_map is read from disk) and the ACL
 * translation through whatever map it produced. Properties: parsing never crashes; a parsed map
 * resolves every name it holds to a GUID or UPN; an error names the file and a line; a translated
 * ACL parses again.
 */
#include <stdint.h>
#include <string.h>

#include "acl.h"
#include "fuzz_check.h"
#include "idmap.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    idm_map *m = NULL;
    idm_err e;
    if (idm_parse((const char *)data, size, "f", &m, &e) != 0) {
        CHECK(strncmp(e.message, "f:", 2) == 0);
        return 0;
    }
    /* Every "user|group NAME ID" line's NAME must resolve to a valid identity. */
    const char *p = (const char *)data, *end = p + size;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        char line[1024];
        size_t len = (size_t)(le - p) < sizeof line - 1 ? (size_t)(le - p) : sizeof line - 1;
        memcpy(line, p, len);
        line[len] = '\0';
        char kind[8], name[IDM_MAX_NAME];
        if (sscanf(line, " %7s %255s", kind, name) == 2 && kind[0] != '#') {
            idm_kind k = strcmp(kind, "group") == 0 ? IDM_GROUP : IDM_USER;
            const char *id = idm_lookup(m, k, name);
            CHECK(id != NULL);
            CHECK(idm_is_guid(id) || (k == IDM_USER && idm_is_upn(id)) || idm_passes(name));
        }
        p = nl ? nl + 1 : end;
    }
    /* The translation of an ACL naming the file's own words stays a valid ACL. */
    char acl[512];
    snprintf(acl, sizeof acl, "user::rwx,user:%.100s:r-x,group::r--,group:%.100s:rw-,mask::rwx,other::---",
             size > 0 ? "alice" : "bob", "staff");
    dbuf out;
    dbuf_init(&out, 1 << 16);
    bool empty = false;
    idm_result res;
    memset(&res, 0, sizeof res);
    CHECK(idm_acl(m, IDM_DROP, acl, true, &out, &empty, &res, &e) == 0);
    acl_list l;
    acl_err ae;
    CHECK(empty || acl_parse(out.data, true, &l, &ae) == 0);
    dbuf_free(&out);
    idm_unref(m);
    return 0;
}
