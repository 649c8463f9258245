/* tests/db_support.h: the real MariaDB the database tests run against.
 *
 * LUAHOST_DB_URL, by default mysql://luahost:luahost-dev@127.0.0.1:13306/luahost
 * (scripts/services.sh); the tests work in the sibling database
 * "<database>_test", which services.sh creates. Each helper fails the
 * running cmocka test with the reason when the call fails. */
#ifndef LUAHOST_TESTS_DB_SUPPORT_H
#define LUAHOST_TESTS_DB_SUPPORT_H
#include <stddef.h>

#include "luahost/db.h"
#include "luahost/url.h"

struct target {
    int probed, reachable;
    struct lh_url url;
    char database[LH_URL_PART_MAX + 8];
    char why[600];
};

/* The test database, or a failure naming the command that starts it. */
const struct target *need_db(void);
/* Pool options for the test database: 4 connections, one connect attempt. */
void base_options(const struct target *t, struct lh_db_options *o);
struct lh_db *new_pool(const struct lh_db_options *o);
struct lh_db_conn *acquire(struct lh_db *db, const char *request_id, const char *route);
struct lh_db_result *run(struct lh_db_conn *c, const char *sql, const struct lh_db_value *params,
                         size_t n);
/* Runs sql, expecting no rows back. */
void exec(struct lh_db_conn *c, const char *sql);
/* The single integer a query returns. */
long long query_int(struct lh_db_conn *c, const char *sql, const struct lh_db_value *params,
                    size_t n);

#endif
