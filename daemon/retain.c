/* SPDX-License-Identifier: MIT */
/*
 * retain.c - the retained values of a bus.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/account.h"
#include "daemon/msgbuf.h"
#include "daemon/retain.h"
#include "daemon/router.h"
#include "proto/proto.h"

int retain_init(struct retain_store *st)
{
	TAILQ_INIT(&st->values);
	st->count = 0;
	st->max = RETAIN_MAX;
	st->accounts = NULL;
	st->max_per_uid = 0;
	st->max_bytes_per_uid = 0;
	st->on_change = NULL;
	st->on_change_arg = NULL;
	st->index = router_new();
	return st->index ? 0 : -ENOMEM;
}

/* Moves what v costs onto (charge) or off (credit) its uid's account. */
static void retained_account(struct retain_store *st,
			     const struct retained *v, bool charge)
{
	if (!st->accounts)
		return;
	if (charge) {
		account_charge(st->accounts, v->uid, ACCOUNT_RETAINED);
		account_charge_n(st->accounts, v->uid, ACCOUNT_RETAINED_BYTES,
				 v->bytes);
	} else {
		account_credit(st->accounts, v->uid, ACCOUNT_RETAINED);
		account_credit_n(st->accounts, v->uid, ACCOUNT_RETAINED_BYTES,
				 v->bytes);
	}
}

static void retained_free(struct retain_store *st, struct retained *v)
{
	retained_account(st, v, false);
	router_unsubscribe(st->index, v->topic, v);
	TAILQ_REMOVE(&st->values, v, link);
	st->count--;
	msgbuf_unref(v->m);
	free(v->topic);
	free(v);
}

void retain_deinit(struct retain_store *st)
{
	while (!TAILQ_EMPTY(&st->values))
		retained_free(st, TAILQ_FIRST(&st->values));
	st->index = router_free(st->index);
}

static void retain_changed(struct retain_store *st)
{
	if (st->on_change)
		st->on_change(st->on_change_arg);
}

static void retain_found(void *entry, void *userdata)
{
	*(struct retained **)userdata = entry;
}

static struct retained *retain_find(struct retain_store *st,
				    const char *topic)
{
	struct retained *v = NULL;

	/* every key is a concrete topic: only the exact one matches */
	router_match(st->index, topic, retain_found, &v);
	return v;
}

/* Whether uid may hold a value of bytes more, replacing old (if any). */
static bool retain_within_share(const struct retain_store *st, uid_t uid,
				size_t bytes, const struct retained *old)
{
	uint64_t n, held;

	if (!st->accounts)
		return true;
	n = account_held(st->accounts, uid, ACCOUNT_RETAINED);
	held = account_held(st->accounts, uid, ACCOUNT_RETAINED_BYTES);
	if (old && old->uid == uid) {
		n--;
		held -= old->bytes;
	}
	return n < st->max_per_uid && held + bytes <= st->max_bytes_per_uid;
}

int retain_set(struct retain_store *st, struct msgbuf_pool *pool, uid_t uid,
	       const char *topic, const struct msgbuf *m, size_t payload_len,
	       unsigned prio)
{
	struct retained *v = retain_find(st, topic);
	size_t bytes = sizeof(*v) + strlen(topic) + 1 + sizeof(struct msgbuf) +
		       m->len;
	struct proto_header h;
	struct msgbuf *copy;

	if (payload_len == 0) {
		if (v) {
			retained_free(st, v);
			retain_changed(st);
		}
		return 0;
	}
	if (!v && st->count >= st->max)
		return -ENOSPC;
	if (!retain_within_share(st, uid, bytes, v))
		return -EDQUOT;
	copy = msgbuf_get_exact(pool, m->len);
	if (!copy)
		return -ENOMEM;
	memcpy(copy->data, m->data, m->len);
	copy->len = m->len;
	/* sent again much later: not a latency of the bus */
	copy->measured = true;
	memcpy(&h, copy->data, sizeof(h));
	h.flags |= PROTO_F_RETAINED;
	memcpy(copy->data, &h, sizeof(h));
	if (v) {
		retained_account(st, v, false);
		msgbuf_unref(v->m);
		v->m = copy;
		v->prio = prio;
		v->uid = uid;
		v->bytes = bytes;
		retained_account(st, v, true);
		retain_changed(st);
		return 0;
	}
	v = calloc(1, sizeof(*v));
	if (!v)
		goto nomem;
	v->topic = strdup(topic);
	if (!v->topic || router_subscribe(st->index, topic, v) < 0) {
		free(v->topic);
		free(v);
		goto nomem;
	}
	v->m = copy;
	v->prio = prio;
	v->uid = uid;
	v->bytes = bytes;
	retained_account(st, v, true);
	TAILQ_INSERT_TAIL(&st->values, v, link);
	st->count++;
	retain_changed(st);
	return 0;

nomem:
	msgbuf_unref(copy);
	return -ENOMEM;
}

struct walk_ctx {
	retain_fn fn;
	void *arg;
};

static void retain_visit(void *entry, void *userdata)
{
	struct retained *v = entry;
	struct walk_ctx *ctx = userdata;

	ctx->fn(v->topic, v->m, v->prio, ctx->arg);
}

void retain_walk(const struct retain_store *st, const char *pattern,
		 retain_fn fn, void *arg)
{
	struct walk_ctx ctx = { .fn = fn, .arg = arg };

	router_walk(st->index, pattern, retain_visit, &ctx);
}
