/* SPDX-License-Identifier: MIT */
/*
 * publish.c - the README's example, saying why it failed when it did:
 * publish TOPIC VALUE (default sensors/disk/temp 41) once, on the bus of
 * $MQBUS_BUS or "mqbus".  One of libmqbus(3)'s EXAMPLES: make check
 * builds it and tests/examples.sh runs it and checks that the page shows
 * this very text.
 */
#include <stdio.h>
#include <string.h>
#include <mqbus.h>

int main(int argc, char **argv)
{
	const char *topic = argc > 1 ? argv[1] : "sensors/disk/temp";
	const char *value = argc > 2 ? argv[2] : "41";
	mqbus *b = NULL;
	int r;

	r = mqbus_new(&b);
	if (r < 0) {
		fprintf(stderr, "%s\n", strerror(-r));
		return 1;
	}
	r = mqbus_connect(b);
	if (r >= 0)
		r = mqbus_publish(b, topic, value, strlen(value),
				  MQBUS_PRIORITY_DEFAULT);
	if (r < 0)
		fprintf(stderr, "%s\n", *mqbus_last_error(b) ?
			mqbus_last_error(b) : strerror(-r));
	mqbus_free(b);
	return r < 0;
}
