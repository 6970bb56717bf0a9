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
 * after a crash, clients attach again to the next daemon.
 * Clients made by hand are testbus_forge()'s; tests/shm.sh runs it.
 */
#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
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

int main(void)
{
	Suite *s = suite_create("shm");

	testbus_init();
	testbus_add_case(s, "attach", test_attach, 1);
	testbus_add_case(s, "bad_files", test_bad_files, 1);
	testbus_add_case(s, "not_attached", test_not_attached, 1);
	testbus_add_case(s, "mixed_receivers", test_mixed_receivers, 1);
	testbus_add_case(s, "receiver_gone", test_receiver_gone, 1);
	testbus_add_case(s, "restart", test_restart, 1);
	return testbus_run(s, "check_shm");
}
