/* SPDX-License-Identifier: MIT */
/*
 * shm.c - large payloads in sealed memory files: the listening socket,
 * attaching clients, taking files in and passing them on.
 */
#include <errno.h>
#include <mqueue.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>

#include "daemon/deliver.h"
#include "daemon/large.h"
#include "daemon/log.h"
#include "daemon/msgbuf.h"
#include "daemon/peer.h"
#include "daemon/server.h"
#include "daemon/shm.h"
#include "daemon/stats.h"
#include "proto/proto.h"
#include "proto/shm.h"

/* -------------------------------------------------------------------- */
/* attaching                                                             */

/* Frees *ev and closes *fd, if there are. */
static void close_watched(struct event **ev, int *fd)
{
	if (*ev)
		event_free(*ev);
	*ev = NULL;
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static void waiting_free(struct shm_waiting *w)
{
	close_watched(&w->ev, &w->fd);
}

/* The answer to an attach: 0 or why it was refused. */
static void answer(int fd, int status)
{
	struct shm_attached a = { SHM_ATTACH_MAGIC, (uint32_t)status };

	(void)!send(fd, &a, sizeof(a), MSG_DONTWAIT | MSG_NOSIGNAL);
}

/* Whose connection fd is, by what it says and by its credentials: the
 * peer, or NULL. */
static struct peer *attach_peer(struct server *s, int fd,
				const struct shm_attach *a)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	struct peer *p;

	if (a->magic != SHM_ATTACH_MAGIC ||
	    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return NULL;
	p = peer_find(&s->peers, a->client_id);
	if (!p || p->closing || !p->shm.wants || p->shm.sock >= 0 ||
	    p->shm.nonce == 0 || a->nonce != p->shm.nonce ||
	    cred.pid != p->pid || cred.uid != p->uid)
		return NULL;
	return p;
}

/*
 * Reads the attach message of connection fd.  Returns 0 when it has not
 * come yet (fd is kept), 1 when fd was attached or refused (and
 * closed).
 */
static int attach(struct server *s, int fd)
{
	struct shm_attach a;
	struct peer *p;
	ssize_t n;

	n = recv(fd, &a, sizeof(a), MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	p = n == (ssize_t)sizeof(a) ? attach_peer(s, fd, &a) : NULL;
	if (!p) {
		s->shm.attach_refused++;
		log_debug("memory files: a connection refused (%s)",
			  n == (ssize_t)sizeof(a) ? "not a client's own"
						  : "no attach message");
		if (n > 0)
			answer(fd, EPERM);
		close(fd);
		return 1;
	}
	p->shm.sock = fd;
	s->shm.attached++;
	answer(fd, 0);
	log_debug("client %u: memory files attached", p->id);
	return 1;
}

static void waiting_ready(evutil_socket_t fd, short what, void *arg)
{
	struct shm_waiting *w = arg;
	struct timeval tv = { SHM_ATTACH_MS / 1000,
			      (SHM_ATTACH_MS % 1000) * 1000 };

	if (what & EV_TIMEOUT) {
		w->server->shm.attach_refused++;
		waiting_free(w);
		return;
	}
	if (attach(w->server, w->fd) == 1) {
		w->fd = -1; /* attached or closed */
		waiting_free(w);
	} else if (event_add(w->ev, &tv) < 0) {
		/* woken with nothing to read: wait again */
		waiting_free(w);
	}
}

/* fd has not said who it is yet: it waits, in the slot of the oldest
 * waiting connection if every slot is taken. */
static void wait_for_attach(struct server *s, int fd)
{
	struct shm_listener *l = &s->shm;
	struct timeval tv = { SHM_ATTACH_MS / 1000,
			      (SHM_ATTACH_MS % 1000) * 1000 };
	struct shm_waiting *w = NULL;

	for (size_t i = 0; i < SHM_WAITING_MAX && !w; i++)
		if (l->waiting[i].fd < 0)
			w = &l->waiting[i];
	if (!w) {
		w = &l->waiting[l->evict++ % SHM_WAITING_MAX];
		l->attach_refused++;
		waiting_free(w);
	}
	w->fd = fd;
	w->server = s;
	w->ev = event_new(s->base, fd, EV_READ, waiting_ready, w);
	if (!w->ev || event_add(w->ev, &tv) < 0)
		waiting_free(w);
}

/*
 * Takes every connection waiting to be accepted.  Out of descriptors,
 * the listener rests until the next tick (shm_tick()): its connections
 * wait in the backlog, and the loop does not spin on them.
 */
static void accept_all(struct server *s)
{
	int fd;

	while ((fd = accept4(s->shm.fd, NULL, NULL,
			     SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0)
		if (attach(s, fd) == 0)
			wait_for_attach(s, fd);
	if ((errno == EMFILE || errno == ENFILE) && !s->shm.resting) {
		log_warnx("memory files: no descriptor left for a "
			  "connection; accepting again in a second");
		event_del(s->shm.ev);
		s->shm.resting = true;
	}
}

void shm_tick(struct server *s)
{
	if (s->shm.resting && event_add(s->shm.ev, NULL) == 0)
		s->shm.resting = false;
}

static void listener_ready(evutil_socket_t fd, short what, void *arg)
{
	accept_all(arg);
}

void shm_zero(struct shm_listener *l)
{
	memset(l, 0, sizeof(*l));
	for (size_t i = 0; i < SHM_WAITING_MAX; i++)
		l->waiting[i].fd = -1;
	l->fd = -1;
}

void shm_init(struct server *s)
{
	struct shm_listener *l = &s->shm;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	uint64_t rnd;
	int n;

	if (!s->cfg.memory_files)
		return;
	/* an address nobody can guess, so nobody can take it first */
	if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != sizeof(rnd)) {
		log_warn("memory files are off: no random address");
		return;
	}
	n = snprintf(l->addr, sizeof(l->addr), "mqbus-shm-%d-%016llx",
		     (int)s->pid, (unsigned long long)rnd);
	memcpy(sa.sun_path + 1, l->addr, (size_t)n);
	l->fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC,
		       0);
	if (l->fd < 0 ||
	    bind(l->fd, (struct sockaddr *)&sa,
		 (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 +
			     (size_t)n)) < 0 ||
	    listen(l->fd, SOMAXCONN) < 0) {
		log_warn("memory files are off: cannot listen");
		goto fail;
	}
	l->ev = event_new(s->base, l->fd, EV_READ | EV_PERSIST,
			  listener_ready, s);
	if (!l->ev || event_add(l->ev, NULL) < 0) {
		log_warnx("memory files are off: out of memory");
		goto fail;
	}
	return;
fail:
	close_watched(&l->ev, &l->fd);
}

void shm_deinit(struct server *s)
{
	struct shm_listener *l = &s->shm;

	for (size_t i = 0; i < SHM_WAITING_MAX; i++)
		waiting_free(&l->waiting[i]);
	close_watched(&l->ev, &l->fd);
}

bool shm_offer(struct peer *p, const char **ret_addr, uint64_t *ret_nonce)
{
	struct shm_listener *l = &p->server->shm;

	if (l->fd < 0 || !p->shm.wants)
		return false;
	while (p->shm.nonce == 0)
		if (getrandom(&p->shm.nonce, sizeof(p->shm.nonce),
			      GRND_NONBLOCK) != sizeof(p->shm.nonce))
			return false;
	*ret_addr = l->addr;
	*ret_nonce = p->shm.nonce;
	return true;
}

/* -------------------------------------------------------------------- */
/* files in                                                              */

/* A message of p refused: counted, and answered to its sender. */
static void refuse(struct peer *p, const struct proto_msg *pm, int err,
		   const char *why)
{
	/* a REPLY's token is a request id, not one of its sender's */
	uint32_t token = pm->h.type == PROTO_REPLY ? 0 : pm->h.token;

	p->server->shm.refused++;
	deliver_bad(p, token, -err, why);
}

void shm_message(struct peer *p, struct msgbuf *m, const struct proto_msg *pm,
		 void (*dispatch)(struct peer *p, struct msgbuf *m))
{
	struct server *s = p->server;
	size_t len = pm->h.payload_len;
	struct proto_header h;
	struct msgbuf *whole;
	int fd, r;

	/* the attach may still wait to be accepted */
	if (p->shm.sock < 0 && s->shm.fd >= 0)
		accept_all(s);
	if (p->shm.sock < 0) {
		refuse(p, pm, EPROTO, "a memory file without an attached socket");
		return;
	}
	if (len > s->cfg.max_message) {
		char why[160];

		/* its file is closed when a later one is taken */
		snprintf(why, sizeof(why),
			 "message of %zu bytes is larger than the bus's "
			 "max_message (%u bytes)",
			 len, s->cfg.max_message);
		s->shm.refused++;
		deliver_reply(p, pm->h.type == PROTO_REPLY ? 0 : pm->h.token,
			      EMSGSIZE, why);
		return;
	}
	fd = shm_take(p->shm.sock, &p->shm.in, pm->h.shm_tag);
	if (fd < 0) {
		refuse(p, pm, fd == -EAGAIN ? EPROTO : -fd,
		       "no memory file came with the message");
		return;
	}
	r = shm_check(fd, len);
	if (r < 0) {
		close(fd);
		refuse(p, pm, -r,
		       r == -EPERM ? "memory file not sealed"
				   : "not a memory file of the payload's size");
		return;
	}
	whole = msgbuf_get_shm(&s->pool, m->data, m->len, fd, len);
	if (!whole) {
		close(fd);
		refuse(p, pm, ENOMEM, "cannot map the memory file");
		return;
	}
	/* from here on an ordinary message whose payload is mapped */
	memcpy(&h, whole->data, sizeof(h));
	h.flags &= (uint16_t)~PROTO_F_SHM;
	h.shm_tag = 0;
	memcpy(whole->data, &h, sizeof(h));
	whole->len = whole->cap;
	s->shm.received++;
	large_route(p, whole, dispatch);
	msgbuf_unref(whole);
}

/* -------------------------------------------------------------------- */
/* files out                                                             */

/* the head of a message: header, topic and key */
static size_t head_len(const struct msgbuf *m)
{
	struct proto_header h;

	memcpy(&h, m->data, sizeof(h));
	return proto_size_key(h.topic_len, h.key_len, 0);
}

bool shm_for_file(const struct peer *p, const struct msgbuf *m)
{
	/* one going out in pieces (p attached meanwhile) goes on so */
	return p->shm.sock >= 0 &&
	       m->len > (size_t)p->rx_msgsize &&
	       head_len(m) <= (size_t)p->rx_msgsize &&
	       !large_in_flight(p, m);
}

static void out_writable(evutil_socket_t fd, short what, void *arg)
{
	deliver_flush(arg);
}

/* The connection is full: output goes on once it has room. */
static void watch_out(struct peer *p)
{
	if (!p->shm.out_ev)
		p->shm.out_ev = event_new(p->table->base, p->shm.sock,
					  EV_WRITE, out_writable, p);
	if (!p->shm.out_ev || event_add(p->shm.out_ev, NULL) < 0)
		peer_close(p, false, "out of memory");
}

int shm_send_to(struct peer *p, struct msgbuf *m, unsigned prio)
{
	unsigned char head[PROTO_HEADER_SIZE + 2 * (PROTO_TOPIC_MAX + 1)];
	size_t len = head_len(m);
	struct proto_header h;
	struct mq_attr a;
	uint32_t tag;
	int r;

	/* a file sent with no room for its head would wait for nothing */
	if (mq_getattr(p->rx, &a) == 0 && a.mq_curmsgs >= a.mq_maxmsg)
		return -EAGAIN;
	tag = shm_next_tag(&p->shm.out_tag);
	r = shm_send(p->shm.sock, tag, m->shm_fd);
	if (r == -EAGAIN) {
		watch_out(p);
		return r;
	}
	if (r < 0) {
		/* gone, or too many files in flight: pieces from now on */
		log_debug("client %u: memory files off: %s", p->id,
			  strerror(-r));
		shm_drop_peer(p);
		return -EAGAIN;
	}
	memcpy(head, m->data, len);
	memcpy(&h, head, sizeof(h));
	h.flags |= PROTO_F_SHM;
	h.shm_tag = tag;
	memcpy(head, &h, sizeof(h));
	/* the file sent is skipped by the receiver if its head is not */
	if (mq_send(p->rx, (const char *)head, len, prio) < 0)
		return -errno;
	p->server->shm.sent++;
	return 0;
}

bool shm_out_waits(const struct peer *p)
{
	return p->shm.out_ev && event_pending(p->shm.out_ev, EV_WRITE, NULL);
}

void shm_drop_peer(struct peer *p)
{
	close_watched(&p->shm.out_ev, &p->shm.sock);
	shm_stash_clear(&p->shm.in);
}

void shm_stats_text(const struct server *s, char *buf, size_t cap,
		    size_t *len)
{
	const struct shm_listener *l = &s->shm;

	stats_text_add(buf, cap, len,
		       "shm_enabled=%d\n"
		       "shm_attached=%llu\n"
		       "shm_attach_refused=%llu\n"
		       "shm_received=%llu\n"
		       "shm_sent=%llu\n"
		       "shm_refused=%llu\n",
		       l->fd >= 0, (unsigned long long)l->attached,
		       (unsigned long long)l->attach_refused,
		       (unsigned long long)l->received,
		       (unsigned long long)l->sent,
		       (unsigned long long)l->refused);
}
