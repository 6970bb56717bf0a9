/* SPDX-License-Identifier: MIT */
/*
 * fuzz_proto.c - libFuzzer target of the wire decoder (proto/proto.c).
 *
 * Every byte the daemon reads from a client queue goes through
 * proto_decode() first, so the input is one message exactly as it would
 * come out of mq_receive().  Besides what ASan and UBSan catch, the target
 * checks what the decoder promises: a message it accepts encodes back to
 * the very same bytes (nothing was read that the lengths do not cover,
 * nothing was accepted that the encoder would write differently), its
 * topic and key pass the validators the decoder used, and the validators
 * agree with each other (a topic is a pattern without wildcards).  A
 * broken promise aborts, which libFuzzer reports like a crash.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/frag.h"
#include "proto/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                   \
	do {                                                               \
		if (!(cond)) {                                             \
			fprintf(stderr, "fuzz_proto: broken: %s (%s:%d)\n", \
				#cond, __FILE__, __LINE__);                \
			abort();                                           \
		}                                                          \
	} while (0)

/* A decoded message encodes back to exactly the bytes it came from. */
static void fuzz_roundtrip(const uint8_t *data, size_t size,
			   const struct proto_msg *m)
{
	static unsigned char out[65536 + PROTO_HEADER_SIZE + 1024];
	int n;

	if (size > sizeof(out))
		return;
	/* a head whose payload is in a memory file: no payload here */
	if (m->h.shm_tag)
		n = proto_encode_head(out, sizeof(out), &m->h, m->topic,
				      m->key, m->h.payload_len);
	else
		n = proto_encode_key(out, sizeof(out), &m->h, m->topic,
				     m->key, m->payload, m->h.payload_len);
	FUZZ_CHECK(n >= 0);
	/* an origin block after the payload encodes on its own */
	if (m->origin) {
		struct proto_origin o;
		int k;

		FUZZ_CHECK(m->h.type == PROTO_DELIVER &&
			   (m->h.flags & PROTO_F_ORIGIN));
		FUZZ_CHECK(proto_origin_decode(m->origin, m->h.origin_len,
					       &o) == 0);
		FUZZ_CHECK(*o.bridge && strlen(o.user) <= PROTO_ORIGIN_USER_MAX &&
			   strlen(o.host) <= PROTO_ORIGIN_HOST_MAX &&
			   strlen(o.bridge) <= PROTO_ORIGIN_BRIDGE_MAX);
		k = proto_origin_encode(out + n, sizeof(out) - (size_t)n, &o);
		FUZZ_CHECK(k > 0 && (uint32_t)k == m->h.origin_len);
		n += k;
	} else {
		FUZZ_CHECK(m->h.origin_len == 0);
	}
	FUZZ_CHECK((size_t)n == size);
	FUZZ_CHECK(memcmp(out, data, size) == 0);
}

/* What an accepted message is known to satisfy. */
static void fuzz_accepted(const uint8_t *data, size_t size,
			  const struct proto_msg *m)
{
	FUZZ_CHECK(m->h.magic == PROTO_MAGIC);
	FUZZ_CHECK(m->h.version == PROTO_VERSION);
	FUZZ_CHECK((m->h.type >= 1 && m->h.type <= PROTO_TYPE_MAX) ||
		   m->h.type == PROTO_FRAGMENT);
	FUZZ_CHECK((m->h.flags & ~PROTO_F_ALL) == 0);
	FUZZ_CHECK(strlen(m->topic) == m->h.topic_len);
	FUZZ_CHECK(strlen(m->key) == m->h.key_len);
	/* a payload in a memory file: only the head is here, of a type
	 * that may have one, at least PROTO_SHM_MIN bytes, no origin */
	FUZZ_CHECK(!m->h.shm_tag == !(m->h.flags & PROTO_F_SHM &&
				       proto_type_shm(m->h.type)));
	if (m->h.shm_tag) {
		FUZZ_CHECK(m->payload == NULL && m->origin == NULL &&
			   m->h.payload_len >= PROTO_SHM_MIN);
		FUZZ_CHECK(size == proto_size_key(m->h.topic_len,
						  m->h.key_len, 0));
	} else {
		FUZZ_CHECK(size == proto_size_key(m->h.topic_len,
						  m->h.key_len,
						  m->h.payload_len) +
				       m->h.origin_len);
		FUZZ_CHECK((const uint8_t *)m->payload + m->h.payload_len +
				   m->h.origin_len ==
			   data + size);
	}
	/* an origin block only on a DELIVER with its flag, and then right
	 * after the payload, 16..PROTO_ORIGIN_MAX bytes */
	FUZZ_CHECK(!m->origin == !m->h.origin_len);
	if (m->origin)
		FUZZ_CHECK(m->h.type == PROTO_DELIVER &&
			   (m->h.flags & PROTO_F_ORIGIN) &&
			   !(m->h.flags & PROTO_F_DROPS) &&
			   (const uint8_t *)m->origin ==
				   (const uint8_t *)m->payload +
					   m->h.payload_len &&
			   m->h.origin_len >= 16 &&
			   m->h.origin_len <= PROTO_ORIGIN_MAX);
	if (m->h.key_len)
		FUZZ_CHECK(proto_key_valid(m->key, m->h.key_len));
	switch (m->h.type) {
	case PROTO_PUBLISH:
	case PROTO_DELIVER:
	case PROTO_REQUEST:
	case PROTO_TIMER_ADD:
		FUZZ_CHECK(proto_topic_valid(m->topic, m->h.topic_len, false));
		FUZZ_CHECK(m->h.priority <= PROTO_PRIO_MAX);
		break;
	case PROTO_SUBSCRIBE:
	case PROTO_UNSUBSCRIBE:
		FUZZ_CHECK(proto_topic_valid(m->topic, m->h.topic_len, true));
		break;
	case PROTO_ANNOUNCE:
	case PROTO_HELLO:
		FUZZ_CHECK(proto_qname_valid(m->topic, m->h.topic_len));
		break;
	case PROTO_QUERY:
		FUZZ_CHECK(proto_query_name(m->h.status) != NULL);
		break;
	case PROTO_FRAGMENT:
		/* a piece lies within its message, the first holds the
		 * inner header; a limit declaration carries nothing */
		FUZZ_CHECK(m->h.topic_len == 0 && m->h.flags == 0);
		if (m->h.token == 0) {
			FUZZ_CHECK(m->h.payload_len == 0 && m->h.seq > 0);
			break;
		}
		FUZZ_CHECK(m->h.payload_len > 0);
		FUZZ_CHECK(m->h.timestamp <= FRAG_TOTAL_MAX);
		FUZZ_CHECK(m->h.seq + m->h.payload_len <= m->h.timestamp);
		if (m->h.seq == 0)
			FUZZ_CHECK(m->h.payload_len >= PROTO_HEADER_SIZE);
		break;
	default:
		break;
	}
	FUZZ_CHECK(strcmp(proto_type_name(m->h.type), "unknown") != 0);
	fuzz_roundtrip(data, size, m);
}

/* The validators on the raw bytes, and how they relate. */
static void fuzz_validators(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	size_t len = size < 300 ? size : 300;
	bool topic = proto_topic_valid(s, len, false);
	bool pattern = proto_topic_valid(s, len, true);

	/* every topic is a pattern; a pattern without wildcards is a topic */
	if (topic)
		FUZZ_CHECK(pattern);
	if (pattern && !memchr(s, '+', len) && !memchr(s, '#', len))
		FUZZ_CHECK(topic);
	if (topic || pattern)
		FUZZ_CHECK(len >= 1 && len <= PROTO_TOPIC_MAX);
	if (proto_group_valid(s, len))
		FUZZ_CHECK(proto_key_valid(s, len));
	if (proto_qname_valid(s, len))
		FUZZ_CHECK(len >= 2 && s[0] == '/');
}

/* An accepted frame: its parts come out, status of them, and each one
 * returned is a PUBLISH or a DELIVER that passed the decoder itself. */
static void fuzz_frame(const struct proto_msg *f)
{
	struct proto_msg part;
	size_t off = 0, prev = 0;
	uint32_t n = 0;
	int r;

	while ((r = proto_batch_next(f, &off, &part)) != 0) {
		FUZZ_CHECK(off > prev && off <= f->h.payload_len);
		prev = off;
		n++;
		if (r < 0)
			continue;
		FUZZ_CHECK(r == 1);
		FUZZ_CHECK(part.h.type == PROTO_PUBLISH ||
			   part.h.type == PROTO_DELIVER);
	}
	FUZZ_CHECK(n == f->h.status);
	FUZZ_CHECK(off == f->h.payload_len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proto_msg m, untouched;
	int r;

	memset(&m, 0xa5, sizeof(m));
	memcpy(&untouched, &m, sizeof(m));
	r = proto_decode(data, size, &m);
	if (r == 0) {
		fuzz_accepted(data, size, &m);
		if (m.h.type == PROTO_BATCH)
			fuzz_frame(&m);
	} else {
		/* every refusal is one of the decoder's own errors */
		FUZZ_CHECK(r <= -PROTO_E_SHORT && r >= -PROTO_E_KEY);
		FUZZ_CHECK(r != -PROTO_E_NOSPACE);
		FUZZ_CHECK(proto_strerror(r) != NULL);
		/* and leaves what it was to fill as it was */
		FUZZ_CHECK(memcmp(&m, &untouched, sizeof(m)) == 0);
	}
	fuzz_validators(data, size);
	return 0;
}
