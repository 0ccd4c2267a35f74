/*
 * ts_http_client.c: the HTTP client for service-to-service calls (libcurl). One easy
 * handle per call; connections, DNS and TLS sessions are kept in one process-wide CURLSH
 * so repeated calls to the loopback services reuse their keep-alive connections.
 * Thread-safe: the share's locks are pthread mutexes.
 */
#include "http/ts_http_internal.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define MOD "http"
#define HEADERS_MAX (256 * 1024)

static pthread_once_t once = PTHREAD_ONCE_INIT;
static CURLSH *share;
static pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *userptr)
{
    (void)h, (void)access, (void)userptr;
    pthread_mutex_lock(&share_locks[data]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *userptr)
{
    (void)h, (void)userptr;
    pthread_mutex_unlock(&share_locks[data]);
}

static void client_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++) pthread_mutex_init(&share_locks[i], NULL);
    share = curl_share_init();
    if (!share) ts_panic("curl_share_init failed");
    curl_share_setopt(share, CURLSHOPT_LOCKFUNC, share_lock);
    curl_share_setopt(share, CURLSHOPT_UNLOCKFUNC, share_unlock);
    curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
    curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
}

struct call {
    CURL *h;
    struct curl_slist *hdrs;
    struct ts_buf head;
    struct ts_buf body;
    /* download */
    int (*fn)(void *ctx, const char *data, size_t len);
    void *fn_ctx;
    int fn_rc;
    /* upload */
    int fd;
    int read_errno;
};

static size_t on_header(char *data, size_t size, size_t n, void *ud)
{
    struct call *c = ud;
    size_t len = size * n;
    /* a new status line (after 100 Continue) starts a new header block */
    if (len >= 5 && memcmp(data, "HTTP/", 5) == 0) ts_buf_reset(&c->head);
    if (ts_buf_append(&c->head, data, len) < 0) return 0;
    return len;
}

static size_t on_body(char *data, size_t size, size_t n, void *ud)
{
    struct call *c = ud;
    size_t len = size * n;
    if (c->fn) {
        long status = 0;
        curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &status);
        if (status < 200 || status >= 300) {
            /* keep a bounded error body instead of feeding it to the sink */
            if (c->body.len < 64 * 1024) ts_buf_append(&c->body, data, len);
            return len;
        }
        int rc = c->fn(c->fn_ctx, data, len);
        if (rc != 0) {
            c->fn_rc = rc < 0 ? rc : -TS_EIO;
            return 0;
        }
        return len;
    }
    if (ts_buf_append(&c->body, data, len) < 0) return 0;
    return len;
}

static size_t on_read(char *buf, size_t size, size_t n, void *ud)
{
    struct call *c = ud;
    for (;;) {
        ssize_t r = read(c->fd, buf, size * n);
        if (r >= 0) return (size_t)r;
        if (errno == EINTR) continue;
        c->read_errno = errno;
        return CURL_READFUNC_ABORT;
    }
}

static int call_init(struct call *c, const char *url, const char *const *headers, int timeout_ms, bool body_in_memory)
{
    pthread_once(&once, client_init);
    memset(c, 0, sizeof(*c));
    c->fd = -1;
    ts_buf_init(&c->head, HEADERS_MAX);
    ts_buf_init(&c->body, 0);
    c->h = curl_easy_init();
    if (!c->h) return -TS_ENOMEM;
    bool has_expect = false;
    for (const char *const *h = headers; h && *h; h++) {
        if (strncasecmp(*h, "Expect:", 7) == 0) has_expect = true;
        c->hdrs = curl_slist_append(c->hdrs, *h);
    }
    /* in-memory bodies are small: skip the 100-continue round trip */
    if (body_in_memory && !has_expect) c->hdrs = curl_slist_append(c->hdrs, "Expect:");
    curl_easy_setopt(c->h, CURLOPT_URL, url);
    curl_easy_setopt(c->h, CURLOPT_SHARE, share);
    curl_easy_setopt(c->h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c->h, CURLOPT_HTTPHEADER, c->hdrs);
    curl_easy_setopt(c->h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c->h, CURLOPT_HEADERDATA, c);
    curl_easy_setopt(c->h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c->h, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(c->h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c->h, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    curl_easy_setopt(c->h, CURLOPT_TCP_NODELAY, 1L);
    if (timeout_ms > 0) curl_easy_setopt(c->h, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    return 0;
}

static void call_free(struct call *c)
{
    if (c->h) curl_easy_cleanup(c->h);
    curl_slist_free_all(c->hdrs);
    ts_buf_free(&c->head);
    ts_buf_free(&c->body);
}

static int call_perform(struct call *c, const char *method, const char *url, struct ts_err *err)
{
    CURLcode cc = curl_easy_perform(c->h);
    if (cc == CURLE_OK) return 0;
    if (c->fn_rc < 0) return c->fn_rc;
    if (cc == CURLE_OPERATION_TIMEDOUT)
        return ts_err_set(err, TS_ETIMEDOUT, "%s %s timed out", method, url);
    if (cc == CURLE_WRITE_ERROR)
        return ts_err_set(err, TS_ETOOBIG, "%s %s: response too large", method, url);
    if (cc == CURLE_ABORTED_BY_CALLBACK || c->read_errno)
        return ts_err_set(err, TS_EIO, "%s %s: reading the upload failed", method, url);
    return ts_err_set(err, TS_EUNAVAIL, "%s %s failed: %s", method, url, curl_easy_strerror(cc));
}

static void fill_out(struct call *c, struct ts_http_client_resp *out)
{
    long status = 0;
    curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &status);
    out->status = (int)status;
    ts_buf_cstr(&c->body);
    out->body = ts_buf_steal(&c->body, &out->body_len);
    ts_buf_cstr(&c->head);
    size_t hl;
    out->headers = ts_buf_steal(&c->head, &hl);
}

int ts_http_client_request(const char *method, const char *url, const char *const *headers,
                           const void *body, size_t body_len, int timeout_ms,
                           struct ts_http_client_resp *out, struct ts_err *err)
{
    memset(out, 0, sizeof(*out));
    if (!method) method = "GET";
    struct call c;
    int rc = call_init(&c, url, headers, timeout_ms, true);
    if (rc < 0) {
        ts_err_set(err, TS_ENOMEM, "curl_easy_init failed");
        goto out;
    }
    if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(c.h, CURLOPT_NOBODY, 1L);
    } else if (body || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 || strcmp(method, "PATCH") == 0) {
        curl_easy_setopt(c.h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? body_len : 0));
        curl_easy_setopt(c.h, CURLOPT_POSTFIELDS, body ? body : "");
        if (strcmp(method, "POST") != 0) curl_easy_setopt(c.h, CURLOPT_CUSTOMREQUEST, method);
    } else if (strcmp(method, "GET") != 0) {
        curl_easy_setopt(c.h, CURLOPT_CUSTOMREQUEST, method);
    }
    rc = call_perform(&c, method, url, err);
    if (rc == 0) fill_out(&c, out);
out:
    call_free(&c);
    return rc;
}

int ts_http_client_download(const char *url, const char *const *headers, int timeout_ms,
                            int (*fn)(void *ctx, const char *data, size_t len), void *ctx,
                            int *status, struct ts_err *err)
{
    struct call c;
    if (status) *status = 0;
    int rc = call_init(&c, url, headers, timeout_ms, false);
    if (rc < 0) {
        ts_err_set(err, TS_ENOMEM, "curl_easy_init failed");
        goto out;
    }
    c.fn = fn;
    c.fn_ctx = ctx;
    rc = call_perform(&c, "GET", url, err);
    long st = 0;
    curl_easy_getinfo(c.h, CURLINFO_RESPONSE_CODE, &st);
    if (status) *status = (int)st;
    if (rc == 0 && (st < 200 || st >= 300))
        ts_debug(MOD, "GET %s -> %ld: %.200s", url, st, ts_buf_cstr(&c.body));
out:
    call_free(&c);
    return rc;
}

int ts_http_client_upload_fd(const char *method, const char *url, const char *const *headers, int fd, int64_t size,
                             int timeout_ms, struct ts_http_client_resp *out, struct ts_err *err)
{
    memset(out, 0, sizeof(*out));
    if (!method) method = "PUT";
    struct call c;
    int rc = call_init(&c, url, headers, timeout_ms, false);
    if (rc < 0) {
        ts_err_set(err, TS_ENOMEM, "curl_easy_init failed");
        goto out;
    }
    c.fd = fd;
    curl_easy_setopt(c.h, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(c.h, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(c.h, CURLOPT_READDATA, &c);
    curl_easy_setopt(c.h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)(size >= 0 ? size : -1));
    if (strcmp(method, "PUT") != 0) curl_easy_setopt(c.h, CURLOPT_CUSTOMREQUEST, method);
    rc = call_perform(&c, method, url, err);
    if (rc == 0) fill_out(&c, out);
out:
    call_free(&c);
    return rc;
}

char *ts_http_client_resp_header(const struct ts_http_client_resp *r, const char *name)
{
    if (!r || !r->headers || !name) return NULL;
    size_t nl = strlen(name);
    const char *p = r->headers;
    while (*p) {
        const char *e = strstr(p, "\r\n");
        size_t ll = e ? (size_t)(e - p) : strlen(p);
        if (ll > nl && p[nl] == ':' && strncasecmp(p, name, nl) == 0) {
            const char *v = p + nl + 1;
            const char *ve = p + ll;
            while (v < ve && (*v == ' ' || *v == '\t')) v++;
            while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t' || ve[-1] == '\r' || ve[-1] == '\n')) ve--;
            return ts_strndup(v, (size_t)(ve - v));
        }
        if (!e) break;
        p = e + 2;
    }
    return NULL;
}

void ts_http_client_resp_free(struct ts_http_client_resp *r)
{
    if (!r) return;
    free(r->body);
    free(r->headers);
    r->body = NULL;
    r->headers = NULL;
    r->body_len = 0;
}
