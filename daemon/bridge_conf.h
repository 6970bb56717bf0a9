/* SPDX-License-Identifier: MIT */
/*
 * bridge_conf.h - the [bridge NAME] sections of mqbusd.conf(5): which MQTT
 * broker a bridge talks to, how, and which topics cross in each direction.
 *
 * Parsed by config_file.c one key at a time (bridge_conf_add(), as
 * policy_add() for [policy]), checked as a whole once the file is read
 * (bridge_conf_check()).  Nothing here needs libmosquitto: a daemon built
 * without it still reads the file and says what it cannot do.
 *
 *   [bridge site]
 *   host = 192.0.2.7
 *   port = 1883
 *   out = sensors/# site1 qos=1     ; local sensors/x -> remote site1/sensors/x
 *   in = site2/# remote priority=3  ; remote site2/x -> local remote/site2/x
 */
#ifndef MQBUS_BRIDGE_CONF_H
#define MQBUS_BRIDGE_CONF_H

#include <stdbool.h>
#include <stddef.h>

#define BRIDGE_NAME_MAX 32

/* One mapping: topics matching pattern cross, prefix put before them. */
struct bridge_map {
	char *pattern; /* out: a local pattern; in: a remote one */
	char *prefix;  /* out: remote prefix; in: local prefix; NULL: none */
	unsigned qos;  /* 0 or 1 */
	int priority;  /* in: the local priority, -1: not set */
	unsigned line;
};

struct bridge_conf {
	char *name;
	unsigned line; /* of the header */
	char *host;
	unsigned port;		/* default 1883, 8883 with a CA */
	char *client_id;	/* NULL: mqbus-HOSTNAME-BUS-NAME */
	char *cafile;		/* TLS when set */
	char *certfile;		/* client certificate, with keyfile */
	char *keyfile;
	char *username;
	char *password_file;	/* its first line is the password */
	char *user;		/* whose identity its messages take; NULL:
				   the daemon's */
	unsigned keepalive;	/* s, default 60 */
	bool clean_session;	/* default true */
	unsigned mqtt_version;	/* 4 (3.1.1) or 5, default 5 */
	unsigned queue;		/* messages held for the broker, 1000 */
	unsigned reconnect_min_ms; /* first back-off, 500 */
	unsigned reconnect_max_ms; /* its cap, 30000 */
	struct bridge_map *out;
	size_t n_out;
	struct bridge_map *in;
	size_t n_in;
	unsigned key_line[20]; /* where each plain key was set (twice?) */
	bool port_set;
};

/* Fills bc with the defaults for a bridge called name (its header at
 * line).  Returns 0 or -ENOMEM. */
int bridge_conf_init(struct bridge_conf *bc, const char *name, size_t len,
		     unsigned line);

/* Frees what bc holds.  Accepts a zeroed bc. */
void bridge_conf_deinit(struct bridge_conf *bc);

/* Whether name (len bytes) may name a bridge: 1 to BRIDGE_NAME_MAX of
 * A-Z a-z 0-9 . _ - */
bool bridge_conf_name_valid(const char *name, size_t len);

/*
 * One "key = value" line of the section.  Returns 0, or -EINVAL (or
 * -ENOMEM) with *ret_error a malloc'ed sentence without file and line.
 */
int bridge_conf_add(struct bridge_conf *bc, const char *key,
		    const char *value, unsigned line, char **ret_error);

/*
 * The section as a whole, after the file is read: host given, key with
 * certificate, at least one mapping, and with MQTT 3.1.1 no in mapping
 * that takes what an out mapping sends (3.1.1 has no no-local: the broker
 * would echo our own messages back).  Returns 0, or -EINVAL with
 * *ret_line and *ret_error set.
 */
int bridge_conf_check(const struct bridge_conf *bc, unsigned *ret_line,
		      char **ret_error);

/* Whether a and b name the same settings (a reload keeps such a bridge
 * connected). */
bool bridge_conf_equal(const struct bridge_conf *a,
		       const struct bridge_conf *b);

/* A deep copy of src into dst; 0 or -ENOMEM (dst zeroed then). */
int bridge_conf_copy(struct bridge_conf *dst, const struct bridge_conf *src);

/* Whether some topic matches both patterns (MQTT rules, '+' and '#'). */
bool bridge_patterns_overlap(const char *a, const char *b);

#endif
