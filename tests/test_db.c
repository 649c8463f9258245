/* tests/test_db.c: cmocka tests for include/luahost/db.h.
 *
 * Against the real MariaDB of scripts/services.sh: LUAHOST_DB_URL, by default
 * mysql://luahost:luahost-dev@127.0.0.1:13306/luahost. Every test works in
 * the sibling database "<database>_test" (services.sh creates it and grants
 * the user everything on it), in tables named after the pid and a counter,
 * dropped at the end. A server that does not answer fails the tests with the
 * command that starts it. A few tests sleep (statement timeout, leak warning,
 * idle validation, lifetime): the pool reads the clock itself. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <mysql.h>

#include "luahost/db.h"
#include "luahost/log.h"
#include "luahost/url.h"

#include "db_support.h"

/* -- Helpers -------------------------------------------------------------------- */

/* Runs sql, expecting st, with err containing part. */
static void run_fails(struct lh_db_conn *c, const char *sql, const struct lh_db_value *params,
                      size_t n, enum lh_status want, const char *part)
{
    char err[600] = "";
    struct lh_db_result *r = (struct lh_db_result *)&err; /* must be reset to NULL */
    enum lh_status st = lh_db_run(c, sql, strlen(sql), params, n, &r, err, sizeof(err));
    if (st != want)
        fail_msg("'%s': expected %s, got %s (%s)", sql, lh_status_str(want), lh_status_str(st),
                 err);
    assert_null(r);
    if (part != NULL && strstr(err, part) == NULL)
        fail_msg("'%s': expected the error to contain \"%s\", got \"%s\"", sql, part, err);
}

/* A table name no other run or test uses. */
static void table_name(char *out, size_t size, const char *what)
{
    static int counter;
    snprintf(out, size, "t_db_%s_%ld_%d", what, (long)getpid(), ++counter);
}

static struct lh_db_value int_value(long long i)
{
    struct lh_db_value v = {.type = LH_DB_INT, .i = i};
    return v;
}

static struct lh_db_value text_value(const char *s, size_t len)
{
    struct lh_db_value v = {.type = LH_DB_TEXT, .s = s, .len = len};
    return v;
}

static void sleep_for(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0)
        continue;
}

static void assert_text(const struct lh_db_value *v, const char *want, size_t len)
{
    if (v->type != LH_DB_TEXT)
        fail_msg("expected text, got type %d", (int)v->type);
    assert_int_equal(v->len, len);
    assert_memory_equal(v->s, want, len);
    assert_int_equal(v->s[len], '\0');
}

/* Reads a whole small file into a NUL-terminated static buffer. */
static const char *slurp(const char *path)
{
    static char buf[64 * 1024];
    FILE *f = fopen(path, "r");
    size_t n = 0;
    if (f != NULL) {
        n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
    }
    buf[n] = '\0';
    return buf;
}

/* Sends the error log to a new temporary file; its path in path. */
static void log_to_temp(char *path, size_t size)
{
    const char *err = NULL;
    snprintf(path, size, "/tmp/luahost-test-db-%ld-XXXXXX", (long)getpid());
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    if (lh_log_open(path, "off", LH_LOG_INFO, &err) != LH_OK)
        fail_msg("lh_log_open: %s", err);
}

/* -- Lifecycle ----------------------------------------------------------------- */

static void test_lh_db_free_accepts_null(void **state)
{
    (void)state;
    lh_db_free(NULL);
    lh_db_result_free(NULL);
}

static void test_lh_db_new_fails_on_closed_port(void **state)
{
    const struct target *t = need_db();
    struct lh_db_options o;
    char err[600] = "", want[300];
    (void)state;

    base_options(t, &o);
    o.host = "127.0.0.1";
    o.port = 1;
    o.connect_attempts = 2;
    o.connect_retry_delay = 0.05;
    struct lh_db *db = lh_db_new(&o, err, sizeof(err));
    assert_null(db);
    int n = snprintf(want, sizeof(want),
                     "cannot connect to mysql at 127.0.0.1:1 as %s/%s after 2 attempts: ",
                     t->url.user, t->database);
    assert_true(n > 0 && (size_t)n < sizeof(want));
    if (strncmp(err, want, strlen(want)) != 0 || strlen(err) == strlen(want))
        fail_msg("expected \"%s<server error>\", got \"%s\"", want, err);
    if (t->url.password[0] && strstr(err, t->url.password) != NULL)
        fail_msg("the error contains the password: \"%s\"", err);
}

/* A server that takes the TCP connection but never greets (one starting
 * up, or stalled) costs a connect no more than acquire_timeout, not the
 * 5 s cap: a request's wait for a connection includes connecting one. */
static void test_lh_db_new_gives_up_on_silent_server_within_acquire_timeout(void **state)
{
    const struct target *t = need_db();
    struct lh_db_options o;
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(addr);
    char err[600] = "";
    (void)state;

    /* Listening without ever accepting: the kernel completes the handshake. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(0, bind(fd, (struct sockaddr *)&addr, sizeof(addr)));
    assert_int_equal(0, listen(fd, 8));
    assert_int_equal(0, getsockname(fd, (struct sockaddr *)&addr, &len));

    base_options(t, &o);
    o.host = "127.0.0.1";
    o.port = ntohs(addr.sin_port);
    o.acquire_timeout = 1;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    struct lh_db *db = lh_db_new(&o, err, sizeof(err));
    clock_gettime(CLOCK_MONOTONIC, &t1);
    close(fd);
    assert_null(db);
    double waited = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    if (waited < 0.9 || waited > 3.0)
        fail_msg("gave up after %.2f s, want about 1 s (acquire_timeout): %s", waited, err);
    assert_non_null(strstr(err, "cannot connect to mysql at 127.0.0.1:"));
}

static void test_lh_db_new_rejects_bad_options(void **state)
{
    const struct target *t = need_db();
    struct lh_db_options o;
    char err[300] = "";
    (void)state;

    base_options(t, &o);
    o.host = NULL;
    assert_null(lh_db_new(&o, err, sizeof(err)));
    assert_non_null(strstr(err, "host"));
    base_options(t, &o);
    o.acquire_timeout = -1;
    assert_null(lh_db_new(&o, err, sizeof(err)));
    assert_non_null(strstr(err, "acquire_timeout"));
    assert_null(lh_db_new(NULL, err, sizeof(err)));
}

static void test_lh_db_new_reports_bad_password(void **state)
{
    const struct target *t = need_db();
    struct lh_db_options o;
    char err[600] = "";
    (void)state;

    base_options(t, &o);
    o.password = "wrong-secret-password";
    assert_null(lh_db_new(&o, err, sizeof(err)));
    assert_non_null(strstr(err, "after 1 attempt: "));
    assert_non_null(strstr(err, "Access denied"));
    assert_null(strstr(err, "wrong-secret-password"));
}

static void test_lh_db_stats_reports_pool_state(void **state)
{
    const struct target *t = need_db();
    struct lh_db_options o;
    struct lh_db_stats s;
    (void)state;

    base_options(t, &o);
    o.size = 3;
    struct lh_db *db = new_pool(&o);
    lh_db_stats(db, &s);
    assert_string_equal(s.name, "test");
    assert_int_equal(s.size, 3);
    assert_int_equal(s.open, 1); /* the first connection opens at start, the others on demand */
    assert_int_equal(s.idle, 1);
    assert_int_equal(s.active, 0);
    assert_int_equal(s.served, 0);

    struct lh_db_conn *a = acquire(db, "req-1", "/a");
    struct lh_db_conn *b = acquire(db, "req-2", "/b");
    assert_ptr_not_equal(a, b);
    lh_db_stats(db, &s);
    assert_int_equal(s.active, 2);
    assert_int_equal(s.open, 2);
    assert_int_equal(s.idle, 0);
    assert_int_equal(s.served, 2);
    assert_int_equal(s.waits, 0);

    lh_db_release(db, a);
    lh_db_release(db, b);
    lh_db_stats(db, &s);
    assert_int_equal(s.active, 0);
    assert_int_equal(s.idle, 2);
    assert_int_equal(s.open, 2);
    assert_int_equal(s.errors, 0);
    assert_int_equal(s.timeouts, 0);
    assert_int_equal(s.long_running, 0);
    assert_int_equal(s.slow, 0);

    /* A quiet pool reuses its warm connection rather than opening another. */
    a = acquire(db, NULL, NULL);
    lh_db_release(db, a);
    lh_db_stats(db, &s);
    assert_int_equal(s.open, 2);
    assert_int_equal(s.served, 3);
    lh_db_free(db);
}

static void test_lh_db_ping_answers(void **state)
{
    const struct target *t = need_db();
    struct lh_db_options o;
    struct lh_db_stats s;
    char err[300] = "";
    (void)state;

    base_options(t, &o);
    struct lh_db *db = new_pool(&o);
    assert_int_equal(lh_db_ping(db, err, sizeof(err)), LH_OK);
    lh_db_stats(db, &s);
    assert_int_equal(s.active, 0);
    assert_int_equal(s.served, 0); /* the check has a connection of its own */
    assert_int_equal(s.errors, 0);
    lh_db_free(db);
}

/* A pool busy with requests is not a sick database: the health check does
 * not wait for a pooled connection. */
static void test_lh_db_ping_answers_while_pool_is_busy(void **state)
{
    const struct target *t = need_db();
    struct lh_db_options o;
    struct lh_db_stats s;
    char err[300] = "";
    (void)state;

    base_options(t, &o);
    o.size = 1;
    o.acquire_timeout = 0.2;
    struct lh_db *db = new_pool(&o);
    struct lh_db_conn *busy = acquire(db, "r-busy", "GET /busy");
    enum lh_status st = lh_db_ping(db, err, sizeof(err));
    if (st != LH_OK)
        fail_msg("ping with the pool busy: %s (%s)", lh_status_str(st), err);
    lh_db_stats(db, &s);
    assert_int_equal(s.timeouts, 0);
    lh_db_release(db, busy);
    lh_db_free(db);
}

/* -- Statements ---------------------------------------------------------------- */

static void test_lh_db_run_round_trips_types(void **state)
{
    const struct target *t = need_db();
    struct lh_db_options o;
    char table[96], sql[512];
    static const char emoji[] = "h\xc3\xa9llo \xf0\x9f\x8e\x89 w\xc3\xb6rld";
    static const char blob[] = {'a', '\0', 'b', '\0', '\xff', '\xfe', '\0'};
    static const char umax[] = "18446744073709551615";
    (void)state;

    base_options(t, &o);
    struct lh_db *db = new_pool(&o);
    struct lh_db_conn *c = acquire(db, "req-types", "/types");
    table_name(table, sizeof(table), "types");
    snprintf(sql, sizeof(sql),
             "CREATE TABLE %s (i INT, big BIGINT UNSIGNED, small_u BIGINT UNSIGNED, neg BIGINT,"
             " d DOUBLE, dec_v DECIMAL(10,2), s VARCHAR(64), b BLOB, dt DATETIME, n INT, y YEAR)"
             " CHARACTER SET utf8mb4",
             table);
    exec(c, sql);

    struct lh_db_value params[] = {
        int_value(-42),
        text_value(umax, strlen(umax)),
        int_value(7),
        int_value(LLONG_MIN),
        {.type = LH_DB_DOUBLE, .d = 3.141592653589793},
        text_value("12345678.91", 11),
        text_value(emoji, strlen(emoji)),
        text_value(blob, sizeof(blob)),
        text_value("2026-11-25 10:20:30", 19),
        {.type = LH_DB_NULL},
        int_value(2026),
    };
    snprintf(sql, sizeof(sql), "INSERT INTO %s VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", table);
    lh_db_result_free(run(c, sql, params, 11));

    snprintf(sql, sizeof(sql), "SELECT i, big, small_u, neg, d, dec_v, s, b, dt, n, y FROM %s",
             table);
    struct lh_db_result *r = run(c, sql, NULL, 0);
    assert_int_equal(lh_db_result_rows(r), 1);
    assert_int_equal(lh_db_result_columns(r), 11);
    assert_string_equal(lh_db_result_name(r, 0), "i");
    assert_string_equal(lh_db_result_name(r, 5), "dec_v");
    assert_string_equal(lh_db_result_name(r, 9), "n");

    const struct lh_db_value *v = lh_db_result_value(r, 0, 0);
    assert_int_equal(v->type, LH_DB_INT);
    assert_true(v->i == -42);
    v = lh_db_result_value(r, 0, 1); /* above LLONG_MAX: a double */
    assert_int_equal(v->type, LH_DB_DOUBLE);
    assert_true(v->d == 18446744073709551615.0);
    v = lh_db_result_value(r, 0, 2);
    assert_int_equal(v->type, LH_DB_INT);
    assert_true(v->i == 7);
    v = lh_db_result_value(r, 0, 3);
    assert_int_equal(v->type, LH_DB_INT);
    assert_true(v->i == LLONG_MIN);
    v = lh_db_result_value(r, 0, 4);
    assert_int_equal(v->type, LH_DB_DOUBLE);
    assert_true(v->d == 3.141592653589793);
    v = lh_db_result_value(r, 0, 5);
    assert_int_equal(v->type, LH_DB_DOUBLE);
    assert_true(v->d == 12345678.91);
    assert_text(lh_db_result_value(r, 0, 6), emoji, strlen(emoji));
    assert_text(lh_db_result_value(r, 0, 7), blob, sizeof(blob));
    assert_text(lh_db_result_value(r, 0, 8), "2026-11-25 10:20:30", 19);
    assert_int_equal(lh_db_result_value(r, 0, 9)->type, LH_DB_NULL);
    v = lh_db_result_value(r, 0, 10);
    assert_int_equal(v->type, LH_DB_INT);
    assert_true(v->i == 2026);
    lh_db_result_free(r);

    /* Expressions keep their types too: SQL NULL, a float, a date, a time. */
    r = run(c, "SELECT NULL AS nothing, CAST(1.5 AS FLOAT) AS f, DATE('2026-01-02') AS day,"
               " TIME('-12:34:56') AS tm, CAST(-3 AS DECIMAL(5,1)) AS dec_neg, '' AS empty",
            NULL, 0);
    assert_int_equal(lh_db_result_value(r, 0, 0)->type, LH_DB_NULL);
    assert_int_equal(lh_db_result_value(r, 0, 1)->type, LH_DB_DOUBLE);
    assert_true(lh_db_result_value(r, 0, 1)->d == 1.5);
    assert_text(lh_db_result_value(r, 0, 2), "2026-01-02", 10);
    assert_text(lh_db_result_value(r, 0, 3), "-12:34:56", 9);
    assert_int_equal(lh_db_result_value(r, 0, 4)->type, LH_DB_DOUBLE);
    assert_true(lh_db_result_value(r, 0, 4)->d == -3.0);
    assert_text(lh_db_result_value(r, 0, 5), "", 0);
    lh_db_result_free(r);

    snprintf(sql, sizeof(sql), "DROP TABLE %s", table);
    exec(c, sql);
    lh_db_release(db, c);
    lh_db_free(db);
}

static void test_lh_db_run_reads_long_values(void **state)
{
    const struct target *t = need_db();
    struct lh_db_options o;
    char table[96], sql[256];
    static const size_t lens[] = {3, 0, 5000, 3 * 1024 * 1024 + 7, 100};
    (void)state;

    base_options(t, &o);
    struct lh_db *db = new_pool(&o);
    struct lh_db_conn *c = acquire(db, NULL, NULL);
    table_name(table, sizeof(table), "long");
    snprintf(sql, sizeof(sql), "CREATE TABLE %s (id INT PRIMARY KEY, b LONGBLOB)", table);
    exec(c, sql);
    size_t max = 3 * 1024 * 1024 + 7;
    char *data = malloc(max);
    assert_non_null(data);
    for (size_t i = 0; i < max; i++)
        data[i] = (char)(i * 7 + i / 251);
    snprintf(sql, sizeof(sql), "INSERT INTO %s VALUES (?, ?)", table);
    for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++) {
        struct lh_db_value p[] = {int_value((long long)k), text_value(data, lens[k])};
        lh_db_result_free(run(c, sql, p, 2));
    }
    snprintf(sql, sizeof(sql), "SELECT id, b FROM %s ORDER BY id", table);
    struct lh_db_result *r = run(c, sql, NULL, 0);
    assert_int_equal(lh_db_result_rows(r), sizeof(lens) / sizeof(lens[0]));
    for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++)
        assert_text(lh_db_result_value(r, k, 1), data, lens[k]);
    lh_db_result_free(r);
    free(data);
    snprintf(sql, sizeof(sql), "DROP TABLE %s", table);
    exec(c, sql);
    lh_db_release(db, c);
    lh_db_free(db);
}

static void test_lh_db_run_binds_parameters_literally(void **state)
{
    const struct target *t = need_db();
    struct lh_db_options o;
    char table[96], sql[256];
    char evil[128];
    (void)state;

    base_options(t, &o);
    struct lh_db *db = new_pool(&o);
    struct lh_db_conn *c = acquire(db, NULL, NULL);
    table_name(table, sizeof(table), "inject");
    snprintf(evil, sizeof(evil), "x'); DROP TABLE %s; -- \\' \" ? %%s", table);
    snprintf(sql, sizeof(sql), "CREATE TABLE %s (id INT AUTO_INCREMENT PRIMARY KEY, s TEXT)",
             table);
    exec(c, sql);
    snprintf(sql, sizeof(sql), "INSERT INTO %s (s) VALUES (?)", table);
    struct lh_db_value p = text_value(evil, strlen(evil));
    lh_db_result_free(run(c, sql, &p, 1));

    snprintf(sql, sizeof(sql), "SELECT s FROM %s WHERE s = ?", table);
    struct lh_db_result *r = run(c, sql, &p, 1);
    assert_int_equal(lh_db_result_rows(r), 1);
    assert_text(lh_db_result_value(r, 0, 0), evil, strlen(evil));
    lh_db_result_free(r);
    snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM %s", table);
    assert_true(query_int(c, sql, NULL, 0) == 1);

    snprintf(sql, sizeof(sql), "DROP TABLE %s", table);
    exec(c, sql);
    lh_db_release(db, c);
    lh_db_free(db);
}

static void test_lh_db_run_rejects_param_count_mismatch(void **state)
{
    const struct target *t = need_db();
    struct lh_db_options o;
    struct lh_db_stats s;
    struct lh_db_value p = int_value(1);
    (void)state;

    base_options(t, &o);
    struct lh_db *db = new_pool(&o);
    struct lh_db_conn *c = acquire(db, NULL, NULL);
    run_fails(c, "SELECT ?, ?", &p, 1, LH_ERR_INVALID, "statement wants 2 parameters, got 1");
    run_fails(c, "SELECT 1", &p, 1, LH_ERR_INVALID, "statement wants 0 parameters, got 1");
    struct lh_db_value bad = {.type = LH_DB_TEXT, .s = NULL, .len = 3};
    run_fails(c, "SELECT ?", &bad, 1, LH_ERR_INVALID, "parameter 1");
    assert_true(query_int(c, "SELECT ?", &p, 1) == 1); /* still usable */
    lh_db_release(db, c);
    lh_db_stats(db, &s);
    assert_int_equal(s.errors, 3);
    lh_db_free(db);
}

static void test_lh_db_run_reports_syntax_error(void **state)
{
    const struct target *t = need_db();
    struct lh_db_options o;
    (void)state;

    base_options(t, &o);
    struct lh_db *db = new_pool(&o);
    struct lh_db_conn *c = acquire(db, NULL, NULL);
    run_fails(c, "SELEC 1", NULL, 0, LH_ERR_INVALID, "You have an error in your SQL syntax");
    run_fails(c, "SELECT * FROM no_such_table_here", NULL, 0, LH_ERR_INVALID, "doesn't exist");
    assert_true(query_int(c, "SELECT 2", NULL, 0) == 2);
    lh_db_release(db, c);
    lh_db_free(db);
}

static void test_lh_db_run_returns_first_result_of_call(void **state)
{
    const struct target *t = need_db();
    struct lh_db_options o;
    char proc[96], sql[256];
    (void)state;

    base_options(t, &o);
    struct lh_db *db = new_pool(&o);
    struct lh_db_conn *c = acquire(db, NULL, NULL);
    table_name(proc, sizeof(proc), "proc");
    snprintf(sql, sizeof(sql),
             "CREATE PROCEDURE %s(IN x INT) BEGIN SELECT x AS a; SELECT x + 1 AS b; END", proc);
    exec(c, sql);
    snprintf(sql, sizeof(sql), "CALL %s(?)", proc);
    struct lh_db_value p = int_value(41);
    assert_true(query_int(c, sql, &p, 1) == 41);
    assert_true(query_int(c, "SELECT 5", NULL, 0) == 5); /* the other results were drained */
    snprintf(sql, sizeof(sql), "DROP PROCEDURE %s", proc);
    exec(c, sql);
    lh_db_release(db, c);
    lh_db_free(db);
}

static void test_lh_db_run_reports_affected_rows_and_insert_id(void **state)
{
    const struct target *t = need_db();
    struct lh_db_options o;
    char table[96], sql[256];
    (void)state;

    base_options(t, &o);
    struct lh_db *db = new_pool(&o);
    struct lh_db_conn *c = acquire(db, NULL, NULL);
    table_name(table, sizeof(table), "affected");
    snprintf(sql, sizeof(sql), "CREATE TABLE %s (id INT AUTO_INCREMENT PRIMARY KEY, v INT)", table);
    exec(c, sql);

    snprintf(sql, sizeof(sql), "INSERT INTO %s (v) VALUES (?)", table);
    struct lh_db_value p = int_value(10);
    struct lh_db_result *r = run(c, sql, &p, 1);
    assert_int_equal(lh_db_result_affected(r), 1);
    assert_int_equal(lh_db_result_insert_id(r), 1);
    assert_int_equal(lh_db_result_columns(r), 0);
    assert_int_equal(lh_db_result_rows(r), 0);
    lh_db_result_free(r);

    snprintf(sql, sizeof(sql), "INSERT INTO %s (v) VALUES (20), (30), (40)", table);
    r = run(c, sql, NULL, 0);
    assert_int_equal(lh_db_result_affected(r), 3);
    assert_int_equal(lh_db_result_insert_id(r), 2); /* the first of the batch */
    lh_db_result_free(r);

    snprintf(sql, sizeof(sql), "UPDATE %s SET v = v + 1 WHERE v >= ?", table);
    p = int_value(20);
    r = run(c, sql, &p, 1);
    assert_int_equal(lh_db_result_affected(r), 3);
    lh_db_result_free(r);

    snprintf(sql, sizeof(sql), "DELETE FROM %s WHERE id = ?", table);
    p = int_value(99);
    r = run(c, sql, &p, 1);
    assert_int_equal(lh_db_result_affected(r), 0);
    lh_db_result_free(r);

    /* Another row's key: a conflict, which running again may get past. */
    snprintf(sql, sizeof(sql), "INSERT INTO %s (id, v) VALUES (1, 0)", table);
    run_fails(c, sql, NULL, 0, LH_ERR_CONFLICT, "Duplicate entry");

    snprintf(sql, sizeof(sql), "DROP TABLE %s", table);
    exec(c, sql);
    lh_db_release(db, c);
    lh_db_free(db);
}

static void test_lh_db_run_times_out_long_statement(void **state)
{
    const struct target *t = need_db();
    struct lh_db_options o;
    struct lh_db_stats s;
    (void)state;

    base_options(t, &o);
    o.statement_timeout = 1;
    o.slow_query = 30;
    struct lh_db *db = new_pool(&o);
    struct lh_db_conn *c = acquire(db, NULL, NULL);
    run_fails(c, "SELECT SLEEP(5)", NULL, 0, LH_ERR_TIMEOUT, NULL);
    assert_true(query_int(c, "SELECT 3", NULL, 0) == 3); /* the connection stays usable */
    lh_db_release(db, c);
    lh_db_stats(db, &s);
    assert_int_equal(s.errors, 1);
    assert_int_equal(s.open, 1);
    lh_db_free(db);
}

static void test_lh_db_run_logs_slow_statement_without_values(void **state)
{
    const struct target *t = need_db();
    struct lh_db_options o;
    struct lh_db_stats s;
    char path[128];
    (void)state;

    base_options(t, &o);
    o.slow_query = 0.1;
    struct lh_db *db = new_pool(&o);
    log_to_temp(path, sizeof(path));
    struct lh_db_conn *c = acquire(db, "req-slow-7", "/slow");
    struct lh_db_value p = text_value("hunter2-param-value", 19);
    struct lh_db_result *r = run(c, "SELECT SLEEP(0.3),\n ? AS v", &p, 1);
    lh_db_result_free(r);
    assert_true(query_int(c, "SELECT 4", NULL, 0) == 4);
    lh_db_release(db, c);
    lh_db_stats(db, &s);
    lh_db_free(db);
    lh_log_close();

    const char *text = slurp(path);
    unlink(path);
    assert_int_equal(s.slow, 1);
    if (strstr(text, "slow statement") == NULL || strstr(text, "req-slow-7") == NULL ||
        strstr(text, "SELECT SLEEP(0.3),  ? AS v") == NULL)
        fail_msg("expected a slow-statement warning with the request id and SQL, got:\n%s", text);
    if (strstr(text, "hunter2") != NULL || strstr(text, t->url.password) != NULL)
        fail_msg("a parameter value or the password reached the log:\n%s", text);
}

/* -- Pool ---------------------------------------------------------------------- */

static void test_lh_db_acquire_times_out_when_exhausted(void **state)
{
    const struct target *t = need_db();
    struct lh_db_options o;
    struct lh_db_stats s;
    struct lh_db_conn *c = (struct lh_db_conn *)&o;
    char err[300] = "";
    (void)state;

    base_options(t, &o);
    o.size = 2;
    o.acquire_timeout = 0.2;
    struct lh_db *db = new_pool(&o);
    struct lh_db_conn *a = acquire(db, NULL, NULL);
    struct lh_db_conn *b = acquire(db, NULL, NULL);
    assert_int_equal(lh_db_acquire(db, "req-3", "/x", &c, err, sizeof(err)), LH_ERR_TIMEOUT);
    assert_null(c);
    assert_string_equal(err, "pool exhausted: all 2 connections busy for 0.2s");
    lh_db_stats(db, &s);
    assert_int_equal(s.timeouts, 1);
    assert_int_equal(s.waits, 1);
    assert_int_equal(s.active, 2);
    assert_int_equal(s.served, 2);

    lh_db_release(db, a);
    c = acquire(db, NULL, NULL);
    assert_ptr_equal(c, a);
    lh_db_release(db, c);
    lh_db_release(db, b);
    lh_db_free(db);
}

struct holder {
    struct lh_db *db;
    struct lh_db_conn *c;
    double hold;
};

static void *hold_then_release(void *arg)
{
    struct holder *h = arg;
    sleep_for(h->hold);
    lh_db_release(h->db, h->c);
    return NULL;
}

static void test_lh_db_acquire_waits_for_release(void **state)
{
    const struct target *t = need_db();
    struct lh_db_options o;
    struct lh_db_stats s;
    pthread_t th;
    (void)state;

    base_options(t, &o);
    o.size = 1;
    o.acquire_timeout = 10;
    struct lh_db *db = new_pool(&o);
    struct holder h = {db, acquire(db, NULL, NULL), 0.2};
    assert_int_equal(pthread_create(&th, NULL, hold_then_release, &h), 0);
    struct lh_db_conn *c = acquire(db, NULL, NULL);
    assert_ptr_equal(c, h.c);
    pthread_join(th, NULL);
    lh_db_release(db, c);
    lh_db_stats(db, &s);
    assert_int_equal(s.waits, 1);
    assert_int_equal(s.timeouts, 0);
    assert_int_equal(s.served, 2);
    lh_db_free(db);
}

#define STRESS_THREADS 64
#define STRESS_QUERIES 200

struct stress {
    struct lh_db *db;
    int index;
    int failures;
    char why[300];
};

static void *stress_main(void *arg)
{
    struct stress *w = arg;
    char err[300];

    for (int q = 0; q < STRESS_QUERIES; q++) {
        struct lh_db_conn *c = NULL;
        struct lh_db_result *r = NULL;
        struct lh_db_value p = int_value((long long)w->index * 100000 + q);
        enum lh_status st = lh_db_acquire(w->db, "req-stress", "/stress", &c, err, sizeof(err));
        if (st == LH_OK) {
            st = lh_db_run(c, "SELECT ?+1", 10, &p, 1, &r, err, sizeof(err));
            lh_db_release(w->db, c);
        }
        const struct lh_db_value *v = st == LH_OK ? lh_db_result_value(r, 0, 0) : NULL;
        if (v == NULL || v->type != LH_DB_INT || v->i != p.i + 1) {
            if (w->failures++ == 0 &&
                snprintf(w->why, sizeof(w->why), "query %d: %s (%s)", q, lh_status_str(st),
                         st == LH_OK ? "wrong value" : err) < 0)
                w->why[0] = '\0';
        }
        lh_db_result_free(r);
    }
    return NULL;
}

static void test_lh_db_run_many_threads_share_pool(void **state)
{
    const struct target *t = need_db();
    struct lh_db_options o;
    struct lh_db_stats s;
    static struct stress workers[STRESS_THREADS];
    pthread_t th[STRESS_THREADS];
    (void)state;

    base_options(t, &o);
    o.size = 8;
    o.acquire_timeout = 10;
    o.leak_after = 30;
    o.slow_query = 30;
    struct lh_db *db = new_pool(&o);
    for (int i = 0; i < STRESS_THREADS; i++) {
        workers[i] = (struct stress){.db = db, .index = i};
        assert_int_equal(pthread_create(&th[i], NULL, stress_main, &workers[i]), 0);
    }
    for (int i = 0; i < STRESS_THREADS; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < STRESS_THREADS; i++)
        if (workers[i].failures > 0)
            fail_msg("thread %d: %d failures, first: %s", i, workers[i].failures, workers[i].why);
    lh_db_stats(db, &s);
    assert_int_equal(s.active, 0);
    assert_int_equal(s.served, STRESS_THREADS * STRESS_QUERIES);
    assert_int_equal(s.errors, 0);
    assert_int_equal(s.timeouts, 0);
    assert_true(s.open <= 8);

    /* What the server sees: at most the pool's 8 plus the checker's own. */
    base_options(t, &o);
    o.size = 1;
    struct lh_db *checker = new_pool(&o);
    struct lh_db_conn *c = acquire(checker, NULL, NULL);
    struct lh_db_value p[] = {text_value(t->url.user, strlen(t->url.user)),
                              text_value(t->database, strlen(t->database))};
    long long n = query_int(
        c, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = ? AND DB = ?", p, 2);
    if (n > 8 + 1)
        fail_msg("the server sees %lld connections for %s, expected at most 9", n, t->url.user);
    lh_db_release(checker, c);
    lh_db_free(checker);
    lh_db_free(db);
}

static void test_lh_db_release_rolls_back_open_transaction(void **state)
{
    const struct target *t = need_db();
    struct lh_db_options o;
    char table[96], sql[256];
    (void)state;

    base_options(t, &o);
    o.size = 1;
    struct lh_db *db = new_pool(&o);
    struct lh_db_conn *c = acquire(db, "req-tx", "/tx");
    table_name(table, sizeof(table), "tx");
    snprintf(sql, sizeof(sql), "CREATE TABLE %s (v INT) ENGINE=InnoDB", table);
    exec(c, sql);
    exec(c, "BEGIN");
    snprintf(sql, sizeof(sql), "INSERT INTO %s VALUES (1)", table);
    exec(c, sql);
    lh_db_release(db, c); /* the transaction is left open */

    c = acquire(db, NULL, NULL);
    snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM %s", table);
    assert_true(query_int(c, sql, NULL, 0) == 0);

    /* autocommit switched off by one holder is back on for the next */
    exec(c, "SET autocommit = 0");
    lh_db_release(db, c);
    c = acquire(db, NULL, NULL);
    assert_true(query_int(c, "SELECT @@autocommit", NULL, 0) == 1);

    /* a committed transaction stays */
    exec(c, "START TRANSACTION");
    snprintf(sql, sizeof(sql), "INSERT INTO %s VALUES (2)", table);
    exec(c, sql);
    exec(c, "COMMIT");
    lh_db_release(db, c);
    c = acquire(db, NULL, NULL);
    snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM %s", table);
    assert_true(query_int(c, sql, NULL, 0) == 1);
    snprintf(sql, sizeof(sql), "DROP TABLE %s", table);
    exec(c, sql);
    lh_db_release(db, c);
    lh_db_free(db);
}

/* Kills the server side of c's connection from another connection. */
static long long kill_connection(const struct target *t, struct lh_db_conn *c)
{
    struct lh_db_options o;
    char sql[64];

    long long id = query_int(c, "SELECT CONNECTION_ID()", NULL, 0);
    base_options(t, &o);
    o.size = 1;
    struct lh_db *killer = new_pool(&o);
    struct lh_db_conn *k = acquire(killer, NULL, NULL);
    snprintf(sql, sizeof(sql), "KILL %lld", id);
    exec(k, sql);
    lh_db_release(killer, k);
    lh_db_free(killer);
    return id;
}

static void test_lh_db_run_fails_then_reconnects_after_kill(void **state)
{
    const struct target *t = need_db();
    struct lh_db_options o;
    struct lh_db_stats s;
    (void)state;

    base_options(t, &o);
    o.size = 1;
    struct lh_db *db = new_pool(&o);
    struct lh_db_conn *c = acquire(db, "req-kill", "/kill");
    long long id = kill_connection(t, c);
    run_fails(c, "SELECT 1", NULL, 0, LH_ERR_IO, NULL);
    run_fails(c, "SELECT 1", NULL, 0, LH_ERR_IO, "connection was lost"); /* fails fast now */
    lh_db_release(db, c);
    lh_db_stats(db, &s);
    assert_int_equal(s.open, 0); /* closed at release */

    c = acquire(db, NULL, NULL);
    assert_true(query_int(c, "SELECT CONNECTION_ID()", NULL, 0) != id);
    lh_db_release(db, c);
    lh_db_stats(db, &s);
    assert_int_equal(s.open, 1);
    assert_int_equal(s.errors, 2);
    lh_db_free(db);
}

static void test_lh_db_acquire_pings_idle_connection(void **state)
{
    const struct target *t = need_db();
    struct lh_db_options o;
    struct lh_db_stats s;
    (void)state;

    base_options(t, &o);
    o.size = 1;
    o.validate_after = 0.1;
    struct lh_db *db = new_pool(&o);
    struct lh_db_conn *c = acquire(db, NULL, NULL);
    long long id = kill_connection(t, c);
    lh_db_release(db, c);
    sleep_for(0.2);
    c = acquire(db, NULL, NULL); /* the ping fails: reconnected before we see it */
    assert_true(query_int(c, "SELECT CONNECTION_ID()", NULL, 0) != id);
    lh_db_release(db, c);
    lh_db_stats(db, &s);
    assert_int_equal(s.errors, 0);
    lh_db_free(db);
}

static void test_lh_db_acquire_renews_old_connection(void **state)
{
    const struct target *t = need_db();
    struct lh_db_options o;
    (void)state;

    base_options(t, &o);
    o.size = 1;
    o.max_lifetime = 0.2;
    struct lh_db *db = new_pool(&o);
    struct lh_db_conn *c = acquire(db, NULL, NULL);
    long long id = query_int(c, "SELECT CONNECTION_ID()", NULL, 0);
    lh_db_release(db, c);
    sleep_for(0.3);
    c = acquire(db, NULL, NULL);
    assert_true(query_int(c, "SELECT CONNECTION_ID()", NULL, 0) != id);
    lh_db_release(db, c);
    lh_db_free(db);
}

static void test_lh_db_monitor_warns_about_held_connection(void **state)
{
    const struct target *t = need_db();
    struct lh_db_options o;
    struct lh_db_stats s;
    char path[128];
    (void)state;

    base_options(t, &o);
    o.leak_after = 0.2;
    struct lh_db *db = new_pool(&o);
    log_to_temp(path, sizeof(path));
    struct lh_db_conn *c = acquire(db, "req-leak-42", "/reports/slow");
    sleep_for(1.5);
    lh_db_release(db, c);
    lh_db_stats(db, &s);
    lh_db_free(db);
    lh_log_close();

    const char *text = slurp(path);
    unlink(path);
    assert_int_equal(s.long_running, 1);
    if (strstr(text, "held for") == NULL || strstr(text, "req-leak-42") == NULL ||
        strstr(text, "/reports/slow") == NULL)
        fail_msg("expected a leak warning naming req-leak-42 and /reports/slow, got:\n%s", text);
}

static void test_lh_db_result_value_checks_bounds(void **state)
{
    const struct target *t = need_db();
    struct lh_db_options o;
    (void)state;

    base_options(t, &o);
    struct lh_db *db = new_pool(&o);
    struct lh_db_conn *c = acquire(db, NULL, NULL);
    struct lh_db_result *r = run(c, "SELECT 1 AS a, 'x' AS b UNION ALL SELECT 2, 'y'", NULL, 0);
    assert_int_equal(lh_db_result_rows(r), 2);
    assert_int_equal(lh_db_result_columns(r), 2);
    assert_string_equal(lh_db_result_name(r, 1), "b");
    assert_null(lh_db_result_name(r, 2));
    assert_null(lh_db_result_value(r, 2, 0));
    assert_null(lh_db_result_value(r, 0, 2));
    assert_text(lh_db_result_value(r, 1, 1), "y", 1);
    lh_db_result_free(r);

    r = run(c, "SELECT 1 FROM DUAL WHERE 1 = 0", NULL, 0);
    assert_int_equal(lh_db_result_rows(r), 0);
    assert_int_equal(lh_db_result_columns(r), 1);
    assert_null(lh_db_result_value(r, 0, 0));
    lh_db_result_free(r);

    assert_int_equal(lh_db_result_rows(NULL), 0);
    assert_null(lh_db_result_value(NULL, 0, 0));
    lh_db_release(db, c);
    lh_db_free(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lh_db_free_accepts_null),
        cmocka_unit_test(test_lh_db_new_fails_on_closed_port),
        cmocka_unit_test(test_lh_db_new_gives_up_on_silent_server_within_acquire_timeout),
        cmocka_unit_test(test_lh_db_new_rejects_bad_options),
        cmocka_unit_test(test_lh_db_new_reports_bad_password),
        cmocka_unit_test(test_lh_db_stats_reports_pool_state),
        cmocka_unit_test(test_lh_db_ping_answers),
        cmocka_unit_test(test_lh_db_ping_answers_while_pool_is_busy),
        cmocka_unit_test(test_lh_db_run_round_trips_types),
        cmocka_unit_test(test_lh_db_run_reads_long_values),
        cmocka_unit_test(test_lh_db_run_binds_parameters_literally),
        cmocka_unit_test(test_lh_db_run_rejects_param_count_mismatch),
        cmocka_unit_test(test_lh_db_run_reports_syntax_error),
        cmocka_unit_test(test_lh_db_run_returns_first_result_of_call),
        cmocka_unit_test(test_lh_db_run_reports_affected_rows_and_insert_id),
        cmocka_unit_test(test_lh_db_run_times_out_long_statement),
        cmocka_unit_test(test_lh_db_run_logs_slow_statement_without_values),
        cmocka_unit_test(test_lh_db_acquire_times_out_when_exhausted),
        cmocka_unit_test(test_lh_db_acquire_waits_for_release),
        cmocka_unit_test(test_lh_db_run_many_threads_share_pool),
        cmocka_unit_test(test_lh_db_release_rolls_back_open_transaction),
        cmocka_unit_test(test_lh_db_run_fails_then_reconnects_after_kill),
        cmocka_unit_test(test_lh_db_acquire_pings_idle_connection),
        cmocka_unit_test(test_lh_db_acquire_renews_old_connection),
        cmocka_unit_test(test_lh_db_monitor_warns_about_held_connection),
        cmocka_unit_test(test_lh_db_result_value_checks_bounds),
    };
    int failed = cmocka_run_group_tests_name("db", tests, NULL, NULL);
    /* libmariadb's one-time allocations (lh_db_new initialised it) */
    mysql_library_end();
    return failed;
}
