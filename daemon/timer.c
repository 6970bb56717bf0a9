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
#include <sys/timerfd.h>
#include <unistd.h>

#include <event2/event.h>

#include "daemon/access.h"
#include "daemon/account.h"
#include "daemon/deliver.h"
#include "daemon/log.h"
#include "daemon/msgbuf.h"
#include "daemon/peer.h"
#include "daemon/route.h"
#include "daemon/server.h"
#include "daemon/state.h"
#include "daemon/timer.h"
#include "proto/proto.h"

#define NS_PER_S 1000000000

static int64_t ts_ns(const struct timespec *t)
{
	return (int64_t)t->tv_sec * NS_PER_S + t->tv_nsec;
}

static int64_t clock_ns(clockid_t clock)
{
	struct timespec t;

	clock_gettime(clock, &t);
	return ts_ns(&t);
}

/* -------------------------------------------------------------------- */
/* the heap and its timerfd                                              */

static void heap_place(struct timer_set *ts, struct timer *t, size_t i)
{
	ts->heap[i] = t;
	t->heap_index = i;
}

static void heap_up(struct timer_set *ts, size_t i)
{
	struct timer *t = ts->heap[i];

	while (i > 0) {
		size_t parent = (i - 1) / 2;

		if (ts->heap[parent]->next <= t->next)
			break;
		heap_place(ts, ts->heap[parent], i);
		i = parent;
	}
	heap_place(ts, t, i);
}

static void heap_down(struct timer_set *ts, size_t i)
{
	struct timer *t = ts->heap[i];

	for (;;) {
		size_t child = 2 * i + 1;

		if (child >= ts->n)
			break;
		if (child + 1 < ts->n &&
		    ts->heap[child + 1]->next < ts->heap[child]->next)
			child++;
		if (t->next <= ts->heap[child]->next)
			break;
		heap_place(ts, ts->heap[child], i);
		i = child;
	}
	heap_place(ts, t, i);
}

static void heap_remove(struct timer_set *ts, struct timer *t)
{
	struct timer *last = ts->heap[--ts->n];

	if (last == t)
		return;
	heap_place(ts, last, t->heap_index);
	heap_up(ts, last->heap_index);
	heap_down(ts, last->heap_index);
}

/*
 * Sets the timerfd to the earliest timer, unless it is already set to that
 * time or an earlier one: a timerfd that fires early (its timer was
 * cancelled) finds nothing due and is set again.
 */
static void timer_set_arm(struct timer_set *ts)
{
	struct itimerspec its = { { 0, 0 }, { 0, 0 } };
	int64_t when;

	if (ts->n == 0)
		return;
	when = ts->heap[0]->next;
	if (ts->armed && ts->armed <= when)
		return;
	if (when < 1)
		when = 1; /* 0 would disarm */
	its.it_value.tv_sec = when / NS_PER_S;
	its.it_value.tv_nsec = when % NS_PER_S;
	if (timerfd_settime(ts->fd, TFD_TIMER_ABSTIME, &its, NULL) < 0) {
		log_warn("cannot set the timers' timerfd");
		return;
	}
	ts->armed = when;
}

static void timer_fire(struct timer *t);

static void timer_set_ready(evutil_socket_t fd, short what, void *arg)
{
	struct server *s = arg;
	struct timer_set *ts = &s->timers;
	int64_t now = clock_ns(CLOCK_MONOTONIC);
	uint64_t expirations;

	/* EAGAIN when it was set again since it fired: nothing to clear */
	if (read(fd, &expirations, sizeof(expirations)) < 0 &&
	    errno != EAGAIN)
		log_warn("reading the timers' timerfd");
	ts->armed = 0;
	/* a periodic timer fired here is due again only after now */
	while (ts->n > 0 && ts->heap[0]->next <= now)
		timer_fire(ts->heap[0]);
	timer_set_arm(ts);
}

int timer_set_init(struct server *s)
{
	struct timer_set *ts = &s->timers;

	TAILQ_INIT(&ts->all);
	hmap_init(&ts->by_id);
	ts->fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (ts->fd < 0)
		return -errno;
	ts->ev = event_new(s->base, ts->fd, EV_READ | EV_PERSIST,
			   timer_set_ready, s);
	if (!ts->ev || event_add(ts->ev, NULL) < 0)
		return -ENOMEM;
	return 0;
}

static void timer_free(struct timer *t);

void timer_set_deinit(struct server *s)
{
	struct timer_set *ts = &s->timers;

	while (!TAILQ_EMPTY(&ts->all))
		timer_free(TAILQ_FIRST(&ts->all));
	hmap_deinit(&ts->by_id);
	free(ts->heap);
	ts->heap = NULL;
	ts->cap = 0;
	if (ts->ev)
		event_free(ts->ev);
	ts->ev = NULL;
	if (ts->fd >= 0)
		close(ts->fd);
	ts->fd = -1;
}

/* -------------------------------------------------------------------- */
/* timers                                                                */

static void timer_fire(struct timer *t)
{
	struct server *s = t->server;
	struct proto_header h;
	struct msgbuf *m;
	int n;

	m = msgbuf_get(&s->pool, proto_size_key(strlen(t->topic),
				      t->key ? strlen(t->key) : 0,
				      t->payload_len));
	if (m) {
		proto_header_init(&h, PROTO_DELIVER);
		n = proto_encode_key(m->data, m->cap, &h, t->topic, t->key,
				     t->payload, t->payload_len);
		if (n > 0) {
			m->len = (size_t)n;
			route_message(s, NULL, t->uid, t->pid, t->client_id,
				      m, t->topic, t->priority);
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
	/* only its count and time moved: written lazily (state.h) */
	state_touched(s->state);
	{
		int64_t now = clock_ns(CLOCK_MONOTONIC);
		int64_t period = (int64_t)t->period_ms * 1000000;

		t->next += period;
		if (t->next <= now) {
			/* fell behind: skip to the next period boundary ahead */
			t->next += ((now - t->next) / period + 1) * period;
		}
	}
	heap_down(&s->timers, t->heap_index);
}

static struct timer *timer_find(const struct timer_set *ts, uint64_t id)
{
	struct hmap_node *node;

	HMAP_FOR_EACH_HASH(node, &ts->by_id,
			   hmap_hash_int((uint32_t)(id ^ (id >> 32)))) {
		struct timer *t = container_of(node, struct timer, id_node);

		if (t->id == id)
			return t;
	}
	return NULL;
}

/* What a period costs of the uid's firing rate: firings per 1000 s. */
static uint64_t timer_rate(uint64_t period_ms)
{
	return period_ms ? (1000000 + period_ms - 1) / period_ms : 0;
}

/*
 * Makes a timer id of uid with copies of topic, key (NULL: none) and
 * payload, charged to uid's account, in the id index, with room for it in
 * the heap; the caller fills in the rest and calls timer_link().  NULL
 * when out of memory, with nothing made.
 */
static struct timer *timer_new(struct server *s, uint64_t id, uid_t uid,
			       const char *topic, const char *key,
			       const void *payload, size_t payload_len,
			       uint64_t period_ms)
{
	struct timer_set *ts = &s->timers;
	uint64_t rate = timer_rate(period_ms);
	struct timer *t;

	if (ts->n == ts->cap) {
		size_t cap = ts->cap ? ts->cap * 2 : 16;
		struct timer **heap = realloc(ts->heap, cap * sizeof(*heap));

		if (!heap)
			return NULL;
		ts->heap = heap;
		ts->cap = cap;
	}
	t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->topic = strdup(topic);
	t->key = key ? strdup(key) : NULL;
	t->payload = malloc(payload_len ? payload_len : 1);
	if (!t->topic || !t->payload || (key && !t->key))
		goto free_strings;
	memcpy(t->payload, payload, payload_len);
	t->payload_len = payload_len;
	t->id = id;
	t->uid = uid;
	t->period_ms = period_ms;
	t->server = s;
	if (account_charge(&s->accounts, uid, ACCOUNT_TIMERS) < 0)
		goto free_strings;
	if (account_charge_n(&s->accounts, uid, ACCOUNT_TIMER_RATE, rate) < 0)
		goto credit;
	if (hmap_insert(&ts->by_id, &t->id_node,
			hmap_hash_int((uint32_t)(id ^ (id >> 32)))) < 0)
		goto credit;
	return t;

credit:
	account_credit(&s->accounts, uid, ACCOUNT_TIMERS);
	account_credit_n(&s->accounts, uid, ACCOUNT_TIMER_RATE, rate);
free_strings:
	free(t->topic);
	free(t->key);
	free(t->payload);
	free(t);
	return NULL;
}

/* Puts t, made by timer_new() and filled in, on the lists and the heap. */
static void timer_link(struct server *s, struct timer *t)
{
	struct timer_set *ts = &s->timers;

	TAILQ_INSERT_TAIL(&ts->all, t, link);
	if (t->owner)
		TAILQ_INSERT_TAIL(&t->owner->timers, t, owner_link);
	heap_place(ts, t, ts->n++);
	heap_up(ts, t->heap_index);
	timer_set_arm(ts);
}

/* Makes a timer from a TIMER_ADD of c.  Returns 0 and its id in *ret_id,
 * or -errno with *ret_why saying why in a sentence. */
static int timer_add(struct server *s, struct peer *c,
		     const struct proto_msg *pm, uint64_t *ret_id,
		     const char **ret_why)
{
	bool detached = pm->h.flags & PROTO_F_DETACHED;
	struct timer_set *ts = &s->timers;
	int64_t mono, first;
	struct timer *t;
	uint64_t rate;

	if (account_held(&s->accounts, c->uid, ACCOUNT_TIMERS) >=
	    s->cfg.max_timers_per_uid) {
		snprintf(s->why, sizeof(s->why),
			 "uid %u has reached max_timers_per_uid (%u)",
			 (unsigned)c->uid, s->cfg.max_timers_per_uid);
		*ret_why = s->why;
		return -EDQUOT;
	}
	rate = timer_rate(pm->h.timestamp);
	if (pm->h.timestamp && pm->h.timestamp < s->cfg.timer_min_period_ms) {
		snprintf(s->why, sizeof(s->why),
			 "a period of %llu ms is below timer_min_period_ms "
			 "(%u)",
			 (unsigned long long)pm->h.timestamp,
			 s->cfg.timer_min_period_ms);
		*ret_why = s->why;
		return -EINVAL;
	}
	if (account_held(&s->accounts, c->uid, ACCOUNT_TIMER_RATE) + rate >
	    (uint64_t)s->cfg.timer_rate_per_uid * 1000) {
		snprintf(s->why, sizeof(s->why),
			 "uid %u would fire its periodic timers more often "
			 "than timer_rate_per_uid (%u a second)",
			 (unsigned)c->uid, s->cfg.timer_rate_per_uid);
		*ret_why = s->why;
		return -EDQUOT;
	}
	/* bounds that keep every sum below in range of int64_t ns */
	if (pm->h.timestamp > TIMER_MAX_DELAY_MS ||
	    pm->h.seq > (pm->h.flags & PROTO_F_ABSOLUTE ? TIMER_MAX_AT_MS
							: TIMER_MAX_DELAY_MS)) {
		*ret_why = "time or period out of range";
		return -EINVAL;
	}
	mono = clock_ns(CLOCK_MONOTONIC);
	if (pm->h.flags & PROTO_F_ABSOLUTE) {
		/* a wall-clock time: turn it into a monotonic one now */
		first = mono + ((int64_t)pm->h.seq * 1000000 -
				clock_ns(CLOCK_REALTIME));
		if (first < mono)
			first = mono;
	} else {
		first = mono + (int64_t)pm->h.seq * 1000000;
	}
	t = timer_new(s, ts->next_id + 1, c->uid, pm->topic,
		      pm->h.key_len ? pm->key : NULL, pm->payload,
		      pm->h.payload_len, pm->h.timestamp);
	if (!t) {
		*ret_why = "out of memory";
		return -ENOMEM;
	}
	ts->next_id++;
	t->owner = detached ? NULL : c;
	t->pid = c->pid;
	t->client_id = c->id;
	t->priority = pm->h.flags & PROTO_F_PRIORITY ? (int)pm->h.priority
						     : -1;
	t->next = first;
	timer_link(s, t);
	state_changed(s->state);
	*ret_id = t->id;
	return 0;
}

int timer_restore(struct server *s, const struct state_timer *rec)
{
	struct timer_set *ts = &s->timers;
	uint64_t rate = timer_rate(rec->period_ms);
	int64_t mono = clock_ns(CLOCK_MONOTONIC);
	int64_t real = clock_ns(CLOCK_REALTIME);
	int64_t next;
	struct timer *t;

	if (account_held(&s->accounts, rec->uid, ACCOUNT_TIMERS) >=
	    s->cfg.max_timers_per_uid ||
	    account_held(&s->accounts, rec->uid, ACCOUNT_TIMER_RATE) + rate >
		    (uint64_t)s->cfg.timer_rate_per_uid * 1000)
		return -EDQUOT;
	if (rec->period_ms && rec->period_ms < s->cfg.timer_min_period_ms)
		return -EINVAL;
	if (timer_find(ts, rec->id))
		return -EEXIST;
	/*
	 * Both times are below 2^63 ns and the period below 2^60 ns (the
	 * loader checked), so no difference here wraps.  A time ahead is
	 * at most TIMER_MAX_DELAY_MS away, as a new timer's would be.
	 */
	if (rec->next_ns >= real) {
		int64_t ahead = rec->next_ns - real;

		if (ahead > (int64_t)TIMER_MAX_DELAY_MS * 1000000)
			ahead = (int64_t)TIMER_MAX_DELAY_MS * 1000000;
		next = mono + ahead;
	} else if (rec->period_ms) {
		int64_t period = (int64_t)rec->period_ms * 1000000;

		/* the last boundary that passed: due now, and timer_fire()
		 * steps on to the next one, in phase */
		next = mono - (real - rec->next_ns) % period;
	} else {
		next = mono;
	}
	t = timer_new(s, rec->id, rec->uid, rec->topic, rec->key, rec->payload,
		      rec->payload_len, rec->period_ms);
	if (!t)
		return -ENOMEM;
	if (rec->owner_tx) {
		t->owner_tx = strdup(rec->owner_tx);
		if (!t->owner_tx) {
			/* not yet on a list or the heap: undo timer_new() */
			hmap_remove(&ts->by_id, &t->id_node);
			account_credit(&s->accounts, t->uid, ACCOUNT_TIMERS);
			account_credit_n(&s->accounts, t->uid,
					 ACCOUNT_TIMER_RATE, rate);
			free(t->topic);
			free(t->key);
			free(t->payload);
			free(t);
			return -ENOMEM;
		}
	}
	t->pid = rec->pid;
	t->client_id = rec->client_id;
	t->priority = rec->priority;
	t->fired = rec->fired;
	t->next = next;
	if (ts->next_id < t->id)
		ts->next_id = t->id;
	timer_link(s, t);
	return 0;
}

static void timer_free(struct timer *t)
{
	struct server *s = t->server;

	heap_remove(&s->timers, t);
	hmap_remove(&s->timers.by_id, &t->id_node);
	account_credit(&s->accounts, t->uid, ACCOUNT_TIMERS);
	account_credit_n(&s->accounts, t->uid, ACCOUNT_TIMER_RATE,
			 timer_rate(t->period_ms));
	TAILQ_REMOVE(&s->timers.all, t, link);
	if (t->owner)
		TAILQ_REMOVE(&t->owner->timers, t, owner_link);
	state_changed(s->state);
	free(t->owner_tx);
	free(t->topic);
	free(t->key);
	free(t->payload);
	free(t);
}

bool timer_detached(const struct timer *t)
{
	return !t->owner && !t->owner_tx;
}

/* Who may see and cancel a timer: its own client, or for a detached one
 * any client of its uid. */
static bool timer_visible(const struct timer *t, const struct peer *c)
{
	return t->owner ? t->owner == c || t->uid == c->uid : t->uid == c->uid;
}

/* Cancels timer id for c: -ENOENT if there is none, -EPERM if it belongs
 * to another uid or is another client's own (also one that waits for its
 * client to come back). */
static int timer_cancel(struct server *s, struct peer *c, uint64_t id)
{
	struct timer *t = timer_find(&s->timers, id);

	if (!t)
		return -ENOENT;
	if (!timer_visible(t, c) || (!timer_detached(t) && t->owner != c))
		return -EPERM;
	timer_free(t);
	return 0;
}

/* One line per timer c may see, into buf; returns the length. */
static int timer_list_text(struct server *s, struct peer *c, char *buf,
			   size_t cap)
{
	int64_t now = clock_ns(CLOCK_MONOTONIC);
	struct timer *t;
	size_t len = 0;

	buf[0] = '\0';
	TAILQ_FOREACH(t, &s->timers.all, link) {
		int64_t left = (t->next - now) / 1000000;
		int n;

		if (!timer_visible(t, c))
			continue;
		n = snprintf(buf + len, cap - len,
			     "id=%" PRIu64 " topic=%s next_ms=%lld "
			     "period_ms=%" PRIu64 " fired=%" PRIu64
			     " detached=%d uid=%u pid=%d%s%s\n",
			     t->id, t->topic, (long long)(left < 0 ? 0 : left),
			     t->period_ms, t->fired, timer_detached(t),
			     (unsigned)t->uid, (int)t->pid,
			     t->key ? " key=" : "", t->key ? t->key : "");
		if (n < 0 || (size_t)n >= cap - len)
			break; /* the list is cut where the reply is full */
		len += (size_t)n;
	}
	return (int)len;
}

/* The reply to TIMER_LIST: as much of the list as c's rx can take. */
static void timer_list_reply(struct peer *c, uint32_t token)
{
	unsigned char buf[4096];
	char text[3072];
	struct proto_header h;
	int len = timer_list_text(c->server, c, text, sizeof(text)), n;

	if ((long)proto_size(0, len) > c->rx_msgsize)
		len = (int)(c->rx_msgsize - (long)proto_size(0, 0));
	proto_header_init(&h, PROTO_TIMER_LIST);
	h.token = token;
	n = proto_encode(buf, sizeof(buf), &h, NULL, text, len < 0 ? 0 : len);
	if (n > 0)
		deliver_control(c, buf, (size_t)n);
}

void timer_handle(struct peer *p, struct msgbuf *m, const struct proto_msg *pm)
{
	struct server *s = p->server;
	char text[ACCESS_WHY_MAX];
	const char *why = NULL;
	uint64_t id = 0;
	int r;

	switch (pm->h.type) {
	case PROTO_TIMER_ADD:
		if (!access_check(p, POLICY_TIMER, pm->topic, text,
				  sizeof(text))) {
			deliver_reply(p, pm->h.token, EACCES, text);
			break;
		}
		r = timer_add(s, p, pm, &id, &why);
		deliver_reply_seq(p, pm->h.token, -r, why, id);
		break;
	case PROTO_TIMER_CANCEL:
		r = timer_cancel(s, p, pm->h.seq);
		deliver_reply(p, pm->h.token, -r,
			      r == -EPERM ? "not your timer" : "no such timer");
		break;
	default:
		timer_list_reply(p, pm->h.token);
		break;
	}
}

void timer_drop_peer(struct peer *p)
{
	while (!TAILQ_EMPTY(&p->timers))
		timer_free(TAILQ_FIRST(&p->timers));
}

void timer_claim(struct server *s, struct peer *p)
{
	struct timer *t;
	unsigned n = 0;

	TAILQ_FOREACH(t, &s->timers.all, link) {
		if (!t->owner_tx || t->uid != p->uid ||
		    strcmp(t->owner_tx, p->tx_name) != 0)
			continue;
		free(t->owner_tx);
		t->owner_tx = NULL;
		t->owner = p;
		t->pid = p->pid;
		t->client_id = p->id;
		TAILQ_INSERT_TAIL(&p->timers, t, owner_link);
		n++;
	}
	if (n) {
		log_debug("client %u (%s) took back %u timer%s", p->id,
			  p->tx_name, n, n == 1 ? "" : "s");
		state_changed(s->state);
	}
}

unsigned timer_drop_unclaimed(struct server *s)
{
	struct timer *t, *next;
	unsigned n = 0;

	for (t = TAILQ_FIRST(&s->timers.all); t; t = next) {
		next = TAILQ_NEXT(t, link);
		if (!t->owner_tx)
			continue;
		timer_free(t);
		n++;
	}
	if (n)
		log_info("restart grace over: dropped %u restored timer%s "
			 "whose client did not come back",
			 n, n == 1 ? "" : "s");
	return n;
}
