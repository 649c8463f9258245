/* include/luahost/cache.h: the L1 cache, an in-process LRU with a TTL per
 * entry, bounded by entry count and by bytes, shared by every worker thread.
 *
 * Values are opaque bytes (luahost stores JSON text), copied in on set and
 * out on get, so any thread can read what any other stored; the copy out
 * happens outside the lock, which guards only the lookup and the LRU move. Keys hash to one of a power-of-two number of shards, each
 * with its own lock, hash table and LRU list; the bounds are split evenly
 * between shards, so eviction is LRU within a shard.
 *
 * An entry is fresh until its TTL, then stale for its `stale` seconds (served
 * only to callers that accept it), then gone: expired entries are never
 * returned and are dropped when met.
 *
 * Single flight: lh_cache_flight_join makes the first caller for a key its
 * leader and queues the others as waiters until the leader finishes, so one
 * computation serves every concurrent miss of the process.
 *
 * Thread safety: every function may be called from any thread, except
 * lh_cache_free. */
#ifndef LUAHOST_CACHE_H
#define LUAHOST_CACHE_H
#include <stddef.h>
#include <stdint.h>
#include "luahost/common.h"

struct lh_cache; /* opaque */

struct lh_cache_options {
    size_t max_entries;  /* 0: 1000 */
    size_t max_bytes;    /* keys + values; 0: 64 MiB */
    unsigned shards;     /* rounded up to a power of two; 0: 16; 1 for exact LRU */
    double (*now)(void); /* seconds on a monotonic clock; NULL: CLOCK_MONOTONIC */
};

struct lh_cache *lh_cache_new(const struct lh_cache_options *o);
void lh_cache_free(struct lh_cache *c);

enum lh_cache_state {
    LH_CACHE_MISS,
    LH_CACHE_FRESH,
    LH_CACHE_STALE, /* past its TTL, inside its stale window */
};

/* Receives a found value, outside every lock (the entry stays alive until
 * fn returns): copy it. ttl_left is negative for a stale entry. */
typedef void (*lh_cache_value_fn)(void *arg, const char *value, size_t len, double ttl_left);

/* Looks key up and counts a hit or a miss. A stale entry is reported (fn
 * called) only when accept_stale, else it is a miss. */
enum lh_cache_state lh_cache_get(struct lh_cache *c, const char *key, size_t klen, int accept_stale,
                                 lh_cache_value_fn fn, void *arg);

/* Whether key has a fresh entry, without counting a hit or a miss or
 * touching its place in the LRU: for marks the cache keeps for itself. */
int lh_cache_contains(struct lh_cache *c, const char *key, size_t klen);
/* Stores a copy of value for ttl seconds (> 0), then stale for stale seconds
 * (>= 0), evicting least recently used entries to stay in bounds.
 * LH_ERR_INVALID for a bad ttl or an entry larger than a shard's byte share;
 * LH_ERR_NOMEM. */
enum lh_status lh_cache_set(struct lh_cache *c, const char *key, size_t klen, const char *value,
                            size_t vlen, double ttl, double stale);
/* Counts deletions (lh_cache_delete, lh_cache_invalidate_pattern, and
 * those another instance sends): read it before computing or fetching a
 * value, store with lh_cache_set_since. */
uint64_t lh_cache_generation(struct lh_cache *c);
/* lh_cache_set, unless something was deleted since generation was read:
 * then LH_ERR_CONFLICT and nothing stored, since the value may predate the
 * change the deletion announced. */
enum lh_status lh_cache_set_since(struct lh_cache *c, uint64_t generation, const char *key,
                                  size_t klen, const char *value, size_t vlen, double ttl,
                                  double stale);
/* 1 when key was present. */
int lh_cache_delete(struct lh_cache *c, const char *key, size_t klen);
/* Drops every key matching a Redis-style glob (*, ?, [a-z], [^x], \x);
 * returns how many. */
size_t lh_cache_invalidate_pattern(struct lh_cache *c, const char *pattern, size_t plen);
/* Redis-style glob match. */
int lh_cache_pattern_match(const char *pattern, size_t plen, const char *s, size_t slen);

/* -- Single flight ----------------------------------------------------------- */

#define LH_CACHE_FLIGHT_ERR_MAX 256

/* A caller waiting for a leader. wake runs once, on the leader's thread and
 * outside every lock, after the leader finished: error is "" when it
 * succeeded (kind then says what failed, e.g. "io", or is ""), and value a
 * malloc'd copy of the leader's result (the waiter frees it), NULL when there
 * was none or no memory for it. */
struct lh_cache_waiter {
    void (*wake)(struct lh_cache_waiter *w);
    char error[LH_CACHE_FLIGHT_ERR_MAX];
    char kind[16];
    char *value;
    size_t vlen;
    struct lh_cache_waiter *_next;
};

struct lh_cache_flight; /* opaque: a running computation */

/* With no flight for key: starts one in *leader (the caller leads and must
 * call lh_cache_flight_finish). Otherwise *leader is NULL and w, when not
 * NULL, is queued. LH_ERR_NOMEM: neither happened. */
enum lh_status lh_cache_flight_join(struct lh_cache *c, const char *key, size_t klen,
                                    struct lh_cache_waiter *w, struct lh_cache_flight **leader);
/* Ends the flight and wakes its waiters, handing each the error (NULL for
 * success) and its kind (may be NULL), and a copy of value (may be NULL). */
void lh_cache_flight_finish(struct lh_cache *c, struct lh_cache_flight *f, const char *error,
                            const char *kind, const char *value, size_t vlen);

/* -- Invalidation between instances ------------------------------------------ */

/* Each cache has a random origin id. Deletes and pattern invalidations are
 * sent to other instances as "<origin> k <key>" or "<origin> p <pattern>",
 * on the channel of their Redis database: "luahost:cache:invalidate:<db>".
 * Pub/sub spans a server's databases, and instances on another database
 * share no L2 keys with these. */
#define LH_CACHE_CHANNEL_MAX 48
void lh_cache_channel(int db, char *buf, size_t len);

const char *lh_cache_origin(const struct lh_cache *c);
/* Applies a received message; messages from this cache's own origin are
 * ignored. Returns the entries dropped, or -1 for a malformed message. */
long lh_cache_apply_message(struct lh_cache *c, const char *msg, size_t len);

/* -- Statistics -------------------------------------------------------------- */

/* Events counted for the levels above L1 (by the Lua side). */
enum lh_cache_counter {
    LH_CACHE_L2_HITS,
    LH_CACHE_L2_MISSES,
    LH_CACHE_L2_ERRORS,  /* Redis errors and timeouts */
    LH_CACHE_COMPUTATIONS,
    LH_CACHE_FLIGHT_WAITS, /* callers that waited for a leader in this process */
    LH_CACHE_LOCK_WAITS,   /* leaders that waited for another instance's lock */
    LH_CACHE_STALE_SERVED,
    LH_CACHE_INVALIDATIONS_RECEIVED,
    LH_CACHE_COUNTERS
};

void lh_cache_count(struct lh_cache *c, enum lh_cache_counter counter);
const char *lh_cache_counter_name(enum lh_cache_counter counter);

struct lh_cache_stats {
    uint64_t hits, misses, stale_hits, evictions, expirations;
    size_t entries, bytes, max_entries, max_bytes;
    uint64_t counters[LH_CACHE_COUNTERS];
};

void lh_cache_stats(struct lh_cache *c, struct lh_cache_stats *st);

#endif
