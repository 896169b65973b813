/*
 * check_manpage.c — the configuration's documentation keeps up with its
 * schema: every key of config_keys() is documented in
 * man/smime-milter.conf.5 and appears in the sample conf/smime-milter.conf,
 * and neither documents a key the schema lacks.
 *
 * The man page convention (also stated at the top of the page):
 *  - The section ".SH KEYS" runs to the next ".SH". Every ".TP" line in it
 *    starts one key entry, and the line after it must be exactly
 *    ".B KEY", KEY being the full dotted path as config_keys() spells it
 *    ("outbound.encrypt"; policy rule keys as "policy.recipient",
 *    "policy.encrypt", ...). A ".TP" with any other tag is an error, so
 *    enum values and the like are listed with ".IP", never ".TP".
 *  - An entry's body (up to the next .TP, .SS or .SH) says "Type:",
 *    "Default:" and "Example:".
 *  - Every no-fill block (.nf ... .fi) in the sections KEYS and EXAMPLES is
 *    a whole configuration file that config_load() accepts, and an entry's
 *    example sets the key's own name ("encrypt = ...").
 *  - Each key is documented exactly once.
 *
 * The sample's rule:
 *  - A key outside policy appears as an active setting (libconfig finds
 *    the path), or commented out as "# NAME = ..." (NAME the last path
 *    component) on a line inside its group (between the group's first line
 *    and the next top-level setting), or outside every group for a
 *    top-level key. Keys without a default (user) are shown that way.
 *  - policy.recipient, policy.sender, policy.encrypt and policy.sign are
 *    members of the sample's active policy rules. Any other policy.NAME is
 *    either a member of an active rule, or is the override of outbound.NAME
 *    and counts as shown when outbound.NAME is.
 */
#include <ctype.h>
#include <libconfig.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "testutil.h"

#define MAN_FILE "man/smime-milter.conf.5"
#define SAMPLE_FILE "conf/smime-milter.conf"

struct man_entry {
	char *key;
	int line;
	char *body;             /* the entry's raw lines, joined */
	char *example;          /* its first no-fill block, unescaped */
};

struct man_block {
	char *text;             /* unescaped */
	int line;               /* of the .nf */
};

struct man_doc {
	bool has_keys;
	struct man_entry *e;
	size_t n;
	struct man_block *b;
	size_t nb;
	char errs[4096];        /* convention violations, one per line */
};

static void
doc_err(struct man_doc *d, int line, const char *fmt, const char *arg)
{
	size_t len = strlen(d->errs);

	snprintf(d->errs + len, sizeof(d->errs) - len, "line %d: ", line);
	len = strlen(d->errs);
	snprintf(d->errs + len, sizeof(d->errs) - len, fmt, arg);
	len = strlen(d->errs);
	snprintf(d->errs + len, sizeof(d->errs) - len, "\n");
}

static void
append(char **s, const char *add)
{
	size_t a = *s ? strlen(*s) : 0, b = strlen(add);
	char *n = realloc(*s, a + b + 2);

	ck_assert_ptr_nonnull(n);
	memcpy(n + a, add, b);
	n[a + b] = '\n';
	n[a + b + 1] = '\0';
	*s = n;
}

/* The roff escapes the pages use in code, turned back into plain text. */
static char *
unescape(const char *in)
{
	static const struct { const char *esc, *plain; } map[] = {
		{ "\\-", "-" }, { "\\(dq", "\"" }, { "\\(aq", "'" }, { "\\(ga", "`" },
		{ "\\e", "\\" }, { "\\&", "" }, { "\\|", "" }, { "\\fB", "" },
		{ "\\fI", "" }, { "\\fR", "" }, { "\\fP", "" },
	};
	char *out = malloc(strlen(in) + 1), *o = out;

	ck_assert_ptr_nonnull(out);
	while (*in) {
		size_t i;

		for (i = 0; i < sizeof(map) / sizeof(map[0]); i++)
			if (strncmp(in, map[i].esc, strlen(map[i].esc)) == 0)
				break;
		if (i < sizeof(map) / sizeof(map[0])) {
			size_t pl = strlen(map[i].plain);
			memcpy(o, map[i].plain, pl);
			o += pl;
			in += strlen(map[i].esc);
		} else {
			*o++ = *in++;
		}
	}
	*o = '\0';
	return out;
}

static bool
is_key_path(const char *s)
{
	bool start = true;

	if (*s == '\0')
		return false;
	for (; *s; s++) {
		if (*s == '.') {
			if (start)
				return false;
			start = true;
			continue;
		}
		if (start && !islower((unsigned char)*s))
			return false;
		if (!islower((unsigned char)*s) && !isdigit((unsigned char)*s) && *s != '_')
			return false;
		start = false;
	}
	return !start;
}

static bool
is_macro(const char *line, const char *m)
{
	size_t n = strlen(m);

	return strncmp(line, m, n) == 0 && (line[n] == '\0' || line[n] == ' ');
}

/* Parse a page's text (modified in place) by the convention above. */
static void
doc_parse(char *text, struct man_doc *d)
{
	char *save = NULL, *line;
	char section[64] = "";
	int lineno = 0;
	bool want_tag = false, in_nf = false;
	struct man_entry *cur = NULL;
	char *block = NULL;
	int block_line = 0;

	memset(d, 0, sizeof(*d));
	/* strsep keeps empty lines, so line numbers stay true. */
	save = text;
	while ((line = strsep(&save, "\n")) != NULL) {
		bool keys, examples;

		lineno++;
		if (is_macro(line, ".SH")) {
			const char *t = line + 3;
			size_t n;

			while (*t == ' ' || *t == '"')
				t++;
			snprintf(section, sizeof(section), "%s", t);
			n = strlen(section);
			while (n && (section[n - 1] == '"' || section[n - 1] == ' '))
				section[--n] = '\0';
			if (strcmp(section, "KEYS") == 0)
				d->has_keys = true;
			cur = NULL;
			want_tag = false;
		}
		keys = strcmp(section, "KEYS") == 0;
		examples = strcmp(section, "EXAMPLES") == 0;
		if (!keys && !examples)
			continue;

		if (want_tag) {
			want_tag = false;
			if (strncmp(line, ".B ", 3) != 0 || !is_key_path(line + 3)) {
				doc_err(d, lineno, ".TP in KEYS not followed by \".B key.path\": got \"%s\"", line);
				continue;
			}
			d->e = realloc(d->e, (d->n + 1) * sizeof(*d->e));
			ck_assert_ptr_nonnull(d->e);
			cur = &d->e[d->n++];
			memset(cur, 0, sizeof(*cur));
			cur->key = strdup(line + 3);
			cur->line = lineno;
			continue;
		}
		if (in_nf) {
			if (is_macro(line, ".fi")) {
				in_nf = false;
				d->b = realloc(d->b, (d->nb + 1) * sizeof(*d->b));
				ck_assert_ptr_nonnull(d->b);
				d->b[d->nb].text = unescape(block ? block : "");
				d->b[d->nb].line = block_line;
				if (cur && cur->example == NULL)
					cur->example = strdup(d->b[d->nb].text);
				d->nb++;
				free(block);
				block = NULL;
			} else {
				append(&block, line);
			}
			continue;
		}
		if (is_macro(line, ".nf")) {
			in_nf = true;
			block_line = lineno;
			continue;
		}
		if (!keys)
			continue;
		if (is_macro(line, ".TP")) {
			want_tag = true;
			cur = NULL;
			continue;
		}
		if (is_macro(line, ".SS")) {
			cur = NULL;
			continue;
		}
		if (cur)
			append(&cur->body, line);
	}
	if (in_nf)
		doc_err(d, block_line, ".nf without .fi%s", "");
	free(block);
}

static void
doc_free(struct man_doc *d)
{
	for (size_t i = 0; i < d->n; i++) {
		free(d->e[i].key);
		free(d->e[i].body);
		free(d->e[i].example);
	}
	free(d->e);
	for (size_t i = 0; i < d->nb; i++)
		free(d->b[i].text);
	free(d->b);
}

static char *man_text;
static struct man_doc man;

static void
man_setup(void)
{
	size_t len;

	man_text = (char *)testutil_slurp(testutil_path(MAN_FILE), &len);
	ck_assert_msg(man_text != NULL, "cannot read %s", testutil_path(MAN_FILE));
	doc_parse(man_text, &man);
	ck_assert_msg(man.has_keys, "%s has no \".SH KEYS\" section", MAN_FILE);
}

static void
man_teardown(void)
{
	doc_free(&man);
	free(man_text);
	man_text = NULL;
}

static const struct man_entry *
doc_find(const struct man_doc *d, const char *key)
{
	for (size_t i = 0; i < d->n; i++)
		if (strcmp(d->e[i].key, key) == 0)
			return &d->e[i];
	return NULL;
}

static bool
schema_has(const char *key)
{
	for (const char *const *k = config_keys(); *k; k++)
		if (strcmp(*k, key) == 0)
			return true;
	return false;
}

/* Does text assign NAME ("NAME =", NAME not part of a longer name)? */
static bool
sets_name(const char *text, const char *name)
{
	size_t n = strlen(name);

	for (const char *p = strstr(text, name); p; p = strstr(p + 1, name)) {
		const char *q = p + n;

		if (p > text && (isalnum((unsigned char)p[-1]) || p[-1] == '_'))
			continue;
		while (*q == ' ' || *q == '\t')
			q++;
		if (*q == '=')
			return true;
	}
	return false;
}

static const char *
last_component(const char *key)
{
	const char *dot = strrchr(key, '.');

	return dot ? dot + 1 : key;
}

/* ---------------------------------------------------------------- parser */

START_TEST(test_parser_reads_the_convention)
{
	static const struct {
		const char *page;
		const char *keys;  /* the entries found, space separated */
		const char *err;   /* a substring of the errors, or "" for none */
	} cases[] = {
		{ ".SH KEYS\n.TP\n.B socket\nType: x\n.TP\n.B outbound.encrypt\nbody\n",
		  "socket outbound.encrypt", "" },
		/* .TP outside KEYS is not a key entry */
		{ ".SH FILES\n.TP\n.I /etc/x\n.SH KEYS\n.TP\n.B log_debug\n", "log_debug", "" },
		/* the section ends at the next .SH */
		{ ".SH KEYS\n.TP\n.B a\n.SH SEE ALSO\n.TP\n.BR b (8)\n", "a", "" },
		{ ".SH KEYS\n.TP\n.BR outbound.encrypt ,\n", "", "got \".BR outbound.encrypt ,\"" },
		{ ".SH KEYS\n.TP\n.B \"outbound.encrypt\"\n", "", "not followed by" },
		{ ".SH KEYS\n.TP\n.B Outbound.Encrypt\n", "", "not followed by" },
		{ ".SH KEYS\n.TP\n.I outbound.encrypt\n", "", "not followed by" },
		{ ".SH KEYS\n.TP\n.B outbound.\n", "", "not followed by" },
		{ ".SH KEYS\n.TP\n.B a\n.TP\n.B never\n", "a never", "" },
		{ ".SH KEYS\n.TP\n.B a\n.nf\nx = 1;\n", "a", ".nf without .fi" },
		{ ".SH \"KEYS\"\n.TP 10\n.B a.b\n", "a.b", "" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *text = strdup(cases[i].page);
		struct man_doc d;
		char got[512] = "";

		doc_parse(text, &d);
		for (size_t j = 0; j < d.n; j++) {
			strcat(got, j ? " " : "");
			strcat(got, d.e[j].key);
		}
		ck_assert_msg(strcmp(got, cases[i].keys) == 0, "case %zu: keys: got \"%s\", want \"%s\"",
		    i, got, cases[i].keys);
		if (*cases[i].err)
			ck_assert_msg(strstr(d.errs, cases[i].err) != NULL,
			    "case %zu: errors: got \"%s\", want one containing \"%s\"", i, d.errs,
			    cases[i].err);
		else
			ck_assert_msg(d.errs[0] == '\0', "case %zu: errors: got \"%s\", want none", i,
			    d.errs);
		doc_free(&d);
		free(text);
	}
}
END_TEST

START_TEST(test_parser_unescapes_code)
{
	char *s = unescape("socket = \\(dqunix:/run/smime\\-milter.sock\\(dq; \\fBx\\fR \\(gaa\\(aq \\e");

	ck_assert_str_eq(s, "socket = \"unix:/run/smime-milter.sock\"; x `a' \\");
	free(s);
	ck_assert(sets_name("outbound = { sign = false; };", "sign"));
	ck_assert(sets_name("sign=true;", "sign"));
	ck_assert(!sets_name("outbound = { design = false; };", "sign"));
	ck_assert(!sets_name("sign_format = \"opaque\";", "sign"));
}
END_TEST

/* ------------------------------------------------------------- man page */

START_TEST(test_keys_section_follows_the_convention)
{
	ck_assert_msg(man.errs[0] == '\0', "%s breaks the KEYS convention:\n%s", MAN_FILE, man.errs);
}
END_TEST

START_TEST(test_every_schema_key_is_documented)
{
	char missing[2048] = "";

	for (const char *const *k = config_keys(); *k; k++)
		if (doc_find(&man, *k) == NULL) {
			strncat(missing, " ", sizeof(missing) - strlen(missing) - 1);
			strncat(missing, *k, sizeof(missing) - strlen(missing) - 1);
		}
	ck_assert_msg(missing[0] == '\0',
	    "keys in the schema (config_keys) but not documented in %s:%s "
	    "(add a \".TP\" + \".B KEY\" entry to KEYS)", MAN_FILE, missing);
}
END_TEST

START_TEST(test_every_documented_key_is_in_the_schema)
{
	char extra[2048] = "";

	for (size_t i = 0; i < man.n; i++)
		if (!schema_has(man.e[i].key)) {
			char one[128];
			snprintf(one, sizeof(one), " %s (line %d)", man.e[i].key, man.e[i].line);
			strncat(extra, one, sizeof(extra) - strlen(extra) - 1);
		}
	ck_assert_msg(extra[0] == '\0', "%s documents keys the schema lacks:%s", MAN_FILE, extra);
}
END_TEST

START_TEST(test_no_key_is_documented_twice)
{
	for (size_t i = 0; i < man.n; i++)
		for (size_t j = i + 1; j < man.n; j++)
			ck_assert_msg(strcmp(man.e[i].key, man.e[j].key) != 0,
			    "%s documents %s twice (lines %d and %d)", MAN_FILE, man.e[i].key,
			    man.e[i].line, man.e[j].line);
}
END_TEST

START_TEST(test_every_entry_gives_type_default_and_example)
{
	static const char *const want[] = { "Type:", "Default:", "Example:" };

	for (size_t i = 0; i < man.n; i++)
		for (size_t w = 0; w < 3; w++)
			ck_assert_msg(man.e[i].body && strstr(man.e[i].body, want[w]),
			    "%s:%d: %s: the entry does not say \"%s\"", MAN_FILE, man.e[i].line,
			    man.e[i].key, want[w]);
}
END_TEST

START_TEST(test_every_example_sets_its_key)
{
	for (size_t i = 0; i < man.n; i++) {
		const char *name = last_component(man.e[i].key);

		ck_assert_msg(man.e[i].example != NULL, "%s:%d: %s: no example block (.nf/.fi)",
		    MAN_FILE, man.e[i].line, man.e[i].key);
		ck_assert_msg(sets_name(man.e[i].example, name),
		    "%s:%d: %s: the example does not set %s: got \"%s\"", MAN_FILE, man.e[i].line,
		    man.e[i].key, name, man.e[i].example);
	}
}
END_TEST

START_TEST(test_every_example_is_a_valid_configuration)
{
	char *dir = testutil_tmpdir();
	char path[512];

	ck_assert_ptr_nonnull(dir);
	snprintf(path, sizeof(path), "%s/example.conf", dir);
	ck_assert_msg(man.nb > 0, "%s has no examples in KEYS or EXAMPLES", MAN_FILE);
	for (size_t i = 0; i < man.nb; i++) {
		FILE *f = fopen(path, "w");
		struct config *cfg = NULL;
		struct config_errors errs = { NULL, 0 };
		char msg[2048] = "";

		ck_assert_ptr_nonnull(f);
		fputs(man.b[i].text, f);
		fclose(f);
		config_load(path, &cfg, &errs);
		for (size_t j = 0; j < errs.n; j++) {
			strncat(msg, errs.msg[j], sizeof(msg) - strlen(msg) - 2);
			strcat(msg, "\n");
		}
		config_errors_free(&errs);
		if (cfg == NULL)
			testutil_rmtree(dir);
		ck_assert_msg(cfg != NULL, "%s:%d: the example is not a valid configuration:\n%s\n"
		    "got:\n%s", MAN_FILE, man.b[i].line, man.b[i].text, msg);
		config_unref(cfg);
	}
	testutil_rmtree(dir);
	free(dir);
}
END_TEST

/* --------------------------------------------------------------- sample */

struct sample {
	config_t cf;
	bool loaded;
	char *text;
	int lines[64];          /* source lines of the top-level settings */
	const char *names[64];
	int n;
};

static struct sample sample;

/* Load a sample file; false (with the reason in why) when libconfig fails. */
static bool
sample_load(const char *path, char *why, size_t whylen)
{
	config_setting_t *root;
	size_t len;

	memset(&sample, 0, sizeof(sample));
	config_init(&sample.cf);
	sample.loaded = true;
	if (config_read_file(&sample.cf, path) != CONFIG_TRUE) {
		snprintf(why, whylen, "%s:%d: %s", path, config_error_line(&sample.cf),
		    config_error_text(&sample.cf) ? config_error_text(&sample.cf) : "cannot read");
		return false;
	}
	if ((sample.text = (char *)testutil_slurp(path, &len)) == NULL) {
		snprintf(why, whylen, "%s: cannot read", path);
		return false;
	}
	root = config_root_setting(&sample.cf);
	for (int i = 0; i < config_setting_length(root) && sample.n < 64; i++) {
		config_setting_t *s = config_setting_get_elem(root, (unsigned)i);
		sample.lines[sample.n] = config_setting_source_line(s);
		sample.names[sample.n] = config_setting_name(s);
		sample.n++;
	}
	return true;
}

static void
sample_unload(void)
{
	if (sample.loaded)
		config_destroy(&sample.cf);
	free(sample.text);
	memset(&sample, 0, sizeof(sample));
}

static void
sample_setup(void)
{
	char why[512];

	ck_assert_msg(sample_load(testutil_path(SAMPLE_FILE), why, sizeof(why)), "%s", why);
}

/* The lines [*from, *to] of a top-level group in the sample: from its name
 * to its closing brace (braces inside strings and comments do not count). */
static bool
group_range(const char *group, int *from, int *to)
{
	config_setting_t *s = config_lookup(&sample.cf, group);
	const char *p = sample.text;
	int line = 1, depth = 0;
	bool opened = false;

	if (s == NULL || !config_setting_is_group(s))
		return false;
	*from = config_setting_source_line(s);
	*to = INT_MAX;
	for (; *p; p++) {
		if (*p == '\n') {
			line++;
			continue;
		}
		if (line < *from)
			continue;
		if (*p == '#') {
			while (p[1] && p[1] != '\n')
				p++;
		} else if (*p == '"') {
			while (p[1] && p[1] != '"' && p[1] != '\n')
				p += (p[1] == '\\' && p[2]) ? 2 : 1;
			if (p[1] == '"')
				p++;
		} else if (*p == '{') {
			depth++;
			opened = true;
		} else if (*p == '}' && --depth == 0 && opened) {
			*to = line;
			return true;
		}
	}
	return true;
}

static bool
in_some_group(int line)
{
	for (int i = 0; i < sample.n; i++) {
		int from, to;

		if (group_range(sample.names[i], &from, &to) && line >= from && line <= to)
			return true;
	}
	return false;
}

/* "# NAME = ..." on a line that satisfies the rule for key. */
static bool
sample_comments_out(const char *key)
{
	const char *name = last_component(key);
	char group[64] = "";
	int from = 0, to = INT_MAX, lineno = 0;
	const char *p = sample.text;

	if (name != key) {
		snprintf(group, sizeof(group), "%.*s", (int)(name - key - 1), key);
		if (!group_range(group, &from, &to)) {
			/* a list of groups shown commented out (discovery.ldap):
			 * its keys inside the enclosing group */
			char *dot = strrchr(group, '.');

			if (dot == NULL)
				return false;
			*dot = '\0';
			if (!group_range(group, &from, &to))
				return false;
		}
	}
	while (*p) {
		const char *eol = strchr(p, '\n');
		const char *q = p;

		lineno++;
		while (*q == ' ' || *q == '\t')
			q++;
		if (*q == '#') {
			q++;
			while (*q == ' ' || *q == '\t')
				q++;
			if (strncmp(q, name, strlen(name)) == 0) {
				const char *r = q + strlen(name);
				while (*r == ' ' || *r == '\t')
					r++;
				if (*r == '=' && (group[0] ? (lineno >= from && lineno <= to) :
				    !in_some_group(lineno)))
					return true;
			}
		}
		if (eol == NULL)
			break;
		p = eol + 1;
	}
	return false;
}

static bool
sample_shows(const char *key)
{
	return config_lookup(&sample.cf, key) != NULL || sample_comments_out(key);
}

static bool
sample_rule_has(const char *name)
{
	config_setting_t *pol = config_lookup(&sample.cf, "policy");

	if (pol == NULL || !config_setting_is_list(pol))
		return false;
	for (int i = 0; i < config_setting_length(pol); i++) {
		config_setting_t *rule = config_setting_get_elem(pol, (unsigned)i);
		if (config_setting_is_group(rule) && config_setting_get_member(rule, name))
			return true;
	}
	return false;
}

/* Does the sample show this key, by the rule at the top of this file? */
static bool
key_shown(const char *key)
{
	if (strncmp(key, "policy.", 7) == 0) {
		const char *name = key + 7;
		char outbound[96];

		snprintf(outbound, sizeof(outbound), "outbound.%s", name);
		if (sample_rule_has(name))
			return true;
		if (!strcmp(name, "recipient") || !strcmp(name, "sender") ||
		    !strcmp(name, "encrypt") || !strcmp(name, "sign"))
			return false;
		return schema_has(outbound) && sample_shows(outbound);
	}
	return sample_shows(key);
}

/* Every schema key the sample fails to show, space separated. */
static void
sample_missing(char *missing, size_t len)
{
	missing[0] = '\0';
	for (const char *const *k = config_keys(); *k; k++)
		if (!key_shown(*k)) {
			strncat(missing, " ", len - strlen(missing) - 1);
			strncat(missing, *k, len - strlen(missing) - 1);
		}
}

START_TEST(test_sample_shows_every_key)
{
	char missing[2048];

	sample_missing(missing, sizeof(missing));
	ck_assert_msg(missing[0] == '\0', "keys that %s does not show (set them, or comment "
	    "them out as \"# NAME = ...\" in their group; policy.recipient/sender/encrypt/sign "
	    "in an active rule):%s", SAMPLE_FILE, missing);
}
END_TEST

/* The sample rule on made-up files: what counts and what does not. */
START_TEST(test_sample_rule_cases)
{
	static const struct {
		const char *text;
		const char *key;
		bool shown;
	} cases[] = {
		{ "log_debug = true;\n", "log_debug", true },
		{ "# log_debug = true;\n", "log_debug", true },
		{ "#log_debug=true;\n", "log_debug", true },
		{ "# Set log_debug to true for more.\n", "log_debug", false },
		{ "outbound = {\n  # digest = \"sha256\";\n};\n", "outbound.digest", true },
		{ "outbound = { sign = true; };\n# digest = \"sha256\";\n", "outbound.digest", false },
		{ "# digest = \"sha256\";\noutbound = { sign = true; };\n", "outbound.digest", false },
		{ "outbound = {\n  # user = \"x\";\n};\n", "user", false },
		{ "outbound = { subject_tag = \"}\"; };\n# user = \"x\";\n", "user", true },
		{ "outbound = {\n  # } in a comment\n  # user = \"x\";\n};\n", "user", false },
		{ "outbound = { sign = true; };\n", "outbound.digest", false },
		{ "inbound = { harvest = true; };\n", "outbound.harvest", false },
		{ "policy = ( { recipient = \"@a.example\"; } );\n", "policy.recipient", true },
		{ "# policy = ( { recipient = \"@a.example\"; } );\n", "policy.recipient", false },
		{ "policy = ( { recipient = \"@a.example\"; cipher = \"auto\"; } );\n",
		  "policy.cipher", true },
		{ "outbound = { cipher = \"auto\"; };\n", "policy.cipher", true },
		{ "outbound = { sign = true; };\n", "policy.sign", false },
	};
	char *dir = testutil_tmpdir();
	char path[512], why[512];

	ck_assert_ptr_nonnull(dir);
	snprintf(path, sizeof(path), "%s/sample.conf", dir);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		FILE *f = fopen(path, "w");
		bool shown;

		ck_assert_ptr_nonnull(f);
		fputs(cases[i].text, f);
		fclose(f);
		ck_assert_msg(sample_load(path, why, sizeof(why)), "case %zu: %s", i, why);
		shown = key_shown(cases[i].key);
		sample_unload();
		ck_assert_msg(shown == cases[i].shown, "case %zu: %s in \"%s\": got %s, want %s", i,
		    cases[i].key, cases[i].text, shown ? "shown" : "not shown",
		    cases[i].shown ? "shown" : "not shown");
	}
	testutil_rmtree(dir);
	free(dir);
}
END_TEST

static Suite *
manpage_suite(void)
{
	Suite *s = suite_create("manpage");
	TCase *t;

	t = tcase_create("parser");
	tcase_add_test(t, test_parser_reads_the_convention);
	tcase_add_test(t, test_parser_unescapes_code);
	suite_add_tcase(s, t);

	t = tcase_create("man page");
	tcase_add_checked_fixture(t, man_setup, man_teardown);
	tcase_add_test(t, test_keys_section_follows_the_convention);
	tcase_add_test(t, test_every_schema_key_is_documented);
	tcase_add_test(t, test_every_documented_key_is_in_the_schema);
	tcase_add_test(t, test_no_key_is_documented_twice);
	tcase_add_test(t, test_every_entry_gives_type_default_and_example);
	tcase_add_test(t, test_every_example_sets_its_key);
	tcase_add_test(t, test_every_example_is_a_valid_configuration);
	suite_add_tcase(s, t);

	t = tcase_create("sample rule");
	tcase_add_test(t, test_sample_rule_cases);
	suite_add_tcase(s, t);

	t = tcase_create("sample");
	tcase_add_checked_fixture(t, sample_setup, sample_unload);
	tcase_add_test(t, test_sample_shows_every_key);
	suite_add_tcase(s, t);
	return s;
}

int
main(void)
{
	return testutil_run(manpage_suite());
}
