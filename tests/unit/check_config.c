/*
 * check_config.c — the configuration schema: defaults, every enum, bad
 * values with their exact FILE:LINE messages, policy rules.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "testutil.h"

static char *tmpdir;

static void
setup(void)
{
	tmpdir = testutil_tmpdir();
	ck_assert_ptr_nonnull(tmpdir);
}

static void
teardown(void)
{
	testutil_rmtree(tmpdir);
	free(tmpdir);
}

/* Write text to DIR/t.conf and return the path (static). */
static const char *
write_conf(const char *text)
{
	static char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/t.conf", tmpdir);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
	return path;
}

/* Load text; return the joined error lines with the path replaced by "F". */
static char *
load_errors(const char *text, struct config **cfg_out)
{
	const char *path = write_conf(text);
	struct config_errors errs = { NULL, 0 };
	struct config *cfg = NULL;
	char *out = calloc(1, 8192);
	size_t plen = strlen(path);

	config_load(path, &cfg, &errs);
	for (size_t i = 0; i < errs.n; i++) {
		const char *m = errs.msg[i];
		if (strncmp(m, path, plen) == 0) {
			strcat(out, "F");
			m += plen;
		}
		strcat(out, m);
		strcat(out, "\n");
	}
	config_errors_free(&errs);
	if (cfg_out)
		*cfg_out = cfg;
	else
		config_unref(cfg);
	return out;
}

START_TEST(the_defaults_match_the_design)
{
	struct config *c = NULL;

	ck_assert_int_eq(config_defaults(&c), SM_OK);
	ck_assert_str_eq(c->socket, "inet:8894@127.0.0.1");
	ck_assert_uint_eq(c->socket_mode, 0660);
	ck_assert_ptr_null(c->user);
	ck_assert_uint_eq(c->n_internal_domains, 0);
	ck_assert_uint_eq(c->n_internal_hosts, 2);
	ck_assert_uint_eq(c->n_outbound_daemons, 1);
	ck_assert_str_eq(c->outbound_daemons[0], "ORIGINATING");
	ck_assert_int_eq(c->cache_backend, CFG_BACKEND_SQLITE);
	ck_assert_str_eq(c->cache_path, "/var/lib/smime-milter/cache.db");
	ck_assert_str_eq(c->keys_dir, "/etc/smime-milter/keys");
	ck_assert_str_eq(c->trust_ca_file, "/etc/ssl/certs/ca-certificates.crt");
	ck_assert(!c->trust_allow_self_signed);
	ck_assert(c->outbound.sign);
	ck_assert_int_eq(c->outbound.encrypt, CFG_ENCRYPT_OPPORTUNISTIC);
	ck_assert_int_eq(c->outbound.missing_cert, CFG_MISSING_REJECT);
	ck_assert_int_eq(c->outbound.mixed, CFG_MIXED_SIGN_ONLY);
	ck_assert_int_eq(c->outbound.cipher, CFG_CIPHER_AUTO);
	ck_assert_int_eq(c->outbound.rsa_padding, CFG_PADDING_PKCS1);
	ck_assert_int_eq(c->outbound.digest, CFG_DIGEST_SHA256);
	ck_assert_int_eq(c->outbound.sign_format, CFG_SIGN_DETACHED);
	ck_assert(c->outbound.encrypt_to_sender);
	ck_assert_str_eq(c->outbound.subject_tag, "[encrypt]");
	ck_assert_str_eq(c->outbound.trigger_header, "X-Encrypt");
	ck_assert_int_eq(c->outbound.on_error, CFG_ON_ERROR_TEMPFAIL);
	ck_assert(c->inbound_harvest);
	ck_assert(c->inbound_results_header);
	ck_assert_int_eq(c->inbound_decrypt, CFG_DECRYPT_HARVEST);
	ck_assert_uint_eq(c->n_policy, 0);
	ck_assert_uint_eq(c->max_message_size, 52428800);
	ck_assert_uint_eq(c->inbound_cpu_ms, 2000);
	ck_assert_uint_eq(c->max_signers, 4);
	ck_assert_uint_eq(c->max_certs, 50);
	ck_assert_uint_eq(c->max_digest_algorithms, 16);
	ck_assert_uint_eq(c->spool_threshold, 1048576);
	ck_assert_ptr_nonnull(c->authserv_id);
	config_unref(c);
}
END_TEST

START_TEST(the_sample_configuration_loads)
{
	struct config *c = NULL;
	struct config_errors errs = { NULL, 0 };
	sm_status st = config_load(testutil_path("conf/smime-milter.conf"), &c, &errs);

	ck_assert_msg(st == SM_OK, "got %s (%s), want ok", sm_strstatus(st),
	    errs.n ? errs.msg[0] : "");
	ck_assert_str_eq(c->authserv_id, "mx.org.example");
	ck_assert_uint_eq(c->n_internal_domains, 1);
	ck_assert_str_eq(c->internal_domains[0], "org.example");
	ck_assert_uint_eq(c->n_policy, 2);
	ck_assert_str_eq(c->policy[0].recipient, "@partner.example");
	ck_assert_int_eq(c->policy[0].o.encrypt, CFG_ENCRYPT_REQUIRED);
	ck_assert_str_eq(c->policy[1].sender, "noreply@org.example");
	ck_assert(!c->policy[1].o.sign);
	config_unref(c);
	config_errors_free(&errs);
}
END_TEST

/* Every value of every enum is accepted and lands in the struct. */
static const struct enum_case {
	const char *text;
	size_t off;
	int want;
} enum_cases[] = {
#define O(f) offsetof(struct config, outbound) + offsetof(struct cfg_outbound, f)
	{ "outbound = { encrypt = \"never\"; };", O(encrypt), CFG_ENCRYPT_NEVER },
	{ "outbound = { encrypt = \"opportunistic\"; };", O(encrypt), CFG_ENCRYPT_OPPORTUNISTIC },
	{ "outbound = { encrypt = \"required\"; };", O(encrypt), CFG_ENCRYPT_REQUIRED },
	{ "outbound = { missing_cert = \"reject\"; };", O(missing_cert), CFG_MISSING_REJECT },
	{ "outbound = { missing_cert = \"tempfail\"; };", O(missing_cert), CFG_MISSING_TEMPFAIL },
	{ "outbound = { mixed = \"sign-only\"; };", O(mixed), CFG_MIXED_SIGN_ONLY },
	{ "outbound = { mixed = \"split\"; };", O(mixed), CFG_MIXED_SPLIT },
	{ "outbound = { cipher = \"auto\"; };", O(cipher), CFG_CIPHER_AUTO },
	{ "outbound = { cipher = \"aes-128-cbc\"; };", O(cipher), CFG_CIPHER_AES128_CBC },
	{ "outbound = { cipher = \"aes-256-cbc\"; };", O(cipher), CFG_CIPHER_AES256_CBC },
	{ "outbound = { cipher = \"aes-128-gcm\"; };", O(cipher), CFG_CIPHER_AES128_GCM },
	{ "outbound = { cipher = \"aes-256-gcm\"; };", O(cipher), CFG_CIPHER_AES256_GCM },
	{ "outbound = { rsa_padding = \"pkcs1\"; };", O(rsa_padding), CFG_PADDING_PKCS1 },
	{ "outbound = { rsa_padding = \"oaep\"; };", O(rsa_padding), CFG_PADDING_OAEP },
	{ "outbound = { digest = \"sha256\"; };", O(digest), CFG_DIGEST_SHA256 },
	{ "outbound = { digest = \"sha384\"; };", O(digest), CFG_DIGEST_SHA384 },
	{ "outbound = { digest = \"sha512\"; };", O(digest), CFG_DIGEST_SHA512 },
	{ "outbound = { sign_format = \"detached\"; };", O(sign_format), CFG_SIGN_DETACHED },
	{ "outbound = { sign_format = \"opaque\"; };", O(sign_format), CFG_SIGN_OPAQUE },
	{ "outbound = { on_error = \"tempfail\"; };", O(on_error), CFG_ON_ERROR_TEMPFAIL },
	{ "outbound = { on_error = \"accept\"; };", O(on_error), CFG_ON_ERROR_ACCEPT },
	{ "inbound = { decrypt = \"off\"; };", offsetof(struct config, inbound_decrypt), CFG_DECRYPT_OFF },
	{ "inbound = { decrypt = \"harvest\"; };", offsetof(struct config, inbound_decrypt), CFG_DECRYPT_HARVEST },
	{ "inbound = { decrypt = \"deliver\"; };", offsetof(struct config, inbound_decrypt), CFG_DECRYPT_DELIVER },
	{ "cache = { backend = \"sqlite\"; };", offsetof(struct config, cache_backend), CFG_BACKEND_SQLITE },
#undef O
};

START_TEST(every_enum_value_is_accepted)
{
	const struct enum_case *tc = &enum_cases[_i];
	struct config *c = NULL;
	char text[512];
	char *errs;

	snprintf(text, sizeof(text), "trust = { ca_file = \"%s\"; };\n%s\n",
	    testutil_path("conf/smime-milter.conf"), tc->text);
	errs = load_errors(text, &c);
	ck_assert_msg(c != NULL, "%s: got errors %s, want none", tc->text, errs);
	ck_assert_msg(*(int *)((char *)c + tc->off) == tc->want, "%s: got %d, want %d", tc->text,
	    *(int *)((char *)c + tc->off), tc->want);
	config_unref(c);
	free(errs);
}
END_TEST

/* Bad files and the exact messages they produce (F = the file's path). */
static const struct bad_case {
	const char *text;
	const char *want;
} bad_cases[] = {
	{ "\noutbound = {\n  encrypt = \"always\";\n};\n",
	  "F:3: outbound.encrypt: expected one of never, opportunistic, required; got \"always\"\n" },
	{ "outbound = { mixed = 1; };\n",
	  "F:1: outbound.mixed: expected one of sign-only, split; got a number\n" },
	{ "outbound = { missing_cert = \"bounce\"; };\n",
	  "F:1: outbound.missing_cert: expected one of reject, tempfail; got \"bounce\"\n" },
	{ "outbound = { cipher = \"des-ede3-cbc\"; };\n",
	  "F:1: outbound.cipher: expected one of auto, aes-128-cbc, aes-256-cbc, aes-128-gcm, aes-256-gcm; got \"des-ede3-cbc\"\n" },
	{ "outbound = { on_error = \"drop\"; };\n",
	  "F:1: outbound.on_error: expected one of tempfail, accept; got \"drop\"\n" },
	{ "inbound = { decrypt = true; };\n",
	  "F:1: inbound.decrypt: expected one of off, harvest, deliver; got a boolean\n" },
	{ "outbound = { sign = \"yes\"; };\n",
	  "F:1: outbound.sign: expected true or false; got a string\n" },
	{ "sockett = \"inet:1@localhost\";\n",
	  "F:1: sockett: unknown key\n" },
	{ "outbound = {\n sign = true;\n encrpyt = \"never\";\n};\n",
	  "F:3: outbound.encrpyt: unknown key\n" },
	{ "socket = \"tcp:25\";\n",
	  "F:1: socket: expected inet:PORT@HOST, inet6:PORT@HOST or unix:PATH; got \"tcp:25\"\n" },
	{ "socket = \"inet:0@127.0.0.1\";\n",
	  "F:1: socket: port must be a number from 1 to 65535; got \"inet:0@127.0.0.1\"\n" },
	{ "socket = \"unix:relative.sock\";\n",
	  "F:1: socket: expected an absolute path after unix:; got \"unix:relative.sock\"\n" },
	{ "metrics = { listen = \"http://127.0.0.1:9469\"; };\n",
	  "F:1: metrics.listen: expected inet:PORT@HOST, inet6:PORT@HOST or unix:PATH; got \"http://127.0.0.1:9469\"\n" },
	{ "metrics = { token_file = \"\"; };\n",
	  "F:1: metrics.token_file: must not be empty; got \"\"\n" },
	{ "warn_expiry_days = -1;\n",
	  "F:1: warn_expiry_days: expected a number from 0 to 3650; got -1\n" },
	{ "socket_mode = \"0999\";\n",
	  "F:1: socket_mode: expected an octal mode from \"0000\" to \"0777\"; got \"0999\"\n" },
	{ "socket_mode = 660;\n",
	  "F:1: socket_mode: expected an octal mode as a string such as \"0660\"; got a number\n" },
	{ "authserv_id = \"mx example\";\n",
	  "F:1: authserv_id: must be a host name (no spaces, semicolons or parentheses); got \"mx example\"\n" },
	{ "internal_domains = [ \"org..example\" ];\n",
	  "F:1: internal_domains: not a valid domain name; got \"org..example\"\n" },
	{ "internal_domains = \"org.example\";\n",
	  "F:1: internal_domains: expected a list of strings [ \"…\", … ]; got a string\n" },
	{ "internal_hosts = [ \"10.0.0.0/33\" ];\n",
	  "F:1: internal_hosts: expected an IPv4 or IPv6 address or network (192.0.2.0/24, 2001:db8::/32); got \"10.0.0.0/33\"\n" },
	{ "internal_hosts = [ \"2001:db8::/129\" ];\n",
	  "F:1: internal_hosts: expected an IPv4 or IPv6 address or network (192.0.2.0/24, 2001:db8::/32); got \"2001:db8::/129\"\n" },
	{ "internal_hosts = [ \"localhost\" ];\n",
	  "F:1: internal_hosts: expected an IPv4 or IPv6 address or network (192.0.2.0/24, 2001:db8::/32); got \"localhost\"\n" },
	{ "limits = { max_message_size = 100; };\n",
	  "F:1: limits.max_message_size: expected a number from 65536 to 2147483648; got 100\n" },
	{ "limits = { max_signers = 0; };\n",
	  "F:1: limits.max_signers: expected a number from 1 to 64; got 0\n" },
	{ "limits = { inbound_cpu_ms = 5; };\n",
	  "F:1: limits.inbound_cpu_ms: expected a number from 10 to 600000; got 5\n" },
	{ "limits = { max_message_size = 1048576; spool_threshold = 2097152; };\n",
	  "F:1: limits.spool_threshold: must not exceed limits.max_message_size (1048576)\n" },
	{ "trust = { ca_file = \"/nonexistent/ca.pem\"; };\n",
	  "F:1: trust.ca_file: cannot open \"/nonexistent/ca.pem\": No such file or directory; got \"/nonexistent/ca.pem\"\n" },
	{ "cache = { backend = \"mysql\"; };\n",
	  "F:1: cache.backend: expected one of sqlite, postgresql; got \"mysql\"\n" },
	{ "cache = { backend = \"postgresql\"; };\n",
	  "F:1: cache.conninfo: must be set when cache.backend is \"postgresql\"\n" },
	{ "cache = { backend = \"postgresql\"; conninfo = \"host=db1 bogus=1\"; };\n",
	  "F:1: cache.conninfo: invalid connection option \"bogus\"; got \"host=db1 bogus=1\"\n" },
	{ "cache = { backend = \"postgresql\"; conninfo = \"host='db1\"; };\n",
	  "F:1: cache.conninfo: unterminated quoted string in connection info string; got \"host='db1\"\n" },
	{ "cache = { max_stale = -1; };\n",
	  "F:1: cache.max_stale: expected a number from 0 to 604800; got -1\n" },
	{ "policy = ( { recipient = \"bob@\"; } );\n",
	  "F:1: policy[1].recipient: expected an address or @domain; got \"bob@\"\n" },
	{ "policy = (\n { recipient = \"@partner.example\"; },\n { encrypt = \"required\"; }\n);\n",
	  "F:3: policy[2]: a rule needs exactly one of recipient or sender\n" },
	{ "policy = ( { recipient = \"@x.example\"; sender = \"a@org.example\"; } );\n",
	  "F:1: policy[1]: a rule needs exactly one of recipient or sender\n" },
	{ "policy = ( { recipient = \"@x.example\"; encrypt = \"maybe\"; } );\n",
	  "F:1: policy[1].encrypt: expected one of never, opportunistic, required; got \"maybe\"\n" },
	{ "policy = ( { recipient = \"@x.example\"; subject_tag = \"[x]\"; } );\n",
	  "F:1: policy[1].subject_tag: unknown key\n" },
	{ "policy = { recipient = \"@x.example\"; };\n",
	  "F:1: policy: expected a list of rules ( { … }, … ); got a group\n" },
	{ "outbound = { trigger_header = \"X Encrypt\"; };\n",
	  "F:1: outbound.trigger_header: not a valid header field name; got \"X Encrypt\"\n" },
	{ "\noutbound = { encrypt = ; };\n",
	  "F:2: syntax: syntax error\n" },
	/* several problems are all reported, in file order */
	{ "socket = \"x\";\nuser = \"\";\noutbound = { digest = \"md5\"; };\n",
	  "F:1: socket: expected inet:PORT@HOST, inet6:PORT@HOST or unix:PATH; got \"x\"\n"
	  "F:2: user: must not be empty; got \"\"\n"
	  "F:3: outbound.digest: expected one of sha256, sha384, sha512; got \"md5\"\n" },
};

START_TEST(bad_values_are_reported_with_file_and_line)
{
	const struct bad_case *tc = &bad_cases[_i];
	struct config *c = NULL;
	char *got = load_errors(tc->text, &c);

	ck_assert_msg(c == NULL, "case %d: got a configuration, want a failure", _i);
	ck_assert_msg(strcmp(got, tc->want) == 0, "case %d:\ngot:  %swant: %s", _i, got, tc->want);
	free(got);
}
END_TEST

START_TEST(a_missing_file_is_an_error)
{
	struct config *c = NULL;
	struct config_errors errs = { NULL, 0 };

	ck_assert_int_eq(config_load("/nonexistent/smime-milter.conf", &c, &errs), SM_ERR_IO);
	ck_assert_ptr_null(c);
	ck_assert_uint_eq(errs.n, 1);
	ck_assert_str_eq(errs.msg[0],
	    "/nonexistent/smime-milter.conf: file: cannot open: No such file or directory");
	config_errors_free(&errs);
}
END_TEST

START_TEST(policy_rules_match_first_by_address_or_domain)
{
	struct config *c = NULL;
	struct cfg_outbound o;
	int line;
	char *errs = load_errors(
	    "outbound = { encrypt = \"opportunistic\"; };\n"
	    "policy = (\n"
	    "  { recipient = \"Carol@Partner.Example\"; encrypt = \"never\"; },\n"
	    "  { recipient = \"@partner.example\"; encrypt = \"required\"; cipher = \"aes-128-cbc\"; },\n"
	    "  { sender = \"noreply@org.example\"; sign = false; },\n"
	    "  { recipient = \"@partner.example\"; encrypt = \"never\"; }\n"
	    ");\n", &c);

	ck_assert_msg(c != NULL, "got errors %s", errs);
	config_outbound_for(c, "alice@org.example", "carol@partner.example", &o, &line);
	ck_assert_int_eq(o.encrypt, CFG_ENCRYPT_NEVER);
	ck_assert_int_eq(line, 3);
	config_outbound_for(c, "alice@org.example", "bob@partner.example", &o, &line);
	ck_assert_int_eq(o.encrypt, CFG_ENCRYPT_REQUIRED);
	ck_assert_int_eq(o.cipher, CFG_CIPHER_AES128_CBC);
	ck_assert(o.sign);
	ck_assert_int_eq(line, 4);
	config_outbound_for(c, "alice@org.example", "bob@sub.partner.example", &o, &line);
	ck_assert_int_eq(o.encrypt, CFG_ENCRYPT_OPPORTUNISTIC);
	ck_assert_int_eq(line, 0);
	config_outbound_for(c, "noreply@org.example", "x@other.example", &o, &line);
	ck_assert(!o.sign);
	ck_assert_int_eq(o.encrypt, CFG_ENCRYPT_OPPORTUNISTIC);
	ck_assert_int_eq(line, 5);
	ck_assert(config_is_internal(c, "alice@org.example") == false); /* no internal_domains */
	config_unref(c);
	free(errs);
}
END_TEST

START_TEST(a_rule_revocation_group_inherits_what_it_leaves_out)
{
	struct config *c = NULL;
	const struct cfg_revocation *r;
	char *errs = load_errors(
	    "policy = (\n"
	    "  { recipient = \"@partner.example\"; revocation = { check = \"hard\"; }; },\n"
	    "  { recipient = \"@other.example\"; encrypt = \"required\"; }\n"
	    ");\n"
	    "revocation = { grace_days = 5; timeout_ms = 900; proxy = \"http://127.0.0.1:3128\"; };\n",
	    &c);

	ck_assert_msg(c != NULL, "got errors %s", errs);
	r = config_revocation_for(c, "alice@org.example", "bob@partner.example");
	ck_assert_int_eq(r->check, CFG_REV_HARD);
	ck_assert_int_eq(r->grace_days, 5);  /* the global group came later in the file */
	ck_assert_int_eq(r->timeout_ms, 900);
	ck_assert_str_eq(r->proxy, "http://127.0.0.1:3128");
	/* A matching rule without a group, and no rule: the global group. */
	ck_assert_ptr_eq(config_revocation_for(c, "alice@org.example", "x@other.example"), &c->revocation);
	ck_assert_ptr_eq(config_revocation_for(c, "alice@org.example", "x@third.example"), &c->revocation);
	ck_assert_int_eq(c->revocation.check, CFG_REV_SOFT);
	config_unref(c);
	free(errs);
	errs = load_errors("policy = ( { recipient = \"@p.example\"; revocation = { check = \"strict\"; grace = 1; }; } );\n",
	    NULL);
	ck_assert_str_eq(errs,
	    "F:1: policy[1].revocation.check: expected one of off, soft, hard; got \"strict\"\n"
	    "F:1: policy[1].revocation.grace: unknown key\n");
	free(errs);
}
END_TEST

START_TEST(revocation_is_on_when_the_global_check_or_a_rule_s_is_on)
{
	static const struct {
		const char *text;
		bool want;
	} cases[] = {
		{ "", true }, /* the default: soft */
		{ "revocation = { check = \"off\"; };\n", false },
		{ "revocation = { check = \"off\"; };\n"
		  "policy = ( { recipient = \"@p.example\"; encrypt = \"required\"; } );\n", false },
		{ "revocation = { check = \"off\"; };\n"
		  "policy = ( { recipient = \"@p.example\"; revocation = { grace_days = 2; }; } );\n",
		    false },
		{ "revocation = { check = \"off\"; };\n"
		  "policy = ( { recipient = \"@p.example\"; revocation = { check = \"hard\"; }; } );\n",
		    true },
		{ "revocation = { check = \"hard\"; };\n"
		  "policy = ( { recipient = \"@p.example\"; revocation = { check = \"off\"; }; } );\n",
		    true },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct config *c = NULL;
		char *errs = load_errors(cases[i].text, &c);

		ck_assert_msg(c != NULL, "case %zu: got errors %s", i, errs);
		ck_assert_msg(config_revocation_on(c) == cases[i].want, "case %zu: got %d, want %d",
		    i, !cases[i].want, cases[i].want);
		config_unref(c);
		free(errs);
	}
}
END_TEST

START_TEST(the_key_list_covers_every_group)
{
	const char *const *k = config_keys();
	const char *want[] = { "socket", "cache.path", "trust.allow_self_signed",
		"outbound.mixed", "inbound.decrypt", "limits.spool_threshold",
		"policy.recipient", "policy.encrypt", NULL };

	for (size_t i = 0; want[i]; i++) {
		bool found = false;
		for (size_t j = 0; k[j]; j++)
			found |= strcmp(k[j], want[i]) == 0;
		ck_assert_msg(found, "got no key %s, want it listed", want[i]);
	}
}
END_TEST

START_TEST(a_reference_keeps_the_configuration_alive)
{
	struct config *c = NULL;

	ck_assert_int_eq(config_defaults(&c), SM_OK);
	ck_assert_ptr_eq(config_ref(c), c);
	config_unref(c);
	ck_assert_str_eq(c->socket, "inet:8894@127.0.0.1"); /* still valid */
	config_unref(c);
}
END_TEST

static Suite *
config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("schema");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, the_defaults_match_the_design);
	tcase_add_test(tc, the_sample_configuration_loads);
	tcase_add_loop_test(tc, every_enum_value_is_accepted, 0,
	    (int)(sizeof(enum_cases) / sizeof(enum_cases[0])));
	tcase_add_loop_test(tc, bad_values_are_reported_with_file_and_line, 0,
	    (int)(sizeof(bad_cases) / sizeof(bad_cases[0])));
	tcase_add_test(tc, a_missing_file_is_an_error);
	tcase_add_test(tc, policy_rules_match_first_by_address_or_domain);
	tcase_add_test(tc, a_rule_revocation_group_inherits_what_it_leaves_out);
	tcase_add_test(tc, revocation_is_on_when_the_global_check_or_a_rule_s_is_on);
	tcase_add_test(tc, the_key_list_covers_every_group);
	tcase_add_test(tc, a_reference_keeps_the_configuration_alive);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return testutil_run(config_suite());
}
