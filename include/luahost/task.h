/* include/luahost/task.h: a fixed pool of threads that run blocking work
 * (database and Redis calls) or CPU-heavy work (password hashing) away from
 * the HTTP worker threads, and a timer thread for waits (sleeps) that need
 * no thread of their own.
 * Thread safety: submit from any thread; free from one thread, once. */
#ifndef LUAHOST_TASK_H
#define LUAHOST_TASK_H
#include "luahost/common.h"

struct lh_task_pool; /* opaque */

/* A unit of work, owned by the submitter and embedded in its own struct.
 * run() is called on a pool thread unless the pool is stopping, and done()
 * always follows, on the same thread, with cancelled set when run() was
 * skipped. After done() starts, the pool no longer touches the task. */
struct lh_task {
    void (*run)(struct lh_task *t);
    void (*done)(struct lh_task *t);
    struct lh_task_pool *pool; /* set by lh_task_submit */
    int cancelled;
    struct lh_task *_next;
    double _due; /* lh_task_after: when, on the monotonic clock */
    int refused; /* with cancelled: the pool's queue was full */
};

/* Starts threads; NULL and *err (static text) on failure. nice > 0 lowers
 * the threads' CPU priority by that much (Linux nice steps, best effort):
 * CPU-heavy tasks then yield to the HTTP threads instead of slowing every
 * request down. */
struct lh_task_pool *lh_task_pool_new(unsigned threads, int nice, const char **err);
/* Queues t; tasks start in submission order. Once the pool is stopping, or
 * when its queue is full, the task is cancelled (and, for a full queue,
 * refused): done() runs at once on the caller's thread. */
void lh_task_submit(struct lh_task_pool *p, struct lh_task *t);
/* Calls t->done() after seconds, from the pool's timer thread, without
 * taking a pool thread meanwhile (run is not called): a wait that costs a
 * request nothing but its task. Cancelled (done() at once) when the pool
 * stops first; once it is stopping, done() runs at once on the caller's
 * thread. */
void lh_task_after(struct lh_task_pool *p, struct lh_task *t, double seconds);
/* At most max tasks wait for a thread (tasks an idle thread is about to
 * take do not count), 0 for no limit (the default). */
void lh_task_pool_set_max_queued(struct lh_task_pool *p, unsigned max);
/* Whether lh_task_submit would refuse a task now (queue full or stopping):
 * for callers that would rather not start what cannot run. */
int lh_task_pool_full(struct lh_task_pool *p);
/* For run(): sleeps up to seconds, returning early with LH_ERR_CLOSED when
 * the pool starts stopping; LH_OK after the full time. With p NULL (a task
 * run inline, outside a pool) it simply sleeps. */
enum lh_status lh_task_sleep(struct lh_task_pool *p, double seconds);
/* Cancels queued tasks and pending lh_task_after ones (their done() runs),
 * wakes lh_task_sleep callers, waits for running tasks to finish, then
 * joins the threads. */
void lh_task_pool_stop(struct lh_task_pool *p);
/* What a pool is doing now, for /metrics. */
struct lh_task_pool_stats {
    unsigned threads; /* started */
    unsigned busy;    /* running a task */
    unsigned queued;  /* submitted, not started */
    unsigned timers;  /* lh_task_after tasks not yet due */
};
void lh_task_pool_stats(struct lh_task_pool *p, struct lh_task_pool_stats *out);
/* Stops the pool if needed and frees it; NULL is a no-op. */
void lh_task_pool_free(struct lh_task_pool *p);

#endif
