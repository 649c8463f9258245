/* src/cache_lua.c: require "luahost.cache_core", the C half of luahost.cache
 * (lua/luahost/cache.lua builds the two-level cache on it). Check, call,
 * convert. Values are strings here; luahost.cache does the JSON.
 *
 *   core.get(key, accept_stale) -> text, "fresh" | "stale"   |   nil
 *   core.contains(key) -> boolean   a fresh entry; not counted, LRU untouched
 *   core.set(key, text, ttl, stale, generation?) -> true | nil, err
 *       with generation (core.generation() before the value was read or
 *       computed): nothing stored if something was deleted since
 *   core.generation() -> number
 *   core.delete(key) -> boolean
 *   core.invalidate_pattern(pattern) -> count
 *   core.match(pattern, key) -> boolean       Redis-style glob
 *   core.flight(key, wait) -> leader | false, err, text, kind
 *       The first caller for key gets a leader object and must call
 *       leader:finish(err, text, kind) (its __gc finishes an abandoned one
 *       with an error). Later callers get false at once unless wait; with
 *       wait they get, once the leader finished, false, the leader's error
 *       or nil, a copy of its text or nil, and its error's kind or nil.
 *   core.count(name)            a counter of lh_cache_counter_name
 *   core.stats() -> table
 *   core.message(kind, key) -> text   ("k" for a key, "p" for a pattern)
 *   core.channel                the Redis channel for those messages
 *
 * The cache is the server's (struct lh_host); outside a server (busted) it
 * is one made for the process. */
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "lua_modules.h"
#include "luahost/cache.h"
#include "luahost/worker.h"

#define LEADER_MT "luahost.cache.leader"

static struct lh_cache *process_cache;
static pthread_once_t process_cache_once = PTHREAD_ONCE_INIT;

static void make_process_cache(void)
{
    process_cache = lh_cache_new(NULL);
}

static struct lh_cache *cache_of(lua_State *L)
{
    return lua_touserdata(L, lua_upvalueindex(1));
}

static void push_value(void *arg, const char *value, size_t len, double ttl_left)
{
    (void)ttl_left;
    lua_pushlstring(arg, value, len);
}

/* core.get(key, accept_stale) -> text, state | nil */
static int l_get(lua_State *L)
{
    size_t klen;
    const char *key = luaL_checklstring(L, 1, &klen);
    enum lh_cache_state st = lh_cache_get(cache_of(L), key, klen, lua_toboolean(L, 2), push_value, L);

    if (st == LH_CACHE_MISS) {
        lua_pushnil(L);
        return 1;
    }
    if (st == LH_CACHE_FRESH)
        lua_pushliteral(L, "fresh");
    else
        lua_pushliteral(L, "stale");
    return 2;
}

/* core.contains(key) -> boolean: a fresh entry, neither counted nor touched */
static int l_contains(lua_State *L)
{
    size_t klen;
    const char *key = luaL_checklstring(L, 1, &klen);
    lua_pushboolean(L, lh_cache_contains(cache_of(L), key, klen));
    return 1;
}

/* core.set(key, text, ttl, stale, generation?) -> true | nil, err */
static int l_set(lua_State *L)
{
    size_t klen, vlen;
    const char *key = luaL_checklstring(L, 1, &klen);
    const char *value = luaL_checklstring(L, 2, &vlen);
    double ttl = luaL_checknumber(L, 3), stale = luaL_optnumber(L, 4, 0);

    enum lh_status st =
        lua_isnoneornil(L, 5)
            ? lh_cache_set(cache_of(L), key, klen, value, vlen, ttl, stale)
            : lh_cache_set_since(cache_of(L), (uint64_t)luaL_checknumber(L, 5), key, klen, value,
                                 vlen, ttl, stale);
    if (st == LH_ERR_CONFLICT) {
        lua_pushnil(L);
        lua_pushliteral(L, "invalidated meanwhile");
        return 2;
    }
    if (st != LH_OK) {
        lua_pushnil(L);
        lua_pushstring(L, st == LH_ERR_INVALID ? "bad ttl, or the value is too big for the cache"
                                               : lh_status_str(st));
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* core.generation() -> number: counts deletions, for core.set's guard */
static int l_generation(lua_State *L)
{
    lua_pushnumber(L, (lua_Number)lh_cache_generation(cache_of(L)));
    return 1;
}

static int l_delete(lua_State *L)
{
    size_t klen;
    const char *key = luaL_checklstring(L, 1, &klen);
    lua_pushboolean(L, lh_cache_delete(cache_of(L), key, klen));
    return 1;
}

static int l_invalidate_pattern(lua_State *L)
{
    size_t plen;
    const char *pattern = luaL_checklstring(L, 1, &plen);
    lua_pushnumber(L, (lua_Number)lh_cache_invalidate_pattern(cache_of(L), pattern, plen));
    return 1;
}

/* core.match(pattern, key) -> boolean (Redis-style glob) */
static int l_match(lua_State *L)
{
    size_t plen, klen;
    const char *pattern = luaL_checklstring(L, 1, &plen);
    const char *key = luaL_checklstring(L, 2, &klen);
    lua_pushboolean(L, lh_cache_pattern_match(pattern, plen, key, klen));
    return 1;
}

/* -- Single flight ----------------------------------------------------------- */

struct leader {
    struct lh_cache *cache;
    struct lh_cache_flight *flight; /* NULL once finished */
};

static void push_leader(lua_State *L, struct lh_cache *c, struct lh_cache_flight *f)
{
    struct leader *l = lua_newuserdata(L, sizeof(*l));
    l->cache = c;
    l->flight = f;
    luaL_getmetatable(L, LEADER_MT);
    lua_setmetatable(L, -2);
}

/* leader:finish(err, text, kind) */
static int l_leader_finish(lua_State *L)
{
    struct leader *l = luaL_checkudata(L, 1, LEADER_MT);
    const char *err = luaL_optstring(L, 2, NULL);
    size_t vlen = 0;
    const char *value = luaL_optlstring(L, 3, NULL, &vlen);
    const char *kind = luaL_optstring(L, 4, NULL);
    if (l->flight != NULL) {
        lh_cache_flight_finish(l->cache, l->flight, err, kind, value, vlen);
        l->flight = NULL;
    }
    return 0;
}

static int l_leader_gc(lua_State *L)
{
    struct leader *l = luaL_checkudata(L, 1, LEADER_MT);
    if (l->flight != NULL) {
        lh_cache_flight_finish(l->cache, l->flight, "the computation was abandoned", NULL, NULL,
                               0);
        l->flight = NULL;
    }
    return 0;
}

static const luaL_Reg leader_methods[] = {
    {"finish", l_leader_finish}, {"__gc", l_leader_gc}, {NULL, NULL}};

/* A caller queued behind a leader, or one that found the flight gone by the
 * time it queued and so leads itself. */
struct flight_wait {
    struct lh_async a; /* first: the callbacks cast back */
    struct lh_cache_waiter w;
    struct lh_cache *cache;
    struct lh_cache_flight *led;
    enum lh_status st;
    size_t klen;
    char key[];
};

static void waiter_wake(struct lh_cache_waiter *w)
{
    struct flight_wait *fw = (struct flight_wait *)((char *)w - offsetof(struct flight_wait, w));
    fw->a.task.done(&fw->a.task);
}

static void flight_start(struct lh_async *a)
{
    struct flight_wait *fw = (struct flight_wait *)a;
    fw->st = lh_cache_flight_join(fw->cache, fw->key, fw->klen, &fw->w, &fw->led);
    if (fw->st != LH_OK || fw->led != NULL)
        a->task.done(&a->task);
}

static int flight_push(struct lh_async *a, lua_State *L)
{
    struct flight_wait *fw = (struct flight_wait *)a;

    if (fw->led != NULL) {
        push_leader(L, fw->cache, fw->led);
        return 1;
    }
    lua_pushboolean(L, 0);
    if (fw->st != LH_OK)
        lua_pushstring(L, lh_status_str(fw->st));
    else if (fw->w.error[0])
        lua_pushstring(L, fw->w.error);
    else
        lua_pushnil(L);
    if (fw->w.value)
        lua_pushlstring(L, fw->w.value, fw->w.vlen);
    else
        lua_pushnil(L);
    if (fw->w.kind[0])
        lua_pushstring(L, fw->w.kind);
    else
        lua_pushnil(L);
    return 4;
}

static void flight_free(struct lh_async *a)
{
    struct flight_wait *fw = (struct flight_wait *)a;
    free(fw->w.value);
    free(fw);
}

/* core.flight(key, wait) -> leader | false, err, text */
static int l_flight(lua_State *L)
{
    size_t klen;
    const char *key = luaL_checklstring(L, 1, &klen);
    int wait = lua_toboolean(L, 2);
    struct lh_cache *c = cache_of(L);
    struct lh_cache_flight *led;

    if (lh_cache_flight_join(c, key, klen, NULL, &led) != LH_OK)
        return luaL_error(L, "out of memory");
    if (led != NULL) {
        push_leader(L, c, led);
        return 1;
    }
    if (!wait) {
        lua_pushboolean(L, 0);
        return 1;
    }
    lh_cache_count(c, LH_CACHE_FLIGHT_WAITS);
    struct flight_wait *fw = calloc(1, sizeof(*fw) + klen);
    if (fw == NULL)
        return luaL_error(L, "out of memory");
    fw->cache = c;
    fw->klen = klen;
    memcpy(fw->key, key, klen);
    fw->w.wake = waiter_wake;
    fw->a.start = flight_start;
    fw->a.push = flight_push;
    fw->a.free = flight_free;
    return lh_worker_await(L, &fw->a);
}

/* -- Counters, stats, messages ------------------------------------------------ */

static int l_count(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    for (int i = 0; i < LH_CACHE_COUNTERS; i++) {
        if (strcmp(name, lh_cache_counter_name(i)) == 0) {
            lh_cache_count(cache_of(L), i);
            return 0;
        }
    }
    return luaL_argerror(L, 1, "not a cache counter");
}

static void set_number(lua_State *L, const char *name, double v)
{
    lua_pushnumber(L, v);
    lua_setfield(L, -2, name);
}

static int l_stats(lua_State *L)
{
    struct lh_cache_stats st;
    lh_cache_stats(cache_of(L), &st);
    lua_createtable(L, 0, 9 + LH_CACHE_COUNTERS);
    set_number(L, "l1_hits", (double)st.hits);
    set_number(L, "l1_misses", (double)st.misses);
    set_number(L, "l1_stale_hits", (double)st.stale_hits);
    set_number(L, "l1_evictions", (double)st.evictions);
    set_number(L, "l1_expirations", (double)st.expirations);
    set_number(L, "l1_entries", (double)st.entries);
    set_number(L, "l1_bytes", (double)st.bytes);
    set_number(L, "l1_max_entries", (double)st.max_entries);
    set_number(L, "l1_max_bytes", (double)st.max_bytes);
    for (int i = 0; i < LH_CACHE_COUNTERS; i++)
        set_number(L, lh_cache_counter_name(i), (double)st.counters[i]);
    return 1;
}

static int l_message(lua_State *L)
{
    static const char *const kinds[] = {"k", "p", NULL};
    int kind = luaL_checkoption(L, 1, NULL, kinds);
    luaL_checkstring(L, 2);
    lua_pushstring(L, lh_cache_origin(cache_of(L)));
    lua_pushstring(L, kind == 0 ? " k " : " p ");
    lua_pushvalue(L, 2);
    lua_concat(L, 3);
    return 1;
}

static const luaL_Reg functions[] = {
    {"get", l_get},     {"contains", l_contains}, {"set", l_set},     {"delete", l_delete}, {"generation", l_generation},
    {"invalidate_pattern", l_invalidate_pattern}, {"match", l_match},
    {"flight", l_flight}, {"count", l_count}, {"stats", l_stats},
    {"message", l_message}, {NULL, NULL}};

int luaopen_luahost_cache_core(lua_State *L)
{
    const struct lh_host *host = lh_worker_host(L);
    struct lh_cache *c = host ? host->cache : NULL;

    if (c == NULL) {
        pthread_once(&process_cache_once, make_process_cache);
        c = process_cache;
    }
    if (c == NULL)
        return luaL_error(L, "cache: out of memory");
    lh_lua_class(L, LEADER_MT, leader_methods);
    lh_lua_library(L, functions, c);
    char channel[LH_CACHE_CHANNEL_MAX];
    lh_cache_channel(0, channel, sizeof(channel)); /* without Redis, never used */
    lua_pushstring(L, host && host->cache_channel[0] ? host->cache_channel : channel);
    lua_setfield(L, -2, "channel");
    return 1;
}
