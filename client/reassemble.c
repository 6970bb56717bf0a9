/* SPDX-License-Identifier: MIT */
/*
 * reassemble.c - sending a message in pieces, and putting together the
 * pieces the daemon sends.  See reassemble.h.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "client/reassemble.h"
#include "proto/frag.h"
#include "proto/proto.h"

static void drop_partial(struct reasm *r)
{
	if (r->id)
		r->incomplete++;
	free(r->buf);
	r->buf = NULL;
	r->id = 0;
	r->total = r->have = 0;
}

/* A first piece: what is in progress is given up (the daemon stopped
 * sending it), and the new one is checked against our limit. */
static int reasm_start(struct reasm *r, const struct proto_msg *pm,
		       size_t limit, size_t room)
{
	struct proto_header inner;

	drop_partial(r);
	memcpy(&inner, pm->payload, sizeof(inner));
	if (inner.payload_len > limit) {
		r->skip_id = pm->h.token;
		r->refused++;
		return -EMSGSIZE;
	}
	r->buf = malloc(room + pm->h.timestamp + 1);
	if (!r->buf)
		return -ENOMEM;
	r->room = room;
	r->id = pm->h.token;
	r->total = pm->h.timestamp;
	r->have = 0;
	return 0;
}

int reasm_add(struct reasm *r, const struct proto_msg *pm, size_t limit,
	      size_t room, const unsigned char **ret_buf, size_t *ret_len)
{
	int e;

	reasm_release(r);
	if (pm->h.token == 0)
		return 0; /* a limit declaration is not for us */
	if (pm->h.seq == 0) {
		e = reasm_start(r, pm, limit, room);
		if (e < 0)
			return e;
	} else if (pm->h.token == r->skip_id && !r->id) {
		return 0;
	} else if (!r->id || !frag_continues(pm, r->id, r->total, r->have)) {
		drop_partial(r);
		return -EBADMSG;
	}
	memcpy(r->buf + r->room + r->have, pm->payload, pm->h.payload_len);
	r->have += pm->h.payload_len;
	if (r->have < r->total)
		return 0;
	r->done = r->buf;
	*ret_buf = r->buf + r->room;
	*ret_len = r->total;
	r->buf = NULL;
	r->id = 0;
	return 1;
}

void *reasm_steal(struct reasm *r)
{
	void *p = r->done;

	r->done = NULL;
	return p;
}

void reasm_release(struct reasm *r)
{
	free(r->done);
	r->done = NULL;
}

void reasm_reset(struct reasm *r)
{
	reasm_release(r);
	free(r->buf);
	r->buf = NULL;
	r->id = 0;
	r->total = r->have = 0;
}

int reasm_send(unsigned char *msg, size_t len, uint32_t id, long msgsize,
	       unsigned prio, reasm_send_fn send, void *ctx)
{
	size_t chunk = frag_chunk(msgsize), off;
	unsigned char save[FRAG_OVERHEAD];
	int e;

	if (chunk == 0)
		return -EMSGSIZE;
	for (off = 0; off < len; off += chunk) {
		size_t n = len - off < chunk ? len - off : chunk;
		unsigned char *at;

		if (off == 0) {
			/* the first piece: its header goes in front of the
			 * message, which has no room there; sent from a
			 * copy of the piece */
			unsigned char *copy = malloc(FRAG_OVERHEAD + n);

			if (!copy)
				return -ENOMEM;
			memcpy(copy + FRAG_OVERHEAD, msg, n);
			frag_header(copy, id, 0, len, prio, n);
			e = send(ctx, copy, FRAG_OVERHEAD + n, prio);
			free(copy);
		} else {
			at = msg + off - FRAG_OVERHEAD;
			memcpy(save, at, FRAG_OVERHEAD);
			frag_header(at, id, off, len, prio, n);
			e = send(ctx, at, FRAG_OVERHEAD + n, prio);
			memcpy(at, save, FRAG_OVERHEAD);
		}
		if (e < 0)
			return e;
	}
	return 0;
}
