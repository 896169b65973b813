/*
 * subject.h — the sender's request for encryption in the Subject: the tag
 * ("[encrypt]") is found after decoding RFC 2047 encoded-words, and taken
 * out without breaking what remains.
 */
#ifndef SMIME_SUBJECT_H
#define SMIME_SUBJECT_H

#include <stdbool.h>

#include "buf.h"
#include "status.h"

/*
 * Does the Subject carry tag (case-insensitive), after decoding its
 * encoded-words (encword.h)? On yes, *tagged is set and stripped receives
 * the Subject without the tag, unfolded, encoded again as UTF-8
 * encoded-words when it came encoded. A Subject whose encoded-words do not
 * decode counts as untagged (logged with qid); a tag typed in its plain
 * text still counts. subject may be NULL; tag "" never matches.
 * SM_OK or SM_ERR_NOMEM.
 */
sm_status subject_untag(const char *qid, const char *subject, const char *tag, bool *tagged,
    struct buf *stripped);

#endif
