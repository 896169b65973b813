/*
 * path.c — see path.h.
 */
#include "path.h"

#include <stdio.h>
#include <string.h>

const char *
path_dirname(const char *path, char *buf, size_t len)
{
	char *slash;

	if (len == 0)
		return buf;
	snprintf(buf, len, "%s", path);
	slash = strrchr(buf, '/');
	if (slash == NULL)
		snprintf(buf, len, ".");
	else if (slash == buf)
		buf[1] = '\0';
	else
		*slash = '\0';
	return buf;
}
