/* include/luahost/headers.h: security headers compiled once per policy load
 * and emitted per response, with a fresh CSP nonce.
 *
 * A header value may hold the placeholder {nonce} any number of times; it is
 * split at load, so that a response only joins the pieces around the nonce.
 * The HSTS header is kept apart: it is emitted only on HTTPS.
 * Thread safety: lh_nonce_generate on any thread (each thread draws from its
 * own buffer); a header set is built on one thread and then read-only, so
 * lh_header_set_emit may run on any number of threads at once. */
#ifndef LUAHOST_HEADERS_H
#define LUAHOST_HEADERS_H
#include <stddef.h>
#include "luahost/common.h"

#define LH_NONCE_LEN 22          /* base64url of 16 CSPRNG bytes, no padding */
#define LH_HEADER_VALUE_MAX 4096 /* bytes of an emitted value, nonces included */
#define LH_HEADER_NAME_MAX 128   /* bytes of a header name */
#define LH_HEADER_SET_MAX 64     /* headers in one set, HSTS not counted */
#define LH_CSP_MAX_DIRECTIVES 64 /* directives in one policy */

/* Characters of the base64url encoding of n bytes, without padding. */
#define LH_BASE64URL_LEN(n) (((n)*4 + 2) / 3)

/* -- Nonces ---------------------------------------------------------------- */

/* Writes a fresh nonce (LH_NONCE_LEN characters of [A-Za-z0-9_-]) and a NUL.
 * Draws 16 bytes from a per-thread 4 KiB buffer refilled from OpenSSL's
 * RAND_bytes; bytes are never handed out twice, also not in a forked child.
 * LH_ERR_IO if the CSPRNG fails (out is then an empty string). */
enum lh_status lh_nonce_generate(char out[LH_NONCE_LEN + 1]);

/* 1 when s is exactly LH_NONCE_LEN characters of [A-Za-z0-9_-]. */
int lh_nonce_valid(const char *s);

/* Encodes len bytes as base64url (RFC 4648 section 5) without padding into
 * out, which must hold LH_BASE64URL_LEN(len) + 1 bytes; adds a NUL. Returns
 * the number of characters written. */
size_t lh_base64url_encode(const void *in, size_t len, char *out);

/* -- Content-Security-Policy ----------------------------------------------- */

struct lh_csp_directive {
    const char *name;           /* "script-src": lower-case letters and '-' */
    const char *const *sources; /* "'self'", "'nonce'" (becomes 'nonce-{nonce}'), ... */
    size_t nsources;            /* 0 for a directive without sources */
};

/* Builds "default-src 'self'; script-src 'self' 'nonce-{nonce}'; ..." into
 * out (size bytes, NUL included), directives in the order given, sources
 * joined by one space. The source "'nonce'" becomes "'nonce-{nonce}'", ready
 * for lh_header_set_add. The caller owns d and out.
 * A source is printable ASCII without spaces, ';' or ','; a source holding a
 * quote is one quoted keyword ("'self'"); a bare keyword ("self", "none") is
 * refused because browsers would read it as a host name; "'none'" stands
 * alone. Returns LH_ERR_INVALID, with a message naming the directive, for no
 * directives or more than LH_CSP_MAX_DIRECTIVES, a bad or repeated name, or a
 * bad source; LH_ERR_NOMEM (message
 * "policy too long") when out is too small. On failure out is "". */
enum lh_status lh_csp_build(const struct lh_csp_directive *d, size_t n, char *out, size_t size,
                            char *err, size_t errlen);

/* -- Header sets ----------------------------------------------------------- */

struct lh_header_set; /* opaque; owns copies of every name and value */

/* Returns NULL when memory runs out. Free with lh_header_set_free (NULL is a
 * no-op). */
struct lh_header_set *lh_header_set_new(void);
void lh_header_set_free(struct lh_header_set *s);

/* Adds a header emitted on every response; value may hold {nonce}. Adding a
 * name already in the set (compared case-insensitively) replaces the earlier
 * value in place: the header keeps its first position and takes the new
 * spelling of the name. The set copies name and value.
 * Returns LH_ERR_INVALID with a message for a name that is not an RFC 9110
 * token (or is Strict-Transport-Security: use lh_header_set_hsts), an empty
 * value, a value with control characters other than tab (CR, LF, NUL...),
 * leading or trailing whitespace, or longer than LH_HEADER_VALUE_MAX once
 * each {nonce} is replaced, or a set already holding LH_HEADER_SET_MAX
 * headers; LH_ERR_NOMEM. The set is unchanged on failure. */
enum lh_status lh_header_set_add(struct lh_header_set *s, const char *name, const char *value,
                                 char *err, size_t errlen);

/* Sets (or replaces) the Strict-Transport-Security value, emitted only when
 * https. Same value rules and errors as lh_header_set_add. */
enum lh_status lh_header_set_hsts(struct lh_header_set *s, const char *value, char *err,
                                  size_t errlen);

/* Builds the CSP of lh_csp_build and adds it as Content-Security-Policy, or
 * Content-Security-Policy-Report-Only when report_only. A non-NULL
 * report_uri appends the directive "report-uri <report_uri>". Errors as
 * lh_csp_build and lh_header_set_add; the set is unchanged on failure. */
enum lh_status lh_header_set_csp(struct lh_header_set *s, const struct lh_csp_directive *d,
                                 size_t n, const char *report_uri, int report_only, char *err,
                                 size_t errlen);

/* 1 when some value (HSTS included) holds {nonce}. */
int lh_header_set_uses_nonce(const struct lh_header_set *s);

typedef void (*lh_header_fn)(void *arg, const char *name, const char *value);
/* Calls fn for each header in the order added (HSTS last, only if https),
 * with {nonce} replaced by nonce. Name and value are NUL-terminated and valid
 * only during the call (values with a nonce are assembled in a buffer on the
 * stack). nonce should come from lh_nonce_generate; NULL, or a string that
 * fails lh_nonce_valid, is replaced by "" so that it can neither inject a
 * header nor allow a script ("'nonce-'" matches nothing). A NULL set emits
 * nothing. */
void lh_header_set_emit(const struct lh_header_set *s, const char *nonce, int https,
                        lh_header_fn fn, void *arg);

/* -- Lua ------------------------------------------------------------------- */

struct lua_State;

/* The set held by the "luahost.headers.set" userdata at idx (from
 * require "luahost.headers" .compile), or NULL if the value there is not
 * one or was closed. The set lives as long as the userdata; for the server
 * to call lh_header_set_emit without a trip through Lua. Does not raise. */
struct lh_header_set *lh_headers_check_set(struct lua_State *L, int idx);

#endif
