#include "trust.h"

#include <dirent.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/pem.h>

#include "certcache.h"

struct trust {
	atomic_int refs;
	X509_STORE *store;
	size_t count;
};

static void
seterr(char *err, size_t errlen, const char *fmt, const char *a, const char *b)
{
	if (err != NULL && errlen > 0)
		snprintf(err, errlen, fmt, a, b);
}

/*
 * Add every certificate in one file to the store. Returns how many were
 * found (0: not a certificate file), or -1 when the file cannot be read
 * (errno set) or memory ran out.
 */
static int
add_file(X509_STORE *store, const char *path)
{
	BIO *bio = BIO_new_file(path, "rb");
	STACK_OF(X509_INFO) *infos = NULL;
	X509 *x = NULL;
	int found = 0;

	if (bio == NULL)
		return -1;
	/* PEM first: a bundle may hold many certificates (and CRLs or keys,
	 * which are skipped). */
	infos = PEM_X509_INFO_read_bio(bio, NULL, NULL, NULL);
	if (infos != NULL) {
		for (int i = 0; i < sk_X509_INFO_num(infos); i++) {
			X509_INFO *xi = sk_X509_INFO_value(infos, i);

			if (xi->x509 == NULL)
				continue;
			if (!X509_STORE_add_cert(store, xi->x509)) {
				found = -1;
				goto done;
			}
			found++;
		}
	}
	if (found == 0) {
		/* Not PEM: maybe a single DER certificate. */
		ERR_clear_error();
		if (BIO_reset(bio) == 0 && (x = d2i_X509_bio(bio, NULL)) != NULL) {
			if (!X509_STORE_add_cert(store, x))
				found = -1;
			else
				found = 1;
		}
	}
done:
	X509_free(x);
	sk_X509_INFO_pop_free(infos, X509_INFO_free);
	BIO_free(bio);
	ERR_clear_error();
	return found;
}

sm_status
trust_load(const char *ca_file, const char *ca_dir, struct trust **out,
    char *err, size_t errlen)
{
	struct trust *t = NULL;
	DIR *dir = NULL;
	struct dirent *de;
	char *path = NULL;
	sm_status st = SM_ERR_NOMEM;
	int n;

	*out = NULL;
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	t = calloc(1, sizeof(*t));
	if (t == NULL || (t->store = X509_STORE_new()) == NULL) {
		seterr(err, errlen, "%s%s", "out of memory", "");
		goto fail;
	}
	atomic_init(&t->refs, 1);

	if (ca_file != NULL) {
		n = add_file(t->store, ca_file);
		if (n < 0) {
			seterr(err, errlen, "%s: %s", ca_file, strerror(errno));
			st = SM_ERR_IO;
			goto fail;
		}
		if (n == 0) {
			seterr(err, errlen, "%s: %s", ca_file,
			    "no certificate found (PEM or DER expected)");
			st = SM_ERR_PARSE;
			goto fail;
		}
	}
	if (ca_dir != NULL) {
		dir = opendir(ca_dir);
		if (dir == NULL) {
			seterr(err, errlen, "%s: %s", ca_dir, strerror(errno));
			st = SM_ERR_IO;
			goto fail;
		}
		/* Read every file now instead of OpenSSL's hashed-directory
		 * lookup, which would go to the disk during verification. */
		while ((de = readdir(dir)) != NULL) {
			struct stat sb;

			if (de->d_name[0] == '.')
				continue;
			free(path);
			if (asprintf(&path, "%s/%s", ca_dir, de->d_name) < 0) {
				path = NULL;
				seterr(err, errlen, "%s%s", "out of memory", "");
				goto fail;
			}
			if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode))
				continue;
			/* Unreadable or non-certificate files in a CA
			 * directory are skipped, as OpenSSL's own lookup
			 * would; the count tells the admin what was found. */
			(void)add_file(t->store, path);
		}
	}
	t->count = (size_t)sk_X509_OBJECT_num(X509_STORE_get0_objects(t->store));
	/* Never changed from here on: verdicts against it may be kept (a
	 * new load is a new identity, so a reload re-verifies). */
	certcache_trust_adopt(t->store);
	*out = t;
	t = NULL;
	st = SM_OK;
fail:
	free(path);
	if (dir != NULL)
		closedir(dir);
	trust_free(t);
	ERR_clear_error();
	return st;
}

X509_STORE *
trust_store(struct trust *t)
{
	return t != NULL ? t->store : NULL;
}

size_t
trust_count(const struct trust *t)
{
	return t != NULL ? t->count : 0;
}

struct trust *
trust_ref(struct trust *t)
{
	if (t != NULL)
		atomic_fetch_add(&t->refs, 1);
	return t;
}

void
trust_free(struct trust *t)
{
	if (t == NULL || atomic_fetch_sub(&t->refs, 1) != 1)
		return;
	X509_STORE_free(t->store);
	free(t);
}
