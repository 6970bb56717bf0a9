/* SPDX-License-Identifier: MIT */
/*
 * log-emit - writes mqbusd's log events with known figures, for
 * tests/journal.sh, through the daemon's own log module (daemon/log.c).
 *
 *   log-emit [--log=TARGET] [-b BUS] [-v] all
 *   log-emit [--log=TARGET] [-b BUS] [-v] ratelimit
 *   log-emit [--log=TARGET] [-b BUS] [-v] stats-bus SEQ INTERVAL_USEC
 *            [NAME=N...]
 *   log-emit [--log=TARGET] [-b BUS] [-v] stats-topic SEQ INTERVAL_USEC
 *            TOPIC|- [NAME=N...]
 *
 * "all" writes one entry of every event, with the figures written out
 * below (tests/journal.sh expects exactly these), after three free-text
 * lines: debug, info and a log_warn() with errno ENOENT.  "ratelimit" sends five
 * slow-consumer events of one key 100 ms apart and one a second after the
 * first, through a limiter of one second, on a clock of its own: two
 * entries, counts 1 and 5.  "stats-bus" and "stats-topic" write one
 * delivery-stats entry; NAME is a counter (published, dropped_backlog,
 * ...), for the bus also total.NAME, clients, subscriptions,
 * pending_bytes_max, p50, p99, max; "-" as TOPIC is the entry of the
 * other topics (other=N sets their number).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/log.h"

static int usage(void)
{
	fprintf(stderr,
		"usage: log-emit [--log=TARGET] [-b BUS] [-v] all|ratelimit|"
		"stats-bus SEQ USEC [NAME=N...]|"
		"stats-topic SEQ USEC TOPIC|- [NAME=N...]\n");
	return 2;
}

static int parse_u64(const char *s, uint64_t *ret)
{
	char *end;

	errno = 0;
	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	*ret = strtoull(s, &end, 10);
	if (errno || *end)
		return -EINVAL;
	return 0;
}

/* Points at the counter called name in c, or NULL. */
static uint64_t *counter(struct log_counters *c, const char *name)
{
#define X(field, member, label)                                                \
	if (strcmp(name, #member) == 0)                                        \
		return &c->member;
	LOG_COUNTERS(X)
#undef X
	return NULL;
}

static void emit_all(void)
{
	const struct log_client alice = {
	    .id = 7, .uid = 1001, .pid = 4242, .comm = "sensor-feed"};
	const struct log_client bob = {
	    .id = 9, .uid = 1002, .pid = 5151, .comm = "slow reader"};
	const struct log_counters totals = {
	    .published = 120,
	    .delivered = 340,
	    .dropped_backlog = 5,
	    .dropped_oldest = 4,
	    .dropped_too_large = 3,
	    .dropped_disconnect = 2,
	    .dropped_error = 1,
	    .coalesced = 6,
	    .requests = 11,
	    .replies = 10,
	    .no_responders = 1,
	};
	struct log_bus_stats bus = {
	    .seq = 3,
	    .interval_usec = 60000000,
	    .delta = totals,
	    .total = totals,
	    .pending_bytes_max = 65536,
	    .clients = 4,
	    .subscriptions = 12,
	    .latency_p50_nsec = 1500,
	    .latency_p99_nsec = 42000,
	    .latency_max_nsec = 900000,
	};
	struct log_topic_stats topic = {
	    .seq = 3,
	    .interval_usec = 60000000,
	    .topic = "sensors/disk/temp",
	    .delta = {.published = 60, .delivered = 180, .dropped_backlog = 2},
	};

	/* free-text lines: the debug one only with -v */
	log_debug("a debug line %d", 1);
	log_info("an info line %s", "here");
	errno = ENOENT;
	log_warn("opening %s", "/nonexistent");

	bus.total.published = 1000;
	bus.total.delivered = 3000;
	log_started("0.1.0", "notify", "/etc/mqbusd.conf");
	log_stopping("SIGTERM", 3, 3600000000ULL);
	log_reloaded("/etc/mqbusd.conf", 4);
	log_reload_refused("/etc/mqbusd.conf", 17, "unknown key 'prio'");
	log_client_connected(&alice);
	log_client_left(&alice, "exited", 12345678, &totals);
	log_handshake_refused("/bus.77.0.tx", 1003, 77,
			      "rx queue is readable by others");
	log_slow_consumer(NULL, 0, &bob, "sensors/disk/temp", "drop-old", 25);
	log_too_large(NULL, 0, &bob, "blobs/big", 9000, 8192, 1);
	log_bad_messages(&alice, 64, "bad magic", true);
	log_kernel_limit("fs.mqueue.queues_max", 256, "mq_open /bus.12.0.rx",
			 ENOSPC, 1001,
			 "raise it with sysctl fs.mqueue.queues_max=1024");
	log_stats_bus(&bus);
	log_stats_topic(&topic);
	topic.topic = NULL;
	topic.other_topics = 8;
	topic.delta = (struct log_counters){.published = 9, .delivered = 9};
	log_stats_topic(&topic);
	log_policy_refused(NULL, 0, &alice, "publish", "secret/plans",
			   "/etc/mqbus/mqbusd.conf", 12, false, 1);
	log_policy_refused(NULL, 0, &bob, "subscribe", "secret/#",
			   "/etc/mqbus/mqbusd.conf", 3, true, 4);
	log_quota_refused(NULL, 0, &bob, "max_subscriptions_per_uid",
			  "sensors/#",
			  "uid 1002 has reached max_subscriptions_per_uid (64)",
			  2);
}

static void emit_ratelimit(void)
{
	static struct log_ratelimit rl = {.interval_usec = 1000000};
	const struct log_client bob = {
	    .id = 9, .uid = 1002, .pid = 5151, .comm = "slow reader"};

	/* t = 10.0 s: written (1); 10.1 .. 10.4: held (4); 11.0: 5 */
	for (uint64_t t = 10000000; t <= 10400000; t += 100000)
		log_slow_consumer(&rl, t, &bob, "rl/topic", "drop-new", 1);
	log_slow_consumer(&rl, 11000000, &bob, "rl/topic", "drop-new", 1);
}

static int emit_stats(int argc, char **argv, bool is_topic)
{
	struct log_bus_stats bus = {0};
	struct log_topic_stats topic = {0};
	struct log_counters *delta = is_topic ? &topic.delta : &bus.delta;
	uint64_t seq, usec;
	int i = 2;

	if (argc < 2 + is_topic || parse_u64(argv[0], &seq) < 0 ||
	    parse_u64(argv[1], &usec) < 0)
		return usage();
	if (is_topic) {
		topic.topic = strcmp(argv[2], "-") == 0 ? NULL : argv[2];
		i = 3;
	}
	for (; i < argc; i++) {
		char *eq = strchr(argv[i], '=');
		uint64_t v, *p = NULL;

		if (!eq || parse_u64(eq + 1, &v) < 0)
			return usage();
		*eq = '\0';
		if (strncmp(argv[i], "total.", 6) == 0 && !is_topic)
			p = counter(&bus.total, argv[i] + 6);
		else if (is_topic && strcmp(argv[i], "other") == 0)
			p = &topic.other_topics;
		else if (!is_topic && strcmp(argv[i], "clients") == 0)
			p = &bus.clients;
		else if (!is_topic && strcmp(argv[i], "subscriptions") == 0)
			p = &bus.subscriptions;
		else if (!is_topic && strcmp(argv[i], "pending_bytes_max") == 0)
			p = &bus.pending_bytes_max;
		else if (!is_topic && strcmp(argv[i], "p50") == 0)
			p = &bus.latency_p50_nsec;
		else if (!is_topic && strcmp(argv[i], "p99") == 0)
			p = &bus.latency_p99_nsec;
		else if (!is_topic && strcmp(argv[i], "max") == 0)
			p = &bus.latency_max_nsec;
		else
			p = counter(delta, argv[i]);
		if (!p) {
			fprintf(stderr, "log-emit: unknown figure '%s'\n",
				argv[i]);
			return 2;
		}
		*p = v;
	}
	if (is_topic) {
		topic.seq = seq;
		topic.interval_usec = usec;
		log_stats_topic(&topic);
	} else {
		bus.seq = seq;
		bus.interval_usec = usec;
		log_stats_bus(&bus);
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"log", required_argument, NULL, 'L'},
	    {"bus", required_argument, NULL, 'b'},
	    {"verbose", no_argument, NULL, 'v'},
	    {NULL, 0, NULL, 0},
	};
	enum log_target target = LOG_TARGET_AUTO;
	const char *bus = "mqbus";
	bool verbose = false;
	int c;

	while ((c = getopt_long(argc, argv, "+b:v", longopts, NULL)) != -1) {
		switch (c) {
		case 'L':
			if (log_target_parse(optarg, &target) < 0)
				return usage();
			break;
		case 'b':
			bus = optarg;
			break;
		case 'v':
			verbose = true;
			break;
		default:
			return usage();
		}
	}
	if (optind >= argc)
		return usage();
	log_setup(target, bus, verbose);
	if (strcmp(argv[optind], "all") == 0 && optind + 1 == argc)
		emit_all();
	else if (strcmp(argv[optind], "ratelimit") == 0 && optind + 1 == argc)
		emit_ratelimit();
	else if (strcmp(argv[optind], "stats-bus") == 0)
		c = emit_stats(argc - optind - 1, argv + optind + 1, false);
	else if (strcmp(argv[optind], "stats-topic") == 0)
		c = emit_stats(argc - optind - 1, argv + optind + 1, true);
	else
		return usage();
	if (c > 0)
		return c;
	/* "journal" or "stderr", so that a test knows which was chosen */
	printf("%s\n", log_is_journal() ? "journal" : "stderr");
	return 0;
}
