/* include/luahost/cookie.h: the Cookie request header (RFC 6265 section
 * 5.4): "name=value" pairs separated by ";", spaces around them ignored, a
 * value in double quotes unquoted. Pairs without "=" or with an empty name
 * are skipped, as browsers do.
 * Thread safety: pure functions. */
#ifndef LUAHOST_COOKIE_H
#define LUAHOST_COOKIE_H
#include <stddef.h>

/* Called for each pair, in order; name and value are not NUL-terminated.
 * Return non-zero to stop. */
typedef int (*lh_cookie_fn)(void *arg, const char *name, size_t name_len, const char *value,
                            size_t value_len);

void lh_cookie_each(const char *header, size_t len, lh_cookie_fn fn, void *arg);

#endif
