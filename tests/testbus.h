/* SPDX-License-Identifier: MIT */
/*
 * testbus.h - helpers for the integration suites that run the real mqbusd.
 *
 * A test makes its own bus (a unique name), starts the daemon on it with
 * the wake-up back-end named by $MQBUS_TEST_WAKE and waits for its READY=1
 * on a notification socket the test owns, connects clients, and at the end
 * stops the daemon and checks that no queue of the bus is left.
 *
 * Cleanup does not depend on the test getting that far.  Every bus name,
 * process and temporary file a test makes is recorded in a page shared with
 * the check runner, and testbus_cleanup(), run by the runner as the unchecked
 * teardown of each test case, kills what is left of those processes (by pid)
 * and unlinks every queue of those buses, also after a failed assertion.
 *
 * The functions that fail the test (ck_assert) may only be called from the
 * test process itself.  A helper process that a test forks with
 * testbus_fork() reports to its parent through a pipe or its exit status and
 * uses only the testbus_try_*() and listing helpers.
 */
#ifndef MQBUS_TESTBUS_H
#define MQBUS_TESTBUS_H

#include <stdbool.h>
#include <stddef.h>
#include <mqueue.h>
#include <stdint.h>
#include <sys/types.h>

#include <check.h>

#include "client/mqbus.h"

#define TESTBUS_NAME_MAX 32

struct testbus {
	char bus[TESTBUS_NAME_MAX];
	pid_t pid;        /* the daemon, 0 when not running */
	int notify_fd;    /* our end of NOTIFY_SOCKET, -1 once closed */
	char notify_path[108];
	bool keep_notify; /* set before start: keep reading NOTIFY_SOCKET */
	bool stopping;    /* STOPPING=1 seen (with keep_notify) */
	char config_path[64];
};

/*
 * Once, in main() before the runner starts: maps the shared record, makes
 * the runner the reaper of orphaned helpers and clears MQBUS_* variables
 * of the caller's environment that would change the library's defaults.
 */
void testbus_init(void);

/* Unchecked setup and teardown of every test case (see above). */
void testbus_reset(void);
void testbus_cleanup(void);

/* Milliseconds of CLOCK_MONOTONIC. */
uint64_t testbus_now_ms(void);

/* Nanoseconds of CLOCK_REALTIME, the clock of message timestamps. */
uint64_t testbus_realtime_ns(void);

/* pipe2(O_CLOEXEC), failing the test otherwise; and closing both ends. */
void testbus_pipe(int fds[2]);
void testbus_close_pipe(int fds[2]);

/*
 * Adds to s a case that runs test once for each _i in [0, n), with
 * testbus_reset() and testbus_cleanup() around it and a 60 s timeout.
 */
void testbus_add_case(Suite *s, const char *name, const TTest *test, int n);

/*
 * Runs s, each test in a forked process (what the cleanup relies on;
 * CK_FORK=no still wins, for gdb), after printing "NAME: wake back-end W".
 * Returns the exit status for main().
 */
int testbus_run(Suite *s, const char *name);

/* A bus name no other test uses ("t<pid>x<n>"), recorded for cleanup. */
void testbus_name(char *buf, size_t size);

/* Records another bus name whose queues the test makes, for cleanup. */
void testbus_record_bus(const char *bus);

/*
 * Forks and execs the daemon on bus with config (the text of a config file,
 * or NULL for none) and waits up to 5 s for READY=1.  stderr_fd, if not -1,
 * becomes the daemon's stderr.  Returns 0 when it is ready; -ECHILD when it
 * exited first (its exit status in *ret_status, as testbus_stop() gives
 * it); -ETIMEDOUT; or another -errno.  Does not fail the test.
 */
int testbus_spawn(struct testbus *tb, const char *bus, const char *config,
		  int stderr_fd, int *ret_status);

/* A new bus, its daemon started and ready; fails the test otherwise. */
void testbus_start(struct testbus *tb, const char *config);
/* Starts a daemon of tb's bus again, after testbus_kill() or _stop(). */
void testbus_restart(struct testbus *tb, const char *config);

/*
 * SIGTERM, then waits up to 5 s.  Returns the exit status, or 128 + the
 * signal that ended it; fails the test if it does not exit.
 */
int testbus_stop(struct testbus *tb);

/* SIGKILL and reap.  Accepts a daemon that is not running. */
void testbus_kill(struct testbus *tb);

/*
 * testbus_stop() expecting exit status 0, then checks that no queue of the
 * bus remains.  The end of every test that stops its daemon normally.
 */
void testbus_finish(struct testbus *tb);

/*
 * Forks a helper process, recorded so that it is killed if the test ends
 * first.  Returns as fork() does.
 */
pid_t testbus_fork(void);

/*
 * Waits up to timeout_ms for child pid to end.  Returns its exit status (or
 * 128 + signal), or -ETIMEDOUT while it still runs.
 */
int testbus_wait(pid_t pid, int timeout_ms);

/*
 * Counts the queues of bus: those of process pid ("/BUS.<pid>.*"), or with
 * pid 0 all client queues ("/BUS.*").  When names is not NULL it receives
 * them, space separated.  Reads /dev/mqueue where an mqueue file system is
 * mounted; otherwise probes the names the library makes for pid (and for
 * pid 0, for this process and every recorded helper).
 */
int testbus_queues(const char *bus, pid_t pid, char *names, size_t size);

/* Like testbus_queues(), only the names ending in suffix (".tx"). */
int testbus_queues_suffix(const char *bus, pid_t pid, const char *suffix,
			  char *names, size_t size);

/*
 * Clients made by hand, for untrusted-input tests: a queue created with
 * mode, maxmsg x msgsize (failing the test if it cannot be); a pair of
 * queues named as the library names them (n instead of its counter), a
 * HELLO in tx; an ANNOUNCE of it with flags (PROTO_F_*) into the bus's
 * announce queue; a message into a queue within 5 s (failing the test
 * otherwise).
 */
struct testbus_forged {
	char tx[96], rx[96];
	mqd_t txq, rxq;
};
mqd_t testbus_create_queue(const char *name, mode_t mode, long maxmsg,
			   long msgsize);
void testbus_forge(struct testbus_forged *f, const char *bus, unsigned n,
		   mode_t mode);
void testbus_forged_free(struct testbus_forged *f);
void testbus_send_announce(mqd_t busq, const char *txname, unsigned flags);
void testbus_send_raw(mqd_t q, const void *buf, size_t len);

/* What a WELCOME said. */
struct testbus_welcome {
	uint32_t client_id;
	uint16_t flags;
	char topic[256];    /* the address for memory files, or "" */
	uint64_t timestamp; /* the nonce to say there */
	uint32_t daemon_pid;
};

/* Whether a WELCOME arrives in f's rx within timeout_ms; what it said in
 * *ret if ret is not NULL. */
bool testbus_welcome(struct testbus_forged *f, int timeout_ms,
		     struct testbus_welcome *ret);

/* Whether the announce queue "/BUS" exists. */
bool testbus_announce_exists(const char *bus);

/* Number of queues of this IPC namespace, -ENOENT without /dev/mqueue. */
int testbus_count_all_queues(void);

/* Unlinks "/BUS" and every client queue of bus.  Never fails. */
void testbus_unlink_all(const char *bus);

/*
 * Connects a client to bus with queues of maxmsg x msgsize (0: the
 * library's default).  Returns 0 or the -errno of the failing call; err
 * (if not NULL) receives mqbus_last_error().  Does not fail the test.
 */
int testbus_try_connect(const char *bus, long maxmsg, long msgsize,
			mqbus **ret, char *err, size_t errsize);

/* testbus_try_connect() to tb's bus, failing the test with the reason. */
mqbus *testbus_connect(const struct testbus *tb, long maxmsg, long msgsize);

/* Subscribes, failing the test with mqbus_last_error() on error. */
void testbus_subscribe(mqbus *b, const char *pattern);

/* Publishes a 4-byte index, failing the test on error. */
void testbus_publish_index(mqbus *b, const char *topic, uint32_t index,
			   int priority);

/* Receives a message within timeout_ms, failing the test otherwise. */
mqbus_msg *testbus_recv(mqbus *b, int timeout_ms);

/* The 4-byte index of a message from testbus_publish_index(). */
uint32_t testbus_msg_index(const mqbus_msg *m);

/*
 * Receives a message and checks that it has topic and index, then frees
 * it.  Returns its priority.
 */
unsigned testbus_expect_index(mqbus *b, const char *topic, uint32_t index,
			      int timeout_ms);

/* Checks that no message arrives within timeout_ms. */
void testbus_expect_nothing(mqbus *b, int timeout_ms);

/* The value of key in the daemon's stats; fails the test without it. */
long long testbus_stat(mqbus *b, const char *key);

/*
 * Polls the daemon's stats until key has value, for up to timeout_ms;
 * fails the test with the last value otherwise.
 */
void testbus_wait_stat(mqbus *b, const char *key, long long value,
		       int timeout_ms);

/* Writes all of len bytes to fd / reads exactly len bytes within
 * timeout_ms.  Return 0 or -errno (-ETIMEDOUT, -EPIPE at end of file). */
int testbus_write_all(int fd, const void *buf, size_t len);
int testbus_read_all(int fd, void *buf, size_t len, int timeout_ms);

/*
 * Lowers CAP_SYS_RESOURCE from the effective set, so that the kernel
 * enforces msg_max, msgsize_max and queues_max for this process as for
 * an ordinary user.  Returns 0 or -errno.
 */
int testbus_drop_sys_resource(void);

/*
 * Reads / writes /proc/sys/fs/mqueue/NAME.  testbus_set_mqueue_sysctl()
 * records the first old value so that testbus_cleanup() restores it if
 * the test does not.  Return the value or 0, or -errno.
 */
long testbus_get_mqueue_sysctl(const char *name);
int testbus_set_mqueue_sysctl(const char *name, long value);

/*
 * The dedicated unprivileged test user: $MQBUS_TEST_USER, default
 * "mqbus-test", created with useradd (the same command tests/lib.sh's
 * mqb_test_user runs) when it is missing and we are root; left in place.
 * Each uid has its own RLIMIT_MSGQUEUE, so queues charged to this user do
 * not depend on what other programs of root hold, and a client running as
 * it shows that the daemon stamps the sender's uid, not its own.
 * Returns 0 with its uid and gid; -EPERM when we are not root, -ENOENT
 * when the user is missing and useradd is not installed, or another
 * -errno; why (if not NULL) receives a sentence.  Does not fail the test.
 */
int testbus_test_user(uid_t *ret_uid, gid_t *ret_gid, char *why,
		      size_t whysize);

/*
 * Whether tests must have the test user: CI=true in the environment.
 * testbus_need_test_user() returns the user if there is one; without one
 * it fails the test under CI, and otherwise prints a note saying what
 * the test proves less and returns -errno.
 */
bool testbus_in_ci(void);
int testbus_need_test_user(const char *what, uid_t *ret_uid, gid_t *ret_gid);

/*
 * For a forked helper that is to run as uid:gid for good: drops the
 * supplementary groups, then the gid and every uid.  Returns 0 or -errno.
 */
int testbus_become(uid_t uid, gid_t gid);

/*
 * For the test process itself: makes the real and effective uid uid (the
 * saved uid stays root), so that the queues it creates from now on are
 * charged to uid's RLIMIT_MSGQUEUE.  testbus_restore_root() undoes it
 * (testbus_stop() and testbus_kill() call it, a daemon of root cannot be
 * signalled otherwise).  Return 0 or -errno.
 */
int testbus_charge_to(uid_t uid);
int testbus_restore_root(void);

/*
 * Bytes the kernel charges to RLIMIT_MSGQUEUE for one queue of maxmsg x
 * msgsize (the messages plus the kernel's per-message bookkeeping), and
 * for a client of libmqbus with such queues (tx and rx).
 */
long testbus_queue_bytes(long maxmsg, long msgsize);
long testbus_client_bytes(long maxmsg, long msgsize);

/*
 * The part of RLIMIT_MSGQUEUE still free for this process's real uid,
 * measured by creating queues until the kernel says EMFILE (all of them
 * removed again), to within 1 KiB.  -errno if that failed otherwise.
 */
long testbus_mq_free_bytes(void);

/*
 * Fails the test, with the figures, when less than need bytes of
 * RLIMIT_MSGQUEUE are free for this process's uid; what names what the
 * bytes are for.
 */
void testbus_need_mq_bytes(long need, const char *what);

#endif
