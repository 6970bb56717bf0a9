/* SPDX-License-Identifier: MIT */
/*
 * server.c - the bus: loop, announce queue, handshake, routing, signals.
 *
 * Where things happen:
 *  - wake-ups: a source whose queue may be readable is put on the ready
 *    list (server_wake_ready); server_drain() serves that list round-robin,
 *    at most SERVER_READ_BUDGET messages per source per turn, then re-arms
 *    the sources it drained.  One flooding client therefore cannot keep
 *    the others waiting.
 *  - handshake: server_handshake(), from an ANNOUNCE read on /BUS.
 *  - routing: server_route(), called by client.c for each PUBLISH.
 *  - lifetime: clients are freed in server_reap(), a deferred event, never
 *    inside their own callbacks.
 *  - signals: one signalfd carries SIGTERM/SIGINT (stop), SIGHUP (reload)
 *    and the notify back-end's realtime signal.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>
#include <systemd/sd-daemon.h>

#include "daemon/client.h"
#include "daemon/log.h"
#include "daemon/msgbuf.h"
#include "daemon/router.h"
#include "daemon/server.h"
#include "daemon/sweep.h"
#include "proto/proto.h"

#define BUS_NAME_MAX 200

static void server_drain(evutil_socket_t fd, short what, void *arg);
static void server_reap(evutil_socket_t fd, short what, void *arg);
static void server_signal(evutil_socket_t fd, short what, void *arg);
static void server_rescue(evutil_socket_t fd, short what, void *arg);
static void server_announce_wake(struct wake_src *src);

static int set_error(char **ret_error, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int set_error(char **ret_error, int err, const char *fmt, ...)
{
	va_list ap;

	if (ret_error) {
		va_start(ap, fmt);
		if (vasprintf(ret_error, fmt, ap) < 0)
			*ret_error = NULL;
		va_end(ap);
	}
	return err;
}

static bool bus_name_valid(const char *bus)
{
	size_t len = strlen(bus);
	char name[BUS_NAME_MAX + 2];

	if (len == 0 || len > BUS_NAME_MAX)
		return false;
	snprintf(name, sizeof(name), "/%s", bus);
	return proto_qname_valid(name, len + 1);
}

/*
 * One daemon per bus: an abstract socket named after the bus and this IPC
 * namespace is the lock.  The kernel drops it when the process dies, so a
 * crashed daemon never blocks its successor.
 */
static int server_lock(struct server *s)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char ns[64] = "";
	ssize_t n;
	int fd, len;

	n = readlink("/proc/self/ns/ipc", ns, sizeof(ns) - 1);
	if (n > 0)
		ns[n] = '\0';
	len = snprintf(sa.sun_path + 1, sizeof(sa.sun_path) - 1,
		       "mqbusd/%s/%s", ns, s->bus);
	if (len < 0 || (size_t)len >= sizeof(sa.sun_path) - 1)
		return -ENAMETOOLONG;
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa,
		 offsetof(struct sockaddr_un, sun_path) + 1 + len) < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	s->lock_fd = fd;
	return 0;
}

static long read_proc_long(const char *path, long dflt)
{
	FILE *f = fopen(path, "re");
	long v;

	if (!f)
		return dflt;
	if (fscanf(f, "%ld", &v) != 1)
		v = dflt;
	fclose(f);
	return v;
}

static int server_open_announce(struct server *s, char **ret_error)
{
	struct mq_attr attr = { 0 };

	attr.mq_maxmsg = read_proc_long("/proc/sys/fs/mqueue/msg_max", 10);
	if (attr.mq_maxmsg > 64)
		attr.mq_maxmsg = 64;
	attr.mq_msgsize = SERVER_ANNOUNCE_MSGSIZE;
	/* we hold the lock: a queue by this name is a dead daemon's */
	if (mq_unlink(s->announce_name) == 0)
		log_info("removed stale announce queue %s", s->announce_name);
	s->announce = mq_open(s->announce_name,
			      O_RDONLY | O_CREAT | O_EXCL | O_NONBLOCK, 0622,
			      &attr);
	if (s->announce == (mqd_t)-1) {
		int err = -errno;

		return set_error(ret_error, err,
				 "cannot create announce queue %s: %s%s",
				 s->announce_name, strerror(-err),
				 err == -EMFILE ? " (RLIMIT_MSGQUEUE of this "
						  "user exhausted)"
				 : err == -ENOSPC ? " (fs.mqueue.queues_max "
						    "reached)"
						  : "");
	}
	/* anyone may announce, only we read: undo the umask */
	if (fchmod(s->announce, 0622) < 0)
		log_warn("cannot set mode 0622 on %s", s->announce_name);
	s->announce_src.mqd = s->announce;
	s->announce_src.on_wake = server_announce_wake;
	return wake_add(s->wake, &s->announce_src);
}

/*
 * The signals we read from the signalfd are blocked in the loop's thread,
 * but glibc's SIGEV_THREAD notification threads unblock every signal, and
 * a process-directed SIGTERM may land in one of them.  This handler, which
 * only runs there, hands the signal to the loop's thread, where it is
 * blocked and so waits for the signalfd.
 */
static pid_t main_tid;

static void server_forward_signal(int sig)
{
	int saved = errno;

	syscall(SYS_tgkill, getpid(), main_tid, sig);
	errno = saved;
}

static int server_setup_signals(struct server *s)
{
	struct sigaction sa = { .sa_handler = server_forward_signal };
	sigset_t mask;

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, s->wake_signo);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
		return -errno;
	main_tid = (pid_t)syscall(SYS_gettid);
	sigfillset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	if (sigaction(SIGTERM, &sa, NULL) < 0 ||
	    sigaction(SIGINT, &sa, NULL) < 0 ||
	    sigaction(SIGHUP, &sa, NULL) < 0)
		return -errno;
	s->sig_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (s->sig_fd < 0)
		return -errno;
	s->sig_ev = event_new(s->base, s->sig_fd, EV_READ | EV_PERSIST,
			      server_signal, s);
	if (!s->sig_ev || event_add(s->sig_ev, NULL) < 0)
		return -ENOMEM;
	/* a client vanishing mid-write must not kill us */
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

int server_init(struct server *s, const struct server_options *opt,
		char **ret_error)
{
	struct timeval one_second = { 1, 0 };
	char *cfg_error = NULL;
	int r;

	memset(s, 0, sizeof(*s));
	s->lock_fd = -1;
	s->sig_fd = -1;
	s->announce = (mqd_t)-1;
	TAILQ_INIT(&s->ready);
	TAILQ_INIT(&s->groups);
	TAILQ_INIT(&s->timers.all);
	s->timers.fd = -1;
	request_table_init(&s->requests);
	TAILQ_INIT(&s->clients);
	TAILQ_INIT(&s->reap);
	s->uid = getuid();
	s->pid = getpid();
	s->next_client_id = 1;
	s->status_sum = UINT64_MAX; /* the first STATUS= always goes */
	s->wake_signo = SIGRTMIN + 1;
	clock_gettime(CLOCK_MONOTONIC, &s->started);

	if (!bus_name_valid(opt->bus))
		return set_error(ret_error, -EINVAL,
				 "invalid bus name '%s': use 1 to %d of "
				 "A-Z a-z 0-9 . _ -",
				 opt->bus, BUS_NAME_MAX);
	s->bus = strdup(opt->bus);
	if (!s->bus || asprintf(&s->announce_name, "/%s", opt->bus) < 0)
		return set_error(ret_error, -ENOMEM, "out of memory");

	r = server_lock(s);
	if (r == -EADDRINUSE)
		return set_error(ret_error, r,
				 "bus '%s' is already served by another "
				 "mqbusd",
				 s->bus);
	if (r < 0)
		return set_error(ret_error, r, "cannot take the lock of bus "
				 "'%s': %s", s->bus, strerror(-r));

	r = config_init(&s->cfg);
	if (r < 0)
		return set_error(ret_error, r, "out of memory");
	if (opt->config_path) {
		struct config loaded = { 0 };

		s->config_path = strdup(opt->config_path);
		r = config_load(&loaded, opt->config_path, &cfg_error);
		if (r < 0) {
			r = set_error(ret_error, r, "%s",
				      cfg_error ? cfg_error : strerror(-r));
			free(cfg_error);
			return r;
		}
		config_deinit(&s->cfg);
		s->cfg = loaded;
	}

	s->base = event_base_new();
	s->router = router_new();
	if (!s->base || !s->router || retain_init(&s->retained) < 0)
		return set_error(ret_error, -ENOMEM, "out of memory");
	r = wake_new(s->base, opt->wake, s->wake_signo, &s->wake);
	if (r < 0)
		return set_error(ret_error, r, "cannot set up wake-ups: %s",
				 strerror(-r));
	r = server_setup_signals(s);
	if (r < 0)
		return set_error(ret_error, r, "cannot set up signals: %s",
				 strerror(-r));
	r = timer_set_init(s);
	if (r < 0)
		return set_error(ret_error, r, "cannot set up timers: %s",
				 strerror(-r));
	s->drain_ev = event_new(s->base, -1, 0, server_drain, s);
	s->reap_ev = event_new(s->base, -1, 0, server_reap, s);
	s->rescue_ev = event_new(s->base, -1, EV_PERSIST, server_rescue, s);
	if (!s->drain_ev || !s->reap_ev || !s->rescue_ev ||
	    event_add(s->rescue_ev, &one_second) < 0)
		return set_error(ret_error, -ENOMEM, "out of memory");

	r = sweep_stale(SWEEP_MQUEUE_DIR, s->bus);
	if (r == -ENOTSUP || r == -ENOENT)
		log_info("not sweeping stale queues: no mqueue filesystem on "
			 "%s (mount -t mqueue none %s)",
			 SWEEP_MQUEUE_DIR, SWEEP_MQUEUE_DIR);
	else if (r < 0)
		log_warnx("sweeping stale queues: %s", strerror(-r));

	r = server_open_announce(s, ret_error);
	if (r < 0)
		return r;
	return 0;
}

/*
 * STATUS= for systemctl status.  Sent from the once-a-second timer, and
 * only when a figure changed: sd_notify's datagram can block the loop
 * if the manager is slow to read, so we keep them few.
 */
void server_notify_status(struct server *s)
{
	uint64_t sum = s->n_clients + s->stats.published +
		       s->stats.delivered + s->stats.dropped;

	if (sum == s->status_sum)
		return;
	s->status_sum = sum;
	sd_notifyf(0,
		   "STATUS=Serving bus %s: %u clients, %llu published, "
		   "%llu delivered, %llu dropped",
		   s->bus, s->n_clients,
		   (unsigned long long)s->stats.published,
		   (unsigned long long)s->stats.delivered,
		   (unsigned long long)s->stats.dropped);
}

/* The counters of struct server_stats, by name, for the STATS text. */
#define STAT(name) { #name, offsetof(struct server_stats, name) }
static const struct {
	const char *name;
	size_t offset;
} server_stat_fields[] = {
	STAT(published),	  STAT(delivered),
	STAT(dropped),		  STAT(bad_messages),
	STAT(handshakes),	  STAT(handshakes_failed),
	STAT(clients_gone),	  STAT(wakeups_rescued),
	STAT(requests),		  STAT(replies),
	STAT(no_responders),	  STAT(requests_expired),
	STAT(replies_refused),	  STAT(timers_fired),
	STAT(coalesced),	  STAT(publishers_blocked),
	STAT(slow_disconnects),
};
#undef STAT

int server_stats_text(struct server *s, char *buf, size_t cap)
{
	struct timespec now;
	size_t len;
	int n;

	clock_gettime(CLOCK_MONOTONIC, &now);
	n = snprintf(buf, cap,
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
		     "buffers_live=%zu\n",
		     s->bus, (int)s->pid,
		     wake_method_name(wake_method_of(s->wake)),
		     (long long)(now.tv_sec - s->started.tv_sec), s->n_clients,
		     router_count(s->router), s->requests.count,
		     s->timers.n, s->retained.count,
		     s->pending_bytes, msgbuf_live());
	if (n < 0)
		return 0;
	len = (size_t)n;
	for (size_t i = 0; i < sizeof(server_stat_fields) /
				       sizeof(server_stat_fields[0]) &&
			   len < cap;
	     i++) {
		uint64_t v;

		memcpy(&v, (const char *)&s->stats +
				   server_stat_fields[i].offset,
		       sizeof(v));
		n = snprintf(buf + len, cap - len, "%s=%llu\n",
			     server_stat_fields[i].name,
			     (unsigned long long)v);
		if (n < 0)
			break;
		len += (size_t)n;
	}
	return len >= cap ? (int)cap - 1 : (int)len;
}

/* -------------------------------------------------------------------- */
/* wake-ups and the ready list                                           */

void server_wake_ready(struct server *s, struct wake_src *src)
{
	if (src->on_ready)
		return;
	src->on_ready = true;
	TAILQ_INSERT_TAIL(&s->ready, src, ready_link);
	event_active(s->drain_ev, EV_TIMEOUT, 0);
}

static void server_announce_wake(struct wake_src *src)
{
	struct server *s = (struct server *)((char *)src -
					     offsetof(struct server,
						      announce_src));

	server_wake_ready(s, src);
}

static int server_read_announce(struct server *s, unsigned budget);

static int server_read_source(struct server *s, struct wake_src *src)
{
	if (src == &s->announce_src)
		return server_read_announce(s, SERVER_READ_BUDGET);
	return client_read((struct client *)((char *)src -
					     offsetof(struct client, src)),
			   SERVER_READ_BUDGET);
}

/*
 * One round over the sources that were ready when it started.  A source
 * with messages left goes to the back; a drained one is re-armed, and if
 * messages slipped in while arming it stays on the list.
 */
static void server_drain(evutil_socket_t fd, short what, void *arg)
{
	struct server *s = arg;
	struct wake_src *last = TAILQ_LAST(&s->ready, wake_src_list);
	struct wake_src *src;
	bool done = false;

	if (s->stopping)
		return;
	while (!done && (src = TAILQ_FIRST(&s->ready))) {
		int r;

		done = src == last;
		TAILQ_REMOVE(&s->ready, src, ready_link);
		src->on_ready = false;
		r = server_read_source(s, src);
		if (r < 0)
			continue; /* closing */
		if (r == 0) {
			r = wake_arm(src);
			if (r < 0)
				log_warnx("cannot arm queue wake-up: %s",
					  strerror(-r));
			if (r == 0)
				continue;
		}
		server_wake_ready(s, src);
	}
	if (!TAILQ_EMPTY(&s->ready))
		event_active(s->drain_ev, EV_TIMEOUT, 0);
}

/*
 * A safety net, once a second: an armed source whose queue holds messages
 * missed its notification (a realtime signal lost to RLIMIT_SIGPENDING,
 * say), or a polled one was left unread (a buffer we could not allocate).
 * It should never trigger; stats show it if it does.
 */
static void server_rescue_src(struct server *s, struct wake_src *src)
{
	struct mq_attr attr;

	if (!src->armed || src->on_ready)
		return;
	if (mq_getattr(src->mqd, &attr) == 0 && attr.mq_curmsgs > 0) {
		s->stats.wakeups_rescued++;
		log_debug("rescued a missed wake-up (slot %u)", src->slot);
		server_wake_ready(s, src);
	}
}

static void server_rescue(evutil_socket_t fd, short what, void *arg)
{
	struct server *s = arg;
	struct client *c;

	server_rescue_src(s, &s->announce_src);
	TAILQ_FOREACH(c, &s->clients, link)
		if (!c->closing && c->blocked_by == 0)
			server_rescue_src(s, &c->src);
	server_notify_status(s);
}

/* -------------------------------------------------------------------- */
/* client lifetime                                                       */

void server_client_closing(struct server *s, struct client *c)
{
	TAILQ_INSERT_TAIL(&s->reap, c, reap_link);
	event_active(s->reap_ev, EV_TIMEOUT, 0);
}

static void server_drop_client(struct server *s, struct client *c)
{
	TAILQ_REMOVE(&s->clients, c, link);
	if (c->src.on_ready) {
		TAILQ_REMOVE(&s->ready, &c->src, ready_link);
		c->src.on_ready = false;
	}
	s->n_clients--;
	s->stats.clients_gone++;
	client_free(c, true);
}

static void server_reap(evutil_socket_t fd, short what, void *arg)
{
	struct server *s = arg;
	struct client *c;

	if (TAILQ_EMPTY(&s->reap))
		return;
	while ((c = TAILQ_FIRST(&s->reap))) {
		TAILQ_REMOVE(&s->reap, c, reap_link);
		server_drop_client(s, c);
	}
}

/* -------------------------------------------------------------------- */
/* handshake                                                             */

static int pidfd_open_compat(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

/* The fs uid of pid, the uid its queues are created with. */
static int proc_fsuid(pid_t pid, uid_t *ret)
{
	char path[64], line[256];
	unsigned long r, e, sv, fs;
	bool found = false;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "Uid: %lu %lu %lu %lu", &r, &e, &sv, &fs) ==
		    4) {
			found = true;
			break;
		}
	}
	fclose(f);
	if (!found)
		return -EIO;
	*ret = (uid_t)fs;
	return 0;
}

static bool pidfd_alive(int pidfd)
{
	struct pollfd p = { .fd = pidfd, .events = POLLIN };

	return poll(&p, 1, 0) == 0;
}

/* "/BUS.<pid>.<n>.tx" -> pid, and the stem length before ".tx" */
static bool handshake_parse_tx(const struct server *s, const char *name,
			       pid_t *ret_pid, size_t *ret_stem)
{
	size_t len = strlen(name);

	if (len < 4 || strcmp(name + len - 3, ".tx") != 0)
		return false;
	if (!sweep_parse_name(s->bus, name + 1, ret_pid))
		return false;
	*ret_stem = len - 3;
	return true;
}

static void handshake_refuse(struct server *s, const char *tx_name,
			     const char *why)
{
	s->stats.handshakes_failed++;
	log_debug("handshake of %s refused: %s", tx_name, why);
}

struct client *server_find_client(struct server *s, uint32_t id)
{
	struct client *c;

	TAILQ_FOREACH(c, &s->clients, link)
		if (c->id == id)
			return c;
	return NULL;
}

static struct client *server_find_tx(struct server *s, const char *tx_name)
{
	struct client *c;

	TAILQ_FOREACH(c, &s->clients, link)
		if (strcmp(c->tx_name, tx_name) == 0)
			return c;
	return NULL;
}

static void server_welcome(struct server *s, struct client *c)
{
	unsigned char buf[PROTO_HEADER_SIZE + 1 + sizeof(struct proto_welcome)];
	struct proto_welcome w = { 0 };
	struct proto_header h;
	struct mq_attr a;
	int n;

	w.daemon_pid = (uint32_t)s->pid;
	w.max_priority = s->cfg.max_priority;
	w.max_subscriptions = s->cfg.max_subscriptions;
	w.pending_max = s->cfg.pending_max;
	if (mq_getattr(c->rx, &a) == 0) {
		w.rx_maxmsg = a.mq_maxmsg;
		w.rx_msgsize = a.mq_msgsize;
	}
	if (mq_getattr(c->tx, &a) == 0) {
		w.tx_maxmsg = a.mq_maxmsg;
		w.tx_msgsize = a.mq_msgsize;
	}
	proto_header_init(&h, PROTO_WELCOME);
	h.client_id = c->id;
	n = proto_encode(buf, sizeof(buf), &h, NULL, &w, sizeof(w));
	if (n > 0)
		client_send_control(c, buf, (size_t)n, PROTO_PRIO_MAX);
}

/* Tells a client we will not serve it, on its rx queue. */
static void handshake_error(mqd_t rx, int err, const char *text)
{
	unsigned char buf[PROTO_HEADER_SIZE + 1 + 256];
	struct proto_header h;
	int n;

	proto_header_init(&h, PROTO_ERROR);
	h.status = (uint32_t)err;
	n = proto_encode(buf, sizeof(buf), &h, NULL, text, strlen(text));
	if (n > 0)
		mq_send(rx, (const char *)buf, (size_t)n, PROTO_PRIO_MAX);
}

/*
 * ANNOUNCE only says where to look.  What we trust is what the kernel
 * says about the queues (owner, mode) and the process (alive, same uid),
 * and the HELLO, which only the owner of the tx queue can have written.
 */
static void server_handshake(struct server *s, const char *tx_name)
{
	unsigned char buf[PROTO_HEADER_SIZE + 1 + PROTO_QNAME_MAX + 1];
	char rx_name[PROTO_QNAME_MAX + 1];
	struct proto_msg hello;
	struct mq_attr attr;
	struct stat st;
	struct client *c;
	mqd_t tx, rx = (mqd_t)-1;
	int pidfd = -1, r;
	size_t stem;
	uid_t fsuid = (uid_t)-1;
	pid_t pid;
	ssize_t n;

	if (!handshake_parse_tx(s, tx_name, &pid, &stem)) {
		handshake_refuse(s, tx_name, "not a tx queue name of this bus");
		return;
	}
	if (server_find_tx(s, tx_name)) {
		handshake_refuse(s, tx_name, "already connected");
		return;
	}
	tx = mq_open(tx_name, O_RDONLY | O_NONBLOCK);
	if (tx == (mqd_t)-1) {
		handshake_refuse(s, tx_name, strerror(errno));
		return;
	}
	if (fstat(tx, &st) < 0 || (st.st_mode & (S_IWGRP | S_IWOTH))) {
		handshake_refuse(s, tx_name, "tx queue writable by others");
		goto fail;
	}
	if (mq_getattr(tx, &attr) < 0 || attr.mq_msgsize < (long)sizeof(buf)) {
		handshake_refuse(s, tx_name, "tx queue too small");
		goto fail;
	}
	/* HELLO was written before ANNOUNCE; read it with a big buffer */
	{
		struct msgbuf *m = msgbuf_get((size_t)attr.mq_msgsize);

		if (!m)
			goto fail;
		n = mq_receive(tx, (char *)m->data, m->cap, NULL);
		r = n < 0 ? -errno : proto_decode(m->data, (size_t)n, &hello);
		if (r == 0 && hello.h.type == PROTO_HELLO)
			memcpy(rx_name, hello.topic, hello.h.topic_len + 1);
		msgbuf_unref(m);
	}
	if (r < 0 || hello.h.type != PROTO_HELLO) {
		handshake_refuse(s, tx_name, r < 0 ? proto_strerror(r)
						   : "first message not HELLO");
		goto fail;
	}
	if ((pid_t)hello.h.sender_pid != pid) {
		handshake_refuse(s, tx_name, "HELLO pid does not match name");
		goto fail;
	}
	if (strlen(rx_name) != stem + 3 || strncmp(rx_name, tx_name, stem) ||
	    strcmp(rx_name + stem, ".rx") != 0) {
		handshake_refuse(s, tx_name, "rx queue name does not match");
		goto fail;
	}
	pidfd = pidfd_open_compat(pid);
	if (pidfd < 0 || proc_fsuid(pid, &fsuid) < 0 || fsuid != st.st_uid ||
	    !pidfd_alive(pidfd)) {
		handshake_refuse(s, tx_name, "process gone or of another uid");
		goto fail;
	}
	rx = mq_open(rx_name, O_WRONLY | O_NONBLOCK);
	if (rx == (mqd_t)-1) {
		handshake_refuse(s, tx_name, "cannot open rx queue");
		goto fail;
	}
	{
		struct stat rst;

		if (fstat(rx, &rst) < 0 || rst.st_uid != st.st_uid ||
		    (rst.st_mode & (S_IRGRP | S_IROTH))) {
			handshake_refuse(s, tx_name,
					 "rx queue of another owner or "
					 "readable by others");
			goto fail;
		}
	}
	if (s->n_clients >= s->cfg.max_clients) {
		char text[128];

		snprintf(text, sizeof(text),
			 "the bus has reached max_clients (%u)",
			 s->cfg.max_clients);
		handshake_error(rx, EUSERS, text);
		handshake_refuse(s, tx_name, text);
		goto fail;
	}
	r = client_new(s, s->next_client_id, st.st_uid, pid, tx_name, rx_name,
		       tx, rx, pidfd, &c);
	if (r < 0) {
		handshake_refuse(s, tx_name, strerror(-r));
		return; /* client_new closed them */
	}
	if (++s->next_client_id == 0)
		s->next_client_id = 1;
	TAILQ_INSERT_TAIL(&s->clients, c, link);
	s->n_clients++;
	s->stats.handshakes++;
	log_debug("client %u connected: pid %d uid %u %s", c->id, (int)pid,
		  (unsigned)st.st_uid, tx_name);
	server_welcome(s, c);
	/* anything already queued behind HELLO */
	server_wake_ready(s, &c->src);
	return;

fail:
	mq_close(tx);
	if (rx != (mqd_t)-1)
		mq_close(rx);
	if (pidfd >= 0)
		close(pidfd);
}

static int server_read_announce(struct server *s, unsigned budget)
{
	for (unsigned i = 0; i < budget; i++) {
		struct proto_msg pm;
		ssize_t n;
		int r;

		n = mq_receive(s->announce, (char *)s->announce_buf,
			       sizeof(s->announce_buf), NULL);
		if (n < 0) {
			if (errno == EAGAIN)
				return 0;
			log_warn("reading %s", s->announce_name);
			return 1;
		}
		r = proto_decode(s->announce_buf, (size_t)n, &pm);
		if (r < 0 || pm.h.type != PROTO_ANNOUNCE) {
			s->stats.bad_messages++;
			log_debug("bad message on %s: %s", s->announce_name,
				  r < 0 ? proto_strerror(r)
					: proto_type_name(pm.h.type));
			continue;
		}
		server_handshake(s, pm.topic);
	}
	return 1;
}

/* -------------------------------------------------------------------- */
/* routing                                                               */

struct route_ctx {
	struct msgbuf *m;
	unsigned prio;
	const struct delivery_policy *pol;
	struct client *from; /* NULL for a timer */
	uint64_t seq;
	struct request *req; /* routing a request: who received it */
	unsigned accepted;   /* subscribers that took it */
};

static void route_one(void *subscriber, void *userdata)
{
	struct route_ctx *ctx = userdata;
	struct client *c;

	/* several matching patterns, one copy */
	if (*(enum sub_kind *)subscriber == SUB_GROUP) {
		struct group *g = subscriber;

		if (g->route_seq == ctx->seq)
			return;
		g->route_seq = ctx->seq;
		c = group_deliver(g, ctx->m, ctx->prio, ctx->pol, ctx->from);
		if (!c)
			return;
	} else {
		c = subscriber;
		if (c->route_seq == ctx->seq)
			return;
		c->route_seq = ctx->seq;
		if (client_deliver(c, ctx->m, ctx->prio, ctx->pol, ctx->from) <
		    0)
			return;
	}
	ctx->accepted++;
	if (ctx->req && request_add_recipient(ctx->req, c->id) < 0)
		log_warnx("out of memory: client %u will not be allowed to "
			  "answer request %u",
			  c->id, ctx->req->id);
}

/*
 * Rewrites the message in m in place as what the daemon sends on: its
 * type, flags and token, the priority, and what the daemon knows of the
 * sender.  Returns the bus sequence number given to it.
 */
static uint64_t server_stamp(struct server *s, uid_t uid, pid_t pid,
			     uint32_t id, struct msgbuf *m,
			     enum proto_type type, uint16_t flags,
			     uint32_t token, unsigned prio)
{
	struct proto_header h;
	struct timespec now;

	clock_gettime(CLOCK_REALTIME, &now);
	memcpy(&h, m->data, sizeof(h));
	h.type = (uint8_t)type;
	h.flags = flags;
	h.priority = prio;
	h.token = token;
	h.status = 0;
	h.sender_uid = (uint32_t)uid;
	h.sender_pid = (uint32_t)pid;
	h.client_id = id;
	h.seq = ++s->seq;
	h.timestamp = (uint64_t)now.tv_sec * 1000000000u +
		      (uint64_t)now.tv_nsec;
	memcpy(m->data, &h, sizeof(h));
	return h.seq;
}

/* The mq priority and the delivery policy of a message on topic that asked
 * for requested_prio (-1: none), from the config. */
static void route_policy(struct server *s, struct route_ctx *ctx,
			 const char *topic, int requested_prio)
{
	const struct topic_rule *rule = config_rule(&s->cfg, topic);

	ctx->prio = config_rule_priority(&s->cfg, rule, requested_prio);
	ctx->pol = config_rule_policy(&s->cfg, rule);
}

/*
 * Turns the PUBLISH in m into a DELIVER in place, stamped as sent by uid,
 * pid and client id, and hands the one buffer to every matching
 * subscriber.  from is the client whose tx it came from, which the block
 * policy may hold up; NULL for a timer's message.
 */
static void server_route_from(struct server *s, struct client *from,
			      uid_t uid, pid_t pid, uint32_t id,
			      struct msgbuf *m, const char *topic,
			      int requested_prio)
{
	struct route_ctx ctx = { .m = m, .from = from };

	route_policy(s, &ctx, topic, requested_prio);
	ctx.seq = server_stamp(s, uid, pid, id, m, PROTO_DELIVER, 0, 0,
			       ctx.prio);
	s->stats.published++;
	router_match(s->router, topic, route_one, &ctx);
}

void server_route_as(struct server *s, uid_t uid, pid_t pid, uint32_t id,
		     struct msgbuf *m, const char *topic, int requested_prio)
{
	server_route_from(s, NULL, uid, pid, id, m, topic, requested_prio);
}

void server_route(struct server *s, struct client *from, struct msgbuf *m,
		  const char *topic, int requested_prio)
{
	server_route_from(s, from, from->uid, from->pid, from->id, m, topic,
			  requested_prio);
}

void server_publish(struct server *s, struct client *from, struct msgbuf *m,
		    const struct proto_msg *pm)
{
	bool retain = pm->h.flags & PROTO_F_RETAIN;
	size_t payload_len = pm->h.payload_len;
	const char *topic = pm->topic;
	struct proto_header h;
	int r;

	server_route(s, from, m, topic,
		     pm->h.flags & PROTO_F_PRIORITY ? (int)pm->h.priority : -1);
	if (!retain)
		return;
	memcpy(&h, m->data, sizeof(h));
	r = retain_set(&s->retained, topic, m, payload_len, h.priority);
	if (r < 0)
		log_warnx("client %u: value of %s not retained: %s", from->id,
			  topic,
			  r == -ENOSPC ? "too many retained values"
				       : strerror(-r));
}

/*
 * A REQUEST goes out like a PUBLISH, marked as a request with a fresh
 * request id; with nobody to take it the requester hears so at once.
 */
void server_request(struct server *s, struct client *from, struct msgbuf *m,
		    const struct proto_msg *pm)
{
	struct route_ctx ctx = { .m = m };
	char text[PROTO_TOPIC_MAX + 64];
	uint32_t token = pm->h.token;
	const char *topic = pm->topic;
	struct request *req;

	if (from->n_requests >= REQUEST_MAX_PER_CLIENT) {
		snprintf(text, sizeof(text),
			 "too many requests in flight: at most %d",
			 REQUEST_MAX_PER_CLIENT);
		client_reply(from, token, EBUSY, text);
		return;
	}
	req = request_new(s, from, token, pm->h.status);
	if (!req) {
		client_reply(from, token, ENOMEM, "out of memory");
		return;
	}
	ctx.req = req;
	ctx.from = from;
	route_policy(s, &ctx, topic,
		     pm->h.flags & PROTO_F_PRIORITY ? (int)pm->h.priority : -1);
	/* the topic stays where it is; stamping touches the header only */
	ctx.seq = server_stamp(s, from->uid, from->pid, from->id, m,
			       PROTO_DELIVER, PROTO_F_REQUEST, req->id,
			       ctx.prio);
	s->stats.requests++;
	router_match(s->router, topic, route_one, &ctx);
	if (ctx.accepted == 0) {
		request_free(req);
		s->stats.no_responders++;
		snprintf(text, sizeof(text), "no responders on topic %s",
			 topic);
		client_reply(from, token, EHOSTUNREACH, text);
	}
}

/*
 * A REPLY counts only from a client that received the request, and only
 * once; it goes to the requester alone, with the requester's own token.
 */
void server_reply(struct server *s, struct client *from, struct msgbuf *m,
		  const struct proto_msg *pm)
{
	struct request *req = request_find(&s->requests, pm->h.token);
	struct client *to;

	if (!req || !request_has_recipient(req, from->id)) {
		s->stats.replies_refused++;
		if (req) {
			/* a request it never saw: a forgery */
			client_bad(from, pm->h.token, -EPERM,
				   "reply to a request you did not receive");
		} else {
			log_debug("client %u: reply to unknown request %u "
				  "(answered or expired)",
				  from->id, pm->h.token);
		}
		return;
	}
	to = req->requester;
	server_stamp(s, from->uid, from->pid, from->id, m, PROTO_REPLY, 0,
		     req->token, 0);
	request_free(req);
	s->stats.replies++;
	client_send_buf(to, m, PROTO_PRIO_MAX);
}

void server_request_expired(struct server *s, struct request *r)
{
	struct client *to = r->requester;
	uint32_t token = r->token;

	request_free(r);
	s->stats.requests_expired++;
	client_reply(to, token, ETIMEDOUT, "no reply before the timeout");
}

/* -------------------------------------------------------------------- */
/* signals, reload, run, shutdown                                        */

static void server_reload(struct server *s)
{
	struct config loaded = { 0 };
	char *err = NULL;
	int r;

	if (!s->config_path) {
		log_info("SIGHUP: no config file to reload");
		return;
	}
	sd_notify(0, "RELOADING=1");
	r = config_load(&loaded, s->config_path, &err);
	if (r < 0) {
		log_warnx("reload failed, keeping the old config: %s",
			  err ? err : strerror(-r));
		free(err);
	} else {
		config_deinit(&s->cfg);
		s->cfg = loaded;
		log_info("reloaded %s", s->config_path);
	}
	sd_notify(0, "READY=1");
}

/*
 * Reads the signals in batches; only a full batch is followed by another
 * read, so the usual wake-up costs one read, not a second one that says
 * EAGAIN.
 */
static void server_signal(evutil_socket_t fd, short what, void *arg)
{
	struct server *s = arg;
	struct signalfd_siginfo si[16];
	ssize_t n;

	do {
		n = read(fd, si, sizeof(si));
		for (ssize_t i = 0; i < n / (ssize_t)sizeof(si[0]); i++) {
			unsigned signo = si[i].ssi_signo;

			if ((int)signo == s->wake_signo) {
				wake_signal(s->wake, &si[i]);
			} else if (signo == SIGHUP) {
				server_reload(s);
			} else if (signo == SIGTERM || signo == SIGINT) {
				log_info("signal %u: shutting down", signo);
				s->stopping = true;
				event_base_loopbreak(s->base);
				return;
			}
		}
	} while (n == (ssize_t)sizeof(si));
}

int server_run(struct server *s)
{
	struct client *c, *next;
	unsigned n;

	/* start with a drain: it arms every source */
	server_wake_ready(s, &s->announce_src);
	log_info("serving bus %s (wake-ups: %s)", s->bus,
		 wake_method_name(wake_method_of(s->wake)));
	sd_notify(0, "READY=1");
	server_notify_status(s);

	if (event_base_dispatch(s->base) < 0) {
		log_errx("event loop failed");
		s->exit_code = 1;
	}

	sd_notify(0, "STOPPING=1");
	/* no new clients; flush what fits, say goodbye, remove the queues */
	mq_unlink(s->announce_name);
	n = s->n_clients;
	TAILQ_FOREACH(c, &s->clients, link)
		client_flush(c);
	for (c = TAILQ_FIRST(&s->clients); c; c = next) {
		next = TAILQ_NEXT(c, link);
		if (!c->closing)
			client_close(c, true, "bus shutting down");
	}
	TAILQ_INIT(&s->reap);
	while ((c = TAILQ_FIRST(&s->clients)))
		server_drop_client(s, c);
	log_info("stopped; %u clients told", n);
	return s->exit_code;
}

void server_deinit(struct server *s)
{
	struct client *c;

	while ((c = TAILQ_FIRST(&s->clients)))
		server_drop_client(s, c);
	request_table_deinit(&s->requests);
	timer_set_deinit(&s->timers);
	if (s->retained.index)
		retain_deinit(&s->retained);
	wake_del(&s->announce_src);
	if (s->announce != (mqd_t)-1) {
		mq_close(s->announce);
		mq_unlink(s->announce_name);
	}
	if (s->sig_ev)
		event_free(s->sig_ev);
	if (s->drain_ev)
		event_free(s->drain_ev);
	if (s->reap_ev)
		event_free(s->reap_ev);
	if (s->rescue_ev)
		event_free(s->rescue_ev);
	if (s->sig_fd >= 0)
		close(s->sig_fd);
	s->wake = wake_free(s->wake);
	s->router = router_free(s->router);
	if (s->base)
		event_base_free(s->base);
	config_deinit(&s->cfg);
	if (s->lock_fd >= 0)
		close(s->lock_fd);
	free(s->bus);
	free(s->announce_name);
	free(s->config_path);
	msgbuf_pool_drain();
	memset(s, 0, sizeof(*s));
}
