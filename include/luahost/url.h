/* include/luahost/url.h: service URLs, "mysql://user:password@host:port/database"
 * and "redis://[:password@]host:port/db".
 * Thread safety: pure functions. */
#ifndef LUAHOST_URL_H
#define LUAHOST_URL_H
#include "luahost/common.h"

#define LH_URL_PART_MAX 256

struct lh_url {
    char scheme[16];
    char user[LH_URL_PART_MAX];     /* percent-decoded; "" when absent */
    char password[LH_URL_PART_MAX]; /* percent-decoded; "" when absent */
    char host[LH_URL_PART_MAX];     /* brackets of an IPv6 literal removed */
    int port;                       /* 0 when absent */
    char path[LH_URL_PART_MAX];     /* after the first '/', percent-decoded */
};

/* Parses s into out. Returns LH_ERR_INVALID and sets *err (static text) when
 * s has no scheme or host, a part is too long, the port is not 1..65535, a
 * percent escape is bad, or a '?' or '#' follows the userinfo (a query or
 * fragment, which would otherwise end up in the host or path). */
enum lh_status lh_url_parse(const char *s, struct lh_url *out, const char **err);

#endif
