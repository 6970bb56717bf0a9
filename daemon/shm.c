/* SPDX-License-Identifier: MIT */
/*
 * shm.c - large payloads in sealed memory files: the listening socket,
 * attaching clients, taking files in and passing them on; and the
 * clients' reused memory areas: registering them, copying payloads into
 * free slots of a receiver's rx area and out of a publisher's tx area,
 * the slots given back.
 */
#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
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

static void watch_in(struct peer *p);
static void refuse(struct peer *p, const struct proto_msg *pm, int err,
		   const char *why);

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
	watch_in(p);
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
/* memory areas                                                          */

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010 /* Linux 5.1 */
#endif

static void area_unmap(struct server *s, struct shm_area *a)
{
	size_t size = (size_t)a->slots * a->slot_size;

	if (a->map) {
		munmap(a->map, size);
		s->shm.areas--;
		s->shm.area_bytes -= size;
	}
	memset(a, 0, sizeof(*a));
}

/*
 * Maps area fd (prot: an rx area for writing, a tx area for reading)
 * and seals it against every new writer (F_SEAL_FUTURE_WRITE: no
 * write(), no new writable mapping, no hole punched; the client writes
 * a tx area through the mapping it made before), then checks that no
 * page is missing.  Once that passed, a touch of the daemon's never
 * allocates a page (charged to the daemon) or fails for want of one
 * (SIGBUS).  The mapping, or NULL with an errno in *err.
 */
static unsigned char *area_seal_map(int fd, size_t size, int prot, int *err)
{
	struct stat st;
	void *map;

	map = mmap(NULL, size, prot, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED) {
		*err = errno; /* EPERM: sealed against it already */
		return NULL;
	}
	*err = 0;
	if (fcntl(fd, F_ADD_SEALS, F_SEAL_FUTURE_WRITE | F_SEAL_SEAL) < 0)
		*err = EPERM;
	else if (fstat(fd, &st) < 0 || (size_t)st.st_blocks * 512u < size)
		*err = ENOSPC;
	if (*err) {
		munmap(map, size);
		return NULL;
	}
	return map;
}

/* A record of p's that is wrong: counted; too many drop the connection
 * (its areas go with it, and p gets pieces). */
static void bad_record(struct peer *p, const char *why)
{
	p->server->shm.area_bad++;
	log_debug("client %u: memory areas: %s", p->id, why);
	if (++p->shm.bad_records > SHM_BAD_RECORDS_MAX) {
		log_warnx("client %u: memory files off: %u bad records",
			  p->id, p->shm.bad_records);
		shm_drop_peer(p);
		p->shm.flush = true;
	}
}

/* Checks and maps the area fd that rec registers: 0 or an errno. */
static int area_map(struct peer *p, const struct shm_record *rec, int fd)
{
	struct server *s = p->server;
	bool rx = rec->kind == SHM_REC_AREA_RX;
	struct shm_area *a = rx ? &p->shm.rx_area : &p->shm.tx_area;
	uint8_t bit = rx ? 1 : 2;
	size_t size;
	int r;

	/* one of each kind, once per connection */
	if (p->shm.registered & bit)
		return EEXIST;
	p->shm.registered |= bit;
	if (fd < 0)
		return EBADF;
	if (rec->id == 0 || rec->id > SHM_AREA_ID_MAX ||
	    rec->a < (rx ? 2u : 1u) ||
	    rec->a > (rx ? SHM_AREA_SLOTS_MAX : 1u) ||
	    rec->b < PROTO_SHM_MIN || rec->b != shm_page_round(rec->b) ||
	    rec->b > shm_page_round(s->cfg.max_message))
		return EINVAL;
	size = (size_t)rec->a * rec->b;
	r = shm_area_check(fd, size);
	if (r < 0)
		return -r;
	a->map = area_seal_map(fd, size, rx ? PROT_READ | PROT_WRITE : PROT_READ,
			       &r);
	if (!a->map)
		return r;
	a->id = rec->id;
	a->slots = rec->a;
	a->slot_size = rec->b;
	a->busy = 0;
	s->shm.areas++;
	s->shm.area_bytes += size;
	return 0;
}

/* A registration: mapped or refused, and answered. */
static void area_register(struct peer *p, const struct shm_record *rec,
			  int fd)
{
	struct shm_record st = { .magic = SHM_AREA_MAGIC,
				 .kind = SHM_REC_STATUS,
				 .id = rec->id,
				 .a = rec->kind };
	int err = area_map(p, rec, fd);

	if (fd >= 0)
		close(fd); /* the mapping stays */
	st.b = (uint32_t)err;
	if (err) {
		p->server->shm.area_refused++;
		log_debug("client %u: memory area refused: %s", p->id,
			  strerror(err));
	} else {
		log_debug("client %u: %s area of %u slots of %u bytes", p->id,
			  rec->kind == SHM_REC_AREA_RX ? "rx" : "tx",
			  rec->a, rec->b);
	}
	(void)!shm_send_buf(p->shm.sock, &st, sizeof(st), -1);
	if (err)
		bad_record(p, "a registration refused");
}

/* A slot of p's rx area read: free again, and what waited for one
 * goes (at once or after the message being routed). */
static void area_release(struct peer *p, const struct shm_record *rec)
{
	struct shm_area *a = &p->shm.rx_area;

	if (!a->map || rec->id != a->id || rec->a >= a->slots ||
	    !(a->busy & (1u << rec->a))) {
		bad_record(p, "a release of no slot in use");
		return;
	}
	a->busy &= ~(1u << rec->a);
	p->server->shm.area_released++;
	if (p->shm.slot_wait)
		p->shm.flush = true;
}

/* shm_record_fn: a record of p's connection. */
static void on_record(void *arg, const struct shm_record *rec, int fd)
{
	struct peer *p = arg;

	if (p->shm.sock < 0) { /* dropped by an earlier one */
		if (fd >= 0)
			close(fd);
		return;
	}
	switch (rec->kind) {
	case SHM_REC_AREA_RX:
	case SHM_REC_AREA_TX:
		area_register(p, rec, fd);
		return;
	case SHM_REC_RELEASE:
		area_release(p, rec);
		break;
	default:
		bad_record(p, "a record not understood");
		break;
	}
	if (fd >= 0)
		close(fd);
}

/* What a release or a dropped connection left to do: the waiting
 * output goes (in a slot, or now in pieces). */
static void flush_later(struct peer *p)
{
	if (!p->shm.flush)
		return;
	p->shm.flush = false;
	p->shm.slot_wait = false;
	if (!p->closing)
		deliver_flush(p);
}

/*
 * p closed its end (or it broke): its areas go, and nothing more is
 * read but the files its heads still name (shm_message() takes them
 * until its connection is dropped on a failed send or with p).
 */
static void closed_in(struct peer *p)
{
	log_debug("client %u: memory files connection closed", p->id);
	event_free(p->shm.in_ev);
	p->shm.in_ev = NULL;
	p->shm.in_held = false;
	area_unmap(p->server, &p->shm.rx_area);
	area_unmap(p->server, &p->shm.tx_area);
	p->shm.registered = 3;
	p->shm.flush = true;
}

/*
 * Reads p's connection: records are handled, files kept for their heads
 * (the stash full, reading waits until a head takes one).
 */
static void pump(struct peer *p)
{
	while (p->shm.sock >= 0) {
		struct shm_record rec;
		uint32_t tag;
		int fd, r;

		if (shm_stash_full(&p->shm.in)) {
			event_del(p->shm.in_ev);
			p->shm.in_held = true;
			break;
		}
		r = shm_recv(p->shm.sock, &tag, &rec, &fd);
		if (r == -EAGAIN)
			break;
		if (r <= 0) {
			closed_in(p);
			break;
		}
		if (r == 2)
			on_record(p, &rec, fd);
		else if (fd >= 0 && tag != 0)
			shm_stash_put(&p->shm.in, tag, fd);
		else
			bad_record(p, "neither a file nor a record");
	}
	flush_later(p);
}

static void in_readable(evutil_socket_t fd, short what, void *arg)
{
	pump(arg);
}

static void watch_in(struct peer *p)
{
	p->shm.in_ev = event_new(p->table->base, p->shm.sock,
				 EV_READ | EV_PERSIST, in_readable, p);
	if (!p->shm.in_ev || event_add(p->shm.in_ev, NULL) < 0) {
		/* no records without it: no areas, files only */
		log_warnx("client %u: cannot watch its memory files "
			  "connection", p->id);
		p->shm.registered = 3;
	}
}

/* A head took a file: reading goes on if it was held. */
static void resume_in(struct peer *p)
{
	if (p->shm.in_held && p->shm.sock >= 0 && p->shm.in_ev &&
	    !shm_stash_full(&p->shm.in) && event_add(p->shm.in_ev, NULL) == 0)
		p->shm.in_held = false;
}

/*
 * A message of p flagged PROTO_F_AREA: its payload is copied out of p's
 * tx area (the daemon never keeps pointing at memory p may change) into
 * a whole message of its own.  NULL when refused.
 */
static struct msgbuf *area_in(struct peer *p, struct msgbuf *m,
			      const struct proto_msg *pm)
{
	struct shm_area *a = &p->shm.tx_area;
	uint32_t tag = pm->h.shm_tag, slot = SHM_AREA_TAG_SLOT(tag);
	size_t len = pm->h.payload_len;
	struct msgbuf *whole;

	if (!a->map || SHM_AREA_TAG_ID(tag) != a->id || slot >= a->slots ||
	    len > a->slot_size) {
		refuse(p, pm, EPROTO, "no such slot of a memory area");
		return NULL;
	}
	large_heap_setup(p->server); /* no fresh pages every time */
	whole = msgbuf_get(&p->server->pool, m->len + len);
	if (!whole) {
		refuse(p, pm, ENOMEM, "out of memory");
		return NULL;
	}
	memcpy(whole->data, m->data, m->len);
	memcpy(whole->data + m->len, a->map + (size_t)slot * a->slot_size,
	       len);
	whole->len = m->len + len;
	p->server->shm.area_received++;
	/* a head of a few bytes makes the daemon copy up to a slot: it
	 * takes the turns its pieces would have, so that a client sending
	 * heads back to back cannot take the loop from the others */
	p->read_extra = (unsigned)(len / (size_t)p->tx_msgsize);
	return whole;
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
	if (pm->h.flags & PROTO_F_AREA) {
		whole = area_in(p, m, pm);
	} else {
		fd = shm_take_rec(p->shm.sock, &p->shm.in, pm->h.shm_tag,
				  on_record, p);
		resume_in(p);
		if (fd < 0) {
			refuse(p, pm, fd == -EAGAIN ? EPROTO : -fd,
			       "no memory file came with the message");
			goto out;
		}
		r = shm_check(fd, len);
		if (r < 0) {
			close(fd);
			refuse(p, pm, -r,
			       r == -EPERM
				       ? "memory file not sealed"
				       : "not a memory file of the payload's size");
			goto out;
		}
		whole = msgbuf_get_shm(&s->pool, m->data, m->len, fd, len);
		if (!whole) {
			close(fd);
			refuse(p, pm, ENOMEM, "cannot map the memory file");
			goto out;
		}
		whole->len = whole->cap;
		s->shm.received++;
	}
	if (whole) {
		/* from here on an ordinary message with its payload */
		memcpy(&h, whole->data, sizeof(h));
		h.flags &= (uint16_t)~(PROTO_F_SHM | PROTO_F_AREA);
		h.shm_tag = 0;
		memcpy(whole->data, &h, sizeof(h));
		large_route(p, whole, dispatch);
		msgbuf_unref(whole);
	}
out:
	/* slots released on the way: what waited for them goes */
	flush_later(p);
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

/* Whether m's payload may go apart from its head (head bytes): a
 * message of a type that may, its payload right after its head (no
 * origin block), of PROTO_SHM_MIN bytes or more. */
static bool payload_apart(const struct msgbuf *m, size_t head,
			  struct proto_header *h)
{
	memcpy(h, m->data, sizeof(*h));
	return h->origin_len == 0 && h->payload_len >= PROTO_SHM_MIN &&
	       head + h->payload_len == m->len && proto_type_shm(h->type);
}

/* Whether m goes in a slot of p's rx area. */
static bool area_fits(const struct peer *p, const struct msgbuf *m,
		      size_t head)
{
	struct proto_header h;

	return p->shm.rx_area.map && payload_apart(m, head, &h) &&
	       h.payload_len <= p->shm.rx_area.slot_size;
}

bool shm_for_file(const struct peer *p, const struct msgbuf *m)
{
	size_t head;

	if (p->shm.sock < 0 || m->len <= (size_t)p->rx_msgsize)
		return false;
	head = head_len(m);
	/* one going out in pieces (p attached meanwhile) goes on so */
	if (head > (size_t)p->rx_msgsize || large_in_flight(p, m))
		return false;
	/*
	 * In a slot, or as the file it came in.  Never a file of the
	 * daemon's own: its pages would be the daemon's, and a receiver
	 * could keep them as long as it likes.  So one that came in pieces
	 * or through a tx area goes to a receiver without a slot for it
	 * (without an rx area yet, or one of smaller slots) in pieces.
	 */
	return m->shm_fd >= 0 || area_fits(p, m, head);
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

/* Sends m's head, flagged for its payload elsewhere (flags, tag). */
static int send_head(struct peer *p, const struct msgbuf *m, unsigned prio,
		     uint16_t flags, uint32_t tag)
{
	unsigned char head[PROTO_HEADER_SIZE + 2 * (PROTO_TOPIC_MAX + 1)];
	size_t len = head_len(m);
	struct proto_header h;

	memcpy(head, m->data, len);
	memcpy(&h, head, sizeof(h));
	h.flags |= flags;
	h.shm_tag = tag;
	memcpy(head, &h, sizeof(h));
	if (mq_send(p->rx, (const char *)head, len, prio) < 0)
		return -errno;
	return 0;
}

/* m in a free slot of p's rx area: -EAGAIN when none is free (the next
 * release flushes p). */
static int send_area(struct peer *p, const struct msgbuf *m, unsigned prio)
{
	struct shm_area *a = &p->shm.rx_area;
	uint32_t free_slots = ~a->busy & ((1u << a->slots) - 1);
	size_t head = head_len(m);
	unsigned slot;
	int r;

	if (!free_slots) {
		p->shm.slot_wait = true;
		return -EAGAIN;
	}
	p->shm.slot_wait = false;
	slot = (unsigned)__builtin_ctz(free_slots);
	memcpy(a->map + (size_t)slot * a->slot_size, m->data + head,
	       m->len - head);
	r = send_head(p, m, prio, PROTO_F_SHM | PROTO_F_AREA,
		      SHM_AREA_TAG(a->id, slot));
	if (r < 0)
		return r;
	a->busy |= 1u << slot;
	p->server->shm.area_sent++;
	return 0;
}

int shm_send_to(struct peer *p, struct msgbuf *m, unsigned prio)
{
	struct mq_attr a;
	uint32_t tag;
	int r;

	/* a file sent with no room for its head would wait for nothing */
	if (mq_getattr(p->rx, &a) == 0 && a.mq_curmsgs >= a.mq_maxmsg)
		return -EAGAIN;
	if (area_fits(p, m, head_len(m)))
		return send_area(p, m, prio);
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
	/* the file sent is skipped by the receiver if its head is not */
	r = send_head(p, m, prio, PROTO_F_SHM, tag);
	if (r < 0)
		return r;
	p->server->shm.sent++;
	return 0;
}

bool shm_out_waits(const struct peer *p)
{
	return p->shm.slot_wait ||
	       (p->shm.out_ev && event_pending(p->shm.out_ev, EV_WRITE, NULL));
}

void shm_drop_peer(struct peer *p)
{
	if (p->shm.in_ev)
		event_free(p->shm.in_ev);
	p->shm.in_ev = NULL;
	close_watched(&p->shm.out_ev, &p->shm.sock);
	shm_stash_clear(&p->shm.in);
	area_unmap(p->server, &p->shm.rx_area);
	area_unmap(p->server, &p->shm.tx_area);
	p->shm.in_held = false;
	p->shm.slot_wait = false;
	p->shm.registered = 0;
	p->shm.bad_records = 0;
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
		       "shm_refused=%llu\n"
		       "shm_areas=%llu\n"
		       "shm_area_bytes=%llu\n"
		       "shm_area_refused=%llu\n"
		       "shm_area_sent=%llu\n"
		       "shm_area_received=%llu\n"
		       "shm_area_released=%llu\n"
		       "shm_area_bad=%llu\n",
		       l->fd >= 0, (unsigned long long)l->attached,
		       (unsigned long long)l->attach_refused,
		       (unsigned long long)l->received,
		       (unsigned long long)l->sent,
		       (unsigned long long)l->refused,
		       (unsigned long long)l->areas,
		       (unsigned long long)l->area_bytes,
		       (unsigned long long)l->area_refused,
		       (unsigned long long)l->area_sent,
		       (unsigned long long)l->area_received,
		       (unsigned long long)l->area_released,
		       (unsigned long long)l->area_bad);
}
