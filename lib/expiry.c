/*
 * expiry.c — our own certificates that expire within the warning window.
 */
#include "expiry.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* Does another key cover name and stay valid until after limit? */
static bool
renewed_for(const struct keystore *ks, size_t self, const char *name, time_t limit)
{
	for (size_t j = 0; j < keystore_count(ks); j++) {
		const struct keystore_info *o = keystore_info_at(ks, j);
		if (j != self && o->not_after > limit && keystore_info_covers(o, name))
			return true;
	}
	return false;
}

static bool
renewed(const struct keystore *ks, size_t i, time_t limit)
{
	const struct keystore_info *in = keystore_info_at(ks, i);
	char dom[300];

	if (in->n_addresses == 0 && in->n_domains == 0)
		return false;
	for (size_t a = 0; a < in->n_addresses; a++)
		if (!renewed_for(ks, i, in->addresses[a], limit))
			return false;
	for (size_t d = 0; d < in->n_domains; d++) {
		snprintf(dom, sizeof(dom), "@%s", in->domains[d]);
		if (!renewed_for(ks, i, dom, limit))
			return false;
	}
	return true;
}

size_t
expiry_own(const struct keystore *ks, time_t now, long days, expiry_fn fn, void *arg)
{
	time_t limit = now + (time_t)days * 86400;
	size_t n = 0;

	if (ks == NULL || days <= 0)
		return 0;
	for (size_t i = 0; i < keystore_count(ks); i++) {
		const struct keystore_info *in = keystore_info_at(ks, i);
		double left;

		if (in->not_after > limit || renewed(ks, i, limit))
			continue;
		left = difftime(in->not_after, now) / 86400.0;
		fn(in, left < 0 ? -(long)(-left + 0.999999) : (long)left, arg);
		n++;
	}
	return n;
}

const char *
expiry_names(const struct keystore_info *in, char *buf, size_t len)
{
	size_t used = 0;

	buf[0] = '\0';
	for (size_t a = 0; a < in->n_addresses && used < len; a++)
		used += (size_t)snprintf(buf + used, len - used, "%s%s", used ? ", " : "",
		    in->addresses[a]);
	for (size_t d = 0; d < in->n_domains && used < len; d++)
		used += (size_t)snprintf(buf + used, len - used, "%s@%s", used ? ", " : "",
		    in->domains[d]);
	if (buf[0] == '\0')
		snprintf(buf, len, "%s", in->path);
	return buf;
}
