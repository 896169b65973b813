/*
 * fuzz_outbound — gw_outbound with a real environment on an arbitrary
 * message from alice (whose key signs) to bob (whose certificate is in the
 * key cache, so the message is signed and encrypted).
 */
#include "fuzz_env.h"

static struct gw_env env;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fz_env(&env, CFG_DECRYPT_HARVEST);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char rcpt[] = "bob@partner.example";
	struct fz_msg f;
	struct gw_result res;

	fz_msg(&f, data, size, "alice@org.example", rcpt);
	if (gw_outbound(&env, &f.m, &res) == SM_OK)
		gw_result_free(&res);
	fz_msg_free(&f);
	return 0;
}
