/*
 * keycache_pgo.c — the outbox: writes made while the database was down,
 * kept on local disk until it is back.
 *
 * One file per write, named by time and sequence so that a directory
 * listing is the order they were made in; written to a temporary name,
 * fsync'ed and renamed, so a crash leaves either the whole entry or none.
 * The entry is the records the backend's put() takes, one field a line,
 * strings and bytes in hex. Replayed entries are deleted; an entry that
 * does not parse is renamed *.bad and reported, never silently dropped.
 */
#include "keycache_pg.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "log.h"

#define OB_MAGIC "smime-milter outbox 1"
#define OB_SUFFIX ".put"
#define OB_MAX_ENTRY (4L * 1024 * 1024)

static atomic_uint ob_seq;

static void
put_hex(FILE *f, const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%02x", p[i]);
	fputc('\n', f);
}

static void
put_str(FILE *f, const char *s)
{
	put_hex(f, (const unsigned char *)(s ? s : ""), s ? strlen(s) : 0);
}

static void
put_rec(FILE *f, const struct kc_record *r)
{
	fprintf(f, "%d %d %d %d %d %lld %lld %lld %lld %lld %d %d %llu %zu\n",
		(int)r->status, (int)r->source, (int)r->assurance,
		(int)r->signer, (int)r->can_encrypt,
		(long long)r->signing_time, (long long)r->first_seen,
		(long long)r->last_seen, (long long)r->not_before,
		(long long)r->not_after, (int)r->key_type, r->key_bits,
		(unsigned long long)r->caps, r->n_emails);
	put_str(f, r->address);
	put_str(f, r->enc_fp);
	put_str(f, r->fingerprint);
	put_str(f, r->key_fingerprint);
	put_str(f, r->subject);
	put_str(f, r->issuer);
	put_str(f, r->serial);
	put_hex(f, r->der, r->der_len);
	put_hex(f, r->chain, r->chain_len);
	for (size_t i = 0; i < r->n_emails; i++)
		put_str(f, r->emails[i]);
}

sm_status
pg_outbox_add(const char *dir, const struct kc_record *head,
	      const struct kc_record *enc, time_t now)
{
	char tmp[4200], fin[4096];
	FILE *f;
	int fd, ok;

	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		log_msg(LOG_ERR, "outbox %s: %s", dir, strerror(errno));
		return SM_ERR_IO;
	}
	snprintf(fin, sizeof(fin), "%s/%012lld-%08ld-%06u" OB_SUFFIX, dir,
		 (long long)now, (long)getpid(),
		 atomic_fetch_add(&ob_seq, 1) % 1000000u);
	snprintf(tmp, sizeof(tmp), "%s.tmp", fin);
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) <
	    0) {
		log_msg(LOG_ERR, "outbox %s: %s", tmp, strerror(errno));
		return SM_ERR_IO;
	}
	if ((f = fdopen(fd, "w")) == NULL) {
		close(fd);
		unlink(tmp);
		return SM_ERR_IO;
	}
	fprintf(f, OB_MAGIC "\n%lld %d\n", (long long)now, enc != NULL);
	put_rec(f, head);
	if (enc)
		put_rec(f, enc);
	ok = fflush(f) == 0 && fsync(fd) == 0;
	ok &= fclose(f) == 0;
	if (!ok || rename(tmp, fin) != 0) {
		log_msg(LOG_ERR, "outbox %s: %s", fin, strerror(errno));
		unlink(tmp);
		return SM_ERR_IO;
	}
	/* The rename is durable once the directory is. */
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		fsync(fd);
		close(fd);
	}
	return SM_OK;
}

/* ---- reading back ---- */

static bool
get_line(FILE *f, char **line, size_t *cap)
{
	ssize_t n = getline(line, cap, f);

	if (n <= 0)
		return false;
	if ((*line)[n - 1] == '\n')
		(*line)[n - 1] = '\0';
	return true;
}

static bool
get_hex(FILE *f, char **line, size_t *cap, unsigned char **out, size_t *len)
{
	size_t n;

	*out = NULL;
	*len = 0;
	if (!get_line(f, line, cap))
		return false;
	n = strlen(*line);
	if (n % 2 != 0)
		return false;
	if ((*out = malloc(n / 2 + 1)) == NULL)
		return false;
	for (size_t i = 0; i < n / 2; i++) {
		unsigned v;

		if (sscanf(*line + 2 * i, "%2x", &v) != 1) {
			free(*out);
			*out = NULL;
			return false;
		}
		(*out)[i] = (unsigned char)v;
	}
	(*out)[n / 2] = '\0';
	*len = n / 2;
	return true;
}

static bool
get_str(FILE *f, char **line, size_t *cap, char **out)
{
	size_t n;

	return get_hex(f, line, cap, (unsigned char **)out, &n);
}

static bool
get_fp(FILE *f, char **line, size_t *cap, char out[X509U_FP_SIZE])
{
	char *s = NULL;
	bool ok = get_str(f, line, cap, &s) && strlen(s) < X509U_FP_SIZE;

	if (ok)
		snprintf(out, X509U_FP_SIZE, "%s", s);
	free(s);
	return ok;
}

static bool
get_rec(FILE *f, char **line, size_t *cap, struct kc_record *r)
{
	int st, src, as, sg, ce, kt;
	long long t[5];
	unsigned long long caps;
	size_t ne;

	memset(r, 0, sizeof(*r));
	if (!get_line(f, line, cap) ||
	    sscanf(*line, "%d %d %d %d %d %lld %lld %lld %lld %lld %d %d %llu %zu",
		   &st, &src, &as, &sg, &ce, &t[0], &t[1], &t[2], &t[3], &t[4],
		   &kt, &r->key_bits, &caps, &ne) != 14 ||
	    ne > 1000)
		return false;
	r->status = (enum kc_status)st;
	r->source = (enum kc_source)src;
	r->assurance = (enum kc_assurance)as;
	r->signer = sg != 0;
	r->can_encrypt = ce != 0;
	r->signing_time = (time_t)t[0];
	r->first_seen = (time_t)t[1];
	r->last_seen = (time_t)t[2];
	r->not_before = (time_t)t[3];
	r->not_after = (time_t)t[4];
	r->key_type = (enum x509u_key_type)kt;
	r->caps = (caps_t)caps;
	if (!get_str(f, line, cap, &r->address) ||
	    !get_fp(f, line, cap, r->enc_fp) ||
	    !get_fp(f, line, cap, r->fingerprint) ||
	    !get_fp(f, line, cap, r->key_fingerprint) ||
	    !get_str(f, line, cap, &r->subject) ||
	    !get_str(f, line, cap, &r->issuer) ||
	    !get_str(f, line, cap, &r->serial) ||
	    !get_hex(f, line, cap, &r->der, &r->der_len) ||
	    !get_hex(f, line, cap, &r->chain, &r->chain_len))
		return false;
	if ((r->emails = calloc(ne ? ne : 1, sizeof(*r->emails))) == NULL)
		return false;
	for (size_t i = 0; i < ne; i++) {
		if (!get_str(f, line, cap, &r->emails[i]))
			return false;
		r->n_emails++;
	}
	return r->der_len > 0;
}

/* Read one entry. */
static bool
ob_read(const char *path, struct kc_record *head, struct kc_record *enc,
	bool *has_enc, time_t *now)
{
	FILE *f = fopen(path, "re");
	char *line = NULL;
	size_t cap = 0;
	long long t = 0;
	int e = 0;
	bool ok;

	memset(head, 0, sizeof(*head));
	memset(enc, 0, sizeof(*enc));
	if (f == NULL)
		return false;
	ok = get_line(f, &line, &cap) && strcmp(line, OB_MAGIC) == 0 &&
	     get_line(f, &line, &cap) && sscanf(line, "%lld %d", &t, &e) == 2;
	*now = (time_t)t;
	*has_enc = ok && e != 0;
	ok = ok && get_rec(f, &line, &cap, head) &&
	     (!*has_enc || get_rec(f, &line, &cap, enc));
	free(line);
	fclose(f);
	return ok;
}

static int
ob_filter(const struct dirent *d)
{
	size_t n = strlen(d->d_name), s = strlen(OB_SUFFIX);

	return n > s && strcmp(d->d_name + n - s, OB_SUFFIX) == 0;
}

size_t
pg_outbox_count(const char *dir)
{
	struct dirent **v = NULL;
	int n = scandir(dir, &v, ob_filter, alphasort);

	for (int i = 0; i < n; i++)
		free(v[i]);
	free(v);
	return n > 0 ? (size_t)n : 0;
}

sm_status
pg_outbox_replay(struct kc_backend *be, size_t *done)
{
	struct dirent **v = NULL;
	int n = scandir(be->outbox_dir, &v, ob_filter, alphasort), i;
	sm_status st = SM_OK;
	size_t cnt = 0;

	for (i = 0; i < n; i++) {
		char path[4096], bad[4200];
		struct kc_record head, enc;
		struct kc_plan plan;
		bool has_enc;
		time_t now;

		snprintf(path, sizeof(path), "%s/%s", be->outbox_dir,
			 v[i]->d_name);
		if (st != SM_OK)
			goto next;
		if (!ob_read(path, &head, &enc, &has_enc, &now)) {
			snprintf(bad, sizeof(bad), "%s.bad", path);
			rename(path, bad);
			log_msg(LOG_ERR, "outbox: %s is damaged; kept as %s",
				path, bad);
		} else if ((st = pg_put_direct(be, &head, has_enc ? &enc : NULL,
					       now, &plan)) == SM_OK) {
			unlink(path);
			cnt++;
			log_msg(LOG_INFO,
				"key cache (postgresql): queued certificate "
				"for %s written (%s)",
				head.address, keycache_outcome_name(plan.outcome));
		}
		kc_record_free(&head);
		kc_record_free(&enc);
	next:
		free(v[i]);
	}
	free(v);
	if (done)
		*done = cnt;
	return st;
}

size_t
keycache_outbox_count(const char *dir)
{
	return dir ? pg_outbox_count(dir) : 0;
}
