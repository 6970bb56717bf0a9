/* SPDX-License-Identifier: MIT */
/*
 * shmio.h - libmqbus's side of memory files (private header).
 *
 * A daemon that offers memory files (PROTO_F_SHM on its WELCOME, with
 * the address of its socket and a nonce) gets one connection from the
 * handle: shmio_begin() connects, checks that the other end is that
 * daemon's process, and says our client id and the nonce; the daemon's
 * answer is awaited the first time it matters (shmio_ready()).  A
 * message too large for a queue message then sends its payload as a new
 * sealed memory file (shmio_send()), and a message that comes flagged
 * PROTO_F_SHM has its payload read from the file of its tag
 * (shmio_read()): one copy, into the message handed to the program, and
 * the file's pages go back to the system as soon as it is closed.
 * Reused areas spare that: after the first large message the handle
 * registers an rx area of a few slots, which the daemon copies payloads
 * into (shmio_large_seen(), shmio_read() releases a slot once read), and
 * a large PUBLISH goes through the one slot of a tx area
 * (shmio_send_area()).  proto/shm.h has what both ends share;
 * PROTOCOL.md, "Memory files" and "Memory areas", is the spec.
 */
#ifndef MQBUS_SHMIO_H
#define MQBUS_SHMIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "proto/shm.h"

struct proto_msg;

enum shmio_state {
	SHMIO_OFF,	 /* no connection: large payloads go in pieces */
	SHMIO_ATTACHING, /* connected, the daemon's answer not read yet */
	SHMIO_ON,
};

/* a reused memory area of ours (PROTOCOL.md, Memory areas) */
struct shmio_area {
	unsigned char *map; /* NULL: none */
	size_t size;
	uint32_t id;
	uint32_t slots;
	uint32_t slot_size;
	bool tried;    /* registered (or failed to) on this connection */
	bool accepted; /* the daemon said so */
};

struct shmio {
	int sock;
	enum shmio_state state;
	uint32_t tag; /* of the last file sent */
	struct shm_stash stash; /* files come before their heads' turn */
	/* reused areas: wanted (MQBUS_SHM_AREA), their shape
	 * (MQBUS_SHM_SLOTS, MQBUS_SHM_SLOT_SIZE), the bus's max_message */
	bool area_wanted;
	uint32_t area_slots;
	size_t area_slot_size;
	size_t max_message;
	uint32_t area_id; /* the last id given to an area */
	struct shmio_area rx, tx;
};

/* the defaults of MQBUS_SHM_SLOTS and MQBUS_SHM_SLOT_SIZE */
#define SHMIO_AREA_SLOTS 2
#define SHMIO_AREA_SLOT_SIZE (1024 * 1024)

void shmio_init(struct shmio *s);

/* Closes the connection and frees the last mapping. */
void shmio_reset(struct shmio *s);

/*
 * A WELCOME offering memory files: connects to its address, checks that
 * the process at the other end is daemon_pid, and sends the attach
 * message of client_id.  Without an offer, or on any failure, s stays
 * off (payloads go in pieces).
 */
void shmio_begin(struct shmio *s, const struct proto_msg *welcome,
		 uint32_t client_id, pid_t daemon_pid);

/* the longest wait for the daemon's answer to an attach */
#define SHMIO_ANSWER_MS 1000

/* Whether payloads may go in memory files now; while attaching, waits
 * up to wait_ms for the daemon's answer (none by then: off for the rest
 * of the session). */
bool shmio_ready(struct shmio *s, int wait_ms);

/*
 * Sends the len bytes at payload as a new sealed memory file, waiting
 * up to wait_ms for room in the connection.  Returns the file's tag for
 * shm_tag, or -errno.
 */
int64_t shmio_send(struct shmio *s, const void *payload, size_t len,
		   int wait_ms);

/*
 * pm, read from rx, has its payload in a memory file: takes the file of
 * its tag, checks it, and reads its payload_len bytes into dst.  0, or
 * -errno (the payload is lost: -EPROTO no such file, -EBADMSG not a
 * sealed file of its size).
 */
int shmio_read(struct shmio *s, const struct proto_msg *pm, void *dst);

/*
 * A large message came (in a file or in pieces): the first time on this
 * connection, if areas are wanted, our rx area is made and registered,
 * so that the next ones come in its slots.
 */
void shmio_large_seen(struct shmio *s);

/*
 * Writes the len bytes at payload into the slot of our tx area (made,
 * registered and its answer awaited up to wait_ms, at most
 * SHMIO_ANSWER_MS, the first time) for a
 * message that waits for the daemon's answer before the next one.
 * Returns the tag for shm_tag (the head flagged PROTO_F_AREA too), or
 * -errno (-ENOTSUP: no area; a memory file may still go).
 */
int64_t shmio_send_area(struct shmio *s, const void *payload, size_t len,
			int wait_ms);

/* Whether the daemon closed our connection (it dropped it): if so it is
 * closed here too, and payloads go in pieces. */
void shmio_check(struct shmio *s);

/* A message sent in the tx slot got no answer: the daemon may read the
 * slot yet, so it is never written again on this connection. */
void shmio_area_tx_lost(struct shmio *s);

#endif
