/* include/luahost/metrics.h: the process's metrics, cheap enough to stay on.
 *
 * Requests are counted per route and method, by status class, with a
 * latency histogram, in per-HTTP-thread series: each has one writer (its
 * thread), so the request path takes no lock and does no atomic
 * read-modify-write. Named metrics (counters, gauges, histograms) serve the
 * core's other events and Lua's own metrics; they are shared and updated
 * with atomics. lh_metrics_render writes everything, with the pool, cache,
 * Redis and process figures of the sources, in the Prometheus text format.
 *
 * Thread safety: lh_metrics_request only from the thread that owns the
 * given thread index; everything else from any thread; free once. */
#ifndef LUAHOST_METRICS_H
#define LUAHOST_METRICS_H
#include <stddef.h>
#include <stdint.h>
#include "luahost/common.h"

struct lh_json_buf;
struct lh_db;
struct lh_cache;
struct lh_redis;
struct lh_task_pool;

#define LH_METRICS_MAX_ROUTES 512
#define LH_METRICS_ROUTE_NONE 0 /* no route: 404, 405 and the server's own answers */
#define LH_METRICS_LATENCY_BUCKETS 14

/* The upper bounds of the request latency buckets, in seconds (+Inf aside). */
extern const double lh_metrics_latency_bounds[LH_METRICS_LATENCY_BUCKETS];

struct lh_metrics; /* opaque */

struct lh_metrics *lh_metrics_new(unsigned threads, int enabled);
void lh_metrics_free(struct lh_metrics *m);
int lh_metrics_enabled(const struct lh_metrics *m);

/* -- Requests ---------------------------------------------------------------- */

/* The id of a route key ("GET /api/svg/:id"), the same for the process's
 * lifetime; LH_METRICS_ROUTE_NONE when the table is full. */
int lh_metrics_route_id(struct lh_metrics *m, const char *route);
/* Requests of the route slower than seconds are logged as slow. */
void lh_metrics_set_slow(struct lh_metrics *m, int route, double seconds);
double lh_metrics_slow(const struct lh_metrics *m, int route);
/* The route key of an id, or NULL. */
const char *lh_metrics_route_name(const struct lh_metrics *m, int route);

void lh_metrics_request(struct lh_metrics *m, unsigned thread, int route, const char *method,
                        unsigned status, double seconds);

/* Totals over every thread, route and method: requests by status class
 * (index 1..5 for 1xx..5xx) and the latency histogram (cumulative counts are
 * not used: bucket i counts requests in (bound[i-1], bound[i]], the last one
 * the rest). For the sampler. */
struct lh_metrics_totals {
    uint64_t by_class[6];
    uint64_t buckets[LH_METRICS_LATENCY_BUCKETS + 1];
    uint64_t count;
    double sum;
};
void lh_metrics_totals(struct lh_metrics *m, struct lh_metrics_totals *t);
/* The slowest request, in seconds, since the last call (0 if none): the
 * histogram's buckets alone would put a quantile past it. For the sampler. */
double lh_metrics_take_slowest(struct lh_metrics *m);

/* -- Named metrics ----------------------------------------------------------- */

enum lh_metric_kind { LH_METRIC_COUNTER, LH_METRIC_GAUGE, LH_METRIC_HISTOGRAM };

#define LH_METRIC_MAX_BUCKETS 32

struct lh_metric; /* opaque, lives as long as the registry */

/* Defines a metric, or returns the one defined with this name and kind
 * before (from another Lua state, or before a reload). name must follow
 * Prometheus naming ([a-zA-Z_:][a-zA-Z0-9_:]*); no series it exposes (a
 * histogram's _bucket, _sum and _count too) may begin luahost_ or process_
 * (the core's) or be another metric's series; buckets (histograms; NULL for
 * the latency defaults) strictly increasing. NULL and the reason in err. */
struct lh_metric *lh_metrics_define(struct lh_metrics *m, const char *name, const char *help,
                                    enum lh_metric_kind kind, const double *buckets,
                                    size_t nbuckets, char *err, size_t errlen);
void lh_metric_add(struct lh_metric *x, double v);     /* counters (v >= 0) and gauges */
void lh_metric_set(struct lh_metric *x, double v);     /* gauges */
void lh_metric_observe(struct lh_metric *x, double v); /* histograms */
double lh_metric_value(const struct lh_metric *x);     /* counters and gauges */

/* Counters of the core, defined by lh_metrics_new. */
enum lh_core_metric {
    LH_CORE_RATELIMIT_REJECTIONS,
    LH_CORE_BOT_DETECTIONS,
    LH_CORE_LUA_ERRORS,
    LH_CORE_RELOADS,
    LH_CORE_RELOAD_FAILURES,
    LH_CORE_SLOW_REQUESTS,
    LH_CORE_RATELIMIT_LOCAL,
    LH_CORE_METRICS
};
struct lh_metric *lh_metrics_core(struct lh_metrics *m, enum lh_core_metric which);
/* For Lua: a core counter by the part of its name after "luahost_"
 * ("ratelimit_rejections_total"), or NULL. */
struct lh_metric *lh_metrics_core_by_name(struct lh_metrics *m, const char *name);

/* -- Exposition -------------------------------------------------------------- */

struct lh_metrics_sources {
    struct lh_db *db;
    struct lh_cache *cache;
    struct lh_redis *redis;
    struct lh_task_pool *blocking_tasks; /* sleeps, database and Redis calls */
    struct lh_task_pool *cpu_tasks;      /* password hashing */
    unsigned (*inflight)(void *arg);
    void *inflight_arg;
};
/* Set once; requests may already be rendering /metrics (they see no
 * sources until then). */
void lh_metrics_set_sources(struct lh_metrics *m, const struct lh_metrics_sources *s);
const struct lh_metrics_sources *lh_metrics_sources(const struct lh_metrics *m);

/* The process's resident memory in bytes, CPU seconds, open descriptors. */
struct lh_process_stats {
    double rss_bytes, cpu_seconds, open_fds, start_time, uptime;
};
void lh_metrics_process(const struct lh_metrics *m, struct lh_process_stats *p);

/* Appends the Prometheus text exposition (version 0.0.4) to out. */
enum lh_status lh_metrics_render(struct lh_metrics *m, struct lh_json_buf *out);

#endif
