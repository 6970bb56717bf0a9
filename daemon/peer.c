/* SPDX-License-Identifier: MIT */
/*
 * peer.c - a connected client's lifetime: made after the handshake, its
 * tx queue read, its death noticed, reaped.
 *
 * Everything a client sends is untrusted; this module only reads it and
 * hands each message to the table's handler.  Peers are found by id
 * (replies, held-up publishers) and by tx queue name (a second ANNOUNCE of
 * a connected client) through two hash indexes.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "daemon/log.h"
#include "daemon/msgbuf.h"
#include "daemon/peer.h"
#include "proto/proto.h"

static void peer_reap(evutil_socket_t fd, short what, void *arg);
static void peer_pid_exited(evutil_socket_t fd, short what, void *arg);
static int peer_read(struct wake_src *src, unsigned budget);

int peer_table_init(struct peer_table *t, struct event_base *base,
		    struct wake *wake, struct msgbuf_pool *pool,
		    peer_message_fn on_message, peer_reap_fn reap,
		    void *reap_arg)
{
	memset(t, 0, sizeof(*t));
	t->base = base;
	t->wake = wake;
	t->pool = pool;
	t->on_message = on_message;
	t->reap = reap;
	t->reap_arg = reap_arg;
	t->next_id = 1;
	TAILQ_INIT(&t->all);
	TAILQ_INIT(&t->reap_list);
	TAILQ_INIT(&t->staged);
	hmap_init(&t->by_id);
	hmap_init(&t->by_tx);
	t->reap_ev = event_new(base, -1, 0, peer_reap, t);
	return t->reap_ev ? 0 : -ENOMEM;
}

void peer_table_deinit(struct peer_table *t)
{
	while (t->pending_pool) {
		struct pending *p = t->pending_pool;

		t->pending_pool = p->next;
		free(p);
	}
	if (t->reap_ev)
		event_free(t->reap_ev);
	if (t->stage_ev)
		event_free(t->stage_ev);
	free(t->frame);
	hmap_deinit(&t->by_id);
	hmap_deinit(&t->by_tx);
	memset(t, 0, sizeof(*t));
}

struct peer *peer_find(const struct peer_table *t, uint32_t id)
{
	struct hmap_node *node;

	HMAP_FOR_EACH_HASH(node, &t->by_id, hmap_hash_int(id)) {
		struct peer *p = container_of(node, struct peer, id_node);

		if (p->id == id)
			return p;
	}
	return NULL;
}

struct peer *peer_find_tx(const struct peer_table *t, const char *tx_name)
{
	struct hmap_node *node;

	HMAP_FOR_EACH_HASH(node, &t->by_tx,
			   hmap_hash_string(tx_name, t->by_tx.seed)) {
		struct peer *p = container_of(node, struct peer, tx_node);

		if (strcmp(p->tx_name, tx_name) == 0)
			return p;
	}
	return NULL;
}

/* A fresh id: never 0, never one in use (after 2^32 connections), never
 * one of the ids the bus keeps for itself (PEER_ID_RESERVED and above). */
static uint32_t peer_next_id(struct peer_table *t)
{
	uint32_t id;

	do {
		id = t->next_id++;
	} while (id == 0 || id >= PEER_ID_RESERVED || peer_find(t, id));
	return id;
}

static void close_all(mqd_t tx, mqd_t rx, int pidfd)
{
	mq_close(tx);
	mq_close(rx);
	if (pidfd >= 0)
		close(pidfd);
}

/* Without a pidfd (a kernel before 5.3, or valgrind): look every
 * PEER_PID_POLL_MS whether the process is still there. */
static void peer_pid_poll(evutil_socket_t fd, short what, void *arg)
{
	struct peer *p = arg;

	if (kill(p->pid, 0) == 0 || errno != ESRCH)
		return;
	event_del(p->pid_ev);
	peer_pid_exited(fd, what, p);
}

int peer_new(struct peer_table *t, struct server *s, uid_t uid, pid_t pid,
	     const char *tx_name, const char *rx_name, mqd_t tx, mqd_t rx,
	     int pidfd, struct peer **ret)
{
	struct mq_attr txa, rxa;
	struct peer *p;
	int r;

	if (mq_getattr(tx, &txa) < 0 || mq_getattr(rx, &rxa) < 0) {
		r = -errno;
		close_all(tx, rx, pidfd);
		return r;
	}
	p = calloc(1, sizeof(*p));
	if (!p) {
		close_all(tx, rx, pidfd);
		return -ENOMEM;
	}
	p->table = t;
	p->server = s;
	TAILQ_INIT(&p->requests);
	TAILQ_INIT(&p->timers);
	p->uid = uid;
	p->pid = pid;
	p->tx = tx;
	p->rx = rx;
	p->pidfd = pidfd;
	p->shm.sock = -1;
	p->shm.in.max = SHM_PEER_STASH;
	log_read_comm(pid, p->comm, sizeof(p->comm));
	{
		struct timespec now;

		clock_gettime(CLOCK_MONOTONIC, &now);
		p->connected_usec = (uint64_t)now.tv_sec * 1000000u +
				    (uint64_t)now.tv_nsec / 1000u;
	}
	p->tx_msgsize = txa.mq_msgsize;
	p->rx_msgsize = rxa.mq_msgsize;
	p->tx_name = strdup(tx_name);
	p->rx_name = strdup(rx_name);
	if (!p->tx_name || !p->rx_name) {
		r = -ENOMEM;
		goto fail;
	}
	p->id = peer_next_id(t);
	r = hmap_insert(&t->by_id, &p->id_node, hmap_hash_int(p->id));
	if (r < 0)
		goto fail;
	r = hmap_insert(&t->by_tx, &p->tx_node,
			hmap_hash_string(tx_name, t->by_tx.seed));
	if (r < 0) {
		hmap_remove(&t->by_id, &p->id_node);
		goto fail;
	}
	TAILQ_INSERT_TAIL(&t->all, p, link);
	t->count++;
	r = -ENOMEM;
	if (pidfd >= 0) {
		p->pid_ev = event_new(t->base, pidfd, EV_READ,
				      peer_pid_exited, p);
		if (!p->pid_ev || event_add(p->pid_ev, NULL) < 0)
			goto fail_listed;
	} else {
		struct timeval tv = { 0, PEER_PID_POLL_MS * 1000 };

		p->pid_ev = event_new(t->base, -1, EV_PERSIST, peer_pid_poll,
				      p);
		if (!p->pid_ev || event_add(p->pid_ev, &tv) < 0)
			goto fail_listed;
	}
	p->src.mqd = tx;
	p->src.read = peer_read;
	r = wake_add(t->wake, &p->src);
	if (r < 0)
		goto fail_listed;
	*ret = p;
	return 0;

fail_listed:
	peer_free(p, false);
	return r;

fail:
	free(p->tx_name);
	free(p->rx_name);
	free(p);
	close_all(tx, rx, pidfd);
	return r;
}

void peer_free(struct peer *p, bool unlink)
{
	struct peer_table *t = p->table;

	wake_del(&p->src);
	TAILQ_REMOVE(&t->all, p, link);
	hmap_remove(&t->by_id, &p->id_node);
	hmap_remove(&t->by_tx, &p->tx_node);
	t->count--;
	if (p->origin)
		t->n_origin--;
	if (p->rx_ev)
		event_free(p->rx_ev);
	if (p->pid_ev)
		event_free(p->pid_ev);
	mq_close(p->tx);
	mq_close(p->rx);
	if (p->pidfd >= 0)
		close(p->pidfd);
	if (unlink) {
		/* ENOENT: the client unlinked them itself */
		mq_unlink(p->tx_name);
		mq_unlink(p->rx_name);
	}
	free(p->tx_name);
	free(p->rx_name);
	free(p);
}

void peer_close(struct peer *p, bool bye, const char *why)
{
	if (p->closing)
		return;
	if (bye) {
		unsigned char buf[PROTO_HEADER_SIZE + 1];
		struct proto_header h;
		int n;

		proto_header_init(&h, PROTO_BYE);
		/* ESHUTDOWN: the queues stay, announce them to the next
		 * daemon (PROTO_F_RESUME) */
		h.status = p->keep_queues ? ESHUTDOWN : 0;
		n = proto_encode(buf, sizeof(buf), &h, NULL, NULL, 0);
		if (n > 0 && mq_send(p->rx, (char *)buf, n, PROTO_PRIO_MAX) < 0)
			log_debug("client %u: BYE not sent: %s", p->id,
				  strerror(errno));
	}
	p->closing = true;
	p->close_reason = why;
	p->src.held = true;
	log_debug("client %u (pid %d, uid %u): %s", p->id, (int)p->pid,
		  (unsigned)p->uid, why);
	TAILQ_INSERT_TAIL(&p->table->reap_list, p, reap_link);
	event_active(p->table->reap_ev, EV_TIMEOUT, 0);
}

static void peer_reap(evutil_socket_t fd, short what, void *arg)
{
	struct peer_table *t = arg;
	struct peer *p;

	while ((p = TAILQ_FIRST(&t->reap_list))) {
		TAILQ_REMOVE(&t->reap_list, p, reap_link);
		t->reap(p, t->reap_arg);
	}
}

void peer_hold(struct peer *p)
{
	p->blocked_by++;
	p->src.held = true;
}

void peer_release(struct peer *p)
{
	if (p->blocked_by == 0 || --p->blocked_by > 0 || p->closing)
		return;
	p->src.held = false;
	wake_src_ready(&p->src);
}

/*
 * The process is gone, but what it sent before dying was promised to the
 * bus: drain tx (it cannot grow any more) before letting the peer go.
 */
static void peer_pid_exited(evutil_socket_t fd, short what, void *arg)
{
	struct peer *p = arg;

	/* even if a slow subscriber held it up: nothing more will come,
	 * and none may hold it up again before tx is empty (deliver.c) */
	p->exited = true;
	p->blocked_by = 0;
	p->src.held = false;
	while (peer_read(&p->src, UINT32_MAX) > 0)
		;
	peer_close(p, false, "process exited");
}

/* The wake source's read: up to budget messages to the handler. */
static int peer_read(struct wake_src *src, unsigned budget)
{
	struct peer *p = container_of(src, struct peer, src);
	struct msgbuf *m = NULL;
	unsigned prio;

	for (unsigned i = 0; i < budget && !p->closing; i++) {
		unsigned char *at;
		ssize_t n;

		/* held up by a slow subscriber: leave tx to fill */
		if (p->blocked_by > 0) {
			msgbuf_unref(m);
			return -1;
		}
		/* reuse the buffer unless a pending list kept it */
		if (m && m->refs > 1) {
			msgbuf_unref(m);
			m = NULL;
		}
		if (!m)
			m = msgbuf_get(p->table->pool, (size_t)p->tx_msgsize);
		if (!m)
			return 0; /* out of memory: the rescue timer retries */
		/* the next piece of a large message: read into its place */
		at = large_slot(p);
		n = mq_receive(p->tx, (char *)(at ? at : m->data),
			       at ? (size_t)p->tx_msgsize : m->cap, &prio);
		if (at && large_landed(p, at, n, m, p->table->on_message))
			continue;
		if (n < 0) {
			msgbuf_unref(m);
			if (errno == EAGAIN)
				return 0;
			log_warn("client %u: reading %s", p->id, p->tx_name);
			peer_close(p, true, "tx queue unreadable");
			return -1;
		}
		m->len = (size_t)n;
		m->stat = NULL; /* a reused buffer: no topic until routed */
		m->measured = false;
		p->table->on_message(p, m);
		/* a frame of many costs as many: one client's frames
		 * cannot take the turns of the others */
		i += p->read_extra;
		p->read_extra = 0;
	}
	msgbuf_unref(m);
	return p->closing ? -1 : 1;
}
