/* tests/test_migrate.c: cmocka tests for include/luahost/migrate.h.
 *
 * Against the real MariaDB of scripts/services.sh, in its test database (see
 * db_support.h). The gallery's specs keep their records in the same
 * luahost_migrations table, so every file here is named after the pid
 * ("NNN_mig<pid>_..."), its tables too, and both are removed at the end of
 * each test. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "luahost/migrate.h"

#include "db_support.h"

/* A pool, two empty folders for migrations and seeds, and the pid's tag. */
struct fixture {
    struct lh_db *db;
    char root[64], migrations[96], seeds[96];
    char tag[32];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct lh_db_options o;

    base_options(need_db(), &o);
    f->db = new_pool(&o);
    snprintf(f->root, sizeof(f->root), "/tmp/luahost-test-migrate-XXXXXX");
    assert_non_null(mkdtemp(f->root));
    snprintf(f->migrations, sizeof(f->migrations), "%s/migrations", f->root);
    snprintf(f->seeds, sizeof(f->seeds), "%s/seeds", f->root);
    assert_int_equal(mkdir(f->migrations, 0700), 0);
    assert_int_equal(mkdir(f->seeds, 0700), 0);
    snprintf(f->tag, sizeof(f->tag), "mig%ld", (long)getpid());
    *state = f;
    return 0;
}

/* Drops the tables and records named after the pid, removes the folders. */
static int teardown(void **state)
{
    struct fixture *f = *state;
    char sql[256], cmd[128];
    struct lh_db_conn *c = acquire(f->db, "test", "teardown");

    for (int i = 1; i <= 3; i++) {
        snprintf(sql, sizeof(sql), "DROP TABLE IF EXISTS t_%s_%d", f->tag, i);
        exec(c, sql);
    }
    snprintf(sql, sizeof(sql), "DELETE FROM luahost_migrations WHERE name LIKE '%%\\_%s\\_%%'",
             f->tag);
    exec(c, sql);
    lh_db_release(f->db, c);
    lh_db_free(f->db);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->root);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

/* Writes dir/name; "%s" in text becomes the fixture's tag. */
static void write_file(const struct fixture *f, const char *dir, const char *name, const char *text)
{
    char path[512], file_name[256];
    snprintf(file_name, sizeof(file_name), name, f->tag);
    snprintf(path, sizeof(path), "%s/%s", dir, file_name);
    FILE *out = fopen(path, "w");
    assert_non_null(out);
    fprintf(out, text, f->tag, f->tag, f->tag);
    fclose(out);
}

static struct lh_migrate_counts migrate_ok(struct fixture *f, int with_seeds)
{
    char err[512] = "";
    struct lh_migrate_counts n = {99, 99};
    enum lh_status st =
        lh_migrate(f->db, f->migrations, with_seeds ? f->seeds : NULL, &n, err, sizeof(err));
    if (st != LH_OK)
        fail_msg("lh_migrate: %s (%s)", lh_status_str(st), err);
    return n;
}

/* The single integer of sql, where "%s" is the fixture's tag. */
static long long count(struct fixture *f, const char *sql_format)
{
    char sql[256];
    snprintf(sql, sizeof(sql), sql_format, f->tag);
    struct lh_db_conn *c = acquire(f->db, "test", "count");
    long long n = query_int(c, sql, NULL, 0);
    lh_db_release(f->db, c);
    return n;
}

/* 1 if the record name_format (with "%s" for the tag) is in the table, else 0. */
static long long recorded(struct fixture *f, const char *name_format)
{
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM luahost_migrations WHERE name = '%s'",
             name_format);
    return count(f, sql);
}

static void test_applies_in_name_order_once(void **state)
{
    struct fixture *f = *state;
    /* 002 fills the table 001 creates: run in the other order, it fails. */
    write_file(f, f->migrations, "002_%s_fill.sql",
               "-- a comment line\nINSERT INTO t_%s_1 (v) VALUES (1);\n"
               "INSERT INTO t_%s_1 (v) VALUES (2);\n");
    write_file(f, f->migrations, "001_%s_create.sql", "CREATE TABLE t_%s_1 (v INT);\n");
    write_file(f, f->migrations, "README.md", "not a migration");

    struct lh_migrate_counts n = migrate_ok(f, 1);
    assert_int_equal(n.migrations, 2);
    assert_int_equal(n.seeds, 0);
    assert_int_equal(count(f, "SELECT COUNT(*) FROM t_%s_1"), 2);
    assert_int_equal(recorded(f, "001_%s_create.sql"), 1);
    assert_int_equal(recorded(f, "002_%s_fill.sql"), 1);

    n = migrate_ok(f, 1);
    assert_int_equal(n.migrations, 0);
    assert_int_equal(count(f, "SELECT COUNT(*) FROM t_%s_1"), 2);
}

static void test_seed_named_like_a_migration_still_runs(void **state)
{
    struct fixture *f = *state;
    write_file(f, f->migrations, "001_%s_same.sql", "CREATE TABLE t_%s_1 (v INT);\n");
    write_file(f, f->seeds, "001_%s_same.sql", "INSERT INTO t_%s_1 (v) VALUES (7);\n");

    struct lh_migrate_counts n = migrate_ok(f, 1);
    assert_int_equal(n.migrations, 1);
    assert_int_equal(n.seeds, 1);
    assert_int_equal(count(f, "SELECT COUNT(*) FROM t_%s_1 WHERE v = 7"), 1);
    assert_int_equal(recorded(f, "seeds/001_%s_same.sql"), 1);

    n = migrate_ok(f, 1);
    assert_int_equal(n.seeds, 0);
    assert_int_equal(count(f, "SELECT COUNT(*) FROM t_%s_1 WHERE v = 7"), 1);
}

static void test_seed_recorded_by_bare_name_is_not_run_again(void **state)
{
    struct fixture *f = *state;
    char sql[256];
    write_file(f, f->migrations, "001_%s_create.sql", "CREATE TABLE t_%s_1 (v INT);\n");
    write_file(f, f->seeds, "001_%s_rows.sql", "INSERT INTO t_%s_1 (v) VALUES (1);\n");
    migrate_ok(f, 0);
    /* What an earlier version left: the seed applied, recorded bare. */
    struct lh_db_conn *c = acquire(f->db, "test", "legacy");
    snprintf(sql, sizeof(sql), "INSERT INTO t_%s_1 (v) VALUES (1)", f->tag);
    exec(c, sql);
    snprintf(sql, sizeof(sql), "INSERT INTO luahost_migrations (name) VALUES ('001_%s_rows.sql')",
             f->tag);
    exec(c, sql);
    lh_db_release(f->db, c);

    struct lh_migrate_counts n = migrate_ok(f, 1);
    assert_int_equal(n.seeds, 0);
    assert_int_equal(count(f, "SELECT COUNT(*) FROM t_%s_1"), 1);
    assert_int_equal(recorded(f, "seeds/001_%s_rows.sql"), 1);
    assert_int_equal(recorded(f, "001_%s_rows.sql"), 0);
}

static void test_seeds_only_when_asked(void **state)
{
    struct fixture *f = *state;
    write_file(f, f->seeds, "001_%s_table.sql", "CREATE TABLE t_%s_2 (v INT);\n");

    assert_int_equal(migrate_ok(f, 0).seeds, 0);
    assert_int_equal(recorded(f, "seeds/001_%s_table.sql"), 0);
    assert_int_equal(migrate_ok(f, 1).seeds, 1);
    assert_int_equal(count(f, "SELECT COUNT(*) FROM t_%s_2"), 0);
}

static void test_failure_names_file_and_keeps_earlier_ones(void **state)
{
    struct fixture *f = *state;
    char err[512] = "";
    struct lh_migrate_counts n;
    write_file(f, f->migrations, "001_%s_ok.sql", "CREATE TABLE t_%s_1 (v INT);\n");
    write_file(f, f->migrations, "002_%s_bad.sql", "CREATE TABLE t_%s_2 (v INT);\nSELEC oops;\n");

    assert_int_not_equal(lh_migrate(f->db, f->migrations, NULL, &n, err, sizeof(err)), LH_OK);
    if (strstr(err, "002_") == NULL || strstr(err, "SELEC oops") == NULL)
        fail_msg("the error should name the file and the statement: %s", err);
    assert_int_equal(n.migrations, 1);
    assert_int_equal(recorded(f, "001_%s_ok.sql"), 1);
    assert_int_equal(recorded(f, "002_%s_bad.sql"), 0);

    /* Fixed, it is applied on the next run (its first statement made idempotent). */
    write_file(f, f->migrations, "002_%s_bad.sql", "CREATE TABLE IF NOT EXISTS t_%s_2 (v INT);\n");
    assert_int_equal(migrate_ok(f, 0).migrations, 1);
    assert_int_equal(recorded(f, "002_%s_bad.sql"), 1);
}

static void test_missing_folders_have_nothing_to_apply(void **state)
{
    struct fixture *f = *state;
    char err[512] = "";
    struct lh_migrate_counts n;
    char missing[128];
    snprintf(missing, sizeof(missing), "%s/none", f->root);

    assert_int_equal(lh_migrate(f->db, missing, missing, &n, err, sizeof(err)), LH_OK);
    assert_int_equal(n.migrations, 0);
    assert_int_equal(n.seeds, 0);
}

static void test_too_long_name_is_refused_before_anything_runs(void **state)
{
    struct fixture *f = *state;
    char err[512] = "", name[256];
    struct lh_migrate_counts n;
    write_file(f, f->migrations, "001_%s_first.sql", "CREATE TABLE t_%s_1 (v INT);\n");
    snprintf(name, sizeof(name), "002_%%s_%0180d.sql", 0);
    write_file(f, f->migrations, name, "CREATE TABLE t_%s_2 (v INT);\n");

    assert_int_equal(lh_migrate(f->db, f->migrations, NULL, &n, err, sizeof(err)),
                     LH_ERR_INVALID);
    if (strstr(err, "longer than") == NULL)
        fail_msg("unexpected error: %s", err);
    assert_int_equal(n.migrations, 0);
    assert_int_equal(recorded(f, "001_%s_first.sql"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_applies_in_name_order_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seed_named_like_a_migration_still_runs, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_seed_recorded_by_bare_name_is_not_run_again, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_seeds_only_when_asked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failure_names_file_and_keeps_earlier_ones, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_missing_folders_have_nothing_to_apply, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_too_long_name_is_refused_before_anything_runs, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
