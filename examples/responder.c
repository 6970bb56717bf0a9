/* SPDX-License-Identifier: MIT */
/*
 * responder.c - libmqbus(3), EXAMPLES, "Request and reply", the
 * responder: answers requests on text/upper with what they carry in upper
 * case, COUNT of them (default: for ever).  Built by make check, run by
 * tests/examples.sh with requester.c.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <mqbus.h>

int main(int argc, char **argv)
{
	long left = argc > 1 ? atol(argv[1]) : -1;
	mqbus *b = NULL;
	mqbus_msg *m;

	if (mqbus_open(&b, NULL) < 0 || mqbus_subscribe(b, "text/upper") < 0) {
		fprintf(stderr, "%s\n", b ? mqbus_last_error(b) :
			"cannot connect");
		mqbus_free(b);
		return 1;
	}
	printf("ready\n");
	fflush(stdout);
	while (left != 0 && mqbus_receive(b, &m, -1) == 0) {
		char out[2048];
		size_t len;
		const char *p = mqbus_msg_payload(m, &len);

		if (mqbus_msg_is_request(m)) {
			if (len > sizeof(out))
				len = sizeof(out);
			for (size_t i = 0; i < len; i++)
				out[i] = toupper((unsigned char)p[i]);
			if (mqbus_reply(b, m, out, len) == 0 && left > 0)
				left--;
		}
		mqbus_msg_free(m);
	}
	mqbus_free(b);
	return left != 0;
}
