/* SPDX-License-Identifier: MIT */
/*
 * subscriber.h - what the router holds, and what routing hands it.
 *
 * The router stores opaque pointers; the daemon stores a pointer to a
 * struct subscriber embedded in what subscribes (a peer, or a queue group
 * that stands for its members), and routing calls its deliver function.
 * So routing needs to know nothing of what kinds of subscriber there are.
 */
#ifndef MQBUS_SUBSCRIBER_H
#define MQBUS_SUBSCRIBER_H

#include <stdint.h>

struct delivery_policy;
struct msgbuf;
struct peer;

/* One message on its way to the subscribers of its topic. */
struct delivery {
	struct msgbuf *m;	/* the stamped DELIVER, shared */
	unsigned prio;		/* its mq priority */
	const struct delivery_policy *pol; /* the topic's backlog rules */
	struct peer *from;	/* the publisher, NULL for a timer */
	uint64_t seq;		/* its bus sequence number */
	uint16_t mark;		/* flags added when sent (a monitor's copy) */
	const char *topic;	/* its topic, for the access policy */
	bool request;		/* a request: only who may serve takes it */
	/* a bridged message: the same DELIVER with its remote origin, for
	 * the peers that asked (route_bridged()); NULL for all others */
	struct msgbuf *origin_m;
};

struct subscriber {
	/*
	 * Hands d to this subscriber.  Returns the peer that took it (sent
	 * or queued), or NULL when it was dropped.
	 */
	struct peer *(*deliver)(struct subscriber *sub,
				const struct delivery *d);
	/* the last message routed here: several matching patterns, one
	 * copy */
	uint64_t route_seq;
};

#endif
