#include "status.h"

#include <stdarg.h>
#include <stdio.h>

const char *
sm_strstatus(sm_status st)
{
	switch (st) {
	case SM_OK: return "ok";
	case SM_ERR_NOMEM: return "out of memory";
	case SM_ERR_IO: return "I/O error";
	case SM_ERR_ARG: return "invalid argument";
	case SM_ERR_PARSE: return "malformed input";
	case SM_ERR_LIMIT: return "limit exceeded";
	case SM_ERR_CRYPTO: return "cryptographic failure";
	case SM_ERR_VERIFY: return "verification failed";
	case SM_ERR_NOKEY: return "no usable key";
	case SM_ERR_UNSUPPORTED: return "unsupported";
	case SM_ERR_DB: return "key cache error";
	case SM_ERR_NOTFOUND: return "not found";
	case SM_ERR_CONFIG: return "configuration error";
	case SM_ERR_PERM: return "unsafe permissions";
	}
	return "unknown status";
}

void
sm_seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}
