/* SPDX-License-Identifier: MIT */
/*
 * group.h - queue groups: subscribers that share a pattern's messages.
 *
 * Clients that subscribe to one pattern under one group name form a
 * group, and the router holds the group as a single subscriber.  Each
 * message goes to one member, round-robin, skipping members whose queue
 * is full; only when every member is full does it wait in the pending
 * list of the member whose turn it was.
 */
#ifndef MQBUS_GROUP_H
#define MQBUS_GROUP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

struct client;
struct msgbuf;
struct server;

/* What a router subscriber is: the first field of both structs. */
enum sub_kind {
	SUB_CLIENT = 1,
	SUB_GROUP,
};

struct group {
	enum sub_kind kind; /* SUB_GROUP */
	char *pattern;
	char *name;
	struct client **members;
	size_t n_members;
	size_t cap_members;
	size_t next; /* whose turn it is */
	uint64_t route_seq;
	TAILQ_ENTRY(group) link; /* server->groups */
};

TAILQ_HEAD(group_list, group);

/*
 * Adds c to group name of pattern, creating the group (and its router
 * subscription) if needed.  -EEXIST if c is a member already, -EINVAL for
 * a bad pattern, -ENOMEM.
 */
int group_join(struct server *s, const char *pattern, const char *name,
	       struct client *c);
/* Removes c; the last member's leaving removes the group.  -ENOENT. */
int group_leave(struct server *s, const char *pattern, const char *name,
		struct client *c);
/*
 * Hands m to one member.  Returns the member it went to (sent or queued),
 * or NULL if it was dropped.
 */
struct delivery_policy;
struct client *group_deliver(struct group *g, struct msgbuf *m,
			     unsigned prio, const struct delivery_policy *pol,
			     struct client *from);

#endif
