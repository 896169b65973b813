/*
 * hprot.h — RFC 9788 header protection for S/MIME.
 *
 * Outbound: the header fields of the message are copied into the header
 * section of the Cryptographic Payload's root part, whose Content-Type is
 * marked hp="cipher" (encrypted) or hp="clear" (signed only), plus the
 * older protected-headers="v1". When encrypting, a header confidentiality
 * policy (RFC 9788 §3.2) decides what stays outside: hcp_baseline
 * replaces the Subject with "[...]" and drops Keywords and Comments;
 * hcp_shy also strips display names from the address fields and
 * normalises Date to UTC. Each field left outside is recorded inside as
 * "HP-Outer: Name: value" (§2.2.1).
 *
 * Inbound: hp_parse() reads the protected fields and HP-Outer back from a
 * root part's header section.
 */
#ifndef SMIME_HPROT_H
#define SMIME_HPROT_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "config.h"
#include "mime.h"
#include "status.h"

/* What becomes of one outer header field. */
enum hp_fate { HP_KEEP, HP_CHANGE, HP_DELETE };

struct hp_out {
	/* One entry per field of the outer list handed to hp_protect(). */
	size_t n;
	enum hp_fate *fate;
	char **value;            /* new value when HP_CHANGE */
	bool applied;            /* false: header protection was not applied */
};

/*
 * Apply header protection. outer: the message's non-Content fields (as
 * mime_split_headers() gives them); content: the root part's Content-*
 * fields, changed in place: the copied fields (and HP-Outer when
 * encrypting) are added and Content-Type gets hp= and
 * protected-headers="v1". subject: the protected Subject value to copy
 * inside instead of the outer one (the Subject without the encryption
 * tag), or NULL. skip: a field name that is not copied (already removed
 * outside, the trigger header), or NULL. When encrypting, *body and *body_len
 * may be redirected into legacy (which the caller frees) to carry the
 * legacy display element, when legacy_display and the root part is plain
 * text. With policy off (or a root part that already says hp=),
 * out->applied is false and nothing changes.
 */
sm_status hp_protect(enum cfg_hprot policy, bool encrypt, bool legacy_display,
    const struct mime_headers *outer, const char *subject, const char *skip,
    struct mime_headers *content, const unsigned char **body, size_t *body_len,
    struct buf *legacy, struct hp_out *out);
void hp_out_free(struct hp_out *o);

/* Is this field copied into the protected header section? Transport and
 * structural fields (Received, Return-Path, MIME-Version, Content-*,
 * DKIM-Signature, ARC-*, Authentication-Results, HP-Outer) are not. */
bool hp_is_protectable(const char *name);

/* The hcp_shy forms: addresses without display names ("a@x, b@y"), and a
 * Date in UTC. NULL when the value cannot be parsed (keep it), or on
 * allocation failure. */
char *hp_shy_addresses(const char *value);
char *hp_shy_date(const char *value);

/* A root part's header protection, read back. */
enum hp_kind { HP_NONE, HP_CLEAR, HP_CIPHER };

struct hp_parsed {
	enum hp_kind kind;
	bool legacy_display;          /* hp-legacy-display="1" */
	struct mime_headers fields;   /* protected non-structural fields */
	struct mime_headers outer;    /* HP-Outer: name and value */
};

/* Parse a root part's header section. A Content-Type without hp= gives
 * HP_NONE (fields stay empty). SM_ERR_PARSE for a bad Content-Type or
 * HP-Outer. Free with hp_parsed_free(). */
sm_status hp_parse(const struct mime_headers *root, struct hp_parsed *out);
void hp_parsed_free(struct hp_parsed *p);

/* Where a legacy display element sits in a decoded text/plain (html
 * false) or text/html body part marked hp-legacy-display="1", so that a
 * reader that shows the protected header itself can hide it: the leading
 * "Name: value" lines and the empty line after them, or the first
 * <div class="header-protection-legacy-display">...</div>. false when
 * there is none. */
bool hp_legacy_find(const unsigned char *body, size_t len, bool html, size_t *off,
    size_t *n);

#endif
