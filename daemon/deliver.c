/* SPDX-License-Identifier: MIT */
/*
 * deliver.c - a peer's output: sending, the pending list and the overflow
 * policies.
 *
 * A message fanned out to many peers is one buffer; a peer whose rx is
 * full keeps a reference in its pending list.  The number of messages
 * dropped just before a message rides in that message's status field,
 * patched into the shared buffer only for the one mq_send (the kernel
 * copies it), so the subscriber learns of every gap.
 *
 * Route first, send after: a delivery to a client that reads batch frames
 * is staged, and the end of the loop's turn (one event, activated by the
 * first staging) sends each such client what it was given, several
 * messages of one priority in one BATCH frame where they fit its rx
 * message size, and a lone message alone.  What rx cannot take then goes
 * where deliver_message() would have put it.  The pending list is sent
 * the same way when rx has room again.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "daemon/access.h"
#include "daemon/account.h"
#include "daemon/config_file.h"
#include "daemon/deliver.h"
#include "daemon/large.h"
#include "daemon/log.h"
#include "daemon/msgbuf.h"
#include "daemon/peer.h"
#include "daemon/server.h"
#include "daemon/stats.h"
#include "proto/proto.h"

static struct pending *pending_get(struct peer_table *t)
{
	struct pending *p = t->pending_pool;

	if (p) {
		t->pending_pool = p->next;
		return p;
	}
	return malloc(sizeof(*p));
}

static void pending_put(struct peer_table *t, struct pending *p)
{
	p->next = t->pending_pool;
	t->pending_pool = p;
}

static bool msg_is_deliver(const struct msgbuf *m)
{
	return m->data[offsetof(struct proto_header, type)] == PROTO_DELIVER;
}

/* A delivery went out.  A monitor's copies count for the monitor only,
 * not for the bus or the topic. */
static void count_sent(struct peer *p, struct msgbuf *m, uint16_t mark,
		       bool waited)
{
	if (mark)
		p->counts.delivered++;
	else
		stats_delivered(p, m, waited);
}

/*
 * Sends m now.  A DELIVER carries the number of messages dropped just
 * before it, and a monitor's copy its mark (flags), patched into the
 * shared buffer only for this mq_send (the kernel copies it).
 */
static int send_now(struct peer *p, struct msgbuf *m, unsigned prio,
		    uint32_t dropped, uint16_t mark, bool waited)
{
	const size_t status_off = offsetof(struct proto_header, status);
	const size_t flags_off = offsetof(struct proto_header, flags);
	bool deliver = msg_is_deliver(m);
	uint32_t zero = 0;
	uint16_t flags = 0, marked;
	int r;

	if (deliver) {
		memcpy(m->data + status_off, &dropped, sizeof(dropped));
		if (mark) {
			memcpy(&flags, m->data + flags_off, sizeof(flags));
			marked = flags | mark;
			memcpy(m->data + flags_off, &marked, sizeof(marked));
		}
	}
	if (shm_for(p, m))
		r = shm_send_to(p, m, prio); /* as its memory file (shm.c) */
	else if (large_for(p, m))
		r = large_send(p, m, prio); /* in pieces (large.c) */
	else
		r = mq_send(p->rx, (const char *)m->data, m->len, prio) < 0
			    ? -errno
			    : 0;
	if (deliver) {
		memcpy(m->data + status_off, &zero, sizeof(zero));
		if (mark)
			memcpy(m->data + flags_off, &flags, sizeof(flags));
	}
	if (r < 0)
		return r;
	if (deliver)
		count_sent(p, m, mark, waited);
	return 0;
}

static uint64_t now_usec(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000u + (uint64_t)t.tv_nsec / 1000u;
}

/* The topic of an encoded message: it follows the header, NUL-ended. */
static const char *msg_topic(const struct msgbuf *m)
{
	return (const char *)m->data + PROTO_HEADER_SIZE;
}

/* Why a send or a queueing that failed with err lost its message. */
static enum drop_reason drop_reason_of(int err)
{
	switch (err) {
	case -ENOBUFS:
	case -EAGAIN:
		return DROP_BACKLOG;
	case -EMSGSIZE:
		return DROP_TOO_LARGE;
	case -EPIPE:
		return DROP_DISCONNECT;
	default:
		return DROP_ERROR;
	}
}

/* Counts m as lost for reason; returns 1 if it was a delivery (0 for a
 * control message), so the caller can add it to the gap the next one
 * reports. */
static uint32_t count_drop(struct peer *p, struct msgbuf *m,
			   enum drop_reason reason, uint16_t mark)
{
	struct server *s = p->server;

	if (!msg_is_deliver(m)) {
		s->stats.control_lost++;
		log_debug("client %u: control reply dropped", p->id);
		return 0;
	}
	if (p->last_drop != m) {
		msgbuf_unref(p->last_drop);
		p->last_drop = msgbuf_ref(m);
	}
	if (mark) {
		/* a monitor that fell behind: its own gap, nobody else's */
		p->counts.dropped_backlog++;
		return 1;
	}
	stats_drop(p, m, reason);
	if (reason == DROP_TOO_LARGE) {
		struct log_client who = stats_who(p);

		log_too_large(&s->stats.rl_large, now_usec(), &who,
			      msg_topic(m), m->len, (size_t)p->rx_msgsize, 1);
	}
	return 1;
}

/* The topic's overflow policy acted on p, n times: rate limited, one
 * journal entry per subscriber and topic and interval. */
static void slow_consumer(struct peer *p, const struct msgbuf *m,
			  unsigned policy, uint64_t n)
{
	struct log_client who = stats_who(p);

	log_slow_consumer(&p->server->stats.rl_slow, now_usec(), &who,
			  msg_topic(m), config_overflow_name(policy), n);
}

/* The waiting message going out in pieces now, or NULL. */
static struct pending *pending_in_flight(const struct peer *p)
{
	for (struct pending *e = p->pending_head; e; e = e->next)
		if (large_in_flight(p, e->m))
			return e;
	return NULL;
}

/* Highest priority first; FIFO within a priority.  Appending is the
 * common case, so the list is scanned only when priorities overtake. */
static void pending_insert(struct peer *p, struct pending *e)
{
	struct pending **at = &p->pending_head;
	/* a large message never overtakes one going out in pieces: one
	 * at a time per receiver (large.c) */
	struct pending *floor = large_for(p, e->m) ? pending_in_flight(p)
						   : NULL;

	if (!p->pending_tail || p->pending_tail->prio >= e->prio ||
	    p->pending_tail == floor) {
		e->next = NULL;
		if (p->pending_tail)
			p->pending_tail->next = e;
		else
			p->pending_head = e;
		p->pending_tail = e;
	} else {
		if (floor)
			at = &floor->next;
		while ((*at)->prio >= e->prio)
			at = &(*at)->next;
		e->next = *at;
		*at = e;
	}
	p->n_pending++;
}

/*
 * What a waiting message costs.  The bus counts each buffer once however
 * many lists hold it, plus every list entry: what the daemon really holds.
 * The subscriber's uid is charged the whole buffer for each message it
 * keeps waiting: its share cannot be stretched by others sharing it.
 */
static size_t pending_cost(const struct msgbuf *m)
{
	return msgbuf_size(m) + sizeof(struct pending);
}

static void pending_charge(struct peer *p, struct msgbuf *m, bool charge)
{
	struct server *s = p->server;

	if (charge) {
		if (m->waiting++ == 0)
			s->pending_mem += msgbuf_size(m);
		s->pending_mem += sizeof(struct pending);
		account_charge_n(&s->accounts, p->uid, ACCOUNT_PENDING_MEM,
				 pending_cost(m));
	} else {
		if (--m->waiting == 0)
			s->pending_mem -= msgbuf_size(m);
		s->pending_mem -= sizeof(struct pending);
		account_credit_n(&s->accounts, p->uid, ACCOUNT_PENDING_MEM,
				 pending_cost(m));
	}
}

static void rx_writable(evutil_socket_t fd, short what, void *arg)
{
	deliver_flush(arg);
}

/* Waits for rx to take more.  An rx event that cannot be set up would
 * leave the output stuck for ever: the peer is closed instead. */
static bool watch_rx(struct peer *p)
{
	if (!p->rx_ev)
		p->rx_ev = event_new(p->table->base, p->rx, EV_WRITE,
				     rx_writable, p);
	if (p->rx_ev && event_add(p->rx_ev, NULL) == 0)
		return true;
	log_warnx("client %u: cannot watch its rx queue", p->id);
	peer_close(p, false, "out of memory");
	return false;
}

/* Queues m behind what rx cannot take yet.  false: out of memory. */
static bool enqueue(struct peer *p, struct msgbuf *m, unsigned prio,
		    uint32_t dropped, uint16_t mark)
{
	struct pending *e;

	if (p->n_pending == 0 && !watch_rx(p))
		return false;
	e = pending_get(p->table);
	if (!e)
		return false;
	pending_charge(p, m, true);
	e->m = msgbuf_ref(m);
	e->prio = prio;
	e->dropped = dropped;
	e->mark = mark;
	pending_insert(p, e);
	if (m->stat)
		m->stat->waiting++;
	p->pending_bytes += m->len;
	p->server->pending_bytes += m->len;
	if (p->server->pending_bytes > p->server->stats.pending_bytes_max)
		p->server->stats.pending_bytes_max = p->server->pending_bytes;
	return true;
}

/* Takes e (after prev, NULL for the head) out of the pending list. */
static void pending_unlink(struct peer *p, struct pending *prev,
			   struct pending *e)
{
	if (prev)
		prev->next = e->next;
	else
		p->pending_head = e->next;
	if (p->pending_tail == e)
		p->pending_tail = prev;
	p->n_pending--;
	large_unlinked(p, e->m);
	pending_charge(p, e->m, false);
	if (e->m->stat)
		e->m->stat->waiting--;
	p->pending_bytes -= e->m->len;
	p->server->pending_bytes -= e->m->len;
	msgbuf_unref(e->m);
	pending_put(p->table, e);
}

/* Drops e from the pending list for reason; the next message reports the
 * gap.  A coalesced message is counted as that alone. */
static void pending_drop(struct peer *p, struct pending *prev,
			 struct pending *e, int reason)
{
	uint32_t gap = e->dropped;

	if (reason < 0) {
		stats_of(p->server, e->m)->coalesced++;
		p->server->stats.c.coalesced++;
		p->counts.coalesced++;
		gap++;
	} else {
		gap += count_drop(p, e->m, (enum drop_reason)reason, e->mark);
	}

	if (e->next)
		e->next->dropped += gap;
	else
		p->dropped += gap;
	pending_unlink(p, prev, e);
}

/* The oldest waiting delivery of the lowest priority, and what is before
 * it, or NULL if every waiting delivery outranks prio. */
static struct pending *pending_victim(struct peer *p, unsigned prio,
				      struct pending **ret_prev)
{
	struct pending *e, *prev = NULL, *best = NULL, *best_prev = NULL;

	for (e = p->pending_head; e; prev = e, e = e->next) {
		/* half sent: the receiver gets all of it or none */
		if (!msg_is_deliver(e->m) || e->prio > prio ||
		    large_in_flight(p, e->m))
			continue;
		if (!best || e->prio < best->prio) {
			best = e;
			best_prev = prev;
		}
	}
	*ret_prev = best_prev;
	return best;
}

/* The bytes of topic, NUL and key (if any) of an encoded message: the
 * same bytes, the same topic and key. */
static size_t msg_topic_key_len(const struct msgbuf *m)
{
	uint16_t tl, kl;

	memcpy(&tl, m->data + offsetof(struct proto_header, topic_len),
	       sizeof(tl));
	memcpy(&kl, m->data + offsetof(struct proto_header, key_len),
	       sizeof(kl));
	return proto_size_key(tl, kl, 0) - PROTO_HEADER_SIZE;
}

/* A waiting delivery with the same topic and key as m (or the same topic
 * and no key), for coalescing.  Bounded by the backlog, and only run
 * while rx is full. */
static struct pending *pending_same_key(struct peer *p,
					const struct msgbuf *m,
					struct pending **ret_prev)
{
	size_t len = msg_topic_key_len(m);
	struct pending *e, *prev = NULL;

	for (e = p->pending_head; e; prev = e, e = e->next) {
		if (!msg_is_deliver(e->m) || msg_topic_key_len(e->m) != len ||
		    large_in_flight(p, e->m))
			continue;
		if (memcmp(e->m->data + PROTO_HEADER_SIZE,
			   m->data + PROTO_HEADER_SIZE, len) == 0) {
			*ret_prev = prev;
			return e;
		}
	}
	return NULL;
}

/*
 * The bus's budget and the subscriber's uid's share of it, both in real
 * memory: one user's subscribers that never read cannot take the memory
 * every other user's briefly slow subscriber needs.
 */
static bool budget_full(const struct peer *p, const struct msgbuf *m)
{
	const struct server *s = p->server;
	size_t cost = pending_cost(m);

	return s->pending_mem + cost > s->cfg.pending_budget ||
	       account_held(&s->accounts, p->uid, ACCOUNT_PENDING_MEM) + cost >
		       s->cfg.pending_budget_per_uid;
}

/* The topic's backlog (messages and their bytes), and the budgets. */
static bool backlog_full(const struct peer *p, const struct msgbuf *m,
			 const struct delivery_policy *pol)
{
	/* one large message always fits an empty backlog by its bytes:
	 * it must wait in the daemon while it goes out in pieces */
	bool bytes = p->pending_bytes + m->len > pol->backlog_bytes &&
		     !(p->n_pending == 0 && m->len > (size_t)p->rx_msgsize);

	return p->n_pending >= pol->backlog || bytes || budget_full(p, m);
}

/*
 * Pauses the publisher until p has room: its tx queue is not read, so it
 * fills and the kernel makes the publisher wait.  p remembers whom it
 * holds up, to let them go in deliver_flush().  Returns whether pub is
 * held up now: not a publisher that is gone (NULL: a timer or a retained
 * value), closing, p itself, or one there was no memory to note.
 */
static bool block_publisher(struct peer *p, struct peer *pub)
{
	if (!pub || pub == p || pub->closing)
		return false;
	for (size_t i = 0; i < p->n_blocked; i++)
		if (p->blocked[i] == pub->id)
			return true;
	if (p->n_blocked == p->cap_blocked) {
		size_t cap = p->cap_blocked ? p->cap_blocked * 2 : 4;
		uint32_t *b = realloc(p->blocked, cap * sizeof(*b));

		if (!b)
			return false;
		p->blocked = b;
		p->cap_blocked = cap;
	}
	if (p->n_blocked == 0)
		p->blocking_since = now_usec();
	p->blocked[p->n_blocked++] = pub->id;
	p->release_at = p->n_pending / 2;
	peer_hold(pub);
	p->server->stats.publishers_blocked++;
	return true;
}

/* Lets go the publishers p held up. */
static void release_publishers(struct peer *p)
{
	for (size_t i = 0; i < p->n_blocked; i++) {
		struct peer *pub = peer_find(p->table, p->blocked[i]);

		if (pub)
			peer_release(pub);
	}
	p->n_blocked = 0;
}

/*
 * rx is full and a delivery must wait: within the backlog it queues;
 * beyond it the topic's overflow policy decides.
 */
static int overflow(struct peer *p, const struct delivery *d)
{
	const struct delivery_policy *pol = d->pol;
	struct msgbuf *m = d->m;
	struct pending *victim, *prev;

	/* a newer value of a topic and key replaces one still waiting, full
	 * or not */
	if (pol->overflow == OVERFLOW_COALESCE &&
	    (victim = pending_same_key(p, m, &prev))) {
		pending_drop(p, prev, victim, -1);
		slow_consumer(p, m, OVERFLOW_COALESCE, 1);
	}
	if (!backlog_full(p, m, pol))
		return enqueue(p, m, d->prio, p->dropped, d->mark) ? 0 : -ENOMEM;

	switch (pol->overflow) {
	case OVERFLOW_COALESCE:
		/* nothing to replace: make room as drop-old does */
	case OVERFLOW_DROP_OLD: {
		uint64_t evicted = 0;

		while (backlog_full(p, m, pol) &&
		       (victim = pending_victim(p, d->prio, &prev))) {
			pending_drop(p, prev, victim, DROP_OLDEST);
			evicted++;
		}
		slow_consumer(p, m, pol->overflow, evicted ? evicted : 1);
		if (backlog_full(p, m, pol))
			return -ENOBUFS;
		return enqueue(p, m, d->prio, p->dropped, d->mark) ? 0 : -ENOMEM;
	}
	case OVERFLOW_BLOCK:
		/* the publisher stops and m waits beyond the bound: what
		 * it had sent already (the rest of a frame; all its tx, if
		 * it exited, as held up it would be lost) waits too.  Only
		 * within the memory budgets, though, lest another user's
		 * subscribers pay for it.  What no publisher can be held up
		 * for (a timer, a client sending to itself) is dropped, or
		 * the backlog would have no bound. */
		slow_consumer(p, m, OVERFLOW_BLOCK, 1);
		if (!(d->from && d->from->exited) &&
		    !block_publisher(p, d->from))
			return -ENOBUFS;
		if (budget_full(p, m))
			return -ENOBUFS;
		return enqueue(p, m, d->prio, p->dropped, d->mark) ? 0 : -ENOMEM;
	case OVERFLOW_DISCONNECT:
		p->server->stats.slow_disconnects++;
		slow_consumer(p, m, OVERFLOW_DISCONNECT, 1);
		peer_close(p, true, "disconnected: slow consumer");
		return -EPIPE;
	case OVERFLOW_DROP_NEW:
	default:
		slow_consumer(p, m, OVERFLOW_DROP_NEW, 1);
		return -ENOBUFS;
	}
}

/* -------------------------------------------------------------------- */
/* batch frames                                                          */

/* The bytes a message takes in a frame. */
static size_t part_size(const struct msgbuf *m)
{
	return PROTO_BATCH_PART_HEAD + m->len;
}

/*
 * How many entries from first on go in one frame: deliveries of its
 * priority, in a row, that fit p's rx message size together.  1: first
 * goes alone (a client that reads no frames, a control message, or no
 * company).
 */
static unsigned frame_run(const struct peer *p, const struct pending *first)
{
	size_t size = PROTO_BATCH_HEAD;
	const struct pending *e;
	unsigned n = 0;

	if (!p->batch)
		return 1;
	for (e = first; e; e = e->next) {
		if (!msg_is_deliver(e->m) || e->prio != first->prio ||
		    size + part_size(e->m) > (size_t)p->rx_msgsize)
			break;
		size += part_size(e->m);
		n++;
	}
	return n ? n : 1;
}

/* The table's frame buffer, at least cap bytes; NULL: out of memory. */
static unsigned char *frame_buffer(struct peer_table *t, size_t cap)
{
	if (t->frame_cap < cap) {
		unsigned char *f = realloc(t->frame, cap);

		if (!f)
			return NULL;
		t->frame = f;
		t->frame_cap = cap;
	}
	return t->frame;
}

/* Sets a frame's payload length and count, once its parts are in. */
static void frame_seal(unsigned char *f, size_t used, unsigned n)
{
	uint32_t len = (uint32_t)(used - PROTO_BATCH_HEAD), count = n;

	memcpy(f + offsetof(struct proto_header, payload_len), &len,
	       sizeof(len));
	memcpy(f + offsetof(struct proto_header, status), &count,
	       sizeof(count));
}

/*
 * Sends the n entries from first on (frame_run() said they fit) as one
 * BATCH frame.  Each part is the message as send_now() would send it:
 * its gap in status, a monitor's mark in its flags.  Counts each message
 * sent; returns 0 or -errno (nothing was sent).
 */
static int send_frame(struct peer *p, const struct pending *first,
		      unsigned n, bool waited)
{
	const size_t status_off = offsetof(struct proto_header, status);
	const size_t flags_off = offsetof(struct proto_header, flags);
	size_t cap = (size_t)p->rx_msgsize, used;
	unsigned char *f = frame_buffer(p->table, cap);
	const struct pending *e;
	unsigned i;

	if (!f)
		return -ENOMEM;
	used = (size_t)proto_batch_begin(f, cap, first->prio);
	/* frame_run() measured the parts against cap: written here
	 * directly, the header once at the end */
	for (e = first, i = 0; i < n; e = e->next, i++) {
		unsigned char *part = f + used + PROTO_BATCH_PART_HEAD;
		uint32_t len = (uint32_t)e->m->len;
		uint16_t flags;

		memcpy(f + used, &len, sizeof(len));
		memcpy(part, e->m->data, len);
		memcpy(part + status_off, &e->dropped, sizeof(e->dropped));
		if (e->mark) {
			memcpy(&flags, part + flags_off, sizeof(flags));
			flags |= e->mark;
			memcpy(part + flags_off, &flags, sizeof(flags));
		}
		used += PROTO_BATCH_PART_HEAD + len;
	}
	frame_seal(f, used, n);
	if (mq_send(p->rx, (const char *)f, used, first->prio) < 0)
		return -errno;
	p->server->stats.frames_sent++;
	p->server->stats.framed_sent += n;
	for (e = first, i = 0; i < n; e = e->next, i++)
		count_sent(p, e->m, e->mark, waited);
	return 0;
}

/*
 * Sends the entries from first on that go together: a frame, or first
 * alone (also when there is no memory for a frame).  *ret_sent: how many
 * went, or on an error the one that failed.  Returns 0 or -errno.
 */
static int send_run(struct peer *p, struct pending *first, bool waited,
		    unsigned *ret_sent)
{
	unsigned n = frame_run(p, first);
	int r = -ENOMEM;

	if (n > 1 && (r = send_frame(p, first, n, waited)) != -ENOMEM) {
		*ret_sent = r == 0 ? n : 1;
		return r;
	}
	*ret_sent = 1;
	return send_now(p, first->m, first->prio, first->dropped, first->mark,
			waited);
}

/* -------------------------------------------------------------------- */
/* staging: route first, send at the end of the turn                     */

static void stage_flush(struct peer *p);
static void drop_notice_later(struct peer *p);

static void stage_flush_all(evutil_socket_t fd, short what, void *arg)
{
	struct peer_table *t = arg;
	struct peer *p;

	while ((p = TAILQ_FIRST(&t->staged)))
		stage_flush(p);
}

/* Keeps the delivery d for the end of the turn.  false: no memory for
 * that (the caller sends it now). */
static bool stage(struct peer *p, const struct delivery *d)
{
	struct peer_table *t = p->table;
	struct pending *e;

	if (!t->stage_ev &&
	    !(t->stage_ev = event_new(t->base, -1, 0, stage_flush_all, t)))
		return false;
	e = pending_get(t);
	if (!e)
		return false;
	e->next = NULL;
	e->m = msgbuf_ref(d->m);
	e->prio = d->prio;
	e->dropped = p->dropped; /* the gap rides with it */
	e->mark = d->mark;
	e->pol = *d->pol;
	e->from = d->from ? d->from->id : 0;
	p->dropped = 0;
	if (p->stage_tail)
		p->stage_tail->next = e;
	else
		p->stage_head = e;
	p->stage_tail = e;
	if (p->n_staged++ == 0) {
		p->stage_bytes = PROTO_BATCH_HEAD;
		if (TAILQ_EMPTY(&t->staged))
			event_active(t->stage_ev, EV_TIMEOUT, 0);
		TAILQ_INSERT_TAIL(&t->staged, p, stage_link);
	}
	p->stage_bytes += part_size(d->m);
	return true;
}

/* Whether d joins what p has staged in one frame: of its priority, and
 * room left.  A turn that routes more to one client sends it a frame at
 * a time. */
static bool stage_fits(const struct peer *p, const struct delivery *d)
{
	return p->n_staged == 0 ||
	       (d->prio == p->stage_tail->prio &&
		p->stage_bytes + part_size(d->m) <= (size_t)p->rx_msgsize);
}

static void stage_put(struct peer *p, struct pending *e)
{
	msgbuf_unref(e->m);
	pending_put(p->table, e);
}

/*
 * What rx did not take: as deliver_message() would have had it with rx
 * full, within the topic's backlog or by its overflow policy.
 */
static void stage_overflow(struct peer *p, struct pending *e)
{
	struct delivery d = {
		.m = e->m,
		.prio = e->prio,
		.pol = &e->pol,
		.from = e->from ? peer_find(p->table, e->from) : NULL,
		.mark = e->mark,
	};
	int r;

	/* a publisher that went between routing and this end of the turn
	 * (its BYE came in the same turn) cannot be held up any more; what
	 * it sent before was taken when it could have been, so it waits,
	 * beyond the bound (within the budgets) as a held-up publisher's
	 * message would */
	if (p->closing)
		r = -EPIPE;
	else if (!(e->pol.overflow == OVERFLOW_BLOCK && e->from &&
		   (!d.from || d.from->closing) &&
		   backlog_full(p, e->m, &e->pol)))
		r = overflow(p, &d);
	else if (budget_full(p, e->m))
		r = -ENOBUFS;
	else
		r = enqueue(p, e->m, e->prio, p->dropped, e->mark) ? 0
								  : -ENOMEM;
	if (r == 0)
		p->dropped = 0;
	else
		p->dropped += count_drop(p, e->m, drop_reason_of(r), e->mark);
}

/* Sends what p was given this turn, in frames where it can. */
static void stage_flush(struct peer *p)
{
	struct pending *e = p->stage_head, *next;
	bool full = false;
	uint32_t gap = 0;

	p->stage_head = p->stage_tail = NULL;
	p->n_staged = 0;
	TAILQ_REMOVE(&p->table->staged, p, stage_link);
	while (e) {
		unsigned sent = 1;
		int r = -EAGAIN;

		e->dropped += gap;
		gap = 0;
		if (!full && !p->closing)
			r = send_run(p, e, false, &sent);
		if (r != -EAGAIN) {
			if (r < 0) /* this one alone was lost */
				gap = e->dropped + count_drop(p, e->m,
							      drop_reason_of(r),
							      e->mark);
			for (; sent > 0; sent--, e = next) {
				next = e->next;
				stage_put(p, e);
			}
			continue;
		}
		/* rx is full: the rest waits behind it, in order */
		full = true;
		next = e->next;
		p->dropped += e->dropped;
		stage_overflow(p, e);
		stage_put(p, e);
		e = next;
	}
	p->dropped += gap;
	drop_notice_later(p);
}

/* Drops what p was given this turn (p is going). */
static void stage_drop(struct peer *p)
{
	struct pending *e = p->stage_head, *next;

	if (p->n_staged == 0)
		return;
	p->stage_head = p->stage_tail = NULL;
	p->n_staged = 0;
	TAILQ_REMOVE(&p->table->staged, p, stage_link);
	for (; e; e = next) {
		next = e->next;
		count_drop(p, e->m, DROP_DISCONNECT, e->mark);
		stage_put(p, e);
	}
}

int deliver_message(struct peer *p, const struct delivery *d)
{
	struct delivery with_origin;
	int r;

	if (p->closing)
		return -EPIPE;
	/* a bridged message, to a peer that asked for its remote origin */
	if (d->origin_m && p->origin) {
		with_origin = *d;
		with_origin.m = d->origin_m;
		d = &with_origin;
	}
	/* a message in pieces waits in the backlog while it goes out;
	 * one beyond what p takes is refused (large.c) */
	r = large_admit(p, d->m);
	/* a client that reads frames gets its messages at the end of the
	 * turn, packed; but a request, whose answer is awaited, and a
	 * message in pieces go at once unless something routed before
	 * them waits for that end */
	if (r == 0 && p->batch && p->n_pending == 0 &&
	    !large_for(p, d->m) && !shm_for(p, d->m) &&
	    (!d->request || p->n_staged)) {
		if (!stage_fits(p, d))
			stage_flush(p);
		if (p->closing)
			return -EPIPE;
		if (p->n_pending == 0 && stage(p, d))
			return 0;
	}
	/* behind a backlog, keep order: queue instead of overtaking it */
	if (r == 0) {
		if (p->n_staged)
			stage_flush(p);
		if (p->closing)
			return -EPIPE;
		r = p->n_pending == 0 ? send_now(p, d->m, d->prio, p->dropped,
						 d->mark, false)
				      : -EAGAIN;
	}
	if (r == -EAGAIN)
		r = overflow(p, d);
	if (r == 0) {
		/* the count went out with m: it marks the gap before m */
		p->dropped = 0;
		if (large_for(p, d->m) && p->pending_head &&
		    p->pending_head->m == d->m)
			deliver_flush(p); /* its first pieces at once */
		return 0;
	}
	p->dropped += count_drop(p, d->m, drop_reason_of(r), d->mark);
	drop_notice_later(p);
	return r;
}

struct peer *deliver_subscriber(struct subscriber *sub,
				const struct delivery *d)
{
	struct peer *p = container_of(sub, struct peer, sub);

	if (p->server->cfg.policy && !access_receive(p, d))
		return NULL;
	return deliver_message(p, d) == 0 ? p : NULL;
}

/*
 * A monitor's copy: marked, under the bus's plain backlog with drop-new
 * whatever the topic says (a monitor never holds anyone up, never gets
 * disconnected for being slow), and never a recipient: NULL either way.
 */
struct peer *deliver_monitor(struct subscriber *sub, const struct delivery *d)
{
	struct peer *p = container_of(sub, struct peer, mon);
	struct delivery copy = *d;

	if (!access_monitor(p, d))
		return NULL;
	copy.pol = &p->server->monitor_policy;
	copy.from = NULL;
	copy.mark |= PROTO_F_MONITOR;
	deliver_message(p, &copy);
	return NULL;
}

int deliver_try(struct peer *p, struct msgbuf *m, unsigned prio)
{
	int r;

	if (p->n_staged)
		stage_flush(p);
	if (p->closing || p->n_pending > 0 || large_for(p, m))
		return -EAGAIN;
	r = send_now(p, m, prio, p->dropped, 0, false);
	if (r == 0)
		p->dropped = 0;
	return r;
}

void deliver_buf(struct peer *p, struct msgbuf *m, unsigned prio)
{
	int r = -EAGAIN;

	if (p->closing)
		return;
	/* what was routed to p before m goes first */
	if (p->n_staged)
		stage_flush(p);
	if (large_admit(p, m) == -EMSGSIZE)
		r = -EMSGSIZE;
	else if (p->n_pending == 0 && !large_for(p, m))
		r = send_now(p, m, prio, 0, 0, false);
	/* replies are bounded by the requests a client makes; the slack
	 * stops one that never reads its answers */
	if (r == -EAGAIN) {
		if (p->n_pending >=
		    p->server->cfg.pending_max + DELIVER_CONTROL_SLACK)
			r = -ENOBUFS;
		else if (enqueue(p, m, prio, 0, 0))
			r = 0;
		else
			r = -ENOMEM;
		if (r == 0 && large_for(p, m) && p->pending_head->m == m)
			deliver_flush(p);
	}
	if (r < 0)
		count_drop(p, m, drop_reason_of(r), 0);
}

void deliver_control(struct peer *p, const void *buf, size_t len)
{
	struct msgbuf *m = msgbuf_get(p->table->pool, len);

	if (!m) {
		p->server->stats.control_lost++;
		peer_close(p, false, "out of memory for its answer");
		return;
	}
	memcpy(m->data, buf, len);
	m->len = len;
	deliver_buf(p, m, PROTO_PRIO_MAX);
	msgbuf_unref(m);
}

void deliver_reply(struct peer *p, uint32_t token, int err, const char *text)
{
	deliver_reply_seq(p, token, err, text, 0);
}

void deliver_reply_seq(struct peer *p, uint32_t token, int err,
		       const char *text, uint64_t seq)
{
	unsigned char buf[PROTO_HEADER_SIZE + 1 + 256];
	struct proto_header h;
	size_t tlen = text && err ? strlen(text) : 0;
	int n;

	proto_header_init(&h, err ? PROTO_ERROR : PROTO_ACK);
	h.token = token;
	h.status = (uint32_t)err;
	h.seq = seq;
	if (tlen > 256)
		tlen = 256;
	n = proto_encode(buf, sizeof(buf), &h, NULL, text, tlen);
	if (n > 0)
		deliver_control(p, buf, (size_t)n);
}

void deliver_bad(struct peer *p, uint32_t token, int err, const char *what)
{
	char text[200];

	p->bad_messages++;
	p->server->stats.bad_messages++;
	snprintf(text, sizeof(text), "%s: %s", what, proto_strerror(err));
	if (p->bad_messages == 1 || p->bad_messages >= PEER_MAX_BAD) {
		/* the first and the last one, not all 64 */
		struct log_client who = stats_who(p);

		log_bad_messages(&who, p->bad_messages, text,
				 p->bad_messages >= PEER_MAX_BAD);
	}
	if (p->bad_messages >= PEER_MAX_BAD) {
		peer_close(p, true, "too many bad messages");
		return;
	}
	/* a message that does not decode is EBADMSG; others keep theirs */
	deliver_reply(p, token, -err >= PROTO_E_SHORT ? EBADMSG : -err, text);
}

/*
 * Losses that no message followed: once rx has room and nothing waits, a
 * drop notice says how many (a DELIVER with PROTO_F_DROPS, the topic of
 * the last one lost, no payload), at the lowest priority so that it comes
 * after whatever rx holds.  rx still full: tried again when it has room.
 */
static void drop_notice(struct peer *p)
{
	unsigned char buf[PROTO_HEADER_SIZE + PROTO_TOPIC_MAX + 1];
	struct proto_header h;
	int n;

	if (!p->dropped || !p->last_drop || p->n_pending || p->n_staged ||
	    p->closing)
		return;
	proto_header_init(&h, PROTO_DELIVER);
	h.flags = PROTO_F_DROPS;
	h.status = p->dropped;
	n = proto_encode(buf, sizeof(buf), &h, msg_topic(p->last_drop), NULL,
			 0);
	if (n < 0)
		return;
	if (mq_send(p->rx, (const char *)buf, (size_t)n, 0) < 0) {
		if (errno == EAGAIN)
			watch_rx(p);
		return;
	}
	p->dropped = 0;
	msgbuf_unref(p->last_drop);
	p->last_drop = NULL;
	p->server->stats.drop_notices++;
}

/* Drops with nothing waiting to carry their count: a notice as soon as
 * rx has room (deliver_flush()). */
static void drop_notice_later(struct peer *p)
{
	if (p->dropped && !p->n_pending && !p->n_staged && !p->closing &&
	    !(p->rx_ev && event_pending(p->rx_ev, EV_WRITE, NULL)))
		watch_rx(p);
}

void deliver_flush(struct peer *p)
{
	while (p->pending_head && !p->closing) {
		struct pending *e = p->pending_head;
		unsigned sent;
		int r = send_run(p, e, true, &sent);

		if (r == -EAGAIN) {
			/* rx full, or the memory-file connection (shm.c,
			 * which watches that) */
			if (!event_pending(p->rx_ev, EV_WRITE, NULL) &&
			    !shm_out_waits(p))
				watch_rx(p);
			break;
		}
		if (r < 0) /* the next reports the gap */
			pending_drop(p, NULL, e, drop_reason_of(r));
		else
			while (sent--)
				pending_unlink(p, NULL, p->pending_head);
	}
	/* room again: the publishers held up may go on */
	if (p->n_blocked && p->n_pending <= p->release_at)
		release_publishers(p);
	drop_notice(p);
}

void deliver_drop_peer(struct peer *p)
{
	release_publishers(p);
	free(p->blocked);
	p->blocked = NULL;
	p->cap_blocked = 0;
	/* what waited for it is lost with it */
	stage_drop(p);
	while (p->pending_head)
		pending_drop(p, NULL, p->pending_head, DROP_DISCONNECT);
	msgbuf_unref(p->last_drop);
	p->last_drop = NULL;
}

void deliver_check_blocking(struct peer *p, uint64_t now)
{
	uint64_t limit = (uint64_t)p->server->cfg.block_timeout * 1000000u;

	if (p->n_blocked == 0 || limit == 0 || p->closing ||
	    now - p->blocking_since < limit)
		return;
	/* a subscriber that never reads would freeze its publishers, and
	 * all their other traffic, for ever: after block_timeout it is
	 * treated as overflow = disconnect */
	p->server->stats.slow_disconnects++;
	log_warnx("client %u (uid %u, %s): held %zu publisher(s) up for %u s "
		  "(block_timeout): disconnected",
		  p->id, (unsigned)p->uid, p->comm, p->n_blocked,
		  p->server->cfg.block_timeout);
	peer_close(p, true, "disconnected: block_timeout");
	release_publishers(p);
}
