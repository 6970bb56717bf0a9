/* SPDX-License-Identifier: MIT */
/*
 * event-loop.c - libmqbus(3), EXAMPLES, "Event-loop use": the messages of
 * alerts/# through poll(2) and mqbus_process(), until three came.  Built
 * by make check, run by tests/examples.sh.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <mqbus.h>

static void on_message(mqbus *b, const mqbus_msg *m, void *userdata)
{
	unsigned *count = userdata;
	size_t len;
	const char *p = mqbus_msg_payload(m, &len);

	(void)b;
	(*count)++;
	printf("%s: %.*s\n", mqbus_msg_topic(m), (int)len, p);
	fflush(stdout);
}

int main(void)
{
	unsigned count = 0;
	struct pollfd pfd;
	mqbus *b = NULL;
	int r;

	r = mqbus_new(&b);
	if (r >= 0)
		r = mqbus_connect(b);
	if (r >= 0)
		r = mqbus_subscribe(b, "alerts/#");
	if (r < 0) {
		fprintf(stderr, "%s\n", b && *mqbus_last_error(b) ?
			mqbus_last_error(b) : strerror(-r));
		mqbus_free(b);
		return 1;
	}
	mqbus_set_handler(b, on_message, &count);

	pfd.fd = mqbus_get_fd(b);
	pfd.events = POLLIN;
	/* Messages may already wait from before the loop: process first;
	 * while the daemon restarts, the library reconnects. */
	while (((r = mqbus_process(b)) >= 0 ||
		(r == -ENOTCONN && mqbus_reconnecting(b))) && count < 3) {
		if (poll(&pfd, 1, mqbus_get_timeout(b)) < 0 && errno != EINTR)
			break;
	}
	if (r < 0)
		fprintf(stderr, "%s\n", mqbus_last_error(b));
	mqbus_free(b);
	return r < 0;
}
