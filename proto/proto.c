/* SPDX-License-Identifier: MIT */
/*
 * proto.c - encoding, decoding and validation of mqbus wire messages.
 *
 * The daemon runs every byte it reads from a client queue through
 * proto_decode() before looking at it, so this is the trust boundary of
 * the bus: the decoder checks each length against the bytes actually
 * received, never reads past them, and checks the rules of each message
 * type, so that the rest of the code may rely on a decoded message being
 * well formed.  PROTOCOL.md is the written spec of what is checked here.
 */
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "proto/frag.h"
#include "proto/proto.h"

void proto_header_init(struct proto_header *h, enum proto_type type)
{
	memset(h, 0, sizeof(*h));
	h->magic = PROTO_MAGIC;
	h->version = PROTO_VERSION;
	h->type = (uint8_t)type;
}

/* Copies len bytes of s and a NUL to p; returns what follows. */
static unsigned char *put_string(unsigned char *p, const char *s, size_t len)
{
	memcpy(p, s, len);
	p[len] = '\0';
	return p + len + 1;
}

int proto_encode_key(void *buf, size_t cap, const struct proto_header *h,
		     const char *topic, const char *key, const void *payload,
		     size_t payload_len)
{
	struct proto_header wire;
	unsigned char *p = buf;
	size_t topic_len, key_len, total;

	if (!h || (!payload && payload_len > 0))
		return -EINVAL;
	if (!topic)
		topic = "";
	if (!key)
		key = "";
	/* Bounded, so a missing NUL in the caller's strings is not scanned
	 * for ever: anything past the limit is too big anyway. */
	topic_len = strnlen(topic, PROTO_TOPIC_MAX + 1);
	if (topic_len > PROTO_TOPIC_MAX)
		return -PROTO_E_TOOBIG;
	key_len = strnlen(key, PROTO_KEY_MAX + 1);
	if (key_len > PROTO_KEY_MAX)
		return -PROTO_E_KEY;
	/*
	 * The total must fit the int we return, which also keeps payload_len
	 * within its 32-bit field; real mq message sizes are far below.
	 */
	if (payload_len >
	    (size_t)INT_MAX - proto_size_key(topic_len, key_len, 0))
		return -EMSGSIZE;
	total = proto_size_key(topic_len, key_len, payload_len);
	if (!buf || cap < total)
		return -PROTO_E_NOSPACE;

	memcpy(&wire, h, sizeof(wire));
	wire.topic_len = (uint16_t)topic_len;
	wire.key_len = (uint16_t)key_len;
	wire.payload_len = (uint32_t)payload_len;
	memcpy(p, &wire, sizeof(wire));
	p = put_string(p + sizeof(wire), topic, topic_len);
	if (key_len > 0)
		p = put_string(p, key, key_len);
	if (payload_len > 0)
		memcpy(p, payload, payload_len);
	return (int)total;
}

int proto_encode(void *buf, size_t cap, const struct proto_header *h,
		 const char *topic, const void *payload, size_t payload_len)
{
	return proto_encode_key(buf, cap, h, topic, NULL, payload,
				payload_len);
}

/* Whether a message of this type may carry a key. */
static bool proto_type_keyed(unsigned type)
{
	return type == PROTO_PUBLISH || type == PROTO_DELIVER ||
	       type == PROTO_TIMER_ADD;
}

int proto_encode_head(void *buf, size_t cap, const struct proto_header *h,
		      const char *topic, const char *key, size_t payload_len)
{
	const size_t at = offsetof(struct proto_header, payload_len);
	uint32_t len = (uint32_t)payload_len;
	int n;

	if (payload_len > UINT32_MAX)
		return -EMSGSIZE;
	n = proto_encode_key(buf, cap, h, topic, key, NULL, 0);
	if (n > 0)
		memcpy((unsigned char *)buf + at, &len, sizeof(len));
	return n;
}

bool proto_type_shm(unsigned type)
{
	return type == PROTO_PUBLISH || type == PROTO_REQUEST ||
	       type == PROTO_REPLY || type == PROTO_DELIVER;
}

/*
 * A frame's framing: status parts, each a length and at least a header,
 * filling payload_len exactly.  The parts themselves are decoded one by
 * one as they are read (proto_batch_next()).
 */
static int proto_batch_check(const struct proto_header *h,
			     const char *payload)
{
	size_t left = h->payload_len, n = 0;
	const unsigned char *p = (const unsigned char *)payload;

	while (left > 0) {
		uint32_t len;

		if (left < PROTO_BATCH_PART_HEAD)
			return -PROTO_E_LENGTH;
		memcpy(&len, p, sizeof(len));
		left -= PROTO_BATCH_PART_HEAD;
		p += PROTO_BATCH_PART_HEAD;
		if (len < PROTO_HEADER_SIZE || len > left)
			return -PROTO_E_LENGTH;
		left -= len;
		p += len;
		n++;
	}
	return n == h->status ? 0 : -PROTO_E_FIELD;
}

/*
 * Rules of the single message types, run once the framing (magic, version,
 * lengths, the topic's NUL) is known to be sound.
 */
static int proto_check_type(const struct proto_header *h, const char *topic,
			    const char *payload)
{
	switch (h->type) {
	case PROTO_ANNOUNCE:
		if (!proto_qname_valid(topic, h->topic_len))
			return -PROTO_E_TOPIC;
		if (h->payload_len != 0)
			return -PROTO_E_FIELD;
		return 0;
	case PROTO_HELLO:
		if (!proto_qname_valid(topic, h->topic_len))
			return -PROTO_E_TOPIC;
		/* The pid is only a claim, checked by the daemon against
		 * the queue owner; 0 would not even name a process. */
		if (h->payload_len != 0 || h->sender_pid == 0)
			return -PROTO_E_FIELD;
		return 0;
	case PROTO_WELCOME:
		/* the topic is the address to attach to for memory files */
		if ((h->topic_len != 0) != ((h->flags & PROTO_F_SHM) != 0) ||
		    !proto_origin_string_valid(topic, h->topic_len,
					       PROTO_SHM_ADDR_MAX - 1))
			return -PROTO_E_TOPIC;
		if (h->payload_len != sizeof(struct proto_welcome) ||
		    h->client_id == 0)
			return -PROTO_E_FIELD;
		return 0;
	case PROTO_PUBLISH:
	case PROTO_DELIVER:
		if (!proto_topic_valid(topic, h->topic_len, false))
			return -PROTO_E_TOPIC;
		/* mq_send() refuses priorities above the kernel's limit, so
		 * one that could not be used is refused here already. */
		if (h->priority > PROTO_PRIO_MAX)
			return -PROTO_E_FIELD;
		/* only a delivered request carries (and needs) its id */
		if ((h->flags & PROTO_F_REQUEST) &&
		    (h->type != PROTO_DELIVER || h->token == 0))
			return -PROTO_E_FIELD;
		/* a monitor's copies come from the daemon; a reply copy is
		 * one, has its request's id and is no request itself */
		if ((h->flags & PROTO_F_MONITOR) && h->type != PROTO_DELIVER)
			return -PROTO_E_FIELD;
		if ((h->flags & PROTO_F_REPLY) &&
		    (!(h->flags & PROTO_F_MONITOR) ||
		     (h->flags & PROTO_F_REQUEST) || h->token == 0))
			return -PROTO_E_FIELD;
		/* a drop notice comes from the daemon and carries a count
		 * only */
		if ((h->flags & PROTO_F_DROPS) &&
		    (h->type != PROTO_DELIVER || h->payload_len != 0 ||
		     h->status == 0 || h->key_len != 0 ||
		     (h->flags & (PROTO_F_REQUEST | PROTO_F_RETAINED))))
			return -PROTO_E_FIELD;
		return 0;
	case PROTO_SUBSCRIBE:
	case PROTO_UNSUBSCRIBE:
		if (!proto_topic_valid(topic, h->topic_len, true))
			return -PROTO_E_TOPIC;
		/* the payload, if any, names a queue group; a monitor is
		 * in none */
		if (h->payload_len != 0 &&
		    ((h->flags & PROTO_F_MONITOR) ||
		     !proto_group_valid(payload, h->payload_len)))
			return -PROTO_E_FIELD;
		if (h->flags & PROTO_F_REPLY)
			return -PROTO_E_FIELD;
		return 0;
	case PROTO_REQUEST:
		if (!proto_topic_valid(topic, h->topic_len, false))
			return -PROTO_E_TOPIC;
		if (h->priority > PROTO_PRIO_MAX || h->token == 0)
			return -PROTO_E_FIELD;
		return 0;
	case PROTO_REPLY:
		if (h->topic_len != 0)
			return -PROTO_E_TOPIC;
		if (h->token == 0)
			return -PROTO_E_FIELD;
		return 0;
	case PROTO_TIMER_ADD:
		if (!proto_topic_valid(topic, h->topic_len, false))
			return -PROTO_E_TOPIC;
		if (h->priority > PROTO_PRIO_MAX)
			return -PROTO_E_FIELD;
		return 0;
	case PROTO_TIMER_CANCEL:
		if (h->topic_len != 0)
			return -PROTO_E_TOPIC;
		if (h->seq == 0 || h->payload_len != 0)
			return -PROTO_E_FIELD;
		return 0;
	case PROTO_TIMER_LIST:
		if (h->topic_len != 0)
			return -PROTO_E_TOPIC;
		return 0;
	case PROTO_QUERY:
		/* the topic, if any, is where to resume: a concrete topic */
		if (h->topic_len != 0 &&
		    !proto_topic_valid(topic, h->topic_len, false))
			return -PROTO_E_TOPIC;
		if (h->status == 0 || h->status > PROTO_QUERY_MAX ||
		    h->priority != 0)
			return -PROTO_E_FIELD;
		return 0;
	case PROTO_ACK:
		if (h->topic_len != 0)
			return -PROTO_E_TOPIC;
		if (h->payload_len != 0)
			return -PROTO_E_FIELD;
		return 0;
	case PROTO_ERROR:
		if (h->topic_len != 0)
			return -PROTO_E_TOPIC;
		/* An error that says "no error" is a broken sender. */
		if (h->status == 0)
			return -PROTO_E_FIELD;
		return 0;
	case PROTO_BATCH:
		if (h->topic_len != 0)
			return -PROTO_E_TOPIC;
		if (h->priority > PROTO_PRIO_MAX || h->status == 0)
			return -PROTO_E_FIELD;
		return proto_batch_check(h, payload);
	case PROTO_BYE:
	case PROTO_STATS:
		if (h->topic_len != 0)
			return -PROTO_E_TOPIC;
		return 0;
	default:
		/* proto_decode() has checked the type already. */
		return -PROTO_E_TYPE;
	}
}

int proto_decode(const void *buf, size_t len, struct proto_msg *ret)
{
	const unsigned char *p = buf;
	const char *topic, *key, *payload;
	struct proto_header h;
	size_t body, strings;
	bool shm;
	int r;

	if (!buf || len < PROTO_HEADER_SIZE)
		return -PROTO_E_SHORT;
	/* The buffer may sit at any address: copy, never cast. */
	memcpy(&h, p, sizeof(h));

	if (h.magic != PROTO_MAGIC)
		return -PROTO_E_MAGIC;
	if (h.version != PROTO_VERSION)
		return -PROTO_E_VERSION;
	if ((h.type == 0 || h.type > PROTO_TYPE_MAX) &&
	    h.type != PROTO_FRAGMENT)
		return -PROTO_E_TYPE;
	if ((h.flags & ~PROTO_F_ALL) != 0)
		return -PROTO_E_FLAGS;
	/* a payload in a memory file: a message's, with the file's tag;
	 * the flag is an offer on an ANNOUNCE and a WELCOME */
	shm = (h.flags & PROTO_F_SHM) && proto_type_shm(h.type);
	if ((h.flags & PROTO_F_SHM) && !shm && h.type != PROTO_ANNOUNCE &&
	    h.type != PROTO_WELCOME)
		return -PROTO_E_FLAGS;
	if ((h.shm_tag != 0) != shm)
		return -PROTO_E_FLAGS;
	/* a slot of an area is a kind of memory file */
	if ((h.flags & PROTO_F_AREA) && !shm)
		return -PROTO_E_FLAGS;
	/* an origin block is a DELIVER's, announced by its flag; the flag
	 * is a request on an ANNOUNCE */
	if ((h.flags & PROTO_F_ORIGIN) && h.type != PROTO_DELIVER &&
	    h.type != PROTO_ANNOUNCE)
		return -PROTO_E_FLAGS;
	if ((h.origin_len != 0) !=
	    (h.type == PROTO_DELIVER && (h.flags & PROTO_F_ORIGIN)))
		return -PROTO_E_FLAGS;
	/* the monitor bits mean something on three types only */
	if ((h.flags & (PROTO_F_MONITOR | PROTO_F_REPLY)) &&
	    h.type != PROTO_DELIVER && h.type != PROTO_SUBSCRIBE &&
	    h.type != PROTO_UNSUBSCRIBE)
		return -PROTO_E_FLAGS;
	if ((h.flags & PROTO_F_DROPS) && h.type != PROTO_DELIVER)
		return -PROTO_E_FLAGS;
	/* a QUERY has no flag but PROTO_F_MORE, which only it has */
	if ((h.flags & PROTO_F_MORE) && h.type != PROTO_QUERY)
		return -PROTO_E_FLAGS;
	if (h.type == PROTO_QUERY && (h.flags & ~PROTO_F_MORE))
		return -PROTO_E_FLAGS;
	/* PROTO_F_RESUME and PROTO_F_BATCH are an ANNOUNCE's only flags,
	 * PROTO_F_BATCH a WELCOME's, and a BATCH has none */
	if ((h.flags & PROTO_F_RESUME) && h.type != PROTO_ANNOUNCE)
		return -PROTO_E_FLAGS;
	if ((h.flags & PROTO_F_BATCH) && h.type != PROTO_ANNOUNCE &&
	    h.type != PROTO_WELCOME)
		return -PROTO_E_FLAGS;
	if (h.type == PROTO_WELCOME &&
	    (h.flags & ~(PROTO_F_BATCH | PROTO_F_SHM)))
		return -PROTO_E_FLAGS;
	if (h.type == PROTO_ANNOUNCE &&
	    (h.flags & ~(PROTO_F_RESUME | PROTO_F_BATCH | PROTO_F_ORIGIN |
			 PROTO_F_SHM)))
		return -PROTO_E_FLAGS;
	if (h.type == PROTO_BATCH && h.flags)
		return -PROTO_E_FLAGS;
	if (h.topic_len > PROTO_TOPIC_MAX)
		return -PROTO_E_TOOBIG;

	/*
	 * Compare by subtraction from what was received rather than by
	 * adding up the header's lengths: payload_len is a 32-bit number
	 * from the sender and the sum could wrap where size_t is 32 bits.
	 */
	body = len - PROTO_HEADER_SIZE;
	strings = proto_size_key(h.topic_len, h.key_len, 0) - PROTO_HEADER_SIZE;
	if (shm) {
		/* nothing after the strings: the payload is in the file */
		if (body != strings || h.origin_len != 0)
			return -PROTO_E_LENGTH;
		if (h.payload_len < PROTO_SHM_MIN)
			return -PROTO_E_FIELD;
	} else if (body < strings || body - strings < h.origin_len ||
		   body - strings - h.origin_len != h.payload_len) {
		return -PROTO_E_LENGTH;
	}
	topic = (const char *)p + PROTO_HEADER_SIZE;
	if (topic[h.topic_len] != '\0')
		return -PROTO_E_LENGTH;
	key = topic + h.topic_len + 1;
	if (h.key_len > 0 && key[h.key_len] != '\0')
		return -PROTO_E_LENGTH;
	payload = topic + strings;

	if (h.key_len > 0 && (!proto_type_keyed(h.type) ||
			      !proto_key_valid(key, h.key_len)))
		return -PROTO_E_KEY;
	if (h.type == PROTO_FRAGMENT)
		r = frag_check(&h); /* proto/frag.c */
	else
		r = proto_check_type(&h, topic, payload);
	if (r < 0)
		return r;
	if (h.origin_len != 0 &&
	    ((h.flags & PROTO_F_DROPS) ||
	     proto_origin_decode(payload + h.payload_len, h.origin_len,
				 NULL) < 0))
		return -PROTO_E_FIELD;

	if (ret) {
		ret->h = h;
		ret->topic = topic;
		ret->key = h.key_len > 0 ? key : "";
		ret->payload = shm ? NULL : payload;
		ret->origin = h.origin_len ? payload + h.payload_len : NULL;
	}
	return 0;
}

bool proto_origin_string_valid(const char *s, size_t len, size_t max)
{
	if (len > max)
		return false;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
			return false;
	return true;
}

int proto_origin_encode(void *buf, size_t cap, const struct proto_origin *o)
{
	const char *user = o->user ? o->user : "";
	const char *host = o->host ? o->host : "";
	const char *bridge = o->bridge ? o->bridge : "";
	size_t ul = strlen(user), hl = strlen(host), bl = strlen(bridge);
	unsigned char *p = buf;
	size_t len;

	if (!proto_origin_string_valid(user, ul, PROTO_ORIGIN_USER_MAX) ||
	    !proto_origin_string_valid(host, hl, PROTO_ORIGIN_HOST_MAX) ||
	    !proto_origin_string_valid(bridge, bl, PROTO_ORIGIN_BRIDGE_MAX) ||
	    bl == 0)
		return -PROTO_E_FIELD;
	len = PROTO_ORIGIN_HEAD + ul + 1 + hl + 1 + bl + 1;
	if (cap < len)
		return -PROTO_E_NOSPACE;
	memcpy(p, &o->uid, 4);
	memcpy(p + 4, &o->pid, 4);
	p[8] = (unsigned char)ul;
	p[9] = (unsigned char)hl;
	p[10] = (unsigned char)bl;
	p[11] = 0;
	p += PROTO_ORIGIN_HEAD;
	memcpy(p, user, ul + 1);
	p += ul + 1;
	memcpy(p, host, hl + 1);
	p += hl + 1;
	memcpy(p, bridge, bl + 1);
	return (int)len;
}

int proto_origin_decode(const void *block, size_t len,
			struct proto_origin *ret)
{
	const unsigned char *p = block;
	const char *user, *host, *bridge;
	size_t ul, hl, bl;

	if (len < PROTO_ORIGIN_HEAD + 4 || len > PROTO_ORIGIN_MAX)
		return -PROTO_E_FIELD;
	ul = p[8];
	hl = p[9];
	bl = p[10];
	if (p[11] != 0 || bl == 0 ||
	    len != PROTO_ORIGIN_HEAD + ul + 1 + hl + 1 + bl + 1)
		return -PROTO_E_FIELD;
	user = (const char *)p + PROTO_ORIGIN_HEAD;
	host = user + ul + 1;
	bridge = host + hl + 1;
	if (user[ul] != '\0' || host[hl] != '\0' || bridge[bl] != '\0' ||
	    !proto_origin_string_valid(user, ul, PROTO_ORIGIN_USER_MAX) ||
	    !proto_origin_string_valid(host, hl, PROTO_ORIGIN_HOST_MAX) ||
	    !proto_origin_string_valid(bridge, bl, PROTO_ORIGIN_BRIDGE_MAX))
		return -PROTO_E_FIELD;
	if (ret) {
		memcpy(&ret->uid, p, 4);
		memcpy(&ret->pid, p + 4, 4);
		ret->user = user;
		ret->host = host;
		ret->bridge = bridge;
	}
	return 0;
}

int proto_batch_begin(void *buf, size_t cap, unsigned prio)
{
	struct proto_header h;

	if (cap < PROTO_BATCH_HEAD)
		return -PROTO_E_NOSPACE;
	proto_header_init(&h, PROTO_BATCH);
	h.priority = prio;
	memcpy(buf, &h, sizeof(h));
	((unsigned char *)buf)[PROTO_HEADER_SIZE] = '\0'; /* no topic */
	return PROTO_BATCH_HEAD;
}

int proto_batch_add(void *buf, size_t cap, size_t *used, const void *part,
		    size_t len)
{
	unsigned char *p = buf;
	struct proto_header h;
	uint32_t n = (uint32_t)len;

	if (*used > cap || cap - *used < PROTO_BATCH_PART_HEAD ||
	    cap - *used - PROTO_BATCH_PART_HEAD < len)
		return -PROTO_E_NOSPACE;
	memcpy(p + *used, &n, sizeof(n));
	memcpy(p + *used + PROTO_BATCH_PART_HEAD, part, len);
	*used += PROTO_BATCH_PART_HEAD + len;
	memcpy(&h, p, sizeof(h));
	h.payload_len = (uint32_t)(*used - PROTO_BATCH_HEAD);
	h.status++;
	memcpy(p, &h, sizeof(h));
	return 0;
}

int proto_batch_next(const struct proto_msg *f, size_t *off,
		     struct proto_msg *ret)
{
	const unsigned char *p = f->payload;
	struct proto_msg part;
	uint32_t len;
	int r;

	/* the framing was checked when f was decoded */
	if (*off >= f->h.payload_len)
		return 0;
	memcpy(&len, p + *off, sizeof(len));
	p += *off + PROTO_BATCH_PART_HEAD;
	*off += PROTO_BATCH_PART_HEAD + len;
	r = proto_decode(p, len, &part);
	if (r < 0)
		return r;
	if (part.h.type != PROTO_PUBLISH && part.h.type != PROTO_DELIVER)
		return -PROTO_E_TYPE;
	*ret = part;
	return 1;
}

bool proto_topic_valid(const char *topic, size_t len, bool pattern)
{
	size_t i, level = 0; /* start of the current level */

	if (!topic || len == 0 || len > PROTO_TOPIC_MAX)
		return false;

	/* Walk one byte past the end: the end closes the last level. */
	for (i = 0; i <= len; i++) {
		unsigned char c = i < len ? (unsigned char)topic[i] : '/';

		if (c == '/') {
			if (i == level)
				return false; /* empty level */
			level = i + 1;
			continue;
		}
		if (c < 0x21 || c > 0x7e)
			return false;
		if (c != '+' && c != '#')
			continue;
		/* A wildcard: only in patterns, and only as a whole level. */
		if (!pattern || i != level)
			return false;
		if (c == '+' && i + 1 < len && topic[i + 1] != '/')
			return false;
		/* '#' stands for everything below, so nothing may follow. */
		if (c == '#' && i + 1 != len)
			return false;
	}
	return true;
}

bool proto_topic_match(const char *pattern, const char *topic)
{
	for (;;) {
		size_t pl = strcspn(pattern, "/"), tl = strcspn(topic, "/");

		if (pl == 1 && pattern[0] == '#')
			return true;
		if (!(pl == 1 && pattern[0] == '+') &&
		    (pl != tl || memcmp(pattern, topic, pl) != 0))
			return false;
		pattern += pl;
		topic += tl;
		if (!*topic)
			return !*pattern || strcmp(pattern, "/#") == 0;
		if (!*pattern)
			return false;
		pattern++;
		topic++;
	}
}

bool proto_key_valid(const char *key, size_t len)
{
	if (!key || len == 0 || len > PROTO_KEY_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)key[i] < 0x21 ||
		    (unsigned char)key[i] > 0x7e)
			return false;
	return true;
}

/* len bytes of [A-Za-z0-9._-], the characters of queue and group names */
static bool proto_name_chars(const char *name, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		char c = name[i];

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-')
			continue;
		return false;
	}
	return true;
}

bool proto_qname_valid(const char *name, size_t len)
{
	if (!name || len < 2 || len > PROTO_QNAME_MAX || name[0] != '/')
		return false;
	return proto_name_chars(name + 1, len - 1);
}

bool proto_group_valid(const char *name, size_t len)
{
	if (!name || len < 1 || len > PROTO_GROUP_MAX)
		return false;
	return proto_name_chars(name, len);
}

const char *proto_strerror(int err)
{
	switch (err) {
	case 0:
		return "success";
	case -PROTO_E_SHORT:
		return "message truncated: shorter than the 64-byte header";
	case -PROTO_E_MAGIC:
		return "bad magic number: not an mqbus message";
	case -PROTO_E_VERSION:
		return "unsupported mqbus protocol version";
	case -PROTO_E_TYPE:
		return "unknown message type";
	case -PROTO_E_FLAGS:
		return "unknown flag bits or a reserved header field is set";
	case -PROTO_E_LENGTH:
		return "message length does not match the lengths in its "
		       "header, or the topic is not NUL-terminated";
	case -PROTO_E_TOOBIG:
		return "topic longer than 255 bytes";
	case -PROTO_E_TOPIC:
		return "topic, pattern or queue name not valid for this "
		       "message type";
	case -PROTO_E_FIELD:
		return "a header field or the payload size is out of range "
		       "for this message type";
	case -PROTO_E_NOSPACE:
		return "buffer too small for the encoded message";
	case -PROTO_E_KEY:
		return "message key not valid (1 to 255 bytes of printable "
		       "ASCII, no space), or on a type that has none";
	}
	/* -INT_MIN cannot be negated; no errno is that large anyway. */
	if (err < 0 && err != INT_MIN)
		return strerror(-err);
	return "unknown error";
}

const char *proto_type_name(unsigned type)
{
	static const char *const names[] = {
		[PROTO_ANNOUNCE] = "ANNOUNCE",
		[PROTO_HELLO] = "HELLO",
		[PROTO_WELCOME] = "WELCOME",
		[PROTO_PUBLISH] = "PUBLISH",
		[PROTO_DELIVER] = "DELIVER",
		[PROTO_SUBSCRIBE] = "SUBSCRIBE",
		[PROTO_UNSUBSCRIBE] = "UNSUBSCRIBE",
		[PROTO_ACK] = "ACK",
		[PROTO_ERROR] = "ERROR",
		[PROTO_BYE] = "BYE",
		[PROTO_STATS] = "STATS",
		[PROTO_REQUEST] = "REQUEST",
		[PROTO_REPLY] = "REPLY",
		[PROTO_TIMER_ADD] = "TIMER_ADD",
		[PROTO_TIMER_CANCEL] = "TIMER_CANCEL",
		[PROTO_TIMER_LIST] = "TIMER_LIST",
		[PROTO_QUERY] = "QUERY",
		[PROTO_BATCH] = "BATCH",
	};

	if (type == PROTO_FRAGMENT)
		return "FRAGMENT";
	if (type == 0 || type > PROTO_TYPE_MAX)
		return "unknown";
	return names[type];
}

static const char *const proto_query_names[] = {
	[PROTO_QUERY_CLIENTS] = "clients",
	[PROTO_QUERY_TOPICS] = "topics",
	[PROTO_QUERY_SUBSCRIPTIONS] = "subscriptions",
	[PROTO_QUERY_RETAINED] = "retained",
	[PROTO_QUERY_TIMERS] = "timers",
};

const char *proto_query_name(unsigned what)
{
	if (what == 0 || what > PROTO_QUERY_MAX)
		return NULL;
	return proto_query_names[what];
}

unsigned proto_query_of(const char *name)
{
	for (unsigned w = 1; name && w <= PROTO_QUERY_MAX; w++)
		if (strcmp(name, proto_query_names[w]) == 0)
			return w;
	return 0;
}
