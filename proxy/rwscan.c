/*
 * rwscan: the scanner of `dualpipe rewrite` (rwscan.h). One left-to-right pass over the bytes; at
 * each position it tries, in order: an adl: scheme, an ADL configuration key, an ADL class name, a
 * Data Factory Gen1 type (JSON), a *.azuredatalakestore.net name. Whatever matched is consumed, so
 * nothing is reported twice and edits never overlap.
 */
#include "rwscan.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define GEN1_SUFFIX ".azuredatalakestore.net"
#define RWS_PATH_MAX 4096
#define KEY_VALUE_SKIP 200 /* how far after a key its value may start */

static const char *const kind_names[RWS_NKINDS] = {"uri", "config_key", "config_value"};

static const struct {
    const char *name, *text;
    bool front;
} whys[RWS_NWHY] = {
    [RWS_RUNTIME] = {"runtime_built",
                     "built at run time (concatenation, format or interpolation around adl://): the mapping "
                     "cannot be applied to text that is not there", true},
    [RWS_TABLE_META] = {"table_metadata",
                        "absolute path inside Delta/Iceberg table metadata: never rewritten (the table's log "
                        "and manifests must keep naming the files they were written with)", true},
    [RWS_HOME] = {"adl_home", "adl://home is the cluster's default Data Lake Storage account, known only at run time",
                  true},
    [RWS_NO_ACCOUNT] = {"no_account", "adl:/// names no account: fs.defaultFS supplies it at run time", true},
    [RWS_SYMBOLIC] = {"symbolic_account",
                      "a symbolic account name (dfs.adls.NAME.hostname supplies the host at run time)", true},
    [RWS_OTHER_ACCOUNT] = {"other_account", "not the Gen1 account the mappings describe", true},
    [RWS_UNMAPPED] = {"unmapped_path", "no mapping (gen2.mappings) covers this path", true},
    [RWS_BAD_PATH] = {"unusual_path",
                      "the path has '.', '..' or empty segments, an encoded '/' or NUL, or is too long", true},
    [RWS_ENDPOINT] = {"gen1_endpoint",
                      "a Gen1 host or REST (WebHDFS) URL outside an adl:// URI: Gen2 has no WebHDFS API", true},
    [RWS_KEY_NONE] = {"no_abfs_counterpart", "an ADL setting or class with no ABFS counterpart: remove or "
                                             "replace it by hand", false},
    [RWS_PROVIDER] = {"token_provider",
                      "the ADL token provider type's value is not next to its key or has no ABFS provider: set "
                      "fs.azure.account.oauth.provider.type by hand", false},
    [RWS_AUTH_TYPE] = {"auth_type_missing",
                       "an ABFS OAuth provider is set but fs.azure.account.auth.type is not: add it with the "
                       "value OAuth", false},
    [RWS_ADF] = {"adf_gen1_type", "a Data Factory type of ADLS Gen1: change it to its Gen2 (AzureBlobFS) type",
                 false},
    [RWS_ESCAPED] = {"escaped_uri", "adl:\\/\\/ with escaped slashes: rewrite it by hand", false},
};

const char *rws_kind_name(rws_kind k)
{
    return k < RWS_NKINDS ? kind_names[k] : "unknown";
}

const char *rws_why_name(rws_why w)
{
    return w < RWS_NWHY ? whys[w].name : "unknown";
}

const char *rws_why_text(rws_why w)
{
    return w < RWS_NWHY ? whys[w].text : "unknown";
}

bool rws_why_front(rws_why w)
{
    return w < RWS_NWHY && whys[w].front;
}

/* ------------------------------------------------------------------ results */

void rws_result_free(rws_result *r)
{
    for (size_t i = 0; i < r->nedits; i++) free(r->edits[i].to);
    for (size_t i = 0; i < r->nfinds; i++) free(r->finds[i].detail);
    free(r->edits);
    free(r->finds);
    memset(r, 0, sizeof *r);
}

/* Takes to (freed on failure). */
static int add_edit(rws_result *r, size_t off, size_t len, char *to, rws_kind k)
{
    if (!to) return -ENOMEM;
    if (r->nedits == r->capedits) {
        size_t cap = r->capedits ? r->capedits * 2 : 16;
        rws_edit *n = realloc(r->edits, cap * sizeof *n);
        if (!n) {
            free(to);
            return -ENOMEM;
        }
        r->edits = n;
        r->capedits = cap;
    }
    r->edits[r->nedits++] = (rws_edit){.off = off, .len = len, .to = to, .kind = k};
    return 0;
}

/* Takes detail (may be NULL). */
static int add_find(rws_result *r, size_t off, size_t len, rws_why w, char *detail)
{
    if (r->nfinds == r->capfinds) {
        size_t cap = r->capfinds ? r->capfinds * 2 : 16;
        rws_find *n = realloc(r->finds, cap * sizeof *n);
        if (!n) {
            free(detail);
            return -ENOMEM;
        }
        r->finds = n;
        r->capfinds = cap;
    }
    r->finds[r->nfinds++] = (rws_find){.off = off, .len = len, .why = w, .detail = detail};
    return 0;
}

static char *fmt_alloc(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *fmt_alloc(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    return n < 0 ? NULL : s;
}

int rws_apply(const char *text, size_t len, const rws_result *r, char **out, size_t *outlen)
{
    size_t n = len;
    for (size_t i = 0; i < r->nedits; i++) n = n - r->edits[i].len + strlen(r->edits[i].to);
    char *o = malloc(n + 1);
    if (!o) return -ENOMEM;
    size_t at = 0, w = 0;
    for (size_t i = 0; i < r->nedits; i++) {
        const rws_edit *e = &r->edits[i];
        memcpy(o + w, text + at, e->off - at);
        w += e->off - at;
        size_t tl = strlen(e->to);
        memcpy(o + w, e->to, tl);
        w += tl;
        at = e->off + e->len;
    }
    memcpy(o + w, text + at, len - at);
    w += len - at;
    o[w] = '\0';
    *out = o;
    *outlen = w;
    return 0;
}

/* ------------------------------------------------------------------ URIs */

static bool is_hex(int c)
{
    return isxdigit((unsigned char)c) != 0;
}

static int hexval(int c)
{
    return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
}

/* A character that ends a URI in code or configuration text. */
static bool uri_stop(unsigned char c)
{
    return c <= 0x20 || c == 0x7f || strchr("\"'`<>\\^|;", c) != NULL;
}

/* Where the URI starting at text[start] ("adl://") ends: stop characters, ',' outside braces, and a
 * closing bracket with no opening one inside the URI. */
static size_t uri_end(const char *t, size_t len, size_t start)
{
    int depth = 0;
    size_t i = start;
    for (; i < len; i++) {
        unsigned char c = (unsigned char)t[i];
        if (uri_stop(c)) break;
        if (c == '{' || c == '(' || c == '[') depth++;
        else if (c == '}' || c == ')' || c == ']') {
            if (depth == 0) break;
            depth--;
        } else if (c == ',' && depth == 0) break;
    }
    return i;
}

/* A value filled in at run time starts here: ${x}, $x, {x} / {} (format, f-string), %s / %(x)s. */
static bool interp_at(const char *s, size_t n, size_t i)
{
    char c = s[i];
    if (c == '$' || c == '{') return true;
    if (c == '%') return !(i + 2 < n && is_hex(s[i + 1]) && is_hex(s[i + 2]));
    return false;
}

/* After the URI ends at t[e]: does the expression go on at run time? A closing quote (possibly
 * escaped) followed by '+', '%', '||' or '.format', or interpolation syntax right at the end. */
static bool continued_after(const char *t, size_t len, size_t e)
{
    size_t i = e;
    if (i < len && t[i] == '\\') i++;
    if (i >= len || (t[i] != '"' && t[i] != '\'' && t[i] != '`')) return false;
    i++;
    while (i < len && (t[i] == ' ' || t[i] == '\t')) i++;
    if (i >= len) return false;
    if (t[i] == '+' || t[i] == '%') return true;
    if (i + 1 < len && t[i] == '|' && t[i + 1] == '|') return true;
    if (len - i >= 7 && memcmp(t + i, ".format", 7) == 0) return true;
    return false;
}

static void lower(char *s)
{
    for (; *s; s++) *s = (char)tolower((unsigned char)*s);
}

static bool ends_with(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

/* Percent-encode what is not unreserved (or '/') in s, for the Gen2 prefix and filesystem. */
static int enc_append(char **buf, size_t *n, size_t *cap, const char *s, size_t sl)
{
    for (size_t i = 0; i < sl; i++) {
        unsigned char c = (unsigned char)s[i];
        char tmp[4];
        size_t tl;
        if (isalnum(c) || strchr("-._~/", c)) {
            tmp[0] = (char)c;
            tl = 1;
        } else {
            snprintf(tmp, sizeof tmp, "%%%02X", c);
            tl = 3;
        }
        if (*n + tl + 1 > *cap) {
            size_t nc = (*cap + tl + 1) * 2;
            char *nb = realloc(*buf, nc);
            if (!nb) return -ENOMEM;
            *buf = nb;
            *cap = nc;
        }
        memcpy(*buf + *n, tmp, tl);
        *n += tl;
        (*buf)[*n] = '\0';
    }
    return 0;
}

static int raw_append(char **buf, size_t *n, size_t *cap, const char *s, size_t sl)
{
    if (*n + sl + 1 > *cap) {
        size_t nc = (*n + sl + 1) * 2;
        char *nb = realloc(*buf, nc);
        if (!nb) return -ENOMEM;
        *buf = nb;
        *cap = nc;
    }
    memcpy(*buf + *n, s, sl);
    *n += sl;
    (*buf)[*n] = '\0';
    return 0;
}

/* Left alone: 1 with *why and *detail. */
static int leave(rws_why w, char *detail, rws_why *why, char **dout)
{
    *why = w;
    *dout = detail;
    return 1;
}

/* Decode the path's known part p[0, n) (segments, each percent-decoded) into d (RWS_PATH_MAX).
 * partial: the last segment goes on at run time, so only up to the last '/' is known; *known_n is
 * the length of p that was decoded. 0, or -1 (bad path). */
static int decode_path(const char *p, size_t n, bool partial, char *d, size_t *known_n)
{
    if (partial) {
        while (n > 0 && p[n - 1] != '/') n--;
    }
    *known_n = n;
    size_t w = 0;
    size_t i = 0;
    if (n == 0) {
        memcpy(d, "/", 2);
        return 0;
    }
    while (i < n) {
        /* p[i] == '/' */
        size_t j = i + 1;
        while (j < n && p[j] != '/') j++;
        size_t segstart = w;
        if (w + 1 >= RWS_PATH_MAX) return -1;
        d[w++] = '/';
        for (size_t k = i + 1; k < j; k++) {
            char c = p[k];
            if (c == '%' && k + 2 < j && is_hex(p[k + 1]) && is_hex(p[k + 2])) {
                c = (char)(hexval(p[k + 1]) * 16 + hexval(p[k + 2]));
                k += 2;
                if (c == '/' || c == '\0') return -1;
            }
            if (w + 1 >= RWS_PATH_MAX) return -1;
            d[w++] = c;
        }
        size_t seglen = w - segstart - 1;
        bool last = j >= n;
        if (seglen == 0 && !last) return -1; /* "//" */
        if ((seglen == 1 && d[segstart + 1] == '.') || (seglen == 2 && d[segstart + 1] == '.' && d[segstart + 2] == '.'))
            return -1;
        i = j;
    }
    d[w] = '\0';
    return 0;
}

int rws_uri(const rws_opts *o, const char *uri, size_t len, bool continued, char **out, rws_why *why, char **detail)
{
    *out = NULL;
    *detail = NULL;
    if (len < 6 || strncasecmp(uri, "adl://", 6) != 0) return leave(RWS_RUNTIME, NULL, why, detail);
    if (o->table_meta) return leave(RWS_TABLE_META, NULL, why, detail);
    size_t a = 6, i = a;
    while (i < len && (isalnum((unsigned char)uri[i]) || uri[i] == '.' || uri[i] == '-' || uri[i] == '_')) i++;
    size_t host_end = i;
    if (i < len && uri[i] == ':') {
        i++;
        while (i < len && isdigit((unsigned char)uri[i])) i++;
    }
    size_t auth_end = i;
    if (host_end == a) {
        if (auth_end < len && uri[auth_end] == '/') return leave(RWS_NO_ACCOUNT, NULL, why, detail);
        return leave(RWS_RUNTIME, NULL, why, detail);
    }
    /* what follows the authority: a path, a query, or the end; anything else is run-time text */
    if (auth_end < len && uri[auth_end] != '/' && uri[auth_end] != '?' && uri[auth_end] != '#')
        return leave(RWS_RUNTIME, NULL, why, detail);
    if (auth_end == len && continued) return leave(RWS_RUNTIME, NULL, why, detail);
    char host[256];
    size_t hl = host_end - a;
    if (hl >= sizeof host) return leave(RWS_OTHER_ACCOUNT, fmt_alloc("host name too long"), why, detail);
    memcpy(host, uri + a, hl);
    host[hl] = '\0';
    lower(host);
    if (strcmp(host, "home") == 0) return leave(RWS_HOME, NULL, why, detail);
    if (!strchr(host, '.')) return leave(RWS_SYMBOLIC, fmt_alloc("account name %s", host), why, detail);
    if (host[hl - 1] == '.' && continued) return leave(RWS_RUNTIME, NULL, why, detail);
    if (o->gen1_host && o->gen1_host[0]) {
        if (strcmp(host, o->gen1_host) != 0)
            return leave(RWS_OTHER_ACCOUNT, fmt_alloc("%s (the mappings describe %s)", host, o->gen1_host), why,
                         detail);
    } else if (!ends_with(host, GEN1_SUFFIX)) {
        return leave(RWS_OTHER_ACCOUNT, fmt_alloc("%s is not a Gen1 account host (*%s)", host, GEN1_SUFFIX), why,
                     detail);
    }
    /* path [auth_end, path_end), then ?query / #fragment kept as written */
    size_t path_end = auth_end;
    while (path_end < len && uri[path_end] != '?' && uri[path_end] != '#') path_end++;
    const char *p = uri + auth_end;
    size_t pn = path_end - auth_end;
    size_t static_n = 0;
    while (static_n < pn && !interp_at(p, pn, static_n)) static_n++;
    bool partial = static_n < pn || (continued && path_end == len);
    char *d = malloc(RWS_PATH_MAX);
    if (!d) return -ENOMEM;
    size_t known_n = 0;
    if (decode_path(p, static_n, partial, d, &known_n) != 0) {
        free(d);
        return leave(RWS_BAD_PATH, NULL, why, detail);
    }
    size_t plen = 0;
    int m = cfg_mapping_of(o->cfg, d, &plen);
    if (m < 0) {
        char *det = fmt_alloc("Gen1 path %s%s", d, partial ? "..." : "");
        free(d);
        return leave(partial ? RWS_RUNTIME : RWS_UNMAPPED, det, why, detail);
    }
    if (partial) {
        /* the unknown rest could fall under a deeper mapping: then the filesystem depends on it */
        size_t dl = strlen(d);
        while (dl > 1 && d[dl - 1] == '/') dl--;
        for (int k = 0; k < o->cfg->nmappings; k++) {
            const char *g = o->cfg->mappings[k].gen1_prefix;
            size_t gl = strlen(g);
            while (gl > 0 && g[gl - 1] == '/') gl--;
            bool below = gl > dl && (dl == 1 ? g[0] == '/' : strncmp(g, d, dl) == 0 && g[dl] == '/');
            if (below) {
                char *det = fmt_alloc("the run-time part decides between mappings %s and %.*s",
                                      o->cfg->mappings[m].gen1_prefix, (int)gl, g);
                free(d);
                return leave(RWS_RUNTIME, det, why, detail);
            }
        }
    }
    free(d);
    /* skip as many encoded segments as the gen1_prefix has */
    const cfg_mapping *mp = &o->cfg->mappings[m];
    size_t nseg = 0;
    for (size_t k = 0; k < plen; k++)
        if (mp->gen1_prefix[k] == '/') nseg++;
    size_t pos = 0; /* offset in p: the '/' before segment nseg+1, or pn */
    if (nseg > 0) {
        size_t seen = 0;
        for (pos = 0; pos < pn; pos++) {
            if (p[pos] == '/') {
                if (seen == nseg) break;
                seen++;
            }
        }
    }
    char *b = NULL;
    size_t bn = 0, bc = 0;
    int rc = raw_append(&b, &bn, &bc, "abfss://", 8);
    if (rc == 0) rc = enc_append(&b, &bn, &bc, mp->filesystem, strlen(mp->filesystem));
    if (rc == 0) rc = raw_append(&b, &bn, &bc, "@", 1);
    if (rc == 0) rc = raw_append(&b, &bn, &bc, o->gen2_host, strlen(o->gen2_host));
    const char *rest = p + pos;
    size_t restn = pn - pos;
    if (rc == 0 && mp->prefix[0]) {
        rc = raw_append(&b, &bn, &bc, "/", 1);
        if (rc == 0) rc = enc_append(&b, &bn, &bc, mp->prefix, strlen(mp->prefix));
        if (rc == 0) rc = raw_append(&b, &bn, &bc, rest, restn);
    } else if (rc == 0) {
        /* the filesystem's root: "/warehouse" -> "", "/warehouse/" -> "/", as written */
        rc = raw_append(&b, &bn, &bc, rest, restn);
    }
    if (rc == 0) rc = raw_append(&b, &bn, &bc, uri + path_end, len - path_end);
    if (rc != 0) {
        free(b);
        return -ENOMEM;
    }
    *out = b;
    return 0;
}

/* ------------------------------------------------------------------ keys */

static bool key_char(unsigned char c)
{
    return isalnum(c) || c == '_' || c == '.' || c == '-';
}

/* ADL key (after fs.adl. or dfs.adls.) -> ABFS key. */
static const struct {
    const char *adl, *abfs;
} key_map[] = {
    {"oauth2.access.token.provider.type", "fs.azure.account.oauth.provider.type"},
    {"oauth2.client.id", "fs.azure.account.oauth2.client.id"},
    {"oauth2.credential", "fs.azure.account.oauth2.client.secret"},
    {"oauth2.refresh.url", "fs.azure.account.oauth2.client.endpoint"},
    {"oauth2.refresh.token", "fs.azure.account.oauth2.refresh.token"},
};

/* fs.adl.oauth2.access.token.provider.type's values (TokenProviderType) -> ABFS provider classes. */
static const struct {
    const char *adl, *abfs;
} provider_map[] = {
    {"ClientCredential", "org.apache.hadoop.fs.azurebfs.oauth2.ClientCredsTokenProvider"},
    {"RefreshToken", "org.apache.hadoop.fs.azurebfs.oauth2.RefreshTokenBasedTokenProvider"},
    {"Msi", "org.apache.hadoop.fs.azurebfs.oauth2.MsiTokenProvider"},
};

static const struct {
    const char *adl, *abfs;
} class_map[] = {
    {"org.apache.hadoop.fs.adl.AdlFileSystem", "org.apache.hadoop.fs.azurebfs.SecureAzureBlobFileSystem"},
    {"org.apache.hadoop.fs.adl.Adl", "org.apache.hadoop.fs.azurebfs.Abfss"},
};

#define ABFS_PROVIDER_KEY "fs.azure.account.oauth.provider.type"
#define ABFS_AUTH_KEY "fs.azure.account.auth.type"

static bool starts(const char *t, size_t len, size_t i, const char *s)
{
    size_t n = strlen(s);
    return len - i >= n && memcmp(t + i, s, n) == 0;
}

/* Where the value of the key ending at t[e] starts: past '=', ':', ',', quotes, blanks, backslashes
 * (escaped quotes in JSON), </name> and <value>. */
static size_t value_start(const char *t, size_t len, size_t e)
{
    size_t i = e;
    while (i < len && i - e < KEY_VALUE_SKIP) {
        if (strchr(" \t\r\n\"'=:,\\", t[i]) && t[i] != '\0') i++;
        else if (starts(t, len, i, "</name>") || starts(t, len, i, "<value>")) i += 7;
        else break;
    }
    return i;
}

/* An ADL key at t[i]: 1 consumed up to *next, 0 not a key, -ENOMEM. */
static int scan_key(const rws_opts *o, const char *t, size_t len, size_t i, rws_result *r, size_t *next,
                    bool *provider)
{
    if (i > 0) {
        unsigned char pc = (unsigned char)t[i - 1];
        bool dash_d = pc == 'D' && i > 1 && t[i - 2] == '-';
        if (key_char(pc) && !dash_d) return 0;
    }
    size_t ks = i;
    if (starts(t, len, i, "spark.hadoop.")) ks += 13;
    size_t suf;
    bool fsadl = false, afs = false;
    if (starts(t, len, ks, "fs.adl.")) {
        suf = ks + 7;
        fsadl = true;
    } else if (starts(t, len, ks, "dfs.adls.")) suf = ks + 9;
    else if (starts(t, len, ks, "fs.AbstractFileSystem.adl.impl")) {
        suf = ks + 26;
        afs = true;
    } else return 0;
    size_t ke = suf;
    while (ke < len && key_char((unsigned char)t[ke])) ke++;
    while (ke > suf && t[ke - 1] == '.') ke--;
    *next = ke;
    const char *to = NULL;
    size_t sl = ke - suf;
    if (afs) {
        if (sl == 4) to = "fs.AbstractFileSystem.abfss.impl";
    } else if (fsadl && sl == 4 && memcmp(t + suf, "impl", 4) == 0) {
        to = "fs.abfss.impl";
    } else {
        for (size_t k = 0; k < sizeof key_map / sizeof key_map[0]; k++)
            if (strlen(key_map[k].adl) == sl && memcmp(t + suf, key_map[k].adl, sl) == 0) to = key_map[k].abfs;
    }
    if (!to) return add_find(r, ks, ke - ks, RWS_KEY_NONE, NULL) ? -ENOMEM : 1;
    if (strcmp(to, ABFS_PROVIDER_KEY) == 0) {
        size_t vs = value_start(t, len, ke), ve = vs;
        while (ve < len && isalpha((unsigned char)t[ve])) ve++;
        const char *cls = NULL;
        if (ve > vs && (ve >= len || !key_char((unsigned char)t[ve]))) {
            for (size_t k = 0; k < sizeof provider_map / sizeof provider_map[0]; k++)
                if (strlen(provider_map[k].adl) == ve - vs && strncasecmp(t + vs, provider_map[k].adl, ve - vs) == 0)
                    cls = provider_map[k].abfs;
        }
        if (!cls) {
            char *det = ve > vs ? fmt_alloc("%.*s = %.*s", (int)(ke - ks), t + ks, (int)(ve - vs), t + vs)
                                : fmt_alloc("%.*s: no value next to it", (int)(ke - ks), t + ks);
            return add_find(r, ks, ke - ks, RWS_PROVIDER, det) ? -ENOMEM : 1;
        }
        if (add_edit(r, ks, ke - ks, strdup(to), RWS_KEY) || add_edit(r, vs, ve - vs, strdup(cls), RWS_VALUE))
            return -ENOMEM;
        *provider = true;
        *next = ve;
        return 1;
    }
    return add_edit(r, ks, ke - ks, strdup(to), RWS_KEY) ? -ENOMEM : 1;
}

/* An ADL class name at t[i] ("org.apache.hadoop.fs.adl."). */
static int scan_class(const char *t, size_t len, size_t i, rws_result *r, size_t *next)
{
    size_t e = i + 25;
    while (e < len && (isalnum((unsigned char)t[e]) || t[e] == '_' || t[e] == '.' || t[e] == '$')) e++;
    while (e > i + 25 && t[e - 1] == '.') e--;
    *next = e;
    for (size_t k = 0; k < sizeof class_map / sizeof class_map[0]; k++)
        if (strlen(class_map[k].adl) == e - i && memcmp(t + i, class_map[k].adl, e - i) == 0)
            return add_edit(r, i, e - i, strdup(class_map[k].abfs), RWS_VALUE) ? -ENOMEM : 1;
    return add_find(r, i, e - i, RWS_KEY_NONE, NULL) ? -ENOMEM : 1;
}

/* A JSON string "AzureDataLakeStore..." at t[i] (the opening quote). */
static int scan_adf(const char *t, size_t len, size_t i, rws_result *r, size_t *next)
{
    size_t s = i + 1, e = s + 18;
    while (e < len && isalpha((unsigned char)t[e])) e++;
    if (e >= len || t[e] != '"') return 0;
    *next = e + 1;
    static const char *const known[] = {"", "File", "Location", "Source", "Sink", "ReadSettings", "WriteSettings"};
    const char *suf = t + s + 18;
    size_t sl = e - s - 18;
    for (size_t k = 0; k < sizeof known / sizeof known[0]; k++) {
        if (strlen(known[k]) == sl && memcmp(suf, known[k], sl) == 0) {
            char *det = sl == 0 ? fmt_alloc("linked service type AzureDataLakeStore: change it to AzureBlobFS "
                                            "(url https://ACCOUNT.dfs.core.windows.net instead of dataLakeStoreUri), "
                                            "and its datasets with it")
                                : fmt_alloc("AzureDataLakeStore%.*s: use AzureBlobFS%.*s%s", (int)sl, suf, (int)sl, suf,
                                            strcmp(known[k], "Location") == 0 ? " (with fileSystem)" : "");
            return add_find(r, s, e - s, RWS_ADF, det) ? -ENOMEM : 1;
        }
    }
    return add_find(r, s, e - s, RWS_ADF, NULL) ? -ENOMEM : 1;
}

/* ".azuredatalakestore.net" at t[i], outside any URI handled before lo: report the whole token. */
static int scan_endpoint(const char *t, size_t len, size_t i, size_t lo, rws_result *r, size_t *next)
{
    size_t s = i;
    while (s > lo && (isalnum((unsigned char)t[s - 1]) || t[s - 1] == '.' || t[s - 1] == '-' || t[s - 1] == '_'))
        s--;
    if (s >= lo + 3 && memcmp(t + s - 3, "://", 3) == 0) {
        size_t q = s - 3;
        while (q > lo && isalpha((unsigned char)t[q - 1])) q--;
        s = q;
    }
    size_t e = uri_end(t, len, i);
    *next = e;
    /* a host suffix right after a URI built at run time ("adl://" + name + ".azuredatalakestore.net/x") is
     * part of that finding */
    if (t[s] == '.' && r->nfinds > 0 && r->finds[r->nfinds - 1].why == RWS_RUNTIME &&
        !memchr(t + r->finds[r->nfinds - 1].off, '\n', s - r->finds[r->nfinds - 1].off))
        return 1;
    return add_find(r, s, e - s, RWS_ENDPOINT, NULL) ? -ENOMEM : 1;
}

static int scan_uri(const rws_opts *o, const char *t, size_t len, size_t i, rws_result *r, size_t *next)
{
    size_t e = uri_end(t, len, i + 6);
    *next = e;
    bool cont = continued_after(t, len, e);
    char *out = NULL, *det = NULL;
    rws_why why = RWS_RUNTIME;
    int rc = rws_uri(o, t + i, e - i, cont, &out, &why, &det);
    if (rc < 0) return rc;
    if (rc == 0) return add_edit(r, i, e - i, out, RWS_URI);
    return add_find(r, i, e - i, why, det);
}

static void *memmem_ci(const char *h, size_t hl, const char *n)
{
    size_t nl = strlen(n);
    for (size_t i = 0; i + nl <= hl; i++)
        if (strncasecmp(h + i, n, nl) == 0) return (void *)(h + i);
    return NULL;
}

int rws_scan(const rws_opts *o, const char *t, size_t len, rws_result *r)
{
    size_t i = 0, lo = 0;
    bool provider = false;
    while (i < len) {
        unsigned char c = (unsigned char)t[i];
        size_t next = i + 1;
        int rc = 0;
        if ((c | 0x20) == 'a' && len - i >= 4 && strncasecmp(t + i, "adl:", 4) == 0 &&
            (i == 0 || !(isalnum((unsigned char)t[i - 1]) || (t[i - 1] && strchr("+.-/", t[i - 1]))))) {
            if (starts(t, len, i + 4, "//")) rc = scan_uri(o, t, len, i, r, &next);
            else if (o->json && starts(t, len, i + 4, "\\/\\/")) {
                next = uri_end(t, len, i + 8);
                rc = add_find(r, i, next - i, RWS_ESCAPED, NULL);
            }
            if (rc < 0) return rc;
            if (next > i + 1) lo = next;
        } else if ((c | 0x20) == 'a' && len - i >= 8 && strncasecmp(t + i, "abfss://", 8) == 0) {
            /* a Gen2 URI (one of ours, or written so) is left whole: nothing inside it is a key */
            next = uri_end(t, len, i + 8);
            lo = next;
        } else if (!o->table_meta && (c == 'f' || c == 'd' || c == 's')) {
            rc = scan_key(o, t, len, i, r, &next, &provider);
            if (rc < 0) return rc;
            if (rc == 0) next = i + 1;
            else lo = next;
        } else if (!o->table_meta && c == 'o' && starts(t, len, i, "org.apache.hadoop.fs.adl.")) {
            rc = scan_class(t, len, i, r, &next);
            if (rc < 0) return rc;
            lo = next;
        } else if (o->json && !o->table_meta && c == '"' && starts(t, len, i, "\"AzureDataLakeStore")) {
            rc = scan_adf(t, len, i, r, &next);
            if (rc < 0) return rc;
            if (rc == 0) next = i + 1;
            else lo = next;
        } else if (c == '.' && len - i >= sizeof GEN1_SUFFIX - 1 &&
                   strncasecmp(t + i, GEN1_SUFFIX, sizeof GEN1_SUFFIX - 1) == 0 &&
                   (i + sizeof GEN1_SUFFIX - 1 >= len || !isalnum((unsigned char)t[i + sizeof GEN1_SUFFIX - 1]))) {
            if (o->table_meta) rc = add_find(r, i, sizeof GEN1_SUFFIX - 1, RWS_TABLE_META, NULL);
            else rc = scan_endpoint(t, len, i, lo, r, &next);
            if (rc < 0) return rc;
            lo = next;
        }
        i = next > i ? next : i + 1;
    }
    /* an ABFS OAuth provider needs the auth type next to it (ADL had no such key) */
    if (!o->table_meta) {
        const char *pk = memmem_ci(t, len, ABFS_PROVIDER_KEY);
        if ((provider || pk) && !memmem_ci(t, len, ABFS_AUTH_KEY)) {
            size_t off = pk ? (size_t)(pk - t) : len;
            for (size_t k = 0; k < r->nedits; k++)
                if (strcmp(r->edits[k].to, ABFS_PROVIDER_KEY) == 0 && r->edits[k].off < off) off = r->edits[k].off;
            if (add_find(r, off, 0, RWS_AUTH_TYPE, fmt_alloc("%s = OAuth", ABFS_AUTH_KEY))) return -ENOMEM;
            /* keep finds in offset order */
            for (size_t k = r->nfinds - 1; k > 0 && r->finds[k - 1].off > r->finds[k].off; k--) {
                rws_find tmp = r->finds[k - 1];
                r->finds[k - 1] = r->finds[k];
                r->finds[k] = tmp;
            }
        }
    }
    return 0;
}
