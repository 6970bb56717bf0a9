/* SPDX-License-Identifier: MIT */
/*
 * wake.c - the notify, thread and poll wake-up back-ends.
 *
 * Sources live in a slot table; a notification carries the slot and a
 * generation number (the "cookie"), so a notification that arrives after
 * its source was freed, or after the slot was reused, is recognised and
 * ignored instead of touching freed memory.
 *
 * src->armed means "a registration of ours exists or its notification is
 * on its way".  mq_notify() allows one registration per queue and says
 * EBUSY to a second one even from the same process, so arming an armed
 * source makes no call; EBUSY on an unarmed source means another process
 * holds the queue's notification, and that source is polled instead.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <event2/event.h>

#include "daemon/log.h"
#include "daemon/wake.h"

struct wake {
	struct event_base *base;
	enum wake_method method;
	int signo;
	struct wake_src **slots;
	uint32_t n_slots;
	uint32_t cap_slots;
	uint32_t *free_slots;
	uint32_t n_free;
	uint32_t gen;
	/* thread back-end */
	int efd;
	struct event *efd_ev;
	uint64_t *spare; /* swapped with thread_cookies: no malloc per batch */
	size_t spare_cap;
};

/*
 * The thread back-end's hand-over from glibc's notification threads to the
 * loop: cookies appended under a lock, then the eventfd is written.  When
 * the array cannot grow, overflow makes the loop wake every armed source.
 */
static pthread_mutex_t thread_lock = PTHREAD_MUTEX_INITIALIZER;
static struct wake *thread_wake;
static uint64_t *thread_cookies;
static size_t thread_n, thread_cap;
static bool thread_overflow;

static const char *const method_names[] = {
	[WAKE_NOTIFY] = "notify",
	[WAKE_THREAD] = "thread",
	[WAKE_POLL] = "poll",
};

int wake_method_parse(const char *name, enum wake_method *ret)
{
	for (size_t i = 0; i < sizeof(method_names) / sizeof(*method_names);
	     i++) {
		if (strcmp(name, method_names[i]) == 0) {
			*ret = (enum wake_method)i;
			return 0;
		}
	}
	return -EINVAL;
}

const char *wake_method_name(enum wake_method m)
{
	return method_names[m];
}

enum wake_method wake_method_of(const struct wake *w)
{
	return w->method;
}

static uint64_t src_cookie(const struct wake_src *src)
{
	return (uint64_t)src->gen << 32 | src->slot;
}

static struct wake_src *wake_lookup(struct wake *w, uint64_t cookie)
{
	uint32_t slot = (uint32_t)cookie;
	struct wake_src *src;

	if (slot >= w->n_slots)
		return NULL;
	src = w->slots[slot];
	if (!src || src->gen != (uint32_t)(cookie >> 32))
		return NULL;
	return src;
}

/* A notification for this cookie arrived: its registration is spent. */
static void wake_fire(struct wake *w, uint64_t cookie)
{
	struct wake_src *src = wake_lookup(w, cookie);

	if (!src)
		return;
	src->armed = false;
	src->on_wake(src);
}

static void wake_thread_notify(union sigval v)
{
	uint64_t one = 1;
	int efd = -1;
	sigset_t all;

	/* glibc unblocked every signal for us; the loop reads them */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);

	pthread_mutex_lock(&thread_lock);
	if (thread_wake) {
		if (thread_n == thread_cap) {
			size_t cap = thread_cap ? thread_cap * 2 : 256;
			uint64_t *c = realloc(thread_cookies, cap * sizeof(*c));

			if (c) {
				thread_cookies = c;
				thread_cap = cap;
			}
		}
		if (thread_n < thread_cap)
			thread_cookies[thread_n++] = (uintptr_t)v.sival_ptr;
		else
			thread_overflow = true;
		efd = thread_wake->efd;
	}
	pthread_mutex_unlock(&thread_lock);
	if (efd >= 0 && write(efd, &one, sizeof(one)) < 0) {
		/* the counter is saturated: the loop is awake anyway */
	}
}

static void wake_thread_ready(evutil_socket_t fd, short what, void *arg)
{
	struct wake *w = arg;
	uint64_t count, *cookies;
	size_t n, cap;
	bool overflow;

	if (read(fd, &count, sizeof(count)) < 0 && errno != EAGAIN)
		log_warn("eventfd read");

	/* take the batch, leave the spare array, run callbacks unlocked */
	pthread_mutex_lock(&thread_lock);
	cookies = thread_cookies;
	cap = thread_cap;
	n = thread_n;
	overflow = thread_overflow;
	thread_cookies = w->spare;
	thread_cap = w->spare_cap;
	thread_n = 0;
	thread_overflow = false;
	pthread_mutex_unlock(&thread_lock);

	for (size_t i = 0; i < n; i++)
		wake_fire(w, cookies[i]);
	w->spare = cookies;
	w->spare_cap = cap;
	if (overflow) {
		for (uint32_t i = 0; i < w->n_slots; i++) {
			struct wake_src *src = w->slots[i];

			if (src && src->armed && !src->polling)
				wake_fire(w, src_cookie(src));
		}
	}
}

void wake_signal(struct wake *w, const struct signalfd_siginfo *si)
{
	if (w->method != WAKE_NOTIFY || (int)si->ssi_signo != w->signo)
		return;
	wake_fire(w, si->ssi_ptr);
}

int wake_new(struct event_base *base, enum wake_method m, int signo,
	     struct wake **ret)
{
	struct wake *w = calloc(1, sizeof(*w));

	if (!w)
		return -ENOMEM;
	w->base = base;
	w->method = m;
	w->signo = signo;
	w->efd = -1;
	if (m == WAKE_THREAD) {
		w->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (w->efd < 0)
			goto fail_errno;
		w->efd_ev = event_new(base, w->efd, EV_READ | EV_PERSIST,
				      wake_thread_ready, w);
		if (!w->efd_ev || event_add(w->efd_ev, NULL) < 0) {
			errno = ENOMEM;
			goto fail_errno;
		}
		pthread_mutex_lock(&thread_lock);
		thread_wake = w;
		pthread_mutex_unlock(&thread_lock);
	}
	*ret = w;
	return 0;

fail_errno:;
	int err = -errno;
	wake_free(w);
	return err;
}

struct wake *wake_free(struct wake *w)
{
	if (!w)
		return NULL;
	if (w->method == WAKE_THREAD) {
		pthread_mutex_lock(&thread_lock);
		if (thread_wake == w)
			thread_wake = NULL;
		free(thread_cookies);
		thread_cookies = NULL;
		thread_n = thread_cap = 0;
		pthread_mutex_unlock(&thread_lock);
	}
	free(w->spare);
	if (w->efd_ev)
		event_free(w->efd_ev);
	if (w->efd >= 0)
		close(w->efd);
	free(w->slots);
	free(w->free_slots);
	free(w);
	return NULL;
}

static void wake_poll_ready(evutil_socket_t fd, short what, void *arg)
{
	struct wake_src *src = arg;

	src->on_wake(src);
}

/*
 * A polled source keeps one persistent, edge-triggered event: it costs no
 * epoll_ctl per wake-up, and while the source waits on the ready list a
 * repeated wake-up is a no-op.  Edge-triggered because the server reads
 * a source until EAGAIN except when it means to stop (a publisher held up
 * by a slow subscriber under overflow = block): level-triggered, such a
 * queue would wake the loop on every turn, and the daemon would spin.
 * Every message sent makes an edge, so one arriving after the EAGAIN is
 * not missed; a source the server stopped reading it puts back on the
 * ready list itself.
 */
static int wake_start_polling(struct wake_src *src)
{
	src->polling = true;
	src->ev = event_new(src->w->base, src->mqd,
			    EV_READ | EV_PERSIST | EV_ET, wake_poll_ready, src);
	return src->ev ? 0 : -ENOMEM;
}

int wake_add(struct wake *w, struct wake_src *src)
{
	uint32_t slot;

	src->w = w;
	src->armed = false;
	src->polling = false;
	src->ev = NULL;
	src->on_ready = false;
	if (w->n_free > 0) {
		slot = w->free_slots[--w->n_free];
	} else {
		if (w->n_slots == w->cap_slots) {
			uint32_t cap = w->cap_slots ? w->cap_slots * 2 : 64;
			struct wake_src **s =
				realloc(w->slots, cap * sizeof(*s));
			uint32_t *f;

			if (!s)
				return -ENOMEM;
			w->slots = s;
			f = realloc(w->free_slots, cap * sizeof(*f));
			if (!f)
				return -ENOMEM;
			w->free_slots = f;
			w->cap_slots = cap;
		}
		slot = w->n_slots++;
	}
	src->slot = slot;
	src->gen = ++w->gen;
	w->slots[slot] = src;
	if (w->method == WAKE_POLL) {
		int r = wake_start_polling(src);

		if (r < 0) {
			wake_del(src);
			return r;
		}
	}
	return 0;
}

void wake_del(struct wake_src *src)
{
	struct wake *w = src->w;

	if (!w)
		return;
	if (src->armed && !src->polling)
		mq_notify(src->mqd, NULL);
	if (src->ev)
		event_free(src->ev);
	src->ev = NULL;
	w->slots[src->slot] = NULL;
	w->free_slots[w->n_free++] = src->slot;
	src->w = NULL;
	src->armed = false;
}

static bool wake_has_messages(mqd_t mqd)
{
	struct mq_attr attr;

	return mq_getattr(mqd, &attr) == 0 && attr.mq_curmsgs > 0;
}

int wake_arm(struct wake_src *src)
{
	struct wake *w = src->w;
	struct sigevent sev;

	if (src->polling) {
		/* persistent: added once; every later send is an edge */
		if (!src->armed && event_add(src->ev, NULL) < 0)
			return -ENOMEM;
		src->armed = true;
		return 0;
	}
	if (!src->armed) {
		memset(&sev, 0, sizeof(sev));
		sev.sigev_value.sival_ptr = (void *)(uintptr_t)src_cookie(src);
		if (w->method == WAKE_NOTIFY) {
			sev.sigev_notify = SIGEV_SIGNAL;
			sev.sigev_signo = w->signo;
		} else {
			sev.sigev_notify = SIGEV_THREAD;
			sev.sigev_notify_function = wake_thread_notify;
		}
		if (mq_notify(src->mqd, &sev) == 0) {
			src->armed = true;
		} else if (errno == EBUSY) {
			log_warnx("queue notification of slot %u is held by "
				  "another process; polling it instead",
				  src->slot);
			int r = wake_start_polling(src);

			if (r < 0)
				return r;
			return wake_arm(src);
		} else {
			return -errno;
		}
	}
	/* a message that came between EAGAIN and mq_notify fires nothing */
	return wake_has_messages(src->mqd) ? 1 : 0;
}
