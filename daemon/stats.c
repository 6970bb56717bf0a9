/* SPDX-License-Identifier: MIT */
/*
 * stats.c - the bus's counters, the STATS answer, STATUS= and the
 * periodic delivery-stats entries.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <systemd/sd-daemon.h>

#include "daemon/bridge.h"
#include "daemon/deliver.h"
#include "daemon/large.h"
#include "daemon/msgbuf.h"
#include "daemon/peer.h"
#include "daemon/router.h"
#include "daemon/server.h"
#include "daemon/stats.h"
#include "proto/proto.h"

#define NS_PER_S 1000000000ull

static uint64_t clock_usec(clockid_t clock)
{
	struct timespec t;

	clock_gettime(clock, &t);
	return (uint64_t)t.tv_sec * 1000000u + (uint64_t)t.tv_nsec / 1000u;
}

/* -------------------------------------------------------------------- */
/* counting                                                              */

static void counters_add(struct log_counters *to,
			 const struct log_counters *from)
{
#define ADD(field, member, label) to->member += from->member;
	LOG_COUNTERS(ADD)
#undef ADD
}

static void counters_sub(struct log_counters *to,
			 const struct log_counters *a,
			 const struct log_counters *b)
{
#define SUB(field, member, label) to->member = a->member - b->member;
	LOG_COUNTERS(SUB)
#undef SUB
}

static bool counters_zero(const struct log_counters *c)
{
#define ZERO(field, member, label) if (c->member) return false;
	LOG_COUNTERS(ZERO)
#undef ZERO
	return true;
}

static uint64_t *drop_counter(struct log_counters *c, enum drop_reason r)
{
	switch (r) {
	case DROP_BACKLOG:
		return &c->dropped_backlog;
	case DROP_OLDEST:
		return &c->dropped_oldest;
	case DROP_TOO_LARGE:
		return &c->dropped_too_large;
	case DROP_DISCONNECT:
		return &c->dropped_disconnect;
	case DROP_ERROR:
	default:
		return &c->dropped_error;
	}
}

struct topic_stat *stats_topic(struct server *s, const char *topic,
			       struct topic_hint *hint, uid_t uid)
{
	struct hmap *map = &s->stats.topics;
	struct hmap_node *node;
	struct topic_stat *ts;
	uint32_t hash;
	size_t len;

	/* a publisher mostly sends on the topic it sent on last */
	if (hint && hint->stat && hint->round == s->stats.stats_rounds_all &&
	    strcmp(hint->stat->topic, topic) == 0)
		return hint->stat;
	hash = hmap_hash_string(topic, map->seed);
	HMAP_FOR_EACH_HASH(node, map, hash) {
		ts = container_of(node, struct topic_stat, node);
		if (strcmp(ts->topic, topic) == 0)
			goto found;
	}
	if (map->count >= STATS_TOPICS_MAX ||
	    account_held(&s->accounts, uid, ACCOUNT_STAT_TOPICS) >=
		    STATS_TOPICS_PER_UID)
		return NULL;
	len = strlen(topic);
	ts = calloc(1, sizeof(*ts) + len + 1);
	if (!ts)
		return NULL;
	memcpy(ts->topic, topic, len + 1);
	ts->uid = uid;
	if (account_charge(&s->accounts, uid, ACCOUNT_STAT_TOPICS) < 0) {
		free(ts);
		return NULL;
	}
	if (hmap_insert(map, &ts->node, hash) < 0) {
		account_credit(&s->accounts, uid, ACCOUNT_STAT_TOPICS);
		free(ts);
		return NULL;
	}
found:
	if (hint) {
		hint->stat = ts;
		hint->round = s->stats.stats_rounds_all;
	}
	return ts;
}

struct log_counters *stats_of(struct server *s, const struct msgbuf *m)
{
	return m->stat ? &m->stat->delta : &s->stats.untracked;
}

void stats_drop(struct peer *p, const struct msgbuf *m,
		enum drop_reason reason)
{
	struct server *s = p->server;

	(*drop_counter(&s->stats.c, reason))++;
	(*drop_counter(&p->counts, reason))++;
	(*drop_counter(stats_of(s, m), reason))++;
}

/* The bucket of a latency: 4 per power of two (about 19 % wide). */
static unsigned lat_bucket(uint64_t ns)
{
	unsigned log2, sub;

	if (ns < STATS_LAT_SUB)
		return (unsigned)ns;
	log2 = 63u - (unsigned)__builtin_clzll(ns);
	sub = (unsigned)(ns >> (log2 - 2)) & (STATS_LAT_SUB - 1);
	return log2 * STATS_LAT_SUB + sub;
}

/* The smallest latency of a bucket (what a percentile reports). */
static uint64_t lat_bucket_floor(unsigned b)
{
	unsigned log2 = b / STATS_LAT_SUB, sub = b % STATS_LAT_SUB;

	if (log2 < 2)
		return b;
	return ((uint64_t)STATS_LAT_SUB + sub) << (log2 - 2);
}

/*
 * The latency of a DELIVER, stamped when the daemon read it, to the
 * moment it is written into a subscriber's queue.  A message that waited
 * in a pending list is timed at every such write (those are the latencies
 * that matter); one sent at once, a few hundred nanoseconds after its
 * stamp, is timed one message in STATS_LAT_SAMPLE (by its sequence
 * number, once however many subscribers take it) and counted that many
 * times, so the percentiles stay unbiased at a sixteenth of the clock
 * reads.
 */
void stats_delivered(struct peer *p, const struct msgbuf *m, bool waited)
{
	struct server *s = p->server;
	struct bus_stats *st = &s->stats;
	uint64_t stamped, seq, now, weight = 1;
	struct timespec t;

	st->c.delivered++;
	p->counts.delivered++;
	stats_of(s, m)->delivered++;
	if (!waited) {
		if (m->measured)
			return;
		memcpy(&seq, m->data + offsetof(struct proto_header, seq),
		       sizeof(seq));
		if (seq % STATS_LAT_SAMPLE != 0)
			return;
		((struct msgbuf *)m)->measured = true;
		weight = STATS_LAT_SAMPLE;
	}
	memcpy(&stamped, m->data + offsetof(struct proto_header, timestamp),
	       sizeof(stamped));
	clock_gettime(CLOCK_REALTIME, &t);
	now = (uint64_t)t.tv_sec * NS_PER_S + (uint64_t)t.tv_nsec;
	if (now < stamped)
		now = stamped; /* the clock was set back */
	st->lat[lat_bucket(now - stamped)] += weight;
	st->lat_n += weight;
	if (now - stamped > st->lat_max)
		st->lat_max = now - stamped;
}

/* The latency below which fraction q of the interval's messages were. */
static uint64_t lat_percentile(const struct bus_stats *st, double q)
{
	uint64_t want = (uint64_t)((double)st->lat_n * q), seen = 0;

	if (st->lat_n == 0)
		return 0;
	if (want >= st->lat_n)
		want = st->lat_n - 1;
	for (unsigned b = 0; b < STATS_LAT_BUCKETS; b++) {
		seen += st->lat[b];
		if (seen > want)
			return lat_bucket_floor(b);
	}
	return st->lat_max;
}

struct log_client stats_who(const struct peer *p)
{
	struct log_client c = {
		.id = p->id,
		.uid = p->uid,
		.pid = p->pid,
		.comm = p->comm,
	};

	return c;
}

/* -------------------------------------------------------------------- */
/* the rounds                                                            */

static int topic_busier(const void *a, const void *b)
{
	const struct topic_stat *x = *(struct topic_stat *const *)a;
	const struct topic_stat *y = *(struct topic_stat *const *)b;
	uint64_t vx = x->delta.published + x->delta.delivered +
		      x->delta.requests;
	uint64_t vy = y->delta.published + y->delta.delivered +
		      y->delta.requests;

	if (vx != vy)
		return vx < vy ? 1 : -1;
	return strcmp(x->topic, y->topic);
}

/*
 * One topic entry for each of the busiest stats_topics topics with
 * traffic, one for the sum of the rest.  The topics are ranked in an array
 * made for the round (not per message).  Afterwards the deltas start
 * again; entries without traffic, that no waiting message points at, go.
 */
static void stats_round_topics(struct server *s, uint64_t seq,
			       uint64_t interval_usec)
{
	struct bus_stats *st = &s->stats;
	struct log_topic_stats other = {
		.seq = seq,
		.interval_usec = interval_usec,
		.delta = st->untracked,
		.other_topics = st->n_untracked,
	};
	struct topic_stat **active = NULL;
	size_t n = 0;

	if (st->topics.count)
		active = calloc(st->topics.count, sizeof(*active));
	for (size_t i = 0; i < st->topics.n_buckets; i++) {
		struct hmap_node *node = st->topics.buckets[i], *next;

		for (; node; node = next) {
			struct topic_stat *ts =
				container_of(node, struct topic_stat, node);

			next = node->next;
			if (counters_zero(&ts->delta)) {
				if (ts->waiting == 0) {
					hmap_remove(&st->topics, node);
					account_credit(&s->accounts, ts->uid,
						       ACCOUNT_STAT_TOPICS);
					free(ts);
				}
				continue;
			}
			if (active) {
				active[n++] = ts;
			} else {
				/* no memory to rank: all go in the sum */
				counters_add(&other.delta, &ts->delta);
				other.other_topics++;
				memset(&ts->delta, 0, sizeof(ts->delta));
			}
		}
	}
	qsort(active, n, sizeof(*active), topic_busier);
	for (size_t i = 0; i < n; i++) {
		struct topic_stat *ts = active[i];

		if (i < s->cfg.stats_topics) {
			struct log_topic_stats e = {
				.seq = seq,
				.interval_usec = interval_usec,
				.topic = ts->topic,
				.delta = ts->delta,
			};

			log_stats_topic(&e);
		} else {
			counters_add(&other.delta, &ts->delta);
			other.other_topics++;
		}
		memset(&ts->delta, 0, sizeof(ts->delta));
	}
	free(active);
	if (!counters_zero(&other.delta))
		log_stats_topic(&other);
	memset(&st->untracked, 0, sizeof(st->untracked));
	st->n_untracked = 0;
}

void stats_round(struct server *s)
{
	struct bus_stats *st = &s->stats;
	struct log_bus_stats e = { 0 };
	uint64_t now = clock_usec(CLOCK_MONOTONIC);

	counters_sub(&e.delta, &st->c, &st->at_round);
	if (!counters_zero(&e.delta)) {
		e.seq = ++st->stats_rounds;
		e.interval_usec = now - st->round_start;
		e.total = st->c;
		e.pending_bytes_max = st->pending_bytes_max;
		e.clients = s->peers.count;
		e.subscriptions = router_count(s->router);
		e.latency_p50_nsec = lat_percentile(st, 0.5);
		e.latency_p99_nsec = lat_percentile(st, 0.99);
		e.latency_max_nsec = st->lat_max;
		log_stats_bus(&e);
		stats_round_topics(s, e.seq, e.interval_usec);
	}
	st->at_round = st->c;
	st->round_start = now;
	st->stats_rounds_all++; /* entries may have gone: hints are stale */
	st->pending_bytes_max = s->pending_bytes;
	memset(st->lat, 0, sizeof(st->lat));
	st->lat_n = 0;
	st->lat_max = 0;
}

static void stats_round_ev(evutil_socket_t fd, short what, void *arg)
{
	stats_round(arg);
}

int stats_reconfigure(struct server *s)
{
	struct timeval tv = { .tv_sec = (time_t)s->cfg.stats_interval };

	if (!s->stats.round_ev) {
		s->stats.round_ev = event_new(s->base, -1, EV_PERSIST,
					      stats_round_ev, s);
		if (!s->stats.round_ev)
			return -ENOMEM;
	}
	event_del(s->stats.round_ev);
	if (s->cfg.stats_interval == 0)
		return 0;
	return event_add(s->stats.round_ev, &tv) < 0 ? -ENOMEM : 0;
}

int stats_init(struct server *s)
{
	struct bus_stats *st = &s->stats;

	hmap_init(&st->topics);
	st->round_start = clock_usec(CLOCK_MONOTONIC);
	st->rl_slow.interval_usec = 10 * 1000000ull;
	st->rl_large.interval_usec = 10 * 1000000ull;
	st->rl_refused.interval_usec = 10 * 1000000ull;
	st->rl_policy.interval_usec = 10 * 1000000ull;
	st->rl_quota.interval_usec = 10 * 1000000ull;
	return stats_reconfigure(s);
}

void stats_deinit(struct server *s)
{
	struct bus_stats *st = &s->stats;

	for (size_t i = 0; i < st->topics.n_buckets; i++) {
		while (st->topics.buckets[i]) {
			struct hmap_node *node = st->topics.buckets[i];

			hmap_remove(&st->topics, node);
			free(container_of(node, struct topic_stat, node));
		}
	}
	hmap_deinit(&st->topics);
	if (st->round_ev)
		event_free(st->round_ev);
	st->round_ev = NULL;
}

/* -------------------------------------------------------------------- */
/* showing them                                                          */

static uint64_t dropped_sum(const struct log_counters *c)
{
	return log_counters_dropped(c) + c->coalesced;
}

/*
 * STATUS= for systemctl status.  Sent from the once-a-second timer, and
 * only when a figure changed: sd_notify's datagram can block the loop if
 * the manager is slow to read, so we keep them few.
 */
void stats_notify_status(struct server *s)
{
	const struct log_counters *c = &s->stats.c;
	uint64_t sum = s->peers.count + c->published + c->delivered +
		       dropped_sum(c);

	if (sum == s->status_sum)
		return;
	s->status_sum = sum;
	sd_notifyf(0,
		   "STATUS=Serving bus %s: %u clients, %llu published, "
		   "%llu delivered, %llu dropped",
		   s->bus, s->peers.count,
		   (unsigned long long)c->published,
		   (unsigned long long)c->delivered,
		   (unsigned long long)dropped_sum(c));
}

/* The counters of struct bus_stats besides the delivery counters. */
#define STAT(name) { #name, offsetof(struct bus_stats, name) }
static const struct {
	const char *name;
	size_t offset;
} stat_fields[] = {
	STAT(bad_messages),	  STAT(handshakes),
	STAT(handshakes_failed),  STAT(clients_gone),
	STAT(wakeups_rescued),	  STAT(requests_expired),
	STAT(replies_refused),	  STAT(timers_fired),
	STAT(publishers_blocked), STAT(slow_disconnects),
	STAT(control_lost),	  STAT(policy_refused),
	STAT(retain_refused),	  STAT(quota_refused),
	STAT(frames_sent),	  STAT(framed_sent),
	STAT(frames_received),	  STAT(drop_notices),
	STAT(stats_rounds),
};
#undef STAT

void stats_text_add(char *buf, size_t cap, size_t *len, const char *fmt,
		    ...)
{
	va_list ap;
	int n;

	if (*len >= cap - 1)
		return;
	va_start(ap, fmt);
	n = vsnprintf(buf + *len, cap - *len, fmt, ap);
	va_end(ap);
	if (n > 0)
		*len = *len + (size_t)n >= cap ? cap - 1 : *len + (size_t)n;
}

int stats_text(struct server *s, char *buf, size_t cap)
{
	const struct log_counters *c = &s->stats.c;
	struct timespec now;
	size_t len = 0;

	clock_gettime(CLOCK_MONOTONIC, &now);
	buf[0] = '\0';
	stats_text_add(buf, cap, &len,
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
		 "pending_mem=%zu\n"
		 "buffers_live=%zu\n",
		 s->bus, (int)s->pid,
		 wake_method_name(wake_method_of(s->wake)),
		 (long long)(now.tv_sec - s->started.tv_sec), s->peers.count,
		 router_count(s->router), s->requests.count, s->timers.n,
		 s->retained.count, s->pending_bytes, s->pending_mem,
		 s->pool.live);
	/* "dropped" counts every message a subscriber lost, coalesced ones
	 * too: the gaps its sequence numbers show */
	large_stats_text(s, buf, cap, &len);
	shm_stats_text(s, buf, cap, &len);
	stats_text_add(buf, cap, &len, "dropped=%llu\n",
		 (unsigned long long)dropped_sum(c));
#define TEXT(field, member, label) \
	stats_text_add(buf, cap, &len, #member "=%llu\n", \
		 (unsigned long long)c->member);
	LOG_COUNTERS(TEXT)
#undef TEXT
	for (size_t i = 0; i < sizeof(stat_fields) / sizeof(stat_fields[0]);
	     i++) {
		uint64_t v;

		memcpy(&v, (const char *)&s->stats + stat_fields[i].offset,
		       sizeof(v));
		stats_text_add(buf, cap, &len, "%s=%llu\n", stat_fields[i].name,
			 (unsigned long long)v);
	}
	bridge_stats_text(s, buf, cap, &len);
	return (int)len;
}

void stats_handle(struct peer *p, struct msgbuf *m,
		  const struct proto_msg *pm)
{
	/* room for the bus's lines and a few dozen bridges' (bridge.c) */
	char text[8192];
	unsigned char buf[PROTO_HEADER_SIZE + 1 + sizeof(text)];
	struct proto_header h;
	int len, n;

	len = stats_text(p->server, text, sizeof(text));
	proto_header_init(&h, PROTO_STATS);
	h.token = pm->h.token;
	n = proto_encode(buf, sizeof(buf), &h, NULL, text, (size_t)len);
	/* larger than rx: in pieces, as a large message goes */
	if (n > 0)
		deliver_control(p, buf, (size_t)n);
}
