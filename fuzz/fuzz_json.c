/* fuzz/fuzz_json.c: the JSON parser, and the encoder on what it read. */
#include "fuzz.h"
#include "luahost/json.h"

static int on_string(void *arg, const char *s, size_t len)
{
    lh_json_string(arg, s, len);
    return 0;
}

static int on_number(void *arg, double v)
{
    lh_json_number(arg, v);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct lh_json_visitor v = {.string = on_string, .key = on_string, .number = on_number};
    struct lh_json_buf out;
    char err[256];
    char *copy = malloc(size ? size : 1);

    if (copy) {
        memcpy(copy, data, size);
        lh_json_buf_init(&out, 1 << 20);
        lh_json_parse(copy, size, &v, &out, NULL, err, sizeof(err));
        lh_json_buf_free(&out);
    }
    free(copy);
    return 0;
}
