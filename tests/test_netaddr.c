/* tests/test_netaddr.c: cmocka tests for include/luahost/netaddr.h. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "luahost/netaddr.h"

/* -- Helpers ----------------------------------------------------------------- */

/* A set of the list, which must be accepted. */
static struct lh_cidr_set *set_of(const char *list)
{
    char err[128] = "";
    struct lh_cidr_set *s = lh_cidr_set_new();
    assert_non_null(s);
    enum lh_status st = lh_cidr_set_add_list(s, list, err, sizeof(err));
    if (st != LH_OK)
        fail_msg("lh_cidr_set_add_list(\"%s\") failed: %s (%s)", list, lh_status_str(st), err);
    return s;
}

static void expect_in(const struct lh_cidr_set *s, const char *ip)
{
    if (!lh_cidr_set_contains(s, ip))
        fail_msg("expected %s in the set", ip);
}

static void expect_out(const struct lh_cidr_set *s, const char *ip)
{
    if (lh_cidr_set_contains(s, ip))
        fail_msg("expected %s not in the set", ip);
}

static void expect_rejected(const char *cidr)
{
    struct lh_cidr_set *s = lh_cidr_set_new();
    const char *err = NULL;
    assert_non_null(s);
    if (lh_cidr_set_add(s, cidr, &err) != LH_ERR_INVALID)
        fail_msg("expected \"%s\" to be rejected", cidr);
    assert_non_null(err);
    assert_int_equal(lh_cidr_set_count(s), 0);
    lh_cidr_set_free(s);
}

/* Asserts lh_client_ip(trusted, peer, xff, fwd) == expected. */
static void expect_client(const struct lh_cidr_set *trusted, const char *peer, const char *xff,
                          const char *fwd, const char *expected)
{
    char out[LH_IP_MAX];
    memset(out, 'Z', sizeof(out));
    enum lh_status st = lh_client_ip(trusted, peer, xff, fwd, out);
    if (st != LH_OK)
        fail_msg("lh_client_ip(%s, %s, %s) failed: %s", peer, xff ? xff : "NULL",
                 fwd ? fwd : "NULL", lh_status_str(st));
    if (strcmp(out, expected) != 0)
        fail_msg("lh_client_ip(peer %s, xff %s, forwarded %s): expected %s, got %s", peer,
                 xff ? xff : "NULL", fwd ? fwd : "NULL", expected, out);
}

static int setup_proxies(void **state)
{
    *state = set_of("127.0.0.1, 10.0.0.0/8");
    return 0;
}

static int teardown_set(void **state)
{
    lh_cidr_set_free(*state);
    return 0;
}

/* -- Sets ---------------------------------------------------------------------- */

static void test_lh_cidr_set_new_is_empty(void **state)
{
    (void)state;
    struct lh_cidr_set *s = lh_cidr_set_new();
    assert_non_null(s);
    assert_int_equal(lh_cidr_set_count(s), 0);
    expect_out(s, "127.0.0.1");
    expect_out(s, "::1");
    lh_cidr_set_free(s);
}

static void test_lh_cidr_set_free_null_is_noop(void **state)
{
    (void)state;
    lh_cidr_set_free(NULL);
    assert_int_equal(lh_cidr_set_count(NULL), 0);
    assert_false(lh_cidr_set_contains(NULL, "1.2.3.4"));
}

static void test_lh_cidr_set_add_v4_prefix(void **state)
{
    (void)state;
    struct lh_cidr_set *s = set_of("10.0.0.0/8");
    expect_in(s, "10.0.0.0");
    expect_in(s, "10.255.1.2");
    expect_out(s, "11.0.0.1");
    expect_out(s, "9.255.255.255");
    lh_cidr_set_free(s);
}

static void test_lh_cidr_set_add_bare_v4_is_one_host(void **state)
{
    (void)state;
    struct lh_cidr_set *s = set_of("127.0.0.1");
    const char *err = NULL;

    expect_in(s, "127.0.0.1");
    expect_out(s, "127.0.0.2");
    assert_int_equal(lh_cidr_set_add(s, "192.0.2.1/32", &err), LH_OK);
    expect_in(s, "192.0.2.1");
    expect_out(s, "192.0.2.0");
    assert_int_equal(lh_cidr_set_count(s), 2);
    lh_cidr_set_free(s);
}

static void test_lh_cidr_set_add_odd_prefixes(void **state)
{
    (void)state;
    struct lh_cidr_set *s = set_of("192.168.1.128/25 172.16.0.0/12 198.51.100.6/31");
    expect_in(s, "192.168.1.200");
    expect_out(s, "192.168.1.127");
    expect_in(s, "172.31.255.255");
    expect_out(s, "172.32.0.0");
    expect_in(s, "198.51.100.6");
    expect_in(s, "198.51.100.7");
    expect_out(s, "198.51.100.8");
    lh_cidr_set_free(s);
}

static void test_lh_cidr_set_add_clears_host_bits(void **state)
{
    (void)state;
    struct lh_cidr_set *s = set_of("10.1.2.3/8, 2001:db8::1/32");
    expect_in(s, "10.9.9.9");
    expect_in(s, "2001:db8:ffff::1");
    lh_cidr_set_free(s);
}

static void test_lh_cidr_set_add_v6_prefix(void **state)
{
    (void)state;
    struct lh_cidr_set *s = set_of("2001:db8::/32");
    expect_in(s, "2001:db8::1");
    expect_in(s, "2001:DB8:1:2:3:4:5:6");
    expect_out(s, "2001:db9::1");
    expect_out(s, "::1");
    expect_out(s, "32.1.13.184"); /* the same first bytes, but IPv4 */
    lh_cidr_set_free(s);
}

static void test_lh_cidr_set_add_bare_v6_is_one_host(void **state)
{
    (void)state;
    struct lh_cidr_set *s = set_of("::1");
    expect_in(s, "::1");
    expect_in(s, "0:0:0:0:0:0:0:1");
    expect_out(s, "::2");
    expect_out(s, "127.0.0.1");
    lh_cidr_set_free(s);
}

static void test_lh_cidr_set_add_zero_prefix_matches_its_family(void **state)
{
    (void)state;
    struct lh_cidr_set *v4 = set_of("0.0.0.0/0");
    struct lh_cidr_set *v6 = set_of("::/0");

    expect_in(v4, "8.8.8.8");
    expect_in(v4, "::ffff:8.8.8.8");
    expect_out(v4, "::1");
    expect_in(v6, "::1");
    expect_in(v6, "2001:db8::1");
    expect_out(v6, "8.8.8.8");
    lh_cidr_set_free(v4);
    lh_cidr_set_free(v6);
}

static void test_lh_cidr_set_add_rejects_junk(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "junk",
        "1.2.3.4/33",
        "/8",
        "1.2.3.4/",
        "1.2.3.4/-1",
        "1.2.3.4/08x",
        "1.2.3.4/08",
        "1.2.3.4/+8",
        "1.2.3.4/ 8",
        "::1/129",
        "::1/1000",
        "1.2.3",
        "1.2.3.4.5",
        "256.1.1.1",
        "1.2.3.4 ",
        "fe80::1%eth0",
        "1.2.3.4/8/9",
        "[::1]",
        "1.2.3.4:80",
        "::ffff:1.2.3.4/129",
        "1.2.3.4/4294967304",
        "2001:db8::/",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_rejected(bad[i]);
}

static void test_lh_cidr_set_add_error_says_why(void **state)
{
    (void)state;
    struct lh_cidr_set *s = lh_cidr_set_new();
    const char *err = NULL;

    assert_int_equal(lh_cidr_set_add(s, "1.2.3.4/33", &err), LH_ERR_INVALID);
    assert_non_null(strstr(err, "prefix"));
    assert_int_equal(lh_cidr_set_add(s, "nope/8", &err), LH_ERR_INVALID);
    assert_non_null(strstr(err, "address"));
    assert_int_equal(lh_cidr_set_add(s, NULL, &err), LH_ERR_INVALID);
    assert_int_equal(lh_cidr_set_add(NULL, "1.2.3.4", &err), LH_ERR_INVALID);
    lh_cidr_set_free(s);
}

static void test_lh_cidr_set_add_v4_mapped_entry_is_v4(void **state)
{
    (void)state;
    struct lh_cidr_set *s = set_of("::ffff:10.0.0.0/104, ::ffff:192.0.2.1");
    expect_in(s, "10.1.2.3");
    expect_in(s, "::ffff:10.1.2.3");
    expect_out(s, "11.1.2.3");
    expect_in(s, "192.0.2.1");
    expect_out(s, "192.0.2.2");
    lh_cidr_set_free(s);
}

static void test_lh_cidr_set_contains_v4_mapped_lookup(void **state)
{
    (void)state;
    struct lh_cidr_set *s = set_of("10.0.0.0/8");
    expect_in(s, "::ffff:10.1.2.3");
    expect_in(s, "::FFFF:10.1.2.3");
    expect_out(s, "::ffff:11.1.2.3");
    expect_out(s, "::10.1.2.3"); /* IPv4-compatible (deprecated) is IPv6 */
    lh_cidr_set_free(s);
}

static void test_lh_cidr_set_contains_rejects_non_addresses(void **state)
{
    (void)state;
    struct lh_cidr_set *s = set_of("0.0.0.0/0, ::/0");
    expect_out(s, "junk");
    expect_out(s, "");
    expect_out(s, "10.0.0.1/8");
    expect_out(s, "10.0.0.1:80");
    expect_out(s, "[::1]");
    assert_false(lh_cidr_set_contains(s, NULL));
    lh_cidr_set_free(s);
}

static void test_lh_cidr_set_add_list_splits_on_commas_and_blanks(void **state)
{
    (void)state;
    struct lh_cidr_set *s = set_of(" 127.0.0.1, 10.0.0.0/8 ::1\t2001:db8::/32,,\n ");
    assert_int_equal(lh_cidr_set_count(s), 4);
    expect_in(s, "127.0.0.1");
    expect_in(s, "10.2.3.4");
    expect_in(s, "::1");
    expect_in(s, "2001:db8::7");
    lh_cidr_set_free(s);
}

static void test_lh_cidr_set_add_list_empty_adds_nothing(void **state)
{
    (void)state;
    struct lh_cidr_set *s = set_of("");
    char err[64];
    assert_int_equal(lh_cidr_set_add_list(s, " , \t,", err, sizeof(err)), LH_OK);
    assert_int_equal(lh_cidr_set_count(s), 0);
    lh_cidr_set_free(s);
}

static void test_lh_cidr_set_add_list_is_all_or_nothing(void **state)
{
    (void)state;
    struct lh_cidr_set *s = set_of("192.0.2.1");
    char err[128] = "";

    assert_int_equal(lh_cidr_set_add_list(s, "10.0.0.0/8, bogus/8, ::1", err, sizeof(err)),
                     LH_ERR_INVALID);
    assert_int_equal(lh_cidr_set_count(s), 1);
    expect_in(s, "192.0.2.1");
    expect_out(s, "10.1.1.1");
    expect_out(s, "::1");
    /* The message names the bad entry. */
    assert_non_null(strstr(err, "'bogus/8'"));
    lh_cidr_set_free(s);
}

static void test_lh_cidr_set_add_list_names_last_bad_entry(void **state)
{
    (void)state;
    struct lh_cidr_set *s = lh_cidr_set_new();
    char err[128] = "";

    assert_int_equal(lh_cidr_set_add_list(s, "10.0.0.0/8 1.2.3.4/33", err, sizeof(err)),
                     LH_ERR_INVALID);
    assert_non_null(strstr(err, "1.2.3.4/33"));
    assert_int_equal(lh_cidr_set_count(s), 0);
    assert_int_equal(lh_cidr_set_add_list(NULL, "1.2.3.4", err, sizeof(err)), LH_ERR_INVALID);
    assert_int_equal(lh_cidr_set_add_list(s, NULL, err, sizeof(err)), LH_ERR_INVALID);
    lh_cidr_set_free(s);
}

static void test_lh_cidr_set_add_list_truncates_message(void **state)
{
    (void)state;
    struct lh_cidr_set *s = lh_cidr_set_new();
    char list[600], err[16];

    memset(list, 'x', sizeof(list) - 1);
    list[sizeof(list) - 1] = '\0';
    assert_int_equal(lh_cidr_set_add_list(s, list, err, sizeof(err)), LH_ERR_INVALID);
    assert_int_equal(strlen(err), sizeof(err) - 1);
    lh_cidr_set_free(s);
}

static void test_lh_cidr_set_add_grows_past_initial_capacity(void **state)
{
    (void)state;
    struct lh_cidr_set *s = lh_cidr_set_new();
    char cidr[32];
    const char *err = NULL;

    for (int i = 0; i < 100; i++) {
        snprintf(cidr, sizeof(cidr), "10.0.%d.0/24", i);
        assert_int_equal(lh_cidr_set_add(s, cidr, &err), LH_OK);
    }
    assert_int_equal(lh_cidr_set_count(s), 100);
    expect_in(s, "10.0.99.7");
    expect_out(s, "10.0.100.7");
    lh_cidr_set_free(s);
}

/* -- lh_client_key ------------------------------------------------------------- */

static void expect_key(const char *ip, const char *expected)
{
    char out[LH_CLIENT_KEY_MAX];

    assert_int_equal(lh_client_key(ip, out), LH_OK);
    assert_string_equal(out, expected);
}

static void test_lh_client_key_counts_an_ipv6_subscriber_by_its_64(void **state)
{
    (void)state;
    expect_key("192.0.2.1", "192.0.2.1");
    expect_key("::ffff:192.0.2.1", "192.0.2.1");
    expect_key("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64");
    expect_key("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64");
    expect_key("2001:db8:1:3::1", "2001:db8:1:3::/64");
    expect_key("::1", "::/64");
    expect_key("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ffff:ffff:ffff:ffff::/64");
}

static void test_lh_client_key_refuses_non_addresses(void **state)
{
    char out[LH_CLIENT_KEY_MAX];

    (void)state;
    assert_int_equal(lh_client_key("junk", out), LH_ERR_INVALID);
    assert_string_equal(out, "junk");
    assert_int_equal(lh_client_key("", out), LH_ERR_INVALID);
    assert_int_equal(lh_client_key("2001:db8::1/64", out), LH_ERR_INVALID);
}

/* -- lh_ipv6_network ----------------------------------------------------------- */

static void expect_network(const char *ip, unsigned bits, const char *expected)
{
    char out[LH_CLIENT_KEY_MAX];

    assert_int_equal(lh_ipv6_network(ip, bits, out), LH_OK);
    assert_string_equal(out, expected);
}

static void test_lh_ipv6_network_counts_a_subscriber_by_its_allocation(void **state)
{
    (void)state;
    expect_network("2001:db8:1:2:3:4:5:6", 48, "2001:db8:1::/48");
    expect_network("2001:db8:1:ffff::1", 48, "2001:db8:1::/48");
    expect_network("2001:db8:1:2ff::1", 56, "2001:db8:1:200::/56");
    expect_network("2001:db8:1:2:3:4:5:6", 64, "2001:db8:1:2::/64");
    expect_network("2001:db8:1:2:3:4:5:6", 33, "2001:db8::/33");
    expect_network("2001:db8:1:2:3:4:5:6", 128, "2001:db8:1:2:3:4:5:6/128");
}

static void test_lh_ipv6_network_refuses_ipv4_and_bad_lengths(void **state)
{
    char out[LH_CLIENT_KEY_MAX];

    (void)state;
    assert_int_equal(lh_ipv6_network("192.0.2.1", 48, out), LH_ERR_INVALID);
    assert_string_equal(out, "");
    assert_int_equal(lh_ipv6_network("::ffff:192.0.2.1", 48, out), LH_ERR_INVALID);
    assert_int_equal(lh_ipv6_network("junk", 48, out), LH_ERR_INVALID);
    assert_int_equal(lh_ipv6_network("2001:db8::1", 0, out), LH_ERR_INVALID);
    assert_int_equal(lh_ipv6_network("2001:db8::1", 129, out), LH_ERR_INVALID);
}

/* -- lh_client_ip -------------------------------------------------------------- */

static void test_lh_client_ip_ignores_headers_from_untrusted_peer(void **state)
{
    expect_client(*state, "203.0.113.9", "1.2.3.4", NULL, "203.0.113.9");
    expect_client(*state, "203.0.113.9", NULL, "for=1.2.3.4", "203.0.113.9");
    expect_client(NULL, "127.0.0.1", "1.2.3.4", "for=1.2.3.4", "127.0.0.1");
}

static void test_lh_client_ip_takes_rightmost_untrusted(void **state)
{
    expect_client(*state, "127.0.0.1", "198.51.100.7, 10.0.0.2", NULL, "198.51.100.7");
    expect_client(*state, "127.0.0.1", "198.51.100.7", NULL, "198.51.100.7");
}

static void test_lh_client_ip_ignores_spoofed_leftmost(void **state)
{
    expect_client(*state, "127.0.0.1", "6.6.6.6, 198.51.100.7, 10.0.0.2", NULL, "198.51.100.7");
}

static void test_lh_client_ip_all_trusted_gives_leftmost(void **state)
{
    expect_client(*state, "127.0.0.1", "10.0.0.5, 10.0.0.2", NULL, "10.0.0.5");
}

static void test_lh_client_ip_stops_at_garbage(void **state)
{
    expect_client(*state, "127.0.0.1", "junk, 10.0.0.2", NULL, "10.0.0.2");
    expect_client(*state, "127.0.0.1", "10.0.0.2, junk", NULL, "127.0.0.1");
    expect_client(*state, "127.0.0.1", "1.2.3.4, unknown, 10.0.0.2", NULL, "10.0.0.2");
    expect_client(*state, "127.0.0.1", "1.2.3.4:abc, 10.0.0.2", NULL, "10.0.0.2");
    expect_client(*state, "127.0.0.1", "[1.2.3.4], 10.0.0.2", NULL, "10.0.0.2");
    expect_client(*state, "127.0.0.1", "[::1, 10.0.0.2", NULL, "10.0.0.2");
    expect_client(*state, "127.0.0.1", "[::1]x, 10.0.0.2", NULL, "10.0.0.2");
    expect_client(*state, "127.0.0.1", "1.2.3.4:, 10.0.0.2", NULL, "10.0.0.2");
}

static void test_lh_client_ip_skips_empty_list_elements(void **state)
{
    expect_client(*state, "127.0.0.1", "198.51.100.7,, 10.0.0.2, ", NULL, "198.51.100.7");
}

static void test_lh_client_ip_strips_ports_and_brackets(void **state)
{
    expect_client(*state, "127.0.0.1", "[2001:db8::5]:8080, 10.0.0.2", NULL, "2001:db8::5");
    expect_client(*state, "127.0.0.1", "[2001:db8::5]", NULL, "2001:db8::5");
    expect_client(*state, "127.0.0.1", "2001:db8::6", NULL, "2001:db8::6");
    expect_client(*state, "127.0.0.1", "198.51.100.7:5555, 10.0.0.2:443", NULL, "198.51.100.7");
}

static void test_lh_client_ip_normalizes_output(void **state)
{
    expect_client(*state, "::ffff:203.0.113.9", NULL, NULL, "203.0.113.9");
    expect_client(*state, "::ffff:127.0.0.1", "2001:DB8:0:0::1", NULL, "2001:db8::1");
    expect_client(*state, "127.0.0.1", "::ffff:198.51.100.7", NULL, "198.51.100.7");
    expect_client(NULL, "0:0:0:0:0:0:0:1", NULL, NULL, "::1");
}

static void test_lh_client_ip_trusted_peer_without_headers_is_peer(void **state)
{
    expect_client(*state, "127.0.0.1", NULL, NULL, "127.0.0.1");
    expect_client(*state, "10.0.0.3", "", "", "10.0.0.3");
}

static void test_lh_client_ip_uses_forwarded_without_xff(void **state)
{
    expect_client(*state, "127.0.0.1", NULL, "for=192.0.2.60;proto=http;by=203.0.113.43",
                  "192.0.2.60");
    /* An empty X-Forwarded-For counts as absent. */
    expect_client(*state, "127.0.0.1", " ", "for=192.0.2.60", "192.0.2.60");
}

static void test_lh_client_ip_prefers_xff_over_forwarded(void **state)
{
    expect_client(*state, "127.0.0.1", "198.51.100.7", "for=192.0.2.60", "198.51.100.7");
}

static void test_lh_client_ip_forwarded_quoted_v6_with_port(void **state)
{
    expect_client(*state, "127.0.0.1", NULL, "for=\"[2001:db8:cafe::17]:4711\"",
                  "2001:db8:cafe::17");
    expect_client(*state, "127.0.0.1", NULL, "for=\"[2001:db8:cafe::17]\"", "2001:db8:cafe::17");
    expect_client(*state, "127.0.0.1", NULL, "for=\"192.0.2.60:8080\"", "192.0.2.60");
    /* quoted-pair escapes are undone */
    expect_client(*state, "127.0.0.1", NULL, "for=\"\\[2001:db8::1\\]\"", "2001:db8::1");
}

static void test_lh_client_ip_forwarded_walks_elements_from_right(void **state)
{
    expect_client(*state, "127.0.0.1", NULL,
                  "for=6.6.6.6, for=198.51.100.7;proto=https, For=\"10.0.0.2\"", "198.51.100.7");
    expect_client(*state, "127.0.0.1", NULL, "FOR=10.0.0.5, for = 10.0.0.2", "10.0.0.5");
    expect_client(*state, "127.0.0.1", NULL, "proto=https;for=198.51.100.7;by=10.0.0.1",
                  "198.51.100.7");
}

static void test_lh_client_ip_forwarded_respects_quotes(void **state)
{
    /* The ',' and ';' inside a quoted value do not split elements or pairs. */
    expect_client(*state, "127.0.0.1", NULL,
                  "for=\"[2001:db8::1]:4711\";note=\"a,b;for=9.9.9.9\", for=10.0.0.2",
                  "2001:db8::1");
}

static void test_lh_client_ip_forwarded_stops_at_non_addresses(void **state)
{
    expect_client(*state, "127.0.0.1", NULL, "for=198.51.100.7, for=unknown", "127.0.0.1");
    expect_client(*state, "127.0.0.1", NULL, "for=_hidden, for=10.0.0.2", "10.0.0.2");
    expect_client(*state, "127.0.0.1", NULL, "for=198.51.100.7, by=10.0.0.1", "127.0.0.1");
    expect_client(*state, "127.0.0.1", NULL, "for=\"[2001:db8::1]:4711", "127.0.0.1");
    expect_client(*state, "127.0.0.1", NULL, "for=\"_gazonk\"", "127.0.0.1");
    expect_client(*state, "127.0.0.1", NULL, "junk", "127.0.0.1");
    expect_client(*state, "127.0.0.1", NULL, "for=[2001:db8::1]:_obf, for=10.0.0.2", "2001:db8::1");
}

/* Asserts lh_client_ip_lines over the given lines == expected. */
static void expect_client_lines(const struct lh_cidr_set *trusted, const char *const *lines,
                                size_t n, int forwarded_syntax, const char *expected)
{
    char out[LH_IP_MAX];
    assert_int_equal(lh_client_ip_lines(trusted, "127.0.0.1", lines, n, forwarded_syntax, out),
                     LH_OK);
    if (strcmp(out, expected) != 0)
        fail_msg("lh_client_ip_lines(%zu lines, first %s): expected %s, got %s", n, lines[0],
                 expected, out);
}

/* A proxy that appends its own line after the client's (HAProxy's
 * forwardfor): the client's line is the left of one list, not the client. */
static void test_lh_client_ip_lines_reads_the_proxys_line_last(void **state)
{
    const char *xff[] = {"127.0.0.5", "198.51.100.77"};
    expect_client_lines(*state, xff, 2, 0, "198.51.100.77");
    const char *chain[] = {"6.6.6.6, 10.0.0.9", NULL, "  ", "198.51.100.7, 10.0.0.2"};
    expect_client_lines(*state, chain, 4, 0, "198.51.100.7");
    const char *all_trusted[] = {"10.0.0.5", "10.0.0.2"};
    expect_client_lines(*state, all_trusted, 2, 0, "10.0.0.5");
    const char *fwd[] = {"for=10.0.0.1", "for=203.0.113.9"};
    expect_client_lines(*state, fwd, 2, 1, "203.0.113.9");
    const char *none[] = {NULL};
    expect_client_lines(*state, none, 0, 0, "127.0.0.1");
}

static void test_lh_client_ip_forwarded_skips_empty_elements(void **state)
{
    expect_client(*state, "127.0.0.1", NULL, "for=198.51.100.7, , for=10.0.0.2,", "198.51.100.7");
}

static void test_lh_client_ip_ipv6_trusted_peer(void **state)
{
    (void)state;
    struct lh_cidr_set *s = set_of("::1/128");
    expect_client(s, "::1", "2001:db8::9", NULL, "2001:db8::9");
    expect_client(s, "::1", "198.51.100.7, ::1", NULL, "198.51.100.7");
    expect_client(s, "::2", "198.51.100.7", NULL, "::2");
    lh_cidr_set_free(s);
}

static void test_lh_client_ip_caps_hops(void **state)
{
    char xff[1024];
    size_t len = (size_t)snprintf(xff, sizeof(xff), "198.51.100.7");

    /* 60 trusted hops: only the last 32 are walked, the leftmost of them wins. */
    for (int i = 0; i < 60; i++)
        len += (size_t)snprintf(xff + len, sizeof(xff) - len, ", 10.0.0.%d", i);
    assert_true(len < sizeof(xff));
    expect_client(*state, "127.0.0.1", xff, NULL, "10.0.0.28");
}

static void test_lh_client_ip_rejects_bad_peer(void **state)
{
    char out[LH_IP_MAX];
    assert_int_equal(lh_client_ip(*state, "junk", "1.2.3.4", NULL, out), LH_ERR_INVALID);
    assert_int_equal(lh_client_ip(*state, "127.0.0.1:80", NULL, NULL, out), LH_ERR_INVALID);
    assert_int_equal(lh_client_ip(*state, "", NULL, NULL, out), LH_ERR_INVALID);
    assert_int_equal(lh_client_ip(*state, NULL, NULL, NULL, out), LH_ERR_INVALID);
    assert_string_equal(out, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lh_cidr_set_new_is_empty),
        cmocka_unit_test(test_lh_cidr_set_free_null_is_noop),
        cmocka_unit_test(test_lh_cidr_set_add_v4_prefix),
        cmocka_unit_test(test_lh_cidr_set_add_bare_v4_is_one_host),
        cmocka_unit_test(test_lh_cidr_set_add_odd_prefixes),
        cmocka_unit_test(test_lh_cidr_set_add_clears_host_bits),
        cmocka_unit_test(test_lh_cidr_set_add_v6_prefix),
        cmocka_unit_test(test_lh_cidr_set_add_bare_v6_is_one_host),
        cmocka_unit_test(test_lh_cidr_set_add_zero_prefix_matches_its_family),
        cmocka_unit_test(test_lh_cidr_set_add_rejects_junk),
        cmocka_unit_test(test_lh_cidr_set_add_error_says_why),
        cmocka_unit_test(test_lh_cidr_set_add_v4_mapped_entry_is_v4),
        cmocka_unit_test(test_lh_cidr_set_contains_v4_mapped_lookup),
        cmocka_unit_test(test_lh_cidr_set_contains_rejects_non_addresses),
        cmocka_unit_test(test_lh_cidr_set_add_list_splits_on_commas_and_blanks),
        cmocka_unit_test(test_lh_cidr_set_add_list_empty_adds_nothing),
        cmocka_unit_test(test_lh_cidr_set_add_list_is_all_or_nothing),
        cmocka_unit_test(test_lh_cidr_set_add_list_names_last_bad_entry),
        cmocka_unit_test(test_lh_cidr_set_add_list_truncates_message),
        cmocka_unit_test(test_lh_cidr_set_add_grows_past_initial_capacity),
        cmocka_unit_test_setup_teardown(test_lh_client_ip_ignores_headers_from_untrusted_peer,
                                        setup_proxies, teardown_set),
        cmocka_unit_test_setup_teardown(test_lh_client_ip_takes_rightmost_untrusted, setup_proxies,
                                        teardown_set),
        cmocka_unit_test_setup_teardown(test_lh_client_ip_ignores_spoofed_leftmost, setup_proxies,
                                        teardown_set),
        cmocka_unit_test_setup_teardown(test_lh_client_ip_all_trusted_gives_leftmost, setup_proxies,
                                        teardown_set),
        cmocka_unit_test_setup_teardown(test_lh_client_ip_stops_at_garbage, setup_proxies,
                                        teardown_set),
        cmocka_unit_test_setup_teardown(test_lh_client_ip_skips_empty_list_elements, setup_proxies,
                                        teardown_set),
        cmocka_unit_test_setup_teardown(test_lh_client_ip_strips_ports_and_brackets, setup_proxies,
                                        teardown_set),
        cmocka_unit_test_setup_teardown(test_lh_client_ip_normalizes_output, setup_proxies,
                                        teardown_set),
        cmocka_unit_test_setup_teardown(test_lh_client_ip_trusted_peer_without_headers_is_peer,
                                        setup_proxies, teardown_set),
        cmocka_unit_test_setup_teardown(test_lh_client_ip_uses_forwarded_without_xff, setup_proxies,
                                        teardown_set),
        cmocka_unit_test_setup_teardown(test_lh_client_ip_prefers_xff_over_forwarded, setup_proxies,
                                        teardown_set),
        cmocka_unit_test_setup_teardown(test_lh_client_ip_forwarded_quoted_v6_with_port,
                                        setup_proxies, teardown_set),
        cmocka_unit_test_setup_teardown(test_lh_client_ip_forwarded_walks_elements_from_right,
                                        setup_proxies, teardown_set),
        cmocka_unit_test_setup_teardown(test_lh_client_ip_forwarded_respects_quotes, setup_proxies,
                                        teardown_set),
        cmocka_unit_test_setup_teardown(test_lh_client_ip_forwarded_stops_at_non_addresses,
                                        setup_proxies, teardown_set),
        cmocka_unit_test_setup_teardown(test_lh_client_ip_forwarded_skips_empty_elements,
                                        setup_proxies, teardown_set),
        cmocka_unit_test_setup_teardown(test_lh_client_ip_lines_reads_the_proxys_line_last,
                                        setup_proxies, teardown_set),
        cmocka_unit_test(test_lh_client_ip_ipv6_trusted_peer),
        cmocka_unit_test_setup_teardown(test_lh_client_ip_caps_hops, setup_proxies, teardown_set),
        cmocka_unit_test_setup_teardown(test_lh_client_ip_rejects_bad_peer, setup_proxies,
                                        teardown_set),
        cmocka_unit_test(test_lh_client_key_counts_an_ipv6_subscriber_by_its_64),
        cmocka_unit_test(test_lh_client_key_refuses_non_addresses),
        cmocka_unit_test(test_lh_ipv6_network_counts_a_subscriber_by_its_allocation),
        cmocka_unit_test(test_lh_ipv6_network_refuses_ipv4_and_bad_lengths),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
