/* SPDX-License-Identifier: MIT */
/*
 * deliver.h - writing to a peer's rx queue: messages, replies and control
 * answers, and what waits when rx is full.
 *
 * Output never blocks the loop.  What does not fit in rx waits in the
 * peer's pending list, highest priority first, until libevent says rx is
 * writable.  A topic's backlog bounds that list; beyond it the topic's
 * overflow policy acts (drop-new, drop-old, coalesce, block, disconnect),
 * and every message lost is counted and reported to the subscriber with
 * its next message.
 */
#ifndef MQBUS_DELIVER_H
#define MQBUS_DELIVER_H

#include <stddef.h>
#include <stdint.h>

struct delivery;
struct msgbuf;
struct peer;
struct subscriber;

/* control replies may exceed the backlog by this much */
#define DELIVER_CONTROL_SLACK 64

/*
 * Sends d->m (a DELIVER) to p at d->prio, or queues it when rx is full,
 * within the topic's backlog; beyond it the overflow policy decides.
 * d->from is the publisher (NULL for a timer or a retained value), which
 * the block policy pauses.  Counts deliveries and drops.  Returns 0 when
 * sent or queued, -errno when dropped.
 */
int deliver_message(struct peer *p, const struct delivery *d);

/* The struct subscriber deliver function of a peer. */
struct peer *deliver_subscriber(struct subscriber *sub,
				const struct delivery *d);

/* The struct subscriber deliver function of a peer's monitor patterns:
 * never counts as taking the message. */
struct peer *deliver_monitor(struct subscriber *sub, const struct delivery *d);

/* Sends m now if rx has room and nothing waits before it; -EAGAIN (and
 * nothing done) otherwise. */
int deliver_try(struct peer *p, struct msgbuf *m, unsigned prio);

/* Sends m, a REPLY or control message, or queues it within the control
 * slack; beyond it, it is dropped and counted. */
void deliver_buf(struct peer *p, struct msgbuf *m, unsigned prio);

/* Sends a control message (ACK, ERROR, WELCOME, STATS ...) of len bytes
 * at the top priority, as deliver_buf. */
void deliver_control(struct peer *p, const void *buf, size_t len);

/* Answers a request: ACK when err is 0, else ERROR with text; seq goes
 * in the ACK (a new timer's id). */
void deliver_reply(struct peer *p, uint32_t token, int err, const char *text);
void deliver_reply_seq(struct peer *p, uint32_t token, int err,
		       const char *text, uint64_t seq);

/*
 * Counts a bad message (err: a negated proto_error or -errno) and answers
 * ERROR; PEER_MAX_BAD of them close the peer.
 */
void deliver_bad(struct peer *p, uint32_t token, int err, const char *what);

/* Sends what waits until rx is full again. */
void deliver_flush(struct peer *p);

/*
 * Once a second: a subscriber that has held publishers up (overflow =
 * block) for longer than the bus's block_timeout is disconnected.
 */
void deliver_check_blocking(struct peer *p, uint64_t now_usec);

/* Drops everything p has waiting and lets go the publishers it held up
 * (p is going). */
void deliver_drop_peer(struct peer *p);

#endif
