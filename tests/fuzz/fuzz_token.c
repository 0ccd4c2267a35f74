/*
 * fuzz_token.c: libFuzzer target for the token path. Each input is fed, as a string, to
 * ts_token_parse against a fixed key repository (created once in a temp dir), and, as
 * bytes, to the msgpack checker and the Keystone payload decoder. Inputs starting with
 * '!' are also wrapped in an authentic Fernet token so the payload decoder is reached
 * through ts_token_parse too.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/ts_auth_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct ts_fernet_keys *keys;
static char key_dir[64];

static void remove_keys(void)
{
    char path[128];
    for (int i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s/%d", key_dir, i);
        unlink(path);
    }
    rmdir(key_dir);
    ts_fernet_keys_free(keys);
}

static void init_keys(void)
{
    /* Fixed keys so that the corpus' real tokens stay valid across runs. */
    static const char *const fixed[] = {
        "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
    };
    snprintf(key_dir, sizeof key_dir, "/tmp/ts_fuzz_token_XXXXXX");
    if (!mkdtemp(key_dir)) abort();
    for (int i = 0; i < 2; i++) {
        char path[128];
        snprintf(path, sizeof path, "%s/%d", key_dir, i + 1);  /* 2 = primary, 1 = secondary */
        FILE *f = fopen(path, "w");
        if (!f) abort();
        fputs(fixed[1 - i], f);
        fclose(f);
    }
    struct ts_err err = {0};
    if (ts_fernet_load(key_dir, &keys, &err) < 0) {
        fprintf(stderr, "fuzz_token: %s\n", err.msg);
        abort();
    }
    atexit(remove_keys);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!keys) init_keys();

    char *s = malloc(size + 1);
    if (!s) return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    struct ts_token_payload p;
    struct ts_err err;
    (void)ts_token_parse(keys, s, &p, &err);
    free(s);

    (void)ts_auth_mp_check(data, size);
    if (ts_token_payload_decode(data, size, &p) == 0) {
        /* What decodes must encode again (possibly rejected) without trouble. */
        unsigned char buf[TS_TOKEN_PAYLOAD_MAX];
        (void)ts_token_payload_encode(&p, buf, sizeof buf);
    }

    if (size > 0 && data[0] == '!') {
        char *tok = ts_fernet_encrypt(keys, data + 1, size - 1, 1);
        if (tok) {
            (void)ts_token_parse(keys, tok, &p, &err);
            free(tok);
        }
    }
    return 0;
}
