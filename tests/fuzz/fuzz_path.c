/*
 * fuzz_path.c: libFuzzer target for the HTTP router and query parser: the input is a
 * request target "path?query" (arbitrary bytes); it is matched against a route table like
 * the services' with several methods, and the query is parsed. Checks invariants: a match
 * has a route and decoded parameters without NUL bytes; a 405 names some allowed method.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/ts_http_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int h(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    (void)req, (void)resp, (void)err;
    return 0;
}

static const struct ts_http_route routes[] = {
    {"GET", "/", h, 0},
    {"GET", "/v2/images", h, 0},
    {"GET", "/v2/images/{id}", h, 0},
    {"GET", "/v2/images/detail", h, 0},
    {"PUT", "/v2/images/{id}/file", h, TS_ROUTE_STREAM},
    {"DELETE", "/v2/images/{id}/tags/{tag}", h, 0},
    {"GET", "/v1/{account}", h, 0},
    {"GET", "/v1/{account}/{container}", h, 0},
    {"PUT", "/v1/{account}/{container}/{object*}", h, TS_ROUTE_STREAM},
    {"*", "/any/{x*}", h, 0},
    {NULL, NULL, NULL, 0},
};

static struct ts_http_router *router;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!router) router = ts_http_router_new(routes);
    if (!router) abort();
    char *s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';
    size_t len = strlen(s);   /* the server never sees NUL in a request target */
    char *q = memchr(s, '?', len);
    size_t plen = q ? (size_t)(q - s) : len;
    struct ts_pool *pool = ts_pool_new();
    static const char *const methods[] = {"GET", "PUT", "HEAD", "DELETE", "PATCH"};
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        struct ts_http_router_match m;
        int rc = ts_http_router_match(router, pool, methods[i], s, plen, &m);
        if (rc == 0) {
            if (!m.route || !m.path || m.n_params > TS_HTTP_MAX_PARAMS) abort();
            for (int k = 0; k < m.n_params; k++)
                if (!m.names[k] || !m.values[k]) abort();
        } else if (rc == -TS_EMETHOD) {
            if (!m.allow[0]) abort();
        } else if (rc != -TS_ENOTFOUND && rc != -TS_EINVAL) {
            abort();
        }
    }
    const char **names, **values;
    int n = ts_http_query_parse(pool, q ? q + 1 : "", &names, &values);
    for (int i = 0; i < n; i++)
        if (!names[i][0] || !values[i]) abort();
    (void)ts_http_decode(pool, s, len, true);
    ts_pool_free(pool);
    free(s);
    return 0;
}
