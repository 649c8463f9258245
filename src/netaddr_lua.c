/* src/netaddr_lua.c: require "luahost.netaddr". Check, call, convert.
 *
 *   netaddr.cidr_set(list) -> set | nil, err     list: "10.0.0.0/8, ::1" or {"10.0.0.0/8", ...}
 *   netaddr.host_trusted() -> set | nil          the server's trusted proxies (borrowed)
 *   set:contains(ip) -> boolean
 *   set:count() -> n
 *   set:close()
 *   netaddr.client_ip(set_or_nil, peer, forwarded_for, forwarded) -> ip | nil, err
 *   netaddr.client_key(ip) -> key | nil, err   (per-address limits: an IPv6 address's /64)
 *   netaddr.ipv6_network(ip, bits) -> network | nil, err
 *       "2001:db8:1::/48" for bits 48 (per-network limits); nil, "not an IPv6
 *       address" for an IPv4 (or IPv4-mapped) address or junk. bits: 1..128.
 */
#include <lauxlib.h>
#include <lua.h>

#include "lua_modules.h"
#include "luahost/netaddr.h"
#include "luahost/worker.h"

#define MT "luahost.netaddr.set"

struct ud {
    struct lh_cidr_set *set;
    int borrowed; /* the host's set: never freed from Lua */
};

static struct lh_cidr_set *check_set(lua_State *L, int idx)
{
    struct ud *u = luaL_checkudata(L, idx, MT);
    luaL_argcheck(L, u->set != NULL, idx, "set is closed");
    return u->set;
}

static const char *opt_string(lua_State *L, int idx)
{
    return lua_isnoneornil(L, idx) ? NULL : luaL_checkstring(L, idx);
}

static struct ud *new_ud(lua_State *L)
{
    struct ud *u = lua_newuserdata(L, sizeof(*u));

    u->set = NULL;
    u->borrowed = 0;
    luaL_setmetatable(L, MT);
    return u;
}

/* netaddr.cidr_set(list) -> set | nil, err */
static int l_cidr_set(lua_State *L)
{
    int is_table = lua_istable(L, 1);
    char err[160];
    struct ud *u;

    luaL_argcheck(L, is_table || lua_type(L, 1) == LUA_TSTRING, 1,
                  "string or table of strings expected");
    if (is_table) {
        for (size_t i = 1; i <= lua_objlen(L, 1); i++) {
            lua_rawgeti(L, 1, (int)i);
            if (lua_type(L, -1) != LUA_TSTRING)
                return luaL_argerror(L, 1, "table must hold strings only");
            lua_pop(L, 1);
        }
    }
    u = new_ud(L);
    u->set = lh_cidr_set_new();
    if (u->set == NULL)
        return luaL_error(L, "out of memory");
    if (!is_table) {
        if (lh_cidr_set_add_list(u->set, lua_tostring(L, 1), err, sizeof(err)) != LH_OK)
            goto fail;
        return 1;
    }
    for (size_t i = 1; i <= lua_objlen(L, 1); i++) {
        lua_rawgeti(L, 1, (int)i);
        enum lh_status st = lh_cidr_set_add_list(u->set, lua_tostring(L, -1), err, sizeof(err));
        lua_pop(L, 1);
        if (st != LH_OK)
            goto fail;
    }
    return 1;
fail:
    lh_cidr_set_free(u->set);
    u->set = NULL;
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
}

/* netaddr.host_trusted() -> set | nil */
static int l_host_trusted(lua_State *L)
{
    const struct lh_host *h = lh_worker_host(L);
    struct ud *u;

    if (h == NULL || h->trusted_proxies == NULL) {
        lua_pushnil(L);
        return 1;
    }
    u = new_ud(L);
    u->set = h->trusted_proxies;
    u->borrowed = 1;
    return 1;
}

/* set:contains(ip) -> boolean */
static int l_contains(lua_State *L)
{
    struct lh_cidr_set *s = check_set(L, 1);
    const char *ip = luaL_checkstring(L, 2);

    lua_pushboolean(L, lh_cidr_set_contains(s, ip));
    return 1;
}

/* set:count() -> n */
static int l_count(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)lh_cidr_set_count(check_set(L, 1)));
    return 1;
}

/* set:close() (also __gc; safe to call twice; a borrowed set is only detached) */
static int l_close(lua_State *L)
{
    struct ud *u = luaL_checkudata(L, 1, MT);

    if (!u->borrowed)
        lh_cidr_set_free(u->set);
    u->set = NULL;
    return 0;
}

static int l_tostring(lua_State *L)
{
    struct ud *u = luaL_checkudata(L, 1, MT);

    if (u->set == NULL)
        lua_pushliteral(L, "luahost.netaddr.set (closed)");
    else
        lua_pushfstring(L, "luahost.netaddr.set (%d entries%s)", (int)lh_cidr_set_count(u->set),
                        u->borrowed ? ", host" : "");
    return 1;
}

/* netaddr.client_ip(set_or_nil, peer, forwarded_for, forwarded) -> ip | nil, err */
static int l_client_ip(lua_State *L)
{
    const struct lh_cidr_set *trusted = lua_isnoneornil(L, 1) ? NULL : check_set(L, 1);
    const char *peer = luaL_checkstring(L, 2);
    const char *xff = opt_string(L, 3);
    const char *fwd = opt_string(L, 4);
    char out[LH_IP_MAX];

    if (lh_client_ip(trusted, peer, xff, fwd, out) != LH_OK) {
        lua_pushnil(L);
        lua_pushliteral(L, "bad peer address");
        return 2;
    }
    lua_pushstring(L, out);
    return 1;
}

/* netaddr.client_key(ip) -> key | nil, err   (an IPv6 address's /64) */
static int l_client_key(lua_State *L)
{
    char out[LH_CLIENT_KEY_MAX];

    if (lh_client_key(luaL_checkstring(L, 1), out) != LH_OK) {
        lua_pushnil(L);
        lua_pushliteral(L, "not an address");
        return 2;
    }
    lua_pushstring(L, out);
    return 1;
}

/* netaddr.ipv6_network(ip, bits) -> network | nil, err */
static int l_ipv6_network(lua_State *L)
{
    const char *ip = luaL_checkstring(L, 1);
    lua_Integer bits = luaL_checkinteger(L, 2);
    char out[LH_CLIENT_KEY_MAX];

    luaL_argcheck(L, bits >= 1 && bits <= 128, 2, "must be 1..128");
    if (lh_ipv6_network(ip, (unsigned)bits, out) != LH_OK) {
        lua_pushnil(L);
        lua_pushliteral(L, "not an IPv6 address");
        return 2;
    }
    lua_pushstring(L, out);
    return 1;
}

static const luaL_Reg methods[] = {{"contains", l_contains},   {"count", l_count},
                                   {"close", l_close},         {"__gc", l_close},
                                   {"__tostring", l_tostring}, {NULL, NULL}};
static const luaL_Reg functions[] = {
    {"cidr_set", l_cidr_set},     {"host_trusted", l_host_trusted}, {"client_ip", l_client_ip},
    {"client_key", l_client_key}, {"ipv6_network", l_ipv6_network}, {NULL, NULL}};

int luaopen_luahost_netaddr(lua_State *L)
{
    lh_lua_class(L, MT, methods);
    luaL_newlib(L, functions);
    return 1;
}
