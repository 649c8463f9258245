/* src/task.c: the pools of blocking and of CPU-heavy work.
 *
 * DESIGN
 * ------
 * One mutex guards the FIFO queue and the stopping flag; `work` wakes idle
 * threads, `stop` wakes tasks inside lh_task_sleep (a separate condition, so
 * that a submit never spends its signal on a sleeper). run() and done() are called
 * without the lock. Stopping cancels what is queued so that every submitted
 * task gets exactly one done(): the HTTP layer relies on that to resume each
 * suspended connection before the daemon stops.
 *
 * Waits (lh_task_after) are a list sorted by due time, soonest first, kept
 * under the same lock; one timer thread sleeps on `timer` until the first is
 * due and calls done() without the lock. A new wait usually falls due after
 * every other (the same sleep asked again), so it is appended in O(1);
 * otherwise it is inserted by a scan, bounded by the connection limit.
 */
#include "luahost/task.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

struct lh_task_pool {
    pthread_mutex_t lock;
    pthread_cond_t work;
    pthread_cond_t stop;
    pthread_cond_t timer;
    struct lh_task *head, *tail;
    struct lh_task *timers, *last_timer; /* by due time */
    int stopping;
    int stopped;
    unsigned nthreads;
    unsigned busy, queued, max_queued, waiting;
    int nice;
    int timer_started;
    pthread_t *threads;
    pthread_t timer_thread;
};

/* Takes the first wait off the list; the lock is held. */
static struct lh_task *pop_timer_locked(struct lh_task_pool *p)
{
    struct lh_task *t = p->timers;
    p->timers = t->_next;
    if (p->timers == NULL)
        p->last_timer = NULL;
    p->waiting--;
    return t;
}

static void *timer_main(void *arg)
{
    struct lh_task_pool *p = arg;

    pthread_mutex_lock(&p->lock);
    while (!p->stopping) {
        if (p->timers == NULL) {
            pthread_cond_wait(&p->timer, &p->lock);
        } else if (p->timers->_due <= lh_monotonic_seconds()) {
            struct lh_task *t = pop_timer_locked(p);
            pthread_mutex_unlock(&p->lock);
            t->done(t);
            pthread_mutex_lock(&p->lock);
        } else {
            struct timespec until = lh_timespec_of(p->timers->_due);
            pthread_cond_timedwait(&p->timer, &p->lock, &until);
        }
    }
    while (p->timers != NULL) { /* stopping: every wait ends now, cancelled */
        struct lh_task *t = pop_timer_locked(p);
        pthread_mutex_unlock(&p->lock);
        t->cancelled = 1;
        t->done(t);
        pthread_mutex_lock(&p->lock);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

/* On Linux, PRIO_PROCESS with a thread id sets that one thread's nice value.
 * Raising it needs no privilege; if it fails the pool works all the same. */
static void lower_priority(int nice)
{
    id_t tid = (id_t)syscall(SYS_gettid);

    errno = 0;
    int current = getpriority(PRIO_PROCESS, tid);
    if (errno == 0)
        (void)setpriority(PRIO_PROCESS, tid, current + nice);
}

static void *thread_main(void *arg)
{
    struct lh_task_pool *p = arg;

    if (p->nice > 0)
        lower_priority(p->nice);
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (p->head == NULL && !p->stopping)
            pthread_cond_wait(&p->work, &p->lock);
        struct lh_task *t = p->head;
        if (t == NULL)
            break; /* stopping and nothing left */
        p->head = t->_next;
        if (p->head == NULL)
            p->tail = NULL;
        p->queued--;
        p->busy++;
        t->cancelled = p->stopping;
        pthread_mutex_unlock(&p->lock);
        if (!t->cancelled)
            t->run(t);
        t->done(t);
        pthread_mutex_lock(&p->lock);
        p->busy--;
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

struct lh_task_pool *lh_task_pool_new(unsigned threads, int nice, const char **err)
{
    struct lh_task_pool *p = calloc(1, sizeof(*p));
    pthread_attr_t attr;

    if (p == NULL || threads == 0) {
        free(p);
        *err = threads == 0 ? "a task pool needs at least one thread" : "out of memory";
        return NULL;
    }
    p->threads = calloc(threads, sizeof(pthread_t));
    if (p->threads == NULL) {
        free(p);
        *err = "out of memory";
        return NULL;
    }
    p->nice = nice;
    pthread_condattr_t monotonic;
    pthread_condattr_init(&monotonic);
    pthread_condattr_setclock(&monotonic, CLOCK_MONOTONIC);
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->work, NULL);
    pthread_cond_init(&p->stop, NULL);
    pthread_cond_init(&p->timer, &monotonic);
    pthread_condattr_destroy(&monotonic);
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    if (pthread_create(&p->timer_thread, &attr, timer_main, p) != 0) {
        pthread_attr_destroy(&attr);
        lh_task_pool_free(p);
        *err = "cannot start the timer thread";
        return NULL;
    }
    p->timer_started = 1;
    for (unsigned i = 0; i < threads; i++) {
        if (pthread_create(&p->threads[i], &attr, thread_main, p) != 0) {
            pthread_attr_destroy(&attr);
            lh_task_pool_free(p);
            *err = "cannot start task threads";
            return NULL;
        }
        p->nthreads++;
    }
    pthread_attr_destroy(&attr);
    return p;
}

/* Whether max_queued tasks already wait beyond the idle threads: a task
 * just handed to an idle thread that has not yet taken it is not waiting. */
static int full_locked(const struct lh_task_pool *p)
{
    return p->max_queued && p->queued + p->busy >= p->nthreads + p->max_queued;
}

void lh_task_submit(struct lh_task_pool *p, struct lh_task *t)
{
    t->pool = p;
    t->_next = NULL;
    t->cancelled = 0;
    t->refused = 0;
    pthread_mutex_lock(&p->lock);
    if (p->stopping || full_locked(p)) {
        t->refused = !p->stopping;
        pthread_mutex_unlock(&p->lock);
        t->cancelled = 1;
        t->done(t);
        return;
    }
    if (p->tail)
        p->tail->_next = t;
    else
        p->head = t;
    p->tail = t;
    p->queued++;
    pthread_cond_signal(&p->work);
    pthread_mutex_unlock(&p->lock);
}

void lh_task_after(struct lh_task_pool *p, struct lh_task *t, double seconds)
{
    t->pool = p;
    t->cancelled = 0;
    t->refused = 0;
    t->_due = lh_monotonic_seconds() + (seconds > 0 ? seconds : 0);
    pthread_mutex_lock(&p->lock);
    if (p->stopping) {
        pthread_mutex_unlock(&p->lock);
        t->cancelled = 1;
        t->done(t);
        return;
    }
    struct lh_task **at = &p->timers;
    if (p->last_timer != NULL && p->last_timer->_due <= t->_due)
        at = &p->last_timer->_next;
    else
        while (*at != NULL && (*at)->_due <= t->_due)
            at = &(*at)->_next;
    t->_next = *at;
    *at = t;
    if (t->_next == NULL)
        p->last_timer = t;
    p->waiting++;
    if (p->timers == t) /* sooner than the timer thread's wait */
        pthread_cond_signal(&p->timer);
    pthread_mutex_unlock(&p->lock);
}

enum lh_status lh_task_sleep(struct lh_task_pool *p, double seconds)
{
    struct timespec until;
    enum lh_status st = LH_OK;

    if (p == NULL) { /* run inline, outside any pool */
        struct timespec ts = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
        while (seconds > 0 && nanosleep(&ts, &ts) != 0 && errno == EINTR)
            ;
        return LH_OK;
    }
    clock_gettime(CLOCK_REALTIME, &until);
    if (seconds > 0) {
        double whole = (double)(time_t)seconds;
        until.tv_sec += (time_t)seconds;
        until.tv_nsec += (long)((seconds - whole) * 1e9);
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
    }
    pthread_mutex_lock(&p->lock);
    while (!p->stopping) {
        if (pthread_cond_timedwait(&p->stop, &p->lock, &until) == ETIMEDOUT)
            break;
    }
    if (p->stopping)
        st = LH_ERR_CLOSED;
    pthread_mutex_unlock(&p->lock);
    return st;
}

void lh_task_pool_set_max_queued(struct lh_task_pool *p, unsigned max)
{
    pthread_mutex_lock(&p->lock);
    p->max_queued = max;
    pthread_mutex_unlock(&p->lock);
}

int lh_task_pool_full(struct lh_task_pool *p)
{
    pthread_mutex_lock(&p->lock);
    int full = p->stopping || full_locked(p);
    pthread_mutex_unlock(&p->lock);
    return full;
}

void lh_task_pool_stats(struct lh_task_pool *p, struct lh_task_pool_stats *out)
{
    pthread_mutex_lock(&p->lock);
    out->threads = p->nthreads;
    out->busy = p->busy;
    out->queued = p->queued;
    out->timers = p->waiting;
    pthread_mutex_unlock(&p->lock);
}

void lh_task_pool_stop(struct lh_task_pool *p)
{
    pthread_mutex_lock(&p->lock);
    if (p->stopped) {
        pthread_mutex_unlock(&p->lock);
        return;
    }
    p->stopping = 1;
    p->stopped = 1;
    pthread_cond_broadcast(&p->work);
    pthread_cond_broadcast(&p->stop);
    pthread_cond_signal(&p->timer);
    pthread_mutex_unlock(&p->lock);
    /* The threads drain the queue and the waits, cancelling, before they exit. */
    for (unsigned i = 0; i < p->nthreads; i++)
        pthread_join(p->threads[i], NULL);
    if (p->timer_started)
        pthread_join(p->timer_thread, NULL);
    pthread_mutex_lock(&p->lock);
    p->nthreads = 0; /* for the stats: none left */
    pthread_mutex_unlock(&p->lock);
}

void lh_task_pool_free(struct lh_task_pool *p)
{
    if (p == NULL)
        return;
    lh_task_pool_stop(p);
    pthread_cond_destroy(&p->work);
    pthread_cond_destroy(&p->stop);
    pthread_cond_destroy(&p->timer);
    pthread_mutex_destroy(&p->lock);
    free(p->threads);
    free(p);
}
