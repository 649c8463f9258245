/* tests/test_fingerprint.c: cmocka tests for include/luahost/fingerprint.h.
 * Expected fingerprints come from the reference (Python's hmac module). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "luahost/fingerprint.h"

#define BENCH_SECRET "anchor-bench-secret"

/* -- Helpers ----------------------------------------------------------------- */

static struct lh_fingerprint *new_fp(const char *key)
{
    const char *err = NULL;
    struct lh_fingerprint *fp = lh_fingerprint_new(key, strlen(key), &err);
    if (fp == NULL)
        fail_msg("lh_fingerprint_new failed: %s", err ? err : "(no message)");
    return fp;
}

/* Asserts that fp's fingerprint of the inputs is expected. */
static void expect_fp(const struct lh_fingerprint *fp, const char *ip, const char *ua,
                      const char *lang, const char *xff, const char *expected)
{
    char out[LH_FINGERPRINT_HEX + 1];
    memset(out, 'Z', sizeof(out));
    enum lh_status st = lh_fingerprint_compute(fp, ip, ua, lang, xff, out);
    if (st != LH_OK)
        fail_msg("lh_fingerprint_compute failed: %s", lh_status_str(st));
    assert_int_equal(strlen(out), LH_FINGERPRINT_HEX);
    assert_string_equal(out, expected);
}

static void to_hex(const unsigned char *b, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", b[i]);
}

/* Asserts HMAC-SHA256(key, msg) == expected_hex (64 characters). */
static void expect_hmac(const void *key, size_t key_len, const void *msg, size_t msg_len,
                        const char *expected_hex)
{
    unsigned char md[32];
    char hex[65];
    assert_int_equal(lh_hmac_sha256(key, key_len, msg, msg_len, md), LH_OK);
    to_hex(md, sizeof(md), hex);
    assert_string_equal(hex, expected_hex);
}

/* -- lh_fingerprint_compute -------------------------------------------------- */

static void test_lh_fingerprint_compute_reference_vector_defaults(void **state)
{
    (void)state;
    struct lh_fingerprint *fp = new_fp(BENCH_SECRET);
    /* The reference formats "127.0.0.1:x:unknown:". */
    expect_fp(fp, "127.0.0.1", "x", NULL, NULL, "b292482bc73b767f");
    lh_fingerprint_free(fp);
}

static void test_lh_fingerprint_compute_reference_vector_wrk(void **state)
{
    (void)state;
    struct lh_fingerprint *fp = new_fp(BENCH_SECRET);
    expect_fp(fp, "127.0.0.1", "anchor-bench/1.0 (wrk)", "en-US,en;q=0.9", NULL,
              "de4b526256256535");
    lh_fingerprint_free(fp);
}

static void test_lh_fingerprint_compute_null_arguments_take_defaults(void **state)
{
    (void)state;
    struct lh_fingerprint *fp = new_fp(BENCH_SECRET);
    /* "127.0.0.1:unknown:unknown:" */
    expect_fp(fp, NULL, NULL, NULL, NULL, "6d71e336f7360be1");
    expect_fp(fp, "127.0.0.1", "unknown", "unknown", "", "6d71e336f7360be1");
    lh_fingerprint_free(fp);
}

static void test_lh_fingerprint_compute_empty_strings_stay_empty(void **state)
{
    (void)state;
    struct lh_fingerprint *fp = new_fp(BENCH_SECRET);
    /* A header that is present but empty is not "unknown": ":::" */
    expect_fp(fp, "", "", "", "", "89fbbd8aac8255fb");
    lh_fingerprint_free(fp);
}

/* An IPv6 address enters the message as its /64. */
static void test_lh_fingerprint_compute_is_prefix_of_hmac(void **state)
{
    (void)state;
    const char *key = "another key, long enough to be a real secret";
    const char *msg = "2001:db8::/64:Mozilla/5.0:de-DE:198.51.100.7, 10.0.0.2";
    unsigned char md[32];
    char hex[65];
    struct lh_fingerprint *fp = new_fp(key);

    assert_int_equal(lh_hmac_sha256(key, strlen(key), msg, strlen(msg), md), LH_OK);
    to_hex(md, 8, hex);
    expect_fp(fp, "2001:db8::1", "Mozilla/5.0", "de-DE", "198.51.100.7, 10.0.0.2", hex);
    lh_fingerprint_free(fp);
}

static void test_lh_fingerprint_compute_repeats_after_reset(void **state)
{
    (void)state;
    struct lh_fingerprint *fp = new_fp(BENCH_SECRET);
    /* The per-thread context is reset between calls: no state carries over. */
    for (int i = 0; i < 1000; i++) {
        expect_fp(fp, "127.0.0.1", "x", NULL, NULL, "b292482bc73b767f");
        expect_fp(fp, "127.0.0.1", "anchor-bench/1.0 (wrk)", "en-US,en;q=0.9", NULL,
                  "de4b526256256535");
    }
    lh_fingerprint_free(fp);
}

/* The fingerprint of ip with fixed headers, in out. */
static void fp_of(const struct lh_fingerprint *fp, const char *ip, char out[LH_FINGERPRINT_HEX + 1])
{
    assert_int_equal(lh_fingerprint_compute(fp, ip, "Mozilla/5.0", "de-CH", NULL, out), LH_OK);
}

/* An IPv6 client counts by its /64, as the per-address limits count it:
 * walking through the addresses of its /64 buys no fresh fingerprint (nor a
 * fresh bucket or bot count); the next /64 is another client. */
static void test_lh_fingerprint_compute_one_per_ipv6_64(void **state)
{
    (void)state;
    struct lh_fingerprint *fp = new_fp(BENCH_SECRET);
    char first[LH_FINGERPRINT_HEX + 1], same[LH_FINGERPRINT_HEX + 1], key[LH_FINGERPRINT_HEX + 1];
    char next[LH_FINGERPRINT_HEX + 1], v4[LH_FINGERPRINT_HEX + 1], v4_next[LH_FINGERPRINT_HEX + 1];

    fp_of(fp, "2001:db8:1:2::1", first);
    fp_of(fp, "2001:db8:1:2:ffff:ffff:ffff:fffe", same);
    fp_of(fp, "2001:db8:1:2::/64", key); /* req.client_key itself */
    fp_of(fp, "2001:db8:1:3::1", next);
    assert_string_equal(same, first);
    assert_string_equal(key, first);
    assert_string_not_equal(next, first);
    /* IPv4 addresses, mapped ones included, are taken one by one. */
    fp_of(fp, "192.0.2.1", v4);
    fp_of(fp, "192.0.2.2", v4_next);
    assert_string_not_equal(v4_next, v4);
    fp_of(fp, "::ffff:192.0.2.1", same);
    assert_string_equal(same, v4);
    lh_fingerprint_free(fp);
}

static void test_lh_fingerprint_compute_rejects_null_fp(void **state)
{
    (void)state;
    char out[LH_FINGERPRINT_HEX + 1];
    assert_int_equal(lh_fingerprint_compute(NULL, "1.2.3.4", "x", NULL, NULL, out), LH_ERR_INVALID);
}

static void test_lh_fingerprint_compute_two_keys_interleaved(void **state)
{
    (void)state;
    struct lh_fingerprint *a = new_fp("k1");
    struct lh_fingerprint *b = new_fp("k2");

    for (int i = 0; i < 10; i++) {
        expect_fp(a, "1.2.3.4", "ua", "lang", "xff", "a2764e49dc1bf04f");
        expect_fp(b, "1.2.3.4", "ua", "lang", "xff", "4a62f105955bf72f");
    }
    lh_fingerprint_free(a);
    expect_fp(b, "1.2.3.4", "ua", "lang", "xff", "4a62f105955bf72f");
    lh_fingerprint_free(b);
}

static void test_lh_fingerprint_compute_more_objects_than_cache_slots(void **state)
{
    (void)state;
    enum { N = 9 };
    struct lh_fingerprint *fps[N];
    char expected[N][LH_FINGERPRINT_HEX + 1];
    char key[32];

    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "key number %d", i);
        fps[i] = new_fp(key);
        assert_int_equal(lh_fingerprint_compute(fps[i], "1.2.3.4", NULL, NULL, NULL, expected[i]),
                         LH_OK);
    }
    for (int i = 1; i < N; i++)
        assert_string_not_equal(expected[i], expected[i - 1]);
    /* Evicted contexts are re-keyed with the right key. */
    for (int round = 0; round < 3; round++)
        for (int i = N - 1; i >= 0; i--)
            expect_fp(fps[i], "1.2.3.4", NULL, NULL, NULL, expected[i]);
    for (int i = 0; i < N; i++)
        lh_fingerprint_free(fps[i]);
}

struct reuse_arg {
    pthread_barrier_t step;
    struct lh_fingerprint *fp; /* a, then b at (usually) the same address */
    char first[LH_FINGERPRINT_HEX + 1], second[LH_FINGERPRINT_HEX + 1];
};

/* Computes with a, waits while the main thread replaces it, computes again. */
static void *compute_before_and_after(void *p)
{
    struct reuse_arg *arg = p;

    lh_fingerprint_compute(arg->fp, "1.2.3.4", "ua", "lang", "xff", arg->first);
    pthread_barrier_wait(&arg->step);
    pthread_barrier_wait(&arg->step);
    lh_fingerprint_compute(arg->fp, "1.2.3.4", "ua", "lang", "xff", arg->second);
    return NULL;
}

static void test_lh_fingerprint_compute_recreated_object_uses_new_key(void **state)
{
    (void)state;
    struct reuse_arg arg = {.fp = new_fp("k1")};
    pthread_t t;

    assert_int_equal(pthread_barrier_init(&arg.step, NULL, 2), 0);
    assert_int_equal(pthread_create(&t, NULL, compute_before_and_after, &arg), 0);
    pthread_barrier_wait(&arg.step);
    /* The thread keeps a context keyed with k1 for the old address; the new
     * object usually gets that address back from this thread's allocator. */
    void *old = arg.fp;
    lh_fingerprint_free(arg.fp);
    arg.fp = new_fp("k2");
    if ((void *)arg.fp != old)
        print_message("note: the allocator did not reuse the address\n");
    pthread_barrier_wait(&arg.step);
    assert_int_equal(pthread_join(t, NULL), 0);
    pthread_barrier_destroy(&arg.step);
    assert_string_equal(arg.first, "a2764e49dc1bf04f");
    assert_string_equal(arg.second, "4a62f105955bf72f");
    lh_fingerprint_free(arg.fp);
}

struct thread_arg {
    const struct lh_fingerprint *fp;
    int mismatches;
};

static void *compute_many(void *p)
{
    struct thread_arg *arg = p;
    char out[LH_FINGERPRINT_HEX + 1];

    for (int i = 0; i < 2000; i++) {
        if (lh_fingerprint_compute(arg->fp, "127.0.0.1", "anchor-bench/1.0 (wrk)", "en-US,en;q=0.9",
                                   NULL, out) != LH_OK ||
            strcmp(out, "de4b526256256535") != 0)
            arg->mismatches++;
    }
    return NULL;
}

static void test_lh_fingerprint_compute_threads_agree(void **state)
{
    (void)state;
    enum { NTHREADS = 8 };
    struct lh_fingerprint *fp = new_fp(BENCH_SECRET);
    pthread_t t[NTHREADS];
    struct thread_arg args[NTHREADS];

    for (int i = 0; i < NTHREADS; i++) {
        args[i] = (struct thread_arg){fp, 0};
        assert_int_equal(pthread_create(&t[i], NULL, compute_many, &args[i]), 0);
    }
    for (int i = 0; i < NTHREADS; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        assert_int_equal(args[i].mismatches, 0);
    }
    lh_fingerprint_free(fp);
}

/* -- lh_fingerprint_compute_memo --------------------------------------------- */

/* Asserts that the memo answers as lh_fingerprint_compute does. */
static void expect_memo(const struct lh_fingerprint *fp, struct lh_fingerprint_memo *memo,
                        const char *ip, const char *ua, const char *lang, const char *xff)
{
    char direct[LH_FINGERPRINT_HEX + 1], memoized[LH_FINGERPRINT_HEX + 1];
    assert_int_equal(lh_fingerprint_compute(fp, ip, ua, lang, xff, direct), LH_OK);
    assert_int_equal(lh_fingerprint_compute_memo(fp, memo, ip, ua, lang, xff, memoized), LH_OK);
    assert_string_equal(memoized, direct);
}

static void test_lh_fingerprint_compute_memo_agrees_with_compute(void **state)
{
    (void)state;
    struct lh_fingerprint *fp = new_fp(BENCH_SECRET);
    struct lh_fingerprint_memo memo = {0};
    char long_ua[LH_FINGERPRINT_MEMO_MAX + 10];

    memset(long_ua, 'u', sizeof(long_ua) - 1);
    long_ua[sizeof(long_ua) - 1] = '\0';
    for (int i = 0; i < 3; i++) {
        expect_memo(fp, &memo, "127.0.0.1", "x", NULL, NULL);
        expect_memo(fp, &memo, "127.0.0.1", "x", NULL, NULL); /* a repeat */
        expect_memo(fp, &memo, "127.0.0.1", "y", NULL, NULL); /* one header changed */
        expect_memo(fp, &memo, "127.0.0.2", "y", NULL, NULL); /* the address changed */
        expect_memo(fp, &memo, "127.0.0.2", "y", "", "10.0.0.1");
        expect_memo(fp, &memo, "127.0.0.2", long_ua, NULL, NULL); /* too long to remember */
        expect_memo(fp, &memo, "127.0.0.2", long_ua, NULL, NULL);
    }
    char out[LH_FINGERPRINT_HEX + 1];
    assert_int_equal(lh_fingerprint_compute_memo(fp, &memo, "127.0.0.1", "x", NULL, NULL, out),
                     LH_OK);
    assert_string_equal(out, "b292482bc73b767f");
    lh_fingerprint_free(fp);
}

static void test_lh_fingerprint_compute_memo_answers_a_repeat_from_the_memo(void **state)
{
    (void)state;
    struct lh_fingerprint *fp = new_fp(BENCH_SECRET);
    struct lh_fingerprint_memo memo = {0};
    char out[LH_FINGERPRINT_HEX + 1];

    assert_int_equal(lh_fingerprint_compute_memo(fp, &memo, "127.0.0.1", "x", NULL, NULL, out),
                     LH_OK);
    assert_string_equal(memo.hex, "b292482bc73b767f");
    /* Marked, so that an answer from the memo shows. */
    memcpy(memo.hex, "0123456789abcdef", sizeof(memo.hex));
    assert_int_equal(lh_fingerprint_compute_memo(fp, &memo, "127.0.0.1", "x", NULL, NULL, out),
                     LH_OK);
    assert_string_equal(out, "0123456789abcdef");
    /* A different message is worked out again. */
    assert_int_equal(lh_fingerprint_compute_memo(fp, &memo, "127.0.0.1", "x", "", NULL, out),
                     LH_OK);
    assert_string_not_equal(out, "0123456789abcdef");
    lh_fingerprint_free(fp);
}

/* The memo of a connection (behind a proxy, each request may bring another
 * address) answers an address of the same /64 as a repeat. */
static void test_lh_fingerprint_compute_memo_answers_the_same_64(void **state)
{
    (void)state;
    struct lh_fingerprint *fp = new_fp(BENCH_SECRET);
    struct lh_fingerprint_memo memo = {0};
    char out[LH_FINGERPRINT_HEX + 1];

    assert_int_equal(
        lh_fingerprint_compute_memo(fp, &memo, "2001:db8:1:2::1", "x", NULL, NULL, out), LH_OK);
    memcpy(memo.hex, "0123456789abcdef", sizeof(memo.hex));
    assert_int_equal(
        lh_fingerprint_compute_memo(fp, &memo, "2001:db8:1:2::2", "x", NULL, NULL, out), LH_OK);
    assert_string_equal(out, "0123456789abcdef");
    assert_int_equal(
        lh_fingerprint_compute_memo(fp, &memo, "2001:db8:1:3::1", "x", NULL, NULL, out), LH_OK);
    assert_string_not_equal(out, "0123456789abcdef");
    lh_fingerprint_free(fp);
}

static void test_lh_fingerprint_compute_memo_is_per_key(void **state)
{
    (void)state;
    struct lh_fingerprint *a = new_fp("k1");
    struct lh_fingerprint *b = new_fp("k2");
    struct lh_fingerprint_memo memo = {0};
    char out[LH_FINGERPRINT_HEX + 1];

    for (int i = 0; i < 2; i++) {
        assert_int_equal(lh_fingerprint_compute_memo(a, &memo, "1.2.3.4", "ua", "lang", "xff", out),
                         LH_OK);
        assert_string_equal(out, "a2764e49dc1bf04f");
        assert_int_equal(lh_fingerprint_compute_memo(b, &memo, "1.2.3.4", "ua", "lang", "xff", out),
                         LH_OK);
        assert_string_equal(out, "4a62f105955bf72f");
    }
    assert_int_equal(lh_fingerprint_compute_memo(NULL, &memo, "1.2.3.4", "ua", "lang", "xff", out),
                     LH_ERR_INVALID);
    lh_fingerprint_free(a);
    lh_fingerprint_free(b);
}

/* -- lh_fingerprint_new / lh_fingerprint_free -------------------------------- */

static void test_lh_fingerprint_new_rejects_empty_key(void **state)
{
    (void)state;
    const char *err = NULL;
    assert_null(lh_fingerprint_new("", 0, &err));
    assert_non_null(err);
    err = NULL;
    assert_null(lh_fingerprint_new(NULL, 5, &err));
    assert_non_null(err);
}

static void test_lh_fingerprint_new_copies_key(void **state)
{
    (void)state;
    char key[] = BENCH_SECRET;
    const char *err = NULL;
    struct lh_fingerprint *fp = lh_fingerprint_new(key, strlen(key), &err);

    assert_non_null(fp);
    memset(key, 'X', strlen(key));
    expect_fp(fp, "127.0.0.1", "x", NULL, NULL, "b292482bc73b767f");
    lh_fingerprint_free(fp);
}

static void test_lh_fingerprint_new_key_may_hold_nul(void **state)
{
    (void)state;
    const char key[] = {'a', '\0', 'b'};
    const char *err = NULL;
    struct lh_fingerprint *with_nul = lh_fingerprint_new(key, sizeof(key), &err);
    struct lh_fingerprint *truncated = lh_fingerprint_new(key, 1, &err);
    char x[LH_FINGERPRINT_HEX + 1], y[LH_FINGERPRINT_HEX + 1];

    assert_non_null(with_nul);
    assert_non_null(truncated);
    assert_int_equal(lh_fingerprint_compute(with_nul, "1.2.3.4", NULL, NULL, NULL, x), LH_OK);
    assert_int_equal(lh_fingerprint_compute(truncated, "1.2.3.4", NULL, NULL, NULL, y), LH_OK);
    assert_string_not_equal(x, y);
    lh_fingerprint_free(with_nul);
    lh_fingerprint_free(truncated);
}

static void test_lh_fingerprint_free_null_is_noop(void **state)
{
    (void)state;
    lh_fingerprint_free(NULL);
}

/* -- lh_hmac_sha256: RFC 4231 ------------------------------------------------ */

static void test_lh_hmac_sha256_rfc4231_case1(void **state)
{
    (void)state;
    unsigned char key[20];
    memset(key, 0x0b, sizeof(key));
    expect_hmac(key, sizeof(key), "Hi There", 8,
                "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
}

static void test_lh_hmac_sha256_rfc4231_case2(void **state)
{
    (void)state;
    const char *msg = "what do ya want for nothing?";
    expect_hmac("Jefe", 4, msg, strlen(msg),
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

static void test_lh_hmac_sha256_rfc4231_case3(void **state)
{
    (void)state;
    unsigned char key[20], msg[50];
    memset(key, 0xaa, sizeof(key));
    memset(msg, 0xdd, sizeof(msg));
    expect_hmac(key, sizeof(key), msg, sizeof(msg),
                "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe");
}

static void test_lh_hmac_sha256_rfc4231_case4(void **state)
{
    (void)state;
    unsigned char key[25], msg[50];
    for (int i = 0; i < 25; i++)
        key[i] = (unsigned char)(i + 1);
    memset(msg, 0xcd, sizeof(msg));
    expect_hmac(key, sizeof(key), msg, sizeof(msg),
                "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b");
}

static void test_lh_hmac_sha256_rfc4231_case6(void **state)
{
    (void)state;
    unsigned char key[131];
    const char *msg = "Test Using Larger Than Block-Size Key - Hash Key First";
    memset(key, 0xaa, sizeof(key));
    expect_hmac(key, sizeof(key), msg, strlen(msg),
                "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

static void test_lh_hmac_sha256_rfc4231_case7(void **state)
{
    (void)state;
    unsigned char key[131];
    const char *msg = "This is a test using a larger than block-size key and a larger than "
                      "block-size data. The key needs to be hashed before being used by the "
                      "HMAC algorithm.";
    memset(key, 0xaa, sizeof(key));
    expect_hmac(key, sizeof(key), msg, strlen(msg),
                "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2");
}

static void test_lh_hmac_sha256_empty_key_and_message(void **state)
{
    (void)state;
    const char *expected = "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad";
    expect_hmac("", 0, "", 0, expected);
    expect_hmac(NULL, 0, NULL, 0, expected);
}

static void test_lh_hmac_sha256_rejects_bad_arguments(void **state)
{
    (void)state;
    unsigned char md[32];
    assert_int_equal(lh_hmac_sha256(NULL, 4, "m", 1, md), LH_ERR_INVALID);
    assert_int_equal(lh_hmac_sha256("k", 1, NULL, 4, md), LH_ERR_INVALID);
    assert_int_equal(lh_hmac_sha256("k", 1, "m", 1, NULL), LH_ERR_INVALID);
}

/* -- lh_fingerprint_check_secret --------------------------------------------- */

static void test_lh_fingerprint_check_secret_rejects_unset(void **state)
{
    (void)state;
    const char *why = NULL;
    assert_int_equal(lh_fingerprint_check_secret(NULL, &why), LH_ERR_INVALID);
    assert_string_equal(why, "FINGERPRINT_SECRET is not set");
}

static void test_lh_fingerprint_check_secret_rejects_short(void **state)
{
    (void)state;
    const char *why = NULL;
    char secret[LH_SECRET_MIN_BYTES];

    memset(secret, 'a', sizeof(secret) - 1);
    secret[sizeof(secret) - 1] = '\0'; /* 31 bytes */
    assert_int_equal(lh_fingerprint_check_secret(secret, &why), LH_ERR_INVALID);
    assert_non_null(strstr(why, "at least 32 bytes"));
    why = NULL;
    assert_int_equal(lh_fingerprint_check_secret("", &why), LH_ERR_INVALID);
    assert_non_null(strstr(why, "at least 32 bytes"));
}

static void test_lh_fingerprint_check_secret_rejects_reference_default(void **state)
{
    (void)state;
    const char *why = NULL;
    assert_int_equal(lh_fingerprint_check_secret("change-me-in-production", &why), LH_ERR_INVALID);
    assert_non_null(strstr(why, "reference's default"));
}

static void test_lh_fingerprint_check_secret_rejects_placeholders(void **state)
{
    (void)state;
    const char *why = NULL;
    char secret[LH_SECRET_MIN_BYTES + 9];

    memset(secret, 'a', sizeof(secret) - 1);
    secret[sizeof(secret) - 1] = '\0';
    assert_int_equal(lh_fingerprint_check_secret(secret, &why), LH_ERR_INVALID);
    assert_non_null(strstr(why, "fewer than 8 different characters"));
    why = NULL;
    assert_int_equal(lh_fingerprint_check_secret("abcdefgabcdefgabcdefgabcdefgabcdefg", &why),
                     LH_ERR_INVALID); /* 7 different */
    assert_non_null(why);
}

static void test_lh_fingerprint_check_secret_accepts_32_bytes(void **state)
{
    (void)state;
    const char *why = NULL;

    /* 8 different characters, 32 bytes: the least that passes. */
    assert_int_equal(lh_fingerprint_check_secret("abcdefghabcdefghabcdefghabcdefgh", &why), LH_OK);
    assert_int_equal(lh_fingerprint_check_secret("0123456789abcdef0123456789abcdef-more", &why),
                     LH_OK);
}

/* -- lh_random_bytes ----------------------------------------------------------- */

static void test_lh_random_bytes_fills_buffer(void **state)
{
    (void)state;
    unsigned char a[32], b[32], zero[32] = {0};

    memset(a, 0, sizeof(a));
    memset(b, 0, sizeof(b));
    assert_int_equal(lh_random_bytes(a, sizeof(a)), LH_OK);
    assert_int_equal(lh_random_bytes(b, sizeof(b)), LH_OK);
    /* 256 random bits: equal or all-zero only by a failure. */
    assert_memory_not_equal(a, b, sizeof(a));
    assert_memory_not_equal(a, zero, sizeof(a));
}

static void test_lh_random_bytes_zero_length_is_ok(void **state)
{
    (void)state;
    assert_int_equal(lh_random_bytes(NULL, 0), LH_OK);
}

static void test_lh_random_bytes_rejects_null_buffer(void **state)
{
    (void)state;
    assert_int_equal(lh_random_bytes(NULL, 8), LH_ERR_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lh_fingerprint_compute_reference_vector_defaults),
        cmocka_unit_test(test_lh_fingerprint_compute_memo_agrees_with_compute),
        cmocka_unit_test(test_lh_fingerprint_compute_memo_answers_a_repeat_from_the_memo),
        cmocka_unit_test(test_lh_fingerprint_compute_memo_answers_the_same_64),
        cmocka_unit_test(test_lh_fingerprint_compute_memo_is_per_key),
        cmocka_unit_test(test_lh_fingerprint_compute_reference_vector_wrk),
        cmocka_unit_test(test_lh_fingerprint_compute_null_arguments_take_defaults),
        cmocka_unit_test(test_lh_fingerprint_compute_empty_strings_stay_empty),
        cmocka_unit_test(test_lh_fingerprint_compute_is_prefix_of_hmac),
        cmocka_unit_test(test_lh_fingerprint_compute_one_per_ipv6_64),
        cmocka_unit_test(test_lh_fingerprint_compute_repeats_after_reset),
        cmocka_unit_test(test_lh_fingerprint_compute_rejects_null_fp),
        cmocka_unit_test(test_lh_fingerprint_compute_two_keys_interleaved),
        cmocka_unit_test(test_lh_fingerprint_compute_more_objects_than_cache_slots),
        cmocka_unit_test(test_lh_fingerprint_compute_recreated_object_uses_new_key),
        cmocka_unit_test(test_lh_fingerprint_compute_threads_agree),
        cmocka_unit_test(test_lh_fingerprint_new_rejects_empty_key),
        cmocka_unit_test(test_lh_fingerprint_new_copies_key),
        cmocka_unit_test(test_lh_fingerprint_new_key_may_hold_nul),
        cmocka_unit_test(test_lh_fingerprint_free_null_is_noop),
        cmocka_unit_test(test_lh_hmac_sha256_rfc4231_case1),
        cmocka_unit_test(test_lh_hmac_sha256_rfc4231_case2),
        cmocka_unit_test(test_lh_hmac_sha256_rfc4231_case3),
        cmocka_unit_test(test_lh_hmac_sha256_rfc4231_case4),
        cmocka_unit_test(test_lh_hmac_sha256_rfc4231_case6),
        cmocka_unit_test(test_lh_hmac_sha256_rfc4231_case7),
        cmocka_unit_test(test_lh_hmac_sha256_empty_key_and_message),
        cmocka_unit_test(test_lh_hmac_sha256_rejects_bad_arguments),
        cmocka_unit_test(test_lh_fingerprint_check_secret_rejects_unset),
        cmocka_unit_test(test_lh_fingerprint_check_secret_rejects_short),
        cmocka_unit_test(test_lh_fingerprint_check_secret_rejects_reference_default),
        cmocka_unit_test(test_lh_fingerprint_check_secret_rejects_placeholders),
        cmocka_unit_test(test_lh_fingerprint_check_secret_accepts_32_bytes),
        cmocka_unit_test(test_lh_random_bytes_fills_buffer),
        cmocka_unit_test(test_lh_random_bytes_zero_length_is_ok),
        cmocka_unit_test(test_lh_random_bytes_rejects_null_buffer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
