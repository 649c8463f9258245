/* tests/test_headers.c: cmocka tests for include/luahost/headers.h. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "luahost/headers.h"

/* -- Helpers ----------------------------------------------------------------- */

#define MAX_EMITTED 80

/* What lh_header_set_emit handed to its callback, copied. */
struct emitted {
    size_t n;
    char name[MAX_EMITTED][LH_HEADER_NAME_MAX + 1];
    char value[MAX_EMITTED][LH_HEADER_VALUE_MAX + 1];
};

static void collect(void *arg, const char *name, const char *value)
{
    struct emitted *e = arg;

    assert_true(e->n < MAX_EMITTED);
    assert_true(strlen(name) <= LH_HEADER_NAME_MAX);
    assert_true(strlen(value) <= LH_HEADER_VALUE_MAX);
    snprintf(e->name[e->n], sizeof(e->name[e->n]), "%s", name);
    snprintf(e->value[e->n], sizeof(e->value[e->n]), "%s", value);
    e->n++;
}

/* Emits s into a fresh (heap: it is large) struct emitted; free() it. */
static struct emitted *emit(const struct lh_header_set *s, const char *nonce, int https)
{
    struct emitted *e = calloc(1, sizeof(*e));

    assert_non_null(e);
    lh_header_set_emit(s, nonce, https, collect, e);
    return e;
}

static void expect_header(const struct emitted *e, size_t i, const char *name, const char *value)
{
    if (i >= e->n)
        fail_msg("header %zu (%s) missing: only %zu emitted", i, name, e->n);
    if (strcmp(e->name[i], name) != 0 || strcmp(e->value[i], value) != 0)
        fail_msg("header %zu: expected '%s: %s', got '%s: %s'", i, name, value, e->name[i],
                 e->value[i]);
}

static void add_ok(struct lh_header_set *s, const char *name, const char *value)
{
    char err[256] = "";
    enum lh_status st = lh_header_set_add(s, name, value, err, sizeof(err));
    if (st != LH_OK)
        fail_msg("lh_header_set_add(%s) failed: %s (%s)", name, lh_status_str(st), err);
}

/* Asserts that adding name: value fails with LH_ERR_INVALID and a message
 * holding want. */
static void add_invalid(struct lh_header_set *s, const char *name, const char *value,
                        const char *want)
{
    char err[256] = "";
    enum lh_status st = lh_header_set_add(s, name, value, err, sizeof(err));
    if (st != LH_ERR_INVALID)
        fail_msg("lh_header_set_add(%s): expected LH_ERR_INVALID, got %s", name, lh_status_str(st));
    if (strstr(err, want) == NULL)
        fail_msg("lh_header_set_add(%s): message '%s' lacks '%s'", name, err, want);
}

static int setup_set(void **state)
{
    struct lh_header_set *s = lh_header_set_new();
    if (s == NULL)
        return -1;
    *state = s;
    return 0;
}

static int teardown_set(void **state)
{
    lh_header_set_free(*state);
    return 0;
}

#define D(name, ...)                                                                               \
    {                                                                                              \
        name, (const char *const[]){__VA_ARGS__},                                                  \
            sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *)                      \
    }
#define D0(name)                                                                                   \
    {                                                                                              \
        name, NULL, 0                                                                              \
    }
#define NDIR(a) (sizeof(a) / sizeof((a)[0]))

/* Asserts that lh_csp_build fails with st and a message holding want. */
static void csp_fails(const struct lh_csp_directive *d, size_t n, enum lh_status want_st,
                      const char *want)
{
    char out[512];
    char err[256] = "";
    enum lh_status st;

    memset(out, 'x', sizeof(out));
    st = lh_csp_build(d, n, out, sizeof(out), err, sizeof(err));
    if (st != want_st)
        fail_msg("expected %s, got %s (out '%.60s', err '%s')", lh_status_str(want_st),
                 lh_status_str(st), st == LH_OK ? out : "", err);
    if (strstr(err, want) == NULL)
        fail_msg("message '%s' lacks '%s'", err, want);
    assert_string_equal(out, "");
}

/* -- Nonces ------------------------------------------------------------------ */

static int cmp_nonce(const void *a, const void *b)
{
    return memcmp(a, b, LH_NONCE_LEN + 1);
}

static void test_lh_nonce_generate_length_and_alphabet(void **state)
{
    (void)state;
    for (int i = 0; i < 1000; i++) {
        char n[LH_NONCE_LEN + 1];
        memset(n, '!', sizeof(n));
        assert_int_equal(lh_nonce_generate(n), LH_OK);
        assert_int_equal(strlen(n), LH_NONCE_LEN);
        assert_int_equal(strspn(n, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                   "0123456789-_"),
                         LH_NONCE_LEN);
        assert_true(lh_nonce_valid(n));
    }
}

/* 1000 nonces span several 4 KiB refills (256 nonces each). */
static void test_lh_nonce_generate_distinct(void **state)
{
    static char n[1000][LH_NONCE_LEN + 1];

    (void)state;
    for (int i = 0; i < 1000; i++)
        assert_int_equal(lh_nonce_generate(n[i]), LH_OK);
    qsort(n, 1000, sizeof(n[0]), cmp_nonce);
    for (int i = 1; i < 1000; i++)
        if (strcmp(n[i - 1], n[i]) == 0)
            fail_msg("nonce %s generated twice", n[i]);
}

#define PER_THREAD 300
static void *thread_nonces(void *arg)
{
    char(*n)[LH_NONCE_LEN + 1] = arg;
    for (int i = 0; i < PER_THREAD; i++)
        if (lh_nonce_generate(n[i]) != LH_OK)
            return NULL;
    return arg;
}

/* Each thread has its own pool: no two threads hand out the same bytes. */
static void test_lh_nonce_generate_threads_distinct(void **state)
{
    static char n[4 * PER_THREAD][LH_NONCE_LEN + 1];
    pthread_t t[4];

    (void)state;
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, thread_nonces, n[i * PER_THREAD]), 0);
    for (int i = 0; i < 4; i++) {
        void *ret;
        assert_int_equal(pthread_join(t[i], &ret), 0);
        assert_non_null(ret);
    }
    qsort(n, 4 * PER_THREAD, sizeof(n[0]), cmp_nonce);
    for (int i = 1; i < 4 * PER_THREAD; i++)
        if (strcmp(n[i - 1], n[i]) == 0)
            fail_msg("nonce %s generated twice", n[i]);
}

/* A forked child must not hand out the bytes its parent still holds. */
static void test_lh_nonce_generate_fork_does_not_repeat(void **state)
{
    char parent[LH_NONCE_LEN + 1], child[LH_NONCE_LEN + 1] = "";
    int fds[2], status;
    pid_t pid;

    (void)state;
    assert_int_equal(lh_nonce_generate(parent), LH_OK); /* the pool is now full */
    assert_int_equal(pipe(fds), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char n[LH_NONCE_LEN + 1];
        int ok = lh_nonce_generate(n) == LH_OK &&
                 write(fds[1], n, LH_NONCE_LEN) == (ssize_t)LH_NONCE_LEN;
        _exit(ok ? 0 : 1);
    }
    close(fds[1]);
    assert_int_equal(read(fds[0], child, LH_NONCE_LEN), LH_NONCE_LEN);
    child[LH_NONCE_LEN] = '\0';
    close(fds[0]);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(lh_nonce_generate(parent), LH_OK);
    assert_string_not_equal(parent, child);
}

static void test_lh_nonce_valid(void **state)
{
    (void)state;
    assert_true(lh_nonce_valid("AAECAwQFBgcICQoLDA0ODw"));
    assert_true(lh_nonce_valid("-_-_-_-_-_-_-_-_-_-_zz"));
    assert_false(lh_nonce_valid(NULL));
    assert_false(lh_nonce_valid(""));
    assert_false(lh_nonce_valid("AAECAwQFBgcICQoLDA0OD"));   /* 21 */
    assert_false(lh_nonce_valid("AAECAwQFBgcICQoLDA0ODwA")); /* 23 */
    assert_false(lh_nonce_valid("AAECAwQFBgcICQoLDA0OD="));
    assert_false(lh_nonce_valid("AAECAwQFBgcICQoLDA0OD+"));
    assert_false(lh_nonce_valid("AAECAwQFBgcICQoLDA0O\r\n"));
}

static void test_lh_base64url_encode_known_answers(void **state)
{
    /* RFC 4648 section 10, without padding; then the two url-safe letters. */
    static const struct {
        const char *in;
        size_t len;
        const char *out;
    } v[] = {
        {"", 0, ""},
        {"f", 1, "Zg"},
        {"fo", 2, "Zm8"},
        {"foo", 3, "Zm9v"},
        {"foob", 4, "Zm9vYg"},
        {"fooba", 5, "Zm9vYmE"},
        {"foobar", 6, "Zm9vYmFy"},
        {"\xfb\xff", 2, "-_8"},      /* base64: "+/8=" */
        {"\xff\xff\xff", 3, "____"}, /* base64: "////" */
        {"\x00\x00\x3e", 3, "AAA-"}, /* base64: "AAA+" */
        {"\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f", 16,
         "AAECAwQFBgcICQoLDA0ODw"}, /* base64: "...ODw==" */
    };
    char out[64];

    (void)state;
    assert_int_equal(LH_BASE64URL_LEN(16), LH_NONCE_LEN);
    for (size_t i = 0; i < NDIR(v); i++) {
        memset(out, '!', sizeof(out));
        assert_int_equal(lh_base64url_encode(v[i].in, v[i].len, out), strlen(v[i].out));
        assert_int_equal(LH_BASE64URL_LEN(v[i].len), strlen(v[i].out));
        assert_string_equal(out, v[i].out);
    }
}

/* -- lh_csp_build ------------------------------------------------------------ */

/* The reference design's table, self-hosted (no CDNs), with a nonce for
 * scripts and styles. */
static void test_lh_csp_build_reference_table(void **state)
{
    const struct lh_csp_directive d[] = {
        D("default-src", "'self'"),
        D("script-src", "'self'", "'nonce'"),
        D("style-src", "'self'", "'nonce'"),
        D("img-src", "'self'", "data:"),
        D("font-src", "'self'"),
        D("connect-src", "'self'"),
        D("object-src", "'none'"),
        D("frame-ancestors", "'none'"),
        D("base-uri", "'self'"),
        D("form-action", "'self'"),
        D0("upgrade-insecure-requests"),
        D("report-uri", "/csp-report"),
    };
    char out[1024], err[256] = "";

    (void)state;
    assert_int_equal(lh_csp_build(d, NDIR(d), out, sizeof(out), err, sizeof(err)), LH_OK);
    assert_string_equal(out, "default-src 'self'; "
                             "script-src 'self' 'nonce-{nonce}'; "
                             "style-src 'self' 'nonce-{nonce}'; "
                             "img-src 'self' data:; "
                             "font-src 'self'; "
                             "connect-src 'self'; "
                             "object-src 'none'; "
                             "frame-ancestors 'none'; "
                             "base-uri 'self'; "
                             "form-action 'self'; "
                             "upgrade-insecure-requests; "
                             "report-uri /csp-report");
}

static void test_lh_csp_build_nonce_placeholder(void **state)
{
    const struct lh_csp_directive d[] = {D("script-src", "'nonce'", "'strict-dynamic'")};
    char out[128], err[64];

    (void)state;
    assert_int_equal(lh_csp_build(d, 1, out, sizeof(out), err, sizeof(err)), LH_OK);
    assert_string_equal(out, "script-src 'nonce-{nonce}' 'strict-dynamic'");
}

static void test_lh_csp_build_single_directive_without_sources(void **state)
{
    const struct lh_csp_directive d[] = {D0("upgrade-insecure-requests")};
    char out[64], err[64];

    (void)state;
    assert_int_equal(lh_csp_build(d, 1, out, sizeof(out), err, sizeof(err)), LH_OK);
    assert_string_equal(out, "upgrade-insecure-requests");
}

static void test_lh_csp_build_hosts_hashes_and_schemes(void **state)
{
    const struct lh_csp_directive d[] = {
        D("img-src", "https://img.example.org", "data:", "blob:", "*.example.org:443"),
        D("script-src", "'sha256-abc+/=='", "'unsafe-hashes'")};
    char out[256], err[64] = "";

    (void)state;
    assert_int_equal(lh_csp_build(d, 2, out, sizeof(out), err, sizeof(err)), LH_OK);
    assert_string_equal(out, "img-src https://img.example.org data: blob: *.example.org:443; "
                             "script-src 'sha256-abc+/==' 'unsafe-hashes'");
}

static void test_lh_csp_build_bad_name(void **state)
{
    const struct lh_csp_directive upper[] = {D("Script-Src", "'self'")};
    const struct lh_csp_directive space[] = {D("script src", "'self'")};
    const struct lh_csp_directive empty[] = {D("", "'self'")};
    const struct lh_csp_directive dash[] = {D("-src", "'self'")};
    const struct lh_csp_directive null[] = {D("default-src", "'self'"), {NULL, NULL, 0}};

    (void)state;
    csp_fails(upper, 1, LH_ERR_INVALID, "bad directive name \"Script-Src\"");
    csp_fails(space, 1, LH_ERR_INVALID, "bad directive name \"script src\"");
    csp_fails(empty, 1, LH_ERR_INVALID, "bad directive name");
    csp_fails(dash, 1, LH_ERR_INVALID, "bad directive name \"-src\"");
    csp_fails(null, 2, LH_ERR_INVALID, "directive 2: missing name");
}

static void test_lh_csp_build_bad_source_names_directive(void **state)
{
    const struct lh_csp_directive semi[] = {D("default-src", "'self'"),
                                            D("script-src", "'self'", "a.org; img-src *")};
    const struct lh_csp_directive comma[] = {D("style-src", "a.org,b.org")};
    const struct lh_csp_directive cr[] = {D("img-src", "a.org\r")};
    const struct lh_csp_directive lf[] = {D("img-src", "a.org\nSet-Cookie: x=1")};
    const struct lh_csp_directive empty[] = {D("font-src", "")};
    const struct lh_csp_directive null[] = {D("font-src", "'self'", NULL)};
    const struct lh_csp_directive space[] = {D("connect-src", "'self' a.org")};
    const struct lh_csp_directive bare[] = {D("base-uri", "self")};
    const struct lh_csp_directive bare_none[] = {D("object-src", "none")};
    const struct lh_csp_directive quote[] = {D("form-action", "'self")};
    const struct lh_csp_directive inner[] = {D("form-action", "'se'lf'")};
    const struct lh_csp_directive lone[] = {D("form-action", "'")};
    const struct lh_csp_directive none[] = {D("object-src", "'none'", "'self'")};
    const struct lh_csp_directive utf8[] = {D("img-src", "b\xc3\xa9.org")};
    const struct lh_csp_directive nosrc[] = {{"img-src", NULL, 2}};

    (void)state;
    csp_fails(semi, 2, LH_ERR_INVALID, "script-src: ';' in source \"a.org; img-src *\"");
    csp_fails(comma, 1, LH_ERR_INVALID, "style-src: ',' in source");
    csp_fails(cr, 1, LH_ERR_INVALID, "img-src: control character in source \"a.org?\"");
    csp_fails(lf, 1, LH_ERR_INVALID, "img-src: control character in source");
    csp_fails(empty, 1, LH_ERR_INVALID, "font-src: empty source");
    csp_fails(null, 1, LH_ERR_INVALID, "font-src: empty source");
    csp_fails(space, 1, LH_ERR_INVALID, "connect-src: whitespace in source");
    csp_fails(bare, 1, LH_ERR_INVALID, "base-uri: source \"self\" must be quoted: \"'self'\"");
    csp_fails(bare_none, 1, LH_ERR_INVALID, "object-src: source \"none\" must be quoted");
    csp_fails(quote, 1, LH_ERR_INVALID, "form-action: misplaced quote in source \"'self\"");
    csp_fails(inner, 1, LH_ERR_INVALID, "form-action: misplaced quote");
    csp_fails(lone, 1, LH_ERR_INVALID, "form-action: misplaced quote");
    csp_fails(none, 1, LH_ERR_INVALID, "object-src: 'none' must be the only source");
    csp_fails(utf8, 1, LH_ERR_INVALID, "img-src: non-ASCII byte in source");
    csp_fails(nosrc, 1, LH_ERR_INVALID, "img-src: missing sources");
}

static void test_lh_csp_build_repeated_directive(void **state)
{
    const struct lh_csp_directive d[] = {D("script-src", "'self'"), D("img-src", "'self'"),
                                         D("script-src", "'none'")};

    (void)state;
    csp_fails(d, NDIR(d), LH_ERR_INVALID, "script-src: repeated directive");
}

static void test_lh_csp_build_no_or_too_many_directives(void **state)
{
    static const char *const self[] = {"'self'"};
    static char names[LH_CSP_MAX_DIRECTIVES + 1][16];
    struct lh_csp_directive d[LH_CSP_MAX_DIRECTIVES + 1];
    char out[LH_HEADER_VALUE_MAX + 1], err[128];

    (void)state;
    for (int i = 0; i <= LH_CSP_MAX_DIRECTIVES; i++) {
        /* distinct names of letters only: "x-a", "x-b", ..., "x-ba" */
        snprintf(names[i], sizeof(names[i]), "x-%c%c", 'a' + i / 26, 'a' + i % 26);
        d[i].name = names[i];
        d[i].sources = self;
        d[i].nsources = 1;
    }
    assert_int_equal(lh_csp_build(d, LH_CSP_MAX_DIRECTIVES, out, sizeof(out), err, sizeof(err)),
                     LH_OK);
    csp_fails(d, LH_CSP_MAX_DIRECTIVES + 1, LH_ERR_INVALID, "too many directives");
    csp_fails(d, 0, LH_ERR_INVALID, "no directives");
    csp_fails(NULL, 0, LH_ERR_INVALID, "no directives");
}

static void test_lh_csp_build_too_small_buffer(void **state)
{
    const struct lh_csp_directive d[] = {D("default-src", "'self'"),
                                         D("script-src", "'self'", "'nonce'")};
    const char *want = "default-src 'self'; script-src 'self' 'nonce-{nonce}'";
    char out[128], err[64] = "";
    size_t len = strlen(want);

    (void)state;
    /* Exactly enough room: the string plus its NUL. */
    assert_int_equal(lh_csp_build(d, 2, out, len + 1, err, sizeof(err)), LH_OK);
    assert_string_equal(out, want);
    /* One byte short, at every cut point. */
    for (size_t size = 1; size <= len; size++) {
        memset(out, 'x', sizeof(out));
        assert_int_equal(lh_csp_build(d, 2, out, size, err, sizeof(err)), LH_ERR_NOMEM);
        assert_string_equal(out, "");
        assert_string_equal(err, "policy too long");
    }
    assert_int_equal(lh_csp_build(d, 2, NULL, 0, err, sizeof(err)), LH_ERR_NOMEM);
}

static void test_lh_csp_build_error_message_truncated(void **state)
{
    const struct lh_csp_directive d[] = {D("script-src", "a;b")};
    char out[64], err[8];

    (void)state;
    assert_int_equal(lh_csp_build(d, 1, out, sizeof(out), err, sizeof(err)), LH_ERR_INVALID);
    assert_string_equal(err, "script-"); /* cut, NUL-terminated */
    assert_int_equal(lh_csp_build(d, 1, out, sizeof(out), NULL, 0), LH_ERR_INVALID);
}

/* -- Header sets ------------------------------------------------------------- */

static void test_lh_header_set_emit_in_order(void **state)
{
    struct lh_header_set *s = *state;
    struct emitted *e;

    add_ok(s, "X-Content-Type-Options", "nosniff");
    add_ok(s, "X-Frame-Options", "DENY");
    add_ok(s, "Referrer-Policy", "strict-origin-when-cross-origin");
    add_ok(s, "X-XSS-Protection", "0");
    assert_false(lh_header_set_uses_nonce(s));
    e = emit(s, NULL, 0);
    assert_int_equal(e->n, 4);
    expect_header(e, 0, "X-Content-Type-Options", "nosniff");
    expect_header(e, 1, "X-Frame-Options", "DENY");
    expect_header(e, 2, "Referrer-Policy", "strict-origin-when-cross-origin");
    expect_header(e, 3, "X-XSS-Protection", "0");
    free(e);
}

static void test_lh_header_set_emit_replaces_nonce_everywhere(void **state)
{
    struct lh_header_set *s = *state;
    const char *nonce = "AAECAwQFBgcICQoLDA0ODw";
    struct emitted *e;

    add_ok(s, "X-Plain", "no placeholder");
    add_ok(s, "Content-Security-Policy", "script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'");
    add_ok(s, "X-Edges", "{nonce} middle {nonce}{nonce}");
    add_ok(s, "X-Only", "{nonce}");
    add_ok(s, "X-Almost", "{nonce {nonce-} nonce}");
    assert_true(lh_header_set_uses_nonce(s));
    e = emit(s, nonce, 0);
    assert_int_equal(e->n, 5);
    expect_header(e, 0, "X-Plain", "no placeholder");
    expect_header(e, 1, "Content-Security-Policy",
                  "script-src 'nonce-AAECAwQFBgcICQoLDA0ODw'; "
                  "style-src 'nonce-AAECAwQFBgcICQoLDA0ODw'");
    expect_header(e, 2, "X-Edges",
                  "AAECAwQFBgcICQoLDA0ODw middle AAECAwQFBgcICQoLDA0ODwAAECAwQFBgcICQoLDA0ODw");
    expect_header(e, 3, "X-Only", "AAECAwQFBgcICQoLDA0ODw");
    expect_header(e, 4, "X-Almost", "{nonce {nonce-} nonce}");
    free(e);
}

/* The same set, emitted with successive nonces, carries each one. */
static void test_lh_header_set_emit_fresh_nonce_each_time(void **state)
{
    struct lh_header_set *s = *state;
    char n1[LH_NONCE_LEN + 1], n2[LH_NONCE_LEN + 1];
    struct emitted *e1, *e2;

    add_ok(s, "Content-Security-Policy", "script-src 'nonce-{nonce}'");
    assert_int_equal(lh_nonce_generate(n1), LH_OK);
    assert_int_equal(lh_nonce_generate(n2), LH_OK);
    e1 = emit(s, n1, 0);
    e2 = emit(s, n2, 0);
    assert_non_null(strstr(e1->value[0], n1));
    assert_non_null(strstr(e2->value[0], n2));
    assert_string_not_equal(e1->value[0], e2->value[0]);
    free(e1);
    free(e2);
}

static void test_lh_header_set_emit_bad_nonce_becomes_empty(void **state)
{
    struct lh_header_set *s = *state;
    struct emitted *e;

    add_ok(s, "Content-Security-Policy", "script-src 'nonce-{nonce}'");
    e = emit(s, NULL, 0);
    expect_header(e, 0, "Content-Security-Policy", "script-src 'nonce-'");
    free(e);
    e = emit(s, "short", 0);
    expect_header(e, 0, "Content-Security-Policy", "script-src 'nonce-'");
    free(e);
    e = emit(s, "AAECAwQFBgcICQoLDA0O\r\nX-Injected: 1", 0);
    expect_header(e, 0, "Content-Security-Policy", "script-src 'nonce-'");
    free(e);
}

static void test_lh_header_set_hsts_only_on_https_and_last(void **state)
{
    struct lh_header_set *s = *state;
    char err[128];
    struct emitted *e;

    add_ok(s, "X-Frame-Options", "DENY");
    assert_int_equal(lh_header_set_hsts(s, "max-age=31536000; includeSubDomains", err, sizeof(err)),
                     LH_OK);
    add_ok(s, "X-Content-Type-Options", "nosniff"); /* added after HSTS, emitted before */

    e = emit(s, NULL, 0);
    assert_int_equal(e->n, 2);
    expect_header(e, 0, "X-Frame-Options", "DENY");
    expect_header(e, 1, "X-Content-Type-Options", "nosniff");
    free(e);

    e = emit(s, NULL, 1);
    assert_int_equal(e->n, 3);
    expect_header(e, 0, "X-Frame-Options", "DENY");
    expect_header(e, 1, "X-Content-Type-Options", "nosniff");
    expect_header(e, 2, "Strict-Transport-Security", "max-age=31536000; includeSubDomains");
    free(e);

    /* Setting it again replaces it. */
    assert_int_equal(lh_header_set_hsts(s, "max-age=60", err, sizeof(err)), LH_OK);
    e = emit(s, NULL, 1);
    assert_int_equal(e->n, 3);
    expect_header(e, 2, "Strict-Transport-Security", "max-age=60");
    free(e);
}

static void test_lh_header_set_hsts_invalid(void **state)
{
    struct lh_header_set *s = *state;
    char err[128] = "";
    struct emitted *e;

    assert_int_equal(lh_header_set_hsts(s, "max-age=1\r\nX: y", err, sizeof(err)), LH_ERR_INVALID);
    assert_non_null(strstr(err, "Strict-Transport-Security: control character"));
    assert_int_equal(lh_header_set_hsts(s, "", err, sizeof(err)), LH_ERR_INVALID);
    assert_int_equal(lh_header_set_hsts(s, NULL, err, sizeof(err)), LH_ERR_INVALID);
    e = emit(s, NULL, 1);
    assert_int_equal(e->n, 0);
    free(e);
}

static void test_lh_header_set_add_hsts_name_refused(void **state)
{
    struct lh_header_set *s = *state;

    add_invalid(s, "strict-transport-security", "max-age=60", "set it as hsts");
}

/* A policy's headers go out with every answer: one that frames the message
 * would contradict the server's own framing. */
static void test_lh_header_set_add_framing_names_refused(void **state)
{
    struct lh_header_set *s = *state;

    add_invalid(s, "Content-Length", "5", "Content-Length: the server or the handler sets it");
    add_invalid(s, "transfer-encoding", "chunked", "not a header policy");
    add_invalid(s, "Connection", "close", "not a header policy");
    add_invalid(s, "X-Request-Id", "x", "not a header policy");
    add_invalid(s, "content-type", "text/html", "not a header policy");
    add_ok(s, "X-Content-Length-Hint", "5"); /* only the exact names */
}

static void test_lh_header_set_add_same_name_replaces(void **state)
{
    struct lh_header_set *s = *state;
    struct emitted *e;

    add_ok(s, "X-Frame-Options", "DENY");
    add_ok(s, "Referrer-Policy", "no-referrer");
    add_ok(s, "x-frame-options", "SAMEORIGIN");
    add_ok(s, "Content-Security-Policy", "default-src 'self'");
    add_ok(s, "content-security-policy", "script-src 'nonce-{nonce}'");
    e = emit(s, "AAECAwQFBgcICQoLDA0ODw", 0);
    assert_int_equal(e->n, 3);
    expect_header(e, 0, "x-frame-options", "SAMEORIGIN");
    expect_header(e, 1, "Referrer-Policy", "no-referrer");
    expect_header(e, 2, "content-security-policy", "script-src 'nonce-AAECAwQFBgcICQoLDA0ODw'");
    free(e);
    assert_true(lh_header_set_uses_nonce(s));
    add_ok(s, "Content-Security-Policy", "default-src 'self'");
    assert_false(lh_header_set_uses_nonce(s));
}

static void test_lh_header_set_add_invalid_name(void **state)
{
    struct lh_header_set *s = *state;
    char longname[LH_HEADER_NAME_MAX + 2];
    struct emitted *e;

    add_invalid(s, "X Frame", "DENY", "bad header name \"X Frame\"");
    add_invalid(s, "X-Frame:", "DENY", "bad header name");
    add_invalid(s, "X-Frame\r\nSet-Cookie", "DENY", "bad header name \"X-Frame??Set-Cookie\"");
    add_invalid(s, "X-Fr\xc3\xa9me", "DENY", "bad header name");
    add_invalid(s, "(X)", "DENY", "bad header name");
    add_invalid(s, "", "DENY", "empty header name");
    add_invalid(s, NULL, "DENY", "empty header name");
    memset(longname, 'X', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    add_invalid(s, longname, "v", "too long");
    longname[LH_HEADER_NAME_MAX] = '\0';
    add_ok(s, longname, "v"); /* exactly the maximum */
    add_ok(s, "!#$%&'*+-.^_`|~09AZaz", "every tchar");
    e = emit(s, NULL, 0);
    assert_int_equal(e->n, 2);
    free(e);
}

static void test_lh_header_set_add_invalid_value(void **state)
{
    struct lh_header_set *s = *state;
    struct emitted *e;

    add_ok(s, "X-Keep", "kept");
    add_invalid(s, "X-A", "one\r\nSet-Cookie: a=b", "X-A: control character in value");
    add_invalid(s, "X-A", "one\nX: y", "control character");
    add_invalid(s, "X-A", "one\rX: y", "control character");
    add_invalid(s, "X-A", "bell\a", "control character");
    add_invalid(s, "X-A", "del\x7f", "control character");
    add_invalid(s, "X-A", "", "X-A: empty value");
    add_invalid(s, "X-A", NULL, "X-A: empty value");
    add_invalid(s, "X-A", " lead", "leading or trailing whitespace");
    add_invalid(s, "X-A", "trail\t", "leading or trailing whitespace");
    /* Failures leave the set as it was: the earlier value, same name, stays. */
    add_invalid(s, "X-Keep", "bad\n", "control character");
    add_ok(s, "X-Tab", "a\tb");        /* HTAB inside is legal */
    add_ok(s, "X-Obs", "caf\xc3\xa9"); /* obs-text is legal */
    e = emit(s, NULL, 0);
    assert_int_equal(e->n, 3);
    expect_header(e, 0, "X-Keep", "kept");
    expect_header(e, 1, "X-Tab", "a\tb");
    free(e);
}

/* The limit counts the value as emitted, each {nonce} as LH_NONCE_LEN bytes. */
static void test_lh_header_set_add_value_length_limit(void **state)
{
    struct lh_header_set *s = *state;
    char *v = malloc(LH_HEADER_VALUE_MAX + 2);
    const char *nonce = "AAECAwQFBgcICQoLDA0ODw";
    struct emitted *e;

    assert_non_null(v);
    memset(v, 'a', LH_HEADER_VALUE_MAX + 1);
    v[LH_HEADER_VALUE_MAX + 1] = '\0';
    add_invalid(s, "X-Long", v, "X-Long: value too long (4097 bytes, max 4096)");
    v[LH_HEADER_VALUE_MAX] = '\0';
    add_ok(s, "X-Long", v);

    /* {nonce} at the end: 4096 - 22 literal bytes + a nonce is exactly the limit. */
    memcpy(v + LH_HEADER_VALUE_MAX - LH_NONCE_LEN, "{nonce}", 8);
    add_ok(s, "X-Nonce", v);
    memcpy(v + LH_HEADER_VALUE_MAX - LH_NONCE_LEN, "b{nonce}", 9);
    add_invalid(s, "X-Nonce2", v, "value too long (4097 bytes");

    e = emit(s, nonce, 0);
    assert_int_equal(e->n, 2);
    assert_int_equal(strlen(e->value[0]), LH_HEADER_VALUE_MAX);
    assert_int_equal(strlen(e->value[1]), LH_HEADER_VALUE_MAX);
    assert_string_equal(e->value[1] + LH_HEADER_VALUE_MAX - LH_NONCE_LEN, nonce);
    free(e);
    free(v);
}

static void test_lh_header_set_add_too_many(void **state)
{
    struct lh_header_set *s = *state;
    char name[32];
    struct emitted *e;

    for (int i = 0; i < LH_HEADER_SET_MAX; i++) {
        snprintf(name, sizeof(name), "X-H%d", i);
        add_ok(s, name, "v");
    }
    add_invalid(s, "X-One-More", "v", "too many headers (max 64)");
    add_ok(s, "x-h7", "replaced"); /* replacing still works when full */
    e = emit(s, NULL, 0);
    assert_int_equal(e->n, LH_HEADER_SET_MAX);
    expect_header(e, 7, "x-h7", "replaced");
    expect_header(e, LH_HEADER_SET_MAX - 1, "X-H63", "v");
    free(e);
}

static void test_lh_header_set_emit_empty(void **state)
{
    struct lh_header_set *s = *state;
    struct emitted *e;

    assert_false(lh_header_set_uses_nonce(s));
    e = emit(s, NULL, 0);
    assert_int_equal(e->n, 0);
    free(e);
    e = emit(s, "AAECAwQFBgcICQoLDA0ODw", 1);
    assert_int_equal(e->n, 0);
    free(e);
}

static void test_lh_header_set_csp_adds_header(void **state)
{
    struct lh_header_set *s = *state;
    const struct lh_csp_directive d[] = {D("default-src", "'self'"),
                                         D("script-src", "'self'", "'nonce'")};
    char err[128] = "";
    struct emitted *e;

    assert_int_equal(lh_header_set_csp(s, d, 2, NULL, 0, err, sizeof(err)), LH_OK);
    assert_true(lh_header_set_uses_nonce(s));
    e = emit(s, "AAECAwQFBgcICQoLDA0ODw", 0);
    assert_int_equal(e->n, 1);
    expect_header(e, 0, "Content-Security-Policy",
                  "default-src 'self'; script-src 'self' 'nonce-AAECAwQFBgcICQoLDA0ODw'");
    free(e);
}

static void test_lh_header_set_csp_report_only_with_report_uri(void **state)
{
    struct lh_header_set *s = *state;
    const struct lh_csp_directive d[] = {D("default-src", "'none'")};
    char err[128] = "";
    struct emitted *e;

    assert_int_equal(lh_header_set_csp(s, d, 1, "/csp-report", 1, err, sizeof(err)), LH_OK);
    assert_false(lh_header_set_uses_nonce(s));
    e = emit(s, NULL, 0);
    assert_int_equal(e->n, 1);
    expect_header(e, 0, "Content-Security-Policy-Report-Only",
                  "default-src 'none'; report-uri /csp-report");
    free(e);
}

static void test_lh_header_set_csp_errors_leave_set_unchanged(void **state)
{
    struct lh_header_set *s = *state;
    const struct lh_csp_directive d[] = {D("default-src", "'self'")};
    const struct lh_csp_directive dup[] = {D("report-uri", "/a")};
    const struct lh_csp_directive bad[] = {D("img-src", "x\ny")};
    char err[128] = "";
    struct emitted *e;

    assert_int_equal(lh_header_set_csp(s, d, 1, "/r;x", 0, err, sizeof(err)), LH_ERR_INVALID);
    assert_non_null(strstr(err, "report-uri: ';' in source"));
    assert_int_equal(lh_header_set_csp(s, dup, 1, "/b", 0, err, sizeof(err)), LH_ERR_INVALID);
    assert_non_null(strstr(err, "report-uri: repeated directive"));
    assert_int_equal(lh_header_set_csp(s, bad, 1, NULL, 0, err, sizeof(err)), LH_ERR_INVALID);
    assert_non_null(strstr(err, "img-src: control character"));
    assert_int_equal(lh_header_set_csp(s, d, 0, NULL, 0, err, sizeof(err)), LH_ERR_INVALID);
    assert_non_null(strstr(err, "no directives"));
    e = emit(s, NULL, 1);
    assert_int_equal(e->n, 0);
    free(e);
}

static void test_lh_header_set_null_arguments(void **state)
{
    char err[64] = "";

    (void)state;
    lh_header_set_free(NULL); /* must not crash */
    lh_header_set_emit(NULL, NULL, 1, collect, NULL);
    assert_false(lh_header_set_uses_nonce(NULL));
    assert_int_equal(lh_header_set_add(NULL, "X-A", "b", err, sizeof(err)), LH_ERR_INVALID);
    assert_int_equal(lh_header_set_hsts(NULL, "max-age=1", err, sizeof(err)), LH_ERR_INVALID);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup_set, teardown_set)
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lh_nonce_generate_length_and_alphabet),
        cmocka_unit_test(test_lh_nonce_generate_distinct),
        cmocka_unit_test(test_lh_nonce_generate_threads_distinct),
        cmocka_unit_test(test_lh_nonce_generate_fork_does_not_repeat),
        cmocka_unit_test(test_lh_nonce_valid),
        cmocka_unit_test(test_lh_base64url_encode_known_answers),
        cmocka_unit_test(test_lh_csp_build_reference_table),
        cmocka_unit_test(test_lh_csp_build_nonce_placeholder),
        cmocka_unit_test(test_lh_csp_build_single_directive_without_sources),
        cmocka_unit_test(test_lh_csp_build_hosts_hashes_and_schemes),
        cmocka_unit_test(test_lh_csp_build_bad_name),
        cmocka_unit_test(test_lh_csp_build_bad_source_names_directive),
        cmocka_unit_test(test_lh_csp_build_repeated_directive),
        cmocka_unit_test(test_lh_csp_build_no_or_too_many_directives),
        cmocka_unit_test(test_lh_csp_build_too_small_buffer),
        cmocka_unit_test(test_lh_csp_build_error_message_truncated),
        T(test_lh_header_set_emit_in_order),
        T(test_lh_header_set_emit_replaces_nonce_everywhere),
        T(test_lh_header_set_emit_fresh_nonce_each_time),
        T(test_lh_header_set_emit_bad_nonce_becomes_empty),
        T(test_lh_header_set_hsts_only_on_https_and_last),
        T(test_lh_header_set_hsts_invalid),
        T(test_lh_header_set_add_hsts_name_refused),
        T(test_lh_header_set_add_framing_names_refused),
        T(test_lh_header_set_add_same_name_replaces),
        T(test_lh_header_set_add_invalid_name),
        T(test_lh_header_set_add_invalid_value),
        T(test_lh_header_set_add_value_length_limit),
        T(test_lh_header_set_add_too_many),
        T(test_lh_header_set_emit_empty),
        T(test_lh_header_set_csp_adds_header),
        T(test_lh_header_set_csp_report_only_with_report_uri),
        T(test_lh_header_set_csp_errors_leave_set_unchanged),
        cmocka_unit_test(test_lh_header_set_null_arguments),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
