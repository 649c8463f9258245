/* src/headers_lua.c: require "luahost.headers". Check, call, convert.
 *
 *   headers.nonce() -> nonce                       22 characters of [A-Za-z0-9_-]
 *   headers.csp(directives) -> policy | nil, err
 *   headers.compile(policy) -> set | nil, err
 *   set:uses_nonce() -> boolean
 *   set:emit([nonce], [https]) -> { {name, value}, ... }
 *   set:close()
 *
 * directives is an array of { name, { source, ... } } pairs, in order:
 *   { {"default-src", {"'self'"}}, {"script-src", {"'self'", "'nonce'"}},
 *     {"upgrade-insecure-requests", {}} }
 * policy is a table:
 *   headers = { {"X-Frame-Options", "DENY"}, ... }   array of pairs, in order
 *   hsts = "max-age=31536000; includeSubDomains"    or nil; sent on HTTPS only
 *   csp = directives                                or nil
 *   csp_report_only = true                          Content-Security-Policy-Report-Only
 *   report_uri = "/csp-report"                      or nil; adds "report-uri /csp-report"
 * A malformed policy or directive table (a wrong type, a bad name, value or
 * source) gives nil, err with err saying where ("headers[2]: ..."); only an
 * argument that is not a table at all raises.
 */
#include <stdarg.h>

#include <lauxlib.h>
#include <lua.h>

#include "lua_modules.h"
#include "luahost/headers.h"

#define MT "luahost.headers.set"
#define ERR_MAX 256

struct lh_header_set *lh_headers_check_set(lua_State *L, int idx)
{
    struct lh_header_set **ud = luaL_testudata(L, idx, MT);
    return ud != NULL ? *ud : NULL;
}

static struct lh_header_set *check_set(lua_State *L)
{
    struct lh_header_set **ud = luaL_checkudata(L, 1, MT);
    luaL_argcheck(L, *ud != NULL, 1, "header set is closed");
    return *ud;
}

static void push_nil_errv(lua_State *L, const char *fmt, va_list ap)
{
    lua_pushnil(L);
    lua_pushvfstring(L, fmt, ap);
}

/* Pushes nil and the formatted message; returns 2, for `return push_err(...)`
 * from a lua_CFunction. */
static int push_err(lua_State *L, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    push_nil_errv(L, fmt, ap);
    va_end(ap);
    return 2;
}

/* The same, returning 0: the failure result of a helper that reports nil, err. */
static int bad(lua_State *L, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    push_nil_errv(L, fmt, ap);
    va_end(ap);
    return 0;
}

/* headers.nonce() -> nonce */
static int l_nonce(lua_State *L)
{
    char nonce[LH_NONCE_LEN + 1];

    if (lh_nonce_generate(nonce) != LH_OK) /* the CSPRNG failed: nobody can handle it */
        return luaL_error(L, "headers.nonce: CSPRNG failed");
    lua_pushlstring(L, nonce, LH_NONCE_LEN);
    return 1;
}

/* -- Directive tables -------------------------------------------------------- */

/* Converts the directive array at idx (absolute) into C. The strings point
 * into the table, which the caller keeps on the stack (only raw access, so no
 * metamethod can hand out a string the table does not hold). The arrays live
 * in a userdata pushed on the stack. Returns 1 with *d and *n set, or 0 with
 * nil, err pushed (the caller returns 2). what names the table in messages. */
static int to_directives(lua_State *L, int idx, const char *what, const struct lh_csp_directive **d,
                         size_t *n)
{
    size_t nd = lua_objlen(L, idx), total = 0;
    struct lh_csp_directive *dirs;
    const char **srcs;

    if (nd > LH_CSP_MAX_DIRECTIVES)
        return bad(L, "%s: too many directives (max %d)", what, LH_CSP_MAX_DIRECTIVES);

    /* Pass 1: shapes and counts. */
    for (size_t i = 1; i <= nd; i++) {
        lua_rawgeti(L, idx, (int)i);
        if (!lua_istable(L, -1))
            return bad(L, "%s[%d]: expected {name, {sources...}}", what, (int)i);
        lua_rawgeti(L, -1, 1);
        lua_rawgeti(L, -2, 2);
        if (lua_type(L, -2) != LUA_TSTRING)
            return bad(L, "%s[%d]: directive name must be a string", what, (int)i);
        if (!lua_istable(L, -1))
            return bad(L, "%s[%d] (%s): sources must be a table", what, (int)i,
                       lua_tostring(L, -2));
        total += lua_objlen(L, -1);
        if (total > LH_HEADER_VALUE_MAX / 2) /* a CSP of that many sources cannot fit */
            return bad(L, "%s: too many sources", what);
        lua_pop(L, 3);
    }

    dirs = lua_newuserdata(L, nd * sizeof(*dirs) + total * sizeof(*srcs) + 1);
    srcs = (const char **)(dirs + nd);

    /* Pass 2: fill in. */
    for (size_t i = 1; i <= nd; i++) {
        size_t ns;
        lua_rawgeti(L, idx, (int)i);
        lua_rawgeti(L, -1, 1);
        lua_rawgeti(L, -2, 2);
        ns = lua_objlen(L, -1);
        dirs[i - 1].name = lua_tostring(L, -2);
        dirs[i - 1].sources = srcs;
        dirs[i - 1].nsources = ns;
        for (size_t j = 1; j <= ns; j++) {
            lua_rawgeti(L, -1, (int)j);
            if (lua_type(L, -1) != LUA_TSTRING)
                return bad(L, "%s[%d] (%s): source %d must be a string", what, (int)i,
                           dirs[i - 1].name, (int)j);
            *srcs++ = lua_tostring(L, -1);
            lua_pop(L, 1);
        }
        lua_pop(L, 3);
    }
    *d = dirs;
    *n = nd;
    return 1;
}

/* headers.csp(directives) -> policy | nil, err */
static int l_csp(lua_State *L)
{
    const struct lh_csp_directive *d;
    size_t n;
    char out[LH_HEADER_VALUE_MAX + 1];
    char err[ERR_MAX];

    luaL_checktype(L, 1, LUA_TTABLE);
    if (!to_directives(L, 1, "csp", &d, &n))
        return 2;
    if (lh_csp_build(d, n, out, sizeof(out), err, sizeof(err)) != LH_OK)
        return push_err(L, "%s", err);
    lua_pushstring(L, out);
    return 1;
}

/* -- Header sets ------------------------------------------------------------- */

/* headers.compile(policy) -> set | nil, err */
static int l_compile(lua_State *L)
{
    struct lh_header_set **ud, *s;
    char err[ERR_MAX];
    int report_only;

    luaL_checktype(L, 1, LUA_TTABLE);
    ud = lua_newuserdata(L, sizeof(*ud)); /* index 2 */
    *ud = NULL;
    luaL_setmetatable(L, MT); /* __gc armed before the set exists */
    *ud = lh_header_set_new();
    if (*ud == NULL)
        return luaL_error(L, "out of memory");
    s = *ud;

    lua_getfield(L, 1, "headers"); /* index 3 */
    if (!lua_isnil(L, 3)) {
        if (!lua_istable(L, 3))
            return push_err(L, "headers: expected an array of {name, value} pairs");
        for (int i = 1; i <= (int)lua_objlen(L, 3); i++) {
            lua_rawgeti(L, 3, i);
            if (!lua_istable(L, -1))
                return push_err(L, "headers[%d]: expected {name, value}", i);
            lua_rawgeti(L, -1, 1);
            lua_rawgeti(L, -2, 2);
            if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
                return push_err(L, "headers[%d]: name and value must be strings", i);
            if (lh_header_set_add(s, lua_tostring(L, -2), lua_tostring(L, -1), err, sizeof(err)) !=
                LH_OK)
                return push_err(L, "headers[%d]: %s", i, err);
            lua_pop(L, 3);
        }
    }
    lua_pop(L, 1);

    lua_getfield(L, 1, "hsts");
    if (!lua_isnil(L, -1)) {
        if (lua_type(L, -1) != LUA_TSTRING)
            return push_err(L, "hsts: expected a string");
        if (lh_header_set_hsts(s, lua_tostring(L, -1), err, sizeof(err)) != LH_OK)
            return push_err(L, "hsts: %s", err);
    }
    lua_pop(L, 1);

    lua_getfield(L, 1, "csp_report_only");
    report_only = lua_toboolean(L, -1);
    lua_pop(L, 1);

    lua_getfield(L, 1, "csp");        /* index 3 */
    lua_getfield(L, 1, "report_uri"); /* index 4 */
    if (!lua_isnil(L, 4) && lua_type(L, 4) != LUA_TSTRING)
        return push_err(L, "report_uri: expected a string");
    if (!lua_isnil(L, 3)) {
        const struct lh_csp_directive *d;
        size_t n;
        if (!lua_istable(L, 3))
            return push_err(L, "csp: expected an array of {name, {sources...}} pairs");
        if (!to_directives(L, 3, "csp", &d, &n))
            return 2;
        if (lh_header_set_csp(s, d, n, lua_tostring(L, 4), report_only, err, sizeof(err)) != LH_OK)
            return push_err(L, "csp: %s", err);
    } else if (!lua_isnil(L, 4)) {
        return push_err(L, "report_uri: needs a csp");
    }
    lua_settop(L, 2);
    return 1;
}

/* set:uses_nonce() -> boolean */
static int l_uses_nonce(lua_State *L)
{
    lua_pushboolean(L, lh_header_set_uses_nonce(check_set(L)));
    return 1;
}

static void push_pair(void *arg, const char *name, const char *value)
{
    lua_State *L = arg;

    lua_createtable(L, 2, 0);
    lua_pushstring(L, name);
    lua_rawseti(L, -2, 1);
    lua_pushstring(L, value);
    lua_rawseti(L, -2, 2);
    lua_rawseti(L, -2, (int)lua_objlen(L, -2) + 1);
}

/* set:emit([nonce], [https]) -> { {name, value}, ... } */
static int l_emit(lua_State *L)
{
    struct lh_header_set *s = check_set(L);
    const char *nonce = luaL_optstring(L, 2, NULL);
    int https = lua_toboolean(L, 3);

    luaL_argcheck(L, nonce == NULL || lh_nonce_valid(nonce), 2,
                  "nonce must be 22 characters of [A-Za-z0-9_-]");
    luaL_argcheck(L, nonce != NULL || !lh_header_set_uses_nonce(s), 2,
                  "nonce expected: the set uses {nonce}");
    lua_newtable(L);
    /* push_pair cannot raise except on out of memory, which unwinds cleanly:
     * emit holds no resource. */
    lh_header_set_emit(s, nonce, https, push_pair, L);
    return 1;
}

/* set:close(); also __gc, safe to call twice */
static int l_close(lua_State *L)
{
    struct lh_header_set **ud = luaL_checkudata(L, 1, MT);
    lh_header_set_free(*ud);
    *ud = NULL;
    return 0;
}

/* tostring(set) -> "luahost.headers.set (open): 0x..." */
static int l_tostring(lua_State *L)
{
    struct lh_header_set **ud = luaL_checkudata(L, 1, MT);
    lua_pushfstring(L, "%s (%s): %p", MT, *ud != NULL ? "open" : "closed", (void *)ud);
    return 1;
}

static const luaL_Reg methods[] = {
    {"uses_nonce", l_uses_nonce}, {"emit", l_emit}, {"close", l_close}, {"__gc", l_close},
    {"__tostring", l_tostring},   {NULL, NULL},
};
static const luaL_Reg functions[] = {
    {"nonce", l_nonce},
    {"csp", l_csp},
    {"compile", l_compile},
    {NULL, NULL},
};

int luaopen_luahost_headers(lua_State *L)
{
    lh_lua_class(L, MT, methods);
    luaL_newlib(L, functions);
    return 1;
}
