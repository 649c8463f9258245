/* src/migrate.c: numbered SQL migrations, recorded in luahost_migrations. */
#include "luahost/migrate.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "luahost/log.h"

#define MAX_FILES 1000
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

enum lh_status lh_migrate(struct lh_db *db, const char *dir, unsigned *applied, char *err,
                          size_t errlen)
{
    char *names[MAX_FILES];
    size_t n = 0;
    struct lh_db_conn *c = NULL;
    enum lh_status st = LH_OK;
    char path[4096], msg[256];

    *applied = 0;
    DIR *d = opendir(dir);
    if (d == NULL) {
        if (errno == ENOENT)
            return LH_OK;
        snprintf(err, errlen, "%s: %s", dir, strerror(errno));
        return LH_ERR_IO;
    }
    for (struct dirent *e = readdir(d); e != NULL && n < MAX_FILES; e = readdir(d)) {
        if (!is_migration(e->d_name))
            continue;
        names[n] = strdup(e->d_name);
        if (names[n] != NULL)
            n++;
    }
    closedir(d);
    qsort(names, n, sizeof(names[0]), compare_names);

    st = lh_db_acquire(db, "migrate", dir, &c, msg, sizeof(msg));
    if (st != LH_OK) {
        snprintf(err, errlen, "%s", msg);
        goto out;
    }
    /* One migrating instance at a time; the others wait, then find it done. */
    static const char LOCK[] = "SELECT GET_LOCK('luahost_migrate', 60)";
    st = exec(c, LOCK, sizeof(LOCK) - 1, NULL, 0, msg, sizeof(msg));
    if (st == LH_OK)
        st = exec(c, CREATE_TABLE, sizeof(CREATE_TABLE) - 1, NULL, 0, msg, sizeof(msg));
    if (st != LH_OK) {
        snprintf(err, errlen, "migrations table: %s", msg);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        struct lh_db_value name = {.type = LH_DB_TEXT, .s = names[i], .len = strlen(names[i])};
        struct lh_db_result *r = NULL;
        static const char SEEN[] = "SELECT 1 FROM luahost_migrations WHERE name = ?";
        st = lh_db_run(c, SEEN, sizeof(SEEN) - 1, &name, 1, &r, msg, sizeof(msg));
        int done = st == LH_OK && lh_db_result_rows(r) > 0;
        lh_db_result_free(r);
        if (st != LH_OK) {
            snprintf(err, errlen, "%s: %s", names[i], msg);
            goto out;
        }
        if (done)
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        size_t len;
        char *text = read_file(path, &len);
        if (text == NULL) {
            snprintf(err, errlen, "%s: cannot read", path);
            st = LH_ERR_IO;
            goto out;
        }
        st = apply_file(c, path, text, err, errlen);
        free(text);
        if (st != LH_OK)
            goto out;
        static const char RECORD[] = "INSERT INTO luahost_migrations (name) VALUES (?)";
        st = exec(c, RECORD, sizeof(RECORD) - 1, &name, 1, msg, sizeof(msg));
        if (st != LH_OK) {
            snprintf(err, errlen, "%s: recording: %s", names[i], msg);
            goto out;
        }
        lh_log(LH_LOG_INFO, NULL, "migrate: applied %s", path);
        (*applied)++;
    }
out:
    if (c != NULL) {
        static const char UNLOCK[] = "SELECT RELEASE_LOCK('luahost_migrate')";
        exec(c, UNLOCK, sizeof(UNLOCK) - 1, NULL, 0, msg, sizeof(msg));
        lh_db_release(db, c);
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    return st;
}
