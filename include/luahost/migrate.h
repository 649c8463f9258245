/* include/luahost/migrate.h: numbered SQL migrations.
 * A directory holds files named NNN_what.sql, applied once each, in name
 * order; the names applied are kept in the table luahost_migrations. Each file
 * holds statements that end with ';' at the end of a line.
 * Thread safety: one migration at a time per database (GET_LOCK), from any
 * thread. */
#ifndef LUAHOST_MIGRATE_H
#define LUAHOST_MIGRATE_H
#include <stddef.h>
#include "luahost/common.h"
#include "luahost/db.h"

/* Applies the files of dir not applied yet. *applied receives how many were.
 * A missing dir is not an error (nothing to do). On failure the message
 * names the file and the statement's first line; files before it stay
 * applied. */
enum lh_status lh_migrate(struct lh_db *db, const char *dir, unsigned *applied, char *err,
                          size_t errlen);

#endif
