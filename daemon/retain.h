/* SPDX-License-Identifier: MIT */
/*
 * retain.h - retained values: the last message of a topic, kept.
 *
 * A PUBLISH marked retain is kept as its topic's value (an empty one
 * clears it), and each new subscription receives at once the values of
 * the topics its pattern matches, marked PROTO_F_RETAINED.  The values
 * sit on a topic trie (a router whose entries are concrete topics), so a
 * subscription visits only the topics its pattern reaches, with the same
 * matching rules as routing.
 */
#ifndef MQBUS_RETAIN_H
#define MQBUS_RETAIN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>

struct account_table;
struct msgbuf;
struct msgbuf_pool;
struct router;

/* values one bus keeps at most, unless the config says (max_retained) */
#define RETAIN_MAX 65536

struct retained {
	char *topic;
	struct msgbuf *m; /* a DELIVER marked PROTO_F_RETAINED */
	unsigned prio;
	uid_t uid;    /* whose it is: charged to that uid's account */
	size_t bytes; /* what it costs: buffer, topic, entry */
	TAILQ_ENTRY(retained) link;
};

struct retain_store {
	TAILQ_HEAD(, retained) values; /* in the order they were made */
	struct router *index;	       /* topic -> struct retained */
	size_t count;
	size_t max; /* the config's max_retained */
	/* per uid (the config's max_retained_per_uid, _bytes_per_uid),
	 * charged to accounts (NULL: no per-uid bounds) */
	struct account_table *accounts;
	uint64_t max_per_uid;
	uint64_t max_bytes_per_uid;
	/* called after each change of a value, NULL for none (the state
	 * file's writer, state.h) */
	void (*on_change)(void *arg);
	void *on_change_arg;
};

int retain_init(struct retain_store *st);
void retain_deinit(struct retain_store *st);

/*
 * Keeps a copy of m (a stamped DELIVER on topic at priority prio, from
 * pool, sized to fit) as the topic's value, charged to uid, or forgets
 * the value if the payload is empty.  -ENOSPC when st->max values are
 * kept already, -EDQUOT when uid would hold more than its share, -ENOMEM.
 * st->on_change hears of every value made, replaced or forgotten.
 */
int retain_set(struct retain_store *st, struct msgbuf_pool *pool, uid_t uid,
	       const char *topic, const struct msgbuf *m, size_t payload_len,
	       unsigned prio);

typedef void (*retain_fn)(const char *topic, struct msgbuf *m, unsigned prio,
			  void *arg);

/* Calls fn for every kept value whose topic pattern matches.  fn must not
 * change the store. */
void retain_walk(const struct retain_store *st, const char *pattern,
		 retain_fn fn, void *arg);

#endif
