/* bench/c/cache_bench.c: the cost of an L1 cache hit from C, from 1, 2 and
 * 8 threads at once (./build/bench/cache_bench). The value is the
 * /cached route's list: 20 small objects as JSON, about 1.6 kB. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "luahost/cache.h"

#define HITS 2000000
#define KEYS 100


static char sink[4096];

static void copy_out(void *arg, const char *value, size_t len, double ttl_left)
{
    (void)arg;
    (void)ttl_left;
    memcpy(sink, value, len < sizeof(sink) ? len : sizeof(sink));
}

struct run {
    struct lh_cache *cache;
    int misses;
};

static void *hit_loop(void *arg)
{
    struct run *r = arg;
    char key[32];
    for (int i = 0; i < HITS; i++) {
        int klen = snprintf(key, sizeof(key), "gallery:list:%d", i % KEYS);
        if (lh_cache_get(r->cache, key, (size_t)klen, 0, copy_out, NULL) != LH_CACHE_FRESH)
            r->misses++;
    }
    return NULL;
}

int main(void)
{
    struct lh_cache *c = lh_cache_new(NULL);
    char value[2048], key[32];
    size_t len = 0;

    if (c == NULL)
        return 1;
    len += (size_t)snprintf(value, sizeof(value), "[");
    for (int i = 1; i <= 20; i++)
        len += (size_t)snprintf(value + len, sizeof(value) - len,
                                "%s{\"id\":%d,\"title\":\"Image %d\",\"author\":\"user%d\","
                                "\"views\":%d,\"format\":\"svg\"}",
                                i > 1 ? "," : "", i, i, i % 5, i * 10);
    len += (size_t)snprintf(value + len, sizeof(value) - len, "]");
    for (int i = 0; i < KEYS; i++) {
        int klen = snprintf(key, sizeof(key), "gallery:list:%d", i);
        lh_cache_set(c, key, (size_t)klen, value, len, 3600, 0);
    }

    static const int thread_counts[] = {1, 2, 8};
    for (size_t run = 0; run < sizeof(thread_counts) / sizeof(thread_counts[0]); run++) {
        int threads = thread_counts[run];
        pthread_t t[8];
        struct run runs[8];
        double start = lh_monotonic_seconds();
        for (int i = 0; i < threads; i++) {
            runs[i] = (struct run){c, 0};
            pthread_create(&t[i], NULL, hit_loop, &runs[i]);
        }
        int misses = 0;
        for (int i = 0; i < threads; i++) {
            pthread_join(t[i], NULL);
            misses += runs[i].misses;
        }
        double elapsed = lh_monotonic_seconds() - start;
        printf("%d thread(s): %.0f ns per hit (%zu-byte value copied out), %.1f M hits/s in all, "
               "%d misses\n",
               threads, elapsed / HITS * 1e9, len, threads * HITS / elapsed / 1e6, misses);
    }
    lh_cache_free(c);
    return 0;
}
