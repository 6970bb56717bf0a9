/* SPDX-License-Identifier: MIT */
/*
 * sub.h - subscriptions and queue groups.
 *
 * A plain subscription puts the peer's struct subscriber into the router
 * under its pattern.  Peers that subscribe to one pattern under one group
 * name form a queue group, which the router holds as one subscriber: each
 * message goes to one member, round-robin, skipping members whose queue is
 * full; only when every member is full does it wait in the pending list of
 * the member whose turn it was.  Groups are found by pattern and name
 * through a hash index.
 *
 * A new plain subscription is sent the retained values its pattern
 * matches, right after its ACK.
 */
#ifndef MQBUS_SUB_H
#define MQBUS_SUB_H

#include "daemon/hmap.h"

struct msgbuf;
struct peer;
struct proto_msg;
struct server;

struct group_table {
	struct hmap by_key; /* pattern and name */
};

void group_table_init(struct group_table *t);
/* Frees the index; the groups go with their last member. */
void group_table_deinit(struct group_table *t);

/* The SUBSCRIBE and UNSUBSCRIBE handlers: answer p with ACK or ERROR. */
void sub_subscribe(struct peer *p, struct msgbuf *m,
		   const struct proto_msg *pm);
void sub_unsubscribe(struct peer *p, struct msgbuf *m,
		     const struct proto_msg *pm);

/*
 * The access policy changed (SIGHUP): every subscription is classified
 * again; one that lost its right ends, and its peer is told with an
 * unasked ERROR naming the pattern and the rule.
 */
void sub_reapply(struct server *s);

/* Drops every subscription of p (p is going). */
void sub_drop_peer(struct peer *p);

#endif
