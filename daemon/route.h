/* SPDX-License-Identifier: MIT */
/*
 * route.h - routing: publish, request and reply.
 *
 * A PUBLISH is turned into a DELIVER in place (stamped with the verified
 * sender, a bus sequence number and a timestamp) and the one buffer is
 * handed to every subscriber whose pattern matches its topic, at the
 * priority the topic's rules give it.  A REQUEST goes out the same way,
 * marked as a request; only one of the peers that received it may answer,
 * once, and the REPLY goes to the requester alone.
 */
#ifndef MQBUS_ROUTE_H
#define MQBUS_ROUTE_H

#include <stdint.h>
#include <sys/types.h>

struct msgbuf;
struct peer;
struct proto_msg;
struct request;
struct server;

/*
 * Routes the message in m (a PUBLISH or DELIVER, rewritten in place) on
 * topic as sent by uid, pid and client id, asking for requested_prio (-1:
 * the topic's default).  from is the peer whose tx it came from, which the
 * block policy may hold up; NULL for a timer's message.
 */
void route_message(struct server *s, struct peer *from, uid_t uid, pid_t pid,
		   uint32_t id, struct msgbuf *m, const char *topic,
		   int requested_prio);

/*
 * route_message() for a message an MQTT bridge took from its broker
 * (from NULL, pid mqbusd's): the peers that asked for the remote origin
 * (PROTO_F_ORIGIN on their ANNOUNCE) get a copy with the origin block of
 * origin_len bytes (proto_origin_encode()) after the payload; the others
 * get m.
 */
void route_bridged(struct server *s, uid_t uid, uint32_t id,
		   struct msgbuf *m, const char *topic, int requested_prio,
		   const void *origin, size_t origin_len);

/* The PUBLISH, REQUEST and REPLY handlers of a peer's messages. */
void route_publish(struct peer *p, struct msgbuf *m,
		   const struct proto_msg *pm);
void route_request(struct peer *p, struct msgbuf *m,
		   const struct proto_msg *pm);
void route_reply(struct peer *p, struct msgbuf *m,
		 const struct proto_msg *pm);

/* The request table's expiry: the requester hears of the timeout. */
void route_request_expired(struct request *r, void *arg);

#endif
