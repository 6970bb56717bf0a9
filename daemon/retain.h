/* SPDX-License-Identifier: MIT */
/*
 * retain.h - retained values: the last message of a topic, kept.
 *
 * A PUBLISH marked retain is kept as its topic's value (an empty one
 * clears it), and each new subscription receives at once the values of
 * the topics its pattern matches, marked PROTO_F_RETAINED.  Values are
 * found by topic through a router holding one entry per topic; a new
 * subscription walks the values once.
 */
#ifndef MQBUS_RETAIN_H
#define MQBUS_RETAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/queue.h>

struct client;
struct msgbuf;
struct router;

/* values one bus keeps at most */
#define RETAIN_MAX 65536

struct retained {
	char *topic;
	struct msgbuf *m; /* a DELIVER marked PROTO_F_RETAINED */
	unsigned prio;
	TAILQ_ENTRY(retained) link;
};

struct retain_store {
	TAILQ_HEAD(, retained) values;
	struct router *index; /* topic -> struct retained */
	size_t count;
};

int retain_init(struct retain_store *st);
void retain_deinit(struct retain_store *st);

/*
 * Keeps a copy of m (a stamped DELIVER on topic at priority prio) as the
 * topic's value, or forgets the value if the payload is empty.
 * -ENOSPC when RETAIN_MAX values are kept already.
 */
int retain_set(struct retain_store *st, const char *topic,
	       const struct msgbuf *m, size_t payload_len, unsigned prio);

struct config;
/* Sends c every kept value whose topic pattern matches, under each
 * topic's delivery policy in cfg. */
void retain_deliver(struct retain_store *st, const char *pattern,
		    struct client *c, const struct config *cfg);

/* Whether concrete topic matches pattern ('+', '#' as in MQTT). */
bool retain_match(const char *pattern, const char *topic);

#endif
