/*
 * config_int.h — shared by the parts of the config module only (other
 * modules include config.h):
 *   config_schema.c  the one schema table (every key: type, default,
 *                    bounds), the value names, the key list that the
 *                    documentation check (check_manpage) compares;
 *   config_policy.c  policy rules: read from the file, completed from the
 *                    global revocation group, matched against addresses;
 *   config.c         the loader (walks the file with the table, checks
 *                    values, reports FILE:LINE), lifetime, other queries.
 */
#ifndef SMIME_CONFIG_INT_H
#define SMIME_CONFIG_INT_H

#include <libconfig.h>
#include <stddef.h>

#include "config.h"

enum sch_type { T_BOOL, T_STR, T_INT, T_ENUM, T_STRLIST, T_MODE, T_GROUP, T_POLICY,
	T_LIST /* a list of groups: array at off, count at count_off, element size in max */ };
enum sch_check { C_NONE, C_SOCKET, C_AUTHSERV, C_DOMAINS, C_CIDRS, C_NONEMPTY,
	C_FILE_EXISTS, C_RULE_ADDR, C_HEADER_NAME, C_LDAP_FILTER, C_CONNINFO };

struct schema {
	const char *name;
	enum sch_type type;
	size_t off;                 /* field offset from the group's base */
	const char *def;            /* default as text (NULL: unset) */
	long long min, max;         /* T_INT bounds */
	const char *const *enums;   /* T_ENUM value names, index = enum value */
	const struct schema *sub;   /* T_GROUP / T_POLICY members */
	enum sch_check check;
	unsigned setbit;            /* outbound keys a policy rule may set */
	size_t count_off;           /* T_STRLIST: where the element count goes */
};

/* The tables the loader and the policy part walk (config_schema.c). */
extern const struct schema config_top_schema[];
extern const struct schema config_outbound_schema[];
extern const struct schema config_policy_schema[];
extern const struct schema config_revocation_schema[];
extern const struct schema config_ldap_schema[];

/* One load: where errors go. */
struct loadctx {
	const char *file;
	struct config_errors *errs;
	int nerr;
	int oom;
};

/* config.c: the loader's pieces the policy part reuses. */
void config_lc_error(struct loadctx *lc, int line, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
const char *config_type_name(int t); /* "a group", "a number", … */
void config_load_one(struct loadctx *lc, const struct schema *e, config_setting_t *s,
    char *base, const char *path, struct config *cfg);
void config_load_group(struct loadctx *lc, config_setting_t *grp, const struct schema *tab,
    char *base, const char *prefix, struct config *cfg);

/* config_policy.c */
/* policy = ( … ) into cfg->policy. */
void config_policy_load(struct loadctx *lc, config_setting_t *s, const char *path,
    struct config *cfg);
/* After the whole file: a rule's revocation members it left out come from
 * the global group (which may come later in the file). */
void config_policy_inherit(struct loadctx *lc, struct config *c);

#endif
