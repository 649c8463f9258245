/* include/luahost/redis.h: Redis for the cache and for Lua routes.
 *
 * A pool of blocking hiredis connections, each used by one caller at a time
 * (callers are the task pool's threads), made on demand. A connection error
 * or timeout closes that connection and marks Redis down: for the next
 * quarter of a second every command fails at once instead of each waiting
 * out the timeout; the outage and the recovery are logged once each.
 *
 * A subscriber is a thread of its own holding one SUBSCRIBE connection,
 * reconnecting after failures; it tells its callback when it (re)connects,
 * since messages published meanwhile are lost.
 *
 * Thread safety: everything may be called from any thread; free once. */
#ifndef LUAHOST_REDIS_H
#define LUAHOST_REDIS_H
#include <stddef.h>
#include "luahost/common.h"

struct redisContext;
struct redisReply;
struct lh_url;

struct lh_redis_options {
    const char *host;
    int port;             /* 0: 6379 */
    int db;
    const char *user;     /* ACL user, NULL or "" for none: AUTH password alone */
    const char *password; /* NULL or "" for none */
    double timeout;       /* seconds for connecting and for each reply; 0: 0.1 */
    unsigned pool_size;   /* idle connections kept; 0: 4 */
};

/* Whether a parsed redis://[[user]:password@]host[:port][/db] is usable:
 * the db, if any, is a whole number (whether the server has that many
 * databases, 16 by default, shows when connecting), and a user comes with a
 * password. LH_ERR_INVALID with *err (static text) if not. */
enum lh_status lh_redis_url_check(const struct lh_url *url, const char **err);
/* Fills o's address from a url that passed lh_redis_url_check; strings
 * point into url, which must outlive o. */
void lh_redis_options_from_url(struct lh_redis_options *o, const struct lh_url *url);

/* One connection with the options' timeouts, authenticated (AUTH user
 * password with a user, AUTH password without), database selected. NULL and
 * the reason in err on failure; a timeout reads "no answer within
 * redis_timeout (N ms)". */
struct redisContext *lh_redis_connect(const struct lh_redis_options *o, char *err, size_t errlen);

/* c's error for a log line. hiredis words a timeout as its errno's text
 * ("Resource temporarily unavailable" for a reply): that reads "no answer
 * within redis_timeout (timeout_ms ms)". Call it right after the failing
 * call, while errno is still the one hiredis set. */
const char *lh_redis_error(const struct redisContext *c, long timeout_ms, char *buf, size_t len);

struct lh_redis; /* opaque: a pool */

struct lh_redis *lh_redis_new(const struct lh_redis_options *o);
void lh_redis_free(struct lh_redis *r);

/* Runs one command, blocking. LH_OK with *reply (free it with
 * freeReplyObject; it may be an error reply such as WRONGTYPE); otherwise
 * the reason in err: LH_ERR_IO for a connection failure or timeout,
 * LH_ERR_CLOSED while Redis is marked down. */
enum lh_status lh_redis_command(struct lh_redis *r, int argc, const char **argv,
                                const size_t *lens, struct redisReply **reply, char *err,
                                size_t errlen);
/* 0 while Redis is marked down. */
int lh_redis_up(struct lh_redis *r);
/* Commands that failed (connection, timeout, marked down) since the start. */
unsigned long long lh_redis_errors(struct lh_redis *r);

/* -- Subscriber -------------------------------------------------------------- */

/* A message on the channel, or msg NULL after each (re)subscription: the
 * messages published while unsubscribed are lost. Runs on the subscriber's
 * thread. */
typedef void (*lh_redis_message_fn)(void *arg, const char *msg, size_t len);

struct lh_redis_subscriber; /* opaque */

struct lh_redis_subscriber *lh_redis_subscribe(const struct lh_redis_options *o,
                                               const char *channel, lh_redis_message_fn fn,
                                               void *arg);
/* Stops the thread and frees; NULL is a no-op. */
void lh_redis_subscriber_free(struct lh_redis_subscriber *s);

#endif
