/* SPDX-License-Identifier: MIT */
/*
 * stats.c - showing the bus-wide counters.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <systemd/sd-daemon.h>

#include "daemon/deliver.h"
#include "daemon/peer.h"
#include "daemon/router.h"
#include "daemon/server.h"
#include "daemon/stats.h"
#include "proto/proto.h"

/*
 * STATUS= for systemctl status.  Sent from the once-a-second timer, and
 * only when a figure changed: sd_notify's datagram can block the loop if
 * the manager is slow to read, so we keep them few.
 */
void stats_notify_status(struct server *s)
{
	uint64_t sum = s->peers.count + s->stats.published +
		       s->stats.delivered + s->stats.dropped;

	if (sum == s->status_sum)
		return;
	s->status_sum = sum;
	sd_notifyf(0,
		   "STATUS=Serving bus %s: %u clients, %llu published, "
		   "%llu delivered, %llu dropped",
		   s->bus, s->peers.count,
		   (unsigned long long)s->stats.published,
		   (unsigned long long)s->stats.delivered,
		   (unsigned long long)s->stats.dropped);
}

/* The counters of struct bus_stats, by name, for the STATS text. */
#define STAT(name) { #name, offsetof(struct bus_stats, name) }
static const struct {
	const char *name;
	size_t offset;
} stat_fields[] = {
	STAT(published),	  STAT(delivered),
	STAT(dropped),		  STAT(bad_messages),
	STAT(handshakes),	  STAT(handshakes_failed),
	STAT(clients_gone),	  STAT(wakeups_rescued),
	STAT(requests),		  STAT(replies),
	STAT(no_responders),	  STAT(requests_expired),
	STAT(replies_refused),	  STAT(timers_fired),
	STAT(coalesced),	  STAT(publishers_blocked),
	STAT(slow_disconnects),	  STAT(control_lost),
};
#undef STAT

int stats_text(struct server *s, char *buf, size_t cap)
{
	struct timespec now;
	size_t len;
	int n;

	clock_gettime(CLOCK_MONOTONIC, &now);
	n = snprintf(buf, cap,
		     "bus=%s\n"
		     "pid=%d\n"
		     "wake=%s\n"
		     "uptime_s=%lld\n"
		     "clients=%u\n"
		     "subscriptions=%zu\n"
		     "requests_in_flight=%u\n"
		     "timers=%zu\n"
		     "retained=%zu\n"
		     "pending_bytes=%zu\n"
		     "buffers_live=%zu\n",
		     s->bus, (int)s->pid,
		     wake_method_name(wake_method_of(s->wake)),
		     (long long)(now.tv_sec - s->started.tv_sec),
		     s->peers.count, router_count(s->router),
		     s->requests.count, s->timers.n, s->retained.count,
		     s->pending_bytes, s->pool.live);
	if (n < 0)
		return 0;
	len = (size_t)n;
	for (size_t i = 0;
	     i < sizeof(stat_fields) / sizeof(stat_fields[0]) && len < cap;
	     i++) {
		uint64_t v;

		memcpy(&v, (const char *)&s->stats + stat_fields[i].offset,
		       sizeof(v));
		n = snprintf(buf + len, cap - len, "%s=%llu\n",
			     stat_fields[i].name, (unsigned long long)v);
		if (n < 0)
			break;
		len += (size_t)n;
	}
	return len >= cap ? (int)cap - 1 : (int)len;
}

void stats_handle(struct peer *p, struct msgbuf *m,
		  const struct proto_msg *pm)
{
	unsigned char buf[4096];
	char text[2048];
	struct proto_header h;
	int len, n;

	len = stats_text(p->server, text, sizeof(text));
	proto_header_init(&h, PROTO_STATS);
	h.token = pm->h.token;
	/* never more than rx can take */
	if ((long)proto_size(0, len) > p->rx_msgsize)
		len = (int)(p->rx_msgsize - (long)proto_size(0, 0));
	n = proto_encode(buf, sizeof(buf), &h, NULL, text, len < 0 ? 0 : len);
	if (n > 0)
		deliver_control(p, buf, (size_t)n);
}
