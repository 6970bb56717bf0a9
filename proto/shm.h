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
 * only files of messages routed to it.  Reused areas (below) spare a
 * file per message.  PROTOCOL.md, "Memory files" and "Memory areas", is
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

/*
 * Reused memory areas.  Besides tags (4 bytes, with a file) the
 * connection carries records of this size, told apart by their length:
 * a client registers an area (SHM_REC_AREA_RX or _TX, with the area's
 * descriptor), the daemon answers SHM_REC_STATUS, and a receiver gives a
 * slot of its rx area back with SHM_REC_RELEASE.  A message whose payload
 * lies in a slot is flagged PROTO_F_SHM | PROTO_F_AREA, its shm_tag
 * SHM_AREA_TAG(area id, slot).  PROTOCOL.md, "Memory areas".
 */
#define SHM_AREA_MAGIC 0x4152514du /* "MQRA" read as little-endian */
enum shm_rec_kind {
	SHM_REC_AREA_RX = 1, /* client: daemon -> us; id, slots, slot_size */
	SHM_REC_AREA_TX = 2, /* client: us -> daemon; id, 1 slot, slot_size */
	SHM_REC_RELEASE = 3, /* client: slot of area id read; id, slot */
	SHM_REC_STATUS = 4,  /* daemon: id, kind, 0 or the errno refused */
};
struct shm_record {
	uint32_t magic;
	uint32_t kind;
	uint32_t id;	/* the area's, chosen by the client: 1..0xffffff */
	uint32_t a;	/* AREA: slots; RELEASE: the slot; STATUS: kind */
	uint32_t b;	/* AREA: slot_size; STATUS: 0 or an errno */
	uint32_t pad;
};
#define SHM_AREA_ID_MAX 0xffffffu
/* records a connection may get wrong (refused) before the daemon drops
 * it */
#define SHM_BAD_RECORDS_MAX 16
#define SHM_AREA_SLOTS_MAX 8
#define SHM_AREA_TAG(id, slot) (((uint32_t)(id) << 8) | (uint32_t)(slot))
#define SHM_AREA_TAG_ID(tag) ((uint32_t)(tag) >> 8)
#define SHM_AREA_TAG_SLOT(tag) ((uint32_t)(tag) & 0xffu)

/*
 * A new area of size bytes for reuse: a memory file, its pages allocated
 * now (charged to the caller), sealed against shrinking and growing
 * only (the daemon maps an rx area to write it, then seals it against
 * every other write), mapped shared read/write at *ret_map.  The
 * descriptor (close-on-exec) or -errno.
 */
int shm_area_create(size_t size, void **ret_map);

/* n rounded up to whole pages: an area's slots are of whole pages. */
size_t shm_page_round(size_t n);

/* Whether fd is an area of exactly size bytes, all allocated, that can
 * neither shrink nor grow: 0 or -errno (-EBADF not a regular file of
 * ordinary pages (tmpfs: no huge pages),
 * -EPERM not sealed so, -EMSGSIZE its size, -ENOSPC holes). */
int shm_area_check(int fd, size_t size);

/* Sends the len bytes at buf, with fd if fd >= 0, without waiting: 0,
 * -EAGAIN or another -errno. */
int shm_send_buf(int sock, const void *buf, size_t len, int fd);

/* Called with a record read on the way to a file (fd: its descriptor,
 * the callee's to close, or -1). */
typedef void (*shm_record_fn)(void *arg, const struct shm_record *r, int fd);

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

/* shm_take(), handing each record read on the way to on_record (NULL:
 * a record is -EPROTO as any message that is not a tag). */
int shm_take_rec(int sock, struct shm_stash *st, uint32_t tag,
		 shm_record_fn on_record, void *arg);

/*
 * Reads one message of sock without waiting: 1 a tag (*ret_tag, 0 if
 * garbage, and its descriptor or -1), 2 a record (*rec, and its
 * descriptor or -1), 0 the end of the stream, or -errno (-EAGAIN).
 */
int shm_recv(int sock, uint32_t *ret_tag, struct shm_record *rec,
	     int *ret_fd);

/* Keeps fd of tag in st (its oldest goes when st is full). */
void shm_stash_put(struct shm_stash *st, uint32_t tag, int fd);

/* Whether st is full. */
static inline int shm_stash_full(const struct shm_stash *st)
{
	return st->n >= (st->max && st->max < SHM_STASH_MAX ? st->max
							    : SHM_STASH_MAX);
}

/* The next tag after *counter (never 0). */
uint32_t shm_next_tag(uint32_t *counter);

#endif
