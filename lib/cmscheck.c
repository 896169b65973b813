/*
 * cmscheck.c — structural checks of CMS blobs.
 */
#include "cmscheck.h"

#include <limits.h>

#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/objects.h>

bool
cmscheck_complete_envelope(const unsigned char *der, size_t n)
{
	const unsigned char *p = der;
	CMS_ContentInfo *cms;
	ASN1_OCTET_STRING **content;
	int nid;
	bool ok = false;

	if (der == NULL || n == 0 || n > LONG_MAX)
		return false;
	/* d2i parses the whole structure (BER too) and says where it ended. */
	if ((cms = d2i_CMS_ContentInfo(NULL, &p, (long)n)) == NULL)
		goto done;
	if (p != der + n)
		goto done; /* something after the envelope */
	nid = OBJ_obj2nid(CMS_get0_type(cms));
	if (nid != NID_pkcs7_enveloped && nid != NID_id_smime_ct_authEnvelopedData)
		goto done;
	if (sk_CMS_RecipientInfo_num(CMS_get0_RecipientInfos(cms)) <= 0)
		goto done;
	content = CMS_get0_content(cms);
	ok = content != NULL && *content != NULL && ASN1_STRING_length(*content) > 0;
done:
	CMS_ContentInfo_free(cms);
	ERR_clear_error();
	return ok;
}
