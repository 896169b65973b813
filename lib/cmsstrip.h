/*
 * cmsstrip.h — take the content out of a CMS ContentInfo in place, so
 * that OpenSSL decodes only the rest.
 *
 * d2i_CMS_ContentInfo() copies an encapsulated content (signed-data's
 * eContent, enveloped-data's encryptedContent) into an OCTET STRING of
 * its own: for a 50 MB message a second 50 MB. OpenSSL reads the same
 * structure with that content absent (detached) and the content given as
 * a BIO. cmsstrip_content() makes that shell, a small copy of everything
 * but the content, and leaves the content's octets in the caller's
 * buffer, a constructed (BER) string's pieces moved together.
 */
#ifndef SMIME_CMSSTRIP_H
#define SMIME_CMSSTRIP_H

#include <stddef.h>

#include "buf.h"
#include "status.h"

/*
 * der[0..n): a ContentInfo of signed-data, enveloped-data or
 * authEnveloped-data carrying its content. SM_OK: shell holds the
 * ContentInfo without the content (appended), the content's octets are
 * der[*off .. *off + *len) and the rest of der is no longer the DER.
 * SM_ERR_PARSE: not such a structure, no content in it, or a shape this
 * walk does not take apart (der untouched: decode it whole as before).
 * SM_ERR_NOMEM.
 */
sm_status cmsstrip_content(unsigned char *der, size_t n, struct buf *shell, size_t *off,
    size_t *len);

/*
 * cmsstrip_content() of an enveloped-data (not authEnveloped-data: SM_ERR_PARSE),
 * and in mini (appended) the same envelope holding only the last `tail`
 * octets of its encrypted content. With tail a multiple of the cipher's
 * block size and at least two blocks, a CBC decryption of mini fails or
 * succeeds (the padding of the last block) exactly as one of the whole
 * envelope with the same key: the check whether a recipient can open it,
 * once the content was decrypted in place.
 */
sm_status cmsstrip_envelope(unsigned char *der, size_t n, size_t tail, struct buf *shell,
    struct buf *mini, size_t *off, size_t *len);

#endif
