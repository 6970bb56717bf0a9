/* SPDX-License-Identifier: MIT */
/*
 * retain.c - the retained values of a bus.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/msgbuf.h"
#include "daemon/retain.h"
#include "daemon/router.h"
#include "proto/proto.h"

int retain_init(struct retain_store *st)
{
	TAILQ_INIT(&st->values);
	st->count = 0;
	st->max = RETAIN_MAX;
	st->index = router_new();
	return st->index ? 0 : -ENOMEM;
}

static void retained_free(struct retain_store *st, struct retained *v)
{
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

int retain_set(struct retain_store *st, struct msgbuf_pool *pool,
	       const char *topic, const struct msgbuf *m, size_t payload_len,
	       unsigned prio)
{
	struct retained *v = retain_find(st, topic);
	struct proto_header h;
	struct msgbuf *copy;

	if (payload_len == 0) {
		if (v)
			retained_free(st, v);
		return 0;
	}
	if (!v && st->count >= st->max)
		return -ENOSPC;
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
		msgbuf_unref(v->m);
		v->m = copy;
		v->prio = prio;
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
	TAILQ_INSERT_TAIL(&st->values, v, link);
	st->count++;
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
