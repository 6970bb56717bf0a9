/* SPDX-License-Identifier: MIT */
/*
 * bridge.h - mqbusd's MQTT bridges: chosen topics forwarded to an MQTT
 * broker and taken from it ([bridge NAME] in mqbusd.conf(5)).
 *
 * Each bridge is a libmosquitto client driven from the bus's own libevent
 * loop: its socket is watched for reading (and for writing while output
 * waits), a one-second event runs keepalive, connecting never blocks, and
 * there is no thread.  Towards the bus a bridge is an internal subscriber
 * of its out patterns (a struct subscriber in the router whose deliver
 * function hands the message to the broker or queues it), and a publisher
 * of what its in mappings take, under its own identity: sender uid the
 * bridge's user, pid mqbusd's, client id BRIDGE_CLIENT_ID_BASE plus its
 * position among the [bridge] sections.
 *
 * A message that came in from a bridge never goes out through any bridge:
 * bridges skip what is routed while a bridge injects.
 */
#ifndef MQBUS_BRIDGE_H
#define MQBUS_BRIDGE_H

#include <stddef.h>

struct server;

/* Client ids of the bridges (peer ids stay below it, see peer.h). */
#define BRIDGE_CLIENT_ID_BASE 0xffffff00u

/*
 * Starts the bridges of s->cfg: subscribes their out patterns and begins
 * connecting.  Returns 0, or -errno with *ret_error one sentence (a
 * password file that cannot be read, an unknown user).  An unreachable
 * broker is not an error: the bridge keeps trying.
 */
int bridge_start(struct server *s, char **ret_error);

/*
 * After a reload: bridges whose section is unchanged stay connected,
 * changed ones start again, gone ones stop, new ones start.  Failures are
 * logged.
 */
void bridge_reload(struct server *s);

/* Disconnects and frees every bridge.  Safe to call twice. */
void bridge_stop(struct server *s);

/* Appends "bridge.NAME.KEY=VALUE" lines to the STATS text in buf (cap
 * bytes, *len used so far, kept NUL-terminated). */
void bridge_stats_text(struct server *s, char *buf, size_t cap, size_t *len);

#endif
