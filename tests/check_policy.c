/* SPDX-License-Identifier: MIT */
/*
 * check_policy.c - unit tests of daemon/policy.c, the [policy] section of
 * mqbusd.conf: rule parsing, precedence, groups, substitutions, the
 * classification of subscription patterns, the decision cache and the
 * errors of a bad section.
 *
 * Policies are loaded through config_load() from files written with
 * mkstemp() in /tmp and removed at once, as in check_config.c.  Identities
 * are made up with policy_identity_init() (names and groups need no real
 * account); only the principals user=NAME and group=NAME resolve real
 * names, and those use root, nobody, daemon and nogroup, which every
 * Debian-like system has.  Two cross-checks compare the module against a
 * naive evaluator written here from the precedence rules of policy.h, on
 * random rule sets.
 */
#include <check.h>
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon/config_file.h"
#include "daemon/policy.h"

/* ---- helpers ------------------------------------------------------- */

static char *pol_write(const char *text)
{
	char *path = strdup("/tmp/check_policy.XXXXXX");
	size_t len = strlen(text);
	int fd;

	ck_assert_ptr_nonnull(path);
	fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, len), (ssize_t)len);
	ck_assert_int_eq(close(fd), 0);
	return path;
}

/* config_load() of text into cfg; the file is gone when this returns. */
static int pol_load(struct config *cfg, const char *text, char **ret_error,
		    char **ret_path)
{
	char *path = pol_write(text);
	int r;

	r = config_load(cfg, path, ret_error);
	unlink(path);
	if (ret_path)
		*ret_path = path;
	else
		free(path);
	return r;
}

static void pol_load_ok(struct config *cfg, const char *text)
{
	char *error = NULL;
	int r;

	ck_assert_int_eq(config_init(cfg), 0);
	r = pol_load(cfg, text, &error, NULL);
	ck_assert_msg(r == 0, "load failed: %d %s", r, error ? error : "");
	ck_assert_ptr_nonnull(cfg->policy);
}

static uid_t lookup_uid(const char *name)
{
	struct passwd *pw = getpwnam(name);

	ck_assert_msg(pw != NULL, "no user %s on this machine", name);
	return pw->pw_uid;
}

static gid_t lookup_gid(const char *name)
{
	struct group *gr = getgrnam(name);

	ck_assert_msg(gr != NULL, "no group %s on this machine", name);
	return gr->gr_gid;
}

/* An identity with no supplementary groups. */
static void ident(struct policy_identity *id, uid_t uid, gid_t gid,
		  const char *name)
{
	ck_assert_int_eq(policy_identity_init(id, uid, gid, name, NULL, 0), 0);
}

/* Checks one decision: allowed or not, and by the rule at line (0: by
 * the default, whose line is default_line). */
static void expect(const struct config *cfg, struct policy_identity *id,
		   enum policy_action action, const char *topic, bool allow,
		   unsigned line)
{
	const struct policy_rule *rule = NULL;
	bool got = policy_check(cfg->policy, id, action, topic, &rule);

	ck_assert_ptr_nonnull(rule);
	ck_assert_msg(got == allow && rule->line == line,
		      "%s %s: %s by line %u, expected %s by line %u",
		      policy_action_name(action), topic,
		      got ? "allowed" : "denied", rule->line,
		      allow ? "allowed" : "denied", line);
	ck_assert_int_eq(rule->allow, allow);
}

/* ---- parsing ------------------------------------------------------- */

/* Each action alone: allowed on its topic, and no other action is. */
START_TEST(test_each_action)
{
	enum policy_action a = (enum policy_action)_i, b;
	struct policy_identity id;
	struct config cfg;
	char text[200];

	snprintf(text, sizeof(text),
		 "[policy]\ndefault = deny\nallow = %s * topic=t/#\n",
		 policy_action_name(a));
	pol_load_ok(&cfg, text);
	ck_assert_uint_eq(policy_n_rules(cfg.policy), 1);
	ident(&id, 1000, 1000, "alice");
	for (b = 0; b < POLICY_N_ACTIONS; b++) {
		expect(&cfg, &id, b, "t/x", a == b, a == b ? 3 : 2);
		expect(&cfg, &id, b, "u", false, 2);
	}
	policy_identity_deinit(&id);
	config_deinit(&cfg);
}
END_TEST

START_TEST(test_action_lists)
{
	struct policy_identity id;
	struct config cfg;

	pol_load_ok(&cfg, "[policy]\n"
			  "default = deny\n"
			  "allow = publish,retain,timer * topic=a\n"
			  "allow = all * topic=b\n"
			  "deny = serve,request,monitor * topic=b\n");
	ident(&id, 1000, 1000, "alice");
	expect(&cfg, &id, POLICY_PUBLISH, "a", true, 3);
	expect(&cfg, &id, POLICY_RETAIN, "a", true, 3);
	expect(&cfg, &id, POLICY_TIMER, "a", true, 3);
	expect(&cfg, &id, POLICY_SUBSCRIBE, "a", false, 2);
	expect(&cfg, &id, POLICY_SERVE, "a", false, 2);
	for (enum policy_action b = 0; b < POLICY_N_ACTIONS; b++) {
		bool denied = b == POLICY_SERVE || b == POLICY_REQUEST ||
			      b == POLICY_MONITOR;

		expect(&cfg, &id, b, "b", !denied, denied ? 5 : 4);
	}
	ck_assert_str_eq(policy_action_name(POLICY_MONITOR), "monitor");
	ck_assert_str_eq(policy_action_name(POLICY_N_ACTIONS), "unknown");
	policy_identity_deinit(&id);
	config_deinit(&cfg);
}
END_TEST

/* The rules as parsed: principals by name and by number, either order of
 * principal and topic, blanks and comments. */
START_TEST(test_principals)
{
	struct config cfg;
	struct policy_identity root, nobody, d, other;
	gid_t nogroup = lookup_gid("nogroup"), daemon_gid = lookup_gid("daemon");
	uid_t nobody_uid = lookup_uid("nobody");

	pol_load_ok(&cfg, "[policy]\n"
			  "default = deny ; nothing unless said\n"
			  "allow = publish user=root topic=r/1\n"
			  "allow = publish topic=r/2   user=0\n"
			  "allow =\tpublish  user=nobody\ttopic=n/1\n"
			  "allow = publish user=65534 topic=n/2\n"
			  "allow = publish group=nogroup topic=g/1\n"
			  "allow = publish group=daemon topic=g/2\n"
			  "allow = publish group=1 topic=g/3\n"
			  "allow = publish * topic=any/1\n"
			  "allow = publish user=* topic=any/2\n"
			  "allow = publish group=* topic=any/3\n"
			  "allow = publish user=4000000000 topic=big\n");
	ck_assert_uint_eq(policy_n_rules(cfg.policy), 11);
	ident(&root, 0, 0, "root");
	ident(&nobody, nobody_uid, nogroup, "nobody");
	ident(&d, 1, daemon_gid, "daemon");
	ident(&other, 4000000000u, 4000000000u, NULL);

	expect(&cfg, &root, POLICY_PUBLISH, "r/1", true, 3);
	expect(&cfg, &root, POLICY_PUBLISH, "r/2", true, 4);
	expect(&cfg, &nobody, POLICY_PUBLISH, "r/1", false, 2);
	expect(&cfg, &nobody, POLICY_PUBLISH, "n/1", true, 5);
	expect(&cfg, &nobody, POLICY_PUBLISH, "n/2", true, 6);
	expect(&cfg, &root, POLICY_PUBLISH, "n/1", false, 2);
	expect(&cfg, &nobody, POLICY_PUBLISH, "g/1", true, 7);
	expect(&cfg, &root, POLICY_PUBLISH, "g/1", false, 2);
	expect(&cfg, &d, POLICY_PUBLISH, "g/2", true, 8);
	expect(&cfg, &d, POLICY_PUBLISH, "g/3", daemon_gid == 1, daemon_gid == 1 ? 9 : 2);
	expect(&cfg, &nobody, POLICY_PUBLISH, "g/2", false, 2);
	for (int i = 0; i < 3; i++) {
		char topic[16];

		snprintf(topic, sizeof(topic), "any/%d", i + 1);
		expect(&cfg, &root, POLICY_PUBLISH, topic, true, 10 + i);
		expect(&cfg, &other, POLICY_PUBLISH, topic, true, 10 + i);
	}
	expect(&cfg, &other, POLICY_PUBLISH, "big", true, 13);
	expect(&cfg, &root, POLICY_PUBLISH, "big", false, 2);

	policy_identity_deinit(&root);
	policy_identity_deinit(&nobody);
	policy_identity_deinit(&d);
	policy_identity_deinit(&other);
	config_deinit(&cfg);
}
END_TEST

/* %u and %U, a literal %, and an identity without a usable name. */
START_TEST(test_substitutions)
{
	struct policy_identity alice, bob, anon, odd;
	struct config cfg;

	pol_load_ok(&cfg, "[policy]\n"
			  "default = deny\n"
			  "allow = publish,subscribe user=* topic=users/%u/#\n"
			  "allow = publish * topic=uid/%U/+\n"
			  "allow = publish * topic=home-%u/x\n"
			  "allow = publish * topic=pct/%%u\n"
			  "deny = publish * topic=users/%u/ro/#\n");
	ident(&alice, 1000, 1000, "alice");
	ident(&bob, 1001, 1001, "bob");
	ident(&anon, 1234, 1234, NULL);
	/* A name that cannot be a topic level is as no name. */
	ident(&odd, 1235, 1235, "a/b");
	ck_assert_ptr_null(odd.name);

	expect(&cfg, &alice, POLICY_PUBLISH, "users/alice/x", true, 3);
	expect(&cfg, &alice, POLICY_SUBSCRIBE, "users/alice/x/y", true, 3);
	expect(&cfg, &alice, POLICY_PUBLISH, "users/alice", true, 3);
	expect(&cfg, &alice, POLICY_PUBLISH, "users/bob/x", false, 2);
	expect(&cfg, &bob, POLICY_PUBLISH, "users/bob/x", true, 3);
	expect(&cfg, &bob, POLICY_PUBLISH, "users/alice/x", false, 2);
	/* the literal text is not the substitution */
	expect(&cfg, &alice, POLICY_PUBLISH, "users/%u/x", false, 2);
	expect(&cfg, &alice, POLICY_PUBLISH, "users/alice/ro/x", false, 7);
	expect(&cfg, &alice, POLICY_PUBLISH, "users/bob/ro/x", false, 2);

	expect(&cfg, &alice, POLICY_PUBLISH, "uid/1000/a", true, 4);
	expect(&cfg, &alice, POLICY_PUBLISH, "uid/1001/a", false, 2);
	expect(&cfg, &anon, POLICY_PUBLISH, "uid/1234/a", true, 4);

	expect(&cfg, &alice, POLICY_PUBLISH, "home-alice/x", true, 5);
	expect(&cfg, &alice, POLICY_PUBLISH, "home-bob/x", false, 2);

	/* %% is a literal %, for everyone */
	expect(&cfg, &alice, POLICY_PUBLISH, "pct/%u", true, 6);
	expect(&cfg, &alice, POLICY_PUBLISH, "pct/alice", false, 2);
	expect(&cfg, &anon, POLICY_PUBLISH, "pct/%u", true, 6);

	/* %u rules do not apply without a name */
	expect(&cfg, &anon, POLICY_PUBLISH, "users/(null)/x", false, 2);
	expect(&cfg, &anon, POLICY_PUBLISH, "users/x", false, 2);
	expect(&cfg, &odd, POLICY_PUBLISH, "users/a/b/x", false, 2);

	policy_identity_deinit(&alice);
	policy_identity_deinit(&bob);
	policy_identity_deinit(&anon);
	policy_identity_deinit(&odd);
	config_deinit(&cfg);
}
END_TEST

/* ---- precedence ---------------------------------------------------- */

struct prec_case {
	const char *what;
	const char *rules; /* after "[policy]\n" */
	const char *user;  /* alice (uid 1000, gid 1000, in 50) or root */
	const char *topic;
	bool allow;
	unsigned line; /* of the deciding rule, counting [policy] as 1 */
};

static const struct prec_case prec_cases[] = {
	{ "specific beats general (deny inside allow)",
	  "default = deny\nallow = publish * topic=a/#\ndeny = publish * topic=a/b\n",
	  "alice", "a/b", false, 4 },
	{ "specific beats general (the general one elsewhere)",
	  "default = deny\nallow = publish * topic=a/#\ndeny = publish * topic=a/b\n",
	  "alice", "a/c", true, 3 },
	{ "specific beats general (allow inside deny)",
	  "default = allow\ndeny = publish * topic=s/#\nallow = publish * topic=s/pub/+\n",
	  "alice", "s/pub/x", true, 4 },
	{ "more literal levels win whatever their order",
	  "default = deny\ndeny = publish * topic=a/b/c\nallow = publish * topic=a/b/+\n",
	  "alice", "a/b/c", false, 3 },
	{ "more literal levels win: a/+/c over +/+/+",
	  "default = deny\nallow = publish * topic=a/+/c\ndeny = publish * topic=+/+/+\n",
	  "alice", "a/b/c", true, 3 },
	{ "equal literals: fewer wildcards win (a/# over a/+/+)",
	  "default = allow\nallow = publish * topic=a/+/+\ndeny = publish * topic=a/#\n",
	  "alice", "a/b/c", false, 4 },
	{ "equal counts: no '#' wins (a/+ over a/#)",
	  "default = deny\ndeny = publish * topic=a/#\nallow = publish * topic=a/+\n",
	  "alice", "a/b", true, 4 },
	{ "'#' over '+/+' (fewer wildcards)",
	  "default = deny\nallow = publish * topic=+/+\ndeny = publish * topic=#\n",
	  "alice", "x/y", false, 4 },
	{ "equal specificity: deny beats allow (allow first)",
	  "default = allow\nallow = publish * topic=t/+\ndeny = publish * topic=+/x\n",
	  "alice", "t/x", false, 4 },
	{ "equal specificity: deny beats allow (deny first)",
	  "default = allow\ndeny = publish * topic=+/x\nallow = publish * topic=t/+\n",
	  "alice", "t/x", false, 3 },
	{ "the same pattern: deny beats allow",
	  "default = allow\nallow = publish * topic=t\ndeny = publish * topic=t\n",
	  "alice", "t", false, 4 },
	{ "the same pattern: user beats everyone",
	  "default = allow\ndeny = publish * topic=secret/#\nallow = publish user=root topic=secret/#\n",
	  "root", "secret/x", true, 4 },
	{ "the same pattern: everyone else denied",
	  "default = allow\ndeny = publish * topic=secret/#\nallow = publish user=root topic=secret/#\n",
	  "alice", "secret/x", false, 3 },
	{ "the same pattern: group beats everyone",
	  "default = deny\nallow = publish * topic=g/#\ndeny = publish group=50 topic=g/#\n",
	  "alice", "g/x", false, 4 },
	{ "the same pattern: user beats group",
	  "default = deny\ndeny = publish group=50 topic=g/#\nallow = publish user=1000 topic=g/#\n",
	  "alice", "g/x", true, 4 },
	{ "principal ranks below the pattern",
	  "default = deny\nallow = publish user=1000 topic=p/#\ndeny = publish * topic=p/q\n",
	  "alice", "p/q", false, 4 },
	{ "a rule of another user is no candidate",
	  "default = allow\ndeny = publish user=root topic=p/#\n",
	  "alice", "p/q", true, 2 },
	{ "a rule of another action is no candidate",
	  "default = allow\ndeny = subscribe * topic=p/#\n",
	  "alice", "p/q", true, 2 },
	{ "default allow when nothing matches",
	  "default = allow\ndeny = publish * topic=a/#\n",
	  "alice", "b", true, 2 },
	{ "default deny when nothing matches",
	  "allow = publish * topic=a/#\ndefault = deny\n",
	  "alice", "b", false, 3 },
	{ "a full tie of one effect names the first",
	  "default = deny\nallow = publish * topic=+/x\nallow = publish * topic=t/+\n",
	  "alice", "t/x", true, 3 },
	{ "'#' matches its parent level too",
	  "default = deny\nallow = publish * topic=a/#\n",
	  "alice", "a", true, 3 },
};

START_TEST(test_precedence)
{
	const struct prec_case *c = &prec_cases[_i];
	struct policy_identity id;
	struct config cfg;
	char text[512];
	gid_t groups[] = { 50 };

	snprintf(text, sizeof(text), "[policy]\n%s", c->rules);
	pol_load_ok(&cfg, text);
	if (!strcmp(c->user, "root"))
		ck_assert_int_eq(
			policy_identity_init(&id, 0, 0, "root", NULL, 0), 0);
	else
		ck_assert_int_eq(policy_identity_init(&id, 1000, 1000,
						      "alice", groups, 1),
				 0);
	ck_assert_msg(true, "%s", c->what);
	expect(&cfg, &id, POLICY_PUBLISH, c->topic, c->allow, c->line);
	policy_identity_deinit(&id);
	config_deinit(&cfg);
}
END_TEST

/* No [policy]: no policy at all, and everything allowed at no cost. */
START_TEST(test_no_policy)
{
	const struct policy_rule *rule = (const void *)1;
	struct policy_identity id;
	struct config cfg;

	ck_assert_int_eq(config_init(&cfg), 0);
	ck_assert_ptr_null(cfg.policy);
	ck_assert_int_eq(pol_load(&cfg, "[bus]\nmax_clients = 5\n", NULL,
				  NULL),
			 0);
	ck_assert_ptr_null(cfg.policy);
	ident(&id, 1000, 1000, "alice");
	for (enum policy_action a = 0; a < POLICY_N_ACTIONS; a++) {
		ck_assert(policy_check(cfg.policy, &id, a, "any/topic",
				       &rule));
		ck_assert_ptr_null(rule);
		rule = (const void *)1;
		ck_assert_int_eq(policy_check_pattern(cfg.policy, &id, a,
						      "#", &rule),
				 POLICY_ALLOWED);
		ck_assert_ptr_null(rule);
	}
	/* and nothing was cached or counted */
	ck_assert_ptr_null(id.cache);
	ck_assert_uint_eq(id.cache_hits + id.cache_misses, 0);
	ck_assert_uint_eq(policy_n_rules(NULL), 0);
	ck_assert_uint_eq(policy_generation(NULL), 0);
	policy_identity_deinit(&id);
	config_deinit(&cfg);
}
END_TEST

/* ---- groups and identities ----------------------------------------- */

START_TEST(test_groups)
{
	struct policy_identity member, primary, outsider;
	struct config cfg;
	gid_t sup[] = { 900, 7, 300, 7 };

	pol_load_ok(&cfg, "[policy]\n"
			  "default = deny\n"
			  "allow = publish group=300 topic=ops/#\n"
			  "allow = publish group=7 topic=seven\n"
			  "deny = publish group=900 topic=ops/secret\n");
	/* supplementary groups, unsorted and with a duplicate */
	ck_assert_int_eq(
		policy_identity_init(&member, 1000, 1000, "alice", sup, 4), 0);
	ck_assert_uint_eq(member.n_groups, 3);
	ck_assert_uint_eq(member.groups[0], 7);
	ck_assert_uint_eq(member.groups[1], 300);
	ck_assert_uint_eq(member.groups[2], 900);
	/* the primary group counts as well */
	ident(&primary, 1001, 300, "bob");
	ident(&outsider, 1002, 1002, "carol");

	expect(&cfg, &member, POLICY_PUBLISH, "ops/x", true, 3);
	expect(&cfg, &member, POLICY_PUBLISH, "seven", true, 4);
	expect(&cfg, &member, POLICY_PUBLISH, "ops/secret", false, 5);
	expect(&cfg, &primary, POLICY_PUBLISH, "ops/x", true, 3);
	expect(&cfg, &primary, POLICY_PUBLISH, "ops/secret", true, 3);
	expect(&cfg, &primary, POLICY_PUBLISH, "seven", false, 2);
	expect(&cfg, &outsider, POLICY_PUBLISH, "ops/x", false, 2);

	policy_identity_deinit(&member);
	policy_identity_deinit(&primary);
	policy_identity_deinit(&outsider);
	config_deinit(&cfg);
}
END_TEST

START_TEST(test_identity_status)
{
	struct policy_identity id;
	uid_t nobody = lookup_uid("nobody");
	char text[512];

	/* fsgid is the fourth Gid field; groups sorted, duplicates gone */
	snprintf(text, sizeof(text),
		 "Name:\tx\nUmask:\t0022\nState:\tS (sleeping)\n"
		 "Uid:\t%u\t%u\t%u\t%u\nGid:\t5\t6\t7\t8\n"
		 "FDSize:\t64\nGroups:\t9 3 9 4000000000 \nNStgid:\t1\n",
		 (unsigned)nobody, (unsigned)nobody, (unsigned)nobody,
		 (unsigned)nobody);
	ck_assert_int_eq(policy_identity_from_status(&id, text, nobody), 0);
	ck_assert_uint_eq(id.uid, nobody);
	ck_assert_uint_eq(id.gid, 8);
	ck_assert_uint_eq(id.n_groups, 3);
	ck_assert_uint_eq(id.groups[0], 3);
	ck_assert_uint_eq(id.groups[1], 9);
	ck_assert_uint_eq(id.groups[2], 4000000000u);
	ck_assert_str_eq(id.name, "nobody");
	policy_identity_deinit(&id);

	/* no supplementary groups */
	ck_assert_int_eq(policy_identity_from_status(
				 &id, "Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nGroups:\t\n",
				 0),
			 0);
	ck_assert_uint_eq(id.n_groups, 0);
	ck_assert_str_eq(id.name, "root");
	policy_identity_deinit(&id);

	/* a uid without a passwd entry has no name */
	ck_assert_ptr_null(getpwuid(3999999999u));
	ck_assert_int_eq(policy_identity_from_status(
				 &id,
				 "Uid:\t3999999999\t3999999999\t3999999999\t3999999999\n"
				 "Gid:\t1\t1\t1\t1\nGroups:\t2\n",
				 3999999999u),
			 0);
	ck_assert_ptr_null(id.name);
	ck_assert_uint_eq(id.n_groups, 1);
	policy_identity_deinit(&id);

	/* the fsuid must be the uid the caller verified */
	ck_assert_int_eq(policy_identity_from_status(
				 &id, "Uid:\t0\t0\t0\t5\nGid:\t0\t0\t0\t0\nGroups:\n",
				 0),
			 -EPERM);
	/* broken files */
	ck_assert_int_eq(policy_identity_from_status(
				 &id, "Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\n", 0),
			 -EIO);
	ck_assert_int_eq(policy_identity_from_status(
				 &id, "Uid:\t0\t0\t0\nGid:\t0\t0\t0\t0\nGroups:\n",
				 0),
			 -EIO);
	ck_assert_int_eq(policy_identity_from_status(
				 &id, "Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nGroups:\t1 x\n",
				 0),
			 -EIO);
	ck_assert_int_eq(policy_identity_from_status(&id, "", 0), -EIO);
}
END_TEST

/* The real thing, from this process's /proc entry. */
START_TEST(test_identity_pid)
{
	struct policy_identity id;
	gid_t groups[256];
	int n = getgroups(256, groups), pidfd, status;
	struct passwd *pw = getpwuid(geteuid());
	pid_t child;

	ck_assert_int_ge(n, 0);
	pidfd = (int)syscall(SYS_pidfd_open, getpid(), 0);
	ck_assert_int_ge(pidfd, 0);
	ck_assert_int_eq(policy_identity_from_pid(&id, getpid(), pidfd,
						  geteuid()),
			 0);
	ck_assert_uint_eq(id.uid, geteuid());
	ck_assert_uint_eq(id.gid, getegid());
	if (pw)
		ck_assert_str_eq(id.name, pw->pw_name);
	for (int i = 0; i < n; i++) {
		size_t j;

		for (j = 0; j < id.n_groups; j++)
			if (id.groups[j] == groups[i])
				break;
		ck_assert_msg(j < id.n_groups, "group %u missing",
			      (unsigned)groups[i]);
	}
	ck_assert_uint_eq(id.n_groups, (size_t)n);
	policy_identity_deinit(&id);
	close(pidfd);

	/* another uid than the process's */
	ck_assert_int_eq(policy_identity_from_pid(&id, getpid(), -1,
						  geteuid() + 1),
			 -EPERM);

	/* a process that has exited: its pidfd says so even while its
	 * (zombie) /proc entry is still there */
	child = fork();
	ck_assert_int_ge(child, 0);
	if (child == 0)
		_exit(0);
	pidfd = (int)syscall(SYS_pidfd_open, child, 0);
	ck_assert_int_ge(pidfd, 0);
	ck_assert_int_eq(waitid(P_PID, (id_t)child, NULL, WEXITED | WNOWAIT),
			 0);
	ck_assert_int_eq(policy_identity_from_pid(&id, child, pidfd,
						  geteuid()),
			 -ESRCH);
	ck_assert_int_eq(waitpid(child, &status, 0), child);
	/* and once reaped, no entry at all */
	ck_assert_int_eq(policy_identity_from_pid(&id, child, -1, geteuid()),
			 -ESRCH);
	close(pidfd);
}
END_TEST

/* ---- patterns ------------------------------------------------------ */

struct scope_case {
	const char *rules;
	const char *pattern;
	enum policy_scope scope;
	unsigned line; /* of the rule named */
};

static const char own_tree[] =
	"default = deny\nallow = subscribe * topic=users/%u/#\n";
static const char secret[] =
	"default = allow\ndeny = subscribe * topic=secret/#\n"
	"allow = subscribe * topic=secret/public/#\n";
static const char shadowed[] = "default = deny\n"
			       "allow = subscribe * topic=a/+/c\n"
			       "deny = subscribe * topic=a/b/c\n";

static const struct scope_case scope_cases[] = {
	/* own trees (alice) */
	{ own_tree, "users/alice/#", POLICY_ALLOWED, 3 },
	{ own_tree, "users/alice", POLICY_ALLOWED, 3 },
	{ own_tree, "users/alice/+/x", POLICY_ALLOWED, 3 },
	{ own_tree, "users/bob/#", POLICY_DENIED, 2 },
	{ own_tree, "users/#", POLICY_MIXED, 2 },
	{ own_tree, "users/+/x", POLICY_MIXED, 2 },
	{ own_tree, "+/alice/x", POLICY_MIXED, 2 },
	{ own_tree, "#", POLICY_MIXED, 2 },
	{ own_tree, "other/#", POLICY_DENIED, 2 },
	/* a hole in a hole */
	{ secret, "secret/#", POLICY_MIXED, 3 },
	{ secret, "secret/+", POLICY_MIXED, 3 },
	{ secret, "secret/x/#", POLICY_DENIED, 3 },
	{ secret, "secret/public/#", POLICY_ALLOWED, 4 },
	{ secret, "secret/public", POLICY_ALLOWED, 4 },
	{ secret, "+/public/x", POLICY_ALLOWED, 2 },
	{ secret, "+/private/x", POLICY_MIXED, 3 },
	{ secret, "weather/#", POLICY_ALLOWED, 2 },
	{ secret, "#", POLICY_MIXED, 3 },
	/* an allow shadowed by a more specific deny is no allow */
	{ shadowed, "a/b/#", POLICY_DENIED, 2 },
	{ shadowed, "a/b/c", POLICY_DENIED, 4 },
	{ shadowed, "a/x/c", POLICY_ALLOWED, 3 },
	{ shadowed, "a/+/c", POLICY_MIXED, 4 },
	{ shadowed, "a/+/#", POLICY_MIXED, 2 },
	/* rules of other actions or users do not count */
	{ "default = deny\nallow = publish * topic=#\n"
	  "allow = subscribe user=root topic=#\n",
	  "#", POLICY_DENIED, 2 },
	/* '#' also covers its parent level: x and x/# meet in x */
	{ "default = allow\ndeny = subscribe * topic=x\n", "x/#",
	  POLICY_MIXED, 3 },
	{ "default = allow\ndeny = subscribe * topic=x/+/#\n", "x/#",
	  POLICY_MIXED, 3 },
	{ "default = allow\ndeny = subscribe * topic=x/#\n", "x", POLICY_DENIED,
	  3 },
};

START_TEST(test_scope)
{
	const struct scope_case *c = &scope_cases[_i];
	const struct policy_rule *rule = NULL;
	struct policy_identity id;
	struct config cfg;
	char text[512];
	enum policy_scope got;

	snprintf(text, sizeof(text), "[policy]\n%s", c->rules);
	pol_load_ok(&cfg, text);
	ident(&id, 1000, 1000, "alice");
	got = policy_check_pattern(cfg.policy, &id, POLICY_SUBSCRIBE,
				   c->pattern, &rule);
	ck_assert_ptr_nonnull(rule);
	ck_assert_msg(got == c->scope && rule->line == c->line,
		      "%s: got scope %d by line %u, expected %d by line %u",
		      c->pattern, got, rule->line, c->scope, c->line);
	if (got == POLICY_DENIED || got == POLICY_MIXED)
		ck_assert(!rule->allow);
	else
		ck_assert(rule->allow);
	policy_identity_deinit(&id);
	config_deinit(&cfg);
}
END_TEST

/* ---- the cache ----------------------------------------------------- */

START_TEST(test_cache)
{
	struct policy_identity id;
	const struct policy_rule *rule;
	struct policy_cache *cache;
	struct config cfg;
	uint64_t gen1, gen2;
	char topic[32];
	int i;

	pol_load_ok(&cfg, "[policy]\ndefault = deny\n"
			  "allow = publish * topic=a/#\n");
	gen1 = policy_generation(cfg.policy);
	ck_assert_uint_ne(gen1, 0);
	ident(&id, 1000, 1000, "alice");

	ck_assert(policy_check(cfg.policy, &id, POLICY_PUBLISH, "a/x", &rule));
	ck_assert_uint_eq(id.cache_misses, 1);
	ck_assert_uint_eq(id.cache_hits, 0);
	cache = id.cache;
	ck_assert_ptr_nonnull(cache);
	for (i = 0; i < 10; i++) {
		rule = NULL;
		ck_assert(policy_check(cfg.policy, &id, POLICY_PUBLISH, "a/x",
				       &rule));
		ck_assert_uint_eq(rule->line, 3);
	}
	ck_assert_uint_eq(id.cache_misses, 1);
	ck_assert_uint_eq(id.cache_hits, 10);
	/* another action, another topic: misses, then hits */
	ck_assert(!policy_check(cfg.policy, &id, POLICY_SUBSCRIBE, "a/x",
				&rule));
	ck_assert_uint_eq(rule->line, 2);
	ck_assert(policy_check(cfg.policy, &id, POLICY_PUBLISH, "a", NULL));
	ck_assert(!policy_check(cfg.policy, &id, POLICY_PUBLISH, "b", NULL));
	ck_assert_uint_eq(id.cache_misses, 4);
	ck_assert(!policy_check(cfg.policy, &id, POLICY_SUBSCRIBE, "a/x",
				&rule));
	ck_assert_uint_eq(rule->line, 2);
	ck_assert(!policy_check(cfg.policy, &id, POLICY_PUBLISH, "b", NULL));
	ck_assert_uint_eq(id.cache_misses, 4);
	ck_assert_uint_eq(id.cache_hits, 12);

	/* A reload: the same topics are decided anew, by the new rules,
	 * without any flush. */
	ck_assert_int_eq(pol_load(&cfg, "[policy]\ndefault = allow\n"
					"deny = publish * topic=a/x\n",
				  NULL, NULL),
			 0);
	gen2 = policy_generation(cfg.policy);
	ck_assert_uint_ne(gen2, gen1);
	id.cache_hits = id.cache_misses = 0;
	ck_assert(!policy_check(cfg.policy, &id, POLICY_PUBLISH, "a/x",
				&rule));
	ck_assert_uint_eq(rule->line, 3);
	ck_assert(policy_check(cfg.policy, &id, POLICY_PUBLISH, "b", &rule));
	ck_assert_uint_eq(rule->line, 2);
	ck_assert_uint_eq(id.cache_misses, 2);
	ck_assert(!policy_check(cfg.policy, &id, POLICY_PUBLISH, "a/x", NULL));
	ck_assert_uint_eq(id.cache_hits, 1);
	ck_assert_ptr_eq(id.cache, cache);
	/* a topic that extends a cached one is not that one */
	ck_assert(policy_check(cfg.policy, &id, POLICY_PUBLISH, "a/xy", NULL));
	ck_assert(policy_check(cfg.policy, &id, POLICY_PUBLISH, "a/x/y", NULL));
	ck_assert(!policy_check(cfg.policy, &id, POLICY_PUBLISH, "a/x", NULL));

	/* Many more topics than the cache holds: always right, the cache
	 * is not reallocated, and recent ones hit. */
	for (i = 0; i < 1000; i++) {
		snprintf(topic, sizeof(topic), "a/x%s%d", i % 2 ? "" : "/",
			 i);
		ck_assert(policy_check(cfg.policy, &id, POLICY_PUBLISH, topic,
				       NULL));
		ck_assert(policy_check(cfg.policy, &id, POLICY_PUBLISH, topic,
				       NULL));
		ck_assert(!policy_check(cfg.policy, &id, POLICY_PUBLISH,
					"a/x", NULL));
	}
	ck_assert_ptr_eq(id.cache, cache);
	ck_assert_uint_ge(id.cache_hits, 1000);
	policy_identity_deinit(&id);
	config_deinit(&cfg);
}
END_TEST

/* The memo of the last decision: exact topic, action and policy only. */
START_TEST(test_memo)
{
	struct policy_identity id;
	const struct policy_rule *rule;
	struct config cfg;
	char at[POLICY_MEMO_TOPIC_MAX + 1], over[POLICY_MEMO_TOPIC_MAX + 2];

	/* "m/" and x's: POLICY_MEMO_TOPIC_MAX bytes, and one more */
	memset(at, 'x', sizeof(at) - 1);
	at[sizeof(at) - 1] = '\0';
	memcpy(at, "m/", 2);
	memset(over, 'x', sizeof(over) - 1);
	over[sizeof(over) - 1] = '\0';
	memcpy(over, "m/", 2);
	pol_load_ok(&cfg, "[policy]\ndefault = deny\n"
			  "allow = publish * topic=m/#\n"
			  "deny = publish * topic=m/secret\n");
	ident(&id, 1000, 1000, "alice");
	for (int i = 0; i < 3; i++) {
		ck_assert(policy_check(cfg.policy, &id, POLICY_PUBLISH, at,
				       &rule));
		ck_assert_uint_eq(rule->line, 3);
		ck_assert(policy_check(cfg.policy, &id, POLICY_PUBLISH, at,
				       NULL));
		/* the same topic, another action: not the memo's answer */
		ck_assert(!policy_check(cfg.policy, &id, POLICY_SUBSCRIBE, at,
					&rule));
		ck_assert_uint_eq(rule->line, 2);
		ck_assert(policy_check(cfg.policy, &id, POLICY_PUBLISH, over,
				       NULL));
		ck_assert(policy_check(cfg.policy, &id, POLICY_PUBLISH, over,
				       NULL));
		/* a topic the memo's is a prefix of, and one it is not */
		ck_assert(policy_check(cfg.policy, &id, POLICY_PUBLISH,
				       "m/sec", NULL));
		ck_assert(!policy_check(cfg.policy, &id, POLICY_PUBLISH,
					"m/secret", &rule));
		ck_assert_uint_eq(rule->line, 4);
		ck_assert(!policy_check(cfg.policy, &id, POLICY_PUBLISH,
					"m/secret", NULL));
		ck_assert(policy_check(cfg.policy, &id, POLICY_PUBLISH,
				       "m/secre", NULL));
	}
	ck_assert_uint_eq(id.cache_misses, 6);
	ck_assert_uint_eq(id.cache_hits, 3 * 9 - 6);
	/* a new policy: the memo of the old one does not answer */
	ck_assert(policy_check(cfg.policy, &id, POLICY_PUBLISH, "m/a", NULL));
	ck_assert_int_eq(pol_load(&cfg, "[policy]\ndefault = allow\n"
					"deny = publish * topic=m/a\n",
				  NULL, NULL),
			 0);
	ck_assert(!policy_check(cfg.policy, &id, POLICY_PUBLISH, "m/a",
				&rule));
	ck_assert_uint_eq(rule->line, 3);
	policy_identity_deinit(&id);
	config_deinit(&cfg);
}
END_TEST

static int u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Two topics of one hash are still two topics to the cache. */
START_TEST(test_cache_collision)
{
	enum { N = 300000 };
	uint64_t *keys = malloc(N * sizeof(*keys));
	struct policy_identity id;
	struct config cfg;
	char t1[32], t2[32], text[128];
	uint32_t i, a = 0, b = 0;

	/* hash << 32 | index, sorted: equal hashes end up side by side */
	ck_assert_ptr_nonnull(keys);
	for (i = 0; i < N; i++) {
		snprintf(t1, sizeof(t1), "c/%08x", i * 0x9e3779b9u);
		keys[i] = (uint64_t)policy_cache_hash(t1, strlen(t1)) << 32 | i;
	}
	qsort(keys, N, sizeof(*keys), u64_cmp);
	for (i = 1; i < N; i++) {
		if (keys[i] >> 32 == keys[i - 1] >> 32) {
			a = (uint32_t)keys[i - 1];
			b = (uint32_t)keys[i];
			break;
		}
	}
	free(keys);
	ck_assert_msg(i < N, "no two topics of one hash among %d", N);
	snprintf(t1, sizeof(t1), "c/%08x", a * 0x9e3779b9u);
	snprintf(t2, sizeof(t2), "c/%08x", b * 0x9e3779b9u);
	ck_assert_uint_eq(policy_cache_hash(t1, strlen(t1)),
			  policy_cache_hash(t2, strlen(t2)));

	snprintf(text, sizeof(text),
		 "[policy]\ndefault = allow\ndeny = publish * topic=%s\n", t1);
	pol_load_ok(&cfg, text);
	ident(&id, 1000, 1000, "alice");
	for (int k = 0; k < 3; k++) {
		ck_assert(!policy_check(cfg.policy, &id, POLICY_PUBLISH, t1,
					NULL));
		ck_assert(policy_check(cfg.policy, &id, POLICY_PUBLISH, t2,
				       NULL));
	}
	ck_assert_uint_eq(id.cache_misses, 2);
	ck_assert_uint_eq(id.cache_hits, 4);
	policy_identity_deinit(&id);
	config_deinit(&cfg);
}
END_TEST

/* Within a set, the least recently used decision goes first; a long
 * topic is decided each time, and rightly. */
START_TEST(test_cache_lru)
{
	char topics[POLICY_CACHE_WAYS + 1][32], text[512];
	char long_topic[POLICY_CACHE_TOPIC_MAX + 2];
	struct policy_identity id;
	struct config cfg;
	unsigned n = 0, i;
	uint32_t set = policy_cache_hash("s/0", 3) % POLICY_CACHE_SETS;

	/* POLICY_CACHE_WAYS + 1 topics of one set */
	for (i = 0; n < POLICY_CACHE_WAYS + 1; i++) {
		snprintf(topics[n], sizeof(topics[n]), "s/%u", i);
		if (policy_cache_hash(topics[n], strlen(topics[n])) %
			    POLICY_CACHE_SETS ==
		    set)
			n++;
	}
	memset(long_topic, 'l', sizeof(long_topic) - 1);
	long_topic[sizeof(long_topic) - 1] = '\0';
	snprintf(text, sizeof(text),
		 "[policy]\ndefault = allow\ndeny = publish * topic=%s\n"
		 "deny = publish * topic=%s\n",
		 topics[0], long_topic);
	pol_load_ok(&cfg, text);
	ident(&id, 1000, 1000, "alice");

	/* a full set: every one hits */
	for (i = 0; i < POLICY_CACHE_WAYS; i++)
		ck_assert(policy_check(cfg.policy, &id, POLICY_PUBLISH,
				       topics[i], NULL) == (i != 0));
	ck_assert_uint_eq(id.cache_misses, POLICY_CACHE_WAYS);
	for (i = 0; i < POLICY_CACHE_WAYS; i++)
		ck_assert(policy_check(cfg.policy, &id, POLICY_PUBLISH,
				       topics[i], NULL) == (i != 0));
	ck_assert_uint_eq(id.cache_misses, POLICY_CACHE_WAYS);
	ck_assert_uint_eq(id.cache_hits, POLICY_CACHE_WAYS);
	/* topics[0] used last, then one more: topics[1] makes room */
	ck_assert(!policy_check(cfg.policy, &id, POLICY_PUBLISH, topics[0],
				NULL));
	ck_assert(policy_check(cfg.policy, &id, POLICY_PUBLISH,
			       topics[POLICY_CACHE_WAYS], NULL));
	ck_assert_uint_eq(id.cache_misses, POLICY_CACHE_WAYS + 1);
	ck_assert(!policy_check(cfg.policy, &id, POLICY_PUBLISH, topics[0],
				NULL));
	ck_assert_uint_eq(id.cache_misses, POLICY_CACHE_WAYS + 1);
	ck_assert(policy_check(cfg.policy, &id, POLICY_PUBLISH, topics[1],
			       NULL));
	ck_assert_uint_eq(id.cache_misses, POLICY_CACHE_WAYS + 2);

	/* a topic over POLICY_CACHE_TOPIC_MAX: never a hit, always right */
	id.cache_hits = id.cache_misses = 0;
	for (i = 0; i < 3; i++)
		ck_assert(!policy_check(cfg.policy, &id, POLICY_PUBLISH,
					long_topic, NULL));
	long_topic[POLICY_CACHE_TOPIC_MAX] = '\0';
	for (i = 0; i < 3; i++)
		ck_assert(policy_check(cfg.policy, &id, POLICY_PUBLISH,
				       long_topic, NULL));
	ck_assert_uint_eq(id.cache_misses, 4);
	ck_assert_uint_eq(id.cache_hits, 2);
	policy_identity_deinit(&id);
	config_deinit(&cfg);
}
END_TEST

/* ---- errors -------------------------------------------------------- */

struct bad_policy {
	const char *text;
	unsigned line;
	const char *msg;
};

static const struct bad_policy bad_policies[] = {
	{ "[policy]\ndefault = deny\nallow = pub * topic=a\n", 3,
	  "unknown action 'pub' (expected a comma-separated list of publish, "
	  "subscribe, request, serve, retain, timer, group, monitor, or all)" },
	{ "[policy]\ndefault = deny\nallow = publish,,serve * topic=a\n", 3,
	  "unknown action '' (expected a comma-separated list of publish, "
	  "subscribe, request, serve, retain, timer, group, monitor, or all)" },
	{ "[policy]\ndefault = deny\n\ndeny = publish * topic=a/#/b\n", 4,
	  "topic=a/#/b: not a valid topic pattern" },
	{ "[policy]\ndefault = deny\ndeny = publish * topic=a+\n", 3,
	  "topic=a+: not a valid topic pattern" },
	{ "[policy]\ndefault = deny\ndeny = publish * topic=a//b\n", 3,
	  "topic=a//b: not a valid topic pattern" },
	{ "[policy]\ndefault = deny\ndeny = publish * topic=\n", 3,
	  "topic=: not a valid topic pattern" },
	{ "[policy]\ndefault = deny\ndeny = publish * topic=a/%x\n", 3,
	  "topic=a/%x: '%x' is not a substitution (expected %u, %U or %%)" },
	{ "[policy]\ndefault = deny\ndeny = publish * topic=a/%\n", 3,
	  "topic=a/%: '%' is not a substitution (expected %u, %U or %%)" },
	{ "[policy]\ndefault = deny\ndeny = publish * topic=+%u\n", 3,
	  "topic=+%u: not a valid topic pattern" },
	{ "[policy]\ndefault = deny\nallow = publish user=no-such-user-here topic=a\n",
	  3, "unknown user 'no-such-user-here'" },
	{ "[policy]\ndefault = deny\nallow = publish group=no-such-group-here topic=a\n",
	  3, "unknown group 'no-such-group-here'" },
	{ "[policy]\ndefault = deny\nallow = publish user= topic=a\n", 3,
	  "user=: no user given" },
	{ "[policy]\ndefault = deny\nallow = publish user=4294967295 topic=a\n",
	  3, "unknown user '4294967295'" },
	{ "[policy]\ndefault = deny\nallow = publish *\n", 3,
	  "allow: missing topic=PATTERN (expected 'allow = ACTIONS PRINCIPAL topic=PATTERN')" },
	{ "[policy]\ndefault = deny\ndeny = publish topic=a\n", 3,
	  "deny: missing principal (user=, group= or *) (expected 'deny = ACTIONS PRINCIPAL topic=PATTERN')" },
	{ "[policy]\ndefault = deny\ndeny =\n", 3,
	  "deny: missing actions (expected 'deny = ACTIONS PRINCIPAL topic=PATTERN')" },
	{ "[policy]\ndefault = deny\ndeny = publish * user=root topic=a\n", 3,
	  "'user=root': principal given twice" },
	{ "[policy]\ndefault = deny\ndeny = publish * topic=a topic=b\n", 3,
	  "'topic=b': topic given twice" },
	{ "[policy]\ndefault = deny\ndeny = publish * topic=a extra\n", 3,
	  "'extra': expected user=NAME|UID, group=NAME|GID, '*' or topic=PATTERN" },
	{ "[policy]\ndefault = deny\npermit = publish * topic=a\n", 3,
	  "unknown key 'permit' in [policy] (expected default, allow or deny)" },
	{ "[policy]\ndefault = maybe\n", 2, "default: 'maybe' is not allow or deny" },
	{ "[policy]\ndefault = deny\ndefault = allow\n", 3,
	  "default: given twice (first at line 2)" },
	{ "[bus]\n\n[policy] ; rules\nallow = publish * topic=a\n", 3,
	  "[policy] without 'default = allow' or 'default = deny'" },
	{ "[policy]\ndefault = deny\n[bus]\n[policy]\n", 4,
	  "[policy] given twice (first at line 1)" },
	{ "[policy] x\n", 1, "expected '[policy]'" },
	{ "[policies]\n", 1,
	  "unknown section 'policies' (expected [bus], [topic \"PATTERN\"], [policy] or [bridge NAME])" },
};

START_TEST(test_bad)
{
	const struct bad_policy *bad = &bad_policies[_i];
	struct policy_identity id;
	struct config cfg, before;
	char *error = NULL, *path = NULL;
	char expect_msg[PATH_MAX + 300];
	int r;

	/* A policy to keep. */
	pol_load_ok(&cfg, "[policy]\ndefault = deny\n"
			  "allow = publish * topic=keep/#\n");
	before = cfg;

	r = pol_load(&cfg, bad->text, &error, &path);
	ck_assert_msg(r == -EINVAL, "case %d: returned %d", _i, r);
	snprintf(expect_msg, sizeof(expect_msg), "%s:%u: %s", path,
		 bad->line, bad->msg);
	ck_assert_ptr_nonnull(error);
	ck_assert_str_eq(error, expect_msg);

	/* the old policy stays, and still decides */
	ck_assert_int_eq(memcmp(&cfg, &before, sizeof(cfg)), 0);
	ck_assert_uint_eq(policy_n_rules(cfg.policy), 1);
	ident(&id, 1000, 1000, "alice");
	expect(&cfg, &id, POLICY_PUBLISH, "keep/x", true, 3);
	expect(&cfg, &id, POLICY_PUBLISH, "other", false, 2);
	policy_identity_deinit(&id);

	free(error);
	free(path);
	config_deinit(&cfg);
}
END_TEST

START_TEST(test_describe)
{
	const struct policy_rule *rule;
	struct policy_identity id;
	struct config cfg;
	char *path = NULL, buf[PATH_MAX + 100], want[PATH_MAX + 100];

	ck_assert_int_eq(config_init(&cfg), 0);
	ck_assert_int_eq(pol_load(&cfg,
				  "[policy]\n"
				  "; the default\n"
				  "default = deny\n"
				  "deny = publish * topic=secret/#\n"
				  "allow = publish * topic=pub/#\n",
				  NULL, &path),
			 0);
	ident(&id, 1000, 1000, "alice");
	ck_assert(!policy_check(cfg.policy, &id, POLICY_PUBLISH, "secret/x",
				&rule));
	policy_describe(cfg.policy, POLICY_PUBLISH, "secret/x", rule, buf,
			sizeof(buf));
	snprintf(want, sizeof(want), "publish to secret/x denied by %s:4",
		 path);
	ck_assert_str_eq(buf, want);

	ck_assert(!policy_check(cfg.policy, &id, POLICY_TIMER, "x", &rule));
	ck_assert_str_eq(rule->pattern, "#");
	policy_describe(cfg.policy, POLICY_TIMER, "x", rule, buf,
			sizeof(buf));
	snprintf(want, sizeof(want), "timer to x denied by default (%s:3)",
		 path);
	ck_assert_str_eq(buf, want);

	ck_assert(policy_check(cfg.policy, &id, POLICY_PUBLISH, "pub/a",
			       &rule));
	policy_describe(cfg.policy, POLICY_PUBLISH, "pub/a", rule, buf,
			sizeof(buf));
	snprintf(want, sizeof(want), "publish to pub/a allowed by %s:5",
		 path);
	ck_assert_str_eq(buf, want);

	policy_identity_deinit(&id);
	free(path);
	config_deinit(&cfg);
}
END_TEST

/* The example configuration: deny by default, a documented set open. */
START_TEST(test_example)
{
	const char *top = getenv("top_srcdir");
	const char *slash = strrchr(__FILE__, '/');
	struct policy_identity root, alice;
	char path[PATH_MAX], *error = NULL;
	struct config cfg;
	int r;

	if (top && *top)
		snprintf(path, sizeof(path), "%s/daemon/mqbusd.conf.example",
			 top);
	else
		snprintf(path, sizeof(path),
			 "%.*s/../daemon/mqbusd.conf.example",
			 slash ? (int)(slash - __FILE__) : 1,
			 slash ? __FILE__ : ".");
	ck_assert_int_eq(config_init(&cfg), 0);
	r = config_load(&cfg, path, &error);
	ck_assert_msg(r == 0, "%s: %d %s", path, r, error ? error : "");
	ck_assert_ptr_nonnull(cfg.policy);
	ident(&root, 0, 0, "root");
	ident(&alice, 1000, 1000, "alice");

	/* root may do anything */
	for (enum policy_action a = 0; a < POLICY_N_ACTIONS; a++)
		ck_assert(policy_check(cfg.policy, &root, a, "system/power",
				       NULL));
	/* everyone has a tree of their own, and only that */
	ck_assert(policy_check(cfg.policy, &alice, POLICY_PUBLISH,
			       "users/alice/x", NULL));
	ck_assert(policy_check(cfg.policy, &alice, POLICY_RETAIN,
			       "users/alice/x", NULL));
	ck_assert(!policy_check(cfg.policy, &alice, POLICY_PUBLISH,
				"users/bob/x", NULL));
	ck_assert_int_eq(policy_check_pattern(cfg.policy, &alice,
					      POLICY_SUBSCRIBE, "users/#",
					      NULL),
			 POLICY_MIXED);
	/* system topics: everyone reads, only root writes */
	ck_assert(policy_check(cfg.policy, &alice, POLICY_SUBSCRIBE,
			       "system/power", NULL));
	ck_assert(!policy_check(cfg.policy, &alice, POLICY_PUBLISH,
				"system/power", NULL));
	/* the shared area */
	ck_assert(policy_check(cfg.policy, &alice, POLICY_PUBLISH,
			       "public/chat", NULL));
	ck_assert(policy_check(cfg.policy, &alice, POLICY_REQUEST,
			       "service/time", NULL));
	ck_assert(!policy_check(cfg.policy, &alice, POLICY_SERVE,
				"service/time", NULL));
	/* the rest is closed */
	ck_assert(!policy_check(cfg.policy, &alice, POLICY_PUBLISH, "x/y",
				NULL));
	ck_assert(!policy_check(cfg.policy, &alice, POLICY_MONITOR,
				"public/chat", NULL));
	policy_identity_deinit(&root);
	policy_identity_deinit(&alice);
	config_deinit(&cfg);
}
END_TEST

/* ---- cross-checks against a naive evaluator ------------------------ */

/*
 * Random rules over a small alphabet, against every topic of a universe
 * that covers each distinction the rules can make: levels a, b and a
 * level z no rule names, up to one level deeper than any pattern.
 */
#define XC_RULES 12
#define XC_MAX_LEVELS 3

struct xc_rule {
	char pattern[16];
	bool allow;
	int principal; /* 0 *, 1 group 50, 2 user 1000, 3 user 1001 */
	unsigned literals, wildcards;
	bool multi;
	unsigned line;
};

static unsigned xc_seed;

static unsigned xc_rand(void)
{
	xc_seed = xc_seed * 1103515245u + 12345u;
	return (xc_seed >> 16) & 0x7fff;
}

/* A random pattern of 1..3 levels from a, b, +, and # last. */
static void xc_pattern(char *out, bool allow_wild)
{
	static const char *const levels[] = { "a", "b", "+", "#" };
	unsigned n = 1 + xc_rand() % XC_MAX_LEVELS;

	out[0] = '\0';
	for (unsigned i = 0; i < n; i++) {
		unsigned k = xc_rand() % (allow_wild ? 4 : 2);

		if (k == 3 && i + 1 < n)
			k = 2;
		if (i)
			strcat(out, "/");
		strcat(out, levels[k]);
	}
}

static bool xc_match(const char *p, const char *t)
{
	for (;;) {
		size_t pl = strcspn(p, "/"), tl = strcspn(t, "/");

		if (pl == 1 && *p == '#')
			return true;
		if (!(pl == 1 && *p == '+') && (pl != tl || memcmp(p, t, pl)))
			return false;
		p += pl;
		t += tl;
		if (!*p && !*t)
			return true;
		if (!*t)
			return !strcmp(p, "/#");
		if (!*p)
			return false;
		p++;
		t++;
	}
}

/* The precedence of policy.h, spelled out: a key that is larger for the
 * winner. */
static long xc_rank(const struct xc_rule *r)
{
	int principal = r->principal >= 2 ? 2 : r->principal;

	return ((((long)r->literals * 16 + (15 - r->wildcards)) * 2 +
		 !r->multi) * 3 + principal) * 2 + !r->allow;
}

static bool xc_applies(const struct xc_rule *r, uid_t uid)
{
	switch (r->principal) {
	case 0:
	case 1: /* both test users are in group 50 */
		return true;
	case 2:
		return uid == 1000;
	default:
		return uid == 1001;
	}
}

static bool xc_decide(const struct xc_rule *rules, size_t n, bool deflt,
		      uid_t uid, const char *topic, unsigned *ret_line)
{
	const struct xc_rule *best = NULL;

	for (size_t i = 0; i < n; i++) {
		if (!xc_applies(&rules[i], uid) ||
		    !xc_match(rules[i].pattern, topic))
			continue;
		if (!best || xc_rank(&rules[i]) > xc_rank(best))
			best = &rules[i];
	}
	*ret_line = best ? best->line : 2;
	return best ? best->allow : deflt;
}

static void xc_count(struct xc_rule *r)
{
	const char *s = r->pattern;

	r->literals = r->wildcards = 0;
	r->multi = false;
	for (;;) {
		size_t len = strcspn(s, "/");

		if (len == 1 && (*s == '+' || *s == '#')) {
			r->wildcards++;
			r->multi = *s == '#';
		} else {
			r->literals++;
		}
		s += len;
		if (!*s)
			break;
		s++;
	}
}

/* Every topic of levels {a, b, z}, 1..XC_MAX_LEVELS + 1 deep. */
static size_t xc_universe(char (*topics)[16], size_t max)
{
	static const char *const levels[] = { "a", "b", "z" };
	size_t n = 0;

	for (unsigned depth = 1; depth <= XC_MAX_LEVELS + 1; depth++) {
		unsigned count = 1;

		for (unsigned i = 0; i < depth; i++)
			count *= 3;
		for (unsigned k = 0; k < count && n < max; k++) {
			unsigned v = k;

			topics[n][0] = '\0';
			for (unsigned i = 0; i < depth; i++) {
				if (i)
					strcat(topics[n], "/");
				strcat(topics[n], levels[v % 3]);
				v /= 3;
			}
			n++;
		}
	}
	return n;
}

/* Writes a [policy] for rules; returns the loaded config. */
static void xc_load(struct config *cfg, struct xc_rule *rules, size_t n,
		    bool deflt)
{
	char text[4096];
	size_t len;
	static const char *const principals[] = { "*", "group=50",
						  "user=1000", "user=1001" };

	len = (size_t)snprintf(text, sizeof(text),
			       "[policy]\ndefault = %s\n",
			       deflt ? "allow" : "deny");
	for (size_t i = 0; i < n; i++) {
		rules[i].line = (unsigned)i + 3;
		xc_count(&rules[i]);
		len += (size_t)snprintf(text + len, sizeof(text) - len,
					"%s = subscribe %s topic=%s\n",
					rules[i].allow ? "allow" : "deny",
					principals[rules[i].principal],
					rules[i].pattern);
	}
	ck_assert_uint_lt(len, sizeof(text));
	pol_load_ok(cfg, text);
}

START_TEST(test_cross_check)
{
	static char topics[200][16];
	size_t n_topics = xc_universe(topics, 200);
	struct xc_rule rules[XC_RULES];
	struct policy_identity ids[2];
	gid_t group = 50;
	unsigned exact = 0, mixed_extra = 0;

	ck_assert_uint_eq(n_topics, 3 + 9 + 27 + 81);
	ck_assert_int_eq(policy_identity_init(&ids[0], 1000, 1000, "u1000",
					      &group, 1),
			 0);
	ck_assert_int_eq(policy_identity_init(&ids[1], 1001, 1001, "u1001",
					      &group, 1),
			 0);
	xc_seed = 12345;
	for (int round = 0; round < 300; round++) {
		size_t n = 1 + xc_rand() % XC_RULES;
		bool deflt = xc_rand() % 2;
		struct config cfg;

		for (size_t i = 0; i < n; i++) {
			xc_pattern(rules[i].pattern, true);
			rules[i].allow = xc_rand() % 2;
			rules[i].principal = (int)(xc_rand() % 4);
		}
		xc_load(&cfg, rules, n, deflt);

		for (int who = 0; who < 2; who++) {
			struct policy_identity *id = &ids[who];

			/* concrete topics, twice: the second from the
			 * cache */
			for (int pass = 0; pass < 2; pass++) {
				for (size_t t = 0; t < n_topics; t++) {
					const struct policy_rule *rule;
					unsigned line;
					bool want = xc_decide(rules, n, deflt,
							      id->uid,
							      topics[t], &line);
					bool got = policy_check(
						cfg.policy, id,
						POLICY_SUBSCRIBE, topics[t],
						&rule);

					ck_assert_msg(got == want &&
							      rule->line == line,
						      "round %d %s uid %u: %d by %u, want %d by %u",
						      round, topics[t],
						      (unsigned)id->uid, got,
						      rule->line, want, line);
				}
			}

			/* patterns: DENIED and ALLOWED must be exact,
			 * and a truly mixed one must be MIXED */
			for (int k = 0; k < 20; k++) {
				char pattern[16];
				bool any_allow = false, any_deny = false;
				enum policy_scope scope;

				xc_pattern(pattern, true);
				for (size_t t = 0; t < n_topics; t++) {
					unsigned line;

					if (!xc_match(pattern, topics[t]))
						continue;
					if (xc_decide(rules, n, deflt, id->uid,
						      topics[t], &line))
						any_allow = true;
					else
						any_deny = true;
				}
				scope = policy_check_pattern(
					cfg.policy, id, POLICY_SUBSCRIBE,
					pattern, NULL);
				if (any_allow && any_deny) {
					ck_assert_msg(scope == POLICY_MIXED,
						      "round %d %s: scope %d, truly mixed",
						      round, pattern, scope);
				} else if (scope == POLICY_MIXED) {
					mixed_extra++;
				} else {
					ck_assert_msg(scope == (any_allow ? POLICY_ALLOWED : POLICY_DENIED),
						      "round %d %s: scope %d, want %s",
						      round, pattern, scope,
						      any_allow ? "allowed" : "denied");
					exact++;
				}
			}
		}
		config_deinit(&cfg);
	}
	/* Over-cautious answers are allowed but must stay rare. */
	fprintf(stderr, "cross-check: %u exact, %u mixed for a uniform pattern\n",
		exact, mixed_extra);
	ck_assert_uint_gt(exact, 1000);
	ck_assert_uint_lt(mixed_extra * 20, exact);
	policy_identity_deinit(&ids[0]);
	policy_identity_deinit(&ids[1]);
}
END_TEST

/* Many rules: the index finds the right ones among 200. */
START_TEST(test_many_rules)
{
	char *text = malloc(200 * 64 + 64), topic[32];
	struct policy_identity id;
	struct config cfg;
	size_t len;

	ck_assert_ptr_nonnull(text);
	len = (size_t)sprintf(text, "[policy]\ndefault = deny\n");
	for (int i = 0; i < 200; i++)
		len += (size_t)sprintf(text + len,
				       "%s = publish * topic=svc/%d/#\n",
				       i % 3 ? "allow" : "deny", i);
	pol_load_ok(&cfg, text);
	free(text);
	ck_assert_uint_eq(policy_n_rules(cfg.policy), 200);
	ident(&id, 1000, 1000, "alice");
	for (int i = 0; i < 200; i++) {
		snprintf(topic, sizeof(topic), "svc/%d/x", i);
		expect(&cfg, &id, POLICY_PUBLISH, topic, i % 3 != 0,
		       (unsigned)i + 3);
	}
	expect(&cfg, &id, POLICY_PUBLISH, "svc/200/x", false, 2);
	policy_identity_deinit(&id);
	config_deinit(&cfg);
}
END_TEST

static Suite *policy_suite(void)
{
	Suite *s = suite_create("policy");
	TCase *tc;

	tc = tcase_create("parse");
	tcase_add_loop_test(tc, test_each_action, 0, POLICY_N_ACTIONS);
	tcase_add_test(tc, test_action_lists);
	tcase_add_test(tc, test_principals);
	tcase_add_test(tc, test_substitutions);
	tcase_add_test(tc, test_example);
	suite_add_tcase(s, tc);

	tc = tcase_create("decide");
	tcase_add_loop_test(tc, test_precedence, 0,
			    (int)(sizeof(prec_cases) / sizeof(prec_cases[0])));
	tcase_add_test(tc, test_no_policy);
	tcase_add_test(tc, test_groups);
	tcase_add_loop_test(tc, test_scope, 0,
			    (int)(sizeof(scope_cases) / sizeof(scope_cases[0])));
	tcase_add_test(tc, test_cache);
	tcase_add_test(tc, test_memo);
	tcase_add_test(tc, test_cache_collision);
	tcase_add_test(tc, test_cache_lru);
	tcase_add_test(tc, test_describe);
	tcase_add_test(tc, test_many_rules);
	tcase_add_test(tc, test_cross_check);
	tcase_set_timeout(tc, 60);
	suite_add_tcase(s, tc);

	tc = tcase_create("identity");
	tcase_add_test(tc, test_identity_status);
	tcase_add_test(tc, test_identity_pid);
	suite_add_tcase(s, tc);

	tc = tcase_create("errors");
	tcase_add_loop_test(tc, test_bad, 0,
			    (int)(sizeof(bad_policies) / sizeof(bad_policies[0])));
	suite_add_tcase(s, tc);

	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(policy_suite());
	int failed;

	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
