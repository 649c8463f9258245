/* fuzz/fuzz_ratelimit.c: rate-limit strings ("500 per hour; 10/minute"). */
#include "fuzz.h"
#include "luahost/ratelimit.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *parts[1], err[256];
    int n;
    char *copy = fuzz_parts(data, size, parts, 1, &n);
    struct lh_rate rates[8];
    size_t count;

    if (copy)
        lh_rate_parse(parts[0], rates, 8, &count, err, sizeof(err));
    free(copy);
    return 0;
}
