/* SPDX-License-Identifier: MIT */
/*
 * large.c - messages larger than a queue message: putting the pieces a
 * client sends together, and sending a whole message to a receiver in
 * pieces of its queue's size.
 *
 * What a client can make the daemon hold here is bounded three ways:
 * LARGE_PARTS_MAX unfinished messages per client, the bus's max_message
 * per message, and the memory of all of them charged, from the first
 * piece on, to the bus's pending budget and the sender's uid's
 * pending_budget_per_uid, like a slow subscriber's backlog.  A client
 * that dies halfway leaves nothing: its unfinished messages are freed
 * with it and counted as incomplete.
 *
 * Each byte is copied as little as the queues allow: a piece after the
 * first is read straight into its place in the message being put
 * together (large_slot(), from peer_read()), and the pieces sent on are
 * sent from the whole message, each header written over the bytes in
 * front of its piece and put back.  tests/bench/README.md, "Large
 * messages", counts the copies and what they cost.
 */
#include <errno.h>
#include <malloc.h>
#include <mqueue.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/account.h"
#include "daemon/deliver.h"
#include "daemon/large.h"
#include "daemon/log.h"
#include "daemon/msgbuf.h"
#include "daemon/peer.h"
#include "daemon/server.h"
#include "daemon/stats.h"
#include "proto/frag.h"
#include "proto/proto.h"

/* the most a whole message may add to its payload: header, topic, key */
#define LARGE_ENVELOPE (PROTO_HEADER_SIZE + 2 * (PROTO_TOPIC_MAX + 1))

static size_t large_limit(const struct server *s)
{
	return s->cfg.max_message;
}

/*
 * Large buffers come and go with every large message.  glibc would give
 * each of them fresh pages (mmap, or a heap trimmed after every free),
 * so that the daemon spends more time in page faults than in copying:
 * they stay in the heap while large messages flow, and large_tick()
 * gives the memory back once they stop.
 */
void large_heap_setup(struct server *s)
{
	static bool done;

	s->large.untrimmed = true;
	s->large.busy = true;
	if (done)
		return;
	done = true;
	mallopt(M_MMAP_THRESHOLD, 64 * 1024 * 1024);
	mallopt(M_TRIM_THRESHOLD, 256 * 1024 * 1024);
}

void large_tick(struct server *s)
{
	if (s->large.reassembled == s->large.ticked && !s->large.busy &&
	    s->large.untrimmed && s->large.held == 0) {
		malloc_trim(0);
		s->large.untrimmed = false;
	}
	s->large.ticked = s->large.reassembled;
	s->large.busy = false;
}

static void part_charge(struct peer *p, struct large_part *part, bool on)
{
	struct server *s = p->server;

	if (on) {
		part->charged = msgbuf_size(part->m);
		s->pending_mem += part->charged;
		s->large.held += part->charged;
		account_charge_n(&s->accounts, p->uid, ACCOUNT_PENDING_MEM,
				 part->charged);
	} else {
		s->pending_mem -= part->charged;
		s->large.held -= part->charged;
		account_credit_n(&s->accounts, p->uid, ACCOUNT_PENDING_MEM,
				 part->charged);
		part->charged = 0;
	}
}

/* Frees part's buffer and its charge; with why, it is counted and
 * journalled as a message given up. */
static void part_free(struct peer *p, struct large_part *part,
		      const char *why)
{
	if (!part->id)
		return;
	if (p->large.next == part)
		p->large.next = NULL;
	if (why) {
		p->server->large.incomplete++;
		log_warnx("client %u (uid %u, pid %d, %s): large message %u "
			  "given up after %zu of %zu bytes: %s",
			  p->id, (unsigned)p->uid, (int)p->pid, p->comm,
			  part->id, part->m->len, part->total, why);
	}
	part_charge(p, part, false);
	msgbuf_unref(part->m);
	memset(part, 0, sizeof(*part));
}

static struct large_part *part_find(struct peer *p, uint32_t id)
{
	for (size_t i = 0; i < LARGE_PARTS_MAX; i++)
		if (p->large.in[i].id == id)
			return &p->large.in[i];
	return NULL;
}

/* Refuses a message at its first piece: its sender hears why, with the
 * token of the message inside. */
static void refuse(struct peer *p, uint32_t token, int err, const char *why)
{
	p->server->large.refused++;
	deliver_reply(p, token, err, why);
}

/*
 * The first piece of message pm->h.token: checked against the limits,
 * then a buffer for the whole of it, charged at once.  NULL when it was
 * refused (answered).
 */
static struct large_part *part_start(struct peer *p,
				     const struct proto_msg *pm)
{
	struct server *s = p->server;
	size_t total = pm->h.timestamp, cost;
	struct large_part *part;
	struct proto_header inner;
	char why[200];

	memcpy(&inner, pm->payload, sizeof(inner));
	/* a second first piece of the same id starts it over */
	part = part_find(p, pm->h.token);
	if (part)
		part_free(p, part, "started again");
	if (!frag_type_ok(inner.type) || inner.type == PROTO_DELIVER) {
		snprintf(why, sizeof(why),
			 "a %s cannot be sent in pieces: it must fit one "
			 "queue message",
			 proto_type_name(inner.type));
		refuse(p, inner.token, EMSGSIZE, why);
		return NULL;
	}
	if (inner.payload_len > large_limit(s) ||
	    total > large_limit(s) + LARGE_ENVELOPE) {
		snprintf(why, sizeof(why),
			 "message of %u bytes is larger than the bus's "
			 "max_message (%zu bytes)",
			 (unsigned)inner.payload_len, large_limit(s));
		refuse(p, inner.token, EMSGSIZE, why);
		return NULL;
	}
	part = part_find(p, 0);
	if (!part) {
		snprintf(why, sizeof(why),
			 "too many unfinished large messages: at most %d "
			 "per client",
			 LARGE_PARTS_MAX);
		refuse(p, inner.token, EBUSY, why);
		return NULL;
	}
	/* room behind it for a piece read in place (large_slot()) */
	cost = total + (size_t)p->tx_msgsize + sizeof(struct msgbuf);
	if (s->pending_mem + cost > s->cfg.pending_budget) {
		snprintf(why, sizeof(why),
			 "the bus holds its pending_budget (%u bytes): no "
			 "room for a message of %zu bytes",
			 s->cfg.pending_budget, total);
		refuse(p, inner.token, ENOBUFS, why);
		return NULL;
	}
	if (account_held(&s->accounts, p->uid, ACCOUNT_PENDING_MEM) + cost >
	    s->cfg.pending_budget_per_uid) {
		snprintf(why, sizeof(why),
			 "uid %u would hold more than pending_budget_per_uid "
			 "(%u bytes) with a message of %zu bytes",
			 (unsigned)p->uid, s->cfg.pending_budget_per_uid,
			 total);
		s->stats.quota_refused++;
		refuse(p, inner.token, EDQUOT, why);
		return NULL;
	}
	large_heap_setup(s);
	part->m = msgbuf_get_exact(&s->pool, total + (size_t)p->tx_msgsize);
	if (!part->m) {
		refuse(p, inner.token, ENOMEM, "out of memory");
		return NULL;
	}
	part->m->len = 0;
	part->m->stat = NULL;
	part->m->measured = false;
	part->id = pm->h.token;
	part->total = total;
	part_charge(p, part, true);
	return part;
}

/* the publisher of a PUBLISH with a token learns whether anybody could
 * take it */
void large_route(struct peer *p, struct msgbuf *m, large_dispatch_fn dispatch)
{
	struct server *s = p->server;
	struct proto_header inner;
	char why[200];

	memcpy(&inner, m->data, sizeof(inner));
	s->large.routing = true;
	s->large.routed = false;
	s->large.accepted = 0;
	s->large.refused_now = 0;
	dispatch(p, m);
	s->large.routing = false;
	if (inner.type != PROTO_PUBLISH || inner.token == 0 || p->closing)
		return;
	if (!s->large.routed) {
		/* refused by the access policy (answered), or held for a
		 * restart's grace period: routed later */
		if (p->held)
			deliver_reply(p, inner.token, 0, NULL);
		return;
	}
	if (s->large.accepted == 0 && s->large.refused_now > 0) {
		snprintf(why, sizeof(why),
			 "no subscriber takes a message of %u bytes: "
			 "%u refused it as larger than they take",
			 (unsigned)inner.payload_len, s->large.refused_now);
		deliver_reply(p, inner.token, EMSGSIZE, why);
		return;
	}
	deliver_reply(p, inner.token, 0, NULL);
}

/* A client takes payloads up to limit: what is larger is refused to it
 * (counted as too large), not sent in pieces. */
static void set_limit(struct peer *p, size_t limit)
{
	p->large.limit = limit;
	log_debug("client %u takes messages up to %zu bytes", p->id, limit);
}

/* len more bytes of part are in place: once it is whole, it is routed,
 * and from then on it is an ordinary message, charged as one (in a
 * backlog) wherever it waits. */
static void part_added(struct peer *p, struct large_part *part, size_t len,
		       large_dispatch_fn dispatch)
{
	struct msgbuf *m;

	part->m->len += len;
	if (part->m->len < part->total) {
		p->large.next = part;
		return;
	}
	m = msgbuf_ref(part->m);
	part_free(p, part, NULL);
	p->server->large.reassembled++;
	large_route(p, m, dispatch);
	msgbuf_unref(m);
}

void large_fragment(struct peer *p, const struct proto_msg *pm,
		    large_dispatch_fn dispatch)
{
	struct large_part *part;

	if (pm->h.token == 0) {
		set_limit(p, pm->h.seq);
		return;
	}
	if (pm->h.seq == 0) {
		part = part_start(p, pm);
	} else {
		part = part_find(p, pm->h.token);
		/* a piece of a message refused at its first: ignored */
		if (!part)
			return;
		if (!frag_continues(pm, part->id, part->total, part->m->len)) {
			part_free(p, part, "a piece out of order");
			deliver_bad(p, 0, -PROTO_E_FIELD,
				    "fragment out of order");
			return;
		}
	}
	if (!part)
		return;
	memcpy(part->m->data + part->m->len, pm->payload, pm->h.payload_len);
	part_added(p, part, pm->h.payload_len, dispatch);
}

unsigned char *large_slot(struct peer *p)
{
	struct large_part *part = p->large.next;
	unsigned char *at;

	if (!part || part->m->len < FRAG_OVERHEAD ||
	    part->m->cap - (part->m->len - FRAG_OVERHEAD) <
		    (size_t)p->tx_msgsize)
		return NULL;
	at = part->m->data + part->m->len - FRAG_OVERHEAD;
	memcpy(p->large.save, at, FRAG_OVERHEAD);
	return at;
}

bool large_landed(struct peer *p, unsigned char *at, ssize_t n,
		  struct msgbuf *m, large_dispatch_fn dispatch)
{
	struct large_part *part = p->large.next;
	struct proto_msg pm;
	bool ours = n >= (ssize_t)FRAG_OVERHEAD &&
		    proto_decode(at, (size_t)n, &pm) == 0 &&
		    pm.h.type == PROTO_FRAGMENT && pm.h.token != 0 &&
		    pm.h.seq != 0 &&
		    frag_continues(&pm, part->id, part->total, part->m->len) &&
		    pm.payload == at + FRAG_OVERHEAD;

	if (!ours) {
		/* something else: where the usual way reads it, and the
		 * bytes under it back */
		m->len = n > 0 ? (size_t)n : 0;
		if (n > 0)
			memcpy(m->data, at, (size_t)n);
		memcpy(at, p->large.save, FRAG_OVERHEAD);
		return false;
	}
	memcpy(at, p->large.save, FRAG_OVERHEAD);
	part_added(p, part, pm.h.payload_len, dispatch);
	return true;
}

void large_drop_peer(struct peer *p)
{
	for (size_t i = 0; i < LARGE_PARTS_MAX; i++)
		part_free(p, &p->large.in[i], "the client went away");
	p->large.out = NULL;
}

void large_routed(struct server *s, unsigned accepted)
{
	if (!s->large.routing)
		return;
	s->large.routed = true;
	s->large.accepted += accepted;
}

bool large_for(const struct peer *p, const struct msgbuf *m)
{
	return m->len > (size_t)p->rx_msgsize && !shm_for(p, m);
}

int large_admit(struct peer *p, const struct msgbuf *m)
{
	struct server *s = p->server;
	size_t limit = p->large.limit ? p->large.limit : large_limit(s);
	struct proto_header h;
	bool shm;

	if (m->len <= (size_t)p->rx_msgsize)
		return 0;
	/* as its memory file: at once, as any message (shm.c) */
	shm = shm_for(p, m);
	memcpy(&h, m->data, sizeof(h));
	if ((!shm && frag_chunk(p->rx_msgsize) == 0) ||
	    h.payload_len > limit) {
		s->large.too_large++;
		if (s->large.routing)
			s->large.refused_now++;
		return -EMSGSIZE;
	}
	return shm ? 0 : -EAGAIN;
}

bool large_in_flight(const struct peer *p, const struct msgbuf *m)
{
	return p->large.out == m;
}

void large_unlinked(struct peer *p, const struct msgbuf *m)
{
	if (p->large.out == m)
		p->large.out = NULL;
}

/* the first piece of a large message goes from here: m->data has no
 * room in front for its header (larger queues: from the heap) */
static unsigned char first_piece[8192];

/* Sends the piece of m at off, of n bytes.  The first piece goes from a
 * copy; the others from m itself, the fragment header written over the
 * bytes just before the piece (sent already) and put back after. */
static int send_piece(struct peer *p, struct msgbuf *m, size_t off, size_t n,
		      unsigned prio)
{
	struct large_peer *l = &p->large;
	unsigned char save[FRAG_OVERHEAD], *at;
	int r = 0;

	if (off < FRAG_OVERHEAD) {
		at = FRAG_OVERHEAD + n <= sizeof(first_piece)
			     ? first_piece
			     : malloc(FRAG_OVERHEAD + n);
		if (!at)
			return -ENOMEM;
		memcpy(at + FRAG_OVERHEAD, m->data + off, n);
	} else {
		at = m->data + off - FRAG_OVERHEAD;
		memcpy(save, at, FRAG_OVERHEAD);
	}
	frag_header(at, l->out_id, off, m->len, prio, n);
	if (mq_send(p->rx, (const char *)at, FRAG_OVERHEAD + n, prio) < 0)
		r = -errno;
	if (off >= FRAG_OVERHEAD)
		memcpy(at, save, FRAG_OVERHEAD);
	else if (at != first_piece)
		free(at);
	return r;
}

/*
 * Starts sending m in pieces.  They go at m's priority, unless the
 * pieces of the previous large message may still be in rx (it is not
 * empty): then at most at that one's, so that ours queue behind its last
 * pieces instead of overtaking them, and the receiver never has the
 * pieces of two messages mixed.
 */
static void start_out(struct peer *p, struct msgbuf *m, unsigned prio)
{
	struct large_peer *l = &p->large;
	struct mq_attr a;

	if (l->floor_set && prio > l->floor &&
	    (mq_getattr(p->rx, &a) < 0 || a.mq_curmsgs > 0))
		prio = l->floor;
	l->floor = prio;
	l->floor_set = true;
	l->out = m;
	l->out_off = 0;
	l->out_prio = prio;
	if (++l->next_id == 0)
		l->next_id = 1;
	l->out_id = l->next_id;
}

int large_send(struct peer *p, struct msgbuf *m, unsigned prio)
{
	struct large_peer *l = &p->large;
	size_t chunk = frag_chunk(p->rx_msgsize);

	if (chunk == 0)
		return -EMSGSIZE;
	if (l->out != m)
		start_out(p, m, prio);
	while (l->out_off < m->len) {
		size_t n = m->len - l->out_off;
		int r;

		if (n > chunk)
			n = chunk;
		r = send_piece(p, m, l->out_off, n, l->out_prio);
		if (r < 0)
			return r;
		l->out_off += n;
	}
	l->out = NULL;
	p->server->large.sent++;
	return 0;
}

void large_stats_text(const struct server *s, char *buf, size_t cap,
		      size_t *len)
{
	stats_text_add(buf, cap, len,
		       "max_message=%u\n"
		       "large_reassembled=%llu\n"
		       "large_incomplete=%llu\n"
		       "large_refused=%llu\n"
		       "large_sent=%llu\n"
		       "large_too_large=%llu\n"
		       "large_held=%zu\n",
		       s->cfg.max_message,
		       (unsigned long long)s->large.reassembled,
		       (unsigned long long)s->large.incomplete,
		       (unsigned long long)s->large.refused,
		       (unsigned long long)s->large.sent,
		       (unsigned long long)s->large.too_large, s->large.held);
}
