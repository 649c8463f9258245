/* include/luahost/monitor.h: the live view of the metrics.
 *
 * One sampler thread reads the metrics once a second and derives a sample:
 * requests per second, p50/p95/p99 latency, error rate, pool usage and
 * waits, cache hit rates, rate-limit rejections, Redis and database health.
 * It evaluates the alert rules on each sample (logging when an alert fires
 * and when it resolves) and hands the sample, as a server-sent event, to
 * every open stream; the last 60 are replayed to a new stream. However many
 * streams are open, the work per second is one sample.
 *
 * Prober threads, one for the database and one for Redis, check each once
 * a second, so that a slow or unreachable service never delays the samples
 * nor the other's check.
 *
 * Thread safety: everything from any thread; free once, after the
 * transport stopped. */
#ifndef LUAHOST_MONITOR_H
#define LUAHOST_MONITOR_H
#include <stddef.h>
#include <sys/types.h>
#include "luahost/common.h"

struct lh_metrics;
struct lh_monitor; /* opaque */

struct lh_alert_rule {
    char name[64];
    char metric[32];  /* one of lh_monitor_metric_names */
    int above;        /* 1: fires while metric > threshold; 0: while below */
    double threshold;
    double for_seconds; /* the condition must hold this long */
    char severity[16];
    char description[200];
};

#define LH_MONITOR_MAX_RULES 64

/* The metrics a rule may watch, NULL-terminated: rps, p50_ms, p95_ms,
 * p99_ms, error_rate (0..1), inflight, pool_waiting, pool_active,
 * db_healthy (1/0), redis_up (1/0), cache_l1_hit_rate (of the lookups
 * since the last sample), ratelimit_rejections_per_s, bot_detections_per_s,
 * rss_mb. */
extern const char *const lh_monitor_metric_names[];

/* interval: seconds between samples (0: 1). stream_seconds: how long an
 * event stream lasts before it ends and its client reconnects, signing in
 * again (0: no end), so that a revoked session loses the live view. */
struct lh_monitor *lh_monitor_new(struct lh_metrics *m, double interval, double stream_seconds);
/* Starts the threads, once the metrics' sources are set. */
enum lh_status lh_monitor_start(struct lh_monitor *mon, char *err, size_t errlen);
/* Stops the threads, which read the metrics' sources: before any source
 * goes. Streams stay open. Again, or NULL: a no-op. */
void lh_monitor_stop(struct lh_monitor *mon);
/* Stops the threads, ends every stream, frees. NULL is a no-op. */
void lh_monitor_free(struct lh_monitor *mon);

/* Stages rules to replace the ones in force at the next commit (a load of
 * the scripts stages them; only one that succeeds as a whole commits).
 * LH_ERR_INVALID with err for an unknown metric, and nothing staged. */
enum lh_status lh_monitor_set_rules(struct lh_monitor *mon, const struct lh_alert_rule *rules,
                                    size_t n, char *err, size_t errlen);
/* Puts the staged rules in force, if any were staged since the last commit
 * or discard; a rule keeps its state (pending, firing) when a rule of the
 * same name stays. NULL is a no-op. */
void lh_monitor_commit_rules(struct lh_monitor *mon);
/* Drops the staged rules: the ones in force stay. NULL is a no-op. */
void lh_monitor_discard_rules(struct lh_monitor *mon);
/* The firing alerts, as a JSON array (malloc'd; NULL without memory). */
char *lh_monitor_alerts_json(struct lh_monitor *mon);

/* -- Streams ----------------------------------------------------------------- */

struct lh_monitor_stream; /* opaque */

/* A subscriber whose pending text starts with the history. wake(arg) is
 * called, from the sampler's thread, when a parked stream has data again
 * or must end. NULL without memory. */
struct lh_monitor_stream *lh_monitor_stream_open(struct lh_monitor *mon, void (*wake)(void *),
                                                 void *arg);
/* Copies up to max pending bytes into buf and returns their number. With
 * nothing pending it calls park with the stream's wake argument, under the
 * lock the sampler takes before it decides whom to wake (so no wake-up is
 * lost), and returns 0; -1 once the stream has ended (the server is
 * stopping, or the reader fell too far behind). */
ssize_t lh_monitor_stream_read(struct lh_monitor_stream *s, char *buf, size_t max,
                               void (*park)(void *));
void lh_monitor_stream_close(struct lh_monitor_stream *s);
/* Ends every stream (graceful shutdown): each reads -1 from now on. */
void lh_monitor_end_streams(struct lh_monitor *mon);

#endif
