/* SPDX-License-Identifier: MIT */
/*
 * timer.c - the daemon's timed messages.
 *
 * A periodic timer is scheduled from its previous target time, not from
 * when it fired, so it does not drift; if the loop fell behind by more
 * than a period, the missed firings are skipped rather than bunched.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "daemon/client.h"
#include "daemon/log.h"
#include "daemon/msgbuf.h"
#include "daemon/server.h"
#include "daemon/timer.h"
#include "proto/proto.h"

static int64_t ts_ns(const struct timespec *t)
{
	return (int64_t)t->tv_sec * 1000000000 + t->tv_nsec;
}

static struct timespec ns_ts(int64_t ns)
{
	struct timespec t = { ns / 1000000000, ns % 1000000000 };

	return t;
}

static void timer_schedule(struct timer *t)
{
	struct timespec now;
	struct timeval tv;
	int64_t left;

	clock_gettime(CLOCK_MONOTONIC, &now);
	left = ts_ns(&t->next) - ts_ns(&now);
	if (left < 0)
		left = 0;
	tv.tv_sec = left / 1000000000;
	tv.tv_usec = (left % 1000000000) / 1000;
	event_add(&t->ev, &tv);
}

static void timer_fire(evutil_socket_t fd, short what, void *arg)
{
	struct timer *t = arg;
	struct server *s = t->server;
	struct proto_header h;
	struct msgbuf *m;
	int n;

	m = msgbuf_get(proto_size(strlen(t->topic), t->payload_len));
	if (m) {
		proto_header_init(&h, PROTO_DELIVER);
		n = proto_encode(m->data, m->cap, &h, t->topic, t->payload,
				 t->payload_len);
		if (n > 0) {
			m->len = (size_t)n;
			server_route_as(s, t->uid, t->pid, t->client_id, m,
					t->topic, t->priority);
		}
		msgbuf_unref(m);
	} else {
		log_warnx("timer %" PRIu64 ": out of memory, firing skipped",
			  t->id);
	}
	t->fired++;
	s->stats.timers_fired++;
	if (t->period_ms == 0) {
		timer_free(t);
		return;
	}
	{
		struct timespec now;
		int64_t next = ts_ns(&t->next) + (int64_t)t->period_ms * 1000000;

		clock_gettime(CLOCK_MONOTONIC, &now);
		if (next <= ts_ns(&now)) {
			/* fell behind: skip to the next period boundary ahead */
			int64_t behind = ts_ns(&now) - next;
			int64_t period = (int64_t)t->period_ms * 1000000;

			next += (behind / period + 1) * period;
		}
		t->next = ns_ts(next);
	}
	timer_schedule(t);
}

unsigned timer_count_uid(struct server *s, uid_t uid)
{
	struct timer *t;
	unsigned n = 0;

	TAILQ_FOREACH(t, &s->timers, link)
		n += t->uid == uid;
	return n;
}

int timer_add(struct server *s, struct client *c, const struct proto_msg *pm,
	      uint64_t *ret_id, const char **ret_why)
{
	bool detached = pm->h.flags & PROTO_F_DETACHED;
	struct timespec mono, real;
	int64_t first;
	struct timer *t;

	if (timer_count_uid(s, c->uid) >= TIMER_MAX_PER_UID) {
		*ret_why = "too many timers for this uid";
		return -EDQUOT;
	}
	/* bounds that keep every sum below in range of int64_t ns */
	if (pm->h.timestamp > TIMER_MAX_DELAY_MS ||
	    pm->h.seq > (pm->h.flags & PROTO_F_ABSOLUTE ? TIMER_MAX_AT_MS
							: TIMER_MAX_DELAY_MS)) {
		*ret_why = "time or period out of range";
		return -EINVAL;
	}
	clock_gettime(CLOCK_MONOTONIC, &mono);
	if (pm->h.flags & PROTO_F_ABSOLUTE) {
		/* a wall-clock time: turn it into a monotonic one now */
		clock_gettime(CLOCK_REALTIME, &real);
		first = ts_ns(&mono) +
			((int64_t)pm->h.seq * 1000000 - ts_ns(&real));
		if (first < ts_ns(&mono))
			first = ts_ns(&mono);
	} else {
		first = ts_ns(&mono) + (int64_t)pm->h.seq * 1000000;
	}
	t = calloc(1, sizeof(*t));
	if (!t)
		goto nomem;
	t->topic = strdup(pm->topic);
	t->payload = malloc(pm->h.payload_len ? pm->h.payload_len : 1);
	if (!t->topic || !t->payload) {
		free(t->topic);
		free(t->payload);
		free(t);
		goto nomem;
	}
	memcpy(t->payload, pm->payload, pm->h.payload_len);
	t->payload_len = pm->h.payload_len;
	t->id = ++s->next_timer_id;
	t->server = s;
	t->owner = detached ? NULL : c;
	t->uid = c->uid;
	t->pid = c->pid;
	t->client_id = c->id;
	t->priority = pm->h.flags & PROTO_F_PRIORITY ? (int)pm->h.priority
						     : -1;
	t->period_ms = pm->h.timestamp;
	t->next = ns_ts(first);
	event_assign(&t->ev, s->base, -1, 0, timer_fire, t);
	TAILQ_INSERT_TAIL(&s->timers, t, link);
	if (t->owner)
		TAILQ_INSERT_TAIL(&c->timers, t, owner_link);
	timer_schedule(t);
	*ret_id = t->id;
	return 0;

nomem:
	*ret_why = "out of memory";
	return -ENOMEM;
}

void timer_free(struct timer *t)
{
	struct server *s = t->server;

	event_del(&t->ev);
	TAILQ_REMOVE(&s->timers, t, link);
	if (t->owner)
		TAILQ_REMOVE(&t->owner->timers, t, owner_link);
	free(t->topic);
	free(t->payload);
	free(t);
}

/* Who may see and cancel a timer: its own client, or for a detached one
 * any client of its uid. */
static bool timer_visible(const struct timer *t, const struct client *c)
{
	return t->owner ? t->owner == c || t->uid == c->uid : t->uid == c->uid;
}

int timer_cancel(struct server *s, struct client *c, uint64_t id)
{
	struct timer *t;

	TAILQ_FOREACH(t, &s->timers, link) {
		if (t->id != id)
			continue;
		if (!timer_visible(t, c))
			return -EPERM;
		if (t->owner && t->owner != c)
			return -EPERM;
		timer_free(t);
		return 0;
	}
	return -ENOENT;
}

int timer_list_text(struct server *s, struct client *c, char *buf, size_t cap)
{
	struct timespec now;
	struct timer *t;
	size_t len = 0;

	clock_gettime(CLOCK_MONOTONIC, &now);
	buf[0] = '\0';
	TAILQ_FOREACH(t, &s->timers, link) {
		int64_t left = (ts_ns(&t->next) - ts_ns(&now)) / 1000000;
		int n;

		if (!timer_visible(t, c))
			continue;
		n = snprintf(buf + len, cap - len,
			     "id=%" PRIu64 " topic=%s next_ms=%lld "
			     "period_ms=%" PRIu64 " fired=%" PRIu64
			     " detached=%d uid=%u pid=%d\n",
			     t->id, t->topic, (long long)(left < 0 ? 0 : left),
			     t->period_ms, t->fired, t->owner ? 0 : 1,
			     (unsigned)t->uid, (int)t->pid);
		if (n < 0 || (size_t)n >= cap - len)
			break; /* the list is cut where the reply is full */
		len += (size_t)n;
	}
	return (int)len;
}
