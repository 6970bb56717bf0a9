/* SPDX-License-Identifier: MIT */
/*
 * server.h - the bus: the event loop, the announce queue and handshakes,
 * routing, signals, shutdown and the bus-wide counters.
 */
#ifndef MQBUS_SERVER_H
#define MQBUS_SERVER_H

#include <mqueue.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <time.h>

#include "daemon/config_file.h"
#include "daemon/group.h"
#include "daemon/request.h"
#include "daemon/retain.h"
#include "daemon/timer.h"
#include "daemon/wake.h"

struct event;
struct event_base;
struct router;
struct client;
struct msgbuf;

/* messages read from one source before the others get a turn */
#define SERVER_READ_BUDGET 32
/* a client sending this many bad messages is disconnected */
#define SERVER_MAX_BAD 64
/* the announce queue's attributes */
#define SERVER_ANNOUNCE_MSGSIZE 512

struct server_stats {
	uint64_t published;
	uint64_t delivered;
	uint64_t dropped;
	uint64_t bad_messages;
	uint64_t handshakes;
	uint64_t handshakes_failed;
	uint64_t clients_gone;
	uint64_t wakeups_rescued;
	uint64_t requests;
	uint64_t replies;
	uint64_t no_responders;
	uint64_t requests_expired;
	uint64_t replies_refused;
	uint64_t timers_fired;
	uint64_t coalesced;
	uint64_t publishers_blocked;
	uint64_t slow_disconnects;
};

struct server_options {
	const char *bus;
	const char *config_path;
	enum wake_method wake;
};

struct server {
	struct event_base *base;
	char *bus;
	char *announce_name;
	char *config_path;
	struct config cfg;
	uid_t uid;
	pid_t pid;
	struct timespec started;

	int lock_fd;
	mqd_t announce;
	struct wake_src announce_src;
	unsigned char announce_buf[SERVER_ANNOUNCE_MSGSIZE];

	struct wake *wake;
	int wake_signo;
	int sig_fd;
	struct event *sig_ev;
	struct event *drain_ev;
	struct event *reap_ev;
	struct event *rescue_ev;
	TAILQ_HEAD(wake_src_list, wake_src) ready;

	struct router *router;
	struct group_list groups;
	struct request_table requests;
	struct timer_set timers;
	struct retain_store retained;
	TAILQ_HEAD(, client) clients;
	TAILQ_HEAD(, client) reap;
	unsigned n_clients;
	size_t pending_bytes; /* held in all pending lists */
	uint32_t next_client_id;
	uint64_t seq;
	bool stopping;
	int exit_code;
	uint64_t status_sum; /* figures in the last STATUS= */

	struct server_stats stats;
};

/*
 * Sets up the bus: takes the bus lock (-EADDRINUSE if another daemon
 * serves it), loads the config, sweeps stale queues, creates the announce
 * queue.  On failure *ret_error says why in one sentence.
 */
int server_init(struct server *s, const struct server_options *opt,
		char **ret_error);
/* Runs the loop until SIGTERM/SIGINT; returns the exit code. */
int server_run(struct server *s);
void server_deinit(struct server *s);

/* used by client.c */
void server_wake_ready(struct server *s, struct wake_src *src);
void server_route(struct server *s, struct client *from, struct msgbuf *m,
		  const char *topic, int requested_prio);
/* server_route for a timer's message, whose sender may be gone and
 * cannot be held up by the block policy */
void server_route_as(struct server *s, uid_t uid, pid_t pid, uint32_t id,
		     struct msgbuf *m, const char *topic, int requested_prio);
void server_client_closing(struct server *s, struct client *c);
struct client *server_find_client(struct server *s, uint32_t id);
struct proto_msg;
/* A PUBLISH from a client: routed, and kept if marked retain. */
void server_publish(struct server *s, struct client *from, struct msgbuf *m,
		    const struct proto_msg *pm);
void server_request(struct server *s, struct client *from, struct msgbuf *m,
		    const struct proto_msg *pm);
void server_reply(struct server *s, struct client *from, struct msgbuf *m,
		  const struct proto_msg *pm);
/* used by request.c */
void server_request_expired(struct server *s, struct request *r);
int server_stats_text(struct server *s, char *buf, size_t cap);
void server_notify_status(struct server *s);

#endif
