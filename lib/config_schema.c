/*
 * config_schema.c — the one schema table: every configuration key with its
 * type, default, bounds and value names (see config_int.h), and the list
 * of keys that check_manpage holds against smime-milter.conf(5) and the
 * sample file. Adding a key means one line here, its field in config.h and
 * its documentation.
 */
#include "config_int.h"

#include <pthread.h>
#include <stdio.h>

static const char *const encrypt_names[] = { "never", "opportunistic", "required", NULL };
static const char *const missing_names[] = { "reject", "tempfail", NULL };
static const char *const mixed_names[] = { "sign-only", "split", NULL };
static const char *const cipher_names[] = { "auto", "aes-128-cbc", "aes-256-cbc",
	"aes-128-gcm", "aes-256-gcm", NULL };
static const char *const padding_names[] = { "pkcs1", "oaep", NULL };
static const char *const digest_names[] = { "sha256", "sha384", "sha512", NULL };
static const char *const format_names[] = { "detached", "opaque", NULL };
static const char *const on_error_names[] = { "tempfail", "accept", NULL };
static const char *const decrypt_names[] = { "off", "harvest", "deliver", NULL };
static const char *const backend_names[] = { "sqlite", "postgresql", NULL };
static const char *const rev_check_names[] = { "off", "soft", "hard", NULL };
static const char *const unauth_names[] = { "reject", "unsigned", NULL };
static const char *const hprot_names[] = { "baseline", "off", "shy", NULL };

#define OUT(f) offsetof(struct cfg_outbound, f)
#define CFG(f) offsetof(struct config, f)
#define POL(f) offsetof(struct cfg_policy, f)

const struct schema config_outbound_schema[] = {
	{ "sign", T_BOOL, OUT(sign), "true", 0, 0, NULL, NULL, C_NONE, CFG_SET_SIGN, 0 },
	{ "encrypt", T_ENUM, OUT(encrypt), "opportunistic", 0, 0, encrypt_names, NULL, C_NONE, CFG_SET_ENCRYPT, 0 },
	{ "missing_cert", T_ENUM, OUT(missing_cert), "reject", 0, 0, missing_names, NULL, C_NONE, CFG_SET_MISSING_CERT, 0 },
	{ "mixed", T_ENUM, OUT(mixed), "sign-only", 0, 0, mixed_names, NULL, C_NONE, CFG_SET_MIXED, 0 },
	{ "cipher", T_ENUM, OUT(cipher), "auto", 0, 0, cipher_names, NULL, C_NONE, CFG_SET_CIPHER, 0 },
	{ "rsa_padding", T_ENUM, OUT(rsa_padding), "pkcs1", 0, 0, padding_names, NULL, C_NONE, CFG_SET_RSA_PADDING, 0 },
	{ "digest", T_ENUM, OUT(digest), "sha256", 0, 0, digest_names, NULL, C_NONE, CFG_SET_DIGEST, 0 },
	{ "sign_format", T_ENUM, OUT(sign_format), "detached", 0, 0, format_names, NULL, C_NONE, CFG_SET_SIGN_FORMAT, 0 },
	{ "encrypt_to_sender", T_BOOL, OUT(encrypt_to_sender), "true", 0, 0, NULL, NULL, C_NONE, CFG_SET_ENCRYPT_TO_SENDER, 0 },
	{ "subject_tag", T_STR, OUT(subject_tag), "[encrypt]", 0, 0, NULL, NULL, C_NONE, 0, 0 },
	{ "trigger_header", T_STR, OUT(trigger_header), "X-Encrypt", 0, 0, NULL, NULL, C_HEADER_NAME, 0, 0 },
	{ "on_error", T_ENUM, OUT(on_error), "tempfail", 0, 0, on_error_names, NULL, C_NONE, CFG_SET_ON_ERROR, 0 },
	{ "header_protection", T_ENUM, OUT(header_protection), "baseline", 0, 0, hprot_names, NULL, C_NONE, CFG_SET_HEADER_PROTECTION, 0 },
	{ "legacy_display", T_BOOL, OUT(legacy_display), "false", 0, 0, NULL, NULL, C_NONE, CFG_SET_LEGACY_DISPLAY, 0 },
	{ "sender_login_map", T_STR, OUT(sender_login_map), NULL, 0, 0, NULL, NULL, C_NONEMPTY, 0, 0 },
	{ "trusted_relays", T_STRLIST, OUT(trusted_relays), "", 0, 0, NULL, NULL, C_CIDRS, 0, OUT(n_trusted_relays) },
	{ "unauthorised_sender", T_ENUM, OUT(unauthorised_sender), "reject", 0, 0, unauth_names, NULL, C_NONE, 0, 0 },
	{ NULL, 0, 0, NULL, 0, 0, NULL, NULL, 0, 0, 0 },
};

const struct schema config_policy_schema[] = {
	{ "recipient", T_STR, POL(recipient), NULL, 0, 0, NULL, NULL, C_RULE_ADDR, 0, 0 },
	{ "sender", T_STR, POL(sender), NULL, 0, 0, NULL, NULL, C_RULE_ADDR, 0, 0 },
	{ NULL, 0, 0, NULL, 0, 0, NULL, NULL, 0, 0, 0 },
};

static const struct schema cache_schema[] = {
	{ "backend", T_ENUM, CFG(cache_backend), "sqlite", 0, 0, backend_names, NULL, C_NONE, 0, 0 },
	{ "path", T_STR, CFG(cache_path), "/var/lib/smime-milter/cache.db", 0, 0, NULL, NULL, C_NONEMPTY, 0, 0 },
	{ "conninfo", T_STR, CFG(cache_conninfo), NULL, 0, 0, NULL, NULL, C_CONNINFO, 0, 0 },
	{ "max_stale", T_INT, CFG(cache_max_stale), "3600", 0, 7 * 86400, NULL, NULL, C_NONE, 0, 0 },
	{ "outbox_dir", T_STR, CFG(cache_outbox_dir), "/var/lib/smime-milter/outbox", 0, 0, NULL, NULL, C_NONEMPTY, 0, 0 },
	{ NULL, 0, 0, NULL, 0, 0, NULL, NULL, 0, 0, 0 },
};

static const struct schema trust_schema[] = {
	{ "ca_file", T_STR, CFG(trust_ca_file), "/etc/ssl/certs/ca-certificates.crt", 0, 0, NULL, NULL, C_FILE_EXISTS, 0, 0 },
	{ "allow_self_signed", T_BOOL, CFG(trust_allow_self_signed), "false", 0, 0, NULL, NULL, C_NONE, 0, 0 },
	{ NULL, 0, 0, NULL, 0, 0, NULL, NULL, 0, 0, 0 },
};

static const struct schema inbound_schema[] = {
	{ "harvest", T_BOOL, CFG(inbound_harvest), "true", 0, 0, NULL, NULL, C_NONE, 0, 0 },
	{ "results_header", T_BOOL, CFG(inbound_results_header), "true", 0, 0, NULL, NULL, C_NONE, 0, 0 },
	{ "decrypt", T_ENUM, CFG(inbound_decrypt), "harvest", 0, 0, decrypt_names, NULL, C_NONE, 0, 0 },
	{ NULL, 0, 0, NULL, 0, 0, NULL, NULL, 0, 0, 0 },
};

#define LDAP(f) offsetof(struct cfg_ldap, f)
const struct schema config_ldap_schema[] = {
	{ "domains", T_STRLIST, LDAP(domains), NULL, 0, 0, NULL, NULL, C_RULE_ADDR, 0, LDAP(n_domains) },
	{ "uri", T_STR, LDAP(uri), NULL, 0, 0, NULL, NULL, C_NONEMPTY, 0, 0 },
	{ "base", T_STR, LDAP(base), "", 0, 0, NULL, NULL, C_NONE, 0, 0 },
	{ "filter", T_STR, LDAP(filter), "(mail=%s)", 0, 0, NULL, NULL, C_LDAP_FILTER, 0, 0 },
	{ "bind_dn", T_STR, LDAP(bind_dn), NULL, 0, 0, NULL, NULL, C_NONEMPTY, 0, 0 },
	{ "password_file", T_STR, LDAP(password_file), NULL, 0, 0, NULL, NULL, C_NONEMPTY, 0, 0 },
	{ NULL, 0, 0, NULL, 0, 0, NULL, NULL, 0, 0, 0 },
};

static const struct schema smimea_schema[] = {
	{ "enabled", T_BOOL, CFG(smimea_enabled), "false", 0, 0, NULL, NULL, C_NONE, 0, 0 },
	{ "resolver", T_STR, CFG(smimea_resolver), "127.0.0.1", 0, 0, NULL, NULL, C_NONEMPTY, 0, 0 },
	{ "trust_anchor_file", T_STR, CFG(smimea_trust_anchor_file), "/usr/share/dns/root.key", 0, 0, NULL, NULL, C_NONEMPTY, 0, 0 },
	{ "stub_zone", T_STR, CFG(smimea_stub_zone), NULL, 0, 0, NULL, NULL, C_NONEMPTY, 0, 0 },
	{ NULL, 0, 0, NULL, 0, 0, NULL, NULL, 0, 0, 0 },
};

static const struct schema discovery_schema[] = {
	{ "budget_ms", T_INT, CFG(discovery_budget_ms), "300", 10, 60000, NULL, NULL, C_NONE, 0, 0 },
	{ "negative_ttl", T_INT, CFG(discovery_negative_ttl), "3600", 0, 7 * 86400, NULL, NULL, C_NONE, 0, 0 },
	{ "ldap", T_LIST, CFG(discovery_ldap), NULL, 0, (long long)sizeof(struct cfg_ldap), NULL, config_ldap_schema, C_NONE, 0, CFG(n_discovery_ldap) },
	{ "smimea", T_GROUP, 0, NULL, 0, 0, NULL, smimea_schema, C_NONE, 0, 0 },
	{ NULL, 0, 0, NULL, 0, 0, NULL, NULL, 0, 0, 0 },
};

#define REV(f) offsetof(struct cfg_revocation, f)
const struct schema config_revocation_schema[] = {
	{ "check", T_ENUM, REV(check), "soft", 0, 0, rev_check_names, NULL, C_NONE, 0, 0 },
	{ "grace_days", T_INT, REV(grace_days), "3", 0, 3650, NULL, NULL, C_NONE, 0, 0 },
	{ "timeout_ms", T_INT, REV(timeout_ms), "2000", 100, 60000, NULL, NULL, C_NONE, 0, 0 },
	{ "proxy", T_STR, REV(proxy), NULL, 0, 0, NULL, NULL, C_NONEMPTY, 0, 0 },
	{ NULL, 0, 0, NULL, 0, 0, NULL, NULL, 0, 0, 0 },
};

#define MIB (1024LL * 1024)
static const struct schema limits_schema[] = {
	{ "max_message_size", T_INT, CFG(max_message_size), "52428800", 64 * 1024, 2048 * MIB, NULL, NULL, C_NONE, 0, 0 },
	{ "spool_threshold", T_INT, CFG(spool_threshold), "1048576", 4096, 2048 * MIB, NULL, NULL, C_NONE, 0, 0 },
	{ "inbound_cpu_ms", T_INT, CFG(inbound_cpu_ms), "2000", 10, 600000, NULL, NULL, C_NONE, 0, 0 },
	{ "max_signers", T_INT, CFG(max_signers), "4", 1, 64, NULL, NULL, C_NONE, 0, 0 },
	{ "max_certs", T_INT, CFG(max_certs), "50", 1, 1000, NULL, NULL, C_NONE, 0, 0 },
	{ "max_digest_algorithms", T_INT, CFG(max_digest_algorithms), "16", 1, 256, NULL, NULL, C_NONE, 0, 0 },
	{ NULL, 0, 0, NULL, 0, 0, NULL, NULL, 0, 0, 0 },
};

static const struct schema metrics_schema[] = {
	{ "listen", T_STR, CFG(metrics_listen), NULL, 0, 0, NULL, NULL, C_SOCKET, 0, 0 },
	{ "token_file", T_STR, CFG(metrics_token_file), NULL, 0, 0, NULL, NULL, C_NONEMPTY, 0, 0 },
	{ NULL, 0, 0, NULL, 0, 0, NULL, NULL, 0, 0, 0 },
};

const struct schema config_top_schema[] = {
	{ "socket", T_STR, CFG(socket), "inet:8894@127.0.0.1", 0, 0, NULL, NULL, C_SOCKET, 0, 0 },
	{ "socket_mode", T_MODE, CFG(socket_mode), "0660", 0, 0777, NULL, NULL, C_NONE, 0, 0 },
	{ "user", T_STR, CFG(user), NULL, 0, 0, NULL, NULL, C_NONEMPTY, 0, 0 },
	{ "pid_file", T_STR, CFG(pid_file), "/run/smime-milter/smime-milter.pid", 0, 0, NULL, NULL, C_NONEMPTY, 0, 0 },
	{ "spool_dir", T_STR, CFG(spool_dir), "/var/lib/smime-milter/spool", 0, 0, NULL, NULL, C_NONEMPTY, 0, 0 },
	{ "authserv_id", T_STR, CFG(authserv_id), NULL, 0, 0, NULL, NULL, C_AUTHSERV, 0, 0 },
	{ "internal_domains", T_STRLIST, CFG(internal_domains), "", 0, 0, NULL, NULL, C_DOMAINS, 0, CFG(n_internal_domains) },
	{ "internal_hosts", T_STRLIST, CFG(internal_hosts), "127.0.0.0/8,::1", 0, 0, NULL, NULL, C_CIDRS, 0, CFG(n_internal_hosts) },
	{ "outbound_daemons", T_STRLIST, CFG(outbound_daemons), "ORIGINATING", 0, 0, NULL, NULL, C_NONEMPTY, 0, CFG(n_outbound_daemons) },
	{ "cache", T_GROUP, 0, NULL, 0, 0, NULL, cache_schema, C_NONE, 0, 0 },
	{ "keys_dir", T_STR, CFG(keys_dir), "/etc/smime-milter/keys", 0, 0, NULL, NULL, C_NONEMPTY, 0, 0 },
	{ "trust", T_GROUP, 0, NULL, 0, 0, NULL, trust_schema, C_NONE, 0, 0 },
	{ "outbound", T_GROUP, CFG(outbound), NULL, 0, 0, NULL, config_outbound_schema, C_NONE, 0, 0 },
	{ "inbound", T_GROUP, 0, NULL, 0, 0, NULL, inbound_schema, C_NONE, 0, 0 },
	{ "policy", T_POLICY, 0, NULL, 0, 0, NULL, config_policy_schema, C_NONE, 0, 0 },
	{ "limits", T_GROUP, 0, NULL, 0, 0, NULL, limits_schema, C_NONE, 0, 0 },
	{ "revocation", T_GROUP, CFG(revocation), NULL, 0, 0, NULL, config_revocation_schema, C_NONE, 0, 0 },
	{ "log_debug", T_BOOL, CFG(log_debug), "false", 0, 0, NULL, NULL, C_NONE, 0, 0 },
	{ "log_file", T_STR, CFG(log_file), NULL, 0, 0, NULL, NULL, C_NONEMPTY, 0, 0 },
	{ "discovery", T_GROUP, 0, NULL, 0, 0, NULL, discovery_schema, C_NONE, 0, 0 },
	{ "metrics", T_GROUP, 0, NULL, 0, 0, NULL, metrics_schema, C_NONE, 0, 0 },
	{ "warn_expiry_days", T_INT, CFG(warn_expiry_days), "30", 0, 3650, NULL, NULL, C_NONE, 0, 0 },
	{ NULL, 0, 0, NULL, 0, 0, NULL, NULL, 0, 0, 0 },
};

static void
keys_collect(const struct schema *tab, const char *prefix, const char **out, size_t *n)
{
	static char names[128][48];

	for (; tab->name; tab++) {
		if (tab->type == T_GROUP || tab->type == T_POLICY || tab->type == T_LIST) {
			char sub[48];

			if (*prefix)
				snprintf(sub, sizeof(sub), "%s.%s", prefix, tab->name);
			else
				snprintf(sub, sizeof(sub), "%s", tab->name);
			keys_collect(tab->sub, sub, out, n);
			if (tab->type == T_POLICY)
				for (const struct schema *o = config_outbound_schema; o->name; o++)
					if (o->setbit && *n < 127) {
						snprintf(names[*n], sizeof(names[0]), "policy.%s", o->name);
						out[*n] = names[*n];
						(*n)++;
					}
			if (tab->type == T_POLICY && *n < 127) {
				snprintf(names[*n], sizeof(names[0]), "policy.revocation");
				out[*n] = names[*n];
				(*n)++;
			}
			continue;
		}
		if (*n >= 127)
			return;
		if (*prefix)
			snprintf(names[*n], sizeof(names[0]), "%s.%s", prefix, tab->name);
		else
			snprintf(names[*n], sizeof(names[0]), "%s", tab->name);
		out[*n] = names[*n];
		(*n)++;
	}
}

static const char *config_key_list[128];

static void
config_keys_init(void)
{
	size_t n = 0;

	keys_collect(config_top_schema, "", config_key_list, &n);
	config_key_list[n] = NULL;
}

const char *const *
config_keys(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, config_keys_init);
	return config_key_list;
}

const char *
config_encrypt_name(enum cfg_encrypt e)
{
	return encrypt_names[e];
}

const char *
config_cipher_name(enum cfg_cipher c)
{
	return cipher_names[c];
}

const char *
config_decrypt_name(enum cfg_decrypt d)
{
	return decrypt_names[d];
}

const char *
config_rev_check_name(enum cfg_rev_check c)
{
	return rev_check_names[c];
}

const char *
config_cache_backend(const struct config *c)
{
	return backend_names[c->cache_backend];
}
