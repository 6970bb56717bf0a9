/* SPDX-License-Identifier: MIT */
/*
 * notify-listen - run a program with NOTIFY_SOCKET pointing at a datagram
 * socket that this tool listens on, and log what the program sends there.
 *
 *   notify-listen SOCKET LOG -- PROGRAM [ARGS...]
 *
 * SOCKET is a path, or "@name" for an abstract socket.  The socket is bound
 * before PROGRAM starts, so no notification can be lost.  Then a listener
 * process is forked and this process execs PROGRAM: PROGRAM keeps this
 * process's pid, so a shell that started "notify-listen ... &" can signal
 * and wait for PROGRAM by $!.  The listener appends each datagram to LOG,
 * preceded by a line "# pid=PID" with the sender's pid (SCM_CREDENTIALS),
 * and exits once PROGRAM has exited and the socket is drained.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

static int pidfd_open_self(void)
{
	return (int)syscall(SYS_pidfd_open, getpid(), 0);
}

static void write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			perror("notify-listen: write log");
			exit(1);
		}
		buf += n;
		len -= (size_t)n;
	}
}

/* Logs one datagram; returns false when the socket had none. */
static bool log_one(int sock, int log)
{
	char buf[4096 + 1], hdr[64];
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(struct ucred))];
	} ctl;
	struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) - 1 };
	struct msghdr mh = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = ctl.buf,
		.msg_controllen = sizeof(ctl.buf),
	};
	struct cmsghdr *c;
	long pid = -1;
	ssize_t n;

	n = recvmsg(sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	if (n < 0)
		return false;
	for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level == SOL_SOCKET &&
		    c->cmsg_type == SCM_CREDENTIALS) {
			struct ucred uc;

			memcpy(&uc, CMSG_DATA(c), sizeof(uc));
			pid = uc.pid;
		}
	}
	snprintf(hdr, sizeof(hdr), "# pid=%ld\n", pid);
	write_all(log, hdr, strlen(hdr));
	write_all(log, buf, (size_t)n);
	if (n == 0 || buf[n - 1] != '\n')
		write_all(log, "\n", 1);
	return true;
}

static void listen_loop(int sock, int pidfd, int log)
{
	struct pollfd p[2] = {
		{ .fd = sock, .events = POLLIN },
		{ .fd = pidfd, .events = POLLIN },
	};

	for (;;) {
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			perror("notify-listen: poll");
			exit(1);
		}
		if (p[0].revents & POLLIN)
			while (log_one(sock, log))
				;
		if (p[1].revents) {
			/* the program is gone: take what it left, then quit */
			while (log_one(sock, log))
				;
			exit(0);
		}
	}
}

int main(int argc, char **argv)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	const char *path, *logpath;
	socklen_t salen;
	int sock, log, pidfd, one = 1;
	pid_t pid;

	if (argc < 5 || strcmp(argv[3], "--")) {
		fprintf(stderr,
			"usage: notify-listen SOCKET LOG -- PROGRAM [ARGS...]\n");
		return 2;
	}
	path = argv[1];
	logpath = argv[2];
	if (strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "notify-listen: socket path too long\n");
		return 2;
	}
	strcpy(sa.sun_path, path);
	salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
			    strlen(path) + 1);
	if (path[0] == '@') {
		sa.sun_path[0] = '\0';
		salen--; /* abstract names are not NUL-terminated */
	} else {
		unlink(path);
	}

	sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (sock < 0 || setsockopt(sock, SOL_SOCKET, SO_PASSCRED, &one,
				   sizeof(one)) < 0 ||
	    bind(sock, (struct sockaddr *)&sa, salen) < 0) {
		perror("notify-listen: socket");
		return 1;
	}
	log = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (log < 0) {
		perror("notify-listen: open log");
		return 1;
	}
	pidfd = pidfd_open_self();
	if (pidfd < 0) {
		perror("notify-listen: pidfd_open");
		return 1;
	}

	pid = fork();
	if (pid < 0) {
		perror("notify-listen: fork");
		return 1;
	}
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);

		/* Keep no pipe of the caller open longer than PROGRAM. */
		if (null >= 0) {
			dup2(null, 0);
			dup2(null, 1);
		}
		signal(SIGINT, SIG_IGN);
		signal(SIGTERM, SIG_IGN);
		listen_loop(sock, pidfd, log);
		return 0;
	}

	if (setenv("NOTIFY_SOCKET", path, 1) < 0) {
		perror("notify-listen: setenv");
		return 1;
	}
	execvp(argv[4], argv + 4);
	fprintf(stderr, "notify-listen: exec %s: %s\n", argv[4],
		strerror(errno));
	return 127;
}
