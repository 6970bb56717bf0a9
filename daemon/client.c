/* SPDX-License-Identifier: MIT */
/*
 * client.c - per-client state: reading tx, answering requests, writing rx.
 *
 * Everything a client sends is untrusted: a message that does not decode,
 * or a type a client may not send, is answered with ERROR and counted;
 * SERVER_MAX_BAD of them end the session.  Output never blocks the loop:
 * what does not fit in rx waits in the pending list (bounded by the
 * config's pending_max; beyond it the newest message is dropped and
 * counted, and the count rides on the subscriber's next delivery).
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "daemon/client.h"
#include "daemon/log.h"
#include "daemon/msgbuf.h"
#include "daemon/router.h"
#include "daemon/server.h"
#include "proto/proto.h"

/* control replies may exceed pending_max by this much */
#define CLIENT_CONTROL_SLACK 64

static struct pending *pending_pool;

static struct pending *pending_get(void)
{
	struct pending *p = pending_pool;

	if (p) {
		pending_pool = p->next;
		return p;
	}
	return malloc(sizeof(*p));
}

static void pending_put(struct pending *p)
{
	p->next = pending_pool;
	pending_pool = p;
}

static void client_on_wake(struct wake_src *src);
static void client_rx_writable(evutil_socket_t fd, short what, void *arg);
static void client_pid_exited(evutil_socket_t fd, short what, void *arg);

int client_new(struct server *s, uint32_t id, uid_t uid, pid_t pid,
	       const char *tx_name, const char *rx_name, mqd_t tx, mqd_t rx,
	       int pidfd, struct client **ret)
{
	struct mq_attr txa, rxa;
	struct client *c;
	int r = -ENOMEM;

	if (mq_getattr(tx, &txa) < 0 || mq_getattr(rx, &rxa) < 0) {
		r = -errno;
		mq_close(tx);
		mq_close(rx);
		close(pidfd);
		return r;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		mq_close(tx);
		mq_close(rx);
		close(pidfd);
		return -ENOMEM;
	}
	c->kind = SUB_CLIENT;
	c->server = s;
	TAILQ_INIT(&c->requests);
	TAILQ_INIT(&c->timers);
	c->id = id;
	c->uid = uid;
	c->pid = pid;
	c->tx = tx;
	c->rx = rx;
	c->pidfd = pidfd;
	c->tx_msgsize = txa.mq_msgsize;
	c->rx_msgsize = rxa.mq_msgsize;
	c->tx_name = strdup(tx_name);
	c->rx_name = strdup(rx_name);
	if (!c->tx_name || !c->rx_name)
		goto fail;
	c->rx_ev = event_new(s->base, rx, EV_WRITE, client_rx_writable, c);
	c->pid_ev = event_new(s->base, pidfd, EV_READ, client_pid_exited, c);
	if (!c->rx_ev || !c->pid_ev || event_add(c->pid_ev, NULL) < 0)
		goto fail;
	c->src.mqd = tx;
	c->src.on_wake = client_on_wake;
	r = wake_add(s->wake, &c->src);
	if (r < 0)
		goto fail;
	*ret = c;
	return 0;

fail:
	client_free(c, false);
	return r;
}

static void pending_unlink(struct client *c, struct pending *prev,
			   struct pending *p);
static void client_release_publishers(struct client *c);

static void pending_clear(struct client *c)
{
	while (c->pending_head)
		pending_unlink(c, NULL, c->pending_head);
}

void client_free(struct client *c, bool unlink)
{
	struct server *s = c->server;

	wake_del(&c->src);
	for (size_t i = 0; i < c->n_subs; i++) {
		struct client_sub *sub = &c->subs[i];

		if (sub->group)
			group_leave(s, sub->pattern, sub->group, c);
		else
			router_unsubscribe(s->router, sub->pattern, c);
		free(sub->pattern);
		free(sub->group);
	}
	free(c->subs);
	client_release_publishers(c);
	free(c->blocked);
	while (!TAILQ_EMPTY(&c->requests))
		request_free(TAILQ_FIRST(&c->requests));
	while (!TAILQ_EMPTY(&c->timers))
		timer_free(TAILQ_FIRST(&c->timers));
	pending_clear(c);
	if (c->rx_ev)
		event_free(c->rx_ev);
	if (c->pid_ev)
		event_free(c->pid_ev);
	mq_close(c->tx);
	mq_close(c->rx);
	if (c->pidfd >= 0)
		close(c->pidfd);
	if (unlink) {
		/* ENOENT: the client unlinked them itself */
		if (c->tx_name)
			mq_unlink(c->tx_name);
		if (c->rx_name)
			mq_unlink(c->rx_name);
	}
	free(c->tx_name);
	free(c->rx_name);
	free(c);
}

void client_close(struct client *c, bool bye, const char *why)
{
	if (c->closing)
		return;
	if (bye) {
		unsigned char buf[PROTO_HEADER_SIZE + 1];
		struct proto_header h;
		int n;

		proto_header_init(&h, PROTO_BYE);
		n = proto_encode(buf, sizeof(buf), &h, NULL, NULL, 0);
		if (n > 0 && mq_send(c->rx, (char *)buf, n, PROTO_PRIO_MAX) < 0)
			log_debug("client %u: BYE not sent: %s", c->id,
				  strerror(errno));
	}
	c->closing = true;
	log_debug("client %u (pid %d, uid %u): %s", c->id, (int)c->pid,
		  (unsigned)c->uid, why);
	server_client_closing(c->server, c);
}

/*
 * The process is gone, but what it sent before dying was promised to the
 * bus: drain tx (it cannot grow any more) before letting the client go.
 */
static void client_pid_exited(evutil_socket_t fd, short what, void *arg)
{
	struct client *c = arg;

	/* even if a slow subscriber held it up: nothing more will come */
	c->blocked_by = 0;
	while (client_read(c, SERVER_READ_BUDGET) > 0)
		;
	client_close(c, false, "process exited");
}

static void client_on_wake(struct wake_src *src)
{
	struct client *c = (struct client *)((char *)src -
					     offsetof(struct client, src));

	server_wake_ready(c->server, src);
}

/*
 * Sends m now.  A DELIVER carries the number of messages dropped just
 * before it, patched into the shared buffer only for this mq_send (the
 * kernel copies it).
 */
static int client_send_now(struct client *c, struct msgbuf *m, unsigned prio,
			   uint32_t dropped)
{
	const size_t status_off = offsetof(struct proto_header, status);
	bool deliver = m->data[offsetof(struct proto_header, type)] ==
		       PROTO_DELIVER;
	uint32_t zero = 0;
	int r;

	if (deliver)
		memcpy(m->data + status_off, &dropped, sizeof(dropped));
	r = mq_send(c->rx, (const char *)m->data, m->len, prio);
	if (deliver)
		memcpy(m->data + status_off, &zero, sizeof(zero));
	if (r < 0)
		return -errno;
	if (deliver) {
		c->delivered++;
		c->server->stats.delivered++;
	}
	return 0;
}

/* Counts m as lost; returns 1 if it was a delivery (0 for a reply), so
 * the caller can add it to the gap the next message reports. */
static uint32_t client_drop(struct client *c, struct msgbuf *m, int err)
{
	if (m->data[offsetof(struct proto_header, type)] != PROTO_DELIVER) {
		log_debug("client %u: control reply dropped: %s", c->id,
			  strerror(-err));
		return 0;
	}
	c->dropped_total++;
	c->server->stats.dropped++;
	if (err != -EAGAIN)
		log_debug("client %u: message dropped: %s", c->id,
			  strerror(-err));
	return 1;
}

/* Highest priority first; FIFO within a priority.  Appending is the
 * common case, so the list is scanned only when priorities overtake. */
static void pending_insert(struct client *c, struct pending *p)
{
	struct pending **at = &c->pending_head;

	if (!c->pending_tail || c->pending_tail->prio >= p->prio) {
		p->next = NULL;
		if (c->pending_tail)
			c->pending_tail->next = p;
		else
			c->pending_head = p;
		c->pending_tail = p;
	} else {
		while ((*at)->prio >= p->prio)
			at = &(*at)->next;
		p->next = *at;
		*at = p;
	}
	c->n_pending++;
}

static bool msg_is_deliver(const struct msgbuf *m)
{
	return m->data[offsetof(struct proto_header, type)] == PROTO_DELIVER;
}

/* Queues m behind what rx cannot take yet.  false: out of memory. */
static bool client_enqueue(struct client *c, struct msgbuf *m, unsigned prio,
			   uint32_t dropped)
{
	struct pending *p = pending_get();

	if (!p)
		return false;
	p->m = msgbuf_ref(m);
	p->prio = prio;
	p->dropped = dropped;
	pending_insert(c, p);
	c->pending_bytes += m->len;
	c->server->pending_bytes += m->len;
	if (c->n_pending == 1)
		event_add(c->rx_ev, NULL);
	return true;
}

/* Takes p (after prev, NULL for the head) out of the pending list. */
static void pending_unlink(struct client *c, struct pending *prev,
			   struct pending *p)
{
	if (prev)
		prev->next = p->next;
	else
		c->pending_head = p->next;
	if (c->pending_tail == p)
		c->pending_tail = prev;
	c->n_pending--;
	c->pending_bytes -= p->m->len;
	c->server->pending_bytes -= p->m->len;
	msgbuf_unref(p->m);
	pending_put(p);
}

/* Drops p from the pending list; the next message reports the gap. */
static void pending_drop(struct client *c, struct pending *prev,
			 struct pending *p)
{
	uint32_t gap = p->dropped + client_drop(c, p->m, -ENOBUFS);

	if (p->next)
		p->next->dropped += gap;
	else
		c->dropped += gap;
	pending_unlink(c, prev, p);
}

/* The oldest waiting delivery of the lowest priority, and what is before
 * it, or NULL if every waiting delivery outranks prio. */
static struct pending *pending_victim(struct client *c, unsigned prio,
				      struct pending **ret_prev)
{
	struct pending *p, *prev = NULL, *best = NULL, *best_prev = NULL;

	for (p = c->pending_head; p; prev = p, p = p->next) {
		if (!msg_is_deliver(p->m) || p->prio > prio)
			continue;
		if (!best || p->prio < best->prio) {
			best = p;
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
 * and no key), for coalescing. */
static struct pending *pending_same_key(struct client *c,
					const struct msgbuf *m,
					struct pending **ret_prev)
{
	size_t len = msg_topic_key_len(m);
	struct pending *p, *prev = NULL;

	for (p = c->pending_head; p; prev = p, p = p->next) {
		if (!msg_is_deliver(p->m) || msg_topic_key_len(p->m) != len)
			continue;
		if (memcmp(p->m->data + PROTO_HEADER_SIZE,
			   m->data + PROTO_HEADER_SIZE, len) == 0) {
			*ret_prev = prev;
			return p;
		}
	}
	return NULL;
}

static bool client_backlog_full(const struct client *c, size_t len,
				const struct delivery_policy *pol)
{
	const struct server *s = c->server;

	return c->n_pending >= pol->backlog ||
	       c->pending_bytes + len > pol->backlog_bytes ||
	       s->pending_bytes + len > s->cfg.pending_budget;
}

/*
 * Pauses the publisher until c has room: its tx queue is not read, so it
 * fills and the kernel makes the publisher wait.  c remembers whom it
 * holds up, to let them go in client_flush().  Returns whether pub is held
 * up now: not a publisher that is gone (NULL: a timer or a retained
 * value), closing, c itself, or one there was no memory to note.
 */
static bool client_block_publisher(struct client *c, struct client *pub)
{
	if (!pub || pub == c || pub->closing)
		return false;
	for (size_t i = 0; i < c->n_blocked; i++)
		if (c->blocked[i] == pub->id)
			return true;
	if (c->n_blocked == c->cap_blocked) {
		size_t cap = c->cap_blocked ? c->cap_blocked * 2 : 4;
		uint32_t *b = realloc(c->blocked, cap * sizeof(*b));

		if (!b)
			return false;
		c->blocked = b;
		c->cap_blocked = cap;
	}
	c->blocked[c->n_blocked++] = pub->id;
	c->release_at = c->n_pending / 2;
	pub->blocked_by++;
	c->server->stats.publishers_blocked++;
	return true;
}

/* Lets go the publishers c held up. */
static void client_release_publishers(struct client *c)
{
	for (size_t i = 0; i < c->n_blocked; i++) {
		struct client *pub = server_find_client(c->server,
							c->blocked[i]);

		if (pub && pub->blocked_by > 0 && --pub->blocked_by == 0 &&
		    !pub->closing)
			server_wake_ready(c->server, &pub->src);
	}
	c->n_blocked = 0;
}

/*
 * rx is full and a delivery must wait: within the backlog it queues;
 * beyond it the topic's overflow policy decides.
 */
static int client_overflow(struct client *c, struct msgbuf *m, unsigned prio,
			   const struct delivery_policy *pol,
			   struct client *from)
{
	struct pending *victim, *prev;

	/* a newer value of a topic and key replaces one still waiting, full
	 * or not */
	if (pol->overflow == OVERFLOW_COALESCE &&
	    (victim = pending_same_key(c, m, &prev))) {
		c->server->stats.coalesced++;
		pending_drop(c, prev, victim);
	}
	if (!client_backlog_full(c, m->len, pol))
		return client_enqueue(c, m, prio, c->dropped) ? 0 : -ENOMEM;

	switch (pol->overflow) {
	case OVERFLOW_COALESCE:
		/* nothing to replace: make room as drop-old does */
	case OVERFLOW_DROP_OLD:
		while (client_backlog_full(c, m->len, pol) &&
		       (victim = pending_victim(c, prio, &prev)))
			pending_drop(c, prev, victim);
		if (client_backlog_full(c, m->len, pol))
			return -ENOBUFS;
		return client_enqueue(c, m, prio, c->dropped) ? 0 : -ENOMEM;
	case OVERFLOW_BLOCK:
		/* nothing is lost: m waits beyond the bound, one message per
		 * publisher at most, and the publisher stops.  What no
		 * publisher can be held up for (a timer, a client sending to
		 * itself) is dropped, or the backlog would have no bound. */
		if (!client_block_publisher(c, from))
			return -ENOBUFS;
		return client_enqueue(c, m, prio, c->dropped) ? 0 : -ENOMEM;
	case OVERFLOW_DISCONNECT:
		c->server->stats.slow_disconnects++;
		client_close(c, true, "too slow: its backlog is full");
		return -ENOBUFS;
	case OVERFLOW_DROP_NEW:
	default:
		return -ENOBUFS;
	}
}

int client_deliver(struct client *c, struct msgbuf *m, unsigned prio,
		   const struct delivery_policy *pol, struct client *from)
{
	int r = -EAGAIN;

	if (c->closing)
		return -EPIPE;
	/* behind a backlog, keep order: queue instead of overtaking it */
	if (c->n_pending == 0)
		r = client_send_now(c, m, prio, c->dropped);
	if (r == -EAGAIN)
		r = client_overflow(c, m, prio, pol, from);
	if (r == 0) {
		/* the count went out with m: it marks the gap before m */
		c->dropped = 0;
		return 0;
	}
	if (!c->closing)
		c->dropped += client_drop(c, m, r);
	return r;
}

int client_try_deliver(struct client *c, struct msgbuf *m, unsigned prio)
{
	int r;

	if (c->closing || c->n_pending > 0)
		return -EAGAIN;
	r = client_send_now(c, m, prio, c->dropped);
	if (r == 0)
		c->dropped = 0;
	return r;
}

void client_send_buf(struct client *c, struct msgbuf *m, unsigned prio)
{
	int r = -EAGAIN;

	if (c->closing)
		return;
	if (c->n_pending == 0)
		r = client_send_now(c, m, prio, 0);
	/* replies are bounded by the requests a client makes; the slack
	 * stops one that never reads its answers */
	if (r == -EAGAIN &&
	    c->n_pending < c->server->cfg.pending_max + CLIENT_CONTROL_SLACK &&
	    client_enqueue(c, m, prio, 0))
		r = 0;
	if (r < 0)
		client_drop(c, m, r);
}

static void client_rx_writable(evutil_socket_t fd, short what, void *arg)
{
	client_flush(arg);
}

void client_flush(struct client *c)
{
	while (c->pending_head && !c->closing) {
		struct pending *p = c->pending_head;
		int r = client_send_now(c, p->m, p->prio, p->dropped);

		if (r == -EAGAIN) {
			if (!event_pending(c->rx_ev, EV_WRITE, NULL))
				event_add(c->rx_ev, NULL);
			break;
		}
		if (r < 0)
			pending_drop(c, NULL, p); /* the next reports the gap */
		else
			pending_unlink(c, NULL, p);
	}
	/* room again: the publishers held up may go on */
	if (c->n_blocked && c->n_pending <= c->release_at)
		client_release_publishers(c);
}

int client_send_control(struct client *c, const void *buf, size_t len,
			unsigned prio)
{
	struct msgbuf *m = msgbuf_get(len);

	if (!m)
		return -ENOMEM;
	memcpy(m->data, buf, len);
	m->len = len;
	client_send_buf(c, m, prio);
	msgbuf_unref(m);
	return 0;
}

void client_reply(struct client *c, uint32_t token, int err,
		  const char *text)
{
	client_reply_seq(c, token, err, text, 0);
}

void client_reply_seq(struct client *c, uint32_t token, int err,
		      const char *text, uint64_t seq)
{
	unsigned char buf[PROTO_HEADER_SIZE + 1 + 256];
	struct proto_header h;
	size_t tlen = text ? strlen(text) : 0;
	int n;

	proto_header_init(&h, err ? PROTO_ERROR : PROTO_ACK);
	h.token = token;
	h.status = (uint32_t)err;
	h.seq = seq;
	if (!err)
		tlen = 0;
	if (tlen > 256)
		tlen = 256;
	n = proto_encode(buf, sizeof(buf), &h, NULL, text, tlen);
	if (n > 0)
		client_send_control(c, buf, n, PROTO_PRIO_MAX);
}

void client_bad(struct client *c, uint32_t token, int err, const char *what)
{
	char text[200];

	c->bad_messages++;
	c->server->stats.bad_messages++;
	snprintf(text, sizeof(text), "%s: %s", what, proto_strerror(err));
	log_debug("client %u: %s", c->id, text);
	if (c->bad_messages >= SERVER_MAX_BAD) {
		client_close(c, true, "too many bad messages");
		return;
	}
	/* a message that does not decode is EBADMSG; others keep theirs */
	client_reply(c, token, -err >= PROTO_E_SHORT ? EBADMSG : -err, text);
}

static struct client_sub *client_find_sub(struct client *c,
					  const char *pattern,
					  const char *group)
{
	for (size_t i = 0; i < c->n_subs; i++) {
		struct client_sub *sub = &c->subs[i];

		if (strcmp(sub->pattern, pattern) == 0 &&
		    (sub->group ? group && strcmp(sub->group, group) == 0
				: !group))
			return sub;
	}
	return NULL;
}

/* The group name a SUBSCRIBE/UNSUBSCRIBE carries, or NULL. */
static const char *client_group_of(const struct proto_msg *pm, char *buf)
{
	if (pm->h.payload_len == 0)
		return NULL;
	memcpy(buf, pm->payload, pm->h.payload_len);
	buf[pm->h.payload_len] = '\0';
	return buf;
}

static void client_subscribe(struct client *c, const struct proto_msg *pm)
{
	struct server *s = c->server;
	char gbuf[PROTO_GROUP_MAX + 1], text[128];
	const char *group = client_group_of(pm, gbuf);
	struct client_sub *sub;
	int r;

	if (c->n_subs >= s->cfg.max_subscriptions) {
		snprintf(text, sizeof(text),
			 "too many subscriptions: at most %u per client",
			 s->cfg.max_subscriptions);
		client_reply(c, pm->h.token, EDQUOT, text);
		return;
	}
	/* a duplicate is found by the router or the group, in O(levels):
	 * a scan of subs here would make many subscriptions quadratic */
	if (c->n_subs == c->cap_subs) {
		size_t cap = c->cap_subs ? c->cap_subs * 2 : 4;
		struct client_sub *p = realloc(c->subs, cap * sizeof(*p));

		if (!p) {
			client_reply(c, pm->h.token, ENOMEM, "out of memory");
			return;
		}
		c->subs = p;
		c->cap_subs = cap;
	}
	sub = &c->subs[c->n_subs];
	sub->pattern = strdup(pm->topic);
	sub->group = group ? strdup(group) : NULL;
	if (!sub->pattern || (group && !sub->group)) {
		free(sub->pattern);
		free(sub->group);
		client_reply(c, pm->h.token, ENOMEM, "out of memory");
		return;
	}
	r = group ? group_join(s, pm->topic, group, c)
		  : router_subscribe(s->router, pm->topic, c);
	if (r < 0) {
		free(sub->pattern);
		free(sub->group);
		client_reply(c, pm->h.token, -r,
			     r == -EEXIST ? "already subscribed to this pattern"
					  : "invalid pattern");
		return;
	}
	c->n_subs++;
	client_reply(c, pm->h.token, 0, NULL);
	/* the kept values come after the ACK (it overtakes them anyway) */
	if (!group)
		retain_deliver(&s->retained, pm->topic, c, &s->cfg);
}

static void client_unsubscribe(struct client *c, const struct proto_msg *pm)
{
	char gbuf[PROTO_GROUP_MAX + 1];
	const char *group = client_group_of(pm, gbuf);
	struct client_sub *sub = client_find_sub(c, pm->topic, group);

	if (!sub) {
		client_reply(c, pm->h.token, ENOENT,
			     "not subscribed to this pattern");
		return;
	}
	if (group)
		group_leave(c->server, pm->topic, group, c);
	else
		router_unsubscribe(c->server->router, pm->topic, c);
	free(sub->pattern);
	free(sub->group);
	*sub = c->subs[--c->n_subs];
	client_reply(c, pm->h.token, 0, NULL);
}

static void client_stats(struct client *c, uint32_t token)
{
	unsigned char buf[4096];
	char text[2048];
	struct proto_header h;
	int len, n;

	len = server_stats_text(c->server, text, sizeof(text));
	proto_header_init(&h, PROTO_STATS);
	h.token = token;
	/* never more than rx can take */
	if ((long)proto_size(0, len) > c->rx_msgsize)
		len = c->rx_msgsize - (long)proto_size(0, 0);
	n = proto_encode(buf, sizeof(buf), &h, NULL, text, len < 0 ? 0 : len);
	if (n > 0)
		client_send_control(c, buf, n, PROTO_PRIO_MAX);
}

static void client_timer(struct client *c, const struct proto_msg *pm)
{
	struct server *s = c->server;
	const char *why = NULL;
	uint64_t id = 0;
	int r;

	switch (pm->h.type) {
	case PROTO_TIMER_ADD:
		r = timer_add(s, c, pm, &id, &why);
		client_reply_seq(c, pm->h.token, -r, why, id);
		break;
	case PROTO_TIMER_CANCEL:
		r = timer_cancel(s, c, pm->h.seq);
		client_reply(c, pm->h.token, -r,
			     r == -EPERM ? "not your timer" : "no such timer");
		break;
	default: {
		unsigned char buf[4096];
		char text[3072];
		struct proto_header h;
		int len = timer_list_text(s, c, text, sizeof(text)), n;

		if ((long)proto_size(0, len) > c->rx_msgsize)
			len = c->rx_msgsize - (long)proto_size(0, 0);
		proto_header_init(&h, PROTO_TIMER_LIST);
		h.token = pm->h.token;
		n = proto_encode(buf, sizeof(buf), &h, NULL, text,
				 len < 0 ? 0 : len);
		if (n > 0)
			client_send_control(c, buf, n, PROTO_PRIO_MAX);
		break;
	}
	}
}

static void client_handle(struct client *c, struct msgbuf *m)
{
	struct proto_msg pm;
	int r = proto_decode(m->data, m->len, &pm);

	if (r < 0) {
		client_bad(c, 0, r, "message rejected");
		return;
	}
	switch (pm.h.type) {
	case PROTO_PUBLISH:
		c->published++;
		server_publish(c->server, c, m, &pm);
		break;
	case PROTO_SUBSCRIBE:
		client_subscribe(c, &pm);
		break;
	case PROTO_UNSUBSCRIBE:
		client_unsubscribe(c, &pm);
		break;
	case PROTO_STATS:
		client_stats(c, pm.h.token);
		break;
	case PROTO_REQUEST:
		c->published++;
		server_request(c->server, c, m, &pm);
		break;
	case PROTO_REPLY:
		server_reply(c->server, c, m, &pm);
		break;
	case PROTO_TIMER_ADD:
	case PROTO_TIMER_CANCEL:
	case PROTO_TIMER_LIST:
		client_timer(c, &pm);
		break;
	case PROTO_BYE:
		client_close(c, false, "said goodbye");
		break;
	default:
		client_bad(c, pm.h.token, -PROTO_E_TYPE,
			   proto_type_name(pm.h.type));
		break;
	}
}

int client_read(struct client *c, unsigned budget)
{
	struct msgbuf *m = NULL;
	unsigned prio;

	for (unsigned i = 0; i < budget && !c->closing; i++) {
		ssize_t n;

		/* held up by a slow subscriber: leave tx to fill */
		if (c->blocked_by > 0) {
			msgbuf_unref(m);
			return -1;
		}
		/* reuse the buffer unless a pending list kept it */
		if (m && m->refs > 1) {
			msgbuf_unref(m);
			m = NULL;
		}
		if (!m)
			m = msgbuf_get(c->tx_msgsize);
		if (!m)
			return 0; /* out of memory: the rescue timer retries */
		n = mq_receive(c->tx, (char *)m->data, m->cap, &prio);
		if (n < 0) {
			msgbuf_unref(m);
			if (errno == EAGAIN)
				return 0;
			log_warn("client %u: reading %s", c->id, c->tx_name);
			client_close(c, true, "tx queue unreadable");
			return -1;
		}
		m->len = (size_t)n;
		client_handle(c, m);
	}
	msgbuf_unref(m);
	return c->closing ? -1 : 1;
}
