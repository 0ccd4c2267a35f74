/*
 * ts_auth.h: credentials and tokens. Fernet tokens interoperable with Keystone's format
 * (version 0x80, AES-128-CBC + HMAC-SHA256, urlsafe base64 without padding, msgpack
 * payloads as keystone.token.token_formatters writes them) over a Keystone-layout key
 * repository (files 0 = staged, highest = primary, the rest secondary); bcrypt password
 * hashes ($2b$, libcrypt); and the RBAC policy helpers shared by every service.
 */
#ifndef TS_AUTH_H
#define TS_AUTH_H

#include <stdbool.h>
#include <stdint.h>
#include "core/ts_core.h"

/* ---- key repository ---------------------------------------------------------- */
struct ts_fernet_keys;
/* Creates dir with keys 0 and 1 when it holds none (keystone-manage fernet_setup). */
int ts_fernet_setup(const char *dir, struct ts_err *err);
/* Rotates: staged key 0 becomes primary (next number), a new staged key 0 is written,
 * and the oldest secondaries beyond max_active are removed (keystone-manage fernet_rotate). */
int ts_fernet_rotate(const char *dir, int max_active, struct ts_err *err);
int ts_fernet_load(const char *dir, struct ts_fernet_keys **out, struct ts_err *err);
void ts_fernet_keys_free(struct ts_fernet_keys *k);

/* Raw Fernet: encrypt payload with the primary key at time now -> token (malloc'd). */
char *ts_fernet_encrypt(const struct ts_fernet_keys *k, const unsigned char *payload, size_t len, uint64_t now);
/* Decrypts with any key; -TS_EUNAUTH if no key verifies or the token is malformed.
 * *payload is malloc'd. *issued is the Fernet timestamp. */
int ts_fernet_decrypt(const struct ts_fernet_keys *k, const char *token, unsigned char **payload, size_t *len,
                      uint64_t *issued);

/* ---- Keystone token payloads ------------------------------------------------------ */
enum ts_token_scope { TS_SCOPE_UNSCOPED, TS_SCOPE_PROJECT, TS_SCOPE_DOMAIN, TS_SCOPE_SYSTEM };
struct ts_token_payload {
    char user_id[65];
    int methods;                  /* bitmask: 1 password, 2 token, 4 application_credential ... */
    enum ts_token_scope scope;
    char scope_id[65];            /* project or domain id; "all" for system */
    double expires_at;            /* seconds since epoch */
    char audit_ids[2][32];        /* [0] this token's audit id, [1] parent chain (may be empty) */
    char app_cred_id[65];         /* for application-credential tokens */
};
#define TS_METHOD_PASSWORD 1
#define TS_METHOD_TOKEN 2
#define TS_METHOD_APPCRED 4
#define TS_METHOD_TOTP 8
/* Encodes and encrypts; returns a malloc'd token or NULL. */
char *ts_token_issue(const struct ts_fernet_keys *k, const struct ts_token_payload *p);
/* Decrypts, decodes and checks expiry (-TS_EUNAUTH when bad or expired). */
int ts_token_parse(const struct ts_fernet_keys *k, const char *token, struct ts_token_payload *out, struct ts_err *err);
/* The same with the Fernet issue time (*issued, may be NULL) from the one decryption, and
 * expired tokens accepted when allow_expired (Keystone's ?allow_expired). */
int ts_token_decode(const struct ts_fernet_keys *k, const char *token, struct ts_token_payload *out,
                    uint64_t *issued, bool allow_expired, struct ts_err *err);
/* A fresh 22-char urlsafe audit id. */
void ts_token_audit_id(char out[32]);

/* ---- passwords ------------------------------------------------------------------ */
/* bcrypt $2b$ hash with cost rounds (4..31; Keystone default 12). malloc'd. */
char *ts_password_hash(const char *password, int rounds);
bool ts_password_verify(const char *password, const char *hash);

/* ---- base64 ------------------------------------------------------------------------ */
/* urlsafe (-_), without padding when pad is false. malloc'd. */
char *ts_b64url_encode(const unsigned char *in, size_t len, bool pad);
/* Accepts with or without padding; -TS_EINVAL on bad input. *out malloc'd. */
int ts_b64url_decode(const char *in, size_t len, unsigned char **out, size_t *outlen);
char *ts_b64_encode(const unsigned char *in, size_t len);
int ts_b64_decode(const char *in, size_t len, unsigned char **out, size_t *outlen);

#endif
