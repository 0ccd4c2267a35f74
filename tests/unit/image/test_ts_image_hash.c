/*
 * test_ts_image_hash.c: the two-thread md5 + sha512 of image data gives the digests of a
 * one-shot EVP computation for empty, small, block-sized and multi-block inputs, whether
 * fed through get/put/release (blocks written "meanwhile") or update, and keeps size and
 * the 32-byte head; blocks come back for reuse (more blocks than the pool holds).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <openssl/evp.h>

#include "image/ts_image_int.h"

static void digest(const EVP_MD *md, const unsigned char *d, size_t n, char *hex)
{
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    assert_int_equal(EVP_Digest(d, n, out, &len, md, NULL), 1);
    ts_hex(out, len, hex);
}

static unsigned char *pattern(size_t n)
{
    unsigned char *d = malloc(n ? n : 1);
    uint32_t x = 2463534242u;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        d[i] = (unsigned char)x;
    }
    return d;
}

static void check(size_t n, bool blocks)
{
    unsigned char *d = pattern(n);
    char md5[33], sha[129], want_md5[33], want_sha[129];
    digest(EVP_md5(), d, n, want_md5);
    digest(EVP_sha512(), d, n, want_sha);
    struct ts_image_hash *h = ts_image_hash_new();
    if (blocks) {
        /* odd-sized pieces, as an HTTP body arrives */
        size_t off = 0;
        while (off < n) {
            size_t cap = 0;
            char *b = ts_image_hash_get(h, &cap);
            size_t k = n - off < cap / 3 + 7 ? n - off : cap / 3 + 7;
            memcpy(b, d + off, k);
            ts_image_hash_put(h, b, k);
            ts_image_hash_release(h, b);
            off += k;
        }
        size_t cap = 0;   /* a block taken and given back unused */
        ts_image_hash_release(h, ts_image_hash_get(h, &cap));
    } else {
        ts_image_hash_update(h, d, n);
    }
    ts_image_hash_final(h, md5, sha);
    assert_string_equal(md5, want_md5);
    assert_string_equal(sha, want_sha);
    assert_int_equal(ts_image_hash_size(h), n);
    size_t hl = 0;
    const unsigned char *head = ts_image_hash_head(h, &hl);
    assert_int_equal(hl, n < 32 ? n : 32);
    assert_memory_equal(head, d, hl);
    ts_image_hash_free(h);
    free(d);
}

static void test_sizes(void **state)
{
    (void)state;
    const size_t sizes[] = {0, 1, 31, 32, 33, 4096, (1u << 20) - 1, 1u << 20, (1u << 20) + 1, 9u << 20};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        check(sizes[i], true);
        check(sizes[i], false);
    }
}

static void test_free_without_final(void **state)
{
    (void)state;
    struct ts_image_hash *h = ts_image_hash_new();
    size_t cap = 0;
    char *b = ts_image_hash_get(h, &cap);
    memset(b, 1, 1000);
    ts_image_hash_put(h, b, 1000);
    ts_image_hash_release(h, b);
    ts_image_hash_free(h);   /* an aborted upload: threads stop, nothing leaks */
    ts_image_hash_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_free_without_final),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
