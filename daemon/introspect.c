/* SPDX-License-Identifier: MIT */
/*
 * introspect.c - answering QUERY: one part of whole lines per request,
 * resumed from the cursor the client sends back.
 *
 * Each part is made from scratch: the items after the cursor are
 * gathered into a temporary array, put in their order and printed until
 * the part is full.  That costs a sort per part, and nothing between
 * parts; a part is one control message, so a client that asks and never
 * reads is bounded by the control slack like any other.
 */
#include <errno.h>
#include <inttypes.h>
#include <mqueue.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon/access.h"
#include "daemon/account.h"
#include "daemon/deliver.h"
#include "daemon/introspect.h"
#include "daemon/log.h"
#include "daemon/msgbuf.h"
#include "daemon/peer.h"
#include "daemon/retain.h"
#include "daemon/server.h"
#include "daemon/stats.h"
#include "daemon/timer.h"
#include "proto/proto.h"

/* the longest line (a topic of 255 bytes and every counter fits) */
#define INTROSPECT_LINE_MAX 1024
/* the most payload one part carries, whatever rx takes */
#define INTROSPECT_PART_MAX 16384

/* The part being made. */
struct part {
	struct peer *viewer;
	bool privileged; /* root or the bus owner: sees every pid, comm */
	char *buf;
	size_t cap, len;
	unsigned lines;
	bool more;    /* an item did not fit: not the last part */
	bool too_big; /* a line does not fit even an empty part */
	char topic[PROTO_TOPIC_MAX + 1]; /* the cursor, where to resume */
	uint64_t seq;
};

/*
 * Adds one line; false when it does not fit (the part ends there, and
 * says so).  A line that fits no part at all marks the answer too big.
 */
static bool part_line(struct part *pt, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static bool part_line(struct part *pt, const char *fmt, ...)
{
	char line[INTROSPECT_LINE_MAX];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line) - 1 ||
	    pt->len + (size_t)n + 1 > pt->cap) {
		if (pt->lines == 0)
			pt->too_big = true;
		pt->more = true;
		return false;
	}
	memcpy(pt->buf + pt->len, line, (size_t)n);
	pt->len += (size_t)n;
	pt->buf[pt->len++] = '\n';
	pt->lines++;
	return true;
}

/* Whether the viewer may see the pid and comm of what uid holds. */
static bool part_shows(const struct part *pt, uid_t uid)
{
	return pt->privileged || pt->viewer->uid == uid;
}

/*
 * comm as one field value: bytes outside 0x21..0x7e, '%' and '=' as %XX,
 * so that a field never holds a space; "-" when it is not shown.
 */
static const char *field_comm(const struct part *pt, const struct peer *p,
			      char *out, size_t cap)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	if (!part_shows(pt, p->uid))
		return "-";
	for (size_t i = 0; i < sizeof(p->comm) && p->comm[i] && o + 4 < cap;
	     i++) {
		unsigned char c = (unsigned char)p->comm[i];

		if (c < 0x21 || c > 0x7e || c == '%' || c == '=') {
			out[o++] = '%';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		} else {
			out[o++] = (char)c;
		}
	}
	if (o == 0)
		out[o++] = '-';
	out[o] = '\0';
	return out;
}

/* A pid as a field value, "-" when it is not shown. */
static const char *field_pid(const struct part *pt, uid_t uid, pid_t pid,
			     char *out, size_t cap)
{
	if (!part_shows(pt, uid))
		return "-";
	snprintf(out, cap, "%d", (int)pid);
	return out;
}

static uint64_t now_usec(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000u + (uint64_t)t.tv_nsec / 1000u;
}

/* -------------------------------------------------------------------- */
/* clients and their subscriptions                                       */

static int peer_by_id(const void *a, const void *b)
{
	uint32_t x = (*(struct peer *const *)a)->id;
	uint32_t y = (*(struct peer *const *)b)->id;

	return x < y ? -1 : x > y;
}

/* The live peers with an id of at least from, by id, in *ret. */
static int peers_from(struct server *s, uint32_t from, struct peer ***ret,
		      size_t *ret_n)
{
	struct peer **v = malloc((s->peers.count + 1) * sizeof(*v));
	struct peer *p;
	size_t n = 0;

	if (!v)
		return -ENOMEM;
	TAILQ_FOREACH(p, &s->peers.all, link)
		if (!p->closing && p->id >= from && n < s->peers.count)
			v[n++] = p;
	qsort(v, n, sizeof(*v), peer_by_id);
	*ret = v;
	*ret_n = n;
	return 0;
}

static bool client_line(struct part *pt, struct peer *p, uint64_t now)
{
	struct mq_attr rx = { 0 }, tx = { 0 };
	char comm[64], pid[16];

	/* the kernel's own figures: what waits in the queues right now */
	mq_getattr(p->rx, &rx);
	mq_getattr(p->tx, &tx);
	return part_line(pt,
			 "id=%" PRIu32 " uid=%u pid=%s comm=%s subs=%zu "
			 "rx_depth=%ld rx_maxmsg=%ld rx_msgsize=%ld "
			 "tx_depth=%ld pending=%u pending_bytes=%zu "
			 "published=%" PRIu64 " delivered=%" PRIu64
			 " dropped=%" PRIu64 " requests=%" PRIu64
			 " replies=%" PRIu64 " bad_messages=%" PRIu64
			 " connected_s=%" PRIu64,
			 p->id, (unsigned)p->uid,
			 field_pid(pt, p->uid, p->pid, pid, sizeof(pid)),
			 field_comm(pt, p, comm, sizeof(comm)), p->n_subs,
			 (long)rx.mq_curmsgs, (long)rx.mq_maxmsg,
			 (long)rx.mq_msgsize, (long)tx.mq_curmsgs,
			 p->n_pending, p->pending_bytes, p->counts.published,
			 p->counts.delivered,
			 log_counters_dropped(&p->counts) + p->counts.coalesced,
			 p->counts.requests, p->counts.replies,
			 p->bad_messages,
			 (now - p->connected_usec) / 1000000u);
}

/* Clients after id seq (the cursor), by id. */
static int query_clients(struct part *pt, uint64_t after)
{
	uint64_t now = now_usec();
	struct peer **v;
	size_t n;
	int r;

	if (after >= UINT32_MAX)
		return 0;
	r = peers_from(pt->viewer->server, (uint32_t)after + 1, &v, &n);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		if (!client_line(pt, v[i], now))
			break;
		pt->seq = v[i]->id;
	}
	free(v);
	return 0;
}

/*
 * Subscriptions by client id, then in the order the client holds them;
 * the cursor is the client's id in the high 32 bits of seq and how many
 * of its subscriptions were listed in the low ones.
 */
static int query_subscriptions(struct part *pt, uint64_t cursor)
{
	uint32_t from = (uint32_t)(cursor >> 32);
	size_t skip = (size_t)(cursor & UINT32_MAX);
	struct peer **v;
	size_t n;
	int r;

	r = peers_from(pt->viewer->server, from, &v, &n);
	if (r < 0)
		return r;
	pt->seq = cursor;
	for (size_t i = 0; i < n && !pt->more; i++) {
		struct peer *p = v[i];
		char comm[64], pid[16];
		size_t k = p->id == from ? skip : 0;

		for (; k < p->n_subs; k++) {
			const struct peer_sub *sub = &p->subs[k];

			if (!part_line(pt,
				       "pattern=%s client=%" PRIu32
				       " uid=%u pid=%s comm=%s group=%s "
				       "monitor=%d",
				       sub->pattern, p->id, (unsigned)p->uid,
				       field_pid(pt, p->uid, p->pid, pid,
						 sizeof(pid)),
				       field_comm(pt, p, comm, sizeof(comm)),
				       sub->group ? sub->group : "-",
				       sub->monitor ? 1 : 0))
				break;
			pt->seq = (uint64_t)p->id << 32 | (k + 1);
		}
	}
	free(v);
	return 0;
}

/* -------------------------------------------------------------------- */
/* topics and retained values, by name                                   */

static int stat_by_topic(const void *a, const void *b)
{
	return strcmp((*(struct topic_stat *const *)a)->topic,
		      (*(struct topic_stat *const *)b)->topic);
}

static int query_topics(struct part *pt, const char *after)
{
	struct bus_stats *st = &pt->viewer->server->stats;
	struct topic_stat **v = malloc((st->topics.count + 1) * sizeof(*v));
	size_t n = 0;

	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < st->topics.n_buckets; i++) {
		for (struct hmap_node *node = st->topics.buckets[i]; node;
		     node = node->next) {
			struct topic_stat *ts =
				container_of(node, struct topic_stat, node);

			if (strcmp(ts->topic, after) > 0 &&
			    n < st->topics.count)
				v[n++] = ts;
		}
	}
	qsort(v, n, sizeof(*v), stat_by_topic);
	for (size_t i = 0; i < n; i++) {
		const struct topic_stat *ts = v[i];
		const struct log_counters *c = &ts->delta;

		if (!part_line(pt,
			       "topic=%s dropped=%" PRIu64
#define FMT(field, member, label) " " #member "=%" PRIu64
			       LOG_COUNTERS(FMT)
#undef FMT
			       " waiting=%u",
			       ts->topic,
			       log_counters_dropped(c) + c->coalesced,
#define ARG(field, member, label) c->member,
			       LOG_COUNTERS(ARG)
#undef ARG
			       ts->waiting))
			break;
		snprintf(pt->topic, sizeof(pt->topic), "%s", ts->topic);
	}
	free(v);
	return 0;
}

static int retained_by_topic(const void *a, const void *b)
{
	return strcmp((*(struct retained *const *)a)->topic,
		      (*(struct retained *const *)b)->topic);
}

/* A heap of the k smallest items seen, the largest of them at the top. */
static void heap_sift_down(struct retained **h, size_t n, size_t i)
{
	for (;;) {
		size_t c = 2 * i + 1;
		struct retained *t;

		if (c >= n)
			return;
		if (c + 1 < n && strcmp(h[c + 1]->topic, h[c]->topic) > 0)
			c++;
		if (strcmp(h[i]->topic, h[c]->topic) >= 0)
			return;
		t = h[i];
		h[i] = h[c];
		h[c] = t;
		i = c;
	}
}

static void heap_sift_up(struct retained **h, size_t i)
{
	while (i > 0) {
		size_t parent = (i - 1) / 2;
		struct retained *t;

		if (strcmp(h[parent]->topic, h[i]->topic) >= 0)
			return;
		t = h[i];
		h[i] = h[parent];
		h[parent] = t;
		i = parent;
	}
}

/*
 * The values after the cursor, by name.  A part holds at most one line
 * per 40 bytes of it, so only that many of the smallest names are kept
 * (a bounded heap): a part costs n log k string compares, not a sort of
 * every value, and listing many values stays cheap for the daemon.
 */
static int query_retained(struct part *pt, const char *after)
{
	struct retain_store *rs = &pt->viewer->server->retained;
	size_t k = pt->cap / 40 + 1, n = 0, seen = 0, shown = 0;
	struct retained **v, *val;

	if (k > rs->count)
		k = rs->count;
	v = malloc((k + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	TAILQ_FOREACH(val, &rs->values, link) {
		if (strcmp(val->topic, after) <= 0)
			continue;
		seen++;
		if (n < k) {
			v[n] = val;
			heap_sift_up(v, n++);
		} else if (k && strcmp(val->topic, v[0]->topic) < 0) {
			v[0] = val;
			heap_sift_down(v, n, 0);
		}
	}
	qsort(v, n, sizeof(*v), retained_by_topic);
	for (size_t i = 0; i < n; i++) {
		struct proto_header h;
		char pid[16];

		memcpy(&h, v[i]->m->data, sizeof(h));
		if (!part_line(pt,
			       "topic=%s bytes=%" PRIu32 " priority=%u "
			       "uid=%u pid=%s client=%" PRIu32,
			       v[i]->topic, h.payload_len, v[i]->prio,
			       (unsigned)h.sender_uid,
			       field_pid(pt, (uid_t)h.sender_uid,
					 (pid_t)h.sender_pid, pid, sizeof(pid)),
			       h.client_id))
			break;
		shown++;
		snprintf(pt->topic, sizeof(pt->topic), "%s", v[i]->topic);
	}
	/* every kept one fitted, but there are more after them */
	if (shown == n && seen > n)
		pt->more = true;
	free(v);
	return 0;
}

/* -------------------------------------------------------------------- */
/* timers, by id                                                         */

static int query_timers(struct part *pt, uint64_t after)
{
	struct timespec t;
	struct timer *tm;
	int64_t now;

	clock_gettime(CLOCK_MONOTONIC, &t);
	now = (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
	pt->seq = after;
	/* the list is in id order: ids only grow */
	TAILQ_FOREACH(tm, &pt->viewer->server->timers.all, link) {
		int64_t left = (tm->next - now) / 1000000;
		char pid[16];

		if (tm->id <= after)
			continue;
		if (!part_line(pt,
			       "id=%" PRIu64 " topic=%s next_ms=%lld "
			       "period_ms=%" PRIu64 " fired=%" PRIu64
			       " detached=%d uid=%u pid=%s client=%" PRIu32
			       " key=%s",
			       tm->id, tm->topic,
			       (long long)(left < 0 ? 0 : left), tm->period_ms,
			       tm->fired, timer_detached(tm), (unsigned)tm->uid,
			       field_pid(pt, tm->uid, tm->pid, pid,
					 sizeof(pid)),
			       tm->client_id, tm->key ? tm->key : "-"))
			break;
		pt->seq = tm->id;
	}
	return 0;
}

/* -------------------------------------------------------------------- */
/* the handler                                                           */

static void introspect_send(struct peer *p, const struct proto_msg *pm,
			    const struct part *pt)
{
	size_t size = proto_size(PROTO_TOPIC_MAX, pt->len);
	struct proto_header h;
	unsigned char *buf = malloc(size);
	int n;

	if (!buf) {
		deliver_reply(p, pm->h.token, ENOMEM, "out of memory");
		return;
	}
	proto_header_init(&h, PROTO_QUERY);
	h.token = pm->h.token;
	h.status = pm->h.status;
	if (pt->more) {
		h.flags = PROTO_F_MORE;
		h.seq = pt->seq;
	}
	n = proto_encode(buf, size, &h, pt->more ? pt->topic : NULL, pt->buf,
			 pt->len);
	if (n > 0)
		deliver_control(p, buf, (size_t)n);
	free(buf);
}

/* The items a part of what walks: the whole of its collection (each part
 * gathers what follows its cursor from all of it). */
static uint64_t query_cost(const struct server *s, unsigned what)
{
	size_t n;

	switch (what) {
	case PROTO_QUERY_CLIENTS:
	case PROTO_QUERY_SUBSCRIPTIONS:
		n = s->peers.count;
		break;
	case PROTO_QUERY_TOPICS:
		n = s->stats.topics.count;
		break;
	case PROTO_QUERY_RETAINED:
		n = s->retained.count;
		break;
	default:
		n = s->timers.n;
		break;
	}
	return (uint64_t)n + 1;
}

/*
 * A uid's share of the daemon's time for listings: the items its parts
 * walk per second (query_budget_per_uid), so that a user asking in a loop
 * for the list of a large bus cannot keep the daemon from everyone else.
 * Root and the bus's owner have none.  false: refused, and answered.
 */
static bool query_allowed(struct peer *p, const struct proto_msg *pm,
			  bool privileged)
{
	struct server *s = p->server;
	uint64_t cost = query_cost(s, pm->h.status);
	uint64_t used = account_held(&s->accounts, p->uid, ACCOUNT_QUERY_COST);
	char text[200];

	if (privileged)
		return true;
	if (used + cost > s->cfg.query_budget_per_uid && used > 0) {
		snprintf(text, sizeof(text),
			 "uid %u has used its listing budget for this second "
			 "(query_budget_per_uid = %u items); ask again later",
			 (unsigned)p->uid, s->cfg.query_budget_per_uid);
		access_quota_refused(p, "query_budget_per_uid",
				     proto_query_name(pm->h.status), text);
		deliver_reply(p, pm->h.token, EBUSY, text);
		return false;
	}
	account_charge_n(&s->accounts, p->uid, ACCOUNT_QUERY_COST, cost);
	return true;
}

void introspect_handle(struct peer *p, struct msgbuf *m,
		       const struct proto_msg *pm)
{
	struct server *s = p->server;
	struct part pt = {
		.viewer = p,
		.privileged = p->uid == 0 || p->uid == s->uid,
	};
	unsigned what = pm->h.status;
	bool named = what == PROTO_QUERY_TOPICS ||
		     what == PROTO_QUERY_RETAINED;
	long room;
	char text[160];
	int r;

	if (pm->h.payload_len != 0 || (pm->h.flags & PROTO_F_MORE) ||
	    (!named && pm->h.topic_len != 0) || (named && pm->h.seq != 0)) {
		deliver_reply(p, pm->h.token, EINVAL,
			      "a QUERY asks with its what, and a topic or "
			      "seq to resume from, only");
		return;
	}
	if (!query_allowed(p, pm, pt.privileged))
		return;
	/* room for the cursor topic, whatever it will be */
	room = p->rx_msgsize - (long)proto_size(PROTO_TOPIC_MAX, 0);
	if (room > INTROSPECT_PART_MAX)
		room = INTROSPECT_PART_MAX;
	pt.cap = room > 0 ? (size_t)room : 0;
	pt.buf = malloc(pt.cap + 1);
	if (!pt.buf) {
		deliver_reply(p, pm->h.token, ENOMEM, "out of memory");
		return;
	}

	switch (what) {
	case PROTO_QUERY_CLIENTS:
		r = query_clients(&pt, pm->h.seq);
		break;
	case PROTO_QUERY_TOPICS:
		r = query_topics(&pt, pm->topic);
		break;
	case PROTO_QUERY_SUBSCRIPTIONS:
		r = query_subscriptions(&pt, pm->h.seq);
		break;
	case PROTO_QUERY_RETAINED:
		r = query_retained(&pt, pm->topic);
		break;
	case PROTO_QUERY_TIMERS:
	default:
		r = query_timers(&pt, pm->h.seq);
		break;
	}
	if (r < 0) {
		deliver_reply(p, pm->h.token, -r, "out of memory");
	} else if (pt.too_big) {
		snprintf(text, sizeof(text),
			 "messages of %ld bytes in your rx queue cannot hold "
			 "one line of this answer; use at least %d",
			 p->rx_msgsize,
			 (int)proto_size(PROTO_TOPIC_MAX, INTROSPECT_LINE_MAX));
		deliver_reply(p, pm->h.token, EMSGSIZE, text);
	} else {
		introspect_send(p, pm, &pt);
	}
	free(pt.buf);
}
