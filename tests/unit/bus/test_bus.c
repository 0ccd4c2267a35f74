/*
 * test_bus.c: the message bus contract, run against the in-process backend and, when
 * TS_TEST_AMQP_URL is set (e.g. amqp://guest:guest@127.0.0.1:16672/), against RabbitMQ:
 * casts, calls (reply, timeout, handler errors), round-robin between servers, fanout,
 * notifications, teardown with queued messages, and many concurrent calls.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "bus/ts_bus.h"

static const char *g_url;      /* NULL = inproc */
static char g_prefix[24];      /* unique topic prefix per run (queues outlive AMQP tests) */

static void topic_name(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s%s", g_prefix, name);
}

static struct ts_bus *open_bus(void)
{
    struct ts_bus *bus = NULL;
    struct ts_err e;
    ts_err_clear(&e);
    int rc = ts_bus_open(g_url, &bus, &e);
    if (rc != 0) fprintf(stderr, "open: %s\n", e.msg);
    assert_int_equal(rc, 0);
    assert_non_null(bus);
    return bus;
}

/* waits until *v >= want, up to ms */
static bool wait_for(atomic_int *v, int want, int ms)
{
    for (int i = 0; i < ms / 5; i++) {
        if (atomic_load(v) >= want) return true;
        usleep(5000);
    }
    return atomic_load(v) >= want;
}

struct counter {
    atomic_int n;
    atomic_int sum;
    atomic_int bad;
};

static int count_handler(void *ctx, const char *method, json_t *args, json_t **reply, struct ts_err *err)
{
    (void)reply;
    (void)err;
    struct counter *c = ctx;
    if (!ts_streq(method, "ping") || !json_is_object(args)) atomic_fetch_add(&c->bad, 1);
    atomic_fetch_add(&c->sum, (int)json_integer_value(json_object_get(args, "n")));
    atomic_fetch_add(&c->n, 1);
    return 0;
}

static int rpc_handler(void *ctx, const char *method, json_t *args, json_t **reply, struct ts_err *err)
{
    (void)ctx;
    if (ts_streq(method, "echo")) {
        json_int_t x = json_integer_value(json_object_get(args, "x"));
        /* mutate args: the sender must not see it */
        json_object_set_new(args, "x", json_integer(-1));
        *reply = json_pack("{s:I, s:s}", "x", x + 1, "who", "server");
        return 0;
    }
    if (ts_streq(method, "sleep")) {
        usleep((useconds_t)json_integer_value(json_object_get(args, "ms")) * 1000);
        *reply = json_object();
        return 0;
    }
    if (ts_streq(method, "fail")) return ts_err_set(err, TS_ENOTFOUND, "thing %s not found", "t1");
    if (ts_streq(method, "noreply")) return 0;
    return ts_err_set(err, TS_ENOTIMPL, "unknown method %s", method);
}

static void test_cast_delivered(void **state)
{
    (void)state;
    struct ts_bus *bus = open_bus();
    char t[64];
    topic_name(t, sizeof(t), "cast");
    struct counter c = {0};
    assert_int_equal(ts_bus_serve(bus, t, count_handler, &c, 1, NULL), 0);
    json_t *args = json_pack("{s:i}", "n", 7);
    json_t *keep = json_incref(args); /* the bus must copy, not share */
    assert_int_equal(ts_bus_cast(bus, t, "ping", args, NULL), 0);
    json_object_set_new(keep, "n", json_integer(1000));
    json_decref(keep);
    assert_true(wait_for(&c.n, 1, 10000));
    assert_int_equal(atomic_load(&c.sum), 7);
    assert_int_equal(atomic_load(&c.bad), 0);
    ts_bus_close(bus);
}

static void test_cast_bad_input(void **state)
{
    (void)state;
    struct ts_bus *bus = open_bus();
    struct ts_err e;
    assert_int_equal(ts_bus_cast(bus, "", "ping", json_object(), &e), -TS_EINVAL);
    assert_int_equal(ts_bus_cast(bus, "a b", "ping", NULL, &e), -TS_EINVAL);
    assert_int_equal(ts_bus_cast(bus, "x", NULL, NULL, &e), -TS_EINVAL);
    assert_int_equal(ts_bus_cast(bus, "x", "m", json_array(), &e), -TS_EINVAL);
    json_t *r = NULL;
    assert_int_equal(ts_bus_call(bus, "x", "m", NULL, 100, NULL, &e), -TS_EINVAL);
    assert_int_equal(ts_bus_call(NULL, "x", "m", NULL, 100, &r, &e), -TS_EINVAL);
    assert_int_equal(ts_bus_serve(bus, "x", NULL, NULL, 1, &e), -TS_EINVAL);
    ts_bus_notify(bus, "p", NULL, "info", json_object()); /* logged, no crash */
    ts_bus_notify(NULL, "p", "e", "info", NULL);
    if (!g_url) {
        char t[64];
        topic_name(t, sizeof(t), "nobody");
        assert_int_equal(ts_bus_cast(bus, t, "ping", NULL, &e), -TS_EUNAVAIL);
        assert_int_equal(ts_bus_call(bus, t, "ping", NULL, 100, &r, &e), -TS_EUNAVAIL);
        assert_null(r);
    }
    ts_bus_close(bus);
    ts_bus_close(NULL);
    struct ts_bus *b2 = NULL;
    assert_int_equal(ts_bus_open("zmq://x", &b2, &e), -TS_EINVAL);
    assert_null(b2);
}

static void test_call_round_trip(void **state)
{
    (void)state;
    struct ts_bus *bus = open_bus();
    char t[64];
    topic_name(t, sizeof(t), "rpc");
    assert_int_equal(ts_bus_serve(bus, t, rpc_handler, NULL, 2, NULL), 0);
    json_t *args = json_pack("{s:i}", "x", 41);
    json_t *keep = json_incref(args);
    json_t *reply = NULL;
    struct ts_err e;
    ts_err_clear(&e);
    int rc = ts_bus_call(bus, t, "echo", args, 10000, &reply, &e);
    if (rc) fprintf(stderr, "call: %s\n", e.msg);
    assert_int_equal(rc, 0);
    assert_int_equal(json_integer_value(json_object_get(reply, "x")), 42);
    assert_string_equal(json_string_value(json_object_get(reply, "who")), "server");
    assert_int_equal(json_integer_value(json_object_get(keep, "x")), 41); /* handler's edit not visible */
    json_decref(keep);
    json_decref(reply);
    reply = NULL;
    assert_int_equal(ts_bus_call(bus, t, "noreply", NULL, 10000, &reply, &e), 0);
    assert_non_null(reply);
    assert_true(json_is_null(reply));
    json_decref(reply);
    ts_bus_unserve(bus, t);
    if (!g_url) assert_int_equal(ts_bus_call(bus, t, "echo", NULL, 1000, &reply, &e), -TS_EUNAVAIL);
    ts_bus_close(bus);
}

static void test_call_timeout(void **state)
{
    (void)state;
    struct ts_bus *bus = open_bus();
    char t[64];
    topic_name(t, sizeof(t), "slow");
    assert_int_equal(ts_bus_serve(bus, t, rpc_handler, NULL, 1, NULL), 0);
    json_t *reply = NULL;
    struct ts_err e;
    ts_err_clear(&e);
    assert_int_equal(ts_bus_call(bus, t, "sleep", json_pack("{s:i}", "ms", 800), 200, &reply, &e), -TS_ETIMEDOUT);
    assert_null(reply);
    assert_int_equal(e.code, TS_ETIMEDOUT);
    /* the late reply arrives and is dropped; the next call still works */
    assert_int_equal(ts_bus_call(bus, t, "sleep", json_pack("{s:i}", "ms", 1), 10000, &reply, &e), 0);
    json_decref(reply);
    ts_bus_close(bus);
}

static void test_handler_error(void **state)
{
    (void)state;
    struct ts_bus *bus = open_bus();
    char t[64];
    topic_name(t, sizeof(t), "err");
    assert_int_equal(ts_bus_serve(bus, t, rpc_handler, NULL, 1, NULL), 0);
    json_t *reply = NULL;
    struct ts_err e;
    ts_err_clear(&e);
    assert_int_equal(ts_bus_call(bus, t, "fail", NULL, 10000, &reply, &e), -TS_ENOTFOUND);
    assert_null(reply);
    assert_int_equal(e.code, TS_ENOTFOUND);
    assert_string_equal(e.msg, "thing t1 not found");
    ts_err_clear(&e);
    assert_int_equal(ts_bus_call(bus, t, "bogus", NULL, 10000, &reply, &e), -TS_ENOTIMPL);
    assert_non_null(strstr(e.msg, "bogus"));
    ts_bus_close(bus);
}

static void test_two_servers_share(void **state)
{
    (void)state;
    struct ts_bus *bus = open_bus();
    char t[64];
    topic_name(t, sizeof(t), "shared");
    struct counter a = {0}, b = {0};
    assert_int_equal(ts_bus_serve(bus, t, count_handler, &a, 1, NULL), 0);
    assert_int_equal(ts_bus_serve(bus, t, count_handler, &b, 1, NULL), 0);
    for (int i = 0; i < 100; i++) assert_int_equal(ts_bus_cast(bus, t, "ping", json_pack("{s:i}", "n", 1), NULL), 0);
    for (int i = 0; i < 2000 && atomic_load(&a.n) + atomic_load(&b.n) < 100; i++) usleep(5000);
    assert_int_equal(atomic_load(&a.n) + atomic_load(&b.n), 100);
    assert_true(atomic_load(&a.n) > 0);
    assert_true(atomic_load(&b.n) > 0);
    ts_bus_close(bus);
}

static void test_fanout(void **state)
{
    (void)state;
    struct ts_bus *bus = open_bus();
    char t[64];
    topic_name(t, sizeof(t), "fan");
    struct counter c[3] = {{0}, {0}, {0}};
    for (int i = 0; i < 3; i++) assert_int_equal(ts_bus_subscribe(bus, t, count_handler, &c[i], NULL), 0);
    assert_int_equal(ts_bus_fanout(bus, t, "ping", json_pack("{s:i}", "n", 5), NULL), 0);
    for (int i = 0; i < 3; i++) {
        assert_true(wait_for(&c[i].n, 1, 10000));
        assert_int_equal(atomic_load(&c[i].sum), 5);
    }
    usleep(50000);
    for (int i = 0; i < 3; i++) assert_int_equal(atomic_load(&c[i].n), 1);
    ts_bus_close(bus);
}

struct listener {
    pthread_mutex_t mu;
    atomic_int n;
    json_t *last;
    char method[128];
};

static int note_handler(void *ctx, const char *method, json_t *args, json_t **reply, struct ts_err *err)
{
    (void)reply;
    (void)err;
    struct listener *l = ctx;
    pthread_mutex_lock(&l->mu);
    json_decref(l->last);
    l->last = json_incref(args);
    snprintf(l->method, sizeof(l->method), "%s", method);
    pthread_mutex_unlock(&l->mu);
    atomic_fetch_add(&l->n, 1);
    return 0;
}

static void test_notifications(void **state)
{
    (void)state;
    struct ts_bus *bus = open_bus();
    struct listener l[2];
    memset(l, 0, sizeof(l));
    for (int i = 0; i < 2; i++) {
        pthread_mutex_init(&l[i].mu, NULL);
        assert_int_equal(ts_bus_listen_notifications(bus, note_handler, &l[i], NULL), 0);
    }
    char et[64];
    topic_name(et, sizeof(et), "compute.instance.create.end");
    ts_bus_notify(bus, "compute.host1", et, "INFO", json_pack("{s:s}", "instance_id", "abc"));
    for (int i = 0; i < 2; i++) {
        assert_true(wait_for(&l[i].n, 1, 10000));
        pthread_mutex_lock(&l[i].mu);
        json_t *n = l[i].last;
        assert_string_equal(l[i].method, et);
        assert_string_equal(json_string_value(json_object_get(n, "event_type")), et);
        assert_string_equal(json_string_value(json_object_get(n, "publisher_id")), "compute.host1");
        assert_string_equal(json_string_value(json_object_get(n, "priority")), "INFO");
        assert_string_equal(json_string_value(json_object_get(json_object_get(n, "payload"), "instance_id")), "abc");
        const char *ts = json_string_value(json_object_get(n, "timestamp"));
        assert_non_null(ts);
        assert_true(strlen(ts) >= 19);
        assert_non_null(json_string_value(json_object_get(n, "message_id")));
        pthread_mutex_unlock(&l[i].mu);
    }
    ts_bus_close(bus);
    for (int i = 0; i < 2; i++) {
        json_decref(l[i].last);
        pthread_mutex_destroy(&l[i].mu);
    }
}

static void test_close_with_pending(void **state)
{
    (void)state;
    struct ts_bus *bus = open_bus();
    char t[64], f[64];
    topic_name(t, sizeof(t), "pending");
    topic_name(f, sizeof(f), "pendingfan");
    assert_int_equal(ts_bus_serve(bus, t, rpc_handler, NULL, 1, NULL), 0);
    struct counter c = {0};
    assert_int_equal(ts_bus_subscribe(bus, f, count_handler, &c, NULL), 0);
    for (int i = 0; i < 50; i++) {
        assert_int_equal(ts_bus_cast(bus, t, "sleep", json_pack("{s:i, s:s}", "ms", 20, "pad", "xxxxxxxx"), NULL), 0);
        assert_int_equal(ts_bus_fanout(bus, f, "ping", json_pack("{s:i}", "n", 1), NULL), 0);
    }
    ts_bus_notify(bus, "p", "e", "info", json_object());
    ts_bus_close(bus); /* ASan: nothing queued may leak */
}

static int slow_count_handler(void *ctx, const char *method, json_t *args, json_t **reply, struct ts_err *err)
{
    usleep(20000);
    return count_handler(ctx, method, args, reply, err);
}

static void test_unserve_requeues(void **state)
{
    (void)state;
    struct ts_bus *bus = open_bus();
    char t[64];
    topic_name(t, sizeof(t), "unserve");
    struct counter a = {0}, b = {0};
    assert_int_equal(ts_bus_serve(bus, t, slow_count_handler, &a, 1, NULL), 0);
    for (int i = 0; i < 30; i++) assert_int_equal(ts_bus_cast(bus, t, "ping", json_pack("{s:i}", "n", 1), NULL), 0);
    usleep(60000);
    ts_bus_unserve(bus, t);
    int handled = atomic_load(&a.n);
    assert_true(handled < 30);
    assert_int_equal(ts_bus_serve(bus, t, count_handler, &b, 2, NULL), 0);
    if (g_url) {
        /* the broker kept (or got back) what the first server had not handled */
        assert_true(wait_for(&b.n, 30 - handled, 10000));
    } else {
        struct ts_err e;
        assert_int_equal(ts_bus_cast(bus, t, "ping", NULL, &e), 0);
        assert_true(wait_for(&b.n, 1, 10000));
    }
    ts_bus_unserve(bus, t);
    ts_bus_unserve(bus, t); /* twice is harmless */
    ts_bus_close(bus);
}

struct caller {
    struct ts_bus *bus;
    const char *topic;
    int ok;
    int base;
};

static void *caller_main(void *arg)
{
    struct caller *c = arg;
    for (int i = 0; i < 500; i++) {
        json_t *reply = NULL;
        struct ts_err e;
        int x = c->base + i;
        if (ts_bus_call(c->bus, c->topic, "echo", json_pack("{s:i}", "x", x), 30000, &reply, &e) == 0 &&
            json_integer_value(json_object_get(reply, "x")) == x + 1)
            c->ok++;
        else
            fprintf(stderr, "call %d failed: %s\n", x, e.msg);
        json_decref(reply);
    }
    return NULL;
}

static void test_concurrent_calls(void **state)
{
    (void)state;
    struct ts_bus *bus = open_bus();
    char t[64];
    topic_name(t, sizeof(t), "many");
    assert_int_equal(ts_bus_serve(bus, t, rpc_handler, NULL, 4, NULL), 0);
    pthread_t th[8];
    struct caller c[8];
    for (int i = 0; i < 8; i++) {
        c[i] = (struct caller){.bus = bus, .topic = t, .ok = 0, .base = i * 1000};
        assert_int_equal(pthread_create(&th[i], NULL, caller_main, &c[i]), 0);
    }
    int ok = 0;
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        ok += c[i].ok;
    }
    assert_int_equal(ok, 8 * 500);
    ts_bus_close(bus);
}

static int group_setup_amqp(void **state)
{
    (void)state;
    g_url = getenv("TS_TEST_AMQP_URL");
    return 0;
}

static int group_setup_inproc(void **state)
{
    (void)state;
    g_url = NULL;
    return 0;
}

int main(void)
{
    char hex[33];
    ts_uuid_hex(hex);
    snprintf(g_prefix, sizeof(g_prefix), "t%.8s.", hex);
    ts_log_set_level(getenv("TS_TEST_VERBOSE") ? TS_LOG_DEBUG : TS_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cast_delivered),     cmocka_unit_test(test_cast_bad_input),
        cmocka_unit_test(test_call_round_trip),    cmocka_unit_test(test_call_timeout),
        cmocka_unit_test(test_handler_error),      cmocka_unit_test(test_two_servers_share),
        cmocka_unit_test(test_fanout),             cmocka_unit_test(test_notifications),
        cmocka_unit_test(test_close_with_pending), cmocka_unit_test(test_concurrent_calls),
        cmocka_unit_test(test_unserve_requeues),
    };
    int failed = cmocka_run_group_tests_name("bus_inproc", tests, group_setup_inproc, NULL);
    const char *url = getenv("TS_TEST_AMQP_URL");
    if (url && *url)
        failed += cmocka_run_group_tests_name("bus_amqp", tests, group_setup_amqp, NULL);
    else
        fprintf(stderr, "bus_amqp: skipped (set TS_TEST_AMQP_URL=amqp://guest:guest@127.0.0.1:16672/)\n");
    return failed;
}
