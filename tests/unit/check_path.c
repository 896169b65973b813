/*
 * check_path.c — path_dirname, the one directory-part helper that
 * preflight, the pid file check and smimectl share.
 */
#include <string.h>

#include "path.h"
#include "testutil.h"

static const struct dirname_case {
	const char *path, *want;
} dirname_cases[] = {
	{ "/var/lib/smime-milter/cache.db", "/var/lib/smime-milter" },
	{ "/cache.db", "/" },
	{ "/", "/" },
	{ "cache.db", "." },
	{ "", "." },
	{ "run/p.pid", "run" },
	{ "/a/b/", "/a/b" }, /* not dirname(3): the trailing '/' counts */
	{ "//x", "/" },
};

START_TEST(the_directory_part_is_everything_before_the_last_slash)
{
	const struct dirname_case *tc = &dirname_cases[_i];
	char buf[64];
	const char *got = path_dirname(tc->path, buf, sizeof(buf));

	ck_assert_ptr_eq(got, buf);
	ck_assert_msg(strcmp(got, tc->want) == 0, "%s: got \"%s\", want \"%s\"", tc->path, got,
	    tc->want);
}
END_TEST

START_TEST(a_short_buffer_truncates_and_never_overflows)
{
	char buf[8] = "xxxxxxx";

	/* "/var/lib/x" truncated to "/var/li", whose last '/' ends "/var". */
	ck_assert_str_eq(path_dirname("/var/lib/x", buf, sizeof(buf)), "/var");
	ck_assert_str_eq(path_dirname("abcdefghijk", buf, 2), ".");
	ck_assert_ptr_eq(path_dirname("/a/b", buf, 0), buf);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("path");
	TCase *tc = tcase_create("core");

	tcase_add_loop_test(tc, the_directory_part_is_everything_before_the_last_slash, 0,
	    (int)(sizeof(dirname_cases) / sizeof(dirname_cases[0])));
	tcase_add_test(tc, a_short_buffer_truncates_and_never_overflows);
	suite_add_tcase(s, tc);
	return testutil_run(s);
}
