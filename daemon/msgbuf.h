/* SPDX-License-Identifier: MIT */
/*
 * msgbuf.h - reference-counted message buffers from a pool.
 *
 * A message read from a client's tx queue is turned into a DELIVER in
 * place and sent to every subscriber from the same buffer; only the
 * subscribers whose queue is full keep a reference (in their pending
 * list).  Buffers come from the free list of the server's pool, so the
 * steady-state path does not touch the heap.  Each buffer remembers its
 * pool, and a pool belongs to one server: two buses in one process share
 * nothing.
 */
#ifndef MQBUS_MSGBUF_H
#define MQBUS_MSGBUF_H

#include <stddef.h>

#include <stdbool.h>

struct msgbuf_pool;
struct topic_stat;

struct msgbuf {
	unsigned refs;
	size_t cap; /* bytes at data */
	size_t len; /* bytes used */
	unsigned char *data; /* the message: inline[], or a mapping */
	struct msgbuf_pool *pool;
	/* a routed message's topic, for the delivery stats (stats.h), and
	 * whether its latency was taken */
	struct topic_stat *stat;
	bool measured;
	unsigned waiting; /* pending lists that hold it (deliver.c) */
	struct msgbuf *next_free;
	/* a message whose payload is a memory file (shm.c): the file, to
	 * pass on, and the mapping data lies in (none, NULL, for a heap
	 * buffer the daemon wrote a file for); else -1 */
	int shm_fd;
	void *map_base;
	size_t map_size;
	unsigned char inline_data[];
};

struct msgbuf_pool {
	struct msgbuf *free;
	size_t n_free;
	size_t live;  /* handed out, not yet returned */
	size_t bytes; /* heap bytes of the live buffers */
};

/* Buffers of this capacity are kept on the free list, up to KEEP. */
#define MSGBUF_POOL_CAP 8192
#define MSGBUF_POOL_KEEP 256

void msgbuf_pool_init(struct msgbuf_pool *pool);
/* Frees the free list.  Buffers still live stay valid and are freed when
 * their last reference goes (they are counted in live). */
void msgbuf_pool_deinit(struct msgbuf_pool *pool);

/* A buffer of at least cap bytes with one reference, or NULL. */
struct msgbuf *msgbuf_get(struct msgbuf_pool *pool, size_t cap);
/* A buffer of exactly cap bytes, for what is kept long (a retained
 * value): it is not pooled, so it costs what it holds. */
struct msgbuf *msgbuf_get_exact(struct msgbuf_pool *pool, size_t cap);
/*
 * A message of head_len bytes of header and strings followed by the
 * len-byte payload in memory file fd, which it takes (closed with the
 * last reference): the payload is mapped privately right behind the
 * head, so data holds the whole message as any buffer does (what is
 * written there stays the daemon's; the file is sealed anyway).  NULL with
 * errno, fd left open.
 */
struct msgbuf *msgbuf_get_shm(struct msgbuf_pool *pool, const void *head,
			      size_t head_len, int fd, size_t len);
struct msgbuf *msgbuf_ref(struct msgbuf *m);
/* Drops a reference; the last one returns the buffer.  Accepts NULL. */
void msgbuf_unref(struct msgbuf *m);
/* What a buffer really costs on the heap, header included. */
size_t msgbuf_size(const struct msgbuf *m);

#endif
