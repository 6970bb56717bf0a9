/* SPDX-License-Identifier: MIT */
/*
 * policy.h - who may do what on which topic: the [policy] section of
 * mqbusd.conf(5), its decisions and their cache.
 *
 * A policy is a default (allow or deny) and a list of rules, each one
 * allowing or denying a set of actions on a topic pattern to a principal
 * (a user, a group or everyone).  For a client (its identity), an action
 * and a concrete topic, the rules whose actions, principal and pattern all
 * apply are candidates, and the one of highest precedence decides:
 *
 *   1. the pattern with more literal levels ("%u" counts as literal);
 *   2. then the pattern with fewer wildcard levels;
 *   3. then a pattern without '#' before one with it;
 *   4. then user= before group= before '*';
 *   5. then deny before allow;
 *
 * and with no candidate, the default.  Rules that tie on all five have the
 * same effect; the first in the file is the one named.
 *
 * A bus without a [policy] section has no struct policy at all (NULL):
 * everything is allowed and the caller need not call anything per
 * message.  With one, decisions on concrete topics are cached in the
 * client's identity, keyed by action and topic, and invalidated by the
 * policy's generation, which differs for every policy ever loaded: a
 * reload needs no cache flush.
 */
#ifndef MQBUS_POLICY_H
#define MQBUS_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum policy_action {
	POLICY_PUBLISH,   /* PUBLISH on a topic */
	POLICY_SUBSCRIBE, /* SUBSCRIBE to a pattern, receive its topics */
	POLICY_REQUEST,   /* REQUEST (call) a topic */
	POLICY_SERVE,     /* receive requests of a topic and reply */
	POLICY_RETAIN,    /* keep a retained value on a topic */
	POLICY_TIMER,     /* add a timer that publishes on a topic */
	POLICY_GROUP,     /* join a queue group on a pattern */
	POLICY_MONITOR,   /* watch a topic's traffic as a monitor */
	POLICY_N_ACTIONS
};

enum policy_principal {
	POLICY_ANYONE, /* "*", "user=*" or "group=*" */
	POLICY_GROUP_ID,
	POLICY_USER_ID,
};

/* One rule of the [policy] section.  Read only once loaded. */
struct policy_rule {
	char *pattern;       /* as written, "%u" and all */
	unsigned actions;    /* 1u << enum policy_action, or'ed */
	bool allow;
	bool subst;          /* pattern holds %u or %U */
	uint8_t principal;   /* enum policy_principal */
	uint32_t id;         /* the uid or gid */
	unsigned line;       /* in the file */
	unsigned literals;   /* literal levels of pattern */
	unsigned wildcards;  /* '+' and '#' levels */
	bool multi;          /* ends in '#' */
};

struct policy;

/*
 * The decision cache of one identity, see policy_check(): POLICY_CACHE_SETS
 * sets of POLICY_CACHE_WAYS decisions, the least recently used replaced
 * first, about 10 KiB, made at the identity's first check.  A topic longer
 * than POLICY_CACHE_TOPIC_MAX bytes is decided anew each time: that keeps
 * the entries small, and such topics are rare.
 */
struct policy_cache;
#define POLICY_CACHE_SETS 16
#define POLICY_CACHE_WAYS 4
#define POLICY_CACHE_TOPIC_MAX 128

/*
 * The last decision of an identity, looked at before its cache: a client
 * mostly publishes, requests or serves the topic of its last message
 * again, and this answers that from one cache line of the identity itself,
 * without hashing the topic or touching the cache.  Topics longer than
 * POLICY_MEMO_TOPIC_MAX bytes go to the cache.
 */
#define POLICY_MEMO_TOPIC_MAX 45
struct policy_memo {
	uint64_t generation; /* of the policy that decided; 0: none */
	const struct policy_rule *rule;
	uint16_t len;
	uint8_t action;
	char topic[POLICY_MEMO_TOPIC_MAX];
};

/*
 * Who a client is, as far as the policy is concerned: its uid (the owner
 * of its queues), its name (NULL when the uid has no passwd entry, or one
 * that cannot stand in a topic level: then rules with %u never apply to
 * it), its primary gid (the fsgid) and its supplementary groups (sorted).
 * It also holds the client's decision cache, made at its first use.
 */
struct policy_identity {
	uid_t uid;
	gid_t gid;
	char *name;
	gid_t *groups;
	size_t n_groups;
	struct policy_cache *cache;
	struct policy_memo memo;
	uint64_t cache_hits;   /* checks answered from the memo or cache */
	uint64_t cache_misses; /* checks that walked the rules */
};

/*
 * Fill id from the given values (copied; name may be NULL, groups may be
 * NULL when n_groups is 0).  Returns 0 or -ENOMEM, leaving id zeroed on
 * failure.
 */
int policy_identity_init(struct policy_identity *id, uid_t uid, gid_t gid,
			 const char *name, const gid_t *groups,
			 size_t n_groups);

/*
 * Fill id with the identity of process pid, which the caller has verified
 * to act as uid: the fsgid ("Gid:" line, fourth field) and the
 * supplementary groups ("Groups:") of /proc/PID/status, and uid's name
 * from getpwuid_r() (this may ask NSS, so call it at handshake time, not
 * per message).  When pidfd is not negative, it is checked to still refer
 * to a live process after the file is read, so that a pid reused in
 * between is not mistaken for the client.  Returns 0, -ESRCH (the process
 * is gone), -EPERM (its fsuid is not uid), -EIO for a status file that does
 * not parse, -ENOMEM, or another -errno of reading /proc.
 */
int policy_identity_from_pid(struct policy_identity *id, pid_t pid,
			     int pidfd, uid_t uid);

/*
 * As policy_identity_from_pid() for the text of a /proc/PID/status file
 * (NUL-terminated).  Exposed for tests.
 */
int policy_identity_from_status(struct policy_identity *id,
				const char *status, uid_t uid);

/* Free what id holds and zero it.  Accepts a zeroed id. */
void policy_identity_deinit(struct policy_identity *id);

/*
 * A new, empty policy being read from path, whose [policy] header is at
 * line header_line.  Returns NULL when out of memory.  Feed it with
 * policy_add(), then policy_finish(), before any check.
 */
struct policy *policy_new(const char *path, unsigned header_line);

/* Frees pol and its rules.  Accepts NULL; returns NULL. */
struct policy *policy_free(struct policy *pol);

/*
 * One "key = value" line of [policy], at line:
 *
 *   default = allow|deny
 *   allow = ACTIONS PRINCIPAL topic=PATTERN
 *   deny = ACTIONS PRINCIPAL topic=PATTERN
 *
 * ACTIONS is a comma-separated list of action names or "all"; PRINCIPAL is
 * user=NAME|UID, group=NAME|GID or '*'; the principal and topic= may come
 * in either order.  Names are resolved now.  Returns 0, or -EINVAL (or
 * -ENOMEM) and sets *ret_error (when not NULL) to a malloc'ed sentence
 * without file or line ("unknown action 'pub'").
 */
int policy_add(struct policy *pol, const char *key, const char *value,
	       unsigned line, char **ret_error);

/*
 * Ends the section: checks that a default was given and indexes the rules.
 * Returns 0, or -EINVAL / -ENOMEM with *ret_error as for policy_add() and
 * *ret_line the line it is about.
 */
int policy_finish(struct policy *pol, unsigned *ret_line, char **ret_error);

/* The generation of pol: different for every policy made in this
 * process, never 0. */
uint64_t policy_generation(const struct policy *pol);

/* How many rules pol holds, 0 for NULL. */
size_t policy_n_rules(const struct policy *pol);

/*
 * Whether id may do action on the concrete (valid, wildcard-free) topic.
 * With pol NULL: true, and *ret_rule NULL.  Otherwise *ret_rule (when
 * ret_rule is not NULL) is the rule that decided, or for the default a
 * rule with pattern "#" and the line of the "default =" key; it lives as
 * long as pol.  The answer comes from id's memo (its last decision) or
 * its cache when they hold one for this policy generation, action and
 * topic; else the rules are walked
 * (through an index, so the cost grows with the rules whose patterns
 * could match topic, not with all of them) and the answer cached.  Once
 * id's cache exists, this never allocates.
 */
bool policy_check(const struct policy *pol, struct policy_identity *id,
		  enum policy_action action, const char *topic,
		  const struct policy_rule **ret_rule);

/*
 * The hash of a topic (of len bytes) in the cache: its set is the hash
 * modulo POLICY_CACHE_SETS.  A hit also compares the action and the whole
 * topic.  Exposed for tests, which need
 * two topics of one hash.
 */
uint32_t policy_cache_hash(const char *topic, size_t len);

/* What a policy says about all the topics of a pattern. */
enum policy_scope {
	POLICY_DENIED,  /* every topic denied: refuse the subscription */
	POLICY_ALLOWED, /* every topic allowed: no per-message check */
	POLICY_MIXED,   /* some of each: accept, and policy_check() each
			   topic before delivering it */
};

/*
 * The scope of action (typically POLICY_SUBSCRIBE, POLICY_GROUP,
 * POLICY_SERVE or POLICY_MONITOR) for id over all the topics pattern (a
 * valid pattern, '+' and '#' allowed) matches.  With pol NULL:
 * POLICY_ALLOWED.  *ret_rule (when not NULL) is the rule that decided for
 * DENIED and ALLOWED (the first found, where several rules share the
 * pattern's topics), and for MIXED a deny rule that takes part.
 *
 * DENIED and ALLOWED are exact.  MIXED may be answered for a pattern all
 * of whose topics are decided alike when only several rules together
 * cover it, or when the rules are too entangled to follow within a fixed
 * budget: a per-topic check is always right.  Not cached: call it once per
 * subscription.
 */
enum policy_scope policy_check_pattern(const struct policy *pol,
				       const struct policy_identity *id,
				       enum policy_action action,
				       const char *pattern,
				       const struct policy_rule **ret_rule);

/* The file pol was read from (as given); lives as long as pol. */
const char *policy_path(const struct policy *pol);

/* Whether rule, as policy_check() or policy_check_pattern() returned it,
 * is pol's default rather than a rule of the file. */
bool policy_rule_is_default(const struct policy *pol,
			    const struct policy_rule *rule);

/* "publish", ... ; "unknown" out of range. */
const char *policy_action_name(enum policy_action action);

/*
 * Writes into buf (always NUL-terminated when size > 0) the sentence for a
 * refusal: "publish to secret/x denied by /etc/mqbus/mqbusd.conf:12" or
 * "... denied by default (/etc/mqbus/mqbusd.conf:3)".  Returns what
 * snprintf() returns.
 */
int policy_describe(const struct policy *pol, enum policy_action action,
		    const char *topic, const struct policy_rule *rule,
		    char *buf, size_t size);

#endif
