/* SPDX-License-Identifier: MIT */
/*
 * state.c - the state file of a bus: its format (encoder and the pure
 * parser), writing it atomically a bounded time after a change, and
 * loading it at start.  state.h describes the format and the promises.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "daemon/log.h"
#include "daemon/msgbuf.h"
#include "daemon/retain.h"
#include "daemon/server.h"
#include "daemon/state.h"
#include "daemon/timer.h"
#include "proto/proto.h"

#define NS_PER_S 1000000000LL
/* the bytes of a timer record's body before its strings */
#define STATE_TIMER_FIXED 64
/* the latest next firing kept, in ns: the year 2255, as timer.h */
#define STATE_NEXT_MAX ((int64_t)TIMER_MAX_AT_MS * 1000000)
/* a failed write is logged at most once a minute */
#define STATE_LOG_INTERVAL_USEC 60000000u

/* -------------------------------------------------------------------- */
/* CRC-32                                                                */

/*
 * Eight tables, to take eight bytes a step ("slicing by 8"): the file of
 * a bus with many values is summed at every write.  crc_table[0] is the
 * usual byte table; crc_table[k][i] is the CRC of byte i followed by k
 * zero bytes.
 */
static uint32_t crc_table[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_table_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int k = 0; k < 8; k++)
			c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
		crc_table[0][i] = c;
	}
	for (uint32_t i = 0; i < 256; i++)
		for (int k = 1; k < 8; k++)
			crc_table[k][i] =
				(crc_table[k - 1][i] >> 8) ^
				crc_table[0][crc_table[k - 1][i] & 0xff];
}

static uint32_t get32(const unsigned char *p);

uint32_t state_crc32(const void *buf, size_t len)
{
	const unsigned char *p = buf;
	uint32_t c = 0xffffffffu;

	pthread_once(&crc_once, crc_table_init);
	for (; len >= 8; p += 8, len -= 8) {
		uint32_t lo = c ^ get32(p), hi = get32(p + 4);

		c = crc_table[7][lo & 0xff] ^ crc_table[6][(lo >> 8) & 0xff] ^
		    crc_table[5][(lo >> 16) & 0xff] ^ crc_table[4][lo >> 24] ^
		    crc_table[3][hi & 0xff] ^ crc_table[2][(hi >> 8) & 0xff] ^
		    crc_table[1][(hi >> 16) & 0xff] ^ crc_table[0][hi >> 24];
	}
	for (; len; p++, len--)
		c = crc_table[0][(c ^ *p) & 0xff] ^ (c >> 8);
	return c ^ 0xffffffffu;
}

/* -------------------------------------------------------------------- */
/* little-endian numbers                                                 */

static uint16_t get16(const unsigned char *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static uint64_t get64(const unsigned char *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

/* A growing buffer; after a failed allocation every put is a no-op and
 * failed says so. */
struct sbuf {
	unsigned char *data;
	size_t len, cap;
	bool failed;
};

static unsigned char *sbuf_room(struct sbuf *b, size_t n)
{
	if (b->failed)
		return NULL;
	if (n > b->cap - b->len) {
		size_t cap = b->cap ? b->cap : 4096;
		unsigned char *data;

		while (n > cap - b->len) {
			if (cap > SIZE_MAX / 2) {
				b->failed = true;
				return NULL;
			}
			cap *= 2;
		}
		data = realloc(b->data, cap);
		if (!data) {
			b->failed = true;
			return NULL;
		}
		b->data = data;
		b->cap = cap;
	}
	b->len += n;
	return b->data + b->len - n;
}

static void put_bytes(struct sbuf *b, const void *p, size_t n)
{
	unsigned char *d = sbuf_room(b, n);

	if (d && n)
		memcpy(d, p, n);
}

static void put16(struct sbuf *b, uint16_t v)
{
	unsigned char d[2] = { (unsigned char)v, (unsigned char)(v >> 8) };

	put_bytes(b, d, sizeof(d));
}

static void put32(struct sbuf *b, uint32_t v)
{
	unsigned char d[4];

	for (int i = 0; i < 4; i++)
		d[i] = (unsigned char)(v >> (8 * i));
	put_bytes(b, d, sizeof(d));
}

static void put64(struct sbuf *b, uint64_t v)
{
	put32(b, (uint32_t)v);
	put32(b, (uint32_t)(v >> 32));
}

/* A string with its NUL, or nothing for NULL. */
static void put_string(struct sbuf *b, const char *s)
{
	if (s)
		put_bytes(b, s, strlen(s) + 1);
}

static size_t string_len(const char *s)
{
	return s ? strlen(s) : 0;
}

/* -------------------------------------------------------------------- */
/* encoding                                                              */

static int64_t clock_ns(clockid_t clock)
{
	struct timespec t;

	clock_gettime(clock, &t);
	return (int64_t)t.tv_sec * NS_PER_S + t.tv_nsec;
}

static void encode_retained(struct sbuf *b, const struct retained *v)
{
	put32(b, STATE_REC_RETAINED);
	put32(b, (uint32_t)(8 + v->m->len));
	put32(b, (uint32_t)v->uid);
	put32(b, v->prio);
	put_bytes(b, v->m->data, v->m->len);
}

static void encode_timer(struct sbuf *b, const struct timer *t,
			 int64_t mono, int64_t real)
{
	const char *owner = t->owner ? t->owner->tx_name : t->owner_tx;
	size_t strings = strlen(t->topic) + 1 +
			 (t->key ? strlen(t->key) + 1 : 0) +
			 (owner ? strlen(owner) + 1 : 0);
	int64_t next;

	/* both clocks as they were read once for the whole file */
	if (t->next - mono > STATE_NEXT_MAX - real)
		next = STATE_NEXT_MAX;
	else
		next = real + (t->next - mono);
	if (next < 0)
		next = 0;
	put32(b, STATE_REC_TIMER);
	put32(b, (uint32_t)(STATE_TIMER_FIXED + strings + t->payload_len));
	put64(b, t->id);
	put64(b, t->period_ms);
	put64(b, (uint64_t)next);
	put64(b, t->fired);
	put32(b, (uint32_t)t->uid);
	put32(b, (uint32_t)t->pid);
	put32(b, t->client_id);
	put32(b, (uint32_t)t->priority);
	put32(b, owner ? 0 : STATE_TIMER_DETACHED);
	put16(b, (uint16_t)strlen(t->topic));
	put16(b, (uint16_t)string_len(t->key));
	put16(b, (uint16_t)string_len(owner));
	put16(b, 0);
	put32(b, (uint32_t)t->payload_len);
	put_string(b, t->topic);
	put_string(b, t->key);
	put_string(b, owner);
	put_bytes(b, t->payload, t->payload_len);
}

int state_encode(struct server *s, unsigned char **ret_buf, size_t *ret_len)
{
	int64_t mono = clock_ns(CLOCK_MONOTONIC);
	int64_t real = clock_ns(CLOCK_REALTIME);
	struct sbuf b = { 0 };
	const struct retained *v;
	const struct timer *t;
	uint32_t records = 0;

	put_bytes(&b, STATE_MAGIC, 8);
	put32(&b, STATE_VERSION);
	put32(&b, 0); /* the count, filled in below */
	put64(&b, s->timers.next_id);
	put64(&b, (uint64_t)real);
	TAILQ_FOREACH(v, &s->retained.values, link) {
		encode_retained(&b, v);
		records++;
	}
	TAILQ_FOREACH(t, &s->timers.all, link) {
		encode_timer(&b, t, mono, real);
		records++;
	}
	if (!b.failed) {
		unsigned char *count = b.data + 12;

		for (int i = 0; i < 4; i++)
			count[i] = (unsigned char)(records >> (8 * i));
	}
	put32(&b, b.failed ? 0 : state_crc32(b.data, b.len));
	if (b.failed) {
		free(b.data);
		return -ENOMEM;
	}
	*ret_buf = b.data;
	*ret_len = b.len;
	return 0;
}

/* -------------------------------------------------------------------- */
/* parsing                                                               */

static int parse_fail(char *why, size_t whysize, int err, const char *fmt,
		      ...) __attribute__((format(printf, 4, 5)));

static int parse_fail(char *why, size_t whysize, int err, const char *fmt,
		      ...)
{
	va_list ap;

	if (why && whysize) {
		va_start(ap, fmt);
		vsnprintf(why, whysize, fmt, ap);
		va_end(ap);
	}
	return err;
}

/* The NUL-terminated string of len bytes at p, or NULL if the byte after
 * it is not a NUL. */
static const char *parse_string(const unsigned char *p, size_t len)
{
	return p[len] == '\0' ? (const char *)p : NULL;
}

static const char *parse_retained(const unsigned char *p, size_t len,
				  struct state_retained *ret)
{
	struct proto_msg pm;

	if (len < 8 + PROTO_HEADER_SIZE)
		return "a retained value too short for a message";
	ret->uid = (uid_t)get32(p);
	ret->prio = get32(p + 4);
	if (ret->uid == (uid_t)-1)
		return "a retained value of uid -1";
	if (ret->prio > PROTO_PRIO_MAX)
		return "a retained value's priority out of range";
	if (proto_decode(p + 8, len - 8, &pm) < 0)
		return "a retained value that is not a valid message";
	if (pm.h.type != PROTO_DELIVER || !(pm.h.flags & PROTO_F_RETAINED) ||
	    pm.h.payload_len == 0)
		return "a retained value that is not a kept DELIVER";
	ret->msg = p + 8;
	ret->len = len - 8;
	ret->payload_len = pm.h.payload_len;
	ret->topic = pm.topic;
	return NULL;
}

static const char *parse_timer(const unsigned char *p, size_t len,
			       uint64_t next_id, uint64_t prev_id,
			       struct state_timer *ret)
{
	size_t topic_len, key_len, owner_len;
	uint64_t strings, payload_len;
	uint32_t flags;
	int64_t prio;

	if (len < STATE_TIMER_FIXED)
		return "a timer record too short";
	ret->id = get64(p);
	ret->period_ms = get64(p + 8);
	ret->next_ns = (int64_t)get64(p + 16);
	ret->fired = get64(p + 24);
	ret->uid = (uid_t)get32(p + 32);
	ret->pid = (pid_t)get32(p + 36);
	ret->client_id = get32(p + 40);
	prio = (int32_t)get32(p + 44);
	flags = get32(p + 48);
	topic_len = get16(p + 52);
	key_len = get16(p + 54);
	owner_len = get16(p + 56);
	payload_len = get32(p + 60);
	if (ret->id == 0 || ret->id <= prev_id || ret->id > next_id)
		return "a timer id out of order or above the next id";
	if (ret->period_ms > TIMER_MAX_DELAY_MS || ret->next_ns < 0 ||
	    ret->next_ns > STATE_NEXT_MAX)
		return "a timer's period or time out of range";
	if (ret->uid == (uid_t)-1 || get32(p + 36) > INT32_MAX ||
	    ret->pid <= 0)
		return "a timer's uid or pid out of range";
	if (prio < -1 || prio > PROTO_PRIO_MAX)
		return "a timer's priority out of range";
	ret->priority = (int)prio;
	if ((flags & ~STATE_TIMER_DETACHED) || get16(p + 58) != 0)
		return "a timer with unknown flags";
	if (!(flags & STATE_TIMER_DETACHED) != (owner_len != 0))
		return "a timer both detached and owned, or neither";
	strings = topic_len + 1 + (key_len ? key_len + 1 : 0) +
		  (owner_len ? owner_len + 1 : 0);
	if (len - STATE_TIMER_FIXED != strings + payload_len)
		return "a timer record whose lengths do not add up";
	p += STATE_TIMER_FIXED;
	ret->topic = parse_string(p, topic_len);
	if (!ret->topic || !proto_topic_valid(ret->topic, topic_len, false))
		return "a timer with an invalid topic";
	p += topic_len + 1;
	ret->key = NULL;
	if (key_len) {
		ret->key = parse_string(p, key_len);
		if (!ret->key || !proto_key_valid(ret->key, key_len))
			return "a timer with an invalid key";
		p += key_len + 1;
	}
	ret->owner_tx = NULL;
	if (owner_len) {
		ret->owner_tx = parse_string(p, owner_len);
		if (!ret->owner_tx ||
		    !proto_qname_valid(ret->owner_tx, owner_len))
			return "a timer with an invalid owner queue name";
		p += owner_len + 1;
	}
	ret->payload = p;
	ret->payload_len = (size_t)payload_len;
	return NULL;
}

int state_parse(const void *buf, size_t len, struct state_image *ret,
		char *why, size_t whysize)
{
	const unsigned char *p = buf;
	struct state_image img = { 0 };
	size_t off, end, n_retained = 0, n_timers = 0;
	uint64_t prev_id = 0;
	uint32_t version, count;
	const char *bad;

	if (len == 0)
		return parse_fail(why, whysize, -EINVAL, "the file is empty");
	if (len > STATE_MAX_BYTES)
		return parse_fail(why, whysize, -EFBIG,
				  "%zu bytes, more than the %u a state file "
				  "may have",
				  len, STATE_MAX_BYTES);
	if (len < STATE_HEADER_SIZE + STATE_TRAILER_SIZE)
		return parse_fail(why, whysize, -EINVAL,
				  "truncated: %zu bytes, less than a header",
				  len);
	if (memcmp(p, STATE_MAGIC, 8) != 0)
		return parse_fail(why, whysize, -EINVAL,
				  "not an mqbusd state file (bad magic)");
	version = get32(p + 8);
	if (version != STATE_VERSION)
		return parse_fail(why, whysize, -EINVAL,
				  "format version %" PRIu32
				  ", this mqbusd reads version %u",
				  version, STATE_VERSION);
	end = len - STATE_TRAILER_SIZE;
	if (state_crc32(p, end) != get32(p + end))
		return parse_fail(why, whysize, -EINVAL,
				  "checksum mismatch: the file is damaged or "
				  "truncated");
	count = get32(p + 12);
	img.next_timer_id = get64(p + 16);
	img.written_ns = (int64_t)get64(p + 24);

	/* the framing first: how many of each, all inside the file */
	off = STATE_HEADER_SIZE;
	for (uint32_t i = 0; i < count; i++) {
		uint32_t type, body;

		if (end - off < STATE_RECORD_HEAD)
			return parse_fail(why, whysize, -EINVAL,
					  "record %" PRIu32 " of %" PRIu32
					  " is past the end",
					  i + 1, count);
		type = get32(p + off);
		body = get32(p + off + 4);
		off += STATE_RECORD_HEAD;
		if (body > end - off)
			return parse_fail(why, whysize, -EINVAL,
					  "record %" PRIu32 " runs past the "
					  "end",
					  i + 1);
		if (type == STATE_REC_RETAINED)
			n_retained++;
		else if (type == STATE_REC_TIMER)
			n_timers++;
		else
			return parse_fail(why, whysize, -EINVAL,
					  "record %" PRIu32
					  " of unknown type %" PRIu32,
					  i + 1, type);
		off += body;
	}
	if (off != end)
		return parse_fail(why, whysize, -EINVAL,
				  "%zu bytes after the last record",
				  end - off);

	if (n_retained) {
		img.retained = calloc(n_retained, sizeof(*img.retained));
		if (!img.retained)
			goto nomem;
	}
	if (n_timers) {
		img.timers = calloc(n_timers, sizeof(*img.timers));
		if (!img.timers)
			goto nomem;
	}
	off = STATE_HEADER_SIZE;
	for (uint32_t i = 0; i < count; i++) {
		uint32_t type = get32(p + off);
		size_t body = get32(p + off + 4);
		const unsigned char *rec = p + off + STATE_RECORD_HEAD;

		if (type == STATE_REC_RETAINED) {
			bad = parse_retained(rec, body,
					     &img.retained[img.n_retained]);
			img.n_retained++;
		} else {
			struct state_timer *t = &img.timers[img.n_timers];

			bad = parse_timer(rec, body, img.next_timer_id,
					  prev_id, t);
			prev_id = t->id;
			img.n_timers++;
		}
		if (bad) {
			state_image_free(&img);
			return parse_fail(why, whysize, -EINVAL,
					  "record %" PRIu32 ": %s", i + 1,
					  bad);
		}
		off += STATE_RECORD_HEAD + body;
	}
	*ret = img;
	return 0;

nomem:
	state_image_free(&img);
	return parse_fail(why, whysize, -ENOMEM, "out of memory");
}

void state_image_free(struct state_image *img)
{
	free(img->retained);
	free(img->timers);
	memset(img, 0, sizeof(*img));
}

/* -------------------------------------------------------------------- */
/* the writer                                                            */

struct state {
	struct server *server;
	int dirfd;
	char *path;	/* DIR/BUS.state, for the log */
	char *name;	/* BUS.state, in dirfd */
	char *tmp_name; /* BUS.state.tmp */
	char *bad_name; /* BUS.state.bad */
	struct event *write_ev;
	struct event *grace_ev;
	uint64_t due_usec; /* when write_ev fires; 0: not set */
	bool dirty;
	bool closed;
	bool failing; /* the last write failed */
	uint64_t writes;
	struct log_ratelimit rl;
};

static uint64_t now_usec(void)
{
	return (uint64_t)clock_ns(CLOCK_MONOTONIC) / 1000;
}

/* Marks st dirty and has it written within delay_ms, or sooner if a
 * write is due sooner already. */
static void state_schedule(struct state *st, unsigned delay_ms)
{
	uint64_t due = now_usec() + (uint64_t)delay_ms * 1000;
	struct timeval tv = { delay_ms / 1000, (delay_ms % 1000) * 1000 };

	if (!st || st->closed)
		return;
	st->dirty = true;
	if (st->due_usec && st->due_usec <= due)
		return;
	if (event_add(st->write_ev, &tv) < 0) {
		log_warnx("state: cannot schedule a write of %s", st->path);
		return;
	}
	st->due_usec = due;
}

void state_changed(struct state *st)
{
	state_schedule(st, STATE_DELAY_MS);
}

void state_touched(struct state *st)
{
	state_schedule(st, STATE_LAZY_MS);
}

static void state_retained_changed(void *arg)
{
	state_changed(arg);
}

static int write_all(int fd, const unsigned char *p, size_t len)
{
	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * Writes the file atomically: a temporary file next to it, its data on
 * disk, renamed over the old one, and the directory on disk (the rename
 * itself).  Returns 0, or -errno with *ret_step naming what failed.
 */
static int state_write_file(struct state *st, const char **ret_step)
{
	unsigned char *buf;
	size_t len;
	int fd, r;

	*ret_step = "encoding";
	r = state_encode(st->server, &buf, &len);
	if (r < 0)
		return r;
	*ret_step = "creating the temporary file";
	fd = openat(st->dirfd, st->tmp_name,
		    O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
		    0600);
	if (fd < 0) {
		r = -errno;
		free(buf);
		return r;
	}
	*ret_step = "writing";
	r = write_all(fd, buf, len);
	free(buf);
	if (r == 0) {
		*ret_step = "syncing";
		if (fsync(fd) < 0)
			r = -errno;
	}
	if (close(fd) < 0 && r == 0) {
		*ret_step = "closing";
		r = -errno;
	}
	if (r == 0) {
		*ret_step = "renaming";
		if (renameat(st->dirfd, st->tmp_name, st->dirfd, st->name) <
		    0)
			r = -errno;
	}
	if (r < 0) {
		unlinkat(st->dirfd, st->tmp_name, 0);
		return r;
	}
	*ret_step = "syncing the directory";
	if (fsync(st->dirfd) < 0)
		return -errno;
	return 0;
}

int state_flush(struct state *st)
{
	const char *step = "";
	uint64_t n;
	int r;

	if (!st || !st->dirty)
		return 0;
	r = state_write_file(st, &step);
	if (r < 0) {
		n = log_ratelimit_hit(&st->rl, 1, now_usec(), 1);
		if (n)
			log_warnx("state: cannot write %s: %s: %s (%" PRIu64
				  " failed write%s since the last such "
				  "entry; trying again)",
				  st->path, step, strerror(-r), n,
				  n == 1 ? "" : "s");
		st->failing = true;
		state_schedule(st, STATE_RETRY_MS);
		return r;
	}
	if (st->failing)
		log_info("state: %s written again", st->path);
	st->failing = false;
	st->dirty = false;
	st->writes++;
	return 0;
}

static void state_write_due(evutil_socket_t fd, short what, void *arg)
{
	struct state *st = arg;

	st->due_usec = 0;
	state_flush(st);
}

void state_shutdown(struct state *st)
{
	if (!st)
		return;
	state_flush(st);
	st->closed = true;
	st->due_usec = 0;
	if (st->write_ev)
		event_del(st->write_ev);
}

struct state *state_free(struct state *st)
{
	if (!st)
		return NULL;
	if (st->server && st->server->retained.on_change_arg == st) {
		st->server->retained.on_change = NULL;
		st->server->retained.on_change_arg = NULL;
	}
	if (st->write_ev)
		event_free(st->write_ev);
	if (st->grace_ev)
		event_free(st->grace_ev);
	if (st->dirfd >= 0)
		close(st->dirfd);
	free(st->path);
	free(st->name);
	free(st->tmp_name);
	free(st->bad_name);
	free(st);
	return NULL;
}

const char *state_path(const struct state *st)
{
	return st ? st->path : NULL;
}

uint64_t state_writes(const struct state *st)
{
	return st ? st->writes : 0;
}

/* -------------------------------------------------------------------- */
/* loading                                                               */

/* What a load did, for its one log line. */
struct state_load {
	unsigned retained, timers, waiting;
	unsigned over_max, over_share, timers_over, timers_bad, nomem;
};

static void state_apply(struct server *s, const struct state_image *img,
			struct state_load *ld)
{
	for (size_t i = 0; i < img->n_retained; i++) {
		const struct state_retained *rec = &img->retained[i];
		struct msgbuf *m = msgbuf_get_exact(&s->pool, rec->len);
		int r = -ENOMEM;

		if (m) {
			memcpy(m->data, rec->msg, rec->len);
			m->len = rec->len;
			r = retain_set(&s->retained, &s->pool, rec->uid,
				       rec->topic, m, rec->payload_len,
				       rec->prio);
			msgbuf_unref(m);
		}
		if (r == 0)
			ld->retained++;
		else if (r == -ENOSPC)
			ld->over_max++;
		else if (r == -EDQUOT)
			ld->over_share++;
		else
			ld->nomem++;
	}
	for (size_t i = 0; i < img->n_timers; i++) {
		const struct state_timer *rec = &img->timers[i];
		int r = timer_restore(s, rec);

		if (r == 0) {
			ld->timers++;
			ld->waiting += rec->owner_tx != NULL;
		} else if (r == -EDQUOT) {
			ld->timers_over++;
		} else if (r == -ENOMEM) {
			ld->nomem++;
		} else {
			ld->timers_bad++;
		}
	}
	if (s->timers.next_id < img->next_timer_id)
		s->timers.next_id = img->next_timer_id;
}

static void state_log_load(const struct state *st,
			   const struct state_image *img,
			   const struct state_load *ld)
{
	int64_t real = clock_ns(CLOCK_REALTIME);
	/* the file's word, not trusted: a time ahead or absurd is age 0 */
	int64_t age = img->written_ns >= 0 && img->written_ns <= real
			      ? (real - img->written_ns) / NS_PER_S
			      : 0;
	char dropped[256] = "";

	if (ld->over_max || ld->over_share || ld->timers_over ||
	    ld->timers_bad || ld->nomem)
		snprintf(dropped, sizeof(dropped),
			 "; dropped %u value%s over max_retained, %u over "
			 "the per-uid shares, %u timer%s over the per-uid "
			 "bounds, %u below timer_min_period_ms, %u for want "
			 "of memory",
			 ld->over_max, ld->over_max == 1 ? "" : "s",
			 ld->over_share, ld->timers_over,
			 ld->timers_over == 1 ? "" : "s", ld->timers_bad,
			 ld->nomem);
	log_info("state: loaded %u retained value%s and %u timer%s (%u "
		 "waiting for their clients) from %s, written %lld s ago%s",
		 ld->retained, ld->retained == 1 ? "" : "s", ld->timers,
		 ld->timers == 1 ? "" : "s", ld->waiting, st->path,
		 (long long)age, dropped);
}

/*
 * Reads the file (at most STATE_MAX_BYTES + 1 bytes).  Returns 0 with a
 * malloc()ed buffer, -ENOENT when there is none, or -errno with *ret_why
 * saying why it cannot be read.
 */
static int state_read(struct state *st, unsigned char **ret_buf,
		      size_t *ret_len, const char **ret_why)
{
	unsigned char *buf;
	struct stat sb;
	size_t len = 0, cap;
	int fd, r;

	fd = openat(st->dirfd, st->name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		r = -errno;
		*ret_why = "cannot open it";
		return r;
	}
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
		close(fd);
		*ret_why = "not a regular file";
		return -EINVAL;
	}
	if (sb.st_size > (off_t)STATE_MAX_BYTES) {
		close(fd);
		*ret_why = "larger than a state file may be";
		return -EFBIG;
	}
	cap = (size_t)sb.st_size + 1; /* + 1: a file that grew shows it */
	buf = malloc(cap);
	if (!buf) {
		close(fd);
		*ret_why = "out of memory";
		return -ENOMEM;
	}
	while (len < cap) {
		ssize_t n = read(fd, buf + len, cap - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			close(fd);
			free(buf);
			*ret_why = "cannot read it";
			return r;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	*ret_buf = buf;
	*ret_len = len;
	return 0;
}

static void state_grace_over(evutil_socket_t fd, short what, void *arg)
{
	struct server *s = arg;

	timer_drop_unclaimed(s);
}

/* Loads the file into s, or logs why not and sets it aside.  Returns
 * whether the file should be written again (something was dropped). */
static bool state_load(struct state *st)
{
	struct server *s = st->server;
	struct state_image img = { 0 };
	struct state_load ld = { 0 };
	const char *why_read = NULL;
	unsigned char *buf = NULL;
	char why[200];
	size_t len = 0;
	int r;

	r = state_read(st, &buf, &len, &why_read);
	if (r == -ENOENT) {
		log_info("state: no %s yet: starting with no retained values "
			 "or timers",
			 st->path);
		return false;
	}
	if (r < 0) {
		snprintf(why, sizeof(why), "%s: %s", why_read, strerror(-r));
	} else {
		r = state_parse(buf, len, &img, why, sizeof(why));
	}
	if (r < 0) {
		bool kept = renameat(st->dirfd, st->name, st->dirfd,
				     st->bad_name) == 0;

		/* one line: what was wrong, and where the file went */
		log_warnx("state: ignoring %s: %s; starting with no retained "
			  "values or timers%s%s%s",
			  st->path, why, kept ? " (set aside as " : "",
			  kept ? st->path : "", kept ? ".bad)" : "");
		free(buf);
		return true;
	}
	state_apply(s, &img, &ld);
	state_log_load(st, &img, &ld);
	state_image_free(&img);
	free(buf);
	if (ld.waiting) {
		struct timeval tv = { s->cfg.restart_grace_ms / 1000,
				      (s->cfg.restart_grace_ms % 1000) *
					      1000 };

		st->grace_ev = evtimer_new(s->base, state_grace_over, s);
		if (!st->grace_ev || evtimer_add(st->grace_ev, &tv) < 0) {
			log_warnx("state: cannot wait for the restored timers' "
				  "clients; dropping them now");
			timer_drop_unclaimed(s);
		}
	}
	return ld.over_max || ld.over_share || ld.timers_over ||
	       ld.timers_bad || ld.nomem;
}

int state_open(struct server *s, const char *dir, char **ret_error)
{
	struct state *st;
	bool rewrite;

	s->state = NULL;
	if (!dir || !*dir)
		return 0;
	st = calloc(1, sizeof(*st));
	if (!st)
		return log_error_text(ret_error, -ENOMEM, "out of memory");
	st->server = s;
	st->rl.interval_usec = STATE_LOG_INTERVAL_USEC;
	st->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (st->dirfd < 0) {
		int err = -errno;

		state_free(st);
		return log_error_text(ret_error, err,
				      "cannot use state directory %s: %s", dir,
				      strerror(-err));
	}
	if (asprintf(&st->path, "%s/%s.state", dir, s->bus) < 0)
		st->path = NULL;
	if (asprintf(&st->name, "%s.state", s->bus) < 0)
		st->name = NULL;
	if (asprintf(&st->tmp_name, "%s.state.tmp", s->bus) < 0)
		st->tmp_name = NULL;
	if (asprintf(&st->bad_name, "%s.state.bad", s->bus) < 0)
		st->bad_name = NULL;
	st->write_ev = evtimer_new(s->base, state_write_due, st);
	if (!st->path || !st->name || !st->tmp_name || !st->bad_name ||
	    !st->write_ev) {
		state_free(st);
		return log_error_text(ret_error, -ENOMEM, "out of memory");
	}
	/* a temporary file a crash left behind is of no use */
	unlinkat(st->dirfd, st->tmp_name, 0);
	rewrite = state_load(st);
	s->state = st;
	s->retained.on_change = state_retained_changed;
	s->retained.on_change_arg = st;
	if (rewrite)
		state_changed(st);
	return 0;
}
