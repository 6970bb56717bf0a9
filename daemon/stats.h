/* SPDX-License-Identifier: MIT */
/*
 * stats.h - the bus-wide counters, and where they are shown: the STATS
 * answer ("key=value" lines, mqbusctl stats) and systemd's STATUS=.
 */
#ifndef MQBUS_STATS_H
#define MQBUS_STATS_H

#include <stddef.h>
#include <stdint.h>

struct msgbuf;
struct peer;
struct proto_msg;
struct server;

struct bus_stats {
	uint64_t published;
	uint64_t delivered;
	uint64_t dropped;
	uint64_t bad_messages;
	uint64_t handshakes;
	uint64_t handshakes_failed;
	uint64_t clients_gone;
	uint64_t wakeups_rescued;
	uint64_t requests;
	uint64_t replies;
	uint64_t no_responders;
	uint64_t requests_expired;
	uint64_t replies_refused;
	uint64_t timers_fired;
	uint64_t coalesced;
	uint64_t publishers_blocked;
	uint64_t slow_disconnects;
	uint64_t control_lost; /* answers a client could not be sent */
};

/* The STATS text of s into buf; returns its length (cut at cap - 1). */
int stats_text(struct server *s, char *buf, size_t cap);

/* STATUS= for systemd, when a figure changed since the last one. */
void stats_notify_status(struct server *s);

/* The STATS handler: answers p with the text, cut to what rx takes. */
void stats_handle(struct peer *p, struct msgbuf *m,
		  const struct proto_msg *pm);

#endif
