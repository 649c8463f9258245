/* include/luahost/json.h: JSON text building blocks: a growing buffer with a
 * size cap, string escaping and exact number formatting (integers below 2^53
 * as integers, other numbers with 17 significant digits); and a strict
 * RFC 8259 parser that reports what it reads to a visitor.
 * Thread safety: a buffer belongs to one thread at a time; lh_json_parse keeps
 * no state of its own. */
#ifndef LUAHOST_JSON_H
#define LUAHOST_JSON_H
#include <stddef.h>
#include "luahost/common.h"

struct lh_json_buf {
    char *data;
    size_t len, cap, max; /* max: the cap on len (curl's toobig) */
    int failed;           /* an append hit max or ran out of memory */
};

/* An empty buffer that may grow to max bytes. Free with lh_json_buf_free. */
void lh_json_buf_init(struct lh_json_buf *b, size_t max);
void lh_json_buf_free(struct lh_json_buf *b);
void lh_json_buf_reset(struct lh_json_buf *b);
/* Frees the memory of a buffer grown past keep bytes, so that one large
 * text does not stay allocated for every later use; it stays usable. */
void lh_json_buf_shrink(struct lh_json_buf *b, size_t keep);

void lh_json_raw(struct lh_json_buf *b, const char *s, size_t len);
/* One byte: lh_json_raw without a call while there is room. */
static inline void lh_json_char(struct lh_json_buf *b, char c)
{
    if (b->len < b->cap && !b->failed) /* cap never exceeds max */
        b->data[b->len++] = c;
    else
        lh_json_raw(b, &c, 1);
}
/* s as a JSON string, quotes included: ", \ and control characters escaped
 * (\n, \t, ... or \u00XX); '/' and non-ASCII bytes are kept as they are. */
void lh_json_string(struct lh_json_buf *b, const char *s, size_t len);
/* LH_ERR_INVALID for NaN and infinities, which JSON cannot hold. */
enum lh_status lh_json_number(struct lh_json_buf *b, double n);

/* The most bytes an encoder of Lua values writes. */
#define LH_JSON_ENCODE_MAX (64 * 1024 * 1024)

/* Arrays and objects nested deeper than this are refused (by encoders too). */
#define LH_JSON_MAX_DEPTH 1000

/* What lh_json_parse reports, in document order. Every callback gets the arg
 * given to lh_json_parse and returns 0 to go on or non-zero to stop the parse.
 * A NULL member skips that event (all NULL: a validator). Strings and keys are
 * decoded (escapes become UTF-8 bytes, \u0000 a NUL byte), not NUL-terminated,
 * and valid only during the call. Numbers are doubles: integers above 2^53
 * are rounded. Bytes of 0x80 and above are passed on as they are (not checked
 * as UTF-8). */
struct lh_json_visitor {
    int (*null)(void *arg);
    int (*boolean)(void *arg, int value);
    int (*number)(void *arg, double value);
    int (*string)(void *arg, const char *s, size_t len);
    int (*begin_array)(void *arg);
    int (*end_array)(void *arg);
    int (*begin_object)(void *arg);
    int (*key)(void *arg, const char *s, size_t len); /* then the member's value */
    int (*end_object)(void *arg);
};

/* Parses exactly one JSON value, with optional whitespace around it, from the
 * len bytes at s (no NUL needed; nothing past len is read). Strict RFC 8259:
 * no comments, trailing commas, leading zeros, NaN or Infinity, no raw control
 * characters or lone surrogates in strings, numbers that overflow a double
 * refused; nesting up to LH_JSON_MAX_DEPTH, without recursion.
 *
 * Strings with escapes are decoded into scratch, reset for each one: pass a
 * buffer to reuse across calls (the caller owns and frees it; its max caps a
 * decoded string), or NULL for a temporary one freed before returning. Text
 * without escapes is passed straight from s.
 *
 * Returns LH_OK; LH_ERR_INVALID for text that is not JSON or when a callback
 * stopped the parse; LH_ERR_NOMEM when scratch could not grow. On failure err
 * gets "json: <what> at byte <0-based offset>", truncated to errlen bytes
 * (err may be NULL when errlen is 0). Callbacks may already have seen the
 * values before the error. */
enum lh_status lh_json_parse(const char *s, size_t len, const struct lh_json_visitor *v, void *arg,
                             struct lh_json_buf *scratch, char *err, size_t errlen);

#endif
