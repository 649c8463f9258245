/* include/luahost/ratelimit.h: sliding-window rate limits shared through
 * Redis, with an in-process fallback of the same semantics.
 *
 * A check is a list of rules, each a key with "limit per window seconds".
 * All rules of a check are decided together: the request is allowed only if
 * every limit rule has room, and then counts against all of them. A rule
 * marked counter counts every request (allowed or not) in a fixed window and
 * reports the count (bot detection uses it). Windows slide: the estimate is
 * previous_window * (1 - elapsed / window) + current_window.
 *
 * Holds: a counter rule with a hold holds its key for hold seconds once its
 * count passes its limit. The check that passes it starts the hold (in Redis
 * as "<rule key>:block" with that TTL, set by the same script; or in the
 * local store), and the hold outlasts the counter's window: until it ends,
 * every check with the rule has held set, for the caller to refuse
 * (allowed stays the limits' own answer). A check refused by a hold that
 * was running before it counts against none of its rules: a held client
 * spends no limit and starts no new hold. (A lease another instance holds
 * on the rules, never near the limit, may still hand out its units for the
 * rest of its 0.5 s.)
 *
 * Checks from every worker thread go to one batching thread, which sends all
 * that are waiting as one EVALSHA (one round trip); identical checks in a
 * batch (same keys and limits, as from one busy client) are decided as a
 * group, so Redis does one update for them. When Redis fails or is slower
 * than the timeout, the batcher decides locally, logs it once, and tries
 * Redis again at most once a second.
 *
 * Leases: for rules that arrive faster than Redis round trips, the same
 * atomic script also reserves extra units in Redis (counted there at once, so
 * every instance sees them) that lh_ratelimit_try_lease then hands out
 * without a round trip, for at most 0.5 s and never past a window's end. A
 * lease is twice the demand last seen, at most 1/8 of what each rule has
 * left, and none within 64 of any limit or counter threshold, so near a
 * limit every request is decided in Redis exactly. Unused units are given
 * back when the lease expires. The cost: X-RateLimit-Remaining during a lease
 * does not see other instances' requests, and another instance may be
 * refused while this one holds units (at most 1/8 of the rest, for 0.5 s).
 *
 * Thread safety: lh_ratelimit_submit and lh_ratelimit_try_lease from any
 * thread; new/free on one. */
#ifndef LUAHOST_RATELIMIT_H
#define LUAHOST_RATELIMIT_H
#include <stddef.h>
#include "luahost/common.h"
#include "luahost/headers.h"
#include "luahost/task.h"

#define LH_RATELIMIT_MAX_RULES 8
#define LH_RATELIMIT_KEY_MAX 128
#define LH_RATELIMIT_MAX_LIMITS 8 /* in one limit string */
#define LH_RATE_MAX_LIMIT 1000000000L

struct lh_rate {
    long limit;  /* requests */
    long window; /* seconds */
};

/* Parses Flask-Limiter notation: "2000 per day; 500 per hour", "10/minute",
 * "5 per 30 seconds", several separated by ';'. Units: second, minute, hour,
 * day (plural allowed). N is 1 to LH_RATE_MAX_LIMIT, windows at most a year.
 * Returns LH_ERR_INVALID with a message naming the bad part. */
enum lh_status lh_rate_parse(const char *spec, struct lh_rate *out, size_t max, size_t *n,
                             char *err, size_t errlen);

struct lh_ratelimit_rule {
    char key[LH_RATELIMIT_KEY_MAX]; /* "rl:<fingerprint>", "rl:ip:<address>", ... */
    struct lh_rate rate;
    int counter; /* count every request, never refuse: report the count */
    int hold;    /* counter rules: seconds a count past the limit holds the key; 0: none */
};

struct lh_ratelimit_outcome {
    long remaining;   /* after this request; 0 when refused */
    long reset;       /* seconds until the current window ends; once the limit is
                       * spent, until a request fits again (as retry_after) */
    long retry_after; /* seconds until a request would be allowed; 0 if allowed */
    long count;       /* counter rules: requests in the window, this one included */
};

/* One check: fill rules and nrules, set task.done, submit. The results are
 * valid when done() runs (on the batcher thread, or inline at shutdown). */
struct lh_ratelimit_check {
    struct lh_task task; /* only done() is used */
    size_t nrules;
    struct lh_ratelimit_rule rules[LH_RATELIMIT_MAX_RULES];
    int allowed;
    int local;        /* decided by the in-process fallback */
    long held;        /* seconds left of the hold that refuses this check; 0: not held */
    int hold_started; /* this check passed the counter's limit and started the hold */
    struct lh_ratelimit_outcome out[LH_RATELIMIT_MAX_RULES];
    struct lh_ratelimit_check *_next;
};

/* spec/ratelimit_spec.lua and spec/luahost/security_spec.lua declare it for
 * the FFI: a change here goes there too. */
struct lh_ratelimit_options {
    const char *redis_host; /* NULL: local only */
    int redis_port;
    int redis_db;
    const char *redis_user;     /* ACL user, NULL or "" for none */
    const char *redis_password; /* NULL or "" for none */
    double timeout;             /* seconds for connect and each round trip */
    size_t local_max_keys;      /* fallback memory bound */
};

/* What a limited response tells the client about its tightest limit. */
struct lh_rate_headers {
    long limit, remaining;
    long reset; /* seconds until the window ends, or until there is room again */
    long window;
};

/* Calls add for X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset
 * (now + reset, Unix seconds) and the IETF draft's RateLimit-Policy and
 * RateLimit fields. */
void lh_ratelimit_emit_headers(const struct lh_rate_headers *h, long now, lh_header_fn add,
                               void *arg);

/* Starts the batcher. Redis need not be up: it is tried on each batch, at
 * most once a second while down. NULL and *err (static text) on failure. */
struct lh_ratelimit *lh_ratelimit_new(const struct lh_ratelimit_options *o, const char **err);
/* Decides c at once, on the caller's thread, from a lease this instance
 * holds on exactly c's rules: 1 if decided (allowed, outcomes filled, done()
 * not called), 0 if c must be submitted. */
int lh_ratelimit_try_lease(struct lh_ratelimit *rl, struct lh_ratelimit_check *c);
/* Queues c; done() follows once. After lh_ratelimit_stop, it is decided
 * locally at once, on the caller's thread. */
void lh_ratelimit_submit(struct lh_ratelimit *rl, struct lh_ratelimit_check *c);
/* Decides what is queued, then stops the batcher. */
void lh_ratelimit_stop(struct lh_ratelimit *rl);
/* Stops if needed and frees; NULL is a no-op. */
void lh_ratelimit_free(struct lh_ratelimit *rl);
/* 1 while the last batch went to Redis. */
int lh_ratelimit_redis_up(const struct lh_ratelimit *rl);

#endif
