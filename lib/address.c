#include "address.h"
#include "addrlist.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <idn2.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"

sm_status
addr_normalize(const char *in, char *out, size_t outlen)
{
	const char *s = in, *e;
	size_t n, i;
	const char *at;

	while (*s && isspace((unsigned char)*s))
		s++;
	if (*s == '<')
		s++;
	e = s + strlen(s);
	while (e > s && (isspace((unsigned char)e[-1]) || e[-1] == '>'))
		e--;
	n = (size_t)(e - s);
	if (n == 0 || n >= outlen)
		return SM_ERR_PARSE;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c <= ' ' || c == '<' || c == '>' || c >= 0x7f)
			return SM_ERR_PARSE;
		out[i] = (char)tolower(c);
	}
	out[n] = '\0';
	at = strrchr(out, '@');
	if (at == NULL || at == out || !addr_valid_domain(at + 1))
		return SM_ERR_PARSE;
	return SM_OK;
}

sm_status
addr_from_header(const char *value, char *out, size_t outlen)
{
	struct alist l;
	sm_status st;

	if (value == NULL)
		return SM_ERR_PARSE;
	st = alist_parse(value, &l);
	if (st == SM_OK && l.al_n != 1)
		st = SM_ERR_PARSE;
	if (st == SM_OK) {
		if (strlen(l.al_addr[0]) >= outlen)
			st = SM_ERR_PARSE;
		else
			strcpy(out, l.al_addr[0]);
	}
	alist_free(&l);
	return st;
}

const char *
addr_domain(const char *addr)
{
	const char *at = strrchr(addr, '@');

	return at ? at + 1 : NULL;
}

bool
addr_valid_domain(const char *d)
{
	size_t label = 0, total = 0;
	char prev = '.';

	if (*d == '\0')
		return false;
	for (; *d; d++, total++) {
		unsigned char c = (unsigned char)*d;
		if (c == '.') {
			if (label == 0 || prev == '-')
				return false;
			label = 0;
		} else if (isalnum(c) || c == '-' || c == '_') {
			if (label == 0 && c == '-')
				return false;
			if (++label > 63)
				return false;
		} else {
			return false;
		}
		prev = (char)c;
	}
	return total <= 253 && prev != '.' && prev != '-';
}

bool
addr_valid_mailbox(const char *addr)
{
	const char *at = strrchr(addr, '@');
	const char *p;

	if (at == NULL || at == addr || (size_t)(at - addr) > 64)
		return false;
	for (p = addr; p < at; p++) {
		unsigned char c = (unsigned char)*p;
		if (c <= ' ' || c >= 0x7f || strchr("()<>[]\\,;:\"@", c))
			return false;
	}
	return addr_valid_domain(at + 1);
}

bool
addr_in_domain(const char *addr, const char *domain)
{
	const char *d = addr_domain(addr);

	return d && addr_equal_domain(d, domain);
}

sm_status
cidr_parse(const char *text, struct cidr *out)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *slash = strchr(text, '/');
	size_t n = slash ? (size_t)(slash - text) : strlen(text);
	unsigned max;

	if (n == 0 || n >= sizeof(host))
		return SM_ERR_PARSE;
	memcpy(host, text, n);
	host[n] = '\0';
	memset(out, 0, sizeof(*out));
	if (inet_pton(AF_INET, host, out->addr) == 1) {
		out->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, host, out->addr) == 1) {
		out->family = AF_INET6;
		max = 128;
	} else {
		return SM_ERR_PARSE;
	}
	out->prefix = max;
	if (slash) {
		char *end;
		unsigned long v;

		if (!isdigit((unsigned char)slash[1]))
			return SM_ERR_PARSE;
		v = strtoul(slash + 1, &end, 10);
		if (*end != '\0' || v > max)
			return SM_ERR_PARSE;
		out->prefix = (unsigned)v;
	}
	return SM_OK;
}

static bool
cidr_bits_match(const uint8_t *a, const uint8_t *b, unsigned prefix)
{
	unsigned full = prefix / 8, rest = prefix % 8;

	if (memcmp(a, b, full) != 0)
		return false;
	if (rest) {
		uint8_t mask = (uint8_t)(0xff << (8 - rest));
		if ((a[full] & mask) != (b[full] & mask))
			return false;
	}
	return true;
}

bool
cidr_match(const struct cidr *net, const struct sockaddr *sa)
{
	if (sa == NULL)
		return false;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		if (net->family != AF_INET)
			return false;
		return cidr_bits_match(net->addr, (const uint8_t *)&in->sin_addr, net->prefix);
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		const uint8_t *a = in6->sin6_addr.s6_addr;
		if (net->family == AF_INET6)
			return cidr_bits_match(net->addr, a, net->prefix);
		/* ::ffff:a.b.c.d is an IPv4 client seen through an IPv6 socket. */
		if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
			return cidr_bits_match(net->addr, a + 12, net->prefix);
	}
	return false;
}

bool
cidr_match_list(const struct cidr *nets, size_t n, const struct sockaddr *sa)
{
	for (size_t i = 0; i < n; i++)
		if (cidr_match(&nets[i], sa))
			return true;
	return false;
}

/* ------------------------------------------------------------------ */
/* Comparison and recipient canonicalisation                            */
/* ------------------------------------------------------------------ */

/* Length of a valid UTF-8 sequence at p (1 for ASCII), 0 when invalid. */
static size_t
utf8_seq(const unsigned char *p)
{
	size_t n;
	uint32_t cp;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		n = 2, cp = p[0] & 0x1f;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		n = 3, cp = p[0] & 0x0f;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		n = 4, cp = p[0] & 0x07;
	else
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return n;
}

static bool
utf8_valid(const char *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		size_t k = utf8_seq((const unsigned char *)s + i);
		if (k == 0 || i + k > n)
			return false;
		i += k;
	}
	return true;
}

/* A domain as Postfix routes it: trailing dots dropped, IDNA A-label,
 * lower case, syntax checked. */
static sm_status
canon_domain(const char *d, size_t n, char *out, size_t outlen)
{
	char tmp[256];
	bool ascii = true;
	char *a = NULL;

	while (n > 0 && d[n - 1] == '.')
		n--;
	if (n == 0 || n >= sizeof(tmp) || d[0] == '[')
		return SM_ERR_PARSE;
	memcpy(tmp, d, n);
	tmp[n] = '\0';
	for (size_t i = 0; i < n; i++)
		ascii = ascii && (unsigned char)tmp[i] < 0x80;
	if (!ascii) {
		if (!utf8_valid(tmp, n) ||
		    idn2_to_ascii_8z(tmp, &a, IDN2_NONTRANSITIONAL | IDN2_NFC_INPUT) != IDN2_OK)
			return SM_ERR_PARSE;
		if (strlen(a) >= sizeof(tmp)) {
			idn2_free(a);
			return SM_ERR_PARSE;
		}
		snprintf(tmp, sizeof(tmp), "%s", a);
		idn2_free(a);
	}
	for (char *p = tmp; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	if (!addr_valid_domain(tmp) || strlen(tmp) >= outlen)
		return SM_ERR_PARSE;
	snprintf(out, outlen, "%s", tmp);
	return SM_OK;
}

bool
addr_equal_domain(const char *a, const char *b)
{
	char ca[256], cb[256];

	if (canon_domain(a, strlen(a), ca, sizeof(ca)) != SM_OK ||
	    canon_domain(b, strlen(b), cb, sizeof(cb)) != SM_OK)
		return strcasecmp(a, b) == 0;
	return strcmp(ca, cb) == 0;
}

bool
addr_equal(const char *a, const char *b)
{
	const char *aa = strrchr(a, '@'), *ab = strrchr(b, '@');
	size_t la, lb;

	if (aa == NULL || ab == NULL)
		return strcasecmp(a, b) == 0;
	la = (size_t)(aa - a);
	lb = (size_t)(ab - b);
	if (la != lb)
		return false;
	/* strncasecmp folds ASCII only in the C locale the daemon runs in;
	 * do it by hand so that a locale can never fold UTF-8 bytes. */
	for (size_t i = 0; i < la; i++) {
		unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
		if (x < 0x80 && y < 0x80 ? tolower(x) != tolower(y) : x != y)
			return false;
	}
	return addr_equal_domain(aa + 1, ab + 1);
}

/* RFC 5322 atext, plus '.' (dot-atom); UTF-8 (RFC 6531) allowed. */
static bool
local_is_dot_atom(const char *l, size_t n)
{
	if (n == 0 || l[0] == '.' || l[n - 1] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)l[i];
		if (c == '.' && l[i + 1] == '.')
			return false;
		if (c < 0x80 && !isalnum(c) && !strchr("!#$%&'*+-/=?^_`{|}~.", c))
			return false;
	}
	return true;
}

/* Split "local@domain" (no brackets, no route) into an unquoted local part
 * and the domain text. quoted tells whether the local part was quoted. */
static sm_status
canon_split(const char *s, char *local, size_t llen, const char **dom, bool *quoted)
{
	size_t n = 0;
	const char *p = s;

	*quoted = *s == '"';
	if (*quoted) {
		for (p = s + 1; *p && *p != '"'; p++) {
			if (*p == '\\' && p[1])
				p++;
			if (n + 1 >= llen)
				return SM_ERR_PARSE;
			local[n++] = *p;
		}
		if (*p != '"' || (p[1] != '@' && p[1] != '\0'))
			return SM_ERR_PARSE;
		*dom = p[1] == '@' ? p + 2 : NULL;
	} else {
		const char *at = strrchr(s, '@');
		n = at ? (size_t)(at - s) : strlen(s);
		if (n + 1 >= llen)
			return SM_ERR_PARSE;
		memcpy(local, s, n);
		*dom = at ? at + 1 : NULL;
	}
	local[n] = '\0';
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)local[i] < 0x20 || local[i] == 0x7f)
			return SM_ERR_PARSE;
	return n > 0 && utf8_valid(local, n) ? SM_OK : SM_ERR_PARSE;
}

/* local@domain into out, quoting the local part when it needs it and
 * lowercasing ASCII. */
static sm_status
canon_join(const char *local, const char *domain, char *out, size_t outlen)
{
	struct buf b = BUF_INIT;
	size_t n = strlen(local);
	sm_status st = SM_OK;
	bool q = !local_is_dot_atom(local, n);

	if (q)
		st = buf_append_char(&b, '"');
	for (size_t i = 0; i < n && st == SM_OK; i++) {
		unsigned char c = (unsigned char)local[i];
		if (q && (c == '"' || c == '\\'))
			st = buf_append_char(&b, '\\');
		if (st == SM_OK)
			st = buf_append_char(&b, (char)(c < 0x80 ? tolower(c) : c));
	}
	if (st == SM_OK && q)
		st = buf_append_char(&b, '"');
	if (st == SM_OK)
		st = buf_printf(&b, "@%s", domain);
	if (st == SM_OK && b.len >= outlen)
		st = SM_ERR_PARSE;
	if (st == SM_OK)
		snprintf(out, outlen, "%s", buf_cstr(&b));
	buf_free(&b);
	return st;
}

/* Resolve "site!user" and "user%site" in local (in place) the way Postfix's
 * swap_bangpath and allow_percent_hack do; dom receives the new domain.
 * Returns true when something was resolved. */
static sm_status
canon_hack(char *local, char *dom, size_t domlen, bool *routed)
{
	for (int round = 0; round < 16; round++) {
		char *bang = strchr(local, '!'), *pct = strrchr(local, '%');
		char *site, *user;

		if (bang) {
			*bang = '\0';
			site = local;
			user = bang + 1;
		} else if (pct) {
			*pct = '\0';
			site = pct + 1;
			user = local;
		} else {
			return SM_OK;
		}
		if (*user == '\0' || canon_domain(site, strlen(site), dom, domlen) != SM_OK)
			return SM_ERR_PARSE;
		memmove(local, user, strlen(user) + 1);
		*routed = true;
	}
	return SM_ERR_PARSE;
}

sm_status
addr_canonical(const char *in, char *out, size_t outlen, char *literal, size_t litlen,
    unsigned *flags)
{
	char s[512], local[512], dom[256] = "";
	const char *d, *p = in;
	size_t n;
	bool quoted, routed = false;
	sm_status st;

	*flags = 0;
	if (litlen)
		literal[0] = '\0';
	while (isspace((unsigned char)*p))
		p++;
	n = strlen(p);
	while (n > 0 && isspace((unsigned char)p[n - 1]))
		n--;
	if (n >= 2 && p[0] == '<' && p[n - 1] == '>')
		p++, n -= 2;
	else if (n > 0 && (p[0] == '<' || p[n - 1] == '>'))
		return SM_ERR_PARSE;
	if (n == 0 || n >= sizeof(s))
		return SM_ERR_PARSE;
	memcpy(s, p, n);
	s[n] = '\0';
	p = s;
	if (*p == '@') { /* source route "@a,@b:": Postfix drops it */
		const char *colon = strchr(p, ':');
		if (colon == NULL)
			return SM_ERR_PARSE;
		p = colon + 1;
	}
	if ((st = canon_split(p, local, sizeof(local), &d, &quoted)) != SM_OK)
		return st;
	if (d && (st = canon_domain(d, strlen(d), dom, sizeof(dom))) != SM_OK)
		return st;
	if (d && litlen && canon_join(local, dom, literal, litlen) != SM_OK)
		return SM_ERR_PARSE;
	if ((st = canon_hack(local, dom, sizeof(dom), &routed)) != SM_OK)
		return st;
	if (dom[0] == '\0')
		return SM_ERR_NOTFOUND; /* a local name: "postmaster" */
	if (routed)
		*flags |= ADDR_CANON_ROUTED;
	return canon_join(local, dom, out, outlen);
}
