/* include/luahost/http.h: the HTTP/1.1 server (libmicrohttpd), feeding
 * requests to the workers.
 * Thread safety: create, quiesce and free on one thread; the server runs its
 * own threads (one per worker). */
#ifndef LUAHOST_HTTP_H
#define LUAHOST_HTTP_H
#include <stddef.h>
#include "luahost/common.h"
#include "luahost/worker.h"

struct lh_http; /* opaque */
struct lh_cidr_set;

struct lh_http_options {
    const char *host;        /* IPv4 or IPv6 literal, or a name */
    unsigned port;
    unsigned threads;        /* must equal the worker count */
    unsigned max_connections;
    unsigned max_connections_per_ip; /* 0: no limit */
    unsigned idle_timeout;   /* seconds */
    unsigned header_timeout; /* seconds of silence allowed before a connection's first request */
    size_t max_header_bytes; /* request line + headers; beyond: 431 */
    size_t max_body_bytes;   /* beyond: 413 */
    /* Peers whose X-Forwarded-For / Forwarded / X-Forwarded-Proto are
     * believed; NULL or empty: nobody's. */
    const struct lh_cidr_set *trusted_proxies;
    int proxy_forwarded; /* their client address is in Forwarded (else X-Forwarded-For) */
    struct lh_metrics *metrics; /* requests are counted here; may be NULL */
    struct lh_monitor *monitor; /* runs the event streams; may be NULL */
    const struct lh_static *statics; /* /static/ and /sw.js; may be NULL */
    /* Called with the transport just before it accepts its first connection,
     * so that code asked for its figures by a request (lh_http_inflight from
     * /metrics) can already find it; may be NULL. */
    void (*starting)(struct lh_http *h, void *arg);
    void *starting_arg;
};

/* Binds and starts serving. NULL with a reason in err on failure (address in
 * use, bad host). The workers must outlive the server. */
struct lh_http *lh_http_new(const struct lh_http_options *o, struct lh_workers *ws, char *err,
                            size_t errlen);
/* Stops accepting connections; open ones keep being served. */
void lh_http_quiesce(struct lh_http *h);
/* Requests received and not yet completely answered. */
unsigned lh_http_inflight(const struct lh_http *h);
/* Of them, event streams (the dashboard's): open as long as their viewer. */
unsigned lh_http_streaming(const struct lh_http *h);
/* Closes every connection and stops the threads. Every request suspended in
 * a blocking call must have been woken first (lh_task_pool_stop does that).
 * NULL is a no-op. */
void lh_http_free(struct lh_http *h);

#endif
