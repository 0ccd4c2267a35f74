/* test_ts_object_usage.c: the object service's metering notifications. Starts the real
 * service (SQLite, file store, HTTP on a loopback port) with an in-process bus and a fake
 * identity service, drives it over HTTP (container PUT, object PUTs, overwrite, DELETEs,
 * container DELETE) and checks the objectstore.account.usage notifications a listener
 * gets: the account's bytes, object and container counts after each burst, one
 * notification per burst (coalesced), none for an unchanged account. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bus/ts_bus.h"
#include "object/ts_object.h"
#include "object/ts_object_int.h"

/* ---- a fake identity: token "tok1" is a member of project pid1 ---- */
static int h_tokens(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    const char *subject = ts_http_header(req, "X-Subject-Token");
    if (!subject || strcmp(subject, "tok1") != 0) return ts_err_set(err, TS_ENOTFOUND, "Could not find token.");
    char exp[32];
    ts_time_iso(ts_now() + 3600, 6, exp);
    ts_http_resp_json(resp, 200, json_pack("{s:{s:{s:s,s:s,s:{s:s}},s:{s:s,s:s,s:{s:s}},s:[{s:s}],s:s}}", "token",
                                           "user", "id", "uid1", "name", "alice", "domain", "id", "default",
                                           "project", "id", "pid1", "name", "demo", "domain", "id", "default",
                                           "roles", "name", "member", "expires_at", exp));
    return 0;
}

static const struct ts_http_route id_routes[] = {
    {"GET", "/v3/auth/tokens", h_tokens, TS_ROUTE_PUBLIC},
    {NULL, NULL, NULL, 0},
};

/* ---- what the listener saw ---- */
struct seen {
    pthread_mutex_t lock;
    json_t *usage;               /* array of payloads of objectstore.account.usage */
    int requests;                /* objectstore.http.request count */
};

static int on_note(void *ctx, const char *method, json_t *args, json_t **reply, struct ts_err *err)
{
    (void)reply, (void)err;
    struct seen *s = ctx;
    pthread_mutex_lock(&s->lock);
    if (strcmp(method, "objectstore.account.usage") == 0) {
        assert_string_equal(json_string_value(json_object_get(args, "publisher_id")), "objectstore.testhost");
        json_array_append(s->usage, json_object_get(args, "payload"));
    } else if (strcmp(method, "objectstore.http.request") == 0) {
        s->requests++;
    }
    pthread_mutex_unlock(&s->lock);
    return 0;
}

static size_t n_usage(struct seen *s)
{
    pthread_mutex_lock(&s->lock);
    size_t n = json_array_size(s->usage);
    pthread_mutex_unlock(&s->lock);
    return n;
}

/* Waits up to secs for the listener to hold want usage notifications. */
static void wait_usage(struct seen *s, size_t want, double secs)
{
    double end = ts_mono() + secs;
    while (n_usage(s) < want && ts_mono() < end) usleep(20 * 1000);
    assert_int_equal(n_usage(s), want);
}

static void check_usage(struct seen *s, size_t i, int64_t bytes, int64_t objects, int64_t containers)
{
    pthread_mutex_lock(&s->lock);
    json_t *p = json_array_get(s->usage, i);
    assert_non_null(p);
    assert_string_equal(json_string_value(json_object_get(p, "project_id")), "pid1");
    assert_string_equal(json_string_value(json_object_get(p, "account")), "AUTH_pid1");
    assert_int_equal(json_integer_value(json_object_get(p, "bytes_used")), bytes);
    assert_int_equal(json_integer_value(json_object_get(p, "object_count")), objects);
    assert_int_equal(json_integer_value(json_object_get(p, "container_count")), containers);
    pthread_mutex_unlock(&s->lock);
}

static int req(const char *method, const char *base, const char *path, const char *body, size_t len)
{
    char url[512];
    snprintf(url, sizeof(url), "%s%s", base, path);
    const char *hdrs[] = {"X-Auth-Token: tok1", NULL};
    struct ts_http_client_resp r;
    memset(&r, 0, sizeof(r));
    struct ts_err err;
    assert_int_equal(ts_http_client_request(method, url, hdrs, body, len, 10000, &r, &err), 0);
    int status = r.status;
    ts_http_client_resp_free(&r);
    return status;
}

static void test_usage_notifications(void **state)
{
    (void)state;
    char root[128], cmd[300];
    snprintf(root, sizeof(root), "/tmp/ts-object-usage-test-%d", (int)getpid());
    snprintf(cmd, sizeof(cmd), "rm -rf %s && mkdir -p %s", root, root);
    assert_int_equal(system(cmd), 0);

    struct ts_err err;
    struct ts_http_server_opts io = {.name = "identity", .bind = "127.0.0.1", .routes = id_routes,
                                     .fault_style = TS_FAULT_KEYSTONE};
    struct ts_http_server *idsrv = NULL;
    assert_int_equal(ts_http_server_start(&io, &idsrv, &err), 0);
    char idurl[64];
    snprintf(idurl, sizeof(idurl), "http://127.0.0.1:%d", ts_http_server_port(idsrv));

    struct ts_bus *bus = NULL;
    assert_int_equal(ts_bus_open(NULL, &bus, &err), 0);
    struct seen seen = {.usage = json_array()};
    pthread_mutex_init(&seen.lock, NULL);
    assert_int_equal(ts_bus_listen_notifications(bus, on_note, &seen, &err), 0);

    struct ts_conf *conf = ts_conf_new();
    ts_conf_set(conf, "object", "port", "0");
    ts_conf_set(conf, "object", "workers", "4");
    ts_conf_set(conf, "object", "usage_notify_interval", "3");
    struct ts_http_authn *authn = ts_http_authn_new(idurl, 60, NULL);
    struct ts_service_env env = {.conf = conf, .data_dir = root, .bus = bus, .host = "testhost",
                                 .identity_url = idurl, .bind = "127.0.0.1", .authn = authn};
    assert_int_equal(ts_object_service.init(&env, &err), 0);
    void *svc = NULL;
    assert_int_equal(ts_object_service.start(&env, &svc, &err), 0);
    struct ts_object_svc *osvc = svc;
    char base[64];
    snprintf(base, sizeof(base), "http://127.0.0.1:%d/v1/AUTH_pid1", ts_http_server_port(osvc->http));

    /* a burst: container + 20 PUTs of 1,000 bytes + an overwrite with 500 bytes -> one notification */
    char body[1000];
    memset(body, 'x', sizeof(body));
    double t0 = ts_mono();
    assert_int_equal(req("PUT", base, "/c1", NULL, 0), 201);
    for (int i = 0; i < 20; i++) {
        char p[64];
        snprintf(p, sizeof(p), "/c1/o%d", i);
        assert_int_equal(req("PUT", base, p, body, sizeof(body)), 201);
    }
    assert_int_equal(req("PUT", base, "/c1/o0", body, 500), 201);
    assert_int_equal(req("PUT", base, "/c2", NULL, 0), 201);
    /* the burst fits in one interval, even on a loaded machine (fsyncs of 10-15 ms) */
    assert_true(ts_mono() - t0 < 2.5);
    wait_usage(&seen, 1, 15);
    /* coalesced: not before the interval, and only one for the whole burst */
    assert_true(ts_mono() - t0 >= 2.9);
    usleep(3500 * 1000);
    assert_int_equal(n_usage(&seen), 1);
    check_usage(&seen, 0, 19 * 1000 + 500, 20, 2);
    pthread_mutex_lock(&seen.lock);
    assert_true(seen.requests >= 21); /* the request meter is still there */
    pthread_mutex_unlock(&seen.lock);

    /* reads and metadata changes do not change usage: no notification */
    assert_int_equal(req("GET", base, "/c1/o1", NULL, 0), 200);
    assert_int_equal(req("HEAD", base, "", NULL, 0), 204);
    usleep(3500 * 1000);
    assert_int_equal(n_usage(&seen), 1);

    /* deletes: 5 objects and the empty container c2 */
    for (int i = 0; i < 5; i++) {
        char p[64];
        snprintf(p, sizeof(p), "/c1/o%d", i);
        assert_int_equal(req("DELETE", base, p, NULL, 0), 204);
    }
    assert_int_equal(req("DELETE", base, "/c2", NULL, 0), 204);
    assert_int_equal(req("DELETE", base, "/c1/o0", NULL, 0), 404); /* gone: changes nothing */
    wait_usage(&seen, 2, 15);
    check_usage(&seen, 1, 15 * 1000, 15, 1);

    /* a change just before stopping is not lost: stop emits what is pending */
    assert_int_equal(req("DELETE", base, "/c1/o5", NULL, 0), 204);
    ts_object_service.stop(svc);
    wait_usage(&seen, 3, 5);
    check_usage(&seen, 2, 14 * 1000, 14, 1);

    ts_bus_close(bus);
    ts_http_authn_free(authn);
    ts_http_server_stop(idsrv);
    ts_conf_free(conf);
    json_decref(seen.usage);
    pthread_mutex_destroy(&seen.lock);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_usage_notifications),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
