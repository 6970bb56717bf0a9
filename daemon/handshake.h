/* SPDX-License-Identifier: MIT */
/*
 * handshake.h - the announce queue and the handshake: how a client
 * becomes a peer without the daemon trusting anything it says.
 *
 * A client creates its tx and rx queues (0600), writes HELLO into its own
 * tx queue and posts ANNOUNCE {tx name} to /BUS.  ANNOUNCE only says where
 * to look.  What the daemon trusts is what the kernel says about the
 * queues (owner, mode) and the process (alive, same uid), and the HELLO,
 * which only the owner of the tx queue can have written.  Then WELCOME
 * goes to rx, and the client is a peer.
 */
#ifndef MQBUS_HANDSHAKE_H
#define MQBUS_HANDSHAKE_H

#include <mqueue.h>
#include <stdbool.h>

#include "daemon/wake.h"

struct server;

/* the announce queue's message size: an ANNOUNCE is a header and a name */
#define HANDSHAKE_ANNOUNCE_MSGSIZE 512
/* descriptors kept in reserve to answer a client when none are left */
#define HANDSHAKE_SPARE_FDS 2

struct handshake {
	struct server *server;
	char *name; /* "/BUS" */
	mqd_t announce;
	bool inherited; /* passed by systemd (socket activation) */
	struct wake_src src;
	unsigned char buf[HANDSHAKE_ANNOUNCE_MSGSIZE];
	int spare[HANDSHAKE_SPARE_FDS]; /* /dev/null, -1 while lent */
};

/*
 * Creates the announce queue of s's bus (replacing a dead daemon's) and
 * registers it for wake-ups; wake_src_ready(&hs->src) starts reading.
 * Returns 0, or -errno with *ret_error saying why in a sentence.
 */
int handshake_open(struct handshake *hs, struct server *s,
		   char **ret_error);

/* Removes the announce queue's name: no new client can announce. */
void handshake_unlink(struct handshake *hs);

/* Closes (and unlinks) the announce queue.  Accepts a closed one. */
void handshake_close(struct handshake *hs);

#endif
