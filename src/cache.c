/* src/cache.c: the L1 cache (see include/luahost/cache.h).
 *
 * Each shard is a chained hash table plus a circular LRU list with a
 * sentinel, under one mutex. An entry is one allocation: the header, the key,
 * then the value. Flights in progress are a short list per shard: there are
 * only as many as keys being computed at once. */
#include "luahost/cache.h"

#include <pthread.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define DEFAULT_ENTRIES 1000
#define DEFAULT_BYTES (64u * 1024 * 1024)
#define DEFAULT_SHARDS 16

/* Readers copy a value outside the shard lock: an entry is freed when both
 * the table and every reader have let go of it. */
/* LRU list links; a shard's sentinel is a bare link. */
struct lru_link {
    struct lru_link *prev, *next; /* sentinel.next is the most recent */
};

struct entry {
    struct lru_link link; /* first: a link converts back to its entry */
    atomic_int refs;      /* the table's reference, plus one per reader */
    struct entry *hash_next;
    uint64_t hash;
    double expires, stale_until;
    size_t klen, vlen;
    char data[]; /* key, then value */
};

struct lh_cache_flight {
    struct lh_cache_flight *next;
    struct lh_cache_waiter *waiters;
    uint64_t hash;
    size_t klen;
    char key[];
};

struct shard {
    pthread_mutex_t lock;
    struct entry **buckets;
    size_t nbuckets; /* a power of two */
    struct lru_link lru;
    size_t count, bytes, max_entries, max_bytes;
    uint64_t hits, misses, stale_hits, evictions, expirations;
    struct lh_cache_flight *flights;
};

struct lh_cache {
    unsigned nshards; /* a power of two */
    double (*now)(void);
    uint64_t seed;
    size_t max_entries, max_bytes;
    char origin[17]; /* hex */
    _Atomic uint64_t generation; /* bumped by every deletion, before it */
    _Atomic uint64_t counters[LH_CACHE_COUNTERS];
    struct shard shards[];
};


/* FNV-1a from a per-process seed: chains stay short for ordinary keys, and
 * a shard never holds more than its share of entries anyway. */
static uint64_t hash_key(const struct lh_cache *c, const char *key, size_t klen)
{
    uint64_t h = c->seed;
    for (size_t i = 0; i < klen; i++) {
        h ^= (unsigned char)key[i];
        h *= 0x100000001b3ull;
    }
    return h ^ (h >> 29);
}

static struct shard *shard_of(struct lh_cache *c, uint64_t hash)
{
    return &c->shards[(hash >> 40) & (c->nshards - 1)];
}

static size_t entry_size(size_t klen, size_t vlen)
{
    return sizeof(struct entry) + klen + vlen;
}

static struct entry *entry_of(struct lru_link *l)
{
    return (struct entry *)l;
}

static void entry_unref(struct entry *e)
{
    if (atomic_fetch_sub_explicit(&e->refs, 1, memory_order_acq_rel) == 1)
        free(e);
}

struct lh_cache *lh_cache_new(const struct lh_cache_options *o)
{
    size_t entries = o && o->max_entries ? o->max_entries : DEFAULT_ENTRIES;
    size_t bytes = o && o->max_bytes ? o->max_bytes : DEFAULT_BYTES;
    unsigned want = o && o->shards ? o->shards : DEFAULT_SHARDS, n = 1;

    while (n < want && n < 1024)
        n <<= 1;
    while (n > 1 && entries / n < 1)
        n >>= 1;
    struct lh_cache *c = calloc(1, sizeof(*c) + n * sizeof(struct shard));
    if (c == NULL)
        return NULL;
    c->nshards = n;
    c->now = o && o->now ? o->now : lh_monotonic_seconds;
    c->max_entries = entries;
    c->max_bytes = bytes;
    unsigned char rnd[16];
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
        free(c);
        return NULL;
    }
    memcpy(&c->seed, rnd + 8, sizeof(c->seed));
    for (int i = 0; i < 8; i++)
        snprintf(c->origin + 2 * i, 3, "%02x", rnd[i]);
    for (unsigned i = 0; i < n; i++) {
        struct shard *s = &c->shards[i];
        pthread_mutex_init(&s->lock, NULL);
        s->lru.prev = s->lru.next = &s->lru;
        s->max_entries = entries / n;
        s->max_bytes = bytes / n;
        s->nbuckets = 16;
        s->buckets = calloc(s->nbuckets, sizeof(*s->buckets));
        if (s->buckets == NULL) {
            c->nshards = i + 1;
            lh_cache_free(c);
            return NULL;
        }
    }
    return c;
}

void lh_cache_free(struct lh_cache *c)
{
    if (c == NULL)
        return;
    for (unsigned i = 0; i < c->nshards; i++) {
        struct shard *s = &c->shards[i];
        for (struct lru_link *l = s->lru.next, *next; l != &s->lru; l = next) {
            next = l->next;
            entry_unref(entry_of(l));
        }
        for (struct lh_cache_flight *f = s->flights, *next; f; f = next) {
            next = f->next;
            free(f);
        }
        free(s->buckets);
        pthread_mutex_destroy(&s->lock);
    }
    free(c);
}

/* -- Shard internals (lock held) --------------------------------------------- */

static struct entry **find_slot(struct shard *s, uint64_t hash, const char *key, size_t klen)
{
    struct entry **p = &s->buckets[hash & (s->nbuckets - 1)];
    for (; *p; p = &(*p)->hash_next) {
        struct entry *e = *p;
        if (e->hash == hash && e->klen == klen && memcmp(e->data, key, klen) == 0)
            return p;
    }
    return p;
}

static void lru_unlink(struct entry *e)
{
    e->link.prev->next = e->link.next;
    e->link.next->prev = e->link.prev;
}

static void lru_push_front(struct shard *s, struct entry *e)
{
    e->link.prev = &s->lru;
    e->link.next = s->lru.next;
    s->lru.next->prev = &e->link;
    s->lru.next = &e->link;
}


static void remove_entry(struct shard *s, struct entry **slot)
{
    struct entry *e = *slot;
    *slot = e->hash_next;
    lru_unlink(e);
    s->count--;
    s->bytes -= entry_size(e->klen, e->vlen);
    entry_unref(e);
}

static void remove_by_key(struct shard *s, const struct entry *e)
{
    remove_entry(s, find_slot(s, e->hash, e->data, e->klen));
}

/* Doubles the table when it is fuller than one entry per bucket; on failure
 * the table stays as it is, only with longer chains. */
static void grow(struct shard *s)
{
    size_t n = s->nbuckets * 2;
    struct entry **buckets = calloc(n, sizeof(*buckets));
    if (buckets == NULL)
        return;
    for (size_t i = 0; i < s->nbuckets; i++) {
        for (struct entry *e = s->buckets[i], *next; e; e = next) {
            next = e->hash_next;
            e->hash_next = buckets[e->hash & (n - 1)];
            buckets[e->hash & (n - 1)] = e;
        }
    }
    free(s->buckets);
    s->buckets = buckets;
    s->nbuckets = n;
}

/* -- Entries ----------------------------------------------------------------- */

enum lh_cache_state lh_cache_get(struct lh_cache *c, const char *key, size_t klen, int accept_stale,
                                 lh_cache_value_fn fn, void *arg)
{
    uint64_t hash = hash_key(c, key, klen);
    struct shard *s = shard_of(c, hash);
    double now = c->now();
    enum lh_cache_state state = LH_CACHE_MISS;

    pthread_mutex_lock(&s->lock);
    struct entry **slot = find_slot(s, hash, key, klen);
    struct entry *e = *slot;
    if (e != NULL && now >= e->stale_until) {
        remove_entry(s, slot);
        s->expirations++;
        e = NULL;
    }
    if (e != NULL && (now < e->expires || accept_stale)) {
        state = now < e->expires ? LH_CACHE_FRESH : LH_CACHE_STALE;
        if (s->lru.next != &e->link) {
            lru_unlink(e);
            lru_push_front(s, e);
        }
        atomic_fetch_add_explicit(&e->refs, 1, memory_order_relaxed);
    }
    if (state == LH_CACHE_FRESH)
        s->hits++;
    else if (state == LH_CACHE_STALE)
        s->stale_hits++;
    else
        s->misses++;
    pthread_mutex_unlock(&s->lock);
    if (state != LH_CACHE_MISS) {
        fn(arg, e->data + e->klen, e->vlen, e->expires - now);
        entry_unref(e);
    }
    return state;
}

int lh_cache_contains(struct lh_cache *c, const char *key, size_t klen)
{
    uint64_t hash = hash_key(c, key, klen);
    struct shard *s = shard_of(c, hash);
    double now = c->now();

    pthread_mutex_lock(&s->lock);
    struct entry *e = *find_slot(s, hash, key, klen);
    int fresh = e != NULL && now < e->expires;
    pthread_mutex_unlock(&s->lock);
    return fresh;
}

uint64_t lh_cache_generation(struct lh_cache *c)
{
    return atomic_load(&c->generation);
}

/* Stores the entry; with `since`, only if nothing was deleted since that
 * generation (checked under the shard's lock: a deletion bumps the
 * generation before it takes the locks, so either this sees the bump or the
 * deletion sees the entry). */
static enum lh_status set_entry(struct lh_cache *c, const char *key, size_t klen,
                                const char *value, size_t vlen, double ttl, double stale,
                                const uint64_t *since)
{
    uint64_t hash = hash_key(c, key, klen);
    struct shard *s = shard_of(c, hash);
    size_t size = entry_size(klen, vlen);

    if (!(ttl > 0) || !(stale >= 0) || klen > s->max_bytes || vlen > s->max_bytes ||
        size > s->max_bytes)
        return LH_ERR_INVALID;
    struct entry *e = malloc(size);
    if (e == NULL)
        return LH_ERR_NOMEM;
    atomic_init(&e->refs, 1);
    e->hash = hash;
    e->klen = klen;
    e->vlen = vlen;
    memcpy(e->data, key, klen);
    memcpy(e->data + klen, value, vlen);
    double now = c->now();
    e->expires = now + ttl;
    e->stale_until = e->expires + stale;

    pthread_mutex_lock(&s->lock);
    if (since != NULL && atomic_load(&c->generation) != *since) {
        pthread_mutex_unlock(&s->lock);
        free(e);
        return LH_ERR_CONFLICT;
    }
    struct entry **slot = find_slot(s, hash, key, klen);
    if (*slot != NULL)
        remove_entry(s, slot);
    while (s->count > 0 && (s->count + 1 > s->max_entries || s->bytes + size > s->max_bytes)) {
        remove_by_key(s, entry_of(s->lru.prev));
        s->evictions++;
    }
    if (s->count >= s->nbuckets)
        grow(s);
    slot = &s->buckets[hash & (s->nbuckets - 1)];
    e->hash_next = *slot;
    *slot = e;
    lru_push_front(s, e);
    s->count++;
    s->bytes += size;
    pthread_mutex_unlock(&s->lock);
    return LH_OK;
}

enum lh_status lh_cache_set(struct lh_cache *c, const char *key, size_t klen, const char *value,
                            size_t vlen, double ttl, double stale)
{
    return set_entry(c, key, klen, value, vlen, ttl, stale, NULL);
}

enum lh_status lh_cache_set_since(struct lh_cache *c, uint64_t generation, const char *key,
                                  size_t klen, const char *value, size_t vlen, double ttl,
                                  double stale)
{
    return set_entry(c, key, klen, value, vlen, ttl, stale, &generation);
}

int lh_cache_delete(struct lh_cache *c, const char *key, size_t klen)
{
    uint64_t hash = hash_key(c, key, klen);
    struct shard *s = shard_of(c, hash);

    atomic_fetch_add(&c->generation, 1);

    pthread_mutex_lock(&s->lock);
    struct entry **slot = find_slot(s, hash, key, klen);
    int found = *slot != NULL;
    if (found)
        remove_entry(s, slot);
    pthread_mutex_unlock(&s->lock);
    return found;
}

size_t lh_cache_invalidate_pattern(struct lh_cache *c, const char *pattern, size_t plen)
{
    size_t dropped = 0;

    atomic_fetch_add(&c->generation, 1);
    for (unsigned i = 0; i < c->nshards; i++) {
        struct shard *s = &c->shards[i];
        pthread_mutex_lock(&s->lock);
        for (struct lru_link *l = s->lru.next, *next; l != &s->lru; l = next) {
            struct entry *e = entry_of(l);
            next = l->next;
            if (lh_cache_pattern_match(pattern, plen, e->data, e->klen)) {
                remove_by_key(s, e);
                dropped++;
            }
        }
        pthread_mutex_unlock(&s->lock);
    }
    return dropped;
}

/* Matches one character against the class starting after '[' at *pp;
 * leaves *pp on the closing ']' (or the pattern's end). */
static int match_class(const char **pp, const char *end, unsigned char ch)
{
    const char *p = *pp;
    int negate = p < end && *p == '^', matched = 0;

    if (negate)
        p++;
    for (; p < end && *p != ']'; p++) {
        if (*p == '\\' && p + 1 < end) {
            p++;
            matched |= (unsigned char)*p == ch;
        } else if (p + 2 < end && p[1] == '-' && p[2] != ']') {
            unsigned char lo = (unsigned char)p[0], hi = (unsigned char)p[2];
            if (lo > hi) {
                unsigned char t = lo;
                lo = hi;
                hi = t;
            }
            matched |= ch >= lo && ch <= hi;
            p += 2;
        } else {
            matched |= (unsigned char)*p == ch;
        }
    }
    *pp = p;
    return negate ? !matched : matched;
}

/* Iterative glob with one backtrack point per '*': linear in practice, never
 * exponential, whatever the pattern. */
int lh_cache_pattern_match(const char *pattern, size_t plen, const char *s, size_t slen)
{
    const char *p = pattern, *pend = pattern + plen, *send = s + slen;
    const char *star_p = NULL, *star_s = NULL;

    while (s < send) {
        if (p < pend && *p == '*') {
            while (p < pend && *p == '*')
                p++;
            if (p == pend)
                return 1;
            star_p = p;
            star_s = s;
            continue;
        }
        if (p < pend) {
            const char *q = p;
            int ok;
            if (*q == '?') {
                ok = 1;
            } else if (*q == '[') {
                q++;
                ok = match_class(&q, pend, (unsigned char)*s);
            } else {
                if (*q == '\\' && q + 1 < pend)
                    q++;
                ok = *q == *s;
            }
            if (ok) {
                p = q < pend ? q + 1 : q;
                s++;
                continue;
            }
        }
        if (star_p == NULL)
            return 0;
        p = star_p;
        s = ++star_s;
    }
    while (p < pend && *p == '*')
        p++;
    return p == pend;
}

/* -- Single flight ----------------------------------------------------------- */

enum lh_status lh_cache_flight_join(struct lh_cache *c, const char *key, size_t klen,
                                    struct lh_cache_waiter *w, struct lh_cache_flight **leader)
{
    uint64_t hash = hash_key(c, key, klen);
    struct shard *s = shard_of(c, hash);
    struct lh_cache_flight *f;

    *leader = NULL;
    pthread_mutex_lock(&s->lock);
    for (f = s->flights; f; f = f->next) {
        if (f->hash == hash && f->klen == klen && memcmp(f->key, key, klen) == 0)
            break;
    }
    if (f != NULL) {
        if (w != NULL) {
            w->_next = f->waiters;
            f->waiters = w;
        }
        pthread_mutex_unlock(&s->lock);
        return LH_OK;
    }
    f = malloc(sizeof(*f) + klen);
    if (f != NULL) {
        f->hash = hash;
        f->klen = klen;
        memcpy(f->key, key, klen);
        f->waiters = NULL;
        f->next = s->flights;
        s->flights = f;
        *leader = f;
    }
    pthread_mutex_unlock(&s->lock);
    return f ? LH_OK : LH_ERR_NOMEM;
}

void lh_cache_flight_finish(struct lh_cache *c, struct lh_cache_flight *f, const char *error,
                            const char *kind, const char *value, size_t vlen)
{
    struct shard *s = shard_of(c, f->hash);

    pthread_mutex_lock(&s->lock);
    struct lh_cache_flight **p = &s->flights;
    while (*p != f)
        p = &(*p)->next;
    *p = f->next;
    struct lh_cache_waiter *w = f->waiters;
    pthread_mutex_unlock(&s->lock);
    free(f);
    while (w != NULL) {
        struct lh_cache_waiter *next = w->_next; /* wake may free w */
        snprintf(w->error, sizeof(w->error), "%s", error ? error : "");
        snprintf(w->kind, sizeof(w->kind), "%s", kind ? kind : "");
        w->value = value ? malloc(vlen ? vlen : 1) : NULL;
        w->vlen = w->value ? vlen : 0;
        if (w->value)
            memcpy(w->value, value, vlen);
        w->wake(w);
        w = next;
    }
}

/* -- Invalidation between instances ------------------------------------------ */

void lh_cache_channel(int db, char *buf, size_t len)
{
    snprintf(buf, len, "luahost:cache:invalidate:%d", db);
}

const char *lh_cache_origin(const struct lh_cache *c)
{
    return c->origin;
}

long lh_cache_apply_message(struct lh_cache *c, const char *msg, size_t len)
{
    size_t olen = strlen(c->origin);
    const char *space = memchr(msg, ' ', len);

    if (space == NULL || (size_t)(msg + len - space) < 3 || space[2] != ' ' ||
        (space[1] != 'k' && space[1] != 'p'))
        return -1;
    if ((size_t)(space - msg) == olen && memcmp(msg, c->origin, olen) == 0)
        return 0;
    lh_cache_count(c, LH_CACHE_INVALIDATIONS_RECEIVED);
    const char *arg = space + 3;
    size_t alen = (size_t)(msg + len - arg);
    if (space[1] == 'k')
        return lh_cache_delete(c, arg, alen);
    return (long)lh_cache_invalidate_pattern(c, arg, alen);
}

/* -- Statistics -------------------------------------------------------------- */

void lh_cache_count(struct lh_cache *c, enum lh_cache_counter counter)
{
    atomic_fetch_add_explicit(&c->counters[counter], 1, memory_order_relaxed);
}

const char *lh_cache_counter_name(enum lh_cache_counter counter)
{
    static const char *const names[LH_CACHE_COUNTERS] = {
        [LH_CACHE_L2_HITS] = "l2_hits",
        [LH_CACHE_L2_MISSES] = "l2_misses",
        [LH_CACHE_L2_ERRORS] = "l2_errors",
        [LH_CACHE_COMPUTATIONS] = "computations",
        [LH_CACHE_FLIGHT_WAITS] = "flight_waits",
        [LH_CACHE_LOCK_WAITS] = "lock_waits",
        [LH_CACHE_STALE_SERVED] = "stale_served",
        [LH_CACHE_INVALIDATIONS_RECEIVED] = "invalidations_received",
    };
    return (unsigned)counter < LH_CACHE_COUNTERS ? names[counter] : NULL;
}

void lh_cache_stats(struct lh_cache *c, struct lh_cache_stats *st)
{
    memset(st, 0, sizeof(*st));
    st->max_entries = c->max_entries;
    st->max_bytes = c->max_bytes;
    for (unsigned i = 0; i < c->nshards; i++) {
        struct shard *s = &c->shards[i];
        pthread_mutex_lock(&s->lock);
        st->hits += s->hits;
        st->misses += s->misses;
        st->stale_hits += s->stale_hits;
        st->evictions += s->evictions;
        st->expirations += s->expirations;
        st->entries += s->count;
        st->bytes += s->bytes;
        pthread_mutex_unlock(&s->lock);
    }
    for (int i = 0; i < LH_CACHE_COUNTERS; i++)
        st->counters[i] = atomic_load_explicit(&c->counters[i], memory_order_relaxed);
}
