/*
 * ts_http_server.c: the HTTP server every service runs on, over libmicrohttpd (internal
 * epoll threads, a thread pool, keep-alive). One struct conn per request, allocated from
 * the request's pool when MHD reports the URI and freed when MHD reports completion.
 *
 * Request life (MHD calls the access handler several times per request):
 *   1st call (headers complete): route, auth, 413 by Content-Length; stream routes run
 *      their handler now. Nothing is queued on this call unless the request has a body we
 *      refuse to read: answering on the first call costs the keep-alive.
 *   calls with data: buffer (capped), feed the upload sink, or discard.
 *   last call (no data): run the handler (buffered routes) or upload.finish, queue.
 * Completion: upload.abort if the sink is still live, access log, pool freed.
 */
#include "http/ts_http_internal.h"
#include "json/ts_json.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define MOD "http"
/* A body we refuse (auth failure, 404, ...) is read and dropped up to this size so the
 * connection stays usable; a larger one is answered at once and the connection closed. */
#define DISCARD_MAX (1024 * 1024)
/* idle seconds before MHD drops a connection: also how long a client that vanished
 * mid-upload could hold an upload open if client_gone() did not notice */
#define IDLE_TIMEOUT 60
/* idle seconds left to a chunked request whose client has closed its side */
#define EOF_TIMEOUT 1

struct hdr {
    struct hdr *next;
    const char *name;
    const char *value;
};

enum body_kind { BODY_NONE, BODY_MEM, BODY_FD, BODY_STREAM, BODY_NOBODY };

struct ts_http_resp {
    struct ts_pool *pool;
    bool set;
    int status;
    enum body_kind kind;
    const char *ctype;
    struct hdr *headers;
    struct hdr **tail;
    char *data;               /* BODY_MEM */
    size_t len;
    bool data_malloced;       /* malloc'd (MHD frees) rather than pool memory */
    int fd;                   /* BODY_FD */
    uint64_t off, flen;
    int64_t ssize;            /* BODY_STREAM */
    ssize_t (*read)(void *ctx, uint64_t pos, char *buf, size_t max);
    void (*free_ctx)(void *ctx);
    void *sctx;
    int64_t nobody_len;       /* BODY_NOBODY */
};

struct ts_http_server {
    struct MHD_Daemon *daemon;
    struct ts_http_router *router;
    char *name;
    int port;
    size_t max_body_bytes;
    enum ts_fault_style fault_style;
    void *svc;
    ts_http_validate_fn validate;
    void *validate_ctx;
    char *www_authenticate;
    FILE *access_log;
};

enum conn_state { ST_NEW, ST_BUFFER, ST_STREAM, ST_DISCARD, ST_QUEUED };

struct conn {
    struct ts_http_server *srv;
    struct MHD_Connection *mc;
    struct ts_pool *pool;
    struct ts_http_req req;
    struct ts_http_resp resp;
    struct ts_auth auth;
    const char *uri;
    const struct ts_http_route *route;
    enum conn_state state;
    bool has_body;
    bool upload_live;
    bool eof_timeout;         /* client_gone() shortened the idle timeout */
    struct ts_buf body;
    uint64_t received;
    uint64_t discard_limit;
    double t0;
    int status;
    int64_t bytes;
    bool q_parsed;
    int nq;
    const char **qn, **qv;
};

/* ---- responses ---------------------------------------------------------------------- */

static void resp_release(struct ts_http_resp *r)
{
    if (r->kind == BODY_MEM && r->data_malloced) free(r->data);
    if (r->kind == BODY_FD && r->fd >= 0) close(r->fd);
    if (r->kind == BODY_STREAM && r->free_ctx) r->free_ctx(r->sctx);
    r->kind = BODY_NONE;
    r->data = NULL;
    r->data_malloced = false;
    r->fd = -1;
    r->free_ctx = NULL;
    r->sctx = NULL;
    r->ctype = NULL;
}

static void resp_init(struct ts_http_resp *r, struct ts_pool *pool)
{
    memset(r, 0, sizeof(*r));
    r->pool = pool;
    r->fd = -1;
    r->tail = &r->headers;
}

void ts_http_resp_status(struct ts_http_resp *resp, int status)
{
    resp->status = status;
    resp->set = true;
}

void ts_http_resp_header(struct ts_http_resp *resp, const char *name, const char *value)
{
    if (!name || !value) return;
    struct hdr *h = ts_pool_alloc(resp->pool, sizeof(*h));
    h->name = ts_pool_strdup(resp->pool, name);
    h->value = ts_pool_strdup(resp->pool, value);
    *resp->tail = h;
    resp->tail = &h->next;
}

void ts_http_resp_headerf(struct ts_http_resp *resp, const char *name, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *v = ts_vasprintf(fmt, ap);
    va_end(ap);
    ts_http_resp_header(resp, name, v);
    free(v);
}

void ts_http_resp_json(struct ts_http_resp *resp, int status, json_t *json)
{
    resp_release(resp);
    resp->status = status;
    resp->set = true;
    if (!json) return;
    char *s = json_dumps(json, JSON_COMPACT);
    json_decref(json);
    if (!s) ts_panic("json_dumps failed");
    resp->kind = BODY_MEM;
    resp->data = s;
    resp->len = strlen(s);
    resp->data_malloced = true;
    resp->ctype = "application/json";
}

void ts_http_resp_body(struct ts_http_resp *resp, int status, const char *content_type, const void *data, size_t len)
{
    resp_release(resp);
    resp->status = status;
    resp->set = true;
    resp->kind = BODY_MEM;
    resp->data = ts_pool_alloc(resp->pool, len + 1);
    if (len) memcpy(resp->data, data, len);
    resp->len = len;
    resp->ctype = content_type ? ts_pool_strdup(resp->pool, content_type) : NULL;
}

void ts_http_resp_body_take(struct ts_http_resp *resp, int status, const char *content_type, void *data, size_t len)
{
    resp_release(resp);
    resp->status = status;
    resp->set = true;
    resp->kind = BODY_MEM;
    resp->data = data ? data : ts_strdup("");
    resp->len = data ? len : 0;
    resp->data_malloced = true;
    resp->ctype = content_type ? ts_pool_strdup(resp->pool, content_type) : NULL;
}

void ts_http_resp_fd(struct ts_http_resp *resp, int status, const char *content_type, int fd, uint64_t offset, uint64_t len)
{
    resp_release(resp);
    resp->status = status;
    resp->set = true;
    resp->kind = BODY_FD;
    resp->fd = fd;
    resp->off = offset;
    resp->flen = len;
    resp->ctype = content_type ? ts_pool_strdup(resp->pool, content_type) : NULL;
}

void ts_http_resp_stream(struct ts_http_resp *resp, int status, const char *content_type, int64_t size,
                         ssize_t (*read)(void *ctx, uint64_t pos, char *buf, size_t max),
                         void (*free_ctx)(void *ctx), void *ctx)
{
    resp_release(resp);
    resp->status = status;
    resp->set = true;
    resp->kind = BODY_STREAM;
    resp->ssize = size;
    resp->read = read;
    resp->free_ctx = free_ctx;
    resp->sctx = ctx;
    resp->ctype = content_type ? ts_pool_strdup(resp->pool, content_type) : NULL;
}

void ts_http_resp_no_body(struct ts_http_resp *resp, int status, int64_t content_length)
{
    resp_release(resp);
    resp->status = status;
    resp->set = true;
    resp->kind = BODY_NOBODY;
    resp->nobody_len = content_length;
}

/* Renders err in the style of the server that owns resp (found through the pool's conn). */
static void fault_into(struct ts_http_resp *resp, enum ts_fault_style style, const struct ts_err *err)
{
    const char *ctype;
    size_t len;
    char *body = ts_http_fault_render(style, err, &ctype, &len);
    int code = err && err->code ? err->code : TS_EIO;
    int status = err && err->status ? err->status : ts_err_status(code);
    resp_release(resp);
    resp->status = status;
    resp->set = true;
    resp->kind = BODY_MEM;
    resp->data = body;
    resp->len = len;
    resp->data_malloced = true;
    resp->ctype = ctype;
}

/* Each resp lives inside a struct conn: find the server's fault style from it. */
void ts_http_resp_fault(struct ts_http_resp *resp, const struct ts_err *err)
{
    struct conn *c = (struct conn *)((char *)resp - offsetof(struct conn, resp));
    fault_into(resp, c->srv->fault_style, err);
}

static enum ts_fault_style conn_style(struct conn *c)
{
    return c->srv->fault_style;
}

static void set_fault(struct conn *c, int rc, struct ts_err *err)
{
    struct ts_err local;
    if (!err || err->code == 0) {
        ts_err_clear(&local);
        local.code = rc < 0 ? -rc : TS_EIO;
        if (err && err->status) local.status = err->status;
        err = &local;
    }
    fault_into(&c->resp, conn_style(c), err);
    if ((err->status ? err->status : ts_err_status(err->code)) >= 500)
        ts_warn(MOD, "%s %s %s -> %d: %s", c->req.request_id, c->req.method, c->req.raw_path,
                err->status ? err->status : ts_err_status(err->code), err->msg);
}

/* ---- building and queueing the MHD response --------------------------------------------- */

struct stream_wrap {
    ssize_t (*read)(void *ctx, uint64_t pos, char *buf, size_t max);
    void (*free_ctx)(void *ctx);
    void *ctx;
    int64_t size;
};

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct stream_wrap *w = cls;
    ssize_t n = w->read(w->ctx, pos, buf, max);
    if (n > 0) return n;
    if (n == 0 && w->size < 0) return MHD_CONTENT_READER_END_OF_STREAM;
    return MHD_CONTENT_READER_END_WITH_ERROR;
}

static void stream_free(void *cls)
{
    struct stream_wrap *w = cls;
    if (w->free_ctx) w->free_ctx(w->ctx);
    free(w);
}

static ssize_t nobody_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)cls, (void)pos, (void)buf, (void)max;
    return MHD_CONTENT_READER_END_WITH_ERROR;
}

static struct MHD_Response *build_response(struct conn *c)
{
    struct ts_http_resp *r = &c->resp;
    struct MHD_Response *mr = NULL;
    bool is_head = strcmp(c->req.method, "HEAD") == 0;

    switch (r->kind) {
    case BODY_MEM:
        mr = MHD_create_response_from_buffer(r->len, r->data,
                                             r->data_malloced ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
        if (mr) {
            r->data_malloced = false;    /* MHD owns it now */
            r->kind = BODY_NONE;
        }
        c->bytes = (int64_t)r->len;
        break;
    case BODY_FD:
        if (r->flen == 0) {
            close(r->fd);
            r->fd = -1;
            r->kind = BODY_NONE;
            mr = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
        } else {
            mr = MHD_create_response_from_fd_at_offset64(r->flen, r->fd, r->off);
            if (mr) {
                r->fd = -1;
                r->kind = BODY_NONE;
            }
        }
        c->bytes = (int64_t)r->flen;
        break;
    case BODY_STREAM: {
        struct stream_wrap *w = ts_calloc(1, sizeof(*w));
        w->read = r->read;
        w->free_ctx = r->free_ctx;
        w->ctx = r->sctx;
        w->size = r->ssize;
        mr = MHD_create_response_from_callback(r->ssize < 0 ? MHD_SIZE_UNKNOWN : (uint64_t)r->ssize, 64 * 1024,
                                               stream_reader, w, stream_free);
        if (mr) {
            r->kind = BODY_NONE;         /* stream_free releases ctx */
            r->free_ctx = NULL;
        } else {
            free(w);
        }
        c->bytes = r->ssize;
        break;
    }
    case BODY_NOBODY:
        if (r->nobody_len >= 0 && (is_head || r->status < 200 || r->status == 204 || r->status == 304)) {
            /* MHD reports the size as Content-Length and never reads the body of a HEAD. */
            mr = MHD_create_response_from_callback((uint64_t)r->nobody_len, 4096, nobody_reader, NULL, NULL);
        } else {
            mr = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
        }
        c->bytes = 0;
        break;
    case BODY_NONE:
    default:
        mr = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
        c->bytes = 0;
        break;
    }
    if (!mr) return NULL;
    MHD_add_response_header(mr, "x-openstack-request-id", c->req.request_id);
    /* a Content-Type set as a plain header (Swift objects) wins over the body setter's */
    bool user_ctype = false;
    for (struct hdr *h = r->headers; h; h = h->next)
        if (strcasecmp(h->name, "Content-Type") == 0) user_ctype = true;
    if (r->ctype && !user_ctype) MHD_add_response_header(mr, MHD_HTTP_HEADER_CONTENT_TYPE, r->ctype);
    for (struct hdr *h = r->headers; h; h = h->next) {
        if (strcasecmp(h->name, "Content-Length") == 0 || strcasecmp(h->name, "Transfer-Encoding") == 0)
            continue;
        /* MHD refuses an empty value (0.9.75 and later alike; no response flag allows it) and
         * writes "Name: value\r\n". One space gives "Name:  \r\n": whitespace around a field
         * value is not part of it (RFC 9110 5.5), so every client reads "" (Swift's empty
         * X-Object-Meta-* values). */
        const char *v = h->value[0] ? h->value : " ";
        if (MHD_add_response_header(mr, h->name, v) != MHD_YES)
            ts_warn(MOD, "%s: response header '%s' refused (bad name or value)", c->req.request_id, h->name);
    }
    return mr;
}

static enum MHD_Result queue(struct conn *c)
{
    if (!c->resp.set) {
        struct ts_err e;
        ts_err_set(&e, TS_EIO, "The handler produced no response.");
        set_fault(c, -TS_EIO, &e);
    }
    if (c->resp.status < 100 || c->resp.status > 599) c->resp.status = 500;
    struct MHD_Response *mr = build_response(c);
    c->state = ST_QUEUED;
    if (!mr) {
        ts_error(MOD, "%s: cannot create a response", c->req.request_id);
        return MHD_NO;
    }
    c->status = c->resp.status;
    enum MHD_Result ret = MHD_queue_response(c->mc, (unsigned int)c->resp.status, mr);
    MHD_destroy_response(mr);
    return ret;
}

/* A response decided before the body was read: keep the connection if the body is small
 * enough to drop, else answer now (MHD then closes the connection). */
static enum MHD_Result answer_early(struct conn *c)
{
    if (!c->has_body) {
        c->state = ST_DISCARD;
        return MHD_YES;
    }
    if (c->req.content_length >= 0 && c->req.content_length <= DISCARD_MAX) {
        c->state = ST_DISCARD;
        c->discard_limit = DISCARD_MAX;
        return MHD_YES;
    }
    return queue(c);
}

/* ---- request accessors -------------------------------------------------------------------- */

const char *ts_http_header(struct ts_http_req *req, const char *name)
{
    struct conn *c = req->conn;
    if (!c || !c->mc || !name) return NULL;
    return MHD_lookup_connection_value(c->mc, MHD_HEADER_KIND, name);
}

struct each_ctx {
    void (*fn)(void *ctx, const char *name, const char *value);
    void *ctx;
};

static enum MHD_Result header_iter(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    (void)kind;
    struct each_ctx *e = cls;
    e->fn(e->ctx, key, value ? value : "");
    return MHD_YES;
}

void ts_http_headers_each(struct ts_http_req *req, void (*fn)(void *ctx, const char *name, const char *value), void *ctx)
{
    struct conn *c = req->conn;
    if (!c || !c->mc) return;
    struct each_ctx e = {fn, ctx};
    MHD_get_connection_values(c->mc, MHD_HEADER_KIND, header_iter, &e);
}

const char *ts_http_param(struct ts_http_req *req, const char *name)
{
    for (int i = 0; i < req->n_params; i++)
        if (strcmp(req->param_names[i], name) == 0) return req->param_values[i];
    return NULL;
}

static int query_get(struct ts_http_req *req, const char ***n, const char ***v)
{
    struct conn *c = req->conn;
    if (c) {
        if (!c->q_parsed) {
            c->nq = ts_http_query_parse(req->pool, req->query, &c->qn, &c->qv);
            c->q_parsed = true;
        }
        *n = c->qn;
        *v = c->qv;
        return c->nq;
    }
    return ts_http_query_parse(req->pool, req->query, n, v);
}

const char *ts_http_query(struct ts_http_req *req, const char *name)
{
    const char **n, **v;
    int cnt = query_get(req, &n, &v);
    for (int i = 0; i < cnt; i++)
        if (strcmp(n[i], name) == 0) return v[i];
    return NULL;
}

int ts_http_query_all(struct ts_http_req *req, const char *name, const char ***out)
{
    const char **n, **v;
    int cnt = query_get(req, &n, &v);
    const char **res = ts_pool_alloc(req->pool, sizeof(char *) * ((size_t)cnt + 1));
    int k = 0;
    for (int i = 0; i < cnt; i++)
        if (strcmp(n[i], name) == 0) res[k++] = v[i];
    *out = res;
    return k;
}

void ts_http_query_each(struct ts_http_req *req, void (*fn)(void *ctx, const char *name, const char *value), void *ctx)
{
    const char **n, **v;
    int cnt = query_get(req, &n, &v);
    for (int i = 0; i < cnt; i++) fn(ctx, n[i], v[i]);
}

static void json_release(void *p)
{
    json_decref((json_t *)p);
}

int ts_http_json_body(struct ts_http_req *req, json_t **out, struct ts_err *err)
{
    *out = NULL;
    if (!req->body || req->body_len == 0)
        return ts_err_set(err, TS_EINVAL, "The request body is empty; a JSON document is required.");
    json_t *j = NULL;
    int rc = ts_json_parse(req->body, req->body_len, &j, err);
    if (rc < 0) return rc;
    ts_pool_cleanup(req->pool, json_release, j);
    *out = j;
    return 0;
}

/* ---- the MHD callbacks ------------------------------------------------------------------- */

static struct conn *conn_new(struct ts_http_server *srv, const char *uri, struct MHD_Connection *mc)
{
    struct ts_pool *pool = ts_pool_new();
    struct conn *c = ts_pool_alloc(pool, sizeof(*c));
    c->srv = srv;
    c->mc = mc;
    c->pool = pool;
    c->t0 = ts_mono();
    c->uri = ts_pool_strdup(pool, uri ? uri : "");
    c->req.pool = pool;
    c->req.conn = c;
    c->req.svc = srv->svc;
    c->req.auth = &c->auth;
    c->req.content_length = -1;
    c->req.method = "";
    c->req.path = "";
    c->req.raw_path = "";
    c->req.query = "";
    c->req.remote_addr = "";
    char id[TS_UUID_LEN + 1];
    ts_uuid(id);
    c->req.request_id = ts_pool_printf(pool, "req-%s", id);
    resp_init(&c->resp, pool);
    ts_buf_init(&c->body, srv->max_body_bytes);
    return c;
}

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *mc)
{
    return conn_new(cls, uri, mc);
}

static void fill_remote(struct conn *c)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c->mc, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (!ci || !ci->client_addr) return;
    char buf[INET6_ADDRSTRLEN] = "";
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, buf, sizeof(buf));
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, buf, sizeof(buf));
    c->req.remote_addr = ts_pool_strdup(c->pool, buf);
}

/* Returns 0 to go on, or a negative code with the 401/503 response prepared. */
static int check_auth(struct conn *c, int flags)
{
    struct ts_http_server *srv = c->srv;
    if (!srv->validate || (flags & TS_ROUTE_PUBLIC)) return 0;
    const char *token = MHD_lookup_connection_value(c->mc, MHD_HEADER_KIND, "X-Auth-Token");
    if ((!token || !token[0]) && (flags & TS_ROUTE_OPTIONAL_AUTH)) return 0;
    struct ts_err err;
    ts_err_clear(&err);
    int rc = -TS_EUNAUTH;
    if (token && token[0] && strlen(token) < sizeof(c->auth.token)) {
        struct ts_auth a;
        memset(&a, 0, sizeof(a));
        rc = srv->validate(srv->validate_ctx, token, &a, &err);
        if (rc == 0) {
            c->auth = a;
            c->auth.authenticated = true;
            snprintf(c->auth.token, sizeof(c->auth.token), "%s", token);
            return 0;
        }
    }
    if (rc == -TS_EUNAUTH || rc == -TS_EINVAL || rc == -TS_ENOTFOUND || rc == -TS_EFORBIDDEN) {
        const char *ctype;
        size_t len;
        char *body = ts_http_fault_unauth_body(srv->fault_style, &ctype, &len);
        resp_release(&c->resp);
        c->resp.status = 401;
        c->resp.set = true;
        c->resp.kind = BODY_MEM;
        c->resp.data = body;
        c->resp.len = len;
        c->resp.data_malloced = true;
        c->resp.ctype = ctype;
        if (srv->www_authenticate) ts_http_resp_header(&c->resp, "WWW-Authenticate", srv->www_authenticate);
        return -TS_EUNAUTH;
    }
    /* the identity service could not be asked: keystonemiddleware answers 503 */
    ts_err_set_full(&err, TS_EUNAVAIL, 503, NULL, "The identity service could not validate the token.");
    set_fault(c, -TS_EUNAVAIL, &err);
    return rc;
}

static int run_handler(struct conn *c, ts_http_handler_fn fn)
{
    struct ts_err err;
    ts_err_clear(&err);
    int rc = fn(&c->req, &c->resp, &err);
    if (rc < 0) set_fault(c, rc, &err);
    return rc;
}

static enum MHD_Result on_headers(struct conn *c, const char *method)
{
    struct ts_http_server *srv = c->srv;
    struct ts_err err;
    ts_err_clear(&err);
    c->req.method = ts_pool_strdup(c->pool, method);
    fill_remote(c);

    const char *q = strchr(c->uri, '?');
    size_t plen = q ? (size_t)(q - c->uri) : strlen(c->uri);
    c->req.raw_path = ts_pool_strndup(c->pool, c->uri, plen);
    c->req.query = q ? q + 1 : "";

    const char *cl = MHD_lookup_connection_value(c->mc, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    const char *te = MHD_lookup_connection_value(c->mc, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
    int64_t clen = -1;
    if (cl && (ts_parse_int64(cl, &clen) < 0 || clen < 0)) clen = -1;
    c->req.content_length = clen;
    c->has_body = clen > 0 || (te && strcasestr(te, "chunked"));

    struct ts_http_router_match m;
    int rc = ts_http_router_match(srv->router, c->pool, c->req.method, c->req.raw_path, plen, &m);
    if (rc == -TS_EINVAL) {
        ts_err_set(&err, TS_EINVAL, "The request path is not valid.");
        set_fault(c, rc, &err);
        return answer_early(c);
    }
    if (rc == -TS_ENOTFOUND) {
        ts_err_set(&err, TS_ENOTFOUND, "The resource could not be found.");
        set_fault(c, rc, &err);
        return answer_early(c);
    }
    if (rc == -TS_EMETHOD) {
        ts_err_set(&err, TS_EMETHOD, "The method %s is not allowed for this resource.", c->req.method);
        set_fault(c, rc, &err);
        ts_http_resp_header(&c->resp, "Allow", m.allow);
        return answer_early(c);
    }
    c->req.path = m.path;
    c->req.n_params = m.n_params;
    for (int i = 0; i < m.n_params; i++) {
        c->req.param_names[i] = m.names[i];
        c->req.param_values[i] = m.values[i];
    }
    const struct ts_http_route *route = m.route;

    if (check_auth(c, route->flags) < 0) return answer_early(c);

    if (route->flags & TS_ROUTE_STREAM) {
        int hrc = run_handler(c, route->handler);
        if (c->req.upload.write) {
            if (hrc < 0) {
                /* the handler installed a sink and then failed: release it */
                if (c->req.upload.abort) c->req.upload.abort(c->req.upload.ctx);
                memset(&c->req.upload, 0, sizeof(c->req.upload));
                return answer_early(c);
            }
            c->upload_live = true;
            c->state = ST_STREAM;
            return MHD_YES;
        }
        if (!c->resp.set) {
            ts_err_set(&err, TS_EIO, "The stream handler neither accepted the body nor answered.");
            set_fault(c, -TS_EIO, &err);
        }
        return answer_early(c);
    }

    if (clen >= 0 && (uint64_t)clen > srv->max_body_bytes) {
        ts_err_set(&err, TS_ETOOBIG, "Request body is larger than the limit of %zu bytes.", srv->max_body_bytes);
        set_fault(c, -TS_ETOOBIG, &err);
        return queue(c);
    }
    c->state = ST_BUFFER;
    c->route = route;
    return MHD_YES;
}

/* An error found while the body is arriving: MHD accepts a response only on the first or
 * the last call of a request, so drop what follows (within a bound) and answer at the end. */
static enum MHD_Result discard_rest(struct conn *c)
{
    c->state = ST_DISCARD;
    c->discard_limit = c->received + DISCARD_MAX;
    return MHD_YES;
}

/* Notices a client that went away (EOF or reset) while its body is incomplete.
 *
 * MHD 0.9.75 registers connections with EPOLLET and, after a short recv(), clears its
 * "read ready" flag without reading on to EAGAIN. When the client's FIN arrives while
 * body bytes it sent are still queued on the socket, no new edge follows once MHD has
 * drained them: the EOF is never read and the request sits until the idle timeout, the
 * upload neither finished nor aborted. MHD calls us after every recv() that delivered
 * body bytes, so a peek here sees the pending EOF/reset.
 *
 * Returns true when the connection must be closed now (MHD_NO; on_completed then runs
 * upload.abort). With a Content-Length an EOF before the last byte is a vanished client.
 * A chunked body's terminator may already sit in MHD's buffer (a client that half-closed
 * after sending everything), so an EOF there only shortens the idle timeout: the request
 * either ends now or times out in EOF_TIMEOUT seconds. */
static bool client_gone(struct conn *c)
{
    bool sized = c->req.content_length >= 0;
    if (sized && c->received >= (uint64_t)c->req.content_length) return false;
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c->mc, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci || ci->connect_fd < 0) return false;
    char b;
    ssize_t n = recv(ci->connect_fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n > 0) return false;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return false;
    if (n < 0) return true;  /* reset or another hard error */
    if (sized) return true;
    if (!c->eof_timeout) {
        c->eof_timeout = true;
        MHD_set_connection_option(c->mc, MHD_CONNECTION_OPTION_TIMEOUT, (unsigned int)EOF_TIMEOUT);
    }
    return false;
}

static enum MHD_Result on_data_consume(struct conn *c, const char *data, size_t len);

static enum MHD_Result on_data(struct conn *c, const char *data, size_t len)
{
    enum MHD_Result ret = on_data_consume(c, data, len);
    if (ret == MHD_YES && c->state != ST_QUEUED && client_gone(c)) {
        ts_info(MOD, "%s: client went away after %llu body bytes", c->req.request_id,
                (unsigned long long)c->received);
        return MHD_NO;
    }
    return ret;
}

static enum MHD_Result on_data_consume(struct conn *c, const char *data, size_t len)
{
    struct ts_err err;
    ts_err_clear(&err);
    c->received += len;
    switch (c->state) {
    case ST_BUFFER:
        if (ts_buf_append(&c->body, data, len) < 0) {
            ts_err_set(&err, TS_ETOOBIG, "Request body is larger than the limit of %zu bytes.",
                       c->srv->max_body_bytes);
            set_fault(c, -TS_ETOOBIG, &err);
            return discard_rest(c);
        }
        return MHD_YES;
    case ST_STREAM: {
        int rc = c->req.upload.write(c->req.upload.ctx, data, len, &err);
        if (rc < 0) {
            c->upload_live = false;
            if (c->req.upload.abort) c->req.upload.abort(c->req.upload.ctx);
            set_fault(c, rc, &err);
            return discard_rest(c);
        }
        return MHD_YES;
    }
    case ST_DISCARD:
        if (c->received > c->discard_limit) {
            /* too much to drop: close without an answer */
            ts_info(MOD, "%s: closing after %llu bytes of a refused body", c->req.request_id,
                    (unsigned long long)c->received);
            return MHD_NO;
        }
        return MHD_YES;
    default:
        return MHD_YES;
    }
}

static enum MHD_Result on_end(struct conn *c)
{
    if (c->eof_timeout) MHD_set_connection_option(c->mc, MHD_CONNECTION_OPTION_TIMEOUT, (unsigned int)IDLE_TIMEOUT);
    switch (c->state) {
    case ST_BUFFER: {
        const struct ts_http_route *route = c->route;
        size_t len = c->body.len;
        c->req.body = len ? ts_buf_cstr(&c->body) : "";
        c->req.body_len = len;
        run_handler(c, route->handler);
        break;
    }
    case ST_STREAM: {
        struct ts_err err;
        ts_err_clear(&err);
        c->upload_live = false;
        int rc = c->req.upload.finish ? c->req.upload.finish(c->req.upload.ctx, &c->req, &c->resp, &err) : 0;
        if (rc < 0) set_fault(c, rc, &err);
        break;
    }
    default:
        break;
    }
    return queue(c);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *mc, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    (void)version;
    struct conn *c = *con_cls;
    if (!c) {
        c = conn_new(cls, url, mc);
        *con_cls = c;
    }
    c->mc = mc;
    if (c->state == ST_NEW) return on_headers(c, method);
    if (c->state == ST_QUEUED) {
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        return on_data(c, upload_data, n);
    }
    return on_end(c);
}

static void on_completed(void *cls, struct MHD_Connection *mc, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    (void)mc;
    struct ts_http_server *srv = cls;
    struct conn *c = *con_cls;
    if (!c) return;
    *con_cls = NULL;
    if (c->upload_live) {
        c->upload_live = false;
        if (c->req.upload.abort) c->req.upload.abort(c->req.upload.ctx);
    }
    resp_release(&c->resp);
    if (c->state != ST_NEW) {
        double ms = (ts_mono() - c->t0) * 1000.0;
        int status = c->status ? c->status : 499;
        if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK && toe != MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN &&
            c->state != ST_QUEUED)
            status = 499;
        if (srv->access_log)
            fprintf(srv->access_log, "%s %s %s %d %lld %.1f %s\n", c->req.remote_addr, c->req.method,
                    c->req.raw_path, status, (long long)c->bytes, ms, c->req.request_id);
        else
            ts_info(srv->name, "%s %s %s %d %lld %.1f %s", c->req.remote_addr, c->req.method, c->req.raw_path,
                    status, (long long)c->bytes, ms, c->req.request_id);
    }
    ts_buf_free(&c->body);
    ts_pool_free(c->pool);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    struct ts_http_server *srv = cls;
    char *s = ts_vasprintf(fmt, ap);
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == '\r')) s[--n] = '\0';
    ts_info(MOD, "%s: %s", srv->name, s);
    free(s);
}

/* ---- server lifecycle -------------------------------------------------------------------- */

static void server_free(struct ts_http_server *srv)
{
    if (!srv) return;
    ts_http_router_free(srv->router);
    if (srv->access_log) fclose(srv->access_log);
    free(srv->name);
    free(srv->www_authenticate);
    free(srv);
}

int ts_http_server_start(const struct ts_http_server_opts *opts, struct ts_http_server **out, struct ts_err *err)
{
    *out = NULL;
    if (!opts || !opts->routes) return ts_err_set(err, TS_EINVAL, "no routes");
    struct ts_http_server *srv = ts_calloc(1, sizeof(*srv));
    srv->name = ts_strdup(opts->name ? opts->name : "http");
    srv->max_body_bytes = opts->max_body_bytes ? opts->max_body_bytes : 1024 * 1024;
    srv->fault_style = opts->fault_style;
    srv->svc = opts->svc;
    srv->validate = opts->validate;
    srv->validate_ctx = opts->validate_ctx;
    srv->www_authenticate = opts->www_authenticate ? ts_strdup(opts->www_authenticate) : NULL;
    srv->router = ts_http_router_new(opts->routes);
    if (!srv->router) {
        server_free(srv);
        return ts_err_set(err, TS_EINVAL, "%s: invalid route table", opts->name ? opts->name : "http");
    }
    if (opts->access_log) {
        srv->access_log = fopen(opts->access_log, "ae");
        if (!srv->access_log) {
            server_free(srv);
            return ts_err_set(err, TS_EIO, "cannot open access log %s", opts->access_log);
        }
        setvbuf(srv->access_log, NULL, _IOLBF, 0);
    }

    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    const char *bind = opts->bind && opts->bind[0] ? opts->bind : "127.0.0.1";
    unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG;
    if (opts->port < 0 || opts->port > 65535) {
        server_free(srv);
        return ts_err_set(err, TS_EINVAL, "invalid port %d", opts->port);
    }
    if (strchr(bind, ':')) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)opts->port);
        if (inet_pton(AF_INET6, bind, &s6->sin6_addr) != 1) goto badaddr;
        flags |= MHD_USE_IPv6;
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)opts->port);
        if (inet_pton(AF_INET, bind, &s4->sin_addr) != 1) goto badaddr;
    }
    unsigned int threads = opts->threads > 0 ? (unsigned int)opts->threads : 4;

    /* MHD zeroes a connection's memory pool between keep-alive requests: 64 KiB keeps
     * that cheap while leaving room for large headers and upload reads. */
    struct MHD_OptionItem ops[16];
    int no = 0;
#define OPT(o, v, p) ops[no++] = (struct MHD_OptionItem){(o), (intptr_t)(v), (p)}
    OPT(MHD_OPTION_EXTERNAL_LOGGER, mhd_log, srv);
    OPT(MHD_OPTION_SOCK_ADDR, 0, &ss);
    if (threads > 1) OPT(MHD_OPTION_THREAD_POOL_SIZE, threads, NULL);
    OPT(MHD_OPTION_URI_LOG_CALLBACK, on_uri, srv);
    OPT(MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv);
    size_t conn_mem = opts->conn_memory_limit ? opts->conn_memory_limit : 64 * 1024;
    if (conn_mem < 16 * 1024) conn_mem = 16 * 1024;
    if (conn_mem > 16 * 1024 * 1024) conn_mem = 16 * 1024 * 1024;
    OPT(MHD_OPTION_CONNECTION_MEMORY_LIMIT, conn_mem, NULL);
    OPT(MHD_OPTION_CONNECTION_TIMEOUT, IDLE_TIMEOUT, NULL);
    OPT(MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024, NULL);
    OPT(MHD_OPTION_END, 0, NULL);
#undef OPT
    srv->daemon = MHD_start_daemon(flags, (uint16_t)opts->port, NULL, NULL, on_request, srv, MHD_OPTION_ARRAY, ops,
                                   MHD_OPTION_END);
    if (!srv->daemon) {
        int port = opts->port;
        server_free(srv);
        return ts_err_set(err, TS_EIO, "cannot listen on %s:%d", bind, port);
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
    srv->port = di ? di->port : opts->port;
    ts_info(MOD, "%s listening on %s:%d (%u threads)", srv->name, bind, srv->port, threads);
    *out = srv;
    return 0;

badaddr:
    server_free(srv);
    return ts_err_set(err, TS_EINVAL, "invalid bind address %s", bind);
}

int ts_http_server_port(const struct ts_http_server *srv)
{
    return srv ? srv->port : 0;
}

void ts_http_server_stop(struct ts_http_server *srv)
{
    if (!srv) return;
    if (srv->daemon) MHD_stop_daemon(srv->daemon);
    server_free(srv);
}

bool ts_auth_has_role(const struct ts_auth *a, const char *role)
{
    if (!a || !role) return false;
    for (int i = 0; i < a->n_roles && i < TS_AUTH_MAX_ROLES; i++)
        if (strcasecmp(a->roles[i], role) == 0) return true;
    return false;
}
