/* SPDX-License-Identifier: MIT */
/*
 * peer.h - one connected client: its queues, its state and its counters,
 * and the table that finds peers by id and by queue name.
 *
 * A peer exists only after a successful handshake (handshake.c).  Its tx
 * queue is read through a wake source, one message at a time handed to
 * the table's message handler (server.c dispatches it by type); its rx
 * queue is written by deliver.c.  Its pidfd tells the loop the moment the
 * process dies.  A peer is never freed inside its own callbacks:
 * peer_close() marks it and the table's reap event hands it to the
 * table's reaper, from the loop, later.
 *
 * This module calls nothing above it: what happens to a message, and what
 * a peer leaves behind when it goes, are callbacks of the table.
 */
#ifndef MQBUS_PEER_H
#define MQBUS_PEER_H

#include <mqueue.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>

#include "daemon/config_file.h"
#include "daemon/hmap.h"
#include "daemon/large.h"
#include "daemon/log.h"
#include "daemon/policy.h"
#include "daemon/request.h"
#include "daemon/shm.h"
#include "daemon/stats.h"
#include "daemon/subscriber.h"
#include "daemon/timer.h"
#include "daemon/wake.h"

struct event;
struct event_base;
struct msgbuf;
struct msgbuf_pool;
struct peer_table;

/* how often a peer without a pidfd is looked for (kill(pid, 0)) */
#define PEER_PID_POLL_MS 250

/* client ids from here up are the bus's own (the bridges, bridge.h) */
#define PEER_ID_RESERVED 0xffffff00u

/* a peer sending this many bad messages is disconnected */
#define PEER_MAX_BAD 64

/* one message waiting for room in a peer's rx queue, or staged for the
 * end of the loop's turn (deliver.c) */
struct pending {
	struct pending *next;
	struct msgbuf *m;
	unsigned prio;
	uint32_t dropped; /* drops just before this message */
	uint16_t mark;	  /* flags it is sent with (a monitor's copy) */
	/* staged only: what deliver_message() would have decided with,
	 * had rx been full */
	struct delivery_policy pol;
	uint32_t from; /* the publisher's id, 0 for none */
};

/* one subscription: a pattern, alone or in a queue group */
struct peer_sub {
	char *pattern;
	char *group;  /* NULL: a plain subscription */
	bool monitor; /* a passive monitor's pattern */
	bool mixed;   /* the policy allows some of its topics, not all */
};

struct peer {
	struct subscriber sub; /* how the router reaches it */
	struct subscriber mon; /* how the monitors' router reaches it */
	struct peer_table *table;
	struct server *server;
	TAILQ_ENTRY(peer) link;      /* table->all */
	TAILQ_ENTRY(peer) reap_link; /* table->reap, once closing */
	struct hmap_node id_node;
	struct hmap_node tx_node;
	uint32_t id;
	uid_t uid;
	pid_t pid;
	char comm[16];		  /* its process's name, at the handshake */
	uint64_t connected_usec;  /* CLOCK_MONOTONIC */
	const char *close_reason; /* why it went, for its "left" entry */
	char *tx_name;
	char *rx_name;
	mqd_t tx;
	mqd_t rx;
	long tx_msgsize;
	long rx_msgsize;
	struct wake_src src; /* tx readable */
	unsigned read_extra; /* messages beyond the first in what was just
				read (a BATCH frame, server.c; the pieces a
				payload copied out of a tx area would have
				taken, shm.c): they count against the read
				budget too */
	struct event *rx_ev; /* rx writable, while output waits; made by
				deliver.c when first needed */
	int pidfd;
	struct event *pid_ev;
	bool closing;
	bool keep_queues; /* the bus stops, the client lives: its queues
			     stay for the next daemon (server.c) */

	/* adopted from the previous daemon during the grace period: what
	 * it sends to others waits here until the period ends (restart.c) */
	bool held;
	struct msgbuf **stash;
	unsigned n_stash;

	/* subscriptions, kept to unsubscribe on close (sub.c); how many
	 * of them (plain, monitor) the policy allows in part only, whose
	 * messages are checked one by one (access.c) */
	struct peer_sub *subs;
	size_t n_subs;
	size_t cap_subs;
	unsigned n_mixed;
	unsigned n_mixed_mon;

	/* who it is for the access policy: uid, name, groups (access.c) */
	struct policy_identity ident;

	/* requests this peer made that await an answer (route.c) */
	struct request_list requests;
	unsigned n_requests;

	/* timers this peer owns; detached ones are the bus's (timer.c) */
	struct timer_list timers;

	/* it reads BATCH frames (PROTO_F_BATCH in its ANNOUNCE) */
	bool batch;
	/* it takes the remote origin of bridged messages (PROTO_F_ORIGIN in
	 * its ANNOUNCE; route_bridged()) */
	bool origin;
	/* deliveries routed to it in this turn of the loop, sent at its
	 * end, several in one frame where they can (deliver.c) */
	struct pending *stage_head;
	struct pending *stage_tail;
	unsigned n_staged;
	size_t stage_bytes; /* the frame they would make */
	TAILQ_ENTRY(peer) stage_link; /* table->staged, while n_staged */

	/* output waiting for room in rx, highest priority first
	 * (deliver.c) */
	struct pending *pending_head;
	struct pending *pending_tail;
	unsigned n_pending;
	size_t pending_bytes;

	/* overflow = block: publishers this peer holds up (ids), and as a
	 * publisher, how many subscribers hold it up */
	uint32_t *blocked;
	size_t n_blocked;
	size_t cap_blocked;
	unsigned release_at; /* let them go when the backlog is this low */
	uint64_t blocking_since; /* CLOCK_MONOTONIC us it began holding */
	unsigned blocked_by;
	bool exited; /* its process is gone: what its tx still holds is
			read to the end, never held up (peer.c) */

	uint32_t dropped; /* dropped since the last message taken */
	/* the last message dropped on its way here, whose topic a drop
	 * notice names when no message follows (deliver.c) */
	struct msgbuf *last_drop;

	/* messages in pieces, coming in and going out (large.c) */
	struct large_peer large;

	/* counters: what it published and sent, and what was delivered
	 * to it and dropped on its way to it (stats.c) */
	struct log_counters counts;
	uint64_t bad_messages;
	struct topic_hint last_topic; /* stats.c: its last topic's entry */

	/* its connection for memory files (shm.c), last: the fields above
	 * are read for every message, and keep their places */
	struct shm_peer shm;
};

TAILQ_HEAD(peer_list, peer);

/* deliver.c: whether m goes to p as its memory file or in a slot of its
 * rx area (shm.c; inline: asked for every delivery, and the answer is
 * nearly always that m is small and has no file). */
static inline bool shm_for(const struct peer *p, const struct msgbuf *m)
{
	return (m->shm_fd >= 0 || m->len > (size_t)p->rx_msgsize) &&
	       shm_for_file(p, m);
}

/* Called with each message read from a peer's tx queue; m is the peer's
 * until the call returns (keep a reference to hold it longer). */
typedef void (*peer_message_fn)(struct peer *p, struct msgbuf *m);
/* Called from the loop for each peer that was closed; must free it. */
typedef void (*peer_reap_fn)(struct peer *p, void *arg);

struct peer_table {
	struct event_base *base;
	struct wake *wake;
	struct msgbuf_pool *pool;
	peer_message_fn on_message;
	peer_reap_fn reap;
	void *reap_arg;
	struct peer_list all;
	struct peer_list reap_list;
	struct event *reap_ev;
	struct hmap by_id;
	struct hmap by_tx;
	unsigned count;
	unsigned n_origin; /* peers with origin set: the bridges copy a
			      message with its origin only for them */
	uint32_t next_id;
	struct pending *pending_pool; /* spare list entries */
	/* peers with staged output, and the event that sends it at the
	 * end of the turn; the buffer frames are built in (deliver.c) */
	struct peer_list staged;
	struct event *stage_ev;
	unsigned char *frame;
	size_t frame_cap;
};

/* An empty table; -ENOMEM. */
int peer_table_init(struct peer_table *t, struct event_base *base,
		    struct wake *wake, struct msgbuf_pool *pool,
		    peer_message_fn on_message, peer_reap_fn reap,
		    void *reap_arg);
/* Frees the table itself; its peers must be gone (peer_free). */
void peer_table_deinit(struct peer_table *t);

/*
 * A peer on queues tx (read) and rx (write) that the handshake checked,
 * with a fresh id, in the table and its indexes, its tx queue not yet
 * read (wake_src_ready(&p->src) starts that).  Takes ownership of tx, rx
 * and pidfd (closed on failure too).  Returns 0 or -errno.
 */
int peer_new(struct peer_table *t, struct server *s, uid_t uid, pid_t pid,
	     const char *tx_name, const char *rx_name, mqd_t tx, mqd_t rx,
	     int pidfd, struct peer **ret);

/*
 * Takes p out of the table, closes its queues and frees it; if unlink,
 * its queues are removed too.  What p holds elsewhere (subscriptions,
 * requests, timers, output) must have been dropped first.
 */
void peer_free(struct peer *p, bool unlink);

/*
 * Marks p for reaping from a deferred event.  If bye, a BYE is tried
 * first.  Safe to call more than once and from its own callbacks.
 */
void peer_close(struct peer *p, bool bye, const char *why);

struct peer *peer_find(const struct peer_table *t, uint32_t id);
struct peer *peer_find_tx(const struct peer_table *t, const char *tx_name);

/*
 * Holds or lets go of the reading of p's tx queue (overflow = block).
 * Letting go puts it back on the ready list.
 */
void peer_hold(struct peer *p);
void peer_release(struct peer *p);

#endif
