/* fuzz/fuzz_url.c: service URLs (db_url, redis_url). */
#include "fuzz.h"
#include "luahost/url.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *parts[1];
    int n;
    char *copy = fuzz_parts(data, size, parts, 1, &n);
    struct lh_url url;
    const char *err;

    if (copy)
        lh_url_parse(parts[0], &url, &err);
    free(copy);
    return 0;
}
