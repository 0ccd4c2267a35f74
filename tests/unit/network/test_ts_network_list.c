/* Unit tests for the list renderer that copies stored JSON text member by member
 * (ts_network_render_text): internal and admin-only keys, fields, an extra member, nested and
 * escaped values, and malformed text left untouched. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "network/ts_network_int.h"

/* renders and checks the result parses to the JSON `want` */
static void check(const char *text, bool admin, const char *const *fields, int nf, const char *xk, const char *x,
                  const char *want)
{
    struct ts_buf b;
    ts_buf_init(&b, 0);
    ts_buf_appends(&b, "pre");
    assert_int_equal(ts_network_render_text(&b, text, admin, fields, nf, xk, x, x ? strlen(x) : 0), 0);
    assert_memory_equal(b.data, "pre", 3);
    json_t *got = json_loads(b.data + 3, 0, NULL), *exp = json_loads(want, 0, NULL);
    assert_non_null(got);
    assert_non_null(exp);
    if (!json_equal(got, exp)) fail_msg("got %s want %s", b.data + 3, want);
    json_decref(got);
    json_decref(exp);
    ts_buf_free(&b);
}

static const char *port =
    "{\"id\":\"p1\",\"name\":\"a \\\"q\\\" }{,\",\"_int\":{\"x\":[1,{\"y\":\"]\"}]},\"binding:host_id\":\"h\","
    "\"binding:vnic_type\":\"normal\",\"provider:segmentation_id\":7,\"fixed_ips\":[{\"ip_address\":\"10.0.0.3\"}],"
    "\"admin_state_up\":true,\"device_id\":null,\"mtu\":-1450,\"f\":1.5e3}";

static void test_render_admin_and_user(void **state)
{
    (void)state;
    check(port, true, NULL, 0, NULL, NULL,
          "{\"id\":\"p1\",\"name\":\"a \\\"q\\\" }{,\",\"binding:host_id\":\"h\",\"binding:vnic_type\":\"normal\","
          "\"provider:segmentation_id\":7,\"fixed_ips\":[{\"ip_address\":\"10.0.0.3\"}],\"admin_state_up\":true,"
          "\"device_id\":null,\"mtu\":-1450,\"f\":1.5e3}");
    check(port, false, NULL, 0, NULL, NULL,
          "{\"id\":\"p1\",\"name\":\"a \\\"q\\\" }{,\",\"binding:vnic_type\":\"normal\","
          "\"fixed_ips\":[{\"ip_address\":\"10.0.0.3\"}],\"admin_state_up\":true,\"device_id\":null,\"mtu\":-1450,"
          "\"f\":1.5e3}");
}

static void test_render_fields(void **state)
{
    (void)state;
    const char *f[] = {"fixed_ips", "id", "missing", "binding:host_id", "_int"};
    check(port, false, f, 5, NULL, NULL, "{\"id\":\"p1\",\"fixed_ips\":[{\"ip_address\":\"10.0.0.3\"}]}");
    check(port, true, f, 5, NULL, NULL,
          "{\"id\":\"p1\",\"binding:host_id\":\"h\",\"fixed_ips\":[{\"ip_address\":\"10.0.0.3\"}]}");
    const char *none[] = {"nothing"};
    check(port, true, none, 1, NULL, NULL, "{}");
}

static void test_render_extra(void **state)
{
    (void)state;
    const char *sg = "{\"id\":\"s\",\"security_group_rules\":[\"stale\"],\"name\":\"n\"}";
    check(sg, false, NULL, 0, "security_group_rules", "[{\"id\":\"r\"}]",
          "{\"id\":\"s\",\"name\":\"n\",\"security_group_rules\":[{\"id\":\"r\"}]}");
    const char *f[] = {"name"};
    check(sg, false, f, 1, "security_group_rules", "[]", "{\"name\":\"n\"}");
    const char *f2[] = {"security_group_rules"};
    check(sg, false, f2, 1, "security_group_rules", "[]", "{\"security_group_rules\":[]}");
    check("{}", false, NULL, 0, "security_group_rules", "[]", "{\"security_group_rules\":[]}");
    check(" { } ", false, NULL, 0, NULL, NULL, "{}");
}

static void test_render_malformed(void **state)
{
    (void)state;
    static const char *const bad[] = {"", "[]", "{", "{\"a\"", "{\"a\":", "{\"a\":1", "{\"a\":1,", "{\"a\":\"x",
                                      "{\"a\":[1,2}", "{\"a\":{\"b\":1}", "{a:1}", "{\"a\" 1}", "{\"a\":1 \"b\":2}",
                                      "null", "{\"a\":\"\\\"}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct ts_buf b;
        ts_buf_init(&b, 0);
        ts_buf_appends(&b, "keep");
        if (ts_network_render_text(&b, bad[i], true, NULL, 0, NULL, NULL, 0) != -1) fail_msg("accepted %s", bad[i]);
        assert_int_equal(b.len, 4);
        assert_string_equal(b.data, "keep");
        ts_buf_free(&b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render_admin_and_user),
        cmocka_unit_test(test_render_fields),
        cmocka_unit_test(test_render_extra),
        cmocka_unit_test(test_render_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
