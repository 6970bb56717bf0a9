/* SPDX-License-Identifier: MIT */
/*
 * access.c - the access policy applied to peers.
 */
#include <time.h>

#include "daemon/access.h"
#include "daemon/log.h"
#include "daemon/peer.h"
#include "daemon/server.h"
#include "daemon/subscriber.h"

/* Counts a refusal and logs it, at most once per uid and interval. */
static void access_refused(struct peer *p, const char *why)
{
	struct bus_stats *st = &p->server->stats;
	struct timespec now;
	uint64_t n;

	st->policy_refused++;
	clock_gettime(CLOCK_MONOTONIC, &now);
	n = log_ratelimit_hit(&st->rl_policy, (uint64_t)p->uid,
			      (uint64_t)now.tv_sec * 1000000u +
				      (uint64_t)now.tv_nsec / 1000u,
			      1);
	if (n > 0)
		log_info("client %u (uid %u, %s): %s (%llu refusal%s for "
			 "this uid since the last line)",
			 p->id, (unsigned)p->uid, p->comm, why,
			 (unsigned long long)n, n == 1 ? "" : "s");
}

bool access_check(struct peer *p, enum policy_action action,
		  const char *topic, char *why, size_t size)
{
	const struct policy *pol = p->server->cfg.policy;
	const struct policy_rule *rule = NULL;

	if (!pol || policy_check(pol, &p->ident, action, topic, &rule))
		return true;
	policy_describe(pol, action, topic, rule, why, size);
	access_refused(p, why);
	return false;
}

enum policy_scope access_scope(struct peer *p, enum policy_action action,
			       const char *pattern, char *why, size_t size)
{
	const struct policy *pol = p->server->cfg.policy;
	const struct policy_rule *rule = NULL;
	enum policy_scope scope;

	if (!pol)
		return POLICY_ALLOWED;
	scope = policy_check_pattern(pol, &p->ident, action, pattern, &rule);
	if (scope == POLICY_DENIED) {
		policy_describe(pol, action, pattern, rule, why, size);
		access_refused(p, why);
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
