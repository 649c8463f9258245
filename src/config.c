/* src/config.c: defaults, the Lua config file, LUAHOST_* variables and flags,
 * all funnelled through lh_config_set so that every source is checked alike,
 * and each error names the source it came from. */
#include "luahost/config.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <luajit.h>
#include <lualib.h>

#include "luahost/log.h"
#include "luahost/netaddr.h"
#include "luahost/redis.h"
#include "luahost/url.h"

enum kind { TEXT, NUMBER, BYTES };

/* Checks a text option's value; writes why not (after "option 'x': ") into
 * why. */
typedef int (*text_check)(const char *value, char *why, size_t whylen);

struct option_def {
    struct lh_config_option pub;
    enum kind kind;
    size_t offset;
    long min, max;
    text_check check; /* TEXT only; NULL: any text */
};

static int one_of(const char *value, const char *const *choices, char *why, size_t whylen)
{
    size_t used = (size_t)snprintf(why, whylen, "'%s' is not", value);
    for (size_t i = 0; choices[i] != NULL; i++) {
        if (strcmp(value, choices[i]) == 0)
            return 1;
        if (used < whylen)
            used += (size_t)snprintf(why + used, whylen - used, "%s %s",
                                     i == 0 ? "" : choices[i + 1] ? "," : " or", choices[i]);
    }
    return 0;
}

#define CHOICE_CHECK(name, ...)                                                                 \
    static int name(const char *value, char *why, size_t whylen)                               \
    {                                                                                           \
        static const char *const choices[] = {__VA_ARGS__, NULL};                               \
        return one_of(value, choices, why, whylen);                                             \
    }
CHOICE_CHECK(check_proxy_header, "x-forwarded-for", "forwarded")
CHOICE_CHECK(check_log_level, "debug", "info", "warn", "error")
CHOICE_CHECK(check_env, "development", "production")
CHOICE_CHECK(check_on_off, "on", "off")

static int check_not_empty(const char *value, char *why, size_t whylen)
{
    snprintf(why, whylen, "must not be empty");
    return value[0] != '\0';
}

/* A URL of the scheme, parsed into url (the caller handles "", none). */
static int check_url(const char *value, const char *scheme, struct lh_url *url, char *why,
                     size_t whylen)
{
    const char *what;

    if (lh_url_parse(value, url, &what) != LH_OK) {
        snprintf(why, whylen, "%s", what);
        return 0;
    }
    snprintf(why, whylen, "scheme must be %s://", scheme);
    return strcmp(url->scheme, scheme) == 0;
}

static int check_mysql_url(const char *value, char *why, size_t whylen)
{
    struct lh_url url;

    if (value[0] == '\0')
        return 1;
    if (!check_url(value, "mysql", &url, why, whylen))
        return 0;
    /* Without one, the start would fail later with "No database selected". */
    snprintf(why, whylen, "needs a database name (mysql://user:password@host:port/database)");
    return url.path[0] != '\0';
}

static int check_redis_url(const char *value, char *why, size_t whylen)
{
    struct lh_url url;
    const char *what;

    if (value[0] == '\0')
        return 1;
    if (!check_url(value, "redis", &url, why, whylen))
        return 0;
    if (lh_redis_url_check(&url, &what) != LH_OK) {
        snprintf(why, whylen, "%s", what);
        return 0;
    }
    return 1;
}

/* package.path patterns: a bare folder would be searched for nothing. */
static int check_lua_path(const char *value, char *why, size_t whylen)
{
    for (const char *p = value; *p != '\0';) {
        size_t len = strcspn(p, ";");
        if (len > 0 && memchr(p, '?', len) == NULL) {
            snprintf(why, whylen, "'%.*s' has no '?' (a pattern is like /opt/lib/?.lua)", (int)len, p);
            return 0;
        }
        p += len + (p[len] == ';');
    }
    return 1;
}

/* A list of addresses and CIDRs, checked here rather than where the set is
 * built, so that the message names the value's source. */
static int check_cidr_list(const char *value, char *why, size_t whylen)
{
    struct lh_cidr_set *set = lh_cidr_set_new();
    enum lh_status st = set ? lh_cidr_set_add_list(set, value, why, whylen) : LH_ERR_NOMEM;

    if (st == LH_ERR_NOMEM)
        snprintf(why, whylen, "out of memory");
    lh_cidr_set_free(set);
    return st == LH_OK;
}

#define TEXT_OPT(field, def, help)                                                              \
    {{#field, def, help}, TEXT, offsetof(struct lh_config, field), 0, 0, NULL}
#define CHECKED_OPT(field, def, check, help)                                                    \
    {{#field, def, help}, TEXT, offsetof(struct lh_config, field), 0, 0, check}
#define NUM_OPT(field, def, lo, hi, help)                                                       \
    {{#field, def, help}, NUMBER, offsetof(struct lh_config, field), lo, hi, NULL}
#define BYTES_OPT(field, def, lo, hi, help)                                                     \
    {{#field, def, help}, BYTES, offsetof(struct lh_config, field), lo, hi, NULL}

static const struct option_def defs[] = {
    CHECKED_OPT(app, "lua/app", check_not_empty, "directory of the application's Lua scripts (routes.lua)"),
    CHECKED_OPT(lua_path, "", check_lua_path,
                "extra Lua package.path patterns, ';'-separated, each with a '?'"),
    TEXT_OPT(policy_dir, "", "directory of limits.lua, bot.lua, headers.lua, csp.lua; "
                             "default: the app's sibling 'policy'"),
    TEXT_OPT(static_dir, "", "directory served at /static/ (and /sw.js); "
                            "default: the app's 'static' folder if it has one"),
    CHECKED_OPT(trusted_proxies, "", check_cidr_list,
             "CIDRs of proxies whose X-Forwarded-For/Forwarded/X-Forwarded-Proto are believed"),
    CHECKED_OPT(proxy_header, "x-forwarded-for", check_proxy_header,
             "the header trusted proxies set with the client's address: x-forwarded-for or "
             "forwarded; the other is ignored, since a client could send it through"),
    CHECKED_OPT(host, "127.0.0.1", check_not_empty, "address to listen on (IPv4 or IPv6; :: takes both)"),
    NUM_OPT(port, "8080", 1, 65535, "port to listen on"),
    NUM_OPT(workers, "0", 0, 256, "worker threads, each with its own Lua state; 0: one per core"),
    NUM_OPT(max_connections, "4096", 1, 1000000, "open connections at once"),
    NUM_OPT(max_connections_per_ip, "256", 0, 1000000,
            "open connections at once from one client address; 0: no limit "
            "(none either with trusted_proxies: the proxy's to enforce)"),
    NUM_OPT(idle_timeout, "60", 1, 86400,
            "seconds of silence before a connection is closed; after an answer, the next "
            "request head must be complete within this plus header_timeout"),
    NUM_OPT(header_timeout, "10", 1, 86400,
            "seconds a new connection has to send its first complete request head"),
    BYTES_OPT(max_header_bytes, "8k", 1024, 1024 * 1024,
              "request line and headers; larger requests get 431"),
    BYTES_OPT(max_body_bytes, "1m", 0, 1024L * 1024 * 1024, "request body; larger bodies get 413"),
    NUM_OPT(shutdown_timeout, "10", 0, 3600,
            "seconds that in-flight requests get to finish on SIGTERM/SIGINT"),
    NUM_OPT(load_timeout, "10", 1, 3600,
            "seconds the scripts may take to load (start, reload, --check); beyond, the load fails"),
    NUM_OPT(blocking_threads, "16", 1, 1024,
            "threads that run blocking calls (database, redis; sleeps take none)"),
    NUM_OPT(cpu_threads, "0", 0, 256,
            "threads that hash passwords, at a lower CPU priority; 0: one per core"),
    NUM_OPT(cpu_queue, "64", 0, 1000000,
            "password checks that may wait for a CPU thread; beyond, they fail at once "
            "(sign-ins get 503); 0: no limit"),
    CHECKED_OPT(access_log, "-", check_not_empty, "access log file; '-' for stdout, 'off' for none"),
    CHECKED_OPT(error_log, "-", check_not_empty, "error log file; '-' for stderr"),
    CHECKED_OPT(log_level, "info", check_log_level, "error log level: debug, info, warn, error"),
    CHECKED_OPT(env, "development", check_env, "development or production"),
    CHECKED_OPT(db_url, "", check_mysql_url, "MySQL/MariaDB URL, mysql://user:password@host:port/database"),
    NUM_OPT(db_pool_size, "10", 1, 1000, "database connections in the pool"),
    NUM_OPT(db_timeout, "5", 1, 600, "seconds a request waits for a free database connection, or to connect one"),
    NUM_OPT(db_statement_timeout, "30", 0, 86400,
            "seconds a database statement may run (0: no limit)"),
    NUM_OPT(db_slow_query, "1000", 1, 3600000, "milliseconds: slower statements are logged"),
    NUM_OPT(db_connect_attempts, "3", 1, 100, "tries to reach the database at start"),
    NUM_OPT(db_connect_delay, "2", 1, 60, "seconds between those tries"),
    CHECKED_OPT(redis_url, "", check_redis_url, "Redis URL, redis://host:port/db"),
    NUM_OPT(redis_timeout, "100", 1, 10000,
            "milliseconds a Redis round trip may take before limits and the cache do without it"),
    CHECKED_OPT(metrics, "on", check_on_off, "request metrics, /metrics and the monitor: on or off"),
    CHECKED_OPT(metrics_allow, "127.0.0.0/8,::1/128", check_cidr_list,
             "CIDRs that may read /metrics without signing in"),
    NUM_OPT(monitor_stream_seconds, "300", 1, 86400,
            "seconds a dashboard's event stream lasts; then it reconnects, signing in again"),
    NUM_OPT(cache_entries, "1000", 1, 100000000, "entries in the in-process (L1) cache"),
    BYTES_OPT(cache_bytes, "64m", 64 * 1024, 64L * 1024 * 1024 * 1024,
              "bytes of keys and values in the in-process (L1) cache"),
};

#define NDEFS (sizeof(defs) / sizeof(defs[0]))
_Static_assert(NDEFS <= 8 * sizeof(((struct lh_config *)0)->given), "one bit per option");
_Static_assert(NDEFS <= sizeof(((struct lh_config *)0)->source), "one source per option");

size_t lh_config_option_count(void)
{
    return NDEFS;
}

const struct lh_config_option *lh_config_option_at(size_t i)
{
    return i < NDEFS ? &defs[i].pub : NULL;
}

static const struct option_def *find(const char *name)
{
    for (size_t i = 0; i < NDEFS; i++)
        if (strcmp(defs[i].pub.name, name) == 0)
            return &defs[i];
    return NULL;
}

/* "16k", "1m", "2g" or a plain number of bytes. */
static int parse_number(const char *s, int with_suffix, long *out)
{
    char *end;
    long mult = 1;

    /* Digits first: strtol would skip spaces and take a sign. */
    if (!isdigit((unsigned char)*s))
        return -1;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s)
        return -1;
    if (with_suffix && *end != '\0') {
        switch (tolower((unsigned char)*end)) {
        case 'k':
            mult = 1024;
            break;
        case 'm':
            mult = 1024 * 1024;
            break;
        case 'g':
            mult = 1024L * 1024 * 1024;
            break;
        default:
            return -1;
        }
        end++;
    }
    if (*end != '\0' || v > __LONG_MAX__ / mult)
        return -1;
    *out = v * mult;
    return 0;
}

/* Checks value and stores it in option d's field. */
static enum lh_status set_value(struct lh_config *cfg, const struct option_def *d,
                                const char *value, char *err, size_t errlen)
{
    char *field = (char *)cfg + d->offset;
    char why[200];

    if (d->kind == TEXT) {
        if (d->check != NULL && !d->check(value, why, sizeof(why))) {
            snprintf(err, errlen, "option '%s': %s", d->pub.name, why);
            return LH_ERR_INVALID;
        }
        char *copy = strdup(value);
        if (copy == NULL) {
            snprintf(err, errlen, "out of memory");
            return LH_ERR_NOMEM;
        }
        free(*(char **)field);
        *(char **)field = copy;
        return LH_OK;
    }
    long v;
    if (parse_number(value, d->kind == BYTES, &v) != 0 || v < d->min || v > d->max) {
        snprintf(err, errlen, "option '%s': '%s' is not %s between %ld and %ld", d->pub.name,
                 value, d->kind == BYTES ? "a size (bytes, or with k/m/g)" : "a whole number",
                 d->min, d->max);
        return LH_ERR_INVALID;
    }
    *(long *)field = v;
    return LH_OK;
}

static unsigned long long bit_of(const struct option_def *d)
{
    return 1ULL << (d - defs);
}

enum source { FROM_DEFAULT, FROM_FLAG, FROM_ENV, FROM_FILE };

static enum lh_status set_from(struct lh_config *cfg, const char *name, const char *value,
                               enum source from, char *err, size_t errlen)
{
    const struct option_def *d = find(name);

    if (d == NULL) {
        snprintf(err, errlen, "unknown option '%s'", name);
        return LH_ERR_NOT_FOUND;
    }
    enum lh_status st = set_value(cfg, d, value, err, errlen);
    if (st == LH_OK) {
        cfg->given |= bit_of(d);
        cfg->source[d - defs] = (unsigned char)from;
    }
    return st;
}

enum lh_status lh_config_set(struct lh_config *cfg, const char *name, const char *value,
                             char *err, size_t errlen)
{
    return set_from(cfg, name, value, FROM_FLAG, err, errlen);
}

/* The same words as the sources' own messages: "flag --x: option 'x'". */
const char *lh_config_where(const struct lh_config *cfg, const char *name, char *buf,
                            size_t len)
{
    const struct option_def *d = find(name);
    char spelt[64];
    size_t i;

    for (i = 0; name[i] != '\0' && i + 1 < sizeof(spelt); i++)
        spelt[i] = name[i];
    spelt[i] = '\0';
    switch (d ? (enum source)cfg->source[d - defs] : FROM_DEFAULT) {
    case FROM_FLAG:
        for (char *p = spelt; *p; p++)
            *p = *p == '_' ? '-' : *p;
        snprintf(buf, len, "flag --%s: option '%s'", spelt, name);
        break;
    case FROM_ENV:
        for (char *p = spelt; *p; p++)
            *p = (char)toupper((unsigned char)*p);
        snprintf(buf, len, "environment LUAHOST_%s: option '%s'", spelt, name);
        break;
    case FROM_FILE:
        snprintf(buf, len, "%s: option '%s'", cfg->file ? cfg->file : "config file", name);
        break;
    default:
        snprintf(buf, len, "option '%s'", name);
    }
    return buf;
}

/* Whether a source applied earlier (a higher one) already gave option name. */
static int given(const struct lh_config *cfg, const char *name)
{
    const struct option_def *d = find(name);
    return d != NULL && (cfg->given & bit_of(d)) != 0;
}

enum lh_status lh_config_init(struct lh_config *cfg)
{
    char err[128];

    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < NDEFS; i++) {
        if (set_value(cfg, &defs[i], defs[i].pub.value, err, sizeof(err)) != LH_OK) {
            lh_config_free(cfg);
            return LH_ERR_NOMEM;
        }
    }
    return LH_OK;
}

void lh_config_free(struct lh_config *cfg)
{
    for (size_t i = 0; i < NDEFS; i++) {
        if (defs[i].kind == TEXT) {
            char **field = (char **)((char *)cfg + defs[i].offset);
            free(*field);
            *field = NULL;
        }
    }
    free(cfg->file);
    cfg->file = NULL;
}

/* Walks the table on top of L; the caller protects with lua_pcall. */
static enum lh_status apply_table(lua_State *L, struct lh_config *cfg, const char *path,
                                  char *err, size_t errlen)
{
    char msg[256], number[32];

    lua_pushnil(L);
    while (lua_next(L, -2) != 0) {
        if (lua_type(L, -2) != LUA_TSTRING) {
            snprintf(err, errlen, "%s: option names must be strings", path);
            return LH_ERR_INVALID;
        }
        const char *name = lua_tostring(L, -2);
        const char *value;
        switch (lua_type(L, -1)) {
        case LUA_TSTRING:
            value = lua_tostring(L, -1);
            break;
        case LUA_TNUMBER: {
            double d = lua_tonumber(L, -1);
            if (!(d > -1e15 && d < 1e15) || d != (double)(long long)d) {
                snprintf(err, errlen, "%s: option '%s': want a whole number", path, name);
                return LH_ERR_INVALID;
            }
            snprintf(number, sizeof(number), "%lld", (long long)d);
            value = number;
            break;
        }
        case LUA_TBOOLEAN: /* an on/off option: metrics = false */
            if (find(name) != NULL && find(name)->check == check_on_off) {
                value = lua_toboolean(L, -1) ? "on" : "off";
                break;
            }
            /* fall through */
        default:
            snprintf(err, errlen, "%s: option '%s': want a string or a number, got %s", path,
                     name, luaL_typename(L, -1));
            return LH_ERR_INVALID;
        }
        enum lh_status st =
            given(cfg, name) ? LH_OK : set_from(cfg, name, value, FROM_FILE, msg, sizeof(msg));
        if (st != LH_OK) {
            snprintf(err, errlen, "%s: %s", path, msg);
            return st;
        }
        lua_pop(L, 1);
    }
    return LH_OK;
}

/* Instructions a config file may run: a table of options takes a few
 * hundred; this many take a fraction of a second. */
#define FILE_INSTRUCTIONS 100000000

/* Ends a config file that runs past FILE_INSTRUCTIONS. It then raises at
 * every instruction, so that a pcall in the file cannot swallow the error
 * and go on looping. */
static void budget_hook(lua_State *L, lua_Debug *ar)
{
    lua_sethook(L, budget_hook, LUA_MASKCOUNT, 1);
    lua_getinfo(L, "Sl", ar);
    lua_pushfstring(L, "%s:%d: still running after %d instructions: an endless loop?",
                    ar->short_src, ar->currentline, FILE_INSTRUCTIONS);
    lua_error(L);
}

/* os.exit in a config file would end --check, or the start, without a word
 * and with the file's chosen status: an error naming the line instead. */
static int exit_refused(lua_State *L)
{
    luaL_where(L, 1);
    lua_pushliteral(L, "os.exit in a config file: return the table of options instead");
    lua_concat(L, 2);
    return lua_error(L);
}

enum lh_status lh_config_load_file(struct lh_config *cfg, const char *path, char *err,
                                   size_t errlen)
{
    enum lh_status st = LH_ERR_LUA;
    char *copy = strdup(path);
    lua_State *L = copy ? luaL_newstate() : NULL;

    if (L == NULL) {
        free(copy);
        snprintf(err, errlen, "out of memory");
        return LH_ERR_NOMEM;
    }
    free(cfg->file);
    cfg->file = copy;
    luaL_openlibs(L);
    lua_getglobal(L, "os");
    lua_pushcfunction(L, exit_refused);
    lua_setfield(L, -2, "exit");
    lua_pop(L, 1);
    /* Compiled code runs no hooks; the file's top level runs once anyway. */
    luaJIT_setmode(L, 0, LUAJIT_MODE_ENGINE | LUAJIT_MODE_OFF);
    lua_sethook(L, budget_hook, LUA_MASKCOUNT, FILE_INSTRUCTIONS);
    if (luaL_loadfile(L, path) != 0 || lua_pcall(L, 0, 1, 0) != 0) {
        /* The message already reads "path:line: what" (or "cannot open path"). */
        snprintf(err, errlen, "%s", lua_tostring(L, -1));
        goto out;
    }
    if (!lua_istable(L, -1)) {
        snprintf(err, errlen, "%s: must return a table of options, returned %s", path,
                 luaL_typename(L, -1));
        st = LH_ERR_INVALID;
        goto out;
    }
    st = apply_table(L, cfg, path, err, errlen);
out:
    lua_close(L);
    return st;
}

#define ENV_PREFIX "LUAHOST_"
#define ENV_NAME_MAX 64

/* For a "LUAHOST_<NAME>=value" entry of environ: <name> in lower case into
 * name (ENV_NAME_MAX bytes), and the length of "LUAHOST_<NAME>"; 0 for any
 * other entry. */
static size_t env_option_name(const char *var, char *name)
{
    const size_t skip = sizeof(ENV_PREFIX) - 1;
    const char *eq = strchr(var, '=');
    size_t len = eq ? (size_t)(eq - var) : 0;

    if (eq == NULL || len <= skip || len - skip >= ENV_NAME_MAX || strncmp(var, ENV_PREFIX, skip) != 0)
        return 0;
    size_t k = 0;
    for (const char *p = var + skip; p < eq; p++)
        name[k++] = (char)tolower((unsigned char)*p);
    name[k] = '\0';
    return len;
}

/* Edits (insertions, deletions, substitutions) between two short names,
 * up to 3: a larger distance is reported as 3. */
static size_t edits(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), row[64];

    if (la >= 63 || lb >= 63 || (la > lb ? la - lb : lb - la) > 2)
        return 3;
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb] < 3 ? row[lb] : 3;
}

const char *lh_config_near_option(const char *name)
{
    const char *near = NULL;
    size_t least = 3;
    for (size_t i = 0; i < NDEFS; i++) {
        size_t d = edits(name, defs[i].pub.name);
        if (d < least) {
            least = d;
            near = defs[i].pub.name;
        }
    }
    return near;
}

size_t lh_config_env_typos(char *const *env, char *out, size_t outlen)
{
    char name[ENV_NAME_MAX];
    size_t n = 0, used = 0;

    if (outlen > 0)
        out[0] = '\0';
    for (; env && *env; env++) {
        size_t len = env_option_name(*env, name);
        if (len == 0)
            continue;
        const char *near = find(name) || strcmp(name, "config") == 0 ? NULL : lh_config_near_option(name);
        if (near == NULL)
            continue;
        n++;
        if (used < outlen) {
            char upper[64];
            size_t u = 0;
            for (; near[u] && u + 1 < sizeof(upper); u++)
                upper[u] = (char)toupper((unsigned char)near[u]);
            upper[u] = '\0';
            int w = snprintf(out + used, outlen - used, "%s%.*s names no option; did you mean %s%s?",
                             used ? "; " : "", (int)len, *env, ENV_PREFIX, upper);
            used = w < 0 ? outlen : used + (size_t)w;
        }
    }
    return n;
}

enum lh_status lh_config_load_env(struct lh_config *cfg, char *const *env, char *err,
                                  size_t errlen)
{
    char name[ENV_NAME_MAX], msg[256];

    for (; env && *env; env++) {
        const char *var = *env;
        size_t len = env_option_name(var, name);
        if (len == 0 || find(name) == NULL || given(cfg, name))
            continue; /* LUAHOST_CONFIG, variables of later features, or a flag's option */
        enum lh_status st = set_from(cfg, name, var + len + 1, FROM_ENV, msg, sizeof(msg));
        if (st != LH_OK) {
            snprintf(err, errlen, "environment %.*s: %s", (int)len, var, msg);
            return st;
        }
    }
    return LH_OK;
}
