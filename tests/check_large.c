/* SPDX-License-Identifier: MIT */
/*
 * check_large.c - integration tests of messages larger than a queue
 * message (PROTOCOL.md, "Large messages"), against the real daemon.
 *
 * Every payload is a pattern derived from a seed and compared byte for
 * byte: a message must arrive whole and intact or not at all.  The tests
 * that need a client sending half a message write FRAGMENT frames into
 * a connected client's own tx queue by hand (struct raw below), so that
 * where it stops is exact, not a race.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <mqueue.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "client/mqbus.h"
#include "proto/frag.h"
#include "proto/proto.h"
#include "tests/testbus.h"

#define RECV_MS 10000
#define QUIET_MS 300
#define MIB (1024u * 1024)
/* A uid nobody uses, for the receiver of another user. */
#define OTHER_UID 1990001235u

/* -------------------------------------------------------------------- */
/* payloads                                                              */

static void fill(unsigned char *buf, size_t len, unsigned seed)
{
	uint32_t x = 2463534242u ^ (seed * 2654435761u);

	for (size_t i = 0; i < len; i++) {
		/* xorshift: no period a fragment size could hide in */
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		buf[i] = (unsigned char)x;
	}
}

static unsigned char *payload(size_t len, unsigned seed)
{
	unsigned char *p = malloc(len ? len : 1);

	ck_assert_ptr_nonnull(p);
	fill(p, len, seed);
	return p;
}

/*
 * tests/large.sh runs this suite with MQBUS_SHM=0: every large payload
 * goes in pieces.  tests/large-shm.sh runs it with memory files on,
 * where a payload of PROTO_SHM_MIN bytes or more that does not fit a
 * queue message goes as a sealed memory file between clients that
 * attached: the same messages must arrive the same, whole; only what
 * the daemon counts, and what a receiver's rx holds at once (a whole
 * message per slot, not one piece), differ.
 */
static bool shm_on(void)
{
	const char *v = getenv("MQBUS_SHM");

	return !v || strcmp(v, "0") != 0;
}

/* tests/large-area.sh runs it with reused memory areas on as well
 * (MQBUS_SHM_AREA=1): a PUBLISH comes in its publisher's tx area, and a
 * receiver's large messages after its first go in slots of its rx area */
static bool area_on(void)
{
	const char *v = getenv("MQBUS_SHM_AREA");

	return shm_on() && (!v || strcmp(v, "0") != 0);
}

/* the counter of large messages the daemon took in whole */
static const char *taken_stat(void)
{
	return area_on() ? "shm_area_received"
	       : shm_on() ? "shm_received"
			  : "large_reassembled";
}

/* large messages sent to receivers as files or in slots */
static long long shm_out(mqbus *mon)
{
	return testbus_stat(mon, "shm_sent") +
	       testbus_stat(mon, "shm_area_sent");
}

/* Checks that m is topic with a payload of len bytes made from seed. */
static void expect_payload(const mqbus_msg *m, const char *topic, size_t len,
			   unsigned seed)
{
	const unsigned char *got;
	unsigned char *want;
	size_t n = 0;

	if (topic) /* NULL: a reply, which has none */
		ck_assert_str_eq(mqbus_msg_topic(m), topic);
	got = mqbus_msg_payload(m, &n);
	ck_assert_msg(n == len, "%s: %zu bytes, expected %zu", topic, n, len);
	want = payload(len, seed);
	ck_assert_msg(memcmp(got, want, len) == 0,
		      "%s: payload of %zu bytes differs from seed %u", topic,
		      len, seed);
	free(want);
}

/* Receives the drop notice of n losses on topic that no message
 * followed. */
static void expect_notice(mqbus *b, const char *topic, uint32_t n)
{
	mqbus_msg *m = testbus_recv(b, RECV_MS);

	ck_assert_msg(mqbus_msg_is_drop_notice(m),
		      "a message on %s, expected a drop notice of %u",
		      mqbus_msg_topic(m), n);
	ck_assert_str_eq(mqbus_msg_topic(m), topic);
	ck_assert_uint_eq(mqbus_msg_dropped(m), n);
	mqbus_msg_free(m);
}

static void publish(mqbus *b, const char *topic, size_t len, unsigned seed,
		    int prio)
{
	unsigned char *p = payload(len, seed);
	int r = mqbus_publish(b, topic, p, len, prio);

	ck_assert_msg(r == 0, "publish %zu bytes on %s: %s: %s", len, topic,
		      strerror(-r), mqbus_last_error(b));
	free(p);
}

static void recv_payload(mqbus *b, const char *topic, size_t len,
			 unsigned seed)
{
	mqbus_msg *m = testbus_recv(b, RECV_MS);

	expect_payload(m, topic, len, seed);
	mqbus_msg_free(m);
}

/* The daemon holds nothing for large messages any more. */
static void expect_nothing_held(mqbus *mon)
{
	testbus_wait_stat(mon, "large_held", 0, 5000);
	testbus_wait_stat(mon, "pending_mem", 0, 5000);
	testbus_wait_stat(mon, "pending_bytes", 0, 5000);
}

/* Polls the daemon's stats until key is at least value. */
static void wait_stat_ge(mqbus *mon, const char *key, long long value)
{
	uint64_t until = testbus_now_ms() + 5000;

	while (testbus_stat(mon, key) < value && testbus_now_ms() < until)
		usleep(5000);
	ck_assert_int_ge(testbus_stat(mon, key), value);
}

/* -------------------------------------------------------------------- */
/* round trips                                                           */

/*
 * 1 MiB (the default max_message) through default-sized queues, to two
 * subscribers of different queue sizes: both get it whole from the one
 * buffer the daemon keeps.
 */
START_TEST(test_roundtrip_1m)
{
	struct testbus tb = { 0 };
	mqbus *pub, *sub, *sub2, *mon;

	testbus_start(&tb, NULL);
	pub = testbus_connect(&tb, 0, 0);
	sub = testbus_connect(&tb, 0, 0);
	sub2 = testbus_connect(&tb, 3, 1000);
	mon = testbus_connect(&tb, 2, 0); /* asks for stats only */
	testbus_subscribe(sub, "big/#");
	testbus_subscribe(sub2, "big/#");
	ck_assert_uint_eq(mqbus_max_message(pub), MIB);
	ck_assert_uint_lt(mqbus_max_payload(pub, "big/one"), 2048);

	publish(pub, "big/one", MIB, 1, MQBUS_PRIORITY_DEFAULT);
	recv_payload(sub, "big/one", MIB, 1);
	recv_payload(sub2, "big/one", MIB, 1);
	/* and a small one after it, unharmed */
	publish(pub, "big/two", 10, 2, MQBUS_PRIORITY_DEFAULT);
	recv_payload(sub, "big/two", 10, 2);
	recv_payload(sub2, "big/two", 10, 2);
	mqbus_free(sub2);
	ck_assert_int_eq(testbus_stat(mon, taken_stat()), 1);
	/* the head of a memory file's message fits even sub2's rx; with
	 * areas, a receiver's first large message goes in pieces (the
	 * daemon has no file of a tx area's payload to pass on) */
	ck_assert_int_eq(testbus_stat(mon, "large_sent"),
			 shm_on() && !area_on() ? 0 : 2);
	ck_assert_int_eq(shm_out(mon), shm_on() && !area_on() ? 2 : 0);
	ck_assert_int_eq(testbus_stat(mon, "dropped"), 0);
	expect_nothing_held(mon);
	mqbus_free(mon);
	mqbus_free(sub);
	mqbus_free(pub);
	testbus_finish(&tb);
}
END_TEST

/* 16 MiB with max_message raised, through the largest queues. */
START_TEST(test_roundtrip_16m)
{
	struct testbus tb = { 0 };
	mqbus *pub, *sub, *mon;

	testbus_start(&tb, "[bus]\nmax_message = 16777216\n"
			   "pending_budget_per_uid = 67108864\n");
	pub = testbus_connect(&tb, 4, 8192);
	sub = testbus_connect(&tb, 4, 8192);
	mon = testbus_connect(&tb, 2, 0); /* asks for stats only */
	testbus_subscribe(sub, "big/#");
	publish(pub, "big/sixteen", 16 * MIB, 16, 3);
	recv_payload(sub, "big/sixteen", 16 * MIB, 16);
	ck_assert_int_eq(testbus_stat(mon, "max_message"), 16 * MIB);
	expect_nothing_held(mon);
	mqbus_free(mon);
	mqbus_free(sub);
	mqbus_free(pub);
	testbus_finish(&tb);
}
END_TEST

/*
 * Sizes at every boundary: the largest payload one queue message holds,
 * one more (two pieces), exactly 3 pieces, max_message, and one over it
 * (a clear error, nothing sent).
 */
START_TEST(test_boundaries)
{
	const char *topic = "b/x";
	size_t one, chunk, sizes[6];
	struct testbus tb = { 0 };
	mqbus *pub, *sub, *mon;
	unsigned char *p;
	int r;

	testbus_start(&tb, "[bus]\nmax_message = 100000\n");
	pub = testbus_connect(&tb, 0, 0);
	sub = testbus_connect(&tb, 0, 0);
	mon = testbus_connect(&tb, 2, 0); /* asks for stats only */
	testbus_subscribe(sub, "b/#");
	one = 2048 - proto_size(strlen(topic), 0);
	chunk = frag_chunk(2048);
	sizes[0] = one;
	sizes[1] = one + 1;
	/* a whole message of exactly 3 pieces, and one byte into a 4th */
	sizes[2] = 3 * chunk - proto_size(strlen(topic), 0);
	sizes[3] = sizes[2] + 1;
	sizes[4] = 100000;
	sizes[5] = 0;
	for (unsigned i = 0; i < 6; i++) {
		publish(pub, topic, sizes[i], 100 + i, MQBUS_PRIORITY_DEFAULT);
		recv_payload(sub, topic, sizes[i], 100 + i);
	}
	/* with memory files, the two below PROTO_SHM_MIN go in pieces */
	ck_assert_int_eq(testbus_stat(mon, "large_sent"), shm_on() ? 1 : 4);
	ck_assert_int_eq(shm_out(mon), shm_on() ? 3 : 0);

	p = payload(100001, 7);
	r = mqbus_publish(pub, topic, p, 100001, MQBUS_PRIORITY_DEFAULT);
	ck_assert_int_eq(r, -EMSGSIZE);
	ck_assert_msg(strstr(mqbus_last_error(pub), "max_message"),
		      "error without the limit: %s", mqbus_last_error(pub));
	free(p);
	testbus_expect_nothing(sub, QUIET_MS);
	expect_nothing_held(mon);
	mqbus_free(mon);
	mqbus_free(sub);
	mqbus_free(pub);
	testbus_finish(&tb);
}
END_TEST

/* -------------------------------------------------------------------- */
/* interleaving and priorities                                           */

/*
 * One receiver, its queue full of the pieces of L1 (priority 0): a small
 * S at priority 10 overtakes what is left of L1; a large L3 at priority
 * 10 does not (one large message at a time), but comes before L2 at
 * priority 0, queued earlier.  Every one whole.
 */
START_TEST(test_priority_between_whole)
{
	struct testbus tb = { 0 };
	mqbus *a, *b, *c, *sub, *mon;

	testbus_start(&tb, "[bus]\nmax_priority = 20\n");
	/* few queues: RLIMIT_MSGQUEUE is the uid's, machine-wide */
	a = testbus_connect(&tb, 0, 0);
	b = testbus_connect(&tb, 2, 0);
	c = testbus_connect(&tb, 2, 0);
	sub = testbus_connect(&tb, 0, 0);
	mon = testbus_connect(&tb, 2, 0); /* asks for stats only */
	testbus_subscribe(sub, "p/#");

	publish(a, "p/l1", 300000, 1, 0);
	publish(b, "p/l2", 200000, 2, 0);
	publish(c, "p/s", 100, 3, 10);
	publish(a, "p/l3", 250000, 4, 10);
	testbus_wait_stat(mon, "published", 4, 5000);

	recv_payload(sub, "p/s", 100, 3);
	if (shm_on() && !area_on()) {
		/* each whole in rx at once: by priority alone */
		recv_payload(sub, "p/l3", 250000, 4);
		recv_payload(sub, "p/l1", 300000, 1);
	} else {
		/* l1 was going out in pieces (with areas too: sub's first
		 * large message): it stays first */
		recv_payload(sub, "p/l1", 300000, 1);
		recv_payload(sub, "p/l3", 250000, 4);
	}
	recv_payload(sub, "p/l2", 200000, 2);
	testbus_expect_nothing(sub, QUIET_MS);
	expect_nothing_held(mon);
	mqbus_free(mon);
	mqbus_free(sub);
	mqbus_free(c);
	mqbus_free(b);
	mqbus_free(a);
	testbus_finish(&tb);
}
END_TEST

enum { CONC_N = 6, CONC_LEN = 150000 };

/* A child publishing CONC_N large messages (and, with small, a small one
 * at priority 10 after each); exits 0 when all were taken. */
static pid_t spawn_publisher(const char *bus, unsigned who, bool small)
{
	pid_t pid = testbus_fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		unsigned char *p = malloc(CONC_LEN);
		char topic[32];
		mqbus *b;

		if (!p || testbus_try_connect(bus, 0, 0, &b, NULL, 0) < 0)
			_exit(2);
		for (unsigned i = 0; i < CONC_N; i++) {
			snprintf(topic, sizeof(topic), "c/%u/%u", who, i);
			fill(p, CONC_LEN, who * 100 + i);
			if (mqbus_publish(b, topic, p, CONC_LEN, 0) < 0)
				_exit(3);
			if (small && mqbus_publish(b, "c/small", &i,
						   sizeof(i), 10) < 0)
				_exit(4);
		}
		mqbus_free(b);
		free(p);
		_exit(0);
	}
	return pid;
}

/*
 * Two publishers send large messages to one subscriber at once, a third
 * small ones at a higher priority in between: every message intact, each
 * publisher's in its order.
 */
START_TEST(test_two_publishers)
{
	unsigned next[2] = { 0, 0 }, small = 0;
	struct testbus tb = { 0 };
	mqbus *sub, *mon;
	pid_t p1, p2;

	/* room for all of them: this is not about a slow subscriber */
	testbus_start(&tb, "[bus]\nmax_priority = 20\n"
			   "pending_bytes = 16777216\n"
			   "pending_budget_per_uid = 33554432\n");
	sub = testbus_connect(&tb, 0, 0);
	mon = testbus_connect(&tb, 2, 0); /* asks for stats only */
	testbus_subscribe(sub, "c/#");
	p1 = spawn_publisher(tb.bus, 1, false);
	p2 = spawn_publisher(tb.bus, 2, true);
	while (next[0] + next[1] + small < 3 * CONC_N) {
		mqbus_msg *m = testbus_recv(sub, RECV_MS);
		const char *t = mqbus_msg_topic(m);
		unsigned who, i;

		if (strcmp(t, "c/small") == 0) {
			small++;
		} else {
			ck_assert_int_eq(sscanf(t, "c/%u/%u", &who, &i), 2);
			ck_assert_uint_eq(i, next[who - 1]);
			expect_payload(m, t, CONC_LEN, who * 100 + i);
			next[who - 1]++;
		}
		ck_assert_uint_eq(mqbus_msg_dropped(m), 0);
		mqbus_msg_free(m);
	}
	ck_assert_int_eq(testbus_wait(p1, 10000), 0);
	ck_assert_int_eq(testbus_wait(p2, 10000), 0);
	ck_assert_int_eq(testbus_stat(mon, taken_stat()), 2 * CONC_N);
	testbus_expect_nothing(sub, QUIET_MS);
	expect_nothing_held(mon);
	mqbus_free(mon);
	mqbus_free(sub);
	testbus_finish(&tb);
}
END_TEST

/* -------------------------------------------------------------------- */
/* half messages                                                         */

/* A connected client whose tx and rx this test writes and reads itself. */
struct raw {
	mqbus *b;
	mqd_t tx, rx;
};

/* A queue's name as mq_open() wants it: with its leading '/'. */
static const char *queue_path(char *buf, size_t size, const char *name)
{
	snprintf(buf, size, "%s%s", name[0] == '/' ? "" : "/", name);
	return buf;
}

/* Connects a client and opens its queues; it must be the only client of
 * this process at that moment. */
static void raw_open(struct raw *r, const struct testbus *tb)
{
	char names[1024], path[300], *tx, *rx;

	r->b = testbus_connect(tb, 0, 0);
	ck_assert_int_eq(testbus_queues_suffix(tb->bus, getpid(), ".tx",
					       names, sizeof(names)),
			 1);
	tx = strdup(strtok(names, " "));
	ck_assert_ptr_nonnull(tx);
	ck_assert_int_eq(testbus_queues_suffix(tb->bus, getpid(), ".rx",
					       names, sizeof(names)),
			 1);
	rx = strdup(strtok(names, " "));
	r->tx = mq_open(queue_path(path, sizeof(path), tx), O_WRONLY);
	r->rx = mq_open(queue_path(path, sizeof(path), rx),
			O_RDONLY | O_NONBLOCK);
	ck_assert_msg(r->tx != (mqd_t)-1 && r->rx != (mqd_t)-1,
		      "open %s, %s: %s", tx, rx, strerror(errno));
	free(tx);
	free(rx);
}

static void raw_close(struct raw *r)
{
	mq_close(r->tx);
	mq_close(r->rx);
	mqbus_free(r->b);
}

/*
 * Writes the pieces [from, to) of a PUBLISH of len bytes on topic,
 * message id id, with token (its answer's) into r's tx.
 */
static void raw_pieces(struct raw *r, const char *topic, size_t len,
		       uint32_t id, uint32_t token, unsigned from,
		       unsigned to)
{
	size_t total = proto_size(strlen(topic), len);
	size_t chunk = frag_chunk(2048);
	unsigned char *msg = malloc(total), frame[2048];
	struct proto_header h;

	ck_assert_ptr_nonnull(msg);
	unsigned char *p = payload(len, id);

	proto_header_init(&h, PROTO_PUBLISH);
	h.token = token;
	ck_assert_int_eq(proto_encode(msg, total, &h, topic, p, len),
			 (int)total);
	free(p);
	for (unsigned i = from; i < to && (size_t)i * chunk < total; i++) {
		size_t off = (size_t)i * chunk;
		size_t n = total - off < chunk ? total - off : chunk;
		int f = frag_encode(frame, sizeof(frame), id, off, total, 0,
				    msg + off, n);

		ck_assert_int_gt(f, 0);
		ck_assert_int_eq(mq_send(r->tx, (char *)frame, (size_t)f, 0),
				 0);
	}
	free(msg);
}

/* Waits for the ERROR or ACK of token in r's rx; returns its status. */
static int raw_answer(struct raw *r, uint32_t token)
{
	uint64_t until = testbus_now_ms() + RECV_MS;
	unsigned char buf[2048];

	while (testbus_now_ms() < until) {
		struct proto_msg pm;
		ssize_t n = mq_receive(r->rx, (char *)buf, sizeof(buf), NULL);

		if (n < 0) {
			usleep(2000);
			continue;
		}
		if (proto_decode(buf, (size_t)n, &pm) == 0 &&
		    (pm.h.type == PROTO_ERROR || pm.h.type == PROTO_ACK) &&
		    pm.h.token == token)
			return (int)pm.h.status;
	}
	ck_abort_msg("no answer to token %u", token);
	return -1;
}

/*
 * A publisher killed half way through a message: nothing is delivered,
 * the message is counted as incomplete and the daemon's memory is back.
 */
START_TEST(test_killed_halfway)
{
	int ready[2];
	struct testbus tb = { 0 };
	mqbus *sub, *mon;
	pid_t child;
	char c;

	testbus_start(&tb, NULL);
	testbus_pipe(ready);
	child = testbus_fork();
	ck_assert_int_ge(child, 0);
	if (child == 0) {
		struct raw r;

		raw_open(&r, &tb);
		/* 40 of the about 490 pieces of 1 MiB */
		raw_pieces(&r, "k/x", MIB, 77, 0, 0, 40);
		testbus_write_all(ready[1], "x", 1);
		pause();
		_exit(0);
	}
	ck_assert_int_eq(testbus_read_all(ready[0], &c, 1, RECV_MS), 0);
	sub = testbus_connect(&tb, 0, 0);
	mon = testbus_connect(&tb, 2, 0); /* asks for stats only */
	testbus_subscribe(sub, "k/#");
	/* the daemon holds the whole message's buffer from the first piece */
	wait_stat_ge(mon, "large_held", MIB);
	kill(child, SIGKILL);
	testbus_wait(child, 5000);
	testbus_wait_stat(mon, "large_incomplete", 1, 5000);
	testbus_expect_nothing(sub, QUIET_MS);
	ck_assert_int_eq(testbus_stat(mon, "large_reassembled"), 0);
	expect_nothing_held(mon);
	testbus_close_pipe(ready);
	mqbus_free(mon);
	mqbus_free(sub);
	testbus_finish(&tb);
}
END_TEST

/*
 * One client starts more unfinished large messages than it may: the one
 * too many is refused with EBUSY.  A client of the same uid within its
 * quota, sending whole messages, is unaffected; when the flooder's uid
 * would hold more than pending_budget_per_uid, EDQUOT.
 */
START_TEST(test_flood_refused)
{
	struct testbus tb = { 0 };
	struct raw r;
	mqbus *other, *sub, *mon;

	testbus_start(&tb, "[bus]\npending_budget_per_uid = 8000000\n");
	raw_open(&r, &tb);
	other = testbus_connect(&tb, 0, 0);
	sub = testbus_connect(&tb, 0, 0);
	mon = testbus_connect(&tb, 2, 0); /* asks for stats only */
	testbus_subscribe(sub, "f/#");
	/* 4 unfinished (LARGE_PARTS_MAX) are allowed, the 5th is not */
	for (unsigned i = 1; i <= 4; i++)
		raw_pieces(&r, "f/x", MIB, i, 1000 + i, 0, 2);
	wait_stat_ge(mon, "large_held", 4 * MIB);
	raw_pieces(&r, "f/x", MIB, 5, 1005, 0, 2);
	ck_assert_int_eq(raw_answer(&r, 1005), EBUSY);
	/* the rest of the refused one is ignored, not a bad message */
	raw_pieces(&r, "f/x", MIB, 5, 1005, 2, 4);

	/* another client goes on: 1 MiB whole, within the uid's 8 MB */
	publish(other, "f/ok", MIB, 9, MQBUS_PRIORITY_DEFAULT);
	recv_payload(sub, "f/ok", MIB, 9);
	/* and a message over max_message is refused before it is sent */
	{
		unsigned char *p = payload(3 * MIB, 10);
		int e = mqbus_publish(other, "f/big", p, 3 * MIB,
				      MQBUS_PRIORITY_DEFAULT);

		ck_assert_int_eq(e, -EMSGSIZE); /* over max_message */
		free(p);
	}
	ck_assert_int_ge(testbus_stat(mon, "large_refused"), 1);
	ck_assert_int_eq(testbus_stat(mon, "bad_messages"), 0);
	raw_close(&r);
	testbus_wait_stat(mon, "large_incomplete", 4, 5000);
	expect_nothing_held(mon);
	mqbus_free(mon);
	mqbus_free(sub);
	mqbus_free(other);
	testbus_finish(&tb);
}
END_TEST

/*
 * The per-uid quota: two clients of one uid together start more than
 * pending_budget_per_uid allows; the one beyond it gets EDQUOT.
 */
START_TEST(test_uid_quota)
{
	struct testbus tb = { 0 };
	struct raw r;
	mqbus *mon;

	testbus_start(&tb, "[bus]\npending_budget_per_uid = 2500000\n");
	raw_open(&r, &tb);
	mon = testbus_connect(&tb, 2, 0); /* asks for stats only */
	raw_pieces(&r, "q/x", MIB, 1, 2001, 0, 1);
	raw_pieces(&r, "q/x", MIB, 2, 2002, 0, 1);
	raw_pieces(&r, "q/x", MIB, 3, 2003, 0, 1);
	ck_assert_int_eq(raw_answer(&r, 2003), EDQUOT);
	ck_assert_int_eq(testbus_stat(mon, "quota_refused"), 1);
	/* finishing one gives its memory back as it is routed */
	raw_pieces(&r, "q/x", MIB, 1, 2001, 1, 1000);
	ck_assert_int_eq(raw_answer(&r, 2001), 0);
	raw_close(&r);
	testbus_wait_stat(mon, "large_incomplete", 1, 5000);
	expect_nothing_held(mon);
	mqbus_free(mon);
	testbus_finish(&tb);
}
END_TEST

/*
 * Pieces that do not follow one another in a client's rx (which the
 * daemon never sends) are dropped by the library: nothing is delivered
 * from them, and the next message arrives as it should.
 */
START_TEST(test_client_bad_pieces)
{
	char names[1024], path[300], *rx;
	unsigned char *whole, *data, frame[2048];
	size_t chunk = frag_chunk(2048), total;
	const size_t order[3] = { 0, 2, 1 };
	struct proto_header h;
	struct testbus tb = { 0 };
	mqbus *sub, *pub;
	mqd_t q;

	testbus_start(&tb, NULL);
	sub = testbus_connect(&tb, 0, 0);
	testbus_subscribe(sub, "bp/#");
	ck_assert_int_eq(testbus_queues_suffix(tb.bus, getpid(), ".rx", names,
					       sizeof(names)),
			 1);
	rx = strtok(names, " ");
	ck_assert_ptr_nonnull(rx);
	q = mq_open(queue_path(path, sizeof(path), rx), O_WRONLY);
	ck_assert_msg(q != (mqd_t)-1, "open %s: %s", path, strerror(errno));
	pub = testbus_connect(&tb, 0, 0);

	/* a DELIVER of 3 pieces, sent as pieces 0, 2, 1 */
	data = payload(5000, 3);
	total = proto_size(4, 5000);
	whole = malloc(total);
	proto_header_init(&h, PROTO_DELIVER);
	h.seq = 1;
	ck_assert_int_eq(proto_encode(whole, total, &h, "bp/x", data, 5000),
			 (int)total);
	for (unsigned i = 0; i < 3; i++) {
		size_t off = order[i] * chunk;
		size_t n = total - off < chunk ? total - off : chunk;
		int f = frag_encode(frame, sizeof(frame), 5, off, total, 0,
				    whole + off, n);

		ck_assert_int_gt(f, 0);
		ck_assert_int_eq(mq_send(q, (char *)frame, (size_t)f, 0), 0);
	}
	publish(pub, "bp/ok", 10, 4, MQBUS_PRIORITY_DEFAULT);
	recv_payload(sub, "bp/ok", 10, 4);
	testbus_expect_nothing(sub, QUIET_MS);
	mq_close(q);
	free(whole);
	free(data);
	mqbus_free(pub);
	mqbus_free(sub);
	testbus_finish(&tb);
}
END_TEST

/* -------------------------------------------------------------------- */
/* receivers' limits                                                     */

/*
 * A subscriber that takes at most 100000 bytes: a 1 MiB message is
 * refused to it (too large, told by a drop notice at once) while
 * another subscriber gets it; with only that subscriber, the publisher
 * hears EMSGSIZE.
 */
START_TEST(test_receiver_limit)
{
	struct testbus tb = { 0 };
	mqbus *pub, *small, *big, *mon;
	mqbus_msg *m;
	int r;

	testbus_start(&tb, NULL);
	pub = testbus_connect(&tb, 0, 0);
	ck_assert_int_eq(mqbus_new(&small), 0);
	ck_assert_int_eq(mqbus_set_bus(small, tb.bus), 0);
	ck_assert_int_eq(mqbus_set_max_message(small, 100000), 0);
	ck_assert_int_eq(mqbus_connect(small), 0);
	big = testbus_connect(&tb, 0, 0);
	mon = testbus_connect(&tb, 2, 0); /* asks for stats only */
	testbus_subscribe(small, "r/#");

	/* the limit declaration is read before this publish */
	testbus_subscribe(big, "r/only-big");
	{
		unsigned char *p = payload(MIB, 1);

		r = mqbus_publish(pub, "r/x", p, MIB, MQBUS_PRIORITY_DEFAULT);
		ck_assert_int_eq(r, -EMSGSIZE);
		ck_assert_msg(strstr(mqbus_last_error(pub), "no subscriber"),
			      "%s", mqbus_last_error(pub));
		free(p);
	}
	expect_notice(small, "r/x", 1);
	publish(pub, "r/x", 50000, 2, MQBUS_PRIORITY_DEFAULT);
	m = testbus_recv(small, RECV_MS);
	expect_payload(m, "r/x", 50000, 2);
	ck_assert_uint_eq(mqbus_msg_dropped(m), 0);
	mqbus_msg_free(m);
	ck_assert_int_eq(testbus_stat(mon, "dropped_too_large"), 1);

	/* with a subscriber that takes it, the publish succeeds */
	testbus_subscribe(big, "r/#");
	publish(pub, "r/y", MIB, 3, MQBUS_PRIORITY_DEFAULT);
	recv_payload(big, "r/y", MIB, 3);
	expect_notice(small, "r/y", 1);
	publish(pub, "r/z", 10, 4, MQBUS_PRIORITY_DEFAULT);
	m = testbus_recv(small, RECV_MS);
	expect_payload(m, "r/z", 10, 4);
	ck_assert_uint_eq(mqbus_msg_dropped(m), 0);
	mqbus_msg_free(m);
	expect_nothing_held(mon);
	mqbus_free(mon);
	mqbus_free(big);
	mqbus_free(small);
	mqbus_free(pub);
	testbus_finish(&tb);
}
END_TEST

/* -------------------------------------------------------------------- */
/* slow subscribers                                                      */

/*
 * With memory files, rx holds whole messages, so which ones a slow
 * subscriber loses depends on its rx's room; what must hold: every
 * message that comes is whole and in order, each carries the count of
 * those lost before it (a drop notice those lost after the last), some
 * are lost, and the daemon counted each loss under stat.
 */
static void expect_whole_in_order(mqbus *sub, mqbus *mon, unsigned n,
				  size_t len, const char *stat)
{
	unsigned next = 0, lost = 0;

	while (next < n) {
		mqbus_msg *m = testbus_recv(sub, RECV_MS);

		next += mqbus_msg_dropped(m);
		lost += mqbus_msg_dropped(m);
		if (mqbus_msg_is_drop_notice(m)) {
			mqbus_msg_free(m);
			break;
		}
		expect_payload(m, "s/x", len, next);
		next++;
		mqbus_msg_free(m);
	}
	ck_assert_uint_eq(next, n);
	ck_assert_uint_gt(lost, 0);
	ck_assert_int_eq(testbus_stat(mon, stat), lost);
}

/*
 * drop-old with large messages: L0 is going out in pieces and stays
 * whole; of the rest only the newest waits, its drop count the others.
 * coalesce (same key): the same, counted as coalesced.
 */
static void slow_large(const char *overflow, bool keyed)
{
	enum { N = 5, LEN = 64 * 1024 };
	char config[128];
	struct testbus tb = { 0 };
	mqbus *pub, *sub, *mon;
	mqbus_msg *m;

	snprintf(config, sizeof(config),
		 "[topic \"s/#\"]\nbacklog = 2\noverflow = %s\n", overflow);
	testbus_start(&tb, config);
	pub = testbus_connect(&tb, 0, 0);
	sub = testbus_connect(&tb, 2, 0);
	mon = testbus_connect(&tb, 2, 0); /* asks for stats only */
	testbus_subscribe(sub, "s/#");
	for (unsigned i = 0; i < N; i++) {
		unsigned char *p = payload(LEN, i);
		int r = mqbus_publish_key(pub, "s/x", keyed ? "k" : NULL, p,
					  LEN, MQBUS_PRIORITY_DEFAULT, 0);

		ck_assert_int_eq(r, 0);
		free(p);
	}
	testbus_wait_stat(mon, "published", N, 5000);
	if (shm_on()) {
		expect_whole_in_order(sub, mon, N, LEN,
				      keyed ? "coalesced" : "dropped_oldest");
		goto done;
	}
	m = testbus_recv(sub, RECV_MS);
	expect_payload(m, "s/x", LEN, 0);
	ck_assert_uint_eq(mqbus_msg_dropped(m), 0);
	mqbus_msg_free(m);
	m = testbus_recv(sub, RECV_MS);
	expect_payload(m, "s/x", LEN, N - 1);
	ck_assert_uint_eq(mqbus_msg_dropped(m), N - 2);
	mqbus_msg_free(m);
	if (keyed)
		ck_assert_int_eq(testbus_stat(mon, "coalesced"), N - 2);
	else
		ck_assert_int_eq(testbus_stat(mon, "dropped_oldest"), N - 2);
done:
	testbus_expect_nothing(sub, QUIET_MS);
	expect_nothing_held(mon);
	mqbus_free(mon);
	mqbus_free(sub);
	mqbus_free(pub);
	testbus_finish(&tb);
}

START_TEST(test_slow_drop_old)
{
	slow_large("drop-old", false);
}
END_TEST

START_TEST(test_slow_coalesce)
{
	slow_large("coalesce", true);
}
END_TEST

/* drop-new: what does not fit the backlog is dropped whole. */
START_TEST(test_slow_drop_new)
{
	enum { LEN = 64 * 1024 };
	/* with memory files, rx holds two whole messages: two more */
	const unsigned N = shm_on() ? 6 : 4;
	struct testbus tb = { 0 };
	mqbus *pub, *sub, *mon;
	mqbus_msg *m;

	testbus_start(&tb, "[topic \"s/#\"]\nbacklog = 2\n");
	pub = testbus_connect(&tb, 0, 0);
	sub = testbus_connect(&tb, 2, 0);
	mon = testbus_connect(&tb, 2, 0); /* asks for stats only */
	testbus_subscribe(sub, "s/#");
	for (unsigned i = 0; i < N; i++)
		publish(pub, "s/x", LEN, i, MQBUS_PRIORITY_DEFAULT);
	testbus_wait_stat(mon, "published", N, 5000);
	if (shm_on()) {
		expect_whole_in_order(sub, mon, N, LEN, "dropped_backlog");
	} else {
		recv_payload(sub, "s/x", LEN, 0);
		recv_payload(sub, "s/x", LEN, 1);
		expect_notice(sub, "s/x", N - 2);
	}
	publish(pub, "s/x", 10, 9, MQBUS_PRIORITY_DEFAULT);
	m = testbus_recv(sub, RECV_MS);
	expect_payload(m, "s/x", 10, 9);
	ck_assert_uint_eq(mqbus_msg_dropped(m), 0);
	mqbus_msg_free(m);
	expect_nothing_held(mon);
	mqbus_free(mon);
	mqbus_free(sub);
	mqbus_free(pub);
	testbus_finish(&tb);
}
END_TEST

/* -------------------------------------------------------------------- */
/* requests, replies, retained values, another user                      */

START_TEST(test_request_reply)
{
	struct testbus tb = { 0 };
	mqbus *req, *srv;
	pid_t child;

	testbus_start(&tb, NULL);
	req = testbus_connect(&tb, 0, 0);
	child = testbus_fork();
	ck_assert_int_ge(child, 0);
	if (child == 0) {
		mqbus_msg *m = NULL;
		unsigned char *want, *answer;
		size_t n = 0;
		const void *got;

		if (testbus_try_connect(tb.bus, 0, 0, &srv, NULL, 0) < 0 ||
		    mqbus_subscribe(srv, "rr/#") < 0)
			_exit(2);
		/* tell the parent we are there: a retained marker */
		if (mqbus_publish_flags(srv, "rr-ready", "1", 1, 0,
					MQBUS_PUBLISH_RETAIN) < 0)
			_exit(3);
		if (mqbus_receive(srv, &m, RECV_MS) < 0 || !m)
			_exit(4);
		got = mqbus_msg_payload(m, &n);
		want = malloc(MIB);
		fill(want, MIB, 41);
		if (n != MIB || memcmp(got, want, MIB) != 0)
			_exit(5);
		answer = malloc(MIB);
		fill(answer, MIB, 42);
		if (mqbus_reply(srv, m, answer, MIB) < 0)
			_exit(6);
		mqbus_msg_free(m);
		mqbus_free(srv);
		_exit(0);
	}
	testbus_subscribe(req, "rr-ready");
	mqbus_msg_free(testbus_recv(req, RECV_MS));
	{
		unsigned char *q = payload(MIB, 41);
		mqbus_msg *reply = NULL;
		int r = mqbus_request(req, "rr/x", q, MIB, RECV_MS, &reply);

		ck_assert_msg(r == 0, "request: %s: %s", strerror(-r),
			      mqbus_last_error(req));
		expect_payload(reply, NULL, MIB, 42);
		mqbus_msg_free(reply);
		free(q);
	}
	ck_assert_int_eq(testbus_wait(child, 10000), 0);
	mqbus_free(req);
	testbus_finish(&tb);
}
END_TEST

/* A retained 1 MiB value, to a subscriber that comes later. */
START_TEST(test_retained)
{
	struct testbus tb = { 0 };
	mqbus *pub, *sub, *mon;
	unsigned char *p;
	mqbus_msg *m;

	testbus_start(&tb, NULL);
	pub = testbus_connect(&tb, 0, 0);
	mon = testbus_connect(&tb, 2, 0); /* asks for stats only */
	p = payload(MIB, 5);
	ck_assert_int_eq(mqbus_publish_flags(pub, "ret/x", p, MIB,
					     MQBUS_PRIORITY_DEFAULT,
					     MQBUS_PUBLISH_RETAIN),
			 0);
	free(p);
	testbus_wait_stat(mon, "retained", 1, 5000);
	sub = testbus_connect(&tb, 0, 0);
	testbus_subscribe(sub, "ret/#");
	m = testbus_recv(sub, RECV_MS);
	expect_payload(m, "ret/x", MIB, 5);
	ck_assert(mqbus_msg_retained(m));
	mqbus_msg_free(m);
	mqbus_free(sub);
	mqbus_free(mon);
	mqbus_free(pub);
	testbus_finish(&tb);
}
END_TEST

/* A receiver of another uid gets a 1 MiB message whole. */
START_TEST(test_other_user)
{
	int ready[2], result[2];
	struct testbus tb = { 0 };
	mqbus *pub;
	pid_t child;
	char c;
	int ok = 0;

	if (geteuid() != 0) {
		/* nothing to test without the right to change uid; the
		 * suite's runner runs it as root */
		return;
	}
	testbus_start(&tb, NULL);
	pub = testbus_connect(&tb, 0, 0);
	testbus_pipe(ready);
	testbus_pipe(result);
	child = testbus_fork();
	ck_assert_int_ge(child, 0);
	if (child == 0) {
		mqbus_msg *m = NULL;
		unsigned char *want = malloc(MIB);
		const void *got;
		size_t n = 0;
		mqbus *sub;

		fill(want, MIB, 8);
		if (setgroups(0, NULL) < 0 ||
		    setresgid(OTHER_UID, OTHER_UID, OTHER_UID) < 0 ||
		    setresuid(OTHER_UID, OTHER_UID, OTHER_UID) < 0 ||
		    testbus_try_connect(tb.bus, 0, 0, &sub, NULL, 0) < 0 ||
		    mqbus_subscribe(sub, "u/#") < 0)
			_exit(2);
		testbus_write_all(ready[1], "x", 1);
		if (mqbus_receive(sub, &m, RECV_MS) == 0 && m) {
			got = mqbus_msg_payload(m, &n);
			ok = n == MIB && memcmp(got, want, MIB) == 0 &&
			     mqbus_msg_sender_uid(m) == 0;
		}
		testbus_write_all(result[1], &ok, sizeof(ok));
		mqbus_free(sub);
		_exit(0);
	}
	ck_assert_int_eq(testbus_read_all(ready[0], &c, 1, RECV_MS), 0);
	publish(pub, "u/x", MIB, 8, MQBUS_PRIORITY_DEFAULT);
	ck_assert_int_eq(testbus_read_all(result[0], &ok, sizeof(ok), RECV_MS),
			 0);
	ck_assert_msg(ok, "the other user's subscriber did not get it whole");
	ck_assert_int_eq(testbus_wait(child, 10000), 0);
	testbus_close_pipe(ready);
	testbus_close_pipe(result);
	mqbus_free(pub);
	testbus_finish(&tb);
}
END_TEST

static void add_case(Suite *s, const char *name, const TTest *test)
{
	testbus_add_case(s, name, test, 1);
}

int main(void)
{
	Suite *s = suite_create("large");

	testbus_init();
	add_case(s, "roundtrip_1m", test_roundtrip_1m);
	add_case(s, "roundtrip_16m", test_roundtrip_16m);
	add_case(s, "boundaries", test_boundaries);
	add_case(s, "priority_between_whole", test_priority_between_whole);
	add_case(s, "two_publishers", test_two_publishers);
	add_case(s, "killed_halfway", test_killed_halfway);
	add_case(s, "flood_refused", test_flood_refused);
	add_case(s, "uid_quota", test_uid_quota);
	add_case(s, "client_bad_pieces", test_client_bad_pieces);
	add_case(s, "receiver_limit", test_receiver_limit);
	add_case(s, "slow_drop_old", test_slow_drop_old);
	add_case(s, "slow_coalesce", test_slow_coalesce);
	add_case(s, "slow_drop_new", test_slow_drop_new);
	add_case(s, "request_reply", test_request_reply);
	add_case(s, "retained", test_retained);
	add_case(s, "other_user", test_other_user);
	return testbus_run(s, "check_large");
}
