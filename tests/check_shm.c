/* SPDX-License-Identifier: MIT */
/*
 * check_shm.c - large payloads in sealed memory files (PROTOCOL.md,
 * "Memory files") against mqbusd, from the side of a hostile client:
 * who may attach a connection (the nonce, the client id, the process),
 * which files the daemon refuses (none, unsealed, of another size, not
 * a memory file, two at once, over max_message), a head from a client
 * that never attached, a receiver whose connection broke (pieces from
 * then on), and receivers of both kinds getting the same message.  Each
 * refusal is answered, counted, and leaves every other client served;
 * after a crash, clients attach again to the next daemon.  Reused memory
 * areas ("Memory areas"): registrations refused (unsealed, holes, of
 * another size, too many slots, not a memory file, a second one), a
 * receiver that never gives its slots back (its messages wait and
 * overflow by policy, another receiver gets everything), releases of no
 * slot in use (refused, counted, the connection dropped after too many),
 * areas registered again after a restart, and 1 MiB payloads through
 * slots used out of order by priority.
 * Clients made by hand are testbus_forge()'s; tests/shm.sh runs it.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <mqueue.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <check.h>

#include "client/mqbus.h"
#include "proto/frag.h"
#include "proto/proto.h"
#include "proto/shm.h"
#include "tests/testbus.h"

#define RECV_MS 5000
#define QUIET_MS 300
#define BIG (200 * 1024)

/* a client made by hand, with what its WELCOME said */
struct raw {
	struct testbus_forged f;
	struct testbus_welcome w;
	int sock; /* its attached connection, -1: none */
};

static unsigned char *payload(size_t len, unsigned seed)
{
	unsigned char *p = malloc(len);

	ck_assert_ptr_nonnull(p);
	for (size_t i = 0; i < len; i++)
		p[i] = (unsigned char)(i * 7 + seed + i / 251);
	return p;
}

/* Handshakes a client by hand, asking for memory files with flags. */
static void raw_connect(struct raw *r, const struct testbus *tb, unsigned n,
			unsigned flags)
{
	char name[256];
	mqd_t busq;

	snprintf(name, sizeof(name), "/%s", tb->bus);
	busq = mq_open(name, O_WRONLY | O_CLOEXEC);
	ck_assert_msg(busq != (mqd_t)-1, "open %s: %s", name, strerror(errno));
	testbus_forge(&r->f, tb->bus, n, 0600);
	testbus_send_announce(busq, r->f.tx, flags);
	mq_close(busq);
	ck_assert_msg(testbus_welcome(&r->f, RECV_MS, &r->w), "no WELCOME");
	r->sock = -1;
}

static void raw_free(struct raw *r)
{
	if (r->sock >= 0)
		close(r->sock);
	testbus_forged_free(&r->f);
}

/* A connection to the daemon's memory-file address. */
static int shm_connect(const char *addr)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t len = strlen(addr);
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	memcpy(sa.sun_path + 1, addr, len);
	ck_assert_msg(connect(fd, (struct sockaddr *)&sa,
			      (socklen_t)(offsetof(struct sockaddr_un,
						   sun_path) +
					  1 + len)) == 0,
		      "connect to @%s: %s", addr, strerror(errno));
	return fd;
}

/*
 * Says an attach of id with nonce on a new connection to addr.  Returns
 * the daemon's answer (0, or the errno it refused with), or -1 if it
 * closed without one; *ret_sock keeps an accepted connection.
 */
static int attach(const char *addr, uint32_t id, uint64_t nonce,
		  int *ret_sock)
{
	struct shm_attach a = { SHM_ATTACH_MAGIC, id, nonce };
	struct shm_attached ans;
	int fd = shm_connect(addr), r;

	ck_assert_int_eq(send(fd, &a, sizeof(a), 0), (ssize_t)sizeof(a));
	r = testbus_read_all(fd, &ans, sizeof(ans), RECV_MS) == 0
		    ? (int)ans.status
		    : -1;
	if (r == 0 && ret_sock)
		*ret_sock = fd;
	else
		close(fd);
	return r;
}

/* A PUBLISH of topic whose len-byte payload is in the file of tag. */
static void send_head(struct raw *r, const char *topic, uint32_t tag,
		      size_t len, uint32_t token)
{
	unsigned char buf[512];
	struct proto_header h;
	int n;

	proto_header_init(&h, PROTO_PUBLISH);
	h.flags = PROTO_F_SHM;
	h.shm_tag = tag;
	h.token = token;
	n = proto_encode_head(buf, sizeof(buf), &h, topic, NULL, len);
	ck_assert_int_gt(n, 0);
	testbus_send_raw(r->f.txq, buf, (size_t)n);
}

/* A PUBLISH of topic whose len-byte payload is in the slot of tag of
 * r's tx area. */
static void send_area_head(struct raw *r, const char *topic, uint32_t tag,
			   size_t len, uint32_t token)
{
	unsigned char buf[512];
	struct proto_header h;
	int n;

	proto_header_init(&h, PROTO_PUBLISH);
	h.flags = PROTO_F_SHM | PROTO_F_AREA;
	h.shm_tag = tag;
	h.token = token;
	n = proto_encode_head(buf, sizeof(buf), &h, topic, NULL, len);
	ck_assert_int_gt(n, 0);
	testbus_send_raw(r->f.txq, buf, (size_t)n);
}

/* Passes fds (nfd of them) tagged tag over sock. */
static void send_fds(int sock, uint32_t tag, const int *fds, int nfd)
{
	char ctl[CMSG_SPACE(4 * sizeof(int))] = { 0 };
	struct iovec iov = { .iov_base = &tag, .iov_len = sizeof(tag) };
	struct msghdr msg = { .msg_iov = &iov,
			      .msg_iovlen = 1,
			      .msg_control = ctl,
			      .msg_controllen = CMSG_SPACE(nfd * sizeof(int)) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);

	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(nfd * sizeof(int));
	memcpy(CMSG_DATA(c), fds, nfd * sizeof(int));
	ck_assert_int_eq(sendmsg(sock, &msg, 0), (ssize_t)sizeof(tag));
}

/* A memory file of len bytes, sealed with seals (0: none). */
static int memfile(size_t len, int seals)
{
	unsigned char *p = payload(len, 1);
	int fd = memfd_create("check_shm", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, p, len), (ssize_t)len);
	if (seals)
		ck_assert_int_eq(fcntl(fd, F_ADD_SEALS, seals), 0);
	free(p);
	return fd;
}

/* The answer in r's rx: an ERROR to token (its errno), or 0 for an
 * ACK. */
static int answer(struct raw *r, uint32_t token)
{
	unsigned char buf[2048];
	struct proto_msg m;
	struct timespec ts;
	ssize_t n;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += RECV_MS / 1000;
	n = mq_timedreceive(r->f.rxq, (char *)buf, sizeof(buf), NULL, &ts);
	ck_assert_msg(n > 0, "no answer to token %u: %s", token,
		      strerror(errno));
	ck_assert_int_eq(proto_decode(buf, (size_t)n, &m), 0);
	ck_assert_uint_eq(m.h.token, token);
	if (m.h.type == PROTO_ACK)
		return 0;
	ck_assert_int_eq(m.h.type, PROTO_ERROR);
	return (int)m.h.status;
}

/* sub receives topic with the payload of seed 1, len bytes, whole. */
static void expect_whole(mqbus *sub, const char *topic, size_t len)
{
	mqbus_msg *m = testbus_recv(sub, RECV_MS);
	unsigned char *want = payload(len, 1);
	const void *got;
	size_t n = 0;

	ck_assert_str_eq(mqbus_msg_topic(m), topic);
	got = mqbus_msg_payload(m, &n);
	ck_assert_uint_eq(n, len);
	ck_assert_msg(memcmp(got, want, len) == 0, "%s: payload differs",
		      topic);
	ck_assert_int_eq((int)mqbus_msg_sender_pid(m), (int)getpid());
	free(want);
	mqbus_msg_free(m);
}

/* -------------------------------------------------------------------- */

/*
 * Only the client itself attaches: a wrong nonce, another client's id,
 * a client that did not ask, another process with the right nonce, a
 * second connection, and garbage are refused; each is counted.
 */
START_TEST(test_attach)
{
	struct testbus tb = { 0 };
	struct raw a, b;
	mqbus *mon;
	int sock = -1, status;
	pid_t child;

	testbus_start(&tb, NULL);
	mon = testbus_connect(&tb, 2, 0); /* asks for stats only */
	raw_connect(&a, &tb, 901, PROTO_F_SHM);
	raw_connect(&b, &tb, 902, 0);
	ck_assert(a.w.flags & PROTO_F_SHM);
	ck_assert_msg(strncmp(a.w.topic, "mqbus-shm-", 10) == 0, "address %s",
		      a.w.topic);
	ck_assert(a.w.timestamp != 0);
	/* who did not ask is told nothing */
	ck_assert(!(b.w.flags & PROTO_F_SHM));
	ck_assert_str_eq(b.w.topic, "");

	ck_assert_int_eq(attach(a.w.topic, a.w.client_id, a.w.timestamp ^ 1,
				NULL),
			 EPERM);
	ck_assert_int_eq(attach(a.w.topic, b.w.client_id, a.w.timestamp,
				NULL),
			 EPERM);
	ck_assert_int_eq(attach(a.w.topic, b.w.client_id, 0, NULL), EPERM);
	/* the right words from another process */
	child = fork();
	ck_assert_int_ge(child, 0);
	if (child == 0)
		_exit(attach(a.w.topic, a.w.client_id, a.w.timestamp, NULL) ==
		      EPERM ? 0 : 1);
	ck_assert_int_eq(waitpid(child, &status, 0), child);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "another process attached as the client");
	/* garbage, and a connection that says nothing */
	{
		int fd = shm_connect(a.w.topic);

		ck_assert_int_eq(send(fd, "abc", 3, 0), 3);
		close(fd);
		close(shm_connect(a.w.topic));
	}
	ck_assert_int_eq(attach(a.w.topic, a.w.client_id, a.w.timestamp,
				&sock),
			 0);
	ck_assert_int_eq(attach(a.w.topic, a.w.client_id, a.w.timestamp,
				NULL),
			 EPERM);
	testbus_wait_stat(mon, "shm_attach_refused", 7, RECV_MS);
	/* and mon, a library client, attached itself */
	ck_assert_int_eq(testbus_stat(mon, "shm_attached"), 2);
	close(sock);
	raw_free(&b);
	raw_free(&a);
	mqbus_free(mon);
	testbus_finish(&tb);
}
END_TEST

/*
 * An attached client's files: none, unsealed, of another size, a pipe,
 * two at once, and a message over max_message are each refused with an
 * ERROR to their token, and nothing reaches the subscriber; the good
 * one after them arrives whole, from us.
 */
START_TEST(test_bad_files)
{
	enum { LEN = 70000 };
	const int seals = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE;
	struct testbus tb = { 0 };
	struct raw a;
	mqbus *sub, *mon;
	int fds[2], pipefd[2];
	uint32_t tag = 0;

	testbus_start(&tb, "[bus]\nmax_message = 100000\n");
	sub = testbus_connect(&tb, 0, 0);
	mon = testbus_connect(&tb, 2, 0); /* asks for stats only */
	testbus_subscribe(sub, "h/#");
	raw_connect(&a, &tb, 903, PROTO_F_SHM);
	ck_assert_int_eq(attach(a.w.topic, a.w.client_id, a.w.timestamp,
				&a.sock),
			 0);

	/* a head without its file */
	send_head(&a, "h/none", ++tag, LEN, 11);
	ck_assert_int_eq(answer(&a, 11), EPROTO);
	/* unsealed: its bytes could change under the receivers */
	fds[0] = memfile(LEN, 0);
	send_fds(a.sock, ++tag, fds, 1);
	close(fds[0]);
	send_head(&a, "h/unsealed", tag, LEN, 12);
	ck_assert_int_eq(answer(&a, 12), EPERM);
	/* sealed against writes but not against shrinking */
	fds[0] = memfile(LEN, F_SEAL_WRITE | F_SEAL_GROW);
	send_fds(a.sock, ++tag, fds, 1);
	close(fds[0]);
	send_head(&a, "h/shrinkable", tag, LEN, 13);
	ck_assert_int_eq(answer(&a, 13), EPERM);
	/* a file of another size than the head says */
	fds[0] = memfile(LEN - 1, seals);
	send_fds(a.sock, ++tag, fds, 1);
	close(fds[0]);
	send_head(&a, "h/size", tag, LEN, 14);
	ck_assert_int_eq(answer(&a, 14), EMSGSIZE);
	/* not a memory file */
	ck_assert_int_eq(pipe(pipefd), 0);
	send_fds(a.sock, ++tag, pipefd, 1);
	send_head(&a, "h/pipe", tag, LEN, 15);
	ck_assert_int_eq(answer(&a, 15), EBADF);
	/* two files for one message */
	fds[0] = memfile(LEN, seals);
	fds[1] = memfile(LEN, seals);
	send_fds(a.sock, ++tag, fds, 2);
	close(fds[0]);
	close(fds[1]);
	send_head(&a, "h/two", tag, LEN, 16);
	ck_assert_int_eq(answer(&a, 16), EPROTO);
	/* over max_message: refused before any file is taken */
	send_head(&a, "h/huge", ++tag, 100001, 17);
	ck_assert_int_eq(answer(&a, 17), EMSGSIZE);
	testbus_expect_nothing(sub, QUIET_MS);
	ck_assert_int_eq(testbus_stat(mon, "shm_refused"), 7);

	/* and a good one goes through, the refusals on the way skipped */
	fds[0] = memfile(LEN, seals);
	send_fds(a.sock, ++tag, fds, 1);
	close(fds[0]);
	send_head(&a, "h/good", tag, LEN, 18);
	ck_assert_int_eq(answer(&a, 18), 0);
	expect_whole(sub, "h/good", LEN);
	ck_assert_int_eq(testbus_stat(mon, "shm_received"), 1);
	close(pipefd[0]);
	close(pipefd[1]);
	raw_free(&a);
	mqbus_free(mon);
	mqbus_free(sub);
	testbus_finish(&tb);
}
END_TEST

/* A head flagged PROTO_F_SHM from a client with no connection. */
START_TEST(test_not_attached)
{
	struct testbus tb = { 0 };
	struct raw a;
	mqbus *sub, *mon;

	testbus_start(&tb, NULL);
	sub = testbus_connect(&tb, 0, 0);
	mon = testbus_connect(&tb, 2, 0); /* asks for stats only */
	testbus_subscribe(sub, "n/#");
	raw_connect(&a, &tb, 904, 0);
	send_head(&a, "n/x", 1, BIG, 21);
	ck_assert_int_eq(answer(&a, 21), EPROTO);
	testbus_expect_nothing(sub, QUIET_MS);
	ck_assert_int_eq(testbus_stat(mon, "shm_refused"), 1);
	ck_assert_int_eq(testbus_stat(mon, "bad_messages"), 1);
	raw_free(&a);
	mqbus_free(mon);
	mqbus_free(sub);
	testbus_finish(&tb);
}
END_TEST

/*
 * One message, two receivers: one attached (gets the file), one with
 * MQBUS_SHM=0 (gets pieces); both whole.
 */
START_TEST(test_mixed_receivers)
{
	struct testbus tb = { 0 };
	mqbus *pub, *files, *pieces, *mon;
	unsigned char *p = payload(BIG, 1);

	testbus_start(&tb, NULL);
	pub = testbus_connect(&tb, 0, 0);
	files = testbus_connect(&tb, 0, 0);
	setenv("MQBUS_SHM", "0", 1);
	pieces = testbus_connect(&tb, 0, 0);
	unsetenv("MQBUS_SHM");
	mon = testbus_connect(&tb, 2, 0); /* asks for stats only */
	testbus_subscribe(files, "m/#");
	testbus_subscribe(pieces, "m/#");
	ck_assert_int_eq(mqbus_publish(pub, "m/x", p, BIG,
				       MQBUS_PRIORITY_DEFAULT),
			 0);
	expect_whole(files, "m/x", BIG);
	expect_whole(pieces, "m/x", BIG);
	ck_assert_int_eq(testbus_stat(mon, "shm_received"), 1);
	ck_assert_int_eq(testbus_stat(mon, "shm_sent"), 1);
	ck_assert_int_eq(testbus_stat(mon, "large_sent"), 1);
	free(p);
	mqbus_free(mon);
	mqbus_free(pieces);
	mqbus_free(files);
	mqbus_free(pub);
	testbus_finish(&tb);
}
END_TEST

/*
 * A receiver whose connection is gone gets pieces from then on, and
 * nothing is lost.
 */
START_TEST(test_receiver_gone)
{
	struct testbus tb = { 0 };
	struct raw r;
	unsigned char buf[2048], *p = payload(BIG, 1);
	struct proto_header h;
	struct proto_msg m;
	mqbus *pub;
	ssize_t n;
	int len;

	testbus_start(&tb, NULL);
	pub = testbus_connect(&tb, 0, 0);
	raw_connect(&r, &tb, 905, PROTO_F_SHM);
	ck_assert_int_eq(attach(r.w.topic, r.w.client_id, r.w.timestamp,
				&r.sock),
			 0);
	proto_header_init(&h, PROTO_SUBSCRIBE);
	h.token = 31;
	len = proto_encode(buf, sizeof(buf), &h, "g/#", NULL, 0);
	testbus_send_raw(r.f.txq, buf, (size_t)len);
	ck_assert_int_eq(answer(&r, 31), 0);
	close(r.sock);
	r.sock = -1;
	ck_assert_int_eq(mqbus_publish(pub, "g/x", p, BIG,
				       MQBUS_PRIORITY_DEFAULT),
			 0);
	n = mq_receive(r.f.rxq, (char *)buf, sizeof(buf), NULL);
	ck_assert_int_gt(n, 0);
	ck_assert_int_eq(proto_decode(buf, (size_t)n, &m), 0);
	ck_assert_int_eq(m.h.type, PROTO_FRAGMENT);
	ck_assert_uint_eq(m.h.timestamp, proto_size(3, BIG));
	free(p);
	raw_free(&r);
	mqbus_free(pub);
	testbus_finish(&tb);
}
END_TEST

/*
 * After the daemon is killed and another takes the bus, the clients
 * attach again (the new daemon's address and nonce, in its WELCOME),
 * and large payloads go in memory files again.
 */
START_TEST(test_restart)
{
	const char *config = "[bus]\nrestart_grace_ms = 200\n";
	struct testbus tb = { 0 };
	unsigned char *p = payload(BIG, 1);
	mqbus *pub, *sub, *mon;
	long long files;

	testbus_start(&tb, config);
	pub = testbus_connect(&tb, 0, 0);
	sub = testbus_connect(&tb, 0, 0);
	testbus_subscribe(sub, "r/#");
	ck_assert_int_eq(mqbus_publish(pub, "r/x", p, BIG,
				       MQBUS_PRIORITY_DEFAULT),
			 0);
	expect_whole(sub, "r/x", BIG);

	testbus_kill(&tb);
	testbus_restart(&tb, config);
	mon = testbus_connect(&tb, 2, 0); /* asks for stats only */
	/* the subscriber comes back, its subscription with it */
	testbus_expect_nothing(sub, QUIET_MS);
	testbus_wait_stat(mon, "subscriptions", 1, RECV_MS);
	/* the publisher may find the daemon gone in this publish (then
	 * it goes in pieces while it reconnects); the next is a file */
	ck_assert_int_eq(mqbus_publish(pub, "r/y", p, BIG,
				       MQBUS_PRIORITY_DEFAULT),
			 0);
	expect_whole(sub, "r/y", BIG);
	files = testbus_stat(mon, "shm_received");
	ck_assert_int_eq(mqbus_publish(pub, "r/z", p, BIG,
				       MQBUS_PRIORITY_DEFAULT),
			 0);
	expect_whole(sub, "r/z", BIG);
	ck_assert_int_eq(testbus_stat(mon, "shm_attached"), 3);
	ck_assert_int_eq(testbus_stat(mon, "shm_received"), files + 1);
	ck_assert_int_eq(testbus_stat(mon, "shm_sent"), files + 1);
	free(p);
	mqbus_free(mon);
	mqbus_free(sub);
	mqbus_free(pub);
	testbus_finish(&tb);
}
END_TEST

/* -------------------------------------------------------------------- */
/* reused memory areas                                                   */

/* A raw client, attached, subscribed to pattern (0: not). */
static void raw_attached(struct raw *r, const struct testbus *tb, unsigned n,
			 const char *pattern)
{
	raw_connect(r, tb, n, PROTO_F_SHM);
	ck_assert_int_eq(attach(r->w.topic, r->w.client_id, r->w.timestamp,
				&r->sock),
			 0);
	if (pattern) {
		unsigned char buf[512];
		struct proto_header h;
		int len;

		proto_header_init(&h, PROTO_SUBSCRIBE);
		h.token = 77;
		len = proto_encode(buf, sizeof(buf), &h, pattern, NULL, 0);
		testbus_send_raw(r->f.txq, buf, (size_t)len);
		ck_assert_int_eq(answer(r, 77), 0);
	}
}

/* Sends a record on r's connection, with fd if >= 0. */
static void send_record(struct raw *r, uint32_t kind, uint32_t id,
			uint32_t a, uint32_t b, int fd)
{
	struct shm_record rec = { SHM_AREA_MAGIC, kind, id, a, b, 0 };

	ck_assert_int_eq(shm_send_buf(r->sock, &rec, sizeof(rec), fd), 0);
}

/* Registers an area of kind on r's connection: the daemon's status (0,
 * or the errno it refused with). */
static int register_area(struct raw *r, uint32_t kind, uint32_t id,
			 uint32_t slots, uint32_t slot_size, int fd)
{
	struct shm_record st;

	send_record(r, kind, id, slots, slot_size, fd);
	ck_assert_int_eq(testbus_read_all(r->sock, &st, sizeof(st), RECV_MS),
			 0);
	ck_assert_uint_eq(st.magic, SHM_AREA_MAGIC);
	ck_assert_uint_eq(st.kind, SHM_REC_STATUS);
	ck_assert_uint_eq(st.id, id);
	ck_assert_uint_eq(st.a, kind);
	return (int)st.b;
}

/* A memory file of size bytes: allocated or not, sealed with seals. */
static int area_file(size_t size, bool allocate, int seals)
{
	int fd = memfd_create("check_shm", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, (off_t)size), 0);
	if (allocate)
		ck_assert_int_eq(posix_fallocate(fd, 0, (off_t)size), 0);
	if (seals)
		ck_assert_int_eq(fcntl(fd, F_ADD_SEALS, seals), 0);
	return fd;
}

/* One refused registration of an rx area of slots x SLOT on a client
 * of its own: the errno. */
#define SLOT (128 * 1024)
static int refused_with(const struct testbus *tb, unsigned n, uint32_t slots,
			int fd)
{
	struct raw r;
	int err;

	raw_attached(&r, tb, n, NULL);
	err = register_area(&r, SHM_REC_AREA_RX, 1, slots, SLOT, fd);
	raw_free(&r);
	return err;
}

/*
 * Registrations refused: unsealed, sealed but with holes (writing it
 * would allocate), of another size, too many slots, a slot size that is
 * not whole pages, not a memory file, and a second area of a kind; one
 * good one is mapped and counted.
 */
START_TEST(test_area_refused)
{
	const int seals = F_SEAL_SHRINK | F_SEAL_GROW;
	struct testbus tb = { 0 };
	struct raw a;
	mqbus *mon;
	int fd, pipefd[2], huge = 0;

	testbus_start(&tb, NULL);
	mon = testbus_connect(&tb, 2, 0); /* asks for stats only */
	fd = area_file(2 * SLOT, true, 0);
	ck_assert_int_eq(refused_with(&tb, 911, 2, fd), EPERM);
	close(fd);
	fd = area_file(2 * SLOT, false, seals);
	ck_assert_int_eq(refused_with(&tb, 912, 2, fd), ENOSPC);
	close(fd);
	fd = area_file(3 * SLOT, true, seals);
	ck_assert_int_eq(refused_with(&tb, 913, 2, fd), EMSGSIZE);
	close(fd);
	fd = area_file(9 * SLOT, true, seals);
	ck_assert_int_eq(refused_with(&tb, 914, 9, fd), EINVAL);
	close(fd);
	ck_assert_int_eq(pipe(pipefd), 0);
	ck_assert_int_eq(refused_with(&tb, 915, 2, pipefd[0]), EBADF);
	close(pipefd[0]);
	close(pipefd[1]);
	ck_assert_int_eq(refused_with(&tb, 916, 2, -1), EBADF);
	/* a file of huge pages, where the system has them */
	fd = memfd_create("check_shm", MFD_CLOEXEC | MFD_ALLOW_SEALING |
					       MFD_HUGETLB);
	if (fd >= 0 && ftruncate(fd, 2 * 1024 * 1024) == 0 &&
	    fcntl(fd, F_ADD_SEALS, seals) == 0) {
		ck_assert_int_eq(refused_with(&tb, 918, 2, fd), EBADF);
		huge = 1;
	}
	if (fd >= 0)
		close(fd);
	/* a good one, then a second of the same kind */
	raw_attached(&a, &tb, 917, NULL);
	fd = area_file(2 * SLOT, true, seals);
	ck_assert_int_eq(register_area(&a, SHM_REC_AREA_RX, 5, 2, SLOT, fd),
			 0);
	ck_assert_int_eq(register_area(&a, SHM_REC_AREA_RX, 6, 2, SLOT, fd),
			 EEXIST);
	/* a slot that is not whole pages, as a tx area */
	ck_assert_int_eq(register_area(&a, SHM_REC_AREA_TX, 7, 1, SLOT + 1,
				       fd),
			 EINVAL);
	close(fd);
	ck_assert_int_eq(testbus_stat(mon, "shm_area_refused"), 8 + huge);
	ck_assert_int_eq(testbus_stat(mon, "shm_areas"), 1);
	ck_assert_int_eq(testbus_stat(mon, "shm_area_bytes"), 2 * SLOT);
	raw_free(&a);
	testbus_wait_stat(mon, "shm_areas", 0, RECV_MS);
	mqbus_free(mon);
	testbus_finish(&tb);
}
END_TEST

/* A head in r's rx flagged for a slot of area id: the slot. */
static unsigned area_head(struct raw *r, uint32_t id, const char *topic,
			  size_t len, uint32_t *ret_dropped)
{
	unsigned char buf[2048];
	struct proto_msg m;
	struct timespec ts;
	ssize_t n;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += RECV_MS / 1000;
	n = mq_timedreceive(r->f.rxq, (char *)buf, sizeof(buf), NULL, &ts);
	ck_assert_msg(n > 0, "no head of %s: %s", topic, strerror(errno));
	ck_assert_int_eq(proto_decode(buf, (size_t)n, &m), 0);
	ck_assert_int_eq(m.h.type, PROTO_DELIVER);
	ck_assert_str_eq(m.topic, topic);
	ck_assert(m.h.flags & PROTO_F_SHM);
	ck_assert(m.h.flags & PROTO_F_AREA);
	ck_assert_uint_eq(m.h.payload_len, len);
	ck_assert_uint_eq(SHM_AREA_TAG_ID(m.h.shm_tag), id);
	if (ret_dropped)
		*ret_dropped = m.h.status;
	return SHM_AREA_TAG_SLOT(m.h.shm_tag);
}

/* Nothing in r's rx for QUIET_MS. */
static void raw_nothing(struct raw *r)
{
	unsigned char buf[2048];
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_nsec += QUIET_MS * 1000000L;
	ts.tv_sec += ts.tv_nsec / 1000000000L;
	ts.tv_nsec %= 1000000000L;
	ck_assert_int_lt(mq_timedreceive(r->f.rxq, (char *)buf, sizeof(buf),
					 NULL, &ts),
			 0);
}

/* A drop notice of n losses in r's rx. */
static void expect_drops(struct raw *r, uint32_t n_lost)
{
	unsigned char buf[2048];
	struct proto_msg m;
	struct timespec ts;
	ssize_t n;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += RECV_MS / 1000;
	n = mq_timedreceive(r->f.rxq, (char *)buf, sizeof(buf), NULL, &ts);
	ck_assert_msg(n > 0, "no drop notice: %s", strerror(errno));
	ck_assert_int_eq(proto_decode(buf, (size_t)n, &m), 0);
	ck_assert_int_eq(m.h.type, PROTO_DELIVER);
	ck_assert(m.h.flags & PROTO_F_DROPS);
	ck_assert_uint_eq(m.h.status, n_lost);
}

/* The first piece of a message of total bytes in r's rx. */
static void expect_piece(struct raw *r, size_t total)
{
	unsigned char buf[2048];
	struct proto_msg m;
	struct timespec ts;
	ssize_t n;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += RECV_MS / 1000;
	n = mq_timedreceive(r->f.rxq, (char *)buf, sizeof(buf), NULL, &ts);
	ck_assert_msg(n > 0, "no piece: %s", strerror(errno));
	ck_assert_int_eq(proto_decode(buf, (size_t)n, &m), 0);
	ck_assert_int_eq(m.h.type, PROTO_FRAGMENT);
	ck_assert_uint_eq(m.h.timestamp, total);
}

/* The payload of seed in slot of the area at map, len bytes. */
static void expect_slot(const unsigned char *map, unsigned slot, size_t len,
			unsigned seed)
{
	unsigned char *want = payload(len, seed);

	ck_assert_msg(memcmp(map + (size_t)slot * SLOT, want, len) == 0,
		      "slot %u: not the payload of seed %u", slot, seed);
	free(want);
}

/* Publishes n large payloads on w/0.. (seeds 10, 11, ...). */
static void publish_n(mqbus *pub, unsigned n, size_t len)
{
	for (unsigned i = 0; i < n; i++) {
		unsigned char *p = payload(len, 10 + i);
		char topic[32];

		snprintf(topic, sizeof(topic), "w/%u", i);
		ck_assert_int_eq(mqbus_publish(pub, topic, p, len,
					       MQBUS_PRIORITY_DEFAULT),
				 0);
		free(p);
	}
}

/*
 * A receiver that never releases: its two slots fill, its next messages
 * wait in its backlog (of 2) and the one after is dropped by the
 * topic's policy; another receiver, with slots enough, gets every one
 * meanwhile.  Released,
 * the waiting ones come in the freed slots, the loss counted before
 * nothing (no message after it).
 */
START_TEST(test_area_never_released)
{
	enum { LEN = 100000 };
	struct testbus tb = { 0 };
	unsigned char *map;
	mqbus *pub, *other, *mon;
	unsigned s0, s1, s2, s3;
	uint32_t dropped;
	struct raw r;
	int fd;

	testbus_start(&tb, "[topic \"w/#\"]\nbacklog = 2\n");
	setenv("MQBUS_SHM_AREA", "1", 1);
	pub = testbus_connect(&tb, 0, 0);
	setenv("MQBUS_SHM_SLOTS", "8", 1);
	other = testbus_connect(&tb, 0, 0);
	unsetenv("MQBUS_SHM_SLOTS");
	mon = testbus_connect(&tb, 2, 0); /* asks for stats only */
	testbus_subscribe(other, "w/#");
	/* its first large message comes in pieces, the rest in slots */
	publish_n(pub, 1, LEN);
	mqbus_msg_free(testbus_recv(other, RECV_MS));
	testbus_wait_stat(mon, "shm_areas", 2, RECV_MS);
	ck_assert_int_eq(testbus_stat(mon, "shm_area_sent"), 0);
	raw_attached(&r, &tb, 921, "w/#");
	fd = shm_area_create(2 * SLOT, (void **)&map);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(register_area(&r, SHM_REC_AREA_RX, 42, 2, SLOT, fd),
			 0);
	close(fd);

	publish_n(pub, 5, LEN);
	for (unsigned i = 0; i < 5; i++) {
		mqbus_msg *m = testbus_recv(other, RECV_MS);
		char topic[32];
		unsigned char *want = payload(LEN, 10 + i);
		const void *got;
		size_t n = 0;

		snprintf(topic, sizeof(topic), "w/%u", i);
		ck_assert_str_eq(mqbus_msg_topic(m), topic);
		got = mqbus_msg_payload(m, &n);
		ck_assert_uint_eq(n, LEN);
		ck_assert(memcmp(got, want, LEN) == 0);
		free(want);
		mqbus_msg_free(m);
	}
	/* two in the slots, and no more until one is given back */
	s0 = area_head(&r, 42, "w/0", LEN, NULL);
	s1 = area_head(&r, 42, "w/1", LEN, NULL);
	ck_assert_uint_ne(s0, s1);
	expect_slot(map, s0, LEN, 10);
	expect_slot(map, s1, LEN, 11);
	raw_nothing(&r);
	/* the other's five, and two in the slots */
	ck_assert_int_eq(testbus_stat(mon, "shm_area_sent"), 5 + 2);
	ck_assert_int_eq(testbus_stat(mon, "dropped"), 1);
	/* released, the two that waited come in them */
	send_record(&r, SHM_REC_RELEASE, 42, s1, 0, -1);
	s2 = area_head(&r, 42, "w/2", LEN, &dropped);
	ck_assert_uint_eq(s2, s1);
	expect_slot(map, s2, LEN, 12);
	raw_nothing(&r);
	send_record(&r, SHM_REC_RELEASE, 42, s0, 0, -1);
	s3 = area_head(&r, 42, "w/3", LEN, NULL);
	ck_assert_uint_eq(s3, s0);
	expect_slot(map, s3, LEN, 13);
	/* w/4, lost behind them, with nothing after it to say so */
	ck_assert_uint_eq(dropped, 0);
	expect_drops(&r, 1);
	ck_assert_int_eq(testbus_stat(mon, "shm_area_sent"), 5 + 4);
	ck_assert_int_eq(testbus_stat(mon, "shm_area_released"), 5 + 2);
	ck_assert_int_eq(testbus_stat(mon, "shm_area_bad"), 0);
	/* both slots in use again: the next waits; the connection closed,
	 * the area goes and what waited goes in pieces */
	{
		unsigned char *p = payload(LEN, 30);

		ck_assert_int_eq(mqbus_publish(pub, "w/late", p, LEN,
					       MQBUS_PRIORITY_DEFAULT),
				 0);
		free(p);
	}
	mqbus_msg_free(testbus_recv(other, RECV_MS));
	raw_nothing(&r);
	close(r.sock);
	r.sock = -1;
	expect_piece(&r, proto_size(6, LEN));
	/* the publisher's tx area, the other's rx area */
	testbus_wait_stat(mon, "shm_areas", 2, RECV_MS);
	munmap(map, 2 * SLOT);
	raw_free(&r);
	mqbus_free(mon);
	mqbus_free(other);
	mqbus_free(pub);
	testbus_finish(&tb);
}
END_TEST

/*
 * Releases of no slot in use (free, out of range, of another area) and
 * records not understood are refused and counted; after
 * SHM_BAD_RECORDS_MAX of them the connection is dropped, its area with
 * it.
 */
START_TEST(test_area_bad_release)
{
	struct testbus tb = { 0 };
	struct shm_record st;
	struct raw r;
	mqbus *pub, *mon;
	int fd;
	void *map;

	testbus_start(&tb, NULL);
	pub = testbus_connect(&tb, 0, 0);
	mon = testbus_connect(&tb, 2, 0); /* asks for stats only */
	raw_attached(&r, &tb, 931, "b/#");
	fd = shm_area_create(2 * SLOT, &map);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(register_area(&r, SHM_REC_AREA_RX, 3, 2, SLOT, fd),
			 0);
	close(fd);
	send_record(&r, SHM_REC_RELEASE, 3, 0, 0, -1);	/* not in use */
	send_record(&r, SHM_REC_RELEASE, 3, 7, 0, -1);	/* out of range */
	send_record(&r, SHM_REC_RELEASE, 4, 1, 0, -1);	/* another area */
	send_record(&r, 99, 3, 0, 0, -1);		/* no such record */
	testbus_wait_stat(mon, "shm_area_bad", 4, RECV_MS);
	ck_assert_int_eq(testbus_stat(mon, "shm_areas"), 1);
	ck_assert_int_eq(testbus_stat(mon, "shm_area_released"), 0);
	for (unsigned i = 4; i <= SHM_BAD_RECORDS_MAX; i++)
		send_record(&r, SHM_REC_RELEASE, 3, 1, 0, -1);
	/* the connection is closed: the end of the stream */
	ck_assert_int_eq(testbus_read_all(r.sock, &st, sizeof(st), RECV_MS),
			 -EPIPE);
	testbus_wait_stat(mon, "shm_areas", 0, RECV_MS);
	ck_assert_int_eq(testbus_stat(mon, "shm_area_bad"),
			 SHM_BAD_RECORDS_MAX + 1);
	/* and it gets pieces from then on */
	{
		unsigned char *p = payload(BIG, 1);

		ck_assert_int_eq(mqbus_publish(pub, "b/x", p, BIG,
					       MQBUS_PRIORITY_DEFAULT),
				 0);
		free(p);
	}
	expect_piece(&r, proto_size(3, BIG));
	munmap(map, 2 * SLOT);
	raw_free(&r);
	mqbus_free(pub);
	mqbus_free(mon);
	testbus_finish(&tb);
}
END_TEST

/* sub receives n messages of len bytes, i/<k> with seed k each once. */
static void expect_set(mqbus *sub, unsigned n, size_t len)
{
	bool seen[64] = { false };

	ck_assert_uint_le(n, 64);
	for (unsigned i = 0; i < n; i++) {
		mqbus_msg *m = testbus_recv(sub, RECV_MS);
		unsigned k;
		unsigned char *want;
		const void *got;
		size_t got_len = 0;

		ck_assert_int_eq(sscanf(mqbus_msg_topic(m), "i/%u", &k), 1);
		ck_assert_uint_lt(k, n);
		ck_assert_msg(!seen[k], "i/%u twice", k);
		seen[k] = true;
		got = mqbus_msg_payload(m, &got_len);
		ck_assert_uint_eq(got_len, len);
		want = payload(len, 20 + k);
		ck_assert_msg(memcmp(got, want, len) == 0,
			      "i/%u: payload differs", k);
		free(want);
		ck_assert_uint_eq(mqbus_msg_dropped(m), 0);
		mqbus_msg_free(m);
	}
}

/* Publishes n payloads of len on i/<k>, priorities mixed. */
static void publish_mixed(mqbus *pub, unsigned n, size_t len)
{
	for (unsigned k = 0; k < n; k++) {
		unsigned char *p = payload(len, 20 + k);
		char topic[32];

		snprintf(topic, sizeof(topic), "i/%u", k);
		ck_assert_int_eq(mqbus_publish(pub, topic, p, len,
					       (int)((k * 7) % 10)),
				 0);
		free(p);
	}
}

/*
 * 1 MiB payloads through areas: the publisher's tx slot, the receiver's
 * three rx slots, used out of order as the heads are read by priority;
 * every payload whole, none lost.
 */
START_TEST(test_area_integrity)
{
	enum { N = 12, MIB = 1024 * 1024 };
	struct testbus tb = { 0 };
	mqbus *pub, *sub, *mon;

	testbus_start(&tb, "[bus]\nmax_priority = 20\n"
			   "pending_bytes = 33554432\n"
			   "pending_budget_per_uid = 67108864\n");
	setenv("MQBUS_SHM_AREA", "1", 1);
	setenv("MQBUS_SHM_SLOTS", "3", 1);
	pub = testbus_connect(&tb, 0, 0);
	sub = testbus_connect(&tb, 0, 0);
	mon = testbus_connect(&tb, 2, 0); /* asks for stats only */
	testbus_subscribe(sub, "i/#");
	/* the first makes sub register its area */
	publish_mixed(pub, 1, MIB);
	expect_set(sub, 1, MIB);
	testbus_wait_stat(mon, "shm_areas", 2, RECV_MS);
	ck_assert_int_eq(testbus_stat(mon, "shm_area_bytes"), 4 * MIB);
	/* all waiting before sub reads any */
	publish_mixed(pub, N, MIB);
	expect_set(sub, N, MIB);
	testbus_expect_nothing(sub, QUIET_MS);
	ck_assert_int_eq(testbus_stat(mon, "shm_area_received"), N + 1);
	ck_assert_int_eq(testbus_stat(mon, "shm_area_sent"), N);
	ck_assert_int_eq(testbus_stat(mon, "shm_area_released"), N);
	ck_assert_int_eq(testbus_stat(mon, "shm_area_bad"), 0);
	ck_assert_int_eq(testbus_stat(mon, "dropped"), 0);
	mqbus_free(mon);
	mqbus_free(sub);
	mqbus_free(pub);
	testbus_finish(&tb);
}
END_TEST

/*
 * After the daemon is killed and another takes the bus, both clients
 * register their areas again with the next daemon, and large payloads
 * go through them.
 */
START_TEST(test_area_restart)
{
	const char *config = "[bus]\nrestart_grace_ms = 200\n";
	struct testbus tb = { 0 };
	unsigned char *p = payload(BIG, 1);
	mqbus *pub, *sub, *mon;

	testbus_start(&tb, config);
	setenv("MQBUS_SHM_AREA", "1", 1);
	pub = testbus_connect(&tb, 0, 0);
	sub = testbus_connect(&tb, 0, 0);
	testbus_subscribe(sub, "r/#");
	for (unsigned i = 0; i < 2; i++) {
		ck_assert_int_eq(mqbus_publish(pub, "r/x", p, BIG,
					       MQBUS_PRIORITY_DEFAULT),
				 0);
		expect_whole(sub, "r/x", BIG);
	}

	testbus_kill(&tb);
	testbus_restart(&tb, config);
	mon = testbus_connect(&tb, 2, 0); /* asks for stats only */
	testbus_expect_nothing(sub, QUIET_MS);
	testbus_wait_stat(mon, "subscriptions", 1, RECV_MS);
	for (unsigned i = 0; i < 3; i++) {
		ck_assert_int_eq(mqbus_publish(pub, "r/y", p, BIG,
					       MQBUS_PRIORITY_DEFAULT),
				 0);
		expect_whole(sub, "r/y", BIG);
	}
	ck_assert_int_eq(testbus_stat(mon, "shm_areas"), 2);
	ck_assert_int_ge(testbus_stat(mon, "shm_area_received"), 2);
	ck_assert_int_ge(testbus_stat(mon, "shm_area_sent"), 1);
	free(p);
	mqbus_free(mon);
	mqbus_free(sub);
	mqbus_free(pub);
	testbus_finish(&tb);
}
END_TEST

/* The descriptor of the one connection this process has to the
 * daemon's memory-file address, -1 if none. */
static int daemon_conn(void)
{
	int found = -1;

	for (int fd = 3; fd < 1024; fd++) {
		struct sockaddr_un sa;
		socklen_t len = sizeof(sa);

		if (getpeername(fd, (struct sockaddr *)&sa, &len) == 0 &&
		    sa.sun_family == AF_UNIX && sa.sun_path[0] == '\0' &&
		    strncmp(sa.sun_path + 1, "mqbus-shm-", 10) == 0) {
			ck_assert_int_eq(found, -1);
			found = fd;
		}
	}
	return found;
}

/*
 * A publisher whose connection is gone from under its tx area: its next
 * PUBLISH, refused for it by the daemon, goes again in pieces, and
 * arrives; the program sees no error.
 */
START_TEST(test_area_tx_lost)
{
	struct testbus tb = { 0 };
	unsigned char *p = payload(BIG, 1);
	mqbus *pub, *sub, *mon;
	int fd;

	testbus_start(&tb, NULL);
	setenv("MQBUS_SHM_AREA", "1", 1);
	pub = testbus_connect(&tb, 0, 0);
	fd = daemon_conn();
	ck_assert_int_ge(fd, 0);
	sub = testbus_connect(&tb, 0, 0);
	mon = testbus_connect(&tb, 2, 0); /* asks for stats only */
	testbus_subscribe(sub, "t/#");
	ck_assert_int_eq(mqbus_publish(pub, "t/x", p, BIG,
				       MQBUS_PRIORITY_DEFAULT),
			 0);
	expect_whole(sub, "t/x", BIG);
	ck_assert_int_eq(testbus_stat(mon, "shm_area_received"), 1);
	/* the daemon sees the end of it: the tx area goes */
	ck_assert_int_eq(shutdown(fd, SHUT_RDWR), 0);
	testbus_wait_stat(mon, "shm_areas", 1, RECV_MS); /* sub's rx */
	ck_assert_int_eq(mqbus_publish(pub, "t/y", p, BIG,
				       MQBUS_PRIORITY_DEFAULT),
			 0);
	expect_whole(sub, "t/y", BIG);
	ck_assert_int_eq(testbus_stat(mon, "shm_refused"), 1);
	ck_assert_int_eq(testbus_stat(mon, "shm_area_received"), 1);
	free(p);
	mqbus_free(mon);
	mqbus_free(sub);
	mqbus_free(pub);
	testbus_finish(&tb);
}
END_TEST

/*
 * Neither area can make mqbusd allocate a page (charged to it, or a
 * SIGBUS when none can be had).  mqbusd seals each against new writers
 * once it has mapped it, so its pages stay: a client that keeps mqbusd
 * from sealing one (F_SEAL_SEAL) is refused, and one that then punches
 * a hole cannot; it still writes its tx area through its own mapping.
 */
START_TEST(test_area_pages)
{
	enum { LEN = 8192 };
	struct testbus tb = { 0 };
	unsigned char *map;
	const void *got;
	struct raw r;
	mqbus *sub;
	mqbus_msg *m;
	size_t n = 0;
	int fd;

	testbus_start(&tb, NULL);
	sub = testbus_connect(&tb, 0, 0);
	testbus_subscribe(sub, "pg/#");
	fd = area_file(2 * SLOT, true, F_SEAL_SHRINK | F_SEAL_GROW |
						F_SEAL_SEAL);
	ck_assert_int_eq(refused_with(&tb, 941, 2, fd), EPERM);
	close(fd);

	raw_attached(&r, &tb, 942, NULL);
	fd = shm_area_create(2 * SLOT, (void **)&map);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(register_area(&r, SHM_REC_AREA_RX, 1, 2, SLOT, fd),
			 0);
	ck_assert_int_eq(fallocate(fd, FALLOC_FL_PUNCH_HOLE |
					       FALLOC_FL_KEEP_SIZE,
				   0, SLOT),
			 -1);
	ck_assert_int_eq(errno, EPERM);
	ck_assert_int_eq(write(fd, "x", 1), -1);
	munmap(map, 2 * SLOT);
	close(fd);

	fd = shm_area_create(SLOT, (void **)&map);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(register_area(&r, SHM_REC_AREA_TX, 2, 1, SLOT, fd),
			 0);
	ck_assert_int_eq(fallocate(fd, FALLOC_FL_PUNCH_HOLE |
					       FALLOC_FL_KEEP_SIZE,
				   0, LEN),
			 -1);
	ck_assert_int_eq(errno, EPERM);
	ck_assert_int_eq(madvise(map, LEN, MADV_REMOVE), -1);
	memset(map, 0xa5, LEN);
	send_area_head(&r, "pg/x", SHM_AREA_TAG(2, 0), LEN, 51);
	ck_assert_int_eq(answer(&r, 51), 0);
	m = testbus_recv(sub, RECV_MS);
	got = mqbus_msg_payload(m, &n);
	ck_assert_uint_eq(n, LEN);
	ck_assert(memcmp(got, map, LEN) == 0);
	mqbus_msg_free(m);
	munmap(map, SLOT);
	close(fd);
	raw_free(&r);
	mqbus_free(sub);
	testbus_finish(&tb);
}
END_TEST

/*
 * A head of a few bytes makes mqbusd copy a whole slot out of a tx
 * area, so it costs its sender the turns of the daemon's loop that its
 * pieces would have: with the daemon stopped, one client queues ten
 * heads of 128 KiB and another one small message; the small one is
 * routed after the first head, not after all ten (a turn reads up to 32
 * queue messages of a client; a head counts as its 64 pieces).
 */
START_TEST(test_area_turns)
{
	enum { HEADS = 10 };
	struct testbus tb = { 0 };
	unsigned small_at = HEADS + 1;
	unsigned char *map;
	mqbus *other, *sub;
	struct raw r;
	int fd;

	testbus_start(&tb, "[bus]\npending_bytes = 4194304\n");
	sub = testbus_connect(&tb, 0, 0);
	other = testbus_connect(&tb, 0, 0);
	testbus_subscribe(sub, "turn/#");
	raw_attached(&r, &tb, 951, NULL);
	fd = shm_area_create(SLOT, (void **)&map);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(register_area(&r, SHM_REC_AREA_TX, 3, 1, SLOT, fd),
			 0);
	close(fd);
	memset(map, 0x5a, SLOT);

	ck_assert_int_eq(kill(tb.pid, SIGSTOP), 0);
	for (unsigned i = 0; i < HEADS; i++)
		send_area_head(&r, "turn/big", SHM_AREA_TAG(3, 0), SLOT,
			       60 + i);
	testbus_publish_index(other, "turn/small", 0, MQBUS_PRIORITY_DEFAULT);
	ck_assert_int_eq(kill(tb.pid, SIGCONT), 0);
	for (unsigned i = 0; i <= HEADS; i++) {
		mqbus_msg *m = testbus_recv(sub, RECV_MS);

		if (strcmp(mqbus_msg_topic(m), "turn/small") == 0)
			small_at = i;
		mqbus_msg_free(m);
	}
	ck_assert_msg(small_at == 1,
		      "the small message came as #%u, expected #1 (after one "
		      "head of a tx area)",
		      small_at);
	munmap(map, SLOT);
	raw_free(&r);
	mqbus_free(other);
	mqbus_free(sub);
	testbus_finish(&tb);
}
END_TEST

/*
 * mqbusd never makes a memory file of its own (its pages would be its
 * own, kept as long as a receiver holds the descriptor): a payload that
 * came in a tx area goes to an attached receiver without an rx area in
 * pieces, every time; to one with an area, the first in pieces and the
 * next in a slot.
 */
START_TEST(test_area_no_own_file)
{
	struct testbus tb = { 0 };
	unsigned char *p = payload(BIG, 1);
	mqbus *pub, *plain, *sub, *mon;

	testbus_start(&tb, NULL);
	setenv("MQBUS_SHM_AREA", "1", 1);
	pub = testbus_connect(&tb, 0, 0);
	sub = testbus_connect(&tb, 0, 0);
	setenv("MQBUS_SHM_AREA", "0", 1);
	plain = testbus_connect(&tb, 0, 0);
	unsetenv("MQBUS_SHM_AREA");
	mon = testbus_connect(&tb, 2, 0); /* asks for stats only */
	testbus_subscribe(sub, "n/#");
	testbus_subscribe(plain, "n/#");
	for (unsigned i = 0; i < 2; i++) {
		ck_assert_int_eq(mqbus_publish(pub, "n/x", p, BIG,
					       MQBUS_PRIORITY_DEFAULT),
				 0);
		expect_whole(sub, "n/x", BIG);
		expect_whole(plain, "n/x", BIG);
		/* sub registers its rx area after its first one */
		if (i == 0)
			testbus_wait_stat(mon, "shm_areas", 2, RECV_MS);
	}
	ck_assert_int_eq(testbus_stat(mon, "shm_area_received"), 2);
	ck_assert_int_eq(testbus_stat(mon, "shm_sent"), 0);
	ck_assert_int_eq(testbus_stat(mon, "large_sent"), 1 + 2);
	ck_assert_int_eq(testbus_stat(mon, "shm_area_sent"), 1);
	free(p);
	mqbus_free(mon);
	mqbus_free(plain);
	mqbus_free(sub);
	mqbus_free(pub);
	testbus_finish(&tb);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("shm");

	/* the cases of memory files: a new file for each message; those
	 * of areas turn them on */
	setenv("MQBUS_SHM_AREA", "0", 1);
	testbus_init();
	testbus_add_case(s, "attach", test_attach, 1);
	testbus_add_case(s, "bad_files", test_bad_files, 1);
	testbus_add_case(s, "not_attached", test_not_attached, 1);
	testbus_add_case(s, "mixed_receivers", test_mixed_receivers, 1);
	testbus_add_case(s, "receiver_gone", test_receiver_gone, 1);
	testbus_add_case(s, "restart", test_restart, 1);
	testbus_add_case(s, "area_refused", test_area_refused, 1);
	testbus_add_case(s, "area_never_released", test_area_never_released,
			 1);
	testbus_add_case(s, "area_bad_release", test_area_bad_release, 1);
	testbus_add_case(s, "area_integrity", test_area_integrity, 1);
	testbus_add_case(s, "area_restart", test_area_restart, 1);
	testbus_add_case(s, "area_tx_lost", test_area_tx_lost, 1);
	testbus_add_case(s, "area_no_own_file", test_area_no_own_file, 1);
	testbus_add_case(s, "area_pages", test_area_pages, 1);
	testbus_add_case(s, "area_turns", test_area_turns, 1);
	return testbus_run(s, "check_shm");
}
