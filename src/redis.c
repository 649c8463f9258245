/* src/redis.c: a Redis connection pool with outage handling, and a
 * subscriber thread (see include/luahost/redis.h). */
#include "luahost/redis.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "luahost/log.h"
#include "luahost/url.h"

#define DOWN_SECONDS 0.25
#define DEFAULT_POOL 4


void lh_redis_options_from_url(struct lh_redis_options *o, const struct lh_url *url)
{
    o->host = url->host;
    o->port = url->port ? url->port : 6379;
    o->password = url->password;
    o->db = url->path[0] ? (int)strtol(url->path, NULL, 10) : 0;
}

static struct timeval timeout_of(const struct lh_redis_options *o)
{
    double t = o->timeout > 0 ? o->timeout : 0.1;
    struct timeval tv = {.tv_sec = (time_t)t,
                         .tv_usec = (suseconds_t)((t - (double)(time_t)t) * 1e6)};
    return tv;
}

/* Runs a setup command; 0 with the reason in err when it fails. */
static int setup_command(redisContext *c, char *err, size_t errlen, const char *what,
                         const char *fmt, const char *arg)
{
    redisReply *r = redisCommand(c, fmt, arg);
    int ok = r != NULL && c->err == 0 && r->type != REDIS_REPLY_ERROR;
    if (!ok)
        snprintf(err, errlen, "%s failed: %s", what, c->err ? c->errstr : r ? r->str : "no reply");
    freeReplyObject(r);
    return ok;
}

redisContext *lh_redis_connect(const struct lh_redis_options *o, char *err, size_t errlen)
{
    struct timeval tv = timeout_of(o);
    char db[16];

    redisContext *c = redisConnectWithTimeout(o->host, o->port ? o->port : 6379, tv);
    if (c == NULL || c->err) {
        snprintf(err, errlen, "%s", c ? c->errstr : "out of memory");
        redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    snprintf(db, sizeof(db), "%d", o->db);
    if ((o->password && o->password[0] &&
         !setup_command(c, err, errlen, "AUTH", "AUTH %s", o->password)) ||
        (o->db != 0 && !setup_command(c, err, errlen, "SELECT", "SELECT %s", db))) {
        redisFree(c);
        return NULL;
    }
    return c;
}

/* -- Pool -------------------------------------------------------------------- */

struct lh_redis {
    pthread_mutex_t lock;
    struct lh_redis_options o;
    char *host, *password;
    redisContext **idle;
    unsigned nidle, cap;
    double down_until;
    atomic_int down; /* an outage was logged and has not ended */
    atomic_ullong errors;
};

struct lh_redis *lh_redis_new(const struct lh_redis_options *o)
{
    struct lh_redis *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    r->o = *o;
    r->cap = o->pool_size ? o->pool_size : DEFAULT_POOL;
    r->host = strdup(o->host ? o->host : "127.0.0.1");
    r->password = o->password ? strdup(o->password) : NULL;
    r->idle = calloc(r->cap, sizeof(*r->idle));
    if (r->host == NULL || r->idle == NULL || (o->password && r->password == NULL)) {
        lh_redis_free(r);
        return NULL;
    }
    r->o.host = r->host;
    r->o.password = r->password;
    pthread_mutex_init(&r->lock, NULL);
    return r;
}

void lh_redis_free(struct lh_redis *r)
{
    if (r == NULL)
        return;
    for (unsigned i = 0; i < r->nidle; i++)
        redisFree(r->idle[i]);
    if (r->idle)
        pthread_mutex_destroy(&r->lock);
    free(r->idle);
    free(r->host);
    free(r->password);
    free(r);
}

static void mark_down(struct lh_redis *r, const char *why)
{
    atomic_fetch_add_explicit(&r->errors, 1, memory_order_relaxed);
    pthread_mutex_lock(&r->lock);
    r->down_until = lh_monotonic_seconds() + DOWN_SECONDS;
    int first = !atomic_exchange(&r->down, 1);
    pthread_mutex_unlock(&r->lock);
    if (first)
        lh_log(LH_LOG_WARN, NULL, "redis %s:%d unavailable (%s); trying again as requests come",
               r->o.host, r->o.port, why);
}

static void mark_up(struct lh_redis *r)
{
    if (atomic_load_explicit(&r->down, memory_order_relaxed) && atomic_exchange(&r->down, 0))
        lh_log(LH_LOG_INFO, NULL, "redis %s:%d answers again", r->o.host, r->o.port);
}

unsigned long long lh_redis_errors(struct lh_redis *r)
{
    return atomic_load_explicit(&r->errors, memory_order_relaxed);
}

int lh_redis_up(struct lh_redis *r)
{
    return !atomic_load_explicit(&r->down, memory_order_relaxed);
}

enum lh_status lh_redis_command(struct lh_redis *r, int argc, const char **argv,
                                const size_t *lens, redisReply **reply, char *err, size_t errlen)
{
    redisContext *c = NULL;

    *reply = NULL;
    pthread_mutex_lock(&r->lock);
    int down = r->down_until > lh_monotonic_seconds();
    if (!down && r->nidle > 0)
        c = r->idle[--r->nidle];
    pthread_mutex_unlock(&r->lock);
    if (down) {
        atomic_fetch_add_explicit(&r->errors, 1, memory_order_relaxed);
        snprintf(err, errlen, "redis unavailable");
        return LH_ERR_CLOSED;
    }
    if (c == NULL && (c = lh_redis_connect(&r->o, err, errlen)) == NULL) {
        mark_down(r, err);
        return LH_ERR_IO;
    }
    *reply = redisCommandArgv(c, argc, argv, lens);
    if (*reply == NULL) {
        snprintf(err, errlen, "%s", c->err ? c->errstr : "no reply");
        redisFree(c);
        mark_down(r, err);
        return LH_ERR_IO;
    }
    mark_up(r);
    pthread_mutex_lock(&r->lock);
    if (r->nidle < r->cap) {
        r->idle[r->nidle++] = c;
        c = NULL;
    }
    pthread_mutex_unlock(&r->lock);
    redisFree(c);
    return LH_OK;
}

/* -- Subscriber -------------------------------------------------------------- */

struct lh_redis_subscriber {
    struct lh_redis_options o;
    char *host, *password, *channel;
    lh_redis_message_fn fn;
    void *arg;
    int stop_pipe[2];
    pthread_t thread;
    int started;
};

/* Waits up to ms for the stop signal; 1 when asked to stop. */
static int stop_requested(struct lh_redis_subscriber *s, int ms)
{
    struct pollfd p = {.fd = s->stop_pipe[0], .events = POLLIN};
    return poll(&p, 1, ms) > 0;
}

/* Delivers the messages buffered in c; 0 on a protocol error. */
static int deliver(struct lh_redis_subscriber *s, redisContext *c)
{
    void *v;
    while (redisGetReplyFromReader(c, &v) == REDIS_OK && v != NULL) {
        redisReply *m = v;
        if (m->type == REDIS_REPLY_ARRAY && m->elements == 3 &&
            m->element[0]->type == REDIS_REPLY_STRING && strcmp(m->element[0]->str, "message") == 0 &&
            m->element[2]->type == REDIS_REPLY_STRING)
            s->fn(s->arg, m->element[2]->str, m->element[2]->len);
        freeReplyObject(m);
    }
    return c->err == 0;
}

/* Holds one subscription until it fails or stop; returns the reason. */
static void listen_once(struct lh_redis_subscriber *s, redisContext *c, char *why, size_t whylen)
{
    redisReply *r = redisCommand(c, "SUBSCRIBE %s", s->channel);
    int ok = r != NULL && r->type == REDIS_REPLY_ARRAY;
    freeReplyObject(r);
    if (!ok) {
        snprintf(why, whylen, "SUBSCRIBE failed: %s", c->err ? c->errstr : "bad reply");
        return;
    }
    s->fn(s->arg, NULL, 0);
    for (;;) {
        struct pollfd p[2] = {{.fd = c->fd, .events = POLLIN}, {.fd = s->stop_pipe[0], .events = POLLIN}};
        if (poll(p, 2, -1) < 0 && errno != EINTR) {
            snprintf(why, whylen, "poll: %s", strerror(errno));
            return;
        }
        if (p[1].revents)
            return;
        if (p[0].revents && (redisBufferRead(c) != REDIS_OK || !deliver(s, c))) {
            snprintf(why, whylen, "%s", c->err ? c->errstr : "connection closed");
            return;
        }
    }
}

static void *subscriber_main(void *arg)
{
    struct lh_redis_subscriber *s = arg;
    char why[256];
    int reported = 0;

    do {
        why[0] = '\0';
        redisContext *c = lh_redis_connect(&s->o, why, sizeof(why));
        if (c != NULL) {
            if (reported)
                lh_log(LH_LOG_INFO, NULL, "redis subscriber: listening on %s again", s->channel);
            reported = 0;
            listen_once(s, c, why, sizeof(why));
            redisFree(c);
        }
        if (why[0] && !reported) {
            lh_log(LH_LOG_WARN, NULL, "redis subscriber on %s: %s; retrying every second",
                   s->channel, why);
            reported = 1;
        }
    } while (!stop_requested(s, why[0] ? 1000 : 0));
    return NULL;
}

struct lh_redis_subscriber *lh_redis_subscribe(const struct lh_redis_options *o,
                                               const char *channel, lh_redis_message_fn fn,
                                               void *arg)
{
    struct lh_redis_subscriber *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->stop_pipe[0] = s->stop_pipe[1] = -1;
    s->o = *o;
    s->fn = fn;
    s->arg = arg;
    s->host = strdup(o->host ? o->host : "127.0.0.1");
    s->password = o->password ? strdup(o->password) : NULL;
    s->channel = strdup(channel);
    if (s->host == NULL || s->channel == NULL || (o->password && s->password == NULL) ||
        pipe(s->stop_pipe) != 0) {
        lh_redis_subscriber_free(s);
        return NULL;
    }
    s->o.host = s->host;
    s->o.password = s->password;
    if (pthread_create(&s->thread, NULL, subscriber_main, s) != 0) {
        lh_redis_subscriber_free(s);
        return NULL;
    }
    s->started = 1;
    return s;
}

void lh_redis_subscriber_free(struct lh_redis_subscriber *s)
{
    if (s == NULL)
        return;
    if (s->started) {
        ssize_t n = write(s->stop_pipe[1], "x", 1);
        (void)n; /* a full pipe already says stop */
        pthread_join(s->thread, NULL);
    }
    for (int i = 0; i < 2; i++) {
        if (s->stop_pipe[i] >= 0)
            close(s->stop_pipe[i]);
    }
    free(s->host);
    free(s->password);
    free(s->channel);
    free(s);
}
