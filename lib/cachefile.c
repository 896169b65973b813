/*
 * cachefile.c — see cachefile.h.
 */
#include "cachefile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

/* A busy daemon holds the write lock for a moment now and then. */
#define CACHEFILE_BUSY_MS 5000

static sm_status
cf_fail(sqlite3 *db, char *err, size_t errlen, const char *what, const char *path)
{
	sm_seterr(err, errlen, "%s %s: %s", what, path, db ? sqlite3_errmsg(db) : "out of memory");
	return SM_ERR_DB;
}

/* PRAGMA integrity_check says "ok"? */
static sm_status
cf_check(sqlite3 *db, const char *path, char *err, size_t errlen)
{
	sqlite3_stmt *st = NULL;
	sm_status rc = SM_OK;
	const char *txt;

	if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL) != SQLITE_OK)
		return cf_fail(db, err, errlen, "cannot check", path);
	if (sqlite3_step(st) != SQLITE_ROW) {
		rc = cf_fail(db, err, errlen, "cannot check", path);
	} else if ((txt = (const char *)sqlite3_column_text(st, 0)) == NULL ||
	    strcmp(txt, "ok") != 0) {
		sm_seterr(err, errlen, "%s: integrity check: %s", path, txt ? txt : "no answer");
		rc = SM_ERR_DB;
	}
	sqlite3_finalize(st);
	return rc;
}

/* Copy all of from into to ("main" to "main"), retrying while busy. */
static sm_status
cf_copy(sqlite3 *to, sqlite3 *from, const char *what, const char *path, int *pages,
    char *err, size_t errlen)
{
	sqlite3_backup *b = sqlite3_backup_init(to, "main", from, "main");
	int rc, waited = 0;

	if (b == NULL)
		return cf_fail(to, err, errlen, what, path);
	while ((rc = sqlite3_backup_step(b, -1)) == SQLITE_BUSY || rc == SQLITE_LOCKED) {
		if ((waited += 50) > CACHEFILE_BUSY_MS)
			break;
		sqlite3_sleep(50);
	}
	if (pages)
		*pages = sqlite3_backup_pagecount(b);
	sqlite3_backup_finish(b);
	if (rc != SQLITE_DONE) {
		sm_seterr(err, errlen, "%s %s: %s", what, path, sqlite3_errstr(rc));
		return SM_ERR_DB;
	}
	return SM_OK;
}

sm_status
cachefile_backup(const char *db, const char *out, int *pages, char *err, size_t errlen)
{
	sqlite3 *src = NULL, *dst = NULL;
	char tmp[4200];
	sm_status st = SM_ERR_DB;
	int fd;

	snprintf(tmp, sizeof(tmp), "%s.tmp-XXXXXX", out);
	if ((fd = mkostemp(tmp, O_CLOEXEC)) < 0) {
		sm_seterr(err, errlen, "%s: %s", out, strerror(errno));
		return SM_ERR_IO;
	}
	fchmod(fd, 0600);
	close(fd);
	if (sqlite3_open_v2(db, &src, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
		st = cf_fail(src, err, errlen, "cannot open", db);
		goto done;
	}
	sqlite3_busy_timeout(src, CACHEFILE_BUSY_MS);
	if (sqlite3_open_v2(tmp, &dst, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
		st = cf_fail(dst, err, errlen, "cannot write", out);
		goto done;
	}
	if ((st = cf_copy(dst, src, "cannot back up", db, pages, err, errlen)) != SM_OK)
		goto done;
	/* One self-contained file: no -wal beside it. */
	sqlite3_exec(dst, "PRAGMA journal_mode=DELETE", NULL, NULL, NULL);
	if ((st = cf_check(dst, out, err, errlen)) != SM_OK)
		goto done;
	if (sqlite3_close(dst) != SQLITE_OK) {
		st = cf_fail(dst, err, errlen, "cannot write", out);
		goto done;
	}
	dst = NULL;
	if ((fd = open(tmp, O_RDONLY | O_CLOEXEC)) < 0 || fsync(fd) != 0 || rename(tmp, out) != 0) {
		sm_seterr(err, errlen, "%s: %s", out, strerror(errno));
		st = SM_ERR_IO;
	}
	if (fd >= 0)
		close(fd);
done:
	sqlite3_close(dst);
	sqlite3_close(src);
	if (st != SM_OK)
		unlink(tmp);
	return st;
}

sm_status
cachefile_restore(const char *in, const char *db, int *pages, char *err, size_t errlen)
{
	sqlite3 *src = NULL, *dst = NULL;
	sm_status st;
	struct stat sb;

	if (stat(in, &sb) != 0) {
		sm_seterr(err, errlen, "%s: %s", in, strerror(errno));
		return SM_ERR_IO;
	}
	if (sqlite3_open_v2(in, &src, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
		st = cf_fail(src, err, errlen, "cannot open", in);
		goto done;
	}
	/* Not a database, or a damaged one: refuse before touching db. */
	if ((st = cf_check(src, in, err, errlen)) != SM_OK)
		goto done;
	if (sqlite3_open_v2(db, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
	    SQLITE_OK) {
		st = cf_fail(dst, err, errlen, "cannot open", db);
		goto done;
	}
	sqlite3_busy_timeout(dst, CACHEFILE_BUSY_MS);
	st = cf_copy(dst, src, "cannot restore into", db, pages, err, errlen);
done:
	sqlite3_close(dst);
	sqlite3_close(src);
	return st;
}
