/*
 * discover_ldap.c — look a recipient's certificate up in an LDAP directory
 * (libldap).
 *
 * The address goes into the configured filter escaped with
 * ldap_bv2escaped_filter_value (never pasted). The search asks for
 * userSMIMECertificate (RFC 2798: PKCS#7 with the chain, preferred) and
 * userCertificate, each with and without the ";binary" option: OpenLDAP
 * 2.5 stores userSMIMECertificate without it and returns nothing when a
 * search names only the ";binary" form, while Active Directory and CA
 * directories use ";binary". At most DISC_MAX_ENTRIES entries and
 * DISC_MAX_VALUES values of DISC_MAX_VALUE_SIZE bytes each are read.
 */
#include "discover.h"
#include "discover_int.h"

#include <ldap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/pkcs7.h>
#include <openssl/x509.h>

#include "x509util.h"

char *
discover_ldap_filter(const char *filter, const char *addr)
{
	struct berval in, esc = { 0, NULL };
	const char *p = strstr(filter, "%s");
	size_t len;
	char *out;

	if (p == NULL)
		return NULL;
	in.bv_val = (char *)addr;
	in.bv_len = strlen(addr);
	if (ldap_bv2escaped_filter_value(&in, &esc) != 0)
		return NULL;
	len = strlen(filter) - 2 + esc.bv_len + 1;
	if ((out = malloc(len)) != NULL)
		snprintf(out, len, "%.*s%s%s", (int)(p - filter), filter, esc.bv_val, p + 2);
	ber_memfree(esc.bv_val);
	return out;
}

void
disc_answer_add_der(struct disc_answer *a, const unsigned char *der, size_t len,
    const char *addr)
{
	const unsigned char *p = der;
	STACK_OF(X509) *set = NULL;
	PKCS7 *p7 = NULL;
	X509 *x;

	if (len == 0 || len > DISC_MAX_VALUE_SIZE)
		return;
	if ((x = d2i_X509(NULL, &p, (long)len)) != NULL && p == der + len) {
		sk_X509_push(x509u_has_address(x, addr) ? a->certs : a->cas, x);
		return;
	}
	X509_free(x);
	p = der;
	if ((p7 = d2i_PKCS7(NULL, &p, (long)len)) == NULL)
		return;
	if (PKCS7_type_is_signed(p7) && p7->d.sign != NULL)
		set = p7->d.sign->cert;
	for (int i = 0; set != NULL && i < sk_X509_num(set) && i < DISC_MAX_VALUES; i++) {
		x = sk_X509_value(set, i);
		if (X509_up_ref(x) != 1)
			break;
		sk_X509_push(x509u_has_address(x, addr) ? a->certs : a->cas, x);
	}
	PKCS7_free(p7);
}

/* The attributes, in order of preference. */
static const char *const ldap_attrs[] = {
	"userSMIMECertificate;binary", "userSMIMECertificate",
	"userCertificate;binary", "userCertificate", NULL,
};

static void
collect_entry(LDAP *ld, LDAPMessage *e, const char *addr, struct disc_answer *out)
{
	for (size_t i = 0; ldap_attrs[i] != NULL; i++) {
		struct berval **v = ldap_get_values_len(ld, e, ldap_attrs[i]);

		for (size_t k = 0; v != NULL && v[k] != NULL && k < DISC_MAX_VALUES; k++)
			disc_answer_add_der(out, (unsigned char *)v[k]->bv_val, v[k]->bv_len, addr);
		ldap_value_free_len(v);
	}
}

static int
dl_connect(const struct cfg_ldap *src, const char *password, int timeout_ms, LDAP **out)
{
	struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };
	struct berval cred;
	int v3 = LDAP_VERSION3, rc;

	if ((rc = ldap_initialize(out, src->uri)) != LDAP_SUCCESS)
		return rc;
	ldap_set_option(*out, LDAP_OPT_PROTOCOL_VERSION, &v3);
	ldap_set_option(*out, LDAP_OPT_REFERRALS, LDAP_OPT_OFF);
	ldap_set_option(*out, LDAP_OPT_NETWORK_TIMEOUT, &tv);
	ldap_set_option(*out, LDAP_OPT_TIMEOUT, &tv);
	if (src->bind_dn == NULL)
		return LDAP_SUCCESS;
	cred.bv_val = (char *)(password ? password : "");
	cred.bv_len = strlen(cred.bv_val);
	return ldap_sasl_bind_s(*out, src->bind_dn, LDAP_SASL_SIMPLE, &cred, NULL, NULL, NULL);
}

void
disc_ldap_query(const struct cfg_ldap *src, const char *password, const char *addr,
    int timeout_ms, struct disc_answer *out)
{
	struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };
	LDAP *ld = NULL;
	LDAPMessage *res = NULL;
	char *filter;
	int rc, n = 0;

	out->status = DA_TEMP;
	if ((filter = discover_ldap_filter(src->filter, addr)) == NULL) {
		snprintf(out->why, sizeof(out->why), "%s: cannot build the filter", src->uri);
		return;
	}
	if ((rc = dl_connect(src, password, timeout_ms, &ld)) != LDAP_SUCCESS) {
		snprintf(out->why, sizeof(out->why), "%s: %s", src->uri, ldap_err2string(rc));
		goto done;
	}
	rc = ldap_search_ext_s(ld, src->base, LDAP_SCOPE_SUBTREE, filter, (char **)ldap_attrs, 0,
	    NULL, NULL, &tv, DISC_MAX_ENTRIES, &res);
	if (rc != LDAP_SUCCESS && rc != LDAP_SIZELIMIT_EXCEEDED && rc != LDAP_NO_SUCH_OBJECT) {
		snprintf(out->why, sizeof(out->why), "%s: %s", src->uri, ldap_err2string(rc));
		goto done;
	}
	for (LDAPMessage *e = ldap_first_entry(ld, res); e != NULL && n < DISC_MAX_ENTRIES;
	     e = ldap_next_entry(ld, e), n++)
		collect_entry(ld, e, addr, out);
	out->status = sk_X509_num(out->certs) > 0 ? DA_FOUND : DA_NONE;
done:
	ldap_msgfree(res);
	if (ld != NULL)
		ldap_unbind_ext_s(ld, NULL, NULL);
	free(filter);
}
