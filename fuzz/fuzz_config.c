/* fuzz/fuzz_config.c: option values as flags and LUAHOST_* give them
 * ("name\nvalue"): parsed and checked by lh_config_set. */
#include "fuzz.h"
#include "luahost/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *parts[2], err[512];
    int n;
    char *copy = fuzz_parts(data, size, parts, 2, &n);
    struct lh_config cfg;

    if (copy && lh_config_init(&cfg) == LH_OK) {
        if (n == 2) {
            lh_config_set(&cfg, parts[0], parts[1], err, sizeof(err));
        } else { /* one value tried on every option */
            for (size_t i = 0; i < lh_config_option_count(); i++)
                lh_config_set(&cfg, lh_config_option_at(i)->name, parts[0], err, sizeof(err));
        }
        lh_config_free(&cfg);
    }
    free(copy);
    return 0;
}
