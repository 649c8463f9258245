/* src/http.c: libmicrohttpd in front of the workers.
 *
 * DESIGN
 * ------
 * libmicrohttpd runs one epoll thread per worker; each thread claims a worker
 * (and so a Lua VM) on its first request and keeps it. A request runs on that
 * thread from the call that completes its headers (or its body) until it
 * answers or blocks. A blocking call suspends the connection, so the thread
 * goes on serving its other connections; the task's completion resumes the
 * connection and libmicrohttpd calls on_request again, on the same thread,
 * where the call continues.
 *
 * Limits are enforced here so that their answers are JSON with a request id:
 * headers over max_header_bytes get 431, bodies over max_body_bytes 413
 * (from Content-Length before reading, or once a chunked body has ended).
 * So are the checks of the head libmicrohttpd leaves to us (scan_header):
 * field syntax, Host, framing, and %00 in the target (on_target).
 * libmicrohttpd's connection memory holds a head up to the limit with 220
 * lines, arguments or cookies, and the reply's headers (see lh_http_new). A
 * head of so many short lines that the reply would not fit gets a bare 431
 * (head_fits); only heads past the memory, or malformed ones, get its own
 * plain answers.
 *
 * A request head has a deadline, not only libmicrohttpd's limit on silence:
 * header_timeout from connecting, idle_timeout + header_timeout from the
 * previous answer. A sweeper thread shuts down connections past it, so a
 * client trickling a byte at a time cannot hold a slot; it also wakes a
 * thread libmicrohttpd left waiting with requests unread (see stalled()).
 *
 * Per-request state (struct exchange) lives in its connection's context
 * and is in use from the first on_request call to on_completed; each
 * thread's `inflight` counts those for graceful shutdown. The Date header
 * is ours, formatted once a second per thread.
 */
#include "luahost/http.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "luahost/fingerprint.h"
#include "luahost/headers.h"
#include "luahost/log.h"
#include "luahost/metrics.h"
#include "luahost/monitor.h"
#include "luahost/netaddr.h"
#include "luahost/static.h"

#define REQUEST_ID_LEN 20
/* libmicrohttpd 0.9.75 keeps a record of about 64 bytes per header line,
 * query argument and cookie in the connection's memory, and builds the
 * reply's header block in what the request leaves. */
#define POOL_RECORD_BYTES 64
#define POOL_REPLY_BYTES 2048
/* A chunked body past the limit is read and dropped up to this multiple of
 * it, so that the client can read the 413; beyond, the connection closes. */
#define DISCARD_FACTOR 4

struct lh_http {
    struct MHD_Daemon *daemon;
    struct lh_workers *ws;
    size_t max_header_bytes;
    size_t pool_bytes; /* libmicrohttpd's memory per connection */
    size_t max_body_bytes;
    const struct lh_cidr_set *trusted;
    int proxy_forwarded;
    struct lh_metrics *metrics;
    struct lh_monitor *monitor;
    const struct lh_static *statics;
    int static_route; /* metrics route id of the static files */
    atomic_uint threads_seen;
    unsigned nthreads;
    struct thread_state *threads; /* one per libmicrohttpd thread */
    uint32_t id_prefix; /* random per process: ids stay unique across instances */
    unsigned idle_timeout, header_timeout;
    unsigned connections_per_thread; /* libmicrohttpd's share of the limit */
    unsigned max_connections, max_connections_per_ip; /* as configured, for the log */
    _Atomic long full_warned;        /* when "connection limit reached" was last logged */
    _Atomic long stall_logged;       /* when a stalled thread's waking was last logged */
    _Atomic long refusal_logged;     /* when libmicrohttpd's last refusal was logged */
    atomic_uint refusals_unlogged;   /* refusals since */
    pthread_t sweeper;               /* closes connections past their head deadline, wakes stalls */
    struct sockaddr_storage listening; /* where a connection wakes every HTTP thread */
    socklen_t listening_len;         /* 0: unknown, no waking */
    pthread_mutex_t sweep_lock;
    pthread_cond_t sweep_wake;
    int sweep_stop, sweeper_started;
    atomic_int quiesced; /* read by the HTTP threads */
};

/* Per HTTP thread, written on every request by that thread alone. */
struct thread_state {
    _Alignas(LH_CACHE_LINE) struct lh_worker *worker;
    unsigned index;
    _Atomic uint64_t seq; /* requests begun; the sweeper reads it to see progress */
    uint64_t seq_swept;   /* seq at the sweeper's previous look (the sweeper's own) */
    atomic_uint inflight; /* exchanges begun and not completed */
    atomic_uint streaming; /* of them, event streams */
    unsigned connections; /* open on this thread */
    pthread_mutex_t lock; /* guards `open` against the sweeper */
    struct connection *open; /* this thread's connections */
    time_t date_second;   /* the second `date` shows */
    char date[32];        /* the Date header, e.g. "Wed, 25 Nov 2026 09:34:45 GMT" */
};
static _Thread_local struct thread_state *thread_state;

struct exchange {
    struct lh_http *h;
    struct MHD_Connection *conn;
    struct lh_request req;
    struct lh_call *call;
    char id[REQUEST_ID_LEN + 1];
    char client[LH_IP_MAX]; /* behind trusted proxies: the forwarded address */
    char *body;
    size_t body_len, body_cap, discarded;
    int body_too_large;
    int closed_unread; /* a body far over the limit: no answer, by design */
    int suspended;
    int bad_target; /* %00, a control byte or a space in the target, userinfo, a
                     * path not starting with "/", or a "." or ".." segment */
    int whole_server; /* OPTIONS * */
    size_t target_bytes; /* the request target as sent, percent escapes and all */
    size_t head_used;    /* what the head takes of libmicrohttpd's memory (head_used) */
    int replacing;       /* sending the 500 that replaces a reply too large to send */
    int route; /* metrics route id */
    int streamed;
    unsigned thread;
    unsigned status;
    size_t bytes;
    struct timespec start;
};

/* Per connection, from libmicrohttpd's connect notification to its close:
 * requests on a connection come one at a time, so one exchange serves them
 * all, with no allocation per request. */
struct connection {
    char client[INET6_ADDRSTRLEN];
    int bad_target;      /* set by on_target, before the request is handled */
    size_t target_bytes; /* likewise */
    /* Likewise: the target's path as sent, for the access log, when decoding
     * changes it (a percent escape) or it is not a bare path (absolute
     * form); NULL otherwise, as for nearly every request. */
    char *raw_path;
    /* Monotonic millisecond by which the next request head must be
     * complete; 0 while a request is being read past its head or answered. */
    _Atomic long long head_deadline;
    MHD_socket fd;
    unsigned thread;
    struct connection *prev, *next; /* in its thread's `open` */
    struct lh_fingerprint_memo fingerprint_memo;
    struct exchange x;
};

static const char ERR_413[] = "{\"success\":false,\"message\":\"Request body too large\"}";
static const char ERR_431[] =
    "{\"success\":false,\"message\":\"Request header fields too large\"}";
static const char ERR_400_FRAMING[] =
    "{\"success\":false,\"message\":\"Conflicting Content-Length or Transfer-Encoding\"}";
static const char ERR_400_CODING_10[] =
    "{\"success\":false,\"message\":\"HTTP/1.0 has no Transfer-Encoding\"}";
static const char ERR_400_METHOD[] = "{\"success\":false,\"message\":\"Malformed method\"}";
static const char ERR_400_HEADER[] = "{\"success\":false,\"message\":\"Malformed header field\"}";
static const char ERR_400_HOST[] =
    "{\"success\":false,\"message\":\"A request needs exactly one valid Host header\"}";
static const char ERR_400_TARGET[] = "{\"success\":false,\"message\":\"Bad request target\"}";
static const char ERR_501_CODING[] =
    "{\"success\":false,\"message\":\"Transfer-Encoding not supported (only chunked)\"}";
static const char ERR_500[] = "{\"success\":false,\"message\":\"Server error\"}";
static const char ERR_503[] = "{\"success\":false,\"message\":\"Service unavailable\"}";

/* -- Threads and ids --------------------------------------------------------- */

/* The calling thread's state, claimed on its first request. */
static struct thread_state *this_thread(struct lh_http *h)
{
    if (thread_state == NULL) {
        unsigned i = atomic_fetch_add(&h->threads_seen, 1);
        if (i >= h->nthreads)
            return NULL;
        h->threads[i].index = i;
        h->threads[i].worker = lh_workers_claim(h->ws);
        thread_state = &h->threads[i];
    }
    return thread_state;
}

static void make_request_id(struct lh_http *h, struct thread_state *ts, char out[REQUEST_ID_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    uint64_t seq = atomic_load_explicit(&ts->seq, memory_order_relaxed) + 1;
    atomic_store_explicit(&ts->seq, seq, memory_order_relaxed); /* its thread alone writes it */
    uint32_t prefix = h->id_prefix;

    for (int i = 7; i >= 0; i--, prefix >>= 4)
        out[i] = hex[prefix & 15];
    out[8] = hex[(ts->index >> 4) & 15];
    out[9] = hex[ts->index & 15];
    for (int i = REQUEST_ID_LEN - 1; i >= 10; i--, seq >>= 4)
        out[i] = hex[seq & 15];
    out[REQUEST_ID_LEN] = '\0';
}

/* The Date header's value, formatted once a second per thread: gmtime takes
 * a process-wide lock. */
static const char *http_date(struct thread_state *ts)
{
    time_t now = time(NULL);

    if (now != ts->date_second) {
        lh_static_http_date(now, ts->date, sizeof(ts->date));
        ts->date_second = now;
    }
    return ts->date;
}

static long long milliseconds(const struct timespec *t)
{
    return (long long)t->tv_sec * 1000 + t->tv_nsec / 1000000;
}

static long long monotonic_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return milliseconds(&t);
}

/* -- Request data for the workers --------------------------------------------- */

struct each_ctx {
    lh_request_pair_fn fn;
    void *arg;
};

static enum MHD_Result each_value(void *cls, enum MHD_ValueKind kind, const char *key,
                                  const char *value)
{
    struct each_ctx *e = cls;
    (void)kind;
    e->fn(e->arg, key, value);
    return MHD_YES;
}

static void each(const struct lh_request *req, enum lh_request_part part, lh_request_pair_fn fn,
                 void *arg)
{
    struct each_ctx e = {fn, arg};
    MHD_get_connection_values(req->transport,
                              part == LH_REQUEST_HEADERS ? MHD_HEADER_KIND : MHD_GET_ARGUMENT_KIND,
                              each_value, &e);
}

/* -- Answers ----------------------------------------------------------------- */

/* A response being given its headers, and their size so far. */
struct reply_head {
    struct MHD_Response *resp;
    size_t bytes;
};

static enum MHD_Result put_header(struct reply_head *head, const char *name, const char *value)
{
    head->bytes += strlen(name) + strlen(value) + 4; /* ": " and CRLF */
    return MHD_add_response_header(head->resp, name, value);
}

static void add_security_header(void *arg, const char *name, const char *value)
{
    put_header(arg, name, value);
}

/* -- The monitor's event stream ------------------------------------------------ */

static void stream_park(void *arg)
{
    MHD_suspend_connection(arg);
}

static void stream_wake(void *arg)
{
    MHD_resume_connection(arg);
}

/* A monitor stream, and the exchange whose bytes it counts for the log. */
struct stream {
    struct lh_monitor_stream *events;
    struct exchange *x;
};

/* Parks the connection while the monitor has nothing new. */
static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct stream *s = cls;
    (void)pos;
    ssize_t n = lh_monitor_stream_read(s->events, buf, max, stream_park);
    if (n < 0)
        return MHD_CONTENT_READER_END_OF_STREAM;
    s->x->bytes += (size_t)n;
    return n;
}

static void stream_free(void *cls)
{
    struct stream *s = cls;
    lh_monitor_stream_close(s->events);
    free(s);
}

/* The response for a reply: its body, or the monitor's events. */
static struct MHD_Response *make_response(struct exchange *x, const char *body, size_t len,
                                          enum MHD_ResponseMemoryMode mode,
                                          const struct lh_reply *reply)
{
    /* A HEAD gets the stream's headers and no body: libmicrohttpd would send
     * a chunked stream's last chunk even then, which the client would take
     * for the start of its next answer. */
    if (reply->stream != LH_STREAM_MONITOR || strcmp(x->req.method, "HEAD") == 0)
        return MHD_create_response_from_buffer(len, (void *)body, mode);
    if (x->h->monitor == NULL)
        return NULL;
    struct stream *s = malloc(sizeof(*s));
    if (s == NULL)
        return NULL;
    s->x = x;
    s->events = lh_monitor_stream_open(x->h->monitor, stream_wake, x->conn);
    if (s->events == NULL) {
        free(s);
        return NULL;
    }
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, stream_read, s, stream_free);
    if (resp == NULL)
        stream_free(s);
    return resp;
}

/* Headers the server writes itself, which an application's would repeat
 * (HTTP names are case-insensitive: "x-request-id" too). */
static int server_owned(const char *name)
{
    static const char *const owned[] = {"X-Request-Id", "Content-Length", "Transfer-Encoding"};
    for (size_t i = 0; i < sizeof(owned) / sizeof(owned[0]); i++)
        if (strcasecmp(name, owned[i]) == 0)
            return 1;
    return 0;
}

static enum MHD_Result queue_json(struct exchange *x, unsigned status, const char *body,
                                  size_t len, const struct lh_header_set *security);

/* Whether headers of this many bytes fit in what the request head left of
 * libmicrohttpd's memory: if not, it would build no header block and close
 * the connection without a word. REPLY_SLACK covers the status line,
 * Content-Length and libmicrohttpd's rounding. */
#define REPLY_SLACK 512
static int reply_fits(const struct exchange *x, size_t header_bytes)
{
    return x->head_used + header_bytes + REPLY_SLACK <= x->h->pool_bytes;
}

/* Adds the reply's security headers, its own headers and X-Request-Id to
 * resp, and queues it; len is the body's size, for the access log. Headers
 * too large to send turn the answer into a logged 500. */
static enum MHD_Result send_response(struct exchange *x, unsigned status,
                                     struct MHD_Response *resp, size_t len,
                                     const struct lh_reply *reply)
{
    enum MHD_Result ret;
    struct reply_head head = {resp, 0};

    if (resp == NULL)
        return MHD_NO;
    /* First: a Date the application sets replaces it (libmicrohttpd keeps one). */
    put_header(&head, "Date", http_date(&x->h->threads[x->thread]));
    if (reply->security != NULL) {
        char fresh[LH_NONCE_LEN + 1];
        const char *nonce = reply->nonce;
        if (nonce == NULL && lh_header_set_uses_nonce(reply->security)) {
            if (lh_nonce_generate(fresh) != LH_OK) {
                MHD_destroy_response(resp);
                lh_log(LH_LOG_ERROR, x->id, "CSPRNG failed: no nonce, no answer");
                return MHD_NO;
            }
            nonce = fresh;
        }
        lh_header_set_emit(reply->security, nonce ? nonce : "", x->req.https, add_security_header,
                           &head);
    }
    if (reply->has_rate)
        lh_ratelimit_emit_headers(&reply->rate, (long)time(NULL), add_security_header, &head);
    for (size_t i = 0; i < reply->nheaders; i++) {
        const char *name = reply->names[i], *why = NULL;
        if (server_owned(name))
            why = "the server sets it";
        else if (reply->values[i][0] == '\0')
            why = "an empty value (libmicrohttpd sends none)";
        else if (strcasecmp(name, "Date") == 0)
            name = "Date"; /* so that it replaces the server's, whatever its case */
        if (why == NULL && put_header(&head, name, reply->values[i]) != MHD_YES)
            why = "libmicrohttpd refused it";
        if (why != NULL)
            lh_log(LH_LOG_WARN, x->id, "header %s not sent: %s", name, why);
    }
    put_header(&head, "X-Request-Id", x->id);
    /* Shutting down: the connection closes after this answer, and says so. */
    if (atomic_load_explicit(&x->h->quiesced, memory_order_relaxed))
        put_header(&head, "Connection", "close");
    /* A handler's reply: the server's own answers are small by design, and
     * may follow a head that left room for nothing larger (the 431). */
    if (x->call != NULL && !x->replacing && !reply_fits(x, head.bytes)) {
        MHD_destroy_response(resp);
        char *path = lh_log_escaped(x->req.path, x->req.path_len);
        lh_log(LH_LOG_ERROR, x->id,
               "%s %s: bad reply: its headers take %zu bytes, more than the %zu the connection's "
               "memory has left after the request head (max_header_bytes sizes it)",
               x->req.method, path ? path : "-", head.bytes,
               x->h->pool_bytes - x->head_used - REPLY_SLACK);
        free(path);
        if (x->h->metrics)
            lh_metric_add(lh_metrics_core(x->h->metrics, LH_CORE_LUA_ERRORS), 1);
        /* No policy headers: the bare answer fits where any answer can. */
        x->replacing = 1;
        ret = queue_json(x, 500, ERR_500, sizeof(ERR_500) - 1, NULL);
        x->replacing = 0;
        x->route = reply->route; /* the handler's route, for the metrics */
        return ret;
    }
    ret = MHD_queue_response(x->conn, status, resp);
    MHD_destroy_response(resp);
    x->status = status;
    x->route = reply->route;
    x->streamed = reply->stream != LH_STREAM_NONE;
    if (x->streamed)
        atomic_fetch_add_explicit(&x->h->threads[x->thread].streaming, 1, memory_order_relaxed);
    /* HEAD sends no body; a stream counts its events as they go. */
    x->bytes = strcmp(x->req.method, "HEAD") == 0 || x->streamed ? 0 : len;
    return ret;
}

static enum MHD_Result queue(struct exchange *x, unsigned status, const char *body, size_t len,
                             enum MHD_ResponseMemoryMode mode, const struct lh_reply *reply)
{
    return send_response(x, status, make_response(x, body, len, mode, reply), len, reply);
}

/* A JSON answer of the server's own, with the given security headers. */
static enum MHD_Result queue_json(struct exchange *x, unsigned status, const char *body,
                                  size_t len, const struct lh_header_set *security)
{
    struct lh_reply reply = {
        .security = security,
        .nheaders = 1,
        .names = {"Content-Type"},
        .values = {"application/json"},
    };
    return queue(x, status, body, len, MHD_RESPMEM_PERSISTENT, &reply);
}

/* An answer of the server's own, with the security headers of the thread's
 * current policies. */
static enum MHD_Result queue_error(struct exchange *x, unsigned status, const char *body,
                                   size_t len)
{
    struct thread_state *ts = this_thread(x->h);
    return queue_json(x, status, body, len,
                      ts && ts->worker ? lh_worker_default_headers(ts->worker) : NULL);
}

/* -- Static files ------------------------------------------------------------ */

static const char ERR_400_PATH[] = "{\"success\":false,\"message\":\"Bad path\"}";
static const char ERR_404[] = "{\"success\":false,\"message\":\"Not found\"}";
static const char ERR_412[] = "{\"success\":false,\"message\":\"Precondition failed\"}";
static const char ERR_416[] = "{\"success\":false,\"message\":\"Range not satisfiable\"}";
static const char ERR_405[] = "{\"success\":false,\"message\":\"Method not allowed\"}";

static void add_header(struct lh_reply *r, const char *name, const char *value)
{
    r->names[r->nheaders] = name;
    r->values[r->nheaders++] = value;
}

/* Every line of one request header, joined with ", " as RFC 9110 section
 * 5.3 reads a list sent on several lines. */
struct header_lines {
    const char *name;
    char *text; /* malloc'ed; NULL when the request has none (or memory ran out) */
    size_t len;
    unsigned count;
};

static void join_line(struct header_lines *j, const char *value)
{
    size_t n = value ? strlen(value) : 0;
    char *text = realloc(j->text, j->len + n + 3);
    if (text == NULL) {
        free(j->text);
        j->text = NULL;
        return;
    }
    if (j->count++ > 0) {
        memcpy(text + j->len, ", ", 2);
        j->len += 2;
    }
    memcpy(text + j->len, value ? value : "", n);
    j->len += n;
    text[j->len] = '\0';
    j->text = text;
}

/* The static file's request headers that are lists, each line read. */
enum { LIST_ACCEPT_ENCODING, LIST_IF_MATCH, LIST_IF_NONE_MATCH, LIST_RANGE, LISTS };
struct static_lists {
    struct header_lines h[LISTS];
};

/* One pass over the request's headers for all of them. */
static enum MHD_Result collect_lists(void *cls, enum MHD_ValueKind kind, const char *key,
                                     const char *value)
{
    struct static_lists *lists = cls;
    (void)kind;
    for (int i = 0; i < LISTS; i++)
        if (strcasecmp(key, lists->h[i].name) == 0)
            join_line(&lists->h[i], value);
    return MHD_YES;
}

static enum MHD_Result serve_file(struct exchange *x, const char *rel,
                                  const struct static_lists *lists)
{
    struct lh_http *h = x->h;
    struct thread_state *ts = this_thread(h);
    /* Range is no list: on several lines, it is read as none. */
    const char *range = lists->h[LIST_RANGE].count == 1 ? lists->h[LIST_RANGE].text : NULL;
    const char *ae = lists->h[LIST_ACCEPT_ENCODING].text;
    struct lh_static_file f;
    char modified[40], content_range[64];
    off_t start = 0, len;

    /* Ranges count bytes of the file itself, never of its gzip variant. */
    enum lh_status st = lh_static_open(h->statics, rel, range == NULL && lh_static_accepts_gzip(ae), &f);
    if (st != LH_OK)
        return st == LH_ERR_INVALID ? queue_error(x, 400, ERR_400_PATH, sizeof(ERR_400_PATH) - 1)
                                    : queue_error(x, 404, ERR_404, sizeof(ERR_404) - 1);
    struct lh_reply reply = {
        .security = ts && ts->worker ? lh_worker_default_headers(ts->worker) : NULL,
        .route = h->static_route,
    };
    if (lh_static_precondition_failed(
            &f, lists->h[LIST_IF_MATCH].text,
            MHD_lookup_connection_value(x->conn, MHD_HEADER_KIND, "If-Unmodified-Since"))) {
        close(f.fd);
        return queue_error(x, 412, ERR_412, sizeof(ERR_412) - 1);
    }
    if (range != NULL &&
        !lh_static_range_applies(&f, MHD_lookup_connection_value(x->conn, MHD_HEADER_KIND, "If-Range")))
        range = NULL;
    lh_static_http_date(f.mtime, modified, sizeof(modified));
    add_header(&reply, "ETag", f.etag);
    add_header(&reply, "Last-Modified", modified);
    add_header(&reply, "Cache-Control",
               lh_static_cache_control(
                   rel, MHD_lookup_connection_value(x->conn, MHD_GET_ARGUMENT_KIND, "v"), &f));
    add_header(&reply, "Vary", "Accept-Encoding");
    if (lh_static_not_modified(
            &f, lists->h[LIST_IF_NONE_MATCH].text,
            MHD_lookup_connection_value(x->conn, MHD_HEADER_KIND, "If-Modified-Since"))) {
        close(f.fd);
        return send_response(x, 304, MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT),
                             0, &reply);
    }
    add_header(&reply, "Accept-Ranges", "bytes");
    unsigned status = 200;
    len = f.size;
    switch (lh_static_range(range, f.size, &start, &len)) {
    case LH_RANGE_UNSATISFIABLE:
        close(f.fd);
        snprintf(content_range, sizeof(content_range), "bytes */%lld", (long long)f.size);
        add_header(&reply, "Content-Range", content_range);
        add_header(&reply, "Content-Type", "application/json");
        return send_response(x, 416,
                             MHD_create_response_from_buffer(sizeof(ERR_416) - 1, (void *)ERR_416,
                                                             MHD_RESPMEM_PERSISTENT),
                             sizeof(ERR_416) - 1, &reply);
    case LH_RANGE_OK:
        status = 206;
        snprintf(content_range, sizeof(content_range), "bytes %lld-%lld/%lld", (long long)start,
                 (long long)(start + len - 1), (long long)f.size);
        add_header(&reply, "Content-Range", content_range);
        break;
    case LH_RANGE_NONE:
        break;
    }
    add_header(&reply, "Content-Type", f.content_type);
    if (f.gzip)
        add_header(&reply, "Content-Encoding", "gzip");
    /* libmicrohttpd sends it with sendfile and closes the descriptor. */
    struct MHD_Response *resp =
        MHD_create_response_from_fd_at_offset64((uint64_t)len, f.fd, (uint64_t)start);
    if (resp == NULL)
        close(f.fd);
    return send_response(x, status, resp, (size_t)len, &reply);
}

/* Answers a GET or HEAD of a static file: 200, 206, 304, 412, 416 or 404. */
static enum MHD_Result serve_static(struct exchange *x, const char *rel)
{
    struct static_lists lists = {{
        [LIST_ACCEPT_ENCODING] = {.name = "Accept-Encoding"},
        [LIST_IF_MATCH] = {.name = "If-Match"},
        [LIST_IF_NONE_MATCH] = {.name = "If-None-Match"},
        [LIST_RANGE] = {.name = "Range"},
    }};
    MHD_get_connection_values(x->conn, MHD_HEADER_KIND, collect_lists, &lists);
    enum MHD_Result ret = serve_file(x, rel, &lists);
    for (int i = 0; i < LISTS; i++)
        free(lists.h[i].text);
    return ret;
}

static void wake(void *arg)
{
    struct exchange *x = arg;
    MHD_resume_connection(x->conn);
}

/* Sends the reply of a finished call, or parks the connection while it blocks. */
static enum MHD_Result settle(struct exchange *x, enum lh_call_state state, struct lh_reply *reply)
{
    if (state == LH_CALL_PENDING) {
        x->suspended = 1;
        MHD_suspend_connection(x->conn); /* before the task can wake it */
        lh_call_wait(x->call, wake, x);
        return MHD_YES;
    }
    /* Not copied: the body (a string on the call's coroutine stack, the
     * call's JSON buffer, or a constant) lives until on_completed releases
     * the call, once it is sent.
     * An event stream has no body and may last for hours: its call goes now,
     * so that a reload can retire the old Lua state. */
    enum MHD_Result ret =
        queue(x, reply->status, reply->body, reply->body_len, MHD_RESPMEM_PERSISTENT, reply);
    if (reply->stream != LH_STREAM_NONE && x->call) {
        lh_call_release(x->call);
        x->call = NULL;
    }
    return ret;
}

static enum MHD_Result dispatch(struct exchange *x)
{
    struct thread_state *ts = this_thread(x->h);
    struct lh_reply reply;

    if (ts == NULL || ts->worker == NULL) {
        lh_log(LH_LOG_ERROR, x->id, "no worker for this thread");
        return queue_error(x, 503, ERR_503, sizeof(ERR_503) - 1);
    }
    if (x->whole_server) {
        struct lh_reply r = {.security = lh_worker_default_headers(ts->worker)};
        return queue(x, 204, "", 0, MHD_RESPMEM_PERSISTENT, &r);
    }
    const char *rel = x->h->statics ? lh_static_route(x->req.path) : NULL;
    if (rel != NULL) {
        if (strcmp(x->req.method, "GET") == 0 || strcmp(x->req.method, "HEAD") == 0)
            return serve_static(x, rel);
        struct lh_reply r = {.security = lh_worker_default_headers(ts->worker),
                             .route = x->h->static_route};
        /* As for the app's routes (RFC 9110 section 9.3.7). */
        add_header(&r, "Allow", "GET, HEAD, OPTIONS");
        if (strcmp(x->req.method, "OPTIONS") == 0)
            return queue(x, 204, "", 0, MHD_RESPMEM_PERSISTENT, &r);
        add_header(&r, "Content-Type", "application/json");
        return queue(x, 405, ERR_405, sizeof(ERR_405) - 1, MHD_RESPMEM_PERSISTENT, &r);
    }
    x->req.body = x->body;
    x->req.body_len = x->body_len;
    return settle(x, lh_worker_start(ts->worker, &x->req, &x->call, &reply), &reply);
}

/* -- libmicrohttpd callbacks --------------------------------------------------- */

/* What on_request checks of a request's headers, gathered in one pass. */
struct header_scan {
    size_t bytes;       /* request line, headers and query, as sent */
    size_t records;     /* header lines, query arguments and cookies */
    size_t cookie_copy; /* libmicrohttpd splits Cookie headers in a copy */
    const char *length; /* the first Content-Length */
    int lengths_differ, transfer_encoding, unsupported_coding, malformed;
    unsigned hosts;
};

/* RFC 9110 section 5.6.2: the characters of a token, which a field name is. */
static const unsigned char TCHAR[256] = {
    ['0' ... '9'] = 1, ['A' ... 'Z'] = 1, ['a' ... 'z'] = 1,
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1, ['+'] = 1,
    ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1, ['~'] = 1,
};

/* A field name of token characters, and a value without control characters
 * other than tab (RFC 9110 section 5.5). libmicrohttpd keeps what follows
 * the name up to the colon ("Content-Length : 5" names "Content-Length ")
 * and glues an obsolete folded line to the name: a proxy in front may read
 * either differently, so both are refused rather than guessed at. */
static int well_formed(const char *key, size_t key_len, const char *value, size_t value_len)
{
    if (key_len == 0)
        return 0;
    for (size_t i = 0; i < key_len; i++)
        if (!TCHAR[(unsigned char)key[i]])
            return 0;
    for (size_t i = 0; i < value_len; i++) {
        unsigned char c = (unsigned char)value[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return 0;
    }
    return 1;
}

/* A name that starts with a framing field's name and goes on is a folded
 * line glued to it (see well_formed) when the fold held only token
 * characters: "Content-Length: 5\r\n 0" arrives as "Content-Length0". */
static int glued_to_framing(const char *key, size_t key_len)
{
    return (key_len > 14 && strncasecmp(key, "Content-Length", 14) == 0) ||
           (key_len > 17 && strncasecmp(key, "Transfer-Encoding", 17) == 0);
}

/* One uri-host[:port] (RFC 9110 section 7.2, RFC 3986 section 3.2.2):
 * unreserved and sub-delimiter characters, a bracketed IPv6 literal, a
 * port of digits; no list (a comma), no path, userinfo or quotes. The
 * whitespace libmicrohttpd leaves at the end of a value is not part of it. */
static int valid_host(const char *v, size_t len)
{
    static const char name_chars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                     "0123456789-._~!$&'()*+;=%";
    size_t i = 0;

    while (len > 0 && (v[len - 1] == ' ' || v[len - 1] == '\t'))
        len--;
    if (len == 0)
        return 0;
    if (v[0] == '[') { /* IPv6 literal */
        while (i < len && v[i] != ']')
            i++;
        if (i == len)
            return 0;
        i++;
    } else {
        while (i < len && v[i] != ':' && v[i] != '\0' && strchr(name_chars, v[i]) != NULL)
            i++;
        if (i == 0)
            return 0;
    }
    if (i < len && v[i] == ':') { /* a port: up to 5 digits (RFC 3986 allows none) */
        size_t digits = 0;
        for (i++; i < len && v[i] >= '0' && v[i] <= '9'; i++)
            digits++;
        if (digits > 5)
            return 0;
    }
    return i == len;
}

static enum MHD_Result scan_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                   size_t key_len, const char *value, size_t value_len)
{
    struct header_scan *s = cls;

    s->records++;
    /* A cookie's bytes are the Cookie header's, an argument's the target's. */
    if (kind != MHD_HEADER_KIND)
        return MHD_YES;
    s->bytes += key_len + value_len + 4; /* ": " and CRLF */
    if (key_len == 6 && strcasecmp(key, "Cookie") == 0)
        s->cookie_copy += value_len + 1;
    if (!well_formed(key, key_len, value, value ? value_len : 0) || glued_to_framing(key, key_len))
        s->malformed = 1;
    /* Lengths first: most headers are neither. */
    if (key_len == 17 && strcasecmp(key, "Transfer-Encoding") == 0) {
        /* Only chunked is read; anything else would be taken as the body. */
        if (s->transfer_encoding++ || value == NULL || strcasecmp(value, "chunked") != 0)
            s->unsupported_coding = 1;
    } else if (key_len == 14 && strcasecmp(key, "Content-Length") == 0) {
        if (s->length != NULL && strcmp(s->length, value ? value : "") != 0)
            s->lengths_differ = 1;
        if (s->length == NULL)
            s->length = value ? value : "";
    } else if (key_len == 4 && strcasecmp(key, "Host") == 0) {
        s->hosts++;
        if (!valid_host(value, value ? value_len : 0))
            s->hosts++;
    }
    return MHD_YES;
}

/* What the head takes of libmicrohttpd's memory, about. */
static size_t head_used(const struct header_scan *s)
{
    return s->bytes + s->cookie_copy + s->records * POOL_RECORD_BYTES;
}

/* Whether the head leaves the reply its room in libmicrohttpd's memory:
 * otherwise the handler would run and its answer be lost for want of room. */
static int head_fits(const struct lh_http *h, const struct header_scan *s)
{
    return head_used(s) + POOL_REPLY_BYTES <= h->pool_bytes;
}

/* A request whose body length is ambiguous (Content-Length and
 * Transfer-Encoding together, two different Content-Lengths, or
 * Transfer-Encoding in HTTP/1.0, which has none) could be read differently
 * by a proxy in front: RFC 9112 sections 6.1 and 6.3 let the server refuse
 * it, and we do, closing the connection. The message for it, or NULL. */
static const char *ambiguous_framing(const struct header_scan *s, int http11)
{
    if (s->transfer_encoding && !http11)
        return ERR_400_CODING_10;
    if (s->lengths_differ || (s->transfer_encoding && s->length != NULL))
        return ERR_400_FRAMING;
    return NULL;
}

/* A method is a token (RFC 9110 section 9.1). */
static int token(const char *s)
{
    if (*s == '\0')
        return 0;
    for (; *s; s++)
        if (!TCHAR[(unsigned char)*s])
            return 0;
    return 1;
}

/* RFC 9112 section 3.2: an HTTP/1.1 request has exactly one Host; an
 * HTTP/1.0 one at most one. A malformed one counts as two. */
static int bad_host(const struct header_scan *s, int http11)
{
    return s->hosts > 1 || (s->hosts == 0 && http11);
}

/* The path of an absolute-form target ("http://host/path"), which RFC 9112
 * section 3.2.2 has a server accept; any other target as it is. */
static const char *origin_form(const char *url, int *bad)
{
    const char *rest = NULL;

    if (strncasecmp(url, "http://", 7) == 0)
        rest = url + 7;
    else if (strncasecmp(url, "https://", 8) == 0)
        rest = url + 8;
    if (rest == NULL)
        return url;
    const char *path = strchr(rest, '/');
    /* Userinfo is an error (RFC 9110 4.2.4), as it is in Host. */
    const char *at = memchr(rest, '@', path ? (size_t)(path - rest) : strlen(rest));
    if (at != NULL)
        *bad = 1;
    return path ? path : "/";
}

/* Whether a decoded path is one a route may be given: it starts with "/"
 * and has no "." or ".." segment. A client resolves those before sending
 * (RFC 3986 section 5.2.4), and left in, "/files/../../etc/passwd" would
 * hand a catch-all route's handler a way out of its folder. */
static int routable_path(const char *path)
{
    if (path[0] != '/')
        return 0;
    for (const char *s = path; s != NULL; s = strchr(s + 1, '/')) {
        const char *seg = s + 1;
        size_t len = strcspn(seg, "/");
        if ((len == 1 && seg[0] == '.') || (len == 2 && seg[0] == '.' && seg[1] == '.'))
            return 0;
    }
    return 1;
}

/* The connection's state, made by on_connection; NULL when that failed. */
static struct connection *connection_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

/* The request target as sent, once per request, before libmicrohttpd
 * splits and decodes it: its size counts against max_header_bytes (decoded,
 * it can be a third of what the head holds), and a request whose target has
 * a %00, a control byte or a space gets a 400. Decoded, %00 would end the
 * path early ("/static/app.css%00.png" would serve app.css); a space, as in
 * "GET /a b HTTP/1.1" that libmicrohttpd splits at its last space, is no
 * part of a target (RFC 9112 3.2), and by the time the query is decoded its
 * '+' are spaces too. */
static void *on_target(void *cls, const char *uri, struct MHD_Connection *conn)
{
    struct connection *c = connection_of(conn);
    const char *p, *query = NULL;
    int bad = 0, escaped = 0;
    (void)cls;
    for (p = uri; *p; p++) {
        unsigned char ch = (unsigned char)*p;
        if ((ch == '%' && p[1] == '0' && p[2] == '0') || ch <= 0x20 || ch == 0x7f)
            bad = 1;
        if (ch == '?' && query == NULL)
            query = p;
        escaped |= ch == '%' && query == NULL;
    }
    if (c != NULL) {
        c->bad_target = bad;
        c->target_bytes = (size_t)(p - uri);
        free(c->raw_path);
        c->raw_path = escaped || uri[0] != '/'
                          ? strndup(uri, (size_t)((query ? query : p) - uri))
                          : NULL; /* out of memory: the decoded path is logged */
    }
    return NULL; /* the request's context stays ours to make */
}

/* What a trusted proxy passed on. A proxy may append its own line after any
 * the client sent (HAProxy's forwardfor does), so every line of the client
 * header counts, in order, and of X-Forwarded-Proto the last. */
struct proxy_lines {
    const char *client_header; /* X-Forwarded-For or Forwarded */
    size_t count;              /* its lines; the ring keeps the last ones */
    const char *ring[LH_PROXY_HOPS_MAX];
    const char *proto; /* the last X-Forwarded-Proto line */
};

static enum MHD_Result collect_proxy_line(void *cls, enum MHD_ValueKind kind, const char *key,
                                          const char *value)
{
    struct proxy_lines *pl = cls;
    (void)kind;
    if (value == NULL)
        return MHD_YES;
    if (strcasecmp(key, pl->client_header) == 0)
        pl->ring[pl->count++ % LH_PROXY_HOPS_MAX] = value;
    else if (strcasecmp(key, "X-Forwarded-Proto") == 0)
        pl->proto = value;
    return MHD_YES;
}

/* Whether the last element of an X-Forwarded-Proto list, the one the
 * nearest proxy added, is https. */
static int last_element_is_https(const char *proto)
{
    const char *last = strrchr(proto, ',');
    last = last ? last + 1 : proto;
    while (*last == ' ' || *last == '\t')
        last++;
    size_t len = strlen(last);
    while (len > 0 && (last[len - 1] == ' ' || last[len - 1] == '\t'))
        len--;
    return len == 5 && strncasecmp(last, "https", 5) == 0;
}

static struct exchange *exchange_new(struct lh_http *h, struct MHD_Connection *conn,
                                     const char *url, const char *method)
{
    struct thread_state *ts = this_thread(h);
    struct connection *c = connection_of(conn);

    if (c == NULL || ts == NULL) /* out of memory at connect time, or no thread slot */
        return NULL;
    struct exchange *x = &c->x;
    memset(x, 0, sizeof(*x));
    clock_gettime(CLOCK_MONOTONIC, &x->start);
    x->h = h;
    x->conn = conn;
    x->thread = ts->index;
    make_request_id(h, ts, x->id);
    x->req.client = c->client;
    if (h->trusted != NULL && lh_cidr_set_contains(h->trusted, x->req.client)) {
        /* Only the header the proxies set: a client could send the other. */
        struct proxy_lines pl = {.client_header =
                                     h->proxy_forwarded ? "Forwarded" : "X-Forwarded-For"};
        MHD_get_connection_values(conn, MHD_HEADER_KIND, collect_proxy_line, &pl);
        const char *lines[LH_PROXY_HOPS_MAX];
        size_t n = pl.count < LH_PROXY_HOPS_MAX ? pl.count : LH_PROXY_HOPS_MAX;
        for (size_t i = 0; i < n; i++)
            lines[i] = pl.ring[(pl.count - n + i) % LH_PROXY_HOPS_MAX];
        if (lh_client_ip_lines(h->trusted, x->req.client, lines, n, h->proxy_forwarded,
                               x->client) == LH_OK)
            x->req.client = x->client;
        x->req.https = pl.proto != NULL && last_element_is_https(pl.proto);
    }
    x->bad_target = c->bad_target;
    x->target_bytes = c->target_bytes;
    c->bad_target = 0;
    c->target_bytes = 0;
    atomic_store_explicit(&c->head_deadline, 0, memory_order_relaxed);
    x->req.method = method;
    url = origin_form(url, &x->bad_target);
    /* "*" is the server as a whole, for OPTIONS alone (RFC 9112 3.2.4). */
    x->whole_server = strcmp(url, "*") == 0 && strcmp(method, "OPTIONS") == 0;
    if (!x->whole_server && !routable_path(url))
        x->bad_target = 1;
    x->req.path = url;
    x->req.path_len = strlen(url);
    x->req.id = x->id;
    x->req.each = each;
    x->req.transport = conn;
    x->req.fingerprint_memo = &c->fingerprint_memo;
    atomic_fetch_add_explicit(&ts->inflight, 1, memory_order_relaxed);
    return x;
}

/* Appends a body chunk, or counts it as discarded past the limit. */
static enum MHD_Result take_body(struct exchange *x, const char *data, size_t len)
{
    size_t max = x->h->max_body_bytes;

    if (x->body_too_large || x->body_len + len > max) {
        x->body_too_large = 1;
        x->discarded += len;
        if (x->discarded <= DISCARD_FACTOR * (max + 1))
            return MHD_YES;
        /* libmicrohttpd then logs "Application reported internal error". */
        lh_log(LH_LOG_INFO, x->id,
               "http: request body over %d times max_body_bytes: connection closed unread, "
               "without an answer (413 in the access log)",
               DISCARD_FACTOR);
        x->status = 413;
        x->closed_unread = 1;
        return MHD_NO;
    }
    if (x->body_len + len > x->body_cap) {
        size_t cap = x->body_cap ? x->body_cap : 4096;
        while (cap < x->body_len + len)
            cap *= 2;
        if (cap > max)
            cap = max;
        char *grown = realloc(x->body, cap);
        if (grown == NULL)
            return MHD_NO;
        x->body = grown;
        x->body_cap = cap;
    }
    memcpy(x->body + x->body_len, data, len);
    x->body_len += len;
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    struct lh_http *h = cls;
    struct exchange *x = *con_cls;

    if (x == NULL) { /* headers complete */
        x = exchange_new(h, conn, url, method);
        if (x == NULL)
            return MHD_NO;
        *con_cls = x;

        /* The request line counts as sent: libmicrohttpd has already split
         * and decoded its target (on_target measured it). */
        struct header_scan scan = {.bytes = strlen(method) + x->target_bytes + 12};
        MHD_get_connection_values_n(conn, MHD_HEADER_KIND | MHD_GET_ARGUMENT_KIND | MHD_COOKIE_KIND,
                                    scan_header, &scan);
        /* Too little room left for the policies' headers: the bare answer,
         * which still fits where a reply of any size would not have. */
        x->head_used = head_used(&scan);
        if (!head_fits(h, &scan))
            return queue_json(x, 431, ERR_431, sizeof(ERR_431) - 1, NULL);
        if (scan.bytes > h->max_header_bytes)
            return queue_error(x, 431, ERR_431, sizeof(ERR_431) - 1);
        if (!token(method))
            return queue_error(x, 400, ERR_400_METHOD, sizeof(ERR_400_METHOD) - 1);
        if (scan.malformed)
            return queue_error(x, 400, ERR_400_HEADER, sizeof(ERR_400_HEADER) - 1);
        int http11 = strcmp(version, MHD_HTTP_VERSION_1_1) == 0;
        if (bad_host(&scan, http11))
            return queue_error(x, 400, ERR_400_HOST, sizeof(ERR_400_HOST) - 1);
        if (x->bad_target)
            return queue_error(x, 400, ERR_400_TARGET, sizeof(ERR_400_TARGET) - 1);
        const char *framing = ambiguous_framing(&scan, http11);
        if (framing != NULL)
            return queue_error(x, 400, framing, strlen(framing));
        if (scan.unsupported_coding)
            return queue_error(x, 501, ERR_501_CODING, sizeof(ERR_501_CODING) - 1);
        /* Answering now, before the body, makes libmicrohttpd close the
         * connection: right for an oversized body, wrong for any other request,
         * which is dispatched on the next call, once the request is complete.
         * libmicrohttpd has validated the length. */
        if (scan.length != NULL && strtoull(scan.length, NULL, 10) > h->max_body_bytes)
            return queue_error(x, 413, ERR_413, sizeof(ERR_413) - 1);
        return MHD_YES;
    }
    if (x->suspended) { /* woken after a blocking call */
        struct lh_reply reply;
        x->suspended = 0;
        return settle(x, lh_call_resume(x->call, &reply), &reply);
    }
    if (*upload_data_size != 0) {
        size_t len = *upload_data_size;
        *upload_data_size = 0;
        return take_body(x, upload_data, len);
    }
    if (x->body_too_large)
        return queue_error(x, 413, ERR_413, sizeof(ERR_413) - 1);
    return dispatch(x);
}

/* Metrics, and a warning for a request slower than its route's threshold. */
static void count_request(struct lh_http *h, struct exchange *x, unsigned status, double seconds)
{
    lh_metrics_request(h->metrics, x->thread, x->route, x->req.method, status, seconds);
    double slow = lh_metrics_slow(h->metrics, x->route);
    /* Not one that got no answer: its time is the client's (a body that
     * never came, a connection closed), not the server's. */
    if (seconds > slow && x->status != 0) {
        lh_metric_add(lh_metrics_core(h->metrics, LH_CORE_SLOW_REQUESTS), 1);
        char *path = lh_log_escaped(x->req.path, x->req.path_len);
        lh_log(LH_LOG_WARN, x->id, "slow request: %s %s took %.0f ms (route %s, threshold %.0f ms)",
               x->req.method, path ? path : "-", seconds * 1e3,
               lh_metrics_route_name(h->metrics, x->route), slow * 1e3);
        free(path);
    }
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct lh_http *h = cls;
    struct exchange *x = *con_cls;
    struct timespec now;
    (void)conn;

    if (x == NULL)
        return;
    *con_cls = NULL;
    if (x->call) {
        if (x->status == 0) /* the connection went away before the answer was queued */
            x->route = lh_call_route(x->call);
        lh_call_release(x->call);
    }
    /* The answer was queued, then lost: the access log alone would show it
     * as sent, with 0 bytes. (A stream ends so whenever its viewer leaves.) */
    if (toe == MHD_REQUEST_TERMINATED_WITH_ERROR && x->status != 0 && !x->streamed &&
        !x->closed_unread) {
        char *path = lh_log_escaped(x->req.path, x->req.path_len);
        lh_log(LH_LOG_INFO, x->id,
               "%s %s: its %u answer was not sent in full: libmicrohttpd closed the connection "
               "(the client went away, or no room was left for the answer's headers after a "
               "large request head)",
               x->req.method, path ? path : "-", x->status);
        free(path);
    }
    struct connection *c = (struct connection *)((char *)x - offsetof(struct connection, x));
    clock_gettime(CLOCK_MONOTONIC, &now);
    struct lh_access_entry e = {
        .request_id = x->id,
        .client = x->req.client,
        .method = x->req.method,
        .path = c->raw_path ? c->raw_path : x->req.path,
        .status = toe == MHD_REQUEST_TERMINATED_COMPLETED_OK || x->status ? x->status : 499,
        /* A stream ends when its viewer leaves: what it sent until then. */
        .bytes = toe == MHD_REQUEST_TERMINATED_COMPLETED_OK || x->streamed ? x->bytes : 0,
        .duration_ms = (double)(now.tv_sec - x->start.tv_sec) * 1e3 +
                       (double)(now.tv_nsec - x->start.tv_nsec) / 1e6,
    };
    lh_log_access(&e);
    /* An event stream lasts as long as its viewer: counted, it would be a
     * latency spike on every dashboard visit. */
    if (lh_metrics_enabled(h->metrics) && !x->streamed)
        count_request(h, x, e.status, e.duration_ms / 1e3);
    atomic_fetch_sub_explicit(&h->threads[x->thread].inflight, 1, memory_order_relaxed);
    if (x->streamed)
        atomic_fetch_sub_explicit(&h->threads[x->thread].streaming, 1, memory_order_relaxed);
    free(x->body);
    /* The next head, if any, is due idle_timeout (libmicrohttpd's limit on
     * silence, which closes idle connections first) plus header_timeout
     * from now: a client trickling it gets no longer than that. */
    atomic_store_explicit(&c->head_deadline,
                          milliseconds(&now) + 1000LL * (h->idle_timeout + h->header_timeout),
                          memory_order_relaxed);
}

/* The peer's address as text, or "-" when there is none. An IPv4 client of
 * a dual-stack listener ("::") arrives as ::ffff:a.b.c.d: written a.b.c.d,
 * so that its limits and logs are those of the same client on IPv4. */
static void format_client(const struct sockaddr *sa, char out[INET6_ADDRSTRLEN])
{
    if (sa != NULL) {
        int family = sa->sa_family;
        const void *addr = &((const struct sockaddr_in *)sa)->sin_addr;
        if (family == AF_INET6) {
            const struct in6_addr *a6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
            addr = a6;
            if (IN6_IS_ADDR_V4MAPPED(a6)) {
                family = AF_INET;
                addr = &a6->s6_addr[12];
            }
        }
        if (inet_ntop(family, addr, out, INET6_ADDRSTRLEN) != NULL)
            return;
    }
    snprintf(out, INET6_ADDRSTRLEN, "-");
}

/* 1 for the one caller, on any thread, that finds `seconds` passed since
 * *last and claims it: for warnings that must not flood the log. */
static int once_per(_Atomic long *last, long seconds)
{
    long now = (long)time(NULL), then = atomic_load(last);
    return now - then >= seconds && atomic_compare_exchange_strong(last, &then, now);
}

/* libmicrohttpd stops accepting at the limit and says nothing: the
 * connections wait in the listen backlog. Said here, once a minute. */
static void warn_if_full(struct lh_http *h, const struct thread_state *ts)
{
    if (ts->connections >= h->connections_per_thread && once_per(&h->full_warned, 60))
        lh_log(LH_LOG_WARN, NULL,
               "connection limit reached (%u per HTTP thread): new connections wait "
               "(raise --max-connections?)",
               h->connections_per_thread);
}


static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    struct lh_http *h = cls;
    struct connection *c = *socket_context;
    struct thread_state *ts = this_thread(h);

    if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        /* libmicrohttpd closes the socket after this: until then, the
         * sweeper may still shut it down, never a reused descriptor. */
        if (c != NULL) {
            struct thread_state *owner = &h->threads[c->thread];
            pthread_mutex_lock(&owner->lock);
            if (c->prev)
                c->prev->next = c->next;
            else
                owner->open = c->next;
            if (c->next)
                c->next->prev = c->prev;
            owner->connections--;
            pthread_mutex_unlock(&owner->lock);
            free(c->raw_path);
        }
        free(c);
        *socket_context = NULL;
        return;
    }
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const union MHD_ConnectionInfo *fd =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (ts == NULL || fd == NULL || (c = malloc(sizeof(*c))) == NULL)
        return;
    format_client(ci ? ci->client_addr : NULL, c->client);
    c->fingerprint_memo.generation = 0;
    c->bad_target = 0;
    c->target_bytes = 0;
    c->raw_path = NULL;
    c->fd = fd->connect_fd;
    c->thread = ts->index;
    /* A client that connects and trickles its head holds a slot: it has
     * header_timeout in all. */
    atomic_init(&c->head_deadline, monotonic_ms() + 1000LL * h->header_timeout);
    pthread_mutex_lock(&ts->lock);
    c->prev = NULL;
    c->next = ts->open;
    if (ts->open)
        ts->open->prev = c;
    ts->open = c;
    ts->connections++;
    warn_if_full(h, ts);
    pthread_mutex_unlock(&ts->lock);
    *socket_context = c;
}

/* libmicrohttpd 0.9.75 reads up to 128 events per epoll_wait and, when it
 * gets that many, waits again before handling them, with the timeout it
 * worked out before: up to idle_timeout when nothing was pending then. A
 * thread of more than 120 connections can so sit on requests it has been
 * told about until some other event comes, often the clients giving up.
 * A thread stalls so when its connections have bytes unread and it began
 * no request since the sweeper's previous look (ts->lock held). */
#define STALL_CONNECTIONS 120
#define SWEEP_MS 250

static int stalled(struct thread_state *ts)
{
    uint64_t seq = atomic_load_explicit(&ts->seq, memory_order_relaxed);
    int progress = seq != ts->seq_swept;
    ts->seq_swept = seq;
    if (progress || ts->connections < STALL_CONNECTIONS)
        return 0;
    for (struct connection *c = ts->open; c != NULL; c = c->next) {
        int unread = 0;
        if (ioctl(c->fd, FIONREAD, &unread) == 0 && unread > 0)
            return 1;
    }
    return 0;
}

/* Wakes every HTTP thread out of epoll_wait: a connection makes the
 * listening socket, which each thread watches, readable. It is closed at
 * once; libmicrohttpd reads its end and closes it too, with no request. */
static void wake_threads(struct lh_http *h)
{
    int fd = socket(h->listening.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    (void)connect(fd, (const struct sockaddr *)&h->listening, h->listening_len);
    close(fd);
}

/* Shuts down (without closing: the descriptor stays libmicrohttpd's) every
 * connection past its head deadline; libmicrohttpd then sees the end of the
 * stream and closes it. Returns how many; *stalls: the threads found
 * stalled (see stalled()). */
static unsigned sweep(struct lh_http *h, unsigned *stalls)
{
    long long now = monotonic_ms();
    unsigned closed = 0;

    *stalls = 0;
    for (unsigned i = 0; i < h->nthreads; i++) {
        struct thread_state *ts = &h->threads[i];
        pthread_mutex_lock(&ts->lock);
        for (struct connection *c = ts->open; c != NULL; c = c->next) {
            long long due = atomic_load_explicit(&c->head_deadline, memory_order_relaxed);
            /* The exchange fails if the head completed meanwhile. */
            if (due != 0 && now >= due &&
                atomic_compare_exchange_strong(&c->head_deadline, &due, 0)) {
                shutdown(c->fd, SHUT_RDWR);
                closed++;
            }
        }
        *stalls += stalled(ts);
        pthread_mutex_unlock(&ts->lock);
    }
    return closed;
}

static void *sweeper_main(void *arg)
{
    struct lh_http *h = arg;

    pthread_mutex_lock(&h->sweep_lock);
    while (!h->sweep_stop) {
        struct timespec until = lh_timespec_of(lh_wall_seconds() + SWEEP_MS / 1000.0);
        pthread_cond_timedwait(&h->sweep_wake, &h->sweep_lock, &until);
        if (h->sweep_stop)
            break;
        pthread_mutex_unlock(&h->sweep_lock);
        unsigned stalls;
        unsigned closed = sweep(h, &stalls);
        if (stalls > 0 && h->listening_len > 0) {
            wake_threads(h);
            if (once_per(&h->stall_logged, 60))
                lh_log(LH_LOG_INFO, NULL,
                       "woke %u HTTP thread(s) sitting on unread requests (libmicrohttpd 0.9.75 "
                       "waits after a full batch of 128 events); logged once a minute",
                       stalls);
        }
        if (closed > 0)
            lh_log(LH_LOG_INFO, NULL,
                   "closed %u connection(s) with no complete request head in time "
                   "(header_timeout %u s after connecting, idle_timeout + header_timeout "
                   "after an answer), or with a head libmicrohttpd refused and left open "
                   "(too many query arguments for its memory)",
                   closed, h->header_timeout);
        pthread_mutex_lock(&h->sweep_lock);
    }
    pthread_mutex_unlock(&h->sweep_lock);
    return NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    struct lh_http *h = cls;
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    if (strstr(msg, "limit") == NULL) {
        lh_log(LH_LOG_INFO, NULL, "http: %s", msg);
        return;
    }
    /* A refused connection is the operator's to know about, but a flood of
     * them must not flood the log: a line per 10 s, counting the rest. */
    if (!once_per(&h->refusal_logged, 10)) {
        atomic_fetch_add(&h->refusals_unlogged, 1);
        return;
    }
    /* libmicrohttpd says the same for both limits, and names no address. */
    lh_log(LH_LOG_WARN, NULL,
           "http: %s (max_connections_per_ip %u reached by one address, or max_connections %u; "
           "%u more refused since the last such line)",
           msg, h->max_connections_per_ip, h->max_connections,
           atomic_exchange(&h->refusals_unlogged, 0));
}

/* -- Lifecycle --------------------------------------------------------------- */

/* Frees what lh_http_new set up before the daemon. */
static void destroy(struct lh_http *h)
{
    for (unsigned i = 0; i < h->nthreads; i++)
        pthread_mutex_destroy(&h->threads[i].lock);
    pthread_mutex_destroy(&h->sweep_lock);
    pthread_cond_destroy(&h->sweep_wake);
    free(h->threads);
    free(h);
}

static uint32_t random_prefix(void)
{
    uint32_t v = 0;
    FILE *f = fopen("/dev/urandom", "rb");

    if (f == NULL || fread(&v, sizeof(v), 1, f) != 1) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        v = (uint32_t)ts.tv_nsec ^ (uint32_t)getpid() << 16;
    }
    if (f)
        fclose(f);
    return v;
}

/* The address a connection to this server goes to: the listening socket's,
 * with loopback for a wildcard. */
static void remember_listening(struct lh_http *h)
{
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_LISTEN_FD);
    socklen_t len = sizeof(h->listening);
    if (info == NULL || getsockname(info->listen_fd, (struct sockaddr *)&h->listening, &len) != 0)
        return;
    if (h->listening.ss_family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&h->listening;
        if (a->sin_addr.s_addr == htonl(INADDR_ANY))
            a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    } else if (h->listening.ss_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&h->listening;
        if (IN6_IS_ADDR_UNSPECIFIED(&a->sin6_addr))
            a->sin6_addr = in6addr_loopback;
    }
    h->listening_len = len;
}

struct lh_http *lh_http_new(const struct lh_http_options *o, struct lh_workers *ws, char *err,
                            size_t errlen)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    char port[8];
    struct lh_http *h = calloc(1, sizeof(*h));

    if (h != NULL)
        h->threads = lh_calloc_lines(o->threads, sizeof(*h->threads));
    if (h == NULL || h->threads == NULL) {
        free(h);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    h->nthreads = o->threads;
    for (unsigned i = 0; i < h->nthreads; i++)
        pthread_mutex_init(&h->threads[i].lock, NULL);
    pthread_mutex_init(&h->sweep_lock, NULL);
    pthread_cond_init(&h->sweep_wake, NULL);
    snprintf(port, sizeof(port), "%u", o->port);
    int gai = getaddrinfo(o->host, port, &hints, &ai);
    if (gai != 0) {
        snprintf(err, errlen, "cannot resolve listen address %s: %s", o->host, gai_strerror(gai));
        destroy(h);
        return NULL;
    }
    h->ws = ws;
    h->metrics = o->metrics;
    h->monitor = o->monitor;
    h->statics = o->statics;
    if (h->metrics)
        h->static_route = lh_metrics_route_id(h->metrics, "GET /static/*path");
    h->max_header_bytes = o->max_header_bytes;
    h->max_body_bytes = o->max_body_bytes;
    h->proxy_forwarded = o->proxy_forwarded;
    h->trusted = o->trusted_proxies && lh_cidr_set_count(o->trusted_proxies) ? o->trusted_proxies
                                                                                : NULL;
    h->id_prefix = random_prefix();
    h->idle_timeout = o->idle_timeout;
    h->header_timeout = o->header_timeout;
    h->connections_per_thread = o->max_connections / o->threads;
    h->max_connections = o->max_connections;
    h->max_connections_per_ip = o->max_connections_per_ip;

    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG | MHD_USE_TURBO | MHD_USE_SUPPRESS_DATE_NO_CLOCK;
    /* "::" means every address, IPv4 ones included, as it does for nginx's [::]. */
    if (ai->ai_family == AF_INET6)
        flags |= IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)ai->ai_addr)->sin6_addr)
                     ? MHD_USE_DUAL_STACK
                     : MHD_USE_IPv6;
    /* libmicrohttpd keeps the request head in the connection's pool, with a
     * record per header line, argument and cookie (it splits the Cookie
     * header, into a copy of it), and builds the reply's header block in
     * what is left. Room for the head up to the limit, for a copy of a
     * Cookie header as long, records for 180 cookies (a browser's most for
     * one site) and 40 other lines or half the limit in bytes, whichever is
     * more (so that a head a little over the limit still reaches our JSON
     * 431), and 2 KiB of reply headers. Not more: libmicrohttpd zeroes the
     * whole pool after each request and half of it again while building the
     * reply, so every KiB here is paid by every request. */
    size_t records = 220 * POOL_RECORD_BYTES;
    if (o->max_header_bytes / 2 > records)
        records = o->max_header_bytes / 2;
    size_t memory = 2 * o->max_header_bytes + records + POOL_REPLY_BYTES;
    h->pool_bytes = memory;
    if (o->starting != NULL)
        o->starting(h, o->starting_arg);
    /* One thread needs no pool (libmicrohttpd warns that a pool of 1 is ignored). */
    struct MHD_OptionItem pool[] = {
        {o->threads > 1 ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END, o->threads, NULL},
        {MHD_OPTION_END, 0, NULL}};
    /* Strictness 0: the Host checks are ours (bad_host), so they answer JSON.
     * The port binds through SOCK_ADDR; given here too, it is the one that
     * libmicrohttpd's own messages name ("Failed to bind to port ..."). */
    h->daemon = MHD_start_daemon(
        flags, (uint16_t)o->port, NULL, NULL, on_request, h, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, h,
        MHD_OPTION_SOCK_ADDR, ai->ai_addr,
        MHD_OPTION_ARRAY, pool, MHD_OPTION_CONNECTION_LIMIT,
        o->max_connections, MHD_OPTION_PER_IP_CONNECTION_LIMIT, o->max_connections_per_ip,
        MHD_OPTION_CONNECTION_TIMEOUT, o->idle_timeout,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, memory, MHD_OPTION_LISTEN_BACKLOG_SIZE, 4096,
        MHD_OPTION_STRICT_FOR_CLIENT, 0, MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, h, MHD_OPTION_URI_LOG_CALLBACK, on_target, h,
        MHD_OPTION_END);
    freeaddrinfo(ai);
    if (h->daemon == NULL) {
        snprintf(err, errlen, "cannot listen on %s port %u (in use, or not an address of this host)",
                 o->host, o->port);
        destroy(h);
        return NULL;
    }
    remember_listening(h);
    if (pthread_create(&h->sweeper, NULL, sweeper_main, h) != 0) {
        snprintf(err, errlen, "cannot start the connection sweeper thread");
        MHD_stop_daemon(h->daemon);
        destroy(h);
        return NULL;
    }
    h->sweeper_started = 1;
    return h;
}

void lh_http_quiesce(struct lh_http *h)
{
    if (atomic_exchange(&h->quiesced, 1))
        return;
    MHD_socket fd = MHD_quiesce_daemon(h->daemon);
    if (fd != MHD_INVALID_SOCKET)
        close(fd);
}

unsigned lh_http_inflight(const struct lh_http *h)
{
    unsigned n = 0;
    for (unsigned i = 0; i < h->nthreads; i++)
        n += atomic_load_explicit(&h->threads[i].inflight, memory_order_relaxed);
    return n;
}

unsigned lh_http_streaming(const struct lh_http *h)
{
    unsigned n = 0;
    for (unsigned i = 0; i < h->nthreads; i++)
        n += atomic_load_explicit(&h->threads[i].streaming, memory_order_relaxed);
    return n;
}

void lh_http_free(struct lh_http *h)
{
    if (h == NULL)
        return;
    if (h->sweeper_started) {
        pthread_mutex_lock(&h->sweep_lock);
        h->sweep_stop = 1;
        pthread_cond_signal(&h->sweep_wake);
        pthread_mutex_unlock(&h->sweep_lock);
        pthread_join(h->sweeper, NULL);
    }
    MHD_stop_daemon(h->daemon);
    destroy(h);
}
