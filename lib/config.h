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
enum cfg_backend { CFG_BACKEND_SQLITE };

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
};

struct cfg_policy {
	char *recipient;        /* "addr@dom" or "@dom", lowercased; or NULL */
	char *sender;           /* likewise; exactly one of the two is set */
	unsigned set;           /* CFG_SET_* bits */
	struct cfg_outbound o;  /* only the fields named in set are meaningful */
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
	bool log_debug;
	char *log_file;             /* NULL: syslog only; "-": stderr too */

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

/* Is the address in one of internal_domains? */
bool config_is_internal(const struct config *cfg, const char *addr);

#endif
