/*
 * cmsscan.h — count what a CMS SignedData holds, in the raw BER, before
 * OpenSSL decodes any of it.
 *
 * Decoding is where the work is: OpenSSL builds every certificate of the
 * bag, stacks one digest BIO per digestAlgorithms entry and checks every
 * SignerInfo before the chain. An outside sender controls all three counts,
 * so they are bounded first, by walking tag-length headers only (no
 * allocation, linear in the size, nesting bounded).
 */
#ifndef SMIME_CMSSCAN_H
#define SMIME_CMSSCAN_H

#include <stddef.h>

#include "status.h"

struct cmsscan_limits {
	size_t max_digests; /* digestAlgorithms entries */
	size_t max_certs;   /* certificates (any CertificateChoices) */
	size_t max_signers; /* SignerInfos */
};

struct cmsscan_counts {
	size_t ndigests, ncerts, nsigners;
	const char *over;   /* SM_ERR_LIMIT: "digestAlgorithms", "certificates"
	                     * or "SignerInfos"; NULL otherwise */
};

/*
 * Walk a ContentInfo holding SignedData (BER: indefinite lengths allowed)
 * and count its digestAlgorithms, certificates and SignerInfos. lim NULL:
 * no limits. SM_OK with the counts; SM_ERR_LIMIT as soon as one count
 * passes its limit (that count is limit + 1, counting stops there, c->over
 * names it); SM_ERR_PARSE when the bytes are no SignedData this walk can
 * read (too deeply nested included).
 */
sm_status cmsscan_signed(const unsigned char *der, size_t n,
    const struct cmsscan_limits *lim, struct cmsscan_counts *c);

#endif
