/* include/luahost/headers.h: security headers compiled once per policy load
 * and emitted per response, with a fresh CSP nonce.
 *
 * A header value may hold the placeholder {nonce} any number of times; it is
 * split at load, so that a response only joins the pieces around the nonce.
 * The HSTS header is kept apart: it is emitted only on HTTPS.
 * Thread safety: lh_nonce_generate on any thread; a header set is built on
 * one thread and then read-only. */
#ifndef LUAHOST_HEADERS_H
#define LUAHOST_HEADERS_H
#include <stddef.h>
#include "luahost/common.h"

#define LH_NONCE_LEN 22 /* base64url of 16 CSPRNG bytes, no padding */
#define LH_HEADER_VALUE_MAX 4096

/* Writes a fresh nonce and a NUL. Draws from a per-thread buffer refilled
 * from OpenSSL's RAND_bytes. LH_ERR_IO if the CSPRNG fails. */
enum lh_status lh_nonce_generate(char out[LH_NONCE_LEN + 1]);

struct lh_csp_directive {
    const char *name;           /* "script-src": lower-case letters and '-' */
    const char *const *sources; /* "'self'", "'nonce'" (becomes 'nonce-{nonce}'), ... */
    size_t nsources;            /* 0 for a directive without sources */
};

/* Builds "default-src 'self'; script-src 'self' 'nonce-{nonce}'; ..." into
 * out (size bytes). LH_ERR_INVALID with a message naming the directive for a
 * bad name or a source holding ';', ',', quotes out of place, CR or LF;
 * LH_ERR_NOMEM (message "policy too long") when out is too small. */
enum lh_status lh_csp_build(const struct lh_csp_directive *d, size_t n, char *out, size_t size,
                            char *err, size_t errlen);

struct lh_header_set; /* opaque */

struct lh_header_set *lh_header_set_new(void);
void lh_header_set_free(struct lh_header_set *s);
/* Adds a header emitted on every response (value may hold {nonce}).
 * LH_ERR_INVALID with a message for a name that is not a token or a value
 * with CR, LF or NUL, or longer than LH_HEADER_VALUE_MAX. */
enum lh_status lh_header_set_add(struct lh_header_set *s, const char *name, const char *value,
                                 char *err, size_t errlen);
/* Sets the Strict-Transport-Security value, emitted only when https. */
enum lh_status lh_header_set_hsts(struct lh_header_set *s, const char *value, char *err,
                                  size_t errlen);
/* 1 when some value holds {nonce}. */
int lh_header_set_uses_nonce(const struct lh_header_set *s);

typedef void (*lh_header_fn)(void *arg, const char *name, const char *value);
/* Calls fn for each header in the order added (HSTS last, only if https),
 * with {nonce} replaced by nonce. Values are assembled in a buffer on the
 * stack and valid only during the call. */
void lh_header_set_emit(const struct lh_header_set *s, const char *nonce, int https,
                        lh_header_fn fn, void *arg);

#endif
