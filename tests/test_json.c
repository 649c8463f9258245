/* tests/test_json.c: JSON buffer, escaping and numbers. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <math.h>
#include <string.h>

#include "luahost/json.h"

static void expect_text(struct lh_json_buf *b, const char *want)
{
    assert_false(b->failed);
    assert_int_equal(b->len, strlen(want));
    assert_memory_equal(b->data, want, b->len);
}

static void test_lh_json_string_escapes_quotes_backslashes_and_controls(void **state)
{
    struct lh_json_buf b;
    (void)state;
    lh_json_buf_init(&b, 1024);
    lh_json_string(&b, "a\"b\\c\nd\te\x01" "f/\xc3\xa9", 14);
    expect_text(&b, "\"a\\\"b\\\\c\\nd\\te\\u0001f/\xc3\xa9\"");
    lh_json_buf_free(&b);
}

static void test_lh_json_string_keeps_nul_bytes_escaped(void **state)
{
    struct lh_json_buf b;
    (void)state;
    lh_json_buf_init(&b, 1024);
    lh_json_string(&b, "a\0b", 3);
    expect_text(&b, "\"a\\u0000b\"");
    lh_json_buf_free(&b);
}

static void test_lh_json_number_prints_integers_exactly(void **state)
{
    struct lh_json_buf b;
    (void)state;
    lh_json_buf_init(&b, 1024);
    assert_int_equal(lh_json_number(&b, 123456789012345.0), LH_OK);
    lh_json_raw(&b, " ", 1);
    assert_int_equal(lh_json_number(&b, 9007199254740991.0), LH_OK);
    lh_json_raw(&b, " ", 1);
    assert_int_equal(lh_json_number(&b, -42.0), LH_OK);
    expect_text(&b, "123456789012345 9007199254740991 -42");
    lh_json_buf_free(&b);
}

static void test_lh_json_number_prints_the_shortest_exact_fraction(void **state)
{
    struct lh_json_buf b;
    (void)state;
    lh_json_buf_init(&b, 1024);
    lh_json_number(&b, 0.1);
    lh_json_raw(&b, " ", 1);
    lh_json_number(&b, 2.5);
    lh_json_raw(&b, " ", 1);
    lh_json_number(&b, 1.0 / 3.0);
    expect_text(&b, "0.1 2.5 0.3333333333333333");
    lh_json_buf_free(&b);
}

static void test_lh_json_number_refuses_nan_and_infinity(void **state)
{
    struct lh_json_buf b;
    (void)state;
    lh_json_buf_init(&b, 1024);
    assert_int_equal(lh_json_number(&b, NAN), LH_ERR_INVALID);
    assert_int_equal(lh_json_number(&b, INFINITY), LH_ERR_INVALID);
    assert_int_equal(b.len, 0);
    lh_json_buf_free(&b);
}

static void test_lh_json_buf_stops_at_its_cap(void **state)
{
    struct lh_json_buf b;
    (void)state;
    lh_json_buf_init(&b, 8);
    lh_json_raw(&b, "12345678", 8);
    assert_false(b.failed);
    lh_json_raw(&b, "9", 1);
    assert_true(b.failed);
    assert_int_equal(b.len, 8);
    lh_json_buf_reset(&b);
    assert_false(b.failed);
    assert_int_equal(b.len, 0);
    lh_json_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lh_json_string_escapes_quotes_backslashes_and_controls),
        cmocka_unit_test(test_lh_json_string_keeps_nul_bytes_escaped),
        cmocka_unit_test(test_lh_json_number_prints_integers_exactly),
        cmocka_unit_test(test_lh_json_number_prints_the_shortest_exact_fraction),
        cmocka_unit_test(test_lh_json_number_refuses_nan_and_infinity),
        cmocka_unit_test(test_lh_json_buf_stops_at_its_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
