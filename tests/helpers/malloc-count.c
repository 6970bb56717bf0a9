/* SPDX-License-Identifier: MIT */
/*
 * malloc-count.c - an LD_PRELOAD module that counts a process's heap
 * calls, for tests/alloc.sh.
 *
 * It takes the place of malloc, calloc, realloc and free (and the aligned
 * and array variants, counted as malloc and realloc) and passes each call
 * on to glibc's own allocator through its __libc_* entry points, which
 * glibc exports for exactly this: no dlsym() is needed, so there is no
 * bootstrap problem with dlsym() itself allocating.  At exit it writes
 * the counts to the file named by $MALLOC_COUNT_FILE, one "name count"
 * line each.  Counters are atomic: the daemon's thread wake-up back-end
 * allocates from glibc's notification threads.
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t size);
extern void __libc_free(void *p);
extern void *__libc_memalign(size_t align, size_t size);

#define EXPORT __attribute__((visibility("default")))

static unsigned long long n_malloc, n_calloc, n_realloc, n_free;
static pid_t owner;

static void count(unsigned long long *c)
{
	__atomic_fetch_add(c, 1, __ATOMIC_RELAXED);
}

EXPORT void *malloc(size_t size)
{
	count(&n_malloc);
	return __libc_malloc(size);
}

EXPORT void *calloc(size_t n, size_t size)
{
	count(&n_calloc);
	return __libc_calloc(n, size);
}

EXPORT void *realloc(void *p, size_t size)
{
	count(&n_realloc);
	return __libc_realloc(p, size);
}

EXPORT void free(void *p)
{
	/* free(NULL) is no heap work, and common in cleanup paths */
	if (p)
		count(&n_free);
	__libc_free(p);
}

EXPORT void *reallocarray(void *p, size_t n, size_t size)
{
	size_t bytes;

	if (__builtin_mul_overflow(n, size, &bytes)) {
		errno = ENOMEM;
		return NULL;
	}
	return realloc(p, bytes);
}

static bool align_ok(size_t align)
{
	return align && !(align & (align - 1)) && align % sizeof(void *) == 0;
}

EXPORT int posix_memalign(void **ret, size_t align, size_t size)
{
	void *p;

	if (!align_ok(align))
		return EINVAL;
	count(&n_malloc);
	p = __libc_memalign(align, size);
	if (!p)
		return ENOMEM;
	*ret = p;
	return 0;
}

EXPORT void *aligned_alloc(size_t align, size_t size)
{
	count(&n_malloc);
	return __libc_memalign(align, size);
}

EXPORT void *memalign(size_t align, size_t size)
{
	count(&n_malloc);
	return __libc_memalign(align, size);
}

__attribute__((constructor)) static void malloc_count_init(void)
{
	owner = getpid();
}

/* Only the process that loaded us writes: not a child after fork. */
__attribute__((destructor)) static void malloc_count_report(void)
{
	const char *path = getenv("MALLOC_COUNT_FILE");
	char buf[256];
	int fd, len;

	if (!path || !*path || getpid() != owner)
		return;
	len = snprintf(buf, sizeof(buf),
		       "malloc %llu\ncalloc %llu\nrealloc %llu\nfree %llu\n",
		       __atomic_load_n(&n_malloc, __ATOMIC_RELAXED),
		       __atomic_load_n(&n_calloc, __ATOMIC_RELAXED),
		       __atomic_load_n(&n_realloc, __ATOMIC_RELAXED),
		       __atomic_load_n(&n_free, __ATOMIC_RELAXED));
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	if (write(fd, buf, (size_t)len) != len) {
		/* the test notices a short file */
	}
	close(fd);
}
