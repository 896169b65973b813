/*
 * subject.c — the subject tag (see subject.h).
 */
#include "subject.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>

#include "encword.h"
#include "log.h"
#include "mime.h"

/* Does text carry the tag (case-insensitive)? Returns its offset. */
static const char *
tag_at(const char *text, const char *tag)
{
	size_t tl = strlen(tag);

	if (tl == 0 || text == NULL)
		return NULL;
	for (const char *p = text; *p; p++)
		if (strncasecmp(p, tag, tl) == 0)
			return p;
	return NULL;
}

/*
 * Does the Subject carry the tag, after decoding its RFC 2047
 * encoded-words? On yes, stripped receives the Subject without the tag
 * ("Re: [encrypt] plans" becomes "Re: plans": the tag takes the white
 * space after it along), encoded again when it came encoded. A Subject
 * whose encoded-words do not decode counts as untagged (logged); a tag
 * typed in plain text next to them still counts.
 */
sm_status
subject_untag(const char *qid, const char *subject, const char *tag, bool *tagged,
    struct buf *stripped)
{
	struct buf dec = BUF_INIT, s = BUF_INIT;
	const char *text, *at, *rest;
	bool words = false;
	char why[200] = "";
	char *u = NULL;
	size_t pre;
	sm_status st;

	*tagged = false;
	if (subject == NULL || *tag == '\0')
		return SM_OK;
	st = encword_decode(subject, &dec, &words, why, sizeof(why));
	if (st == SM_ERR_NOMEM)
		return st;
	if (st != SM_OK) {
		log_qid(LOG_NOTICE, qid, "Subject not decodable (%s): looking for the tag in its "
		    "plain text only", why);
		words = false;
		st = SM_OK;
		if ((u = mime_header_unfold(subject)) == NULL) {
			buf_free(&dec);
			return SM_ERR_NOMEM;
		}
	}
	text = u ? u : buf_cstr(&dec);
	if ((at = tag_at(text, tag)) != NULL) {
		*tagged = true;
		rest = at + strlen(tag);
		if (at == text || at[-1] == ' ' || at[-1] == '\t')
			while (*rest == ' ' || *rest == '\t')
				rest++;
		pre = (size_t)(at - text);
		/* "plans [encrypt]" becomes "plans", not "plans " */
		if (*rest == '\0')
			while (pre > 0 && (text[pre - 1] == ' ' || text[pre - 1] == '\t'))
				pre--;
		if ((st = buf_append(&s, text, pre)) == SM_OK &&
		    (st = buf_append_str(&s, rest)) == SM_OK)
			st = words ? encword_encode(buf_cstr(&s), stripped) :
			    buf_append_str(stripped, buf_cstr(&s));
	}
	free(u);
	buf_free(&dec);
	buf_free(&s);
	return st;
}
