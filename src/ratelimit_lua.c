/* src/ratelimit_lua.c: require "luahost.ratelimit". Check, call, convert.
 *
 *   ratelimit.parse(spec) -> { {limit = n, window = seconds}, ... } | nil, err
 *   ratelimit.new([options]) -> limiter | nil, err
 *       options: redis_host, redis_port, redis_db, redis_password, timeout
 *       (seconds); without redis_host the limiter is local only.
 *   ratelimit.host() -> limiter | nil, err   the server's (shared) limiter
 *   limiter:check(rules) -> result
 *       rules: array of { key = s, limit = n, window = seconds, counter = bool }
 *       result: { allowed = bool, ["local"] = bool, retry_after = seconds,
 *                 [i] = { limit, window, remaining, reset, retry_after, count } }
 *       Inside a request the coroutine waits for the batch; the thread goes on.
 *   limiter:redis_up() -> boolean
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "lua_modules.h"
#include "luahost/ratelimit.h"
#include "luahost/worker.h"

#define MT "luahost.ratelimit"

struct limiter {
    struct lh_ratelimit *rl;
    int borrowed; /* the host's: never freed here */
};

struct check_op {
    struct lh_async a; /* first: callbacks cast back */
    struct lh_ratelimit *rl;
    struct lh_ratelimit_check check;
};

static void check_done(struct lh_task *t)
{
    struct check_op *op = (struct check_op *)((char *)t - offsetof(struct check_op, check));
    op->a.task.done(&op->a.task);
}

static void check_start(struct lh_async *a)
{
    struct check_op *op = (struct check_op *)a;
    op->check.task.done = check_done;
    lh_ratelimit_submit(op->rl, &op->check);
}

static int check_push(struct lh_async *a, lua_State *L)
{
    struct check_op *op = (struct check_op *)a;
    const struct lh_ratelimit_check *c = &op->check;
    long retry = 0;

    lua_createtable(L, (int)c->nrules, 3);
    for (size_t r = 0; r < c->nrules; r++) {
        const struct lh_ratelimit_outcome *o = &c->out[r];
        lua_createtable(L, 0, 6);
        lua_pushinteger(L, c->rules[r].rate.limit);
        lua_setfield(L, -2, "limit");
        lua_pushinteger(L, c->rules[r].rate.window);
        lua_setfield(L, -2, "window");
        lua_pushinteger(L, o->remaining);
        lua_setfield(L, -2, "remaining");
        lua_pushinteger(L, o->reset);
        lua_setfield(L, -2, "reset");
        lua_pushinteger(L, o->retry_after);
        lua_setfield(L, -2, "retry_after");
        lua_pushinteger(L, o->count);
        lua_setfield(L, -2, "count");
        lua_rawseti(L, -2, (int)r + 1);
        if (o->retry_after > retry)
            retry = o->retry_after;
    }
    lua_pushboolean(L, c->allowed);
    lua_setfield(L, -2, "allowed");
    lua_pushboolean(L, c->local);
    lua_setfield(L, -2, "local");
    lua_pushinteger(L, retry);
    lua_setfield(L, -2, "retry_after");
    return 1;
}

static void check_free(struct lh_async *a)
{
    free(a);
}

static struct limiter *check_limiter(lua_State *L)
{
    struct limiter *lim = luaL_checkudata(L, 1, MT);
    luaL_argcheck(L, lim->rl != NULL, 1, "limiter is closed");
    return lim;
}

static long field_integer(lua_State *L, int t, const char *name, int rule)
{
    lua_getfield(L, t, name);
    if (lua_type(L, -1) != LUA_TNUMBER || lua_tonumber(L, -1) < 1)
        luaL_error(L, "rule %d: %s must be a positive number", rule, name);
    long v = (long)lua_tointeger(L, -1);
    lua_pop(L, 1);
    return v;
}

/* Reads rule i (1-based) of the table at index 2 into rule; raises on misuse. */
static void read_rule(lua_State *L, int i, struct lh_ratelimit_rule *rule)
{
    size_t len;

    lua_rawgeti(L, 2, i);
    int t = lua_gettop(L);
    if (!lua_istable(L, t))
        luaL_error(L, "rule %d: want a table", i);
    lua_getfield(L, t, "key");
    const char *key = lua_tolstring(L, -1, &len);
    if (lua_type(L, -1) != LUA_TSTRING || len == 0 || len >= LH_RATELIMIT_KEY_MAX)
        luaL_error(L, "rule %d: key must be a string of 1 to %d bytes", i,
                   LH_RATELIMIT_KEY_MAX - 1);
    memcpy(rule->key, key, len);
    rule->rate.limit = field_integer(L, t, "limit", i);
    rule->rate.window = field_integer(L, t, "window", i);
    lua_getfield(L, t, "counter");
    rule->counter = lua_toboolean(L, -1);
    lua_settop(L, t - 1);
}

/* limiter:check(rules) -> result */
static int l_check(lua_State *L)
{
    struct limiter *lim = check_limiter(L);
    struct lh_ratelimit_rule rules[LH_RATELIMIT_MAX_RULES];

    luaL_checktype(L, 2, LUA_TTABLE);
    size_t n = lua_objlen(L, 2);
    luaL_argcheck(L, n >= 1 && n <= LH_RATELIMIT_MAX_RULES, 2, "want 1 to 8 rules");
    memset(rules, 0, sizeof(rules));
    for (size_t r = 0; r < n; r++)
        read_rule(L, (int)r + 1, &rules[r]);

    struct check_op *op = calloc(1, sizeof(*op));
    if (op == NULL)
        return luaL_error(L, "out of memory");
    memcpy(op->check.rules, rules, n * sizeof(rules[0]));
    op->check.nrules = n;
    op->rl = lim->rl;
    op->a.start = check_start;
    op->a.push = check_push;
    op->a.free = check_free;
    return lh_worker_await(L, &op->a);
}

/* limiter:redis_up() -> boolean */
static int l_redis_up(lua_State *L)
{
    lua_pushboolean(L, lh_ratelimit_redis_up(check_limiter(L)->rl));
    return 1;
}

static int l_close(lua_State *L)
{
    struct limiter *lim = luaL_checkudata(L, 1, MT);
    if (!lim->borrowed)
        lh_ratelimit_free(lim->rl);
    lim->rl = NULL;
    return 0;
}

static struct limiter *new_limiter(lua_State *L)
{
    struct limiter *lim = lua_newuserdata(L, sizeof(*lim));
    memset(lim, 0, sizeof(*lim));
    luaL_getmetatable(L, MT);
    lua_setmetatable(L, -2);
    return lim;
}

/* ratelimit.new([options]) -> limiter | nil, err */
static int l_new(lua_State *L)
{
    struct lh_ratelimit_options o = {0};
    const char *err;

    if (!lua_isnoneornil(L, 1)) {
        luaL_checktype(L, 1, LUA_TTABLE);
        lua_getfield(L, 1, "redis_host");
        o.redis_host = lua_tostring(L, -1);
        lua_getfield(L, 1, "redis_port");
        o.redis_port = (int)lua_tointeger(L, -1);
        lua_getfield(L, 1, "redis_db");
        o.redis_db = (int)lua_tointeger(L, -1);
        lua_getfield(L, 1, "redis_password");
        o.redis_password = lua_tostring(L, -1);
        lua_getfield(L, 1, "timeout");
        o.timeout = lua_tonumber(L, -1);
        /* the strings stay on the stack until the limiter has copied them */
    }
    struct limiter *lim = new_limiter(L);
    lim->rl = lh_ratelimit_new(&o, &err);
    if (lim->rl == NULL) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    return 1;
}

/* ratelimit.host() -> limiter | nil, err */
static int l_host(lua_State *L)
{
    const struct lh_host *host = lh_worker_host(L);
    if (host == NULL || host->ratelimit == NULL) {
        lua_pushnil(L);
        lua_pushliteral(L, "no host rate limiter");
        return 2;
    }
    struct limiter *lim = new_limiter(L);
    lim->rl = host->ratelimit;
    lim->borrowed = 1;
    return 1;
}

/* ratelimit.parse(spec) -> { {limit = n, window = seconds}, ... } | nil, err */
static int l_parse(lua_State *L)
{
    const char *spec = luaL_checkstring(L, 1);
    struct lh_rate rates[LH_RATELIMIT_MAX_LIMITS];
    size_t n;
    char err[200];

    if (lh_rate_parse(spec, rates, LH_RATELIMIT_MAX_LIMITS, &n, err, sizeof(err)) != LH_OK) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        lua_createtable(L, 0, 2);
        lua_pushinteger(L, rates[i].limit);
        lua_setfield(L, -2, "limit");
        lua_pushinteger(L, rates[i].window);
        lua_setfield(L, -2, "window");
        lua_rawseti(L, -2, (int)i + 1);
    }
    return 1;
}

static const luaL_Reg methods[] = {{"check", l_check},
                                   {"redis_up", l_redis_up},
                                   {"close", l_close},
                                   {"__gc", l_close},
                                   {NULL, NULL}};
static const luaL_Reg functions[] = {
    {"new", l_new}, {"host", l_host}, {"parse", l_parse}, {NULL, NULL}};

int luaopen_luahost_ratelimit(lua_State *L)
{
    if (luaL_newmetatable(L, MT)) {
        luaL_setfuncs(L, methods, 0);
        lua_pushvalue(L, -1);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
    luaL_newlib(L, functions);
    return 1;
}
