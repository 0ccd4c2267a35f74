/*
 * ts_auth_fernet.c: Fernet (https://github.com/fernet/spec) over a key repository laid out
 * exactly as keystone-manage fernet_setup / fernet_rotate lay it out: files named 0, 1,
 * 2, ...; 0 is the staged key, the highest number the primary (used to encrypt), every
 * key decrypts. A key file holds the urlsafe base64 of 32 bytes: signing key, then
 * encryption key. Tokens are version 0x80 | timestamp (8, big-endian) | IV (16) |
 * AES-128-CBC ciphertext | HMAC-SHA256 (32), urlsafe base64 with the '=' padding stripped
 * as Keystone does. Crypto comes from OpenSSL 3's libcrypto.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "auth/ts_auth_internal.h"

#define FERNET_VERSION 0x80
#define HEADER_LEN (1 + 8 + 16)
#define HMAC_LEN 32
#define KEY_FILE_MAX 256          /* a key file is 44 bytes; anything much larger is not a key */
#define MAX_KEYS 4096
#define TOKEN_MAX_CHARS 8192      /* Keystone tokens are ~200 chars; refuse absurd ones early */

struct fernet_key {
    unsigned char sign[16];
    unsigned char enc[16];
};

struct ts_fernet_keys {
    int n;
    struct fernet_key *keys;      /* [0] = primary */
};

void ts_fernet_keys_free(struct ts_fernet_keys *k)
{
    if (!k) return;
    if (k->keys) {
        OPENSSL_cleanse(k->keys, sizeof *k->keys * (size_t)k->n);
        free(k->keys);
    }
    free(k);
}

/* Parses the text of a key file (trailing whitespace tolerated) into key. */
static int parse_key(const char *text, size_t len, struct fernet_key *key)
{
    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r' || text[len - 1] == ' ' ||
                       text[len - 1] == '\t'))
        len--;
    unsigned char *raw = NULL;
    size_t raw_len = 0;
    int rc = ts_b64url_decode(text, len, &raw, &raw_len);
    if (rc < 0) return -TS_EINVAL;
    if (raw_len != 32) {
        OPENSSL_cleanse(raw, raw_len);
        free(raw);
        return -TS_EINVAL;
    }
    memcpy(key->sign, raw, 16);
    memcpy(key->enc, raw + 16, 16);
    OPENSSL_cleanse(raw, raw_len);
    free(raw);
    return 0;
}

int ts_fernet_keys_from_strings(const char *const *keys, int n, struct ts_fernet_keys **out)
{
    *out = NULL;
    if (n <= 0 || n > MAX_KEYS) return -TS_EINVAL;
    struct ts_fernet_keys *k = calloc(1, sizeof *k);
    if (!k) return -TS_ENOMEM;
    k->keys = calloc((size_t)n, sizeof *k->keys);
    if (!k->keys) {
        free(k);
        return -TS_ENOMEM;
    }
    k->n = n;
    for (int i = 0; i < n; i++) {
        if (!keys[i] || parse_key(keys[i], strlen(keys[i]), &k->keys[i]) < 0) {
            ts_fernet_keys_free(k);
            return -TS_EINVAL;
        }
    }
    *out = k;
    return 0;
}

/* ---- key repository --------------------------------------------------------------- */

/* A key file name: decimal digits only, no sign, no leading zeros (besides "0"). */
static int key_number(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len > 9) return -1;
    if (len > 1 && name[0] == '0') return -1;
    int v = 0;
    for (size_t i = 0; i < len; i++) {
        if (name[i] < '0' || name[i] > '9') return -1;
        v = v * 10 + (name[i] - '0');
    }
    return v;
}

static int cmp_int_desc(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x < y) - (x > y);
}

/* Lists the numbers of the non-empty regular key files in dir, sorted descending.
 * *nums is malloc'd (may be NULL when *count is 0). */
static int list_keys(const char *dir, int **nums, int *count, struct ts_err *err)
{
    *nums = NULL;
    *count = 0;
    DIR *d = opendir(dir);
    if (!d) return ts_err_set(err, TS_EIO, "cannot open key repository %s: %s", dir, strerror(errno));
    int rc = 0, cap = 0, n = 0;
    int *v = NULL;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        int num = key_number(de->d_name);
        if (num < 0) continue;
        char path[PATH_MAX];
        if (snprintf(path, sizeof path, "%s/%s", dir, de->d_name) >= (int)sizeof path) continue;
        struct stat st;
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size == 0) continue;
        if (n == MAX_KEYS) {
            rc = ts_err_set(err, TS_EIO, "too many keys in %s", dir);
            goto out;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            int *nv = realloc(v, sizeof *v * (size_t)cap);
            if (!nv) {
                rc = ts_err_set(err, TS_ENOMEM, "out of memory");
                goto out;
            }
            v = nv;
        }
        v[n++] = num;
    }
    if (n > 1) qsort(v, (size_t)n, sizeof *v, cmp_int_desc);
out:
    closedir(d);
    if (rc < 0) {
        free(v);
        return rc;
    }
    *nums = v;
    *count = n;
    return 0;
}

static int read_key_file(const char *dir, int num, struct fernet_key *key, struct ts_err *err)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/%d", dir, num) >= (int)sizeof path)
        return ts_err_set(err, TS_EIO, "key path too long");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ts_err_set(err, TS_EIO, "cannot read %s: %s", path, strerror(errno));
    char buf[KEY_FILE_MAX + 1];
    size_t len = 0;
    for (;;) {
        ssize_t r = read(fd, buf + len, sizeof buf - len);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            close(fd);
            return ts_err_set(err, TS_EIO, "cannot read %s: %s", path, strerror(errno));
        }
        if (r == 0) break;
        len += (size_t)r;
        if (len == sizeof buf) break;
    }
    close(fd);
    int rc = 0;
    if (len > KEY_FILE_MAX || parse_key(buf, len, key) < 0)
        rc = ts_err_set(err, TS_EIO, "%s is not a Fernet key", path);
    OPENSSL_cleanse(buf, sizeof buf);
    return rc;
}

int ts_fernet_load(const char *dir, struct ts_fernet_keys **out, struct ts_err *err)
{
    if (!out) return ts_err_set(err, TS_EINVAL, "no output");
    *out = NULL;
    if (!dir) return ts_err_set(err, TS_EINVAL, "no key repository");
    int *nums = NULL, n = 0;
    struct ts_fernet_keys *k = NULL;
    int rc = list_keys(dir, &nums, &n, err);
    if (rc < 0) goto out;
    if (n == 0) {
        rc = ts_err_set(err, TS_EIO, "no Fernet keys in %s", dir);
        goto out;
    }
    k = calloc(1, sizeof *k);
    if (!k || !(k->keys = calloc((size_t)n, sizeof *k->keys))) {
        rc = ts_err_set(err, TS_ENOMEM, "out of memory");
        goto out;
    }
    k->n = n;
    for (int i = 0; i < n; i++) {
        rc = read_key_file(dir, nums[i], &k->keys[i], err);
        if (rc < 0) goto out;
    }
    *out = k;
    k = NULL;
out:
    ts_fernet_keys_free(k);
    free(nums);
    return rc;
}

/* Writes a fresh random key to dir/0.tmp (mode 0600, fsync'd). */
static int write_tmp_key(const char *dir, char *tmp_path, size_t tmp_size, struct ts_err *err)
{
    unsigned char raw[32];
    if (RAND_bytes(raw, sizeof raw) != 1) return ts_err_set(err, TS_EIO, "no random bytes");
    char *text = ts_b64url_encode(raw, sizeof raw, true);
    OPENSSL_cleanse(raw, sizeof raw);
    if (!text) return ts_err_set(err, TS_ENOMEM, "out of memory");
    int rc = 0, fd = -1;
    if (snprintf(tmp_path, tmp_size, "%s/0.tmp", dir) >= (int)tmp_size) {
        rc = ts_err_set(err, TS_EIO, "key path too long");
        goto out;
    }
    unlink(tmp_path);
    fd = open(tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        rc = ts_err_set(err, TS_EIO, "cannot create %s: %s", tmp_path, strerror(errno));
        goto out;
    }
    size_t len = strlen(text), off = 0;
    while (off < len) {
        ssize_t w = write(fd, text + off, len - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            rc = ts_err_set(err, TS_EIO, "cannot write %s: %s", tmp_path, strerror(errno));
            goto out;
        }
        off += (size_t)w;
    }
    if (fchmod(fd, 0600) != 0 || fsync(fd) != 0) {
        rc = ts_err_set(err, TS_EIO, "cannot sync %s: %s", tmp_path, strerror(errno));
        goto out;
    }
out:
    if (fd >= 0) close(fd);
    if (rc < 0 && fd >= 0) unlink(tmp_path);
    OPENSSL_cleanse(text, strlen(text));
    free(text);
    return rc;
}

static void sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

int ts_fernet_rotate(const char *dir, int max_active, struct ts_err *err)
{
    if (!dir) return ts_err_set(err, TS_EINVAL, "no key repository");
    if (max_active < 1) return ts_err_set(err, TS_EINVAL, "max_active_keys must be at least 1");
    int *nums = NULL, n = 0;
    char tmp[PATH_MAX], from[PATH_MAX], to[PATH_MAX];
    int rc = list_keys(dir, &nums, &n, err);
    if (rc < 0) goto out;
    rc = write_tmp_key(dir, tmp, sizeof tmp, err);
    if (rc < 0) goto out;

    /* Promote the staged key 0 to primary (highest number + 1), as keystone-manage does. */
    bool has_zero = n > 0 && nums[n - 1] == 0;
    if (has_zero) {
        int next = nums[0] + 1;
        if (nums[0] >= 999999999) {
            unlink(tmp);
            rc = ts_err_set(err, TS_EIO, "key numbers exhausted in %s", dir);
            goto out;
        }
        snprintf(from, sizeof from, "%s/0", dir);
        snprintf(to, sizeof to, "%s/%d", dir, next);
        if (rename(from, to) != 0) {
            unlink(tmp);
            rc = ts_err_set(err, TS_EIO, "cannot promote %s: %s", from, strerror(errno));
            goto out;
        }
        nums[n - 1] = next;     /* the list now holds the active (non-staged) keys */
        if (n > 1) qsort(nums, (size_t)n, sizeof *nums, cmp_int_desc);
    }
    snprintf(to, sizeof to, "%s/0", dir);
    if (rename(tmp, to) != 0) {
        unlink(tmp);
        rc = ts_err_set(err, TS_EIO, "cannot stage new key %s: %s", to, strerror(errno));
        goto out;
    }
    /* Purge the oldest active keys beyond max_active - 1 (the staged key makes max_active). */
    for (int i = max_active - 1; i < n; i++) {
        if (nums[i] == 0) continue;
        snprintf(from, sizeof from, "%s/%d", dir, nums[i]);
        if (unlink(from) != 0 && errno != ENOENT) {
            rc = ts_err_set(err, TS_EIO, "cannot remove %s: %s", from, strerror(errno));
            goto out;
        }
    }
    sync_dir(dir);
out:
    free(nums);
    return rc;
}

int ts_fernet_setup(const char *dir, struct ts_err *err)
{
    if (!dir) return ts_err_set(err, TS_EINVAL, "no key repository");
    struct stat st;
    if (stat(dir, &st) != 0) {
        /* Like keystone-manage: the repository is private to the service user. */
        if (ts_mkdirs(dir, 0700) < 0 || chmod(dir, 0700) != 0)
            return ts_err_set(err, TS_EIO, "cannot create %s: %s", dir, strerror(errno));
    } else if (!S_ISDIR(st.st_mode)) {
        return ts_err_set(err, TS_EIO, "%s is not a directory", dir);
    }
    int *nums = NULL, n = 0;
    int rc = list_keys(dir, &nums, &n, err);
    if (rc < 0) return rc;
    free(nums);
    if (n > 0) return 0;        /* already initialized */
    char tmp[PATH_MAX], to[PATH_MAX];
    rc = write_tmp_key(dir, tmp, sizeof tmp, err);
    if (rc < 0) return rc;
    snprintf(to, sizeof to, "%s/0", dir);
    if (rename(tmp, to) != 0) {
        unlink(tmp);
        return ts_err_set(err, TS_EIO, "cannot create %s: %s", to, strerror(errno));
    }
    /* keystone-manage fernet_setup: the first rotation yields a primary 1 and a staged 0. */
    return ts_fernet_rotate(dir, 3, err);
}

/* ---- tokens --------------------------------------------------------------------- */

static bool hmac_sha256(const unsigned char key[16], const unsigned char *data, size_t len,
                        unsigned char out[HMAC_LEN])
{
    unsigned int out_len = 0;
    return HMAC(EVP_sha256(), key, 16, data, len, out, &out_len) != NULL && out_len == HMAC_LEN;
}

char *ts_fernet_encrypt_iv(const struct ts_fernet_keys *k, const unsigned char *payload, size_t len,
                           uint64_t now, const unsigned char iv[16], bool pad)
{
    if (!k || k->n < 1 || (!payload && len > 0) || len > (1u << 24)) return NULL;
    const struct fernet_key *key = &k->keys[0];
    size_t ct_cap = len + 16;
    size_t total_cap = HEADER_LEN + ct_cap + HMAC_LEN;
    unsigned char *buf = malloc(total_cap);
    char *token = NULL;
    EVP_CIPHER_CTX *ctx = NULL;
    if (!buf) return NULL;
    buf[0] = FERNET_VERSION;
    for (int i = 0; i < 8; i++) buf[1 + i] = (unsigned char)(now >> (56 - 8 * i));
    memcpy(buf + 9, iv, 16);
    int outl = 0, finl = 0;
    ctx = EVP_CIPHER_CTX_new();
    if (!ctx || EVP_EncryptInit_ex(ctx, EVP_aes_128_cbc(), NULL, key->enc, iv) != 1 ||
        EVP_EncryptUpdate(ctx, buf + HEADER_LEN, &outl, payload ? payload : buf, (int)len) != 1 ||
        EVP_EncryptFinal_ex(ctx, buf + HEADER_LEN + outl, &finl) != 1)
        goto out;
    size_t signed_len = HEADER_LEN + (size_t)outl + (size_t)finl;
    if (!hmac_sha256(key->sign, buf, signed_len, buf + signed_len)) goto out;
    token = ts_b64url_encode(buf, signed_len + HMAC_LEN, pad);
out:
    EVP_CIPHER_CTX_free(ctx);
    OPENSSL_cleanse(buf, total_cap);
    free(buf);
    return token;
}

char *ts_fernet_encrypt(const struct ts_fernet_keys *k, const unsigned char *payload, size_t len, uint64_t now)
{
    unsigned char iv[16];
    if (RAND_bytes(iv, sizeof iv) != 1) return NULL;
    return ts_fernet_encrypt_iv(k, payload, len, now, iv, false);
}

/* Decrypts the verified ciphertext with key; NULL on bad padding. */
static unsigned char *decrypt_body(const struct fernet_key *key, const unsigned char *raw, size_t ct_len,
                                   size_t *out_len)
{
    unsigned char *pt = malloc(ct_len + 16);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int outl = 0, finl = 0;
    bool ok = pt && ctx && EVP_DecryptInit_ex(ctx, EVP_aes_128_cbc(), NULL, key->enc, raw + 9) == 1 &&
              EVP_DecryptUpdate(ctx, pt, &outl, raw + HEADER_LEN, (int)ct_len) == 1 &&
              EVP_DecryptFinal_ex(ctx, pt + outl, &finl) == 1;
    EVP_CIPHER_CTX_free(ctx);
    if (!ok) {
        if (pt) OPENSSL_cleanse(pt, ct_len + 16);
        free(pt);
        return NULL;
    }
    *out_len = (size_t)outl + (size_t)finl;
    return pt;
}

int ts_fernet_decrypt(const struct ts_fernet_keys *k, const char *token, unsigned char **payload, size_t *len,
                      uint64_t *issued)
{
    if (payload) *payload = NULL;
    if (len) *len = 0;
    if (issued) *issued = 0;
    if (!k || !token || !payload) return -TS_EUNAUTH;
    size_t tlen = strnlen(token, TOKEN_MAX_CHARS + 1);
    if (tlen > TOKEN_MAX_CHARS || tlen == 0) return -TS_EUNAUTH;

    unsigned char *raw = NULL;
    size_t raw_len = 0;
    int rc = -TS_EUNAUTH;
    if (ts_b64url_decode(token, tlen, &raw, &raw_len) < 0) return -TS_EUNAUTH;
    if (raw_len < HEADER_LEN + 16 + HMAC_LEN || raw[0] != FERNET_VERSION) goto out;
    size_t ct_len = raw_len - HEADER_LEN - HMAC_LEN;
    if (ct_len % 16 != 0) goto out;
    size_t signed_len = raw_len - HMAC_LEN;

    for (int i = 0; i < k->n; i++) {
        unsigned char mac[HMAC_LEN];
        if (!hmac_sha256(k->keys[i].sign, raw, signed_len, mac)) goto out;
        if (CRYPTO_memcmp(mac, raw + signed_len, HMAC_LEN) != 0) continue;
        size_t pt_len = 0;
        unsigned char *pt = decrypt_body(&k->keys[i], raw, ct_len, &pt_len);
        if (!pt) goto out;      /* authentic but badly padded: no other key can fix that */
        uint64_t ts = 0;
        for (int b = 0; b < 8; b++) ts = ts << 8 | raw[1 + b];
        *payload = pt;
        if (len) *len = pt_len;
        if (issued) *issued = ts;
        rc = 0;
        goto out;
    }
out:
    OPENSSL_cleanse(raw, raw_len);
    free(raw);
    return rc;
}
