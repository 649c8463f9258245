/* src/ratelimit_lua.c: require "luahost.ratelimit". Check, call, convert.
 *
 *   ratelimit.parse(spec) -> { {limit = n, window = seconds}, ... } | nil, err
 *   ratelimit.new([options]) -> limiter | nil, err
 *       options: redis_host, redis_port, redis_db, redis_user, redis_password, timeout
 *       (seconds); without redis_host the limiter is local only.
 *   ratelimit.host() -> limiter | nil, err   the server's (shared) limiter
 *   ratelimit.ruleset(rules) -> ruleset
 *       rules: array of { slot = n, prefix = s, suffix = s, limit = n,
 *       window = seconds, counter = bool, hold = seconds }: a rule's key is
 *       prefix, the slot-th key given to check, then suffix. hold (counter
 *       rules only): once the count passes limit, the key is held that long
 *       (see include/luahost/ratelimit.h). Compiled once per policy load, so
 *       a check builds no tables and no strings.
 *   limiter:check(ruleset, key1, ...) -> allowed, retry_after, limit, remaining,
 *                                        reset, window, count, is_local, held,
 *                                        hold_started
 *       limit, remaining, reset and window describe the tightest limit rule
 *       (fewest remaining); count is the highest counter rule's count. held:
 *       seconds left of a hold that refuses this request (0: none; allowed
 *       is then the limits' own answer); hold_started: this request started
 *       it.
 *       Decided at once from a lease when one covers the rules; otherwise,
 *       inside a request, the coroutine waits for the batch; the thread goes on.
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
#define RULESET_MT "luahost.ratelimit.ruleset"
#define MAX_SLOTS 4

#define AFFIX_MAX (LH_RATELIMIT_KEY_MAX / 2) /* prefix and suffix together, NUL included */

struct ruleset {
    size_t n;
    int slots[LH_RATELIMIT_MAX_RULES];
    char prefixes[LH_RATELIMIT_MAX_RULES][AFFIX_MAX];
    struct lh_ratelimit_rule rules[LH_RATELIMIT_MAX_RULES]; /* key holds the suffix */
};

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

static int push_outcome(lua_State *L, const struct lh_ratelimit_check *c)
{
    const struct lh_ratelimit_rule *tight = NULL;
    const struct lh_ratelimit_outcome *tight_out = NULL;
    long retry = 0, count = 0;

    for (size_t r = 0; r < c->nrules; r++) {
        const struct lh_ratelimit_outcome *o = &c->out[r];
        if (c->rules[r].counter) {
            if (o->count > count)
                count = o->count;
            continue;
        }
        /* Allowed: the rule with the fewest left; refused: the one that
         * refused longest (every refused rule has none left). */
        int tighter = tight_out == NULL ||
                      (c->allowed ? o->remaining < tight_out->remaining
                                  : o->retry_after > tight_out->retry_after);
        if (o->retry_after > retry)
            retry = o->retry_after;
        if (tighter) {
            tight = &c->rules[r];
            tight_out = o;
        }
    }
    lua_pushboolean(L, c->allowed);
    lua_pushinteger(L, retry);
    lua_pushinteger(L, tight ? tight->rate.limit : 0);
    lua_pushinteger(L, tight_out ? tight_out->remaining : 0);
    lua_pushinteger(L, tight_out ? tight_out->reset : 0);
    lua_pushinteger(L, tight ? tight->rate.window : 0);
    lua_pushinteger(L, count);
    lua_pushboolean(L, c->local);
    lua_pushinteger(L, c->held);
    lua_pushboolean(L, c->hold_started);
    return 10;
}

static int check_push(struct lh_async *a, lua_State *L)
{
    return push_outcome(L, &((struct check_op *)a)->check);
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

static long field_integer(lua_State *L, int t, const char *name, int rule, long max)
{
    lua_getfield(L, t, name);
    lua_Number n = lua_tonumber(L, -1);
    /* Written so that NaN fails too. */
    if (lua_type(L, -1) != LUA_TNUMBER || !(n >= 1 && n <= (lua_Number)max) || n != (long)n)
        luaL_error(L, "rule %d: %s must be a whole number from 1 to %d", rule, name, (int)max);
    long v = (long)lua_tointeger(L, -1);
    lua_pop(L, 1);
    return v;
}

/* ratelimit.ruleset(rules) -> ruleset */
static int l_ruleset(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    size_t n = lua_objlen(L, 1);
    luaL_argcheck(L, n >= 1 && n <= LH_RATELIMIT_MAX_RULES, 1, "want 1 to 8 rules");
    struct ruleset *rs = lua_newuserdata(L, sizeof(*rs));
    memset(rs, 0, sizeof(*rs));
    luaL_getmetatable(L, RULESET_MT);
    lua_setmetatable(L, -2);
    for (size_t r = 0; r < n; r++) {
        int i = (int)r + 1;
        size_t len = 0;
        lua_rawgeti(L, 1, i);
        int t = lua_gettop(L);
        if (!lua_istable(L, t))
            return luaL_error(L, "rule %d: want a table", i);
        size_t plen = 0;
        rs->slots[r] = (int)field_integer(L, t, "slot", i, MAX_SLOTS);
        lua_getfield(L, t, "prefix");
        const char *prefix = lua_isnil(L, -1) ? "" : lua_tolstring(L, -1, &plen);
        lua_getfield(L, t, "suffix");
        const char *suffix = lua_isnil(L, -1) ? "" : lua_tolstring(L, -1, &len);
        if (prefix == NULL || suffix == NULL || plen + len >= AFFIX_MAX)
            return luaL_error(L, "rule %d: prefix and suffix must be short strings", i);
        memcpy(rs->prefixes[r], prefix, plen);
        memcpy(rs->rules[r].key, suffix, len);
        rs->rules[r].rate.limit = field_integer(L, t, "limit", i, LH_RATE_MAX_LIMIT);
        rs->rules[r].rate.window = field_integer(L, t, "window", i, 366L * 86400);
        lua_getfield(L, t, "counter");
        rs->rules[r].counter = lua_toboolean(L, -1);
        lua_getfield(L, t, "hold");
        int has_hold = !lua_isnil(L, -1);
        lua_pop(L, 1);
        if (has_hold && !rs->rules[r].counter)
            return luaL_error(L, "rule %d: hold is for counter rules", i);
        if (has_hold)
            rs->rules[r].hold = (int)field_integer(L, t, "hold", i, 366L * 86400);
        lua_settop(L, t - 1);
    }
    rs->n = n;
    return 1;
}

/* limiter:check(ruleset, key1, ...) -> allowed, retry_after, limit, remaining,
 *                                      reset, window, count, is_local, held,
 *                                      hold_started */
static int l_check(lua_State *L)
{
    struct limiter *lim = check_limiter(L);
    const struct ruleset *rs = luaL_checkudata(L, 2, RULESET_MT);
    const char *keys[MAX_SLOTS];
    size_t lens[MAX_SLOTS];
    struct lh_ratelimit_check check;

    for (int i = 0; i < MAX_SLOTS; i++)
        keys[i] = luaL_optlstring(L, i + 3, NULL, &lens[i]);
    for (size_t r = 0; r < rs->n; r++) {
        int slot = rs->slots[r] - 1;
        struct lh_ratelimit_rule *rule = &check.rules[r];
        size_t plen = strlen(rs->prefixes[r]), slen = strlen(rs->rules[r].key);
        *rule = rs->rules[r];
        if (keys[slot] == NULL || plen + lens[slot] + slen >= LH_RATELIMIT_KEY_MAX)
            return luaL_error(L, "key %d is missing or too long", slot + 1);
        memcpy(rule->key, rs->prefixes[r], plen);
        memcpy(rule->key + plen, keys[slot], lens[slot]);
        memcpy(rule->key + plen + lens[slot], rs->rules[r].key, slen + 1);
    }
    check.nrules = rs->n;
    if (lh_ratelimit_try_lease(lim->rl, &check))
        return push_outcome(L, &check);
    struct check_op *op = calloc(1, sizeof(*op));
    if (op == NULL)
        return luaL_error(L, "out of memory");
    op->check = check;
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
        lua_getfield(L, 1, "redis_user");
        o.redis_user = lua_tostring(L, -1);
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
    {"new", l_new}, {"host", l_host}, {"parse", l_parse}, {"ruleset", l_ruleset}, {NULL, NULL}};

int luaopen_luahost_ratelimit(lua_State *L)
{
    lh_lua_class(L, MT, methods);
    luaL_newmetatable(L, RULESET_MT);
    lua_pop(L, 1);
    luaL_newlib(L, functions);
    return 1;
}
