/* SPDX-License-Identifier: MIT */
/*
 * shm.c - sealed memory files and the socket that carries them.
 */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <linux/magic.h>
#include <unistd.h>

#include "proto/shm.h"

#define SHM_SEALS (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE)

int shm_create(const void *data, size_t len)
{
	const unsigned char *p = data;
	size_t done = 0;
	int fd, e;

	fd = memfd_create("mqbus", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -errno;
	while (done < len) {
		ssize_t n = write(fd, p + done, len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			e = n < 0 ? errno : EIO;
			goto fail;
		}
		done += (size_t)n;
	}
	if (fcntl(fd, F_ADD_SEALS, SHM_SEALS | F_SEAL_SEAL) < 0) {
		e = errno;
		goto fail;
	}
	return fd;
fail:
	close(fd);
	return -e;
}

#define AREA_SEALS (F_SEAL_SHRINK | F_SEAL_GROW)

size_t shm_page_round(size_t n)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);

	return (n + page - 1) / page * page;
}

int shm_area_create(size_t size, void **ret_map)
{
	void *map;
	int fd, e;

	fd = memfd_create("mqbus-area", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -errno;
	/* the pages are ours, allocated once, never again per message */
	if (ftruncate(fd, (off_t)size) < 0) {
		e = errno;
		goto fail;
	}
	e = posix_fallocate(fd, 0, (off_t)size);
	if (e != 0)
		goto fail;
	/* not F_SEAL_SEAL: the daemon seals the area against new writers
	 * once it has mapped it (we write and read through our mapping) */
	if (fcntl(fd, F_ADD_SEALS, AREA_SEALS) < 0) {
		e = errno;
		goto fail;
	}
	map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED) {
		e = errno;
		goto fail;
	}
	*ret_map = map;
	return fd;
fail:
	close(fd);
	return -e;
}

int shm_area_check(int fd, size_t size)
{
	struct statfs fs;
	struct stat st;
	int seals;

	/* an ordinary memory file: one of huge pages could leave its
	 * writer without a page for a hole (SIGBUS) */
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    fstatfs(fd, &fs) < 0 || fs.f_type != TMPFS_MAGIC)
		return -EBADF;
	seals = fcntl(fd, F_GET_SEALS);
	if (seals < 0 || (seals & AREA_SEALS) != AREA_SEALS)
		return -EPERM;
	if (st.st_size < 0 || (size_t)st.st_size != size)
		return -EMSGSIZE;
	/* writing it must not allocate pages (charged to the writer) */
	if ((size_t)st.st_blocks * 512u < size)
		return -ENOSPC;
	return 0;
}

int shm_check(int fd, size_t len)
{
	struct stat st;
	int seals;

	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		return -EBADF;
	seals = fcntl(fd, F_GET_SEALS);
	if (seals < 0 || (seals & SHM_SEALS) != SHM_SEALS)
		return -EPERM;
	if (st.st_size < 0 || (size_t)st.st_size != len)
		return -EMSGSIZE;
	return 0;
}

int shm_send_buf(int sock, const void *buf, size_t len, int fd)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} ctl;
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr msg = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
	};
	struct cmsghdr *c;

	if (fd >= 0) {
		memset(&ctl, 0, sizeof(ctl));
		msg.msg_control = ctl.buf;
		msg.msg_controllen = sizeof(ctl.buf);
		c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(fd));
	}
	while (sendmsg(sock, &msg, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		if (errno != EINTR)
			return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	return 0;
}

int shm_send(int sock, uint32_t tag, int fd)
{
	return shm_send_buf(sock, &tag, sizeof(tag), fd);
}

/* Closes every descriptor of msg but the first one alone: *ret_fd is
 * that one, or -1 when there was none or more than one. */
static void take_fds(struct msghdr *msg, int *ret_fd)
{
	struct cmsghdr *c;
	unsigned total = 0;

	*ret_fd = -1;
	for (c = CMSG_FIRSTHDR(msg); c; c = CMSG_NXTHDR(msg, c)) {
		size_t n;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < n; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int),
			       sizeof(fd));
			if (total++ == 0)
				*ret_fd = fd;
			else
				close(fd);
		}
	}
	if (total > 1 && *ret_fd >= 0) {
		close(*ret_fd);
		*ret_fd = -1;
	}
}

int shm_recv(int sock, uint32_t *ret_tag, struct shm_record *rec,
	     int *ret_fd)
{
	/* room for a few, so that extra ones are seen (and closed) */
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(4 * sizeof(int))];
	} ctl;
	union {
		uint32_t tag;
		struct shm_record rec;
		unsigned char extra[sizeof(struct shm_record) + 1];
	} in;
	struct iovec iov = { .iov_base = &in, .iov_len = sizeof(in) };
	struct msghdr msg = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = ctl.buf,
		.msg_controllen = sizeof(ctl.buf),
	};
	bool is_rec;
	ssize_t n;

	*ret_fd = -1;
	*ret_tag = 0;
	do
		n = recvmsg(sock, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	if (n == 0)
		return 0;
	take_fds(&msg, ret_fd);
	is_rec = n == (ssize_t)sizeof(*rec) && in.rec.magic == SHM_AREA_MAGIC;
	/* more descriptors than fit (the rest were closed by the kernel),
	 * or a message that is neither a tag nor a record */
	if (*ret_fd >= 0 && ((msg.msg_flags & (MSG_CTRUNC | MSG_TRUNC)) ||
			     (n != sizeof(*ret_tag) && !is_rec))) {
		close(*ret_fd);
		*ret_fd = -1;
	}
	if (is_rec && !(msg.msg_flags & MSG_TRUNC)) {
		*rec = in.rec;
		return 2;
	}
	if (n == sizeof(*ret_tag))
		*ret_tag = in.tag;
	return 1;
}

void shm_stash_clear(struct shm_stash *st)
{
	for (unsigned i = 0; i < st->n; i++)
		close(st->fd[i]);
	st->n = 0;
}

/* Removes entry i of st, returning its descriptor. */
static int stash_remove(struct shm_stash *st, unsigned i)
{
	int fd = st->fd[i];

	st->n--;
	st->tag[i] = st->tag[st->n];
	st->fd[i] = st->fd[st->n];
	return fd;
}

void shm_stash_put(struct shm_stash *st, uint32_t tag, int fd)
{
	if (shm_stash_full(st)) {
		unsigned old = 0;

		for (unsigned i = 1; i < st->n; i++)
			if ((int32_t)(st->tag[i] - st->tag[old]) < 0)
				old = i;
		close(stash_remove(st, old));
	}
	st->tag[st->n] = tag;
	st->fd[st->n] = fd;
	st->n++;
}

int shm_take_rec(int sock, struct shm_stash *st, uint32_t tag,
		 shm_record_fn on_record, void *arg)
{
	for (unsigned i = 0; i < st->n; i++)
		if (st->tag[i] == tag)
			return stash_remove(st, i);
	for (;;) {
		struct shm_record rec;
		uint32_t got;
		int fd, r = shm_recv(sock, &got, &rec, &fd);

		if (r <= 0)
			return r == 0 ? -ECONNRESET : r;
		if (r == 2 && on_record) {
			on_record(arg, &rec, fd);
			continue;
		}
		if (r == 2 || fd < 0 || got == 0) {
			if (fd >= 0)
				close(fd);
			return -EPROTO;
		}
		if (got == tag)
			return fd;
		shm_stash_put(st, got, fd);
	}
}

int shm_take(int sock, struct shm_stash *st, uint32_t tag)
{
	return shm_take_rec(sock, st, tag, NULL, NULL);
}

uint32_t shm_next_tag(uint32_t *counter)
{
	if (++*counter == 0)
		*counter = 1;
	return *counter;
}
