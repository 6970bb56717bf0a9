/* SPDX-License-Identifier: MIT */
/*
 * bench-util.c - the small pieces of mqbus-bench that both the
 * orchestrator and the workers use: the latency histogram, the payload
 * with its sequence number and filler, futexes on the shared control
 * block, and failure reporting.
 */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "proto/proto.h"
#include "tests/bench/bench.h"

/* ---------------------------------------------------------------- time */

uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/*
 * The control block is a shared mapping between processes, so these are
 * the shared (not _PRIVATE) futex operations.
 */
int futex_wait(_Atomic uint32_t *addr, uint32_t val, int timeout_ms)
{
	struct timespec ts, *tp = NULL;

	if (timeout_ms >= 0) {
		ts.tv_sec = timeout_ms / 1000;
		ts.tv_nsec = (long)(timeout_ms % 1000) * 1000000;
		tp = &ts;
	}
	if (syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAIT, val, tp, NULL, 0) <
	    0)
		return -errno;
	return 0;
}

void futex_wake(_Atomic uint32_t *addr)
{
	syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAKE, INT_MAX, NULL, NULL,
		0);
}

/* ---------------------------------------------------------------- failure */

void bench_vfail(struct bench_ctl *ctl, const char *fmt, va_list ap)
{
	uint32_t zero = 0;

	/* the first failure explains the row; later ones are consequences */
	if (!atomic_compare_exchange_strong(&ctl->failed, &zero, 1))
		return;
	vsnprintf(ctl->error, sizeof(ctl->error), fmt, ap);
	atomic_store(&ctl->failed, 2);
	futex_wake(&ctl->done);
	futex_wake(&ctl->ready);
}

void bench_fail(struct bench_ctl *ctl, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	bench_vfail(ctl, fmt, ap);
	va_end(ap);
}

const char *bench_wake_name(enum bench_wake w)
{
	static const char *const names[] = {
	    [BENCH_WAKE_NOTIFY] = "notify",
	    [BENCH_WAKE_THREAD] = "thread",
	    [BENCH_WAKE_POLL] = "poll",
	};

	return (unsigned)w < BENCH_WAKE_COUNT ? names[w] : "?";
}

/* ---------------------------------------------------------------- histogram */

static unsigned hist_index(uint64_t v)
{
	unsigned e;

	if (v < HIST_SUB)
		return (unsigned)v;
	e = 63 - (unsigned)__builtin_clzll(v);
	if (e >= 42)
		return HIST_BUCKETS - 1;
	return HIST_SUB + (e - HIST_SUB_BITS) * HIST_SUB +
	       (unsigned)((v >> (e - HIST_SUB_BITS)) & (HIST_SUB - 1));
}

/* The middle of a bucket. */
static double hist_value(unsigned i)
{
	unsigned e, m;
	double lo, width;

	if (i < HIST_SUB)
		return i;
	e = (i - HIST_SUB) / HIST_SUB + HIST_SUB_BITS;
	m = (i - HIST_SUB) % HIST_SUB;
	width = (double)(1ull << (e - HIST_SUB_BITS));
	lo = (double)(1ull << e) + m * width;
	return lo + width / 2;
}

void hist_add(struct hist *h, uint64_t ns)
{
	h->b[hist_index(ns)]++;
	h->n++;
}

void hist_merge(struct hist *into, const struct hist *from)
{
	for (unsigned i = 0; i < HIST_BUCKETS; i++)
		into->b[i] += from->b[i];
	into->n += from->n;
}

double hist_quantile(const struct hist *h, double q)
{
	uint64_t want, seen = 0;

	if (h->n == 0)
		return -1;
	want = (uint64_t)(q * (double)h->n);
	if (want >= h->n)
		want = h->n - 1;
	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		seen += h->b[i];
		if (seen > want)
			return hist_value(i);
	}
	return hist_value(HIST_BUCKETS - 1);
}

/* ---------------------------------------------------------------- payload */

/* 4000 bytes of filler at any of 256 offsets */
#define PATTERN_LEN (BENCH_MSGSIZE + 256)
static unsigned char pattern[PATTERN_LEN];

void payload_init_pattern(void)
{
	uint32_t x = 0x9e3779b9u;

	for (size_t i = 0; i < PATTERN_LEN; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		pattern[i] = (unsigned char)x;
	}
}

size_t bench_raw_pad(void)
{
	return proto_size(strlen(BENCH_TOPIC), 0);
}

static uint32_t payload_sum(const struct bench_payload *p)
{
	uint64_t x = p->seq * 0x9e3779b97f4a7c15ull ^ p->sent_ns ^
		     (uint64_t)p->stream << 48 ^ (uint64_t)p->flags << 32 ^
		     p->size;

	return (uint32_t)(x ^ x >> 32);
}

void payload_fill(void *buf, size_t size, unsigned stream, uint64_t seq,
		  uint64_t sent_ns, bool last)
{
	struct bench_payload p = {
	    .magic = BENCH_MAGIC,
	    .stream = (uint16_t)stream,
	    .flags = last ? BENCH_F_LAST : 0,
	    .seq = seq,
	    .sent_ns = sent_ns,
	    .size = (uint32_t)size,
	};

	p.check = payload_sum(&p);
	memcpy(buf, &p, sizeof(p));
	memcpy((unsigned char *)buf + sizeof(p), pattern + (seq & 255),
	       size - sizeof(p));
}

int payload_check(const void *buf, size_t len, size_t size,
		  struct bench_payload *ret, char *err, size_t errlen)
{
	struct bench_payload p;

	if (len != size) {
		snprintf(err, errlen, "payload of %zu bytes, expected %zu", len,
			 size);
		return -1;
	}
	memcpy(&p, buf, sizeof(p));
	if (p.magic != BENCH_MAGIC || p.size != size ||
	    p.check != payload_sum(&p)) {
		snprintf(err, errlen, "corrupted payload header");
		return -1;
	}
	if (memcmp((const unsigned char *)buf + sizeof(p),
		   pattern + (p.seq & 255), size - sizeof(p)) != 0) {
		snprintf(err, errlen,
			 "corrupted payload (stream %u seq %llu): filler "
			 "differs",
			 p.stream, (unsigned long long)p.seq);
		return -1;
	}
	*ret = p;
	return 0;
}
