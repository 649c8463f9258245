/* src/metrics.c: per-thread request series, named metrics and the
 * Prometheus exposition (see include/luahost/metrics.h). */
#include "luahost/metrics.h"

#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "luahost/cache.h"
#include "luahost/db.h"
#include "luahost/json.h"
#include "luahost/redis.h"
#include "luahost/task.h"

#define MAX_NAMED 256
#define DEFAULT_SLOW 0.5

const double lh_metrics_latency_bounds[LH_METRICS_LATENCY_BUCKETS] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

static const char *const METHODS[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS",
                                      "OTHER"};
#define NMETHODS (sizeof(METHODS) / sizeof(METHODS[0]))

/* One writer (its HTTP thread): updates are a relaxed load and store, which
 * compile to plain moves, and readers see whole values. */
struct series {
    _Atomic uint64_t by_class[6];
    _Atomic uint64_t buckets[LH_METRICS_LATENCY_BUCKETS + 1];
    _Atomic uint64_t count;
    _Atomic double sum;
};

struct route_series {
    struct series methods[NMETHODS];
};

struct thread_series {
    _Atomic(struct route_series *) routes[LH_METRICS_MAX_ROUTES];
    _Atomic double slowest; /* since lh_metrics_take_slowest; its thread raises it */
};

struct lh_metric {
    char *name, *help;
    enum lh_metric_kind kind;
    size_t nbuckets;
    double bounds[LH_METRIC_MAX_BUCKETS];
    _Atomic double value; /* counters, gauges; histograms: the sum */
    _Atomic uint64_t count;
    _Atomic uint64_t buckets[LH_METRIC_MAX_BUCKETS + 1];
};

struct lh_metrics {
    int enabled;
    unsigned nthreads;
    struct thread_series *threads;
    pthread_mutex_t lock; /* route and metric definitions */
    char *routes[LH_METRICS_MAX_ROUTES];
    _Atomic int nroutes;
    _Atomic double slow[LH_METRICS_MAX_ROUTES];
    struct lh_metric *named[MAX_NAMED];
    _Atomic size_t nnamed;
    struct lh_metric *core[LH_CORE_METRICS];
    struct lh_metrics_sources sources_set; /* written once, then published: */
    _Atomic(const struct lh_metrics_sources *) sources; /* NULL until set */
    double start_wall, start_mono;
};

static void bump(_Atomic uint64_t *x)
{
    atomic_store_explicit(x, atomic_load_explicit(x, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

static void add_double(_Atomic double *x, double v)
{
    double old = atomic_load_explicit(x, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(x, &old, old + v, memory_order_relaxed,
                                                  memory_order_relaxed))
        ;
}


static const struct {
    const char *name, *help;
} CORE[LH_CORE_METRICS] = {
    [LH_CORE_RATELIMIT_REJECTIONS] = {"luahost_ratelimit_rejections_total",
                                      "Requests refused with 429 by a rate limit or a bot hold."},
    [LH_CORE_BOT_DETECTIONS] = {"luahost_bot_detections_total",
                                "Bots detected: holds started, and requests is_bot refused."},
    [LH_CORE_LUA_ERRORS] = {"luahost_lua_errors_total",
                            "Requests whose Lua handler raised or answered badly (500)."},
    [LH_CORE_RELOADS] = {"luahost_reloads_total", "Successful reloads (SIGHUP)."},
    [LH_CORE_RELOAD_FAILURES] = {"luahost_reload_failures_total",
                                 "Reloads refused because a script or policy failed to load."},
    [LH_CORE_SLOW_REQUESTS] = {"luahost_slow_requests_total",
                               "Requests slower than their route's threshold."},
    [LH_CORE_RATELIMIT_LOCAL] = {"luahost_ratelimit_local_decisions_total",
                                 "Rate-limit checks decided in this process, not shared through "
                                 "Redis (none configured, or it did not answer in time)."},
};

/* lh_metrics_define with the core's prefixes allowed: for its own counters. */
static struct lh_metric *define(struct lh_metrics *m, const char *name, const char *help,
                                enum lh_metric_kind kind, const double *buckets, size_t nbuckets,
                                char *err, size_t errlen);

struct lh_metrics *lh_metrics_new(unsigned threads, int enabled)
{
    struct lh_metrics *m = calloc(1, sizeof(*m));
    char err[128];

    if (m == NULL)
        return NULL;
    m->enabled = enabled;
    m->nthreads = threads ? threads : 1;
    m->threads = calloc(m->nthreads, sizeof(*m->threads));
    pthread_mutex_init(&m->lock, NULL);
    m->start_wall = lh_wall_seconds();
    m->start_mono = lh_monotonic_seconds();
    for (int i = 0; i < LH_METRICS_MAX_ROUTES; i++)
        atomic_init(&m->slow[i], DEFAULT_SLOW);
    if (m->threads == NULL || lh_metrics_route_id(m, "unmatched") != LH_METRICS_ROUTE_NONE) {
        lh_metrics_free(m);
        return NULL;
    }
    for (int i = 0; i < LH_CORE_METRICS; i++) {
        m->core[i] =
            define(m, CORE[i].name, CORE[i].help, LH_METRIC_COUNTER, NULL, 0, err, sizeof(err));
        if (m->core[i] == NULL) {
            lh_metrics_free(m);
            return NULL;
        }
    }
    return m;
}

void lh_metrics_free(struct lh_metrics *m)
{
    if (m == NULL)
        return;
    for (unsigned t = 0; m->threads && t < m->nthreads; t++) {
        for (int r = 0; r < LH_METRICS_MAX_ROUTES; r++)
            free(atomic_load(&m->threads[t].routes[r]));
    }
    free(m->threads);
    for (int r = 0; r < atomic_load(&m->nroutes); r++)
        free(m->routes[r]);
    for (size_t i = 0; i < atomic_load(&m->nnamed); i++) {
        free(m->named[i]->name);
        free(m->named[i]->help);
        free(m->named[i]);
    }
    pthread_mutex_destroy(&m->lock);
    free(m);
}

int lh_metrics_enabled(const struct lh_metrics *m)
{
    return m != NULL && m->enabled;
}

/* -- Requests ---------------------------------------------------------------- */

int lh_metrics_route_id(struct lh_metrics *m, const char *route)
{
    int id = LH_METRICS_ROUTE_NONE;

    pthread_mutex_lock(&m->lock);
    int n = atomic_load(&m->nroutes);
    for (int i = 0; i < n; i++) {
        if (strcmp(m->routes[i], route) == 0) {
            pthread_mutex_unlock(&m->lock);
            return i;
        }
    }
    if (n < LH_METRICS_MAX_ROUTES && (m->routes[n] = strdup(route)) != NULL) {
        id = n;
        atomic_store(&m->nroutes, n + 1); /* readers see the name before the count */
    }
    pthread_mutex_unlock(&m->lock);
    return id;
}

const char *lh_metrics_route_name(const struct lh_metrics *m, int route)
{
    return route >= 0 && route < atomic_load(&m->nroutes) ? m->routes[route] : NULL;
}

void lh_metrics_set_slow(struct lh_metrics *m, int route, double seconds)
{
    if (route >= 0 && route < LH_METRICS_MAX_ROUTES)
        atomic_store_explicit(&m->slow[route], seconds, memory_order_relaxed);
}

double lh_metrics_slow(const struct lh_metrics *m, int route)
{
    if (route < 0 || route >= LH_METRICS_MAX_ROUTES)
        return DEFAULT_SLOW;
    return atomic_load_explicit(&((struct lh_metrics *)m)->slow[route], memory_order_relaxed);
}

static size_t method_index(const char *method)
{
    for (size_t i = 0; i + 1 < NMETHODS; i++) {
        if (strcmp(method, METHODS[i]) == 0)
            return i;
    }
    return NMETHODS - 1;
}

static size_t latency_bucket(double seconds)
{
    size_t i = 0;
    while (i < LH_METRICS_LATENCY_BUCKETS && seconds > lh_metrics_latency_bounds[i])
        i++;
    return i;
}

void lh_metrics_request(struct lh_metrics *m, unsigned thread, int route, const char *method,
                        unsigned status, double seconds)
{
    if (!m->enabled || thread >= m->nthreads)
        return;
    if (route < 0 || route >= LH_METRICS_MAX_ROUTES)
        route = LH_METRICS_ROUTE_NONE;
    _Atomic(struct route_series *) *slot = &m->threads[thread].routes[route];
    struct route_series *rs = atomic_load_explicit(slot, memory_order_acquire);
    if (rs == NULL) {
        rs = calloc(1, sizeof(*rs));
        if (rs == NULL)
            return;
        atomic_store_explicit(slot, rs, memory_order_release);
    }
    /* Before the histogram, so that a sampler seeing the request's bucket
     * sees it here too. A reset between the load and the store may be lost:
     * the request then bounds the next window too, which only widens it. */
    _Atomic double *slowest = &m->threads[thread].slowest;
    if (seconds > atomic_load_explicit(slowest, memory_order_relaxed))
        atomic_store_explicit(slowest, seconds, memory_order_release);
    struct series *s = &rs->methods[method_index(method)];
    bump(&s->by_class[status >= 100 && status < 600 ? status / 100 : 5]);
    bump(&s->buckets[latency_bucket(seconds)]);
    bump(&s->count);
    atomic_store_explicit(&s->sum, atomic_load_explicit(&s->sum, memory_order_relaxed) + seconds,
                          memory_order_relaxed);
}

static void add_series(const struct series *s, struct lh_metrics_totals *t)
{
    for (int c = 0; c < 6; c++)
        t->by_class[c] += atomic_load_explicit(&s->by_class[c], memory_order_relaxed);
    for (int b = 0; b <= LH_METRICS_LATENCY_BUCKETS; b++)
        t->buckets[b] += atomic_load_explicit(&s->buckets[b], memory_order_relaxed);
    t->count += atomic_load_explicit(&s->count, memory_order_relaxed);
    t->sum += atomic_load_explicit(&s->sum, memory_order_relaxed);
}

/* Sums the series of one route and method over every thread; 0 if none. */
static int route_totals(struct lh_metrics *m, int route, size_t method,
                        struct lh_metrics_totals *t)
{
    int found = 0;
    memset(t, 0, sizeof(*t));
    for (unsigned th = 0; th < m->nthreads; th++) {
        struct route_series *rs =
            atomic_load_explicit(&m->threads[th].routes[route], memory_order_acquire);
        if (rs != NULL && atomic_load_explicit(&rs->methods[method].count, memory_order_relaxed)) {
            add_series(&rs->methods[method], t);
            found = 1;
        }
    }
    return found;
}

void lh_metrics_totals(struct lh_metrics *m, struct lh_metrics_totals *t)
{
    memset(t, 0, sizeof(*t));
    for (unsigned th = 0; th < m->nthreads; th++) {
        for (int r = 0; r < LH_METRICS_MAX_ROUTES; r++) {
            struct route_series *rs =
                atomic_load_explicit(&m->threads[th].routes[r], memory_order_acquire);
            for (size_t k = 0; rs && k < NMETHODS; k++)
                add_series(&rs->methods[k], t);
        }
    }
}

double lh_metrics_take_slowest(struct lh_metrics *m)
{
    double slowest = 0;
    for (unsigned th = 0; th < m->nthreads; th++) {
        double s = atomic_exchange_explicit(&m->threads[th].slowest, 0.0, memory_order_relaxed);
        if (s > slowest)
            slowest = s;
    }
    return slowest;
}

/* -- Named metrics ----------------------------------------------------------- */

static int valid_name(const char *name)
{
    if (name[0] == '\0' || (name[0] >= '0' && name[0] <= '9'))
        return 0;
    for (const char *p = name; *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == ':'))
            return 0;
    }
    return 1;
}

static int has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* The series a metric exposes: its name with SUFFIXES[0], and a histogram's
 * with the others too. */
static const char *const SUFFIXES[] = {"", "_bucket", "_sum", "_count"};
/* Prefixes of the core's series (its counters, the HTTP, pool, cache and
 * process metrics): an app metric using one would repeat a family. */
static const char *const CORE_PREFIXES[] = {"luahost_", "process_"};

static size_t nseries(enum lh_metric_kind kind)
{
    return kind == LH_METRIC_HISTOGRAM ? sizeof(SUFFIXES) / sizeof(SUFFIXES[0]) : 1;
}

/* Whether a followed by sa begins with b followed by sb (whole: and is no
 * longer), without joining them. */
static int joined_match(const char *a, const char *sa, const char *b, const char *sb, int whole)
{
    size_t la = strlen(a), lb = strlen(b), na = la + strlen(sa), nb = lb + strlen(sb);
    if (whole ? na != nb : na < nb)
        return 0;
    for (size_t i = 0; i < nb; i++) {
        if ((i < la ? a[i] : sa[i - la]) != (i < lb ? b[i] : sb[i - lb]))
            return 0;
    }
    return 1;
}

struct lh_metric *lh_metrics_define(struct lh_metrics *m, const char *name, const char *help,
                                    enum lh_metric_kind kind, const double *buckets,
                                    size_t nbuckets, char *err, size_t errlen)
{
    for (size_t s = 0; s < nseries(kind); s++) {
        for (size_t p = 0; p < sizeof(CORE_PREFIXES) / sizeof(CORE_PREFIXES[0]); p++) {
            if (joined_match(name, SUFFIXES[s], CORE_PREFIXES[p], "", 0)) {
                snprintf(err, errlen,
                         "metric %s: series %s%s: names beginning luahost_ or process_ are the "
                         "core's",
                         name, name, SUFFIXES[s]);
                return NULL;
            }
        }
    }
    return define(m, name, help, kind, buckets, nbuckets, err, errlen);
}

static struct lh_metric *define(struct lh_metrics *m, const char *name, const char *help,
                                enum lh_metric_kind kind, const double *buckets, size_t nbuckets,
                                char *err, size_t errlen)
{
    if (!valid_name(name)) {
        snprintf(err, errlen, "metric name %s: want [a-zA-Z_:][a-zA-Z0-9_:]*", name);
        return NULL;
    }
    if ((kind == LH_METRIC_COUNTER) != has_suffix(name, "_total")) {
        snprintf(err, errlen, "metric %s: counter names, and only they, end in _total", name);
        return NULL;
    }
    if (buckets == NULL) {
        buckets = lh_metrics_latency_bounds;
        nbuckets = LH_METRICS_LATENCY_BUCKETS;
    }
    if (kind == LH_METRIC_HISTOGRAM) {
        int increasing = nbuckets > 0 && nbuckets <= LH_METRIC_MAX_BUCKETS;
        for (size_t i = 1; increasing && i < nbuckets; i++)
            increasing = buckets[i] > buckets[i - 1];
        if (!increasing) {
            snprintf(err, errlen, "histogram %s: 1 to %d strictly increasing buckets", name,
                     LH_METRIC_MAX_BUCKETS);
            return NULL;
        }
    }
    pthread_mutex_lock(&m->lock);
    size_t n = atomic_load(&m->nnamed);
    for (size_t i = 0; i < n; i++) {
        struct lh_metric *x = m->named[i];
        if (strcmp(x->name, name) == 0) {
            pthread_mutex_unlock(&m->lock);
            if (x->kind == kind)
                return x;
            snprintf(err, errlen, "metric %s is already defined as another kind", name);
            return NULL;
        }
        /* A histogram x exposes x_bucket, x_sum and x_count: a metric of one
         * of those names, defined before x or after, would repeat a series. */
        for (size_t a = 0; a < nseries(kind); a++) {
            for (size_t b = 0; b < nseries(x->kind); b++) {
                if (joined_match(name, SUFFIXES[a], x->name, SUFFIXES[b], 1)) {
                    pthread_mutex_unlock(&m->lock);
                    snprintf(err, errlen, "metric %s: series %s%s is also metric %s's", name, name,
                             SUFFIXES[a], x->name);
                    return NULL;
                }
            }
        }
    }
    struct lh_metric *x = n < MAX_NAMED ? calloc(1, sizeof(*x)) : NULL;
    if (x != NULL) {
        x->name = strdup(name);
        x->help = strdup(help && help[0] ? help : name);
        x->kind = kind;
        if (kind == LH_METRIC_HISTOGRAM) {
            x->nbuckets = nbuckets;
            memcpy(x->bounds, buckets, nbuckets * sizeof(double));
        }
        if (x->name == NULL || x->help == NULL) {
            free(x->name);
            free(x->help);
            free(x);
            x = NULL;
        }
    }
    if (x != NULL) {
        m->named[n] = x;
        atomic_store(&m->nnamed, n + 1);
    }
    pthread_mutex_unlock(&m->lock);
    if (x == NULL)
        snprintf(err, errlen, n < MAX_NAMED ? "out of memory" : "more than %d metrics", MAX_NAMED);
    return x;
}

void lh_metric_add(struct lh_metric *x, double v)
{
    if (x->kind != LH_METRIC_HISTOGRAM && (x->kind == LH_METRIC_GAUGE || v >= 0))
        add_double(&x->value, v);
}

void lh_metric_set(struct lh_metric *x, double v)
{
    if (x->kind == LH_METRIC_GAUGE)
        atomic_store_explicit(&x->value, v, memory_order_relaxed);
}

void lh_metric_observe(struct lh_metric *x, double v)
{
    if (x->kind != LH_METRIC_HISTOGRAM || isnan(v))
        return;
    size_t i = 0;
    while (i < x->nbuckets && v > x->bounds[i])
        i++;
    atomic_fetch_add_explicit(&x->buckets[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&x->count, 1, memory_order_relaxed);
    add_double(&x->value, v);
}

double lh_metric_value(const struct lh_metric *x)
{
    return atomic_load_explicit(&((struct lh_metric *)x)->value, memory_order_relaxed);
}

struct lh_metric *lh_metrics_core(struct lh_metrics *m, enum lh_core_metric which)
{
    return m->core[which];
}

struct lh_metric *lh_metrics_core_by_name(struct lh_metrics *m, const char *name)
{
    for (int i = 0; i < LH_CORE_METRICS; i++) {
        if (strcmp(CORE[i].name + strlen("luahost_"), name) == 0)
            return m->core[i];
    }
    return NULL;
}

/* -- Sources and the process -------------------------------------------------- */

void lh_metrics_set_sources(struct lh_metrics *m, const struct lh_metrics_sources *s)
{
    m->sources_set = *s;
    atomic_store_explicit(&m->sources, &m->sources_set, memory_order_release);
}

const struct lh_metrics_sources *lh_metrics_sources(const struct lh_metrics *m)
{
    static const struct lh_metrics_sources none;
    const struct lh_metrics_sources *s =
        atomic_load_explicit(&((struct lh_metrics *)m)->sources, memory_order_acquire);
    return s ? s : &none;
}

void lh_metrics_process(const struct lh_metrics *m, struct lh_process_stats *p)
{
    struct rusage ru;
    long pages = 0, resident = 0;

    memset(p, 0, sizeof(*p));
    FILE *f = fopen("/proc/self/statm", "r");
    if (f != NULL) {
        if (fscanf(f, "%ld %ld", &pages, &resident) == 2)
            p->rss_bytes = (double)resident * (double)sysconf(_SC_PAGESIZE);
        fclose(f);
    }
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        p->cpu_seconds = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                         (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    DIR *d = opendir("/proc/self/fd");
    if (d != NULL) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL)
            p->open_fds += e->d_name[0] != '.';
        p->open_fds -= 1; /* the descriptor of the listing itself */
        closedir(d);
    }
    p->start_time = m->start_wall;
    p->uptime = lh_monotonic_seconds() - m->start_mono;
}

/* -- Exposition -------------------------------------------------------------- */

static void text(struct lh_json_buf *b, const char *s)
{
    lh_json_raw(b, s, strlen(s));
}

static void printf_buf(struct lh_json_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void printf_buf(struct lh_json_buf *b, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n > 0)
        lh_json_raw(b, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

static void header(struct lh_json_buf *b, const char *name, const char *type, const char *help)
{
    printf_buf(b, "# HELP %s ", name);
    for (const char *p = help; *p; p++) { /* help text escapes \ and newlines */
        if (*p == '\\')
            text(b, "\\\\");
        else if (*p == '\n')
            text(b, "\\n");
        else
            lh_json_raw(b, p, 1);
    }
    printf_buf(b, "\n# TYPE %s %s\n", name, type);
}

/* A label value, escaped as the format wants. */
static void label_value(struct lh_json_buf *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            lh_json_raw(b, "\\", 1);
        if (*s == '\n')
            text(b, "\\n");
        else
            lh_json_raw(b, s, 1);
    }
}

/* route="/path",method="GET" of a route id's key "GET /path". */
static void route_labels(struct lh_json_buf *b, struct lh_metrics *m, int route, size_t method)
{
    const char *key = m->routes[route];
    const char *space = strchr(key, ' ');
    text(b, "route=\"");
    label_value(b, space ? space + 1 : key);
    printf_buf(b, "\",method=\"%s\"", METHODS[method]);
}

static void render_requests(struct lh_metrics *m, struct lh_json_buf *b)
{
    static const char *const CLASSES[] = {"", "1xx", "2xx", "3xx", "4xx", "5xx"};
    int nroutes = atomic_load(&m->nroutes);
    struct lh_metrics_totals t;

    header(b, "luahost_http_requests_total", "counter",
           "HTTP requests answered, by route pattern, method and status class.");
    for (int r = 0; r < nroutes; r++) {
        for (size_t k = 0; k < NMETHODS; k++) {
            if (!route_totals(m, r, k, &t))
                continue;
            for (int c = 1; c < 6; c++) {
                if (t.by_class[c] == 0)
                    continue;
                text(b, "luahost_http_requests_total{");
                route_labels(b, m, r, k);
                printf_buf(b, ",status=\"%s\"} %llu\n", CLASSES[c],
                           (unsigned long long)t.by_class[c]);
            }
        }
    }
    header(b, "luahost_http_request_duration_seconds", "histogram",
           "Time from the end of the request headers to the end of the answer.");
    for (int r = 0; r < nroutes; r++) {
        for (size_t k = 0; k < NMETHODS; k++) {
            if (!route_totals(m, r, k, &t))
                continue;
            uint64_t cumulative = 0;
            for (int i = 0; i <= LH_METRICS_LATENCY_BUCKETS; i++) {
                cumulative += t.buckets[i];
                text(b, "luahost_http_request_duration_seconds_bucket{");
                route_labels(b, m, r, k);
                if (i < LH_METRICS_LATENCY_BUCKETS)
                    printf_buf(b, ",le=\"%g\"} %llu\n", lh_metrics_latency_bounds[i],
                               (unsigned long long)cumulative);
                else
                    printf_buf(b, ",le=\"+Inf\"} %llu\n", (unsigned long long)cumulative);
            }
            text(b, "luahost_http_request_duration_seconds_sum{");
            route_labels(b, m, r, k);
            printf_buf(b, "} %.9g\n", t.sum);
            text(b, "luahost_http_request_duration_seconds_count{");
            route_labels(b, m, r, k);
            printf_buf(b, "} %llu\n", (unsigned long long)t.count);
        }
    }
}

/* A sample value as the text format spells it: NaN, +Inf and -Inf by name
 * (printf's "nan" or "-nan" would fail the whole scrape). */
static const char *sample_value(double v, char buf[32])
{
    if (isnan(v))
        return "NaN";
    if (isinf(v))
        return v > 0 ? "+Inf" : "-Inf";
    snprintf(buf, 32, "%.17g", v);
    return buf;
}

static void render_named(struct lh_metrics *m, struct lh_json_buf *b)
{
    char text[32];
    size_t n = atomic_load(&m->nnamed);
    for (size_t i = 0; i < n; i++) {
        struct lh_metric *x = m->named[i];
        double v = atomic_load_explicit(&x->value, memory_order_relaxed);
        if (x->kind != LH_METRIC_HISTOGRAM) {
            header(b, x->name, x->kind == LH_METRIC_COUNTER ? "counter" : "gauge", x->help);
            printf_buf(b, "%s %s\n", x->name, sample_value(v, text));
            continue;
        }
        header(b, x->name, "histogram", x->help);
        uint64_t cumulative = 0;
        for (size_t k = 0; k <= x->nbuckets; k++) {
            cumulative += atomic_load_explicit(&x->buckets[k], memory_order_relaxed);
            if (k < x->nbuckets)
                printf_buf(b, "%s_bucket{le=\"%g\"} %llu\n", x->name, x->bounds[k],
                           (unsigned long long)cumulative);
            else
                printf_buf(b, "%s_bucket{le=\"+Inf\"} %llu\n", x->name,
                           (unsigned long long)cumulative);
        }
        printf_buf(b, "%s_sum %s\n%s_count %llu\n", x->name, sample_value(v, text), x->name,
                   (unsigned long long)atomic_load(&x->count));
    }
}

static void gauge(struct lh_json_buf *b, const char *name, const char *help, double v)
{
    char text[32];
    header(b, name, "gauge", help);
    printf_buf(b, "%s %s\n", name, sample_value(v, text));
}

static void counter(struct lh_json_buf *b, const char *name, const char *help, double v)
{
    char text[32];
    header(b, name, "counter", help);
    printf_buf(b, "%s %s\n", name, sample_value(v, text));
}

static const char *const pool_names[2] = {"blocking", "cpu"};

/* One figure of the task pools that exist, labelled by pool. */
static void pool_gauge(struct lh_json_buf *b, const char *name, const char *help,
                       struct lh_task_pool *const pools[2], const unsigned value[2])
{
    header(b, name, "gauge", help);
    for (int i = 0; i < 2; i++)
        if (pools[i])
            printf_buf(b, "%s{pool=\"%s\"} %u\n", name, pool_names[i], value[i]);
}

static void render_pools(const struct lh_metrics_sources *s, struct lh_json_buf *b)
{
    struct lh_task_pool *const pools[2] = {s->blocking_tasks, s->cpu_tasks};
    unsigned threads[2] = {0, 0}, busy[2] = {0, 0}, queued[2] = {0, 0}, timers[2] = {0, 0};

    if (pools[0] == NULL && pools[1] == NULL)
        return;
    for (int i = 0; i < 2; i++) {
        struct lh_task_pool_stats st;
        if (pools[i] == NULL)
            continue;
        lh_task_pool_stats(pools[i], &st);
        threads[i] = st.threads;
        busy[i] = st.busy;
        queued[i] = st.queued;
        timers[i] = st.timers;
    }
    pool_gauge(b, "luahost_task_pool_threads", "Threads of each task pool.", pools, threads);
    pool_gauge(b, "luahost_task_pool_busy", "Threads running a task now.", pools, busy);
    pool_gauge(b, "luahost_task_pool_queued", "Tasks waiting for a thread now.", pools, queued);
    pool_gauge(b, "luahost_task_pool_timers", "Waits (worker.sleep) pending now, holding no thread.",
               pools, timers);
}

static void render_sources(struct lh_metrics *m, struct lh_json_buf *b)
{
    const struct lh_metrics_sources *s = lh_metrics_sources(m);

    if (s->inflight)
        gauge(b, "luahost_http_requests_in_flight",
              "Requests being handled now (open event streams left out).",
              s->inflight(s->inflight_arg));
    render_pools(s, b);
    if (s->db) {
        struct lh_db_stats d;
        lh_db_stats(s->db, &d);
        gauge(b, "luahost_db_pool_size", "Connections the database pool may hold.", d.size);
        header(b, "luahost_db_pool_connections", "gauge",
               "Database connections by state: active (lent out), idle (open, free), open.");
        printf_buf(b, "luahost_db_pool_connections{state=\"active\"} %u\n", d.active);
        printf_buf(b, "luahost_db_pool_connections{state=\"idle\"} %u\n", d.idle);
        printf_buf(b, "luahost_db_pool_connections{state=\"open\"} %u\n", d.open);
        gauge(b, "luahost_db_pool_waiting", "Callers waiting for a free connection now.",
              d.waiting);
        counter(b, "luahost_db_pool_waits_total", "Acquisitions that had to wait.",
                (double)d.waits);
        counter(b, "luahost_db_pool_timeouts_total", "Acquisitions that timed out.",
                (double)d.timeouts);
        counter(b, "luahost_db_errors_total", "Database statements or connections that failed.",
                (double)d.errors);
        counter(b, "luahost_db_slow_queries_total", "Statements slower than db_slow_query.",
                (double)d.slow);
    }
    if (s->cache) {
        struct lh_cache_stats c;
        lh_cache_stats(s->cache, &c);
        header(b, "luahost_cache_hits_total", "counter", "Cache hits by level.");
        printf_buf(b, "luahost_cache_hits_total{level=\"l1\"} %llu\n",
                   (unsigned long long)c.hits);
        printf_buf(b, "luahost_cache_hits_total{level=\"l2\"} %llu\n",
                   (unsigned long long)c.counters[LH_CACHE_L2_HITS]);
        header(b, "luahost_cache_misses_total", "counter", "Cache misses by level.");
        printf_buf(b, "luahost_cache_misses_total{level=\"l1\"} %llu\n",
                   (unsigned long long)c.misses);
        printf_buf(b, "luahost_cache_misses_total{level=\"l2\"} %llu\n",
                   (unsigned long long)c.counters[LH_CACHE_L2_MISSES]);
        gauge(b, "luahost_cache_l1_entries", "Entries in the L1 cache.", (double)c.entries);
        gauge(b, "luahost_cache_l1_bytes", "Bytes of keys and values in the L1 cache.",
              (double)c.bytes);
        counter(b, "luahost_cache_l1_evictions_total", "L1 entries evicted to stay in bounds.",
                (double)c.evictions);
        counter(b, "luahost_cache_computations_total", "Values computed on a miss.",
                (double)c.counters[LH_CACHE_COMPUTATIONS]);
        counter(b, "luahost_cache_lock_waits_total",
                "Computations that waited for another instance's lock.",
                (double)c.counters[LH_CACHE_LOCK_WAITS]);
        counter(b, "luahost_cache_redis_errors_total", "Redis errors met by the cache.",
                (double)c.counters[LH_CACHE_L2_ERRORS]);
    }
    if (s->redis) {
        /* Probed by the monitor, which runs with metrics on: off, the gauge
         * would say 1 of a Redis that was never asked. */
        if (m->enabled)
            gauge(b, "luahost_redis_up", "1 while Redis answers (checked every second).",
                  lh_redis_up(s->redis));
        counter(b, "luahost_redis_errors_total", "Redis commands that failed or timed out.",
                (double)lh_redis_errors(s->redis));
    }

    struct lh_process_stats p;
    lh_metrics_process(m, &p);
    gauge(b, "process_resident_memory_bytes", "Resident memory size in bytes.", p.rss_bytes);
    counter(b, "process_cpu_seconds_total", "User and system CPU time spent in seconds.",
            p.cpu_seconds);
    gauge(b, "process_open_fds", "Number of open file descriptors.", p.open_fds);
    gauge(b, "process_start_time_seconds", "Start time of the process since the Unix epoch.",
          p.start_time);
    gauge(b, "luahost_uptime_seconds", "Seconds since luahost started.", p.uptime);
}

enum lh_status lh_metrics_render(struct lh_metrics *m, struct lh_json_buf *out)
{
    render_requests(m, out);
    render_named(m, out);
    render_sources(m, out);
    return out->failed ? LH_ERR_NOMEM : LH_OK;
}
