/* SPDX-License-Identifier: MIT */
/*
 * frag.c - the FRAGMENT frame: its rules, its encoding and what a
 * reassembler checks of each piece.  See frag.h and PROTOCOL.md, "Large
 * messages".
 */
#include <string.h>

#include "proto/frag.h"
#include "proto/proto.h"

int frag_check(const struct proto_header *h)
{
	if (h->flags != 0)
		return -PROTO_E_FLAGS;
	if (h->topic_len != 0)
		return -PROTO_E_TOPIC;
	if (h->priority > PROTO_PRIO_MAX || h->status != 0)
		return -PROTO_E_FIELD;
	if (h->token == 0) {
		/* a limit declaration */
		if (h->payload_len != 0 || h->seq == 0 ||
		    h->seq > FRAG_TOTAL_MAX || h->timestamp != 0)
			return -PROTO_E_FIELD;
		return 0;
	}
	if (h->timestamp == 0 || h->timestamp > FRAG_TOTAL_MAX ||
	    h->payload_len == 0 || h->seq >= h->timestamp ||
	    h->payload_len > h->timestamp - h->seq)
		return -PROTO_E_FIELD;
	/* the first piece holds the inner header: a receiver learns what
	 * the message is (and whom to answer) from it alone */
	if (h->seq == 0 &&
	    (h->payload_len < PROTO_HEADER_SIZE ||
	     h->timestamp < PROTO_HEADER_SIZE + 1))
		return -PROTO_E_FIELD;
	return 0;
}

int frag_encode(void *buf, size_t cap, uint32_t id, size_t off,
		size_t total, unsigned prio, const void *data, size_t len)
{
	struct proto_header h;

	proto_header_init(&h, PROTO_FRAGMENT);
	h.token = id;
	h.priority = prio;
	h.seq = off;
	h.timestamp = total;
	return proto_encode(buf, cap, &h, NULL, data, len);
}

void frag_header(void *at, uint32_t id, size_t off, size_t total,
		 unsigned prio, size_t len)
{
	struct proto_header h;
	unsigned char *p = at;

	proto_header_init(&h, PROTO_FRAGMENT);
	h.token = id;
	h.priority = prio;
	h.seq = off;
	h.timestamp = total;
	h.payload_len = (uint32_t)len;
	memcpy(p, &h, sizeof(h));
	p[PROTO_HEADER_SIZE] = '\0';
}

int frag_encode_limit(void *buf, size_t cap, size_t limit)
{
	struct proto_header h;

	proto_header_init(&h, PROTO_FRAGMENT);
	h.seq = limit;
	return proto_encode(buf, cap, &h, NULL, NULL, 0);
}

bool frag_continues(const struct proto_msg *pm, uint32_t id, size_t total,
		    size_t have)
{
	return pm->h.token == id && pm->h.timestamp == total &&
	       pm->h.seq == have;
}

bool frag_type_ok(unsigned type)
{
	return type == PROTO_PUBLISH || type == PROTO_REQUEST ||
	       type == PROTO_REPLY || type == PROTO_DELIVER;
}
