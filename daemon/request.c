/* SPDX-License-Identifier: MIT */
/*
 * request.c - the table of requests in flight.
 *
 * Entries come from a free list and their timer is embedded, so a
 * steady stream of requests does not touch the heap.  Ids are looked up in
 * a chained hash table that doubles as it fills.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "daemon/account.h"
#include "daemon/peer.h"
#include "daemon/request.h"

void request_table_init(struct request_table *t, struct event_base *base,
			request_expired_fn expired, void *arg)
{
	memset(t, 0, sizeof(*t));
	t->base = base;
	t->expired = expired;
	t->expired_arg = arg;
	t->next_id = 1;
}

void request_table_deinit(struct request_table *t)
{
	for (uint32_t i = 0; i < t->n_buckets; i++) {
		while (t->buckets[i])
			request_free(t->buckets[i]);
	}
	while (t->free_list) {
		struct request *r = t->free_list;

		t->free_list = r->hash_next;
		event_free(r->timeout_ev);
		free(r);
	}
	free(t->buckets);
	memset(t, 0, sizeof(*t));
}

static struct request **request_slot(struct request_table *t, uint32_t id)
{
	return &t->buckets[(id * 2654435761u) & (t->n_buckets - 1)];
}

static int request_table_grow(struct request_table *t)
{
	uint32_t n = t->n_buckets ? t->n_buckets * 2 : 64;
	struct request **old = t->buckets;
	uint32_t old_n = t->n_buckets;

	t->buckets = calloc(n, sizeof(*t->buckets));
	if (!t->buckets) {
		t->buckets = old;
		return -ENOMEM;
	}
	t->n_buckets = n;
	for (uint32_t i = 0; i < old_n; i++) {
		while (old[i]) {
			struct request *r = old[i], **slot;

			old[i] = r->hash_next;
			slot = request_slot(t, r->id);
			r->hash_next = *slot;
			*slot = r;
		}
	}
	free(old);
	return 0;
}

static void request_expired(evutil_socket_t fd, short what, void *arg)
{
	struct request *r = arg;

	r->table->expired(r, r->table->expired_arg);
}

struct request *request_new(struct request_table *t, struct peer *requester,
			    uint32_t token, uint32_t timeout_ms)
{
	struct timeval tv;
	struct request *r, **slot;

	if (t->count >= t->n_buckets && request_table_grow(t) < 0)
		return NULL;
	r = t->free_list;
	if (r) {
		t->free_list = r->hash_next;
	} else {
		r = calloc(1, sizeof(*r));
		if (!r)
			return NULL;
		r->table = t;
		r->timeout_ev = event_new(t->base, -1, 0, request_expired, r);
		if (!r->timeout_ev) {
			free(r);
			return NULL;
		}
	}
	/* skip 0 and ids still in flight after a wrap */
	do {
		r->id = t->next_id++;
	} while (r->id == 0 || request_find(t, r->id));
	r->token = token;
	r->requester = requester;
	r->n_recipients = 0;
	r->cap_recipients = REQUEST_INLINE_RECIPIENTS;
	r->recipients = r->inline_recipients;
	slot = request_slot(t, r->id);
	r->hash_next = *slot;
	*slot = r;
	t->count++;
	TAILQ_INSERT_TAIL(&requester->requests, r, peer_link);
	requester->n_requests++;
	if (t->accounts)
		account_charge(t->accounts, requester->uid,
			       ACCOUNT_REQUESTS);

	if (timeout_ms == 0)
		timeout_ms = REQUEST_DEFAULT_TIMEOUT_MS;
	if (timeout_ms > REQUEST_MAX_TIMEOUT_MS)
		timeout_ms = REQUEST_MAX_TIMEOUT_MS;
	tv.tv_sec = timeout_ms / 1000;
	tv.tv_usec = (timeout_ms % 1000) * 1000;
	if (event_add(r->timeout_ev, &tv) < 0) {
		request_free(r);
		return NULL;
	}
	return r;
}

int request_add_recipient(struct request *r, uint32_t client_id)
{
	if (r->n_recipients == r->cap_recipients) {
		uint32_t cap = r->cap_recipients * 2;
		uint32_t *p;

		if (r->recipients == r->inline_recipients) {
			p = malloc(cap * sizeof(*p));
			if (p)
				memcpy(p, r->inline_recipients,
				       sizeof(r->inline_recipients));
		} else {
			p = realloc(r->recipients, cap * sizeof(*p));
		}
		if (!p)
			return -ENOMEM;
		r->recipients = p;
		r->cap_recipients = cap;
	}
	r->recipients[r->n_recipients++] = client_id;
	return 0;
}

bool request_has_recipient(const struct request *r, uint32_t client_id)
{
	for (uint32_t i = 0; i < r->n_recipients; i++)
		if (r->recipients[i] == client_id)
			return true;
	return false;
}

struct request *request_find(struct request_table *t, uint32_t id)
{
	struct request *r;

	if (t->n_buckets == 0)
		return NULL;
	for (r = *request_slot(t, id); r; r = r->hash_next)
		if (r->id == id)
			return r;
	return NULL;
}

void request_free(struct request *r)
{
	struct request_table *t = r->table;
	struct request **slot = request_slot(t, r->id);

	while (*slot != r)
		slot = &(*slot)->hash_next;
	*slot = r->hash_next;
	t->count--;
	TAILQ_REMOVE(&r->requester->requests, r, peer_link);
	r->requester->n_requests--;
	if (t->accounts)
		account_credit(t->accounts, r->requester->uid,
			       ACCOUNT_REQUESTS);
	event_del(r->timeout_ev);
	if (r->recipients != r->inline_recipients)
		free(r->recipients);
	r->recipients = NULL;
	r->hash_next = t->free_list;
	t->free_list = r;
}

void request_drop_peer(struct peer *p)
{
	while (!TAILQ_EMPTY(&p->requests))
		request_free(TAILQ_FIRST(&p->requests));
}
