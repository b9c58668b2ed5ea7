/*
 * thttp: helpers for unit tests that talk HTTP over loopback. th_emu_start runs `dualpipe-emu gen1`
 * (path from env DUALPIPE_EMU; the test is skipped when it is unset) in a temporary data directory,
 * reads its ready line and stops it when the test process exits (atexit, and PR_SET_PDEATHSIG for a
 * test killed by its alarm). th_raw_http sends one hand-written request (admin calls, checks that must
 * not depend on the client under test). th_srv is a one-connection-at-a-time HTTP/1.1 server that
 * records the last request it read and answers every request with a canned reply, for checking
 * exactly what goes on the wire. Test-only: plain statics, fixed buffers.
 */
#ifndef DP_THTTP_H
#define DP_THTTP_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tharness.h"

typedef struct th_emu {
    pid_t pid;
    char dir[128];
    int port, admin_port, dn_port;
    char base[64]; /* "http://127.0.0.1:PORT" */
} th_emu;

/* What atexit needs to stop every emulator, kept here (a th_emu may live on a returned stack). */
#define TH_MAX_EMUS 8
static struct {
    pid_t pid;
    char dir[128];
} th_emus[TH_MAX_EMUS];
static int th_nemus;

static int th_rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

static void th_emu_stop_slot(int i)
{
    if (th_emus[i].pid > 0) {
        kill(th_emus[i].pid, SIGTERM);
        waitpid(th_emus[i].pid, NULL, 0);
        th_emus[i].pid = 0;
    }
    if (th_emus[i].dir[0]) {
        nftw(th_emus[i].dir, th_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
        th_emus[i].dir[0] = '\0';
    }
}

/* Stop e's emulator now (it is also stopped at exit). */
static inline void th_emu_stop(th_emu *e)
{
    for (int i = 0; i < th_nemus; i++)
        if (e->pid > 0 && th_emus[i].pid == e->pid) th_emu_stop_slot(i);
    e->pid = 0;
}

static void th_emu_stop_all(void)
{
    for (int i = 0; i < th_nemus; i++) th_emu_stop_slot(i);
}

static int th_port_after(const char *line, const char *key)
{
    const char *p = strstr(line, key);
    if (!p) return 0;
    p += strlen(key);
    const char *colon = strchr(p, ':');
    if (!colon) return 0;
    char *end = NULL;
    long v = strtol(colon + 1, &end, 10);
    if (end == colon + 1 || v <= 0 || v > 65535) return 0;
    return (int)v;
}

/* Start `dualpipe-emu gen1` with extra arguments (NULL-terminated list, may be NULL). */
static inline void th_emu_start(th_emu *e, const char *const *extra)
{
    const char *bin = getenv("DUALPIPE_EMU");
    if (!bin || !*bin) TH_SKIP_NOW("DUALPIPE_EMU is not set");
    memset(e, 0, sizeof *e);
    snprintf(e->dir, sizeof e->dir, "/tmp/dp-thttp-XXXXXX");
    if (!mkdtemp(e->dir)) TH_FAIL_AT("mkdtemp: %s", strerror(errno));
    if (th_nemus == 0) atexit(th_emu_stop_all);
    if (th_nemus >= TH_MAX_EMUS) TH_FAIL_AT("too many emulators");
    int slot = th_nemus++;
    snprintf(th_emus[slot].dir, sizeof th_emus[slot].dir, "%s", e->dir);
    char data[192], log[192];
    snprintf(data, sizeof data, "%s/data", e->dir);
    snprintf(log, sizeof log, "%s/emu.log", e->dir);
    if (mkdir(data, 0700) != 0) TH_FAIL_AT("mkdir: %s", strerror(errno));
    const char *argv[40] = {bin, "gen1", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--data", data,
                            "--log-level", "warn"};
    int argc = 10;
    for (int i = 0; extra && extra[i] && argc < 38; i++) argv[argc++] = extra[i];
    argv[argc] = NULL;
    int pfd[2];
    if (pipe(pfd) != 0) TH_FAIL_AT("pipe: %s", strerror(errno));
    pid_t parent = getpid();
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) TH_FAIL_AT("fork: %s", strerror(errno));
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent) _exit(127);
        int lfd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(pfd[1], 1);
        if (lfd >= 0) dup2(lfd, 2);
        close(pfd[0]);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    e->pid = th_emus[slot].pid = pid;
    close(pfd[1]);
    char line[512];
    size_t n = 0;
    while (n + 1 < sizeof line) {
        struct pollfd p = {.fd = pfd[0], .events = POLLIN};
        if (poll(&p, 1, 10000) <= 0) TH_FAIL_AT("emulator did not print its ready line (see %s)", log);
        ssize_t r = read(pfd[0], line + n, 1);
        if (r <= 0) TH_FAIL_AT("emulator exited before its ready line");
        if (line[n] == '\n') break;
        n++;
    }
    line[n] = '\0';
    close(pfd[0]);
    e->port = th_port_after(line, " listen=");
    e->admin_port = th_port_after(line, " admin=");
    e->dn_port = th_port_after(line, " datanode=");
    if (!e->port || !e->admin_port) TH_FAIL_AT("bad ready line: %s", line);
    snprintf(e->base, sizeof e->base, "http://127.0.0.1:%d", e->port);
}

/* Send req (a complete HTTP/1.1 request with "Connection: close") to 127.0.0.1:port; the answer
 * goes to resp (NUL-terminated). Returns the status or -1. */
static inline int th_raw_http(int port, const char *req, char *resp, size_t cap)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        if (fd >= 0) close(fd);
        return -1;
    }
    size_t len = strlen(req), off = 0;
    while (off < len) {
        ssize_t w = write(fd, req + off, len - off);
        if (w <= 0) break;
        off += (size_t)w;
    }
    size_t n = 0;
    ssize_t r;
    while (n + 1 < cap && (r = read(fd, resp + n, cap - 1 - n)) > 0) n += (size_t)r;
    resp[n] = '\0';
    close(fd);
    int status = -1;
    if (strncmp(resp, "HTTP/1.", 7) == 0 && n > 12) {
        char *end = NULL;
        long v = strtol(resp + 9, &end, 10);
        if (end != resp + 9) status = (int)v;
    }
    return status;
}

/* POST one fault rule to the emulator's admin endpoint. */
static inline void th_emu_fault(const th_emu *e, const char *rule)
{
    char req[1024], resp[8192];
    snprintf(req, sizeof req,
             "POST /faults HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
             strlen(rule), rule);
    int st = th_raw_http(e->admin_port, req, resp, sizeof resp);
    if (st != 200) TH_FAIL_AT("adding fault rule %s: status %d: %s", rule, st, resp);
}

/* A port nothing listens on (bound, then closed). */
static inline int th_dead_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || getsockname(fd, (struct sockaddr *)&a, &al) != 0)
        TH_FAIL_AT("bind: %s", strerror(errno));
    close(fd);
    return ntohs(a.sin_port);
}

/* ---- raw recording server ---- */

#define TH_SRV_HEAD 65536
#define TH_SRV_BODY (4u << 20)

typedef struct th_srv {
    int lfd, port;
    pthread_t thr;
    pthread_mutex_t mu;
    char reply[8192];         /* canned answer, sent for every request */
    char head[TH_SRV_HEAD];   /* last request line + headers (up to the blank line) */
    char body[TH_SRV_BODY];   /* last request body */
    size_t body_len;
    int nreq, nconn;
} th_srv;

static ssize_t th_srv_find(const char *buf, size_t n, const char *needle)
{
    size_t k = strlen(needle);
    for (size_t i = 0; i + k <= n; i++)
        if (memcmp(buf + i, needle, k) == 0) return (ssize_t)i;
    return -1;
}

static void th_srv_conn(th_srv *s, int fd)
{
    static char buf[TH_SRV_HEAD + TH_SRV_BODY];
    size_t n = 0;
    for (;;) {
        ssize_t end;
        while ((end = th_srv_find(buf, n, "\r\n\r\n")) < 0) {
            if (n >= TH_SRV_HEAD) return;
            ssize_t r = read(fd, buf + n, TH_SRV_HEAD - n);
            if (r <= 0) return;
            n += (size_t)r;
        }
        size_t hlen = (size_t)end + 4;
        size_t clen = 0;
        for (size_t i = 0; i + 16 < hlen; i++) {
            if (strncasecmp(buf + i, "\r\ncontent-length:", 17) == 0) {
                char *e = NULL;
                unsigned long v = strtoul(buf + i + 17, &e, 10);
                if (e == buf + i + 17) return; /* malformed: drop the connection */
                clen = (size_t)v;
                break;
            }
        }
        if (clen > TH_SRV_BODY) return;
        while (n < hlen + clen) {
            ssize_t r = read(fd, buf + n, hlen + clen - n);
            if (r <= 0) return;
            n += (size_t)r;
        }
        pthread_mutex_lock(&s->mu);
        memcpy(s->head, buf, hlen);
        s->head[hlen] = '\0';
        memcpy(s->body, buf + hlen, clen);
        s->body_len = clen;
        s->nreq++;
        size_t rl = strlen(s->reply);
        char reply[sizeof s->reply];
        memcpy(reply, s->reply, rl);
        pthread_mutex_unlock(&s->mu);
        size_t off = 0;
        while (off < rl) {
            ssize_t w = write(fd, reply + off, rl - off);
            if (w <= 0) return;
            off += (size_t)w;
        }
        memmove(buf, buf + hlen + clen, n - hlen - clen);
        n -= hlen + clen;
    }
}

static void *th_srv_main(void *arg)
{
    th_srv *s = arg;
    for (;;) {
        int fd = accept(s->lfd, NULL, NULL);
        if (fd < 0) continue;
        pthread_mutex_lock(&s->mu);
        s->nconn++;
        pthread_mutex_unlock(&s->mu);
        th_srv_conn(s, fd);
        close(fd);
    }
    return NULL;
}

/* Start the server (runs until the test process exits). */
static inline void th_srv_start(th_srv *s, const char *reply)
{
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    snprintf(s->reply, sizeof s->reply, "%s", reply);
    s->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    if (s->lfd < 0 || bind(s->lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(s->lfd, 16) != 0 ||
        getsockname(s->lfd, (struct sockaddr *)&a, &al) != 0)
        TH_FAIL_AT("server socket: %s", strerror(errno));
    s->port = ntohs(a.sin_port);
    if (pthread_create(&s->thr, NULL, th_srv_main, s) != 0) TH_FAIL_AT("pthread_create");
    pthread_detach(s->thr);
}

static inline void th_srv_set_reply(th_srv *s, const char *reply)
{
    pthread_mutex_lock(&s->mu);
    snprintf(s->reply, sizeof s->reply, "%s", reply);
    pthread_mutex_unlock(&s->mu);
}

/* Copy of the last request head. */
static inline void th_srv_last(th_srv *s, char *head, size_t cap)
{
    pthread_mutex_lock(&s->mu);
    snprintf(head, cap, "%s", s->head);
    pthread_mutex_unlock(&s->mu);
}

/* Does the request head hold a header line "Name: value" (name case-insensitive, value exact)? */
static inline bool th_head_has(const char *head, const char *name, const char *value)
{
    size_t nl = strlen(name);
    for (const char *p = strstr(head, "\r\n"); p && p[2]; p = strstr(p + 2, "\r\n")) {
        const char *l = p + 2;
        if (strncasecmp(l, name, nl) != 0 || l[nl] != ':') continue;
        if (!value) return true;
        const char *v = l + nl + 1;
        while (*v == ' ') v++;
        size_t vl = strlen(value);
        if (strncmp(v, value, vl) == 0 && strncmp(v + vl, "\r\n", 2) == 0) return true;
    }
    return false;
}

#endif
