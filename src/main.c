/* src/main.c: flags, configuration, signals, start and stop.
 *
 * Signals are blocked in every thread and taken by the main thread with
 * sigwaitinfo: SIGHUP reloads the application, SIGUSR1 reopens the log
 * files, SIGTERM and SIGINT stop gracefully (stop accepting, let in-flight
 * requests finish within shutdown_timeout, then close). From then on a
 * watch thread takes them: a second one exits (1) at once, and so does a
 * stop still not over a few seconds after the deadline (a thread stuck in a
 * handler or a database call cannot be waited for). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "luahost/cache.h"
#include "luahost/config.h"
#include "luahost/db.h"
#include "luahost/fingerprint.h"
#include "luahost/http.h"
#include "luahost/log.h"
#include "luahost/metrics.h"
#include "luahost/migrate.h"
#include "luahost/monitor.h"
#include "luahost/netaddr.h"
#include "luahost/password.h"
#include "luahost/ratelimit.h"
#include "luahost/static.h"
#include "luahost/redis.h"
#include "luahost/task.h"
#include "luahost/url.h"
#include "luahost/worker.h"

extern char **environ;

/* The nice value of the password-hashing threads: competing with the HTTP
 * threads they get about a tenth of a core (CFS weight 110 against 1024),
 * alone they get every core they need. */
#define CPU_THREADS_NICE 10

enum { FLAG_CONFIG = 1000, FLAG_CHECK, FLAG_HELP, FLAG_VERSION, FLAG_FIRST_OPTION };

static void usage(FILE *out)
{
    fprintf(out, "usage: luahost [options]          serve the application\n"
                 "       luahost --check [options]  load the configuration and every script, "
                 "report, exit\n"
                 "       luahost migrate [options]  apply the app's pending database migrations\n"
                 "                                  (and, in development, its seeds)\n"
                 "       luahost user add NAME [--admin | --no-admin] [options]\n"
                 "                                  create an account, or set its password and\n"
                 "                                  end its sessions (its rights kept unless\n"
                 "                                  --admin or --no-admin); the password is\n"
                 "                                  read from standard input (asked for,\n"
                 "                                  unechoed, on a terminal)\n\n"
                 "Options (each also LUAHOST_<NAME> in the environment and <name> in the config "
                 "file):\n");
    for (size_t i = 0; i < lh_config_option_count(); i++) {
        const struct lh_config_option *o = lh_config_option_at(i);
        char flag[64];
        size_t n = (size_t)snprintf(flag, sizeof(flag), "--%s", o->name);
        for (size_t k = 2; k < n; k++)
            if (flag[k] == '_')
                flag[k] = '-';
        if (strstr(o->help, "default:") != NULL) /* the text says what the default is */
            fprintf(out, "  %-22s %s\n", flag, o->help);
        else
            fprintf(out, "  %-22s %s (default: %s)\n", flag, o->help,
                    o->value[0] ? o->value : "none");
    }
    fprintf(out, "  %-22s Lua file returning a table of options (or LUAHOST_CONFIG)\n"
                 "  %-22s load the configuration and scripts, then exit (0: all good)\n"
                 "  %-22s this text\n"
                 "  %-22s print the version\n\n"
                 "Signals: SIGHUP reloads the scripts, SIGUSR1 reopens the log files,\n"
                 "SIGTERM/SIGINT stop gracefully (a second one: at once).\n",
            "--config FILE", "--check", "--help", "--version");
}

/* Builds getopt's table from the config options; the flag index maps back. */
static struct option *long_options(void)
{
    size_t n = lh_config_option_count();
    struct option *opts = calloc(n + 5, sizeof(*opts));
    static char names[64][40];

    if (opts == NULL || n > 64)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        snprintf(names[i], sizeof(names[i]), "%s", lh_config_option_at(i)->name);
        for (char *p = names[i]; *p; p++)
            if (*p == '_')
                *p = '-';
        opts[i] = (struct option){names[i], required_argument, NULL, FLAG_FIRST_OPTION + (int)i};
    }
    opts[n] = (struct option){"config", required_argument, NULL, FLAG_CONFIG};
    opts[n + 1] = (struct option){"check", no_argument, NULL, FLAG_CHECK};
    opts[n + 2] = (struct option){"help", no_argument, NULL, FLAG_HELP};
    opts[n + 3] = (struct option){"version", no_argument, NULL, FLAG_VERSION};
    return opts;
}

struct flags {
    const char *config_file;
    int check;
};

/* After a command line that did not parse: a subcommand given after
 * options ("luahost --app x user add NAME") is named, since getopt's own
 * complaint ("bad option '--admin'") would not say what went wrong. */
static void hint_subcommand(int argc, char **argv)
{
    for (int i = 2; i < argc; i++)
        if (strcmp(argv[i], "user") == 0 || strcmp(argv[i], "migrate") == 0) {
            fprintf(stderr, "luahost: '%s' is a subcommand: it comes first, the options after "
                            "it (luahost %s%s [options])\n",
                    argv[i], argv[i], strcmp(argv[i], "user") == 0 ? " add NAME" : "");
            return;
        }
}

/* Reads the configuration: defaults, file, environment, flags. Returns 0, or
 * an exit status (0 included, via *done, for --help and --version). */
static int configure(int argc, char **argv, struct lh_config *cfg, struct flags *fl, int *done)
{
    char err[512];
    struct option *opts = long_options();
    int c;

    *done = 0;
    if (opts == NULL || lh_config_init(cfg) != LH_OK) {
        fprintf(stderr, "luahost: out of memory\n");
        free(opts);
        return 1;
    }
    fl->config_file = getenv("LUAHOST_CONFIG");
    /* First pass: only find --config and the flags that end at once. The
     * leading ':' makes a flag without its value ':', not '?'. */
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        if (c == FLAG_CONFIG)
            fl->config_file = optarg;
        else if (c == FLAG_CHECK)
            fl->check = 1;
        else if (c == FLAG_HELP || c == FLAG_VERSION) {
            if (c == FLAG_HELP)
                usage(stdout);
            else
                printf("luahost %s\n", LUAHOST_VERSION);
            *done = 1;
            free(opts);
            return 0;
        } else if (c == '?' || c == ':') {
            fprintf(stderr, "luahost: %s '%s' (see --help)\n",
                    c == ':' ? "no value after option" : "bad option", argv[optind - 1]);
            hint_subcommand(argc, argv);
            free(opts);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "luahost: unexpected argument '%s' (see --help)\n", argv[optind]);
        hint_subcommand(argc, argv);
        free(opts);
        return 2;
    }
    /* Highest source first: each leaves alone what one before it gave. */
    optind = 1;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        if (c < FLAG_FIRST_OPTION)
            continue;
        const char *name = lh_config_option_at((size_t)(c - FLAG_FIRST_OPTION))->name;
        char msg[400];
        if (lh_config_set(cfg, name, optarg, msg, sizeof(msg)) != LH_OK) {
            snprintf(err, sizeof(err), "flag --%s: %s", opts[c - FLAG_FIRST_OPTION].name, msg);
            goto fail;
        }
    }
    if (lh_config_load_env(cfg, environ, err, sizeof(err)) != LH_OK)
        goto fail;
    if (fl->config_file && lh_config_load_file(cfg, fl->config_file, err, sizeof(err)) != LH_OK)
        goto fail;
    free(opts);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (cfg->workers == 0)
        cfg->workers = cores > 0 ? cores : 1;
    if (cfg->cpu_threads == 0)
        cfg->cpu_threads = cores > 0 ? cores : 1;
    /* Each worker thread takes an equal share of the connections. */
    if (cfg->max_connections < cfg->workers) {
        fprintf(stderr,
                "luahost: configuration: option 'max_connections': %ld is fewer than the %ld "
                "workers, which share it\n",
                cfg->max_connections, cfg->workers);
        return 1;
    }
    return 0;
fail:
    free(opts);
    fprintf(stderr, "luahost: configuration: %s\n", err);
    return 1;
}


/* Waits up to `seconds` for in-flight requests; 1 when none is left. A second
 * SIGTERM or SIGINT is the stop watch's to take (see watch_the_stop). */
static int drain(struct lh_http *http, double seconds)
{
    double deadline = lh_monotonic_seconds() + seconds;
    struct timespec tick = {0, 20 * 1000 * 1000};

    while (lh_http_inflight(http) > 0 && lh_monotonic_seconds() < deadline)
        nanosleep(&tick, NULL);
    return lh_http_inflight(http) == 0;
}

/* Blocking calls fail fast from now on, queued tasks are cancelled and
 * running ones finished: every suspended connection gets its wake-up. */
static void stop_tasks(struct lh_workers *ws, struct lh_task_pool *tasks,
                       struct lh_task_pool *cpu_tasks)
{
    lh_workers_stopping(ws);
    lh_task_pool_stop(tasks);
    lh_task_pool_stop(cpu_tasks);
}

/* Room for a load error: require's list of the paths it searched runs to
 * kilobytes, and a message cut short hides what to fix. */
#define LOAD_ERROR_MAX 4096

/* Takes the signals until a SIGTERM or SIGINT asks to stop. */
static void serve(const struct lh_config *cfg, const struct lh_host *host, struct lh_workers *ws,
                  const sigset_t *set)
{
    char err[LOAD_ERROR_MAX];

    for (;;) {
        int sig = sigwaitinfo(set, NULL);
        if (sig == SIGHUP) {
            lh_log(LH_LOG_INFO, NULL, "SIGHUP: reloading %s", cfg->app);
            int ok = lh_workers_reload(ws, err, sizeof(err)) == LH_OK;
            if (ok)
                lh_log(LH_LOG_INFO, NULL, "reloaded %s", cfg->app);
            else
                lh_log(LH_LOG_ERROR, NULL, "reload failed, still serving the old scripts: %s",
                       err);
            lh_metric_add(lh_metrics_core(host->metrics, ok ? LH_CORE_RELOADS
                                                            : LH_CORE_RELOAD_FAILURES),
                          1);
        } else if (sig == SIGUSR1) {
            const char *why = NULL;
            if (lh_log_reopen(&why) == LH_OK)
                lh_log(LH_LOG_INFO, NULL, "SIGUSR1: log files reopened");
            else
                lh_log(LH_LOG_ERROR, NULL, "SIGUSR1: %s; a log that cannot be opened stays on its old file",
                       why);
        } else if (sig == SIGTERM || sig == SIGINT) {
            return;
        }
    }
}

/* Stops accepting, lets the requests in flight finish within shutdown_timeout,
 * then wakes those parked in a blocking call. */
static void stop(const struct lh_config *cfg, const struct lh_host *host, struct lh_http *http,
                 struct lh_workers *ws, struct lh_task_pool *tasks, struct lh_task_pool *cpu_tasks)
{
    lh_log(LH_LOG_INFO, NULL, "stopping: no new connections, %u request(s) in flight, %lds to finish",
           lh_http_inflight(http), cfg->shutdown_timeout);
    lh_http_quiesce(http);
    if (host->monitor)
        lh_monitor_end_streams(host->monitor); /* dashboards reconnect to another instance */
    if (!drain(http, (double)cfg->shutdown_timeout))
        lh_log(LH_LOG_WARN, NULL, "shutdown deadline passed with %u request(s) in flight",
               lh_http_inflight(http));
    /* Wake every request parked in a blocking call, then give them a moment
     * to answer: the server cannot stop with connections suspended. */
    stop_tasks(ws, tasks, cpu_tasks);
    lh_ratelimit_stop(host->ratelimit);
    drain(http, 1.0);
}

#define NO_POLICIES "no policy directory: no rate limits and no security headers"

/* The policy directory: as configured, else the app's sibling "policy" if
 * there is one; "" means no policies. Returns a malloc'd string. */
static char *policy_dir(const struct lh_config *cfg)
{
    char path[4096];
    struct stat st;

    if (cfg->policy_dir[0])
        return strdup(cfg->policy_dir);
    snprintf(path, sizeof(path), "%s/../policy", cfg->app);
    return strdup(stat(path, &st) == 0 && S_ISDIR(st.st_mode) ? path : "");
}

/* The static folder: as configured (it must exist), else the app's "static"
 * folder if there is one. 0 with err when the configured one is missing. */
static int make_statics(const struct lh_config *cfg, struct lh_host *host, char *err,
                        size_t errlen)
{
    char path[4096];
    struct stat st;

    if (cfg->static_dir[0]) {
        char why[200], where[300];
        host->statics = lh_static_new(cfg->static_dir, why, sizeof(why));
        if (host->statics == NULL)
            snprintf(err, errlen, "%s: %s", lh_config_where(cfg, "static_dir", where, sizeof(where)),
                     why);
        return host->statics != NULL;
    }
    snprintf(path, sizeof(path), "%s/static", cfg->app);
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        host->statics = lh_static_new(path, err, errlen);
    return 1;
}

/* The password scripts/services.sh gives the local development database:
 * anyone who has read the repository knows it. */
static const char DEVELOPMENT_DB_PASSWORD[] = "luahost-dev";

/* What production refuses of the configuration's other secrets: a message,
 * or NULL. (FINGERPRINT_SECRET is make_fingerprint's.) */
static const char *production_refuses(const struct lh_config *cfg)
{
    struct lh_url url;
    const char *e;

    if (strcmp(cfg->env, "production") != 0 || cfg->db_url[0] == '\0' ||
        lh_url_parse(cfg->db_url, &url, &e) != LH_OK)
        return NULL;
    if (strcmp(url.password, DEVELOPMENT_DB_PASSWORD) == 0)
        return "db_url has the development database's password (scripts/services.sh): give the "
               "production database a password of its own";
    return NULL;
}

/* What production allows but warns about: a message, or NULL. */
static const char *production_warning(const struct lh_config *cfg)
{
    struct lh_url url;
    const char *e;

    if (strcmp(cfg->env, "production") != 0 || cfg->redis_url[0] == '\0' ||
        lh_url_parse(cfg->redis_url, &url, &e) != LH_OK || url.password[0] != '\0')
        return NULL;
    return "redis_url has no password: whoever reaches that Redis can read the cache and reset "
           "every rate limit (set requirepass, and put the password in redis_url)";
}

/* FINGERPRINT_SECRET: required and strong in production; in development a
 * random one per start when unset. */
static struct lh_fingerprint *make_fingerprint(const struct lh_config *cfg, char *err,
                                               size_t errlen)
{
    const char *secret = getenv("FINGERPRINT_SECRET");
    const char *why;
    char random_hex[2 * LH_SECRET_MIN_BYTES + 1];
    unsigned char bytes[LH_SECRET_MIN_BYTES];

    if (lh_fingerprint_check_secret(secret, &why) != LH_OK) {
        if (strcmp(cfg->env, "production") == 0) {
            snprintf(err, errlen, "refusing to start in production: %s", why);
            return NULL;
        }
        if (secret == NULL || secret[0] == '\0') {
            if (lh_random_bytes(bytes, sizeof(bytes)) != LH_OK) {
                snprintf(err, errlen, "the CSPRNG failed");
                return NULL;
            }
            for (size_t i = 0; i < sizeof(bytes); i++)
                snprintf(random_hex + 2 * i, 3, "%02x", bytes[i]);
            secret = random_hex;
            lh_log(LH_LOG_WARN, NULL,
                   "FINGERPRINT_SECRET is not set: using a random secret for this run "
                   "(fingerprints and their rate-limit keys change at every start)");
        } else {
            lh_log(LH_LOG_WARN, NULL, "FINGERPRINT_SECRET: %s (refused in production)", why);
        }
    }
    const char *e;
    struct lh_fingerprint *fp = lh_fingerprint_new(secret, strlen(secret), &e);
    if (fp == NULL)
        snprintf(err, errlen, "fingerprint: %s", e);
    return fp;
}

static struct lh_ratelimit *make_ratelimit(const struct lh_config *cfg, char *err, size_t errlen)
{
    struct lh_ratelimit_options o = {.timeout = (double)cfg->redis_timeout / 1000.0};
    struct lh_redis_options ro = {0};
    struct lh_url url;
    const char *e;

    if (cfg->redis_url[0]) {
        lh_url_parse(cfg->redis_url, &url, &e); /* validated with the config */
        lh_redis_options_from_url(&ro, &url);
        o.redis_host = ro.host;
        o.redis_port = ro.port;
        o.redis_user = ro.user;
        o.redis_password = ro.password;
        o.redis_db = ro.db;
    } else {
        lh_log(LH_LOG_WARN, NULL, "no redis_url: rate limits are kept in this process only");
    }
    struct lh_ratelimit *rl = lh_ratelimit_new(&o, &e);
    if (rl == NULL)
        snprintf(err, errlen, "rate limiter: %s", e);
    return rl;
}

/* The metrics (always: Lua may count into them) and, with metrics on, the
 * monitor and the addresses that may read /metrics. */
/* The trusted proxies' addresses, as a set. */
static int make_trusted(const struct lh_config *cfg, struct lh_host *host, char *err,
                        size_t errlen)
{
    char why[256];
    host->trusted_proxies = lh_cidr_set_new();
    if (host->trusted_proxies == NULL) {
        snprintf(err, errlen, "out of memory");
        return 0;
    }
    if (lh_cidr_set_add_list(host->trusted_proxies, cfg->trusted_proxies, why, sizeof(why)) !=
        LH_OK) {
        snprintf(err, errlen, "option 'trusted_proxies': %s", why);
        return 0;
    }
    return 1;
}

static int make_metrics(const struct lh_config *cfg, struct lh_host *host, char *err,
                        size_t errlen)
{
    int on = strcmp(cfg->metrics, "on") == 0;
    host->metrics = lh_metrics_new((unsigned)cfg->workers, on);
    host->monitor_allow = lh_cidr_set_new();
    if (host->metrics == NULL || host->monitor_allow == NULL) {
        snprintf(err, errlen, "metrics: out of memory");
        return 0;
    }
    char why[256];
    if (lh_cidr_set_add_list(host->monitor_allow, cfg->metrics_allow, why, sizeof(why)) != LH_OK) {
        snprintf(err, errlen, "option 'metrics_allow': %s", why);
        return 0;
    }
    if (on && (host->monitor = lh_monitor_new(host->metrics, 1.0,
                                                  (double)cfg->monitor_stream_seconds)) == NULL) {
        snprintf(err, errlen, "monitor: out of memory");
        return 0;
    }
    return 1;
}

/* The transport, once it runs: the metrics know their sources before the
 * first request can ask for them. */
static _Atomic(struct lh_http *) serving;

static void publish_transport(struct lh_http *http, void *arg)
{
    (void)arg;
    atomic_store(&serving, http);
}

/* The requests in flight when main retired the transport: freeing it waits
 * for them, and the stop watch reports that count (a snapshot) meanwhile. */
static _Atomic unsigned retired_inflight;

/* Event streams left out: an open dashboard is not a request waiting. */
static unsigned http_inflight(void *arg)
{
    (void)arg;
    struct lh_http *http = atomic_load(&serving);
    if (http == NULL)
        return atomic_load(&retired_inflight);
    unsigned streaming = lh_http_streaming(http), inflight = lh_http_inflight(http);
    return inflight > streaming ? inflight - streaming : 0;
}

/* Tells the metrics where the figures are: before the transport starts. */
static void set_metric_sources(const struct lh_host *host, struct lh_task_pool *tasks,
                               struct lh_task_pool *cpu_tasks)
{
    struct lh_metrics_sources src = {
        .db = host->db,
        .cache = host->cache,
        .redis = host->redis,
        .blocking_tasks = tasks,
        .cpu_tasks = cpu_tasks,
        .inflight = http_inflight,
    };
    lh_metrics_set_sources(host->metrics, &src);
}

/* Drops the L1 entries another instance invalidated; after a (re)subscription
 * everything, since invalidations sent meanwhile were lost. */
static void on_invalidation(void *arg, const char *msg, size_t len)
{
    const struct lh_host *host = arg;

    if (msg == NULL) {
        lh_cache_invalidate_pattern(host->cache, "*", 1);
        return;
    }
    if (lh_cache_apply_message(host->cache, msg, len) < 0)
        lh_log(LH_LOG_WARN, NULL, "cache: ignored a malformed message on %s", host->cache_channel);
}

/* The L1 cache; with redis_url also the Redis pool (L2, routes) and the
 * subscriber that keeps L1 in step with the other instances. */
static int make_cache(const struct lh_config *cfg, struct lh_host *host,
                      struct lh_redis_subscriber **sub)
{
    struct lh_cache_options co = {.max_entries = (size_t)cfg->cache_entries,
                                  .max_bytes = (size_t)cfg->cache_bytes};
    struct lh_redis_options ro = {.timeout = (double)cfg->redis_timeout / 1000.0,
                                  .pool_size = (unsigned)cfg->blocking_threads};
    struct lh_url url;
    const char *e;

    host->cache = lh_cache_new(&co);
    if (host->cache == NULL || cfg->redis_url[0] == '\0')
        return host->cache != NULL;
    lh_url_parse(cfg->redis_url, &url, &e); /* validated with the config */
    lh_redis_options_from_url(&ro, &url);
    host->redis = lh_redis_new(&ro);
    lh_cache_channel(ro.db, host->cache_channel, sizeof(host->cache_channel));
    *sub = host->redis ? lh_redis_subscribe(&ro, host->cache_channel, on_invalidation, host) : NULL;
    return *sub != NULL;
}

static struct lh_db *make_db(const struct lh_config *cfg, char *err, size_t errlen)
{
    struct lh_url url;
    const char *e;

    lh_url_parse(cfg->db_url, &url, &e); /* validated with the config */
    struct lh_db_options o = {
        .name = "default",
        .host = url.host,
        .port = url.port ? url.port : 3306,
        .user = url.user,
        .password = url.password,
        .database = url.path,
        .size = (unsigned)cfg->db_pool_size,
        .acquire_timeout = (double)cfg->db_timeout,
        .statement_timeout = (double)cfg->db_statement_timeout,
        .slow_query = (double)cfg->db_slow_query / 1000.0,
        .connect_attempts = (unsigned)cfg->db_connect_attempts,
        .connect_retry_delay = (double)cfg->db_connect_delay,
    };
    return lh_db_new(&o, err, errlen);
}

/* Applies <app>/migrations, and <app>/seeds in development. */
static int migrate(const struct lh_config *cfg, struct lh_db *db)
{
    char migrations[4096], seeds[4096], err[512];
    struct lh_migrate_counts n;

    snprintf(migrations, sizeof(migrations), "%s/migrations", cfg->app);
    snprintf(seeds, sizeof(seeds), "%s/seeds", cfg->app);
    int development = strcmp(cfg->env, "development") == 0;
    if (lh_migrate(db, migrations, development ? seeds : NULL, &n, err, sizeof(err)) != LH_OK) {
        lh_log(LH_LOG_ERROR, NULL, "migrate: %s", err);
        return 1;
    }
    lh_log(LH_LOG_INFO, NULL, "migrate: %u migration(s) and %u seed(s) applied", n.migrations,
           n.seeds);
    return 0;
}

/* -- --check ------------------------------------------------------------------- */

/* A log file can be appended to, as the start will: opened for appending
 * if it exists, else created and removed again, since access() says yes to
 * root for a folder that is a file, or in /proc. "-" and "off" always can. */
static int log_writable(const struct lh_config *cfg, const char *name, const char *path, char *err,
                        size_t errlen)
{
    if (strcmp(path, "-") == 0 || strcmp(path, "off") == 0)
        return 1;
    struct stat st;
    int exists = stat(path, &st) == 0;
    int fd = -1;
    if (exists && S_ISDIR(st.st_mode))
        errno = EISDIR;
    else if (exists)
        fd = open(path, O_WRONLY | O_APPEND | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
    else
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOCTTY | O_CLOEXEC, 0644);
    if (fd >= 0) {
        close(fd);
        if (!exists)
            unlink(path);
        return 1;
    }
    char where[300];
    snprintf(err, errlen, "%s: cannot write %s: %s", lh_config_where(cfg, name, where, sizeof(where)),
             path, strerror(errno));
    return 0;
}

/* The listen address resolves (binding it is left to the start: the port
 * may be taken now and free then). */
static int address_resolves(const struct lh_config *cfg, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE},
                    *ai = NULL;
    int gai = getaddrinfo(cfg->host, NULL, &hints, &ai);
    if (gai != 0) {
        char where[300];
        snprintf(err, errlen, "%s: cannot resolve '%s': %s",
                 lh_config_where(cfg, "host", where, sizeof(where)), cfg->host, gai_strerror(gai));
        return 0;
    }
    freeaddrinfo(ai);
    return 1;
}

/* --check: what a start would refuse, short of connecting to the database
 * and Redis and of binding the port. 0 when all is well. */
static int check(const struct lh_config *cfg, const char *policies)
{
    struct lh_host host = {.production = strcmp(cfg->env, "production") == 0};
    struct lh_workers *ws = NULL;
    const char *why;
    char err[LOAD_ERROR_MAX];

    int ok = address_resolves(cfg, err, sizeof(err)) &&
             log_writable(cfg, "error_log", cfg->error_log, err, sizeof(err)) &&
             log_writable(cfg, "access_log", cfg->access_log, err, sizeof(err)) &&
             make_trusted(cfg, &host, err, sizeof(err)) &&
             make_metrics(cfg, &host, err, sizeof(err)) &&
             make_statics(cfg, &host, err, sizeof(err));
    if (ok) { /* the host's monitor checks the alert rules */
        struct lh_workers_options wo = {.app = cfg->app,
                                        .lua_path = cfg->lua_path,
                                        .policy_dir = policies,
                                        .count = 1,
                                        .host = &host,
                                        .load_timeout = (double)cfg->load_timeout};
        ws = lh_workers_new(&wo, err, sizeof(err));
        ok = ws != NULL;
    }
    int weak = ok && strcmp(cfg->env, "production") == 0 &&
               (lh_fingerprint_check_secret(getenv("FINGERPRINT_SECRET"), &why) != LH_OK ||
                (why = production_refuses(cfg)) != NULL);
    if (!ok)
        fprintf(stderr, "luahost: %s\n", err);
    else if (weak)
        fprintf(stderr, "luahost: production: %s\n", why);
    else if (policies[0] == '\0')
        printf("luahost: configuration and scripts of %s are fine; warning: " NO_POLICIES "\n",
               cfg->app);
    else
        printf("luahost: configuration, scripts and policies of %s are fine\n", cfg->app);
    if (ok && !weak && (why = production_warning(cfg)) != NULL)
        printf("luahost: warning: production: %s\n", why);
    lh_workers_free(ws);
    lh_monitor_free(host.monitor);
    lh_metrics_free(host.metrics);
    lh_cidr_set_free(host.monitor_allow);
    lh_cidr_set_free(host.trusted_proxies);
    lh_static_free(host.statics);
    return !ok || weak;
}

/* -- Start-up and stop watches -------------------------------------------------- */

/* SIGTERM and SIGINT are blocked from the start for serve()'s sigwaitinfo,
 * so during a slow start-up (the database's connect attempts, a password
 * prompt) they would wait for it. A watch thread takes them meanwhile and
 * exits at once, giving the terminal its echo back. Once a stop begins,
 * another takes them again: the main thread may be blocked anywhere then
 * (joining a thread stuck in a database call or in a handler that never
 * returns), so the second signal and the deadline are this thread's to act
 * on. */
static struct termios prompt_tty; /* the terminal's settings while a prompt hides input */
static volatile sig_atomic_t prompt_hides_input;

/* How long after the shutdown deadline the stop may still take. */
#define STOP_GRACE_SECONDS 5

struct watch {
    sigset_t stop;
    pthread_t thread;
    int running;
    double deadline; /* the stop watch's: lh_monotonic_seconds() when it exits */
};

/* Held while the transport is read by the stop watch or retired by main. */
static pthread_mutex_t serving_lock = PTHREAD_MUTEX_INITIALIZER;

static void *startup_watch(void *arg)
{
    struct watch *w = arg;
    int sig = sigwaitinfo(&w->stop, NULL);
    if (sig < 0)
        return NULL;
    if (prompt_hides_input)
        tcsetattr(STDIN_FILENO, TCSANOW, &prompt_tty);
    lh_log(LH_LOG_INFO, NULL, "%s during start-up: exiting", sig == SIGINT ? "SIGINT" : "SIGTERM");
    lh_log_flush();
    _exit(1);
}

static void *stop_watch(void *arg)
{
    struct watch *w = arg;
    int sig = 0;
    double left;

    while (sig != SIGTERM && sig != SIGINT && (left = w->deadline - lh_monotonic_seconds()) > 0) {
        struct timespec wait = {(time_t)left, (long)((left - (double)(time_t)left) * 1e9)};
        sig = sigtimedwait(&w->stop, NULL, &wait);
    }
    /* Cancelled inside lh_log, the thread would keep the log's lock. */
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
    pthread_mutex_lock(&serving_lock);
    unsigned inflight = http_inflight(NULL);
    pthread_mutex_unlock(&serving_lock);
    if (sig == SIGTERM || sig == SIGINT)
        lh_log(LH_LOG_WARN, NULL, "second %s while stopping: exiting at once, %u request(s) cut",
               sig == SIGINT ? "SIGINT" : "SIGTERM", inflight);
    else
        lh_log(LH_LOG_ERROR, NULL,
               "still not stopped %d s after the shutdown deadline, %u request(s) still in "
               "flight (a handler or a database call that does not return?): exiting without "
               "waiting",
               STOP_GRACE_SECONDS, inflight);
    lh_log_flush();
    _exit(1);
}

static void start_watch(struct watch *w, void *(*watch)(void *))
{
    sigemptyset(&w->stop);
    sigaddset(&w->stop, SIGTERM);
    sigaddset(&w->stop, SIGINT);
    w->running = pthread_create(&w->thread, NULL, watch, w) == 0;
}

/* From the start of a stop: exits (1) on a second SIGTERM or SIGINT, or when
 * the stop is still not over STOP_GRACE_SECONDS after the deadline. Without
 * the thread (none could start), the stop just waits. */
static void watch_the_stop(struct watch *w, const struct lh_config *cfg)
{
    w->deadline = lh_monotonic_seconds() + (double)cfg->shutdown_timeout + STOP_GRACE_SECONDS;
    start_watch(w, stop_watch);
}

/* The start-up watch ends before serve() takes the signals itself, the stop
 * watch before the log closes. */
static void end_watch(struct watch *w)
{
    if (w->running) {
        pthread_cancel(w->thread); /* sigwaitinfo and sigtimedwait are cancellation points */
        pthread_join(w->thread, NULL);
        w->running = 0;
    }
}

/* -- user add -------------------------------------------------------------------- */

#define USER_NAME_RULE                                                                            \
    "the name must be 1 to 64 bytes of UTF-8, without control or invisible format characters "  \
    "or a space at either end"

/* The code point of the valid UTF-8 character of n bytes at s. */
static unsigned long code_point(const unsigned char *s, size_t n)
{
    static const unsigned char lead_bits[] = {0, 0x7f, 0x1f, 0x0f, 0x07};
    unsigned long cp = s[0] & lead_bits[n];
    for (size_t i = 1; i < n; i++)
        cp = cp << 6 | (s[i] & 0x3f);
    return cp;
}

/* Unicode's format characters (category Cf, Unicode 15): invisible, and
 * ignored by the collation, so "ann" followed by U+200B would show as
 * "ann" and sign in as it. */
static int format_character(unsigned long cp)
{
    static const unsigned long cf[][2] = {
        {0xad, 0xad},       {0x600, 0x605},     {0x61c, 0x61c},     {0x6dd, 0x6dd},
        {0x70f, 0x70f},     {0x890, 0x891},     {0x8e2, 0x8e2},     {0x180e, 0x180e},
        {0x200b, 0x200f},   {0x202a, 0x202e},   {0x2060, 0x2064},   {0x2066, 0x206f},
        {0xfeff, 0xfeff},   {0xfff9, 0xfffb},   {0x110bd, 0x110bd}, {0x110cd, 0x110cd},
        {0x13430, 0x1343f}, {0x1bca0, 0x1bca3}, {0x1d173, 0x1d17a}, {0xe0001, 0xe0001},
        {0xe0020, 0xe007f}};
    for (size_t i = 0; i < sizeof(cf) / sizeof(cf[0]); i++)
        if (cp >= cf[i][0] && cp <= cf[i][1])
            return 1;
    return 0;
}

/* An account name: 1 to 64 bytes of UTF-8 (the column's; other bytes would
 * reach the database only to be refused there), no control character (C0,
 * DEL or C1) or format character, no space at either end (MariaDB's
 * collation ignores trailing ones: "ann " would be "ann"). */
static int valid_user_name(const char *name)
{
    const unsigned char *s = (const unsigned char *)name;
    size_t len = strlen(name), n;

    if (len == 0 || len > 64 || name[0] == ' ' || name[len - 1] == ' ')
        return 0;
    for (size_t i = 0; i < len; i += n) {
        n = lh_utf8_char(s + i, len - i);
        if (n == 0 || s[i] < 0x20 || s[i] == 0x7f || (s[i] == 0xc2 && s[i + 1] < 0xa0) ||
            format_character(code_point(s + i, n)))
            return 0;
    }
    return 1;
}

/* One line of standard input, its line end removed (its length in *len):
 * malloc'ed, or NULL at the end of input. On a terminal (tty), after prompt
 * on stderr, with what is typed hidden. */
static char *read_line(const char *prompt, int tty, ssize_t *len)
{
    if (tty) {
        struct termios hidden = prompt_tty;
        hidden.c_lflag &= (tcflag_t)~ECHO;
        /* Hidden before the prompt shows: nothing typed after it echoes. */
        prompt_hides_input = tcsetattr(STDIN_FILENO, TCSANOW, &hidden) == 0;
        fputs(prompt, stderr);
        fflush(stderr);
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, stdin);
    if (prompt_hides_input) {
        tcsetattr(STDIN_FILENO, TCSANOW, &prompt_tty);
        prompt_hides_input = 0;
        fputc('\n', stderr);
    }
    if (n < 0) {
        free(line);
        return NULL;
    }
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    *len = n;
    return line;
}

static void free_secret(char *s, size_t len)
{
    if (s != NULL)
        explicit_bzero(s, len);
    free(s);
}

/* Reads the password line from standard input into buf (size > 1024); on a
 * terminal, asks for it on stderr, hides what is typed, and asks again: a
 * typo would set a password nobody knows (and end the account's sessions).
 * Its length, or -1 with *why set. */
static long read_password(const char *name, char *buf, size_t size, const char **why)
{
    char prompt[128];
    ssize_t n = 0, again_len = 0;
    int tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &prompt_tty) == 0;

    snprintf(prompt, sizeof(prompt), "Password for %s: ", name);
    char *line = read_line(prompt, tty, &n);
    *why = NULL;
    if (line == NULL)
        *why = "no password on standard input";
    else if (memchr(line, '\0', (size_t)n) != NULL)
        *why = "the password must not contain a NUL byte";
    else if (n < 8 || n > 1024 || (size_t)n >= size)
        *why = "the password must be 8 to 1024 bytes";
    if (*why == NULL && tty) {
        char *again = read_line("The same password again: ", tty, &again_len);
        if (again == NULL || again_len != n || memcmp(again, line, (size_t)n) != 0)
            *why = "the two passwords differ; nothing was changed";
        free_secret(again, (size_t)again_len);
    }
    if (*why == NULL)
        memcpy(buf, line, (size_t)n);
    free_secret(line, (size_t)n);
    return *why == NULL ? (long)n : -1;
}

/* Runs sql on c with params; the result in *r (freed first) unless r is NULL. */
static enum lh_status run_sql(struct lh_db_conn *c, const char *sql, const struct lh_db_value *params,
                              size_t nparams, struct lh_db_result **r, char *err, size_t errlen)
{
    struct lh_db_result *res = NULL;
    enum lh_status st = lh_db_run(c, sql, strlen(sql), params, nparams, &res, err, errlen);
    if (r != NULL) {
        lh_db_result_free(*r);
        *r = res;
    } else {
        lh_db_result_free(res);
    }
    return st;
}

/* What add_user does to the account: ADMIN_KEEP leaves an existing account's
 * rights as they are (a new one is not an administrator). */
enum admin_change { ADMIN_KEEP = -1, ADMIN_REVOKE = 0, ADMIN_GRANT = 1 };

/* Creates the account, or sets an existing one's password and ends its
 * sessions. Names compare as MariaDB's collation does (case and accents
 * ignored), so "ANN" finds "ann": a name that finds an account spelt
 * otherwise is refused (LH_ERR_CONFLICT), not taken for it. In one
 * transaction, an existing row locked. *clash: the database refused it for
 * another transaction's sake (two runs creating the same account at once:
 * InnoDB fails one with a deadlock or the unique key), and running it
 * again will find the account. */
static enum lh_status save_user_once(struct lh_db_conn *c, const char *name, const char *hash,
                                     enum admin_change admin, int *created, int *is_admin,
                                     unsigned long long *ended, int *clash, char *err,
                                     size_t errlen)
{
    int misspelt = 0;
    struct lh_db_result *r = NULL;
    struct lh_db_value p[3] = {{.type = LH_DB_TEXT, .s = name, .len = strlen(name)}};
    enum lh_status st = run_sql(c, "START TRANSACTION", NULL, 0, NULL, err, errlen);
    if (st == LH_OK)
        st = run_sql(c, "SELECT id, username, is_admin FROM users WHERE username = ? FOR UPDATE", p,
                     1, &r, err, errlen);
    if (st != LH_OK)
        goto out;
    *created = lh_db_result_rows(r) == 0;
    *ended = 0;
    if (*created) {
        *is_admin = admin == ADMIN_GRANT;
        p[1] = (struct lh_db_value){.type = LH_DB_TEXT, .s = hash, .len = strlen(hash)};
        p[2] = (struct lh_db_value){.type = LH_DB_INT, .i = *is_admin};
        st = run_sql(c, "INSERT INTO users (username, password_hash, is_admin) VALUES (?, ?, ?)", p,
                     3, NULL, err, errlen);
    } else {
        const struct lh_db_value *stored = lh_db_result_value(r, 0, 1);
        if (stored->len != strlen(name) || memcmp(stored->s, name, stored->len) != 0) {
            snprintf(err, errlen,
                     "'%s' is the existing account '%.*s' (names compare without case or "
                     "accents); give its exact name to change it",
                     name, (int)stored->len, stored->s);
            st = LH_ERR_CONFLICT;
            misspelt = 1;
            goto out;
        }
        long long id = lh_db_result_value(r, 0, 0)->i;
        *is_admin = admin == ADMIN_KEEP ? lh_db_result_value(r, 0, 2)->i != 0 : admin == ADMIN_GRANT;
        p[0] = (struct lh_db_value){.type = LH_DB_TEXT, .s = hash, .len = strlen(hash)};
        p[1] = (struct lh_db_value){.type = LH_DB_INT, .i = *is_admin};
        p[2] = (struct lh_db_value){.type = LH_DB_INT, .i = id};
        st = run_sql(c, "UPDATE users SET password_hash = ?, is_admin = ? WHERE id = ?", p, 3, NULL,
                     err, errlen);
        /* A new password ends every session: a stolen cookie must not outlive it. */
        if (st == LH_OK)
            st = run_sql(c, "DELETE FROM sessions WHERE user_id = ?", &p[2], 1, &r, err, errlen);
        if (st == LH_OK)
            *ended = lh_db_result_affected(r);
    }
    if (st == LH_OK)
        st = run_sql(c, "COMMIT", NULL, 0, NULL, err, errlen);
out:
    lh_db_result_free(r);
    if (st != LH_OK) {
        char ignored[128]; /* err keeps the error that stopped it, not the rollback's */
        run_sql(c, "ROLLBACK", NULL, 0, NULL, ignored, sizeof(ignored));
    }
    *clash = st == LH_ERR_CONFLICT && !misspelt;
    return st;
}

static enum lh_status save_user(struct lh_db_conn *c, const char *name, const char *hash,
                                enum admin_change admin, int *created, int *is_admin,
                                unsigned long long *ended, char *err, size_t errlen)
{
    for (int attempt = 1;; attempt++) {
        int clash = 0;
        enum lh_status st =
            save_user_once(c, name, hash, admin, created, is_admin, ended, &clash, err, errlen);
        if (!clash || attempt == 5)
            return st;
        lh_log(LH_LOG_INFO, NULL, "user add: %s; trying again", err);
    }
}

/* Outside development, the start and user add leave the schema to
 * `luahost migrate`, which an operator runs when it suits them, and refuse
 * to run on a schema it has not brought up to date: scripts that expect a
 * migration would fail request by request. `what` names the caller in the
 * log. 0 when every file of <app>/migrations is recorded as applied, 2
 * (logged) when one is not, 1 when the check failed. */
static int require_migrated(const struct lh_config *cfg, struct lh_db *db, const char *what)
{
    char dir[4096], pending[256], err[512] = "";

    snprintf(dir, sizeof(dir), "%s/migrations", cfg->app);
    enum lh_status st = lh_migrate_pending(db, dir, pending, sizeof(pending), err, sizeof(err));
    if (st != LH_OK) {
        lh_log(LH_LOG_ERROR, NULL, "%s: checking the migrations: %s", what,
               err[0] ? err : lh_status_str(st));
        return 1;
    }
    if (pending[0] == '\0')
        return 0;
    lh_log(LH_LOG_ERROR, NULL,
           "%s: migration %s/%s is not applied: run `luahost migrate` first (in %s, "
           "%s does not migrate)",
           what, dir, pending, cfg->env, what);
    return 2;
}

/* "luahost user add NAME [--admin | --no-admin]", NAME checked: the
 * password comes from stdin's first line. */
static int add_user(struct lh_db *db, const char *name, enum admin_change admin)
{
    char line[1100], hash[LH_PASSWORD_HASH_MAX], err[512] = "";
    struct lh_db_conn *c = NULL;
    const char *why = NULL;
    int created = 0, is_admin = 0;
    unsigned long long ended = 0;

    long len = read_password(name, line, sizeof(line), &why);
    if (len < 0) {
        lh_log(LH_LOG_ERROR, NULL, "user add: %s", why);
        return 2;
    }
    enum lh_status st = lh_password_hash(line, (size_t)len, LH_PASSWORD_ITERATIONS, hash);
    explicit_bzero(line, sizeof(line));
    if (st == LH_OK)
        st = lh_db_acquire(db, "user-add", "", &c, err, sizeof(err));
    if (st == LH_OK) {
        st = save_user(c, name, hash, admin, &created, &is_admin, &ended, err, sizeof(err));
        lh_db_release(db, c);
    }
    if (st != LH_OK) {
        lh_log(LH_LOG_ERROR, NULL, "user add: %s", err[0] ? err : lh_status_str(st));
        return st == LH_ERR_CONFLICT ? 2 : 1;
    }
    if (created)
        lh_log(LH_LOG_INFO, NULL, "user %s created%s", name, is_admin ? " (administrator)" : "");
    else
        lh_log(LH_LOG_INFO, NULL, "user %s: password changed, %llu session(s) ended%s", name, ended,
               is_admin ? " (administrator)" : "");
    return 0;
}

static int is_admin_flag(const char *arg)
{
    return strcmp(arg, "--admin") == 0 || strcmp(arg, "--no-admin") == 0;
}

/* "user add NAME [--admin | --no-admin] [options]" (the admin flag may also
 * come first): takes NAME and the admin flag out of the arguments, leaving
 * the options. 0, or 2 (said on stderr) when NAME is missing or the flags
 * conflict. */
static int user_add_arguments(int *argc, char ***argv, const char **name, enum admin_change *admin)
{
    char **a = *argv;
    int n = *argc;
    int at = 3;

    while (at < n && is_admin_flag(a[at]))
        at++;
    /* Another option there means the NAME was forgotten. */
    if (at >= n || a[at][0] == '-') {
        fprintf(stderr, "luahost: user add: NAME missing (luahost user add NAME "
                        "[--admin | --no-admin] [options]; a name does not start with '-')\n");
        return 2;
    }
    /* Checked here, before the database is reached (or, in development,
     * migrated) for nothing. */
    if (!valid_user_name(a[at])) {
        fprintf(stderr, "luahost: user add: " USER_NAME_RULE "\n");
        return 2;
    }
    *name = a[at];
    memmove(&a[at], &a[at + 1], (size_t)(n - at) * sizeof(a[0])); /* keeps the NULL */
    n--;
    a[2] = a[0];
    a += 2;
    n -= 2;
    for (int i = 1; i < n;) {
        if (!is_admin_flag(a[i])) {
            i++;
            continue;
        }
        int grant = strcmp(a[i], "--admin") == 0;
        enum admin_change change = grant ? ADMIN_GRANT : ADMIN_REVOKE;
        if (*admin != ADMIN_KEEP && *admin != change) {
            fprintf(stderr, "luahost: user add: --admin and --no-admin conflict\n");
            return 2;
        }
        *admin = change;
        memmove(&a[i], &a[i + 1], (size_t)(n - i) * sizeof(a[0]));
        n--;
    }
    *argv = a;
    *argc = n;
    return 0;
}

int main(int argc, char **argv)
{
    struct lh_config cfg;
    struct flags fl = {0};
    enum lh_log_level level;
    const char *why;
    char err[LOAD_ERROR_MAX];
    int done, rc;
    sigset_t set;

    int migrate_only = argc > 1 && strcmp(argv[1], "migrate") == 0;
    const char *new_user = NULL;
    enum admin_change new_admin = ADMIN_KEEP;
    if (migrate_only) { /* "luahost migrate [options]": the rest are options */
        argv[1] = argv[0];
        argv++;
        argc--;
    } else if (argc > 2 && strcmp(argv[1], "user") == 0 && strcmp(argv[2], "add") == 0) {
        rc = user_add_arguments(&argc, &argv, &new_user, &new_admin);
        if (rc != 0)
            return rc;
    }
    rc = configure(argc, argv, &cfg, &fl, &done);
    if (rc == 0 && !done && fl.check && (migrate_only || new_user)) {
        fprintf(stderr, "luahost: --check checks the server's configuration and scripts; "
                        "run it without `%s`\n", migrate_only ? "migrate" : "user add");
        rc = 2;
    }
    if (rc != 0 || done) {
        lh_config_free(&cfg);
        return rc;
    }
    lh_log_level_parse(cfg.log_level, &level);

    char *policies = policy_dir(&cfg);
    struct lh_host host = {.production = strcmp(cfg.env, "production") == 0};
    struct stat policy_st;
    if (cfg.policy_dir[0] && (stat(cfg.policy_dir, &policy_st) != 0 || !S_ISDIR(policy_st.st_mode))) {
        char where[300];
        fprintf(stderr, "luahost: %s: %s is not a folder\n",
                lh_config_where(&cfg, "policy_dir", where, sizeof(where)), cfg.policy_dir);
        free(policies);
        lh_config_free(&cfg);
        return 1;
    }
    char typos[1024];
    int mistyped = lh_config_env_typos(environ, typos, sizeof(typos)) > 0;
    if (fl.check) {
        if (mistyped)
            fprintf(stderr, "luahost: warning: %s\n", typos);
        rc = check(&cfg, policies);
        free(policies);
        lh_config_free(&cfg);
        return rc;
    }

    /* Before any thread starts, so that every thread inherits the mask. */
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (lh_log_open(cfg.error_log, cfg.access_log, level, &why) != LH_OK) {
        fprintf(stderr, "luahost: %s\n", why);
        free(policies);
        lh_config_free(&cfg);
        return 1;
    }
    if (mistyped)
        lh_log(LH_LOG_WARN, NULL, "environment: %s", typos);
    struct watch startup = {.running = 0}, stopping = {.running = 0};
    start_watch(&startup, startup_watch);
    struct lh_task_pool *tasks = NULL, *cpu_tasks = NULL;
    struct lh_workers *ws = NULL;
    struct lh_redis_subscriber *subscriber = NULL;
    if ((migrate_only || new_user) && cfg.db_url[0] == '\0') {
        lh_log(LH_LOG_ERROR, NULL, "no db_url (set LUAHOST_DB_URL or --db-url)");
        rc = 1;
        goto out_host;
    }
    if (cfg.db_url[0]) {
        host.db = make_db(&cfg, err, sizeof(err));
        if (host.db == NULL) {
            lh_log(LH_LOG_ERROR, NULL, "%s", err);
            rc = 1;
            goto out_host;
        }
        if (migrate_only || new_user) {
            if (migrate_only || strcmp(cfg.env, "development") == 0)
                rc = migrate(&cfg, host.db);
            else
                rc = require_migrated(&cfg, host.db, "user add");
            if (rc == 0 && new_user)
                rc = add_user(host.db, new_user, new_admin);
            goto out_host;
        }
    }
    host.fingerprint = make_fingerprint(&cfg, err, sizeof(err));
    if (host.fingerprint == NULL || !make_trusted(&cfg, &host, err, sizeof(err))) {
        lh_log(LH_LOG_ERROR, NULL, "%s", err);
        rc = 1;
        goto out_host;
    }
    host.ratelimit = make_ratelimit(&cfg, err, sizeof(err));
    tasks = lh_task_pool_new((unsigned)cfg.blocking_threads, 0, &why);
    if (tasks != NULL)
        cpu_tasks = lh_task_pool_new((unsigned)cfg.cpu_threads, CPU_THREADS_NICE, &why);
    if (cpu_tasks != NULL)
        lh_task_pool_set_max_queued(cpu_tasks, (unsigned)cfg.cpu_queue);
    if (host.ratelimit == NULL || cpu_tasks == NULL || !make_cache(&cfg, &host, &subscriber)) {
        lh_log(LH_LOG_ERROR, NULL, "%s",
               host.ratelimit == NULL ? err : cpu_tasks == NULL ? why : "cache: out of memory");
        rc = 1;
        goto out_host;
    }
    if (!make_metrics(&cfg, &host, err, sizeof(err)) || !make_statics(&cfg, &host, err, sizeof(err))) {
        lh_log(LH_LOG_ERROR, NULL, "%s", err);
        rc = 1;
        goto out_host;
    }
    if (policies[0] == '\0')
        lh_log(LH_LOG_WARN, NULL, NO_POLICIES);
    struct lh_workers_options wo = {.app = cfg.app,
                                    .lua_path = cfg.lua_path,
                                    .policy_dir = policies,
                                    .count = (unsigned)cfg.workers,
                                    .tasks = tasks,
                                    .cpu_tasks = cpu_tasks,
                                    .host = &host,
                                    .load_timeout = (double)cfg.load_timeout};
    ws = lh_workers_new(&wo, err, sizeof(err));
    if (ws == NULL) {
        lh_log(LH_LOG_ERROR, NULL, "cannot load %s: %s", cfg.app, err);
        rc = 1;
        goto out_host;
    }
    /* After the scripts have loaded: a deploy that cannot start leaves the
     * schema as it was. */
    if (host.db != NULL &&
        (rc = strcmp(cfg.env, "development") == 0 ? migrate(&cfg, host.db)
                                                  : require_migrated(&cfg, host.db, "start")) != 0)
        goto out_host;
    if ((why = production_refuses(&cfg)) != NULL) {
        lh_log(LH_LOG_ERROR, NULL, "refusing to start in production: %s", why);
        rc = 1;
        goto out_host;
    }
    if ((why = production_warning(&cfg)) != NULL)
        lh_log(LH_LOG_WARN, NULL, "production: %s", why);
    /* Behind a proxy every client has the proxy's address: a per-address
     * limit would cap the proxy itself, so it is the proxy's to enforce. */
    unsigned per_ip = (unsigned)cfg.max_connections_per_ip;
    if (per_ip != 0 && lh_cidr_set_count(host.trusted_proxies) > 0) {
        lh_log(LH_LOG_INFO, NULL,
               "trusted_proxies is set: no per-address connection limit (the proxy's to enforce)");
        per_ip = 0;
    }
    struct lh_http_options ho = {
        .host = cfg.host,
        .port = (unsigned)cfg.port,
        .threads = (unsigned)cfg.workers,
        .max_connections = (unsigned)cfg.max_connections,
        .max_connections_per_ip = per_ip,
        .idle_timeout = (unsigned)cfg.idle_timeout,
        .header_timeout = (unsigned)cfg.header_timeout,
        .max_header_bytes = (size_t)cfg.max_header_bytes,
        .max_body_bytes = (size_t)cfg.max_body_bytes,
        .trusted_proxies = host.trusted_proxies,
        .proxy_forwarded = strcmp(cfg.proxy_header, "forwarded") == 0,
        .metrics = host.metrics,
        .monitor = host.monitor,
        .statics = host.statics,
        .starting = publish_transport,
    };
    set_metric_sources(&host, tasks, cpu_tasks);
    /* From the first request on, a SIGINT or SIGTERM is a graceful stop:
     * serve() takes it, even one that comes before it runs (it waits,
     * blocked, until then). */
    end_watch(&startup);
    struct lh_http *http = lh_http_new(&ho, ws, err, sizeof(err));
    if (http == NULL ||
        (host.monitor != NULL && lh_monitor_start(host.monitor, err, sizeof(err)) != LH_OK)) {
        lh_log(LH_LOG_ERROR, NULL, "%s", err);
        lh_monitor_stop(host.monitor);
        stop_tasks(ws, tasks, cpu_tasks); /* no task may wake a connection of a freed daemon */
        atomic_store(&serving, NULL);
        lh_http_free(http);
        rc = 1;
        goto out_host;
    }
    lh_log(LH_LOG_INFO, NULL, "luahost %s serving %s on http://%s%s%s:%ld (%ld worker%s, %s, pid %d)",
           LUAHOST_VERSION, cfg.app, strchr(cfg.host, ':') ? "[" : "", cfg.host,
           strchr(cfg.host, ':') ? "]" : "", cfg.port, cfg.workers, cfg.workers == 1 ? "" : "s",
           cfg.env, (int)getpid());

    serve(&cfg, &host, ws, &set);
    watch_the_stop(&stopping, &cfg);
    stop(&cfg, &host, http, ws, tasks, cpu_tasks);
    lh_monitor_stop(host.monitor); /* its sampler reads the transport */
    pthread_mutex_lock(&serving_lock);
    atomic_store(&retired_inflight, lh_http_inflight(http));
    atomic_store(&serving, NULL);
    pthread_mutex_unlock(&serving_lock);
    lh_http_free(http);
    lh_log(LH_LOG_INFO, NULL, "stopped");
out_host:
    end_watch(&startup);
    lh_workers_free(ws);
    lh_task_pool_free(tasks);
    lh_task_pool_free(cpu_tasks);
    lh_monitor_free(host.monitor);
    lh_metrics_free(host.metrics);
    lh_cidr_set_free(host.monitor_allow);
    lh_static_free(host.statics);
    lh_redis_subscriber_free(subscriber);
    lh_redis_free(host.redis);
    lh_cache_free(host.cache);
    lh_ratelimit_free(host.ratelimit);
    lh_db_free(host.db);
    lh_cidr_set_free(host.trusted_proxies);
    lh_fingerprint_free(host.fingerprint);
    end_watch(&stopping);
    lh_log_close();
    free(policies);
    lh_config_free(&cfg);
    return rc;
}
