/* tests/test_ratelimit.c: cmocka tests for include/luahost/ratelimit.h.
 *
 * Limit strings first, then the limiter: in local mode (no Redis), against
 * the real Redis of scripts/services.sh (LUAHOST_REDIS_URL, by default
 * redis://127.0.0.1:16380/0), and pointed at a closed port. Every test uses
 * fresh random keys, so runs never collide, and a window chosen so that no
 * window boundary falls inside the test (the limiter reads the clock itself,
 * so this is how the tests avoid sleeping). Keys left in Redis expire. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "luahost/log.h"
#include "luahost/netaddr.h"
#include "luahost/ratelimit.h"
#include "luahost/url.h"

#define DEFAULT_REDIS_URL "redis://127.0.0.1:16380/0"
#define START_HINT "start it with scripts/services.sh start"

/* -- Limit strings ------------------------------------------------------------ */

/* Asserts that spec parses into exactly the n rates of want. */
static void parse_ok(const char *spec, const struct lh_rate *want, size_t nwant)
{
    struct lh_rate out[LH_RATELIMIT_MAX_LIMITS];
    char err[256] = "";
    size_t n = 99;

    enum lh_status st = lh_rate_parse(spec, out, LH_RATELIMIT_MAX_LIMITS, &n, err, sizeof(err));
    if (st != LH_OK)
        fail_msg("'%s': expected LH_OK, got %s (%s)", spec, lh_status_str(st), err);
    if (n != nwant)
        fail_msg("'%s': expected %zu rates, got %zu", spec, nwant, n);
    for (size_t i = 0; i < n; i++)
        if (out[i].limit != want[i].limit || out[i].window != want[i].window)
            fail_msg("'%s': rate %zu: expected %ld per %ld s, got %ld per %ld s", spec, i,
                     want[i].limit, want[i].window, out[i].limit, out[i].window);
}

/* Asserts that spec is refused with an error message containing part. */
static void parse_bad(const char *spec, const char *part)
{
    struct lh_rate out[LH_RATELIMIT_MAX_LIMITS];
    char err[256] = "";
    size_t n;

    enum lh_status st = lh_rate_parse(spec, out, LH_RATELIMIT_MAX_LIMITS, &n, err, sizeof(err));
    if (st != LH_ERR_INVALID)
        fail_msg("'%s': expected LH_ERR_INVALID, got %s", spec, lh_status_str(st));
    if (strstr(err, part) == NULL)
        fail_msg("'%s': expected the error to contain \"%s\", got \"%s\"", spec, part, err);
}

static void test_lh_rate_parse_several_limits(void **state)
{
    (void)state;
    const struct lh_rate want[] = {{2000, 86400}, {500, 3600}};
    parse_ok("2000 per day; 500 per hour", want, 2);
}

static void test_lh_rate_parse_one_limit(void **state)
{
    (void)state;
    const struct lh_rate want[] = {{500, 3600}};
    parse_ok("500 per hour", want, 1);
}

static void test_lh_rate_parse_slash_notation(void **state)
{
    (void)state;
    const struct lh_rate minute[] = {{10, 60}};
    const struct lh_rate two_minutes[] = {{3, 120}};
    parse_ok("10/minute", minute, 1);
    parse_ok("10 / minute", minute, 1);
    parse_ok("3/2 minutes", two_minutes, 1);
}

static void test_lh_rate_parse_multiples_of_a_unit(void **state)
{
    (void)state;
    const struct lh_rate thirty_seconds[] = {{5, 30}};
    const struct lh_rate two_hours[] = {{1, 7200}};
    const struct lh_rate year[] = {{1, 366L * 86400}};
    parse_ok("5 per 30 seconds", thirty_seconds, 1);
    parse_ok("1 per 2 hours", two_hours, 1);
    parse_ok("1 per 366 days", year, 1);
}

static void test_lh_rate_parse_every_unit(void **state)
{
    (void)state;
    const struct lh_rate want[] = {{1, 1}, {2, 60}, {3, 3600}, {4, 86400}};
    parse_ok("1 per second; 2 per minute; 3 per hour; 4 per day", want, 4);
}

static void test_lh_rate_parse_plural_and_case(void **state)
{
    (void)state;
    const struct lh_rate hour[] = {{3, 3600}};
    const struct lh_rate second[] = {{7, 1}};
    const struct lh_rate days[] = {{2, 86400}, {9, 172800}};
    parse_ok("3 PER Hours", hour, 1);
    parse_ok("3 per hours", hour, 1);
    parse_ok("7 Per SECOND", second, 1);
    parse_ok("2/Day; 9 per 2 Days", days, 2);
}

/* Units are case-insensitive, so is their plural 's'. */
static void test_lh_rate_parse_plural_in_capitals(void **state)
{
    (void)state;
    const struct lh_rate hours[] = {{3, 3600}};
    const struct lh_rate days[] = {{9, 172800}};
    parse_ok("3 PER HOURS", hours, 1);
    parse_ok("9 per 2 DAYS", days, 1);
}

static void test_lh_rate_parse_spaces_around_parts(void **state)
{
    (void)state;
    const struct lh_rate want[] = {{10, 60}, {2, 1}};
    parse_ok("  10/minute ;  2 per second  ", want, 2);
}

static void test_lh_rate_parse_as_many_as_the_maximum(void **state)
{
    (void)state;
    struct lh_rate want[LH_RATELIMIT_MAX_LIMITS];
    char spec[256] = "";
    size_t len = 0;

    for (int i = 0; i < LH_RATELIMIT_MAX_LIMITS; i++) {
        want[i].limit = i + 1;
        want[i].window = 60;
        len += (size_t)snprintf(spec + len, sizeof(spec) - len, "%s%d/minute", i ? ";" : "", i + 1);
    }
    parse_ok(spec, want, LH_RATELIMIT_MAX_LIMITS);
}

static void test_lh_rate_parse_rejects_empty(void **state)
{
    (void)state;
    parse_bad("", "bad limit ''");
    parse_bad("   ", "bad limit '   '");
}

static void test_lh_rate_parse_rejects_garbage(void **state)
{
    (void)state;
    parse_bad("abc", "'abc'");
    parse_bad("per hour", "'per hour'");
    parse_bad("10", "'10'");
    parse_bad("10 per", "'10 per'");
    parse_bad("10 perhour", "'10 perhour'");
    parse_bad("10/", "'10/'");
}

static void test_lh_rate_parse_rejects_zero(void **state)
{
    (void)state;
    parse_bad("0 per hour", "'0 per hour'");
    parse_bad("5 per 0 minutes", "'5 per 0 minutes'");
}

static void test_lh_rate_parse_rejects_negative(void **state)
{
    (void)state;
    parse_bad("-1/minute", "'-1/minute'");
    parse_bad("5 per -2 hours", "'5 per -2 hours'");
}

static void test_lh_rate_parse_rejects_unknown_unit(void **state)
{
    (void)state;
    parse_bad("5 per fortnight", "'5 per fortnight'");
    parse_bad("5 per s", "'5 per s'");
    parse_bad("5 per hourss", "'5 per hourss'");
}

static void test_lh_rate_parse_rejects_window_over_366_days(void **state)
{
    (void)state;
    parse_bad("1 per 367 days", "'1 per 367 days'");
}

static void test_lh_rate_parse_names_the_bad_part(void **state)
{
    (void)state;
    struct lh_rate out[LH_RATELIMIT_MAX_LIMITS];
    char err[256] = "";
    size_t n;

    assert_int_equal(lh_rate_parse("7/minute; 5 per fortnight; 1/day", out, LH_RATELIMIT_MAX_LIMITS,
                                   &n, err, sizeof(err)),
                     LH_ERR_INVALID);
    if (strstr(err, "5 per fortnight") == NULL || strstr(err, "7/minute") != NULL ||
        strstr(err, "1/day") != NULL)
        fail_msg("expected the error to name '5 per fortnight' alone, got \"%s\"", err);
    parse_bad("10/minute;", "bad limit ''"); /* an empty part after ';' */
}

static void test_lh_rate_parse_rejects_too_many_limits(void **state)
{
    (void)state;
    char spec[256] = "";
    size_t len = 0;

    for (int i = 0; i < LH_RATELIMIT_MAX_LIMITS + 1; i++)
        len += (size_t)snprintf(spec + len, sizeof(spec) - len, "%s%d/minute", i ? ";" : "", i + 1);
    parse_bad(spec, "more than 8 limits");
}

static void test_lh_rate_parse_respects_max(void **state)
{
    (void)state;
    struct lh_rate out[1];
    char err[256] = "";
    size_t n = 0;

    assert_int_equal(lh_rate_parse("1/minute; 2/hour", out, 1, &n, err, sizeof(err)),
                     LH_ERR_INVALID);
    assert_non_null(strstr(err, "more than 1 limits"));
}

/* -- Submitting checks and waiting ----------------------------------------------- */

/* Counts the done() calls of a set of checks. */
struct waitgroup {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    size_t done;
};

/* A check with what its done() recorded. */
struct waited {
    struct lh_ratelimit_check c;
    struct waitgroup *wg;
    int calls;
};

static void wg_init(struct waitgroup *wg)
{
    pthread_mutex_init(&wg->lock, NULL);
    pthread_cond_init(&wg->cond, NULL);
    wg->done = 0;
}

static void wg_wait(struct waitgroup *wg, size_t n)
{
    pthread_mutex_lock(&wg->lock);
    while (wg->done < n)
        pthread_cond_wait(&wg->cond, &wg->lock);
    pthread_mutex_unlock(&wg->lock);
}

static void wg_destroy(struct waitgroup *wg)
{
    pthread_cond_destroy(&wg->cond);
    pthread_mutex_destroy(&wg->lock);
}

static void on_done(struct lh_task *t)
{
    struct waited *w = (struct waited *)(void *)((char *)t - offsetof(struct waited, c.task));

    pthread_mutex_lock(&w->wg->lock);
    w->calls++;
    w->wg->done++;
    pthread_cond_broadcast(&w->wg->cond);
    pthread_mutex_unlock(&w->wg->lock);
}

static void check_init(struct waited *w)
{
    memset(w, 0, sizeof(*w));
    w->c.task.done = on_done;
    w->c.allowed = -1;
    w->c.local = -1;
}

static void add_rule(struct waited *w, const char *key, long limit, long window, int counter)
{
    assert_true(w->c.nrules < LH_RATELIMIT_MAX_RULES);
    struct lh_ratelimit_rule *r = &w->c.rules[w->c.nrules++];
    assert_true(strlen(key) < sizeof(r->key));
    snprintf(r->key, sizeof(r->key), "%s", key);
    r->rate.limit = limit;
    r->rate.window = window;
    r->counter = counter;
}

/* A counter rule that holds its key for hold seconds past limit. */
static void add_hold_rule(struct waited *w, const char *key, long limit, long window, int hold)
{
    add_rule(w, key, limit, window, 1);
    w->c.rules[w->c.nrules - 1].hold = hold;
}

/* Submits w and returns once its done() has run. */
static void submit_wait(struct lh_ratelimit *rl, struct waited *w)
{
    struct waitgroup wg;

    wg_init(&wg);
    w->wg = &wg;
    lh_ratelimit_submit(rl, &w->c);
    wg_wait(&wg, 1);
    wg_destroy(&wg);
    w->wg = NULL;
    assert_int_equal(w->calls, 1);
}

/* One check of one rule, submitted and waited for. */
static struct waited check_one(struct lh_ratelimit *rl, const char *key, long limit, long window,
                               int counter)
{
    struct waited w;

    check_init(&w);
    add_rule(&w, key, limit, window, counter);
    submit_wait(rl, &w);
    return w;
}

/* -- Fixture -------------------------------------------------------------------- */

#define MANY 100

struct fixture {
    struct lh_ratelimit *a, *b; /* freed by the teardown */
    char prefix[64];            /* unique to the test */
    long window;                /* seconds; no boundary falls inside the test */
    struct waited *many;        /* MANY checks, for the batch tests */
};

/* A window (seconds) whose current period has at least two minutes left, so
 * that no test sees a window end; the limiter and Redis read the same clock. */
static long quiet_window(long from)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    double now = (double)tv.tv_sec + (double)tv.tv_usec / 1e6;

    for (long w = from; w > from / 2; w--) {
        double elapsed = now - floor(now / (double)w) * (double)w;
        if ((double)w - elapsed >= 120)
            return w;
    }
    return from; /* unreachable: consecutive windows are never all near their end */
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    unsigned char rnd[8] = {0};
    FILE *fp = fopen("/dev/urandom", "rb");

    if (f == NULL || fp == NULL || fread(rnd, 1, sizeof(rnd), fp) != sizeof(rnd)) {
        if (fp)
            fclose(fp);
        free(f);
        return -1;
    }
    fclose(fp);
    snprintf(f->prefix, sizeof(f->prefix),
             "lhtest:%ld:%02x%02x%02x%02x%02x%02x%02x%02x:", (long)getpid(), rnd[0], rnd[1], rnd[2],
             rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
    f->window = quiet_window(3600);
    f->many = calloc(MANY, sizeof(*f->many));
    if (f->many == NULL) {
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    lh_ratelimit_free(f->a);
    lh_ratelimit_free(f->b);
    free(f->many);
    free(f);
    return 0;
}

/* The test's key named name, in buf. */
static const char *key(const struct fixture *f, const char *name, char buf[LH_RATELIMIT_KEY_MAX])
{
    snprintf(buf, LH_RATELIMIT_KEY_MAX, "%s%s", f->prefix, name);
    return buf;
}

static struct lh_ratelimit *new_limiter(const struct lh_ratelimit_options *o)
{
    const char *err = NULL;
    struct lh_ratelimit *rl = lh_ratelimit_new(o, &err);
    if (rl == NULL)
        fail_msg("lh_ratelimit_new: %s", err ? err : "(no error)");
    return rl;
}

static struct lh_ratelimit *local_limiter(void)
{
    struct lh_ratelimit_options o = {0};
    return new_limiter(&o);
}

/* -- Redis ---------------------------------------------------------------------- */

struct redis_target {
    int parsed, reachable, from_env;
    struct lh_url url;
    int db;
    char why[200];
};

static struct redis_target redis_target;

static const struct redis_target *redis_probe(void)
{
    struct redis_target *t = &redis_target;
    const char *env = getenv("LUAHOST_REDIS_URL");
    const char *err = NULL;

    if (t->parsed)
        return t;
    t->parsed = 1;
    t->from_env = env != NULL && env[0] != '\0';
    if (lh_url_parse(t->from_env ? env : DEFAULT_REDIS_URL, &t->url, &err) != LH_OK) {
        snprintf(t->why, sizeof(t->why), "LUAHOST_REDIS_URL: %s", err);
        return t;
    }
    if (t->url.port == 0)
        t->url.port = 6379;
    t->db = t->url.path[0] ? (int)strtol(t->url.path, NULL, 10) : 0;
    struct timeval tv = {2, 0};
    redisContext *c = redisConnectWithTimeout(t->url.host, t->url.port, tv);
    if (c == NULL || c->err) {
        snprintf(t->why, sizeof(t->why), "%s", c ? c->errstr : "out of memory");
    } else {
        t->reachable = 1;
    }
    redisFree(c);
    return t;
}

/* The test Redis, or skip() when it is not configured and not running, or a
 * failure when LUAHOST_REDIS_URL names one that does not answer. */
static const struct redis_target *need_redis(void)
{
    const struct redis_target *t = redis_probe();
    if (t->reachable)
        return t;
    if (!t->from_env) {
        print_message("Redis at %s is not running (%s): %s\n", DEFAULT_REDIS_URL, t->why,
                      START_HINT);
        skip();
    }
    fail_msg("Redis of LUAHOST_REDIS_URL (%s:%d) does not answer (%s): %s", t->url.host,
             t->url.port, t->why, START_HINT);
    return NULL;
}

static struct lh_ratelimit *redis_limiter(void)
{
    const struct redis_target *t = need_redis();
    struct lh_ratelimit_options o = {
        .redis_host = t->url.host,
        .redis_port = t->url.port,
        .redis_db = t->db,
        .redis_password = t->url.password,
        .timeout = 5.0, /* valgrind is slow */
    };
    return new_limiter(&o);
}

/* A direct connection to the test Redis, to look at the keys the limiter wrote. */
static redisContext *redis_connect_direct(void)
{
    const struct redis_target *t = need_redis();
    struct timeval tv = {2, 0};
    redisContext *c = redisConnectWithTimeout(t->url.host, t->url.port, tv);
    redisReply *r;

    if (c == NULL || c->err)
        fail_msg("cannot connect to Redis: %s", c ? c->errstr : "out of memory");
    if (t->url.password[0]) {
        r = redisCommand(c, "AUTH %s", t->url.password);
        assert_non_null(r);
        freeReplyObject(r);
    }
    r = redisCommand(c, "SELECT %d", t->db);
    assert_non_null(r);
    assert_int_not_equal(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);
    return c;
}

/* -- Behaviours shared by every mode ------------------------------------------- */

static void expect_reset(const struct lh_ratelimit_outcome *o, long window)
{
    if (o->reset <= 0 || o->reset > window)
        fail_msg("reset %ld is not in (0, %ld]", o->reset, window);
}

static void expect_mode(const struct waited *w, int local)
{
    if (w->c.local != local)
        fail_msg("expected the check to be decided %s, it was decided %s",
                 local ? "locally" : "in Redis", w->c.local ? "locally" : "in Redis");
}

/* limit checks are allowed, with remaining limit-1 .. 0, then the next ones
 * are refused with a retry_after; a and b take turns (they may be one limiter). */
static void expect_exact_limit(struct fixture *f, struct lh_ratelimit *a, struct lh_ratelimit *b,
                               int local)
{
    const long limit = 5;
    char k[LH_RATELIMIT_KEY_MAX];

    key(f, "exact", k);
    for (long i = 0; i < limit; i++) {
        struct waited w = check_one(i % 2 ? b : a, k, limit, f->window, 0);
        expect_mode(&w, local);
        if (!w.c.allowed)
            fail_msg("request %ld of %ld was refused", i + 1, limit);
        assert_int_equal(w.c.out[0].remaining, limit - 1 - i);
        assert_int_equal(w.c.out[0].retry_after, 0);
        expect_reset(&w.c.out[0], f->window);
    }
    for (long i = 0; i < 3; i++) {
        struct waited w = check_one(i % 2 ? a : b, k, limit, f->window, 0);
        expect_mode(&w, local);
        if (w.c.allowed)
            fail_msg("request %ld over the limit of %ld was allowed", i + 1, limit);
        assert_int_equal(w.c.out[0].remaining, 0);
        if (w.c.out[0].retry_after <= 0 || w.c.out[0].retry_after > f->window)
            fail_msg("retry_after %ld is not in (0, %ld]", w.c.out[0].retry_after, f->window);
        expect_reset(&w.c.out[0], f->window);
        /* Nothing else in the window: the wait is the rest of the window. */
        assert_int_equal(w.c.out[0].retry_after, w.c.out[0].reset);
    }
}

/* A counter rule counts every request, never refuses, and reports the count. */
static void expect_counter(struct fixture *f, struct lh_ratelimit *rl, int local)
{
    char k[LH_RATELIMIT_KEY_MAX];

    key(f, "counter", k);
    for (long i = 1; i <= 6; i++) {
        struct waited w = check_one(rl, k, 3, f->window, 1);
        expect_mode(&w, local);
        if (!w.c.allowed)
            fail_msg("a counter rule refused request %ld", i);
        assert_int_equal(w.c.out[0].count, i);
        assert_int_equal(w.c.out[0].retry_after, 0);
        assert_int_equal(w.c.out[0].remaining, i < 3 ? 3 - i : 0);
        expect_reset(&w.c.out[0], f->window);
    }
}

/* With a limit rule beside it, the counter still counts the refused requests. */
static void expect_counter_counts_refused(struct fixture *f, struct lh_ratelimit *rl, int local)
{
    char lk[LH_RATELIMIT_KEY_MAX], ck[LH_RATELIMIT_KEY_MAX];
    int allowed = 0;

    key(f, "limited", lk);
    key(f, "pattern", ck);
    for (long i = 1; i <= 5; i++) {
        struct waited w;
        check_init(&w);
        add_rule(&w, lk, 2, f->window, 0);
        add_rule(&w, ck, 50, f->window, 1);
        submit_wait(rl, &w);
        expect_mode(&w, local);
        allowed += w.c.allowed;
        assert_int_equal(w.c.allowed, i <= 2);
        assert_int_equal(w.c.out[1].count, i);
        assert_int_equal(w.c.out[1].retry_after, 0);
        assert_int_equal(w.c.out[1].remaining, 50 - i);
    }
    assert_int_equal(allowed, 2);
}

/* The rules of one check are decided together: when one is full, the request
 * counts against none of them. */
static void expect_rules_together(struct fixture *f, struct lh_ratelimit *rl, int local)
{
    char ka[LH_RATELIMIT_KEY_MAX], kb[LH_RATELIMIT_KEY_MAX];

    key(f, "tight", ka);
    key(f, "loose", kb);
    for (int i = 0; i < 5; i++) {
        struct waited w;
        check_init(&w);
        add_rule(&w, ka, 2, f->window, 0);
        add_rule(&w, kb, 10, f->window, 0);
        submit_wait(rl, &w);
        expect_mode(&w, local);
        assert_int_equal(w.c.allowed, i < 2);
        if (i < 2) {
            assert_int_equal(w.c.out[0].remaining, 1 - i);
            assert_int_equal(w.c.out[1].remaining, 9 - i);
        } else {
            /* Only the full rule has a wait. */
            assert_true(w.c.out[0].retry_after > 0);
            assert_int_equal(w.c.out[1].retry_after, 0);
            assert_int_equal(w.c.out[0].remaining, 0);
        }
    }
    /* Only the 2 allowed requests were counted against the loose rule. */
    struct waited w = check_one(rl, kb, 10, f->window, 0);
    expect_mode(&w, local);
    assert_true(w.c.allowed);
    assert_int_equal(w.c.out[0].remaining, 10 - 2 - 1);
    /* The full rule is still full on its own. */
    w = check_one(rl, ka, 2, f->window, 0);
    assert_false(w.c.allowed);
}

/* What a group of checking threads does: n checks each of one rule; with
 * use_leases, each is decided from a lease when one covers it, else
 * submitted (what the Lua binding does). */
struct thread_arg {
    struct lh_ratelimit *rl;
    const char *key;
    long limit, window;
    int n, local, use_leases;
    int allowed, leased, wrong_mode; /* results */
    pthread_t thread;
};

static void *checker(void *p)
{
    struct thread_arg *a = p;
    struct waitgroup wg;
    struct waited w;

    wg_init(&wg);
    for (int i = 0; i < a->n; i++) {
        check_init(&w);
        add_rule(&w, a->key, a->limit, a->window, 0);
        if (a->use_leases && lh_ratelimit_try_lease(a->rl, &w.c)) {
            a->leased++;
        } else {
            w.wg = &wg;
            wg.done = 0;
            lh_ratelimit_submit(a->rl, &w.c);
            wg_wait(&wg, 1);
        }
        a->allowed += w.c.allowed == 1;
        a->wrong_mode += w.c.local != a->local;
    }
    wg_destroy(&wg);
    return NULL;
}

/* Runs nthreads checkers like proto on each of the nrl limiters; returns
 * their results added up. */
static struct thread_arg run_checkers(struct lh_ratelimit **rls, size_t nrl, int nthreads,
                                      const struct thread_arg *proto)
{
    struct thread_arg args[16], sum = *proto;
    size_t total = nrl * (size_t)nthreads;

    assert_true(total <= 16);
    for (size_t t = 0; t < total; t++) {
        args[t] = *proto;
        args[t].rl = rls[t % nrl];
        assert_int_equal(pthread_create(&args[t].thread, NULL, checker, &args[t]), 0);
    }
    for (size_t t = 0; t < total; t++) {
        pthread_join(args[t].thread, NULL);
        sum.allowed += args[t].allowed;
        sum.leased += args[t].leased;
        sum.wrong_mode += args[t].wrong_mode;
    }
    return sum;
}

/* 8 threads submit 25 checks each against a limit of 60: exactly 60 pass. */
static void expect_threads_share_limit(struct fixture *f, struct lh_ratelimit *rl, int local)
{
    char k[LH_RATELIMIT_KEY_MAX];
    struct thread_arg proto = {
        .key = key(f, "threads", k), .limit = 60, .window = f->window, .n = 25, .local = local};

    struct thread_arg sum = run_checkers(&rl, 1, 8, &proto);
    assert_int_equal(sum.wrong_mode, 0);
    assert_int_equal(sum.allowed, 60);
}

/* MANY identical checks submitted at once (one batch, decided as a group)
 * against a limit of 60: exactly 60 pass, each with its own remaining. */
static void expect_batch_exact(struct fixture *f, struct lh_ratelimit *rl, int local)
{
    struct waitgroup wg;
    char k[LH_RATELIMIT_KEY_MAX];
    int seen[60] = {0};
    int allowed = 0;

    key(f, "batch", k);
    wg_init(&wg);
    for (int i = 0; i < MANY; i++) {
        check_init(&f->many[i]);
        add_rule(&f->many[i], k, 60, f->window, 0);
        f->many[i].wg = &wg;
    }
    for (int i = 0; i < MANY; i++)
        lh_ratelimit_submit(rl, &f->many[i].c);
    wg_wait(&wg, MANY);
    wg_destroy(&wg);

    for (int i = 0; i < MANY; i++) {
        const struct waited *w = &f->many[i];
        assert_int_equal(w->calls, 1);
        expect_mode(w, local);
        expect_reset(&w->c.out[0], f->window);
        if (w->c.allowed) {
            allowed++;
            long rem = w->c.out[0].remaining;
            if (rem < 0 || rem >= 60 || seen[rem]++)
                fail_msg("check %d: remaining %ld repeated or out of range", i, rem);
            assert_int_equal(w->c.out[0].retry_after, 0);
        } else {
            assert_int_equal(w->c.out[0].remaining, 0);
            assert_true(w->c.out[0].retry_after > 0);
        }
    }
    assert_int_equal(allowed, 60);
}

/* One check of a limit rule (100 per window) and a counter rule (hold
 * seconds past limit), as the bot check makes, submitted and waited for. */
static struct waited check_held(struct fixture *f, struct lh_ratelimit *rl, long limit, long window,
                                int hold)
{
    char lk[LH_RATELIMIT_KEY_MAX], ck[LH_RATELIMIT_KEY_MAX];
    struct waited w;

    check_init(&w);
    add_rule(&w, key(f, "held-limit", lk), 100, f->window, 0);
    add_hold_rule(&w, key(f, "held-counter", ck), limit, window, hold);
    submit_wait(rl, &w);
    return w;
}

/* The check that takes the counter past its limit starts the hold; the
 * checks after it are held, and count against none of their rules. */
static void expect_hold(struct fixture *f, struct lh_ratelimit *rl, int local)
{
    char lk[LH_RATELIMIT_KEY_MAX];

    for (long i = 1; i <= 6; i++) {
        struct waited w = check_held(f, rl, 3, f->window, 600);
        expect_mode(&w, local);
        if (i <= 3) {
            assert_true(w.c.allowed);
            assert_int_equal(w.c.held, 0);
            assert_int_equal(w.c.out[1].count, i);
        } else if (i == 4) {
            /* Its limits let it through; the hold refuses it. */
            assert_true(w.c.allowed);
            assert_int_equal(w.c.held, 600);
            assert_int_equal(w.c.out[1].count, 4);
        } else {
            assert_false(w.c.allowed);
            if (w.c.held <= 0 || w.c.held > 600)
                fail_msg("check %ld: held %ld, want 1..600", i, w.c.held);
            assert_int_equal(w.c.out[1].count, 0);
        }
        assert_int_equal(w.c.hold_started, i == 4);
    }
    /* The limit rule counted the four checks before the hold, not the held. */
    struct waited w = check_one(rl, key(f, "held-limit", lk), 100, f->window, 0);
    assert_int_equal(w.c.out[0].remaining, 100 - 4 - 1);
}

/* Sleeps until just past the next multiple of seconds (wall clock). */
static void sleep_past_boundary(long seconds)
{
    double now = lh_wall_seconds();
    double next = (floor(now / (double)seconds) + 1) * (double)seconds + 0.05;
    usleep((useconds_t)((next - now) * 1e6));
}

/* A hold outlasts the counter's window, and ends after its seconds: a
 * counter of 1 per second holding for 2 s. */
static void expect_hold_outlasts_window(struct fixture *f, struct lh_ratelimit *rl, int local)
{
    struct waited w;
    int checks = 0;

    /* Two checks in one second start it (a second may end between two). */
    do {
        w = check_held(f, rl, 1, 1, 2);
        checks++;
    } while (!w.c.hold_started && checks < 3);
    assert_true(w.c.hold_started);
    double started = lh_wall_seconds();
    sleep_past_boundary(1);
    w = check_held(f, rl, 1, 1, 2);
    expect_mode(&w, local);
    if (w.c.held <= 0 || w.c.hold_started)
        fail_msg("not held in the counter's next window: held %ld", w.c.held);
    usleep((useconds_t)((started + 2.05 - lh_wall_seconds()) * 1e6));
    /* Over: the first check of a window again (the held one was not counted). */
    w = check_held(f, rl, 1, 1, 2);
    assert_int_equal(w.c.held, 0);
    assert_int_equal(w.c.out[1].count, 1);
}

/* MANY identical checks at once against a counter of 5: the first 5 pass,
 * the 6th starts the hold, and each of the others is held. */
static void expect_hold_batch(struct fixture *f, struct lh_ratelimit *rl, int local)
{
    struct waitgroup wg;
    char ck[LH_RATELIMIT_KEY_MAX];
    int held = 0, started = 0;

    key(f, "held-batch", ck);
    wg_init(&wg);
    for (int i = 0; i < MANY; i++) {
        check_init(&f->many[i]);
        add_hold_rule(&f->many[i], ck, 5, f->window, 600);
        f->many[i].wg = &wg;
    }
    for (int i = 0; i < MANY; i++)
        lh_ratelimit_submit(rl, &f->many[i].c);
    wg_wait(&wg, MANY);
    wg_destroy(&wg);
    for (int i = 0; i < MANY; i++) {
        const struct waited *w = &f->many[i];
        expect_mode(w, local);
        held += w->c.held > 0;
        started += w->c.hold_started;
        if (w->c.held == 0 && w->c.out[0].count > 5)
            fail_msg("check %d: count %ld past 5 and not held", i, w->c.out[0].count);
    }
    assert_int_equal(held, MANY - 5);
    assert_int_equal(started, 1);
}

/* Every /64 of one IPv6 /48 counts in one bucket when checks are keyed by
 * lh_ipv6_network (what limits.lua's per_network does); another /48 has its
 * own. */
static void expect_network_bucket(struct fixture *f, struct lh_ratelimit *rl)
{
    char address[LH_IP_MAX], network[LH_CLIENT_KEY_MAX], k[LH_RATELIMIT_KEY_MAX];
    int allowed = 0;

    for (int i = 0; i < 8; i++) {
        snprintf(address, sizeof(address), "2001:db8:1:%x::%x", i * 0x100 + i, i + 1);
        assert_int_equal(lh_ipv6_network(address, 48, network), LH_OK);
        assert_string_equal(network, "2001:db8:1::/48");
        allowed += check_one(rl, key(f, network, k), 5, f->window, 0).c.allowed;
    }
    assert_int_equal(allowed, 5);
    assert_int_equal(lh_ipv6_network("2001:db8:2:1::1", 48, network), LH_OK);
    assert_true(check_one(rl, key(f, network, k), 5, f->window, 0).c.allowed);
    /* IPv4 has no network key: such a client keeps its per-address limits. */
    assert_int_equal(lh_ipv6_network("192.0.2.1", 48, network), LH_ERR_INVALID);
    assert_int_equal(lh_ipv6_network("::ffff:192.0.2.1", 48, network), LH_ERR_INVALID);
}

/* -- Local mode ----------------------------------------------------------------- */

static void test_lh_ratelimit_free_accepts_null(void **state)
{
    (void)state;
    lh_ratelimit_free(NULL);
}

static void test_lh_ratelimit_submit_local_exact_limit(void **state)
{
    struct fixture *f = *state;
    f->a = local_limiter();
    expect_exact_limit(f, f->a, f->a, 1);
    assert_int_equal(lh_ratelimit_redis_up(f->a), 0);
}

static void test_lh_ratelimit_submit_local_limits_each_key(void **state)
{
    struct fixture *f = *state;
    char k1[LH_RATELIMIT_KEY_MAX], k2[LH_RATELIMIT_KEY_MAX];

    f->a = local_limiter();
    key(f, "one", k1);
    key(f, "two", k2);
    assert_true(check_one(f->a, k1, 1, f->window, 0).c.allowed);
    assert_false(check_one(f->a, k1, 1, f->window, 0).c.allowed);
    assert_true(check_one(f->a, k2, 1, f->window, 0).c.allowed);
    /* Same key, other window: another count. */
    assert_true(check_one(f->a, k1, 1, quiet_window(f->window - 1), 0).c.allowed);
}

/* A client rotating its headers while Redis is down: each request brings a
 * new per-client key, and all share one per-address key. Filling the store
 * many times over must not reset the per-address count. */
static void test_lh_ratelimit_submit_local_full_store_keeps_busy_keys(void **state)
{
    struct fixture *f = *state;
    struct lh_ratelimit_options o = {.local_max_keys = 100};
    char address[LH_RATELIMIT_KEY_MAX], client[LH_RATELIMIT_KEY_MAX], name[32];
    int allowed = 0;

    f->a = new_limiter(&o);
    key(f, "ip", address);
    for (int i = 0; i < 1000; i++) {
        struct waited w;
        snprintf(name, sizeof(name), "client%d", i);
        check_init(&w);
        add_rule(&w, key(f, name, client), 1000, f->window, 0);
        add_rule(&w, address, 80, f->window, 0);
        submit_wait(f->a, &w);
        allowed += w.c.allowed;
    }
    assert_int_equal(allowed, 80);
    /* A key used once before the flood may be forgotten, never a busy one. */
    assert_false(check_one(f->a, address, 80, f->window, 0).c.allowed);
}

/* Spent at the start of a window whose previous one was full: the sliding
 * estimate has room again long before the window ends, and reset says so
 * (what Retry-After says), not the window's end. */
static void test_lh_ratelimit_submit_local_spent_reset_is_when_room_returns(void **state)
{
    struct fixture *f = *state;
    char k[LH_RATELIMIT_KEY_MAX];

    f->a = local_limiter();
    key(f, "sliding", k);
    for (int i = 0; i < 4; i++)
        assert_true(check_one(f->a, k, 4, 2, 0).c.allowed);
    /* 0.05 s into the next 2-second window: 4 * 1.95 / 2 = 3.9, so 3 used. */
    double now = lh_wall_seconds(), next = (floor(now / 2) + 1) * 2 + 0.05;
    usleep((useconds_t)((next - now) * 1e6));
    struct waited last = check_one(f->a, k, 4, 2, 0);
    assert_true(last.c.allowed);
    assert_int_equal(last.c.out[0].remaining, 0);
    /* 4 * (2 - 0.05 - t) / 2 + 1 < 4 from t = 0.45: 1 s, not the window's 2. */
    assert_int_equal(last.c.out[0].reset, 1);
    struct waited refused = check_one(f->a, k, 4, 2, 0);
    assert_false(refused.c.allowed);
    assert_int_equal(refused.c.out[0].retry_after, refused.c.out[0].reset);
}

static void test_lh_ratelimit_submit_local_counter_never_refuses(void **state)
{
    struct fixture *f = *state;
    f->a = local_limiter();
    expect_counter(f, f->a, 1);
}

static void test_lh_ratelimit_submit_local_counter_counts_refused(void **state)
{
    struct fixture *f = *state;
    f->a = local_limiter();
    expect_counter_counts_refused(f, f->a, 1);
}

static void test_lh_ratelimit_submit_local_rules_decided_together(void **state)
{
    struct fixture *f = *state;
    f->a = local_limiter();
    expect_rules_together(f, f->a, 1);
}

static void test_lh_ratelimit_submit_local_threads_share_limit(void **state)
{
    struct fixture *f = *state;
    f->a = local_limiter();
    expect_threads_share_limit(f, f->a, 1);
}

static void test_lh_ratelimit_submit_local_batch_exact(void **state)
{
    struct fixture *f = *state;
    f->a = local_limiter();
    expect_batch_exact(f, f->a, 1);
}

static void test_lh_ratelimit_submit_local_hold(void **state)
{
    struct fixture *f = *state;
    f->a = local_limiter();
    expect_hold(f, f->a, 1);
}

static void test_lh_ratelimit_submit_local_hold_outlasts_window(void **state)
{
    struct fixture *f = *state;
    f->a = local_limiter();
    expect_hold_outlasts_window(f, f->a, 1);
}

static void test_lh_ratelimit_submit_local_hold_batch(void **state)
{
    struct fixture *f = *state;
    f->a = local_limiter();
    expect_hold_batch(f, f->a, 1);
}

/* A flood of new keys sheds the store, never a running hold. */
static void test_lh_ratelimit_submit_local_full_store_keeps_holds(void **state)
{
    struct fixture *f = *state;
    struct lh_ratelimit_options o = {.local_max_keys = 100};
    char name[32], k[LH_RATELIMIT_KEY_MAX];

    f->a = new_limiter(&o);
    for (int i = 0; i < 2; i++)
        check_held(f, f->a, 1, f->window, 600);
    for (int i = 0; i < 1000; i++) {
        snprintf(name, sizeof(name), "client%d", i);
        check_one(f->a, key(f, name, k), 1000, f->window, 0);
    }
    assert_true(check_held(f, f->a, 1, f->window, 600).c.held > 0);
}

static void test_lh_ratelimit_submit_local_network_bucket(void **state)
{
    struct fixture *f = *state;
    f->a = local_limiter();
    expect_network_bucket(f, f->a);
}

static void test_lh_ratelimit_submit_after_stop_decides_inline(void **state)
{
    struct fixture *f = *state;
    char k[LH_RATELIMIT_KEY_MAX];
    struct waitgroup wg;
    struct waited w;

    f->a = local_limiter();
    key(f, "stopped", k);
    assert_true(check_one(f->a, k, 2, f->window, 0).c.allowed);
    lh_ratelimit_stop(f->a);
    wg_init(&wg);
    for (int i = 0; i < 2; i++) {
        check_init(&w);
        add_rule(&w, k, 2, f->window, 0);
        w.wg = &wg;
        lh_ratelimit_submit(f->a, &w.c);
        /* done() has run on this thread before submit returned. */
        assert_int_equal(w.calls, 1);
        expect_mode(&w, 1);
        /* The count from before the stop still holds. */
        assert_int_equal(w.c.allowed, i == 0);
    }
    wg_destroy(&wg);
}

/* -- Redis ---------------------------------------------------------------------- */

static void test_lh_ratelimit_submit_redis_exact_limit(void **state)
{
    struct fixture *f = *state;
    f->a = redis_limiter();
    expect_exact_limit(f, f->a, f->a, 0);
    assert_int_equal(lh_ratelimit_redis_up(f->a), 1);
}

static void test_lh_ratelimit_submit_redis_counter_never_refuses(void **state)
{
    struct fixture *f = *state;
    f->a = redis_limiter();
    expect_counter(f, f->a, 0);
}

static void test_lh_ratelimit_submit_redis_counter_counts_refused(void **state)
{
    struct fixture *f = *state;
    f->a = redis_limiter();
    expect_counter_counts_refused(f, f->a, 0);
}

static void test_lh_ratelimit_submit_redis_rules_decided_together(void **state)
{
    struct fixture *f = *state;
    f->a = redis_limiter();
    expect_rules_together(f, f->a, 0);
}

static void test_lh_ratelimit_submit_redis_threads_share_limit(void **state)
{
    struct fixture *f = *state;
    f->a = redis_limiter();
    expect_threads_share_limit(f, f->a, 0);
}

static void test_lh_ratelimit_submit_redis_batch_exact(void **state)
{
    struct fixture *f = *state;
    f->a = redis_limiter();
    expect_batch_exact(f, f->a, 0);
}

static void test_lh_ratelimit_submit_redis_instances_share_limit(void **state)
{
    struct fixture *f = *state;
    f->a = redis_limiter();
    f->b = redis_limiter();
    expect_exact_limit(f, f->a, f->b, 0);
}

/* An ACL user's limiter signs in as that user (AUTH user password): with
 * AUTH password alone a Redis with ACLs answers WRONGPASS. */
static void test_lh_ratelimit_submit_redis_acl_user(void **state)
{
    struct fixture *f = *state;
    const struct redis_target *t = need_redis();
    redisContext *c = redis_connect_direct();
    char k[LH_RATELIMIT_KEY_MAX];

    redisReply *r = redisCommand(c, "ACL SETUSER luahost-test-limiter reset on >limiter-pw ~* +@all");
    assert_non_null(r);
    assert_int_not_equal(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);
    struct lh_ratelimit_options o = {
        .redis_host = t->url.host,
        .redis_port = t->url.port,
        .redis_db = t->db,
        .redis_user = "luahost-test-limiter",
        .redis_password = "limiter-pw",
        .timeout = 5.0,
    };
    f->a = new_limiter(&o);
    key(f, "acl-user", k);
    struct waited w = check_one(f->a, k, 50, f->window, 0);
    /* The test Redis's default user takes any password: what tells is the
     * user the limiter's connection is signed in as. */
    r = redisCommand(c, "CLIENT LIST");
    int signed_in = r != NULL && r->type == REDIS_REPLY_STRING &&
                    strstr(r->str, " user=luahost-test-limiter ") != NULL;
    freeReplyObject(r);
    r = redisCommand(c, "ACL DELUSER luahost-test-limiter");
    freeReplyObject(r);
    redisFree(c);
    expect_mode(&w, 0);
    assert_true(signed_in);
}

static void test_lh_ratelimit_submit_redis_instances_share_counter(void **state)
{
    struct fixture *f = *state;
    char k[LH_RATELIMIT_KEY_MAX];

    f->a = redis_limiter();
    f->b = redis_limiter();
    key(f, "shared-counter", k);
    for (long i = 1; i <= 4; i++) {
        struct waited w = check_one(i % 2 ? f->a : f->b, k, 50, f->window, 1);
        expect_mode(&w, 0);
        assert_int_equal(w.c.out[0].count, i);
    }
}

static void test_lh_ratelimit_submit_redis_hold(void **state)
{
    struct fixture *f = *state;
    char ck[LH_RATELIMIT_KEY_MAX];

    f->a = redis_limiter();
    expect_hold(f, f->a, 0);
    /* Kept in Redis, ending with the hold. */
    redisContext *c = redis_connect_direct();
    redisReply *ttl = redisCommand(c, "PTTL %s:block", key(f, "held-counter", ck));
    assert_non_null(ttl);
    assert_int_equal(ttl->type, REDIS_REPLY_INTEGER);
    if (ttl->integer <= 0 || ttl->integer > 600000)
        fail_msg("the hold's key has a PTTL of %lld ms, want 1..600000", ttl->integer);
    freeReplyObject(ttl);
    redisFree(c);
}

static void test_lh_ratelimit_submit_redis_hold_outlasts_window(void **state)
{
    struct fixture *f = *state;
    f->a = redis_limiter();
    expect_hold_outlasts_window(f, f->a, 0);
}

static void test_lh_ratelimit_submit_redis_hold_batch(void **state)
{
    struct fixture *f = *state;
    f->a = redis_limiter();
    expect_hold_batch(f, f->a, 0);
}

/* One instance starts the hold; another refuses the client too. */
static void test_lh_ratelimit_submit_redis_instances_share_hold(void **state)
{
    struct fixture *f = *state;

    f->a = redis_limiter();
    f->b = redis_limiter();
    assert_int_equal(check_held(f, f->a, 1, f->window, 600).c.held, 0);
    assert_true(check_held(f, f->a, 1, f->window, 600).c.hold_started);
    struct waited w = check_held(f, f->b, 1, f->window, 600);
    expect_mode(&w, 0);
    assert_true(w.c.held > 0);
    assert_false(w.c.hold_started);
}

static void test_lh_ratelimit_submit_redis_network_bucket(void **state)
{
    struct fixture *f = *state;
    f->a = redis_limiter();
    expect_network_bucket(f, f->a);
}

/* Every key the limiter writes has a TTL no longer than it needs. */
static void test_lh_ratelimit_submit_redis_keys_expire(void **state)
{
    struct fixture *f = *state;
    char lk[LH_RATELIMIT_KEY_MAX], ck[LH_RATELIMIT_KEY_MAX], pattern[LH_RATELIMIT_KEY_MAX + 1];
    struct waited w;

    f->a = redis_limiter();
    key(f, "expiring", lk);
    key(f, "expiring-counter", ck);
    check_init(&w);
    add_rule(&w, lk, 10, f->window, 0);
    add_rule(&w, ck, 10, f->window, 1);
    submit_wait(f->a, &w);
    expect_mode(&w, 0);

    redisContext *c = redis_connect_direct();
    snprintf(pattern, sizeof(pattern), "%s*", f->prefix);
    redisReply *keys = redisCommand(c, "KEYS %s", pattern);
    assert_non_null(keys);
    assert_int_equal(keys->type, REDIS_REPLY_ARRAY);
    size_t n = keys->elements;
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        const char *name = keys->element[i]->str;
        redisReply *ttl = redisCommand(c, "TTL %s", name);
        /* limit keys live two windows (previous and current), counters one */
        long max = strncmp(name, ck, strlen(ck)) == 0 ? f->window + 1 : 2 * f->window + 1;
        if (ttl == NULL || ttl->type != REDIS_REPLY_INTEGER || ttl->integer <= 0 ||
            ttl->integer > max) {
            print_error("key %s: TTL %lld, want 1..%ld\n", name, ttl ? ttl->integer : -99LL, max);
            bad++;
        }
        freeReplyObject(ttl);
    }
    freeReplyObject(keys);
    redisFree(c);
    assert_int_equal(n, 2);
    assert_int_equal(bad, 0);
}

/* -- Redis unreachable ---------------------------------------------------------- */

static struct lh_ratelimit *closed_port_limiter(void)
{
    struct lh_ratelimit_options o = {
        .redis_host = "127.0.0.1",
        .redis_port = 1, /* nothing listens there */
        .timeout = 0.5,
    };
    return new_limiter(&o);
}

static void test_lh_ratelimit_submit_redis_down_decides_locally(void **state)
{
    struct fixture *f = *state;
    f->a = closed_port_limiter();
    expect_exact_limit(f, f->a, f->a, 1);
    assert_int_equal(lh_ratelimit_redis_up(f->a), 0);
}

static void test_lh_ratelimit_submit_redis_down_batch_exact(void **state)
{
    struct fixture *f = *state;
    f->a = closed_port_limiter();
    expect_batch_exact(f, f->a, 1);
}

static void test_lh_ratelimit_submit_redis_down_rules_decided_together(void **state)
{
    struct fixture *f = *state;
    f->a = closed_port_limiter();
    expect_rules_together(f, f->a, 1);
}

/* The warning says why Redis is unavailable (hiredis's error text). */
static void test_lh_ratelimit_submit_redis_down_logs_the_cause(void **state)
{
    struct fixture *f = *state;
    char path[] = "/tmp/test_ratelimit_log_XXXXXX";
    char text[4096] = "";
    const char *err = NULL;
    char k[LH_RATELIMIT_KEY_MAX];

    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    if (lh_log_open(path, "off", LH_LOG_WARN, &err) != LH_OK)
        fail_msg("lh_log_open: %s", err);
    f->a = closed_port_limiter();
    struct waited w = check_one(f->a, key(f, "logged", k), 1, f->window, 0);
    lh_ratelimit_free(f->a); /* the batcher has logged and stopped */
    f->a = NULL;
    lh_log_close(); /* back to stderr */

    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    size_t n = fread(text, 1, sizeof(text) - 1, fp);
    text[n] = '\0';
    fclose(fp);
    unlink(path);
    expect_mode(&w, 1);
    if (strstr(text, "redis 127.0.0.1:1 unavailable (Connection refused)") == NULL)
        fail_msg("expected the warning to give the cause \"Connection refused\", the log has: %s",
                 text);
}

/* -- Leases ---------------------------------------------------------------------- */

/* nthreads checkers using leases on each limiter, n checks each. */
static struct thread_arg lease_run(struct lh_ratelimit **rls, size_t nrl, int nthreads,
                                   const char *k, long limit, long window, int n)
{
    struct thread_arg proto = {
        .key = k, .limit = limit, .window = window, .n = n, .use_leases = 1};
    return run_checkers(rls, nrl, nthreads, &proto);
}

/* The count Redis holds for a limit key in the current window. */
static long redis_count(const char *k, long window)
{
    redisContext *c = redis_connect_direct();
    long idx = (long)time(NULL) / window;
    redisReply *r = redisCommand(c, "GET %s:%ld:%ld", k, window, idx);
    long n = r && r->type == REDIS_REPLY_STRING ? atol(r->str) : -1;

    freeReplyObject(r);
    redisFree(c);
    return n;
}

/* A busy client's checks are decided from leases, all counted in Redis; the
 * units a lease did not use are given back when the limiter stops. */
static void test_lh_ratelimit_lease_decides_hot_rules_and_gives_back(void **state)
{
    struct fixture *f = *state;
    char k[LH_RATELIMIT_KEY_MAX];

    f->a = redis_limiter();
    key(f, "hot", k);
    struct thread_arg sum = lease_run(&f->a, 1, 8, k, 100000, f->window, 500);
    assert_int_equal(sum.allowed, 8 * 500);
    if (sum.leased == 0)
        fail_msg("no check was decided from a lease");
    lh_ratelimit_free(f->a);
    f->a = NULL;
    assert_int_equal(redis_count(k, f->window), 8 * 500);
}

/* A steady client seldom waits: the next lease is fetched when half of the
 * current one is used. Without that, every lease running out (at most 4096
 * units) would send a check to Redis: 48 or more of 200000. With it, only
 * when the batcher is slower to run than half a lease takes: 0 to 7 on an
 * idle machine, 27 once with the fuzzers running beside; the bound is what
 * no early refill would exceed. */
static void test_lh_ratelimit_lease_refilled_before_it_runs_out(void **state)
{
    struct fixture *f = *state;
    char k[LH_RATELIMIT_KEY_MAX];

    f->a = redis_limiter();
    key(f, "steady", k);
    lease_run(&f->a, 1, 1, k, 1000000, f->window, 2000); /* the lease grows */
    struct thread_arg sum = lease_run(&f->a, 1, 1, k, 1000000, f->window, 200000);
    assert_int_equal(sum.allowed, 200000);
    if (200000 - sum.leased >= 48)
        fail_msg("%d of 200000 checks waited for Redis", 200000 - sum.leased);
}

/* Within 64 of a limit there is no lease: every check goes to Redis, and
 * exactly the limit passes. */
static void test_lh_ratelimit_lease_none_near_a_limit(void **state)
{
    struct fixture *f = *state;
    char k[LH_RATELIMIT_KEY_MAX];

    f->a = redis_limiter();
    key(f, "near", k);
    struct thread_arg sum = lease_run(&f->a, 1, 4, k, 60, f->window, 40);
    assert_int_equal(sum.leased, 0);
    assert_int_equal(sum.allowed, 60);
}

/* Two instances leasing from one limit never pass more than the limit
 * together. Units one instance holds may be refused to the other meanwhile,
 * but both keep asking until the end, so leases are used up. */
static void test_lh_ratelimit_lease_instances_share_limit(void **state)
{
    struct fixture *f = *state;
    char k[LH_RATELIMIT_KEY_MAX];

    f->a = redis_limiter();
    f->b = redis_limiter();
    struct lh_ratelimit *both[] = {f->a, f->b};
    key(f, "shared-lease", k);
    struct thread_arg sum = lease_run(both, 2, 4, k, 1000, f->window, 400);
    if (sum.leased == 0)
        fail_msg("no check was decided from a lease");
    if (sum.allowed > 1000 || sum.allowed < 1000 - 64)
        fail_msg("%d allowed against a shared limit of 1000", sum.allowed);
}

static void test_lh_ratelimit_try_lease_local_only_never(void **state)
{
    struct fixture *f = *state;
    struct waited w;
    char k[LH_RATELIMIT_KEY_MAX];

    f->a = local_limiter();
    key(f, "local-lease", k);
    for (int i = 0; i < 10; i++) {
        check_init(&w);
        add_rule(&w, k, 100000, f->window, 0);
        assert_int_equal(lh_ratelimit_try_lease(f->a, &w.c), 0);
        submit_wait(f->a, &w);
        assert_true(w.c.allowed);
    }
}

/* -- Headers --------------------------------------------------------------------- */

struct emitted {
    char text[512];
};

static void emit_line(void *arg, const char *name, const char *value)
{
    struct emitted *e = arg;
    size_t len = strlen(e->text);
    snprintf(e->text + len, sizeof(e->text) - len, "%s: %s\n", name, value);
}

static void test_lh_ratelimit_emit_headers(void **state)
{
    (void)state;
    struct lh_rate_headers h = {.limit = 500, .remaining = 499, .reset = 1800, .window = 3600};
    struct emitted e = {""};

    lh_ratelimit_emit_headers(&h, 1700000000L, emit_line, &e);
    assert_string_equal(e.text, "X-RateLimit-Limit: 500\n"
                                "X-RateLimit-Remaining: 499\n"
                                "X-RateLimit-Reset: 1700001800\n"
                                "RateLimit-Policy: \"w3600\";q=500;w=3600\n"
                                "RateLimit: \"w3600\";r=499;t=1800\n");

    struct lh_rate_headers none_left = {.limit = 1, .remaining = 0, .reset = 0, .window = 1};
    e.text[0] = '\0';
    lh_ratelimit_emit_headers(&none_left, 0, emit_line, &e);
    assert_string_equal(e.text, "X-RateLimit-Limit: 1\n"
                                "X-RateLimit-Remaining: 0\n"
                                "X-RateLimit-Reset: 0\n"
                                "RateLimit-Policy: \"w1\";q=1;w=1\n"
                                "RateLimit: \"w1\";r=0;t=0\n");
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest parse_tests[] = {
        cmocka_unit_test(test_lh_rate_parse_several_limits),
        cmocka_unit_test(test_lh_rate_parse_one_limit),
        cmocka_unit_test(test_lh_rate_parse_slash_notation),
        cmocka_unit_test(test_lh_rate_parse_multiples_of_a_unit),
        cmocka_unit_test(test_lh_rate_parse_every_unit),
        cmocka_unit_test(test_lh_rate_parse_plural_and_case),
        cmocka_unit_test(test_lh_rate_parse_plural_in_capitals),
        cmocka_unit_test(test_lh_rate_parse_spaces_around_parts),
        cmocka_unit_test(test_lh_rate_parse_as_many_as_the_maximum),
        cmocka_unit_test(test_lh_rate_parse_rejects_empty),
        cmocka_unit_test(test_lh_rate_parse_rejects_garbage),
        cmocka_unit_test(test_lh_rate_parse_rejects_zero),
        cmocka_unit_test(test_lh_rate_parse_rejects_negative),
        cmocka_unit_test(test_lh_rate_parse_rejects_unknown_unit),
        cmocka_unit_test(test_lh_rate_parse_rejects_window_over_366_days),
        cmocka_unit_test(test_lh_rate_parse_names_the_bad_part),
        cmocka_unit_test(test_lh_rate_parse_rejects_too_many_limits),
        cmocka_unit_test(test_lh_rate_parse_respects_max),
        cmocka_unit_test(test_lh_ratelimit_emit_headers),
    };
    const struct CMUnitTest local_tests[] = {
        cmocka_unit_test(test_lh_ratelimit_free_accepts_null),
        T(test_lh_ratelimit_submit_local_exact_limit),
        T(test_lh_ratelimit_submit_local_limits_each_key),
        T(test_lh_ratelimit_submit_local_full_store_keeps_busy_keys),
        T(test_lh_ratelimit_submit_local_spent_reset_is_when_room_returns),
        T(test_lh_ratelimit_submit_local_counter_never_refuses),
        T(test_lh_ratelimit_submit_local_counter_counts_refused),
        T(test_lh_ratelimit_submit_local_rules_decided_together),
        T(test_lh_ratelimit_submit_local_threads_share_limit),
        T(test_lh_ratelimit_submit_local_batch_exact),
        T(test_lh_ratelimit_submit_local_hold),
        T(test_lh_ratelimit_submit_local_hold_outlasts_window),
        T(test_lh_ratelimit_submit_local_hold_batch),
        T(test_lh_ratelimit_submit_local_full_store_keeps_holds),
        T(test_lh_ratelimit_submit_local_network_bucket),
        T(test_lh_ratelimit_submit_after_stop_decides_inline),
        T(test_lh_ratelimit_try_lease_local_only_never),
    };
    const struct CMUnitTest redis_tests[] = {
        T(test_lh_ratelimit_submit_redis_exact_limit),
        T(test_lh_ratelimit_submit_redis_counter_never_refuses),
        T(test_lh_ratelimit_submit_redis_counter_counts_refused),
        T(test_lh_ratelimit_submit_redis_rules_decided_together),
        T(test_lh_ratelimit_submit_redis_threads_share_limit),
        T(test_lh_ratelimit_submit_redis_batch_exact),
        T(test_lh_ratelimit_submit_redis_instances_share_limit),
        T(test_lh_ratelimit_submit_redis_instances_share_counter),
        T(test_lh_ratelimit_submit_redis_acl_user),
        T(test_lh_ratelimit_submit_redis_hold),
        T(test_lh_ratelimit_submit_redis_hold_outlasts_window),
        T(test_lh_ratelimit_submit_redis_hold_batch),
        T(test_lh_ratelimit_submit_redis_instances_share_hold),
        T(test_lh_ratelimit_submit_redis_network_bucket),
        T(test_lh_ratelimit_submit_redis_keys_expire),
        T(test_lh_ratelimit_lease_decides_hot_rules_and_gives_back),
        T(test_lh_ratelimit_lease_refilled_before_it_runs_out),
        T(test_lh_ratelimit_lease_none_near_a_limit),
        T(test_lh_ratelimit_lease_instances_share_limit),
        T(test_lh_ratelimit_submit_redis_down_decides_locally),
        T(test_lh_ratelimit_submit_redis_down_batch_exact),
        T(test_lh_ratelimit_submit_redis_down_rules_decided_together),
        T(test_lh_ratelimit_submit_redis_down_logs_the_cause),
    };
#undef T
    int failed = 0;
    failed += cmocka_run_group_tests_name("lh_rate_parse", parse_tests, NULL, NULL);
    failed += cmocka_run_group_tests_name("ratelimit local", local_tests, NULL, NULL);
    failed += cmocka_run_group_tests_name("ratelimit redis", redis_tests, NULL, NULL);
    return failed;
}
