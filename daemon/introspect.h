/* SPDX-License-Identifier: MIT */
/*
 * introspect.h - the QUERY handler: the bus's clients, topics,
 * subscriptions, retained values and timers, as lines of text, in parts.
 *
 * An answer can be far longer than one queue message (2000 clients), so
 * each QUERY is answered by one part of whole lines, and a part that is
 * not the last says where to go on (PROTO_F_MORE, its topic and seq); the
 * client asks again from there.  The daemon keeps nothing between the
 * parts: a client that stops asking, or never reads, holds no memory of
 * the bus, and each part is at most one control message through
 * deliver_control().  Items are listed in a fixed order (clients and
 * timers by id, topics and retained values by name, subscriptions by
 * client id), so that an item present from the first part to the last is
 * listed exactly once; one that comes or goes meanwhile may or may not be.
 *
 * Who sees what: every client sees every item; the pid and comm of a
 * client, subscription, timer or retained value of another uid are
 * shown as "-" unless the asker runs as root or as the daemon's uid.
 */
#ifndef MQBUS_INTROSPECT_H
#define MQBUS_INTROSPECT_H

struct msgbuf;
struct peer;
struct proto_msg;

/* The QUERY handler: answers p with one part, or ERROR (EMSGSIZE when
 * p's rx messages cannot hold one line, EINVAL for a payload). */
void introspect_handle(struct peer *p, struct msgbuf *m,
		       const struct proto_msg *pm);

#endif
