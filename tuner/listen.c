/*
 * tuner/listen.c - hakmem-tuner --listen: GET /metrics (see listen.h).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "hakmem/shm.h"
#include "../tools/cli.h"
#include "../tools/metrics.h"
#include "listen.h"

#define REQ_MAX 8192
#define IO_TIMEOUT_S 2
#define REQ_MIN_MS   50       /* a request's least time, however close the next sample */

struct tuner_listen {
    int fd;
    int loopback;
    uint64_t requests;
    char url[128];
};

static uint64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

tuner_listen_t *tuner_listen_open(const char *spec, char *err, size_t errlen) {
    char host[256], port[16];
    const char *colon = strrchr(spec, ':');
    if (spec[0] == '[') {   /* [v6]:port */
        const char *close = strchr(spec, ']');
        if (close == NULL || close[1] != ':' || (size_t)(close - spec - 1) >= sizeof host) {
            snprintf(err, errlen, "--listen %s: expected [ADDR]:PORT", spec);
            return NULL;
        }
        memcpy(host, spec + 1, (size_t)(close - spec - 1));
        host[close - spec - 1] = '\0';
        snprintf(port, sizeof port, "%s", close + 2);
    } else if (colon == NULL) {
        snprintf(host, sizeof host, "127.0.0.1");
        snprintf(port, sizeof port, "%s", spec);
    } else {
        if ((size_t)(colon - spec) >= sizeof host) {
            snprintf(err, errlen, "--listen %s: address too long", spec);
            return NULL;
        }
        memcpy(host, spec, (size_t)(colon - spec));
        host[colon - spec] = '\0';
        if (host[0] == '\0') snprintf(host, sizeof host, "127.0.0.1");
        snprintf(port, sizeof port, "%s", colon + 1);
    }
    char *end;
    long pv = strtol(port, &end, 10);
    if (port[0] == '\0' || *end || pv < 0 || pv > 65535) {
        snprintf(err, errlen, "--listen %s: '%s' is not a port (0..65535)", spec, port);
        return NULL;
    }
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int gai = getaddrinfo(host, port, &hints, &res);
    if (gai != 0) {
        snprintf(err, errlen, "--listen %s: %s", spec, gai_strerror(gai));
        return NULL;
    }
    int fd = -1, e = 0;
    struct addrinfo *ai;
    for (ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
        if (fd < 0) {
            e = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 16) == 0) break;
        e = errno;
        close(fd);
        fd = -1;
    }
    if (fd < 0) {
        freeaddrinfo(res);
        snprintf(err, errlen, "--listen %s: %s", spec, strerror(e ? e : EADDRNOTAVAIL));
        return NULL;
    }
    tuner_listen_t *l = calloc(1, sizeof *l);
    if (l == NULL) {
        freeaddrinfo(res);
        close(fd);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    l->fd = fd;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char abuf[INET6_ADDRSTRLEN] = "?";
    unsigned bound = (unsigned)pv;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET) {
            const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &a->sin_addr, abuf, sizeof abuf);
            bound = ntohs(a->sin_port);
            l->loopback = (ntohl(a->sin_addr.s_addr) >> 24) == 127;
        } else if (ss.ss_family == AF_INET6) {
            const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
            inet_ntop(AF_INET6, &a->sin6_addr, abuf, sizeof abuf);
            bound = ntohs(a->sin6_port);
            l->loopback = IN6_IS_ADDR_LOOPBACK(&a->sin6_addr);
        }
    }
    freeaddrinfo(res);
    snprintf(l->url, sizeof l->url, ss.ss_family == AF_INET6 ? "http://[%s]:%u/metrics" : "http://%s:%u/metrics",
             abuf, bound);
    return l;
}

const char *tuner_listen_url(const tuner_listen_t *l) { return l->url; }
int tuner_listen_is_loopback(const tuner_listen_t *l) { return l->loopback; }
uint64_t tuner_listen_requests(const tuner_listen_t *l) { return l->requests; }

void tuner_listen_close(tuner_listen_t *l) {
    if (l == NULL) return;
    close(l->fd);
    free(l);
}

/* One process's snapshot (run under the SIGBUS guard).  The handle is
 * static: a segment that shrinks under the read is still closed after the
 * guard's jump (an automatic one would be indeterminate there). */
static hak_shm_handle_t seg_h = {.fd = -1};
static int read_segment(int pid, hak_snapshot_t *out) {
    if (seg_h.shm != NULL) hak_shm_close(&seg_h);       /* left open by a fault */
    int rc = hak_shm_open_pid(pid, &seg_h);
    if (rc == 0) {
        rc = hak_shm_snapshot(seg_h.shm, out);
        hak_shm_close(&seg_h);
    }
    return rc;
}

static int read_guarded(int pid, hak_snapshot_t *out) {
    int rc;
    HAK_CLI_GUARDED(rc, read_segment(pid, out));
    return rc;
}

/* Snapshot every live hakmem process of this user; the exposition into f. */
static void write_metrics(FILE *f) {
    size_t n = 0, cap = 0;
    hak_snapshot_t *v = NULL;
    int errors = 0;
    uid_t me = geteuid();
    DIR *d = opendir(HAK_SHM_DIR);
    while (d) {
        struct dirent *de = readdir(d);
        if (de == NULL) break;
        size_t pl = strlen(HAK_SHM_PREFIX);
        if (strncmp(de->d_name, HAK_SHM_PREFIX, pl) != 0) continue;
        char *end;
        long pid = strtol(de->d_name + pl, &end, 10);
        if (*end || pid <= 0 || pid > 0x7fffffff || pid == (long)getpid()) continue;
        if (kill((pid_t)pid, 0) != 0 && errno == ESRCH) continue;   /* stale segment */
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 8;
            hak_snapshot_t *nv = realloc(v, nc * sizeof *nv);
            if (nv == NULL) break;
            v = nv, cap = nc;
        }
        int rc = read_guarded((int)pid, &v[n]);
        if (rc == 0) {
            n++;
            continue;
        }
        if (rc == -HAK_SHM_ESRCH || rc == -HAK_SHM_ENOENT) continue;   /* raced with an exit */
        if (rc == -HAK_SHM_EACCES && me != 0) {
            struct stat st;
            if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_uid != me) continue;
        }
        errors++;
    }
    if (d) closedir(d);
    const hak_snapshot_t **p = calloc(n ? n : 1, sizeof *p);
    if (p) {
        for (size_t i = 0; i < n; i++) p[i] = &v[i];
        hak_metrics_write_prometheus(f, p, n, errors);
    }
    free(p);
    free(v);
}

/* One request, read and answered, gets until the next sample is due (at
 * least REQ_MIN_MS, at most IO_TIMEOUT_S), however slowly the client sends or
 * reads: the sampling loop serves between samples, and a byte a second must
 * not hold it.  A scraper sends its request at once and the answer fits the
 * socket's buffer.  Stop ends it at once. */
static uint64_t req_deadline_ns;
static volatile sig_atomic_t *req_stop;

/* Wait until fd is ready for events within the request's time: 1, or 0 (the
 * time is up, stop, or an error). */
static int wait_ready(int fd, short events) {
    for (;;) {
        if (req_stop && *req_stop) return 0;
        uint64_t now = mono_ns();
        if (now >= req_deadline_ns) return 0;
        struct pollfd p = {.fd = fd, .events = events};
        int r = poll(&p, 1, (int)((req_deadline_ns - now + 999999) / 1000000));
        if (r < 0 && errno == EINTR) continue;
        return r > 0;
    }
}

static void send_all(int fd, const char *buf, size_t len) {
    while (len > 0 && wait_ready(fd, POLLOUT)) {
        ssize_t w = send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (w <= 0) return;
        buf += w, len -= (size_t)w;
    }
}

static void respond(int fd, int code, const char *status, const char *type, const char *body, size_t len,
                    int head_only) {
    char hdr[512];
    int n = snprintf(hdr, sizeof hdr,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nCache-Control: no-store\r\n"
                     "Connection: close\r\n%s\r\n",
                     code, status, type, len, code == 405 ? "Allow: GET, HEAD\r\n" : "");
    send_all(fd, hdr, (size_t)n);
    if (!head_only) send_all(fd, body, len);
}

static void serve_one(int fd, uint64_t due_ns, volatile sig_atomic_t *stop) {
    uint64_t now = mono_ns(), lo = now + REQ_MIN_MS * 1000000ull, hi = now + (uint64_t)IO_TIMEOUT_S * 1000000000ull;
    req_deadline_ns = due_ns < lo ? lo : due_ns > hi ? hi : due_ns;
    req_stop = stop;
    char req[REQ_MAX + 1];
    size_t got = 0;
    while (got < REQ_MAX && wait_ready(fd, POLLIN)) {
        ssize_t r = recv(fd, req + got, REQ_MAX - got, MSG_DONTWAIT);
        if (r < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (r <= 0) break;
        got += (size_t)r;
        req[got] = '\0';
        if (strstr(req, "\r\n\r\n") || strstr(req, "\n\n")) break;
    }
    req[got] = '\0';
    char method[16] = "", path[1024] = "";
    if (sscanf(req, "%15s %1023s", method, path) != 2) {
        static const char msg[] = "bad request\n";
        respond(fd, 400, "Bad Request", "text/plain; charset=utf-8", msg, sizeof msg - 1, 0);
        return;
    }
    int head = strcmp(method, "HEAD") == 0;
    if (!head && strcmp(method, "GET") != 0) {
        static const char msg[] = "only GET and HEAD\n";
        respond(fd, 405, "Method Not Allowed", "text/plain; charset=utf-8", msg, sizeof msg - 1, 0);
        return;
    }
    char *qm = strchr(path, '?');
    if (qm) *qm = '\0';
    if (strcmp(path, "/metrics") == 0) {
        char *body = NULL;
        size_t len = 0;
        FILE *m = open_memstream(&body, &len);
        if (m == NULL) {
            static const char msg[] = "out of memory\n";
            respond(fd, 500, "Internal Server Error", "text/plain; charset=utf-8", msg, sizeof msg - 1, head);
            return;
        }
        write_metrics(m);
        fclose(m);
        respond(fd, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", body, len, head);
        free(body);
    } else if (strcmp(path, "/") == 0) {
        static const char msg[] =
            "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>hakmem-tuner</title></head><body>"
            "<h1>hakmem-tuner</h1><p><a href=\"/metrics\">/metrics</a>: telemetry of every hakmem process "
            "(Prometheus text format).</p></body></html>\n";
        respond(fd, 200, "OK", "text/html; charset=utf-8", msg, sizeof msg - 1, head);
    } else {
        static const char msg[] = "not found: try /metrics\n";
        respond(fd, 404, "Not Found", "text/plain; charset=utf-8", msg, sizeof msg - 1, head);
    }
}

void tuner_listen_serve_until(tuner_listen_t *l, uint64_t deadline_ns, volatile sig_atomic_t *stop) {
    for (;;) {
        if (stop && *stop) return;
        uint64_t now = mono_ns();
        if (now >= deadline_ns) return;
        uint64_t ms = (deadline_ns - now + 999999) / 1000000;
        struct pollfd pfd = {.fd = l->fd, .events = POLLIN};
        int r = poll(&pfd, 1, ms > 60000 ? 60000 : (int)ms);
        if (r < 0 && errno != EINTR) return;
        if (r <= 0 || !(pfd.revents & POLLIN)) continue;
        int c = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0) continue;
        serve_one(c, deadline_ns, stop);
        shutdown(c, SHUT_WR);
        close(c);
        l->requests++;
    }
}
