/* fuzz/fuzz_json.c: the JSON parser, and the encoder on what it read: every
 * string and number encoded must parse back to itself. */
#include "fuzz.h"
#include "luahost/json.h"

struct read_back {
    const char *s;
    size_t len;
    double number;
};

static int got_string(void *arg, const char *s, size_t len)
{
    struct read_back *r = arg;
    r->s = s;
    r->len = len;
    return 0;
}

static int got_number(void *arg, double v)
{
    ((struct read_back *)arg)->number = v;
    return 0;
}

/* Parses the encoder's text and returns what it read; a parse error is a
 * finding: the encoder wrote what JSON refuses. */
static struct read_back parse_back(const struct lh_json_buf *text, struct lh_json_buf *scratch)
{
    struct lh_json_visitor v = {.string = got_string, .number = got_number};
    struct read_back r = {0};
    char err[128];

    if (lh_json_parse(text->data, text->len, &v, &r, scratch, err, sizeof(err)) != LH_OK)
        abort();
    return r;
}

static int on_string(void *arg, const char *s, size_t len)
{
    struct lh_json_buf text, scratch;

    lh_json_buf_init(&text, 1 << 20);
    lh_json_buf_init(&scratch, 1 << 20);
    lh_json_string(&text, s, len);
    if (!text.failed) {
        struct read_back r = parse_back(&text, &scratch);
        if (r.len != len || (len > 0 && memcmp(r.s, s, len) != 0))
            abort();
    }
    lh_json_buf_free(&scratch);
    lh_json_buf_free(&text);
    (void)arg;
    return 0;
}

static int on_number(void *arg, double v)
{
    struct lh_json_buf text;

    lh_json_buf_init(&text, 64);
    if (lh_json_number(&text, v) == LH_OK && parse_back(&text, NULL).number != v)
        abort();
    lh_json_buf_free(&text);
    (void)arg;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct lh_json_visitor v = {.string = on_string, .key = on_string, .number = on_number};
    char err[256];
    char *copy = malloc(size ? size : 1);

    if (copy) {
        memcpy(copy, data, size);
        lh_json_parse(copy, size, &v, NULL, NULL, err, sizeof(err));
    }
    free(copy);
    return 0;
}
