/* include/luahost/migrate.h: numbered SQL migrations and seeds.
 * A directory holds files named NNN_what.sql, applied once each, in name
 * order. The table luahost_migrations records what was applied: a migration
 * by its file name, a seed as "seeds/" and its file name, so that a seed and
 * a migration may share a name. Each file holds statements that end with ';'
 * at the end of a line.
 * Thread safety: one migration at a time per database (GET_LOCK), from any
 * thread. */
#ifndef LUAHOST_MIGRATE_H
#define LUAHOST_MIGRATE_H
#include <stddef.h>
#include "luahost/common.h"
#include "luahost/db.h"

struct lh_migrate_counts {
    unsigned migrations, seeds; /* files applied by this call */
};

/* Applies the files of migrations_dir not applied yet, then those of
 * seeds_dir (NULL: no seeds). A missing dir has nothing to apply. On failure
 * the message names the file and the statement's first line; files before it
 * stay applied. A seed recorded by its bare name (as before seeds had their
 * prefix) counts as applied unless a migration has that name. */
enum lh_status lh_migrate(struct lh_db *db, const char *migrations_dir, const char *seeds_dir,
                          struct lh_migrate_counts *counts, char *err, size_t errlen);

/* Finds the first file of migrations_dir not recorded as applied, into
 * pending (empty when every one is; a missing dir has none), and changes
 * nothing: for commands that need the schema but must not migrate. */
enum lh_status lh_migrate_pending(struct lh_db *db, const char *migrations_dir, char *pending,
                                  size_t pendinglen, char *err, size_t errlen);

#endif
