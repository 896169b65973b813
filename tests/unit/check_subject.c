/*
 * check_subject.c — the subject tag, plain and inside encoded-words, and
 * the Subject left after taking it out.
 */
#include <string.h>

#include "encword.h"
#include "subject.h"
#include "testutil.h"

static const struct tag_case {
	const char *subject;
	bool tagged;
	const char *want;     /* the Subject without the tag, decoded */
	bool encoded;         /* want it encoded again */
} tag_cases[] = {
	{ "Re: [encrypt] plans", true, "Re: plans", false },
	{ "[ENCRYPT] plans", true, "plans", false },
	{ "plans [encrypt]", true, "plans", false },
	{ "plans", false, NULL, false },
	{ "=?UTF-8?B?W2VuY3J5cHRdIEdyw7zDn2U=?=", true, "Gr\xc3\xbc\xc3\x9f" "e", true },
	{ "=?UTF-8?Q?=5Bencrypt=5D_Gr=C3=BC=C3=9Fe?=", true, "Gr\xc3\xbc\xc3\x9f" "e", true },
	{ "Re: =?ISO-8859-1?Q?=5Bencrypt=5D_Gr=FC=DFe?=", true, "Re: Gr\xc3\xbc\xc3\x9f" "e", true },
	{ "=?UTF-8?Q?Gr=C3=BC=C3=9Fe?=", false, NULL, false },
	/* undecodable: untagged, unless the tag is in the plain text */
	{ "=?no-such-charset?Q?=5Bencrypt=5D?=", false, NULL, false },
	{ "[encrypt] =?no-such-charset?Q?x?=", true, "=?no-such-charset?Q?x?=", false },
};

START_TEST(the_tag_is_found_and_taken_out)
{
	const struct tag_case *tc = &tag_cases[_i];
	struct buf out = BUF_INIT, dec = BUF_INIT;
	bool tagged = false;
	char why[200] = "";

	ck_assert_int_eq(subject_untag("TEST", tc->subject, "[encrypt]", &tagged, &out), SM_OK);
	ck_assert_msg(tagged == tc->tagged, "%s: tagged got %d, want %d", tc->subject, tagged,
	    tc->tagged);
	if (tagged) {
		if (tc->encoded) {
			ck_assert_msg(strncmp(buf_cstr(&out), "=?UTF-8?B?", 10) == 0,
			    "%s: got \"%s\", want encoded-words", tc->subject, buf_cstr(&out));
			ck_assert_int_eq(encword_decode(buf_cstr(&out), &dec, NULL, why, sizeof(why)),
			    SM_OK);
		} else {
			buf_append_str(&dec, buf_cstr(&out));
		}
		ck_assert_msg(strcmp(buf_cstr(&dec), tc->want) == 0, "%s: got \"%s\", want \"%s\"",
		    tc->subject, buf_cstr(&dec), tc->want);
	}
	buf_free(&out);
	buf_free(&dec);
}
END_TEST

START_TEST(no_subject_or_no_tag_never_matches)
{
	struct buf out = BUF_INIT;
	bool tagged = true;

	ck_assert_int_eq(subject_untag(NULL, NULL, "[encrypt]", &tagged, &out), SM_OK);
	ck_assert(!tagged);
	tagged = true;
	ck_assert_int_eq(subject_untag(NULL, "[encrypt] x", "", &tagged, &out), SM_OK);
	ck_assert(!tagged);
	buf_free(&out);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("subject");
	TCase *tc = tcase_create("core");

	tcase_add_loop_test(tc, the_tag_is_found_and_taken_out, 0,
	    (int)(sizeof(tag_cases) / sizeof(tag_cases[0])));
	tcase_add_test(tc, no_subject_or_no_tag_never_matches);
	suite_add_tcase(s, tc);
	return testutil_run(s);
}
