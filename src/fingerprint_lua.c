/* src/fingerprint_lua.c: require "luahost.fingerprint". Check, call, convert.
 *
 *   fingerprint.new(secret) -> fp | nil, err
 *   fingerprint.host() -> fp | nil, "no host fingerprint"
 *   fp:compute(ip, user_agent, accept_language, forwarded_for) -> hex
 *   fp:key(ip, user_agent, accept_language, forwarded_for) -> "rl:" .. hex
 *   fp:of_request(request_id) -> hex | nil, err
 *       the request in progress, from its client address and headers read
 *       straight from the connection (no req.headers table); nil when the
 *       request is not in progress or repeats one of the three headers.
 *   fp:close()
 *   fingerprint.hmac_sha256(key, msg) -> hex (64 characters)
 *   fingerprint.check_secret(secret) -> true | nil, why
 *   fingerprint.random_hex(nbytes) -> hex (nbytes 1..1024)
 *
 * Missing (nil) arguments of compute and key take the reference's defaults.
 * An IPv6 ip is taken as its /64 (netaddr.client_key), as of_request takes
 * the request's address: one fingerprint for a client's whole /64.
 */
#include <string.h>
#include <strings.h>

#include <lauxlib.h>
#include <lua.h>

#include "lua_modules.h"
#include "luahost/fingerprint.h"
#include "luahost/worker.h"

#define MT "luahost.fingerprint"
#define RANDOM_MAX 1024

struct ud {
    struct lh_fingerprint *fp;
    int borrowed; /* the host's object: never freed from Lua */
};

static struct lh_fingerprint *check(lua_State *L)
{
    struct ud *u = luaL_checkudata(L, 1, MT);
    luaL_argcheck(L, u->fp != NULL, 1, "fingerprint is closed");
    return u->fp;
}

static const char *opt_string(lua_State *L, int idx)
{
    return lua_isnoneornil(L, idx) ? NULL : luaL_checkstring(L, idx);
}

static void push_hex(lua_State *L, const unsigned char *bytes, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    luaL_Buffer b;

    luaL_buffinit(L, &b);
    for (size_t i = 0; i < n; i++) {
        luaL_addchar(&b, digits[bytes[i] >> 4]);
        luaL_addchar(&b, digits[bytes[i] & 0x0f]);
    }
    luaL_pushresult(&b);
}

static struct ud *new_ud(lua_State *L)
{
    struct ud *u = lua_newuserdata(L, sizeof(*u));

    u->fp = NULL;
    u->borrowed = 0;
    luaL_setmetatable(L, MT);
    return u;
}

/* fingerprint.new(secret) -> fp | nil, err */
static int l_new(lua_State *L)
{
    size_t len;
    const char *secret = luaL_checklstring(L, 1, &len);
    const char *err = NULL;
    struct ud *u = new_ud(L);

    u->fp = lh_fingerprint_new(secret, len, &err);
    if (u->fp == NULL) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    return 1;
}

/* fingerprint.host() -> fp | nil, "no host fingerprint" */
static int l_host(lua_State *L)
{
    const struct lh_host *h = lh_worker_host(L);
    struct ud *u;

    if (h == NULL || h->fingerprint == NULL) {
        lua_pushnil(L);
        lua_pushliteral(L, "no host fingerprint");
        return 2;
    }
    u = new_ud(L);
    u->fp = h->fingerprint;
    u->borrowed = 1;
    return 1;
}

/* Computes the fingerprint of arguments 2..5 into out; raises on failure. */
static void compute(lua_State *L, char out[LH_FINGERPRINT_HEX + 1])
{
    struct lh_fingerprint *fp = check(L);
    const char *ip = opt_string(L, 2);
    const char *ua = opt_string(L, 3);
    const char *lang = opt_string(L, 4);
    const char *xff = opt_string(L, 5);
    enum lh_status st = lh_fingerprint_compute(fp, ip, ua, lang, xff, out);

    if (st != LH_OK)
        luaL_error(L, "fingerprint: %s", lh_status_str(st));
}

/* fp:compute(ip, user_agent, accept_language, forwarded_for) -> hex */
static int l_compute(lua_State *L)
{
    char out[LH_FINGERPRINT_HEX + 1];

    compute(L, out);
    lua_pushlstring(L, out, LH_FINGERPRINT_HEX);
    return 1;
}

/* fp:key(ip, user_agent, accept_language, forwarded_for) -> "rl:" .. hex */
static int l_key(lua_State *L)
{
    char out[3 + LH_FINGERPRINT_HEX + 1] = "rl:";

    compute(L, out + 3);
    lua_pushlstring(L, out, 3 + LH_FINGERPRINT_HEX);
    return 1;
}

/* The request headers the fingerprint reads, the first of each, and whether
 * one came twice (req.headers joins repeats; compute from that instead). */
struct fingerprint_headers {
    const char *value[3];
    int repeated;
};

static const char *const FINGERPRINT_HEADERS[3] = {"User-Agent", "Accept-Language",
                                                   "X-Forwarded-For"};

static void pick_header(void *arg, const char *key, const char *value)
{
    struct fingerprint_headers *h = arg;
    for (int i = 0; i < 3; i++) {
        if (strcasecmp(key, FINGERPRINT_HEADERS[i]) == 0) {
            h->repeated |= h->value[i] != NULL;
            h->value[i] = value ? value : "";
        }
    }
}

/* fp:of_request(request_id) -> hex | nil, err */
static int l_of_request(lua_State *L)
{
    struct lh_fingerprint *fp = check(L);
    const char *id = luaL_checkstring(L, 2);
    const struct lh_request *req = lh_worker_current_request();
    struct fingerprint_headers h = {{NULL, NULL, NULL}, 0};
    char out[LH_FINGERPRINT_HEX + 1];

    if (req == NULL || strcmp(req->id, id) != 0) {
        lua_pushnil(L);
        lua_pushliteral(L, "request is not in progress");
        return 2;
    }
    req->each(req, LH_REQUEST_HEADERS, pick_header, &h);
    if (h.repeated) {
        lua_pushnil(L);
        lua_pushliteral(L, "a fingerprint header is repeated");
        return 2;
    }
    if (lh_fingerprint_compute_memo(fp, req->fingerprint_memo, req->client, h.value[0], h.value[1],
                                    h.value[2], out) != LH_OK)
        return luaL_error(L, "fingerprint failed");
    lua_pushlstring(L, out, LH_FINGERPRINT_HEX);
    return 1;
}

/* fp:close() (also __gc; safe to call twice; a borrowed object is only detached) */
static int l_close(lua_State *L)
{
    struct ud *u = luaL_checkudata(L, 1, MT);

    if (!u->borrowed)
        lh_fingerprint_free(u->fp);
    u->fp = NULL;
    return 0;
}

/* fingerprint.hmac_sha256(key, msg) -> hex (64 characters) */
static int l_hmac_sha256(lua_State *L)
{
    size_t key_len, msg_len;
    const char *key = luaL_checklstring(L, 1, &key_len);
    const char *msg = luaL_checklstring(L, 2, &msg_len);
    unsigned char md[32];
    enum lh_status st = lh_hmac_sha256(key, key_len, msg, msg_len, md);

    if (st != LH_OK)
        return luaL_error(L, "hmac_sha256: %s", lh_status_str(st));
    push_hex(L, md, sizeof(md));
    return 1;
}

/* fingerprint.check_secret(secret) -> true | nil, why */
static int l_check_secret(lua_State *L)
{
    const char *secret = opt_string(L, 1);
    const char *why = NULL;

    if (lh_fingerprint_check_secret(secret, &why) != LH_OK) {
        lua_pushnil(L);
        lua_pushstring(L, why);
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* fingerprint.random_hex(nbytes) -> hex (nbytes 1..1024) */
static int l_random_hex(lua_State *L)
{
    lua_Integer n = luaL_checkinteger(L, 1);
    unsigned char bytes[RANDOM_MAX];
    enum lh_status st;

    luaL_argcheck(L, n >= 1 && n <= RANDOM_MAX, 1, "must be 1..1024");
    st = lh_random_bytes(bytes, (size_t)n);
    if (st != LH_OK)
        return luaL_error(L, "random_hex: %s", lh_status_str(st));
    push_hex(L, bytes, (size_t)n);
    return 1;
}

static int l_tostring(lua_State *L)
{
    struct ud *u = luaL_checkudata(L, 1, MT);

    lua_pushfstring(L, "luahost.fingerprint (%s%s)", u->fp ? "open" : "closed",
                    u->borrowed ? ", host" : "");
    return 1;
}

static const luaL_Reg methods[] = {{"compute", l_compute},     {"key", l_key},
                                   {"of_request", l_of_request},
                                   {"close", l_close},         {"__gc", l_close},
                                   {"__tostring", l_tostring}, {NULL, NULL}};
static const luaL_Reg functions[] = {{"new", l_new},
                                     {"host", l_host},
                                     {"hmac_sha256", l_hmac_sha256},
                                     {"check_secret", l_check_secret},
                                     {"random_hex", l_random_hex},
                                     {NULL, NULL}};

int luaopen_luahost_fingerprint(lua_State *L)
{
    lh_lua_class(L, MT, methods);
    luaL_newlib(L, functions);
    return 1;
}
