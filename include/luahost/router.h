/* include/luahost/router.h: compiled route tables.
 *
 * Patterns are paths whose segments are literals ("api"), parameters
 * (":id", optionally with a literal suffix: ":id.svg") or, last, a catch-all
 * ("*rest", matching the remainder, slashes included). A request path is
 * matched segment by segment through a tree, not by trying each pattern:
 * literals win over parameters (longer suffix first), parameters over
 * catch-alls, with backtracking when a branch leads nowhere. HEAD falls back
 * to GET; the method "*" accepts any method.
 *
 * Thread safety: build with lh_router_add on one thread; lh_router_match is
 * read-only and may then run on any number of threads. */
#ifndef LUAHOST_ROUTER_H
#define LUAHOST_ROUTER_H
#include <stddef.h>
#include "luahost/common.h"

#define LH_ROUTER_MAX_PARAMS 16
#define LH_ROUTER_ALLOW_MAX 160

struct lh_router; /* opaque */

struct lh_router_param {
    const char *name; /* owned by the router */
    size_t name_len;
    const char *value; /* points into the matched path */
    size_t value_len;
};

struct lh_router_match {
    int handler; /* as given to lh_router_add */
    size_t nparams;
    struct lh_router_param params[LH_ROUTER_MAX_PARAMS];
    char allow[LH_ROUTER_ALLOW_MAX]; /* for a 405: "DELETE, GET, HEAD", sorted */
};

enum lh_router_result {
    LH_ROUTER_FOUND,
    LH_ROUTER_NOT_FOUND,
    LH_ROUTER_METHOD_NOT_ALLOWED, /* the path exists; m->allow lists the methods of
                                     every route matching it, HEAD included with GET */
};

/* Returns NULL when memory runs out. Free with lh_router_free (NULL is a no-op). */
struct lh_router *lh_router_new(void);
void lh_router_free(struct lh_router *r);

/* Adds a route. method is upper-case letters ("GET") or "*"; pattern starts
 * with '/'. Returns LH_ERR_INVALID for a malformed method or pattern,
 * LH_ERR_CONFLICT when the same method and path shape is already routed,
 * LH_ERR_NOMEM; a message goes into err. The router is unchanged on failure. */
enum lh_status lh_router_add(struct lh_router *r, const char *method, const char *pattern,
                             int handler, char *err, size_t errlen);

/* Matches method and path (path_len bytes, no query string) and fills m. */
enum lh_router_result lh_router_match(const struct lh_router *r, const char *method,
                                      const char *path, size_t path_len,
                                      struct lh_router_match *m);

#endif
