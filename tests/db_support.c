/* tests/db_support.c: see db_support.h. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db_support.h"

#define DEFAULT_DB_URL "mysql://luahost:luahost-dev@127.0.0.1:13306/luahost"
#define START_HINT "start it with scripts/services.sh start"

/* -- The test server ----------------------------------------------------------- */

static struct target target;

void base_options(const struct target *t, struct lh_db_options *o)
{
    memset(o, 0, sizeof(*o));
    o->name = "test";
    o->host = t->url.host;
    o->port = t->url.port ? t->url.port : 3306;
    o->user = t->url.user;
    o->password = t->url.password;
    o->database = t->database;
    o->size = 4;
    o->connect_attempts = 1;
}

/* The test database, or a failure naming the command that starts it. */
const struct target *need_db(void)
{
    struct target *t = &target;
    const char *env = getenv("LUAHOST_DB_URL");
    const char *url = env != NULL && env[0] != '\0' ? env : DEFAULT_DB_URL;
    const char *uerr = NULL;

    if (!t->probed) {
        t->probed = 1;
        if (lh_url_parse(url, &t->url, &uerr) != LH_OK) {
            snprintf(t->why, sizeof(t->why), "LUAHOST_DB_URL: %s", uerr);
        } else {
            struct lh_db_options o;
            if (snprintf(t->database, sizeof(t->database), "%s_test", t->url.path) >=
                (int)sizeof(t->database))
                t->database[0] = '\0';
            base_options(t, &o);
            o.size = 1;
            struct lh_db *db = lh_db_new(&o, t->why, sizeof(t->why));
            t->reachable = db != NULL;
            lh_db_free(db);
        }
    }
    if (!t->reachable)
        fail_msg("MariaDB at %s:%d does not answer (%s): %s", t->url.host, t->url.port, t->why,
                 START_HINT);
    return t;
}

struct lh_db *new_pool(const struct lh_db_options *o)
{
    char err[600] = "";
    struct lh_db *db = lh_db_new(o, err, sizeof(err));
    if (db == NULL)
        fail_msg("lh_db_new: %s", err);
    return db;
}

struct lh_db_conn *acquire(struct lh_db *db, const char *request_id, const char *route)
{
    char err[600] = "";
    struct lh_db_conn *c = NULL;
    enum lh_status st = lh_db_acquire(db, request_id, route, &c, err, sizeof(err));
    if (st != LH_OK)
        fail_msg("lh_db_acquire: %s (%s)", lh_status_str(st), err);
    assert_non_null(c);
    return c;
}

struct lh_db_result *run(struct lh_db_conn *c, const char *sql,
                                const struct lh_db_value *params, size_t n)
{
    char err[600] = "";
    struct lh_db_result *r = NULL;
    enum lh_status st = lh_db_run(c, sql, strlen(sql), params, n, &r, err, sizeof(err));
    if (st != LH_OK)
        fail_msg("'%s': %s (%s)", sql, lh_status_str(st), err);
    assert_non_null(r);
    return r;
}

/* Runs sql, expecting no rows back. */
void exec(struct lh_db_conn *c, const char *sql)
{
    lh_db_result_free(run(c, sql, NULL, 0));
}

/* The single integer a query returns. */
long long query_int(struct lh_db_conn *c, const char *sql, const struct lh_db_value *params,
                           size_t n)
{
    struct lh_db_result *r = run(c, sql, params, n);
    assert_int_equal(lh_db_result_rows(r), 1);
    assert_int_equal(lh_db_result_columns(r), 1);
    const struct lh_db_value *v = lh_db_result_value(r, 0, 0);
    if (v->type != LH_DB_INT)
        fail_msg("'%s': expected an integer, got type %d", sql, (int)v->type);
    long long i = v->i;
    lh_db_result_free(r);
    return i;
}

