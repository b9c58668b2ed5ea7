/*
 * rwscan: the scanner of `dualpipe rewrite` (README "Rewrite"). Given the text of one file, it finds
 * the Gen1 references in it and returns what to change and what it cannot change:
 *
 *   - adl://ACCOUNT.azuredatalakestore.net/PATH URIs, rewritten to abfss://FILESYSTEM@GEN2HOST/PREFIX/REST
 *     by the proxy's own mappings (cfg_mapping_of: the longest gen1_prefix covering PATH, whole
 *     segments), percent-encoding, query and fragment kept as written;
 *   - Hadoop's ADL configuration keys (fs.adl.*, the older dfs.adls.*, also behind spark.hadoop. or
 *     -D) renamed to their ABFS counterparts, the token provider type's value with its key, and the
 *     ADL file system classes (fs.adl.impl, fs.AbstractFileSystem.adl.impl) to the abfss ones;
 *   - what cannot be rewritten faithfully, with the reason: URIs built at run time, adl://home and
 *     other accounts resolved at run time, accounts and paths no mapping covers, Gen1 REST
 *     endpoints, keys without a counterpart, every URI inside Delta/Iceberg table metadata, and in
 *     JSON the Data Factory types that name Gen1.
 *
 * It works on the raw bytes (no decoding of the file's own escapes): a URI ends at a backslash, a
 * quote or white space, so a URI inside a JSON or XML string is rewritten in place and the file
 * keeps its formatting byte for byte outside the URI. It allocates only its results; single-threaded.
 */
#ifndef DP_RWSCAN_H
#define DP_RWSCAN_H

#include <stdbool.h>
#include <stddef.h>

#include "cfg.h"

/* What a change rewrites. */
typedef enum rws_kind { RWS_URI = 0, RWS_KEY, RWS_VALUE, RWS_NKINDS } rws_kind;

/* Why a reference is left as it is (each needs a human, or the gen2-only front). */
typedef enum rws_why {
    RWS_RUNTIME = 0,   /* built at run time: concatenation, format or interpolation around adl:// */
    RWS_TABLE_META,    /* inside Delta (_delta_log/) or Iceberg (metadata/) table metadata */
    RWS_HOME,          /* adl://home: the cluster's default Data Lake Storage account */
    RWS_NO_ACCOUNT,    /* adl:///PATH: the account comes from fs.defaultFS at run time */
    RWS_SYMBOLIC,      /* adl://NAME/ without a dot: resolved by dfs.adls.NAME.hostname */
    RWS_OTHER_ACCOUNT, /* a Gen1 account other than the one the mappings describe */
    RWS_UNMAPPED,      /* a path no mapping covers */
    RWS_BAD_PATH,      /* '.', '..', empty segments, an encoded '/' or NUL, or too long */
    RWS_ENDPOINT,      /* a *.azuredatalakestore.net host or REST URL outside an adl:// URI */
    RWS_KEY_NONE,      /* an ADL key or class with no ABFS counterpart */
    RWS_PROVIDER,      /* the token provider type's value is not next to it, or has no counterpart */
    RWS_AUTH_TYPE,     /* an ABFS OAuth provider without fs.azure.account.auth.type */
    RWS_ADF,           /* a Data Factory type of Gen1 (JSON) */
    RWS_ESCAPED,       /* adl:\/\/ (JSON with escaped slashes) */
    RWS_NWHY
} rws_why;

/** One replacement: text[off, off+len) becomes to (owned by the result). */
typedef struct rws_edit {
    size_t off, len;
    char *to;
    rws_kind kind;
} rws_edit;

/** One reference left alone: text[off, off+len) and a detail (owned; may be NULL). */
typedef struct rws_find {
    size_t off, len;
    rws_why why;
    char *detail;
} rws_find;

typedef struct rws_opts {
    const dp_config *cfg;  /* its mappings (gen2.mappings) */
    const char *gen1_host; /* the Gen1 account host the mappings describe, lower case; "" = any host
                              ending in .azuredatalakestore.net */
    const char *gen2_host; /* the abfss:// host, e.g. "contoso2.dfs.core.windows.net" */
    bool json;             /* the text is JSON: report Data Factory Gen1 types and adl:\/\/ */
    bool table_meta;       /* Delta/Iceberg metadata: rewrite nothing, report every URI */
} rws_opts;

/** Edits in increasing, non-overlapping offset order; finds in offset order. */
typedef struct rws_result {
    rws_edit *edits;
    size_t nedits, capedits;
    rws_find *finds;
    size_t nfinds, capfinds;
} rws_result;

/** Scan text[0, len) (any bytes; NULs allowed). Appends to *r (zeroed by the caller before the
 *  first use). Returns 0, or -ENOMEM (r then holds what was found so far; free it). */
__attribute__((warn_unused_result)) int rws_scan(const rws_opts *o, const char *text, size_t len, rws_result *r);

/** The text with r's edits applied: *out (caller frees; NUL-terminated), *outlen. 0 or -ENOMEM. */
__attribute__((warn_unused_result)) int rws_apply(const char *text, size_t len, const rws_result *r, char **out,
                                                  size_t *outlen);

/** Free what r holds; r is zeroed and reusable. */
void rws_result_free(rws_result *r);

/** Rewrite one URI, uri[0, len) being exactly "adl://..." up to its end, continued = true when the text
 *  goes on at run time right after it (a concatenation or an interpolation). Returns 0 and *out
 *  (caller frees), 1 and *why (+ *detail, caller frees, may be NULL) when it is left alone, -ENOMEM. */
__attribute__((warn_unused_result)) int rws_uri(const rws_opts *o, const char *uri, size_t len, bool continued,
                                                char **out, rws_why *why, char **detail);

/** "uri", "config_key", "config_value". */
const char *rws_kind_name(rws_kind k);
/** The reason's short name for reports ("runtime_built", "table_metadata", ...). */
const char *rws_why_name(rws_why w);
/** The reason in a sentence. */
const char *rws_why_text(rws_why w);
/** Whether the gen2-only front (the job pointed at the proxy's WebHDFS endpoint) is the way out. */
bool rws_why_front(rws_why w);

#endif
