/* SPDX-License-Identifier: MIT */
/*
 * peer.h - the other brokers mqbus-bench --peers measures mqbus against:
 * dbus-broker with sd-bus clients (peer-dbus.c) and mosquitto with
 * libmosquitto clients (peer-mqtt.c).
 *
 * Each peer has two halves.  The orchestrator (mqbus-bench.c) starts a
 * private broker of the peer for the peer rows: prepare() writes its
 * config into a directory of its own and finds out whether it can run
 * here at all, exec() runs in the process the orchestrator forked for it,
 * ready() waits until it serves and finds the process whose CPU time the
 * rows measure, and cleanup() removes what prepare() made.  The workers
 * (forked like every worker, bench-work.c) are the peer's clients: a
 * publisher, subscribers, a responder and a requester, which use
 * bench.h's work_*() steps, so that they pace, stamp and check every
 * message exactly as the mqbus clients do.
 */
#ifndef MQBUS_BENCH_PEER_H
#define MQBUS_BENCH_PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "tests/bench/bench.h"

/* A private broker of a peer, started for the peer rows. */
struct peer_broker {
	enum bench_peer peer;
	pid_t pid;	     /* the process started (and ended) */
	pid_t cpu_pid;	     /* the broker itself: its CPU is measured */
	char dir[64];	     /* config, socket and log */
	char log[128];	     /* its stderr */
	char addr[160];	     /* what clients connect to (job->peer_addr) */
	unsigned port;	     /* mqtt: the TCP port (job->peer_port) */
	int listen_fd;	     /* dbus: the listening socket it inherits */
	bool fake_journal;   /* dbus: give the launcher a journal */
};

struct peer_ops {
	const char *name;   /* "dbus-broker", "mosquitto" */
	const char *column; /* the JSON key of the ratio: "dbus_broker" */
	const char *version; /* a command whose first line is the version */
	/*
	 * Makes b's directory and config.  Returns 0, or -1 with why the
	 * peer cannot be measured here in why ("dbus-broker not
	 * installed"): the peer rows are then skipped, and say so.
	 */
	int (*prepare)(struct peer_broker *b, char *why, size_t len);
	/* In the forked process: runs the broker; never returns. */
	void (*exec)(struct peer_broker *b) __attribute__((noreturn));
	/* Returns 0 once the broker serves, 1 if not yet, -1 with a
	 * sentence in why if it cannot. */
	int (*ready)(struct peer_broker *b, char *why, size_t len);
	void (*cleanup)(struct peer_broker *b);
};

extern const struct peer_ops peer_dbus_ops, peer_mqtt_ops;

/* The peer's ops, by enum bench_peer. */
const struct peer_ops *peer_ops_of(enum bench_peer peer);

/* Makes a directory others may enter (the clients run as other uids). */
int peer_dir_make(struct peer_broker *b, const char *what, char *why,
		  size_t len);
void peer_dir_remove(struct peer_broker *b);
/* The first line of the peer's version command, or "?". */
void peer_version(enum bench_peer peer, char *buf, size_t len);
/* The first of PATH, /usr/sbin, /sbin that has an executable name. */
bool peer_find_program(const char *name, char *path, size_t len);

/*
 * The test's hook (tests/bench-peers.sh): with MQBUS_BENCH_PEER_DROP set
 * to "NAME:SEQ" (NAME as in struct peer_ops), the publisher of that peer
 * leaves out message SEQ, as a broker that lost it would, so that the
 * test sees the row fail.  True if the payload in buf is that message.
 */
bool peer_drop(enum bench_peer peer, const void *buf);

/* The workers: runs job (JOB_PEER_*) as a client of its peer. */
void peer_work(const struct bench_job *job) __attribute__((noreturn));
void peer_dbus_work(const struct bench_job *job) __attribute__((noreturn));
void peer_mqtt_work(const struct bench_job *job) __attribute__((noreturn));

#endif
