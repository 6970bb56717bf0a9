/* SPDX-License-Identifier: MIT */
/*
 * handlers.c - libmqbus(3), EXAMPLES, "Per-subscription handlers": each
 * pattern with its own handler, a message that matches two going to
 * both, and what matches none to the default handler; until four
 * messages were handled.  Built by make check, run by tests/examples.sh.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <mqbus.h>

static unsigned handled;

static void on_temp(mqbus *b, const mqbus_msg *m, void *userdata)
{
	size_t len;
	const char *p = mqbus_msg_payload(m, &len);

	(void)b;
	printf("%s %s: %.*s degrees\n", (const char *)userdata,
	       mqbus_msg_topic(m), (int)len, p);
}

static void on_any(mqbus *b, const mqbus_msg *m, void *userdata)
{
	(void)b;
	printf("%s %s\n", (const char *)userdata, mqbus_msg_topic(m));
	handled++;
}

static void on_other(mqbus *b, const mqbus_msg *m, void *userdata)
{
	(void)b;
	(void)userdata;
	printf("other %s\n", mqbus_msg_topic(m));
	handled++;
}

int main(void)
{
	mqbus *b = NULL;
	int r;

	printf("sensors/+/temp %s sensors/disk/temp\n",
	       mqbus_topic_match("sensors/+/temp", "sensors/disk/temp") == 1 ?
		       "matches" : "does not match");
	r = mqbus_new(&b);
	if (r >= 0)
		r = mqbus_connect(b);
	/* in this order: a temperature goes to on_temp, then on_any */
	if (r >= 0)
		r = mqbus_subscribe_cb(b, "sensors/+/temp", on_temp,
				       (void *)"temp");
	if (r >= 0)
		r = mqbus_subscribe_cb(b, "sensors/#", on_any, (void *)"any");
	if (r >= 0)
		r = mqbus_subscribe(b, "alerts/#");
	if (r < 0) {
		fprintf(stderr, "%s\n", b && *mqbus_last_error(b) ?
			mqbus_last_error(b) : strerror(-r));
		mqbus_free(b);
		return 1;
	}
	mqbus_set_handler(b, on_other, NULL);
	printf("ready\n");
	fflush(stdout);

	while (handled < 4) {
		struct pollfd pfd = { .fd = mqbus_get_fd(b),
				      .events = POLLIN };

		r = mqbus_process(b);
		fflush(stdout);
		if (r < 0 && !(r == -ENOTCONN && mqbus_reconnecting(b)))
			break;
		if (handled < 4 && poll(&pfd, 1, mqbus_get_timeout(b)) < 0 &&
		    errno != EINTR)
			break;
	}
	if (r < 0)
		fprintf(stderr, "%s\n", mqbus_last_error(b));
	mqbus_free(b);
	return r < 0;
}
