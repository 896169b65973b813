/*
 * fuzz_inbound — gw_inbound with a real environment (key store with
 * alice's keys, trust anchors, SQLite key cache, decrypt = "deliver") on an
 * arbitrary message from bob to alice.
 */
#include "fuzz_env.h"

static struct gw_env env;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fz_env(&env, CFG_DECRYPT_DELIVER);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char rcpt[] = "alice@org.example";
	struct fz_msg f;
	struct gw_result res;

	fz_msg(&f, data, size, "bob@partner.example", rcpt);
	if (gw_inbound(&env, &f.m, &res) == SM_OK)
		gw_result_free(&res);
	fz_msg_free(&f);
	return 0;
}
