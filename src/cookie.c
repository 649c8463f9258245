/* src/cookie.c: the Cookie request header (see include/luahost/cookie.h). */
#include "luahost/cookie.h"

static int is_space(char c)
{
    return c == ' ' || c == '\t';
}

void lh_cookie_each(const char *header, size_t len, lh_cookie_fn fn, void *arg)
{
    const char *p = header, *end = header + len;

    while (p < end) {
        const char *pair = p;
        while (p < end && *p != ';')
            p++;
        const char *pair_end = p;
        if (p < end)
            p++; /* the ';' */
        while (pair < pair_end && is_space(*pair))
            pair++;
        while (pair_end > pair && is_space(pair_end[-1]))
            pair_end--;
        const char *eq = pair;
        while (eq < pair_end && *eq != '=')
            eq++;
        if (eq == pair_end)
            continue; /* no "=" */
        const char *name_end = eq, *value = eq + 1;
        while (name_end > pair && is_space(name_end[-1]))
            name_end--;
        while (value < pair_end && is_space(*value))
            value++;
        if (name_end == pair)
            continue;
        const char *value_end = pair_end;
        if (value_end - value >= 2 && *value == '"' && value_end[-1] == '"') {
            value++;
            value_end--;
        }
        if (fn(arg, pair, (size_t)(name_end - pair), value, (size_t)(value_end - value)))
            return;
    }
}
