/* src/migrate.c: numbered SQL migrations and seeds, recorded in luahost_migrations. */
#include "luahost/migrate.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "luahost/log.h"

#define MAX_FILES 1000
#define MAX_NAME 180 /* the record column holds 190: room for SEED_PREFIX */
#define SEED_PREFIX "seeds/"
#define MAX_FILE_BYTES (16 * 1024 * 1024)

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* NNN_something.sql */
static int is_migration(const char *name)
{
    size_t len = strlen(name);
    return len > 8 && name[0] >= '0' && name[0] <= '9' && strcmp(name + len - 4, ".sql") == 0;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;

    if (f == NULL)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0) {
        long size = ftell(f);
        if (size >= 0 && size <= MAX_FILE_BYTES && fseek(f, 0, SEEK_SET) == 0) {
            buf = malloc((size_t)size + 1);
            if (buf && fread(buf, 1, (size_t)size, f) == (size_t)size) {
                buf[size] = '\0';
                *len = (size_t)size;
            } else {
                free(buf);
                buf = NULL;
            }
        }
    }
    fclose(f);
    return buf;
}

static enum lh_status exec(struct lh_db_conn *c, const char *sql, size_t len,
                           const struct lh_db_value *params, size_t n, char *err, size_t errlen)
{
    struct lh_db_result *r = NULL;
    enum lh_status st = lh_db_run(c, sql, len, params, n, &r, err, errlen);
    lh_db_result_free(r);
    return st;
}

/* Skips blanks and "--" comment lines before a statement. */
static const char *skip_comments(const char *p, const char *end)
{
    for (;;) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
            p++;
        if (end - p < 2 || p[0] != '-' || p[1] != '-')
            return p;
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        p = nl ? nl + 1 : end;
    }
}

/* Where the statement starting at p ends: a ';' followed by blanks and a
 * newline, or the end of the text. */
static char *statement_end(char *p)
{
    for (char *semi = strchr(p, ';'); semi != NULL; semi = strchr(semi + 1, ';')) {
        const char *q = semi + 1;
        while (*q == ' ' || *q == '\t' || *q == '\r')
            q++;
        if (*q == '\n' || *q == '\0')
            return semi;
    }
    return p + strlen(p);
}

/* Runs each statement of text. */
static enum lh_status apply_file(struct lh_db_conn *c, const char *file, char *text, char *err,
                                 size_t errlen)
{
    char msg[256];

    for (char *p = text; *p;) {
        char *end = statement_end(p);
        const char *stmt = skip_comments(p, end);
        if (stmt < end) {
            enum lh_status st = exec(c, stmt, (size_t)(end - stmt), NULL, 0, msg, sizeof(msg));
            if (st != LH_OK) {
                size_t first = strcspn(stmt, "\n");
                snprintf(err, errlen, "%s: statement \"%.*s\": %s", file,
                         (int)(first > 80 ? 80 : first), stmt, msg);
                return st;
            }
        }
        p = *end ? end + 1 : end;
    }
    return LH_OK;
}

static const char CREATE_TABLE[] =
    "CREATE TABLE IF NOT EXISTS luahost_migrations ("
    " name VARCHAR(190) NOT NULL PRIMARY KEY,"
    " applied_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP"
    ") DEFAULT CHARSET=utf8mb4";

/* The NNN_*.sql files of a directory, sorted by name. */
struct file_list {
    char *names[MAX_FILES];
    size_t n;
};

static void file_list_free(struct file_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->names[i]);
    l->n = 0;
}

/* A missing dir is an empty list. A file is never skipped silently: too many
 * of them, or a name too long to record, is an error. */
static enum lh_status list_files(const char *dir, struct file_list *l, char *err, size_t errlen)
{
    l->n = 0;
    if (dir == NULL)
        return LH_OK;
    DIR *d = opendir(dir);
    if (d == NULL) {
        if (errno == ENOENT)
            return LH_OK;
        snprintf(err, errlen, "%s: %s", dir, strerror(errno));
        return LH_ERR_IO;
    }
    enum lh_status st = LH_OK;
    for (struct dirent *e = readdir(d); e != NULL; e = readdir(d)) {
        if (!is_migration(e->d_name))
            continue;
        if (strlen(e->d_name) > MAX_NAME) {
            snprintf(err, errlen, "%s/%s: the name is longer than %d characters", dir, e->d_name,
                     MAX_NAME);
            st = LH_ERR_INVALID;
        } else if (l->n == MAX_FILES) {
            snprintf(err, errlen, "%s: more than %d files", dir, MAX_FILES);
            st = LH_ERR_INVALID;
        } else if ((l->names[l->n] = strdup(e->d_name)) == NULL) {
            snprintf(err, errlen, "out of memory");
            st = LH_ERR_NOMEM;
        } else {
            l->n++;
            continue;
        }
        break;
    }
    closedir(d);
    if (st != LH_OK)
        file_list_free(l);
    qsort(l->names, l->n, sizeof(l->names[0]), compare_names);
    return st;
}

static int listed(const struct file_list *l, const char *name)
{
    return bsearch(&name, l->names, l->n, sizeof(l->names[0]), compare_names) != NULL;
}

/* *found: whether name is in the table. */
static enum lh_status recorded(struct lh_db_conn *c, const char *name, int *found, char *err,
                               size_t errlen)
{
    static const char SEEN[] = "SELECT 1 FROM luahost_migrations WHERE name = ?";
    struct lh_db_value v = {.type = LH_DB_TEXT, .s = name, .len = strlen(name)};
    struct lh_db_result *r = NULL;
    enum lh_status st = lh_db_run(c, SEEN, sizeof(SEEN) - 1, &v, 1, &r, err, errlen);
    *found = st == LH_OK && lh_db_result_rows(r) > 0;
    lh_db_result_free(r);
    return st;
}

/* Before seeds had their prefix, they were recorded by bare name. Such a
 * record is a seed's when no migration has that name: it is renamed, and the
 * seed stays applied rather than running twice. */
static enum lh_status adopt_bare_seed_record(struct lh_db_conn *c, const char *name,
                                             const char *record, const struct file_list *migrations,
                                             int *adopted, char *err, size_t errlen)
{
    *adopted = 0;
    if (listed(migrations, name))
        return LH_OK;
    enum lh_status st = recorded(c, name, adopted, err, errlen);
    if (st != LH_OK || !*adopted)
        return st;
    static const char RENAME[] = "UPDATE luahost_migrations SET name = ? WHERE name = ?";
    struct lh_db_value v[2] = {{.type = LH_DB_TEXT, .s = record, .len = strlen(record)},
                               {.type = LH_DB_TEXT, .s = name, .len = strlen(name)}};
    return exec(c, RENAME, sizeof(RENAME) - 1, v, 2, err, errlen);
}

/* Applies and records the files of one list that are not recorded yet.
 * migrations is NULL for the migrations themselves, the migrations' list for
 * seeds (whose records carry SEED_PREFIX). */
static enum lh_status apply_list(struct lh_db_conn *c, const char *dir, const struct file_list *l,
                                 const struct file_list *migrations, unsigned *applied, char *err,
                                 size_t errlen)
{
    char record[sizeof(SEED_PREFIX) + MAX_NAME], path[4096], msg[256];

    for (size_t i = 0; i < l->n; i++) {
        snprintf(record, sizeof(record), "%s%s", migrations ? SEED_PREFIX : "", l->names[i]);
        int done = 0;
        enum lh_status st = recorded(c, record, &done, msg, sizeof(msg));
        if (st == LH_OK && !done && migrations != NULL)
            st = adopt_bare_seed_record(c, l->names[i], record, migrations, &done, msg,
                                        sizeof(msg));
        if (st != LH_OK) {
            snprintf(err, errlen, "%s/%s: %s", dir, l->names[i], msg);
            return st;
        }
        if (done)
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, l->names[i]);
        size_t len;
        char *text = read_file(path, &len);
        if (text == NULL) {
            snprintf(err, errlen, "%s: cannot read", path);
            return LH_ERR_IO;
        }
        st = apply_file(c, path, text, err, errlen);
        free(text);
        if (st != LH_OK)
            return st;
        static const char RECORD[] = "INSERT INTO luahost_migrations (name) VALUES (?)";
        struct lh_db_value v = {.type = LH_DB_TEXT, .s = record, .len = strlen(record)};
        st = exec(c, RECORD, sizeof(RECORD) - 1, &v, 1, msg, sizeof(msg));
        if (st != LH_OK) {
            snprintf(err, errlen, "%s: recording: %s", path, msg);
            return st;
        }
        lh_log(LH_LOG_INFO, NULL, "migrate: applied %s", path);
        (*applied)++;
    }
    return LH_OK;
}

enum lh_status lh_migrate(struct lh_db *db, const char *migrations_dir, const char *seeds_dir,
                          struct lh_migrate_counts *counts, char *err, size_t errlen)
{
    struct file_list migrations, seeds = {.n = 0};
    struct lh_db_conn *c = NULL;
    char msg[256];

    counts->migrations = counts->seeds = 0;
    enum lh_status st = list_files(migrations_dir, &migrations, err, errlen);
    if (st == LH_OK)
        st = list_files(seeds_dir, &seeds, err, errlen);
    if (st == LH_OK) {
        st = lh_db_acquire(db, "migrate", migrations_dir, &c, msg, sizeof(msg));
        if (st != LH_OK)
            snprintf(err, errlen, "%s", msg);
    }
    if (c != NULL) {
        /* One migrating instance at a time; the others wait, then find it done. */
        static const char LOCK[] = "SELECT GET_LOCK('luahost_migrate', 60)";
        st = exec(c, LOCK, sizeof(LOCK) - 1, NULL, 0, msg, sizeof(msg));
        if (st == LH_OK)
            st = exec(c, CREATE_TABLE, sizeof(CREATE_TABLE) - 1, NULL, 0, msg, sizeof(msg));
        if (st != LH_OK)
            snprintf(err, errlen, "migrations table: %s", msg);
        if (st == LH_OK)
            st = apply_list(c, migrations_dir, &migrations, NULL, &counts->migrations, err, errlen);
        if (st == LH_OK)
            st = apply_list(c, seeds_dir, &seeds, &migrations, &counts->seeds, err, errlen);
        static const char UNLOCK[] = "SELECT RELEASE_LOCK('luahost_migrate')";
        exec(c, UNLOCK, sizeof(UNLOCK) - 1, NULL, 0, msg, sizeof(msg));
        lh_db_release(db, c);
    }
    file_list_free(&migrations);
    file_list_free(&seeds);
    return st;
}

enum lh_status lh_migrate_pending(struct lh_db *db, const char *migrations_dir, char *pending,
                                  size_t pendinglen, char *err, size_t errlen)
{
    static const char HAS_TABLE[] =
        "SELECT 1 FROM information_schema.tables WHERE table_schema = DATABASE() "
        "AND table_name = 'luahost_migrations'";
    struct file_list migrations;
    struct lh_db_conn *c = NULL;
    struct lh_db_result *r = NULL;
    char msg[256];

    pending[0] = '\0';
    enum lh_status st = list_files(migrations_dir, &migrations, err, errlen);
    if (st != LH_OK || migrations.n == 0)
        return st;
    st = lh_db_acquire(db, "migrate", migrations_dir, &c, msg, sizeof(msg));
    if (st == LH_OK)
        st = lh_db_run(c, HAS_TABLE, sizeof(HAS_TABLE) - 1, NULL, 0, &r, msg, sizeof(msg));
    /* Without the table nothing is applied: the first file is pending. */
    int table = st == LH_OK && lh_db_result_rows(r) > 0;
    lh_db_result_free(r);
    for (size_t i = 0; st == LH_OK && i < migrations.n && pending[0] == '\0'; i++) {
        int done = 0;
        if (table)
            st = recorded(c, migrations.names[i], &done, msg, sizeof(msg));
        if (st == LH_OK && !done)
            snprintf(pending, pendinglen, "%s", migrations.names[i]);
    }
    if (st != LH_OK)
        snprintf(err, errlen, "%s: %s", migrations_dir, msg);
    if (c != NULL)
        lh_db_release(db, c);
    file_list_free(&migrations);
    return st;
}
