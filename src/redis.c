/* src/redis.c: a Redis connection pool with outage handling, and a
 * subscriber thread (see include/luahost/redis.h). */
#include "luahost/redis.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <limits.h>
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


/* The database index a URL's path names: "" is 0. Whether the server has
 * that many databases is its to say (SELECT fails clearly). */
static enum lh_status db_of(const char *path, int *db, const char **err)
{
    char *end;

    if (path[0] == '\0') {
        *db = 0;
        return LH_OK;
    }
    errno = 0;
    long v = strtol(path, &end, 10);
    if (path[0] < '0' || path[0] > '9' || *end != '\0' || errno != 0 || v > INT_MAX) {
        *err = "the database after the host must be a whole number, such as 0 "
               "(redis://host:port/db)";
        return LH_ERR_INVALID;
    }
    *db = (int)v;
    return LH_OK;
}

enum lh_status lh_redis_url_check(const struct lh_url *url, const char **err)
{
    int db;

    if (url->user[0] != '\0' && url->password[0] == '\0') {
        *err = "a user needs a password (redis://user:password@host:port/db)";
        return LH_ERR_INVALID;
    }
    return db_of(url->path, &db, err);
}

void lh_redis_options_from_url(struct lh_redis_options *o, const struct lh_url *url)
{
    const char *err;

    o->host = url->host;
    o->port = url->port ? url->port : 6379;
    o->user = url->user;
    o->password = url->password;
    o->db = 0;
    (void)db_of(url->path, &o->db, &err); /* checked by lh_redis_url_check */
}

static double seconds_of(const struct lh_redis_options *o)
{
    return o->timeout > 0 ? o->timeout : 0.1;
}

static struct timeval timeout_of(const struct lh_redis_options *o)
{
    double t = seconds_of(o);
    struct timeval tv = {.tv_sec = (time_t)t,
                         .tv_usec = (suseconds_t)((t - (double)(time_t)t) * 1e6)};
    return tv;
}

const char *lh_redis_error(const redisContext *c, long timeout_ms, char *buf, size_t len)
{
    if (c->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ETIMEDOUT)) {
        snprintf(buf, len, "no answer within redis_timeout (%ld ms)", timeout_ms);
        return buf;
    }
    return c->errstr;
}

static const char *error_of(const redisContext *c, const struct lh_redis_options *o, char *buf,
                            size_t len)
{
    return lh_redis_error(c, (long)(seconds_of(o) * 1000 + 0.5), buf, len);
}

/* Runs a setup command; 0 with the reason in err when it fails. */
static int setup_command(redisContext *c, const struct lh_redis_options *o, char *err,
                         size_t errlen, int argc, const char **argv)
{
    char why[64];
    redisReply *r = redisCommandArgv(c, argc, argv, NULL);
    int ok = r != NULL && c->err == 0 && r->type != REDIS_REPLY_ERROR;
    if (!ok)
        snprintf(err, errlen, "%s failed: %s", argv[0],
                 c->err ? error_of(c, o, why, sizeof(why)) : r ? r->str : "no reply");
    freeReplyObject(r);
    return ok;
}

redisContext *lh_redis_connect(const struct lh_redis_options *o, char *err, size_t errlen)
{
    struct timeval tv = timeout_of(o);
    char db[16], why[64];
    const char *auth[3] = {"AUTH"}, *select[2] = {"SELECT", db};
    int nauth = 1;

    redisContext *c = redisConnectWithTimeout(o->host, o->port ? o->port : 6379, tv);
    if (c == NULL || c->err) {
        snprintf(err, errlen, "%s", c ? error_of(c, o, why, sizeof(why)) : "out of memory");
        redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    snprintf(db, sizeof(db), "%d", o->db);
    if (o->user && o->user[0])
        auth[nauth++] = o->user;
    auth[nauth++] = o->password;
    if ((o->password && o->password[0] && !setup_command(c, o, err, errlen, nauth, auth)) ||
        (o->db != 0 && !setup_command(c, o, err, errlen, 2, select))) {
        redisFree(c);
        return NULL;
    }
    return c;
}

/* -- Options owned by a pool or subscriber ----------------------------------- */

struct owned_options {
    struct lh_redis_options o; /* its strings are the ones below */
    char *host, *user, *password;
};

/* Copies o into own; 0 when memory runs out (free_options cleans up). */
static int own_options(struct owned_options *own, const struct lh_redis_options *o)
{
    own->o = *o;
    own->host = strdup(o->host ? o->host : "127.0.0.1");
    own->user = o->user ? strdup(o->user) : NULL;
    own->password = o->password ? strdup(o->password) : NULL;
    own->o.host = own->host;
    own->o.user = own->user;
    own->o.password = own->password;
    return own->host != NULL && (o->user == NULL || own->user != NULL) &&
           (o->password == NULL || own->password != NULL);
}

static void free_options(struct owned_options *own)
{
    free(own->host);
    free(own->user);
    free(own->password);
}

/* -- Pool -------------------------------------------------------------------- */

struct lh_redis {
    pthread_mutex_t lock;
    struct owned_options own;
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
    r->cap = o->pool_size ? o->pool_size : DEFAULT_POOL;
    r->idle = calloc(r->cap, sizeof(*r->idle));
    if (!own_options(&r->own, o) || r->idle == NULL) {
        lh_redis_free(r);
        return NULL;
    }
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
    free_options(&r->own);
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
               r->own.o.host, r->own.o.port, why);
}

static void mark_up(struct lh_redis *r)
{
    if (atomic_load_explicit(&r->down, memory_order_relaxed) && atomic_exchange(&r->down, 0))
        lh_log(LH_LOG_INFO, NULL, "redis %s:%d answers again", r->own.o.host, r->own.o.port);
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
    if (c == NULL && (c = lh_redis_connect(&r->own.o, err, errlen)) == NULL) {
        mark_down(r, err);
        return LH_ERR_IO;
    }
    *reply = redisCommandArgv(c, argc, argv, lens);
    if (*reply == NULL) {
        char why[64];
        snprintf(err, errlen, "%s", c->err ? error_of(c, &r->own.o, why, sizeof(why)) : "no reply");
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
    struct owned_options own;
    char *channel;
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
    char text[64];
    redisReply *r = redisCommand(c, "SUBSCRIBE %s", s->channel);
    int ok = r != NULL && r->type == REDIS_REPLY_ARRAY;
    freeReplyObject(r);
    if (!ok) {
        snprintf(why, whylen, "SUBSCRIBE failed: %s",
                 c->err ? error_of(c, &s->own.o, text, sizeof(text)) : "bad reply");
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
        redisContext *c = lh_redis_connect(&s->own.o, why, sizeof(why));
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
    s->fn = fn;
    s->arg = arg;
    s->channel = strdup(channel);
    if (!own_options(&s->own, o) || s->channel == NULL || pipe(s->stop_pipe) != 0) {
        lh_redis_subscriber_free(s);
        return NULL;
    }
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
    free_options(&s->own);
    free(s->channel);
    free(s);
}
