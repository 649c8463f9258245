/* fuzz/fuzz.h: what every libFuzzer target here shares. */
#ifndef LUAHOST_FUZZ_H
#define LUAHOST_FUZZ_H
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_PARTS 8

/* Splits the input at '\n' into at most max NUL-terminated parts (the last
 * one keeps any further newlines), in one allocation to free; a part never
 * holds a NUL byte (cut there), as C strings from the network never do. */
static inline char *fuzz_parts(const uint8_t *data, size_t size, char **parts, int max, int *n)
{
    char *copy = malloc(size + 1);
    if (copy == NULL)
        return NULL;
    memcpy(copy, data, size);
    copy[size] = '\0';
    *n = 0;
    char *p = copy;
    while (*n < max) {
        parts[(*n)++] = p;
        char *nl = *n < max ? strchr(p, '\n') : NULL;
        if (nl == NULL)
            break;
        *nl = '\0';
        p = nl + 1;
    }
    return copy;
}

#endif
