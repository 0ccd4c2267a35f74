/* test_router.c: route matching (precedence, params, rest params, 404/405, trailing
 * slashes, HEAD fallback), path decoding and the query parser. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "http/ts_http_internal.h"

static int h_a(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    (void)req, (void)resp, (void)err;
    return 0;
}

static const struct ts_http_route routes[] = {
    {"GET", "/v2/images", h_a, 0},
    {"POST", "/v2/images", h_a, 0},
    {"GET", "/v2/images/{image_id}", h_a, 0},
    {"DELETE", "/v2/images/{image_id}", h_a, 0},
    {"GET", "/v2/images/detail", h_a, 0},
    {"PUT", "/v2/images/{image_id}/file", h_a, TS_ROUTE_STREAM},
    {"HEAD", "/v1/{account}/{container}", h_a, 0},
    {"GET", "/v1/{account}/{container}", h_a, 0},
    {"PUT", "/v1/{account}/{container}/{object*}", h_a, 0},
    {"GET", "/v1/{account}/{container}/{object*}", h_a, 0},
    {"*", "/any/{x}", h_a, 0},
    {"GET", "/", h_a, TS_ROUTE_PUBLIC},
    {NULL, NULL, NULL, 0},
};

static struct ts_http_router *router;

static int setup(void **state)
{
    (void)state;
    router = ts_http_router_new(routes);
    return router ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    ts_http_router_free(router);
    return 0;
}

static int match(struct ts_pool *pool, const char *method, const char *path, struct ts_http_router_match *m)
{
    return ts_http_router_match(router, pool, method, path, strlen(path), m);
}

static const char *param(const struct ts_http_router_match *m, const char *name)
{
    for (int i = 0; i < m->n_params; i++)
        if (strcmp(m->names[i], name) == 0) return m->values[i];
    return NULL;
}

static void test_literal_beats_param(void **state)
{
    (void)state;
    struct ts_pool *pool = ts_pool_new();
    struct ts_http_router_match m;
    assert_int_equal(match(pool, "GET", "/v2/images/detail", &m), 0);
    assert_ptr_equal(m.route, &routes[4]);
    assert_int_equal(m.n_params, 0);
    assert_int_equal(match(pool, "GET", "/v2/images/abc", &m), 0);
    assert_ptr_equal(m.route, &routes[2]);
    assert_string_equal(param(&m, "image_id"), "abc");
    /* DELETE on the literal path falls to the {param} route that allows it */
    assert_int_equal(match(pool, "DELETE", "/v2/images/detail", &m), 0);
    assert_ptr_equal(m.route, &routes[3]);
    assert_string_equal(param(&m, "image_id"), "detail");
    ts_pool_free(pool);
}

static void test_not_found_and_method(void **state)
{
    (void)state;
    struct ts_pool *pool = ts_pool_new();
    struct ts_http_router_match m;
    assert_int_equal(match(pool, "GET", "/v2/nothing", &m), -TS_ENOTFOUND);
    assert_int_equal(match(pool, "GET", "/v2/images/x/file/y", &m), -TS_ENOTFOUND);
    assert_int_equal(match(pool, "GET", "relative", &m), -TS_ENOTFOUND);
    assert_int_equal(match(pool, "PATCH", "/v2/images", &m), -TS_EMETHOD);
    assert_non_null(strstr(m.allow, "GET"));
    assert_non_null(strstr(m.allow, "POST"));
    assert_non_null(strstr(m.allow, "HEAD"));
    assert_int_equal(match(pool, "GET", "/v2/images/x/file", &m), -TS_EMETHOD);
    assert_string_equal(m.allow, "PUT");
    assert_int_equal(match(pool, "PUT", "/v2/images/x/file", &m), 0);
    ts_pool_free(pool);
}

static void test_trailing_slash_and_root(void **state)
{
    (void)state;
    struct ts_pool *pool = ts_pool_new();
    struct ts_http_router_match m;
    assert_int_equal(match(pool, "GET", "/v2/images/", &m), 0);
    assert_ptr_equal(m.route, &routes[0]);
    assert_int_equal(match(pool, "GET", "/v2/images/abc/", &m), 0);
    assert_string_equal(param(&m, "image_id"), "abc");
    assert_int_equal(match(pool, "GET", "/", &m), 0);
    assert_ptr_equal(m.route, &routes[11]);
    /* empty segments never match a {param} */
    assert_int_equal(match(pool, "GET", "/v2/images//", &m), -TS_ENOTFOUND);
    ts_pool_free(pool);
}

static void test_rest_param(void **state)
{
    (void)state;
    struct ts_pool *pool = ts_pool_new();
    struct ts_http_router_match m;
    assert_int_equal(match(pool, "PUT", "/v1/AUTH_x/c/a/b%20c/d.txt", &m), 0);
    assert_ptr_equal(m.route, &routes[8]);
    assert_string_equal(param(&m, "account"), "AUTH_x");
    assert_string_equal(param(&m, "container"), "c");
    assert_string_equal(param(&m, "object"), "a/b c/d.txt");
    /* pseudo-directory markers keep their slash */
    assert_int_equal(match(pool, "PUT", "/v1/AUTH_x/c/dir/", &m), 0);
    assert_string_equal(param(&m, "object"), "dir/");
    /* "/v1/a/c/" is the container, not an empty object name */
    assert_int_equal(match(pool, "GET", "/v1/AUTH_x/c/", &m), 0);
    assert_ptr_equal(m.route, &routes[7]);
    /* ... but PUT has no container route here: the rest may be empty after the slash */
    assert_int_equal(match(pool, "PUT", "/v1/AUTH_x/c/", &m), 0);
    assert_ptr_equal(m.route, &routes[8]);
    assert_string_equal(param(&m, "object"), "");
    assert_int_equal(match(pool, "PUT", "/v1/AUTH_x/c", &m), -TS_EMETHOD);
    /* %2F stays inside a segment */
    assert_int_equal(match(pool, "GET", "/v2/images/a%2Fb", &m), 0);
    assert_string_equal(param(&m, "image_id"), "a/b");
    ts_pool_free(pool);
}

static void test_head_fallback_and_any(void **state)
{
    (void)state;
    struct ts_pool *pool = ts_pool_new();
    struct ts_http_router_match m;
    assert_int_equal(match(pool, "HEAD", "/v2/images/abc", &m), 0);
    assert_ptr_equal(m.route, &routes[2]);
    assert_int_equal(match(pool, "HEAD", "/v1/a/c", &m), 0);
    assert_ptr_equal(m.route, &routes[6]);
    assert_int_equal(match(pool, "HEAD", "/v2/images/x/file", &m), -TS_EMETHOD);
    assert_int_equal(match(pool, "OPTIONS", "/any/thing", &m), 0);
    assert_ptr_equal(m.route, &routes[10]);
    ts_pool_free(pool);
}

static void test_bad_paths(void **state)
{
    (void)state;
    struct ts_pool *pool = ts_pool_new();
    struct ts_http_router_match m;
    assert_int_equal(match(pool, "GET", "/v2/images/%zz", &m), -TS_EINVAL);
    assert_int_equal(match(pool, "GET", "/v2/images/%00", &m), -TS_EINVAL);
    assert_int_equal(match(pool, "GET", "/v2/images/%4", &m), -TS_EINVAL);
    assert_int_equal(match(pool, "GET", "/v2/%69mages", &m), 0);
    assert_string_equal(m.path, "/v2/images");
    ts_pool_free(pool);
}

static void test_bad_patterns(void **state)
{
    (void)state;
    static const struct ts_http_route bad1[] = {{"GET", "/a/{x*}/b", h_a, 0}, {NULL, NULL, NULL, 0}};
    static const struct ts_http_route bad2[] = {{"GET", "noslash", h_a, 0}, {NULL, NULL, NULL, 0}};
    static const struct ts_http_route bad3[] = {{"GET", "/a/{}", h_a, 0}, {NULL, NULL, NULL, 0}};
    assert_null(ts_http_router_new(bad1));
    assert_null(ts_http_router_new(bad2));
    assert_null(ts_http_router_new(bad3));
}

static void test_query(void **state)
{
    (void)state;
    struct ts_pool *pool = ts_pool_new();
    const char **n, **v;
    int cnt = ts_http_query_parse(pool, "limit=10&name=a+b%21&tag=x&tag=y&flag&bad=%zz&=novalue", &n, &v);
    assert_int_equal(cnt, 5);
    assert_string_equal(n[0], "limit");
    assert_string_equal(v[0], "10");
    assert_string_equal(v[1], "a b!");
    assert_string_equal(n[3], "tag");
    assert_string_equal(v[3], "y");
    assert_string_equal(n[4], "flag");
    assert_string_equal(v[4], "");
    assert_int_equal(ts_http_query_parse(pool, "", &n, &v), 0);
    assert_int_equal(ts_http_query_parse(pool, "&&&", &n, &v), 0);

    struct ts_http_req req;
    memset(&req, 0, sizeof(req));
    req.pool = pool;
    req.query = "tag=a&tag=b&x=1";
    const char **all;
    assert_int_equal(ts_http_query_all(&req, "tag", &all), 2);
    assert_string_equal(all[1], "b");
    assert_string_equal(ts_http_query(&req, "x"), "1");
    assert_null(ts_http_query(&req, "y"));
    ts_pool_free(pool);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_literal_beats_param),
        cmocka_unit_test(test_not_found_and_method),
        cmocka_unit_test(test_trailing_slash_and_root),
        cmocka_unit_test(test_rest_param),
        cmocka_unit_test(test_head_fallback_and_any),
        cmocka_unit_test(test_bad_paths),
        cmocka_unit_test(test_bad_patterns),
        cmocka_unit_test(test_query),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
