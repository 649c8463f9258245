/* src/router.c: a segment tree of routes.
 *
 * Each node has literal children (sorted, found by binary search), parameter
 * children (one per literal suffix, longest suffix first), an optional
 * catch-all endpoint and an optional endpoint for paths that end at it. An
 * endpoint maps methods to handlers; each method entry keeps its own
 * parameter names, so GET /a/:id and DELETE /a/:name may share a node. */
#include "luahost/router.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define METHOD_MAX 16

struct method_entry {
    char method[METHOD_MAX];
    int handler;
    size_t nnames;
    char *names[LH_ROUTER_MAX_PARAMS];
};

struct endpoint {
    size_t n;
    struct method_entry *entries;
};

struct node;

/* A literal segment, or a parameter's suffix ("" for a plain ":name"). */
struct edge {
    char *text;
    size_t len;
    struct node *child;
};

struct node {
    size_t nliterals, nparams;
    struct edge *literals; /* sorted by (len, bytes) */
    struct edge *params;   /* longest suffix first */
    struct endpoint *end;
    struct endpoint *catchall;
};

struct lh_router {
    struct node root;
};

/* -- Building ---------------------------------------------------------------- */

static void free_endpoint(struct endpoint *e)
{
    if (e == NULL)
        return;
    for (size_t i = 0; i < e->n; i++)
        for (size_t j = 0; j < e->entries[i].nnames; j++)
            free(e->entries[i].names[j]);
    free(e->entries);
    free(e);
}

static void free_node_contents(struct node *n)
{
    for (size_t i = 0; i < n->nliterals; i++) {
        free_node_contents(n->literals[i].child);
        free(n->literals[i].child);
        free(n->literals[i].text);
    }
    for (size_t i = 0; i < n->nparams; i++) {
        free_node_contents(n->params[i].child);
        free(n->params[i].child);
        free(n->params[i].text);
    }
    free(n->literals);
    free(n->params);
    free_endpoint(n->end);
    free_endpoint(n->catchall);
}

struct lh_router *lh_router_new(void)
{
    return calloc(1, sizeof(struct lh_router));
}

void lh_router_free(struct lh_router *r)
{
    if (r == NULL)
        return;
    free_node_contents(&r->root);
    free(r);
}

static int compare_label(const char *a, size_t alen, const char *b, size_t blen)
{
    if (alen != blen)
        return alen < blen ? -1 : 1;
    return memcmp(a, b, alen);
}

/* Index of the literal edge equal to s, or where it would be inserted (*found = 0). */
static size_t find_literal(const struct node *n, const char *s, size_t len, int *found)
{
    size_t lo = 0, hi = n->nliterals;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = compare_label(n->literals[mid].text, n->literals[mid].len, s, len);
        if (c == 0) {
            *found = 1;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = 0;
    return lo;
}

static char *dup_range(const char *s, size_t len)
{
    char *p = malloc(len + 1);
    if (p) {
        memcpy(p, s, len);
        p[len] = '\0';
    }
    return p;
}

/* Inserts a new edge with text s at position at of *edges; returns its child. */
static struct node *insert_edge(struct edge **edges, size_t *count, size_t at, const char *s,
                                size_t len)
{
    struct edge *grown = realloc(*edges, (*count + 1) * sizeof(*grown));
    if (grown == NULL)
        return NULL;
    *edges = grown;
    struct node *child = calloc(1, sizeof(*child));
    char *text = dup_range(s, len);
    if (child == NULL || text == NULL) {
        free(child);
        free(text);
        return NULL;
    }
    memmove(&grown[at + 1], &grown[at], (*count - at) * sizeof(*grown));
    grown[at] = (struct edge){text, len, child};
    (*count)++;
    return child;
}

static struct node *literal_child(struct node *n, const char *s, size_t len)
{
    int found;
    size_t at = find_literal(n, s, len, &found);

    if (found)
        return n->literals[at].child;
    return insert_edge(&n->literals, &n->nliterals, at, s, len);
}

static struct node *param_child(struct node *n, const char *suffix, size_t len)
{
    size_t at = 0;

    for (; at < n->nparams; at++) {
        if (n->params[at].len == len && memcmp(n->params[at].text, suffix, len) == 0)
            return n->params[at].child;
        if (n->params[at].len < len)
            break;
    }
    return insert_edge(&n->params, &n->nparams, at, suffix, len);
}

static int valid_method(const char *m)
{
    size_t len = strlen(m);

    if (strcmp(m, "*") == 0)
        return 1;
    if (len == 0 || len >= METHOD_MAX)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (m[i] < 'A' || m[i] > 'Z')
            return 0;
    return 1;
}

static int is_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_';
}

struct parsed_segment {
    enum { SEG_LITERAL, SEG_PARAM, SEG_CATCHALL } kind;
    const char *name, *text; /* text: the literal, or the parameter's suffix */
    size_t name_len, text_len;
};

/* Checks the pattern and splits it into segments. */
static enum lh_status parse_pattern(const char *pattern, struct parsed_segment *segs,
                                    size_t max, size_t *nsegs, size_t *nnames, char *err,
                                    size_t errlen)
{
    const char *p = pattern + 1;
    size_t n = 0;

    *nnames = 0;
    if (pattern[0] != '/') {
        snprintf(err, errlen, "pattern must start with '/'");
        return LH_ERR_INVALID;
    }
    /* Paths are matched decoded and without their query: such a route
     * could never match. */
    const char *odd = strpbrk(pattern, "?#%");
    if (odd != NULL) {
        snprintf(err, errlen,
                 *odd == '%' ? "'%%' in a pattern: paths are matched decoded, so write the "
                               "character itself"
                             : "'%c' in a pattern: the query and fragment are no part of a route "
                               "(read req.query)",
                 *odd);
        return LH_ERR_INVALID;
    }
    if (*p == '\0') {
        *nsegs = 0;
        return LH_OK;
    }
    for (;;) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        struct parsed_segment *s = &segs[n];
        if (n == max) {
            snprintf(err, errlen, "pattern has too many segments");
            return LH_ERR_INVALID;
        }
        if (len > 0 && (p[0] == ':' || p[0] == '*')) {
            size_t k = 1;
            while (k < len && is_name_char(p[k]))
                k++;
            s->kind = p[0] == ':' ? SEG_PARAM : SEG_CATCHALL;
            s->name = p + 1;
            s->name_len = k - 1;
            s->text = p + k;
            s->text_len = len - k;
            if (s->name_len == 0) {
                snprintf(err, errlen, "parameter without a name");
                return LH_ERR_INVALID;
            }
            if (s->kind == SEG_CATCHALL && (s->text_len != 0 || slash != NULL)) {
                snprintf(err, errlen, "'*' must end the pattern");
                return LH_ERR_INVALID;
            }
            if (memchr(s->text, ':', s->text_len) || memchr(s->text, '*', s->text_len)) {
                snprintf(err, errlen, "one parameter per segment");
                return LH_ERR_INVALID;
            }
            if (++*nnames > LH_ROUTER_MAX_PARAMS) {
                snprintf(err, errlen, "more than %d parameters", LH_ROUTER_MAX_PARAMS);
                return LH_ERR_INVALID;
            }
        } else {
            if (memchr(p, ':', len) || memchr(p, '*', len)) {
                snprintf(err, errlen, "':' and '*' may only start a segment");
                return LH_ERR_INVALID;
            }
            s->kind = SEG_LITERAL;
            s->text = p;
            s->text_len = len;
        }
        n++;
        if (slash == NULL)
            break;
        p = slash + 1;
    }
    *nsegs = n;
    return LH_OK;
}

static enum lh_status add_method(struct endpoint **slot, const char *method, int handler,
                                 const struct parsed_segment *segs, size_t nsegs, char *err,
                                 size_t errlen)
{
    struct endpoint *e = *slot;
    struct method_entry entry = {.handler = handler};

    if (e == NULL) {
        e = calloc(1, sizeof(*e));
        if (e == NULL)
            goto nomem;
        *slot = e;
    }
    for (size_t i = 0; i < e->n; i++) {
        if (strcmp(e->entries[i].method, method) == 0) {
            snprintf(err, errlen, "duplicate route");
            return LH_ERR_CONFLICT;
        }
    }
    snprintf(entry.method, sizeof(entry.method), "%s", method);
    for (size_t i = 0; i < nsegs; i++) {
        if (segs[i].kind == SEG_LITERAL)
            continue;
        entry.names[entry.nnames] = dup_range(segs[i].name, segs[i].name_len);
        if (entry.names[entry.nnames++] == NULL)
            goto nomem;
    }
    struct method_entry *grown = realloc(e->entries, (e->n + 1) * sizeof(*grown));
    if (grown == NULL)
        goto nomem;
    e->entries = grown;
    e->entries[e->n++] = entry;
    return LH_OK;
nomem:
    for (size_t i = 0; i < entry.nnames; i++)
        free(entry.names[i]);
    snprintf(err, errlen, "out of memory");
    return LH_ERR_NOMEM;
}

enum lh_status lh_router_add(struct lh_router *r, const char *method, const char *pattern,
                             int handler, char *err, size_t errlen)
{
    struct parsed_segment segs[64];
    size_t nsegs, nnames;
    struct node *n = &r->root;
    enum lh_status st;

    if (!valid_method(method)) {
        snprintf(err, errlen, "bad method '%s' (want upper-case letters or '*')", method);
        return LH_ERR_INVALID;
    }
    st = parse_pattern(pattern, segs, sizeof(segs) / sizeof(segs[0]), &nsegs, &nnames, err,
                       errlen);
    if (st != LH_OK)
        return st;
    /* Nodes created on the way stay if a later step fails: they hold no
     * endpoint, so they match nothing and the router behaves as before. */
    for (size_t i = 0; i < nsegs; i++) {
        if (segs[i].kind == SEG_CATCHALL)
            return add_method(&n->catchall, method, handler, segs, nsegs, err, errlen);
        n = segs[i].kind == SEG_LITERAL ? literal_child(n, segs[i].text, segs[i].text_len)
                                        : param_child(n, segs[i].text, segs[i].text_len);
        if (n == NULL) {
            snprintf(err, errlen, "out of memory");
            return LH_ERR_NOMEM;
        }
    }
    return add_method(&n->end, method, handler, segs, nsegs, err, errlen);
}

/* -- Matching ---------------------------------------------------------------- */

#define MAX_PATH_ONLY 8

struct search {
    const char *method;
    int is_head;
    struct lh_router_match *m;
    size_t npath_only; /* endpoints whose path matched, for Allow */
    const struct endpoint *path_only[MAX_PATH_ONLY];
    const char *values[LH_ROUTER_MAX_PARAMS];
    size_t lens[LH_ROUTER_MAX_PARAMS];
};

static const struct method_entry *pick_method(const struct endpoint *e, const char *method,
                                              int is_head)
{
    const struct method_entry *get = NULL, *any = NULL;

    for (size_t i = 0; i < e->n; i++) {
        const char *em = e->entries[i].method;
        if (strcmp(em, method) == 0)
            return &e->entries[i];
        if (em[0] == '*')
            any = &e->entries[i];
        else if (is_head && strcmp(em, "GET") == 0)
            get = &e->entries[i];
    }
    return get ? get : any;
}

static int accept_endpoint(struct search *s, const struct endpoint *e, size_t ncaptured)
{
    const struct method_entry *me;

    if (e == NULL)
        return 0;
    me = pick_method(e, s->method, s->is_head);
    if (me == NULL) {
        if (s->npath_only < MAX_PATH_ONLY)
            s->path_only[s->npath_only++] = e;
        return 0;
    }
    s->m->handler = me->handler;
    s->m->nparams = ncaptured;
    for (size_t i = 0; i < ncaptured; i++) {
        s->m->params[i] = (struct lh_router_param){me->names[i], strlen(me->names[i]),
                                                   s->values[i], s->lens[i]};
    }
    return 1;
}

/* Matches the segments from p (just after a '/') to end against node n. */
static int search_node(struct search *s, const struct node *n, const char *p, const char *end,
                       size_t ncaptured)
{
    if (p == NULL) /* the whole path is consumed */
        return accept_endpoint(s, n->end, ncaptured);

    const char *slash = memchr(p, '/', (size_t)(end - p));
    const char *seg_end = slash ? slash : end;
    size_t len = (size_t)(seg_end - p);
    const char *next = slash ? slash + 1 : NULL;
    int found;

    size_t at = find_literal(n, p, len, &found);
    if (found && search_node(s, n->literals[at].child, next, end, ncaptured))
        return 1;
    if (ncaptured < LH_ROUTER_MAX_PARAMS) {
        for (size_t i = 0; i < n->nparams; i++) {
            const struct edge *pe = &n->params[i];
            /* A parameter never matches an empty value. */
            if (len <= pe->len || memcmp(seg_end - pe->len, pe->text, pe->len) != 0)
                continue;
            s->values[ncaptured] = p;
            s->lens[ncaptured] = len - pe->len;
            if (search_node(s, pe->child, next, end, ncaptured + 1))
                return 1;
        }
        if (n->catchall) {
            s->values[ncaptured] = p;
            s->lens[ncaptured] = (size_t)(end - p);
            if (accept_endpoint(s, n->catchall, ncaptured + 1))
                return 1;
        }
    }
    return 0;
}

static int compare_method(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Every method of the matching endpoints, sorted and unique, with HEAD
 * wherever GET is: "DELETE, GET, HEAD, POST". */
static void format_allow(const struct search *s, char *out, size_t size)
{
    const char *methods[64];
    size_t n = 0, used = 0;

    for (size_t i = 0; i < s->npath_only; i++)
        for (size_t j = 0; j < s->path_only[i]->n && n < 63; j++) {
            methods[n++] = s->path_only[i]->entries[j].method;
            if (strcmp(methods[n - 1], "GET") == 0)
                methods[n++] = "HEAD";
        }
    qsort(methods, n, sizeof(methods[0]), compare_method);
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && strcmp(methods[i], methods[i - 1]) == 0)
            continue;
        int w = snprintf(out + used, size - used, "%s%s", used ? ", " : "", methods[i]);
        if (w < 0 || (size_t)w >= size - used)
            break;
        used += (size_t)w;
    }
}

enum lh_router_result lh_router_match(const struct lh_router *r, const char *method,
                                      const char *path, size_t path_len,
                                      struct lh_router_match *m)
{
    struct search s = {.method = method, .is_head = strcmp(method, "HEAD") == 0, .m = m};

    m->nparams = 0;
    m->allow[0] = '\0';
    if (path_len == 0 || path[0] != '/')
        return LH_ROUTER_NOT_FOUND;
    if (path_len == 1) {
        /* "/" is the root itself, or an empty remainder for a root catch-all. */
        s.values[0] = path + 1;
        s.lens[0] = 0;
        if (accept_endpoint(&s, r->root.end, 0) || accept_endpoint(&s, r->root.catchall, 1))
            return LH_ROUTER_FOUND;
    } else if (search_node(&s, &r->root, path + 1, path + path_len, 0)) {
        return LH_ROUTER_FOUND;
    }
    if (s.npath_only == 0)
        return LH_ROUTER_NOT_FOUND;
    format_allow(&s, m->allow, sizeof(m->allow));
    return LH_ROUTER_METHOD_NOT_ALLOWED;
}
