/* SPDX-License-Identifier: MIT */
/*
 * msgbuf.h - reference-counted message buffers.
 *
 * A message read from a client's tx queue is turned into a DELIVER in
 * place and sent to every subscriber from the same buffer; only the
 * subscribers whose queue is full keep a reference (in their pending
 * list).  Buffers come from a free list so the steady-state path does not
 * touch the heap.
 */
#ifndef MQBUS_MSGBUF_H
#define MQBUS_MSGBUF_H

#include <stddef.h>

struct msgbuf {
	unsigned refs;
	size_t cap;  /* bytes of data[] */
	size_t len;  /* bytes used */
	struct msgbuf *next_free;
	unsigned char data[];
};

/* Buffers of at most this capacity are kept on the free list. */
#define MSGBUF_POOL_CAP 8192
#define MSGBUF_POOL_KEEP 256

/* A buffer of at least cap bytes with one reference, or NULL. */
struct msgbuf *msgbuf_get(size_t cap);
struct msgbuf *msgbuf_ref(struct msgbuf *m);
/* Drops a reference; the last one returns the buffer.  Accepts NULL. */
void msgbuf_unref(struct msgbuf *m);
/* Frees the free list (at exit, so leak checkers stay quiet). */
void msgbuf_pool_drain(void);
/* Buffers handed out and not yet returned. */
size_t msgbuf_live(void);

#endif
