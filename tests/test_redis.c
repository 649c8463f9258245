/* tests/test_redis.c: cmocka tests for include/luahost/redis.h, against a
 * stand-in server on a free loopback port: it records the first command and
 * answers +OK, or (never accepting) leaves every command unanswered. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "luahost/redis.h"
#include "luahost/url.h"

/* -- Stand-in server ---------------------------------------------------------- */

struct server {
    int fd;
    int port;
    pthread_t thread;
    char got[512]; /* the first command, as sent */
};

static void server_listen(struct server *s)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);

    memset(s, 0, sizeof(*s));
    s->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(s->fd >= 0);
    assert_int_equal(bind(s->fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(s->fd, 4), 0);
    assert_int_equal(getsockname(s->fd, (struct sockaddr *)&a, &len), 0);
    s->port = ntohs(a.sin_port);
}

/* Reads one command ("*N" then N "$len" and value lines), answers +OK. */
static void *serve_one(void *arg)
{
    struct server *s = arg;
    size_t n = 0;
    int lines = 0, want = -1;
    int c = accept(s->fd, NULL, NULL);

    while (c >= 0 && n + 1 < sizeof(s->got) && lines != want) {
        ssize_t r = read(c, s->got + n, sizeof(s->got) - 1 - n);
        if (r <= 0)
            break;
        n += (size_t)r;
        s->got[n] = '\0';
        lines = 0;
        for (const char *p = s->got; (p = strstr(p, "\r\n")) != NULL; p += 2)
            lines++;
        want = 1 + 2 * atoi(s->got + 1);
    }
    if (c >= 0) {
        ssize_t w = write(c, "+OK\r\n", 5);
        (void)w; /* the client's assertion tells */
        close(c);
    }
    return NULL;
}

static void server_answer_once(struct server *s)
{
    assert_int_equal(pthread_create(&s->thread, NULL, serve_one, s), 0);
}

static void server_done(struct server *s, int answered)
{
    if (answered)
        pthread_join(s->thread, NULL);
    close(s->fd);
}

/* -- Tests -------------------------------------------------------------------- */

static void auth_sends(const char *user, const char *expected)
{
    struct server s;
    char err[256] = "";

    server_listen(&s);
    server_answer_once(&s);
    struct lh_redis_options o = {.host = "127.0.0.1", .port = s.port, .user = user,
                                 .password = "apppw", .timeout = 5};
    redisContext *c = lh_redis_connect(&o, err, sizeof(err));
    if (c == NULL)
        fail_msg("lh_redis_connect: %s", err);
    redisFree(c);
    server_done(&s, 1);
    assert_string_equal(s.got, expected);
}

static void test_lh_redis_connect_auth_with_user_sends_both(void **state)
{
    (void)state;
    /* An ACL user: AUTH password alone would be the default user's. */
    auth_sends("app", "*3\r\n$4\r\nAUTH\r\n$3\r\napp\r\n$5\r\napppw\r\n");
}

static void test_lh_redis_connect_auth_without_user_sends_password(void **state)
{
    (void)state;
    auth_sends(NULL, "*2\r\n$4\r\nAUTH\r\n$5\r\napppw\r\n");
    auth_sends("", "*2\r\n$4\r\nAUTH\r\n$5\r\napppw\r\n");
}

static void test_lh_redis_options_from_url_user_and_db(void **state)
{
    struct lh_url url;
    struct lh_redis_options o = {0};
    const char *err = NULL;
    (void)state;

    assert_int_equal(lh_url_parse("redis://ap%70:pw@cache:6380/3", &url, &err), LH_OK);
    assert_int_equal(lh_redis_url_check(&url, &err), LH_OK);
    lh_redis_options_from_url(&o, &url);
    assert_string_equal(o.user, "app");
    assert_string_equal(o.password, "pw");
    assert_string_equal(o.host, "cache");
    assert_int_equal(o.port, 6380);
    assert_int_equal(o.db, 3);

    assert_int_equal(lh_url_parse("redis://cache/abc", &url, &err), LH_OK);
    assert_int_equal(lh_redis_url_check(&url, &err), LH_ERR_INVALID);
    assert_non_null(strstr(err, "whole number"));
}

static void test_lh_redis_connect_timeout_in_words(void **state)
{
    struct server s;
    char err[256] = "";
    (void)state;

    /* Never accepted, never answered: the connection itself succeeds. */
    server_listen(&s);
    struct lh_redis_options o = {.host = "127.0.0.1", .port = s.port, .password = "pw",
                                 .timeout = 0.05};
    assert_null(lh_redis_connect(&o, err, sizeof(err)));
    server_done(&s, 0);
    assert_string_equal(err, "AUTH failed: no answer within redis_timeout (50 ms)");
}

static void test_lh_redis_command_timeout_in_words(void **state)
{
    struct server s;
    char err[256] = "";
    struct redisReply *reply = NULL;
    const char *argv[] = {"PING"};
    (void)state;

    server_listen(&s);
    struct lh_redis_options o = {.host = "127.0.0.1", .port = s.port, .timeout = 0.05};
    struct lh_redis *r = lh_redis_new(&o);
    assert_non_null(r);
    assert_int_equal(lh_redis_command(r, 1, argv, NULL, &reply, err, sizeof(err)), LH_ERR_IO);
    assert_null(reply);
    lh_redis_free(r);
    server_done(&s, 0);
    assert_string_equal(err, "no answer within redis_timeout (50 ms)");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lh_redis_connect_auth_with_user_sends_both),
        cmocka_unit_test(test_lh_redis_connect_auth_without_user_sends_password),
        cmocka_unit_test(test_lh_redis_options_from_url_user_and_db),
        cmocka_unit_test(test_lh_redis_connect_timeout_in_words),
        cmocka_unit_test(test_lh_redis_command_timeout_in_words),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
