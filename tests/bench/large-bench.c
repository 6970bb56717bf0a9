/* SPDX-License-Identifier: MIT */
/*
 * large-bench.c - what messages larger than a queue message cost: mqbus
 * (publisher -> mqbusd -> subscriber, in pieces both ways) against a
 * direct POSIX queue pair doing the same fragmenting (writer -> reader,
 * FRAGMENT frames of the same size, each received straight into its
 * place in one buffer, as libmqbus does), which is the limit of the
 * transport; against a direct sealed-memfd pair (the payload written into
 * a memfd, sealed, its fd passed over a unix SOCK_SEQPACKET socket, a
 * small header through a POSIX queue, the reader mapping it read-only),
 * which is the limit of a transport of large messages by memfd; and
 * against dbus-broker (a broadcast signal with a match rule, sd-bus
 * clients) where it is installed.
 *
 *   large-bench [--daemon PATH] [--sizes 16k,64k,1m,16m] [--pin CPU]
 *               [--mbytes N] [--maxmsg N] [--repeat N] [--only PATHS]
 *               [--wake notify|thread|poll] [--no-rtt] [--quick]
 *
 * For each size: throughput (messages/s and MB/s of payload, N messages
 * from one publisher to one subscriber, about --mbytes MiB in all, 1024
 * by default: a run long enough to measure each path's steady state,
 * not its start, such as mqbus's first message to a receiver, which goes
 * in pieces before the receiver registers its memory area, or the first
 * touch of each broker's buffers; 64 MiB made mqbus's 1 MiB row 1.8x
 * dbus-broker's where 1 GiB makes it 2.3x) through
 * each path (--only: any of direct,memfd,mqbus,dbus; all by default), the
 * broker's CPU time per MB carried (mqbusd's, dbus-broker's) and that of
 * every process of the path (publisher, broker, subscriber: what the
 * path costs the machine), and the round trip of the direct pair, of the
 * memfd pair and of mqbus (a request and a reply of that size, p50 and
 * p99; --no-rtt leaves them out).  The machine's speed
 * drifts between repetitions, so the paths are run in turns: repetition k
 * of every path before repetition k + 1 of any, every other repetition in
 * reverse order; the MB/s shown are medians over the repetitions, and the
 * ratios of the mqbus row (xdirect, xmemfd, xdbus: of MB/s; wdirect,
 * wmemfd, wdbus: of the CPU of every process per MB, the other's over
 * mqbus's) medians of the ratios of each repetition, with their range.
 * Queues are 4 (--maxmsg) x 8192 bytes for the direct pair, the memfd
 * pair's headers and every mqbus client; so the memfd pair, like the
 * direct one, has at most a queue's depth of messages in flight.
 *
 * It starts its own mqbusd on a bus of its own (overflow = block, so that
 * nothing is dropped and the publisher is paced by the subscriber) and
 * its own dbus-broker (peer-dbus.c: a private bus on a socket of its
 * own), whose publisher keeps at most a window of messages in flight
 * towards the subscriber (acknowledged through a pipe, not the bus), so
 * that the broker never holds more than a few MiB of it.  mqbusd's
 * backlog has the same bound (pending_bytes, 8 MiB: DBUS_WINDOW), so
 * that both brokers keep as much of the stream in their memory.
 *
 * Every receiver of every path reads every byte of every payload, in
 * throughput and round trip alike (a receiver that maps the payload must
 * not win by leaving it unread): each payload is a fixed pattern with a
 * stamp at the head of each 4 KiB page (the sequence number and the
 * page's index, so that the sender's cost is one store a page), and the
 * receiver compares all of it, a word at a time, failing the run on the
 * first message lost, cut, out of order or with any byte wrong.
 * Run it under tests/harness.sh or unshare -im for a private mqueue
 * mount.  Built by make, not installed (tests/local.mk); tests/bench/
 * README.md, "Large messages", says how to read it.
 */
#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-bus.h>

#include "client/mqbus.h"
#include "proto/frag.h"
#include "proto/proto.h"
#include "proto/shm.h"
#include "tests/bench/peer.h"

#define MSGSIZE 8192
/* RLIMIT_MSGQUEUE (800 KB a uid, shared by every process of the uid on
 * the machine) fits few queues of 10 x 8192: 4 by default (--maxmsg) */
static long MAXMSG = 4;
#define MIB (1024.0 * 1024.0)
#define REPEAT_MAX 64

static char bus[32];
static pid_t daemon_pid;
static struct peer_broker dbus_broker;
static bool dbus_up;
static pid_t main_pid; /* the brokers are ended by it alone */

enum path { PATH_DIRECT, PATH_MEMFD, PATH_MQBUS, PATH_DBUS, PATH_COUNT };
static const char *const path_names[PATH_COUNT] = { "direct", "memfd",
						    "mqbus", "dbus" };

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void stop_brokers(void)
{
	if (getpid() != main_pid)
		return;
	if (daemon_pid > 0) {
		kill(daemon_pid, SIGTERM);
		waitpid(daemon_pid, NULL, 0);
		daemon_pid = 0;
	}
	if (dbus_up) {
		kill(dbus_broker.pid, SIGTERM);
		waitpid(dbus_broker.pid, NULL, 0);
		peer_dbus_ops.cleanup(&dbus_broker);
		dbus_up = false;
	}
}

static void die(const char *what, int err)
{
	fprintf(stderr, "large-bench: %s: %s\n", what, strerror(err));
	stop_brokers();
	exit(1);
}

/* CPU seconds the (single-threaded) process pid has run, to the
 * nanosecond (/proc/PID/schedstat), where /proc/PID/stat counts ticks. */
static double cpu_of(pid_t pid)
{
	char path[64];
	unsigned long long ns = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/schedstat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	if (fscanf(f, "%llu", &ns) != 1)
		ns = 0;
	fclose(f);
	return (double)ns / 1e9;
}

/* CPU seconds this process has used. */
static double cpu_self(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* Waits for child pid, which must have exited 0; its CPU seconds. */
static double reap(pid_t pid, const char *what)
{
	struct rusage ru;
	int st;

	if (wait4(pid, &st, 0, &ru) < 0 || !WIFEXITED(st) ||
	    WEXITSTATUS(st) != 0)
		die(what, EIO);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static void start_daemon(const char *path, const char *wake)
{
	char conf[] = "/tmp/large-bench-XXXXXX", qname[80];
	/* the backlog bounded as the dbus publisher's window is (one
	 * larger message still always fits an empty backlog) */
	const char *text = "[bus]\nmax_message = 16777216\n"
			   "pending_bytes = 8388608\n"
			   "pending_budget = 1073741824\n"
			   "pending_budget_per_uid = 1073741824\n"
			   "overflow = block\nblock_timeout = 0\n"
			   "stats_interval = 0\n";
	int fd = mkstemp(conf);

	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		die("config file", errno);
	close(fd);
	snprintf(bus, sizeof(bus), "lbench%d", (int)getpid() % 1000000);
	fflush(stdout);
	daemon_pid = fork();
	if (daemon_pid < 0)
		die("fork", errno);
	if (daemon_pid == 0) {
		/* its log is kept only when asked for */
		const char *log = getenv("MQBUS_BENCH_LOG");
		int null = open(log ? log : "/dev/null",
				O_WRONLY | O_CREAT | O_TRUNC, 0644);

		if (null >= 0)
			dup2(null, 2);
		execl(path, path, "-b", bus, "-c", conf, "--log=stderr",
		      wake, (char *)NULL);
		_exit(127);
	}
	snprintf(qname, sizeof(qname), "/%s", bus);
	for (int i = 0; i < 500; i++) {
		mqd_t q = mq_open(qname, O_WRONLY);

		if (q != (mqd_t)-1) {
			mq_close(q);
			unlink(conf);
			return;
		}
		usleep(10000);
	}
	unlink(conf);
	die("mqbusd did not start (--daemon PATH?)", ETIMEDOUT);
}

/*
 * Starts the private dbus-broker (peer-dbus.c) and waits until it
 * serves.  False, having said why, if it cannot run here (not
 * installed); a broker that is there but does not start fails the run.
 */
static bool start_dbus(void)
{
	struct peer_broker *b = &dbus_broker;
	char why[300];

	memset(b, 0, sizeof(*b));
	b->peer = BENCH_PEER_DBUS;
	if (peer_dbus_ops.prepare(b, why, sizeof(why)) < 0) {
		peer_dbus_ops.cleanup(b);
		printf("# dbus-broker: %s\n", why);
		return false;
	}
	fflush(NULL);
	b->pid = fork();
	if (b->pid < 0)
		die("fork", errno);
	if (b->pid == 0) {
		int fd = open(b->log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int nul = open("/dev/null", O_RDWR);

		if (fd < 0 || nul < 0 || dup2(nul, 0) < 0 || dup2(nul, 1) < 0 ||
		    dup2(fd, 2) < 0)
			_exit(126);
		unsetenv("NOTIFY_SOCKET");
		peer_dbus_ops.exec(b);
	}
	dbus_up = true;
	for (int i = 0; i < 2000; i++) {
		int r = peer_dbus_ops.ready(b, why, sizeof(why));

		if (r == 0) {
			peer_version(BENCH_PEER_DBUS, why, sizeof(why));
			printf("# dbus-broker: %s, pid %d, on %s\n", why,
			       (int)b->cpu_pid, b->addr);
			return true;
		}
		if (r < 0 || waitpid(b->pid, NULL, WNOHANG) == b->pid) {
			fprintf(stderr, "large-bench: dbus-broker: %s (log "
					"in %s)\n",
				r < 0 ? why : "exited at start", b->log);
			dbus_up = r < 0;
			die("dbus-broker did not start", EIO);
		}
		usleep(5000);
	}
	die("dbus-broker did not serve within 10 s", ETIMEDOUT);
	return false;
}

/* A client with queues of MAXMSG x MSGSIZE, or (small) the default. */
static mqbus *connect_size(bool small)
{
	mqbus *b;
	int r = mqbus_new(&b);

	if (r == 0)
		r = mqbus_set_bus(b, bus);
	if (r == 0 && !small)
		r = mqbus_set_queue_size(b, MAXMSG, MSGSIZE);
	if (r == 0)
		r = mqbus_set_timeout(b, 60000);
	if (r == 0)
		r = mqbus_connect(b);
	if (r < 0)
		die(b ? mqbus_last_error(b) : "connect", -r);
	return b;
}

static mqbus *connect_bus(void)
{
	return connect_size(false);
}

/* A stat of the daemon, -1 if missing. */
static long long bus_stat(mqbus *b, const char *key)
{
	char *text = NULL, *p;
	long long v = -1;
	size_t kl = strlen(key);

	if (mqbus_stats(b, &text) < 0 || !text)
		return -1;
	for (p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1
						     : NULL)
		if (strncmp(p, key, kl) == 0 && p[kl] == '=') {
			v = atoll(p + kl + 1);
			break;
		}
	free(text);
	return v;
}

/* "PATH:SEQ" in the environment variable var names path's message seq. */
static bool hook_names(const char *var, enum path path, uint32_t seq)
{
	const char *env = getenv(var);
	size_t n = strlen(path_names[path]);

	return env && strncmp(env, path_names[path], n) == 0 &&
	       env[n] == ':' && strtoul(env + n + 1, NULL, 10) == seq;
}

/*
 * The test's hooks (tests/large-bench.sh), for the publisher of a
 * path's throughput run (PATH direct, memfd, mqbus or dbus): with
 * MQBUS_LARGE_BENCH_SKIP set to "PATH:SEQ" it leaves out message SEQ, as
 * a bus that lost it would; with MQBUS_LARGE_BENCH_CORRUPT set to
 * "PATH:SEQ" it sends message SEQ with one byte (corrupt_at()) flipped,
 * as a transport that damaged it would.  Either way the test sees the
 * subscriber's check fail the run.
 */
static bool skip_one(enum path path, uint32_t seq)
{
	return hook_names("MQBUS_LARGE_BENCH_SKIP", path, seq);
}

static bool corrupt_one(enum path path, uint32_t seq)
{
	return hook_names("MQBUS_LARGE_BENCH_CORRUPT", path, seq);
}

/* The byte MQBUS_LARGE_BENCH_CORRUPT flips: in the middle of the
 * payload, off the stamp of its page (8205 of 16 KiB). */
static size_t corrupt_at(size_t size)
{
	return size >= 64 ? size / 2 + 13 : size / 2;
}

/* Flips (and, called again, restores) the byte corrupt_at() of the
 * payload if the hook names this message. */
static void corrupt_flip(enum path path, unsigned char *data, size_t size,
			 uint32_t seq)
{
	if (corrupt_one(path, seq))
		data[corrupt_at(size)] ^= 0xff;
}

/*
 * The payloads.  Each 4 KiB page of a payload holds the same pattern
 * (fill()), but for its first 8 bytes: its stamp (stamp()), the message's
 * sequence number (from 0: the first 4 bytes of the payload) and the
 * page's index.  A publisher fills its buffer once and stamps it for
 * each message, one store a page; a subscriber compares every byte
 * (check_one()), so that a message lost, doubled, reordered, cut, or
 * with any byte wrong fails the run, and so that every path's receiver
 * pays for reading the whole payload.
 */
#define PAGE 4096
#define PAGE_WORDS (PAGE / sizeof(uint64_t))

static uint64_t pattern[PAGE_WORDS];

static void pattern_init(void)
{
	for (size_t j = 0; j < PAGE_WORDS; j++)
		pattern[j] = (j + 1) * 0x9e3779b97f4a7c15ull ^
			     0x6c617267652d6265ull;
}

static uint64_t stamp_word(uint32_t seq, size_t page)
{
	return (uint64_t)page << 32 | seq;
}

static void fill(unsigned char *data, size_t size)
{
	for (size_t off = 0; off < size; off += PAGE)
		memcpy(data + off, pattern,
		       size - off < PAGE ? size - off : PAGE);
}

static void stamp(unsigned char *data, size_t size, uint32_t seq)
{
	for (size_t off = 0, k = 0; off + sizeof(uint64_t) <= size;
	     off += PAGE, k++) {
		uint64_t w = stamp_word(seq, k);

		memcpy(data + off, &w, sizeof(w));
	}
}

/* Nonzero if the whole page pg differs from want anywhere: one pass of
 * 8-byte words, without a branch (the compiler makes it vector code). */
static uint64_t page_diff(const unsigned char *pg, const uint64_t *want)
{
	uint64_t d = 0;

	for (size_t j = 0; j < PAGE_WORDS; j++) {
		uint64_t w;

		memcpy(&w, pg + j * sizeof(w), sizeof(w));
		d |= w ^ want[j];
	}
	return d;
}

/* The offset of the first byte of payload p (size bytes, message seq)
 * that is not what the publisher put there, and (ret_want) what was;
 * size if none. */
static size_t first_bad(const unsigned char *p, size_t size, uint32_t seq,
			unsigned char *ret_want)
{
	uint64_t want[PAGE_WORDS];
	const unsigned char *wb = (const unsigned char *)want;

	memcpy(want, pattern, sizeof(want));
	for (size_t off = 0, k = 0; off < size; off += PAGE, k++) {
		size_t len = size - off < PAGE ? size - off : PAGE;

		want[0] = len >= sizeof(uint64_t) ? stamp_word(seq, k)
						  : pattern[0];
		if (len == PAGE ? page_diff(p + off, want) == 0
				: memcmp(p + off, want, len) == 0)
			continue;
		for (size_t i = 0; i < len; i++)
			if (p[off + i] != wb[i]) {
				*ret_want = wb[i];
				return off + i;
			}
	}
	return size;
}

/* Fails the run unless p is message seq, whole (len == size) and with
 * every byte as sent. */
static void check_one(const char *path, const void *p, size_t len,
		      size_t size, uint32_t seq)
{
	uint32_t got = seq;
	unsigned char want = 0;
	size_t bad;

	if (len >= sizeof(got))
		memcpy(&got, p, sizeof(got));
	if (len != size || got != seq) {
		fprintf(stderr,
			"large-bench: %s: message %u: %zu bytes, sequence "
			"%u (expected %zu bytes, %u)\n",
			path, seq, len, (unsigned)got, size, seq);
		die("a message lost, cut or out of order", EIO);
	}
	bad = first_bad(p, size, seq, &want);
	if (bad < size) {
		fprintf(stderr,
			"large-bench: %s: message %u: byte %zu is 0x%02x "
			"(expected 0x%02x)\n",
			path, seq, bad, ((const unsigned char *)p)[bad],
			want);
		die("a message corrupted", EIO);
	}
}

/* One throughput run of one path: the broker's CPU time per MB, and
 * that of every process of the path (publisher, broker, subscriber). */
struct tput {
	double msgs_s, mb_s, cpu_ms_per_mb, all_ms_per_mb;
};

static void tput_set(struct tput *r, size_t size, unsigned n, double secs,
		     double cpu, double all)
{
	double mb = (double)n * (double)size / MIB;

	r->msgs_s = n / secs;
	r->mb_s = mb / secs;
	r->cpu_ms_per_mb = cpu * 1000.0 / mb;
	r->all_ms_per_mb = all * 1000.0 / mb;
}

struct rtt {
	double p50_us, p99_us;
};

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void percentiles(double *v, unsigned n, struct rtt *r)
{
	qsort(v, n, sizeof(*v), cmp_double);
	r->p50_us = v[n / 2] * 1e6;
	r->p99_us = v[(n * 99) / 100 >= n ? n - 1 : (n * 99) / 100] * 1e6;
}

static double median(double *v, unsigned n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* ------------------------------------------------------------------ */
/* through mqbus                                                       */

static void bus_throughput(size_t size, unsigned n, struct tput *r)
{
	unsigned char *data = malloc(size);
	int go[2];
	mqbus *sub = connect_bus(), *mon = connect_size(true);
	double t0, t1, c0, c1, s0, s1;
	pid_t pub;
	char c = 'g';

	if (!data || pipe(go) < 0)
		die("setup", ENOMEM);
	fill(data, size);
	if (mqbus_subscribe(sub, "bench/t") < 0)
		die(mqbus_last_error(sub), EIO);
	fflush(stdout);
	pub = fork();
	if (pub == 0) {
		mqbus *b = connect_bus();

		if (read(go[0], &c, 1) != 1)
			_exit(2);
		for (unsigned i = 0; i < n; i++) {
			if (skip_one(PATH_MQBUS, i))
				continue;
			stamp(data, size, i);
			corrupt_flip(PATH_MQBUS, data, size, i);
			if (mqbus_publish(b, "bench/t", data, size, 0) < 0) {
				fprintf(stderr, "large-bench: publish: %s\n",
					mqbus_last_error(b));
				_exit(3);
			}
			corrupt_flip(PATH_MQBUS, data, size, i);
		}
		mqbus_free(b);
		_exit(0);
	}
	c0 = cpu_of(daemon_pid);
	s0 = cpu_self();
	t0 = now_s();
	if (write(go[1], &c, 1) != 1)
		die("pipe", errno);
	for (unsigned i = 0; i < n; i++) {
		mqbus_msg *m = NULL;
		size_t len = 0;
		const void *p;
		int e = mqbus_receive(sub, &m, 60000);

		if (e < 0 || !m)
			die("receive", e < 0 ? -e : ETIMEDOUT);
		p = mqbus_msg_payload(m, &len);
		if (mqbus_msg_dropped(m))
			die("a message dropped", EIO);
		check_one("mqbus", p, len, size, i);
		mqbus_msg_free(m);
	}
	t1 = now_s();
	s1 = cpu_self();
	c1 = cpu_of(daemon_pid);
	s1 += reap(pub, "the publisher failed");
	if (bus_stat(mon, "large_incomplete") > 0)
		die("incomplete messages", EIO);
	tput_set(r, size, n, t1 - t0, c1 - c0, c1 - c0 + s1 - s0);
	close(go[0]);
	close(go[1]);
	mqbus_free(mon);
	mqbus_free(sub);
	free(data);
}

static void bus_rtt(size_t size, unsigned n, struct rtt *r)
{
	unsigned char *data = malloc(size);
	double *lat = calloc(n, sizeof(double));
	mqbus *req = connect_bus(), *mon = connect_size(true);
	pid_t srv;

	if (!data || !lat)
		die("setup", ENOMEM);
	fill(data, size);
	fflush(stdout);
	srv = fork();
	if (srv == 0) {
		mqbus *b = connect_bus();

		if (mqbus_subscribe(b, "bench/rtt") < 0)
			_exit(2);
		/* each request checked and sent back as the reply */
		for (unsigned i = 0; i < n; i++) {
			mqbus_msg *m = NULL;
			const void *p;
			size_t len = 0;

			if (mqbus_receive(b, &m, 60000) < 0 || !m)
				_exit(3);
			p = mqbus_msg_payload(m, &len);
			check_one("mqbus", p, len, size, i);
			if (mqbus_reply(b, m, p, len) < 0)
				_exit(4);
			mqbus_msg_free(m);
		}
		mqbus_free(b);
		_exit(0);
	}
	while (bus_stat(mon, "subscriptions") < 1)
		usleep(1000);
	for (unsigned i = 0; i < n; i++) {
		mqbus_msg *m = NULL;
		const void *p;
		size_t len = 0;
		double t0;
		int e;

		stamp(data, size, i);
		t0 = now_s();
		e = mqbus_request(req, "bench/rtt", data, size, 60000, &m);
		if (e < 0 || !m)
			die(mqbus_last_error(req), -e);
		p = mqbus_msg_payload(m, &len);
		check_one("mqbus", p, len, size, i);
		mqbus_msg_free(m);
		lat[i] = now_s() - t0;
	}
	waitpid(srv, NULL, 0);
	percentiles(lat, n, r);
	mqbus_free(mon);
	mqbus_free(req);
	free(lat);
	free(data);
}

/* ------------------------------------------------------------------ */
/* the pairs' queues                                                   */

/*
 * The other process of a pair (a child of the main process; 0 in the
 * child itself, whose other is its parent).  A process of a pair blocked
 * on a queue looks every second whether the other is still there: one
 * that failed a check must fail the run, not leave the other waiting
 * forever on a queue that nobody reads or fills.
 */
static pid_t pair_other;

static void pair_check(void)
{
	if (getpid() != main_pid) {
		if (getppid() != main_pid)
			_exit(1); /* the main process is gone */
		return;
	}
	if (pair_other > 0 &&
	    waitpid(pair_other, NULL, WNOHANG) == pair_other) {
		pair_other = 0;
		die("the other process of the pair failed", EIO);
	}
}

/* The CLOCK_REALTIME time a second from now, for mq_timed*(): taken
 * once a message, not once a piece. */
static struct timespec pair_deadline(void)
{
	struct timespec t;

	clock_gettime(CLOCK_REALTIME, &t);
	t.tv_sec += 1;
	return t;
}

/* mq_send(), and mq_receive() (its length), watching the other process
 * of the pair while blocked. */
static void pair_send(mqd_t q, const void *buf, size_t len,
		      struct timespec *until)
{
	while (mq_timedsend(q, buf, len, 0, until) < 0) {
		if (errno == ETIMEDOUT) {
			pair_check();
			*until = pair_deadline();
		} else if (errno != EINTR) {
			die("mq_send", errno);
		}
	}
}

static size_t pair_receive(mqd_t q, void *buf, struct timespec *until)
{
	ssize_t n;

	while ((n = mq_timedreceive(q, buf, MSGSIZE, NULL, until)) < 0) {
		if (errno == ETIMEDOUT) {
			pair_check();
			*until = pair_deadline();
		} else if (errno != EINTR) {
			die("mq_receive", errno);
		}
	}
	return (size_t)n;
}

static mqd_t direct_open(const char *name, int flags)
{
	struct mq_attr a = { .mq_maxmsg = MAXMSG, .mq_msgsize = MSGSIZE };
	mqd_t q = mq_open(name, flags | O_CREAT, 0600, &a);

	if (q == (mqd_t)-1)
		die(name, errno);
	return q;
}

/* The reader of a throughput run: forked with done's write end, it
 * writes a byte there when it has taken every message; the writer reads
 * it, or end of file if the reader failed. */
static void pair_done(int done[2], pid_t reader)
{
	char c;

	if (read(done[0], &c, 1) != 1) {
		pair_other = 0;
		waitpid(reader, NULL, 0);
		die("the reader of the pair failed", EIO);
	}
	pair_other = 0;
	close(done[0]);
}

/* ------------------------------------------------------------------ */
/* the direct pair                                                     */

/*
 * Sends a whole message of size bytes in pieces, as libmqbus does: the
 * whole message is encoded (here: the payload copied behind a header
 * and a topic, into a buffer with room for a fragment header in
 * front), and each fragment goes from that buffer, its header written
 * in place over the bytes before its piece, which are put back after.
 */
static void direct_send(mqd_t q, unsigned char *enc, const void *payload,
			size_t size, uint32_t id)
{
	size_t chunk = frag_chunk(MSGSIZE), total;
	unsigned char save[FRAG_OVERHEAD], *msg = enc + FRAG_OVERHEAD;
	struct timespec until = pair_deadline();
	struct proto_header h;
	int n;

	proto_header_init(&h, PROTO_PUBLISH);
	h.token = id;
	n = proto_encode(msg, proto_size(7, size), &h, "bench/t", payload,
			 size);
	if (n < 0)
		die("direct encode", EINVAL);
	total = (size_t)n;
	for (size_t off = 0; off < total; off += chunk) {
		size_t len = total - off < chunk ? total - off : chunk;
		unsigned char *at = msg + off - FRAG_OVERHEAD;

		memcpy(save, at, FRAG_OVERHEAD);
		frag_header(at, id, off, total, 0, len);
		pair_send(q, at, FRAG_OVERHEAD + len, &until);
		memcpy(at, save, FRAG_OVERHEAD);
	}
}

/*
 * Receives one whole message into buf (room for the whole encoded
 * message and a fragment header in front), as libmqbus does: each
 * fragment read straight into its place, the bytes its header lands on
 * saved before and put back after.  Returns the payload.
 */
static const unsigned char *direct_recv(mqd_t q, unsigned char *buf,
					size_t size)
{
	unsigned char save[FRAG_OVERHEAD];
	unsigned char *msg = buf + FRAG_OVERHEAD;
	size_t have = 0, total = 0;
	struct timespec until = pair_deadline();
	struct proto_msg pm;

	do {
		unsigned char *at = msg + have - FRAG_OVERHEAD;
		struct proto_header h;
		size_t n;

		memcpy(save, at, FRAG_OVERHEAD);
		n = pair_receive(q, at, &until);
		if (n < FRAG_OVERHEAD)
			die("direct receive", EPROTO);
		memcpy(&h, at, sizeof(h));
		memcpy(at, save, FRAG_OVERHEAD);
		if (h.type != PROTO_FRAGMENT || h.seq != have ||
		    (total && h.timestamp != total) ||
		    h.payload_len != n - FRAG_OVERHEAD)
			die("direct receive: a fragment out of place", EPROTO);
		total = h.timestamp;
		have += h.payload_len;
	} while (have < total);
	if (proto_decode(msg, total, &pm) < 0 || pm.h.payload_len != size)
		die("direct receive: not the message sent", EPROTO);
	return pm.payload;
}

/* A buffer for a whole encoded message of size bytes of payload, with
 * room for a fragment header in front and, behind, for the queue's
 * message size from the last piece on (mq_receive() wants as much). */
static unsigned char *direct_buf(size_t size)
{
	unsigned char *b =
		malloc(FRAG_OVERHEAD + proto_size(7, size) + MSGSIZE);

	if (!b)
		die("malloc", ENOMEM);
	return b;
}

static void direct_throughput(size_t size, unsigned n, struct tput *r)
{
	char name[48];
	unsigned char *payload = malloc(size), *enc = direct_buf(size);
	mqd_t q;
	pid_t rd;
	double t0, t1, s0, s1;
	int done[2];

	if (!payload || pipe(done) < 0)
		die("setup", ENOMEM);
	fill(payload, size);
	snprintf(name, sizeof(name), "/%s.direct", bus);
	q = direct_open(name, O_RDWR);
	fflush(stdout);
	rd = fork();
	if (rd < 0)
		die("fork", errno);
	if (rd == 0) {
		unsigned char *buf = direct_buf(size);

		close(done[0]);
		for (unsigned i = 0; i < n; i++)
			check_one("direct", direct_recv(q, buf, size), size,
				  size, i);
		if (write(done[1], "d", 1) != 1)
			_exit(2);
		_exit(0);
	}
	close(done[1]);
	pair_other = rd;
	s0 = cpu_self();
	t0 = now_s();
	for (unsigned i = 0; i < n; i++) {
		if (skip_one(PATH_DIRECT, i))
			continue;
		stamp(payload, size, i);
		corrupt_flip(PATH_DIRECT, payload, size, i);
		direct_send(q, enc, payload, size, i + 1);
		corrupt_flip(PATH_DIRECT, payload, size, i);
	}
	pair_done(done, rd);
	t1 = now_s();
	s1 = cpu_self();
	s1 += reap(rd, "the direct reader failed");
	mq_close(q);
	mq_unlink(name);
	tput_set(r, size, n, t1 - t0, 0, s1 - s0);
	free(enc);
	free(payload);
}

/* A request and a reply of size bytes, n times: the echo checks each
 * request and sends it back, the requester checks the reply. */
static void direct_rtt(size_t size, unsigned n, struct rtt *r)
{
	char ping_name[48], pong_name[48];
	unsigned char *payload = malloc(size), *enc = direct_buf(size);
	unsigned char *buf = direct_buf(size);
	double *lat = calloc(n, sizeof(double));
	mqd_t ping, pong;
	pid_t echo;

	if (!payload || !lat)
		die("setup", ENOMEM);
	fill(payload, size);
	snprintf(ping_name, sizeof(ping_name), "/%s.ping", bus);
	snprintf(pong_name, sizeof(pong_name), "/%s.pong", bus);
	ping = direct_open(ping_name, O_RDWR);
	pong = direct_open(pong_name, O_RDWR);
	fflush(stdout);
	echo = fork();
	if (echo < 0)
		die("fork", errno);
	if (echo == 0) {
		for (unsigned i = 0; i < n; i++) {
			const unsigned char *p = direct_recv(ping, buf, size);

			check_one("direct", p, size, size, i);
			direct_send(pong, enc, p, size, i + 1);
		}
		_exit(0);
	}
	pair_other = echo;
	for (unsigned i = 0; i < n; i++) {
		double t0;

		stamp(payload, size, i);
		t0 = now_s();
		direct_send(ping, enc, payload, size, i + 1);
		check_one("direct", direct_recv(pong, buf, size), size, size,
			  i);
		lat[i] = now_s() - t0;
	}
	pair_other = 0;
	reap(echo, "the direct echo failed");
	mq_close(ping);
	mq_close(pong);
	mq_unlink(ping_name);
	mq_unlink(pong_name);
	percentiles(lat, n, r);
	free(lat);
	free(buf);
	free(enc);
	free(payload);
}

/* ------------------------------------------------------------------ */
/* the memfd pair                                                      */

/*
 * What the transport of large messages by sealed memfd does, with
 * nothing around it: the sender writes the payload into a new memfd (its
 * one copy), seals it against any change of size or content, sends its
 * fd over a unix SOCK_SEQPACKET socket (SCM_RIGHTS, a 4-byte tag), closes
 * it, and sends a small header (struct memfd_note) through a POSIX
 * queue, which bounds the messages in flight as the direct pair's queue
 * does.  The receiver takes the header from its queue, the fd from its
 * socket (the tags must agree), checks the memfd's size and seals, reads
 * the payload into its buffer with pread() and closes the fd.  Both ends
 * use libmqbus's own helpers (proto/shm.c), so the pair does exactly what
 * mqbus's publisher and subscriber do, without mqbusd between them.
 */
struct memfd_note {
	uint32_t tag;
	uint32_t flags;
	uint64_t size;
};

/*
 * Sends size bytes of payload as message tag (not 0) the way libmqbus
 * does (proto/shm.c): a sealed memfd with the payload, its fd over sock
 * (waiting while the socket is full), the header through q.
 */
static void memfd_send(mqd_t q, int sock, const void *payload, size_t size,
		       uint32_t tag)
{
	struct memfd_note note = { .tag = tag, .size = size };
	struct timespec until;
	int fd = shm_create(payload, size), r;

	if (fd < 0)
		die("memfd: a sealed memfd", -fd);
	while ((r = shm_send(sock, tag, fd)) == -EAGAIN) {
		struct pollfd pfd = { .fd = sock, .events = POLLOUT };

		pair_check();
		poll(&pfd, 1, 1000);
	}
	if (r < 0)
		die("memfd: sendmsg", -r);
	close(fd);
	until = pair_deadline();
	pair_send(q, &note, sizeof(note), &until);
}

/* A message received: its payload, read into the receiver's buffer
 * (valid until the next memfd_recv()). */
struct memfd_in {
	const unsigned char *p;
	size_t len;
};

/*
 * Receives the next message into *ret the way libmqbus does: its
 * header, the fd of the same tag, the memfd checked (seals, size) and
 * read with pread() into a buffer, the fd closed.  Which message it is,
 * the caller's check_one() sees from the payload.
 */
static void memfd_recv(mqd_t q, int sock, struct memfd_in *ret)
{
	static unsigned char *in;
	static size_t cap;
	static struct shm_stash stash;
	char buf[MSGSIZE];
	struct memfd_note note;
	struct timespec until = pair_deadline();
	size_t done = 0;
	int fd, r;

	if (pair_receive(q, buf, &until) != sizeof(note))
		die("memfd: a header of another size", EPROTO);
	memcpy(&note, buf, sizeof(note));
	if (note.size == 0 || note.size > SIZE_MAX)
		die("memfd: a header without a size", EPROTO);
	fd = shm_take(sock, &stash, note.tag);
	if (fd < 0)
		die("memfd: not the fd of the header", -fd);
	r = shm_check(fd, (size_t)note.size);
	if (r < 0)
		die(r == -EPERM ? "memfd: not sealed against changes"
				: "memfd: not the size of its header",
		    -r);
	if (cap < note.size) {
		free(in);
		cap = (size_t)note.size;
		in = malloc(cap);
		if (!in)
			die("memfd: a receive buffer", ENOMEM);
	}
	while (done < note.size) {
		ssize_t n = pread(fd, in + done, (size_t)note.size - done,
				  (off_t)done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			die("memfd: pread", n < 0 ? errno : EIO);
		done += (size_t)n;
	}
	close(fd);
	ret->p = in;
	ret->len = (size_t)note.size;
}

/* The socket pair that carries a memfd pair's fds. */
static void memfd_socketpair(int sv[2])
{
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		die("socketpair", errno);
}

static void memfd_throughput(size_t size, unsigned n, struct tput *r)
{
	char name[48];
	unsigned char *payload = malloc(size);
	mqd_t q;
	pid_t rd;
	double t0, t1, s0, s1;
	int done[2], sv[2];

	if (!payload || pipe(done) < 0)
		die("setup", ENOMEM);
	fill(payload, size);
	memfd_socketpair(sv);
	snprintf(name, sizeof(name), "/%s.memfd", bus);
	q = direct_open(name, O_RDWR);
	fflush(stdout);
	rd = fork();
	if (rd < 0)
		die("fork", errno);
	if (rd == 0) {
		close(done[0]);
		close(sv[0]);
		for (unsigned i = 0; i < n; i++) {
			struct memfd_in in;

			memfd_recv(q, sv[1], &in);
			check_one("memfd", in.p, in.len, size, i);
		}
		if (write(done[1], "d", 1) != 1)
			_exit(2);
		_exit(0);
	}
	close(done[1]);
	close(sv[1]);
	pair_other = rd;
	s0 = cpu_self();
	t0 = now_s();
	for (unsigned i = 0; i < n; i++) {
		if (skip_one(PATH_MEMFD, i))
			continue;
		stamp(payload, size, i);
		corrupt_flip(PATH_MEMFD, payload, size, i);
		memfd_send(q, sv[0], payload, size, i + 1);
		corrupt_flip(PATH_MEMFD, payload, size, i);
	}
	pair_done(done, rd);
	t1 = now_s();
	s1 = cpu_self();
	s1 += reap(rd, "the memfd reader failed");
	close(sv[0]);
	mq_close(q);
	mq_unlink(name);
	tput_set(r, size, n, t1 - t0, 0, s1 - s0);
	free(payload);
}

/* A request and a reply of size bytes, n times, each through a memfd of
 * its own: the echo checks each request and writes it from its mapping
 * into the reply's memfd, the requester checks the reply. */
static void memfd_rtt(size_t size, unsigned n, struct rtt *r)
{
	char ping_name[48], pong_name[48];
	unsigned char *payload = malloc(size);
	double *lat = calloc(n, sizeof(double));
	mqd_t ping, pong;
	pid_t echo;
	int sv[2];

	if (!payload || !lat)
		die("setup", ENOMEM);
	fill(payload, size);
	memfd_socketpair(sv);
	snprintf(ping_name, sizeof(ping_name), "/%s.mping", bus);
	snprintf(pong_name, sizeof(pong_name), "/%s.mpong", bus);
	ping = direct_open(ping_name, O_RDWR);
	pong = direct_open(pong_name, O_RDWR);
	fflush(stdout);
	echo = fork();
	if (echo < 0)
		die("fork", errno);
	if (echo == 0) {
		close(sv[0]);
		for (unsigned i = 0; i < n; i++) {
			struct memfd_in in;

			memfd_recv(ping, sv[1], &in);
			check_one("memfd", in.p, in.len, size, i);
			memfd_send(pong, sv[1], in.p, in.len, i + 1);
		}
		_exit(0);
	}
	close(sv[1]);
	pair_other = echo;
	for (unsigned i = 0; i < n; i++) {
		struct memfd_in in;
		double t0;

		stamp(payload, size, i);
		t0 = now_s();
		memfd_send(ping, sv[0], payload, size, i + 1);
		memfd_recv(pong, sv[0], &in);
		check_one("memfd", in.p, in.len, size, i);
		lat[i] = now_s() - t0;
	}
	pair_other = 0;
	reap(echo, "the memfd echo failed");
	close(sv[0]);
	mq_close(ping);
	mq_close(pong);
	mq_unlink(ping_name);
	mq_unlink(pong_name);
	percentiles(lat, n, r);
	free(lat);
	free(payload);
}

/* ------------------------------------------------------------------ */
/* through dbus-broker                                                 */

#define DBUS_PATH "/org/mqbus/large"
#define DBUS_IFACE "org.mqbus.Large"

static sd_bus *dbus_open(void)
{
	const char *unique;
	sd_bus *b = NULL;
	int r = sd_bus_new(&b);

	if (r >= 0)
		r = sd_bus_set_address(b, dbus_broker.addr);
	if (r >= 0)
		r = sd_bus_set_bus_client(b, 1);
	if (r >= 0)
		r = sd_bus_start(b);
	if (r >= 0)
		r = sd_bus_get_unique_name(b, &unique);
	if (r < 0)
		die("dbus: connect", -r);
	return b;
}

/* Messages of size bytes the dbus publisher may have in flight: about
 * 8 MiB (mqbusd's pending_bytes in start_daemon()), at least 2, at most
 * 64. */
static unsigned dbus_window(size_t size)
{
	size_t w = (8u << 20) / size;

	return w < 2 ? 2 : w > 64 ? 64 : (unsigned)w;
}

/* The publisher: emits the signal Data ("ay") n times, at most a window
 * of them unacknowledged by the subscriber (one byte on ack each). */
static void dbus_publisher(size_t size, unsigned n, int go, int ack)
{
	unsigned char *data = malloc(size);
	unsigned window = dbus_window(size), acked = 0;
	sd_bus *b = dbus_open();
	char c;

	if (!data || read(go, &c, 1) != 1)
		_exit(2);
	fill(data, size);
	for (unsigned i = 0; i < n; i++) {
		sd_bus_message *m = NULL;
		uint64_t queued = 0;
		int r;

		while (i - acked >= window) {
			if (read(ack, &c, 1) != 1)
				_exit(3);
			acked++;
		}
		if (skip_one(PATH_DBUS, i)) {
			acked++; /* never to be acknowledged */
			continue;
		}
		stamp(data, size, i);
		corrupt_flip(PATH_DBUS, data, size, i);
		r = sd_bus_message_new_signal(b, &m, DBUS_PATH, DBUS_IFACE,
					      "Data");
		if (r >= 0)
			r = sd_bus_message_append_array(m, 'y', data, size);
		corrupt_flip(PATH_DBUS, data, size, i);
		if (r >= 0)
			r = sd_bus_send(b, m, NULL);
		sd_bus_message_unref(m);
		if (r >= 0 && sd_bus_get_n_queued_write(b, &queued) >= 0 &&
		    queued > 0)
			r = sd_bus_flush(b);
		if (r < 0) {
			fprintf(stderr, "large-bench: dbus: emit: %s\n",
				strerror(-r));
			_exit(4);
		}
	}
	/* every one taken before the connection goes */
	while (acked < n) {
		if (read(ack, &c, 1) != 1)
			_exit(3);
		acked++;
	}
	sd_bus_flush_close_unref(b);
	free(data);
	_exit(0);
}

struct dbus_sink {
	size_t size;
	unsigned got;
	int ack;
};

static int on_data(sd_bus_message *m, void *userdata, sd_bus_error *err)
{
	struct dbus_sink *s = userdata;
	const void *p = NULL;
	size_t len = 0;
	int r = sd_bus_message_read_array(m, 'y', &p, &len);

	if (r < 0)
		die("dbus: a signal without its bytes", -r);
	check_one("dbus", p, len, s->size, s->got);
	s->got++;
	if (write(s->ack, "a", 1) != 1)
		die("dbus: ack", errno);
	return 1;
}

static void dbus_throughput(size_t size, unsigned n, struct tput *r)
{
	struct dbus_sink s = { .size = size };
	int go[2], ack[2];
	sd_bus *b = dbus_open();
	double t0, t1, c0, c1, s0, s1;
	pid_t pub;

	if (pipe(go) < 0 || pipe(ack) < 0)
		die("pipe", errno);
	s.ack = ack[1];
	/* synchronous: the broker has the rule before the go */
	if (sd_bus_match_signal(b, NULL, NULL, DBUS_PATH, DBUS_IFACE, "Data",
				on_data, &s) < 0)
		die("dbus: AddMatch", EIO);
	fflush(stdout);
	pub = fork();
	if (pub < 0)
		die("fork", errno);
	if (pub == 0) {
		close(go[1]);
		close(ack[1]);
		dbus_publisher(size, n, go[0], ack[0]);
	}
	close(go[0]);
	close(ack[0]);
	c0 = cpu_of(dbus_broker.cpu_pid);
	s0 = cpu_self();
	t0 = now_s();
	if (write(go[1], "g", 1) != 1)
		die("pipe", errno);
	while (s.got < n) {
		int e = sd_bus_process(b, NULL);

		if (e == 0)
			e = sd_bus_wait(b, 60 * 1000000ull);
		if (e < 0 && e != -EINTR)
			die("dbus: subscriber", -e);
	}
	t1 = now_s();
	s1 = cpu_self();
	c1 = cpu_of(dbus_broker.cpu_pid);
	s1 += reap(pub, "the dbus publisher failed");
	tput_set(r, size, n, t1 - t0, c1 - c0, c1 - c0 + s1 - s0);
	close(go[1]);
	close(ack[1]);
	sd_bus_flush_close_unref(b);
}

/* ------------------------------------------------------------------ */

static size_t parse_size(const char *s)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);

	if (*end == 'k' || *end == 'K')
		v *= 1024;
	else if (*end == 'm' || *end == 'M')
		v *= 1024 * 1024;
	return v;
}

static unsigned parse_paths(const char *s)
{
	char list[128], *tok, *save;
	unsigned mask = 0;

	snprintf(list, sizeof(list), "%s", s);
	for (tok = strtok_r(list, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		unsigned i;

		for (i = 0; i < PATH_COUNT; i++)
			if (strcmp(tok, path_names[i]) == 0)
				break;
		if (i == PATH_COUNT) {
			fprintf(stderr, "large-bench: no path %s (direct, "
					"memfd, mqbus, dbus)\n",
				tok);
			exit(2);
		}
		mask |= 1u << i;
	}
	return mask;
}

static void run_path(enum path path, size_t size, unsigned n,
		     struct tput *r)
{
	switch (path) {
	case PATH_DIRECT:
		direct_throughput(size, n, r);
		break;
	case PATH_MEMFD:
		memfd_throughput(size, n, r);
		break;
	case PATH_MQBUS:
		bus_throughput(size, n, r);
		break;
	default:
		dbus_throughput(size, n, r);
		break;
	}
}

/* The median of a path's figure over the repetitions. */
static double median_of(struct tput *t, unsigned reps, size_t field)
{
	double v[REPEAT_MAX];

	for (unsigned k = 0; k < reps; k++)
		v[k] = *(double *)((char *)&t[k] + field);
	return median(v, reps);
}

/* "0.55 (0.50-0.61)": the median of num's field over den's, paired by
 * repetition, and its range; "-" without both. */
static void ratio_cell(char *buf, size_t len, struct tput *num,
		       struct tput *den, size_t field, unsigned reps,
		       bool have)
{
	double v[REPEAT_MAX];

	if (!have) {
		snprintf(buf, len, "-");
		return;
	}
	for (unsigned k = 0; k < reps; k++)
		v[k] = *(double *)((char *)&num[k] + field) /
		       *(double *)((char *)&den[k] + field);
	qsort(v, reps, sizeof(*v), cmp_double);
	if (reps == 1)
		snprintf(buf, len, "%.2f", v[0]);
	else
		snprintf(buf, len, "%.2f (%.2f-%.2f)", median(v, reps), v[0],
			 v[reps - 1]);
}

#define ROW_FORMAT                                                      \
	"%-5s %-6s %8s %7s %6s %6s %7s %7s  %-17s %-17s %-17s %-17s %-17s " \
	"%s\n"

/* The ratios of the mqbus row: to which path, of which figure. */
static const struct {
	const char *name;
	enum path other;
	bool work; /* of CPU per MB (the other's over mqbus's), not MB/s */
} ratios[] = {
	{ "xdirect", PATH_DIRECT, false }, { "xmemfd", PATH_MEMFD, false },
	{ "xdbus", PATH_DBUS, false },	   { "wdirect", PATH_DIRECT, true },
	{ "wmemfd", PATH_MEMFD, true },	   { "wdbus", PATH_DBUS, true },
};
#define RATIOS (sizeof(ratios) / sizeof(ratios[0]))

static void print_head(void)
{
	printf("# MB/s: median over the repetitions; cpu: the broker's CPU "
	       "ms per MB, all: every process's (publisher, broker, "
	       "subscriber); every receiver reads every byte\n# xdirect, "
	       "xmemfd, xdbus: median (range) of mqbus's MB/s over the "
	       "other's, paired by repetition; wdirect, wmemfd, wdbus: of "
	       "the other's CPU per MB (all) over mqbus's\n");
	printf(ROW_FORMAT, "size", "path", "msgs/s", "MB/s", "cpu", "all",
	       "p50 us", "p99 us", ratios[0].name, ratios[1].name,
	       ratios[2].name, ratios[3].name, ratios[4].name,
	       ratios[5].name);
}

/* A path's row; the mqbus row carries the ratios to the others. */
static void print_row(const char *size, enum path path,
		      struct tput t[PATH_COUNT][REPEAT_MAX], unsigned reps,
		      const struct rtt *rt, const bool have[PATH_COUNT])
{
	char f[4][16] = { "-", "-", "-", "-" }, x[RATIOS][40], mb[16], all[16];
	struct tput *me = t[path];

	snprintf(f[0], sizeof(f[0]), "%.0f",
		 median_of(me, reps, offsetof(struct tput, msgs_s)));
	if (path == PATH_MQBUS || path == PATH_DBUS)
		snprintf(f[1], sizeof(f[1]), "%.2f",
			 median_of(me, reps,
				   offsetof(struct tput, cpu_ms_per_mb)));
	if (rt && rt->p50_us > 0) {
		snprintf(f[2], sizeof(f[2]), "%.0f", rt->p50_us);
		snprintf(f[3], sizeof(f[3]), "%.0f", rt->p99_us);
	}
	for (unsigned i = 0; i < RATIOS; i++) {
		struct tput *o = t[ratios[i].other];

		if (path != PATH_MQBUS)
			snprintf(x[i], sizeof(x[i]), "-");
		else if (ratios[i].work)
			ratio_cell(x[i], sizeof(x[i]), o, me,
				   offsetof(struct tput, all_ms_per_mb), reps,
				   have[ratios[i].other]);
		else
			ratio_cell(x[i], sizeof(x[i]), me, o,
				   offsetof(struct tput, mb_s), reps,
				   have[ratios[i].other]);
	}
	snprintf(mb, sizeof(mb), "%.1f",
		 median_of(me, reps, offsetof(struct tput, mb_s)));
	snprintf(all, sizeof(all), "%.2f",
		 median_of(me, reps, offsetof(struct tput, all_ms_per_mb)));
	printf(ROW_FORMAT, size, path_names[path], f[0], mb, f[1], all, f[2],
	       f[3], x[0], x[1], x[2], x[3], x[4], x[5]);
}

int main(int argc, char **argv)
{
	const char *daemon = getenv("MQBUS_BENCH_DAEMON");
	const char *sizes = "16k,64k,1m,16m";
	char wake[32] = "--wake=notify";
	double mbytes = 1024;
	unsigned reps = 1, paths = (1u << PATH_COUNT) - 1;
	bool with_rtt = true;
	int pin = -1;
	char list[256], *tok, *save;

	main_pid = getpid();
	pattern_init();
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--daemon") == 0 && i + 1 < argc)
			daemon = argv[++i];
		else if (strcmp(argv[i], "--sizes") == 0 && i + 1 < argc)
			sizes = argv[++i];
		else if (strcmp(argv[i], "--pin") == 0 && i + 1 < argc)
			pin = atoi(argv[++i]);
		else if (strcmp(argv[i], "--mbytes") == 0 && i + 1 < argc)
			mbytes = atof(argv[++i]);
		else if (strcmp(argv[i], "--maxmsg") == 0 && i + 1 < argc)
			MAXMSG = atol(argv[++i]);
		else if (strcmp(argv[i], "--repeat") == 0 && i + 1 < argc)
			reps = (unsigned)atoi(argv[++i]);
		else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc)
			paths = parse_paths(argv[++i]);
		else if (strcmp(argv[i], "--wake") == 0 && i + 1 < argc)
			snprintf(wake, sizeof(wake), "--wake=%s", argv[++i]);
		else if (strcmp(argv[i], "--no-rtt") == 0)
			with_rtt = false;
		else if (strcmp(argv[i], "--quick") == 0)
			mbytes = 16;
		else {
			fprintf(stderr,
				"usage: large-bench [--daemon PATH] [--sizes "
				"16k,64k,1m,16m] [--pin CPU] [--mbytes N] "
				"[--maxmsg N] [--repeat N] [--only "
				"direct,memfd,mqbus,dbus] [--wake METHOD] "
				"[--no-rtt] "
				"[--quick]\n");
			return 2;
		}
	}
	if (reps < 1 || reps > REPEAT_MAX) {
		fprintf(stderr, "large-bench: --repeat 1..%d\n", REPEAT_MAX);
		return 2;
	}
	if (!daemon)
		daemon = "daemon/mqbusd";
	if (pin >= 0) {
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(pin, &set);
		if (sched_setaffinity(0, sizeof(set), &set) < 0)
			die("sched_setaffinity", errno);
	}
	/* five clients of 10 x 8192 and the direct pair are more than the
	 * default 800 KB of queues a user may have: raise it if we may */
	{
		struct rlimit rl = { RLIM_INFINITY, RLIM_INFINITY };

		if (setrlimit(RLIMIT_MSGQUEUE, &rl) < 0)
			fprintf(stderr, "large-bench: RLIMIT_MSGQUEUE not "
					"raised (%s): some rows may fail\n",
				strerror(errno));
	}
	signal(SIGPIPE, SIG_IGN);
	printf("# large-bench: queues %ld x %d, %.0f MiB a run, %u "
	       "repetition%s in turns, %s\n",
	       MAXMSG, MSGSIZE, mbytes, reps, reps == 1 ? "" : "s",
	       pin >= 0 ? "pinned to one CPU" : "unpinned");
	start_daemon(daemon, wake);
	if ((paths & 1u << PATH_DBUS) && !start_dbus())
		paths &= ~(1u << PATH_DBUS);
	print_head();
	fflush(stdout);
	snprintf(list, sizeof(list), "%s", sizes);
	for (tok = strtok_r(list, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		size_t size = parse_size(tok);
		unsigned n = (unsigned)(mbytes * MIB / (double)size);
		unsigned rt = n < 20 ? 20 : (n > 400 ? 400 : n);
		struct tput t[PATH_COUNT][REPEAT_MAX];
		struct rtt rtts[PATH_COUNT] = { { 0 } };
		bool have[PATH_COUNT];

		if (size < 16 || size > 16u << 20)
			die("--sizes: from 16 bytes to 16m", EINVAL);
		if (n < 4)
			n = 4;
		if (size >= 16 * 1024 * 1024)
			rt = 10;
		for (unsigned p = 0; p < PATH_COUNT; p++)
			have[p] = paths & 1u << p;
		/* in turns, every other repetition in reverse order */
		for (unsigned k = 0; k < reps; k++)
			for (unsigned i = 0; i < PATH_COUNT; i++) {
				unsigned p = k % 2 ? PATH_COUNT - 1 - i : i;

				if (have[p])
					run_path((enum path)p, size, n,
						 &t[p][k]);
			}
		if (with_rtt && have[PATH_DIRECT])
			direct_rtt(size, rt, &rtts[PATH_DIRECT]);
		if (with_rtt && have[PATH_MEMFD])
			memfd_rtt(size, rt, &rtts[PATH_MEMFD]);
		if (with_rtt && have[PATH_MQBUS])
			bus_rtt(size, rt, &rtts[PATH_MQBUS]);
		for (unsigned p = 0; p < PATH_COUNT; p++)
			if (have[p])
				print_row(tok, (enum path)p, t, reps,
					  with_rtt ? &rtts[p] : NULL, have);
		fflush(stdout);
	}
	stop_brokers();
	return 0;
}
