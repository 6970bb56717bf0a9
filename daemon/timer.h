/* SPDX-License-Identifier: MIT */
/*
 * timer.h - timed messages: publish later, once or every period.
 *
 * A client asks the daemon to publish a message after a delay or at a
 * wall-clock time, and optionally again every period.  The daemon's loop
 * keeps the timers, so no client sleeps or spins: a heap ordered by firing
 * time behind one timerfd, which is set only when the earliest timer
 * changes (libevent's own precise timers would reset a timerfd on every
 * turn of the loop, and its coarse ones are late by up to a tick).  A timer belongs to its client and ends with
 * it, unless made detached: then it lives until a client of the same uid
 * cancels it.  The message goes out as from the timer's creator (its uid,
 * pid and client id).
 *
 * With a state directory (state.h) the timers are written to the state
 * file and made again at start by timer_restore().  A restored timer that
 * had an owner waits for it: it keeps firing as before, and the owner's tx
 * queue name says which client takes it back (timer_claim()); the ones no
 * client claims by the end of the restart grace go
 * (timer_drop_unclaimed()).
 */
#ifndef MQBUS_TIMER_H
#define MQBUS_TIMER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>
#include <time.h>

#include "daemon/hmap.h"

struct event;
struct msgbuf;
struct peer;
struct proto_msg;
struct server;

/* the longest delay or period (about 31 years) and the latest absolute
 * time (the year 2255), in ms: every sum of them in ns fits an int64_t */
#define TIMER_MAX_DELAY_MS 1000000000000ull
#define TIMER_MAX_AT_MS 9000000000000ull

struct timer {
	uint64_t id;
	struct server *server;
	struct peer *owner; /* NULL for a detached timer */
	char *owner_tx;	    /* restored, waiting for the client of this tx
			       queue to come back (owner is NULL) */
	uid_t uid;
	pid_t pid;
	uint32_t client_id;
	int priority; /* as asked, -1 for the topic's default */
	char *topic;
	char *key; /* NULL: none */
	unsigned char *payload;
	size_t payload_len;
	uint64_t period_ms;
	int64_t next; /* ns of CLOCK_MONOTONIC */
	uint64_t fired;
	size_t heap_index;
	struct hmap_node id_node;      /* by id */
	TAILQ_ENTRY(timer) link;       /* server->timers, in id order */
	TAILQ_ENTRY(timer) owner_link; /* owner->timers */
};

TAILQ_HEAD(timer_list, timer);

/* A server's timers. */
struct timer_set {
	struct timer_list all; /* in id order, for listing */
	struct hmap by_id;
	struct timer **heap;   /* by next */
	size_t n, cap;
	int fd;			/* timerfd, set to heap[0]->next */
	struct event *ev;
	int64_t armed;		/* what fd is set to, 0: nothing */
	uint64_t next_id;
};

/* Sets up the timerfd of s->timers on s->base; -errno. */
int timer_set_init(struct server *s);
/* Frees every timer and the timerfd. */
void timer_set_deinit(struct server *s);

/*
 * The TIMER_ADD, TIMER_CANCEL and TIMER_LIST handler: makes, cancels or
 * lists timers for p and answers it.  A new timer's id goes back in the
 * ACK's seq.
 */
void timer_handle(struct peer *p, struct msgbuf *m,
		  const struct proto_msg *pm);

/* Frees the timers p owns (p is going); detached ones stay. */
void timer_drop_peer(struct peer *p);

/* Whether t outlives its client: made detached, not waiting for one. */
bool timer_detached(const struct timer *t);

/* Where a restored timer comes from (see state.h, struct state_timer). */
struct state_timer;

/*
 * Makes a timer again from what the state file kept: its id, topic, key,
 * payload, priority, period and fired count, its creator's uid, pid and
 * client id, and its next firing, a CLOCK_REALTIME time.  A next firing
 * that passed while the bus was down is due at once, and a periodic timer
 * then keeps its phase: it fires once, however many firings it missed,
 * and next at the first period boundary after now.  A timer with an owner
 * waits for it (see timer_claim()).  The bounds of the config apply as to
 * a new timer.  Returns 0; -EDQUOT (max_timers_per_uid or
 * timer_rate_per_uid), -EINVAL (a period below timer_min_period_ms),
 * -EEXIST (the id is taken) or -ENOMEM, with nothing made.
 */
int timer_restore(struct server *s, const struct state_timer *rec);

/*
 * Gives p the restored timers that wait for a client of p's tx queue
 * name and uid, as if p had made them: they keep their ids and schedule,
 * and fire from p's pid and client id from now on.  For a client of the
 * previous daemon that is adopted again.
 */
void timer_claim(struct server *s, struct peer *p);

/*
 * Frees the restored timers that no client claimed, and logs how many.
 * Returns that number; calling it again finds none.
 */
unsigned timer_drop_unclaimed(struct server *s);

#endif
