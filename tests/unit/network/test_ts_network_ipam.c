/* Unit tests for the network service's IPAM helpers: CIDR parse/contains/overlap (v4, v6),
 * pool validation, next free address, MAC generation and normalisation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "network/ts_network_ipam.h"

static void test_ip_parse_format(void **state)
{
    (void)state;
    int v;
    ts_network_u128 a;
    char out[46];
    assert_int_equal(ts_network_ip_parse("10.0.0.1", &v, &a), 0);
    assert_int_equal(v, 4);
    assert_true(a == 0x0a000001);
    ts_network_ip_format(4, a, out);
    assert_string_equal(out, "10.0.0.1");
    assert_int_equal(ts_network_ip_parse("2001:db8::1", &v, &a), 0);
    assert_int_equal(v, 6);
    ts_network_ip_format(6, a, out);
    assert_string_equal(out, "2001:db8::1");
    assert_int_equal(ts_network_ip_parse("10.0.0.256", &v, &a), -1);
    assert_int_equal(ts_network_ip_parse("10.0.1", &v, &a), -1);
    assert_int_equal(ts_network_ip_parse("", &v, &a), -1);
    assert_int_equal(ts_network_ip_parse("zz::1::2", &v, &a), -1);
    assert_int_equal(ts_network_ip_parse(NULL, &v, &a), -1);
}

static void test_cidr_parse(void **state)
{
    (void)state;
    struct ts_network_cidr c;
    char out[50];
    assert_int_equal(ts_network_cidr_parse("10.0.0.0/24", true, &c), 0);
    assert_int_equal(c.version, 4);
    assert_int_equal(c.prefix, 24);
    ts_network_cidr_format(&c, out);
    assert_string_equal(out, "10.0.0.0/24");
    assert_int_equal(ts_network_cidr_parse("10.0.0.1/24", true, &c), -1);
    assert_int_equal(ts_network_cidr_parse("10.0.0.1/24", false, &c), 0);
    ts_network_cidr_format(&c, out);
    assert_string_equal(out, "10.0.0.0/24");
    assert_int_equal(ts_network_cidr_parse("10.0.0.0/33", true, &c), -1);
    assert_int_equal(ts_network_cidr_parse("10.0.0.0/", true, &c), -1);
    assert_int_equal(ts_network_cidr_parse("10.0.0.0", true, &c), -1);
    assert_int_equal(ts_network_cidr_parse("10.0.0.0/2x", true, &c), -1);
    assert_int_equal(ts_network_cidr_parse("garbage/8", true, &c), -1);
    assert_int_equal(ts_network_cidr_parse("2001:db8::/64", true, &c), 0);
    assert_int_equal(c.version, 6);
    ts_network_cidr_format(&c, out);
    assert_string_equal(out, "2001:db8::/64");
    assert_int_equal(ts_network_cidr_parse("2001:db8::1/64", true, &c), -1);
    assert_int_equal(ts_network_cidr_parse("2001:db8::/129", true, &c), -1);
    assert_int_equal(ts_network_cidr_parse("0.0.0.0/0", true, &c), 0);
    assert_true(ts_network_cidr_last(&c) == 0xffffffffu);
    assert_int_equal(ts_network_cidr_parse("::/0", true, &c), 0);
    assert_true(ts_network_cidr_last(&c) == ~(ts_network_u128)0);
}

static void test_contains_overlap(void **state)
{
    (void)state;
    struct ts_network_cidr a, b, c, d, e;
    int v;
    ts_network_u128 ip;
    ts_network_cidr_parse("10.0.0.0/24", true, &a);
    ts_network_cidr_parse("10.0.0.128/25", true, &b);
    ts_network_cidr_parse("10.0.1.0/24", true, &c);
    ts_network_cidr_parse("2001:db8::/64", true, &d);
    ts_network_cidr_parse("2001:db8::/48", true, &e);
    ts_network_ip_parse("10.0.0.77", &v, &ip);
    assert_true(ts_network_cidr_contains(&a, v, ip));
    assert_false(ts_network_cidr_contains(&c, v, ip));
    assert_false(ts_network_cidr_contains(&d, v, ip));
    assert_true(ts_network_cidr_overlap(&a, &b));
    assert_true(ts_network_cidr_overlap(&b, &a));
    assert_false(ts_network_cidr_overlap(&a, &c));
    assert_false(ts_network_cidr_overlap(&a, &d));
    assert_true(ts_network_cidr_overlap(&d, &e));
    ts_network_ip_parse("2001:db8:0:1::5", &v, &ip);
    assert_false(ts_network_cidr_contains(&d, v, ip));
    assert_true(ts_network_cidr_contains(&e, v, ip));
}

static void test_default_pools(void **state)
{
    (void)state;
    struct ts_network_cidr c;
    struct ts_network_pool p[2];
    char s[46], e[46];
    int v;
    ts_network_u128 gw;
    ts_network_cidr_parse("10.0.0.0/24", true, &c);
    ts_network_ip_parse("10.0.0.1", &v, &gw);
    assert_int_equal(ts_network_default_pools(&c, gw, true, p), 1);
    ts_network_ip_format(4, p[0].start, s);
    ts_network_ip_format(4, p[0].end, e);
    assert_string_equal(s, "10.0.0.2");
    assert_string_equal(e, "10.0.0.254");
    ts_network_ip_parse("10.0.0.100", &v, &gw);
    assert_int_equal(ts_network_default_pools(&c, gw, true, p), 2);
    assert_true(p[0].end + 2 == p[1].start);
    assert_int_equal(ts_network_default_pools(&c, 0, false, p), 1);
    ts_network_ip_format(4, p[0].start, s);
    assert_string_equal(s, "10.0.0.1");
    ts_network_cidr_parse("2001:db8::/64", true, &c);
    ts_network_ip_parse("2001:db8::1", &v, &gw);
    assert_int_equal(ts_network_default_pools(&c, gw, true, p), 1);
    ts_network_ip_format(6, p[0].start, s);
    ts_network_ip_format(6, p[0].end, e);
    assert_string_equal(s, "2001:db8::2");
    assert_string_equal(e, "2001:db8::ffff:ffff:ffff:ffff");
}

static void pool(const char *a, const char *b, struct ts_network_pool *p)
{
    int v;
    ts_network_ip_parse(a, &v, &p->start);
    ts_network_ip_parse(b, &v, &p->end);
}

static void test_pools_validate(void **state)
{
    (void)state;
    struct ts_network_cidr c;
    struct ts_network_pool p[2];
    char msg[256];
    int v;
    ts_network_u128 gw;
    ts_network_cidr_parse("10.0.0.0/24", true, &c);
    ts_network_ip_parse("10.0.0.1", &v, &gw);
    pool("10.0.0.10", "10.0.0.20", &p[0]);
    pool("10.0.0.30", "10.0.0.40", &p[1]);
    assert_int_equal(ts_network_pools_validate(&c, p, 2, true, gw, msg, sizeof(msg)), 0);
    pool("10.0.0.15", "10.0.0.35", &p[1]);
    assert_int_equal(ts_network_pools_validate(&c, p, 2, true, gw, msg, sizeof(msg)), -1);
    assert_non_null(strstr(msg, "overlapping"));
    pool("10.0.0.1", "10.0.0.5", &p[0]);
    assert_int_equal(ts_network_pools_validate(&c, p, 1, true, gw, msg, sizeof(msg)), -1);
    assert_non_null(strstr(msg, "Gateway"));
    pool("10.0.0.20", "10.0.0.10", &p[0]);
    assert_int_equal(ts_network_pools_validate(&c, p, 1, false, 0, msg, sizeof(msg)), -1);
    pool("10.0.0.200", "10.0.1.5", &p[0]);
    assert_int_equal(ts_network_pools_validate(&c, p, 1, false, 0, msg, sizeof(msg)), -1);
    assert_non_null(strstr(msg, "beyond"));
    pool("10.0.0.0", "10.0.0.5", &p[0]);
    assert_int_equal(ts_network_pools_validate(&c, p, 1, false, 0, msg, sizeof(msg)), -1);
    pool("10.0.0.250", "10.0.0.255", &p[0]);
    assert_int_equal(ts_network_pools_validate(&c, p, 1, false, 0, msg, sizeof(msg)), -1);
}

static void test_next_free(void **state)
{
    (void)state;
    struct ts_network_pool p[2];
    pool("10.0.0.2", "10.0.0.4", &p[0]);
    pool("10.0.0.10", "10.0.0.11", &p[1]);
    ts_network_u128 used[8], out;
    size_t n = 0;
    assert_int_equal(ts_network_next_free(p, 2, used, n, &out), 0);
    assert_true(out == 0x0a000002);
    /* allocate everything, one at a time, keeping used sorted */
    int got = 0;
    while (ts_network_next_free(p, 2, used, n, &out) == 0) {
        used[n++] = out;
        qsort(used, n, sizeof(used[0]), ts_network_u128_cmp);
        got++;
        assert_true(got <= 5);
    }
    assert_int_equal(got, 5);
    assert_true(used[3] == 0x0a00000a);
    /* a hole in the middle is found first */
    used[1] = used[0];
    memmove(&used[1], &used[2], (n - 2) * sizeof(used[0]));
    n--;
    assert_int_equal(ts_network_next_free(p, 2, used, n, &out), 0);
    assert_true(out == 0x0a000003);
    /* used addresses outside the pools are ignored */
    ts_network_u128 outside[2] = {1, 0x0a0000ff};
    assert_int_equal(ts_network_next_free(p, 2, outside, 2, &out), 0);
    assert_true(out == 0x0a000002);
    assert_true(ts_network_in_pools(p, 2, 0x0a00000b));
    assert_false(ts_network_in_pools(p, 2, 0x0a000005));
}

static void test_mac(void **state)
{
    (void)state;
    char m[18], n[18];
    ts_network_mac_generate(m);
    assert_int_equal(strlen(m), 17);
    assert_memory_equal(m, "fa:16:3e:", 9);
    assert_int_equal(ts_network_mac_normalize(m, n), 0);
    assert_string_equal(m, n);
    assert_int_equal(ts_network_mac_normalize("FA:16:3E:0A:0B:0C", n), 0);
    assert_string_equal(n, "fa:16:3e:0a:0b:0c");
    assert_int_equal(ts_network_mac_normalize("01:00:5e:00:00:01", n), -1);
    assert_int_equal(ts_network_mac_normalize("00:00:00:00:00:00", n), -1);
    assert_int_equal(ts_network_mac_normalize("fa:16:3e:0a:0b", n), -1);
    assert_int_equal(ts_network_mac_normalize("fa:16:3e:0a:0b:zz", n), -1);
    assert_int_equal(ts_network_mac_normalize(NULL, n), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ip_parse_format), cmocka_unit_test(test_cidr_parse),
        cmocka_unit_test(test_contains_overlap), cmocka_unit_test(test_default_pools),
        cmocka_unit_test(test_pools_validate),  cmocka_unit_test(test_next_free),
        cmocka_unit_test(test_mac),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
