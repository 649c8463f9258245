/* tests/test_task.c: cmocka tests for include/luahost/task.h. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "luahost/task.h"

/* -- Helpers ----------------------------------------------------------------- */

/* A task that counts its calls; the counters are shared with the test. */
struct counted_task {
    struct lh_task task; /* first, so that a struct lh_task * converts back */
    int index;
    atomic_int runs;
    atomic_int dones;
    atomic_int cancelled_at_done; /* t->cancelled as done() saw it */
    atomic_int done_after_run;    /* done() saw run() already finished */
    pthread_t done_thread;
    struct shared *shared;
};

struct shared {
    atomic_int total_runs;
    atomic_int total_dones;
    atomic_int next_start;          /* position in starts[] */
    int starts[2000];               /* task indexes in the order run() began */
    atomic_int blocker_started;     /* the blocking task is inside run() */
    atomic_int sleep_result;        /* what lh_task_sleep returned, -1 before */
    atomic_int sleepers_done;
    atomic_int sleep_results_closed;
    atomic_int pool_seen_ok;        /* t->pool was the pool inside run() */
    struct lh_task_pool *pool;
};

static void counted_run(struct lh_task *t)
{
    struct counted_task *ct = (struct counted_task *)t;
    struct shared *s = ct->shared;
    int at = atomic_fetch_add(&s->next_start, 1);
    if (at >= 0 && (size_t)at < sizeof(s->starts) / sizeof(s->starts[0]))
        s->starts[at] = ct->index;
    if (t->pool == s->pool)
        atomic_fetch_add(&s->pool_seen_ok, 1);
    atomic_fetch_add(&ct->runs, 1);
    atomic_fetch_add(&s->total_runs, 1);
}

static void counted_done(struct lh_task *t)
{
    struct counted_task *ct = (struct counted_task *)t;
    ct->done_thread = pthread_self();
    atomic_store(&ct->cancelled_at_done, t->cancelled);
    atomic_store(&ct->done_after_run, atomic_load(&ct->runs));
    atomic_fetch_add(&ct->dones, 1);
    atomic_fetch_add(&ct->shared->total_dones, 1);
}

/* run() for a task that holds its thread in lh_task_sleep until the pool stops. */
static void blocking_run(struct lh_task *t)
{
    struct counted_task *ct = (struct counted_task *)t;
    atomic_fetch_add(&ct->runs, 1);
    atomic_store(&ct->shared->blocker_started, 1);
    /* Long enough that only a stop can end it within the test's patience. */
    enum lh_status st = lh_task_sleep(t->pool, 30.0);
    atomic_store(&ct->shared->sleep_result, (int)st);
}

static void sleeper_run(struct lh_task *t)
{
    struct counted_task *ct = (struct counted_task *)t;
    atomic_fetch_add(&ct->runs, 1);
    atomic_fetch_add(&ct->shared->blocker_started, 1);
    if (lh_task_sleep(t->pool, 30.0) == LH_ERR_CLOSED)
        atomic_fetch_add(&ct->shared->sleep_results_closed, 1);
    atomic_fetch_add(&ct->shared->sleepers_done, 1);
}

static void short_sleep_run(struct lh_task *t)
{
    struct counted_task *ct = (struct counted_task *)t;
    atomic_fetch_add(&ct->runs, 1);
    atomic_store(&ct->shared->sleep_result, (int)lh_task_sleep(t->pool, 0.01));
}

static void init_task(struct counted_task *ct, struct shared *s, int index,
                      void (*run)(struct lh_task *))
{
    memset(ct, 0, sizeof(*ct));
    ct->task.run = run;
    ct->task.done = counted_done;
    ct->task.cancelled = -1; /* lh_task_submit must reset it */
    ct->index = index;
    ct->shared = s;
}

static struct shared *new_shared(void)
{
    struct shared *s = calloc(1, sizeof(*s));
    assert_non_null(s);
    atomic_store(&s->sleep_result, -1);
    return s;
}

/* Waits, polling, until *v reaches want; gives up after about 30 s. This
 * bounds a hang; it does not measure time. */
static int wait_for(atomic_int *v, int want)
{
    const struct timespec tick = {0, 1000 * 1000};
    for (int i = 0; i < 30000; i++) {
        if (atomic_load(v) >= want)
            return 1;
        nanosleep(&tick, NULL);
    }
    return atomic_load(v) >= want;
}

/* -- Tests ------------------------------------------------------------------- */

static void test_lh_task_pool_new_zero_threads_fails(void **state)
{
    const char *err = NULL;
    (void)state;

    assert_null(lh_task_pool_new(0, 0, &err));
    assert_non_null(err);
    assert_true(err[0] != '\0');
}

static void test_lh_task_pool_free_null_noop(void **state)
{
    (void)state;
    lh_task_pool_free(NULL); /* must not crash */
}

static void test_lh_task_pool_new_and_free_idle(void **state)
{
    const char *err = NULL;
    (void)state;

    struct lh_task_pool *p = lh_task_pool_new(3, 0, &err);
    assert_non_null(p);
    lh_task_pool_free(p); /* stops idle threads; valgrind checks the rest */
}

static void test_lh_task_submit_runs_each_task_once(void **state)
{
    enum { N = 1000 };
    const char *err = NULL;
    struct shared *s = new_shared();
    struct counted_task *tasks = calloc(N, sizeof(*tasks));
    (void)state;

    assert_non_null(tasks);
    s->pool = lh_task_pool_new(4, 0, &err);
    assert_non_null(s->pool);
    for (int i = 0; i < N; i++) {
        init_task(&tasks[i], s, i, counted_run);
        lh_task_submit(s->pool, &tasks[i].task);
    }
    assert_true(wait_for(&s->total_dones, N));
    lh_task_pool_free(s->pool);

    assert_int_equal(atomic_load(&s->total_runs), N);
    assert_int_equal(atomic_load(&s->total_dones), N);
    assert_int_equal(atomic_load(&s->pool_seen_ok), N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(atomic_load(&tasks[i].runs), 1);
        assert_int_equal(atomic_load(&tasks[i].dones), 1);
        assert_int_equal(atomic_load(&tasks[i].cancelled_at_done), 0);
        assert_int_equal(tasks[i].task.cancelled, 0);
        assert_int_equal(atomic_load(&tasks[i].done_after_run), 1); /* done follows run */
        assert_ptr_equal(tasks[i].task.pool, s->pool);
    }
    free(tasks);
    free(s);
}

static void test_lh_task_submit_fifo_with_one_thread(void **state)
{
    enum { N = 200 };
    const char *err = NULL;
    struct shared *s = new_shared();
    struct counted_task *tasks = calloc(N + 1, sizeof(*tasks));
    struct counted_task *gate = &tasks[N];
    (void)state;

    assert_non_null(tasks);
    s->pool = lh_task_pool_new(1, 0, &err);
    assert_non_null(s->pool);
    /* A first task occupies the thread so that all N queue up behind it. */
    init_task(gate, s, -1, short_sleep_run);
    lh_task_submit(s->pool, &gate->task);
    for (int i = 0; i < N; i++) {
        init_task(&tasks[i], s, i, counted_run);
        lh_task_submit(s->pool, &tasks[i].task);
    }
    assert_true(wait_for(&s->total_dones, N + 1));
    lh_task_pool_free(s->pool);

    assert_int_equal(atomic_load(&s->next_start), N);
    for (int i = 0; i < N; i++) {
        if (s->starts[i] != i)
            fail_msg("start #%d was task %d, expected %d", i, s->starts[i], i);
    }
    free(tasks);
    free(s);
}

static void test_lh_task_pool_stop_cancels_queued(void **state)
{
    enum { QUEUED = 10 };
    const char *err = NULL;
    struct shared *s = new_shared();
    struct counted_task blocker, queued[QUEUED];
    (void)state;

    s->pool = lh_task_pool_new(1, 0, &err);
    assert_non_null(s->pool);
    init_task(&blocker, s, -1, blocking_run);
    lh_task_submit(s->pool, &blocker.task);
    /* Once the only thread is busy, the rest stay queued. */
    assert_true(wait_for(&s->blocker_started, 1));
    for (int i = 0; i < QUEUED; i++) {
        init_task(&queued[i], s, i, counted_run);
        lh_task_submit(s->pool, &queued[i].task);
    }
    struct lh_task_pool_stats st;
    lh_task_pool_stats(s->pool, &st);
    assert_int_equal(st.threads, 1);
    assert_int_equal(st.busy, 1);
    assert_int_equal(st.queued, QUEUED);
    lh_task_pool_stop(s->pool);
    lh_task_pool_stats(s->pool, &st);
    assert_int_equal(st.busy, 0);
    assert_int_equal(st.queued, 0);

    /* stop returns after every done(): nothing to wait for. */
    assert_int_equal(atomic_load(&blocker.runs), 1);
    assert_int_equal(atomic_load(&blocker.dones), 1);
    assert_int_equal(atomic_load(&blocker.cancelled_at_done), 0);
    assert_int_equal(atomic_load(&s->sleep_result), LH_ERR_CLOSED);
    for (int i = 0; i < QUEUED; i++) {
        assert_int_equal(atomic_load(&queued[i].runs), 0);
        assert_int_equal(atomic_load(&queued[i].dones), 1);
        assert_int_equal(atomic_load(&queued[i].cancelled_at_done), 1);
    }
    assert_int_equal(atomic_load(&s->total_runs), 0);
    assert_int_equal(atomic_load(&s->total_dones), 1 + QUEUED);

    lh_task_pool_free(s->pool);
    /* free after stop calls no done() a second time. */
    assert_int_equal(atomic_load(&s->total_dones), 1 + QUEUED);
    free(s);
}

static void test_lh_task_pool_stop_interrupts_every_sleep(void **state)
{
    enum { THREADS = 3 };
    const char *err = NULL;
    struct shared *s = new_shared();
    struct counted_task sleepers[THREADS];
    (void)state;

    s->pool = lh_task_pool_new(THREADS, 0, &err);
    assert_non_null(s->pool);
    for (int i = 0; i < THREADS; i++) {
        init_task(&sleepers[i], s, i, sleeper_run);
        lh_task_submit(s->pool, &sleepers[i].task);
    }
    assert_true(wait_for(&s->blocker_started, THREADS));
    lh_task_pool_stop(s->pool);

    assert_int_equal(atomic_load(&s->sleepers_done), THREADS);
    assert_int_equal(atomic_load(&s->sleep_results_closed), THREADS);
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(atomic_load(&sleepers[i].dones), 1);
        assert_int_equal(atomic_load(&sleepers[i].cancelled_at_done), 0);
    }
    lh_task_pool_free(s->pool);
    free(s);
}

static void test_lh_task_submit_after_stop_cancels_inline(void **state)
{
    const char *err = NULL;
    struct shared *s = new_shared();
    struct counted_task t;
    (void)state;

    s->pool = lh_task_pool_new(2, 0, &err);
    assert_non_null(s->pool);
    lh_task_pool_stop(s->pool);

    init_task(&t, s, 0, counted_run);
    lh_task_submit(s->pool, &t.task);
    /* done() already ran, on this thread, before submit returned. */
    assert_int_equal(atomic_load(&t.dones), 1);
    assert_int_equal(atomic_load(&t.runs), 0);
    assert_int_equal(atomic_load(&t.cancelled_at_done), 1);
    assert_int_equal(t.task.cancelled, 1);
    assert_true(pthread_equal(t.done_thread, pthread_self()));

    lh_task_pool_free(s->pool);
    assert_int_equal(atomic_load(&t.dones), 1);
    free(s);
}

static void test_lh_task_sleep_in_pool_full_time_ok(void **state)
{
    const char *err = NULL;
    struct shared *s = new_shared();
    struct counted_task t;
    (void)state;

    s->pool = lh_task_pool_new(1, 0, &err);
    assert_non_null(s->pool);
    init_task(&t, s, 0, short_sleep_run);
    lh_task_submit(s->pool, &t.task);
    assert_true(wait_for(&t.dones, 1));
    assert_int_equal(atomic_load(&s->sleep_result), LH_OK);
    assert_int_equal(atomic_load(&t.cancelled_at_done), 0);
    lh_task_pool_free(s->pool);
    free(s);
}

static void test_lh_task_sleep_null_pool_ok(void **state)
{
    (void)state;
    assert_int_equal(lh_task_sleep(NULL, 0.01), LH_OK);
    assert_int_equal(lh_task_sleep(NULL, 0), LH_OK);
}

/* done() that also records the order of the dones in starts[]. */
static void ordered_done(struct lh_task *t)
{
    struct counted_task *ct = (struct counted_task *)t;
    int at = atomic_fetch_add(&ct->shared->next_start, 1);
    if (at >= 0 && (size_t)at < sizeof(ct->shared->starts) / sizeof(ct->shared->starts[0]))
        ct->shared->starts[at] = ct->index;
    counted_done(t);
}

/* Waits end in due order, from the timer thread, without run() and without
 * taking a pool thread: with the one thread held, they still end. */
static void test_lh_task_after_fires_in_due_order_without_a_thread(void **state)
{
    const char *err = NULL;
    struct shared *s = new_shared();
    struct counted_task blocker, waits[4];
    const double seconds[4] = {0.4, 0.1, 0.3, 0.2};
    (void)state;

    struct lh_task_pool *p = lh_task_pool_new(1, 0, &err);
    assert_non_null(p);
    s->pool = p;
    init_task(&blocker, s, 100, blocking_run);
    lh_task_submit(p, &blocker.task);
    assert_true(wait_for(&s->blocker_started, 1));
    for (int i = 0; i < 4; i++) {
        init_task(&waits[i], s, i, counted_run); /* run() must not be called */
        waits[i].task.done = ordered_done;
        lh_task_after(p, &waits[i].task, seconds[i]);
    }
    struct lh_task_pool_stats st;
    lh_task_pool_stats(p, &st);
    assert_int_equal(st.busy, 1);
    assert_in_range(st.timers, 1, 4);
    assert_true(wait_for(&s->total_dones, 4));
    for (int i = 0; i < 4; i++) {
        assert_int_equal(atomic_load(&waits[i].runs), 0);
        assert_int_equal(atomic_load(&waits[i].cancelled_at_done), 0);
        assert_false(pthread_equal(waits[i].done_thread, pthread_self()));
    }
    const int due_order[4] = {1, 3, 2, 0};
    for (int i = 0; i < 4; i++)
        assert_int_equal(s->starts[i], due_order[i]);
    lh_task_pool_stats(p, &st);
    assert_int_equal(st.timers, 0);
    lh_task_pool_free(p); /* ends the blocker */
    free(s);
}

/* A stop cancels every pending wait at once; a wait asked for afterwards is
 * cancelled on the caller's thread. */
static void test_lh_task_pool_stop_cancels_waits(void **state)
{
    const char *err = NULL;
    struct shared *s = new_shared();
    struct counted_task waits[3], late;
    (void)state;

    struct lh_task_pool *p = lh_task_pool_new(2, 0, &err);
    assert_non_null(p);
    for (int i = 0; i < 3; i++) {
        init_task(&waits[i], s, i, counted_run);
        lh_task_after(p, &waits[i].task, 30.0);
    }
    lh_task_pool_stop(p);
    assert_int_equal(atomic_load(&s->total_dones), 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(atomic_load(&waits[i].dones), 1);
        assert_int_equal(atomic_load(&waits[i].cancelled_at_done), 1);
    }
    init_task(&late, s, 3, counted_run);
    lh_task_after(p, &late.task, 0.01);
    assert_int_equal(atomic_load(&late.dones), 1);
    assert_int_equal(atomic_load(&late.cancelled_at_done), 1);
    assert_true(pthread_equal(late.done_thread, pthread_self()));
    lh_task_pool_free(p);
    free(s);
}

static void test_lh_task_pool_stop_twice_safe(void **state)
{
    const char *err = NULL;
    (void)state;

    struct lh_task_pool *p = lh_task_pool_new(2, 0, &err);
    assert_non_null(p);
    lh_task_pool_stop(p);
    lh_task_pool_stop(p);
    lh_task_pool_free(p);
}

/* done() records whether the task was refused. */
static void refused_done(struct lh_task *t)
{
    struct counted_task *ct = (struct counted_task *)t;
    atomic_store(&ct->cancelled_at_done, t->cancelled + 2 * t->refused);
    atomic_fetch_add(&ct->dones, 1);
}

static void test_lh_task_submit_refuses_beyond_max_queued(void **state)
{
    const char *err = NULL;
    struct shared *s = new_shared();
    struct counted_task blocker, queued[3];
    (void)state;

    s->pool = lh_task_pool_new(1, 0, &err);
    assert_non_null(s->pool);
    lh_task_pool_set_max_queued(s->pool, 2);
    init_task(&blocker, s, -1, blocking_run);
    lh_task_submit(s->pool, &blocker.task);
    assert_true(wait_for(&s->blocker_started, 1)); /* running: not counted as queued */
    assert_false(lh_task_pool_full(s->pool));
    for (int i = 0; i < 3; i++) {
        init_task(&queued[i], s, i, counted_run);
        queued[i].task.done = refused_done;
        lh_task_submit(s->pool, &queued[i].task);
    }
    /* The third found the queue full: done() ran at once, cancelled and refused. */
    assert_int_equal(atomic_load(&queued[2].dones), 1);
    assert_int_equal(atomic_load(&queued[2].cancelled_at_done), 1 + 2);
    assert_int_equal(atomic_load(&queued[0].dones), 0);
    assert_int_equal(atomic_load(&queued[1].dones), 0);
    struct lh_task_pool_stats st;
    lh_task_pool_stats(s->pool, &st);
    assert_int_equal(st.queued, 2);
    assert_true(lh_task_pool_full(s->pool));

    /* Stopping cancels the two that waited, without calling them refused. */
    lh_task_pool_stop(s->pool);
    assert_true(lh_task_pool_full(s->pool)); /* stopping: nothing more runs */
    lh_task_pool_stats(s->pool, &st);
    assert_int_equal(st.threads, 0);
    assert_int_equal(atomic_load(&queued[0].cancelled_at_done), 1);
    assert_int_equal(atomic_load(&queued[1].cancelled_at_done), 1);
    lh_task_pool_free(s->pool);
    free(s);
}

static void test_lh_task_submit_counts_idle_threads_before_refusing(void **state)
{
    const char *err = NULL;
    struct shared *s = new_shared();
    struct counted_task t[3];
    (void)state;

    /* Two idle threads and room for one waiting: three submitted back to
     * back all run, however soon the threads wake to take them. */
    s->pool = lh_task_pool_new(2, 10, &err);
    assert_non_null(s->pool);
    lh_task_pool_set_max_queued(s->pool, 1);
    for (int i = 0; i < 3; i++) {
        init_task(&t[i], s, i, counted_run);
        lh_task_submit(s->pool, &t[i].task);
    }
    assert_true(wait_for(&s->total_dones, 3));
    for (int i = 0; i < 3; i++) {
        assert_int_equal(atomic_load(&t[i].runs), 1);
        assert_int_equal(atomic_load(&t[i].cancelled_at_done), 0);
    }
    lh_task_pool_free(s->pool);
    free(s);
}

/* A task that reads the nice value of the thread it runs on. */
struct priority_task {
    struct lh_task task;
    atomic_int nice;
    atomic_int done;
};

static int thread_nice(void)
{
    errno = 0;
    int n = getpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid));
    assert_int_equal(errno, 0);
    return n;
}

static void priority_run(struct lh_task *t)
{
    atomic_store(&((struct priority_task *)t)->nice, thread_nice());
}

static void priority_done(struct lh_task *t)
{
    atomic_store(&((struct priority_task *)t)->done, 1);
}

/* The nice value a task of a pool made with nice runs at. */
static int nice_inside_pool(int nice)
{
    const char *err = NULL;
    struct priority_task t = {.task = {.run = priority_run, .done = priority_done}, .nice = -100};
    struct lh_task_pool *p = lh_task_pool_new(1, nice, &err);
    assert_non_null(p);
    lh_task_submit(p, &t.task);
    for (int i = 0; i < 5000 && !atomic_load(&t.done); i++)
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    lh_task_pool_free(p);
    assert_true(atomic_load(&t.done));
    return atomic_load(&t.nice);
}

/* Whether this system lets a thread lower its own priority (a sandbox may
 * not; the pool then runs at normal priority, as documented). */
static void *try_lowering(void *arg)
{
    errno = 0;
    int n = getpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid));
    *(int *)arg = errno == 0 && setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), n + 1) == 0;
    return NULL;
}

static void test_lh_task_pool_new_nice_lowers_only_its_threads(void **state)
{
    (void)state;
    int allowed = 0;
    pthread_t probe;
    assert_int_equal(pthread_create(&probe, NULL, try_lowering, &allowed), 0);
    pthread_join(probe, NULL);
    if (!allowed)
        skip();
    int base = thread_nice();
    int expected = base + 5 > 19 ? 19 : base + 5;

    assert_int_equal(nice_inside_pool(5), expected);
    assert_int_equal(thread_nice(), base); /* the caller keeps its priority */
    assert_int_equal(nice_inside_pool(0), base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lh_task_pool_new_zero_threads_fails),
        cmocka_unit_test(test_lh_task_pool_free_null_noop),
        cmocka_unit_test(test_lh_task_pool_new_and_free_idle),
        cmocka_unit_test(test_lh_task_submit_runs_each_task_once),
        cmocka_unit_test(test_lh_task_submit_fifo_with_one_thread),
        cmocka_unit_test(test_lh_task_pool_stop_cancels_queued),
        cmocka_unit_test(test_lh_task_pool_stop_interrupts_every_sleep),
        cmocka_unit_test(test_lh_task_submit_after_stop_cancels_inline),
        cmocka_unit_test(test_lh_task_sleep_in_pool_full_time_ok),
        cmocka_unit_test(test_lh_task_sleep_null_pool_ok),
        cmocka_unit_test(test_lh_task_after_fires_in_due_order_without_a_thread),
        cmocka_unit_test(test_lh_task_pool_stop_cancels_waits),
        cmocka_unit_test(test_lh_task_pool_stop_twice_safe),
        cmocka_unit_test(test_lh_task_pool_new_nice_lowers_only_its_threads),
        cmocka_unit_test(test_lh_task_submit_refuses_beyond_max_queued),
        cmocka_unit_test(test_lh_task_submit_counts_idle_threads_before_refusing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
