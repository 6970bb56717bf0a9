/* SPDX-License-Identifier: MIT */
/*
 * alloc-driver.c - steady traffic through mqbusd for tests/alloc.sh.
 *
 *   alloc-driver BUS COUNT [SIZE]
 *
 * Connects a subscriber and a publisher (two handles in this process) to
 * BUS and passes COUNT messages of SIZE bytes (default 256) on one topic
 * from one to the other, in batches of BATCH: small enough that neither
 * queue fills, so the run is the same every time, and large enough that
 * the daemon drains several messages per wake-up as under load.  Every
 * message is checked (order and content).  Exit 0 when all arrived, 1
 * with a sentence on stderr when not.  A daemon just started may not
 * serve the bus yet: connecting is retried for up to ten seconds.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client/mqbus.h"

#define TOPIC "alloc/data"
#define BATCH 5
#define MAX_SIZE 1024

/* mqbus_open(), retried while no daemon serves the bus (-ENOENT). */
static int open_retry(mqbus **ret, const char *bus)
{
	struct timespec pause = {0, 10 * 1000 * 1000};
	int r;

	for (int i = 0; i < 1000; i++) {
		r = mqbus_open(ret, bus);
		if (r != -ENOENT)
			return r;
		nanosleep(&pause, NULL);
	}
	return r;
}

static int fail(const char *what, mqbus *b)
{
	fprintf(stderr, "alloc-driver: %s: %s\n", what,
		b ? mqbus_last_error(b) : "");
	return 1;
}

static void fill(unsigned char *buf, size_t size, uint64_t seq)
{
	memcpy(buf, &seq, sizeof(seq));
	for (size_t i = sizeof(seq); i < size; i++)
		buf[i] = (unsigned char)(seq + i);
}

int main(int argc, char **argv)
{
	unsigned char buf[MAX_SIZE], want[MAX_SIZE];
	unsigned long long count;
	mqbus *sub = NULL, *pub = NULL;
	size_t size = 256;
	uint64_t sent = 0, got = 0;
	int r = 1;

	if (argc < 3 || argc > 4) {
		fprintf(stderr, "usage: alloc-driver BUS COUNT [SIZE]\n");
		return 2;
	}
	count = strtoull(argv[2], NULL, 10);
	if (argc == 4)
		size = strtoul(argv[3], NULL, 10);
	if (count == 0 || size < sizeof(uint64_t) || size > MAX_SIZE) {
		fprintf(stderr, "alloc-driver: bad COUNT or SIZE\n");
		return 2;
	}
	if (open_retry(&sub, argv[1]) < 0)
		return fail("cannot connect the subscriber", NULL);
	if (mqbus_subscribe(sub, TOPIC) < 0) {
		r = fail("cannot subscribe", sub);
		goto out;
	}
	if (mqbus_open(&pub, argv[1]) < 0) {
		r = fail("cannot connect the publisher", NULL);
		goto out;
	}
	while (got < count) {
		while (sent < count && sent - got < BATCH) {
			fill(buf, size, sent);
			if (mqbus_publish(pub, TOPIC, buf, size,
					  MQBUS_PRIORITY_DEFAULT) < 0) {
				r = fail("publish", pub);
				goto out;
			}
			sent++;
		}
		while (got < sent) {
			mqbus_msg *m;
			const void *p;
			size_t len;

			if (mqbus_receive(sub, &m, 10000) < 0) {
				fprintf(stderr,
					"alloc-driver: message %llu of %llu "
					"did not arrive: %s\n",
					(unsigned long long)got, count,
					mqbus_last_error(sub));
				goto out;
			}
			p = mqbus_msg_payload(m, &len);
			fill(want, size, got);
			if (len != size || memcmp(p, want, size) != 0) {
				fprintf(stderr,
					"alloc-driver: message %llu is not the "
					"one sent\n",
					(unsigned long long)got);
				mqbus_msg_free(m);
				goto out;
			}
			mqbus_msg_free(m);
			got++;
		}
	}
	r = 0;
out:
	mqbus_free(pub);
	mqbus_free(sub);
	return r;
}
