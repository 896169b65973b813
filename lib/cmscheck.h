/*
 * cmscheck.h — is a CMS blob what it claims to be, all of it?
 *
 * Outbound mail that the client already encrypted passes unchanged, so
 * "already encrypted" must mean a complete envelope, not a body that
 * merely starts with the EnvelopedData OID and goes on in plain text.
 */
#ifndef SMIME_CMSCHECK_H
#define SMIME_CMSCHECK_H

#include <stdbool.h>
#include <stddef.h>

/* True only when der, all of it, is one ContentInfo holding an
 * EnvelopedData or AuthEnvelopedData with at least one RecipientInfo and
 * non-empty encrypted content, and nothing after it. */
bool cmscheck_complete_envelope(const unsigned char *der, size_t n);

#endif
