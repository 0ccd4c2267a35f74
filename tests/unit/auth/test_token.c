/*
 * test_token.c: Keystone token payloads: byte-exact msgpack against what Keystone's
 * token_formatters (msgpack-python) produce, tokens minted by Python's cryptography
 * Fernet with Keystone's layout, round trips for every scope, expiry, wrong keys,
 * tampering and garbage payloads.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "auth/ts_auth_internal.h"

#define KEY "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4="
#define UID "0123456789abcdef0123456789abcdef"
#define PID "fedcba9876543210fedcba9876543210"
#define AUDIT1 "AAECAwQFBgcICQoLDA0ODw"
#define AUDIT2 "_-_-_-_-_-_-_-_-_-_-_w"
#define EXP_2100 4102444800.0

/* Generated with msgpack-python 1.0 packb() on the tuples Keystone's payload classes
 * assemble (see the file comment of src/auth/ts_auth_token.c). */
#define HEX_PROJECT "960292c3c4100123456789abcdef0123456789abcdef0292c3c410fedcba9876543210fedcba9876543210cb41ee90cae000000091c410000102030405060708090a0b0c0d0e0f"
#define HEX_DOMAIN "960192c2aa61646d696e2d7573657206a764656661756c74cb41ee90cae000000092c410000102030405060708090a0b0c0d0e0fc410ffeffeffeffeffeffeffeffeffeffeff"
#define HEX_SYSTEM "960892c3c4100123456789abcdef0123456789abcdef02a3616c6ccb41d954fc4020000091c410000102030405060708090a0b0c0d0e0f"
#define HEX_APPCRED "970992c3c4100123456789abcdef0123456789abcdef2092c3c410fedcba9876543210fedcba9876543210cb41ee90cae000000091c410000102030405060708090a0b0c0d0e0f92c2ab6d792d6170702d63726564"
#define HEX_UNSCOPED "950092c3c4100123456789abcdef0123456789abcdef02cb41ee90cae000000091c410000102030405060708090a0b0c0d0e0f"

/* Made by Python's cryptography.fernet with KEY, payload HEX_PROJECT / HEX_DOMAIN, '=' stripped. */
#define PY_PROJECT_TOKEN "gAAAAABrBzRYQBohtwRazlSZW-14_8TvYekGVOjr2g30rEEfzC3mGGiBIAjymI9MJ03fO14m1UX0Zd-BTAttCd9KpdUu0JiWfBdviT11GxbZYyOWoizxxllGAM5ftvKpq0hCwsAUkrN88q0r1OQR16uypc176c2N3_0CHb-Cc_YoQCwwRAg3zBU"
#define PY_DOMAIN_TOKEN "gAAAAABrBzRYYQv8hyMJfTH3cSZdju-ciURfzKR6MTYQUdg4qSmWgseeyk1C4t4AlHDNKWcwbbC_yqFWVEudKaiaBLr53-HFFqKyG_-_fMCWNMYzph1fFxAmPl3TeN8AvzFlgOzwNf9JVXGFJvR_IDWoPdRrB48aZ7pnXDdL988r2GL3mZBvKvs"

static const char unauth[] = "The request you have made requires authentication.";

static struct ts_fernet_keys *keys(const char *key)
{
    const char *ks[] = {key};
    struct ts_fernet_keys *k = NULL;
    assert_int_equal(ts_fernet_keys_from_strings(ks, 1, &k), 0);
    return k;
}

static size_t unhex(const char *hex, unsigned char *out)
{
    size_t n = strlen(hex) / 2;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        sscanf(hex + 2 * i, "%2x", &v);
        out[i] = (unsigned char)v;
    }
    return n;
}

static void check_encoding(const struct ts_token_payload *p, const char *hex)
{
    unsigned char want[512], got[TS_TOKEN_PAYLOAD_MAX];
    size_t want_len = unhex(hex, want);
    int n = ts_token_payload_encode(p, got, sizeof got);
    assert_int_equal(n, (int)want_len);
    assert_memory_equal(got, want, want_len);

    struct ts_token_payload back;
    assert_int_equal(ts_token_payload_decode(want, want_len, &back), 0);
    assert_string_equal(back.user_id, p->user_id);
    assert_int_equal(back.methods, p->methods);
    assert_int_equal(back.scope, p->scope);
    assert_string_equal(back.scope_id, p->scope_id);
    assert_true(back.expires_at == p->expires_at);
    assert_string_equal(back.audit_ids[0], p->audit_ids[0]);
    assert_string_equal(back.audit_ids[1], p->audit_ids[1]);
    assert_string_equal(back.app_cred_id, p->app_cred_id);

    /* Every strict prefix must be refused. */
    for (size_t i = 0; i < want_len; i++) assert_int_equal(ts_token_payload_decode(want, i, &back), -TS_EINVAL);
}

static struct ts_token_payload base_payload(void)
{
    struct ts_token_payload p;
    memset(&p, 0, sizeof p);
    strcpy(p.user_id, UID);
    p.methods = TS_METHOD_PASSWORD;
    p.expires_at = EXP_2100;
    strcpy(p.audit_ids[0], AUDIT1);
    return p;
}

static void test_keystone_bytes(void **state)
{
    (void)state;
    struct ts_token_payload p = base_payload();
    p.scope = TS_SCOPE_PROJECT;
    strcpy(p.scope_id, PID);
    check_encoding(&p, HEX_PROJECT);

    p = base_payload();
    check_encoding(&p, HEX_UNSCOPED);

    p = base_payload();
    strcpy(p.user_id, "admin-user");
    p.methods = TS_METHOD_PASSWORD | TS_METHOD_TOKEN;
    p.scope = TS_SCOPE_DOMAIN;
    strcpy(p.scope_id, "default");
    strcpy(p.audit_ids[1], AUDIT2);
    check_encoding(&p, HEX_DOMAIN);

    p = base_payload();
    p.scope = TS_SCOPE_SYSTEM;
    strcpy(p.scope_id, "all");
    p.expires_at = 1700000000.5;
    check_encoding(&p, HEX_SYSTEM);

    p = base_payload();
    p.scope = TS_SCOPE_PROJECT;
    strcpy(p.scope_id, PID);
    p.methods = TS_METHOD_APPCRED;
    strcpy(p.app_cred_id, "my-app-cred");
    check_encoding(&p, HEX_APPCRED);
}

static void test_python_tokens(void **state)
{
    (void)state;
    struct ts_fernet_keys *k = keys(KEY);
    struct ts_token_payload p;
    struct ts_err err = {0};
    assert_int_equal(ts_token_parse(k, PY_PROJECT_TOKEN, &p, &err), 0);
    assert_string_equal(p.user_id, UID);
    assert_int_equal(p.scope, TS_SCOPE_PROJECT);
    assert_string_equal(p.scope_id, PID);
    assert_int_equal(p.methods, TS_METHOD_PASSWORD);
    assert_true(p.expires_at == EXP_2100);
    assert_string_equal(p.audit_ids[0], AUDIT1);
    assert_string_equal(p.audit_ids[1], "");

    assert_int_equal(ts_token_parse(k, PY_DOMAIN_TOKEN, &p, NULL), 0);
    assert_string_equal(p.user_id, "admin-user");
    assert_int_equal(p.scope, TS_SCOPE_DOMAIN);
    assert_string_equal(p.scope_id, "default");
    assert_int_equal(p.methods, TS_METHOD_PASSWORD | TS_METHOD_TOKEN);
    assert_string_equal(p.audit_ids[1], AUDIT2);
    ts_fernet_keys_free(k);
}

static void round_trip(struct ts_fernet_keys *k, const struct ts_token_payload *p)
{
    char *tok = ts_token_issue(k, p);
    assert_non_null(tok);
    assert_null(strchr(tok, '='));
    struct ts_token_payload back;
    assert_int_equal(ts_token_parse(k, tok, &back, NULL), 0);
    assert_string_equal(back.user_id, p->user_id);
    assert_int_equal(back.methods, p->methods);
    assert_int_equal(back.scope, p->scope);
    assert_string_equal(back.scope_id, p->scope == TS_SCOPE_UNSCOPED ? "" : p->scope_id);
    assert_true(back.expires_at == p->expires_at);
    assert_string_equal(back.audit_ids[0], p->audit_ids[0]);
    assert_string_equal(back.audit_ids[1], p->audit_ids[1]);
    assert_string_equal(back.app_cred_id, p->app_cred_id);
    free(tok);
}

static void test_round_trips(void **state)
{
    (void)state;
    struct ts_fernet_keys *k = keys(KEY);
    double exp = ts_now() + 3600.25;
    char audit[32], parent[32];
    ts_token_audit_id(audit);
    ts_token_audit_id(parent);
    assert_int_equal(strlen(audit), 22);
    assert_string_not_equal(audit, parent);

    struct ts_token_payload p;
    memset(&p, 0, sizeof p);
    ts_uuid_hex(p.user_id);
    p.methods = TS_METHOD_PASSWORD | TS_METHOD_TOTP;
    p.expires_at = exp;
    strcpy(p.audit_ids[0], audit);
    round_trip(k, &p);

    strcpy(p.audit_ids[1], parent);
    p.scope = TS_SCOPE_PROJECT;
    ts_uuid_hex(p.scope_id);
    round_trip(k, &p);

    /* Ids that are not hex UUIDs travel as strings. */
    strcpy(p.user_id, "Some-LDAP-User@EXAMPLE.org");
    strcpy(p.scope_id, "0123456789ABCDEF0123456789ABCDEF");
    round_trip(k, &p);
    memset(p.user_id, 'u', 64);
    p.user_id[64] = '\0';
    round_trip(k, &p);

    p.scope = TS_SCOPE_DOMAIN;
    strcpy(p.scope_id, "default");
    round_trip(k, &p);
    ts_uuid_hex(p.scope_id);
    round_trip(k, &p);

    p.scope = TS_SCOPE_SYSTEM;
    strcpy(p.scope_id, "all");
    p.methods = TS_METHOD_TOKEN;
    round_trip(k, &p);

    p.scope = TS_SCOPE_PROJECT;
    ts_uuid_hex(p.scope_id);
    ts_uuid_hex(p.app_cred_id);
    p.methods = TS_METHOD_APPCRED;
    round_trip(k, &p);

    /* Payloads Keystone could not carry are refused. */
    p.scope = TS_SCOPE_DOMAIN;
    assert_null(ts_token_issue(k, &p));           /* app cred outside a project */
    p.app_cred_id[0] = '\0';
    p.scope_id[0] = '\0';
    assert_null(ts_token_issue(k, &p));           /* domain scope without domain */
    strcpy(p.scope_id, "default");
    p.audit_ids[0][0] = '\0';
    p.audit_ids[1][0] = '\0';
    assert_null(ts_token_issue(k, &p));           /* no audit id */
    strcpy(p.audit_ids[0], "not base64!");
    assert_null(ts_token_issue(k, &p));
    assert_null(ts_token_issue(k, NULL));
    ts_fernet_keys_free(k);
}

static void test_expired_and_wrong_key(void **state)
{
    (void)state;
    struct ts_fernet_keys *k = keys(KEY);
    struct ts_fernet_keys *other = keys("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
    struct ts_token_payload p = base_payload();
    p.expires_at = ts_now() - 1;
    char *tok = ts_token_issue(k, &p);
    assert_non_null(tok);
    struct ts_token_payload back;
    struct ts_err err = {0};
    assert_int_equal(ts_token_parse(k, tok, &back, &err), -TS_EUNAUTH);
    assert_int_equal(err.code, TS_EUNAUTH);
    assert_string_equal(err.msg, unauth);
    assert_string_equal(back.user_id, "");
    /* allow_expired (Keystone's ?allow_expired) still decodes it, and gives the issue time */
    uint64_t issued = 0;
    assert_int_equal(ts_token_decode(k, tok, &back, &issued, false, NULL), -TS_EUNAUTH);
    assert_int_equal(ts_token_decode(k, tok, &back, &issued, true, NULL), 0);
    assert_string_equal(back.user_id, p.user_id);
    assert_true(issued > 0 && (double)issued <= ts_now() + 1);
    assert_int_equal(ts_token_decode(other, tok, &back, &issued, true, NULL), -TS_EUNAUTH);
    free(tok);

    p.expires_at = ts_now() + 60;
    tok = ts_token_issue(k, &p);
    assert_int_equal(ts_token_parse(k, tok, &back, NULL), 0);
    memset(&err, 0, sizeof err);
    assert_int_equal(ts_token_parse(other, tok, &back, &err), -TS_EUNAUTH);
    assert_string_equal(err.msg, unauth);

    /* flip one character of the token */
    size_t n = strlen(tok);
    for (size_t i = 0; i < n; i++) {
        char saved = tok[i];
        tok[i] = saved == 'A' ? 'B' : 'A';
        assert_int_equal(ts_token_parse(k, tok, &back, NULL), -TS_EUNAUTH);
        tok[i] = saved;
    }
    assert_int_equal(ts_token_parse(k, tok, NULL, NULL), 0);
    free(tok);
    ts_fernet_keys_free(other);
    ts_fernet_keys_free(k);
}

static void test_garbage_payloads(void **state)
{
    (void)state;
    struct ts_fernet_keys *k = keys(KEY);
    struct ts_token_payload back;
    /* Authentic Fernet tokens around payloads that are not Keystone payloads. */
    const char *hex[] = {
        "", "c0", "90", "9100", "950a92c3c4100123456789abcdef0123456789abcdef02cb41ee90cae000000091c410000102030405060708090a0b0c0d0e0f",
        "950092c3c40f0123456789abcdef0123456789abcdef02cb41ee90cae000000091c410000102030405060708090a0b0c0d0e0f",
        "950092c3c4100123456789abcdef0123456789abcdef02cb41ee90cae000000090",
        "950092c3c4100123456789abcdef0123456789abcdef02cb7ff000000000000091c410000102030405060708090a0b0c0d0e0f",
        "950092c2a0" "02cb41ee90cae000000091c410000102030405060708090a0b0c0d0e0f",
        "950092c2a3610062" "02cb41ee90cae000000091c410000102030405060708090a0b0c0d0e0f",
        "dd7fffffff", "df7fffffff", "c1", "dbffffffff", "9f9f9f9f9f9f9f9f",
        HEX_UNSCOPED "00",
        "960392c3c4100123456789abcdef0123456789abcdef0292c3c410fedcba9876543210fedcba9876543210cb41ee90cae000000091c410000102030405060708090a0b0c0d0e0f",
    };
    for (size_t i = 0; i < sizeof hex / sizeof hex[0]; i++) {
        unsigned char buf[512];
        size_t len = unhex(hex[i], buf);
        char *tok = ts_fernet_encrypt(k, buf, len, 1);
        assert_non_null(tok);
        assert_int_equal(ts_token_parse(k, tok, &back, NULL), -TS_EUNAUTH);
        free(tok);
        assert_int_equal(ts_token_payload_decode(buf, len, &back), -TS_EINVAL);
    }
    /* Random payloads. */
    unsigned seed = 777;
    for (int round = 0; round < 2000; round++) {
        unsigned char buf[200];
        size_t len = (size_t)(round % 200);
        for (size_t i = 0; i < len; i++) {
            seed = seed * 1103515245 + 12345;
            buf[i] = (unsigned char)(seed >> 16);
        }
        (void)ts_token_payload_decode(buf, len, &back);
        (void)ts_auth_mp_check(buf, len);
    }
    /* A hostile but well-formed nesting depth. */
    unsigned char deep[100];
    memset(deep, 0x91, sizeof deep);
    deep[99] = 0xc0;
    assert_int_equal(ts_auth_mp_check(deep, sizeof deep), -TS_EINVAL);
    assert_int_equal(ts_auth_mp_check(deep + 70, 30), 0);
    assert_int_equal(ts_token_parse(k, "", &back, NULL), -TS_EUNAUTH);
    assert_int_equal(ts_token_parse(k, NULL, &back, NULL), -TS_EUNAUTH);
    assert_int_equal(ts_token_parse(NULL, PY_PROJECT_TOKEN, &back, NULL), -TS_EUNAUTH);
    ts_fernet_keys_free(k);
}

static void test_msgpack_ints(void **state)
{
    (void)state;
    int64_t vals[] = {0, 1, 127, 128, 255, 256, 65535, 65536, 4294967295LL, 4294967296LL, INT64_MAX,
                      -1, -32, -33, -128, -129, -32768, -32769, INT32_MIN, (int64_t)INT32_MIN - 1, INT64_MIN};
    size_t sizes[] = {1, 1, 1, 2, 2, 3, 3, 5, 5, 9, 9, 1, 1, 2, 2, 3, 3, 5, 5, 9, 9};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        unsigned char buf[16];
        struct ts_mp_writer w;
        ts_auth_mp_writer_init(&w, buf, sizeof buf);
        ts_auth_mp_int(&w, vals[i]);
        assert_int_equal(w.len, sizes[i]);
        struct ts_mp_reader r;
        struct ts_mp_value v;
        ts_auth_mp_reader_init(&r, buf, w.len);
        assert_int_equal(ts_auth_mp_read(&r, &v), 0);
        assert_int_equal(v.type, TS_MP_INT);
        assert_true(v.i == vals[i]);
    }
    unsigned char small[3];
    struct ts_mp_writer w;
    ts_auth_mp_writer_init(&w, small, sizeof small);
    ts_auth_mp_str(&w, "hello", 5);
    assert_true(w.overflow);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keystone_bytes),
        cmocka_unit_test(test_python_tokens),
        cmocka_unit_test(test_round_trips),
        cmocka_unit_test(test_expired_and_wrong_key),
        cmocka_unit_test(test_garbage_payloads),
        cmocka_unit_test(test_msgpack_ints),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
