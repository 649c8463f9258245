/* tests/test_metrics.c: cmocka tests for include/luahost/metrics.h: counts
 * from several threads at once, the exposition, named metrics. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "luahost/json.h"
#include "luahost/metrics.h"
#include "luahost/task.h"

#define THREADS 4
#define REQUESTS 20000

struct worker {
    struct lh_metrics *m;
    unsigned thread;
    int route;
};

static void *serve(void *arg)
{
    struct worker *w = arg;
    for (int i = 0; i < REQUESTS; i++)
        lh_metrics_request(w->m, w->thread, w->route, i % 4 ? "GET" : "POST",
                           i % 10 ? 200 : 503, i % 2 ? 0.0004 : 0.3);
    return NULL;
}

/* The exposition as text (freed by the caller). */
static char *render(struct lh_metrics *m)
{
    struct lh_json_buf b;
    lh_json_buf_init(&b, 1 << 24);
    assert_int_equal(lh_metrics_render(m, &b), LH_OK);
    lh_json_raw(&b, "", 1);
    return b.data;
}

static void assert_line(const char *text, const char *line)
{
    char needle[512];
    snprintf(needle, sizeof(needle), "\n%s\n", line);
    if (strstr(text, needle) == NULL)
        fail_msg("missing line: %s", line);
}

static void test_counts_from_every_thread(void **state)
{
    (void)state;
    struct lh_metrics *m = lh_metrics_new(THREADS, 1);
    pthread_t t[THREADS];
    struct worker w[THREADS];
    int route = lh_metrics_route_id(m, "GET /api/svg/list");

    assert_int_equal(lh_metrics_route_id(m, "GET /api/svg/list"), route);
    assert_int_not_equal(route, LH_METRICS_ROUTE_NONE);
    for (unsigned i = 0; i < THREADS; i++) {
        w[i] = (struct worker){m, i, route};
        assert_int_equal(pthread_create(&t[i], NULL, serve, &w[i]), 0);
    }
    for (unsigned i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);

    struct lh_metrics_totals totals;
    lh_metrics_totals(m, &totals);
    assert_int_equal(totals.count, THREADS * REQUESTS);
    assert_int_equal(totals.by_class[5], THREADS * REQUESTS / 10);
    assert_int_equal(totals.buckets[0], THREADS * REQUESTS / 2); /* 0.4 ms <= 0.5 ms */

    char *text = render(m);
    /* GET: 3 in 4 requests; of them, 503 when i % 10 == 0 (i = 0 mod 4 is POST). */
    char line[256];
    snprintf(line, sizeof(line),
             "luahost_http_requests_total{route=\"/api/svg/list\",method=\"POST\",status=\"5xx\"} %d",
             THREADS * REQUESTS / 20);
    assert_line(text, line);
    snprintf(line, sizeof(line),
             "luahost_http_request_duration_seconds_count{route=\"/api/svg/list\",method=\"GET\"} %d",
             THREADS * REQUESTS * 3 / 4);
    assert_line(text, line);
    assert_non_null(strstr(text, "# TYPE luahost_http_request_duration_seconds histogram\n"));
    assert_non_null(strstr(text, "le=\"+Inf\"} "));
    free(text);
    lh_metrics_free(m);
}

static void test_disabled_counts_nothing(void **state)
{
    (void)state;
    struct lh_metrics *m = lh_metrics_new(1, 0);
    lh_metrics_request(m, 0, 0, "GET", 200, 0.001);
    struct lh_metrics_totals totals;
    lh_metrics_totals(m, &totals);
    assert_int_equal(totals.count, 0);
    lh_metrics_free(m);
}

static void test_slowest_since_last_taken(void **state)
{
    (void)state;
    struct lh_metrics *m = lh_metrics_new(2, 1);
    assert_true(lh_metrics_take_slowest(m) == 0);
    lh_metrics_request(m, 0, 0, "GET", 200, 0.110);
    lh_metrics_request(m, 1, 0, "GET", 200, 0.120);
    lh_metrics_request(m, 1, 0, "GET", 200, 0.002);
    assert_true(lh_metrics_take_slowest(m) == 0.120);
    assert_true(lh_metrics_take_slowest(m) == 0); /* taken: a new window */
    lh_metrics_request(m, 0, 0, "GET", 200, 0.003);
    assert_true(lh_metrics_take_slowest(m) == 0.003);
    lh_metrics_free(m);
}

static void ignore_done(struct lh_task *t)
{
    (void)t;
}

static void test_task_pools_as_gauges(void **state)
{
    (void)state;
    const char *err = NULL;
    struct lh_metrics *m = lh_metrics_new(1, 1);
    struct lh_task_pool *blocking = lh_task_pool_new(3, 0, &err);
    struct lh_task_pool *cpu = lh_task_pool_new(2, 0, &err);
    assert_non_null(blocking);
    assert_non_null(cpu);

    char *text = render(m); /* no sources yet: no pool figures */
    assert_null(strstr(text, "luahost_task_pool"));
    free(text);

    struct lh_metrics_sources src = {.blocking_tasks = blocking, .cpu_tasks = cpu};
    lh_metrics_set_sources(m, &src);
    text = render(m);
    assert_line(text, "luahost_task_pool_threads{pool=\"blocking\"} 3");
    assert_line(text, "luahost_task_pool_threads{pool=\"cpu\"} 2");
    assert_line(text, "luahost_task_pool_busy{pool=\"cpu\"} 0");
    assert_line(text, "luahost_task_pool_queued{pool=\"blocking\"} 0");
    assert_line(text, "# TYPE luahost_task_pool_queued gauge");
    assert_line(text, "luahost_task_pool_timers{pool=\"blocking\"} 0");
    free(text);
    struct lh_task sleeping = {.done = ignore_done};
    lh_task_after(blocking, &sleeping, 60.0);
    text = render(m);
    assert_line(text, "luahost_task_pool_timers{pool=\"blocking\"} 1");
    free(text);
    lh_task_pool_free(blocking); /* cancels the wait */
    lh_task_pool_free(cpu);
    lh_metrics_free(m);
}

static void test_named_metrics(void **state)
{
    (void)state;
    struct lh_metrics *m = lh_metrics_new(1, 1);
    char err[256];
    double buckets[] = {1, 10};

    struct lh_metric *c = lh_metrics_define(m, "app_uploads_total", "Uploads.", LH_METRIC_COUNTER,
                                            NULL, 0, err, sizeof(err));
    assert_non_null(c);
    assert_ptr_equal(lh_metrics_define(m, "app_uploads_total", "", LH_METRIC_COUNTER, NULL, 0, err,
                                       sizeof(err)),
                     c);
    assert_null(lh_metrics_define(m, "app_uploads_total", "", LH_METRIC_GAUGE, NULL, 0, err,
                                  sizeof(err)));
    assert_null(lh_metrics_define(m, "app_uploads", "", LH_METRIC_COUNTER, NULL, 0, err,
                                  sizeof(err))); /* counters end in _total */
    assert_null(lh_metrics_define(m, "9bad", "", LH_METRIC_GAUGE, NULL, 0, err, sizeof(err)));
    double unordered[] = {2, 1};
    assert_null(lh_metrics_define(m, "h_seconds", "", LH_METRIC_HISTOGRAM, unordered, 2, err,
                                  sizeof(err)));

    struct lh_metric *h = lh_metrics_define(m, "app_size_bytes", "Sizes.", LH_METRIC_HISTOGRAM,
                                            buckets, 2, err, sizeof(err));
    struct lh_metric *g = lh_metrics_define(m, "app_depth", "Depth.", LH_METRIC_GAUGE, NULL, 0,
                                            err, sizeof(err));
    lh_metric_add(c, 2);
    lh_metric_add(c, -5); /* counters never go down */
    lh_metric_observe(h, 0.5);
    lh_metric_observe(h, 5);
    lh_metric_observe(h, 50);
    lh_metric_set(g, 7);
    lh_metric_add(g, -2);
    lh_metric_add(lh_metrics_core_by_name(m, "lua_errors_total"), 1);

    char *text = render(m);
    assert_line(text, "app_uploads_total 2");
    assert_line(text, "app_size_bytes_bucket{le=\"1\"} 1");
    assert_line(text, "app_size_bytes_bucket{le=\"10\"} 2");
    assert_line(text, "app_size_bytes_bucket{le=\"+Inf\"} 3");
    assert_line(text, "app_size_bytes_sum 55.5");
    assert_line(text, "app_size_bytes_count 3");
    assert_line(text, "app_depth 5");
    assert_line(text, "luahost_lua_errors_total 1");
    assert_line(text, "# HELP app_uploads_total Uploads.");
    free(text);
    lh_metrics_free(m);
}

/* A gauge set to NaN or an infinity is written as the text format spells
 * them: printf's "-nan" would make Prometheus refuse the whole page. */
static void test_non_finite_values_in_text_format(void **state)
{
    (void)state;
    struct lh_metrics *m = lh_metrics_new(1, 1);
    char err[256];
    const char *names[] = {"app_nan", "app_up", "app_down"};
    double values[] = {NAN, INFINITY, -INFINITY};
    const char *lines[] = {"app_nan NaN", "app_up +Inf", "app_down -Inf"};

    for (int i = 0; i < 3; i++) {
        struct lh_metric *g = lh_metrics_define(m, names[i], "", LH_METRIC_GAUGE, NULL, 0, err,
                                                sizeof(err));
        assert_non_null(g);
        lh_metric_set(g, values[i]);
    }
    char *text = render(m);
    for (int i = 0; i < 3; i++)
        assert_line(text, lines[i]);
    free(text);
    lh_metrics_free(m);
}

/* The exposition names each series once: no app metric takes a core name or
 * another metric's series, whichever is defined first. */
static void test_metric_names_do_not_collide(void **state)
{
    (void)state;
    struct lh_metrics *m = lh_metrics_new(1, 1);
    char err[256];
    const char *reserved[] = {"luahost_http_requests_total", "luahost_reloads_total",
                              "process_cpu_seconds_total"};

    for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++) {
        assert_null(lh_metrics_define(m, reserved[i], "", LH_METRIC_COUNTER, NULL, 0, err,
                                      sizeof(err)));
        assert_non_null(strstr(err, "are the core's"));
    }
    assert_null(lh_metrics_define(m, "process_open_fds", "", LH_METRIC_GAUGE, NULL, 0, err,
                                  sizeof(err)));
    /* Its name is free, but not its luahost_bucket. */
    assert_null(lh_metrics_define(m, "luahost", "", LH_METRIC_HISTOGRAM, NULL, 0, err,
                                  sizeof(err)));
    assert_string_equal(err, "metric luahost: series luahost_bucket: names beginning luahost_ or "
                             "process_ are the core's");
    assert_non_null(lh_metrics_define(m, "luahost", "", LH_METRIC_GAUGE, NULL, 0, err,
                                      sizeof(err)));

    assert_non_null(lh_metrics_define(m, "app_seconds", "", LH_METRIC_HISTOGRAM, NULL, 0, err,
                                      sizeof(err)));
    assert_null(lh_metrics_define(m, "app_seconds_count", "", LH_METRIC_GAUGE, NULL, 0, err,
                                  sizeof(err)));
    assert_string_equal(err, "metric app_seconds_count: series app_seconds_count is also metric "
                             "app_seconds's");
    assert_null(lh_metrics_define(m, "app_seconds_bucket", "", LH_METRIC_HISTOGRAM, NULL, 0, err,
                                  sizeof(err)));
    assert_null(lh_metrics_define(m, "app_seconds_sum", "", LH_METRIC_HISTOGRAM, NULL, 0, err,
                                  sizeof(err)));
    /* The other order: a gauge first, then the histogram whose _sum it would be. */
    assert_non_null(lh_metrics_define(m, "app_wait_sum", "", LH_METRIC_GAUGE, NULL, 0, err,
                                      sizeof(err)));
    assert_null(lh_metrics_define(m, "app_wait", "", LH_METRIC_HISTOGRAM, NULL, 0, err,
                                  sizeof(err)));
    assert_string_equal(err, "metric app_wait: series app_wait_sum is also metric app_wait_sum's");
    /* Near misses are fine. */
    assert_non_null(lh_metrics_define(m, "app_seconds_counts", "", LH_METRIC_GAUGE, NULL, 0, err,
                                      sizeof(err)));
    assert_non_null(lh_metrics_define(m, "app_wait", "", LH_METRIC_GAUGE, NULL, 0, err,
                                      sizeof(err)));
    assert_non_null(lh_metrics_define(m, "processes", "", LH_METRIC_GAUGE, NULL, 0, err,
                                      sizeof(err)));
    lh_metrics_free(m);
}

static void test_route_names_and_slow_thresholds(void **state)
{
    (void)state;
    struct lh_metrics *m = lh_metrics_new(1, 1);
    int r = lh_metrics_route_id(m, "GET /sleep");
    assert_string_equal(lh_metrics_route_name(m, r), "GET /sleep");
    assert_true(lh_metrics_slow(m, r) == 0.5);
    lh_metrics_set_slow(m, r, 11);
    assert_true(lh_metrics_slow(m, r) == 11);
    assert_string_equal(lh_metrics_route_name(m, LH_METRICS_ROUTE_NONE), "unmatched");
    assert_null(lh_metrics_route_name(m, 9999));
    lh_metrics_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counts_from_every_thread),
        cmocka_unit_test(test_disabled_counts_nothing),
        cmocka_unit_test(test_slowest_since_last_taken),
        cmocka_unit_test(test_named_metrics),
        cmocka_unit_test(test_non_finite_values_in_text_format),
        cmocka_unit_test(test_metric_names_do_not_collide),
        cmocka_unit_test(test_task_pools_as_gauges),
        cmocka_unit_test(test_route_names_and_slow_thresholds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
