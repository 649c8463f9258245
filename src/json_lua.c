/* src/json_lua.c: require "luahost.json". Check, call, convert.
 *
 *   json.encode(value) -> string
 *       nil and json.null (the same value as cjson.null and db.null) encode
 *       as null; integers below 2^53 exactly, whatever their size (cjson keeps
 *       only 14 digits); a table with whole-number keys from 1 is an array
 *       (holes as null; a sparse one, as cjson decides, an object), an empty
 *       table is {} (as cjson) unless its metatable is json.array_mt, then [];
 *       a json.raw value is copied in verbatim; any other table is an object
 *       with string or number keys. Raises for functions, NaN, infinities,
 *       other keys, and nesting deeper than 100 (cycles included).
 *   json.decode(text) -> value | nil, err
 *       Strict RFC 8259 (see lh_json_parse). null becomes json.null, objects
 *       and arrays tables (a repeated key: the last wins), every number a
 *       Lua number, empty arrays get json.array_mt. err names the problem and
 *       its byte offset: "json: unexpected character 'x' at byte 12". Raises
 *       if text is not a string.
 *   json.raw(text) -> value
 *       JSON text for json.encode to embed as it is, e.g. a cached
 *       json.encode result. Not validated: only for trusted text. The value is
 *       a table {text} with a metatable of its own.
 *   json.is_raw(value) -> boolean
 *   json.raw_text(value) -> string | nil
 *       The text of a json.raw value; nil for anything else.
 *   json.array_mt
 *       The metatable marking a table as an array for json.encode.
 *   json.null
 */
#include <lauxlib.h>
#include <lua.h>
#include <limits.h>
#include <stdint.h>

#include "lua_modules.h"
#include "luahost/json.h"

#define BUF_MT "luahost.json.buffer"
#define BUFFER_KEPT (1024 * 1024) /* what the state's buffers keep for later calls */
#define RAW_MT "luahost.json.raw"
#define ARRAY_MT "luahost.json.array"

/* Which of our metatables a value carries. */
enum marker { PLAIN, RAW, ARRAY };

static void encode(lua_State *L, struct lh_json_buf *b, int idx, int depth);

/* -- Helpers ---- */

static enum marker marker(lua_State *L, int idx)
{
    enum marker m = PLAIN;

    if (!lua_getmetatable(L, idx))
        return PLAIN;
    luaL_getmetatable(L, RAW_MT);
    luaL_getmetatable(L, ARRAY_MT);
    if (lua_rawequal(L, -3, -2))
        m = RAW;
    else if (lua_rawequal(L, -3, -1))
        m = ARRAY;
    lua_pop(L, 3);
    return m;
}

/* A buffer owned by the state (freed by __gc) and reused by every call:
 * states are single-threaded. */
static void push_buffer(lua_State *L, size_t max)
{
    struct lh_json_buf *b = lua_newuserdata(L, sizeof(*b));

    lh_json_buf_init(b, max);
    luaL_getmetatable(L, BUF_MT);
    lua_setmetatable(L, -2);
}

/* -- Encoding ---- */

/* As lua-cjson decides (its defaults): a table whose keys are all whole
 * numbers from 1 is an array as long as its largest key, holes as null,
 * unless it is sparse: a largest key over 10 and over twice the count of
 * keys (that table is written as an object, where cjson would refuse it).
 * Returns that length, or 0 for an object. */
#define SPARSE_SAFE 10
#define SPARSE_RATIO 2
static size_t array_length(lua_State *L, int idx)
{
    size_t max = 0, count = 0;

    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        lua_pop(L, 1);
        lua_Number k = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : 0;
        if (!(k >= 1 && k <= (lua_Number)INT_MAX && k == (lua_Number)(int)k)) {
            lua_pop(L, 1);
            return 0;
        }
        count++;
        if ((size_t)k > max)
            max = (size_t)k;
    }
    if (max > SPARSE_SAFE && max > SPARSE_RATIO * count)
        return 0;
    return max;
}

static int is_empty(lua_State *L, int idx)
{
    lua_pushnil(L);
    if (lua_next(L, idx) == 0)
        return 1;
    lua_pop(L, 2);
    return 0;
}

static void encode_raw(lua_State *L, struct lh_json_buf *b, int idx)
{
    size_t len;

    lua_rawgeti(L, idx, 1);
    if (lua_type(L, -1) != LUA_TSTRING)
        luaL_error(L, "json: a json.raw value lost its text");
    const char *text = lua_tolstring(L, -1, &len);
    lh_json_raw(b, text, len);
    lua_pop(L, 1);
}

static void encode_table(lua_State *L, struct lh_json_buf *b, int idx, int depth, int array_mt)
{
    size_t n = array_length(L, idx);

    if (n > 0 || (array_mt && is_empty(L, idx))) {
        lh_json_char(b, '[');
        for (size_t i = 1; i <= n; i++) {
            if (i > 1)
                lh_json_char(b, ',');
            lua_rawgeti(L, idx, (int)i);
            encode(L, b, lua_gettop(L), depth + 1);
            lua_pop(L, 1);
        }
        lh_json_char(b, ']');
        return;
    }
    lh_json_char(b, '{');
    int first = 1;
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        size_t len;
        int kt = lua_type(L, -2);
        if (kt != LUA_TSTRING && kt != LUA_TNUMBER)
            luaL_error(L, "json: cannot encode a table key of type %s", lua_typename(L, kt));
        if (!first)
            lh_json_char(b, ',');
        first = 0;
        lua_pushvalue(L, -2); /* a copy: tostring on a number key would break lua_next */
        const char *key = lua_tolstring(L, -1, &len);
        lh_json_string(b, key, len);
        lua_pop(L, 1);
        lh_json_char(b, ':');
        encode(L, b, lua_gettop(L), depth + 1);
        lua_pop(L, 1);
    }
    lh_json_char(b, '}');
}

static void encode(lua_State *L, struct lh_json_buf *b, int idx, int depth)
{
    size_t len;

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
    case LUA_TTABLE: {
        if (depth >= LH_JSON_MAX_DEPTH) /* depth counts the tables around this one */
            luaL_error(L, "json: tables nested deeper than %d (a cycle?)", LH_JSON_MAX_DEPTH);
        luaL_checkstack(L, 6, "json: nested too deeply");
        enum marker m = marker(L, idx);
        if (m == RAW)
            encode_raw(L, b, idx);
        else
            encode_table(L, b, idx, depth, m == ARRAY);
        break;
    }
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

/* Encodes the value at idx into b, from empty; raises on failure. */
static void encode_value(lua_State *L, struct lh_json_buf *b, int idx)
{
    lh_json_buf_reset(b);
    encode(L, b, idx, 0);
    if (b->failed)
        luaL_error(L, "json: out of memory or over %d bytes", LH_JSON_ENCODE_MAX);
}

/* json.encode(value) -> string */
static int l_encode(lua_State *L)
{
    struct lh_json_buf *b = lua_touserdata(L, lua_upvalueindex(1));

    luaL_checkany(L, 1);
    lua_settop(L, 1);
    encode_value(L, b, 1);
    lua_pushlstring(L, b->data, b->len);
    lh_json_buf_shrink(b, BUFFER_KEPT);
    return 1;
}

int lh_json_lua_encode_into(lua_State *L)
{
    encode_value(L, lua_touserdata(L, 1), 2);
    return 0;
}

/* -- Decoding ---- */

/* The stack holds each open container and, in an object, the pending key;
 * a finished value is stored in the container below it. */
struct decoder {
    lua_State *L;
    int depth;
    int count[LH_JSON_MAX_DEPTH + 1]; /* per open container: elements so far, -1 for an object */
};

/* Moves the value on top into its container; a top-level value stays. */
static int add(struct decoder *d)
{
    if (d->depth == 0)
        return 0;
    int *count = &d->count[d->depth];
    if (*count < 0)
        lua_rawset(d->L, -3);
    else
        lua_rawseti(d->L, -2, ++*count);
    return 0;
}

static int on_null(void *arg)
{
    struct decoder *d = arg;
    lua_pushlightuserdata(d->L, NULL);
    return add(d);
}

static int on_boolean(void *arg, int value)
{
    struct decoder *d = arg;
    lua_pushboolean(d->L, value);
    return add(d);
}

static int on_number(void *arg, double value)
{
    struct decoder *d = arg;
    lua_pushnumber(d->L, value);
    return add(d);
}

static int on_string(void *arg, const char *s, size_t len)
{
    struct decoder *d = arg;
    lua_pushlstring(d->L, s, len);
    return add(d);
}

static int on_key(void *arg, const char *s, size_t len)
{
    struct decoder *d = arg;
    lua_pushlstring(d->L, s, len);
    return 0;
}

static int begin(struct decoder *d, int count)
{
    /* The table, its pending key and a value. Raising here leaks nothing: the
     * parser's scratch buffer belongs to the state. */
    luaL_checkstack(d->L, 3, "json: nested too deeply");
    lua_newtable(d->L);
    d->count[++d->depth] = count;
    return 0;
}

static int on_begin_array(void *arg)
{
    return begin(arg, 0);
}

static int on_begin_object(void *arg)
{
    return begin(arg, -1);
}

static int on_end_array(void *arg)
{
    struct decoder *d = arg;
    if (d->count[d->depth] == 0) { /* so that it encodes as [] again */
        luaL_getmetatable(d->L, ARRAY_MT);
        lua_setmetatable(d->L, -2);
    }
    d->depth--;
    return add(d);
}

static int on_end_object(void *arg)
{
    struct decoder *d = arg;
    d->depth--;
    return add(d);
}

static const struct lh_json_visitor decode_visitor = {
    .null = on_null,
    .boolean = on_boolean,
    .number = on_number,
    .string = on_string,
    .begin_array = on_begin_array,
    .end_array = on_end_array,
    .begin_object = on_begin_object,
    .key = on_key,
    .end_object = on_end_object,
};

/* json.decode(text) -> value | nil, err */
static int l_decode(lua_State *L)
{
    struct lh_json_buf *scratch = lua_touserdata(L, lua_upvalueindex(1));
    struct decoder d;
    char err[128];
    size_t len;

    luaL_checktype(L, 1, LUA_TSTRING);
    const char *text = lua_tolstring(L, 1, &len);
    d.L = L;
    d.depth = 0;
    enum lh_status st = lh_json_parse(text, len, &decode_visitor, &d, scratch, err, sizeof(err));
    lh_json_buf_shrink(scratch, BUFFER_KEPT);
    if (st == LH_ERR_NOMEM)
        return luaL_error(L, "%s", err);
    if (st != LH_OK) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    return 1;
}

/* -- Raw JSON values ---- */

/* json.raw(text) -> value */
static int l_raw(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TSTRING);
    lua_createtable(L, 1, 0);
    lua_pushvalue(L, 1);
    lua_rawseti(L, -2, 1);
    luaL_getmetatable(L, RAW_MT);
    lua_setmetatable(L, -2);
    return 1;
}

/* json.is_raw(value) -> boolean */
static int l_is_raw(lua_State *L)
{
    luaL_checkany(L, 1);
    lua_pushboolean(L, marker(L, 1) == RAW);
    return 1;
}

/* json.raw_text(value) -> string | nil */
static int l_raw_text(lua_State *L)
{
    luaL_checkany(L, 1);
    if (marker(L, 1) == RAW) {
        lua_rawgeti(L, 1, 1);
        if (lua_type(L, -1) == LUA_TSTRING)
            return 1;
    }
    lua_pushnil(L);
    return 1;
}

static int l_buffer_gc(lua_State *L)
{
    lh_json_buf_free(luaL_checkudata(L, 1, BUF_MT));
    return 0;
}

static const luaL_Reg buffer_methods[] = {{"__gc", l_buffer_gc}, {NULL, NULL}};

static const luaL_Reg functions[] = {
    {"raw", l_raw}, {"is_raw", l_is_raw}, {"raw_text", l_raw_text}, {NULL, NULL}};

int luaopen_luahost_json(lua_State *L)
{
    lh_lua_class(L, BUF_MT, buffer_methods);
    luaL_newmetatable(L, RAW_MT);
    lua_pop(L, 1);
    lua_createtable(L, 0, 7);
    luaL_setfuncs(L, functions, 0);
    push_buffer(L, LH_JSON_ENCODE_MAX);
    lua_pushcclosure(L, l_encode, 1);
    lua_setfield(L, -2, "encode");
    /* Decoded text is never longer than the input, which bounds the scratch. */
    push_buffer(L, SIZE_MAX);
    lua_pushcclosure(L, l_decode, 1);
    lua_setfield(L, -2, "decode");
    luaL_newmetatable(L, ARRAY_MT);
    lua_setfield(L, -2, "array_mt");
    lua_pushlightuserdata(L, NULL);
    lua_setfield(L, -2, "null");
    return 1;
}
