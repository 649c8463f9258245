/* src/ratelimit.c: the batching rate limiter.
 *
 * DESIGN
 * ------
 * Worker threads queue checks under `lock` and signal `work`. One batcher
 * thread takes everything queued, groups identical checks, and decides every
 * group either in Redis (one EVALSHA for the whole batch, see SCRIPT) or, when
 * Redis is down or slow, in the local store, which only the batcher touches,
 * so it needs no lock. Both paths return the same raw numbers per rule
 * (previous and current window counts before the grant, elapsed time, counter
 * value) and the same C code turns them into outcomes, so the semantics match.
 *
 * Holds (a counter rule's hold) are decided with the group: the script reads
 * the hold key of each such rule before counting and sets it when the
 * group's count passes the limit; the local store keeps a hold as a slot of
 * window 0 whose idx is its end. A group refused by a running hold is not
 * counted, gets no lease, and its checks all carry held.
 *
 * Redis failures: any error or timeout marks Redis down, logs once, and the
 * batch is decided locally; while down, Redis is tried again at most once a
 * second. Recovery is logged once too. Stopping decides what is queued and
 * makes later submits decide locally on the caller's thread (under `lock`,
 * since the batcher has gone).
 *
 * Leases: the script can also reserve extra units for a group (x in SCRIPT),
 * counted in Redis at once. They are kept in `leases`, a direct-mapped table
 * keyed by a hash of the rules, each slot under one of LEASE_LOCKS striped
 * locks; lh_ratelimit_try_lease hands them out on the caller's thread as the
 * indices k.. of the decided group, so fill() computes their outcomes like
 * any other member's. When half of a lease is used, the taker flags it and
 * wakes the batcher, which fetches the next lease (a group of no checks)
 * while the current one is still in use; what a replaced or expired lease
 * has left is given back with the next round trip (DECRBY, never below 0),
 * or by the sweep the batcher runs about once a second.
 */
#include "luahost/ratelimit.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "luahost/log.h"
#include "luahost/redis.h"

#define MAX_BATCH 512
#define RETRY_INTERVAL 1.0

#define LEASE_SLOTS 256 /* a power of two; a hot client's checks land in one */
#define LEASE_LOCKS 16
#define LEASE_SECONDS 0.5 /* longest life of a lease */
#define LEASE_MAX 4096    /* most units in one lease */
#define MAX_RELEASES 256  /* unused lease counts returned in one round trip */
#define LEASE_SWEEP_INTERVAL 1.0 /* seconds between returns of expired leases' units */
#define MAX_REFILLS 16            /* leases refilled in one round trip */

/* Lease sizing (see DESIGN): an instance may hold at most 1/LEASE_SHARE of
 * what a rule has left, and none once fewer than LEASE_MIN_HEADROOM are left,
 * so that near a limit every request is decided in Redis, exactly. */
#define LEASE_SHARE "8"
#define LEASE_MIN_HEADROOM "64"

/* KEYS: none. ARGV: nreleases, then per release: full key, amount; then
 * ngroups, then per group: k (identical checks), x (extra units wanted as a
 * lease), nrules, then per rule: key, limit, window, counter (0/1), hold
 * (seconds, 0: none). Returns per group the grant (of the k), the lease
 * granted, the hold's ms left (0: none) and the 1-based index of the check
 * that started it (0: it was running before, and nothing was counted), then
 * per rule: previous count, current count, sliding estimate, elapsed ms,
 * counter value, window index. The group's i-th check (0-based) counts
 * count - k - x + i + 1, so the first past the limit is the one at
 * limit - (count - k - x): it and those after it are held. */
static const char SCRIPT[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) + tonumber(t[2]) / 1000000\n"
    "local i = 2\n"
    "for r = 1, tonumber(ARGV[1]) do\n"
    "  local v = tonumber(redis.call('GET', ARGV[i]) or '0')\n"
    "  if v > 0 then redis.call('DECRBY', ARGV[i], math.min(v, tonumber(ARGV[i + 1]))) end\n"
    "  i = i + 2\n"
    "end\n"
    "local out = {}\n"
    "local function lease_cap(x, headroom)\n"
    "  if headroom < " LEASE_MIN_HEADROOM " then return 0 end\n"
    "  return math.min(x, math.floor(headroom / " LEASE_SHARE "))\n"
    "end\n"
    "local ngroups = tonumber(ARGV[i])\n"
    "i = i + 1\n"
    "for g = 1, ngroups do\n"
    "  local k, x, n = tonumber(ARGV[i]), tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])\n"
    "  i = i + 3\n"
    "  local grant, rules, held, start = k, {}, 0, 0\n"
    "  for r = 1, n do\n"
    "    local w, limit = tonumber(ARGV[i + 2]), tonumber(ARGV[i + 1])\n"
    "    local idx = math.floor(now / w)\n"
    "    local rule = { w = w, limit = limit, idx = idx, elapsed = now - idx * w,\n"
    "                   counter = ARGV[i + 3] == '1', hold = tonumber(ARGV[i + 4]),\n"
    "                   prev = 0, curr = 0, used = 0 }\n"
    "    if rule.counter then\n"
    "      rule.key = ARGV[i] .. ':c' .. w .. ':' .. idx\n"
    "      if rule.hold > 0 then\n"
    "        rule.block = ARGV[i] .. ':block'\n"
    "        held = math.max(held, redis.call('PTTL', rule.block))\n"
    "      end\n"
    "      if x > 0 then\n"
    "        x = lease_cap(x, limit - tonumber(redis.call('GET', rule.key) or '0') - k)\n"
    "      end\n"
    "    else\n"
    "      rule.key = ARGV[i] .. ':' .. w .. ':' .. idx\n"
    "      rule.curr = tonumber(redis.call('GET', rule.key) or '0')\n"
    "      rule.prev = tonumber(redis.call('GET', ARGV[i] .. ':' .. w .. ':' .. (idx - 1)) or '0')\n"
    "      rule.used = math.floor(rule.prev * (w - rule.elapsed) / w) + rule.curr\n"
    "      local avail = limit - rule.used\n"
    "      if avail < grant then grant = avail end\n"
    "      x = lease_cap(x, avail - k)\n"
    "    end\n"
    "    rules[r] = rule\n"
    "    i = i + 5\n"
    "  end\n"
    "  local running = held > 0\n"
    "  if running then grant, x = 0, 0 end\n"
    "  if grant < 0 then grant = 0 end\n"
    "  if grant < k then x = 0 end\n"
    "  out[#out + 1] = grant\n"
    "  out[#out + 1] = x\n"
    "  local hold_at = #out + 1\n"
    "  out[hold_at], out[hold_at + 1] = 0, 0\n"
    "  for r = 1, n do\n"
    "    local rule, count = rules[r], 0\n"
    "    if rule.counter and not running then\n"
    "      count = redis.call('INCRBY', rule.key, k + x)\n"
    "      if count == k + x then redis.call('EXPIRE', rule.key, rule.w + 1) end\n"
    "      local from = math.max(0, rule.limit - (count - k - x))\n"
    "      if rule.block and from < k then\n"
    "        redis.call('SET', rule.block, '1', 'PX', rule.hold * 1000)\n"
    "        held, start = rule.hold * 1000, from + 1\n"
    "      end\n"
    "    elseif not rule.counter and grant + x > 0 then\n"
    "      if redis.call('INCRBY', rule.key, grant + x) == grant + x then\n"
    "        redis.call('EXPIRE', rule.key, 2 * rule.w + 1)\n"
    "      end\n"
    "    end\n"
    "    out[#out + 1] = rule.prev\n"
    "    out[#out + 1] = rule.curr\n"
    "    out[#out + 1] = rule.used\n"
    "    out[#out + 1] = math.floor(rule.elapsed * 1000)\n"
    "    out[#out + 1] = count\n"
    "    out[#out + 1] = rule.idx\n"
    "  end\n"
    "  out[hold_at], out[hold_at + 1] = held, start\n"
    "end\n"
    "return out\n";

/* Raw numbers for one rule of a group, from Redis or from the local store:
 * counts before the grant, and used = the sliding estimate they give. */
struct rule_state {
    long prev, curr, used;
    double elapsed;
    long counter;
    long idx; /* window index (Redis only: for releasing a lease) */
};

/* Identical checks decided together. Checks 0..k-1 are the real ones; a
 * lease adds indices k..grant-1, handed out later by lh_ratelimit_try_lease. */
struct group {
    struct lh_ratelimit_check *first; /* the checks, linked by _next */
    uint64_t hash;                    /* of the rules, see rules_hash */
    int slot;                         /* lease slot claimed, or -1 */
    size_t k;
    long want;      /* lease units asked for */
    long grant;     /* allowed indices, the lease's included */
    long counted;   /* added to counter rules: k plus the lease */
    long held_ms;   /* a hold on the checks' key: ms left; 0: none */
    long hold_from; /* index of the first check it holds; -1: it was running before */
    struct rule_state st[LH_RATELIMIT_MAX_RULES];
};

/* -- Local store ------------------------------------------------------------- */

struct slot {
    char *key;   /* "<rule key>:<window>", "<rule key>:c<window>" or "<rule key>:block";
                  * NULL: empty */
    long window; /* seconds; 0 for a hold */
    long idx;    /* window index of curr; for a hold, when it ends (ms since the epoch) */
    long curr, prev;
};

struct store {
    size_t cap, used, max_keys;
    struct slot *slots;
};

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static void store_clear(struct store *st)
{
    for (size_t i = 0; i < st->cap; i++) {
        free(st->slots[i].key);
        st->slots[i].key = NULL;
    }
    st->used = 0;
}

/* The slot for key, or the empty slot where it belongs. */
static struct slot *store_find(struct slot *slots, size_t cap, const char *key)
{
    size_t mask = cap - 1;
    for (size_t i = hash_str(key) & mask;; i = (i + 1) & mask) {
        struct slot *s = &slots[i];
        if (s->key == NULL || strcmp(s->key, key) == 0)
            return s;
    }
}

/* The slot for key, created empty if needed; NULL only when out of memory. */
static struct slot *store_get(struct store *st, const char *key, long window)
{
    struct slot *s = store_find(st->slots, st->cap, key);
    if (s->key == NULL) {
        s->key = strdup(key);
        if (s->key == NULL)
            return NULL;
        s->window = window;
        s->idx = 0;
        s->curr = s->prev = 0;
        st->used++;
    }
    return s;
}

/* What a slot still counts at time now: 0 once both its windows are past.
 * A running hold weighs more than any count, since it is a client known to
 * flood, but not so much that holds alone could never be shed. */
static long slot_weight(const struct slot *s, double now)
{
    if (s->window == 0)
        return s->idx > (long)(now * 1000.0) ? LONG_MAX / 4 : 0;
    long idx = (long)floor(now / (double)s->window);
    return s->idx == idx ? s->curr + s->prev : s->idx == idx - 1 ? s->curr : 0;
}

/* A flood of distinct keys (a client rotating its headers while Redis is
 * down) must not wipe the counts that matter, as clearing the store would:
 * it sheds the expired slots, then the least used (counted once, then up to
 * twice, four times...) until half of max_keys is left. A per-address key,
 * counted on each of the flood's requests, goes last. */
static void store_shed(struct store *st, double now)
{
    size_t keep = st->max_keys / 2, live = st->used;
    long below = 1; /* slots counted fewer times than this go */

    for (;; below *= 2) {
        live = 0;
        for (size_t i = 0; i < st->cap; i++)
            live += st->slots[i].key != NULL && slot_weight(&st->slots[i], now) >= below;
        if (live <= keep || below > LONG_MAX / 2)
            break;
    }
    struct slot *slots = calloc(st->cap, sizeof(*slots));
    if (slots == NULL) {
        lh_log(LH_LOG_WARN, NULL, "rate limit: local store full (%zu keys), cleared", st->used);
        store_clear(st);
        return;
    }
    for (size_t i = 0; i < st->cap; i++) {
        struct slot *s = &st->slots[i];
        if (s->key != NULL && slot_weight(s, now) >= below)
            *store_find(slots, st->cap, s->key) = *s;
        else
            free(s->key);
    }
    lh_log(LH_LOG_WARN, NULL,
           "rate limit: local store full (%zu keys): kept %zu, those with at least %ld "
           "request(s) in their windows",
           st->used, live, below);
    free(st->slots);
    st->slots = slots;
    st->used = live;
}

/* Brings a slot to window idx: what was current becomes previous if adjacent. */
static void slot_roll(struct slot *s, long idx)
{
    if (s->idx == idx)
        return;
    s->prev = s->idx == idx - 1 ? s->curr : 0;
    s->curr = 0;
    s->idx = idx;
}


static long used_of(const struct rule_state *s, long window)
{
    return (long)floor((double)s->prev * ((double)window - s->elapsed) / (double)window) + s->curr;
}

static int has_hold(const struct lh_ratelimit_rule *rule)
{
    return rule->counter && rule->hold > 0;
}

/* Ms left of the hold of g's rules that ends last, from the local store. */
static long local_hold_left(const struct store *st, const struct group *g, long now_ms)
{
    const struct lh_ratelimit_check *c = g->first;
    char key[LH_RATELIMIT_KEY_MAX + 32];
    long left = 0;

    for (size_t r = 0; r < c->nrules; r++) {
        if (!has_hold(&c->rules[r]))
            continue;
        snprintf(key, sizeof(key), "%s:block", c->rules[r].key);
        const struct slot *s = store_find(st->slots, st->cap, key);
        if (s->key != NULL && s->idx - now_ms > left)
            left = s->idx - now_ms;
    }
    return left;
}

/* After rule's counter reached count with g's checks: starts its hold in the
 * local store from the first check past the limit, as SCRIPT does. */
static void local_hold_start(struct store *st, struct group *g,
                             const struct lh_ratelimit_rule *rule, long count, long now_ms)
{
    char key[LH_RATELIMIT_KEY_MAX + 32];
    long from = rule->rate.limit - (count - (long)g->k);

    if (from < 0)
        from = 0;
    if (from >= (long)g->k)
        return;
    snprintf(key, sizeof(key), "%s:block", rule->key);
    struct slot *s = store_get(st, key, 0);
    if (s == NULL)
        return; /* out of memory: no hold, as a rule without a slot counts nothing */
    g->held_ms = (long)rule->hold * 1000;
    s->idx = now_ms + g->held_ms;
    g->hold_from = from;
}

/* Decides a group in the local store, with the same arithmetic as SCRIPT. */
static void decide_local(struct store *st, struct group *g)
{
    const struct lh_ratelimit_check *c = g->first;
    double now = lh_wall_seconds();
    long now_ms = (long)(now * 1000.0);
    struct slot *slots[LH_RATELIMIT_MAX_RULES];
    char key[LH_RATELIMIT_KEY_MAX + 32];

    if (st->used + c->nrules > st->max_keys)
        store_shed(st, now);
    g->held_ms = local_hold_left(st, g, now_ms);
    g->hold_from = -1;
    g->grant = g->held_ms > 0 ? 0 : (long)g->k;
    for (size_t r = 0; r < c->nrules; r++) {
        const struct lh_ratelimit_rule *rule = &c->rules[r];
        long w = rule->rate.window;
        long idx = (long)floor(now / (double)w);
        struct rule_state *s = &g->st[r];
        snprintf(key, sizeof(key), "%s:%s%ld", rule->key, rule->counter ? "c" : "", w);
        slots[r] = store_get(st, key, w);
        memset(s, 0, sizeof(*s));
        s->elapsed = now - (double)idx * (double)w;
        if (slots[r] == NULL)
            continue; /* out of memory: this rule counts as empty */
        slot_roll(slots[r], idx);
        if (rule->counter)
            continue;
        s->prev = slots[r]->prev;
        s->curr = slots[r]->curr;
        s->used = used_of(s, w);
        long avail = rule->rate.limit - s->used;
        if (avail < g->grant)
            g->grant = avail;
    }
    if (g->grant < 0)
        g->grant = 0;
    if (g->held_ms > 0) {
        g->counted = 0; /* held from before: counted against nothing */
        return;
    }
    g->counted = (long)g->k;
    for (size_t r = 0; r < c->nrules; r++) {
        if (slots[r] == NULL)
            continue;
        if (c->rules[r].counter) {
            slots[r]->curr += (long)g->k;
            g->st[r].counter = slots[r]->curr;
            if (has_hold(&c->rules[r]))
                local_hold_start(st, g, &c->rules[r], slots[r]->curr, now_ms);
        } else {
            slots[r]->curr += g->grant;
        }
    }
}

/* -- Outcomes ---------------------------------------------------------------- */

/* Seconds until a refused request on a full rule would fit again. */
static long retry_after(const struct lh_rate *rate, const struct rule_state *s, long granted)
{
    double w = (double)rate->window;
    long curr = s->curr + granted;

    if (curr >= rate->limit || s->prev == 0)
        return (long)ceil(w - s->elapsed);
    /* prev * (w - elapsed - t) / w + curr < limit */
    double t = w - s->elapsed - (double)(rate->limit - curr) * w / (double)s->prev;
    long secs = (long)ceil(t);
    return secs < 1 ? 1 : secs;
}

/* Fills the outcome of the i-th check (0-based) of a group decided age
 * seconds ago. */
static void fill(struct lh_ratelimit_check *c, const struct group *g, size_t i, int local,
                 double age)
{
    int held = g->held_ms > 0 && (long)i >= g->hold_from;

    c->allowed = (long)i < g->grant;
    c->local = local;
    c->held = held ? (long)ceil((double)g->held_ms / 1000.0) : 0;
    c->hold_started = held && (long)i == g->hold_from;
    for (size_t r = 0; r < c->nrules; r++) {
        const struct lh_ratelimit_rule *rule = &c->rules[r];
        const struct rule_state *s = &g->st[r];
        struct lh_ratelimit_outcome *o = &c->out[r];
        long w = rule->rate.window;
        o->reset = (long)ceil((double)w - s->elapsed - age);
        if (rule->counter) {
            /* Held from before: not counted, so no count to report. */
            o->count = g->counted > 0 ? s->counter - g->counted + (long)i + 1 : 0;
            o->remaining = rule->rate.limit - o->count;
            o->retry_after = 0;
        } else {
            long used = s->used;
            long after = c->allowed ? (long)i + 1 : g->grant; /* counted once this is decided */
            o->count = used + after;
            o->remaining = c->allowed ? rule->rate.limit - used - (long)i - 1 : 0;
            o->retry_after = 0;
            if (rule->rate.limit - used - after <= 0) {
                /* Spent: a sliding window has room again before it ends, and
                 * reset says when, as Retry-After does. */
                o->reset = retry_after(&rule->rate, s, after);
                if (!c->allowed)
                    o->retry_after = o->reset;
            }
        }
        if (o->remaining < 0)
            o->remaining = 0;
    }
}

/* -- Leases ------------------------------------------------------------------ */

/* Units of a check's rules reserved in Redis by the batcher and handed out
 * by lh_ratelimit_try_lease until they run out or expire. A slot with no
 * units left remembers the rules so that their demand sizes the next lease. */
struct lease {
    uint64_t hash; /* 0: empty */
    size_t nrules;
    struct lh_ratelimit_rule rules[LH_RATELIMIT_MAX_RULES];
    struct group g; /* as decided; indices start..g.grant-1 are the lease */
    long start, next;
    double t0, expires; /* monotonic */
    int refill_asked;   /* half used: the batcher fetches the next lease early */
};

/* A lease's unused units, to subtract from one Redis counter. */
struct release {
    char key[LH_RATELIMIT_KEY_MAX + 48];
    long amount;
};

static int same_rules(const struct lh_ratelimit_check *a, const struct lh_ratelimit_check *b)
{
    return a->nrules == b->nrules && memcmp(a->rules, b->rules, a->nrules * sizeof(a->rules[0])) == 0;
}

/* Cheap to compute per request: the key texts and the numbers. Never 0. */
static uint64_t rules_hash(const struct lh_ratelimit_check *c)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t r = 0; r < c->nrules; r++) {
        const struct lh_ratelimit_rule *rule = &c->rules[r];
        for (const char *p = rule->key; *p; p++)
            h = (h ^ (unsigned char)*p) * 1099511628211ULL;
        h = (h ^ (uint64_t)rule->rate.limit) * 1099511628211ULL;
        h = (h ^ (uint64_t)(rule->rate.window * 2 + rule->counter)) * 1099511628211ULL;
    }
    return h | 1;
}

static int lease_matches(const struct lease *l, uint64_t hash, const struct lh_ratelimit_check *c)
{
    return l->hash == hash && l->nrules == c->nrules &&
           memcmp(l->rules, c->rules, c->nrules * sizeof(c->rules[0])) == 0;
}

/* -- Limiter ----------------------------------------------------------------- */

struct lh_ratelimit {
    pthread_mutex_t lock;
    pthread_cond_t work;
    struct lh_ratelimit_check *head, *tail;
    int stopping, stopped, started;
    pthread_t thread;

    struct lease *leases; /* LEASE_SLOTS, each under lease_locks[slot % LEASE_LOCKS] */
    pthread_mutex_t lease_locks[LEASE_LOCKS];
    int refills_asked; /* under lock: some lease has refill_asked set */

    /* Batcher-only state. */
    struct group groups[MAX_BATCH];
    struct release releases[MAX_RELEASES];
    size_t nreleases;
    /* Copies of the rules of leases being refilled: a refill's group has no
     * real checks (k = 0), and first points at one of these. */
    struct lh_ratelimit_check refills[MAX_REFILLS];
    struct store store;
    redisContext *redis;
    char sha[41];
    int redis_up; /* read by lh_ratelimit_redis_up without the lock: a hint */
    int reported_down;
    double next_try;
    char *host, *user, *password;
    int port, db;
    struct timeval timeout;
};

static pthread_mutex_t *lease_lock(struct lh_ratelimit *rl, size_t slot)
{
    return &rl->lease_locks[slot % LEASE_LOCKS];
}

/* Batcher, slot locked: queues l's unused units to be returned to Redis with
 * the next round trip and leaves it none. If the queue is full they stay
 * counted until their window passes (the limit errs on the strict side). */
static void queue_release(struct lh_ratelimit *rl, struct lease *l)
{
    long unused = l->g.grant - l->next;
    for (size_t r = 0; r < l->nrules && unused > 0 && rl->nreleases < MAX_RELEASES; r++) {
        const struct lh_ratelimit_rule *rule = &l->rules[r];
        struct release *rel = &rl->releases[rl->nreleases++];
        snprintf(rel->key, sizeof(rel->key), "%s:%s%ld:%ld", rule->key, rule->counter ? "c" : "",
                 rule->rate.window, l->g.st[r].idx);
        rel->amount = unused;
    }
    if (unused > 0)
        l->next = l->g.grant;
}

/* Batcher, before a round trip: claims g's lease slot unless another group
 * of the batch has, returns what is left of the rules' previous lease, and
 * sizes the new one by the demand seen: twice what the last lease handed out
 * (plus this batch), or twice the batch for rules seen for the first time
 * several at once. A refill (k = 0) leaves the current lease in use until
 * the new one is installed, and asks for twice its size. */
static void plan_lease(struct lh_ratelimit *rl, struct group *g, unsigned char *claimed)
{
    const struct lh_ratelimit_check *c = g->first;
    size_t slot = g->hash & (LEASE_SLOTS - 1);
    struct lease *l = &rl->leases[slot];
    double now = lh_monotonic_seconds();
    long k = (long)g->k, want = 0;

    g->slot = -1;
    g->want = 0;
    if (claimed[slot])
        return;
    pthread_mutex_lock(lease_lock(rl, slot));
    int mine = lease_matches(l, g->hash, c);
    if (k == 0) {
        if (mine && now < l->expires) {
            claimed[slot] = 1;
            g->slot = (int)slot;
            want = 2 * (l->g.grant - l->start);
            g->want = want < LEASE_MAX ? want : LEASE_MAX;
        }
        pthread_mutex_unlock(lease_lock(rl, slot));
        return;
    }
    if (l->hash != 0 && (mine || now >= l->expires)) {
        if (mine && now < l->expires + LEASE_SECONDS)
            want = 2 * (l->next - l->start + k);
        queue_release(rl, l);
        l->hash = 0;
    }
    if (l->hash == 0) {
        claimed[slot] = 1;
        g->slot = (int)slot;
        if (want == 0 && k > 1)
            want = 2 * k;
        g->want = want < LEASE_MAX ? want : LEASE_MAX;
    }
    pthread_mutex_unlock(lease_lock(rl, slot));
}

/* Batcher, after a round trip: puts g's lease (possibly of no units) in the
 * slot it claimed. It ends with the shortest window of its rules. */
static void install_lease(struct lh_ratelimit *rl, const struct group *g)
{
    const struct lh_ratelimit_check *c = g->first;
    double now = lh_monotonic_seconds(), life = LEASE_SECONDS;

    if (g->slot < 0)
        return;
    for (size_t r = 0; r < c->nrules; r++) {
        double left = (double)c->rules[r].rate.window - g->st[r].elapsed;
        if (left < life)
            life = left;
    }
    struct lease *l = &rl->leases[g->slot];
    pthread_mutex_lock(lease_lock(rl, (size_t)g->slot));
    queue_release(rl, l); /* what a refilled lease has left */
    l->refill_asked = 0;
    l->hash = g->hash;
    l->nrules = c->nrules;
    memcpy(l->rules, c->rules, c->nrules * sizeof(c->rules[0]));
    l->g = *g;
    l->g.first = NULL;
    l->start = l->next = (long)g->k;
    l->t0 = now;
    l->expires = g->grant > (long)g->k ? now + life : now;
    pthread_mutex_unlock(lease_lock(rl, (size_t)g->slot));
}

/* Decides c from a lease if one covers its rules (keys' tails zeroed). */
static int take_lease(struct lh_ratelimit *rl, struct lh_ratelimit_check *c)
{
    uint64_t hash = rules_hash(c);
    size_t slot = hash & (LEASE_SLOTS - 1);
    struct lease *l = &rl->leases[slot];
    int decided = 0;

    int refill = 0;

    pthread_mutex_lock(lease_lock(rl, slot));
    if (l->next < l->g.grant && lease_matches(l, hash, c)) {
        double now = lh_monotonic_seconds();
        if (now < l->expires) {
            fill(c, &l->g, (size_t)l->next++, 0, now - l->t0);
            decided = 1;
            if (!l->refill_asked && l->g.grant - l->next <= (l->g.grant - l->start) / 2)
                refill = l->refill_asked = 1;
        }
    }
    pthread_mutex_unlock(lease_lock(rl, slot));
    if (refill) {
        pthread_mutex_lock(&rl->lock);
        rl->refills_asked = 1;
        pthread_cond_signal(&rl->work);
        pthread_mutex_unlock(&rl->lock);
    }
    return decided;
}

/* Batcher: adds a group of no checks for each lease (up to MAX_REFILLS) that
 * asked for a refill and whose rules have no group in the batch yet. */
static size_t add_refills(struct lh_ratelimit *rl, struct group *groups, size_t ngroups)
{
    size_t n = 0;
    double now = lh_monotonic_seconds();

    for (size_t slot = 0; slot < LEASE_SLOTS && n < MAX_REFILLS && ngroups < MAX_BATCH; slot++) {
        struct lease *l = &rl->leases[slot];
        struct lh_ratelimit_check *c = &rl->refills[n];
        pthread_mutex_lock(lease_lock(rl, slot));
        int asked = l->hash != 0 && l->refill_asked == 1 && now < l->expires;
        if (asked) {
            l->refill_asked = 2; /* being fetched */
            c->nrules = l->nrules;
            memcpy(c->rules, l->rules, l->nrules * sizeof(l->rules[0]));
        }
        pthread_mutex_unlock(lease_lock(rl, slot));
        if (!asked)
            continue;
        size_t g = 0;
        while (g < ngroups && !same_rules(groups[g].first, c))
            g++;
        if (g < ngroups)
            continue; /* checks of these rules are in the batch: they renew it */
        memset(&groups[g], 0, sizeof(groups[g]));
        c->_next = NULL;
        groups[g].first = c;
        ngroups++;
        n++;
    }
    return ngroups;
}

/* Batcher: queues the unused units of leases that have expired (all of them
 * when stopping). */
static void sweep_leases(struct lh_ratelimit *rl, int all)
{
    double now = lh_monotonic_seconds();
    for (size_t slot = 0; slot < LEASE_SLOTS; slot++) {
        struct lease *l = &rl->leases[slot];
        pthread_mutex_lock(lease_lock(rl, slot));
        if (l->hash != 0 && (all || now >= l->expires))
            queue_release(rl, l);
        pthread_mutex_unlock(lease_lock(rl, slot));
    }
}

/* why may point into the context: it is logged before the context goes. */
static long timeout_ms(const struct lh_ratelimit *rl)
{
    return (long)rl->timeout.tv_sec * 1000 + (long)(rl->timeout.tv_usec + 500) / 1000;
}

static void redis_drop(struct lh_ratelimit *rl, const char *why)
{
    if (!rl->reported_down) {
        lh_log(LH_LOG_WARN, NULL,
               "rate limit: redis %s:%d unavailable (%s); limiting in this process until it "
               "answers",
               rl->host, rl->port, why);
        rl->reported_down = 1;
    }
    if (rl->redis)
        redisFree(rl->redis);
    rl->redis = NULL;
    rl->redis_up = 0;
    rl->next_try = lh_wall_seconds() + RETRY_INTERVAL;
}

static int redis_ok(redisContext *c, redisReply *r)
{
    return r != NULL && c->err == 0 && r->type != REDIS_REPLY_ERROR;
}

/* Connects, selects the database and loads the script. */
static int redis_connect(struct lh_ratelimit *rl)
{
    redisReply *r;

    rl->redis = redisConnectWithTimeout(rl->host, rl->port, rl->timeout);
    if (rl->redis == NULL || rl->redis->err) {
        redis_drop(rl, rl->redis ? rl->redis->errstr : "out of memory");
        return 0;
    }
    redisSetTimeout(rl->redis, rl->timeout);
    if (rl->password && rl->password[0]) {
        /* With an ACL user, AUTH takes its name too. */
        r = rl->user && rl->user[0]
                ? redisCommand(rl->redis, "AUTH %s %s", rl->user, rl->password)
                : redisCommand(rl->redis, "AUTH %s", rl->password);
        int ok = redis_ok(rl->redis, r);
        freeReplyObject(r);
        if (!ok) {
            redis_drop(rl, "AUTH failed");
            return 0;
        }
    }
    r = redisCommand(rl->redis, "SELECT %d", rl->db);
    int ok = redis_ok(rl->redis, r);
    freeReplyObject(r);
    r = ok ? redisCommand(rl->redis, "SCRIPT LOAD %s", SCRIPT) : NULL;
    if (!redis_ok(rl->redis, r) || r->type != REDIS_REPLY_STRING || r->len != 40) {
        freeReplyObject(r);
        redis_drop(rl, rl->redis && rl->redis->err ? rl->redis->errstr : "SCRIPT LOAD failed");
        return 0;
    }
    memcpy(rl->sha, r->str, 40);
    rl->sha[40] = '\0';
    freeReplyObject(r);
    return 1;
}

/* Returns the queued releases and decides every group in one EVALSHA.
 * Returns 0 on any failure (the releases are dropped either way). */
static int decide_redis(struct lh_ratelimit *rl, struct group *groups, size_t ngroups)
{
    size_t argc = 5, cap = 5 + 2 * rl->nreleases;
    for (size_t g = 0; g < ngroups; g++)
        cap += 3 + 5 * groups[g].first->nrules;
    const char **argv = malloc(cap * sizeof(*argv));
    size_t *lens = malloc(cap * sizeof(*lens));
    char *nums = malloc(cap * 24); /* every number's text */
    char *p = nums;
    int ok = 0;

    if (argv == NULL || lens == NULL || nums == NULL)
        goto out;
#define PUSH_NUM(v)                                                                             \
    do {                                                                                        \
        int w_ = snprintf(p, 24, "%ld", (long)(v));                                             \
        argv[argc] = p;                                                                         \
        lens[argc++] = (size_t)w_;                                                              \
        p += 24;                                                                                \
    } while (0)
    argv[0] = "EVALSHA";
    argv[1] = rl->sha;
    argv[2] = "0";
    for (int i = 0; i < 3; i++)
        lens[i] = strlen(argv[i]);
    argc = 3;
    PUSH_NUM(rl->nreleases);
    for (size_t i = 0; i < rl->nreleases; i++) {
        argv[argc] = rl->releases[i].key;
        lens[argc++] = strlen(rl->releases[i].key);
        PUSH_NUM(rl->releases[i].amount);
    }
    PUSH_NUM(ngroups);
    for (size_t g = 0; g < ngroups; g++) {
        const struct lh_ratelimit_check *c = groups[g].first;
        PUSH_NUM(groups[g].k);
        PUSH_NUM(groups[g].want);
        PUSH_NUM(c->nrules);
        for (size_t r = 0; r < c->nrules; r++) {
            argv[argc] = c->rules[r].key;
            lens[argc++] = strlen(c->rules[r].key);
            PUSH_NUM(c->rules[r].rate.limit);
            PUSH_NUM(c->rules[r].rate.window);
            PUSH_NUM(c->rules[r].counter ? 1 : 0);
            PUSH_NUM(c->rules[r].hold);
        }
    }
#undef PUSH_NUM
    redisReply *reply = redisCommandArgv(rl->redis, (int)argc, argv, lens);
    if (reply && reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "NOSCRIPT", 8) == 0) {
        /* SCRIPT FLUSH or a restarted server behind a proxy: load it again. */
        freeReplyObject(reply);
        reply = redisCommand(rl->redis, "SCRIPT LOAD %s", SCRIPT);
        int loaded = redis_ok(rl->redis, reply) && reply->type == REDIS_REPLY_STRING;
        freeReplyObject(reply);
        reply = loaded ? redisCommandArgv(rl->redis, (int)argc, argv, lens) : NULL;
    }
    if (!redis_ok(rl->redis, reply) || reply->type != REDIS_REPLY_ARRAY) {
        char why[64];
        redis_drop(rl, rl->redis->err ? lh_redis_error(rl->redis, timeout_ms(rl), why, sizeof(why))
                                      : reply ? reply->str : "no reply");
        freeReplyObject(reply);
        goto out;
    }
    size_t at = 0;
    for (size_t g = 0; g < ngroups && at + 4 <= reply->elements; g++) {
        struct group *gr = &groups[g];
        long lease = (long)reply->element[at + 1]->integer;
        long start = (long)reply->element[at + 3]->integer;
        gr->grant = (long)reply->element[at]->integer + lease;
        gr->held_ms = (long)reply->element[at + 2]->integer;
        gr->hold_from = start - 1;
        gr->counted = gr->held_ms > 0 && start == 0 ? 0 : (long)gr->k + lease;
        at += 4;
        for (size_t r = 0; r < gr->first->nrules && at + 6 <= reply->elements; r++) {
            gr->st[r].prev = (long)reply->element[at++]->integer;
            gr->st[r].curr = (long)reply->element[at++]->integer;
            gr->st[r].used = (long)reply->element[at++]->integer;
            gr->st[r].elapsed = (double)reply->element[at++]->integer / 1000.0;
            gr->st[r].counter = (long)reply->element[at++]->integer;
            gr->st[r].idx = (long)reply->element[at++]->integer;
        }
    }
    ok = at == reply->elements;
    freeReplyObject(reply);
    if (!ok)
        redis_drop(rl, "unexpected script reply");
out:
    rl->nreleases = 0;
    free(argv);
    free(lens);
    free(nums);
    return ok;
}

/* Hands g's holds kept in the local store (started while Redis was down) to
 * Redis, each with the time it has left, so that Redis and every instance
 * hold the client to the end; the local copies then end. 0 if Redis did not
 * take one. */
static int hand_holds_over(struct lh_ratelimit *rl, const struct group *g, long now_ms)
{
    const struct lh_ratelimit_check *c = g->first;
    char key[LH_RATELIMIT_KEY_MAX + 32];

    for (size_t r = 0; r < c->nrules; r++) {
        if (!has_hold(&c->rules[r]))
            continue;
        snprintf(key, sizeof(key), "%s:block", c->rules[r].key);
        struct slot *s = store_find(rl->store.slots, rl->store.cap, key);
        if (s->key == NULL || s->idx <= now_ms)
            continue;
        redisReply *reply = redisCommand(rl->redis, "SET %s 1 PX %ld", key, s->idx - now_ms);
        int ok = redis_ok(rl->redis, reply) && reply->type == REDIS_REPLY_STATUS;
        freeReplyObject(reply);
        if (!ok)
            return 0;
        s->idx = 0;
    }
    return 1;
}

/* Before a round trip: Redis never heard of the holds this process started
 * while it was down. They are handed over; a group whose hold Redis did not
 * take is decided here, refused until the hold ends, and moved to the end,
 * out of the round trip: counted nowhere and given no lease, as a hold Redis
 * keeps. Returns how many groups remain to send. */
static size_t hold_locally(struct lh_ratelimit *rl, struct group *groups, size_t ngroups)
{
    if (rl->store.used == 0)
        return ngroups;
    long now_ms = (long)(lh_wall_seconds() * 1000.0);
    for (size_t g = 0; g < ngroups;) {
        long left = groups[g].k > 0 ? local_hold_left(&rl->store, &groups[g], now_ms) : 0;
        if (left <= 0 || hand_holds_over(rl, &groups[g], now_ms)) {
            g++;
            continue;
        }
        struct group held = groups[g];
        held.held_ms = left;
        held.hold_from = -1;
        held.grant = held.counted = held.want = 0;
        held.slot = -1;
        groups[g] = groups[--ngroups];
        groups[ngroups] = held;
    }
    return ngroups;
}

/* Groups the batch (a list), decides it and calls every done(); with
 * refills, also fetches the leases that asked for it. */
static void decide_batch(struct lh_ratelimit *rl, struct lh_ratelimit_check *batch, int refills)
{
    struct group *groups = rl->groups;
    size_t ngroups = 0;

    while (batch) {
        struct lh_ratelimit_check *c = batch;
        batch = c->_next;
        /* Queued while the lease for its rules was being fetched. */
        if (rl->host != NULL && take_lease(rl, c)) {
            c->task.done(&c->task);
            continue;
        }
        size_t g = 0;
        while (g < ngroups && !same_rules(groups[g].first, c))
            g++;
        if (g == ngroups) {
            memset(&groups[g], 0, sizeof(groups[g]));
            ngroups++;
        }
        c->_next = groups[g].first; /* order inside a group does not matter */
        groups[g].first = c;
        groups[g].k++;
    }

    int remote = 0;
    if (rl->host != NULL && (rl->redis != NULL || lh_wall_seconds() >= rl->next_try)) {
        if (rl->redis != NULL || redis_connect(rl)) {
            unsigned char claimed[LEASE_SLOTS] = {0};
            if (refills)
                ngroups = add_refills(rl, groups, ngroups);
            size_t nremote = hold_locally(rl, groups, ngroups);
            for (size_t g = 0; g < nremote; g++) {
                groups[g].hash = rules_hash(groups[g].first);
                plan_lease(rl, &groups[g], claimed);
            }
            remote = decide_redis(rl, groups, nremote);
            for (size_t g = 0; remote && g < nremote; g++)
                install_lease(rl, &groups[g]);
        }
        if (remote && !rl->redis_up) {
            if (rl->reported_down)
                lh_log(LH_LOG_INFO, NULL, "rate limit: redis %s:%d is back; limits are shared again",
                       rl->host, rl->port);
            rl->reported_down = 0;
        }
        rl->redis_up = remote;
    }
    for (size_t g = 0; g < ngroups; g++) {
        if (groups[g].k == 0)
            continue; /* a refill */
        if (!remote)
            decide_local(&rl->store, &groups[g]);
        size_t i = 0;
        for (struct lh_ratelimit_check *c = groups[g].first, *next; c; c = next, i++) {
            next = c->_next;
            fill(c, &groups[g], i, !remote, 0);
            c->task.done(&c->task);
        }
    }
}

/* Batcher, about once a second: returns the unused units of expired leases
 * (all when stopping), if Redis is connected; they are not worth a
 * reconnection. */
static void return_leases(struct lh_ratelimit *rl, int all)
{
    if (rl->redis == NULL)
        return;
    sweep_leases(rl, all);
    if (rl->nreleases > 0)
        decide_redis(rl, NULL, 0);
}

/* Takes up to MAX_BATCH queued checks off the queue (lock held). */
static struct lh_ratelimit_check *take_batch(struct lh_ratelimit *rl)
{
    struct lh_ratelimit_check *batch = rl->head, *last = rl->head;
    size_t n = 1;

    while (last->_next && n < MAX_BATCH) {
        last = last->_next;
        n++;
    }
    rl->head = last->_next;
    if (rl->head == NULL)
        rl->tail = NULL;
    last->_next = NULL;
    return batch;
}

static void *batcher_main(void *arg)
{
    struct lh_ratelimit *rl = arg;
    double next_sweep = lh_monotonic_seconds() + LEASE_SWEEP_INTERVAL;

    pthread_mutex_lock(&rl->lock);
    while (rl->head != NULL || !rl->stopping) {
        struct lh_ratelimit_check *batch = NULL;
        if (rl->head == NULL && !rl->refills_asked) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += (time_t)LEASE_SWEEP_INTERVAL;
            pthread_cond_timedwait(&rl->work, &rl->lock, &until);
        }
        if (rl->head != NULL)
            batch = take_batch(rl);
        int refills = rl->refills_asked;
        rl->refills_asked = 0;
        pthread_mutex_unlock(&rl->lock);
        if (batch != NULL || refills)
            decide_batch(rl, batch, refills);
        if (lh_monotonic_seconds() >= next_sweep) {
            return_leases(rl, 0);
            next_sweep = lh_monotonic_seconds() + LEASE_SWEEP_INTERVAL;
        }
        pthread_mutex_lock(&rl->lock);
    }
    pthread_mutex_unlock(&rl->lock);
    return_leases(rl, 1);
    return NULL;
}

struct lh_ratelimit *lh_ratelimit_new(const struct lh_ratelimit_options *o, const char **err)
{
    struct lh_ratelimit *rl = calloc(1, sizeof(*rl));
    size_t max_keys = o->local_max_keys ? o->local_max_keys : 100000;
    size_t cap = 16;

    while (cap < 2 * max_keys)
        cap *= 2;
    if (rl == NULL) {
        *err = "out of memory";
        return NULL;
    }
    pthread_mutex_init(&rl->lock, NULL);
    pthread_cond_init(&rl->work, NULL);
    for (size_t i = 0; i < LEASE_LOCKS; i++)
        pthread_mutex_init(&rl->lease_locks[i], NULL);
    rl->store.slots = calloc(cap, sizeof(struct slot));
    rl->leases = calloc(LEASE_SLOTS, sizeof(struct lease));
    if (rl->store.slots == NULL || rl->leases == NULL) {
        lh_ratelimit_free(rl);
        *err = "out of memory";
        return NULL;
    }
    rl->store.cap = cap;
    rl->store.max_keys = max_keys;
    if (o->redis_host && o->redis_host[0]) {
        rl->host = strdup(o->redis_host);
        rl->user = o->redis_user ? strdup(o->redis_user) : NULL;
        rl->password = o->redis_password ? strdup(o->redis_password) : NULL;
        if (rl->host == NULL || (o->redis_user && rl->user == NULL) ||
            (o->redis_password && rl->password == NULL)) {
            lh_ratelimit_free(rl);
            *err = "out of memory";
            return NULL;
        }
    }
    rl->port = o->redis_port ? o->redis_port : 6379;
    rl->db = o->redis_db;
    double t = o->timeout > 0 ? o->timeout : 0.1;
    rl->timeout.tv_sec = (time_t)t;
    rl->timeout.tv_usec = (suseconds_t)((t - (double)(time_t)t) * 1e6);
    if (pthread_create(&rl->thread, NULL, batcher_main, rl) != 0) {
        lh_ratelimit_free(rl);
        *err = "cannot start the rate-limit thread";
        return NULL;
    }
    rl->started = 1;
    return rl;
}

/* Zeroes each key's tail so that identical checks compare equal bytewise. */
static void zero_key_tails(struct lh_ratelimit_check *c)
{
    for (size_t r = 0; r < c->nrules; r++) {
        size_t len = strnlen(c->rules[r].key, LH_RATELIMIT_KEY_MAX - 1);
        memset(c->rules[r].key + len, 0, LH_RATELIMIT_KEY_MAX - len);
    }
}

int lh_ratelimit_try_lease(struct lh_ratelimit *rl, struct lh_ratelimit_check *c)
{
    if (rl->host == NULL)
        return 0;
    zero_key_tails(c);
    return take_lease(rl, c);
}

void lh_ratelimit_submit(struct lh_ratelimit *rl, struct lh_ratelimit_check *c)
{
    zero_key_tails(c);
    c->_next = NULL;
    pthread_mutex_lock(&rl->lock);
    if (rl->stopped) {
        struct group g = {.first = c, .k = 1};
        decide_local(&rl->store, &g);
        fill(c, &g, 0, 1, 0);
        pthread_mutex_unlock(&rl->lock);
        c->task.done(&c->task);
        return;
    }
    if (rl->tail)
        rl->tail->_next = c;
    else
        rl->head = c;
    rl->tail = c;
    pthread_cond_signal(&rl->work);
    pthread_mutex_unlock(&rl->lock);
}

void lh_ratelimit_stop(struct lh_ratelimit *rl)
{
    pthread_mutex_lock(&rl->lock);
    int join = rl->started && !rl->stopping;
    rl->stopping = 1;
    pthread_cond_signal(&rl->work);
    pthread_mutex_unlock(&rl->lock);
    if (join)
        pthread_join(rl->thread, NULL);
    pthread_mutex_lock(&rl->lock);
    rl->stopped = 1;
    pthread_mutex_unlock(&rl->lock);
}

void lh_ratelimit_free(struct lh_ratelimit *rl)
{
    if (rl == NULL)
        return;
    if (rl->started)
        lh_ratelimit_stop(rl);
    if (rl->redis)
        redisFree(rl->redis);
    if (rl->store.slots) {
        store_clear(&rl->store);
        free(rl->store.slots);
    }
    free(rl->leases);
    for (size_t i = 0; i < LEASE_LOCKS; i++)
        pthread_mutex_destroy(&rl->lease_locks[i]);
    pthread_cond_destroy(&rl->work);
    pthread_mutex_destroy(&rl->lock);
    free(rl->host);
    free(rl->user);
    free(rl->password);
    free(rl);
}

int lh_ratelimit_redis_up(const struct lh_ratelimit *rl)
{
    return rl->redis_up;
}

/* -- Headers ------------------------------------------------------------------ */

/* A header value built without printf, which costs as much as the rest of
 * these headers on every limited response. */
struct value {
    char text[96];
    size_t len;
};

static struct value *put_text(struct value *v, const char *s)
{
    size_t n = strlen(s);
    if (v->len + n < sizeof(v->text)) {
        memcpy(v->text + v->len, s, n + 1);
        v->len += n;
    }
    return v;
}

static struct value *put_long(struct value *v, long n)
{
    char digits[24], *p = digits + sizeof(digits);
    unsigned long u = n < 0 ? 0UL - (unsigned long)n : (unsigned long)n;

    *--p = '\0';
    do
        *--p = (char)('0' + u % 10);
    while ((u /= 10) != 0);
    if (n < 0)
        *--p = '-';
    return put_text(v, p);
}

static const char *value_of_long(struct value *v, long n)
{
    v->len = 0;
    return put_long(v, n)->text;
}

/* "w<window>";<key>=<a>;<key2>=<b>, the IETF draft's field shape */
static const char *ietf_field(struct value *v, long window, const char *k1, long a,
                              const char *k2, long b)
{
    v->len = 0;
    put_long(put_text(v, "\"w"), window);
    put_long(put_text(put_text(put_text(v, "\";"), k1), "="), a);
    return put_long(put_text(put_text(put_text(v, ";"), k2), "="), b)->text;
}

void lh_ratelimit_emit_headers(const struct lh_rate_headers *h, long now, lh_header_fn add,
                               void *arg)
{
    struct value v;

    add(arg, "X-RateLimit-Limit", value_of_long(&v, h->limit));
    add(arg, "X-RateLimit-Remaining", value_of_long(&v, h->remaining));
    add(arg, "X-RateLimit-Reset", value_of_long(&v, now + h->reset));
    add(arg, "RateLimit-Policy", ietf_field(&v, h->window, "q", h->limit, "w", h->window));
    add(arg, "RateLimit", ietf_field(&v, h->window, "r", h->remaining, "t", h->reset));
}

/* -- Limit strings ----------------------------------------------------------- */

static long unit_seconds(const char *u, size_t len)
{
    static const struct {
        const char *name;
        long seconds;
    } units[] = {{"second", 1}, {"minute", 60}, {"hour", 3600}, {"day", 86400}};

    if (len > 1 && tolower((unsigned char)u[len - 1]) == 's')
        len--;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
        if (strlen(units[i].name) == len && strncasecmp(units[i].name, u, len) == 0)
            return units[i].seconds;
    return 0;
}

/* One "N per [M] unit" or "N/[M ]unit" part of [s, end). */
static int parse_one(const char *s, const char *end, struct lh_rate *out)
{
    char *e;
    while (s < end && isspace((unsigned char)*s))
        s++;
    while (end > s && isspace((unsigned char)end[-1]))
        end--;
    if (s == end || !isdigit((unsigned char)*s))
        return -1;
    errno = 0;
    long n = strtol(s, &e, 10);
    if (e > end || n <= 0 || n > LH_RATE_MAX_LIMIT || errno == ERANGE)
        return -1;
    s = e;
    while (s < end && isspace((unsigned char)*s))
        s++;
    if (s < end && *s == '/')
        s++;
    else if (end - s > 3 && strncasecmp(s, "per", 3) == 0 && isspace((unsigned char)s[3]))
        s += 3;
    else
        return -1;
    while (s < end && isspace((unsigned char)*s))
        s++;
    long mult = 1;
    if (s < end && isdigit((unsigned char)*s)) {
        errno = 0;
        mult = strtol(s, &e, 10);
        if (e > end || mult <= 0 || errno == ERANGE)
            return -1;
        s = e;
        while (s < end && isspace((unsigned char)*s))
            s++;
    }
    long unit = unit_seconds(s, (size_t)(end - s));
    if (unit == 0 || mult > 366L * 86400 / unit)
        return -1;
    out->limit = n;
    out->window = mult * unit;
    return 0;
}

enum lh_status lh_rate_parse(const char *spec, struct lh_rate *out, size_t max, size_t *n,
                             char *err, size_t errlen)
{
    const char *p = spec;

    *n = 0;
    for (;;) {
        const char *semi = strchr(p, ';');
        const char *end = semi ? semi : p + strlen(p);
        if (*n == max) {
            snprintf(err, errlen, "more than %zu limits in '%s'", max, spec);
            return LH_ERR_INVALID;
        }
        if (parse_one(p, end, &out[*n]) != 0) {
            snprintf(err, errlen, "bad limit '%.*s' (want like '500 per hour' or '10/minute')",
                     (int)(end - p), p);
            return LH_ERR_INVALID;
        }
        (*n)++;
        if (semi == NULL)
            return LH_OK;
        p = semi + 1;
    }
}
