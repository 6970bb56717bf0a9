/* SPDX-License-Identifier: MIT */
/*
 * wake.c - the notify, thread and poll wake-up back-ends, and the ready
 * list that reads the woken sources fairly.
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

/* thread back-ends one process may run at once (cookie bits) */
#define WAKE_THREAD_MAX 255
#define COOKIE_GEN_MASK 0xffffffu

TAILQ_HEAD(wake_src_list, wake_src);

struct wake {
	struct event_base *base;
	enum wake_method method;
	int signo;
	unsigned budget;
	struct wake_src **slots;
	uint32_t n_slots;
	uint32_t cap_slots;
	uint32_t *free_slots;
	uint32_t n_free;
	uint32_t gen;
	struct wake_src_list ready;
	struct event *drain_ev;
	/* thread back-end: its number in the registry (1..), the eventfd,
	 * and the cookies glibc's threads hand over (under thread_lock) */
	unsigned instance;
	int efd;
	struct event *efd_ev;
	uint64_t *cookies;
	size_t n_cookies, cap_cookies;
	bool overflow;
	uint64_t *spare; /* swapped with cookies: no malloc per batch */
	size_t spare_cap;
};

/*
 * glibc's notification threads know nothing but the sigval we registered,
 * so the thread back-ends of this process are found through a registry:
 * the cookie names the instance, and a thread looks it up under the lock.
 * Once wake_free() has taken an instance out, no late thread can reach
 * it.  This table is the only state the daemon's code keeps per process,
 * and only because the kernel's interface leaves no other way.
 */
static pthread_mutex_t thread_lock = PTHREAD_MUTEX_INITIALIZER;
static struct wake *thread_registry[WAKE_THREAD_MAX + 1];

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

/* slot (32 bits), generation (24), thread back-end instance (8) */
static uint64_t src_cookie(const struct wake_src *src)
{
	return (uint64_t)src->w->instance << 56 |
	       (uint64_t)(src->gen & COOKIE_GEN_MASK) << 32 | src->slot;
}

static struct wake_src *wake_lookup(struct wake *w, uint64_t cookie)
{
	uint32_t slot = (uint32_t)cookie;
	struct wake_src *src;

	if (slot >= w->n_slots)
		return NULL;
	src = w->slots[slot];
	if (!src || (src->gen & COOKIE_GEN_MASK) !=
			    ((uint32_t)(cookie >> 32) & COOKIE_GEN_MASK))
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
	wake_src_ready(src);
}

static void wake_thread_notify(union sigval v)
{
	uint64_t cookie = (uintptr_t)v.sival_ptr, one = 1;
	unsigned instance = (unsigned)(cookie >> 56);
	struct wake *w;
	int efd = -1;
	sigset_t all;

	/* glibc unblocked every signal for us; the loop reads them */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);

	pthread_mutex_lock(&thread_lock);
	w = instance <= WAKE_THREAD_MAX ? thread_registry[instance] : NULL;
	if (w) {
		if (w->n_cookies == w->cap_cookies) {
			size_t cap = w->cap_cookies ? w->cap_cookies * 2 : 256;
			uint64_t *c = realloc(w->cookies, cap * sizeof(*c));

			if (c) {
				w->cookies = c;
				w->cap_cookies = cap;
			}
		}
		if (w->n_cookies < w->cap_cookies)
			w->cookies[w->n_cookies++] = cookie;
		else
			w->overflow = true;
		efd = w->efd;
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
	cookies = w->cookies;
	cap = w->cap_cookies;
	n = w->n_cookies;
	overflow = w->overflow;
	w->cookies = w->spare;
	w->cap_cookies = w->spare_cap;
	w->n_cookies = 0;
	w->overflow = false;
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

/* Takes a free number in the registry; -EMFILE when all are taken. */
static int wake_thread_register(struct wake *w)
{
	int r = -EMFILE;

	pthread_mutex_lock(&thread_lock);
	for (unsigned i = 1; i <= WAKE_THREAD_MAX; i++) {
		if (!thread_registry[i]) {
			thread_registry[i] = w;
			w->instance = i;
			r = 0;
			break;
		}
	}
	pthread_mutex_unlock(&thread_lock);
	return r;
}

void wake_signal(struct wake *w, const struct signalfd_siginfo *si)
{
	if (w->method != WAKE_NOTIFY || (int)si->ssi_signo != w->signo)
		return;
	wake_fire(w, si->ssi_ptr);
}

static void wake_drain(evutil_socket_t fd, short what, void *arg);
static int wake_arm(struct wake_src *src);

int wake_new(struct event_base *base, enum wake_method m, int signo,
	     unsigned budget, struct wake **ret)
{
	struct wake *w = calloc(1, sizeof(*w));
	int r = -ENOMEM;

	if (!w)
		return -ENOMEM;
	w->base = base;
	w->method = m;
	w->signo = signo;
	w->budget = budget;
	w->efd = -1;
	TAILQ_INIT(&w->ready);
	w->drain_ev = event_new(base, -1, 0, wake_drain, w);
	if (!w->drain_ev)
		goto fail;
	if (m == WAKE_THREAD) {
		w->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (w->efd < 0) {
			r = -errno;
			goto fail;
		}
		w->efd_ev = event_new(base, w->efd, EV_READ | EV_PERSIST,
				      wake_thread_ready, w);
		if (!w->efd_ev || event_add(w->efd_ev, NULL) < 0)
			goto fail;
		r = wake_thread_register(w);
		if (r < 0)
			goto fail;
	}
	*ret = w;
	return 0;

fail:
	wake_free(w);
	return r;
}

struct wake *wake_free(struct wake *w)
{
	if (!w)
		return NULL;
	if (w->instance) {
		pthread_mutex_lock(&thread_lock);
		thread_registry[w->instance] = NULL;
		pthread_mutex_unlock(&thread_lock);
	}
	free(w->cookies);
	free(w->spare);
	if (w->efd_ev)
		event_free(w->efd_ev);
	if (w->efd >= 0)
		close(w->efd);
	if (w->drain_ev)
		event_free(w->drain_ev);
	free(w->slots);
	free(w->free_slots);
	free(w);
	return NULL;
}

static void wake_poll_ready(evutil_socket_t fd, short what, void *arg)
{
	wake_src_ready(arg);
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
	src->held = false;
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
	if (src->on_ready) {
		TAILQ_REMOVE(&w->ready, src, ready_link);
		src->on_ready = false;
	}
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

/*
 * Arms src after its reader drained it to EAGAIN.  Returns 1 if messages
 * are already waiting again (keep reading), 0 once armed, -errno.
 */
static int wake_arm(struct wake_src *src)
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

void wake_src_ready(struct wake_src *src)
{
	struct wake *w = src->w;

	if (!w || src->on_ready)
		return;
	src->on_ready = true;
	TAILQ_INSERT_TAIL(&w->ready, src, ready_link);
	event_active(w->drain_ev, EV_TIMEOUT, 0);
}

/*
 * One round over the sources that were ready when it started.  A source
 * with messages left goes to the back; a drained one is re-armed, and if
 * messages slipped in while arming it stays on the list.
 */
static void wake_drain(evutil_socket_t fd, short what, void *arg)
{
	struct wake *w = arg;
	struct wake_src *last = TAILQ_LAST(&w->ready, wake_src_list);
	struct wake_src *src;
	bool done = false;

	while (!done && (src = TAILQ_FIRST(&w->ready))) {
		int r;

		done = src == last;
		TAILQ_REMOVE(&w->ready, src, ready_link);
		src->on_ready = false;
		r = src->read(src, w->budget);
		if (r < 0 || !src->w)
			continue; /* closing or held; or deleted meanwhile */
		if (r == 0) {
			r = wake_arm(src);
			if (r < 0)
				log_warnx("cannot arm queue wake-up: %s",
					  strerror(-r));
			if (r == 0)
				continue;
		}
		wake_src_ready(src);
	}
	if (!TAILQ_EMPTY(&w->ready))
		event_active(w->drain_ev, EV_TIMEOUT, 0);
}

unsigned wake_rescue(struct wake *w)
{
	unsigned n = 0;

	for (uint32_t i = 0; i < w->n_slots; i++) {
		struct wake_src *src = w->slots[i];

		if (!src || !src->armed || src->on_ready || src->held ||
		    !wake_has_messages(src->mqd))
			continue;
		log_debug("rescued a missed wake-up (slot %u)", src->slot);
		wake_src_ready(src);
		n++;
	}
	return n;
}
