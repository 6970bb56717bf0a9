/* SPDX-License-Identifier: MIT */
/*
 * policy.c - the access policy: parsing [policy] rules, deciding a check,
 * classifying a subscription pattern, and caching decisions per client.
 *
 * Rules are indexed in a router (the subscription trie) under their
 * pattern, with every level that holds a substitution ("users/%u/#")
 * widened to '+', so a check walks only the rules whose patterns could
 * match the topic, then tests each one's actions, principal and, when it
 * has substitutions, its pattern as written for this client.  The winner
 * is the candidate of highest precedence (see policy.h).  A decision is
 * then kept in the client's cache, a small two-way set-associative table
 * holding topics whole, so that a hit is a hash, a compare and no
 * allocation.  Entries carry the generation of the policy that made them;
 * a reload makes a new policy with a new generation, which turns every
 * older entry into a miss.
 *
 * Classifying a pattern (denied, allowed or mixed over all its topics)
 * works on patterns, not topics: the highest rule covering the whole
 * pattern decides it unless a higher rule of the other effect overlaps
 * part of it; each such overlap (itself a pattern: the intersection of
 * two MQTT patterns is one) is classified the same way.
 */
#include <ctype.h>
#include <errno.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/policy.h"
#include "daemon/router.h"
#include "proto/proto.h"

/* Pattern classification gives up (answers mixed) after this many steps
 * or at this depth. */
#define POLICY_SCOPE_BUDGET 256
#define POLICY_SCOPE_DEPTH 32

/* Longest intersection of two patterns: a literal from each side at every
 * level can make it longer than either. */
#define POLICY_PATTERN_BUF (2 * (PROTO_TOPIC_MAX + 1))

struct policy_cache_entry {
	uint64_t generation; /* 0: empty */
	const struct policy_rule *rule;
	uint32_t hash;
	uint32_t used; /* the cache's clock at the last use */
	uint8_t len;   /* of topic, 1..POLICY_CACHE_TOPIC_MAX */
	uint8_t action;
	bool allow;
	char topic[POLICY_CACHE_TOPIC_MAX]; /* not NUL-terminated */
};

struct policy_cache {
	uint32_t clock; /* counts uses; wrapping only blurs the LRU order */
	struct policy_cache_entry set[POLICY_CACHE_SETS][POLICY_CACHE_WAYS];
};

/* A rule as the policy keeps it: the public part, then what matching
 * needs. */
struct policy_entry {
	struct policy_rule rule;
	char *match; /* the pattern unescaped ("%%" -> "%"); NULL when it
			has substitutions, which are made per client */
};

struct policy {
	char *path;
	uint64_t generation;
	unsigned header_line;
	unsigned default_line; /* 0 until "default =" is read */
	struct policy_entry deflt; /* the default as a rule on "#" */
	struct policy_entry **rules;
	size_t n_rules;
	size_t rules_cap;
	struct router *index; /* index pattern -> struct policy_entry */
};

static const char *const policy_action_names[POLICY_N_ACTIONS] = {
	[POLICY_PUBLISH] = "publish", [POLICY_SUBSCRIBE] = "subscribe",
	[POLICY_REQUEST] = "request", [POLICY_SERVE] = "serve",
	[POLICY_RETAIN] = "retain",   [POLICY_TIMER] = "timer",
	[POLICY_GROUP] = "group",     [POLICY_MONITOR] = "monitor",
};

#define POLICY_ALL_ACTIONS ((1u << POLICY_N_ACTIONS) - 1)

/*
 * Every policy gets the next number, so that a cache entry made under one
 * policy can never pass for a decision of another, even one allocated at
 * the same address after a reload.  Only ever incremented, at
 * configuration load; atomic, as two buses of one process may load theirs
 * from two threads.  It allocates numbers and holds no other state.
 */
static _Atomic uint64_t policy_last_generation;

const char *policy_action_name(enum policy_action action)
{
	if ((unsigned)action >= POLICY_N_ACTIONS)
		return "unknown";
	return policy_action_names[action];
}

static char *policy_vformat(const char *fmt, va_list ap)
	__attribute__((format(printf, 1, 0)));
static char *policy_vformat(const char *fmt, va_list ap)
{
	char *s;

	if (vasprintf(&s, fmt, ap) < 0)
		return NULL;
	return s;
}

/* Sets *ret_error (if asked for) and returns err. */
static int policy_error(char **ret_error, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int policy_error(char **ret_error, int err, const char *fmt, ...)
{
	va_list ap;

	if (!ret_error)
		return err;
	va_start(ap, fmt);
	*ret_error = policy_vformat(fmt, ap);
	va_end(ap);
	return err;
}

/* ---- patterns ------------------------------------------------------ */

/* The length of the level starting at s. */
static size_t policy_level_len(const char *s)
{
	return strcspn(s, "/");
}

static bool policy_level_is(const char *s, size_t len, char c)
{
	return len == 1 && *s == c;
}

/* Whether every topic that p matches, q matches too. */
static bool policy_covers(const char *q, const char *p)
{
	for (;;) {
		size_t ql, pl;

		if (!*q && !*p)
			return true;
		if (!*p)
			return strcmp(q, "#") == 0;
		if (!*q)
			return false;
		ql = policy_level_len(q);
		pl = policy_level_len(p);
		if (policy_level_is(q, ql, '#'))
			return true;
		if (policy_level_is(p, pl, '#'))
			return false;
		if (!policy_level_is(q, ql, '+') &&
		    (policy_level_is(p, pl, '+') || ql != pl ||
		     memcmp(q, p, ql) != 0))
			return false;
		q += ql;
		p += pl;
		if (*q)
			q++;
		if (*p)
			p++;
	}
}

/*
 * The pattern of the topics both a and b match, written into out (at
 * least POLICY_PATTERN_BUF bytes).  Returns its length, or -1 when no
 * topic matches both (including an intersection too long to be a topic).
 */
static int policy_intersect(const char *a, const char *b, char *out)
{
	size_t n = 0;

	for (;;) {
		size_t al, bl;
		const char *level, *rest = NULL;
		size_t len;

		if (!*a && !*b)
			break;
		if (!*a || !*b) {
			/* The other side must end in a '#' matching no
			 * level: "x" and "x/#" meet in "x". */
			if (strcmp(*a ? a : b, "#") != 0)
				return -1;
			break;
		}
		al = policy_level_len(a);
		bl = policy_level_len(b);
		if (policy_level_is(a, al, '#'))
			rest = b;
		else if (policy_level_is(b, bl, '#'))
			rest = a;
		if (rest) {
			len = strlen(rest);
			if (n)
				out[n++] = '/';
			memcpy(out + n, rest, len);
			n += len;
			break;
		}
		if (policy_level_is(a, al, '+')) {
			level = b;
			len = bl;
		} else if (policy_level_is(b, bl, '+') ||
			   (al == bl && memcmp(a, b, al) == 0)) {
			level = a;
			len = al;
		} else {
			return -1;
		}
		if (n)
			out[n++] = '/';
		memcpy(out + n, level, len);
		n += len;
		a += al;
		b += bl;
		if (*a)
			a++;
		if (*b)
			b++;
	}
	if (n > PROTO_TOPIC_MAX)
		return -1;
	out[n] = '\0';
	return (int)n;
}

/* Whether name can stand for %u in a topic level. */
static bool policy_name_ok(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || len > PROTO_TOPIC_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];

		if (c < 0x21 || c > 0x7e || c == '/' || c == '+' || c == '#')
			return false;
	}
	return true;
}

/*
 * pattern as written (with "%u", "%U", "%%") for id, into out of
 * PROTO_TOPIC_MAX + 1 bytes.  With id NULL, each substitution becomes
 * "x": the shape used to validate the pattern.  Returns false when the
 * rule cannot apply to id (no usable name for %u, or too long a result).
 */
static bool policy_subst(const char *pattern,
			 const struct policy_identity *id, char *out)
{
	size_t n = 0;
	char uid[16];

	for (const char *s = pattern; *s; s++) {
		const char *add = s;
		size_t len = 1;

		if (*s == '%') {
			s++;
			if (*s == '%') {
				add = s;
			} else if (*s == 'u') {
				add = id ? id->name : "x";
				if (!add)
					return false;
				len = strlen(add);
			} else { /* 'U', the only other one parsed */
				if (id)
					snprintf(uid, sizeof(uid), "%lu",
						 (unsigned long)id->uid);
				else
					strcpy(uid, "x");
				add = uid;
				len = strlen(uid);
			}
		}
		if (n + len > PROTO_TOPIC_MAX)
			return false;
		memcpy(out + n, add, len);
		n += len;
	}
	out[n] = '\0';
	return true;
}

/* The pattern e matches for id, into buf; NULL if e cannot apply. */
static const char *policy_entry_pattern(const struct policy_entry *e,
					const struct policy_identity *id,
					char *buf)
{
	if (!e->rule.subst)
		return e->match;
	return policy_subst(e->rule.pattern, id, buf) ? buf : NULL;
}

/* ---- precedence ---------------------------------------------------- */

/* Whether rule a takes precedence over rule b, file order aside.  NULL
 * stands for the default, below every rule. */
static bool policy_wins(const struct policy_rule *a,
			const struct policy_rule *b)
{
	if (!b)
		return a != NULL;
	if (!a)
		return false;
	if (a->literals != b->literals)
		return a->literals > b->literals;
	if (a->wildcards != b->wildcards)
		return a->wildcards < b->wildcards;
	if (a->multi != b->multi)
		return !a->multi;
	if (a->principal != b->principal)
		return a->principal > b->principal;
	return !a->allow && b->allow;
}

/* As policy_wins(), and at a full tie the earlier line. */
static bool policy_better(const struct policy_rule *a,
			  const struct policy_rule *b)
{
	if (policy_wins(a, b))
		return true;
	if (policy_wins(b, a))
		return false;
	return a && b && a->line < b->line;
}

static int policy_gid_cmp(const void *a, const void *b)
{
	gid_t x = *(const gid_t *)a, y = *(const gid_t *)b;

	return x < y ? -1 : x > y;
}

static bool policy_in_group(const struct policy_identity *id, gid_t gid)
{
	if (id->gid == gid)
		return true;
	return id->n_groups &&
	       bsearch(&gid, id->groups, id->n_groups, sizeof(gid_t),
		       policy_gid_cmp) != NULL;
}

/* Whether rule r applies to id and action, its pattern aside. */
static bool policy_applies(const struct policy_rule *r,
			   const struct policy_identity *id, unsigned bit)
{
	if (!(r->actions & bit))
		return false;
	switch (r->principal) {
	case POLICY_USER_ID:
		return (uint32_t)id->uid == r->id;
	case POLICY_GROUP_ID:
		return policy_in_group(id, (gid_t)r->id);
	default:
		return true;
	}
}

/* ---- identities ---------------------------------------------------- */

static void policy_sort_groups(gid_t *groups, size_t *n)
{
	size_t i, out = 0;

	qsort(groups, *n, sizeof(*groups), policy_gid_cmp);
	for (i = 0; i < *n; i++)
		if (out == 0 || groups[out - 1] != groups[i])
			groups[out++] = groups[i];
	*n = out;
}

int policy_identity_init(struct policy_identity *id, uid_t uid, gid_t gid,
			 const char *name, const gid_t *groups,
			 size_t n_groups)
{
	memset(id, 0, sizeof(*id));
	id->uid = uid;
	id->gid = gid;
	if (name && policy_name_ok(name)) {
		id->name = strdup(name);
		if (!id->name)
			goto nomem;
	}
	if (n_groups) {
		id->groups = malloc(n_groups * sizeof(*groups));
		if (!id->groups)
			goto nomem;
		memcpy(id->groups, groups, n_groups * sizeof(*groups));
		id->n_groups = n_groups;
		policy_sort_groups(id->groups, &id->n_groups);
	}
	return 0;

nomem:
	policy_identity_deinit(id);
	return -ENOMEM;
}

void policy_identity_deinit(struct policy_identity *id)
{
	free(id->name);
	free(id->groups);
	free(id->cache);
	memset(id, 0, sizeof(*id));
}

/* The value of the "Key:" line of a status text, or NULL. */
static const char *policy_status_field(const char *status, const char *key)
{
	size_t len = strlen(key);
	const char *s = status;

	while (s && *s) {
		if (!strncmp(s, key, len) && s[len] == ':')
			return s + len + 1;
		s = strchr(s, '\n');
		if (s)
			s++;
	}
	return NULL;
}

/* Reads up to max numbers of a status line into v; returns how many, or
 * -1 for junk in the line. */
static int policy_status_numbers(const char *s, unsigned long *v, size_t max,
				 size_t *ret_n)
{
	size_t n = 0;

	for (;;) {
		char *end;

		while (*s == ' ' || *s == '\t')
			s++;
		if (*s == '\n' || *s == '\0')
			break;
		if (!isdigit((unsigned char)*s))
			return -1;
		errno = 0;
		unsigned long x = strtoul(s, &end, 10);

		if (errno || x > UINT32_MAX)
			return -1;
		if (v && n < max)
			v[n] = x;
		n++;
		s = end;
	}
	*ret_n = n;
	return 0;
}

/* uid's name from the passwd database, malloc'ed; NULL if it has none
 * (or on an error looking it up, which is the same to the policy). */
static char *policy_user_name(uid_t uid)
{
	struct passwd pw, *res = NULL;
	long sz = sysconf(_SC_GETPW_R_SIZE_MAX);
	size_t size = sz > 0 ? (size_t)sz : 1024;
	char *buf, *name = NULL;

	for (;;) {
		int r;

		buf = malloc(size);
		if (!buf)
			return NULL;
		r = getpwuid_r(uid, &pw, buf, size, &res);
		if (r != ERANGE || size >= 1 << 20)
			break;
		free(buf);
		size *= 2;
	}
	if (res)
		name = strdup(res->pw_name);
	free(buf);
	return name;
}

int policy_identity_from_status(struct policy_identity *id,
				const char *status, uid_t uid)
{
	const char *uid_line = policy_status_field(status, "Uid");
	const char *gid_line = policy_status_field(status, "Gid");
	const char *groups_line = policy_status_field(status, "Groups");
	unsigned long ids[4];
	gid_t *groups = NULL;
	size_t n, n_groups = 0;
	char *name;
	int r;

	memset(id, 0, sizeof(*id));
	if (!uid_line || !gid_line || !groups_line)
		return -EIO;
	if (policy_status_numbers(uid_line, ids, 4, &n) < 0 || n != 4)
		return -EIO;
	/* The fsuid: what owns the queues the process creates. */
	if (ids[3] != (unsigned long)uid)
		return -EPERM;
	if (policy_status_numbers(gid_line, ids, 4, &n) < 0 || n != 4)
		return -EIO;
	if (policy_status_numbers(groups_line, NULL, 0, &n_groups) < 0)
		return -EIO;
	if (n_groups) {
		unsigned long *v = malloc(n_groups * sizeof(*v));

		groups = malloc(n_groups * sizeof(*groups));
		if (!v || !groups) {
			free(v);
			free(groups);
			return -ENOMEM;
		}
		policy_status_numbers(groups_line, v, n_groups, &n);
		for (size_t i = 0; i < n_groups; i++)
			groups[i] = (gid_t)v[i];
		free(v);
	}
	name = policy_user_name(uid);
	r = policy_identity_init(id, uid, (gid_t)ids[3], name, groups,
				 n_groups);
	free(name);
	free(groups);
	return r;
}

/* The whole of a /proc file, malloc'ed and NUL-terminated. */
static int policy_read_file(const char *path, char **ret)
{
	size_t cap = 4096, len = 0;
	char *buf = NULL;
	int fd, r = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? -ESRCH : -errno;
	for (;;) {
		ssize_t k;

		if (!buf || len + 1 >= cap) {
			char *b;

			if (buf)
				cap *= 2;
			b = realloc(buf, cap);
			if (!b) {
				r = -ENOMEM;
				break;
			}
			buf = b;
		}
		k = read(fd, buf + len, cap - len - 1);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			r = errno == ESRCH ? -ESRCH : -errno;
			break;
		}
		if (k == 0)
			break;
		len += (size_t)k;
	}
	close(fd);
	if (r < 0) {
		free(buf);
		return r;
	}
	buf[len] = '\0';
	*ret = buf;
	return 0;
}

int policy_identity_from_pid(struct policy_identity *id, pid_t pid,
			     int pidfd, uid_t uid)
{
	char path[64], *status = NULL;
	int r;

	memset(id, 0, sizeof(*id));
	snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
	r = policy_read_file(path, &status);
	if (r < 0)
		return r;
	r = policy_identity_from_status(id, status, uid);
	free(status);
	if (r < 0)
		return r;
	/* A pidfd turns readable when its process exits: if it has not,
	 * the pid still names the process the file was read from. */
	if (pidfd >= 0) {
		struct pollfd pfd = { .fd = pidfd, .events = POLLIN };

		if (poll(&pfd, 1, 0) != 0) {
			policy_identity_deinit(id);
			return -ESRCH;
		}
	}
	return 0;
}

/* ---- loading ------------------------------------------------------- */

struct policy *policy_new(const char *path, unsigned header_line)
{
	struct policy *pol = calloc(1, sizeof(*pol));

	if (!pol)
		return NULL;
	pol->path = strdup(path);
	pol->index = router_new();
	pol->deflt.rule.pattern = strdup("#");
	if (!pol->path || !pol->index || !pol->deflt.rule.pattern)
		return policy_free(pol);
	pol->deflt.rule.actions = POLICY_ALL_ACTIONS;
	pol->deflt.rule.wildcards = 1;
	pol->deflt.rule.multi = true;
	pol->header_line = header_line;
	pol->generation = atomic_fetch_add(&policy_last_generation, 1) + 1;
	return pol;
}

struct policy *policy_free(struct policy *pol)
{
	if (!pol)
		return NULL;
	for (size_t i = 0; i < pol->n_rules; i++) {
		free(pol->rules[i]->rule.pattern);
		free(pol->rules[i]->match);
		free(pol->rules[i]);
	}
	free(pol->rules);
	router_free(pol->index);
	free(pol->deflt.rule.pattern);
	free(pol->path);
	free(pol);
	return NULL;
}

uint64_t policy_generation(const struct policy *pol)
{
	return pol ? pol->generation : 0;
}

size_t policy_n_rules(const struct policy *pol)
{
	return pol ? pol->n_rules : 0;
}

/* An unsigned id written in decimal digits only, below (uint32_t)-1
 * (which means "no id" to the kernel). */
static bool policy_parse_id(const char *s, uint32_t *ret)
{
	unsigned long v;

	if (!*s || strspn(s, "0123456789") != strlen(s))
		return false;
	errno = 0;
	v = strtoul(s, NULL, 10);
	if (errno || v >= UINT32_MAX)
		return false;
	*ret = (uint32_t)v;
	return true;
}

/* A user or group name to its id, through the databases the system is
 * configured with.  -ENOENT when there is none. */
static int policy_lookup(bool group, const char *name, uint32_t *ret)
{
	long sz = sysconf(group ? _SC_GETGR_R_SIZE_MAX : _SC_GETPW_R_SIZE_MAX);
	size_t size = sz > 0 ? (size_t)sz : 1024;
	int r;

	for (;;) {
		char *buf = malloc(size);

		if (!buf)
			return -ENOMEM;
		if (group) {
			struct group gr, *res = NULL;

			r = getgrnam_r(name, &gr, buf, size, &res);
			if (!r && res)
				*ret = (uint32_t)res->gr_gid;
			else if (!r)
				r = ENOENT;
		} else {
			struct passwd pw, *res = NULL;

			r = getpwnam_r(name, &pw, buf, size, &res);
			if (!r && res)
				*ret = (uint32_t)res->pw_uid;
			else if (!r)
				r = ENOENT;
		}
		free(buf);
		if (r != ERANGE || size >= 1 << 24)
			break;
		size *= 2;
	}
	return -r;
}

static int policy_parse_actions(const char *word, unsigned *ret,
				char **ret_error)
{
	unsigned mask = 0;
	const char *s = word;

	if (!strcmp(word, "all")) {
		*ret = POLICY_ALL_ACTIONS;
		return 0;
	}
	for (;;) {
		size_t len = strcspn(s, ",");
		unsigned a;

		for (a = 0; a < POLICY_N_ACTIONS; a++)
			if (strlen(policy_action_names[a]) == len &&
			    !memcmp(s, policy_action_names[a], len))
				break;
		if (a == POLICY_N_ACTIONS)
			return policy_error(
				ret_error, -EINVAL,
				"unknown action '%.*s' (expected a comma-separated list of publish, subscribe, request, serve, retain, timer, group, monitor, or all)",
				(int)len, s);
		mask |= 1u << a;
		s += len;
		if (!*s)
			break;
		s++;
	}
	*ret = mask;
	return 0;
}

static int policy_parse_principal(struct policy_rule *r, const char *word,
				  char **ret_error)
{
	bool group = !strncmp(word, "group=", 6);
	const char *name;
	int e;

	if (!strcmp(word, "*")) {
		r->principal = POLICY_ANYONE;
		return 0;
	}
	name = word + (group ? 6 : 5);
	if (!strcmp(name, "*")) {
		r->principal = POLICY_ANYONE;
		return 0;
	}
	r->principal = group ? POLICY_GROUP_ID : POLICY_USER_ID;
	if (policy_parse_id(name, &r->id))
		return 0;
	if (!*name)
		return policy_error(ret_error, -EINVAL, "%s: no %s given",
				    word, group ? "group" : "user");
	e = policy_lookup(group, name, &r->id);
	if (e == -ENOENT)
		return policy_error(ret_error, -EINVAL, "unknown %s '%s'",
				    group ? "group" : "user", name);
	if (e < 0)
		return policy_error(ret_error, e, "looking up %s '%s': %s",
				    group ? "group" : "user", name,
				    strerror(-e));
	return 0;
}

/*
 * Checks pattern (as written) and fills r's pattern counts; returns the
 * index pattern (substituted levels as '+') and the match pattern (NULL
 * when it has substitutions), both malloc'ed.
 */
static int policy_parse_pattern(struct policy_rule *r, const char *pattern,
				char **ret_index, char **ret_match,
				char **ret_error)
{
	char shape[PROTO_TOPIC_MAX + 1], *index, *out;
	const char *level;

	for (const char *s = pattern; *s; s++) {
		if (*s != '%')
			continue;
		s++;
		if (*s == 'u' || *s == 'U')
			r->subst = true;
		else if (*s != '%')
			return policy_error(
				ret_error, -EINVAL,
				"topic=%s: '%%%.1s' is not a substitution (expected %%u, %%U or %%%%)",
				pattern, s);
		if (!*s)
			break;
	}
	if (!policy_subst(pattern, NULL, shape) ||
	    !proto_topic_valid(shape, strlen(shape), true))
		return policy_error(ret_error, -EINVAL,
				    "topic=%s: not a valid topic pattern",
				    pattern);

	/* Levels by kind, from the shape, where each substitution is
	 * one literal character. */
	for (level = shape;;) {
		size_t len = policy_level_len(level);

		if (policy_level_is(level, len, '#')) {
			r->wildcards++;
			r->multi = true;
		} else if (policy_level_is(level, len, '+')) {
			r->wildcards++;
		} else {
			r->literals++;
		}
		level += len;
		if (!*level)
			break;
		level++;
	}

	index = malloc(strlen(pattern) + 1);
	if (!index)
		return -ENOMEM;
	out = index;
	for (level = pattern;;) {
		size_t len = policy_level_len(level);
		bool subst = false;

		for (size_t i = 0; i + 1 < len; i++) {
			if (level[i] == '%') {
				if (level[i + 1] != '%')
					subst = true;
				i++;
			}
		}
		if (subst) {
			*out++ = '+';
		} else {
			for (size_t i = 0; i < len; i++) {
				*out++ = level[i];
				if (level[i] == '%')
					i++;
			}
		}
		level += len;
		if (!*level)
			break;
		*out++ = '/';
		level++;
	}
	*out = '\0';
	*ret_match = NULL;
	if (!r->subst) {
		*ret_match = strdup(index);
		if (!*ret_match) {
			free(index);
			return -ENOMEM;
		}
	}
	*ret_index = index;
	return 0;
}

static int policy_add_rule(struct policy *pol, bool allow, const char *value,
			   unsigned line, char **ret_error)
{
	char *copy, *word, *save = NULL, *index = NULL;
	const char *actions = NULL, *principal = NULL, *topic = NULL;
	struct policy_entry *e;
	int r;

	copy = strdup(value ? value : "");
	e = calloc(1, sizeof(*e));
	if (!copy || !e) {
		r = -ENOMEM;
		goto out;
	}
	for (word = strtok_r(copy, " \t", &save); word;
	     word = strtok_r(NULL, " \t", &save)) {
		const char **slot;

		if (!actions)
			slot = &actions;
		else if (!strncmp(word, "topic=", 6))
			slot = &topic;
		else if (!strcmp(word, "*") || !strncmp(word, "user=", 5) ||
			 !strncmp(word, "group=", 6))
			slot = &principal;
		else {
			r = policy_error(
				ret_error, -EINVAL,
				"'%s': expected user=NAME|UID, group=NAME|GID, '*' or topic=PATTERN",
				word);
			goto out;
		}
		if (*slot) {
			r = policy_error(ret_error, -EINVAL,
					 "'%s': %s given twice", word,
					 slot == &topic ? "topic" : "principal");
			goto out;
		}
		*slot = word;
	}
	if (!actions || !principal || !topic) {
		const char *missing =
			!actions   ? "actions" :
			!principal ? "principal (user=, group= or *)" :
				     "topic=PATTERN";

		r = policy_error(
			ret_error, -EINVAL,
			"%s: missing %s (expected '%s = ACTIONS PRINCIPAL topic=PATTERN')",
			allow ? "allow" : "deny", missing,
			allow ? "allow" : "deny");
		goto out;
	}
	e->rule.allow = allow;
	e->rule.line = line;
	r = policy_parse_actions(actions, &e->rule.actions, ret_error);
	if (r < 0)
		goto out;
	r = policy_parse_principal(&e->rule, principal, ret_error);
	if (r < 0)
		goto out;
	r = policy_parse_pattern(&e->rule, topic + 6, &index, &e->match,
				 ret_error);
	if (r < 0)
		goto out;
	e->rule.pattern = strdup(topic + 6);
	if (!e->rule.pattern) {
		r = -ENOMEM;
		goto out;
	}
	if (pol->n_rules == pol->rules_cap) {
		size_t cap = pol->rules_cap ? 2 * pol->rules_cap : 16;
		struct policy_entry **rules;

		rules = realloc(pol->rules, cap * sizeof(*rules));
		if (!rules) {
			r = -ENOMEM;
			goto out;
		}
		pol->rules = rules;
		pol->rules_cap = cap;
	}
	r = router_subscribe(pol->index, index, e);
	if (r < 0)
		goto out;
	pol->rules[pol->n_rules++] = e;
	e = NULL;
out:
	if (r == -ENOMEM && ret_error && !*ret_error)
		policy_error(ret_error, r, "%s", strerror(ENOMEM));
	if (e) {
		free(e->rule.pattern);
		free(e->match);
		free(e);
	}
	free(index);
	free(copy);
	return r;
}

int policy_add(struct policy *pol, const char *key, const char *value,
	       unsigned line, char **ret_error)
{
	if (ret_error)
		*ret_error = NULL;
	if (!strcmp(key, "allow"))
		return policy_add_rule(pol, true, value, line, ret_error);
	if (!strcmp(key, "deny"))
		return policy_add_rule(pol, false, value, line, ret_error);
	if (!strcmp(key, "default")) {
		if (pol->default_line)
			return policy_error(
				ret_error, -EINVAL,
				"default: given twice (first at line %u)",
				pol->default_line);
		if (!value || (strcmp(value, "allow") && strcmp(value, "deny")))
			return policy_error(
				ret_error, -EINVAL,
				"default: '%s' is not allow or deny",
				value ? value : "");
		pol->deflt.rule.allow = !strcmp(value, "allow");
		pol->deflt.rule.line = line;
		pol->default_line = line;
		return 0;
	}
	return policy_error(ret_error, -EINVAL,
			    "unknown key '%s' in [policy] (expected default, allow or deny)",
			    key);
}

int policy_finish(struct policy *pol, unsigned *ret_line, char **ret_error)
{
	if (ret_error)
		*ret_error = NULL;
	if (!pol->default_line) {
		*ret_line = pol->header_line;
		return policy_error(
			ret_error, -EINVAL,
			"[policy] without 'default = allow' or 'default = deny'");
	}
	return 0;
}

/* ---- checks -------------------------------------------------------- */

struct policy_walk {
	const struct policy_identity *id;
	const char *topic;
	unsigned bit;
	const struct policy_rule *best;
};

static void policy_consider(void *subscriber, void *userdata)
{
	const struct policy_entry *e = subscriber;
	struct policy_walk *w = userdata;
	char buf[PROTO_TOPIC_MAX + 1];

	if (!policy_applies(&e->rule, w->id, w->bit))
		return;
	if (w->best && !policy_better(&e->rule, w->best))
		return;
	/* The index holds the pattern widened: the substituted one must
	 * match too. */
	if (e->rule.subst) {
		if (!policy_subst(e->rule.pattern, w->id, buf) ||
		    !proto_topic_match(buf, w->topic))
			return;
	}
	w->best = &e->rule;
}

uint32_t policy_cache_hash(const char *topic, size_t len)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)topic[i];
		h *= 16777619u;
	}
	h ^= h >> 15;
	h *= 0x2c1b3c6du;
	h ^= h >> 12;
	return h;
}

/* Remembers the decision rule for action on topic (len bytes). */
static void policy_memo_set(struct policy_identity *id,
			    const struct policy *pol, enum policy_action action,
			    const char *topic, size_t len,
			    const struct policy_rule *rule)
{
	struct policy_memo *m = &id->memo;

	if (len > POLICY_MEMO_TOPIC_MAX)
		return;
	m->generation = pol->generation;
	m->rule = rule;
	m->len = (uint16_t)len;
	m->action = (uint8_t)action;
	memcpy(m->topic, topic, len);
}

bool policy_check(const struct policy *pol, struct policy_identity *id,
		  enum policy_action action, const char *topic,
		  const struct policy_rule **ret_rule)
{
	const struct policy_memo *memo = &id->memo;
	struct policy_walk w = { id, topic, 1u << action, NULL };
	struct policy_cache_entry *set = NULL, *slot;
	size_t len;
	uint32_t h = 0;
	unsigned way;

	if (!pol) {
		if (ret_rule)
			*ret_rule = NULL;
		return true;
	}
	len = strlen(topic);
	if (memo->generation == pol->generation && memo->action == action &&
	    memo->len == len && memcmp(memo->topic, topic, len) == 0) {
		id->cache_hits++;
		if (ret_rule)
			*ret_rule = memo->rule;
		return memo->rule->allow;
	}
	if (len <= POLICY_CACHE_TOPIC_MAX) {
		if (!id->cache)
			id->cache = calloc(1, sizeof(*id->cache));
		if (id->cache) {
			h = policy_cache_hash(topic, len);
			set = id->cache->set[h % POLICY_CACHE_SETS];
			id->cache->clock++;
		}
	}
	if (set) {
		for (way = 0; way < POLICY_CACHE_WAYS; way++) {
			slot = &set[way];
			if (slot->generation != pol->generation ||
			    slot->hash != h || slot->action != action ||
			    slot->len != len ||
			    memcmp(slot->topic, topic, len) != 0)
				continue;
			id->cache_hits++;
			slot->used = id->cache->clock;
			policy_memo_set(id, pol, action, topic, len,
					slot->rule);
			if (ret_rule)
				*ret_rule = slot->rule;
			return slot->allow;
		}
	}

	id->cache_misses++;
	router_match(pol->index, topic, policy_consider, &w);
	if (!w.best)
		w.best = &pol->deflt.rule;

	if (set) {
		/* An entry of an older policy (or none) first, else the
		 * least recently used. */
		slot = &set[0];
		for (way = 0; way < POLICY_CACHE_WAYS; way++) {
			if (set[way].generation != pol->generation) {
				slot = &set[way];
				break;
			}
			if (id->cache->clock - set[way].used >
			    id->cache->clock - slot->used)
				slot = &set[way];
		}
		slot->generation = pol->generation;
		slot->rule = w.best;
		slot->hash = h;
		slot->used = id->cache->clock;
		slot->len = (uint8_t)len;
		slot->action = (uint8_t)action;
		slot->allow = w.best->allow;
		memcpy(slot->topic, topic, len);
	}
	policy_memo_set(id, pol, action, topic, len, w.best);
	if (ret_rule)
		*ret_rule = w.best;
	return w.best->allow;
}

/* ---- patterns: allowed, denied or mixed ----------------------------- */

struct policy_scope_walk {
	const struct policy *pol;
	const struct policy_entry **rules; /* those that apply to id */
	const char **patterns;             /* their patterns for id */
	size_t n;
	unsigned steps;
	const struct policy_rule *allowed, *denied; /* first seen of each */
};

static void policy_scope_seen(struct policy_scope_walk *s,
			      const struct policy_rule *r)
{
	if (r->allow && !s->allowed)
		s->allowed = r;
	if (!r->allow && !s->denied)
		s->denied = r;
}

static bool policy_scope_done(const struct policy_scope_walk *s)
{
	return s->allowed && s->denied;
}

/*
 * The effects that rules give over the topics of pattern p, recorded in
 * s.  The best rule covering all of p decides every topic of p but those
 * that a higher rule of the other effect matches; each of those overlaps
 * is walked in turn.  Whether the overlaps leave any topic of p to the
 * covering rule is not worked out: it is assumed they do, which can only
 * turn an exact answer into a mixed one.
 */
static void policy_scope_walk(struct policy_scope_walk *s, const char *p,
			      unsigned depth)
{
	const struct policy_rule *best = NULL; /* NULL: the default */
	char buf[POLICY_PATTERN_BUF];
	bool effect;
	size_t i;

	if (++s->steps > POLICY_SCOPE_BUDGET || depth > POLICY_SCOPE_DEPTH) {
		/* Too entangled to follow: say mixed. */
		if (!s->allowed)
			s->allowed = &s->pol->deflt.rule;
		if (!s->denied)
			s->denied = &s->pol->deflt.rule;
		return;
	}
	for (i = 0; i < s->n; i++)
		if (policy_covers(s->patterns[i], p) &&
		    policy_better(&s->rules[i]->rule, best))
			best = &s->rules[i]->rule;
	policy_scope_seen(s, best ? best : &s->pol->deflt.rule);
	effect = best ? best->allow : s->pol->deflt.rule.allow;

	for (i = 0; i < s->n && !policy_scope_done(s); i++) {
		const struct policy_rule *r = &s->rules[i]->rule;

		if (r->allow == effect || !policy_wins(r, best))
			continue;
		if (policy_intersect(s->patterns[i], p, buf) < 0)
			continue;
		policy_scope_walk(s, buf, depth + 1);
	}
}

enum policy_scope policy_check_pattern(const struct policy *pol,
				       const struct policy_identity *id,
				       enum policy_action action,
				       const char *pattern,
				       const struct policy_rule **ret_rule)
{
	struct policy_scope_walk s = { .pol = pol };
	char (*bufs)[PROTO_TOPIC_MAX + 1] = NULL;
	const struct policy_rule *rule;
	enum policy_scope scope;
	size_t i;

	if (!pol) {
		if (ret_rule)
			*ret_rule = NULL;
		return POLICY_ALLOWED;
	}
	if (pol->n_rules) {
		s.rules = malloc(pol->n_rules * sizeof(*s.rules));
		s.patterns = malloc(pol->n_rules * sizeof(*s.patterns));
		bufs = malloc(pol->n_rules * sizeof(*bufs));
	}
	if (pol->n_rules && (!s.rules || !s.patterns || !bufs)) {
		/* Without memory to decide, the safe answer: each topic
		 * will be checked on its own. */
		scope = POLICY_MIXED;
		rule = &pol->deflt.rule;
		goto out;
	}
	for (i = 0; i < pol->n_rules; i++) {
		const struct policy_entry *e = pol->rules[i];
		const char *p;

		if (!policy_applies(&e->rule, id, 1u << action))
			continue;
		p = policy_entry_pattern(e, id, bufs[s.n]);
		if (!p)
			continue;
		s.rules[s.n] = e;
		s.patterns[s.n] = p;
		s.n++;
	}
	policy_scope_walk(&s, pattern, 0);
	if (s.allowed && s.denied) {
		scope = POLICY_MIXED;
		rule = s.denied;
	} else if (s.denied) {
		scope = POLICY_DENIED;
		rule = s.denied;
	} else {
		scope = POLICY_ALLOWED;
		rule = s.allowed;
	}
out:
	free(s.rules);
	free(s.patterns);
	free(bufs);
	if (ret_rule)
		*ret_rule = rule;
	return scope;
}

const char *policy_path(const struct policy *pol)
{
	return pol->path;
}

bool policy_rule_is_default(const struct policy *pol,
			    const struct policy_rule *rule)
{
	return rule == &pol->deflt.rule;
}

int policy_describe(const struct policy *pol, enum policy_action action,
		    const char *topic, const struct policy_rule *rule,
		    char *buf, size_t size)
{
	const char *verdict = rule && rule->allow ? "allowed" : "denied";

	if (!pol || !rule)
		return snprintf(buf, size, "%s to %s allowed (no policy)",
				policy_action_name(action), topic);
	if (rule == &pol->deflt.rule)
		return snprintf(buf, size, "%s to %s %s by default (%s:%u)",
				policy_action_name(action), topic, verdict,
				pol->path, rule->line);
	return snprintf(buf, size, "%s to %s %s by %s:%u",
			policy_action_name(action), topic, verdict, pol->path,
			rule->line);
}
