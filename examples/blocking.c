/* SPDX-License-Identifier: MIT */
/*
 * blocking.c - libmqbus(3), EXAMPLES, "Blocking use": subscribe, publish
 * on the pattern, print what arrives until a second passes without a
 * message.  Built by make check, run by tests/examples.sh.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <mqbus.h>

int main(void)
{
	mqbus *b = NULL;
	mqbus_msg *m;
	int r;

	r = mqbus_new(&b);
	if (r < 0)
		return 1;
	r = mqbus_connect(b);
	if (r >= 0)
		r = mqbus_subscribe(b, "disk/+/temp");
	if (r >= 0)
		r = mqbus_publish(b, "disk/sda/temp", "41", 2,
				  MQBUS_PRIORITY_DEFAULT);
	if (r < 0) {
		fprintf(stderr, "%s\n", *mqbus_last_error(b) ?
			mqbus_last_error(b) : strerror(-r));
		mqbus_free(b);
		return 1;
	}
	while ((r = mqbus_receive(b, &m, 1000)) == 0) {
		size_t len;
		const char *p = mqbus_msg_payload(m, &len);

		printf("%s from uid %u: %.*s\n", mqbus_msg_topic(m),
		       (unsigned)mqbus_msg_sender_uid(m), (int)len, p);
		mqbus_msg_free(m);
	}
	if (r != -ETIMEDOUT)
		fprintf(stderr, "receive: %s\n", mqbus_last_error(b));
	mqbus_free(b);
	return r != -ETIMEDOUT;
}
