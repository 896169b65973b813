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

#endif
