/* SPDX-License-Identifier: MIT */
/*
 * proto.h - the mqbus wire format, shared by the daemon and libmqbus.
 *
 * Every message on every queue of a bus is one POSIX queue message: a fixed
 * 64-byte header, then the topic (topic_len bytes and a NUL), then the key
 * if there is one (key_len bytes and a NUL), then the payload (payload_len
 * bytes), and on a DELIVER with PROTO_F_ORIGIN the origin block
 * (origin_len bytes, struct proto_origin).  Both ends are on the same
 * host, so integers
 * are in host byte order.  The decoder checks every length against the bytes
 * actually received; nothing a client sends is trusted.  PROTOCOL.md is the
 * written spec of this header.
 */
#ifndef MQBUS_PROTO_H
#define MQBUS_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PROTO_MAGIC 0x3142514du /* "MQB1" read as little-endian bytes */
#define PROTO_VERSION 1
#define PROTO_HEADER_SIZE 64
#define PROTO_TOPIC_MAX 255 /* bytes, without the NUL */
#define PROTO_KEY_MAX 255   /* bytes, without the NUL */
#define PROTO_QNAME_MAX 255 /* a queue name, "/..." */
#define PROTO_PRIO_MAX 32767 /* highest mq priority on Linux */

enum proto_type {
	PROTO_ANNOUNCE = 1, /* client -> /BUS: topic = tx queue name */
	PROTO_HELLO,        /* client -> tx: topic = rx queue name,
			       sender_pid = claimed pid */
	PROTO_WELCOME,      /* daemon -> rx: client_id, payload =
			       struct proto_welcome */
	PROTO_PUBLISH,      /* client -> tx: topic, payload, priority
			       (PROTO_F_PRIORITY set if asked for) */
	PROTO_DELIVER,      /* daemon -> rx: a published message with the
			       verified sender, seq and timestamp */
	PROTO_SUBSCRIBE,    /* client -> tx: topic = pattern, token,
			       payload = queue group name or empty */
	PROTO_UNSUBSCRIBE,  /* client -> tx: topic = pattern, token,
			       payload = queue group name or empty */
	PROTO_ACK,          /* daemon -> rx: token, status = 0 */
	PROTO_ERROR,        /* daemon -> rx: token, status = errno,
			       payload = text */
	PROTO_BYE,          /* either way: the end of a session */
	PROTO_STATS,        /* client -> tx: token; daemon -> rx: token,
			       payload = "key=value\n" lines */
	PROTO_REQUEST,      /* client -> tx: like PUBLISH, token = the
			       client's correlation id, status = timeout
			       in ms (0: the daemon's default) */
	PROTO_REPLY,        /* responder -> tx: token = the request id of
			       the DELIVER it answers, payload;
			       daemon -> requester's rx: token = its
			       correlation id, sender fields stamped */
	PROTO_TIMER_ADD,    /* client -> tx: topic, payload, priority and
			       token as for a PUBLISH; seq = delay in ms,
			       or with PROTO_F_ABSOLUTE the CLOCK_REALTIME
			       time in ms; timestamp = period in ms (0:
			       once).  Answered by ACK with seq = timer id */
	PROTO_TIMER_CANCEL, /* client -> tx: token, seq = timer id */
	PROTO_TIMER_LIST,   /* client -> tx: token; daemon -> rx: token,
			       payload = one line per timer */
	PROTO_QUERY,        /* client -> tx: token, status = what
			       (enum proto_query), topic and seq = where
			       to resume (empty and 0 at first);
			       daemon -> rx: token, status = what,
			       payload = whole lines, PROTO_F_MORE with
			       the topic and seq to ask again from */
	PROTO_BATCH,        /* either way: several messages of one
			       priority in one queue message; status =
			       how many, payload = parts (see
			       proto_batch_next()) */
	PROTO_TYPE_MAX = PROTO_BATCH,
};

/* header flags */
#define PROTO_F_PRIORITY 0x0001u /* PUBLISH/REQUEST: priority is asked for */
#define PROTO_F_REQUEST 0x0002u  /* DELIVER: a request; token = request id */
#define PROTO_F_DETACHED 0x0004u /* TIMER_ADD: outlives its client */
#define PROTO_F_ABSOLUTE 0x0008u /* TIMER_ADD: seq is a wall-clock time */
#define PROTO_F_RETAIN 0x0010u   /* PUBLISH: keep as the topic's last value;
				    an empty payload clears it */
#define PROTO_F_RETAINED 0x0020u /* DELIVER: a kept value, sent because
				    you subscribed */
#define PROTO_F_MONITOR 0x0040u  /* SUBSCRIBE/UNSUBSCRIBE: a passive monitor
				    (no group); DELIVER: a monitor's copy */
#define PROTO_F_REPLY 0x0080u    /* DELIVER with PROTO_F_MONITOR: a reply;
				    topic = its request's, token = the
				    request id */
#define PROTO_F_MORE 0x0100u     /* QUERY answer: not the last part; ask
				    again with its topic and seq */
#define PROTO_F_RESUME 0x0200u   /* ANNOUNCE: this tx was connected to an
				    earlier daemon; adopt it without a
				    HELLO (see PROTOCOL.md, Restart) */
#define PROTO_F_BATCH 0x0400u    /* ANNOUNCE: this client reads BATCH
				    frames on its rx; WELCOME: this daemon
				    reads them on tx (PROTOCOL.md, Batch
				    frames) */
#define PROTO_F_DROPS 0x0800u    /* DELIVER: no message, a drop notice:
				    status = messages dropped since the
				    last delivery, topic = the last one's,
				    no payload, no sender */
#define PROTO_F_ORIGIN 0x1000u   /* ANNOUNCE: this client takes the remote
				    origin of bridged messages; DELIVER:
				    an origin block (struct proto_origin)
				    of origin_len bytes follows the
				    payload (PROTOCOL.md, Remote origin) */
#define PROTO_F_SHM 0x2000u      /* ANNOUNCE: this client can attach a
				    socket for memory files; WELCOME: this
				    daemon takes one (topic = its address,
				    timestamp = the nonce to say); PUBLISH,
				    REQUEST, REPLY, DELIVER: the payload is
				    not in the frame but in the memory file
				    of tag shm_tag (PROTOCOL.md, Memory
				    files) */
#define PROTO_F_AREA 0x4000u     /* with PROTO_F_SHM on a message: the
				    payload is in a slot of a reused memory
				    area, shm_tag names area and slot
				    (PROTOCOL.md, Memory areas) */
#define PROTO_F_ALL 0x7fffu

/*
 * What a QUERY asks for (its status).  Each answer part holds whole
 * lines of "name=value" fields separated by one space (PROTOCOL.md,
 * Introspection).
 */
enum proto_query {
	PROTO_QUERY_CLIENTS = 1, /* one line per connected client */
	PROTO_QUERY_TOPICS,      /* per topic: its counters this interval */
	PROTO_QUERY_SUBSCRIPTIONS, /* per subscription: pattern, client,
				      group */
	PROTO_QUERY_RETAINED,    /* per retained value */
	PROTO_QUERY_TIMERS,      /* per timer */
	PROTO_QUERY_MAX = PROTO_QUERY_TIMERS,
};

/* the smallest payload a message may carry in a memory file
 * (PROTO_F_SHM): smaller ones go in the queue, and what a file costs the
 * daemon to hold is bounded by the bytes it is charged for */
#define PROTO_SHM_MIN 4096
/* bytes of the address of the daemon's socket for them, with its NUL */
#define PROTO_SHM_ADDR_MAX 100

/* Whether a message of this type may carry its payload in a memory file:
 * PUBLISH, REQUEST, REPLY, DELIVER. */
bool proto_type_shm(unsigned type);

/* a queue group name: 1..PROTO_GROUP_MAX of [A-Za-z0-9._-] */
#define PROTO_GROUP_MAX 64

/*
 * The fixed header, exactly as it is on the wire.  Fields a message type
 * does not use are zero.
 */
struct proto_header {
	uint32_t magic;       /* PROTO_MAGIC */
	uint8_t version;      /* PROTO_VERSION */
	uint8_t type;         /* enum proto_type */
	uint16_t flags;       /* PROTO_F_* */
	uint16_t topic_len;   /* bytes of topic, without its NUL */
	uint16_t key_len;     /* PUBLISH, DELIVER, TIMER_ADD: bytes of the
				 message's key, without its NUL (0: none);
				 other types: zero */
	uint32_t payload_len; /* bytes of payload */
	uint32_t priority;    /* 0..PROTO_PRIO_MAX */
	uint32_t token;       /* request token, echoed in ACK/ERROR/STATS;
				 request ids and correlation ids (REQUEST,
				 REPLY, DELIVER with PROTO_F_REQUEST) */
	uint32_t status;      /* ACK/ERROR: errno value (0 = ok);
				 DELIVER: messages dropped for this
				 subscriber since its last delivery */
	uint32_t sender_uid;  /* DELIVER: verified uid of the publisher */
	uint32_t sender_pid;  /* DELIVER: verified pid; HELLO: claimed pid */
	uint32_t client_id;   /* DELIVER: publisher's id; WELCOME: yours */
	uint32_t origin_len;  /* DELIVER with PROTO_F_ORIGIN: bytes of the
				 origin block after the payload; else
				 zero */
	uint32_t shm_tag;     /* with PROTO_F_SHM on a message: the tag of
				 the memory file holding its payload;
				 else zero (it also keeps seq 8-aligned on
				 every ABI) */
	uint64_t seq;         /* DELIVER: bus sequence number */
	uint64_t timestamp;   /* DELIVER: CLOCK_REALTIME ns at the daemon */
};

_Static_assert(sizeof(struct proto_header) == PROTO_HEADER_SIZE,
	       "proto_header must be 64 bytes");

/* WELCOME payload: what the daemon grants this client */
struct proto_welcome {
	uint32_t daemon_pid;
	uint32_t max_priority;   /* bus-wide ceiling for unconfigured topics */
	uint32_t max_subscriptions;
	uint32_t pending_max;    /* messages held for you when rx is full */
	int64_t rx_maxmsg;       /* attributes the daemon saw on your queues */
	int64_t rx_msgsize;
	int64_t tx_maxmsg;
	int64_t tx_msgsize;
};

/*
 * A decoded message.  topic, key and payload point into the buffer given
 * to proto_decode(): they live as long as it does.  topic and key are
 * NUL-terminated (the NULs are on the wire); each is "" when its length is
 * 0.
 */
struct proto_msg {
	struct proto_header h;
	const char *topic;
	const char *key;
	const void *payload;
	const void *origin; /* the origin block (h.origin_len bytes), or
			       NULL: none */
};

/*
 * The remote origin of a message that came in through an MQTT bridge of
 * the daemon: what the remote side claims of its sender (the MQTT 5 user
 * properties mqbus-uid, -pid, -user and -host), and which bridge took it.
 * Claims, not facts: as true as the remote mqbusd and broker are to be
 * trusted.  On the wire (PROTOCOL.md, Remote origin):
 *
 *   u32 uid, u32 pid, u8 user_len, u8 host_len, u8 bridge_len, u8 zero,
 *   then user, NUL, host, NUL, bridge, NUL
 *
 * Each string is printable ASCII (0x21..0x7e) of at most its maximum; ""
 * (length 0) when the remote side did not say; the bridge name is never
 * empty.
 */
#define PROTO_ORIGIN_UID_NONE 0xffffffffu /* uid not said */
#define PROTO_ORIGIN_USER_MAX 32
#define PROTO_ORIGIN_HOST_MAX 64
#define PROTO_ORIGIN_BRIDGE_MAX 32
#define PROTO_ORIGIN_HEAD 12
#define PROTO_ORIGIN_MAX                                                     \
	(PROTO_ORIGIN_HEAD + PROTO_ORIGIN_USER_MAX + 1 +                     \
	 PROTO_ORIGIN_HOST_MAX + 1 + PROTO_ORIGIN_BRIDGE_MAX + 1)

struct proto_origin {
	uint32_t uid;	    /* PROTO_ORIGIN_UID_NONE: not said */
	uint32_t pid;	    /* 0: not said */
	const char *user;   /* "": not said */
	const char *host;   /* "": not said */
	const char *bridge; /* never "" */
};

/*
 * Encodes o as an origin block into buf (cap bytes).  Returns its length,
 * -PROTO_E_NOSPACE, or -PROTO_E_FIELD for a string too long or not
 * printable ASCII, or an empty bridge name (NULL strings are "").
 */
int proto_origin_encode(void *buf, size_t cap, const struct proto_origin *o);

/*
 * Decodes the origin block of len bytes at block into ret, whose strings
 * then point into block.  Returns 0, or -PROTO_E_FIELD for a block that
 * breaks a rule above (ret untouched).  proto_decode() has checked the
 * block of every message it accepted.
 */
int proto_origin_decode(const void *block, size_t len,
			struct proto_origin *ret);

/* Whether len bytes at s may be a string of an origin block: printable
 * ASCII, at most max. */
bool proto_origin_string_valid(const char *s, size_t len, size_t max);

/* Decoder errors, returned negated.  proto_strerror() names each. */
enum proto_error {
	PROTO_E_SHORT = 1000, /* fewer bytes than a header */
	PROTO_E_MAGIC,        /* wrong magic: not an mqbus message */
	PROTO_E_VERSION,      /* a protocol version we do not speak */
	PROTO_E_TYPE,         /* unknown message type */
	PROTO_E_FLAGS,        /* unknown flag bits or reserved field set */
	PROTO_E_LENGTH,       /* header lengths disagree with bytes received */
	PROTO_E_TOOBIG,       /* topic longer than PROTO_TOPIC_MAX */
	PROTO_E_TOPIC,        /* topic or pattern not valid for this type */
	PROTO_E_FIELD,        /* a field out of range for this type
				 (priority, missing payload, ...) */
	PROTO_E_NOSPACE,      /* encode: the buffer is too small */
	PROTO_E_KEY,          /* a key not valid, or on a type without one */
};

/* Total encoded size of a message with a topic, key and payload of these
 * lengths (key_len 0: no key). */
static inline size_t proto_size_key(size_t topic_len, size_t key_len,
				    size_t payload_len)
{
	return PROTO_HEADER_SIZE + topic_len + 1 +
	       (key_len ? key_len + 1 : 0) + payload_len;
}

/* Total encoded size of a message without a key. */
static inline size_t proto_size(size_t topic_len, size_t payload_len)
{
	return proto_size_key(topic_len, 0, payload_len);
}

/*
 * Fill magic and version, zero the rest, set type.  Callers then set the
 * fields their type uses.
 */
void proto_header_init(struct proto_header *h, enum proto_type type);

/*
 * Encode header h (topic_len and payload_len are taken from the arguments
 * and written into the copy on the wire), topic (may be NULL for "") and
 * payload into buf.  Returns the encoded length, or -PROTO_E_NOSPACE if buf
 * is too small, -PROTO_E_TOOBIG if the topic is longer than PROTO_TOPIC_MAX.
 * Does not validate the topic: the sender's checks do that.
 */
int proto_encode(void *buf, size_t cap, const struct proto_header *h,
		 const char *topic, const void *payload, size_t payload_len);

/*
 * proto_encode() with a key (NULL or "": none; key_len is taken from it).
 * Also -PROTO_E_KEY if the key is longer than PROTO_KEY_MAX.  Does not
 * validate the key either.
 */
int proto_encode_key(void *buf, size_t cap, const struct proto_header *h,
		     const char *topic, const char *key, const void *payload,
		     size_t payload_len);

/*
 * Encodes the head of a message whose payload_len bytes of payload are
 * in a memory file (h has PROTO_F_SHM and the file's shm_tag): header,
 * topic and key, as proto_encode_key() would without the payload.
 */
int proto_encode_head(void *buf, size_t cap, const struct proto_header *h,
		      const char *topic, const char *key, size_t payload_len);

/*
 * Decode and validate len bytes at buf into ret.  Every length is checked
 * against len, the topic against the rules of its type (a concrete topic
 * for PUBLISH/DELIVER, a pattern for SUBSCRIBE/UNSUBSCRIBE, a queue name
 * for ANNOUNCE/HELLO).  Returns 0, or a negated enum proto_error; ret is
 * untouched on failure.
 */
int proto_decode(const void *buf, size_t len, struct proto_msg *ret);

/*
 * Topic rules: 1..PROTO_TOPIC_MAX bytes of printable ASCII (0x21..0x7e),
 * levels separated by '/', no empty level (so no leading, trailing or
 * double '/').  A topic (pattern == false) contains no '+' or '#'.  A
 * pattern may use '+' as a whole level (any one level) and '#' as the whole
 * last level (that level and all below, including none: "a/#" matches "a").
 */
bool proto_topic_valid(const char *topic, size_t len, bool pattern);

/*
 * Whether the concrete topic matches pattern, both valid: level by level,
 * '+' taking any one level and '#' the rest, none included ("a/#" matches
 * "a").  The daemon's router matches the same way through its trie; the
 * access policy and the library's mqbus_topic_match() use this.
 */
bool proto_topic_match(const char *pattern, const char *topic);

/*
 * A message key: 1..PROTO_KEY_MAX bytes of printable ASCII (0x21..0x7e),
 * with no other rule.  It names the object a message is about, so that on
 * a coalescing topic a newer message replaces a waiting older one of the
 * same key.
 */
bool proto_key_valid(const char *key, size_t len);

/*
 * Batch frames.  A BATCH's payload is a run of parts, each a 32-bit length
 * (host order) and then that many bytes: one whole message, encoded as it
 * would be alone.  The decoder checks the frame's framing (the lengths
 * add up to payload_len exactly, there are status of them, each at least
 * a header); proto_batch_next() decodes the parts one by one.  A part is
 * a PUBLISH (client to daemon) or a DELIVER (daemon to client), never a
 * BATCH; the frame's priority is the queue priority all of them were sent
 * at.
 */
#define PROTO_BATCH_PART_HEAD 4 /* the length before each part */
/* a frame's own bytes: the header and its empty topic's NUL */
#define PROTO_BATCH_HEAD (PROTO_HEADER_SIZE + 1)

/*
 * Starts a frame in buf (cap bytes) at priority prio: returns the bytes
 * written (PROTO_BATCH_HEAD), or -PROTO_E_NOSPACE.
 */
int proto_batch_begin(void *buf, size_t cap, unsigned prio);

/*
 * Appends the encoded message at part (len bytes) to the frame of *used
 * bytes in buf; *used grows.  Returns 0, or -PROTO_E_NOSPACE (nothing
 * changed).
 */
int proto_batch_add(void *buf, size_t cap, size_t *used, const void *part,
		    size_t len);

/*
 * The next part of the decoded frame f, from *off (0 at first) into ret;
 * *off moves past it.  Returns 1 with a part, 0 after the last, or a
 * negated proto_error for a part that does not decode or may not be in a
 * frame (*off has moved past it all the same: the next one can be read).
 */
int proto_batch_next(const struct proto_msg *f, size_t *off,
		     struct proto_msg *ret);

/* A queue group name (see PROTO_GROUP_MAX); len bytes at name. */
bool proto_group_valid(const char *name, size_t len);

/* A queue name as mqbus makes them: "/" then 1..254 of [A-Za-z0-9._-]. */
bool proto_qname_valid(const char *name, size_t len);

/* A static English sentence for a negated proto_error (or errno). */
const char *proto_strerror(int err);

/* The name of a message type ("PUBLISH"), or "unknown". */
const char *proto_type_name(unsigned type);

/* The name of a QUERY's what ("clients"), or NULL if it has none. */
const char *proto_query_name(unsigned what);

/* The enum proto_query of a name, or 0 if there is none of that name. */
unsigned proto_query_of(const char *name);

#endif
