/* SPDX-License-Identifier: MIT */
/*
 * state.h - what a bus keeps across a restart: its retained values and
 * its timers, in a state file.
 *
 * With a state directory (systemd's $STATE_DIRECTORY, else mqbusd -s DIR)
 * the daemon keeps DIR/BUS.state.  A change (a value retained or
 * forgotten, a timer made, cancelled or gone) is written within
 * STATE_DELAY_MS, however many changes come in that time; a periodic
 * firing, which moves only a timer's count and next time, within
 * STATE_LAZY_MS; and everything at a clean shutdown.  A write goes to a
 * temporary file in the same directory, fsync, rename over the old file,
 * fsync of the directory: a crash leaves the old file or the new one,
 * never a mix.  A write that fails is logged (rate limited) and tried
 * again STATE_RETRY_MS later or at the next change; it never stops the
 * bus.  Writes run in the loop: their cost grows with the state (see
 * mqbusd(8)).
 *
 * At start, before any client is served, the file is read back.  The
 * format (all numbers little-endian):
 *
 *   header   "MQBSTATE", u32 version (STATE_VERSION), u32 records,
 *            u64 next timer id, u64 when written (CLOCK_REALTIME ns)
 *   records  u32 type, u32 length of the body, the body
 *   trailer  u32 CRC-32 (IEEE) of every byte before it
 *
 * A retained value's body is u32 uid (whose account pays for it), u32
 * priority, and the DELIVER the daemon keeps as it would send it (its
 * topic, key, payload, flags and the sender's uid, pid and client id are
 * in that message).  A timer's body is u64 id, period ms, next firing
 * (CLOCK_REALTIME ns), fired count; u32 uid, pid, client id, i32 priority
 * (-1: the topic's), u32 flags (STATE_TIMER_DETACHED); u16 lengths of
 * topic, key and owner's tx queue name, u16 zero, u32 payload length;
 * then topic, key and queue name each with a NUL (an empty one takes no
 * byte), then the payload.
 *
 * state_parse() checks all of it before anything is used: a file that is
 * empty, too large, of another version, with a bad checksum or any bad
 * record is refused whole, so a load is all or nothing.  Then each record
 * is applied under the config's bounds (max_retained and the per-uid
 * shares, max_timers_per_uid, timer_rate_per_uid, timer_min_period_ms) as
 * if it were new; what does not fit is dropped and counted in the one log
 * line of the load.
 */
#ifndef MQBUS_STATE_H
#define MQBUS_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct server;

#define STATE_MAGIC "MQBSTATE"
#define STATE_VERSION 1u
/* the largest state file read back */
#define STATE_MAX_BYTES (256u << 20)
/* a change is on disk at most this much later */
#define STATE_DELAY_MS 1000
/* a periodic timer's count and time, at most this much later */
#define STATE_LAZY_MS 30000
/* after a failed write, the next try */
#define STATE_RETRY_MS 5000

#define STATE_HEADER_SIZE 32
#define STATE_RECORD_HEAD 8
#define STATE_TRAILER_SIZE 4

enum state_record_type {
	STATE_REC_RETAINED = 1,
	STATE_REC_TIMER = 2,
};

#define STATE_TIMER_DETACHED 0x1u

/* a retained value as read; msg points into the parsed buffer */
struct state_retained {
	uid_t uid;
	unsigned prio;
	const char *topic;	  /* in msg */
	const unsigned char *msg; /* a DELIVER, checked by proto_decode() */
	size_t len;
	size_t payload_len;
};

/* a timer as read; strings and payload point into the parsed buffer */
struct state_timer {
	uint64_t id;
	uint64_t period_ms;
	int64_t next_ns; /* CLOCK_REALTIME */
	uint64_t fired;
	uid_t uid;
	pid_t pid;
	uint32_t client_id;
	int priority; /* -1: the topic's */
	const char *topic;
	const char *key;      /* NULL: none */
	const char *owner_tx; /* NULL: detached */
	const unsigned char *payload;
	size_t payload_len;
};

struct state_image {
	uint64_t next_timer_id;
	int64_t written_ns;
	struct state_retained *retained;
	size_t n_retained;
	struct state_timer *timers;
	size_t n_timers;
};

/*
 * Parses len bytes of a state file.  A pure function of its input (no
 * I/O, no global state but a constant table): the fuzzing target.
 * Returns 0 with *ret filled (pointing into buf, which must outlive it;
 * free with state_image_free()), or -EINVAL (the file is not a good
 * state file; why receives a sentence), -EFBIG (over STATE_MAX_BYTES) or
 * -ENOMEM; *ret is untouched on failure.
 */
int state_parse(const void *buf, size_t len, struct state_image *ret,
		char *why, size_t whysize);

/* Frees what state_parse() allocated; accepts a zeroed image. */
void state_image_free(struct state_image *img);

/* CRC-32 (IEEE 802.3, reflected, as zlib's crc32()) of len bytes. */
uint32_t state_crc32(const void *buf, size_t len);

/*
 * Encodes the retained values and timers of s as a state file into a
 * malloc()ed buffer.  Returns 0 with *ret_buf and *ret_len, or -ENOMEM.
 */
int state_encode(struct server *s, unsigned char **ret_buf, size_t *ret_len);

/* The writer of one bus's state file. */
struct state;

/*
 * Sets up the state of s in directory dir (NULL: none; s->state stays
 * NULL and nothing is kept, as before state files existed), loads
 * DIR/BUS.state if there is one, and from then on writes changes.  A
 * state file that cannot be used is logged and set aside as
 * DIR/BUS.state.bad; the bus starts empty.  Call after the config is
 * applied and the timers are set up, before clients are served.  Fails
 * (-errno, *ret_error says why) only when dir cannot be opened as a
 * directory.
 */
int state_open(struct server *s, const char *dir, char **ret_error);

/* A change to keep, written within STATE_DELAY_MS.  st may be NULL. */
void state_changed(struct state *st);
/* A change that may wait up to STATE_LAZY_MS.  st may be NULL. */
void state_touched(struct state *st);

/*
 * Writes the state now, if anything changed since the last write.
 * Returns 0 or -errno (logged).
 */
int state_flush(struct state *st);

/*
 * At a clean shutdown, before the clients are let go: writes what
 * changed, and ignores every change after (the peers' timers that go
 * with them must stay in the file for their return).  st may be NULL.
 */
void state_shutdown(struct state *st);

/* Frees the writer without writing; returns NULL.  st may be NULL. */
struct state *state_free(struct state *st);

/* The path of the state file, or NULL without state. */
const char *state_path(const struct state *st);
/* How many writes succeeded since state_open(); 0 without state. */
uint64_t state_writes(const struct state *st);

#endif
