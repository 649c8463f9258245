/* fuzz/fuzz_router.c: route patterns (lines before an empty line) and
 * request paths (the lines after). */
#include "fuzz.h"
#include "luahost/router.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *parts[FUZZ_MAX_PARTS], err[256];
    int n, paths = 0;
    char *copy = fuzz_parts(data, size, parts, FUZZ_MAX_PARTS, &n);
    struct lh_router *r = lh_router_new();

    for (int i = 0; copy && r && i < n; i++) {
        if (!paths && parts[i][0] == '\0') {
            paths = 1;
            continue;
        }
        if (!paths) {
            lh_router_add(r, i % 2 ? "POST" : "GET", parts[i], i, err, sizeof(err));
        } else {
            struct lh_router_match m;
            lh_router_match(r, "GET", parts[i], strlen(parts[i]), &m);
            lh_router_match(r, "DELETE", parts[i], strlen(parts[i]), &m);
        }
    }
    lh_router_free(r);
    free(copy);
    return 0;
}
