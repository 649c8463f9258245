/* src/url.c: service URL parsing. */
#include "luahost/url.h"

#include <stdlib.h>
#include <string.h>

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Copies [s, s+len) into out (LH_URL_PART_MAX bytes), decoding %XX. A decoded
 * NUL is refused: it would cut the value short. */
static enum lh_status decode(const char *s, size_t len, char *out, const char **err)
{
    size_t n = 0;

    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '%') {
            int hi = i + 2 < len ? hexval(s[i + 1]) : -1;
            int lo = i + 2 < len ? hexval(s[i + 2]) : -1;
            if (hi < 0 || lo < 0 || hi + lo == 0) {
                *err = "bad percent escape";
                return LH_ERR_INVALID;
            }
            c = (char)(hi * 16 + lo);
            i += 2;
        }
        if (n + 1 >= LH_URL_PART_MAX) {
            *err = "url part too long";
            return LH_ERR_INVALID;
        }
        out[n++] = c;
    }
    out[n] = '\0';
    return LH_OK;
}

static enum lh_status parse_port(const char *s, size_t len, int *port, const char **err)
{
    char buf[8];
    char *end;

    if (len == 0 || len >= sizeof(buf)) {
        *err = "bad port";
        return LH_ERR_INVALID;
    }
    memcpy(buf, s, len);
    buf[len] = '\0';
    long v = strtol(buf, &end, 10);
    if (*end != '\0' || buf[0] < '0' || buf[0] > '9' || v < 1 || v > 65535) {
        *err = "bad port";
        return LH_ERR_INVALID;
    }
    *port = (int)v;
    return LH_OK;
}

/* host[:port] or [v6]:port from [s, s+len). */
static enum lh_status parse_hostport(const char *s, size_t len, struct lh_url *out,
                                     const char **err)
{
    const char *host = s, *colon = NULL;
    size_t host_len;

    if (len > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', len);
        if (close == NULL) {
            *err = "unclosed '[' in host";
            return LH_ERR_INVALID;
        }
        host = s + 1;
        host_len = (size_t)(close - host);
        if (close + 1 < s + len) {
            if (close[1] != ':') {
                *err = "bad host";
                return LH_ERR_INVALID;
            }
            colon = close + 1;
        }
    } else {
        colon = memchr(s, ':', len);
        host_len = colon ? (size_t)(colon - s) : len;
    }
    if (host_len == 0) {
        *err = "missing host";
        return LH_ERR_INVALID;
    }
    if (host_len >= LH_URL_PART_MAX) {
        *err = "url part too long";
        return LH_ERR_INVALID;
    }
    memcpy(out->host, host, host_len);
    out->host[host_len] = '\0';
    if (colon)
        return parse_port(colon + 1, (size_t)(s + len - colon - 1), &out->port, err);
    return LH_OK;
}

enum lh_status lh_url_parse(const char *s, struct lh_url *out, const char **err)
{
    enum lh_status st;

    memset(out, 0, sizeof(*out));
    const char *sep = strstr(s, "://");
    if (sep == NULL || sep == s || (size_t)(sep - s) >= sizeof(out->scheme)) {
        *err = "missing scheme (want scheme://host)";
        return LH_ERR_INVALID;
    }
    for (const char *p = s; p < sep; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '+')) {
            *err = "bad scheme";
            return LH_ERR_INVALID;
        }
    }
    memcpy(out->scheme, s, (size_t)(sep - s));

    const char *auth = sep + 3;
    const char *slash = strchr(auth, '/');
    const char *auth_end = slash ? slash : auth + strlen(auth);
    /* The last '@' ends the userinfo: passwords may hold a raw '@'. */
    const char *at = NULL;
    for (const char *p = auth; p < auth_end; p++)
        if (*p == '@')
            at = p;
    if (at) {
        const char *colon = memchr(auth, ':', (size_t)(at - auth));
        size_t user_len = colon ? (size_t)(colon - auth) : (size_t)(at - auth);
        st = decode(auth, user_len, out->user, err);
        if (st != LH_OK)
            return st;
        if (colon) {
            st = decode(colon + 1, (size_t)(at - colon - 1), out->password, err);
            if (st != LH_OK)
                return st;
        }
        auth = at + 1;
    }
    /* Past the userinfo (whose password may hold them raw), '?' and '#'
     * would start a query or fragment, which nothing here would apply. */
    if (strpbrk(auth, "?#") != NULL) {
        *err = "query strings (?...) and fragments (#...) are not supported "
               "(a '?' or '#' in a name is written %3F or %23)";
        return LH_ERR_INVALID;
    }
    st = parse_hostport(auth, (size_t)(auth_end - auth), out, err);
    if (st != LH_OK)
        return st;
    if (slash)
        return decode(slash + 1, strlen(slash + 1), out->path, err);
    return LH_OK;
}
