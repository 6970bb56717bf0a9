/* SPDX-License-Identifier: MIT */
/*
 * request.h - requests in flight: who asked, who may answer, until when.
 *
 * A REQUEST is routed like a PUBLISH, marked as a request and stamped with
 * a daemon-wide request id.  The daemon remembers which clients received
 * it; only one of them may answer, once, before the deadline, and the
 * answer goes only to the requester, tagged with the requester's own
 * correlation id.  So a client cannot inject a reply nobody asked it for,
 * nor answer on another's behalf.
 */
#ifndef MQBUS_REQUEST_H
#define MQBUS_REQUEST_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "proto/proto.h"

struct account_table;
struct event;
struct event_base;
struct peer;
struct request_table;

/* in-flight requests one client may have */
#define REQUEST_MAX_PER_CLIENT 1024
#define REQUEST_DEFAULT_TIMEOUT_MS 30000
#define REQUEST_MAX_TIMEOUT_MS 3600000
#define REQUEST_INLINE_RECIPIENTS 4

struct request {
	uint32_t id;
	uint32_t token; /* the requester's correlation id */
	struct peer *requester;
	struct request_table *table;
	TAILQ_ENTRY(request) peer_link; /* requester->requests */
	struct request *hash_next;
	struct event *timeout_ev; /* made once per entry, kept with it */
	uint32_t n_recipients;
	uint32_t cap_recipients;
	uint32_t *recipients; /* client ids; inline storage when few */
	uint32_t inline_recipients[REQUEST_INLINE_RECIPIENTS];
	char topic[PROTO_TOPIC_MAX + 1]; /* for a monitor's reply copy */
	unsigned prio; /* its copies' priority: the reply copy's too */
};

TAILQ_HEAD(request_list, request);

/* Called when r's deadline passed; r is still in the table. */
typedef void (*request_expired_fn)(struct request *r, void *arg);

struct request_table {
	struct event_base *base;
	struct account_table *accounts; /* requests in flight per uid */
	request_expired_fn expired;
	void *expired_arg;
	struct request **buckets;
	uint32_t n_buckets; /* a power of two */
	uint32_t count;
	uint32_t next_id;
	struct request *free_list;
};

void request_table_init(struct request_table *t, struct event_base *base,
			request_expired_fn expired, void *arg);
void request_table_deinit(struct request_table *t);

/*
 * A new request of requester with its correlation token, expiring after
 * timeout_ms (0: the default).  Returns NULL when out of memory.
 */
struct request *request_new(struct request_table *t, struct peer *requester,
			    uint32_t token, uint32_t timeout_ms);
/* Records that client id received the request.  -ENOMEM on failure. */
int request_add_recipient(struct request *r, uint32_t client_id);
bool request_has_recipient(const struct request *r, uint32_t client_id);
struct request *request_find(struct request_table *t, uint32_t id);
/* Forgets the request (answered, expired or its requester gone). */
void request_free(struct request *r);
/* Forgets every request p made (p is going). */
void request_drop_peer(struct peer *p);

#endif
