/* SPDX-License-Identifier: MIT */
/*
 * shm.h - large payloads in sealed memory files, in the daemon.
 *
 * The bus listens on a unix socket with an unguessable abstract address,
 * given with a nonce in the WELCOME of each client that asks
 * (PROTO_F_SHM on its ANNOUNCE).  A client attaches one connection: its
 * first message names its id and echoes the nonce, and the kernel's
 * credentials of the connection must be the client's own verified pid
 * and uid.  From then on a message of that client flagged PROTO_F_SHM
 * has its payload in the memory file of its tag on that connection: the
 * file is checked (sealed, of the payload's size), mapped read-only
 * behind the message's head, and routed like any message.  To a receiver
 * that attached, a message that came in a file and is larger than its rx
 * messages goes on as that same file; to any other, in pieces (large.c).
 * An attached client may also register reused memory areas (its own
 * pages, mapped once): a receiver's large payloads are then copied into
 * free slots of its rx area (a slot is busy until it gives it back), a
 * publisher's out of the one slot of its tx area; a receiver without
 * an area gets a file, written once per message if none came with it.
 * PROTOCOL.md, "Memory files" and "Memory areas", is the spec;
 * proto/shm.h has the helpers both ends share.
 */
#ifndef MQBUS_DAEMON_SHM_H
#define MQBUS_DAEMON_SHM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "daemon/msgbuf.h"
#include "proto/shm.h"

struct event;
struct peer;
struct proto_msg;
struct server;

/* files of a client kept before their heads' turn: its large messages
 * reordered by priority in its tx (a PUBLISH waits for its answer, so
 * only requests and replies can be), each a descriptor of the daemon's */
#define SHM_PEER_STASH 4

/* connections that have not said who they are yet, and how long they
 * may take to */
#define SHM_WAITING_MAX 16
#define SHM_ATTACH_MS 2000

/*
 * A reused memory area of a client (PROTOCOL.md, Memory areas): the
 * client's pages, mapped shared (rx for writing) and then sealed by the
 * daemon against new writers, so that no page can go from under the
 * mapping (a touch of the daemon's never allocates one); which slots of
 * an rx area hold a message not yet released is the daemon's own count,
 * the area is never read for it.
 */
struct shm_area {
	unsigned char *map; /* NULL: none */
	uint32_t id;	    /* the client's name for it */
	uint32_t slots;
	uint32_t slot_size;
	uint32_t busy; /* rx: a bit per slot sent, not yet released */
};

/* what a peer has of memory files */
struct shm_peer {
	int sock;	      /* its attached connection, -1: none */
	bool wants;	      /* it asked (PROTO_F_SHM on its ANNOUNCE) */
	uint64_t nonce;	      /* given in its WELCOME */
	uint32_t out_tag;     /* the tag of the last file sent to it */
	struct shm_stash in;  /* its files come before their heads' turn */
	struct event *out_ev; /* the connection writable, while output
				 waits for room in it */
	struct event *in_ev;  /* the connection readable: records */
	bool in_held;	      /* not read while its stash is full */
	bool slot_wait;	      /* output waits for a slot of rx_area */
	bool flush;	      /* a slot freed while routing: flush after */
	uint8_t registered;   /* the kinds of area it tried (a bit each) */
	unsigned bad_records;
	struct shm_area rx_area; /* daemon -> it */
	struct shm_area tx_area; /* it -> daemon */
};

struct shm_waiting {
	int fd; /* -1: slot free */
	struct event *ev;
	struct server *server;
};

/* the bus's listening socket and counters */
struct shm_listener {
	int fd; /* -1: memory files are off */
	char addr[SHM_ADDR_MAX];
	struct event *ev;
	struct shm_waiting waiting[SHM_WAITING_MAX];
	unsigned evict; /* the slot given up when all are taken */
	bool resting;	/* out of descriptors: not accepting until the
			   next tick */
	uint64_t attached;	/* connections attached */
	uint64_t attach_refused;
	uint64_t received;	/* messages that came in a file */
	uint64_t sent;		/* files passed on to receivers */
	uint64_t refused;	/* messages refused: no file, a bad one */
	uint64_t areas;		/* areas mapped now */
	uint64_t area_bytes;	/* their bytes */
	uint64_t area_refused;	/* registrations refused */
	uint64_t area_sent;	/* messages sent in a slot */
	uint64_t area_received; /* messages that came in a slot */
	uint64_t area_released; /* slots given back */
	uint64_t area_bad;	/* releases refused, records not understood */
};

/* Sets l up empty, before shm_init() (shm_deinit() may come first). */
void shm_zero(struct shm_listener *l);

/* Opens the listening socket (a failure only turns memory files off,
 * logged). */
void shm_init(struct server *s);
void shm_deinit(struct server *s);

/* Once a second (server.c): a resting listener accepts again. */
void shm_tick(struct server *s);

/* handshake.c: what p's WELCOME says of memory files: the flag, the
 * address (topic) and the nonce; false when p does not get them. */
bool shm_offer(struct peer *p, const char **ret_addr, uint64_t *ret_nonce);

/*
 * server.c: a message of p flagged PROTO_F_SHM (pm, read into m): its
 * file is taken and checked, and the whole message goes to dispatch as
 * a large message does (large_route()); refused with an ERROR to its
 * token otherwise.
 */
void shm_message(struct peer *p, struct msgbuf *m, const struct proto_msg *pm,
		 void (*dispatch)(struct peer *p, struct msgbuf *m));

/* deliver.c: whether m goes to p as its memory file or in a slot of its
 * rx area; shm_for() in peer.h asks this of the few large ones. */
bool shm_for_file(const struct peer *p, const struct msgbuf *m);

/*
 * deliver.c: copies m's payload into a free slot of p's rx area, or
 * passes m's file to p, and sends its head at prio.  0; -EAGAIN when rx
 * or the connection is full (a wake-up is set for the connection) or no
 * slot is free (its release flushes p); another -errno.
 */
int shm_send_to(struct peer *p, struct msgbuf *m, unsigned prio);

/* Whether p's output waits for room in its connection or for a slot. */
bool shm_out_waits(const struct peer *p);

/* p is going: its connection closes. */
void shm_drop_peer(struct peer *p);

/* The "shm_*" lines of STATS, appended to buf at *len. */
void shm_stats_text(const struct server *s, char *buf, size_t cap,
		    size_t *len);

#endif
