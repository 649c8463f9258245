/* src/password.c: PBKDF2-HMAC-SHA256 password hashes. */
#include "luahost/password.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#define SALT_BYTES 16
#define KEY_BYTES 32
#define PREFIX "pbkdf2-sha256$"

static int derive(const char *password, size_t len, const unsigned char *salt, size_t salt_len,
                  unsigned iterations, unsigned char key[KEY_BYTES])
{
    return PKCS5_PBKDF2_HMAC(password, (int)len, salt, (int)salt_len, (int)iterations,
                             EVP_sha256(), KEY_BYTES, key);
}

enum lh_status lh_password_hash(const char *password, size_t len, unsigned iterations,
                                char out[LH_PASSWORD_HASH_MAX])
{
    unsigned char salt[SALT_BYTES], key[KEY_BYTES];
    char salt64[32], key64[64];

    if (iterations < 1000 || len > 4096)
        return LH_ERR_INVALID;
    if (RAND_bytes(salt, sizeof(salt)) != 1 || derive(password, len, salt, sizeof(salt),
                                                      iterations, key) != 1)
        return LH_ERR_IO;
    EVP_EncodeBlock((unsigned char *)salt64, salt, sizeof(salt));
    EVP_EncodeBlock((unsigned char *)key64, key, sizeof(key));
    OPENSSL_cleanse(key, sizeof(key));
    snprintf(out, LH_PASSWORD_HASH_MAX, PREFIX "%u$%s$%s", iterations, salt64, key64);
    return LH_OK;
}

/* Decodes base64 text of [s, s+len) into out (cap bytes); returns the byte
 * count or -1. */
static int decode64(const char *s, size_t len, unsigned char *out, size_t cap)
{
    unsigned char buf[128];
    if (len == 0 || len % 4 != 0 || len / 4 * 3 > sizeof(buf))
        return -1;
    int n = EVP_DecodeBlock(buf, (const unsigned char *)s, (int)len);
    if (n < 0)
        return -1;
    n -= (s[len - 1] == '=') + (s[len - 2] == '=');
    if ((size_t)n > cap)
        return -1;
    memcpy(out, buf, (size_t)n);
    return n;
}

enum lh_status lh_password_verify(const char *password, size_t len, const char *hash)
{
    unsigned char salt[64], want[KEY_BYTES], got[KEY_BYTES];
    char *end;

    if (strncmp(hash, PREFIX, sizeof(PREFIX) - 1) != 0)
        return LH_ERR_INVALID;
    const char *p = hash + sizeof(PREFIX) - 1;
    unsigned long iterations = strtoul(p, &end, 10);
    if (end == p || *end != '$' || iterations < 1000 || iterations > 100000000UL)
        return LH_ERR_INVALID;
    const char *salt64 = end + 1;
    const char *dollar = strchr(salt64, '$');
    if (dollar == NULL)
        return LH_ERR_INVALID;
    int salt_len = decode64(salt64, (size_t)(dollar - salt64), salt, sizeof(salt));
    int key_len = decode64(dollar + 1, strlen(dollar + 1), want, sizeof(want));
    if (salt_len <= 0 || key_len != KEY_BYTES || len > 4096)
        return LH_ERR_INVALID;
    if (derive(password, len, salt, (size_t)salt_len, (unsigned)iterations, got) != 1)
        return LH_ERR_INVALID;
    int same = CRYPTO_memcmp(got, want, KEY_BYTES) == 0;
    OPENSSL_cleanse(got, sizeof(got));
    return same ? LH_OK : LH_ERR_NOT_FOUND;
}

void lh_sha256_hex(const void *data, size_t len, char out[65])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[SHA256_DIGEST_LENGTH];

    SHA256(data, len, md);
    for (int i = 0; i < SHA256_DIGEST_LENGTH; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[64] = '\0';
}
