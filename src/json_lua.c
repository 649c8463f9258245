/* src/json_lua.c: require "luahost.json". Check, call, convert.
 *
 *   json.encode(value) -> string
 *       nil and json.null (the same value as cjson.null and db.null) encode
 *       as null; integers below 2^53 exactly, whatever their size (cjson keeps
 *       only 14 digits); a table with keys 1..n only is an array, an empty
 *       table is {} (as cjson), any other table an object with string or
 *       number keys. Raises for functions, NaN, infinities, other keys, and
 *       nesting deeper than 100 (cycles included).
 *   json.null
 */
#include <lauxlib.h>
#include <lua.h>

#include "lua_modules.h"
#include "luahost/json.h"

#define MAX_DEPTH 100
#define MAX_BYTES (64 * 1024 * 1024)
#define BUF_MT "luahost.json.buffer"

static void encode(lua_State *L, struct lh_json_buf *b, int idx, int depth);

/* n when the table at idx has exactly the keys 1..n (n > 0), else 0. */
static size_t array_length(lua_State *L, int idx)
{
    size_t n = lua_objlen(L, idx), count = 0;
    if (n == 0)
        return 0;
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        lua_pop(L, 1);
        count++;
        if (lua_type(L, -1) != LUA_TNUMBER) {
            lua_pop(L, 1);
            return 0;
        }
    }
    return count == n ? n : 0;
}

static void encode_table(lua_State *L, struct lh_json_buf *b, int idx, int depth)
{
    size_t n = array_length(L, idx);

    if (n > 0) {
        lh_json_raw(b, "[", 1);
        for (size_t i = 1; i <= n; i++) {
            if (i > 1)
                lh_json_raw(b, ",", 1);
            lua_rawgeti(L, idx, (int)i);
            encode(L, b, lua_gettop(L), depth + 1);
            lua_pop(L, 1);
        }
        lh_json_raw(b, "]", 1);
        return;
    }
    lh_json_raw(b, "{", 1);
    int first = 1;
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        size_t len;
        int kt = lua_type(L, -2);
        if (kt != LUA_TSTRING && kt != LUA_TNUMBER)
            luaL_error(L, "json: cannot encode a table key of type %s", lua_typename(L, kt));
        if (!first)
            lh_json_raw(b, ",", 1);
        first = 0;
        lua_pushvalue(L, -2); /* a copy: tostring on a number key would break lua_next */
        const char *key = lua_tolstring(L, -1, &len);
        lh_json_string(b, key, len);
        lua_pop(L, 1);
        lh_json_raw(b, ":", 1);
        encode(L, b, lua_gettop(L), depth + 1);
        lua_pop(L, 1);
    }
    lh_json_raw(b, "}", 1);
}

static void encode(lua_State *L, struct lh_json_buf *b, int idx, int depth)
{
    size_t len;

    if (depth > MAX_DEPTH)
        luaL_error(L, "json: nested deeper than %d (a cycle?)", MAX_DEPTH);
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        lh_json_raw(b, "null", 4);
        break;
    case LUA_TBOOLEAN:
        if (lua_toboolean(L, idx))
            lh_json_raw(b, "true", 4);
        else
            lh_json_raw(b, "false", 5);
        break;
    case LUA_TNUMBER:
        if (lh_json_number(b, lua_tonumber(L, idx)) != LH_OK)
            luaL_error(L, "json: cannot encode NaN or infinity");
        break;
    case LUA_TSTRING: {
        const char *s = lua_tolstring(L, idx, &len);
        lh_json_string(b, s, len);
        break;
    }
    case LUA_TTABLE:
        luaL_checkstack(L, 6, "json: nested too deeply");
        encode_table(L, b, idx, depth);
        break;
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == NULL) {
            lh_json_raw(b, "null", 4);
            break;
        }
        /* fall through */
    default:
        luaL_error(L, "json: cannot encode a %s", luaL_typename(L, idx));
    }
}

/* json.encode(value) -> string */
static int l_encode(lua_State *L)
{
    struct lh_json_buf *b = lua_touserdata(L, lua_upvalueindex(1));

    luaL_checkany(L, 1);
    lua_settop(L, 1);
    lh_json_buf_reset(b);
    encode(L, b, 1, 0);
    if (b->failed)
        return luaL_error(L, "json: out of memory or over %d bytes", MAX_BYTES);
    lua_pushlstring(L, b->data, b->len);
    if (b->cap > 1024 * 1024) { /* do not keep a huge buffer for every later call */
        lh_json_buf_free(b);
        lh_json_buf_init(b, MAX_BYTES);
    }
    return 1;
}

static int l_buffer_gc(lua_State *L)
{
    lh_json_buf_free(luaL_checkudata(L, 1, BUF_MT));
    return 0;
}

static const luaL_Reg buffer_methods[] = {{"__gc", l_buffer_gc}, {NULL, NULL}};

int luaopen_luahost_json(lua_State *L)
{
    lh_lua_class(L, BUF_MT, buffer_methods);
    lua_createtable(L, 0, 2);
    /* One buffer per state, reused by every call: states are single-threaded. */
    struct lh_json_buf *b = lua_newuserdata(L, sizeof(*b));
    lh_json_buf_init(b, MAX_BYTES);
    luaL_getmetatable(L, BUF_MT);
    lua_setmetatable(L, -2);
    lua_pushcclosure(L, l_encode, 1);
    lua_setfield(L, -2, "encode");
    lua_pushlightuserdata(L, NULL);
    lua_setfield(L, -2, "null");
    return 1;
}
