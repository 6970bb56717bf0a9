/* SPDX-License-Identifier: MIT */
/*
 * restart.h - taking over the clients of a daemon that went away.
 *
 * A client's queues outlive the daemon that read them, and so does what
 * the client wrote into its tx queue.  When a daemon starts and finds the
 * queues of live clients of its bus, those clients are *orphans*: it
 * leaves their queues alone for a grace period (restart_grace_ms) in which
 * libmqbus announces them again with PROTO_F_RESUME.  A client adopted
 * that way is *held* while the period lasts: its subscriptions and other
 * control messages are served at once, but what it publishes, requests or
 * replies waits in a small stash, so that the backlog the clients queued
 * while no daemon ran is routed only once every subscriber among them is
 * back.  The period ends when every orphan is back or dead, or at the
 * latest after restart_grace_ms; then the stashes are routed and the
 * queues of orphans that did not come back are removed, so no queue
 * outlives its client.
 */
#ifndef MQBUS_RESTART_H
#define MQBUS_RESTART_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>

#include "daemon/hmap.h"

struct event;
struct orphan;
struct msgbuf;
struct peer;
struct proto_msg;
struct server;

/* messages a held client may have waiting; then its tx is left to fill */
#define RESTART_STASH_MAX 64
/* messages of each held client read when the period ends, before the
 * stashes go: the subscriptions it made again come first */
#define RESTART_READ_MAX 256

/* the handler the stashed messages go to when the period ends */
typedef void (*restart_route_fn)(struct peer *p, struct msgbuf *m);

struct restart {
	struct server *server;
	restart_route_fn route;
	struct hmap orphans; /* struct orphan by tx name */
	TAILQ_HEAD(orphan_list, orphan) list; /* the same, to walk them */
	unsigned n_orphans;  /* not yet back */
	unsigned found;      /* at start */
	unsigned adopted;
	unsigned gone;       /* died, or did not come back: queues removed */
	uint64_t held_msgs;  /* messages that waited in a stash */
	struct event *grace_ev;
	bool open; /* the grace period: adopted clients are held */
};

/*
 * Called once at start, after the dead clients' queues were swept: lists
 * the queues of live clients of the bus in dir and, if there are any,
 * opens the grace period.  Returns 0 or -errno (nothing is held then).
 */
int restart_init(struct restart *r, struct server *s, const char *dir,
		 restart_route_fn route);

void restart_deinit(struct restart *r);

/* Whether tx_name is an orphan still to come back. */
bool restart_is_orphan(const struct restart *r, const char *tx_name);

/*
 * p was adopted from the previous daemon: it stops being an orphan and is
 * held while the period lasts.  Ends the period when it was the last.
 */
void restart_adopt(struct restart *r, struct peer *p);

/*
 * Called with every message of a held peer before it is handled: keeps
 * (a reference to) a PUBLISH, REQUEST or REPLY and returns true, in which
 * case the caller does nothing more with it.  Returns false for anything
 * else, and always once the period is over.
 */
bool restart_stash(struct peer *p, struct msgbuf *m, unsigned type);

/* Hands a leaving peer's stash to the router: it was promised. */
void restart_drop_peer(struct peer *p);

/* Once a second: orphans whose process died lose their queues. */
void restart_tick(struct restart *r);

#endif
