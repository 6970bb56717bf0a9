/* SPDX-License-Identifier: MIT */
/*
 * wake.h - how the loop learns that a queue has messages.
 *
 * Three back-ends behind one interface, chosen with --wake:
 *   notify  mq_notify(SIGEV_SIGNAL) with a realtime signal whose value
 *           names the source; the server reads it from its signalfd and
 *           passes it to wake_signal().
 *   thread  mq_notify(SIGEV_THREAD); the helper thread glibc starts
 *           queues the source's cookie and writes an eventfd the loop
 *           watches.
 *   poll    libevent watches the queue descriptor itself.
 *
 * mq_notify is one-shot and only fires when an empty queue gets a message,
 * so a source is armed only after it was drained to EAGAIN, and the caller
 * checks once more after arming (wake_arm() returns 1 if messages are
 * already waiting).  If some other process holds the queue's notification
 * (EBUSY), that source falls back to poll, so a client that registers on
 * its own queue, or on the announce queue, cannot starve the daemon.
 */
#ifndef MQBUS_WAKE_H
#define MQBUS_WAKE_H

#include <mqueue.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

struct event_base;
struct event;
struct signalfd_siginfo;
struct wake;

enum wake_method {
	WAKE_NOTIFY,
	WAKE_THREAD,
	WAKE_POLL,
};

struct wake_src {
	mqd_t mqd;
	/* called from the loop when the queue may have become readable */
	void (*on_wake)(struct wake_src *src);
	struct wake *w;
	uint32_t slot;
	uint32_t gen;
	bool armed;        /* a notification or poll event is pending */
	bool polling;      /* poll back-end, or fell back to it */
	struct event *ev;  /* read event when polling */
	/* the server's ready list */
	TAILQ_ENTRY(wake_src) ready_link;
	bool on_ready;
};

/* Parses "notify" / "thread" / "poll"; -EINVAL otherwise. */
int wake_method_parse(const char *name, enum wake_method *ret);
const char *wake_method_name(enum wake_method m);

/*
 * A wake-up back-end on base.  signo is the realtime signal the notify
 * back-end uses (the caller blocks it and reads it from its signalfd).
 * Returns 0 or -errno.
 */
int wake_new(struct event_base *base, enum wake_method m, int signo,
	     struct wake **ret);
struct wake *wake_free(struct wake *w);
enum wake_method wake_method_of(const struct wake *w);

/* Registers src (mqd and on_wake set by the caller).  Not armed yet. */
int wake_add(struct wake *w, struct wake_src *src);
/* Unregisters src: disarms and frees its slot and event.  Accepts a src
 * never added. */
void wake_del(struct wake_src *src);

/*
 * Arms src after the caller drained it to EAGAIN.  Returns 1 if messages
 * are already waiting again (keep draining), 0 once armed, -errno on
 * failure.
 */
int wake_arm(struct wake_src *src);

/* The notify back-end's signal, read by the server from its signalfd. */
void wake_signal(struct wake *w, const struct signalfd_siginfo *si);

#endif
