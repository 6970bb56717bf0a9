/* SPDX-License-Identifier: MIT */
/*
 * shmio.c - memory files in libmqbus: attaching, sending, taking.
 */
#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "client/shmio.h"
#include "proto/proto.h"
#include "proto/shm.h"

void shmio_init(struct shmio *s)
{
	memset(s, 0, sizeof(*s));
	s->sock = -1;
}

static void area_free(struct shmio_area *a)
{
	if (a->map)
		munmap(a->map, a->size);
	memset(a, 0, sizeof(*a));
}

void shmio_reset(struct shmio *s)
{
	if (s->sock >= 0)
		close(s->sock);
	s->sock = -1;
	shm_stash_clear(&s->stash);
	s->state = SHMIO_OFF;
	/* areas go with the connection: registered again on the next */
	area_free(&s->rx);
	area_free(&s->tx);
}

/* Connects to abstract address addr; the descriptor or -1. */
static int connect_to(const char *addr, size_t len)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (len == 0 || len >= sizeof(sa.sun_path) - 1)
		return -1;
	memcpy(sa.sun_path + 1, addr, len);
	/* never waits: a daemon too busy to accept means no files */
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa,
		    (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 +
				len)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

void shmio_begin(struct shmio *s, const struct proto_msg *welcome,
		 uint32_t client_id, pid_t daemon_pid)
{
	struct shm_attach a = { SHM_ATTACH_MAGIC, client_id,
				welcome->h.timestamp };
	struct ucred cred;
	socklen_t len = sizeof(cred);

	shmio_reset(s);
	if (!(welcome->h.flags & PROTO_F_SHM))
		return;
	s->sock = connect_to(welcome->topic, welcome->h.topic_len);
	if (s->sock < 0)
		return;
	/* only the daemon gets our files: the process that took the
	 * address must be the one that welcomed us */
	if (getsockopt(s->sock, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 ||
	    cred.pid != daemon_pid ||
	    send(s->sock, &a, sizeof(a), MSG_NOSIGNAL) != (ssize_t)sizeof(a)) {
		shmio_reset(s);
		return;
	}
	s->state = SHMIO_ATTACHING;
}

bool shmio_ready(struct shmio *s, int wait_ms)
{
	struct pollfd p = { .fd = s->sock, .events = POLLIN };
	struct shm_attached a;
	ssize_t n;

	if (s->state != SHMIO_ATTACHING)
		return s->state == SHMIO_ON;
	/* a daemon that does not answer in that time (out of descriptors,
	 * say) gets pieces for the rest of the session, without a wait on
	 * every large message */
	if (poll(&p, 1, wait_ms) <= 0) {
		shmio_reset(s);
		return false;
	}
	n = recv(s->sock, &a, sizeof(a), MSG_DONTWAIT);
	if (n != (ssize_t)sizeof(a) || a.magic != SHM_ATTACH_MAGIC ||
	    a.status != 0) {
		shmio_reset(s);
		return false;
	}
	s->state = SHMIO_ON;
	return true;
}

int64_t shmio_send(struct shmio *s, const void *payload, size_t len,
		   int wait_ms)
{
	uint32_t tag = shm_next_tag(&s->tag);
	int fd = shm_create(payload, len), r;

	if (fd < 0)
		return fd;
	while ((r = shm_send(s->sock, tag, fd)) == -EAGAIN) {
		struct pollfd p = { .fd = s->sock, .events = POLLOUT };

		if (poll(&p, 1, wait_ms) <= 0) {
			r = -ETIMEDOUT;
			break;
		}
	}
	close(fd);
	if (r < 0 && r != -ETIMEDOUT)
		shmio_reset(s); /* the daemon is gone or refuses files */
	return r < 0 ? r : (int64_t)tag;
}

/* shm_record_fn: the daemon's answer to a registration. */
static void on_record(void *arg, const struct shm_record *r, int fd)
{
	struct shmio *s = arg;
	struct shmio_area *a = r->a == SHM_REC_AREA_RX ? &s->rx : &s->tx;

	if (fd >= 0)
		close(fd);
	if (r->kind != SHM_REC_STATUS || r->id != a->id || !a->map)
		return;
	if (r->b == 0) {
		a->accepted = true;
		return;
	}
	/* refused: not asked again on this connection */
	area_free(a);
	a->tried = true;
}

/* Records waiting in the connection, read (files kept for their heads):
 * 0, or -errno when it broke. */
static int read_records(struct shmio *s)
{
	/* no file has tag 0: this reads up to the end of what came */
	int r = shm_take_rec(s->sock, &s->stash, 0, on_record, s);

	return r == -EAGAIN ? 0 : r;
}

/* Sends the len bytes at buf (with fd if >= 0), waiting up to wait_ms
 * for room: 0 or -errno. */
static int send_waiting(struct shmio *s, const void *buf, size_t len, int fd,
			int wait_ms)
{
	int r;

	while ((r = shm_send_buf(s->sock, buf, len, fd)) == -EAGAIN) {
		struct pollfd p = { .fd = s->sock, .events = POLLOUT };

		if (poll(&p, 1, wait_ms) <= 0)
			return -ETIMEDOUT;
	}
	return r;
}

/* Makes area a of slots slots and registers it as kind: 0 or -errno
 * (the area stays tried: not made again on this connection). */
static int area_register(struct shmio *s, struct shmio_area *a,
			 uint32_t kind, uint32_t slots)
{
	size_t slot_size = shm_page_round(s->area_slot_size);
	struct shm_record rec = { .magic = SHM_AREA_MAGIC, .kind = kind };
	void *map;
	int fd, r;

	a->tried = true;
	/* the daemon takes slots up to its max_message */
	if (slot_size > shm_page_round(s->max_message))
		slot_size = shm_page_round(s->max_message);
	if (!s->area_wanted || s->state != SHMIO_ON ||
	    slot_size < PROTO_SHM_MIN || slot_size > UINT32_MAX / slots)
		return -ENOTSUP;
	fd = shm_area_create(slots * slot_size, &map);
	if (fd < 0)
		return fd;
	if (++s->area_id > SHM_AREA_ID_MAX)
		s->area_id = 1;
	rec.id = s->area_id;
	rec.a = slots;
	rec.b = (uint32_t)slot_size;
	r = send_waiting(s, &rec, sizeof(rec), fd, SHMIO_ANSWER_MS);
	close(fd);
	if (r < 0) {
		munmap(map, slots * slot_size);
		if (r != -ETIMEDOUT)
			shmio_reset(s);
		return r;
	}
	a->map = map;
	a->size = slots * slot_size;
	a->id = rec.id;
	a->slots = slots;
	a->slot_size = (uint32_t)slot_size;
	return 0;
}

void shmio_large_seen(struct shmio *s)
{
	/* a client that only receives has not seen its attach answered
	 * yet when its first large message came in pieces */
	if (s->rx.tried || !s->area_wanted ||
	    !shmio_ready(s, SHMIO_ANSWER_MS))
		return;
	(void)area_register(s, &s->rx, SHM_REC_AREA_RX, s->area_slots);
}

int64_t shmio_send_area(struct shmio *s, const void *payload, size_t len,
			int wait_ms)
{
	struct shmio_area *a = &s->tx;
	int r;

	if (wait_ms < 0 || wait_ms > SHMIO_ANSWER_MS)
		wait_ms = SHMIO_ANSWER_MS;
	if (!a->tried) {
		r = area_register(s, a, SHM_REC_AREA_TX, 1);
		/* its slot is used only once the daemon said yes */
		while (r == 0 && !a->accepted && a->map) {
			struct pollfd p = { .fd = s->sock, .events = POLLIN };

			if (poll(&p, 1, wait_ms) <= 0 ||
			    read_records(s) < 0)
				r = -ETIMEDOUT;
		}
		if (r < 0 || !a->accepted) {
			area_free(a);
			a->tried = true;
		}
	}
	if (!a->accepted || len > a->slot_size || s->state != SHMIO_ON)
		return -ENOTSUP;
	memcpy(a->map, payload, len);
	return SHM_AREA_TAG(a->id, 0);
}

void shmio_check(struct shmio *s)
{
	struct pollfd p = { .fd = s->sock, .events = POLLRDHUP };

	if (s->sock >= 0 && poll(&p, 1, 0) > 0 &&
	    (p.revents & (POLLHUP | POLLRDHUP | POLLERR)))
		shmio_reset(s);
}

void shmio_area_tx_lost(struct shmio *s)
{
	area_free(&s->tx);
	s->tx.tried = true;
}

/* pm's payload from a slot of our rx area into dst, and the slot given
 * back: 0 or -errno. */
static int area_read(struct shmio *s, const struct proto_msg *pm, void *dst)
{
	struct shmio_area *a = &s->rx;
	uint32_t slot = SHM_AREA_TAG_SLOT(pm->h.shm_tag);
	struct shm_record rec = { .magic = SHM_AREA_MAGIC,
				  .kind = SHM_REC_RELEASE,
				  .id = a->id,
				  .a = slot };
	int r;

	/* an area of an earlier connection is gone, with its slots */
	if (!a->map || SHM_AREA_TAG_ID(pm->h.shm_tag) != a->id ||
	    slot >= a->slots || pm->h.payload_len > a->slot_size)
		return -EPROTO;
	memcpy(dst, a->map + (size_t)slot * a->slot_size, pm->h.payload_len);
	r = send_waiting(s, &rec, sizeof(rec), -1, SHMIO_ANSWER_MS);
	if (r < 0)
		shmio_reset(s); /* the daemon drops the area with it */
	return 0;
}

int shmio_read(struct shmio *s, const struct proto_msg *pm, void *dst)
{
	size_t len = pm->h.payload_len, done = 0;
	int fd, r;

	/* the daemon's answer to our attach comes before any file */
	if (!shmio_ready(s, SHMIO_ANSWER_MS))
		return -EPROTO;
	if (pm->h.flags & PROTO_F_AREA)
		return area_read(s, pm, dst);
	fd = shm_take_rec(s->sock, &s->stash, pm->h.shm_tag, on_record, s);
	if (fd < 0)
		return fd == -EAGAIN ? -EPROTO : fd;
	r = shm_check(fd, len) < 0 ? -EBADMSG : 0;
	while (r == 0 && done < len) {
		ssize_t n = pread(fd, (unsigned char *)dst + done, len - done,
				  (off_t)done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			r = n < 0 ? -errno : -EBADMSG;
		else
			done += (size_t)n;
	}
	close(fd);
	if (r == 0)
		shmio_large_seen(s); /* the next in a slot */
	return r;
}
