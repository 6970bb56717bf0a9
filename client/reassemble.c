/* SPDX-License-Identifier: MIT */
/*
 * reassemble.c - sending a message in pieces, and putting together the
 * pieces the daemon sends.  See reassemble.h.
 */
#include <errno.h>
#include <stdbool.h>
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
 * sending it), and the new one is checked against our limit.  The
 * buffer has msgsize bytes behind the message, so that any later piece
 * can be read straight into its place (reasm_slot()). */
static int reasm_start(struct reasm *r, const struct proto_msg *pm,
		       size_t limit, size_t room, long msgsize)
{
	struct proto_header inner;

	drop_partial(r);
	memcpy(&inner, pm->payload, sizeof(inner));
	if (inner.payload_len > limit) {
		r->skip_id = pm->h.token;
		r->refused++;
		return -EMSGSIZE;
	}
	r->buf = malloc(room + pm->h.timestamp + (size_t)msgsize + 1);
	if (!r->buf)
		return -ENOMEM;
	r->room = room;
	r->msgsize = msgsize;
	r->id = pm->h.token;
	r->total = pm->h.timestamp;
	r->have = 0;
	return 0;
}

/* The piece just added made the message whole: it is handed out. */
static int reasm_whole(struct reasm *r, const unsigned char **ret_buf,
		       size_t *ret_len)
{
	r->done = r->buf;
	*ret_buf = r->buf + r->room;
	*ret_len = r->total;
	r->buf = NULL;
	r->id = 0;
	return 1;
}

int reasm_add(struct reasm *r, const struct proto_msg *pm, size_t limit,
	      size_t room, long msgsize, const unsigned char **ret_buf,
	      size_t *ret_len)
{
	int e;

	reasm_release(r);
	if (pm->h.token == 0)
		return 0; /* a limit declaration is not for us */
	if (pm->h.seq == 0) {
		e = reasm_start(r, pm, limit, room, msgsize);
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
	return reasm_whole(r, ret_buf, ret_len);
}

unsigned char *reasm_slot(struct reasm *r, long msgsize)
{
	unsigned char *at;

	/* the buffer was made for pieces of at most this size */
	if (!r->id || msgsize > r->msgsize ||
	    r->room + r->have < FRAG_OVERHEAD)
		return NULL;
	at = r->buf + r->room + r->have - FRAG_OVERHEAD;
	memcpy(r->save, at, FRAG_OVERHEAD);
	return at;
}

int reasm_landed(struct reasm *r, unsigned char *at, ssize_t n,
		 unsigned char *buf, const unsigned char **ret_buf,
		 size_t *ret_len)
{
	struct proto_msg pm;
	bool ours = n >= (ssize_t)FRAG_OVERHEAD &&
		    proto_decode(at, (size_t)n, &pm) == 0 &&
		    pm.h.type == PROTO_FRAGMENT &&
		    frag_continues(&pm, r->id, r->total, r->have) &&
		    pm.payload == at + FRAG_OVERHEAD;

	if (!ours) {
		/* something else, or nothing: to the caller's buffer, and
		 * the bytes under it back */
		if (n > 0)
			memcpy(buf, at, (size_t)n);
		memcpy(at, r->save, FRAG_OVERHEAD);
		return -1;
	}
	memcpy(at, r->save, FRAG_OVERHEAD);
	r->have += pm.h.payload_len;
	if (r->have < r->total)
		return 0;
	return reasm_whole(r, ret_buf, ret_len);
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
		/* the first piece's header goes in the room in front */
		unsigned char *at = msg + off - FRAG_OVERHEAD;

		memcpy(save, at, FRAG_OVERHEAD);
		frag_header(at, id, off, len, prio, n);
		e = send(ctx, at, FRAG_OVERHEAD + n, prio);
		memcpy(at, save, FRAG_OVERHEAD);
		if (e < 0)
			return e;
	}
	return 0;
}
