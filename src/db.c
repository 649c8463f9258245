/* src/db.c: the MariaDB/MySQL connection pool and prepared statements.
 *
 * DESIGN
 * ------
 * The pool is an array of `size` slots. One mutex, `lock`, guards the slot
 * bookkeeping (in_use, is_open, last_used, acquired_at, holder names,
 * leak_logged) and every counter in the stats. A slot's MYSQL handle, its
 * creation time and its broken flag belong to the thread that holds the slot
 * (in_use set under `lock`), so no network call is ever made with `lock`
 * held: acquire marks a slot taken, unlocks, then connects, reconnects or
 * pings; release rolls back outside the lock, then locks to hand the slot
 * back and signals `freed`. Waiters sleep on `freed` until acquire_timeout.
 * The monitor thread wakes every second (or on `tick` when the pool stops),
 * looks for connections held longer than leak_after and logs each acquisition
 * once; it logs with `lock` released. Lock order: `lock` only; lh_log takes
 * no lock of ours.
 *
 * Connections open lazily: the first in lh_db_new (to fail early with a clear
 * message), the others when no open one is idle. A slot is (re)connected at
 * acquire when it has no connection, is marked broken, or is older than
 * max_lifetime; it is pinged when idle longer than validate_after.
 *
 * When MariaDB restarts (or a connection is killed): the next statement on a
 * dead connection fails with a client error (2006/2013, or 1927 when the
 * server says it was killed); lh_db_run returns LH_ERR_IO and marks it
 * broken, release closes it, and the next acquire of that slot reconnects.
 * The failure also stamps `lost_at`, so every other connection idle since
 * then is pinged (and reconnected if dead) at its next acquire: after a
 * restart, callers see about one failed statement, not one per slot. While
 * the server is down acquire returns LH_ERR_IO; that is logged at most every
 * DOWN_LOG_INTERVAL seconds. Session state is rebuilt on every connect:
 * utf8mb4, autocommit on, and the statement time limit (MariaDB
 * max_statement_time in seconds, MySQL max_execution_time in ms, chosen from
 * the server's version string).
 *
 * The health check (lh_db_ping) has a connection of its own, outside the
 * pool, so that a pool busy with requests does not read as a sick database,
 * and its reads time out after acquire_timeout, so that a server that stops
 * answering (frozen, not refusing) reads as down within about that long.
 * Request connections wait statement_timeout + IO_TIMEOUT_MARGIN for an
 * answer (a long statement is cut by the server first), and without a
 * statement limit as long as it takes. `probe_lock` guards the check's
 * connection; it is never held with `lock`.
 *
 * Nothing logged here contains the password or a parameter value: slow
 * statements are logged by their SQL text (200 bytes at most).
 */
#include "luahost/db.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <errmsg.h>
#include <mysql.h>
#include <mysqld_error.h>

#include "luahost/log.h"

#define ID_MAX 64            /* request id kept for the leak warning */
#define ROUTE_MAX 128        /* route kept for the leak warning */
#define SQL_LOG_MAX 200      /* bytes of SQL in a slow-statement warning */
#define CONNECT_TIMEOUT 5    /* seconds per connect, at most (see db_connect) */
#define IO_TIMEOUT_MARGIN 10 /* a request's read/write timeout = statement_timeout + this */
#define MONITOR_INTERVAL 1.0 /* seconds between leak checks */
#define DOWN_LOG_INTERVAL 10.0
#define TEXT_BUF_MIN 64          /* fits every date, time and DECIMAL as text */
#define TEXT_BUF_MAX (1 << 20)   /* longer values are fetched column by column */
#define MYSQL_QUERY_TIMEOUT 3024 /* MySQL's ER_QUERY_TIMEOUT (max_execution_time) */

struct lh_db_conn {
    struct lh_db *db;
    /* Holder only: */
    MYSQL *mysql;   /* NULL: not connected */
    double created; /* monotonic seconds */
    int broken;     /* lost; with mysql NULL: closed after a loss */
    /* Under db->lock: */
    int in_use, is_open, leak_logged;
    double last_used, acquired_at;
    char request_id[ID_MAX];
    char route[ROUTE_MAX];
};

struct lh_db {
    char *name, *host, *user, *password, *database;
    int port;
    unsigned size, connect_attempts;
    double acquire_timeout, connect_retry_delay, validate_after, max_lifetime, leak_after;
    double statement_timeout, slow_query;

    pthread_mutex_t lock;
    pthread_cond_t freed; /* a slot came back, or the pool stops */
    pthread_cond_t tick;  /* wakes the monitor when the pool stops */
    pthread_t monitor;
    int monitor_started, stopping;
    struct lh_db_conn *conns;
    unsigned active, open;
    unsigned long long served, waits, timeouts, errors, long_running, slow;
    unsigned waiting; /* callers in lh_db_acquire's wait now */
    double lost_at;        /* last connection loss seen by a statement */
    double down_logged_at; /* last "cannot connect" warning */

    /* Under probe_lock: */
    pthread_mutex_t probe_lock; /* one health check at a time */
    MYSQL *probe;               /* the health check's connection; NULL: closed */
    atomic_ulong probes;        /* checks done: one that waited takes the last answer */
    enum lh_status probe_status;
    char probe_err[512];
};

struct lh_db_result {
    size_t ncols, nrows;
    unsigned long long affected, insert_id;
    const char **names;
    struct lh_db_value *values; /* row-major, nrows * ncols */
};

/* -- Helpers ----------------------------------------------------------------- */

static pthread_once_t library_once = PTHREAD_ONCE_INIT;
static int library_failed;

static void library_init(void)
{
    library_failed = mysql_library_init(0, NULL, NULL) != 0;
}

static void sleep_seconds(double s)
{
    struct timespec ts = lh_timespec_of(s);
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        continue;
}

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || errlen == 0)
        return;
    va_start(ap, fmt);
    if (vsnprintf(err, errlen, fmt, ap) < 0)
        err[0] = '\0';
    va_end(ap);
}

/* Copies at most size - 1 bytes of s (NULL: "") into out, with control
 * characters replaced so that a caller's string cannot forge log lines. */
static void copy_name(char *out, size_t size, const char *s, size_t len)
{
    size_t n = 0;

    if (s != NULL)
        for (; n < len && n + 1 < size && s[n] != '\0'; n++)
            out[n] = (unsigned char)s[n] < 0x20 || s[n] == 0x7f ? '?' : s[n];
    out[n] = '\0';
}

static int dup_opt(char **out, const char *s, const char *fallback)
{
    if (s == NULL)
        s = fallback;
    *out = NULL;
    if (s == NULL)
        return 1;
    *out = strdup(s);
    return *out != NULL;
}

/* -- Connections ------------------------------------------------------------- */

/* A request connection's read and write timeout in seconds; 0: none. */
static unsigned int request_io_timeout(const struct lh_db *db)
{
    return db->statement_timeout > 0 ? (unsigned int)ceil(db->statement_timeout) + IO_TIMEOUT_MARGIN
                                     : 0;
}

/* Opens a session: TCP, timeouts (io_timeout seconds for reads and writes,
 * 0: none), utf8mb4, autocommit on, the statement time limit. NULL with the
 * client's or server's message in err on failure. */
static MYSQL *db_connect(const struct lh_db *db, unsigned int io_timeout, char *err, size_t errlen)
{
    MYSQL *m = mysql_init(NULL);
    unsigned int protocol = MYSQL_PROTOCOL_TCP;
    /* Connecting (TCP, then the server's greeting) is part of a request's
     * wait for a connection: a server that accepts but does not greet yet
     * (starting, overloaded) costs a request no more than acquire_timeout. */
    unsigned int connect_timeout = db->acquire_timeout < CONNECT_TIMEOUT
                                       ? (unsigned int)ceil(db->acquire_timeout)
                                       : CONNECT_TIMEOUT;
    my_bool reconnect = 0;
    char q[96];

    if (m == NULL) {
        set_err(err, errlen, "out of memory");
        return NULL;
    }
    if (mysql_options(m, MYSQL_OPT_PROTOCOL, &protocol) != 0 ||
        mysql_options(m, MYSQL_OPT_CONNECT_TIMEOUT, &connect_timeout) != 0 ||
        (io_timeout > 0 && mysql_options(m, MYSQL_OPT_READ_TIMEOUT, &io_timeout) != 0) ||
        (io_timeout > 0 && mysql_options(m, MYSQL_OPT_WRITE_TIMEOUT, &io_timeout) != 0) ||
        mysql_options(m, MYSQL_OPT_RECONNECT, &reconnect) != 0 || /* we reconnect ourselves */
        mysql_options(m, MYSQL_SET_CHARSET_NAME, "utf8mb4") != 0) {
        set_err(err, errlen, "cannot set connection options: %s", mysql_error(m));
        goto fail;
    }
    if (mysql_real_connect(m, db->host, db->user, db->password, db->database,
                           (unsigned int)db->port, NULL, 0) == NULL) {
        set_err(err, errlen, "%s", mysql_error(m));
        goto fail;
    }
    if (mysql_autocommit(m, 1) != 0) {
        set_err(err, errlen, "cannot enable autocommit: %s", mysql_error(m));
        goto fail;
    }
    if (db->statement_timeout > 0) {
        const char *info = mysql_get_server_info(m);
        int n;
        if (info != NULL && strstr(info, "MariaDB") != NULL)
            n = snprintf(q, sizeof(q), "SET SESSION max_statement_time = %.3f",
                         db->statement_timeout);
        else
            n = snprintf(q, sizeof(q), "SET SESSION max_execution_time = %lu",
                         (unsigned long)ceil(db->statement_timeout * 1000.0));
        if (n < 0 || (size_t)n >= sizeof(q) || mysql_real_query(m, q, (unsigned long)n) != 0) {
            set_err(err, errlen, "cannot set the statement time limit: %s", mysql_error(m));
            goto fail;
        }
    }
    return m;
fail:
    mysql_close(m);
    return NULL;
}

/* Replaces the holder's connection with a new one. why (NULL for a first
 * open) is logged on success; failures are logged at most every
 * DOWN_LOG_INTERVAL seconds. */
static enum lh_status reopen(struct lh_db *db, struct lh_db_conn *c, const char *why,
                             enum lh_log_level level, char *err, size_t errlen)
{
    char cerr[512];

    if (c->mysql != NULL) {
        mysql_close(c->mysql);
        c->mysql = NULL;
    }
    MYSQL *m = db_connect(db, request_io_timeout(db), cerr, sizeof(cerr));
    if (m == NULL) {
        double t = lh_monotonic_seconds();
        int say = 0;
        c->broken = 1; /* so that the reconnect that works is logged */
        set_err(err, errlen, "cannot connect to mysql at %s:%d as %s/%s: %s", db->host, db->port,
                db->user, db->database ? db->database : "", cerr);
        pthread_mutex_lock(&db->lock);
        if (db->down_logged_at == 0 || t - db->down_logged_at >= DOWN_LOG_INTERVAL) {
            db->down_logged_at = t;
            say = 1;
        }
        pthread_mutex_unlock(&db->lock);
        if (say)
            lh_log(LH_LOG_WARN, c->request_id[0] ? c->request_id : NULL,
                   "db %s: cannot connect to %s:%d: %s", db->name, db->host, db->port, cerr);
        return LH_ERR_IO;
    }
    c->mysql = m;
    c->broken = 0;
    c->created = lh_monotonic_seconds();
    if (why != NULL) {
        pthread_mutex_lock(&db->lock);
        db->down_logged_at = 0; /* the next outage is reported at once */
        pthread_mutex_unlock(&db->lock);
        lh_log(level, c->request_id[0] ? c->request_id : NULL, "db %s: reconnected to %s:%d (%s)",
               db->name, db->host, db->port, why);
    }
    return LH_OK;
}

/* -- Monitor ----------------------------------------------------------------- */

static void *monitor_main(void *arg)
{
    struct lh_db *db = arg;

    pthread_mutex_lock(&db->lock);
    while (!db->stopping) {
        struct timespec until = lh_timespec_of(lh_monotonic_seconds() + MONITOR_INTERVAL);
        pthread_cond_timedwait(&db->tick, &db->lock, &until);
        if (db->stopping)
            break;
        double t = lh_monotonic_seconds();
        for (unsigned i = 0; i < db->size; i++) {
            struct lh_db_conn *c = &db->conns[i];
            if (!c->in_use || c->leak_logged || t - c->acquired_at <= db->leak_after)
                continue;
            char id[ID_MAX], route[ROUTE_MAX];
            double held = t - c->acquired_at;
            c->leak_logged = 1;
            db->long_running++;
            memcpy(id, c->request_id, sizeof(id));
            memcpy(route, c->route, sizeof(route));
            pthread_mutex_unlock(&db->lock);
            lh_log(LH_LOG_WARN, NULL, "db %s: connection held for %.1fs by request %s (%s)",
                   db->name, held, id[0] ? id : "-", route[0] ? route : "-");
            pthread_mutex_lock(&db->lock);
        }
    }
    pthread_mutex_unlock(&db->lock);
    return NULL;
}

/* -- Pool -------------------------------------------------------------------- */

static int check_options(const struct lh_db_options *o, char *err, size_t errlen)
{
    static const char *const names[] = {
        "acquire_timeout", "connect_retry_delay", "validate_after", "max_lifetime",
        "leak_after",      "statement_timeout",   "slow_query"};

    if (o == NULL || o->host == NULL || o->host[0] == '\0') {
        set_err(err, errlen, "db: a host is required");
        return 0;
    }
    if (o->port < 0 || o->port > 65535) {
        set_err(err, errlen, "db: port %d is not 0..65535", o->port);
        return 0;
    }
    const double seconds[] = {o->acquire_timeout, o->connect_retry_delay, o->validate_after,
                              o->max_lifetime,    o->leak_after,          o->statement_timeout,
                              o->slow_query};
    for (size_t i = 0; i < sizeof(seconds) / sizeof(seconds[0]); i++) {
        if (!(seconds[i] >= 0) || isinf(seconds[i])) { /* also refuses NaN */
            set_err(err, errlen, "db: %s must be a finite number of seconds >= 0", names[i]);
            return 0;
        }
    }
    return 1;
}

struct lh_db *lh_db_new(const struct lh_db_options *o, char *err, size_t errlen)
{
    struct lh_db *db = NULL;
    pthread_condattr_t ca;
    char cerr[512] = "";
    MYSQL *m = NULL;

    if (!check_options(o, err, errlen))
        return NULL;
    pthread_once(&library_once, library_init);
    if (library_failed) {
        set_err(err, errlen, "db: mysql_library_init failed");
        return NULL;
    }
    db = calloc(1, sizeof(*db));
    if (db == NULL)
        goto nomem;
    if (!dup_opt(&db->name, o->name, "default") || !dup_opt(&db->host, o->host, NULL) ||
        !dup_opt(&db->user, o->user, "") || !dup_opt(&db->password, o->password, NULL) ||
        !dup_opt(&db->database, o->database, NULL))
        goto nomem;
    db->port = o->port ? o->port : 3306;
    db->size = o->size ? o->size : 10;
    db->acquire_timeout = o->acquire_timeout > 0 ? o->acquire_timeout : 5;
    db->connect_attempts = o->connect_attempts ? o->connect_attempts : 3;
    db->connect_retry_delay = o->connect_retry_delay > 0 ? o->connect_retry_delay : 2;
    db->validate_after = o->validate_after > 0 ? o->validate_after : 30;
    db->max_lifetime = o->max_lifetime > 0 ? o->max_lifetime : 1800;
    db->leak_after = o->leak_after > 0 ? o->leak_after : 5;
    db->statement_timeout = o->statement_timeout; /* 0: none */
    db->slow_query = o->slow_query > 0 ? o->slow_query : 1;
    db->conns = calloc(db->size, sizeof(*db->conns));
    if (db->conns == NULL)
        goto nomem;
    for (unsigned i = 0; i < db->size; i++)
        db->conns[i].db = db;
    pthread_mutex_init(&db->lock, NULL);
    pthread_mutex_init(&db->probe_lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&db->freed, &ca);
    pthread_cond_init(&db->tick, &ca);
    pthread_condattr_destroy(&ca);

    for (unsigned a = 1; a <= db->connect_attempts; a++) {
        m = db_connect(db, request_io_timeout(db), cerr, sizeof(cerr));
        if (m != NULL)
            break;
        lh_log(LH_LOG_WARN, NULL, "db %s: connect attempt %u of %u to %s:%d failed: %s", db->name,
               a, db->connect_attempts, db->host, db->port, cerr);
        if (a < db->connect_attempts)
            sleep_seconds(db->connect_retry_delay);
    }
    if (m == NULL) {
        set_err(err, errlen, "cannot connect to mysql at %s:%d as %s/%s after %u attempt%s: %s",
                db->host, db->port, db->user, db->database ? db->database : "",
                db->connect_attempts, db->connect_attempts == 1 ? "" : "s", cerr);
        lh_db_free(db);
        return NULL;
    }
    db->conns[0].mysql = m;
    db->conns[0].created = db->conns[0].last_used = lh_monotonic_seconds();
    db->conns[0].is_open = 1;
    db->open = 1;
    if (pthread_create(&db->monitor, NULL, monitor_main, db) != 0) {
        set_err(err, errlen, "db: cannot start the monitor thread");
        lh_db_free(db);
        return NULL;
    }
    db->monitor_started = 1;
    return db;
nomem:
    set_err(err, errlen, "out of memory");
    if (db != NULL) {
        free(db->name);
        free(db->host);
        free(db->user);
        free(db->password);
        free(db->database);
        free(db->conns);
        free(db);
    }
    return NULL;
}

void lh_db_free(struct lh_db *db)
{
    if (db == NULL)
        return;
    pthread_mutex_lock(&db->lock);
    db->stopping = 1;
    unsigned held = db->active;
    pthread_cond_broadcast(&db->tick);
    pthread_cond_broadcast(&db->freed);
    pthread_mutex_unlock(&db->lock);
    if (held > 0)
        lh_log(LH_LOG_ERROR, NULL, "db %s: freed with %u connection%s still acquired", db->name,
               held, held == 1 ? "" : "s");
    if (db->monitor_started)
        pthread_join(db->monitor, NULL);
    for (unsigned i = 0; i < db->size; i++)
        if (db->conns[i].mysql != NULL)
            mysql_close(db->conns[i].mysql);
    if (db->probe != NULL)
        mysql_close(db->probe);
    pthread_mutex_destroy(&db->probe_lock);
    pthread_cond_destroy(&db->tick);
    pthread_cond_destroy(&db->freed);
    pthread_mutex_destroy(&db->lock);
    free(db->name);
    free(db->host);
    free(db->user);
    if (db->password != NULL) {
        explicit_bzero(db->password, strlen(db->password));
        free(db->password);
    }
    free(db->database);
    free(db->conns);
    free(db);
}

/* An idle slot, preferring the most recently used open connection (so that
 * a quiet pool keeps few connections warm); NULL when all are taken. */
static struct lh_db_conn *pick_locked(struct lh_db *db)
{
    struct lh_db_conn *best = NULL;

    for (unsigned i = 0; i < db->size; i++) {
        struct lh_db_conn *c = &db->conns[i];
        if (c->in_use)
            continue;
        if (best == NULL || (c->is_open && !best->is_open) ||
            (c->is_open == best->is_open && c->last_used > best->last_used))
            best = c;
    }
    return best;
}

enum lh_status lh_db_acquire(struct lh_db *db, const char *request_id, const char *route,
                             struct lh_db_conn **out, char *err, size_t errlen)
{
    struct lh_db_conn *c;
    double t = lh_monotonic_seconds();

    if (out != NULL)
        *out = NULL;
    if (db == NULL || out == NULL) {
        set_err(err, errlen, "db: no pool or no out pointer");
        return LH_ERR_INVALID;
    }
    pthread_mutex_lock(&db->lock);
    c = db->stopping ? NULL : pick_locked(db);
    if (c == NULL && !db->stopping) {
        struct timespec deadline = lh_timespec_of(t + db->acquire_timeout);
        db->waits++;
        db->waiting++;
        while (c == NULL && !db->stopping) {
            int rc = pthread_cond_timedwait(&db->freed, &db->lock, &deadline);
            c = db->stopping ? NULL : pick_locked(db);
            if (rc == ETIMEDOUT)
                break;
        }
        db->waiting--;
        if (c == NULL && !db->stopping) {
            db->timeouts++;
            pthread_mutex_unlock(&db->lock);
            set_err(err, errlen, "pool exhausted: all %u connections busy for %gs", db->size,
                    db->acquire_timeout);
            return LH_ERR_TIMEOUT;
        }
    }
    if (c == NULL) {
        pthread_mutex_unlock(&db->lock);
        set_err(err, errlen, "db: the pool is closing");
        return LH_ERR_CLOSED;
    }
    t = lh_monotonic_seconds();
    c->in_use = 1;
    c->leak_logged = 0;
    c->acquired_at = t;
    copy_name(c->request_id, sizeof(c->request_id), request_id, SIZE_MAX);
    copy_name(c->route, sizeof(c->route), route, SIZE_MAX);
    db->active++;
    int ping = t - c->last_used > db->validate_after || c->last_used < db->lost_at;
    int was_open = c->is_open;
    pthread_mutex_unlock(&db->lock);

    /* We hold the slot now: its connection is ours to test and replace. */
    enum lh_status st = LH_OK;
    if (c->mysql == NULL)
        st = reopen(db, c, c->broken ? "connection lost" : NULL, LH_LOG_WARN, err, errlen);
    else if (c->broken)
        st = reopen(db, c, "connection lost", LH_LOG_WARN, err, errlen);
    else if (t - c->created > db->max_lifetime)
        st = reopen(db, c, "max_lifetime reached", LH_LOG_INFO, err, errlen);
    else if (ping && mysql_ping(c->mysql) != 0)
        st = reopen(db, c, "ping failed", LH_LOG_WARN, err, errlen);

    pthread_mutex_lock(&db->lock);
    c->is_open = c->mysql != NULL;
    if (c->is_open != was_open) {
        if (c->is_open)
            db->open++;
        else
            db->open--;
    }
    if (st == LH_OK) {
        db->served++;
    } else {
        db->errors++;
        c->in_use = 0;
        c->request_id[0] = c->route[0] = '\0';
        db->active--;
        pthread_cond_signal(&db->freed);
    }
    pthread_mutex_unlock(&db->lock);
    if (st == LH_OK)
        *out = c;
    return st;
}

void lh_db_release(struct lh_db *db, struct lh_db_conn *c)
{
    if (db == NULL || c == NULL)
        return;
    pthread_mutex_lock(&db->lock);
    int held = c->db == db && c->in_use;
    pthread_mutex_unlock(&db->lock);
    if (!held) {
        lh_log(LH_LOG_ERROR, NULL, "db %s: release of a connection that is not acquired", db->name);
        return;
    }

    /* A transaction left open, or autocommit turned off, must not reach the
     * next holder; if it cannot be undone, the connection goes. */
    MYSQL *m = c->mysql;
    if (m != NULL && !c->broken) {
        if (m->server_status & SERVER_STATUS_IN_TRANS) {
            lh_log(LH_LOG_WARN, c->request_id[0] ? c->request_id : NULL,
                   "db %s: rolling back a transaction left open (%s)", db->name,
                   c->route[0] ? c->route : "-");
            if (mysql_rollback(m) != 0)
                c->broken = 1;
        }
        if (!c->broken && !(m->server_status & SERVER_STATUS_AUTOCOMMIT) &&
            mysql_autocommit(m, 1) != 0)
            c->broken = 1;
    }
    if (m != NULL && c->broken) {
        mysql_close(m);
        c->mysql = NULL; /* broken stays set: the reopen is logged as a reconnect */
    }

    pthread_mutex_lock(&db->lock);
    if (c->is_open && c->mysql == NULL) {
        c->is_open = 0;
        db->open--;
    }
    c->in_use = 0;
    c->last_used = lh_monotonic_seconds();
    c->request_id[0] = c->route[0] = '\0';
    db->active--;
    pthread_cond_signal(&db->freed);
    pthread_mutex_unlock(&db->lock);
}

enum lh_status lh_db_ping(struct lh_db *db, char *err, size_t errlen)
{
    if (db == NULL) {
        set_err(err, errlen, "db: no pool");
        return LH_ERR_INVALID;
    }
    double start = lh_monotonic_seconds();
    unsigned long seen = atomic_load(&db->probes);
    /* pthread_mutex_timedlock reads CLOCK_REALTIME. */
    struct timespec until = lh_timespec_of(lh_wall_seconds() + db->acquire_timeout);
    if (pthread_mutex_timedlock(&db->probe_lock, &until) != 0) {
        set_err(err, errlen, "the health check before this one has not answered for %gs",
                db->acquire_timeout);
        return LH_ERR_TIMEOUT;
    }
    if (atomic_load(&db->probes) != seen) { /* one ended while we waited: its answer is fresh */
        enum lh_status last = db->probe_status;
        set_err(err, errlen, "%s", db->probe_err);
        pthread_mutex_unlock(&db->probe_lock);
        return last;
    }
    enum lh_status st = LH_OK;
    char *why = db->probe_err;
    why[0] = '\0';
    if (db->probe != NULL && mysql_ping(db->probe) != 0) {
        set_err(why, sizeof(db->probe_err), "%s", mysql_error(db->probe));
        mysql_close(db->probe);
        db->probe = NULL;
        /* A ping refused at once (the server restarted, the connection was
         * killed) is worth a new connection now; one that timed out is not,
         * so that the check takes about acquire_timeout at most. */
        if (lh_monotonic_seconds() - start >= db->acquire_timeout / 2)
            st = LH_ERR_IO;
    }
    if (st == LH_OK && db->probe == NULL) {
        char cerr[512];
        db->probe = db_connect(db, (unsigned int)ceil(db->acquire_timeout), cerr, sizeof(cerr));
        if (db->probe == NULL) {
            set_err(why, sizeof(db->probe_err), "cannot connect to mysql at %s:%d: %s", db->host,
                    db->port, cerr);
            st = LH_ERR_IO;
        }
    }
    if (st != LH_OK)
        set_err(err, errlen, "%s", why);
    db->probe_status = st;
    atomic_fetch_add(&db->probes, 1);
    pthread_mutex_unlock(&db->probe_lock);
    if (st != LH_OK) {
        pthread_mutex_lock(&db->lock);
        db->errors++;
        db->lost_at = lh_monotonic_seconds();
        pthread_mutex_unlock(&db->lock);
    }
    return st;
}

void lh_db_stats(struct lh_db *db, struct lh_db_stats *out)
{
    if (out == NULL)
        return;
    memset(out, 0, sizeof(*out));
    if (db == NULL)
        return;
    pthread_mutex_lock(&db->lock);
    out->name = db->name;
    out->size = db->size;
    out->active = db->active;
    out->open = db->open;
    for (unsigned i = 0; i < db->size; i++)
        if (!db->conns[i].in_use && db->conns[i].is_open)
            out->idle++;
    out->served = db->served;
    out->waits = db->waits;
    out->waiting = db->waiting;
    out->timeouts = db->timeouts;
    out->errors = db->errors;
    out->long_running = db->long_running;
    out->slow = db->slow;
    pthread_mutex_unlock(&db->lock);
}

/* -- Statements -------------------------------------------------------------- */

/* How a result column is fetched and converted. */
enum kind { K_INT, K_UINT, K_DOUBLE, K_DECIMAL, K_TEXT };

struct column {
    enum kind kind;
    union {
        long long i;
        unsigned long long u;
        double d;
    } num;
    char *buf; /* K_DECIMAL, K_TEXT */
    unsigned long cap, length;
    my_bool is_null, error;
};

/* Result under construction: text goes to a growing arena, and a TEXT value
 * keeps its arena offset in .i until finish() points .s at the final copy. */
struct builder {
    struct lh_db_value *values;
    size_t *name_off;
    char *bytes;
    size_t used, cap;
};

/* Reserves len + 1 bytes in the arena; their offset in *off. */
static int arena_reserve(struct builder *b, size_t len, size_t *off)
{
    if (len >= SIZE_MAX / 2 - b->used)
        return 0;
    size_t need = b->used + len + 1;
    if (need > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < need)
            cap *= 2;
        char *p = realloc(b->bytes, cap);
        if (p == NULL)
            return 0;
        b->bytes = p;
        b->cap = cap;
    }
    *off = b->used;
    b->used = need;
    b->bytes[need - 1] = '\0';
    return 1;
}

static int arena_add(struct builder *b, const char *p, size_t len, size_t *off)
{
    if (!arena_reserve(b, len, off))
        return 0;
    if (len > 0)
        memcpy(b->bytes + *off, p, len);
    return 1;
}

/* Moves the result into one allocation: header, values, names, text. */
static struct lh_db_result *finish(struct builder *b, size_t ncols, size_t nrows)
{
    size_t nvalues = ncols * nrows;
    size_t head = (sizeof(struct lh_db_result) + _Alignof(struct lh_db_value) - 1) /
                  _Alignof(struct lh_db_value) * _Alignof(struct lh_db_value);
    size_t vbytes = nvalues * sizeof(struct lh_db_value);
    size_t nbytes = ncols * sizeof(const char *);
    size_t total = head + vbytes + nbytes + b->used;

    char *block = malloc(total);
    if (block == NULL)
        return NULL;
    struct lh_db_result *r = (struct lh_db_result *)(void *)block;
    char *text = block + head + vbytes + nbytes;
    memset(r, 0, sizeof(*r));
    r->ncols = ncols;
    r->nrows = nrows;
    r->values = (struct lh_db_value *)(void *)(block + head);
    r->names = (const char **)(void *)(block + head + vbytes);
    if (b->used > 0)
        memcpy(text, b->bytes, b->used);
    for (size_t k = 0; k < nvalues; k++) {
        r->values[k] = b->values[k];
        if (r->values[k].type == LH_DB_TEXT) {
            r->values[k].s = text + r->values[k].i;
            r->values[k].i = 0;
        }
    }
    for (size_t j = 0; j < ncols; j++)
        r->names[j] = text + b->name_off[j];
    return r;
}

static struct lh_db_result *empty_result(unsigned long long affected, unsigned long long insert_id)
{
    struct lh_db_result *r = calloc(1, sizeof(*r));
    if (r != NULL) {
        r->affected = affected;
        r->insert_id = insert_id;
    }
    return r;
}

static enum kind kind_of(const MYSQL_FIELD *f)
{
    switch (f->type) {
    case MYSQL_TYPE_TINY:
    case MYSQL_TYPE_SHORT:
    case MYSQL_TYPE_INT24:
    case MYSQL_TYPE_LONG:
    case MYSQL_TYPE_LONGLONG:
    case MYSQL_TYPE_YEAR:
        return f->flags & UNSIGNED_FLAG ? K_UINT : K_INT;
    case MYSQL_TYPE_FLOAT:
    case MYSQL_TYPE_DOUBLE:
        return K_DOUBLE;
    case MYSQL_TYPE_DECIMAL:
    case MYSQL_TYPE_NEWDECIMAL:
        return K_DECIMAL;
    default:
        return K_TEXT;
    }
}

/* Maps a libmariadb/server error number to a status, marking the connection
 * broken when the error means it is gone. */
static enum lh_status classify(struct lh_db_conn *c, unsigned int no)
{
    switch (no) {
    case ER_STATEMENT_TIMEOUT:
    case MYSQL_QUERY_TIMEOUT:
        return LH_ERR_TIMEOUT;
    case CR_SERVER_GONE_ERROR:
    case CR_SERVER_LOST:
    case CR_CONNECTION_ERROR:
    case CR_CONN_HOST_ERROR:
    case CR_SERVER_LOST_EXTENDED:
    case ER_CONNECTION_KILLED:
    case ER_SERVER_SHUTDOWN:
        c->broken = 1;
        return LH_ERR_IO;
    case CR_OUT_OF_MEMORY:
        return LH_ERR_NOMEM;
    case ER_LOCK_DEADLOCK:
    case ER_DUP_ENTRY:
        return LH_ERR_CONFLICT;
    default:
        return LH_ERR_INVALID;
    }
}

static enum lh_status stmt_fail(struct lh_db_conn *c, MYSQL_STMT *stmt, char *err, size_t errlen)
{
    unsigned int no = mysql_stmt_errno(stmt);
    const char *msg = mysql_stmt_error(stmt);

    if (no == 0) { /* some client failures only reach the connection */
        no = mysql_errno(c->mysql);
        msg = mysql_error(c->mysql);
    }
    set_err(err, errlen, "%s", msg && msg[0] ? msg : "unknown mysql error");
    return classify(c, no);
}

/* Binds params in binds (MYSQL_BIND per parameter, zeroed) with nums and
 * lens as their storage. */
static enum lh_status bind_params(MYSQL_BIND *binds, long long *ints, double *dbls,
                                  unsigned long *lens, const struct lh_db_value *params,
                                  size_t nparams, char *err, size_t errlen)
{
    static char empty[1];

    for (size_t i = 0; i < nparams; i++) {
        const struct lh_db_value *p = &params[i];
        MYSQL_BIND *b = &binds[i];
        switch (p->type) {
        case LH_DB_NULL:
            b->buffer_type = MYSQL_TYPE_NULL;
            break;
        case LH_DB_INT:
            ints[i] = p->i;
            b->buffer_type = MYSQL_TYPE_LONGLONG;
            b->buffer = &ints[i];
            break;
        case LH_DB_DOUBLE:
            dbls[i] = p->d;
            b->buffer_type = MYSQL_TYPE_DOUBLE;
            b->buffer = &dbls[i];
            break;
        case LH_DB_TEXT:
            if (p->s == NULL && p->len > 0) {
                set_err(err, errlen, "parameter %zu: text is NULL", i + 1);
                return LH_ERR_INVALID;
            }
            if (p->len > ULONG_MAX) {
                set_err(err, errlen, "parameter %zu: text too long", i + 1);
                return LH_ERR_INVALID;
            }
            lens[i] = (unsigned long)p->len;
            b->buffer_type = MYSQL_TYPE_STRING;
            /* libmariadb only reads input buffers */
            b->buffer = p->s != NULL ? (void *)p->s : empty;
            b->buffer_length = lens[i];
            b->length = &lens[i];
            break;
        default:
            set_err(err, errlen, "parameter %zu: unknown type %d", i + 1, (int)p->type);
            return LH_ERR_INVALID;
        }
    }
    return LH_OK;
}

/* Fetches every stored row of stmt into a result. */
static enum lh_status fetch_rows(struct lh_db_conn *c, MYSQL_STMT *stmt, struct lh_db_result **out,
                                 char *err, size_t errlen)
{
    enum lh_status st = LH_ERR_NOMEM;
    MYSQL_RES *meta = NULL;
    MYSQL_BIND *binds = NULL;
    struct column *cols = NULL;
    struct builder b = {0};
    size_t ncols = 0, nrows = 0, row = 0;

    meta = mysql_stmt_result_metadata(stmt);
    if (meta == NULL) {
        st = stmt_fail(c, stmt, err, errlen);
        goto out;
    }
    ncols = mysql_num_fields(meta);
    MYSQL_FIELD *fields = mysql_fetch_fields(meta);
    unsigned long long stored = mysql_stmt_num_rows(stmt);
    if (ncols == 0 || fields == NULL || stored > SIZE_MAX / ncols / sizeof(struct lh_db_value)) {
        set_err(err, errlen, "result too large");
        goto out;
    }
    nrows = (size_t)stored;
    binds = calloc(ncols, sizeof(*binds));
    cols = calloc(ncols, sizeof(*cols));
    b.values = calloc(nrows * ncols + 1, sizeof(*b.values));
    b.name_off = calloc(ncols, sizeof(*b.name_off));
    if (binds == NULL || cols == NULL || b.values == NULL || b.name_off == NULL)
        goto nomem;

    for (size_t j = 0; j < ncols; j++) {
        struct column *col = &cols[j];
        MYSQL_BIND *bd = &binds[j];
        if (!arena_add(&b, fields[j].name ? fields[j].name : "", fields[j].name_length,
                       &b.name_off[j]))
            goto nomem;
        col->kind = kind_of(&fields[j]);
        bd->is_null = &col->is_null;
        bd->error = &col->error;
        bd->length = &col->length;
        switch (col->kind) {
        case K_INT:
        case K_UINT:
            bd->buffer_type = MYSQL_TYPE_LONGLONG;
            bd->buffer = &col->num;
            bd->is_unsigned = col->kind == K_UINT;
            break;
        case K_DOUBLE:
            bd->buffer_type = MYSQL_TYPE_DOUBLE;
            bd->buffer = &col->num;
            break;
        case K_DECIMAL:
        case K_TEXT: {
            /* Dates, times and numbers come as text too: "2026-11-25 10:20:30". */
            unsigned long cap = fields[j].max_length + 1;
            if (cap < TEXT_BUF_MIN)
                cap = TEXT_BUF_MIN;
            if (cap > TEXT_BUF_MAX)
                cap = TEXT_BUF_MAX;
            col->buf = malloc(cap);
            if (col->buf == NULL)
                goto nomem;
            col->cap = cap;
            bd->buffer_type = MYSQL_TYPE_STRING;
            bd->buffer = col->buf;
            bd->buffer_length = cap;
            break;
        }
        }
    }
    if (mysql_stmt_bind_result(stmt, binds) != 0) {
        st = stmt_fail(c, stmt, err, errlen);
        goto out;
    }

    for (;;) {
        int rc = mysql_stmt_fetch(stmt);
        if (rc == MYSQL_NO_DATA)
            break;
        if (rc == 1) {
            st = stmt_fail(c, stmt, err, errlen);
            goto out;
        }
        if (row >= nrows) { /* store_result counted them: cannot happen */
            set_err(err, errlen, "more rows than stored");
            st = LH_ERR_INVALID;
            goto out;
        }
        for (size_t j = 0; j < ncols; j++) {
            struct column *col = &cols[j];
            struct lh_db_value *v = &b.values[row * ncols + j];
            if (col->is_null) {
                v->type = LH_DB_NULL;
                continue;
            }
            switch (col->kind) {
            case K_INT:
                v->type = LH_DB_INT;
                v->i = col->num.i;
                continue;
            case K_UINT:
                if (col->num.u > (unsigned long long)LLONG_MAX) {
                    v->type = LH_DB_DOUBLE;
                    v->d = (double)col->num.u;
                } else {
                    v->type = LH_DB_INT;
                    v->i = (long long)col->num.u;
                }
                continue;
            case K_DOUBLE:
                v->type = LH_DB_DOUBLE;
                v->d = col->num.d;
                continue;
            case K_DECIMAL:
            case K_TEXT:
                break;
            }
            size_t len = col->length, off;
            if (!arena_reserve(&b, len, &off))
                goto nomem;
            if (col->length > col->cap) {
                /* Longer than the buffer (max_length was not enough, or a
                 * blob above TEXT_BUF_MAX): fetch it whole into the arena. */
                MYSQL_BIND whole = {0};
                unsigned long got = 0;
                my_bool null = 0, trunc = 0;
                whole.buffer_type = MYSQL_TYPE_STRING;
                whole.buffer = b.bytes + off;
                whole.buffer_length = (unsigned long)len + 1;
                whole.length = &got;
                whole.is_null = &null;
                whole.error = &trunc;
                if (mysql_stmt_fetch_column(stmt, &whole, (unsigned int)j, 0) != 0) {
                    st = stmt_fail(c, stmt, err, errlen);
                    goto out;
                }
                b.bytes[off + len] = '\0';
            } else if (len > 0) {
                memcpy(b.bytes + off, col->buf, len);
            }
            if (col->kind == K_DECIMAL) {
                v->type = LH_DB_DOUBLE;
                v->d = strtod(b.bytes + off, NULL);
                b.used = off; /* the text is not kept */
            } else {
                v->type = LH_DB_TEXT;
                v->i = (long long)off;
                v->len = len;
            }
        }
        row++;
    }
    if (row != nrows) {
        set_err(err, errlen, "fewer rows than stored");
        st = LH_ERR_INVALID;
        goto out;
    }
    *out = finish(&b, ncols, nrows);
    if (*out == NULL)
        goto nomem;
    st = LH_OK;
    goto out;
nomem:
    set_err(err, errlen, "out of memory");
    st = LH_ERR_NOMEM;
out:
    if (cols != NULL)
        for (size_t j = 0; j < ncols; j++)
            free(cols[j].buf);
    free(cols);
    free(binds);
    free(b.values);
    free(b.name_off);
    free(b.bytes);
    if (meta != NULL)
        mysql_free_result(meta);
    return st;
}

/* Writes up to SQL_LOG_MAX bytes of sql into out as one line. */
static void sql_excerpt(char *out, size_t size, const char *sql, size_t len)
{
    size_t n = 0;

    for (; n < len && n < SQL_LOG_MAX && n + 4 < size; n++) {
        unsigned char ch = (unsigned char)sql[n];
        out[n] = ch < 0x20 || ch == 0x7f ? ' ' : (char)ch;
    }
    if (n < len && n + 4 < size) {
        memcpy(out + n, "...", 3);
        n += 3;
    }
    out[n] = '\0';
}

enum lh_status lh_db_run(struct lh_db_conn *c, const char *sql, size_t sql_len,
                         const struct lh_db_value *params, size_t nparams,
                         struct lh_db_result **out, char *err, size_t errlen)
{
    enum lh_status st = LH_ERR_NOMEM;
    MYSQL_STMT *stmt = NULL;
    MYSQL_BIND *binds = NULL;
    long long *ints = NULL;
    double *dbls = NULL;
    unsigned long *lens = NULL;
    double start = lh_monotonic_seconds();

    if (out != NULL)
        *out = NULL;
    if (c == NULL || out == NULL || sql == NULL || (params == NULL && nparams > 0)) {
        set_err(err, errlen, "db: missing connection, statement, parameters or out pointer");
        return LH_ERR_INVALID;
    }
    if (c->mysql == NULL || c->broken) {
        set_err(err, errlen, "db: the connection was lost; release it and acquire another");
        st = LH_ERR_IO;
        goto out;
    }
    if (sql_len > ULONG_MAX) {
        set_err(err, errlen, "db: statement too long");
        st = LH_ERR_INVALID;
        goto out;
    }
    stmt = mysql_stmt_init(c->mysql);
    if (stmt == NULL) {
        set_err(err, errlen, "out of memory");
        goto out;
    }
    if (mysql_stmt_prepare(stmt, sql, (unsigned long)sql_len) != 0) {
        st = stmt_fail(c, stmt, err, errlen);
        goto out;
    }
    unsigned long wanted = mysql_stmt_param_count(stmt);
    if (wanted != nparams) {
        set_err(err, errlen, "statement wants %lu parameter%s, got %zu", wanted,
                wanted == 1 ? "" : "s", nparams);
        st = LH_ERR_INVALID;
        goto out;
    }
    if (nparams > 0) {
        binds = calloc(nparams, sizeof(*binds));
        ints = calloc(nparams, sizeof(*ints));
        dbls = calloc(nparams, sizeof(*dbls));
        lens = calloc(nparams, sizeof(*lens));
        if (binds == NULL || ints == NULL || dbls == NULL || lens == NULL) {
            set_err(err, errlen, "out of memory");
            goto out;
        }
        st = bind_params(binds, ints, dbls, lens, params, nparams, err, errlen);
        if (st != LH_OK)
            goto out;
        if (mysql_stmt_bind_param(stmt, binds) != 0) {
            st = stmt_fail(c, stmt, err, errlen);
            goto out;
        }
    }
    if (mysql_stmt_execute(stmt) != 0) {
        st = stmt_fail(c, stmt, err, errlen);
        goto out;
    }
    if (mysql_stmt_field_count(stmt) == 0) {
        *out = empty_result(mysql_stmt_affected_rows(stmt), mysql_stmt_insert_id(stmt));
        st = *out != NULL ? LH_OK : LH_ERR_NOMEM;
        if (st != LH_OK)
            set_err(err, errlen, "out of memory");
        goto out;
    }
    my_bool update_max = 1;
    if (mysql_stmt_attr_set(stmt, STMT_ATTR_UPDATE_MAX_LENGTH, &update_max) != 0 ||
        mysql_stmt_store_result(stmt) != 0) {
        st = stmt_fail(c, stmt, err, errlen);
        goto out;
    }
    st = fetch_rows(c, stmt, out, err, errlen);
    mysql_stmt_free_result(stmt);
    /* Only the first result set is returned (a CALL may send more). */
    while (st == LH_OK && mysql_stmt_more_results(stmt) && mysql_stmt_next_result(stmt) == 0)
        mysql_stmt_free_result(stmt);

out:
    if (stmt != NULL)
        mysql_stmt_close(stmt);
    free(binds);
    free(ints);
    free(dbls);
    free(lens);

    double took = lh_monotonic_seconds() - start;
    int slow = took > c->db->slow_query;
    if (slow) {
        char excerpt[SQL_LOG_MAX + 8];
        sql_excerpt(excerpt, sizeof(excerpt), sql, sql_len);
        lh_log(LH_LOG_WARN, c->request_id[0] ? c->request_id : NULL,
               "db %s: slow statement (%.3fs, %s): %s", c->db->name, took, lh_status_str(st),
               excerpt);
    }
    if (st != LH_OK || slow) {
        pthread_mutex_lock(&c->db->lock);
        if (st != LH_OK)
            c->db->errors++;
        if (st == LH_ERR_IO)
            c->db->lost_at = lh_monotonic_seconds();
        if (slow)
            c->db->slow++;
        pthread_mutex_unlock(&c->db->lock);
    }
    return st;
}

/* -- Results ----------------------------------------------------------------- */

size_t lh_db_result_columns(const struct lh_db_result *r)
{
    return r != NULL ? r->ncols : 0;
}

const char *lh_db_result_name(const struct lh_db_result *r, size_t column)
{
    return r != NULL && column < r->ncols ? r->names[column] : NULL;
}

size_t lh_db_result_rows(const struct lh_db_result *r)
{
    return r != NULL ? r->nrows : 0;
}

const struct lh_db_value *lh_db_result_value(const struct lh_db_result *r, size_t row,
                                             size_t column)
{
    if (r == NULL || row >= r->nrows || column >= r->ncols)
        return NULL;
    return &r->values[row * r->ncols + column];
}

unsigned long long lh_db_result_affected(const struct lh_db_result *r)
{
    return r != NULL ? r->affected : 0;
}

unsigned long long lh_db_result_insert_id(const struct lh_db_result *r)
{
    return r != NULL ? r->insert_id : 0;
}

void lh_db_result_free(struct lh_db_result *r)
{
    free(r);
}
