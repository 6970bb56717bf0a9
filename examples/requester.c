/* SPDX-License-Identifier: MIT */
/*
 * requester.c - libmqbus(3), EXAMPLES, "Request and reply", the
 * requester: sends TEXT (default hello) to text/upper and prints the
 * answer and who gave it.  Built by make check, run by tests/examples.sh
 * with responder.c.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <mqbus.h>

int main(int argc, char **argv)
{
	const char *text = argc > 1 ? argv[1] : "hello";
	mqbus *b = NULL;
	mqbus_msg *m;
	size_t len;
	int r;

	r = mqbus_new(&b);
	if (r >= 0)
		r = mqbus_connect(b);
	if (r >= 0)
		r = mqbus_request(b, "text/upper", text, strlen(text), 1000,
				  &m);
	if (r == 0) {
		const char *p = mqbus_msg_payload(m, &len);

		printf("%.*s from pid %d\n", (int)len, p,
		       (int)mqbus_msg_sender_pid(m));
		mqbus_msg_free(m);
	} else if (r == -EHOSTUNREACH) {
		fprintf(stderr, "nobody serves text/upper\n");
	} else {
		fprintf(stderr, "%s\n", b && *mqbus_last_error(b) ?
			mqbus_last_error(b) : strerror(-r));
	}
	mqbus_free(b);
	return r < 0;
}
