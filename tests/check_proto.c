/* SPDX-License-Identifier: MIT */
/*
 * check_proto.c - unit tests of the wire format (proto/proto.c).
 *
 * The decoder is what stands between the daemon and whatever a client
 * writes into its queue, so besides round trips of every message type
 * these tests feed it each kind of malformed message and expect the
 * specific error PROTOCOL.md names for it, plus a seeded fuzz loop.  The
 * messages under test are copied into buffers of exactly their length so
 * that AddressSanitizer or valgrind catch any read past the end.
 */
#include <check.h>
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/frag.h"
#include "proto/proto.h"

#define CHECK_PROTO_BUF (PROTO_HEADER_SIZE + PROTO_TOPIC_MAX + 1 + 4096)

/* Overwrite one header field of an encoded message (buf may be unaligned). */
#define CHECK_PROTO_SET(buf, field, val)                                     \
	do {                                                                 \
		__typeof__(((struct proto_header *)0)->field) v_ = (val);    \
		memcpy((unsigned char *)(buf) +                              \
			       offsetof(struct proto_header, field),         \
		       &v_, sizeof(v_));                                     \
	} while (0)

/* Offset of shm_tag, the 4 bytes between origin_len and seq. */
#define CHECK_PROTO_PAD offsetof(struct proto_header, shm_tag)

/* A valid message of one type, with every field its type uses set. */
struct check_proto_sample {
	struct proto_header h;
	const char *topic;
	const char *key; /* NULL: none */
	const void *payload;
	size_t payload_len;
};

static const struct proto_welcome check_proto_welcome = {
	.daemon_pid = 4242,
	.max_priority = 15,
	.max_subscriptions = 1024,
	.pending_max = 256,
	.rx_maxmsg = 10,
	.rx_msgsize = 2048,
	.tx_maxmsg = 12,
	.tx_msgsize = 8192,
};

static const char check_proto_text[] = "already subscribed";
static const char check_proto_stats[] = "clients=3\nmessages=42\n";
/* Binary, with a NUL and high bytes: a payload is not a string. */
static const unsigned char check_proto_blob[] = { 0x32, 0x31, 0x00, 0x2e,
						   0x35, 0xff, 0x80, 0x0a };

static void check_proto_sample_get(unsigned type, struct check_proto_sample *s);

/*
 * The payload of a BATCH sample: two DELIVERs of priority 12, the second
 * with a gap of 1 and no key.  Built once from the DELIVER sample.
 */
static unsigned char check_proto_frame[1024];
static size_t check_proto_frame_len;

static void check_proto_frame_build(void)
{
	struct check_proto_sample d;
	unsigned char part[512];
	size_t used;
	int n;

	if (check_proto_frame_len)
		return;
	ck_assert_int_eq(proto_batch_begin(check_proto_frame,
					   sizeof(check_proto_frame), 12),
			 PROTO_BATCH_HEAD);
	used = PROTO_BATCH_HEAD;
	check_proto_sample_get(PROTO_DELIVER, &d);
	n = proto_encode_key(part, sizeof(part), &d.h, d.topic, d.key,
			     d.payload, d.payload_len);
	ck_assert_int_gt(n, 0);
	ck_assert_int_eq(proto_batch_add(check_proto_frame,
					 sizeof(check_proto_frame), &used,
					 part, (size_t)n), 0);
	d.h.status = 1;
	d.h.seq++;
	n = proto_encode(part, sizeof(part), &d.h, d.topic, d.payload,
			 d.payload_len);
	ck_assert_int_gt(n, 0);
	ck_assert_int_eq(proto_batch_add(check_proto_frame,
					 sizeof(check_proto_frame), &used,
					 part, (size_t)n), 0);
	check_proto_frame_len = used - PROTO_BATCH_HEAD;
}

static void check_proto_sample_get(unsigned type, struct check_proto_sample *s)
{
	memset(s, 0, sizeof(*s));
	proto_header_init(&s->h, (enum proto_type)type);
	s->topic = "";
	switch (type) {
	case PROTO_ANNOUNCE:
		s->topic = "/mqbus.1234.0.tx";
		break;
	case PROTO_HELLO:
		s->topic = "/mqbus.1234.0.rx";
		s->h.sender_pid = 1234;
		break;
	case PROTO_WELCOME:
		s->h.client_id = 7;
		s->payload = &check_proto_welcome;
		s->payload_len = sizeof(check_proto_welcome);
		break;
	case PROTO_PUBLISH:
		s->topic = "sensors/kitchen/temp";
		s->h.flags = PROTO_F_PRIORITY;
		s->h.priority = 10;
		s->payload = check_proto_blob;
		s->payload_len = sizeof(check_proto_blob);
		break;
	case PROTO_DELIVER:
		s->topic = "sensors/kitchen/temp";
		s->key = "probe:7";
		s->h.priority = 12;
		s->h.status = 3;
		s->h.sender_uid = 1000;
		s->h.sender_pid = 4321;
		s->h.client_id = 5;
		s->h.seq = 0x0102030405060708ull;
		s->h.timestamp = 1700000000123456789ull;
		s->payload = check_proto_blob;
		s->payload_len = sizeof(check_proto_blob);
		break;
	case PROTO_SUBSCRIBE:
		s->topic = "sensors/+/temp";
		s->h.token = 1;
		break;
	case PROTO_UNSUBSCRIBE:
		s->topic = "sensors/#";
		s->h.token = 2;
		break;
	case PROTO_ACK:
		s->h.token = 3;
		break;
	case PROTO_ERROR:
		s->h.token = 4;
		s->h.status = EEXIST;
		s->payload = check_proto_text;
		s->payload_len = strlen(check_proto_text);
		break;
	case PROTO_BYE:
		break;
	case PROTO_STATS:
		s->h.token = 5;
		s->payload = check_proto_stats;
		s->payload_len = strlen(check_proto_stats);
		break;
	case PROTO_REQUEST:
		s->topic = "svc/time";
		s->h.flags = PROTO_F_PRIORITY;
		s->h.priority = 9;
		s->h.token = 6;
		s->h.status = 2500;
		s->payload = check_proto_blob;
		s->payload_len = sizeof(check_proto_blob);
		break;
	case PROTO_TIMER_ADD:
		s->topic = "clock/tick";
		s->key = "k";
		s->h.flags = PROTO_F_DETACHED | PROTO_F_PRIORITY;
		s->h.priority = 3;
		s->h.token = 8;
		s->h.seq = 250;
		s->h.timestamp = 1000;
		s->payload = check_proto_blob;
		s->payload_len = sizeof(check_proto_blob);
		break;
	case PROTO_TIMER_CANCEL:
		s->h.token = 9;
		s->h.seq = 42;
		break;
	case PROTO_TIMER_LIST:
		s->h.token = 10;
		s->payload = check_proto_stats;
		s->payload_len = strlen(check_proto_stats);
		break;
	case PROTO_QUERY:
		/* an answer part with more to come: the fuzz loop reaches
		 * the topic, the flag and the status from here */
		s->topic = "sensors/kitchen/temp";
		s->h.flags = PROTO_F_MORE;
		s->h.token = 11;
		s->h.status = PROTO_QUERY_TOPICS;
		s->h.seq = 42;
		s->payload = check_proto_stats;
		s->payload_len = strlen(check_proto_stats);
		break;
	case PROTO_REPLY:
		s->h.token = 7;
		s->h.sender_uid = 1000;
		s->h.sender_pid = 4321;
		s->h.client_id = 5;
		s->payload = check_proto_blob;
		s->payload_len = sizeof(check_proto_blob);
		break;
	case PROTO_BATCH:
		check_proto_frame_build();
		s->h.priority = 12;
		s->h.status = 2;
		s->payload = check_proto_frame + PROTO_BATCH_HEAD;
		s->payload_len = check_proto_frame_len;
		break;
	default:
		ck_abort_msg("no sample for type %u", type);
	}
}

/* Encode s into buf and check the returned length. */
static size_t check_proto_encode(void *buf, size_t cap,
				 const struct check_proto_sample *s)
{
	int n = proto_encode_key(buf, cap, &s->h, s->topic, s->key, s->payload,
				 s->payload_len);

	ck_assert_int_gt(n, 0);
	ck_assert_uint_eq((size_t)n,
			  proto_size_key(strlen(s->topic),
					 s->key ? strlen(s->key) : 0,
					 s->payload_len));
	return (size_t)n;
}

/*
 * Build a message by hand, so that topics proto_encode() cannot express
 * (an embedded NUL) can be sent too.  Returns the length.
 */
static size_t check_proto_raw(unsigned char *buf, struct proto_header h,
			      const char *topic, size_t topic_len,
			      const void *payload, size_t payload_len)
{
	ck_assert_uint_le(proto_size(topic_len, payload_len), CHECK_PROTO_BUF);
	h.topic_len = (uint16_t)topic_len;
	h.payload_len = (uint32_t)payload_len;
	memcpy(buf, &h, sizeof(h));
	if (topic_len > 0)
		memcpy(buf + PROTO_HEADER_SIZE, topic, topic_len);
	buf[PROTO_HEADER_SIZE + topic_len] = '\0';
	if (payload_len > 0)
		memcpy(buf + PROTO_HEADER_SIZE + topic_len + 1, payload,
		       payload_len);
	return proto_size(topic_len, payload_len);
}

/*
 * Decode len bytes of buf from a copy of exactly len bytes, so a read past
 * the end is caught.  On failure also checks ret was left untouched.
 */
static int check_proto_decode(const void *buf, size_t len)
{
	unsigned char *copy = malloc(len ? len : 1);
	struct proto_msg msg, before;
	int r;

	ck_assert_ptr_nonnull(copy);
	if (len > 0)
		memcpy(copy, buf, len);
	memset(&msg, 0x5a, sizeof(msg));
	memcpy(&before, &msg, sizeof(msg));
	r = proto_decode(copy, len, &msg);
	if (r != 0)
		ck_assert_int_eq(memcmp(&msg, &before, sizeof(msg)), 0);
	free(copy);
	return r;
}

/* Decode a hand-built message of type with the given topic and payload. */
static int check_proto_decode_raw(const struct proto_header *h,
				  const char *topic, size_t topic_len,
				  const void *payload, size_t payload_len)
{
	static unsigned char buf[CHECK_PROTO_BUF];
	size_t n = check_proto_raw(buf, *h, topic, topic_len, payload,
				   payload_len);

	return check_proto_decode(buf, n);
}

/* Decode a message of type with a C-string topic and no payload. */
static int check_proto_decode_topic(unsigned type, const char *topic)
{
	struct check_proto_sample s;

	check_proto_sample_get(type, &s);
	return check_proto_decode_raw(&s.h, topic, strlen(topic), s.payload,
				      s.payload_len);
}

static bool check_proto_is_error(int r)
{
	return (r <= -PROTO_E_SHORT && r >= -PROTO_E_FIELD) ||
	       r == -PROTO_E_KEY;
}

START_TEST(check_proto_header_init)
{
	struct proto_header h;
	static const unsigned char zero[PROTO_HEADER_SIZE];

	memset(&h, 0xa5, sizeof(h));
	proto_header_init(&h, PROTO_PUBLISH);
	ck_assert_uint_eq(h.magic, PROTO_MAGIC);
	ck_assert_uint_eq(h.version, PROTO_VERSION);
	ck_assert_uint_eq(h.type, PROTO_PUBLISH);
	/* Everything after type is zero. */
	ck_assert_int_eq(memcmp((unsigned char *)&h + 6, zero,
				sizeof(h) - 6),
			 0);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	/* The magic spells "MQB1" in memory on a little-endian host. */
	ck_assert_int_eq(memcmp(&h.magic, "MQB1", 4), 0);
#endif
}
END_TEST

/* Encode and decode each type (the loop index is the type). */
START_TEST(check_proto_roundtrip)
{
	unsigned type = (unsigned)_i;
	struct check_proto_sample s;
	unsigned char buf[CHECK_PROTO_BUF];
	struct proto_msg m;
	size_t n, tlen;

	check_proto_sample_get(type, &s);
	tlen = strlen(s.topic);
	n = check_proto_encode(buf, sizeof(buf), &s);
	memset(&m, 0, sizeof(m));
	ck_assert_int_eq(proto_decode(buf, n, &m), 0);

	ck_assert_uint_eq(m.h.magic, PROTO_MAGIC);
	ck_assert_uint_eq(m.h.version, PROTO_VERSION);
	ck_assert_uint_eq(m.h.type, type);
	ck_assert_uint_eq(m.h.flags, s.h.flags);
	ck_assert_uint_eq(m.h.topic_len, tlen);
	ck_assert_uint_eq(m.h.key_len, s.key ? strlen(s.key) : 0);
	ck_assert_str_eq(m.key, s.key ? s.key : "");
	ck_assert_uint_eq(m.h.payload_len, s.payload_len);
	ck_assert_uint_eq(m.h.priority, s.h.priority);
	ck_assert_uint_eq(m.h.token, s.h.token);
	ck_assert_uint_eq(m.h.status, s.h.status);
	ck_assert_uint_eq(m.h.sender_uid, s.h.sender_uid);
	ck_assert_uint_eq(m.h.sender_pid, s.h.sender_pid);
	ck_assert_uint_eq(m.h.client_id, s.h.client_id);
	ck_assert_uint_eq(m.h.origin_len, 0);
	ck_assert_uint_eq(m.h.shm_tag, 0);
	ck_assert_uint_eq(m.h.seq, s.h.seq);
	ck_assert_uint_eq(m.h.timestamp, s.h.timestamp);

	/* topic and payload point into buf, topic at its NUL-ended bytes. */
	ck_assert_ptr_eq(m.topic, (const char *)buf + PROTO_HEADER_SIZE);
	ck_assert_str_eq(m.topic, s.topic);
	ck_assert_uint_eq(strlen(m.topic), tlen);
	if (s.key) {
		/* the key and its NUL between topic and payload */
		size_t klen = strlen(s.key);

		ck_assert_ptr_eq(m.key, (const char *)buf + PROTO_HEADER_SIZE +
						tlen + 1);
		ck_assert_ptr_eq(m.payload, buf + PROTO_HEADER_SIZE + tlen +
						    1 + klen + 1);
		ck_assert_uint_eq(PROTO_HEADER_SIZE + tlen + 1 + klen + 1 +
					  s.payload_len,
				  n);
	} else {
		ck_assert_ptr_eq(m.payload, buf + PROTO_HEADER_SIZE + tlen + 1);
		ck_assert_uint_eq(PROTO_HEADER_SIZE + tlen + 1 + s.payload_len,
				  n);
	}
	if (s.payload_len > 0)
		ck_assert_int_eq(memcmp(m.payload, s.payload, s.payload_len),
				 0);

	if (type == PROTO_WELCOME) {
		struct proto_welcome w;

		/* The payload is at an odd offset: copy it out. */
		memcpy(&w, m.payload, sizeof(w));
		ck_assert_uint_eq(w.daemon_pid, check_proto_welcome.daemon_pid);
		ck_assert_uint_eq(w.max_priority,
				  check_proto_welcome.max_priority);
		ck_assert_uint_eq(w.max_subscriptions,
				  check_proto_welcome.max_subscriptions);
		ck_assert_uint_eq(w.pending_max,
				  check_proto_welcome.pending_max);
		ck_assert_int_eq(w.rx_maxmsg, check_proto_welcome.rx_maxmsg);
		ck_assert_int_eq(w.rx_msgsize, check_proto_welcome.rx_msgsize);
		ck_assert_int_eq(w.tx_maxmsg, check_proto_welcome.tx_maxmsg);
		ck_assert_int_eq(w.tx_msgsize, check_proto_welcome.tx_msgsize);
	}
}
END_TEST

START_TEST(check_proto_roundtrip_unaligned)
{
	unsigned char store[CHECK_PROTO_BUF + 8];
	struct check_proto_sample s;
	struct proto_msg m;
	size_t off, n;

	check_proto_sample_get(PROTO_DELIVER, &s);
	for (off = 1; off < 8; off++) {
		n = check_proto_encode(store + off, sizeof(store) - off, &s);
		ck_assert_int_eq(proto_decode(store + off, n, &m), 0);
		ck_assert_uint_eq(m.h.seq, s.h.seq);
		ck_assert_uint_eq(m.h.timestamp, s.h.timestamp);
		ck_assert_ptr_eq(m.topic, (const char *)store + off + 64);
		ck_assert_str_eq(m.topic, s.topic);
	}
}
END_TEST

START_TEST(check_proto_roundtrip_limits)
{
	unsigned char buf[CHECK_PROTO_BUF];
	char topic[PROTO_TOPIC_MAX + 1];
	unsigned char big[4096];
	struct check_proto_sample s;
	struct proto_msg m;
	size_t i, n;

	/* The longest topic, with levels, and a large payload. */
	for (i = 0; i < PROTO_TOPIC_MAX; i++)
		topic[i] = i % 8 == 7 ? '/' : (char)('a' + i % 26);
	topic[PROTO_TOPIC_MAX] = '\0';
	for (i = 0; i < sizeof(big); i++)
		big[i] = (unsigned char)(i * 7);
	check_proto_sample_get(PROTO_PUBLISH, &s);
	s.topic = topic;
	s.payload = big;
	s.payload_len = sizeof(big);
	s.h.priority = PROTO_PRIO_MAX;
	n = check_proto_encode(buf, sizeof(buf), &s);
	ck_assert_uint_eq(n, sizeof(buf));
	ck_assert_int_eq(check_proto_decode(buf, n), 0);
	ck_assert_int_eq(proto_decode(buf, n, &m), 0);
	ck_assert_uint_eq(m.h.topic_len, PROTO_TOPIC_MAX);
	ck_assert_str_eq(m.topic, topic);
	ck_assert_uint_eq(m.h.payload_len, sizeof(big));
	ck_assert_int_eq(memcmp(m.payload, big, sizeof(big)), 0);
	ck_assert_uint_eq(m.h.priority, PROTO_PRIO_MAX);

	/* A NULL ret only validates. */
	ck_assert_int_eq(proto_decode(buf, n, NULL), 0);
}
END_TEST

/*
 * Heads whose payload is elsewhere (PROTOCOL.md, Memory files and Memory
 * areas): a tag exactly with PROTO_F_SHM on the four types that may
 * carry one, at least PROTO_SHM_MIN bytes of payload, the frame ending
 * after the topic; PROTO_F_AREA only with PROTO_F_SHM.
 */
START_TEST(check_proto_shm_heads)
{
	static const struct {
		uint8_t type;
		uint16_t flags;
		uint32_t tag, len;
		int want;
	} cases[] = {
		{ PROTO_PUBLISH, PROTO_F_SHM, 1, PROTO_SHM_MIN, 0 },
		{ PROTO_DELIVER, PROTO_F_SHM, 7, 1u << 20, 0 },
		{ PROTO_REPLY, PROTO_F_SHM, 2, 200000, 0 },
		{ PROTO_PUBLISH, PROTO_F_SHM | PROTO_F_AREA, 5 << 8, 1u << 20,
		  0 },
		{ PROTO_DELIVER, PROTO_F_SHM | PROTO_F_AREA, (5 << 8) | 3,
		  65536, 0 },
		{ PROTO_PUBLISH, PROTO_F_SHM, 1, PROTO_SHM_MIN - 1,
		  -PROTO_E_FIELD },
		{ PROTO_PUBLISH, PROTO_F_SHM, 0, PROTO_SHM_MIN,
		  -PROTO_E_FLAGS },
		{ PROTO_PUBLISH, 0, 1, PROTO_SHM_MIN, -PROTO_E_FLAGS },
		{ PROTO_PUBLISH, PROTO_F_AREA, 0, 0, -PROTO_E_FLAGS },
		{ PROTO_PUBLISH, PROTO_F_AREA, 1, PROTO_SHM_MIN,
		  -PROTO_E_FLAGS },
		{ PROTO_SUBSCRIBE, PROTO_F_SHM | PROTO_F_AREA, 1,
		  PROTO_SHM_MIN, -PROTO_E_FLAGS },
		{ PROTO_ANNOUNCE, PROTO_F_SHM | PROTO_F_AREA, 0, 0,
		  -PROTO_E_FLAGS },
	};
	unsigned char buf[CHECK_PROTO_BUF];
	struct proto_header h;
	struct proto_msg m;
	size_t i;
	int n;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *topic = cases[i].type == PROTO_REPLY ? ""
								 : "big/one";

		proto_header_init(&h, cases[i].type);
		h.token = 9; /* a REPLY's */
		n = proto_encode(buf, sizeof(buf), &h, topic, NULL, 0);
		ck_assert_int_gt(n, 0);
		/* the fields a head of a payload elsewhere has */
		memcpy(&h, buf, sizeof(h));
		h.flags = cases[i].flags;
		h.shm_tag = cases[i].tag;
		h.payload_len = cases[i].len;
		memcpy(buf, &h, sizeof(h));
		ck_assert_msg(proto_decode(buf, (size_t)n, &m) ==
				      cases[i].want,
			      "case %zu: %d, expected %d", i,
			      proto_decode(buf, (size_t)n, &m),
			      cases[i].want);
		if (cases[i].want == 0) {
			ck_assert_uint_eq(m.h.shm_tag, cases[i].tag);
			ck_assert_uint_eq(m.h.payload_len, cases[i].len);
		}
	}
}
END_TEST

START_TEST(check_proto_encode_fields)
{
	unsigned char buf[CHECK_PROTO_BUF];
	struct proto_header h, copy;
	struct proto_msg m;
	int n;

	/* Garbage in the header's reserved and length fields. */
	memset(&h, 0xa5, sizeof(h));
	h.magic = PROTO_MAGIC;
	h.version = PROTO_VERSION;
	h.type = PROTO_BYE;
	h.flags = 0;
	h.origin_len = 0;
	h.shm_tag = 0;
	copy = h;
	n = proto_encode(buf, sizeof(buf), &h, NULL, NULL, 0);
	ck_assert_int_eq(n, PROTO_HEADER_SIZE + 1);
	/* h itself is not changed. */
	ck_assert_uint_eq(h.topic_len, copy.topic_len);
	ck_assert_uint_eq(h.payload_len, copy.payload_len);
	/* The wire copy has the real lengths. */
	ck_assert_int_eq(proto_decode(buf, (size_t)n, &m), 0);
	ck_assert_uint_eq(m.h.topic_len, 0);
	ck_assert_uint_eq(m.h.key_len, 0);
	ck_assert_uint_eq(m.h.payload_len, 0);
	ck_assert_uint_eq(m.h.token, 0xa5a5a5a5u);
	ck_assert_str_eq(m.topic, "");
	ck_assert_ptr_eq(m.topic, (const char *)buf + PROTO_HEADER_SIZE);
	ck_assert_ptr_eq(m.payload, buf + PROTO_HEADER_SIZE + 1);

	/* A payload pointer without a length is fine; the reverse is not. */
	ck_assert_int_eq(proto_encode(buf, sizeof(buf), &h, "", buf, 0),
			 PROTO_HEADER_SIZE + 1);
	ck_assert_int_eq(proto_encode(buf, sizeof(buf), &h, "", NULL, 1),
			 -EINVAL);
	ck_assert_int_eq(proto_encode(buf, sizeof(buf), &h, "", buf,
				      (size_t)INT_MAX),
			 -EMSGSIZE);
}
END_TEST

START_TEST(check_proto_encode_nospace)
{
	unsigned char buf[CHECK_PROTO_BUF];
	struct check_proto_sample s;
	size_t n, i;

	check_proto_sample_get(PROTO_PUBLISH, &s);
	n = proto_size(strlen(s.topic), s.payload_len);

	/* One byte short: refused, and nothing written. */
	memset(buf, 0xee, sizeof(buf));
	ck_assert_int_eq(proto_encode(buf, n - 1, &s.h, s.topic, s.payload,
				      s.payload_len),
			 -PROTO_E_NOSPACE);
	for (i = 0; i < sizeof(buf); i++)
		ck_assert_uint_eq(buf[i], 0xee);
	ck_assert_int_eq(proto_encode(buf, PROTO_HEADER_SIZE, &s.h, s.topic,
				      s.payload, s.payload_len),
			 -PROTO_E_NOSPACE);
	ck_assert_int_eq(proto_encode(NULL, 0, &s.h, s.topic, s.payload,
				      s.payload_len),
			 -PROTO_E_NOSPACE);

	/* Exactly enough: fits, and the byte after is untouched. */
	ck_assert_int_eq(proto_encode(buf, n, &s.h, s.topic, s.payload,
				      s.payload_len),
			 (int)n);
	ck_assert_uint_eq(buf[n], 0xee);
	ck_assert_int_eq(check_proto_decode(buf, n), 0);
}
END_TEST

START_TEST(check_proto_encode_toobig)
{
	unsigned char buf[CHECK_PROTO_BUF + 16];
	char topic[PROTO_TOPIC_MAX + 2];
	struct proto_header h;

	proto_header_init(&h, PROTO_PUBLISH);
	memset(topic, 'a', sizeof(topic));
	topic[PROTO_TOPIC_MAX + 1] = '\0';
	ck_assert_uint_eq(strlen(topic), 256);
	ck_assert_int_eq(proto_encode(buf, sizeof(buf), &h, topic, NULL, 0),
			 -PROTO_E_TOOBIG);
	/* Too big wins over a small buffer: it can never be sent. */
	ck_assert_int_eq(proto_encode(buf, 1, &h, topic, NULL, 0),
			 -PROTO_E_TOOBIG);
	topic[PROTO_TOPIC_MAX] = '\0';
	ck_assert_int_eq(proto_encode(buf, sizeof(buf), &h, topic, NULL, 0),
			 (int)proto_size(PROTO_TOPIC_MAX, 0));
}
END_TEST

START_TEST(check_proto_short)
{
	unsigned char buf[CHECK_PROTO_BUF];
	struct check_proto_sample s;
	struct proto_msg m;
	size_t len;

	check_proto_sample_get(PROTO_ACK, &s);
	check_proto_encode(buf, sizeof(buf), &s);
	ck_assert_int_eq(proto_decode(NULL, 0, &m), -PROTO_E_SHORT);
	ck_assert_int_eq(check_proto_decode(buf, 0), -PROTO_E_SHORT);
	ck_assert_int_eq(check_proto_decode(buf, 1), -PROTO_E_SHORT);
	ck_assert_int_eq(check_proto_decode(buf, 63), -PROTO_E_SHORT);
	for (len = 0; len < PROTO_HEADER_SIZE; len++)
		ck_assert_int_eq(check_proto_decode(buf, len), -PROTO_E_SHORT);
	/* A whole header but not even the topic's NUL. */
	ck_assert_int_eq(check_proto_decode(buf, 64), -PROTO_E_LENGTH);
	ck_assert_int_eq(check_proto_decode(buf, 65), 0);
}
END_TEST

START_TEST(check_proto_body_cut)
{
	unsigned char buf[CHECK_PROTO_BUF];
	struct check_proto_sample s;
	size_t n, len;

	check_proto_sample_get(PROTO_PUBLISH, &s);
	n = check_proto_encode(buf, sizeof(buf), &s);
	/* Every cut from inside the topic to the last payload byte. */
	for (len = PROTO_HEADER_SIZE; len < n; len++)
		ck_assert_int_eq(check_proto_decode(buf, len),
				 -PROTO_E_LENGTH);
	ck_assert_int_eq(check_proto_decode(buf, n), 0);
}
END_TEST

START_TEST(check_proto_topic_len_too_big)
{
	unsigned char buf[CHECK_PROTO_BUF];
	struct check_proto_sample s;
	size_t n;

	/* 256 topic bytes and the NUL really are there. */
	check_proto_sample_get(PROTO_PUBLISH, &s);
	ck_assert_int_eq(proto_encode(buf, sizeof(buf), &s.h, "", NULL, 0),
			 PROTO_HEADER_SIZE + 1);
	memset(buf + PROTO_HEADER_SIZE, 'a', 256);
	buf[PROTO_HEADER_SIZE + 256] = '\0';
	CHECK_PROTO_SET(buf, topic_len, 256);
	ck_assert_int_eq(check_proto_decode(buf, proto_size(256, 0)),
			 -PROTO_E_TOOBIG);

	/* Checked before the lengths against what was received. */
	n = check_proto_encode(buf, sizeof(buf), &s);
	CHECK_PROTO_SET(buf, topic_len, 256);
	ck_assert_int_eq(check_proto_decode(buf, n), -PROTO_E_TOOBIG);
	CHECK_PROTO_SET(buf, topic_len, 0xffff);
	ck_assert_int_eq(check_proto_decode(buf, n), -PROTO_E_TOOBIG);
}
END_TEST

START_TEST(check_proto_length_mismatch)
{
	unsigned char buf[CHECK_PROTO_BUF];
	struct check_proto_sample s;
	size_t n, tlen;

	check_proto_sample_get(PROTO_PUBLISH, &s);
	tlen = strlen(s.topic);
	n = check_proto_encode(buf, sizeof(buf), &s);

	/* More bytes received than the header accounts for. */
	buf[n] = 0;
	ck_assert_int_eq(check_proto_decode(buf, n + 1), -PROTO_E_LENGTH);
	/* payload_len claims more, or less, than was received. */
	CHECK_PROTO_SET(buf, payload_len, (uint32_t)s.payload_len + 1);
	ck_assert_int_eq(check_proto_decode(buf, n), -PROTO_E_LENGTH);
	CHECK_PROTO_SET(buf, payload_len, (uint32_t)s.payload_len - 1);
	ck_assert_int_eq(check_proto_decode(buf, n), -PROTO_E_LENGTH);
	/* Sums that would wrap a 32-bit size_t (the second to 0). */
	CHECK_PROTO_SET(buf, payload_len, UINT32_MAX);
	ck_assert_int_eq(check_proto_decode(buf, n), -PROTO_E_LENGTH);
	CHECK_PROTO_SET(buf, payload_len, UINT32_MAX - (uint32_t)tlen - 64);
	ck_assert_int_eq(check_proto_decode(buf, n), -PROTO_E_LENGTH);
	CHECK_PROTO_SET(buf, payload_len, (uint32_t)s.payload_len);
	ck_assert_int_eq(check_proto_decode(buf, n), 0);

	/* topic_len longer than the bytes received. */
	check_proto_sample_get(PROTO_ACK, &s);
	n = check_proto_encode(buf, sizeof(buf), &s);
	CHECK_PROTO_SET(buf, topic_len, 10);
	ck_assert_int_eq(check_proto_decode(buf, n), -PROTO_E_LENGTH);
}
END_TEST

START_TEST(check_proto_missing_nul)
{
	unsigned char buf[CHECK_PROTO_BUF];
	struct check_proto_sample s;
	size_t n, tlen;

	check_proto_sample_get(PROTO_PUBLISH, &s);
	tlen = strlen(s.topic);
	n = check_proto_encode(buf, sizeof(buf), &s);
	buf[PROTO_HEADER_SIZE + tlen] = 'x';
	ck_assert_int_eq(check_proto_decode(buf, n), -PROTO_E_LENGTH);

	/* topic_len one short, with payload_len making up the total. */
	n = check_proto_encode(buf, sizeof(buf), &s);
	CHECK_PROTO_SET(buf, topic_len, (uint16_t)(tlen - 1));
	CHECK_PROTO_SET(buf, payload_len, (uint32_t)s.payload_len + 1);
	ck_assert_int_eq(check_proto_decode(buf, n), -PROTO_E_LENGTH);

	/* And no topic at all where a NUL is still owed. */
	check_proto_sample_get(PROTO_BYE, &s);
	n = check_proto_encode(buf, sizeof(buf), &s);
	buf[PROTO_HEADER_SIZE] = 'x';
	ck_assert_int_eq(check_proto_decode(buf, n), -PROTO_E_LENGTH);
}
END_TEST

START_TEST(check_proto_bad_magic)
{
	unsigned char buf[CHECK_PROTO_BUF];
	struct check_proto_sample s;
	size_t n;

	check_proto_sample_get(PROTO_ACK, &s);
	n = check_proto_encode(buf, sizeof(buf), &s);
	CHECK_PROTO_SET(buf, magic, 0);
	ck_assert_int_eq(check_proto_decode(buf, n), -PROTO_E_MAGIC);
	CHECK_PROTO_SET(buf, magic, __builtin_bswap32(PROTO_MAGIC));
	ck_assert_int_eq(check_proto_decode(buf, n), -PROTO_E_MAGIC);
	CHECK_PROTO_SET(buf, magic, PROTO_MAGIC ^ 0x80000000u);
	ck_assert_int_eq(check_proto_decode(buf, n), -PROTO_E_MAGIC);
	/* Something else entirely, of a header's size. */
	memset(buf, 'x', n);
	ck_assert_int_eq(check_proto_decode(buf, n), -PROTO_E_MAGIC);
}
END_TEST

START_TEST(check_proto_bad_version)
{
	unsigned char buf[CHECK_PROTO_BUF];
	static const uint8_t bad[] = { 0, PROTO_VERSION + 1, 255 };
	struct check_proto_sample s;
	size_t n, i;

	check_proto_sample_get(PROTO_HELLO, &s);
	n = check_proto_encode(buf, sizeof(buf), &s);
	for (i = 0; i < sizeof(bad); i++) {
		CHECK_PROTO_SET(buf, version, bad[i]);
		ck_assert_int_eq(check_proto_decode(buf, n),
				 -PROTO_E_VERSION);
	}
	/* The version byte stays at offset 4, where it can be peeked. */
	ck_assert_uint_eq(offsetof(struct proto_header, version), 4);
	ck_assert_uint_eq(offsetof(struct proto_header, type), 5);
}
END_TEST

START_TEST(check_proto_bad_type)
{
	unsigned char buf[CHECK_PROTO_BUF];
	static const uint8_t bad[] = { 0, 99, PROTO_TYPE_MAX + 1, 255 };
	struct check_proto_sample s;
	size_t n, i;

	check_proto_sample_get(PROTO_BYE, &s);
	n = check_proto_encode(buf, sizeof(buf), &s);
	for (i = 0; i < sizeof(bad); i++) {
		CHECK_PROTO_SET(buf, type, bad[i]);
		ck_assert_int_eq(check_proto_decode(buf, n), -PROTO_E_TYPE);
	}
}
END_TEST

START_TEST(check_proto_bad_flags)
{
	unsigned char buf[CHECK_PROTO_BUF];
	static const uint16_t bad[] = { 0x0200, 0x8000, 0xffff,
					PROTO_F_PRIORITY | 0x0200,
					PROTO_F_MONITOR, PROTO_F_REPLY,
					PROTO_F_MORE };
	struct check_proto_sample s;
	size_t n, i;

	check_proto_sample_get(PROTO_PUBLISH, &s);
	n = check_proto_encode(buf, sizeof(buf), &s);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK_PROTO_SET(buf, flags, bad[i]);
		ck_assert_int_eq(check_proto_decode(buf, n), -PROTO_E_FLAGS);
	}
	CHECK_PROTO_SET(buf, flags, PROTO_F_PRIORITY);
	ck_assert_int_eq(check_proto_decode(buf, n), 0);
	CHECK_PROTO_SET(buf, flags, 0);
	ck_assert_int_eq(check_proto_decode(buf, n), 0);
}
END_TEST

START_TEST(check_proto_reserved)
{
	unsigned char buf[CHECK_PROTO_BUF];
	struct check_proto_sample s;
	size_t n, i;

	check_proto_sample_get(PROTO_DELIVER, &s);
	n = check_proto_encode(buf, sizeof(buf), &s);
	CHECK_PROTO_SET(buf, origin_len, 0x80000000u);
	ck_assert_int_eq(check_proto_decode(buf, n), -PROTO_E_FLAGS);
	CHECK_PROTO_SET(buf, origin_len, 0);
	ck_assert_int_eq(check_proto_decode(buf, n), 0);
	/* shm_tag before seq is zero without PROTO_F_SHM. */
	for (i = 0; i < 4; i++) {
		buf[CHECK_PROTO_PAD + i] = 1;
		ck_assert_int_eq(check_proto_decode(buf, n), -PROTO_E_FLAGS);
		buf[CHECK_PROTO_PAD + i] = 0;
	}
	ck_assert_int_eq(check_proto_decode(buf, n), 0);
}
END_TEST

/* With several faults, the first in the documented order is reported. */
/* Keys: where they may be, what they may hold, how they are framed. */
START_TEST(check_proto_keys)
{
	static const unsigned type_list[] = { PROTO_SUBSCRIBE, PROTO_REQUEST,
					      PROTO_REPLY, PROTO_BYE,
					      PROTO_ACK, PROTO_HELLO };
	unsigned char buf[CHECK_PROTO_BUF], filler[300];
	char key[PROTO_KEY_MAX + 2];
	struct proto_header h;
	struct proto_msg m;
	size_t i;
	int n;

	proto_header_init(&h, PROTO_PUBLISH);
	n = proto_encode_key(buf, sizeof(buf), &h, "a/b", "obj:1", "xyz", 3);
	ck_assert_int_eq(n, (int)proto_size_key(3, 5, 3));
	ck_assert_int_eq(n, PROTO_HEADER_SIZE + 4 + 6 + 3);
	ck_assert_int_eq(proto_decode(buf, (size_t)n, &m), 0);
	ck_assert_uint_eq(m.h.key_len, 5);
	ck_assert_str_eq(m.topic, "a/b");
	ck_assert_str_eq(m.key, "obj:1");
	ck_assert_ptr_eq(m.key, (const char *)buf + PROTO_HEADER_SIZE + 4);
	ck_assert_int_eq(memcmp(m.payload, "xyz", 3), 0);
	/* "" and NULL are no key: the message is as proto_encode() makes */
	ck_assert_int_eq(proto_encode_key(buf, sizeof(buf), &h, "a/b", "",
					  "xyz", 3),
			 (int)proto_size(3, 3));
	ck_assert_int_eq(proto_decode(buf, proto_size(3, 3), &m), 0);
	ck_assert_str_eq(m.key, "");

	/* the longest key, and one byte more */
	memset(key, 'k', sizeof(key));
	key[PROTO_KEY_MAX] = '\0';
	n = proto_encode_key(buf, sizeof(buf), &h, "a", key, NULL, 0);
	ck_assert_int_eq(n, (int)proto_size_key(1, PROTO_KEY_MAX, 0));
	ck_assert_int_eq(proto_decode(buf, (size_t)n, &m), 0);
	ck_assert_uint_eq(strlen(m.key), PROTO_KEY_MAX);
	key[PROTO_KEY_MAX] = 'k';
	key[PROTO_KEY_MAX + 1] = '\0';
	ck_assert_int_eq(proto_encode_key(buf, sizeof(buf), &h, "a", key,
					  NULL, 0),
			 -PROTO_E_KEY);
	/* ... also when the header says so over a message that fits it */
	memset(filler, 'p', sizeof(filler));
	n = proto_encode_key(buf, sizeof(buf), &h, "a", "k", filler,
			     sizeof(filler));
	CHECK_PROTO_SET(buf, key_len, 256);
	ck_assert_int_eq(check_proto_decode(buf, (size_t)n), -PROTO_E_LENGTH);
	memset(buf + PROTO_HEADER_SIZE + 2, 'k', 256);
	buf[PROTO_HEADER_SIZE + 2 + 256] = '\0';
	CHECK_PROTO_SET(buf, payload_len, 300 - 255);
	ck_assert_int_eq(check_proto_decode(buf, (size_t)n), -PROTO_E_KEY);

	/* a key is printable ASCII without space, and ends in a NUL */
	n = proto_encode_key(buf, sizeof(buf), &h, "a/b", "obj:1", "xyz", 3);
	buf[PROTO_HEADER_SIZE + 4 + 2] = ' ';
	ck_assert_int_eq(check_proto_decode(buf, (size_t)n), -PROTO_E_KEY);
	buf[PROTO_HEADER_SIZE + 4 + 2] = 0x7f;
	ck_assert_int_eq(check_proto_decode(buf, (size_t)n), -PROTO_E_KEY);
	buf[PROTO_HEADER_SIZE + 4 + 2] = 'j';
	ck_assert_int_eq(check_proto_decode(buf, (size_t)n), 0);
	buf[PROTO_HEADER_SIZE + 4 + 5] = 'x';
	ck_assert_int_eq(check_proto_decode(buf, (size_t)n), -PROTO_E_LENGTH);
	buf[PROTO_HEADER_SIZE + 4 + 5] = '\0';
	/* a key_len that runs past the message */
	CHECK_PROTO_SET(buf, key_len, 9);
	ck_assert_int_eq(check_proto_decode(buf, (size_t)n), -PROTO_E_LENGTH);
	CHECK_PROTO_SET(buf, key_len, 5);
	ck_assert_int_eq(check_proto_decode(buf, (size_t)n), 0);

	/* DELIVER and TIMER_ADD carry one too; no other type does */
	buf[offsetof(struct proto_header, type)] = PROTO_DELIVER;
	ck_assert_int_eq(check_proto_decode(buf, (size_t)n), 0);
	buf[offsetof(struct proto_header, type)] = PROTO_TIMER_ADD;
	ck_assert_int_eq(check_proto_decode(buf, (size_t)n), 0);
	for (i = 0; i < sizeof(type_list) / sizeof(type_list[0]); i++) {
		buf[offsetof(struct proto_header, type)] =
			(unsigned char)type_list[i];
		ck_assert_msg(check_proto_decode(buf, (size_t)n) ==
				      -PROTO_E_KEY,
			      "%s with a key", proto_type_name(type_list[i]));
	}

	ck_assert(proto_key_valid("a", 1));
	ck_assert(proto_key_valid("user:42/x#+", 11));
	ck_assert(!proto_key_valid("", 0));
	ck_assert(!proto_key_valid(NULL, 1));
	ck_assert(!proto_key_valid("a b", 3));
	ck_assert(!proto_key_valid("a\nb", 3));
	ck_assert(!proto_key_valid("\xc3\xa9", 2));
	ck_assert(!proto_key_valid(key, PROTO_KEY_MAX + 1));
	ck_assert(proto_key_valid(key, PROTO_KEY_MAX));
}
END_TEST

START_TEST(check_proto_error_order)
{
	unsigned char buf[CHECK_PROTO_BUF];
	struct check_proto_sample s;
	size_t n;

	check_proto_sample_get(PROTO_PUBLISH, &s);
	n = check_proto_encode(buf, sizeof(buf), &s);
	/* Add the faults from last to first, checking each time. */
	CHECK_PROTO_SET(buf, priority, PROTO_PRIO_MAX + 1);
	ck_assert_int_eq(check_proto_decode(buf, n), -PROTO_E_FIELD);
	buf[PROTO_HEADER_SIZE] = ' ';
	ck_assert_int_eq(check_proto_decode(buf, n), -PROTO_E_TOPIC);
	CHECK_PROTO_SET(buf, payload_len, 1000);
	ck_assert_int_eq(check_proto_decode(buf, n), -PROTO_E_LENGTH);
	CHECK_PROTO_SET(buf, topic_len, 300);
	ck_assert_int_eq(check_proto_decode(buf, n), -PROTO_E_TOOBIG);
	CHECK_PROTO_SET(buf, origin_len, 1);
	ck_assert_int_eq(check_proto_decode(buf, n), -PROTO_E_FLAGS);
	CHECK_PROTO_SET(buf, type, 0);
	ck_assert_int_eq(check_proto_decode(buf, n), -PROTO_E_TYPE);
	CHECK_PROTO_SET(buf, version, 9);
	ck_assert_int_eq(check_proto_decode(buf, n), -PROTO_E_VERSION);
	CHECK_PROTO_SET(buf, magic, 1);
	ck_assert_int_eq(check_proto_decode(buf, n), -PROTO_E_MAGIC);
	ck_assert_int_eq(check_proto_decode(buf, 63), -PROTO_E_SHORT);
}
END_TEST

/* Topics a PUBLISH or DELIVER must not carry, as raw bytes. */
static const struct {
	const char *bytes;
	size_t len;
} check_proto_bad_topics[] = {
	{ "", 0 },         { "/", 1 },        { "/a", 2 },
	{ "a/", 2 },       { "a//b", 4 },     { "a b", 3 },
	{ "\x80", 1 },     { "a\x80z", 3 },   { "a\0b", 3 },
	{ "\0", 1 },       { "a\x7f", 2 },    { "a\tb", 3 },
	{ "a/+/c", 5 },    { "+", 1 },        { "a+", 2 },
	{ "#", 1 },        { "a/#", 3 },      { "a/b#", 4 },
	{ "\xff/a", 3 },   { "a/\n", 3 },
};

START_TEST(check_proto_bad_publish_topics)
{
	struct check_proto_sample s;
	size_t i;

	check_proto_sample_get(PROTO_PUBLISH, &s);
	for (i = 0; i < sizeof(check_proto_bad_topics) /
				sizeof(check_proto_bad_topics[0]);
	     i++) {
		const char *t = check_proto_bad_topics[i].bytes;
		size_t len = check_proto_bad_topics[i].len;

		ck_assert_msg(!proto_topic_valid(t, len, false),
			      "topic #%zu accepted", i);
		s.h.type = PROTO_PUBLISH;
		ck_assert_int_eq(check_proto_decode_raw(&s.h, t, len,
							s.payload,
							s.payload_len),
				 -PROTO_E_TOPIC);
		s.h.type = PROTO_DELIVER;
		ck_assert_int_eq(check_proto_decode_raw(&s.h, t, len,
							s.payload,
							s.payload_len),
				 -PROTO_E_TOPIC);
	}
	/* The same bytes, minus the fault, pass. */
	ck_assert_int_eq(check_proto_decode_topic(PROTO_PUBLISH, "a/b"), 0);
	ck_assert_int_eq(check_proto_decode_topic(PROTO_PUBLISH, "a"), 0);
	ck_assert_int_eq(check_proto_decode_topic(PROTO_PUBLISH, "!~/$"), 0);
}
END_TEST

START_TEST(check_proto_patterns)
{
	static const char *const bad[] = {
		"a/b#", "#/a", "a+/b", "a/#/b", "+a", "##", "++", "a/+b",
		"#a",   "/+",  "+/",   "a//+", " ",   "",
	};
	static const char *const good[] = {
		"+", "#", "a/+/c", "a/#", "+/+", "+/#", "a/b/c", "+/b/#",
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_msg(!proto_topic_valid(bad[i], strlen(bad[i]), true),
			      "pattern '%s' accepted", bad[i]);
		ck_assert_int_eq(check_proto_decode_topic(PROTO_SUBSCRIBE,
							  bad[i]),
				 -PROTO_E_TOPIC);
		ck_assert_int_eq(check_proto_decode_topic(PROTO_UNSUBSCRIBE,
							  bad[i]),
				 -PROTO_E_TOPIC);
	}
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		ck_assert_msg(proto_topic_valid(good[i], strlen(good[i]), true),
			      "pattern '%s' refused", good[i]);
		ck_assert_int_eq(check_proto_decode_topic(PROTO_SUBSCRIBE,
							  good[i]),
				 0);
		ck_assert_int_eq(check_proto_decode_topic(PROTO_UNSUBSCRIBE,
							  good[i]),
				 0);
	}
}
END_TEST

START_TEST(check_proto_topic_rules)
{
	char topic[PROTO_TOPIC_MAX + 2];

	ck_assert(proto_topic_valid("a", 1, false));
	ck_assert(!proto_topic_valid(NULL, 0, false));
	ck_assert(!proto_topic_valid("a", 0, true));
	/* The printable range, both ends. */
	ck_assert(proto_topic_valid("!", 1, false));
	ck_assert(proto_topic_valid("~", 1, false));
	ck_assert(!proto_topic_valid(" ", 1, false));
	ck_assert(!proto_topic_valid("\x7f", 1, false));
	/* The length is given; what follows is not looked at. */
	ck_assert(proto_topic_valid("a/b//", 3, false));
	ck_assert(proto_topic_valid("a/+x", 3, true));
	ck_assert(proto_topic_valid("a/#/b", 3, true));
	ck_assert(!proto_topic_valid("a/bc", 2, false));
	/* Wildcards only in patterns. */
	ck_assert(!proto_topic_valid("a/+", 3, false));
	ck_assert(proto_topic_valid("a/+", 3, true));
	/* 255 bytes fit, 256 do not. */
	memset(topic, 'x', sizeof(topic));
	ck_assert(proto_topic_valid(topic, PROTO_TOPIC_MAX, false));
	ck_assert(!proto_topic_valid(topic, PROTO_TOPIC_MAX + 1, false));
	ck_assert(!proto_topic_valid(topic, PROTO_TOPIC_MAX + 1, true));
	topic[PROTO_TOPIC_MAX - 1] = '#';
	topic[PROTO_TOPIC_MAX - 2] = '/';
	ck_assert(proto_topic_valid(topic, PROTO_TOPIC_MAX, true));
}
END_TEST

START_TEST(check_proto_qnames)
{
	static const char *const good[] = {
		"/mqbus", "/mqbus.1234.0.tx", "/A-Z_a.z-09", "/x",
	};
	static const char *const bad[] = {
		"", "/", "mqbus", "/a/b", "/a b", "/a+b", "/caf\xc3\xa9",
		"//", "/a#", "/a\n",
	};
	char name[PROTO_QNAME_MAX + 2];
	size_t i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		ck_assert_msg(proto_qname_valid(good[i], strlen(good[i])),
			      "'%s' refused", good[i]);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(!proto_qname_valid(bad[i], strlen(bad[i])),
			      "'%s' accepted", bad[i]);
	ck_assert(!proto_qname_valid(NULL, 0));
	ck_assert(!proto_qname_valid("/a\0b", 4));
	/* Given length, no NUL needed. */
	ck_assert(proto_qname_valid("/ab/", 3));
	/* "/" and 254 characters fit, 255 do not. */
	name[0] = '/';
	memset(name + 1, 'q', sizeof(name) - 1);
	ck_assert(proto_qname_valid(name, PROTO_QNAME_MAX));
	ck_assert(!proto_qname_valid(name, PROTO_QNAME_MAX + 1));
}
END_TEST

START_TEST(check_proto_announce_hello)
{
	struct check_proto_sample s;
	unsigned type;

	for (type = PROTO_ANNOUNCE; type <= PROTO_HELLO; type++) {
		ck_assert_int_eq(check_proto_decode_topic(type, "/q"), 0);
		ck_assert_int_eq(check_proto_decode_topic(type, ""),
				 -PROTO_E_TOPIC);
		ck_assert_int_eq(check_proto_decode_topic(type, "q"),
				 -PROTO_E_TOPIC);
		ck_assert_int_eq(check_proto_decode_topic(type, "/a/b"),
				 -PROTO_E_TOPIC);
		ck_assert_int_eq(check_proto_decode_topic(type, "/a b"),
				 -PROTO_E_TOPIC);
		/* No payload. */
		check_proto_sample_get(type, &s);
		ck_assert_int_eq(check_proto_decode_raw(&s.h, "/q", 2, "x", 1),
				 -PROTO_E_FIELD);
	}
	/* HELLO must claim a pid. */
	check_proto_sample_get(PROTO_HELLO, &s);
	s.h.sender_pid = 0;
	ck_assert_int_eq(check_proto_decode_raw(&s.h, "/q", 2, NULL, 0),
			 -PROTO_E_FIELD);
}
END_TEST

START_TEST(check_proto_welcome_rules)
{
	unsigned char pay[sizeof(struct proto_welcome) + 1] = { 0 };
	struct check_proto_sample s;

	check_proto_sample_get(PROTO_WELCOME, &s);
	ck_assert_int_eq(check_proto_decode_raw(&s.h, "", 0, pay,
						sizeof(pay) - 1),
			 0);
	ck_assert_int_eq(check_proto_decode_raw(&s.h, "", 0, pay,
						sizeof(pay) - 2),
			 -PROTO_E_FIELD);
	ck_assert_int_eq(check_proto_decode_raw(&s.h, "", 0, pay,
						sizeof(pay)),
			 -PROTO_E_FIELD);
	ck_assert_int_eq(check_proto_decode_raw(&s.h, "", 0, NULL, 0),
			 -PROTO_E_FIELD);
	ck_assert_int_eq(check_proto_decode_raw(&s.h, "a", 1, pay,
						sizeof(pay) - 1),
			 -PROTO_E_TOPIC);
	s.h.client_id = 0;
	ck_assert_int_eq(check_proto_decode_raw(&s.h, "", 0, pay,
						sizeof(pay) - 1),
			 -PROTO_E_FIELD);
}
END_TEST

START_TEST(check_proto_priority)
{
	static const uint32_t bad[] = { PROTO_PRIO_MAX + 1, 65535,
					UINT32_MAX };
	unsigned char buf[CHECK_PROTO_BUF];
	struct check_proto_sample s;
	unsigned type;
	size_t n, i;

	ck_assert_uint_eq(PROTO_PRIO_MAX + 1, 32768);
	for (type = PROTO_PUBLISH; type <= PROTO_DELIVER; type++) {
		check_proto_sample_get(type, &s);
		n = check_proto_encode(buf, sizeof(buf), &s);
		CHECK_PROTO_SET(buf, priority, PROTO_PRIO_MAX);
		ck_assert_int_eq(check_proto_decode(buf, n), 0);
		CHECK_PROTO_SET(buf, priority, 0);
		ck_assert_int_eq(check_proto_decode(buf, n), 0);
		for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			CHECK_PROTO_SET(buf, priority, bad[i]);
			ck_assert_int_eq(check_proto_decode(buf, n),
					 -PROTO_E_FIELD);
		}
	}
}
END_TEST

/*
 * QUERY: a what in status (1..PROTO_QUERY_MAX), where to resume in an
 * empty or concrete topic, no key, no priority, no flag but
 * PROTO_F_MORE; and PROTO_F_MORE on no other type.
 */
START_TEST(check_proto_query_rules)
{
	unsigned char buf[CHECK_PROTO_BUF];
	struct check_proto_sample s;
	size_t n;

	check_proto_sample_get(PROTO_QUERY, &s);
	s.h.flags = 0;
	s.h.seq = 0;
	/* the request: nothing but the what */
	ck_assert_int_eq(check_proto_decode_raw(&s.h, NULL, 0, NULL, 0), 0);
	ck_assert_int_eq(check_proto_decode_raw(&s.h, "a/b", 3, NULL, 0), 0);
	for (unsigned w = 1; w <= PROTO_QUERY_MAX; w++) {
		s.h.status = w;
		ck_assert_int_eq(check_proto_decode_raw(&s.h, NULL, 0, NULL, 0),
				 0);
		ck_assert_ptr_nonnull(proto_query_name(w));
		ck_assert_uint_eq(proto_query_of(proto_query_name(w)), w);
	}
	s.h.status = 0;
	ck_assert_int_eq(check_proto_decode_raw(&s.h, NULL, 0, NULL, 0),
			 -PROTO_E_FIELD);
	s.h.status = PROTO_QUERY_MAX + 1;
	ck_assert_int_eq(check_proto_decode_raw(&s.h, NULL, 0, NULL, 0),
			 -PROTO_E_FIELD);
	ck_assert_ptr_null(proto_query_name(0));
	ck_assert_ptr_null(proto_query_name(PROTO_QUERY_MAX + 1));
	ck_assert_uint_eq(proto_query_of("client"), 0);
	ck_assert_uint_eq(proto_query_of(NULL), 0);
	s.h.status = PROTO_QUERY_CLIENTS;
	s.h.priority = 1;
	ck_assert_int_eq(check_proto_decode_raw(&s.h, NULL, 0, NULL, 0),
			 -PROTO_E_FIELD);
	s.h.priority = 0;
	/* a cursor topic is concrete */
	ck_assert_int_eq(check_proto_decode_raw(&s.h, "a/#", 3, NULL, 0),
			 -PROTO_E_TOPIC);
	ck_assert_int_eq(check_proto_decode_raw(&s.h, "a//b", 4, NULL, 0),
			 -PROTO_E_TOPIC);
	/* flags: PROTO_F_MORE only */
	s.h.flags = PROTO_F_MORE;
	ck_assert_int_eq(check_proto_decode_raw(&s.h, "a", 1, "x\n", 2), 0);
	s.h.flags = PROTO_F_MORE | PROTO_F_PRIORITY;
	ck_assert_int_eq(check_proto_decode_raw(&s.h, "a", 1, NULL, 0),
			 -PROTO_E_FLAGS);
	s.h.flags = PROTO_F_MONITOR;
	ck_assert_int_eq(check_proto_decode_raw(&s.h, "a", 1, NULL, 0),
			 -PROTO_E_FLAGS);
	s.h.flags = 0;
	/* no key */
	s.key = "k";
	s.h.status = PROTO_QUERY_TIMERS;
	n = (size_t)proto_encode_key(buf, sizeof(buf), &s.h, "a", "k", NULL, 0);
	ck_assert_int_eq(check_proto_decode(buf, n), -PROTO_E_KEY);
	/* PROTO_F_MORE belongs to QUERY alone */
	check_proto_sample_get(PROTO_STATS, &s);
	s.h.flags = PROTO_F_MORE;
	ck_assert_int_eq(check_proto_decode_raw(&s.h, NULL, 0, NULL, 0),
			 -PROTO_E_FLAGS);
}
END_TEST

START_TEST(check_proto_control_rules)
{
	static const char long_text[1000] = "x";
	struct check_proto_sample s;

	/* SUBSCRIBE / UNSUBSCRIBE carry nothing or a queue group name. */
	check_proto_sample_get(PROTO_SUBSCRIBE, &s);
	ck_assert_int_eq(check_proto_decode_raw(&s.h, "a", 1, "workers", 7),
			 0);
	ck_assert_int_eq(check_proto_decode_raw(&s.h, "a", 1, "a b", 3),
			 -PROTO_E_FIELD);
	ck_assert_int_eq(check_proto_decode_raw(&s.h, "a", 1, long_text,
						PROTO_GROUP_MAX + 1),
			 -PROTO_E_FIELD);
	check_proto_sample_get(PROTO_UNSUBSCRIBE, &s);
	ck_assert_int_eq(check_proto_decode_raw(&s.h, "a", 1, "x/y", 3),
			 -PROTO_E_FIELD);
	ck_assert_int_eq(check_proto_decode_raw(&s.h, "a", 1, "x", 1), 0);

	/* REQUEST needs a concrete topic and a correlation id. */
	check_proto_sample_get(PROTO_REQUEST, &s);
	ck_assert_int_eq(check_proto_decode_raw(&s.h, "a/+", 3, NULL, 0),
			 -PROTO_E_TOPIC);
	s.h.token = 0;
	ck_assert_int_eq(check_proto_decode_raw(&s.h, "a", 1, NULL, 0),
			 -PROTO_E_FIELD);

	/* REPLY: no topic, and the id of what it answers. */
	check_proto_sample_get(PROTO_REPLY, &s);
	ck_assert_int_eq(check_proto_decode_raw(&s.h, "a", 1, NULL, 0),
			 -PROTO_E_TOPIC);
	s.h.token = 0;
	ck_assert_int_eq(check_proto_decode_raw(&s.h, NULL, 0, "x", 1),
			 -PROTO_E_FIELD);

	/* TIMER_CANCEL names a timer, and nothing else. */
	check_proto_sample_get(PROTO_TIMER_CANCEL, &s);
	s.h.seq = 0;
	ck_assert_int_eq(check_proto_decode_raw(&s.h, NULL, 0, NULL, 0),
			 -PROTO_E_FIELD);
	s.h.seq = 5;
	ck_assert_int_eq(check_proto_decode_raw(&s.h, "t", 1, NULL, 0),
			 -PROTO_E_TOPIC);
	ck_assert_int_eq(check_proto_decode_raw(&s.h, NULL, 0, "x", 1),
			 -PROTO_E_FIELD);
	/* TIMER_ADD publishes later: a concrete topic. */
	check_proto_sample_get(PROTO_TIMER_ADD, &s);
	ck_assert_int_eq(check_proto_decode_raw(&s.h, "a/#", 3, NULL, 0),
			 -PROTO_E_TOPIC);

	/* Only a DELIVER may be marked as a request, and with its id. */
	check_proto_sample_get(PROTO_DELIVER, &s);
	s.h.flags = PROTO_F_REQUEST;
	s.h.token = 0;
	ck_assert_int_eq(check_proto_decode_raw(&s.h, "a", 1, NULL, 0),
			 -PROTO_E_FIELD);
	s.h.token = 77;
	ck_assert_int_eq(check_proto_decode_raw(&s.h, "a", 1, NULL, 0), 0);
	check_proto_sample_get(PROTO_PUBLISH, &s);
	s.h.flags = PROTO_F_REQUEST;
	s.h.token = 77;
	ck_assert_int_eq(check_proto_decode_raw(&s.h, "a", 1, NULL, 0),
			 -PROTO_E_FIELD);

	/* Monitors: a SUBSCRIBE in no group, a copy that is a DELIVER; a
	 * reply copy is a monitor copy with a request id, no request. */
	check_proto_sample_get(PROTO_SUBSCRIBE, &s);
	s.h.flags = PROTO_F_MONITOR;
	ck_assert_int_eq(check_proto_decode_raw(&s.h, "a/#", 3, NULL, 0), 0);
	ck_assert_int_eq(check_proto_decode_raw(&s.h, "a/#", 3, "g", 1),
			 -PROTO_E_FIELD);
	s.h.flags = PROTO_F_MONITOR | PROTO_F_REPLY;
	ck_assert_int_eq(check_proto_decode_raw(&s.h, "a/#", 3, NULL, 0),
			 -PROTO_E_FIELD);
	check_proto_sample_get(PROTO_DELIVER, &s);
	s.h.flags = PROTO_F_MONITOR | PROTO_F_REPLY;
	s.h.token = 9;
	ck_assert_int_eq(check_proto_decode_raw(&s.h, "a", 1, NULL, 0), 0);
	s.h.token = 0;
	ck_assert_int_eq(check_proto_decode_raw(&s.h, "a", 1, NULL, 0),
			 -PROTO_E_FIELD);
	s.h.token = 9;
	s.h.flags = PROTO_F_REPLY;
	ck_assert_int_eq(check_proto_decode_raw(&s.h, "a", 1, NULL, 0),
			 -PROTO_E_FIELD);
	s.h.flags = PROTO_F_MONITOR | PROTO_F_REPLY | PROTO_F_REQUEST;
	ck_assert_int_eq(check_proto_decode_raw(&s.h, "a", 1, NULL, 0),
			 -PROTO_E_FIELD);
	check_proto_sample_get(PROTO_REQUEST, &s);
	s.h.flags = PROTO_F_MONITOR;
	ck_assert_int_eq(check_proto_decode_raw(&s.h, "a", 1, NULL, 0),
			 -PROTO_E_FLAGS);

	/* ACK: nothing but the header. */
	check_proto_sample_get(PROTO_ACK, &s);
	ck_assert_int_eq(check_proto_decode_raw(&s.h, "a", 1, NULL, 0),
			 -PROTO_E_TOPIC);
	ck_assert_int_eq(check_proto_decode_raw(&s.h, "", 0, "x", 1),
			 -PROTO_E_FIELD);

	/* ERROR: a status, a text of any length, no topic. */
	check_proto_sample_get(PROTO_ERROR, &s);
	ck_assert_int_eq(check_proto_decode_raw(&s.h, "", 0, NULL, 0), 0);
	ck_assert_int_eq(check_proto_decode_raw(&s.h, "", 0, long_text,
						sizeof(long_text)),
			 0);
	ck_assert_int_eq(check_proto_decode_raw(&s.h, "a", 1, NULL, 0),
			 -PROTO_E_TOPIC);
	s.h.status = 0;
	ck_assert_int_eq(check_proto_decode_raw(&s.h, "", 0, "oops", 4),
			 -PROTO_E_FIELD);

	/* BYE and STATS: any payload, no topic. */
	check_proto_sample_get(PROTO_BYE, &s);
	ck_assert_int_eq(check_proto_decode_raw(&s.h, "", 0, long_text,
						sizeof(long_text)),
			 0);
	ck_assert_int_eq(check_proto_decode_raw(&s.h, "a/b", 3, NULL, 0),
			 -PROTO_E_TOPIC);
	check_proto_sample_get(PROTO_STATS, &s);
	ck_assert_int_eq(check_proto_decode_raw(&s.h, "", 0, NULL, 0), 0);
	ck_assert_int_eq(check_proto_decode_raw(&s.h, "/q", 2, NULL, 0),
			 -PROTO_E_TOPIC);
}
END_TEST

/* xorshift64: deterministic, so a failure can be reproduced. */
static uint64_t check_proto_rand(uint64_t *state)
{
	uint64_t x = *state;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*state = x;
	return x;
}

/* A non-zero xor mask, so that each flip does change its byte. */
static unsigned char check_proto_flip(uint64_t rnd)
{
	return (unsigned char)(1 + rnd % 255);
}

#define CHECK_PROTO_FUZZ_ROUNDS 4000

START_TEST(check_proto_fuzz)
{
	unsigned char orig[CHECK_PROTO_BUF], work[CHECK_PROTO_BUF + 16];
	unsigned seen[PROTO_E_KEY - PROTO_E_SHORT + 1] = { 0 };
	uint64_t state = 0x9e3779b97f4a7c15ull;
	unsigned ok = 0, kinds = 0, type, round, k;
	struct check_proto_sample s;

	for (type = 1; type <= PROTO_TYPE_MAX; type++) {
		size_t n;

		check_proto_sample_get(type, &s);
		n = check_proto_encode(orig, sizeof(orig), &s);
		for (round = 0; round < CHECK_PROTO_FUZZ_ROUNDS; round++) {
			uint64_t rnd = check_proto_rand(&state);
			unsigned flips = 1 + (unsigned)(rnd % 4);
			size_t len = n, pos;
			unsigned char *copy;
			struct proto_msg m;
			int r;

			memcpy(work, orig, n);
			memset(work + n, 0, sizeof(work) - n);
			for (k = 0; k < flips; k++) {
				rnd = check_proto_rand(&state);
				/* Half the flips in the header. */
				pos = (rnd >> 8) %
				      (rnd & 1 ? PROTO_HEADER_SIZE : n);
				work[pos] ^= check_proto_flip(rnd >> 32);
			}
			/* Sometimes also cut or extend the message. */
			rnd = check_proto_rand(&state);
			if (rnd % 8 == 0)
				len = (rnd >> 8) % n;
			else if (rnd % 8 == 1)
				len = n + 1 + (rnd >> 8) % 16;

			/* Exactly len bytes, so ASan sees any overread. */
			copy = malloc(len ? len : 1);
			ck_assert_ptr_nonnull(copy);
			memcpy(copy, work, len);
			r = proto_decode(copy, len, &m);
			ck_assert_msg(r == 0 || check_proto_is_error(r),
				      "type %u round %u: result %d", type,
				      round, r);
			if (r == 0) {
				/* A success must describe the bytes. */
				ok++;
				ck_assert_ptr_eq(m.topic,
						 (char *)copy +
							 PROTO_HEADER_SIZE);
				ck_assert_uint_eq(strlen(m.topic),
						  m.h.topic_len);
				ck_assert_uint_eq(strlen(m.key), m.h.key_len);
				ck_assert_uint_eq(
					proto_size_key(m.h.topic_len,
						       m.h.key_len,
						       m.h.payload_len),
					len);
				ck_assert_ptr_eq(m.payload,
						 (const unsigned char *)copy +
							 len -
							 m.h.payload_len);
			} else {
				seen[-r - PROTO_E_SHORT]++;
			}
			free(copy);
		}
	}
	for (k = 0; k < sizeof(seen) / sizeof(seen[0]); k++)
		if (seen[k] > 0)
			kinds++;
	/* The loop did reach both the accepting and several refusing paths. */
	ck_assert_uint_gt(ok, 0);
	ck_assert_uint_ge(kinds, 8);
	ck_assert_uint_eq(seen[PROTO_E_NOSPACE - PROTO_E_SHORT], 0);
}
END_TEST

START_TEST(check_proto_strerror)
{
	const char *msgs[PROTO_E_KEY - PROTO_E_SHORT + 1];
	const char *other = proto_strerror(-EINVAL);
	int e, f;

	for (e = PROTO_E_SHORT; e <= PROTO_E_KEY; e++) {
		const char *m = proto_strerror(-e);

		ck_assert_ptr_nonnull(m);
		ck_assert_uint_gt(strlen(m), 10);
		ck_assert_str_ne(m, other);
		ck_assert_str_ne(m, proto_strerror(INT_MIN));
		msgs[e - PROTO_E_SHORT] = m;
		for (f = PROTO_E_SHORT; f < e; f++)
			ck_assert_str_ne(m, msgs[f - PROTO_E_SHORT]);
	}
	ck_assert_ptr_nonnull(strstr(proto_strerror(-PROTO_E_SHORT), "64"));
	/* Plain errno values read as strerror() does. */
	ck_assert_str_eq(proto_strerror(-ENOENT), strerror(ENOENT));
	ck_assert_str_eq(proto_strerror(-EPROTONOSUPPORT),
			 strerror(EPROTONOSUPPORT));
	ck_assert_uint_gt(strlen(proto_strerror(0)), 0);
	ck_assert_uint_gt(strlen(proto_strerror(INT_MIN)), 0);
	ck_assert_uint_gt(strlen(proto_strerror(12345)), 0);
}
END_TEST

/* A frame's parts come out one by one, whole and in order. */
START_TEST(check_proto_batch_parts)
{
	struct proto_msg f, part;
	size_t off = 0;
	int n;

	check_proto_frame_build();
	n = (int)(PROTO_BATCH_HEAD + check_proto_frame_len);
	ck_assert_int_eq(proto_decode(check_proto_frame, (size_t)n, &f), 0);
	ck_assert_uint_eq(f.h.type, PROTO_BATCH);
	ck_assert_uint_eq(f.h.status, 2);
	ck_assert_uint_eq(f.h.priority, 12);
	ck_assert_int_eq(proto_batch_next(&f, &off, &part), 1);
	ck_assert_uint_eq(part.h.type, PROTO_DELIVER);
	ck_assert_str_eq(part.key, "probe:7");
	ck_assert_uint_eq(part.h.status, 3);
	ck_assert_uint_eq(part.h.seq, 0x0102030405060708ull);
	ck_assert_mem_eq(part.payload, check_proto_blob,
			 sizeof(check_proto_blob));
	ck_assert_int_eq(proto_batch_next(&f, &off, &part), 1);
	ck_assert_str_eq(part.key, "");
	ck_assert_uint_eq(part.h.status, 1);
	ck_assert_uint_eq(part.h.seq, 0x0102030405060709ull);
	ck_assert_int_eq(proto_batch_next(&f, &off, &part), 0);
	ck_assert_int_eq(proto_batch_next(&f, &off, &part), 0);
}
END_TEST

/* What a frame must not be: counted wrong, lengths that do not add up,
 * flags, nested frames, parts of the wrong type. */
/* A DELIVER of topic "a/b", payload "xyz" (and key "k" if keyed), with
 * the origin block o after it, into buf; returns its length. */
static size_t check_proto_origin_msg(unsigned char *buf, size_t cap,
				     const struct proto_origin *o, bool keyed)
{
	struct proto_header h;
	int n, k;

	proto_header_init(&h, PROTO_DELIVER);
	h.flags = PROTO_F_ORIGIN;
	h.sender_uid = 65534;
	h.client_id = 0xffffff00u;
	n = proto_encode_key(buf, cap, &h, "a/b", keyed ? "k" : NULL, "xyz",
			     3);
	ck_assert_int_gt(n, 0);
	k = proto_origin_encode(buf + n, cap - (size_t)n, o);
	ck_assert_int_gt(k, 0);
	CHECK_PROTO_SET(buf, origin_len, (uint32_t)k);
	return (size_t)n + (size_t)k;
}

START_TEST(check_proto_origin)
{
	static const char user64[] = "0123456789012345678901234567890123456789"
				     "012345678901234567890123";
	unsigned char buf[CHECK_PROTO_BUF], block[PROTO_ORIGIN_MAX + 8];
	struct proto_origin o = { .uid = 1000, .pid = 4242, .user = "alice",
				  .host = "host-a", .bridge = "b1" };
	struct proto_origin got, none = { .uid = PROTO_ORIGIN_UID_NONE,
					  .bridge = "x" };
	struct proto_msg m;
	size_t n, off;
	int k;

	/* a whole DELIVER with an origin, with and without a key */
	for (int keyed = 0; keyed < 2; keyed++) {
		n = check_proto_origin_msg(buf, sizeof(buf), &o, keyed);
		ck_assert_int_eq(proto_decode(buf, n, &m), 0);
		ck_assert_uint_eq(m.h.payload_len, 3);
		ck_assert_mem_eq(m.payload, "xyz", 3);
		ck_assert_str_eq(m.key, keyed ? "k" : "");
		ck_assert_ptr_nonnull(m.origin);
		ck_assert_uint_eq(m.h.origin_len, 12 + 6 + 7 + 3);
		ck_assert_int_eq(proto_origin_decode(m.origin, m.h.origin_len,
						     &got),
				 0);
		ck_assert_uint_eq(got.uid, 1000);
		ck_assert_uint_eq(got.pid, 4242);
		ck_assert_str_eq(got.user, "alice");
		ck_assert_str_eq(got.host, "host-a");
		ck_assert_str_eq(got.bridge, "b1");
	}
	/* a plain DELIVER has none */
	n = check_proto_origin_msg(buf, sizeof(buf), &o, false);
	CHECK_PROTO_SET(buf, flags, 0);
	CHECK_PROTO_SET(buf, origin_len, 0);
	ck_assert_int_eq(check_proto_decode(buf, n - 28), 0);
	ck_assert_int_eq(proto_decode(buf, n - 28, &m), 0);
	ck_assert_ptr_null(m.origin);

	/* nothing said but the bridge: the smallest block */
	k = proto_origin_encode(block, sizeof(block), &none);
	ck_assert_int_eq(k, 16);
	ck_assert_int_eq(proto_origin_decode(block, 16, &got), 0);
	ck_assert_uint_eq(got.uid, PROTO_ORIGIN_UID_NONE);
	ck_assert_str_eq(got.user, "");
	ck_assert_str_eq(got.host, "");
	/* the largest */
	o.user = "u2345678901234567890123456789012";
	o.host = user64;
	o.bridge = "b2345678901234567890123456789012";
	k = proto_origin_encode(block, sizeof(block), &o);
	ck_assert_int_eq(k, PROTO_ORIGIN_MAX);
	ck_assert_int_eq(proto_origin_decode(block, (size_t)k, NULL), 0);
	ck_assert_int_eq(proto_origin_encode(block, PROTO_ORIGIN_MAX - 1, &o),
			 -PROTO_E_NOSPACE);

	/* the encoder refuses what the decoder would */
	o.user = "u23456789012345678901234567890123"; /* 33 */
	ck_assert_int_eq(proto_origin_encode(block, sizeof(block), &o),
			 -PROTO_E_FIELD);
	o.user = "al ice";
	ck_assert_int_eq(proto_origin_encode(block, sizeof(block), &o),
			 -PROTO_E_FIELD);
	o.user = "alice";
	o.bridge = "";
	ck_assert_int_eq(proto_origin_encode(block, sizeof(block), &o),
			 -PROTO_E_FIELD);
	o.bridge = "b1";
	o.host = "host-a";

	/* broken blocks inside a DELIVER: each refused, nothing filled */
	n = check_proto_origin_msg(buf, sizeof(buf), &o, false);
	off = n - (12 + 6 + 7 + 3);
	ck_assert_int_eq(check_proto_decode(buf, n), 0);
	buf[off + 8] = 6; /* user_len disagrees with origin_len */
	ck_assert_int_eq(check_proto_decode(buf, n), -PROTO_E_FIELD);
	buf[off + 8] = 5;
	buf[off + 11] = 1; /* the zero byte */
	ck_assert_int_eq(check_proto_decode(buf, n), -PROTO_E_FIELD);
	buf[off + 11] = 0;
	buf[off + 12 + 5] = 'x'; /* the user's NUL */
	ck_assert_int_eq(check_proto_decode(buf, n), -PROTO_E_FIELD);
	buf[off + 12 + 5] = 0;
	buf[off + 12 + 1] = '\n'; /* not printable */
	ck_assert_int_eq(check_proto_decode(buf, n), -PROTO_E_FIELD);
	buf[off + 12 + 1] = 0x80;
	ck_assert_int_eq(check_proto_decode(buf, n), -PROTO_E_FIELD);
	buf[off + 12 + 1] = 'l';
	ck_assert_int_eq(check_proto_decode(buf, n), 0);
	/* a bridge_len of 0 and lengths that add up differently */
	buf[off + 10] = 0;
	buf[off + 9] = 9;
	ck_assert_int_eq(check_proto_decode(buf, n), -PROTO_E_FIELD);
	buf[off + 10] = 2;
	buf[off + 9] = 6;
	ck_assert_int_eq(check_proto_decode(buf, n), 0);
	/* origin_len past the message, or beyond the maximum */
	CHECK_PROTO_SET(buf, origin_len, 29);
	ck_assert_int_eq(check_proto_decode(buf, n), -PROTO_E_LENGTH);
	CHECK_PROTO_SET(buf, origin_len, 0xffffffffu);
	ck_assert_int_eq(check_proto_decode(buf, n), -PROTO_E_LENGTH);
	CHECK_PROTO_SET(buf, origin_len, 27);
	ck_assert_int_eq(check_proto_decode(buf, n), -PROTO_E_LENGTH);
	CHECK_PROTO_SET(buf, origin_len, 28);
	/* the flag without a block, a block without the flag */
	CHECK_PROTO_SET(buf, flags, 0);
	ck_assert_int_eq(check_proto_decode(buf, n), -PROTO_E_FLAGS);
	CHECK_PROTO_SET(buf, flags, PROTO_F_ORIGIN);
	CHECK_PROTO_SET(buf, origin_len, 0);
	ck_assert_int_eq(check_proto_decode(buf, n), -PROTO_E_FLAGS);
	CHECK_PROTO_SET(buf, origin_len, 28);
	/* on a PUBLISH: refused (only a DELIVER carries one) */
	CHECK_PROTO_SET(buf, type, PROTO_PUBLISH);
	ck_assert_int_eq(check_proto_decode(buf, n), -PROTO_E_FLAGS);
	CHECK_PROTO_SET(buf, type, PROTO_DELIVER);
	/* not on a drop notice */
	CHECK_PROTO_SET(buf, flags, PROTO_F_ORIGIN | PROTO_F_DROPS);
	CHECK_PROTO_SET(buf, payload_len, 0);
	CHECK_PROTO_SET(buf, status, 3);
	memmove(buf + off - 3, buf + off, 28);
	ck_assert_int_eq(check_proto_decode(buf, n - 3), -PROTO_E_FIELD);
	CHECK_PROTO_SET(buf, flags, PROTO_F_ORIGIN);
	ck_assert_int_eq(check_proto_decode(buf, n - 3), 0);

	/* the request bit on an ANNOUNCE, and nowhere else */
	ck_assert_int_eq(proto_origin_decode(block, 14, NULL), -PROTO_E_FIELD);
	ck_assert_int_eq(proto_origin_decode(block, PROTO_ORIGIN_MAX + 1, NULL),
			 -PROTO_E_FIELD);
	{
		struct proto_header h;
		unsigned char a[PROTO_HEADER_SIZE + 16];
		int len;

		proto_header_init(&h, PROTO_ANNOUNCE);
		h.flags = PROTO_F_ORIGIN | PROTO_F_BATCH;
		len = proto_encode(a, sizeof(a), &h, "/b.1.tx", NULL, 0);
		ck_assert_int_eq(check_proto_decode(a, (size_t)len), 0);
		CHECK_PROTO_SET(a, type, PROTO_SUBSCRIBE);
		ck_assert_int_eq(check_proto_decode(a, (size_t)len),
				 -PROTO_E_FLAGS);
	}
}
END_TEST

START_TEST(check_proto_batch_rules)
{
	unsigned char buf[1024], part[256];
	size_t len, used;
	struct proto_msg f, p;
	struct proto_header h;
	uint32_t v;
	size_t off = 0;
	int n;

	check_proto_frame_build();
	len = PROTO_BATCH_HEAD + check_proto_frame_len;
	/* status says 3 parts, there are 2 */
	memcpy(buf, check_proto_frame, len);
	v = 3;
	memcpy(buf + offsetof(struct proto_header, status), &v, sizeof(v));
	ck_assert_int_eq(proto_decode(buf, len, &f), -PROTO_E_FIELD);
	/* no parts at all */
	v = 0;
	memcpy(buf + offsetof(struct proto_header, status), &v, sizeof(v));
	ck_assert_int_eq(proto_decode(buf, len, &f), -PROTO_E_FIELD);
	/* a part length one byte too long, or too short for a header */
	memcpy(buf, check_proto_frame, len);
	memcpy(&v, buf + PROTO_BATCH_HEAD, sizeof(v));
	v++;
	memcpy(buf + PROTO_BATCH_HEAD, &v, sizeof(v));
	ck_assert_int_eq(proto_decode(buf, len, &f), -PROTO_E_LENGTH);
	v = PROTO_HEADER_SIZE - 1;
	memcpy(buf + PROTO_BATCH_HEAD, &v, sizeof(v));
	ck_assert_int_eq(proto_decode(buf, len, &f), -PROTO_E_LENGTH);
	/* a frame has no flags, and no topic */
	memcpy(buf, check_proto_frame, len);
	CHECK_PROTO_SET(buf, flags, (uint16_t)PROTO_F_PRIORITY);
	ck_assert_int_lt(proto_decode(buf, len, &f), 0);
	/* a frame inside a frame is decoded but refused as a part */
	ck_assert_int_eq(proto_batch_begin(buf, sizeof(buf), 12),
			 PROTO_BATCH_HEAD);
	used = PROTO_BATCH_HEAD;
	ck_assert_int_eq(proto_batch_add(buf, sizeof(buf), &used,
					 check_proto_frame, len), 0);
	ck_assert_int_eq(proto_decode(buf, used, &f), 0);
	ck_assert_int_eq(proto_batch_next(&f, &off, &p), -PROTO_E_TYPE);
	ck_assert_int_eq(proto_batch_next(&f, &off, &p), 0);
	/* an ACK is no part either; a part that does not decode is
	 * skipped and the next one still read */
	proto_header_init(&h, PROTO_ACK);
	h.token = 1;
	n = proto_encode(part, sizeof(part), &h, NULL, NULL, 0);
	ck_assert_int_gt(n, 0);
	ck_assert_int_eq(proto_batch_begin(buf, sizeof(buf), 0),
			 PROTO_BATCH_HEAD);
	used = PROTO_BATCH_HEAD;
	ck_assert_int_eq(proto_batch_add(buf, sizeof(buf), &used, part,
					 (size_t)n), 0);
	part[0] ^= 0xff; /* bad magic */
	ck_assert_int_eq(proto_batch_add(buf, sizeof(buf), &used, part,
					 (size_t)n), 0);
	part[0] ^= 0xff;
	proto_header_init(&h, PROTO_PUBLISH);
	n = proto_encode(part, sizeof(part), &h, "a/b", "x", 1);
	ck_assert_int_eq(proto_batch_add(buf, sizeof(buf), &used, part,
					 (size_t)n), 0);
	ck_assert_int_eq(proto_decode(buf, used, &f), 0);
	off = 0;
	ck_assert_int_eq(proto_batch_next(&f, &off, &p), -PROTO_E_TYPE);
	ck_assert_int_eq(proto_batch_next(&f, &off, &p), -PROTO_E_MAGIC);
	ck_assert_int_eq(proto_batch_next(&f, &off, &p), 1);
	ck_assert_str_eq(p.topic, "a/b");
	/* no room: nothing changes */
	n = (int)used;
	ck_assert_int_eq(proto_batch_add(buf, (size_t)n + 10, &used, part,
					 (size_t)n), -PROTO_E_NOSPACE);
	ck_assert_uint_eq(used, (size_t)n);
	/* the flag: an ANNOUNCE's and a WELCOME's only */
	proto_header_init(&h, PROTO_PUBLISH);
	h.flags = PROTO_F_BATCH;
	n = proto_encode(part, sizeof(part), &h, "a/b", "x", 1);
	ck_assert_int_eq(proto_decode(part, (size_t)n, &p), -PROTO_E_FLAGS);
	proto_header_init(&h, PROTO_ANNOUNCE);
	h.flags = PROTO_F_BATCH | PROTO_F_RESUME;
	n = proto_encode(part, sizeof(part), &h, "/mqbus.1.0.tx", NULL, 0);
	ck_assert_int_eq(proto_decode(part, (size_t)n, &p), 0);
}
END_TEST

START_TEST(check_proto_type_names)
{
	static const char *const names[] = {
		NULL, "ANNOUNCE", "HELLO", "WELCOME", "PUBLISH",
		"DELIVER", "SUBSCRIBE", "UNSUBSCRIBE", "ACK", "ERROR",
		"BYE", "STATS", "REQUEST", "REPLY", "TIMER_ADD",
		"TIMER_CANCEL", "TIMER_LIST", "QUERY", "BATCH",
	};
	unsigned t;

	ck_assert_uint_eq(sizeof(names) / sizeof(names[0]),
			  PROTO_TYPE_MAX + 1);
	for (t = 1; t <= PROTO_TYPE_MAX; t++)
		ck_assert_str_eq(proto_type_name(t), names[t]);
	ck_assert_str_eq(proto_type_name(0), "unknown");
	ck_assert_str_eq(proto_type_name(PROTO_TYPE_MAX + 1), "unknown");
	ck_assert_str_eq(proto_type_name(99), "unknown");
	ck_assert_str_eq(proto_type_name(UINT_MAX), "unknown");
}
END_TEST

/* -------------------------------------------------------------------- */
/* FRAGMENT (proto/frag.h)                                               */

/* A piece of a whole PUBLISH of total bytes: off, len bytes of it. */
static int check_frag(unsigned char *buf, size_t cap, uint32_t id,
		      size_t off, size_t total, size_t len)
{
	static unsigned char whole[4096];

	memset(whole, 'w', sizeof(whole));
	return frag_encode(buf, cap, id, off, total, 0, whole, len);
}

START_TEST(check_proto_fragment_rules)
{
	unsigned char buf[CHECK_PROTO_BUF];
	struct proto_msg m;
	int n;

	/* a first piece, a middle one, the last one */
	n = check_frag(buf, sizeof(buf), 7, 0, 5000, 1983);
	ck_assert_int_eq(n, FRAG_OVERHEAD + 1983);
	ck_assert_int_eq(proto_decode(buf, (size_t)n, &m), 0);
	ck_assert_uint_eq(m.h.type, PROTO_FRAGMENT);
	ck_assert_uint_eq(m.h.token, 7);
	ck_assert_uint_eq(m.h.timestamp, 5000);
	ck_assert(frag_continues(&m, 7, 5000, 0));
	ck_assert(!frag_continues(&m, 7, 5000, 1));
	ck_assert(!frag_continues(&m, 8, 5000, 0));
	ck_assert(!frag_continues(&m, 7, 5001, 0));
	n = check_frag(buf, sizeof(buf), 7, 1983, 5000, 1983);
	ck_assert_int_eq(proto_decode(buf, (size_t)n, &m), 0);
	n = check_frag(buf, sizeof(buf), 7, 3966, 5000, 1034);
	ck_assert_int_eq(proto_decode(buf, (size_t)n, &m), 0);
	/* a limit declaration */
	n = frag_encode_limit(buf, sizeof(buf), 100000);
	ck_assert_int_eq(proto_decode(buf, (size_t)n, &m), 0);
	ck_assert_uint_eq(m.h.seq, 100000);

	/* a piece past the end of its message, or ending past it */
	n = check_frag(buf, sizeof(buf), 7, 5000, 5000, 10);
	ck_assert_int_eq(proto_decode(buf, (size_t)n, NULL), -PROTO_E_FIELD);
	n = check_frag(buf, sizeof(buf), 7, 4000, 5000, 1001);
	ck_assert_int_eq(proto_decode(buf, (size_t)n, NULL), -PROTO_E_FIELD);
	/* an empty piece; a message of no bytes, or too large */
	n = check_frag(buf, sizeof(buf), 7, 10, 5000, 0);
	ck_assert_int_eq(proto_decode(buf, (size_t)n, NULL), -PROTO_E_FIELD);
	n = check_frag(buf, sizeof(buf), 7, 0, 0, 100);
	ck_assert_int_eq(proto_decode(buf, (size_t)n, NULL), -PROTO_E_FIELD);
	n = check_frag(buf, sizeof(buf), 7, 0, FRAG_TOTAL_MAX + 1ull, 100);
	ck_assert_int_eq(proto_decode(buf, (size_t)n, NULL), -PROTO_E_FIELD);
	/* a first piece without the whole inner header */
	n = check_frag(buf, sizeof(buf), 7, 0, 5000, PROTO_HEADER_SIZE - 1);
	ck_assert_int_eq(proto_decode(buf, (size_t)n, NULL), -PROTO_E_FIELD);
	n = check_frag(buf, sizeof(buf), 7, 0, 5000, PROTO_HEADER_SIZE);
	ck_assert_int_eq(proto_decode(buf, (size_t)n, NULL), 0);
	/* a limit declaration with a payload, without a limit */
	n = check_frag(buf, sizeof(buf), 0, 0, 0, 0);
	ck_assert_int_eq(proto_decode(buf, (size_t)n, NULL), -PROTO_E_FIELD);
	n = check_frag(buf, sizeof(buf), 0, 100, 0, 5);
	ck_assert_int_eq(proto_decode(buf, (size_t)n, NULL), -PROTO_E_FIELD);
	/* flags, a topic, a status */
	n = check_frag(buf, sizeof(buf), 7, 0, 5000, 100);
	CHECK_PROTO_SET(buf, flags, PROTO_F_PRIORITY);
	ck_assert_int_eq(proto_decode(buf, (size_t)n, NULL), -PROTO_E_FLAGS);
	CHECK_PROTO_SET(buf, flags, 0);
	CHECK_PROTO_SET(buf, status, 1);
	ck_assert_int_eq(proto_decode(buf, (size_t)n, NULL), -PROTO_E_FIELD);
	CHECK_PROTO_SET(buf, status, 0);
	CHECK_PROTO_SET(buf, priority, PROTO_PRIO_MAX + 1);
	ck_assert_int_eq(proto_decode(buf, (size_t)n, NULL), -PROTO_E_FIELD);
	{
		struct proto_header h;

		static const unsigned char piece[100];

		proto_header_init(&h, PROTO_FRAGMENT);
		h.token = 7;
		h.timestamp = 5000;
		n = proto_encode(buf, sizeof(buf), &h, "a/b", piece,
				 sizeof(piece));
		ck_assert_int_eq(proto_decode(buf, (size_t)n, NULL),
				 -PROTO_E_TOPIC);
	}
	ck_assert_str_eq(proto_type_name(PROTO_FRAGMENT), "FRAGMENT");
	/* what may come in pieces */
	ck_assert(frag_type_ok(PROTO_PUBLISH) && frag_type_ok(PROTO_REQUEST) &&
		  frag_type_ok(PROTO_REPLY) && frag_type_ok(PROTO_DELIVER));
	ck_assert(!frag_type_ok(PROTO_TIMER_ADD) &&
		  !frag_type_ok(PROTO_FRAGMENT) && !frag_type_ok(PROTO_STATS));
}
END_TEST

/* The decoder's fuzz loop on fragments: whatever it accepts is a piece
 * within its message (or a limit declaration). */
START_TEST(check_proto_fragment_fuzz)
{
	unsigned char orig[CHECK_PROTO_BUF], copy[CHECK_PROTO_BUF + 16];
	uint64_t state = 0x243f6a8885a308d3ull;
	unsigned ok = 0, refused = 0;
	int n;

	for (unsigned round = 0; round < 4 * CHECK_PROTO_FUZZ_ROUNDS;
	     round++) {
		uint64_t rnd = check_proto_rand(&state);
		size_t len;
		struct proto_msg m;
		int r;

		n = round % 3 == 2 ? frag_encode_limit(orig, sizeof(orig), 999)
				   : check_frag(orig, sizeof(orig), 3,
						round % 3 ? 1983 : 0, 4000,
						1983);
		ck_assert_int_gt(n, 0);
		len = (size_t)n;
		memcpy(copy, orig, len);
		for (unsigned k = 0; k < 1 + rnd % 3; k++) {
			uint64_t x = check_proto_rand(&state);

			copy[(x >> 8) % PROTO_HEADER_SIZE] ^=
				check_proto_flip(x >> 32);
		}
		if (rnd % 8 == 0)
			len = (rnd >> 8) % len;
		r = proto_decode(copy, len, &m);
		ck_assert(r == 0 || check_proto_is_error(r));
		if (r != 0 || m.h.type != PROTO_FRAGMENT) {
			refused += r != 0;
			continue;
		}
		ok++;
		ck_assert_uint_eq(m.h.topic_len, 0);
		ck_assert_uint_eq(m.h.flags, 0);
		if (m.h.token == 0) {
			ck_assert_uint_eq(m.h.payload_len, 0);
			continue;
		}
		ck_assert_uint_gt(m.h.payload_len, 0);
		ck_assert_uint_le(m.h.seq + m.h.payload_len, m.h.timestamp);
		ck_assert_uint_le(m.h.timestamp, FRAG_TOTAL_MAX);
		if (m.h.seq == 0)
			ck_assert_uint_ge(m.h.payload_len, PROTO_HEADER_SIZE);
	}
	ck_assert_uint_gt(ok, 0);
	ck_assert_uint_gt(refused, 0);
}
END_TEST

static Suite *check_proto_suite(void)
{
	Suite *s = suite_create("proto");
	TCase *tc;

	tc = tcase_create("encode");
	tcase_add_test(tc, check_proto_header_init);
	tcase_add_loop_test(tc, check_proto_roundtrip, PROTO_ANNOUNCE,
			    PROTO_TYPE_MAX + 1);
	tcase_add_test(tc, check_proto_roundtrip_unaligned);
	tcase_add_test(tc, check_proto_roundtrip_limits);
	tcase_add_test(tc, check_proto_encode_fields);
	tcase_add_test(tc, check_proto_shm_heads);
	tcase_add_test(tc, check_proto_encode_nospace);
	tcase_add_test(tc, check_proto_encode_toobig);
	suite_add_tcase(s, tc);

	tc = tcase_create("framing");
	tcase_add_test(tc, check_proto_short);
	tcase_add_test(tc, check_proto_body_cut);
	tcase_add_test(tc, check_proto_topic_len_too_big);
	tcase_add_test(tc, check_proto_length_mismatch);
	tcase_add_test(tc, check_proto_missing_nul);
	tcase_add_test(tc, check_proto_bad_magic);
	tcase_add_test(tc, check_proto_bad_version);
	tcase_add_test(tc, check_proto_bad_type);
	tcase_add_test(tc, check_proto_bad_flags);
	tcase_add_test(tc, check_proto_reserved);
	tcase_add_test(tc, check_proto_keys);
	tcase_add_test(tc, check_proto_error_order);
	suite_add_tcase(s, tc);

	tc = tcase_create("rules");
	tcase_add_test(tc, check_proto_bad_publish_topics);
	tcase_add_test(tc, check_proto_patterns);
	tcase_add_test(tc, check_proto_topic_rules);
	tcase_add_test(tc, check_proto_qnames);
	tcase_add_test(tc, check_proto_announce_hello);
	tcase_add_test(tc, check_proto_welcome_rules);
	tcase_add_test(tc, check_proto_priority);
	tcase_add_test(tc, check_proto_control_rules);
	tcase_add_test(tc, check_proto_query_rules);
	tcase_add_test(tc, check_proto_fragment_rules);
	suite_add_tcase(s, tc);

	tc = tcase_create("misc");
	tcase_add_test(tc, check_proto_fuzz);
	tcase_add_test(tc, check_proto_fragment_fuzz);
	tcase_add_test(tc, check_proto_strerror);
	tcase_add_test(tc, check_proto_type_names);
	tcase_add_test(tc, check_proto_batch_parts);
	tcase_add_test(tc, check_proto_batch_rules);
	tcase_add_test(tc, check_proto_origin);
	/* The fuzz loop is slow under valgrind and the sanitizers. */
	tcase_set_timeout(tc, 120);
	suite_add_tcase(s, tc);

	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(check_proto_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
