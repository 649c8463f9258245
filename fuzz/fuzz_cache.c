/* fuzz/fuzz_cache.c: invalidation patterns and messages: a pattern, then
 * keys, one per line. */
#include "fuzz.h"
#include "luahost/cache.h"

static struct lh_cache *cache;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *parts[FUZZ_MAX_PARTS];
    int n;
    char *copy = fuzz_parts(data, size, parts, FUZZ_MAX_PARTS, &n);

    if (cache == NULL)
        cache = lh_cache_new(NULL);
    if (copy && cache) {
        for (int i = 1; i < n; i++) {
            lh_cache_pattern_match(parts[0], strlen(parts[0]), parts[i], strlen(parts[i]));
            lh_cache_set(cache, parts[i], strlen(parts[i]), "v", 1, 60, 0);
        }
        lh_cache_apply_message(cache, parts[0], strlen(parts[0]));
        lh_cache_invalidate_pattern(cache, parts[0], strlen(parts[0]));
    }
    free(copy);
    return 0;
}
