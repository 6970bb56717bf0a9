/* SPDX-License-Identifier: MIT */
/*
 * server.c - the bus: set-up, the loop and its signals, dispatching a
 * peer's messages by type, reaping peers, reload and shutdown.
 *
 * The map of the daemon is at the top of server.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>
#include <systemd/sd-daemon.h>

#include "daemon/bridge.h"
#include "daemon/deliver.h"
#include "daemon/large.h"
#include "daemon/introspect.h"
#include "daemon/log.h"
#include "daemon/route.h"
#include "daemon/router.h"
#include "daemon/server.h"
#include "daemon/state.h"
#include "daemon/sweep.h"
#include "proto/frag.h"
#include "proto/proto.h"

#define BUS_NAME_MAX 200

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
 * One daemon per bus and IPC namespace.  The lock is a file in a
 * directory only the daemon's uid may write ($RUNTIME_DIRECTORY under
 * systemd, /run/mqbus for root, $XDG_RUNTIME_DIR/mqbus for a user), held
 * with flock(): the kernel drops it when the process dies, so a crashed
 * daemon never blocks its successor, and no other user can take it first.
 * Without such a directory it falls back to an abstract socket, which any
 * local user could bind first (said in the log).
 */
static int server_lock_dir(char *dir, size_t size)
{
	const char *rt = getenv("RUNTIME_DIRECTORY");
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	struct stat st;

	if (rt && rt[0] == '/' && !strchr(rt, ':'))
		snprintf(dir, size, "%s", rt);
	else if (geteuid() == 0)
		snprintf(dir, size, "/run/mqbus");
	else if (xdg && xdg[0] == '/')
		snprintf(dir, size, "%s/mqbus", xdg);
	else
		return -ENOENT;
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return -errno;
	if (lstat(dir, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() ||
	    (st.st_mode & 022))
		return -EPERM;
	return 0;
}

static int server_lock_file(struct server *s, const char *ns)
{
	char dir[PATH_MAX - 128], path[PATH_MAX];
	struct stat a, b;
	const char *id;
	int r, fd;

	r = server_lock_dir(dir, sizeof(dir));
	if (r < 0)
		return r;
	/* "ipc:[4026531839]": the number tells namespaces apart */
	id = strchr(ns, '[') ? strchr(ns, '[') + 1 : "0";
	snprintf(path, sizeof(path), "%s/%s.%.*s.lock", dir, s->bus,
		 (int)strspn(id, "0123456789"), id);
	for (;;) {
		fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC,
			  0644);
		if (fd < 0)
			return -errno;
		if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
			r = errno == EWOULDBLOCK ? -EADDRINUSE : -errno;
			close(fd);
			return r;
		}
		/* the file we locked must still be the one by that name:
		 * a daemon that stopped unlinks it as it lets go */
		if (fstat(fd, &a) == 0 && stat(path, &b) == 0 &&
		    a.st_ino == b.st_ino && a.st_dev == b.st_dev)
			break;
		close(fd);
	}
	s->lock_fd = fd;
	s->lock_path = strdup(path);
	return 0;
}

static int server_lock(struct server *s)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char ns[64] = "";
	ssize_t n;
	int fd, len, r;

	n = readlink("/proc/self/ns/ipc", ns, sizeof(ns) - 1);
	if (n > 0)
		ns[n] = '\0';
	r = server_lock_file(s, ns);
	if (r != -ENOENT && r != -EPERM && r != -EACCES && r != -EROFS)
		return r;
	log_warnx("no private directory for the bus lock (%s): using an "
		  "abstract socket, which any local user could take first; "
		  "set XDG_RUNTIME_DIR or RuntimeDirectory=",
		  strerror(-r));
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

/* -------------------------------------------------------------------- */
/* signals                                                               */

/*
 * The signals we read from the signalfd are blocked in the loop's thread,
 * but glibc's SIGEV_THREAD notification threads unblock every signal for
 * a moment, and a process-directed SIGTERM may land in one of them.  This
 * handler, which only ever runs there, raises the signal for the process
 * again: it stays pending until the signalfd reads it (the notification
 * thread blocks every signal as its first act).  It keeps no state, so it
 * serves any number of buses in the process.
 */
static void server_forward_signal(int sig)
{
	int saved = errno;

	kill(getpid(), sig);
	errno = saved;
}

static void server_reload(struct server *s);
static void server_signal(evutil_socket_t fd, short what, void *arg);

static int server_setup_signals(struct server *s)
{
	struct sigaction sa = { .sa_handler = server_forward_signal };
	sigset_t mask;

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGUSR1);
	sigaddset(&mask, s->wake_signo);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
		return -errno;
	sigfillset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	if (sigaction(SIGTERM, &sa, NULL) < 0 ||
	    sigaction(SIGINT, &sa, NULL) < 0 ||
	    sigaction(SIGHUP, &sa, NULL) < 0 ||
	    sigaction(SIGUSR1, &sa, NULL) < 0)
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
			} else if (signo == SIGUSR1) {
				stats_round(s);
			} else if (signo == SIGTERM || signo == SIGINT) {
				s->stop_reason = signo == SIGTERM ? "SIGTERM"
								  : "SIGINT";
				server_stop(s);
				return;
			}
		}
	} while (n == (ssize_t)sizeof(si));
}

void server_stop(struct server *s)
{
	s->stopping = true;
	event_base_loopbreak(s->base);
}

/* -------------------------------------------------------------------- */
/* a peer's messages, and its end                                        */

typedef void (*peer_handler)(struct peer *p, struct msgbuf *m,
			     const struct proto_msg *pm);

static void server_bye(struct peer *p, struct msgbuf *m,
		       const struct proto_msg *pm)
{
	peer_close(p, false, "said goodbye");
}

/*
 * A HELLO after the handshake: a client of the previous daemon that
 * announced itself with PROTO_F_RESUME may have written one as well, or
 * a duplicate ANNOUNCE came first.  Nothing to do.
 */
static void server_hello(struct peer *p, struct msgbuf *m,
			 const struct proto_msg *pm)
{
}

static void server_message(struct peer *p, struct msgbuf *m);

/*
 * A BATCH frame of PUBLISHes: each part is handled as if it had come
 * alone, in its own buffer (routing turns it into a DELIVER in place, and
 * pending lists may keep it).  A part that does not decode is a bad
 * message; the others still count.
 */
static void server_batch(struct peer *p, struct msgbuf *m,
			 const struct proto_msg *pm)
{
	struct proto_msg part;
	size_t off = 0;
	int r;

	p->server->stats.frames_received++;
	/* its parts count against the read budget (peer_read()) */
	p->read_extra = pm->h.status - 1;
	while (!p->closing && (r = proto_batch_next(pm, &off, &part)) != 0) {
		const unsigned char *bytes = (const unsigned char *)part.topic -
					     PROTO_HEADER_SIZE;
		size_t len = proto_size_key(part.h.topic_len, part.h.key_len,
					    part.h.payload_len);
		struct msgbuf *one;

		/* a part has its payload in the frame, never in a file */
		if (r >= 0 && part.h.shm_tag)
			r = -PROTO_E_FLAGS;
		if (r < 0 || part.h.type != PROTO_PUBLISH) {
			deliver_bad(p, 0, r < 0 ? r : -PROTO_E_TYPE,
				    "batch part rejected");
			continue;
		}
		one = msgbuf_get(p->table->pool, len);
		if (!one) {
			deliver_bad(p, 0, -ENOMEM, "batch part dropped");
			continue;
		}
		memcpy(one->data, bytes, len);
		one->len = len;
		one->stat = NULL;
		one->measured = false;
		server_message(p, one);
		msgbuf_unref(one);
	}
}

/* What a client may send, by type; the rest is a bad message. */
static const peer_handler server_handlers[PROTO_TYPE_MAX + 1] = {
	[PROTO_HELLO] = server_hello,
	[PROTO_PUBLISH] = route_publish,
	[PROTO_REQUEST] = route_request,
	[PROTO_REPLY] = route_reply,
	[PROTO_SUBSCRIBE] = sub_subscribe,
	[PROTO_UNSUBSCRIBE] = sub_unsubscribe,
	[PROTO_STATS] = stats_handle,
	[PROTO_TIMER_ADD] = timer_handle,
	[PROTO_TIMER_CANCEL] = timer_handle,
	[PROTO_TIMER_LIST] = timer_handle,
	[PROTO_QUERY] = introspect_handle,
	[PROTO_BYE] = server_bye,
	[PROTO_BATCH] = server_batch,
};

/*
 * The peer table's message handler.  Every length was checked by the
 * decoder before any handler runs; the buffer stays the reader's (a
 * handler that keeps it takes a reference).
 */
static void server_message(struct peer *p, struct msgbuf *m)
{
	struct proto_msg pm;
	peer_handler handler;
	int r = proto_decode(m->data, m->len, &pm);

	if (r < 0) {
		deliver_bad(p, 0, r, "message rejected");
		return;
	}
	/* a piece of a large message; the whole comes back here */
	if (pm.h.type == PROTO_FRAGMENT) {
		large_fragment(p, &pm, server_message);
		return;
	}
	/* a payload in a memory file; the whole comes back here too */
	if (pm.h.shm_tag) {
		shm_message(p, m, &pm, server_message);
		return;
	}
	if (p->held && restart_stash(p, m, pm.h.type))
		return;
	handler = pm.h.type <= PROTO_TYPE_MAX ? server_handlers[pm.h.type]
					      : NULL;
	if (!handler) {
		deliver_bad(p, pm.h.token, -PROTO_E_TYPE,
			    proto_type_name(pm.h.type));
		return;
	}
	handler(p, m, &pm);
}

static uint64_t monotonic_usec(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000u + (uint64_t)t.tv_nsec / 1000u;
}

/* The peer table's reaper: what p holds anywhere goes with it, and the
 * journal hears its totals. */
static void server_reap_peer(struct peer *p, void *arg)
{
	struct server *s = arg;
	struct log_client who = stats_who(p);

	/* what it queued before the grace period ended: routed now */
	restart_drop_peer(p);
	sub_drop_peer(p);
	request_drop_peer(p);
	timer_drop_peer(p);
	deliver_drop_peer(p);
	large_drop_peer(p);
	shm_drop_peer(p);
	log_client_left(&who, p->close_reason ? p->close_reason : "closed",
			monotonic_usec() - p->connected_usec, &p->counts);
	account_credit(&s->accounts, p->uid, ACCOUNT_PEERS);
	policy_identity_deinit(&p->ident);
	s->stats.clients_gone++;
	peer_free(p, !p->keep_queues);
}

static void server_drop_all(struct server *s)
{
	struct peer *p;

	TAILQ_INIT(&s->peers.reap_list);
	while ((p = TAILQ_FIRST(&s->peers.all)))
		server_reap_peer(p, s);
}

/* Once a second: the wake-up safety net, and STATUS=. */
static void server_tick(evutil_socket_t fd, short what, void *arg)
{
	struct server *s = arg;
	uint64_t now = monotonic_usec();
	struct peer *p;

	TAILQ_FOREACH(p, &s->peers.all, link)
		if (p->n_blocked)
			deliver_check_blocking(p, now);
	s->stats.wakeups_rescued += wake_rescue(s->wake);
	account_clear_all(&s->accounts, ACCOUNT_QUERY_COST);
	restart_tick(&s->restart);
	large_tick(s);
	shm_tick(s);
	stats_notify_status(s);
}

/*
 * WATCHDOG=1 from the loop itself, at half the interval systemd gave: a
 * loop that is stuck (or stopped) sends nothing, and systemd restarts us.
 */
static void server_watchdog(evutil_socket_t fd, short what, void *arg)
{
	sd_notify(0, "WATCHDOG=1");
}

static int server_setup_watchdog(struct server *s)
{
	struct timeval half;
	uint64_t usec = 0;

	if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0)
		return 0;
	usec /= 2;
	half.tv_sec = (time_t)(usec / 1000000);
	half.tv_usec = (suseconds_t)(usec % 1000000);
	s->watchdog_ev = event_new(s->base, -1, EV_PERSIST, server_watchdog,
				   s);
	if (!s->watchdog_ev || event_add(s->watchdog_ev, &half) < 0)
		return -ENOMEM;
	log_info("watchdog: WATCHDOG=1 every %llu ms",
		 (unsigned long long)(usec / 1000));
	return 0;
}

/* -------------------------------------------------------------------- */
/* set-up                                                                */

static int server_load_config(struct server *s, const char *path,
			      char **ret_error)
{
	struct config loaded = { 0 };
	char *cfg_error = NULL;
	int r;

	r = config_init(&s->cfg);
	if (r < 0)
		return log_error_text(ret_error, r, "out of memory");
	if (!path)
		return 0;
	s->config_path = strdup(path);
	if (!s->config_path)
		return log_error_text(ret_error, -ENOMEM, "out of memory");
	r = config_load(&loaded, path, &cfg_error);
	if (r < 0) {
		r = log_error_text(ret_error, r, "%s",
				   cfg_error ? cfg_error : strerror(-r));
		free(cfg_error);
		return r;
	}
	config_deinit(&s->cfg);
	s->cfg = loaded;
	return 0;
}

/* A monitor's copies wait within the bus's plain backlog and are dropped
 * beyond it: a monitor never holds up or slows anyone. */
static void server_set_monitor_policy(struct server *s)
{
	s->monitor_policy = s->cfg.bus_policy;
	s->monitor_policy.overflow = OVERFLOW_DROP_NEW;
}

/* What the config bounds beyond the config itself. */
static void server_apply_config(struct server *s)
{
	server_set_monitor_policy(s);
	s->retained.max = s->cfg.max_retained;
	s->retained.accounts = &s->accounts;
	s->retained.max_per_uid = s->cfg.max_retained_per_uid;
	s->retained.max_bytes_per_uid = s->cfg.max_retained_bytes_per_uid;
}

/* Everything of s that set-up may leave half made, in a state that
 * server_deinit() accepts. */
static void server_zero(struct server *s)
{
	memset(s, 0, sizeof(*s));
	s->lock_fd = -1;
	s->sig_fd = -1;
	s->handshake.announce = (mqd_t)-1;
	s->timers.fd = -1;
	TAILQ_INIT(&s->timers.all);
	TAILQ_INIT(&s->retained.values);
	msgbuf_pool_init(&s->pool);
	shm_zero(&s->shm);
	account_table_init(&s->accounts);
	group_table_init(&s->groups);
	s->uid = getuid();
	s->pid = getpid();
	s->status_sum = UINT64_MAX; /* the first STATUS= always goes */
	clock_gettime(CLOCK_MONOTONIC, &s->started);
}

/*
 * Each client takes three descriptors (tx, rx, pidfd): the soft limit of
 * a shell (1024) would stop the bus at about 337 clients.  The hard limit
 * is ours to take.
 */
static void server_raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			log_warn("cannot raise RLIMIT_NOFILE to %llu",
				 (unsigned long long)rl.rlim_max);
	}
}

int server_init(struct server *s, const struct server_options *opt,
		char **ret_error)
{
	struct timeval one_second = { 1, 0 };
	int r;

	server_zero(s);
	server_raise_nofile();
	s->wake_signo = opt->wake_signo ? opt->wake_signo : SIGRTMIN + 1;
	if (!bus_name_valid(opt->bus))
		return log_error_text(ret_error, -EINVAL,
				      "invalid bus name '%s': use 1 to %d of "
				      "A-Z a-z 0-9 . _ -",
				      opt->bus, BUS_NAME_MAX);
	s->bus = strdup(opt->bus);
	if (!s->bus)
		return log_error_text(ret_error, -ENOMEM, "out of memory");

	r = server_lock(s);
	if (r == -EADDRINUSE)
		return log_error_text(ret_error, r,
				      "bus '%s' is already served by another "
				      "mqbusd",
				      s->bus);
	if (r < 0)
		return log_error_text(ret_error, r,
				      "cannot take the lock of bus '%s': %s",
				      s->bus, strerror(-r));
	r = server_load_config(s, opt->config_path, ret_error);
	if (r < 0)
		return r;

	s->base = event_base_new();
	s->router = router_new();
	s->monitors = router_new();
	if (!s->base || !s->router || !s->monitors ||
	    retain_init(&s->retained) < 0)
		return log_error_text(ret_error, -ENOMEM, "out of memory");
	server_apply_config(s);
	request_table_init(&s->requests, s->base, route_request_expired, s);
	s->requests.accounts = &s->accounts;
	r = wake_new(s->base, opt->wake, s->wake_signo, SERVER_READ_BUDGET,
		     &s->wake);
	if (r < 0)
		return log_error_text(
		    ret_error, r, "cannot set up wake-ups: %s", strerror(-r));
	r = peer_table_init(&s->peers, s->base, s->wake, &s->pool,
			    server_message, server_reap_peer, s);
	if (r < 0)
		return log_error_text(ret_error, r, "out of memory");
	r = server_setup_signals(s);
	if (r < 0)
		return log_error_text(ret_error, r, "cannot set up signals: %s",
				      strerror(-r));
	r = timer_set_init(s);
	if (r < 0)
		return log_error_text(ret_error, r, "cannot set up timers: %s",
				      strerror(-r));
	r = stats_init(s);
	if (r < 0)
		return log_error_text(ret_error, r, "out of memory");
	r = state_open(s, opt->state_dir, ret_error);
	if (r < 0)
		return r;
	r = bridge_start(s, ret_error);
	if (r < 0)
		return r;
	s->tick_ev = event_new(s->base, -1, EV_PERSIST, server_tick, s);
	if (!s->tick_ev || event_add(s->tick_ev, &one_second) < 0 ||
	    server_setup_watchdog(s) < 0)
		return log_error_text(ret_error, -ENOMEM, "out of memory");
	shm_init(s);

	r = sweep_stale(SWEEP_MQUEUE_DIR, s->bus);
	if (r == -ENOTSUP || r == -ENOENT)
		log_info("not sweeping stale queues: no mqueue filesystem on "
			 "%s (mount -t mqueue none %s)",
			 SWEEP_MQUEUE_DIR, SWEEP_MQUEUE_DIR);
	else if (r < 0)
		log_warnx("sweeping stale queues: %s", strerror(-r));
	else if ((r = restart_init(&s->restart, s, SWEEP_MQUEUE_DIR,
				   server_message)) < 0)
		log_warnx("looking for the previous daemon's clients: %s",
			  strerror(-r));

	return handshake_open(&s->handshake, s, ret_error);
}

/* -------------------------------------------------------------------- */
/* reload, run, shutdown                                                 */

/* The line a config_load() error names ("FILE:LINE: ..."), or 0. */
static unsigned config_error_line(const char *err, const char *path)
{
	size_t len = strlen(path);

	if (!err || strncmp(err, path, len) != 0 || err[len] != ':')
		return 0;
	return (unsigned)strtoul(err + len + 1, NULL, 10);
}

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
		log_reload_refused(s->config_path,
				   config_error_line(err, s->config_path),
				   err ? err : strerror(-r));
		free(err);
	} else {
		config_deinit(&s->cfg);
		s->cfg = loaded;
		server_apply_config(s);
		sub_reapply(s);
		bridge_reload(s);
		if (stats_reconfigure(s) < 0)
			log_warnx("reload: cannot set the stats interval");
		log_reloaded(s->config_path, (unsigned)s->cfg.n_rules);
	}
	sd_notify(0, "READY=1");
}

/* Starts serving: a first read of the announce queue arms it. */
static void server_begin(struct server *s)
{
	s->begun = true;
	wake_src_ready(&s->handshake.src);
	log_started(PACKAGE_VERSION, wake_method_name(wake_method_of(s->wake)),
		    s->config_path);
	sd_notify(0, "READY=1");
	stats_notify_status(s);
}

int server_step(struct server *s)
{
	if (s->stopping)
		return -1;
	if (!s->begun)
		server_begin(s);
	return event_base_loop(s->base, EVLOOP_NONBLOCK) < 0 ? -1 : 0;
}

int server_run(struct server *s)
{
	struct peer *p, *next;
	unsigned n;

	server_begin(s);
	if (event_base_dispatch(s->base) < 0) {
		log_errx("event loop failed");
		s->exit_code = 1;
	}

	sd_notify(0, "STOPPING=1");
	/* before the clients go: their timers stay in the file */
	state_shutdown(s->state);
	/* no new clients; flush what fits, say goodbye, remove the queues */
	handshake_unlink(&s->handshake);
	n = s->peers.count;
	log_stopping(s->stop_reason ? s->stop_reason : "asked to stop", n,
		     monotonic_usec() - ((uint64_t)s->started.tv_sec * 1000000u +
					 (uint64_t)s->started.tv_nsec / 1000u));
	/* what happened since the last round */
	if (s->cfg.stats_interval)
		stats_round(s);
	TAILQ_FOREACH(p, &s->peers.all, link)
		deliver_flush(p);
	/* a live client keeps its queues, and what it queues from now on,
	 * for the next daemon of the bus */
	for (p = TAILQ_FIRST(&s->peers.all); p; p = next) {
		next = TAILQ_NEXT(p, link);
		if (p->closing)
			continue;
		p->keep_queues = true;
		peer_close(p, true, "bus shutting down");
	}
	server_drop_all(s);
	return s->exit_code;
}

void server_deinit(struct server *s)
{
	bridge_stop(s);
	s->state = state_free(s->state);
	if (s->peers.reap_ev)
		server_drop_all(s);
	request_table_deinit(&s->requests);
	if (s->base)
		timer_set_deinit(s);
	if (s->retained.index)
		retain_deinit(&s->retained);
	restart_deinit(&s->restart);
	handshake_close(&s->handshake);
	shm_deinit(s);
	peer_table_deinit(&s->peers);
	group_table_deinit(&s->groups);
	account_table_deinit(&s->accounts);
	stats_deinit(s);
	if (s->sig_ev)
		event_free(s->sig_ev);
	if (s->tick_ev)
		event_free(s->tick_ev);
	if (s->watchdog_ev)
		event_free(s->watchdog_ev);
	if (s->sig_fd >= 0)
		close(s->sig_fd);
	s->wake = wake_free(s->wake);
	s->router = router_free(s->router);
	s->monitors = router_free(s->monitors);
	if (s->base)
		event_base_free(s->base);
	config_deinit(&s->cfg);
	if (s->lock_path) {
		/* unlinked while still held: see server_lock_file() */
		unlink(s->lock_path);
		free(s->lock_path);
	}
	if (s->lock_fd >= 0)
		close(s->lock_fd);
	free(s->bus);
	free(s->config_path);
	msgbuf_pool_deinit(&s->pool);
	memset(s, 0, sizeof(*s));
}
