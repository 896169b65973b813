#include "testutil.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

int
testutil_run(Suite *s)
{
	SRunner *sr = srunner_create(s);
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}

const char *
testutil_path(const char *rel)
{
	static char path[4096];
	const char *top = getenv("SMIME_TOP");

	snprintf(path, sizeof(path), "%s/%s", top ? top : ".", rel);
	return path;
}

char *
testutil_tmpdir(void)
{
	char tmpl[] = "/tmp/smime-test.XXXXXX";
	char *d = mkdtemp(tmpl);

	return d ? strdup(d) : NULL;
}

static int
rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

void
testutil_rmtree(const char *dir)
{
	if (dir)
		nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

unsigned char *
testutil_slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	unsigned char *p = NULL;
	long n;

	if (f == NULL)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 &&
	    fseek(f, 0, SEEK_SET) == 0 && (p = malloc((size_t)n + 1)) != NULL) {
		if (fread(p, 1, (size_t)n, f) != (size_t)n) {
			free(p);
			p = NULL;
		} else {
			p[n] = '\0';
			*len = (size_t)n;
		}
	}
	fclose(f);
	return p;
}

/* ---- a private PostgreSQL cluster ---- */

static void
pg_script(const char *verb, const char *dir, char *out, size_t len)
{
	char cmd[8192], line[64] = "";
	FILE *p;
	int rc;

	snprintf(cmd, sizeof(cmd), "sh '%s' %s '%s/pg'",
		 testutil_path("tests/pgcluster"), verb, dir);
	p = popen(cmd, "r");
	ck_assert_msg(p != NULL, "popen %s", cmd);
	if (fgets(line, sizeof(line), p) == NULL)
		line[0] = '\0';
	rc = pclose(p);
	ck_assert_msg(rc == 0, "%s: failed (exit %d; see its message above)",
		      cmd, rc);
	if (out)
		snprintf(out, len, "%s", line);
}

void
testutil_pg_start(char **dir, char *conninfo, size_t len)
{
	char port[64];

	*dir = testutil_tmpdir();
	ck_assert(*dir != NULL);
	pg_script("start", *dir, port, sizeof(port));
	port[strcspn(port, "\n")] = '\0';
	ck_assert_msg(port[0] != '\0', "pgcluster printed no port");
	snprintf(conninfo, len,
		 "host=127.0.0.1 port=%s dbname=smime user=postgres", port);
}

void
testutil_pg_halt(const char *dir)
{
	pg_script("stop", dir, NULL, 0);
}

void
testutil_pg_restart(const char *dir)
{
	pg_script("restart", dir, NULL, 0);
}

void
testutil_pg_stop(char *dir)
{
	if (dir == NULL)
		return;
	pg_script("stop", dir, NULL, 0);
	testutil_rmtree(dir);
	free(dir);
}

const char *
testutil_pg_sql(const char *conninfo, const char *sql)
{
	static char val[1024];
	PGconn *c = PQconnectdb(conninfo);
	PGresult *r;

	ck_assert_msg(PQstatus(c) == CONNECTION_OK, "connect: %s",
		      PQerrorMessage(c));
	r = PQexec(c, sql);
	ck_assert_msg(PQresultStatus(r) == PGRES_COMMAND_OK ||
			      PQresultStatus(r) == PGRES_TUPLES_OK,
		      "%s: %s", sql, PQerrorMessage(c));
	val[0] = '\0';
	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0)
		snprintf(val, sizeof(val), "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	PQfinish(c);
	return val;
}

void
testutil_pg_reset(const char *conninfo)
{
	testutil_pg_sql(conninfo, "SET client_min_messages = warning;"
				  "DROP SCHEMA public CASCADE;"
				  "CREATE SCHEMA public");
}
