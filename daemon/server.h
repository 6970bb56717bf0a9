/* SPDX-License-Identifier: MIT */
/*
 * server.h - one bus: the state every module of the daemon shares, and
 * the loop that runs it.
 *
 * How a message flows, and which file to open for each step:
 *
 *   client ──ANNOUNCE──▶ /BUS ──▶ handshake.c   checks queues and process,
 *                                      │         WELCOME; the client is a
 *                                      ▼         peer
 *   tx queue ──wake.c──▶ peer.c      read fairly (ready list, budget),
 *                          │         one message at a time to
 *                          ▼
 *                      server.c      dispatch by type (handler table):
 *            ┌─────────────┼──────────────┬───────────┬──────────────┐
 *            ▼             ▼              ▼           ▼              ▼
 *        route.c        sub.c         timer.c     stats.c    introspect.c
 *   publish/request/  subscribe,     timed        counters,   QUERY: lists
 *   reply: stamp,     groups,        messages     journal     of clients,
 *   router_match      monitors,                   rounds      topics ...
 *                     retain.c
 *            └──────┬──────┘    (each asks access.c: may this peer do
 *                   ▼            that on this topic? policy.c decides)
 *              deliver.c         send to rx, or the pending list and the
 *                                overflow policies; rx writable → flush
 *
 * Per-uid shares (clients, timers, retained values, pending memory) are
 * counted in account.c as things are made and freed.
 *
 * After a restart, restart.c keeps the queues of the previous daemon's
 * live clients for them to announce again, and holds what they queued
 * until all are back (the grace period).
 *
 * Lower modules never call up: the wake source's read, the peer table's
 * message handler and reaper, and the request table's expiry are
 * callbacks that this file sets.  Nothing here is process-wide: two
 * struct servers run two buses in one process, each with its own event
 * base, buffer pool, tables and (for --wake=notify) realtime signal.
 */
#ifndef MQBUS_SERVER_H
#define MQBUS_SERVER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "daemon/account.h"
#include "daemon/config_file.h"
#include "daemon/handshake.h"
#include "daemon/msgbuf.h"
#include "daemon/peer.h"
#include "daemon/request.h"
#include "daemon/retain.h"
#include "daemon/stats.h"
#include "daemon/restart.h"
#include "daemon/shm.h"
#include "daemon/sub.h"
#include "daemon/timer.h"
#include "daemon/wake.h"

struct bridge_set;
struct event;
struct event_base;
struct router;
struct state;

/* messages read from one queue before the others get a turn */
#define SERVER_READ_BUDGET 32

struct server_options {
	const char *bus;
	const char *config_path;
	enum wake_method wake;
	/* the realtime signal of --wake=notify; 0: SIGRTMIN + 1.  Two buses
	 * in one process need two signals. */
	int wake_signo;
	/* where the state file goes (state.h); NULL: no state kept */
	const char *state_dir;
};

struct server {
	struct event_base *base;
	char *bus;
	char *config_path;
	struct config cfg;
	uid_t uid;
	pid_t pid;
	struct timespec started;
	int lock_fd;
	char *lock_path; /* the lock file, NULL with the abstract socket */

	/* wake-ups and signals */
	struct wake *wake;
	int wake_signo;
	int sig_fd;
	struct event *sig_ev;
	struct event *tick_ev; /* once a second: rescue, STATUS= */
	struct event *watchdog_ev; /* WATCHDOG=1, when systemd asks for it */

	struct msgbuf_pool pool;
	struct handshake handshake;
	struct peer_table peers;
	struct account_table accounts;
	struct router *router; /* patterns -> struct subscriber */
	struct router *monitors; /* monitors' patterns -> peer->mon */
	struct delivery_policy monitor_policy; /* drop-new, pending_max */
	struct group_table groups;
	struct request_table requests;
	struct timer_set timers;
	struct retain_store retained;
	struct restart restart; /* the previous daemon's clients */
	struct state *state; /* the state file's writer, NULL: none */
	struct bridge_set *bridges; /* MQTT bridges, NULL: none (bridge.c) */
	size_t pending_bytes; /* message bytes in all pending lists */
	size_t pending_mem;   /* what they really take: each buffer once,
				 and the list entries */
	uint64_t seq;	      /* the last bus sequence number */

	char why[256]; /* a refusal's sentence, built for the answer */
	bool begun; /* serving: the announce queue is read */
	bool stopping;
	const char *stop_reason; /* for the "stopping" entry */
	int exit_code;
	uint64_t status_sum; /* figures in the last STATUS= */
	struct bus_stats stats;
	struct large_stats large; /* messages in pieces (large.c) */
	struct shm_listener shm;  /* payloads in memory files (shm.c) */
};

/*
 * Sets up the bus: takes the bus lock (-EADDRINUSE if another daemon
 * serves it), loads the config, sweeps stale queues, creates the announce
 * queue.  On failure *ret_error says why in one sentence; call
 * server_deinit() in either case.
 */
int server_init(struct server *s, const struct server_options *opt,
		char **ret_error);

/* Runs the loop until SIGTERM/SIGINT or server_stop(); then tells every
 * client BYE and removes the queues.  Returns the exit code. */
int server_run(struct server *s);

/*
 * Runs one turn of the loop without waiting (for a process that drives
 * more than one bus).  Returns -1 once the bus has been told to stop.
 */
int server_step(struct server *s);

/* Asks the loop to stop, from inside it (a callback of the same base). */
void server_stop(struct server *s);

/* Frees everything.  Accepts a server whose init failed half way. */
void server_deinit(struct server *s);

#endif
