/*
 * test_fernet.c: Fernet tokens and the Keystone-layout key repository: the spec's test
 * vector, round trips, tampering, wrong keys, rotation and pruning, garbage input, and
 * the base64 helpers underneath.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "auth/ts_auth_internal.h"

#define SPEC_KEY "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4="
#define SPEC_TOKEN "gAAAAAAdwJ6wAAECAwQFBgcICQoLDA0ODy021cpGVWKZ_eEwCGM4BLLF_5CV9dOPmrhuVUPgJobwOz7JcbmrR64jVmpU4IwqDA=="
#define SPEC_NOW 499162800ULL   /* 1985-10-26T01:20:00-07:00 */

static void make_tmpdir(char *dir, size_t size)
{
    snprintf(dir, size, "/tmp/ts_auth_test_XXXXXX");
    assert_non_null(mkdtemp(dir));
}

static void rm_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *de;
    char path[4096];
    while ((de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

static bool file_exists(const char *dir, const char *name)
{
    char path[4096];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return stat(path, &st) == 0;
}

static int count_files(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

static struct ts_fernet_keys *spec_keys(void)
{
    const char *keys[] = {SPEC_KEY};
    struct ts_fernet_keys *k = NULL;
    assert_int_equal(ts_fernet_keys_from_strings(keys, 1, &k), 0);
    return k;
}

static void test_spec_vector(void **state)
{
    (void)state;
    struct ts_fernet_keys *k = spec_keys();
    unsigned char iv[16];
    for (int i = 0; i < 16; i++) iv[i] = (unsigned char)i;

    char *tok = ts_fernet_encrypt_iv(k, (const unsigned char *)"hello", 5, SPEC_NOW, iv, true);
    assert_non_null(tok);
    assert_string_equal(tok, SPEC_TOKEN);
    free(tok);

    /* Keystone's form: the same token without the '=' padding. */
    tok = ts_fernet_encrypt_iv(k, (const unsigned char *)"hello", 5, SPEC_NOW, iv, false);
    assert_non_null(tok);
    assert_int_equal(strlen(tok), strlen(SPEC_TOKEN) - 2);
    assert_memory_equal(tok, SPEC_TOKEN, strlen(tok));
    free(tok);

    unsigned char *pt = NULL;
    size_t len = 0;
    uint64_t issued = 0;
    assert_int_equal(ts_fernet_decrypt(k, SPEC_TOKEN, &pt, &len, &issued), 0);
    assert_int_equal(len, 5);
    assert_memory_equal(pt, "hello", 5);
    assert_int_equal(issued, SPEC_NOW);
    free(pt);

    char unpadded[sizeof SPEC_TOKEN];
    memcpy(unpadded, SPEC_TOKEN, sizeof SPEC_TOKEN);
    unpadded[strlen(unpadded) - 2] = '\0';
    assert_int_equal(ts_fernet_decrypt(k, unpadded, &pt, &len, NULL), 0);
    assert_memory_equal(pt, "hello", 5);
    free(pt);
    ts_fernet_keys_free(k);
}

static void test_round_trip_sizes(void **state)
{
    (void)state;
    struct ts_fernet_keys *k = spec_keys();
    unsigned char msg[100];
    for (size_t i = 0; i < sizeof msg; i++) msg[i] = (unsigned char)(i * 7);
    for (size_t n = 0; n <= sizeof msg; n++) {
        char *tok = ts_fernet_encrypt(k, msg, n, 1234567890);
        assert_non_null(tok);
        assert_null(strchr(tok, '='));
        unsigned char *pt = NULL;
        size_t len = 99999;
        uint64_t issued = 0;
        assert_int_equal(ts_fernet_decrypt(k, tok, &pt, &len, &issued), 0);
        assert_int_equal(len, n);
        if (n) assert_memory_equal(pt, msg, n);
        assert_int_equal(issued, 1234567890);
        free(pt);
        free(tok);
    }
    ts_fernet_keys_free(k);
}

static void test_tamper(void **state)
{
    (void)state;
    struct ts_fernet_keys *k = spec_keys();
    char *tok = ts_fernet_encrypt(k, (const unsigned char *)"secret payload", 14, 42);
    assert_non_null(tok);
    unsigned char *raw = NULL;
    size_t raw_len = 0;
    assert_int_equal(ts_b64url_decode(tok, strlen(tok), &raw, &raw_len), 0);
    /* Flip every bit position of every byte in turn: each variant must be refused. */
    for (size_t i = 0; i < raw_len; i++) {
        for (int bit = 0; bit < 8; bit += 3) {
            raw[i] ^= (unsigned char)(1u << bit);
            char *bad = ts_b64url_encode(raw, raw_len, false);
            unsigned char *pt = (unsigned char *)"x";
            size_t len = 7;
            assert_int_equal(ts_fernet_decrypt(k, bad, &pt, &len, NULL), -TS_EUNAUTH);
            assert_null(pt);
            assert_int_equal(len, 0);
            free(bad);
            raw[i] ^= (unsigned char)(1u << bit);
        }
    }
    /* Truncated and extended tokens. */
    for (size_t n = 0; n < raw_len; n++) {
        char *bad = ts_b64url_encode(raw, n, false);
        unsigned char *pt = NULL;
        assert_int_equal(ts_fernet_decrypt(k, bad, &pt, NULL, NULL), -TS_EUNAUTH);
        free(bad);
    }
    free(raw);
    free(tok);
    ts_fernet_keys_free(k);
}

static void test_wrong_key(void **state)
{
    (void)state;
    struct ts_fernet_keys *k = spec_keys();
    const char *other_keys[] = {"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="};
    struct ts_fernet_keys *other = NULL;
    assert_int_equal(ts_fernet_keys_from_strings(other_keys, 1, &other), 0);
    unsigned char *pt = NULL;
    assert_int_equal(ts_fernet_decrypt(other, SPEC_TOKEN, &pt, NULL, NULL), -TS_EUNAUTH);
    assert_null(pt);

    /* Any key of the set decrypts. */
    const char *both[] = {"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", SPEC_KEY};
    struct ts_fernet_keys *set = NULL;
    assert_int_equal(ts_fernet_keys_from_strings(both, 2, &set), 0);
    assert_int_equal(ts_fernet_decrypt(set, SPEC_TOKEN, &pt, NULL, NULL), 0);
    free(pt);

    /* Bad key strings are refused. */
    const char *bad[] = {"short"};
    struct ts_fernet_keys *none = NULL;
    assert_int_equal(ts_fernet_keys_from_strings(bad, 1, &none), -TS_EINVAL);
    assert_null(none);
    ts_fernet_keys_free(set);
    ts_fernet_keys_free(other);
    ts_fernet_keys_free(k);
}

static void test_garbage(void **state)
{
    (void)state;
    struct ts_fernet_keys *k = spec_keys();
    const char *junk[] = {"", "a", "ab", "abc", "====", "gA", "gAAAAA", "!!!!", "gAAAAAAdwJ6w\n",
                          "gAAAAAAdwJ6wAAECAwQFBgcICQoLDA0ODy021cpGVWKZ_eEwCGM4BLLF_5CV9dOPmrhuVUPgJobwOz7JcbmrR64jVmpU4IwqDA===",
                          "gAAAAAAdwJ6wAAECAwQFBgcICQoLDA0ODy021cpGVWKZ_eEwCGM4BLLF_5CV9dOPmrhuVUPgJobwOz7JcbmrR64jVmpU4IwqD",
                          "gAAAAAAdwJ6wAAECAwQFBgcICQoLDA0ODy021cpGVWKZ+eEwCGM4BLLF/5CV9dOPmrhuVUPgJobwOz7JcbmrR64jVmpU4IwqDA=="};
    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++) {
        unsigned char *pt = NULL;
        assert_int_equal(ts_fernet_decrypt(k, junk[i], &pt, NULL, NULL), -TS_EUNAUTH);
        assert_null(pt);
    }
    assert_int_equal(ts_fernet_decrypt(k, NULL, NULL, NULL, NULL), -TS_EUNAUTH);
    unsigned char *pt = NULL;
    assert_int_equal(ts_fernet_decrypt(NULL, SPEC_TOKEN, &pt, NULL, NULL), -TS_EUNAUTH);

    /* A huge token is refused without trouble. */
    size_t big = 1 << 20;
    char *huge = malloc(big + 1);
    memset(huge, 'A', big);
    huge[big] = '\0';
    assert_int_equal(ts_fernet_decrypt(k, huge, &pt, NULL, NULL), -TS_EUNAUTH);
    free(huge);

    /* Random strings of every length up to 300 from the urlsafe alphabet. */
    static const char alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=";
    unsigned seed = 12345;
    char s[301];
    for (int n = 0; n <= 300; n++) {
        for (int i = 0; i < n; i++) {
            seed = seed * 1103515245 + 12345;
            s[i] = alpha[(seed >> 16) % (sizeof alpha - 1)];
        }
        s[n] = '\0';
        if (n > 0) s[0] = 'g';
        assert_int_equal(ts_fernet_decrypt(k, s, &pt, NULL, NULL), -TS_EUNAUTH);
    }
    ts_fernet_keys_free(k);
}

static void test_setup_layout(void **state)
{
    (void)state;
    char dir[64];
    make_tmpdir(dir, sizeof dir);
    char sub[128];
    snprintf(sub, sizeof sub, "%s/fernet-keys", dir);
    assert_int_equal(ts_fernet_setup(sub, NULL), 0);
    assert_true(file_exists(sub, "0"));
    assert_true(file_exists(sub, "1"));
    assert_false(file_exists(sub, "0.tmp"));
    assert_int_equal(count_files(sub), 2);

    struct stat st;
    assert_int_equal(stat(sub, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    char path[256];
    snprintf(path, sizeof path, "%s/1", sub);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(st.st_size, 44);

    /* Setting up again leaves the keys alone. */
    char before[64] = {0}, after[64] = {0};
    FILE *f = fopen(path, "r");
    assert_non_null(fgets(before, sizeof before, f));
    fclose(f);
    assert_int_equal(ts_fernet_setup(sub, NULL), 0);
    f = fopen(path, "r");
    assert_non_null(fgets(after, sizeof after, f));
    fclose(f);
    assert_string_equal(before, after);
    assert_int_equal(count_files(sub), 2);

    /* The key must be a Fernet key (32 bytes, urlsafe base64). */
    unsigned char *raw = NULL;
    size_t raw_len = 0;
    assert_int_equal(ts_b64url_decode(before, strlen(before), &raw, &raw_len), 0);
    assert_int_equal(raw_len, 32);
    free(raw);

    rm_tree(sub);
    rm_tree(dir);
}

static char *encrypt_with_repo(const char *dir, const char *msg)
{
    struct ts_fernet_keys *k = NULL;
    assert_int_equal(ts_fernet_load(dir, &k, NULL), 0);
    char *tok = ts_fernet_encrypt(k, (const unsigned char *)msg, strlen(msg), 100);
    ts_fernet_keys_free(k);
    return tok;
}

static bool decrypts_with_repo(const char *dir, const char *tok)
{
    struct ts_fernet_keys *k = NULL;
    assert_int_equal(ts_fernet_load(dir, &k, NULL), 0);
    unsigned char *pt = NULL;
    int rc = ts_fernet_decrypt(k, tok, &pt, NULL, NULL);
    free(pt);
    ts_fernet_keys_free(k);
    return rc == 0;
}

/* A key set holding only the staged key 0 of dir, as another node sees it before sync. */
static char *encrypt_with_staged(const char *dir)
{
    char path[256], text[128] = {0};
    snprintf(path, sizeof path, "%s/0", dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    assert_non_null(fgets(text, sizeof text, f));
    fclose(f);
    const char *keys[] = {text};
    struct ts_fernet_keys *k = NULL;
    assert_int_equal(ts_fernet_keys_from_strings(keys, 1, &k), 0);
    char *tok = ts_fernet_encrypt(k, (const unsigned char *)"staged", 6, 100);
    ts_fernet_keys_free(k);
    return tok;
}

static void test_rotation(void **state)
{
    (void)state;
    char dir[64];
    make_tmpdir(dir, sizeof dir);
    assert_int_equal(ts_fernet_setup(dir, NULL), 0);

    char *a = encrypt_with_repo(dir, "made with key 1");
    char *staged = encrypt_with_staged(dir);
    assert_true(decrypts_with_repo(dir, a));
    assert_true(decrypts_with_repo(dir, staged));

    /* {0,1} -> {0,1,2}: key 0 became primary 2 */
    assert_int_equal(ts_fernet_rotate(dir, 3, NULL), 0);
    assert_true(file_exists(dir, "0") && file_exists(dir, "1") && file_exists(dir, "2"));
    assert_int_equal(count_files(dir), 3);
    assert_true(decrypts_with_repo(dir, a));
    assert_true(decrypts_with_repo(dir, staged));
    char *b = encrypt_with_repo(dir, "made with key 2");

    /* {0,1,2} -> {0,2,3}: key 1 pruned, tokens made with it die */
    assert_int_equal(ts_fernet_rotate(dir, 3, NULL), 0);
    assert_true(file_exists(dir, "0") && file_exists(dir, "2") && file_exists(dir, "3"));
    assert_false(file_exists(dir, "1"));
    assert_int_equal(count_files(dir), 3);
    assert_false(decrypts_with_repo(dir, a));
    assert_true(decrypts_with_repo(dir, staged));
    assert_true(decrypts_with_repo(dir, b));

    /* more rotations with max_active 2: {0,3} -> {0,4} ... */
    assert_int_equal(ts_fernet_rotate(dir, 2, NULL), 0);
    assert_int_equal(count_files(dir), 2);
    assert_true(file_exists(dir, "0") && file_exists(dir, "4"));
    assert_false(decrypts_with_repo(dir, b));
    assert_false(decrypts_with_repo(dir, staged));

    /* The staged key becomes the primary that encrypts after a rotation. */
    char *staged2 = encrypt_with_staged(dir);
    assert_int_equal(ts_fernet_rotate(dir, 5, NULL), 0);
    struct ts_fernet_keys *k = NULL;
    assert_int_equal(ts_fernet_load(dir, &k, NULL), 0);
    char *c = ts_fernet_encrypt(k, (const unsigned char *)"x", 1, 1);
    ts_fernet_keys_free(k);
    const char *only5[1];
    char text[128] = {0}, path[256];
    snprintf(path, sizeof path, "%s/5", dir);
    FILE *f = fopen(path, "r");
    assert_non_null(fgets(text, sizeof text, f));
    fclose(f);
    only5[0] = text;
    assert_int_equal(ts_fernet_keys_from_strings(only5, 1, &k), 0);
    unsigned char *pt = NULL;
    assert_int_equal(ts_fernet_decrypt(k, c, &pt, NULL, NULL), 0);
    free(pt);
    assert_int_equal(ts_fernet_decrypt(k, staged2, &pt, NULL, NULL), 0);
    free(pt);
    ts_fernet_keys_free(k);

    assert_int_equal(ts_fernet_rotate(dir, 0, NULL), -TS_EINVAL);
    free(a);
    free(b);
    free(c);
    free(staged);
    free(staged2);
    rm_tree(dir);
}

static void test_load_errors(void **state)
{
    (void)state;
    char dir[64];
    struct ts_err err = {0};
    struct ts_fernet_keys *k = NULL;
    make_tmpdir(dir, sizeof dir);
    assert_true(ts_fernet_load(dir, &k, &err) < 0);        /* empty */
    assert_null(k);
    assert_true(ts_fernet_load("/nonexistent/ts-keys", &k, NULL) < 0);

    char path[256];
    snprintf(path, sizeof path, "%s/1", dir);
    FILE *f = fopen(path, "w");
    fputs("not a key at all", f);
    fclose(f);
    assert_true(ts_fernet_load(dir, &k, &err) < 0);
    assert_null(k);

    /* Non-numeric and empty files are ignored, as Keystone ignores them. */
    f = fopen(path, "w");
    fputs(SPEC_KEY "\n", f);
    fclose(f);
    snprintf(path, sizeof path, "%s/README", dir);
    f = fopen(path, "w");
    fputs("hello", f);
    fclose(f);
    snprintf(path, sizeof path, "%s/7", dir);
    f = fopen(path, "w");
    fclose(f);
    assert_int_equal(ts_fernet_load(dir, &k, NULL), 0);
    unsigned char *pt = NULL;
    assert_int_equal(ts_fernet_decrypt(k, SPEC_TOKEN, &pt, NULL, NULL), 0);
    free(pt);
    ts_fernet_keys_free(k);
    ts_fernet_keys_free(NULL);
    rm_tree(dir);
}

static void test_b64(void **state)
{
    (void)state;
    struct { const char *raw, *std, *url; } v[] = {
        {"", "", ""}, {"f", "Zg==", "Zg"}, {"fo", "Zm8=", "Zm8"}, {"foo", "Zm9v", "Zm9v"},
        {"foob", "Zm9vYg==", "Zm9vYg"}, {"fooba", "Zm9vYmE=", "Zm9vYmE"}, {"foobar", "Zm9vYmFy", "Zm9vYmFy"},
        {"\xfb\xff\xfe", "+//+", "-__-"},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        size_t n = strlen(v[i].raw);
        char *s = ts_b64_encode((const unsigned char *)v[i].raw, n);
        assert_string_equal(s, v[i].std);
        free(s);
        s = ts_b64url_encode((const unsigned char *)v[i].raw, n, false);
        assert_string_equal(s, v[i].url);
        free(s);
        unsigned char *out = NULL;
        size_t len = 0;
        assert_int_equal(ts_b64_decode(v[i].std, strlen(v[i].std), &out, &len), 0);
        assert_int_equal(len, n);
        assert_memory_equal(out, v[i].raw, n);
        free(out);
        assert_int_equal(ts_b64url_decode(v[i].url, strlen(v[i].url), &out, &len), 0);
        assert_int_equal(len, n);
        assert_memory_equal(out, v[i].raw, n);
        free(out);
    }
    const char *bad[] = {"Z", "Zg=", "Zg===", "Z===", "Zh==", "Zm9=", "Zm 9v", "Zm9v\n", "=Zm9", "Zg==Zg==", "-__-"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        unsigned char *out = (unsigned char *)"x";
        assert_int_equal(ts_b64_decode(bad[i], strlen(bad[i]), &out, NULL), -TS_EINVAL);
        assert_null(out);
    }
    unsigned char *out = NULL;
    assert_int_equal(ts_b64url_decode("+//+", 4, &out, NULL), -TS_EINVAL);
    assert_int_equal(ts_b64url_decode(NULL, 3, &out, NULL), -TS_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spec_vector),
        cmocka_unit_test(test_round_trip_sizes),
        cmocka_unit_test(test_tamper),
        cmocka_unit_test(test_wrong_key),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_setup_layout),
        cmocka_unit_test(test_rotation),
        cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_b64),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
