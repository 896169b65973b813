/*
 * check_spool.c — bodies stay in memory up to the threshold, move to a
 * private file past it, and are refused past the maximum.
 */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>

#include "spool.h"
#include "testutil.h"

static size_t
files_in(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t n = 0;

	ck_assert_ptr_nonnull(d);
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

START_TEST(a_small_body_stays_in_memory)
{
	char *dir = testutil_tmpdir();
	struct spool *sp;
	const unsigned char *p;
	size_t n;

	ck_assert_int_eq(spool_new(dir, 100, 1000, &sp), SM_OK);
	ck_assert_int_eq(spool_write(sp, "hello ", 6), SM_OK);
	ck_assert_int_eq(spool_write(sp, "world", 5), SM_OK);
	ck_assert(!spool_on_disk(sp));
	ck_assert_int_eq(spool_view(sp, &p, &n), SM_OK);
	ck_assert_uint_eq(n, 11);
	ck_assert(memcmp(p, "hello world", 11) == 0);
	spool_free(sp);
	testutil_rmtree(dir);
	free(dir);
}
END_TEST

START_TEST(a_large_body_moves_to_an_invisible_file)
{
	char *dir = testutil_tmpdir();
	struct spool *sp;
	const unsigned char *p;
	size_t n;
	unsigned char chunk[4096];

	for (size_t i = 0; i < sizeof(chunk); i++)
		chunk[i] = (unsigned char)i;
	ck_assert_int_eq(spool_new(dir, 10000, 1 << 20, &sp), SM_OK);
	for (int i = 0; i < 100; i++)
		ck_assert_int_eq(spool_write(sp, chunk, sizeof(chunk)), SM_OK);
	ck_assert(spool_on_disk(sp));
	/* the file has no name: nothing to leak, even after a crash */
	ck_assert_uint_eq(files_in(dir), 0);
	ck_assert_int_eq(spool_view(sp, &p, &n), SM_OK);
	ck_assert_uint_eq(n, 100 * sizeof(chunk));
	for (int i = 0; i < 100; i++)
		ck_assert(memcmp(p + (size_t)i * sizeof(chunk), chunk, sizeof(chunk)) == 0);
	/* writing after a view still works and the next view sees it all */
	ck_assert_int_eq(spool_write(sp, "x", 1), SM_OK);
	ck_assert_int_eq(spool_view(sp, &p, &n), SM_OK);
	ck_assert_uint_eq(n, 100 * sizeof(chunk) + 1);
	ck_assert_int_eq(p[n - 1], 'x');
	spool_free(sp);
	testutil_rmtree(dir);
	free(dir);
}
END_TEST

START_TEST(a_body_over_the_maximum_is_refused)
{
	char *dir = testutil_tmpdir();
	struct spool *sp;

	ck_assert_int_eq(spool_new(dir, 10, 20, &sp), SM_OK);
	ck_assert_int_eq(spool_write(sp, "0123456789", 10), SM_OK);
	ck_assert_int_eq(spool_write(sp, "0123456789", 10), SM_OK);
	ck_assert_int_eq(spool_write(sp, "!", 1), SM_ERR_LIMIT);
	ck_assert_uint_eq(spool_size(sp), 20);
	spool_free(sp);
	testutil_rmtree(dir);
	free(dir);
}
END_TEST

START_TEST(an_empty_body_has_an_empty_view)
{
	struct spool *sp;
	const unsigned char *p = NULL;
	size_t n = 99;

	ck_assert_int_eq(spool_new("/tmp", 10, 20, &sp), SM_OK);
	ck_assert_int_eq(spool_view(sp, &p, &n), SM_OK);
	ck_assert_ptr_nonnull(p);
	ck_assert_uint_eq(n, 0);
	spool_free(sp);
	spool_free(NULL);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("spool");
	TCase *tc = tcase_create("spool");

	tcase_add_test(tc, a_small_body_stays_in_memory);
	tcase_add_test(tc, a_large_body_moves_to_an_invisible_file);
	tcase_add_test(tc, a_body_over_the_maximum_is_refused);
	tcase_add_test(tc, an_empty_body_has_an_empty_view);
	suite_add_tcase(s, tc);
	return testutil_run(s);
}
