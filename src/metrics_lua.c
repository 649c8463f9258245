/* src/metrics_lua.c: require "luahost.metrics". Check, call, convert.
 *
 *   metrics.counter(name, help) -> c      c:inc([n])         name ends in _total
 *   metrics.gauge(name, help) -> g        g:set(v), g:add(v)
 *   metrics.histogram(name, help[, buckets]) -> h   h:observe(v)
 *       buckets: increasing upper bounds (default: the request latency
 *       buckets, in seconds). Defining a name again (another thread's
 *       state, a reload) returns the same metric. Bad names or buckets
 *       raise.
 *   metrics.core(name) -> c      a counter of the core, by its name after
 *                                "luahost_" ("ratelimit_rejections_total")
 *   metrics.render() -> text     the Prometheus text exposition
 *   metrics.route_id(key) -> id  for luahost.app: the id of "GET /path"
 *   metrics.set_slow(id, seconds)
 *
 * The metrics are the server's (struct lh_host); outside a server (busted),
 * ones made for the process. */
#include <pthread.h>
#include <stdlib.h>

#include <lauxlib.h>
#include <lua.h>

#include "lua_modules.h"
#include "luahost/json.h"
#include "luahost/metrics.h"
#include "luahost/worker.h"

#define METRIC_MT "luahost.metric"

static struct lh_metrics *process_metrics;
static pthread_once_t process_metrics_once = PTHREAD_ONCE_INIT;

static void make_process_metrics(void)
{
    process_metrics = lh_metrics_new(1, 1);
}

static struct lh_metrics *metrics_of(lua_State *L)
{
    return lua_touserdata(L, lua_upvalueindex(1));
}

static void push_metric(lua_State *L, struct lh_metric *x)
{
    struct lh_metric **u = lua_newuserdata(L, sizeof(*u));
    *u = x;
    luaL_getmetatable(L, METRIC_MT);
    lua_setmetatable(L, -2);
}

static struct lh_metric *check_metric(lua_State *L)
{
    return *(struct lh_metric **)luaL_checkudata(L, 1, METRIC_MT);
}

static int define(lua_State *L, enum lh_metric_kind kind)
{
    const char *name = luaL_checkstring(L, 1);
    const char *help = luaL_optstring(L, 2, "");
    double buckets[LH_METRIC_MAX_BUCKETS];
    size_t n = 0;
    char err[256];

    if (kind == LH_METRIC_HISTOGRAM && !lua_isnoneornil(L, 3)) {
        luaL_checktype(L, 3, LUA_TTABLE);
        n = lua_objlen(L, 3);
        luaL_argcheck(L, n >= 1 && n <= LH_METRIC_MAX_BUCKETS, 3, "1 to 32 bucket bounds");
        for (size_t i = 0; i < n; i++) {
            lua_rawgeti(L, 3, (int)i + 1);
            luaL_argcheck(L, lua_type(L, -1) == LUA_TNUMBER, 3, "bucket bounds are numbers");
            buckets[i] = lua_tonumber(L, -1);
            lua_pop(L, 1);
        }
    }
    struct lh_metric *x =
        lh_metrics_define(metrics_of(L), name, help, kind, n ? buckets : NULL, n, err, sizeof(err));
    if (x == NULL)
        return luaL_error(L, "%s", err);
    push_metric(L, x);
    return 1;
}

static int l_counter(lua_State *L)
{
    return define(L, LH_METRIC_COUNTER);
}

static int l_gauge(lua_State *L)
{
    return define(L, LH_METRIC_GAUGE);
}

static int l_histogram(lua_State *L)
{
    return define(L, LH_METRIC_HISTOGRAM);
}

static int l_core(lua_State *L)
{
    struct lh_metric *x = lh_metrics_core_by_name(metrics_of(L), luaL_checkstring(L, 1));
    luaL_argcheck(L, x != NULL, 1, "not a core counter");
    push_metric(L, x);
    return 1;
}

static int l_render(lua_State *L)
{
    struct lh_json_buf b;
    lh_json_buf_init(&b, 64 * 1024 * 1024);
    enum lh_status st = lh_metrics_render(metrics_of(L), &b);
    if (st == LH_OK)
        lua_pushlstring(L, b.data ? b.data : "", b.len);
    lh_json_buf_free(&b);
    if (st != LH_OK)
        return luaL_error(L, "metrics: %s", lh_status_str(st));
    return 1;
}

static int l_route_id(lua_State *L)
{
    lua_pushinteger(L, lh_metrics_route_id(metrics_of(L), luaL_checkstring(L, 1)));
    return 1;
}

static int l_set_slow(lua_State *L)
{
    int id = (int)luaL_checkinteger(L, 1);
    double seconds = luaL_checknumber(L, 2);
    luaL_argcheck(L, seconds > 0, 2, "a positive number of seconds");
    lh_metrics_set_slow(metrics_of(L), id, seconds);
    return 0;
}

/* g:add(v) */
static int l_metric_add(lua_State *L)
{
    struct lh_metric *x = check_metric(L);
    lh_metric_add(x, luaL_checknumber(L, 2));
    return 0;
}

/* c:inc([n]): by 1, or by n, a number >= 0 (counters only go up; a
 * string is a mistake to show, not to convert) */
static int l_metric_inc(lua_State *L)
{
    struct lh_metric *x = check_metric(L);
    if (!lua_isnoneornil(L, 2) && lua_type(L, 2) != LUA_TNUMBER)
        return luaL_argerror(L, 2, "a number >= 0");
    double n = luaL_optnumber(L, 2, 1);
    luaL_argcheck(L, n >= 0, 2, "a number >= 0: counters only go up");
    lh_metric_add(x, n);
    return 0;
}

static int l_metric_set(lua_State *L)
{
    struct lh_metric *x = check_metric(L);
    lh_metric_set(x, luaL_checknumber(L, 2));
    return 0;
}

static int l_metric_observe(lua_State *L)
{
    struct lh_metric *x = check_metric(L);
    lh_metric_observe(x, luaL_checknumber(L, 2));
    return 0;
}

static int l_metric_value(lua_State *L)
{
    lua_pushnumber(L, lh_metric_value(check_metric(L)));
    return 1;
}

static const luaL_Reg metric_methods[] = {
    {"inc", l_metric_inc},         {"add", l_metric_add},     {"set", l_metric_set},
    {"observe", l_metric_observe}, {"value", l_metric_value}, {NULL, NULL}};

static const luaL_Reg functions[] = {
    {"counter", l_counter},   {"gauge", l_gauge},       {"histogram", l_histogram},
    {"core", l_core},         {"render", l_render},     {"route_id", l_route_id},
    {"set_slow", l_set_slow}, {NULL, NULL}};

int luaopen_luahost_metrics(lua_State *L)
{
    const struct lh_host *host = lh_worker_host(L);
    struct lh_metrics *m = host ? host->metrics : NULL;

    if (m == NULL) {
        pthread_once(&process_metrics_once, make_process_metrics);
        m = process_metrics;
    }
    if (m == NULL)
        return luaL_error(L, "metrics: out of memory");
    lh_lua_class(L, METRIC_MT, metric_methods);
    lh_lua_library(L, functions, m);
    return 1;
}
