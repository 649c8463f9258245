/* include/luahost/password.h: password hashing with PBKDF2-HMAC-SHA256
 * (OpenSSL), in the self-describing form
 *   pbkdf2-sha256$<iterations>$<salt, base64>$<key, base64>
 * Thread safety: pure functions; each call may run on any thread. Hashing is
 * slow on purpose (a few hundred milliseconds at the default cost). */
#ifndef LUAHOST_PASSWORD_H
#define LUAHOST_PASSWORD_H
#include <stddef.h>
#include "luahost/common.h"

/* OWASP's current recommendation for PBKDF2-HMAC-SHA256. */
#define LH_PASSWORD_ITERATIONS 600000
#define LH_PASSWORD_HASH_MAX 128

/* Hashes password with a fresh 16-byte salt into out. LH_ERR_INVALID for
 * iterations under 1000, LH_ERR_IO if OpenSSL fails. */
enum lh_status lh_password_hash(const char *password, size_t len, unsigned iterations,
                                char out[LH_PASSWORD_HASH_MAX]);
/* LH_OK when password matches hash (compared in constant time),
 * LH_ERR_NOT_FOUND when it does not, LH_ERR_INVALID for a malformed hash. */
enum lh_status lh_password_verify(const char *password, size_t len, const char *hash);
/* SHA-256 of data as 64 lower-case hex characters and a NUL. */
void lh_sha256_hex(const void *data, size_t len, char out[65]);

#endif
