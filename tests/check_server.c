/* SPDX-License-Identifier: MIT */
/*
 * check_server.c - two buses in one process.
 *
 * Nothing of a bus is process-wide: its buffer pool, its tables, its wake
 * back-end (the thread back-end's registry aside, which keeps them apart)
 * and its signal belong to its struct server.  The test runs two servers
 * side by side in this process, with each wake-up back-end, and a client
 * process that talks to both: each bus delivers only its own messages,
 * numbers them from 1, and ends holding no buffer.
 */
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "client/mqbus.h"
#include "daemon/log.h"
#include "daemon/server.h"

static const enum wake_method methods[] = { WAKE_NOTIFY, WAKE_THREAD,
					    WAKE_POLL };

/* What the client process checks; its exit status says which failed. */
static int client_check(const char *bus, const char *other)
{
	char payload[64];
	mqbus_msg *m;
	mqbus *b;
	size_t len;
	const void *data;

	if (mqbus_open(&b, bus) < 0)
		return 10;
	if (mqbus_subscribe(b, "t/#") < 0)
		return 11;
	snprintf(payload, sizeof(payload), "on %s", bus);
	if (mqbus_publish(b, "t/x", payload, strlen(payload),
			  MQBUS_PRIORITY_DEFAULT) < 0)
		return 12;
	if (mqbus_receive(b, &m, 5000) < 0)
		return 13;
	data = mqbus_msg_payload(m, &len);
	/* this bus's message, the first this bus numbered */
	if (len != strlen(payload) || memcmp(data, payload, len) != 0)
		return 14;
	if (mqbus_msg_seq(m) != 1)
		return 15;
	mqbus_msg_free(m);
	/* and nothing of the other bus's traffic */
	if (mqbus_receive(b, &m, 200) != -ETIMEDOUT)
		return 16;
	mqbus_free(b);
	(void)other;
	return 0;
}

static void server_pair_start(struct server *s, const char *bus,
			      enum wake_method wake, int signo)
{
	struct server_options opt = {
		.bus = bus,
		.wake = wake,
		.wake_signo = signo,
	};
	char *err = NULL;
	int r = server_init(s, &opt, &err);

	ck_assert_msg(r == 0, "server_init(%s): %s", bus, err ? err : "?");
	free(err);
}

START_TEST(two_buses)
{
	enum wake_method wake = methods[_i];
	struct server a, b;
	char bus_a[32], bus_b[32];
	struct timespec t0, now;
	int status = -1;
	pid_t pid;

	snprintf(bus_a, sizeof(bus_a), "two%da", (int)getpid());
	snprintf(bus_b, sizeof(bus_b), "two%db", (int)getpid());
	server_pair_start(&a, bus_a, wake, SIGRTMIN + 1);
	server_pair_start(&b, bus_b, wake, SIGRTMIN + 2);

	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		sigset_t none;
		int r;

		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		r = client_check(bus_a, bus_b);
		if (r == 0)
			r = client_check(bus_b, bus_a);
		_exit(r);
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		ck_assert_int_eq(server_step(&a), 0);
		ck_assert_int_eq(server_step(&b), 0);
		if (waitpid(pid, &status, WNOHANG) == pid)
			break;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec - t0.tv_sec > 20) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			ck_abort_msg("client did not finish in 20 s");
		}
		usleep(200);
	}
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "client check failed with status %d (see client_check)",
		      WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	/* let each bus see its client go */
	for (int i = 0; i < 200 && (a.peers.count || b.peers.count); i++) {
		server_step(&a);
		server_step(&b);
		usleep(1000);
	}
	ck_assert_uint_eq(a.peers.count, 0);
	ck_assert_uint_eq(b.peers.count, 0);
	/* each bus numbered only its own message */
	ck_assert_uint_eq(a.seq, 1);
	ck_assert_uint_eq(b.seq, 1);
	ck_assert_uint_eq(a.stats.c.delivered, 1);
	ck_assert_uint_eq(b.stats.c.delivered, 1);
	/* every wake-up reached its own bus: none had to be rescued */
	ck_assert_uint_eq(a.stats.wakeups_rescued, 0);
	ck_assert_uint_eq(b.stats.wakeups_rescued, 0);
	/* each pool got back every buffer it lent */
	ck_assert_uint_eq(a.pool.live, 0);
	ck_assert_uint_eq(b.pool.live, 0);
	server_deinit(&a);
	server_deinit(&b);
}
END_TEST

/*
 * The journal's rate limiter bounds the entries of an interval whatever a
 * client does: 1000 keys (a client spraying topics) get at most the
 * slots' worth of entries, the rest are counted as crowded, and after
 * the interval a new key is written again.
 */
START_TEST(ratelimit_keys)
{
	static struct log_ratelimit rl = { .interval_usec = 1000000 };
	uint64_t written = 0;

	for (uint32_t i = 0; i < 1000; i++)
		written += log_ratelimit_hit(&rl, log_ratelimit_key(i, "t"),
					     100, 1) > 0;
	ck_assert_uint_le(written, LOG_RL_SLOTS);
	ck_assert_uint_eq(written + rl.crowded, 1000);
	ck_assert_uint_gt(log_ratelimit_hit(&rl, log_ratelimit_key(5000, "t"),
					    100 + 2000000, 1),
			  0);
}
END_TEST

/*
 * A uid that publishes on thousands of topics in one stats interval
 * takes at most its share of the topic table: others' topics still get
 * entries of their own, not the "other" sum.
 */
START_TEST(topic_share)
{
	struct server s;
	char bus[32], topic[32];
	unsigned made = 0;

	snprintf(bus, sizeof(bus), "share%d", (int)getpid());
	server_pair_start(&s, bus, WAKE_POLL, 0);
	for (unsigned i = 0; i < STATS_TOPICS_MAX; i++) {
		snprintf(topic, sizeof(topic), "spray/%u", i);
		made += stats_topic(&s, topic, NULL, 4242) != NULL;
	}
	ck_assert_uint_eq(made, STATS_TOPICS_PER_UID);
	ck_assert_ptr_nonnull(stats_topic(&s, "mine/x", NULL, 4243));
	/* an entry it has is still found */
	ck_assert_ptr_nonnull(stats_topic(&s, "spray/7", NULL, 4242));
	server_deinit(&s);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("server");
	TCase *tc = tcase_create("two buses");
	SRunner *sr;
	int failed;

	log_init(false);
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, two_buses, 0,
			    sizeof(methods) / sizeof(methods[0]));
	suite_add_tcase(s, tc);
	tc = tcase_create("log rate limit");
	tcase_add_test(tc, ratelimit_keys);
	tcase_add_test(tc, topic_share);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
