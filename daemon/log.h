/* SPDX-License-Identifier: MIT */
/*
 * log.h - the daemon's log: free-text lines and named events.
 *
 * Everything mqbusd says goes through here, to one of two targets.  To the
 * journal, each line is an entry sent with sd_journal_sendv(): MESSAGE,
 * PRIORITY, SYSLOG_IDENTIFIER=mqbusd and MQBUS_BUS, and for an event also
 * its MESSAGE_ID (daemon/log-ids.h) and its MQBUS_* fields, numbers as
 * plain decimals (mqbusd(8), JOURNAL FIELDS, lists them).  To stderr, each
 * is one line, "mqbusd: MESSAGE (key=value ...)", the keys being the field
 * names without "MQBUS_", in lower case.
 *
 * log_warn() appends the errno text, log_warnx() does not, as in OpenBSD's
 * daemons.  An event is one call that names it (log_client_left(), ...);
 * its fields are fixed here, so no call site can forget one.  Nothing here
 * allocates: entries are built in a buffer on the stack, and a field that
 * does not fit is cut off, never the entry.  So any thread may log once
 * log_setup() is done; a struct log_ratelimit belongs to one thread.  If
 * the journal refuses an entry (journald not running), it goes to stderr.
 */
#ifndef MQBUS_LOG_H
#define MQBUS_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "daemon/log-ids.h"

enum log_target {
	LOG_TARGET_AUTO, /* the journal if stderr is connected to it */
	LOG_TARGET_STDERR,
	LOG_TARGET_JOURNAL,
};

/* Parses "auto", "stderr" or "journal"; -EINVAL for anything else. */
int log_target_parse(const char *s, enum log_target *ret);

/*
 * Chooses the target and the bus name that every entry carries (copied;
 * NULL for none).  LOG_TARGET_AUTO picks the journal when $JOURNAL_STREAM
 * names the device and inode of stderr (systemd connected stderr to the
 * journal), else stderr.  LOG_TARGET_JOURNAL without a journald socket
 * says so on stderr and logs there.  verbose lets log_debug() lines through (to
 * either target: some are written per message) and the chatty events
 * (clients connected and left, refused handshakes, delivery stats) through
 * to stderr; the journal gets every event whatever verbose says.  May be
 * called again.
 */
void log_setup(enum log_target target, const char *bus, bool verbose);

/* log_setup(LOG_TARGET_AUTO, NULL, verbose), as before events existed */
void log_init(bool verbose);

bool log_verbose(void);
/* True when entries go to the journal (after log_setup()). */
bool log_is_journal(void);

/*
 * For set-up functions that answer with a sentence: stores a malloc'ed
 * one in *ret_error (if ret_error is not NULL; NULL when out of memory)
 * and returns err.
 */
int log_error_text(char **ret_error, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* like log_warnx, then ": " and strerror(errno); the journal gets ERRNO= */
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_errx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ------------------------------------------------------------ events */

/* Who a client is, for the events about one. */
struct log_client {
	uint32_t id;
	uid_t uid;
	pid_t pid;
	const char *comm; /* its process's name; NULL or "" if unknown */
};

/*
 * Reads /proc/PID/comm into buf (NUL-terminated, newline removed), for
 * log_client.comm; do it at the handshake, while the process is there.
 * Returns 0 or -errno (buf then holds "").
 */
int log_read_comm(pid_t pid, char *buf, size_t size);

/* Delivery counters: a client's totals, or a bus's or topic's figures. */
struct log_counters {
#define LOG_X_MEMBER(field, member, label) uint64_t member;
	LOG_COUNTERS(LOG_X_MEMBER)
#undef LOG_X_MEMBER
};

/* The sum of the dropped_* counters (MQBUS_DROPPED). */
uint64_t log_counters_dropped(const struct log_counters *c);

/* Started serving; config_file NULL when none was given. */
void log_started(const char *version, const char *wake,
		 const char *config_file);
/* Shutting down because of why ("SIGTERM"); clients told goodbye. */
void log_stopping(const char *why, unsigned clients, uint64_t uptime_usec);
/* A reload took config_file; topic_rules: its [topic] sections. */
void log_reloaded(const char *config_file, unsigned topic_rules);
/* A reload kept the old settings: line (0 if none) of config_file is
 * wrong, reason says how. */
void log_reload_refused(const char *config_file, unsigned line,
			const char *reason);

void log_client_connected(const struct log_client *c);
/*
 * Client c is gone (reason: "goodbye", "exited", "disconnected: slow
 * consumer", ...) after lifetime_usec, with its totals: what it published,
 * what was delivered to it and dropped on its way to it, the requests and
 * replies it sent, ...
 */
void log_client_left(const struct log_client *c, const char *reason,
		     uint64_t lifetime_usec, const struct log_counters *totals);
/* The handshake of queue was refused; uid (uid_t)-1 and pid 0 if not yet
 * known. */
void log_handshake_refused(const char *queue, uid_t uid, pid_t pid,
			   const char *reason);

/*
 * At most one entry per key and interval: events beyond that are counted
 * and their number added to the next entry of the same key.  Slots hold
 * the keys; a new key takes a free slot or one idle for an interval, and
 * when it may take none it is not written (its events are counted in
 * crowded): so at most about LOG_RL_SLOTS entries go out per interval,
 * however many keys a client makes.  Zero-initialise, then set
 * interval_usec.
 */
#define LOG_RL_SLOTS 64
struct log_ratelimit {
	uint64_t interval_usec;
	struct log_ratelimit_slot {
		uint64_t key;
		uint64_t last_usec; /* when its last entry went out */
		uint64_t pending;   /* events held back since */
		bool used;
	} slot[LOG_RL_SLOTS];
	/* events of keys that found every slot they may take written in
	 * this interval: held back for good, counted here */
	uint64_t crowded;
};

/* A key for a subscriber (client id) and a topic. */
uint64_t log_ratelimit_key(uint32_t client_id, const char *topic);
/*
 * Counts n events of key at now_usec (CLOCK_MONOTONIC).  Returns how many
 * the entry to write now must report (n plus those held back), or 0 when
 * no entry may be written yet (the n are held back).
 */
uint64_t log_ratelimit_hit(struct log_ratelimit *rl, uint64_t key,
			   uint64_t now_usec, uint64_t n);

/*
 * The overflow policy (policy: "drop-new", "disconnect", ...) acted on
 * subscriber sub of topic, n times.  With rl (may be NULL), rate limited
 * per subscriber and topic: the entry reports what was held back too.
 */
void log_slow_consumer(struct log_ratelimit *rl, uint64_t now_usec,
		       const struct log_client *sub, const char *topic,
		       const char *policy, uint64_t n);
/* A size-byte message of topic did not fit sub's queue (msgsize bytes per
 * message) and was dropped, n times; rl as for log_slow_consumer(). */
void log_too_large(struct log_ratelimit *rl, uint64_t now_usec,
		   const struct log_client *sub, const char *topic, size_t size,
		   size_t msgsize, uint64_t n);
/* Client c sent count bad messages (total), the last one bad because of
 * reason; disconnected says whether it was cut off for it. */
void log_bad_messages(const struct log_client *c, uint64_t count,
		      const char *reason, bool disconnected);
/*
 * A kernel limit stopped operation ("mq_open /bus.12.0.rx") with errnum:
 * limit names it ("fs.mqueue.queues_max", "RLIMIT_MSGQUEUE"), value is
 * its current value (0 if unknown), uid whose budget ((uid_t)-1 if none),
 * hint how to raise it.
 */
void log_kernel_limit(const char *limit, uint64_t value, const char *operation,
		      int errnum, uid_t uid, const char *hint);

/*
 * The access policy (mqbusd.conf(5), [policy]) refused client c action
 * ("publish", ...) on topic (the pattern, for a subscription), n times.
 * The rule that refused is line of config_file, or, when is_default, the
 * "default =" key at that line.  With rl (may be NULL), rate limited per
 * uid and action, not per client or topic: a client refused on ever new
 * topics, or reconnecting under new client ids, writes at most one entry
 * per interval for its uid and that action (and the limiter's slots bound
 * the entries of all uids together); the entry reports the refusals held
 * back before it, but names only its own topic and rule.
 */
void log_policy_refused(struct log_ratelimit *rl, uint64_t now_usec,
			const struct log_client *c, const char *action,
			const char *topic, const char *config_file,
			unsigned line, bool is_default, uint64_t n);

/*
 * Client c was refused something because it, or its uid, reached quota
 * (the key of mqbusd.conf(5) that bounds it: "max_subscriptions_per_uid",
 * ...); reason is the sentence the client was told, topic what it was
 * about (NULL if nothing), n the times.  Rate limited by rl (may be NULL)
 * per uid and quota, as log_policy_refused() is per uid and action.
 */
void log_quota_refused(struct log_ratelimit *rl, uint64_t now_usec,
		       const struct log_client *c, const char *quota,
		       const char *topic, const char *reason, uint64_t n);

/* One delivery-stats round of the bus (interval interval_usec, round seq). */
struct log_bus_stats {
	uint64_t seq;
	uint64_t interval_usec;
	struct log_counters delta;  /* in the interval */
	struct log_counters total;  /* since start */
	uint64_t pending_bytes_max; /* high-water mark in the interval */
	uint64_t clients;
	uint64_t subscriptions;
	uint64_t latency_p50_nsec; /* publish to enqueue, in the interval */
	uint64_t latency_p99_nsec;
	uint64_t latency_max_nsec;
};

/* One topic's figures in round seq; topic NULL: the sum of other_topics
 * topics that did not make the list. */
struct log_topic_stats {
	uint64_t seq;
	uint64_t interval_usec;
	const char *topic;
	uint64_t other_topics;
	struct log_counters delta;
};

void log_stats_bus(const struct log_bus_stats *st);
void log_stats_topic(const struct log_topic_stats *st);

/*
 * The MQTT bridge (bridge.c): connected to the broker (reconnects: how
 * many times before); lost it or could not reach it (retry_ms: the next
 * try); n messages for the broker dropped (the queue full, or lost with
 * the connection), at most one entry per bridge and interval.
 */
void log_bridge_connected(const char *bridge, const char *host, unsigned port,
			 unsigned version, uint64_t reconnects);
void log_bridge_disconnected(const char *bridge, const char *host,
			     unsigned port, const char *reason,
			     unsigned retry_ms);
void log_bridge_dropped(const char *bridge, const char *reason,
			unsigned queue, uint64_t n);

#endif
