/*
 * config.h — the one configuration schema and the immutable configuration.
 *
 * config_load() reads a libconfig file, checks every key against one schema
 * table (name, type, default, bounds: see config.c) and returns an immutable
 * struct config. Every problem is collected with "FILE:LINE: key: text" so
 * that `smime-milter -n` and `smimectl check` print all of them at once.
 *
 * Configurations are reference counted: a reload builds a new one beside the
 * old, swaps the pointer, and connections still holding the old one keep it
 * alive until they drop their reference.
 */
#ifndef SMIME_CONFIG_H
#define SMIME_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <stdint.h>

#include "address.h"
#include "status.h"

#define CONFIG_DEFAULT_FILE "/etc/smime-milter/smime-milter.conf"

enum cfg_encrypt { CFG_ENCRYPT_NEVER, CFG_ENCRYPT_OPPORTUNISTIC, CFG_ENCRYPT_REQUIRED };
enum cfg_missing_cert { CFG_MISSING_REJECT, CFG_MISSING_TEMPFAIL };
enum cfg_mixed { CFG_MIXED_SIGN_ONLY, CFG_MIXED_SPLIT };
enum cfg_cipher {
	CFG_CIPHER_AUTO, CFG_CIPHER_AES128_CBC, CFG_CIPHER_AES256_CBC,
	CFG_CIPHER_AES128_GCM, CFG_CIPHER_AES256_GCM
};
enum cfg_rsa_padding { CFG_PADDING_PKCS1, CFG_PADDING_OAEP };
enum cfg_digest { CFG_DIGEST_SHA256, CFG_DIGEST_SHA384, CFG_DIGEST_SHA512 };
enum cfg_sign_format { CFG_SIGN_DETACHED, CFG_SIGN_OPAQUE };
enum cfg_on_error { CFG_ON_ERROR_TEMPFAIL, CFG_ON_ERROR_ACCEPT };
enum cfg_decrypt { CFG_DECRYPT_OFF, CFG_DECRYPT_HARVEST, CFG_DECRYPT_DELIVER };
enum cfg_backend { CFG_BACKEND_SQLITE, CFG_BACKEND_POSTGRESQL };
enum cfg_rev_check { CFG_REV_OFF, CFG_REV_SOFT, CFG_REV_HARD };

/* Revocation checking (global, or a policy rule's own). See
 * smime-milter.conf(5) for what soft and hard mean exactly. */
struct cfg_revocation {
	enum cfg_rev_check check;
	uint64_t grace_days;    /* hard: how long "unknown" is tolerated */
	uint64_t timeout_ms;    /* one fetch, connect to last byte */
	char *proxy;            /* NULL: none (libcurl's environment ignored) */
};
enum cfg_unauthorised { CFG_UNAUTH_REJECT, CFG_UNAUTH_UNSIGNED };
/* RFC 9788 header confidentiality policy when encrypting (hprot.h). */
enum cfg_hprot { CFG_HPROT_BASELINE, CFG_HPROT_OFF, CFG_HPROT_SHY };

struct sender_map;

/* The outbound settings; a policy rule overrides some of them. */
struct cfg_outbound {
	bool sign;
	enum cfg_encrypt encrypt;
	enum cfg_missing_cert missing_cert;
	enum cfg_mixed mixed;
	enum cfg_cipher cipher;
	enum cfg_rsa_padding rsa_padding;
	enum cfg_digest digest;
	enum cfg_sign_format sign_format;
	bool encrypt_to_sender;
	char *subject_tag;      /* "" disables the subject trigger */
	char *trigger_header;   /* "" disables the header trigger */
	enum cfg_on_error on_error;
	enum cfg_hprot header_protection;
	bool legacy_display;    /* RFC 9788 §2.1.2 legacy display element */
	/* Sender authorisation for personal signatures (sender.h); global
	 * only, never set by a policy rule. */
	char *sender_login_map;           /* path, or NULL */
	struct cidr *trusted_relays;
	size_t n_trusted_relays;
	enum cfg_unauthorised unauthorised_sender;
};

/* Bits of struct cfg_policy.set: which outbound keys a rule overrides. */
enum {
	CFG_SET_SIGN = 1 << 0,
	CFG_SET_ENCRYPT = 1 << 1,
	CFG_SET_MISSING_CERT = 1 << 2,
	CFG_SET_MIXED = 1 << 3,
	CFG_SET_CIPHER = 1 << 4,
	CFG_SET_RSA_PADDING = 1 << 5,
	CFG_SET_DIGEST = 1 << 6,
	CFG_SET_SIGN_FORMAT = 1 << 7,
	CFG_SET_ENCRYPT_TO_SENDER = 1 << 8,
	CFG_SET_ON_ERROR = 1 << 9,
	CFG_SET_HEADER_PROTECTION = 1 << 10,
	CFG_SET_LEGACY_DISPLAY = 1 << 11,
};

struct cfg_policy {
	char *recipient;        /* "addr@dom" or "@dom", lowercased; or NULL */
	char *sender;           /* likewise; exactly one of the two is set */
	unsigned set;           /* CFG_SET_* bits */
	struct cfg_outbound o;  /* only the fields named in set are meaningful */
	bool has_rev;           /* the rule has a revocation group: rev */
	struct cfg_revocation rev; /* unset members come from the global one */
	int line;
};

/* One LDAP directory to look recipients' certificates up in (discovery). */
struct cfg_ldap {
	char **domains;         /* "@partner.example" or "addr@dom", lowercased */
	size_t n_domains;
	char *uri;
	char *base;
	char *filter;           /* one %s: the escaped address */
	char *bind_dn;          /* NULL: anonymous */
	char *password_file;    /* the bind password: first line */
	int line;
};

struct config {
	char *file;                 /* the path it was loaded from */
	char *socket;
	unsigned socket_mode;
	char *user;                 /* NULL: no privilege change */
	char *pid_file;
	char *spool_dir;
	char *authserv_id;
	char **internal_domains;
	size_t n_internal_domains;
	struct cidr *internal_hosts;
	size_t n_internal_hosts;
	char **outbound_daemons;
	size_t n_outbound_daemons;
	enum cfg_backend cache_backend;
	char *cache_path;
	char *cache_conninfo;	 /* postgresql: libpq connection string */
	uint64_t cache_max_stale; /* seconds the local copy serves while the
				     database is down */
	char *cache_outbox_dir;	 /* writes waiting for the database */
	char *keys_dir;
	char *trust_ca_file;
	bool trust_allow_self_signed;
	struct cfg_outbound outbound;
	bool inbound_harvest;
	bool inbound_results_header;
	enum cfg_decrypt inbound_decrypt;
	struct cfg_policy *policy;
	size_t n_policy;
	uint64_t max_message_size;
	uint64_t spool_threshold;
	struct cfg_revocation revocation;
	uint64_t inbound_cpu_ms;        /* CPU budget of one inbound message */
	uint64_t max_signers;           /* SignerInfos, digestAlgorithms and */
	uint64_t max_digest_algorithms; /* certificates one signature may */
	uint64_t max_certs;             /* hold (counted before decoding) */
	bool log_debug;
	char *log_file;             /* NULL: syslog only; "-": stderr too */
	/* discovery (lib/discover.h) */
	uint64_t discovery_budget_ms;
	uint64_t discovery_negative_ttl;
	struct cfg_ldap *discovery_ldap;
	size_t n_discovery_ldap;
	bool smimea_enabled;
	char *smimea_resolver;
	char *smimea_trust_anchor_file;
	char *smimea_stub_zone;
	char *metrics_listen;       /* NULL: no metrics endpoint */
	char *metrics_token_file;   /* NULL: no bearer token asked */
	uint64_t warn_expiry_days;
	struct sender_map *sender_map; /* outbound.sender_login_map, read at load */

	int refs;                   /* atomically updated; see config_ref() */
};

/* Problems found while loading: one formatted line each. */
struct config_errors {
	char **msg;
	size_t n;
};

/* Load and validate. On success *out holds a configuration with one
 * reference. On failure returns SM_ERR_CONFIG (or SM_ERR_NOMEM/SM_ERR_IO),
 * *out is NULL and errs lists every problem ("FILE:LINE: key: text"). */
sm_status config_load(const char *path, struct config **out, struct config_errors *errs);
/* The built-in defaults, as if from an empty file (for tests). */
sm_status config_defaults(struct config **out);
struct config *config_ref(struct config *c);
void config_unref(struct config *c);
void config_errors_free(struct config_errors *errs);
/* The uid the daemon runs as: the configured user's, or the effective uid
 * when user is unset or unknown. Key files may belong to it (or root). */
uid_t config_daemon_uid(const struct config *cfg);
/* A socket as libmilter spells it: Postfix's inet:HOST:PORT becomes
 * inet:PORT@HOST (inet:[V6]:PORT becomes inet6:PORT@V6); anything else is
 * copied. SM_ERR_LIMIT when out is too small. */
sm_status config_socket_milter(const char *v, char *out, size_t len);

/* Schema introspection, for the man page check: NULL-terminated list of
 * every key path ("outbound.encrypt", "policy.recipient", …). */
const char *const *config_keys(void);

/* Names of enum values, for logs and smimectl. */
const char *config_encrypt_name(enum cfg_encrypt e);
const char *config_cipher_name(enum cfg_cipher c);
const char *config_decrypt_name(enum cfg_decrypt d);

/* The outbound settings for one sender/recipient pair: the first policy
 * rule that matches (recipient rules match rcpt, sender rules match sender;
 * exact address or @domain) applied over cfg->outbound. Addresses must be
 * normalised. *rule_line receives the rule's line, 0 when none matched. */
void config_outbound_for(const struct config *cfg, const char *sender,
    const char *rcpt, struct cfg_outbound *out, int *rule_line);

/* The revocation settings for a sender/recipient pair: the first
 * matching rule's (as config_outbound_for), else the global ones. */
const struct cfg_revocation *config_revocation_for(const struct config *cfg,
    const char *sender, const char *rcpt);
const char *config_rev_check_name(enum cfg_rev_check c);
/* Is revocation checked for anyone: the global check, or a rule's, is not
 * off? When not, nothing about revocation runs, is queued or logged. */
bool config_revocation_on(const struct config *cfg);
/* Where revocation results are kept: the cache path + ".revocation"
 * (malloc'd; NULL on allocation failure). */
char *config_revocation_store(const struct config *cfg);

/* Is the address in one of internal_domains? */
bool config_is_internal(const struct config *cfg, const char *addr);

/* What keycache_open wants for c's cache group: the backend's name
 * ("sqlite", "postgresql") and its target (cache.path or cache.conninfo). */
const char *config_cache_backend(const struct config *c);
const char *config_cache_target(const struct config *c);

#endif
