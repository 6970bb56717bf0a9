/* SPDX-License-Identifier: MIT */
/*
 * group.c - queue groups.
 *
 * Groups are found by (pattern, name) with a walk over the server's group
 * list.  That happens only on subscribe and unsubscribe; routing reaches a
 * group through the router like any subscriber.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/client.h"
#include "daemon/group.h"
#include "daemon/router.h"
#include "daemon/server.h"

static struct group *group_find(struct server *s, const char *pattern,
				const char *name)
{
	struct group *g;

	TAILQ_FOREACH(g, &s->groups, link)
		if (strcmp(g->pattern, pattern) == 0 &&
		    strcmp(g->name, name) == 0)
			return g;
	return NULL;
}

static void group_free(struct server *s, struct group *g)
{
	router_unsubscribe(s->router, g->pattern, g);
	TAILQ_REMOVE(&s->groups, g, link);
	free(g->members);
	free(g->pattern);
	free(g->name);
	free(g);
}

static struct group *group_new(struct server *s, const char *pattern,
			       const char *name, int *ret_err)
{
	struct group *g = calloc(1, sizeof(*g));
	int r;

	*ret_err = -ENOMEM;
	if (!g)
		return NULL;
	g->kind = SUB_GROUP;
	g->pattern = strdup(pattern);
	g->name = strdup(name);
	if (!g->pattern || !g->name)
		goto fail;
	r = router_subscribe(s->router, pattern, g);
	if (r < 0) {
		*ret_err = r;
		goto fail;
	}
	TAILQ_INSERT_TAIL(&s->groups, g, link);
	return g;

fail:
	free(g->pattern);
	free(g->name);
	free(g);
	return NULL;
}

int group_join(struct server *s, const char *pattern, const char *name,
	       struct client *c)
{
	struct group *g = group_find(s, pattern, name);
	int r;

	if (!g) {
		g = group_new(s, pattern, name, &r);
		if (!g)
			return r;
	}
	for (size_t i = 0; i < g->n_members; i++)
		if (g->members[i] == c)
			return -EEXIST;
	if (g->n_members == g->cap_members) {
		size_t cap = g->cap_members ? g->cap_members * 2 : 4;
		struct client **m = realloc(g->members, cap * sizeof(*m));

		if (!m) {
			if (g->n_members == 0)
				group_free(s, g);
			return -ENOMEM;
		}
		g->members = m;
		g->cap_members = cap;
	}
	g->members[g->n_members++] = c;
	return 0;
}

int group_leave(struct server *s, const char *pattern, const char *name,
		struct client *c)
{
	struct group *g = group_find(s, pattern, name);

	if (!g)
		return -ENOENT;
	for (size_t i = 0; i < g->n_members; i++) {
		if (g->members[i] != c)
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

struct client *group_deliver(struct group *g, struct msgbuf *m,
			     unsigned prio, const struct delivery_policy *pol,
			     struct client *from)
{
	size_t n = g->n_members;

	/* the first member in turn whose queue takes it now */
	for (size_t k = 0; k < n; k++) {
		size_t i = (g->next + k) % n;
		struct client *c = g->members[i];

		if (client_try_deliver(c, m, prio) == 0) {
			g->next = (i + 1) % n;
			return c;
		}
	}
	/* all full: it waits with the member whose turn it was */
	{
		struct client *c = g->members[g->next];

		g->next = (g->next + 1) % n;
		return client_deliver(c, m, prio, pol, from) == 0 ? c : NULL;
	}
}
