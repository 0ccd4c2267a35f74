/*
 * ts_auth_password.c: password hashing with libcrypt's bcrypt ("$2b$", Keystone's default
 * through passlib), so Keystone users and their hashes can be migrated as they are.
 * Verification recomputes the hash with the stored setting and compares in constant time.
 * Other crypt(3) schemes libcrypt knows ($2a$, $2y$, $6$ sha512-crypt ...) verify too.
 */
#include <crypt.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "auth/ts_auth.h"

/* bcrypt only reads 72 bytes; refuse megabyte "passwords" before hashing anything. */
#define PASSWORD_MAX 4096

char *ts_password_hash(const char *password, int rounds)
{
    if (!password || rounds < 4 || rounds > 31 || strlen(password) > PASSWORD_MAX) return NULL;
    char salt[CRYPT_GENSALT_OUTPUT_SIZE];
    if (!crypt_gensalt_rn("$2b$", (unsigned long)rounds, NULL, 0, salt, sizeof salt)) return NULL;
    struct crypt_data *data = calloc(1, sizeof *data);
    if (!data) return NULL;
    char *out = NULL;
    const char *h = crypt_r(password, salt, data);
    if (h && strncmp(h, "$2b$", 4) == 0) out = strdup(h);
    OPENSSL_cleanse(data, sizeof *data);
    free(data);
    return out;
}

bool ts_password_verify(const char *password, const char *hash)
{
    if (!password || !hash || hash[0] != '$' || strlen(password) > PASSWORD_MAX) return false;
    size_t hlen = strnlen(hash, CRYPT_OUTPUT_SIZE);
    if (hlen >= CRYPT_OUTPUT_SIZE) return false;
    struct crypt_data *data = calloc(1, sizeof *data);
    if (!data) return false;
    bool ok = false;
    const char *h = crypt_r(password, hash, data);
    /* libcrypt reports failure as NULL or a string starting with '*'. */
    if (h && h[0] == '$' && strlen(h) == hlen) ok = CRYPTO_memcmp(h, hash, hlen) == 0;
    OPENSSL_cleanse(data, sizeof *data);
    free(data);
    return ok;
}
