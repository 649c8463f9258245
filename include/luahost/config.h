/* include/luahost/config.h: luahost's settings. Each option has one name used
 * three ways: a key of the Lua config file (max_body_bytes), an environment
 * variable (LUAHOST_MAX_BODY_BYTES) and a flag (--max-body-bytes). Flags
 * win over the environment, which wins over the file, which wins over the
 * defaults: set the flags first (lh_config_set), then load the environment,
 * then the file; each leaves alone, unchecked, what a source before it gave.
 * Thread safety: fill a config on one thread, then only read it. */
#ifndef LUAHOST_CONFIG_H
#define LUAHOST_CONFIG_H
#include <stddef.h>
#include "luahost/common.h"

struct lh_config {
    char *app;             /* directory holding routes.lua */
    char *lua_path;        /* extra package.path entries; "" for none */
    char *policy_dir;      /* limits.lua, bot.lua, headers.lua, csp.lua; "": <app>/../policy */
    char *static_dir;      /* served at /static/; "" for <app>/static if present */
    char *trusted_proxies; /* CIDRs whose forwarding headers are believed */
    char *proxy_header;    /* "x-forwarded-for" or "forwarded": the one believed */
    char *host;            /* listen address */
    long port;             /* listen port */
    long workers;          /* worker threads; 0 means one per core */
    long max_connections;  /* open connections at once */
    long max_connections_per_ip; /* from one client address; 0: no limit */
    long idle_timeout;     /* seconds a connection may stay idle */
    long header_timeout;   /* seconds a new connection may pause in its first head */
    long max_header_bytes; /* request line + headers, beyond: 431 */
    long max_body_bytes;   /* request body, beyond: 413 */
    long shutdown_timeout; /* seconds in-flight requests get on SIGTERM */
    long load_timeout;     /* seconds the scripts may take to load */
    long blocking_threads; /* threads that run blocking calls (sleep, db, redis) */
    long cpu_threads;      /* threads that hash passwords, niced; 0: one per core */
    long cpu_queue;        /* password checks that may wait for them; 0: no limit */
    char *access_log;      /* file, "-" for stdout, "off" */
    char *error_log;       /* file, "-" for stderr */
    char *log_level;       /* debug, info, warn, error */
    char *env;             /* development or production */
    char *db_url;          /* mysql://user:password@host:port/database, "" for none */
    long db_pool_size;     /* connections */
    long db_timeout;       /* seconds to wait for a free connection */
    long db_statement_timeout; /* seconds a statement may run; 0: no limit */
    long db_slow_query;        /* milliseconds: slower statements are logged */
    long db_connect_attempts;  /* at start */
    long db_connect_delay;     /* seconds between start-up attempts */
    char *redis_url;       /* redis://host:port/db, "" for none */
    long redis_timeout;    /* milliseconds for a Redis round trip before falling back */
    char *metrics;         /* "on" or "off" */
    char *metrics_allow;   /* CIDRs that may read /metrics */
    long monitor_stream_seconds; /* an event stream's lifetime */
    long cache_entries;    /* L1 cache bound */
    long cache_bytes;      /* L1 cache bound */
    unsigned long long given; /* bit i: option i was set by a source, not defaulted */
    unsigned char source[64]; /* option i's source, for lh_config_where */
    char *file;               /* the config file loaded last, NULL for none */
};

struct lh_config_option {
    const char *name;    /* config key; the flag is --name with '_' as '-' */
    const char *value;   /* default, as text */
    const char *help;    /* one line for --help */
};

/* The options, in --help order: i from 0 to lh_config_option_count() - 1. */
size_t lh_config_option_count(void);
const struct lh_config_option *lh_config_option_at(size_t i);

/* Sets every option to its default. Returns LH_ERR_NOMEM on allocation failure. */
enum lh_status lh_config_init(struct lh_config *cfg);
/* Frees the strings; the struct itself belongs to the caller. */
void lh_config_free(struct lh_config *cfg);

/* Sets option name (config-key form) from text, and marks it given by a
 * flag (it is the flags' way in). On
 * failure returns LH_ERR_NOT_FOUND (unknown option) or LH_ERR_INVALID (bad
 * value: out of range, not one of the option's words, a bad URL) and writes
 * a message naming the option into err. */
enum lh_status lh_config_set(struct lh_config *cfg, const char *name, const char *value,
                             char *err, size_t errlen);
/* Runs the Lua file at path, which returns a table of options; options
 * already given are skipped. Messages name the path (with a line number for
 * script errors). An unknown key is an error even for a given option. A
 * file still running after 100 million Lua instructions fails (LH_ERR_LUA,
 * "an endless loop?"). */
enum lh_status lh_config_load_file(struct lh_config *cfg, const char *path, char *err,
                                   size_t errlen);
/* Where option name's value came from, for a message about a value that
 * only fails later (an address that does not resolve, a missing folder):
 * "flag --trusted-proxies: option 'trusted_proxies'", "environment
 * LUAHOST_TRUSTED_PROXIES: option 'trusted_proxies'", "<file>: option
 * 'trusted_proxies'", or "option 'trusted_proxies'" for a default. Writes
 * into buf and returns it. */
const char *lh_config_where(const struct lh_config *cfg, const char *name, char *buf,
                            size_t len);
/* Applies every LUAHOST_<NAME> variable of env (a NULL-terminated environ)
 * whose option is not given yet. Messages name the variable. */
enum lh_status lh_config_load_env(struct lh_config *cfg, char *const *env, char *err,
                                  size_t errlen);
/* The option whose name is within two edits of name (the nearest), or NULL. */
const char *lh_config_near_option(const char *name);
/* The LUAHOST_* variables of env that name no option but one misspelt
 * (LUAHOST_WORKER): "LUAHOST_WORKER names no option; did you mean
 * LUAHOST_WORKERS?" each, joined by "; ", written into out (cut at
 * outlen). Returns their count. Others (LUAHOST_CONFIG, a tool's own) are
 * left alone. */
size_t lh_config_env_typos(char *const *env, char *out, size_t outlen);

#endif
