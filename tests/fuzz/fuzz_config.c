/*
 * fuzz_config — the configuration loader on arbitrary file contents (a
 * file, since config_load reads libconfig from a path).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "config.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char path[64];
	struct config *cfg = NULL;
	struct config_errors errs = { 0 };
	FILE *f;

	if (path[0] == '\0') {
		int fd;

		snprintf(path, sizeof(path), "/tmp/smime-fuzz-conf.XXXXXX");
		if ((fd = mkstemp(path)) < 0)
			abort();
		close(fd);
	}
	if ((f = fopen(path, "wb")) == NULL)
		abort();
	if (size > 0 && fwrite(data, 1, size, f) != size)
		abort();
	fclose(f);
	if (config_load(path, &cfg, &errs) == SM_OK)
		config_unref(cfg);
	config_errors_free(&errs);
	return 0;
}
