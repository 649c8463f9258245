/* include/luahost/json.h: JSON text building blocks: a growing buffer with a
 * size cap, string escaping and exact number formatting (integers below 2^53
 * as integers, other numbers with 17 significant digits).
 * Thread safety: a buffer belongs to one thread at a time. */
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

void lh_json_raw(struct lh_json_buf *b, const char *s, size_t len);
/* s as a JSON string, quotes included: ", \ and control characters escaped
 * (\n, \t, ... or \u00XX); '/' and non-ASCII bytes are kept as they are. */
void lh_json_string(struct lh_json_buf *b, const char *s, size_t len);
/* LH_ERR_INVALID for NaN and infinities, which JSON cannot hold. */
enum lh_status lh_json_number(struct lh_json_buf *b, double n);

#endif
