/* tests/test_static.c: cmocka tests for include/luahost/static.h, on a
 * temporary folder. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "luahost/static.h"

static char root[64], outside[96];

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int setup(void **state)
{
    char path[160];
    (void)state;
    snprintf(root, sizeof(root), "/tmp/luahost-static-XXXXXX");
    if (mkdtemp(root) == NULL)
        return -1;
    snprintf(path, sizeof(path), "%s/www", root);
    mkdir(path, 0755);
    snprintf(path, sizeof(path), "%s/www/a.css", root);
    write_file(path, "body{}");
    snprintf(path, sizeof(path), "%s/www/a.css.gz", root);
    write_file(path, "GZ");
    snprintf(outside, sizeof(outside), "%s/secret.txt", root);
    write_file(outside, "secret");
    snprintf(path, sizeof(path), "%s/www/.env", root);
    write_file(path, "SECRET=1");
    snprintf(path, sizeof(path), "%s/www/sub", root);
    mkdir(path, 0755);
    snprintf(path, sizeof(path), "%s/www/sub/.a.css.swp", root);
    write_file(path, "swap");
    snprintf(path, sizeof(path), "%s/www/out.txt", root);
    return symlink(outside, path);
}

static int teardown(void **state)
{
    char cmd[128];
    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
    return system(cmd);
}

static struct lh_static *open_root(void)
{
    char path[96], err[128];
    snprintf(path, sizeof(path), "%s/www", root);
    struct lh_static *s = lh_static_new(path, err, sizeof(err));
    assert_non_null(s);
    return s;
}

static void test_routes(void **state)
{
    (void)state;
    assert_string_equal(lh_static_route("/static/a.css"), "a.css");
    assert_string_equal(lh_static_route("/sw.js"), "sw.js");
    assert_null(lh_static_route("/static/"));
    assert_null(lh_static_route("/api/x"));
    assert_null(lh_static_route("/staticx/a"));
}

static void test_open_picks_gzip_and_tags(void **state)
{
    (void)state;
    struct lh_static *s = open_root();
    struct lh_static_file f;

    assert_int_equal(lh_static_open(s, "a.css", 0, &f), LH_OK);
    assert_int_equal(f.size, 6);
    assert_false(f.gzip);
    assert_string_equal(f.content_type, "text/css; charset=utf-8");
    close(f.fd);
    char plain_etag[sizeof(f.etag)];
    strcpy(plain_etag, f.etag);

    assert_int_equal(lh_static_open(s, "a.css", 1, &f), LH_OK);
    assert_true(f.gzip);
    assert_int_equal(f.size, 2);
    assert_string_not_equal(f.etag, plain_etag);
    close(f.fd);

    char v[LH_STATIC_TAG_MAX];
    assert_int_equal(lh_static_version(s, "a.css", v), LH_OK);
    assert_string_equal(v, f.version);
    lh_static_free(s);
}

/* A .gz older than its file is not sent in its place. */
static void test_stale_gzip_is_ignored(void **state)
{
    (void)state;
    char path[160];
    snprintf(path, sizeof(path), "%s/www/b.css.gz", root);
    write_file(path, "OLD GZ");
    snprintf(path, sizeof(path), "%s/www/b.css", root);
    write_file(path, "b{}");
    /* The .gz a minute older than the file it was made from. */
    struct timespec times[2] = {{.tv_sec = time(NULL) - 60}, {.tv_sec = time(NULL) - 60}};
    snprintf(path, sizeof(path), "%s/www/b.css.gz", root);
    assert_int_equal(utimensat(AT_FDCWD, path, times, 0), 0);

    struct lh_static *s = open_root();
    struct lh_static_file f;
    assert_int_equal(lh_static_open(s, "b.css", 1, &f), LH_OK);
    assert_false(f.gzip);
    assert_int_equal(f.size, 3);
    close(f.fd);
    lh_static_free(s);
}

/* An edit of the same size within the same second changes the version. */
static void test_version_follows_nanoseconds(void **state)
{
    (void)state;
    char path[160], before[LH_STATIC_TAG_MAX], after[LH_STATIC_TAG_MAX];
    snprintf(path, sizeof(path), "%s/www/c.txt", root);
    write_file(path, "hello");
    struct timespec times[2] = {{.tv_sec = 1700000000, .tv_nsec = 100},
                                {.tv_sec = 1700000000, .tv_nsec = 100}};
    assert_int_equal(utimensat(AT_FDCWD, path, times, 0), 0);
    struct lh_static *s = open_root();
    assert_int_equal(lh_static_version(s, "c.txt", before), LH_OK);
    write_file(path, "HELLO");
    times[0].tv_nsec = times[1].tv_nsec = 200;
    assert_int_equal(utimensat(AT_FDCWD, path, times, 0), 0);
    assert_int_equal(lh_static_version(s, "c.txt", after), LH_OK);
    assert_string_not_equal(before, after);
    lh_static_free(s);
}

/* A FIFO is no file to serve, and opening it must not wait for a writer. */
static void test_fifo_is_not_found_at_once(void **state)
{
    (void)state;
    char path[160];
    snprintf(path, sizeof(path), "%s/www/pipe.txt", root);
    assert_int_equal(mkfifo(path, 0644), 0);

    struct lh_static *s = open_root();
    struct lh_static_file f;
    assert_int_equal(lh_static_open(s, "pipe.txt", 0, &f), LH_ERR_NOT_FOUND);
    lh_static_free(s);
}

static void test_paths_leaving_the_root_are_refused(void **state)
{
    (void)state;
    struct lh_static *s = open_root();
    struct lh_static_file f;
    static const char *const bad[] = {"../secret.txt", "./a.css", "x//a.css", "..",
                                      "a\\\\b", "a.css/", "/a.css", "a\x01.css"};

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(lh_static_open(s, bad[i], 0, &f), LH_ERR_INVALID);
    /* A symlink out, and hidden files, are no files to serve: as if missing. */
    assert_int_equal(lh_static_open(s, "out.txt", 0, &f), LH_ERR_NOT_FOUND);
    assert_int_equal(lh_static_open(s, "missing", 0, &f), LH_ERR_NOT_FOUND);
    assert_int_equal(lh_static_open(s, ".env", 0, &f), LH_ERR_NOT_FOUND);
    assert_int_equal(lh_static_open(s, "sub/.a.css.swp", 0, &f), LH_ERR_NOT_FOUND);
    lh_static_free(s);
}

static void test_ranges(void **state)
{
    (void)state;
    off_t start, len;
    assert_int_equal(lh_static_range("bytes=0-9", 100, &start, &len), LH_RANGE_OK);
    assert_int_equal(start, 0);
    assert_int_equal(len, 10);
    assert_int_equal(lh_static_range("bytes=90-", 100, &start, &len), LH_RANGE_OK);
    assert_int_equal(len, 10);
    assert_int_equal(lh_static_range("bytes=-30", 100, &start, &len), LH_RANGE_OK);
    assert_int_equal(start, 70);
    assert_int_equal(lh_static_range("bytes=-300", 100, &start, &len), LH_RANGE_OK);
    assert_int_equal(start, 0);
    assert_int_equal(lh_static_range("bytes=50-500", 100, &start, &len), LH_RANGE_OK);
    assert_int_equal(len, 50);
    assert_int_equal(lh_static_range("bytes=100-", 100, &start, &len), LH_RANGE_UNSATISFIABLE);
    assert_int_equal(lh_static_range("bytes=-0", 100, &start, &len), LH_RANGE_UNSATISFIABLE);
    assert_int_equal(lh_static_range("bytes=0-1,4-5", 100, &start, &len), LH_RANGE_NONE);
    assert_int_equal(lh_static_range("bytes=9-1", 100, &start, &len), LH_RANGE_NONE);
    assert_int_equal(lh_static_range("items=0-1", 100, &start, &len), LH_RANGE_NONE);
    /* Offsets past any file: a start past the end, an end clamped. */
    assert_int_equal(lh_static_range("bytes=99999999999999999999-", 100, &start, &len),
                     LH_RANGE_UNSATISFIABLE);
    assert_int_equal(lh_static_range("bytes=9223372036854775807-", 100, &start, &len),
                     LH_RANGE_UNSATISFIABLE);
    assert_int_equal(lh_static_range("bytes=0-99999999999999999999", 100, &start, &len),
                     LH_RANGE_OK);
    assert_int_equal(start, 0);
    assert_int_equal(len, 100);
    assert_int_equal(lh_static_range("bytes=-99999999999999999999", 100, &start, &len),
                     LH_RANGE_OK);
    assert_int_equal(len, 100);
    assert_int_equal(lh_static_range(NULL, 100, &start, &len), LH_RANGE_NONE);
}

static void test_validators_and_caching(void **state)
{
    (void)state;
    struct lh_static_file f = {.mtime = 1000000000};
    strcpy(f.etag, "\"abc-1\"");
    strcpy(f.version, "abc-1");

    assert_true(lh_static_not_modified(&f, "\"abc-1\"", NULL));
    assert_true(lh_static_not_modified(&f, "\"x\", W/\"abc-1\"", NULL));
    assert_true(lh_static_not_modified(&f, "*", NULL));
    assert_false(lh_static_not_modified(&f, "\"abc-10\"", NULL));
    assert_true(lh_static_not_modified(&f, NULL, "Sun, 09 Sep 2001 01:46:40 GMT"));
    assert_false(lh_static_not_modified(&f, NULL, "Sun, 09 Sep 2001 01:46:39 GMT"));
    assert_false(lh_static_not_modified(&f, NULL, "yesterday"));
    assert_false(lh_static_not_modified(&f, NULL, "Thu, 01 Jan 2099 00:00:00 GMT")); /* future */
    /* The obsolete forms a recipient must read: RFC 850 and asctime. */
    assert_true(lh_static_not_modified(&f, NULL, "Sunday, 09-Sep-01 01:46:40 GMT"));
    assert_false(lh_static_not_modified(&f, NULL, "Sunday, 09-Sep-01 01:46:39 GMT"));
    assert_true(lh_static_not_modified(&f, NULL, "Sun Sep  9 01:46:40 2001"));
    assert_false(lh_static_not_modified(&f, NULL, "Sun Sep  9 01:46:39 2001"));
    assert_false(lh_static_not_modified(&f, "\"other\"", "Sun, 09 Sep 2001 01:46:40 GMT"));

    assert_string_equal(lh_static_cache_control("a.css", "abc-1", &f),
                        "public, max-age=31536000, immutable");
    assert_string_equal(lh_static_cache_control("a.css", "old", &f),
                        "public, max-age=0, must-revalidate");
    assert_string_equal(lh_static_cache_control("sw.js", "abc-1", &f), "no-cache");
    assert_string_equal(lh_static_cache_control("p.html", NULL, &f), "no-cache");
}

static void test_preconditions_and_if_range(void **state)
{
    struct lh_static_file f = {.mtime = 1000000000, .etag = "\"abc-1\""};
    (void)state;

    /* If-Match compares strongly: a weak tag never matches. */
    assert_false(lh_static_precondition_failed(&f, "\"abc-1\"", NULL));
    assert_false(lh_static_precondition_failed(&f, "\"x\", \"abc-1\"", NULL));
    assert_false(lh_static_precondition_failed(&f, "*", NULL));
    assert_true(lh_static_precondition_failed(&f, "W/\"abc-1\"", NULL));
    assert_true(lh_static_precondition_failed(&f, "\"abc-10\"", NULL));
    /* If-Unmodified-Since, only without If-Match; a bad date is ignored. */
    assert_false(lh_static_precondition_failed(&f, NULL, "Sun, 09 Sep 2001 01:46:40 GMT"));
    assert_true(lh_static_precondition_failed(&f, NULL, "Sun, 09 Sep 2001 01:46:39 GMT"));
    assert_false(lh_static_precondition_failed(&f, NULL, "yesterday"));
    assert_false(lh_static_precondition_failed(&f, "\"abc-1\"", "Sun, 09 Sep 2001 01:46:39 GMT"));
    assert_false(lh_static_precondition_failed(&f, NULL, NULL));

    assert_true(lh_static_range_applies(&f, NULL));
    assert_true(lh_static_range_applies(&f, "\"abc-1\""));
    assert_false(lh_static_range_applies(&f, "\"abc-2\""));
    assert_false(lh_static_range_applies(&f, "W/\"abc-1\""));
    assert_true(lh_static_range_applies(&f, "Sun, 09 Sep 2001 01:46:40 GMT"));
    assert_false(lh_static_range_applies(&f, "Sun, 09 Sep 2001 01:46:41 GMT"));
    assert_false(lh_static_range_applies(&f, "garbage"));
}

static void test_accepts_gzip(void **state)
{
    (void)state;
    assert_true(lh_static_accepts_gzip("gzip"));
    assert_true(lh_static_accepts_gzip("deflate, gzip;q=0.5, br"));
    assert_true(lh_static_accepts_gzip("*"));
    assert_true(lh_static_accepts_gzip("GZIP ; q=1"));
    assert_false(lh_static_accepts_gzip("gzip;q=0"));
    assert_false(lh_static_accepts_gzip("gzip;q=0.000, br"));
    assert_false(lh_static_accepts_gzip("x-gzip2, br"));
    assert_false(lh_static_accepts_gzip("identity"));
    assert_false(lh_static_accepts_gzip(""));
    assert_false(lh_static_accepts_gzip(NULL));
    /* gzip by name wins over "*", either way; x-gzip is gzip. */
    assert_false(lh_static_accepts_gzip("*, gzip;q=0"));
    assert_true(lh_static_accepts_gzip("*;q=0, gzip"));
    assert_false(lh_static_accepts_gzip("*;q=0"));
    assert_true(lh_static_accepts_gzip("x-gzip"));
    assert_false(lh_static_accepts_gzip("br, x-gzip;q=0, *"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_routes),
        cmocka_unit_test(test_open_picks_gzip_and_tags),
        cmocka_unit_test(test_stale_gzip_is_ignored),
        cmocka_unit_test(test_fifo_is_not_found_at_once),
        cmocka_unit_test(test_version_follows_nanoseconds),
        cmocka_unit_test(test_paths_leaving_the_root_are_refused),
        cmocka_unit_test(test_ranges),
        cmocka_unit_test(test_validators_and_caching),
        cmocka_unit_test(test_preconditions_and_if_range),
        cmocka_unit_test(test_accepts_gzip),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
