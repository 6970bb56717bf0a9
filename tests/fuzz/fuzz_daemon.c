/* SPDX-License-Identifier: MIT */
/*
 * fuzz_daemon.c - libFuzzer target of the daemon's handling of one
 * client's input.
 *
 * The daemon runs in this process (daemon/libmqbusd.la without main.c, as
 * tests/check_server.c runs it), one bus for the whole run, and one client
 * made here by hand: its own tx and rx queues, HELLO and ANNOUNCE as
 * libmqbus would send them.  Each input is a sequence of records, each
 * written into the client's tx queue as one message:
 *
 *   u16 (little-endian) n | n & 0x7fff bytes of message
 *
 * With bit 15 of n set the message is repaired before it is sent: magic,
 * version and reserved fields set, type and flags brought into range, the
 * lengths made to agree with the bytes (and the strings NUL-terminated),
 * so that most mutations reach the handlers instead of the decoder.
 * Messages are cut at the queue's size (2048 bytes).  Between messages and
 * after the last, the loop runs (server_step()) and the client's rx queue
 * is drained; every message the daemon sends there must decode.  When the
 * daemon closes the client (BYE, too many bad messages, a disconnecting
 * overflow) the client connects again, so the next record has a peer to
 * reach.  The bus, with its retained values, timers and statistics, lives
 * across inputs like a real daemon's.  A daemon that stops reading the
 * client for 10 s while its rx is drained is reported as a hang (abort).
 *
 * The bus's config (below) sets small limits and one topic rule per
 * overflow policy, and a [policy], so those paths are reached too.
 *
 * POSIX queues are a machine-wide resource, so when run as root the target
 * moves itself into a private IPC and mount namespace with a fresh mqueue
 * file system first (MQBUS_FUZZ_NO_UNSHARE=1 turns that off, for a run
 * that is already in one: unshare -i -m, then mount -t mqueue none
 * /dev/mqueue).  It needs three queues of at most 10 x 2048 bytes.
 * MQBUS_FUZZ_WAKE=notify|thread|poll picks the wake-up back-end (poll).
 *
 * The daemon logs to stderr (a line for a client's first bad message, and
 * another when it disconnects one for too many): a few hundred bytes per
 * reconnect, gigabytes in a long run.  Run with -close_fd_mask=2
 * (fuzz_daemon.options) to drop them: this target's own messages go to a
 * copy of stderr taken before libFuzzer closes it, and libFuzzer's and the
 * sanitizers' reports to libFuzzer's own copy.
 */
#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <time.h>
#include <unistd.h>

#include "daemon/log.h"
#include "daemon/peer.h"
#include "daemon/server.h"
#include "proto/frag.h"
#include "proto/proto.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAXMSG 10
#define FUZZ_MSGSIZE 2048
#define FUZZ_HANG_SEC 10
#define FUZZ_REPAIR 0x8000u

static const char fuzz_conf[] =
	"[bus]\n"
	"max_priority = 15\n"
	"pending_max = 8\n"
	"pending_bytes = 16384\n"
	"pending_budget = 1048576\n"
	"max_clients = 16\n"
	"max_clients_per_uid = 16\n"
	"max_subscriptions = 64\n"
	"max_subscriptions_per_uid = 256\n"
	"max_requests_per_uid = 32\n"
	"max_retained = 128\n"
	"max_retained_per_uid = 128\n"
	"max_retained_bytes_per_uid = 131072\n"
	"max_timers_per_uid = 16\n"
	"timer_min_period_ms = 20\n"
	"timer_rate_per_uid = 200\n"
	"block_timeout = 1\n"
	"stats_interval = 1\n"
	"stats_topics = 4\n"
	"[topic \"a/#\"]\n"
	"overflow = coalesce\n"
	"backlog = 4\n"
	"[topic \"b/#\"]\n"
	"overflow = block\n"
	"backlog = 2\n"
	"[topic \"c/+\"]\n"
	"overflow = drop-old\n"
	"priority = 5\n"
	"ceiling = 10\n"
	"[topic \"d/#\"]\n"
	"overflow = disconnect\n"
	"backlog = 2\n"
	"[topic \"e/+/x\"]\n"
	"priority = 20\n"
	"ceiling = 30\n"
	"backlog_bytes = 4096\n"
	"[policy]\n"
	"default = allow\n"
	"deny = publish,retain,timer * topic=secret/#\n"
	"deny = subscribe,monitor * topic=secret/+/x\n"
	"allow = subscribe user=0 topic=secret/mine/x\n"
	"deny = serve,group * topic=svc/private/#\n";

static struct server fuzz_srv;
static FILE *fuzz_err; /* stderr, kept open across -close_fd_mask=2 */
static char fuzz_bus[64];
static mqd_t fuzz_announce = (mqd_t)-1;

/* the client: its queues, and what it has seen */
static struct {
	mqd_t tx, rx;
	char tx_name[PROTO_QNAME_MAX + 1];
	char rx_name[PROTO_QNAME_MAX + 1];
	unsigned n;
	bool welcomed;
	bool bye;
} fuzz_cl = { .tx = (mqd_t)-1, .rx = (mqd_t)-1 };

static struct {
	uint64_t inputs, sent, received, connects;
	uint64_t by_type[256]; /* by the type byte (FRAGMENT is 27) */
} fuzz_stats;

static void fuzz_die(const char *fmt, ...) __attribute__((format(printf, 1, 2)))
	__attribute__((noreturn));

static void fuzz_die(const char *fmt, ...)
{
	va_list ap;

	fprintf(fuzz_err, "fuzz_daemon: ");
	va_start(ap, fmt);
	vfprintf(fuzz_err, fmt, ap);
	va_end(ap);
	fputc('\n', fuzz_err);
	fflush(fuzz_err);
	abort();
}

/* A private IPC namespace with its own mqueue file system, if we may. */
static void fuzz_private_ipc(void)
{
	const char *no = getenv("MQBUS_FUZZ_NO_UNSHARE");

	if (no && *no && strcmp(no, "0") != 0)
		return;
	if (geteuid() != 0) {
		fprintf(fuzz_err, "fuzz_daemon: not root: the queues are made "
				  "in this IPC namespace\n");
		return;
	}
	if (unshare(CLONE_NEWIPC | CLONE_NEWNS) < 0 ||
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
	    mount("mqueue-fuzz", "/dev/mqueue", "mqueue",
		  MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
		fuzz_die("cannot make a private IPC namespace with an mqueue "
			 "mount: %s (MQBUS_FUZZ_NO_UNSHARE=1 to run in this "
			 "one)",
			 strerror(errno));
}

/* What the daemon sent: it must decode, and be a daemon's message. */
static void fuzz_received(const unsigned char *buf, size_t n)
{
	struct proto_msg m;
	int r = proto_decode(buf, n, &m);

	if (r < 0)
		fuzz_die("the daemon sent a message that does not decode "
			 "(%zu bytes): %s",
			 n, proto_strerror(r));
	fuzz_stats.received++;
	fuzz_stats.by_type[m.h.type]++;
	switch (m.h.type) {
	case PROTO_WELCOME:
		fuzz_cl.welcomed = true;
		break;
	case PROTO_BYE:
		fuzz_cl.bye = true;
		break;
	case PROTO_ERROR:
		if (!fuzz_cl.welcomed)
			fuzz_die("handshake refused: %.*s",
				 (int)m.h.payload_len,
				 (const char *)m.payload);
		break;
	case PROTO_BATCH: {
		/* only whole DELIVERs, each as it would come alone */
		struct proto_msg part;
		size_t off = 0;

		while ((r = proto_batch_next(&m, &off, &part)) != 0)
			if (r < 0 || part.h.type != PROTO_DELIVER)
				fuzz_die("the daemon sent a bad frame part: %s",
					 r < 0 ? proto_strerror(r)
					       : proto_type_name(part.h.type));
		break;
	}
	case PROTO_DELIVER:
	case PROTO_ACK:
	case PROTO_STATS:
	case PROTO_REPLY:
	case PROTO_TIMER_LIST:
	case PROTO_QUERY:
		break;
	default:
		fuzz_die("the daemon sent a %s to a client",
			 proto_type_name(m.h.type));
	}
}

static void fuzz_drain_rx(void)
{
	static unsigned char buf[FUZZ_MSGSIZE];
	ssize_t n;

	if (fuzz_cl.rx == (mqd_t)-1)
		return;
	while ((n = mq_receive(fuzz_cl.rx, (char *)buf, sizeof(buf), NULL)) >=
	       0)
		fuzz_received(buf, (size_t)n);
	if (errno != EAGAIN)
		fuzz_die("reading %s: %s", fuzz_cl.rx_name, strerror(errno));
}

/* One turn of the daemon's loop, then what it sent us. */
static void fuzz_pump(void)
{
	if (server_step(&fuzz_srv) < 0)
		fuzz_die("the daemon's loop stopped");
	fuzz_drain_rx();
}

/* Our peer in the daemon, or NULL once it is reaped. */
static struct peer *fuzz_peer(void)
{
	return fuzz_cl.tx == (mqd_t)-1 ? NULL
				       : peer_find_tx(&fuzz_srv.peers,
						      fuzz_cl.tx_name);
}

static bool fuzz_connected(void)
{
	struct peer *p = fuzz_peer();

	return p && !p->closing;
}

static double fuzz_now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Lets the daemon reap our closed peer, then removes our queues. */
static void fuzz_disconnect(void)
{
	double t0 = fuzz_now();

	if (fuzz_cl.tx == (mqd_t)-1)
		return;
	while (fuzz_peer()) {
		if (fuzz_connected() || fuzz_now() - t0 > FUZZ_HANG_SEC)
			fuzz_die("the daemon does not let a closed client go");
		fuzz_pump();
	}
	mq_close(fuzz_cl.tx);
	mq_close(fuzz_cl.rx);
	mq_unlink(fuzz_cl.tx_name);
	mq_unlink(fuzz_cl.rx_name);
	fuzz_cl.tx = fuzz_cl.rx = (mqd_t)-1;
}

/* A new client, as libmqbus makes one: queues, HELLO, ANNOUNCE. */
static void fuzz_connect(void)
{
	struct mq_attr attr = { .mq_maxmsg = FUZZ_MAXMSG,
				.mq_msgsize = FUZZ_MSGSIZE };
	unsigned char buf[PROTO_HEADER_SIZE + PROTO_QNAME_MAX + 1];
	struct proto_header h;
	double t0;
	int n;

	fuzz_cl.n++;
	snprintf(fuzz_cl.tx_name, sizeof(fuzz_cl.tx_name), "/%s.%d.%u.tx",
		 fuzz_bus, (int)getpid(), fuzz_cl.n);
	snprintf(fuzz_cl.rx_name, sizeof(fuzz_cl.rx_name), "/%s.%d.%u.rx",
		 fuzz_bus, (int)getpid(), fuzz_cl.n);
	fuzz_cl.rx = mq_open(fuzz_cl.rx_name,
			     O_RDONLY | O_CREAT | O_EXCL | O_NONBLOCK, 0600,
			     &attr);
	fuzz_cl.tx = mq_open(fuzz_cl.tx_name,
			     O_WRONLY | O_CREAT | O_EXCL | O_NONBLOCK, 0600,
			     &attr);
	if (fuzz_cl.rx == (mqd_t)-1 || fuzz_cl.tx == (mqd_t)-1)
		fuzz_die("cannot create %s and %s (10 x 2048 bytes): %s",
			 fuzz_cl.tx_name, fuzz_cl.rx_name, strerror(errno));
	fuzz_cl.welcomed = fuzz_cl.bye = false;

	proto_header_init(&h, PROTO_HELLO);
	h.sender_pid = (uint32_t)getpid();
	n = proto_encode(buf, sizeof(buf), &h, fuzz_cl.rx_name, NULL, 0);
	if (n < 0 || mq_send(fuzz_cl.tx, (char *)buf, (size_t)n, 0) < 0)
		fuzz_die("cannot send HELLO");
	proto_header_init(&h, PROTO_ANNOUNCE);
	h.flags = PROTO_F_BATCH; /* as libmqbus: frames on rx, please */
	n = proto_encode(buf, sizeof(buf), &h, fuzz_cl.tx_name, NULL, 0);
	if (n < 0 || mq_send(fuzz_announce, (char *)buf, (size_t)n, 0) < 0)
		fuzz_die("cannot send ANNOUNCE: %s", strerror(errno));
	t0 = fuzz_now();
	while (!fuzz_cl.welcomed) {
		if (fuzz_now() - t0 > FUZZ_HANG_SEC)
			fuzz_die("no WELCOME in %d s", FUZZ_HANG_SEC);
		fuzz_pump();
	}
	fuzz_stats.connects++;
}

/* Connected again if the daemon has closed us. */
static void fuzz_ensure_connected(void)
{
	if (fuzz_connected() && !fuzz_cl.bye)
		return;
	fuzz_disconnect();
	fuzz_connect();
}

/* The lengths and fixed fields made to agree with the n bytes at msg. */
static void fuzz_repair(unsigned char *msg, size_t n)
{
	struct proto_header h;
	size_t strings;

	if (n < PROTO_HEADER_SIZE)
		return;
	memcpy(&h, msg, sizeof(h));
	h.magic = PROTO_MAGIC;
	h.version = PROTO_VERSION;
	h.origin_len = h.shm_tag = 0;
	/* into 1..PROTO_TYPE_MAX, or a FRAGMENT (proto/frag.h) */
	if ((h.type == 0 || h.type > PROTO_TYPE_MAX) &&
	    h.type != PROTO_FRAGMENT) {
		h.type = (uint8_t)(h.type % (PROTO_TYPE_MAX + 1));
		if (h.type == 0)
			h.type = PROTO_FRAGMENT;
	}
	h.flags &= PROTO_F_ALL;
	if (h.topic_len > PROTO_TOPIC_MAX)
		h.topic_len %= PROTO_TOPIC_MAX + 1;
	strings = h.topic_len + 1u + (h.key_len ? h.key_len + 1u : 0);
	if (PROTO_HEADER_SIZE + strings > n) {
		/* no room for them all: no key, the topic what fits */
		h.key_len = 0;
		if (PROTO_HEADER_SIZE + h.topic_len + 1u > n)
			h.topic_len = (uint16_t)(n > PROTO_HEADER_SIZE
							 ? n - PROTO_HEADER_SIZE
								   - 1
							 : 0);
		strings = h.topic_len + 1u;
	}
	if (PROTO_HEADER_SIZE + strings <= n) {
		msg[PROTO_HEADER_SIZE + h.topic_len] = '\0';
		if (h.key_len)
			msg[PROTO_HEADER_SIZE + h.topic_len + 1 + h.key_len] =
				'\0';
		h.payload_len = (uint32_t)(n - PROTO_HEADER_SIZE - strings);
	}
	memcpy(msg, &h, sizeof(h));
}

/* Writes one message into tx, letting the daemon read while it is full. */
static void fuzz_send(const unsigned char *msg, size_t n)
{
	double t0 = 0;

	fuzz_ensure_connected();
	while (mq_send(fuzz_cl.tx, (const char *)msg, n, 0) < 0) {
		if (errno != EAGAIN)
			fuzz_die("writing %s: %s", fuzz_cl.tx_name,
				 strerror(errno));
		if (t0 == 0)
			t0 = fuzz_now();
		else if (fuzz_now() - t0 > FUZZ_HANG_SEC)
			fuzz_die("the daemon has not read a full tx queue "
				 "in %d s",
				 FUZZ_HANG_SEC);
		fuzz_pump();
		fuzz_ensure_connected();
	}
	fuzz_stats.sent++;
}

/* Runs the loop until the daemon has read all of tx (or closed us). */
static void fuzz_settle(void)
{
	struct mq_attr a;
	double t0 = fuzz_now();

	for (;;) {
		fuzz_pump();
		if (!fuzz_connected())
			break;
		if (mq_getattr(fuzz_cl.tx, &a) < 0)
			fuzz_die("mq_getattr %s: %s", fuzz_cl.tx_name,
				 strerror(errno));
		if (a.mq_curmsgs == 0)
			break;
		if (fuzz_now() - t0 > FUZZ_HANG_SEC)
			fuzz_die("the daemon has left %ld messages in tx for "
				 "%d s",
				 (long)a.mq_curmsgs, FUZZ_HANG_SEC);
	}
	/* what the last messages set off: deliveries, a reaping */
	fuzz_pump();
	fuzz_pump();
	if (!fuzz_connected() || fuzz_cl.bye)
		fuzz_ensure_connected();
}

static void fuzz_report(void)
{
	fprintf(fuzz_err,
		"fuzz_daemon: %llu inputs, %llu messages sent, %llu "
		"received, %llu connects, bus seq %llu, %llu bad messages\n",
		(unsigned long long)fuzz_stats.inputs,
		(unsigned long long)fuzz_stats.sent,
		(unsigned long long)fuzz_stats.received,
		(unsigned long long)fuzz_stats.connects,
		(unsigned long long)fuzz_srv.seq,
		(unsigned long long)fuzz_srv.stats.bad_messages);
	fprintf(fuzz_err, "fuzz_daemon: received by type:");
	for (unsigned t = 1; t < 256; t++)
		if (fuzz_stats.by_type[t])
			fprintf(fuzz_err, " %s=%llu", proto_type_name(t),
				(unsigned long long)fuzz_stats.by_type[t]);
	fputc('\n', fuzz_err);
	fflush(fuzz_err);
	/* the queues, when they are in a namespace that outlives us */
	if (fuzz_cl.tx != (mqd_t)-1) {
		mq_unlink(fuzz_cl.tx_name);
		mq_unlink(fuzz_cl.rx_name);
	}
	handshake_unlink(&fuzz_srv.handshake);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct server_options opt = { 0 };
	const char *wake = getenv("MQBUS_FUZZ_WAKE");
	char conf_path[64], *err = NULL;
	sigset_t unblock;
	int fd;

	(void)argc;
	(void)argv;
	fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
	fuzz_err = fd >= 0 ? fdopen(fd, "w") : NULL;
	if (!fuzz_err)
		fuzz_err = stderr;
	fuzz_private_ipc();
	snprintf(fuzz_bus, sizeof(fuzz_bus), "fuzz%d", (int)getpid());
	log_setup(LOG_TARGET_STDERR, fuzz_bus, false);

	fd = memfd_create("fuzz-daemon.conf", MFD_CLOEXEC);
	if (fd < 0 || write(fd, fuzz_conf, strlen(fuzz_conf)) !=
			      (ssize_t)strlen(fuzz_conf))
		fuzz_die("cannot write the config: %s", strerror(errno));
	snprintf(conf_path, sizeof(conf_path), "/proc/self/fd/%d", fd);

	opt.bus = fuzz_bus;
	opt.config_path = conf_path;
	opt.wake = WAKE_POLL;
	if (wake && wake_method_parse(wake, &opt.wake) < 0)
		fuzz_die("MQBUS_FUZZ_WAKE: '%s' is not notify, thread or poll",
			 wake);
	if (server_init(&fuzz_srv, &opt, &err) < 0)
		fuzz_die("server_init: %s", err ? err : "?");
	/*
	 * The daemon blocks these for its signalfd and handles them by
	 * raising them again (for its notification threads).  libFuzzer
	 * leaves a signal alone that already has a handler, and unblocked
	 * such a handler would raise its signal for ever: back to the
	 * defaults, so that libFuzzer installs its own (^C, SIGTERM and
	 * SIGUSR1 end the run with its final figures).
	 */
	sigemptyset(&unblock);
	sigaddset(&unblock, SIGINT);
	sigaddset(&unblock, SIGTERM);
	sigaddset(&unblock, SIGUSR1);
	sigaddset(&unblock, SIGHUP);
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGUSR1, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	sigprocmask(SIG_UNBLOCK, &unblock, NULL);

	fuzz_announce = mq_open(fuzz_srv.handshake.name, O_WRONLY | O_NONBLOCK);
	if (fuzz_announce == (mqd_t)-1)
		fuzz_die("cannot open %s: %s", fuzz_srv.handshake.name,
			 strerror(errno));
	atexit(fuzz_report);
	fuzz_connect();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static unsigned char msg[FUZZ_MSGSIZE];
	size_t off = 0;

	fuzz_stats.inputs++;
	while (size - off >= 2) {
		unsigned hdr = data[off] | (unsigned)data[off + 1] << 8;
		size_t len = hdr & ~FUZZ_REPAIR, n;

		off += 2;
		if (len > size - off)
			len = size - off;
		n = len < sizeof(msg) ? len : sizeof(msg);
		memcpy(msg, data + off, n);
		off += len;
		if (hdr & FUZZ_REPAIR)
			fuzz_repair(msg, n);
		fuzz_send(msg, n);
	}
	fuzz_settle();
	return 0;
}
