/* SPDX-License-Identifier: MIT */
/*
 * check_adopt.c - a daemon that starts after another one died takes over
 * its clients (daemon/restart.c).
 *
 * The clients here are libmqbus handles whose queues the test then drives
 * by hand, as a client library of the old daemon would after it died:
 * it writes into its tx queue and announces it with PROTO_F_RESUME.  What
 * is checked is the daemon's side of the promise: what a client queued
 * while no daemon ran is routed, after the subscribers among the previous
 * daemon's clients are back; queues of clients that do not come back, or
 * die, are removed; a stopped daemon leaves live clients their queues.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "client/mqbus.h"
#include "proto/proto.h"
#include "tests/testbus.h"

#define RECV_MS 3000
#define MAX_NAMES 8

/* The number n of "/BUS.<pid>.<n>.tx". */
static unsigned name_number(const char *name)
{
	const char *end = strrchr(name, '.'), *p = end;

	while (p > name && p[-1] != '.')
		p--;
	return (unsigned)strtoul(p, NULL, 10);
}

/* Our clients' tx queue names, in the order they were connected. */
static int our_tx_names(const char *bus, pid_t pid,
			char names[][PROTO_QNAME_MAX + 1], int max)
{
	char list[2048], *save = NULL, *tok, tmp[PROTO_QNAME_MAX + 1];
	int n = 0;

	testbus_queues_suffix(bus, pid, ".tx", list, sizeof(list));
	for (tok = strtok_r(list, " ", &save); tok && n < max;
	     tok = strtok_r(NULL, " ", &save))
		snprintf(names[n++], PROTO_QNAME_MAX + 1, "%s%s",
			 tok[0] == '/' ? "" : "/", tok);
	for (int i = 1; i < n; i++)
		for (int k = i; k > 0 && name_number(names[k - 1]) >
						 name_number(names[k]);
		     k--) {
			memcpy(tmp, names[k], sizeof(tmp));
			memcpy(names[k], names[k - 1], sizeof(tmp));
			memcpy(names[k - 1], tmp, sizeof(tmp));
		}
	return n;
}

static void rx_of(const char *tx, char *rx, size_t size)
{
	size_t len = strlen(tx);

	ck_assert(len > 3 && len + 1 <= size);
	memcpy(rx, tx, len - 2);
	memcpy(rx + len - 2, "rx", 3);
}

static void send_raw(const char *queue, const struct proto_header *h,
		     const char *topic, const void *payload, size_t len,
		     unsigned prio)
{
	unsigned char buf[1024];
	int n = proto_encode(buf, sizeof(buf), h, topic, payload, len);
	mqd_t q = mq_open(queue, O_WRONLY | O_NONBLOCK);

	ck_assert_msg(n > 0, "encode: %d", n);
	ck_assert_msg(q != (mqd_t)-1, "open %s: %s", queue, strerror(errno));
	ck_assert_msg(mq_send(q, (char *)buf, (size_t)n, prio) == 0,
		      "send into %s: %s", queue, strerror(errno));
	mq_close(q);
}

static void publish_raw(const char *tx, const char *topic, const char *text)
{
	struct proto_header h;

	proto_header_init(&h, PROTO_PUBLISH);
	send_raw(tx, &h, topic, text, strlen(text), 0);
}

static void subscribe_raw(const char *tx, const char *pattern, uint32_t tok)
{
	struct proto_header h;

	proto_header_init(&h, PROTO_SUBSCRIBE);
	h.token = tok;
	send_raw(tx, &h, pattern, NULL, 0, PROTO_PRIO_MAX);
}

static void resume_raw(const char *bus, const char *tx)
{
	struct proto_header h;
	char announce[TESTBUS_NAME_MAX + 2];

	snprintf(announce, sizeof(announce), "/%s", bus);
	proto_header_init(&h, PROTO_ANNOUNCE);
	h.flags = PROTO_F_RESUME;
	send_raw(announce, &h, tx, NULL, 0, 0);
}

/* The next message of rx within ms, decoded into *pm (which points into
 * buf); false if none came. */
static bool recv_raw(const char *rx, unsigned char *buf, size_t size,
		     struct proto_msg *pm, int ms)
{
	struct timespec ts;
	ssize_t n;
	mqd_t q = mq_open(rx, O_RDONLY);

	ck_assert_msg(q != (mqd_t)-1, "open %s: %s", rx, strerror(errno));
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	n = mq_timedreceive(q, (char *)buf, size, NULL, &ts);
	mq_close(q);
	if (n < 0) {
		ck_assert_msg(errno == ETIMEDOUT, "receive %s: %s", rx,
			      strerror(errno));
		return false;
	}
	ck_assert_msg(proto_decode(buf, (size_t)n, pm) == 0,
		      "undecodable message on %s", rx);
	return true;
}

/* Skips control answers; the next DELIVER's payload must be text. */
static void expect_deliver(const char *rx, const char *text, int ms)
{
	unsigned char buf[8192];
	struct proto_msg pm;

	for (;;) {
		ck_assert_msg(recv_raw(rx, buf, sizeof(buf), &pm, ms),
			      "no DELIVER of '%s' on %s within %d ms", text,
			      rx, ms);
		if (pm.h.type == PROTO_DELIVER)
			break;
	}
	ck_assert_msg(pm.h.payload_len == strlen(text) &&
			      memcmp(pm.payload, text, strlen(text)) == 0,
		      "on %s: got '%.*s', expected '%s'", rx,
		      (int)pm.h.payload_len, (const char *)pm.payload, text);
}

static void expect_no_deliver(const char *rx, int ms)
{
	unsigned char buf[8192];
	struct proto_msg pm;

	while (recv_raw(rx, buf, sizeof(buf), &pm, ms))
		ck_assert_msg(pm.h.type != PROTO_DELIVER,
			      "DELIVER of '%.*s' on %s before the "
			      "subscribers were back",
			      (int)pm.h.payload_len,
			      (const char *)pm.payload, rx);
}

static bool queue_exists(const char *name)
{
	mqd_t q = mq_open(name, O_RDONLY | O_NONBLOCK);

	if (q == (mqd_t)-1)
		return errno != ENOENT;
	mq_close(q);
	return true;
}

static bool wait_gone(const char *name, int ms)
{
	uint64_t end = testbus_now_ms() + (uint64_t)ms;

	while (queue_exists(name)) {
		if (testbus_now_ms() > end)
			return false;
		usleep(20000);
	}
	return true;
}

/*
 * P publishes into its tx while no daemon runs and announces itself
 * before its subscriber S does; Q never comes back.  P's backlog must
 * wait for S (held until the grace period ends, since Q is missing), then
 * reach S in order; Q's queues go.
 */
START_TEST(test_adopt_backlog_waits)
{
	const char *config = "[bus]\nrestart_grace_ms = 1500\n";
	char tx[MAX_NAMES][PROTO_QNAME_MAX + 1], rx_s[PROTO_QNAME_MAX + 1];
	char rx_q[PROTO_QNAME_MAX + 1];
	struct testbus tb = { 0 };
	mqbus *s, *p, *q;
	uint64_t t0;
	int n;

	testbus_start(&tb, config);
	s = testbus_connect(&tb, 4, 1024);
	testbus_subscribe(s, "rs/#");
	p = testbus_connect(&tb, 4, 1024);
	q = testbus_connect(&tb, 4, 1024);
	n = our_tx_names(tb.bus, getpid(), tx, MAX_NAMES);
	ck_assert_int_eq(n, 3);
	rx_of(tx[0], rx_s, sizeof(rx_s));
	rx_of(tx[2], rx_q, sizeof(rx_q));

	testbus_kill(&tb);
	ck_assert_msg(testbus_announce_exists(tb.bus),
		      "a killed daemon's announce queue is gone");
	/* what clients do while no daemon runs */
	publish_raw(tx[1], "rs/a", "zero");
	publish_raw(tx[1], "rs/a", "one");
	publish_raw(tx[1], "rs/a", "two");
	subscribe_raw(tx[0], "rs/#", 77);
	resume_raw(tb.bus, tx[1]);
	resume_raw(tb.bus, tx[0]);

	t0 = testbus_now_ms();
	testbus_restart(&tb, config);
	/* held: Q has not come back */
	expect_no_deliver(rx_s, 700);
	expect_deliver(rx_s, "zero", RECV_MS);
	ck_assert_msg(testbus_now_ms() - t0 >= 1000,
		      "P's backlog was routed %llu ms after the start, before "
		      "the grace period ended",
		      (unsigned long long)(testbus_now_ms() - t0));
	expect_deliver(rx_s, "one", RECV_MS);
	expect_deliver(rx_s, "two", RECV_MS);
	ck_assert_msg(wait_gone(tx[2], RECV_MS) && wait_gone(rx_q, RECV_MS),
		      "the queues of a client that did not come back stay");

	/* and the bus works for them as for any client */
	publish_raw(tx[1], "rs/b", "after");
	expect_deliver(rx_s, "after", RECV_MS);

	mqbus_free(q);
	mqbus_free(p);
	mqbus_free(s);
	testbus_finish(&tb);
}
END_TEST

/* All back: the held backlog goes at once, not after the grace period. */
START_TEST(test_adopt_all_back)
{
	const char *config = "[bus]\nrestart_grace_ms = 20000\n";
	char tx[MAX_NAMES][PROTO_QNAME_MAX + 1], rx_s[PROTO_QNAME_MAX + 1];
	struct testbus tb = { 0 };
	mqbus *s, *p;
	uint64_t t0;

	testbus_start(&tb, config);
	s = testbus_connect(&tb, 4, 1024);
	p = testbus_connect(&tb, 4, 1024);
	ck_assert_int_eq(our_tx_names(tb.bus, getpid(), tx, MAX_NAMES), 2);
	rx_of(tx[0], rx_s, sizeof(rx_s));

	testbus_kill(&tb);
	publish_raw(tx[1], "ra/x", "queued");
	subscribe_raw(tx[0], "ra/#", 5);
	t0 = testbus_now_ms();
	testbus_restart(&tb, config);
	/* announced after the start this time */
	resume_raw(tb.bus, tx[1]);
	resume_raw(tb.bus, tx[0]);
	/* announced twice: the second is ignored */
	resume_raw(tb.bus, tx[0]);
	expect_deliver(rx_s, "queued", RECV_MS);
	ck_assert_msg(testbus_now_ms() - t0 < 10000,
		      "held for the grace period though all were back");
	publish_raw(tx[1], "ra/x", "next");
	expect_deliver(rx_s, "next", RECV_MS);
	expect_no_deliver(rx_s, 200);

	mqbus_free(p);
	mqbus_free(s);
	testbus_finish(&tb);
}
END_TEST

/* A client of the old daemon that dies during the grace period loses its
 * queues at once; one that died before the start, at the start. */
START_TEST(test_adopt_orphan_dies)
{
	const char *config = "[bus]\nrestart_grace_ms = 30000\n";
	char tx[MAX_NAMES][PROTO_QNAME_MAX + 1], rx[PROTO_QNAME_MAX + 1];
	struct testbus tb = { 0 };
	int go[2], ready[2];
	pid_t child;
	char c = 0;

	testbus_start(&tb, config);
	testbus_pipe(go);
	testbus_pipe(ready);
	child = testbus_fork();
	if (child == 0) {
		mqbus *b = testbus_connect(&tb, 4, 1024);

		(void)b;
		testbus_write_all(ready[1], "r", 1);
		testbus_read_all(go[0], &c, 1, 60000);
		_exit(0); /* without closing: the queues stay behind */
	}
	ck_assert_int_eq(testbus_read_all(ready[0], &c, 1, RECV_MS), 0);
	ck_assert_int_eq(our_tx_names(tb.bus, child, tx, MAX_NAMES), 1);
	rx_of(tx[0], rx, sizeof(rx));
	testbus_kill(&tb);
	testbus_restart(&tb, config);
	usleep(300000);
	ck_assert_msg(queue_exists(tx[0]), "a live orphan's queue went");
	testbus_write_all(go[1], "g", 1);
	ck_assert_int_eq(testbus_wait(child, RECV_MS), 0);
	ck_assert_msg(wait_gone(tx[0], RECV_MS) && wait_gone(rx, RECV_MS),
		      "the queues of an orphan that died stay");
	testbus_close_pipe(go);
	testbus_close_pipe(ready);
	testbus_finish(&tb);
}
END_TEST

/* A stopped daemon says so with ESHUTDOWN and leaves live clients their
 * queues; what they queue meanwhile reaches the next daemon. */
START_TEST(test_adopt_after_stop)
{
	const char *config = "[bus]\nrestart_grace_ms = 20000\n";
	char tx[MAX_NAMES][PROTO_QNAME_MAX + 1], rx_s[PROTO_QNAME_MAX + 1];
	struct testbus tb = { 0 };
	unsigned char buf[8192];
	struct proto_msg pm;
	bool bye = false;
	mqbus *s, *p;

	testbus_start(&tb, config);
	s = testbus_connect(&tb, 4, 1024);
	p = testbus_connect(&tb, 4, 1024);
	ck_assert_int_eq(our_tx_names(tb.bus, getpid(), tx, MAX_NAMES), 2);
	rx_of(tx[0], rx_s, sizeof(rx_s));
	ck_assert_int_eq(testbus_stop(&tb), 0);
	ck_assert_msg(queue_exists(tx[0]) && queue_exists(rx_s),
		      "a stopped daemon removed a live client's queues");
	while (recv_raw(rx_s, buf, sizeof(buf), &pm, 200))
		if (pm.h.type == PROTO_BYE)
			bye = pm.h.status == ESHUTDOWN;
	ck_assert_msg(bye, "no BYE with status ESHUTDOWN");

	publish_raw(tx[1], "rt/x", "kept");
	subscribe_raw(tx[0], "rt/#", 9);
	testbus_restart(&tb, config);
	resume_raw(tb.bus, tx[0]);
	resume_raw(tb.bus, tx[1]);
	expect_deliver(rx_s, "kept", RECV_MS);

	mqbus_free(p);
	mqbus_free(s);
	testbus_finish(&tb);
}
END_TEST

/* A timer its client owned, kept in the state file, is that client's
 * again once it is back: it goes on firing after the grace period, when
 * the timers nobody claimed are dropped. */
START_TEST(test_adopt_claims_timer)
{
	const char *config = "[bus]\nrestart_grace_ms = 1000\n";
	char tx[MAX_NAMES][PROTO_QNAME_MAX + 1], rx_s[PROTO_QNAME_MAX + 1];
	char dir[] = "/tmp/mqbus-adopt-XXXXXX", cmd[64];
	struct mqbus_timer_add_opts topts = MQBUS_TIMER_ADD_OPTS_INIT;
	struct testbus tb = { 0 };
	unsigned char buf[8192];
	struct proto_msg pm;
	uint64_t id;
	mqbus *s;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	setenv("STATE_DIRECTORY", dir, 1);
	testbus_start(&tb, config);
	s = testbus_connect(&tb, 4, 1024);
	testbus_subscribe(s, "ot/#");
	topts.when = 100;
	topts.period_ms = 100;
	ck_assert_int_eq(mqbus_timer_add_opts(s, "ot/x", "tick", 4, &topts,
					      &id),
			 0);
	ck_assert_int_eq(our_tx_names(tb.bus, getpid(), tx, MAX_NAMES), 1);
	rx_of(tx[0], rx_s, sizeof(rx_s));
	usleep(1300 * 1000); /* written within a second */
	testbus_kill(&tb);
	subscribe_raw(tx[0], "ot/#", 3);
	testbus_restart(&tb, config);
	resume_raw(tb.bus, tx[0]);
	/* past the grace period: an unclaimed timer would be gone */
	usleep(1500 * 1000);
	while (recv_raw(rx_s, buf, sizeof(buf), &pm, 0))
		;
	expect_deliver(rx_s, "tick", RECV_MS);
	mqbus_free(s);
	testbus_finish(&tb);
	unsetenv("STATE_DIRECTORY");
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	ck_assert_int_eq(system(cmd), 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("adopt");

	testbus_init();
	testbus_add_case(s, "adopt_backlog_waits", test_adopt_backlog_waits, 1);
	testbus_add_case(s, "adopt_all_back", test_adopt_all_back, 1);
	testbus_add_case(s, "adopt_orphan_dies", test_adopt_orphan_dies, 1);
	testbus_add_case(s, "adopt_after_stop", test_adopt_after_stop, 1);
	testbus_add_case(s, "adopt_claims_timer", test_adopt_claims_timer, 1);
	return testbus_run(s, "adopt");
}
