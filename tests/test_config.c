/* tests/test_config.c: cmocka tests for include/luahost/config.h. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "luahost/config.h"

/* -- Helpers ----------------------------------------------------------------- */

struct fixture {
    struct lh_config cfg;
    char path[64]; /* temporary config file, "" when none */
    char err[512];
};

static int setup_config(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (f == NULL || lh_config_init(&f->cfg) != LH_OK) {
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown_config(void **state)
{
    struct fixture *f = *state;
    lh_config_free(&f->cfg);
    if (f->path[0] != '\0')
        unlink(f->path);
    free(f);
    return 0;
}

/* Writes text to a new temporary file whose name goes into f->path. */
static void write_config(struct fixture *f, const char *text)
{
    snprintf(f->path, sizeof(f->path), "/tmp/luahost-test-config-XXXXXX");
    int fd = mkstemp(f->path);
    assert_true(fd >= 0);
    FILE *fp = fdopen(fd, "w");
    assert_non_null(fp);
    assert_int_equal(fputs(text, fp) >= 0, 1);
    assert_int_equal(fclose(fp), 0);
}

static void set_ok(struct lh_config *cfg, const char *name, const char *value)
{
    char err[256] = "";
    enum lh_status st = lh_config_set(cfg, name, value, err, sizeof(err));
    if (st != LH_OK)
        fail_msg("lh_config_set(%s, \"%s\"): %s (%s)", name, value, lh_status_str(st), err);
}

/* Asserts that name=value is refused as LH_ERR_INVALID with a message that
 * names the option. */
static void set_invalid(struct lh_config *cfg, const char *name, const char *value)
{
    char err[256] = "";
    char quoted[80];
    enum lh_status st = lh_config_set(cfg, name, value, err, sizeof(err));
    if (st != LH_ERR_INVALID)
        fail_msg("lh_config_set(%s, \"%s\"): expected LH_ERR_INVALID, got %s", name, value,
                 lh_status_str(st));
    snprintf(quoted, sizeof(quoted), "'%s'", name);
    if (strstr(err, quoted) == NULL)
        fail_msg("lh_config_set(%s, \"%s\"): message does not name the option: %s", name,
                 value, err);
}

/* -- Defaults and options ----------------------------------------------------- */

static void test_lh_config_init_defaults(void **state)
{
    struct fixture *f = *state;
    const struct lh_config *c = &f->cfg;

    assert_int_equal(c->port, 8080);
    assert_string_equal(c->host, "127.0.0.1");
    assert_string_equal(c->app, "lua/app");
    assert_string_equal(c->lua_path, "");
    assert_int_equal(c->max_body_bytes, 1024 * 1024);
    assert_int_equal(c->max_header_bytes, 8 * 1024);
    assert_int_equal(c->workers, 0);
    assert_int_equal(c->max_connections, 4096);
    assert_int_equal(c->idle_timeout, 60);
    assert_int_equal(c->max_connections_per_ip, 256);
    assert_int_equal(c->header_timeout, 10);
    assert_int_equal(c->shutdown_timeout, 10);
    assert_int_equal(c->load_timeout, 10);
    assert_int_equal(c->blocking_threads, 16);
    assert_int_equal(c->cpu_threads, 0);
    assert_int_equal(c->cpu_queue, 64);
    assert_int_equal(c->monitor_stream_seconds, 300);
    assert_string_equal(c->access_log, "-");
    assert_string_equal(c->error_log, "-");
    assert_string_equal(c->log_level, "info");
    assert_string_equal(c->env, "development");
    assert_string_equal(c->db_url, "");
    assert_string_equal(c->redis_url, "");
    assert_string_equal(c->proxy_header, "x-forwarded-for");
    assert_int_equal(c->given, 0);
}

static void test_lh_config_option_at_lists_every_option(void **state)
{
    struct fixture *f = *state;
    size_t n = lh_config_option_count();
    int seen_port = 0, seen_db_url = 0;

    assert_int_equal(n, 38); /* one per field of struct lh_config */
    for (size_t i = 0; i < n; i++) {
        const struct lh_config_option *o = lh_config_option_at(i);
        assert_non_null(o);
        assert_non_null(o->name);
        assert_non_null(o->value);
        assert_non_null(o->help);
        assert_true(o->help[0] != '\0');
        /* Each option accepts its own default. */
        set_ok(&f->cfg, o->name, o->value);
        seen_port |= strcmp(o->name, "port") == 0 && strcmp(o->value, "8080") == 0;
        seen_db_url |= strcmp(o->name, "db_url") == 0;
    }
    assert_true(seen_port);
    assert_true(seen_db_url);
    assert_null(lh_config_option_at(n));
}

static void test_lh_config_set_sizes(void **state)
{
    struct fixture *f = *state;

    set_ok(&f->cfg, "max_header_bytes", "16k");
    assert_int_equal(f->cfg.max_header_bytes, 16 * 1024);
    set_ok(&f->cfg, "max_header_bytes", "32K");
    assert_int_equal(f->cfg.max_header_bytes, 32 * 1024);
    set_ok(&f->cfg, "max_header_bytes", "1m");
    assert_int_equal(f->cfg.max_header_bytes, 1024 * 1024);
    set_ok(&f->cfg, "max_header_bytes", "2048");
    assert_int_equal(f->cfg.max_header_bytes, 2048);

    set_ok(&f->cfg, "max_body_bytes", "1m");
    assert_int_equal(f->cfg.max_body_bytes, 1024 * 1024);
    set_ok(&f->cfg, "max_body_bytes", "1g");
    assert_int_equal(f->cfg.max_body_bytes, 1024L * 1024 * 1024);
    set_ok(&f->cfg, "max_body_bytes", "0");
    assert_int_equal(f->cfg.max_body_bytes, 0);
}

static void test_lh_config_set_size_bounds(void **state)
{
    struct fixture *f = *state;

    set_ok(&f->cfg, "max_body_bytes", "5m");
    set_invalid(&f->cfg, "max_body_bytes", "2g"); /* above 1 GiB */
    set_invalid(&f->cfg, "max_body_bytes", "1025m");
    set_invalid(&f->cfg, "max_body_bytes", "99999999999999999999g");
    set_invalid(&f->cfg, "max_body_bytes", "-1");
    set_invalid(&f->cfg, "max_body_bytes", "1t");
    set_invalid(&f->cfg, "max_body_bytes", "1.5m");
    set_invalid(&f->cfg, "max_body_bytes", "1mb");
    set_invalid(&f->cfg, "max_body_bytes", "k");
    set_invalid(&f->cfg, "max_body_bytes", "");
    assert_int_equal(f->cfg.max_body_bytes, 5L * 1024 * 1024); /* unchanged */

    set_invalid(&f->cfg, "max_header_bytes", "1023");
    set_ok(&f->cfg, "max_header_bytes", "1024");
    assert_int_equal(f->cfg.max_header_bytes, 1024);
    set_invalid(&f->cfg, "max_header_bytes", "1025k");
    set_invalid(&f->cfg, "max_header_bytes", "2m");
    assert_int_equal(f->cfg.max_header_bytes, 1024);
}

static void test_lh_config_set_number_bounds(void **state)
{
    struct fixture *f = *state;

    set_ok(&f->cfg, "port", "1");
    assert_int_equal(f->cfg.port, 1);
    set_ok(&f->cfg, "port", "65535");
    assert_int_equal(f->cfg.port, 65535);
    set_invalid(&f->cfg, "port", "0");
    set_invalid(&f->cfg, "port", "65536");
    set_invalid(&f->cfg, "port", "-80");
    set_invalid(&f->cfg, "port", "8k"); /* suffixes are for sizes only */
    set_invalid(&f->cfg, "port", "80abc");
    set_invalid(&f->cfg, "port", "abc");
    set_invalid(&f->cfg, "port", "");
    set_invalid(&f->cfg, "port", "80.5");
    set_invalid(&f->cfg, "port", " 80"); /* as "80 ": not a number as written */
    set_invalid(&f->cfg, "port", "+80");
    set_invalid(&f->cfg, "max_body_bytes", " 1m");
    set_ok(&f->cfg, "lua_path", "/opt/lib/?.lua;;/opt/lib/?/init.lua");
    set_invalid(&f->cfg, "lua_path", "/opt/lib/?.lua;/opt/lib"); /* a bare folder */
    assert_int_equal(f->cfg.port, 65535);

    set_ok(&f->cfg, "workers", "256");
    assert_int_equal(f->cfg.workers, 256);
    set_invalid(&f->cfg, "workers", "257");
    set_ok(&f->cfg, "blocking_threads", "1");
    set_invalid(&f->cfg, "blocking_threads", "0");
    set_ok(&f->cfg, "cpu_threads", "0");
    set_ok(&f->cfg, "cpu_threads", "256");
    set_invalid(&f->cfg, "cpu_threads", "257");
    set_ok(&f->cfg, "cpu_queue", "0");
    set_invalid(&f->cfg, "cpu_queue", "-1");
    set_ok(&f->cfg, "shutdown_timeout", "0");
    set_invalid(&f->cfg, "idle_timeout", "0");
}

static void test_lh_config_set_text_copies_value(void **state)
{
    struct fixture *f = *state;
    char value[] = "::1";

    set_ok(&f->cfg, "host", value);
    value[0] = 'X';
    assert_string_equal(f->cfg.host, "::1");
    set_ok(&f->cfg, "db_url", "mysql://u:p@h/db");
    assert_string_equal(f->cfg.db_url, "mysql://u:p@h/db");
    set_ok(&f->cfg, "lua_path", "");
    assert_string_equal(f->cfg.lua_path, "");
}

static void test_lh_config_set_unknown_option_not_found(void **state)
{
    struct fixture *f = *state;

    f->err[0] = '\0';
    assert_int_equal(lh_config_set(&f->cfg, "max_bodybytes", "1", f->err, sizeof(f->err)),
                     LH_ERR_NOT_FOUND);
    assert_non_null(strstr(f->err, "max_bodybytes"));
    /* Flag and environment spellings are not config keys. */
    assert_int_equal(lh_config_set(&f->cfg, "max-body-bytes", "1", f->err, sizeof(f->err)),
                     LH_ERR_NOT_FOUND);
    assert_non_null(strstr(f->err, "max-body-bytes"));
    assert_int_equal(lh_config_set(&f->cfg, "PORT", "1", f->err, sizeof(f->err)),
                     LH_ERR_NOT_FOUND);
    assert_int_equal(f->cfg.port, 8080);
    assert_int_equal(f->cfg.max_body_bytes, 1024 * 1024);
}

static void test_lh_config_set_bad_value_message_names_option(void **state)
{
    struct fixture *f = *state;

    f->err[0] = '\0';
    assert_int_equal(lh_config_set(&f->cfg, "port", "eighty", f->err, sizeof(f->err)),
                     LH_ERR_INVALID);
    assert_non_null(strstr(f->err, "port"));
    assert_non_null(strstr(f->err, "eighty"));
    assert_int_equal(f->cfg.port, 8080);
}

/* -- Config file ----------------------------------------------------------------- */

static void test_lh_config_load_file_applies_table(void **state)
{
    struct fixture *f = *state;

    write_config(f, "-- luahost settings\n"
                    "local base = 9000\n"
                    "return {\n"
                    "  port = base + 1,\n"
                    "  host = '0.0.0.0',\n"
                    "  max_body_bytes = '2m',\n"
                    "  max_header_bytes = 4096,\n"
                    "  db_url = 'mysql://u:p@127.0.0.1:3306/app',\n"
                    "  log_level = 'debug',\n"
                    "}\n");
    assert_int_equal(lh_config_load_file(&f->cfg, f->path, f->err, sizeof(f->err)), LH_OK);
    assert_int_equal(f->cfg.port, 9001);
    assert_string_equal(f->cfg.host, "0.0.0.0");
    assert_int_equal(f->cfg.max_body_bytes, 2 * 1024 * 1024);
    assert_int_equal(f->cfg.max_header_bytes, 4096);
    assert_string_equal(f->cfg.db_url, "mysql://u:p@127.0.0.1:3306/app");
    assert_string_equal(f->cfg.log_level, "debug");
    /* Options the file does not mention keep their values. */
    assert_string_equal(f->cfg.app, "lua/app");
    assert_int_equal(f->cfg.workers, 0);
}

static void test_lh_config_load_file_empty_table(void **state)
{
    struct fixture *f = *state;

    write_config(f, "return {}\n");
    assert_int_equal(lh_config_load_file(&f->cfg, f->path, f->err, sizeof(f->err)), LH_OK);
    assert_int_equal(f->cfg.port, 8080);
}

static void test_lh_config_load_file_syntax_error_reports_path_and_line(void **state)
{
    struct fixture *f = *state;
    char prefix[128];

    write_config(f, "return {\n"
                    "  port = 9000\n"
                    "  host = 'x',\n" /* missing comma on the line before */
                    "}\n");
    f->err[0] = '\0';
    assert_int_not_equal(lh_config_load_file(&f->cfg, f->path, f->err, sizeof(f->err)), LH_OK);
    snprintf(prefix, sizeof(prefix), "%s:3:", f->path);
    if (strncmp(f->err, prefix, strlen(prefix)) != 0)
        fail_msg("expected a message starting with '%s', got '%s'", prefix, f->err);
    assert_int_equal(f->cfg.port, 8080);
}

static void test_lh_config_load_file_runtime_error_reports_path(void **state)
{
    struct fixture *f = *state;
    char prefix[128];

    write_config(f, "local t = nil\nreturn { port = t.port }\n");
    f->err[0] = '\0';
    assert_int_not_equal(lh_config_load_file(&f->cfg, f->path, f->err, sizeof(f->err)), LH_OK);
    snprintf(prefix, sizeof(prefix), "%s:2:", f->path);
    if (strncmp(f->err, prefix, strlen(prefix)) != 0)
        fail_msg("expected a message starting with '%s', got '%s'", prefix, f->err);
}

static void test_lh_config_load_file_missing_file_fails(void **state)
{
    struct fixture *f = *state;
    const char *path = "/nonexistent-luahost-dir/config.lua";

    f->err[0] = '\0';
    assert_int_not_equal(lh_config_load_file(&f->cfg, path, f->err, sizeof(f->err)), LH_OK);
    assert_non_null(strstr(f->err, path));
    assert_int_equal(f->cfg.port, 8080);
}

static void test_lh_config_load_file_non_table_invalid(void **state)
{
    struct fixture *f = *state;
    char prefix[128];

    write_config(f, "return 'port=9000'\n");
    f->err[0] = '\0';
    assert_int_equal(lh_config_load_file(&f->cfg, f->path, f->err, sizeof(f->err)),
                     LH_ERR_INVALID);
    snprintf(prefix, sizeof(prefix), "%s:", f->path);
    assert_int_equal(strncmp(f->err, prefix, strlen(prefix)), 0);
    assert_non_null(strstr(f->err, "table"));
    assert_int_equal(f->cfg.port, 8080);
}

static void test_lh_config_load_file_nothing_returned_invalid(void **state)
{
    struct fixture *f = *state;

    write_config(f, "local x = 1\n");
    assert_int_equal(lh_config_load_file(&f->cfg, f->path, f->err, sizeof(f->err)),
                     LH_ERR_INVALID);
    assert_non_null(strstr(f->err, f->path));
}

static void test_lh_config_load_file_unknown_key_not_found(void **state)
{
    struct fixture *f = *state;
    char prefix[128];

    write_config(f, "return { prot = 9000 }\n");
    f->err[0] = '\0';
    assert_int_equal(lh_config_load_file(&f->cfg, f->path, f->err, sizeof(f->err)),
                     LH_ERR_NOT_FOUND);
    snprintf(prefix, sizeof(prefix), "%s:", f->path);
    assert_int_equal(strncmp(f->err, prefix, strlen(prefix)), 0);
    assert_non_null(strstr(f->err, "prot"));
    assert_int_equal(f->cfg.port, 8080);
}

static void test_lh_config_load_file_fractional_number_invalid(void **state)
{
    struct fixture *f = *state;

    write_config(f, "return { port = 8080.5 }\n");
    f->err[0] = '\0';
    assert_int_equal(lh_config_load_file(&f->cfg, f->path, f->err, sizeof(f->err)),
                     LH_ERR_INVALID);
    assert_non_null(strstr(f->err, f->path));
    assert_non_null(strstr(f->err, "'port'"));
    assert_int_equal(f->cfg.port, 8080);
}

static void test_lh_config_load_file_bad_value_names_option(void **state)
{
    struct fixture *f = *state;

    write_config(f, "return { port = 70000 }\n");
    assert_int_equal(lh_config_load_file(&f->cfg, f->path, f->err, sizeof(f->err)),
                     LH_ERR_INVALID);
    assert_non_null(strstr(f->err, f->path));
    assert_non_null(strstr(f->err, "'port'"));
    assert_int_equal(f->cfg.port, 8080);
}

static void test_lh_config_load_file_wrong_value_type_invalid(void **state)
{
    struct fixture *f = *state;

    write_config(f, "return { workers = true }\n");
    assert_int_equal(lh_config_load_file(&f->cfg, f->path, f->err, sizeof(f->err)),
                     LH_ERR_INVALID);
    assert_non_null(strstr(f->err, "'workers'"));
    assert_non_null(strstr(f->err, "boolean"));
    assert_int_equal(f->cfg.workers, 0);
}

static void test_lh_config_load_file_non_string_key_invalid(void **state)
{
    struct fixture *f = *state;

    write_config(f, "return { 9000 }\n");
    assert_int_equal(lh_config_load_file(&f->cfg, f->path, f->err, sizeof(f->err)),
                     LH_ERR_INVALID);
    assert_non_null(strstr(f->err, f->path));
}

/* -- Environment ------------------------------------------------------------------ */

static void test_lh_config_load_env_applies_variables(void **state)
{
    struct fixture *f = *state;
    char *env[] = {
        "LUAHOST_PORT=9000",
        "LUAHOST_DB_URL=mysql://app:secret@127.0.0.1:13306/appdb",
        "LUAHOST_MAX_BODY_BYTES=8m",
        "LUAHOST_LOG_LEVEL=warn",
        NULL,
    };

    assert_int_equal(lh_config_load_env(&f->cfg, env, f->err, sizeof(f->err)), LH_OK);
    assert_int_equal(f->cfg.port, 9000);
    assert_string_equal(f->cfg.db_url, "mysql://app:secret@127.0.0.1:13306/appdb");
    assert_int_equal(f->cfg.max_body_bytes, 8L * 1024 * 1024);
    assert_string_equal(f->cfg.log_level, "warn");
    assert_string_equal(f->cfg.host, "127.0.0.1");
}

static void test_lh_config_load_env_ignores_unrelated(void **state)
{
    struct fixture *f = *state;
    char *env[] = {
        "PATH=/usr/bin:/bin",
        "PORT=1234",
        "HOME=/root",
        "LUAHOST_CONFIG=/etc/luahost/config.lua", /* names the file, not an option */
        "LUAHOST_=x",
        "LUAHOST",
        "LUAHOST_NOT_AN_OPTION=1",
        "XLUAHOST_PORT=1234",
        "LUAHOST_HOST=::1",
        NULL,
    };

    assert_int_equal(lh_config_load_env(&f->cfg, env, f->err, sizeof(f->err)), LH_OK);
    assert_int_equal(f->cfg.port, 8080);
    assert_string_equal(f->cfg.host, "::1");
    assert_string_equal(f->cfg.app, "lua/app");
    /* An empty environment changes nothing. */
    char *empty[] = {NULL};
    assert_int_equal(lh_config_load_env(&f->cfg, empty, f->err, sizeof(f->err)), LH_OK);
    assert_int_equal(f->cfg.port, 8080);
}

/* A variable one or two edits from an option's name is a typo to report;
 * LUAHOST_CONFIG and names far from every option (a tool's) are not. */
static void test_lh_config_env_typos(void **state)
{
    (void)state;
    char *env[] = {
        "LUAHOST_WORKER=4",       /* workers */
        "LUAHOST_CONFIG=/etc/x",  /* the config file */
        "LUAHOST_PORT=80",        /* an option */
        "LUAHOST_BIN=build/luahost",
        "LUAHOST_TEST_DB_URL=mysql://x",
        "LUAHOST_LOGLEVEL=debug", /* log_level */
        NULL,
    };
    char out[512];

    assert_int_equal(lh_config_env_typos(env, out, sizeof(out)), 2);
    assert_string_equal(out, "LUAHOST_WORKER names no option; did you mean LUAHOST_WORKERS?; "
                             "LUAHOST_LOGLEVEL names no option; did you mean LUAHOST_LOG_LEVEL?");
    assert_string_equal(lh_config_near_option("prot"), "port");
    assert_null(lh_config_near_option("bin"));
    char *none[] = {"LUAHOST_PORT=80", NULL};
    assert_int_equal(lh_config_env_typos(none, out, sizeof(out)), 0);
    assert_string_equal(out, "");
    /* Cut, never overrun. */
    assert_int_equal(lh_config_env_typos(env, out, 10), 2);
    assert_int_equal(strlen(out), 9);
}

static void test_lh_config_load_env_bad_value_names_variable(void **state)
{
    struct fixture *f = *state;
    char *env[] = {"LUAHOST_WORKERS=lots", NULL};

    f->err[0] = '\0';
    assert_int_equal(lh_config_load_env(&f->cfg, env, f->err, sizeof(f->err)), LH_ERR_INVALID);
    assert_non_null(strstr(f->err, "LUAHOST_WORKERS"));
    assert_non_null(strstr(f->err, "lots"));
    assert_int_equal(f->cfg.workers, 0);
}

static void test_lh_config_sources_precedence(void **state)
{
    struct fixture *f = *state;
    char *env[] = {"LUAHOST_PORT=9100", "LUAHOST_WORKERS=3", NULL};

    /* Flags first, then the environment, then the file: each leaves alone
     * what one before it gave. */
    set_ok(&f->cfg, "port", "9200");
    assert_int_equal(lh_config_load_env(&f->cfg, env, f->err, sizeof(f->err)), LH_OK);
    write_config(f, "return { port = 9000, workers = 2, host = '10.0.0.1' }\n");
    assert_int_equal(lh_config_load_file(&f->cfg, f->path, f->err, sizeof(f->err)), LH_OK);

    assert_int_equal(f->cfg.port, 9200);           /* flag */
    assert_int_equal(f->cfg.workers, 3);           /* environment */
    assert_string_equal(f->cfg.host, "10.0.0.1");  /* file */
    assert_int_equal(f->cfg.idle_timeout, 60);     /* default */
}

static void test_lh_config_bad_value_overridden_is_not_checked(void **state)
{
    struct fixture *f = *state;
    char *env[] = {"LUAHOST_PORT=eighty", "LUAHOST_LOG_LEVEL=loud", NULL};

    set_ok(&f->cfg, "port", "9200");
    set_ok(&f->cfg, "log_level", "warn");
    assert_int_equal(lh_config_load_env(&f->cfg, env, f->err, sizeof(f->err)), LH_OK);
    write_config(f, "return { port = 'eighty', env = 'staging' }\n");
    /* env is not given above: the file's bad value is refused, naming the file. */
    f->err[0] = '\0';
    assert_int_equal(lh_config_load_file(&f->cfg, f->path, f->err, sizeof(f->err)),
                     LH_ERR_INVALID);
    assert_non_null(strstr(f->err, f->path));
    assert_non_null(strstr(f->err, "'env'"));
    assert_non_null(strstr(f->err, "staging"));
    assert_int_equal(f->cfg.port, 9200);
    assert_string_equal(f->cfg.log_level, "warn");
}

static void test_lh_config_load_env_bad_word_names_variable(void **state)
{
    struct fixture *f = *state;
    char *env[] = {"LUAHOST_METRICS=yes", NULL};

    f->err[0] = '\0';
    assert_int_equal(lh_config_load_env(&f->cfg, env, f->err, sizeof(f->err)), LH_ERR_INVALID);
    assert_non_null(strstr(f->err, "LUAHOST_METRICS"));
    assert_non_null(strstr(f->err, "'yes' is not on or off"));
    assert_string_equal(f->cfg.metrics, "on");
}

/* -- Values checked as they are set ------------------------------------------- */

static void test_lh_config_set_good_words_and_urls(void **state)
{
    struct fixture *f = *state;

    set_ok(&f->cfg, "db_url", "mysql://user:pa%40ss@127.0.0.1:13306/appdb");
    set_ok(&f->cfg, "redis_url", "redis://127.0.0.1:16379/0");
    set_ok(&f->cfg, "db_url", "");
    set_ok(&f->cfg, "env", "production");
    set_ok(&f->cfg, "log_level", "error");
    set_ok(&f->cfg, "metrics", "off");
    set_ok(&f->cfg, "proxy_header", "forwarded");
}

/* name=value is refused and the message holds want. */
static void set_refused(struct fixture *f, const char *name, const char *value, const char *want)
{
    char err[256] = "";
    set_invalid(&f->cfg, name, value);
    lh_config_set(&f->cfg, name, value, err, sizeof(err));
    if (strstr(err, want) == NULL)
        fail_msg("%s=\"%s\": expected \"%s\" in \"%s\"", name, value, want, err);
}

static void test_lh_config_set_refuses_unknown_words(void **state)
{
    struct fixture *f = *state;

    set_refused(f, "log_level", "verbose", "'verbose' is not debug, info, warn or error");
    set_refused(f, "env", "staging", "'staging' is not development or production");
    set_refused(f, "metrics", "yes", "'yes' is not on or off");
    set_refused(f, "proxy_header", "x-real-ip", "is not x-forwarded-for or forwarded");
    assert_string_equal(f->cfg.log_level, "info");
    assert_string_equal(f->cfg.env, "development");
}

static void test_lh_config_set_refuses_empty_host_and_app(void **state)
{
    struct fixture *f = *state;

    set_refused(f, "host", "", "must not be empty");
    set_refused(f, "app", "", "must not be empty");
    assert_string_equal(f->cfg.host, "127.0.0.1");
}

static void test_lh_config_set_refuses_bad_urls(void **state)
{
    struct fixture *f = *state;

    set_refused(f, "db_url", "postgres://u:p@127.0.0.1:5432/app", "mysql://");
    /* A Redis URL in db_url is the wrong scheme too. */
    set_refused(f, "db_url", "redis://127.0.0.1:6379/0", "mysql://");
    set_invalid(&f->cfg, "redis_url", "not a url");
    set_invalid(&f->cfg, "redis_url", "redis://cache:99999/0");
    set_refused(f, "redis_url", "mysql://u:p@h/db", "redis://");
    assert_string_equal(f->cfg.db_url, "");
}

static void test_lh_config_set_mysql_url_needs_a_database(void **state)
{
    struct fixture *f = *state;

    set_refused(f, "db_url", "mysql://u:p@127.0.0.1:19306/", "needs a database name");
    set_refused(f, "db_url", "mysql://u:p@127.0.0.1:19306", "needs a database name");
    set_refused(f, "db_url", "mysql://u:p@127.0.0.1:19306/luahost?ssl=1", "query strings");
    set_ok(&f->cfg, "db_url", "mysql://u:p@127.0.0.1:19306/luahost");
}

static void test_lh_config_set_redis_url_db_and_user(void **state)
{
    struct fixture *f = *state;
    const char *want = "the database after the host must be a whole number";

    set_refused(f, "redis_url", "redis://127.0.0.1:16379/abc", want);
    set_refused(f, "redis_url", "redis://127.0.0.1:16379/1x", want);
    set_refused(f, "redis_url", "redis://127.0.0.1:16379/-1", want);
    set_refused(f, "redis_url", "redis://127.0.0.1:16379/+1", want);
    set_refused(f, "redis_url", "redis://127.0.0.1:16379/99999999999", want);
    set_refused(f, "redis_url", "redis://127.0.0.1:16379/0?x=1", "query strings");
    set_refused(f, "redis_url", "redis://app@127.0.0.1:16379/0", "a user needs a password");
    /* The server says whether it has a database 99 (16 by default). */
    set_ok(&f->cfg, "redis_url", "redis://127.0.0.1:16379/99");
    set_ok(&f->cfg, "redis_url", "redis://app:pw@127.0.0.1:16379/");
    set_ok(&f->cfg, "redis_url", "redis://:pw@127.0.0.1:16379");
}

static void test_lh_config_cidr_lists_checked_with_their_source(void **state)
{
    struct fixture *f = *state;
    char *env[] = {"LUAHOST_TRUSTED_PROXIES=garbage", NULL};

    set_refused(f, "metrics_allow", "10.0.0.0/8, bad", "bad entry 'bad'");
    set_ok(&f->cfg, "metrics_allow", "10.0.0.0/8, ::1");
    f->err[0] = '\0';
    assert_int_equal(lh_config_load_env(&f->cfg, env, f->err, sizeof(f->err)), LH_ERR_INVALID);
    assert_non_null(strstr(f->err, "environment LUAHOST_TRUSTED_PROXIES: option "
                                   "'trusted_proxies': bad entry 'garbage'"));
    assert_string_equal(f->cfg.trusted_proxies, "");
}

static void test_lh_config_where_names_each_source(void **state)
{
    struct fixture *f = *state;
    char *env[] = {"LUAHOST_HOST=999.1.1.1", NULL};
    char buf[300], want[300];

    set_ok(&f->cfg, "static_dir", "/nope");
    assert_int_equal(lh_config_load_env(&f->cfg, env, f->err, sizeof(f->err)), LH_OK);
    write_config(f, "return { access_log = '/nope/x' }\n");
    assert_int_equal(lh_config_load_file(&f->cfg, f->path, f->err, sizeof(f->err)), LH_OK);

    assert_string_equal(lh_config_where(&f->cfg, "static_dir", buf, sizeof(buf)),
                        "flag --static-dir: option 'static_dir'");
    assert_string_equal(lh_config_where(&f->cfg, "host", buf, sizeof(buf)),
                        "environment LUAHOST_HOST: option 'host'");
    snprintf(want, sizeof(want), "%s: option 'access_log'", f->path);
    assert_string_equal(lh_config_where(&f->cfg, "access_log", buf, sizeof(buf)), want);
    assert_string_equal(lh_config_where(&f->cfg, "policy_dir", buf, sizeof(buf)),
                        "option 'policy_dir'");
}

/* An endless loop in the config file fails the load, even inside a pcall. */
static void endless_loop_fails(struct fixture *f, const char *text)
{
    char prefix[128];

    write_config(f, text);
    f->err[0] = '\0';
    assert_int_equal(lh_config_load_file(&f->cfg, f->path, f->err, sizeof(f->err)), LH_ERR_LUA);
    snprintf(prefix, sizeof(prefix), "%s:", f->path);
    if (strncmp(f->err, prefix, strlen(prefix)) != 0 || strstr(f->err, "an endless loop?") == NULL)
        fail_msg("expected '%s...an endless loop?', got '%s'", prefix, f->err);
    unlink(f->path);
    f->path[0] = '\0';
}

static void test_lh_config_load_file_endless_loop_fails(void **state)
{
    struct fixture *f = *state;

    endless_loop_fails(f, "while true do end\n");
    endless_loop_fails(f, "local n = 0\n"
                          "while true do pcall(function() while true do n = n + 1 end end) end\n");
}

static void test_lh_config_free_twice_safe(void **state)
{
    struct fixture *f = *state;

    /* lh_config_free leaves NULLs behind; the teardown frees again. */
    lh_config_free(&f->cfg);
    assert_null(f->cfg.host);
    assert_null(f->cfg.app);
    assert_null(f->cfg.db_url);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup_config, teardown_config)
    const struct CMUnitTest tests[] = {
        T(test_lh_config_init_defaults),
        T(test_lh_config_option_at_lists_every_option),
        T(test_lh_config_set_sizes),
        T(test_lh_config_set_size_bounds),
        T(test_lh_config_set_number_bounds),
        T(test_lh_config_set_text_copies_value),
        T(test_lh_config_set_unknown_option_not_found),
        T(test_lh_config_set_bad_value_message_names_option),
        T(test_lh_config_load_file_applies_table),
        T(test_lh_config_load_file_empty_table),
        T(test_lh_config_load_file_syntax_error_reports_path_and_line),
        T(test_lh_config_load_file_runtime_error_reports_path),
        T(test_lh_config_load_file_missing_file_fails),
        T(test_lh_config_load_file_non_table_invalid),
        T(test_lh_config_load_file_nothing_returned_invalid),
        T(test_lh_config_load_file_unknown_key_not_found),
        T(test_lh_config_load_file_fractional_number_invalid),
        T(test_lh_config_load_file_bad_value_names_option),
        T(test_lh_config_load_file_wrong_value_type_invalid),
        T(test_lh_config_load_file_non_string_key_invalid),
        T(test_lh_config_load_env_applies_variables),
        T(test_lh_config_load_env_ignores_unrelated),
        T(test_lh_config_load_env_bad_value_names_variable),
        T(test_lh_config_env_typos),
        T(test_lh_config_sources_precedence),
        T(test_lh_config_bad_value_overridden_is_not_checked),
        T(test_lh_config_load_env_bad_word_names_variable),
        T(test_lh_config_set_good_words_and_urls),
        T(test_lh_config_set_refuses_unknown_words),
        T(test_lh_config_set_refuses_empty_host_and_app),
        T(test_lh_config_set_refuses_bad_urls),
        T(test_lh_config_set_mysql_url_needs_a_database),
        T(test_lh_config_set_redis_url_db_and_user),
        T(test_lh_config_cidr_lists_checked_with_their_source),
        T(test_lh_config_where_names_each_source),
        T(test_lh_config_load_file_endless_loop_fails),
        T(test_lh_config_free_twice_safe),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
