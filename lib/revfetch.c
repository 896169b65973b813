/*
 * revfetch.c — libcurl for CRLs and OCSP (see revfetch.h).
 */
#include "revfetch.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void
curl_init(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

struct sink {
	struct buf *out;
	size_t max;
	int over;
};

static size_t
sink_write(char *p, size_t size, size_t n, void *arg)
{
	struct sink *s = arg;
	size_t len = size * n;

	if (s->out->len + len > s->max) {
		s->over = 1;
		return 0;
	}
	return buf_append(s->out, p, len) == SM_OK ? len : 0;
}

static sm_status
perform(CURL *c, struct sink *sk, char *err, size_t errlen)
{
	CURLcode rc = curl_easy_perform(c);
	long code = 0;

	if (sk->over) {
		sm_seterr(err, errlen, "larger than %zu bytes", sk->max);
		return SM_ERR_LIMIT;
	}
	if (rc != CURLE_OK) {
		sm_seterr(err, errlen, "%s", curl_easy_strerror(rc));
		return SM_ERR_IO;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	if (code != 200) {
		sm_seterr(err, errlen, "HTTP %ld", code);
		return SM_ERR_IO;
	}
	return SM_OK;
}

sm_status
revfetch(const char *url, const unsigned char *post, size_t post_len,
	 const char *content_type, const struct revfetch_opts *o,
	 struct buf *out, char *err, size_t errlen)
{
	struct curl_slist *hdrs = NULL;
	struct sink sk = { out, o->max_bytes, 0 };
	char ct[128];
	sm_status st;
	CURL *c;

	buf_reset(out);
	pthread_once(&curl_once, curl_init);
	if (curl_init_rc != CURLE_OK || (c = curl_easy_init()) == NULL) {
		sm_seterr(err, errlen, "libcurl did not initialise");
		return SM_ERR_IO;
	}
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(c, CURLOPT_MAXREDIRS, 3L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, o->timeout_ms);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, o->timeout_ms);
	curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE,
			 (curl_off_t)o->max_bytes);
	/* "" switches off the proxies libcurl would take from the
	 * environment: the daemon uses exactly the configured one. */
	curl_easy_setopt(c, CURLOPT_PROXY, o->proxy ? o->proxy : "");
	curl_easy_setopt(c, CURLOPT_USERAGENT, "smime-milter/" SMIME_VERSION);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &sk);
	if (post != NULL) {
		snprintf(ct, sizeof(ct), "Content-Type: %s", content_type);
		if ((hdrs = curl_slist_append(NULL, ct)) == NULL) {
			curl_easy_cleanup(c);
			return SM_ERR_NOMEM;
		}
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, post);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)post_len);
	}
	st = perform(c, &sk, err, errlen);
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(c);
	return st;
}
