/*
 * ts_image_swift.c: the swift image store (glance_store's swift driver). Each image is
 * the object <container>/<id> in the service project's account, reached with the
 * service's own credentials: a token from POST /v3/auth/tokens, renewed before it
 * expires and once more on a 401. Images of unknown size or above large_object_size are
 * written as segments <id>-00001, <id>-00002, ... of segment_size bytes and an SLO
 * manifest <id> written last, so the object appears only once complete.
 *
 * Bytes stream in constant memory both ways. Writing: each object is a chunked PUT run
 * by a thread that reads a socketpair (ts_http_client_upload_fd); write() sends into the
 * other end, so the client's upload and the PUT move together and a full socket buffer
 * is the back-pressure. Every object's ETag is compared with the md5 of what was sent.
 * Reading: a thread runs the GET (with Range) and sends the body into a socketpair that
 * the HTTP response reads. A failed or aborted write deletes what it wrote, as glance's
 * driver does.
 */
#include "image/ts_image_swift.h"

#include <errno.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http/ts_http.h"
#include "image/ts_image_util.h"
#include "json/ts_json.h"

#define MOD "image"
#define CALL_TIMEOUT_MS 60000
#define TOKEN_MAX 4096
#define BASE_MAX 1024
#define LIST_LIMIT 1000

struct ts_image_swift {
    char *url_conf; /* NULL: derived from object_host/port and the project id */
    char *object_host;
    int object_port;
    char *identity_url, *username, *password, *project_name, *user_domain, *project_domain;
    char *container;
    uint64_t large_object_size, segment_size;
    pthread_mutex_t lock; /* guards everything below */
    char token[TOKEN_MAX];
    double issued_at, expires_at;
    char base[BASE_MAX]; /* ".../v1/AUTH_<project>" */
    bool container_ok;
};

/* ---- credentials ------------------------------------------------------------------- */

static int fetch_token(struct ts_image_swift *sw, struct ts_err *err)
{
    json_t *body = json_pack("{s:{s:{s:[s],s:{s:{s:s,s:{s:s},s:s}}},s:{s:{s:s,s:{s:s}}}}}", "auth",
                             "identity", "methods", "password", "password", "user", "name", sw->username,
                             "domain", "id", sw->user_domain, "password", sw->password, "scope", "project",
                             "name", sw->project_name, "domain", "id", sw->project_domain);
    char *text = ts_json_dump(body);
    json_decref(body);
    char *url = ts_asprintf("%s/v3/auth/tokens", sw->identity_url);
    const char *hdr[] = {"Content-Type: application/json", NULL};
    struct ts_http_client_resp r = {0};
    char *tok = NULL;
    int rc = ts_http_client_request("POST", url, hdr, text, strlen(text), CALL_TIMEOUT_MS, &r, err);
    if (rc) goto out;
    char pid[80];
    double exp = 0;
    tok = r.status == 201 ? ts_http_client_resp_header(&r, "X-Subject-Token") : NULL;
    if (!tok || strlen(tok) >= sizeof(sw->token) ||
        ts_image_token_parse(r.body, r.body_len, pid, sizeof(pid), &exp) != 0) {
        rc = ts_err_set(err, TS_EUNAVAIL,
                        "image swift store: no token for user %s in project %s from %s (status %d)",
                        sw->username, sw->project_name, url, r.status);
        goto out;
    }
    snprintf(sw->token, sizeof(sw->token), "%s", tok);
    sw->issued_at = ts_now();
    sw->expires_at = exp;
    if (sw->url_conf) {
        /* an explicit URL may carry Keystone's catalog marker */
        const char *m = strstr(sw->url_conf, "%(project_id)s");
        if (m)
            snprintf(sw->base, sizeof(sw->base), "%.*s%s%s", (int)(m - sw->url_conf), sw->url_conf, pid,
                     m + 14);
        else
            snprintf(sw->base, sizeof(sw->base), "%s", sw->url_conf);
    } else {
        snprintf(sw->base, sizeof(sw->base), "http://%s:%d/v1/AUTH_%s", sw->object_host, sw->object_port,
                 pid);
    }
    size_t l = strlen(sw->base);
    while (l && sw->base[l - 1] == '/')
        sw->base[--l] = 0;
out:
    free(tok);
    ts_http_client_resp_free(&r);
    free(url);
    free(text);
    return rc;
}

/* Copies a valid token and the account URL; renew forces a new token (after a 401). */
static int auth(struct ts_image_swift *sw, bool renew, char tok[TOKEN_MAX], char base[BASE_MAX],
                struct ts_err *err)
{
    int rc = 0;
    pthread_mutex_lock(&sw->lock);
    if (renew || !sw->token[0] || ts_image_token_stale(ts_now(), sw->issued_at, sw->expires_at)) {
        if (renew) ts_info(MOD, "swift store: renewing the service token");
        rc = fetch_token(sw, err);
    }
    if (!rc) {
        snprintf(tok, TOKEN_MAX, "%s", sw->token);
        snprintf(base, BASE_MAX, "%s", sw->base);
    }
    pthread_mutex_unlock(&sw->lock);
    return rc;
}

/* A request on path (under the account URL, already encoded), retried once on 401. */
static int call(struct ts_image_swift *sw, const char *method, const char *path, const char *extra_hdr,
                const char *body, size_t body_len, struct ts_http_client_resp *out, struct ts_err *err)
{
    memset(out, 0, sizeof(*out));
    int rc = 0;
    for (int attempt = 0; attempt < 2; attempt++) {
        char tok[TOKEN_MAX], base[BASE_MAX];
        rc = auth(sw, attempt > 0, tok, base, err);
        if (rc) return rc;
        char *url = ts_asprintf("%s%s", base, path);
        char *th = ts_asprintf("X-Auth-Token: %s", tok);
        const char *hdrs[] = {th, extra_hdr, NULL};
        ts_http_client_resp_free(out);
        rc = ts_http_client_request(method, url, hdrs, body, body_len, CALL_TIMEOUT_MS, out, err);
        free(th);
        free(url);
        if (rc || out->status != 401) break;
    }
    return rc;
}

static int status_error(struct ts_err *err, const char *what, int status)
{
    if (status == 404) return ts_err_set(err, TS_ENOTFOUND, "No image data could be found");
    if (status == 413)
        return ts_err_set(err, TS_ETOOBIG, "image swift store: %s: the object store is full (413)", what);
    return ts_err_set(err, TS_EUNAVAIL, "image swift store: %s: the object service answered %d", what,
                      status);
}

static int ensure_container(struct ts_image_swift *sw, struct ts_err *err)
{
    pthread_mutex_lock(&sw->lock);
    bool ok = sw->container_ok;
    pthread_mutex_unlock(&sw->lock);
    if (ok) return 0;
    char *path = ts_asprintf("/%s", sw->container);
    struct ts_http_client_resp r;
    int rc = call(sw, "PUT", path, NULL, NULL, 0, &r, err);
    if (!rc && r.status != 201 && r.status != 202) rc = status_error(err, "creating the container", r.status);
    ts_http_client_resp_free(&r);
    free(path);
    if (rc) return rc;
    pthread_mutex_lock(&sw->lock);
    sw->container_ok = true;
    pthread_mutex_unlock(&sw->lock);
    return 0;
}

/* ---- life ------------------------------------------------------------------------------- */

static bool name_ok(const char *s, size_t max)
{
    if (!s || !*s || strlen(s) > max) return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-' ||
              *p == '_' || *p == '.'))
            return false;
    return s[0] != '.';
}

int ts_image_swift_new(const struct ts_image_swift_opts *o, struct ts_image_swift **out, struct ts_err *err)
{
    if (!name_ok(o->container, 256))
        return ts_err_set(err, TS_EINVAL, "[image] swift_container: letters, digits, '-', '_' and '.' only");
    if (!o->identity_url || !*o->identity_url)
        return ts_err_set(err, TS_EINVAL, "image swift store: no identity URL");
    if (!o->username || !*o->username || !o->project_name || !*o->project_name)
        return ts_err_set(err, TS_EINVAL,
                          "image swift store: [service_credentials] username and project_name needed");
    if (!(o->url && *o->url) && (!o->object_host || o->object_port <= 0 || o->object_port > 65535))
        return ts_err_set(err, TS_EINVAL,
                          "image swift store: no [image] swift_url and no object service port");
    if (o->url && *o->url && strncmp(o->url, "http://", 7) != 0 && strncmp(o->url, "https://", 8) != 0)
        return ts_err_set(err, TS_EINVAL, "[image] swift_url must be an http(s) URL");
    /* the object service takes objects up to 5 GiB and SLOs up to 1000 segments */
    if (o->segment_size < 1 || o->segment_size > (5ULL << 30))
        return ts_err_set(err, TS_EINVAL, "[image] swift_large_object_chunk_size must be 1 byte to 5 GiB");
    if (o->large_object_size < 1 || o->large_object_size > (5ULL << 30))
        return ts_err_set(err, TS_EINVAL, "[image] swift_large_object_size must be 1 byte to 5 GiB");
    struct ts_image_swift *sw = ts_calloc(1, sizeof(*sw));
    pthread_mutex_init(&sw->lock, NULL);
    sw->url_conf = o->url && *o->url ? ts_strdup(o->url) : NULL;
    sw->object_host = ts_strdup(o->object_host ? o->object_host : "127.0.0.1");
    sw->object_port = o->object_port;
    sw->identity_url = ts_strdup(o->identity_url);
    sw->username = ts_strdup(o->username);
    sw->password = ts_strdup(o->password ? o->password : "");
    sw->project_name = ts_strdup(o->project_name);
    sw->user_domain = ts_strdup(o->user_domain_id ? o->user_domain_id : "default");
    sw->project_domain = ts_strdup(o->project_domain_id ? o->project_domain_id : "default");
    sw->container = ts_strdup(o->container);
    sw->large_object_size = o->large_object_size;
    sw->segment_size = o->segment_size;
    *out = sw;
    return 0;
}

void ts_image_swift_free(struct ts_image_swift *sw)
{
    if (!sw) return;
    free(sw->url_conf);
    free(sw->object_host);
    free(sw->identity_url);
    free(sw->username);
    free(sw->password);
    free(sw->project_name);
    free(sw->user_domain);
    free(sw->project_domain);
    free(sw->container);
    pthread_mutex_destroy(&sw->lock);
    free(sw);
}

/* ---- one streamed PUT ------------------------------------------------------------------- */

struct put {
    char name[160]; /* object name in the container */
    char *url, *token_hdr;
    int wfd, rfd; /* ours, the PUT thread's (it closes rfd when done) */
    pthread_t thread;
    bool running;
    EVP_MD_CTX *md5;
    uint64_t bytes;
    /* the PUT's outcome, read after the join */
    int rc, status;
    char *etag;
    struct ts_err err;
};

static void *put_main(void *arg)
{
    struct put *p = arg;
    const char *hdrs[] = {p->token_hdr, "Content-Type: application/octet-stream", NULL};
    struct ts_http_client_resp r = {0};
    p->rc = ts_http_client_upload_fd("PUT", p->url, hdrs, p->rfd, -1, 0, &r, &p->err);
    if (!p->rc) {
        p->status = r.status;
        p->etag = ts_http_client_resp_header(&r, "ETag");
    }
    ts_http_client_resp_free(&r);
    /* a writer blocked in send() now gets EPIPE instead of waiting forever */
    close(p->rfd);
    return NULL;
}

static int put_start(struct ts_image_swift *sw, struct put *p, const char *name, struct ts_err *err)
{
    char tok[TOKEN_MAX], base[BASE_MAX];
    memset(p, 0, sizeof(*p));
    p->wfd = p->rfd = -1;
    int rc = auth(sw, false, tok, base, err);
    if (rc) return rc;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        return ts_err_set(err, TS_EIO, "socketpair: %s", strerror(errno));
    snprintf(p->name, sizeof(p->name), "%s", name);
    p->url = ts_asprintf("%s/%s/%s", base, sw->container, name);
    p->token_hdr = ts_asprintf("X-Auth-Token: %s", tok);
    p->wfd = sv[0];
    p->rfd = sv[1];
    p->md5 = EVP_MD_CTX_new();
    TS_ASSERT(p->md5 && EVP_DigestInit_ex(p->md5, EVP_md5(), NULL) == 1);
    if (pthread_create(&p->thread, NULL, put_main, p) != 0) {
        close(sv[0]);
        close(sv[1]);
        EVP_MD_CTX_free(p->md5);
        free(p->url);
        free(p->token_hdr);
        memset(p, 0, sizeof(*p));
        return ts_err_set(err, TS_EIO, "cannot start the swift upload thread");
    }
    p->running = true;
    return 0;
}

/* Ends the body (EOF) and waits for the PUT's answer; releases p. With check, returns
 * whether the object is complete: 201 and the ETag is the md5 of what was sent. */
static int put_end(struct put *p, bool check, char md5_out[33], struct ts_err *err)
{
    if (!p->running) return 0;
    close(p->wfd);
    pthread_join(p->thread, NULL);
    p->running = false;
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    char md5[33];
    EVP_DigestFinal_ex(p->md5, d, &n);
    ts_hex(d, n, md5);
    int rc = 0;
    if (check) {
        if (p->rc)
            rc = ts_err_set(err, -p->rc, "image swift store: PUT %s: %s", p->name, p->err.msg);
        else if (p->status != 201)
            rc = status_error(err, "storing the object", p->status);
        else if (!ts_image_etag_match(p->etag, md5))
            rc = ts_err_set(err, TS_EIO,
                            "image swift store: checksum mismatch for %s: sent md5 %s, stored ETag %s",
                            p->name, md5, p->etag ? p->etag : "(none)");
        if (md5_out) memcpy(md5_out, md5, 33);
    }
    EVP_MD_CTX_free(p->md5);
    free(p->url);
    free(p->token_hdr);
    free(p->etag);
    p->md5 = NULL;
    p->url = p->token_hdr = p->etag = NULL;
    return rc;
}

static int put_send(struct put *p, const char *data, size_t len, struct ts_err *err)
{
    EVP_DigestUpdate(p->md5, data, len);
    while (len > 0) {
        ssize_t n = send(p->wfd, data, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            /* the PUT ended early: report its answer rather than EPIPE */
            int rc = put_end(p, true, NULL, err);
            return rc ? rc
                      : ts_err_set(err, TS_EUNAVAIL, "image swift store: the object service stopped reading");
        }
        data += n;
        len -= (size_t)n;
        p->bytes += (uint64_t)n;
    }
    return 0;
}

/* ---- writer ------------------------------------------------------------------------------- */

struct ts_image_swift_writer {
    struct ts_image_swift *sw;
    char id[130];
    bool segmented;
    int nseg;         /* segments started */
    struct put cur;   /* the object being written (cur.running) */
    json_t *manifest; /* SLO entries of finished segments */
    uint64_t written;
};

static bool id_ok(const char *id)
{
    return name_ok(id, 128);
}

int ts_image_swift_open_write(struct ts_image_swift *sw, const char *id, int64_t size,
                              struct ts_image_swift_writer **out, struct ts_err *err)
{
    if (!id_ok(id)) return ts_err_set(err, TS_EINVAL, "bad image id");
    int rc = ensure_container(sw, err);
    if (rc) return rc;
    struct ts_image_swift_writer *w = ts_calloc(1, sizeof(*w));
    w->sw = sw;
    snprintf(w->id, sizeof(w->id), "%s", id);
    w->segmented = size < 0 || (uint64_t)size > sw->large_object_size;
    w->manifest = json_array();
    *out = w;
    return 0;
}

static int segment_done(struct ts_image_swift_writer *w, struct ts_err *err)
{
    char md5[33];
    uint64_t bytes = w->cur.bytes;
    char path[512];
    snprintf(path, sizeof(path), "/%s/%s", w->sw->container, w->cur.name);
    int rc = put_end(&w->cur, true, md5, err);
    if (rc) return rc;
    json_array_append_new(w->manifest, json_pack("{s:s, s:s, s:I}", "path", path, "etag", md5, "size_bytes",
                                                 (json_int_t)bytes));
    return 0;
}

int ts_image_swift_write(struct ts_image_swift_writer *w, const void *data, size_t len, struct ts_err *err)
{
    const char *p = data;
    while (len > 0) {
        if (!w->cur.running) {
            char name[160];
            if (w->segmented) {
                if (w->nseg >= 1000)
                    return ts_err_set(err, TS_ETOOBIG,
                                      "Image too large for the swift store: more than 1000 segments "
                                      "(raise [image] swift_large_object_chunk_size)");
                if (ts_image_segment_name(w->id, w->nseg + 1, name, sizeof(name)) != 0)
                    return ts_err_set(err, TS_EINVAL, "bad image id");
            } else {
                snprintf(name, sizeof(name), "%s", w->id);
            }
            int rc = put_start(w->sw, &w->cur, name, err);
            if (rc) return rc;
            if (w->segmented) w->nseg++;
        }
        size_t n = len;
        if (w->segmented && n > w->sw->segment_size - w->cur.bytes)
            n = (size_t)(w->sw->segment_size - w->cur.bytes);
        int rc = put_send(&w->cur, p, n, err);
        if (rc) return rc;
        p += n;
        len -= n;
        w->written += n;
        if (w->segmented && w->cur.bytes >= w->sw->segment_size) {
            rc = segment_done(w, err);
            if (rc) return rc;
        }
    }
    return 0;
}

uint64_t ts_image_swift_written(const struct ts_image_swift_writer *w)
{
    return w->written;
}

static void writer_free(struct ts_image_swift_writer *w)
{
    put_end(&w->cur, false, NULL, NULL);
    json_decref(w->manifest);
    free(w);
}

int ts_image_swift_commit(struct ts_image_swift_writer *w, struct ts_err *err)
{
    struct ts_image_swift *sw = w->sw;
    struct ts_http_client_resp r = {0};
    char *path = NULL, *text = NULL;
    int rc = 0;
    if (w->cur.running) {
        if (w->segmented)
            rc = segment_done(w, err);
        else
            rc = put_end(&w->cur, true, NULL, err);
        if (rc) goto out;
    }
    if (w->segmented && json_array_size(w->manifest) > 0) {
        /* the manifest last: the image object exists only once every segment does */
        path = ts_asprintf("/%s/%s?multipart-manifest=put", sw->container, w->id);
        text = ts_json_dump(w->manifest);
        rc = call(sw, "PUT", path, "Content-Type: application/json", text, strlen(text), &r, err);
        if (!rc && r.status != 201) rc = status_error(err, "storing the SLO manifest", r.status);
    } else if (w->written == 0) {
        path = ts_asprintf("/%s/%s", sw->container, w->id);
        rc = call(sw, "PUT", path, "Content-Type: application/octet-stream", "", 0, &r, err);
        if (!rc && r.status != 201) rc = status_error(err, "storing the object", r.status);
    }
out:
    ts_http_client_resp_free(&r);
    free(path);
    free(text);
    char id[130];
    snprintf(id, sizeof(id), "%s", w->id);
    writer_free(w);
    if (rc) {
        struct ts_err e2 = {0};
        if (ts_image_swift_delete(sw, id, &e2) != 0)
            ts_warn(MOD, "swift store: cannot remove the partial image %s: %s", id, e2.msg);
    }
    return rc;
}

void ts_image_swift_abort(struct ts_image_swift_writer *w)
{
    if (!w) return;
    struct ts_image_swift *sw = w->sw;
    char id[130];
    snprintf(id, sizeof(id), "%s", w->id);
    bool any = w->cur.running || w->nseg > 0;
    /* the PUT sees a clean end of its chunked body and completes: delete what it made */
    writer_free(w);
    struct ts_err e2 = {0};
    if (any && ts_image_swift_delete(sw, id, &e2) != 0)
        ts_warn(MOD, "swift store: cannot remove the partial image %s: %s", id, e2.msg);
}

/* ---- reader ------------------------------------------------------------------------------- */

struct ts_image_swift_reader {
    int rfd, wfd; /* ours, the GET thread's (it closes wfd when done) */
    pthread_t thread;
    char *url, *token_hdr;
    char range_hdr[96];
    pthread_mutex_t lock; /* guards the fields below */
    pthread_cond_t cond;
    bool got_data, done;
    int rc, status;
    struct ts_err err;
};

static int reader_sink(void *ctx, const char *data, size_t len)
{
    struct ts_image_swift_reader *r = ctx;
    pthread_mutex_lock(&r->lock);
    if (!r->got_data) {
        r->got_data = true;
        pthread_cond_broadcast(&r->cond);
    }
    pthread_mutex_unlock(&r->lock);
    while (len > 0) {
        ssize_t n = send(r->wfd, data, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -TS_EIO; /* the response went away */
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

static void *reader_main(void *arg)
{
    struct ts_image_swift_reader *r = arg;
    const char *hdrs[] = {r->token_hdr, r->range_hdr[0] ? r->range_hdr : NULL, NULL};
    struct ts_err e = {0};
    int status = 0;
    int rc = ts_http_client_download(r->url, hdrs, 0, reader_sink, r, &status, &e);
    pthread_mutex_lock(&r->lock);
    r->rc = rc;
    r->status = status;
    r->err = e;
    r->done = true;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
    close(r->wfd);
    return NULL;
}

void ts_image_swift_reader_free(struct ts_image_swift_reader *r)
{
    if (!r) return;
    close(r->rfd); /* the GET's next send fails and the transfer stops */
    pthread_join(r->thread, NULL);
    pthread_mutex_destroy(&r->lock);
    pthread_cond_destroy(&r->cond);
    free(r->url);
    free(r->token_hdr);
    free(r);
}

static int reader_start(struct ts_image_swift *sw, const char *id, uint64_t off, uint64_t len, bool renew,
                        struct ts_image_swift_reader **out, struct ts_err *err)
{
    char tok[TOKEN_MAX], base[BASE_MAX];
    int rc = auth(sw, renew, tok, base, err);
    if (rc) return rc;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        return ts_err_set(err, TS_EIO, "socketpair: %s", strerror(errno));
    struct ts_image_swift_reader *r = ts_calloc(1, sizeof(*r));
    r->rfd = sv[0];
    r->wfd = sv[1];
    r->url = ts_asprintf("%s/%s/%s", base, sw->container, id);
    r->token_hdr = ts_asprintf("X-Auth-Token: %s", tok);
    if (len > 0)
        snprintf(r->range_hdr, sizeof(r->range_hdr), "Range: bytes=%llu-%llu", (unsigned long long)off,
                 (unsigned long long)(off + len - 1));
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->cond, NULL);
    if (pthread_create(&r->thread, NULL, reader_main, r) != 0) {
        close(sv[0]);
        close(sv[1]);
        pthread_mutex_destroy(&r->lock);
        pthread_cond_destroy(&r->cond);
        free(r->url);
        free(r->token_hdr);
        free(r);
        return ts_err_set(err, TS_EIO, "cannot start the swift download thread");
    }
    *out = r;
    return 0;
}

int ts_image_swift_open_range(struct ts_image_swift *sw, const char *id, uint64_t off, uint64_t len,
                              struct ts_image_swift_reader **out, struct ts_err *err)
{
    if (!id_ok(id)) return ts_err_set(err, TS_ENOTFOUND, "No image data could be found");
    for (int attempt = 0; attempt < 2; attempt++) {
        struct ts_image_swift_reader *r = NULL;
        int rc = reader_start(sw, id, off, len, attempt > 0, &r, err);
        if (rc) return rc;
        /* wait for the answer: the first body bytes of a 2xx, or the end of the call */
        pthread_mutex_lock(&r->lock);
        while (!r->got_data && !r->done)
            pthread_cond_wait(&r->cond, &r->lock);
        bool done = r->done;
        int crc = r->rc, status = r->status;
        struct ts_err e = r->err;
        pthread_mutex_unlock(&r->lock);
        if (!done || (crc == 0 && status >= 200 && status < 300)) {
            *out = r;
            return 0;
        }
        ts_image_swift_reader_free(r);
        if (crc) return ts_err_set(err, -crc, "image swift store: GET %s: %s", id, e.msg);
        if (status == 401 && attempt == 0) continue;
        if (status == 416) return ts_err_set(err, TS_ERANGE, "Requested range not satisfiable");
        return status_error(err, "reading the object", status);
    }
    return ts_err_set(err, TS_EUNAVAIL, "image swift store: the service token is refused");
}

ssize_t ts_image_swift_read(struct ts_image_swift_reader *r, char *buf, size_t max)
{
    for (;;) {
        ssize_t n = read(r->rfd, buf, max);
        if (n > 0) return n;
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return -1;
        /* end of stream: clean only if the GET ended well */
        pthread_mutex_lock(&r->lock);
        while (!r->done)
            pthread_cond_wait(&r->cond, &r->lock);
        bool ok = r->rc == 0 && r->status >= 200 && r->status < 300;
        pthread_mutex_unlock(&r->lock);
        if (!ok) ts_warn(MOD, "swift store: download ended with status %d", r->status);
        return ok ? 0 : -1;
    }
}

/* ---- exists, delete ------------------------------------------------------------------------ */

int ts_image_swift_exists(struct ts_image_swift *sw, const char *id, bool *exists, struct ts_err *err)
{
    *exists = false;
    if (!id_ok(id)) return 0;
    char *path = ts_asprintf("/%s/%s", sw->container, id);
    struct ts_http_client_resp r;
    int rc = call(sw, "HEAD", path, NULL, NULL, 0, &r, err);
    if (!rc) {
        if (r.status >= 200 && r.status < 300)
            *exists = true;
        else if (r.status != 404)
            rc = status_error(err, "HEAD", r.status);
    }
    ts_http_client_resp_free(&r);
    free(path);
    return rc;
}

int ts_image_swift_delete(struct ts_image_swift *sw, const char *id, struct ts_err *err)
{
    if (!id_ok(id)) return 0;
    char marker[200] = "";
    int rc = 0;
    for (;;) {
        /* the listing is sorted: the manifest <id> goes before its segments <id>-NNNNN */
        char *path = ts_asprintf("/%s?format=json&limit=%d&prefix=%s&marker=%s", sw->container, LIST_LIMIT,
                                 id, marker);
        struct ts_http_client_resp r;
        rc = call(sw, "GET", path, NULL, NULL, 0, &r, err);
        free(path);
        if (rc) return rc;
        if (r.status == 404 || r.status == 204) {
            ts_http_client_resp_free(&r);
            return 0;
        }
        if (r.status != 200) {
            rc = status_error(err, "listing the container", r.status);
            ts_http_client_resp_free(&r);
            return rc;
        }
        json_t *arr = json_loadb(r.body ? r.body : "", r.body_len, 0, NULL);
        ts_http_client_resp_free(&r);
        if (!json_is_array(arr)) {
            json_decref(arr);
            return ts_err_set(err, TS_EIO, "image swift store: bad container listing");
        }
        size_t i, n = json_array_size(arr);
        json_t *o;
        char before[sizeof(marker)];
        memcpy(before, marker, sizeof(marker));
        json_array_foreach(arr, i, o)
        {
            const char *name = json_string_value(json_object_get(o, "name"));
            size_t il = strlen(id);
            if (!name || !name_ok(name, 190)) continue;
            snprintf(marker, sizeof(marker), "%s", name);
            /* only <id> and <id>-<digits>: never another image's object */
            if (strncmp(name, id, il) != 0 || (name[il] && name[il] != '-')) continue;
            char *op = ts_asprintf("/%s/%s", sw->container, name);
            struct ts_http_client_resp d;
            int drc = call(sw, "DELETE", op, NULL, NULL, 0, &d, err);
            free(op);
            if (!drc && d.status != 204 && d.status != 200 && d.status != 404)
                drc = status_error(err, "deleting an object", d.status);
            ts_http_client_resp_free(&d);
            if (drc && !rc) rc = drc;
        }
        json_decref(arr);
        if (n < LIST_LIMIT || rc || strcmp(before, marker) == 0) break;
    }
    return rc;
}
