/* SPDX-License-Identifier: MIT */
/*
 * wake.h - wake-ups and fair reading: how the loop learns that a queue has
 * messages, and in what order it reads them.
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
 * A source that may be readable goes on the ready list.  One deferred
 * event serves that list round-robin: each source's read callback gets at
 * most the read budget of messages per turn, so one flooding client cannot
 * keep the others waiting.  A source drained to EAGAIN is armed again.
 *
 * mq_notify is one-shot and only fires when an empty queue gets a message,
 * so a source is armed only after it was drained, and checked once more
 * after arming.  If some other process holds the queue's notification
 * (EBUSY), that source falls back to poll, so a client that registers on
 * its own queue, or on the announce queue, cannot starve the daemon.
 */
#ifndef MQBUS_WAKE_H
#define MQBUS_WAKE_H

#include <mqueue.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

struct event;
struct event_base;
struct signalfd_siginfo;
struct wake;

enum wake_method {
	WAKE_NOTIFY,
	WAKE_THREAD,
	WAKE_POLL,
};

struct wake_src {
	mqd_t mqd;
	/*
	 * Reads up to budget messages.  Returns 1 if more may wait, 0 when
	 * the queue was drained to EAGAIN, -1 to stop reading it for now
	 * (its owner is closing, or holds it: wake_src_ready() resumes it).
	 */
	int (*read)(struct wake_src *src, unsigned budget);
	/* set by the owner while it does not want the source read: the
	 * rescue sweep leaves it alone */
	bool held;

	/* the back-end's */
	struct wake *w;
	uint32_t slot;
	uint32_t gen;
	bool armed;   /* a notification or poll event is pending */
	bool polling; /* poll back-end, or fell back to it */
	bool on_ready;
	struct event *ev; /* read event when polling */
	TAILQ_ENTRY(wake_src) ready_link;
};

/* Parses "notify" / "thread" / "poll"; -EINVAL otherwise. */
int wake_method_parse(const char *name, enum wake_method *ret);
const char *wake_method_name(enum wake_method m);

/*
 * A wake-up back-end on base.  signo is the realtime signal the notify
 * back-end uses (the caller blocks it and reads it from its signalfd);
 * budget the messages one source may read per turn.  Returns 0 or -errno.
 */
int wake_new(struct event_base *base, enum wake_method m, int signo,
	     unsigned budget, struct wake **ret);
/* Accepts NULL; returns NULL.  Every source must have been deleted. */
struct wake *wake_free(struct wake *w);
enum wake_method wake_method_of(const struct wake *w);

/* Registers src (mqd and read set by the caller).  Not armed yet: call
 * wake_src_ready() to have it read (and then armed). */
int wake_add(struct wake *w, struct wake_src *src);
/* Unregisters src: disarms, takes it off the ready list, frees its slot
 * and event.  Accepts a src never added. */
void wake_del(struct wake_src *src);

/* Puts src on the ready list (if it is not there), to be read soon. */
void wake_src_ready(struct wake_src *src);

/* The notify back-end's signal, read by the server from its signalfd. */
void wake_signal(struct wake *w, const struct signalfd_siginfo *si);

/*
 * A safety net, for a once-a-second timer: every armed source that is not
 * held, not on the ready list, and whose queue holds messages missed its
 * wake-up (a realtime signal lost to RLIMIT_SIGPENDING, say) and is put on
 * the ready list.  Returns how many were.  It should stay 0.
 */
unsigned wake_rescue(struct wake *w);

#endif
