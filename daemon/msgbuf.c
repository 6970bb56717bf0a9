/* SPDX-License-Identifier: MIT */
/*
 * msgbuf.c - pooled, reference-counted message buffers.
 */
#include <stdlib.h>

#include "daemon/msgbuf.h"

static struct msgbuf *pool;
static size_t pool_len;
static size_t live;

struct msgbuf *msgbuf_get(size_t cap)
{
	struct msgbuf *m;

	if (cap <= MSGBUF_POOL_CAP && pool) {
		m = pool;
		pool = m->next_free;
		pool_len--;
	} else {
		if (cap < MSGBUF_POOL_CAP)
			cap = MSGBUF_POOL_CAP;
		m = malloc(sizeof(*m) + cap);
		if (!m)
			return NULL;
		m->cap = cap;
	}
	m->refs = 1;
	m->len = 0;
	m->next_free = NULL;
	live++;
	return m;
}

struct msgbuf *msgbuf_ref(struct msgbuf *m)
{
	m->refs++;
	return m;
}

void msgbuf_unref(struct msgbuf *m)
{
	if (!m || --m->refs > 0)
		return;
	live--;
	if (m->cap == MSGBUF_POOL_CAP && pool_len < MSGBUF_POOL_KEEP) {
		m->next_free = pool;
		pool = m;
		pool_len++;
		return;
	}
	free(m);
}

void msgbuf_pool_drain(void)
{
	while (pool) {
		struct msgbuf *m = pool;

		pool = m->next_free;
		free(m);
	}
	pool_len = 0;
}

size_t msgbuf_live(void)
{
	return live;
}
