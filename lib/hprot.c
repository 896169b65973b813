/*
 * hprot.c — RFC 9788 header protection (see hprot.h).
 */
#include "hprot.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "addrlist.h"
#include "encword.h"

static const char *const hp_unprotected[] = {
	"Received", "Return-Path", "MIME-Version", "DKIM-Signature", "ARC-Seal",
	"ARC-Message-Signature", "ARC-Authentication-Results", "Authentication-Results",
	"HP-Outer", "Delivered-To", "X-Original-To", NULL,
};

bool
hp_is_protectable(const char *name)
{
	if (name == NULL || strncasecmp(name, "Content-", 8) == 0)
		return false;
	for (size_t i = 0; hp_unprotected[i]; i++)
		if (strcasecmp(name, hp_unprotected[i]) == 0)
			return false;
	return true;
}

static bool
is_address_field(const char *name)
{
	static const char *const f[] = { "From", "To", "Cc", "Reply-To", "Sender", NULL };
	for (size_t i = 0; f[i]; i++)
		if (strcasecmp(name, f[i]) == 0)
			return true;
	return false;
}

char *
hp_shy_addresses(const char *value)
{
	struct alist l;
	struct buf b = BUF_INIT;
	char *v = mime_header_unfold(value);
	sm_status st;

	if (v == NULL)
		return NULL;
	st = alist_parse(v, &l);
	free(v);
	if (st != SM_OK || l.al_n == 0) {
		alist_free(&l);
		return NULL;
	}
	for (size_t i = 0; i < l.al_n; i++)
		buf_printf(&b, "%s%s", i ? ", " : "", l.al_addr[i]);
	alist_free(&l);
	return buf_steal(&b);
}

char *
hp_shy_date(const char *value)
{
	char *v = mime_header_unfold(value), *end, out[64];
	const char *p;
	struct tm tm;
	time_t t;
	long off;

	if (v == NULL)
		return NULL;
	memset(&tm, 0, sizeof(tm));
	p = strchr(v, ',') ? strchr(v, ',') + 1 : v; /* the day name is optional */
	end = strptime(p, " %d %b %Y %H:%M:%S %z", &tm);
	if (end == NULL || (*end && *end != ' ' && *end != '(')) {
		free(v);
		return NULL;
	}
	off = tm.tm_gmtoff;
	free(v);
	tm.tm_isdst = 0;
	t = timegm(&tm) - off;
	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(out, sizeof(out), "%a, %d %b %Y %H:%M:%S +0000", &tm) == 0)
		return NULL;
	return strdup(out);
}

void
hp_out_free(struct hp_out *o)
{
	if (o->value)
		for (size_t i = 0; i < o->n; i++)
			free(o->value[i]);
	free(o->value);
	free(o->fate);
	memset(o, 0, sizeof(*o));
}

/* The outer fate of one field under the policy; *nv the new value. */
static sm_status
hp_fate_of(enum cfg_hprot policy, const struct mime_header *h, enum hp_fate *fate, char **nv)
{
	*fate = HP_KEEP;
	*nv = NULL;
	if (strcasecmp(h->name, "Keywords") == 0 || strcasecmp(h->name, "Comments") == 0) {
		*fate = HP_DELETE;
	} else if (strcasecmp(h->name, "Subject") == 0) {
		*fate = HP_CHANGE;
		*nv = strdup("[...]");
	} else if (policy == CFG_HPROT_SHY && is_address_field(h->name)) {
		*nv = hp_shy_addresses(h->value);
	} else if (policy == CFG_HPROT_SHY && strcasecmp(h->name, "Date") == 0) {
		*nv = hp_shy_date(h->value);
	} else {
		return SM_OK;
	}
	if (*fate == HP_CHANGE && *nv == NULL)
		return SM_ERR_NOMEM;
	if (*nv != NULL) {
		char *old = mime_header_unfold(h->value);
		/* unchanged in substance: keep the field as it is */
		if (old != NULL && strcmp(old, *nv) == 0 && *fate != HP_CHANGE) {
			free(*nv);
			*nv = NULL;
		} else {
			*fate = HP_CHANGE;
		}
		free(old);
	}
	return SM_OK;
}

/* Content-Type with hp= and protected-headers="v1" added. */
static sm_status
hp_mark(struct mime_headers *content, const char *hp, bool legacy)
{
	const char *ct = mime_headers_get(content, "Content-Type");
	char *v = mime_header_unfold(ct ? ct : "text/plain; charset=us-ascii");
	struct buf b = BUF_INIT;
	sm_status st;

	if (v == NULL)
		return SM_ERR_NOMEM;
	buf_printf(&b, "%s; hp=\"%s\"; protected-headers=\"v1\"%s", v, hp,
	    legacy ? "; hp-legacy-display=\"1\"" : "");
	free(v);
	st = mime_headers_set(content, "Content-Type", buf_cstr(&b));
	buf_free(&b);
	return st;
}

static bool
hp_copied(const struct mime_header *h, const char *skip)
{
	return hp_is_protectable(h->name) && (skip == NULL || strcasecmp(h->name, skip) != 0);
}

/* The value copied inside for outer field h. */
static const char *
hp_inner_value(const struct mime_header *h, const char *subject)
{
	return subject && strcasecmp(h->name, "Subject") == 0 ? subject : h->value;
}

/* RFC 9788's user-facing header fields (§1.1.2): the ones a legacy
 * display element shows when the policy obscured or removed them. */
static bool
hp_user_facing(const char *name)
{
	static const char *const f[] = { "Subject", "From", "To", "Cc", "Date", "Reply-To",
		"Followup-To", NULL };

	for (size_t i = 0; f[i]; i++)
		if (strcasecmp(name, f[i]) == 0)
			return true;
	return false;
}

/* The legacy display element (RFC 9788 §2.1.2): each user-facing field
 * the policy changed or removed outside, with its protected value (RFC
 * 2047 words decoded to UTF-8), put into the main body parts. */
static sm_status
hp_legacy(const struct mime_headers *outer, const struct hp_out *out, const char *subject,
    const char *skip, struct mime_headers *content, const unsigned char **body,
    size_t *body_len, struct buf *legacy, bool *marked)
{
	struct mime_headers lines = MIME_HEADERS_INIT;
	sm_status st = SM_OK;

	*marked = false;
	for (size_t i = 0; i < outer->n && st == SM_OK; i++) {
		const struct mime_header *h = &outer->v[i];
		struct buf v = BUF_INIT;
		char *u;

		if (!hp_copied(h, skip) || out->fate[i] == HP_KEEP || !hp_user_facing(h->name))
			continue;
		if ((u = mime_header_unfold(hp_inner_value(h, subject))) == NULL) {
			st = SM_ERR_NOMEM;
			break;
		}
		if (encword_decode(u, &v, NULL, NULL, 0) != SM_OK) {
			buf_reset(&v);
			st = buf_append_str(&v, u); /* undecodable: shown as it is */
		}
		if (st == SM_OK)
			st = mime_headers_add(&lines, h->name, buf_cstr(&v));
		buf_free(&v);
		free(u);
	}
	if (st == SM_OK)
		st = hp_legacy_insert(&lines, content, body, body_len, legacy, marked);
	mime_headers_free(&lines);
	return st;
}

/* The inner header section: Content-* first, then the copies, then one
 * HP-Outer per field left outside (when encrypting). */
static sm_status
hp_inner(const struct mime_headers *outer, const struct hp_out *out, bool encrypt,
    const char *subject, const char *skip, const struct mime_headers *content,
    struct mime_headers *nc)
{
	sm_status st = mime_headers_copy(nc, content);

	for (size_t i = 0; i < outer->n && st == SM_OK; i++)
		if (hp_copied(&outer->v[i], skip))
			st = mime_headers_add(nc, outer->v[i].name, hp_inner_value(&outer->v[i], subject));
	for (size_t i = 0; encrypt && i < outer->n && st == SM_OK; i++) {
		const struct mime_header *h = &outer->v[i];
		char *v;
		struct buf b = BUF_INIT;

		if (!hp_copied(h, skip) || out->fate[i] == HP_DELETE)
			continue;
		v = out->fate[i] == HP_CHANGE ? strdup(out->value[i]) : mime_header_unfold(h->value);
		if (v == NULL)
			return SM_ERR_NOMEM;
		st = buf_printf(&b, "%s: %s", h->name, v);
		if (st == SM_OK)
			st = mime_headers_add(nc, "HP-Outer", buf_cstr(&b));
		buf_free(&b);
		free(v);
	}
	return st;
}

sm_status
hp_protect(enum cfg_hprot policy, bool encrypt, bool legacy_display,
    const struct mime_headers *outer, const char *subject, const char *skip,
    struct mime_headers *content, const unsigned char **body, size_t *body_len,
    struct buf *legacy, struct hp_out *out)
{
	struct mime_headers nc = MIME_HEADERS_INIT;
	struct mime_ctype ct = MIME_CTYPE_INIT;
	bool has_hp, marked = false;
	sm_status st;

	memset(out, 0, sizeof(*out));
	if (policy == CFG_HPROT_OFF)
		return SM_OK;
	if ((st = mime_ctype_parse(mime_headers_get(content, "Content-Type"), &ct)) != SM_OK)
		return SM_OK; /* not ours to interpret: leave the message as it is */
	has_hp = mime_ctype_param(&ct, "hp") != NULL;
	mime_ctype_free(&ct);
	if (has_hp)
		return SM_OK; /* the client protected the header itself */
	out->n = outer->n;
	out->fate = calloc(outer->n + 1, sizeof(*out->fate));
	out->value = calloc(outer->n + 1, sizeof(*out->value));
	if (out->fate == NULL || out->value == NULL) {
		st = SM_ERR_NOMEM;
		goto fail;
	}
	for (size_t i = 0; encrypt && i < outer->n; i++)
		if (hp_copied(&outer->v[i], skip) &&
		    (st = hp_fate_of(policy, &outer->v[i], &out->fate[i], &out->value[i])) != SM_OK)
			goto fail;
	if (encrypt && legacy_display &&
	    (st = hp_legacy(outer, out, subject, skip, content, body, body_len, legacy,
	    &marked)) != SM_OK)
		goto fail;
	if ((st = hp_inner(outer, out, encrypt, subject, skip, content, &nc)) != SM_OK ||
	    (st = hp_mark(&nc, encrypt ? "cipher" : "clear", marked)) != SM_OK)
		goto fail;
	mime_headers_free(content);
	*content = nc;
	out->applied = true;
	return SM_OK;
fail:
	mime_headers_free(&nc);
	hp_out_free(out);
	return st;
}

/* ------------------------------------------------------------------ */

void
hp_parsed_free(struct hp_parsed *p)
{
	mime_headers_free(&p->fields);
	mime_headers_free(&p->outer);
	memset(p, 0, sizeof(*p));
}

/* "Name: value" of an HP-Outer field, split. */
static sm_status
hp_parse_outer(const char *raw, struct mime_headers *to)
{
	char *v = mime_header_unfold(raw), *colon, *val;
	sm_status st;

	if (v == NULL)
		return SM_ERR_NOMEM;
	colon = strchr(v, ':');
	if (colon == NULL || colon == v) {
		free(v);
		return SM_ERR_PARSE;
	}
	*colon = '\0';
	for (char *p = v; *p; p++)
		if (*p <= ' ' || *p > '~') {
			free(v);
			return SM_ERR_PARSE;
		}
	val = colon + 1;
	val += strspn(val, " \t");
	st = mime_headers_add(to, v, val);
	free(v);
	return st;
}

sm_status
hp_parse(const struct mime_headers *root, struct hp_parsed *out)
{
	struct mime_ctype ct = MIME_CTYPE_INIT;
	const char *hp, *ld;
	sm_status st;

	memset(out, 0, sizeof(*out));
	if ((st = mime_ctype_parse(mime_headers_get(root, "Content-Type"), &ct)) != SM_OK)
		return mime_headers_get(root, "Content-Type") ? st : SM_OK;
	hp = mime_ctype_param(&ct, "hp");
	ld = mime_ctype_param(&ct, "hp-legacy-display");
	out->kind = hp == NULL ? HP_NONE : strcasecmp(hp, "cipher") == 0 ? HP_CIPHER :
	    strcasecmp(hp, "clear") == 0 ? HP_CLEAR : HP_NONE;
	out->legacy_display = ld && strcmp(ld, "1") == 0;
	mime_ctype_free(&ct);
	if (out->kind == HP_NONE)
		return SM_OK;
	for (size_t i = 0; i < root->n && st == SM_OK; i++) {
		const struct mime_header *h = &root->v[i];

		if (strcasecmp(h->name, "HP-Outer") == 0)
			st = hp_parse_outer(h->value, &out->outer);
		else if (hp_is_protectable(h->name))
			st = mime_headers_add(&out->fields, h->name, h->value);
	}
	if (st != SM_OK)
		hp_parsed_free(out);
	return st;
}

/* One "Name: value" line at p (end at lim): its length with the line
 * ending, or 0. */
static size_t
hp_field_line(const unsigned char *p, const unsigned char *lim)
{
	const unsigned char *q = p;

	while (q < lim && *q > ' ' && *q <= '~' && *q != ':')
		q++;
	if (q == p || q >= lim || *q != ':')
		return 0;
	while (q < lim && *q != '\n')
		q++;
	return q < lim ? (size_t)(q + 1 - p) : 0;
}

static const unsigned char *
hp_memcasestr(const unsigned char *h, size_t n, const char *needle)
{
	size_t k = strlen(needle);

	for (size_t i = 0; k <= n && i <= n - k; i++)
		if (strncasecmp((const char *)h + i, needle, k) == 0)
			return h + i;
	return NULL;
}

bool
hp_legacy_find(const unsigned char *body, size_t len, bool html, size_t *off, size_t *n)
{
	const unsigned char *lim = body + len, *p = body, *a, *b;
	size_t l;

	if (html) {
		a = hp_memcasestr(body, len, "<div class=\"header-protection-legacy-display\"");
		if (a == NULL)
			return false;
		b = hp_memcasestr(a, (size_t)(lim - a), "</div>");
		if (b == NULL)
			return false;
		b += 6;
		if (b + 1 < lim && b[0] == '\r' && b[1] == '\n')
			b += 2; /* the line break hp_legacy_insert() puts after it */
		else if (b < lim && *b == '\n')
			b++;
		*off = (size_t)(a - body);
		*n = (size_t)(b - a);
		return true;
	}
	while ((l = hp_field_line(p, lim)) > 0)
		p += l;
	if (p == body)
		return false;
	if (p < lim && *p == '\n')
		p++;
	else if (p + 1 < lim && p[0] == '\r' && p[1] == '\n')
		p += 2;
	else
		return false;
	*off = 0;
	*n = (size_t)(p - body);
	return true;
}
