/* tests/test_log.c: cmocka tests for include/luahost/log.h.
 * The logger is process-wide: every test opens it and closes it again. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ctype.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "luahost/log.h"

#define STAMP_LEN 24 /* "2026-11-25T10:20:30.123Z" */

/* -- Helpers ----------------------------------------------------------------- */

struct fixture {
    char dir[64];
    char error_path[128];
    char access_path[128];
    char other_path[128];
};

static int setup_logs(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/luahost-test-log-XXXXXX");
    if (mkdtemp(f->dir) == NULL) {
        free(f);
        return -1;
    }
    snprintf(f->error_path, sizeof(f->error_path), "%s/error.log", f->dir);
    snprintf(f->access_path, sizeof(f->access_path), "%s/access.log", f->dir);
    snprintf(f->other_path, sizeof(f->other_path), "%s/other.log", f->dir);
    *state = f;
    return 0;
}

static int teardown_logs(void **state)
{
    struct fixture *f = *state;
    lh_log_close(); /* harmless when already closed; needed after a failure */
    unlink(f->error_path);
    unlink(f->access_path);
    unlink(f->other_path);
    rmdir(f->dir);
    free(f);
    return 0;
}

/* The whole file as a NUL-terminated string ("" when missing); free it. */
static char *read_file(const char *path)
{
    FILE *fp = fopen(path, "rb");
    char *buf;
    size_t n = 0, cap = 4096;

    buf = malloc(cap);
    assert_non_null(buf);
    if (fp == NULL) {
        buf[0] = '\0';
        return buf;
    }
    for (;;) {
        if (cap - n < 2048) {
            cap *= 2;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
        size_t got = fread(buf + n, 1, cap - n - 1, fp);
        if (got == 0)
            break;
        n += got;
    }
    fclose(fp);
    buf[n] = '\0';
    return buf;
}

static size_t count_char(const char *s, char c)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == c;
    return n;
}

/* Asserts that line starts with an ISO 8601 UTC timestamp with milliseconds. */
static void expect_stamp(const char *line)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:dd.dddZ";
    for (size_t i = 0; i < STAMP_LEN; i++) {
        int ok = shape[i] == 'd' ? isdigit((unsigned char)line[i]) : line[i] == shape[i];
        if (!ok)
            fail_msg("no timestamp at the start of '%.40s'", line);
    }
}

static void open_ok(const char *error_path, const char *access_path, enum lh_log_level level)
{
    const char *err = NULL;
    enum lh_status st = lh_log_open(error_path, access_path, level, &err);
    if (st != LH_OK)
        fail_msg("lh_log_open(%s, %s): %s (%s)", error_path, access_path, lh_status_str(st),
                 err ? err : "no message");
}

static struct lh_access_entry entry(const char *path)
{
    return (struct lh_access_entry){
        .request_id = "req-7",
        .client = "10.0.0.1",
        .method = "GET",
        .path = path,
        .status = 200,
        .bytes = 1234,
        .duration_ms = 1.5,
    };
}

/* -- Levels -------------------------------------------------------------------- */

static void test_lh_log_level_parse_round_trip(void **state)
{
    static const enum lh_log_level levels[] = {LH_LOG_DEBUG, LH_LOG_INFO, LH_LOG_WARN,
                                               LH_LOG_ERROR};
    static const char *const names[] = {"debug", "info", "warn", "error"};
    (void)state;

    for (size_t i = 0; i < 4; i++) {
        enum lh_log_level out = (enum lh_log_level)-1;
        assert_string_equal(lh_log_level_name(levels[i]), names[i]);
        assert_int_equal(lh_log_level_parse(names[i], &out), LH_OK);
        assert_int_equal(out, levels[i]);
        assert_int_equal(lh_log_level_parse(lh_log_level_name(levels[i]), &out), LH_OK);
        assert_int_equal(out, levels[i]);
    }
}

static void test_lh_log_level_parse_bad_name(void **state)
{
    static const char *const bad[] = {"", "INFO", "Warn", "warning", "verbose", "err",
                                      "info ", "debugx"};
    (void)state;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        enum lh_log_level out = LH_LOG_ERROR;
        if (lh_log_level_parse(bad[i], &out) != LH_ERR_INVALID)
            fail_msg("'%s' parsed as a level", bad[i]);
        assert_int_equal(out, LH_LOG_ERROR); /* untouched */
    }
}

/* -- Error log ----------------------------------------------------------------- */

static void test_lh_log_writes_error_line(void **state)
{
    struct fixture *f = *state;

    open_ok(f->error_path, f->access_path, LH_LOG_INFO);
    lh_log(LH_LOG_WARN, "req-42", "disk %s at %d%%", "full", 99);
    lh_log_close();

    char *text = read_file(f->error_path);
    assert_int_equal(count_char(text, '\n'), 1);
    expect_stamp(text);
    assert_string_equal(text + STAMP_LEN, " [warn] req-42: disk full at 99%\n");
    free(text);
}

static void test_lh_log_without_request_id(void **state)
{
    struct fixture *f = *state;

    open_ok(f->error_path, f->access_path, LH_LOG_DEBUG);
    lh_log(LH_LOG_ERROR, NULL, "listening on %s", "127.0.0.1:8080");
    lh_log_close();

    char *text = read_file(f->error_path);
    expect_stamp(text);
    assert_string_equal(text + STAMP_LEN, " [error] listening on 127.0.0.1:8080\n");
    free(text);
}

static void test_lh_log_level_filtering(void **state)
{
    struct fixture *f = *state;

    open_ok(f->error_path, f->access_path, LH_LOG_INFO);
    assert_false(lh_log_enabled(LH_LOG_DEBUG));
    assert_true(lh_log_enabled(LH_LOG_INFO));
    assert_true(lh_log_enabled(LH_LOG_ERROR));
    lh_log(LH_LOG_DEBUG, "r1", "dropped debug");
    lh_log(LH_LOG_INFO, "r2", "kept info");
    lh_log(LH_LOG_WARN, "r3", "kept warn");
    lh_log(LH_LOG_ERROR, "r4", "kept error");
    lh_log_close();

    char *text = read_file(f->error_path);
    assert_null(strstr(text, "dropped debug"));
    assert_non_null(strstr(text, "[info] r2: kept info\n"));
    assert_non_null(strstr(text, "[warn] r3: kept warn\n"));
    assert_non_null(strstr(text, "[error] r4: kept error\n"));
    assert_int_equal(count_char(text, '\n'), 3);
    free(text);

    /* At error, warnings go too. */
    open_ok(f->other_path, f->access_path, LH_LOG_ERROR);
    assert_false(lh_log_enabled(LH_LOG_WARN));
    lh_log(LH_LOG_WARN, NULL, "dropped warn");
    lh_log(LH_LOG_ERROR, NULL, "kept error");
    lh_log_close();
    text = read_file(f->other_path);
    assert_null(strstr(text, "dropped warn"));
    assert_non_null(strstr(text, "[error] kept error\n"));
    free(text);
}

static void test_lh_log_open_appends_to_existing_file(void **state)
{
    struct fixture *f = *state;

    open_ok(f->error_path, f->access_path, LH_LOG_INFO);
    lh_log(LH_LOG_INFO, NULL, "first run");
    struct lh_access_entry e = entry("/one");
    lh_log_access(&e);
    lh_log_close();
    open_ok(f->error_path, f->access_path, LH_LOG_INFO);
    lh_log(LH_LOG_INFO, NULL, "second run");
    e = entry("/two");
    lh_log_access(&e);
    lh_log_close();

    char *text = read_file(f->error_path);
    char *first = strstr(text, "first run\n"), *second = strstr(text, "second run\n");
    assert_non_null(first);
    assert_non_null(second);
    assert_true(first < second);
    free(text);
    text = read_file(f->access_path);
    assert_int_equal(count_char(text, '\n'), 2);
    assert_true(strstr(text, "\"GET /one\"") < strstr(text, "\"GET /two\""));
    free(text);
}

/* A full disk under the access log: the error log says so, with the lines lost. */
static void test_lh_log_reports_access_lines_it_cannot_write(void **state)
{
    struct fixture *f = *state;

    open_ok(f->error_path, "/dev/full", LH_LOG_INFO);
    for (int i = 0; i < 3; i++) {
        struct lh_access_entry e = entry("/lost");
        lh_log_access(&e);
    }
    lh_log_flush();
    struct lh_access_entry e = entry("/lost");
    lh_log_access(&e);
    lh_log_flush(); /* within the minute: counted, not reported again */
    lh_log_close();

    char *text = read_file(f->error_path);
    const char *line = strstr(text, "[error] cannot write the access log /dev/full: ");
    if (line == NULL || strstr(line, "; 3 line(s) lost so far\n") == NULL)
        fail_msg("no report of the lost lines in:\n%s", text);
    assert_null(strstr(strchr(line, '\n'), "cannot write the access log"));
    free(text);
}

static void test_lh_log_open_missing_directory_fails(void **state)
{
    struct fixture *f = *state;
    const char *err = NULL;
    char missing[160];

    snprintf(missing, sizeof(missing), "%s/no-such-dir/error.log", f->dir);
    open_ok(f->error_path, f->access_path, LH_LOG_INFO);

    assert_int_equal(lh_log_open(missing, f->other_path, LH_LOG_DEBUG, &err), LH_ERR_IO);
    assert_non_null(err);
    assert_true(err[0] != '\0');
    err = NULL;
    assert_int_equal(lh_log_open(f->other_path, missing, LH_LOG_DEBUG, &err), LH_ERR_IO);
    assert_non_null(err);
    assert_true(err[0] != '\0');

    /* The previous logs stay in use, at the previous level. */
    lh_log(LH_LOG_DEBUG, NULL, "still dropped");
    lh_log(LH_LOG_WARN, NULL, "still here");
    struct lh_access_entry e = entry("/still");
    lh_log_access(&e);
    lh_log_close();

    char *text = read_file(f->error_path);
    assert_non_null(strstr(text, "[warn] still here\n"));
    assert_null(strstr(text, "still dropped"));
    free(text);
    text = read_file(f->access_path);
    assert_non_null(strstr(text, "\"GET /still\""));
    free(text);
    text = read_file(f->other_path);
    assert_string_equal(text, "");
    free(text);
    assert_int_equal(access(missing, F_OK), -1);
}

/* After a rotation moved both files, reopen starts new ones at the paths:
 * lines before it stay in the moved files (buffered ones included), later
 * ones go to the new. Each path that cannot be opened names itself in err
 * and leaves that log where it was. */
static void test_lh_log_reopen_follows_rotation(void **state)
{
    struct fixture *f = *state;
    const char *err = NULL;
    char moved_error[160], moved_access[160];

    snprintf(moved_error, sizeof(moved_error), "%s.1", f->error_path);
    snprintf(moved_access, sizeof(moved_access), "%s.1", f->access_path);
    open_ok(f->error_path, f->access_path, LH_LOG_INFO);
    lh_log(LH_LOG_INFO, NULL, "before");
    struct lh_access_entry e = entry("/before");
    lh_log_access(&e);
    assert_int_equal(rename(f->error_path, moved_error), 0);
    assert_int_equal(rename(f->access_path, moved_access), 0);
    assert_int_equal(lh_log_reopen(&err), LH_OK);
    lh_log(LH_LOG_INFO, NULL, "after");
    e = entry("/after");
    lh_log_access(&e);

    /* The directory gone, the next reopen fails and the logs stay put. */
    assert_int_equal(rename(f->error_path, f->other_path), 0);
    char gone[160];
    snprintf(gone, sizeof(gone), "%s.gone", f->dir);
    assert_int_equal(rename(f->dir, gone), 0);
    assert_int_equal(lh_log_reopen(&err), LH_ERR_IO);
    assert_non_null(strstr(err, "cannot open the error log "));
    assert_non_null(strstr(err, "No such file or directory"));
    assert_non_null(strstr(err, "; cannot open the access log ")); /* both are named */
    lh_log(LH_LOG_INFO, NULL, "still after");
    assert_int_equal(rename(gone, f->dir), 0);
    lh_log_close();

    char *text = read_file(moved_error);
    assert_non_null(strstr(text, "] before\n"));
    assert_null(strstr(text, "after"));
    free(text);
    text = read_file(moved_access);
    assert_non_null(strstr(text, "\"GET /before\""));
    assert_null(strstr(text, "/after"));
    free(text);
    text = read_file(f->other_path); /* the reopened error log, moved aside */
    assert_non_null(strstr(text, "] after\n"));
    assert_non_null(strstr(text, "] still after\n"));
    free(text);
    text = read_file(f->access_path);
    assert_non_null(strstr(text, "\"GET /after\""));
    free(text);
    unlink(moved_error);
    unlink(moved_access);
}

/* -- Access log ----------------------------------------------------------------- */

static void test_lh_log_access_writes_line(void **state)
{
    struct fixture *f = *state;
    struct lh_access_entry e = entry("/users/42");

    open_ok(f->error_path, f->access_path, LH_LOG_INFO);
    lh_log_access(&e);
    lh_log_close();

    char *text = read_file(f->access_path);
    assert_int_equal(count_char(text, '\n'), 1);
    expect_stamp(text);
    assert_string_equal(text + STAMP_LEN, " req-7 10.0.0.1 \"GET /users/42\" 200 1234 1.500ms\n");
    free(text);
    /* Access lines do not go to the error log. */
    text = read_file(f->error_path);
    assert_string_equal(text, "");
    free(text);
}

static void test_lh_log_access_escapes_path(void **state)
{
    struct fixture *f = *state;
    struct lh_access_entry e = entry("/a\"b\\c\nd");

    open_ok(f->error_path, f->access_path, LH_LOG_INFO);
    lh_log_access(&e);
    lh_log_close();

    char *text = read_file(f->access_path);
    assert_int_equal(count_char(text, '\n'), 1); /* one entry, one line */
    assert_true(text[strlen(text) - 1] == '\n');
    assert_non_null(strstr(text, " \"GET /a\\\"b\\\\c\\x0ad\" 200 1234 "));
    free(text);
}

static void test_lh_log_access_cannot_forge_lines(void **state)
{
    struct fixture *f = *state;
    struct lh_access_entry e =
        entry("/x\r\n2026-01-01T00:00:00.000Z forged 1.2.3.4 \"GET /admin\" 200 0 0.000ms");

    e.method = "GE\tT\x7f";
    open_ok(f->error_path, f->access_path, LH_LOG_INFO);
    lh_log_access(&e);
    lh_log_close();

    char *text = read_file(f->access_path);
    assert_int_equal(count_char(text, '\n'), 1);
    assert_null(strchr(text, '\r'));
    assert_null(strchr(text, '\t'));
    assert_null(strchr(text, '\x7f'));
    assert_non_null(strstr(text, "\"GE\\x09T\\x7f /x\\x0d\\x0a2026-01-01T"));
    assert_non_null(strstr(text, "\\\"GET /admin\\\""));
    free(text);
}

static void test_lh_log_escape_bounds_and_bytes(void **state)
{
    char out[16];
    (void)state;

    /* A NUL inside the value is escaped too: the length says where it ends. */
    size_t n = lh_log_escape(out, sizeof(out), "a\0\"\x1b", 4);
    assert_int_equal(n, 1 + 4 + 2 + 4);
    assert_memory_equal(out, "a\\x00\\\"\\x1b", n);
    /* Past ASCII too: a C1 control (8-bit CSI), a line separator (U+2028). */
    n = lh_log_escape(out, sizeof(out), "\xc2\x9b\xe2", 3);
    assert_int_equal(n, 12);
    assert_memory_equal(out, "\\xc2\\x9b\\xe2", n);
    /* Never past size - 1, and never half an escape. */
    n = lh_log_escape(out, 8, "\n\n\n", 3);
    assert_int_equal(n, 4);
    assert_memory_equal(out, "\\x0a", 4);
    assert_int_equal(lh_log_escape(out, 4, "abc", 3), 0);
}

static void test_lh_log_access_off_writes_nothing(void **state)
{
    struct fixture *f = *state;
    struct lh_access_entry e = entry("/off");
    int saved, fd;

    /* Catch anything written to stdout, "-"'s destination, meanwhile. */
    fflush(stdout);
    saved = dup(STDOUT_FILENO);
    assert_true(saved >= 0);
    fd = open(f->other_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(dup2(fd, STDOUT_FILENO), STDOUT_FILENO);
    close(fd);

    const char *err = NULL;
    enum lh_status st = lh_log_open(f->error_path, "off", LH_LOG_DEBUG, &err);
    lh_log_access(&e);
    lh_log_flush();
    lh_log_close();

    fflush(stdout);
    dup2(saved, STDOUT_FILENO);
    close(saved);

    assert_int_equal(st, LH_OK);
    char *text = read_file(f->other_path);
    assert_string_equal(text, ""); /* nothing on stdout */
    free(text);
    text = read_file(f->error_path);
    assert_string_equal(text, ""); /* nor in the error log */
    free(text);
    assert_int_equal(access(f->access_path, F_OK), -1);
    assert_int_equal(access("off", F_OK), -1); /* no file named "off" either */
}

static void test_lh_log_open_off_stops_previous_access_log(void **state)
{
    struct fixture *f = *state;
    struct lh_access_entry e = entry("/before");

    open_ok(f->error_path, f->access_path, LH_LOG_INFO);
    lh_log_access(&e);
    open_ok(f->error_path, "off", LH_LOG_INFO); /* reopen: flushes, then logs nothing */
    e = entry("/after");
    lh_log_access(&e);
    lh_log_close();

    char *text = read_file(f->access_path);
    assert_non_null(strstr(text, "\"GET /before\""));
    assert_null(strstr(text, "/after"));
    assert_int_equal(count_char(text, '\n'), 1);
    free(text);
}

static void test_lh_log_flush_writes_buffered_lines(void **state)
{
    struct fixture *f = *state;
    struct lh_access_entry e = entry("/flushed");

    open_ok(f->error_path, f->access_path, LH_LOG_INFO);
    lh_log_access(&e);
    lh_log_flush();
    /* Read while the log is still open. */
    char *text = read_file(f->access_path);
    assert_non_null(strstr(text, "\"GET /flushed\" 200 1234 1.500ms\n"));
    free(text);
    lh_log_close();

    text = read_file(f->access_path);
    assert_int_equal(count_char(text, '\n'), 1); /* close does not write it twice */
    free(text);
}

static void test_lh_log_access_many_lines_all_written(void **state)
{
    enum { N = 3000 }; /* far more than the 64 KiB buffer holds */
    struct fixture *f = *state;
    char path[64], want[96];

    open_ok(f->error_path, f->access_path, LH_LOG_INFO);
    for (int i = 0; i < N; i++) {
        snprintf(path, sizeof(path), "/item/%06d/with/a/longer/path", i);
        struct lh_access_entry e = entry(path);
        e.bytes = (size_t)i;
        lh_log_access(&e);
    }
    lh_log_close();

    char *text = read_file(f->access_path);
    assert_int_equal(count_char(text, '\n'), N);
    const char *line = text;
    for (int i = 0; i < N; i++) {
        const char *nl = strchr(line, '\n');
        assert_non_null(nl);
        expect_stamp(line);
        snprintf(want, sizeof(want), "\"GET /item/%06d/with/a/longer/path\" 200 %d 1.500ms\n",
                 i, i);
        if (strncmp(nl + 1 - strlen(want), want, strlen(want)) != 0)
            fail_msg("line %d is '%.*s'", i, (int)(nl - line), line);
        line = nl + 1;
    }
    free(text);
}

struct writer {
    int id;
    pthread_t thread;
};

static void *writer_main(void *arg)
{
    struct writer *w = arg;
    char path[64];
    for (int i = 0; i < 500; i++) {
        snprintf(path, sizeof(path), "/w%d/%d", w->id, i);
        struct lh_access_entry e = entry(path);
        lh_log_access(&e);
        if (i % 100 == 0)
            lh_log(LH_LOG_WARN, "t", "writer %d at %d", w->id, i);
    }
    return NULL;
}

static void test_lh_log_access_from_threads_whole_lines(void **state)
{
    enum { THREADS = 4 };
    struct fixture *f = *state;
    struct writer w[THREADS];

    open_ok(f->error_path, f->access_path, LH_LOG_INFO);
    for (int i = 0; i < THREADS; i++) {
        w[i].id = i;
        assert_int_equal(pthread_create(&w[i].thread, NULL, writer_main, &w[i]), 0);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(w[i].thread, NULL);
    lh_log_close();

    char *text = read_file(f->access_path);
    assert_int_equal(count_char(text, '\n'), THREADS * 500);
    int seen[THREADS] = {0};
    for (char *line = text; *line; line = strchr(line, '\n') + 1) {
        int id = -1, i = -1;
        expect_stamp(line);
        assert_int_equal(sscanf(line + STAMP_LEN, " req-7 10.0.0.1 \"GET /w%d/%d\"", &id, &i), 2);
        assert_true(id >= 0 && id < THREADS);
        assert_int_equal(i, seen[id]); /* each thread's lines in its order */
        seen[id]++;
    }
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(seen[i], 500);
    free(text);

    text = read_file(f->error_path);
    assert_int_equal(count_char(text, '\n'), THREADS * 5);
    free(text);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup_logs, teardown_logs)
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lh_log_level_parse_round_trip),
        cmocka_unit_test(test_lh_log_level_parse_bad_name),
        cmocka_unit_test(test_lh_log_escape_bounds_and_bytes),
        T(test_lh_log_writes_error_line),
        T(test_lh_log_without_request_id),
        T(test_lh_log_level_filtering),
        T(test_lh_log_open_appends_to_existing_file),
        T(test_lh_log_reports_access_lines_it_cannot_write),
        T(test_lh_log_open_missing_directory_fails),
        T(test_lh_log_reopen_follows_rotation),
        T(test_lh_log_access_writes_line),
        T(test_lh_log_access_escapes_path),
        T(test_lh_log_access_cannot_forge_lines),
        T(test_lh_log_access_off_writes_nothing),
        T(test_lh_log_open_off_stops_previous_access_log),
        T(test_lh_log_flush_writes_buffered_lines),
        T(test_lh_log_access_many_lines_all_written),
        T(test_lh_log_access_from_threads_whole_lines),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
