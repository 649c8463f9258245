/* fuzz/fuzz_svg.c: the SVG sanitizer, on raw bytes (NULs included). */
#include "fuzz.h"
#include "luahost/svg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char why[256];
    char *copy = malloc(size ? size : 1); /* exactly size bytes: reads past them show */
    if (copy) {
        memcpy(copy, data, size);
        lh_svg_check(copy, size, why, sizeof(why));
    }
    free(copy);
    return 0;
}
