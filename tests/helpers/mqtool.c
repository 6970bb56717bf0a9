/* SPDX-License-Identifier: MIT */
/*
 * mqtool - a small POSIX message queue tool for the shell tests.
 *
 * The tests need to do things to queues that neither mqbusd nor mqbusctl
 * does: plant stale queues of a dead process, write garbage into a bus's
 * announce queue, try to open another user's queue and see the errno.
 * Every command prints "ok" (or what it read) on success; on failure it
 * prints the errno's name ("EACCES") on stdout, a sentence on stderr, and
 * exits 1.  Usage errors exit 2.
 *
 *   mqtool create NAME [-m MAXMSG] [-s MSGSIZE] [-M MODE]   (O_EXCL)
 *   mqtool open NAME [r|w|rw]
 *   mqtool unlink NAME
 *   mqtool send NAME DATA [-p PRIO]      one message, without blocking
 *   mqtool sendfile NAME FILE [-p PRIO]  FILE's bytes ("-": stdin)
 *   mqtool recv NAME                     one message, without blocking:
 *                                        prints "PRIO LEN"
 *   mqtool attr NAME                     maxmsg=, msgsize=, curmsgs=
 *   mqtool activate NAME CMD [ARG...]    runs CMD with queue NAME (made
 *                                        0622 10 x 512 if missing) as fd 3,
 *                                        LISTEN_FDS=1 and LISTEN_PID: as
 *                                        systemd passes a .socket's queue
 */
#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *errname(int e)
{
	const char *n = strerrorname_np(e);

	return n ? n : "EUNKNOWN";
}

static int fail(const char *what, const char *name)
{
	int e = errno;

	printf("%s\n", errname(e));
	fprintf(stderr, "mqtool: %s %s: %s\n", what, name, strerror(e));
	return 1;
}

static int usage(void)
{
	fprintf(stderr,
		"usage: mqtool create NAME [-m MAXMSG] [-s MSGSIZE] [-M MODE]\n"
		"       mqtool open NAME [r|w|rw]\n"
		"       mqtool unlink NAME\n"
		"       mqtool send NAME DATA [-p PRIO]\n"
		"       mqtool sendfile NAME FILE [-p PRIO]\n"
		"       mqtool recv NAME\n"
		"       mqtool attr NAME\n"
		"       mqtool activate NAME CMD [ARG...]\n");
	return 2;
}

static bool parse_long(const char *s, int base, long *ret)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, base);
	if (errno || end == s || *end)
		return false;
	*ret = v;
	return true;
}

/* Reads all of fd into a malloc'ed buffer. */
static char *slurp(int fd, size_t *ret_len)
{
	size_t len = 0, cap = 4096;
	char *buf = malloc(cap);

	if (!buf)
		return NULL;
	for (;;) {
		ssize_t n;

		if (len == cap) {
			char *nb = realloc(buf, cap * 2);

			if (!nb) {
				free(buf);
				return NULL;
			}
			buf = nb;
			cap *= 2;
		}
		n = read(fd, buf + len, cap - len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			free(buf);
			return NULL;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	*ret_len = len;
	return buf;
}

static int cmd_create(const char *name, int argc, char **argv)
{
	struct mq_attr attr = { .mq_maxmsg = 10, .mq_msgsize = 2048 };
	long mode = 0600, v;
	mode_t old;
	mqd_t q;
	int i;

	for (i = 0; i < argc; i++) {
		if (i + 1 >= argc)
			return usage();
		if (!strcmp(argv[i], "-m") && parse_long(argv[i + 1], 10, &v))
			attr.mq_maxmsg = v;
		else if (!strcmp(argv[i], "-s") &&
			 parse_long(argv[i + 1], 10, &v))
			attr.mq_msgsize = v;
		else if (!strcmp(argv[i], "-M") &&
			 parse_long(argv[i + 1], 8, &v))
			mode = v;
		else
			return usage();
		i++;
	}
	old = umask(0);
	q = mq_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC,
		    (mode_t)mode, &attr);
	umask(old);
	if (q == (mqd_t)-1)
		return fail("create", name);
	mq_close(q);
	printf("ok\n");
	return 0;
}

static int cmd_open(const char *name, int argc, char **argv)
{
	int flags = O_RDONLY;
	mqd_t q;

	if (argc > 1)
		return usage();
	if (argc == 1) {
		if (!strcmp(argv[0], "r"))
			flags = O_RDONLY;
		else if (!strcmp(argv[0], "w"))
			flags = O_WRONLY;
		else if (!strcmp(argv[0], "rw"))
			flags = O_RDWR;
		else
			return usage();
	}
	q = mq_open(name, flags | O_CLOEXEC);
	if (q == (mqd_t)-1)
		return fail("open", name);
	mq_close(q);
	printf("ok\n");
	return 0;
}

static int send_bytes(const char *name, const char *data, size_t len,
		      int argc, char **argv)
{
	long prio = 0;
	mqd_t q;
	int r;

	if (argc == 2 && !strcmp(argv[0], "-p")) {
		if (!parse_long(argv[1], 10, &prio) || prio < 0)
			return usage();
	} else if (argc != 0) {
		return usage();
	}
	q = mq_open(name, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	if (q == (mqd_t)-1)
		return fail("open", name);
	r = mq_send(q, data, len, (unsigned)prio);
	if (r < 0) {
		r = fail("send to", name);
		mq_close(q);
		return r;
	}
	mq_close(q);
	printf("ok\n");
	return 0;
}

static int cmd_sendfile(const char *name, const char *file, int argc,
			char **argv)
{
	size_t len;
	char *buf;
	int fd, r;

	fd = strcmp(file, "-") ? open(file, O_RDONLY | O_CLOEXEC) : 0;
	if (fd < 0)
		return fail("read", file);
	buf = slurp(fd, &len);
	if (!buf)
		return fail("read", file);
	if (fd != 0)
		close(fd);
	r = send_bytes(name, buf, len, argc, argv);
	free(buf);
	return r;
}

static int cmd_recv(const char *name)
{
	struct mq_attr attr;
	unsigned prio;
	ssize_t n;
	char *buf;
	mqd_t q;

	q = mq_open(name, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (q == (mqd_t)-1)
		return fail("open", name);
	if (mq_getattr(q, &attr) < 0 || !(buf = malloc(attr.mq_msgsize))) {
		mq_close(q);
		return fail("attr of", name);
	}
	n = mq_receive(q, buf, attr.mq_msgsize, &prio);
	free(buf);
	if (n < 0) {
		int r = fail("receive from", name);

		mq_close(q);
		return r;
	}
	mq_close(q);
	printf("%u %zd\n", prio, n);
	return 0;
}

static int cmd_attr(const char *name)
{
	struct mq_attr attr;
	struct stat st;
	mqd_t q;

	q = mq_open(name, O_RDONLY | O_CLOEXEC);
	if (q == (mqd_t)-1)
		return fail("open", name);
	if (mq_getattr(q, &attr) < 0 || fstat(q, &st) < 0) {
		int r = fail("attr of", name);

		mq_close(q);
		return r;
	}
	mq_close(q);
	printf("maxmsg=%ld\nmsgsize=%ld\ncurmsgs=%ld\nuid=%u\nmode=%04o\n",
	       attr.mq_maxmsg, attr.mq_msgsize, attr.mq_curmsgs,
	       (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777));
	return 0;
}

static int cmd_activate(const char *name, char **argv)
{
	struct mq_attr attr = { .mq_maxmsg = 10, .mq_msgsize = 512 };
	char pid[32];
	mode_t old = umask(0);
	mqd_t q = mq_open(name, O_RDONLY | O_CREAT, 0622, &attr);

	umask(old);
	if (q == (mqd_t)-1)
		return fail("open", name);
	/* glibc opens queues close-on-exec: dup2() clears it, for fd 3
	 * itself fcntl() does */
	if (q != 3 && (dup2(q, 3) < 0 || close(q) < 0))
		return fail("dup2 of", name);
	if (fcntl(3, F_SETFD, 0) < 0)
		return fail("fcntl of", name);
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	setenv("LISTEN_FDS", "1", 1);
	setenv("LISTEN_PID", pid, 1);
	execvp(argv[0], argv);
	return fail("exec", argv[0]);
}

int main(int argc, char **argv)
{
	const char *cmd, *name;

	if (argc < 3)
		return usage();
	cmd = argv[1];
	name = argv[2];
	if (!strcmp(cmd, "create"))
		return cmd_create(name, argc - 3, argv + 3);
	if (!strcmp(cmd, "open"))
		return cmd_open(name, argc - 3, argv + 3);
	if (!strcmp(cmd, "unlink")) {
		if (argc != 3)
			return usage();
		if (mq_unlink(name) < 0)
			return fail("unlink", name);
		printf("ok\n");
		return 0;
	}
	if (!strcmp(cmd, "send")) {
		if (argc < 4)
			return usage();
		return send_bytes(name, argv[3], strlen(argv[3]), argc - 4,
				  argv + 4);
	}
	if (!strcmp(cmd, "sendfile")) {
		if (argc < 4)
			return usage();
		return cmd_sendfile(name, argv[3], argc - 4, argv + 4);
	}
	if (!strcmp(cmd, "recv") && argc == 3)
		return cmd_recv(name);
	if (!strcmp(cmd, "attr") && argc == 3)
		return cmd_attr(name);
	if (!strcmp(cmd, "activate") && argc >= 4)
		return cmd_activate(name, argv + 3);
	return usage();
}
