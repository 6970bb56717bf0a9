/* SPDX-License-Identifier: MIT */
/*
 * large-bench.c - what messages larger than a queue message cost: mqbus
 * (publisher -> mqbusd -> subscriber, in pieces both ways) against a
 * direct POSIX queue pair doing the same fragmenting (writer -> reader,
 * FRAGMENT frames of the same size, put together in one buffer), which is
 * the limit of the transport.
 *
 *   large-bench [--daemon PATH] [--sizes 16k,64k,1m,16m] [--pin CPU]
 *               [--mbytes N] [--maxmsg N] [--quick]
 *
 * For each size: throughput (messages/s and MB/s of payload, N messages
 * from one publisher to one subscriber, about --mbytes MiB in all), the
 * daemon's CPU time per MB carried, and the round trip (a request and a
 * reply of that size, p50 and p99); then the same throughput and round
 * trip through the direct pair.  Queues are 4 (--maxmsg) x 8192 bytes
 * everywhere.
 * It starts its own mqbusd on a bus of its own (overflow = block, so that
 * nothing is dropped and the publisher is paced by the subscriber).  Run
 * it under tests/harness.sh or unshare -im for a private mqueue mount.
 * Built by make, not installed (tests/local.mk).
 */
#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "client/mqbus.h"
#include "proto/frag.h"
#include "proto/proto.h"

#define MSGSIZE 8192
/* RLIMIT_MSGQUEUE (800 KB a uid, shared by every process of the uid on
 * the machine) fits few queues of 10 x 8192: 4 by default (--maxmsg) */
static long MAXMSG = 4;
#define MIB (1024.0 * 1024.0)

static char bus[32];
static pid_t daemon_pid;

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void die(const char *what, int err)
{
	fprintf(stderr, "large-bench: %s: %s\n", what, strerror(err));
	if (daemon_pid > 0)
		kill(daemon_pid, SIGTERM);
	exit(1);
}

/* CPU seconds (user + system) process pid has used. */
static double cpu_of(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long ut = 0, st = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f || !fgets(buf, sizeof(buf), f)) {
		if (f)
			fclose(f);
		return 0;
	}
	fclose(f);
	p = strrchr(buf, ')');
	/* after the name: state, then fields 4..; utime and stime are 14, 15 */
	if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
			       "%lu %lu",
			&ut, &st) == 2)
		return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
	return 0;
}

static void start_daemon(const char *path)
{
	char conf[] = "/tmp/large-bench-XXXXXX", qname[80];
	const char *text = "[bus]\nmax_message = 16777216\n"
			   "pending_bytes = 268435456\n"
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
		      (char *)NULL);
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

struct row {
	double msgs_s, mb_s, cpu_ms_per_mb, p50_us, p99_us;
};

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void percentiles(double *v, unsigned n, struct row *r)
{
	qsort(v, n, sizeof(*v), cmp_double);
	r->p50_us = v[n / 2] * 1e6;
	r->p99_us = v[(n * 99) / 100 >= n ? n - 1 : (n * 99) / 100] * 1e6;
}

/* ------------------------------------------------------------------ */
/* through mqbus                                                       */

static void bus_throughput(size_t size, unsigned n, struct row *r)
{
	unsigned char *data = malloc(size);
	int go[2];
	mqbus *sub = connect_bus(), *mon = connect_size(true);
	double t0, t1, c0, c1;
	pid_t pub;
	char c = 'g';

	if (!data || pipe(go) < 0)
		die("setup", ENOMEM);
	memset(data, 'x', size);
	if (mqbus_subscribe(sub, "bench/t") < 0)
		die(mqbus_last_error(sub), EIO);
	fflush(stdout);
	pub = fork();
	if (pub == 0) {
		mqbus *b = connect_bus();

		if (read(go[0], &c, 1) != 1)
			_exit(2);
		for (unsigned i = 0; i < n; i++)
			if (mqbus_publish(b, "bench/t", data, size, 0) < 0) {
				fprintf(stderr, "large-bench: publish: %s\n",
					mqbus_last_error(b));
				_exit(3);
			}
		mqbus_free(b);
		_exit(0);
	}
	c0 = cpu_of(daemon_pid);
	t0 = now_s();
	if (write(go[1], &c, 1) != 1)
		die("pipe", errno);
	for (unsigned i = 0; i < n; i++) {
		mqbus_msg *m = NULL;
		size_t len = 0;
		int e = mqbus_receive(sub, &m, 60000);

		if (e < 0 || !m)
			die("receive", e < 0 ? -e : ETIMEDOUT);
		mqbus_msg_payload(m, &len);
		if (len != size || mqbus_msg_dropped(m))
			die("a message lost or cut", EIO);
		mqbus_msg_free(m);
	}
	t1 = now_s();
	c1 = cpu_of(daemon_pid);
	waitpid(pub, NULL, 0);
	if (bus_stat(mon, "large_incomplete") > 0)
		die("incomplete messages", EIO);
	r->msgs_s = n / (t1 - t0);
	r->mb_s = (double)n * (double)size / MIB / (t1 - t0);
	r->cpu_ms_per_mb = (c1 - c0) * 1000.0 / ((double)n * size / MIB);
	close(go[0]);
	close(go[1]);
	mqbus_free(mon);
	mqbus_free(sub);
	free(data);
}

static void bus_rtt(size_t size, unsigned n, struct row *r)
{
	unsigned char *data = malloc(size);
	double *lat = calloc(n, sizeof(double));
	mqbus *req = connect_bus(), *mon = connect_size(true);
	pid_t srv;

	if (!data || !lat)
		die("setup", ENOMEM);
	memset(data, 'q', size);
	fflush(stdout);
	srv = fork();
	if (srv == 0) {
		mqbus *b = connect_bus();

		if (mqbus_subscribe(b, "bench/rtt") < 0)
			_exit(2);
		for (unsigned i = 0; i < n; i++) {
			mqbus_msg *m = NULL;

			if (mqbus_receive(b, &m, 60000) < 0 || !m)
				_exit(3);
			if (mqbus_reply(b, m, data, size) < 0)
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
		double t0 = now_s();
		int e = mqbus_request(req, "bench/rtt", data, size, 60000, &m);

		if (e < 0 || !m)
			die(mqbus_last_error(req), -e);
		lat[i] = now_s() - t0;
		mqbus_msg_free(m);
	}
	waitpid(srv, NULL, 0);
	percentiles(lat, n, r);
	mqbus_free(mon);
	mqbus_free(req);
	free(lat);
	free(data);
}

/* ------------------------------------------------------------------ */
/* the direct pair                                                     */

static mqd_t direct_open(const char *name, int flags)
{
	struct mq_attr a = { .mq_maxmsg = MAXMSG, .mq_msgsize = MSGSIZE };
	mqd_t q = mq_open(name, flags | O_CREAT, 0600, &a);

	if (q == (mqd_t)-1)
		die(name, errno);
	return q;
}

/* Sends a whole message of size bytes (msg has room for it) in pieces,
 * as libmqbus does: the headers written in place. */
static void direct_send(mqd_t q, unsigned char *msg, size_t size, uint32_t id)
{
	size_t chunk = frag_chunk(MSGSIZE);
	unsigned char first[MSGSIZE], save[FRAG_OVERHEAD];

	for (size_t off = 0; off < size; off += chunk) {
		size_t len = size - off < chunk ? size - off : chunk;
		unsigned char *at;

		if (off == 0) {
			at = first;
			memcpy(first + FRAG_OVERHEAD, msg, len);
		} else {
			at = msg + off - FRAG_OVERHEAD;
			memcpy(save, at, FRAG_OVERHEAD);
		}
		frag_header(at, id, off, size, 0, len);
		if (mq_send(q, (char *)at, FRAG_OVERHEAD + len, 0) < 0)
			die("mq_send", errno);
		if (off)
			memcpy(at, save, FRAG_OVERHEAD);
	}
}

/* Receives one whole message into buf (size bytes): each frame decoded
 * and its piece copied into place, as libmqbus does. */
static void direct_recv(mqd_t q, unsigned char *buf, size_t size)
{
	unsigned char frame[MSGSIZE];
	size_t have = 0;

	while (have < size) {
		struct proto_msg pm;
		ssize_t n = mq_receive(q, (char *)frame, sizeof(frame), NULL);

		if (n < 0 || proto_decode(frame, (size_t)n, &pm) < 0 ||
		    pm.h.seq != have)
			die("direct receive", n < 0 ? errno : EPROTO);
		memcpy(buf + have, pm.payload, pm.h.payload_len);
		have += pm.h.payload_len;
	}
}

static void direct_throughput(size_t size, unsigned n, struct row *r)
{
	char name[48];
	unsigned char *msg = malloc(size);
	mqd_t q;
	pid_t rd;
	double t0, t1;
	int done[2];
	char c;

	if (!msg || pipe(done) < 0)
		die("setup", ENOMEM);
	memset(msg, 'd', size);
	snprintf(name, sizeof(name), "/%s.direct", bus);
	q = direct_open(name, O_RDWR);
	fflush(stdout);
	rd = fork();
	if (rd == 0) {
		unsigned char *buf = malloc(size);

		for (unsigned i = 0; i < n; i++)
			direct_recv(q, buf, size);
		if (write(done[1], "d", 1) != 1)
			_exit(2);
		_exit(0);
	}
	t0 = now_s();
	for (unsigned i = 0; i < n; i++)
		direct_send(q, msg, size, i + 1);
	if (read(done[0], &c, 1) != 1)
		die("reader", EIO);
	t1 = now_s();
	waitpid(rd, NULL, 0);
	mq_close(q);
	mq_unlink(name);
	r->msgs_s = n / (t1 - t0);
	r->mb_s = (double)n * (double)size / MIB / (t1 - t0);
	r->cpu_ms_per_mb = 0;
	close(done[0]);
	close(done[1]);
	free(msg);
}

static void direct_rtt(size_t size, unsigned n, struct row *r)
{
	char ping_name[48], pong_name[48];
	unsigned char *msg = malloc(size);
	double *lat = calloc(n, sizeof(double));
	mqd_t ping, pong;
	pid_t echo;

	if (!msg || !lat)
		die("setup", ENOMEM);
	memset(msg, 'e', size);
	snprintf(ping_name, sizeof(ping_name), "/%s.ping", bus);
	snprintf(pong_name, sizeof(pong_name), "/%s.pong", bus);
	ping = direct_open(ping_name, O_RDWR);
	pong = direct_open(pong_name, O_RDWR);
	fflush(stdout);
	echo = fork();
	if (echo == 0) {
		unsigned char *buf = malloc(size);

		for (unsigned i = 0; i < n; i++) {
			direct_recv(ping, buf, size);
			direct_send(pong, buf, size, i + 1);
		}
		_exit(0);
	}
	for (unsigned i = 0; i < n; i++) {
		double t0 = now_s();

		direct_send(ping, msg, size, i + 1);
		direct_recv(pong, msg, size);
		lat[i] = now_s() - t0;
	}
	waitpid(echo, NULL, 0);
	mq_close(ping);
	mq_close(pong);
	mq_unlink(ping_name);
	mq_unlink(pong_name);
	percentiles(lat, n, r);
	free(lat);
	free(msg);
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

int main(int argc, char **argv)
{
	const char *daemon = getenv("MQBUS_BENCH_DAEMON");
	const char *sizes = "16k,64k,1m,16m";
	double mbytes = 64;
	int pin = -1;
	char list[256], *tok, *save;

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
		else if (strcmp(argv[i], "--quick") == 0)
			mbytes = 16;
		else {
			fprintf(stderr,
				"usage: large-bench [--daemon PATH] [--sizes "
				"16k,64k,1m,16m] [--pin CPU] [--mbytes N] "
				"[--maxmsg N] [--quick]\n");
			return 2;
		}
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
	start_daemon(daemon);
	printf("# large-bench: queues %ld x %d, %.0f MiB a row, %s\n", MAXMSG,
	       MSGSIZE, mbytes, pin >= 0 ? "pinned to one CPU" : "unpinned");
	printf("%-7s %-7s %10s %9s %10s %10s %10s %9s\n", "size", "path",
	       "msgs/s", "MB/s", "cpu ms/MB", "rtt p50us", "rtt p99us",
	       "vs_direct");
	fflush(stdout);
	snprintf(list, sizeof(list), "%s", sizes);
	for (tok = strtok_r(list, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		size_t size = parse_size(tok);
		unsigned n = (unsigned)(mbytes * MIB / (double)size);
		unsigned rt = n < 20 ? 20 : (n > 400 ? 400 : n);
		struct row bus_row = { 0 }, dir = { 0 };

		if (n < 4)
			n = 4;
		if (size >= 16 * 1024 * 1024)
			rt = 10;
		direct_throughput(size, n, &dir);
		bus_throughput(size, n, &bus_row);
		direct_rtt(size, rt, &dir);
		bus_rtt(size, rt, &bus_row);
		printf("%-7s %-7s %10.0f %9.1f %10s %10.0f %10.0f %9s\n", tok,
		       "direct", dir.msgs_s, dir.mb_s, "-", dir.p50_us,
		       dir.p99_us, "1.00");
		printf("%-7s %-7s %10.0f %9.1f %10.2f %10.0f %10.0f %9.2f\n",
		       tok, "mqbus", bus_row.msgs_s, bus_row.mb_s,
		       bus_row.cpu_ms_per_mb, bus_row.p50_us, bus_row.p99_us,
		       bus_row.mb_s / dir.mb_s);
		fflush(stdout);
	}
	kill(daemon_pid, SIGTERM);
	waitpid(daemon_pid, NULL, 0);
	return 0;
}
