/*
 * fuzz_cms — the CMS layer on arbitrary bytes: the BER pre-scan, content
 * type, verification (opaque, and detached over a fixed content) and
 * decryption with alice's real key.
 */
#include <stdint.h>
#include <stdlib.h>

#include "cmsscan.h"
#include "fuzz_env.h"
#include "smime.h"

static struct smime_key alice;
static struct trust *tr;   /* kept for the life of the process */
static X509_STORE *anchors;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char path[512], err[300];

	(void)argc;
	(void)argv;
	snprintf(path, sizeof(path), "%s/alice.pem", fz_pki());
	if (smime_key_load_pem(path, &alice, err, sizeof(err)) != SM_OK)
		FZ_DIE("alice: %s", err);
	snprintf(path, sizeof(path), "%s/ca.pem", fz_pki());
	if (trust_load(path, NULL, &tr, err, sizeof(err)) != SM_OK)
		FZ_DIE("trust: %s", err);
	anchors = trust_store(tr);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const unsigned char content[] = "Content-Type: text/plain\r\n\r\nhello\r\n";
	struct cmsscan_counts c;
	struct smime_verify_result res;
	struct buf out = BUF_INIT;
	char err[256];

	(void)cmsscan_signed(data, size, NULL, &c);
	(void)smime_content_type(data, size);
	smime_verify(data, size, NULL, 0, anchors, false, &res, &out);
	smime_verify_result_free(&res);
	smime_verify(data, size, content, sizeof(content) - 1, anchors, true, &res, NULL);
	smime_verify_result_free(&res);
	buf_reset(&out);
	(void)smime_decrypt(data, size, &alice, 1, &out, err, sizeof(err));
	buf_free(&out);
	return 0;
}
