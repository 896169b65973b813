/*
 * certcache.c — the process-wide cache of parsed certificates, chains and
 * chain verdicts (see certcache.h): CERTCACHE_SHARDS hash tables, each
 * under a rwlock, with one kind of entry per thing remembered.
 */
#include "certcache.h"

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/asn1.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include "x509util.h"

#define CC_BUCKETS 64
#define CC_SHARD_MAX (CERTCACHE_MAX / CERTCACHE_SHARDS)
#define CC_NO_ANCHORS 1 /* the identity of trust NULL */

enum cc_kind { CC_CERT, CC_CHAIN, CC_VERDICT, CC_MEMO };

struct cc_verdict {
	sm_status st;
	unsigned long gen;
	time_t at, from, until; /* computed at; valid within [from, until] */
};

/* A caller's memo: the key past its first CERTCACHE_KEY_SIZE bytes
 * (restlen), then the value (vallen), in buf; the times in t (t.st
 * unused). */
struct cc_memo {
	struct cc_verdict t;
	unsigned char *buf;
	size_t restlen, vallen;
};

struct cc_entry {
	unsigned char key[CERTCACHE_KEY_SIZE];
	enum cc_kind kind;
	union {
		X509 *cert;
		STACK_OF(X509) *chain;
		struct cc_verdict v;
		struct cc_memo m;
	} u;
	struct cc_entry *next;
};

struct cc_shard {
	pthread_rwlock_t lock;
	struct cc_entry *bucket[CC_BUCKETS];
	size_t n;
};

static struct cc_shard shards[CERTCACHE_SHARDS];
static pthread_once_t cc_once = PTHREAD_ONCE_INIT;
static EVP_MD *cc_sha256;	/* fetched once, not by name per call */
static int cc_store_idx = -1;	/* X509_STORE ex_data: the identity */
static int cc_key_idx = -1;	/* X509 ex_data: its certcache key */
static atomic_ulong cc_gen = 1;
static atomic_ulong cc_next_id = CC_NO_ANCHORS + 1;
static atomic_ulong cc_decodes, cc_verifies, cc_verdict_hits, cc_memo_hits;

/* The key kept with an X509 (ex_data): freed with it, copied with it. */
static void
key_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
	 void *argp)
{
	(void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
	free(ptr);
}

static int
key_dup(CRYPTO_EX_DATA *to, const CRYPTO_EX_DATA *from, void **from_d,
	int idx, long argl, void *argp)
{
	unsigned char *k = NULL;

	(void)to, (void)from, (void)idx, (void)argl, (void)argp;
	if (*from_d != NULL && (k = malloc(CERTCACHE_KEY_SIZE)) != NULL)
		memcpy(k, *from_d, CERTCACHE_KEY_SIZE);
	*from_d = k;
	return 1;
}

static void
cc_init(void)
{
	for (size_t i = 0; i < CERTCACHE_SHARDS; i++)
		pthread_rwlock_init(&shards[i].lock, NULL);
	cc_sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
	cc_store_idx = X509_STORE_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	cc_key_idx = X509_get_ex_new_index(0, NULL, NULL, key_dup, key_free);
}

bool
certcache_key(const unsigned char *der, size_t len,
	      unsigned char key[CERTCACHE_KEY_SIZE])
{
	unsigned int n = 0;

	pthread_once(&cc_once, cc_init);
	if (cc_sha256 != NULL &&
	    EVP_Digest(der ? der : (const unsigned char *)"", der ? len : 0,
		       key, &n, cc_sha256, NULL) &&
	    n == CERTCACHE_KEY_SIZE)
		return true;
	/* No digest: nothing may be found or kept under this key. */
	memset(key, 0, CERTCACHE_KEY_SIZE);
	return false;
}

static struct cc_shard *
shard_of(const unsigned char *key)
{
	return &shards[key[0] % CERTCACHE_SHARDS];
}

static unsigned
bucket_of(const unsigned char *key)
{
	return ((unsigned)key[1] << 8 | key[2]) % CC_BUCKETS;
}

static void
entry_free(struct cc_entry *e)
{
	if (e->kind == CC_CERT)
		X509_free(e->u.cert);
	else if (e->kind == CC_CHAIN)
		sk_X509_pop_free(e->u.chain, X509_free);
	else if (e->kind == CC_MEMO)
		free(e->u.m.buf);
	free(e);
}

/* Empty a shard. Write lock held. */
static void
shard_clear(struct cc_shard *s)
{
	for (size_t b = 0; b < CC_BUCKETS; b++) {
		struct cc_entry *e = s->bucket[b], *next;

		for (; e != NULL; e = next) {
			next = e->next;
			entry_free(e);
		}
		s->bucket[b] = NULL;
	}
	s->n = 0;
}

/* The entry of key and kind. Shard lock held (either). */
static struct cc_entry *
find(struct cc_shard *s, const unsigned char *key, enum cc_kind kind)
{
	struct cc_entry *e = s->bucket[bucket_of(key)];

	for (; e != NULL; e = e->next)
		if (e->kind == kind && memcmp(e->key, key, CERTCACHE_KEY_SIZE) == 0)
			return e;
	return NULL;
}

/* Insert e (key and kind set), or return the entry another thread put
 * there meanwhile. Write lock held. */
static struct cc_entry *
insert(struct cc_shard *s, struct cc_entry *e)
{
	struct cc_entry *old = find(s, e->key, e->kind);
	unsigned b;

	if (old != NULL)
		return old;
	if (s->n >= CC_SHARD_MAX)
		shard_clear(s);
	b = bucket_of(e->key);
	e->next = s->bucket[b];
	s->bucket[b] = e;
	s->n++;
	return e;
}

static X509 *
decode(const unsigned char **p, long len)
{
	X509 *x = d2i_X509(NULL, p, len);

	atomic_fetch_add(&cc_decodes, 1);
	/* Compute the extension cache now, so that later readers only
	 * read (an invalid extension is still judged where it was). */
	if (x != NULL)
		(void)X509_check_purpose(x, -1, 0);
	return x;
}

/* Keep key with x (certcache_key_of). x not shared yet. */
static void
key_attach(X509 *x, const unsigned char *key)
{
	unsigned char *k;

	if (cc_key_idx < 0 || (k = malloc(CERTCACHE_KEY_SIZE)) == NULL)
		return;
	memcpy(k, key, CERTCACHE_KEY_SIZE);
	if (!X509_set_ex_data(x, cc_key_idx, k))
		free(k);
}

const unsigned char *
certcache_key_of(X509 *x)
{
	/* cc_key_idx is set once (pthread_once) before any X509 carries a
	 * key; before that, nothing carries one. */
	if (x == NULL || cc_key_idx < 0)
		return NULL;
	return X509_get_ex_data(x, cc_key_idx);
}

X509 *
certcache_cert(const unsigned char *der, size_t len, const unsigned char *key)
{
	unsigned char k[CERTCACHE_KEY_SIZE];
	const unsigned char *p = der;
	struct cc_shard *s;
	struct cc_entry *e, *got;
	X509 *x;

	if (der == NULL || len == 0 || len > LONG_MAX)
		return NULL;
	pthread_once(&cc_once, cc_init);
	if (key == NULL && certcache_key(der, len, k))
		key = k;
	if (key == NULL) { /* no digest: decoded, not kept */
		x = decode(&p, (long)len);
		return x != NULL && p == der + len ? x : (X509_free(x), NULL);
	}
	s = shard_of(key);
	pthread_rwlock_rdlock(&s->lock);
	if ((e = find(s, key, CC_CERT)) != NULL) {
		x = e->u.cert;
		X509_up_ref(x);
	}
	pthread_rwlock_unlock(&s->lock);
	if (e != NULL)
		return x;
	/* Decode outside the lock; a damaged one is not remembered. */
	if ((x = decode(&p, (long)len)) == NULL)
		return NULL;
	if (p != der + len || (e = calloc(1, sizeof(*e))) == NULL)
		return x; /* trailing bytes: not the DER of x alone */
	key_attach(x, key); /* before any other thread sees x */
	memcpy(e->key, key, CERTCACHE_KEY_SIZE);
	e->kind = CC_CERT;
	e->u.cert = x;
	pthread_rwlock_wrlock(&s->lock);
	if ((got = insert(s, e)) != e) {
		X509_free(x);
		free(e);
	}
	x = got->u.cert;
	X509_up_ref(x);
	pthread_rwlock_unlock(&s->lock);
	return x;
}

/* The length of the DER element at p (header included), 0 when it is
 * not one. */
static size_t
der_len(const unsigned char *p, size_t avail)
{
	const unsigned char *q = p;
	long body;
	int tag, cls;

	if (avail > LONG_MAX ||
	    (ASN1_get_object(&q, &body, &tag, &cls, (long)avail) & 0x80) != 0)
		return 0;
	if (body < 0 || (size_t)body > avail - (size_t)(q - p))
		return 0;
	return (size_t)(q - p) + (size_t)body;
}

/* Parse a concatenated-DER chain, each certificate through the cache. */
static STACK_OF(X509) *
chain_parse(const unsigned char *der, size_t len)
{
	STACK_OF(X509) *sk = sk_X509_new_null();
	const unsigned char *p = der, *end = der + len;

	if (sk == NULL)
		return NULL;
	while (der != NULL && p < end) {
		size_t n = der_len(p, (size_t)(end - p));
		X509 *c = n ? certcache_cert(p, n, NULL) : NULL;

		if (c == NULL)
			break; /* a damaged tail: verify with what parsed */
		if (sk_X509_push(sk, c) <= 0) {
			X509_free(c);
			break;
		}
		p += n;
	}
	return sk;
}

STACK_OF(X509) *
certcache_chain(const unsigned char *der, size_t len, const unsigned char *key)
{
	unsigned char k[CERTCACHE_KEY_SIZE];
	struct cc_shard *s;
	struct cc_entry *e, *got;
	STACK_OF(X509) *sk, *out = NULL;

	if (der == NULL || len == 0 || len > LONG_MAX)
		return sk_X509_new_null();
	pthread_once(&cc_once, cc_init);
	if (key == NULL && certcache_key(der, len, k))
		key = k;
	if (key == NULL)
		return chain_parse(der, len); /* no digest: not kept */
	s = shard_of(key);
	pthread_rwlock_rdlock(&s->lock);
	if ((e = find(s, key, CC_CHAIN)) != NULL)
		out = X509_chain_up_ref(e->u.chain);
	pthread_rwlock_unlock(&s->lock);
	if (e != NULL)
		return out;
	if ((sk = chain_parse(der, len)) == NULL)
		return NULL;
	if ((e = calloc(1, sizeof(*e))) == NULL)
		return sk;
	memcpy(e->key, key, CERTCACHE_KEY_SIZE);
	e->kind = CC_CHAIN;
	e->u.chain = sk;
	pthread_rwlock_wrlock(&s->lock);
	if ((got = insert(s, e)) != e)
		entry_free(e);
	out = X509_chain_up_ref(got->u.chain);
	pthread_rwlock_unlock(&s->lock);
	return out;
}

/* ---- verdicts ---- */

void
certcache_trust_adopt(X509_STORE *store)
{
	pthread_once(&cc_once, cc_init);
	if (store == NULL || cc_store_idx < 0)
		return;
	X509_STORE_set_ex_data(store, cc_store_idx,
			       (void *)(uintptr_t)atomic_fetch_add(&cc_next_id,
								   1));
}

/* The store's identity; 0: none (verdicts not remembered). */
static unsigned long
trust_id(X509_STORE *store)
{
	if (store == NULL)
		return CC_NO_ANCHORS;
	if (cc_store_idx < 0)
		return 0;
	return (unsigned long)(uintptr_t)X509_STORE_get_ex_data(store,
								 cc_store_idx);
}

/* The key of a verdict: everything it depends on but time. */
static bool
verdict_key(const unsigned char *cert_key, const unsigned char *chain_key,
	    unsigned long id, bool allow_self_signed,
	    unsigned char out[CERTCACHE_KEY_SIZE])
{
	unsigned char in[2 * CERTCACHE_KEY_SIZE + sizeof(id) + 1];

	memcpy(in, cert_key, CERTCACHE_KEY_SIZE);
	memcpy(in + CERTCACHE_KEY_SIZE, chain_key, CERTCACHE_KEY_SIZE);
	memcpy(in + 2 * CERTCACHE_KEY_SIZE, &id, sizeof(id));
	in[sizeof(in) - 1] = allow_self_signed;
	return certcache_key(in, sizeof(in), out);
}

static bool
verdict_current(const struct cc_verdict *v, time_t now)
{
	return v->gen == atomic_load(&cc_gen) && now >= v->at &&
	       now - v->at <= CERTCACHE_VERDICT_TTL && now >= v->from &&
	       now <= v->until;
}

/* A failure another time could turn: not remembered. */
static bool
time_error(int verr)
{
	return verr == X509_V_ERR_CERT_NOT_YET_VALID ||
	       verr == X509_V_ERR_CERT_HAS_EXPIRED ||
	       verr == X509_V_ERR_ERROR_IN_CERT_NOT_BEFORE_FIELD ||
	       verr == X509_V_ERR_ERROR_IN_CERT_NOT_AFTER_FIELD;
}

static void
verdict_put(const unsigned char *key, const struct cc_verdict *v)
{
	struct cc_shard *s = shard_of(key);
	struct cc_entry *e = calloc(1, sizeof(*e)), *got;

	if (e == NULL)
		return;
	memcpy(e->key, key, CERTCACHE_KEY_SIZE);
	e->kind = CC_VERDICT;
	e->u.v = *v;
	pthread_rwlock_wrlock(&s->lock);
	if ((got = insert(s, e)) != e) {
		got->u.v = *v; /* the newer one */
		free(e);
	}
	pthread_rwlock_unlock(&s->lock);
}

/* Run the verification and build the verdict. */
static sm_status
verdict_compute(X509 *cert, const unsigned char *chain_der, size_t chain_len,
		const unsigned char *chain_key, X509_STORE *trust,
		bool allow_self_signed, time_t now, struct cc_verdict *v,
		bool *keep)
{
	STACK_OF(X509) *chain = certcache_chain(chain_der, chain_len, chain_key);
	int verr = X509_V_OK;

	*keep = false;
	if (chain == NULL)
		return SM_ERR_NOMEM;
	v->gen = atomic_load(&cc_gen); /* before: a bump meanwhile wins */
	v->at = now;
	v->st = x509u_verify_span(cert, chain, trust, allow_self_signed, now,
				  &verr, &v->from, &v->until);
	atomic_fetch_add(&cc_verifies, 1);
	sk_X509_pop_free(chain, X509_free);
	if (v->st == SM_ERR_VERIFY) {
		v->from = (time_t)LLONG_MIN;
		v->until = (time_t)LLONG_MAX;
	}
	*keep = v->st == SM_OK || (v->st == SM_ERR_VERIFY && !time_error(verr));
	return v->st;
}

sm_status
certcache_verify(X509 *cert, const unsigned char *cert_key,
		 const unsigned char *chain_der, size_t chain_len,
		 const unsigned char *chain_key, X509_STORE *trust,
		 bool allow_self_signed, time_t now)
{
	unsigned char ck[CERTCACHE_KEY_SIZE], key[CERTCACHE_KEY_SIZE];
	struct cc_verdict v;
	struct cc_shard *s;
	struct cc_entry *e;
	unsigned long id;
	bool found = false, keep;
	sm_status st;

	if (cert == NULL)
		return SM_ERR_ARG;
	pthread_once(&cc_once, cc_init);
	if (chain_key == NULL &&
	    certcache_key(chain_der, chain_der ? chain_len : 0, ck))
		chain_key = ck;
	/* Without an identity or a digest: verified, not kept. */
	id = trust_id(trust);
	if (cert_key == NULL || chain_key == NULL ||
	    !verdict_key(cert_key, chain_key, id, allow_self_signed, key))
		id = 0;
	if (id != 0) {
		s = shard_of(key);
		pthread_rwlock_rdlock(&s->lock);
		if ((e = find(s, key, CC_VERDICT)) != NULL &&
		    verdict_current(&e->u.v, now)) {
			v = e->u.v;
			found = true;
		}
		pthread_rwlock_unlock(&s->lock);
		if (found) {
			atomic_fetch_add(&cc_verdict_hits, 1);
			return v.st;
		}
	}
	st = verdict_compute(cert, chain_der, chain_len, chain_key, trust,
			     allow_self_signed, now, &v, &keep);
	if (id != 0 && keep)
		verdict_put(key, &v);
	return st;
}

/* ---- memos ---- */

/* The memo of exactly key. Shard lock held (either). */
static struct cc_entry *
memo_find(struct cc_shard *s, const unsigned char *key, size_t keylen)
{
	struct cc_entry *e = s->bucket[bucket_of(key)];
	size_t rest = keylen - CERTCACHE_KEY_SIZE;

	for (; e != NULL; e = e->next)
		if (e->kind == CC_MEMO && e->u.m.restlen == rest &&
		    memcmp(e->key, key, CERTCACHE_KEY_SIZE) == 0 &&
		    memcmp(e->u.m.buf, key + CERTCACHE_KEY_SIZE, rest) == 0)
			return e;
	return NULL;
}

bool
certcache_memo_get(const void *key, size_t keylen, time_t now, void *val,
		   size_t vallen)
{
	struct cc_shard *s;
	struct cc_entry *e;
	bool found = false;

	if (key == NULL || keylen < CERTCACHE_KEY_SIZE)
		return false;
	pthread_once(&cc_once, cc_init);
	s = shard_of(key);
	pthread_rwlock_rdlock(&s->lock);
	if ((e = memo_find(s, key, keylen)) != NULL &&
	    e->u.m.vallen == vallen && verdict_current(&e->u.m.t, now)) {
		memcpy(val, e->u.m.buf + e->u.m.restlen, vallen);
		found = true;
	}
	pthread_rwlock_unlock(&s->lock);
	if (found)
		atomic_fetch_add(&cc_memo_hits, 1);
	return found;
}

void
certcache_memo_put(const void *key, size_t keylen, unsigned long gen,
		   time_t at, time_t from, time_t until, const void *val,
		   size_t vallen)
{
	const unsigned char *k = key;
	size_t rest = keylen - CERTCACHE_KEY_SIZE;
	struct cc_shard *s;
	struct cc_entry *e, *old;
	unsigned b;

	if (key == NULL || keylen < CERTCACHE_KEY_SIZE ||
	    (e = calloc(1, sizeof(*e))) == NULL)
		return;
	if ((e->u.m.buf = malloc(rest + vallen ? rest + vallen : 1)) == NULL) {
		free(e);
		return;
	}
	pthread_once(&cc_once, cc_init);
	memcpy(e->key, k, CERTCACHE_KEY_SIZE);
	e->kind = CC_MEMO;
	e->u.m.t = (struct cc_verdict){ SM_OK, gen, at, from, until };
	memcpy(e->u.m.buf, k + CERTCACHE_KEY_SIZE, rest);
	memcpy(e->u.m.buf + rest, val, vallen);
	e->u.m.restlen = rest;
	e->u.m.vallen = vallen;
	s = shard_of(k);
	pthread_rwlock_wrlock(&s->lock);
	if ((old = memo_find(s, k, keylen)) != NULL) {
		/* The newer one: swap contents, free the old. */
		struct cc_memo m = old->u.m;

		old->u.m = e->u.m;
		e->u.m = m;
		entry_free(e);
	} else {
		if (s->n >= CC_SHARD_MAX)
			shard_clear(s);
		b = bucket_of(k);
		e->next = s->bucket[b];
		s->bucket[b] = e;
		s->n++;
	}
	pthread_rwlock_unlock(&s->lock);
}

/* ---- generation, housekeeping ---- */

void
certcache_bump(void)
{
	atomic_fetch_add(&cc_gen, 1);
}

unsigned long
certcache_generation(void)
{
	return atomic_load(&cc_gen);
}

void
certcache_clear(void)
{
	pthread_once(&cc_once, cc_init);
	for (size_t i = 0; i < CERTCACHE_SHARDS; i++) {
		pthread_rwlock_wrlock(&shards[i].lock);
		shard_clear(&shards[i]);
		pthread_rwlock_unlock(&shards[i].lock);
	}
}

void
certcache_stats(struct certcache_stats *st)
{
	pthread_once(&cc_once, cc_init);
	memset(st, 0, sizeof(*st));
	st->decodes = atomic_load(&cc_decodes);
	st->verifies = atomic_load(&cc_verifies);
	st->verdict_hits = atomic_load(&cc_verdict_hits);
	st->memo_hits = atomic_load(&cc_memo_hits);
	for (size_t i = 0; i < CERTCACHE_SHARDS; i++) {
		pthread_rwlock_rdlock(&shards[i].lock);
		st->entries += shards[i].n;
		pthread_rwlock_unlock(&shards[i].lock);
	}
}
