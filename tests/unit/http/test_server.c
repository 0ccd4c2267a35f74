/* test_server.c: a real server on a loopback port driven by the client: JSON, bodies,
 * 413s, streamed uploads and downloads, faults in each style, auth, keep-alive, and the
 * token validator against a fake identity service. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/socket.h>

#include "bus/ts_bus.h"
#include "http/ts_http_internal.h"

static uint64_t fnv(uint64_t h, const char *d, size_t n)
{
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)d[i]) * 1099511628211ULL;
    return h;
}
#define FNV0 1469598103934665603ULL

/* ---- handlers ---- */
static int h_hello(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    (void)req, (void)err;
    ts_http_resp_header(resp, "X-Test", "yes");
    ts_http_resp_header(resp, "X-Empty", "");
    ts_http_resp_json(resp, 200, json_pack("{s:s}", "hello", "world"));
    return 0;
}

static int h_echo(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    json_t *body;
    int rc = ts_http_json_body(req, &body, err);
    if (rc < 0) return rc;
    const char *q = ts_http_query(req, "q");
    ts_http_resp_json(resp, 201, json_pack("{s:O,s:I,s:s?,s:s}", "body", body, "len", (json_int_t)req->body_len,
                                           "q", q, "ct", ts_http_header(req, "content-type") ?: ""));
    return 0;
}

static int h_fault(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    (void)resp;
    const char *code = ts_http_param(req, "code");
    if (strcmp(code, "404") == 0) return ts_err_set(err, TS_ENOTFOUND, "Image x could not be found.");
    if (strcmp(code, "409") == 0) return ts_err_set_full(err, TS_ECONFLICT, 409, "NetworkInUse", "In use.");
    if (strcmp(code, "400") == 0) return ts_err_set(err, TS_EINVAL, "Bad <thing>.");
    return ts_err_set(err, TS_EIO, "boom");
}

struct up {
    uint64_t hash;
    size_t bytes;
    int *aborted;
};

static int upload_writes;
static int up_write(void *ctx, const char *data, size_t len, struct ts_err *err)
{
    (void)err;
    __atomic_add_fetch(&upload_writes, 1, __ATOMIC_SEQ_CST);
    struct up *u = ctx;
    u->hash = fnv(u->hash, data, len);
    u->bytes += len;
    return 0;
}

static int up_finish(void *ctx, struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    (void)req, (void)err;
    struct up *u = ctx;
    ts_http_resp_json(resp, 201, json_pack("{s:I,s:s}", "bytes", (json_int_t)u->bytes, "hash",
                                           ts_pool_printf(req->pool, "%016llx", (unsigned long long)u->hash)));
    return 0;
}

static int aborted_count;
static void up_abort(void *ctx)
{
    (void)ctx;
    __atomic_add_fetch(&aborted_count, 1, __ATOMIC_SEQ_CST);
}

static int h_upload(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    (void)resp;
    assert_null(req->body);
    if (ts_http_query(req, "reject")) return ts_err_set(err, TS_EFORBIDDEN, "No uploads here.");
    struct up *u = ts_pool_alloc(req->pool, sizeof(*u));
    u->hash = FNV0;
    req->upload = (struct ts_http_upload){up_write, up_finish, up_abort, u};
    return 0;
}

static char file_path[64];
static int h_file(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    (void)req;
    FILE *f = fopen(file_path, "r");
    if (!f) return ts_err_set(err, TS_EIO, "open");
    int fd = dup(fileno(f));
    fclose(f);
    ts_http_resp_fd(resp, 200, "application/octet-stream", fd, 10, 1000000);
    return 0;
}

static ssize_t gen_read(void *ctx, uint64_t pos, char *buf, size_t max)
{
    (void)ctx;
    const uint64_t total = 300000;
    if (pos >= total) return 0;
    size_t n = max < total - pos ? max : (size_t)(total - pos);
    for (size_t i = 0; i < n; i++) buf[i] = (char)('a' + (pos + i) % 26);
    return (ssize_t)n;
}

static int gen_freed;
static void gen_free(void *ctx)
{
    (void)ctx;
    __atomic_add_fetch(&gen_freed, 1, __ATOMIC_SEQ_CST);
}

static int h_stream(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    (void)req, (void)err;
    ts_http_resp_stream(resp, 200, "text/plain", -1, gen_read, gen_free, NULL);
    return 0;
}

static int h_nobody(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    (void)req, (void)err;
    ts_http_resp_header(resp, "Etag", "abc");
    ts_http_resp_header(resp, "Content-Type", "image/png");
    ts_http_resp_no_body(resp, 200, 1234);
    return 0;
}

static int h_whoami(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    (void)err;
    ts_http_resp_json(resp, 200, json_pack("{s:b,s:s,s:b}", "auth", req->auth->authenticated, "user",
                                           req->auth->user_id, "admin", req->auth->is_admin));
    return 0;
}

static const struct ts_http_route routes[] = {
    {"GET", "/hello", h_hello, TS_ROUTE_PUBLIC},
    {"POST", "/echo", h_echo, TS_ROUTE_PUBLIC},
    {"GET", "/fault/{code}", h_fault, TS_ROUTE_PUBLIC},
    {"PUT", "/upload", h_upload, TS_ROUTE_PUBLIC | TS_ROUTE_STREAM},
    {"GET", "/file", h_file, TS_ROUTE_PUBLIC},
    {"GET", "/stream", h_stream, TS_ROUTE_PUBLIC},
    {"GET", "/nobody", h_nobody, TS_ROUTE_PUBLIC},
    {"GET", "/private", h_whoami, 0},
    {"GET", "/optional", h_whoami, TS_ROUTE_OPTIONAL_AUTH},
    {NULL, NULL, NULL, 0},
};

static int fake_validate(void *ctx, const char *token, struct ts_auth *out, struct ts_err *err)
{
    (void)ctx;
    if (strcmp(token, "good") != 0) return ts_err_set(err, TS_EUNAUTH, "bad token");
    snprintf(out->user_id, sizeof(out->user_id), "u1");
    out->is_admin = true;
    return 0;
}

static struct ts_http_server *start(enum ts_fault_style style, char *base)
{
    struct ts_http_server_opts o = {
        .name = "test", .bind = "127.0.0.1", .port = 0, .threads = 2, .max_body_bytes = 64 * 1024,
        .fault_style = style, .routes = routes, .validate = fake_validate,
        .www_authenticate = "Keystone uri=\"http://127.0.0.1:5000\"",
    };
    struct ts_http_server *srv = NULL;
    struct ts_err err;
    assert_int_equal(ts_http_server_start(&o, &srv, &err), 0);
    assert_true(ts_http_server_port(srv) > 0);
    sprintf(base, "http://127.0.0.1:%d", ts_http_server_port(srv));
    return srv;
}

static void req(const char *method, const char *url, const char *const *hdrs, const char *body,
                struct ts_http_client_resp *r)
{
    struct ts_err err;
    int rc = ts_http_client_request(method, url, hdrs, body, body ? strlen(body) : 0, 10000, r, &err);
    if (rc) fail_msg("%s %s: %s", method, url, err.msg);
}

static char *U(const char *base, const char *path)
{
    static __thread char buf[256];
    snprintf(buf, sizeof(buf), "%s%s", base, path);
    return buf;
}

static void test_json_and_headers(void **state)
{
    (void)state;
    char base[64];
    struct ts_http_server *srv = start(TS_FAULT_NOVA, base);
    struct ts_http_client_resp r;
    req("GET", U(base, "/hello"), NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"hello\":\"world\"}");
    char *rid = ts_http_client_resp_header(&r, "X-OpenStack-Request-ID");
    assert_non_null(rid);
    assert_true(strncmp(rid, "req-", 4) == 0 && strlen(rid) == 40);
    free(rid);
    char *ct = ts_http_client_resp_header(&r, "content-type");
    assert_string_equal(ct, "application/json");
    free(ct);
    char *xt = ts_http_client_resp_header(&r, "x-test");
    assert_string_equal(xt, "yes");
    free(xt);
    char *xe = ts_http_client_resp_header(&r, "x-empty");   /* an empty value is sent, not dropped */
    assert_non_null(xe);
    assert_string_equal(xe, "");
    free(xe);
    ts_http_client_resp_free(&r);

    /* HEAD on a GET route: same Content-Length, no body */
    req("HEAD", U(base, "/hello"), NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 0);
    char *cl = ts_http_client_resp_header(&r, "content-length");
    assert_string_equal(cl, "17");
    free(cl);
    ts_http_client_resp_free(&r);
    req("HEAD", U(base, "/nobody"), NULL, NULL, &r);
    cl = ts_http_client_resp_header(&r, "content-length");
    assert_non_null(cl);
    assert_string_equal(cl, "1234");
    free(cl);
    ct = ts_http_client_resp_header(&r, "content-type");
    assert_string_equal(ct, "image/png");
    free(ct);
    ts_http_client_resp_free(&r);

    const char *h[] = {"Content-Type: application/json", NULL};
    req("POST", U(base, "/echo?q=a+b%26c"), h, "{\"x\": [1, 2]}", &r);
    assert_int_equal(r.status, 201);
    assert_string_equal(r.body, "{\"body\":{\"x\":[1,2]},\"len\":13,\"q\":\"a b&c\",\"ct\":\"application/json\"}");
    ts_http_client_resp_free(&r);

    req("POST", U(base, "/echo"), h, "{bad", &r);
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.body, "\"badRequest\""));
    ts_http_client_resp_free(&r);

    req("GET", U(base, "/nothing"), NULL, NULL, &r);
    assert_int_equal(r.status, 404);
    assert_non_null(strstr(r.body, "\"itemNotFound\""));
    ts_http_client_resp_free(&r);

    req("DELETE", U(base, "/hello"), NULL, NULL, &r);
    assert_int_equal(r.status, 405);
    char *allow = ts_http_client_resp_header(&r, "allow");
    assert_string_equal(allow, "GET, HEAD");
    free(allow);
    ts_http_client_resp_free(&r);

    req("GET", U(base, "/fault/%zz"), NULL, NULL, &r);
    assert_int_equal(r.status, 400);
    ts_http_client_resp_free(&r);
    ts_http_server_stop(srv);
}

static void test_413(void **state)
{
    (void)state;
    char base[64];
    struct ts_http_server *srv = start(TS_FAULT_KEYSTONE, base);
    size_t n = 200 * 1024;
    char *big = malloc(n + 1);
    memset(big, ' ', n);
    big[0] = '[';
    big[n - 1] = ']';
    big[n] = '\0';
    struct ts_http_client_resp r;
    /* by Content-Length, answered before the body is read (client waits for 100-continue) */
    const char *h[] = {"Content-Type: application/json", "Expect: 100-continue", NULL};
    req("POST", U(base, "/echo"), h, big, &r);
    assert_int_equal(r.status, 413);
    assert_non_null(strstr(r.body, "\"title\":\"Request Entity Too Large\""));
    ts_http_client_resp_free(&r);

    /* chunked: the limit is hit while reading */
    char path[] = "/tmp/ts_http_413_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, big, n), (ssize_t)n);
    lseek(fd, 0, SEEK_SET);
    struct ts_err err;
    const char *hc[] = {"Content-Type: application/json", NULL};
    int rc = ts_http_client_upload_fd("POST", U(base, "/echo"), hc, fd, -1, 10000, &r, &err);
    assert_int_equal(rc, 0);
    assert_int_equal(r.status, 413);
    ts_http_client_resp_free(&r);

    /* by Content-Length without Expect (python clients): answered at once */
    rc = ts_http_client_request("POST", U(base, "/echo"), hc, big, n, 10000, &r, &err);
    assert_int_equal(rc, 0);
    assert_int_equal(r.status, 413);
    ts_http_client_resp_free(&r);
    close(fd);
    unlink(path);

    /* just under the limit is fine */
    big[64 * 1024 - 1] = ']';
    big[64 * 1024] = '\0';
    const char *h2[] = {"Content-Type: application/json", NULL};
    req("POST", U(base, "/echo"), h2, big, &r);
    assert_int_equal(r.status, 201);
    ts_http_client_resp_free(&r);
    free(big);
    ts_http_server_stop(srv);
}

static void test_stream_upload(void **state)
{
    (void)state;
    char base[64];
    struct ts_http_server *srv = start(TS_FAULT_NOVA, base);
    size_t n = 5 * 1024 * 1024 + 123;
    char *data = malloc(n);
    for (size_t i = 0; i < n; i++) data[i] = (char)(i * 7 + i / 1000);
    char path[] = "/tmp/ts_http_up_XXXXXX";
    int fd = mkstemp(path);
    assert_int_equal(write(fd, data, n), (ssize_t)n);
    lseek(fd, 0, SEEK_SET);
    struct ts_http_client_resp r;
    struct ts_err err;
    assert_int_equal(ts_http_client_upload_fd("PUT", U(base, "/upload"), NULL, fd, -1, 30000, &r, &err), 0);
    assert_int_equal(r.status, 201);
    char expect[128];
    snprintf(expect, sizeof(expect), "{\"bytes\":%zu,\"hash\":\"%016llx\"}", n,
             (unsigned long long)fnv(FNV0, data, n));
    assert_string_equal(r.body, expect);
    ts_http_client_resp_free(&r);

    /* with a length too */
    lseek(fd, 0, SEEK_SET);
    assert_int_equal(ts_http_client_upload_fd("PUT", U(base, "/upload"), NULL, fd, (int64_t)n, 30000, &r, &err), 0);
    assert_string_equal(r.body, expect);
    ts_http_client_resp_free(&r);

    /* handler refuses: its fault is the answer */
    req("PUT", U(base, "/upload?reject=1"), NULL, "small body", &r);
    assert_int_equal(r.status, 403);
    assert_non_null(strstr(r.body, "\"forbidden\""));
    ts_http_client_resp_free(&r);

    /* the client goes away mid-upload: abort is called */
    int before = __atomic_load_n(&aborted_count, __ATOMIC_SEQ_CST);
    CURL *c = curl_easy_init();
    lseek(fd, 0, SEEK_SET);
    FILE *f = fdopen(dup(fd), "r");
    curl_easy_setopt(c, CURLOPT_URL, U(base, "/upload"));
    curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(c, CURLOPT_READDATA, f);
    curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)n * 4);  /* promise more than we send */
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 2000L);
    curl_easy_perform(c);
    curl_easy_cleanup(c);
    fclose(f);
    for (int i = 0; i < 200 && __atomic_load_n(&aborted_count, __ATOMIC_SEQ_CST) == before; i++) usleep(10000);
    assert_true(__atomic_load_n(&aborted_count, __ATOMIC_SEQ_CST) > before);

    close(fd);
    unlink(path);
    free(data);
    ts_http_server_stop(srv);
}

static int raw_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

static void write_all(int fd, const char *d, size_t n)
{
    size_t sent = 0;
    while (sent < n) {
        ssize_t w = write(fd, d + sent, n - sent);
        assert_true(w > 0);
        sent += (size_t)w;
    }
}

/* 1 MiB of body: plain, or as chunks of 8 KiB (without the terminating chunk) */
static char *make_body(bool chunked, size_t *len)
{
    size_t n = 1024 * 1024, chunk = 8192;
    if (!chunked) {
        char *b = malloc(n);
        memset(b, 'x', n);
        *len = n;
        return b;
    }
    size_t cap = n + (n / chunk) * 16, off = 0;
    char *b = malloc(cap);
    for (size_t i = 0; i < n / chunk; i++) {
        off += (size_t)sprintf(b + off, "%zx\r\n", chunk);
        memset(b + off, 'x', chunk);
        off += chunk;
        memcpy(b + off, "\r\n", 2);
        off += 2;
    }
    *len = off;
    return b;
}

/* A client sends part of a large body and vanishes (FIN, or RST with SO_LINGER 0) while
 * the bytes it sent are still queued on the server's socket: abort must run promptly, not
 * after the 60 s idle timeout (MHD's edge-triggered epoll never reads the EOF by itself). */
static void vanish_mid_upload(int port, bool chunked, bool rst)
{
    int before = __atomic_load_n(&aborted_count, __ATOMIC_SEQ_CST);
    int writes = __atomic_load_n(&upload_writes, __ATOMIC_SEQ_CST);
    int fd = raw_connect(port);
    const char *hdr = chunked ? "PUT /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                              : "PUT /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 10485760\r\n\r\n";
    write_all(fd, hdr, strlen(hdr));
    size_t n;
    char *body = make_body(chunked, &n);
    write_all(fd, body, n);
    free(body);
    /* the server must have started the upload (else there is nothing to abort) */
    for (int i = 0; i < 2000 && __atomic_load_n(&upload_writes, __ATOMIC_SEQ_CST) == writes; i++) usleep(1000);
    assert_true(__atomic_load_n(&upload_writes, __ATOMIC_SEQ_CST) > writes);
    if (rst) {
        struct linger l = {1, 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
    }
    double t0 = ts_mono();
    close(fd);
    while (__atomic_load_n(&aborted_count, __ATOMIC_SEQ_CST) == before && ts_mono() - t0 < 10) usleep(10000);
    double took = ts_mono() - t0;
    if (took > 3)
        fail_msg("abort after %.1f s (%s, %s)", took, chunked ? "chunked" : "Content-Length", rst ? "RST" : "FIN");
    assert_int_equal(__atomic_load_n(&aborted_count, __ATOMIC_SEQ_CST), before + 1);
}

/* A client that sends the whole body and then half-closes still gets its answer. */
static void half_close_after_body(int port, bool chunked)
{
    int before = __atomic_load_n(&aborted_count, __ATOMIC_SEQ_CST);
    int fd = raw_connect(port);
    size_t n;
    char *body = make_body(chunked, &n);
    char hdr[128];
    if (chunked)
        snprintf(hdr, sizeof(hdr), "PUT /upload HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                                   "Transfer-Encoding: chunked\r\n\r\n");
    else
        snprintf(hdr, sizeof(hdr), "PUT /upload HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: %zu\r\n\r\n", n);
    write_all(fd, hdr, strlen(hdr));
    write_all(fd, body, n);
    if (chunked) write_all(fd, "0\r\n\r\n", 5);
    free(body);
    shutdown(fd, SHUT_WR);
    char buf[512];
    size_t got = 0;
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    for (;;) {
        ssize_t r = read(fd, buf + got, sizeof(buf) - 1 - got);
        if (r <= 0) break;
        got += (size_t)r;
    }
    buf[got] = '\0';
    close(fd);
    if (strncmp(buf, "HTTP/1.1 201", 12) != 0) fail_msg("half-close (%s): got '%s'", chunked ? "chunked" : "sized", buf);
    assert_non_null(strstr(buf, "\"bytes\":1048576"));
    assert_int_equal(__atomic_load_n(&aborted_count, __ATOMIC_SEQ_CST), before);
}

static void test_upload_client_vanishes(void **state)
{
    (void)state;
    char base[64];
    struct ts_http_server *srv = start(TS_FAULT_NOVA, base);
    int port = ts_http_server_port(srv);
    for (int i = 0; i < 3; i++) {
        vanish_mid_upload(port, false, false);
        vanish_mid_upload(port, false, true);
        vanish_mid_upload(port, true, false);
        vanish_mid_upload(port, true, true);
        half_close_after_body(port, false);
        half_close_after_body(port, true);
    }
    ts_http_server_stop(srv);
}

struct dl {
    uint64_t hash;
    size_t n;
};

static int dl_fn(void *ctx, const char *data, size_t len)
{
    struct dl *d = ctx;
    d->hash = fnv(d->hash, data, len);
    d->n += len;
    return 0;
}

static void test_stream_download(void **state)
{
    (void)state;
    char base[64];
    struct ts_http_server *srv = start(TS_FAULT_GLANCE, base);
    snprintf(file_path, sizeof(file_path), "/tmp/ts_http_dl_XXXXXX");
    int fd = mkstemp(file_path);
    size_t n = 1000010;
    char *data = malloc(n);
    for (size_t i = 0; i < n; i++) data[i] = (char)(i % 251);
    assert_int_equal(write(fd, data, n), (ssize_t)n);
    close(fd);
    struct dl d = {FNV0, 0};
    int status;
    struct ts_err err;
    assert_int_equal(ts_http_client_download(U(base, "/file"), NULL, 10000, dl_fn, &d, &status, &err), 0);
    assert_int_equal(status, 200);
    assert_int_equal(d.n, 1000000);
    assert_true(d.hash == fnv(FNV0, data + 10, 1000000));

    struct ts_http_client_resp r;
    /* HEAD on an fd route: the length, no body */
    req("HEAD", U(base, "/file"), NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    char *cl = ts_http_client_resp_header(&r, "content-length");
    assert_string_equal(cl, "1000000");
    free(cl);
    ts_http_client_resp_free(&r);

    int freed = __atomic_load_n(&gen_freed, __ATOMIC_SEQ_CST);
    req("GET", U(base, "/stream"), NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 300000);
    assert_int_equal(r.body[299999], 'a' + 299999 % 26);
    char *te = ts_http_client_resp_header(&r, "transfer-encoding");
    assert_string_equal(te, "chunked");
    free(te);
    ts_http_client_resp_free(&r);
    for (int i = 0; i < 100 && __atomic_load_n(&gen_freed, __ATOMIC_SEQ_CST) == freed; i++) usleep(10000);
    assert_int_equal(__atomic_load_n(&gen_freed, __ATOMIC_SEQ_CST), freed + 1);

    /* glance-style HTML fault */
    req("GET", U(base, "/fault/404"), NULL, NULL, &r);
    assert_int_equal(r.status, 404);
    assert_string_equal(r.body, "<html>\n <head>\n  <title>404 Not Found</title>\n </head>\n <body>\n  <h1>404 Not "
                                "Found</h1>\n  Image x could not be found.<br /><br />\n\n\n\n </body>\n</html>");
    ts_http_client_resp_free(&r);
    unlink(file_path);
    free(data);
    ts_http_server_stop(srv);
}

static void test_fault_styles(void **state)
{
    (void)state;
    char base[64];
    struct ts_http_client_resp r;
    struct ts_http_server *srv = start(TS_FAULT_NOVA, base);
    req("GET", U(base, "/fault/404"), NULL, NULL, &r);
    assert_string_equal(r.body, "{\"itemNotFound\":{\"code\":404,\"message\":\"Image x could not be found.\"}}");
    ts_http_client_resp_free(&r);
    req("GET", U(base, "/fault/500"), NULL, NULL, &r);
    assert_int_equal(r.status, 500);
    assert_string_equal(r.body, "{\"computeFault\":{\"code\":500,\"message\":\"boom\"}}");
    ts_http_client_resp_free(&r);
    req("GET", U(base, "/fault/409"), NULL, NULL, &r);
    assert_string_equal(r.body, "{\"conflictingRequest\":{\"code\":409,\"message\":\"In use.\"}}");
    ts_http_client_resp_free(&r);
    ts_http_server_stop(srv);

    srv = start(TS_FAULT_KEYSTONE, base);
    req("GET", U(base, "/fault/404"), NULL, NULL, &r);
    assert_string_equal(r.body,
                        "{\"error\":{\"code\":404,\"message\":\"Image x could not be found.\",\"title\":\"Not Found\"}}");
    ts_http_client_resp_free(&r);
    ts_http_server_stop(srv);

    srv = start(TS_FAULT_NEUTRON, base);
    req("GET", U(base, "/fault/404"), NULL, NULL, &r);
    assert_string_equal(r.body, "{\"NeutronError\":{\"type\":\"HTTPNotFound\",\"message\":\"Image x could not be "
                                "found.\",\"detail\":\"\"}}");
    ts_http_client_resp_free(&r);
    req("GET", U(base, "/fault/409"), NULL, NULL, &r);
    assert_string_equal(r.body, "{\"NeutronError\":{\"type\":\"NetworkInUse\",\"message\":\"In use.\",\"detail\":\"\"}}");
    ts_http_client_resp_free(&r);
    ts_http_server_stop(srv);

    srv = start(TS_FAULT_SWIFT, base);
    req("GET", U(base, "/nothing"), NULL, NULL, &r);
    assert_int_equal(r.status, 404);
    ts_http_client_resp_free(&r);
    ts_http_server_stop(srv);

    struct ts_err e;
    ts_err_set(&e, TS_ENOTFOUND, "%s", "");
    const char *ct;
    size_t len;
    char *b = ts_http_fault_render(TS_FAULT_SWIFT, &e, &ct, &len);
    assert_string_equal(b, "<html><h1>Not Found</h1><p>The resource could not be found.</p></html>");
    free(b);
    ts_err_set(&e, TS_EINVAL, "Stack x not found");
    e.status = 404;
    snprintf(e.type, sizeof(e.type), "EntityNotFound");
    b = ts_http_fault_render(TS_FAULT_HEAT, &e, &ct, &len);
    assert_string_equal(b, "{\"code\":404,\"error\":{\"message\":\"Stack x not found\",\"type\":\"EntityNotFound\","
                           "\"traceback\":null},\"explanation\":\"The resource could not be found.\",\"title\":\"Not Found\"}");
    free(b);
}

static void test_auth(void **state)
{
    (void)state;
    char base[64];
    struct ts_http_server *srv = start(TS_FAULT_NOVA, base);
    struct ts_http_client_resp r;
    req("GET", U(base, "/private"), NULL, NULL, &r);
    assert_int_equal(r.status, 401);
    char *wa = ts_http_client_resp_header(&r, "www-authenticate");
    assert_string_equal(wa, "Keystone uri=\"http://127.0.0.1:5000\"");
    free(wa);
    assert_string_equal(r.body, "{\"error\":{\"code\":401,\"title\":\"Unauthorized\",\"message\":\"The request you "
                                "have made requires authentication.\"}}");
    ts_http_client_resp_free(&r);
    const char *bad[] = {"X-Auth-Token: bad", NULL};
    req("GET", U(base, "/private"), bad, NULL, &r);
    assert_int_equal(r.status, 401);
    ts_http_client_resp_free(&r);
    req("GET", U(base, "/optional"), bad, NULL, &r);
    assert_int_equal(r.status, 401);
    ts_http_client_resp_free(&r);
    const char *good[] = {"X-Auth-Token: good", NULL};
    req("GET", U(base, "/private"), good, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"auth\":true,\"user\":\"u1\",\"admin\":true}");
    ts_http_client_resp_free(&r);
    req("GET", U(base, "/optional"), NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"auth\":false,\"user\":\"\",\"admin\":false}");
    ts_http_client_resp_free(&r);
    ts_http_server_stop(srv);
}

static size_t sink(char *d, size_t s, size_t n, void *u)
{
    (void)d, (void)u;
    return s * n;
}

static void test_keepalive(void **state)
{
    (void)state;
    char base[64];
    struct ts_http_server *srv = start(TS_FAULT_NOVA, base);
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
    long conns = -1, code = 0;
    curl_easy_setopt(c, CURLOPT_URL, U(base, "/hello"));
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &conns);
    assert_int_equal(conns, 1);
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &conns);
    assert_int_equal(conns, 0);
    /* a POST with a body keeps the connection too */
    curl_easy_setopt(c, CURLOPT_URL, U(base, "/echo"));
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, "{\"a\":1}");
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &conns);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    assert_int_equal(code, 201);
    assert_int_equal(conns, 0);
    /* and a 404 or 401 */
    curl_easy_setopt(c, CURLOPT_URL, U(base, "/private"));
    curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    assert_int_equal(code, 401);
    curl_easy_setopt(c, CURLOPT_URL, U(base, "/hello"));
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &conns);
    assert_int_equal(conns, 0);
    curl_easy_cleanup(c);
    ts_http_server_stop(srv);
}

/* Sends raw bytes, returns what came back (up to cap) after the server closes or a pause. */
static void raw(int port, const char *data, char *out, size_t cap)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(write(fd, data, strlen(data)), (ssize_t)strlen(data));
    struct timeval tv = {0, 300000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    size_t got = 0;
    for (;;) {
        ssize_t n = read(fd, out + got, cap - 1 - got);
        if (n <= 0) break;
        got += (size_t)n;
    }
    out[got] = '\0';
    close(fd);
}

static void test_malformed(void **state)
{
    (void)state;
    char base[64], buf[4096];
    struct ts_http_server *srv = start(TS_FAULT_NOVA, base);
    int port = ts_http_server_port(srv);
    raw(port, "GET /hello HTTP/1.1\r\nHost: x\r\nbroken header\r\n\r\n", buf, sizeof(buf));
    assert_true(strncmp(buf, "HTTP/1.1 400", 12) == 0);
    raw(port, "GET /fault/a%00b HTTP/1.1\r\nHost: x\r\n\r\n", buf, sizeof(buf));
    assert_true(strncmp(buf, "HTTP/1.1 400", 12) == 0);
    raw(port, "GET /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nab", buf, sizeof(buf));
    raw(port, "GET /hel", buf, sizeof(buf));
    raw(port, "PUT /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n", buf, sizeof(buf));
    /* pipelined keep-alive requests */
    raw(port, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n", buf, sizeof(buf));
    const char *second = strstr(buf + 1, "HTTP/1.1 200");
    assert_non_null(second);
    /* the empty header's line: name, colon, nothing but whitespace */
    const char *xe = strstr(buf, "\r\nX-Empty:");
    assert_non_null(xe);
    xe += strlen("\r\nX-Empty:");
    while (*xe == ' ') xe++;
    assert_true(strncmp(xe, "\r\n", 2) == 0);
    ts_http_server_stop(srv);
}

/* ---- token validator against a fake identity service ---- */
static int validations;
static int h_tokens(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    __atomic_add_fetch(&validations, 1, __ATOMIC_SEQ_CST);
    const char *subject = ts_http_header(req, "X-Subject-Token");
    const char *auth = ts_http_header(req, "X-Auth-Token");
    if (!subject || !auth || strcmp(subject, "tok1") != 0)
        return ts_err_set(err, TS_ENOTFOUND, "Could not find token.");
    char exp[32];
    ts_time_iso(ts_now() + 3600, 6, exp);
    ts_http_resp_json(resp, 200, json_pack(
        "{s:{s:{s:s,s:s,s:{s:s}},s:{s:s,s:s,s:{s:s}},s:[{s:s},{s:s}],s:s}}", "token",
        "user", "id", "uid1", "name", "alice", "domain", "id", "default",
        "project", "id", "pid1", "name", "demo", "domain", "id", "default",
        "roles", "name", "reader", "name", "member",
        "expires_at", exp));
    return 0;
}

static const struct ts_http_route id_routes[] = {
    {"GET", "/v3/auth/tokens", h_tokens, TS_ROUTE_PUBLIC},
    {NULL, NULL, NULL, 0},
};

static void test_authn(void **state)
{
    (void)state;
    struct ts_http_server_opts o = {.name = "identity", .bind = "127.0.0.1", .routes = id_routes,
                                    .fault_style = TS_FAULT_KEYSTONE};
    struct ts_http_server *srv;
    struct ts_err err;
    assert_int_equal(ts_http_server_start(&o, &srv, &err), 0);
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", ts_http_server_port(srv));
    struct ts_http_authn *a = ts_http_authn_new(url, 60, NULL);
    struct ts_auth au;
    memset(&au, 0, sizeof(au));
    assert_int_equal(ts_http_authn_validate(a, "tok1", &au, &err), 0);
    assert_string_equal(au.user_id, "uid1");
    assert_string_equal(au.user_name, "alice");
    assert_string_equal(au.project_id, "pid1");
    assert_string_equal(au.project_domain_id, "default");
    assert_int_equal(au.n_roles, 2);
    assert_false(au.is_admin);
    assert_false(au.is_reader_only);
    assert_true(au.expires_at > ts_now());
    assert_int_equal(validations, 1);
    assert_int_equal(ts_http_authn_validate(a, "tok1", &au, &err), 0);
    assert_int_equal(validations, 1);   /* cached */
    ts_http_authn_forget(a, NULL, "uid1");
    assert_int_equal(ts_http_authn_validate(a, "tok1", &au, &err), 0);
    assert_int_equal(validations, 2);
    assert_int_equal(ts_http_authn_validate(a, "nope", &au, &err), -TS_EUNAUTH);
    assert_int_equal(ts_http_authn_validate(a, "nope", &au, &err), -TS_EUNAUTH);
    assert_int_equal(validations, 3);   /* negative result cached briefly */
    ts_http_authn_forget(a, "tok1", NULL);
    ts_http_authn_free(a);

    /* revocations over the bus drop cache entries */
    struct ts_bus *bus;
    assert_int_equal(ts_bus_open(NULL, &bus, &err), 0);
    a = ts_http_authn_new(url, 60, bus);
    assert_int_equal(ts_http_authn_validate(a, "tok1", &au, &err), 0);
    int before = validations;
    assert_int_equal(ts_http_authn_validate(a, "tok1", &au, &err), 0);
    assert_int_equal(validations, before);
    assert_int_equal(ts_bus_fanout(bus, "identity_revocations", "revoke", json_pack("{s:s}", "user_id", "uid1"), &err), 0);
    for (int i = 0; i < 200 && validations == before; i++) {
        usleep(5000);
        assert_int_equal(ts_http_authn_validate(a, "tok1", &au, &err), 0);
    }
    assert_int_equal(validations, before + 1);
    ts_bus_close(bus);
    ts_http_authn_free(a);
    ts_http_server_stop(srv);

    /* identity down -> unavailable */
    a = ts_http_authn_new(url, 60, NULL);
    assert_int_equal(ts_http_authn_validate(a, "tok1", &au, &err), -TS_EUNAVAIL);
    ts_http_authn_free(a);
}

int main(void)
{
    ts_log_set_level(TS_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_and_headers),
        cmocka_unit_test(test_413),
        cmocka_unit_test(test_stream_upload),
        cmocka_unit_test(test_upload_client_vanishes),
        cmocka_unit_test(test_stream_download),
        cmocka_unit_test(test_fault_styles),
        cmocka_unit_test(test_auth),
        cmocka_unit_test(test_keepalive),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_authn),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
