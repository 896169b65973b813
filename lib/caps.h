/*
 * caps.h — what a correspondent can decrypt, as a bit set.
 *
 * Filled from a signature's sMIMECapabilities attribute (RFC 8551 §2.5.2),
 * stored with each harvested certificate in the key cache, and read by the
 * cipher choice. CAP_KNOWN is set once capabilities were seen at all: a
 * certificate without CAP_KNOWN means "nothing known" (AES-256-CBC then).
 */
#ifndef SMIME_CAPS_H
#define SMIME_CAPS_H

#include <stdint.h>

enum {
	CAP_AES128_CBC = 1u << 0,
	CAP_AES192_CBC = 1u << 1,
	CAP_AES256_CBC = 1u << 2,
	CAP_AES128_GCM = 1u << 3,
	CAP_AES192_GCM = 1u << 4,
	CAP_AES256_GCM = 1u << 5,
	CAP_DES3 = 1u << 6,
	CAP_RC2 = 1u << 7,
	CAP_RSA_OAEP = 1u << 8,
	CAP_KNOWN = 1u << 31,
};

typedef uint32_t caps_t;

#endif
