/* tests/test_cookie.c: cmocka tests for include/luahost/cookie.h. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "luahost/cookie.h"

/* The pairs as "name=value|name=value|", up to stop_after pairs. */
struct seen {
    char text[256];
    int count, stop_after;
};

static int collect(void *arg, const char *name, size_t name_len, const char *value,
                   size_t value_len)
{
    struct seen *s = arg;
    size_t used = strlen(s->text);
    snprintf(s->text + used, sizeof(s->text) - used, "%.*s=%.*s|", (int)name_len, name,
             (int)value_len, value);
    return ++s->count == s->stop_after;
}

static const char *pairs(const char *header, int stop_after)
{
    static struct seen s;
    memset(&s, 0, sizeof(s));
    s.stop_after = stop_after;
    lh_cookie_each(header, strlen(header), collect, &s);
    return s.text;
}

static void test_pairs_in_order_trimmed(void **state)
{
    (void)state;
    assert_string_equal(pairs("sid=abc; theme=dark", 0), "sid=abc|theme=dark|");
    assert_string_equal(pairs("  a = 1 ;b=2;  ", 0), "a=1|b=2|");
    assert_string_equal(pairs("q=\"quoted value\"", 0), "q=quoted value|");
    assert_string_equal(pairs("e=; f==x", 0), "e=|f==x|");
}

static void test_malformed_pairs_skipped(void **state)
{
    (void)state;
    assert_string_equal(pairs("novalue; =noname; ;; ok=1", 0), "ok=1|");
    assert_string_equal(pairs("", 0), "");
    assert_string_equal(pairs("\"=\"", 0), "\"=\"|"); /* a lone quote is not unquoted */
}

static void test_callback_stops(void **state)
{
    (void)state;
    assert_string_equal(pairs("a=1; b=2; c=3", 2), "a=1|b=2|");
}

static void test_not_nul_terminated(void **state)
{
    (void)state;
    struct seen s = {.stop_after = 0};
    const char buf[] = {'a', '=', '1', ';', 'b', '=', '2'};
    lh_cookie_each(buf, 5, collect, &s); /* "a=1;b" */
    assert_string_equal(s.text, "a=1|");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pairs_in_order_trimmed),
        cmocka_unit_test(test_malformed_pairs_skipped),
        cmocka_unit_test(test_callback_stops),
        cmocka_unit_test(test_not_nul_terminated),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
