/* SPDX-License-Identifier: MIT */
/*
 * check_client.c - the contract of libmqbus's calls, against the real
 * daemon: per-subscription handlers (mqbus_subscribe_cb()) and
 * mqbus_topic_match(), checked against what the daemon routes; and the
 * rules libmqbus(3) states for every call (setters after connect, the
 * last error after a success, invalid MQBUS_QUEUE_* values, the topic
 * length limit MQBUS_TOPIC_MAX).
 *
 * Each test starts mqbusd on a bus of its own (tests/testbus.h) and ends
 * by stopping it and checking that nothing of the bus is left.
 */
#include <check.h>
#include <dlfcn.h>
#include <errno.h>
#include <mqueue.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/mqbus.h"
#include "tests/testbus.h"

/* Long enough for any one delivery on a loaded machine. */
#define RECV_MS 2000
/* How long a message that must not come is waited for. */
#define QUIET_MS 200
/*
 * Small queues: RLIMIT_MSGQUEUE is per uid across IPC namespaces and
 * shared with whatever else root runs; a few clients of these cost some
 * 10 KiB each.
 */
#define QMAX 4
#define QSIZE 1024

/* -------------------------------------------------------------------- */
/* mqbus_topic_match()                                                   */

static const char *const match_patterns[] = {
	"tm/a", "tm/+", "tm/#", "tm/a/#", "tm/+/c", "tm/+/#", "+/a",
	"#",    "tm/a/b/c",
};
static const char *const match_topics[] = {
	"tm", "tm/a", "tm/b", "tm/a/b", "tm/b/c", "tm/a/b/c", "tmx/a",
	"tm/ab",
};
#define N_PATTERNS (sizeof(match_patterns) / sizeof(match_patterns[0]))
#define N_TOPICS (sizeof(match_topics) / sizeof(match_topics[0]))

/*
 * For each pattern, the daemon's routing decides which of the topics
 * reach a subscriber of it; mqbus_topic_match() must say the same for
 * every pair.  The expected table is the daemon's, not one written here,
 * so the two matchers cannot drift apart unnoticed.
 */
START_TEST(test_topic_match_daemon)
{
	struct testbus tb = { 0 };
	mqbus *sub, *pub;
	mqbus_msg *m;
	unsigned pairs = 0, matched = 0;

	testbus_start(&tb, NULL);
	sub = testbus_connect(&tb, QMAX, QSIZE);
	pub = testbus_connect(&tb, QMAX, QSIZE);
	testbus_subscribe(sub, "tm-end");
	for (size_t p = 0; p < N_PATTERNS; p++) {
		bool got[N_TOPICS] = { false };

		testbus_subscribe(sub, match_patterns[p]);
		for (size_t t = 0; t < N_TOPICS; t++)
			testbus_publish_index(pub, match_topics[t],
					      (uint32_t)t,
					      MQBUS_PRIORITY_DEFAULT);
		/* delivered in order (one priority): the marker comes
		 * after every topic the pattern let through, once also
		 * where the pattern matches it too */
		testbus_publish_index(pub, "tm-end", 1000 + (uint32_t)p,
				      MQBUS_PRIORITY_DEFAULT);
		for (;;) {
			uint32_t i;

			m = testbus_recv(sub, RECV_MS);
			i = testbus_msg_index(m);
			if (strcmp(mqbus_msg_topic(m), "tm-end") == 0) {
				ck_assert_uint_eq(i, 1000 + (uint32_t)p);
				mqbus_msg_free(m);
				break;
			}
			ck_assert_uint_lt(i, N_TOPICS);
			ck_assert_str_eq(mqbus_msg_topic(m), match_topics[i]);
			got[i] = true;
			mqbus_msg_free(m);
		}
		ck_assert_int_eq(mqbus_unsubscribe(sub, match_patterns[p]), 0);
		for (size_t t = 0; t < N_TOPICS; t++) {
			int r = mqbus_topic_match(match_patterns[p],
						  match_topics[t]);

			ck_assert_msg(r == (int)got[t],
				      "mqbus_topic_match(\"%s\", \"%s\") = %d, "
				      "the daemon %s it",
				      match_patterns[p], match_topics[t], r,
				      got[t] ? "delivered" : "did not deliver");
			pairs++;
			matched += got[t];
		}
	}
	/* the table has both answers, many times */
	ck_assert_uint_gt(matched, 10);
	ck_assert_uint_gt(pairs - matched, 10);

	mqbus_free(pub);
	mqbus_free(sub);
	testbus_finish(&tb);
}
END_TEST

/* What is not a pattern or not a topic is -EINVAL, never an answer. */
START_TEST(test_topic_match_invalid)
{
	char longest[MQBUS_TOPIC_MAX + 2];

	ck_assert_int_eq(mqbus_topic_match("a/#", "a"), 1);
	ck_assert_int_eq(mqbus_topic_match("a/+", "a"), 0);
	ck_assert_int_eq(mqbus_topic_match("a/+", "a/b"), 1);
	ck_assert_int_eq(mqbus_topic_match(NULL, "a"), -EINVAL);
	ck_assert_int_eq(mqbus_topic_match("a", NULL), -EINVAL);
	ck_assert_int_eq(mqbus_topic_match("a/#/b", "a/x/b"), -EINVAL);
	ck_assert_int_eq(mqbus_topic_match("a+", "a+"), -EINVAL);
	ck_assert_int_eq(mqbus_topic_match("a/+", "a/+"), -EINVAL);
	ck_assert_int_eq(mqbus_topic_match("#", "a//b"), -EINVAL);
	ck_assert_int_eq(mqbus_topic_match("", ""), -EINVAL);
	memset(longest, 'x', sizeof(longest));
	longest[MQBUS_TOPIC_MAX] = '\0';
	ck_assert_int_eq(mqbus_topic_match("#", longest), 1);
	longest[MQBUS_TOPIC_MAX] = 'x';
	longest[MQBUS_TOPIC_MAX + 1] = '\0';
	ck_assert_int_eq(mqbus_topic_match("#", longest), -EINVAL);
}
END_TEST

/* -------------------------------------------------------------------- */
/* mqbus_subscribe_cb()                                                  */

#define LOG_MAX 64

/* The calls the handlers saw, in order: "name:topic:index". */
struct cb_log {
	char calls[LOG_MAX][64];
	unsigned n;
	mqbus *unsub_b;          /* handler "self" unsubscribes itself */
	const char *unsub_pattern;
	const char *sub_pattern; /* handler "adder" subscribes this */
	struct cb_ctx *sub_ctx;
};

struct cb_ctx {
	const char *name;
	struct cb_log *log;
};

static void cb_note(struct cb_ctx *c, const mqbus_msg *m)
{
	ck_assert_uint_lt(c->log->n, LOG_MAX);
	snprintf(c->log->calls[c->log->n++], sizeof(c->log->calls[0]),
		 "%s:%s:%u", c->name, mqbus_msg_topic(m),
		 testbus_msg_index(m));
}

static void cb_handler(mqbus *b, const mqbus_msg *m, void *userdata);

static void cb_handler(mqbus *b, const mqbus_msg *m, void *userdata)
{
	struct cb_ctx *c = userdata;
	struct cb_log *log = c->log;

	cb_note(c, m);
	if (strcmp(c->name, "self") == 0 && log->unsub_pattern) {
		ck_assert_int_eq(mqbus_unsubscribe(b, log->unsub_pattern), 0);
		log->unsub_pattern = NULL;
	}
	if (strcmp(c->name, "adder") == 0 && log->sub_pattern) {
		ck_assert_int_eq(mqbus_subscribe_cb(b, log->sub_pattern,
						    cb_handler, log->sub_ctx),
				 0);
		log->sub_pattern = NULL;
	}
}

/* The handler of mqbus_set_handler(): what no subscription took. */
static void cb_default(mqbus *b, const mqbus_msg *m, void *userdata)
{
	(void)b;
	cb_note(userdata, m);
}

/* Runs mqbus_process() until log has want calls, or RECV_MS. */
static void cb_run(mqbus *b, struct cb_log *log, unsigned want)
{
	uint64_t deadline = testbus_now_ms() + RECV_MS;

	while (log->n < want && testbus_now_ms() < deadline) {
		struct pollfd p = { .fd = mqbus_get_fd(b), .events = POLLIN };

		poll(&p, 1, 50);
		ck_assert_msg(mqbus_process(b) >= 0, "mqbus_process: %s",
			      mqbus_last_error(b));
	}
	ck_assert_msg(log->n == want, "%u handler calls, not %u", log->n,
		      want);
}

/* Checks that the log holds exactly the calls given, in order, then
 * empties it. */
static void cb_expect(struct cb_log *log, const char *const *calls,
		      unsigned n)
{
	for (unsigned i = 0; i < n && i < log->n; i++)
		ck_assert_msg(strcmp(log->calls[i], calls[i]) == 0,
			      "call %u: \"%s\", not \"%s\"", i, log->calls[i],
			      calls[i]);
	ck_assert_uint_eq(log->n, n);
	log->n = 0;
}

#define CB_EXPECT(log, ...)                                                  \
	do {                                                                 \
		static const char *const want_[] = { __VA_ARGS__ };          \
		cb_expect(log, want_, sizeof(want_) / sizeof(want_[0]));     \
	} while (0)

/*
 * A message goes to every subscription handler whose pattern matches, in
 * subscription order, once each; one that none matches goes to the
 * mqbus_set_handler() handler (mqbus_process()) or is returned
 * (mqbus_receive()).  Unsubscribing removes the handler, also from
 * inside a handler; a handler added during a call is not offered that
 * call's message.
 */
START_TEST(test_subscribe_cb)
{
	struct testbus tb = { 0 };
	struct cb_log log = { .n = 0 };
	struct cb_ctx all = { "all", &log }, x = { "x", &log },
		      plus = { "plus", &log }, def = { "def", &log },
		      self = { "self", &log }, adder = { "adder", &log },
		      late = { "late", &log };
	mqbus *sub, *pub;
	mqbus_msg *m;

	testbus_start(&tb, NULL);
	sub = testbus_connect(&tb, QMAX, QSIZE);
	pub = testbus_connect(&tb, QMAX, QSIZE);

	ck_assert_int_eq(mqbus_subscribe_cb(sub, "cb/#", cb_handler, &all), 0);
	ck_assert_str_eq(mqbus_last_error(sub), "");
	ck_assert_int_eq(mqbus_subscribe_cb(sub, "cb/x", cb_handler, &x), 0);
	ck_assert_int_eq(mqbus_subscribe_cb(sub, "cb/+", cb_handler, &plus),
			 0);
	testbus_subscribe(sub, "other/#");
	mqbus_set_handler(sub, cb_default, &def);

	/* refusals: no handler, bad pattern, already subscribed */
	ck_assert_int_eq(mqbus_subscribe_cb(sub, "cb/y", NULL, NULL), -EINVAL);
	ck_assert_str_ne(mqbus_last_error(sub), "");
	ck_assert_int_eq(mqbus_subscribe_cb(sub, "cb/#/y", cb_handler, &x),
			 -EINVAL);
	ck_assert_int_eq(mqbus_subscribe_cb(sub, "cb/x", cb_handler, &plus),
			 -EEXIST);
	ck_assert_int_eq(mqbus_subscribe_cb(sub, "other/#", cb_handler, &x),
			 -EEXIST);

	testbus_publish_index(pub, "cb/x", 1, MQBUS_PRIORITY_DEFAULT);
	testbus_publish_index(pub, "cb/y", 2, MQBUS_PRIORITY_DEFAULT);
	testbus_publish_index(pub, "cb/y/z", 3, MQBUS_PRIORITY_DEFAULT);
	testbus_publish_index(pub, "other/q", 4, MQBUS_PRIORITY_DEFAULT);
	cb_run(sub, &log, 7);
	/* cb/x: all three in subscription order (not pattern order, not
	 * the order of specificity); cb/y: two; the rest one each, the
	 * one no subscription handler takes going to the default */
	CB_EXPECT(&log, "all:cb/x:1", "x:cb/x:1", "plus:cb/x:1",
		  "all:cb/y:2", "plus:cb/y:2", "all:cb/y/z:3",
		  "def:other/q:4");

	/* mqbus_receive(): handlers run inside it, what they do not
	 * take is returned */
	testbus_publish_index(pub, "cb/x", 5, MQBUS_PRIORITY_DEFAULT);
	testbus_publish_index(pub, "other/r", 6, MQBUS_PRIORITY_DEFAULT);
	ck_assert_int_eq(mqbus_receive(sub, &m, RECV_MS), 0);
	ck_assert_str_eq(mqbus_msg_topic(m), "other/r");
	ck_assert_uint_eq(testbus_msg_index(m), 6);
	mqbus_msg_free(m);
	CB_EXPECT(&log, "all:cb/x:5", "x:cb/x:5", "plus:cb/x:5");

	/* without a default handler, mqbus_process() keeps what no
	 * handler took for mqbus_receive(), in order, and still hands
	 * the later messages to their handlers */
	mqbus_set_handler(sub, NULL, NULL);
	testbus_publish_index(pub, "other/s", 7, MQBUS_PRIORITY_DEFAULT);
	testbus_publish_index(pub, "cb/y/w", 8, MQBUS_PRIORITY_DEFAULT);
	testbus_publish_index(pub, "other/t", 9, MQBUS_PRIORITY_DEFAULT);
	cb_run(sub, &log, 1);
	CB_EXPECT(&log, "all:cb/y/w:8");
	testbus_expect_index(sub, "other/s", 7, RECV_MS);
	testbus_expect_index(sub, "other/t", 9, RECV_MS);
	mqbus_set_handler(sub, cb_default, &def);

	/* unsubscribing removes the handler: cb/x now reaches "all" and
	 * "plus" only */
	ck_assert_int_eq(mqbus_unsubscribe(sub, "cb/x"), 0);
	testbus_publish_index(pub, "cb/x", 10, MQBUS_PRIORITY_DEFAULT);
	cb_run(sub, &log, 2);
	CB_EXPECT(&log, "all:cb/x:10", "plus:cb/x:10");

	/* mqbus_receive() when only handlers' messages come: they run
	 * inside it, and it ends at its timeout */
	testbus_publish_index(pub, "cb/x", 13, MQBUS_PRIORITY_DEFAULT);
	ck_assert_int_eq(mqbus_receive(sub, &m, 300), -ETIMEDOUT);
	CB_EXPECT(&log, "all:cb/x:13", "plus:cb/x:13");

	/* a handler that unsubscribes itself, and one that subscribes a
	 * new handler, in the middle of a message's walk */
	log.unsub_b = sub;
	log.unsub_pattern = "cb/z/#";
	log.sub_pattern = "cb/z/+";
	log.sub_ctx = &late;
	ck_assert_int_eq(mqbus_subscribe_cb(sub, "cb/z/#", cb_handler, &self),
			 0);
	ck_assert_int_eq(mqbus_subscribe_cb(sub, "cb/z/a", cb_handler,
					    &adder),
			 0);
	testbus_publish_index(pub, "cb/z/a", 11, MQBUS_PRIORITY_DEFAULT);
	testbus_publish_index(pub, "cb/z/a", 12, MQBUS_PRIORITY_DEFAULT);
	cb_run(sub, &log, 6);
	CB_EXPECT(&log, "all:cb/z/a:11", "self:cb/z/a:11", "adder:cb/z/a:11",
		  "all:cb/z/a:12", "adder:cb/z/a:12", "late:cb/z/a:12");
	testbus_expect_nothing(sub, QUIET_MS);

	mqbus_free(pub);
	mqbus_free(sub);
	testbus_finish(&tb);
}
END_TEST

struct cb_conn {
	int restored, restored_err;
};

static void cb_conn_cb(mqbus *b, int event, int error, void *userdata)
{
	struct cb_conn *c = userdata;

	(void)b;
	if (event == MQBUS_RECONNECTED) {
		c->restored++;
		c->restored_err = error;
	}
}

/*
 * The daemon is killed and a new one started: the library makes the
 * subscription again and the handler still gets its messages, from
 * mqbus_process() and from mqbus_receive().  _i 0: the new daemon adopts
 * the queues; _i 1: they are gone and the client connects afresh.
 */
START_TEST(test_subscribe_cb_reconnect)
{
	struct testbus tb = { 0 };
	struct cb_log log = { .n = 0 };
	struct cb_ctx h = { "h", &log }, def = { "def", &log };
	struct cb_conn conn = { 0, 0 };
	uint64_t deadline;
	mqbus *sub, *pub;
	mqbus_msg *m;

	testbus_start(&tb, NULL);
	sub = testbus_connect(&tb, QMAX, QSIZE);
	mqbus_set_connection_cb(sub, cb_conn_cb, &conn);
	mqbus_set_handler(sub, cb_default, &def);
	ck_assert_int_eq(mqbus_subscribe_cb(sub, "rc/+", cb_handler, &h), 0);
	testbus_subscribe(sub, "plain");

	testbus_kill(&tb);
	if (_i == 1) {
		char names[1024], *save = NULL, *name;

		ck_assert_int_gt(testbus_queues(tb.bus, getpid(), names,
						sizeof(names)),
				 0);
		for (name = strtok_r(names, " ", &save); name;
		     name = strtok_r(NULL, " ", &save)) {
			char path[128];

			snprintf(path, sizeof(path), "/%s",
				 name + (*name == '/'));
			mq_unlink(path);
		}
	}
	testbus_restart(&tb, NULL);
	deadline = testbus_now_ms() + 8000;
	while (conn.restored == 0 && testbus_now_ms() < deadline) {
		struct pollfd p = { .fd = mqbus_get_fd(sub), .events = POLLIN };
		int t = mqbus_get_timeout(sub);

		poll(&p, 1, t >= 0 && t < 50 ? t : 50);
		mqbus_process(sub);
	}
	ck_assert_msg(conn.restored == 1 && conn.restored_err == 0,
		      "not reconnected: %d, %s", conn.restored,
		      mqbus_last_error(sub));

	pub = testbus_connect(&tb, QMAX, QSIZE);
	testbus_publish_index(pub, "rc/a", 1, MQBUS_PRIORITY_DEFAULT);
	testbus_publish_index(pub, "plain", 2, MQBUS_PRIORITY_DEFAULT);
	cb_run(sub, &log, 2);
	CB_EXPECT(&log, "h:rc/a:1", "def:plain:2");
	testbus_publish_index(pub, "rc/b", 3, MQBUS_PRIORITY_DEFAULT);
	testbus_publish_index(pub, "plain", 4, MQBUS_PRIORITY_DEFAULT);
	ck_assert_int_eq(mqbus_receive(sub, &m, RECV_MS), 0);
	ck_assert_str_eq(mqbus_msg_topic(m), "plain");
	mqbus_msg_free(m);
	CB_EXPECT(&log, "h:rc/b:3");

	mqbus_free(pub);
	mqbus_free(sub);
	testbus_finish(&tb);
}
END_TEST

/* -------------------------------------------------------------------- */
/* the rules of every call                                               */

/* A subscriber of topic that never answers the requests it gets. */
static mqbus *mute_responder(struct testbus *tb, const char *topic)
{
	mqbus *b = testbus_connect(tb, QMAX, QSIZE);

	testbus_subscribe(b, topic);
	return b;
}

/*
 * After connecting, the bus and the queue size cannot change (-EISCONN,
 * with a sentence), the timeout and reconnecting can, and a new timeout
 * governs the very next blocking call.
 */
START_TEST(test_setters_connected)
{
	struct testbus tb = { 0 };
	long maxmsg = 0, msgsize = 0;
	mqbus *b, *mute;
	mqbus_msg *reply = NULL;
	uint64_t t0, took;

	testbus_start(&tb, NULL);
	b = testbus_connect(&tb, QMAX, QSIZE);
	mute = mute_responder(&tb, "set/req");

	ck_assert_int_eq(mqbus_set_bus(b, "elsewhere"), -EISCONN);
	ck_assert_ptr_nonnull(strstr(mqbus_last_error(b), "connected"));
	ck_assert_int_eq(mqbus_set_queue_size(b, 5, 512), -EISCONN);
	ck_assert_ptr_nonnull(strstr(mqbus_last_error(b), "connected"));
	ck_assert_int_eq(mqbus_get_queue_size(b, &maxmsg, &msgsize), 0);
	ck_assert_int_eq(maxmsg, QMAX);
	ck_assert_int_eq(msgsize, QSIZE);
	ck_assert_int_eq(mqbus_connect(b), -EISCONN);
	ck_assert_ptr_nonnull(strstr(mqbus_last_error(b), tb.bus));

	ck_assert_int_eq(mqbus_set_timeout(b, -2), -EINVAL);
	ck_assert_str_ne(mqbus_last_error(b), "");
	ck_assert_int_eq(mqbus_set_timeout(b, 150), 0);
	ck_assert_str_eq(mqbus_last_error(b), "");
	ck_assert_int_eq(mqbus_set_reconnect(b, 0), 0);
	ck_assert_int_eq(mqbus_set_reconnect(b, 1), 0);

	/* a request given -1 waits the handle's timeout, now 150 ms
	 * instead of the default 5000 */
	t0 = testbus_now_ms();
	ck_assert_int_eq(mqbus_request(b, "set/req", "q", 1, -1, &reply),
			 -ETIMEDOUT);
	took = testbus_now_ms() - t0;
	ck_assert_msg(took >= 140 && took < 2500,
		      "the request timed out after %llu ms, not 150",
		      (unsigned long long)took);
	ck_assert_ptr_null(reply);

	mqbus_free(mute);
	mqbus_free(b);
	testbus_finish(&tb);
}
END_TEST

/* Fails a call on b, so that there is a sentence to clear. */
static void make_error(mqbus *b)
{
	ck_assert_int_eq(mqbus_publish(b, "bad/+", "x", 1,
				       MQBUS_PRIORITY_DEFAULT),
			 -EINVAL);
	ck_assert_str_ne(mqbus_last_error(b), "");
}

#define CLEARS(b, call)                                                      \
	do {                                                                 \
		int r_;                                                      \
		make_error(b);                                               \
		r_ = (call);                                                 \
		ck_assert_msg(r_ >= 0, "%s: %d: %s", #call, r_,              \
			      mqbus_last_error(b));                          \
		ck_assert_msg(*mqbus_last_error(b) == '\0',                  \
			      "%s succeeded and left \"%s\"", #call,         \
			      mqbus_last_error(b));                          \
	} while (0)

static void noop_handler(mqbus *b, const mqbus_msg *m, void *userdata)
{
	(void)b;
	(void)m;
	(void)userdata;
}

static void noop_reply(mqbus *b, int error, const mqbus_msg *reply,
		       void *userdata)
{
	(void)b;
	(void)error;
	(void)reply;
	(void)userdata;
}

/*
 * One rule for the last error: every call that takes a handle and
 * returns an error code sets it, to a sentence when it fails and to ""
 * when it succeeds, so a sentence never outlives the next call.
 */
START_TEST(test_last_error_cleared)
{
	struct mqbus_publish_opts po = MQBUS_PUBLISH_OPTS_INIT;
	struct testbus tb = { 0 };
	mqbus *b, *pub, *fresh;
	mqbus_msg *m = NULL;
	uint64_t id = 0;
	char *text = NULL;

	testbus_start(&tb, NULL);
	b = testbus_connect(&tb, QMAX, QSIZE);
	pub = testbus_connect(&tb, QMAX, QSIZE);

	CLEARS(b, mqbus_publish(b, "le/a", "x", 1, MQBUS_PRIORITY_DEFAULT));
	CLEARS(b, mqbus_publish_opts(b, "le/a", "x", 1, &po));
	CLEARS(b, mqbus_subscribe(b, "le/s"));
	CLEARS(b, mqbus_unsubscribe(b, "le/s"));
	CLEARS(b, mqbus_subscribe_group(b, "le/g", "grp"));
	CLEARS(b, mqbus_unsubscribe_group(b, "le/g", "grp"));
	CLEARS(b, mqbus_subscribe_cb(b, "le/cb", noop_handler, NULL));
	CLEARS(b, mqbus_monitor(b, "le/mon"));
	CLEARS(b, mqbus_unmonitor(b, "le/mon"));
	CLEARS(b, mqbus_set_timeout(b, 2000));
	CLEARS(b, mqbus_set_reconnect(b, 1));
	CLEARS(b, mqbus_sync(b));
	CLEARS(b, mqbus_stats(b, &text));
	free(text);
	CLEARS(b, mqbus_query(b, "clients", &text));
	free(text);
	CLEARS(b, mqbus_timer_add(b, "le/t", "x", 1, MQBUS_PRIORITY_DEFAULT,
				  60000, 0, 0, &id));
	CLEARS(b, mqbus_timer_list(b, &text));
	free(text);
	CLEARS(b, mqbus_timer_cancel(b, id));
	CLEARS(b, mqbus_request_async(b, "le/nobody", "q", 1, 100, noop_reply,
				      NULL));

	/* receive, reply and process, each after a failure */
	testbus_subscribe(b, "le/r");
	testbus_publish_index(pub, "le/r", 1, MQBUS_PRIORITY_DEFAULT);
	CLEARS(b, mqbus_receive(b, &m, RECV_MS));
	mqbus_msg_free(m);
	ck_assert_int_eq(mqbus_request_async(pub, "le/r", "q", 1, 5000,
					     noop_reply, NULL),
			 0);
	CLEARS(b, mqbus_receive(b, &m, RECV_MS));
	ck_assert(mqbus_msg_is_request(m));
	CLEARS(b, mqbus_reply(b, m, "a", 1));
	mqbus_msg_free(m);
	mqbus_set_handler(b, noop_handler, NULL);
	testbus_publish_index(pub, "le/r", 2, MQBUS_PRIORITY_DEFAULT);
	CLEARS(b, mqbus_process(b));

	/* the setters of an unconnected handle */
	ck_assert_int_eq(mqbus_new(&fresh), 0);
	ck_assert_int_eq(mqbus_set_bus(fresh, "a/b"), -EINVAL);
	ck_assert_str_ne(mqbus_last_error(fresh), "");
	ck_assert_int_eq(mqbus_set_bus(fresh, tb.bus), 0);
	ck_assert_str_eq(mqbus_last_error(fresh), "");
	ck_assert_int_eq(mqbus_set_queue_size(fresh, 0, 512), -EINVAL);
	ck_assert_str_ne(mqbus_last_error(fresh), "");
	ck_assert_int_eq(mqbus_set_queue_size(fresh, 4, 512), 0);
	ck_assert_str_eq(mqbus_last_error(fresh), "");
	ck_assert_int_eq(mqbus_set_reconnect(fresh, 7), -EINVAL);
	ck_assert_str_ne(mqbus_last_error(fresh), "");
	ck_assert_int_eq(mqbus_connect(fresh), 0);
	ck_assert_str_eq(mqbus_last_error(fresh), "");
	mqbus_free(fresh);

	mqbus_free(pub);
	mqbus_free(b);
	testbus_finish(&tb);
}
END_TEST

/*
 * An invalid MQBUS_QUEUE_* value is refused, never ignored: mqbus_new()
 * names it at once, mqbus_get_queue_size() fails, mqbus_connect() fails
 * with the same sentence; mqbus_set_queue_size() replaces it.
 */
START_TEST(test_env_queue_invalid)
{
	static const char *const cases[][2] = {
		{ "MQBUS_QUEUE_MAXMSG", "-3" },
		{ "MQBUS_QUEUE_MAXMSG", "10x" },
		{ "MQBUS_QUEUE_MSGSIZE", "0" },
		{ "MQBUS_QUEUE_MSGSIZE", "big" },
	};
	struct testbus tb = { 0 };

	testbus_start(&tb, NULL);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char want[128], said[512];
		long maxmsg = 0, msgsize = 0;
		mqbus *b;

		setenv(cases[i][0], cases[i][1], 1);
		ck_assert_int_eq(mqbus_new(&b), 0);
		unsetenv(cases[i][0]);
		snprintf(want, sizeof(want), "invalid %s='%s' in the environment",
			 cases[i][0], cases[i][1]);
		ck_assert_msg(strstr(mqbus_last_error(b), want),
			      "after mqbus_new(): \"%s\"", mqbus_last_error(b));
		snprintf(said, sizeof(said), "%s", mqbus_last_error(b));
		ck_assert_int_eq(mqbus_get_queue_size(b, &maxmsg, &msgsize),
				 -EINVAL);
		ck_assert_int_eq(mqbus_set_bus(b, tb.bus), 0);
		ck_assert_int_eq(mqbus_connect(b), -EINVAL);
		ck_assert_str_eq(mqbus_last_error(b), said);
		ck_assert_int_eq(mqbus_set_queue_size(b, 4, 512), 0);
		ck_assert_int_eq(mqbus_get_queue_size(b, &maxmsg, &msgsize), 0);
		ck_assert_int_eq(maxmsg, 4);
		ck_assert_int_eq(mqbus_connect(b), 0);
		mqbus_free(b);
	}

	/* two bad variables: setting one does not let the other pass */
	{
		mqbus *b;

		setenv("MQBUS_BUS", "a/b", 1);
		setenv("MQBUS_QUEUE_MSGSIZE", "-1", 1);
		ck_assert_int_eq(mqbus_new(&b), 0);
		unsetenv("MQBUS_BUS");
		unsetenv("MQBUS_QUEUE_MSGSIZE");
		ck_assert_ptr_nonnull(strstr(mqbus_last_error(b),
					     "MQBUS_BUS='a/b'"));
		ck_assert_int_eq(mqbus_set_bus(b, tb.bus), 0);
		ck_assert_int_eq(mqbus_get_queue_size(b, NULL, NULL), -EINVAL);
		ck_assert_int_eq(mqbus_connect(b), -EINVAL);
		ck_assert_ptr_nonnull(strstr(mqbus_last_error(b),
					     "MQBUS_QUEUE_MSGSIZE='-1'"));
		mqbus_free(b);
	}
	testbus_finish(&tb);
}
END_TEST

/*
 * MQBUS_TOPIC_MAX is the daemon's limit: a topic of that many bytes
 * goes through, one byte more is -EINVAL wherever a topic or pattern is
 * taken, with a sentence that gives the limit.
 */
START_TEST(test_topic_max)
{
	char topic[MQBUS_TOPIC_MAX + 2], limit[16];
	struct testbus tb = { 0 };
	mqbus *sub, *pub;
	mqbus_msg *m = NULL;

	ck_assert_int_eq(MQBUS_TOPIC_MAX, 255);
	snprintf(limit, sizeof(limit), "%d", MQBUS_TOPIC_MAX);
	memset(topic, 'a', sizeof(topic));
	topic[MQBUS_TOPIC_MAX] = '\0';

	testbus_start(&tb, NULL);
	sub = testbus_connect(&tb, QMAX, QSIZE);
	pub = testbus_connect(&tb, QMAX, QSIZE);
	testbus_subscribe(sub, topic);
	testbus_publish_index(pub, topic, 7, MQBUS_PRIORITY_DEFAULT);
	testbus_expect_index(sub, topic, 7, RECV_MS);

	topic[MQBUS_TOPIC_MAX] = 'a';
	topic[MQBUS_TOPIC_MAX + 1] = '\0';
	ck_assert_int_eq(mqbus_publish(pub, topic, "x", 1,
				       MQBUS_PRIORITY_DEFAULT),
			 -EINVAL);
	ck_assert_ptr_nonnull(strstr(mqbus_last_error(pub), limit));
	ck_assert_int_eq(mqbus_request(pub, topic, "x", 1, 100, &m), -EINVAL);
	ck_assert_int_eq(mqbus_timer_add(pub, topic, "x", 1,
					 MQBUS_PRIORITY_DEFAULT, 100, 0, 0,
					 NULL),
			 -EINVAL);
	ck_assert_int_eq(mqbus_subscribe(sub, topic), -EINVAL);
	ck_assert_ptr_nonnull(strstr(mqbus_last_error(sub), limit));
	ck_assert_int_eq(mqbus_subscribe_cb(sub, topic, noop_handler, NULL),
			 -EINVAL);
	ck_assert_int_eq(mqbus_topic_match(topic, "a"), -EINVAL);
	testbus_expect_nothing(sub, QUIET_MS);

	mqbus_free(pub);
	mqbus_free(sub);
	testbus_finish(&tb);
}
END_TEST

START_TEST(test_handler_symbols)
{
	static const char *const added[] = {
		"mqbus_subscribe_cb",
		"mqbus_topic_match",
	};

	for (size_t i = 0; i < sizeof(added) / sizeof(added[0]); i++) {
		ck_assert_msg(dlvsym(RTLD_DEFAULT, added[i], "LIBMQBUS_1.6"),
			      "%s@LIBMQBUS_1.6 not found", added[i]);
		ck_assert_msg(!dlvsym(RTLD_DEFAULT, added[i], "LIBMQBUS_1.5"),
			      "%s has the version LIBMQBUS_1.5", added[i]);
		ck_assert_msg(!dlvsym(RTLD_DEFAULT, added[i], "LIBMQBUS_1"),
			      "%s has the version LIBMQBUS_1", added[i]);
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("client");

	testbus_init();
	testbus_add_case(s, "topic_match_daemon", test_topic_match_daemon, 1);
	testbus_add_case(s, "topic_match_invalid", test_topic_match_invalid,
			 1);
	testbus_add_case(s, "subscribe_cb", test_subscribe_cb, 1);
	testbus_add_case(s, "subscribe_cb_reconnect",
			 test_subscribe_cb_reconnect, 2);
	testbus_add_case(s, "handler_symbols", test_handler_symbols, 1);
	testbus_add_case(s, "setters_connected", test_setters_connected, 1);
	testbus_add_case(s, "last_error_cleared", test_last_error_cleared, 1);
	testbus_add_case(s, "env_queue_invalid", test_env_queue_invalid, 1);
	testbus_add_case(s, "topic_max", test_topic_max, 1);

	return testbus_run(s, "check_client");
}
