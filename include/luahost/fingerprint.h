/* include/luahost/fingerprint.h: HMAC-SHA256 client fingerprints, in the
 * reference design's format so that rate-limit keys stay compatible:
 * the first 16 hex characters of
 *   HMAC-SHA256(secret, "<ip>:<User-Agent>:<Accept-Language>:<X-Forwarded-For>")
 * with "unknown" for a missing User-Agent or Accept-Language and "" for a
 * missing X-Forwarded-For; the rate-limit key is "rl:<fingerprint>". <ip> is
 * the client key of lh_client_key: an IPv4 address as it is, an IPv6 address
 * as its /64 ("2001:db8:1:2::/64"), so that a client walking through the
 * addresses of its /64 keeps one fingerprint (and one bucket, one bot count).
 * Thread safety: immutable after lh_fingerprint_new; lh_fingerprint_compute
 * may run on any number of threads at once (each keeps a keyed HMAC context). */
#ifndef LUAHOST_FINGERPRINT_H
#define LUAHOST_FINGERPRINT_H
#include <stddef.h>
#include <stdint.h>
#include "luahost/common.h"

#define LH_FINGERPRINT_HEX 16
#define LH_SECRET_MIN_BYTES 32
#define LH_SECRET_MIN_DISTINCT 8 /* different bytes in it */
#define LH_SECRET_REFERENCE_DEFAULT "change-me-in-production"

struct lh_fingerprint; /* opaque; owns a copy of the key */

/* Returns NULL and sets *err (static text) for an empty key or no memory.
 * Free with lh_fingerprint_free (NULL is a no-op). */
struct lh_fingerprint *lh_fingerprint_new(const void *key, size_t len, const char **err);
void lh_fingerprint_free(struct lh_fingerprint *fp);

/* Writes the 16 hex characters and a NUL into out. ip is the client's
 * address (an IPv6 one is taken as its /64; text that is not an address is
 * taken as it is). NULL arguments take the reference's defaults: "127.0.0.1"
 * for ip (Flask-Limiter's fallback), "unknown" for the two headers, "" for
 * forwarded_for; an empty string stays empty. Returns LH_ERR_INVALID if fp
 * is NULL or OpenSSL fails. */
enum lh_status lh_fingerprint_compute(const struct lh_fingerprint *fp, const char *ip,
                                      const char *user_agent, const char *accept_language,
                                      const char *forwarded_for,
                                      char out[LH_FINGERPRINT_HEX + 1]);

/* The last fingerprint worked out on one client connection. Requests on a
 * keep-alive connection mostly repeat its address and headers, and the HMAC
 * is the dearest step of a rate-limited request: a memo answers a repeat
 * with a comparison. It belongs to one connection, so a request learns
 * nothing about other connections' clients. Zero it before first use. */
#define LH_FINGERPRINT_MEMO_MAX 256 /* longer messages are not remembered */
struct lh_fingerprint_memo {
    uint64_t generation; /* of the fingerprint object that filled it; 0: empty */
    size_t len;
    char message[LH_FINGERPRINT_MEMO_MAX]; /* "<client key>:<ua>:<lang>:<xff>" */
    char hex[LH_FINGERPRINT_HEX + 1];
};

/* lh_fingerprint_compute, answered from memo when the message is the one it
 * holds, and remembered in it otherwise. memo may be NULL. */
enum lh_status lh_fingerprint_compute_memo(const struct lh_fingerprint *fp,
                                           struct lh_fingerprint_memo *memo, const char *ip,
                                           const char *user_agent, const char *accept_language,
                                           const char *forwarded_for,
                                           char out[LH_FINGERPRINT_HEX + 1]);

/* One-shot HMAC-SHA256 (for tests and tools; the hot path uses compute). */
enum lh_status lh_hmac_sha256(const void *key, size_t key_len, const void *msg, size_t msg_len,
                              unsigned char out[32]);

/* The production rule for FINGERPRINT_SECRET: set, at least 32 bytes, with
 * at least 8 different bytes, and not the reference's default. Returns LH_OK, or LH_ERR_INVALID with *why set. */
enum lh_status lh_fingerprint_check_secret(const char *secret, const char **why);

/* Fills buf with len bytes from OpenSSL's CSPRNG. LH_ERR_IO if it fails. */
enum lh_status lh_random_bytes(void *buf, size_t len);

#endif
