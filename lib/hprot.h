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
 * legacy display element (hp_legacy_insert()) when legacy_display: the
 * user-facing fields the policy obscured or removed, in the main body
 * parts. With policy off (or a root part that already says hp=),
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
 * <div class="header-protection-legacy-display">...</div> with the line
 * break after it. false when there is none. */
bool hp_legacy_find(const unsigned char *body, size_t len, bool html, size_t *off,
    size_t *n);

/*
 * Insert the Legacy Display Element (RFC 9788 §2.1.2, §4.5) into the main
 * body parts of the entity content, *body: a text/plain or text/html root,
 * or inside a multipart the parts a reader shows (the first part of a
 * multipart/mixed or /related, the first text/plain and the first
 * text/html of a multipart/alternative). lines: the fields to show, name
 * and UTF-8 value. text/plain gets "Name: value" lines and an empty line
 * in front; text/html a <div class="header-protection-legacy-display">
 * with the lines, HTML-escaped, in a <pre>, just after <body> (after
 * </head>, or at the start, when there is none). Bodies are decoded from
 * and re-encoded to their transfer encoding; the text is written in the
 * part's charset (a us-ascii part becomes utf-8 when it must; a part whose
 * charset cannot carry it is left alone). Changed nested parts get
 * hp-legacy-display="1"; when the root itself was changed, *root_marked is
 * set (the caller marks it), content may change (charset) and *body is
 * redirected into out. A part or message this cannot rewrite is left as
 * it is: SM_OK. SM_ERR_NOMEM.
 */
sm_status hp_legacy_insert(const struct mime_headers *lines, struct mime_headers *content,
    const unsigned char **body, size_t *body_len, struct buf *out, bool *root_marked);

/* The offset at which hp_legacy_insert() puts the element into a decoded
 * HTML document. */
size_t hp_legacy_html_at(const unsigned char *doc, size_t n);

#endif
