#include "address.h"
#include "addrlist.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

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

	return d && strcasecmp(d, domain) == 0;
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
