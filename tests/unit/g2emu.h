/*
 * g2emu: test helper that runs the Gen2 emulator (`dualpipe-emu gen2`, path from env DUALPIPE_EMU) as a
 * child of the current test process, on free loopback ports with a fresh data directory, and talks to
 * its admin port (counters, fault rules) over a plain socket so the helper does not depend on the
 * code under test. The emulator dies with the test: an atexit handler kills it and removes the data
 * directory, and PR_SET_PDEATHSIG covers a test killed by its alarm. Test-only: one emulator per
 * test process (tharness forks each test).
 */
#ifndef DP_G2EMU_H
#define DP_G2EMU_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "tharness.h"

#define G2EMU_ACCOUNT "devstoreaccount1"
/* The public development account key (tests/integration/emulib.py DEV_KEY). */
#define G2EMU_KEY "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

typedef struct g2emu {
    pid_t pid;
    int port;
    int admin_port;
    char dir[256];
    char url[64];
} g2emu;

static g2emu *g2emu_current;

static inline int g2emu_rm(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(p);
    return 0;
}

static inline void g2emu_stop(void)
{
    g2emu *e = g2emu_current;
    if (!e) return;
    g2emu_current = NULL;
    if (e->pid > 0) {
        kill(e->pid, SIGKILL);
        waitpid(e->pid, NULL, 0);
        e->pid = 0;
    }
    if (e->dir[0]) {
        nftw(e->dir, g2emu_rm, 16, FTW_DEPTH | FTW_PHYS);
        char logpath[300];
        snprintf(logpath, sizeof logpath, "%s.log", e->dir);
        unlink(logpath);
    }
}

/* Copy the emulator's log to stderr (when it failed to start). */
static inline void g2emu_dump_log(const char *logpath)
{
    FILE *f = fopen(logpath, "r");
    if (!f) return;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) fwrite(buf, 1, n, stderr);
    fclose(f);
}

static inline int g2emu_port_of(const char *line, const char *key)
{
    const char *p = strstr(line, key);
    if (!p) return -1;
    p = strchr(p, ':');
    if (!p) return -1;
    char *end = NULL;
    long v = strtol(p + 1, &end, 10);
    if (!end || end == p + 1 || v <= 0 || v > 65535) return -1;
    return (int)v;
}

/* Start the emulator with extra arguments (NULL-terminated list, may be NULL) and, if secret is not
 * NULL, DUALPIPE_EMU_CLIENT_SECRET. Fails the test when it does not come up within 15 s. */
static inline void g2emu_start(g2emu *e, const char *const *extra, const char *secret)
{
    memset(e, 0, sizeof *e);
    const char *bin = getenv("DUALPIPE_EMU");
    if (!bin || !*bin) TH_SKIP_NOW("DUALPIPE_EMU not set (run through ctest)");
    snprintf(e->dir, sizeof e->dir, "/tmp/dp-g2test-XXXXXX");
    if (!mkdtemp(e->dir)) TH_FAIL_AT("mkdtemp: %s", strerror(errno));
    g2emu_current = e;
    atexit(g2emu_stop);
    int out[2];
    if (pipe(out) != 0) TH_FAIL_AT("pipe: %s", strerror(errno));
    char logpath[300];
    snprintf(logpath, sizeof logpath, "%s.log", e->dir);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) TH_FAIL_AT("fork: %s", strerror(errno));
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(127);
        dup2(out[1], 1);
        close(out[0]);
        close(out[1]);
        int lf = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (lf >= 0) {
            dup2(lf, 2);
            close(lf);
        }
        if (secret) setenv("DUALPIPE_EMU_CLIENT_SECRET", secret, 1);
        const char *argv[40];
        int n = 0;
        argv[n++] = bin;
        argv[n++] = "gen2";
        argv[n++] = "--listen";
        argv[n++] = "127.0.0.1:0";
        argv[n++] = "--admin";
        argv[n++] = "127.0.0.1:0";
        argv[n++] = "--data";
        argv[n++] = e->dir;
        argv[n++] = "--account";
        argv[n++] = G2EMU_ACCOUNT;
        argv[n++] = "--key";
        argv[n++] = G2EMU_KEY;
        for (int i = 0; extra && extra[i] && n < 38; i++) argv[n++] = extra[i];
        argv[n] = NULL;
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    e->pid = pid;
    close(out[1]);
    char line[512];
    size_t len = 0;
    time_t deadline = time(NULL) + 15;
    for (;;) {
        struct pollfd pfd = {out[0], POLLIN, 0};
        if (time(NULL) > deadline) {
            g2emu_dump_log(logpath);
            TH_FAIL_AT("emulator did not print its ready line");
        }
        if (poll(&pfd, 1, 500) <= 0) continue;
        ssize_t r = read(out[0], line + len, sizeof line - 1 - len);
        if (r <= 0) {
            g2emu_dump_log(logpath);
            TH_FAIL_AT("emulator exited before it was ready");
        }
        len += (size_t)r;
        line[len] = 0;
        if (strchr(line, '\n')) break;
        if (len >= sizeof line - 1) TH_FAIL_AT("emulator ready line too long");
    }
    /* Keep out[0] open: the emulator prints nothing more on stdout. */
    if (strncmp(line, "dualpipe-emu ready", 18) != 0) TH_FAIL_AT("unexpected first line: %s", line);
    e->port = g2emu_port_of(line, "listen=");
    e->admin_port = g2emu_port_of(line, "admin=");
    if (e->port < 0 || e->admin_port < 0) TH_FAIL_AT("cannot parse ready line: %s", line);
    snprintf(e->url, sizeof e->url, "http://127.0.0.1:%d", e->port);
}

/* One HTTP/1.0 exchange with the admin port. Returns the status; body (malloc'd) in *body. */
static inline int g2emu_admin(const g2emu *e, const char *method, const char *path, const char *data, char **body)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) TH_FAIL_AT("socket: %s", strerror(errno));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)e->admin_port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) TH_FAIL_AT("admin connect: %s", strerror(errno));
    char req[2048];
    int n = snprintf(req, sizeof req, "%s %s HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: %zu\r\n\r\n%s", method,
                     path, data ? strlen(data) : 0, data ? data : "");
    if (n < 0 || (size_t)n >= sizeof req || write(fd, req, (size_t)n) != n) TH_FAIL_AT("admin write");
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (len + 1 >= cap) TH_FAIL_AT("admin answer too large");
        ssize_t r = read(fd, buf + len, cap - 1 - len);
        if (r <= 0) break;
        len += (size_t)r;
    }
    close(fd);
    buf[len] = 0;
    int status = 0;
    if (sscanf(buf, "HTTP/%*s %d", &status) != 1) TH_FAIL_AT("admin: bad answer");
    const char *b = strstr(buf, "\r\n\r\n");
    if (body) *body = strdup(b ? b + 4 : "");
    free(buf);
    return status;
}

/* Requests the emulator counted under label ("POST token", "GET imds", "PUT create-file"). */
static inline long g2emu_counter(const g2emu *e, const char *label)
{
    char *body = NULL;
    if (g2emu_admin(e, "GET", "/counters", NULL, &body) != 200) TH_FAIL_AT("GET /counters failed");
    json_t *j = json_loads(body, 0, NULL);
    free(body);
    if (!j) TH_FAIL_AT("counters: not JSON");
    json_t *v = json_object_get(json_object_get(j, "requests"), label);
    long n = json_is_integer(v) ? (long)json_integer_value(v) : 0;
    json_decref(j);
    return n;
}

static inline void g2emu_fault(const g2emu *e, const char *rule)
{
    if (g2emu_admin(e, "POST", "/faults", rule, NULL) != 200) TH_FAIL_AT("fault rule refused: %s", rule);
}

#endif
