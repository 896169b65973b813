/*
 * keystore.c — our own keys (see keystore.h for the conventions).
 */
#include "keystore.h"
#include "keyfile.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/provider.h>
#include <openssl/x509v3.h>

/* A key file is a few KB; anything this big is not one. */
#define KS_MAX_FILE (1024 * 1024)
/* File names written by import stay well below NAME_MAX. */
#define KS_MAX_NAME_ADDR 180

struct keystore {
	struct keystore_key *keys; /* contiguous: keystore_decrypt_keys */
	struct keystore_info *info;
	size_t n;
	char **problems; /* one line per skipped file */
	size_t n_problems;
	char **broken;	 /* "user@domain" / "@domain" of skipped files, by name */
	size_t n_broken;
};

static bool is_hex16_suffix(const char *s, size_t len);

static void
key_clear(struct keystore_key *k)
{
	X509_free(k->cert);
	EVP_PKEY_free(k->pkey);
	sk_X509_pop_free(k->chain, X509_free);
	memset(k, 0, sizeof(*k));
}

static void
info_clear(struct keystore_info *i)
{
	free(i->path);
	x509u_strv_free(i->domains, i->n_domains);
	x509u_strv_free(i->addresses, i->n_addresses);
	free(i->subject);
	free(i->issuer);
	memset(i, 0, sizeof(*i));
}

void
keystore_free(struct keystore *ks)
{
	size_t i;

	if (ks == NULL)
		return;
	for (i = 0; i < ks->n; i++) {
		key_clear(&ks->keys[i]);
		info_clear(&ks->info[i]);
	}
	free(ks->keys);
	free(ks->info);
	x509u_strv_free(ks->problems, ks->n_problems);
	x509u_strv_free(ks->broken, ks->n_broken);
	free(ks);
}

size_t
keystore_problem_count(const struct keystore *ks)
{
	return ks ? ks->n_problems : 0;
}

const char *
keystore_problem_at(const struct keystore *ks, size_t i)
{
	return ks && i < ks->n_problems ? ks->problems[i] : NULL;
}

/* Whose file was it? "ADDRESS_<16 hex>.pem", "ADDRESS.pem", "@DOMAIN….pem"
 * as import names them: lowercased, or NULL for any other name. */
static char *
owner_of_file_name(const char *name)
{
	size_t len = strlen(name) - 4; /* ".pem" */
	char *a, *at;

	if (is_hex16_suffix(name, len))
		len -= 17;
	if (len < 2 || (a = strndup(name, len)) == NULL)
		return NULL;
	at = strchr(a, '@');
	if (at == NULL || strchr(at + 1, '@') != NULL || at[1] == '\0') {
		free(a);
		return NULL;
	}
	for (char *p = a; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p + ('a' - 'A'));
	return a;
}

static sm_status
strv_push(char ***v, size_t *n, char *s)
{
	char **nv;

	if (s == NULL || (nv = realloc(*v, (*n + 1) * sizeof(**v))) == NULL) {
		free(s);
		return SM_ERR_NOMEM;
	}
	nv[(*n)++] = s;
	*v = nv;
	return SM_OK;
}

/* One file did not load: remember why, and whose it was. */
static sm_status
skip_file(struct keystore *ks, const char *name, const char *why)
{
	char *who = owner_of_file_name(name);

	if (who && strv_push(&ks->broken, &ks->n_broken, who) != SM_OK)
		return SM_ERR_NOMEM;
	return strv_push(&ks->problems, &ks->n_problems, strdup(why));
}

bool
keystore_broken_for(const struct keystore *ks, const char *address)
{
	const char *at = address ? strrchr(address, '@') : NULL;

	for (size_t i = 0; at && ks && i < ks->n_broken; i++) {
		const char *b = ks->broken[i];

		if (b[0] == '@' ? strcasecmp(b + 1, at + 1) == 0 : strcasecmp(b, address) == 0)
			return true;
	}
	return false;
}

size_t
keystore_count(const struct keystore *ks)
{
	return ks ? ks->n : 0;
}

const struct keystore_key *
keystore_key_at(const struct keystore *ks, size_t i)
{
	return ks && i < ks->n ? &ks->keys[i] : NULL;
}

const struct keystore_info *
keystore_info_at(const struct keystore *ks, size_t i)
{
	return ks && i < ks->n ? &ks->info[i] : NULL;
}

void
keystore_decrypt_keys(const struct keystore *ks,
		      const struct keystore_key **keys, size_t *n)
{
	*keys = ks ? ks->keys : NULL;
	*n = ks ? ks->n : 0;
}

/* ---- loading ---- */

/* Never prompt on a terminal for a passphrase: keys_dir keys are
 * unencrypted, and a daemon has no one to ask. */
static int
no_password_cb(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

static bool
is_hex16_suffix(const char *s, size_t len)
{
	size_t i;

	if (len < 17 || s[len - 17] != '_')
		return false;
	for (i = len - 16; i < len; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

/* "@DOMAIN.pem" / "@DOMAIN_<16 hex>.pem" → "domain"; NULL otherwise (or
 * on ENOMEM, which the caller treats alike: not a domain file). */
static char *
domain_of_file_name(const char *name)
{
	size_t len = strlen(name), i;
	char *d;

	if (name[0] != '@' || len < 5 + 1)
		return NULL;
	len -= 4; /* ".pem" */
	if (is_hex16_suffix(name, len))
		len -= 17;
	if (len <= 1)
		return NULL;
	if ((d = strndup(name + 1, len - 1)) == NULL)
		return NULL;
	for (i = 0; d[i]; i++) {
		if (d[i] == '@') {
			free(d);
			return NULL;
		}
		if (d[i] >= 'A' && d[i] <= 'Z')
			d[i] = (char)(d[i] + ('a' - 'A'));
	}
	return d;
}


/* One key file: exactly one private key, the certificate that matches it,
 * and the rest as chain. */
static sm_status
parse_key_file(const char *path, const unsigned char *data, size_t len,
	       struct keystore_key *k, char *err, size_t errlen)
{
	BIO *b = NULL;
	EVP_PKEY *extra = NULL;
	STACK_OF(X509) *certs = NULL;
	X509 *c;
	sm_status st = SM_ERR_PARSE;
	int i;

	memset(k, 0, sizeof(*k));
	if (memmem(data, len, "ENCRYPTED PRIVATE KEY", 21) != NULL ||
	    memmem(data, len, "Proc-Type: 4,ENCRYPTED", 22) != NULL) {
		sm_seterr(err, errlen,
		       "%s: private key is encrypted; keys_dir files hold "
		       "unencrypted keys protected by mode 0600",
		       path);
		goto done;
	}
	if ((b = BIO_new_mem_buf(data, (int)len)) == NULL)
		goto nomem;
	k->pkey = PEM_read_bio_PrivateKey(b, NULL, no_password_cb, NULL);
	if (k->pkey == NULL) {
		sm_seterr(err, errlen, "%s: no private key", path);
		goto done;
	}
	if ((extra = PEM_read_bio_PrivateKey(b, NULL, no_password_cb, NULL)) !=
	    NULL) {
		sm_seterr(err, errlen,
		       "%s: more than one private key (one key per file)",
		       path);
		goto done;
	}
	BIO_free(b);
	if ((b = BIO_new_mem_buf(data, (int)len)) == NULL ||
	    (certs = sk_X509_new_null()) == NULL ||
	    (k->chain = sk_X509_new_null()) == NULL)
		goto nomem;
	while ((c = PEM_read_bio_X509(b, NULL, no_password_cb, NULL)) != NULL)
		if (sk_X509_push(certs, c) <= 0) {
			X509_free(c);
			goto nomem;
		}
	for (i = 0; i < sk_X509_num(certs); i++) {
		c = sk_X509_value(certs, i);
		if (k->cert == NULL && X509_check_private_key(c, k->pkey) == 1)
			k->cert = c;
		else if (sk_X509_push(k->chain, c) <= 0)
			goto nomem;
		X509_up_ref(c);
	}
	if (k->cert == NULL) {
		sm_seterr(err, errlen, "%s: no certificate matches the private key",
		       path);
		goto done;
	}
	st = SM_OK;
	goto done;
nomem:
	sm_seterr(err, errlen, "%s: out of memory", path);
	st = SM_ERR_NOMEM;
done:
	/* Failed PEM reads (end of data included) leave errors queued that
	 * are not anyone's business. */
	ERR_clear_error();
	EVP_PKEY_free(extra);
	sk_X509_pop_free(certs, X509_free);
	BIO_free(b);
	if (st != SM_OK)
		key_clear(k);
	return st;
}

static bool
ku_can_sign(X509 *cert)
{
	return (X509_get_key_usage(cert) &
		(KU_DIGITAL_SIGNATURE | KU_NON_REPUDIATION)) != 0;
}

/* Describe a loaded key. name: the file's base name. */
static sm_status
fill_info(const char *path, const char *name, const struct keystore_key *k,
	  struct keystore_info *in, char *err, size_t errlen)
{
	char *fdom;
	sm_status st;

	memset(in, 0, sizeof(*in));
	if ((in->path = strdup(path)) == NULL) {
		st = SM_ERR_NOMEM;
		goto fail;
	}
	fdom = domain_of_file_name(name);
	if (fdom != NULL) {
		/* A file named after a domain is that domain's key only. */
		if ((in->domains = malloc(sizeof(*in->domains))) == NULL) {
			free(fdom);
			st = SM_ERR_NOMEM;
			goto fail;
		}
		in->domains[0] = fdom;
		in->n_domains = 1;
	} else {
		if ((st = x509u_domains(k->cert, &in->domains,
					&in->n_domains)) != SM_OK &&
		    st != SM_ERR_PARSE)
			goto fail;
		if ((st = x509u_addresses(k->cert, &in->addresses,
					  &in->n_addresses, NULL)) != SM_OK) {
			if (st == SM_ERR_PARSE)
				sm_seterr(err, errlen,
				       "%s: malformed subjectAltName", path);
			goto fail;
		}
	}
	if ((st = x509u_fingerprint(k->cert, in->fingerprint)) != SM_OK ||
	    (st = x509u_name_text(X509_get_subject_name(k->cert),
				  &in->subject)) != SM_OK ||
	    (st = x509u_name_text(X509_get_issuer_name(k->cert),
				  &in->issuer)) != SM_OK ||
	    (st = x509u_not_before(k->cert, &in->not_before)) != SM_OK ||
	    (st = x509u_not_after(k->cert, &in->not_after)) != SM_OK)
		goto fail;
	in->key_type = x509u_key_type(k->cert, &in->key_bits);
	in->can_sign = ku_can_sign(k->cert);
	in->can_encrypt = x509u_ku_allows_encryption(k->cert);
	return SM_OK;
fail:
	if (err && errlen && err[0] == '\0')
		sm_seterr(err, errlen, "%s: %s", path, sm_strstatus(st));
	info_clear(in);
	return st;
}

static int
name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The "*.pem" names of dir, sorted, hidden files skipped. */
static sm_status
list_pem_files(const char *dir, char ***out, size_t *n, char *err,
	       size_t errlen)
{
	DIR *d;
	struct dirent *de;
	char **v = NULL, **nv;
	size_t cnt = 0, len;
	sm_status st = SM_OK;

	*out = NULL;
	*n = 0;
	if ((d = opendir(dir)) == NULL) {
		sm_seterr(err, errlen, "%s: %s", dir, strerror(errno));
		return SM_ERR_IO;
	}
	while ((de = readdir(d)) != NULL) {
		len = strlen(de->d_name);
		if (de->d_name[0] == '.' || len < 5 ||
		    strcmp(de->d_name + len - 4, ".pem") != 0)
			continue;
		if ((nv = realloc(v, (cnt + 1) * sizeof(*v))) == NULL ||
		    (nv[cnt] = strdup(de->d_name)) == NULL) {
			if (nv)
				v = nv;
			st = SM_ERR_NOMEM;
			sm_seterr(err, errlen, "%s: out of memory", dir);
			break;
		}
		v = nv;
		cnt++;
	}
	closedir(d);
	if (st != SM_OK) {
		x509u_strv_free(v, cnt);
		return st;
	}
	if (cnt > 1)
		qsort(v, cnt, sizeof(*v), name_cmp);
	*out = v;
	*n = cnt;
	return SM_OK;
}

sm_status
keystore_load(const char *dir, struct keystore **out, char *err,
	      size_t errlen)
{
	return keystore_load_for(dir, geteuid(), out, err, errlen);
}

/* One file into ks->keys[ks->n]; SM_ERR_NOMEM only is fatal. */
static sm_status
load_one(struct keystore *ks, const char *dir, const char *name, uid_t owner)
{
	unsigned char *data = NULL;
	char *path = NULL, why[1024] = "";
	size_t len = 0;
	sm_status st;

	if (asprintf(&path, "%s/%s", dir, name) < 0)
		return SM_ERR_NOMEM;
	if ((st = keyfile_read_owned(path, owner, &data, &len, why, sizeof(why))) == SM_OK &&
	    (st = parse_key_file(path, data, len, &ks->keys[ks->n], why, sizeof(why))) == SM_OK) {
		if ((st = fill_info(path, name, &ks->keys[ks->n], &ks->info[ks->n], why,
		    sizeof(why))) != SM_OK)
			key_clear(&ks->keys[ks->n]);
		else
			ks->n++;
	}
	if (data) {
		/* The key material is in OpenSSL's hands now (or refused); do
		 * not leave a plaintext copy in freed heap memory. */
		OPENSSL_cleanse(data, len);
		free(data);
	}
	free(path);
	if (st == SM_OK || st == SM_ERR_NOMEM)
		return st;
	return skip_file(ks, name, why[0] ? why : sm_strstatus(st));
}

sm_status
keystore_load_for(const char *dir, uid_t owner, struct keystore **out, char *err,
    size_t errlen)
{
	struct keystore *ks = NULL;
	char **names = NULL;
	size_t nnames = 0, i;
	sm_status st;

	*out = NULL;
	if (err && errlen)
		err[0] = '\0';
	if (dir == NULL)
		return SM_ERR_ARG;
	if ((st = keyfile_check_dir(dir, owner, err, errlen)) != SM_OK)
		return st;
	if ((st = list_pem_files(dir, &names, &nnames, err, errlen)) != SM_OK)
		return st;
	if ((ks = calloc(1, sizeof(*ks))) == NULL ||
	    (ks->keys = calloc(nnames ? nnames : 1, sizeof(*ks->keys))) ==
		NULL ||
	    (ks->info = calloc(nnames ? nnames : 1, sizeof(*ks->info))) ==
		NULL) {
		sm_seterr(err, errlen, "out of memory");
		st = SM_ERR_NOMEM;
		goto done;
	}
	for (i = 0; i < nnames; i++) {
		if ((st = load_one(ks, dir, names[i], owner)) != SM_OK) {
			sm_seterr(err, errlen, "%s: out of memory", dir);
			goto done;
		}
	}
	*out = ks;
	ks = NULL;
	st = SM_OK;
done:
	x509u_strv_free(names, nnames);
	keystore_free(ks);
	return st;
}

/* ---- choosing ---- */

/* Is a newer than b: notBefore, then notAfter. */
static bool
info_newer(const struct keystore_info *a, const struct keystore_info *b)
{
	if (a->not_before != b->not_before)
		return a->not_before > b->not_before;
	return a->not_after > b->not_after;
}

static bool
info_has_address(const struct keystore_info *in, const char *addr)
{
	size_t i;

	for (i = 0; i < in->n_addresses; i++)
		if (x509u_addr_equal(in->addresses[i], addr))
			return true;
	return false;
}

static bool
info_has_domain(const struct keystore_info *in, const char *domain)
{
	size_t i;

	for (i = 0; i < in->n_domains; i++)
		if (strcmp(in->domains[i], domain) == 0)
			return true;
	return false;
}

/* The best key among those matching (address, or domain when address is
 * NULL): valid now and able to sign, newest first. With any_validity, the
 * newest matching key when none is valid. -1 when none. */
static long
pick(const struct keystore *ks, const char *address, const char *domain,
     time_t now, bool any_validity)
{
	long best = -1, newest = -1;
	size_t i;

	for (i = 0; i < ks->n; i++) {
		const struct keystore_info *in = &ks->info[i];

		if (address ? !info_has_address(in, address)
			    : !info_has_domain(in, domain))
			continue;
		if (newest < 0 || info_newer(in, &ks->info[newest]))
			newest = (long)i;
		if (!in->can_sign ||
		    x509u_validity(ks->keys[i].cert, now) != X509U_VALID)
			continue;
		if (best < 0 || info_newer(in, &ks->info[best]))
			best = (long)i;
	}
	return best >= 0 || !any_validity ? best : newest;
}

bool
keystore_info_covers(const struct keystore_info *in, const char *who)
{
	if (who == NULL)
		return false;
	return who[0] == '@' ? info_has_domain(in, who + 1) : info_has_address(in, who);
}

long
keystore_pick(const struct keystore *ks, const char *who, time_t now, long *newest)
{
	long i, n = -1;

	if (newest)
		*newest = -1;
	if (ks == NULL || who == NULL)
		return -1;
	i = who[0] == '@' ? pick(ks, NULL, who + 1, now, false) : pick(ks, who, NULL, now, false);
	if (newest) {
		n = who[0] == '@' ? pick(ks, NULL, who + 1, now, true) : pick(ks, who, NULL, now, true);
		*newest = n;
	}
	return i;
}

sm_status
keystore_signer(const struct keystore *ks, const char *address, time_t now,
		const struct keystore_key **out, bool *domain_key)
{
	char *norm = NULL;
	const char *at;
	sm_status st;
	long i;

	*out = NULL;
	if (domain_key)
		*domain_key = false;
	if (ks == NULL || address == NULL)
		return SM_ERR_ARG;
	if ((st = x509u_addr_normalise(address, &norm)) != SM_OK)
		return st;
	/* No usable key of the user's own: sign as the domain rather than
	 * hold mail back (on_error=tempfail would queue it for as long as
	 * the key stays expired). */
	if ((i = pick(ks, norm, NULL, now, false)) < 0) {
		at = strrchr(norm, '@');
		if ((i = pick(ks, NULL, at + 1, now, false)) >= 0 && domain_key)
			*domain_key = true;
	}
	free(norm);
	if (i < 0)
		return SM_ERR_NOKEY;
	*out = &ks->keys[i];
	return SM_OK;
}

/* ---- PKCS#12 ---- */

/* A file-name-safe rendering of an address: characters outside
 * [A-Za-z0-9@._+=-] become '-', never a leading '.'. */
static void
safe_name(const char *addr, char *out, size_t outlen)
{
	size_t i;

	for (i = 0; addr[i] && i + 1 < outlen && i < KS_MAX_NAME_ADDR; i++) {
		unsigned char c = (unsigned char)addr[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			  (c >= '0' && c <= '9') || strchr("@._+=-", c) != NULL;

		out[i] = ok && !(i == 0 && c == '.') ? (char)c : '-';
	}
	out[i] = '\0';
}

/* Write key, cert and chain as dir/name with mode 0600, atomically. */
static sm_status
write_key_file(const char *dir, const char *name, EVP_PKEY *pkey, X509 *cert,
	       STACK_OF(X509) *chain, char *path_out, size_t pathlen,
	       char *err, size_t errlen)
{
	char *tmp = NULL, *final = NULL;
	BIO *b = NULL;
	sm_status st = SM_ERR_IO;
	int fd = -1, dfd, i, ok;

	if (asprintf(&tmp, "%s/.import-XXXXXX", dir) < 0 ||
	    asprintf(&final, "%s/%s", dir, name) < 0) {
		tmp = final = NULL;
		sm_seterr(err, errlen, "out of memory");
		st = SM_ERR_NOMEM;
		goto done;
	}
	if ((fd = mkostemp(tmp, O_CLOEXEC)) < 0) {
		sm_seterr(err, errlen, "%s: cannot create a key file: %s", dir,
		       strerror(errno));
		free(tmp);
		tmp = NULL;
		goto done;
	}
	if (fchmod(fd, 0600) != 0) {
		sm_seterr(err, errlen, "%s: %s", tmp, strerror(errno));
		goto done;
	}
	if ((b = BIO_new_fd(fd, BIO_NOCLOSE)) == NULL) {
		sm_seterr(err, errlen, "out of memory");
		st = SM_ERR_NOMEM;
		goto done;
	}
	/* PKCS#8, unencrypted: the file mode is the protection, as for
	 * every key the daemon loads. */
	ok = PEM_write_bio_PrivateKey(b, pkey, NULL, NULL, 0, NULL, NULL) &&
	     PEM_write_bio_X509(b, cert);
	for (i = 0; ok && chain && i < sk_X509_num(chain); i++)
		ok = PEM_write_bio_X509(b, sk_X509_value(chain, i));
	if (!ok || BIO_flush(b) != 1) {
		sm_seterr(err, errlen, "%s: cannot write the key file", tmp);
		goto done;
	}
	if (fsync(fd) != 0 || close(fd) != 0) {
		fd = -1;
		sm_seterr(err, errlen, "%s: %s", tmp, strerror(errno));
		goto done;
	}
	fd = -1;
	if (rename(tmp, final) != 0) {
		sm_seterr(err, errlen, "%s: %s", final, strerror(errno));
		goto done;
	}
	free(tmp);
	tmp = NULL;
	/* Make the rename itself durable. */
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		(void)fsync(dfd);
		close(dfd);
	}
	if (path_out && pathlen)
		snprintf(path_out, pathlen, "%s", final);
	st = SM_OK;
done:
	BIO_free(b);
	if (fd >= 0)
		close(fd);
	if (tmp) {
		unlink(tmp);
		free(tmp);
	}
	free(final);
	return st;
}

/* Which password decrypts p12? PKCS#12 encodes "no password" either as an
 * empty string or as none at all, and exporters differ. */
static bool
p12_password(PKCS12 *p12, const char *pass, const char **use)
{
	if (!PKCS12_mac_present(p12)) {
		*use = pass;
		return true;
	}
	if (PKCS12_verify_mac(p12, pass, -1) == 1) {
		*use = pass;
		return true;
	}
	if (pass[0] == '\0' && PKCS12_verify_mac(p12, NULL, 0) == 1) {
		*use = NULL;
		return true;
	}
	return false;
}

sm_status
keystore_import_p12(const char *dir, const unsigned char *p12der, size_t len,
		    const char *password, char *path_out, size_t pathlen,
		    char *err, size_t errlen)
{
	const unsigned char *p = p12der;
	const char *pass = password ? password : "", *use = NULL;
	PKCS12 *p12 = NULL;
	EVP_PKEY *pkey = NULL;
	X509 *cert = NULL;
	STACK_OF(X509) *ca = NULL;
	OSSL_PROVIDER *legacy = NULL;
	char **addrs = NULL, **doms = NULL, fp[X509U_FP_SIZE];
	char label[KS_MAX_NAME_ADDR + 2], safe[KS_MAX_NAME_ADDR + 2];
	char name[KS_MAX_NAME_ADDR + 32];
	size_t na = 0, nd = 0;
	sm_status st = SM_ERR_PARSE;

	if (path_out && pathlen)
		path_out[0] = '\0';
	if (err && errlen)
		err[0] = '\0';
	if (dir == NULL || p12der == NULL || len == 0 || len > KS_MAX_FILE) {
		sm_seterr(err, errlen, "PKCS#12: no input");
		return SM_ERR_ARG;
	}
	if ((p12 = d2i_PKCS12(NULL, &p, (long)len)) == NULL) {
		sm_seterr(err, errlen, "PKCS#12: not a PKCS#12 file");
		goto done;
	}
	if (!p12_password(p12, pass, &use)) {
		sm_seterr(err, errlen, "PKCS#12: wrong password");
		st = SM_ERR_VERIFY;
		goto done;
	}
	if (!PKCS12_parse(p12, use, &pkey, &cert, &ca)) {
		/* Old exports (Windows, macOS) encrypt certificates with
		 * RC2-40, which OpenSSL 3 keeps in the legacy provider. Load
		 * it for this one parse only. */
		ERR_clear_error();
		legacy = OSSL_PROVIDER_try_load(NULL, "legacy", 1);
		if (legacy == NULL ||
		    !PKCS12_parse(p12, use, &pkey, &cert, &ca)) {
			sm_seterr(err, errlen,
			       "PKCS#12: cannot decrypt (unsupported algorithm "
			       "or damaged file)");
			goto done;
		}
	}
	if (pkey == NULL || cert == NULL) {
		sm_seterr(err, errlen,
		       "PKCS#12: no private key with its certificate");
		goto done;
	}
	if (X509_check_private_key(cert, pkey) != 1) {
		sm_seterr(err, errlen,
		       "PKCS#12: the certificate does not match the key");
		goto done;
	}
	if ((st = x509u_addresses(cert, &addrs, &na, NULL)) != SM_OK ||
	    (st = x509u_domains(cert, &doms, &nd)) != SM_OK) {
		sm_seterr(err, errlen, "PKCS#12: malformed certificate names");
		goto done;
	}
	if (na > 0) {
		char *norm = NULL;

		if ((st = x509u_addr_normalise(addrs[0], &norm)) != SM_OK)
			goto done;
		snprintf(label, sizeof(label), "%s", norm);
		free(norm);
	} else if (nd > 0) {
		snprintf(label, sizeof(label), "@%s", doms[0]);
	} else {
		sm_seterr(err, errlen,
		       "PKCS#12: the certificate carries no e-mail address");
		st = SM_ERR_PARSE;
		goto done;
	}
	if ((st = x509u_fingerprint(cert, fp)) != SM_OK)
		goto done;
	safe_name(label, safe, sizeof(safe));
	snprintf(name, sizeof(name), "%s_%.16s.pem", safe, fp);
	st = write_key_file(dir, name, pkey, cert, ca, path_out, pathlen, err,
			    errlen);
done:
	ERR_clear_error();
	x509u_strv_free(addrs, na);
	x509u_strv_free(doms, nd);
	EVP_PKEY_free(pkey);
	X509_free(cert);
	sk_X509_pop_free(ca, X509_free);
	PKCS12_free(p12);
	if (legacy)
		OSSL_PROVIDER_unload(legacy);
	return st;
}

sm_status
keystore_export_p12(const struct keystore *ks, const char *address,
		    time_t now, const char *password,
		    enum keystore_p12_alg alg, unsigned char **out,
		    size_t *len, char *err, size_t errlen)
{
	const char *pass = password ? password : "";
	char *norm = NULL, *domain = NULL;
	const struct keystore_key *k;
	PKCS12 *p12 = NULL;
	unsigned char *der = NULL;
	int nid = 0, mac_iter = PKCS12_DEFAULT_ITER, n;
	sm_status st = SM_ERR_NOKEY;
	long i;

	*out = NULL;
	*len = 0;
	if (err && errlen)
		err[0] = '\0';
	if (ks == NULL || address == NULL)
		return SM_ERR_ARG;
	if (address[0] == '@') {
		if ((domain = x509u_addr_lower(address + 1)) == NULL)
			return SM_ERR_NOMEM;
		i = pick(ks, NULL, domain, now, true);
	} else {
		if ((st = x509u_addr_normalise(address, &norm)) != SM_OK) {
			sm_seterr(err, errlen, "%s: not an address", address);
			return st;
		}
		i = pick(ks, norm, NULL, now, true);
	}
	if (i < 0) {
		sm_seterr(err, errlen, "no key for %s", address);
		st = SM_ERR_NOKEY;
		goto done;
	}
	k = &ks->keys[i];
	if (alg == KEYSTORE_P12_LEGACY) {
		/* 3DES everywhere (RC2 would need the legacy provider, and
		 * gpgsm reads 3DES), and a SHA-1 MAC set below. */
		nid = NID_pbe_WithSHA1And3_Key_TripleDES_CBC;
		mac_iter = -1;
	}
	p12 = PKCS12_create(pass, address, k->pkey, k->cert, k->chain, nid,
			    nid, PKCS12_DEFAULT_ITER, mac_iter, 0);
	if (p12 == NULL ||
	    (alg == KEYSTORE_P12_LEGACY &&
	     !PKCS12_set_mac(p12, pass, -1, NULL, 0, PKCS12_DEFAULT_ITER,
			     EVP_sha1()))) {
		sm_seterr(err, errlen, "PKCS#12: cannot create");
		st = SM_ERR_CRYPTO;
		goto done;
	}
	if ((n = i2d_PKCS12(p12, &der)) <= 0) {
		sm_seterr(err, errlen, "PKCS#12: cannot encode");
		st = SM_ERR_CRYPTO;
		goto done;
	}
	if ((*out = malloc((size_t)n)) == NULL) {
		sm_seterr(err, errlen, "out of memory");
		st = SM_ERR_NOMEM;
		goto done;
	}
	memcpy(*out, der, (size_t)n);
	*len = (size_t)n;
	st = SM_OK;
done:
	ERR_clear_error();
	OPENSSL_free(der);
	PKCS12_free(p12);
	free(norm);
	free(domain);
	return st;
}
