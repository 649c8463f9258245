/* src/monitor_lua.c: require "luahost.monitor", for lua/luahost/monitoring.lua.
 * Check, call, convert.
 *
 *   monitor.alerts() -> json text       the firing alerts (an array)
 *   monitor.set_rules(rules)            rules: { {name=, metric=, above=|below=,
 *       for_seconds=, severity=, description=}, ... }; raises when one is bad;
 *       staged: in force once every worker's load succeeded
 *   monitor.allowed(client) -> boolean  the address is in metrics_allow
 *   monitor.asset(name) -> bytes, content_type | nil
 *       a file of lua/luahost/monitor/, compiled in
 *   monitor.available() -> boolean      the server runs a monitor (not busted)
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "lua_modules.h"
#include "luahost/monitor.h"
#include "luahost/netaddr.h"
#include "luahost/worker.h"

static const struct lh_host *host_of(lua_State *L)
{
    return lua_touserdata(L, lua_upvalueindex(1));
}

static int l_alerts(lua_State *L)
{
    const struct lh_host *host = host_of(L);
    char *json = host && host->monitor ? lh_monitor_alerts_json(host->monitor) : NULL;
    if (json == NULL) {
        lua_pushliteral(L, "[]");
        return 1;
    }
    lua_pushstring(L, json);
    free(json);
    return 1;
}

/* Copies the string field name of the table at the top into out. */
static void string_field(lua_State *L, int i, const char *name, char *out, size_t len,
                         const char *fallback)
{
    lua_getfield(L, -1, name);
    const char *v = lua_isnil(L, -1) ? fallback : lua_tostring(L, -1);
    if (v == NULL || strlen(v) >= len)
        luaL_error(L, "alert rule %d: %s must be a string of at most %d bytes", i, name,
                   (int)len - 1);
    memcpy(out, v, strlen(v) + 1);
    lua_pop(L, 1);
}

static const char *const RULE_KEYS[] = {"name",        "metric",   "above",       "below",
                                        "for_seconds", "severity", "description", NULL};
#define RULE_KEY_LIST "name, metric, above, below, for_seconds, severity, description"
static const char *const SEVERITIES[] = {"info", "warning", "critical", NULL};

static int one_of(const char *s, const char *const *list)
{
    for (; *list; list++) {
        if (strcmp(s, *list) == 0)
            return 1;
    }
    return 0;
}

/* The table at index t holds keys 1..n only: { {...}, {...} }, not a map,
 * whose rules lua_objlen would not count. */
static int is_list(lua_State *L, int t, size_t n)
{
    int ok = 1;
    lua_pushnil(L);
    while (ok && lua_next(L, t) != 0) {
        lua_Number k = lua_type(L, -2) == LUA_TNUMBER ? lua_tonumber(L, -2) : 0;
        ok = k >= 1 && k <= (lua_Number)n && k == (lua_Number)(size_t)k;
        lua_pop(L, ok ? 1 : 2);
    }
    return ok;
}

/* Raises unless every key of the rule at the top is a known one: a misspelt
 * for_seconds would otherwise be 0, firing at once. */
static void check_rule_keys(lua_State *L, const char *name)
{
    lua_pushnil(L);
    while (lua_next(L, -2) != 0) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING || !one_of(lua_tostring(L, -1), RULE_KEYS))
            luaL_error(L, "alert %s: unknown key %s (" RULE_KEY_LIST ")", name,
                       lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : luaL_typename(L, -1));
    }
}

static int l_set_rules(lua_State *L)
{
    const struct lh_host *host = host_of(L);
    struct lh_alert_rule rules[LH_MONITOR_MAX_RULES];
    char err[256];

    luaL_checktype(L, 1, LUA_TTABLE);
    size_t n = lua_objlen(L, 1);
    if (!is_list(L, 1, n))
        return luaL_error(L, "rules must be a list: { {name = ...}, {name = ...} }");
    luaL_argcheck(L, n <= LH_MONITOR_MAX_RULES, 1, "at most 64 rules");
    for (size_t i = 0; i < n; i++) {
        struct lh_alert_rule *r = &rules[i];
        memset(r, 0, sizeof(*r));
        lua_rawgeti(L, 1, (int)i + 1);
        if (!lua_istable(L, -1))
            return luaL_error(L, "alert rule %d must be a table", (int)i + 1);
        string_field(L, (int)i + 1, "name", r->name, sizeof(r->name), NULL);
        check_rule_keys(L, r->name);
        for (size_t j = 0; j < i; j++) {
            if (strcmp(rules[j].name, r->name) == 0) /* the log and the alerts tell them by name */
                return luaL_error(L, "alert %s: a second rule of this name", r->name);
        }
        string_field(L, (int)i + 1, "metric", r->metric, sizeof(r->metric), NULL);
        string_field(L, (int)i + 1, "severity", r->severity, sizeof(r->severity), "warning");
        if (!one_of(r->severity, SEVERITIES))
            return luaL_error(L, "alert %s: severity %s: want info, warning or critical", r->name,
                              r->severity);
        string_field(L, (int)i + 1, "description", r->description, sizeof(r->description), "");
        lua_getfield(L, -1, "above");
        lua_getfield(L, -2, "below");
        if (lua_isnumber(L, -2) == lua_isnumber(L, -1))
            return luaL_error(L, "alert %s: give exactly one of above or below (a number)",
                              r->name);
        r->above = lua_isnumber(L, -2);
        r->threshold = lua_tonumber(L, r->above ? -2 : -1);
        lua_pop(L, 2);
        if (!isfinite(r->threshold)) /* NaN compares false: the rule could never fire */
            return luaL_error(L, "alert %s: %s must be a finite number", r->name,
                              r->above ? "above" : "below");
        lua_getfield(L, -1, "for_seconds");
        int given = !lua_isnil(L, -1);
        r->for_seconds = lua_tonumber(L, -1);
        if (given && (!lua_isnumber(L, -1) || !isfinite(r->for_seconds)))
            return luaL_error(L, "alert %s: for_seconds must be a finite number", r->name);
        lua_pop(L, 2);
        if (r->for_seconds < 0)
            return luaL_error(L, "alert %s: for_seconds must not be negative", r->name);
    }
    if (host && host->monitor &&
        lh_monitor_set_rules(host->monitor, rules, n, err, sizeof(err)) != LH_OK)
        return luaL_error(L, "%s", err);
    return 0;
}

static int l_allowed(lua_State *L)
{
    const struct lh_host *host = host_of(L);
    const char *client = luaL_checkstring(L, 1);
    lua_pushboolean(L, host && host->monitor_allow &&
                           lh_cidr_set_contains(host->monitor_allow, client));
    return 1;
}

static const char *content_type(const char *name)
{
    static const struct {
        const char *suffix, *type;
    } TYPES[] = {{".html", "text/html; charset=utf-8"},
                 {".js", "text/javascript; charset=utf-8"},
                 {".css", "text/css; charset=utf-8"}};
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof(TYPES) / sizeof(TYPES[0]); i++) {
        size_t k = strlen(TYPES[i].suffix);
        if (n > k && strcmp(name + n - k, TYPES[i].suffix) == 0)
            return TYPES[i].type;
    }
    return "application/octet-stream";
}

static int l_asset(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    for (int i = 0; lh_embedded_assets[i].name; i++) {
        if (strcmp(lh_embedded_assets[i].name, name) == 0) {
            lua_pushlstring(L, lh_embedded_assets[i].source, lh_embedded_assets[i].len);
            lua_pushstring(L, content_type(name));
            return 2;
        }
    }
    lua_pushnil(L);
    return 1;
}

static int l_available(lua_State *L)
{
    const struct lh_host *host = host_of(L);
    lua_pushboolean(L, host && host->monitor);
    return 1;
}

static const luaL_Reg functions[] = {
    {"alerts", l_alerts}, {"set_rules", l_set_rules}, {"allowed", l_allowed},
    {"asset", l_asset},   {"available", l_available}, {NULL, NULL}};

int luaopen_luahost_monitor(lua_State *L)
{
    lh_lua_library(L, functions, (void *)lh_worker_host(L));
    return 1;
}
