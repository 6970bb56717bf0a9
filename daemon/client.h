/* SPDX-License-Identifier: MIT */
/*
 * client.h - one connected client: its queues, subscriptions, pending
 * output and counters.
 *
 * A client exists only after a successful handshake (server.c).  Its tx
 * queue is read through a wake source; its rx queue is written without
 * blocking, and what does not fit waits in the pending list, ordered by
 * priority, until libevent says rx is writable.  Its pidfd tells the loop
 * the moment the process dies.  A client is never freed inside its own
 * callbacks: client_close() marks it and the server frees it from a
 * deferred event.
 */
#ifndef MQBUS_CLIENT_H
#define MQBUS_CLIENT_H

#include <mqueue.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>

#include "daemon/group.h"
#include "daemon/request.h"
#include "daemon/timer.h"
#include "daemon/wake.h"

struct event;
struct msgbuf;
struct server;

struct pending {
	struct pending *next;
	struct msgbuf *m;
	unsigned prio;
	uint32_t dropped; /* drops just before this message */
};

/* one subscription: a pattern, alone or in a queue group */
struct client_sub {
	char *pattern;
	char *group; /* NULL: a plain subscription */
};

struct client {
	enum sub_kind kind; /* SUB_CLIENT: first, as in struct group */
	struct server *server;
	TAILQ_ENTRY(client) link;      /* server->clients */
	TAILQ_ENTRY(client) reap_link; /* server->reap, once closing */
	uint32_t id;
	uid_t uid;
	pid_t pid;
	char *tx_name;
	char *rx_name;
	mqd_t tx;
	mqd_t rx;
	long tx_msgsize;
	long rx_msgsize;
	struct wake_src src; /* tx readable */
	struct event *rx_ev; /* rx writable, while pending output */
	int pidfd;
	struct event *pid_ev;
	bool closing;

	/* subscriptions, kept to unsubscribe on close */
	struct client_sub *subs;
	size_t n_subs;
	size_t cap_subs;

	/* requests this client made that await an answer */
	struct request_list requests;
	unsigned n_requests;

	/* timers this client owns (detached ones are the server's alone) */
	struct timer_list timers;

	/* the messages waiting for room in rx, highest priority first */
	struct pending *pending_head;
	struct pending *pending_tail;
	unsigned n_pending;
	size_t pending_bytes;

	/* overflow = block: publishers this client holds up (ids), and as
	 * a publisher, how many subscribers hold it up */
	uint32_t *blocked;
	size_t n_blocked;
	size_t cap_blocked;
	unsigned release_at; /* let them go when the backlog is this low */
	unsigned blocked_by;

	uint64_t route_seq; /* last message routed here: one copy each */
	uint32_t dropped;   /* dropped since the last message taken */

	/* counters */
	uint64_t published;
	uint64_t delivered;
	uint64_t dropped_total;
	uint64_t bad_messages;
};

/*
 * A client on queues tx (read) and rx (write) that the handshake checked.
 * Takes ownership of tx, rx and pidfd (closed on failure too).
 */
int client_new(struct server *s, uint32_t id, uid_t uid, pid_t pid,
	       const char *tx_name, const char *rx_name, mqd_t tx, mqd_t rx,
	       int pidfd, struct client **ret);

/* Unlinks the client's queues (if unlink), unsubscribes, frees. */
void client_free(struct client *c, bool unlink);

/*
 * Marks the client for freeing from a deferred event.  If bye, a BYE is
 * tried first.  Safe to call more than once and from its own callbacks.
 */
void client_close(struct client *c, bool bye, const char *why);

/* Reads up to budget messages from tx.  Returns 1 if more may wait, 0 if
 * tx was drained to EAGAIN, -1 if the client is closing or held up by a
 * slow subscriber (then it is woken when that one has room). */
int client_read(struct client *c, unsigned budget);

/*
 * Sends m (a DELIVER) to c at mq priority prio, or queues it when rx is
 * full, within the topic's backlog; beyond it pol->overflow decides.  from
 * is the publisher (NULL for a timer or a retained value), which the
 * block policy pauses.  Counts deliveries and drops.  Returns 0 when sent
 * or queued, -errno when dropped.
 */
int client_deliver(struct client *c, struct msgbuf *m, unsigned prio,
		   const struct delivery_policy *pol, struct client *from);

/* Sends m now if rx has room and nothing waits before it; -EAGAIN (and
 * nothing done) otherwise. */
int client_try_deliver(struct client *c, struct msgbuf *m, unsigned prio);

/* Sends m, a REPLY or control message, or queues it like a reply. */
void client_send_buf(struct client *c, struct msgbuf *m, unsigned prio);

/* Sends what waits in the pending list until rx is full again. */
void client_flush(struct client *c);

/* Answers a request: ACK when err is 0, else ERROR with text. */
void client_reply(struct client *c, uint32_t token, int err,
		  const char *text);

/* client_reply with seq set in the ACK (a new timer's id). */
void client_reply_seq(struct client *c, uint32_t token, int err,
		      const char *text, uint64_t seq);

/* Counts a bad message (err: a negated proto_error or -errno) and
 * answers ERROR; too many of them close the client. */
void client_bad(struct client *c, uint32_t token, int err, const char *what);

/* Sends a control message (ACK, ERROR, WELCOME, BYE, STATS reply) now,
 * dropping it if rx is full.  Returns 0 or -errno. */
int client_send_control(struct client *c, const void *buf, size_t len,
			unsigned prio);

#endif
