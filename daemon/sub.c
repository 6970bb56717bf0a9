/* SPDX-License-Identifier: MIT */
/*
 * sub.c - subscriptions and queue groups.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/access.h"
#include "daemon/account.h"
#include "daemon/config_file.h"
#include "daemon/deliver.h"
#include "daemon/peer.h"
#include "daemon/retain.h"
#include "daemon/router.h"
#include "daemon/server.h"
#include "daemon/sub.h"
#include "proto/proto.h"

struct group {
	struct subscriber sub; /* what the router holds */
	struct hmap_node node; /* server->groups */
	char *pattern;
	char *name;
	struct peer **members;
	size_t n_members;
	size_t cap_members;
	size_t next; /* whose turn it is */
};

void group_table_init(struct group_table *t)
{
	hmap_init(&t->by_key);
}

void group_table_deinit(struct group_table *t)
{
	hmap_deinit(&t->by_key);
}

static uint32_t group_hash(const struct group_table *t, const char *pattern,
			   const char *name)
{
	return hmap_hash_string(name, hmap_hash_string(pattern,
						       t->by_key.seed));
}

static struct group *group_find(const struct group_table *t,
				const char *pattern, const char *name)
{
	struct hmap_node *node;

	HMAP_FOR_EACH_HASH(node, &t->by_key, group_hash(t, pattern, name)) {
		struct group *g = container_of(node, struct group, node);

		if (strcmp(g->pattern, pattern) == 0 &&
		    strcmp(g->name, name) == 0)
			return g;
	}
	return NULL;
}

/*
 * Hands d->m to one member: the first in turn whose queue takes it now;
 * if all are full, it waits with the member whose turn it was.
 */
static struct peer *group_deliver(struct subscriber *sub,
				  const struct delivery *d)
{
	struct group *g = container_of(sub, struct group, sub);
	size_t n = g->n_members, turn = SIZE_MAX;
	struct peer *p;

	for (size_t k = 0; k < n; k++) {
		size_t i = (g->next + k) % n;

		p = g->members[i];
		/* a request goes only to members that may serve it */
		if (!access_receive(p, d))
			continue;
		if (turn == SIZE_MAX)
			turn = i;
		if (deliver_try(p, d->m, d->prio) == 0) {
			g->next = (i + 1) % n;
			return p;
		}
	}
	if (turn == SIZE_MAX)
		return NULL;
	p = g->members[turn];
	g->next = (turn + 1) % n;
	return deliver_message(p, d) == 0 ? p : NULL;
}

static void group_free(struct server *s, struct group *g)
{
	router_unsubscribe(s->router, g->pattern, &g->sub);
	hmap_remove(&s->groups.by_key, &g->node);
	free(g->members);
	free(g->pattern);
	free(g->name);
	free(g);
}

static struct group *group_new(struct server *s, const char *pattern,
			       const char *name, int *ret_err)
{
	struct group *g = calloc(1, sizeof(*g));
	int r = -ENOMEM;

	if (!g)
		goto fail;
	g->sub.deliver = group_deliver;
	g->pattern = strdup(pattern);
	g->name = strdup(name);
	if (!g->pattern || !g->name)
		goto fail;
	r = hmap_insert(&s->groups.by_key, &g->node,
			group_hash(&s->groups, pattern, name));
	if (r < 0)
		goto fail;
	r = router_subscribe(s->router, pattern, &g->sub);
	if (r < 0) {
		hmap_remove(&s->groups.by_key, &g->node);
		goto fail;
	}
	return g;

fail:
	if (g) {
		free(g->pattern);
		free(g->name);
		free(g);
	}
	*ret_err = r;
	return NULL;
}

static int group_join(struct server *s, const char *pattern, const char *name,
		      struct peer *p)
{
	struct group *g = group_find(&s->groups, pattern, name);
	int r;

	if (!g) {
		g = group_new(s, pattern, name, &r);
		if (!g)
			return r;
	}
	for (size_t i = 0; i < g->n_members; i++)
		if (g->members[i] == p)
			return -EEXIST;
	if (g->n_members == g->cap_members) {
		size_t cap = g->cap_members ? g->cap_members * 2 : 4;
		struct peer **m = realloc(g->members, cap * sizeof(*m));

		if (!m) {
			if (g->n_members == 0)
				group_free(s, g);
			return -ENOMEM;
		}
		g->members = m;
		g->cap_members = cap;
	}
	g->members[g->n_members++] = p;
	return 0;
}

static int group_leave(struct server *s, const char *pattern,
		       const char *name, struct peer *p)
{
	struct group *g = group_find(&s->groups, pattern, name);

	if (!g)
		return -ENOENT;
	for (size_t i = 0; i < g->n_members; i++) {
		if (g->members[i] != p)
			continue;
		memmove(&g->members[i], &g->members[i + 1],
			(g->n_members - i - 1) * sizeof(*g->members));
		g->n_members--;
		if (g->next > i)
			g->next--;
		if (g->n_members == 0)
			group_free(s, g);
		else
			g->next %= g->n_members;
		return 0;
	}
	return -ENOENT;
}

/* The action a subscription needs of the policy. */
static enum policy_action sub_action(bool monitor, const char *group)
{
	return monitor ? POLICY_MONITOR : group ? POLICY_GROUP
						: POLICY_SUBSCRIBE;
}

/* Keeps p's counts of partly allowed subscriptions (delta +1 or -1). */
static void sub_count_mixed(struct peer *p, const struct peer_sub *sub,
			    int delta)
{
	if (!sub->mixed)
		return;
	if (sub->monitor)
		p->n_mixed_mon += (unsigned)delta;
	else
		p->n_mixed += (unsigned)delta;
}

/* The group name a SUBSCRIBE/UNSUBSCRIBE carries, or NULL. */
static const char *group_of(const struct proto_msg *pm, char *buf)
{
	if (pm->h.payload_len == 0)
		return NULL;
	memcpy(buf, pm->payload, pm->h.payload_len);
	buf[pm->h.payload_len] = '\0';
	return buf;
}

static int sub_remove(struct peer *p, const char *pattern, const char *group,
		      bool monitor)
{
	struct server *s = p->server;

	if (monitor)
		return router_unsubscribe(s->monitors, pattern, &p->mon);
	return group ? group_leave(s, pattern, group, p)
		     : router_unsubscribe(s->router, pattern, &p->sub);
}

/*
 * Who may monitor: root and the uid the daemon runs as (the bus's
 * owner), until an access policy says otherwise.  A monitor sees every
 * matching message of every user.
 */
static bool may_monitor(const struct peer *p)
{
	return p->uid == 0 || p->uid == p->server->uid;
}

struct retained_ctx {
	struct peer *p;
	const struct config *cfg;
};

static void sub_send_retained(const char *topic, struct msgbuf *m,
			      unsigned prio, void *arg)
{
	struct retained_ctx *ctx = arg;
	const struct delivery d = {
		.m = m,
		.prio = prio,
		.pol = config_rule_policy(ctx->cfg,
					  config_rule(ctx->cfg, topic)),
		.topic = topic,
	};

	if (access_receive(ctx->p, &d))
		deliver_message(ctx->p, &d);
}

void sub_subscribe(struct peer *p, struct msgbuf *m,
		   const struct proto_msg *pm)
{
	struct server *s = p->server;
	char gbuf[PROTO_GROUP_MAX + 1], text[128];
	const char *group = group_of(pm, gbuf);
	bool monitor = pm->h.flags & PROTO_F_MONITOR;
	char why[ACCESS_WHY_MAX];
	enum policy_scope scope;
	struct peer_sub *sub;
	int r;

	if (monitor && !s->cfg.policy && !may_monitor(p)) {
		snprintf(text, sizeof(text),
			 "monitor is allowed to root and to the bus owner "
			 "(uid %u) only",
			 (unsigned)s->uid);
		deliver_reply(p, pm->h.token, EPERM, text);
		return;
	}
	/* a group's members take turns: each must be allowed it all */
	scope = access_scope(p, sub_action(monitor, group), pm->topic,
			     group != NULL, why, sizeof(why));
	if (scope == POLICY_DENIED) {
		deliver_reply(p, pm->h.token, EACCES, why);
		return;
	}
	if (p->n_subs >= s->cfg.max_subscriptions) {
		snprintf(text, sizeof(text),
			 "too many subscriptions: at most %u per client",
			 s->cfg.max_subscriptions);
		access_quota_refused(p, "max_subscriptions", pm->topic, text);
		deliver_reply(p, pm->h.token, EDQUOT, text);
		return;
	}
	if (account_held(&s->accounts, p->uid, ACCOUNT_SUBS) >=
	    s->cfg.max_subscriptions_per_uid) {
		snprintf(text, sizeof(text),
			 "uid %u has reached max_subscriptions_per_uid (%u)",
			 (unsigned)p->uid, s->cfg.max_subscriptions_per_uid);
		access_quota_refused(p, "max_subscriptions_per_uid", pm->topic,
				     text);
		deliver_reply(p, pm->h.token, EDQUOT, text);
		return;
	}
	/* a duplicate is found by the router or the group, in O(levels):
	 * a scan of subs here would make many subscriptions quadratic */
	if (p->n_subs == p->cap_subs) {
		size_t cap = p->cap_subs ? p->cap_subs * 2 : 4;
		struct peer_sub *v = realloc(p->subs, cap * sizeof(*v));

		if (!v) {
			deliver_reply(p, pm->h.token, ENOMEM, "out of memory");
			return;
		}
		p->subs = v;
		p->cap_subs = cap;
	}
	sub = &p->subs[p->n_subs];
	sub->pattern = strdup(pm->topic);
	sub->group = group ? strdup(group) : NULL;
	sub->monitor = monitor;
	sub->mixed = scope == POLICY_MIXED;
	if (!sub->pattern || (group && !sub->group)) {
		free(sub->pattern);
		free(sub->group);
		deliver_reply(p, pm->h.token, ENOMEM, "out of memory");
		return;
	}
	r = monitor ? router_subscribe(s->monitors, pm->topic, &p->mon)
	    : group ? group_join(s, pm->topic, group, p)
		    : router_subscribe(s->router, pm->topic, &p->sub);
	if (r < 0) {
		free(sub->pattern);
		free(sub->group);
		deliver_reply(p, pm->h.token, -r,
			      r == -EEXIST ? "already subscribed to this "
					     "pattern"
			      : r == -ENOMEM ? "out of memory"
					     : "invalid pattern");
		return;
	}
	if (account_charge(&s->accounts, p->uid, ACCOUNT_SUBS) < 0) {
		sub_remove(p, sub->pattern, sub->group, sub->monitor);
		free(sub->pattern);
		free(sub->group);
		deliver_reply(p, pm->h.token, ENOMEM, "out of memory");
		return;
	}
	p->n_subs++;
	sub_count_mixed(p, sub, 1);
	deliver_reply(p, pm->h.token, 0, NULL);
	/* the kept values come after the ACK (it overtakes them anyway) */
	if (!group && !monitor) {
		struct retained_ctx ctx = { .p = p, .cfg = &s->cfg };

		retain_walk(&s->retained, pm->topic, sub_send_retained, &ctx);
	}
}

void sub_unsubscribe(struct peer *p, struct msgbuf *m,
		     const struct proto_msg *pm)
{
	char gbuf[PROTO_GROUP_MAX + 1];
	const char *group = group_of(pm, gbuf);
	bool monitor = pm->h.flags & PROTO_F_MONITOR;

	/* the router and the group know whether it exists, in O(levels) */
	if (sub_remove(p, pm->topic, group, monitor) < 0) {
		deliver_reply(p, pm->h.token, ENOENT,
			      "not subscribed to this pattern");
		return;
	}
	for (size_t i = 0; i < p->n_subs; i++) {
		struct peer_sub *sub = &p->subs[i];

		if (strcmp(sub->pattern, pm->topic) != 0 ||
		    sub->monitor != monitor ||
		    (sub->group ? !group || strcmp(sub->group, group) != 0
				: group != NULL))
			continue;
		sub_count_mixed(p, sub, -1);
		account_credit(&p->server->accounts, p->uid, ACCOUNT_SUBS);
		free(sub->pattern);
		free(sub->group);
		*sub = p->subs[--p->n_subs];
		break;
	}
	deliver_reply(p, pm->h.token, 0, NULL);
}

void sub_drop_peer(struct peer *p)
{
	for (size_t i = 0; i < p->n_subs; i++) {
		struct peer_sub *sub = &p->subs[i];

		sub_remove(p, sub->pattern, sub->group, sub->monitor);
		account_credit(&p->server->accounts, p->uid, ACCOUNT_SUBS);
		free(sub->pattern);
		free(sub->group);
	}
	free(p->subs);
	p->subs = NULL;
	p->n_subs = p->cap_subs = 0;
}

/* Tells p, unasked, that a subscription of its has ended, and why. */
static void sub_tell_ended(struct peer *p, const struct peer_sub *sub,
			   const char *why)
{
	unsigned char buf[PROTO_HEADER_SIZE + PROTO_TOPIC_MAX + 2 + 256];
	struct proto_header h;
	size_t len = strlen(why);
	int n;

	proto_header_init(&h, PROTO_ERROR);
	h.status = EACCES;
	n = proto_encode(buf, sizeof(buf), &h, NULL, why,
			 len > 256 ? 256 : len);
	if (n > 0)
		deliver_control(p, buf, (size_t)n);
	(void)sub;
}

void sub_reapply(struct server *s)
{
	struct peer *p;

	TAILQ_FOREACH(p, &s->peers.all, link) {
		for (size_t i = 0; i < p->n_subs;) {
			struct peer_sub *sub = &p->subs[i];
			char why[ACCESS_WHY_MAX], text[ACCESS_WHY_MAX + 64];
			enum policy_scope scope;

			if (p->closing)
				break;
			if (sub->monitor && !s->cfg.policy && !may_monitor(p)) {
				snprintf(why, sizeof(why),
					 "monitor is allowed to root and to "
					 "the bus owner (uid %u) only",
					 (unsigned)s->uid);
				scope = POLICY_DENIED;
			} else
				scope = access_scope(
					p, sub_action(sub->monitor, sub->group),
					sub->pattern, sub->group != NULL, why,
					sizeof(why));
			sub_count_mixed(p, sub, -1);
			sub->mixed = scope == POLICY_MIXED;
			sub_count_mixed(p, sub, 1);
			if (scope != POLICY_DENIED) {
				i++;
				continue;
			}
			snprintf(text, sizeof(text),
				 "subscription to %s ended by a reload: %s",
				 sub->pattern, why);
			sub_tell_ended(p, sub, text);
			sub_remove(p, sub->pattern, sub->group, sub->monitor);
			sub_count_mixed(p, sub, -1);
			account_credit(&s->accounts, p->uid, ACCOUNT_SUBS);
			free(sub->pattern);
			free(sub->group);
			*sub = p->subs[--p->n_subs];
		}
	}
}
