/* SPDX-License-Identifier: MIT */
/*
 * async.c - libmqbus(3), EXAMPLES, "Asynchronous requests": two requests
 * in flight at once, their answers (or failures) through mqbus_process(),
 * poll(2)'s timeout from mqbus_get_timeout().  Built by make check, run by
 * tests/examples.sh.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <mqbus.h>

static int pending;

static void on_reply(mqbus *b, int error, const mqbus_msg *reply,
		     void *userdata)
{
	const char *topic = userdata;
	const char *p;
	size_t len;

	pending--;
	if (error < 0) {
		printf("%s: %s\n", topic, mqbus_last_error(b));
		return;
	}
	p = mqbus_msg_payload(reply, &len);
	printf("%s: %.*s\n", topic, (int)len, p);
}

int main(void)
{
	static const char *const disks[] = {
		"disk/sda/smart", "disk/sdb/smart",
	};
	mqbus *b = NULL;
	int r;

	r = mqbus_new(&b);
	if (r >= 0)
		r = mqbus_connect(b);
	if (r < 0) {
		fprintf(stderr, "%s\n", b && *mqbus_last_error(b) ?
			mqbus_last_error(b) : strerror(-r));
		mqbus_free(b);
		return 1;
	}
	for (int i = 0; i < 2; i++)
		if (mqbus_request_async(b, disks[i], "status?", 7, 2000,
					on_reply, (void *)disks[i]) == 0)
			pending++;
	while (pending > 0) {
		struct pollfd pfd = { .fd = mqbus_get_fd(b),
				      .events = POLLIN };

		if (poll(&pfd, 1, mqbus_get_timeout(b)) < 0 && errno != EINTR)
			break;
		if (mqbus_process(b) < 0) /* runs on_reply */
			break;
	}
	mqbus_free(b);
	return pending != 0;
}
