/*
 * cachefile.h — the SQLite key cache as a file: consistent backups and
 * restores with SQLite's online backup API, whatever the schema.
 *
 * `cp cache.db` is not a backup: in WAL mode the recent changes live in
 * cache.db-wal. The backup API copies the database as one consistent
 * snapshot, page by page, while the daemon keeps reading and writing it.
 */
#ifndef SMIME_CACHEFILE_H
#define SMIME_CACHEFILE_H

#include <stddef.h>

#include "status.h"

/* Copy the database db into the new file out (mode 0600, a single file
 * with no WAL, written to a temporary file beside out, checked with
 * PRAGMA integrity_check, synced and renamed: out is whole or untouched).
 * *pages (may be NULL) receives the number of pages copied. */
sm_status cachefile_backup(const char *db, const char *out, int *pages, char *err,
    size_t errlen);

/* Replace the contents of the database db with those of the backup file
 * in (checked first: an SQLite database passing integrity_check), in one
 * write transaction: connections of a running daemon see the old contents
 * or the new ones, never a mix, and carry on. db is created when missing. */
sm_status cachefile_restore(const char *in, const char *db, int *pages, char *err,
    size_t errlen);

#endif
