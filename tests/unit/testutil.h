/*
 * testutil.h — helpers shared by the Check suites.
 */
#ifndef SMIME_TESTUTIL_H
#define SMIME_TESTUTIL_H

#include <check.h>
#include <stddef.h>

/* Run one suite; returns the number of failures (the program's exit code). */
int testutil_run(Suite *s);
/* Path of a file under the source tree (SMIME_TOP, or "." when unset).
 * Returns a static buffer valid until the next call. */
const char *testutil_path(const char *rel);
/* A fresh private temp directory (mode 0700), removed by testutil_rmtree. */
char *testutil_tmpdir(void);
void testutil_rmtree(const char *dir);
/* Read a whole file; *len receives its size. Caller frees. NULL on error. */
unsigned char *testutil_slurp(const char *path, size_t *len);

/* A private PostgreSQL cluster (tests/pgcluster) in a fresh temp
 * directory: *dir receives it, conninfo (a libpq string for database
 * "smime" over loopback TCP) is filled. Fails the test with the script's
 * reason when it cannot start. Stop it with testutil_pg_stop (NULL-safe;
 * removes the directory) and restart it with testutil_pg_restart. */
void testutil_pg_start(char **dir, char *conninfo, size_t len);
void testutil_pg_stop(char *dir);
void testutil_pg_halt(const char *dir);	   /* stop, keep the data */
void testutil_pg_restart(const char *dir); /* start again, same port */
/* Empty the database (drop and recreate schema public). */
void testutil_pg_reset(const char *conninfo);
/* Run one SQL statement; returns the first column of the first row (static
 * buffer) or "" ; fails the test on error. */
const char *testutil_pg_sql(const char *conninfo, const char *sql);

#endif
