/* SPDX-License-Identifier: MIT */
/*
 * stats.h - what the bus counts, and where it is shown: the STATS answer
 * ("key=value" lines, mqbusctl stats), systemd's STATUS=, and the periodic
 * delivery-stats entries in the journal.
 *
 * Delivery counters (struct log_counters: published, delivered, dropped
 * by reason, coalesced, requests, replies, no responders) are kept for the
 * bus, for each peer (its "client left" entry) and for each topic active
 * in the current interval.  A routed message carries its topic's entry
 * (msgbuf.stat), so a delivery or drop that happens later, from a pending
 * list, still counts for its topic.  Nothing here allocates per message:
 * a topic's entry is made on its first message of an interval and freed
 * after an interval without traffic, once no waiting message points at
 * it; the latency histogram is a fixed array.
 */
#ifndef MQBUS_STATS_H
#define MQBUS_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "daemon/hmap.h"
#include "daemon/log.h"

struct event;
struct msgbuf;
struct peer;
struct proto_msg;
struct server;

/* the topics one interval tracks by name; more are summed as "other" */
#define STATS_TOPICS_MAX 4096
/* the entries one uid may make in an interval: a uid spraying topics
 * leaves the rest of the table to the others */
#define STATS_TOPICS_PER_UID (STATS_TOPICS_MAX * 3 / 4)
/* latency histogram: 4 sub-buckets per power of two of nanoseconds */
#define STATS_LAT_SUB 4
#define STATS_LAT_BUCKETS (64 * STATS_LAT_SUB)
/* messages sent at once are timed one in this many */
#define STATS_LAT_SAMPLE 16

enum drop_reason {
	DROP_BACKLOG,	 /* backlog full (drop-new, block with nobody to
			    hold up, the bus budget) */
	DROP_OLDEST,	 /* evicted by drop-old, coalesce */
	DROP_TOO_LARGE,	 /* larger than the subscriber's queue takes */
	DROP_DISCONNECT, /* waiting for a subscriber that left */
	DROP_ERROR,	 /* out of memory, a send error */
};

/* One topic's figures in the current interval. */
struct topic_stat {
	struct hmap_node node;
	struct log_counters delta;
	unsigned waiting; /* pending messages that point here */
	uid_t uid;	  /* who made it, charged ACCOUNT_STAT_TOPICS */
	char topic[];
};

struct bus_stats {
	struct log_counters c; /* the bus's delivery counters */
	uint64_t bad_messages;
	uint64_t handshakes;
	uint64_t handshakes_failed;
	uint64_t clients_gone;
	uint64_t wakeups_rescued;
	uint64_t requests_expired;
	uint64_t replies_refused;
	uint64_t timers_fired;
	uint64_t publishers_blocked;
	uint64_t slow_disconnects;
	uint64_t control_lost; /* answers a client could not be sent */
	uint64_t policy_refused; /* actions the access policy refused */
	uint64_t retain_refused; /* values not kept: bus or uid bounds */
	uint64_t quota_refused;	 /* refused for a per-client or uid bound */
	uint64_t frames_sent;	  /* BATCH frames written (deliver.c) */
	uint64_t framed_sent;	  /* the messages that went in them */
	uint64_t frames_received; /* BATCH frames clients wrote */
	uint64_t drop_notices;	  /* losses told with no message after */
	uint64_t stats_rounds; /* delivery-stats entries written */
	uint64_t stats_rounds_all; /* rounds, written or not (hints) */

	/* the current interval */
	uint64_t round_start;	      /* CLOCK_MONOTONIC us */
	struct log_counters at_round; /* c when it began */
	struct hmap topics;	      /* struct topic_stat by name */
	struct log_counters untracked; /* topics beyond STATS_TOPICS_MAX */
	uint64_t n_untracked;
	size_t pending_bytes_max;
	uint64_t lat[STATS_LAT_BUCKETS]; /* publish to enqueue, ns */
	uint64_t lat_n;
	uint64_t lat_max;
	struct event *round_ev;

	/* at most one entry per subscriber and topic and interval */
	struct log_ratelimit rl_slow;
	struct log_ratelimit rl_large;
	struct log_ratelimit rl_refused;
	struct log_ratelimit rl_policy; /* per uid and action */
	struct log_ratelimit rl_quota;	/* per uid and quota */
};

/* Sets up the counters and, if s->cfg.stats_interval, the rounds. */
int stats_init(struct server *s);
void stats_deinit(struct server *s);
/* The config changed: the rounds follow its stats_interval. */
int stats_reconfigure(struct server *s);
/* Writes a round now (SIGUSR1), and starts the interval anew. */
void stats_round(struct server *s);

/* A publisher's last topic entry, to skip the look-up when it sends on
 * the same topic again; valid within one round. */
struct topic_hint {
	struct topic_stat *stat;
	uint64_t round;
};

/* The entry of topic for this interval (made if needed, charged to uid),
 * or NULL when the table is full or uid made its share of it
 * (STATS_TOPICS_PER_UID): the message then counts as "other".  hint (may
 * be NULL) is tried first and updated. */
struct topic_stat *stats_topic(struct server *s, const char *topic,
			       struct topic_hint *hint, uid_t uid);

/* The counters of m's topic (m->stat), or the untracked sum. */
struct log_counters *stats_of(struct server *s, const struct msgbuf *m);

/* Counts a message dropped for p for reason (bus, p and m's topic). */
void stats_drop(struct peer *p, const struct msgbuf *m,
		enum drop_reason reason);
/* Counts a DELIVER sent to p, and its latency since it was stamped;
 * waited: it was sent from the pending list. */
void stats_delivered(struct peer *p, const struct msgbuf *m, bool waited);

/* The STATS text of s into buf; returns its length (cut at cap - 1). */
int stats_text(struct server *s, char *buf, size_t cap);

/* snprintf into buf at *len, keeping *len at most cap - 1: how every
 * module adds its lines to stats_text() */
void stats_text_add(char *buf, size_t cap, size_t *len, const char *fmt,
		    ...) __attribute__((format(printf, 4, 5)));

/* STATUS= for systemd, when a figure changed since the last one. */
void stats_notify_status(struct server *s);

/* The STATS handler: answers p with the text, cut to what rx takes. */
void stats_handle(struct peer *p, struct msgbuf *m,
		  const struct proto_msg *pm);

/* Who p is, for the log's events about a client. */
struct log_client stats_who(const struct peer *p);

#endif
