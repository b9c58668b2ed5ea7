/*
 * test_pipeline: the pipeline's phase and direction rules (proxy/pipeline.h), on a real journal and spool
 * in a temporary directory, with both upstreams at a closed loopback port (records are handed to their
 * engine, which keeps retrying until pipe_stop leaves them in the journal):
 *   - an operator's resync follows pipe_set_phase (to Gen1 in gen2-primary, to Gen2 otherwise), each record
 *     keeps its side across a restart, and pipe_owed counts them per side (also after recovery);
 *   - pipe_accept journals nothing in gen2-only, pipe_set_phase refuses an unknown phase;
 *   - without a Gen1 there is no mirror: gen2-primary is refused (pipe_set_phase, pipe_accept), and a
 *     journal holding records for Gen1 refuses the start, naming journal.dir.
 * The integration tests (test_gen2_primary.py) run the same rules through the daemon.
 */
#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "gen1client.h"
#include "httpc.h"
#include "metrics.h"
#include "pipeline.h"
#include "temu.h"
#include "tharness.h"

static char tmp_dir[64];
static void tmp_dir_rm(void)
{
    if (tmp_dir[0]) nftw(tmp_dir, temu_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    tmp_dir[0] = 0;
}

static void make_dir(void)
{
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/dp-pipe-XXXXXX");
    if (!mkdtemp(tmp_dir)) TH_FAIL_AT("mkdtemp: %s", strerror(errno));
    atexit(tmp_dir_rm);
    signal(SIGPIPE, SIG_IGN);
}

/* One open pipeline with what it runs on. */
typedef struct env {
    dp_config cfg;
    httpc *http;
    gen1c *g1;
    metrics *m;
    pipeline *p;
} env;

/* The config: phase, and Gen1 at a closed port or none. */
static void load_cfg(env *e, const char *phase, bool with_gen1)
{
    char text[2048];
    snprintf(text, sizeof text,
             "{\"listen\":\"127.0.0.1:0\",\"admin\":{\"listen\":\"127.0.0.1:0\"},\"phase\":\"%s\","
             "\"spool\":{\"dir\":\"%s\"},%s"
             "\"applier\":{\"backoff_base_ms\":50,\"backoff_cap_ms\":200},"
             "\"gen2\":{\"endpoint\":\"http://127.0.0.1:1\",\"account\":\"%s\","
             "\"auth\":{\"mode\":\"shared_key\",\"account_key\":\"%s\"},"
             "\"mappings\":[{\"gen1_prefix\":\"/\",\"filesystem\":\"lake\",\"prefix\":\"\"}]}}",
             phase, tmp_dir, with_gen1 ? "\"gen1\":{\"endpoint\":\"http://127.0.0.1:1\"}," : "", TEMU_ACCOUNT,
             TEMU_KEY);
    cfg_err ce;
    if (cfg_load_text(text, strlen(text), &e->cfg, &ce) != 0) TH_FAIL_AT("config: %s: %s", ce.path, ce.message);
}

/* Open (0) or not (-1, with the message in err). */
static int env_open(env *e, const char *phase, bool with_gen1, char *err, size_t errlen)
{
    memset(e, 0, sizeof *e);
    load_cfg(e, phase, with_gen1);
    if (httpc_start(0, &e->http, err, errlen) != 0) TH_FAIL_AT("httpc_start: %s", err);
    if (gen1c_new(&e->cfg, e->http, &e->g1, err, errlen) != 0) TH_FAIL_AT("gen1c_new: %s", err);
    e->m = metrics_new();
    if (!e->m) TH_FAIL_AT("metrics_new");
    return pipe_open(&e->cfg, e->http, e->g1, e->m, &e->p, err, errlen);
}

static void env_close(env *e)
{
    if (e->p) pipe_stop(e->p, 0);
    httpc_stop(e->http);
    pipe_free(e->p);
    gen1c_free(e->g1);
    metrics_free(e->m);
    cfg_free(&e->cfg);
}

/* How many listed records are for each side ("to" of pipe_list_json). */
static void listed(pipeline *p, int *g1, int *g2)
{
    dbuf b;
    dbuf_init(&b, 1u << 20);
    ASSERT_EQ_INT(pipe_list_json(p, false, 0, 1000, &b), 0);
    *g1 = *g2 = 0;
    for (const char *s = b.data; s && (s = strstr(s, "\"to\":\"")); s += 6) {
        if (strncmp(s + 6, "gen1\"", 5) == 0) (*g1)++;
        else if (strncmp(s + 6, "gen2\"", 5) == 0) (*g2)++;
    }
    dbuf_free(&b);
}

TEST(resyncs_follow_the_phase)
{
    make_dir();
    env e;
    char err[1024] = "";
    if (env_open(&e, "gen1-primary", true, err, sizeof err) != 0) TH_FAIL_AT("pipe_open: %s", err);
    ASSERT_EQ_INT((int)pipe_phase(e.p), (int)CFG_PHASE_GEN1_PRIMARY);
    ASSERT_TRUE(!pipe_to_gen1(e.p));
    uint64_t seq = 0;
    ASSERT_EQ_INT(pipe_resync(e.p, "/a", &seq), 0);
    ASSERT_EQ_INT((int)pipe_owed(e.p, false), 1);
    ASSERT_EQ_INT((int)pipe_owed(e.p, true), 0);
    /* gen2-primary: an operator's resync copies Gen2 -> Gen1 */
    ASSERT_EQ_INT(pipe_set_phase(e.p, CFG_PHASE_GEN2_PRIMARY), 0);
    ASSERT_TRUE(pipe_to_gen1(e.p));
    ASSERT_EQ_INT(pipe_resync_node(e.p, "/b", true, &seq), 0);
    ASSERT_EQ_INT(pipe_resync(e.p, "/c", &seq), 0);
    ASSERT_EQ_INT((int)pipe_owed(e.p, true), 2);
    ASSERT_EQ_INT((int)pipe_owed(e.p, false), 1);
    int g1, g2;
    listed(e.p, &g1, &g2);
    ASSERT_EQ_INT(g1, 2);
    ASSERT_EQ_INT(g2, 1);
    /* back: Gen1 -> Gen2 again; the mirror's status is there whatever the phase */
    ASSERT_EQ_INT(pipe_set_phase(e.p, CFG_PHASE_GEN1_PRIMARY), 0);
    ASSERT_EQ_INT(pipe_resync(e.p, "/d", &seq), 0);
    ASSERT_EQ_INT((int)pipe_owed(e.p, false), 2);
    dbuf b;
    dbuf_init(&b, 1u << 20);
    ASSERT_EQ_INT(pipe_mirror_status_json(e.p, &b), 0);
    dbuf_reset(&b);
    ASSERT_EQ_INT(pipe_status_json(e.p, &b), 0);
    ASSERT_TRUE(strstr(b.data, "\"owed\":{\"gen1\":2,\"gen2\":2}") != NULL);
    ASSERT_TRUE(strstr(b.data, "\"phase\":\"gen1-primary\"") != NULL);
    ASSERT_TRUE(strstr(b.data, "\"mirror\":{") != NULL);
    dbuf_free(&b);
    /* no journal for gen2-only writes, nor for an unknown phase */
    whreq wr;
    memset(&wr, 0, sizeof wr);
    ASSERT_EQ_INT(pipe_accept(e.p, CFG_PHASE_GEN2_ONLY, &wr, NULL, NULL, false, NULL, NULL, &seq), -EINVAL);
    ASSERT_EQ_INT(pipe_set_phase(e.p, (cfg_phase)7), -EINVAL);
    ASSERT_EQ_INT((int)pipe_phase(e.p), (int)CFG_PHASE_GEN1_PRIMARY);
    env_close(&e);

    /* a restart in the other phase: every record kept its side, counted again by recovery */
    if (env_open(&e, "gen2-primary", true, err, sizeof err) != 0) TH_FAIL_AT("pipe_open again: %s", err);
    ASSERT_TRUE(pipe_to_gen1(e.p));
    ASSERT_EQ_INT((int)pipe_owed(e.p, true), 2);
    ASSERT_EQ_INT((int)pipe_owed(e.p, false), 2);
    listed(e.p, &g1, &g2);
    ASSERT_EQ_INT(g1, 2);
    ASSERT_EQ_INT(g2, 2);
    env_close(&e);
}

TEST(no_gen1_no_mirror)
{
    make_dir();
    env e;
    char err[1024] = "";
    if (env_open(&e, "gen2-only", false, err, sizeof err) != 0) TH_FAIL_AT("pipe_open: %s", err);
    ASSERT_EQ_INT(pipe_set_phase(e.p, CFG_PHASE_GEN2_PRIMARY), -ENOTSUP);
    ASSERT_EQ_INT((int)pipe_phase(e.p), (int)CFG_PHASE_GEN2_ONLY);
    whreq wr;
    memset(&wr, 0, sizeof wr);
    uint64_t seq = 0;
    ASSERT_EQ_INT(pipe_accept(e.p, CFG_PHASE_GEN2_PRIMARY, &wr, NULL, NULL, false, NULL, NULL, &seq), -ENOTSUP);
    dbuf b;
    dbuf_init(&b, 1u << 20);
    ASSERT_EQ_INT(pipe_mirror_status_json(e.p, &b), 1);
    ASSERT_EQ_INT(pipe_set_phase(e.p, CFG_PHASE_GEN1_PRIMARY), 0);
    dbuf_free(&b);
    env_close(&e);

    /* a record for Gen1, journaled with a Gen1 ... */
    if (env_open(&e, "gen2-primary", true, err, sizeof err) != 0) TH_FAIL_AT("pipe_open: %s", err);
    ASSERT_EQ_INT(pipe_resync(e.p, "/x", &seq), 0);
    env_close(&e);
    /* ... refuses a start without one, and stays for a start with one */
    ASSERT_EQ_INT(env_open(&e, "gen2-only", false, err, sizeof err), -1);
    ASSERT_TRUE(strstr(err, "journal.dir") != NULL);
    ASSERT_TRUE(strstr(err, "1 live record(s) to be applied to Gen1") != NULL);
    ASSERT_TRUE(strstr(err, "gen1.endpoint") != NULL);
    e.p = NULL;
    env_close(&e);
    if (env_open(&e, "gen2-only", true, err, sizeof err) != 0) TH_FAIL_AT("pipe_open with Gen1: %s", err);
    ASSERT_EQ_INT((int)pipe_owed(e.p, true), 1);
    env_close(&e);
}

TESTS(T(resyncs_follow_the_phase), T(no_gen1_no_mirror));
