/*
 * smime_open.h — an envelope decrypted in place, for bodies of tens of
 * megabytes (the inbound pipeline, gw_decrypt.c).
 */
#ifndef SMIME_SMIME_OPEN_H
#define SMIME_SMIME_OPEN_H

#include <stddef.h>

#include "smime.h"
#include "status.h"

/*
 * smime_decrypt() of an enveloped-data taken apart by cmsstrip_envelope():
 * shell[0..sn) the envelope without its content, the encrypted content at
 * buf[off..off+len). The plaintext is written to buf[0..*plen), over the
 * bytes already read (the ciphertext is gone afterwards, success or not).
 * Keys, statuses and err as smime_decrypt(); on failure no plaintext stays
 * in buf (what was written is wiped).
 */
sm_status smime_decrypt_inplace(const unsigned char *shell, size_t sn, unsigned char *buf,
    size_t off, size_t len, const struct smime_key *keys, size_t nkeys, size_t *plen, char *err,
    size_t errlen);

#endif
