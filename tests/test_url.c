/* tests/test_url.c: cmocka tests for include/luahost/url.h. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "luahost/url.h"

/* -- Helpers ----------------------------------------------------------------- */

static void parse_ok(const char *s, struct lh_url *u)
{
    const char *err = NULL;
    enum lh_status st = lh_url_parse(s, u, &err);
    if (st != LH_OK)
        fail_msg("lh_url_parse(\"%s\"): %s (%s)", s, lh_status_str(st), err ? err : "no message");
}

/* Asserts that s is refused with LH_ERR_INVALID and a message. */
static void parse_invalid(const char *s)
{
    struct lh_url u;
    const char *err = NULL;
    enum lh_status st = lh_url_parse(s, &u, &err);
    if (st != LH_ERR_INVALID)
        fail_msg("lh_url_parse(\"%s\"): expected LH_ERR_INVALID, got %s (host '%s', port %d)",
                 s, lh_status_str(st), u.host, u.port);
    if (err == NULL || err[0] == '\0')
        fail_msg("lh_url_parse(\"%s\"): no error message", s);
}

/* -- Tests ------------------------------------------------------------------- */

static void test_lh_url_parse_mysql_full(void **state)
{
    struct lh_url u;
    (void)state;

    parse_ok("mysql://user:pa%40ss@127.0.0.1:13306/appdb", &u);
    assert_string_equal(u.scheme, "mysql");
    assert_string_equal(u.user, "user");
    assert_string_equal(u.password, "pa@ss");
    assert_string_equal(u.host, "127.0.0.1");
    assert_int_equal(u.port, 13306);
    assert_string_equal(u.path, "appdb");
}

static void test_lh_url_parse_decodes_every_part(void **state)
{
    struct lh_url u;
    (void)state;

    parse_ok("mysql://us%65r%2Fx:p%3Aw%2fd@db.example.com:3306/app%20db", &u);
    assert_string_equal(u.user, "user/x");
    assert_string_equal(u.password, "p:w/d");
    assert_string_equal(u.host, "db.example.com");
    assert_int_equal(u.port, 3306);
    assert_string_equal(u.path, "app db");
}

static void test_lh_url_parse_raw_at_in_password(void **state)
{
    struct lh_url u;
    (void)state;

    /* The last '@' ends the userinfo. */
    parse_ok("mysql://root:p@ss@w0rd@localhost:3306/db", &u);
    assert_string_equal(u.user, "root");
    assert_string_equal(u.password, "p@ss@w0rd");
    assert_string_equal(u.host, "localhost");
    assert_int_equal(u.port, 3306);
    assert_string_equal(u.path, "db");
}

static void test_lh_url_parse_colon_in_password(void **state)
{
    struct lh_url u;
    (void)state;

    /* The first ':' of the userinfo separates user from password. */
    parse_ok("mysql://root:a:b@h/db", &u);
    assert_string_equal(u.user, "root");
    assert_string_equal(u.password, "a:b");
    assert_string_equal(u.host, "h");
}

static void test_lh_url_parse_at_in_path_is_not_userinfo(void **state)
{
    struct lh_url u;
    (void)state;

    parse_ok("mysql://host:3306/db@x", &u);
    assert_string_equal(u.user, "");
    assert_string_equal(u.password, "");
    assert_string_equal(u.host, "host");
    assert_int_equal(u.port, 3306);
    assert_string_equal(u.path, "db@x");
}

static void test_lh_url_parse_user_without_password(void **state)
{
    struct lh_url u;
    (void)state;

    parse_ok("mysql://app@10.0.0.5/db", &u);
    assert_string_equal(u.user, "app");
    assert_string_equal(u.password, "");
    assert_string_equal(u.host, "10.0.0.5");
    assert_int_equal(u.port, 0);
}

static void test_lh_url_parse_redis_db(void **state)
{
    struct lh_url u;
    (void)state;

    parse_ok("redis://127.0.0.1:16379/0", &u);
    assert_string_equal(u.scheme, "redis");
    assert_string_equal(u.user, "");
    assert_string_equal(u.password, "");
    assert_string_equal(u.host, "127.0.0.1");
    assert_int_equal(u.port, 16379);
    assert_string_equal(u.path, "0");
}

static void test_lh_url_parse_redis_password_only(void **state)
{
    struct lh_url u;
    (void)state;

    parse_ok("redis://:s3cret@cache:6379/2", &u);
    assert_string_equal(u.user, "");
    assert_string_equal(u.password, "s3cret");
    assert_string_equal(u.host, "cache");
    assert_int_equal(u.port, 6379);
    assert_string_equal(u.path, "2");
}

static void test_lh_url_parse_ipv6_with_port(void **state)
{
    struct lh_url u;
    (void)state;

    parse_ok("redis://[::1]:6379", &u);
    assert_string_equal(u.host, "::1");
    assert_int_equal(u.port, 6379);
    assert_string_equal(u.path, "");

    parse_ok("mysql://u:p@[2001:db8::7]:3306/app", &u);
    assert_string_equal(u.user, "u");
    assert_string_equal(u.password, "p");
    assert_string_equal(u.host, "2001:db8::7");
    assert_int_equal(u.port, 3306);
    assert_string_equal(u.path, "app");
}

static void test_lh_url_parse_ipv6_without_port(void **state)
{
    struct lh_url u;
    (void)state;

    parse_ok("redis://[fe80::1]/3", &u);
    assert_string_equal(u.host, "fe80::1");
    assert_int_equal(u.port, 0);
    assert_string_equal(u.path, "3");
}

static void test_lh_url_parse_no_port_is_zero(void **state)
{
    struct lh_url u;
    (void)state;

    parse_ok("mysql://localhost/app", &u);
    assert_string_equal(u.host, "localhost");
    assert_int_equal(u.port, 0);
    assert_string_equal(u.path, "app");

    parse_ok("redis://localhost", &u);
    assert_string_equal(u.host, "localhost");
    assert_int_equal(u.port, 0);
    assert_string_equal(u.path, "");
}

static void test_lh_url_parse_port_bounds(void **state)
{
    struct lh_url u;
    (void)state;

    parse_ok("redis://h:1", &u);
    assert_int_equal(u.port, 1);
    parse_ok("redis://h:65535/0", &u);
    assert_int_equal(u.port, 65535);
}

static void test_lh_url_parse_clears_previous_result(void **state)
{
    struct lh_url u;
    (void)state;

    parse_ok("mysql://user:pw@host:1234/db", &u);
    parse_ok("redis://other", &u);
    assert_string_equal(u.user, "");
    assert_string_equal(u.password, "");
    assert_string_equal(u.host, "other");
    assert_int_equal(u.port, 0);
    assert_string_equal(u.path, "");
}

static void test_lh_url_parse_missing_scheme_invalid(void **state)
{
    (void)state;
    parse_invalid("127.0.0.1:6379");
    parse_invalid("localhost");
    parse_invalid("");
    parse_invalid("://host:6379");
    parse_invalid("mysql:/host/db");
    parse_invalid("mysql:host/db");
    parse_invalid("averyveryverylongscheme://host"); /* longer than the scheme field */
    parse_invalid("My SQL://host");
}

static void test_lh_url_parse_missing_host_invalid(void **state)
{
    (void)state;
    parse_invalid("mysql://");
    parse_invalid("mysql:///db");
    parse_invalid("mysql://user:pw@/db");
    parse_invalid("mysql://:3306/db");
    parse_invalid("redis://[]:6379");
    parse_invalid("redis://[::1:6379");  /* unclosed bracket */
    parse_invalid("redis://[::1]6379");  /* junk after the bracket */
}

static void test_lh_url_parse_bad_port_invalid(void **state)
{
    (void)state;
    parse_invalid("redis://h:0");
    parse_invalid("redis://h:65536");
    parse_invalid("redis://h:99999999999");
    parse_invalid("redis://h:abc");
    parse_invalid("redis://h:80x");
    parse_invalid("redis://h:");
    parse_invalid("redis://h:/0");
    parse_invalid("redis://h:-1");
    parse_invalid("redis://h:+80");
    parse_invalid("redis://[::1]:");
    parse_invalid("redis://[::1]:0");
}

static void test_lh_url_parse_port_with_space_invalid(void **state)
{
    (void)state;
    /* '+' and '-' are refused; a leading blank is no more a digit. */
    parse_invalid("redis://h: 80/0");
}

static void test_lh_url_parse_bad_percent_escape_invalid(void **state)
{
    (void)state;
    parse_invalid("mysql://user:pa%zzss@h/db");
    parse_invalid("mysql://user:pa%4@h/db");
    parse_invalid("mysql://user:pass%@h/db");
    parse_invalid("mysql://us%g1er:p@h/db");
    parse_invalid("mysql://h/db%");
    parse_invalid("mysql://h/db%2");
    parse_invalid("mysql://h/db%%20");
}

static void test_lh_url_parse_percent_nul_refused(void **state)
{
    (void)state;
    parse_invalid("mysql://user:pa%00ss@h/db");
    parse_invalid("mysql://us%00er:pass@h/db");
    parse_invalid("mysql://h/db%00");
}

static void test_lh_url_parse_query_and_fragment_refused(void **state)
{
    struct lh_url u;
    const char *err = NULL;
    (void)state;

    /* They would otherwise become part of the database name or the host. */
    parse_invalid("mysql://u:p@h:3306/luahost?ssl=1");
    parse_invalid("mysql://u:p@h/db#x");
    parse_invalid("redis://h:6379/0?timeout=1");
    parse_invalid("redis://h?db=1");
    lh_url_parse("mysql://u:p@h/db?ssl=1", &u, &err);
    assert_non_null(strstr(err, "query strings"));
    /* Raw in the password, and percent-encoded in the path, they are text. */
    parse_ok("redis://:p?w#d@h:6379/0", &u);
    assert_string_equal(u.password, "p?w#d");
    assert_string_equal(u.host, "h");
    parse_ok("mysql://u:p@h/a%3Fb", &u);
    assert_string_equal(u.path, "a?b");
}

static void test_lh_url_parse_too_long_part_invalid(void **state)
{
    char filler[LH_URL_PART_MAX + 1];
    char url[6 * LH_URL_PART_MAX];
    struct lh_url u;
    (void)state;

    /* LH_URL_PART_MAX - 1 characters fit (with the NUL). */
    memset(filler, 'a', LH_URL_PART_MAX - 1);
    filler[LH_URL_PART_MAX - 1] = '\0';
    snprintf(url, sizeof(url), "mysql://%s:%s@%s:1/%s", filler, filler, filler, filler);
    parse_ok(url, &u);
    assert_int_equal(strlen(u.user), LH_URL_PART_MAX - 1);
    assert_int_equal(strlen(u.password), LH_URL_PART_MAX - 1);
    assert_int_equal(strlen(u.host), LH_URL_PART_MAX - 1);
    assert_int_equal(strlen(u.path), LH_URL_PART_MAX - 1);
    assert_int_equal(u.port, 1);

    /* One more is too long, whichever part it is. */
    memset(filler, 'a', LH_URL_PART_MAX);
    filler[LH_URL_PART_MAX] = '\0';
    snprintf(url, sizeof(url), "mysql://%s:p@h/db", filler);
    parse_invalid(url);
    snprintf(url, sizeof(url), "mysql://u:%s@h/db", filler);
    parse_invalid(url);
    snprintf(url, sizeof(url), "mysql://u:p@%s/db", filler);
    parse_invalid(url);
    snprintf(url, sizeof(url), "mysql://u:p@[%s]:1/db", filler);
    parse_invalid(url);
    snprintf(url, sizeof(url), "mysql://u:p@h/%s", filler);
    parse_invalid(url);
}

static void test_lh_url_parse_decoded_length_counts(void **state)
{
    char url[4 * LH_URL_PART_MAX + 64];
    struct lh_url u;
    size_t n;
    (void)state;

    /* 255 escapes decode to 255 bytes: they fit although the text is longer. */
    n = (size_t)snprintf(url, sizeof(url), "mysql://u:");
    for (int i = 0; i < LH_URL_PART_MAX - 1; i++)
        n += (size_t)snprintf(url + n, sizeof(url) - n, "%%41");
    snprintf(url + n, sizeof(url) - n, "@h/db");
    parse_ok(url, &u);
    assert_int_equal(strlen(u.password), LH_URL_PART_MAX - 1);
    assert_int_equal(u.password[0], 'A');
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lh_url_parse_mysql_full),
        cmocka_unit_test(test_lh_url_parse_decodes_every_part),
        cmocka_unit_test(test_lh_url_parse_raw_at_in_password),
        cmocka_unit_test(test_lh_url_parse_colon_in_password),
        cmocka_unit_test(test_lh_url_parse_at_in_path_is_not_userinfo),
        cmocka_unit_test(test_lh_url_parse_user_without_password),
        cmocka_unit_test(test_lh_url_parse_redis_db),
        cmocka_unit_test(test_lh_url_parse_redis_password_only),
        cmocka_unit_test(test_lh_url_parse_ipv6_with_port),
        cmocka_unit_test(test_lh_url_parse_ipv6_without_port),
        cmocka_unit_test(test_lh_url_parse_no_port_is_zero),
        cmocka_unit_test(test_lh_url_parse_port_bounds),
        cmocka_unit_test(test_lh_url_parse_clears_previous_result),
        cmocka_unit_test(test_lh_url_parse_missing_scheme_invalid),
        cmocka_unit_test(test_lh_url_parse_missing_host_invalid),
        cmocka_unit_test(test_lh_url_parse_bad_port_invalid),
        cmocka_unit_test(test_lh_url_parse_port_with_space_invalid),
        cmocka_unit_test(test_lh_url_parse_bad_percent_escape_invalid),
        cmocka_unit_test(test_lh_url_parse_percent_nul_refused),
        cmocka_unit_test(test_lh_url_parse_query_and_fragment_refused),
        cmocka_unit_test(test_lh_url_parse_too_long_part_invalid),
        cmocka_unit_test(test_lh_url_parse_decoded_length_counts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
