/* src/monitor.c: the sampler, the alert rules and the event streams (see
 * include/luahost/monitor.h). */
#include "luahost/monitor.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "luahost/cache.h"
#include "luahost/db.h"
#include "luahost/json.h"
#include "luahost/log.h"
#include "luahost/metrics.h"
#include "luahost/redis.h"

#define HISTORY 60
#define STREAM_MAX_PENDING (256 * 1024) /* a reader this far behind is dropped */

const char *const lh_monitor_metric_names[] = {
    "rps",          "p50_ms",      "p95_ms",     "p99_ms",   "error_rate",
    "inflight",     "pool_waiting", "pool_active", "db_healthy", "redis_up",
    "cache_l1_hit_rate", "ratelimit_rejections_per_s", "bot_detections_per_s", "rss_mb", NULL};

enum metric_index {
    M_RPS, M_P50, M_P95, M_P99, M_ERROR_RATE, M_INFLIGHT, M_POOL_WAITING, M_POOL_ACTIVE,
    M_DB_HEALTHY, M_REDIS_UP, M_CACHE_L1_HIT_RATE, M_RATELIMIT, M_BOT, M_RSS_MB, M_COUNT
};

struct sample {
    double t;
    double v[M_COUNT]; /* NAN: not measured (no database, no Redis, no request finished) */
    int pool;          /* there is a database pool */
    double pool_size, pool_idle, pool_waits_per_s, l2_hit_rate;
};

struct rule_state {
    struct lh_alert_rule rule;
    int metric;
    double pending_since; /* 0: the condition does not hold */
    double firing_since;  /* 0: not firing */
    double measured_at;   /* the last sample with the metric; 0: none yet */
    double value;
};

/* How long a rule's metric may go unmeasured (a second without a finished
 * request has no latency and no error rate) before that counts as the
 * condition ending: at least a minute, or the rule's for_seconds. */
#define NO_DATA_GRACE 60.0

struct lh_monitor_stream {
    struct lh_monitor *mon;
    struct lh_monitor_stream *next;
    void (*wake)(void *);
    void *wake_arg;
    char *pending;
    size_t len, cap;
    int waiting, ended;
    double ends_at; /* monotonic seconds; 0: never */
};

struct lh_monitor {
    struct lh_metrics *metrics;
    double interval, stream_seconds;
    pthread_mutex_t lock; /* rules, streams, history, stop */
    pthread_cond_t tick;
    int stopping;
    pthread_t sampler, db_prober, redis_prober;
    int sampler_started, db_prober_started, redis_prober_started;
    atomic_int db_healthy; /* -1: no database or not probed yet */

    struct rule_state rules[LH_MONITOR_MAX_RULES];
    size_t nrules;
    struct rule_state staged[LH_MONITOR_MAX_RULES]; /* lh_monitor_set_rules, until commit */
    size_t nstaged;
    int has_staged;

    struct lh_monitor_stream *streams;
    int streams_ended;
    char *history[HISTORY]; /* events, oldest first from history_at */
    size_t history_at, history_len;

    /* The sampler's own state. */
    struct lh_metrics_totals last;
    double last_t, last_rejections, last_bots;
    unsigned long long last_pool_waits;
    uint64_t last_l1[2], last_l2[2]; /* the cache's hits and misses at the last sample */
};


/* Waits up to seconds or until stopping; 1 when stopping. */
static int wait_or_stop(struct lh_monitor *mon, double seconds)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    double end = (double)until.tv_sec + (double)until.tv_nsec / 1e9 + seconds;
    until.tv_sec = (time_t)end;
    until.tv_nsec = (long)((end - (double)(time_t)end) * 1e9);
    pthread_mutex_lock(&mon->lock);
    while (!mon->stopping && pthread_cond_timedwait(&mon->tick, &mon->lock, &until) == 0)
        ;
    int stop = mon->stopping;
    pthread_mutex_unlock(&mon->lock);
    return stop;
}

/* -- Sampling ----------------------------------------------------------------- */

/* The q-quantile of a latency histogram, in ms, interpolated inside its
 * bucket up to the slowest request (seconds); NAN without requests. */
static double quantile_ms(const uint64_t *buckets, uint64_t count, double slowest, double q)
{
    if (count == 0)
        return NAN;
    double rank = q * (double)count, seen = 0;
    for (int i = 0; i <= LH_METRICS_LATENCY_BUCKETS; i++) {
        double lo = i == 0 ? 0 : lh_metrics_latency_bounds[i - 1];
        double hi = i < LH_METRICS_LATENCY_BUCKETS ? lh_metrics_latency_bounds[i] : lo * 2;
        if (slowest > lo && (slowest < hi || i == LH_METRICS_LATENCY_BUCKETS))
            hi = slowest;
        if (buckets[i] > 0 && seen + (double)buckets[i] >= rank)
            return 1000 * (lo + (hi - lo) * (rank - seen) / (double)buckets[i]);
        seen += (double)buckets[i];
    }
    return 1000 * lh_metrics_latency_bounds[LH_METRICS_LATENCY_BUCKETS - 1];
}

/* The share of hits among the lookups since the last sample (last: its
 * hits and misses, updated); NAN when there were none. A rate since the
 * start would barely move on a server that has been up for days. */
static double hit_rate_since(uint64_t hits, uint64_t misses, uint64_t last[2])
{
    uint64_t h = hits - last[0], m = misses - last[1];
    last[0] = hits;
    last[1] = misses;
    return h + m ? (double)h / (double)(h + m) : NAN;
}

static void take_sample(struct lh_monitor *mon, struct sample *s)
{
    struct lh_metrics *m = mon->metrics;
    const struct lh_metrics_sources *src = lh_metrics_sources(m);
    struct lh_metrics_totals now;
    uint64_t delta[LH_METRICS_LATENCY_BUCKETS + 1];

    memset(s, 0, sizeof(*s));
    for (int i = 0; i < M_COUNT; i++)
        s->v[i] = NAN;
    s->l2_hit_rate = NAN;
    s->t = lh_wall_seconds();
    double dt = mon->last_t > 0 ? s->t - mon->last_t : mon->interval;
    if (dt <= 0)
        dt = mon->interval;

    lh_metrics_totals(m, &now);
    uint64_t count = now.count - mon->last.count;
    for (int i = 0; i <= LH_METRICS_LATENCY_BUCKETS; i++)
        delta[i] = now.buckets[i] - mon->last.buckets[i];
    s->v[M_RPS] = (double)count / dt;
    double slowest = lh_metrics_take_slowest(m);
    s->v[M_P50] = quantile_ms(delta, count, slowest, 0.50);
    s->v[M_P95] = quantile_ms(delta, count, slowest, 0.95);
    s->v[M_P99] = quantile_ms(delta, count, slowest, 0.99);
    if (count > 0)
        s->v[M_ERROR_RATE] = (double)(now.by_class[5] - mon->last.by_class[5]) / (double)count;
    mon->last = now;
    s->v[M_INFLIGHT] = src->inflight ? src->inflight(src->inflight_arg) : 0;

    if (src->db) {
        struct lh_db_stats d;
        lh_db_stats(src->db, &d);
        s->pool = 1;
        s->pool_size = d.size;
        s->pool_idle = d.idle;
        s->v[M_POOL_ACTIVE] = d.active;
        s->v[M_POOL_WAITING] = d.waiting;
        s->pool_waits_per_s = mon->last_t > 0 ? (double)(d.waits - mon->last_pool_waits) / dt : 0;
        mon->last_pool_waits = d.waits;
        int healthy = atomic_load(&mon->db_healthy);
        if (healthy >= 0)
            s->v[M_DB_HEALTHY] = healthy;
    }
    if (src->redis)
        s->v[M_REDIS_UP] = lh_redis_up(src->redis); /* kept current by the prober */
    if (src->cache) {
        struct lh_cache_stats c;
        lh_cache_stats(src->cache, &c);
        s->v[M_CACHE_L1_HIT_RATE] = hit_rate_since(c.hits, c.misses, mon->last_l1);
        s->l2_hit_rate =
            hit_rate_since(c.counters[LH_CACHE_L2_HITS], c.counters[LH_CACHE_L2_MISSES], mon->last_l2);
    }
    double rejections = lh_metric_value(lh_metrics_core(m, LH_CORE_RATELIMIT_REJECTIONS));
    double bots = lh_metric_value(lh_metrics_core(m, LH_CORE_BOT_DETECTIONS));
    s->v[M_RATELIMIT] = mon->last_t > 0 ? (rejections - mon->last_rejections) / dt : 0;
    s->v[M_BOT] = mon->last_t > 0 ? (bots - mon->last_bots) / dt : 0;
    mon->last_rejections = rejections;
    mon->last_bots = bots;

    struct lh_process_stats p;
    lh_metrics_process(m, &p);
    s->v[M_RSS_MB] = p.rss_bytes / (1024.0 * 1024.0);
    mon->last_t = s->t;
}

/* -- Alerts (lock held) ------------------------------------------------------- */

static void evaluate(struct lh_monitor *mon, const struct sample *s)
{
    for (size_t i = 0; i < mon->nrules; i++) {
        struct rule_state *r = &mon->rules[i];
        double v = s->v[r->metric];
        int holds = !isnan(v) && (r->rule.above ? v > r->rule.threshold : v < r->rule.threshold);
        if (!isnan(v)) {
            r->value = v;
            r->measured_at = s->t;
        } else if (r->measured_at > 0 &&
                   s->t - r->measured_at <= fmax(NO_DATA_GRACE, r->rule.for_seconds)) {
            /* No evidence either way: at low traffic, a quiet second is not
             * a recovery, nor a second of the condition. */
            continue;
        }
        if (!holds) {
            r->pending_since = 0;
            if (r->firing_since > 0 && isnan(v))
                lh_log(LH_LOG_INFO, NULL, "alert %s resolved after %.0f s (%s not measured for %.0f s)",
                       r->rule.name, s->t - r->firing_since, r->rule.metric, s->t - r->measured_at);
            else if (r->firing_since > 0)
                lh_log(LH_LOG_INFO, NULL, "alert %s resolved after %.0f s (%s = %g)", r->rule.name,
                       s->t - r->firing_since, r->rule.metric, v);
            r->firing_since = 0;
            continue;
        }
        if (r->pending_since == 0)
            r->pending_since = s->t;
        if (r->firing_since == 0 && s->t - r->pending_since >= r->rule.for_seconds) {
            r->firing_since = s->t;
            lh_log(LH_LOG_WARN, NULL, "alert %s firing (%s): %s = %g, %s %g for %g s: %s",
                   r->rule.name, r->rule.severity, r->rule.metric, v,
                   r->rule.above ? "above" : "below", r->rule.threshold, r->rule.for_seconds,
                   r->rule.description);
        }
    }
}

static void alerts_json(struct lh_monitor *mon, struct lh_json_buf *b)
{
    int first = 1;
    lh_json_char(b, '[');
    for (size_t i = 0; i < mon->nrules; i++) {
        const struct rule_state *r = &mon->rules[i];
        if (r->firing_since == 0)
            continue;
        if (!first)
            lh_json_char(b, ',');
        first = 0;
        lh_json_raw(b, "{\"name\":", 8);
        lh_json_string(b, r->rule.name, strlen(r->rule.name));
        lh_json_raw(b, ",\"severity\":", 12);
        lh_json_string(b, r->rule.severity, strlen(r->rule.severity));
        lh_json_raw(b, ",\"metric\":", 10);
        lh_json_string(b, r->rule.metric, strlen(r->rule.metric));
        lh_json_raw(b, ",\"description\":", 15);
        lh_json_string(b, r->rule.description, strlen(r->rule.description));
        lh_json_raw(b, ",\"since\":", 9);
        lh_json_number(b, r->firing_since);
        lh_json_raw(b, ",\"value\":", 9);
        lh_json_number(b, r->value);
        lh_json_raw(b, ",\"threshold\":", 13);
        lh_json_number(b, r->rule.threshold);
        lh_json_char(b, '}');
    }
    lh_json_char(b, ']');
}

static int metric_index(const char *name)
{
    for (int i = 0; lh_monitor_metric_names[i]; i++) {
        if (strcmp(lh_monitor_metric_names[i], name) == 0)
            return i;
    }
    return -1;
}

enum lh_status lh_monitor_set_rules(struct lh_monitor *mon, const struct lh_alert_rule *rules,
                                    size_t n, char *err, size_t errlen)
{
    struct rule_state fresh[LH_MONITOR_MAX_RULES];

    if (n > LH_MONITOR_MAX_RULES) {
        snprintf(err, errlen, "more than %d alert rules", LH_MONITOR_MAX_RULES);
        return LH_ERR_INVALID;
    }
    for (size_t i = 0; i < n; i++) {
        memset(&fresh[i], 0, sizeof(fresh[i]));
        fresh[i].rule = rules[i];
        fresh[i].metric = metric_index(rules[i].metric);
        if (fresh[i].metric < 0) {
            snprintf(err, errlen, "alert %s: unknown metric %s", rules[i].name, rules[i].metric);
            return LH_ERR_INVALID;
        }
    }
    pthread_mutex_lock(&mon->lock);
    memcpy(mon->staged, fresh, n * sizeof(fresh[0]));
    mon->nstaged = n;
    mon->has_staged = 1;
    pthread_mutex_unlock(&mon->lock);
    return LH_OK;
}

void lh_monitor_commit_rules(struct lh_monitor *mon)
{
    if (mon == NULL)
        return;
    pthread_mutex_lock(&mon->lock);
    if (mon->has_staged) {
        struct rule_state *fresh = mon->staged;
        for (size_t i = 0; i < mon->nstaged; i++) {
            for (size_t j = 0; j < mon->nrules; j++) {
                if (strcmp(mon->rules[j].rule.name, fresh[i].rule.name) == 0) {
                    fresh[i].pending_since = mon->rules[j].pending_since;
                    fresh[i].firing_since = mon->rules[j].firing_since;
                    fresh[i].measured_at = mon->rules[j].measured_at;
                    fresh[i].value = mon->rules[j].value;
                }
            }
        }
        memcpy(mon->rules, fresh, mon->nstaged * sizeof(fresh[0]));
        mon->nrules = mon->nstaged;
        mon->has_staged = 0;
    }
    pthread_mutex_unlock(&mon->lock);
}

void lh_monitor_discard_rules(struct lh_monitor *mon)
{
    if (mon == NULL)
        return;
    pthread_mutex_lock(&mon->lock);
    mon->has_staged = 0;
    pthread_mutex_unlock(&mon->lock);
}

char *lh_monitor_alerts_json(struct lh_monitor *mon)
{
    struct lh_json_buf b;
    lh_json_buf_init(&b, 1024 * 1024);
    pthread_mutex_lock(&mon->lock);
    alerts_json(mon, &b);
    pthread_mutex_unlock(&mon->lock);
    lh_json_raw(&b, "", 1); /* the terminating NUL */
    if (b.failed) {
        lh_json_buf_free(&b);
        return NULL;
    }
    return b.data;
}

/* -- Events ------------------------------------------------------------------- */

static void number_field(struct lh_json_buf *b, const char *name, double v)
{
    char key[48];
    int n = snprintf(key, sizeof(key), "\"%s\":", name);
    lh_json_raw(b, key, (size_t)n);
    if (isnan(v) || lh_json_number(b, v) != LH_OK)
        lh_json_raw(b, "null", 4);
}

/* "event: sample\ndata: {...}\n\n" (lock held: reads the rules). */
static void sample_event(struct lh_monitor *mon, const struct sample *s, struct lh_json_buf *b)
{
    lh_json_raw(b, "event: sample\ndata: {", 21);
    number_field(b, "t", s->t);
    lh_json_char(b, ',');
    static const int TOP[] = {M_RPS,      M_P50,         M_P95,          M_P99,
                              M_ERROR_RATE, M_INFLIGHT, M_DB_HEALTHY, M_REDIS_UP, M_RSS_MB};
    for (size_t i = 0; i < sizeof(TOP) / sizeof(TOP[0]); i++) {
        number_field(b, lh_monitor_metric_names[TOP[i]], s->v[TOP[i]]);
        lh_json_char(b, ',');
    }
    number_field(b, "ratelimit_rejections_per_s", s->v[M_RATELIMIT]);
    lh_json_char(b, ',');
    number_field(b, "bot_detections_per_s", s->v[M_BOT]);
    lh_json_raw(b, ",\"pool\":", 8);
    if (s->pool) {
        lh_json_char(b, '{');
        number_field(b, "size", s->pool_size);
        lh_json_char(b, ',');
        number_field(b, "active", s->v[M_POOL_ACTIVE]);
        lh_json_char(b, ',');
        number_field(b, "idle", s->pool_idle);
        lh_json_char(b, ',');
        number_field(b, "waiting", s->v[M_POOL_WAITING]);
        lh_json_char(b, ',');
        number_field(b, "waits_per_s", s->pool_waits_per_s);
        lh_json_char(b, '}');
    } else {
        lh_json_raw(b, "null", 4);
    }
    lh_json_raw(b, ",\"cache\":{", 10);
    number_field(b, "l1_hit_rate", s->v[M_CACHE_L1_HIT_RATE]);
    lh_json_char(b, ',');
    number_field(b, "l2_hit_rate", s->l2_hit_rate);
    lh_json_raw(b, "},\"alerts\":", 11);
    alerts_json(mon, b);
    lh_json_raw(b, "}\n\n", 3);
}

static int append(struct lh_monitor_stream *s, const char *text, size_t len)
{
    if (s->len + len > STREAM_MAX_PENDING)
        return 0;
    if (s->len + len > s->cap) {
        size_t cap = s->cap ? s->cap : 4096;
        while (cap < s->len + len)
            cap *= 2;
        char *grown = realloc(s->pending, cap);
        if (grown == NULL)
            return 0;
        s->pending = grown;
        s->cap = cap;
    }
    memcpy(s->pending + s->len, text, len);
    s->len += len;
    return 1;
}

/* Wakes the parked streams collected under the lock, outside it. */
static void wake_all(struct lh_monitor_stream **woken, size_t n)
{
    for (size_t i = 0; i < n; i++)
        woken[i]->wake(woken[i]->wake_arg);
}

/* Collects the parked streams (lock held) into woken; returns how many. */
static size_t collect_parked(struct lh_monitor *mon, struct lh_monitor_stream ***woken)
{
    size_t n = 0;
    for (struct lh_monitor_stream *s = mon->streams; s; s = s->next)
        n += s->waiting;
    *woken = n ? malloc(n * sizeof(**woken)) : NULL;
    n = 0;
    for (struct lh_monitor_stream *s = mon->streams; s && *woken; s = s->next) {
        if (s->waiting) {
            s->waiting = 0;
            (*woken)[n++] = s;
        }
    }
    return n;
}

static void publish(struct lh_monitor *mon, const struct sample *s)
{
    struct lh_json_buf b;
    struct lh_monitor_stream **woken;

    lh_json_buf_init(&b, 64 * 1024);
    pthread_mutex_lock(&mon->lock);
    evaluate(mon, s);
    sample_event(mon, s, &b);
    if (!b.failed) {
        char *event = malloc(b.len + 1);
        if (event != NULL) {
            memcpy(event, b.data, b.len);
            event[b.len] = '\0';
            size_t slot = (mon->history_at + mon->history_len) % HISTORY;
            if (mon->history_len == HISTORY) {
                free(mon->history[mon->history_at]);
                mon->history_at = (mon->history_at + 1) % HISTORY;
            } else {
                mon->history_len++;
            }
            mon->history[slot] = event;
        }
        double now = lh_monotonic_seconds();
        for (struct lh_monitor_stream *st = mon->streams; st; st = st->next) {
            if (!append(st, b.data, b.len))
                st->ended = 1; /* too far behind: it ends, the client reconnects */
            if (st->ends_at > 0 && now >= st->ends_at)
                st->ended = 1; /* its time is up: the client reconnects, signing in again */
        }
    }
    size_t n = collect_parked(mon, &woken);
    pthread_mutex_unlock(&mon->lock);
    lh_json_buf_free(&b);
    wake_all(woken, n);
    free(woken);
}

static void *sampler_main(void *arg)
{
    struct lh_monitor *mon = arg;
    struct sample s;

    take_sample(mon, &s); /* the baseline for the first rates */
    while (!wait_or_stop(mon, mon->interval)) {
        take_sample(mon, &s);
        publish(mon, &s);
    }
    return NULL;
}

/* Runs probe once a second (four times a second while it says the service
 * is down, so that its return is noticed within a fraction of a second),
 * half a period after the samples, so that a sample never sees the probe's
 * own Redis connection busy. */
static void probe_loop(struct lh_monitor *mon, int (*probe)(struct lh_monitor *))
{
    if (wait_or_stop(mon, mon->interval / 2))
        return;
    int up;
    do
        up = probe(mon);
    while (!wait_or_stop(mon, up ? mon->interval : mon->interval / 4));
}

static int probe_db(struct lh_monitor *mon)
{
    char err[256];
    int healthy = lh_db_ping(lh_metrics_sources(mon->metrics)->db, err, sizeof(err)) == LH_OK;
    atomic_store(&mon->db_healthy, healthy);
    return healthy;
}

static int probe_redis(struct lh_monitor *mon)
{
    struct lh_redis *redis = lh_metrics_sources(mon->metrics)->redis;
    const char *ping[] = {"PING"};
    size_t ping_len[] = {4};
    struct redisReply *reply = NULL;
    char err[256];

    if (lh_redis_command(redis, 1, ping, ping_len, &reply, err, sizeof(err)) == LH_OK)
        freeReplyObject(reply); /* the pool marks Redis up or down itself */
    return lh_redis_up(redis);
}

/* Each service has a prober thread of its own: a database that does not
 * answer for seconds must not stop Redis being watched. */
static void *db_prober_main(void *arg)
{
    probe_loop(arg, probe_db);
    return NULL;
}

static void *redis_prober_main(void *arg)
{
    probe_loop(arg, probe_redis);
    return NULL;
}

struct lh_monitor *lh_monitor_new(struct lh_metrics *m, double interval, double stream_seconds)
{
    struct lh_monitor *mon = calloc(1, sizeof(*mon));
    if (mon == NULL)
        return NULL;
    mon->metrics = m;
    mon->interval = interval > 0 ? interval : 1;
    mon->stream_seconds = stream_seconds > 0 ? stream_seconds : 0;
    atomic_init(&mon->db_healthy, -1);
    pthread_mutex_init(&mon->lock, NULL);
    pthread_cond_init(&mon->tick, NULL);
    return mon;
}

enum lh_status lh_monitor_start(struct lh_monitor *mon, char *err, size_t errlen)
{
    const struct lh_metrics_sources *src = lh_metrics_sources(mon->metrics);
    mon->sampler_started = pthread_create(&mon->sampler, NULL, sampler_main, mon) == 0;
    if (mon->sampler_started && src->db != NULL)
        mon->db_prober_started = pthread_create(&mon->db_prober, NULL, db_prober_main, mon) == 0;
    if (mon->sampler_started && src->redis != NULL)
        mon->redis_prober_started =
            pthread_create(&mon->redis_prober, NULL, redis_prober_main, mon) == 0;
    if (!mon->sampler_started || (src->db != NULL && !mon->db_prober_started) ||
        (src->redis != NULL && !mon->redis_prober_started)) {
        snprintf(err, errlen, "cannot start the monitor's threads");
        return LH_ERR_IO;
    }
    return LH_OK;
}

void lh_monitor_stop(struct lh_monitor *mon)
{
    if (mon == NULL)
        return;
    pthread_mutex_lock(&mon->lock);
    mon->stopping = 1;
    pthread_cond_broadcast(&mon->tick);
    pthread_mutex_unlock(&mon->lock);
    if (mon->sampler_started)
        pthread_join(mon->sampler, NULL);
    if (mon->db_prober_started)
        pthread_join(mon->db_prober, NULL);
    if (mon->redis_prober_started)
        pthread_join(mon->redis_prober, NULL);
    mon->sampler_started = mon->db_prober_started = mon->redis_prober_started = 0;
}

void lh_monitor_free(struct lh_monitor *mon)
{
    if (mon == NULL)
        return;
    lh_monitor_stop(mon);
    lh_monitor_end_streams(mon);
    while (mon->streams) /* the transport has stopped: nobody reads them any more */
        lh_monitor_stream_close(mon->streams);
    for (size_t i = 0; i < mon->history_len; i++)
        free(mon->history[(mon->history_at + i) % HISTORY]);
    pthread_cond_destroy(&mon->tick);
    pthread_mutex_destroy(&mon->lock);
    free(mon);
}

/* -- Streams ----------------------------------------------------------------- */

struct lh_monitor_stream *lh_monitor_stream_open(struct lh_monitor *mon, void (*wake)(void *),
                                                 void *arg)
{
    struct lh_monitor_stream *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->mon = mon;
    s->wake = wake;
    s->wake_arg = arg;
    s->ends_at = mon->stream_seconds > 0 ? lh_monotonic_seconds() + mon->stream_seconds : 0;
    pthread_mutex_lock(&mon->lock);
    /* retry: how soon EventSource reconnects after the stream ends */
    int ok = append(s, "retry: 2000\n\n", 13);
    for (size_t i = 0; ok && i < mon->history_len; i++) {
        const char *e = mon->history[(mon->history_at + i) % HISTORY];
        ok = append(s, e, strlen(e));
    }
    s->ended = mon->streams_ended;
    if (ok) {
        s->next = mon->streams;
        mon->streams = s;
    }
    pthread_mutex_unlock(&mon->lock);
    if (!ok) {
        free(s->pending);
        free(s);
        return NULL;
    }
    return s;
}

ssize_t lh_monitor_stream_read(struct lh_monitor_stream *s, char *buf, size_t max,
                               void (*park)(void *))
{
    struct lh_monitor *mon = s->mon;
    ssize_t n;

    pthread_mutex_lock(&mon->lock);
    if (s->len > 0) {
        size_t take = s->len < max ? s->len : max;
        memcpy(buf, s->pending, take);
        memmove(s->pending, s->pending + take, s->len - take);
        s->len -= take;
        n = (ssize_t)take;
    } else if (s->ended) {
        n = -1;
    } else {
        s->waiting = 1;
        park(s->wake_arg);
        n = 0;
    }
    pthread_mutex_unlock(&mon->lock);
    return n;
}

void lh_monitor_stream_close(struct lh_monitor_stream *s)
{
    struct lh_monitor *mon = s->mon;

    pthread_mutex_lock(&mon->lock);
    struct lh_monitor_stream **p = &mon->streams;
    while (*p && *p != s)
        p = &(*p)->next;
    if (*p)
        *p = s->next;
    pthread_mutex_unlock(&mon->lock);
    free(s->pending);
    free(s);
}

void lh_monitor_end_streams(struct lh_monitor *mon)
{
    struct lh_monitor_stream **woken;

    pthread_mutex_lock(&mon->lock);
    mon->streams_ended = 1;
    for (struct lh_monitor_stream *s = mon->streams; s; s = s->next)
        s->ended = 1;
    size_t n = collect_parked(mon, &woken);
    pthread_mutex_unlock(&mon->lock);
    wake_all(woken, n);
    free(woken);
}
