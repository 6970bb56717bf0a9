/* SPDX-License-Identifier: MIT */
/*
 * shm.h - large payloads in sealed memory files, shared by the daemon and
 * libmqbus.
 *
 * A message too large for a queue message may carry its payload in a
 * memory file (memfd) instead of in FRAGMENT pieces: the sender writes
 * the payload into a new file, seals it against any change of size or
 * content, and passes the descriptor over a unix socket it shares with
 * the other end, tagged; the message itself goes through the queue as
 * usual, flagged PROTO_F_SHM with that tag in shm_tag and without its
 * payload bytes.  The receiver takes the descriptor of that tag from the
 * socket, checks the seals and the size, and maps the file read-only.
 * The daemon passes on the very file it received to each receiver, so
 * the payload is never copied between processes, and a receiver holds
 * only files of messages routed to it.  PROTOCOL.md, "Memory files", is
 * the spec.
 */
#ifndef MQBUS_SHM_H
#define MQBUS_SHM_H

#include <stddef.h>
#include <stdint.h>

#include "proto/proto.h"

/* the first message on a socket, client -> daemon */
#define SHM_ATTACH_MAGIC 0x5342514du /* "MQBS" read as little-endian */
struct shm_attach {
	uint32_t magic;
	uint32_t client_id; /* from the WELCOME */
	uint64_t nonce;	    /* the WELCOME's timestamp */
};

/* the daemon's answer to it: 0, or the errno it was refused with */
struct shm_attached {
	uint32_t magic;
	uint32_t status;
};

/* the socket's address, without the leading NUL of the abstract name */
#define SHM_ADDR_MAX PROTO_SHM_ADDR_MAX

/*
 * A new memory file holding the len bytes at data, sealed against
 * growing, shrinking and writing.  Returns its descriptor (close-on-exec)
 * or -errno.
 */
int shm_create(const void *data, size_t len);

/* Whether fd is a sealed memory file of exactly len bytes: 0 or -errno
 * (-EBADF not a regular file, -EPERM not sealed, -EMSGSIZE its size). */
int shm_check(int fd, size_t len);

/*
 * Sends fd tagged tag over sock without waiting: 0, -EAGAIN (the socket
 * is full) or another -errno.
 */
int shm_send(int sock, uint32_t tag, int fd);

/*
 * Files that came before their messages' turn.  A queue hands out
 * messages by priority, so the heads of messages sent as 1, 2, 3 may be
 * read as 3, 1, 2 while their files come in the order sent: the files
 * read on the way to another are kept here, at most max of them, or
 * SHM_STASH_MAX if max is 0 (the oldest goes when it is full: its
 * message, if it ever comes, is lost).
 */
#define SHM_STASH_MAX 32
struct shm_stash {
	unsigned n;
	unsigned max;
	uint32_t tag[SHM_STASH_MAX];
	int fd[SHM_STASH_MAX];
};

/* Closes what st keeps. */
void shm_stash_clear(struct shm_stash *st);

/*
 * Takes the descriptor tagged tag, from st or from sock without waiting
 * (keeping in st the files of other tags read on the way).  Returns the
 * descriptor, -EAGAIN when it is not there, -ECONNRESET when the other
 * end is gone, -EPROTO for anything not sent as shm_send() does.
 */
int shm_take(int sock, struct shm_stash *st, uint32_t tag);

/* The next tag after *counter (never 0). */
uint32_t shm_next_tag(uint32_t *counter);

#endif
