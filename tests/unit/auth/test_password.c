/*
 * test_password.c: bcrypt password hashes through libcrypt: hash and verify, wrong
 * passwords, a published crypt_blowfish vector, and malformed stored hashes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "auth/ts_auth.h"

static void test_hash_verify(void **state)
{
    (void)state;
    char *h = ts_password_hash("correct horse battery staple", 4);
    assert_non_null(h);
    assert_true(strncmp(h, "$2b$04$", 7) == 0);
    assert_int_equal(strlen(h), 60);
    assert_true(ts_password_verify("correct horse battery staple", h));
    assert_false(ts_password_verify("correct horse battery stapl", h));
    assert_false(ts_password_verify("", h));
    assert_false(ts_password_verify(NULL, h));

    /* Salted: the same password hashes differently each time. */
    char *h2 = ts_password_hash("correct horse battery staple", 4);
    assert_string_not_equal(h, h2);
    assert_true(ts_password_verify("correct horse battery staple", h2));

    /* A flipped character in the stored hash fails. */
    h2[40] = h2[40] == 'a' ? 'b' : 'a';
    assert_false(ts_password_verify("correct horse battery staple", h2));
    free(h2);
    free(h);

    h = ts_password_hash("", 4);
    assert_non_null(h);
    assert_true(ts_password_verify("", h));
    assert_false(ts_password_verify("x", h));
    free(h);
}

static void test_known_vectors(void **state)
{
    (void)state;
    /* From Openwall's crypt_blowfish test vectors. */
    assert_true(ts_password_verify("U*U", "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW"));
    assert_false(ts_password_verify("U*V", "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW"));
    assert_true(ts_password_verify("U*U", "$2b$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW"));
    assert_true(ts_password_verify("", "$2a$05$CCCCCCCCCCCCCCCCCCCCC.7uG0VCzI2bS7j6ymqJi9CdcdxiRTWNy"));
}

static void test_bad_hashes(void **state)
{
    (void)state;
    const char *bad[] = {"", "x", "$", "$2b$", "$2b$04$", "*0", "*1", "abOzS1v2lFVA.",
                         "$2b$99$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW",
                         "$2b$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOe",
                         "$pbkdf2-sha512$25000$abc$def"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) assert_false(ts_password_verify("U*U", bad[i]));
    assert_false(ts_password_verify("U*U", NULL));
    char *longhash = malloc(100000);
    memset(longhash, 'a', 99999);
    longhash[0] = '$';
    longhash[99999] = '\0';
    assert_false(ts_password_verify("U*U", longhash));
    free(longhash);

    assert_null(ts_password_hash("x", 3));
    assert_null(ts_password_hash("x", 32));
    assert_null(ts_password_hash(NULL, 4));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash_verify),
        cmocka_unit_test(test_known_vectors),
        cmocka_unit_test(test_bad_hashes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
