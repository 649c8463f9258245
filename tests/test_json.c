/* tests/test_json.c: JSON buffer, escaping and numbers; the parser. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
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

static void test_lh_json_string_escapes_runs_and_every_control_byte(void **state)
{
    struct lh_json_buf b;
    (void)state;
    lh_json_buf_init(&b, 1024);
    lh_json_string(&b, "", 0);
    lh_json_string(&b, "\"\"", 2);
    lh_json_string(&b, "\x1f\x7f\rx", 4);
    lh_json_string(&b, "\\", 1);
    expect_text(&b, "\"\"\"\\\"\\\"\"\"\\u001f\\u007f\\rx\"\"\\\\\"");
    lh_json_buf_free(&b);
}

/* Escaping grows a string by 6 bytes at most per byte; a string that needs
 * none fits a buffer of its length plus the quotes. */
static void test_lh_json_string_fits_a_buffer_of_its_own_size(void **state)
{
    enum { LEN = 100000 };
    struct lh_json_buf b;
    char *s = malloc(LEN);
    (void)state;
    assert_non_null(s);
    memset(s, 'a', LEN);
    lh_json_buf_init(&b, LEN + 2);
    lh_json_string(&b, s, LEN);
    assert_false(b.failed);
    assert_int_equal(b.len, LEN + 2);
    assert_int_equal(b.data[0], '"');
    assert_int_equal(b.data[LEN + 1], '"');
    lh_json_buf_reset(&b);
    s[LEN / 2] = '\n'; /* one byte more than the cap */
    lh_json_string(&b, s, LEN);
    assert_true(b.failed);
    lh_json_buf_free(&b);
    free(s);
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
    lh_json_raw(&b, " ", 1);
    assert_int_equal(lh_json_number(&b, -9007199254740991.0), LH_OK);
    lh_json_raw(&b, " ", 1);
    assert_int_equal(lh_json_number(&b, 0.0), LH_OK);
    lh_json_raw(&b, " ", 1);
    assert_int_equal(lh_json_number(&b, -0.0), LH_OK);
    lh_json_raw(&b, " ", 1);
    assert_int_equal(lh_json_number(&b, 10.0), LH_OK);
    lh_json_raw(&b, " ", 1);
    assert_int_equal(lh_json_number(&b, 9007199254740992.0), LH_OK); /* 2^53: not below */
    expect_text(&b, "123456789012345 9007199254740991 -42 -9007199254740991 0 0 10 "
                    "9007199254740992");
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

/* -- Parser ---- */

/* Writes each event as text: [ 1 "a" { k: true } ] */
struct trace {
    struct lh_json_buf out;
    const char *input; /* to tell strings passed straight from the input */
    size_t input_len;
    int strings_in_input;
    int stop_after; /* stop the parse at this many events; 0: never */
    int events;
};

static int event(struct trace *t, const char *text, size_t len)
{
    lh_json_raw(&t->out, text, len);
    lh_json_raw(&t->out, " ", 1);
    t->events++;
    return t->stop_after != 0 && t->events >= t->stop_after;
}

static int on_null(void *arg)
{
    return event(arg, "null", 4);
}

static int on_boolean(void *arg, int value)
{
    return event(arg, value ? "true" : "false", value ? 4 : 5);
}

static int on_number(void *arg, double value)
{
    char text[32];
    int len = snprintf(text, sizeof(text), "%.17g", value);
    return event(arg, text, (size_t)len);
}

static int on_string(void *arg, const char *s, size_t len)
{
    struct trace *t = arg;
    if (s >= t->input && s + len <= t->input + t->input_len)
        t->strings_in_input++;
    lh_json_raw(&t->out, "\"", 1);
    lh_json_raw(&t->out, s, len);
    return event(t, "\"", 1);
}

static int on_key(void *arg, const char *s, size_t len)
{
    struct trace *t = arg;
    lh_json_raw(&t->out, s, len);
    return event(t, ":", 1);
}

static int on_begin_array(void *arg)
{
    return event(arg, "[", 1);
}

static int on_end_array(void *arg)
{
    return event(arg, "]", 1);
}

static int on_begin_object(void *arg)
{
    return event(arg, "{", 1);
}

static int on_end_object(void *arg)
{
    return event(arg, "}", 1);
}

static const struct lh_json_visitor tracer = {
    .null = on_null,
    .boolean = on_boolean,
    .number = on_number,
    .string = on_string,
    .begin_array = on_begin_array,
    .end_array = on_end_array,
    .begin_object = on_begin_object,
    .key = on_key,
    .end_object = on_end_object,
};

/* Parses len bytes copied into a heap block of exactly that size, so that
 * ASan reports any read past the end. */
static enum lh_status parse_exact(const char *json, size_t len, struct trace *t,
                                  struct lh_json_buf *scratch, char *err, size_t errlen)
{
    char *copy = malloc(len > 0 ? len : 1);

    assert_non_null(copy);
    memcpy(copy, json, len);
    t->input = copy;
    t->input_len = len;
    enum lh_status st = lh_json_parse(copy, len, &tracer, t, scratch, err, errlen);
    free(copy);
    return st;
}

/* A document that must parse, and its trace. */
static void expect_trace(const char *json, const char *want)
{
    struct trace t = {0};
    char err[128];

    lh_json_buf_init(&t.out, 1 << 20);
    assert_int_equal(parse_exact(json, strlen(json), &t, NULL, err, sizeof(err)), LH_OK);
    assert_string_equal(err, "");
    expect_text(&t.out, want);
    lh_json_buf_free(&t.out);
}

/* The first len bytes of json, which must be refused with the error want. */
static void expect_error(const char *json, size_t len, const char *want)
{
    struct trace t = {0};
    char err[128];

    lh_json_buf_init(&t.out, 1 << 20);
    enum lh_status st = parse_exact(json, len, &t, NULL, err, sizeof(err));
    lh_json_buf_free(&t.out);
    if (st != LH_ERR_INVALID || strcmp(err, want) != 0)
        fail_msg("%.*s: got status %d, \"%s\"; want \"%s\"", (int)len, json, st, err, want);
}

static void test_lh_json_parse_reports_nested_values_in_order(void **state)
{
    (void)state;
    expect_trace(" {\"a\": [1, \"two\", true, false, null, {}, []],"
                 " \"b\": {\"c\": {\"d\": -2}}}\r\n\t",
                 "{ a: [ 1 \"two\" true false null { } [ ] ] b: { c: { d: -2 } } } ");
    expect_trace("\"top\"", "\"top\" ");
    expect_trace("0", "0 ");
    expect_trace("{\"\":\"\"}", "{ : \"\" } ");
}

static void test_lh_json_parse_passes_plain_strings_from_the_input(void **state)
{
    struct trace t = {0};
    const char *json = "[\"plain\", \"caf\xc3\xa9\", \"esc\\n\"]";
    (void)state;

    lh_json_buf_init(&t.out, 1024);
    assert_int_equal(parse_exact(json, strlen(json), &t, NULL, NULL, 0), LH_OK);
    assert_int_equal(t.strings_in_input, 2);
    expect_text(&t.out, "[ \"plain\" \"caf\xc3\xa9\" \"esc\n\" ] ");
    lh_json_buf_free(&t.out);
}

static void test_lh_json_parse_decodes_escapes_to_utf8(void **state)
{
    (void)state;
    expect_trace("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", "\"\"\\/\b\f\n\r\t\" ");
    /* U+00E9, U+20AC, then U+1F600 as a surrogate pair, in both cases of hex. */
    expect_trace("\"a\\u00e9b\\u20ACc\\uD83D\\ude00d\"",
                 "\"a\xc3\xa9"
                 "b\xe2\x82\xac"
                 "c\xf0\x9f\x98\x80"
                 "d\" ");
    /* The highest code point, U+10FFFF. */
    expect_trace("\"\\udbff\\udfff\"", "\"\xf4\x8f\xbf\xbf\" ");
    expect_trace("{\"k\\u0041\": \"\\u0041\"}", "{ kA: \"A\" } ");
}

static void test_lh_json_parse_decodes_u0000_as_a_nul_byte(void **state)
{
    struct trace t = {0};
    const char *json = "\"a\\u0000b\"";
    (void)state;

    lh_json_buf_init(&t.out, 1024);
    assert_int_equal(parse_exact(json, strlen(json), &t, NULL, NULL, 0), LH_OK);
    assert_int_equal(t.out.len, 6);
    assert_memory_equal(t.out.data, "\"a\0b\" ", 6);
    lh_json_buf_free(&t.out);
}

static void test_lh_json_parse_reads_numbers_as_doubles(void **state)
{
    (void)state;
    /* 2^53 + 1 has no double: it rounds to 2^53. 1e-400 underflows to 0. */
    expect_trace("[9007199254740993, -7, -0.5e-3, 1E+2, 2.5e2, 0.1, -0, 1e-400]",
                 "[ 9007199254740992 -7 -0.00050000000000000001 100 250 0.10000000000000001"
                 " -0 0 ] ");
}

static void test_lh_json_parse_reads_numbers_longer_than_its_local_copy(void **state)
{
    char json[247];
    struct trace t = {0};
    struct lh_json_buf scratch;
    (void)state;

    /* [0.000...0001,999...999]: 200 zeros, then 40 nines. */
    memcpy(json, "[0.", 3);
    memset(json + 3, '0', 200);
    memcpy(json + 203, "1,", 2);
    memset(json + 205, '9', 40);
    memcpy(json + 245, "]", 1);
    lh_json_buf_init(&t.out, 1024);
    lh_json_buf_init(&scratch, 1024);
    assert_int_equal(parse_exact(json, 246, &t, NULL, NULL, 0), LH_OK);
    assert_int_equal(parse_exact(json, 246, &t, &scratch, NULL, 0), LH_OK);
    /* 1e-201 and 1e+40, as %.17g prints them. */
    expect_text(&t.out, "[ 9.9999999999999995e-202 1e+40 ] [ 9.9999999999999995e-202 1e+40 ] ");
    lh_json_buf_free(&scratch);
    lh_json_buf_free(&t.out);
}

static void test_lh_json_parse_refuses_what_rfc8259_refuses(void **state)
{
    static const struct {
        const char *json, *err;
    } cases[] = {
        /* structure */
        {"", "json: unexpected end of input at byte 0"},
        {"  ", "json: unexpected end of input at byte 2"},
        {"[1,]", "json: unexpected character ']' at byte 3"},
        {"{\"a\":1,}", "json: unexpected character '}' at byte 7"},
        {"[1,,2]", "json: unexpected character ',' at byte 3"},
        {"[,1]", "json: unexpected character ',' at byte 1"},
        {"[1 2]", "json: unexpected character '2' at byte 3"},
        {"[1}", "json: unexpected character '}' at byte 2"},
        {"{\"a\" 1}", "json: unexpected character '1' at byte 5"},
        {"{\"a\"}", "json: unexpected character '}' at byte 4"},
        {"{1:2}", "json: unexpected character '1' at byte 1"},
        {"{'a':1}", "json: unexpected character ''' at byte 1"},
        {"[1,", "json: unexpected end of input at byte 3"},
        {"{\"a\":", "json: unexpected end of input at byte 5"},
        /* comments and trailing garbage */
        {"[1] // c", "json: unexpected character '/' at byte 4"},
        {"/* c */ 1", "json: unexpected character '/' at byte 0"},
        {"1 2", "json: unexpected character '2' at byte 2"},
        {"{} x", "json: unexpected character 'x' at byte 3"},
        {"\xef\xbb\xbf" "1", "json: unexpected byte 0xef at byte 0"},
        /* literals */
        {"tru", "json: unexpected end of input at byte 3"},
        {"trUe", "json: unexpected character 'U' at byte 2"},
        {"nul1", "json: unexpected character '1' at byte 3"},
        {"True", "json: unexpected character 'T' at byte 0"},
        {"NaN", "json: unexpected character 'N' at byte 0"},
        {"[Infinity]", "json: unexpected character 'I' at byte 1"},
        {"-Infinity", "json: unexpected character 'I' at byte 1"},
        /* numbers */
        {"01", "json: leading zero in number at byte 0"},
        {"[-012]", "json: leading zero in number at byte 1"},
        {"-", "json: unexpected end of input at byte 1"},
        {"+1", "json: unexpected character '+' at byte 0"},
        {".5", "json: unexpected character '.' at byte 0"},
        {"1.", "json: unexpected end of input at byte 2"},
        {"1.e5", "json: unexpected character 'e' at byte 2"},
        {"1e", "json: unexpected end of input at byte 2"},
        {"1e+", "json: unexpected end of input at byte 3"},
        {"0x10", "json: unexpected character 'x' at byte 1"},
        {"[1e999]", "json: number out of range at byte 1"},
        {"-1e999", "json: number out of range at byte 0"},
        /* strings */
        {"\"abc", "json: unexpected end of input at byte 4"},
        {"\"a\nb\"", "json: raw control character 0x0a in string at byte 2"},
        {"[\"\t\"]", "json: raw control character 0x09 in string at byte 2"},
        {"\"\\x\"", "json: invalid escape at byte 1"},
        {"\"\\'\"", "json: invalid escape at byte 1"},
        {"\"\\", "json: unexpected end of input at byte 2"},
        {"\"\\u12g4\"", "json: invalid \\u escape at byte 1"},
        {"\"\\u12\"", "json: invalid \\u escape at byte 1"},
        {"\"\\ud800\"", "json: lone surrogate \\ud800 at byte 1"},
        {"\"ab\\udc00\"", "json: lone surrogate \\udc00 at byte 3"},
        {"\"\\ud800\\u0041\"", "json: lone surrogate \\ud800 at byte 1"},
        {"\"\\ud800\\ud800\"", "json: lone surrogate \\ud800 at byte 1"},
        {"\"\\ud800x\"", "json: lone surrogate \\ud800 at byte 1"},
    };
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect_error(cases[i].json, strlen(cases[i].json), cases[i].err);
    /* A NUL byte is a control character too. */
    expect_error("\"a\0\"", 4, "json: raw control character 0x00 in string at byte 2");
    expect_error("1\0", 2, "json: unexpected byte 0x00 at byte 1");
}

static void test_lh_json_parse_reads_only_len_bytes(void **state)
{
    struct trace t = {0};
    const char *json = "[12,\"ab\"]345";
    (void)state;

    lh_json_buf_init(&t.out, 1024);
    assert_int_equal(parse_exact(json, 9, &t, NULL, NULL, 0), LH_OK);
    assert_int_equal(parse_exact(json + 1, 2, &t, NULL, NULL, 0), LH_OK);
    expect_text(&t.out, "[ 12 \"ab\" ] 12 ");
    lh_json_buf_free(&t.out);
    /* Cut inside an exponent, a literal, a string, an escape and a pair. */
    expect_error("1e5", 2, "json: unexpected end of input at byte 2");
    expect_error("true", 3, "json: unexpected end of input at byte 3");
    expect_error("\"ab\"", 3, "json: unexpected end of input at byte 3");
    expect_error("\"\\u0041\"", 6, "json: invalid \\u escape at byte 1");
    expect_error("\"\\ud83d\\ude00\"", 12, "json: lone surrogate \\ud83d at byte 1");
}

static void test_lh_json_parse_nests_max_depth_but_no_deeper(void **state)
{
    enum { N = LH_JSON_MAX_DEPTH };
    static char arrays[2 * (N + 1)], objects[6 * (N + 1) + 1];
    const struct lh_json_visitor none = {0};
    (void)state;

    memset(arrays, '[', N);
    memset(arrays + N, ']', N);
    assert_int_equal(lh_json_parse(arrays, 2 * N, &none, NULL, NULL, NULL, 0), LH_OK);
    memset(arrays, '[', N + 1);
    memset(arrays + N + 1, ']', N + 1);
    expect_error(arrays, sizeof(arrays), "json: nested deeper than 1000 at byte 1000");

    /* {"k":{"k":...1...}}: each level opens with 5 bytes. */
    for (int i = 0; i <= N; i++) {
        memcpy(objects + 5 * i, "{\"k\":", 5);
        objects[5 * (N + 1) + 1 + i] = '}';
    }
    objects[5 * (N + 1)] = '1';
    assert_int_equal(lh_json_parse(objects + 5, 6 * N + 1, &none, NULL, NULL, NULL, 0), LH_OK);
    expect_error(objects, sizeof(objects), "json: nested deeper than 1000 at byte 5000");
}

static void test_lh_json_parse_stops_when_a_callback_says_so(void **state)
{
    struct trace t = {0};
    char err[128];
    const char *json = "[1, [2, 3], 4]";
    (void)state;

    lh_json_buf_init(&t.out, 1024);
    t.stop_after = 3;
    assert_int_equal(parse_exact(json, strlen(json), &t, NULL, err, sizeof(err)), LH_ERR_INVALID);
    assert_string_equal(err, "json: stopped by a callback at byte 4");
    expect_text(&t.out, "[ 1 [ ");
    lh_json_buf_free(&t.out);
}

static void test_lh_json_parse_reuses_a_scratch_buffer_up_to_its_cap(void **state)
{
    struct trace t = {0};
    struct lh_json_buf scratch;
    char err[128];
    const char *fits = "[\"\\tabc\", \"d\\te\"]", *too_long = "\"\\tabcdefgh\"";
    (void)state;

    lh_json_buf_init(&t.out, 1024);
    lh_json_buf_init(&scratch, 8);
    assert_int_equal(parse_exact(fits, strlen(fits), &t, &scratch, err, sizeof(err)), LH_OK);
    expect_text(&t.out, "[ \"\tabc\" \"d\te\" ] ");
    assert_int_equal(parse_exact(too_long, strlen(too_long), &t, &scratch, err, sizeof(err)),
                     LH_ERR_NOMEM);
    assert_string_equal(err, "json: out of memory at byte 11");
    lh_json_buf_free(&scratch);
    lh_json_buf_free(&t.out);
}

static void test_lh_json_parse_truncates_the_error_to_errlen(void **state)
{
    char err[12];
    const struct lh_json_visitor none = {0};
    (void)state;

    assert_int_equal(lh_json_parse("[1,]", 4, &none, NULL, NULL, err, sizeof(err)),
                     LH_ERR_INVALID);
    assert_string_equal(err, "json: unexp");
    assert_int_equal(lh_json_parse("[1,]", 4, &none, NULL, NULL, NULL, 0), LH_ERR_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lh_json_string_escapes_quotes_backslashes_and_controls),
        cmocka_unit_test(test_lh_json_string_keeps_nul_bytes_escaped),
        cmocka_unit_test(test_lh_json_string_escapes_runs_and_every_control_byte),
        cmocka_unit_test(test_lh_json_string_fits_a_buffer_of_its_own_size),
        cmocka_unit_test(test_lh_json_number_prints_integers_exactly),
        cmocka_unit_test(test_lh_json_number_prints_the_shortest_exact_fraction),
        cmocka_unit_test(test_lh_json_number_refuses_nan_and_infinity),
        cmocka_unit_test(test_lh_json_buf_stops_at_its_cap),
        cmocka_unit_test(test_lh_json_parse_reports_nested_values_in_order),
        cmocka_unit_test(test_lh_json_parse_passes_plain_strings_from_the_input),
        cmocka_unit_test(test_lh_json_parse_decodes_escapes_to_utf8),
        cmocka_unit_test(test_lh_json_parse_decodes_u0000_as_a_nul_byte),
        cmocka_unit_test(test_lh_json_parse_reads_numbers_as_doubles),
        cmocka_unit_test(test_lh_json_parse_reads_numbers_longer_than_its_local_copy),
        cmocka_unit_test(test_lh_json_parse_refuses_what_rfc8259_refuses),
        cmocka_unit_test(test_lh_json_parse_reads_only_len_bytes),
        cmocka_unit_test(test_lh_json_parse_nests_max_depth_but_no_deeper),
        cmocka_unit_test(test_lh_json_parse_stops_when_a_callback_says_so),
        cmocka_unit_test(test_lh_json_parse_reuses_a_scratch_buffer_up_to_its_cap),
        cmocka_unit_test(test_lh_json_parse_truncates_the_error_to_errlen),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
