/* SPDX-License-Identifier: MIT */
/*
 * retained.c - libmqbus(3), EXAMPLES, "Retained values and timers": keep
 * a topic's value for later subscribers, have the daemon publish a
 * heartbeat every second even after the program has exited, and see the
 * kept value as a subscriber that came later.  Built by make check, run
 * by tests/examples.sh.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <mqbus.h>

int main(void)
{
	struct mqbus_publish_opts p = MQBUS_PUBLISH_OPTS_INIT;
	struct mqbus_timer_add_opts t = MQBUS_TIMER_ADD_OPTS_INIT;
	mqbus *b = NULL;
	mqbus_msg *m = NULL;
	uint64_t id;
	int r;

	r = mqbus_open(&b, NULL);
	if (r < 0) {
		fprintf(stderr, "cannot connect: %s\n", strerror(-r));
		return 1;
	}
	p.flags = MQBUS_PUBLISH_RETAIN;
	r = mqbus_publish_opts(b, "config/mode", "maintenance", 11, &p);
	/* a publish waits for no answer: this says the daemon kept it */
	if (r == 0)
		r = mqbus_sync(b);
	t.period_ms = 1000;
	t.flags = MQBUS_TIMER_DETACHED;
	if (r == 0)
		r = mqbus_timer_add_opts(b, "host/alive", "yes", 3, &t, &id);
	if (r == 0)
		printf("timer %llu; cancel it with mqbus_timer_cancel()\n",
		       (unsigned long long)id);

	/* a subscriber that comes later gets the value at once */
	if (r == 0)
		r = mqbus_subscribe(b, "config/#");
	if (r == 0)
		r = mqbus_receive(b, &m, 2000);
	if (r == 0 && mqbus_msg_retained(m)) {
		size_t len;
		const char *v = mqbus_msg_payload(m, &len);

		printf("%s was already %.*s\n", mqbus_msg_topic(m), (int)len,
		       v);
	}
	mqbus_msg_free(m);
	if (r < 0)
		fprintf(stderr, "%s\n", mqbus_last_error(b));
	mqbus_free(b);
	return r < 0;
}
