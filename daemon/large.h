/* SPDX-License-Identifier: MIT */
/*
 * large.h - messages larger than a queue message, in the daemon.
 *
 * A client sends a message that does not fit its tx queue as FRAGMENT
 * frames (proto/frag.h).  The daemon copies the pieces of each such
 * message into one buffer, charged to the bus's pending budget and to the
 * sender's uid from the first piece on, and when the last piece is in,
 * hands the whole message to the ordinary handlers: routing, retained
 * values, overflow policies and backlogs all see one message.  A receiver
 * whose rx queue is too small for a message gets it as fragments of its
 * own queue's size, one large message at a time (deliver.c keeps the
 * message at the head of its pending list until its last piece is in).
 * PROTOCOL.md, "Large messages", is the spec.
 */
#ifndef MQBUS_LARGE_H
#define MQBUS_LARGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "proto/frag.h"

struct msgbuf;
struct peer;
struct proto_msg;
struct server;

/* unfinished large messages one client may have at once */
#define LARGE_PARTS_MAX 4

/* the default of the bus's max_message: the largest payload */
#define LARGE_DEFAULT_MAX (1024u * 1024)

/* one message coming in pieces from a client */
struct large_part {
	uint32_t id;	   /* the sender's message id; 0: slot free */
	size_t total;	   /* bytes of the whole encoded message */
	struct msgbuf *m;  /* m->len: bytes in so far */
	size_t charged;	   /* what it costs the budget and the uid */
};

/* what a peer has of large messages, both ways */
struct large_peer {
	struct large_part in[LARGE_PARTS_MAX];
	struct large_part *next; /* the one whose piece came last, unfinished:
				    its next piece is read in place */
	unsigned char save[FRAG_OVERHEAD]; /* under that piece's header */
	size_t limit;		 /* largest payload it takes; 0: max_message */
	const struct msgbuf *out; /* going out in pieces now, or NULL */
	size_t out_off;		 /* bytes of it sent */
	uint32_t out_id;
	uint32_t next_id;
	unsigned out_prio;	 /* the mq priority of its pieces */
	unsigned floor;		 /* that of the last large message's */
	bool floor_set;
};

/* the bus's counters and the state of the message being routed */
struct large_stats {
	uint64_t reassembled; /* large messages received whole */
	uint64_t incomplete;  /* given up: sender gone or broke the order */
	uint64_t refused;     /* refused at their first piece (size, quota) */
	uint64_t sent;	      /* large messages sent in pieces */
	uint64_t too_large;   /* deliveries refused: beyond the receiver's
				 limit */
	size_t held;	      /* bytes held by unfinished messages */
	uint64_t ticked;      /* reassembled at the last large_tick() */
	bool untrimmed;	      /* large buffers freed since the last trim */
	bool busy;	      /* one taken since the last large_tick() */
	/* while a whole large message is routed (route.c, deliver.c) */
	bool routing;
	bool routed;
	unsigned accepted;
	unsigned refused_now;
};

typedef void (*large_dispatch_fn)(struct peer *p, struct msgbuf *m);

/*
 * A FRAGMENT read from p: a limit declaration, or a piece of a message.
 * When a message is complete it goes to dispatch (server.c's message
 * handler) as if it had been read in one piece; a PUBLISH with a token
 * is answered (ACK, or ERROR EMSGSIZE when every subscriber refused it
 * for its size).  A message refused at its first piece (too large, too
 * many unfinished, over the budget or the uid's quota) is answered with
 * an ERROR to its own token; its further pieces are ignored.
 */
void large_fragment(struct peer *p, const struct proto_msg *pm,
		    large_dispatch_fn dispatch);

/*
 * Reading the next piece without a copy.  While a client sends a large
 * message, the next frame read from its tx may go straight to where its
 * piece belongs in the message being put together: large_slot() returns
 * that place (the queue's message size may be written from it; the
 * FRAGMENT header lands on the end of the previous piece, whose bytes it
 * keeps aside), or NULL (read as usual).  After the read of n bytes
 * there (n < 0: none), large_landed() puts those bytes back and takes
 * the piece as large_fragment() would (true), or copies the frame into
 * m (m->len = n) and returns false: it was not the next piece, and goes
 * the usual way.
 */
unsigned char *large_slot(struct peer *p);
bool large_landed(struct peer *p, unsigned char *at, ssize_t n,
		  struct msgbuf *m, large_dispatch_fn dispatch);

/*
 * Routes whole large message m of p (put together from pieces, or come
 * in a memory file, shm.c) through dispatch, and answers a PUBLISH that
 * asked for an answer (its token): ACK, or ERROR EMSGSIZE when every
 * subscriber refused it for its size.
 */
void large_route(struct peer *p, struct msgbuf *m, large_dispatch_fn dispatch);

/* Drops what p was sending in pieces (it is going): counted incomplete. */
void large_drop_peer(struct peer *p);

/* route.c: a message was routed to accepted subscribers. */
void large_routed(struct server *s, unsigned accepted);

/*
 * deliver.c: whether m must go to p in pieces (larger than its rx
 * messages): 0 no; -EAGAIN yes, queue it first; -EMSGSIZE it is beyond
 * what p takes (counted).
 */
int large_admit(struct peer *p, const struct msgbuf *m);

/* Whether m goes to p in pieces. */
bool large_for(const struct peer *p, const struct msgbuf *m);

/*
 * deliver.c: sends m to p in pieces at mq priority prio (lower while the
 * previous large message's last pieces may still be in p's rx), from
 * where the last call stopped.  0 when its last piece is in; -EAGAIN when rx is
 * full (the progress is kept); another -errno.
 */
int large_send(struct peer *p, struct msgbuf *m, unsigned prio);

/* Whether m is going out to p in pieces now (started, not finished). */
bool large_in_flight(const struct peer *p, const struct msgbuf *m);

/* deliver.c: m left p's pending list; if it was going out, it stops. */
void large_unlinked(struct peer *p, const struct msgbuf *m);

/* A large buffer is about to be taken from the heap (here, and for a
 * payload copied out of a memory area, shm.c): the heap keeps them. */
void large_heap_setup(struct server *s);

/*
 * Once a second (server.c): after a quiet second, the memory large
 * messages left in the heap goes back to the system.
 */
void large_tick(struct server *s);

/* The "large_*" lines of STATS, appended to buf at *len. */
void large_stats_text(const struct server *s, char *buf, size_t cap,
		      size_t *len);

#endif
