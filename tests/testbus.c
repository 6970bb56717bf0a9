/* SPDX-License-Identifier: MIT */
/*
 * testbus.c - running the real mqbusd for the integration suites.
 *
 * See testbus.h.  The record of what a test made lives in an anonymous
 * shared mapping made before the check runner forks the tests, so that the
 * runner's unchecked teardown can undo it after the test process has exited,
 * whether it passed or died in a failed assertion.  The runner is also made
 * the reaper of orphaned processes, so a daemon or helper whose test
 * process is gone becomes its child and can be reaped by pid without any
 * risk of hitting a recycled pid.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <mqueue.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "proto/proto.h"
#include "tests/testbus.h"

#define MQUEUE_DIR "/dev/mqueue"
#define MQUEUE_FS_MAGIC 0x19800202
#define MQUEUE_SYSCTL "/proc/sys/fs/mqueue/"
#define READY_TIMEOUT_MS 5000
#define STOP_TIMEOUT_MS 5000
/* a daemon under valgrind starts and stops this many times slower */
#define SLOW(ms) (getenv("MQBUS_TEST_VALGRIND") ? 4 * (ms) : (ms))
/* Queue numbers probed per process when /dev/mqueue is not mounted. */
#define PROBE_MAX 256

#define REC_PIDS 64
#define REC_BUSES 16
#define REC_FILES 16

/* What the running test made; shared with the runner (see above). */
struct record {
	pid_t pids[REC_PIDS];   /* processes to end; 0 is a free slot */
	pid_t owners[REC_PIDS]; /* processes that may own client queues */
	char buses[REC_BUSES][TESTBUS_NAME_MAX];
	char files[REC_FILES][108];
	char sysctl_name[32];
	long sysctl_value;
	bool sysctl_saved;
};

static struct record *rec;
static unsigned name_counter;

static void rec_add_pid(pid_t *slots, pid_t pid)
{
	int i;

	if (!rec)
		return;
	for (i = 0; i < REC_PIDS; i++) {
		if (slots[i] == pid)
			return;
		if (slots[i] == 0) {
			slots[i] = pid;
			return;
		}
	}
}

static void rec_forget_pid(pid_t pid)
{
	int i;

	if (!rec)
		return;
	for (i = 0; i < REC_PIDS; i++)
		if (rec->pids[i] == pid)
			rec->pids[i] = 0;
}

static void rec_add_bus(const char *bus)
{
	int i;

	if (!rec)
		return;
	for (i = 0; i < REC_BUSES; i++) {
		if (strcmp(rec->buses[i], bus) == 0)
			return;
		if (rec->buses[i][0] == '\0') {
			snprintf(rec->buses[i], sizeof(rec->buses[i]), "%s",
				 bus);
			return;
		}
	}
}

static void rec_add_file(const char *path)
{
	int i;

	if (!rec)
		return;
	for (i = 0; i < REC_FILES; i++) {
		if (rec->files[i][0] == '\0') {
			snprintf(rec->files[i], sizeof(rec->files[i]), "%s",
				 path);
			return;
		}
	}
}

void testbus_init(void)
{
	void *p;

	p = mmap(NULL, sizeof(*rec), PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p != MAP_FAILED)
		rec = p;
	/* Best effort: without it orphans go to init, and check's killpg()
	 * of the test's process group still ends them. */
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	unsetenv("MQBUS_BUS");
	unsetenv("MQBUS_QUEUE_MAXMSG");
	unsetenv("MQBUS_QUEUE_MSGSIZE");
	unsetenv("NOTIFY_SOCKET");
}

void testbus_reset(void)
{
	if (rec)
		memset(rec, 0, sizeof(*rec));
}

void testbus_cleanup(void)
{
	int i, status;

	if (!rec)
		return;
	for (i = 0; i < REC_PIDS; i++) {
		pid_t pid = rec->pids[i];

		/* Only our own children (orphans come to us, see above):
		 * a pid that is not is not ours to signal. */
		if (pid > 0 && waitpid(pid, &status, WNOHANG) == 0) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
		}
	}
	while (waitpid(-1, &status, WNOHANG) > 0)
		;
	if (rec->sysctl_saved)
		testbus_set_mqueue_sysctl(rec->sysctl_name, rec->sysctl_value);
	for (i = 0; i < REC_BUSES; i++)
		if (rec->buses[i][0] != '\0')
			testbus_unlink_all(rec->buses[i]);
	for (i = 0; i < REC_FILES; i++)
		if (rec->files[i][0] != '\0')
			unlink(rec->files[i]);
	testbus_reset();
}

uint64_t testbus_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t testbus_realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void testbus_pipe(int fds[2])
{
	ck_assert_msg(pipe2(fds, O_CLOEXEC) == 0, "pipe: %s",
		      strerror(errno));
}

void testbus_close_pipe(int fds[2])
{
	close(fds[0]);
	close(fds[1]);
}

void testbus_add_case(Suite *s, const char *name, const TTest *test, int n)
{
	TCase *tc = tcase_create(name);

	tcase_add_unchecked_fixture(tc, testbus_reset, testbus_cleanup);
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, test, 0, n);
	suite_add_tcase(s, tc);
}

static const char *wake_backend(void);

int testbus_run(Suite *s, const char *name)
{
	SRunner *sr;
	int failed;

	printf("%s: wake back-end %s\n", name, wake_backend());
	/* Not to be flushed again by every forked test. */
	fflush(stdout);
	sr = srunner_create(s);
	if (!getenv("CK_FORK"))
		srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

static int remaining_ms(uint64_t deadline)
{
	uint64_t now = testbus_now_ms();

	return now >= deadline ? 0 : (int)(deadline - now);
}

void testbus_name(char *buf, size_t size)
{
	snprintf(buf, size, "t%dx%u", (int)getpid(), name_counter++);
	if (rec) {
		rec_add_bus(buf);
		rec_add_pid(rec->owners, getpid());
	}
}

void testbus_record_bus(const char *bus)
{
	rec_add_bus(bus);
	if (rec)
		rec_add_pid(rec->owners, getpid());
}

static int exit_code(int status)
{
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return 255;
}

int testbus_wait(pid_t pid, int timeout_ms)
{
	uint64_t deadline = testbus_now_ms() + (uint64_t)timeout_ms;
	int pidfd, status;
	pid_t r;

	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	for (;;) {
		r = waitpid(pid, &status, WNOHANG);
		if (r == pid) {
			rec_forget_pid(pid);
			if (pidfd >= 0)
				close(pidfd);
			return exit_code(status);
		}
		if (r < 0 && errno != EINTR) {
			if (pidfd >= 0)
				close(pidfd);
			return -errno;
		}
		if (remaining_ms(deadline) == 0)
			break;
		if (pidfd >= 0) {
			struct pollfd pfd = { .fd = pidfd, .events = POLLIN };

			poll(&pfd, 1, remaining_ms(deadline));
		} else {
			/* No pidfd: a short nap between polls of the
			 * deadline. */
			poll(NULL, 0, 5);
		}
	}
	if (pidfd >= 0)
		close(pidfd);
	return -ETIMEDOUT;
}

pid_t testbus_fork(void)
{
	pid_t pid;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid > 0 && rec) {
		rec_add_pid(rec->pids, pid);
		rec_add_pid(rec->owners, pid);
	}
	return pid;
}

static const char *daemon_path(char *buf, size_t size)
{
	const char *p = getenv("MQBUS_TEST_DAEMON");
	const char *top = getenv("top_builddir");

	if (p && *p)
		return p;
	snprintf(buf, size, "%s/daemon/mqbusd", top && *top ? top : ".");
	return buf;
}

static const char *wake_backend(void)
{
	const char *w = getenv("MQBUS_TEST_WAKE");

	return w && *w ? w : "notify";
}

/* Handles the lines of one sd_notify datagram; true on READY=1. */
static bool parse_notify(struct testbus *tb, char *msg)
{
	bool ready = false;
	char *line, *save = NULL;

	for (line = strtok_r(msg, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		if (strcmp(line, "READY=1") == 0)
			ready = true;
		else if (strcmp(line, "STOPPING=1") == 0)
			tb->stopping = true;
	}
	return ready;
}

/* Reads the datagrams waiting on the notify socket; true on READY=1. */
static bool drain_notify(struct testbus *tb)
{
	char buf[4096];
	bool ready = false;
	ssize_t n;

	if (tb->notify_fd < 0)
		return false;
	while ((n = recv(tb->notify_fd, buf, sizeof(buf) - 1,
			 MSG_DONTWAIT)) >= 0) {
		buf[n] = '\0';
		if (parse_notify(tb, buf))
			ready = true;
	}
	return ready;
}

static void close_notify(struct testbus *tb)
{
	if (tb->notify_fd >= 0) {
		close(tb->notify_fd);
		tb->notify_fd = -1;
	}
	if (tb->notify_path[0] != '\0') {
		unlink(tb->notify_path);
		tb->notify_path[0] = '\0';
	}
}

static int open_notify(struct testbus *tb)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	static unsigned n;

	snprintf(tb->notify_path, sizeof(tb->notify_path),
		 "/tmp/mqbus-test-%d-%u.sock", (int)getpid(), n++);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", tb->notify_path);
	unlink(tb->notify_path);
	tb->notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (tb->notify_fd < 0)
		return -errno;
	if (bind(tb->notify_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int r = -errno;

		close_notify(tb);
		return r;
	}
	rec_add_file(tb->notify_path);
	return 0;
}

static int write_config(struct testbus *tb, const char *text)
{
	int fd, r;

	snprintf(tb->config_path, sizeof(tb->config_path),
		 "/tmp/mqbus-test-%d-XXXXXX", (int)getpid());
	fd = mkstemp(tb->config_path);
	if (fd < 0)
		return -errno;
	rec_add_file(tb->config_path);
	r = testbus_write_all(fd, text, strlen(text));
	close(fd);
	return r;
}

static void remove_config(struct testbus *tb)
{
	if (tb->config_path[0] != '\0') {
		unlink(tb->config_path);
		tb->config_path[0] = '\0';
	}
}

/*
 * MQBUS_TEST_VALGRIND=DIR runs the daemon under valgrind's memcheck, its
 * report in DIR/mqbusd.PID.log; an error makes the daemon exit 99, which
 * fails the test that stops it (tests/README).
 */
#ifndef MQBUS_VALGRIND_SUPP
#define MQBUS_VALGRIND_SUPP "tests/valgrind.supp"
#endif

static int valgrind_argv(const char **argv, char *log, size_t size)
{
	const char *dir = getenv("MQBUS_TEST_VALGRIND");
	int argc = 0;

	if (!dir || !*dir)
		return 0;
	snprintf(log, size, "--log-file=%s/mqbusd.%%p.log", dir);
	argv[argc++] = "/usr/bin/valgrind";
	argv[argc++] = "--suppressions=" MQBUS_VALGRIND_SUPP;
	argv[argc++] = "--quiet";
	argv[argc++] = "--error-exitcode=99";
	argv[argc++] = "--leak-check=full";
	argv[argc++] = "--errors-for-leak-kinds=definite";
	argv[argc++] = log;
	return argc;
}

static void exec_daemon(const struct testbus *tb, int stderr_fd)
{
	char path_buf[4096], wake[64], log[4200];
	const char *argv[16];
	int argc;

	if (stderr_fd >= 0 && dup2(stderr_fd, STDERR_FILENO) < 0)
		_exit(126);
	snprintf(wake, sizeof(wake), "--wake=%s", wake_backend());
	argc = valgrind_argv(argv, log, sizeof(log));
	argv[argc++] = daemon_path(path_buf, sizeof(path_buf));
	argv[argc++] = "-b";
	argv[argc++] = tb->bus;
	argv[argc++] = wake;
	if (tb->config_path[0] != '\0') {
		argv[argc++] = "-c";
		argv[argc++] = tb->config_path;
	}
	argv[argc] = NULL;
	setenv("NOTIFY_SOCKET", tb->notify_path, 1);
	execv(argv[0], (char *const *)argv);
	fprintf(stderr, "testbus: cannot run %s: %s\n", argv[0],
		strerror(errno));
	_exit(127);
}

int testbus_spawn(struct testbus *tb, const char *bus, const char *config,
		  int stderr_fd, int *ret_status)
{
	bool keep = tb->keep_notify;
	uint64_t deadline;
	bool ready = false;
	int r, status;

	memset(tb, 0, sizeof(*tb));
	tb->keep_notify = keep;
	tb->notify_fd = -1;
	snprintf(tb->bus, sizeof(tb->bus), "%s", bus);

	if (config) {
		r = write_config(tb, config);
		if (r < 0)
			goto fail;
	}
	r = open_notify(tb);
	if (r < 0)
		goto fail;

	fflush(stdout);
	fflush(stderr);
	tb->pid = fork();
	if (tb->pid < 0) {
		r = -errno;
		tb->pid = 0;
		goto fail;
	}
	if (tb->pid == 0)
		exec_daemon(tb, stderr_fd);
	if (rec)
		rec_add_pid(rec->pids, tb->pid);

	deadline = testbus_now_ms() + SLOW(READY_TIMEOUT_MS);
	while (!ready) {
		struct pollfd pfd = { .fd = tb->notify_fd, .events = POLLIN };

		if (waitpid(tb->pid, &status, WNOHANG) == tb->pid) {
			rec_forget_pid(tb->pid);
			tb->pid = 0;
			if (ret_status)
				*ret_status = exit_code(status);
			r = -ECHILD;
			goto fail;
		}
		if (remaining_ms(deadline) == 0) {
			testbus_kill(tb);
			r = -ETIMEDOUT;
			goto fail;
		}
		/* Short slices: the daemon's exit is noticed by waitpid. */
		if (poll(&pfd, 1, 20) > 0)
			ready = drain_notify(tb);
	}
	if (!tb->keep_notify)
		close_notify(tb);
	return 0;

fail:
	close_notify(tb);
	remove_config(tb);
	return r;
}

void testbus_start(struct testbus *tb, const char *config)
{
	char bus[TESTBUS_NAME_MAX], path_buf[4096];
	int r, status = -1;

	testbus_name(bus, sizeof(bus));
	r = testbus_spawn(tb, bus, config, -1, &status);
	ck_assert_msg(r == 0,
		      "daemon %s --wake=%s on bus %s not ready within %d ms: "
		      "%s (exit status %d)",
		      daemon_path(path_buf, sizeof(path_buf)), wake_backend(),
		      bus, READY_TIMEOUT_MS, strerror(-r), status);
	ck_assert_msg(testbus_announce_exists(bus),
		      "daemon said READY=1 but /%s does not exist", bus);
}

void testbus_restart(struct testbus *tb, const char *config)
{
	char bus[TESTBUS_NAME_MAX];
	int status = 0, r;

	snprintf(bus, sizeof(bus), "%s", tb->bus);
	r = testbus_spawn(tb, bus, config, -1, &status);
	ck_assert_msg(r == 0, "restarting the daemon of %s: %s (status %d)",
		      bus, strerror(-r), status);
}

int testbus_stop(struct testbus *tb)
{
	int status;

	testbus_restore_root();
	ck_assert_msg(tb->pid > 0, "daemon of bus %s is not running",
		      tb->bus);
	/* sd_notify() blocks on a full socket: keep ours readable. */
	drain_notify(tb);
	kill(tb->pid, SIGTERM);
	status = testbus_wait(tb->pid, SLOW(STOP_TIMEOUT_MS));
	if (status == -ETIMEDOUT) {
		testbus_kill(tb);
		ck_abort_msg("daemon of bus %s did not exit within %d ms of "
			     "SIGTERM",
			     tb->bus, STOP_TIMEOUT_MS);
	}
	tb->pid = 0;
	drain_notify(tb);
	close_notify(tb);
	remove_config(tb);
	return status;
}

void testbus_kill(struct testbus *tb)
{
	int status;

	testbus_restore_root();
	if (tb->pid > 0) {
		kill(tb->pid, SIGKILL);
		while (waitpid(tb->pid, &status, 0) < 0 && errno == EINTR)
			;
		rec_forget_pid(tb->pid);
		tb->pid = 0;
	}
	close_notify(tb);
	remove_config(tb);
}

void testbus_finish(struct testbus *tb)
{
	char names[1024];
	int status, n;

	status = testbus_stop(tb);
	ck_assert_msg(status == 0,
		      "daemon (--wake=%s) exit status %d after SIGTERM, "
		      "expected 0",
		      wake_backend(), status);
	ck_assert_msg(!testbus_announce_exists(tb->bus),
		      "/%s still exists after the daemon exited", tb->bus);
	n = testbus_queues(tb->bus, 0, names, sizeof(names));
	ck_assert_msg(n == 0, "queues of bus %s left behind: %s", tb->bus,
		      names);
}

static bool mqueue_mounted(void)
{
	struct statfs sfs;

	return statfs(MQUEUE_DIR, &sfs) == 0 &&
	       (unsigned long)sfs.f_type == MQUEUE_FS_MAGIC;
}

static bool queue_exists(const char *name)
{
	mqd_t q = mq_open(name, O_RDONLY | O_CLOEXEC);

	if (q != (mqd_t)-1) {
		mq_close(q);
		return true;
	}
	return errno != ENOENT;
}

typedef void (*queue_fn)(const char *name, void *arg);

static bool ends_with(const char *s, const char *suffix)
{
	size_t ls = strlen(s), lx = strlen(suffix);

	return ls >= lx && strcmp(s + ls - lx, suffix) == 0;
}

/*
 * Calls fn with the name (without '/') of each client queue of bus owned by
 * pid (0: any) whose name ends in suffix (NULL: any).  Returns the count.
 */
static int scan_queues(const char *bus, pid_t pid, const char *suffix,
		       queue_fn fn, void *arg)
{
	static const char *const kinds[] = { "tx", "rx" };
	char prefix[TESTBUS_NAME_MAX + 16], name[TESTBUS_NAME_MAX + 64];
	int count = 0, i, k;

	if (pid > 0)
		snprintf(prefix, sizeof(prefix), "%s.%d.", bus, (int)pid);
	else
		snprintf(prefix, sizeof(prefix), "%s.", bus);

	if (mqueue_mounted()) {
		DIR *d = opendir(MQUEUE_DIR);
		struct dirent *e;

		if (!d)
			return -errno;
		while ((e = readdir(d))) {
			if (strncmp(e->d_name, prefix, strlen(prefix)) != 0)
				continue;
			if (suffix && !ends_with(e->d_name, suffix))
				continue;
			count++;
			if (fn)
				fn(e->d_name, arg);
		}
		closedir(d);
		return count;
	}

	/* No listing: probe the names the library makes. */
	if (pid == 0) {
		count = scan_queues(bus, getpid(), suffix, fn, arg);
		for (i = 0; rec && i < REC_PIDS; i++)
			if (rec->owners[i] > 0 && rec->owners[i] != getpid())
				count += scan_queues(bus, rec->owners[i],
						     suffix, fn, arg);
		return count;
	}
	for (i = 0; i < PROBE_MAX; i++) {
		for (k = 0; k < 2; k++) {
			snprintf(name, sizeof(name), "/%s%d.%s", prefix, i,
				 kinds[k]);
			if (suffix && !ends_with(name, suffix))
				continue;
			if (!queue_exists(name))
				continue;
			count++;
			if (fn)
				fn(name + 1, arg);
		}
	}
	return count;
}

struct name_list {
	char *buf;
	size_t size, len;
};

static void append_name(const char *name, void *arg)
{
	struct name_list *l = arg;
	int n;

	if (!l->buf || l->len >= l->size)
		return;
	n = snprintf(l->buf + l->len, l->size - l->len, "%s%s",
		     l->len ? " " : "", name);
	if (n > 0)
		l->len += (size_t)n;
}

int testbus_queues_suffix(const char *bus, pid_t pid, const char *suffix,
			  char *names, size_t size)
{
	struct name_list l = { .buf = names, .size = size };

	if (names && size)
		names[0] = '\0';
	return scan_queues(bus, pid, suffix, append_name, &l);
}

int testbus_queues(const char *bus, pid_t pid, char *names, size_t size)
{
	return testbus_queues_suffix(bus, pid, NULL, names, size);
}

bool testbus_announce_exists(const char *bus)
{
	char name[TESTBUS_NAME_MAX + 2];

	snprintf(name, sizeof(name), "/%s", bus);
	return queue_exists(name);
}

int testbus_count_all_queues(void)
{
	struct dirent *e;
	int count = 0;
	DIR *d;

	if (!mqueue_mounted())
		return -ENOENT;
	d = opendir(MQUEUE_DIR);
	if (!d)
		return -errno;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			count++;
	closedir(d);
	return count;
}

static void unlink_name(const char *name, void *arg)
{
	char path[300];

	snprintf(path, sizeof(path), "/%s", name);
	mq_unlink(path);
}

void testbus_unlink_all(const char *bus)
{
	char name[TESTBUS_NAME_MAX + 2];

	snprintf(name, sizeof(name), "/%s", bus);
	mq_unlink(name);
	scan_queues(bus, 0, NULL, unlink_name, NULL);
}

int testbus_try_connect(const char *bus, long maxmsg, long msgsize,
			mqbus **ret, char *err, size_t errsize)
{
	long cur_maxmsg = 0, cur_msgsize = 0;
	mqbus *b = NULL;
	int r;

	*ret = NULL;
	if (err && errsize)
		err[0] = '\0';
	r = mqbus_new(&b);
	if (r < 0)
		return r;
	r = mqbus_set_bus(b, bus);
	if (r == 0 && (maxmsg > 0 || msgsize > 0)) {
		r = mqbus_get_queue_size(b, &cur_maxmsg, &cur_msgsize);
		if (r == 0)
			r = mqbus_set_queue_size(b,
						 maxmsg > 0 ? maxmsg
							    : cur_maxmsg,
						 msgsize > 0 ? msgsize
							     : cur_msgsize);
	}
	if (r == 0)
		r = mqbus_connect(b);
	if (r < 0) {
		if (err && errsize)
			snprintf(err, errsize, "%s", mqbus_last_error(b));
		mqbus_free(b);
		return r;
	}
	*ret = b;
	return 0;
}

mqbus *testbus_connect(const struct testbus *tb, long maxmsg, long msgsize)
{
	char err[512];
	mqbus *b;
	int r;

	r = testbus_try_connect(tb->bus, maxmsg, msgsize, &b, err,
				sizeof(err));
	ck_assert_msg(r == 0, "connect to bus %s (%ld x %ld): %s: %s",
		      tb->bus, maxmsg, msgsize, strerror(-r), err);
	return b;
}

void testbus_subscribe(mqbus *b, const char *pattern)
{
	int r = mqbus_subscribe(b, pattern);

	ck_assert_msg(r == 0, "subscribe %s: %s: %s", pattern, strerror(-r),
		      mqbus_last_error(b));
}

void testbus_publish_index(mqbus *b, const char *topic, uint32_t index,
			   int priority)
{
	int r = mqbus_publish(b, topic, &index, sizeof(index), priority);

	ck_assert_msg(r == 0, "publish %s #%u: %s: %s", topic, index,
		      strerror(-r), mqbus_last_error(b));
}

mqbus_msg *testbus_recv(mqbus *b, int timeout_ms)
{
	mqbus_msg *m = NULL;
	int r = mqbus_receive(b, &m, timeout_ms);

	ck_assert_msg(r == 0 && m, "receive within %d ms: %s: %s", timeout_ms,
		      strerror(-r), mqbus_last_error(b));
	return m;
}

uint32_t testbus_msg_index(const mqbus_msg *m)
{
	const void *p;
	uint32_t index;
	size_t len;

	p = mqbus_msg_payload(m, &len);
	ck_assert_msg(len == sizeof(index),
		      "message on %s has %zu bytes of payload, expected %zu",
		      mqbus_msg_topic(m), len, sizeof(index));
	memcpy(&index, p, sizeof(index));
	return index;
}

unsigned testbus_expect_index(mqbus *b, const char *topic, uint32_t index,
			      int timeout_ms)
{
	mqbus_msg *m = testbus_recv(b, timeout_ms);
	unsigned prio;
	uint32_t got;

	ck_assert_msg(strcmp(mqbus_msg_topic(m), topic) == 0,
		      "got a message on %s, expected %s #%u",
		      mqbus_msg_topic(m), topic, index);
	got = testbus_msg_index(m);
	ck_assert_msg(got == index, "got %s #%u, expected #%u", topic, got,
		      index);
	prio = mqbus_msg_priority(m);
	mqbus_msg_free(m);
	return prio;
}

void testbus_expect_nothing(mqbus *b, int timeout_ms)
{
	mqbus_msg *m = NULL;
	char topic[300];
	int r;

	r = mqbus_receive(b, &m, timeout_ms);
	if (r == 0) {
		snprintf(topic, sizeof(topic), "%s", mqbus_msg_topic(m));
		mqbus_msg_free(m);
		ck_abort_msg("unexpected message on %s", topic);
	}
	ck_assert_msg(r == -ETIMEDOUT,
		      "receive with nothing to get: %s (expected -ETIMEDOUT)",
		      strerror(-r));
}

/* The value of key in stats text, or false without the key. */
static bool stats_value(const char *text, const char *key, long long *ret)
{
	size_t klen = strlen(key);
	const char *line;

	for (line = text; line && *line;) {
		if (strncmp(line, key, klen) == 0 && line[klen] == '=') {
			*ret = strtoll(line + klen + 1, NULL, 10);
			return true;
		}
		line = strchr(line, '\n');
		if (line)
			line++;
	}
	return false;
}

long long testbus_stat(mqbus *b, const char *key)
{
	char *text = NULL;
	long long v = 0;
	bool found;
	int r;

	r = mqbus_stats(b, &text);
	ck_assert_msg(r == 0 && text, "stats: %s: %s", strerror(-r),
		      mqbus_last_error(b));
	found = stats_value(text, key, &v);
	if (!found) {
		char copy[1024];

		snprintf(copy, sizeof(copy), "%s", text);
		free(text);
		ck_abort_msg("stats have no %s=: \"%s\"", key, copy);
	}
	free(text);
	return v;
}

void testbus_wait_stat(mqbus *b, const char *key, long long value,
		       int timeout_ms)
{
	uint64_t deadline = testbus_now_ms() + (uint64_t)timeout_ms;
	long long v;

	for (;;) {
		v = testbus_stat(b, key);
		if (v == value)
			return;
		if (remaining_ms(deadline) == 0)
			break;
		/* Each round is a request to the daemon: pace them. */
		poll(NULL, 0, 2);
	}
	ck_abort_msg("stats %s=%lld after %d ms, expected %lld", key, v,
		     timeout_ms, value);
}

int testbus_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
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

int testbus_read_all(int fd, void *buf, size_t len, int timeout_ms)
{
	uint64_t deadline = testbus_now_ms() + (uint64_t)timeout_ms;
	char *p = buf;

	while (len > 0) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t n;
		int r;

		r = poll(&pfd, 1, remaining_ms(deadline));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -ETIMEDOUT;
		n = read(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EPIPE;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int testbus_drop_sys_resource(void)
{
	struct __user_cap_header_struct hdr = {
		.version = _LINUX_CAPABILITY_VERSION_3,
	};
	struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
	unsigned idx = CAP_SYS_RESOURCE / 32;
	uint32_t bit = 1u << (CAP_SYS_RESOURCE % 32);

	if (syscall(SYS_capget, &hdr, data) < 0)
		return -errno;
	if (!(data[idx].effective & bit))
		return 0;
	data[idx].effective &= ~bit;
	if (syscall(SYS_capset, &hdr, data) < 0)
		return -errno;
	return 0;
}

long testbus_get_mqueue_sysctl(const char *name)
{
	char path[128];
	long v;
	FILE *f;
	int n;

	snprintf(path, sizeof(path), MQUEUE_SYSCTL "%s", name);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	n = fscanf(f, "%ld", &v);
	fclose(f);
	return n == 1 ? v : -EIO;
}

int testbus_set_mqueue_sysctl(const char *name, long value)
{
	char path[128];
	long old;
	FILE *f;
	int r;

	if (rec && !rec->sysctl_saved) {
		old = testbus_get_mqueue_sysctl(name);
		if (old < 0)
			return (int)old;
		snprintf(rec->sysctl_name, sizeof(rec->sysctl_name), "%s",
			 name);
		rec->sysctl_value = old;
		rec->sysctl_saved = true;
	}
	snprintf(path, sizeof(path), MQUEUE_SYSCTL "%s", name);
	f = fopen(path, "we");
	if (!f)
		return -errno;
	r = fprintf(f, "%ld\n", value) < 0 ? -EIO : 0;
	if (fclose(f) != 0 && r == 0)
		r = -errno;
	return r;
}

/* Runs useradd for user (the options of tests/lib.sh's mqb_test_user). */
static int add_user(const char *user, char *why, size_t whysize)
{
	int status, fd;
	pid_t pid;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
		if (fd >= 0)
			dup2(fd, STDOUT_FILENO);
		execlp("useradd", "useradd", "--system", "--no-create-home",
		       "--home-dir", "/nonexistent", "--shell",
		       "/usr/sbin/nologin", "--user-group", user, (char *)NULL);
		execl("/usr/sbin/useradd", "useradd", "--system",
		      "--no-create-home", "--home-dir", "/nonexistent",
		      "--shell", "/usr/sbin/nologin", "--user-group", user,
		      (char *)NULL);
		_exit(errno == ENOENT ? 127 : 126);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 127) {
		snprintf(why, whysize,
			 "user %s is missing and useradd is not installed "
			 "(package passwd)",
			 user);
		return -ENOENT;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		snprintf(why, whysize, "useradd %s failed (exit status %d)",
			 user, exit_code(status));
		return -EIO;
	}
	return 0;
}

int testbus_test_user(uid_t *ret_uid, gid_t *ret_gid, char *why,
		      size_t whysize)
{
	const char *user = getenv("MQBUS_TEST_USER");
	char buf[256];
	struct passwd *pw;
	int r;

	if (!why) {
		why = buf;
		whysize = sizeof(buf);
	}
	why[0] = '\0';
	if (!user || !*user)
		user = "mqbus-test";
	if (geteuid() != 0 && getuid() != 0) {
		snprintf(why, whysize,
			 "not root: cannot run a client as user %s", user);
		return -EPERM;
	}
	pw = getpwnam(user);
	if (!pw) {
		r = add_user(user, why, whysize);
		if (r < 0)
			return r;
		pw = getpwnam(user);
		if (!pw) {
			snprintf(why, whysize,
				 "useradd %s succeeded but getpwnam() does "
				 "not find it",
				 user);
			return -ENOENT;
		}
	}
	if (pw->pw_uid == 0) {
		snprintf(why, whysize, "test user %s has uid 0", user);
		return -EINVAL;
	}
	*ret_uid = pw->pw_uid;
	*ret_gid = pw->pw_gid;
	return 0;
}

bool testbus_in_ci(void)
{
	const char *ci = getenv("CI");

	return ci && strcmp(ci, "true") == 0;
}

int testbus_need_test_user(const char *what, uid_t *ret_uid, gid_t *ret_gid)
{
	char why[256];
	int r;

	r = testbus_test_user(ret_uid, ret_gid, why, sizeof(why));
	if (r == 0)
		return 0;
	ck_assert_msg(!testbus_in_ci() || r == -EPERM,
		      "%s needs a second user under CI=true: %s", what, why);
	printf("# %s: no second user (%s): runs with uid %u only, which "
	       "proves less\n",
	       what, why, (unsigned)getuid());
	fflush(stdout);
	return r;
}

int testbus_become(uid_t uid, gid_t gid)
{
	if (setgroups(0, NULL) < 0)
		return -errno;
	if (setresgid(gid, gid, gid) < 0)
		return -errno;
	if (setresuid(uid, uid, uid) < 0)
		return -errno;
	return 0;
}

int testbus_charge_to(uid_t uid)
{
	if (setresuid(uid, uid, 0) < 0)
		return -errno;
	return 0;
}

int testbus_restore_root(void)
{
	uid_t r, e, sv;

	if (getresuid(&r, &e, &sv) < 0)
		return -errno;
	if (sv != 0 || (r == 0 && e == 0))
		return 0;
	if (setresuid(0, 0, 0) < 0)
		return -errno;
	return 0;
}

/* What the kernel adds per message slot besides msgsize: a struct msg_msg
 * and a priority tree node (ipc/mqueue.c, mqueue_get_inode()). */
#define MQ_SLOT_OVERHEAD 96

long testbus_queue_bytes(long maxmsg, long msgsize)
{
	return maxmsg * (msgsize + MQ_SLOT_OVERHEAD);
}

long testbus_client_bytes(long maxmsg, long msgsize)
{
	return 2 * testbus_queue_bytes(maxmsg, msgsize);
}

/* Creates queues of 1 x size until EMFILE; adds their bytes to *total. */
static int probe_fill(long size, int *n, mqd_t *qs, int max, long *total)
{
	struct mq_attr attr = { .mq_maxmsg = 1, .mq_msgsize = size };
	char name[64];

	while (*n < max) {
		mqd_t q;

		snprintf(name, sizeof(name), "/tbprobe.%d.%d", (int)getpid(),
			 *n);
		q = mq_open(name, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC,
			    0600, &attr);
		if (q == (mqd_t)-1)
			return errno == EMFILE ? 0 : -errno;
		mq_unlink(name); /* the charge stays while it is open */
		qs[(*n)++] = q;
		*total += testbus_queue_bytes(1, size);
	}
	return -ENOSPC;
}

long testbus_mq_free_bytes(void)
{
	enum { MAX = 1024 };
	mqd_t *qs = calloc(MAX, sizeof(*qs));
	long total = 0;
	int n = 0, r, i;

	if (!qs)
		return -ENOMEM;
	r = probe_fill(8192, &n, qs, MAX, &total);
	if (r == 0)
		r = probe_fill(1024, &n, qs, MAX, &total);
	for (i = 0; i < n; i++)
		mq_close(qs[i]);
	free(qs);
	return r < 0 ? r : total;
}

void testbus_need_mq_bytes(long need, const char *what)
{
	long free_bytes = testbus_mq_free_bytes();
	struct rlimit rl = { 0 };

	getrlimit(RLIMIT_MSGQUEUE, &rl);
	ck_assert_msg(free_bytes >= 0,
		      "cannot measure the free RLIMIT_MSGQUEUE of uid %u: %s",
		      (unsigned)getuid(), strerror((int)-free_bytes));
	ck_assert_msg(free_bytes >= need,
		      "%s needs about %ld bytes of RLIMIT_MSGQUEUE, but uid "
		      "%u has only %ld of %llu free (other programs of this "
		      "uid hold queues: stop them, or run the tests as root, "
		      "which charges big tests to the test user, "
		      "MQBUS_TEST_USER or mqbus-test)",
		      what, need, (unsigned)getuid(), free_bytes,
		      (unsigned long long)rl.rlim_cur);
}

/* -------------------------------------------------------------------- */
/* clients made by hand                                                  */

mqd_t testbus_create_queue(const char *name, mode_t mode, long maxmsg,
			   long msgsize)
{
	struct mq_attr attr = { .mq_maxmsg = maxmsg, .mq_msgsize = msgsize };
	mode_t old = umask(0);
	mqd_t q;

	q = mq_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode, &attr);
	umask(old);
	ck_assert_msg(q != (mqd_t)-1, "mq_open %s: %s", name,
		      strerror(errno));
	return q;
}

void testbus_forge(struct testbus_forged *f, const char *bus, unsigned n,
		   mode_t mode)
{
	struct proto_header h;
	char buf[512];
	int len;

	snprintf(f->tx, sizeof(f->tx), "/%s.%d.%u.tx", bus, (int)getpid(), n);
	snprintf(f->rx, sizeof(f->rx), "/%s.%d.%u.rx", bus, (int)getpid(), n);
	f->txq = testbus_create_queue(f->tx, mode, 10, 2048);
	f->rxq = testbus_create_queue(f->rx, mode, 10, 2048);
	proto_header_init(&h, PROTO_HELLO);
	h.sender_pid = (uint32_t)getpid();
	len = proto_encode(buf, sizeof(buf), &h, f->rx, NULL, 0);
	ck_assert_int_gt(len, 0);
	ck_assert_int_eq(mq_send(f->txq, buf, (size_t)len, 0), 0);
}

void testbus_forged_free(struct testbus_forged *f)
{
	mq_close(f->txq);
	mq_close(f->rxq);
	mq_unlink(f->tx);
	mq_unlink(f->rx);
}

void testbus_send_raw(mqd_t q, const void *buf, size_t len)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 5;
	ck_assert_msg(mq_timedsend(q, buf, len, 0, &ts) == 0,
		      "mq_timedsend of %zu bytes: %s", len, strerror(errno));
}

void testbus_send_announce(mqd_t busq, const char *txname, unsigned flags)
{
	struct proto_header h;
	char buf[512];
	int len;

	proto_header_init(&h, PROTO_ANNOUNCE);
	h.flags = (uint16_t)flags;
	len = proto_encode(buf, sizeof(buf), &h, txname, NULL, 0);
	ck_assert_int_gt(len, 0);
	testbus_send_raw(busq, buf, (size_t)len);
}

bool testbus_welcome(struct testbus_forged *f, int timeout_ms,
		     struct testbus_welcome *ret)
{
	struct proto_welcome w;
	struct proto_msg msg;
	struct timespec ts;
	char buf[2048];
	ssize_t n;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += timeout_ms / 1000;
	ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	n = mq_timedreceive(f->rxq, buf, sizeof(buf), NULL, &ts);
	if (n < 0 || proto_decode(buf, (size_t)n, &msg) != 0 ||
	    msg.h.type != PROTO_WELCOME)
		return false;
	if (ret) {
		memcpy(&w, msg.payload, sizeof(w));
		ret->client_id = msg.h.client_id;
		ret->flags = msg.h.flags;
		snprintf(ret->topic, sizeof(ret->topic), "%s", msg.topic);
		ret->timestamp = msg.h.timestamp;
		ret->daemon_pid = w.daemon_pid;
	}
	return true;
}
