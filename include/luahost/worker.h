/* include/luahost/worker.h: the Lua side of request handling.
 *
 * A worker owns one Lua state (a "VM") per HTTP thread, loaded from the
 * application directory. Each request runs in a coroutine of its thread's VM;
 * a binding that must block (sleep, database, Redis) hands the blocking part
 * to the task pool with lh_worker_await, the coroutine yields, the transport
 * suspends the connection, and the request continues on the same thread and
 * VM once the task is done. Reload builds fresh VMs for every thread and
 * swaps them in between requests; calls in flight finish on their old VM.
 *
 * Thread safety: lh_workers_new/reload/free on the main thread; each
 * struct lh_worker, and every call it starts, on the one thread that
 * claimed it. */
#ifndef LUAHOST_WORKER_H
#define LUAHOST_WORKER_H
#include <stddef.h>
#include "luahost/cache.h"
#include "luahost/common.h"
#include "luahost/ratelimit.h"
#include "luahost/task.h"

struct lua_State;
struct lh_workers; /* opaque: every worker of the process */
struct lh_worker;  /* opaque: one HTTP thread's worker */
struct lh_call;    /* opaque: one request in a coroutine */

struct lh_fingerprint;
struct lh_fingerprint_memo;
struct lh_cidr_set;
struct lh_ratelimit;
struct lh_db;
struct lh_cache;
struct lh_redis;
struct lh_metrics;
struct lh_monitor;
struct lh_static;

/* Objects the host creates at start for every VM to use. Each is thread-safe
 * and outlives the workers; any may be NULL (under busted, in --check). */
struct lh_host {
    struct lh_fingerprint *fingerprint;
    struct lh_cidr_set *trusted_proxies;
    struct lh_ratelimit *ratelimit;
    struct lh_db *db;
    struct lh_cache *cache;
    struct lh_redis *redis;
    struct lh_metrics *metrics;
    struct lh_monitor *monitor;
    struct lh_cidr_set *monitor_allow; /* may read /metrics without signing in */
    struct lh_static *statics;         /* the app's static folder */
    int production;                    /* env is "production" (worker.env) */
    char cache_channel[LH_CACHE_CHANNEL_MAX]; /* lh_cache_channel of the Redis database */
};

struct lh_workers_options {
    const char *app;            /* directory with routes.lua */
    const char *lua_path;       /* extra package.path entries, may be "" */
    const char *policy_dir;     /* limits.lua, bot.lua, headers.lua, csp.lua; "" for none */
    unsigned count;             /* one per HTTP thread */
    struct lh_task_pool *tasks; /* runs blocking work; outlives the workers */
    /* Runs CPU-heavy work (lh_async.cpu_bound) at a lower priority, so that
     * it neither holds up blocking calls nor slows the HTTP threads; NULL:
     * tasks does. Outlives the workers. */
    struct lh_task_pool *cpu_tasks;
    const struct lh_host *host; /* may be NULL */
    /* Seconds the scripts may take to load into one VM; past them the load
     * fails at the next Lua instruction ("an endless loop?"). 0: 10. */
    double load_timeout;
};

/* Loads count VMs. Returns NULL with the first script error ("file:line:
 * message") or another reason in err. */
struct lh_workers *lh_workers_new(const struct lh_workers_options *o, char *err, size_t errlen);
/* Frees every VM. Only after the transport has stopped. NULL is a no-op. */
void lh_workers_free(struct lh_workers *ws);
/* Re-reads the application into fresh VMs. If any fails, nothing changes and
 * the error is in err. Threads adopt their new VM at their next request. */
enum lh_status lh_workers_reload(struct lh_workers *ws, char *err, size_t errlen);
/* Binds the next unclaimed worker to the calling thread, once per thread;
 * NULL when every worker is taken. */
struct lh_worker *lh_workers_claim(struct lh_workers *ws);
/* The security headers of the worker's current policies, for answers the
 * transport makes itself (413, 431, 503); NULL without policies. Only on the
 * worker's thread, and valid until its next request. */
const struct lh_header_set *lh_worker_default_headers(const struct lh_worker *w);

/* After this, blocking calls fail fast with "server shutting down". */
void lh_workers_stopping(struct lh_workers *ws);

/* -- Requests ---------------------------------------------------------------- */

enum lh_request_part { LH_REQUEST_HEADERS, LH_REQUEST_QUERY };
typedef void (*lh_request_pair_fn)(void *arg, const char *key, const char *value);

/* A request as the transport hands it over; it must stay valid until
 * lh_call_release. */
struct lh_request {
    const char *method;
    const char *path;
    size_t path_len;
    const char *id;     /* request id, also in every log line */
    const char *client; /* client address (behind trusted proxies: the real one) */
    int https;          /* a trusted proxy says the client used HTTPS */
    const char *body;
    size_t body_len;
    /* Calls fn for each header or query argument, values decoded. */
    void (*each)(const struct lh_request *req, enum lh_request_part part, lh_request_pair_fn fn,
                 void *arg);
    void *transport;
    /* The connection's last fingerprint (see fingerprint.h), or NULL. */
    struct lh_fingerprint_memo *fingerprint_memo;
};

#define LH_REPLY_MAX_HEADERS 64

/* What the application answered. Strings belong to the call and stay valid
 * until lh_call_release. Header names and values are checked: no CR, LF or
 * NUL, names are tokens. */
struct lh_header_set;

/* What the body is: the text in body, or a stream the transport runs. */
enum lh_reply_stream { LH_STREAM_NONE, LH_STREAM_MONITOR };

struct lh_reply {
    const struct lh_header_set *security; /* security headers to add, or NULL */
    const char *nonce;                    /* the CSP nonce Lua used, or NULL */
    int route;                            /* metrics route id, LH_METRICS_ROUTE_NONE (0) */
    enum lh_reply_stream stream;          /* LH_STREAM_MONITOR: the monitor's events */
    int has_rate;                         /* rate: res.ratelimit, headers to add */
    struct lh_rate_headers rate;
    unsigned status;
    const char *body;
    size_t body_len;
    size_t nheaders;
    const char *names[LH_REPLY_MAX_HEADERS];
    const char *values[LH_REPLY_MAX_HEADERS];
};

enum lh_call_state {
    LH_CALL_DONE,    /* reply is filled */
    LH_CALL_PENDING, /* blocked: suspend, then lh_call_wait */
};

/* Runs the application for req. Any failure (script error, bad reply) is
 * logged with the request id and becomes a 500 JSON reply. */
enum lh_call_state lh_worker_start(struct lh_worker *w, const struct lh_request *req,
                                   struct lh_call **call, struct lh_reply *reply);
/* Starts the blocking work of a pending call. wake(arg) is called once, from
 * any thread, when lh_call_resume may run (on the call's own thread). */
void lh_call_wait(struct lh_call *c, void (*wake)(void *arg), void *arg);
enum lh_call_state lh_call_resume(struct lh_call *c, struct lh_reply *reply);
/* The metrics route id the call's handler matched (0 before dispatch). */
int lh_call_route(const struct lh_call *c);
/* Ends the call after its reply has been used; frees its coroutine. */
void lh_call_release(struct lh_call *c);

/* -- For bindings ------------------------------------------------------------ */

/* A blocking operation of a binding. The binding allocates it and sets
 * task.run (blocking work, run on a pool thread), or start (hands the
 * operation to a machinery of its own, which calls task.done(&task) exactly
 * once, from any thread), or neither (a wait of `delay` seconds that holds no
 * thread); then push (puts the results on L and returns their number; sees
 * task.cancelled, set when the server stopped first) and free. */
struct lh_async {
    struct lh_task task;
    void (*start)(struct lh_async *a);
    int (*push)(struct lh_async *a, struct lua_State *L);
    void (*free)(struct lh_async *a);
    double delay;  /* with neither task.run nor start: seconds to wait */
    int cpu_bound; /* task.run computes rather than waits: the CPU pool runs it */
    struct lh_call *_call;
    void *_waiter;
};

/* From a lua_CFunction: `return lh_worker_await(L, a);`. Inside a request's
 * own coroutine this yields and the thread serves other connections; anywhere
 * else (start-up code, busted, a coroutine of the handler's) it runs a
 * inline. Either way a is freed and its results are returned to Lua. */
int lh_worker_await(struct lua_State *L, struct lh_async *a);

/* Whether CPU-bound work (cpu_bound) started now would be refused, its
 * pool's queue being full; 0 outside a request. */
int lh_worker_cpu_full(void);

/* The host objects of the state L belongs to; NULL outside a server. */
const struct lh_host *lh_worker_host(struct lua_State *L);

/* Tells the request the calling thread is running which route (metrics id)
 * it matched; no-op outside a request. */
void lh_worker_set_route(int route);

/* The request the calling thread is running, or NULL. */
const struct lh_request *lh_worker_current_request(void);

#endif
