/*
 * ts_netagent_metasrv.c: the metadata proxy. One listening socket per qdhcp namespace
 * (made by entering the namespace on the calling thread with setns(), binding, and going
 * back: a socket keeps the namespace it was made in), all served by one thread with
 * poll(). A request is a small HTTP/1.x GET, or a POST with a small body (the guest's
 * password, at most 256 bytes as Nova allows); the answer comes from the agent's callback,
 * which knows the asking port from the source address and the network. Connection: close.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "network/agent/ts_netagent_int.h"

#define MAX_LISTENERS 256
#define REQ_MAX 8192

struct listener {
    char net_id[64];
    int fd;
};

struct ts_netagent_metasrv {
    pthread_mutex_t mu;
    struct listener l[MAX_LISTENERS];
    int n;
    int wake[2];
    bool stop;
    pthread_t thread;
    ts_netagent_meta_fn fn;
    void *ctx;
};

static void wake(struct ts_netagent_metasrv *m)
{
    char c = 1;
    if (write(m->wake[1], &c, 1) < 0) { /* pipe full: a wakeup is pending anyway */
    }
}

static const char *reason(int st)
{
    switch (st) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 411:
        return "Length Required";
    default:
        return "Internal Server Error";
    }
}

static void write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return;
        p += w;
        n -= (size_t)w;
    }
}

static void serve_one(struct ts_netagent_metasrv *m, const char *net_id, int cfd, const char *src)
{
    char req[REQ_MAX + 1];
    size_t len = 0, hlen = 0;
    double deadline = ts_mono() + 5.0;
    char *eoh = NULL;
    while (len < REQ_MAX) {
        struct pollfd p = {.fd = cfd, .events = POLLIN};
        int left = (int)((deadline - ts_mono()) * 1000);
        if (left <= 0 || poll(&p, 1, left) <= 0) return;
        ssize_t r = read(cfd, req + len, REQ_MAX - len);
        if (r <= 0) return;
        len += (size_t)r;
        req[len] = 0;
        if ((eoh = strstr(req, "\r\n\r\n"))) {
            hlen = (size_t)(eoh - req) + 4;
            break;
        }
        if ((eoh = strstr(req, "\n\n"))) {
            hlen = (size_t)(eoh - req) + 2;
            break;
        }
    }
    req[len] = 0;
    int st = 400;
    char *body = NULL;
    const char *ctype = "text/plain; charset=UTF-8";
    char method[16], path[1024];
    if (eoh && sscanf(req, "%15s %1023s", method, path) == 2) {
        if (ts_streq(method, "POST")) {
            /* the body: Content-Length bytes after the headers (no chunked bodies) */
            long long clen = -1;
            for (const char *h = strchr(req, '\n'); h && h < req + hlen; h = strchr(h, '\n')) {
                h++;
                if (!strncasecmp(h, "Content-Length:", 15)) clen = strtoll(h + 15, NULL, 10);
            }
            if (clen < 0) {
                st = 411;
            } else if (clen > (long long)(REQ_MAX - hlen)) {
                st = 400; /* far over the password's 256 bytes */
            } else {
                size_t want = hlen + (size_t)clen;
                while (len < want) {
                    struct pollfd p = {.fd = cfd, .events = POLLIN};
                    int left = (int)((deadline - ts_mono()) * 1000);
                    if (left <= 0 || poll(&p, 1, left) <= 0) return;
                    ssize_t r = read(cfd, req + len, want - len);
                    if (r <= 0) return;
                    len += (size_t)r;
                }
                req[want] = 0;
                st = m->fn(m->ctx, net_id, src, method, path, req + hlen, (size_t)clen, &body, &ctype);
            }
        } else if (!ts_streq(method, "GET") && !ts_streq(method, "HEAD")) {
            st = 405;
        } else {
            st = m->fn(m->ctx, net_id, src, "GET", path, NULL, 0, &body, &ctype);
        }
    }
    if (!body) body = ts_asprintf("%d %s", st, reason(st));
    size_t blen = strlen(body);
    char *head =
        ts_asprintf("HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
                    st, reason(st), ctype, blen);
    write_all(cfd, head, strlen(head));
    if (!ts_startswith(req, "HEAD")) write_all(cfd, body, blen);
    free(head);
    free(body);
}

static void *loop(void *arg)
{
    struct ts_netagent_metasrv *m = arg;
    for (;;) {
        struct pollfd p[MAX_LISTENERS + 1];
        char ids[MAX_LISTENERS][64];
        int n = 0;
        pthread_mutex_lock(&m->mu);
        if (m->stop) {
            pthread_mutex_unlock(&m->mu);
            break;
        }
        p[n++] = (struct pollfd){.fd = m->wake[0], .events = POLLIN};
        for (int i = 0; i < m->n; i++) {
            snprintf(ids[n - 1], sizeof(ids[0]), "%s", m->l[i].net_id);
            p[n++] = (struct pollfd){.fd = m->l[i].fd, .events = POLLIN};
        }
        pthread_mutex_unlock(&m->mu);
        if (poll(p, (nfds_t)n, 1000) <= 0) continue;
        if (p[0].revents) {
            char buf[64];
            while (read(m->wake[0], buf, sizeof(buf)) > 0) {
            }
            continue; /* the listener set may have changed: fds in p may be closed */
        }
        for (int i = 1; i < n; i++) {
            if (!(p[i].revents & POLLIN)) continue;
            struct sockaddr_in sa;
            socklen_t sl = sizeof(sa);
            pthread_mutex_lock(&m->mu);
            /* only accept on an fd that is still registered */
            bool live = false;
            for (int k = 0; k < m->n; k++)
                live |= m->l[k].fd == p[i].fd;
            int cfd = live ? accept4(p[i].fd, (struct sockaddr *)&sa, &sl, SOCK_CLOEXEC | SOCK_NONBLOCK) : -1;
            pthread_mutex_unlock(&m->mu);
            if (cfd < 0) continue;
            char src[INET_ADDRSTRLEN] = "";
            inet_ntop(AF_INET, &sa.sin_addr, src, sizeof(src));
            serve_one(m, ids[i - 1], cfd, src);
            close(cfd);
        }
    }
    return NULL;
}

struct ts_netagent_metasrv *ts_netagent_metasrv_new(ts_netagent_meta_fn fn, void *ctx)
{
    struct ts_netagent_metasrv *m = ts_calloc(1, sizeof(*m));
    pthread_mutex_init(&m->mu, NULL);
    m->fn = fn;
    m->ctx = ctx;
    if (pipe2(m->wake, O_CLOEXEC | O_NONBLOCK) < 0) {
        free(m);
        return NULL;
    }
    if (pthread_create(&m->thread, NULL, loop, m) != 0) {
        close(m->wake[0]);
        close(m->wake[1]);
        free(m);
        return NULL;
    }
    return m;
}

bool ts_netagent_metasrv_has(struct ts_netagent_metasrv *m, const char *net_id)
{
    bool has = false;
    pthread_mutex_lock(&m->mu);
    for (int i = 0; i < m->n; i++)
        has |= ts_streq(m->l[i].net_id, net_id);
    pthread_mutex_unlock(&m->mu);
    return has;
}

/* A listening socket made inside netns (this thread enters it and comes back). */
static int ns_socket(const char *netns, int port)
{
    char path[300];
    int fd = -1, self = -1, ns = -1, s = -1;
    snprintf(path, sizeof(path), "/run/netns/%s", netns);
    self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    ns = open(path, O_RDONLY | O_CLOEXEC);
    if (self < 0 || ns < 0) goto out;
    if (setns(ns, CLONE_NEWNET) < 0) goto out;
    s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int err_after = errno;
    if (setns(self, CLONE_NEWNET) < 0) ts_panic("netagent: cannot return to the agent's network namespace");
    errno = err_after;
    if (s < 0) goto out;
    int one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_ANY);
    if (bind(s, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(s, 64) < 0) goto out;
    fd = s;
    s = -1;
out:
    if (fd < 0) ts_warn("netagent", "metadata listener in %s: %s", netns, strerror(errno));
    if (s >= 0) close(s);
    if (self >= 0) close(self);
    if (ns >= 0) close(ns);
    return fd;
}

int ts_netagent_metasrv_listen(struct ts_netagent_metasrv *m, const char *net_id, const char *netns, int port)
{
    if (ts_netagent_metasrv_has(m, net_id)) return 0;
    int fd = ns_socket(netns, port);
    if (fd < 0) return -TS_EIO;
    pthread_mutex_lock(&m->mu);
    if (m->n >= MAX_LISTENERS) {
        pthread_mutex_unlock(&m->mu);
        close(fd);
        return -TS_ETOOBIG;
    }
    snprintf(m->l[m->n].net_id, sizeof(m->l[0].net_id), "%s", net_id);
    m->l[m->n++].fd = fd;
    pthread_mutex_unlock(&m->mu);
    wake(m);
    return 0;
}

void ts_netagent_metasrv_close(struct ts_netagent_metasrv *m, const char *net_id)
{
    pthread_mutex_lock(&m->mu);
    for (int i = 0; i < m->n; i++) {
        if (!ts_streq(m->l[i].net_id, net_id)) continue;
        close(m->l[i].fd);
        m->l[i] = m->l[--m->n];
        i--;
    }
    pthread_mutex_unlock(&m->mu);
    wake(m);
}

void ts_netagent_metasrv_free(struct ts_netagent_metasrv *m)
{
    if (!m) return;
    pthread_mutex_lock(&m->mu);
    m->stop = true;
    pthread_mutex_unlock(&m->mu);
    wake(m);
    pthread_join(m->thread, NULL);
    for (int i = 0; i < m->n; i++)
        close(m->l[i].fd);
    close(m->wake[0]);
    close(m->wake[1]);
    pthread_mutex_destroy(&m->mu);
    free(m);
}
