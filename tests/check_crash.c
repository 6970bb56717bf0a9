/* SPDX-License-Identifier: MIT */
/*
 * check_crash.c - the daemon SIGKILLed mid-stream, twice, under four
 * publishers and four subscribers.
 *
 * Each publisher numbers its messages and counts one as sent only when
 * mqbus_publish() returned 0 for it (it is in its tx queue then, or
 * routed).  The promise checked: every sent message reaches every
 * subscriber exactly once, across both restarts, because what is in a
 * client's tx queue outlives the daemon and the library reconnects on its
 * own.  Before each crash the publishers pause for a moment, so that
 * what the daemon holds in memory is only what waits on the subscribers'
 * pending lists (asked of the daemon): a crash may lose those, nothing
 * else.  Also
 * checked: a retained value and a periodic timer made before the first
 * crash are there after the second (the state directory).  The figures
 * (sent, delivered, lost, duplicated, time from each restart to the first
 * delivery after it) are printed.
 */
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "client/mqbus.h"
#include "tests/testbus.h"

#define N_PUB 4
#define N_SUB 4
#define MAX_SEQ 100000
#define RUN_MS 1200  /* streaming between crashes */
#define DOWN_MS 400  /* no daemon */
#define QUIET_MS 1500 /* a subscriber is done after this long of silence */

struct sub_result {
	uint32_t got[N_PUB];  /* distinct messages of each publisher */
	uint32_t dups[N_PUB]; /* seen twice */
	uint32_t max[N_PUB];  /* highest seq + 1 */
	uint32_t disconnects, reconnects;
};

static void on_connection(mqbus *b, int event, int error, void *userdata)
{
	struct sub_result *r = userdata;

	if (event == MQBUS_DISCONNECTED)
		r->disconnects++;
	else if (event == MQBUS_RECONNECTED)
		r->reconnects++;
}

/* A subscriber: counts what arrives until told to stop and then quiet. */
static void run_subscriber(const struct testbus *tb, int ready_fd,
			   int stop_fd, int result_fd)
{
	static uint8_t seen[N_PUB][MAX_SEQ];
	struct sub_result r = { 0 };
	bool stopping = false;
	uint64_t last = testbus_now_ms();
	mqbus *b = testbus_connect(tb, 10, 384);
	char c;

	mqbus_set_connection_cb(b, on_connection, &r);
	testbus_subscribe(b, "cr/p/#");
	testbus_write_all(ready_fd, "r", 1);
	for (;;) {
		mqbus_msg *m = NULL;
		unsigned p, seq;
		size_t len;
		const char *data;
		char text[32];
		int rc = mqbus_receive(b, &m, 100);

		if (rc == 0) {
			data = mqbus_msg_payload(m, &len);
			snprintf(text, sizeof(text), "%.*s",
				 (int)(len < 31 ? len : 31), data);
			if (sscanf(text, "%u %u", &p, &seq) == 2 &&
			    p < N_PUB && seq < MAX_SEQ) {
				if (seen[p][seq]++)
					r.dups[p]++;
				else
					r.got[p]++;
				if (seq + 1 > r.max[p])
					r.max[p] = seq + 1;
			}
			mqbus_msg_free(m);
			last = testbus_now_ms();
			continue;
		}
		if (!stopping && testbus_read_all(stop_fd, &c, 1, 0) == 0)
			stopping = true;
		if (stopping && testbus_now_ms() - last > QUIET_MS)
			break;
	}
	testbus_write_all(result_fd, &r, sizeof(r));
	mqbus_free(b);
}

/* A publisher: numbered messages, each retried until it is in tx. */
static void run_publisher(const struct testbus *tb, unsigned id,
			  int ready_fd, int stop_fd, int result_fd)
{
	mqbus *b = testbus_connect(tb, 10, 384);
	uint32_t sent = 0, failed = 0;
	char topic[32], text[32], c;

	snprintf(topic, sizeof(topic), "cr/p/%u", id);
	testbus_write_all(ready_fd, "r", 1);
	while (sent < MAX_SEQ && testbus_read_all(stop_fd, &c, 1, 0) != 0) {
		int n = snprintf(text, sizeof(text), "%u %u", id, sent);

		if (mqbus_publish(b, topic, text, (size_t)n,
				  MQBUS_PRIORITY_DEFAULT) == 0)
			sent++;
		else
			failed++;
		usleep(1500);
	}
	{
		uint32_t v[3] = { id, sent, failed };

		testbus_write_all(result_fd, v, sizeof(v));
	}
	mqbus_free(b);
}

/* The parent's own subscriber: when did deliveries resume? */
static uint64_t first_after(mqbus *probe, mqbus *asker, uint64_t since,
			   int ms)
{
	uint64_t end = testbus_now_ms() + (uint64_t)ms, first = 0;
	mqbus_msg *m;

	while (testbus_now_ms() < end) {
		/* the asker notices a restart and comes back too */
		mqbus_process(asker);
		if (mqbus_receive(probe, &m, 20) == 0) {
			if (!first)
				first = testbus_now_ms() - since;
			mqbus_msg_free(m);
		}
	}
	return first;
}

/* What the daemon holds on the subscribers' pending lists (pid= and
 * pending= of the "clients" list): the only deliveries a crash may lose. */
static unsigned long pending_of(mqbus *asker, const pid_t *subs, int n)
{
	unsigned long sum = 0;
	char *text = NULL, *line, *save = NULL;

	ck_assert_int_eq(mqbus_query(asker, "clients", &text), 0);
	for (line = strtok_r(text, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		const char *pid = strstr(line, " pid="), *pend;

		pend = strstr(line, " pending=");
		if (!pid || !pend)
			continue;
		for (int i = 0; i < n; i++)
			if (atol(pid + 5) == (long)subs[i])
				sum += strtoul(pend + 9, NULL, 10);
	}
	free(text);
	return sum;
}

/*
 * The crash: the publishers pause, the daemon reads what they queued
 * (then it holds in memory only what waits on pending lists, *held), and
 * is SIGKILLed; the publishers go on while no daemon runs, their messages
 * wait in their tx queues, and a daemon starts again.
 */
static void crash_and_restart(struct testbus *tb, const char *config,
			      mqbus *asker, const pid_t *pubs,
			      const pid_t *subs, unsigned long *held)
{
	for (int i = 0; i < N_PUB; i++)
		kill(pubs[i], SIGSTOP);
	usleep(200 * 1000);
	*held = pending_of(asker, subs, N_SUB);
	testbus_kill(tb);
	for (int i = 0; i < N_PUB; i++)
		kill(pubs[i], SIGCONT);
	usleep(DOWN_MS * 1000);
	testbus_restart(tb, config);
}

START_TEST(test_crash_twice)
{
	const char *config = "[bus]\nrestart_grace_ms = 3000\n"
			     "timer_min_period_ms = 10\n";
	int ready[2], stop_pub[2], stop_sub[2], result[2];
	pid_t pubs[N_PUB], subs[N_SUB];
	struct sub_result res[N_SUB];
	uint32_t sent[N_PUB], failed[N_PUB];
	uint64_t resume_ms[2], t;
	unsigned long held[2] = { 0, 0 };
	char state_dir[] = "/tmp/mqbus-crash-XXXXXX", path[300], c;
	struct mqbus_timer_add_opts topts = MQBUS_TIMER_ADD_OPTS_INIT;
	struct testbus tb = { 0 };
	unsigned long long total_sent = 0, delivered = 0, lost = 0, dups = 0;
	mqbus *probe, *asker, *b;
	mqbus_msg *m;
	uint64_t timer_id = 0;

	/* retained values and timers survive in the state directory */
	ck_assert_ptr_nonnull(mkdtemp(state_dir));
	setenv("STATE_DIRECTORY", state_dir, 1);
	testbus_start(&tb, config);
	testbus_pipe(ready);
	testbus_pipe(stop_pub);
	testbus_pipe(stop_sub);
	testbus_pipe(result);

	for (int i = 0; i < N_SUB; i++) {
		subs[i] = testbus_fork();
		if (subs[i] == 0) {
			run_subscriber(&tb, ready[1], stop_sub[0], result[1]);
			_exit(0);
		}
	}
	for (int i = 0; i < N_SUB; i++)
		ck_assert_int_eq(testbus_read_all(ready[0], &c, 1, 5000), 0);
	probe = testbus_connect(&tb, 10, 384);
	testbus_subscribe(probe, "cr/p/#");
	asker = testbus_connect(&tb, 4, 4096); /* lines of the lists */

	/* state: a retained value and a periodic detached timer */
	b = testbus_connect(&tb, 4, 384);
	ck_assert_int_eq(mqbus_publish_flags(b, "cr/kept", "v1", 2,
					     MQBUS_PRIORITY_DEFAULT,
					     MQBUS_PUBLISH_RETAIN),
			 0);
	topts.flags = MQBUS_TIMER_DETACHED;
	topts.when = 50;
	topts.period_ms = 50;
	ck_assert_int_eq(mqbus_timer_add_opts(b, "cr/tick", "t", 1, &topts,
					      &timer_id),
			 0);
	ck_assert_int_eq(mqbus_sync(b), 0);
	mqbus_free(b);
	usleep(1200 * 1000); /* the state is written within a second */

	for (unsigned i = 0; i < N_PUB; i++) {
		pubs[i] = testbus_fork();
		if (pubs[i] == 0) {
			run_publisher(&tb, i, ready[1], stop_pub[0],
				      result[1]);
			_exit(0);
		}
	}
	for (int i = 0; i < N_PUB; i++)
		ck_assert_int_eq(testbus_read_all(ready[0], &c, 1, 5000), 0);

	first_after(probe, asker, testbus_now_ms(), RUN_MS);
	for (int k = 0; k < 2; k++) {
		crash_and_restart(&tb, config, asker, pubs, subs, &held[k]);
		t = testbus_now_ms();
		resume_ms[k] = first_after(probe, asker, t, RUN_MS + 3000);
		ck_assert_msg(resume_ms[k] > 0,
			      "no delivery within %d ms of restart %d",
			      RUN_MS + 3000, k + 1);
	}

	/* stop publishing, let every subscriber drain */
	for (int i = 0; i < N_PUB; i++)
		testbus_write_all(stop_pub[1], "s", 1);
	for (int i = 0; i < N_PUB; i++) {
		uint32_t v[3];

		ck_assert_int_eq(testbus_read_all(result[0], v, sizeof(v),
						  10000),
				 0);
		ck_assert_uint_lt(v[0], N_PUB);
		sent[v[0]] = v[1];
		failed[v[0]] = v[2];
	}
	for (int i = 0; i < N_PUB; i++)
		ck_assert_int_eq(testbus_wait(pubs[i], 5000), 0);
	for (int i = 0; i < N_SUB; i++)
		testbus_write_all(stop_sub[1], "s", 1);
	for (int i = 0; i < N_SUB; i++)
		ck_assert_int_eq(testbus_read_all(result[0], &res[i],
						  sizeof(res[i]), 15000),
				 0);
	for (int i = 0; i < N_SUB; i++)
		ck_assert_int_eq(testbus_wait(subs[i], 5000), 0);

	for (int p = 0; p < N_PUB; p++)
		total_sent += sent[p];
	for (int i = 0; i < N_SUB; i++)
		for (int p = 0; p < N_PUB; p++) {
			delivered += res[i].got[p];
			dups += res[i].dups[p];
			if (res[i].got[p] < sent[p])
				lost += sent[p] - res[i].got[p];
		}
	printf("crash_twice: %d publishers sent %llu (publish calls that "
	       "failed and were retried: %u %u %u %u), %d subscribers: "
	       "delivered %llu of %llu, lost %llu, duplicated %llu; first "
	       "delivery %" PRIu64 " ms and %" PRIu64 " ms after the "
	       "restarts\n",
	       N_PUB, total_sent, failed[0], failed[1], failed[2], failed[3],
	       N_SUB, delivered, total_sent * N_SUB, lost, dups,
	       resume_ms[0], resume_ms[1]);
	fflush(stdout);
	ck_assert_msg(total_sent > 1000, "only %llu messages sent",
		      total_sent);
	printf("crash_twice: the daemon held %lu and %lu deliveries on "
	       "pending lists when it was killed\n",
	       held[0], held[1]);
	fflush(stdout);
	/* lost: at most what only the daemon's memory held */
	ck_assert_msg(lost <= held[0] + held[1] && dups == 0,
		      "%llu messages lost (the daemon held %lu), %llu "
		      "duplicated across two crashes",
		      lost, held[0] + held[1], dups);
	for (int i = 0; i < N_SUB; i++)
		ck_assert_msg(res[i].disconnects == 2 && res[i].reconnects == 2,
			      "subscriber %d: %u disconnections, %u "
			      "reconnections, expected 2 and 2",
			      i, res[i].disconnects, res[i].reconnects);

	/* retained value and timer after two crashes */
	b = testbus_connect(&tb, 4, 384);
	testbus_subscribe(b, "cr/kept");
	ck_assert_int_eq(mqbus_receive(b, &m, 3000), 0);
	ck_assert_msg(mqbus_msg_retained(m), "cr/kept: not a retained value");
	mqbus_msg_free(m);
	testbus_subscribe(b, "cr/tick");
	ck_assert_int_eq(mqbus_receive(b, &m, 3000), 0);
	ck_assert_str_eq(mqbus_msg_topic(m), "cr/tick");
	mqbus_msg_free(m);
	mqbus_free(b);

	mqbus_free(asker);
	mqbus_free(probe);
	testbus_finish(&tb);
	unsetenv("STATE_DIRECTORY");
	snprintf(path, sizeof(path), "rm -rf '%s'", state_dir);
	ck_assert_int_eq(system(path), 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("crash");

	testbus_init();
	testbus_add_case(s, "crash_twice", test_crash_twice, 1);
	return testbus_run(s, "crash");
}
