/* SPDX-License-Identifier: MIT */
/*
 * restart.c - taking over the clients of a daemon that went away: the
 * orphans found at start, the grace period and the held clients' stashes.
 * The why is in restart.h.
 */
#include <errno.h>
#include <event2/event.h>
#include <mqueue.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/log.h"
#include "daemon/msgbuf.h"
#include "daemon/peer.h"
#include "daemon/restart.h"
#include "daemon/server.h"
#include "daemon/sweep.h"
#include "proto/proto.h"

/* The tx queue of a live client of the previous daemon. */
struct orphan {
	struct hmap_node node;
	TAILQ_ENTRY(orphan) link;
	pid_t pid;
	char tx_name[]; /* "/BUS.<pid>.<n>.tx" */
};

static struct orphan *orphan_find(const struct restart *r, const char *name)
{
	struct hmap_node *node;

	HMAP_FOR_EACH_HASH(node, &r->orphans,
			   hmap_hash_string(name, r->orphans.seed)) {
		struct orphan *o = container_of(node, struct orphan, node);

		if (strcmp(o->tx_name, name) == 0)
			return o;
	}
	return NULL;
}

static void orphan_free(struct restart *r, struct orphan *o)
{
	hmap_remove(&r->orphans, &o->node);
	TAILQ_REMOVE(&r->list, o, link);
	r->n_orphans--;
	free(o);
}

/* The orphan will not come back: its queues go, rx named after tx. */
static void orphan_remove(struct restart *r, struct orphan *o,
			  const char *why)
{
	size_t len = strlen(o->tx_name);
	char rx[PROTO_QNAME_MAX + 1];

	memcpy(rx, o->tx_name, len - 2);
	memcpy(rx + len - 2, "rx", 3);
	mq_unlink(o->tx_name);
	mq_unlink(rx);
	log_info("removed the queues %s and %s of pid %d: %s", o->tx_name, rx,
		 (int)o->pid, why);
	r->gone++;
	orphan_free(r, o);
}

static int restart_found(const char *tx_name, pid_t pid, void *arg)
{
	struct restart *r = arg;
	size_t len = strlen(tx_name);
	struct orphan *o;

	if (orphan_find(r, tx_name))
		return 0;
	o = malloc(sizeof(*o) + len + 1);
	if (!o)
		return -ENOMEM;
	o->pid = pid;
	memcpy(o->tx_name, tx_name, len + 1);
	if (hmap_insert(&r->orphans, &o->node,
			hmap_hash_string(tx_name, r->orphans.seed)) < 0) {
		free(o);
		return -ENOMEM;
	}
	TAILQ_INSERT_TAIL(&r->list, o, link);
	r->n_orphans++;
	r->found++;
	return 0;
}

/* The period is over: stashes are routed, stragglers lose their queues. */
static void restart_close(struct restart *r, const char *why)
{
	struct orphan *o;
	struct peer *p, *next;

	if (!r->open)
		return;
	if (r->grace_ev)
		event_del(r->grace_ev);
	while ((o = TAILQ_FIRST(&r->list)))
		orphan_remove(r, o,
			      "not announced again within restart_grace_ms");
	timer_drop_unclaimed(r->server);
	/*
	 * What the held clients sent and we have not read yet may be the
	 * subscriptions they made again: serve those first (their messages
	 * to others still go to the stash), then route the stashes.
	 */
	TAILQ_FOREACH(p, &r->server->peers.all, link)
		if (p->held && !p->closing)
			p->src.read(&p->src, RESTART_READ_MAX);
	r->open = false;
	log_info("restart: %u of %u clients of the previous daemon came back "
		 "(%s), %u went; %llu messages they had queued are routed "
		 "now",
		 r->adopted, r->found, why, r->gone,
		 (unsigned long long)r->held_msgs);
	for (p = TAILQ_FIRST(&r->server->peers.all); p; p = next) {
		next = TAILQ_NEXT(p, link);
		if (!p->held)
			continue;
		p->held = false;
		if (p->closing)
			continue;
		restart_drop_peer(p);
		wake_src_ready(&p->src);
	}
}

static void restart_grace_over(evutil_socket_t fd, short what, void *arg)
{
	restart_close(arg, "the grace period ended");
}

int restart_init(struct restart *r, struct server *s, const char *dir,
		 restart_route_fn route)
{
	unsigned ms = s->cfg.restart_grace_ms;
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	int err;

	r->server = s;
	r->route = route;
	hmap_init(&r->orphans);
	TAILQ_INIT(&r->list);
	err = sweep_live(dir, s->bus, restart_found, r);
	if (err < 0 || r->n_orphans == 0)
		return err;
	r->grace_ev = evtimer_new(s->base, restart_grace_over, r);
	if (!r->grace_ev || evtimer_add(r->grace_ev, &tv) < 0)
		return -ENOMEM;
	r->open = true;
	log_info("restart: %u clients of the previous daemon may announce "
		 "themselves again within %u ms",
		 r->n_orphans, ms);
	return 0;
}

void restart_deinit(struct restart *r)
{
	struct orphan *o;

	while (r->server && (o = TAILQ_FIRST(&r->list)))
		orphan_free(r, o);
	hmap_deinit(&r->orphans);
	if (r->grace_ev)
		event_free(r->grace_ev);
	r->grace_ev = NULL;
}

bool restart_is_orphan(const struct restart *r, const char *tx_name)
{
	return r->n_orphans && orphan_find(r, tx_name);
}

void restart_adopt(struct restart *r, struct peer *p)
{
	struct orphan *o = orphan_find(r, p->tx_name);

	if (!o)
		return;
	orphan_free(r, o);
	r->adopted++;
	/* the timers it had, restored from the state file, are its again */
	timer_claim(r->server, p);
	if (!r->open)
		return;
	p->held = true;
	if (r->n_orphans == 0)
		restart_close(r, "all are back");
}

bool restart_stash(struct peer *p, struct msgbuf *m, unsigned type)
{
	struct restart *r = &p->server->restart;

	if (!p->held || !r->open)
		return false;
	if (type != PROTO_PUBLISH && type != PROTO_REQUEST &&
	    type != PROTO_REPLY)
		return false;
	if (!p->stash) {
		p->stash = calloc(RESTART_STASH_MAX, sizeof(*p->stash));
		if (!p->stash)
			return false; /* routed at once, out of order */
	}
	p->stash[p->n_stash++] = msgbuf_ref(m);
	r->held_msgs++;
	/* full: leave the rest in tx, where the kernel keeps it */
	if (p->n_stash == RESTART_STASH_MAX)
		peer_hold(p);
	return true;
}

void restart_drop_peer(struct peer *p)
{
	struct restart *r = &p->server->restart;
	unsigned n = p->n_stash;

	if (!p->stash)
		return;
	p->held = false;
	for (unsigned i = 0; i < n; i++) {
		r->route(p, p->stash[i]);
		msgbuf_unref(p->stash[i]);
	}
	free(p->stash);
	p->stash = NULL;
	p->n_stash = 0;
	if (n == RESTART_STASH_MAX)
		peer_release(p);
}

void restart_tick(struct restart *r)
{
	struct orphan *o, *next;

	if (!r->open)
		return;
	for (o = TAILQ_FIRST(&r->list); o; o = next) {
		next = TAILQ_NEXT(o, link);
		if (kill(o->pid, 0) < 0 && errno == ESRCH)
			orphan_remove(r, o, "its process exited");
	}
	if (r->n_orphans == 0)
		restart_close(r, "the others died");
}
