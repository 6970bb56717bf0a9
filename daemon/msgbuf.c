/* SPDX-License-Identifier: MIT */
/*
 * msgbuf.c - pooled, reference-counted message buffers.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "daemon/msgbuf.h"

void msgbuf_pool_init(struct msgbuf_pool *pool)
{
	pool->free = NULL;
	pool->n_free = 0;
	pool->live = 0;
	pool->bytes = 0;
}

void msgbuf_pool_deinit(struct msgbuf_pool *pool)
{
	while (pool->free) {
		struct msgbuf *m = pool->free;

		pool->free = m->next_free;
		free(m);
	}
	pool->n_free = 0;
}

size_t msgbuf_size(const struct msgbuf *m)
{
	return sizeof(*m) + m->cap;
}

static struct msgbuf *msgbuf_alloc(struct msgbuf_pool *pool, size_t cap)
{
	struct msgbuf *m = malloc(sizeof(*m) + cap);

	if (!m)
		return NULL;
	m->cap = cap;
	m->pool = pool;
	m->data = m->inline_data;
	m->shm_fd = -1;
	m->map_base = NULL;
	m->map_size = 0;
	return m;
}

static struct msgbuf *msgbuf_take(struct msgbuf_pool *pool, struct msgbuf *m)
{
	m->refs = 1;
	m->len = 0;
	m->stat = NULL;
	m->measured = false;
	m->waiting = 0;
	m->next_free = NULL;
	pool->live++;
	pool->bytes += msgbuf_size(m);
	return m;
}

struct msgbuf *msgbuf_get(struct msgbuf_pool *pool, size_t cap)
{
	struct msgbuf *m;

	if (cap <= MSGBUF_POOL_CAP && pool->free) {
		m = pool->free;
		pool->free = m->next_free;
		pool->n_free--;
	} else {
		m = msgbuf_alloc(pool, cap < MSGBUF_POOL_CAP ? MSGBUF_POOL_CAP
							     : cap);
		if (!m)
			return NULL;
	}
	return msgbuf_take(pool, m);
}

struct msgbuf *msgbuf_get_exact(struct msgbuf_pool *pool, size_t cap)
{
	struct msgbuf *m = msgbuf_alloc(pool, cap);

	return m ? msgbuf_take(pool, m) : NULL;
}

/*
 * Maps the len bytes of memory file fd behind front bytes of anonymous
 * memory (whole pages), privately: the daemon writes a fragment header
 * over a piece's first bytes when it sends the message in pieces, and
 * such a write copies that page only, never reaching the file.  Returns
 * where the payload starts, or NULL with errno.
 */
static unsigned char *map_file(int fd, size_t len, size_t front,
			       void **ret_base, size_t *ret_size)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t head = (front + page - 1) / page * page;
	size_t size = head + (len + page - 1) / page * page;
	unsigned char *base, *at;
	int e;

	base = mmap(NULL, size, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (base == MAP_FAILED)
		return NULL;
	at = mmap(base + head, len, PROT_READ | PROT_WRITE,
		  MAP_PRIVATE | MAP_FIXED, fd, 0);
	if (at == MAP_FAILED) {
		e = errno;
		munmap(base, size);
		errno = e;
		return NULL;
	}
	*ret_base = base;
	*ret_size = size;
	return at;
}

struct msgbuf *msgbuf_get_shm(struct msgbuf_pool *pool, const void *head,
			      size_t head_len, int fd, size_t len)
{
	struct msgbuf *m = msgbuf_alloc(pool, 0);
	unsigned char *payload;
	int e;

	if (!m)
		return NULL;
	/* the daemon reads a payload only for what it keeps (a retained
	 * value, the state file) or sends in pieces: no faulting in */
	payload = map_file(fd, len, head_len, &m->map_base, &m->map_size);
	if (!payload) {
		e = errno;
		free(m);
		errno = e;
		return NULL;
	}
	m->data = payload - head_len;
	memcpy(m->data, head, head_len);
	m->cap = head_len + len;
	m->shm_fd = fd;
	return msgbuf_take(pool, m);
}

struct msgbuf *msgbuf_ref(struct msgbuf *m)
{
	m->refs++;
	return m;
}

void msgbuf_unref(struct msgbuf *m)
{
	struct msgbuf_pool *pool;

	if (!m || --m->refs > 0)
		return;
	pool = m->pool;
	pool->live--;
	pool->bytes -= msgbuf_size(m);
	if (m->shm_fd >= 0) {
		/* a heap buffer may have a file written for it (shm.c) */
		if (m->map_base)
			munmap(m->map_base, m->map_size);
		close(m->shm_fd);
		free(m);
		return;
	}
	if (m->cap == MSGBUF_POOL_CAP && pool->n_free < MSGBUF_POOL_KEEP) {
		m->next_free = pool->free;
		pool->free = m;
		pool->n_free++;
		return;
	}
	free(m);
}
