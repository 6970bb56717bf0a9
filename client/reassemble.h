/* SPDX-License-Identifier: MIT */
/*
 * reassemble.h - libmqbus's side of large messages (private header).
 *
 * Sending: a message that does not fit a queue message is encoded whole
 * into one buffer, with room in front, and sent as FRAGMENT frames
 * (proto/frag.h) written in place, so the payload is copied once.
 * Receiving: the daemon sends one large message at a time into our rx;
 * its pieces are put together here, each after the first read straight
 * into its place (reasm_slot()), bounded by the handle's limit, and the
 * whole message is then handled like one read in one piece.
 * PROTOCOL.md, "Large messages".
 */
#ifndef MQBUS_REASSEMBLE_H
#define MQBUS_REASSEMBLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "proto/frag.h"

struct proto_msg;

/* the message being put together from rx */
struct reasm {
	uint32_t id;	     /* 0: none */
	size_t total;	     /* bytes of the whole encoded message */
	size_t have;
	unsigned char *buf;  /* room + total + msgsize + 1 bytes */
	size_t room;	     /* before the message, for the caller */
	long msgsize;	     /* the largest piece buf was made for */
	unsigned char save[FRAG_OVERHEAD]; /* under a piece read in place */
	uint32_t skip_id;    /* a message refused: its pieces are skipped */
	unsigned char *done; /* the last whole message, kept until the next
				read (replies point into it) */
	uint32_t refused;    /* refused since the last delivery */
	uint64_t incomplete; /* given up half way */
};

/*
 * Adds fragment pm, read from a queue of msgsize bytes.  Returns 1 and
 * the whole message in *ret_buf and *ret_len (valid until the next
 * reasm_add() or reasm_release()) when it is complete: it lies room
 * bytes into its allocation, and one spare byte follows it, so that the
 * caller can make it its own without a copy (reasm_steal()); 0 when more
 * must come; -EMSGSIZE when the message is larger than limit bytes of
 * payload (counted in refused; the rest of it is skipped); -EBADMSG for
 * a piece that does not follow (what was there is dropped, counted
 * incomplete); -ENOMEM.
 */
int reasm_add(struct reasm *r, const struct proto_msg *pm, size_t limit,
	      size_t room, long msgsize, const unsigned char **ret_buf,
	      size_t *ret_len);

/*
 * Reading the next piece without a copy.  While a message is being put
 * together, the next frame read from a queue of msgsize bytes may go
 * straight to where its piece belongs: reasm_slot() returns that place
 * (msgsize bytes may be written from it; the FRAGMENT header lands on
 * the end of the previous piece, whose bytes it keeps aside), or NULL
 * (read into the usual buffer).  After the read of n bytes there (n < 0:
 * none), reasm_landed() puts those bytes back and returns what
 * reasm_add() would for the next piece (0, or 1 with the whole
 * message), or -1: the frame is not the next piece (or nothing came),
 * and its n bytes were copied to buf, to be handled as usual.
 */
unsigned char *reasm_slot(struct reasm *r, long msgsize);
int reasm_landed(struct reasm *r, unsigned char *at, ssize_t n,
		 unsigned char *buf, const unsigned char **ret_buf,
		 size_t *ret_len);

/* The allocation of the last whole message handed out, now the
 * caller's (free() it); NULL if there is none. */
void *reasm_steal(struct reasm *r);

/* Frees the last whole message handed out. */
void reasm_release(struct reasm *r);

/* Frees all (the handle goes, or the daemon went). */
void reasm_reset(struct reasm *r);

/* Sends one frame of len bytes at prio; 0 or -errno. */
typedef int (*reasm_send_fn)(void *ctx, const void *buf, size_t len,
			     unsigned prio);

/*
 * Sends the whole encoded message at msg (len bytes, its buffer writable
 * from FRAG_OVERHEAD bytes before msg: fragment headers are written in
 * place and put back) as fragments of id for queues of msgsize bytes, at
 * prio.  Returns 0 or the first error of send.
 */
int reasm_send(unsigned char *msg, size_t len, uint32_t id, long msgsize,
	       unsigned prio, reasm_send_fn send, void *ctx);

#endif
