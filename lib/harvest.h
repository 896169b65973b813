/*
 * harvest.h — the harvest rules: may the certificate of a signed inbound
 * message go into the key cache?
 *
 * One pure function of plain data. The CMS layer verifies the signature and
 * builds the signer's chain (it owns the trust store and the verify
 * parameters); it maps its result onto enum harvest_chain and hands
 * everything to harvest_judge(), which applies the rules of DESIGN.md in
 * this order, the first failure being the reason:
 *
 *   1. the signature verifies               "signature does not verify"
 *   2. the chain reaches a trust anchor     "certificate not trusted",
 *      (self-signed only when allowed)      "self-signed certificate not allowed",
 *                                           "certificate chain expired"
 *   3. valid now                            "certificate expired on YYYY-MM-DD",
 *                                           "certificate not yet valid"
 *   4. an address of the certificate        "no certificate address matches From ADDR"
 *      equals From (SAN rfc822Name; the
 *      subject emailAddress only without
 *      SAN rfc822Name; both sides
 *      normalised, so case-insensitive)
 *   5. key usage allows encryption          "key usage does not allow encryption",
 *                                           "key type ed25519 cannot encrypt"
 *   6. EKU, when present, has               "extended key usage lacks emailProtection"
 *      emailProtection or anyExtendedKeyUsage
 *   7. digest not MD5/SHA-1 (the message    "weak digest sha1",
 *      signature's, then the certificate's  "certificate signed with weak digest sha1"
 *      own signature)
 *   8. RSA key at least 2048 bits           "RSA key too small (1024 bits)"
 *
 * Separate encryption certificates. When the signer names a certificate
 * with sMIMEEncryptionKeyPreference (the CMS layer resolves the attribute to
 * a certificate of the set and passes it as enc_pref), or the signature's
 * certificate set holds another certificate for the same From address, that
 * certificate is a candidate to be stored instead of the signer. The
 * certificate set is not covered by the signature, so a candidate is only
 * accepted when its own chain verifies against the trust store in the input
 * (a candidate is never accepted self-signed, and without a trust store no
 * candidate is considered), and it must pass rules 3–8 itself. The first
 * candidate passing (enc_pref first, then the set in order) is harvested;
 * when none passes, the signer is judged for encryption (rules 5–8) as
 * usual, so a dual-use signer certificate is still harvested.
 *
 * Rules 1–4 are always about the signer: the signer is who vouches for the
 * address. The key cache stores the pair (signer → harvested certificate):
 * the preference belongs to the signing certificate that stated it.
 */
#ifndef SMIME_HARVEST_H
#define SMIME_HARVEST_H

#include <stdbool.h>
#include <time.h>

#include <openssl/x509.h>

#include "status.h"

/* The signer's chain, as the CMS layer found it. */
enum harvest_chain {
	HARVEST_CHAIN_TRUSTED = 0, /* chains to a configured anchor */
	HARVEST_CHAIN_UNTRUSTED,   /* no path to an anchor, bad signature on
				      a CA certificate, … */
	HARVEST_CHAIN_EXPIRED,	   /* leaf or a CA certificate outside its
				      validity window */
	HARVEST_CHAIN_SELF_SIGNED, /* the signer is its own (unconfigured)
				      anchor */
};

struct harvest_input {
	X509 *signer;		  /* required */
	STACK_OF(X509) *certs;	  /* the other certificates of the SignedData
				     (may include the signer; may be NULL) */
	bool signature_ok;	  /* the signature over the content verified */
	enum harvest_chain chain; /* the signer's chain status */
	bool allow_self_signed;	  /* trust.allow_self_signed */
	int digest_nid;		  /* digest of the message signature */
	const char *from;	  /* addr-spec of the From header */
	X509 *enc_pref;		  /* cert named by sMIMEEncryptionKeyPreference,
				     or NULL */
	X509_STORE *trust;	  /* verifies separate encryption certificates;
				     NULL: consider only the signer */
	time_t now;		  /* clock_now() */
};

#define HARVEST_REASON_SIZE 256

struct harvest_verdict {
	bool harvest;	/* store verdict.cert in the key cache */
	X509 *cert;	/* borrowed from the input: the signer or a separate
			   encryption certificate; NULL when !harvest */
	bool enc_pref;	/* cert is a separate encryption certificate: store
			   the pairing signer → cert */
	bool self_signed; /* the signer chains only because of
			     allow_self_signed (keycache: KC_AS_SELF_SIGNED) */
	char reason[HARVEST_REASON_SIZE]; /* why not, or what was chosen */
};

/* Apply the rules. Always fills *out. Returns SM_OK when a verdict was
 * reached (harvest or not: look at out->harvest), SM_ERR_ARG when the
 * input lacks the signer or the From address, SM_ERR_NOMEM/SM_ERR_CRYPTO on
 * internal failure (out->reason says so; nothing is harvested). */
sm_status harvest_judge(const struct harvest_input *in,
			struct harvest_verdict *out);

#endif
