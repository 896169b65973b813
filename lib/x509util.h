/*
 * x509util.h — certificate helpers shared by the harvest rules, the key
 * cache and the key store.
 *
 * Everything here is a pure function of the certificate (and of a time the
 * caller passes in, normally clock_now()), so the rules are testable without
 * a clock or a network.
 *
 * Addresses. A certificate "speaks for" the rfc822Name entries of its
 * subjectAltName; only when it has none does the subject's emailAddress
 * count (RFC 8550 §3, CA/B Forum S/MIME BR 7.1.4.2). Addresses compare with
 * the local part exact (RFC 5321 §2.4: it is case-sensitive) and the domain
 * case-insensitive (ASCII). The normalised form keeps the local part as
 * written and lowercases the domain.
 */
#ifndef SMIME_X509UTIL_H
#define SMIME_X509UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <openssl/x509.h>

#include "status.h"

/* Length of a hex SHA-256 fingerprint plus its NUL. */
#define X509U_FP_SIZE 65

enum x509u_key_type {
	X509U_KEY_OTHER = 0,
	X509U_KEY_RSA,
	X509U_KEY_EC,
	X509U_KEY_ED25519,
	X509U_KEY_ED448,
	X509U_KEY_DSA,
};

enum x509u_validity {
	X509U_VALID = 0,
	X509U_EXPIRED,
	X509U_NOT_YET_VALID,
	X509U_BAD_TIME, /* unparsable notBefore/notAfter */
};

/* ---- addresses ---- */

/* Split check and normalise: exactly one non-empty local part and a
 * non-empty domain separated by the last '@', no control characters or
 * spaces. *out (caller frees) is the address as addr_normalize() gives it
 * (the project's one comparison rule: case-insensitive), or, for an address
 * it refuses (a UTF-8 local part), the address with ASCII letters
 * lowercased. SM_ERR_PARSE for something that is not an address. */
sm_status x509u_addr_normalise(const char *in, char **out);
/* The same address once both are normalised? */
bool x509u_addr_equal(const char *a, const char *b);
/* The whole address, ASCII lowercased (caller frees). */
char *x509u_addr_lower(const char *in);

/* The addresses the certificate speaks for, as written in it (SAN
 * rfc822Name, or the subject emailAddress when there is no SAN rfc822Name).
 * Entries with embedded NULs or that are not addresses are skipped: a
 * certificate must not be able to smuggle "bob@x\0@evil" past a compare.
 * *from_subject tells which source was used (may be NULL). An empty list is
 * SM_OK with *n == 0. Free with x509u_strv_free. */
sm_status x509u_addresses(X509 *cert, char ***out, size_t *n,
			  bool *from_subject);
/* Does the certificate speak for addr (rules above)? */
bool x509u_has_address(X509 *cert, const char *addr);
/* SAN rfc822Name entries that name a whole domain ("@example.org" or
 * "example.org", the RFC 5280 name-constraint form), lowercased, without
 * the '@'. Used by the key store for domain keys. */
sm_status x509u_domains(X509 *cert, char ***out, size_t *n);
void x509u_strv_free(char **v, size_t n);

/* ---- identity ---- */

/* SHA-256 of the DER certificate as 64 lowercase hex digits. */
sm_status x509u_fingerprint(X509 *cert, char out[X509U_FP_SIZE]);
/* SHA-256 of the DER SubjectPublicKeyInfo: equal for two certificates that
 * carry the same key (renewal without re-keying). */
sm_status x509u_key_fingerprint(X509 *cert, char out[X509U_FP_SIZE]);
/* Accept "AB:CD:…" or "abcd…" (64 hex digits, colons optional); write the
 * canonical lowercase form. false when it is not a SHA-256 fingerprint. */
bool x509u_fingerprint_parse(const char *in, char out[X509U_FP_SIZE]);
/* RFC 2253 text of a name, serial as lowercase hex (caller frees). */
sm_status x509u_name_text(const X509_NAME *name, char **out);
sm_status x509u_serial_hex(X509 *cert, char **out);

/* ---- key ---- */

enum x509u_key_type x509u_key_type(X509 *cert, int *bits);
const char *x509u_key_type_name(enum x509u_key_type t);
enum x509u_key_type x509u_key_type_from_name(const char *name);

/* ---- usage ---- */

/* Does the key usage extension allow encrypting to this key?
 * Absent → yes. RSA needs keyEncipherment, EC keyAgreement; other key types
 * cannot be encrypted to at all. */
bool x509u_ku_allows_encryption(X509 *cert);
/* Absent EKU → true; else it must contain emailProtection or
 * anyExtendedKeyUsage. */
bool x509u_eku_allows_email(X509 *cert);
/* Did OpenSSL find the extensions malformed (duplicate or unparsable)? */
bool x509u_extensions_invalid(X509 *cert);

/* ---- time ---- */

sm_status x509u_time(const ASN1_TIME *t, time_t *out);
/* notBefore/notAfter as time_t. */
sm_status x509u_not_before(X509 *cert, time_t *out);
sm_status x509u_not_after(X509 *cert, time_t *out);
enum x509u_validity x509u_validity(X509 *cert, time_t now);
/* "YYYY-MM-DD" (UTC) into buf of at least 11 bytes. */
void x509u_date(time_t t, char *buf, size_t len);

/* ---- trust ---- */

/* Does cert chain to an anchor in trust at time now, using untrusted as
 * intermediates (may be NULL)? With allow_self_signed a self-signed cert
 * (issuer == subject, signature by its own key) counts as trusted even
 * without being an anchor. Returns SM_OK (trusted), SM_ERR_VERIFY (not
 * trusted; *verr receives the X509_V_ERR code when verr is non-NULL),
 * SM_ERR_NOMEM/SM_ERR_CRYPTO on internal failure. The leaf's own validity
 * window is ignored here (callers report expiry separately, with its
 * date); the intermediates' windows are checked. */
sm_status x509u_verify(X509 *cert, STACK_OF(X509) *untrusted,
		       X509_STORE *trust, bool allow_self_signed, time_t now,
		       int *verr);
/* x509u_verify that also tells, on success, the span in which every
 * certificate of the chain it built is valid: [*from, *until] (latest
 * notBefore, earliest notAfter; both may be NULL). */
sm_status x509u_verify_span(X509 *cert, STACK_OF(X509) *untrusted,
			    X509_STORE *trust, bool allow_self_signed,
			    time_t now, int *verr, time_t *from,
			    time_t *until);
/* Is the certificate self-signed (self-issued and verifying with its own
 * key)? */
bool x509u_is_self_signed(X509 *cert);

#endif
