/* crypto.h: secrets handling with OpenSSL: random tokens, hashing of passwords and tokens,
 * and authenticated encryption of secrets at rest. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include "drover/macro.h"

/* A random URL-safe token of `bytes` random bytes (base64url, no padding); caller frees. */
int crypto_random_token(size_t bytes, char **ret);
/* SHA-256 of data as 64 lowercase hex chars + NUL. */
void crypto_sha256_hex(const void *data, size_t n, char out[static 65]);

/* Password hashing in Django's format so AWX users recognise it:
 * "pbkdf2_sha256$<iterations>$<salt>$<base64 hash>". */
int crypto_password_hash(const char *password, char **ret);
/* 1 if it matches, 0 if not, negative errno on a malformed hash. Constant time. */
int crypto_password_verify(const char *password, const char *hash);

/* Secrets at rest: AES-256-GCM with a 32-byte key kept in a 0600 file (created if missing).
 * The ciphertext is "$encrypted$AESGCM$<base64(nonce|ciphertext|tag)>". */
typedef struct crypto_key { uint8_t key[32]; } crypto_key;
int crypto_key_load_or_create(const char *path, crypto_key *ret);
int crypto_encrypt(const crypto_key *k, const char *plaintext, char **ret);
int crypto_decrypt(const crypto_key *k, const char *ciphertext, char **ret);
