/*
 * smimectl_util.c — what every smimectl command shares: loading the
 * environment, reading files and passwords, file ownership, tables and
 * JSON.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/x509v3.h>

#include "keycache.h"
#include "keystore.h"
#include "path.h"
#include "preflight.h"
#include "revstore.h"
#include "smimectl.h"
#include "trust.h"
#include "x509util.h"

/* ------------------------------------------------------------------ */
/* Environment                                                          */
/* ------------------------------------------------------------------ */

static void
env_sync(struct ctl *c)
{
	c->env.cfg = c->cfg;
	c->env.trust = c->trust;
	c->env.ks = c->ks;
	c->env.kc = c->kc;
	c->env.rs = c->rs;
}

int
ctl_load_config(struct ctl *c)
{
	struct config_errors errs = { NULL, 0 };
	sm_status st;

	if (c->cfg)
		return CTL_OK;
	/* The same lines as smime-milter -n prints. */
	st = config_load(c->conf_file, &c->cfg, &errs);
	for (size_t i = 0; i < errs.n; i++)
		fprintf(stderr, "%s\n", errs.msg[i]);
	if (st != SM_OK && errs.n == 0)
		fprintf(stderr, "%s: %s\n", c->conf_file, sm_strstatus(st));
	config_errors_free(&errs);
	env_sync(c);
	return c->cfg ? CTL_OK : CTL_ERR;
}

int
ctl_load_trust(struct ctl *c)
{
	char why[512] = "";

	if (c->trust)
		return CTL_OK;
	if (ctl_load_config(c) != CTL_OK)
		return CTL_ERR;
	if (trust_load(c->cfg->trust_ca_file, NULL, &c->trust, why, sizeof(why)) != SM_OK) {
		ctl_err("trust anchors %s: %s", c->cfg->trust_ca_file, why);
		return CTL_ERR;
	}
	env_sync(c);
	return CTL_OK;
}

uid_t
ctl_daemon_uid(const struct ctl *c)
{
	return preflight_daemon_uid(c->cfg);
}

int
ctl_load_keys(struct ctl *c, char *err, size_t errlen)
{
	char why[512] = "";

	if (c->ks)
		return CTL_OK;
	if (ctl_load_config(c) != CTL_OK)
		return CTL_ERR;
	if (keystore_load_for(c->cfg->keys_dir, ctl_daemon_uid(c), &c->ks, why,
	    sizeof(why)) != SM_OK) {
		if (err)
			snprintf(err, errlen, "keys_dir %s: %s", c->cfg->keys_dir, why);
		else
			ctl_err("keys_dir %s: %s", c->cfg->keys_dir, why);
		return CTL_ERR;
	}
	for (size_t i = 0; i < keystore_problem_count(c->ks); i++)
		ctl_err("warning: keys: %s; skipped", keystore_problem_at(c->ks, i));
	env_sync(c);
	return CTL_OK;
}

void
ctl_own_like_dir(int fd, const char *path, const char *dir)
{
	struct stat ds, fs;

	if (geteuid() != 0)
		return;
	if (stat(dir, &ds) != 0 || fstat(fd, &fs) != 0) {
		ctl_err("warning: %s: cannot check its owner: %s", path, strerror(errno));
		return;
	}
	if (fs.st_uid == ds.st_uid && fs.st_gid == ds.st_gid)
		return;
	if (fchown(fd, ds.st_uid, ds.st_gid) != 0)
		ctl_err("warning: %s: cannot give it the owner of %s: %s", path, dir,
		    strerror(errno));
}

/* Create an empty cache file owned like its directory, so that SQLite,
 * which chowns its -wal and -shm files to the database's owner when run
 * as root, leaves nothing the daemon cannot write. */
static void
precreate_cache(const char *path)
{
	char dir[4096];
	int fd;

	if (geteuid() != 0)
		return;
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0640);
	if (fd < 0)
		return; /* let SQLite report what is wrong */
	ctl_own_like_dir(fd, path, path_dirname(path, dir, sizeof(dir)));
	close(fd);
}

int
ctl_open_cache(struct ctl *c, bool create)
{
	char why[512] = "";
	struct stat sb;

	if (c->kc)
		return CTL_OK;
	if (ctl_load_config(c) != CTL_OK)
		return CTL_ERR;
	if (c->cfg->cache_backend == CFG_BACKEND_SQLITE && stat(c->cfg->cache_path, &sb) != 0) {
		if (errno != ENOENT) {
			ctl_err("key cache %s: %s", c->cfg->cache_path, strerror(errno));
			return CTL_ERR;
		}
		if (!create)
			return CTL_OK; /* nothing cached yet */
		precreate_cache(c->cfg->cache_path);
	}
	if (keycache_open(config_cache_backend(c->cfg), config_cache_target(c->cfg), &c->kc, why,
		sizeof(why)) != SM_OK) {
		ctl_err("%s", why[0] ? why : "cannot open the key cache");
		return CTL_ERR;
	}
	env_sync(c);
	return CTL_OK;
}

void
ctl_free(struct ctl *c)
{
	keycache_close(c->kc);
	revstore_close(c->rs);
	keystore_free(c->ks);
	trust_free(c->trust);
	config_unref(c->cfg);
	memset(c, 0, sizeof(*c));
}

/* ------------------------------------------------------------------ */
/* Files and passwords                                                  */
/* ------------------------------------------------------------------ */

static int
read_fd(int fd, struct buf *out, const char *path, char *err, size_t errlen)
{
	unsigned char chunk[65536];
	ssize_t r;

	for (;;) {
		r = read(fd, chunk, sizeof(chunk));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			return CTL_ERR;
		}
		if (r == 0)
			return CTL_OK;
		if (out->len + (size_t)r > CTL_MAX_FILE) {
			snprintf(err, errlen, "%s: larger than %u MiB", path,
			    CTL_MAX_FILE / (1024 * 1024));
			return CTL_ERR;
		}
		if (buf_append(out, chunk, (size_t)r) != SM_OK) {
			snprintf(err, errlen, "%s: out of memory", path);
			return CTL_ERR;
		}
	}
}

int
ctl_read_file(const char *path, struct buf *out, char *err, size_t errlen)
{
	struct stat sb;
	int fd, rc;

	if (strcmp(path, "-") == 0)
		return read_fd(0, out, "standard input", err, errlen);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return CTL_ERR;
	}
	if (fstat(fd, &sb) == 0 && S_ISDIR(sb.st_mode)) {
		snprintf(err, errlen, "%s: is a directory", path);
		close(fd);
		return CTL_ERR;
	}
	rc = read_fd(fd, out, path, err, errlen);
	close(fd);
	return rc;
}

void
ctl_password_free(char *pw)
{
	if (pw == NULL)
		return;
	OPENSSL_cleanse(pw, strlen(pw));
	free(pw);
}

/* The first line of data, without its line ending, as a new string. */
static char *
first_line(const unsigned char *p, size_t n)
{
	size_t len = 0;
	char *s;

	while (len < n && p[len] != '\n')
		len++;
	if (len > 0 && p[len - 1] == '\r')
		len--;
	if ((s = malloc(len + 1)) == NULL)
		return NULL;
	memcpy(s, p, len);
	s[len] = '\0';
	return s;
}

/* Ask on the terminal with echo off. */
static char *
ask_tty(FILE *tty, const char *prompt)
{
	struct termios old, quiet;
	char line[1024];
	bool restore = false;
	char *pw = NULL;

	fputs(prompt, tty);
	fflush(tty);
	if (tcgetattr(fileno(tty), &old) == 0) {
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
		quiet.c_lflag |= ICANON;
		restore = tcsetattr(fileno(tty), TCSAFLUSH, &quiet) == 0;
	}
	if (fgets(line, sizeof(line), tty) != NULL)
		pw = first_line((const unsigned char *)line, strlen(line));
	if (restore)
		tcsetattr(fileno(tty), TCSAFLUSH, &old);
	fputc('\n', tty);
	OPENSSL_cleanse(line, sizeof(line));
	return pw;
}

int
ctl_password(const char *file, bool confirm, char **out)
{
	struct buf b = BUF_INIT;
	char err[512];
	FILE *tty;
	char *again;

	*out = NULL;
	if (file) {
		if (ctl_read_file(file, &b, err, sizeof(err)) != CTL_OK) {
			ctl_err("password file %s", err);
			OPENSSL_cleanse(b.data, b.cap);
			buf_free(&b);
			return CTL_ERR;
		}
		*out = first_line(b.data ? b.data : (const unsigned char *)"", b.len);
		if (b.data)
			OPENSSL_cleanse(b.data, b.cap);
		buf_free(&b);
		if (*out == NULL) {
			ctl_err("out of memory");
			return CTL_ERR;
		}
		return CTL_OK;
	}
	if ((tty = fopen("/dev/tty", "r+")) == NULL) {
		ctl_err("no terminal to ask for the PKCS#12 password: use --password-file F");
		return CTL_ERR;
	}
	*out = ask_tty(tty, "PKCS#12 password: ");
	if (*out && confirm) {
		again = ask_tty(tty, "Again: ");
		if (again == NULL || strcmp(again, *out) != 0) {
			ctl_password_free(*out);
			*out = NULL;
			ctl_password_free(again);
			fclose(tty);
			ctl_err("the passwords differ");
			return CTL_ERR;
		}
		ctl_password_free(again);
	}
	fclose(tty);
	if (*out == NULL) {
		ctl_err("no password read from the terminal");
		return CTL_ERR;
	}
	return CTL_OK;
}

/* ------------------------------------------------------------------ */
/* Text                                                                 */
/* ------------------------------------------------------------------ */

const char *
ctl_iso(time_t t, char buf[32])
{
	struct tm tm;

	buf[0] = '\0';
	if (t != 0 && gmtime_r(&t, &tm) != NULL)
		strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return buf;
}

static const struct {
	caps_t bit;
	const char *name;
} cap_names[] = {
	{ CAP_AES256_GCM, "aes-256-gcm" },
	{ CAP_AES192_GCM, "aes-192-gcm" },
	{ CAP_AES128_GCM, "aes-128-gcm" },
	{ CAP_AES256_CBC, "aes-256-cbc" },
	{ CAP_AES192_CBC, "aes-192-cbc" },
	{ CAP_AES128_CBC, "aes-128-cbc" },
	{ CAP_DES3, "des-ede3-cbc" },
	{ CAP_RC2, "rc2-cbc" },
	{ CAP_RSA_OAEP, "rsaes-oaep" },
};

const char *
ctl_caps_text(caps_t caps, char *buf, size_t len)
{
	size_t used = 0;

	if (len)
		buf[0] = '\0';
	if (!(caps & CAP_KNOWN)) {
		snprintf(buf, len, "none seen");
		return buf;
	}
	for (size_t i = 0; i < sizeof(cap_names) / sizeof(cap_names[0]); i++) {
		if (!(caps & cap_names[i].bit))
			continue;
		int n = snprintf(buf + used, len - used, "%s%s", used ? " " : "",
		    cap_names[i].name);
		if (n < 0 || (size_t)n >= len - used)
			break;
		used += (size_t)n;
	}
	if (used == 0)
		snprintf(buf, len, "none of ours");
	return buf;
}

char *
ctl_cert_addresses(X509 *cert)
{
	struct buf b = BUF_INIT;
	char **v = NULL;
	size_t n = 0;

	if (x509u_addresses(cert, &v, &n, NULL) == SM_OK)
		for (size_t i = 0; i < n; i++)
			buf_printf(&b, "%s%s", i ? ", " : "", v[i]);
	x509u_strv_free(v, n);
	if (b.len == 0)
		buf_append_str(&b, "(none)");
	return buf_steal(&b);
}

/* ------------------------------------------------------------------ */
/* Tables                                                               */
/* ------------------------------------------------------------------ */

static void
table_add(struct table *t, const char *const *cells)
{
	char **nc;

	if (t->oom)
		return;
	if (t->nrows == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;
		if ((nc = realloc(t->cells, cap * t->ncols * sizeof(*nc))) == NULL) {
			t->oom = true;
			return;
		}
		t->cells = nc;
		t->cap = cap;
	}
	for (size_t i = 0; i < t->ncols; i++) {
		char *s = strdup(cells[i] && cells[i][0] ? cells[i] : "-");
		if (s == NULL)
			t->oom = true;
		/* No line breaks or tabs inside a cell: one row, one line. */
		for (char *p = s; p && *p; p++)
			if ((unsigned char)*p < ' ' || *p == 0x7f)
				*p = ' ';
		t->cells[t->nrows * t->ncols + i] = s;
	}
	t->nrows++;
}

void
table_init(struct table *t, size_t ncols, const char *const *headers)
{
	memset(t, 0, sizeof(*t));
	t->ncols = ncols;
	table_add(t, headers);
}

void
table_row(struct table *t, const char *const *cells)
{
	table_add(t, cells);
}

int
table_print(struct table *t, FILE *f)
{
	size_t w[16] = { 0 };

	if (t->oom || t->ncols > 16) {
		ctl_err("out of memory");
		return CTL_ERR;
	}
	for (size_t r = 0; r < t->nrows; r++)
		for (size_t i = 0; i < t->ncols; i++) {
			const char *s = t->cells[r * t->ncols + i];
			size_t l = s ? strlen(s) : 0;
			if (l > w[i])
				w[i] = l;
		}
	for (size_t r = 0; r < t->nrows; r++) {
		for (size_t i = 0; i < t->ncols; i++) {
			const char *s = t->cells[r * t->ncols + i];
			if (i + 1 < t->ncols)
				fprintf(f, "%-*s  ", (int)w[i], s ? s : "");
			else
				fprintf(f, "%s\n", s ? s : "");
		}
	}
	return CTL_OK;
}

void
table_free(struct table *t)
{
	for (size_t i = 0; t->cells && i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	memset(t, 0, sizeof(*t));
}

/* ------------------------------------------------------------------ */
/* JSON                                                                 */
/* ------------------------------------------------------------------ */

void
json_init(struct json *j, FILE *f)
{
	memset(j, 0, sizeof(*j));
	j->f = f;
}

/* Separator and indentation before a value or a key. */
static void
json_pre(struct json *j)
{
	if (j->after_key) {
		j->after_key = false;
		return;
	}
	if (j->depth == 0)
		return;
	if (j->comma[j->depth])
		fputc(',', j->f);
	fputc('\n', j->f);
	for (int i = 0; i < j->depth; i++)
		fputs("  ", j->f);
	j->comma[j->depth] = true;
}

void
json_begin(struct json *j, char open)
{
	json_pre(j);
	fputc(open, j->f);
	if (j->depth + 1 < (int)(sizeof(j->comma) / sizeof(j->comma[0])))
		j->depth++;
	j->comma[j->depth] = false;
}

void
json_end(struct json *j, char close)
{
	bool had = j->comma[j->depth];

	if (j->depth > 0)
		j->depth--;
	if (had) {
		fputc('\n', j->f);
		for (int i = 0; i < j->depth; i++)
			fputs("  ", j->f);
	}
	fputc(close, j->f);
}

/* Length of a valid UTF-8 sequence at p (n bytes left), 0 when invalid. */
static size_t
utf8_len(const unsigned char *p, size_t n)
{
	size_t len;
	uint32_t cp;

	if (p[0] < 0x80)
		return 1;
	if ((p[0] & 0xe0) == 0xc0) {
		len = 2;
		cp = p[0] & 0x1f;
	} else if ((p[0] & 0xf0) == 0xe0) {
		len = 3;
		cp = p[0] & 0x0f;
	} else if ((p[0] & 0xf8) == 0xf0) {
		len = 4;
		cp = p[0] & 0x07;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

static void
json_quoted(FILE *f, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s);

	fputc('"', f);
	while (n > 0) {
		size_t l;

		if (*p == '"' || *p == '\\') {
			fputc('\\', f);
			fputc(*p, f);
			l = 1;
		} else if (*p < 0x20 || *p == 0x7f) {
			fprintf(f, "\\u%04x", *p);
			l = 1;
		} else if ((l = utf8_len(p, n)) == 0) {
			fputs("\\ufffd", f);
			l = 1;
		} else {
			fwrite(p, 1, l, f);
		}
		p += l;
		n -= l;
	}
	fputc('"', f);
}

void
json_key(struct json *j, const char *name)
{
	json_pre(j);
	json_quoted(j->f, name);
	fputs(": ", j->f);
	j->after_key = true;
}

void
json_str(struct json *j, const char *s)
{
	json_pre(j);
	if (s == NULL)
		fputs("null", j->f);
	else
		json_quoted(j->f, s);
}

void
json_int(struct json *j, long long v)
{
	json_pre(j);
	fprintf(j->f, "%lld", v);
}

void
json_num(struct json *j, double v)
{
	json_pre(j);
	if (v != v || v > 1e308 || v < -1e308)
		fputs("null", j->f); /* NaN and infinities are not JSON */
	else if (v == (double)(long long)v && v < 9e15 && v > -9e15)
		fprintf(j->f, "%lld", (long long)v);
	else
		fprintf(j->f, "%.17g", v);
}

void
json_bool(struct json *j, bool v)
{
	json_pre(j);
	fputs(v ? "true" : "false", j->f);
}

void
json_null(struct json *j)
{
	json_pre(j);
	fputs("null", j->f);
}

void
json_time(struct json *j, time_t t)
{
	char b[32];

	if (t == 0)
		json_null(j);
	else
		json_str(j, ctl_iso(t, b));
}

void
json_caps(struct json *j, caps_t caps)
{
	if (!(caps & CAP_KNOWN)) {
		json_null(j);
		return;
	}
	json_begin(j, '[');
	for (size_t i = 0; i < sizeof(cap_names) / sizeof(cap_names[0]); i++)
		if (caps & cap_names[i].bit)
			json_str(j, cap_names[i].name);
	json_end(j, ']');
}

void
json_strv(struct json *j, char *const *v, size_t n)
{
	json_begin(j, '[');
	for (size_t i = 0; i < n; i++)
		json_str(j, v[i]);
	json_end(j, ']');
}

int
json_finish(struct json *j)
{
	fputc('\n', j->f);
	return ferror(j->f) ? CTL_ERR : CTL_OK;
}

/* ------------------------------------------------------------------ */
/* Certificates                                                         */
/* ------------------------------------------------------------------ */

struct cert_text {
	char *subject, *issuer, *serial;
	char **addrs;
	size_t naddrs;
	time_t nb, na;
	enum x509u_key_type kt;
	int bits;
	char fp[X509U_FP_SIZE];
};

static void
cert_text_get(X509 *cert, struct cert_text *t)
{
	memset(t, 0, sizeof(*t));
	x509u_name_text(X509_get_subject_name(cert), &t->subject);
	x509u_name_text(X509_get_issuer_name(cert), &t->issuer);
	x509u_serial_hex(cert, &t->serial);
	if (x509u_addresses(cert, &t->addrs, &t->naddrs, NULL) != SM_OK) {
		t->addrs = NULL;
		t->naddrs = 0;
	}
	x509u_not_before(cert, &t->nb);
	x509u_not_after(cert, &t->na);
	t->kt = x509u_key_type(cert, &t->bits);
	if (x509u_fingerprint(cert, t->fp) != SM_OK)
		t->fp[0] = '\0';
}

static void
cert_text_free(struct cert_text *t)
{
	free(t->subject);
	free(t->issuer);
	free(t->serial);
	x509u_strv_free(t->addrs, t->naddrs);
}

void
ctl_json_cert(struct json *j, X509 *cert)
{
	struct cert_text t;

	if (cert == NULL) {
		json_null(j);
		return;
	}
	cert_text_get(cert, &t);
	json_begin(j, '{');
	json_key(j, "subject");
	json_str(j, t.subject);
	json_key(j, "issuer");
	json_str(j, t.issuer);
	json_key(j, "addresses");
	json_strv(j, t.addrs, t.naddrs);
	json_key(j, "serial");
	json_str(j, t.serial);
	json_key(j, "not_before");
	json_time(j, t.nb);
	json_key(j, "not_after");
	json_time(j, t.na);
	json_key(j, "key_type");
	json_str(j, x509u_key_type_name(t.kt));
	json_key(j, "key_bits");
	json_int(j, t.bits);
	json_key(j, "ca");
	json_bool(j, X509_check_ca(cert) != 0);
	json_key(j, "sha256");
	json_str(j, t.fp);
	json_end(j, '}');
	cert_text_free(&t);
}

void
ctl_print_cert(FILE *f, const char *ind, X509 *cert)
{
	struct cert_text t;
	char b1[32], b2[32];

	cert_text_get(cert, &t);
	fprintf(f, "%ssubject:     %s\n", ind, t.subject ? t.subject : "?");
	fprintf(f, "%sissuer:      %s\n", ind, t.issuer ? t.issuer : "?");
	fprintf(f, "%saddresses:   ", ind);
	for (size_t i = 0; i < t.naddrs; i++)
		fprintf(f, "%s%s", i ? ", " : "", t.addrs[i]);
	fprintf(f, "%s\n", t.naddrs ? "" : "(none)");
	fprintf(f, "%sserial:      %s\n", ind, t.serial ? t.serial : "?");
	fprintf(f, "%svalid:       %s to %s\n", ind, ctl_iso(t.nb, b1), ctl_iso(t.na, b2));
	fprintf(f, "%skey:         %s %d%s\n", ind, x509u_key_type_name(t.kt), t.bits,
	    X509_check_ca(cert) ? " (CA)" : "");
	fprintf(f, "%ssha256:      %s\n", ind, t.fp);
	cert_text_free(&t);
}

/* ------------------------------------------------------------------ */
/* Messages                                                             */
/* ------------------------------------------------------------------ */

/* Add the field being collected (name[0] == '\0': none). */
static int
flush_field(struct mime_headers *h, struct buf *name, struct buf *value, size_t line,
    char *err, size_t errlen)
{
	sm_status st;

	if (name->len == 0)
		return CTL_OK;
	st = mime_headers_add(h, buf_cstr(name), buf_cstr(value));
	buf_reset(name);
	buf_reset(value);
	if (st == SM_OK)
		return CTL_OK;
	snprintf(err, errlen, "line %zu: %s", line,
	    st == SM_ERR_ARG ? "not a header field name" : sm_strstatus(st));
	return CTL_ERR;
}

int
ctl_split_message(const unsigned char *p, size_t n, struct mime_headers *h,
    size_t *body_off, char *err, size_t errlen)
{
	struct buf name = BUF_INIT, value = BUF_INIT;
	size_t pos = 0, lineno = 0, start = 0;
	int rc = CTL_ERR;

	*body_off = n;
	/* An mbox envelope line, as mime_parse() skips it. */
	if ((n >= 5 && memcmp(p, "From ", 5) == 0) || (n >= 6 && memcmp(p, ">From ", 6) == 0)) {
		const unsigned char *nl = memchr(p, '\n', n);
		pos = nl ? (size_t)(nl - p) + 1 : n;
		lineno++;
	}
	while (pos < n) {
		const unsigned char *nl = memchr(p + pos, '\n', n - pos);
		size_t end = nl ? (size_t)(nl - p) : n, len = end - pos;
		const unsigned char *line = p + pos;
		bool cr = len > 0 && line[len - 1] == '\r';
		const unsigned char *colon;

		lineno++;
		if (cr)
			len--;
		if (memchr(line, '\0', len) != NULL) {
			snprintf(err, errlen, "line %zu: NUL byte in the header", lineno);
			goto out;
		}
		if (len == 0) {
			*body_off = nl ? end + 1 : n;
			break;
		}
		if (line[0] == ' ' || line[0] == '\t') {
			if (name.len == 0) {
				snprintf(err, errlen, "line %zu: continuation without a field", lineno);
				goto out;
			}
			if (buf_append_str(&value, cr ? "\r\n" : "\n") != SM_OK ||
			    buf_append(&value, line, len) != SM_OK) {
				snprintf(err, errlen, "out of memory");
				goto out;
			}
		} else {
			if (flush_field(h, &name, &value, start, err, errlen) != CTL_OK)
				goto out;
			if ((colon = memchr(line, ':', len)) == NULL || colon == line) {
				snprintf(err, errlen, "line %zu: not a header field", lineno);
				goto out;
			}
			start = lineno;
			if (buf_append(&name, line, (size_t)(colon - line)) != SM_OK ||
			    buf_append(&value, colon + 1, len - (size_t)(colon - line) - 1) != SM_OK ||
			    buf_append_str(&value, "") != SM_OK) {
				snprintf(err, errlen, "out of memory");
				goto out;
			}
		}
		pos = nl ? end + 1 : n;
	}
	if (flush_field(h, &name, &value, start, err, errlen) != CTL_OK)
		goto out;
	if (h->n == 0) {
		snprintf(err, errlen, "no header fields");
		goto out;
	}
	rc = CTL_OK;
out:
	buf_free(&name);
	buf_free(&value);
	if (rc != CTL_OK)
		mime_headers_free(h);
	return rc;
}
