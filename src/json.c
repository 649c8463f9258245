/* src/json.c: JSON text building blocks and a strict parser. */
#include "luahost/json.h"

#include <math.h>
#include <stdarg.h>
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

void lh_json_buf_shrink(struct lh_json_buf *b, size_t keep)
{
    if (b->cap > keep) {
        size_t max = b->max;
        lh_json_buf_free(b);
        lh_json_buf_init(b, max);
    }
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
    /* len 0 may come with data still NULL: memcpy must not see it. */
    if (len > 0 && reserve(b, len)) {
        memcpy(b->data + b->len, s, len);
        b->len += len;
    }
}

/* Bytes a JSON string cannot hold as they are. DEL is allowed by RFC 8259
 * but escaped, as some terminals and logs act on it. */
static int needs_escape(unsigned char c)
{
    return c < 0x20 || c == '"' || c == '\\' || c == 0x7f;
}

void lh_json_string(struct lh_json_buf *b, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t i = 0;

    lh_json_char(b, '"');
    while (i < len) {
        /* Runs of bytes that need no escape go in with one copy. */
        size_t run = i;
        while (run < len && !needs_escape((unsigned char)s[run]))
            run++;
        lh_json_raw(b, s + i, run - i);
        if (run == len)
            break;
        unsigned char c = (unsigned char)s[run];
        char esc[6] = {'\\', (char)c};
        size_t n = 2;
        switch (c) {
        case '"':
        case '\\':
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        default:
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            n = 6;
        }
        lh_json_raw(b, esc, n);
        i = run + 1;
    }
    lh_json_char(b, '"');
}

/* v in decimal: snprintf costs hundreds of instructions per number. */
static size_t format_integer(char out[24], long long v)
{
    char digits[24];
    size_t n = 0, len = 0;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;

    do {
        digits[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0)
        out[len++] = '-';
    while (n > 0)
        out[len++] = digits[--n];
    return len;
}

enum lh_status lh_json_number(struct lh_json_buf *b, double n)
{
    char text[32];
    int len = 0;

    if (!isfinite(n))
        return LH_ERR_INVALID;
    /* Every integer of magnitude below 2^53 is exact in a double: print it
     * whole. Other numbers: the shortest of 15, 16, 17 digits that reads back
     * as the same double. */
    if (n == floor(n) && fabs(n) < 9007199254740992.0) {
        len = (int)format_integer(text, (long long)n);
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

/* -- Parsing ---- */

struct parser {
    const char *s;
    size_t len, pos;
    const struct lh_json_visitor *v;
    void *arg;
    struct lh_json_buf *scratch;
    char *err;
    size_t errlen;
};

static enum lh_status fail(struct parser *p, size_t at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static enum lh_status fail(struct parser *p, size_t at, const char *fmt, ...)
{
    char what[64];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    snprintf(p->err, p->errlen, "json: %s at byte %zu", what, at);
    return LH_ERR_INVALID;
}

static enum lh_status unexpected(struct parser *p)
{
    if (p->pos == p->len)
        return fail(p, p->pos, "unexpected end of input");
    unsigned char c = (unsigned char)p->s[p->pos];
    if (c >= 0x20 && c < 0x7f)
        return fail(p, p->pos, "unexpected character '%c'", c);
    return fail(p, p->pos, "unexpected byte 0x%02x", c);
}

static enum lh_status stopped(struct parser *p)
{
    return fail(p, p->pos, "stopped by a callback");
}

static enum lh_status nomem(struct parser *p)
{
    fail(p, p->pos, "out of memory");
    return LH_ERR_NOMEM;
}

static int next_is(const struct parser *p, char c)
{
    return p->pos < p->len && p->s[p->pos] == c;
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static void skip_space(struct parser *p)
{
    while (p->pos < p->len) {
        char c = p->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            return;
        p->pos++;
    }
}

static size_t skip_digits(struct parser *p)
{
    size_t start = p->pos;
    while (p->pos < p->len && is_digit(p->s[p->pos]))
        p->pos++;
    return p->pos - start;
}

static enum lh_status literal(struct parser *p, const char *word)
{
    for (size_t i = 0; word[i] != '\0'; i++, p->pos++) {
        if (p->pos == p->len || p->s[p->pos] != word[i])
            return unexpected(p);
    }
    return LH_OK;
}

static enum lh_status number(struct parser *p, double *out)
{
    size_t start = p->pos;
    char local[64], *text = local;

    if (next_is(p, '-'))
        p->pos++;
    if (next_is(p, '0')) {
        p->pos++;
        if (p->pos < p->len && is_digit(p->s[p->pos]))
            return fail(p, start, "leading zero in number");
    } else if (skip_digits(p) == 0) {
        return unexpected(p);
    }
    if (next_is(p, '.')) {
        p->pos++;
        if (skip_digits(p) == 0)
            return unexpected(p);
    }
    if (next_is(p, 'e') || next_is(p, 'E')) {
        p->pos++;
        if (next_is(p, '+') || next_is(p, '-'))
            p->pos++;
        if (skip_digits(p) == 0)
            return unexpected(p);
    }
    /* strtod needs a NUL after the number, which the input may not have. */
    size_t n = p->pos - start;
    if (n < sizeof(local)) {
        memcpy(local, p->s + start, n);
        local[n] = '\0';
    } else {
        lh_json_buf_reset(p->scratch);
        lh_json_raw(p->scratch, p->s + start, n);
        lh_json_raw(p->scratch, "", 1);
        if (p->scratch->failed)
            return nomem(p);
        text = p->scratch->data;
    }
    *out = strtod(text, NULL);
    if (isinf(*out))
        return fail(p, start, "number out of range");
    return LH_OK;
}

/* Whether the 6 bytes at at are \uXXXX; the code unit in *unit. */
static int hex_escape(const struct parser *p, size_t at, unsigned *unit)
{
    if (p->len - at < 6 || p->s[at] != '\\' || p->s[at + 1] != 'u')
        return 0;
    *unit = 0;
    for (size_t i = at + 2; i < at + 6; i++) {
        char c = p->s[i], lower = (char)(c | 0x20);
        *unit <<= 4;
        if (is_digit(c))
            *unit |= (unsigned)(c - '0');
        else if (lower >= 'a' && lower <= 'f')
            *unit |= (unsigned)(lower - 'a' + 10);
        else
            return 0;
    }
    return 1;
}

/* The \uXXXX at p->pos, or a surrogate pair of them, appended as UTF-8. */
static enum lh_status unicode(struct parser *p)
{
    size_t at = p->pos;
    unsigned cp, low;
    unsigned char u[4];
    size_t n;

    if (!hex_escape(p, at, &cp))
        return fail(p, at, "invalid \\u escape");
    p->pos += 6;
    if (cp >= 0xdc00 && cp <= 0xdfff)
        return fail(p, at, "lone surrogate \\u%04x", cp);
    if (cp >= 0xd800 && cp <= 0xdbff) {
        if (!hex_escape(p, p->pos, &low) || low < 0xdc00 || low > 0xdfff)
            return fail(p, at, "lone surrogate \\u%04x", cp);
        cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
        p->pos += 6;
    }
    if (cp < 0x80) {
        u[0] = (unsigned char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (unsigned char)(0xc0 | cp >> 6);
        u[1] = (unsigned char)(0x80 | (cp & 0x3f));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (unsigned char)(0xe0 | cp >> 12);
        u[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
        u[2] = (unsigned char)(0x80 | (cp & 0x3f));
        n = 3;
    } else {
        u[0] = (unsigned char)(0xf0 | cp >> 18);
        u[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3f));
        u[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
        u[3] = (unsigned char)(0x80 | (cp & 0x3f));
        n = 4;
    }
    lh_json_raw(p->scratch, (const char *)u, n);
    return LH_OK;
}

/* The escape at p->pos (a backslash), appended decoded to the scratch buffer. */
static enum lh_status escape(struct parser *p)
{
    static const char names[] = "\"\\/bfnrt", bytes[] = "\"\\/\b\f\n\r\t";

    if (p->len - p->pos < 2) {
        p->pos = p->len;
        return unexpected(p);
    }
    char c = p->s[p->pos + 1];
    if (c == 'u')
        return unicode(p);
    const char *name = c != '\0' ? strchr(names, c) : NULL;
    if (name == NULL)
        return fail(p, p->pos, "invalid escape");
    lh_json_raw(p->scratch, &bytes[name - names], 1);
    p->pos += 2;
    return LH_OK;
}

/* Moves p->pos to the next byte a string cannot hold as it is. */
static void skip_plain(struct parser *p)
{
    while (p->pos < p->len) {
        unsigned char c = (unsigned char)p->s[p->pos];
        if (c == '"' || c == '\\' || c < 0x20)
            return;
        p->pos++;
    }
}

/* The string whose opening quote is at p->pos: a pointer into the input when
 * it has no escapes (the common case), else into the scratch buffer. */
static enum lh_status string(struct parser *p, const char **out, size_t *outlen)
{
    size_t start = ++p->pos;
    int escaped = 0;

    for (;;) {
        skip_plain(p);
        if (p->pos == p->len)
            return unexpected(p);
        unsigned char c = (unsigned char)p->s[p->pos];
        if (c == '"')
            break;
        if (c != '\\')
            return fail(p, p->pos, "raw control character 0x%02x in string", c);
        if (!escaped) {
            lh_json_buf_reset(p->scratch);
            escaped = 1;
        }
        lh_json_raw(p->scratch, p->s + start, p->pos - start);
        enum lh_status st = escape(p);
        if (st != LH_OK)
            return st;
        start = p->pos;
    }
    if (escaped) {
        lh_json_raw(p->scratch, p->s + start, p->pos - start);
        if (p->scratch->failed)
            return nomem(p);
        *out = p->scratch->data;
        *outlen = p->scratch->len;
    } else {
        *out = p->s + start;
        *outlen = p->pos - start;
    }
    p->pos++;
    return LH_OK;
}

/* A member's key and the colon after it; the value comes next. */
static enum lh_status member_key(struct parser *p)
{
    const char *s;
    size_t len;

    skip_space(p);
    if (!next_is(p, '"'))
        return unexpected(p);
    enum lh_status st = string(p, &s, &len);
    if (st != LH_OK)
        return st;
    if (p->v->key != NULL && p->v->key(p->arg, s, len) != 0)
        return stopped(p);
    skip_space(p);
    if (!next_is(p, ':'))
        return unexpected(p);
    p->pos++;
    return LH_OK;
}

/* A string, number, true, false or null at p->pos. */
static enum lh_status scalar(struct parser *p)
{
    const struct lh_json_visitor *v = p->v;
    enum lh_status st;
    const char *s;
    size_t len;
    double n = 0;
    int stop = 0;

    char c = p->s[p->pos];
    switch (c) {
    case '"':
        st = string(p, &s, &len);
        if (st == LH_OK && v->string != NULL)
            stop = v->string(p->arg, s, len);
        break;
    case 't':
        st = literal(p, "true");
        if (st == LH_OK && v->boolean != NULL)
            stop = v->boolean(p->arg, 1);
        break;
    case 'f':
        st = literal(p, "false");
        if (st == LH_OK && v->boolean != NULL)
            stop = v->boolean(p->arg, 0);
        break;
    case 'n':
        st = literal(p, "null");
        if (st == LH_OK && v->null != NULL)
            stop = v->null(p->arg);
        break;
    default:
        if (c != '-' && !is_digit(c))
            return unexpected(p);
        st = number(p, &n);
        if (st == LH_OK && v->number != NULL)
            stop = v->number(p->arg, n);
    }
    return stop != 0 ? stopped(p) : st;
}

/* A loop over values rather than recursion: the only stack is the kinds of
 * the open containers. */
static enum lh_status parse(struct parser *p)
{
    const struct lh_json_visitor *v = p->v;
    unsigned char in_object[LH_JSON_MAX_DEPTH];
    size_t depth = 0;
    enum lh_status st;

    for (;;) {
        /* A value is due. */
        skip_space(p);
        if (p->pos == p->len)
            return unexpected(p);
        char c = p->s[p->pos];
        if (c == '[' || c == '{') {
            int object = c == '{';
            int (*begin)(void *) = object ? v->begin_object : v->begin_array;
            if (depth == LH_JSON_MAX_DEPTH)
                return fail(p, p->pos, "nested deeper than %d", LH_JSON_MAX_DEPTH);
            if (begin != NULL && begin(p->arg) != 0)
                return stopped(p);
            p->pos++;
            in_object[depth++] = (unsigned char)object;
            skip_space(p);
            /* Not empty: its first value is due (an empty one closes below). */
            if (!next_is(p, object ? '}' : ']')) {
                st = object ? member_key(p) : LH_OK;
                if (st != LH_OK)
                    return st;
                continue;
            }
        } else {
            st = scalar(p);
            if (st != LH_OK)
                return st;
        }
        /* After a value: close containers until a comma asks for the next one. */
        for (;;) {
            skip_space(p);
            if (depth == 0)
                return p->pos == p->len ? LH_OK : unexpected(p);
            int object = in_object[depth - 1];
            if (next_is(p, ',')) {
                p->pos++;
                st = object ? member_key(p) : LH_OK;
                if (st != LH_OK)
                    return st;
                break;
            }
            if (!next_is(p, object ? '}' : ']'))
                return unexpected(p);
            int (*end)(void *) = object ? v->end_object : v->end_array;
            if (end != NULL && end(p->arg) != 0)
                return stopped(p);
            p->pos++;
            depth--;
        }
    }
}

enum lh_status lh_json_parse(const char *s, size_t len, const struct lh_json_visitor *v, void *arg,
                             struct lh_json_buf *scratch, char *err, size_t errlen)
{
    struct lh_json_buf own;
    struct parser p = {
        .s = s, .len = len, .v = v, .arg = arg, .scratch = scratch, .err = err, .errlen = errlen};

    if (errlen > 0)
        err[0] = '\0';
    /* Nothing decoded is longer than the input (a long number plus its NUL). */
    if (scratch == NULL) {
        lh_json_buf_init(&own, len + 1);
        p.scratch = &own;
    }
    enum lh_status st = parse(&p);
    if (scratch == NULL)
        lh_json_buf_free(&own);
    return st;
}
