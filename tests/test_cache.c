/* tests/test_cache.c: cmocka tests for include/luahost/cache.h, on a fake
 * clock. Also built with ThreadSanitizer as test_cache_tsan (see
 * tests/CMakeLists.txt) for the threaded tests. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "luahost/cache.h"

/* -- Helpers ----------------------------------------------------------------- */

static double fake_time;

static double fake_now(void)
{
    return fake_time;
}

static struct lh_cache *new_cache(size_t entries, size_t bytes, unsigned shards)
{
    struct lh_cache_options o = {entries, bytes, shards, fake_now};
    fake_time = 1000.0;
    struct lh_cache *c = lh_cache_new(&o);
    assert_non_null(c);
    return c;
}

struct found {
    char value[256];
    double ttl_left;
};

static void copy_value(void *arg, const char *value, size_t len, double ttl_left)
{
    struct found *f = arg;
    snprintf(f->value, sizeof(f->value), "%.*s", (int)len, value);
    f->ttl_left = ttl_left;
}

/* The value of key as text, or "" on a miss. */
static const char *get(struct lh_cache *c, const char *key, int accept_stale, struct found *f)
{
    f->value[0] = '\0';
    lh_cache_get(c, key, strlen(key), accept_stale, copy_value, f);
    return f->value;
}

static void set(struct lh_cache *c, const char *key, const char *value, double ttl)
{
    assert_int_equal(lh_cache_set(c, key, strlen(key), value, strlen(value), ttl, 0), LH_OK);
}

/* -- LRU, TTL and bounds ---------------------------------------------------- */

static void test_get_returns_what_set_stored(void **state)
{
    (void)state;
    struct lh_cache *c = new_cache(10, 0, 1);
    struct found f;

    set(c, "a", "{\"x\":1}", 30);
    assert_string_equal(get(c, "a", 0, &f), "{\"x\":1}");
    assert_true(f.ttl_left > 29.9 && f.ttl_left <= 30);
    set(c, "a", "2", 30); /* replaces */
    assert_string_equal(get(c, "a", 0, &f), "2");
    assert_string_equal(get(c, "b", 0, &f), "");

    struct lh_cache_stats st;
    lh_cache_stats(c, &st);
    assert_int_equal(st.hits, 2);
    assert_int_equal(st.misses, 1);
    assert_int_equal(st.entries, 1);
    lh_cache_free(c);
}

static void test_lru_evicts_least_recently_used(void **state)
{
    (void)state;
    struct lh_cache *c = new_cache(3, 0, 1);
    struct found f;

    set(c, "a", "1", 60);
    set(c, "b", "2", 60);
    set(c, "c", "3", 60);
    get(c, "a", 0, &f); /* a is now the most recent: b is the oldest */
    set(c, "d", "4", 60);
    assert_string_equal(get(c, "b", 0, &f), "");
    assert_string_equal(get(c, "a", 0, &f), "1");
    assert_string_equal(get(c, "c", 0, &f), "3");
    assert_string_equal(get(c, "d", 0, &f), "4");
    set(c, "e", "5", 60); /* a is the oldest now */
    assert_string_equal(get(c, "a", 0, &f), "");

    struct lh_cache_stats st;
    lh_cache_stats(c, &st);
    assert_int_equal(st.evictions, 2);
    assert_int_equal(st.entries, 3);
    lh_cache_free(c);
}

static void test_expired_entries_are_never_returned(void **state)
{
    (void)state;
    struct lh_cache *c = new_cache(10, 0, 1);
    struct found f;

    set(c, "k", "v", 5);
    fake_time += 4.999;
    assert_string_equal(get(c, "k", 0, &f), "v");
    fake_time += 0.001;
    assert_string_equal(get(c, "k", 0, &f), "");
    assert_string_equal(get(c, "k", 1, &f), ""); /* no stale window */

    struct lh_cache_stats st;
    lh_cache_stats(c, &st);
    assert_int_equal(st.expirations, 1);
    assert_int_equal(st.entries, 0);
    lh_cache_free(c);
}

static void test_stale_window_only_for_callers_that_accept_it(void **state)
{
    (void)state;
    struct lh_cache *c = new_cache(10, 0, 1);
    struct found f;

    assert_int_equal(lh_cache_set(c, "k", 1, "v", 1, 5, 10), LH_OK);
    fake_time += 6;
    assert_int_equal(lh_cache_get(c, "k", 1, 0, copy_value, &f), LH_CACHE_MISS);
    assert_int_equal(lh_cache_get(c, "k", 1, 1, copy_value, &f), LH_CACHE_STALE);
    assert_string_equal(f.value, "v");
    assert_true(f.ttl_left < 0);
    fake_time += 9; /* 15 s: past the stale window too */
    assert_int_equal(lh_cache_get(c, "k", 1, 1, copy_value, &f), LH_CACHE_MISS);
    lh_cache_free(c);
}

static void test_byte_bound_evicts_and_refuses_oversized(void **state)
{
    (void)state;
    /* Room for about three 300-byte values with their bookkeeping. */
    struct lh_cache *c = new_cache(100, 1200, 1);
    char big[301];
    struct found f;
    struct lh_cache_stats st;

    memset(big, 'x', 300);
    big[300] = '\0';
    set(c, "a", big, 60);
    set(c, "b", big, 60);
    set(c, "c", big, 60);
    lh_cache_stats(c, &st);
    assert_true(st.bytes <= 1200);
    assert_int_equal(st.entries, 3);
    set(c, "d", big, 60);
    lh_cache_stats(c, &st);
    assert_true(st.bytes <= 1200);
    assert_int_equal(st.entries, 3);
    assert_string_equal(get(c, "a", 0, &f), "");

    char *huge = calloc(1, 2000);
    assert_non_null(huge);
    assert_int_equal(lh_cache_set(c, "h", 1, huge, 2000, 60, 0), LH_ERR_INVALID);
    free(huge);
    lh_cache_stats(c, &st);
    assert_int_equal(st.entries, 3); /* nothing evicted for a refused entry */
    lh_cache_free(c);
}

static void test_bad_ttl_is_refused(void **state)
{
    (void)state;
    struct lh_cache *c = new_cache(10, 0, 1);
    assert_int_equal(lh_cache_set(c, "k", 1, "v", 1, 0, 0), LH_ERR_INVALID);
    assert_int_equal(lh_cache_set(c, "k", 1, "v", 1, -1, 0), LH_ERR_INVALID);
    assert_int_equal(lh_cache_set(c, "k", 1, "v", 1, 1, -1), LH_ERR_INVALID);
    lh_cache_free(c);
}

static void test_delete_and_invalidate_pattern(void **state)
{
    (void)state;
    struct lh_cache *c = new_cache(100, 0, 4);
    struct found f;

    set(c, "svg_list:1:20", "a", 60);
    set(c, "svg_list:2:20", "b", 60);
    set(c, "svg:7", "c", 60);
    assert_int_equal(lh_cache_delete(c, "svg:7", 5), 1);
    assert_int_equal(lh_cache_delete(c, "svg:7", 5), 0);
    assert_int_equal(lh_cache_invalidate_pattern(c, "svg_list:*", 10), 2);
    assert_string_equal(get(c, "svg_list:1:20", 0, &f), "");
    lh_cache_free(c);
}

/* A value read or computed before a deletion must not be stored after it:
 * it may predate the change the deletion announced (the list of images
 * fetched just before a delete, say). */
static void test_set_since_refuses_a_value_older_than_a_deletion(void **state)
{
    (void)state;
    struct lh_cache *c = new_cache(100, 0, 4);
    struct found f;

    uint64_t before = lh_cache_generation(c);
    assert_int_equal(lh_cache_invalidate_pattern(c, "svg_list:*", 10), 0);
    assert_int_equal(lh_cache_set_since(c, before, "svg_list:1:20", 13, "old", 3, 60, 0),
                     LH_ERR_CONFLICT);
    assert_string_equal(get(c, "svg_list:1:20", 0, &f), "");

    uint64_t now = lh_cache_generation(c);
    assert_true(now != before);
    assert_int_equal(lh_cache_set_since(c, now, "svg_list:1:20", 13, "new", 3, 60, 0), LH_OK);
    assert_string_equal(get(c, "svg_list:1:20", 0, &f), "new");
    lh_cache_delete(c, "other", 5); /* any deletion counts, found or not */
    assert_int_equal(lh_cache_set_since(c, now, "svg:7", 5, "x", 1, 60, 0), LH_ERR_CONFLICT);
    lh_cache_free(c);
}

static void test_pattern_match_is_redis_glob(void **state)
{
    (void)state;
#define MATCH(p, s) lh_cache_pattern_match(p, strlen(p), s, strlen(s))
    assert_true(MATCH("*", ""));
    assert_true(MATCH("svg_list:*", "svg_list:1:20"));
    assert_false(MATCH("svg_list:*", "svg:1"));
    assert_true(MATCH("a?c", "abc"));
    assert_false(MATCH("a?c", "ac"));
    assert_true(MATCH("[a-c]x", "bx"));
    assert_false(MATCH("[^a-c]x", "bx"));
    assert_true(MATCH("[^a-c]x", "dx"));
    assert_true(MATCH("a\\*", "a*"));
    assert_false(MATCH("a\\*", "ab"));
    assert_true(MATCH("*:*:20", "svg_list:3:20"));
    assert_false(MATCH("*:*:20", "svg_list:3:21"));
    /* Many stars against a long non-match stays fast (no exponential backtracking). */
    char s[4001];
    memset(s, 'a', 4000);
    s[4000] = '\0';
    assert_false(MATCH("*a*a*a*a*a*a*a*a*b", s));
#undef MATCH
}

static void test_apply_message(void **state)
{
    (void)state;
    struct lh_cache *c = new_cache(100, 0, 4);
    struct found f;
    char msg[128];

    set(c, "a:1", "x", 60);
    set(c, "a:2", "x", 60);
    set(c, "b", "x", 60);
    snprintf(msg, sizeof(msg), "%s k b", lh_cache_origin(c));
    assert_int_equal(lh_cache_apply_message(c, msg, strlen(msg)), 0); /* our own */
    assert_string_equal(get(c, "b", 0, &f), "x");
    assert_int_equal(lh_cache_apply_message(c, "0123456789abcdef k b", 20), 1);
    assert_string_equal(get(c, "b", 0, &f), "");
    assert_int_equal(lh_cache_apply_message(c, "0123456789abcdef p a:*", 22), 2);
    assert_int_equal(lh_cache_apply_message(c, "garbage", 7), -1);
    assert_int_equal(lh_cache_apply_message(c, "x q y", 5), -1);
    lh_cache_free(c);
}

/* -- Single flight ----------------------------------------------------------- */

struct test_waiter {
    struct lh_cache_waiter w; /* first */
    int woken;
    char value[32];
};

static void on_wake(struct lh_cache_waiter *w)
{
    struct test_waiter *t = (struct test_waiter *)w;
    t->woken++;
    snprintf(t->value, sizeof(t->value), "%.*s", (int)w->vlen, w->value ? w->value : "");
    free(w->value);
}

static void test_flight_one_leader_waiters_get_result(void **state)
{
    (void)state;
    struct lh_cache *c = new_cache(10, 0, 2);
    struct lh_cache_flight *leader, *other;
    struct test_waiter a, b;

    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    a.w.wake = b.w.wake = on_wake;

    assert_int_equal(lh_cache_flight_join(c, "k", 1, NULL, &leader), LH_OK);
    assert_non_null(leader);
    assert_int_equal(lh_cache_flight_join(c, "k", 1, &a.w, &other), LH_OK);
    assert_null(other);
    assert_int_equal(lh_cache_flight_join(c, "k", 1, &b.w, &other), LH_OK);
    assert_null(other);
    assert_int_equal(a.woken, 0);
    lh_cache_flight_finish(c, leader, NULL, NULL, "42", 2);
    assert_int_equal(a.woken, 1);
    assert_int_equal(b.woken, 1);
    assert_string_equal(a.value, "42");
    assert_string_equal(a.w.error, "");

    /* Finished: the next caller leads again. An error reaches the waiters. */
    assert_int_equal(lh_cache_flight_join(c, "k", 1, NULL, &leader), LH_OK);
    assert_non_null(leader);
    assert_int_equal(lh_cache_flight_join(c, "k", 1, &a.w, &other), LH_OK);
    lh_cache_flight_finish(c, leader, "database down", "io", NULL, 0);
    assert_int_equal(a.woken, 2);
    assert_string_equal(a.w.error, "database down");
    assert_string_equal(a.w.kind, "io");
    assert_string_equal(a.value, "");
    lh_cache_free(c);
}

/* -- Threads (run under ThreadSanitizer as test_cache_tsan) ------------------ */

#define THREADS 8
#define ROUNDS 20000

struct hammer {
    struct lh_cache *cache;
    int id;
    atomic_long *bad_values;
};

static void check_value(void *arg, const char *value, size_t len, double ttl_left)
{
    (void)ttl_left;
    struct hammer *h = arg;
    /* Every value is "v<key number>", so a torn or foreign value shows. */
    if (len < 2 || value[0] != 'v')
        atomic_fetch_add(h->bad_values, 1);
}

static void *hammer_main(void *arg)
{
    struct hammer *h = arg;
    char key[32], value[32];
    unsigned seed = (unsigned)h->id * 2654435761u;

    for (int i = 0; i < ROUNDS; i++) {
        seed = seed * 1103515245u + 12345u;
        int n = (int)((seed >> 8) % 300);
        int klen = snprintf(key, sizeof(key), "key:%d", n);
        int vlen = snprintf(value, sizeof(value), "v%d", n);
        switch ((seed >> 20) % 8) {
        case 0:
        case 1:
            lh_cache_set(h->cache, key, (size_t)klen, value, (size_t)vlen, 60, 0);
            break;
        case 2:
            lh_cache_delete(h->cache, key, (size_t)klen);
            break;
        case 3:
            if (i % 500 == 0)
                lh_cache_invalidate_pattern(h->cache, "key:1*", 6);
            break;
        default:
            lh_cache_get(h->cache, key, (size_t)klen, 0, check_value, h);
        }
    }
    return NULL;
}

static void test_eight_threads_hammer_one_cache(void **state)
{
    (void)state;
    struct lh_cache_options o = {.max_entries = 200, .shards = 4};
    struct lh_cache *c = lh_cache_new(&o);
    pthread_t threads[THREADS];
    struct hammer h[THREADS];
    atomic_long bad = 0;

    assert_non_null(c);
    for (int i = 0; i < THREADS; i++) {
        h[i] = (struct hammer){c, i, &bad};
        assert_int_equal(pthread_create(&threads[i], NULL, hammer_main, &h[i]), 0);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(threads[i], NULL);
    assert_int_equal(atomic_load(&bad), 0);

    struct lh_cache_stats st;
    lh_cache_stats(c, &st);
    assert_true(st.entries <= 200);
    assert_true(st.hits + st.misses > 0);
    lh_cache_free(c);
}

struct flier {
    struct lh_cache *cache;
    atomic_int *leaders;
};

static atomic_int flight_wakes;

static void count_wake(struct lh_cache_waiter *w)
{
    atomic_fetch_add(&flight_wakes, 1);
    free(w->value);
    free(w);
}

static void *flier_main(void *arg)
{
    struct flier *fl = arg;
    for (int i = 0; i < 2000; i++) {
        struct lh_cache_flight *leader;
        struct lh_cache_waiter *w = calloc(1, sizeof(*w));
        if (w == NULL)
            return NULL;
        w->wake = count_wake;
        lh_cache_flight_join(fl->cache, "hot", 3, w, &leader);
        if (leader != NULL) {
            free(w);
            atomic_fetch_add(fl->leaders, 1);
            lh_cache_flight_finish(fl->cache, leader, NULL, NULL, "v", 1);
        }
    }
    return NULL;
}

static void test_flights_from_eight_threads(void **state)
{
    (void)state;
    struct lh_cache *c = lh_cache_new(NULL);
    pthread_t threads[THREADS];
    atomic_int leaders = 0;
    struct flier fl = {c, &leaders};

    assert_non_null(c);
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&threads[i], NULL, flier_main, &fl), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(threads[i], NULL);
    /* Each join either led a flight or was woken by its leader. */
    assert_int_equal(atomic_load(&leaders) + atomic_load(&flight_wakes), THREADS * 2000);
    /* Every flight was finished: the next caller leads. */
    struct lh_cache_flight *leader;
    assert_int_equal(lh_cache_flight_join(c, "hot", 3, NULL, &leader), LH_OK);
    assert_non_null(leader);
    lh_cache_flight_finish(c, leader, NULL, NULL, NULL, 0);
    lh_cache_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_returns_what_set_stored),
        cmocka_unit_test(test_lru_evicts_least_recently_used),
        cmocka_unit_test(test_expired_entries_are_never_returned),
        cmocka_unit_test(test_stale_window_only_for_callers_that_accept_it),
        cmocka_unit_test(test_byte_bound_evicts_and_refuses_oversized),
        cmocka_unit_test(test_bad_ttl_is_refused),
        cmocka_unit_test(test_delete_and_invalidate_pattern),
        cmocka_unit_test(test_set_since_refuses_a_value_older_than_a_deletion),
        cmocka_unit_test(test_pattern_match_is_redis_glob),
        cmocka_unit_test(test_apply_message),
        cmocka_unit_test(test_flight_one_leader_waiters_get_result),
        cmocka_unit_test(test_eight_threads_hammer_one_cache),
        cmocka_unit_test(test_flights_from_eight_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
