/* tests/test_router.c: cmocka tests for include/luahost/router.h. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "luahost/router.h"

/* -- Helpers ----------------------------------------------------------------- */

static int setup_router(void **state)
{
    struct lh_router *r = lh_router_new();
    if (r == NULL)
        return -1;
    *state = r;
    return 0;
}

static int teardown_router(void **state)
{
    lh_router_free(*state);
    return 0;
}

/* Adds a route that must be accepted. */
static void add_ok(struct lh_router *r, const char *method, const char *pattern, int handler)
{
    char err[128] = "";
    enum lh_status st = lh_router_add(r, method, pattern, handler, err, sizeof(err));
    if (st != LH_OK)
        fail_msg("lh_router_add(%s, %s) failed: %s (%s)", method, pattern,
                 lh_status_str(st), err);
}

static enum lh_router_result match(const struct lh_router *r, const char *method,
                                   const char *path, struct lh_router_match *m)
{
    memset(m, 0xAB, sizeof(*m)); /* stale data must not leak into the result */
    return lh_router_match(r, method, path, strlen(path), m);
}

/* Asserts that method path is found with handler and no parameters. */
static void expect_handler(const struct lh_router *r, const char *method, const char *path,
                           int handler)
{
    struct lh_router_match m;
    enum lh_router_result res = match(r, method, path, &m);
    if (res != LH_ROUTER_FOUND)
        fail_msg("%s %s: expected FOUND (handler %d), got result %d", method, path, handler,
                 (int)res);
    if (m.handler != handler)
        fail_msg("%s %s: expected handler %d, got %d", method, path, handler, m.handler);
}

static void expect_not_found(const struct lh_router *r, const char *method, const char *path)
{
    struct lh_router_match m;
    enum lh_router_result res = match(r, method, path, &m);
    if (res != LH_ROUTER_NOT_FOUND)
        fail_msg("%s %s: expected NOT_FOUND, got result %d (handler %d)", method, path,
                 (int)res, res == LH_ROUTER_FOUND ? m.handler : -1);
}

/* Asserts that parameter i of m is name=value. */
static void expect_param(const struct lh_router_match *m, size_t i, const char *name,
                         const char *value)
{
    assert_true(i < m->nparams);
    assert_int_equal(m->params[i].name_len, strlen(name));
    assert_memory_equal(m->params[i].name, name, strlen(name));
    if (m->params[i].value_len != strlen(value) ||
        memcmp(m->params[i].value, value, strlen(value)) != 0)
        fail_msg("param %s: expected '%s', got '%.*s'", name, value,
                 (int)m->params[i].value_len, m->params[i].value);
}

/* -- Tests ------------------------------------------------------------------- */

static void test_lh_router_match_literal(void **state)
{
    struct lh_router *r = *state;
    struct lh_router_match m;

    add_ok(r, "GET", "/api/users", 1);
    add_ok(r, "GET", "/api/posts", 2);
    add_ok(r, "GET", "/api", 3);

    assert_int_equal(match(r, "GET", "/api/users", &m), LH_ROUTER_FOUND);
    assert_int_equal(m.handler, 1);
    assert_int_equal(m.nparams, 0);
    expect_handler(r, "GET", "/api/posts", 2);
    expect_handler(r, "GET", "/api", 3);
    expect_not_found(r, "GET", "/api/user");
    expect_not_found(r, "GET", "/api/users/1");
    expect_not_found(r, "GET", "/API/users");
}

static void test_lh_router_match_param_captures_value(void **state)
{
    struct lh_router *r = *state;
    struct lh_router_match m;

    add_ok(r, "GET", "/users/:id", 7);
    add_ok(r, "GET", "/users/:user_id/posts/:post_id", 8);

    assert_int_equal(match(r, "GET", "/users/42", &m), LH_ROUTER_FOUND);
    assert_int_equal(m.handler, 7);
    assert_int_equal(m.nparams, 1);
    expect_param(&m, 0, "id", "42");

    assert_int_equal(match(r, "GET", "/users/alice/posts/99", &m), LH_ROUTER_FOUND);
    assert_int_equal(m.handler, 8);
    assert_int_equal(m.nparams, 2);
    expect_param(&m, 0, "user_id", "alice");
    expect_param(&m, 1, "post_id", "99");
}

static void test_lh_router_match_param_points_into_path(void **state)
{
    struct lh_router *r = *state;
    struct lh_router_match m;
    const char path[] = "/users/42?ignored";

    add_ok(r, "GET", "/users/:id", 1);
    /* path_len excludes the query string: only the first 9 bytes count. */
    assert_int_equal(lh_router_match(r, "GET", path, 9, &m), LH_ROUTER_FOUND);
    assert_int_equal(m.nparams, 1);
    assert_ptr_equal(m.params[0].value, path + 7);
    assert_int_equal(m.params[0].value_len, 2);
}

static void test_lh_router_match_param_never_empty(void **state)
{
    struct lh_router *r = *state;

    add_ok(r, "GET", "/users/:id", 1);
    expect_not_found(r, "GET", "/users/");
    expect_not_found(r, "GET", "/users");
    expect_not_found(r, "GET", "/users/1/");
}

static void test_lh_router_match_param_with_suffix(void **state)
{
    struct lh_router *r = *state;
    struct lh_router_match m;

    add_ok(r, "GET", "/svg/:id.svg", 5);

    assert_int_equal(match(r, "GET", "/svg/42.svg", &m), LH_ROUTER_FOUND);
    assert_int_equal(m.handler, 5);
    assert_int_equal(m.nparams, 1);
    expect_param(&m, 0, "id", "42");

    expect_not_found(r, "GET", "/svg/42.png");
    expect_not_found(r, "GET", "/svg/42");
    expect_not_found(r, "GET", "/svg/.svg"); /* the value would be empty */
}

static void test_lh_router_match_longer_suffix_first(void **state)
{
    struct lh_router *r = *state;
    struct lh_router_match m;

    add_ok(r, "GET", "/f/:name", 1);
    add_ok(r, "GET", "/f/:name.gz", 2);
    add_ok(r, "GET", "/f/:name.tar.gz", 3);

    assert_int_equal(match(r, "GET", "/f/a.tar.gz", &m), LH_ROUTER_FOUND);
    assert_int_equal(m.handler, 3);
    expect_param(&m, 0, "name", "a");

    assert_int_equal(match(r, "GET", "/f/a.gz", &m), LH_ROUTER_FOUND);
    assert_int_equal(m.handler, 2);
    expect_param(&m, 0, "name", "a");

    assert_int_equal(match(r, "GET", "/f/a.zip", &m), LH_ROUTER_FOUND);
    assert_int_equal(m.handler, 1);
    expect_param(&m, 0, "name", "a.zip");
}

static void test_lh_router_match_catchall_captures_rest_with_slashes(void **state)
{
    struct lh_router *r = *state;
    struct lh_router_match m;

    add_ok(r, "GET", "/static/*rest", 9);

    assert_int_equal(match(r, "GET", "/static/css/site/main.css", &m), LH_ROUTER_FOUND);
    assert_int_equal(m.handler, 9);
    assert_int_equal(m.nparams, 1);
    expect_param(&m, 0, "rest", "css/site/main.css");

    assert_int_equal(match(r, "GET", "/static/a", &m), LH_ROUTER_FOUND);
    expect_param(&m, 0, "rest", "a");

    assert_int_equal(match(r, "GET", "/static/a/", &m), LH_ROUTER_FOUND);
    expect_param(&m, 0, "rest", "a/");

    expect_not_found(r, "GET", "/other/a");
}

static void test_lh_router_match_catchall_empty(void **state)
{
    struct lh_router *r = *state;
    struct lh_router_match m;

    add_ok(r, "GET", "/static/*rest", 9);

    assert_int_equal(match(r, "GET", "/static/", &m), LH_ROUTER_FOUND);
    assert_int_equal(m.handler, 9);
    assert_int_equal(m.nparams, 1);
    expect_param(&m, 0, "rest", "");
}

static void test_lh_router_match_catchall_after_params(void **state)
{
    struct lh_router *r = *state;
    struct lh_router_match m;

    add_ok(r, "GET", "/repos/:owner/:repo/*file", 4);

    assert_int_equal(match(r, "GET", "/repos/me/proj/src/main.c", &m), LH_ROUTER_FOUND);
    assert_int_equal(m.handler, 4);
    assert_int_equal(m.nparams, 3);
    expect_param(&m, 0, "owner", "me");
    expect_param(&m, 1, "repo", "proj");
    expect_param(&m, 2, "file", "src/main.c");
}

static void test_lh_router_match_root_catchall_matches_root(void **state)
{
    struct lh_router *r = *state;
    struct lh_router_match m;

    add_ok(r, "GET", "/*path", 1);

    assert_int_equal(match(r, "GET", "/index.html", &m), LH_ROUTER_FOUND);
    expect_param(&m, 0, "path", "index.html");
    // As "/static/*rest" matches "/static/", the root catch-all must take "/".
    assert_int_equal(match(r, "GET", "/", &m), LH_ROUTER_FOUND);
    assert_int_equal(m.handler, 1);
    assert_int_equal(m.nparams, 1);
    expect_param(&m, 0, "path", "");
}

static void test_lh_router_match_literal_beats_param(void **state)
{
    struct lh_router *r = *state;
    struct lh_router_match m;

    /* The parameter is added first: order of addition must not matter. */
    add_ok(r, "GET", "/users/:id", 1);
    add_ok(r, "GET", "/users/new", 2);
    add_ok(r, "GET", "/users/*rest", 3);

    assert_int_equal(match(r, "GET", "/users/new", &m), LH_ROUTER_FOUND);
    assert_int_equal(m.handler, 2);
    assert_int_equal(m.nparams, 0);

    assert_int_equal(match(r, "GET", "/users/17", &m), LH_ROUTER_FOUND);
    assert_int_equal(m.handler, 1);
    expect_param(&m, 0, "id", "17");

    /* Parameters beat the catch-all; the catch-all takes the rest. */
    assert_int_equal(match(r, "GET", "/users/17/x", &m), LH_ROUTER_FOUND);
    assert_int_equal(m.handler, 3);
    expect_param(&m, 0, "rest", "17/x");
}

static void test_lh_router_match_backtracks(void **state)
{
    struct lh_router *r = *state;
    struct lh_router_match m;

    add_ok(r, "GET", "/a/new/x", 1);
    add_ok(r, "GET", "/a/:id/y", 2);

    assert_int_equal(match(r, "GET", "/a/new/x", &m), LH_ROUTER_FOUND);
    assert_int_equal(m.handler, 1);
    assert_int_equal(m.nparams, 0);

    /* The literal "new" leads nowhere for "/y": the parameter branch must win. */
    assert_int_equal(match(r, "GET", "/a/new/y", &m), LH_ROUTER_FOUND);
    assert_int_equal(m.handler, 2);
    assert_int_equal(m.nparams, 1);
    expect_param(&m, 0, "id", "new");

    assert_int_equal(match(r, "GET", "/a/5/y", &m), LH_ROUTER_FOUND);
    assert_int_equal(m.handler, 2);
    expect_param(&m, 0, "id", "5");

    expect_not_found(r, "GET", "/a/5/x");
}

static void test_lh_router_match_backtracks_to_catchall(void **state)
{
    struct lh_router *r = *state;
    struct lh_router_match m;

    add_ok(r, "GET", "/a/:id/y", 1);
    add_ok(r, "GET", "/a/*rest", 2);

    assert_int_equal(match(r, "GET", "/a/5/z", &m), LH_ROUTER_FOUND);
    assert_int_equal(m.handler, 2);
    assert_int_equal(m.nparams, 1); /* the failed ":id" capture is dropped */
    expect_param(&m, 0, "rest", "5/z");
}

static void test_lh_router_match_unknown_path_not_found(void **state)
{
    struct lh_router *r = *state;
    struct lh_router_match m;

    expect_not_found(r, "GET", "/"); /* empty router */
    add_ok(r, "GET", "/a/b", 1);
    expect_not_found(r, "GET", "/");
    expect_not_found(r, "GET", "/a");
    expect_not_found(r, "GET", "/a/c");
    expect_not_found(r, "GET", "/a/b/c");
    assert_int_equal(match(r, "GET", "/zzz", &m), LH_ROUTER_NOT_FOUND);
    assert_string_equal(m.allow, "");
    assert_int_equal(m.nparams, 0);
    /* Paths that do not start with '/' and empty paths match nothing. */
    assert_int_equal(lh_router_match(r, "GET", "a/b", 3, &m), LH_ROUTER_NOT_FOUND);
    assert_int_equal(lh_router_match(r, "GET", "", 0, &m), LH_ROUTER_NOT_FOUND);
}

static void test_lh_router_match_wrong_method_lists_allow(void **state)
{
    struct lh_router *r = *state;
    struct lh_router_match m;

    add_ok(r, "GET", "/items", 1);
    add_ok(r, "POST", "/items", 2);

    assert_int_equal(match(r, "DELETE", "/items", &m), LH_ROUTER_METHOD_NOT_ALLOWED);
    assert_string_equal(m.allow, "GET, HEAD, POST");
}

static void test_lh_router_match_wrong_method_allow_without_get(void **state)
{
    struct lh_router *r = *state;
    struct lh_router_match m;

    add_ok(r, "POST", "/items/:id", 1);
    add_ok(r, "PUT", "/items/:id", 2);

    assert_int_equal(match(r, "GET", "/items/3", &m), LH_ROUTER_METHOD_NOT_ALLOWED);
    assert_string_equal(m.allow, "POST, PUT"); /* no GET, so no implied HEAD */
    assert_int_equal(match(r, "HEAD", "/items/3", &m), LH_ROUTER_METHOD_NOT_ALLOWED);
    assert_string_equal(m.allow, "POST, PUT");
}

static void test_lh_router_match_head_falls_back_to_get(void **state)
{
    struct lh_router *r = *state;
    struct lh_router_match m;

    add_ok(r, "GET", "/page/:id", 1);

    assert_int_equal(match(r, "HEAD", "/page/3", &m), LH_ROUTER_FOUND);
    assert_int_equal(m.handler, 1);
    expect_param(&m, 0, "id", "3");
    /* Only HEAD falls back: other methods do not. */
    assert_int_equal(match(r, "POST", "/page/3", &m), LH_ROUTER_METHOD_NOT_ALLOWED);
}

static void test_lh_router_match_head_prefers_explicit_head(void **state)
{
    struct lh_router *r = *state;
    struct lh_router_match m;

    add_ok(r, "GET", "/page", 1);
    add_ok(r, "HEAD", "/page", 2);

    expect_handler(r, "HEAD", "/page", 2);
    expect_handler(r, "GET", "/page", 1);
    assert_int_equal(match(r, "PUT", "/page", &m), LH_ROUTER_METHOD_NOT_ALLOWED);
    assert_string_equal(m.allow, "GET, HEAD"); /* HEAD is not listed twice */
}

static void test_lh_router_match_star_method_accepts_any(void **state)
{
    struct lh_router *r = *state;
    struct lh_router_match m;

    add_ok(r, "*", "/any/:x", 1);
    add_ok(r, "POST", "/any/:x", 2);

    assert_int_equal(match(r, "GET", "/any/1", &m), LH_ROUTER_FOUND);
    assert_int_equal(m.handler, 1);
    expect_param(&m, 0, "x", "1");
    expect_handler(r, "PATCH", "/any/1", 1);
    expect_handler(r, "HEAD", "/any/1", 1);
    expect_handler(r, "OPTIONS", "/any/1", 1);
    /* An exact method entry wins over "*". */
    expect_handler(r, "POST", "/any/1", 2);
    expect_not_found(r, "GET", "/any");
}

static void test_lh_router_add_duplicate_conflict(void **state)
{
    struct lh_router *r = *state;
    char err[128] = "";

    add_ok(r, "GET", "/a/:id", 1);
    add_ok(r, "GET", "/b", 2);
    add_ok(r, "GET", "/c/*rest", 3);

    assert_int_equal(lh_router_add(r, "GET", "/a/:id", 10, err, sizeof(err)), LH_ERR_CONFLICT);
    assert_true(err[0] != '\0');
    /* Same shape, another parameter name: still the same route. */
    err[0] = '\0';
    assert_int_equal(lh_router_add(r, "GET", "/a/:other", 11, err, sizeof(err)),
                     LH_ERR_CONFLICT);
    assert_true(err[0] != '\0');
    assert_int_equal(lh_router_add(r, "GET", "/b", 12, err, sizeof(err)), LH_ERR_CONFLICT);
    assert_int_equal(lh_router_add(r, "GET", "/c/*all", 13, err, sizeof(err)), LH_ERR_CONFLICT);

    /* The originals are untouched. */
    struct lh_router_match m;
    assert_int_equal(match(r, "GET", "/a/5", &m), LH_ROUTER_FOUND);
    assert_int_equal(m.handler, 1);
    expect_param(&m, 0, "id", "5");
    expect_handler(r, "GET", "/b", 2);
    assert_int_equal(match(r, "GET", "/c/x/y", &m), LH_ROUTER_FOUND);
    assert_int_equal(m.handler, 3);
    expect_param(&m, 0, "rest", "x/y");

    /* Another method on the same shape is not a conflict. */
    add_ok(r, "PUT", "/a/:id", 14);
    expect_handler(r, "PUT", "/a/5", 14);
}

static void test_lh_router_add_malformed_pattern_invalid(void **state)
{
    struct lh_router *r = *state;
    static const char *const bad[] = {
        "",            /* empty */
        "a/b",         /* no leading '/' */
        "users",       /* no leading '/' */
        "/a:b",        /* ':' mid-segment */
        "/a/b:c/d",    /* ':' mid-segment */
        "/a*b",        /* '*' mid-segment */
        "/*rest/x",    /* '*' not last */
        "/a/*rest/",   /* '*' not last */
        "/a/*rest.x",  /* '*' with a suffix */
        "/:",          /* parameter without a name */
        "/a/:/b",      /* parameter without a name */
        "/a/:.svg",    /* parameter without a name, with a suffix */
        "/:a:b",       /* two parameters in a segment */
        "/:a.*b",      /* parameter and catch-all in a segment */
    };
    char err[128];

    add_ok(r, "GET", "/a/:id", 1);
    add_ok(r, "GET", "/a/b", 2);

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        enum lh_status st = lh_router_add(r, "GET", bad[i], 99, err, sizeof(err));
        if (st != LH_ERR_INVALID)
            fail_msg("pattern '%s': expected LH_ERR_INVALID, got %s", bad[i], lh_status_str(st));
        if (err[0] == '\0')
            fail_msg("pattern '%s': no error message", bad[i]);
    }

    /* The router is unchanged. */
    struct lh_router_match m;
    assert_int_equal(match(r, "GET", "/a/7", &m), LH_ROUTER_FOUND);
    assert_int_equal(m.handler, 1);
    expect_param(&m, 0, "id", "7");
    expect_handler(r, "GET", "/a/b", 2);
    expect_not_found(r, "GET", "/");
    expect_not_found(r, "GET", "/a:b");
    expect_not_found(r, "GET", "/x/y");
    expect_not_found(r, "GET", "/a/b/x");
    assert_int_equal(match(r, "POST", "/a/b", &m), LH_ROUTER_METHOD_NOT_ALLOWED);
    assert_string_equal(m.allow, "GET, HEAD");
}

static void test_lh_router_add_too_many_params_invalid(void **state)
{
    struct lh_router *r = *state;
    char pattern[512], path[512], err[128] = "";
    size_t pn = 0, qn = 0;

    /* 17 parameters: one too many. */
    for (int i = 0; i <= LH_ROUTER_MAX_PARAMS; i++) {
        pn += (size_t)snprintf(pattern + pn, sizeof(pattern) - pn, "/:p%d", i);
        qn += (size_t)snprintf(path + qn, sizeof(path) - qn, "/v%d", i);
    }
    assert_int_equal(lh_router_add(r, "GET", pattern, 1, err, sizeof(err)), LH_ERR_INVALID);
    assert_true(err[0] != '\0');
    expect_not_found(r, "GET", path);

    /* 16 parameters then a catch-all: 17 captures, also too many. */
    pn = 0;
    for (int i = 0; i < LH_ROUTER_MAX_PARAMS; i++)
        pn += (size_t)snprintf(pattern + pn, sizeof(pattern) - pn, "/:p%d", i);
    snprintf(pattern + pn, sizeof(pattern) - pn, "/*rest");
    assert_int_equal(lh_router_add(r, "GET", pattern, 2, err, sizeof(err)), LH_ERR_INVALID);
    expect_not_found(r, "GET", path);
}

static void test_lh_router_match_sixteen_params(void **state)
{
    struct lh_router *r = *state;
    struct lh_router_match m;
    char pattern[512], path[512], name[16], value[16];
    size_t pn = 0, qn = 0;

    for (int i = 0; i < LH_ROUTER_MAX_PARAMS; i++) {
        pn += (size_t)snprintf(pattern + pn, sizeof(pattern) - pn, "/:p%d", i);
        qn += (size_t)snprintf(path + qn, sizeof(path) - qn, "/v%d", i);
    }
    add_ok(r, "GET", pattern, 16);
    assert_int_equal(match(r, "GET", path, &m), LH_ROUTER_FOUND);
    assert_int_equal(m.handler, 16);
    assert_int_equal(m.nparams, LH_ROUTER_MAX_PARAMS);
    for (int i = 0; i < LH_ROUTER_MAX_PARAMS; i++) {
        snprintf(name, sizeof(name), "p%d", i);
        snprintf(value, sizeof(value), "v%d", i);
        expect_param(&m, (size_t)i, name, value);
    }
}

static void test_lh_router_add_bad_method_invalid(void **state)
{
    struct lh_router *r = *state;
    static const char *const bad[] = {"", "get", "Get", "GE T", "GET1", "**",
                                      "ABCDEFGHIJKLMNOPQ"};
    char err[128];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        enum lh_status st = lh_router_add(r, bad[i], "/x", 1, err, sizeof(err));
        if (st != LH_ERR_INVALID)
            fail_msg("method '%s': expected LH_ERR_INVALID, got %s", bad[i], lh_status_str(st));
        assert_true(err[0] != '\0');
    }
    expect_not_found(r, "GET", "/x");
    add_ok(r, "PROPFIND", "/x", 2);
    expect_handler(r, "PROPFIND", "/x", 2);
}

static void test_lh_router_match_root(void **state)
{
    struct lh_router *r = *state;
    struct lh_router_match m;

    add_ok(r, "GET", "/", 1);
    add_ok(r, "GET", "/a", 2);

    assert_int_equal(match(r, "GET", "/", &m), LH_ROUTER_FOUND);
    assert_int_equal(m.handler, 1);
    assert_int_equal(m.nparams, 0);
    expect_handler(r, "GET", "/a", 2);
    assert_int_equal(match(r, "POST", "/", &m), LH_ROUTER_METHOD_NOT_ALLOWED);
    assert_string_equal(m.allow, "GET, HEAD");
}

static void test_lh_router_match_trailing_slash_distinct(void **state)
{
    struct lh_router *r = *state;

    add_ok(r, "GET", "/docs", 1);
    add_ok(r, "GET", "/docs/", 2);
    add_ok(r, "GET", "/only-slash/", 3);
    add_ok(r, "GET", "/no-slash", 4);

    expect_handler(r, "GET", "/docs", 1);
    expect_handler(r, "GET", "/docs/", 2);
    expect_handler(r, "GET", "/only-slash/", 3);
    expect_not_found(r, "GET", "/only-slash");
    expect_handler(r, "GET", "/no-slash", 4);
    expect_not_found(r, "GET", "/no-slash/");
}

static void test_lh_router_match_param_names_per_method(void **state)
{
    struct lh_router *r = *state;
    struct lh_router_match m;

    add_ok(r, "GET", "/a/:id", 1);
    add_ok(r, "DELETE", "/a/:name", 2);

    assert_int_equal(match(r, "GET", "/a/x", &m), LH_ROUTER_FOUND);
    assert_int_equal(m.handler, 1);
    expect_param(&m, 0, "id", "x");

    assert_int_equal(match(r, "DELETE", "/a/x", &m), LH_ROUTER_FOUND);
    assert_int_equal(m.handler, 2);
    expect_param(&m, 0, "name", "x");

    assert_int_equal(match(r, "HEAD", "/a/x", &m), LH_ROUTER_FOUND);
    assert_int_equal(m.handler, 1);
    expect_param(&m, 0, "id", "x");
}

static void test_lh_router_match_many_routes(void **state)
{
    struct lh_router *r = *state;
    struct lh_router_match m;
    char pattern[64], path[64], value[32];
    enum { N = 1000 };

    /* Insert in an order that is not sorted, to exercise the sorted children. */
    for (int k = 0; k < N; k++) {
        int i = (k * 7919) % N;
        snprintf(pattern, sizeof(pattern), "/r%d", i);
        add_ok(r, "GET", pattern, i);
        snprintf(pattern, sizeof(pattern), "/r%d/:id", i);
        add_ok(r, "POST", pattern, N + i);
        snprintf(pattern, sizeof(pattern), "/group/%d/item", i);
        add_ok(r, "GET", pattern, 2 * N + i);
    }
    for (int i = 0; i < N; i++) {
        snprintf(path, sizeof(path), "/r%d", i);
        expect_handler(r, "GET", path, i);
        snprintf(path, sizeof(path), "/r%d/v%d", i, i);
        snprintf(value, sizeof(value), "v%d", i);
        assert_int_equal(match(r, "POST", path, &m), LH_ROUTER_FOUND);
        assert_int_equal(m.handler, N + i);
        expect_param(&m, 0, "id", value);
        snprintf(path, sizeof(path), "/group/%d/item", i);
        expect_handler(r, "GET", path, 2 * N + i);
    }
    expect_not_found(r, "GET", "/r1000");
    expect_not_found(r, "GET", "/group/1000/item");
    expect_not_found(r, "GET", "/r-1");
}

static void test_lh_router_free_null(void **state)
{
    (void)state;
    lh_router_free(NULL); /* must not crash */
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup_router, teardown_router)
    const struct CMUnitTest tests[] = {
        T(test_lh_router_match_literal),
        T(test_lh_router_match_param_captures_value),
        T(test_lh_router_match_param_points_into_path),
        T(test_lh_router_match_param_never_empty),
        T(test_lh_router_match_param_with_suffix),
        T(test_lh_router_match_longer_suffix_first),
        T(test_lh_router_match_catchall_captures_rest_with_slashes),
        T(test_lh_router_match_catchall_empty),
        T(test_lh_router_match_catchall_after_params),
        T(test_lh_router_match_root_catchall_matches_root),
        T(test_lh_router_match_literal_beats_param),
        T(test_lh_router_match_backtracks),
        T(test_lh_router_match_backtracks_to_catchall),
        T(test_lh_router_match_unknown_path_not_found),
        T(test_lh_router_match_wrong_method_lists_allow),
        T(test_lh_router_match_wrong_method_allow_without_get),
        T(test_lh_router_match_head_falls_back_to_get),
        T(test_lh_router_match_head_prefers_explicit_head),
        T(test_lh_router_match_star_method_accepts_any),
        T(test_lh_router_add_duplicate_conflict),
        T(test_lh_router_add_malformed_pattern_invalid),
        T(test_lh_router_add_too_many_params_invalid),
        T(test_lh_router_match_sixteen_params),
        T(test_lh_router_add_bad_method_invalid),
        T(test_lh_router_match_root),
        T(test_lh_router_match_trailing_slash_distinct),
        T(test_lh_router_match_param_names_per_method),
        T(test_lh_router_match_many_routes),
        cmocka_unit_test(test_lh_router_free_null),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
