/* SPDX-License-Identifier: MIT */
/*
 * shmio.c - memory files in libmqbus: attaching, sending, taking.
 */
#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <string.h>
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

void shmio_reset(struct shmio *s)
{
	if (s->sock >= 0)
		close(s->sock);
	s->sock = -1;
	shm_stash_clear(&s->stash);
	s->state = SHMIO_OFF;
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

int shmio_read(struct shmio *s, const struct proto_msg *pm, void *dst)
{
	size_t len = pm->h.payload_len, done = 0;
	int fd, r;

	/* the daemon's answer to our attach comes before any file */
	if (!shmio_ready(s, SHMIO_ANSWER_MS))
		return -EPROTO;
	fd = shm_take(s->sock, &s->stash, pm->h.shm_tag);
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
	return r;
}
