/*
 * smimectl_key.c — `smimectl key …`: our own keys in keys_dir (list,
 * PKCS#12 import and export).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "clock.h"
#include "keystore.h"
#include "path.h"
#include "smimectl.h"
#include "x509util.h"

/* ------------------------------------------------------------------ */
/* key list                                                             */
/* ------------------------------------------------------------------ */

/* Does key i sign for the address (or, with domain, for the domain)? */
static bool
key_signs(const struct keystore *ks, size_t i, const char *addr, const char *domain,
    time_t now)
{
	char who[330];

	if (addr)
		snprintf(who, sizeof(who), "%s", addr);
	else
		snprintf(who, sizeof(who), "@%s", domain ? domain : "");
	return keystore_pick(ks, who, now, NULL) == (long)i;
}

static const char *
validity_name(X509 *cert, time_t now)
{
	switch (x509u_validity(cert, now)) {
	case X509U_VALID: return "valid";
	case X509U_EXPIRED: return "expired";
	case X509U_NOT_YET_VALID: return "not yet valid";
	case X509U_BAD_TIME: break;
	}
	return "unreadable dates";
}

struct key_row {
	size_t i;
	char name[330]; /* address or @domain */
	bool is_domain;
	bool signs;
};

static void
key_json(struct json *j, const struct keystore *ks, const struct key_row *r, time_t now)
{
	const struct keystore_info *in = keystore_info_at(ks, r->i);
	X509 *cert = keystore_key_at(ks, r->i)->cert;

	json_begin(j, '{');
	json_key(j, "address");
	json_str(j, r->name);
	json_key(j, "domain_key");
	json_bool(j, r->is_domain);
	json_key(j, "use");
	json_str(j, r->signs ? "sign" : "decrypt");
	json_key(j, "status");
	json_str(j, validity_name(cert, now));
	json_key(j, "not_before");
	json_time(j, in->not_before);
	json_key(j, "not_after");
	json_time(j, in->not_after);
	json_key(j, "sha256");
	json_str(j, in->fingerprint);
	json_key(j, "issuer");
	json_str(j, in->issuer);
	json_key(j, "subject");
	json_str(j, in->subject);
	json_key(j, "key_type");
	json_str(j, x509u_key_type_name(in->key_type));
	json_key(j, "key_bits");
	json_int(j, in->key_bits);
	json_key(j, "can_sign");
	json_bool(j, in->can_sign);
	json_key(j, "can_encrypt");
	json_bool(j, in->can_encrypt);
	json_key(j, "file");
	json_str(j, in->path);
	json_end(j, '}');
}

static int
key_list(struct ctl *c, int argc, char **argv)
{
	bool json = false;
	const struct ctl_opt opts[] = {
		{ "--json", NULL, &json },
		{ NULL, NULL, NULL },
	};
	struct key_row *rows = NULL, *nr;
	size_t nrows = 0;
	time_t now = clock_now();
	int npos, rc;

	if ((rc = ctl_parse("key list", argc, argv, opts, NULL, 0, &npos)) != CTL_OK)
		return rc;
	if (ctl_load_keys(c, NULL, 0) != CTL_OK)
		return CTL_ERR;
	/* One row per key and address it serves. */
	for (size_t i = 0; i < keystore_count(c->ks); i++) {
		const struct keystore_info *in = keystore_info_at(c->ks, i);
		size_t want = in->n_addresses + in->n_domains;

		if (want == 0)
			want = 1;
		if ((nr = realloc(rows, (nrows + want) * sizeof(*rows))) == NULL) {
			free(rows);
			ctl_err("out of memory");
			return CTL_ERR;
		}
		rows = nr;
		for (size_t a = 0; a < want; a++) {
			struct key_row *r = &rows[nrows++];

			memset(r, 0, sizeof(*r));
			r->i = i;
			if (a < in->n_addresses) {
				snprintf(r->name, sizeof(r->name), "%s", in->addresses[a]);
				r->signs = key_signs(c->ks, i, in->addresses[a], NULL, now);
			} else if (a - in->n_addresses < in->n_domains) {
				const char *d = in->domains[a - in->n_addresses];
				snprintf(r->name, sizeof(r->name), "@%s", d);
				r->is_domain = true;
				r->signs = key_signs(c->ks, i, NULL, d, now);
			} else {
				snprintf(r->name, sizeof(r->name), "(no address)");
			}
		}
	}
	if (json) {
		struct json j;

		json_init(&j, stdout);
		json_begin(&j, '[');
		for (size_t r = 0; r < nrows; r++)
			key_json(&j, c->ks, &rows[r], now);
		json_end(&j, ']');
		rc = json_finish(&j);
	} else {
		static const char *const hdr[] = { "ADDRESS", "USE", "STATUS", "NOT_AFTER",
			"SHA256", "ISSUER", "FILE" };
		struct table t;
		char na[32];

		table_init(&t, 7, hdr);
		for (size_t r = 0; r < nrows; r++) {
			const struct keystore_info *in = keystore_info_at(c->ks, rows[r].i);
			const char *row[] = { rows[r].name, rows[r].signs ? "sign" : "decrypt",
				validity_name(keystore_key_at(c->ks, rows[r].i)->cert, now),
				ctl_iso(in->not_after, na), in->fingerprint, in->issuer, in->path };
			table_row(&t, row);
		}
		rc = table_print(&t, stdout);
		table_free(&t);
	}
	free(rows);
	return rc;
}

/* ------------------------------------------------------------------ */
/* key import                                                           */
/* ------------------------------------------------------------------ */

static int
key_import(struct ctl *c, int argc, char **argv)
{
	const char *pwfile = NULL;
	const struct ctl_opt opts[] = {
		{ "--password-file", &pwfile, NULL },
		{ NULL, NULL, NULL },
	};
	char *pos[1], *pw = NULL, err[1024] = "", path[4096] = "", na[16];
	struct buf p12 = BUF_INIT;
	struct keystore *ks = NULL;
	int npos, rc, fd;
	sm_status st;

	if ((rc = ctl_parse("key import", argc, argv, opts, pos, 1, &npos)) != CTL_OK)
		return rc;
	if (npos != 1)
		return ctl_usage_error("key import", "missing FILE.p12");
	if (ctl_load_config(c) != CTL_OK)
		return CTL_ERR;
	if (ctl_read_file(pos[0], &p12, err, sizeof(err)) != CTL_OK) {
		ctl_err("key import: %s", err);
		return CTL_ERR;
	}
	if ((rc = ctl_password(pwfile, false, &pw)) != CTL_OK)
		goto out;
	st = keystore_import_p12(c->cfg->keys_dir, p12.data, p12.len, pw, path, sizeof(path), err,
	    sizeof(err));
	if (st != SM_OK) {
		ctl_err("key import: %s: %s", pos[0], err[0] ? err : sm_strstatus(st));
		rc = CTL_ERR;
		goto out;
	}
	/* As root: the daemon, running as its own user, must read it on
	 * reload. The file is mode 0600, so its owner is what counts. */
	if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) >= 0) {
		ctl_own_like_dir(fd, path, c->cfg->keys_dir);
		close(fd);
	}
	/* Load keys_dir as the daemon will: the new file must load. */
	if (keystore_load_for(c->cfg->keys_dir, ctl_daemon_uid(c), &ks, err,
	    sizeof(err)) != SM_OK)
		ctl_err("warning: keys_dir %s does not load, so the daemon refuses it: %s",
		    c->cfg->keys_dir, err);
	for (size_t i = 0; ks && i < keystore_problem_count(ks); i++) {
		const char *why = keystore_problem_at(ks, i);

		if (strncmp(why, path, strlen(path)) == 0 && why[strlen(path)] == ':') {
			unlink(path);
			ctl_err("key import: %s: the key file would not load (%s); not imported",
			    pos[0], why);
			rc = CTL_ERR;
			goto out;
		}
	}
	for (size_t i = 0; ks && i < keystore_count(ks); i++) {
		const struct keystore_info *in = keystore_info_at(ks, i);

		if (strcmp(in->path, path) != 0)
			continue;
		printf("imported ");
		for (size_t a = 0; a < in->n_addresses; a++)
			printf("%s%s", a ? ", " : "", in->addresses[a]);
		for (size_t d = 0; d < in->n_domains; d++)
			printf("%s@%s", d || in->n_addresses ? ", " : "", in->domains[d]);
		x509u_date(in->not_after, na, sizeof(na));
		printf(" sha256=%s (valid until %s) into %s\n", in->fingerprint, na, path);
	}
	if (ks == NULL)
		printf("imported into %s\n", path);
	printf("reload smime-milter (SIGUSR1) to use it\n");
	rc = CTL_OK;
out:
	keystore_free(ks);
	ctl_password_free(pw);
	if (p12.data)
		OPENSSL_cleanse(p12.data, p12.cap);
	buf_free(&p12);
	return rc;
}

/* ------------------------------------------------------------------ */
/* key export                                                           */
/* ------------------------------------------------------------------ */

/* Write der to path: a mode-0600 temporary file beside it, synced, then
 * renamed over path, so that path is either the whole export or untouched. */
static int
export_to_file(const char *path, const unsigned char *der, size_t len)
{
	char dir[4096], tmp[4200];
	int fd;

	snprintf(tmp, sizeof(tmp), "%s/.smimectl-export-XXXXXX",
	    path_dirname(path, dir, sizeof(dir)));
	if ((fd = mkostemp(tmp, O_CLOEXEC)) < 0) {
		ctl_err("key export: %s: %s", path, strerror(errno));
		return CTL_ERR;
	}
	if (fchmod(fd, 0600) != 0 || write(fd, der, len) != (ssize_t)len || fsync(fd) != 0) {
		ctl_err("key export: %s: %s", path, strerror(errno));
		close(fd);
		unlink(tmp);
		return CTL_ERR;
	}
	close(fd);
	if (rename(tmp, path) != 0) {
		ctl_err("key export: %s: %s", path, strerror(errno));
		unlink(tmp);
		return CTL_ERR;
	}
	return CTL_OK;
}

/* Standard output redirected to a file the shell created with the umask's
 * mode (0644): make it 0600 before a private key goes in. */
static int
export_to_stdout(const unsigned char *der, size_t len)
{
	struct stat sb;

	if (fstat(STDOUT_FILENO, &sb) == 0 && S_ISREG(sb.st_mode) &&
	    (sb.st_mode & (S_IRWXG | S_IRWXO)) && fchmod(STDOUT_FILENO, 0600) != 0) {
		ctl_err("key export: standard output is a file others can read, and chmod 600 "
			"failed (%s); use --out FILE", strerror(errno));
		return CTL_ERR;
	}
	if (fwrite(der, 1, len, stdout) != len || fflush(stdout) != 0) {
		ctl_err("key export: cannot write to standard output: %s", strerror(errno));
		return CTL_ERR;
	}
	return CTL_OK;
}

static int
key_export(struct ctl *c, int argc, char **argv)
{
	const char *pwfile = NULL, *out = NULL;
	bool legacy = false;
	const struct ctl_opt opts[] = {
		{ "--password-file", &pwfile, NULL },
		{ "--out", &out, NULL },
		{ "--legacy", NULL, &legacy },
		{ NULL, NULL, NULL },
	};
	char *pos[1], *pw = NULL, err[512] = "";
	unsigned char *der = NULL;
	size_t len = 0;
	int npos, rc;
	sm_status st;

	if ((rc = ctl_parse("key export", argc, argv, opts, pos, 1, &npos)) != CTL_OK)
		return rc;
	if (npos != 1)
		return ctl_usage_error("key export", "missing ADDRESS");
	if (out == NULL && isatty(STDOUT_FILENO)) {
		ctl_err("key export: standard output is a terminal; use --out FILE");
		return CTL_ERR;
	}
	if (ctl_load_keys(c, NULL, 0) != CTL_OK)
		return CTL_ERR;
	if ((rc = ctl_password(pwfile, true, &pw)) != CTL_OK)
		return rc;
	st = keystore_export_p12(c->ks, pos[0], clock_now(), pw,
	    legacy ? KEYSTORE_P12_LEGACY : KEYSTORE_P12_DEFAULT, &der, &len, err, sizeof(err));
	ctl_password_free(pw);
	if (st == SM_ERR_NOKEY) {
		ctl_err("key export: no key for %s in %s", pos[0], c->cfg->keys_dir);
		return CTL_ERR;
	}
	if (st != SM_OK) {
		ctl_err("key export: %s", err[0] ? err : sm_strstatus(st));
		return CTL_ERR;
	}
	rc = out ? export_to_file(out, der, len) : export_to_stdout(der, len);
	if (rc == CTL_OK && out)
		printf("exported %s to %s (mode 0600)\n", pos[0], out);
	OPENSSL_cleanse(der, len);
	free(der);
	return rc;
}

int
cmd_key(struct ctl *c, int argc, char **argv)
{
	if (argc < 1)
		return ctl_usage_error("key", "missing list, import or export");
	if (strcmp(argv[0], "-h") == 0 || strcmp(argv[0], "--help") == 0)
		return CTL_HELP;
	if (strcmp(argv[0], "list") == 0)
		return key_list(c, argc - 1, argv + 1);
	if (strcmp(argv[0], "import") == 0)
		return key_import(c, argc - 1, argv + 1);
	if (strcmp(argv[0], "export") == 0)
		return key_export(c, argc - 1, argv + 1);
	return ctl_usage_error("key", "unknown subcommand \"%s\"", argv[0]);
}
