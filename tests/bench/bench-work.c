/* SPDX-License-Identifier: MIT */
/*
 * bench-work.c - the processes of a benchmark row.
 *
 * Each worker is forked by the orchestrator with one struct bench_job,
 * sets itself up (opens queues, connects to mqbusd, subscribes), says it
 * is ready, waits for the go, does its part and waits for the quit before
 * it tears down, so that neither set-up nor tear-down falls into the
 * measured window.
 *
 * Sources stamp every payload with their stream, a sequence number and
 * the send time; sinks check every payload (sequence, size, content) and
 * fail the row on the first lost, reordered or damaged message.  A sink
 * acknowledges through the control block, which is what keeps a source
 * within its window (bench.h says why there is one).
 *
 * The relay is the yardstick for mqbusd: the smallest process that does
 * what a daemon hop must do, receive and forward, woken the way mqbusd is
 * woken, and following the same discipline (drain to EAGAIN, arm, look
 * once more), and nothing else.  Its consumer either blocks in
 * mq_receive() or waits as mqbus_receive() does (the relay-poll rows).
 *
 * The scale workers hold many clients at once (a holder connects hundreds
 * and gives each its subscriptions and retained value in steps the
 * orchestrator sets), or are one client among them: the round-trip pair,
 * the late subscriber of '#', and the probe that times SUBSCRIBE beside
 * many retained values.
 */
#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "client/mqbus.h"
#include "tests/bench/bench.h"
#include "tests/bench/peer.h"

/* the relay's notification signal, the one mqbusd uses */
#define RELAY_SIGNAL (SIGRTMIN + 1)

static const struct bench_job *job;

static void die(const char *fmt, ...) __attribute__((noreturn))
__attribute__((format(printf, 1, 2)));

static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	bench_vfail(job->ctl, fmt, ap);
	va_end(ap);
	_exit(1);
}

/* ---------------------------------------------------------------- phases */

static void phase_ready(void)
{
	struct bench_ctl *ctl = job->ctl;

	atomic_fetch_add(&ctl->ready, 1);
	futex_wake(&ctl->ready);
	while (atomic_load(&ctl->go) == 0) {
		if (atomic_load(&ctl->failed))
			_exit(1);
		futex_wait(&ctl->go, 0, 1000);
	}
}

static void phase_done(void)
{
	atomic_fetch_add(&job->ctl->done, 1);
	futex_wake(&job->ctl->done);
}

static void phase_quit(void)
{
	struct bench_ctl *ctl = job->ctl;

	while (atomic_load(&ctl->quit) == 0) {
		if (atomic_load(&ctl->failed))
			_exit(1);
		futex_wait(&ctl->quit, 0, 1000);
	}
}

/* ---------------------------------------------------------------- window */

static uint64_t window_low(unsigned stream)
{
	uint64_t low = UINT64_MAX;

	for (unsigned i = 0; i < job->n_sinks; i++) {
		uint64_t a = atomic_load(&job->ctl->sink[i].acked[stream]);

		if (a < low)
			low = a;
	}
	return low;
}

/* What a source writes but holds (libmqbus's publish frame) goes out
 * before it waits: set by the mqbus source. */
static void (*window_flush)(void);

/*
 * Waits until message seq of this stream is within the window of every
 * sink.  The waiting flag is set before the last look, and sinks look at
 * it after acknowledging, so a wake-up cannot fall between the two.
 */
static void window_wait(unsigned stream, uint64_t seq)
{
	struct bench_stream *st = &job->ctl->stream[stream];

	while (seq - window_low(stream) >= job->window) {
		uint32_t w = atomic_load(&st->wake);

		atomic_store(&st->waiting, 1);
		if (seq - window_low(stream) < job->window) {
			/* no sink needs to wake us after all */
			atomic_store(&st->waiting, 0);
			break;
		}
		if (window_flush)
			window_flush();
		futex_wait(&st->wake, w, 1000);
		if (atomic_load(&job->ctl->failed))
			_exit(1);
	}
	atomic_store(&st->sent, seq);
}

static void window_ack(unsigned sink, unsigned stream, uint64_t seq)
{
	struct bench_stream *st = &job->ctl->stream[stream];

	atomic_store(&job->ctl->sink[sink].acked[stream], seq + 1);
	if (atomic_load(&st->waiting) && atomic_exchange(&st->waiting, 0)) {
		atomic_fetch_add(&st->wake, 1);
		futex_wake(&st->wake);
	}
}

/* ---------------------------------------------------------------- sinks */

/*
 * What a sink knows of each stream: the next sequence number it expects
 * and whether the last message was seen.
 */
struct sink_state {
	uint64_t next[BENCH_MAX_STREAMS];
	unsigned finished;
	uint64_t received;
};

/* Checks one payload; returns true when every stream has finished. */
static bool sink_take(struct sink_state *s, const void *buf, size_t len)
{
	struct bench_payload p;
	uint64_t now = now_ns();
	char err[200];

	if (payload_check(buf, len, job->size, &p, err, sizeof(err)) < 0)
		die("subscriber %u: %s", job->index, err);
	if (p.stream >= job->n_streams)
		die("subscriber %u: message of unknown stream %u", job->index,
		    p.stream);
	if (p.seq != s->next[p.stream])
		die("subscriber %u: stream %u: got seq %llu, expected %llu "
		    "(%s)",
		    job->index, p.stream, (unsigned long long)p.seq,
		    (unsigned long long)s->next[p.stream],
		    p.seq > s->next[p.stream] ? "messages lost"
					      : "reordered or duplicated");
	s->next[p.stream]++;
	s->received++;
	hist_add(&job->ctl->hist[job->index], now - p.sent_ns);
	window_ack(job->index, p.stream, p.seq);
	if (p.flags & BENCH_F_LAST)
		s->finished++;
	if (s->finished < job->n_streams)
		return false;
	job->ctl->sink[job->index].t_last = now;
	job->ctl->sink[job->index].received = s->received;
	return true;
}

/* ---------------------------------------------------------------- sources */

static bool source_last(uint64_t seq, uint64_t t0, uint64_t now)
{
	if (job->count)
		return seq + 1 >= job->count;
	return now - t0 >= job->duration_ns;
}

typedef void (*send_fn)(void *ctx, const void *buf, size_t len);

static void source_run(send_fn send, void *ctx, unsigned char *buf, size_t pad)
{
	struct bench_stream *st = &job->ctl->stream[job->index];
	uint64_t t0 = now_ns(), seq;

	st->t_first = t0;
	for (seq = 0;; seq++) {
		uint64_t now;
		bool last;

		window_wait(job->index, seq);
		now = now_ns();
		last = source_last(seq, t0, now);
		payload_fill(buf + pad, job->size, job->index, seq, now, last);
		send(ctx, buf, pad + job->size);
		if (last)
			break;
	}
	st->count = seq + 1;
}

/* ---------------------------------------------------------------- raw */

static mqd_t raw_open(const char *name, int flags)
{
	mqd_t q = mq_open(name, flags);

	if (q == (mqd_t)-1)
		die("cannot open queue %s: %s", name, strerror(errno));
	return q;
}

static void raw_send(void *ctx, const void *buf, size_t len)
{
	mqd_t q = *(mqd_t *)ctx;

	while (mq_send(q, buf, len, 0) < 0)
		if (errno != EINTR)
			die("mq_send: %s", strerror(errno));
}

static size_t raw_receive(mqd_t q, unsigned char *buf)
{
	ssize_t n;

	while ((n = mq_receive(q, (char *)buf, BENCH_MSGSIZE, NULL)) < 0)
		if (errno != EINTR)
			die("mq_receive: %s", strerror(errno));
	if ((size_t)n < bench_raw_pad())
		die("raw message of %zd bytes is too short", n);
	return (size_t)n;
}

/*
 * With --raw-wait=poll the raw round-trip clients wait the way libmqbus
 * does, on a non-blocking queue: poll() and then mq_receive() (the
 * requester, as mqbus_request() waits for its reply), or first an
 * mq_receive() that may find nothing, then poll() and mq_receive() (the
 * responder, as mqbus_receive() does).  This tells what the clients' way
 * of waiting costs apart from what the daemon costs.
 */
static size_t raw_receive_polled(mqd_t q, unsigned char *buf, bool try_first)
{
	struct pollfd p = { .fd = q, .events = POLLIN };
	ssize_t n;

	if (try_first) {
		n = mq_receive(q, (char *)buf, BENCH_MSGSIZE, NULL);
		if (n >= 0)
			goto got;
		if (errno != EAGAIN && errno != EINTR)
			die("mq_receive: %s", strerror(errno));
	}
	for (;;) {
		if (poll(&p, 1, 1000) < 0 && errno != EINTR)
			die("poll: %s", strerror(errno));
		n = mq_receive(q, (char *)buf, BENCH_MSGSIZE, NULL);
		if (n >= 0)
			goto got;
		if (errno != EAGAIN && errno != EINTR)
			die("mq_receive: %s", strerror(errno));
	}
got:
	if ((size_t)n < bench_raw_pad())
		die("raw message of %zd bytes is too short", n);
	return (size_t)n;
}

static void raw_source(void)
{
	static unsigned char buf[BENCH_MSGSIZE];
	mqd_t q = raw_open(job->q[0], O_WRONLY);

	memset(buf, 0, sizeof(buf));
	phase_ready();
	source_run(raw_send, &q, buf, bench_raw_pad());
	phase_done();
	phase_quit();
}

/*
 * The consumer of direct and relay rows.  With job->raw_poll it waits the
 * way mqbus_receive() waits for a plain message: its queue is non-blocking,
 * it tries mq_receive() first and, only when that finds nothing, waits in
 * poll() and tries again (raw_receive_polled() with try_first).  Otherwise
 * it blocks in mq_receive().
 */
static void raw_sink(void)
{
	static unsigned char buf[BENCH_MSGSIZE];
	struct sink_state s;
	mqd_t q = raw_open(job->q[0],
			   O_RDONLY | (job->raw_poll ? O_NONBLOCK : 0));
	size_t pad = bench_raw_pad();

	memset(&s, 0, sizeof(s));
	phase_ready();
	for (;;) {
		size_t n = job->raw_poll ? raw_receive_polled(q, buf, true)
					 : raw_receive(q, buf);

		if (sink_take(&s, buf + pad, n - pad))
			break;
	}
	phase_done();
	phase_quit();
}

/*
 * What an echo checks of each request before it answers: the header of
 * the payload (magic, stream, size) and that its sequence number is the
 * next one, so a lost, repeated or reordered request is noticed where it
 * happens.  The filler is left to the pinger, which checks every byte of
 * the answer; both echoes do the same, so the raw and mqbus round trips
 * stay comparable.  Returns true for the last request.
 */
static bool echo_take(const void *buf, size_t len, uint64_t *next)
{
	struct bench_payload p;

	if (len != job->size || len < sizeof(p))
		die("echo: request of %zu bytes, expected %zu", len, job->size);
	memcpy(&p, buf, sizeof(p));
	if (p.magic != BENCH_MAGIC || p.stream != 0 || p.size != job->size)
		die("echo: request %llu is not a bench payload",
		    (unsigned long long)*next);
	if (p.seq != *next)
		die("echo: got request seq %llu, expected %llu (%s)",
		    (unsigned long long)p.seq, (unsigned long long)*next,
		    p.seq > *next ? "requests lost"
				  : "reordered or duplicated");
	(*next)++;
	return p.flags & BENCH_F_LAST;
}

/* Forwards until the last message of the pinger went through. */
static void raw_echo(void)
{
	static unsigned char buf[BENCH_MSGSIZE];
	mqd_t in = raw_open(job->q[0],
			    O_RDONLY | (job->raw_poll ? O_NONBLOCK : 0));
	mqd_t out = raw_open(job->q[1], O_WRONLY);
	size_t pad = bench_raw_pad();
	uint64_t next = 0;
	bool last = false;

	phase_ready();
	while (!last) {
		size_t n = job->raw_poll ? raw_receive_polled(in, buf, true)
					 : raw_receive(in, buf);

		last = echo_take(buf + pad, n - pad, &next);
		raw_send(&out, buf, n);
	}
	phase_done();
	phase_quit();
}

/* ---------------------------------------------------------------- pinger */

struct pinger_ops {
	/* sends len bytes of buf and returns the payload of the answer */
	const void *(*exchange)(void *ctx, const void *buf, size_t len,
				size_t *ret_len);
	void *ctx;
	size_t pad;
};

/*
 * One message in flight at a time: send, wait for the echo, check that it
 * is the very message sent (its sequence number and every byte), record
 * the round trip.
 */
static void pinger_run(const struct pinger_ops *ops, unsigned char *buf)
{
	struct bench_stream *st = &job->ctl->stream[0];
	struct bench_sink *sk = &job->ctl->sink[0];
	uint64_t t0 = now_ns(), seq, now;

	st->t_first = t0;
	for (seq = 0;; seq++) {
		struct bench_payload p;
		const void *answer;
		char err[200];
		bool last;
		size_t n;

		now = now_ns();
		last = source_last(seq, t0, now);
		payload_fill(buf + ops->pad, job->size, 0, seq, now, last);
		answer = ops->exchange(ops->ctx, buf, ops->pad + job->size, &n);
		now = now_ns();
		if (payload_check(answer, n, job->size, &p, err, sizeof(err)) <
		    0)
			die("round trip client: %s", err);
		if (p.seq != seq)
			die("round trip client: got seq %llu back, sent %llu",
			    (unsigned long long)p.seq, (unsigned long long)seq);
		hist_add(&job->ctl->hist[0], now - p.sent_ns);
		atomic_store(&sk->acked[0], seq + 1);
		if (last)
			break;
	}
	st->count = seq + 1;
	sk->received = seq + 1;
	sk->t_last = now;
}

struct raw_pinger {
	mqd_t out, in;
	unsigned char in_buf[BENCH_MSGSIZE];
};

static const void *raw_pinger_exchange(void *ctx, const void *buf,
				       size_t len, size_t *ret_len)
{
	struct raw_pinger *rp = ctx;
	size_t n;

	raw_send(&rp->out, buf, len);
	n = job->raw_poll ? raw_receive_polled(rp->in, rp->in_buf, false)
			  : raw_receive(rp->in, rp->in_buf);
	*ret_len = n - bench_raw_pad();
	return rp->in_buf + bench_raw_pad();
}

static void raw_pinger(void)
{
	static unsigned char buf[BENCH_MSGSIZE];
	static struct raw_pinger rp;
	struct pinger_ops ops = {
	    .exchange = raw_pinger_exchange,
	    .ctx = &rp,
	    .pad = bench_raw_pad(),
	};

	rp.out = raw_open(job->q[0], O_WRONLY);
	rp.in = raw_open(job->q[1],
			 O_RDONLY | (job->raw_poll ? O_NONBLOCK : 0));
	memset(buf, 0, sizeof(buf));
	phase_ready();
	pinger_run(&ops, buf);
	phase_done();
	phase_quit();
}

/* ---------------------------------------------------------------- relay */

/*
 * Messages the relay holds for an output queue that is full: as many as
 * mqbusd holds per subscriber (pending_max).  Like mqbusd it never blocks
 * on output, so it goes on draining its input while the consumer catches
 * up, and it receives straight into the slot a held message keeps, so a
 * message is never copied in user space.
 */
#define RELAY_HOLD 256

struct relay_out {
	mqd_t q;
	unsigned head, n;
	size_t len[RELAY_HOLD];
	unsigned prio[RELAY_HOLD];
	unsigned char (*slot)[BENCH_MSGSIZE];
};

struct relay {
	unsigned n;
	mqd_t in[BENCH_MAX_RELAY];
	struct relay_out out[BENCH_MAX_RELAY];
	bool armed[BENCH_MAX_RELAY];
	bool ready[BENCH_MAX_RELAY];
	int fd; /* signalfd or eventfd; -1 polling */
};

static _Atomic unsigned relay_pending;
static int relay_efd = -1;

/* SIGEV_THREAD: runs on a thread glibc starts for the notification */
static void relay_thread_notify(union sigval v)
{
	uint64_t one = 1;

	atomic_fetch_or(&relay_pending, 1u << v.sival_int);
	if (write(relay_efd, &one, sizeof(one)) < 0) {
		/* saturated: the relay is awake anyway */
	}
}

/* Sends what is held, oldest first, until the queue is full. */
static void relay_flush(struct relay_out *o)
{
	while (o->n > 0) {
		if (mq_send(o->q, (char *)o->slot[o->head], o->len[o->head],
			    o->prio[o->head]) < 0) {
			if (errno == EAGAIN)
				return;
			die("relay: mq_send: %s", strerror(errno));
		}
		o->head = (o->head + 1) % RELAY_HOLD;
		o->n--;
	}
}

/*
 * Receives and forwards until the input is empty (true) or the hold is
 * full (false).  A message goes out at once unless older ones are held.
 */
static bool relay_drain(struct relay *r, unsigned i)
{
	struct relay_out *o = &r->out[i];

	while (o->n < RELAY_HOLD) {
		unsigned tail = (o->head + o->n) % RELAY_HOLD;
		ssize_t len;

		len = mq_receive(r->in[i], (char *)o->slot[tail], BENCH_MSGSIZE,
				 &o->prio[tail]);
		if (len < 0) {
			if (errno == EAGAIN)
				return true;
			die("relay: mq_receive: %s", strerror(errno));
		}
		o->len[tail] = (size_t)len;
		if (o->n == 0 && mq_send(o->q, (char *)o->slot[tail],
					 (size_t)len, o->prio[tail]) == 0)
			continue;
		if (o->n == 0 && errno != EAGAIN)
			die("relay: mq_send: %s", strerror(errno));
		o->n++;
	}
	return false;
}

static bool relay_has_messages(mqd_t q)
{
	struct mq_attr a;

	return mq_getattr(q, &a) == 0 && a.mq_curmsgs > 0;
}

/*
 * mq_notify is one-shot and fires only when an empty queue gets a message:
 * arm only after draining to EAGAIN, never arm what is armed (EBUSY), and
 * look once more after arming for what came in between.
 */
static void relay_arm(struct relay *r, unsigned i)
{
	struct sigevent sev;

	if (!r->armed[i]) {
		memset(&sev, 0, sizeof(sev));
		sev.sigev_value.sival_int = (int)i;
		if (job->wake == BENCH_WAKE_NOTIFY) {
			sev.sigev_notify = SIGEV_SIGNAL;
			sev.sigev_signo = RELAY_SIGNAL;
		} else {
			sev.sigev_notify = SIGEV_THREAD;
			sev.sigev_notify_function = relay_thread_notify;
		}
		if (mq_notify(r->in[i], &sev) < 0)
			die("relay: mq_notify: %s", strerror(errno));
		r->armed[i] = true;
	}
	if (relay_has_messages(r->in[i]))
		r->ready[i] = true;
}

/* The notifications read from the signalfd or the eventfd. */
static void relay_read_wake(struct relay *r)
{
	if (job->wake == BENCH_WAKE_NOTIFY) {
		struct signalfd_siginfo si[8];
		ssize_t n = read(r->fd, si, sizeof(si));

		if (n < 0 && errno != EAGAIN && errno != EINTR)
			die("relay: signalfd: %s", strerror(errno));
		for (ssize_t k = 0; k < n / (ssize_t)sizeof(si[0]); k++) {
			unsigned i = (unsigned)si[k].ssi_int;

			if (i < r->n) {
				r->armed[i] = false;
				r->ready[i] = true;
			}
		}
	} else {
		uint64_t count;
		unsigned bits;

		if (read(r->fd, &count, sizeof(count)) < 0 && errno != EAGAIN &&
		    errno != EINTR)
			die("relay: eventfd: %s", strerror(errno));
		bits = atomic_exchange(&relay_pending, 0);
		for (unsigned i = 0; i < r->n; i++) {
			if (bits & 1u << i) {
				r->armed[i] = false;
				r->ready[i] = true;
			}
		}
	}
}

/*
 * Blocks until there is something to do: a notification (or, polling, a
 * readable input whose hold has room), or room in an output that holds
 * messages.
 */
static void pollfd_add(struct pollfd *p, unsigned *n, int fd, short events)
{
	p[*n].fd = fd;
	p[*n].events = events;
	p[*n].revents = 0;
	(*n)++;
}

static void relay_wait(struct relay *r)
{
	struct pollfd p[2 * BENCH_MAX_RELAY + 1];
	unsigned n = 0;

	if (r->fd >= 0)
		pollfd_add(p, &n, r->fd, POLLIN);
	for (unsigned i = 0; i < r->n; i++) {
		if (r->fd < 0 && r->out[i].n < RELAY_HOLD)
			pollfd_add(p, &n, r->in[i], POLLIN);
		if (r->out[i].n > 0)
			pollfd_add(p, &n, r->out[i].q, POLLOUT);
	}
	if (poll(p, n, -1) < 0) {
		if (errno == EINTR)
			return;
		die("relay: poll: %s", strerror(errno));
	}
	for (unsigned k = 0; k < n; k++) {
		if (!p[k].revents)
			continue;
		if (p[k].fd == r->fd) {
			relay_read_wake(r);
			continue;
		}
		for (unsigned i = 0; i < r->n; i++)
			if (p[k].fd == r->in[i])
				r->ready[i] = true;
	}
}

static void relay_setup(struct relay *r)
{
	r->n = job->n_relay;
	r->fd = -1;
	for (unsigned i = 0; i < r->n; i++) {
		r->in[i] = raw_open(job->q[2 * i], O_RDONLY | O_NONBLOCK);
		r->out[i].q =
		    raw_open(job->q[2 * i + 1], O_WRONLY | O_NONBLOCK);
		r->out[i].slot = malloc(RELAY_HOLD * sizeof(*r->out[i].slot));
		if (!r->out[i].slot)
			die("relay: out of memory");
		/* fault the hold in now, not while measuring */
		memset(r->out[i].slot, 0, RELAY_HOLD * sizeof(*r->out[i].slot));
		r->ready[i] = true;
	}
	if (job->wake == BENCH_WAKE_NOTIFY) {
		sigset_t set;

		sigemptyset(&set);
		sigaddset(&set, RELAY_SIGNAL);
		if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
			die("relay: sigprocmask: %s", strerror(errno));
		r->fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	} else if (job->wake == BENCH_WAKE_THREAD) {
		r->fd = relay_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	}
	if (job->wake != BENCH_WAKE_POLL && r->fd < 0)
		die("relay: cannot create its wake-up fd: %s", strerror(errno));
}

/* Runs until the orchestrator kills it. */
static void relay_run(void)
{
	static struct relay r;

	relay_setup(&r);
	/*
	 * Arm before the go, as mqbusd arms at start: the first SIGEV_THREAD
	 * registration makes glibc start its helper thread.
	 */
	for (unsigned i = 0; i < r.n; i++) {
		r.ready[i] = false;
		if (relay_drain(&r, i) && job->wake != BENCH_WAKE_POLL)
			relay_arm(&r, i);
	}
	phase_ready();
	for (;;) {
		bool busy = false;

		for (unsigned i = 0; i < r.n; i++) {
			relay_flush(&r.out[i]);
			if (!r.ready[i] || r.out[i].n == RELAY_HOLD)
				continue;
			r.ready[i] = false;
			if (!relay_drain(&r, i)) {
				/* hold full: wait for room, not for input */
				r.ready[i] = true;
				continue;
			}
			if (job->wake != BENCH_WAKE_POLL)
				relay_arm(&r, i);
			busy |= r.ready[i];
		}
		if (!busy)
			relay_wait(&r);
	}
}

/* ---------------------------------------------------------------- mqbus */

static mqbus *bus_connect(void)
{
	mqbus *b;
	int r;

	r = mqbus_new(&b);
	if (r < 0)
		die("mqbus_new: %s", strerror(-r));
	if (mqbus_set_bus(b, job->bus) < 0 ||
	    mqbus_set_queue_size(b, job->maxmsg ? job->maxmsg : BENCH_MAXMSG,
				 job->msgsize ? job->msgsize
					      : BENCH_MSGSIZE) < 0 ||
	    mqbus_set_timeout(b, 30000) < 0)
		die("cannot set up the mqbus handle: %s", mqbus_last_error(b));
	r = mqbus_connect(b);
	if (r < 0)
		die("cannot connect to bus %s: %s", job->bus,
		    mqbus_last_error(b));
	return b;
}

static void bus_subscribe(mqbus *b, const char *pattern)
{
	int r = mqbus_subscribe(b, pattern);

	if (r < 0)
		die("cannot subscribe to %s: %s", pattern, mqbus_last_error(b));
}

static mqbus_msg *bus_receive(mqbus *b)
{
	mqbus_msg *m;
	int r = mqbus_receive(b, &m, -1);

	if (r < 0)
		die("mqbus_receive: %s", mqbus_last_error(b));
	return m;
}

static void bus_send(void *ctx, const void *buf, size_t len)
{
	mqbus *b = ctx;
	int r = mqbus_publish(b, BENCH_TOPIC, buf, len, MQBUS_PRIORITY_DEFAULT);

	if (r < 0)
		die("mqbus_publish: %s", mqbus_last_error(b));
}

static mqbus *bus_flushed; /* the source whose frame window_flush sends */

static void bus_flush(void)
{
	int r = mqbus_flush(bus_flushed);

	if (r < 0)
		die("mqbus_flush: %s", mqbus_last_error(bus_flushed));
}

static void bus_end(mqbus *b)
{
	if (mqbus_flush(b) < 0)
		die("mqbus_flush: %s", mqbus_last_error(b));
	phase_done();
	phase_quit();
	mqbus_free(b);
}

static void bus_source(void)
{
	static unsigned char buf[BENCH_MSGSIZE];
	mqbus *b = bus_connect();
	const char *pb = getenv("MQBUS_BENCH_PUBLISH_BATCH");

	/* a flooding publisher lets libmqbus fill frames, and flushes
	 * before it waits for its window; MQBUS_BENCH_PUBLISH_BATCH=1: only
	 * what a full tx cannot take yet; 0: it waits for room instead */
	if (!pb || strcmp(pb, "0") != 0) {
		mqbus_set_publish_batch(b, pb && strcmp(pb, "1") == 0
						   ? MQBUS_PUBLISH_BATCH_FULL
						   : MQBUS_PUBLISH_BATCH_FILL);
		bus_flushed = b;
		window_flush = bus_flush;
	}
	phase_ready();
	source_run(bus_send, b, buf, 0);
	bus_end(b);
}

static void bus_sink(void)
{
	struct sink_state s;
	mqbus *b = bus_connect();
	bool finished = false;

	memset(&s, 0, sizeof(s));
	bus_subscribe(b, BENCH_TOPIC);
	phase_ready();
	while (!finished) {
		mqbus_msg *m = bus_receive(b);
		const void *p;
		size_t n;

		if (strcmp(mqbus_msg_topic(m), BENCH_TOPIC) != 0)
			die("subscriber %u: message on topic %s", job->index,
			    mqbus_msg_topic(m));
		if (mqbus_msg_dropped(m))
			die("subscriber %u: the daemon dropped %u messages",
			    job->index, mqbus_msg_dropped(m));
		p = mqbus_msg_payload(m, &n);
		finished = sink_take(&s, p, n);
		mqbus_msg_free(m);
	}
	bus_end(b);
}

/*
 * The responder: takes the requests on BENCH_PING and answers each with
 * its own payload through mqbus_reply().
 */
static void bus_echo(void)
{
	mqbus *b = bus_connect();
	uint64_t next = 0;
	bool last = false;

	bus_subscribe(b, BENCH_PING);
	phase_ready();
	while (!last) {
		mqbus_msg *m = bus_receive(b);
		const void *data;
		size_t n;
		int r;

		if (!mqbus_msg_is_request(m))
			die("echo: message %llu on %s is not a request",
			    (unsigned long long)next, mqbus_msg_topic(m));
		if (strcmp(mqbus_msg_topic(m), BENCH_PING) != 0)
			die("echo: request on topic %s", mqbus_msg_topic(m));
		if (mqbus_msg_dropped(m))
			die("echo: the daemon dropped %u requests",
			    mqbus_msg_dropped(m));
		data = mqbus_msg_payload(m, &n);
		last = echo_take(data, n, &next);
		r = mqbus_reply(b, m, data, n);
		if (r < 0)
			die("echo: mqbus_reply: %s", mqbus_last_error(b));
		mqbus_msg_free(m);
	}
	bus_end(b);
}

/* The requester: mqbus_request() on BENCH_PING, one at a time. */
struct bus_pinger {
	mqbus *b;
	mqbus_msg *m; /* the last reply, until the next request */
};

static const void *bus_pinger_exchange(void *ctx, const void *buf,
				       size_t len, size_t *ret_len)
{
	struct bus_pinger *bp = ctx;
	int r;

	bp->m = mqbus_msg_free(bp->m);
	r = mqbus_request(bp->b, BENCH_PING, buf, len, -1, &bp->m);
	if (r < 0)
		die("round trip client: mqbus_request: %s",
		    mqbus_last_error(bp->b));
	return mqbus_msg_payload(bp->m, ret_len);
}

static void bus_pinger(void)
{
	static unsigned char buf[BENCH_MSGSIZE];
	struct bus_pinger bp = { .b = bus_connect() };
	struct pinger_ops ops = {
	    .exchange = bus_pinger_exchange,
	    .ctx = &bp,
	    .pad = 0,
	};

	phase_ready();
	pinger_run(&ops, buf);
	mqbus_msg_free(bp.m);
	bus_end(bp.b);
}

/*
 * Patterns that match nothing the bench publishes but share the levels it
 * uses, so they sit in the same tables the router looks at for
 * "bench/data": siblings, children, other roots with the same second
 * level, and '+' patterns that every lookup has to follow.
 */
static void holder_pattern(char *buf, size_t len, unsigned i)
{
	switch (i % 4) {
	case 0:
		snprintf(buf, len, "bench/n%u", i);
		break;
	case 1:
		snprintf(buf, len, "bench/data/n%u", i);
		break;
	case 2:
		snprintf(buf, len, "n%u/data", i);
		break;
	default:
		snprintf(buf, len, "+/n%u", i);
		break;
	}
}

static void bus_holder(void)
{
	mqbus *b = bus_connect();
	uint64_t t0 = now_ns();
	char pattern[64];

	for (unsigned i = 0; i < job->n_patterns; i++) {
		holder_pattern(pattern, sizeof(pattern), i);
		bus_subscribe(b, pattern);
	}
	job->ctl->setup_ns = now_ns() - t0;
	atomic_fetch_add(&job->ctl->ready, 1);
	futex_wake(&job->ctl->ready);
	phase_quit();
	mqbus_free(b);
}

/* ---------------------------------------------------------------- scale */

/*
 * Scale client i's subscriptions: they share the levels of the round
 * trips' topics ("c/<peer>/in"), so a lookup meets thousands of them, but
 * only client i's first one matches anything published.
 */
static void scale_pattern(char *buf, size_t len, unsigned i, unsigned k)
{
	switch (k) {
	case 0:
		snprintf(buf, len, "c/%u/in", i);
		break;
	case 1:
		snprintf(buf, len, "c/%u/cfg/+", i);
		break;
	case 2:
		snprintf(buf, len, "a/%u/#", i);
		break;
	case 3:
		snprintf(buf, len, "+/%u/state", i);
		break;
	default:
		snprintf(buf, len, "g/%u/%u/evt", i % 64, i);
		break;
	}
}

/* Client i's retained value: no pattern but '#' matches its topic. */
static void scale_value(char *topic, size_t tlen, char *value, size_t vlen,
			unsigned i)
{
	snprintf(topic, tlen, "r/%u/value", i);
	snprintf(value, vlen, "value of client %u", i);
}

static void bus_publish_to(mqbus *b, const char *topic, const void *data,
			   size_t len, unsigned flags)
{
	int r = mqbus_publish_flags(b, topic, data, len,
				    MQBUS_PRIORITY_DEFAULT, flags);

	if (r < 0)
		die("cannot publish on %s: %s", topic, mqbus_last_error(b));
}

static void scale_client_setup(mqbus *b, unsigned i)
{
	char topic[64], value[64], pattern[64];

	for (unsigned k = 0; k < BENCH_SCALE_SUBS; k++) {
		scale_pattern(pattern, sizeof(pattern), i, k);
		bus_subscribe(b, pattern);
	}
	scale_value(topic, sizeof(topic), value, sizeof(value), i);
	bus_publish_to(b, topic, value, strlen(value), MQBUS_PUBLISH_RETAIN);
}

/* This worker finished a phase (ctl->stepped counts them). */
static void scale_stepped(void)
{
	job->ctl->t_step[job->index] = now_ns();
	atomic_fetch_add(&job->ctl->stepped, 1);
	futex_wake(&job->ctl->stepped);
}

/* Waits until the orchestrator allows phase step. */
static void scale_wait_step(uint32_t step)
{
	struct bench_ctl *ctl = job->ctl;

	for (;;) {
		uint32_t v = atomic_load(&ctl->step);

		if (v >= step)
			return;
		if (atomic_load(&ctl->failed))
			_exit(1);
		futex_wait(&ctl->step, v, 1000);
	}
}

/*
 * Holds n_clients scale clients, first to first + n_clients - 1: connects
 * them all at the go (the handshake rate), then, at step 1, gives each its
 * subscriptions and its retained value, and keeps them until the quit.
 */
static void scale_holder(void)
{
	struct rlimit rl;
	mqbus **b;

	/* three descriptors per client: the soft limit may be too low */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	b = calloc(job->n_clients, sizeof(*b));
	if (!b)
		die("scale holder: out of memory");
	phase_ready();
	for (unsigned i = 0; i < job->n_clients; i++)
		b[i] = bus_connect();
	scale_stepped();
	scale_wait_step(1);
	for (unsigned i = 0; i < job->n_clients; i++)
		scale_client_setup(b[i], job->first + i);
	scale_stepped();
	phase_quit();
	for (unsigned i = 0; i < job->n_clients; i++)
		mqbus_free(b[i]);
	free(b);
}

/* The topic client i receives the round trips' messages on. */
static void scale_in_topic(char *buf, size_t len, unsigned i)
{
	snprintf(buf, len, "c/%u/in", i);
}

/* Takes the next message, which must be a live one on topic. */
static mqbus_msg *scale_receive_on(mqbus *b, const char *topic)
{
	mqbus_msg *m = bus_receive(b);

	if (strcmp(mqbus_msg_topic(m), topic) != 0)
		die("scale client %u: message on %s, expected %s", job->first,
		    mqbus_msg_topic(m), topic);
	if (mqbus_msg_retained(m))
		die("scale client %u: a retained message on %s", job->first,
		    topic);
	if (mqbus_msg_dropped(m))
		die("scale client %u: the daemon dropped %u messages",
		    job->first, mqbus_msg_dropped(m));
	return m;
}

struct scale_ping {
	mqbus *b;
	mqbus_msg *m; /* the last answer, until the next exchange */
	char out[32], in[32];
};

static const void *scale_ping_exchange(void *ctx, const void *buf, size_t len,
				       size_t *ret_len)
{
	struct scale_ping *sp = ctx;

	sp->m = mqbus_msg_free(sp->m);
	bus_publish_to(sp->b, sp->out, buf, len, 0);
	sp->m = scale_receive_on(sp->b, sp->in);
	return mqbus_msg_payload(sp->m, ret_len);
}

/*
 * The pubsub round trip between two scale clients: ping publishes on the
 * peer's "c/<peer>/in", the peer publishes the payload back on
 * "c/<ping>/in"; both wait in mqbus_receive().
 */
static void scale_ping(void)
{
	static unsigned char buf[BENCH_SCALE_MSGSIZE];
	static struct scale_ping sp;
	struct pinger_ops ops = {
	    .exchange = scale_ping_exchange,
	    .ctx = &sp,
	    .pad = 0,
	};

	sp.b = bus_connect();
	scale_client_setup(sp.b, job->first);
	scale_in_topic(sp.out, sizeof(sp.out), job->peer);
	scale_in_topic(sp.in, sizeof(sp.in), job->first);
	phase_ready();
	pinger_run(&ops, buf);
	mqbus_msg_free(sp.m);
	bus_end(sp.b);
}

static void scale_pong(void)
{
	char in[32], out[32];
	mqbus *b = bus_connect();
	uint64_t next = 0;
	bool last = false;

	scale_client_setup(b, job->first);
	scale_in_topic(in, sizeof(in), job->first);
	scale_in_topic(out, sizeof(out), job->peer);
	phase_ready();
	while (!last) {
		mqbus_msg *m = scale_receive_on(b, in);
		const void *data;
		size_t n;

		data = mqbus_msg_payload(m, &n);
		last = echo_take(data, n, &next);
		bus_publish_to(b, out, data, n, 0);
		mqbus_msg_free(m);
	}
	bus_end(b);
}

/*
 * Checks a retained value of a scale client: its topic names a client
 * from first to first + n - 1 not seen yet, and the payload is that
 * client's value.  Returns the client's offset from first.
 */
static unsigned scale_check_value(const mqbus_msg *m, const unsigned char *seen)
{
	char topic[64], value[64];
	unsigned i;
	const void *p;
	size_t n;
	int end = -1;

	if (!mqbus_msg_retained(m))
		die("late subscriber: a live message on %s",
		    mqbus_msg_topic(m));
	if (mqbus_msg_dropped(m))
		die("late subscriber: the daemon dropped %u retained values",
		    mqbus_msg_dropped(m));
	if (sscanf(mqbus_msg_topic(m), "r/%u/value%n", &i, &end) != 1 ||
	    end < 0 || mqbus_msg_topic(m)[end] || i < job->first ||
	    i - job->first >= job->n_clients)
		die("late subscriber: a value on %s, not of clients %u to %u",
		    mqbus_msg_topic(m), job->first,
		    job->first + job->n_clients - 1);
	if (seen[i - job->first])
		die("late subscriber: the value of %s came twice",
		    mqbus_msg_topic(m));
	scale_value(topic, sizeof(topic), value, sizeof(value), i);
	p = mqbus_msg_payload(m, &n);
	if (n != strlen(value) || memcmp(p, value, n) != 0)
		die("late subscriber: the value of %s is damaged", topic);
	return i - job->first;
}

/*
 * A client that comes late and subscribes to '#': the time from its
 * SUBSCRIBE to the ACK, and to the last of the n_clients retained values
 * (each exactly once, intact; nothing more may follow).
 */
static void scale_late(void)
{
	unsigned char *seen = calloc(job->n_clients, 1);
	mqbus *b = bus_connect();
	unsigned got = 0;
	uint64_t t0;
	mqbus_msg *m;
	int r;

	if (!seen)
		die("late subscriber: out of memory");
	phase_ready();
	t0 = now_ns();
	bus_subscribe(b, "#");
	job->ctl->ack_ns = now_ns() - t0;
	while (got < job->n_clients) {
		r = mqbus_receive(b, &m, 30000);
		if (r < 0)
			die("late subscriber: %u of %u retained values came "
			    "(%s)",
			    got, job->n_clients, mqbus_last_error(b));
		seen[scale_check_value(m, seen)] = 1;
		got++;
		mqbus_msg_free(m);
	}
	job->ctl->setup_ns = now_ns() - t0;
	r = mqbus_receive(b, &m, 200);
	if (r == 0)
		die("late subscriber: one more message after the %u values, "
		    "on %s",
		    job->n_clients, mqbus_msg_topic(m));
	free(seen);
	bus_end(b);
}

/*
 * Publishes on "probe/sync", which the probe subscribes to, and waits for
 * the message: mqbusd has then handled every publish before it.
 */
static void scale_probe_sync(mqbus *b)
{
	mqbus_msg *m;

	/* the same priority as every publish before it: it comes after them */
	bus_publish_to(b, "probe/sync", "sync", 4, 0);
	m = bus_receive(b);
	if (strcmp(mqbus_msg_topic(m), "probe/sync") != 0 ||
	    mqbus_msg_retained(m) || mqbus_msg_dropped(m))
		die("probe: %s instead of its own sync message",
		    mqbus_msg_topic(m));
	mqbus_msg_free(m);
}

/*
 * One phase of the probe: for each of its BENCH_SCALE_PROBES retained
 * values ("probe/<phase>/<j>/x", kept since the start), a SUBSCRIBE to
 * "probe/<phase>/<j>/+", the one value it must bring, and an UNSUBSCRIBE.
 * Two times of each: from the call to the ACK, and to the ACK of the
 * UNSUBSCRIBE.  mqbusd acknowledges a SUBSCRIBE before it looks for the
 * values to send, and handles one request after the other, so the second
 * holds everything the SUBSCRIBE cost it.
 */
static void scale_probe_phase(mqbus *b, unsigned phase)
{
	char topic[64], value[64], pattern[64];

	for (unsigned j = 0; j < BENCH_SCALE_PROBES; j++) {
		const void *p;
		mqbus_msg *m;
		uint64_t t0;
		size_t n;
		int r;

		snprintf(topic, sizeof(topic), "probe/%u/%u/x", phase, j);
		snprintf(value, sizeof(value), "probe %u %u", phase, j);
		snprintf(pattern, sizeof(pattern), "probe/%u/%u/+", phase, j);
		t0 = now_ns();
		bus_subscribe(b, pattern);
		job->ctl->probe_ns[phase][j] = now_ns() - t0;
		r = mqbus_receive(b, &m, 10000);
		if (r < 0)
			die("probe: no retained value for %s: %s", pattern,
			    mqbus_last_error(b));
		p = mqbus_msg_payload(m, &n);
		if (strcmp(mqbus_msg_topic(m), topic) != 0 ||
		    !mqbus_msg_retained(m) || n != strlen(value) ||
		    memcmp(p, value, n) != 0)
			die("probe: %s brought %s, expected the value of %s",
			    pattern, mqbus_msg_topic(m), topic);
		mqbus_msg_free(m);
		r = mqbus_unsubscribe(b, pattern);
		if (r < 0)
			die("probe: cannot unsubscribe %s: %s", pattern,
			    mqbus_last_error(b));
		job->ctl->probe_done_ns[phase][j] = now_ns() - t0;
	}
}

/* The retained values mqbusd keeps, from its stats. */
static uint64_t scale_retained_held(mqbus *b)
{
	unsigned long long n;
	char *text = NULL, *p;
	int r = mqbus_stats(b, &text);

	if (r < 0)
		die("probe: mqbus_stats: %s", mqbus_last_error(b));
	p = strstr(text, "retained=");
	if (!p || sscanf(p, "retained=%llu", &n) != 1)
		die("probe: no retained= in mqbusd's stats");
	free(text);
	return n;
}

/*
 * Times SUBSCRIBE with only the probe's own values kept (phase 0), then
 * loads n_retained values into ten other subtrees ("load<k % 10>/<..>/<..>")
 * and times it again (phase 1).  The values of both phases are kept
 * first, so that a bound on the number of values mqbusd keeps cannot
 * refuse them.
 */
static void scale_probe(void)
{
	char topic[64], value[32];
	mqbus *b = bus_connect();

	bus_subscribe(b, "probe/sync");
	phase_ready();
	for (unsigned k = 0; k < 2 * BENCH_SCALE_PROBES; k++) {
		snprintf(topic, sizeof(topic), "probe/%u/%u/x",
			 k / BENCH_SCALE_PROBES, k % BENCH_SCALE_PROBES);
		snprintf(value, sizeof(value), "probe %u %u",
			 k / BENCH_SCALE_PROBES, k % BENCH_SCALE_PROBES);
		bus_publish_to(b, topic, value, strlen(value),
			       MQBUS_PUBLISH_RETAIN);
	}
	scale_probe_sync(b);
	scale_probe_phase(b, 0);
	for (unsigned k = 0; k < job->n_retained; k++) {
		unsigned l = k / 10;

		snprintf(topic, sizeof(topic), "load%u/%u/%u", k % 10, l / 100,
			 l % 100);
		snprintf(value, sizeof(value), "v%u", k);
		bus_publish_to(b, topic, value, strlen(value),
			       MQBUS_PUBLISH_RETAIN);
	}
	scale_probe_sync(b);
	job->ctl->retained_held = scale_retained_held(b);
	scale_probe_phase(b, 1);
	bus_end(b);
}

/* ---------------------------------------------------------------- peers */

/* The same steps for the peers' clients (bench.h). */
const struct bench_job *work_job(void)
{
	return job;
}

void work_fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	bench_vfail(job->ctl, fmt, ap);
	va_end(ap);
	_exit(1);
}

void work_ready(void)
{
	phase_ready();
}

void work_end(void)
{
	phase_done();
	phase_quit();
}

void work_source(work_send_fn send, void *ctx)
{
	static unsigned char buf[BENCH_MSGSIZE];

	source_run(send, ctx, buf, 0);
}

bool work_sink_take(const void *buf, size_t len)
{
	static struct sink_state s;

	return sink_take(&s, buf, len);
}

bool work_echo_take(const void *buf, size_t len)
{
	static uint64_t next;

	return echo_take(buf, len, &next);
}

void work_pinger(work_exchange_fn exchange, void *ctx)
{
	static unsigned char buf[BENCH_MSGSIZE];
	struct pinger_ops ops = {.exchange = exchange, .ctx = ctx, .pad = 0};

	pinger_run(&ops, buf);
}

/* ---------------------------------------------------------------- entry */

/* Process names, so that perf, top and ps tell the roles apart. */
static const char *const job_names[] = {
	[JOB_RAW_SOURCE] = "mqb-raw-source",
	[JOB_RAW_SINK] = "mqb-raw-sink",
	[JOB_RAW_ECHO] = "mqb-raw-echo",
	[JOB_RAW_PINGER] = "mqb-raw-pinger",
	[JOB_RELAY] = "mqb-relay",
	[JOB_BUS_SOURCE] = "mqb-publisher",
	[JOB_BUS_SINK] = "mqb-subscriber",
	[JOB_BUS_ECHO] = "mqb-responder",
	[JOB_BUS_PINGER] = "mqb-requester",
	[JOB_BUS_HOLDER] = "mqb-holder",
	[JOB_SCALE_HOLDER] = "mqb-scale-hold",
	[JOB_SCALE_PING] = "mqb-scale-ping",
	[JOB_SCALE_PONG] = "mqb-scale-pong",
	[JOB_SCALE_LATE] = "mqb-scale-late",
	[JOB_SCALE_PROBE] = "mqb-scale-probe",
	/* renamed after their peer by peer_work() */
	[JOB_PEER_SOURCE] = "mqb-peer-pub",
	[JOB_PEER_SINK] = "mqb-peer-sub",
	[JOB_PEER_ECHO] = "mqb-peer-echo",
	[JOB_PEER_PINGER] = "mqb-peer-req",
};

void bench_work(const struct bench_job *j)
{
	job = j;
	prctl(PR_SET_NAME, job_names[j->kind]);
	payload_init_pattern();
	switch (j->kind) {
	case JOB_RAW_SOURCE:
		raw_source();
		break;
	case JOB_RAW_SINK:
		raw_sink();
		break;
	case JOB_RAW_ECHO:
		raw_echo();
		break;
	case JOB_RAW_PINGER:
		raw_pinger();
		break;
	case JOB_RELAY:
		relay_run();
		break;
	case JOB_BUS_SOURCE:
		bus_source();
		break;
	case JOB_BUS_SINK:
		bus_sink();
		break;
	case JOB_BUS_ECHO:
		bus_echo();
		break;
	case JOB_BUS_PINGER:
		bus_pinger();
		break;
	case JOB_BUS_HOLDER:
		bus_holder();
		break;
	case JOB_SCALE_HOLDER:
		scale_holder();
		break;
	case JOB_SCALE_PING:
		scale_ping();
		break;
	case JOB_SCALE_PONG:
		scale_pong();
		break;
	case JOB_SCALE_LATE:
		scale_late();
		break;
	case JOB_SCALE_PROBE:
		scale_probe();
		break;
	case JOB_PEER_SOURCE:
	case JOB_PEER_SINK:
	case JOB_PEER_ECHO:
	case JOB_PEER_PINGER:
		peer_work(j);
		break;
	}
	_exit(0);
}
