/*
 * temu: the one launcher unit tests use for the emulators, plus small loopback HTTP helpers.
 * temu_start runs `dualpipe-emu gen1|gen2` (path from env DUALPIPE_EMU; the test is skipped when it
 * is unset) as a child on free loopback ports with a fresh temporary directory, reads its ready line
 * (copying the emulator's log to stderr when it does not come up) and stops it when the test process
 * exits: pids and directories live in file statics for an atexit handler (a temu may sit on a stack
 * that is gone by then) and PR_SET_PDEATHSIG covers a test killed by its alarm. The admin port is
 * spoken over a plain socket (temu_admin, temu_counter, temu_fault) so the helpers do not depend on
 * the code under test; temu_raw_http sends one hand-written request anywhere. temu_srv is a
 * one-connection-at-a-time HTTP/1.1 server that records the last request it read and answers every
 * request with a canned reply, for checking exactly what goes on the wire. Test-only: plain statics,
 * fixed buffers.
 */
#ifndef DP_TEMU_H
#define DP_TEMU_H

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
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "tharness.h"

/* The Gen2 emulator's account and its public development key (tests/integration/emulib.py DEV_KEY). */
#define TEMU_ACCOUNT "devstoreaccount1"
#define TEMU_KEY "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

typedef struct temu {
    pid_t pid;
    char dir[128];                  /* temporary directory: data/ and emu.log */
    int port, admin_port, dn_port;  /* dn_port: 0 when the emulator has no datanode listener */
    char url[64];                   /* "http://127.0.0.1:PORT" */
} temu;

/* What the exit handler needs to stop every emulator of this process. */
#define TEMU_MAX 8
static struct {
    pid_t pid;
    int out_fd; /* the emulator's stdout, kept open so a late write cannot SIGPIPE it */
    char dir[128];
} temu_slots[TEMU_MAX];
static int temu_nslots;

static int temu_rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    remove(p);
    return 0;
}

/* SIGTERM, then SIGKILL when it has not exited within 2 s. */
static void temu_kill(pid_t pid)
{
    kill(pid, SIGTERM);
    for (int i = 0; i < 200; i++) {
        pid_t w = waitpid(pid, NULL, WNOHANG);
        if (w == pid || (w < 0 && errno != EINTR)) return;
        usleep(10000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

static void temu_stop_slot(int i)
{
    if (temu_slots[i].pid > 0) {
        temu_kill(temu_slots[i].pid);
        temu_slots[i].pid = 0;
    }
    if (temu_slots[i].out_fd >= 0) {
        close(temu_slots[i].out_fd);
        temu_slots[i].out_fd = -1;
    }
    if (temu_slots[i].dir[0]) {
        nftw(temu_slots[i].dir, temu_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
        temu_slots[i].dir[0] = '\0';
    }
}

static void temu_stop_all(void)
{
    for (int i = 0; i < temu_nslots; i++) temu_stop_slot(i);
}

/* Stop e's emulator now and remove its directory (both also happen at exit). */
static inline void temu_stop(temu *e)
{
    for (int i = 0; i < temu_nslots; i++)
        if (e->pid > 0 && temu_slots[i].pid == e->pid) temu_stop_slot(i);
    e->pid = 0;
}

/* Copy the emulator's log to stderr (it did not come up). */
static inline void temu_dump_log(const temu *e)
{
    char path[192];
    snprintf(path, sizeof path, "%s/emu.log", e->dir);
    FILE *f = fopen(path, "r");
    if (!f) return;
    fprintf(stderr, "---- %s ----\n", path);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) fwrite(buf, 1, n, stderr);
    fclose(f);
    fprintf(stderr, "---- end of emulator log ----\n");
}

#define TEMU_FAIL_LOG(e, ...)                                                                      \
    do {                                                                                           \
        temu_dump_log(e);                                                                          \
        TH_FAIL_AT(__VA_ARGS__);                                                                   \
    } while (0)

/* The port after key ("listen=" ...) in the ready line, 0 when absent or bad. */
static int temu_port_after(const char *line, const char *key)
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

/*
 * Start `dualpipe-emu KIND` (KIND "gen1" or "gen2"; gen2 with account TEMU_ACCOUNT and key TEMU_KEY)
 * with extra arguments (NULL-terminated list, may be NULL) and, if secret is not NULL, env
 * DUALPIPE_EMU_CLIENT_SECRET. Fails the test (with the emulator's log) when it does not come up
 * within 15 s.
 */
static inline void temu_start(temu *e, const char *kind, const char *const *extra, const char *secret)
{
    memset(e, 0, sizeof *e);
    const char *bin = getenv("DUALPIPE_EMU");
    if (!bin || !*bin) TH_SKIP_NOW("DUALPIPE_EMU is not set (run through ctest)");
    snprintf(e->dir, sizeof e->dir, "/tmp/dp-temu-XXXXXX");
    if (!mkdtemp(e->dir)) TH_FAIL_AT("mkdtemp: %s", strerror(errno));
    if (temu_nslots == 0) atexit(temu_stop_all);
    if (temu_nslots >= TEMU_MAX) TH_FAIL_AT("too many emulators");
    int slot = temu_nslots++;
    temu_slots[slot].out_fd = -1;
    snprintf(temu_slots[slot].dir, sizeof temu_slots[slot].dir, "%s", e->dir);
    char data[192], log[192];
    snprintf(data, sizeof data, "%s/data", e->dir);
    snprintf(log, sizeof log, "%s/emu.log", e->dir);
    if (mkdir(data, 0700) != 0) TH_FAIL_AT("mkdir: %s", strerror(errno));

    const char *argv[48] = {bin, kind, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--data", data};
    int argc = 8;
    if (strcmp(kind, "gen2") == 0) {
        argv[argc++] = "--account";
        argv[argc++] = TEMU_ACCOUNT;
        argv[argc++] = "--key";
        argv[argc++] = TEMU_KEY;
    } else {
        argv[argc++] = "--log-level";
        argv[argc++] = "warn";
    }
    for (int i = 0; extra && extra[i]; i++) {
        if (argc >= 46) TH_FAIL_AT("too many emulator arguments");
        argv[argc++] = extra[i];
    }
    argv[argc] = NULL;

    int pfd[2];
    if (pipe(pfd) != 0) TH_FAIL_AT("pipe: %s", strerror(errno));
    pid_t parent = getpid();
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) TH_FAIL_AT("fork: %s", strerror(errno));
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(127);
        dup2(pfd[1], 1);
        close(pfd[0]);
        close(pfd[1]);
        int lfd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (lfd >= 0) {
            dup2(lfd, 2);
            close(lfd);
        }
        if (secret) setenv("DUALPIPE_EMU_CLIENT_SECRET", secret, 1);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    e->pid = temu_slots[slot].pid = pid;
    close(pfd[1]);
    temu_slots[slot].out_fd = pfd[0];

    char line[512];
    size_t n = 0;
    time_t deadline = time(NULL) + 15;
    for (;;) {
        if (n + 1 >= sizeof line) TEMU_FAIL_LOG(e, "emulator ready line too long");
        if (time(NULL) > deadline) TEMU_FAIL_LOG(e, "emulator did not print its ready line");
        struct pollfd p = {.fd = pfd[0], .events = POLLIN};
        if (poll(&p, 1, 500) <= 0) continue;
        ssize_t r = read(pfd[0], line + n, 1);
        if (r <= 0) TEMU_FAIL_LOG(e, "emulator exited before its ready line");
        if (line[n] == '\n') break;
        n++;
    }
    line[n] = '\0';
    if (strncmp(line, "dualpipe-emu ready", 18) != 0) TEMU_FAIL_LOG(e, "unexpected first line: %s", line);
    e->port = temu_port_after(line, " listen=");
    e->admin_port = temu_port_after(line, " admin=");
    e->dn_port = temu_port_after(line, " datanode=");
    if (!e->port || !e->admin_port) TEMU_FAIL_LOG(e, "bad ready line: %s", line);
    snprintf(e->url, sizeof e->url, "http://127.0.0.1:%d", e->port);
}

/* Send req (a complete HTTP/1.1 request with "Connection: close") to 127.0.0.1:port; the answer
 * goes to resp (NUL-terminated, cut at cap). Returns the status or -1. */
static inline int temu_raw_http(int port, const char *req, char *resp, size_t cap)
{
    resp[0] = '\0';
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

/* One exchange with the emulator's admin port (data: the body, may be NULL). Returns the status;
 * the answer's body (malloc'd) goes to *body when body is not NULL. Fails the test when there is no
 * HTTP answer. */
static inline int temu_admin(const temu *e, const char *method, const char *path, const char *data, char **body)
{
    char req[2048];
    int n = snprintf(req, sizeof req,
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
                     method, path, data ? strlen(data) : 0, data ? data : "");
    if (n < 0 || (size_t)n >= sizeof req) TH_FAIL_AT("admin request too long");
    size_t cap = 1 << 16;
    char *resp = malloc(cap);
    if (!resp) TH_FAIL_AT("out of memory");
    int status = temu_raw_http(e->admin_port, req, resp, cap);
    if (status < 0) TH_FAIL_AT("admin %s %s: no HTTP answer", method, path);
    if (strlen(resp) + 1 >= cap) TH_FAIL_AT("admin %s %s: answer too large", method, path);
    if (body) {
        const char *b = strstr(resp, "\r\n\r\n");
        *body = strdup(b ? b + 4 : "");
    }
    free(resp);
    return status;
}

/* Requests the emulator counted under label ("POST token", "GET imds", "PUT create-file"). */
static inline long temu_counter(const temu *e, const char *label)
{
    char *body = NULL;
    if (temu_admin(e, "GET", "/counters", NULL, &body) != 200) TH_FAIL_AT("GET /counters failed");
    json_t *j = json_loads(body, 0, NULL);
    free(body);
    if (!j) TH_FAIL_AT("counters: not JSON");
    json_t *v = json_object_get(json_object_get(j, "requests"), label);
    long n = json_is_integer(v) ? (long)json_integer_value(v) : 0;
    json_decref(j);
    return n;
}

/* POST one fault rule to the emulator's admin endpoint; fails the test when it is refused. */
static inline void temu_fault(const temu *e, const char *rule)
{
    char *body = NULL;
    int st = temu_admin(e, "POST", "/faults", rule, &body);
    if (st != 200) TH_FAIL_AT("adding fault rule %s: status %d: %s", rule, st, body ? body : "");
    free(body);
}

/* A port nothing listens on (bound, then closed). */
static inline int temu_dead_port(void)
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

#define TEMU_SRV_HEAD 65536
#define TEMU_SRV_BODY (4u << 20)

typedef struct temu_srv {
    int lfd, port;
    pthread_t thr;
    pthread_mutex_t mu;
    char reply[8192];         /* canned answer, sent for every request */
    char head[TEMU_SRV_HEAD]; /* last request line + headers (up to the blank line) */
    char body[TEMU_SRV_BODY]; /* last request body */
    size_t body_len;
    int nreq, nconn;
} temu_srv;

static ssize_t temu_srv_find(const char *buf, size_t n, const char *needle)
{
    size_t k = strlen(needle);
    for (size_t i = 0; i + k <= n; i++)
        if (memcmp(buf + i, needle, k) == 0) return (ssize_t)i;
    return -1;
}

static void temu_srv_conn(temu_srv *s, int fd)
{
    static char buf[TEMU_SRV_HEAD + TEMU_SRV_BODY];
    size_t n = 0;
    for (;;) {
        ssize_t end;
        while ((end = temu_srv_find(buf, n, "\r\n\r\n")) < 0) {
            if (n >= TEMU_SRV_HEAD) return;
            ssize_t r = read(fd, buf + n, TEMU_SRV_HEAD - n);
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
        if (clen > TEMU_SRV_BODY) return;
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

static void *temu_srv_main(void *arg)
{
    temu_srv *s = arg;
    for (;;) {
        int fd = accept(s->lfd, NULL, NULL);
        if (fd < 0) continue;
        pthread_mutex_lock(&s->mu);
        s->nconn++;
        pthread_mutex_unlock(&s->mu);
        temu_srv_conn(s, fd);
        close(fd);
    }
    return NULL;
}

/* Start the server (runs until the test process exits). */
static inline void temu_srv_start(temu_srv *s, const char *reply)
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
    if (pthread_create(&s->thr, NULL, temu_srv_main, s) != 0) TH_FAIL_AT("pthread_create");
    pthread_detach(s->thr);
}

static inline void temu_srv_set_reply(temu_srv *s, const char *reply)
{
    pthread_mutex_lock(&s->mu);
    snprintf(s->reply, sizeof s->reply, "%s", reply);
    pthread_mutex_unlock(&s->mu);
}

/* Copy of the last request head. */
static inline void temu_srv_last(temu_srv *s, char *head, size_t cap)
{
    pthread_mutex_lock(&s->mu);
    snprintf(head, cap, "%s", s->head);
    pthread_mutex_unlock(&s->mu);
}

/* Does the request head hold a header line "Name: value" (name case-insensitive, value exact; any
 * value when value is NULL)? */
static inline bool temu_head_has(const char *head, const char *name, const char *value)
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
