/* src/json.c: JSON text building blocks. */
#include "luahost/json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void lh_json_buf_init(struct lh_json_buf *b, size_t max)
{
    memset(b, 0, sizeof(*b));
    b->max = max;
}

void lh_json_buf_free(struct lh_json_buf *b)
{
    free(b->data);
    memset(b, 0, sizeof(*b));
}

void lh_json_buf_reset(struct lh_json_buf *b)
{
    b->len = 0;
    b->failed = 0;
}

static int reserve(struct lh_json_buf *b, size_t more)
{
    if (b->failed)
        return 0;
    if (more > b->max - b->len) {
        b->failed = 1;
        return 0;
    }
    if (b->len + more <= b->cap)
        return 1;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + more)
        cap *= 2;
    if (cap > b->max)
        cap = b->max;
    char *grown = realloc(b->data, cap);
    if (grown == NULL) {
        b->failed = 1;
        return 0;
    }
    b->data = grown;
    b->cap = cap;
    return 1;
}

void lh_json_raw(struct lh_json_buf *b, const char *s, size_t len)
{
    if (reserve(b, len)) {
        memcpy(b->data + b->len, s, len);
        b->len += len;
    }
}

void lh_json_string(struct lh_json_buf *b, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";

    /* Worst case: every byte becomes \u00XX. */
    if (!reserve(b, 6 * len + 2))
        return;
    char *out = b->data + b->len;
    *out++ = '"';
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"':
            *out++ = '\\';
            *out++ = '"';
            break;
        case '\\':
            *out++ = '\\';
            *out++ = '\\';
            break;
        case '\n':
            *out++ = '\\';
            *out++ = 'n';
            break;
        case '\r':
            *out++ = '\\';
            *out++ = 'r';
            break;
        case '\t':
            *out++ = '\\';
            *out++ = 't';
            break;
        default:
            if (c < 0x20 || c == 0x7f) {
                memcpy(out, "\\u00", 4);
                out[4] = hex[c >> 4];
                out[5] = hex[c & 15];
                out += 6;
            } else {
                *out++ = (char)c;
            }
        }
    }
    *out++ = '"';
    b->len = (size_t)(out - b->data);
}

enum lh_status lh_json_number(struct lh_json_buf *b, double n)
{
    char text[32];
    int len;

    if (!isfinite(n))
        return LH_ERR_INVALID;
    /* Every integer of magnitude below 2^53 is exact in a double: print it
     * whole. Other numbers: the shortest of 15, 16, 17 digits that reads back
     * as the same double. */
    if (n == floor(n) && fabs(n) < 9007199254740992.0) {
        len = snprintf(text, sizeof(text), "%lld", (long long)n);
    } else {
        for (int digits = 15; digits <= 17; digits++) {
            len = snprintf(text, sizeof(text), "%.*g", digits, n);
            if (strtod(text, NULL) == n)
                break;
        }
    }
    lh_json_raw(b, text, (size_t)len);
    return LH_OK;
}
