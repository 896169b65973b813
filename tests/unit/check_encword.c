/*
 * check_encword.c — RFC 2047 encoded-words in the Subject: decoding for the
 * subject tag, encoding the Subject again once the tag is out.
 */
#include <stdbool.h>
#include <string.h>

#include "encword.h"
#include "testutil.h"

static const struct dec_case {
	const char *in;
	const char *want;  /* NULL: undecodable */
	bool words;
} dec_cases[] = {
	{ "plain [encrypt] subject", "plain [encrypt] subject", false },
	{ "=?UTF-8?B?W2VuY3J5cHRdIEdyw7zDn2U=?=", "[encrypt] Gr\xc3\xbc\xc3\x9f" "e", true },
	{ "=?UTF-8?Q?=5Bencrypt=5D_Gr=C3=BC=C3=9Fe?=", "[encrypt] Gr\xc3\xbc\xc3\x9f" "e", true },
	{ "=?utf-8?q?=5Bencrypt=5D?= plans", "[encrypt] plans", true },
	/* white space between adjacent encoded-words is not text */
	{ "=?UTF-8?Q?=5Benc?= =?UTF-8?Q?rypt=5D?=", "[encrypt]", true },
	{ "=?UTF-8?Q?=5Benc?=\r\n =?UTF-8?Q?rypt=5D?= x", "[encrypt] x", true },
	/* other charsets, and RFC 2231 language tags */
	{ "=?ISO-8859-1?Q?Gr=FC=DFe?=", "Gr\xc3\xbc\xc3\x9f" "e", true },
	{ "=?iso-8859-15*de?Q?=A4?=", "\xe2\x82\xac", true },
	{ "Re: =?windows-1252?B?W2VuY3J5cHRdIIA=?=", "Re: [encrypt] \xe2\x82\xac", true },
	/* not encoded-words: kept as they are */
	{ "a=?UTF-8?Q?x?=", "a=?UTF-8?Q?x?=", false },
	{ "=?UTF-8?X?abc?=", "=?UTF-8?X?abc?=", false },
	{ "=?UTF-8?Q?with space?=", "=?UTF-8?Q?with space?=", false },
	/* undecodable */
	{ "=?no-such-charset?Q?x?=", NULL, true },
	{ "=?UTF-8?B?W2V*?=", NULL, true },
	{ "=?UTF-8?Q?=ZZ?=", NULL, true },
	{ "=?UTF-8?B?/w==?=", NULL, true },
};

START_TEST(encoded_words_decode_to_utf8)
{
	const struct dec_case *tc = &dec_cases[_i];
	struct buf out = BUF_INIT;
	bool words = false;
	char why[200] = "";
	sm_status st = encword_decode(tc->in, &out, &words, why, sizeof(why));

	if (tc->want == NULL) {
		ck_assert_msg(st == SM_ERR_PARSE, "%s: got %s (\"%s\"), want a parse error", tc->in,
		    sm_strstatus(st), buf_cstr(&out));
		ck_assert_msg(why[0] != '\0', "%s: no reason given", tc->in);
	} else {
		ck_assert_msg(st == SM_OK, "%s: got %s (%s), want ok", tc->in, sm_strstatus(st), why);
		ck_assert_msg(strcmp(buf_cstr(&out), tc->want) == 0, "%s: got \"%s\", want \"%s\"",
		    tc->in, buf_cstr(&out), tc->want);
		ck_assert_msg(words == tc->words, "%s: words got %d, want %d", tc->in, words,
		    tc->words);
	}
	buf_free(&out);
}
END_TEST

static const char *const enc_cases[] = {
	"plans",
	"Gr\xc3\xbc\xc3\x9f" "e",
	"a =? b",
	/* long enough for several words, with multibyte characters at every
	 * offset a word boundary could fall on */
	"\xc3\xa4\xc3\xb6\xc3\xbc\xe2\x82\xac \xc3\xa4\xc3\xb6\xc3\xbc\xe2\x82\xac x \xc3\xa4\xc3\xb6"
	"\xc3\xbc\xe2\x82\xac \xc3\xa4\xc3\xb6\xc3\xbc\xe2\x82\xac \xc3\xa4\xc3\xb6\xc3\xbc\xe2\x82\xac"
	" \xc3\xa4\xc3\xb6\xc3\xbc\xe2\x82\xac \xc3\xa4\xc3\xb6\xc3\xbc\xe2\x82\xac \xc3\xa4\xc3\xb6"
	"\xc3\xbc\xe2\x82\xac \xf0\x9f\x94\x92 end",
};

START_TEST(encoding_round_trips_in_short_words)
{
	const char *in = enc_cases[_i];
	struct buf enc = BUF_INIT, dec = BUF_INIT;
	char why[200] = "";
	const char *p;

	ck_assert_int_eq(encword_encode(in, &enc), SM_OK);
	for (p = buf_cstr(&enc); *p;) {
		size_t n = strcspn(p, " ");
		if (strncmp(p, "=?", 2) == 0)
			ck_assert_msg(n <= 75, "a word of %zu characters: %s", n, buf_cstr(&enc));
		p += n + (p[n] == ' ');
	}
	ck_assert_msg(encword_decode(buf_cstr(&enc), &dec, NULL, why, sizeof(why)) == SM_OK, "%s",
	    why);
	ck_assert_msg(strcmp(buf_cstr(&dec), in) == 0, "got \"%s\", want \"%s\" (via %s)",
	    buf_cstr(&dec), in, buf_cstr(&enc));
	buf_free(&enc);
	buf_free(&dec);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("encword");
	TCase *tc = tcase_create("core");

	tcase_add_loop_test(tc, encoded_words_decode_to_utf8, 0,
	    (int)(sizeof(dec_cases) / sizeof(dec_cases[0])));
	tcase_add_loop_test(tc, encoding_round_trips_in_short_words, 0,
	    (int)(sizeof(enc_cases) / sizeof(enc_cases[0])));
	suite_add_tcase(s, tc);
	return testutil_run(s);
}
