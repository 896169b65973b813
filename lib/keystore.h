/*
 * keystore.h — our own keys: the private keys of internal users (and of
 * whole domains) in keys_dir.
 *
 * Files. Every "*.pem" file in keys_dir (names starting with '.' are
 * skipped; other files are ignored) holds exactly one unencrypted private
 * key, its certificate and optionally the chain (PEM, any order).
 * keys_dir itself must belong to root or to the daemon's user and be
 * writable by neither group nor others: otherwise nothing loads
 * (SM_ERR_PERM, the message says why and the fix). A file that is a
 * symbolic link (never followed), belongs to another user, may be read,
 * written or executed by group or others, or cannot be parsed is skipped:
 * the rest loads, and the store keeps one line per skipped file (naming
 * it and the fix) for the daemon's log and `smimectl check`. One broken
 * file must not stop everyone's mail. Files are parsed once, at load; a
 * reload builds a new keystore. A loaded keystore is immutable and may be
 * shared between threads.
 *
 * Addresses. A key is a user key for every address its certificate speaks
 * for (SAN rfc822Name, else subject emailAddress; local part exact, domain
 * case-insensitive). It is a domain key for DOMAIN when its file is named
 * "@DOMAIN.pem" (or "@DOMAIN_<16 hex>.pem", as import names it), or when
 * its certificate has a SAN rfc822Name without a local part ("@DOMAIN" or
 * "DOMAIN", the RFC 5280 name-constraint form). A file named "@…" is only
 * a domain key.
 *
 * Several keys per address are normal (renewal, separate signing and
 * encryption keys): the newest valid signing-capable one signs; every key,
 * current, renewed or expired, decrypts.
 */
#ifndef SMIME_KEYSTORE_H
#define SMIME_KEYSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>
#include <sys/types.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "status.h"
#include "x509util.h"

/* Field for field the CMS engine's struct smime_key: a pointer to one can
 * be used as the other. */
struct keystore_key {
	X509 *cert;
	EVP_PKEY *pkey;
	STACK_OF(X509) *chain; /* never NULL; may be empty */
};

/* What `smimectl key list` shows about one key. */
struct keystore_info {
	char *path;	    /* the file it came from */
	char **domains;	    /* lowercased domains it is a domain key for */
	size_t n_domains;
	char **addresses;   /* user addresses (none for a domain file) */
	size_t n_addresses;
	char fingerprint[X509U_FP_SIZE];
	char *subject, *issuer;
	time_t not_before, not_after;
	enum x509u_key_type key_type;
	int key_bits;
	bool can_sign;	  /* key usage allows digitalSignature/nonRepudiation */
	bool can_encrypt; /* key usage allows key transport/agreement */
};

struct keystore;

/* Load every key of dir whose files belong to root or to owner (the
 * daemon's user). Fails only for the directory itself (err says why) or
 * out of memory; skipped files are in the problems below. */
sm_status keystore_load_for(const char *dir, uid_t owner, struct keystore **out,
			    char *err, size_t errlen);
/* keystore_load_for(dir, geteuid(), ...). */
sm_status keystore_load(const char *dir, struct keystore **out, char *err,
			size_t errlen);
/* Skipped files: "PATH: why; fix" lines, 0 … count - 1. */
size_t keystore_problem_count(const struct keystore *ks);
const char *keystore_problem_at(const struct keystore *ks, size_t i);
/* Did a skipped file belong to address (or its domain), judging by the
 * file name import gives it ("ADDRESS_<hex>.pem", "@DOMAIN.pem")? Mail
 * from such an address is a signing failure (on_error), not unsigned
 * mail from a user without a key. */
bool keystore_broken_for(const struct keystore *ks, const char *address);
void keystore_free(struct keystore *ks); /* NULL-safe */

/* The key to sign mail from address at time now: the user key for the
 * exact address that is valid now and may sign, newest notBefore first
 * (then latest notAfter); when the address has no such key, the domain key
 * of its domain chosen the same way. *domain_key (may be NULL) tells which.
 * The key belongs to ks. SM_ERR_NOKEY when there is none, SM_ERR_PARSE for
 * something that is not an address. */
sm_status keystore_signer(const struct keystore *ks, const char *address,
			  time_t now, const struct keystore_key **out,
			  bool *domain_key);

/* The choice rule itself, for listings and checks: the index of the key
 * that signs for who at now ("user@domain": that address's own keys only;
 * "@domain": that domain's keys only; no fallback between them), or -1.
 * When none signs, newest (may be NULL) receives the index of the newest
 * key for who whatever its validity (to say why), or -1 when it has no
 * key at all. */
long keystore_pick(const struct keystore *ks, const char *who, time_t now, long *newest);
/* Is the key described by in one of who's ("user@domain" or "@domain")? */
bool keystore_info_covers(const struct keystore_info *in, const char *who);

/* Every key, whatever its validity, for trying decryption: an array of n
 * keys owned by ks, in load order. */
void keystore_decrypt_keys(const struct keystore *ks,
			   const struct keystore_key **keys, size_t *n);

/* Listing: keys 0 … keystore_count() - 1, in load order (file name). */
size_t keystore_count(const struct keystore *ks);
const struct keystore_key *keystore_key_at(const struct keystore *ks,
					   size_t i);
const struct keystore_info *keystore_info_at(const struct keystore *ks,
					     size_t i);

/* Import a PKCS#12 file's key, certificate and chain into dir as a new
 * mode-0600 PEM file named "ADDRESS_<first 16 hex of the certificate's
 * SHA-256>.pem" (ADDRESS: the certificate's first address, or "@DOMAIN"
 * for a domain certificate; characters unsafe in a file name become '-').
 * Written to a temporary file, synced, then renamed: a crash never leaves a
 * half key file. Importing the same certificate again replaces the file.
 * password: as given (NULL or "" both mean "empty"). path_out (may be
 * NULL) receives the file written. Errors: SM_ERR_VERIFY "PKCS#12: wrong
 * password", SM_ERR_PARSE for something that is not PKCS#12 or lacks a
 * key or its certificate, SM_ERR_IO for the directory. */
sm_status keystore_import_p12(const char *dir, const unsigned char *p12,
			      size_t len, const char *password, char *path_out,
			      size_t pathlen, char *err, size_t errlen);

enum keystore_p12_alg {
	KEYSTORE_P12_DEFAULT = 0, /* OpenSSL 3 defaults: PBES2/PBKDF2
				     AES-256-CBC, HMAC-SHA-256 MAC */
	KEYSTORE_P12_LEGACY,	  /* pbeWithSHAAnd3-KeyTripleDES-CBC for key
				     and certificates, SHA-1 MAC: what gpgsm
				     2.2 and old Windows/macOS import */
};

/* Export the key of address as PKCS#12 (DER, *out malloc'ed): the key that
 * keystore_signer() would pick at now (exact address; "@DOMAIN" names a
 * domain key), or, when none is valid, the newest one, so that expired
 * keys can still be backed up. With its certificate, chain, and the
 * address as friendly name. SM_ERR_NOKEY when ks has no key for it. */
sm_status keystore_export_p12(const struct keystore *ks, const char *address,
			      time_t now, const char *password,
			      enum keystore_p12_alg alg, unsigned char **out,
			      size_t *len, char *err, size_t errlen);

#endif
