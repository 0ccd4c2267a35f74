/*
 * ts_http_internal.h: what the http module's files share and what its unit tests and
 * fuzzer reach into: the compiled router, percent-decoding and the query parser.
 * Not for services: they use ts_http.h only.
 */
#ifndef TS_HTTP_INTERNAL_H
#define TS_HTTP_INTERNAL_H

#include "http/ts_http.h"

#define TS_HTTP_MAX_PARAMS 16

struct ts_http_router;

/* Compiles a {NULL}-terminated route table (patterns are parsed once; the table itself is
 * borrowed and must outlive the router). Returns NULL (and logs) on a malformed pattern. */
struct ts_http_router *ts_http_router_new(const struct ts_http_route *routes);
void ts_http_router_free(struct ts_http_router *r);

struct ts_http_router_match {
    const struct ts_http_route *route;   /* set when the result is 0 */
    const char *path;                    /* decoded path (pool) */
    int n_params;
    const char *names[TS_HTTP_MAX_PARAMS];
    const char *values[TS_HTTP_MAX_PARAMS];
    char allow[160];                     /* for -TS_EMETHOD: "GET, HEAD, PUT" */
};

/* Matches method + raw (still percent-encoded) path without the query. Returns 0 and
 * fills m; -TS_EINVAL for an undecodable path (bad escape, NUL); -TS_ENOTFOUND when no
 * pattern matches; -TS_EMETHOD when a pattern matches but no method (m->allow set).
 * Strings in m are allocated from pool. Thread-safe (the router is read-only). */
int ts_http_router_match(const struct ts_http_router *r, struct ts_pool *pool, const char *method,
                         const char *raw_path, size_t raw_len, struct ts_http_router_match *m);

/* Percent-decodes s[0..len) into a pool string; plus_space turns '+' into ' ' (query
 * strings). NULL on a bad escape or a decoded NUL. */
char *ts_http_decode(struct ts_pool *pool, const char *s, size_t len, bool plus_space);

/* Parses an application/x-www-form-urlencoded query. Arguments with undecodable names or
 * values are skipped. Returns the count; *names and *values are pool arrays. */
int ts_http_query_parse(struct ts_pool *pool, const char *query, const char ***names, const char ***values);

/* Renders a fault body for status/type/msg in a style: sets *ctype (static string) and
 * returns a malloc'd body (*len set). method is used in some webob texts (may be NULL). */
char *ts_http_fault_render(enum ts_fault_style style, const struct ts_err *err, const char **ctype, size_t *len);

/* keystonemiddleware's 401 body ({"error": {"code": 401, ...}}), malloc'd. */
char *ts_http_fault_unauth_body(enum ts_fault_style style, const char **ctype, size_t *len);

#endif
