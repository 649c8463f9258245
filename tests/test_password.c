/* tests/test_password.c: PBKDF2 hashes, verification, SHA-256. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <string.h>

#include "luahost/password.h"

#define FAST 1000 /* iterations: the minimum, to keep the tests quick */

static void test_lh_password_hash_verifies_the_right_password_only(void **state)
{
    char hash[LH_PASSWORD_HASH_MAX];
    (void)state;
    assert_int_equal(lh_password_hash("correct horse", 13, FAST, hash), LH_OK);
    assert_true(strncmp(hash, "pbkdf2-sha256$1000$", 19) == 0);
    assert_int_equal(lh_password_verify("correct horse", 13, hash), LH_OK);
    assert_int_equal(lh_password_verify("correct horsE", 13, hash), LH_ERR_NOT_FOUND);
    assert_int_equal(lh_password_verify("", 0, hash), LH_ERR_NOT_FOUND);
}

static void test_lh_password_hash_salts_every_hash(void **state)
{
    char a[LH_PASSWORD_HASH_MAX], b[LH_PASSWORD_HASH_MAX];
    (void)state;
    assert_int_equal(lh_password_hash("same", 4, FAST, a), LH_OK);
    assert_int_equal(lh_password_hash("same", 4, FAST, b), LH_OK);
    assert_string_not_equal(a, b);
}

static void test_lh_password_hash_refuses_a_low_cost(void **state)
{
    char hash[LH_PASSWORD_HASH_MAX];
    (void)state;
    assert_int_equal(lh_password_hash("x", 1, 999, hash), LH_ERR_INVALID);
}

static void test_lh_password_verify_refuses_malformed_hashes(void **state)
{
    (void)state;
    const char *bad[] = {"", "md5$abc", "pbkdf2-sha256$", "pbkdf2-sha256$10$c2FsdA==$a2V5",
                         "pbkdf2-sha256$1000$c2FsdA==", "pbkdf2-sha256$1000$!!!!$a2V5a2V5"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(lh_password_verify("x", 1, bad[i]), LH_ERR_INVALID);
}

static void test_lh_password_verify_matches_a_known_vector(void **state)
{
    /* PBKDF2-HMAC-SHA256("password", "salt", 1000 iterations) = 632c2812...60b7dcb3. */
    (void)state;
    const char *hash = "pbkdf2-sha256$1000$c2FsdA==$YywoEuRtRgQQK6dhjp1tfS+BKPYma0oDJk0qBGC33LM=";
    assert_int_equal(lh_password_verify("password", 8, hash), LH_OK);
}

static void test_lh_sha256_hex_matches_fips_180_2(void **state)
{
    char out[65];
    (void)state;
    lh_sha256_hex("abc", 3, out);
    assert_string_equal(out, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lh_password_hash_verifies_the_right_password_only),
        cmocka_unit_test(test_lh_password_hash_salts_every_hash),
        cmocka_unit_test(test_lh_password_hash_refuses_a_low_cost),
        cmocka_unit_test(test_lh_password_verify_refuses_malformed_hashes),
        cmocka_unit_test(test_lh_password_verify_matches_a_known_vector),
        cmocka_unit_test(test_lh_sha256_hex_matches_fips_180_2),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
