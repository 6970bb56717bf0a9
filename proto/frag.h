/* SPDX-License-Identifier: MIT */
/*
 * frag.h - messages larger than one queue message: the FRAGMENT frame.
 *
 * A message that does not fit the queue it must cross is encoded whole,
 * as usual (a PUBLISH, REQUEST, REPLY or DELIVER of any length up to the
 * bus's max_message), and its bytes are sent as FRAGMENT frames of queue
 * size, in order, at the message's own mq priority: token = a message id
 * chosen by the sender, seq = the offset of the piece, timestamp = the
 * length of the whole encoded message.  The receiver copies the pieces
 * into one buffer of that length and, once it is complete, decodes it
 * with proto_decode() like any message read in one piece.  PROTOCOL.md,
 * "Large messages", is the written spec.
 *
 * Type 27 is far from the ordinary types (1..PROTO_TYPE_MAX) on purpose,
 * so that new ordinary types can be added without a collision.
 */
#ifndef MQBUS_FRAG_H
#define MQBUS_FRAG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/proto.h"

#define PROTO_FRAGMENT 27

/* the largest whole message any receiver accepts (a sanity bound: the
 * bus's max_message, at most this, is the one that applies) */
#define FRAG_TOTAL_MAX (256u * 1024 * 1024)

/* bytes of a fragment frame before its piece: the header, the NUL of the
 * empty topic */
#define FRAG_OVERHEAD (PROTO_HEADER_SIZE + 1)

/* Bytes of message one fragment carries in a queue of msgsize bytes (0:
 * the queue is too small for fragments). */
static inline size_t frag_chunk(long msgsize)
{
	return msgsize > FRAG_OVERHEAD + PROTO_HEADER_SIZE
		       ? (size_t)msgsize - FRAG_OVERHEAD
		       : 0;
}

/*
 * The rules of a FRAGMENT frame, run by proto_decode() once the framing
 * is sound.  A data fragment: token (message id) != 0, 0 < timestamp
 * (total) <= FRAG_TOTAL_MAX, a non-empty piece that ends within total,
 * the first one (seq 0) holding at least the whole inner header, status
 * 0.  A limit declaration: token 0, no payload, 0 < seq <=
 * FRAG_TOTAL_MAX (the largest payload its sender takes),
 * timestamp 0.  No topic, no key, no flags.  Returns 0 or a negated
 * proto_error.
 */
int frag_check(const struct proto_header *h);

/*
 * Encodes into buf the fragment of message id that carries len bytes at
 * data, found at offset off of a whole message of total bytes, for mq
 * priority prio.  Returns the frame's length, or a negated proto_error.
 */
int frag_encode(void *buf, size_t cap, uint32_t id, size_t off,
		size_t total, unsigned prio, const void *data, size_t len);

/*
 * Writes the FRAG_OVERHEAD bytes of a fragment's header (and the NUL of
 * its empty topic) at at, for a piece of len bytes that follows them: a
 * sender that holds the whole message in one buffer writes them just
 * before the piece (saving what was there) and sends without a copy.
 */
void frag_header(void *at, uint32_t id, size_t off, size_t total,
		 unsigned prio, size_t len);

/* Encodes a limit declaration: its sender takes payloads up to limit
 * bytes. */
int frag_encode_limit(void *buf, size_t cap, size_t limit);

/* Whether fragment pm continues a message id of total bytes of which
 * have are in: same id and total, and the next offset. */
bool frag_continues(const struct proto_msg *pm, uint32_t id, size_t total,
		    size_t have);

/*
 * Whether a reassembled message of this type may be made of fragments:
 * what a client sends (PUBLISH, REQUEST, REPLY) or the daemon delivers
 * (DELIVER, REPLY).  Never a FRAGMENT inside a FRAGMENT.
 */
bool frag_type_ok(unsigned type);

#endif
