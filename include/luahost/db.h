/* include/luahost/db.h: a fixed-size, thread-safe pool of MariaDB/MySQL
 * connections, and prepared statements with bound parameters.
 *
 * Thread safety: lh_db_* on a pool from any thread. A connection belongs to
 * the thread that acquired it until it is released; a result to whoever holds
 * it. Blocking: acquire and run block the calling thread (luahost calls them
 * from its blocking-work threads, never from HTTP threads). */
#ifndef LUAHOST_DB_H
#define LUAHOST_DB_H
#include <stddef.h>
#include "luahost/common.h"

enum lh_db_type { LH_DB_NULL, LH_DB_INT, LH_DB_DOUBLE, LH_DB_TEXT };

/* A parameter or a result value. In parameters, text is borrowed from the
 * caller (s with len bytes, NUL bytes allowed; s may be NULL when len is 0);
 * in results, it is owned by the result and NUL-terminated. Integer columns
 * come back as LH_DB_INT (an UNSIGNED value above LLONG_MAX as LH_DB_DOUBLE),
 * floating and DECIMAL as LH_DB_DOUBLE, dates and times as LH_DB_TEXT
 * ("2026-11-25 10:20:30"), strings and blobs as LH_DB_TEXT, SQL NULL as
 * LH_DB_NULL. Only the field named by type is meaningful. */
struct lh_db_value {
    enum lh_db_type type;
    long long i;
    double d;
    const char *s;
    size_t len;
};

/* A field left 0 takes its default, except statement_timeout, where 0 means
 * no limit (so the caller passes the default 30) and no read timeout on
 * request connections: a statement waits for the server as long as it takes;
 * with a limit, the client also gives up reading after statement_timeout +
 * 10 s. Negative or NaN times are refused.
 * The strings are copied; the password is never logged. */
struct lh_db_options {
    const char *name; /* for stats and logs, e.g. "default" */
    const char *host; /* use 127.0.0.1, not localhost (that means the socket) */
    int port;
    const char *user, *password, *database;
    unsigned size;              /* connections; default 10 */
    double acquire_timeout;     /* seconds to wait for a free connection, and at
                                   most for connecting (5 at most); default 5 */
    unsigned connect_attempts;  /* at start; default 3 */
    double connect_retry_delay; /* seconds between them; default 2 */
    double validate_after;      /* ping a connection idle this long before use; default 30 */
    double max_lifetime;        /* reconnect connections older than this; default 1800 */
    double leak_after;          /* warn about a connection held this long; default 5 */
    double statement_timeout;   /* per statement, seconds, 0: none; default 30 */
    double slow_query;          /* log statements slower than this; default 1 */
};

struct lh_db;        /* opaque pool */
struct lh_db_conn;   /* opaque pooled connection */
struct lh_db_result; /* opaque result */

/* Creates the pool and opens one connection to check the server, trying
 * connect_attempts times, connect_retry_delay apart; the others open on
 * demand. Detects the server's statement time limit variable (MariaDB
 * max_statement_time, MySQL max_execution_time). NULL with a message naming
 * host, port and the server's error in err when the database never answers. */
struct lh_db *lh_db_new(const struct lh_db_options *o, char *err, size_t errlen);
/* Closes every connection; none may be acquired. NULL is a no-op. */
void lh_db_free(struct lh_db *db);

/* Takes a connection, waiting up to acquire_timeout: LH_ERR_TIMEOUT ("pool
 * exhausted") then. Reconnects a connection that is broken, too old, or that
 * fails its ping after validate_after idle seconds (or idle since another
 * connection was found lost): LH_ERR_IO when the server cannot be reached.
 * request_id and route (copied, either may be NULL) name the holder in the
 * leak warning. LH_ERR_CLOSED while the pool is being freed. */
enum lh_status lh_db_acquire(struct lh_db *db, const char *request_id, const char *route,
                             struct lh_db_conn **out, char *err, size_t errlen);
/* Gives the connection back, once: rolls back a transaction left open and
 * turns autocommit back on first, and closes a connection that was lost (the
 * slot reconnects at its next acquire). */
void lh_db_release(struct lh_db *db, struct lh_db_conn *c);

/* Prepares sql (with ? placeholders), binds params, executes, and returns the
 * rows (or the affected-row count and insert id) in *out, to be freed with
 * lh_db_result_free(); *out is NULL on error. Parameters are sent apart from
 * the SQL, never spliced into it. Of several result sets (CALL), the first is
 * returned. Errors: LH_ERR_TIMEOUT when the statement time limit cut it off
 * (the connection stays usable), LH_ERR_IO when the connection was lost
 * (every later run on it fails the same way; it is reconnected at the next
 * acquire), LH_ERR_CONFLICT when another transaction was in the way (a
 * deadlock, a duplicate key: running the transaction again may succeed),
 * LH_ERR_INVALID for another SQL error or a parameter count mismatch;
 * err holds the server's message. Statements slower than slow_query are
 * logged with their SQL, never their parameters. */
enum lh_status lh_db_run(struct lh_db_conn *c, const char *sql, size_t sql_len,
                         const struct lh_db_value *params, size_t nparams,
                         struct lh_db_result **out, char *err, size_t errlen);

size_t lh_db_result_columns(const struct lh_db_result *r);
const char *lh_db_result_name(const struct lh_db_result *r, size_t column);
size_t lh_db_result_rows(const struct lh_db_result *r);
const struct lh_db_value *lh_db_result_value(const struct lh_db_result *r, size_t row,
                                             size_t column);
unsigned long long lh_db_result_affected(const struct lh_db_result *r);
unsigned long long lh_db_result_insert_id(const struct lh_db_result *r);
void lh_db_result_free(struct lh_db_result *r);

/* The health check: pings the database on a connection of its own, outside
 * the pool (a pool busy with requests is not a sick database), opened on
 * first use and again after a failure, whose reads time out after
 * acquire_timeout. LH_OK when the database answers; LH_ERR_IO when it
 * refuses or does not answer within about acquire_timeout; checks run one
 * at a time, and one that waited for another takes that one's answer
 * (LH_ERR_TIMEOUT when it waited acquire_timeout). A failure counts in
 * errors. */
enum lh_status lh_db_ping(struct lh_db *db, char *err, size_t errlen);

/* A snapshot. active: acquired; open: connected; idle: connected and not
 * acquired. served: successful acquires; waits: acquires that had to wait;
 * timeouts: acquires that gave up; errors: failed statements, pings and
 * connects at acquire; long_running: acquisitions held past leak_after;
 * slow: statements slower than slow_query. name lives as long as the pool. */
struct lh_db_stats {
    const char *name;
    unsigned size, active, idle, open, waiting;
    unsigned long long served, waits, timeouts, errors, long_running, slow;
};
void lh_db_stats(struct lh_db *db, struct lh_db_stats *out);

#endif
