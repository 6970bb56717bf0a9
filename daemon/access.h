/* SPDX-License-Identifier: MIT */
/*
 * access.h - the access policy applied to peers: may this peer do that
 * on this topic, and what it is told when not.
 *
 * Without a [policy] section (cfg.policy NULL) every check is one NULL
 * test.  With one, decisions come from the peer's identity (uid, user
 * name, groups, read at the handshake) through the policy's per-identity
 * cache (policy.h), so a message costs a cache look-up, not a walk of the
 * rules.  A refusal is counted (policy_refused in the stats), written to
 * the journal (log_policy_refused(): at most one entry per uid and action
 * and interval), and answered with a sentence naming the action, the
 * topic and the rule that refused it.
 */
#ifndef MQBUS_ACCESS_H
#define MQBUS_ACCESS_H

#include <stdbool.h>
#include <stddef.h>

#include "daemon/policy.h"

struct delivery;
struct peer;

/* room for the refusal sentence (a topic, an action, a path, a line) */
#define ACCESS_WHY_MAX 768

/*
 * Whether p may do action on topic.  When not, why receives the sentence,
 * the refusal is counted and logged.
 */
bool access_check(struct peer *p, enum policy_action action,
		  const char *topic, char *why, size_t size);

/*
 * What a subscription pattern may receive: POLICY_ALLOWED without a
 * policy.  POLICY_DENIED fills why as access_check() does.  With whole
 * (a queue group, whose members take turns, needs all of its pattern), a
 * pattern only partly allowed is refused too: POLICY_DENIED, and why
 * names a deny rule that takes part.
 */
enum policy_scope access_scope(struct peer *p, enum policy_action action,
			       const char *pattern, bool whole, char *why,
			       size_t size);

/*
 * p was refused something because it or its uid reached quota (the
 * mqbusd.conf(5) key); why is the sentence it is told, topic what it was
 * about (NULL if nothing).  Counts it (quota_refused) and writes it to the
 * journal (log_quota_refused(): at most one entry per uid and quota and
 * interval).  The caller answers the client.
 */
void access_quota_refused(struct peer *p, const char *quota,
			  const char *topic, const char *why);

/*
 * Whether p may receive d: a request only if it may serve its topic, a
 * message through a partly denied subscription only if it may subscribe
 * to its topic.  Refusals here are not answered (the sender did nothing
 * wrong) and not counted as drops.
 */
bool access_receive(struct peer *p, const struct delivery *d);
bool access_monitor(struct peer *p, const struct delivery *d);

#endif
