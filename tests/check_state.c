/* SPDX-License-Identifier: MIT */
/*
 * check_state.c - the state file (daemon/state.c) with the daemon built
 * in-process, as check_server.c runs it.
 *
 * A client process makes retained values and timers on a bus whose
 * struct server runs in this process with a state directory; the test
 * writes the state file (state_flush()) and then:
 *
 *   - parses it, then damages it every way a disk or a crash could (each
 *     byte flipped, each truncation, a wrong version, record counts and
 *     records that are wrong under a good checksum, trailing bytes, too
 *     large): every one is refused with a reason, none half parsed;
 *   - starts a second server on it and checks what timer_claim() and
 *     timer_drop_unclaimed() do with the restored timers whose client is
 *     gone, and that the restart grace drops the unclaimed ones by
 *     itself;
 *   - starts servers with smaller bounds on it and checks that the load
 *     is cut to them and the accounts charged again;
 *   - checks that a burst of changes gives one write within the bounded
 *     delay.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "client/mqbus.h"
#include "daemon/log.h"
#include "daemon/peer.h"
#include "daemon/server.h"
#include "daemon/state.h"
#include "daemon/timer.h"

/* what a client process does on the bus; returns its exit status */
typedef int (*client_fn)(const char *bus);

struct child {
	pid_t pid;
	int done_fd; /* a byte: its status once its work is done */
};

static char state_dir[64];

static uint64_t now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

static void make_state_dir(void)
{
	snprintf(state_dir, sizeof(state_dir), "/tmp/check_state.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(state_dir));
}

static void remove_state_dir(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", state_dir);
	ck_assert_int_eq(system(cmd), 0);
}

static void server_start(struct server *s, const char *bus,
			 const char *config)
{
	struct server_options opt = {
		.bus = bus,
		.wake = WAKE_POLL,
		.state_dir = state_dir,
	};
	char path[128], *err = NULL;
	int r;

	if (config) {
		FILE *f;

		snprintf(path, sizeof(path), "%s/%s.conf", state_dir, bus);
		f = fopen(path, "w");
		ck_assert_ptr_nonnull(f);
		fputs(config, f);
		ck_assert_int_eq(fclose(f), 0);
		opt.config_path = path;
	}
	r = server_init(s, &opt, &err);
	ck_assert_msg(r == 0, "server_init(%s): %s", bus, err ? err : "?");
	free(err);
}

/* Forks a client process that runs fn and then waits to be killed. */
static struct child child_start(const char *bus, client_fn fn)
{
	struct child c;
	int fds[2];

	ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
	c.pid = fork();
	ck_assert_int_ge(c.pid, 0);
	if (c.pid == 0) {
		sigset_t none;
		unsigned char st;

		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		st = (unsigned char)fn(bus);
		if (write(fds[1], &st, 1) != 1)
			_exit(99);
		for (;;)
			pause();
	}
	close(fds[1]);
	c.done_fd = fds[0];
	return c;
}

/* Runs s until the child is done; fails the test unless it did its work. */
static void child_wait(struct server *s, struct child *c)
{
	uint64_t t0 = now_ms();
	struct pollfd pfd = { .fd = c->done_fd, .events = POLLIN };
	unsigned char st = 255;

	for (;;) {
		ck_assert_int_eq(server_step(s), 0);
		if (poll(&pfd, 1, 0) == 1) {
			ck_assert_int_eq(read(c->done_fd, &st, 1), 1);
			break;
		}
		ck_assert_msg(now_ms() - t0 < 20000,
			      "the client did not finish in 20 s");
		usleep(200);
	}
	ck_assert_msg(st == 0, "the client failed at step %u", st);
}

static void child_kill(struct child *c)
{
	kill(c->pid, SIGKILL);
	waitpid(c->pid, NULL, 0);
	close(c->done_fd);
}

/* Runs s for ms milliseconds. */
static void run_for(struct server *s, unsigned ms)
{
	uint64_t end = now_ms() + ms;

	while (now_ms() < end) {
		ck_assert_int_eq(server_step(s), 0);
		usleep(500);
	}
}

static unsigned char *read_state(const struct server *s, size_t *ret_len)
{
	const char *path = state_path(s->state);
	unsigned char *buf;
	struct stat sb;
	int fd;

	ck_assert_ptr_nonnull(path);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));
	ck_assert_int_eq(fstat(fd, &sb), 0);
	buf = malloc((size_t)sb.st_size + 1);
	ck_assert_ptr_nonnull(buf);
	ck_assert_int_eq(read(fd, buf, (size_t)sb.st_size), sb.st_size);
	close(fd);
	*ret_len = (size_t)sb.st_size;
	return buf;
}

static void put32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

/* Recomputes the trailer of a state file of len bytes. */
static void fix_crc(unsigned char *buf, size_t len)
{
	put32(buf + len - 4, state_crc32(buf, len - 4));
}

/* state_parse() must refuse buf; why must contain want (NULL: any). */
static void expect_refused(const unsigned char *buf, size_t len,
			   const char *want, const char *what)
{
	struct state_image img = { 0 };
	char why[200] = "";
	int r = state_parse(buf, len, &img, why, sizeof(why));

	ck_assert_msg(r < 0, "%s: parsed (%zu values, %zu timers)", what,
		      img.n_retained, img.n_timers);
	ck_assert_msg(why[0], "%s: refused without a reason", what);
	ck_assert_msg(!want || strstr(why, want),
		      "%s: refused because '%s', wanted '%s'", what, why,
		      want);
	ck_assert_ptr_null(img.retained);
	ck_assert_ptr_null(img.timers);
}

/* -------------------------------------------------------------------- */
/* clients                                                               */

/* three retained values (one with a key), a detached periodic timer and
 * an owned one-shot timer */
static int client_values(const char *bus)
{
	mqbus *b;

	if (mqbus_open(&b, bus) < 0)
		return 1;
	if (mqbus_publish_flags(b, "v/a", "alpha", 5, MQBUS_PRIORITY_DEFAULT,
				MQBUS_PUBLISH_RETAIN) < 0 ||
	    mqbus_publish_key(b, "v/b", "kb", "beta", 4, 3,
			      MQBUS_PUBLISH_RETAIN) < 0 ||
	    mqbus_publish_flags(b, "v/c", "gamma", 5, MQBUS_PRIORITY_DEFAULT,
				MQBUS_PUBLISH_RETAIN) < 0)
		return 2;
	if (mqbus_timer_add_key(b, "t/det", "kt", "tick", 4, 2, 100000, 60000,
				MQBUS_TIMER_DETACHED, NULL) < 0)
		return 3;
	if (mqbus_timer_add(b, "t/own", "once", 4, MQBUS_PRIORITY_DEFAULT,
			    200000, 0, 0, NULL) < 0)
		return 4;
	if (mqbus_sync(b) < 0)
		return 5;
	return 0;
}

/* two clients with an owned timer each, and a detached one */
static int client_timers(const char *bus)
{
	mqbus *b1, *b2;

	if (mqbus_open(&b1, bus) < 0 || mqbus_open(&b2, bus) < 0)
		return 1;
	if (mqbus_timer_add(b1, "c/one", "1", 1, MQBUS_PRIORITY_DEFAULT,
			    100000, 0, 0, NULL) < 0)
		return 2;
	if (mqbus_timer_add(b2, "c/two", "2", 1, MQBUS_PRIORITY_DEFAULT,
			    100000, 50000, 0, NULL) < 0)
		return 3;
	if (mqbus_timer_add(b1, "c/det", "3", 1, MQBUS_PRIORITY_DEFAULT,
			    100000, 0, MQBUS_TIMER_DETACHED, NULL) < 0)
		return 4;
	return 0;
}

/* six retained values */
static int client_six(const char *bus)
{
	char topic[16];
	mqbus *b;

	if (mqbus_open(&b, bus) < 0)
		return 1;
	for (int i = 0; i < 6; i++) {
		snprintf(topic, sizeof(topic), "six/%d", i);
		if (mqbus_publish_flags(b, topic, "value", 5,
					MQBUS_PRIORITY_DEFAULT,
					MQBUS_PUBLISH_RETAIN) < 0)
			return 2;
	}
	if (mqbus_sync(b) < 0)
		return 3;
	return 0;
}

/* a burst of 50 retained values */
static int client_burst(const char *bus)
{
	char topic[16];
	mqbus *b;

	if (mqbus_open(&b, bus) < 0)
		return 1;
	for (int i = 0; i < 50; i++) {
		snprintf(topic, sizeof(topic), "burst/%d", i);
		if (mqbus_publish_flags(b, topic, "x", 1,
					MQBUS_PRIORITY_DEFAULT,
					MQBUS_PUBLISH_RETAIN) < 0)
			return 2;
	}
	if (mqbus_sync(b) < 0)
		return 3;
	return 0;
}

static struct timer *find_timer(struct server *s, const char *topic)
{
	struct timer *t;

	TAILQ_FOREACH(t, &s->timers.all, link)
		if (strcmp(t->topic, topic) == 0)
			return t;
	return NULL;
}

/* -------------------------------------------------------------------- */
/* the parser                                                            */

/* The CRC is the usual one (zlib's crc32()), at every length and
 * alignment its eight-byte steps meet. */
START_TEST(crc_known_values)
{
	static const char digits[] = "123456789";
	unsigned char buf[64];
	uint32_t bitwise;

	ck_assert_uint_eq(state_crc32(digits, 9), 0xcbf43926u);
	ck_assert_uint_eq(state_crc32("", 0), 0);
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (unsigned char)(i * 37 + 11);
	for (size_t off = 0; off < 8; off++) {
		for (size_t len = 0; len + off <= sizeof(buf); len++) {
			bitwise = 0xffffffffu;
			for (size_t i = 0; i < len; i++) {
				bitwise ^= buf[off + i];
				for (int k = 0; k < 8; k++)
					bitwise = (bitwise >> 1) ^
						  (bitwise & 1 ? 0xedb88320u
							       : 0);
			}
			ck_assert_uint_eq(state_crc32(buf + off, len),
					  bitwise ^ 0xffffffffu);
		}
	}
}
END_TEST

START_TEST(parse_good_and_damaged)
{
	struct state_image img = { 0 };
	struct server s;
	struct child c;
	unsigned char *buf, *bad;
	const unsigned char *rec;
	char bus[32], why[200];
	size_t len;
	int r;

	make_state_dir();
	snprintf(bus, sizeof(bus), "st%dp", (int)getpid());
	server_start(&s, bus, NULL);
	c = child_start(bus, client_values);
	child_wait(&s, &c);
	ck_assert_uint_eq(s.retained.count, 3);
	ck_assert_uint_eq(s.timers.n, 2);
	ck_assert_int_eq(state_flush(s.state), 0);
	buf = read_state(&s, &len);

	r = state_parse(buf, len, &img, why, sizeof(why));
	ck_assert_msg(r == 0, "the file just written: %s", why);
	ck_assert_uint_eq(img.n_retained, 3);
	ck_assert_uint_eq(img.n_timers, 2);
	/* in the order the bus kept them: v/b, at priority 3, may have
	 * been read before v/a (both waiting in tx) or after it (the
	 * daemon was quicker); v/c, at priority 0 behind both, comes last */
	{
		unsigned ib = strcmp(img.retained[0].topic, "v/b") == 0 ? 0
									: 1;

		ck_assert_str_eq(img.retained[ib].topic, "v/b");
		ck_assert_str_eq(img.retained[1 - ib].topic, "v/a");
		ck_assert_str_eq(img.retained[2].topic, "v/c");
		ck_assert_uint_eq(img.retained[ib].payload_len, 4);
		ck_assert_uint_eq(img.retained[ib].prio, 3);
		ck_assert_uint_eq(img.retained[1 - ib].uid, getuid());
	}
	ck_assert_str_eq(img.timers[0].topic, "t/det");
	ck_assert_str_eq(img.timers[0].key, "kt");
	ck_assert_ptr_null(img.timers[0].owner_tx);
	ck_assert_uint_eq(img.timers[0].period_ms, 60000);
	ck_assert_int_eq(img.timers[0].priority, 2);
	ck_assert_mem_eq(img.timers[0].payload, "tick", 4);
	ck_assert_str_eq(img.timers[1].topic, "t/own");
	ck_assert_ptr_null(img.timers[1].key);
	ck_assert_str_eq(img.timers[1].owner_tx,
			 find_timer(&s, "t/own")->owner->tx_name);
	ck_assert_uint_eq(img.next_timer_id, 2);
	state_image_free(&img);

	bad = malloc(len + 8);
	ck_assert_ptr_nonnull(bad);

	/* every byte flipped, one bit and the top bit */
	for (size_t i = 0; i < len; i++) {
		for (unsigned bit = 0x01; bit <= 0x80; bit <<= 7) {
			memcpy(bad, buf, len);
			bad[i] ^= (unsigned char)bit;
			expect_refused(bad, len, NULL, "a flipped byte");
		}
	}
	/* every truncation, down to nothing */
	for (size_t n = 0; n < len; n++)
		expect_refused(buf, n, n ? NULL : "empty", "a truncation");
	/* too large: refused before a byte is read */
	expect_refused(buf, (size_t)STATE_MAX_BYTES + 1, "more than",
		       "too large");

	/* wrong under a good checksum */
	memcpy(bad, buf, len);
	put32(bad + 8, STATE_VERSION + 1);
	fix_crc(bad, len);
	expect_refused(bad, len, "format version 2", "another version");
	memcpy(bad, buf, len);
	memcpy(bad, "MQBSTATX", 8);
	fix_crc(bad, len);
	expect_refused(bad, len, "bad magic", "another magic");
	memcpy(bad, buf, len);
	put32(bad + 12, 6);
	fix_crc(bad, len);
	expect_refused(bad, len, "past the end", "a record too many");
	memcpy(bad, buf, len);
	put32(bad + 12, 4);
	fix_crc(bad, len);
	expect_refused(bad, len, "after the last record", "a record too few");
	memcpy(bad, buf, len - 4);
	memset(bad + len - 4, 0, 4);
	fix_crc(bad, len + 4);
	expect_refused(bad, len + 4, NULL, "bytes after the records");
	/* the first record's type */
	memcpy(bad, buf, len);
	put32(bad + STATE_HEADER_SIZE, 9);
	fix_crc(bad, len);
	expect_refused(bad, len, "unknown type 9", "a record of type 9");
	/* a timer's topic made a pattern */
	memcpy(bad, buf, len);
	rec = memmem(bad, len, "t/det", 6);
	ck_assert_ptr_nonnull(rec);
	bad[rec - bad] = '#';
	fix_crc(bad, len);
	expect_refused(bad, len, "invalid topic", "a timer on a pattern");
	/* a timer's id above the next id */
	memcpy(bad, buf, len);
	bad[16] = 1;
	fix_crc(bad, len);
	expect_refused(bad, len, "above the next id", "a timer id too big");
	/* a retained value's message, the DELIVER's magic */
	memcpy(bad, buf, len);
	bad[STATE_HEADER_SIZE + STATE_RECORD_HEAD + 8] ^= 0xff;
	fix_crc(bad, len);
	expect_refused(bad, len, "not a valid message", "a bad message");

	free(bad);
	free(buf);
	child_kill(&c);
	server_deinit(&s);
	remove_state_dir();
}
END_TEST

/* -------------------------------------------------------------------- */
/* restoring                                                             */

static int64_t clock_ns(clockid_t clock)
{
	struct timespec t;

	clock_gettime(clock, &t);
	return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static void put64(unsigned char *p, uint64_t v)
{
	put32(p, (uint32_t)v);
	put32(p + 4, (uint32_t)(v >> 32));
}

/*
 * A periodic timer whose next firing passed 150 s ago, with a period of
 * 60 s (two firings and a half missed): it fires once at start, counts
 * on from its old count, and its next firing is on its old phase, 30 s
 * ahead.  One whose next firing is ahead keeps that time.
 */
START_TEST(missed_firings_once)
{
	const int64_t period = 60000000000LL, second = 1000000000LL;
	struct timer *det, *own;
	unsigned char *buf, *rec;
	struct server s;
	struct child c;
	char bus[32], path[128];
	int64_t real, mono, next_real, stored;
	size_t len;
	FILE *f;

	make_state_dir();
	snprintf(bus, sizeof(bus), "st%dm", (int)getpid());
	server_start(&s, bus, NULL);
	c = child_start(bus, client_values);
	child_wait(&s, &c);
	ck_assert_int_eq(state_flush(s.state), 0);
	buf = read_state(&s, &len);
	child_kill(&c);
	server_deinit(&s);

	real = clock_ns(CLOCK_REALTIME);
	stored = real - 150 * second;
	rec = memmem(buf, len, "t/det", 6);
	ck_assert_ptr_nonnull(rec);
	rec -= 64; /* the timer's fixed part */
	put64(rec + 16, (uint64_t)stored);
	put64(rec + 24, 7);
	rec = memmem(buf, len, "t/own", 6);
	ck_assert_ptr_nonnull(rec);
	rec -= 64;
	put64(rec + 16, (uint64_t)(real + 10 * second));
	fix_crc(buf, len);
	snprintf(path, sizeof(path), "%s/%s.state", state_dir, bus);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(buf, 1, len, f), len);
	ck_assert_int_eq(fclose(f), 0);
	free(buf);

	server_start(&s, bus, "[bus]\nrestart_grace_ms = 600000\n");
	det = find_timer(&s, "t/det");
	own = find_timer(&s, "t/own");
	ck_assert_ptr_nonnull(det);
	ck_assert_ptr_nonnull(own);
	ck_assert_uint_eq(det->fired, 7);
	run_for(&s, 200);
	ck_assert_uint_eq(det->fired, 8);
	run_for(&s, 200);
	ck_assert_uint_eq(det->fired, 8);
	/* its next firing, as a wall-clock time, on the old phase */
	mono = clock_ns(CLOCK_MONOTONIC);
	real = clock_ns(CLOCK_REALTIME);
	next_real = det->next - mono + real;
	ck_assert_msg(llabs(next_real - (stored + 3 * period)) < 50000000,
		      "next firing %.3f s off the old phase",
		      (double)(next_real - (stored + 3 * period)) / 1e9);
	/* the one ahead: still about 10 s ahead, not fired */
	ck_assert_uint_eq(own->fired, 0);
	ck_assert_msg(llabs(own->next - mono - 10 * second) < second,
		      "the timer 10 s ahead is now %.3f s ahead",
		      (double)(own->next - mono) / 1e9);
	server_deinit(&s);
	remove_state_dir();
}
END_TEST

/*
 * Writes the state of client_timers() and returns the tx names of the
 * clients that own c/one and c/two.
 */
static void make_timers_state(const char *bus, char **ret_tx1,
			      char **ret_tx2)
{
	struct server s;
	struct child c;

	server_start(&s, bus, NULL);
	c = child_start(bus, client_timers);
	child_wait(&s, &c);
	ck_assert_uint_eq(s.timers.n, 3);
	*ret_tx1 = strdup(find_timer(&s, "c/one")->owner->tx_name);
	*ret_tx2 = strdup(find_timer(&s, "c/two")->owner->tx_name);
	ck_assert_str_ne(*ret_tx1, *ret_tx2);
	ck_assert_int_eq(state_flush(s.state), 0);
	/* a crash: nothing written after the clients go */
	child_kill(&c);
	server_deinit(&s);
}

START_TEST(claim_and_drop)
{
	struct peer p1 = { 0 }, stranger = { 0 };
	struct timer *one, *two, *det;
	char bus[32], *tx1, *tx2;
	struct server s;

	make_state_dir();
	snprintf(bus, sizeof(bus), "st%dc", (int)getpid());
	make_timers_state(bus, &tx1, &tx2);
	/* a grace long enough that only the test drops anything */
	server_start(&s, bus, "[bus]\nrestart_grace_ms = 600000\n");
	ck_assert_uint_eq(s.timers.n, 3);
	one = find_timer(&s, "c/one");
	two = find_timer(&s, "c/two");
	det = find_timer(&s, "c/det");
	ck_assert_ptr_nonnull(one);
	ck_assert_ptr_nonnull(two);
	ck_assert_ptr_nonnull(det);
	ck_assert_uint_eq(one->id, 1);
	ck_assert_uint_eq(two->id, 2);
	ck_assert_uint_eq(det->id, 3);
	ck_assert_uint_eq(s.timers.next_id, 3);
	/* waiting for their clients, not detached */
	ck_assert_ptr_null(one->owner);
	ck_assert_str_eq(one->owner_tx, tx1);
	ck_assert_str_eq(two->owner_tx, tx2);
	ck_assert(!timer_detached(one));
	ck_assert(timer_detached(det));
	ck_assert_uint_eq(two->period_ms, 50000);
	ck_assert_uint_eq(account_held(&s.accounts, getuid(), ACCOUNT_TIMERS),
			  3);

	/* another uid's client on the same queue name takes nothing */
	stranger.uid = getuid() + 1;
	stranger.tx_name = tx2;
	TAILQ_INIT(&stranger.timers);
	timer_claim(&s, &stranger);
	ck_assert(TAILQ_EMPTY(&stranger.timers));
	ck_assert_ptr_null(two->owner);

	/* the client of tx1 comes back */
	p1.uid = getuid();
	p1.pid = 4242;
	p1.id = 99;
	p1.tx_name = tx1;
	p1.server = &s;
	TAILQ_INIT(&p1.timers);
	timer_claim(&s, &p1);
	ck_assert_ptr_eq(one->owner, &p1);
	ck_assert_ptr_null(one->owner_tx);
	ck_assert_ptr_eq(TAILQ_FIRST(&p1.timers), one);
	ck_assert_ptr_null(TAILQ_NEXT(one, owner_link));
	ck_assert_uint_eq(one->id, 1);
	ck_assert_int_eq(one->pid, 4242);
	ck_assert_uint_eq(one->client_id, 99);
	ck_assert_ptr_null(two->owner);
	ck_assert_ptr_null(det->owner);
	/* claiming again finds nothing more */
	timer_claim(&s, &p1);
	ck_assert_ptr_eq(TAILQ_FIRST(&p1.timers), one);
	ck_assert_ptr_null(TAILQ_NEXT(one, owner_link));

	/* the grace ends: c/two goes, c/one (claimed) and c/det stay */
	ck_assert_uint_eq(timer_drop_unclaimed(&s), 1);
	ck_assert_uint_eq(s.timers.n, 2);
	ck_assert_ptr_null(find_timer(&s, "c/two"));
	ck_assert_ptr_eq(find_timer(&s, "c/one"), one);
	ck_assert_ptr_eq(find_timer(&s, "c/det"), det);
	ck_assert_uint_eq(timer_drop_unclaimed(&s), 0);
	ck_assert_uint_eq(account_held(&s.accounts, getuid(), ACCOUNT_TIMERS),
			  2);
	/* and the claimed timer is its client's: it goes with it */
	timer_drop_peer(&p1);
	ck_assert_uint_eq(s.timers.n, 1);
	ck_assert_ptr_eq(TAILQ_FIRST(&s.timers.all), det);
	ck_assert_uint_eq(account_held(&s.accounts, getuid(), ACCOUNT_TIMERS),
			  1);

	server_deinit(&s);
	free(tx1);
	free(tx2);
	remove_state_dir();
}
END_TEST

START_TEST(grace_drops_unclaimed)
{
	char bus[32], *tx1, *tx2;
	struct server s;
	uint64_t t0, end;

	make_state_dir();
	snprintf(bus, sizeof(bus), "st%dg", (int)getpid());
	make_timers_state(bus, &tx1, &tx2);
	server_start(&s, bus, "[bus]\nrestart_grace_ms = 300\n");
	t0 = now_ms();
	ck_assert_uint_eq(s.timers.n, 3);
	end = t0 + 5000;
	while (s.timers.n != 1 && now_ms() < end) {
		ck_assert_int_eq(server_step(&s), 0);
		usleep(500);
	}
	ck_assert_msg(s.timers.n == 1,
		      "%zu timers 5 s after the start, wanted 1 (detached)",
		      s.timers.n);
	ck_assert_msg(now_ms() - t0 >= 250,
		      "the unclaimed timers went after %llu ms, before the "
		      "300 ms grace",
		      (unsigned long long)(now_ms() - t0));
	ck_assert_str_eq(TAILQ_FIRST(&s.timers.all)->topic, "c/det");
	server_deinit(&s);
	free(tx1);
	free(tx2);
	remove_state_dir();
}
END_TEST

/* The values of a file written under bigger bounds, cut to smaller ones,
 * charged to the uid's account again. */
START_TEST(bounds_on_load)
{
	static const char *configs[] = {
		"[bus]\nmax_retained = 4\n",
		"[bus]\nmax_retained_per_uid = 2\n",
	};
	static const size_t want[] = { 4, 2 };
	struct retained *v;
	char bus[32];
	struct server s;
	struct child c;
	uint64_t bytes = 0;
	size_t i = 0;

	make_state_dir();
	snprintf(bus, sizeof(bus), "st%db", (int)getpid());
	server_start(&s, bus, NULL);
	c = child_start(bus, client_six);
	child_wait(&s, &c);
	ck_assert_uint_eq(s.retained.count, 6);
	ck_assert_int_eq(state_flush(s.state), 0);
	child_kill(&c);
	server_deinit(&s);

	server_start(&s, bus, configs[_i]);
	ck_assert_uint_eq(s.retained.count, want[_i]);
	TAILQ_FOREACH(v, &s.retained.values, link) {
		char topic[16];

		snprintf(topic, sizeof(topic), "six/%zu", i++);
		ck_assert_str_eq(v->topic, topic);
		ck_assert_uint_eq(v->uid, getuid());
		bytes += v->bytes;
	}
	ck_assert_uint_eq(account_held(&s.accounts, getuid(),
				       ACCOUNT_RETAINED),
			  want[_i]);
	ck_assert_uint_eq(account_held(&s.accounts, getuid(),
				       ACCOUNT_RETAINED_BYTES),
			  bytes);
	/* what was dropped is dropped from the file too, within a second */
	run_for(&s, 1500);
	ck_assert_uint_eq(state_writes(s.state), 1);
	server_deinit(&s);
	server_start(&s, bus, NULL);
	ck_assert_uint_eq(s.retained.count, want[_i]);
	server_deinit(&s);
	remove_state_dir();
}
END_TEST

/* A burst of changes: one write, within STATE_DELAY_MS of the first. */
START_TEST(burst_one_write)
{
	struct server s;
	struct child c;
	char bus[32];
	uint64_t t0;

	make_state_dir();
	snprintf(bus, sizeof(bus), "st%dw", (int)getpid());
	server_start(&s, bus, NULL);
	ck_assert_uint_eq(state_writes(s.state), 0);
	c = child_start(bus, client_burst);
	t0 = now_ms();
	child_wait(&s, &c);
	ck_assert_uint_eq(s.retained.count, 50);
	while (state_writes(s.state) == 0 && now_ms() - t0 < 3000) {
		ck_assert_int_eq(server_step(&s), 0);
		usleep(500);
	}
	ck_assert_msg(state_writes(s.state) == 1,
		      "no write 3 s after the burst");
	ck_assert_msg(now_ms() - t0 <= STATE_DELAY_MS + 500,
		      "the write came %llu ms after the first change",
		      (unsigned long long)(now_ms() - t0));
	run_for(&s, 1500);
	ck_assert_msg(state_writes(s.state) <= 2,
		      "%llu writes for one burst",
		      (unsigned long long)state_writes(s.state));
	child_kill(&c);
	server_deinit(&s);
	server_start(&s, bus, NULL);
	ck_assert_uint_eq(s.retained.count, 50);
	server_deinit(&s);
	remove_state_dir();
}
END_TEST

int main(void)
{
	Suite *s = suite_create("state");
	TCase *tc = tcase_create("state file");
	SRunner *sr;
	int failed;

	log_init(false);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, crc_known_values);
	tcase_add_test(tc, parse_good_and_damaged);
	tcase_add_test(tc, claim_and_drop);
	tcase_add_test(tc, grace_drops_unclaimed);
	tcase_add_test(tc, missed_firings_once);
	tcase_add_loop_test(tc, bounds_on_load, 0, 2);
	tcase_add_test(tc, burst_one_write);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
