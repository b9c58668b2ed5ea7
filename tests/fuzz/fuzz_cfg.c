/*
 * fuzz_cfg: libFuzzer driver for the configuration loader. The input is the config text. Beyond "no
 * crash, no leak, no UB" it checks the loader's promises: a failure fills a printable key path and
 * message; a success has 1..64 mappings that obey the naming rules with no duplicate Gen1 prefix,
 * ports in range, normalised http(s) endpoints, the secret the auth mode needs and no other; the
 * explanation renders, has no control characters but newlines, and shows each secret only as
 * "(secret, SOURCE)"; cfg_free clears the secrets and may be called twice.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


static void check_printable(const char *s, size_t cap, bool newline_ok)
{
    size_t n = strnlen(s, cap);
    CHECK(n < cap);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        CHECK((ch >= 0x20 && ch != 0x7f) || (newline_ok && ch == '\n'));
    }
}

static void check_endpoint(const char *url, const cfg_hostport *hp, bool https)
{
    CHECK(strncmp(url, https ? "https://" : "http://", https ? 8 : 7) == 0);
    CHECK(url[strlen(url) - 1] != '/');
    CHECK(hp->host[0] != '\0');
    CHECK(hp->port >= 1 && hp->port <= 65535);
}

static void check_mapping(const cfg_mapping *m)
{
    const char *g = m->gen1_prefix;
    size_t gl = strlen(g);
    CHECK(g[0] == '/');
    CHECK(gl == 1 || g[gl - 1] != '/');
    CHECK(!strstr(g, "//") && !strstr(g, "/./") && !strstr(g, "/../"));
    const char *f = m->filesystem;
    size_t fl = strlen(f);
    CHECK(fl >= 3 && fl <= 63 && f[0] != '-' && f[fl - 1] != '-' && !strstr(f, "--"));
    for (size_t i = 0; i < fl; i++) CHECK((f[i] >= 'a' && f[i] <= 'z') || (f[i] >= '0' && f[i] <= '9') || f[i] == '-');
    const char *p = m->prefix;
    size_t pl = strlen(p);
    CHECK(pl == 0 || (p[0] != '/' && p[pl - 1] != '/' && !strstr(p, "//")));
}

/* The line "KEY = ..." of the explanation shows the secret's source only. */
static void check_secret_line(const char *x, const char *key, const cfg_secret *s)
{
    char want[512];
    if (s->value) snprintf(want, sizeof want, "\n%s = (secret, %s)\n", key, s->source);
    else snprintf(want, sizeof want, "\n%s = (not set)\n", key);
    CHECK(strstr(x, want) != NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dp_config c;
    cfg_err err;
    if (cfg_load_text((const char *)data, size, &c, &err) != 0) {
        check_printable(err.path, sizeof err.path, false);
        check_printable(err.message, sizeof err.message, false);
        CHECK(err.message[0] != '\0');
        CHECK(!c.gen2_account_key.value && !c.gen2_sas.value && !c.oauth_client_secret.value);
        cfg_free(&c);
        return 0;
    }
    CHECK(c.nmappings >= 1 && c.nmappings <= CFG_MAX_MAPPINGS);
    for (int i = 0; i < c.nmappings; i++) {
        check_mapping(&c.mappings[i]);
        for (int j = 0; j < i; j++) CHECK(strcmp(c.mappings[i].gen1_prefix, c.mappings[j].gen1_prefix) != 0);
    }
    CHECK(c.gen1_nrewrites >= 0 && c.gen1_nrewrites <= CFG_MAX_REWRITES);
    CHECK(c.listen.port >= 0 && c.listen.port <= 65535 && c.listen.host[0]);
    CHECK(c.admin_listen.port >= 0 && c.admin_listen.port <= 65535 && c.admin_listen.host[0]);
    check_endpoint(c.gen1_endpoint, &c.gen1_addr, c.gen1_https);
    check_endpoint(c.gen2_endpoint, &c.gen2_addr, c.gen2_https);
    CHECK(c.max_body_bytes >= 1 && c.spool_max_bytes >= 1);
    CHECK(c.log_level >= 0 && c.log_level <= 3);
    CHECK(c.spool_dir[0] != '\0');
    CHECK(c.gen2_account[0] != '\0');
    switch (c.gen2_auth) {
    case CFG_AUTH_SHARED_KEY: CHECK(c.gen2_account_key.value && !c.gen2_sas.value && !c.oauth_client_secret.value); break;
    case CFG_AUTH_SAS: CHECK(c.gen2_sas.value && !c.gen2_account_key.value && !c.oauth_client_secret.value); break;
    case CFG_AUTH_CLIENT_CREDENTIALS:
        CHECK(c.oauth_client_secret.value && c.oauth_tenant[0] && c.oauth_client_id[0] && !c.gen2_account_key.value &&
              !c.gen2_sas.value);
        break;
    case CFG_AUTH_MANAGED_IDENTITY:
        CHECK(!c.oauth_client_secret.value && !c.gen2_account_key.value && !c.gen2_sas.value);
        break;
    default: CHECK(!"auth mode out of range");
    }
    CHECK(strcmp(cfg_phase_name(c.phase), "unknown") != 0);

    dbuf x;
    dbuf_init(&x, 1 << 20);
    CHECK(cfg_explain(&c, &x) == 0);
    check_printable(x.data, x.len + 1, true);
    check_secret_line(x.data, "gen2.auth.account_key", &c.gen2_account_key);
    check_secret_line(x.data, "gen2.auth.sas", &c.gen2_sas);
    check_secret_line(x.data, "gen2.auth.client_secret", &c.oauth_client_secret);
    dbuf_free(&x);

    cfg_free(&c);
    CHECK(!c.gen2_account_key.value && !c.gen2_sas.value && !c.oauth_client_secret.value);
    cfg_free(&c);
    return 0;
}
