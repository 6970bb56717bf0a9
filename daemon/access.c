/* SPDX-License-Identifier: MIT */
/*
 * access.c - the access policy applied to peers.
 *
 * The decisions themselves come from policy.c and its cache; this file
 * ties them to a peer (its identity, the bus's policy of the moment) and
 * turns a refusal into what the issue of access control asks of it: a
 * sentence for the client, a count in the stats, an entry in the journal.
 * Refusals for a quota (a per-client or per-uid bound) are counted and
 * journalled here too, so that both kinds read alike.
 */
#include <stdio.h>
#include <time.h>

#include "daemon/access.h"
#include "daemon/log.h"
#include "daemon/peer.h"
#include "daemon/server.h"
#include "daemon/stats.h"
#include "daemon/subscriber.h"

static uint64_t access_now_usec(void)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (uint64_t)now.tv_sec * 1000000u + (uint64_t)now.tv_nsec / 1000u;
}

/*
 * Counts a refusal of action on topic by rule and writes it to the log:
 * an entry of its own (log_policy_refused()), at most one per uid and
 * action and interval, so that a client refused in a loop, on ever new
 * topics or under ever new client ids, cannot flood the journal.
 */
static void access_refused(struct peer *p, enum policy_action action,
			   const char *topic, const struct policy_rule *rule)
{
	const struct policy *pol = p->server->cfg.policy;
	struct bus_stats *st = &p->server->stats;
	struct log_client who = stats_who(p);

	st->policy_refused++;
	log_policy_refused(&st->rl_policy, access_now_usec(), &who,
			   policy_action_name(action), topic,
			   policy_path(pol), rule ? rule->line : 0,
			   !rule || policy_rule_is_default(pol, rule), 1);
}

void access_quota_refused(struct peer *p, const char *quota,
			  const char *topic, const char *why)
{
	struct bus_stats *st = &p->server->stats;
	struct log_client who = stats_who(p);

	st->quota_refused++;
	log_quota_refused(&st->rl_quota, access_now_usec(), &who, quota, topic,
			  why, 1);
}

bool access_check(struct peer *p, enum policy_action action,
		  const char *topic, char *why, size_t size)
{
	const struct policy *pol = p->server->cfg.policy;
	const struct policy_rule *rule = NULL;

	if (!pol || policy_check(pol, &p->ident, action, topic, &rule))
		return true;
	policy_describe(pol, action, topic, rule, why, size);
	access_refused(p, action, topic, rule);
	return false;
}

enum policy_scope access_scope(struct peer *p, enum policy_action action,
			       const char *pattern, bool whole, char *why,
			       size_t size)
{
	const struct policy *pol = p->server->cfg.policy;
	const struct policy_rule *rule = NULL;
	enum policy_scope scope;
	char part[ACCESS_WHY_MAX];

	if (!pol)
		return POLICY_ALLOWED;
	scope = policy_check_pattern(pol, &p->ident, action, pattern, &rule);
	if (scope == POLICY_MIXED && whole) {
		/* rule is a deny rule that takes part */
		policy_describe(pol, action, pattern, rule, part,
				sizeof(part));
		snprintf(why, size,
			 "%s on %s: the policy allows only part of it (%s); "
			 "use a narrower pattern",
			 policy_action_name(action), pattern, part);
		access_refused(p, action, pattern, rule);
		return POLICY_DENIED;
	}
	if (scope == POLICY_DENIED) {
		policy_describe(pol, action, pattern, rule, why, size);
		access_refused(p, action, pattern, rule);
	}
	return scope;
}

bool access_receive(struct peer *p, const struct delivery *d)
{
	const struct policy *pol = p->server->cfg.policy;

	if (!pol || !d->topic)
		return true;
	if (d->request)
		return policy_check(pol, &p->ident, POLICY_SERVE, d->topic,
				    NULL);
	if (p->n_mixed == 0)
		return true;
	return policy_check(pol, &p->ident, POLICY_SUBSCRIBE, d->topic, NULL);
}

bool access_monitor(struct peer *p, const struct delivery *d)
{
	const struct policy *pol = p->server->cfg.policy;

	if (!pol || !d->topic || p->n_mixed_mon == 0)
		return true;
	return policy_check(pol, &p->ident, POLICY_MONITOR, d->topic, NULL);
}
