/*
 * ts_http.h: the HTTP server every service runs on (libmicrohttpd, one daemon per service
 * port, a thread pool), its router, request/response objects, fault rendering in each
 * OpenStack service's style, the token middleware (keystonemiddleware's job) and an HTTP
 * client (libcurl) for service-to-service calls.
 *
 * Request life: headers arrive -> route matched -> auth checked (unless the route is
 * public) -> for TS_ROUTE_STREAM routes the handler runs now and may install an upload
 * sink; for the others the body is buffered (up to max_body_bytes, else 413) and the
 * handler runs once it is complete. The handler fills the response; its pool is freed
 * after the response is queued.
 */
#ifndef TS_HTTP_H
#define TS_HTTP_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include "core/ts_core.h"

struct ts_http_server;
struct ts_http_req;
struct ts_http_resp;
struct ts_bus;

/* ---- the authenticated caller ------------------------------------------------- */
#define TS_AUTH_MAX_ROLES 32
struct ts_auth {
    bool authenticated;
    char token[1024];          /* the raw X-Auth-Token (for calls to other services) */
    char user_id[65];
    char user_name[256];
    char user_domain_id[65];
    char project_id[65];       /* empty when not project-scoped */
    char project_name[256];
    char project_domain_id[65];
    char domain_id[65];        /* set for domain-scoped tokens */
    bool system_scope;         /* system:all */
    int n_roles;
    char roles[TS_AUTH_MAX_ROLES][65];   /* role names, implied roles expanded */
    double expires_at;
    bool is_admin;             /* has role "admin" */
    bool is_reader_only;       /* only "reader" (no member/admin): read-only persona */
};
bool ts_auth_has_role(const struct ts_auth *a, const char *role);

/* Validates a token for the middleware. Returns 0 and fills out, or -TS_EUNAUTH (or
 * -TS_EUNAVAIL if the identity service cannot be reached). Must be thread-safe. */
typedef int (*ts_http_validate_fn)(void *ctx, const char *token, struct ts_auth *out, struct ts_err *err);

/* ---- fault styles --------------------------------------------------------------- */
enum ts_fault_style {
    TS_FAULT_KEYSTONE,   /* {"error": {"code": 404, "title": "Not Found", "message": "..."}} */
    TS_FAULT_NOVA,       /* {"itemNotFound": {"code": 404, "message": "..."}} (badRequest, forbidden, ...) */
    TS_FAULT_NEUTRON,    /* {"NeutronError": {"type": "...", "message": "...", "detail": ""}} */
    TS_FAULT_GLANCE,     /* text/html webob-style body "<html>...404 Not Found..." as glance does */
    TS_FAULT_CINDER,     /* like nova */
    TS_FAULT_SWIFT,      /* text/html "<html><h1>Not Found</h1><p>The resource could not be found.</p></html>" */
    TS_FAULT_HEAT,       /* {"code":..,"error":{"message","type","traceback"},"explanation","title"} */
};

/* ---- routes ---------------------------------------------------------------------- */
/* Handler: fill resp, return 0; or return a negative TS_E code with err set and the
 * server renders the fault in the server's style. */
typedef int (*ts_http_handler_fn)(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err);

enum {
    TS_ROUTE_PUBLIC = 1 << 0,   /* no token needed */
    TS_ROUTE_STREAM = 1 << 1,   /* handler runs before the body; may install an upload sink */
    TS_ROUTE_OPTIONAL_AUTH = 1 << 2,  /* token validated if present, never required */
};

/* Pattern syntax: literal segments and "{name}" segments matching one path segment;
 * a final "{name*}" matches the rest of the path (may contain '/', may be empty only if
 * the pattern ends with "/{name*}" and the path has the slash). Methods: "GET", "PUT", ...;
 * "*" matches any method. HEAD falls back to GET routes when no HEAD route exists
 * (the body is dropped). Trailing slashes in the request path are ignored. */
struct ts_http_route {
    const char *method;
    const char *pattern;
    ts_http_handler_fn handler;
    int flags;
};

/* ---- upload sink for TS_ROUTE_STREAM --------------------------------------------- */
struct ts_http_upload {
    /* Called for each chunk of the body. Return 0, or negative to abort: the request then
     * fails with that code (finish is not called; abort is). */
    int (*write)(void *ctx, const char *data, size_t len, struct ts_err *err);
    /* Called after the last byte; builds the response like a handler. */
    int (*finish)(void *ctx, struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err);
    /* Called if the client goes away or write failed; must release what the upload held. */
    void (*abort)(void *ctx);
    void *ctx;
};

/* ---- request -------------------------------------------------------------------------- */
struct ts_http_req {
    struct ts_pool *pool;        /* freed after the response is sent */
    const char *method;
    const char *path;            /* decoded path without query */
    const char *raw_path;        /* as received (still percent-encoded), no query */
    const char *query;           /* raw query string after '?', "" if none */
    const char *request_id;      /* "req-<uuid>", echoed in x-openstack-request-id */
    const char *body;            /* buffered body (NUL-terminated), NULL for stream routes */
    size_t body_len;
    int64_t content_length;      /* -1 if not given (chunked) */
    struct ts_auth *auth;        /* the caller (auth->authenticated false on public routes) */
    void *svc;                   /* the service's context given to ts_http_server_new */
    struct ts_http_upload upload;/* set by a stream handler to accept the body */
    const char *remote_addr;     /* client IP as text */
    void *conn;                  /* private */
    int n_params;
    const char *param_names[16];
    const char *param_values[16];
};

/* A request header (case-insensitive), or NULL. */
const char *ts_http_header(struct ts_http_req *req, const char *name);
/* Calls fn for every header (for X-Object-Meta-* etc.). */
void ts_http_headers_each(struct ts_http_req *req, void (*fn)(void *ctx, const char *name, const char *value), void *ctx);
/* A route parameter ("{id}"), decoded, or NULL. */
const char *ts_http_param(struct ts_http_req *req, const char *name);
/* A query argument, decoded (first occurrence), or NULL. */
const char *ts_http_query(struct ts_http_req *req, const char *name);
/* All values of a repeated query argument, decoded; returns count, *out from the pool. */
int ts_http_query_all(struct ts_http_req *req, const char *name, const char ***out);
/* Calls fn for every query argument, decoded, in order. */
void ts_http_query_each(struct ts_http_req *req, void (*fn)(void *ctx, const char *name, const char *value), void *ctx);
/* Parses the buffered body as JSON (400 on malformed/empty). The pool owns *out. */
int ts_http_json_body(struct ts_http_req *req, json_t **out, struct ts_err *err);

/* ---- response ------------------------------------------------------------------------ */
void ts_http_resp_status(struct ts_http_resp *resp, int status);
/* Adds a header (copied). Content-Type and Content-Length are handled by the body setters. */
void ts_http_resp_header(struct ts_http_resp *resp, const char *name, const char *value);
void ts_http_resp_headerf(struct ts_http_resp *resp, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* JSON body (steals json; may be NULL for no body) with Content-Type application/json. */
void ts_http_resp_json(struct ts_http_resp *resp, int status, json_t *json);
/* Copies a body with a content type (NULL = none). */
void ts_http_resp_body(struct ts_http_resp *resp, int status, const char *content_type, const void *data, size_t len);
/* Like ts_http_resp_body without the copy: takes data (malloc'd; the server frees it), which
 * goes out with the headers in one send. */
void ts_http_resp_body_take(struct ts_http_resp *resp, int status, const char *content_type, void *data, size_t len);
/* Streams len bytes of an open fd from offset; the server closes fd when done. */
void ts_http_resp_fd(struct ts_http_resp *resp, int status, const char *content_type, int fd, uint64_t offset, uint64_t len);
/* Streams from a reader: read(ctx, pos, buf, max) returns bytes (>0), 0 at end, -1 on error;
 * free_ctx(ctx) runs when done. size = -1 for chunked/unknown. */
void ts_http_resp_stream(struct ts_http_resp *resp, int status, const char *content_type, int64_t size,
                         ssize_t (*read)(void *ctx, uint64_t pos, char *buf, size_t max),
                         void (*free_ctx)(void *ctx), void *ctx);
/* HEAD-style: status and headers with an explicit Content-Length but no body. */
void ts_http_resp_no_body(struct ts_http_resp *resp, int status, int64_t content_length);
/* Renders a fault for err in the server's style (what the server does with a negative return). */
void ts_http_resp_fault(struct ts_http_resp *resp, const struct ts_err *err);

/* ---- server ------------------------------------------------------------------------ */
struct ts_http_server_opts {
    const char *name;            /* service name for logs ("identity") */
    const char *bind;            /* "127.0.0.1" or "0.0.0.0" */
    int port;                    /* 0 = pick a free port; read back with ts_http_server_port */
    int threads;                 /* worker threads (0 = 4) */
    size_t max_body_bytes;       /* buffered bodies above this -> 413 (0 = 1 MiB) */
    enum ts_fault_style fault_style;
    const struct ts_http_route *routes;  /* terminated by a {NULL} entry */
    void *svc;                   /* passed to handlers as req->svc */
    ts_http_validate_fn validate;        /* token check; NULL = every route public */
    void *validate_ctx;
    const char *www_authenticate;        /* e.g. "Keystone uri=\"http://127.0.0.1:5000\"" */
    const char *access_log;      /* path, NULL = log through ts_log at info */
    /* libmicrohttpd's memory per connection (headers, upload read buffer: a streamed upload
     * arrives in reads of about half of it); 0 = 64 KiB, at most 16 MiB */
    size_t conn_memory_limit;
};

/* Starts listening. Returns 0 and *out, or -TS_EIO (port busy, ...). */
int ts_http_server_start(const struct ts_http_server_opts *opts, struct ts_http_server **out, struct ts_err *err);
int ts_http_server_port(const struct ts_http_server *srv);
/* Stops accepting, waits for running requests, frees. NULL is a no-op. */
void ts_http_server_stop(struct ts_http_server *srv);

/* ---- the token middleware's validator (keystonemiddleware) ----------------------------- */
/* Validates tokens by GET {identity_url}/v3/auth/tokens (X-Subject-Token), caching results
 * for cache_seconds (never past expiry). Listens on the bus (if given) for
 * "identity.token.revoked" fanout notices and drops matching cache entries. */
struct ts_http_authn;
struct ts_http_authn *ts_http_authn_new(const char *identity_url, int cache_seconds, struct ts_bus *bus);
void ts_http_authn_free(struct ts_http_authn *a);
/* A ts_http_validate_fn; ctx is the ts_http_authn. */
int ts_http_authn_validate(void *ctx, const char *token, struct ts_auth *out, struct ts_err *err);
/* Drops a token (or all tokens of a user when token is NULL and user_id given) from the cache. */
void ts_http_authn_forget(struct ts_http_authn *a, const char *token, const char *user_id);

/* ---- client ------------------------------------------------------------------------ */
struct ts_http_client_resp {
    int status;
    char *body;                  /* malloc'd, NUL-terminated; may be NULL */
    size_t body_len;
    char *headers;               /* malloc'd raw header block "Name: value\r\n..." */
};
/* Performs a request. headers: NULL-terminated array of "Name: value". body may be NULL.
 * Returns 0 when a response arrived (any status) or -TS_EUNAVAIL/-TS_ETIMEDOUT. */
int ts_http_client_request(const char *method, const char *url, const char *const *headers,
                           const void *body, size_t body_len, int timeout_ms,
                           struct ts_http_client_resp *out, struct ts_err *err);
/* Streams a GET response body into fn (chunks); for image downloads. */
int ts_http_client_download(const char *url, const char *const *headers, int timeout_ms,
                            int (*fn)(void *ctx, const char *data, size_t len), void *ctx,
                            int *status, struct ts_err *err);
/* Streams an upload from an fd (PUT) of size bytes. */
int ts_http_client_upload_fd(const char *method, const char *url, const char *const *headers, int fd, int64_t size,
                             int timeout_ms, struct ts_http_client_resp *out, struct ts_err *err);
/* A response header value (malloc'd) or NULL. */
char *ts_http_client_resp_header(const struct ts_http_client_resp *r, const char *name);
void ts_http_client_resp_free(struct ts_http_client_resp *r);

#endif
